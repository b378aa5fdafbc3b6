/* Tests of fr_join across checkpoints: restarts from a checkpoint must not change a single emitted
 * byte (hand-written and random logs, every cut), the dirty sets are exact, stored blobs are validated,
 * and the learner's prior reaches the attribution sample. The shared harness is
 * tests/support/join_harness.h. */
#include "join_harness.h"

/* Refusal messages of fr_join_load_entry. */
static char g_err[512];

/* ---- checkpoint store (what fr_ckpt does with the dirty sets) ---- */

typedef struct {
    char id[FR_ID_MAX + 1];
    size_t id_len;
    uint8_t *bytes;
    size_t len;
} kv;

typedef struct {
    kv *v;
    size_t n, cap;
    uint8_t meta[1024];
    size_t meta_len;
} store;

static long store_find(const store *st, const char *id, size_t id_len)
{
    for (size_t i = 0; i < st->n; i++)
        if (st->v[i].id_len == id_len && memcmp(st->v[i].id, id, id_len) == 0) return (long)i;
    return -1;
}

static int store_apply(const char *id, size_t id_len, const void *bytes, size_t len, void *ctx)
{
    store *st = ctx;
    long i = store_find(st, id, id_len);
    if (len == 0) {
        /* Exactness: a tombstone only for an id the store holds. */
        assert_true(i >= 0);
        free(st->v[i].bytes);
        st->v[i] = st->v[--st->n];
        return 0;
    }
    if (i < 0) {
        if (st->n == st->cap) {
            st->cap = st->cap ? 2 * st->cap : 16;
            st->v = realloc(st->v, st->cap * sizeof *st->v);
            assert_non_null(st->v);
        }
        i = (long)st->n++;
        memcpy(st->v[i].id, id, id_len);
        st->v[i].id_len = id_len;
    } else {
        free(st->v[i].bytes);
    }
    st->v[i].bytes = malloc(len);
    assert_non_null(st->v[i].bytes);
    memcpy(st->v[i].bytes, bytes, len);
    st->v[i].len = len;
    return 0;
}

static void store_free(store *st)
{
    for (size_t i = 0; i < st->n; i++) free(st->v[i].bytes);
    free(st->v);
    memset(st, 0, sizeof *st);
}

static void store_copy(store *dst, const store *src)
{
    memset(dst, 0, sizeof *dst);
    for (size_t i = 0; i < src->n; i++) store_apply(src->v[i].id, src->v[i].id_len, src->v[i].bytes, src->v[i].len, dst);
    memcpy(dst->meta, src->meta, src->meta_len);
    dst->meta_len = src->meta_len;
}

static void expect_stores_equal(const store *a, const store *b)
{
    assert_int_equal(a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        long k = store_find(b, a->v[i].id, a->v[i].id_len);
        assert_true(k >= 0);
        assert_int_equal(a->v[i].len, b->v[k].len);
        assert_memory_equal(a->v[i].bytes, b->v[k].bytes, a->v[i].len);
    }
    assert_int_equal(a->meta_len, b->meta_len);
    assert_memory_equal(a->meta, b->meta, a->meta_len);
}

/* Spilling in check_restarts and restore: SIZE_MAX = no store; else the joins read spilled
 * entries back from their test store and keep at most this many bodies after each checkpoint. */
static size_t g_spill_keep = SIZE_MAX;
static size_t g_store_reads;
static int g_store_fail; /* 1: reads fail (-2) */

static long store_get(void *ctx, const char *id, size_t id_len, void *buf, size_t cap)
{
    const store *st = ctx;
    if (g_store_fail) return -2;
    long i = store_find(st, id, id_len);
    if (i < 0) return -1;
    g_store_reads++;
    memcpy(buf, st->v[i].bytes, st->v[i].len < cap ? st->v[i].len : cap);
    return (long)st->v[i].len;
}

static void attach_store(fr_join *j, const store *st)
{
    if (g_spill_keep == SIZE_MAX) return;
    fr_join_store s = {store_get, (void *)st};
    fr_join_set_store(j, &s);
}

static void checkpoint(fr_join *j, store *st)
{
    assert_int_equal(fr_join_foreach_dirty(j, store_apply, st), 0);
    fr_join_clear_dirty(j);
    st->meta_len = fr_join_export_meta(j, st->meta, sizeof st->meta);
    assert_true(st->meta_len <= sizeof st->meta);
    /* The store holds exactly the live entries. */
    assert_int_equal(st->n, fr_join_entry_count(j));
    if (g_spill_keep != SIZE_MAX) {
        fr_join_spill(j, g_spill_keep);
        assert_true(fr_join_cached_count(j) <= g_spill_keep);
    }
}

static fr_join *restore(const store *st)
{
    fr_join *j = new_join();
    attach_store(j, st);
    assert_int_equal(fr_join_import_meta(j, st->meta, st->meta_len), 0);
    for (size_t i = 0; i < st->n; i++)
        assert_int_equal(
            fr_join_load_entry(j, st->v[i].id, st->v[i].id_len, st->v[i].bytes, st->v[i].len, g_err, sizeof g_err), 0);
    assert_int_equal(fr_join_entry_count(j), st->n);
    /* Restored state is the checkpoint: nothing is dirty. */
    store none = {0};
    assert_int_equal(fr_join_foreach_dirty(j, store_apply, &none), 0);
    assert_int_equal(none.n, 0);
    return j;
}

/* ---- restart equivalence ---- */

typedef struct {
    int advance; /* 0: add ev; 1: advance to wm */
    fr_event ev;
    int64_t wm;
} step;

typedef struct {
    step *s;
    size_t n, cap;
} script;

static void push(script *sc, step st)
{
    if (sc->n == sc->cap) {
        sc->cap = sc->cap ? 2 * sc->cap : 64;
        sc->s = realloc(sc->s, sc->cap * sizeof *sc->s);
        assert_non_null(sc->s);
    }
    sc->s[sc->n++] = st;
}
static void s_ev(script *sc, fr_event ev) { push(sc, (step){.ev = ev}); }
static void s_adv(script *sc, int64_t wm) { push(sc, (step){.advance = 1, .wm = wm}); }

static void run_step(fr_join *j, const step *st, sink *out)
{
    if (st->advance)
        assert_int_equal(fr_join_advance(j, st->wm, collect, out), 0);
    else
        assert_int_equal(fr_join_add(j, &st->ev, collect, out), 0);
    check_invariant(j);
}

/* Runs the script straight through, then for each cut point: checkpoint every `every` steps and at
 * the cut, restore into a fresh join, feed the rest to both, and compare every emitted byte, the
 * counters, and the stores both keep writing. */
