/* freshet_serving.h: the public serving API of Freshet.
 *
 * A serving process reads the model Freshet publishes to Redis (layout: docs/redis-layout.md)
 * and scores impressions with the trainer's own forward pass, so serving and training agree to
 * 1e-6 for the same version. Typical use, one handle per serving thread:
 *
 *     freshet_serving *s = freshet_serving_open("127.0.0.1", 6379, "freshet", err, sizeof err);
 *     freshet_serving_load(s, err, sizeof err);             // the active version
 *     for (;;) {
 *         freshet_serving_follow(s, 1000, err, sizeof err);  // picks up pushes and rollbacks
 *         freshet_serving_score(s, &features, scenario, &scores, err, sizeof err);
 *     }
 *
 * Consistency: the dense weights always come from one complete version, checked against the
 * size and XXH3-64 checksum in its manifest, and only ever from the version P:active names: a
 * later version whose rows and dense blob are written but whose flip has not happened (a push in
 * progress, or a publisher that died mid-push) is never loaded. Rows are fetched from Redis for
 * each impression; they may be newer than the loaded dense version (the writer pushes rows before
 * the flip), never older than it. Loading a version (by freshet_serving_load or _follow) drops
 * every row cached from the previous one, and so does following an announcement of deleted
 * (evicted) rows; a row Redis no longer holds reads as zeros. When a load fails, the previous version stays in use.
 * NaN and infinities are refused, never scored with: a version whose dense weights hold one is not loaded (the
 * previous version stays in use), a row that holds one is ignored (the copy fetched earlier is used, or zeros);
 * both are counted (freshet_serving_get_stats). A version number announced again with another dense checksum is
 * reloaded (and counted), so weights are never stale behind an unchanged number.
 *
 * Input: the impression as the model's features (fr_features: 64-bit keys per categorical slot
 * and multi-valued field, numerics after their transform; learner/fr_sample.h), hashed as the
 * manifest's "daemon.hash" describes. To score EVENTS.md JSON, decode it with the daemon's event
 * decoder (stream/fr_event.h) configured from the manifest's "daemon" field list -- as
 * `freshet score` does -- so there is exactly one implementation of the key format.
 *
 * Errors: -1 with a message in err (NUL-terminated, truncated to errlen). A lost connection is
 * re-established by the next call. Not thread-safe: one handle per thread. */
#ifndef FRESHET_SERVING_H
#define FRESHET_SERVING_H

#include <stddef.h>
#include <stdint.h>

#include "fr_sample.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct freshet_serving freshet_serving;

typedef struct {
    float pctr;   /* P(click | impression) */
    float pcvr;   /* P(conversion | click) */
    float pctcvr; /* P(click and conversion | impression) = pctr * pcvr */
} freshet_scores;

/* Connects to Redis (2 s connect timeout, 10 s command timeout; AUTH with the environment's
 * FRESHET_REDIS_PASSWORD, and FRESHET_REDIS_USERNAME for an ACL user, when set). prefix: the
 * daemon's redis.prefix. NULL with a message when the prefix is invalid, Redis is unreachable or
 * refuses the password. */
freshet_serving *freshet_serving_open(const char *host, int port, const char *prefix, char *err, size_t errlen);
void freshet_serving_close(freshet_serving *s);

/* Loads the active version (manifest and dense weights). 0, or -1 (nothing published, version
 * incomplete or failing its checks, Redis unreachable). */
int freshet_serving_load(freshet_serving *s, char *err, size_t errlen);

/* Follows the change stream P:changes from the last entry seen, waiting up to block_ms
 * milliseconds (0: no wait; capped at 5000) for a new entry, and loads the active version when it
 * differs from the loaded one (a push or a rollback). Returns 1 when a version was loaded, 0 when
 * nothing changed, -1 with a message (the loaded version stays in use). */
int freshet_serving_follow(freshet_serving *s, int block_ms, char *err, size_t errlen);

/* The loaded version (0 before the first load) and its manifest JSON (NULL before; owned by s,
 * valid until the next load). */
uint64_t freshet_serving_version(const freshet_serving *s);
const char *freshet_serving_manifest(const freshet_serving *s);

/* What the handle loaded, noticed and refused since it was opened. */
typedef struct {
    uint64_t loads;            /* versions loaded */
    uint64_t republished;      /* reloads of the same version number with another dense checksum */
    uint64_t refused_versions; /* versions not loaded: checksum, header, or non-finite dense weights */
    uint64_t refused_rows;     /* row values ignored because a weight is NaN or infinite */
} freshet_serving_stats;
void freshet_serving_get_stats(const freshet_serving *s, freshet_serving_stats *out);

/* Scores one impression: scenario is the scenario's index in the manifest's daemon.scenarios.
 * Fetches the impression's rows in one pipelined round trip. 0, or -1 with a message. */
int freshet_serving_score(freshet_serving *s, const fr_features *f, int32_t scenario, freshet_scores *out, char *err,
                          size_t errlen);
/* Scores n impressions -- the candidate ads of one request -- with one round trip for all of them
 * (rows shared by the candidates, such as the user's, are fetched once): out[i] equals what
 * freshet_serving_score gives f[i], scenario[i]. 0, or -1 with a message (nothing scored). */
int freshet_serving_score_batch(freshet_serving *s, const fr_features *f, const int32_t *scenario, int n,
                                freshet_scores *out, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif
