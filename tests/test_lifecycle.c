/* Embedding lifecycle: deletion in fr_emb, the admission filter, admission and TTL eviction in the
 * model, their checkpoint round trip (bit-identical digests across a restart), deletions pushed
 * to Redis and announced, the reader and the publisher thread forgetting deleted rows, and the
 * memory per row. Redis tests run a private redis-server (skipped when it is not installed). */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "fr_admit.h"
#include "fr_ckpt.h"
#include "fr_emb.h"
#include "fr_model.h"
#include "fr_publish.h"
#include "fr_pubq.h"
#include "fr_reader.h"

#include "redis_server.h"
#include "row_hash.h"
#include "tmpdir.h"
#include "count_rows.h"

/* ---- helpers ------------------------------------------------------------------------------------ */

static uint64_t next_rand(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static const int64_t T0 = 1764300000000LL; /* an event time in ms */
static const int64_t HOUR = 3600000LL;

static fr_model *new_model(int emb_dim)
{
    fr_model_config c;
    fr_model_config_defaults(&c);
    c.n_cat = 3;
    c.n_num = 1;
    c.n_multi = 1;
    c.n_scenarios = 1;
    c.emb_dim = emb_dim;
    c.n_experts = 2;
    c.expert_dim = 8;
    c.tower_dim = 4;
    c.batch_size = 4;
    char err[256];
    fr_model *m = fr_model_create(&c, err, sizeof err);
    if (!m) fail_msg("model: %s", err);
    return m;
}

static void set_policy_aging(fr_model *m, uint32_t table, int admit_after, int64_t ttl_ms, int64_t half_life_ms)
{
    fr_row_policy p;
    fr_row_policy_defaults(&p);
    p.admit_after = admit_after;
    p.admit_width_log2 = 12;
    p.ttl_ms = ttl_ms;
    p.admit_half_life_ms = half_life_ms;
    char err[256];
    if (fr_model_set_row_policy(m, table, &p, err, sizeof err) != 0) fail_msg("policy: %s", err);
}

static void set_policy(fr_model *m, uint32_t table, int admit_after, int64_t ttl_ms)
{
    set_policy_aging(m, table, admit_after, ttl_ms, 0);
}

/* One impression: cat = {1, a, b}, multi = {c} (0 = none). */
static fr_sample sample(uint64_t a, uint64_t b, uint64_t c, int64_t ts, int clicked)
{
    fr_sample s;
    memset(&s, 0, sizeof s);
    s.f.cat[0] = 1;
    s.f.cat[1] = a;
    s.f.cat[2] = b;
    s.f.num[0] = 0.5f;
    if (c) {
        s.f.multi[0][0] = c;
        s.f.multi_len[0] = 1;
    }
    s.ts = ts;
    s.label[FR_TASK_CTR] = (float)clicked;
    for (int t = 0; t < FR_NTASKS; t++) {
        s.weight[t] = 1.0f;
        s.has_label[t] = 1;
    }
    return s;
}

static void train1(fr_model *m, uint64_t a, uint64_t b, uint64_t c, int64_t ts)
{
    fr_sample s = sample(a, b, c, ts, 1);
    fr_model_train(m, &s, 1, NULL);
}

static int has_row(const fr_model *m, uint32_t table, uint64_t key)
{
    fr_row_view v;
    return fr_model_get_row(m, table, key, &v) == 0;
}

typedef struct {
    uint32_t table[64];
    uint64_t key[64];
    int n;
} del_list;

static int del_cb(uint32_t table, uint64_t key, void *ctx)
{
    del_list *d = ctx;
    if (d->n < 64) {
        d->table[d->n] = table;
        d->key[d->n] = key;
    }
    d->n++;
    return 0;
}


static void checkpoint(fr_ckpt *c, fr_model *m)
{
    char err[512];
    fr_ckpt_batch *b = fr_ckpt_begin(c);
    assert_non_null(b);
    assert_int_equal(fr_ckpt_put_model(b, m), 0);
    if (fr_ckpt_commit(b, err, sizeof err) != 0) fail_msg("commit: %s", err);
    fr_model_clear_dirty(m, FR_DIRTY_CHECKPOINT);
}

/* ---- fr_emb ------------------------------------------------------------------------------------- */

/* Random inserts and deletes against a reference; every surviving key is found at a row holding it,
 * every deleted key is absent, and the dirty iteration visits exactly the marked rows. */
static void test_emb_delete(void **state)
{
    (void)state;
    enum { N = 20000 };
    fr_emb t;
    fr_emb_init(&t, 8);
    uint64_t *keys = calloc(N, sizeof *keys);
    char *live = calloc(N, 1);
    assert_non_null(keys);
    assert_non_null(live);
    uint64_t s = 5;
    for (int i = 0; i < N; i++) {
        keys[i] = (next_rand(&s) % 4 == 0) ? (uint64_t)i + 1 : next_rand(&s) | 1; /* small and hashed keys */
        int created;
        int64_t idx = fr_emb_insert(&t, keys[i], &created);
        assert_true(idx >= 0);
        assert_int_equal(created, 1);
        live[i] = 1;
    }
    fr_emb_clear(&t, 3);
    size_t alive = N;
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < N; i++) {
            if (!live[i] || next_rand(&s) % 3) continue;
            assert_int_equal(fr_emb_delete(&t, keys[i]), 0);
            assert_int_equal(fr_emb_delete(&t, keys[i]), -1);
            live[i] = 0;
            alive--;
        }
        assert_int_equal(t.count, alive);
        size_t marked = 0;
        for (int i = 0; i < N; i++) {
            int64_t idx = fr_emb_find(&t, keys[i]);
            if (!live[i]) {
                assert_int_equal(idx, -1);
                continue;
            }
            assert_true(idx >= 0);
            assert_true(fr_emb_row_at(&t, (size_t)idx)->key == keys[i]);
            if (i % 7 == round) {
                fr_emb_mark(&t, (size_t)idx, 1);
                marked++;
            }
        }
        size_t seen = 0, cur = 0;
        for (int64_t idx; (idx = fr_emb_next_dirty(&t, 0, &cur)) >= 0;) {
            assert_true(fr_emb_row_at(&t, (size_t)idx)->dirty & 1);
            seen++;
        }
        assert_int_equal(seen, marked);
        cur = 0;
        assert_int_equal(fr_emb_next_dirty(&t, 1, &cur), -1);
        fr_emb_clear(&t, 1);
        cur = 0;
        assert_int_equal(fr_emb_next_dirty(&t, 0, &cur), -1);
        /* some deleted keys come back */
        for (int i = 0; i < N; i += 5) {
            if (live[i]) continue;
            int created;
            assert_true(fr_emb_insert(&t, keys[i], &created) >= 0);
            assert_int_equal(created, 1);
            live[i] = 1;
            alive++;
        }
    }
    fr_emb_free(&t);
    free(keys);
    free(live);
}

