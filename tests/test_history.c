/* Tests of fr_history (the progressive metrics over event time) and of its keys in a checkpoint
 * (store/fr_ckpt_history.c): bucketing by event time, bounded retention, the records and the state
 * through their codecs and through RocksDB, and the refusal of malformed stored bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fr_bytes.h"
#include "fr_ckpt.h"
#include "fr_ckpt_history.h"
#include "fr_history.h"
#include "tmpdir.h"

enum { N = 6, STORE_MAX = 64 };

/* A store the size of the tests: which records exist, with their bytes. */
typedef struct {
    unsigned char *bytes[STORE_MAX];
    size_t len[STORE_MAX];
    int puts, drops;
} store;

static int store_drop(void *ctx, uint64_t seq)
{
    store *s = ctx;
    assert_true(seq < STORE_MAX);
    free(s->bytes[seq]);
    s->bytes[seq] = NULL;
    s->drops++;
    return 0;
}

static int store_put(void *ctx, uint64_t seq, const void *bytes, size_t len)
{
    store *s = ctx;
    assert_true(seq < STORE_MAX);
    free(s->bytes[seq]);
    s->bytes[seq] = malloc(len);
    memcpy(s->bytes[seq], bytes, len);
    s->len[seq] = len;
    s->puts++;
    return 0;
}

static void store_free(store *s)
{
    for (int i = 0; i < STORE_MAX; i++) free(s->bytes[i]);
    memset(s, 0, sizeof *s);
}

static void checkpoint(fr_history *h, store *s)
{
    assert_int_equal(fr_history_save_records(h, store_drop, store_put, s), 0);
    fr_history_committed(h);
}

static fr_metric *metrics(void)
{
    fr_metric *m = calloc(N, sizeof *m); /* 64 KiB each: not on the stack */
    assert_non_null(m);
    return m;
}

/* One scored sample at ts into metric i (and into "all", N - 1), as the pipeline does. */
static void score(fr_history *h, fr_metric *running, int64_t ts, int i, double pred, double label)
{
    fr_metric *open = fr_history_advance(h, ts, running);
    assert_non_null(open);
    fr_metric_add(&running[i], pred, label, 1);
    fr_metric_add(&open[i], pred, label, 1);
    fr_metric_add(&running[N - 1], pred, label, 1);
    fr_metric_add(&open[N - 1], pred, label, 1);
}

static fr_history_record *decoded(const store *s, uint64_t seq)
{
    assert_non_null(s->bytes[seq]);
    fr_history_record *r = malloc(sizeof *r);
    char why[256];
    if (fr_history_record_decode(r, s->bytes[seq], s->len[seq], why, sizeof why) != 0)
        fail_msg("record %d refused: %s", (int)seq, why);
    assert_int_equal(r->seq, seq);
    return r;
}

