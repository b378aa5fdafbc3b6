/* fr_ckpt_model: the model's records in a checkpoint -- embedding rows, dense parameters and
 * optimizer state, the meta JSON, the lifecycle clock and the admission filters -- written into a
 * batch and read back (see fr_ckpt.h and docs/checkpoint-format.md). The engine is fr_ckpt.c. */
#include "fr_ckpt_int.h"

#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fr_admit.h"
#include "fr_bytes.h"
#include "fr_model_json.h"

static void row_key(unsigned char k[ROW_KEY_LEN], uint32_t table, uint64_t key)
{
    k[0] = KEY_ROW;
    fr_put_u32be(k + 1, table);
    fr_put_u64be(k + 5, key);
}

typedef struct {
    fr_ckpt_batch *b;
    int dim, nstate;
    uint32_t ntab;
} row_ctx;

/* A row value: version u64, dim weights, nstate optimizer state floats, last-update stamp u32. */
static size_t row_value_len(size_t dim, size_t nstate) { return 12 + 4 * (dim + nstate); }

static int put_row_cb(const fr_row_view *r, void *ctx)
{
    row_ctx *rc = ctx;
    fr_ckpt_batch *b = rc->b;
    if (r->dim != rc->dim || r->nstate != rc->nstate || r->table >= rc->ntab) {
        char msg[200];
        snprintf(msg, sizeof msg,
                 "row of table %" PRIu32 " has dim %d and %d state floats, expected table < %" PRIu32
                 ", dim %d and %d state floats",
                 r->table, r->dim, r->nstate, rc->ntab, rc->dim, rc->nstate);
        return ckpt_batch_fail(b, msg);
    }
    unsigned char k[ROW_KEY_LEN];
    row_key(k, r->table, r->key);
    unsigned char *v = b->val;
    size_t dim = (size_t)r->dim, ns = (size_t)r->nstate;
    fr_put_u64le(v, r->version);
    fr_f32le_encode(v + 8, r->weights, dim);
    fr_f32le_encode(v + 8 + 4 * dim, r->accum, ns);
    fr_put_u32le(v + 8 + 4 * (dim + ns), r->updated);
    ckpt_batch_put(b, k, sizeof k, v, row_value_len(dim, ns));
    b->st.rows++;
    return 0;
}

static int delete_row_cb(uint32_t table, uint64_t key, void *ctx) { return fr_ckpt_delete_row(ctx, table, key); }

/* The model's clock (blob "lifecycle": "FRL1", clock i64 LE) and the admission filters' changed
 * chunks (blob "admit.T": width_log2 u32 LE; blobs "admit.T.C": chunk C, FR_ADMIT_CHUNK_BYTES). */
static int put_lifecycle(fr_ckpt_batch *b, const fr_model *m)
{
    unsigned char life[12] = {'F', 'R', 'L', '1'};
    fr_put_u64le(life + 4, (uint64_t)fr_model_clock(m));
    if (fr_ckpt_put_blob(b, "lifecycle", life, sizeof life) != 0) return -1;
    for (uint32_t t = 0; t < fr_model_table_count(m); t++) {
        fr_admit *a = fr_model_admit(m, t);
        if (!a) continue;
        char name[48];
        unsigned char w[4];
        fr_put_u32le(w, fr_admit_width_log2(a));
        snprintf(name, sizeof name, "admit.%" PRIu32, t);
        if (fr_ckpt_put_blob(b, name, w, sizeof w) != 0) return -1;
        const uint32_t *dirty;
        size_t nd = fr_admit_dirty(a, &dirty);
        for (size_t i = 0; i < nd; i++) {
            snprintf(name, sizeof name, "admit.%" PRIu32 ".%" PRIu32, t, dirty[i]);
            if (fr_ckpt_put_blob(b, name, fr_admit_chunk(a, dirty[i]), FR_ADMIT_CHUNK_BYTES) != 0) return -1;
        }
    }
    return 0;
}

