/* fr_reader: the serving side. Reads the active version from Redis (manifest, dense blob),
 * fetches embedding rows on demand, and scores with the trainer's own forward pass
 * (fr_model_predict) followed by the manifest's serve transform (fr_serve_apply: fnc's q/(1-q),
 * or none), so serving returns what the trainer's policy serves. The layout and the rules it
 * follows are in docs/redis-layout.md ("What a reader must do").
 *
 * Consistency: the dense parameters always come from one complete, checksummed blob of the loaded
 * version. Rows are fetched from Redis for every impression (one pipelined HMGET per shard hash
 * the impression touches) and may carry a version newer than the loaded dense version: the
 * publisher writes rows before the dense blob, so such rows belong to a push in progress or to a
 * version not loaded yet; using them is the same bounded skew every reader sees during a push,
 * never dense weights without their rows. A row absent from Redis reads as zeros, as
 * fr_model_predict reads unseen keys (a row fetched earlier and deleted since is forgotten).
 * fr_reader_load_active recreates the model, so nothing of an older version survives a load; when
 * a load fails the previously loaded version stays in use.
 *
 * Non-finite values are refused, never scored with: a version whose dense blob holds a NaN or an
 * infinity is not loaded (the previous one stays in use), and a row value with one is ignored (the
 * copy held from an earlier fetch is used, or zeros as for an unseen key). Both are counted
 * (fr_reader_get_stats), so a score is never NaN.
 *
 * Errors return -1 with a message; a lost connection is re-established by the next call.
 * Ownership: fr_reader_open allocates (connection and model); fr_reader_close frees.
 * Not thread-safe: one reader per serving thread. */
#ifndef FR_READER_H
#define FR_READER_H

#include <stddef.h>
#include <stdint.h>

#include "fr_model.h"
#include "fr_policy.h"
#include "fr_sample.h"

typedef struct fr_reader fr_reader;

/* NULL with a message when the prefix is invalid or Redis is unreachable. */
fr_reader *fr_reader_open(const char *host, int port, const char *prefix, char *err, size_t errlen);
void fr_reader_close(fr_reader *r);
/* Loads the active version: manifest and dense blob, and forgets cached rows of older versions.
 * Returns 0, or -1 when nothing is published or the version is incomplete. */
int fr_reader_load_active(fr_reader *r, char *err, size_t errlen);
/* Follows the change stream: waits up to block_ms (0: does not wait; at most 5000) for entries on
 * P:changes after the last one seen, then reloads (as fr_reader_load_active) when P:active names
 * another version than the loaded one -- a push or a rollback. Returns 1 when a version was
 * (re)loaded, 0 when the loaded version is still the active one (or nothing is active: Redis
 * restarted empty), -1 with a message (the loaded version stays in use). Before the first
 * successful load it loads. A half-written later version (rows and dense blob written, no flip)
 * is never loaded: only P:active decides. An entry that names the loaded version with another
 * dense checksum (or none) makes it compare the manifest's checksum with the loaded one and reload
 * when they differ: a version number must never be reused for other content, and a reader that
 * trusted the number alone would keep stale weights if a writer broke that rule. */
int fr_reader_follow(fr_reader *r, int block_ms, char *err, size_t errlen);
/* What the reader refused or noticed, since it was opened. */
typedef struct {
    uint64_t loads;            /* versions loaded */
    uint64_t republished;      /* loads of the loaded version number with another dense checksum: a writer
                                * republished a number with other content (the layout forbids it) */
    uint64_t refused_versions; /* versions refused when loading (checksum, header, non-finite parameters, ...) */
    uint64_t refused_rows;     /* row values refused when scoring because a weight is NaN or infinite */
} fr_reader_stats;
void fr_reader_get_stats(const fr_reader *r, fr_reader_stats *st);
/* Rows held from earlier fetches (each score fetches its rows again; a row Redis no longer has is
 * dropped then, and every held row is dropped when the change stream announces deletions). */
size_t fr_reader_cached_rows(const fr_reader *r);
/* The loaded version (0 before the first successful load). */
uint64_t fr_reader_version(const fr_reader *r);
/* The manifest JSON text of the loaded version (owned by r; NULL before the first load). */
const char *fr_reader_manifest(const fr_reader *r);
/* The loaded version's dense parameters (owned by r, valid until the next load; NULL before the
 * first load) and their count. */
const float *fr_reader_dense(const fr_reader *r, size_t *count);
/* Embedding tables of the loaded version (n_cat + n_multi; 0 before the first load). */
int fr_reader_table_count(const fr_reader *r);
/* Number of rows stored in Redis for a table of the loaded version (HLEN over its shard hashes), or -1
 * on error or when no version is loaded. */
long fr_reader_row_count(fr_reader *r, uint32_t table);
/* Scores one impression; fetches its rows from Redis. out = {pCTR, pCVR, pCTCVR}, after the serve
 * transform (the raw model outputs when it is the identity). */
int fr_reader_score(fr_reader *r, const fr_features *f, int32_t scenario, float out[FR_NTASKS], char *err,
                    size_t errlen);
/* Scores n impressions (the candidate ads of one request) with one round trip: every distinct row
 * of the batch is fetched once, by one HMGET per shard hash, all pipelined. out[i] is exactly what
 * fr_reader_score gives impression i. A scenario out of range refuses the whole batch. */
int fr_reader_score_batch(fr_reader *r, const fr_features *f, const int32_t *scenario, int n,
                          float (*out)[FR_NTASKS], char *err, size_t errlen);

/* The pure half of a load (fr_reader_load_active reads both keys, then calls this; tests/fuzz calls
 * it directly): checks the manifest text of version v against the dense blob's bytes and fills cfg,
 * *dense (malloc'ed, count floats; the caller frees it), *count and, unless NULL, *serve (the serve
 * transform) and xxh3 (17 bytes: the blob's checksum in hex). 0, or -1 with a message (and *dense
 * NULL) when the manifest or the blob is malformed, of another format or version, names a serve
 * transform this reader does not know, fails its checksum or holds non-finite weights. */
int fr_reader_parse_version(const char *manifest, size_t manifest_len, const void *blob, size_t blob_len, uint64_t v,
                            fr_model_config *cfg, fr_serve_transform *serve, float **dense, size_t *count, char *xxh3,
                            char *err, size_t errlen);

#endif
