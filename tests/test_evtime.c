/* Tests of the event-time check (fr_evtime): the rule on hand-made partitions (one wild event, a
 * handful, a wild first event, a stream that moved on, a sparse partition, the bound on what is
 * held, the checkpoint format), then the whole pipeline on a generated stream: far-future and
 * far-past events keep every join of the clean stream, a gap of days and a bursty stream lose
 * nothing, and a restart with held messages ends bit-identical to a run never stopped. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fr_ckpt.h"
#include "fr_config.h"
#include "fr_evtime.h"
#include "fr_gen.h"
#include "fr_pipeline.h"
#include "gen_lines.h"
#include "tmpdir.h"

#define MIN_MS INT64_C(60000)
#define HOUR_MS (60 * MIN_MS)
#define DAY_MS (24 * HOUR_MS)
#define T0 INT64_C(1764547200000)    /* 2025-12-01 */
#define Y2100 INT64_C(4102444800000) /* 2100-01-01 */

/* ---- the rule, one partition ---------------------------------------------------------------- */

typedef struct {
    fr_evtime *e;
    fr_evtime_config c;
    int64_t next; /* offset of the next message */
    /* what the last offer decided, oldest first */
    int64_t dec_offset[64];
    fr_evtime_verdict dec_verdict[64];
    size_t n_dec;
} part;

static void part_init(part *p)
{
    p->e = fr_evtime_create();
    assert_non_null(p->e);
    fr_evtime_config_defaults(&p->c);
    p->next = 0;
    p->n_dec = 0;
}

static fr_evtime_verdict offer(part *p, int64_t ts)
{
    char msg[64];
    int n = snprintf(msg, sizeof msg, "m%" PRId64, p->next);
    fr_evtime_verdict v;
    assert_int_equal(fr_evtime_offer(p->e, &p->c, ts, p->next++, msg, (size_t)n, &v), 0);
    const fr_evtime_msg *d;
    p->n_dec = fr_evtime_decided(p->e, &d);
    assert_true(p->n_dec <= 64);
    for (size_t i = 0; i < p->n_dec; i++) {
        p->dec_offset[i] = d[i].offset;
        p->dec_verdict[i] = d[i].verdict;
        /* the bytes are the ones offered */
        snprintf(msg, sizeof msg, "m%" PRId64, d[i].offset);
        assert_int_equal(d[i].len, strlen(msg));
        assert_memory_equal(d[i].bytes, msg, d[i].len);
        if (i) assert_true(d[i].offset > d[i - 1].offset);
    }
    return v;
}

/* A partition that has accepted `n` events one second apart from T0. */
static void warm(part *p, int n)
{
    for (int i = 0; i < n; i++) offer(p, T0 + i * 1000);
    assert_int_equal(fr_evtime_held(p->e), 0);
    assert_int_equal(fr_evtime_time(p->e), T0 + (n - 1) * 1000);
}

static void test_first_events(void **state)
{
    (void)state;
    part p;
    part_init(&p);
    /* nothing vouches for a partition's first event: it waits for the next one */
    assert_int_equal(offer(&p, T0), FR_EVTIME_HOLD);
    assert_int_equal(fr_evtime_time(p.e), INT64_MIN);
    assert_int_equal(offer(&p, T0 + 500), FR_EVTIME_ACCEPT);
    assert_int_equal(p.n_dec, 1);
    assert_int_equal(p.dec_offset[0], 0);
    assert_int_equal(p.dec_verdict[0], FR_EVTIME_ACCEPT);
    assert_int_equal(fr_evtime_time(p.e), T0 + 500);
    assert_int_equal(offer(&p, T0 + 400), FR_EVTIME_ACCEPT); /* behind: fine, the join judges lateness */
    assert_int_equal(offer(&p, T0 + 10 * MIN_MS), FR_EVTIME_ACCEPT);
    fr_evtime_free(p.e);

    /* the first event is the wild one: the next events contradict it, and they set the time */
    part_init(&p);
    assert_int_equal(offer(&p, Y2100), FR_EVTIME_HOLD);
    assert_int_equal(offer(&p, T0), FR_EVTIME_HOLD);
    assert_int_equal(offer(&p, T0 + 1000), FR_EVTIME_ACCEPT);
    assert_int_equal(p.n_dec, 1);
    assert_int_equal(p.dec_offset[0], 1);
    assert_int_equal(fr_evtime_time(p.e), T0 + 1000);
    for (int i = 2; i < 15; i++) {
        assert_int_equal(offer(&p, T0 + i * 1000), FR_EVTIME_ACCEPT);
        assert_int_equal(p.n_dec, 0);
    }
    /* the 16th event after it rejects it */
    assert_int_equal(offer(&p, T0 + 15 * 1000), FR_EVTIME_ACCEPT);
    assert_int_equal(p.n_dec, 1);
    assert_int_equal(p.dec_offset[0], 0);
    assert_int_equal(p.dec_verdict[0], FR_EVTIME_FUTURE);
    assert_int_equal(fr_evtime_held(p.e), 0);
    assert_int_equal(fr_evtime_time(p.e), T0 + 15 * 1000);
    fr_evtime_free(p.e);
}

