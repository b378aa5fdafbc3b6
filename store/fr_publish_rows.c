/* fr_publish: writing the rows of a push into their shard hashes (fr_publish_int.h,
 * docs/redis-layout.md "Push order" and "Shards"). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fr_model_json.h"
#include "fr_publish_int.h"

/* ---- rows --------------------------------------------------------------------------------- */

typedef struct {
    unsigned char *buf; /* cap x (8-byte field, row value), grown up to FIELDS_PER_HSET on use */
    int n;
    int ndel;           /* deletion pass: fields in buf (8 bytes each) */
    int cap;
} bucket;

typedef struct {
    fr_publisher *p;
    fr_pipe pipe;
    int dim;
    uint32_t ntab;
    size_t row_len;        /* encoded row value */
    const uint32_t *live;  /* per table: the layouts written (retained versions' and this push's) */
    const uint8_t *current; /* per table: this push's layout (its HDELs are the rows counted as deleted) */
    size_t *base;          /* ntab x LAYOUTS: index of the first bucket of (table, layout) */
    size_t nbuckets;
    bucket *buckets;       /* per (table, live layout, shard) */
    size_t buffered;       /* rows waiting in buckets */
    const char **argv;
    size_t *lens;
    size_t rows;
    char err[256];
} rows_ctx;

static bucket *bucket_of(rows_ctx *r, uint32_t table, int layout, uint32_t shard)
{
    return &r->buckets[r->base[(size_t)table * LAYOUTS + (size_t)layout] + shard];
}

/* Room for one more entry (a row, or with del an 8-byte field) in b. 0, or -1 out of memory. */
static int bucket_reserve(rows_ctx *r, bucket *b, int del)
{
    int n = del ? b->ndel : b->n;
    if (n < b->cap) return 0;
    int cap = b->cap ? 2 * b->cap : 4;
    unsigned char *nb = realloc(b->buf, (size_t)cap * (8 + r->row_len));
    if (!nb) {
        snprintf(r->err, sizeof r->err, "out of memory");
        return -1;
    }
    b->buf = nb;
    b->cap = cap;
    return 0;
}

/* Sends the bucket's pending writes (HSET field value ...) or, with del, its pending deletions
 * (HDEL field ...: 8-byte fields packed back to back) as one command on its shard hash. */
static int flush_bucket(rows_ctx *r, uint32_t table, int layout, uint32_t shard, int del)
{
    bucket *b = bucket_of(r, table, layout, shard);
    int *n = del ? &b->ndel : &b->n;
    if (*n == 0) return 0;
    if (!del) r->buffered -= (size_t)*n;
    char key[FR_REDIS_KEY_MAX];
    fr_redis_key_rows(key, r->p->prefix, table, layout, shard);
    r->argv[0] = del ? "HDEL" : "HSET";
    r->lens[0] = 4;
    r->argv[1] = key;
    r->lens[1] = strlen(key);
    size_t value_len = del ? 0 : r->row_len;
    for (int i = 0; i < *n;) { /* deletions gather without a bound: sent FIELDS_PER_HSET per command */
        int argc = 2;
        for (int end = i + FIELDS_PER_HSET < *n ? i + FIELDS_PER_HSET : *n; i < end; i++) {
            const unsigned char *e = b->buf + (size_t)i * (8 + value_len);
            r->argv[argc] = (const char *)e;
            r->lens[argc++] = 8;
            if (value_len) {
                r->argv[argc] = (const char *)e + 8;
                r->lens[argc++] = value_len;
            }
        }
        /* hiredis copies the arguments into its output buffer */
        if (fr_pipe_append(&r->pipe, argc, r->argv, r->lens) != 0) {
            *n = 0;
            return -1;
        }
    }
    *n = 0;
    return 0;
}

/* Sends every bucket's pending writes (or deletions): of every live layout (which 0), of each
 * table's current layout only (1), or of the others only (2). */
static int flush_all(rows_ctx *r, int del, int which)
{
    for (uint32_t t = 0; t < r->ntab; t++)
        for (int lay = 0; lay < LAYOUTS; lay++) {
            if (!(r->live[t] >> lay & 1) || (which == 1 && lay != r->current[t]) || (which == 2 && lay == r->current[t]))
                continue;
            uint32_t n = fr_redis_layout_shards(lay);
            for (uint32_t s = 0; s < n; s++)
                if (flush_bucket(r, t, lay, s, del) != 0) return -1;
        }
    return 0;
}

