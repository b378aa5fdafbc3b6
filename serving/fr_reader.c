/* fr_reader: see fr_reader.h and docs/redis-layout.md ("What a reader must do"). */
#include "fr_reader.h"

#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "fr_manifest.h"
#include "fr_model_json.h"
#include "fr_redis_layout.h"

enum {
    LOAD_ATTEMPTS = 3,
    FR_STREAM_ID_MAX = 48,   /* "<ms>-<seq>", two u64 */
    FOLLOW_BLOCK_MAX_MS = 5000, /* below the connection's 10 s command timeout */
};

struct fr_reader {
    char *host;
    int port;
    char prefix[FR_REDIS_PREFIX_MAX + 1];
    redisContext *c; /* NULL while disconnected */
    /* the loaded version */
    int loaded;
    uint64_t version;
    char *manifest;
    fr_model_config cfg;
    fr_serve_transform serve; /* what scoring returns from the model's outputs (the manifest's) */
    uint8_t layout[FR_MAX_CAT + FR_MAX_MULTI]; /* per table: the shard count its row hashes use (fr_redis_layout.h) */
    float *dense;
    size_t dense_count;
    fr_model *m;     /* dense of `version` plus the rows fetched since the last reset */
    char xxh3[17];   /* the loaded blob's checksum: tells a version number republished with other content */
    fr_reader_stats st;
    /* the change stream: id of the last P:changes entry seen ("0-0": none) */
    char stream_id[FR_STREAM_ID_MAX];
};

fr_reader *fr_reader_open(const char *host, int port, const char *prefix, char *err, size_t errlen)
{
    if (!host || !host[0]) {
        snprintf(err, errlen, "reader: no redis host");
        return NULL;
    }
    if (fr_redis_check_prefix(prefix, err, errlen) != 0) return NULL;
    fr_reader *r = calloc(1, sizeof *r);
    if (!r || !(r->host = strdup(host))) {
        free(r);
        snprintf(err, errlen, "reader: out of memory");
        return NULL;
    }
    r->port = port;
    snprintf(r->prefix, sizeof r->prefix, "%s", prefix);
    snprintf(r->stream_id, sizeof r->stream_id, "0-0");
    char cerr[256];
    r->c = fr_redis_connect(host, port, cerr, sizeof cerr);
    if (!r->c) {
        snprintf(err, errlen, "reader: %s", cerr);
        fr_reader_close(r);
        return NULL;
    }
    return r;
}

void fr_reader_close(fr_reader *r)
{
    if (!r) return;
    if (r->c) redisFree(r->c);
    fr_model_free(r->m);
    free(r->dense);
    free(r->manifest);
    free(r->host);
    free(r);
}

uint64_t fr_reader_version(const fr_reader *r) { return r->loaded ? r->version : 0; }
int fr_reader_table_count(const fr_reader *r) { return r->loaded ? r->cfg.n_cat + r->cfg.n_multi : 0; }
const char *fr_reader_manifest(const fr_reader *r) { return r->loaded ? r->manifest : NULL; }
const float *fr_reader_dense(const fr_reader *r, size_t *count)
{
    *count = r->loaded ? r->dense_count : 0;
    return r->loaded ? r->dense : NULL;
}

static void drop_connection(fr_reader *r)
{
    if (r->c) redisFree(r->c);
    r->c = NULL;
}

static int ensure_connection(fr_reader *r, char *err, size_t errlen)
{
    if (r->c) return 0;
    char cerr[256];
    r->c = fr_redis_connect(r->host, r->port, cerr, sizeof cerr);
    if (!r->c) {
        snprintf(err, errlen, "reader: %s", cerr);
        return -1;
    }
    return 0;
}

/* Sends n commands and reads their n replies into out (caller frees each). On a connection
 * failure drops the connection and returns -1 with a message. */
static int roundtrip(fr_reader *r, int n, const char **argvs[], const size_t *lenss[], const int *argcs,
                     redisReply **out, char *err, size_t errlen)
{
    char berr[256];
    if (fr_redis_batch(r->c, n, argvs, lenss, argcs, out, berr, sizeof berr) == 0) return 0;
    snprintf(err, errlen, "reader: redis %s:%d: %s (reconnects on the next call)", r->host, r->port, berr);
    drop_connection(r);
    return -1;
}

/* Creates a model with the loaded dense parameters and no rows. */
static fr_model *fresh_model(const fr_model_config *cfg, const float *dense, size_t count, uint64_t version,
                             char *err, size_t errlen)
{
    char merr[256];
    fr_model *m = fr_model_create_weights_only(cfg, merr, sizeof merr);
    if (!m) {
        snprintf(err, errlen, "reader: the manifest's model config is refused: %s", merr);
        return NULL;
    }
    if (fr_model_set_dense(m, dense, NULL, count) != 0) {
        snprintf(err, errlen, "reader: dense blob holds %zu floats, the model built from the manifest needs %zu",
                 count, fr_model_dense_count(m));
        fr_model_free(m);
        return NULL;
    }
    fr_model_set_version(m, version);
    return m;
}

