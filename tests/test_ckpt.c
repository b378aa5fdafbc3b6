/* Checkpoint tests: round trip, incremental batches, join deletions, digest, write failure, damage to
 * the write-ahead log and the marker. */
#include <dirent.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <rocksdb/c.h>

#include "fr_ckpt.h"
#include "fr_model.h"
#include "fr_testkit.h"
#include "tmpdir.h"

/* ---- helpers ------------------------------------------------------------------------------ */

/* emb_optimizer: 0 = Adagrad, 1 = FTRL with l1 (some weights exactly 0) and l2 */
static fr_model *trained_model_opts(int n_samples, uint64_t seed, int dense_optimizer, int emb_optimizer)
{
    fr_model_config c;
    small_config(&c);
    c.dense_optimizer = dense_optimizer;
    c.emb_optimizer = emb_optimizer;
    c.ftrl_l1 = emb_optimizer ? 0.5f : 0.0f;
    c.ftrl_l2 = emb_optimizer ? 0.25f : 0.0f;
    char err[256];
    fr_model *m = fr_model_create(&c, err, sizeof err);
    assert_non_null(m);
    fr_sample *s = calloc((size_t)n_samples, sizeof *s);
    float(*p)[FR_NTASKS] = calloc((size_t)n_samples, sizeof *p);
    assert_non_null(s);
    assert_non_null(p);
    make_samples(seed, &c, 50, 1, s, n_samples);
    fr_model_train(m, s, n_samples, p);
    free(s);
    free(p);
    return m;
}

static fr_model *trained_model_opt(int n_samples, uint64_t seed, int dense_optimizer)
{
    return trained_model_opts(n_samples, seed, dense_optimizer, 0);
}

static fr_model *trained_model(int n_samples, uint64_t seed) { return trained_model_opt(n_samples, seed, 0); }

static void train_more(fr_model *m, int n, uint64_t seed, uint64_t vocab)
{
    fr_sample *s = calloc((size_t)n, sizeof *s);
    assert_non_null(s);
    make_samples(seed, fr_model_get_config(m), vocab, 1, s, n);
    fr_model_train(m, s, n, NULL);
    free(s);
}


typedef struct {
    uint32_t table;
    uint64_t key, version;
    int nstate;
    float w[16], a[32];
} row_copy;

typedef struct {
    row_copy *rows;
    size_t n, cap;
} row_list;

static int collect_row(const fr_row_view *r, void *ctx)
{
    row_list *l = ctx;
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 256;
        l->rows = realloc(l->rows, l->cap * sizeof *l->rows);
        assert_non_null(l->rows);
    }
    row_copy *c = &l->rows[l->n++];
    memset(c, 0, sizeof *c);
    c->table = r->table;
    c->key = r->key;
    c->version = r->version;
    assert_true(r->dim <= 16 && r->nstate <= 32);
    c->nstate = r->nstate;
    memcpy(c->w, r->weights, sizeof(float) * (size_t)r->dim);
    memcpy(c->a, r->accum, sizeof(float) * (size_t)r->nstate);
    return 0;
}

static int cmp_row(const void *a, const void *b)
{
    const row_copy *x = a, *y = b;
    if (x->table != y->table) return x->table < y->table ? -1 : 1;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    return 0;
}

static row_list rows_of(const fr_model *m, int which)
{
    row_list l = {0};
    fr_model_foreach_row(m, which, collect_row, &l);
    if (l.n) qsort(l.rows, l.n, sizeof *l.rows, cmp_row);
    return l;
}

static size_t count_rows(const fr_model *m, int which)
{
    row_list l = rows_of(m, which);
    free(l.rows);
    return l.n;
}

/* Asserts that two models hold the same parameters and predict the same, bit for bit. */
static void assert_same_model(const fr_model *a, const fr_model *b)
{
    assert_int_equal(fr_model_version(a), fr_model_version(b));
    const fr_model_config *ca = fr_model_get_config(a), *cb = fr_model_get_config(b);
    assert_int_equal(ca->n_cat, cb->n_cat);
    assert_int_equal(ca->n_num, cb->n_num);
    assert_int_equal(ca->n_multi, cb->n_multi);
    assert_int_equal(ca->n_scenarios, cb->n_scenarios);
    assert_int_equal(ca->emb_dim, cb->emb_dim);
    assert_int_equal(ca->n_experts, cb->n_experts);
    assert_int_equal(ca->expert_dim, cb->expert_dim);
    assert_int_equal(ca->tower_dim, cb->tower_dim);
    assert_int_equal(ca->batch_size, cb->batch_size);
    assert_memory_equal(&ca->lr_emb, &cb->lr_emb, sizeof(float));
    assert_memory_equal(&ca->lr_dense, &cb->lr_dense, sizeof(float));
    assert_memory_equal(&ca->adagrad_init, &cb->adagrad_init, sizeof(float));
    assert_memory_equal(&ca->init_scale, &cb->init_scale, sizeof(float));
    assert_int_equal(ca->seed, cb->seed);
    assert_int_equal(ca->emb_optimizer, cb->emb_optimizer);
    assert_memory_equal(&ca->ftrl_alpha, &cb->ftrl_alpha, sizeof(float));
    assert_memory_equal(&ca->ftrl_beta, &cb->ftrl_beta, sizeof(float));
    assert_memory_equal(&ca->ftrl_l1, &cb->ftrl_l1, sizeof(float));
    assert_memory_equal(&ca->ftrl_l2, &cb->ftrl_l2, sizeof(float));
    size_t n = fr_model_dense_count(a);
    assert_int_equal(n, fr_model_dense_count(b));
    assert_memory_equal(fr_model_dense_params(a), fr_model_dense_params(b), n * sizeof(float));
    assert_int_equal(fr_model_dense_state_count(a), fr_model_dense_state_count(b));
    assert_memory_equal(fr_model_dense_accum(a), fr_model_dense_accum(b), fr_model_dense_state_count(a) * sizeof(float));
    row_list ra = rows_of(a, 0), rb = rows_of(b, 0);
    assert_int_equal(ra.n, rb.n);
    for (size_t i = 0; i < ra.n; i++) assert_memory_equal(&ra.rows[i], &rb.rows[i], sizeof(row_copy));
    free(ra.rows);
    free(rb.rows);
    uint64_t s = 99;
    for (int i = 0; i < 100; i++) {
        fr_features f;
        make_features(&s, fr_model_get_config(a), 60, &f);
        float pa[FR_NTASKS], pb[FR_NTASKS];
        fr_model_predict(a, &f, i % 2, pa);
        fr_model_predict(b, &f, i % 2, pb);
        assert_memory_equal(pa, pb, sizeof pa);
    }
}

static void write_checkpoint(fr_ckpt *c, fr_model *m, int64_t off_a, const char *counters)
{
    char err[512];
    fr_ckpt_batch *b = fr_ckpt_begin(c);
    assert_non_null(b);
    assert_int_equal(fr_ckpt_put_model(b, m), 0);
    assert_int_equal(fr_ckpt_put_join_entry(b, "imp-1", 5, "AAAA", 4), 0);
    assert_int_equal(fr_ckpt_put_join_entry(b, "imp-2", 5, "BBBBBB", 6), 0);
    assert_int_equal(fr_ckpt_put_join_entry(b, "imp-3", 5, "C", 1), 0);
    assert_int_equal(fr_ckpt_put_join_meta(b, "meta!", 5), 0);
    assert_int_equal(fr_ckpt_put_offset(b, "impressions/0", off_a), 0);
    assert_int_equal(fr_ckpt_put_offset(b, "clicks/3", -1001), 0);
    assert_int_equal(fr_ckpt_put_blob(b, "counters", counters, strlen(counters)), 0);
    assert_int_equal(fr_ckpt_put_blob(b, "batch", NULL, 0), 0);
    int rc = fr_ckpt_commit(b, err, sizeof err);
    if (rc != 0) fail_msg("commit failed: %s", err);
    fr_model_clear_dirty(m, FR_DIRTY_CHECKPOINT);
}

typedef struct {
    char names[8][32];
    int64_t offs[8];
    int n;
} offsets_seen;

static int collect_offset(const char *source, int64_t next, void *ctx)
{
    offsets_seen *o = ctx;
    assert_true(o->n < 8);
    snprintf(o->names[o->n], sizeof o->names[0], "%s", source);
    o->offs[o->n++] = next;
    return 0;
}

typedef struct {
    char ids[8][16];
    char vals[8][16];
    int n;
} joins_seen;

static int collect_join(const char *k, size_t kl, const void *v, size_t vl, void *ctx)
{
    joins_seen *j = ctx;
    assert_true(j->n < 8 && kl < 16 && vl < 16);
    memcpy(j->ids[j->n], k, kl);
    j->ids[j->n][kl] = '\0';
    memcpy(j->vals[j->n], v, vl);
    j->vals[j->n][vl] = '\0';
    j->n++;
    return 0;
}

/* ---- tests -------------------------------------------------------------------------------- */

static void test_empty_directory(void **state)
{
    (void)state;
    char *d = tmpdir_make("ckpt");
    char err[512];
    fr_ckpt *c = fr_ckpt_open(d, err, sizeof err);
    assert_non_null(c);
    assert_int_equal(fr_ckpt_exists(c), 0);
    assert_null(fr_ckpt_load_model(c, err, sizeof err));
    assert_non_null(strstr(err, "no model"));
    assert_int_equal(fr_ckpt_get_blob(c, "counters", NULL, 0), -1);
    /* a second daemon on the same directory is refused with a reason */
    fr_ckpt *c2 = fr_ckpt_open(d, err, sizeof err);
    assert_null(c2);
    assert_non_null(strstr(err, "another freshet daemon"));
    fr_ckpt_close(c);
    tmpdir_remove(d);
}

static void test_round_trip(void **state)
{
    (void)state;
    char *d = tmpdir_make("ckpt");
    char err[512];
    fr_model *m = trained_model(400, 1);
    assert_true(fr_model_version(m) > 0);
    fr_ckpt *c = fr_ckpt_open(d, err, sizeof err);
    assert_non_null(c);
    write_checkpoint(c, m, 12345, "counters-v1");
    assert_int_equal(fr_ckpt_exists(c), 1);
    fr_ckpt_close(c);

    c = fr_ckpt_open(d, err, sizeof err);
    assert_non_null(c);
    assert_int_equal(fr_ckpt_exists(c), 1);
    fr_model *l = fr_ckpt_load_model(c, err, sizeof err);
    if (!l) fail_msg("load: %s", err);
    assert_same_model(m, l);
    assert_int_equal(count_rows(l, FR_DIRTY_CHECKPOINT), 0);
    assert_int_equal(count_rows(l, FR_DIRTY_PUBLISH), 0);

    offsets_seen o = {0};
    assert_int_equal(fr_ckpt_foreach_offset(c, collect_offset, &o, err, sizeof err), 0);
    assert_int_equal(o.n, 2);
    assert_string_equal(o.names[0], "clicks/3"); /* key order */
    assert_int_equal(o.offs[0], -1001);
    assert_string_equal(o.names[1], "impressions/0");
    assert_int_equal(o.offs[1], 12345);

    char buf[64];
    assert_int_equal(fr_ckpt_get_blob(c, "counters", buf, sizeof buf), 11);
    assert_memory_equal(buf, "counters-v1", 11);
    assert_int_equal(fr_ckpt_get_blob(c, "counters", buf, 3), 11); /* length even when truncated */
    assert_int_equal(fr_ckpt_get_blob(c, "batch", buf, sizeof buf), 0);
    assert_int_equal(fr_ckpt_get_blob(c, "nope", buf, sizeof buf), -1);
    assert_int_equal(fr_ckpt_get_join_meta(c, buf, sizeof buf), 5);
    assert_memory_equal(buf, "meta!", 5);

    joins_seen j = {0};
    assert_int_equal(fr_ckpt_foreach_join_entry(c, collect_join, &j), 0);
    assert_int_equal(j.n, 3);
    assert_string_equal(j.ids[1], "imp-2");
    assert_string_equal(j.vals[1], "BBBBBB");

    /* the loaded model trains on exactly like the original */
    train_more(m, 64, 7, 50);
    train_more(l, 64, 7, 50);
    assert_same_model(m, l);

    fr_model_free(l);
    fr_model_free(m);
    fr_ckpt_close(c);
    tmpdir_remove(d);
}

/* Adam's two moment arrays are the dense state: they survive the checkpoint, and the step count
 * (the model version) with them, so the restored model trains on bit for bit. */
static void test_round_trip_adam(void **state)
{
    (void)state;
    char *d = tmpdir_make("ckpt");
    char err[512];
    fr_model *m = trained_model_opt(400, 3, 1);
    assert_int_equal(fr_model_dense_state_count(m), 2 * fr_model_dense_count(m));
    fr_ckpt *c = fr_ckpt_open(d, err, sizeof err);
    assert_non_null(c);
    write_checkpoint(c, m, 1, "x");
    fr_model *l = fr_ckpt_load_model(c, err, sizeof err);
    if (!l) fail_msg("load: %s", err);
    assert_int_equal(fr_model_get_config(l)->dense_optimizer, 1);
    assert_same_model(m, l);
    train_more(m, 64, 7, 50);
    train_more(l, 64, 7, 50);
    assert_same_model(m, l);
    fr_model_free(l);
    fr_model_free(m);
    fr_ckpt_close(c);
    tmpdir_remove(d);
}

/* FTRL rows carry z and n (the row value grows by 4 x emb_dim bytes): a checkpoint, written in
 * two increments, restores a model that trains on bit for bit, exact zeros (l1) included. */
static int count_zero_cb(const fr_row_view *r, void *ctx)
{
    for (int i = 0; i < r->dim; i++) *(size_t *)ctx += r->weights[i] == 0.0f;
    return 0;
}

static int row_value_len_cb(const char *k, size_t kl, const void *v, size_t vl, void *ctx)
{
    (void)v;
    if (kl == 13 && k[0] == 'E') {
        size_t *want = ctx;
        assert_int_equal(vl, want[0]);
        want[1]++;
    }
    return 0;
}

static void test_round_trip_ftrl(void **state)
{
    (void)state;
    char *d = tmpdir_make("ckpt");
    char err[512];
    fr_model *m = trained_model_opts(400, 5, 0, 1);
    const int dim = fr_model_get_config(m)->emb_dim;
    assert_int_equal(fr_model_row_state_count(m), 2 * (size_t)dim);
    size_t zeros = 0;
    fr_model_foreach_row(m, 0, count_zero_cb, &zeros);
    assert_true(zeros > 0);
    fr_ckpt *c = fr_ckpt_open(d, err, sizeof err);
    assert_non_null(c);
    write_checkpoint(c, m, 1, "x");
    train_more(m, 40, 8, 400); /* new rows and updated ones: the second checkpoint is incremental */
    write_checkpoint(c, m, 2, "y");
    size_t want[2] = {12 + 12 * (size_t)dim, 0}; /* version, weights, z, n, stamp */
    assert_int_equal(fr_ckpt_foreach(c, row_value_len_cb, want), 0);
    assert_int_equal(want[1], count_rows(m, 0));
    fr_model *l = fr_ckpt_load_model(c, err, sizeof err);
    if (!l) fail_msg("load: %s", err);
    assert_int_equal(fr_model_get_config(l)->emb_optimizer, 1);
    assert_same_model(m, l);
    train_more(m, 64, 7, 50);
    train_more(l, 64, 7, 50);
    assert_same_model(m, l);
    fr_model_free(l);
    fr_model_free(m);
    fr_ckpt_close(c);
    tmpdir_remove(d);
}