static void test_buckets_by_event_time(void **state)
{
    (void)state;
    fr_history *h = fr_history_create(N, 1000, 100);
    fr_metric *run = metrics();
    assert_int_equal(fr_history_open_start(h), INT64_MIN);
    score(h, run, 500, 0, 0.9, 1);
    score(h, run, 999, 0, 0.1, 0);
    assert_int_equal(fr_history_open_start(h), 0);
    assert_int_equal(fr_history_closed(h), 0);
    score(h, run, 1000, 1, 0.3, 1); /* closes [0, 1000) */
    assert_int_equal(fr_history_closed(h), 1);
    assert_int_equal(fr_history_open_start(h), 1000);
    score(h, run, 200, 1, 0.2, 0); /* late: counted in the open bucket, the closed one never changes */
    score(h, run, 5500, 0, 0.6, 0); /* closes [1000, 2000); 2000..5000 held nothing: no record */
    assert_int_equal(fr_history_closed(h), 2);
    assert_int_equal(fr_history_open_start(h), 5000);

    store s = {0};
    checkpoint(h, &s);
    assert_int_equal(s.puts, 2);
    fr_history_record *r0 = decoded(&s, 0), *r1 = decoded(&s, 1);
    assert_int_equal(r0->start_ms, 0);
    assert_int_equal(r0->width_ms, 1000);
    assert_int_equal(r0->n, N);
    assert_int_equal(r0->bucket[0].count, 2);
    assert_true(r0->bucket[0].auc == 1.0);        /* 0.9 positive above 0.1 negative */
    assert_true(r0->bucket[0].label_sum == 1.0);
    assert_int_equal(r0->bucket[1].count, 0);
    assert_int_equal(r0->total[N - 1].count, 2);  /* the running metrics when it closed */
    assert_int_equal(r1->start_ms, 1000);
    assert_int_equal(r1->bucket[1].count, 2);     /* ts 1000 and the late ts 200 */
    assert_int_equal(r1->bucket[N - 1].count, 2);
    assert_int_equal(r1->total[N - 1].count, 4);
    assert_true(fabs(r1->bucket[1].loss - (-log(0.3) - log(0.8))) < 1e-9);
    assert_true(r1->bucket[1].pred_sum == 0.5);
    assert_true(r1->total[N - 1].auc == 1.0);     /* positives 0.9, 0.3 above negatives 0.1, 0.2 */
    /* the open bucket holds the last sample only */
    assert_int_equal(fr_history_open_metrics(h)[N - 1].count, 1);
    /* nothing again until another bucket closes */
    checkpoint(h, &s);
    assert_int_equal(s.puts, 2);
    free(r0);
    free(r1);
    store_free(&s);
    free(run);
    fr_history_free(h);
}

/* keep 3: only the newest three records exist, whatever the checkpoints did in between, and what
 * waits for a checkpoint stays within keep. */
static void test_bounded_retention(void **state)
{
    (void)state;
    store a = {0}, b = {0};
    fr_history *ha = fr_history_create(N, 10, 3), *hb = fr_history_create(N, 10, 3);
    fr_metric *ra = metrics(), *rb = metrics();
    for (int i = 0; i < 11; i++) { /* closes 10 buckets */
        score(ha, ra, 10 * i, i % 3, 0.5, i & 1);
        score(hb, rb, 10 * i, i % 3, 0.5, i & 1);
        checkpoint(ha, &a); /* a checkpoint after every bucket */
    }
    checkpoint(hb, &b); /* one at the end */
    assert_int_equal(fr_history_closed(ha), 10);
    for (int i = 0; i < STORE_MAX; i++) {
        assert_int_equal(a.bytes[i] != NULL, i >= 7 && i < 10);
        assert_int_equal(b.bytes[i] != NULL, i >= 7 && i < 10);
        if (a.bytes[i]) assert_memory_equal(a.bytes[i], b.bytes[i], a.len[i]);
    }
    assert_int_equal(b.puts, 3); /* the older seven never left memory, and were never kept there */
    assert_int_equal(a.puts, 10);
    /* the state blobs agree too: the checkpoints' timing is not in the stored content */
    size_t la = fr_history_encode_state(ha, NULL, 0), lb = fr_history_encode_state(hb, NULL, 0);
    assert_int_equal(la, lb);
    unsigned char *sa = malloc(la), *sb = malloc(lb);
    fr_history_encode_state(ha, sa, la);
    fr_history_encode_state(hb, sb, lb);
    assert_memory_equal(sa, sb, la);
    free(sa);
    free(sb);
    store_free(&a);
    store_free(&b);
    free(ra);
    free(rb);
    fr_history_free(ha);
    fr_history_free(hb);
}