static void check_restarts(const script *sc, size_t cut_stride)
{
    sink ref = {0};
    fr_join *r = new_join();
    ref.j = r;
    for (size_t i = 0; i < sc->n; i++) run_step(r, &sc->s[i], &ref);
    const fr_join_counters ref_n = *fr_join_get_counters(r);
    fr_join_free(r);

    const size_t cadence[] = {1, 3, 7};
    for (size_t ci = 0; ci < 3; ci++) {
        for (size_t cut = 0; cut <= sc->n; cut += cut_stride) {
            sink oa = {0}, ob = {0};
            store sa = {0}, sb = {0};
            fr_join *a = new_join();
            attach_store(a, &sa);
            oa.j = a;
            for (size_t i = 0; i < cut; i++) {
                run_step(a, &sc->s[i], &oa);
                if ((i + 1) % cadence[ci] == 0) checkpoint(a, &sa);
            }
            checkpoint(a, &sa);
            store_copy(&sb, &sa);
            fr_join *b = restore(&sb);
            ob.j = b;
            const size_t before = oa.n;
            for (size_t i = cut; i < sc->n; i++) {
                run_step(a, &sc->s[i], &oa);
                run_step(b, &sc->s[i], &ob);
                assert_int_equal(oa.n - before, ob.n);
                assert_memory_equal(fr_join_get_counters(a), fr_join_get_counters(b), sizeof(fr_join_counters));
                assert_int_equal(fr_join_watermark(a), fr_join_watermark(b));
                assert_int_equal(fr_join_entry_count(a), fr_join_entry_count(b));
                if ((i + 1) % cadence[ci] == 0) {
                    checkpoint(a, &sa);
                    checkpoint(b, &sb);
                    expect_stores_equal(&sa, &sb);
                }
            }
            checkpoint(a, &sa);
            checkpoint(b, &sb);
            expect_stores_equal(&sa, &sb);
            if (ob.n) assert_memory_equal(oa.s + before, ob.s, ob.n * sizeof(fr_sample));
            /* Checkpointing never changes what the join does. */
            assert_int_equal(oa.n, ref.n);
            if (ref.n) assert_memory_equal(oa.s, ref.s, ref.n * sizeof(fr_sample));
            assert_memory_equal(fr_join_get_counters(a), &ref_n, sizeof ref_n);
            fr_join_free(a);
            fr_join_free(b);
            free(oa.s);
            free(ob.s);
            store_free(&sa);
            store_free(&sb);
        }
    }
    free(ref.s);
}

static void test_restore_mid_stream(void **state)
{
    (void)state;
    script sc = {0};
    s_adv(&sc, 900);
    s_ev(&sc, make_event(FR_EV_CONVERSION, "e", 1050)); /* early conversion, click, impression */
    s_ev(&sc, make_event(FR_EV_CLICK, "e", 1005));
    s_ev(&sc, imp_ev("a", 1000, 1, 0.5f));
    s_ev(&sc, imp_ev("b", 1000, 2, 1.0f));
    s_ev(&sc, make_event(FR_EV_CLICK, "a", 1004));
    s_ev(&sc, make_event(FR_EV_CLICK, "a", 1004)); /* duplicate */
    s_ev(&sc, make_event(FR_EV_CLICK, "o", 1008)); /* orphan to be */
    s_ev(&sc, imp_ev("e", 1000, 0, 1.0f));
    s_ev(&sc, make_event(FR_EV_CONVERSION, "b", 1006)); /* held, then not clicked */
    s_ev(&sc, imp_ev("c", 1002, 3, 0.25f));
    s_ev(&sc, make_event(FR_EV_CLICK, "c", 1013)); /* outside window */
    s_adv(&sc, 1005);
    s_ev(&sc, make_event(FR_EV_CONVERSION, "a", 1060));
    s_ev(&sc, imp_ev("d", 998, 0, 1.0f)); /* behind the watermark, window still open */
    s_ev(&sc, make_event(FR_EV_CLICK, "d", 1001));
    s_adv(&sc, 1011);
    s_ev(&sc, make_event(FR_EV_CLICK, "b", 1003)); /* late: b's CTR sample is out */
    s_ev(&sc, imp_ev("f", 1010, 0, 1.0f));
    s_adv(&sc, 1013);
    s_ev(&sc, make_event(FR_EV_CLICK, "f", 1020));
    s_adv(&sc, 1017);
    s_ev(&sc, imp_ev("o", 1000, 0, 1.0f)); /* late, o's click still held */
    s_adv(&sc, 1030);
    s_ev(&sc, make_event(FR_EV_CONVERSION, "a", 1070)); /* duplicate conversion */
    s_ev(&sc, make_event(FR_EV_CONVERSION, "d", 1101)); /* edge: click 1001 + 100 */
    s_ev(&sc, make_event(FR_EV_CONVERSION, "b", 1040)); /* b gone: held as orphan */
    s_ev(&sc, imp_ev("g", 1100, 0, 1.0f));
    s_ev(&sc, make_event(FR_EV_CLICK, "g", 1100));
    s_adv(&sc, 1060);
    s_adv(&sc, 1105);
    s_ev(&sc, make_event(FR_EV_CONVERSION, "g", 1150));
    s_adv(&sc, 1111);
    s_ev(&sc, make_event(FR_EV_CONVERSION, "g", 1151));
    s_adv(&sc, 1300);
    s_ev(&sc, imp_ev("a", 1500, 0, 1.0f)); /* the id again after its entry is gone */
    s_ev(&sc, make_event(FR_EV_CLICK, "a", 1501));
    s_adv(&sc, 1700);
    check_restarts(&sc, 1);

    /* And the exact outcome of the script. */
    harness h;
    h_init(&h);
    for (size_t i = 0; i < sc.n; i++) run_step(h.j, &sc.s[i], &h.out);
    assert_int_equal(h.out.n, 14);
    expect_ctr_w(&h.out.s[0], "d", 1008, 1, 1.0f, 0);
    expect_ctr_w(&h.out.s[1], "a", 1010, 1, 2.0f, 1);
    expect_ctr_w(&h.out.s[2], "b", 1010, 0, 1.0f, 2);
    expect_ctr_w(&h.out.s[3], "e", 1010, 1, 1.0f, 0);
    expect_ctr_w(&h.out.s[4], "c", 1012, 0, 4.0f, 3);
    expect_ctr_w(&h.out.s[5], "f", 1020, 1, 1.0f, 0);
    expect_attr_w(&h.out.s[6], "d", 1101, 1, 1.0f, 0);
    expect_attr_w(&h.out.s[7], "a", 1104, 1, 2.0f, 1);
    expect_attr_w(&h.out.s[8], "e", 1105, 1, 1.0f, 0);
    expect_ctr_w(&h.out.s[9], "g", 1110, 1, 1.0f, 0);
    expect_attr_w(&h.out.s[10], "f", 1120, 0, 1.0f, 0);
    expect_attr_w(&h.out.s[11], "g", 1200, 1, 1.0f, 0);
    expect_ctr_w(&h.out.s[12], "a", 1510, 1, 1.0f, 0);
    expect_attr_w(&h.out.s[13], "a", 1601, 0, 1.0f, 0);
    expect_counts(h.j, FR_EV_IMPRESSION, (counts){.events = 9, .joined = 8, .late = 1});
    expect_counts(h.j, FR_EV_CLICK, (counts){.events = 10, .joined = 6, .dup = 1, .late = 1, .orphan = 1, .outside = 1});
    expect_counts(h.j, FR_EV_CONVERSION, (counts){.events = 8, .joined = 4, .dup = 2, .orphan = 1, .not_clicked = 1});
    assert_int_equal(fr_join_entry_count(h.j), 0);
    h_free(&h);
    free(sc.s);
}