/* A row marked dirty and then moved by a deletion keeps its mark (its chunk is listed). */
static void test_emb_delete_keeps_marks(void **state)
{
    (void)state;
    fr_emb t;
    fr_emb_init(&t, 8);
    int created;
    for (uint64_t k = 1; k <= 3000; k++) assert_true(fr_emb_insert(&t, k, &created) >= 0);
    fr_emb_clear(&t, 3);
    int64_t last = fr_emb_find(&t, 3000); /* in the third chunk */
    fr_emb_mark(&t, (size_t)last, 2);
    assert_int_equal(fr_emb_delete(&t, 1), 0); /* row 0 (first chunk) takes the last row */
    size_t cur = 0;
    int64_t idx = fr_emb_next_dirty(&t, 1, &cur);
    assert_int_equal(idx, fr_emb_find(&t, 3000));
    assert_int_equal(idx, 0);
    assert_int_equal(fr_emb_next_dirty(&t, 1, &cur), -1);
    fr_emb_free(&t);
}

/* ---- fr_admit ----------------------------------------------------------------------------------- */

static void test_admit_filter(void **state)
{
    (void)state;
    char err[256];
    assert_null(fr_admit_create(5, 1, err, sizeof err));
    fr_admit *a = fr_admit_create(12, 7, err, sizeof err);
    fr_admit *b = fr_admit_create(12, 7, err, sizeof err);
    assert_non_null(a);
    assert_non_null(b);
    for (unsigned i = 1; i <= 20; i++) assert_int_equal(fr_admit_add(a, 42), i < 15 ? i : 15);
    assert_int_equal(fr_admit_count(a, 42), 15);
    assert_int_equal(fr_admit_count(a, 43), 0);
    const uint32_t *d;
    assert_true(fr_admit_dirty(a, &d) >= 1);
    fr_admit_clear_dirty(a);
    assert_int_equal(fr_admit_dirty(a, &d), 0);
    /* deterministic: the same sightings give the same bytes */
    uint64_t s = 3;
    for (int i = 0; i < 5000; i++) {
        uint64_t k = next_rand(&s) % 900;
        fr_admit_add(a, k);
        fr_admit_add(b, k);
    }
    fr_admit_add(b, 42);
    for (int i = 0; i < 20; i++) fr_admit_add(b, 42);
    for (size_t c = 0; c < fr_admit_chunks(a); c++)
        assert_memory_equal(fr_admit_chunk(a, c), fr_admit_chunk(b, c), FR_ADMIT_CHUNK_BYTES);
    /* conservative update keeps the estimate exact for most keys of a light load */
    int exact = 0;
    fr_admit *c = fr_admit_create(12, 9, err, sizeof err);
    for (uint64_t k = 1; k <= 500; k++)
        for (uint64_t j = 0; j < k % 4; j++) fr_admit_add(c, k * 1000003u);
    for (uint64_t k = 1; k <= 500; k++) exact += fr_admit_count(c, k * 1000003u) == k % 4;
    assert_true(exact >= 490);

    /* aging: every count halves (rounding down), the changed chunks are marked, the load falls */
    fr_admit *g = fr_admit_create(12, 3, err, sizeof err);
    for (int i = 0; i < 9; i++) fr_admit_add(g, 4242);
    fr_admit_add(g, 4343);
    double load = fr_admit_load(g);
    assert_true(load > 0 && load <= 8.0 / (4 << 12));
    fr_admit_clear_dirty(g);
    fr_admit_halve(g);
    assert_int_equal(fr_admit_count(g, 4242), 4);
    assert_int_equal(fr_admit_count(g, 4343), 0);
    assert_true(fr_admit_dirty(g, &d) >= 1);
    assert_true(fr_admit_load(g) < load);
    fr_admit_clear_dirty(g);
    fr_admit_halve(g);
    fr_admit_halve(g);
    fr_admit_halve(g);
    assert_int_equal(fr_admit_count(g, 4242), 0);
    fr_admit_clear_dirty(g);
    fr_admit_halve(g); /* nothing left to change: nothing to write */
    assert_int_equal(fr_admit_dirty(g, &d), 0);
    assert_true(fr_admit_load(g) == 0);
    fr_admit_add(g, 4444); /* counters of 1 become 0: changed too, so the checkpoint must write them */
    fr_admit_clear_dirty(g);
    fr_admit_halve(g);
    assert_int_equal(fr_admit_dirty(g, &d), 2); /* the key is in all 4 sketch rows: 2 KiB each, 2 chunks */
    fr_admit_free(g);

    /* Without aging a small sketch fills with the long tail until fresh keys pass admit_after 2
     * by collisions alone; halving as the stream goes keeps them out. */
    fr_admit *never = fr_admit_create(11, 5, err, sizeof err), *aged = fr_admit_create(11, 5, err, sizeof err);
    for (uint64_t k = 1; k <= 200000; k++) {
        fr_admit_add(never, k * 0x9E3779B97F4A7C15ULL);
        fr_admit_add(aged, k * 0x9E3779B97F4A7C15ULL);
        if (k % 1024 == 0) fr_admit_halve(aged); /* about one sighting per counter between halvings */
    }
    int early_never = 0, early_aged = 0;
    for (uint64_t k = 1; k <= 1000; k++) {
        early_never += fr_admit_count(never, k * 7919 + 3) >= 2;
        early_aged += fr_admit_count(aged, k * 7919 + 3) >= 2;
    }
    assert_true(early_never > 950); /* saturated: nearly every fresh key would get a row at once */
    assert_true(early_aged < 100);
    fr_admit_free(never);
    fr_admit_free(aged);

    fr_admit_free(a);
    fr_admit_free(b);
    fr_admit_free(c);
}