static void test_one_wild_event(void **state)
{
    (void)state;
    part p;
    part_init(&p);
    warm(&p, 100);
    const int64_t hi = fr_evtime_time(p.e);
    assert_int_equal(offer(&p, Y2100), FR_EVTIME_HOLD);
    /* the partition goes on: its time moves, the wild event waits for 16 of them, then goes */
    for (int i = 1; i <= 16; i++) {
        assert_int_equal(offer(&p, hi + i * 1000), FR_EVTIME_ACCEPT);
        assert_int_equal(p.n_dec, i == 16 ? 1 : 0);
    }
    assert_int_equal(p.dec_offset[0], 100);
    assert_int_equal(p.dec_verdict[0], FR_EVTIME_FUTURE);
    assert_int_equal(fr_evtime_time(p.e), hi + 16 * 1000);

    /* just inside the bound is accepted at once; just outside is held, and released when the
     * partition catches up with it */
    const int64_t now = fr_evtime_time(p.e);
    assert_int_equal(fr_evtime_bound(p.e, &p.c), 15 * MIN_MS);
    assert_int_equal(offer(&p, now + 15 * MIN_MS), FR_EVTIME_ACCEPT);
    const int64_t ahead = fr_evtime_time(p.e) + 15 * MIN_MS + 1;
    assert_int_equal(offer(&p, ahead), FR_EVTIME_HOLD);
    assert_int_equal(offer(&p, fr_evtime_time(p.e) + 1), FR_EVTIME_ACCEPT);
    assert_int_equal(p.n_dec, 1);
    assert_int_equal(p.dec_verdict[0], FR_EVTIME_ACCEPT);
    assert_int_equal(fr_evtime_time(p.e), ahead);
    fr_evtime_free(p.e);
}

/* Five far-future events, of the same ts (they agree with each other) or not, back to back or
 * spread: fewer than ahead_confirm, so the partition's events reject them all. */
static void test_a_handful(void **state)
{
    (void)state;
    for (int spread = 0; spread < 2; spread++) {
        part p;
        part_init(&p);
        warm(&p, 50);
        int64_t t = fr_evtime_time(p.e);
        const int64_t wild[5] = {Y2100, Y2100, Y2100 + HOUR_MS, Y2100 * 3, Y2100 + 5 * MIN_MS};
        size_t rejected = 0, k = 0;
        for (int i = 0; i < 60; i++) {
            int is_wild = k < 5 && (spread ? i % 4 == 0 : i >= 3);
            fr_evtime_verdict v = offer(&p, is_wild ? wild[k++] : (t += 1000));
            assert_int_equal(v, is_wild ? FR_EVTIME_HOLD : FR_EVTIME_ACCEPT);
            for (size_t d = 0; d < p.n_dec; d++) {
                assert_int_equal(p.dec_verdict[d], FR_EVTIME_FUTURE);
                rejected++;
            }
        }
        assert_int_equal(rejected, 5);
        assert_int_equal(fr_evtime_held(p.e), 0);
        assert_int_equal(fr_evtime_time(p.e), t);
        fr_evtime_free(p.e);
    }
}

/* A partition that stops for two days and resumes (or a replay of the next day): its first 16
 * events wait, then all go, in arrival order; nothing is rejected. */
static void test_stream_moved_on(void **state)
{
    (void)state;
    part p;
    part_init(&p);
    warm(&p, 40);
    const int64_t t = fr_evtime_time(p.e) + 2 * DAY_MS;
    for (int i = 0; i < 16; i++) assert_int_equal(offer(&p, t + i * 700 - (i % 3) * 2000), FR_EVTIME_HOLD);
    assert_int_equal(fr_evtime_held(p.e), 16);
    assert_int_equal(offer(&p, t + 16 * 700), FR_EVTIME_ACCEPT);
    assert_int_equal(p.n_dec, 16);
    for (size_t i = 0; i < 16; i++) {
        assert_int_equal(p.dec_offset[i], 40 + (int64_t)i);
        assert_int_equal(p.dec_verdict[i], FR_EVTIME_ACCEPT);
    }
    assert_int_equal(fr_evtime_held(p.e), 0);
    assert_int_equal(fr_evtime_released(p.e), 1 + 16); /* the partition's first event waited too */
    /* the jump is one step among many: the pace, and so the bound, stay those of a dense stream */
    for (int i = 0; i < 20; i++) assert_int_equal(offer(&p, t + 20000 + i * 700), FR_EVTIME_ACCEPT);
    assert_int_equal(fr_evtime_bound(p.e, &p.c), 15 * MIN_MS);
    fr_evtime_free(p.e);
}