/* "parameter I (tensor NAME[J])" for a parameter index, from the manifest's dense.tensors. */
typedef struct {
    char text[160];
} param_name;

static param_name tensor_of(const json_t *dense, size_t i)
{
    param_name p;
    snprintf(p.text, sizeof p.text, "parameter %zu", i);
    size_t k;
    json_t *t;
    json_array_foreach(json_object_get(dense, "tensors"), k, t)
    {
        json_int_t off = json_integer_value(json_object_get(t, "offset"));
        json_int_t size = json_integer_value(json_object_get(t, "rows")) * json_integer_value(json_object_get(t, "cols"));
        const char *name = json_string_value(json_object_get(t, "name"));
        if (name && off >= 0 && (size_t)off <= i && i < (size_t)(off + size)) {
            snprintf(p.text, sizeof p.text, "parameter %zu, %s[%zu]", i, name, i - (size_t)off);
            break;
        }
    }
    return p;
}

int fr_reader_parse_version(const char *mtext, size_t mlen, const void *blob_bytes, size_t blob_len, uint64_t v,
                            fr_model_config *cfg, fr_serve_transform *serve, float **dense, size_t *count, char *xxh3,
                            char *err, size_t errlen)
{
    *dense = NULL;
    *count = 0;
    json_error_t jerr;
    json_t *o = json_loadb(mtext, mlen, 0, &jerr);
    int rc = -1;
    if (!o) {
        snprintf(err, errlen, "reader: manifest of version %" PRIu64 " is not JSON: %s", v, jerr.text);
        return -1;
    }
    uint64_t mv;
    fr_serve_transform transform = FR_SERVE_IDENTITY;
    json_t *fv = json_object_get(o, "format_version");
    json_t *rowf = json_object_get(o, "row_format");
    uint8_t layout[FR_MAX_CAT + FR_MAX_MULTI];
    json_t *d = json_object_get(o, "dense");
    json_t *dc = json_object_get(d, "count"), *db = json_object_get(d, "bytes"), *dh = json_object_get(d, "xxh3_64");
    char cerr[200];
    if (!json_is_integer(fv) || json_integer_value(fv) < FR_REDIS_FORMAT_VERSION_PLAIN ||
        json_integer_value(fv) > FR_REDIS_FORMAT_VERSION) {
        snprintf(err, errlen,
                 "reader: manifest format_version is not %d to %d: this reader is too old or the key is foreign",
                 FR_REDIS_FORMAT_VERSION_PLAIN, FR_REDIS_FORMAT_VERSION);
    } else if (json_integer_value(fv) > FR_REDIS_FORMAT_VERSION_PLAIN && !json_object_get(o, "serve_transform")) {
        snprintf(err, errlen, "reader: manifest of format_version %" JSON_INTEGER_FORMAT " lacks serve_transform",
                 json_integer_value(fv));
    } else if (fr_manifest_serve_transform(o, &transform, cerr, sizeof cerr) != 0) {
        snprintf(err, errlen, "reader: %s", cerr);
    } else if (fr_json_get_u64(o, "version", &mv) != 0 || mv != v) {
        snprintf(err, errlen, "reader: manifest under version %" PRIu64 " names another version", v);
    } else if (!json_is_integer(rowf) || json_integer_value(rowf) != FR_REDIS_ROW_F32LE) {
        snprintf(err, errlen, "reader: manifest row_format differs from this reader's %d", FR_REDIS_ROW_F32LE);
    } else if (fr_config_from_json(json_object_get(o, "model_config"), cfg, cerr, sizeof cerr) != 0) {
        snprintf(err, errlen, "reader: manifest %s", cerr);
    } else if (fr_redis_manifest_layouts(o, (uint32_t)(cfg->n_cat + cfg->n_multi), layout, cerr, sizeof cerr) != 0) {
        snprintf(err, errlen, "reader: %s", cerr);
    } else if (!json_is_integer(dc) || !json_is_integer(db) || !json_is_string(dh)) {
        snprintf(err, errlen, "reader: manifest lacks dense.count, dense.bytes or dense.xxh3_64");
    } else {
        size_t n = (size_t)json_integer_value(dc);
        const unsigned char *b = blob_bytes;
        char hash[17];
        snprintf(hash, sizeof hash, "%016" PRIx64, (uint64_t)XXH3_64bits(blob_bytes, blob_len));
        if (blob_len != (size_t)json_integer_value(db) || blob_len != FR_REDIS_DENSE_HEADER + 4 * n) {
            snprintf(err, errlen,
                     "reader: dense blob of version %" PRIu64 " has %zu bytes, the manifest says %" JSON_INTEGER_FORMAT,
                     v, blob_len, json_integer_value(db));
        } else if (memcmp(b, "FRD1", 4) != 0 || fr_get_u32le(b + 4) != n || fr_get_u64le(b + 8) != v) {
            snprintf(err, errlen, "reader: dense blob header (magic, count, version) does not match the manifest");
        } else if (strcmp(hash, json_string_value(dh)) != 0) {
            snprintf(err, errlen, "reader: dense blob of version %" PRIu64 " fails its checksum", v);
        } else if (!(*dense = malloc((n ? n : 1) * sizeof(float)))) {
            snprintf(err, errlen, "reader: out of memory");
        } else {
            fr_f32le_decode(*dense, b + FR_REDIS_DENSE_HEADER, n);
            size_t bad = 0, first = 0;
            for (size_t i = 0; i < n; i++)
                if (!isfinite((*dense)[i]) && bad++ == 0) first = i;
            if (bad) {
                /* a diverged or tampered model: every score would be NaN */
                snprintf(err, errlen,
                         "reader: dense blob of version %" PRIu64 " holds %zu non-finite parameters (the first is %s); "
                         "refused, the loaded version stays in use",
                         v, bad, tensor_of(d, first).text);
                free(*dense);
                *dense = NULL;
            } else {
                *count = n;
                if (serve) *serve = transform;
                if (xxh3) memcpy(xxh3, hash, sizeof hash);
                rc = 0;
            }
        }
    }
    json_decref(o);
    return rc;
}