int fr_ckpt_load_admission(fr_ckpt *c, fr_model *m, char *err, size_t errlen)
{
    unsigned char *buf = malloc(FR_ADMIT_CHUNK_BYTES);
    if (!buf) {
        snprintf(err, errlen, "checkpoint: out of memory");
        return -1;
    }
    int rc = 0;
    for (uint32_t t = 0; t < fr_model_table_count(m) && rc == 0; t++) {
        fr_admit *a = fr_model_admit(m, t);
        char name[48];
        unsigned char w[4];
        snprintf(name, sizeof name, "admit.%" PRIu32, t);
        long len = fr_ckpt_get_blob(c, name, w, sizeof w);
        if (!a) {
            /* a filter dropped from the config: its counts are simply forgotten */
            continue;
        }
        if (len < 0) continue; /* a filter new in the config starts empty */
        if (len != 4 || fr_get_u32le(w) != fr_admit_width_log2(a)) {
            snprintf(err, errlen,
                     "checkpoint: table %" PRIu32 "'s admission filter was stored with admit_width_log2 %" PRIu32
                     " but the config asks for %u; restore the old value or start from an empty checkpoint.dir",
                     t, len == 4 ? fr_get_u32le(w) : 0, fr_admit_width_log2(a));
            rc = -1;
            break;
        }
        for (size_t i = 0; i < fr_admit_chunks(a); i++) {
            snprintf(name, sizeof name, "admit.%" PRIu32 ".%zu", t, i);
            long n = fr_ckpt_get_blob(c, name, buf, FR_ADMIT_CHUNK_BYTES);
            if (n < 0) continue; /* never changed: zeros */
            if (n != FR_ADMIT_CHUNK_BYTES || fr_admit_set_chunk(a, i, buf, (size_t)n) != 0) {
                snprintf(err, errlen, "checkpoint corrupt: blob %s has %ld bytes, expected %d", name, n,
                         FR_ADMIT_CHUNK_BYTES);
                rc = -1;
                break;
            }
        }
    }
    free(buf);
    return rc;
}

/* The meta JSON; a new string to free(), or NULL. Deterministic: sorted keys, no wall time. The
 * model's description is the one the Redis manifest shares (fr_model_describe_json); the meta adds
 * the format and the model version. */
static char *meta_json(const fr_model *m)
{
    json_t *o = fr_model_describe_json(m, NULL);
    char *out = NULL;
    if (!o) return NULL;
    int bad = json_object_set_new(o, "format", json_string("freshet-checkpoint"));
    bad |= json_object_set_new(o, "format_version", json_integer(FR_CKPT_FORMAT_VERSION));
    bad |= json_object_set_new(o, "model_version", fr_json_u64(fr_model_version(m)));
    if (!bad) out = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(o);
    return out;
}

int fr_ckpt_put_model(fr_ckpt_batch *b, const fr_model *m)
{
    if (!b || !m) return -1;
    if (b->failed) return -1;
    const fr_model_config *cfg = fr_model_get_config(m);
    if (cfg->emb_dim <= 0) return ckpt_batch_fail(b, "model has emb_dim <= 0");
    size_t dim = (size_t)cfg->emb_dim, nstate = fr_model_row_state_count(m);
    if (ckpt_grow(&b->val, &b->val_cap, row_value_len(dim, nstate)) != 0) return ckpt_batch_fail(b, "out of memory");

    /* deletions before the rows: a key evicted and admitted again since the last checkpoint is
     * deleted, then written (the later operation of a batch wins) */
    if (fr_model_foreach_deleted(m, FR_DIRTY_CHECKPOINT, delete_row_cb, b) != 0)
        return ckpt_batch_fail(b, "deleting the evicted rows failed");
    if (put_lifecycle(b, m) != 0) return -1;

    row_ctx rc = {.b = b, .dim = cfg->emb_dim, .nstate = (int)nstate, .ntab = fr_model_table_count(m)};
    if (fr_model_foreach_row(m, FR_DIRTY_CHECKPOINT, put_row_cb, &rc) != 0)
        return ckpt_batch_fail(b, "writing the embedding rows failed");

    size_t n = fr_model_dense_count(m), ns = fr_model_dense_state_count(m);
    unsigned char *dense = malloc(n + ns ? 4 * (n + ns) : 1);
    if (!dense) return ckpt_batch_fail(b, "out of memory for the dense parameters");
    const float *params = fr_model_dense_params(m);
    const float *accum = fr_model_dense_accum(m);
    if (n && (!params || !accum)) {
        free(dense);
        return ckpt_batch_fail(b, "the model exposes no dense parameters or accumulators");
    }
    fr_f32le_encode(dense, params, n);
    fr_f32le_encode(dense + 4 * n, accum, ns);
    const char dk = KEY_DENSE;
    ckpt_batch_put(b, &dk, 1, dense, 4 * (n + ns));
    free(dense);

    char *meta = meta_json(m);
    if (!meta) return ckpt_batch_fail(b, "out of memory encoding the meta JSON");
    const char mk = KEY_META;
    ckpt_batch_put(b, &mk, 1, meta, strlen(meta));
    free(meta);
    return 0;
}