/* Conversions of a small partition, hours apart: after its first few the bound follows its pace,
 * so nothing waits, and a year-2100 event is still rejected. */
static void test_sparse_partition(void **state)
{
    (void)state;
    part p;
    part_init(&p);
    uint64_t x = 7;
    int64_t t = T0;
    size_t accepted = 0, rejected = 0;
    for (int i = 0; i < 300; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        t += HOUR_MS / 4 + (int64_t)((x >> 33) % (3 * HOUR_MS)); /* 15 min to 3 h 15 apart */
        fr_evtime_verdict v = offer(&p, i == 200 ? Y2100 : t);
        accepted += v == FR_EVTIME_ACCEPT;
        for (size_t d = 0; d < p.n_dec; d++) {
            accepted += p.dec_verdict[d] == FR_EVTIME_ACCEPT;
            rejected += p.dec_verdict[d] == FR_EVTIME_FUTURE;
        }
        if (i > 20 && i != 200) assert_int_equal(v, FR_EVTIME_ACCEPT);
    }
    assert_int_equal(rejected, 1);
    assert_int_equal(accepted, 299);
    assert_true(fr_evtime_bound(p.e, &p.c) > 8 * HOUR_MS);
    fr_evtime_free(p.e);
}

static void test_too_old_and_off(void **state)
{
    (void)state;
    part p;
    part_init(&p);
    warm(&p, 20);
    const int64_t hi = fr_evtime_time(p.e);
    assert_int_equal(offer(&p, 1000), FR_EVTIME_TOO_OLD);
    assert_int_equal(offer(&p, INT64_C(946684800000) - 1), FR_EVTIME_TOO_OLD);
    assert_int_equal(offer(&p, INT64_C(946684800000)), FR_EVTIME_ACCEPT); /* far behind, but plausible */
    assert_int_equal(fr_evtime_time(p.e), hi);
    /* a too-old event is not a vote */
    assert_int_equal(offer(&p, Y2100), FR_EVTIME_HOLD);
    for (int i = 0; i < 40; i++) offer(&p, 5);
    assert_int_equal(fr_evtime_held(p.e), 1);

    /* max_ahead 0 turns the check off: held ones go at the next event, everything counts */
    p.c.max_ahead_ms = 0;
    assert_int_equal(offer(&p, hi + 1), FR_EVTIME_ACCEPT);
    assert_int_equal(p.n_dec, 1);
    assert_int_equal(p.dec_verdict[0], FR_EVTIME_ACCEPT);
    assert_int_equal(fr_evtime_time(p.e), Y2100);
    p.c.min_ts_ms = 0;
    assert_int_equal(offer(&p, 5), FR_EVTIME_ACCEPT);
    fr_evtime_free(p.e);
}

/* Whatever arrives, a partition never holds more than ahead_confirm + ahead_reject - 1 messages. */
static void test_held_is_bounded(void **state)
{
    (void)state;
    part p;
    part_init(&p);
    p.c.confirm = 5;
    p.c.reject = 7;
    uint64_t x = 11;
    size_t most = 0;
    for (int i = 0; i < 20000; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        int64_t ts = T0 + (int64_t)((x >> 20) % (400 * DAY_MS));
        fr_evtime_verdict v;
        assert_int_equal(fr_evtime_offer(p.e, &p.c, ts, i, "x", 1, &v), 0);
        if (fr_evtime_held(p.e) > most) most = fr_evtime_held(p.e);
    }
    print_message("random ts over 400 days: at most %zu held (bound %u)\n", most, 5 + 7 - 1);
    assert_true(most <= 5 + 7 - 1);
    assert_true(most >= 5);
    fr_evtime_free(p.e);
}

/* The state survives export/import exactly: the restored copy decides like the original. Every
 * truncation and a bad version or length are refused, leaving the state as it was. */
