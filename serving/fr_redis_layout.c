/* fr_redis_layout: see fr_redis_layout.h and docs/redis-layout.md. */
#include "fr_redis_layout.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "fr_model_json.h"

int fr_redis_check_prefix(const char *prefix, char *err, size_t errlen)
{
    size_t n = prefix ? strlen(prefix) : 0;
    if (n == 0 || n > FR_REDIS_PREFIX_MAX) {
        snprintf(err, errlen, "redis prefix must have 1 to %d characters", FR_REDIS_PREFIX_MAX);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        char ch = prefix[i];
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' ||
                 ch == '-' || ch == '.' || ch == ':';
        if (!ok) {
            snprintf(err, errlen, "redis prefix \"%s\": character '%c' not allowed (use letters, digits, _ - . :)",
                     prefix, ch);
            return -1;
        }
    }
    return 0;
}

void fr_redis_key_active(char *buf, const char *prefix) { snprintf(buf, FR_REDIS_KEY_MAX, "%s:active", prefix); }
void fr_redis_key_versions(char *buf, const char *prefix)
{
    snprintf(buf, FR_REDIS_KEY_MAX, "%s:versions", prefix);
}
void fr_redis_key_changes(char *buf, const char *prefix) { snprintf(buf, FR_REDIS_KEY_MAX, "%s:changes", prefix); }
void fr_redis_key_writer(char *buf, const char *prefix) { snprintf(buf, FR_REDIS_KEY_MAX, "%s:writer", prefix); }
void fr_redis_key_seq(char *buf, const char *prefix) { snprintf(buf, FR_REDIS_KEY_MAX, "%s:seq", prefix); }
void fr_redis_key_hold(char *buf, const char *prefix) { snprintf(buf, FR_REDIS_KEY_MAX, "%s:hold", prefix); }
void fr_redis_key_manifest(char *buf, const char *prefix, uint64_t version)
{
    snprintf(buf, FR_REDIS_KEY_MAX, "%s:{v%" PRIu64 "}:manifest", prefix, version);
}
void fr_redis_key_dense(char *buf, const char *prefix, uint64_t version)
{
    snprintf(buf, FR_REDIS_KEY_MAX, "%s:{v%" PRIu64 "}:dense", prefix, version);
}
void fr_redis_key_rows(char *buf, const char *prefix, uint32_t table, int layout, uint32_t shard)
{
    if (layout == FR_REDIS_LAYOUT_LEGACY)
        snprintf(buf, FR_REDIS_KEY_MAX, "%s:emb:{t%" PRIu32 "s%" PRIu32 "}", prefix, table, shard);
    else
        snprintf(buf, FR_REDIS_KEY_MAX, "%s:emb:{t%" PRIu32 "n%" PRIu32 "s%" PRIu32 "}", prefix, table,
                 fr_redis_layout_shards(layout), shard);
}

/* Reads up to 10 decimal digits at *p (< end): 0 with the number, -1 when there is none. */
static int read_decimal(const char **p, const char *end, uint64_t *out)
{
    uint64_t v = 0;
    int nd = 0;
    for (; *p < end && **p >= '0' && **p <= '9' && nd < 10; (*p)++, nd++) v = v * 10 + (uint64_t)(**p - '0');
    *out = v;
    return nd ? 0 : -1;
}

int fr_redis_parse_rows_key(const char *prefix, const char *key, size_t len, uint32_t *table, int *layout,
                            uint32_t *shard)
{
    size_t pl = strlen(prefix);
    if (len <= pl + 7 || memcmp(key, prefix, pl) != 0 || memcmp(key + pl, ":emb:{t", 7) != 0) return -1;
    const char *p = key + pl + 7, *end = key + len;
    uint64_t t, n = 0, s;
    int lay = FR_REDIS_LAYOUT_LEGACY;
    if (read_decimal(&p, end, &t) != 0 || p >= end) return -1;
    if (*p == 'n') {
        p++;
        if (read_decimal(&p, end, &n) != 0 || n == 0 || (n & (n - 1)) != 0 ||
            n > ((uint64_t)1 << FR_REDIS_SHARD_BITS_MAX))
            return -1;
        for (lay = 0; ((uint64_t)1 << lay) != n; lay++) {
        }
    }
    if (p >= end || *p++ != 's' || read_decimal(&p, end, &s) != 0) return -1;
    if (p + 1 != end || *p != '}' || t > UINT32_MAX || s >= fr_redis_layout_shards(lay)) return -1;
    *table = (uint32_t)t;
    *layout = lay;
    *shard = (uint32_t)s;
    return 0;
}

int fr_redis_layout_for_rows(size_t rows)
{
    int b = 0;
    while (b < FR_REDIS_SHARD_BITS_MAX && rows > ((size_t)FR_REDIS_ROWS_PER_HASH << b)) b++;
    return b;
}

