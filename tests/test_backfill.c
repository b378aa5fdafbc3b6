/* `freshet replay --kafka --from --to` (daemon/fr_backfill.h): the offset rule of a partition's range
 * (an empty range, from after to, a partition with nothing in the range, --to past the end, a state
 * that already read some or all of it), the times users write, and reading exactly the planned
 * ranges from librdkafka's mock cluster: never a message outside them, never one twice across runs,
 * and no offset committed for the group. librdkafka 2.0's mock cluster does not look offsets up by
 * timestamp (it answers "none" for every time), so the reading tests set the time marks of the plan
 * themselves; tests/integration/test_replay_kafka_range.sh plans by time on a real broker. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fr_backfill.h"
#include "fr_config.h"
#include "fr_gen.h"
#include "fr_kafka.h"
#include "fr_pipeline.h"
#include "tmpdir.h"

/* ---- the offset rule ---------------------------------------------------------------------- */

static void expect(fr_backfill_marks m, int has_to, int64_t stored, fr_backfill_kind kind, int64_t start, int64_t end)
{
    int64_t s = -7, e = -7;
    fr_backfill_kind k = fr_backfill_range(&m, has_to, stored, &s, &e);
    if (k != kind || s != start || e != end)
        fail_msg("marks low=%lld high=%lld from@%lld to@%lld has_to=%d stored=%lld: %s [%lld, %lld), want %s [%lld, %lld)",
                 (long long)m.low, (long long)m.high, (long long)m.at_from, (long long)m.at_to, has_to,
                 (long long)stored, fr_backfill_kind_name(k), (long long)s, (long long)e, fr_backfill_kind_name(kind),
                 (long long)start, (long long)end);
}

static void test_range_rule(void **state)
{
    (void)state;
    const fr_backfill_marks mid = {.low = 0, .high = 100, .at_from = 10, .at_to = 50};
    expect(mid, 1, -1, FR_BACKFILL_READ, 10, 50);
    /* without --to: up to the high watermark when planned, whatever comes later */
    expect(mid, 0, -1, FR_BACKFILL_READ, 10, 100);
    /* --to beyond the newest message: no offset at or after it, so the end is the high watermark */
    expect((fr_backfill_marks){.low = 0, .high = 100, .at_from = 10, .at_to = -1}, 1, -1, FR_BACKFILL_READ, 10, 100);
    /* an empty range: both times fall between the same two messages */
    expect((fr_backfill_marks){.low = 0, .high = 100, .at_from = 30, .at_to = 30}, 1, -1, FR_BACKFILL_EMPTY, 30, 30);
    /* a partition with nothing in the range: every message is older than --from */
    expect((fr_backfill_marks){.low = 0, .high = 100, .at_from = -1, .at_to = -1}, 1, -1, FR_BACKFILL_EMPTY, 100, 100);
    expect((fr_backfill_marks){.low = 0, .high = 100, .at_from = -1, .at_to = -1}, 0, -1, FR_BACKFILL_EMPTY, 100, 100);
    /* an empty partition */
    expect((fr_backfill_marks){.low = 0, .high = 0, .at_from = -1, .at_to = -1}, 1, -1, FR_BACKFILL_EMPTY, 0, 0);
    /* retention deleted the start of the range: from the log's start */
    expect((fr_backfill_marks){.low = 20, .high = 100, .at_from = 5, .at_to = 50}, 1, -1, FR_BACKFILL_READ, 20, 50);
    /* timestamps out of order between the two lookups (from after to in offsets): nothing, never backwards */
    expect((fr_backfill_marks){.low = 0, .high = 100, .at_from = 60, .at_to = 40}, 1, -1, FR_BACKFILL_EMPTY, 60, 60);
    /* the state: stopped inside the range resumes; at or past its end reads nothing; before its start skips */
    expect(mid, 1, 30, FR_BACKFILL_RESUME, 30, 50);
    expect(mid, 1, 50, FR_BACKFILL_DONE, 10, 50);
    expect(mid, 1, 80, FR_BACKFILL_DONE, 10, 50);
    expect(mid, 1, 10, FR_BACKFILL_READ, 10, 50);
    expect(mid, 1, 3, FR_BACKFILL_READ, 10, 50);
    expect((fr_backfill_marks){.low = 0, .high = 100, .at_from = 30, .at_to = 30}, 1, 80, FR_BACKFILL_EMPTY, 30, 30);
}

