/* fr_redis_layout: the Redis layout of docs/redis-layout.md in code -- key names, the row and
 * dense-blob byte formats, and a small blocking hiredis pipeline -- shared by fr_publish (writer)
 * and fr_reader (serving). Internal to serving/ and store/.
 *
 * Keys, for a prefix P (letters, digits, and _ - . : only):
 *   P:active                   string, decimal version V of the active model
 *   P:versions                 sorted set, member = decimal V, score = V: the retained versions
 *   P:{vV}:manifest            string, manifest JSON of version V
 *   P:{vV}:dense               string, dense blob of version V
 *   P:emb:{tTnNsS}             hash per (table T, shard count N, shard S = fr_redis_shard_of(key, layout)):
 *                              field = key, value = row (format 3; formats 1 and 2: P:emb:{tTsS}, N = 64)
 *   P:changes                  stream, one entry per successful push
 *   P:writer                   string with a TTL: the writer lease (writer only)
 *   P:seq                      string, the version the last push allocated (writer only)
 *   P:hold                     string, the version an operator's rollback holds active (writer only) */
#ifndef FR_REDIS_LAYOUT_H
#define FR_REDIS_LAYOUT_H

#include <hiredis/hiredis.h>
#include <jansson.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "fr_sample.h" /* FR_MAX_CAT, FR_MAX_MULTI */

enum {
    /* format version 2 = 1 + a serve transform a reader must apply (manifest "serve_transform").
     * Format 3 = 2 + a shard count per table (manifest "tables[].shards"), named in the row hash
     * keys, so that every row hash stays in Redis' compact listpack encoding as tables grow
     * (docs/redis-layout.md, "Sizes"). This code writes 3 and reads 1 to 3. */
    FR_REDIS_FORMAT_VERSION = 3,         /* the newest this code reads, and the one it writes */
    FR_REDIS_FORMAT_VERSION_PLAIN = 1,   /* the oldest this code reads */
    FR_REDIS_ROW_SHARDS = 64,     /* formats 1 and 2: hashes per table, keys P:emb:{tTsS} */
    FR_REDIS_SHARD_BITS_MAX = 24, /* format 3: at most 2^24 hashes per table */
    /* format 3: a table of R rows gets the fewest shards N (a power of two) with R <= 64 N, so its
     * hashes hold 64 rows or fewer on average, and ~100 at most (a binomial tail over 2^14 hashes):
     * under 128, the smallest hash-max-listpack-entries default (Redis < 7: -ziplist-, 128; 7: 512) */
    FR_REDIS_ROWS_PER_HASH = 64,
    FR_REDIS_HASH_ENTRIES_NEEDED = 128, /* the hash-max-listpack-entries the layout needs */
    /* a table's layout: 0..FR_REDIS_SHARD_BITS_MAX = format 3 with 2^layout shards; LEGACY = the
     * 64 hashes P:emb:{tTsS} of formats 1 and 2. A set of layouts is a uint32_t bit mask. */
    FR_REDIS_LAYOUT_LEGACY = 31,
    FR_REDIS_ROW_MAGIC = 0x45,    /* 'E' */
    FR_REDIS_ROW_F32LE = 1,       /* row value format: float32 little-endian weights */
    FR_REDIS_ROW_HEADER = 12,     /* magic u8, format u8, dim u16 LE, version u64 LE */
    FR_REDIS_DENSE_HEADER = 16,   /* "FRD1", count u32 LE, version u64 LE */
    FR_REDIS_PREFIX_MAX = 64,
    FR_REDIS_KEY_MAX = 160,
    FR_REDIS_STREAM_MAXLEN = 10000,
};
/* The shard function's name in the manifest ("row_shard_fn"): formats 1 and 2 (top 6 bits), format 3
 * (the top log2(shards) bits of the product, none for one shard). */
#define FR_REDIS_SHARD_FN "mul_0x9E3779B97F4A7C15_shr58"
#define FR_REDIS_SHARD_FN_TOP "mul_0x9E3779B97F4A7C15_top_log2_shards_bits"

/* Checks a prefix: 1..64 characters from [A-Za-z0-9_.:-] (no braces: they would change the
 * Redis Cluster hash tags). -1 with a message when not. */
int fr_redis_check_prefix(const char *prefix, char *err, size_t errlen);

/* Key names, written NUL-terminated into buf (FR_REDIS_KEY_MAX bytes). */
void fr_redis_key_active(char *buf, const char *prefix);
void fr_redis_key_versions(char *buf, const char *prefix);
void fr_redis_key_changes(char *buf, const char *prefix);
/* P:writer: the lease of the daemon that publishes under P (fr_publish.h) */
void fr_redis_key_writer(char *buf, const char *prefix);
/* P:seq: the version number the last push allocated, set before it writes anything (fr_publish.c) */
void fr_redis_key_seq(char *buf, const char *prefix);
/* P:hold: set by `freshet rollback`, deleted by `freshet rollback --release`; no push flips while it exists */
void fr_redis_key_hold(char *buf, const char *prefix);
void fr_redis_key_manifest(char *buf, const char *prefix, uint64_t version);
void fr_redis_key_dense(char *buf, const char *prefix, uint64_t version);
/* The row hash of (table, layout, shard): P:emb:{tTnNsS}, or P:emb:{tTsS} for the legacy layout. */
void fr_redis_key_rows(char *buf, const char *prefix, uint32_t table, int layout, uint32_t shard);
/* Parses a row hash key of this prefix, either form: 0 with table, layout and shard (< its count),
 * -1 for any other key (another prefix's, another kind, a shard count that is no power of two). */
int fr_redis_parse_rows_key(const char *prefix, const char *key, size_t len, uint32_t *table, int *layout,
                            uint32_t *shard);