/* ---- admission in the model ----------------------------------------------------------------------- */

static void test_admission(void **state)
{
    (void)state;
    fr_model *m = new_model(4);
    set_policy(m, 1, 3, 0); /* cat field 1: a row at the 3rd sighting */
    set_policy(m, 3, 2, 0); /* the multi field: at the 2nd */
    const uint64_t K = 777, OTHER = 555;
    fr_features zero_key;
    memset(&zero_key, 0, sizeof zero_key);

    for (int sight = 1; sight <= 2; sight++) {
        train1(m, K, OTHER, 0, T0 + sight);
        assert_false(has_row(m, 1, K));
        assert_true(has_row(m, 2, OTHER)); /* admit_after 1 elsewhere: at first sight */
        /* it reads as zeros: the same score as key 0 */
        fr_features f = sample(K, OTHER, 0, 0, 0).f, g = f;
        g.cat[1] = 0;
        float a[FR_NTASKS], b[FR_NTASKS];
        fr_model_predict(m, &f, 0, a);
        fr_model_predict(m, &g, 0, b);
        assert_memory_equal(a, b, sizeof a);
    }
    /* neither stored nor published */
    assert_int_equal(count_rows(m, 0), 2); /* the scenario's row and OTHER's */
    assert_int_equal(count_rows(m, FR_DIRTY_CHECKPOINT), 2);
    assert_int_equal(count_rows(m, FR_DIRTY_PUBLISH), 2);
    assert_int_equal(fr_model_row_count(m, 1), 0);
    train1(m, K, OTHER, 0, T0 + 3);
    assert_true(has_row(m, 1, K));
    assert_int_equal(fr_model_row_count(m, 1), 1);

    /* the multi field: 1 sighting, none; the 2nd creates it */
    train1(m, 0, OTHER, 99, T0 + 4);
    assert_false(has_row(m, 3, 99));
    train1(m, 0, OTHER, 99, T0 + 5);
    assert_true(has_row(m, 3, 99));

    /* two sightings in one mini-batch count twice */
    fr_sample two[2] = {sample(31337, OTHER, 0, T0 + 6, 0), sample(31337, OTHER, 0, T0 + 6, 1)};
    fr_model_train(m, two, 2, NULL);
    assert_false(has_row(m, 1, 31337));
    train1(m, 31337, OTHER, 0, T0 + 7);
    assert_true(has_row(m, 1, 31337));
    fr_model_free(m);
}