/* A row goes to its shard hash under every live layout of its table: while a retained version
 * still reads a table's previous shard count, both are kept current (a rollback to it serves the
 * latest rows, as with any rollback). */
static int push_row_cb(const fr_row_view *row, void *ctx)
{
    rows_ctx *r = ctx;
    if (row->dim != r->dim || row->table >= r->ntab) {
        snprintf(r->err, sizeof r->err, "row of table %" PRIu32 " with dim %d (expected < %" PRIu32 " tables, dim %d)",
                 row->table, row->dim, r->ntab, r->dim);
        return -1;
    }
    size_t stride = 8 + r->row_len;
    for (int lay = 0; lay < LAYOUTS; lay++) {
        if (!(r->live[row->table] >> lay & 1)) continue;
        uint32_t shard = fr_redis_shard_of(row->key, lay);
        bucket *b = bucket_of(r, row->table, lay, shard);
        if (bucket_reserve(r, b, 0) != 0) return -1;
        unsigned char *e = b->buf + (size_t)b->n * stride;
        fr_redis_row_field(e, row->key);
        fr_redis_row_encode(e + 8, row->dim, row->version, row->weights);
        b->n++;
        r->buffered++;
        if (b->n == FIELDS_PER_HSET && flush_bucket(r, row->table, lay, shard, 0) != 0) return -1;
    }
    r->rows++;
    if (r->buffered >= MAX_BUFFERED_ROWS && flush_all(r, 0, 0) != 0) return -1;
    return 0;
}

static int delete_in_layout(rows_ctx *r, uint32_t table, int lay, uint64_t key)
{
    uint32_t shard = fr_redis_shard_of(key, lay);
    bucket *b = bucket_of(r, table, lay, shard);
    if (bucket_reserve(r, b, 1) != 0) return -1;
    fr_redis_row_field(b->buf + (size_t)b->ndel * 8, key);
    b->ndel++;
    return 0;
}

static int push_delete_cb(uint32_t table, uint64_t key, void *ctx)
{
    rows_ctx *r = ctx;
    if (table >= r->ntab) {
        snprintf(r->err, sizeof r->err, "deleted row of table %" PRIu32 " (expected < %" PRIu32 ")", table, r->ntab);
        return -1;
    }
    for (int lay = 0; lay < LAYOUTS; lay++)
        if ((r->live[table] >> lay & 1) && delete_in_layout(r, table, lay, key) != 0) return -1;
    return 0;
}

/* Reports a failed round trip like a pipelined failure, so a lost connection is dropped and re-made. */
static int batch_failed(rows_ctx *r, const char *msg)
{
    r->pipe.failed = 1;
    r->pipe.broken = 1;
    snprintf(r->pipe.err, sizeof r->pipe.err, "%s", msg);
    return -1;
}

/* One round trip of a read command (HKEYS, HGETALL) over up to HASHES_PER_TRIP consecutive shard
 * hashes of a table's layout, on a drained connection: the hashes' keys and the replies (the caller
 * frees each reply). Owned by the function that walks the shards; shard_trip_free releases it. */
typedef struct {
    char (*keys)[FR_REDIS_KEY_MAX];
    const char *(*argv)[2];
    size_t (*lens)[2];
    const char ***argvs;
    const size_t **lenss;
    int *argcs;
    redisReply **rep;
} shard_trip;

static void shard_trip_free(shard_trip *x)
{
    free(x->keys), free(x->argv), free(x->lens), free(x->argvs), free(x->lenss), free(x->argcs), free(x->rep);
}

static int shard_trip_init(rows_ctx *r, shard_trip *x)
{
    x->keys = malloc(HASHES_PER_TRIP * sizeof *x->keys);
    x->argv = malloc(HASHES_PER_TRIP * sizeof *x->argv);
    x->lens = malloc(HASHES_PER_TRIP * sizeof *x->lens);
    x->argvs = malloc(HASHES_PER_TRIP * sizeof *x->argvs);
    x->lenss = malloc(HASHES_PER_TRIP * sizeof *x->lenss);
    x->argcs = malloc(HASHES_PER_TRIP * sizeof *x->argcs);
    x->rep = malloc(HASHES_PER_TRIP * sizeof *x->rep);
    if (x->keys && x->argv && x->lens && x->argvs && x->lenss && x->argcs && x->rep) return 0;
    shard_trip_free(x);
    memset(x, 0, sizeof *x); /* the caller frees it once more, whatever happened */
    snprintf(r->err, sizeof r->err, "out of memory");
    return -1;
}