static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}
static int64_t rng_range(uint64_t *s, int64_t lo, int64_t hi) { return lo + (int64_t)(rng_next(s) % (uint64_t)(hi - lo + 1)); }

typedef struct {
    fr_event ev;
    int64_t arrival;
} timed;

static int by_arrival(const void *a, const void *b)
{
    const timed *x = a, *y = b;
    return (x->arrival > y->arrival) - (x->arrival < y->arrival);
}

/* Random logs with every kind of disorder: duplicates, early clicks and conversions, events on
 * both sides of every window, ids reused, impressions late beyond the click window. */
static void random_script(script *sc, uint64_t seed, int n_ids)
{
    uint64_t rs = seed;
    timed *t = calloc((size_t)n_ids * 6, sizeof *t);
    assert_non_null(t);
    size_t n = 0;
    for (int i = 0; i < n_ids; i++) {
        char id[32];
        snprintf(id, sizeof id, "r%d", (int)rng_range(&rs, 0, n_ids * 3 / 4));
        int64_t its = rng_range(&rs, 1000, 3000);
        float rate = rng_range(&rs, 0, 3) == 0 ? 0.5f : 1.0f;
        t[n++] = (timed){imp_ev(id, its, (int32_t)rng_range(&rs, 0, 3), rate), its + rng_range(&rs, -5, 40)};
        if (rng_range(&rs, 0, 9) == 0) t[n++] = (timed){imp_ev(id, its, 0, 1.0f), its + rng_range(&rs, 0, 60)};
        if (rng_range(&rs, 0, 1) == 0) {
            int64_t cts = its + rng_range(&rs, -2, CW + 2);
            t[n++] = (timed){make_event(FR_EV_CLICK, id, cts), cts + rng_range(&rs, -20, 20)};
            if (rng_range(&rs, 0, 9) == 0) t[n++] = (timed){make_event(FR_EV_CLICK, id, cts), cts + rng_range(&rs, 0, 30)};
            if (rng_range(&rs, 0, 1) == 0) {
                int64_t vts = cts + rng_range(&rs, -3, AW + 3);
                t[n++] = (timed){make_event(FR_EV_CONVERSION, id, vts), vts + rng_range(&rs, -30, 10)};
                if (rng_range(&rs, 0, 4) == 0)
                    t[n++] = (timed){make_event(FR_EV_CONVERSION, id, vts + 1), vts + rng_range(&rs, 0, 30)};
            }
        } else if (rng_range(&rs, 0, 4) == 0) {
            int64_t vts = its + rng_range(&rs, 0, 50);
            t[n++] = (timed){make_event(FR_EV_CONVERSION, id, vts), vts};
        }
    }
    qsort(t, n, sizeof *t, by_arrival);
    int64_t max_ts = INT64_MIN;
    for (size_t i = 0; i < n; i++) {
        s_ev(sc, t[i].ev);
        if (t[i].ev.ts > max_ts) max_ts = t[i].ev.ts;
        if (rng_range(&rs, 0, 4) == 0) s_adv(sc, max_ts - rng_range(&rs, 0, 15));
    }
    s_adv(sc, INT64_MAX);
    free(t);
}

static void test_restore_random_logs(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 3; seed++) {
        script sc = {0};
        random_script(&sc, seed * 0x9e3779b97f4a7c15ull, 150);
        check_restarts(&sc, 17);
        /* Every event ends joined or dropped once the watermark passes everything. */
        fr_join *j = new_join();
        sink out = {0};
        for (size_t i = 0; i < sc.n; i++) run_step(j, &sc.s[i], &out);
        free(out.s);
        const fr_join_counters *n = fr_join_get_counters(j);
        for (int t = 0; t < FR_EV_NTYPES; t++) assert_int_equal(n->pending[t], 0);
        assert_true(n->emitted[FR_SAMPLE_CLICK_WINDOW] > 0 && n->emitted[FR_SAMPLE_ATTRIBUTION] > 0);
        assert_true(n->dropped[FR_EV_CLICK][FR_DROP_OUTSIDE_WINDOW] > 0 && n->dropped[FR_EV_CLICK][FR_DROP_LATE] > 0);
        assert_int_equal(fr_join_entry_count(j), 0);
        fr_join_free(j);
        free(sc.s);
    }
}

/* ---- dirty sets ---- */

typedef struct {
    char ids[16][16];
    size_t lens[16];
    int n;
} dirty_list;

static int list_dirty(const char *id, size_t id_len, const void *bytes, size_t len, void *ctx)
{
    (void)bytes;
    dirty_list *d = ctx;
    assert_true(d->n < 16 && id_len < 15);
    memcpy(d->ids[d->n], id, id_len);
    d->ids[d->n][id_len] = '\0';
    d->lens[d->n] = len;
    d->n++;
    return 0;
}

static dirty_list dirty_of(const fr_join *j)
{
    dirty_list d;
    memset(&d, 0, sizeof d);
    assert_int_equal(fr_join_foreach_dirty(j, list_dirty, &d), 0);
    return d;
}

static int stop_at_first(const char *id, size_t id_len, const void *bytes, size_t len, void *ctx)
{
    (void)id, (void)id_len, (void)bytes, (void)len;
    ++*(int *)ctx;
    return 7;
}