static int load_active(fr_reader *r, char *err, size_t errlen)
{
    if (ensure_connection(r, err, errlen) != 0) return -1;
    char akey[FR_REDIS_KEY_MAX], mkey[FR_REDIS_KEY_MAX], dkey[FR_REDIS_KEY_MAX], ckey[FR_REDIS_KEY_MAX];
    fr_redis_key_active(akey, r->prefix);
    fr_redis_key_changes(ckey, r->prefix);
    for (int attempt = 0; attempt < LOAD_ATTEMPTS; attempt++) {
        /* The newest change-stream id first, then the active version (one round trip): a push or
         * rollback announced after this id is seen by the next fr_reader_follow, so nothing that
         * happens after the GET can be missed. */
        const char *xa[6] = {"XREVRANGE", ckey, "+", "-", "COUNT", "1"};
        size_t xl[6] = {9, strlen(ckey), 1, 1, 5, 1};
        const char *ga[2] = {"GET", akey};
        size_t gl[2] = {3, strlen(akey)};
        const char **argvs[2] = {xa, ga};
        const size_t *lenss[2] = {xl, gl};
        int argcs[2] = {6, 2};
        redisReply *rep[2];
        if (roundtrip(r, 2, argvs, lenss, argcs, rep, err, errlen) != 0) return -1;
        char sid[FR_STREAM_ID_MAX] = "0-0";
        if (rep[0]->type == REDIS_REPLY_ARRAY && rep[0]->elements > 0 && rep[0]->element[0]->type == REDIS_REPLY_ARRAY &&
            rep[0]->element[0]->elements > 0 && rep[0]->element[0]->element[0]->type == REDIS_REPLY_STRING &&
            rep[0]->element[0]->element[0]->len < sizeof sid)
            snprintf(sid, sizeof sid, "%s", rep[0]->element[0]->element[0]->str);
        freeReplyObject(rep[0]);
        rep[0] = rep[1];
        uint64_t v;
        int ok = rep[0]->type == REDIS_REPLY_STRING && fr_parse_u64(rep[0]->str, rep[0]->len, &v) == 0;
        int nil = rep[0]->type == REDIS_REPLY_NIL;
        freeReplyObject(rep[0]);
        if (!ok) {
            if (nil)
                snprintf(err, errlen, "reader: nothing published under prefix \"%s\" (no %s key)", r->prefix, akey);
            else
                snprintf(err, errlen, "reader: %s does not hold a decimal version number", akey);
            return -1;
        }
        fr_redis_key_manifest(mkey, r->prefix, v);
        fr_redis_key_dense(dkey, r->prefix, v);
        const char *ma[2] = {"GET", mkey}, *da[2] = {"GET", dkey};
        size_t ml[2] = {3, strlen(mkey)}, dl[2] = {3, strlen(dkey)};
        const char **argvs2[2] = {ma, da};
        const size_t *lenss2[2] = {ml, dl};
        int argcs2[2] = {2, 2};
        if (roundtrip(r, 2, argvs2, lenss2, argcs2, rep, err, errlen) != 0) return -1;
        if (rep[0]->type != REDIS_REPLY_STRING || rep[1]->type != REDIS_REPLY_STRING) {
            /* retired between the two reads (keep_versions pushes happened meanwhile): re-read active */
            snprintf(err, errlen,
                     "reader: version %" PRIu64 " is incomplete (manifest or dense blob missing) after %d attempts",
                     v, attempt + 1);
            freeReplyObject(rep[0]);
            freeReplyObject(rep[1]);
            continue;
        }
        fr_model_config cfg;
        fr_serve_transform serve = FR_SERVE_IDENTITY;
        float *dense = NULL;
        size_t count = 0;
        char xxh3[17];
        int rc = fr_reader_parse_version(rep[0]->str, rep[0]->len, rep[1]->str, rep[1]->len, v, &cfg, &serve, &dense,
                                         &count, xxh3, err, errlen);
        char *mtext = rc == 0 ? strdup(rep[0]->str) : NULL;
        /* the shard count of each table (fr_reader_parse_version checked them) */
        uint8_t layout[FR_MAX_CAT + FR_MAX_MULTI];
        json_t *mo = mtext ? json_loads(mtext, 0, NULL) : NULL;
        char lerr[200];
        if (mtext && (!mo || fr_redis_manifest_layouts(mo, (uint32_t)(cfg.n_cat + cfg.n_multi), layout, lerr,
                                                       sizeof lerr) != 0)) {
            free(mtext);
            mtext = NULL;
        }
        json_decref(mo);
        freeReplyObject(rep[0]);
        freeReplyObject(rep[1]);
        if (rc != 0) {
            r->st.refused_versions++;
            return -1;
        }
        fr_model *m = NULL;
        if (!mtext)
            snprintf(err, errlen, "reader: out of memory");
        else
            m = fresh_model(&cfg, dense, count, v, err, errlen);
        if (!m) {
            free(dense);
            free(mtext);
            return -1;
        }
        /* swap in: nothing of the previous version (dense or rows) survives */
        fr_model_free(r->m);
        free(r->dense);
        free(r->manifest);
        r->m = m;
        r->dense = dense;
        r->dense_count = count;
        r->manifest = mtext;
        r->cfg = cfg;
        memcpy(r->layout, layout, sizeof layout);
        if (r->loaded && r->version == v && strcmp(r->xxh3, xxh3) != 0) r->st.republished++;
        r->serve = serve;
        r->version = v;
        r->loaded = 1;
        memcpy(r->xxh3, xxh3, sizeof xxh3);
        r->st.loads++;
        snprintf(r->stream_id, sizeof r->stream_id, "%s", sid);
        return 0;
    }
    return -1;
}