/* Aging through the model: with a half-life of 1 h, two sightings 3 h apart do not admit a key
 * (admit_after 2), two sightings within the hour do; without aging the far-apart pair admits. */
static void test_admission_aging(void **state)
{
    (void)state;
    const int64_t H = HOUR;
    const int64_t base = (T0 / H + 1) * H + H / 10; /* just after a multiple of the half-life */
    for (int aging = 0; aging <= 1; aging++) {
        fr_model *m = new_model(4);
        set_policy_aging(m, 1, 2, 0, aging ? H : 0);
        train1(m, 0, 1, 0, base - H / 20); /* sets the clock, past the same multiple */
        train1(m, 4001, 1, 0, base);
        train1(m, 0, 1, 0, base + 3 * H); /* the clock moves on: three multiples crossed */
        train1(m, 4001, 1, 0, base + 3 * H + 1);
        assert_int_equal(has_row(m, 1, 4001), !aging);
        train1(m, 4002, 1, 0, base + 3 * H + 2);
        train1(m, 4002, 1, 0, base + 3 * H + H / 2); /* same hour */
        assert_true(has_row(m, 1, 4002));
        fr_model_free(m);
    }
}

/* The filter and the clock survive a checkpoint: a run stopped after 2 sightings and restored
 * admits the key at the 3rd, and ends with the digest of a run never stopped. */
static void test_admission_checkpoint_roundtrip(void **state)
{
    (void)state;
    char err[512];
    char *d1 = tmpdir_make("lifecycle"), *d2 = tmpdir_make("lifecycle");
    enum { N = 40 };
    fr_sample s[N];
    for (int i = 0; i < N; i++) s[i] = sample(100 + (uint64_t)(i % 7), 200 + (uint64_t)(i % 3), (uint64_t)(i % 5),
                                              T0 + (int64_t)i * HOUR / 4, i % 2);

    fr_model *a = new_model(4);
    set_policy_aging(a, 1, 3, 2 * HOUR, 3 * HOUR);
    set_policy(a, 2, 4, 0);
    fr_ckpt *ca = fr_ckpt_open(d1, err, sizeof err);
    assert_non_null(ca);
    fr_model_train(a, s, N, NULL);
    checkpoint(ca, a);

    fr_model *b = new_model(4);
    set_policy_aging(b, 1, 3, 2 * HOUR, 3 * HOUR);
    set_policy(b, 2, 4, 0);
    fr_ckpt *cb = fr_ckpt_open(d2, err, sizeof err);
    assert_non_null(cb);
    fr_model_train(b, s, 12, NULL);
    checkpoint(cb, b);
    fr_model_train(b, s + 12, 8, NULL);
    checkpoint(cb, b);
    fr_model_free(b);

    b = fr_ckpt_load_model(cb, err, sizeof err);
    if (!b) fail_msg("load: %s", err);
    set_policy_aging(b, 1, 3, 2 * HOUR, 3 * HOUR);
    set_policy(b, 2, 4, 0);
    if (fr_ckpt_load_admission(cb, b, err, sizeof err) != 0) fail_msg("admission: %s", err);
    assert_int_equal(fr_model_clock(b), s[19].ts);
    fr_model_train(b, s + 20, N - 20, NULL);
    checkpoint(cb, b);

    char da[33], db[33];
    assert_int_equal(fr_ckpt_digest(ca, da), 0);
    assert_int_equal(fr_ckpt_digest(cb, db), 0);
    assert_string_equal(da, db);
    for (uint32_t t = 0; t < 4; t++) assert_int_equal(fr_model_row_count(a, t), fr_model_row_count(b, t));

    /* another filter width is refused */
    fr_model *e = fr_ckpt_load_model(cb, err, sizeof err);
    assert_non_null(e);
    fr_row_policy p;
    fr_row_policy_defaults(&p);
    p.admit_after = 3;
    p.admit_width_log2 = 13;
    assert_int_equal(fr_model_set_row_policy(e, 1, &p, err, sizeof err), 0);
    assert_int_equal(fr_ckpt_load_admission(cb, e, err, sizeof err), -1);
    assert_non_null(strstr(err, "admit_width_log2"));
    fr_model_free(e);

    fr_model_free(a);
    fr_model_free(b);
    fr_ckpt_close(ca);
    fr_ckpt_close(cb);
    tmpdir_remove(d1);
    tmpdir_remove(d2);
}