static void test_export_import(void **state)
{
    (void)state;
    part a;
    part_init(&a);
    warm(&a, 30);
    offer(&a, Y2100);
    offer(&a, fr_evtime_time(a.e) + 1000);
    offer(&a, Y2100 + 1);
    assert_int_equal(fr_evtime_held(a.e), 2);
    size_t n = fr_evtime_export(a.e, NULL, 0);
    unsigned char *buf = malloc(n);
    assert_non_null(buf);
    assert_int_equal(fr_evtime_export(a.e, buf, n), n);

    part b;
    part_init(&b);
    b.next = a.next;
    assert_int_equal(fr_evtime_import(b.e, buf, n), 0);
    assert_int_equal(fr_evtime_held(b.e), 2);
    assert_int_equal(fr_evtime_time(b.e), fr_evtime_time(a.e));
    for (int i = 0; i < 20; i++) {
        int64_t ts = fr_evtime_time(a.e) + 500;
        assert_int_equal(offer(&a, ts), offer(&b, ts));
        assert_int_equal(a.n_dec, b.n_dec);
        for (size_t d = 0; d < a.n_dec; d++) {
            assert_int_equal(a.dec_offset[d], b.dec_offset[d]);
            assert_int_equal(a.dec_verdict[d], b.dec_verdict[d]);
        }
    }
    assert_int_equal(fr_evtime_held(b.e), 0);

    /* refusals leave b as it was */
    const int64_t before = fr_evtime_time(b.e);
    for (size_t cut = 0; cut < n; cut++) assert_int_equal(fr_evtime_import(b.e, buf, cut), -1);
    unsigned char *bad = malloc(n + 1);
    memcpy(bad, buf, n);
    bad[n] = 0;
    assert_int_equal(fr_evtime_import(b.e, bad, n + 1), -1); /* trailing byte */
    bad[0] = 99;
    assert_int_equal(fr_evtime_import(b.e, bad, n), -1); /* version */
    memcpy(bad, buf, n);
    bad[n - 1 - 4 - 1] ^= 0x80; /* the last message's length: past the end */
    assert_int_equal(fr_evtime_import(b.e, bad, n), -1);
    memcpy(bad, buf, n);
    bad[1 + 7] = 0x7f; /* hi beyond year 9999 */
    assert_int_equal(fr_evtime_import(b.e, bad, n), -1);
    assert_int_equal(fr_evtime_time(b.e), before);
    assert_int_equal(fr_evtime_held(b.e), 0);
    free(bad);
    free(buf);
    fr_evtime_free(a.e);
    fr_evtime_free(b.e);
}

typedef struct {
    char names[4][32];
    size_t held[4];
    int n, fail_at;
} walked;

static int walk_one(const char *name, const void *state, size_t len, void *ctx)
{
    walked *w = ctx;
    if (w->n == w->fail_at) return -1;
    fr_evtime *e = fr_evtime_create();
    assert_int_equal(fr_evtime_import(e, state, len), 0);
    snprintf(w->names[w->n], sizeof w->names[0], "%s", name);
    w->held[w->n++] = fr_evtime_held(e);
    fr_evtime_free(e);
    return 0;
}

/* The checkpoint's blob of several partitions: sorted by name whatever the order given, each
 * state intact; a truncated blob or a refused state names the partition. */
static void test_blob_of_partitions(void **state)
{
    (void)state;
    part a, b;
    part_init(&a);
    part_init(&b);
    warm(&a, 5);
    offer(&a, Y2100);
    const fr_evtime_named parts[] = {{"topic-b/3", a.e}, {"topic-a/0", b.e}};
    size_t n = 0;
    unsigned char *blob = fr_evtime_export_all(parts, 2, &n);
    assert_non_null(blob);
    walked w = {.fail_at = -1};
    char name[64] = "x";
    assert_null(fr_evtime_walk_all(blob, n, walk_one, &w, name, sizeof name));
    assert_string_equal(name, "");
    assert_int_equal(w.n, 2);
    assert_string_equal(w.names[0], "topic-a/0");
    assert_string_equal(w.names[1], "topic-b/3");
    assert_int_equal(w.held[0], 0);
    assert_int_equal(w.held[1], 1);
    for (size_t cut = 0; cut < n; cut++) {
        walked t = {.fail_at = -1};
        assert_non_null(fr_evtime_walk_all(blob, cut, walk_one, &t, name, sizeof name));
    }
    w = (walked){.fail_at = 1};
    assert_string_equal(fr_evtime_walk_all(blob, n, walk_one, &w, name, sizeof name), "corrupt");
    assert_string_equal(name, "topic-b/3");
    free(blob);
    fr_evtime_free(a.e);
    fr_evtime_free(b.e);
}

/* ---- the pipeline ---------------------------------------------------------------------------- */

/* A stream as lines; variants point into the generated buffer or own their line (owned[i]). */
typedef struct {
    const char **line;
    size_t *len;
    char **owned;
    size_t n, cap;
} stream;

static void push(stream *s, const char *line, size_t len, char *owned)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 1024;
        s->line = realloc(s->line, s->cap * sizeof *s->line);
        s->len = realloc(s->len, s->cap * sizeof *s->len);
        s->owned = realloc(s->owned, s->cap * sizeof *s->owned);
        assert_true(s->line && s->len && s->owned);
    }
    s->line[s->n] = line;
    s->len[s->n] = len;
    s->owned[s->n++] = owned;
}

static void push_str(stream *s, const char *text)
{
    char *c = strdup(text);
    assert_non_null(c);
    push(s, c, strlen(c), c);
}

static void stream_free(stream *s)
{
    for (size_t i = 0; i < s->n; i++) free(s->owned[i]);
    free(s->line);
    free(s->len);
    free(s->owned);
}

static int64_t line_ts(const char *l)
{
    const char *p = strstr(l, "\"ts\":");
    assert_non_null(p);
    return strtoll(p + 5, NULL, 10);
}