static long row_count(fr_reader *r, uint32_t table)
{
    char err[512];
    if (ensure_connection(r, err, sizeof err) != 0) return -1;
    enum { TRIP = 256 };
    char keys[TRIP][FR_REDIS_KEY_MAX];
    const char *argv[TRIP][2];
    size_t lens[TRIP][2];
    const char **argvs[TRIP];
    const size_t *lenss[TRIP];
    int argcs[TRIP];
    redisReply *rep[TRIP];
    int lay = r->layout[table];
    uint32_t shards = fr_redis_layout_shards(lay);
    long total = 0;
    for (uint32_t s0 = 0; s0 < shards && total >= 0; s0 += TRIP) {
        int n = shards - s0 < TRIP ? (int)(shards - s0) : TRIP;
        for (int i = 0; i < n; i++) {
            fr_redis_key_rows(keys[i], r->prefix, table, lay, s0 + (uint32_t)i);
            argv[i][0] = "HLEN";
            argv[i][1] = keys[i];
            lens[i][0] = 4;
            lens[i][1] = strlen(keys[i]);
            argvs[i] = argv[i];
            lenss[i] = lens[i];
            argcs[i] = 2;
        }
        if (roundtrip(r, n, argvs, lenss, argcs, rep, err, sizeof err) != 0) return -1;
        for (int i = 0; i < n; i++) {
            if (rep[i]->type == REDIS_REPLY_INTEGER && total >= 0)
                total += (long)rep[i]->integer;
            else
                total = -1; /* an error reply (e.g. the key holds another type) */
            freeReplyObject(rep[i]);
        }
    }
    return total;
}

/* Rows the model may hold before it is rebuilt with no rows (bounds a long-running reader's memory;
 * every row is fetched again for each impression anyway). */
enum { MAX_CACHED_ROWS = 1 << 20 };