/* A restart that loses the filter admits later than the run never stopped: the round trip above
 * is therefore a real check (this pins the premise). */
static void test_admission_needs_filter(void **state)
{
    (void)state;
    fr_model *a = new_model(4);
    set_policy(a, 1, 3, 0);
    train1(a, 9, 1, 0, T0);
    train1(a, 9, 1, 0, T0 + 1);
    fr_model *b = new_model(4);
    set_policy(b, 1, 3, 0); /* as a restart without the filter */
    train1(a, 9, 1, 0, T0 + 2);
    train1(b, 9, 1, 0, T0 + 2);
    assert_true(has_row(a, 1, 9));
    assert_false(has_row(b, 1, 9));
    fr_model_free(a);
    fr_model_free(b);
}

/* ---- eviction ----------------------------------------------------------------------------------- */

static void test_eviction(void **state)
{
    (void)state;
    char err[512];
    char *dir = tmpdir_make("lifecycle");
    fr_ckpt *c = fr_ckpt_open(dir, err, sizeof err);
    assert_non_null(c);
    fr_model *m = new_model(4);
    set_policy(m, 1, 1, HOUR); /* cat field 1: 1 h of event time */
    const uint64_t OLD = 11, KEPT = 12;
    train1(m, OLD, 5, 0, T0);
    train1(m, KEPT, 5, 0, T0);
    checkpoint(c, m);
    assert_true(has_row(m, 1, OLD));
    /* 50 min later KEPT is updated, OLD is not; the clock sweeps every 1 h / 16 */
    train1(m, KEPT, 5, 0, T0 + 50 * 60000);
    assert_true(has_row(m, 1, OLD));
    /* 1 h 10 min: OLD's last update is 70 min old; KEPT's 20 min */
    train1(m, 0, 5, 0, T0 + 70 * 60000);
    assert_false(has_row(m, 1, OLD));
    assert_true(has_row(m, 1, KEPT));
    assert_true(has_row(m, 2, 5)); /* no TTL on field 2 */
    assert_int_equal(fr_model_clock(m), T0 + 70 * 60000);
    fr_row_view v;
    assert_int_equal(fr_model_get_row(m, 1, KEPT, &v), 0);
    assert_int_equal(v.updated, (uint32_t)((T0 + 50 * 60000) / 1000));

    del_list dl = {0};
    fr_model_foreach_deleted(m, FR_DIRTY_CHECKPOINT, del_cb, &dl);
    assert_int_equal(dl.n, 1);
    assert_int_equal(dl.table[0], 1);
    assert_int_equal(dl.key[0], OLD);
    fr_row_stats st;
    fr_model_row_stats(m, &st);
    assert_int_equal(st.evicted, 1);

    /* the checkpoint deletes it: a reopened checkpoint has no OLD and loads (row counts agree) */
    checkpoint(c, m);
    dl.n = 0;
    fr_model_foreach_deleted(m, FR_DIRTY_CHECKPOINT, del_cb, &dl);
    assert_int_equal(dl.n, 0);
    dl.n = 0;
    fr_model_foreach_deleted(m, FR_DIRTY_PUBLISH, del_cb, &dl);
    assert_int_equal(dl.n, 1); /* still owed to the publisher */
    fr_ckpt_close(c);
    c = fr_ckpt_open(dir, err, sizeof err);
    assert_non_null(c);
    fr_model *r = fr_ckpt_load_model(c, err, sizeof err);
    if (!r) fail_msg("load: %s", err);
    assert_false(has_row(r, 1, OLD));
    assert_true(has_row(r, 1, KEPT));
    assert_int_equal(fr_model_get_row(r, 1, KEPT, &v), 0);
    assert_int_equal(v.updated, (uint32_t)((T0 + 50 * 60000) / 1000));
    assert_int_equal(fr_model_clock(r), T0 + 70 * 60000);

    /* an evicted key seen again gets a fresh row (its sightings were counted long ago) */
    train1(m, OLD, 5, 0, T0 + 71 * 60000);
    assert_true(has_row(m, 1, OLD));
    fr_model_free(r);
    fr_model_free(m);
    fr_ckpt_close(c);
    tmpdir_remove(dir);
}

