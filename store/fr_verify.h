/* fr_verify: compares what Redis serves under a prefix with a model -- in practice a checkpoint --
 * row by row, and the dense blob of the active version with the model's dense parameters. It is
 * the check behind `freshet verify`: after any sequence of restarts, restores, evictions and
 * kills, a daemon that has published its last checkpoint must leave Redis holding exactly the
 * checkpoint's rows (docs/redis-layout.md). Reads only; never writes to Redis.
 *
 * Rows: every row hash of the prefix (P:emb:{tTsS}, found by SCAN, so hashes of tables the model
 * does not have are seen too) is read whole (HGETALL) and compared field by field with the
 * model: the value Redis holds must be byte for byte the row the model would publish (weights and
 * row version). Dense: the active version is loaded with the serving reader (fr_reader, so with
 * every check a reader applies) and its parameters compared bit for bit.
 *
 * Memory: 8 bytes per model row plus the largest row hash. Ownership: the caller owns the model and
 * the report; nothing is allocated past the call. */
#ifndef FR_VERIFY_H
#define FR_VERIFY_H

#include <stddef.h>
#include <stdint.h>

#include "fr_model.h"

enum { FR_VERIFY_MAX_NOTES = 10, FR_VERIFY_NOTE_MAX = 240 };

typedef struct {
    uint64_t model_rows;      /* rows the model holds */
    uint64_t redis_rows;      /* fields in the prefix's row hashes */
    uint64_t equal;           /* in both, the same value */
    uint64_t missing;         /* in the model, not in Redis */
    uint64_t extra;           /* in Redis, not in the model (fields that are no row of the model's, hashes of
                               * tables it lacks) */
    uint64_t different;       /* in both, another value (weights or row version) */
    int loaded;               /* the active version loaded (manifest and blob pass the reader's checks) */
    uint64_t active_version;  /* P:active (0: none) */
    uint64_t active_model_version; /* the model version its manifest records (0: not recorded) */
    size_t dense_count;       /* parameters in the active blob */
    size_t dense_different;   /* of them, different from the model's (bit for bit), or all when the counts differ */
    int nnotes;               /* the first differences, one line each */
    char notes[FR_VERIFY_MAX_NOTES][FR_VERIFY_NOTE_MAX];
} fr_verify_report;

/* Fills rep. 0 when the comparison ran (whatever it found), -1 with a message when it could not
 * (Redis unreachable, bad prefix, out of memory). */
int fr_verify_redis(const char *host, int port, const char *prefix, const fr_model *m, fr_verify_report *rep,
                    char *err, size_t errlen);
/* 1 when Redis serves exactly the model: no missing, extra or different row, and the active
 * version's dense blob equals the model's dense parameters. */
int fr_verify_ok(const fr_verify_report *rep);

#endif