/* The line with its ts moved by shift. */
static void push_shifted(stream *s, const char *l, int64_t shift)
{
    const char *p = strstr(l, "\"ts\":") + 5;
    char *end;
    long long ts = strtoll(p, &end, 10);
    size_t n = strlen(l) + 32;
    char *c = malloc(n);
    assert_non_null(c);
    snprintf(c, n, "%.*s%lld%s", (int)(p - l), l, ts + (long long)shift, end);
    push(s, c, strlen(c), c);
}

static lines clean_lines(void)
{
    fr_gen_opts o;
    fr_gen_defaults(&o);
    o.impressions = 10000;
    o.days = 7;
    o.seed = 9;
    o.n_users = 2000;
    o.n_ads = 200;
    return gen_lines(&o, NULL, NULL);
}

/* The generated stream ends with conversions days after its last impression, a sparse tail the
 * check holds (it waits for the partition to go on). A replay of a day's log ends like that;
 * streams compared with the check off drop it, so that both runs end on the same watermark. */
static size_t dense_end(const lines *L)
{
    int64_t last_imp = 0;
    for (size_t i = 0; i < L->n; i++)
        if (strstr(L->line[i], "\"type\":\"impression\"")) last_imp = line_ts(L->line[i]);
    size_t n = L->n;
    while (n > 0 && line_ts(L->line[n - 1]) > last_imp) n--;
    return n;
}

typedef struct {
    fr_join_counters j;
    fr_pipeline_counters c;
    uint64_t held;
    double auc_ctr, ll_ctr;
    char digest[33];
} outcome;

typedef struct {
    int64_t max_ahead_ms; /* -1: the default */
    int split_by_type;    /* three sources, as the Kafka topics: impressions, clicks, conversions */
    size_t stop_at;       /* stop (checkpoint, close) before this line and resume from the checkpoint */
} run_opts;

static const char *source_of(const run_opts *o, const char *line)
{
    if (!o->split_by_type) return "file";
    if (strstr(line, "\"type\":\"click\"")) return "clicks";
    if (strstr(line, "\"type\":\"conversion\"")) return "conversions";
    return "impressions";
}

static fr_pipeline *open_pipeline(const char *dir, const run_opts *o)
{
    fr_config c;
    fr_config_defaults(&c);
    snprintf(c.checkpoint_dir, sizeof c.checkpoint_dir, "%s", dir);
    c.redis_host[0] = '\0';
    c.checkpoint_every_samples = 1500;
    c.checkpoint_every_seconds = 0;
    if (o->max_ahead_ms >= 0) c.evtime.max_ahead_ms = o->max_ahead_ms;
    char err[512];
    fr_pipeline *p = fr_pipeline_open(&c, err, sizeof err);
    if (!p) fail_msg("open: %s", err);
    return p;
}

static outcome run_stream(const stream *s, const run_opts *o, uint64_t *held_at_stop)
{
    char *dir = tmpdir_make("evtime");
    char err[512];
    fr_pipeline *p = open_pipeline(dir, o);
    const char *names[] = {"file", "impressions", "clicks", "conversions"};
    for (int k = o->split_by_type ? 1 : 0; k < (o->split_by_type ? 4 : 1); k++)
        assert_int_equal(fr_pipeline_register_source(p, names[k], NULL), 0);
    /* offsets count per source, as Kafka's do */
    int64_t off[4] = {0, 0, 0, 0};
    for (size_t i = 0; i < s->n; i++) {
        if (i == o->stop_at) {
            if (held_at_stop) *held_at_stop = fr_pipeline_held(p);
            assert_int_equal(fr_pipeline_checkpoint(p, err, sizeof err), 0);
            fr_pipeline_close(p);
            p = open_pipeline(dir, o);
            for (int k = o->split_by_type ? 1 : 0; k < (o->split_by_type ? 4 : 1); k++) {
                int64_t next = -1;
                assert_int_equal(fr_pipeline_register_source(p, names[k], &next), 0);
                assert_int_equal(next, off[k]);
            }
        }
        const char *src = source_of(o, s->line[i]);
        int k = 0;
        while (strcmp(names[k], src) != 0) k++;
        if (fr_pipeline_message(p, src, ++off[k], s->line[i], s->len[i], err, sizeof err) != 0)
            fail_msg("message %zu: %s", i, err);
    }
    for (int k = 0; k < 4; k++) fr_pipeline_source_idle(p, names[k], 1); /* unknown names are ignored */
    assert_int_equal(fr_pipeline_tick(p), 0);
    assert_int_equal(fr_pipeline_checkpoint(p, err, sizeof err), 0);
    outcome r;
    memset(&r, 0, sizeof r);
    r.j = *fr_pipeline_join_counters(p);
    r.c = *fr_pipeline_get_counters(p);
    r.held = fr_pipeline_held(p);
    r.auc_ctr = fr_metric_auc(fr_pipeline_metric(p, FR_TASK_CTR, -1));
    r.ll_ctr = fr_metric_logloss(fr_pipeline_metric(p, FR_TASK_CTR, -1));
    /* every message is accounted for */
    uint64_t accepted = 0, rejected = 0;
    for (int t = 0; t < FR_EV_NTYPES; t++) accepted += r.j.events[t];
    for (int q = 0; q < FR_REJECT_NREASONS; q++) rejected += r.c.rejected[q];
    assert_int_equal(r.c.consumed, s->n);
    assert_int_equal(r.c.consumed, accepted + rejected + r.held);
    fr_pipeline_close(p);
    fr_ckpt *ck = fr_ckpt_open_readonly(dir, err, sizeof err);
    assert_non_null(ck);
    assert_int_equal(fr_ckpt_digest(ck, r.digest), 0);
    fr_ckpt_close(ck);
    tmpdir_remove(dir);
    return r;
}