static void test_dirty_set_is_exact(void **state)
{
    (void)state;
    harness h;
    h_init(&h);
    imp(&h, "a", 1000);
    imp(&h, "b", 1000);
    dirty_list d = dirty_of(h.j);
    assert_int_equal(d.n, 2);
    assert_string_equal(d.ids[0], "a");
    assert_string_equal(d.ids[1], "b");
    assert_true(d.lens[0] > 0 && d.lens[1] > 0);
    int calls = 0;
    assert_int_equal(fr_join_foreach_dirty(h.j, stop_at_first, &calls), 7);
    assert_int_equal(calls, 1);
    fr_join_clear_dirty(h.j);
    assert_int_equal(dirty_of(h.j).n, 0);

    /* Drops that change nothing, and advances that fire nothing, dirty nothing. */
    imp(&h, "a", 1000);
    click(&h, "a", 2000);
    adv(&h, 1005);
    assert_int_equal(dirty_of(h.j).n, 1); /* the out-of-window click marks a as clicked-once */
    fr_join_clear_dirty(h.j);
    imp(&h, "a", 1000);
    click(&h, "a", 1001);
    adv(&h, 1006);
    assert_int_equal(dirty_of(h.j).n, 0);

    /* An entry born and finished between two checkpoints leaves no trace. */
    imp(&h, "x", 998);
    adv(&h, 1009);
    assert_int_equal(h.out.n, 1);
    assert_int_equal(dirty_of(h.j).n, 0);

    /* A checkpointed entry that finishes leaves a tombstone; the id reused right after
     * replaces it with the new state. */
    click(&h, "b", 1003);
    fr_join_clear_dirty(h.j);
    adv(&h, 1011); /* a: CTR 0, deleted; b: CTR 1, waits for attribution */
    d = dirty_of(h.j);
    assert_int_equal(d.n, 2);
    assert_string_equal(d.ids[0], "a");
    assert_int_equal(d.lens[0], 0);
    assert_string_equal(d.ids[1], "b");
    assert_true(d.lens[1] > 0);
    conv(&h, "a", 1050); /* a is gone: held as a possible orphan, in place of the tombstone */
    d = dirty_of(h.j);
    assert_int_equal(d.n, 2);
    assert_string_equal(d.ids[0], "a");
    assert_true(d.lens[0] > 0);
    fr_join_clear_dirty(h.j);
    adv(&h, 1061);
    d = dirty_of(h.j);
    assert_int_equal(d.n, 1);
    assert_string_equal(d.ids[0], "a");
    assert_int_equal(d.lens[0], 0);
    fr_join_clear_dirty(h.j);
    assert_int_equal(fr_join_entry_count(h.j), 1);
    h_free(&h);
}

/* ---- blobs ---- */

typedef struct {
    uint8_t bytes[1024];
    size_t len;
} one_blob;

static int grab(const char *id, size_t id_len, const void *bytes, size_t len, void *ctx)
{
    (void)id, (void)id_len;
    one_blob *b = ctx;
    assert_true(len <= sizeof b->bytes);
    memcpy(b->bytes, bytes, len);
    b->len = len;
    return 0;
}

static void test_blobs_are_validated(void **state)
{
    (void)state;
    harness h;
    h_init(&h);
    imp(&h, "a", 1000);
    one_blob b = {0};
    assert_int_equal(fr_join_foreach_dirty(h.j, grab, &b), 0);
    assert_int_equal(b.len, 333);
    assert_int_equal(b.bytes[0], 2); /* format version */

    fr_join *r = new_join();
    assert_int_equal(fr_join_load_entry(r, "a", 1, b.bytes, b.len - 1, g_err, sizeof g_err), -1);
    assert_int_equal(fr_join_load_entry(r, "a", 0, b.bytes, b.len, g_err, sizeof g_err), -1);
    assert_int_equal(fr_join_load_entry(r, "a", 1, NULL, 0, g_err, sizeof g_err), -1);
    b.bytes[0] = 3;
    assert_int_equal(fr_join_load_entry(r, "a", 1, b.bytes, b.len, g_err, sizeof g_err), -1);
    b.bytes[0] = 1; /* format 1 held the learner's prior: refused by name */
    assert_int_equal(fr_join_load_entry(r, "a", 1, b.bytes, b.len, g_err, sizeof g_err), -1);
    assert_non_null(strstr(g_err, "format 1"));
    b.bytes[0] = 2;
    uint8_t fl = b.bytes[1];
    b.bytes[1] = 0; /* no state at all */
    assert_int_equal(fr_join_load_entry(r, "a", 1, b.bytes, b.len, g_err, sizeof g_err), -1);
    b.bytes[1] = 0x80 | 0x01; /* CTR emitted without a click: nothing would ever finish it */
    assert_int_equal(fr_join_load_entry(r, "a", 1, b.bytes, b.len, g_err, sizeof g_err), -1);
    b.bytes[1] = fl;
    b.bytes[2] = 0x02; /* unknown flag bit */
    assert_int_equal(fr_join_load_entry(r, "a", 1, b.bytes, b.len, g_err, sizeof g_err), -1);
    b.bytes[2] = 0;
    uint8_t rate[4];
    memcpy(rate, b.bytes + 15, 4);
    memset(b.bytes + 15, 0, 4); /* sample_rate 0 */
    assert_int_equal(fr_join_load_entry(r, "a", 1, b.bytes, b.len, g_err, sizeof g_err), -1);
    b.bytes[15] = 1; /* sample_rate 1.4e-45 (subnormal): its 1/rate weight is infinite (found by fuzz_join_entry) */
    assert_int_equal(fr_join_load_entry(r, "a", 1, b.bytes, b.len, g_err, sizeof g_err), -1);
    memcpy(b.bytes + 15, rate, 4);
    assert_int_equal(fr_join_entry_count(r), 0);
    assert_int_equal(fr_join_load_entry(r, "a", 1, b.bytes, b.len, g_err, sizeof g_err), 0);
    assert_int_equal(fr_join_load_entry(r, "a", 1, b.bytes, b.len, g_err, sizeof g_err), -1); /* already there */
    assert_int_equal(fr_join_entry_count(r), 1);

    /* Meta: size query, round trip, refusal of unknown versions and shapes. */
    uint8_t meta[1024];
    size_t need = fr_join_export_meta(h.j, NULL, 0);
    assert_int_equal(fr_join_export_meta(h.j, meta, need - 1), need);
    assert_int_equal(fr_join_export_meta(h.j, meta, sizeof meta), need);
    assert_int_equal(fr_join_import_meta(r, meta, need - 1), -1);
    assert_int_equal(fr_join_import_meta(r, meta, need), 0);
    assert_memory_equal(fr_join_get_counters(r), fr_join_get_counters(h.j), sizeof(fr_join_counters));
    assert_int_equal(fr_join_watermark(r), INT64_MIN);
    /* A join with other windows still reads the counters (what `freshet inspect` does). */
    fr_join_config other = {0};
    fr_join *o = fr_join_create(&other);
    assert_int_equal(fr_join_import_meta(o, meta, need), 0);
    assert_memory_equal(fr_join_get_counters(o), fr_join_get_counters(h.j), sizeof(fr_join_counters));
    meta[0] = 9;
    assert_int_equal(fr_join_import_meta(r, meta, need), -1);
    meta[0] = 1;
    meta[3] = FR_DROP_NREASONS + 1; /* more reasons than this build knows */
    assert_int_equal(fr_join_import_meta(r, meta, need), -1);
    fr_join_free(o);
    fr_join_free(r);
    h_free(&h);
}