int fr_redis_manifest_layouts(const json_t *o, uint32_t ntab, uint8_t *layouts, char *err, size_t errlen)
{
    /* ntab may come from a manifest's own model_config: stored data, bounded before it sizes a write */
    if (ntab > FR_REDIS_MAX_TABLES) {
        snprintf(err, errlen, "manifest describes %" PRIu32 " tables, more than any model has (%d)", ntab,
                 FR_REDIS_MAX_TABLES);
        return -1;
    }
    const json_t *fv = json_object_get(o, "format_version"), *fn = json_object_get(o, "row_shard_fn");
    json_int_t format = json_is_integer(fv) ? json_integer_value(fv) : 0;
    if (format < FR_REDIS_FORMAT_VERSION_PLAIN || format > FR_REDIS_FORMAT_VERSION) {
        snprintf(err, errlen, "manifest format_version is not %d to %d", FR_REDIS_FORMAT_VERSION_PLAIN,
                 FR_REDIS_FORMAT_VERSION);
        return -1;
    }
    if (format < 3) {
        const json_t *shards = json_object_get(o, "row_shards");
        if (!json_is_integer(shards) || json_integer_value(shards) != FR_REDIS_ROW_SHARDS || !json_is_string(fn) ||
            strcmp(json_string_value(fn), FR_REDIS_SHARD_FN) != 0) {
            snprintf(err, errlen, "manifest row_shards/row_shard_fn differ from format %d's %d/%s", (int)format,
                     FR_REDIS_ROW_SHARDS, FR_REDIS_SHARD_FN);
            return -1;
        }
        memset(layouts, FR_REDIS_LAYOUT_LEGACY, ntab);
        return 0;
    }
    const json_t *tables = json_object_get(o, "tables");
    if (!json_is_string(fn) || strcmp(json_string_value(fn), FR_REDIS_SHARD_FN_TOP) != 0) {
        snprintf(err, errlen, "manifest row_shard_fn is not %s", FR_REDIS_SHARD_FN_TOP);
        return -1;
    }
    if (!json_is_array(tables) || json_array_size(tables) < ntab) {
        snprintf(err, errlen, "manifest tables[] lists %zu tables, the model has %" PRIu32, json_array_size(tables),
                 ntab);
        return -1;
    }
    for (uint32_t t = 0; t < ntab; t++) {
        const json_t *n = json_object_get(json_array_get(tables, t), "shards");
        json_int_t v = json_is_integer(n) ? json_integer_value(n) : 0;
        if (v < 1 || v > ((json_int_t)1 << FR_REDIS_SHARD_BITS_MAX) || (v & (v - 1)) != 0) {
            snprintf(err, errlen, "manifest tables[%" PRIu32 "].shards is not a power of two from 1 to %ld", t,
                     1L << FR_REDIS_SHARD_BITS_MAX);
            return -1;
        }
        int b = 0;
        while (((json_int_t)1 << b) != v) b++;
        layouts[t] = (uint8_t)b;
    }
    return 0;
}