int fr_ckpt_delete_row(fr_ckpt_batch *b, uint32_t table, uint64_t key)
{
    if (!b || b->failed) return -1;
    unsigned char k[ROW_KEY_LEN];
    row_key(k, table, key);
    ckpt_batch_delete(b, k, sizeof k);
    b->st.row_deletes++;
    return 0;
}

/* ---- loading the model -------------------------------------------------------------------- */

/* Every stored value is untrusted input (a flipped bit, a torn or hand-edited directory): a NaN or
 * an infinity spreads through the model at its first step and is then published, and an optimizer
 * accumulator below zero makes the next step the square root of a negative number. Index of the
 * first float that is not finite (or, with nonneg, below zero), or -1 when all are fine. */
static long first_bad_float(const float *v, size_t n, int nonneg)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i]) || (nonneg && v[i] < 0)) return (long)i;
    return -1;
}

/* The seconds a row stamp holds for a clock in ms (learner/fr_model.c stamps rows the same way). */
static uint64_t clock_stamp(int64_t ms)
{
    if (ms <= 0) return 0;
    return (uint64_t)(ms / 1000) > UINT32_MAX ? UINT32_MAX : (uint64_t)(ms / 1000);
}

int fr_ckpt_decode_row(fr_model *m, int64_t clock, const void *key, size_t key_len, const void *val,
                       size_t val_len, uint32_t *table_out, char *err, size_t errlen)
{
    const fr_model_config *cfg = fr_model_get_config(m);
    const size_t dim = (size_t)cfg->emb_dim, nstate = fr_model_row_state_count(m);
    const uint32_t ntab = fr_model_table_count(m);
    /* 8 + 8 dim: Adagrad rows written before the last-update stamp existed (stamp 0; FTRL came later) */
    size_t full = row_value_len(dim, nstate);
    if (key_len != ROW_KEY_LEN || ((const unsigned char *)key)[0] != KEY_ROW ||
        (val_len != full && !(val_len == 8 + 8 * dim && nstate == dim))) {
        snprintf(err, errlen,
                 "checkpoint corrupt: row key of %zu bytes / value of %zu bytes, expected %d / %zu (emb_dim %zu, %zu "
                 "optimizer state floats)",
                 key_len, val_len, ROW_KEY_LEN, full, dim, nstate);
        return -1;
    }
    const unsigned char *ku = key;
    uint32_t table = fr_get_u32be(ku + 1);
    uint64_t k = fr_get_u64be(ku + 5);
    if (table >= ntab) {
        snprintf(err, errlen, "checkpoint corrupt: row of table %" PRIu32 " but the model has %" PRIu32 " tables",
                 table, ntab);
        return -1;
    }
    if (k == 0) {
        snprintf(err, errlen, "checkpoint corrupt: row of table %" PRIu32 " with key 0 (reserved for \"no value\")",
                 table);
        return -1;
    }
    const unsigned char *vu = val;
    uint64_t version = fr_get_u64le(vu);
    if (version > fr_model_version(m)) {
        snprintf(err, errlen,
                 "checkpoint corrupt: row %" PRIu64 " of table %" PRIu32 " has version %" PRIu64
                 ", after the model's version %" PRIu64,
                 k, table, version, fr_model_version(m));
        return -1;
    }
    /* loading calls this once per row: the heap only for rows wider than any default model's */
    float small[768];
    float *buf = dim + nstate <= sizeof small / sizeof small[0] ? small : malloc((dim + nstate) * sizeof(float));
    if (!buf) {
        snprintf(err, errlen, "checkpoint: out of memory");
        return -1;
    }
    fr_f32le_decode(buf, vu + 8, dim + nstate);
    /* Weights any finite value; Adagrad accumulators and FTRL's n >= 0; FTRL's z any finite value. */
    const char *what = "weight";
    size_t at = 0;
    int nonneg = 0;
    long bad = first_bad_float(buf, dim, 0);
    if (bad < 0 && cfg->emb_optimizer == 1) {
        what = "FTRL z", at = dim, bad = first_bad_float(buf + at, dim, 0);
        if (bad < 0) what = "FTRL n", at = 2 * dim, nonneg = 1, bad = first_bad_float(buf + at, dim, 1);
    } else if (bad < 0) {
        what = "Adagrad accumulator", at = dim, nonneg = 1, bad = first_bad_float(buf + at, nstate, 1);
    }
    int rc = -1;
    if (bad >= 0)
        snprintf(err, errlen, "checkpoint corrupt: row %" PRIu64 " of table %" PRIu32 ": %s %ld is %g (must be finite%s)",
                 k, table, what, bad, (double)buf[at + (size_t)bad], nonneg ? " and >= 0" : "");
    else if (fr_model_put_row(m, table, k, version, buf, buf + dim) != 0)
        snprintf(err, errlen, "checkpoint: the model refused row %" PRIu64 " of table %" PRIu32 " (out of memory?)", k,
                 table);
    else
        rc = 0;
    if (buf != small) free(buf);
    if (rc != 0) return -1;
    if (val_len == full) {
        uint32_t stamp = fr_get_u32le(vu + 8 + 4 * (dim + nstate));
        /* A stamp after the clock would keep the row from its TTL eviction for that long. */
        if (clock >= 0 && stamp > clock_stamp(clock)) {
            snprintf(err, errlen,
                     "checkpoint corrupt: row %" PRIu64 " of table %" PRIu32 " was updated at %" PRIu32
                     " s, after the model's clock (blob \"lifecycle\", %" PRId64 " ms)",
                     k, table, stamp, clock);
            return -1;
        }
        fr_model_set_row_updated(m, table, k, stamp);
    }
    *table_out = table;
    return 0;
}