/* A ttl near INT64_MAX next to a short one: the short one makes the sweeps, the long one must keep
 * its rows for good (stamp + ttl used to overflow: undefined behaviour, and in a release build every
 * row of the field was evicted at each sweep). Any ttl the policy accepts is safe. */
static void test_eviction_extreme_ttl(void **state)
{
    (void)state;
    fr_model *m = new_model(4);
    set_policy(m, 1, 1, HOUR);
    set_policy(m, 2, 1, INT64_MAX);
    set_policy(m, 3, 1, INT64_MAX - 999); /* the multi field */
    const uint64_t OLD = 11, B = 21, C = 31;
    train1(m, OLD, B, C, T0);
    /* two hours later: a sweep; OLD (1 h ttl) goes, B and C stay */
    train1(m, 0, 0, 0, T0 + 2 * HOUR);
    assert_false(has_row(m, 1, OLD));
    assert_true(has_row(m, 2, B));
    assert_true(has_row(m, 3, C));
    /* ten thousand days later, still there */
    train1(m, 0, 0, 0, T0 + 240000 * HOUR);
    assert_int_equal(fr_model_evict(m), 0);
    assert_true(has_row(m, 2, B));
    assert_true(has_row(m, 3, C));
    fr_row_stats st;
    fr_model_row_stats(m, &st);
    assert_int_equal(st.evicted, 1);
    /* the clock at the end of time: a short ttl still evicts, the longest keeps */
    train1(m, OLD, 0, 0, T0 + 240001 * HOUR);
    assert_int_equal(fr_model_set_clock(m, INT64_MAX), 0);
    assert_int_equal(fr_model_evict(m), 1);
    assert_false(has_row(m, 1, OLD));
    assert_true(has_row(m, 2, B));
    fr_model_free(m);
}

/* ---- Redis: HDEL, the announcement, the reader and the publisher thread --------------------------- */

static long long hexists(int port, const char *prefix, uint32_t table, uint64_t key)
{
    char hkey[FR_REDIS_KEY_MAX];
    unsigned char field[8];
    row_hash_key(hkey, port, prefix, table, key, 0 /* nothing published yet: a small table's one hash */, field);
    redisContext *c = redisConnect("127.0.0.1", port);
    assert_non_null(c);
    redisReply *rep = redisCommand(c, "HEXISTS %s %b", hkey, field, sizeof field);
    assert_non_null(rep);
    long long v = rep->integer;
    freeReplyObject(rep);
    redisFree(c);
    return v;
}

/* The "deleted" field of the newest P:changes entry, or -1. */
static long long last_deleted(int port, const char *prefix)
{
    redisContext *c = redisConnect("127.0.0.1", port);
    assert_non_null(c);
    redisReply *rep = redisCommand(c, "XREVRANGE %s:changes + - COUNT 1", prefix);
    assert_non_null(rep);
    long long v = -1;
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 1) {
        redisReply *kv = rep->element[0]->element[1];
        for (size_t j = 0; j + 1 < kv->elements; j += 2)
            if (!strcmp(kv->element[j]->str, "deleted")) v = atoll(kv->element[j + 1]->str);
    }
    freeReplyObject(rep);
    redisFree(c);
    return v;
}