int fr_redis_retained_layouts(redisContext *c, const char *prefix, uint32_t ntab, uint32_t *live, uint8_t *newest,
                              int *broken, char *err, size_t errlen)
{
    *broken = 0;
    memset(live, 0, ntab * sizeof *live);
    memset(newest, FR_REDIS_LAYOUT_NONE, ntab);
    char vkey[FR_REDIS_KEY_MAX];
    fr_redis_key_versions(vkey, prefix);
    const char *za[4] = {"ZRANGE", vkey, "0", "-1"};
    size_t zl[4] = {6, strlen(vkey), 1, 2};
    redisReply *z = fr_redis_command(c, 4, za, zl, broken, err, errlen);
    if (!z) return -1;
    size_t n = z->type == REDIS_REPLY_ARRAY ? z->elements : 0;
    int rc = 0;
    if (n) {
        char (*keys)[FR_REDIS_KEY_MAX] = malloc(n * sizeof *keys);
        const char **args = malloc(2 * n * sizeof *args);
        const char ***argvs = malloc(n * sizeof *argvs);
        size_t *lens = malloc(2 * n * sizeof *lens);
        const size_t **lenss = malloc(n * sizeof *lenss);
        int *argcs = malloc(n * sizeof *argcs);
        uint64_t *vs = malloc(n * sizeof *vs);
        redisReply **rep = calloc(n, sizeof *rep);
        uint8_t *lay = malloc(ntab ? ntab : 1);
        size_t m = 0;
        if (!keys || !args || !argvs || !lens || !lenss || !argcs || !vs || !rep || !lay) {
            snprintf(err, errlen, "out of memory reading the retained versions");
            rc = -1;
        }
        for (size_t i = 0; rc == 0 && i < n; i++) {
            const redisReply *e = z->element[i];
            if (e->type != REDIS_REPLY_STRING || fr_parse_u64(e->str, e->len, &vs[m]) != 0) continue;
            fr_redis_key_manifest(keys[m], prefix, vs[m]);
            args[2 * m] = "GET", lens[2 * m] = 3;
            args[2 * m + 1] = keys[m], lens[2 * m + 1] = strlen(keys[m]);
            argvs[m] = args + 2 * m, lenss[m] = lens + 2 * m, argcs[m] = 2;
            m++;
        }
        if (rc == 0 && m && fr_redis_batch(c, (int)m, argvs, lenss, argcs, rep, err, errlen) != 0) {
            *broken = 1;
            rc = -1;
        }
        uint64_t top = 0;
        int have_top = 0;
        for (size_t i = 0; rc == 0 && i < m; i++) {
            json_t *o = rep[i]->type == REDIS_REPLY_STRING ? json_loadb(rep[i]->str, rep[i]->len, 0, NULL) : NULL;
            char lerr[200];
            if (o && fr_redis_manifest_layouts(o, ntab, lay, lerr, sizeof lerr) == 0) {
                for (uint32_t t = 0; t < ntab; t++) live[t] |= (uint32_t)1 << lay[t];
                if (!have_top || vs[i] > top) {
                    memcpy(newest, lay, ntab);
                    top = vs[i];
                    have_top = 1;
                }
            } else if (!have_top || vs[i] > top) {
                memset(newest, FR_REDIS_LAYOUT_NONE, ntab); /* the newest version is unreadable */
                top = vs[i];
                have_top = 1;
            }
            json_decref(o);
        }
        for (size_t i = 0; rep && i < m; i++) freeReplyObject(rep[i]);
        free(keys), free(args), free(argvs), free(lens), free(lenss), free(argcs), free(vs), free(rep), free(lay);
    }
    freeReplyObject(z);
    return rc;
}

void fr_redis_row_field(unsigned char out[8], uint64_t key) { fr_put_u64le(out, key); }

void fr_redis_row_encode(unsigned char *out, int dim, uint64_t version, const float *weights)
{
    out[0] = FR_REDIS_ROW_MAGIC;
    out[1] = FR_REDIS_ROW_F32LE;
    fr_put_u16le(out + 2, (uint16_t)dim);
    fr_put_u64le(out + 4, version);
    fr_f32le_encode(out + FR_REDIS_ROW_HEADER, weights, (size_t)dim);
}

int fr_redis_row_decode(const void *val, size_t len, int dim, uint64_t *version, float *weights, char *err,
                        size_t errlen)
{
    const unsigned char *v = val;
    if (len < FR_REDIS_ROW_HEADER || v[0] != FR_REDIS_ROW_MAGIC) {
        snprintf(err, errlen, "row value of %zu bytes without the row magic byte 0x45", len);
        return -1;
    }
    if (v[1] != FR_REDIS_ROW_F32LE) {
        snprintf(err, errlen, "row value format %u unknown to this reader (knows %d)", v[1], FR_REDIS_ROW_F32LE);
        return -1;
    }
    int d = fr_get_u16le(v + 2);
    if (d != dim || len != FR_REDIS_ROW_HEADER + 4 * (size_t)dim) {
        snprintf(err, errlen, "row of dim %d and %zu bytes, the manifest says dim %d", d, len, dim);
        return -1;
    }
    *version = fr_get_u64le(v + 4);
    fr_f32le_decode(weights, v + FR_REDIS_ROW_HEADER, (size_t)dim);
    return 0;
}

redisContext *fr_redis_connect(const char *host, int port, char *err, size_t errlen)
{
    struct timeval connect_tv = {2, 0}, cmd_tv = {10, 0};
    redisContext *c = redisConnectWithTimeout(host, port, connect_tv);
    if (!c) {
        snprintf(err, errlen, "redis %s:%d: out of memory creating the connection", host, port);
        return NULL;
    }
    if (c->err) {
        snprintf(err, errlen, "redis %s:%d unreachable: %s", host, port, c->errstr);
        redisFree(c);
        return NULL;
    }
    if (redisSetTimeout(c, cmd_tv) != REDIS_OK) {
        snprintf(err, errlen, "redis %s:%d: cannot set the command timeout: %s", host, port, c->errstr);
        redisFree(c);
        return NULL;
    }
    /* Secrets from the environment, not the config file: systemd's EnvironmentFile, a container's
     * secret, and every user of this function (daemon, tools, serving library) alike. */
    const char *password = getenv("FRESHET_REDIS_PASSWORD"), *user = getenv("FRESHET_REDIS_USERNAME");
    if (password && password[0]) {
        redisReply *r = user && user[0] ? redisCommand(c, "AUTH %s %s", user, password)
                                        : redisCommand(c, "AUTH %s", password);
        if (!r || r->type == REDIS_REPLY_ERROR) {
            snprintf(err, errlen, "redis %s:%d refused FRESHET_REDIS_%s: %s", host, port,
                     user && user[0] ? "USERNAME / _PASSWORD" : "PASSWORD", r ? r->str : c->errstr);
            if (r) freeReplyObject(r);
            redisFree(c);
            return NULL;
        }
        freeReplyObject(r);
    }
    return c;
}