typedef struct {
    fr_model *m;
    int64_t clock;  /* the lifecycle clock, -1 when the checkpoint has none */
    size_t *counts; /* rows seen per table */
    char *err;
    size_t errlen;
} load_ctx;

static int load_row_cb(const char *k, size_t kl, const void *v, size_t vl, void *ctx)
{
    load_ctx *l = ctx;
    uint32_t table;
    if (fr_ckpt_decode_row(l->m, l->clock, k, kl, v, vl, &table, l->err, l->errlen) != 0) return -1;
    l->counts[table]++;
    return 0;
}

/* The meta's per-table entries must describe the model its config builds: id t, the kind of slot
 * t (categorical slots first, then multi-valued ones) and emb_dim. */
static int check_tables(const json_t *tables, const fr_model_config *cfg, char *err, size_t errlen)
{
    for (size_t t = 0; t < json_array_size(tables); t++) {
        const json_t *e = json_array_get(tables, t);
        const json_t *id = json_object_get(e, "id"), *dim = json_object_get(e, "dim");
        const char *kind = json_string_value(json_object_get(e, "kind"));
        const char *want = (int)t < cfg->n_cat ? "categorical" : "multi";
        if (!json_is_integer(id) || json_integer_value(id) != (json_int_t)t || !json_is_integer(dim) ||
            json_integer_value(dim) != cfg->emb_dim || !kind || strcmp(kind, want) != 0) {
            snprintf(err, errlen,
                     "checkpoint meta: tables[%zu] is not {\"id\": %zu, \"kind\": \"%s\", \"dim\": %d} (the model "
                     "its model_config builds)",
                     t, t, want, cfg->emb_dim);
            return -1;
        }
    }
    return 0;
}