/* One row a batch reads: its table, key and shard hash. */
typedef struct {
    uint32_t table, shard;
    uint64_t key;
} row_ref;

static int cmp_row_ref(const void *a, const void *b)
{
    const row_ref *x = a, *y = b;
    if (x->table != y->table) return x->table < y->table ? -1 : 1;
    if (x->shard != y->shard) return x->shard < y->shard ? -1 : 1;
    return x->key < y->key ? -1 : x->key > y->key;
}

/* Every row of the batch, each once, sorted so that one shard hash's rows are adjacent. */
static size_t batch_rows(const fr_model_config *cfg, const uint8_t *layout, const fr_features *f, int n, row_ref *out)
{
    size_t nk = 0;
    for (int i = 0; i < n; i++) {
        for (int t = 0; t < cfg->n_cat && t < FR_MAX_CAT; t++)
            if (f[i].cat[t]) out[nk++] = (row_ref){(uint32_t)t, fr_redis_shard_of(f[i].cat[t], layout[t]), f[i].cat[t]};
        for (int j = 0; j < cfg->n_multi && j < FR_MAX_MULTI; j++) {
            int len = f[i].multi_len[j] < FR_MAX_MULTI_LEN ? f[i].multi_len[j] : FR_MAX_MULTI_LEN;
            uint32_t t = (uint32_t)(cfg->n_cat + j);
            for (int k = 0; k < len; k++)
                if (f[i].multi[j][k])
                    out[nk++] = (row_ref){t, fr_redis_shard_of(f[i].multi[j][k], layout[t]), f[i].multi[j][k]};
        }
    }
    qsort(out, nk, sizeof *out, cmp_row_ref);
    size_t u = 0;
    for (size_t k = 0; k < nk; k++)
        if (u == 0 || cmp_row_ref(&out[u - 1], &out[k]) != 0) out[u++] = out[k];
    return u;
}

/* The batch's working memory, one allocation per call (freed by the caller). */
typedef struct {
    row_ref *rows;            /* every row reference of the batch, then the distinct ones */
    int *group_start;         /* ng + 1: rows[group_start[g] ..] share a shard hash */
    char (*hkeys)[FR_REDIS_KEY_MAX];
    unsigned char (*fields)[8];
    const char **args;        /* per group: HMGET, hash key, fields */
    size_t *lens;
    const char ***argvs;
    const size_t **lenss;
    int *argcs;
    redisReply **rep;
    float *weights;           /* distinct rows x emb_dim */
    uint64_t *versions;
    unsigned char *present;
} batch_mem;

/* Sized for max_rows row references and max_groups shard hashes, so a batch costs memory in
 * proportion to what it reads. */
static void *batch_alloc(batch_mem *b, size_t max_rows, size_t max_groups, int dim)
{
    size_t r = max_rows ? max_rows : 1, g = max_groups + 1;
    size_t bytes = r * sizeof *b->rows + g * sizeof *b->group_start + g * sizeof *b->hkeys + r * sizeof *b->fields +
                   (r + 2 * g) * (sizeof *b->args + sizeof *b->lens) +
                   g * (sizeof *b->argvs + sizeof *b->lenss + sizeof *b->argcs + sizeof *b->rep) +
                   r * (size_t)dim * sizeof *b->weights + r * sizeof *b->versions + r + 16 * 8;
    unsigned char *base = malloc(bytes), *p = base;
    if (!base) return NULL;
#define TAKE(field, count)                                                                                             \
    do {                                                                                                               \
        p = (unsigned char *)(((uintptr_t)p + 7) & ~(uintptr_t)7);                                                    \
        b->field = (void *)p;                                                                                          \
        p += (count) * sizeof *b->field;                                                                               \
    } while (0)
    TAKE(rows, r);
    TAKE(group_start, g);
    TAKE(hkeys, g);
    TAKE(fields, r);
    TAKE(args, r + 2 * g);
    TAKE(lens, r + 2 * g);
    TAKE(argvs, g);
    TAKE(lenss, g);
    TAKE(argcs, g);
    TAKE(rep, g);
    TAKE(weights, r * (size_t)dim);
    TAKE(versions, r);
    TAKE(present, r);
#undef TAKE
    return base;
}