void fr_pipe_init(fr_pipe *p, redisContext *c, int window)
{
    memset(p, 0, sizeof *p);
    p->c = c;
    p->window = window > 0 ? window : 1;
}

static void pipe_fail(fr_pipe *p, const char *what, const char *detail)
{
    if (!p->failed) snprintf(p->err, sizeof p->err, "%s: %s", what, detail);
    p->failed = 1;
}

int fr_pipe_drain(fr_pipe *p)
{
    while (p->pending > 0 && !p->broken) {
        void *rv = NULL;
        if (redisGetReply(p->c, &rv) != REDIS_OK) {
            pipe_fail(p, "redis connection failed", p->c->errstr[0] ? p->c->errstr : "unknown I/O error");
            p->broken = 1;
            break;
        }
        redisReply *r = rv;
        p->pending--;
        p->replies++;
        if (r && r->type == REDIS_REPLY_ERROR) pipe_fail(p, "redis refused a command", r->str);
        if (r && r->type == REDIS_REPLY_INTEGER) p->integers += r->integer;
        freeReplyObject(r);
    }
    if (p->broken) p->pending = 0;
    return p->failed ? -1 : 0;
}

int fr_pipe_append(fr_pipe *p, int argc, const char **argv, const size_t *lens)
{
    if (p->failed) return -1;
    if (redisAppendCommandArgv(p->c, argc, argv, lens) != REDIS_OK) {
        pipe_fail(p, "redis: cannot queue a command", p->c->errstr[0] ? p->c->errstr : "out of memory");
        return -1;
    }
    p->pending++;
    if (p->pending >= p->window) return fr_pipe_drain(p);
    return 0;
}

int fr_redis_batch(redisContext *c, int n, const char **argvs[], const size_t *lenss[], const int *argcs,
                   redisReply **out, char *err, size_t errlen)
{
    for (int i = 0; i < n; i++) out[i] = NULL;
    for (int i = 0; i < n; i++) {
        if (redisAppendCommandArgv(c, argcs[i], argvs[i], lenss[i]) != REDIS_OK) {
            snprintf(err, errlen, "cannot queue a redis command: %s", c->errstr[0] ? c->errstr : "out of memory");
            return -1;
        }
    }
    for (int i = 0; i < n; i++) {
        void *rv = NULL;
        if (redisGetReply(c, &rv) != REDIS_OK) {
            snprintf(err, errlen, "redis connection failed: %s", c->errstr[0] ? c->errstr : "unknown I/O error");
            for (int j = 0; j < i; j++) {
                freeReplyObject(out[j]);
                out[j] = NULL;
            }
            return -1;
        }
        out[i] = rv;
    }
    return 0;
}

redisReply *fr_redis_command(redisContext *c, int argc, const char **argv, const size_t *lens, int *broken,
                             char *err, size_t errlen)
{
    *broken = 0;
    redisReply *r = redisCommandArgv(c, argc, argv, lens);
    if (!r) {
        snprintf(err, errlen, "redis connection failed: %s", c->errstr[0] ? c->errstr : "unknown I/O error");
        *broken = 1;
        return NULL;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        snprintf(err, errlen, "redis refused %s: %s", argv[0], r->str);
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

void fr_sigpipe_block(fr_sigpipe_guard *g)
{
    sigset_t set, pending;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    sigemptyset(&pending);
    sigpending(&pending);
    g->was_pending = sigismember(&pending, SIGPIPE) == 1;
    pthread_sigmask(SIG_BLOCK, &set, &g->old);
}

void fr_sigpipe_restore(fr_sigpipe_guard *g)
{
    sigset_t set, pending;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    sigemptyset(&pending);
    sigpending(&pending);
    if (!g->was_pending && sigismember(&pending, SIGPIPE) == 1) {
        struct timespec zero = {0, 0};
        while (sigtimedwait(&set, NULL, &zero) < 0 && errno == EINTR) {
        }
    }
    pthread_sigmask(SIG_SETMASK, &g->old, NULL);
}