static void test_eviction_reaches_redis(void **state)
{
    redis_srv *s = need_redis(state);
    char err[512];
    fr_model *m = new_model(4);
    set_policy(m, 1, 1, HOUR);
    const uint64_t OLD = 21, KEPT = 22;
    train1(m, OLD, 5, 0, T0);
    train1(m, KEPT, 5, 0, T0);
    fr_publisher *p = fr_publish_open("127.0.0.1", s->port, "lc1", 2, NULL, err, sizeof err);
    assert_non_null(p);
    fr_publish_info info = {.manifest_json = NULL};
    uint64_t v;
    if (fr_publish_push(p, m, &info, &v, err, sizeof err) != 0) fail_msg("push: %s", err);
    assert_int_equal(hexists(s->port, "lc1", 1, OLD), 1);
    assert_int_equal(last_deleted(s->port, "lc1"), 0);

    fr_reader *r = fr_reader_open("127.0.0.1", s->port, "lc1", err, sizeof err);
    assert_non_null(r);
    assert_int_equal(fr_reader_load_active(r, err, sizeof err), 0);
    fr_features f = sample(OLD, 5, 0, 0, 0).f;
    float got[FR_NTASKS], want[FR_NTASKS];
    assert_int_equal(fr_reader_score(r, &f, 0, got, err, sizeof err), 0);
    assert_true(fr_reader_cached_rows(r) >= 2);

    train1(m, KEPT, 5, 0, T0 + 2 * HOUR); /* OLD expires */
    assert_false(has_row(m, 1, OLD));
    if (fr_publish_push(p, m, &info, &v, err, sizeof err) != 0) fail_msg("push: %s", err);
    fr_publish_stats ps;
    fr_publish_last_stats(p, &ps);
    assert_int_equal(ps.deleted, 1);
    assert_int_equal(hexists(s->port, "lc1", 1, OLD), 0);
    assert_int_equal(hexists(s->port, "lc1", 1, KEPT), 1);
    assert_int_equal(last_deleted(s->port, "lc1"), 1);

    /* the reader forgets its cached rows when the stream announces deletions */
    assert_int_equal(fr_reader_follow(r, 0, err, sizeof err), 1);
    assert_int_equal(fr_reader_cached_rows(r), 0);
    assert_int_equal(fr_reader_score(r, &f, 0, got, err, sizeof err), 0);
    fr_model_predict(m, &f, 0, want);
    for (int t = 0; t < FR_NTASKS; t++) assert_true(fabsf(got[t] - want[t]) <= 1e-6f);

    /* an announcement of deletions alone (no new version: a push repeated at the same version) also
     * drops the held rows; an entry without deletions does not */
    assert_int_equal(fr_reader_score(r, &f, 0, got, err, sizeof err), 0);
    size_t held = fr_reader_cached_rows(r);
    assert_true(held >= 2);
    redisContext *rc = redisConnect("127.0.0.1", s->port);
    redisReply *x = redisCommand(rc, "XADD lc1:changes * version %llu rows 0 full 0 retired 0 deleted 0",
                                 (unsigned long long)fr_reader_version(r));
    freeReplyObject(x);
    assert_int_equal(fr_reader_follow(r, 0, err, sizeof err), 0);
    assert_int_equal(fr_reader_cached_rows(r), held);
    x = redisCommand(rc, "XADD lc1:changes * version %llu rows 0 full 0 retired 0 deleted 3",
                     (unsigned long long)fr_reader_version(r));
    freeReplyObject(x);
    redisFree(rc);
    assert_int_equal(fr_reader_follow(r, 0, err, sizeof err), 0);
    assert_int_equal(fr_reader_cached_rows(r), 0);

    /* the next push announces no deletion */
    train1(m, KEPT, 5, 0, T0 + 2 * HOUR + 1);
    if (fr_publish_push(p, m, &info, &v, err, sizeof err) != 0) fail_msg("push: %s", err);
    assert_int_equal(last_deleted(s->port, "lc1"), 0);
    fr_reader_close(r);
    fr_publish_close(p);
    fr_model_free(m);
}

/* Through the publisher thread: a deleted row is HDEL'ed; one deleted and admitted again before the
 * hand-over ends up written, not deleted. */
static void test_eviction_pubq(void **state)
{
    redis_srv *s = need_redis(state);
    char err[512];
    fr_model *m = new_model(4);
    set_policy(m, 1, 1, HOUR);
    fr_pubq *q = fr_pubq_open("127.0.0.1", s->port, "lc2", 2, NULL, fr_model_get_config(m), NULL, NULL, err, sizeof err);
    assert_non_null(q);
    train1(m, 31, 5, 0, T0);
    train1(m, 32, 5, 0, T0);
    assert_int_equal(fr_pubq_submit(q, m, err, sizeof err), 0);
    assert_int_equal(fr_pubq_flush(q, 10), 0);
    assert_int_equal(hexists(s->port, "lc2", 1, 31), 1);
    assert_int_equal(hexists(s->port, "lc2", 1, 32), 1);
    train1(m, 0, 5, 0, T0 + 2 * HOUR); /* both expire */
    train1(m, 32, 5, 0, T0 + 2 * HOUR + 1); /* 32 comes back */
    assert_false(has_row(m, 1, 31));
    assert_true(has_row(m, 1, 32));
    assert_int_equal(fr_pubq_submit(q, m, err, sizeof err), 0);
    assert_int_equal(fr_pubq_flush(q, 10), 0);
    assert_int_equal(hexists(s->port, "lc2", 1, 31), 0);
    assert_int_equal(hexists(s->port, "lc2", 1, 32), 1);
    /* 32's deletion was superseded by its new row in the pending snapshot: only 31 is deleted */
    assert_int_equal(last_deleted(s->port, "lc2"), 1);
    fr_pubq_close(q, 5);
    fr_model_free(m);
}

/* A row deleted by an earlier process whose deletion never reached Redis (checkpointed, then a
 * crash before the push) is removed by the next process's first, full push -- directly and through
 * the publisher thread -- while the model's rows stay. */