static uint64_t joined(const outcome *o)
{
    return o->j.joined[FR_EV_IMPRESSION] + o->j.joined[FR_EV_CLICK] + o->j.joined[FR_EV_CONVERSION];
}

/* Every join and every sample of the reference: the same labels, trained in the same order. What
 * got still holds at the end (the last events of a source after a jump, waiting for it to go on)
 * the reference holds as pending join events. */
static void assert_same_joins(const char *what, const outcome *got, const outcome *ref)
{
    print_message("%-34s joins %" PRIu64 " of %" PRIu64 " (%.2f %%): impressions %" PRIu64 "/%" PRIu64
                  ", clicks %" PRIu64 "/%" PRIu64 ", conversions %" PRIu64 "/%" PRIu64
                  "; rejected ts_in_future %" PRIu64 ", ts_too_old %" PRIu64 "; held at the end %" PRIu64 "\n",
                  what, joined(got), joined(ref), 100.0 * (double)joined(got) / (double)joined(ref),
                  got->j.joined[0], ref->j.joined[0], got->j.joined[1], ref->j.joined[1], got->j.joined[2],
                  ref->j.joined[2], got->c.rejected[FR_REJECT_TS_IN_FUTURE], got->c.rejected[FR_REJECT_TS_TOO_OLD],
                  got->held);
    assert_true(joined(got) * 100 >= joined(ref) * 99);
    uint64_t pending = got->held, ref_pending = ref->held;
    for (int t = 0; t < FR_EV_NTYPES; t++) {
        assert_int_equal(got->j.joined[t], ref->j.joined[t]);
        pending += got->j.pending[t];
        ref_pending += ref->j.pending[t];
        for (int d = 0; d < FR_DROP_NREASONS; d++) assert_int_equal(got->j.dropped[t][d], ref->j.dropped[t][d]);
    }
    assert_int_equal(pending, ref_pending);
    assert_int_equal(got->c.samples_trained, ref->c.samples_trained);
    assert_true(got->auc_ctr == ref->auc_ctr && got->ll_ctr == ref->ll_ctr);
}

static stream copy_of(const lines *L, size_t n)
{
    stream s = {0};
    for (size_t i = 0; i < n; i++) push(&s, L->line[i], L->len[i], NULL);
    return s;
}

/* The clean stream with extra lines inserted before line `at[k]` (k < n). */
static stream with_inserted(const lines *L, const size_t *at, const char *const *extra, size_t n)
{
    stream s = {0};
    for (size_t i = 0, k = 0; i <= L->n; i++) {
        while (k < n && at[k] == i) push_str(&s, extra[k++]);
        if (i < L->n) push(&s, L->line[i], L->len[i], NULL);
    }
    return s;
}

static const run_opts defaults = {.max_ahead_ms = -1, .stop_at = SIZE_MAX};

