/* fr_publish: rollback, the operator's side of publishing (fr_publish.h, docs/redis-layout.md). Its own
 * file because it shares no state with a push: it opens a connection of its own for one command. */
#include "fr_publish.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "fr_redis_layout.h"
#include "fr_model_json.h"

/* ---- rollback ------------------------------------------------------------------------------- */

static redisReply *cmd(redisContext *c, int argc, const char **argv, char *err, size_t errlen)
{
    size_t lens[24];
    for (int i = 0; i < argc && i < 24; i++) lens[i] = strlen(argv[i]);
    int broken;
    return fr_redis_command(c, argc, argv, lens, &broken, err, errlen);
}

static int rollback(redisContext *c, const char *prefix, uint64_t to, uint64_t *from, uint64_t *now, char *err,
                    size_t errlen)
{
    char akey[FR_REDIS_KEY_MAX], vkey[FR_REDIS_KEY_MAX], ckey[FR_REDIS_KEY_MAX], mkey[FR_REDIS_KEY_MAX],
        dkey[FR_REDIS_KEY_MAX], hkey[FR_REDIS_KEY_MAX];
    fr_redis_key_active(akey, prefix);
    fr_redis_key_hold(hkey, prefix);
    fr_redis_key_versions(vkey, prefix);
    fr_redis_key_changes(ckey, prefix);
    for (int attempt = 0; attempt < 5; attempt++) {
        /* WATCH: a push (flip or retirement) between our checks and the flip aborts the EXEC */
        redisReply *r = cmd(c, 3, (const char *[]){"WATCH", akey, vkey}, err, errlen);
        if (!r) return -1;
        freeReplyObject(r);
        r = cmd(c, 2, (const char *[]){"GET", akey}, err, errlen);
        if (!r) return -1;
        uint64_t active = 0;
        int have = r->type == REDIS_REPLY_STRING && fr_parse_u64(r->str, r->len, &active) == 0;
        freeReplyObject(r);
        if (!have) {
            snprintf(err, errlen, "rollback: nothing is published under prefix \"%s\" (no %s)", prefix, akey);
            return -1;
        }
        r = cmd(c, 4, (const char *[]){"ZRANGE", vkey, "0", "-1"}, err, errlen);
        if (!r) return -1;
        uint64_t target = 0;
        int found = 0;
        char list[256] = "";
        for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
            uint64_t x;
            if (r->element[i]->type != REDIS_REPLY_STRING || fr_parse_u64(r->element[i]->str, r->element[i]->len, &x))
                continue;
            size_t l = strlen(list);
            snprintf(list + l, sizeof list - l, "%s%" PRIu64, l ? " " : "", x);
            if (to ? x == to : (x < active && (!found || x > target))) {
                target = x;
                found = 1;
            }
        }
        freeReplyObject(r);
        if (!found) {
            if (to)
                snprintf(err, errlen, "rollback: version %" PRIu64 " is not retained (retained: %s; active %" PRIu64 ")",
                         to, list[0] ? list : "none", active);
            else
                snprintf(err, errlen, "rollback: no retained version older than the active %" PRIu64 " (retained: %s)",
                         active, list[0] ? list : "none");
            char ignored[64];
            redisReply *u = cmd(c, 1, (const char *[]){"UNWATCH"}, ignored, sizeof ignored);
            if (u) freeReplyObject(u);
            return -1;
        }
        fr_redis_key_manifest(mkey, prefix, target);
        fr_redis_key_dense(dkey, prefix, target);
        r = cmd(c, 2, (const char *[]){"GET", mkey}, err, errlen);
        if (!r) return -1;
        json_t *mo = r->type == REDIS_REPLY_STRING ? json_loadb(r->str, r->len, 0, NULL) : NULL;
        freeReplyObject(r);
        char hash[17] = "";
        const char *h = json_string_value(json_object_get(json_object_get(mo, "dense"), "xxh3_64"));
        if (h && strlen(h) == 16) memcpy(hash, h, sizeof hash);
        json_decref(mo);
        r = cmd(c, 2, (const char *[]){"STRLEN", dkey}, err, errlen);
        if (!r) return -1;
        long long bytes = r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
        freeReplyObject(r);
        if (!hash[0] || bytes == 0) {
            snprintf(err, errlen, "rollback: version %" PRIu64 " is listed in %s but its manifest or dense blob is "
                     "missing or unreadable; not flipping", target, vkey);
            char ignored[64];
            redisReply *u = cmd(c, 1, (const char *[]){"UNWATCH"}, ignored, sizeof ignored);
            if (u) freeReplyObject(u);
            return -1;
        }
        char vs[24], bs[24], maxlen[16];
        snprintf(vs, sizeof vs, "%" PRIu64, target);
        snprintf(bs, sizeof bs, "%lld", bytes);
        snprintf(maxlen, sizeof maxlen, "%d", FR_REDIS_STREAM_MAXLEN);
        r = cmd(c, 1, (const char *[]){"MULTI"}, err, errlen);
        if (!r) return -1;
        freeReplyObject(r);
        r = cmd(c, 3, (const char *[]){"SET", akey, vs}, err, errlen);
        if (!r) return -1;
        freeReplyObject(r);
        /* the operator's decision holds until fr_publish_release: no push flips over it */
        r = cmd(c, 3, (const char *[]){"SET", hkey, vs}, err, errlen);
        if (!r) return -1;
        freeReplyObject(r);
        r = cmd(c, 18,
                (const char *[]){"XADD", ckey, "MAXLEN", "~", maxlen, "*", "version", vs, "rows", "0", "dense_bytes", bs,
                                 "full", "0", "retired", "0", "dense_xxh3_64", hash},
                err, errlen);
        if (!r) return -1;
        freeReplyObject(r);
        r = cmd(c, 1, (const char *[]){"EXEC"}, err, errlen);
        if (!r) return -1;
        int done = r->type == REDIS_REPLY_ARRAY;
        freeReplyObject(r);
        if (done) {
            *from = active;
            *now = target;
            return 0;
        }
        /* a push happened meanwhile: look again */
    }
    snprintf(err, errlen, "rollback: the active version kept changing (is a daemon publishing?); gave up after 5 tries");
    return -1;
}