static void test_full_push_removes_strays(void **state)
{
    redis_srv *s = need_redis(state);
    char err[512];
    fr_model *m = new_model(4);
    train1(m, 41, 42, 43, T0);
    for (int via_thread = 0; via_thread < 2; via_thread++) {
        const char *prefix = via_thread ? "lc4" : "lc3";
        /* the stray: a row field of table 1 for a key the model does not hold */
        const uint64_t STRAY = 4040404;
        char hkey[FR_REDIS_KEY_MAX];
        unsigned char field[8];
        /* nothing is published yet: the shard count the first push gives table 1 */
        row_hash_key(hkey, s->port, prefix, 1, STRAY, fr_redis_layout_for_rows(fr_model_row_count(m, 1)), field);
        redisContext *c = redisConnect("127.0.0.1", s->port);
        redisReply *rep = redisCommand(c, "HSET %s %b %s", hkey, field, sizeof field, "stale");
        freeReplyObject(rep);
        redisFree(c);
        assert_int_equal(hexists(s->port, prefix, 1, STRAY), 1);
        if (!via_thread) {
            fr_publisher *p = fr_publish_open("127.0.0.1", s->port, prefix, 2, NULL, err, sizeof err);
            assert_non_null(p);
            fr_publish_info info = {.manifest_json = NULL};
            uint64_t v;
            if (fr_publish_push(p, m, &info, &v, err, sizeof err) != 0) fail_msg("push: %s", err);
            fr_publish_stats ps;
            fr_publish_last_stats(p, &ps);
            assert_int_equal(ps.full, 1);
            assert_int_equal(ps.deleted, 1);
            fr_publish_close(p);
        } else {
            fr_pubq *q = fr_pubq_open("127.0.0.1", s->port, prefix, 2, NULL, fr_model_get_config(m), NULL, NULL, err,
                                      sizeof err);
            assert_non_null(q);
            assert_int_equal(fr_pubq_submit(q, m, err, sizeof err), 0);
            assert_int_equal(fr_pubq_flush(q, 10), 0);
            fr_pubq_close(q, 5);
        }
        assert_int_equal(hexists(s->port, prefix, 1, STRAY), 0);
        assert_int_equal(last_deleted(s->port, prefix), 1);
        assert_int_equal(hexists(s->port, prefix, 1, 41), 1);
        assert_int_equal(hexists(s->port, prefix, 2, 42), 1);
        assert_int_equal(hexists(s->port, prefix, 3, 43), 1);
    }
    fr_model_free(m);
}

/* ---- memory per row ------------------------------------------------------------------------------- */

static void test_memory_per_row(void **state)
{
    (void)state;
    fr_model *m = new_model(8);
    enum { N = 100000 };
    fr_sample *x = calloc(N, sizeof *x);
    assert_non_null(x);
    for (int i = 0; i < N; i++) x[i] = sample(1000 + (uint64_t)i, 7, 0, T0, 0);
    fr_model_train(m, x, N, NULL);
    free(x);
    fr_row_stats st;
    fr_model_row_stats(m, &st);
    assert_true(st.rows >= N);
    double per_row = (double)st.row_bytes / (double)st.rows;
    double raw = 8 + 8 * 8 + 8; /* key, weights and accumulators, version */
    printf("  memory per row at D=8, %llu rows: %.1f B (raw %.0f B, %.2fx)\n", (unsigned long long)st.rows, per_row,
           raw, per_row / raw);
    assert_true(per_row <= 1.3 * raw);
    /* a tiny table (the scenario's: one key here) does not pay for 1024 rows */
    size_t tiny = 0;
    fr_model *t = new_model(8);
    train1(t, 5, 6, 0, T0);
    fr_model_row_stats(t, &st);
    tiny = (size_t)st.row_bytes;
    printf("  4 tables of 1 row each: %zu B\n", tiny);
    assert_true(tiny < 4 * 16 * 100 + 4 * 400);
    fr_model_free(t);
    fr_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_emb_delete),
        cmocka_unit_test(test_emb_delete_keeps_marks),
        cmocka_unit_test(test_admit_filter),
        cmocka_unit_test(test_admission),
        cmocka_unit_test(test_admission_aging),
        cmocka_unit_test(test_admission_checkpoint_roundtrip),
        cmocka_unit_test(test_admission_needs_filter),
        cmocka_unit_test(test_eviction),
        cmocka_unit_test(test_eviction_extreme_ttl),
        cmocka_unit_test(test_eviction_reaches_redis),
        cmocka_unit_test(test_eviction_pubq),
        cmocka_unit_test(test_full_push_removes_strays),
        cmocka_unit_test(test_memory_per_row),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
