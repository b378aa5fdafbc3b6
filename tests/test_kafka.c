/* Kafka edge cases against librdkafka's in-process mock cluster (no broker needed): loading keys
 * and routes events by type, the consumer resumes from the checkpoint and never counts an event
 * twice across restarts, and bad messages are counted, not fatal. The integration tests repeat
 * the important parts on a real broker. */
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

#include "fr_config.h"
#include "fr_gen.h"
#include "fr_kafka.h"
#include "fr_pipeline.h"
#include "tmpdir.h"

typedef struct {
    rd_kafka_t *host;               /* owns the mock cluster */
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
    f->dir = tmpdir_make("kafka");
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

/* Writes a generated stream of n impressions plus `bad` malformed lines; returns the line count. */
static uint64_t write_stream(FILE *out, int64_t n, uint64_t seed, int64_t start_ts, int bad)
{
    fr_gen_opts o;
    fr_gen_defaults(&o);
    o.impressions = n;
    o.seed = seed;
    o.start_ts_ms = start_ts;
    o.days = 1;
    o.n_users = 500;
    o.n_ads = 100;
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    assert_non_null(mem);
    char err[256];
    assert_int_equal(fr_gen_run(&o, mem, NULL, err, sizeof err), 0);
    fclose(mem);
    uint64_t lines = 0;
    for (size_t i = 0; i < len; i++) lines += buf[i] == '\n';
    fwrite(buf, 1, len, out);
    free(buf);
    for (int i = 0; i < bad; i++) fprintf(out, "{\"type\":\"click\",\"id\":\"broken-%d\"\n", i);
    return lines + (uint64_t)bad;
}

static uint64_t load(const fixture *f, int64_t n, uint64_t seed, int64_t start_ts, int bad)
{
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    uint64_t lines = write_stream(tmp, n, seed, start_ts, bad);
    rewind(tmp);
    fr_kafka_load_stats st;
    char err[256];
    assert_int_equal(fr_kafka_load(&f->cfg, tmp, &st, err, sizeof err), 0);
    fclose(tmp);
    assert_int_equal(st.lines, lines);
    assert_int_equal(st.produced, lines);
    assert_int_equal(st.unparsable, (uint64_t)bad);
    return lines;
}

/* One daemon incarnation: open (restoring the checkpoint), consume until idle, checkpoint, close. */
static fr_pipeline_counters run_once(const fixture *f)
{
    char err[512];
    fr_pipeline *p = fr_pipeline_open(&f->cfg, err, sizeof err);
    assert_non_null(p);
    fr_kafka_run_opts o = {.exit_when_idle_seconds = 1.0};
    int rc = fr_kafka_run(p, &f->cfg, &o, err, sizeof err);
    if (rc != 0) fail_msg("fr_kafka_run: %s", err);
    fr_pipeline_counters c = *fr_pipeline_get_counters(p);
    const fr_join_counters *j = fr_pipeline_join_counters(p);
    uint64_t accepted = 0;
    for (int t = 0; t < FR_EV_NTYPES; t++) accepted += j->events[t];
    uint64_t rejected = 0;
    for (int r = 0; r < FR_REJECT_NREASONS; r++) rejected += c.rejected[r];
    /* held: far ahead of their partition's time, waiting for its later events (fr_evtime.h) */
    assert_int_equal(c.consumed, accepted + rejected + fr_pipeline_held(p));
    fr_pipeline_close(p);
    return c;
}

static void test_consume_resume_and_continue(void **state)
{
    fixture *f = *state;
    uint64_t first = load(f, 2000, 1, 1764547200000LL, 3);
    fr_pipeline_counters c1 = run_once(f);
    assert_int_equal(c1.consumed, first);
    assert_int_equal(c1.rejected[FR_REJECT_MALFORMED_JSON], 3);
    assert_true(c1.samples_trained > 0);

    /* A restart with nothing new consumes nothing: offsets come from the checkpoint. */
    fr_pipeline_counters c2 = run_once(f);
    assert_int_equal(c2.consumed, first);
    assert_int_equal(c2.samples_trained, c1.samples_trained);

    /* New traffic later in event time is consumed once, on top. "Later" means after the first
     * stream's last conversion (days after its last impression), else the new impressions are
     * behind the watermark and are dropped as late. */
    uint64_t second = load(f, 1000, 2, 1764547200000LL + 10 * 86400000LL, 0);
    fr_pipeline_counters c3 = run_once(f);
    assert_int_equal(c3.consumed, first + second);
    /* every new impression's click window closes before the stream's last conversion */
    assert_true(c3.samples_trained + c3.samples_buffered >= c2.samples_trained + c2.samples_buffered + 900);
}

/* join.partitions 2 on topics of 2 partitions (partition p bound to group p): every message is
 * consumed once, nothing is late, every impression's click window closes once the partitions are
 * idle, and a restart resumes from the groups' checkpoint with nothing new to do. */
static void test_partition_groups_consume_and_resume(void **state)
{
    fixture *f = *state;
    f->cfg.partitions = 2;
    uint64_t lines = load(f, 2000, 3, 1764547200000LL, 0);
    fr_pipeline_counters c1 = run_once(f);
    assert_int_equal(c1.consumed, lines);
    char err[512];
    fr_pipeline *p = fr_pipeline_open(&f->cfg, err, sizeof err);
    assert_non_null(p);
    const fr_join_counters j = *fr_pipeline_join_counters(p);
    fr_pipeline_close(p);
    assert_int_equal(j.emitted[FR_SAMPLE_CLICK_WINDOW], 2000);
    for (int t = 0; t < FR_EV_NTYPES; t++) assert_int_equal(j.dropped[t][FR_DROP_LATE], 0);
    fr_pipeline_counters c2 = run_once(f);
    assert_int_equal(c2.consumed, lines);
    assert_int_equal(c2.samples_trained, c1.samples_trained);
}

/* Reads every message of one topic from the start: (value, reason header) pairs. */
typedef struct {
    char value[256];
    char reason[64];
    char offset[24];
} dead_copy;

static size_t read_topic(const fixture *f, const char *topic, dead_copy *out, size_t cap)
{
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    assert_int_equal(rd_kafka_conf_set(conf, "bootstrap.servers", f->cfg.brokers, err, sizeof err), RD_KAFKA_CONF_OK);
    assert_int_equal(rd_kafka_conf_set(conf, "group.id", "dead-letter-reader", err, sizeof err), RD_KAFKA_CONF_OK);
    assert_int_equal(rd_kafka_conf_set(conf, "auto.offset.reset", "earliest", err, sizeof err), RD_KAFKA_CONF_OK);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    assert_non_null(rk);
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(parts, topic, 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
    assert_int_equal(rd_kafka_assign(rk, parts), 0);
    rd_kafka_topic_partition_list_destroy(parts);
    size_t n = 0;
    for (int idle = 0; idle < 30 && n < cap;) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m) {
            idle++;
            continue;
        }
        if (!m->err) {
            dead_copy *d = &out[n++];
            memset(d, 0, sizeof *d);
            memcpy(d->value, m->payload, m->len < sizeof d->value - 1 ? m->len : sizeof d->value - 1);
            rd_kafka_headers_t *h = NULL;
            const void *v;
            size_t vl;
            if (rd_kafka_message_headers(m, &h) == 0) {
                if (rd_kafka_header_get_last(h, "freshet-reason", &v, &vl) == 0) memcpy(d->reason, v, vl);
                if (rd_kafka_header_get_last(h, "freshet-offset", &v, &vl) == 0) memcpy(d->offset, v, vl);
            }
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return n;
}

static int cmp_dead_copy(const void *a, const void *b)
{
    return strcmp(((const dead_copy *)a)->value, ((const dead_copy *)b)->value);
}

/* With kafka.dead_letter_topic set, each rejected message is copied there once, byte for byte,
 * with its reason and offset in headers; good events are not copied. */
static void test_rejected_messages_reach_the_dead_letter_topic(void **state)
{
    fixture *f = *state;
    snprintf(f->cfg.dead_letter_topic, sizeof f->cfg.dead_letter_topic, "freshet-dead-letter");
    assert_int_equal(rd_kafka_mock_topic_create(f->mock, f->cfg.dead_letter_topic, 1, 1), 0);
    uint64_t lines = load(f, 300, 3, 1764547200000LL, 2);
    fr_pipeline_counters c = run_once(f);
    assert_int_equal(c.consumed, lines);
    assert_int_equal(c.rejected[FR_REJECT_MALFORMED_JSON], 2);
    dead_copy got[8];
    size_t n = read_topic(f, f->cfg.dead_letter_topic, got, 8);
    assert_int_equal(n, 2);
    /* the broken messages sit in different partitions: their copies come in consumption order */
    qsort(got, n, sizeof got[0], cmp_dead_copy);
    for (size_t i = 0; i < n; i++) {
        char want[64];
        snprintf(want, sizeof want, "{\"type\":\"click\",\"id\":\"broken-%zu\"", i);
        assert_string_equal(got[i].value, want);
        assert_string_equal(got[i].reason, "malformed_json");
        assert_true(got[i].offset[0] != '\0');
    }
}

/* A click far in the future is held in its partition, rejected as ts_in_future once the partition's
 * next events contradict it, and copied to the dead-letter topic with that reason and its own
 * offset. One topic carries all three types, so each partition is dense. */
static void test_far_future_event_is_dead_lettered(void **state)
{
    fixture *f = *state;
    snprintf(f->cfg.dead_letter_topic, sizeof f->cfg.dead_letter_topic, "freshet-dead-letter");
    assert_int_equal(rd_kafka_mock_topic_create(f->mock, f->cfg.dead_letter_topic, 1, 1), 0);
    for (int t = 0; t < 3; t++) snprintf(f->cfg.topic[t], sizeof f->cfg.topic[t], "events");
    assert_int_equal(rd_kafka_mock_topic_create(f->mock, "events", 2, 1), 0);
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    assert_non_null(mem);
    uint64_t lines = write_stream(mem, 1000, 6, 1764547200000LL, 0);
    fclose(mem);
    static const char wild[] = "{\"type\":\"click\",\"id\":\"wild-1\",\"ts\":4102444800000}";
    char *mid = buf + len / 2;
    while (*mid != '\n') mid++;
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    fwrite(buf, 1, (size_t)(mid + 1 - buf), tmp);
    fprintf(tmp, "%s\n", wild);
    fwrite(mid + 1, 1, len - (size_t)(mid + 1 - buf), tmp);
    free(buf);
    rewind(tmp);
    fr_kafka_load_stats st;
    char err[256];
    assert_int_equal(fr_kafka_load(&f->cfg, tmp, &st, err, sizeof err), 0);
    fclose(tmp);
    fr_pipeline_counters c = run_once(f);
    assert_int_equal(c.consumed, lines + 1);
    assert_int_equal(c.rejected[FR_REJECT_TS_IN_FUTURE], 1);
    dead_copy got[4];
    size_t n = read_topic(f, f->cfg.dead_letter_topic, got, 4);
    assert_int_equal(n, 1);
    assert_string_equal(got[0].value, wild);
    assert_string_equal(got[0].reason, "ts_in_future");
    assert_true(got[0].offset[0] != '\0');
}

/* kafka.properties reach every client: a bad value or a missing env: variable stops the consumer
 * and the loader with the key's name (never the value: it may be a secret); good ones, from the
 * environment too, run. */
static void test_user_properties(void **state)
{
    fixture *f = *state;
    char err[512];
    f->cfg.n_kafka_props = 1;
    snprintf(f->cfg.kafka_prop[0][0], FR_PATH_MAX, "session.timeout.ms");
    snprintf(f->cfg.kafka_prop[0][1], FR_PATH_MAX, "banana");
    fr_pipeline *p = fr_pipeline_open(&f->cfg, err, sizeof err);
    assert_non_null(p);
    fr_kafka_run_opts o = {.exit_when_idle_seconds = 1.0};
    assert_int_equal(fr_kafka_run(p, &f->cfg, &o, err, sizeof err), -1);
    assert_non_null(strstr(err, "kafka.properties.session.timeout.ms: "));
    assert_null(strstr(err, "banana"));
    FILE *one = tmpfile();
    fputs("{}\n", one);
    rewind(one);
    fr_kafka_load_stats st;
    assert_int_equal(fr_kafka_load(&f->cfg, one, &st, err, sizeof err), -1);
    assert_non_null(strstr(err, "kafka.properties.session.timeout.ms"));
    fclose(one);

    unsetenv("FRESHET_TEST_KAFKA_CLIENT");
    snprintf(f->cfg.kafka_prop[0][0], FR_PATH_MAX, "client.id");
    snprintf(f->cfg.kafka_prop[0][1], FR_PATH_MAX, "env:FRESHET_TEST_KAFKA_CLIENT");
    assert_int_equal(fr_kafka_run(p, &f->cfg, &o, err, sizeof err), -1);
    assert_non_null(strstr(err, "the environment variable FRESHET_TEST_KAFKA_CLIENT is not set"));
    fr_pipeline_close(p);

    setenv("FRESHET_TEST_KAFKA_CLIENT", "freshet-test", 1);
    uint64_t lines = load(f, 200, 5, 1764547200000LL, 0);
    fr_pipeline_counters c = run_once(f);
    assert_int_equal(c.consumed, lines);
    unsetenv("FRESHET_TEST_KAFKA_CLIENT");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_consume_resume_and_continue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rejected_messages_reach_the_dead_letter_topic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_far_future_event_is_dead_lettered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_user_properties, setup, teardown),
        cmocka_unit_test_setup_teardown(test_partition_groups_consume_and_resume, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