/* ---- times ---------------------------------------------------------------------------------- */

static void test_times(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        int64_t ms;
    } good[] = {{"0", 0},
                {"1764547200000", 1764547200000LL},
                {"2025-12-01", 1764547200000LL},
                {"2025-12-01T06:30:15Z", 1764570615000LL},
                {"2025-12-01T06:30:15.250Z", 1764570615250LL},
                {"2025-12-01T06:30:15.5Z", 1764570615500LL},
                {"2025-12-01T06:30:15.07Z", 1764570615070LL},
                {"253402300799999", 253402300799999LL}};
    char err[512];
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        int64_t ms = -1;
        if (fr_backfill_parse_time("--from", good[i].s, &ms, err, sizeof err) != 0 || ms != good[i].ms)
            fail_msg("\"%s\": %lld (%s), want %lld", good[i].s, (long long)ms, err, (long long)good[i].ms);
    }
    static const struct {
        const char *s, *says;
    } bad[] = {{"1764547200", "looks like seconds (2025-12-01T00:00:00Z), but TIME is in milliseconds: write 1764547200000"},
               {"2025-12-01T06:00:00", "needs its zone: add Z"},
               {"2025-12-01T06:00:00+01:00", "an offset from UTC"},
               {"2025-12-01T06:00:00.2500Z", "milliseconds: give at most 3 digits after the point"},
               {"2025-12-01T06:00:00.Z", "not a time"},
               {"2025-12-01T06:00:00.25", "needs its zone"},
               {"2025-12-01T06:00:00.2x5Z", "not a time"},
               {"2025-13-01T06:00:00.250Z", "not a time"},
               {"2025-12-01 06:00:00Z", "separate the date and the time with T"},
               {"253402300800000", "after the year 9999"},
               {"99999999999999999999", "after the year 9999"},
               {"-5", "not a time"},
               {"yesterday", "not a time"},
               {"", "not a time"},
               {"2025-02-30", "not a time"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t ms = 42;
        err[0] = '\0';
        if (fr_backfill_parse_time("--to", bad[i].s, &ms, err, sizeof err) != -1 || ms != 42)
            fail_msg("\"%s\" accepted as %lld", bad[i].s, (long long)ms);
        if (!strstr(err, bad[i].says) || strncmp(err, "--to ", 5) != 0)
            fail_msg("\"%s\": \"%s\" does not say \"%s\"", bad[i].s, err, bad[i].says);
    }
}

/* ---- reading from the mock cluster ---------------------------------------------------------- */

typedef struct {
    rd_kafka_t *host; /* owns the mock cluster */
    rd_kafka_mock_cluster_t *mock;
    char *dir;
    fr_config cfg;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "0", err, sizeof err);
    f->host = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    assert_non_null(f->host);
    f->mock = rd_kafka_mock_cluster_new(f->host, 1);
    assert_non_null(f->mock);
    fr_config_defaults(&f->cfg);
    snprintf(f->cfg.brokers, sizeof f->cfg.brokers, "%s", rd_kafka_mock_cluster_bootstraps(f->mock));
    for (int t = 0; t < 3; t++) assert_int_equal(rd_kafka_mock_topic_create(f->mock, f->cfg.topic[t], 2, 1), 0);
    f->dir = tmpdir_make("backfill");
    snprintf(f->cfg.checkpoint_dir, sizeof f->cfg.checkpoint_dir, "%s/state", f->dir);
    f->cfg.redis_host[0] = '\0';
    f->cfg.checkpoint_every_samples = 500;
    f->cfg.checkpoint_every_seconds = 0;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    rd_kafka_mock_cluster_destroy(f->mock);
    rd_kafka_destroy(f->host);
    tmpdir_remove(f->dir);
    free(f);
    return 0;
}

