/* fr_publish_int: what the publisher's two files share -- fr_publish.c (the push: versions, manifest,
 * flip, retirement) and fr_publish_rows.c (writing the rows into their shard hashes). Internal to
 * store/; see fr_publish.h and docs/redis-layout.md. */
#ifndef FR_PUBLISH_INT_H
#define FR_PUBLISH_INT_H

#include <stdint.h>
#include <stdio.h>

#include "fr_publish.h"
#include "fr_redis_layout.h"

enum {
    FIELDS_PER_HSET = 64, /* rows per HSET command (one shard hash) */
    ROW_WINDOW = 32,      /* HSET commands in flight before their replies are read */
    /* rows buffered in the shard buckets before all of them are sent: with thousands of shard
     * hashes per table a full push would otherwise hold nearly every row before any bucket fills */
    MAX_BUFFERED_ROWS = 1 << 18,
    HASHES_PER_TRIP = 256, /* HKEYS / UNLINK keys per round trip or command */
    LAYOUTS = 32,          /* layout codes, bits of a uint32_t mask (fr_redis_layout.h) */
};

struct fr_publisher {
    char *host;
    int port;
    char prefix[FR_REDIS_PREFIX_MAX + 1];
    int keep;
    redisContext *c; /* NULL while disconnected */
    int need_full;
    int fail_before_flip; /* test hook: fr_publish_test_fail_before_flip */
    char *writer;         /* NULL: no lease */
    int lease_ms;
    fr_publish_stats last;
    char last_xxh3[17]; /* dense checksum of last.version ("": none) */
    uint64_t held;      /* the version a rollback held the prefix at when the last push read it (0: none) */
    fr_log log;         /* fr_publish_set_log: where the check of Redis' hash settings is said, once */
    int checked;        /* that check ran */
    char note[512];     /* its finding ("": Redis keeps our row hashes compact) */
};

/* Drops the connection (the next push reconnects, and writes every row). */
void fr_publish_disconnect(fr_publisher *p);

/* Writes the rows (all, or the changed ones) and deletes the deleted ones, in every layout of live
 * (per table); copies every row of a table whose from[t] is a layout (not FR_REDIS_LAYOUT_NONE)
 * from that layout's hashes into those of current[t] first; full pushes then remove the rows the
 * source does not hold and the hashes no live layout reads. *deleted counts the fields Redis
 * removed from each table's current layout. 0, or -1 with a message (a lost connection is dropped). */
int fr_publish_rows(fr_publisher *p, const fr_publish_source *src, const uint32_t *live, const uint8_t *current,
                    const uint8_t *from, int full, size_t *rows, size_t *deleted, char *err, size_t errlen);

#endif