fr_model *fr_ckpt_decode_meta(const void *bytes, size_t len, size_t **rows, char *err, size_t errlen)
{
    *rows = NULL;
    json_error_t jerr;
    json_t *meta = json_loadb(bytes, len, 0, &jerr);
    if (!meta) {
        snprintf(err, errlen, "checkpoint corrupt: meta JSON unreadable: %s", jerr.text);
        return NULL;
    }
    fr_model *m = NULL;
    int ok = 0;
    json_t *fv = json_object_get(meta, "format_version");
    if (!json_is_integer(fv) || json_integer_value(fv) != FR_CKPT_FORMAT_VERSION) {
        snprintf(err, errlen, "checkpoint meta: format_version missing or not %d", FR_CKPT_FORMAT_VERSION);
        goto done;
    }
    fr_model_config cfg;
    char cerr[200];
    if (fr_config_from_json(json_object_get(meta, "model_config"), &cfg, cerr, sizeof cerr) != 0) {
        snprintf(err, errlen, "checkpoint meta: %s", cerr);
        goto done;
    }
    uint64_t version;
    if (fr_json_get_u64(meta, "model_version", &version) != 0) {
        snprintf(err, errlen, "checkpoint meta: model_version missing");
        goto done;
    }
    m = fr_model_create(&cfg, cerr, sizeof cerr);
    if (!m) {
        snprintf(err, errlen, "checkpoint: the stored model config is refused: %s", cerr);
        goto done;
    }
    /* rows are checked against it (none was updated after it) */
    fr_model_set_version(m, version);
    json_t *ed = json_object_get(meta, "emb_dim");
    if (!json_is_integer(ed) || json_integer_value(ed) != cfg.emb_dim) {
        snprintf(err, errlen, "checkpoint meta: emb_dim differs from model_config.emb_dim %d", cfg.emb_dim);
        goto done;
    }
    json_t *tables = json_object_get(meta, "tables");
    uint32_t ntab = fr_model_table_count(m);
    if (!json_is_array(tables) || json_array_size(tables) != ntab) {
        snprintf(err, errlen, "checkpoint meta: %zu tables stored but the model built from its config has %" PRIu32,
                 json_array_size(tables), ntab);
        goto done;
    }
    if (check_tables(tables, &cfg, err, errlen) != 0) goto done;
    size_t n = fr_model_dense_count(m);
    json_t *dcount = json_object_get(json_object_get(meta, "dense"), "count");
    if (!json_is_integer(dcount) || (size_t)json_integer_value(dcount) != n) {
        snprintf(err, errlen, "checkpoint meta: dense count differs from the model's %zu floats", n);
        goto done;
    }
    *rows = calloc(ntab ? ntab : 1, sizeof **rows);
    if (!*rows) {
        snprintf(err, errlen, "checkpoint: out of memory");
        goto done;
    }
    for (uint32_t t = 0; t < ntab; t++) {
        json_t *r = json_object_get(json_array_get(tables, t), "rows");
        if (!json_is_integer(r) || json_integer_value(r) < 0) {
            snprintf(err, errlen, "checkpoint meta: tables[%" PRIu32 "] has no row count", t);
            goto done;
        }
        (*rows)[t] = (size_t)json_integer_value(r);
    }
    ok = 1;
done:
    json_decref(meta);
    if (!ok) {
        free(*rows);
        *rows = NULL;
        fr_model_free(m);
        return NULL;
    }
    return m;
}

int fr_ckpt_decode_dense(fr_model *m, const void *bytes, size_t len, char *err, size_t errlen)
{
    size_t n = fr_model_dense_count(m), ns = fr_model_dense_state_count(m);
    if (len != 4 * (n + ns)) {
        snprintf(err, errlen, "checkpoint corrupt: dense value of %zu bytes, expected %zu", len, 4 * (n + ns));
        return -1;
    }
    float *dense = malloc(n + ns ? 4 * (n + ns) : 1);
    if (!dense) {
        snprintf(err, errlen, "checkpoint: out of memory");
        return -1;
    }
    fr_f32le_decode(dense, bytes, n + ns);
    /* Adagrad: accumulators >= 0. Adam: first moments any finite value, second moments >= 0. */
    const int adam = fr_model_get_config(m)->dense_optimizer == 1;
    long bad = first_bad_float(dense, n, 0);
    const char *what = "parameter";
    size_t at = 0;
    int nonneg = 0;
    if (bad < 0 && adam) {
        what = "Adam first moment", at = n, bad = first_bad_float(dense + at, n, 0);
        if (bad < 0) what = "Adam second moment", at = 2 * n, nonneg = 1, bad = first_bad_float(dense + at, ns - n, 1);
    } else if (bad < 0) {
        what = "Adagrad accumulator", at = n, nonneg = 1, bad = first_bad_float(dense + at, ns, 1);
    }
    int rc = -1;
    if (bad >= 0)
        snprintf(err, errlen, "checkpoint corrupt: dense key \"D\": %s %ld is %g (must be finite%s)", what, bad,
                 (double)dense[at + (size_t)bad], nonneg ? " and >= 0" : "");
    else if (fr_model_set_dense(m, dense, dense + n, n) != 0)
        snprintf(err, errlen, "checkpoint: the model refused %zu dense parameters", n);
    else
        rc = 0;
    free(dense);
    return rc;
}