/* A generated stream into the topics (keyed by id, as `freshet load` does); returns its lines. */
static uint64_t load(const fixture *f, int64_t impressions)
{
    fr_gen_opts o;
    fr_gen_defaults(&o);
    o.impressions = impressions;
    o.seed = 9 + (uint64_t)impressions;
    o.days = 1;
    o.n_users = 300;
    o.n_ads = 50;
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    char err[256];
    assert_int_equal(fr_gen_run(&o, tmp, NULL, err, sizeof err), 0);
    rewind(tmp);
    fr_kafka_load_stats st;
    assert_int_equal(fr_kafka_load(&f->cfg, tmp, &st, err, sizeof err), 0);
    fclose(tmp);
    assert_int_equal(st.produced, st.lines);
    return st.lines;
}

/* The planned partitions with the time marks set to fractions of each partition: [lo, hi) of high. */
static void plan_fractions(const fixture *f, fr_backfill_plan *plan, double lo, double hi, int has_to)
{
    char err[512];
    if (fr_backfill_plan_make(&f->cfg, 0, has_to ? 1 : -1, plan, err, sizeof err) != 0) fail_msg("plan: %s", err);
    assert_int_equal(plan->n, 6);
    for (int i = 0; i < plan->n; i++) {
        fr_backfill_marks *m = &plan->part[i].marks;
        /* the mock answers "no message at or after" every time */
        assert_int_equal(m->at_from, -1);
        assert_int_equal(m->low, 0);
        m->at_from = (int64_t)(lo * (double)m->high);
        m->at_to = hi >= 1 ? -1 : (int64_t)(hi * (double)m->high);
    }
}

/* One backfill on the state: open, read the plan, checkpoint, close. */
static fr_backfill_stats backfill(const fixture *f, const fr_backfill_plan *plan, uint64_t *consumed,
                                  int64_t offsets[6])
{
    char err[512];
    fr_pipeline *p = fr_pipeline_open(&f->cfg, err, sizeof err);
    if (!p) fail_msg("open: %s", err);
    fr_backfill_opts o = {0};
    fr_backfill_stats st;
    if (fr_backfill_run(p, &f->cfg, plan, &o, &st, err, sizeof err) != 0) fail_msg("backfill: %s", err);
    assert_int_equal(fr_pipeline_checkpoint(p, err, sizeof err), 0);
    *consumed = fr_pipeline_get_counters(p)->consumed;
    for (int i = 0; i < plan->n; i++) {
        char name[FR_SOURCE_NAME_MAX];
        snprintf(name, sizeof name, "kafka:%s:%d", plan->part[i].topic, (int)plan->part[i].partition);
        offsets[i] = fr_pipeline_source_offset(p, name);
    }
    fr_pipeline_close(p);
    return st;
}

static void test_reads_exactly_the_ranges_once(void **state)
{
    fixture *f = *state;
    uint64_t lines = load(f, 1500);
    fr_backfill_plan plan;
    plan_fractions(f, &plan, 0.25, 0.75, 1);
    uint64_t in_range = 0, all = 0;
    for (int i = 0; i < plan.n; i++) {
        in_range += (uint64_t)(plan.part[i].marks.at_to - plan.part[i].marks.at_from);
        all += (uint64_t)plan.part[i].marks.high;
    }
    assert_int_equal(all, lines);
    assert_true(in_range > 0 && in_range < lines);

    uint64_t consumed;
    int64_t off[6];
    fr_backfill_stats st = backfill(f, &plan, &consumed, off);
    /* the middle of every partition, nothing before or after it although both are there to read */
    assert_int_equal(st.read, in_range);
    assert_int_equal(st.to_read, in_range);
    assert_int_equal(consumed, in_range);
    for (int i = 0; i < plan.n; i++) {
        const fr_backfill_marks *m = &plan.part[i].marks;
        /* every partition resumes at its range's end, an empty one too (nothing read there) */
        assert_int_equal(off[i], m->at_to);
        assert_int_equal(st.partitions[m->at_from == m->at_to ? FR_BACKFILL_EMPTY : FR_BACKFILL_READ] > 0, 1);
    }

    /* the same backfill again: nothing read, nothing counted twice */
    st = backfill(f, &plan, &consumed, off);
    assert_int_equal(st.read, 0);
    assert_int_equal(consumed, in_range);
    assert_int_equal(st.partitions[FR_BACKFILL_DONE] + st.partitions[FR_BACKFILL_EMPTY], plan.n);

    /* from the start, --to beyond the end: the first quarter is behind the state (skipped, never
     * trained twice either), the last quarter is new */
    fr_backfill_plan_free(&plan);
    plan_fractions(f, &plan, 0, 1, 1);
    st = backfill(f, &plan, &consumed, off);
    uint64_t last_quarter = 0;
    for (int i = 0; i < plan.n; i++) {
        const fr_backfill_marks *m = &plan.part[i].marks;
        last_quarter += (uint64_t)(m->high - (int64_t)(0.75 * (double)m->high));
        assert_int_equal(off[i], m->high);
    }
    assert_true(last_quarter > 0 && last_quarter < lines - in_range);
    assert_int_equal(st.read, last_quarter);
    assert_int_equal(consumed, in_range + last_quarter);
    assert_true(st.partitions[FR_BACKFILL_RESUME] > 0);
    assert_int_equal(st.partitions[FR_BACKFILL_DONE], 0);
    fr_backfill_plan_free(&plan);

    /* no consumer group offsets were committed: the daemon's group is not disturbed */
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    assert_int_equal(rd_kafka_conf_set(conf, "bootstrap.servers", f->cfg.brokers, err, sizeof err), RD_KAFKA_CONF_OK);
    assert_int_equal(rd_kafka_conf_set(conf, "group.id", f->cfg.group_id, err, sizeof err), RD_KAFKA_CONF_OK);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    assert_non_null(rk);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(6);
    for (int t = 0; t < 3; t++)
        for (int32_t part = 0; part < 2; part++) rd_kafka_topic_partition_list_add(l, f->cfg.topic[t], part);
    assert_int_equal(rd_kafka_committed(rk, l, 10000), 0);
    for (int i = 0; i < l->cnt; i++) assert_true(l->elems[i].offset < 0);
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_destroy(rk);
}

/* An empty topic and a range with nothing in it: the backfill ends at once, every partition's
 * offset at its range's end. */
static void test_nothing_to_read_ends(void **state)
{
    fixture *f = *state;
    fr_backfill_plan plan;
    char err[512];
    assert_int_equal(fr_backfill_plan_make(&f->cfg, 0, -1, &plan, err, sizeof err), 0);
    assert_int_equal(plan.n, 6);
    uint64_t consumed;
    int64_t off[6];
    fr_backfill_stats st = backfill(f, &plan, &consumed, off);
    assert_int_equal(st.partitions[FR_BACKFILL_EMPTY], 6);
    assert_int_equal(st.read, 0);
    assert_int_equal(consumed, 0);
    fr_backfill_plan_free(&plan);

    load(f, 200);
    plan_fractions(f, &plan, 0.5, 0.5, 1);
    st = backfill(f, &plan, &consumed, off);
    assert_int_equal(st.partitions[FR_BACKFILL_EMPTY], 6);
    assert_int_equal(consumed, 0);
    for (int i = 0; i < plan.n; i++) assert_int_equal(off[i], plan.part[i].marks.at_from);
    fr_backfill_plan_free(&plan);
}

/* Without --to the ranges end at the high watermarks of the plan: messages produced after it are
 * left to the next run, which reads exactly them. */
static void test_does_not_follow_new_messages(void **state)
{
    fixture *f = *state;
    uint64_t first = load(f, 600);
    fr_backfill_plan plan;
    plan_fractions(f, &plan, 0, 1, 0);
    uint64_t second = load(f, 400);
    uint64_t consumed;
    int64_t off[6];
    fr_backfill_stats st = backfill(f, &plan, &consumed, off);
    assert_int_equal(st.read, first);
    assert_int_equal(consumed, first);
    fr_backfill_plan_free(&plan);
    plan_fractions(f, &plan, 0, 1, 0);
    st = backfill(f, &plan, &consumed, off);
    assert_int_equal(st.read, second);
    assert_int_equal(consumed, first + second);
    fr_backfill_plan_free(&plan);
}

/* A range that is no longer in the log (here: beyond its end, as after the log was truncated since
 * the plan; retention deleting its start answers the same) stops the backfill with the partition
 * named, rather than jumping elsewhere in the log. */
static void test_unreadable_range_stops(void **state)
{
    fixture *f = *state;
    load(f, 300);
    fr_backfill_plan plan;
    plan_fractions(f, &plan, 0, 1, 0);
    fr_backfill_marks *m = &plan.part[plan.n - 1].marks;
    m->at_from = m->high + 50;
    m->high += 100;
    char err[512];
    fr_pipeline *p = fr_pipeline_open(&f->cfg, err, sizeof err);
    assert_non_null(p);
    fr_backfill_opts o = {0};
    fr_backfill_stats st;
    assert_int_equal(fr_backfill_run(p, &f->cfg, &plan, &o, &st, err, sizeof err), FR_BACKFILL_UNREADABLE);
    char want[200];
    snprintf(want, sizeof want, "kafka: kafka:%s:%d cannot be read in its range [%lld, %lld)", plan.part[plan.n - 1].topic,
             (int)plan.part[plan.n - 1].partition, (long long)m->at_from, (long long)m->high);
    if (!strstr(err, want)) fail_msg("\"%s\" does not say \"%s\"", err, want);
    assert_int_equal(fr_pipeline_checkpoint(p, err, sizeof err), 0);
    fr_pipeline_close(p);
    fr_backfill_plan_free(&plan);
}

/* A Protobuf topic is read as Protobuf (kafka.topics.*.format), as the daemon reads it. */
static void test_protobuf_topics(void **state)
{
    fixture *f = *state;
    for (int t = 0; t < 3; t++) f->cfg.topic_format[t] = FR_FORMAT_PROTOBUF;
    uint64_t lines = load(f, 300);
    fr_backfill_plan plan;
    plan_fractions(f, &plan, 0, 1, 0);
    char err[512];
    fr_pipeline *p = fr_pipeline_open(&f->cfg, err, sizeof err);
    assert_non_null(p);
    fr_backfill_opts o = {0};
    fr_backfill_stats st;
    assert_int_equal(fr_backfill_run(p, &f->cfg, &plan, &o, &st, err, sizeof err), 0);
    const uint64_t consumed = fr_pipeline_get_counters(p)->consumed;
    const fr_join_counters *j = fr_pipeline_join_counters(p);
    uint64_t accepted = 0;
    for (int t = 0; t < FR_EV_NTYPES; t++) accepted += j->events[t];
    assert_int_equal(consumed, lines);
    assert_int_equal(accepted + fr_pipeline_held(p), lines);
    fr_pipeline_close(p);
    fr_backfill_plan_free(&plan);
}

/* `freshet load --event-time`: every message's Kafka timestamp is its event's ts (a line without one
 * gets the clock's); without it, every message gets the clock's. */
