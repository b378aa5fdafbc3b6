/* fr_publish: see fr_publish.h and docs/redis-layout.md. */
#include "fr_publish.h"

#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

#include "fr_publish_int.h"
#include "fr_publish_test.h"
#include "fr_redis_layout.h"
#include "fr_model_json.h"

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void fr_publish_disconnect(fr_publisher *p)
{
    if (p->c) redisFree(p->c);
    p->c = NULL;
    p->need_full = 1;
}

fr_publisher *fr_publish_open(const char *host, int port, const char *prefix, int keep_versions, const char *writer_id,
                              char *err, size_t errlen)
{
    if (!host || !host[0]) {
        snprintf(err, errlen, "publish: no redis host configured");
        return NULL;
    }
    if (fr_redis_check_prefix(prefix, err, errlen) != 0) return NULL;
    if (keep_versions < 1) {
        snprintf(err, errlen, "publish: keep_versions is %d, must be at least 1", keep_versions);
        return NULL;
    }
    if (writer_id && (!writer_id[0] || strlen(writer_id) > 256)) {
        snprintf(err, errlen, "publish: the writer id must be 1..256 bytes");
        return NULL;
    }
    fr_publisher *p = calloc(1, sizeof *p);
    if (!p || !(p->host = strdup(host)) || (writer_id && !(p->writer = strdup(writer_id)))) {
        if (p) free(p->host);
        free(p);
        snprintf(err, errlen, "publish: out of memory");
        return NULL;
    }
    p->port = port;
    snprintf(p->prefix, sizeof p->prefix, "%s", prefix);
    p->keep = keep_versions;
    p->need_full = 1;
    p->lease_ms = FR_PUBLISH_LEASE_MS;
    char cerr[256];
    p->c = fr_redis_connect(host, port, cerr, sizeof cerr);
    if (!p->c) {
        snprintf(err, errlen, "publish: %s", cerr);
        fr_publish_close(p);
        return NULL;
    }
    return p;
}

/* Takes or renews the lease (op "take"), or releases it if ours ("release"): one script, so the
 * read and the write of P:writer are atomic. Returns nil on success, else the holder's id. */
static const char LEASE_SCRIPT[] =
    "local v = redis.call('GET', KEYS[1])\n"
    "if ARGV[1] == 'release' then\n"
    "  if v == ARGV[2] then redis.call('DEL', KEYS[1]) end\n"
    "  return false\n"
    "end\n"
    "if v == false or v == ARGV[2] then redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) return false end\n"
    "return v\n";

static int lease(fr_publisher *p, int release, char *err, size_t errlen)
{
    if (!p->writer) return 0;
    char wkey[FR_REDIS_KEY_MAX], ms[16];
    fr_redis_key_writer(wkey, p->prefix);
    snprintf(ms, sizeof ms, "%d", p->lease_ms);
    const char *op = release ? "release" : "take";
    const char *argv[7] = {"EVAL", LEASE_SCRIPT, "1", wkey, op, p->writer, ms};
    size_t lens[7] = {4, sizeof LEASE_SCRIPT - 1, 1, strlen(wkey), strlen(op), strlen(p->writer), strlen(ms)};
    int broken;
    redisReply *r = fr_redis_command(p->c, 7, argv, lens, &broken, err, errlen);
    if (!r) return -1;
    int rc = 0;
    if (r->type == REDIS_REPLY_STRING) {
        snprintf(err, errlen,
                 "redis prefix \"%s\" is held by another writer (\"%.*s\"), this one is \"%s\": two daemons publishing "
                 "under one prefix overwrite each other's rows, so nothing was written. Give each daemon its own "
                 "redis.prefix, or stop the other one; its lease runs out %d ms after its last push",
                 p->prefix, (int)(r->len < 256 ? r->len : 256), r->str, p->writer, p->lease_ms);
        rc = -1;
    } else if (r->type == REDIS_REPLY_ERROR) {
        snprintf(err, errlen, "the writer lease script failed: %.*s", (int)(r->len < 200 ? r->len : 200), r->str);
        rc = -1;
    }
    freeReplyObject(r);
    return rc;
}

void fr_publish_close(fr_publisher *p)
{
    if (!p) return;
    if (p->c) {
        char err[128];
        fr_sigpipe_guard g;
        fr_sigpipe_block(&g);
        (void)lease(p, 1, err, sizeof err); /* best effort: otherwise it runs out by itself */
        fr_sigpipe_restore(&g);
        redisFree(p->c);
    }
    free(p->host);
    free(p->writer);
    free(p);
}

int fr_publish_check_prefix(const char *prefix, char *err, size_t errlen)
{
    return fr_redis_check_prefix(prefix, err, errlen);
}

void fr_publish_last_stats(const fr_publisher *p, fr_publish_stats *s) { *s = p->last; }
uint64_t fr_publish_held_version(const fr_publisher *p) { return p->held; }

void fr_publish_set_log(fr_publisher *p, const fr_log *log) { p->log = log ? *log : (fr_log){NULL, NULL}; }
const char *fr_publish_redis_note(const fr_publisher *p) { return p->note; }

/* Once per publisher: do Redis' hash settings keep our row hashes in the compact listpack encoding
 * (~1.3x the payload per row instead of ~2x)? A managed Redis may refuse CONFIG: then say so and go
 * on with the defaults assumed. */