/* A restart from the state blob records the same history as a run never stopped. */
static void test_state_round_trip_and_restart(void **state)
{
    (void)state;
    store a = {0}, b = {0};
    fr_history *ha = fr_history_create(N, 100, 50), *hb = fr_history_create(N, 100, 50);
    fr_metric *ra = metrics(), *rb = metrics();
    uint64_t seed = 7;
    for (int i = 0; i < 400; i++) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        double p = (double)(seed >> 11) / 9007199254740992.0;
        int64_t ts = i * 3 + (int64_t)(seed % 7);
        score(ha, ra, ts, i % 4, p, (seed >> 3) % 3 == 0);
        score(hb, rb, ts, i % 4, p, (seed >> 3) % 3 == 0);
        if (i == 150) {
            /* b stops: its state goes through the blob into a new history */
            checkpoint(hb, &b);
            size_t len = fr_history_encode_state(hb, NULL, 0);
            unsigned char *blob = malloc(len);
            fr_history_encode_state(hb, blob, len);
            fr_history_free(hb);
            hb = fr_history_create(N, 100, 50);
            char why[256];
            if (fr_history_decode_state(hb, blob, len, why, sizeof why) != 0) fail_msg("state refused: %s", why);
            size_t again = fr_history_encode_state(hb, NULL, 0);
            unsigned char *blob2 = malloc(again);
            fr_history_encode_state(hb, blob2, again);
            assert_int_equal(again, len);
            assert_memory_equal(blob, blob2, len);
            free(blob);
            free(blob2);
        }
    }
    checkpoint(ha, &a);
    checkpoint(hb, &b);
    assert_true(fr_history_closed(ha) > 5);
    assert_int_equal(fr_history_closed(ha), fr_history_closed(hb));
    for (uint64_t i = 0; i < fr_history_closed(ha); i++) {
        assert_int_equal(a.len[i], b.len[i]);
        assert_memory_equal(a.bytes[i], b.bytes[i], a.len[i]);
    }
    store_free(&a);
    store_free(&b);
    free(ra);
    free(rb);
    fr_history_free(ha);
    fr_history_free(hb);
}

static fr_history_record *sample_record(void)
{
    fr_history_record *r = calloc(1, sizeof *r);
    r->seq = 4;
    r->start_ms = 7200000;
    r->width_ms = 3600000;
    r->n = N;
    for (int i = 0; i < N; i++) {
        r->bucket[i] = (fr_history_stat){.count = 10 + i, .weight = 10, .loss = 2.5, .label_sum = 3,
                                         .pred_sum = 2.75, .auc = 0.625};
        r->total[i] = (fr_history_stat){.count = 100 + i, .weight = 100, .loss = 20, .label_sum = 30,
                                        .pred_sum = 29, .auc = 0.7};
    }
    return r;
}

static void expect_refused(const unsigned char *bytes, size_t len, const char *want)
{
    fr_history_record r;
    char why[256] = "";
    assert_int_equal(fr_history_record_decode(&r, bytes, len, why, sizeof why), -1);
    if (!strstr(why, want)) fail_msg("refused, but \"%s\" does not say \"%s\"", why, want);
}

static void test_record_round_trip_and_refusals(void **state)
{
    (void)state;
    fr_history_record *r = sample_record(), back;
    size_t len = fr_history_record_encode(r, NULL, 0);
    assert_int_equal(len, 27 + N * 96);
    unsigned char *b = malloc(len), *c = malloc(len + 1);
    fr_history_record_encode(r, b, len);
    char why[256];
    assert_int_equal(fr_history_record_decode(&back, b, len, why, sizeof why), 0);
    assert_int_equal(back.seq, 4);
    assert_int_equal(back.start_ms, 7200000);
    assert_memory_equal(back.bucket, r->bucket, N * sizeof r->bucket[0]);
    assert_memory_equal(back.total, r->total, N * sizeof r->total[0]);
    /* every cut is refused */
    for (size_t cut = 0; cut < len; cut++) {
        fr_history_record x;
        assert_int_equal(fr_history_record_decode(&x, b, cut, why, sizeof why), -1);
    }
    memcpy(c, b, len);
    c[len] = 0;
    expect_refused(c, len + 1, "bytes");
#define BAD(field_offset, put, want)                                                                                   \
    do {                                                                                                               \
        memcpy(c, b, len);                                                                                             \
        put;                                                                                                           \
        expect_refused(c, len, want);                                                                                  \
        (void)(field_offset);                                                                                          \
    } while (0)
    BAD(0, c[0] = 2, "version 2");
    BAD(25, fr_put_u16le(c + 25, 0), "0 metrics");
    BAD(25, fr_put_u16le(c + 25, 65), "65 metrics");
    BAD(17, fr_put_u64le(c + 17, 0), "width");
    BAD(9, fr_put_u64le(c + 9, 7200001), "multiple");
    BAD(9, fr_put_u64le(c + 9, (uint64_t)-3600000), "multiple");
    /* metric 2's bucket: count at 27 + 2 * 96, weight 8 bytes on, then loss, label_sum, pred_sum, auc */
    const size_t m2 = 27 + 2 * 96;
    BAD(m2, fr_put_f64le(c + m2 + 8, NAN), "metric 2, bucket: a sum");
    BAD(m2, fr_put_f64le(c + m2 + 16, -1), "metric 2, bucket: a sum");
    BAD(m2, fr_put_f64le(c + m2 + 40, 1.5), "AUC");
    BAD(m2, fr_put_f64le(c + m2 + 48 + 32, INFINITY), "metric 2, total: a sum");
    BAD(m2, fr_put_u64le(c + m2 + 48, 3), "its total counts 3 samples, its bucket 12");
#undef BAD
    free(b);
    free(c);
    free(r);
}

