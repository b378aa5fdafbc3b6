/* fr_ckpt: checkpoints in RocksDB. One checkpoint is one atomic write batch holding the changed
 * embedding rows with their optimizer state, the dense parameters and their optimizer state,
 * the join state changes, the input offsets of every partition and the watermark, and the
 * daemon's counters. Loading restores all of it; a crash therefore repeats exactly the input
 * after the last checkpoint.
 *
 * Key layout (column family "default" unless noted; integers in keys big-endian so keys sort by
 * number; full description, value formats and invariants in docs/checkpoint-format.md):
 *   "#"                         -> marker: "FRC1", format version u32 LE (in every batch)
 *   "C" name                    -> an application blob (daemon counters, per-source watermarks)
 *   "D"                         -> dense params then dense accumulators (float32 LE)
 *   "E" table:u32 key:u64       -> row: version:u64 LE, weights[dim], optimizer state (Adagrad:
 *                                  accum[dim]; FTRL: z[dim], n[dim]) (float32 LE), stamp:u32 LE
 *   id bytes (family "join")    -> join entry (fr_join's private format); listed as "J" id
 *   "K"                         -> join meta (counters, watermark)
 *   "M"                         -> meta JSON: format version, model config, model version, counts
 *   "O" source name             -> offset: next offset to read, int64 LE
 * The content is a pure function of the learner's state (no wall-clock time, no commit counter),
 * so two runs that reach the same state have the same fr_ckpt_digest.
 *
 * Errors: functions taking err write an actionable message. The fr_ckpt_put_* functions cannot
 * report a message; a failing put returns -1 and the batch remembers the first failure, which
 * fr_ckpt_commit then reports (and writes nothing).
 *
 * Ownership: fr_ckpt_open allocates the handle; fr_ckpt_close releases it. fr_ckpt_begin
 * allocates a batch; fr_ckpt_commit or fr_ckpt_abort releases it (exactly one of them). A handle
 * is not thread-safe; one batch at a time per handle. */
#ifndef FR_CKPT_H
#define FR_CKPT_H

#include <stddef.h>
#include <stdint.h>

#include "fr_model.h"

/* Version of the layout above; stored in the marker and the meta. Bumped on incompatible change.
 * 3: every part encoded field by field (base/fr_bytes.h), no host-layout struct stored. A version-2
 * directory is refused by name (not migrated): its counters, metrics, batch, guard and sources are
 * this host's structs; replay the input into a new checkpoint.dir. */
enum { FR_CKPT_FORMAT_VERSION = 3 };

typedef struct fr_ckpt fr_ckpt;

/* Opens (creating if missing) the checkpoint directory. NULL with a message on error, e.g. the
 * directory is locked by another daemon or holds a checkpoint of a newer format. Damage is refused,
 * never papered over by an older state: a write-ahead log with a bad record anywhere, one that ends
 * before the last acknowledged commit (truncated or deleted: the commit record FRESHET-COMMITTED
 * beside RocksDB's files says how far it must reach), keys without the marker. An incomplete last
 * record, a commit torn by a crash that was never acknowledged, is dropped: the directory opens at
 * the checkpoint before it. */
fr_ckpt *fr_ckpt_open(const char *dir, char *err, size_t errlen);
/* Opens an existing checkpoint for reading only (no lock: works while a daemon owns the directory,
 * and sees its state as of the open). Commits to such a handle fail. For `freshet inspect`. */
fr_ckpt *fr_ckpt_open_readonly(const char *dir, char *err, size_t errlen);
void fr_ckpt_close(fr_ckpt *c);
/* 1 if the store holds a committed checkpoint. */
int fr_ckpt_exists(fr_ckpt *c);

