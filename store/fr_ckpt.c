/* fr_ckpt: the RocksDB engine (open, lock, marker, commit record, batches, scans, digest); the
 * model's records are fr_ckpt_model.c. See fr_ckpt.h and docs/checkpoint-format.md. */
#include "fr_ckpt.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <rocksdb/c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "fr_bytes.h"
#include "fr_ckpt_int.h"

static const char MARKER_MAGIC[4] = {'F', 'R', 'C', '1'};
/* The commit record beside RocksDB's files (see read_commit_record). */
static const char COMMIT_FILE[] = "FRESHET-COMMITTED";
static const char COMMIT_MAGIC[4] = {'F', 'R', 'S', '1'};
static const char CF_JOIN_NAME[] = "join";
static const char *const STOP = "checkpoint not written; the daemon must stop consuming";

/* ---- open / close ------------------------------------------------------------------------- */

static void ckpt_free(fr_ckpt *c)
{
    if (!c) return;
    if (c->cf_default) rocksdb_column_family_handle_destroy(c->cf_default);
    if (c->cf_join) rocksdb_column_family_handle_destroy(c->cf_join);
    if (c->db) rocksdb_close(c->db);
    if (c->opts) rocksdb_options_destroy(c->opts);
    if (c->join_opts) rocksdb_options_destroy(c->join_opts);
    if (c->wo) rocksdb_writeoptions_destroy(c->wo);
    if (c->ro) rocksdb_readoptions_destroy(c->ro);
    if (c->commit_fd >= 0) close(c->commit_fd);
    free(c->dir);
    free(c);
}

void fr_ckpt_close(fr_ckpt *c) { ckpt_free(c); }

/* Reads on a read-write handle first flush the memtable once after writes, so they hit sorted
 * SST files instead of the unsorted vector memtable. A flush error is ignored here: the read
 * still sees the data (from the memtable), only slower; commit reports write errors. */
static void prepare_read(fr_ckpt *c)
{
    if (c->readonly || !c->unflushed) return;
    rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();
    if (!fo) return;
    rocksdb_flushoptions_set_wait(fo, 1);
    char *rerr = NULL;
    rocksdb_flush(c->db, fo, &rerr);
    rocksdb_flushoptions_destroy(fo);
    if (rerr)
        rocksdb_free(rerr);
    else
        c->unflushed = 0;
}

/* Returns the marker state: 1 valid, 0 absent, -1 unreadable/foreign (message in err). */
static int read_marker(fr_ckpt *c, char *err, size_t errlen)
{
    char *rerr = NULL;
    size_t len = 0;
    const char k = KEY_MARKER;
    prepare_read(c);
    char *v = rocksdb_get(c->db, c->ro, &k, 1, &len, &rerr);
    if (rerr) {
        snprintf(err, errlen, "checkpoint: reading the marker failed: %s", rerr);
        rocksdb_free(rerr);
        return -1;
    }
    if (!v) return 0;
    int rc = 1;
    if (len != MARKER_LEN || memcmp(v, MARKER_MAGIC, 4) != 0) {
        snprintf(err, errlen, "checkpoint: the directory holds a RocksDB database that is not a freshet checkpoint");
        rc = -1;
    } else {
        uint32_t ver = fr_get_u32le((const unsigned char *)v + 4);
        if (ver == 2) {
            /* Not migrated: its counters, metrics, mini-batch, guard and sources are the writing
             * host's structs, which no later build can read for sure. */
            snprintf(err, errlen,
                     "checkpoint: %s holds format version 2 (counters, metrics, batch, guard and sources stored as "
                     "raw structs of the host that wrote them); this build reads version %d and does not migrate "
                     "it: replay the input log into a new checkpoint.dir (freshet replay FILE --state NEW_DIR), or "
                     "keep running the build that wrote it",
                     c->dir, FR_CKPT_FORMAT_VERSION);
            rc = -1;
        } else if (ver != FR_CKPT_FORMAT_VERSION) {
            snprintf(err, errlen,
                     "checkpoint: format version %" PRIu32 " but this build reads version %d; use a matching "
                     "freshet build or start from an empty checkpoint directory",
                     ver, FR_CKPT_FORMAT_VERSION);
            rc = -1;
        }
    }
    rocksdb_free(v);
    return rc;
}

/* 1 when the store holds any key (in either family). A directory with keys but no marker is not
 * an empty one: it is a damaged checkpoint, and starting afresh would write over it. */