int fr_publish_rollback(const char *host, int port, const char *prefix, uint64_t to, uint64_t *from, uint64_t *now,
                        char *err, size_t errlen)
{
    if (fr_redis_check_prefix(prefix, err, errlen) != 0) return -1;
    char cerr[256];
    redisContext *c = fr_redis_connect(host, port, cerr, sizeof cerr);
    if (!c) {
        snprintf(err, errlen, "rollback: %s", cerr);
        return -1;
    }
    fr_sigpipe_guard g;
    fr_sigpipe_block(&g);
    int rc = rollback(c, prefix, to, from, now, err, errlen);
    fr_sigpipe_restore(&g);
    redisFree(c);
    return rc;
}

/* A connection for reading or lifting P:hold (its key into hkey); NULL with a message prefixed by what. */
static redisContext *connect_for_hold(const char *host, int port, const char *prefix, const char *what,
                                      char hkey[FR_REDIS_KEY_MAX], char *err, size_t errlen)
{
    if (fr_redis_check_prefix(prefix, err, errlen) != 0) return NULL;
    char cerr[256];
    redisContext *c = fr_redis_connect(host, port, cerr, sizeof cerr);
    if (!c) {
        snprintf(err, errlen, "%s%s", what, cerr);
        return NULL;
    }
    fr_redis_key_hold(hkey, prefix);
    return c;
}

int fr_publish_release(const char *host, int port, const char *prefix, uint64_t *held, char *err, size_t errlen)
{
    char hkey[FR_REDIS_KEY_MAX];
    redisContext *c = connect_for_hold(host, port, prefix, "release: ", hkey, err, errlen);
    if (!c) return -1;
    fr_sigpipe_guard g;
    fr_sigpipe_block(&g);
    int rc = -1;
    *held = 0;
    /* GETDEL would do it in one, but needs Redis 6.2 */
    redisReply *r = cmd(c, 2, (const char *[]){"GET", hkey}, err, errlen);
    if (r) {
        if (r->type == REDIS_REPLY_STRING && fr_parse_u64(r->str, r->len, held) != 0) *held = 0;
        freeReplyObject(r);
        r = cmd(c, 2, (const char *[]){"DEL", hkey}, err, errlen);
        if (r) {
            freeReplyObject(r);
            rc = 0;
        }
    }
    fr_sigpipe_restore(&g);
    redisFree(c);
    return rc;
}

int fr_publish_held(const char *host, int port, const char *prefix, int *held, uint64_t *version, char *err,
                    size_t errlen)
{
    char hkey[FR_REDIS_KEY_MAX];
    redisContext *c = connect_for_hold(host, port, prefix, "", hkey, err, errlen);
    if (!c) return -1;
    fr_sigpipe_guard g;
    fr_sigpipe_block(&g);
    redisReply *r = cmd(c, 2, (const char *[]){"GET", hkey}, err, errlen);
    fr_sigpipe_restore(&g);
    redisFree(c);
    if (!r) return -1;
    *held = r->type == REDIS_REPLY_STRING;
    *version = 0;
    if (*held) fr_parse_u64(r->str, r->len, version);
    freeReplyObject(r);
    return 0;
}
