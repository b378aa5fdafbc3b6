/* fr_pubq: the publisher on a thread of its own, so slow or dead Redis never stalls learning.
 *
 * The learner thread hands over a snapshot after each checkpoint (fr_pubq_submit): copies of the
 * rows marked FR_DIRTY_PUBLISH (weights and row version), the keys of the rows deleted since the
 * last hand-over (a deletion and a later write of one row replace each other), of the dense parameters, the model
 * version and the row counts. It then clears the marks: from that moment the queue owns them.
 * The publisher thread pushes snapshots with fr_publish_push_source; it never touches the model,
 * so training (and its determinism) does not depend on Redis at all.
 *
 * Queue of depth 1: there is one pending snapshot. A submission while a push runs (or while Redis
 * is down) is merged into it: its rows overwrite the same rows and add new ones, its dense
 * parameters and version replace the older ones. A failed push puts its rows back under the
 * pending ones (newer values win) and is retried about once a second with everything changed
 * meanwhile, so no changed row is ever lost. The pending set holds at most one entry per row of
 * the model (a long outage costs at most one copy of the weights, never a growing log).
 *
 * Held: while an operator's rollback holds the prefix (fr_publish_rollback), a push writes nothing
 * and its snapshot stays pending (merged with the next ones, as during an outage); the queue says so
 * once on the log and in its stats, and publishes the newest state once the hold is released.
 *
 * Full pushes: the first push of a process, and any push after the publisher reconnected or found
 * Redis without P:active, must write every row (fr_publish.h). The queue then asks for it
 * (fr_pubq_wants_full) and the next fr_pubq_submit copies every row instead of the marked ones;
 * until a complete snapshot arrives nothing is flipped, so a reader never sees a version whose
 * rows are missing from Redis.
 *
 * Threads: fr_pubq_submit, _flush, _stats and _close are called by the owner (the learner) thread;
 * the queue runs one pthread. Ownership: fr_pubq_open allocates, fr_pubq_close frees. */
#ifndef FR_PUBQ_H
#define FR_PUBQ_H

#include <stddef.h>
#include <stdint.h>
#include "fr_log.h"
#include "fr_model.h"
#include "fr_publish.h"

typedef struct fr_pubq fr_pubq;

/* Starts the publisher thread; connects to Redis lazily (never fails because Redis is down).
 * info: what every push writes into the manifest (the daemon's description, copied, and the
 * policy, a static table row; info and its members may be NULL). log: where failures and
 * recoveries are reported, from the publisher thread (copied; NULL or a NULL fn: silent; fr_log.h). writer_id: the publisher's lease on the prefix (fr_publish.h;
 * NULL: none). NULL with a message on a bad prefix (fr_publish.h's rule) or out of memory. */
fr_pubq *fr_pubq_open(const char *host, int port, const char *prefix, int keep_versions, const char *writer_id,
                      const fr_model_config *cfg, const fr_publish_info *info, const fr_log *log, char *err, size_t errlen);
/* Tries to push what is pending (waits up to timeout_seconds), stops the thread and frees. What
 * could not be pushed is not lost: it is in the checkpoint, and the next process pushes every row. */
void fr_pubq_close(fr_pubq *q, double timeout_seconds);

/* Hands over a snapshot of m (every row when the queue asked for a full push, else the rows marked
 * FR_DIRTY_PUBLISH) and clears m's publish marks. Copies only; never waits for Redis.
 * 0, or -1 (out of memory: nothing was taken and the marks are kept). */
int fr_pubq_submit(fr_pubq *q, fr_model *m, char *err, size_t errlen);
/* Waits until everything submitted is pushed, or timeout_seconds passed, or a rollback holds the
 * prefix (stats: held; the queue keeps the snapshot and tries again every second). 0 when all is
 * pushed (or was already published). */
int fr_pubq_flush(fr_pubq *q, double timeout_seconds);

typedef struct {
    uint64_t submitted;      /* snapshots handed over */
    uint64_t merged;         /* of them, merged into a snapshot still pending */
    uint64_t full_snapshots; /* of them, with every row */
    uint64_t pushes;         /* successful pushes that published a version */
    uint64_t unchanged;      /* pushes that found their state already published: nothing new, nothing published */
    uint64_t failures;       /* failed pushes (retried) */
    int held;                /* an operator's rollback holds the prefix: nothing is made active until released */
    uint64_t held_version;   /* the version it holds */
    uint64_t last_version;   /* version of the last push that published one (0: none) */
    size_t last_rows;        /* rows written by it */
    size_t pending_rows;     /* rows waiting (pending + in flight) */
    int wants_full;
    char last_error[512];
} fr_pubq_stats;
void fr_pubq_get_stats(fr_pubq *q, fr_pubq_stats *st);

#endif