/* The join tells its caller where each sample comes from (the learner keys its prior by the id and
 * drops it at the final sample), also after a checkpoint and restore; outside the callback, nothing. */
typedef struct {
    fr_join *j;
    sink out;
    fr_join_origin o[4];
    char ids[4][8];
} origin_ctx;

static void record_origin(const fr_sample *s, void *ctx)
{
    origin_ctx *c = ctx;
    collect(s, &c->out);
    const fr_join_origin *o = fr_join_emitting(c->j);
    assert_non_null(o);
    assert_true(c->out.n <= 4);
    c->o[c->out.n - 1] = *o;
    snprintf(c->ids[c->out.n - 1], sizeof c->ids[0], "%s", o->id);
}

static int copy_entry(const char *id, size_t id_len, const void *bytes, size_t len, void *ctx)
{
    if (len == 0) return 0;
    return fr_join_load_entry(ctx, id, id_len, bytes, len, g_err, sizeof g_err);
}

static void test_origin_of_each_sample(void **state)
{
    (void)state;
    origin_ctx c = {.j = new_join()};
    fr_event ev = imp_ev("p", 1000, 0, 1.0f);
    assert_int_equal(fr_join_add(c.j, &ev, record_origin, &c), 0);
    ev = make_event(FR_EV_CLICK, "p", 1005);
    assert_int_equal(fr_join_add(c.j, &ev, record_origin, &c), 0);
    fr_join_advance(c.j, 1000 + CW + 1, record_origin, &c);
    assert_int_equal(c.out.n, 1);
    assert_null(fr_join_emitting(c.j));
    assert_string_equal(c.ids[0], "p");
    assert_int_equal(c.o[0].deadline, 1000 + CW);
    assert_int_equal(c.o[0].final, 0); /* clicked: the attribution sample follows */
    assert_int_equal(c.out.s[0].has_prior, 0); /* the join never carries a prior */

    /* Restore into a fresh join from the dirty entries and the meta, as a restart would. */
    origin_ctx r = {.j = new_join()};
    assert_int_equal(fr_join_foreach_dirty(c.j, copy_entry, r.j), 0);
    size_t need = fr_join_export_meta(c.j, NULL, 0);
    unsigned char *meta = malloc(need);
    assert_non_null(meta);
    fr_join_export_meta(c.j, meta, need);
    assert_int_equal(fr_join_import_meta(r.j, meta, need), 0);
    free(meta);

    fr_join_advance(r.j, 1005 + AW + 1, record_origin, &r);
    assert_int_equal(r.out.n, 1);
    assert_int_equal(r.out.s[0].kind, FR_SAMPLE_ATTRIBUTION);
    assert_int_equal(r.out.s[0].has_prior, 0);
    assert_string_equal(r.ids[0], "p");
    assert_int_equal(r.o[0].deadline, 1005 + AW);
    assert_int_equal(r.o[0].final, 1);
    free(r.out.s);
    free(c.out.s);
    fr_join_free(r.j);
    fr_join_free(c.j);
}

/* ---- delayed-feedback policies ----
 * One hand-written log, run under every policy, with the exact samples each must emit. Windows:
 * click 10, attribution 100, observation w_o = 20, real negative w_rn = 60. Clicked impressions:
 *   a  click 1002, conversion 1010          in-window positive (delay 8 <= w_o)
 *   b  click 1003, conversion 1050 (+ a duplicate at 1060)   fake negative -> delayed positive
 *   c  click 1004, no conversion            real negative
 *   d  click 1001, conversion 1102 (arrives at watermark 1095)   outside the attribution window
 *   e  click 1005, conversion 1090          converts after w_rn: REAL_NEG then DELAYED_POS in defer
 *   f  no click                             CTR sample only */

enum { WO = 20, WRN = 60 };

/* Lookahead for the oracle: the first conversion of each id in the log above. */
static int fixture_oracle(void *ctx, const char *id, size_t id_len, int64_t *conv_ts)
{
    (void)ctx;
    static const struct {
        const char *id;
        int64_t ts;
    } conv[] = {{"a", 1010}, {"b", 1050}, {"d", 1102}, {"e", 1090}};
    for (size_t i = 0; i < sizeof conv / sizeof conv[0]; i++)
        if (id_len == strlen(conv[i].id) && memcmp(id, conv[i].id, id_len) == 0) {
            *conv_ts = conv[i].ts;
            return 1;
        }
    return 0;
}

/* For the random logs, where ids are reused: any pure function of the id will do. */
static int hash_oracle(void *ctx, const char *id, size_t id_len, int64_t *conv_ts)
{
    (void)ctx;
    uint64_t h = 0;
    for (size_t i = 0; i < id_len; i++) h = h * 31 + (unsigned char)id[i];
    *conv_ts = 1000 + (int64_t)(h % 3000);
    return (int)(h & 1);
}

static void use_policy(fr_policy_id p, fr_join_oracle_fn oracle)
{
    g_cfg = (fr_join_config){.click_window_ms = CW,
                             .attribution_window_ms = AW,
                             .policy = p,
                             .observation_window_ms = WO,
                             .real_negative_window_ms = WRN,
                             .oracle = oracle};
}
static void reset_policy(void) { use_policy(FR_POLICY_WAIT, NULL); }