/* Drains the pipeline, then sends cmd to the n hashes of table t, layout lay, from shard s0. */
static int shard_trip_send(rows_ctx *r, shard_trip *x, const char *cmd, uint32_t t, int lay, uint32_t s0, int n)
{
    if (fr_pipe_drain(&r->pipe) != 0) return -1;
    for (int i = 0; i < n; i++) {
        fr_redis_key_rows(x->keys[i], r->p->prefix, t, lay, s0 + (uint32_t)i);
        x->argv[i][0] = cmd, x->lens[i][0] = strlen(cmd);
        x->argv[i][1] = x->keys[i], x->lens[i][1] = strlen(x->keys[i]);
        x->argvs[i] = x->argv[i], x->lenss[i] = x->lens[i], x->argcs[i] = 2;
    }
    char berr[256];
    if (fr_redis_batch(r->p->c, n, x->argvs, x->lenss, x->argcs, x->rep, berr, sizeof berr) != 0)
        return batch_failed(r, berr);
    return 0;
}

/* Full pushes only: HDELs every field of our row hashes whose row the source does not hold -- rows
 * deleted (evicted) by an earlier process whose deletion was checkpointed but never pushed (a crash
 * between the checkpoint and the push), rows of a run that was restored from an earlier
 * checkpoint, rows of another model that published under this prefix before. Per table and live
 * layout, the fields of its hashes are read HASHES_PER_TRIP hashes per round trip (HKEYS, on a
 * drained connection: with replies outstanding they would be read in their place); the deletions
 * follow on the pipe. The rows removed from the current layout's hashes are added to *removed
 * (another live layout holds copies of the same rows). */
static int delete_strays(rows_ctx *r, const fr_publish_source *src, size_t *removed)
{
    shard_trip x;
    int rc = shard_trip_init(r, &x);
    for (uint32_t t = 0; rc == 0 && t < r->ntab; t++) {
        for (int lay = 0; rc == 0 && lay < LAYOUTS; lay++) {
            if (!(r->live[t] >> lay & 1)) continue;
            uint32_t nshards = fr_redis_layout_shards(lay);
            for (uint32_t s0 = 0; rc == 0 && s0 < nshards; s0 += HASHES_PER_TRIP) {
                int n = nshards - s0 < HASHES_PER_TRIP ? (int)(nshards - s0) : HASHES_PER_TRIP;
                if ((rc = shard_trip_send(r, &x, "HKEYS", t, lay, s0, n)) != 0) break;
                long long before = r->pipe.integers;
                char (*keys)[FR_REDIS_KEY_MAX] = x.keys;
                redisReply **rep = x.rep;
                for (int i = 0; i < n; i++) {
                    uint32_t s = s0 + (uint32_t)i;
                    if (rc == 0 && rep[i]->type == REDIS_REPLY_ERROR) {
                        snprintf(r->err, sizeof r->err, "HKEYS %s: %s", keys[i], rep[i]->str);
                        rc = -1;
                    }
                    for (size_t j = 0; rc == 0 && rep[i]->type == REDIS_REPLY_ARRAY && j < rep[i]->elements; j++) {
                        const redisReply *f = rep[i]->element[j];
                        if (f->type != REDIS_REPLY_STRING) continue;
                        uint64_t k = f->len == 8 ? fr_get_u64le((const unsigned char *)f->str) : 0;
                        if (f->len == 8 && fr_redis_shard_of(k, lay) == s) {
                            if (!src->has_row(src->ctx, t, k)) rc = delete_in_layout(r, t, lay, k);
                        } else {
                            /* not a row field (written by hand?), or a key in the wrong shard hash: no
                             * reader looks for it there, remove it */
                            const char *a[3] = {"HDEL", keys[i], f->str};
                            size_t l[3] = {4, strlen(keys[i]), f->len};
                            rc = fr_pipe_append(&r->pipe, 3, a, l);
                        }
                    }
                    freeReplyObject(rep[i]);
                    if (rc == 0) rc = flush_bucket(r, t, lay, s, 1);
                }
                if (rc == 0 && fr_pipe_drain(&r->pipe) != 0) rc = -1;
                if (rc == 0 && lay == r->current[t]) *removed += (size_t)(r->pipe.integers - before);
            }
        }
    }
    shard_trip_free(&x);
    return rc;
}

/* Full pushes only: deletes the row hashes no retained version reads: those of tables this model
 * does not have (a model with fewer fields published under this prefix before; their rows are
 * added to *removed), and those of a shard count no retained version uses (a push that moved a
 * table to a new count and died before its flip, a retirement that died before its UNLINKs). One
 * SCAN over the prefix's row keys, then HLEN (to count the rows) and UNLINK of each such hash. */
