/* fr_publish: pushes the model to Redis for serving, in the layout of docs/redis-layout.md.
 *
 * Rows the model deleted (evicted) since the last push are HDEL'ed first, before any row is
 * written; the rows Redis removed (HDEL's replies) are counted in the change-stream entry
 * ("deleted"). A full push also removes every row the source does not hold and the row hashes of
 * tables it does not have, so afterwards Redis holds exactly the source's rows.
 *
 * A push writes the rows marked FR_DIRTY_PUBLISH (weights only, never optimizer state), then
 * the dense parameters as one blob under a new version, then flips the active-version key, then
 * announces the version on a change stream; it clears the publish marks only after all of it
 * succeeded, so a failed push is retried whole by the next one. Every write is a full value,
 * so a push is idempotent. Dense blobs of the last keep_versions versions stay readable.
 *
 * Version: a number above every version ever made active under the prefix -- the model version
 * when that is new (the usual case), else the highest one + 1 (after a restore from an older
 * checkpoint, or a second run from one) -- so a number never names two contents; the manifest
 * records the model version. A push whose state the newest version already holds (nothing new:
 * same model version and dense checksum, no row changed, no push begun since) publishes no
 * version and succeeds (stats: unchanged); a full one still rewrites every row and removes the
 * rows the source does not hold, which repairs a Redis that drifted.
 * A rollback holds the prefix until released: pushes then return FR_PUBLISH_HELD.
 * Full pushes: the first push of a handle, the first push after a reconnect, and a push that finds
 * no active-version key (Redis lost its data) write every row, not only the marked ones: the
 * publisher cannot know what Redis holds then (a restarted daemon restores its model from the
 * checkpoint with no marks; a Redis without persistence restarts empty).
 * Connection failures return -1 with a message and keep the marks; the next push reconnects.
 *
 * One writer per prefix: two daemons publishing under one prefix would overwrite each other's
 * rows and versions (and a full push deletes the rows it does not hold). A publisher opened with
 * a writer id takes a lease, the key P:writer = id with a TTL (FR_PUBLISH_LEASE_MS), at the start
 * of every push, renewing it when it is its own; a push that finds another id there writes nothing
 * and fails with a message naming both writers. The same id (the daemon restarted after a crash)
 * takes the lease over at once; another id waits until the holder's lease runs out (it stopped
 * pushing) or the holder closes, which releases it. The lease is checked at the start of a push,
 * not held across it: it excludes a second daemon configured onto the same prefix, it is not a
 * fence for a push that outlives its lease.
 *
 * Ownership: fr_publish_open allocates the handle (and its connection); fr_publish_close frees.
 * Not thread-safe; the model must not change during fr_publish_push. */
#ifndef FR_PUBLISH_H
#define FR_PUBLISH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "fr_log.h"

#include "fr_model.h"
#include "fr_policy.h"

typedef struct fr_publisher fr_publisher;

/* Describes the model to serving: written into the manifest of each version. */
typedef struct {
    const char *manifest_json;   /* the daemon's description of fields and scenarios, as JSON text (may be NULL) */
    /* the delayed-feedback policy the model was trained under (may be NULL: a plain model): the
     * manifest records its name and its serve transform, which every reader applies */
    const fr_policy *policy;
} fr_publish_info;

/* The prefix rule (1..64 characters of [A-Za-z0-9_.:-]: braces would change the Redis Cluster hash
 * tags), for a configuration check. 0, or -1 with a message. */
int fr_publish_check_prefix(const char *prefix, char *err, size_t errlen);

/* prefix: 1..64 characters of [A-Za-z0-9_.:-]; keep_versions >= 1 (2 or more recommended so a
 * reader that read the active version just before a flip can still load it). Fails when Redis is
 * unreachable (the caller may retry open later). */
enum { FR_PUBLISH_LEASE_MS = 30000 };
/* writer_id: who this publisher is (1..256 bytes; the daemon uses host:checkpoint.dir, stable
 * across restarts), or NULL for no lease (tools and tests that own their prefix). */
fr_publisher *fr_publish_open(const char *host, int port, const char *prefix, int keep_versions, const char *writer_id,
                              char *err, size_t errlen);
/* Releases the lease (if it is still ours), closes and frees. */
void fr_publish_close(fr_publisher *p);
/* Pushes and returns 0 with the new version in *version (clearing the model's publish marks),
 * FR_PUBLISH_HELD, or -1 with a message (the marks are kept). */
int fr_publish_push(fr_publisher *p, fr_model *m, const fr_publish_info *info, uint64_t *version, char *err,
                    size_t errlen);