static void test_incremental(void **state)
{
    (void)state;
    char *d = tmpdir_make("ckpt");
    char err[512];
    fr_model *m = trained_model(400, 2);
    size_t total = count_rows(m, 0);
    fr_ckpt *c = fr_ckpt_open(d, err, sizeof err);
    assert_non_null(c);

    fr_ckpt_batch *b = fr_ckpt_begin(c);
    assert_int_equal(fr_ckpt_put_model(b, m), 0);
    fr_ckpt_batch_stats st;
    fr_ckpt_batch_get_stats(b, &st);
    assert_int_equal(st.rows, total); /* the first checkpoint holds every row */
    assert_int_equal(fr_ckpt_commit(b, err, sizeof err), 0);
    fr_model_clear_dirty(m, FR_DIRTY_CHECKPOINT);

    /* a few samples over a larger vocabulary: some new rows, some updated ones */
    train_more(m, 16, 3, 400);
    size_t dirty = count_rows(m, FR_DIRTY_CHECKPOINT);
    assert_true(dirty > 0 && dirty < count_rows(m, 0));
    b = fr_ckpt_begin(c);
    assert_int_equal(fr_ckpt_put_model(b, m), 0);
    fr_ckpt_batch_get_stats(b, &st);
    assert_int_equal(st.rows, dirty);
    assert_int_equal(st.entries, dirty + 4); /* rows + marker + dense + meta + lifecycle blob */
    assert_true(st.bytes > dirty * 8);
    assert_int_equal(fr_ckpt_commit(b, err, sizeof err), 0);
    fr_model_clear_dirty(m, FR_DIRTY_CHECKPOINT);

    fr_model *l = fr_ckpt_load_model(c, err, sizeof err);
    if (!l) fail_msg("load: %s", err);
    assert_same_model(m, l);
    fr_model_free(l);

    /* a put failure is reported by commit, and nothing is written */
    char before[33], after[33];
    assert_int_equal(fr_ckpt_digest(c, before), 0);
    b = fr_ckpt_begin(c);
    assert_int_equal(fr_ckpt_put_blob(b, "x", "1", 1), 0);
    assert_int_equal(fr_ckpt_put_offset(b, "", 5), -1);
    assert_int_equal(fr_ckpt_put_blob(b, "y", "1", 1), -1);
    assert_int_equal(fr_ckpt_commit(b, err, sizeof err), -1);
    assert_non_null(strstr(err, "checkpoint not written"));
    assert_non_null(strstr(err, "empty name"));
    assert_int_equal(fr_ckpt_digest(c, after), 0);
    assert_string_equal(before, after);

    fr_model_free(m);
    fr_ckpt_close(c);
    tmpdir_remove(d);
}

static void test_join_deletes(void **state)
{
    (void)state;
    char *d = tmpdir_make("ckpt");
    char err[512];
    fr_model *m = trained_model(64, 3);
    fr_ckpt *c = fr_ckpt_open(d, err, sizeof err);
    assert_non_null(c);
    write_checkpoint(c, m, 1, "c");

    fr_ckpt_batch *b = fr_ckpt_begin(c);
    assert_int_equal(fr_ckpt_put_join_entry(b, "imp-2", 5, NULL, 0), 0);
    assert_int_equal(fr_ckpt_put_join_entry(b, "imp-9", 5, "NEW", 3), 0);
    fr_ckpt_batch_stats st;
    fr_ckpt_batch_get_stats(b, &st);
    assert_int_equal(st.join_deletes, 1);
    assert_int_equal(st.join_puts, 1);
    assert_int_equal(fr_ckpt_commit(b, err, sizeof err), 0);

    joins_seen j = {0};
    assert_int_equal(fr_ckpt_foreach_join_entry(c, collect_join, &j), 0);
    assert_int_equal(j.n, 3);
    assert_string_equal(j.ids[0], "imp-1");
    assert_string_equal(j.ids[1], "imp-3");
    assert_string_equal(j.ids[2], "imp-9");
    assert_string_equal(j.vals[2], "NEW");
    fr_model_free(m);
    fr_ckpt_close(c);
    tmpdir_remove(d);
}

/* The join family answers point reads right after a commit (no flush), and its entries are listed
 * as "J" + id between the rows and the join meta, as format 1 stored them. */
typedef struct {
    char keys[16][16];
    int n;
} key_list;

static int list_non_rows(const char *k, size_t kl, const void *v, size_t vl, void *ctx)
{
    (void)v, (void)vl;
    key_list *l = ctx;
    if (k[0] == 'E' || l->n == 16) return 0;
    snprintf(l->keys[l->n++], 16, "%.*s", (int)kl, k);
    return 0;
}

static void test_join_family(void **state)
{
    (void)state;
    char *d = tmpdir_make("ckpt");
    char err[512];
    fr_model *m = trained_model(64, 3);
    fr_ckpt *c = fr_ckpt_open(d, err, sizeof err);
    assert_non_null(c);
    write_checkpoint(c, m, 1, "c");
    char buf[16];
    assert_int_equal(fr_ckpt_get_join_entry(c, "imp-2", 5, buf, sizeof buf), 6);
    assert_memory_equal(buf, "BBBBBB", 6);
    assert_int_equal(fr_ckpt_get_join_entry(c, "imp-4", 5, buf, sizeof buf), -1);
    fr_ckpt_batch *b = fr_ckpt_begin(c);
    assert_int_equal(fr_ckpt_put_join_entry(b, "imp-2", 5, "XY", 2), 0);
    assert_int_equal(fr_ckpt_put_join_entry(b, "imp-3", 5, NULL, 0), 0);
    assert_int_equal(fr_ckpt_commit(b, err, sizeof err), 0);
    assert_int_equal(fr_ckpt_get_join_entry(c, "imp-2", 5, buf, sizeof buf), 2);
    assert_memory_equal(buf, "XY", 2);
    assert_int_equal(fr_ckpt_get_join_entry(c, "imp-3", 5, buf, sizeof buf), -1);
    key_list l = {0};
    assert_int_equal(fr_ckpt_foreach(c, list_non_rows, &l), 0);
    /* the lifecycle blob (model clock) sits between the application blobs and the dense key */
    const char *want[] = {"#", "Cbatch", "Ccounters", "Clifecycle", "D", "Jimp-1", "Jimp-2", "K", "M"};
    assert_true(l.n >= 9);
    for (int i = 0; i < 9; i++) assert_string_equal(l.keys[i], want[i]);
    fr_ckpt_close(c);

    /* A read-only open sees the family too. */
    c = fr_ckpt_open_readonly(d, err, sizeof err);
    assert_non_null(c);
    assert_int_equal(fr_ckpt_get_join_entry(c, "imp-1", 5, buf, sizeof buf), 4);
    fr_ckpt_close(c);
    fr_model_free(m);
    tmpdir_remove(d);
}

/* A directory of format 1 (join entries in "default", no "join" family) is refused with the
 * version, read-write or read-only, and left as it was. */
static void test_format_1_refused(void **state)
{
    (void)state;
    char *d = tmpdir_make("ckpt");
    rocksdb_options_t *o = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(o, 1);
    char *rerr = NULL;
    rocksdb_t *db = rocksdb_open(o, d, &rerr);
    assert_null(rerr);
    rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
    const char marker[8] = {'F', 'R', 'C', '1', 1, 0, 0, 0};
    rocksdb_put(db, wo, "#", 1, marker, sizeof marker, &rerr);
    assert_null(rerr);
    rocksdb_put(db, wo, "Jimp-1", 6, "AAAA", 4, &rerr);
    assert_null(rerr);
    rocksdb_writeoptions_destroy(wo);
    rocksdb_close(db);
    char err[512];
    assert_null(fr_ckpt_open(d, err, sizeof err));
    assert_non_null(strstr(err, "format version 1"));
    assert_null(fr_ckpt_open_readonly(d, err, sizeof err));
    assert_non_null(strstr(err, "format version 1"));
    size_t n = 0;
    char **cfs = rocksdb_list_column_families(o, d, &n, &rerr);
    assert_null(rerr);
    assert_int_equal(n, 1); /* no "join" family was added */
    rocksdb_list_column_families_destroy(cfs, n);
    rocksdb_options_destroy(o);
    tmpdir_remove(d);
}

typedef struct {
    size_t n;
    char last[64];
    size_t last_len;
    int ordered;
} order_ctx;

static int check_order(const char *k, size_t kl, const void *v, size_t vl, void *ctx)
{
    (void)v;
    (void)vl;
    order_ctx *o = ctx;
    if (o->n) {
        size_t n = kl < o->last_len ? kl : o->last_len;
        int c = memcmp(o->last, k, n);
        if (c > 0 || (c == 0 && o->last_len >= kl)) o->ordered = 0;
    }
    o->last_len = kl < sizeof o->last ? kl : sizeof o->last;
    memcpy(o->last, k, o->last_len);
    o->n++;
    return 0;
}

static void test_digest(void **state)
{
    (void)state;
    char *d = tmpdir_make("ckpt");
    char err[512];
    fr_model *m = trained_model(200, 4);
    fr_ckpt *c = fr_ckpt_open(d, err, sizeof err);
    assert_non_null(c);
    write_checkpoint(c, m, 77, "counters-A");
    char d1[33], d2[33], d3[33], d4[33];
    assert_int_equal(fr_ckpt_digest(c, d1), 0);
    assert_int_equal(strlen(d1), 32);

    order_ctx o = {.ordered = 1};
    assert_int_equal(fr_ckpt_foreach(c, check_order, &o), 0);
    assert_true(o.ordered);
    /* marker, meta, dense, 3 join entries, join meta, 2 offsets, 2 blobs + lifecycle, every row */
    assert_int_equal(o.n, 12 + count_rows(m, 0));
    fr_ckpt_close(c);

    /* stable across reopen, and through a read-only handle */
    c = fr_ckpt_open_readonly(d, err, sizeof err);
    assert_non_null(c);
    assert_int_equal(fr_ckpt_digest(c, d2), 0);
    assert_string_equal(d1, d2);
    /* a read-only handle refuses to commit, with RocksDB's reason */
    fr_ckpt_batch *b = fr_ckpt_begin(c);
    assert_int_equal(fr_ckpt_put_blob(b, "counters", "x", 1), 0);
    assert_int_equal(fr_ckpt_commit(b, err, sizeof err), -1);
    assert_non_null(strstr(err, "checkpoint not written; the daemon must stop consuming"));
    fr_ckpt_close(c);

    c = fr_ckpt_open(d, err, sizeof err);
    assert_non_null(c);
    b = fr_ckpt_begin(c);
    assert_int_equal(fr_ckpt_put_blob(b, "counters", "counters-B", 10), 0);
    assert_int_equal(fr_ckpt_commit(b, err, sizeof err), 0);
    assert_int_equal(fr_ckpt_digest(c, d3), 0);
    assert_string_not_equal(d1, d3);
    /* the digest is of the content, not of the history */
    b = fr_ckpt_begin(c);
    assert_int_equal(fr_ckpt_put_blob(b, "counters", "counters-A", 10), 0);
    assert_int_equal(fr_ckpt_commit(b, err, sizeof err), 0);
    assert_int_equal(fr_ckpt_digest(c, d4), 0);
    assert_string_equal(d1, d4);

    fr_model_free(m);
    fr_ckpt_close(c);
    tmpdir_remove(d);
}

static off_t largest_file(const char *d)
{
    off_t max = 0;
    DIR *dir = opendir(d);
    assert_non_null(dir);
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", d, e->d_name);
        struct stat st;
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > max) max = st.st_size;
    }
    closedir(dir);
    return max;
}

/* A real I/O failure: RLIMIT_FSIZE makes the WAL append fail with EFBIG, as a full disk would
 * (permission tricks do not work for root). */
static void test_write_failure(void **state)
{
    (void)state;
    char *d = tmpdir_make("ckpt");
    char err[512];
    fr_model *m = trained_model(200, 5);
    fr_ckpt *c = fr_ckpt_open(d, err, sizeof err);
    assert_non_null(c);
    write_checkpoint(c, m, 10, "counters-1");
    char before[33];
    assert_int_equal(fr_ckpt_digest(c, before), 0);

    train_more(m, 32, 9, 50);
    size_t dirty = count_rows(m, FR_DIRTY_CHECKPOINT);
    assert_true(dirty > 0);

    struct rlimit old, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
    lim = old;
    lim.rlim_cur = (rlim_t)largest_file(d) + 4096;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);

    size_t big_len = 1 << 20;
    char *big = calloc(1, big_len);
    assert_non_null(big);
    fr_ckpt_batch *b = fr_ckpt_begin(c);
    assert_int_equal(fr_ckpt_put_model(b, m), 0);
    assert_int_equal(fr_ckpt_put_blob(b, "counters", big, big_len), 0);
    int rc = fr_ckpt_commit(b, err, sizeof err);

    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, old_handler);
    free(big);
    assert_int_equal(rc, -1);
    assert_non_null(strstr(err, "RocksDB write failed"));
    assert_non_null(strstr(err, "checkpoint not written; the daemon must stop consuming"));
    print_message("  expected failure: %s\n", err);
    /* the caller keeps the dirty marks since the commit failed */
    assert_int_equal(count_rows(m, FR_DIRTY_CHECKPOINT), dirty);
    fr_ckpt_close(c);

    /* the previous checkpoint is intact */
    c = fr_ckpt_open(d, err, sizeof err);
    if (!c) fail_msg("reopen: %s", err);
    char after[33];
    assert_int_equal(fr_ckpt_digest(c, after), 0);
    assert_string_equal(before, after);
    fr_model *l = fr_ckpt_load_model(c, err, sizeof err);
    if (!l) fail_msg("load: %s", err);
    char buf[32];
    assert_int_equal(fr_ckpt_get_blob(c, "counters", buf, sizeof buf), 10);
    assert_memory_equal(buf, "counters-1", 10);

    /* and the retry on the reopened handle writes it */
    b = fr_ckpt_begin(c);
    assert_int_equal(fr_ckpt_put_model(b, m), 0);
    assert_int_equal(fr_ckpt_commit(b, err, sizeof err), 0);
    fr_model_clear_dirty(m, FR_DIRTY_CHECKPOINT);
    fr_model *l2 = fr_ckpt_load_model(c, err, sizeof err);
    assert_non_null(l2);
    assert_same_model(m, l2);

    fr_model_free(l2);
    fr_model_free(l);
    fr_model_free(m);
    fr_ckpt_close(c);
    tmpdir_remove(d);
}

/* ---- damage to the write-ahead log ------------------------------------------------------- */

/* The oldest and the newest write-ahead log of a directory (RocksDB names them NNNNNN.log, in
 * creation order; "LOG" is its info log). n: how many there are. */
static int wal_paths(const char *d, char *oldest, char *newest, size_t cap)
{
    DIR *dir = opendir(d);
    assert_non_null(dir);
    struct dirent *e;
    int n = 0;
    char lo[256] = "", hi[256] = "";
    while ((e = readdir(dir)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len < 5 || len >= sizeof lo || strcmp(e->d_name + len - 4, ".log") != 0) continue;
        if (!n || strcmp(e->d_name, lo) < 0) snprintf(lo, sizeof lo, "%s", e->d_name);
        if (!n || strcmp(e->d_name, hi) > 0) snprintf(hi, sizeof hi, "%s", e->d_name);
        n++;
    }
    closedir(dir);
    assert_true(n > 0);
    if (oldest) snprintf(oldest, cap, "%s/%s", d, lo);
    if (newest) snprintf(newest, cap, "%s/%s", d, hi);
    return n;
}