static void test_state_refusals(void **state)
{
    (void)state;
    fr_history *h = fr_history_create(N, 1000, 10);
    fr_metric *run = metrics();
    score(h, run, 100, 0, 0.4, 1);
    score(h, run, 1100, 0, 0.4, 0);
    size_t len = fr_history_encode_state(h, NULL, 0);
    unsigned char *b = malloc(len), *c = malloc(len + 1);
    fr_history_encode_state(h, b, len);
    fr_history *into = fr_history_create(N, 1000, 10), *other = fr_history_create(N + 3, 1000, 10);
    char why[256];
    assert_int_equal(fr_history_decode_state(into, b, len, why, sizeof why), 0);
    assert_int_equal(fr_history_open_start(into), 1000);
    assert_int_equal(fr_history_closed(into), 1);
    for (size_t cut = 0; cut < len; cut++) assert_int_equal(fr_history_decode_state(into, b, cut, why, sizeof why), -1);
    memcpy(c, b, len);
    c[len] = 0;
    assert_int_equal(fr_history_decode_state(into, c, len + 1, why, sizeof why), -1);
    assert_non_null(strstr(why, "bytes after"));
    assert_int_equal(fr_history_decode_state(other, b, len, why, sizeof why), -1);
    assert_non_null(strstr(why, "6 metrics, the configuration has 9"));
    /* version u8, width i64, seq u64, first u64, open start i64, n u16 */
    memcpy(c, b, len);
    fr_put_u64le(c + 17, 2); /* 2 deleted of 1 closed */
    assert_int_equal(fr_history_decode_state(into, c, len, why, sizeof why), -1);
    assert_non_null(strstr(why, "deleted"));
    memcpy(c, b, len);
    fr_put_u64le(c + 25, 1001);
    assert_int_equal(fr_history_decode_state(into, c, len, why, sizeof why), -1);
    assert_non_null(strstr(why, "open bucket"));
    memcpy(c, b, len);
    fr_put_u64le(c + 25, (uint64_t)INT64_MIN); /* none open, but its metrics hold samples */
    assert_int_equal(fr_history_decode_state(into, c, len, why, sizeof why), -1);
    assert_non_null(strstr(why, "no bucket is open"));
    memcpy(c, b, len);
    fr_put_u64le(c + 1, 0);
    assert_int_equal(fr_history_decode_state(into, c, len, why, sizeof why), -1);
    assert_non_null(strstr(why, "width"));
    /* a refused state leaves the history as it was */
    assert_int_equal(fr_history_open_start(into), 1000);
    free(b);
    free(c);
    free(run);
    fr_history_free(h);
    fr_history_free(into);
    fr_history_free(other);
}

typedef struct {
    uint64_t seq[16];
    int n;
} seen;

static int see(const fr_history_record *r, void *ctx)
{
    seen *s = ctx;
    s->seq[s->n++] = r->seq;
    return 0;
}

