/* freshet_serving.h: the public serving API of Freshet (libfreshet_serving; pkg-config
 * freshet_serving). Self-contained: it includes only system headers, and every type is an opaque
 * handle or a plain struct declared here.
 *
 * A serving process reads the model Freshet publishes to Redis (layout: docs/redis-layout.md)
 * and scores impressions with the trainer's own forward pass and the serve transform the model's
 * manifest names (fnc's calibration q/(1-q), or none), so serving and training agree to 1e-6 for
 * the same version. Typical use, one handle per serving thread:
 *
 *     freshet_serving *s = freshet_serving_open("127.0.0.1", 6379, "freshet", err, sizeof err);
 *     freshet_serving_load(s, err, sizeof err);                 // the active version
 *     freshet_impression *imp = freshet_impression_new();
 *     for (;;) {
 *         freshet_serving_follow(s, 1000, err, sizeof err);      // picks up pushes and rollbacks
 *         freshet_serving_decode(s, json, len, imp, err, sizeof err);  // an EVENTS.md impression
 *         freshet_serving_score(s, imp, &scores, err, sizeof err);
 *     }
 *
 * Consistency: the dense weights always come from one complete version, checked against the
 * size and XXH3-64 checksum in its manifest, and only ever from the version P:active names: a
 * later version whose rows and dense blob are written but whose flip has not happened (a push in
 * progress, or a publisher that died mid-push) is never loaded. Rows are fetched from Redis for
 * each impression; they may be newer than the loaded dense version (the writer pushes rows before
 * the flip), never older than it. Loading a version (by freshet_serving_load or _follow) drops
 * every row cached from the previous one, and so does following an announcement of deleted
 * (evicted) rows; a row Redis no longer holds reads as zeros. When a load fails, the previous
 * version stays in use. NaN and infinities are refused, never scored with: a version whose dense
 * weights hold one is not loaded (the previous version stays in use), a row that holds one is
 * ignored (the copy fetched earlier is used, or zeros); both are counted (freshet_serving_get_stats).
 * A version number announced again with another dense checksum is reloaded (and counted), so
 * weights are never stale behind an unchanged number.
 *
 * Input: an impression, decoded from EVENTS.md JSON with the field list and scenarios of the
 * loaded version (the manifest's "daemon" member) by the trainer's own decoder, so the keys are
 * the ones the trainer hashed; or built key by key (freshet_impression_set_*) by a client that
 * hashes values itself as the manifest's "daemon.hash" describes.
 *
 * Errors: -1 with a message in err (NUL-terminated, truncated to errlen). A lost connection is
 * re-established by the next call. Threads: a freshet_serving handle and a freshet_impression are
 * each used by one thread at a time; separate handles are independent. */
#ifndef FRESHET_SERVING_H
#define FRESHET_SERVING_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct freshet_serving freshet_serving;
typedef struct freshet_impression freshet_impression;

typedef struct {
    float pctr;   /* P(click | impression) */
    float pcvr;   /* P(conversion | click), after the manifest's serve transform */
    float pctcvr; /* P(click and conversion | impression) = pctr * pcvr */
} freshet_scores;

/* ---- the model ---- */

/* Connects to Redis (2 s connect timeout, 10 s command timeout; AUTH with the environment's
 * FRESHET_REDIS_PASSWORD, and FRESHET_REDIS_USERNAME for an ACL user, when set). prefix: the
 * daemon's redis.prefix. NULL with a message when the prefix is invalid, Redis is unreachable or
 * refuses the password. freshet_serving_close frees (NULL is a no-op). */
freshet_serving *freshet_serving_open(const char *host, int port, const char *prefix, char *err, size_t errlen);
void freshet_serving_close(freshet_serving *s);

/* Loads the active version (manifest and dense weights). 0, or -1 (nothing published, version
 * incomplete or failing its checks, a manifest this library cannot serve, Redis unreachable). */
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
/* The loaded version's scenario names (the manifest's daemon.scenarios): the name of index i, or
 * NULL when i is out of range or nothing with a field list is loaded. Owned by s, valid until the
 * next load. */
const char *freshet_serving_scenario_name(const freshet_serving *s, int32_t scenario);
/* Embedding tables of the loaded version (0 before the first load), and the rows Redis holds for
 * one of them (HLEN over its shard hashes; -1 with a message on error). */
int freshet_serving_table_count(const freshet_serving *s);
long freshet_serving_row_count(freshet_serving *s, int table, char *err, size_t errlen);

/* What the handle loaded, noticed and refused since it was opened. */
typedef struct {
    uint64_t loads;            /* versions loaded */
    uint64_t republished;      /* reloads of the same version number with another dense checksum */
    uint64_t refused_versions; /* versions not loaded: checksum, header, or non-finite dense weights */
    uint64_t refused_rows;     /* row values ignored because a weight is NaN or infinite */
} freshet_serving_stats;
void freshet_serving_get_stats(const freshet_serving *s, freshet_serving_stats *out);

/* ---- impressions ---- */

/* An impression to score: its id, scenario and features. A reusable buffer: new allocates an
 * empty one (NULL when out of memory), free releases it (NULL is a no-op). */
freshet_impression *freshet_impression_new(void);
void freshet_impression_free(freshet_impression *imp);
/* Empties it: no id, scenario 0, every key 0 (no value), every number 0. */
void freshet_impression_clear(freshet_impression *imp);

/* Fills imp from one EVENTS.md message (JSON text of len bytes) with the loaded version's field
 * list and scenarios, exactly as the trainer decodes and hashes it. 0 for an impression; 1 for a
 * valid click or conversion (nothing to score; imp is cleared); -1 with a message when the
 * message is refused (the decoder's reason, e.g. "unknown_scenario: ...") or the loaded version's
 * manifest has no field list. */
int freshet_serving_decode(freshet_serving *s, const char *json, size_t len, freshet_impression *imp, char *err,
                           size_t errlen);
/* The impression's id ("" unless decoded) and scenario index. */
const char *freshet_impression_id(const freshet_impression *imp);
int32_t freshet_impression_scenario(const freshet_impression *imp);

/* Key by key, for clients that hash values themselves (docs/redis-layout.md, "Rows" and the
 * manifest's daemon.hash). Each returns 0, or -1 when the slot or count exceeds what any model can
 * hold (16 categorical slots, 8 numbers, 2 multi-valued fields of 8 keys). scenario: the index in
 * daemon.scenarios; categorical slot 0 holds the scenario field's key. Numbers are taken after
 * the field's transform. A multi-valued field's keys, most recent first, replace its old ones. */
int freshet_impression_set_scenario(freshet_impression *imp, int32_t scenario);
int freshet_impression_set_key(freshet_impression *imp, int slot, uint64_t key);
int freshet_impression_set_number(freshet_impression *imp, int slot, float value);
int freshet_impression_set_multi(freshet_impression *imp, int field, const uint64_t *keys, int n);

/* ---- scoring ---- */

/* Scores one impression with the loaded version; fetches its rows in one pipelined round trip.
 * 0, or -1 with a message (no version loaded, scenario out of range, Redis failed). */
int freshet_serving_score(freshet_serving *s, const freshet_impression *imp, freshet_scores *out, char *err,
                          size_t errlen);
/* Scores n impressions -- the candidate ads of one request -- with one round trip for all of them
 * (rows shared by the candidates, such as the user's, are fetched once): out[i] equals what
 * freshet_serving_score gives imp[i]. 0, or -1 with a message (nothing scored). */
int freshet_serving_score_batch(freshet_serving *s, const freshet_impression *const *imp, int n, freshet_scores *out,
                                char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif
