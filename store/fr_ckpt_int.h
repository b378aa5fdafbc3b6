/* fr_ckpt_int: what the checkpoint engine (fr_ckpt.c) shares with the model's record format
 * (fr_ckpt_model.c): the key prefixes, the handles' structures and the batch and read helpers.
 * Private to store/; nothing outside it includes this. */
#ifndef FR_CKPT_INT_H
#define FR_CKPT_INT_H

#include <rocksdb/c.h>
#include <stddef.h>

#include "fr_ckpt.h"

/* Key prefixes (one byte each; docs/checkpoint-format.md). */
#define KEY_MARKER '#'
#define KEY_BLOB 'C'
#define KEY_DENSE 'D'
#define KEY_ROW 'E'
#define KEY_JOIN 'J'
#define KEY_JOIN_META 'K'
#define KEY_META 'M'
#define KEY_OFFSET 'O'
#define KEY_PRIOR 'P'

enum { ROW_KEY_LEN = 1 + 4 + 8, MARKER_LEN = 8, ROCKSDB_WAL_TOLERATE_TAIL = 0, COMMIT_RECORD_LEN = 16 };

struct fr_ckpt {
    char *dir;
    int commit_fd; /* FRESHET-COMMITTED, open for rewriting (read-write handles), else -1 */
    rocksdb_t *db;
    rocksdb_options_t *opts;
    /* The join state's column family: its own options (a skiplist memtable, so the spilled
     * entries fr_ckpt_get_join_entry reads back are found without flushing); NULL only while
     * opening a directory of an older format, which read_marker then refuses. */
    rocksdb_options_t *join_opts;
    rocksdb_column_family_handle_t *cf_default, *cf_join;
    rocksdb_writeoptions_t *wo;
    rocksdb_readoptions_t *ro;
    int readonly;
    int unflushed; /* the memtable may hold writes: flush before reading (see prepare_read) */
};

struct fr_ckpt_batch {
    fr_ckpt *c;
    rocksdb_writebatch_t *wb;
    fr_ckpt_batch_stats st;
    int failed;
    char failure[256];
    /* scratch buffers reused across puts, owned by the batch */
    unsigned char *key;
    size_t key_cap;
    unsigned char *val;
    size_t val_cap;
};

/* The batch's first failure: kept (later ones are dropped) and reported at commit. Returns -1. */
int ckpt_batch_fail(fr_ckpt_batch *b, const char *msg);
/* Grows *buf to at least need bytes (doubling); 0, or -1 out of memory (*buf unchanged). */
int ckpt_grow(unsigned char **buf, size_t *cap, size_t need);
void ckpt_batch_put(fr_ckpt_batch *b, const void *k, size_t klen, const void *v, size_t vlen);
void ckpt_batch_delete(fr_ckpt_batch *b, const void *k, size_t klen);
/* fn for every key of the default family starting with prefix, in key order (fr_ckpt_foreach's
 * contract). */
int ckpt_scan(fr_ckpt *c, const char *prefix, size_t prefix_len, fr_ckpt_kv_fn fn, void *ctx);
/* A value (free with rocksdb_free), or NULL when absent (*status 0) or on a read error (*status -1,
 * the message in err when err is not NULL). */
char *ckpt_get_raw(fr_ckpt *c, const char *k, size_t kl, size_t *len, int *status, char *err, size_t errlen);

#endif