static int delete_foreign_tables(rows_ctx *r, size_t *removed)
{
    char pattern[FR_REDIS_KEY_MAX + 8], cursor[32] = "0", berr[256];
    snprintf(pattern, sizeof pattern, "%s:emb:*", r->p->prefix);
    do {
        const char *a[6] = {"SCAN", cursor, "MATCH", pattern, "COUNT", "1000"};
        size_t l[6] = {4, strlen(cursor), 5, strlen(pattern), 5, 4};
        int broken;
        redisReply *rep = fr_redis_command(r->p->c, 6, a, l, &broken, berr, sizeof berr);
        if (!rep) return broken ? batch_failed(r, berr) : (snprintf(r->err, sizeof r->err, "%s", berr), -1);
        if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 || rep->element[0]->type != REDIS_REPLY_STRING ||
            rep->element[1]->type != REDIS_REPLY_ARRAY || rep->element[0]->len >= sizeof cursor) {
            freeReplyObject(rep);
            snprintf(r->err, sizeof r->err, "SCAN %s: unexpected reply", pattern);
            return -1;
        }
        snprintf(cursor, sizeof cursor, "%s", rep->element[0]->str);
        int rc = 0;
        for (size_t i = 0; rc == 0 && i < rep->element[1]->elements; i++) {
            const redisReply *k = rep->element[1]->element[i];
            uint32_t t, s;
            int lay;
            if (k->type != REDIS_REPLY_STRING ||
                fr_redis_parse_rows_key(r->p->prefix, k->str, k->len, &t, &lay, &s) != 0 ||
                (t < r->ntab && (r->live[t] >> lay & 1)))
                continue;
            const char *ha[2] = {"HLEN", k->str}, *ua[2] = {"UNLINK", k->str};
            size_t hl[2] = {4, k->len}, ul[2] = {6, k->len};
            const char **argvs[2] = {ha, ua};
            const size_t *lenss[2] = {hl, ul};
            int argcs[2] = {2, 2};
            redisReply *out[2];
            if (fr_redis_batch(r->p->c, 2, argvs, lenss, argcs, out, berr, sizeof berr) != 0) {
                rc = batch_failed(r, berr);
                break;
            }
            if (t >= r->ntab && out[0]->type == REDIS_REPLY_INTEGER && out[1]->type == REDIS_REPLY_INTEGER &&
                out[1]->integer == 1)
                *removed += (size_t)out[0]->integer;
            freeReplyObject(out[0]);
            freeReplyObject(out[1]);
        }
        freeReplyObject(rep);
        if (rc != 0) return -1;
    } while (strcmp(cursor, "0") != 0);
    return 0;
}

/* Copies every row of table t from the hashes of layout `src` into the buckets of layout `dst`
 * (HGETALL, HASHES_PER_TRIP hashes per round trip on a drained connection). */
static int copy_layout(rows_ctx *r, uint32_t t, int src, int dst)
{
    shard_trip x;
    int rc = shard_trip_init(r, &x);
    uint32_t nshards = fr_redis_layout_shards(src);
    size_t stride = 8 + r->row_len;
    for (uint32_t s0 = 0; rc == 0 && s0 < nshards; s0 += HASHES_PER_TRIP) {
        int n = nshards - s0 < HASHES_PER_TRIP ? (int)(nshards - s0) : HASHES_PER_TRIP;
        if ((rc = shard_trip_send(r, &x, "HGETALL", t, src, s0, n)) != 0) break;
        char (*keys)[FR_REDIS_KEY_MAX] = x.keys;
        redisReply **rep = x.rep;
        for (int i = 0; i < n; i++) {
            if (rc == 0 && (rep[i]->type != REDIS_REPLY_ARRAY || rep[i]->elements % 2)) {
                snprintf(r->err, sizeof r->err, "HGETALL %s: not a hash", keys[i]);
                rc = -1;
            }
            for (size_t j = 0; rc == 0 && j < rep[i]->elements; j += 2) {
                const redisReply *f = rep[i]->element[j], *v = rep[i]->element[j + 1];
                /* only well-formed rows: anything else is no row a reader could use */
                if (f->type != REDIS_REPLY_STRING || f->len != 8 || v->type != REDIS_REPLY_STRING || v->len != r->row_len)
                    continue;
                uint64_t k = fr_get_u64le((const unsigned char *)f->str);
                uint32_t shard = fr_redis_shard_of(k, dst);
                bucket *b = bucket_of(r, t, dst, shard);
                if ((rc = bucket_reserve(r, b, 0)) != 0) break;
                memcpy(b->buf + (size_t)b->n * stride, f->str, 8);
                memcpy(b->buf + (size_t)b->n * stride + 8, v->str, r->row_len);
                b->n++;
                r->buffered++;
                if (b->n == FIELDS_PER_HSET) rc = flush_bucket(r, t, dst, shard, 0);
            }
            freeReplyObject(rep[i]);
        }
        /* the HSETs queued above go out before the next HGETALL round trip (fr_pipe_drain) */
        if (rc == 0) rc = flush_all(r, 0, 1);
    }
    shard_trip_free(&x);
    return rc;
}