static void check_hash_settings(fr_publisher *p, size_t row_len)
{
    p->checked = 1;
    const char *a[3] = {"CONFIG", "GET", "hash-max-*"};
    size_t l[3] = {6, 3, 10};
    redisReply *r = redisCommandArgv(p->c, 3, a, l);
    long long entries = -1, value = -1;
    const char *ename = "hash-max-listpack-entries", *vname = "hash-max-listpack-value";
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        snprintf(p->note, sizeof p->note, "cannot read redis %s:%d's hash settings (CONFIG GET %s); assuming "
                 "defaults: row hashes stay compact when hash-max-listpack-entries >= %d and hash-max-listpack-value "
                 ">= %zu (hash-max-ziplist-* before Redis 7)", p->host, p->port,
                 r && r->type == REDIS_REPLY_ERROR ? r->str : "no reply", FR_REDIS_HASH_ENTRIES_NEEDED, row_len);
    } else {
        for (size_t i = 0; i + 1 < r->elements; i += 2) {
            const redisReply *k = r->element[i], *v = r->element[i + 1];
            if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING) continue;
            int lp = strstr(k->str, "listpack") != NULL; /* Redis 7 lists both names; older ones ziplist only */
            if (strstr(k->str, "-entries") && (entries < 0 || lp)) {
                entries = atoll(v->str);
                ename = lp ? "hash-max-listpack-entries" : "hash-max-ziplist-entries";
            } else if (strstr(k->str, "-value") && (value < 0 || lp)) {
                value = atoll(v->str);
                vname = lp ? "hash-max-listpack-value" : "hash-max-ziplist-value";
            }
        }
        size_t n = 0;
        if (entries >= 0 && entries < FR_REDIS_HASH_ENTRIES_NEEDED)
            n += (size_t)snprintf(p->note + n, sizeof p->note - n, "redis %s:%d has %s %lld: row hashes of up to %d "
                                  "rows leave the compact encoding (about 2x the memory); raise it to %d (CONFIG SET %s "
                                  "%d, and in redis.conf). ", p->host, p->port, ename, entries,
                                  FR_REDIS_HASH_ENTRIES_NEEDED, FR_REDIS_HASH_ENTRIES_NEEDED, ename,
                                  FR_REDIS_HASH_ENTRIES_NEEDED);
        if (value >= 0 && (size_t)value < row_len && n < sizeof p->note)
            snprintf(p->note + n, sizeof p->note - n, "redis %s:%d has %s %lld but a row value is %zu bytes "
                     "(12 + 4 x emb_dim): every row hash leaves the compact encoding (about 2x the memory); raise it "
                     "to %zu (CONFIG SET %s %zu, and in redis.conf)", p->host, p->port, vname, value, row_len, row_len,
                     vname, row_len);
    }
    if (r) freeReplyObject(r);
    if (p->note[0]) fr_logf(&p->log, FR_LOG_WARN, "%s", p->note);
}

/* ---- dense blob and manifest ---------------------------------------------------------------- */

/* The dense blob (malloc'ed, *len bytes): "FRD1", count u32 LE, version u64 LE, float32 LE params. */
static unsigned char *dense_blob(const fr_publish_source *src, uint64_t version, size_t *len)
{
    size_t n = fr_model_dense_count(src->shape);
    *len = FR_REDIS_DENSE_HEADER + 4 * n;
    unsigned char *b = malloc(*len);
    if (!b) return NULL;
    memcpy(b, "FRD1", 4);
    fr_put_u32le(b + 4, (uint32_t)n);
    fr_put_u64le(b + 8, version);
    fr_f32le_encode(b + FR_REDIS_DENSE_HEADER, src->dense, n);
    return b;
}

/* The manifest JSON text (malloc'ed), or NULL with a message. */
static char *manifest_text(const fr_publisher *p, const fr_publish_source *src, uint64_t version,
                           const uint8_t *layouts, const unsigned char *blob, size_t blob_len, json_t *daemon,
                           const fr_policy *policy, char *err, size_t errlen)
{
    const fr_model *m = src->shape;
    const fr_model_config *cfg = fr_model_get_config(m);
    /* the description the checkpoint's meta shares; the manifest adds where things are in Redis */
    json_t *o = fr_model_describe_json(m, src->row_counts);
    json_t *tables = json_object_get(o, "tables"), *dense = json_object_get(o, "dense");
    char *out = NULL;
    int bad = !o || !json_is_array(tables) || !json_is_object(dense);
    char key[FR_REDIS_KEY_MAX], pattern[FR_REDIS_KEY_MAX + 8];
    size_t t;
    json_t *e;
    json_array_foreach(bad ? NULL : tables, t, e)
    {
        int cat = (int)t < cfg->n_cat;
        uint32_t shards = fr_redis_layout_shards(layouts[t]);
        snprintf(pattern, sizeof pattern, "%s:emb:{t%zun%" PRIu32 "s<shard>}", p->prefix, t, shards);
        bad |= json_object_set_new(e, "slot", json_integer(cat ? (int)t : (int)t - cfg->n_cat));
        bad |= json_object_set_new(e, "hash_key", json_string(pattern));
        bad |= json_object_set_new(e, "shards", json_integer(shards));
    }
    if (!bad) {
        /* format 3 for every model: its row hash keys are not those a reader of formats 1 and 2 reads
         * (docs/redis-layout.md, "Compatibility") */
        fr_serve_transform serve = policy ? policy->serve : FR_SERVE_IDENTITY;
        int format = FR_REDIS_FORMAT_VERSION;
        char hash[17];
        snprintf(hash, sizeof hash, "%016" PRIx64, (uint64_t)XXH3_64bits(blob, blob_len));
        fr_redis_key_dense(key, p->prefix, version);
        bad |= json_object_set_new(dense, "key", json_string(key));
        bad |= json_object_set_new(dense, "bytes", json_integer((json_int_t)blob_len));
        bad |= json_object_set_new(dense, "xxh3_64", json_string(hash));
        bad |= json_object_set_new(o, "format", json_string("freshet-redis"));
        bad |= json_object_set_new(o, "format_version", json_integer(format));
        bad |= json_object_set_new(o, "prefix", json_string(p->prefix));
        bad |= json_object_set_new(o, "version", fr_json_u64(version));
        bad |= json_object_set_new(o, "model_version", fr_json_u64(src->version));
        bad |= json_object_set_new(o, "row_shard_fn", json_string(FR_REDIS_SHARD_FN_TOP));
        bad |= json_object_set_new(o, "row_format", json_integer(FR_REDIS_ROW_F32LE));
        bad |= json_object_set_new(o, "serve_transform", json_string(fr_serve_transform_name(serve)));
        if (policy) bad |= json_object_set_new(o, "join_policy", json_string(policy->name));
        bad |= json_object_set(o, "daemon", daemon ? daemon : json_null());
    }
    if (!bad) out = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    if (!out) snprintf(err, errlen, "out of memory building the manifest");
    json_decref(o);
    return out;
}