/* A checkpoint under construction; nothing is visible until fr_ckpt_commit. NULL on OOM. */
typedef struct fr_ckpt_batch fr_ckpt_batch;
fr_ckpt_batch *fr_ckpt_begin(fr_ckpt *c);
/* Adds the rows dirty for FR_DIRTY_CHECKPOINT, all dense parameters with their accumulators, and
 * the meta. It does NOT clear the dirty marks: the caller calls
 * fr_model_clear_dirty(m, FR_DIRTY_CHECKPOINT) after fr_ckpt_commit succeeded (and only then), so
 * a failed commit leaves the rows to be written by the next checkpoint. */
int fr_ckpt_put_model(fr_ckpt_batch *b, const fr_model *m);
/* Removes an embedding row (evicted from the model) from the checkpoint. */
int fr_ckpt_delete_row(fr_ckpt_batch *b, uint32_t table, uint64_t key);
/* len 0 deletes the entry. */
int fr_ckpt_put_join_entry(fr_ckpt_batch *b, const char *id, size_t id_len, const void *bytes, size_t len);
int fr_ckpt_put_join_meta(fr_ckpt_batch *b, const void *bytes, size_t len);
int fr_ckpt_put_offset(fr_ckpt_batch *b, const char *source, int64_t next_offset);
/* The learner's prior of a pending impression (key "P" + id, daemon/fr_priors.h); len 0 deletes it. */
int fr_ckpt_put_prior(fr_ckpt_batch *b, const char *id, size_t id_len, const void *bytes, size_t len);
/* Stores bytes under name (len 0 stores an empty blob: fr_ckpt_get_blob then returns 0, not -1). */
int fr_ckpt_put_blob(fr_ckpt_batch *b, const char *name, const void *bytes, size_t len);
/* Removes a blob; nothing happens when it is absent. */
int fr_ckpt_delete_blob(fr_ckpt_batch *b, const char *name);

/* Why a put into b failed (the first failure: "out of memory building a key", ...), or NULL while
 * none has. Valid until b is committed or aborted. */
const char *fr_ckpt_batch_error(const fr_ckpt_batch *b);

/* What a batch holds so far (for metrics and tests). */
typedef struct {
    size_t entries;      /* puts and deletes in the batch, the marker included */
    size_t rows;         /* embedding rows written */
    size_t row_deletes;  /* embedding rows deleted */
    size_t join_puts;    /* join entries written */
    size_t join_deletes; /* join entries deleted */
    size_t bytes;        /* serialized size of the batch */
} fr_ckpt_batch_stats;
void fr_ckpt_batch_get_stats(const fr_ckpt_batch *b, fr_ckpt_batch_stats *s);

/* Writes the batch atomically and durably (synced WAL), then the commit record. Frees b either way.
 * On failure (a put failed, or RocksDB refused the write: disk full, I/O error, read-only handle)
 * returns -1 with "checkpoint not written; the daemon must stop consuming" and the cause; the
 * previous checkpoint is intact. After a RocksDB write error the handle stays unusable: close and
 * reopen it. (If only the commit record could not be written, the checkpoint is in RocksDB and the
 * record names an older one, which a restart accepts; the daemon stops all the same.) */
int fr_ckpt_commit(fr_ckpt_batch *b, char *err, size_t errlen);
void fr_ckpt_abort(fr_ckpt_batch *b);

/* Loading. fr_ckpt_load_model creates the model from the stored config and fills it: dense
 * params and accumulators, every row, the model version; then clears both dirty marks (the
 * publisher pushes every row on its first push anyway). The caller frees the model with
 * fr_model_free. NULL with a message when absent, inconsistent or corrupt. */
fr_model *fr_ckpt_load_model(fr_ckpt *c, char *err, size_t errlen);
/* Restores the admission filters (blobs "admit.T", "admit.T.C") into the filters m has now: call
 * after fr_model_set_row_policy. A filter the checkpoint lacks starts empty; one stored with
 * another width is refused. 0, or -1 with a message. */
