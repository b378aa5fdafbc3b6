/* row_hash.h: the row hash a reader reads a key from (docs/redis-layout.md, "Rows"), for tests that
 * write, delete or look at one row by hand: the table's shard count comes from the active version's
 * manifest (tables[].shards; the legacy 64 hashes for formats 1 and 2), or is `fallback` (a layout
 * code of fr_redis_layout.h) when nothing is published yet. Header-only; needs cmocka.h first. */
#ifndef FR_TEST_ROW_HASH_H
#define FR_TEST_ROW_HASH_H

#include <hiredis/hiredis.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "fr_redis_layout.h"

/* The layout of table t in the active version of prefix, or -1 when none is published. */
static int active_layout(int port, const char *prefix, uint32_t table)
{
    redisContext *c = redisConnect("127.0.0.1", port);
    assert_non_null(c);
    redisReply *a = redisCommand(c, "GET %s:active", prefix);
    int lay = -1;
    if (a && a->type == REDIS_REPLY_STRING) {
        redisReply *m = redisCommand(c, "GET %s:{v%s}:manifest", prefix, a->str);
        json_t *o = m && m->type == REDIS_REPLY_STRING ? json_loadb(m->str, m->len, 0, NULL) : NULL;
        uint8_t lays[64];
        char err[200];
        assert_true(table < 64);
        if (o && fr_redis_manifest_layouts(o, table + 1, lays, err, sizeof err) == 0) lay = lays[table];
        json_decref(o);
        if (m) freeReplyObject(m);
    }
    if (a) freeReplyObject(a);
    redisFree(c);
    return lay;
}

/* The hash key of (table, key) under prefix, and the key as its 8-byte field (field may be NULL). */
static void row_hash_key(char *hkey, int port, const char *prefix, uint32_t table, uint64_t key, int fallback,
                         unsigned char field[8])
{
    int lay = active_layout(port, prefix, table);
    if (lay < 0) lay = fallback;
    assert_true(lay >= 0);
    fr_redis_key_rows(hkey, prefix, table, lay, fr_redis_shard_of(key, lay));
    for (int i = 0; field && i < 8; i++) field[i] = (unsigned char)(key >> (8 * i));
}

#endif