/* A push from something other than a live model: a snapshot (fr_pubq). shape is any model with
 * the published configuration (its config, table count, dense count and tensor layout are used;
 * its rows and parameters are not). foreach_row calls fn for every row when all = 1, else for the
 * changed rows; complete says whether it can deliver every row. */
typedef struct {
    const fr_model *shape;
    const float *dense;        /* fr_model_dense_count(shape) floats */
    uint64_t version;          /* the version to publish */
    const size_t *row_counts;  /* rows per table the trainer holds (for the manifest) */
    int complete;
    int (*foreach_row)(void *ctx, int all, fr_row_fn fn, void *fn_ctx);
    /* the rows deleted (evicted) since the last successful push, HDEL'ed before any row is
     * written; NULL = none */
    int (*foreach_deleted)(void *ctx, fr_deleted_fn fn, void *fn_ctx);
    /* complete sources: 1 when the source holds (table, key). A full push then HDELs every field
     * of the row hashes the source does not hold (rows evicted by an earlier process whose deletion
     * never reached Redis). NULL = no such clean-up. One writer per prefix: the writer lease (above). */
    int (*has_row)(void *ctx, uint32_t table, uint64_t key);
    void *ctx;
} fr_publish_source;
/* Returned by fr_publish_push_source when the publisher must write every row (first push of the
 * handle, after a reconnect, or Redis lost P:active) but src is not complete: nothing was written;
 * push a complete source. */
enum { FR_PUBLISH_NEED_FULL = 1 };
/* Returned by the push functions when an operator's rollback holds the prefix (P:hold, set by
 * fr_publish_rollback): nothing was made active (rows written by a push a rollback overtook stay);
 * the source's state must be kept and pushed again once fr_publish_release lifts the hold. */
enum { FR_PUBLISH_HELD = 2 };
/* Pushes src: 0, FR_PUBLISH_NEED_FULL, FR_PUBLISH_HELD, or -1 with a message. Clears no marks (src
 * owns them). */
int fr_publish_push_source(fr_publisher *p, const fr_publish_source *src, const fr_publish_info *info,
                           uint64_t *version, char *err, size_t errlen);

/* Makes an earlier retained version active again: `to`, or (to = 0) the highest retained version
 * below the active one. Checks that its manifest and dense blob exist, then flips P:active, holds
 * the prefix at that version (P:hold) and announces the version on P:changes, in one MULTI/EXEC
 * under WATCH of P:active and P:versions, so a push that flips or retires meanwhile makes it look
 * again (up to 5 times). Rows are not versioned: they stay at their latest values. The hold is the
 * operator's decision and outlives every daemon: no push makes a version active while it exists
 * (FR_PUBLISH_HELD) until fr_publish_release lifts it. 0 with the previous and the new active
 * version, or -1 with a message. */
int fr_publish_rollback(const char *host, int port, const char *prefix, uint64_t to, uint64_t *from, uint64_t *now,
                        char *err, size_t errlen);
/* Lifts the hold a rollback set: the next push that brings something new makes it active. 0 with
 * the version that was held in *held (0: there was no hold), or -1 with a message. */
int fr_publish_release(const char *host, int port, const char *prefix, uint64_t *held, char *err, size_t errlen);
/* Whether a rollback holds the prefix, and at which version. 0, or -1 with a message. */
int fr_publish_held(const char *host, int port, const char *prefix, int *held, uint64_t *version, char *err,
                    size_t errlen);

/* Where the publisher says, once, that Redis' hash settings would take row hashes out of the compact
 * listpack encoding (checked at its first push; a warning; NULL or unset: nowhere). Copied. */
void fr_publish_set_log(fr_publisher *p, const fr_log *log);
/* That finding ("" when the settings are right or not checked yet); valid until the next push. */
const char *fr_publish_redis_note(const fr_publisher *p);

/* What the last successful push did (all zero before the first). */
typedef struct {
    uint64_t version;        /* the version published (or found already published, when unchanged) */
    uint64_t model_version;  /* the model version it holds */
    int unchanged;           /* 1: the newest published version already held this state; nothing was written */
    size_t rows;             /* rows written */
    size_t dense_bytes;      /* size of the dense blob */
    int full;                /* 1 when every row was written */
    size_t retired_versions; /* old versions deleted */
    size_t deleted;          /* rows removed from Redis (HDEL's replies; UNLINKed hashes' rows) */
    size_t resharded;        /* tables this push moved to more shard hashes (docs/redis-layout.md, "Shards") */
    double seconds;          /* wall time of the push */
} fr_publish_stats;
void fr_publish_last_stats(const fr_publisher *p, fr_publish_stats *s);
/* The version an operator's rollback held the prefix at when the last push looked (0: not held). */
uint64_t fr_publish_held_version(const fr_publisher *p);

#endif