static void test_pipeline_far_future_and_past(void **state)
{
    (void)state;
    lines L = clean_lines();
    stream clean = copy_of(&L, L.n);
    outcome ref = run_stream(&clean, &defaults, NULL);
    assert_int_equal(ref.c.rejected[FR_REJECT_TS_IN_FUTURE], 0);
    /* Against the clean stream without the check (today's rule before it): the stream's last
     * conversions, days after everything else, then move the watermark and mature more clicks
     * at the end; with the check they wait for the stream to go on. */
    const run_opts off = {.max_ahead_ms = 0, .stop_at = SIZE_MAX};
    outcome ref_off = run_stream(&clean, &off, NULL);
    print_message("clean stream: %" PRIu64 " joins with the check, %" PRIu64 " without (%.2f %%)\n", joined(&ref),
                  joined(&ref_off), 100.0 * (double)joined(&ref) / (double)joined(&ref_off));
    assert_true(joined(&ref) * 100 >= joined(&ref_off) * 99);
    const size_t mid = L.n / 2;

    /* one click in the year 2100 in the middle of the stream */
    const char *one[] = {"{\"type\":\"click\",\"id\":\"wild-1\",\"ts\":4102444800000}"};
    stream s1 = with_inserted(&L, (size_t[]){mid}, one, 1);
    outcome o1 = run_stream(&s1, &defaults, NULL);
    assert_int_equal(o1.c.rejected[FR_REJECT_TS_IN_FUTURE], 1);
    assert_same_joins("one year-2100 click", &o1, &ref);

    /* five of mixed types, some on one ts (they agree with each other), back to back and spread */
    const char *five[] = {
        "{\"type\":\"impression\",\"id\":\"wild-i\",\"ts\":4102444800000,\"scenario\":\"video\",\"features\":{}}",
        "{\"type\":\"click\",\"id\":\"wild-i\",\"ts\":4102444800000}",
        "{\"type\":\"conversion\",\"id\":\"wild-i\",\"ts\":4102448400000}",
        "{\"type\":\"click\",\"id\":\"wild-2\",\"ts\":9999999999999}",
        "{\"type\":\"impression\",\"id\":\"wild-3\",\"ts\":1800000000000,\"scenario\":\"music\",\"features\":{}}"};
    stream s5 = with_inserted(&L, (size_t[]){mid, mid, mid, mid + 7, mid + 400}, five, 5);
    outcome o5 = run_stream(&s5, &defaults, NULL);
    assert_int_equal(o5.c.rejected[FR_REJECT_TS_IN_FUTURE], 5);
    assert_same_joins("five far-future events", &o5, &ref);

    /* the very first event is the wild one */
    stream sf = with_inserted(&L, (size_t[]){0}, one, 1);
    outcome of = run_stream(&sf, &defaults, NULL);
    assert_int_equal(of.c.rejected[FR_REJECT_TS_IN_FUTURE], 1);
    assert_same_joins("a year-2100 click first", &of, &ref);

    /* before any plausible time (1970, 1999): rejected at once with their own reason */
    const char *past[] = {"{\"type\":\"click\",\"id\":\"old-1\",\"ts\":1000}",
                          "{\"type\":\"impression\",\"id\":\"old-2\",\"ts\":946684799999,\"scenario\":\"video\","
                          "\"features\":{}}"};
    stream sp = with_inserted(&L, (size_t[]){3, mid}, past, 2);
    outcome op = run_stream(&sp, &defaults, NULL);
    assert_int_equal(op.c.rejected[FR_REJECT_TS_TOO_OLD], 2);
    assert_int_equal(op.c.rejected[FR_REJECT_TS_IN_FUTURE], 0);
    assert_same_joins("two events before 2000", &op, &ref);

    stream_free(&clean);
    stream_free(&s1);
    stream_free(&s5);
    stream_free(&sf);
    stream_free(&sp);
    lines_free(&L);
}

/* Legitimate jumps: the second half two days later (a partition that stopped, a replay of a
 * later log), and bursts (two hours of traffic, then six quiet hours, over and over). Nothing is
 * rejected and the joins are those of the same stream with the check off. The same streams split
 * into three sources like the Kafka topics (conversions come hours apart) lose nothing either. */
static void test_pipeline_gaps_and_bursts(void **state)
{
    (void)state;
    lines L = clean_lines();
    const size_t n = dense_end(&L);
    stream gap = {0}, burst = {0};
    for (size_t i = 0; i < n; i++) {
        if (i < n / 2)
            push(&gap, L.line[i], L.len[i], NULL);
        else
            push_shifted(&gap, L.line[i], 2 * DAY_MS);
        if ((line_ts(L.line[i]) - T0) % (8 * HOUR_MS) < 2 * HOUR_MS) push(&burst, L.line[i], L.len[i], NULL);
    }
    const run_opts off = {.max_ahead_ms = 0, .stop_at = SIZE_MAX};
    const struct {
        const char *name;
        const stream *s;
        int split;
    } cases[] = {{"2-day gap", &gap, 0}, {"bursts", &burst, 0}, {"2-day gap, 3 sources", &gap, 1},
                 {"bursts, 3 sources", &burst, 1}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        run_opts on = defaults, o_off = off;
        on.split_by_type = o_off.split_by_type = cases[k].split;
        outcome ref = run_stream(cases[k].s, &o_off, NULL);
        outcome got = run_stream(cases[k].s, &on, NULL);
        assert_int_equal(got.c.rejected[FR_REJECT_TS_IN_FUTURE] + got.c.rejected[FR_REJECT_TS_TOO_OLD], 0);
        /* one source, ending dense: nothing left waiting */
        if (!cases[k].split) assert_int_equal(got.held, 0);
        assert_same_joins(cases[k].name, &got, &ref);
    }
    stream_free(&gap);
    stream_free(&burst);
    lines_free(&L);
}

