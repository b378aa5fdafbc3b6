/* fr_verify: see fr_verify.h and docs/redis-layout.md. */
#include "fr_verify.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fr_reader.h"
#include "fr_redis_layout.h"
#include "fr_model_json.h"

static void note(fr_verify_report *rep, const char *fmt, ...)
{
    if (rep->nnotes >= FR_VERIFY_MAX_NOTES) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rep->notes[rep->nnotes++], FR_VERIFY_NOTE_MAX, fmt, ap);
    va_end(ap);
}

/* The model's keys of one row hash (table, shard), sorted before the comparison. */
typedef struct {
    uint64_t *keys;
    size_t n, cap;
} keyvec;

typedef struct {
    keyvec *v;       /* per (table, shard) of one layout: v[base[t] + shard] */
    const size_t *base;
    const uint32_t *live;
    int layout;
    int oom;
} collect_ctx;

static int collect(const fr_row_view *row, void *ctx)
{
    collect_ctx *c = ctx;
    if (!(c->live[row->table] >> c->layout & 1)) return 0;
    keyvec *k = &c->v[c->base[row->table] + fr_redis_shard_of(row->key, c->layout)];
    if (k->n == k->cap) {
        size_t nc = k->cap ? 2 * k->cap : 64;
        uint64_t *nk = realloc(k->keys, nc * sizeof *nk);
        if (!nk) {
            c->oom = 1;
            return -1;
        }
        k->keys = nk;
        k->cap = nc;
    }
    k->keys[k->n++] = row->key;
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* A field of a row hash: the key it names and where its value is. */
typedef struct {
    uint64_t key;
    const redisReply *value;
} field_ref;

static int cmp_field(const void *a, const void *b) { return cmp_u64(&((const field_ref *)a)->key, &((const field_ref *)b)->key); }

/* One hash of a table the model has, field by field against the model. */
static int compare_hash(redisContext *c, const char *hkey, uint32_t t, int lay, uint32_t s, keyvec *kv,
                        const fr_model *m, fr_verify_report *rep, char *err, size_t errlen)
{
    const char *a[2] = {"HGETALL", hkey};
    size_t l[2] = {7, strlen(hkey)};
    int broken;
    redisReply *r = fr_redis_command(c, 2, a, l, &broken, err, errlen);
    if (!r) return -1;
    if (r->type != REDIS_REPLY_ARRAY || r->elements % 2) {
        snprintf(err, errlen, "HGETALL %s: %s is not a hash", hkey, hkey);
        freeReplyObject(r);
        return -1;
    }
    size_t nf = r->elements / 2, nr = 0;
    rep->redis_rows += nf;
    field_ref *f = malloc((nf ? nf : 1) * sizeof *f);
    const int dim = fr_model_get_config(m)->emb_dim;
    unsigned char *enc = malloc(FR_REDIS_ROW_HEADER + 4 * (size_t)dim);
    if (!f || !enc) {
        free(f);
        free(enc);
        freeReplyObject(r);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < nf; i++) {
        const redisReply *name = r->element[2 * i];
        uint64_t k;
        if (name->type != REDIS_REPLY_STRING || name->len != 8 ||
            fr_redis_shard_of(k = fr_get_u64le((const unsigned char *)name->str), lay) != s) {
            rep->extra++;
            note(rep, "extra: %s holds a field of %zu bytes that is no row of this hash", hkey,
                 name->type == REDIS_REPLY_STRING ? name->len : 0);
            continue;
        }
        f[nr++] = (field_ref){k, r->element[2 * i + 1]};
    }
    qsort(f, nr, sizeof *f, cmp_field);
    if (kv->n) qsort(kv->keys, kv->n, sizeof *kv->keys, cmp_u64);
    size_t i = 0, j = 0;
    while (i < kv->n || j < nr) {
        if (j == nr || (i < kv->n && kv->keys[i] < f[j].key)) {
            rep->missing++;
            note(rep, "missing: table %" PRIu32 " key 0x%016" PRIx64 " is in the checkpoint, not in %s", t, kv->keys[i],
                 hkey);
            i++;
        } else if (i == kv->n || f[j].key < kv->keys[i]) {
            rep->extra++;
            note(rep, "extra: table %" PRIu32 " key 0x%016" PRIx64 " is in %s, not in the checkpoint", t, f[j].key, hkey);
            j++;
        } else {
            fr_row_view row;
            const redisReply *v = f[j].value;
            int same = 0;
            if (fr_model_get_row(m, t, kv->keys[i], &row) == 0) {
                fr_redis_row_encode(enc, row.dim, row.version, row.weights);
                same = v->type == REDIS_REPLY_STRING && v->len == FR_REDIS_ROW_HEADER + 4 * (size_t)dim &&
                       memcmp(v->str, enc, v->len) == 0;
            }
            if (same) {
                rep->equal++;
            } else {
                rep->different++;
                uint64_t rv = 0;
                char derr[160] = "not a string";
                float *w = malloc((size_t)dim * sizeof *w);
                if (w && v->type == REDIS_REPLY_STRING &&
                    fr_redis_row_decode(v->str, v->len, dim, &rv, w, derr, sizeof derr) == 0) {
                    note(rep,
                         "different: table %" PRIu32 " key 0x%016" PRIx64 ": redis has version %" PRIu64
                         " weight[0] %.9g, the checkpoint version %" PRIu64 " weight[0] %.9g",
                         t, kv->keys[i], rv, (double)w[0], row.version, (double)row.weights[0]);
                } else {
                    note(rep, "different: table %" PRIu32 " key 0x%016" PRIx64 ": redis holds no valid row (%s)", t,
                         kv->keys[i], derr);
                }
                free(w);
            }
            i++;
            j++;
        }
    }
    free(f);
    free(enc);
    freeReplyObject(r);
    return 0;
}

/* Hashes no retained version reads (tables the model does not have, shard counts no retained version
 * uses): every field is extra. */
static int foreign_tables(redisContext *c, const char *prefix, uint32_t ntab, const uint32_t *live,
                          fr_verify_report *rep, char *err, size_t errlen)
{
    char pattern[FR_REDIS_KEY_MAX + 8], cursor[32] = "0";
    snprintf(pattern, sizeof pattern, "%s:emb:*", prefix);
    do {
        const char *a[6] = {"SCAN", cursor, "MATCH", pattern, "COUNT", "1000"};
        size_t l[6] = {4, strlen(cursor), 5, strlen(pattern), 5, 4};
        int broken;
        redisReply *r = fr_redis_command(c, 6, a, l, &broken, err, errlen);
        if (!r) return -1;
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 || r->element[0]->type != REDIS_REPLY_STRING ||
            r->element[1]->type != REDIS_REPLY_ARRAY || r->element[0]->len >= sizeof cursor) {
            freeReplyObject(r);
            snprintf(err, errlen, "SCAN %s: unexpected reply", pattern);
            return -1;
        }
        snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
        for (size_t i = 0; i < r->element[1]->elements; i++) {
            const redisReply *k = r->element[1]->element[i];
            uint32_t t, s;
            int lay;
            if (k->type != REDIS_REPLY_STRING || fr_redis_parse_rows_key(prefix, k->str, k->len, &t, &lay, &s) != 0 ||
                (t < ntab && (live[t] >> lay & 1)))
                continue;
            const char *ha[2] = {"HLEN", k->str};
            size_t hl[2] = {4, k->len};
            redisReply *h = fr_redis_command(c, 2, ha, hl, &broken, err, errlen);
            if (!h) {
                freeReplyObject(r);
                return -1;
            }
            if (h->type == REDIS_REPLY_INTEGER && h->integer > 0) {
                rep->redis_rows += (uint64_t)h->integer;
                rep->extra += (uint64_t)h->integer;
                if (t >= ntab)
                    note(rep, "extra: %s holds %lld rows of table %" PRIu32 ", the checkpoint has %" PRIu32 " tables",
                         k->str, h->integer, t, ntab);
                else
                    note(rep, "extra: %s holds %lld rows under %" PRIu32 " shards, a count no retained version reads",
                         k->str, h->integer, fr_redis_layout_shards(lay));
            }
            freeReplyObject(h);
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    return 0;
}

/* Every row hash a retained version reads -- each table under each shard count a retained version
 * gives it (two while a table moves to more shards, until the last version of the old count is
 * retired) -- against the model, then the hashes nothing reads. */
static int compare_rows(redisContext *c, const char *prefix, const fr_model *m, fr_verify_report *rep, char *err,
                        size_t errlen)
{
    uint32_t ntab = fr_model_table_count(m);
    uint32_t *live = calloc(ntab ? ntab : 1, sizeof *live), all = 0;
    uint8_t *newest = malloc(ntab ? ntab : 1);
    size_t *base = calloc(ntab ? ntab : 1, sizeof *base);
    int rc = 0, broken;
    if (!live || !newest || !base) {
        snprintf(err, errlen, "out of memory");
        rc = -1;
    }
    if (rc == 0) rc = fr_redis_retained_layouts(c, prefix, ntab, live, newest, &broken, err, errlen);
    for (uint32_t t = 0; rc == 0 && t < ntab; t++) {
        size_t n = fr_model_row_count(m, t);
        rep->model_rows += n;
        all |= live[t];
        if (!live[t] && n) {
            rep->missing += n;
            note(rep, "missing: the %zu rows of table %" PRIu32 ": no retained version has a readable manifest", n, t);
        }
    }
    for (int lay = 0; rc == 0 && lay < 32; lay++) {
        if (!(all >> lay & 1)) continue;
        uint32_t shards = fr_redis_layout_shards(lay);
        size_t nv = 0;
        for (uint32_t t = 0; t < ntab; t++) {
            base[t] = nv;
            if (live[t] >> lay & 1) nv += shards;
        }
        keyvec *v = calloc(nv ? nv : 1, sizeof *v);
        if (!v) {
            snprintf(err, errlen, "out of memory");
            rc = -1;
            break;
        }
        collect_ctx cc = {v, base, live, lay, 0};
        fr_model_foreach_row(m, 0, collect, &cc);
        if (cc.oom) {
            snprintf(err, errlen, "out of memory listing the checkpoint's rows");
            rc = -1;
        }
        for (uint32_t t = 0; rc == 0 && t < ntab; t++) {
            if (!(live[t] >> lay & 1)) continue;
            for (uint32_t s = 0; rc == 0 && s < shards; s++) {
                char hkey[FR_REDIS_KEY_MAX];
                fr_redis_key_rows(hkey, prefix, t, lay, s);
                rc = compare_hash(c, hkey, t, lay, s, &v[base[t] + s], m, rep, err, errlen);
            }
        }
        for (size_t i = 0; i < nv; i++) free(v[i].keys);
        free(v);
    }
    if (rc == 0) rc = foreign_tables(c, prefix, ntab, live, rep, err, errlen);
    free(live);
    free(newest);
    free(base);
    return rc;
}

/* The active version through the serving reader, against the model's dense parameters. */
static int compare_dense(const char *host, int port, const char *prefix, const fr_model *m, fr_verify_report *rep,
                         char *err, size_t errlen)
{
    char rerr[512];
    fr_reader *r = fr_reader_open(host, port, prefix, rerr, sizeof rerr);
    if (!r) {
        snprintf(err, errlen, "%s", rerr);
        return -1;
    }
    if (fr_reader_load_active(r, rerr, sizeof rerr) != 0) {
        note(rep, "dense: the active version does not load: %s", rerr);
        fr_reader_close(r);
        return 0;
    }
    rep->loaded = 1;
    rep->active_version = fr_reader_version(r);
    json_t *o = json_loads(fr_reader_manifest(r), 0, NULL);
    if (fr_json_get_u64(o, "model_version", &rep->active_model_version) != 0) rep->active_model_version = 0;
    json_decref(o);
    size_t n;
    const float *d = fr_reader_dense(r, &n);
    size_t want = fr_model_dense_count(m);
    const float *mine = fr_model_dense_params(m);
    rep->dense_count = n;
    if (n != want) {
        rep->dense_different = n > want ? n : want;
        note(rep, "dense: version %" PRIu64 " holds %zu parameters, the checkpoint %zu", rep->active_version, n, want);
    } else {
        for (size_t i = 0; i < n; i++) {
            if (memcmp(&d[i], &mine[i], sizeof *d) == 0) continue;
            if (rep->dense_different++ == 0)
                note(rep, "dense: version %" PRIu64 " parameter %zu is %.9g, the checkpoint's %.9g", rep->active_version,
                     i, (double)d[i], (double)mine[i]);
        }
    }
    fr_reader_close(r);
    return 0;
}

int fr_verify_redis(const char *host, int port, const char *prefix, const fr_model *m, fr_verify_report *rep,
                    char *err, size_t errlen)
{
    memset(rep, 0, sizeof *rep);
    if (fr_redis_check_prefix(prefix, err, errlen) != 0) return -1;
    char cerr[256];
    redisContext *c = fr_redis_connect(host, port, cerr, sizeof cerr);
    if (!c) {
        snprintf(err, errlen, "verify: %s", cerr);
        return -1;
    }
    fr_sigpipe_guard g;
    fr_sigpipe_block(&g);
    int rc = compare_rows(c, prefix, m, rep, err, errlen);
    fr_sigpipe_restore(&g);
    redisFree(c);
    if (rc == 0) rc = compare_dense(host, port, prefix, m, rep, err, errlen);
    return rc;
}

int fr_verify_ok(const fr_verify_report *rep)
{
    return rep->missing == 0 && rep->extra == 0 && rep->different == 0 && rep->loaded && rep->dense_different == 0;
}