static int holds_any_key(fr_ckpt *c)
{
    rocksdb_column_family_handle_t *cfs[2] = {c->cf_default, c->cf_join};
    int any = 0;
    prepare_read(c);
    for (int i = 0; i < 2 && !any; i++) {
        if (!cfs[i]) continue;
        rocksdb_iterator_t *it = rocksdb_create_iterator_cf(c->db, c->ro, cfs[i]);
        if (!it) return 1; /* cannot tell: treat as not empty, which refuses */
        rocksdb_iter_seek_to_first(it);
        any = rocksdb_iter_valid(it);
        char *rerr = NULL;
        rocksdb_iter_get_error(it, &rerr);
        if (rerr) {
            rocksdb_free(rerr);
            any = 1;
        }
        rocksdb_iter_destroy(it);
    }
    return any;
}

/* ---- the commit record --------------------------------------------------------------------
 * RocksDB cannot tell a write-ahead log cut short (truncated, deleted, a block lost) from one whose
 * last write was torn by a crash: both just end early. So every successful commit rewrites a small
 * file beside RocksDB's, FRESHET-COMMITTED: "FRS1", RocksDB's sequence number after the commit (u64
 * LE), XXH32 of those 12 bytes (u32 LE). An open refuses a database that recovered to an earlier
 * sequence number: it lost checkpoints that had been acknowledged. A torn write never trips it: a
 * commit is acknowledged only after the WAL fsync, and the record is written after that.
 *
 * The record is rewritten in place (16 bytes at offset 0 of an allocated block: old or new after a
 * power cut, never a mix) and not fsynced per commit, which would double the commit's cost. It
 * reaches the disk after the log it describes (it changes only after the log's fsync), so it is
 * never ahead of the log; after a power cut it may lag by the commits of the last seconds, which
 * only weakens the check for those. It is created durably once, at open. */