static void wal_path(const char *d, char *out, size_t cap) { assert_int_equal(wal_paths(d, NULL, out, cap), 1); }

static off_t file_size(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_size;
}

static void patch_file(const char *path, off_t at, const void *bytes, size_t len)
{
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    assert_int_equal(fseeko(f, at, SEEK_SET), 0);
    assert_int_equal(fwrite(bytes, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static void read_file(const char *path, unsigned char *buf, size_t len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fread(buf, 1, len, f), len);
    fclose(f);
}

/* The first 4 KiB-aligned block from about `from` on that is not all zeros (blobs hold long runs
 * of them: zeroing those would change nothing). */
static off_t nonzero_block(const char *path, off_t from)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    unsigned char b[4096];
    for (off_t at = from - from % 4096;; at += 4096) {
        assert_int_equal(fseeko(f, at, SEEK_SET), 0);
        assert_int_equal(fread(b, 1, sizeof b, f), sizeof b);
        size_t nz = 0;
        for (size_t i = 0; i < sizeof b; i++) nz += b[i] != 0;
        if (nz >= 64) {
            fclose(f);
            return at;
        }
    }
}

/* Three checkpoints in two write-ahead logs: a read after the first flushes the default family's
 * memtable, which closes the first log (kept: it still holds the join family's entries). */
static char *three_checkpoints(void)
{
    char *d = tmpdir_make("wal");
    char err[512], buf[16];
    fr_model *m = trained_model(200, 6);
    fr_ckpt *c = fr_ckpt_open(d, err, sizeof err);
    assert_non_null(c);
    write_checkpoint(c, m, 10, "counters-1");
    assert_int_equal(fr_ckpt_get_blob(c, "counters", buf, sizeof buf), 10);
    train_more(m, 64, 7, 80);
    write_checkpoint(c, m, 20, "counters-2");
    train_more(m, 64, 8, 80);
    write_checkpoint(c, m, 30, "counters-3");
    fr_ckpt_close(c);
    fr_model_free(m);
    return d;
}

typedef enum {
    FLIP_MIDDLE,
    FLIP_LAST_RECORD,
    ZERO_BLOCK,
    CUT_HALF,
    CUT_LAST_BYTES,
    CUT_ALL,
    DELETE_LOG,
    CUT_CLOSED_LOG,
    DELETE_CLOSED_LOG,
    BAD_RECORD
} damage;

/* Every kind of damage is refused, read-write and read-only, with a message that names it; none
 * of them opens at an older checkpoint (which is what kPointInTimeRecovery did for all of them). */
static void test_wal_damage_refused(void **state)
{
    (void)state;
    static const struct {
        damage how;
        const char *name, *expect;
    } cases[] = {
        {FLIP_MIDDLE, "a byte flipped in the middle", "Corruption"},
        {FLIP_LAST_RECORD, "a byte flipped in the last record", "Corruption"},
        {ZERO_BLOCK, "a 4 KiB block zeroed", "Corruption"},
        {CUT_HALF, "cut to half", "lost committed checkpoints"},
        {CUT_LAST_BYTES, "the last 10 bytes cut", "lost committed checkpoints"},
        {CUT_ALL, "cut to 0 bytes", "lost committed checkpoints"},
        {DELETE_LOG, "deleted", "lost committed checkpoints"},
        {CUT_CLOSED_LOG, "closed log cut short", "Size mismatch"},
        {DELETE_CLOSED_LOG, "closed log deleted", "Missing WAL"},
        {BAD_RECORD, "commit record damaged", "FRESHET-COMMITTED is damaged"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *d = three_checkpoints();
        char wal[1024], closed[1024], rec[1024], err[1024];
        assert_int_equal(wal_paths(d, closed, wal, sizeof wal), 2);
        snprintf(rec, sizeof rec, "%s/FRESHET-COMMITTED", d);
        off_t size = file_size(wal);
        assert_true(size > 8192);
        const unsigned char ff = 0xff, zeros[4096] = {0};
        switch (cases[i].how) {
        case FLIP_MIDDLE: patch_file(wal, size / 2, &ff, 1); break;
        case FLIP_LAST_RECORD: patch_file(wal, size - 40, &ff, 1); break;
        case ZERO_BLOCK: patch_file(wal, nonzero_block(wal, size / 3), zeros, sizeof zeros); break;
        case CUT_HALF: assert_int_equal(truncate(wal, size / 2), 0); break;
        case CUT_LAST_BYTES: assert_int_equal(truncate(wal, size - 10), 0); break;
        case CUT_ALL: assert_int_equal(truncate(wal, 0), 0); break;
        case DELETE_LOG: assert_int_equal(unlink(wal), 0); break;
        case CUT_CLOSED_LOG: assert_int_equal(truncate(closed, file_size(closed) - 10), 0); break;
        case DELETE_CLOSED_LOG: assert_int_equal(unlink(closed), 0); break;
        case BAD_RECORD: patch_file(rec, 6, &ff, 1); break;
        }
        for (int ro = 1; ro >= 0; ro--) {
            err[0] = '\0';
            fr_ckpt *c = ro ? fr_ckpt_open_readonly(d, err, sizeof err) : fr_ckpt_open(d, err, sizeof err);
            if (c) fail_msg("WAL %s: opened %s", cases[i].name, ro ? "read-only" : "read-write");
            if (!strstr(err, cases[i].expect))
                fail_msg("WAL %s: expected \"%s\" in: %s", cases[i].name, cases[i].expect, err);
        }
        print_message("  WAL %s: %.160s...\n", cases[i].name, err);
        tmpdir_remove(d);
    }
}

/* A crash in the middle of a commit leaves an incomplete record at the end of the log, and the
 * commit record still names the previous checkpoint (it is written after the fsync). That is not
 * damage: the directory opens at the previous checkpoint. The same cut with the commit acknowledged
 * is a lost checkpoint and refused. */
static void test_torn_tail_restarts(void **state)
{
    (void)state;
    char *d = tmpdir_make("wal");
    char err[512], wal[1024], rec[1024];
    snprintf(rec, sizeof rec, "%s/FRESHET-COMMITTED", d);
    fr_model *m = trained_model(200, 6);
    fr_ckpt *c = fr_ckpt_open(d, err, sizeof err);
    assert_non_null(c);
    write_checkpoint(c, m, 10, "counters-1");
    wal_path(d, wal, sizeof wal);
    off_t acked = file_size(wal);
    unsigned char record_1[16];
    read_file(rec, record_1, sizeof record_1);
    train_more(m, 64, 7, 80);
    write_checkpoint(c, m, 20, "counters-2");
    fr_ckpt_close(c);
    off_t full = file_size(wal);
    assert_true(full > acked + 64);

    /* acknowledged, then cut: refused */
    assert_int_equal(truncate(wal, acked + (full - acked) / 2), 0);
    assert_null(fr_ckpt_open_readonly(d, err, sizeof err));
    assert_non_null(strstr(err, "lost committed checkpoints"));

    /* torn before it was acknowledged: the previous checkpoint, as after a kill -9 */
    patch_file(rec, 0, record_1, sizeof record_1);
    c = fr_ckpt_open(d, err, sizeof err);
    if (!c) fail_msg("a torn last write must restart cleanly: %s", err);
    char buf[32];
    assert_int_equal(fr_ckpt_get_blob(c, "counters", buf, sizeof buf), 10);
    assert_memory_equal(buf, "counters-1", 10);
    fr_model *l = fr_ckpt_load_model(c, err, sizeof err);
    if (!l) fail_msg("load: %s", err);
    /* and it goes on from there */
    write_checkpoint(c, m, 30, "counters-3");
    fr_ckpt_close(c);
    c = fr_ckpt_open_readonly(d, err, sizeof err);
    if (!c) fail_msg("reopen: %s", err);
    assert_int_equal(fr_ckpt_get_blob(c, "counters", buf, sizeof buf), 10);
    assert_memory_equal(buf, "counters-3", 10);
    fr_ckpt_close(c);
    fr_model_free(l);
    fr_model_free(m);
    tmpdir_remove(d);
}

/* Keys without the marker are a damaged checkpoint, not an empty directory: refused, and left as
 * it was (starting afresh would write a new checkpoint over the old keys). */
static void test_missing_marker_refused(void **state)
{
    (void)state;
    char *d = tmpdir_make("ckpt");
    char err[512];
    fr_model *m = trained_model(200, 4);
    fr_ckpt *c = fr_ckpt_open(d, err, sizeof err);
    assert_non_null(c);
    write_checkpoint(c, m, 77, "counters-A");
    fr_ckpt_close(c);

    rocksdb_options_t *o = rocksdb_options_create();
    const char *names[2] = {"default", "join"};
    const rocksdb_options_t *cfo[2] = {o, o};
    rocksdb_column_family_handle_t *h[2] = {NULL, NULL};
    char *rerr = NULL;
    rocksdb_t *db = rocksdb_open_column_families(o, d, 2, names, cfo, h, &rerr);
    assert_null(rerr);
    rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
    rocksdb_delete(db, wo, "#", 1, &rerr);
    assert_null(rerr);
    rocksdb_writeoptions_destroy(wo);
    rocksdb_column_family_handle_destroy(h[0]);
    rocksdb_column_family_handle_destroy(h[1]);
    rocksdb_close(db);
    rocksdb_options_destroy(o);

    assert_null(fr_ckpt_open(d, err, sizeof err));
    assert_non_null(strstr(err, "holds data but no marker"));
    assert_null(fr_ckpt_open_readonly(d, err, sizeof err));
    assert_non_null(strstr(err, "holds data but no marker"));
    print_message("  expected refusal: %s\n", err);
    fr_model_free(m);
    tmpdir_remove(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_directory), cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_round_trip_adam), cmocka_unit_test(test_round_trip_ftrl),
        cmocka_unit_test(test_incremental),     cmocka_unit_test(test_join_deletes),
        cmocka_unit_test(test_join_family),     cmocka_unit_test(test_format_1_refused),
        cmocka_unit_test(test_digest),          cmocka_unit_test(test_write_failure),
        cmocka_unit_test(test_wal_damage_refused), cmocka_unit_test(test_torn_tail_restarts),
        cmocka_unit_test(test_missing_marker_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