/* Stopped (checkpoint, close) while messages are held, restored, run to the end: the digest of a
 * run never stopped. Held far-future events and held events of a stream that moved on. */
static void test_pipeline_restart_with_held(void **state)
{
    (void)state;
    lines L = clean_lines();
    const size_t mid = L.n / 2;
    const char *three[] = {"{\"type\":\"click\",\"id\":\"wild-1\",\"ts\":4102444800000}",
                           "{\"type\":\"click\",\"id\":\"wild-2\",\"ts\":4102444800000}",
                           "{\"type\":\"conversion\",\"id\":\"wild-3\",\"ts\":5102444800000}"};
    stream s = with_inserted(&L, (size_t[]){mid, mid + 2, mid + 3}, three, 3);
    outcome straight = run_stream(&s, &defaults, NULL);
    run_opts stop = defaults;
    stop.stop_at = mid + 8;
    uint64_t held = 0;
    outcome resumed = run_stream(&s, &stop, &held);
    print_message("stopped with %" PRIu64 " messages held; digests %s / %s\n", held, resumed.digest, straight.digest);
    assert_int_equal(held, 3);
    assert_string_equal(resumed.digest, straight.digest);
    assert_int_equal(resumed.c.rejected[FR_REJECT_TS_IN_FUTURE], 3);

    /* a jump of two days, stopped while its first events wait */
    const size_t n = dense_end(&L);
    stream gap = {0};
    for (size_t i = 0; i < n; i++) {
        if (i < n / 2)
            push(&gap, L.line[i], L.len[i], NULL);
        else
            push_shifted(&gap, L.line[i], 2 * DAY_MS);
    }
    outcome g_straight = run_stream(&gap, &defaults, NULL);
    stop.stop_at = n / 2 + 9;
    outcome g_resumed = run_stream(&gap, &stop, &held);
    print_message("stopped with %" PRIu64 " messages of a 2-day jump held\n", held);
    assert_int_equal(held, 9);
    assert_string_equal(g_resumed.digest, g_straight.digest);
    stream_free(&s);
    stream_free(&gap);
    lines_free(&L);
}

/* A stored state that does not parse is refused at start with the blob's name, never guessed. */
static void test_pipeline_refuses_corrupt_state(void **state)
{
    (void)state;
    char *dir = tmpdir_make("evtime-bad");
    char err[512];
    fr_pipeline *p = open_pipeline(dir, &defaults);
    const char *ev[] = {"{\"type\":\"click\",\"id\":\"a\",\"ts\":1764547200000}",
                        "{\"type\":\"click\",\"id\":\"b\",\"ts\":4102444800000}"};
    for (int i = 0; i < 2; i++) assert_int_equal(fr_pipeline_message(p, "file", i + 1, ev[i], strlen(ev[i]), err, sizeof err), 0);
    assert_int_equal(fr_pipeline_held(p), 1); /* the second: it vouched for the first (it is later) */
    assert_int_equal(fr_pipeline_checkpoint(p, err, sizeof err), 0);
    fr_pipeline_close(p);

    fr_ckpt *ck = fr_ckpt_open(dir, err, sizeof err);
    assert_non_null(ck);
    long n = fr_ckpt_get_blob(ck, "evtime", NULL, 0);
    assert_true(n > 20);
    unsigned char *blob = malloc((size_t)n);
    assert_int_equal(fr_ckpt_get_blob(ck, "evtime", blob, (size_t)n), n);
    fr_ckpt_batch *b = fr_ckpt_begin(ck);
    assert_int_equal(fr_ckpt_put_blob(b, "evtime", blob, (size_t)n - 3), 0);
    assert_int_equal(fr_ckpt_commit(b, err, sizeof err), 0);
    fr_ckpt_close(ck);
    fr_config c;
    fr_config_defaults(&c);
    snprintf(c.checkpoint_dir, sizeof c.checkpoint_dir, "%s", dir);
    c.redis_host[0] = '\0';
    assert_null(fr_pipeline_open(&c, err, sizeof err));
    print_message("%s\n", err);
    assert_non_null(strstr(err, "blob \"evtime\", source file) is truncated"));
    free(blob);
    tmpdir_remove(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_events),
        cmocka_unit_test(test_one_wild_event),
        cmocka_unit_test(test_a_handful),
        cmocka_unit_test(test_stream_moved_on),
        cmocka_unit_test(test_sparse_partition),
        cmocka_unit_test(test_too_old_and_off),
        cmocka_unit_test(test_held_is_bounded),
        cmocka_unit_test(test_export_import),
        cmocka_unit_test(test_blob_of_partitions),
        cmocka_unit_test(test_pipeline_far_future_and_past),
        cmocka_unit_test(test_pipeline_gaps_and_bursts),
        cmocka_unit_test(test_pipeline_restart_with_held),
        cmocka_unit_test(test_pipeline_refuses_corrupt_state),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