static int score(fr_reader *r, const fr_features *f, const int32_t *scenario, int n, float (*out)[FR_NTASKS],
                 char *err, size_t errlen)
{
    if (!r->loaded) {
        snprintf(err, errlen, "reader: no version loaded; call fr_reader_load_active first");
        return -1;
    }
    const fr_model_config *cfg = &r->cfg;
    for (int i = 0; i < n; i++)
        if (scenario[i] < 0 || scenario[i] >= cfg->n_scenarios) {
            snprintf(err, errlen, "reader: impression %d: scenario %d out of range (the model has %d)", i, scenario[i],
                     cfg->n_scenarios);
            return -1;
        }
    if (n <= 0) return 0;
    if (ensure_connection(r, err, errlen) != 0) return -1;

    const int dim = cfg->emb_dim;
    size_t refs = 0;
    for (int i = 0; i < n; i++) {
        for (int t = 0; t < cfg->n_cat && t < FR_MAX_CAT; t++) refs += f[i].cat[t] != 0;
        for (int j = 0; j < cfg->n_multi && j < FR_MAX_MULTI; j++)
            refs += f[i].multi_len[j] < FR_MAX_MULTI_LEN ? f[i].multi_len[j] : FR_MAX_MULTI_LEN;
    }
    batch_mem b;
    void *mem = batch_alloc(&b, refs, refs, dim); /* at most one shard hash per row */
    if (!mem) {
        snprintf(err, errlen, "reader: out of memory for a batch of %d impressions", n);
        return -1;
    }
    size_t nk = batch_rows(cfg, r->layout, f, n, b.rows);

    /* one HMGET per shard hash, all pipelined: one round trip for the whole batch */
    int ng = 0;
    size_t na = 0;
    for (size_t k = 0; k < nk; k++) {
        if (k > 0 && b.rows[k].table == b.rows[k - 1].table && b.rows[k].shard == b.rows[k - 1].shard) continue;
        b.group_start[ng] = (int)k;
        fr_redis_key_rows(b.hkeys[ng], r->prefix, b.rows[k].table, r->layout[b.rows[k].table], b.rows[k].shard);
        b.argvs[ng] = b.args + na;
        b.lenss[ng] = b.lens + na;
        b.args[na] = "HMGET", b.lens[na++] = 5;
        b.args[na] = b.hkeys[ng], b.lens[na++] = strlen(b.hkeys[ng]);
        size_t e = k;
        while (e < nk && b.rows[e].table == b.rows[k].table && b.rows[e].shard == b.rows[k].shard) {
            fr_redis_row_field(b.fields[e], b.rows[e].key);
            b.args[na] = (const char *)b.fields[e], b.lens[na++] = 8;
            e++;
        }
        b.argcs[ng] = 2 + (int)(e - k);
        ng++;
    }
    b.group_start[ng] = (int)nk;
    if (ng && roundtrip(r, ng, b.argvs, b.lenss, b.argcs, b.rep, err, errlen) != 0) {
        free(mem);
        return -1;
    }

    int reset = 0, rc = 0;
    memset(b.present, 0, nk);
    for (int g = 0; g < ng && rc == 0; g++) {
        redisReply *a = b.rep[g];
        int first = b.group_start[g], count = b.group_start[g + 1] - first;
        if (a->type != REDIS_REPLY_ARRAY || a->elements != (size_t)count) {
            snprintf(err, errlen, "reader: HMGET on %s failed: %s", b.hkeys[g],
                     a->type == REDIS_REPLY_ERROR ? a->str : "unexpected reply");
            rc = -1;
            break;
        }
        for (int i = 0; i < count; i++) {
            size_t k = (size_t)(first + i);
            redisReply *e = a->element[i];
            if (e->type == REDIS_REPLY_STRING) {
                char derr[160];
                if (fr_redis_row_decode(e->str, e->len, dim, &b.versions[k], b.weights + k * (size_t)dim, derr,
                                        sizeof derr) != 0) {
                    snprintf(err, errlen, "reader: row %" PRIu64 " in %s: %s", b.rows[k].key, b.hkeys[g], derr);
                    rc = -1;
                    break;
                }
                const float *w = b.weights + k * (size_t)dim;
                int finite = 1;
                for (int j = 0; j < dim; j++) finite &= isfinite(w[j]) != 0;
                if (!finite) {
                    /* refused: the copy held from an earlier fetch stays in use, or zeros (an unseen key) */
                    r->st.refused_rows++;
                    continue;
                }
                b.present[k] = 1;
            } else {
                /* absent: reads as zeros -- unless an earlier fetch left it in the model */
                fr_row_view old;
                if (fr_model_get_row(r->m, b.rows[k].table, b.rows[k].key, &old) == 0) reset = 1;
            }
        }
    }
    for (int g = 0; g < ng; g++) freeReplyObject(b.rep[g]);

    size_t held = 0;
    for (uint32_t t = 0; rc == 0 && t < fr_model_table_count(r->m); t++) held += fr_model_row_count(r->m, t);
    if (rc == 0 && (reset || held + nk > MAX_CACHED_ROWS)) {
        fr_model *m = fresh_model(cfg, r->dense, r->dense_count, r->version, err, errlen);
        if (!m) rc = -1;
        else {
            fr_model_free(r->m);
            r->m = m;
        }
    }
    for (size_t k = 0; k < nk && rc == 0; k++) {
        if (!b.present[k]) continue;
        if (fr_model_put_row(r->m, b.rows[k].table, b.rows[k].key, b.versions[k], b.weights + k * (size_t)dim, NULL) !=
            0) {
            snprintf(err, errlen, "reader: the model refused row %" PRIu64 " of table %" PRIu32 " (out of memory?)",
                     b.rows[k].key, b.rows[k].table);
            rc = -1;
        }
    }
    free(mem);
    if (rc != 0) return -1;
    for (int i = 0; i < n; i++) {
        float raw[FR_NTASKS];
        double served[FR_NTASKS];
        fr_model_predict(r->m, &f[i], scenario[i], raw);
        fr_serve_apply(r->serve, raw, served);
        for (int t = 0; t < FR_NTASKS; t++) out[i][t] = (float)served[t];
    }
    return 0;
}

/* The dense checksum version v's manifest records now; -1 with a message when it has none. */
static int manifest_checksum(fr_reader *r, uint64_t v, char sum[17], char *err, size_t errlen)
{
    char mkey[FR_REDIS_KEY_MAX];
    fr_redis_key_manifest(mkey, r->prefix, v);
    const char *a[2] = {"GET", mkey};
    size_t l[2] = {3, strlen(mkey)};
    const char **argvs[1] = {a};
    const size_t *lenss[1] = {l};
    int argcs[1] = {2};
    redisReply *rep;
    if (roundtrip(r, 1, argvs, lenss, argcs, &rep, err, errlen) != 0) return -1;
    json_t *o = rep->type == REDIS_REPLY_STRING ? json_loadb(rep->str, rep->len, 0, NULL) : NULL;
    freeReplyObject(rep);
    const char *h = json_string_value(json_object_get(json_object_get(o, "dense"), "xxh3_64"));
    int rc = h && strlen(h) == 16 ? 0 : -1;
    if (rc == 0) memcpy(sum, h, 17);
    else snprintf(err, errlen, "reader: version %" PRIu64 " was announced again but its manifest is unreadable", v);
    json_decref(o);
    return rc;
}

/* Reads P:changes after the last id seen (blocking up to block_ms), then compares P:active with
 * the loaded version and reloads when they differ. The stream is the wake-up; P:active is the
 * truth (it also covers a trimmed or recreated stream, and a Redis that restarted). */