static void fixture_log(script *sc)
{
    const struct {
        fr_event_type t;
        const char *id;
        int64_t ts;
    } log[] = {
        {FR_EV_IMPRESSION, "a", 1000}, {FR_EV_IMPRESSION, "b", 1000}, {FR_EV_IMPRESSION, "c", 1000},
        {FR_EV_IMPRESSION, "d", 1000}, {FR_EV_IMPRESSION, "e", 1000}, {FR_EV_IMPRESSION, "f", 1000},
        {FR_EV_CLICK, "d", 1001},      {FR_EV_CLICK, "a", 1002},      {FR_EV_CLICK, "b", 1003},
        {FR_EV_CLICK, "c", 1004},      {FR_EV_CLICK, "e", 1005},      {FR_EV_CONVERSION, "a", 1010},
        {FR_EV_CONVERSION, "b", 1050}, {FR_EV_CONVERSION, "b", 1060}, {FR_EV_CONVERSION, "e", 1090},
        {FR_EV_CONVERSION, "d", 1102},
    };
    for (size_t i = 0; i < sizeof log / sizeof log[0]; i++) {
        /* The watermark follows the log, so every event is on time; d's conversion comes while d's
         * entry still lives (its attribution sample is due at 1101), to be judged by the window. */
        s_adv(sc, log[i].ts > 1100 ? 1095 : log[i].ts);
        s_ev(sc, log[i].t == FR_EV_IMPRESSION ? imp_ev(log[i].id, log[i].ts, 0, 1.0f)
                                              : make_event(log[i].t, log[i].id, log[i].ts));
    }
    s_adv(sc, 1300);
}

/* A delayed-feedback copy or a MATURED sample: CVR and CTCVR carry label, never CTR. */
typedef struct {
    const char *id;
    int kind;
    int64_t ts;
    int label;     /* CTR label for CLICK_WINDOW, else CVR/CTCVR */
    int in_window; /* MATURED and DELAYED_POS only */
} want;

static void expect_sample(const fr_sample *s, const want *w)
{
    if (w->kind == FR_SAMPLE_CLICK_WINDOW) {
        expect_ctr(s, w->id, w->ts, w->label);
        return;
    }
    if (w->kind == FR_SAMPLE_ATTRIBUTION) {
        expect_attr(s, w->id, w->ts, w->label);
        return;
    }
    expect_common(s, w->id, 0, w->kind, w->ts);
    assert_int_equal(s->has_label[FR_TASK_CTR], 0);
    expect_f(s->weight[FR_TASK_CTR], 0.0f);
    for (int t = FR_TASK_CVR; t <= FR_TASK_CTCVR; t++) {
        assert_int_equal(s->has_label[t], 1);
        expect_f(s->label[t], w->label ? 1.0f : 0.0f);
        expect_f(s->weight[t], 1.0f);
    }
    const int has_window = w->kind == FR_SAMPLE_MATURED || w->kind == FR_SAMPLE_DELAYED_POS;
    assert_int_equal(s->in_window, has_window ? w->in_window : 0);
}

#define CTR6                                                                                             \
    {"a", FR_SAMPLE_CLICK_WINDOW, 1010, 1, 0}, {"b", FR_SAMPLE_CLICK_WINDOW, 1010, 1, 0},                \
        {"c", FR_SAMPLE_CLICK_WINDOW, 1010, 1, 0}, {"d", FR_SAMPLE_CLICK_WINDOW, 1010, 1, 0},            \
        {"e", FR_SAMPLE_CLICK_WINDOW, 1010, 1, 0}, {"f", FR_SAMPLE_CLICK_WINDOW, 1010, 0, 0}
#define MATURED5(ipa)                                                                                    \
    {"d", FR_SAMPLE_MATURED, 1101, 0, 0}, {"a", FR_SAMPLE_MATURED, 1102, 1, ipa},                        \
        {"b", FR_SAMPLE_MATURED, 1103, 1, 0}, {"c", FR_SAMPLE_MATURED, 1104, 0, 0},                      \
        {"e", FR_SAMPLE_MATURED, 1105, 1, 0}
#define WINDOW5                                                                                          \
    {"d", FR_SAMPLE_WINDOW, 1021, 0, 0}, {"a", FR_SAMPLE_WINDOW, 1022, 1, 0},                            \
        {"b", FR_SAMPLE_WINDOW, 1023, 0, 0}, {"c", FR_SAMPLE_WINDOW, 1024, 0, 0},                        \
        {"e", FR_SAMPLE_WINDOW, 1025, 0, 0}

static void run_fixture(fr_policy_id p, const want *w, size_t n)
{
    use_policy(p, fixture_oracle);
    script sc = {0};
    fixture_log(&sc);
    harness h;
    h_init(&h);
    for (size_t i = 0; i < sc.n; i++) run_step(h.j, &sc.s[i], &h.out);
    if (h.out.n != n) fprintf(stderr, "policy %s: %zu samples, want %zu\n", fr_policy_name(p), h.out.n, n);
    assert_int_equal(h.out.n, n);
    for (size_t i = 0; i < n; i++) expect_sample(&h.out.s[i], &w[i]);
    /* The accounting does not depend on the policy. */
    expect_counts(h.j, FR_EV_IMPRESSION, (counts){.events = 6, .joined = 6});
    expect_counts(h.j, FR_EV_CLICK, (counts){.events = 5, .joined = 5});
    expect_counts(h.j, FR_EV_CONVERSION, (counts){.events = 5, .joined = 3, .dup = 1, .outside = 1});
    const fr_join_counters *c = fr_join_get_counters(h.j);
    uint64_t kinds = 0;
    for (int k = 0; k < FR_SAMPLE_NKINDS; k++) kinds += c->emitted[k];
    assert_int_equal(kinds, n);
    assert_int_equal(fr_join_entry_count(h.j), 0);
    /* Restarting anywhere, at any checkpoint cadence, changes no emitted byte. */
    check_restarts(&sc, 1);
    h_free(&h);
    free(sc.s);
    reset_policy();
}

static void test_policy_wait_fixture(void **state)
{
    (void)state;
    const want w[] = {CTR6,
                      {"d", FR_SAMPLE_ATTRIBUTION, 1101, 0, 0},
                      {"a", FR_SAMPLE_ATTRIBUTION, 1102, 1, 0},
                      {"b", FR_SAMPLE_ATTRIBUTION, 1103, 1, 0},
                      {"c", FR_SAMPLE_ATTRIBUTION, 1104, 0, 0},
                      {"e", FR_SAMPLE_ATTRIBUTION, 1105, 1, 0}};
    run_fixture(FR_POLICY_WAIT, w, sizeof w / sizeof w[0]);
}

static void test_policy_vanilla_fixture(void **state)
{
    (void)state;
    const want w[] = {CTR6, WINDOW5, MATURED5(1)};
    run_fixture(FR_POLICY_VANILLA, w, sizeof w / sizeof w[0]);
}

