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
void fr_redis_key_rows(char *buf, const char *prefix, uint32_t table, uint32_t shard)
{
    snprintf(buf, FR_REDIS_KEY_MAX, "%s:emb:{t%" PRIu32 "s%" PRIu32 "}", prefix, table, shard);
}

int fr_redis_parse_rows_key(const char *prefix, const char *key, size_t len, uint32_t *table, uint32_t *shard)
{
    size_t pl = strlen(prefix);
    if (len <= pl + 7 || memcmp(key, prefix, pl) != 0 || memcmp(key + pl, ":emb:{t", 7) != 0) return -1;
    const char *p = key + pl + 7, *end = key + len;
    uint64_t t = 0, s = 0;
    int nd = 0;
    for (; p < end && *p >= '0' && *p <= '9' && nd < 10; p++, nd++) t = t * 10 + (uint64_t)(*p - '0');
    if (!nd || p >= end || *p++ != 's') return -1;
    for (nd = 0; p < end && *p >= '0' && *p <= '9' && nd < 10; p++, nd++) s = s * 10 + (uint64_t)(*p - '0');
    if (!nd || p + 1 != end || *p != '}' || t > UINT32_MAX || s >= FR_REDIS_ROW_SHARDS) return -1;
    *table = (uint32_t)t;
    *shard = (uint32_t)s;
    return 0;
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