/* ---- retiring old versions ------------------------------------------------------------------ */

static int cmp_u64_desc(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* UNLINKs the row hashes of the layouts in live[t] that no retained version uses any more
 * (a table moved to more shards, once the last version that read the old count is retired). */
static int unlink_dropped_layouts(fr_publisher *p, uint32_t ntab, const uint32_t *live, char *err, size_t errlen)
{
    uint32_t *now = calloc(ntab ? ntab : 1, sizeof *now);
    uint8_t *newest = malloc(ntab ? ntab : 1);
    int rc = -1, broken = 0;
    if (!now || !newest) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    if (fr_redis_retained_layouts(p->c, p->prefix, ntab, now, newest, &broken, err, errlen) != 0) goto done;
    fr_pipe pipe;
    fr_pipe_init(&pipe, p->c, 16);
    char (*keys)[FR_REDIS_KEY_MAX] = malloc(HASHES_PER_TRIP * sizeof *keys);
    const char **argv = malloc((1 + HASHES_PER_TRIP) * sizeof *argv);
    size_t *lens = malloc((1 + HASHES_PER_TRIP) * sizeof *lens);
    if (!keys || !argv || !lens) {
        free(keys), free(argv), free(lens);
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    for (uint32_t t = 0; t < ntab && !pipe.failed; t++)
        for (int lay = 0; lay < LAYOUTS && !pipe.failed; lay++) {
            if (!(live[t] >> lay & 1) || (now[t] >> lay & 1)) continue;
            uint32_t n = fr_redis_layout_shards(lay);
            for (uint32_t s0 = 0; s0 < n && !pipe.failed; s0 += HASHES_PER_TRIP) {
                int argc = 1;
                argv[0] = "UNLINK", lens[0] = 6;
                for (uint32_t s = s0; s < n && s < s0 + HASHES_PER_TRIP; s++, argc++) {
                    fr_redis_key_rows(keys[argc - 1], p->prefix, t, lay, s);
                    argv[argc] = keys[argc - 1], lens[argc] = strlen(keys[argc - 1]);
                }
                fr_pipe_append(&pipe, argc, argv, lens); /* hiredis copies the keys */
            }
        }
    fr_pipe_drain(&pipe);
    free(keys), free(argv), free(lens);
    if (pipe.failed) {
        snprintf(err, errlen, "%s", pipe.err);
        broken = pipe.broken;
        goto done;
    }
    rc = 0;
done:
    if (broken) fr_publish_disconnect(p);
    else if (rc != 0) p->need_full = 1; /* the next push's SCAN removes what is left */
    free(now);
    free(newest);
    return rc;
}

/* Deletes the manifest and dense blob of every retained version beyond the keep_versions
 * highest ones <= version, and of any version > version (left by a run that was restored from an
 * earlier checkpoint). 0 with *retired, or -1 with a message. */
static int retire_versions(fr_publisher *p, uint64_t version, size_t *retired, char *err, size_t errlen)
{
    char vkey[FR_REDIS_KEY_MAX];
    fr_redis_key_versions(vkey, p->prefix);
    const char *argv[4] = {"ZRANGE", vkey, "0", "-1"};
    size_t lens[4] = {6, strlen(vkey), 1, 2};
    int broken;
    redisReply *r = fr_redis_command(p->c, 4, argv, lens, &broken, err, errlen);
    if (!r) {
        if (broken) fr_publish_disconnect(p);
        return -1;
    }
    size_t n = r->type == REDIS_REPLY_ARRAY ? r->elements : 0;
    uint64_t *vs = malloc((n ? n : 1) * sizeof *vs);
    if (!vs) {
        freeReplyObject(r);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        redisReply *e = r->element[i];
        uint64_t v;
        if (e->type == REDIS_REPLY_STRING && fr_parse_u64(e->str, e->len, &v) == 0) vs[m++] = v;
    }
    freeReplyObject(r);
    qsort(vs, m, sizeof *vs, cmp_u64_desc);
    fr_pipe pipe;
    fr_pipe_init(&pipe, p->c, 64);
    size_t kept = 0, gone = 0;
    for (size_t i = 0; i < m; i++) {
        if (vs[i] <= version && kept < (size_t)p->keep) {
            kept++;
            continue;
        }
        char mk[FR_REDIS_KEY_MAX], dk[FR_REDIS_KEY_MAX], member[24];
        fr_redis_key_manifest(mk, p->prefix, vs[i]);
        fr_redis_key_dense(dk, p->prefix, vs[i]);
        snprintf(member, sizeof member, "%" PRIu64, vs[i]);
        const char *del[3] = {"DEL", mk, dk};
        size_t dl[3] = {3, strlen(mk), strlen(dk)};
        const char *zrem[3] = {"ZREM", vkey, member};
        size_t zl[3] = {4, strlen(vkey), strlen(member)};
        fr_pipe_append(&pipe, 3, del, dl);
        fr_pipe_append(&pipe, 3, zrem, zl);
        gone++;
    }
    free(vs);
    fr_pipe_drain(&pipe);
    if (pipe.failed) {
        snprintf(err, errlen, "%s", pipe.err);
        if (pipe.broken) fr_publish_disconnect(p);
        return -1;
    }
    *retired = gone;
    return 0;
}

/* ---- push ----------------------------------------------------------------------------------- */

/* Makes sure there is a live connection; sets need_full when Redis holds no active version. */
static int ensure_connection(fr_publisher *p, char *err, size_t errlen)
{
    char akey[FR_REDIS_KEY_MAX];
    fr_redis_key_active(akey, p->prefix);
    const char *argv[2] = {"EXISTS", akey};
    size_t lens[2] = {6, strlen(akey)};
    for (int attempt = 0; attempt < 2; attempt++) {
        if (!p->c) {
            p->c = fr_redis_connect(p->host, p->port, err, errlen);
            p->need_full = 1;
            if (!p->c) return -1;
        }
        int broken;
        redisReply *r = fr_redis_command(p->c, 2, argv, lens, &broken, err, errlen);
        if (r) {
            if (r->type == REDIS_REPLY_INTEGER && r->integer == 0) p->need_full = 1;
            freeReplyObject(r);
            return 0;
        }
        if (!broken) return -1;
        fr_publish_disconnect(p); /* a stale connection (Redis restarted): reconnect once */
    }
    return -1;
}

/* What the prefix holds when a push starts (read after the lease, so no other daemon changes it). */
typedef struct {
    int held;          /* P:hold exists: an operator's rollback */
    uint64_t hold;     /* the version it holds */
    int have_seq;
    uint64_t seq;      /* P:seq: the version the last push allocated */
    uint64_t top;      /* the highest version ever made active: max(P:active, highest in P:versions); 0: none */
} prefix_state;

static int reply_u64(const redisReply *r, uint64_t *v)
{
    return r && r->type == REDIS_REPLY_STRING && fr_parse_u64(r->str, r->len, v) == 0;
}

static int read_state(fr_publisher *p, prefix_state *st, char *err, size_t errlen)
{
    char hkey[FR_REDIS_KEY_MAX], skey[FR_REDIS_KEY_MAX], akey[FR_REDIS_KEY_MAX], vkey[FR_REDIS_KEY_MAX];
    fr_redis_key_hold(hkey, p->prefix);
    fr_redis_key_seq(skey, p->prefix);
    fr_redis_key_active(akey, p->prefix);
    fr_redis_key_versions(vkey, p->prefix);
    const char *g1[2] = {"GET", hkey}, *g2[2] = {"GET", skey}, *g3[2] = {"GET", akey};
    const char *z[4] = {"ZREVRANGE", vkey, "0", "0"};
    size_t l1[2] = {3, strlen(hkey)}, l2[2] = {3, strlen(skey)}, l3[2] = {3, strlen(akey)};
    size_t zl[4] = {9, strlen(vkey), 1, 1};
    const char **argvs[4] = {g1, g2, g3, z};
    const size_t *lenss[4] = {l1, l2, l3, zl};
    int argcs[4] = {2, 2, 2, 4};
    redisReply *r[4];
    if (fr_redis_batch(p->c, 4, argvs, lenss, argcs, r, err, errlen) != 0) {
        fr_publish_disconnect(p);
        return -1;
    }
    memset(st, 0, sizeof *st);
    int rc = 0;
    for (int i = 0; i < 4; i++)
        if (r[i]->type == REDIS_REPLY_ERROR && rc == 0) {
            snprintf(err, errlen, "reading %s: %s", i == 0 ? hkey : i == 1 ? skey : i == 2 ? akey : vkey, r[i]->str);
            rc = -1;
        }
    uint64_t active = 0, listed = 0;
    st->held = reply_u64(r[0], &st->hold) || r[0]->type == REDIS_REPLY_STRING;
    st->have_seq = reply_u64(r[1], &st->seq);
    int have_active = reply_u64(r[2], &active);
    if (r[3]->type == REDIS_REPLY_ARRAY && r[3]->elements == 1) reply_u64(r[3]->element[0], &listed);
    st->top = active > listed ? active : listed;
    if (!have_active) p->need_full = 1; /* Redis lost our data, or nothing was published yet */
    for (int i = 0; i < 4; i++) freeReplyObject(r[i]);
    return rc;
}

/* The model version and dense checksum recorded in version v's manifest (this publisher's last push
 * without asking Redis). 0, or -1 when v has no manifest or it records neither (an older writer). */
static int version_content(fr_publisher *p, uint64_t v, uint64_t *model_version, char xxh3[17])
{
    if (p->last.version == v && p->last_xxh3[0]) {
        *model_version = p->last.model_version;
        memcpy(xxh3, p->last_xxh3, 17);
        return 0;
    }
    char mkey[FR_REDIS_KEY_MAX], err[256];
    fr_redis_key_manifest(mkey, p->prefix, v);
    const char *a[2] = {"GET", mkey};
    size_t l[2] = {3, strlen(mkey)};
    int broken;
    redisReply *r = fr_redis_command(p->c, 2, a, l, &broken, err, sizeof err);
    if (!r) {
        if (broken) fr_publish_disconnect(p);
        return -1;
    }
    json_t *o = r->type == REDIS_REPLY_STRING ? json_loadb(r->str, r->len, 0, NULL) : NULL;
    freeReplyObject(r);
    const char *h = json_string_value(json_object_get(json_object_get(o, "dense"), "xxh3_64"));
    int rc = h && strlen(h) == 16 && fr_json_get_u64(o, "model_version", model_version) == 0 ? 0 : -1;
    if (rc == 0) memcpy(xxh3, h, 17);
    json_decref(o);
    return rc;
}

static int stop_at_first_row(const fr_row_view *row, void *ctx)
{
    (void)row, (void)ctx;
    return 1;
}

static int stop_at_first_deletion(uint32_t table, uint64_t key, void *ctx)
{
    (void)table, (void)key, (void)ctx;
    return 1;
}

/* 1 when the source has a changed or deleted row. */
static int has_changes(const fr_publish_source *src)
{
    if (src->foreach_deleted && src->foreach_deleted(src->ctx, stop_at_first_deletion, NULL) != 0) return 1;
    return src->foreach_row(src->ctx, 0, stop_at_first_row, NULL) != 0;
}

/* Makes v active unless an operator's rollback holds the prefix: one script, so a rollback that
 * lands while this push writes its rows is never undone by it. 0, 1 (held: *held_version), -1. */
static const char FLIP_SCRIPT[] = "local h = redis.call('GET', KEYS[1])\n"
                                  "if h then return h end\n"
                                  "redis.call('SET', KEYS[2], ARGV[1])\n"
                                  "redis.call('ZADD', KEYS[3], ARGV[1], ARGV[1])\n"
                                  "return false\n";

static int flip(fr_publisher *p, uint64_t v, uint64_t *held_version, char *err, size_t errlen)
{
    char hkey[FR_REDIS_KEY_MAX], akey[FR_REDIS_KEY_MAX], vkey[FR_REDIS_KEY_MAX], vs[24];
    fr_redis_key_hold(hkey, p->prefix);
    fr_redis_key_active(akey, p->prefix);
    fr_redis_key_versions(vkey, p->prefix);
    snprintf(vs, sizeof vs, "%" PRIu64, v);
    const char *a[7] = {"EVAL", FLIP_SCRIPT, "3", hkey, akey, vkey, vs};
    size_t l[7] = {4, sizeof FLIP_SCRIPT - 1, 1, strlen(hkey), strlen(akey), strlen(vkey), strlen(vs)};
    int broken;
    redisReply *r = fr_redis_command(p->c, 7, a, l, &broken, err, errlen);
    if (!r) {
        if (broken) fr_publish_disconnect(p);
        return -1;
    }
    int rc = 0;
    if (r->type == REDIS_REPLY_STRING) {
        *held_version = 0;
        reply_u64(r, held_version);
        rc = 1;
    }
    freeReplyObject(r);
    return rc;
}

/* A model that diverged (NaN or infinite parameters) is never published: readers would refuse it
 * anyway, and what Redis serves stays the last good version. */
static int first_non_finite_row(const fr_row_view *row, void *ctx)
{
    for (int j = 0; j < row->dim; j++)
        if (!isfinite(row->weights[j])) {
            *(fr_row_view *)ctx = *row;
            return 1;
        }
    return 0;
}

static int check_finite(const fr_publish_source *src, int all, char *err, size_t errlen)
{
    size_t n = fr_model_dense_count(src->shape), bad = 0, first = 0;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(src->dense[i]) && bad++ == 0) first = i;
    if (bad) {
        snprintf(err, errlen, "the dense parameters hold %zu NaN or infinite values (the first at %zu): the model "
                 "diverged; nothing is published, serving keeps the last good version", bad, first);
        return -1;
    }
    fr_row_view row;
    if (src->foreach_row(src->ctx, all, first_non_finite_row, &row) != 0) {
        snprintf(err, errlen, "row %" PRIu64 " of table %" PRIu32 " holds a NaN or infinite weight: the model diverged; "
                 "nothing is published, serving keeps the last good version", row.key, row.table);
        return -1;
    }
    return 0;
}

/* XADD P:changes: one entry per push that changed what Redis serves (docs/redis-layout.md). */
static int announce(fr_publisher *p, uint64_t v, size_t rows, size_t dense_bytes, int full, size_t retired,
                    size_t deleted, uint64_t model_version, const char *hash, char *err, size_t errlen)
{
    char ckey[FR_REDIS_KEY_MAX], vs[24], mvs[24], rows_s[24], bytes_s[24], retired_s[24], deleted_s[24], maxlen[16];
    fr_redis_key_changes(ckey, p->prefix);
    snprintf(vs, sizeof vs, "%" PRIu64, v);
    snprintf(mvs, sizeof mvs, "%" PRIu64, model_version);
    snprintf(rows_s, sizeof rows_s, "%zu", rows);
    snprintf(deleted_s, sizeof deleted_s, "%zu", deleted);
    snprintf(bytes_s, sizeof bytes_s, "%zu", dense_bytes);
    snprintf(retired_s, sizeof retired_s, "%zu", retired);
    snprintf(maxlen, sizeof maxlen, "%d", FR_REDIS_STREAM_MAXLEN);
    const char *a[22] = {"XADD",    ckey,      "MAXLEN",      "~",     maxlen, "*",              "version", vs,
                         "rows",    rows_s,    "dense_bytes", bytes_s, "full", full ? "1" : "0", "retired", retired_s,
                         "deleted", deleted_s, "model_version", mvs,   "dense_xxh3_64", hash};
    size_t l[22];
    for (int i = 0; i < 22; i++) l[i] = strlen(a[i]);
    int broken;
    redisReply *r = fr_redis_command(p->c, 22, a, l, &broken, err, errlen);
    if (!r) {
        if (broken) fr_publish_disconnect(p);
        return -1;
    }
    freeReplyObject(r);
    return 0;
}

static int push(fr_publisher *p, const fr_publish_source *src, const fr_publish_info *info, uint64_t *version,
                char *err, size_t errlen)
{
    if (!p || !src || !src->shape) {
        snprintf(err, errlen, "publish: no publisher or no model");
        return -1;
    }
    double t0 = now_seconds();
    uint64_t v = src->version; /* the version this push publishes, once allocated */
    char why[384];
    const char *stage = "connecting";
    json_t *daemon = NULL;
    unsigned char *blob = NULL;
    char *manifest = NULL, hash[17] = "";
    int rc = -1;
    size_t rows = 0, blob_len = 0, retired = 0, deleted = 0;
    int full = 0;
    prefix_state st;
    uint32_t ntab = fr_model_table_count(src->shape), *live = NULL;
    uint8_t *newest = NULL, *current = NULL, *from = NULL;
    size_t moved = 0, unsourced = 0;

    if (info && info->manifest_json) {
        json_error_t jerr;
        daemon = json_loads(info->manifest_json, 0, &jerr);
        if (!daemon) {
            snprintf(err, errlen, "publish: the daemon's manifest_json is not valid JSON (line %d: %s); nothing pushed",
                     jerr.line, jerr.text);
            return -1;
        }
    }
    live = calloc(ntab ? ntab : 1, sizeof *live);
    newest = malloc(ntab ? ntab : 1), current = malloc(ntab ? ntab : 1), from = malloc(ntab ? ntab : 1);
    if (!live || !newest || !current || !from || !(blob = dense_blob(src, 0, &blob_len))) {
        snprintf(why, sizeof why, "out of memory");
        goto fail;
    }
    if (ensure_connection(p, why, sizeof why) != 0) goto fail;
    stage = "taking the writer lease";
    if (lease(p, 0, why, sizeof why) != 0) goto fail;
    stage = "reading the prefix's versions";
    if (read_state(p, &st, why, sizeof why) != 0) goto fail;
    p->held = st.held ? (st.hold ? st.hold : 1) : 0;
    stage = "reading the shard counts of the retained versions";
    {
        int broken;
        if (fr_redis_retained_layouts(p->c, p->prefix, ntab, live, newest, &broken, why, sizeof why) != 0) {
            if (broken) fr_publish_disconnect(p);
            goto fail;
        }
    }
    if (!p->checked) check_hash_settings(p, FR_REDIS_ROW_HEADER + 4 * (size_t)fr_model_get_config(src->shape)->emb_dim);
    /* Each table keeps the shard count of the newest version until its rows outgrow it (more than
     * FR_REDIS_ROWS_PER_HASH per hash on average); then it moves to the count its rows need, in a
     * push that writes every row to the new hashes before the flip. Counts never shrink, so a table
     * near a threshold does not move back and forth. */
    for (uint32_t t = 0; t < ntab; t++) {
        int need = fr_redis_layout_for_rows(src->row_counts ? src->row_counts[t] : 0);
        int have = newest[t];
        current[t] = (uint8_t)(have == FR_REDIS_LAYOUT_NONE || have == FR_REDIS_LAYOUT_LEGACY || have < need ? need : have);
        from[t] = FR_REDIS_LAYOUT_NONE;
        if (!(live[t] >> current[t] & 1)) {
            moved++;
            /* the new hashes are filled from the newest version's (kept current, so complete): a move
             * needs no snapshot of every row from the learner */
            if (have != FR_REDIS_LAYOUT_NONE && (live[t] >> have & 1)) from[t] = (uint8_t)have;
            else unsourced++;
        }
    }
    full = p->need_full;
    stage = "checking the parameters";
    if (check_finite(src, full || moved, why, sizeof why) != 0) goto fail;

    /* Nothing new: the newest version ever made active holds this very state (model version and
     * dense checksum) and no push began after it (P:seq). Publishing it again would only burn a
     * version number -- and after a rollback, undo the operator's decision -- so no version is
     * written, flipped or announced. A full push still rewrites every row and removes the rows the
     * model does not hold (idempotent when Redis is intact; a repair when it is not), and announces
     * the same version when it removed rows, so readers drop what they hold. */
    int unchanged = 0;
    if (st.have_seq && st.seq == st.top && st.top > 0) {
        uint64_t mv;
        char known[17];
        fr_put_u64le(blob + 8, st.top);
        snprintf(hash, sizeof hash, "%016" PRIx64, (uint64_t)XXH3_64bits(blob, blob_len));
        unchanged = version_content(p, st.top, &mv, known) == 0 && mv == src->version && strcmp(known, hash) == 0 &&
                    (full || !has_changes(src));
        if (!p->c) {
            snprintf(why, sizeof why, "the connection failed reading version %" PRIu64 "'s manifest", st.top);
            goto fail;
        }
    }
    if (unchanged) {
        v = st.top;
        if (full) {
            /* the layouts stay those of the published versions: nothing moves without a new version */
            for (uint32_t t = 0; t < ntab; t++) {
                if (newest[t] != FR_REDIS_LAYOUT_NONE) current[t] = newest[t];
                live[t] |= (uint32_t)1 << current[t];
            }
            stage = "rewriting the rows of the published state";
            if (fr_publish_rows(p, src, live, current, NULL, 1, &rows, &deleted, why, sizeof why) != 0) goto fail;
            stage = "announcing on the change stream";
            if (deleted && announce(p, v, rows, blob_len, 1, 0, deleted, src->version, hash, why, sizeof why) != 0)
                goto fail;
        }
        p->need_full = 0;
        p->last = (fr_publish_stats){.version = v,
                                     .model_version = src->version,
                                     .unchanged = 1,
                                     .rows = rows,
                                     .dense_bytes = blob_len,
                                     .full = full,
                                     .deleted = deleted,
                                     .seconds = now_seconds() - t0};
        memcpy(p->last_xxh3, hash, sizeof hash);
        if (version) *version = v;
        rc = 0;
        goto done;
    }
    if (st.held) {
        snprintf(err, errlen, "publishing to redis %s:%d prefix \"%s\" is held: an operator rolled it back to version %" PRIu64
                 " (freshet rollback); the trainer's newer state is kept and published once `freshet rollback --release` "
                 "lifts the hold; nothing written", p->host, p->port, p->prefix, st.hold);
        rc = FR_PUBLISH_HELD;
        goto done;
    }
    full |= unsourced > 0;
    if (full && !src->complete) {
        /* Redis may hold none of our rows: flipping with only the changed ones would serve zeros */
        snprintf(err, errlen, "publish of version %" PRIu64 ": redis %s:%d needs every row (%s) but the snapshot "
                 "holds only the changed ones; nothing written", v, p->host, p->port,
                 unsourced ? "a table moves to new shard hashes" : "first push, reconnect or lost data");
        rc = FR_PUBLISH_NEED_FULL;
        goto done;
    }

    /* A new number above every version ever made active: a follower holding one of them sees a new
     * number for new content, even after a restore from an older checkpoint or a second run from one.
     * It is the model version whenever that is new (the usual case). A number that was allocated and
     * never made active (a push that failed before its flip) is free again; its keys are removed. */
    v = src->version > st.top ? src->version : st.top + 1;
    stage = "allocating the version";
    {
        char skey[FR_REDIS_KEY_MAX], mk[FR_REDIS_KEY_MAX], dk[FR_REDIS_KEY_MAX], vs[24];
        fr_redis_key_seq(skey, p->prefix);
        snprintf(vs, sizeof vs, "%" PRIu64, v);
        fr_pipe pipe;
        fr_pipe_init(&pipe, p->c, 8);
        if (st.have_seq && st.seq > st.top && st.seq != v) {
            fr_redis_key_manifest(mk, p->prefix, st.seq);
            fr_redis_key_dense(dk, p->prefix, st.seq);
            const char *a[3] = {"DEL", mk, dk};
            size_t l[3] = {3, strlen(mk), strlen(dk)};
            fr_pipe_append(&pipe, 3, a, l);
        }
        const char *a[3] = {"SET", skey, vs};
        size_t l[3] = {3, strlen(skey), strlen(vs)};
        fr_pipe_append(&pipe, 3, a, l);
        if (fr_pipe_drain(&pipe) != 0) {
            snprintf(why, sizeof why, "%s", pipe.err);
            if (pipe.broken) fr_publish_disconnect(p);
            goto fail;
        }
    }

    stage = moved ? "writing rows (moving tables to more shard hashes)" : "writing rows";
    for (uint32_t t = 0; t < ntab; t++) live[t] |= (uint32_t)1 << current[t];
    if (fr_publish_rows(p, src, live, current, full ? NULL : from, full, &rows, &deleted, why, sizeof why) != 0) goto fail;

    stage = "writing the dense blob and manifest";
    fr_put_u64le(blob + 8, v);
    snprintf(hash, sizeof hash, "%016" PRIx64, (uint64_t)XXH3_64bits(blob, blob_len));
    manifest = manifest_text(p, src, v, current, blob, blob_len, daemon, info ? info->policy : NULL, why, sizeof why);
    if (!manifest) goto fail;
    char dkey[FR_REDIS_KEY_MAX], mkey[FR_REDIS_KEY_MAX];
    fr_redis_key_dense(dkey, p->prefix, v);
    fr_redis_key_manifest(mkey, p->prefix, v);
    {
        fr_pipe pipe;
        fr_pipe_init(&pipe, p->c, 8);
        const char *a1[3] = {"SET", dkey, (const char *)blob};
        size_t l1[3] = {3, strlen(dkey), blob_len};
        const char *a2[3] = {"SET", mkey, manifest};
        size_t l2[3] = {3, strlen(mkey), strlen(manifest)};
        fr_pipe_append(&pipe, 3, a1, l1);
        fr_pipe_append(&pipe, 3, a2, l2);
        fr_pipe_drain(&pipe);
        if (pipe.failed) {
            snprintf(why, sizeof why, "%s", pipe.err);
            if (pipe.broken) fr_publish_disconnect(p);
            goto fail;
        }
    }

    stage = "flipping the active version";
    if (p->fail_before_flip) {
        snprintf(why, sizeof why, "test fault: stopped after the rows and the dense blob, before the flip");
        goto fail;
    }
    {
        uint64_t hv = 0;
        int f = flip(p, v, &hv, why, sizeof why);
        if (f < 0) goto fail;
        if (f > 0) {
            p->held = hv ? hv : 1;
            /* a rollback landed while the rows were written: they stay (rows are not versioned), the flip does not */
            snprintf(err, errlen, "publish of version %" PRIu64 " to redis %s:%d prefix \"%s\" not made active: an "
                     "operator rolled the prefix back to version %" PRIu64 " meanwhile and holds it (freshet rollback "
                     "--release lifts the hold)", v, p->host, p->port, p->prefix, hv);
            rc = FR_PUBLISH_HELD;
            goto done;
        }
    }

    stage = "retiring old versions";
    if (retire_versions(p, v, &retired, why, sizeof why) != 0) goto fail;
    stage = "removing the row hashes of shard counts no retained version uses";
    if (unlink_dropped_layouts(p, ntab, live, why, sizeof why) != 0) goto fail;

    stage = "announcing on the change stream";
    if (announce(p, v, rows, blob_len, full, retired, deleted, src->version, hash, why, sizeof why) != 0) goto fail;

    p->need_full = 0;
    p->last = (fr_publish_stats){.version = v,
                                 .model_version = src->version,
                                 .rows = rows,
                                 .dense_bytes = blob_len,
                                 .full = full,
                                 .retired_versions = retired,
                                 .deleted = deleted,
                                 .resharded = moved,
                                 .seconds = now_seconds() - t0};
    memcpy(p->last_xxh3, hash, sizeof hash);
    if (version) *version = v;
    rc = 0;
    goto done;
fail:
    snprintf(err, errlen,
             "publish of version %" PRIu64 " to redis %s:%d failed while %s: %s; the rows stay marked and the next "
             "push retries%s",
             v, p->host, p->port, stage, why, p->c ? "" : " (after reconnecting, with every row)");
done:
    json_decref(daemon);
    free(blob);
    free(manifest);
    free(live);
    free(newest);
    free(current);
    free(from);
    return rc;
}

static int model_foreach(void *ctx, int all, fr_row_fn fn, void *fn_ctx)
{
    return fr_model_foreach_row(ctx, all ? 0 : FR_DIRTY_PUBLISH, fn, fn_ctx);
}

static int model_foreach_deleted(void *ctx, fr_deleted_fn fn, void *fn_ctx)
{
    return fr_model_foreach_deleted(ctx, FR_DIRTY_PUBLISH, fn, fn_ctx);
}

static int model_has_row(void *ctx, uint32_t table, uint64_t key)
{
    fr_row_view v;
    return fr_model_get_row(ctx, table, key, &v) == 0;
}

int fr_publish_push(fr_publisher *p, fr_model *m, const fr_publish_info *info, uint64_t *version, char *err,
                    size_t errlen)
{
    if (!p || !m) {
        snprintf(err, errlen, "publish: no publisher or no model");
        return -1;
    }
    uint32_t ntab = fr_model_table_count(m);
    size_t *counts = calloc(ntab ? ntab : 1, sizeof *counts);
    if (!counts) {
        snprintf(err, errlen, "publish: out of memory");
        return -1;
    }
    for (uint32_t t = 0; t < ntab; t++) counts[t] = fr_model_row_count(m, t);
    fr_publish_source src = {.shape = m,
                             .dense = fr_model_dense_params(m),
                             .version = fr_model_version(m),
                             .row_counts = counts,
                             .complete = 1,
                             .foreach_row = model_foreach,
                             .foreach_deleted = model_foreach_deleted,
                             .has_row = model_has_row,
                             .ctx = m};
    int rc = fr_publish_push_source(p, &src, info, version, err, errlen);
    free(counts);
    if (rc == 0) fr_model_clear_dirty(m, FR_DIRTY_PUBLISH);
    return rc;
}

int fr_publish_push_source(fr_publisher *p, const fr_publish_source *src, const fr_publish_info *info,
                           uint64_t *version, char *err, size_t errlen)
{
    fr_sigpipe_guard g;
    fr_sigpipe_block(&g);
    int rc = push(p, src, info, version, err, errlen);
    fr_sigpipe_restore(&g);
    return rc;
}

/* ---- test hooks (fr_publish_test.h) ---- */

void fr_publish_test_fail_before_flip(fr_publisher *p, int on) { p->fail_before_flip = on; }
void fr_publish_test_lease_ms(fr_publisher *p, int ms) { p->lease_ms = ms; }