/* Through RocksDB: the records a checkpoint writes come back in seq order, retention deletes, the
 * state restores, and a malformed or misnamed record blob is refused by name. */
static void test_in_a_checkpoint(void **state)
{
    (void)state;
    char *dir = tmpdir_make("history");
    char err[512];
    fr_ckpt *ck = fr_ckpt_open(dir, err, sizeof err);
    if (!ck) fail_msg("open: %s", err);
    fr_history *h = fr_history_create(N, 10, 4);
    fr_metric *run = metrics();
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 3; i++) score(h, run, 10 * (3 * round + i), i, 0.3, i == 1);
        fr_ckpt_batch *b = fr_ckpt_begin(ck);
        assert_int_equal(fr_ckpt_put_history(b, h), 0);
        assert_int_equal(fr_ckpt_put_blob(b, "zzz", "x", 1), 0); /* a blob after the records */
        if (fr_ckpt_commit(b, err, sizeof err) != 0) fail_msg("commit: %s", err);
        fr_history_committed(h);
    }
    /* 8 closed (the ninth bucket is open), the newest 4 kept */
    seen s = {0};
    assert_int_equal(fr_ckpt_foreach_history(ck, see, &s, err, sizeof err), 0);
    assert_int_equal(s.n, 4);
    for (int i = 0; i < 4; i++) assert_int_equal(s.seq[i], 4 + i);
    fr_history *back = fr_history_create(N, 10, 4);
    assert_int_equal(fr_ckpt_load_history(ck, back, err, sizeof err), 1);
    assert_int_equal(fr_history_closed(back), 8);
    assert_int_equal(fr_history_open_start(back), 80);

    /* a record cut short, then one under a name that is not a seq */
    fr_ckpt_batch *b = fr_ckpt_begin(ck);
    assert_int_equal(fr_ckpt_put_blob(b, "history.00000000000000000005", "\x01\x05", 2), 0);
    if (fr_ckpt_commit(b, err, sizeof err) != 0) fail_msg("commit: %s", err);
    s.n = 0;
    assert_int_equal(fr_ckpt_foreach_history(ck, see, &s, err, sizeof err), -1);
    assert_non_null(strstr(err, "blob \"history.00000000000000000005\""));
    assert_non_null(strstr(err, "cut short"));
    b = fr_ckpt_begin(ck);
    assert_int_equal(fr_ckpt_delete_blob(b, "history.00000000000000000005"), 0);
    assert_int_equal(fr_ckpt_put_blob(b, "history.x", "", 0), 0);
    if (fr_ckpt_commit(b, err, sizeof err) != 0) fail_msg("commit: %s", err);
    assert_int_equal(fr_ckpt_foreach_history(ck, see, &s, err, sizeof err), -1);
    assert_non_null(strstr(err, "blob \"history.x\""));
    /* a state blob of another size of metrics */
    fr_history *wide = fr_history_create(N + 3, 10, 4);
    assert_int_equal(fr_ckpt_load_history(ck, wide, err, sizeof err), -1);
    assert_non_null(strstr(err, "blob \"history\""));
    fr_ckpt_close(ck);
    /* a checkpoint from before the history: nothing to restore, not an error */
    char dir2[600];
    snprintf(dir2, sizeof dir2, "%s/old", dir);
    ck = fr_ckpt_open(dir2, err, sizeof err);
    assert_non_null(ck);
    assert_int_equal(fr_ckpt_load_history(ck, wide, err, sizeof err), 0);
    fr_ckpt_close(ck);
    fr_history_free(h);
    fr_history_free(back);
    fr_history_free(wide);
    free(run);
    tmpdir_remove(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buckets_by_event_time),
        cmocka_unit_test(test_bounded_retention),
        cmocka_unit_test(test_state_round_trip_and_restart),
        cmocka_unit_test(test_record_round_trip_and_refusals),
        cmocka_unit_test(test_state_refusals),
        cmocka_unit_test(test_in_a_checkpoint),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