static void test_policy_fake_negative_fixture(void **state)
{
    (void)state;
    /* Every click at once as a negative; every counted conversion (in-window ones too) as a
     * positive duplicate at its own ts. At 1010 a's CTR sample precedes its duplicate (timer kind). */
    const want w[] = {{"d", FR_SAMPLE_FAKE_NEG, 1001, 0, 0},
                      {"a", FR_SAMPLE_FAKE_NEG, 1002, 0, 0},
                      {"b", FR_SAMPLE_FAKE_NEG, 1003, 0, 0},
                      {"c", FR_SAMPLE_FAKE_NEG, 1004, 0, 0},
                      {"e", FR_SAMPLE_FAKE_NEG, 1005, 0, 0},
                      {"a", FR_SAMPLE_CLICK_WINDOW, 1010, 1, 0},
                      {"a", FR_SAMPLE_DELAYED_POS, 1010, 1, 1}, /* 8 after its click: in w_o */
                      {"b", FR_SAMPLE_CLICK_WINDOW, 1010, 1, 0},
                      {"c", FR_SAMPLE_CLICK_WINDOW, 1010, 1, 0},
                      {"d", FR_SAMPLE_CLICK_WINDOW, 1010, 1, 0},
                      {"e", FR_SAMPLE_CLICK_WINDOW, 1010, 1, 0},
                      {"f", FR_SAMPLE_CLICK_WINDOW, 1010, 0, 0},
                      {"b", FR_SAMPLE_DELAYED_POS, 1050, 1, 0},
                      {"e", FR_SAMPLE_DELAYED_POS, 1090, 1, 0},
                      MATURED5(1)};
    run_fixture(FR_POLICY_FNW, w, sizeof w / sizeof w[0]);
    run_fixture(FR_POLICY_FNC, w, sizeof w / sizeof w[0]);
}

static void test_policy_esdfm_fixture(void **state)
{
    (void)state;
    /* Window copy at t_c + w_o; a duplicate only for conversions after it (b, e), not for a. */
    const want w[] = {CTR6, WINDOW5, {"b", FR_SAMPLE_DELAYED_POS, 1050, 1, 0}, {"e", FR_SAMPLE_DELAYED_POS, 1090, 1, 0},
                      MATURED5(1)};
    run_fixture(FR_POLICY_ESDFM, w, sizeof w / sizeof w[0]);
    run_fixture(FR_POLICY_DEFUSE, w, sizeof w / sizeof w[0]);
}

static void test_policy_defer_fixture(void **state)
{
    (void)state;
    /* Real negatives at t_c + w_rn for clicks not converted by then: c, d (its conversion is
     * outside the attribution window) and e (converts at 1090 > 1065, then gets its duplicate). */
    const want w[] = {CTR6,
                      WINDOW5,
                      {"b", FR_SAMPLE_DELAYED_POS, 1050, 1, 0},
                      {"d", FR_SAMPLE_REAL_NEG, 1061, 0, 0},
                      {"c", FR_SAMPLE_REAL_NEG, 1064, 0, 0},
                      {"e", FR_SAMPLE_REAL_NEG, 1065, 0, 0},
                      {"e", FR_SAMPLE_DELAYED_POS, 1090, 1, 0},
                      MATURED5(1)};
    run_fixture(FR_POLICY_DEFER, w, sizeof w / sizeof w[0]);
}

static void test_policy_oracle_fixture(void **state)
{
    (void)state;
    /* At click time with the eventual label: d's conversion (1102 > 1001 + 100) does not count. */
    const want w[] = {{"d", FR_SAMPLE_ORACLE, 1001, 0, 0}, {"a", FR_SAMPLE_ORACLE, 1002, 1, 0},
                      {"b", FR_SAMPLE_ORACLE, 1003, 1, 0}, {"c", FR_SAMPLE_ORACLE, 1004, 0, 0},
                      {"e", FR_SAMPLE_ORACLE, 1005, 1, 0}, CTR6,
                      MATURED5(1)};
    run_fixture(FR_POLICY_ORACLE, w, sizeof w / sizeof w[0]);
}

/* A conversion that arrives after the window copy went out but whose ts is inside the window
 * (a partition lagging): the copy said 0, so a delayed positive follows at once, never before it. */
static void test_policy_late_conversion_inside_window(void **state)
{
    (void)state;
    use_policy(FR_POLICY_ESDFM, NULL);
    harness h;
    h_init(&h);
    imp(&h, "a", 1000);
    click(&h, "a", 1002);
    adv(&h, 1030); /* fires the WINDOW copy at 1022 with label 0 */
    conv(&h, "a", 1015);
    adv(&h, 1031);
    adv(&h, 1200);
    assert_int_equal(h.out.n, 4);
    expect_sample(&h.out.s[0], &(want){"a", FR_SAMPLE_CLICK_WINDOW, 1010, 1, 0});
    expect_sample(&h.out.s[1], &(want){"a", FR_SAMPLE_WINDOW, 1022, 0, 0});
    expect_sample(&h.out.s[2], &(want){"a", FR_SAMPLE_DELAYED_POS, 1022, 1, 1}); /* 1015 is inside w_o */
    expect_sample(&h.out.s[3], &(want){"a", FR_SAMPLE_MATURED, 1102, 1, 1});
    h_free(&h);
    reset_policy();
}

static void test_policy_random_logs_restart(void **state)
{
    (void)state;
    for (int p = 1; p < FR_NPOLICIES; p++) {
        use_policy((fr_policy_id)p, hash_oracle);
        script sc = {0};
        random_script(&sc, 0x51ed2701u + (uint64_t)p, 120);
        check_restarts(&sc, 23);
        fr_join *j = new_join();
        sink out = {0};
        for (size_t i = 0; i < sc.n; i++) run_step(j, &sc.s[i], &out);
        /* Emission is sorted by ts; every clicked impression matures exactly once. */
        for (size_t i = 1; i < out.n; i++) assert_true(out.s[i - 1].ts <= out.s[i].ts);
        const fr_join_counters *n = fr_join_get_counters(j);
        for (int t = 0; t < FR_EV_NTYPES; t++) assert_int_equal(n->pending[t], 0);
        assert_int_equal(n->emitted[FR_SAMPLE_ATTRIBUTION], 0);
        assert_true(n->emitted[FR_SAMPLE_MATURED] > 0);
        assert_int_equal(n->joined[FR_EV_CONVERSION] <= n->emitted[FR_SAMPLE_MATURED], 1);
        assert_int_equal(fr_join_entry_count(j), 0);
        fr_join_free(j);
        free(out.s);
        free(sc.s);
    }
    reset_policy();
}