static int commit_path(const char *dir, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s/%s", dir, COMMIT_FILE);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

/* 1 and *seq when the record is there, 0 when absent (a new directory, or one written before the
 * record existed), -1 with a message when it cannot be read or is damaged. */
static int read_commit_record(const char *dir, uint64_t *seq, char *err, size_t errlen)
{
    char path[4096];
    if (commit_path(dir, path, sizeof path) != 0) {
        snprintf(err, errlen, "checkpoint: directory path too long");
        return -1;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) return 0;
        snprintf(err, errlen, "checkpoint: cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    unsigned char buf[COMMIT_RECORD_LEN + 1];
    ssize_t n = read(fd, buf, sizeof buf);
    close(fd);
    if (n != COMMIT_RECORD_LEN || memcmp(buf, COMMIT_MAGIC, 4) != 0 || fr_get_u32le(buf + 12) != XXH32(buf, 12, 0)) {
        snprintf(err, errlen,
                 "checkpoint: %s is damaged (%zd bytes; a valid one has %d, with a matching checksum). It records "
                 "the last committed checkpoint; without it a lost one cannot be detected. Restore the directory "
                 "from a backup, or, if the RocksDB files are known to be intact, delete that file to accept them "
                 "as they are",
                 path, n, COMMIT_RECORD_LEN);
        return -1;
    }
    *seq = fr_get_u64le(buf + 4);
    return 1;
}

static int put_commit_record(fr_ckpt *c, uint64_t seq)
{
    unsigned char buf[COMMIT_RECORD_LEN];
    memcpy(buf, COMMIT_MAGIC, 4);
    fr_put_u64le(buf + 4, seq);
    fr_put_u32le(buf + 12, (uint32_t)XXH32(buf, 12, 0));
    return pwrite(c->commit_fd, buf, sizeof buf, 0) == (ssize_t)sizeof buf ? 0 : -1;
}

/* Opens the record for rewriting and brings it up to what was recovered, durably: the file and
 * its directory entry are fsynced once here, so a power cut cannot leave it empty. */
static int open_commit_record(fr_ckpt *c, uint64_t recovered, char *err, size_t errlen)
{
    char path[4096];
    if (commit_path(c->dir, path, sizeof path) != 0) {
        snprintf(err, errlen, "checkpoint: directory path too long");
        return -1;
    }
    c->commit_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    int ok = c->commit_fd >= 0 && put_commit_record(c, recovered) == 0 && fsync(c->commit_fd) == 0;
    if (ok) {
        int dfd = open(c->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        ok = dfd >= 0 && fsync(dfd) == 0;
        if (dfd >= 0) close(dfd);
    }
    if (!ok) {
        snprintf(err, errlen, "checkpoint: cannot write %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

static fr_ckpt *ckpt_open(const char *dir, int readonly, char *err, size_t errlen)
{
    if (!dir || !dir[0]) {
        snprintf(err, errlen, "checkpoint: no directory configured");
        return NULL;
    }
    fr_ckpt *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "checkpoint: out of memory");
        return NULL;
    }
    c->readonly = readonly;
    c->commit_fd = -1;
    c->dir = strdup(dir);
    c->opts = rocksdb_options_create();
    c->wo = rocksdb_writeoptions_create();
    c->ro = rocksdb_readoptions_create();
    c->join_opts = rocksdb_options_create();
    if (!c->dir || !c->opts || !c->wo || !c->ro || !c->join_opts) {
        snprintf(err, errlen, "checkpoint: out of memory");
        ckpt_free(c);
        return NULL;
    }
    /* The recovery mode below tolerates an incomplete last record in every log, not only the
     * newest: a log that was closed (one family's memtable flushed, the others' rows still in it)
     * and later cut short would open with a hole in the middle. With this option the MANIFEST
     * records the size of every closed log and an open with one shorter or missing fails; the live
     * log is the commit record's (read_commit_record). The C API has no setter for it. */
    char *oerr = NULL;
    rocksdb_get_options_from_string(c->join_opts, "track_and_verify_wals_in_manifest=true", c->opts, &oerr);
    if (oerr) {
        snprintf(err, errlen, "checkpoint: RocksDB refused track_and_verify_wals_in_manifest: %s", oerr);
        rocksdb_free(oerr);
        ckpt_free(c);
        return NULL;
    }
    /* Before RocksDB replays its log: a daemon committing meanwhile (read-only opens) can only make
     * the log longer than the record says, never shorter. */
    uint64_t committed = 0;
    int have_committed = read_commit_record(dir, &committed, err, errlen);
    if (have_committed < 0) {
        ckpt_free(c);
        return NULL;
    }
    rocksdb_options_set_create_if_missing(c->opts, !readonly);
    if (!readonly) {
        /* A vector memtable appends a batch in O(1) per entry and sorts once when flushed: a commit
         * of 100k rows takes ~30 ms instead of ~250 ms with the skiplist (docs/checkpoint-format.md).
         * Point reads on it are slow, so prepare_read flushes before the handle reads what it wrote.
         * Read-only handles keep the default skiplist (their WAL replay stays in memory). */
        rocksdb_options_set_memtable_vector_rep(c->opts);
        rocksdb_options_set_allow_concurrent_memtable_write(c->opts, 0);
        c->unflushed = 1;
    }
    /* WAL recovery: kTolerateCorruptedTailRecords. A write torn by a crash, a kill -9 or a full disk
     * ends the log with an incomplete record; that batch was never acknowledged (commit returns
     * after the fsync), so dropping it restarts from the previous checkpoint, as it must. Anything
     * else (a checksum mismatch anywhere, a damaged record in the middle) refuses the open.
     * kPointInTimeRecovery (RocksDB's default) would instead stop silently at the first damaged
     * record and drop every later checkpoint; kAbsoluteConsistency would refuse the torn tail
     * that every kill -9 during a commit can leave. A log cut short looks like a torn tail to
     * RocksDB: the MANIFEST's log sizes (above) and the commit record catch that. */
    rocksdb_options_set_wal_recovery_mode(c->opts, ROCKSDB_WAL_TOLERATE_TAIL);
    /* Synced writes: a commit returns once the batch is on disk, so an acknowledged checkpoint (and
     * the offsets it stores) survives a power cut, not only a crash of the process. */
    rocksdb_writeoptions_set_sync(c->wo, 1);
    rocksdb_options_set_create_missing_column_families(c->opts, !readonly);
    /* The join column family keeps RocksDB's default skiplist memtable: entries dropped from the
     * joiner's memory are read back one by one between checkpoints, which a vector memtable would
     * make a linear scan (or a flush per read). */
    rocksdb_options_set_wal_recovery_mode(c->join_opts, ROCKSDB_WAL_TOLERATE_TAIL);
    /* A whole-key bloom filter (10 bits per key, ~1% false positives): ids are hashed, so every
     * level-0 file spans the whole key range, and a point read without filters searches each of
     * them. With it a read of a spilled entry touches about one data block. */
    rocksdb_block_based_table_options_t *bbo = rocksdb_block_based_options_create();
    if (bbo) {
        rocksdb_block_based_options_set_filter_policy(bbo, rocksdb_filterpolicy_create_bloom_full(10));
        rocksdb_options_set_block_based_table_factory(c->join_opts, bbo);
        rocksdb_block_based_options_destroy(bbo);
    }
    char *rerr = NULL;
    /* A directory of format 1 has no "join" column family: open only "default" so that
     * read_marker refuses it with the version message instead of RocksDB's. */
    size_t ncf = 0;
    int with_join = 1;
    char **cfs = rocksdb_list_column_families(c->opts, dir, &ncf, &rerr);
    if (rerr) {
        rocksdb_free(rerr); /* no database yet */
        rerr = NULL;
    } else {
        with_join = 0;
        for (size_t i = 0; i < ncf; i++) with_join |= strcmp(cfs[i], CF_JOIN_NAME) == 0;
    }
    /* The list is allocated even on error (empty). */
    if (cfs) rocksdb_list_column_families_destroy(cfs, ncf);
    const char *names[2] = {"default", CF_JOIN_NAME};
    const rocksdb_options_t *cfopts[2] = {c->opts, c->join_opts};
    rocksdb_column_family_handle_t *h[2] = {NULL, NULL};
    const int n = with_join ? 2 : 1;
    c->db = readonly ? rocksdb_open_for_read_only_column_families(c->opts, dir, n, names, cfopts, h, 0, &rerr)
                     : rocksdb_open_column_families(c->opts, dir, n, names, cfopts, h, &rerr);
    c->cf_default = h[0];
    c->cf_join = h[1];
    if (rerr || !c->db) {
        const char *why = rerr ? rerr : "unknown error";
        snprintf(err, errlen, "checkpoint: cannot open RocksDB at %s: %s%s", dir, why,
                 strstr(why, "lock") ? " (is another freshet daemon using this directory? a read-only open "
                                       "(fr_ckpt_open_readonly) can read it meanwhile)"
                 : strstr(why, "Corruption")
                     ? " (the checkpoint is damaged, e.g. its write-ahead log *.log; freshet does not fall back to "
                       "an older state silently: restore the directory from a backup, or start from an empty "
                       "checkpoint.dir and replay the input)"
                     : "");
        rocksdb_free(rerr);
        ckpt_free(c);
        return NULL;
    }
    uint64_t recovered = rocksdb_get_latest_sequence_number(c->db);
    if (have_committed && recovered < committed) {
        snprintf(err, errlen,
                 "checkpoint: %s lost committed checkpoints: RocksDB recovered up to sequence number %" PRIu64
                 " but checkpoints up to %" PRIu64 " were committed (its write-ahead log *.log was truncated, deleted "
                 "or damaged). Refusing to go back in time silently: restore the directory from a backup, or start "
                 "from an empty checkpoint.dir; to accept the older state deliberately, delete %s/%s",
                 dir, recovered, committed, dir, COMMIT_FILE);
        ckpt_free(c);
        return NULL;
    }
    int marker = read_marker(c, err, errlen);
    if (marker == 0 && holds_any_key(c)) {
        snprintf(err, errlen,
                 "checkpoint: %s holds data but no marker key \"#\" (damaged, or not written by freshet); "
                 "refusing to start afresh over it: restore it from a backup or point checkpoint.dir at an empty "
                 "directory",
                 dir);
        marker = -1;
    }
    if (marker == 1 && !c->cf_join) {
        snprintf(err, errlen, "checkpoint: the directory has no \"join\" column family (written by another "
                              "build?); start from an empty checkpoint directory");
        marker = -1;
    }
    if (marker == 0 && !c->cf_join && !readonly) {
        /* An empty database without the family (never a checkpoint): add it. */
        c->cf_join = rocksdb_create_column_family(c->db, c->join_opts, CF_JOIN_NAME, &rerr);
        if (rerr) {
            snprintf(err, errlen, "checkpoint: cannot create the join column family: %s", rerr);
            rocksdb_free(rerr);
            marker = -1;
        }
    }
    if (marker >= 0 && !readonly && open_commit_record(c, recovered, err, errlen) != 0) marker = -1;
    if (marker < 0) {
        ckpt_free(c);
        return NULL;
    }
    return c;
}

fr_ckpt *fr_ckpt_open(const char *dir, char *err, size_t errlen) { return ckpt_open(dir, 0, err, errlen); }
fr_ckpt *fr_ckpt_open_readonly(const char *dir, char *err, size_t errlen) { return ckpt_open(dir, 1, err, errlen); }

int fr_ckpt_exists(fr_ckpt *c)
{
    char err[512];
    return c && read_marker(c, err, sizeof err) == 1;
}

/* ---- batches ------------------------------------------------------------------------------ */

int ckpt_batch_fail(fr_ckpt_batch *b, const char *msg)
{
    if (!b->failed) snprintf(b->failure, sizeof b->failure, "%s", msg);
    b->failed = 1;
    return -1;
}

int ckpt_grow(unsigned char **buf, size_t *cap, size_t need)
{
    if (need <= *cap) return 0;
    size_t n = *cap ? *cap : 64;
    while (n < need) n *= 2;
    unsigned char *p = realloc(*buf, n);
    if (!p) return -1;
    *buf = p;
    *cap = n;
    return 0;
}

/* Builds prefix + bytes in b->key. */
static int make_key(fr_ckpt_batch *b, char prefix, const void *bytes, size_t len)
{
    if (ckpt_grow(&b->key, &b->key_cap, len + 1) != 0) return ckpt_batch_fail(b, "out of memory building a key");
    b->key[0] = (unsigned char)prefix;
    if (len) memcpy(b->key + 1, bytes, len);
    return 0;
}

void ckpt_batch_put(fr_ckpt_batch *b, const void *k, size_t klen, const void *v, size_t vlen)
{
    rocksdb_writebatch_put(b->wb, k, klen, v, vlen);
    b->st.entries++;
}

void ckpt_batch_delete(fr_ckpt_batch *b, const void *k, size_t klen)
{
    rocksdb_writebatch_delete(b->wb, k, klen);
    b->st.entries++;
}

fr_ckpt_batch *fr_ckpt_begin(fr_ckpt *c)
{
    if (!c) return NULL;
    fr_ckpt_batch *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    b->c = c;
    b->wb = rocksdb_writebatch_create();
    if (!b->wb) {
        free(b);
        return NULL;
    }
    unsigned char marker[MARKER_LEN];
    memcpy(marker, MARKER_MAGIC, 4);
    fr_put_u32le(marker + 4, FR_CKPT_FORMAT_VERSION);
    const char k = KEY_MARKER;
    ckpt_batch_put(b, &k, 1, marker, sizeof marker);
    return b;
}

void fr_ckpt_abort(fr_ckpt_batch *b)
{
    if (!b) return;
    rocksdb_writebatch_destroy(b->wb);
    free(b->key);
    free(b->val);
    free(b);
}

const char *fr_ckpt_batch_error(const fr_ckpt_batch *b) { return b && b->failed ? b->failure : NULL; }

void fr_ckpt_batch_get_stats(const fr_ckpt_batch *b, fr_ckpt_batch_stats *s)
{
    *s = b->st;
    size_t size = 0;
    rocksdb_writebatch_data(b->wb, &size);
    s->bytes = size;
}

int fr_ckpt_put_join_entry(fr_ckpt_batch *b, const char *id, size_t id_len, const void *bytes, size_t len)
{
    if (!b || b->failed) return -1;
    if (id_len == 0) return ckpt_batch_fail(b, "join entry with an empty id");
    if (!b->c->cf_join) return ckpt_batch_fail(b, "the checkpoint has no join column family (read-only open)");
    /* The key is the id itself: the daemon reads spilled entries back by id. */
    if (len == 0) {
        rocksdb_writebatch_delete_cf(b->wb, b->c->cf_join, id, id_len);
        b->st.join_deletes++;
    } else {
        rocksdb_writebatch_put_cf(b->wb, b->c->cf_join, id, id_len, bytes, len);
        b->st.join_puts++;
    }
    b->st.entries++;
    return 0;
}

int fr_ckpt_put_join_meta(fr_ckpt_batch *b, const void *bytes, size_t len)
{
    if (!b || b->failed) return -1;
    const char k = KEY_JOIN_META;
    ckpt_batch_put(b, &k, 1, len ? bytes : "", len);
    return 0;
}

int fr_ckpt_put_offset(fr_ckpt_batch *b, const char *source, int64_t next_offset)
{
    if (!b || b->failed) return -1;
    if (!source || !source[0]) return ckpt_batch_fail(b, "offset for a source with an empty name");
    if (make_key(b, KEY_OFFSET, source, strlen(source)) != 0) return -1;
    unsigned char v[8];
    fr_put_u64le(v, (uint64_t)next_offset);
    ckpt_batch_put(b, b->key, strlen(source) + 1, v, sizeof v);
    return 0;
}

int fr_ckpt_put_prior(fr_ckpt_batch *b, const char *id, size_t id_len, const void *bytes, size_t len)
{
    if (!b || b->failed) return -1;
    if (id_len == 0) return ckpt_batch_fail(b, "prior with an empty impression id");
    if (make_key(b, KEY_PRIOR, id, id_len) != 0) return -1;
    if (len == 0)
        ckpt_batch_delete(b, b->key, id_len + 1);
    else
        ckpt_batch_put(b, b->key, id_len + 1, bytes, len);
    return 0;
}

int fr_ckpt_put_blob(fr_ckpt_batch *b, const char *name, const void *bytes, size_t len)
{
    if (!b || b->failed) return -1;
    if (!name || !name[0]) return ckpt_batch_fail(b, "blob with an empty name");
    if (make_key(b, KEY_BLOB, name, strlen(name)) != 0) return -1;
    ckpt_batch_put(b, b->key, strlen(name) + 1, len ? bytes : "", len);
    return 0;
}

int fr_ckpt_delete_blob(fr_ckpt_batch *b, const char *name)
{
    if (!b || b->failed) return -1;
    if (!name || !name[0]) return ckpt_batch_fail(b, "blob with an empty name");
    if (make_key(b, KEY_BLOB, name, strlen(name)) != 0) return -1;
    ckpt_batch_delete(b, b->key, strlen(name) + 1);
    return 0;
}

int fr_ckpt_commit(fr_ckpt_batch *b, char *err, size_t errlen)
{
    if (!b) {
        snprintf(err, errlen, "%s: no batch (out of memory in fr_ckpt_begin?)", STOP);
        return -1;
    }
    int rc = 0;
    if (b->failed) {
        snprintf(err, errlen, "%s: %s", STOP, b->failure);
        rc = -1;
    } else {
        char *rerr = NULL;
        rocksdb_write(b->c->db, b->c->wo, b->wb, &rerr);
        b->c->unflushed = 1;
        if (rerr) {
            snprintf(err, errlen, "RocksDB write failed: %s; %s (the previous checkpoint is intact; free disk "
                                  "space or fix the directory, then restart)",
                     rerr, STOP);
            rocksdb_free(rerr);
            rc = -1;
        } else if (put_commit_record(b->c, rocksdb_get_latest_sequence_number(b->c->db)) != 0) {
            snprintf(err, errlen, "the checkpoint was written but its commit record %s/%s could not be: %s; %s",
                     b->c->dir, COMMIT_FILE, strerror(errno), STOP);
            rc = -1;
        }
    }
    fr_ckpt_abort(b);
    return rc;
}

/* ---- reading ------------------------------------------------------------------------------ */

/* Calls fn for every key starting with prefix (all keys when prefix_len is 0), in key order.
 * fn gets the full key. Returns fn's first non-zero value, -1 on a read error, else 0. */
static int scan_cf(fr_ckpt *c, rocksdb_column_family_handle_t *cf, const char *prefix, size_t prefix_len,
                   fr_ckpt_kv_fn fn, void *ctx)
{
    prepare_read(c);
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(c->db, c->ro, cf);
    if (!it) return -1;
    if (prefix_len)
        rocksdb_iter_seek(it, prefix, prefix_len);
    else
        rocksdb_iter_seek_to_first(it);
    int rc = 0;
    for (; rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t kl, vl;
        const char *k = rocksdb_iter_key(it, &kl);
        if (prefix_len && (kl < prefix_len || memcmp(k, prefix, prefix_len) != 0)) break;
        const char *v = rocksdb_iter_value(it, &vl);
        rc = fn(k, kl, v, vl, ctx);
        if (rc) break;
    }
    if (rc == 0) {
        char *rerr = NULL;
        rocksdb_iter_get_error(it, &rerr);
        if (rerr) {
            rocksdb_free(rerr);
            rc = -1;
        }
    }
    rocksdb_iter_destroy(it);
    return rc;
}

int ckpt_scan(fr_ckpt *c, const char *prefix, size_t prefix_len, fr_ckpt_kv_fn fn, void *ctx)
{
    return scan_cf(c, c->cf_default, prefix, prefix_len, fn, ctx);
}

/* The join family's entries as "J" + id, so that listings and the digest see one key space, in
 * the order of format 1 (where they lived in "default"). */
typedef struct {
    fr_ckpt_kv_fn fn;
    void *ctx;
    unsigned char *key;
    size_t cap;
} join_as_j_ctx;

static int join_as_j_cb(const char *k, size_t kl, const void *v, size_t vl, void *ctx)
{
    join_as_j_ctx *a = ctx;
    if (ckpt_grow(&a->key, &a->cap, kl + 1) != 0) return -1;
    a->key[0] = KEY_JOIN;
    memcpy(a->key + 1, k, kl);
    return a->fn((const char *)a->key, kl + 1, v, vl, a->ctx);
}

typedef struct {
    fr_ckpt *c;
    fr_ckpt_kv_fn fn;
    void *ctx;
    int join_done;
} merged_ctx;

static int scan_join_as_j(merged_ctx *m)
{
    m->join_done = 1;
    if (!m->c->cf_join) return 0;
    join_as_j_ctx a = {m->fn, m->ctx, NULL, 0};
    int rc = scan_cf(m->c, m->c->cf_join, NULL, 0, join_as_j_cb, &a);
    free(a.key);
    return rc;
}

static int merged_cb(const char *k, size_t kl, const void *v, size_t vl, void *ctx)
{
    merged_ctx *m = ctx;
    if (!m->join_done && kl > 0 && (unsigned char)k[0] > KEY_JOIN) {
        int rc = scan_join_as_j(m);
        if (rc) return rc;
    }
    return m->fn(k, kl, v, vl, m->ctx);
}

int fr_ckpt_foreach(fr_ckpt *c, fr_ckpt_kv_fn fn, void *ctx)
{
    if (!c || !fn) return -1;
    merged_ctx m = {c, fn, ctx, 0};
    int rc = ckpt_scan(c, NULL, 0, merged_cb, &m);
    if (rc == 0 && !m.join_done) rc = scan_join_as_j(&m);
    return rc;
}

int fr_ckpt_foreach_join_entry(fr_ckpt *c, fr_ckpt_kv_fn fn, void *ctx)
{
    if (!c || !fn) return -1;
    if (!c->cf_join) return 0;
    return scan_cf(c, c->cf_join, NULL, 0, fn, ctx);
}

typedef struct {
    fr_ckpt_kv_fn fn;
    void *ctx;
} strip_ctx;

static int strip_prefix_cb(const char *k, size_t kl, const void *v, size_t vl, void *ctx)
{
    const strip_ctx *s = ctx;
    return s->fn(k + 1, kl - 1, v, vl, s->ctx);
}

int fr_ckpt_foreach_prior(fr_ckpt *c, fr_ckpt_kv_fn fn, void *ctx)
{
    if (!c || !fn) return -1;
    const char p = KEY_PRIOR;
    return ckpt_scan(c, &p, 1, strip_prefix_cb, &(strip_ctx){fn, ctx});
}

long fr_ckpt_get_join_entry(fr_ckpt *c, const char *id, size_t id_len, void *buf, size_t cap)
{
    if (!c || !id || !c->cf_join) return -2;
    /* No prepare_read: this family's skiplist memtable answers point reads as they are. */
    char *rerr = NULL;
    size_t len = 0;
    char *v = rocksdb_get_cf(c->db, c->ro, c->cf_join, id, id_len, &len, &rerr);
    if (rerr) {
        rocksdb_free(rerr);
        return -2;
    }
    if (!v) return -1;
    if (buf && cap) memcpy(buf, v, len < cap ? len : cap);
    rocksdb_free(v);
    return (long)len;
}

typedef struct {
    int (*fn)(const char *source, int64_t next_offset, void *ctx);
    void *ctx;
    char *err;
    size_t errlen;
    int fn_failed; /* the non-zero return came from fn */
} offset_ctx;

static int offset_cb(const char *k, size_t kl, const void *v, size_t vl, void *ctx)
{
    offset_ctx *o = ctx;
    /* The source name is the rest of the key: it must be a non-empty string (a NUL inside would
     * make two keys one source). */
    if (vl != 8 || kl < 2 || memchr(k + 1, '\0', kl - 1)) {
        snprintf(o->err, o->errlen, "checkpoint corrupt: offset key \"O%.*s\" has a value of %zu bytes (expected 8)%s",
                 (int)(kl > 1 && kl < 200 ? kl - 1 : 0), k + 1, vl,
                 kl < 2 ? " and no source name" : vl == 8 ? " and a NUL byte in its source name" : "");
        return -1;
    }
    char *name = malloc(kl);
    if (!name) {
        snprintf(o->err, o->errlen, "checkpoint: out of memory reading the offsets");
        return -1;
    }
    memcpy(name, k + 1, kl - 1);
    name[kl - 1] = '\0';
    int rc = o->fn(name, (int64_t)fr_get_u64le(v), o->ctx);
    free(name);
    o->fn_failed = rc != 0;
    return rc;
}

int fr_ckpt_foreach_offset(fr_ckpt *c, int (*fn)(const char *source, int64_t next_offset, void *ctx), void *ctx,
                           char *err, size_t errlen)
{
    if (!c || !fn) return -1;
    offset_ctx o = {fn, ctx, err, errlen, 0};
    err[0] = '\0';
    const char p = KEY_OFFSET;
    int rc = ckpt_scan(c, &p, 1, offset_cb, &o);
    if (rc != 0 && !o.fn_failed && !err[0])
        snprintf(err, errlen, "checkpoint: reading the offsets (keys \"O\") failed (RocksDB read error)");
    return rc;
}

/* Gets a value; returns its malloc'ed copy (rocksdb_free) or NULL when absent or on error
 * (*status = 0 absent, -1 error). */
char *ckpt_get_raw(fr_ckpt *c, const char *k, size_t kl, size_t *len, int *status, char *err, size_t errlen)
{
    char *rerr = NULL;
    prepare_read(c);
    char *v = rocksdb_get(c->db, c->ro, k, kl, len, &rerr);
    *status = 0;
    if (rerr) {
        if (err) snprintf(err, errlen, "RocksDB read failed: %s", rerr);
        rocksdb_free(rerr);
        *status = -1;
        return NULL;
    }
    return v;
}

static long get_copy(fr_ckpt *c, const char *k, size_t kl, void *buf, size_t cap)
{
    size_t len = 0;
    int st;
    char *v = ckpt_get_raw(c, k, kl, &len, &st, NULL, 0);
    if (!v) return -1;
    if (buf && cap) memcpy(buf, v, len < cap ? len : cap);
    rocksdb_free(v);
    return (long)len;
}

long fr_ckpt_get_join_meta(fr_ckpt *c, void *buf, size_t cap)
{
    if (!c) return -1;
    const char k = KEY_JOIN_META;
    return get_copy(c, &k, 1, buf, cap);
}

long fr_ckpt_get_blob(fr_ckpt *c, const char *name, void *buf, size_t cap)
{
    if (!c || !name) return -1;
    size_t n = strlen(name);
    char *k = malloc(n + 1);
    if (!k) return -1;
    k[0] = KEY_BLOB;
    memcpy(k + 1, name, n);
    long rc = get_copy(c, k, n + 1, buf, cap);
    free(k);
    return rc;
}

typedef struct {
    fr_ckpt_kv_fn fn;
    void *ctx;
} blob_ctx;

static int blob_cb(const char *k, size_t kl, const void *v, size_t vl, void *ctx)
{
    blob_ctx *b = ctx;
    return b->fn(k + 1, kl - 1, v, vl, b->ctx);
}

int fr_ckpt_foreach_blob(fr_ckpt *c, const char *prefix, fr_ckpt_kv_fn fn, void *ctx)
{
    if (!c || !prefix || !fn) return -1;
    size_t n = strlen(prefix);
    char *k = malloc(n + 1);
    if (!k) return -1;
    k[0] = KEY_BLOB;
    memcpy(k + 1, prefix, n);
    int rc = ckpt_scan(c, k, n + 1, blob_cb, &(blob_ctx){fn, ctx});
    free(k);
    return rc;
}

typedef struct {
    XXH3_state_t *st;
} digest_ctx;

static int digest_cb(const char *k, size_t kl, const void *v, size_t vl, void *ctx)
{
    digest_ctx *d = ctx;
    unsigned char len[8];
    fr_put_u64le(len, (uint64_t)kl);
    XXH3_128bits_update(d->st, len, sizeof len);
    XXH3_128bits_update(d->st, k, kl);
    fr_put_u64le(len, (uint64_t)vl);
    XXH3_128bits_update(d->st, len, sizeof len);
    if (vl) XXH3_128bits_update(d->st, v, vl);
    return 0;
}

int fr_ckpt_digest(fr_ckpt *c, char hex[33])
{
    hex[0] = '\0';
    if (!c) return -1;
    digest_ctx d = {XXH3_createState()};
    if (!d.st) return -1;
    XXH3_128bits_reset(d.st);
    int rc = fr_ckpt_foreach(c, digest_cb, &d);
    if (rc == 0) {
        XXH128_canonical_t canon;
        XXH128_canonicalFromHash(&canon, XXH3_128bits_digest(d.st));
        static const char digits[] = "0123456789abcdef";
        for (int i = 0; i < 16; i++) {
            hex[2 * i] = digits[canon.digest[i] >> 4];
            hex[2 * i + 1] = digits[canon.digest[i] & 15];
        }
        hex[32] = '\0';
    }
    XXH3_freeState(d.st);
    return rc;
}