static void test_load_sets_event_timestamps(void **state)
{
    fixture *f = *state;
    for (int t = 1; t < 3; t++) snprintf(f->cfg.topic[t], sizeof f->cfg.topic[t], "%s", f->cfg.topic[0]);
    static const char lines[] = "{\"type\":\"impression\",\"id\":\"a\",\"ts\":1764547200123}\n"
                                "{\"type\":\"click\",\"id\":\"a\",\"ts\":1764547260000}\n"
                                "{\"type\":\"click\",\"id\":\"b\"}\n"
                                "not json\n";
    const int64_t want[] = {1764547200123LL, 1764547260000LL, 0, 0}; /* 0: the clock's */
    for (int event_time = 1; event_time >= 0; event_time--) {
        FILE *in = fmemopen((void *)lines, sizeof lines - 1, "r");
        assert_non_null(in);
        f->cfg.load_event_time = event_time;
        fr_kafka_load_stats st;
        char err[512];
        assert_int_equal(fr_kafka_load(&f->cfg, in, &st, err, sizeof err), 0);
        fclose(in);
    }
    /* read both loads back: 8 messages over the topic's 2 partitions, matched by value and load */
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char err[256];
    assert_int_equal(rd_kafka_conf_set(conf, "bootstrap.servers", f->cfg.brokers, err, sizeof err), RD_KAFKA_CONF_OK);
    assert_int_equal(rd_kafka_conf_set(conf, "group.id", "ts-reader", err, sizeof err), RD_KAFKA_CONF_OK);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    assert_non_null(rk);
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(2);
    for (int32_t part = 0; part < 2; part++)
        rd_kafka_topic_partition_list_add(l, f->cfg.topic[0], part)->offset = RD_KAFKA_OFFSET_BEGINNING;
    assert_int_equal(rd_kafka_assign(rk, l), 0);
    rd_kafka_topic_partition_list_destroy(l);
    int seen[4][2] = {{0}}, n = 0;
    const int64_t now = (int64_t)time(NULL) * 1000;
    for (int idle = 0; idle < 50 && n < 8;) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m) {
            idle++;
            continue;
        }
        if (!m->err) {
            int k = 0;
            for (const char *line = lines; k < 4; k++) {
                size_t len = strcspn(line, "\n");
                if (len == m->len && memcmp(line, m->payload, len) == 0) break;
                line += len + 1;
            }
            assert_true(k < 4);
            int64_t ts = rd_kafka_message_timestamp(m, NULL);
            /* the first load of each line carried the event's ts where there was one */
            int event_time = want[k] && ts == want[k];
            if (!event_time && (ts < now - 600000 || ts > now + 600000)) fail_msg("line %d: timestamp %lld", k, (long long)ts);
            seen[k][event_time]++;
            n++;
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    assert_int_equal(n, 8);
    for (int k = 0; k < 4; k++) {
        assert_int_equal(seen[k][1], want[k] ? 1 : 0);
        assert_int_equal(seen[k][0], want[k] ? 1 : 2);
    }
}

/* from after to, a missing topic: refused with the reason before anything is read. */
static void test_plan_refusals(void **state)
{
    fixture *f = *state;
    fr_backfill_plan plan;
    char err[512];
    assert_int_equal(fr_backfill_plan_make(&f->cfg, 1764633600000LL, 1764547200000LL, &plan, err, sizeof err), -1);
    assert_non_null(strstr(err, "--from (2025-12-02T00:00:00Z) must be before --to (2025-12-01T00:00:00Z)"));
    assert_int_equal(fr_backfill_plan_make(&f->cfg, 5, 5, &plan, err, sizeof err), -1);
    assert_non_null(strstr(err, "the range [from, to) is empty"));
    snprintf(f->cfg.topic[1], sizeof f->cfg.topic[1], "no-such-clicks");
    /* the mock would create it on the metadata request; a broker without auto-creation answers this */
    rd_kafka_mock_topic_set_error(f->mock, "no-such-clicks", RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART);
    assert_int_equal(fr_backfill_plan_make(&f->cfg, 0, -1, &plan, err, sizeof err), -1);
    assert_non_null(strstr(err, "topic \"no-such-clicks\" (kafka.topics.clicks) does not exist"));
    assert_null(plan.part);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_range_rule),
        cmocka_unit_test(test_times),
        cmocka_unit_test_setup_teardown(test_reads_exactly_the_ranges_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nothing_to_read_ends, setup, teardown),
        cmocka_unit_test_setup_teardown(test_does_not_follow_new_messages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_sets_event_timestamps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unreadable_range_stops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_protobuf_topics, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plan_refusals, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