static void test_policy_config_validation(void **state)
{
    (void)state;
    fr_join_config c = {.click_window_ms = CW, .attribution_window_ms = AW, .policy = FR_POLICY_DEFER,
                        .observation_window_ms = WO, .real_negative_window_ms = WRN};
    fr_join *j = fr_join_create(&c);
    assert_non_null(j);
    fr_join_free(j);
    fr_join_config bad = c;
    bad.observation_window_ms = AW + 1; /* w_o beyond the attribution window */
    assert_null(fr_join_create(&bad));
    bad = c;
    bad.real_negative_window_ms = WO - 1; /* w_rn before w_o */
    assert_null(fr_join_create(&bad));
    bad = c;
    bad.real_negative_window_ms = AW + 1;
    assert_null(fr_join_create(&bad));
    bad = c;
    bad.policy = FR_POLICY_ORACLE; /* no lookahead */
    assert_null(fr_join_create(&bad));
    for (int p = 0; p < FR_NPOLICIES; p++)
        assert_int_equal(fr_policy_from_name(fr_policy_name((fr_policy_id)p)), p);
    assert_int_equal(fr_policy_from_name("defuse2"), -1);
}

/* The restart tests again with spilling: after every checkpoint the joins keep at most 0 or 2
 * entry bodies in memory and read the rest back from the store; every emitted byte, counter and
 * stored entry must equal the run that never spills (check_restarts compares against it). */
static void run_spill_variants(void (*test)(void **))
{
    const size_t keeps[] = {0, 2};
    for (size_t k = 0; k < 2; k++) {
        g_spill_keep = keeps[k];
        g_store_reads = 0;
        test(NULL);
        assert_true(g_store_reads > 0); /* spilled entries were really read back */
    }
    g_spill_keep = SIZE_MAX;
}

static void test_spill_restore_mid_stream(void **state)
{
    (void)state;
    run_spill_variants(test_restore_mid_stream);
}

static void test_spill_random_logs(void **state)
{
    (void)state;
    run_spill_variants(test_restore_random_logs);
}

static void test_spill_policy_random_logs(void **state)
{
    (void)state;
    run_spill_variants(test_policy_random_logs_restart);
}

/* A read-back failure stops the advance before the timer fires and leaves it armed: once the
 * store answers again, the same samples come out. Events for a spilled id fail the same way,
 * counting nothing. */
static void test_spill_read_failure(void **state)
{
    (void)state;
    g_spill_keep = 0;
    store st = {0};
    fr_join *j = new_join();
    attach_store(j, &st);
    sink out = {0};
    fr_event ev = imp_ev("s", 1000, 1, 0.5f);
    assert_int_equal(fr_join_add(j, &ev, collect, &out), 0);
    ev = make_event(FR_EV_CLICK, "s", 1003);
    assert_int_equal(fr_join_add(j, &ev, collect, &out), 0);
    checkpoint(j, &st);
    assert_int_equal(fr_join_cached_count(j), 0);
    assert_int_equal(fr_join_entry_count(j), 1);

    g_store_fail = 1;
    fr_join_counters before = *fr_join_get_counters(j);
    ev = make_event(FR_EV_CONVERSION, "s", 1020);
    assert_int_equal(fr_join_add(j, &ev, collect, &out), -1);
    assert_memory_equal(fr_join_get_counters(j), &before, sizeof before);
    assert_int_equal(fr_join_advance(j, 1020, collect, &out), -1);
    assert_int_equal(out.n, 0);
    assert_true(fr_join_watermark(j) < 1020);
    assert_non_null(strstr(fr_join_error(j), "\"s\""));

    g_store_fail = 0;
    assert_int_equal(fr_join_add(j, &ev, collect, &out), 0);
    assert_int_equal(fr_join_advance(j, 1020, collect, &out), 0);
    assert_int_equal(fr_join_advance(j, 2000, collect, &out), 0);
    assert_int_equal(out.n, 2);
    expect_ctr_w(&out.s[0], "s", 1010, 1, 2.0f, 1);
    expect_attr_w(&out.s[1], "s", 1103, 1, 2.0f, 1);

    /* A store that holds another state for the id is refused, not trusted. */
    store st2 = {0};
    fr_join *k = new_join();
    attach_store(k, &st2);
    ev = imp_ev("t", 3000, 0, 1.0f);
    assert_int_equal(fr_join_add(k, &ev, collect, &out), 0);
    checkpoint(k, &st2);
    ev = imp_ev("t", 3001, 0, 1.0f);
    fr_join *other = new_join();
    assert_int_equal(fr_join_add(other, &ev, collect, &out), 0);
    assert_int_equal(fr_join_foreach_dirty(other, store_apply, &st2), 0); /* overwrites t */
    assert_int_equal(fr_join_advance(k, 4000, collect, &out), -1);
    assert_non_null(strstr(fr_join_error(k), "differs"));
    fr_join_free(other);
    fr_join_free(k);
    fr_join_free(j);
    store_free(&st);
    store_free(&st2);
    free(out.s);
    g_spill_keep = SIZE_MAX;
}

/* Restoring under another policy is refused by name. */
static void test_meta_policy_check(void **state)
{
    (void)state;
    fr_join *j = new_join();
    size_t n = fr_join_export_meta(j, NULL, 0);
    unsigned char *meta = malloc(n);
    assert_non_null(meta);
    fr_join_export_meta(j, meta, n);
    char err[512];
    assert_int_equal(fr_join_check_meta(j, meta, n, err, sizeof err), 0);
    use_policy(FR_POLICY_ESDFM, NULL);
    fr_join *k = new_join();
    assert_int_equal(fr_join_check_meta(k, meta, n, err, sizeof err), -1);
    assert_non_null(strstr(err, "join.policy \"wait\""));
    assert_non_null(strstr(err, "\"esdfm\""));
    assert_int_equal(fr_join_check_meta(k, meta, 3, err, sizeof err), -1);
    reset_policy();
    free(meta);
    fr_join_free(k);
    fr_join_free(j);
}


int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_origin_of_each_sample),
        cmocka_unit_test(test_restore_mid_stream),
        cmocka_unit_test(test_restore_random_logs),
        cmocka_unit_test(test_dirty_set_is_exact),
        cmocka_unit_test(test_blobs_are_validated),
        cmocka_unit_test(test_policy_wait_fixture),
        cmocka_unit_test(test_policy_vanilla_fixture),
        cmocka_unit_test(test_policy_fake_negative_fixture),
        cmocka_unit_test(test_policy_esdfm_fixture),
        cmocka_unit_test(test_policy_defer_fixture),
        cmocka_unit_test(test_policy_oracle_fixture),
        cmocka_unit_test(test_policy_late_conversion_inside_window),
        cmocka_unit_test(test_policy_random_logs_restart),
        cmocka_unit_test(test_policy_config_validation),
        cmocka_unit_test(test_spill_restore_mid_stream),
        cmocka_unit_test(test_spill_random_logs),
        cmocka_unit_test(test_spill_policy_random_logs),
        cmocka_unit_test(test_spill_read_failure),
        cmocka_unit_test(test_meta_policy_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
