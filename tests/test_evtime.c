/* Tests of the event-time check (fr_evtime): the rule on hand-made partitions (one wild event, a
 * handful, a wild first event, a stream that moved on, a sparse partition, the bound on what is
 * held, the checkpoint format). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fr_evtime.h"

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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