/* Hashes per table under a layout. */
static inline uint32_t fr_redis_layout_shards(int layout)
{
    return layout == FR_REDIS_LAYOUT_LEGACY ? FR_REDIS_ROW_SHARDS : (uint32_t)1 << layout;
}
/* Shard of a key: the top log2(shards) bits of key * 0x9E3779B97F4A7C15 (mod 2^64), i.e. Fibonacci
 * hashing, so structured keys spread as well as hashed ones; the shard of a key under 2N hashes is
 * 2S or 2S + 1 of its shard S under N. Part of the format. */
static inline uint32_t fr_redis_shard_of(uint64_t key, int layout)
{
    int bits = layout == FR_REDIS_LAYOUT_LEGACY ? 6 : layout;
    return bits == 0 ? 0 : (uint32_t)((key * 0x9E3779B97F4A7C15ULL) >> (64 - bits));
}
/* The layout a table of `rows` rows gets: the fewest shards with rows <= FR_REDIS_ROWS_PER_HASH x shards. */
int fr_redis_layout_for_rows(size_t rows);

/* The most embedding tables a model has (categorical slots and multi-valued fields). */
#define FR_REDIS_MAX_TABLES (FR_MAX_CAT + FR_MAX_MULTI)

/* The layout of each of the first ntab tables of a manifest (a parsed manifest object) into
 * layouts (room for FR_REDIS_MAX_TABLES): the legacy layout for formats 1 and 2 (checking
 * row_shards and row_shard_fn), tables[t].shards for format 3. 0, or -1 with a message naming the
 * member (or ntab above FR_REDIS_MAX_TABLES). */
int fr_redis_manifest_layouts(const json_t *manifest, uint32_t ntab, uint8_t *layouts, char *err,
                              size_t errlen);

/* The layouts the retained versions of a prefix use (P:versions, then their manifests: two round
 * trips): live[t] gets bit `layout` for every retained version whose manifest gives table t < ntab
 * that layout; newest[t] = the layout of the highest retained version (FR_REDIS_LAYOUT_NONE when
 * there is none or its manifest is unreadable). A version whose manifest is missing or unreadable
 * contributes nothing (no reader can load it). 0, or -1 with a message (*broken: the connection
 * failed, free it). */
enum { FR_REDIS_LAYOUT_NONE = 255 };
int fr_redis_retained_layouts(redisContext *c, const char *prefix, uint32_t ntab, uint32_t *live, uint8_t *newest,
                              int *broken, char *err, size_t errlen);

/* Row codec. encode writes FR_REDIS_ROW_HEADER + 4*dim bytes; field writes the 8-byte LE key. */
void fr_redis_row_field(unsigned char out[8], uint64_t key);
void fr_redis_row_encode(unsigned char *out, int dim, uint64_t version, const float *weights);
/* Decodes a row value of len bytes into weights[dim]; -1 with a message when malformed. */
int fr_redis_row_decode(const void *val, size_t len, int dim, uint64_t *version, float *weights, char *err,
                        size_t errlen);

/* Connects with a 2 s connect timeout and a 10 s command timeout, and authenticates when the
 * environment has FRESHET_REDIS_PASSWORD (with FRESHET_REDIS_USERNAME: an ACL user). NULL with a
 * message. The context is freed with redisFree. */
redisContext *fr_redis_connect(const char *host, int port, char *err, size_t errlen);

/* A blocking pipeline over one connection: commands are appended, and replies are read back
 * (in order) whenever `window` commands are outstanding, and by fr_pipe_drain. An error reply
 * fails the pipe with a message (the remaining replies are still read, so the connection stays
 * in step); after a connection error the context must be freed (fr_pipe.broken). */
typedef struct {
    redisContext *c;
    int window;
    int pending;
    int failed;          /* a command failed: first message in err */
    int broken;          /* the connection failed: free the context, reconnect next time */
    char err[256];
    long long replies;   /* replies read */
    long long integers;  /* sum of the integer replies read (HDEL: fields removed) */
} fr_pipe;
void fr_pipe_init(fr_pipe *p, redisContext *c, int window);
/* Appends one command (argv may hold binary data). Returns 0, or -1 once the pipe has failed. */
int fr_pipe_append(fr_pipe *p, int argc, const char **argv, const size_t *lens);
/* Reads every outstanding reply. Returns 0, or -1 when the pipe has failed. */
int fr_pipe_drain(fr_pipe *p);

/* n commands in one round trip on a connection with nothing outstanding: sends them all, then reads
 * their n replies into out[] (freeReplyObject each). Error replies are returned as replies. -1 with
 * a message when the connection failed (out[] is then all NULL: free the context). */
int fr_redis_batch(redisContext *c, int n, const char **argvs[], const size_t *lenss[], const int *argcs,
                   redisReply **out, char *err, size_t errlen);

/* One blocking command; returns the reply (freeReplyObject) or NULL with a message (then
 * *broken says whether the connection failed). A Redis error reply is returned as NULL too. */
redisReply *fr_redis_command(redisContext *c, int argc, const char **argv, const size_t *lens, int *broken,
                             char *err, size_t errlen);

/* hiredis writes with write(2): a write to a Redis that went away raises SIGPIPE, whose default
 * action kills the process. Every public call that talks to Redis runs between these two, which
 * block SIGPIPE for the calling thread only and discard a SIGPIPE raised meanwhile (the write
 * then fails with EPIPE and the call reports it). No process-wide state is changed. */
typedef struct {
    sigset_t old;
    int was_pending;
} fr_sigpipe_guard;
void fr_sigpipe_block(fr_sigpipe_guard *g);
void fr_sigpipe_restore(fr_sigpipe_guard *g);

#endif