int fr_ckpt_load_admission(fr_ckpt *c, fr_model *m, char *err, size_t errlen);
typedef int (*fr_ckpt_kv_fn)(const char *key, size_t key_len, const void *val, size_t val_len, void *ctx);
/* fn gets the id and the entry, in id order. Stops on, and returns, fn's non-zero value; -1 on a
 * read error. Same for the other foreach functions. */
int fr_ckpt_foreach_join_entry(fr_ckpt *c, fr_ckpt_kv_fn fn, void *ctx);
/* The committed entry of one id (what the joiner reads back for an entry it dropped from memory):
 * its length (copying at most cap bytes), -1 when absent, -2 on a read error. Sees every commit
 * of this handle at once (no flush needed). */
long fr_ckpt_get_join_entry(fr_ckpt *c, const char *id, size_t id_len, void *buf, size_t cap);
/* fn gets the id (the key without its "P") and the stored record of every prior, in id order. */
int fr_ckpt_foreach_prior(fr_ckpt *c, fr_ckpt_kv_fn fn, void *ctx);
/* Returns the blob length (copying at most cap bytes), or -1 when absent. */
long fr_ckpt_get_join_meta(fr_ckpt *c, void *buf, size_t cap);
long fr_ckpt_get_blob(fr_ckpt *c, const char *name, void *buf, size_t cap);
/* fn gets every blob whose name starts with prefix, in name order: the name (without a NUL) and the
 * value. Stops on, and returns, fn's non-zero value; -1 on a read error. */
int fr_ckpt_foreach_blob(fr_ckpt *c, const char *prefix, fr_ckpt_kv_fn fn, void *ctx);
/* fn gets every source's stored next offset. A value that is not 8 bytes or a key without a source
 * name is refused: -1 with a message naming the key in err (also on a read error). fn's own
 * non-zero value is returned as it is (err untouched: fn reports its reason itself). */
int fr_ckpt_foreach_offset(fr_ckpt *c, int (*fn)(const char *source, int64_t next_offset, void *ctx), void *ctx,
                           char *err, size_t errlen);

/* Decoding one stored part, without RocksDB: fr_ckpt_load_model reads the parts and calls these;
 * tests/fuzz calls them directly. Each returns 0 (or the model), or -1 (NULL) with a message naming
 * the part. Stored bytes are untrusted: every value is checked (sizes, ranges, finiteness).
 * fr_ckpt_decode_meta: the meta ("M" value) -> a new model of the stored config and version (free
 * it with fr_model_free) and in *rows a malloc'ed array of the row count the meta records per table
 * (fr_model_table_count entries; the caller frees it). */
fr_model *fr_ckpt_decode_meta(const void *bytes, size_t len, size_t **rows, char *err, size_t errlen);
/* The dense value ("D": parameters then optimizer state) into m. */
int fr_ckpt_decode_dense(fr_model *m, const void *bytes, size_t len, char *err, size_t errlen);
/* The blob "lifecycle" -> the model's clock in ms (>= 0). */
int fr_ckpt_decode_lifecycle(const void *bytes, size_t len, int64_t *clock, char *err, size_t errlen);
/* One embedding row ("E" key and value) into m, whose version bounds the row's; clock (-1: none)
 * bounds its last-update stamp. *table receives its table. */
int fr_ckpt_decode_row(fr_model *m, int64_t clock, const void *key, size_t key_len, const void *val,
                       size_t val_len, uint32_t *table, char *err, size_t errlen);

/* Every key and value in key order (for `freshet inspect` and its digest); the join family's
 * entries are given as "J" + id, between the "E" and "K" keys. */
int fr_ckpt_foreach(fr_ckpt *c, fr_ckpt_kv_fn fn, void *ctx);
/* Digest of the logical content: XXH3-128 over every key and value in key order, each preceded by
 * its length as u64 LE; hex receives 32 lowercase hex digits (canonical big-endian XXH128) and a
 * NUL. Returns 0, or -1 on a read error. */
int fr_ckpt_digest(fr_ckpt *c, char hex[33]);

#endif