/* fr_publish_int.h; *deleted: HDEL's replies, not the deletions sent. */
int fr_publish_rows(fr_publisher *p, const fr_publish_source *src, const uint32_t *live, const uint8_t *current,
                    const uint8_t *from, int full, size_t *rows, size_t *deleted, char *err, size_t errlen)
{
    rows_ctx r;
    memset(&r, 0, sizeof r);
    r.p = p;
    r.dim = fr_model_get_config(src->shape)->emb_dim;
    r.ntab = fr_model_table_count(src->shape);
    r.row_len = FR_REDIS_ROW_HEADER + 4 * (size_t)r.dim;
    r.live = live;
    r.current = current;
    fr_pipe_init(&r.pipe, p->c, ROW_WINDOW);
    r.base = calloc((size_t)r.ntab * LAYOUTS + 1, sizeof *r.base);
    if (r.base)
        for (uint32_t t = 0; t < r.ntab; t++)
            for (int lay = 0; lay < LAYOUTS; lay++) {
                r.base[(size_t)t * LAYOUTS + (size_t)lay] = r.nbuckets;
                if (live[t] >> lay & 1) r.nbuckets += fr_redis_layout_shards(lay);
            }
    r.buckets = calloc(r.nbuckets + 1, sizeof *r.buckets);
    r.argv = malloc((2 + 2 * FIELDS_PER_HSET) * sizeof *r.argv);
    r.lens = malloc((2 + 2 * FIELDS_PER_HSET) * sizeof *r.lens);
    int rc = -1;
    size_t removed = 0;
    if (!r.base || !r.buckets || !r.argv || !r.lens) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    /* deletions first, all sent before any row: a key deleted and created again since the last
     * push ends up with its new row (Redis runs one connection's commands in order) */
    int frc = src->foreach_deleted ? src->foreach_deleted(src->ctx, push_delete_cb, &r) : 0;
    if (frc == 0) frc = flush_all(&r, 1, 1);
    /* their replies, counted apart from the HSETs' (and from the copies in other layouts) */
    if (frc == 0 && fr_pipe_drain(&r.pipe) == 0) removed = (size_t)r.pipe.integers;
    if (frc == 0) frc = flush_all(&r, 1, 2);
    /* tables moving to new shard hashes: every row copied from the hashes of the newest version
     * (after the deletions, before the changed rows, which overwrite the copies) */
    for (uint32_t t = 0; frc == 0 && from && t < r.ntab; t++)
        if (from[t] != FR_REDIS_LAYOUT_NONE) frc = copy_layout(&r, t, from[t], current[t]);
    if (frc == 0) frc = src->foreach_row(src->ctx, full, push_row_cb, &r);
    if (frc == 0) frc = flush_all(&r, 0, 0);
    if (frc == 0 && full && src->has_row && fr_pipe_drain(&r.pipe) == 0) { /* HKEYS must see the rows just written */
        frc = delete_strays(&r, src, &removed);
        if (frc == 0 && !r.pipe.failed) frc = delete_foreign_tables(&r, &removed);
    }
    fr_pipe_drain(&r.pipe);
    if (r.pipe.failed) {
        snprintf(err, errlen, "%s", r.pipe.err);
        if (r.pipe.broken) fr_publish_disconnect(p);
        goto done;
    }
    if (frc != 0) {
        snprintf(err, errlen, "%s", r.err[0] ? r.err : "reading the model's rows failed");
        goto done;
    }
    *rows = r.rows;
    *deleted = removed;
    rc = 0;
done:
    if (r.buckets)
        for (size_t i = 0; i < r.nbuckets; i++) free(r.buckets[i].buf);
    free(r.buckets);
    free(r.base);
    free(r.argv);
    free(r.lens);
    return rc;
}