int fr_ckpt_decode_lifecycle(const void *bytes, size_t len, int64_t *clock, char *err, size_t errlen)
{
    if (len != 12 || memcmp(bytes, "FRL1", 4) != 0) {
        snprintf(err, errlen, "checkpoint corrupt: blob \"lifecycle\" is not FRL1 + 8 bytes");
        return -1;
    }
    const int64_t ms = (int64_t)fr_get_u64le((const unsigned char *)bytes + 4);
    if (ms < 0) {
        /* the largest event time trained, starting at 0: never below it */
        snprintf(err, errlen, "checkpoint corrupt: blob \"lifecycle\": clock %" PRId64 " ms is negative", ms);
        return -1;
    }
    *clock = ms;
    return 0;
}

fr_model *fr_ckpt_load_model(fr_ckpt *c, char *err, size_t errlen)
{
    if (!c) {
        snprintf(err, errlen, "checkpoint: no handle");
        return NULL;
    }
    fr_model *m = NULL;
    char *raw = NULL;
    size_t *rows = NULL;
    load_ctx l = {0};
    int ok = 0;
    size_t len = 0;
    int st;
    const char mk = KEY_META, dk = KEY_DENSE;

    raw = ckpt_get_raw(c, &mk, 1, &len, &st, err, errlen);
    if (!raw) {
        if (st == 0) snprintf(err, errlen, "checkpoint holds no model (no meta key \"M\"): nothing to load");
        goto done;
    }
    m = fr_ckpt_decode_meta(raw, len, &rows, err, errlen);
    rocksdb_free(raw);
    raw = NULL;
    if (!m) goto done;

    raw = ckpt_get_raw(c, &dk, 1, &len, &st, err, errlen);
    if (!raw) {
        if (st == 0) snprintf(err, errlen, "checkpoint corrupt: meta present but no dense key \"D\"");
        goto done;
    }
    if (fr_ckpt_decode_dense(m, raw, len, err, errlen) != 0) goto done;

    /* The clock first: row stamps are checked against it. */
    unsigned char life[12];
    long ll = fr_ckpt_get_blob(c, "lifecycle", life, sizeof life);
    int64_t clock = -1;
    if (ll >= 0 && fr_ckpt_decode_lifecycle(life, ll == (long)sizeof life ? sizeof life : 0, &clock, err, errlen) != 0)
        goto done;

    const uint32_t ntab = fr_model_table_count(m);
    l.m = m;
    l.clock = clock;
    l.counts = calloc(ntab ? ntab : 1, sizeof *l.counts);
    l.err = err;
    l.errlen = errlen;
    if (!l.counts) {
        snprintf(err, errlen, "checkpoint: out of memory");
        goto done;
    }
    const char rp = KEY_ROW;
    err[0] = '\0';
    if (ckpt_scan(c, &rp, 1, load_row_cb, &l) != 0) {
        if (!err[0]) snprintf(err, errlen, "checkpoint: reading the embedding rows failed (RocksDB read error)");
        goto done;
    }
    for (uint32_t t = 0; t < ntab; t++) {
        if (rows[t] != l.counts[t]) {
            snprintf(err, errlen,
                     "checkpoint inconsistent: table %" PRIu32 " has %zu rows stored but the meta counts %zu (a "
                     "row removed from the model without fr_ckpt_delete_row, or one never marked dirty)",
                     t, l.counts[t], rows[t]);
            goto done;
        }
    }
    if (clock >= 0 && fr_model_set_clock(m, clock) != 0) {
        snprintf(err, errlen, "checkpoint: out of memory");
        goto done;
    }
    fr_model_clear_dirty(m, FR_DIRTY_CHECKPOINT);
    fr_model_clear_dirty(m, FR_DIRTY_PUBLISH);
    ok = 1;
done:
    if (raw) rocksdb_free(raw);
    free(rows);
    free(l.counts);
    if (!ok) {
        fr_model_free(m);
        return NULL;
    }
    return m;
}