static int follow(fr_reader *r, int block_ms, char *err, size_t errlen)
{
    if (!r->loaded) {
        int rc = load_active(r, err, errlen);
        return rc == 0 ? 1 : -1;
    }
    if (ensure_connection(r, err, errlen) != 0) return -1;
    if (block_ms > FOLLOW_BLOCK_MAX_MS) block_ms = FOLLOW_BLOCK_MAX_MS;
    char ckey[FR_REDIS_KEY_MAX], akey[FR_REDIS_KEY_MAX], ms[16];
    fr_redis_key_changes(ckey, r->prefix);
    fr_redis_key_active(akey, r->prefix);
    snprintf(ms, sizeof ms, "%d", block_ms > 0 ? block_ms : 0);
    const char *xa[8] = {"XREAD", "COUNT", "1000", "BLOCK", ms, "STREAMS", ckey, r->stream_id};
    size_t xl[8];
    for (int i = 0; i < 8; i++) xl[i] = strlen(xa[i]);
    const char *xn[6] = {"XREAD", "COUNT", "1000", "STREAMS", ckey, r->stream_id};
    size_t xnl[6];
    for (int i = 0; i < 6; i++) xnl[i] = strlen(xn[i]);
    const char *ga[2] = {"GET", akey};
    size_t gl[2] = {3, strlen(akey)};
    const char **argvs[2] = {block_ms > 0 ? xa : xn, ga};
    const size_t *lenss[2] = {block_ms > 0 ? xl : xnl, gl};
    int argcs[2] = {block_ms > 0 ? 8 : 6, 2};
    redisReply *rep[2];
    if (roundtrip(r, 2, argvs, lenss, argcs, rep, err, errlen) != 0) return -1;
    /* [[stream, [[id, [field, value, ...]], ...]]] or nil on timeout */
    redisReply *x = rep[0];
    int deleted = 0, recheck = 0;
    if (x->type == REDIS_REPLY_ARRAY && x->elements > 0 && x->element[0]->type == REDIS_REPLY_ARRAY &&
        x->element[0]->elements == 2 && x->element[0]->element[1]->type == REDIS_REPLY_ARRAY) {
        redisReply *entries = x->element[0]->element[1];
        for (size_t i = 0; i < entries->elements; i++) {
            /* [id, [field, value, ...]]: a push that deleted rows makes every cached row suspect; an entry
             * naming the loaded version with another dense checksum (or none) means the number may have
             * been published again with other content */
            redisReply *e = entries->element[i];
            if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 || e->element[1]->type != REDIS_REPLY_ARRAY) continue;
            redisReply *kv = e->element[1];
            uint64_t ev = 0;
            int names_loaded = 0, same_sum = 0;
            for (size_t j = 0; j + 1 < kv->elements; j += 2) {
                const redisReply *k = kv->element[j], *val = kv->element[j + 1];
                if (k->type != REDIS_REPLY_STRING || val->type != REDIS_REPLY_STRING) continue;
                if (strcmp(k->str, "deleted") == 0 && strcmp(val->str, "0") != 0) deleted = 1;
                if (strcmp(k->str, "version") == 0 && fr_parse_u64(val->str, val->len, &ev) == 0 && ev == r->version)
                    names_loaded = 1;
                if (strcmp(k->str, "dense_xxh3_64") == 0 && strcmp(val->str, r->xxh3) == 0) same_sum = 1;
            }
            if (names_loaded && !same_sum) recheck = 1;
        }
        if (entries->elements > 0) {
            redisReply *last = entries->element[entries->elements - 1];
            if (last->type == REDIS_REPLY_ARRAY && last->elements > 0 && last->element[0]->type == REDIS_REPLY_STRING &&
                last->element[0]->len < sizeof r->stream_id)
                snprintf(r->stream_id, sizeof r->stream_id, "%s", last->element[0]->str);
        }
    }
    uint64_t v = 0;
    int have = rep[1]->type == REDIS_REPLY_STRING && fr_parse_u64(rep[1]->str, rep[1]->len, &v) == 0;
    freeReplyObject(rep[0]);
    freeReplyObject(rep[1]);
    if (deleted && r->m) {
        fr_model *m = fresh_model(fr_model_get_config(r->m), r->dense, r->dense_count, r->version, err, errlen);
        if (!m) return -1;
        fr_model_free(r->m);
        r->m = m;
    }
    /* no active version (Redis restarted empty, nothing pushed yet): keep serving what we have */
    if (!have) return 0;
    if (v == r->version) {
        if (!recheck) return 0;
        /* the same number announced again: reload only when its checksum is not the loaded one */
        char sum[17];
        if (manifest_checksum(r, v, sum, err, errlen) != 0) return -1;
        if (strcmp(sum, r->xxh3) == 0) return 0;
    }
    return load_active(r, err, errlen) == 0 ? 1 : -1;
}

int fr_reader_follow(fr_reader *r, int block_ms, char *err, size_t errlen)
{
    fr_sigpipe_guard g;
    fr_sigpipe_block(&g);
    int rc = follow(r, block_ms, err, errlen);
    fr_sigpipe_restore(&g);
    return rc;
}

int fr_reader_load_active(fr_reader *r, char *err, size_t errlen)
{
    fr_sigpipe_guard g;
    fr_sigpipe_block(&g);
    int rc = load_active(r, err, errlen);
    fr_sigpipe_restore(&g);
    return rc;
}

long fr_reader_row_count(fr_reader *r, uint32_t table)
{
    if (!r->loaded || table >= (uint32_t)(r->cfg.n_cat + r->cfg.n_multi)) return -1; /* the layout is the version's */
    fr_sigpipe_guard g;
    fr_sigpipe_block(&g);
    long rc = row_count(r, table);
    fr_sigpipe_restore(&g);
    return rc;
}

int fr_reader_score(fr_reader *r, const fr_features *f, int32_t scenario, float out[FR_NTASKS], char *err,
                    size_t errlen)
{
    return fr_reader_score_batch(r, f, &scenario, 1, (float(*)[FR_NTASKS])out, err, errlen);
}

int fr_reader_score_batch(fr_reader *r, const fr_features *f, const int32_t *scenario, int n,
                          float (*out)[FR_NTASKS], char *err, size_t errlen)
{
    fr_sigpipe_guard g;
    fr_sigpipe_block(&g);
    int rc = score(r, f, scenario, n, out, err, errlen);
    fr_sigpipe_restore(&g);
    return rc;
}

void fr_reader_get_stats(const fr_reader *r, fr_reader_stats *st) { *st = r->st; }

size_t fr_reader_cached_rows(const fr_reader *r)
{
    size_t n = 0;
    if (r->m)
        for (uint32_t t = 0; t < fr_model_table_count(r->m); t++) n += fr_model_row_count(r->m, t);
    return n;
}
