/* fr_emb: one embedding table: 64-bit key -> fixed-size row, plus per-consumer dirty tracking.
 *
 * Rows live in an arena of chunks of 1024 rows addressed by a dense row index, so iterating all
 * rows is a sequential walk and growing never copies the arena. The first chunk alone starts at 16
 * rows and doubles (a tiny table -- the scenario, the hour -- costs its rows, not 1024 of them), so
 * a row pointer is valid only until the next insert. Deleting a row moves the last row into its
 * place (the arena stays dense): row indices are valid only until the next fr_emb_delete.
 *
 * The index is open addressing with linear probing and backward-shift deletion (no tombstones).
 * A slot is 32 bits: the low log2(cap) bits hold row index + 1, the bits above them a fingerprint
 * of the key, so a probe touches the row itself only when the fingerprint matches (false matches:
 * 1 in 2^(32 - log2 cap), 1/2048 at a million rows). Load factor <= 3/4: 5.3-10.7 index bytes per
 * row instead of the 10.7-21.3 of 64-bit slots.
 *
 * Dirty tracking is per chunk: each dirty bit has a list of the chunks holding a row with that
 * bit, so marking costs nothing per row beyond the header bit, and visiting the dirty rows costs
 * one pass over the dirty chunks (1024 rows each), not over the table.
 *
 * A row is a fr_emb_row header followed by the caller's payload (payload_bytes, float-aligned).
 * Ownership: fr_emb_init allocates nothing until the first insert; fr_emb_free releases all. */
#ifndef FR_EMB_H
#define FR_EMB_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t key;       /* never 0 */
    uint64_t version;
    uint32_t dirty;     /* FR_DIRTY_* bits */
    uint32_t updated;   /* caller's use: the model keeps the event time (s) of the last update */
    /* payload follows */
} fr_emb_row;

enum { FR_EMB_NDIRTY = 2, FR_EMB_CHUNK_SHIFT = 10 }; /* dirty bit b (1 << b) has its own chunk list */

typedef struct {
    uint32_t *slots;        /* cap entries: 0 = empty, else fingerprint << shift | (row index + 1) */
    size_t cap;             /* power of two, 0 before the first insert */
    unsigned shift;         /* log2(cap) */
    size_t count;           /* rows */
    size_t stride;          /* bytes per row, header included */
    unsigned char **chunks; /* 1 << FR_EMB_CHUNK_SHIFT rows each; chunks[0] holds chunk0_rows */
    size_t chunk0_rows;
    size_t n_chunks, chunks_cap;
    uint8_t *chunk_dirty;   /* per chunk: the dirty bits whose list holds it (chunks_cap entries) */
    uint32_t *dirty[FR_EMB_NDIRTY]; /* chunk indices, in marking order (chunks_cap entries each) */
    size_t dirty_len[FR_EMB_NDIRTY];
} fr_emb;

void fr_emb_init(fr_emb *t, size_t payload_bytes);
void fr_emb_free(fr_emb *t);
/* Row index of key, or -1. */
int64_t fr_emb_find(const fr_emb *t, uint64_t key);
/* Row index of key, inserting a row with a zero payload when absent (*created = 1).
 * Returns -1 when memory runs out or the table is full (3 x 2^29 rows); the table is unchanged. */
int64_t fr_emb_insert(fr_emb *t, uint64_t key, int *created);
/* Removes key's row (0), or returns -1 when absent. The last row moves into the freed index
 * (keeping its dirty bits): indices from before the call are stale afterwards. */
int fr_emb_delete(fr_emb *t, uint64_t key);
fr_emb_row *fr_emb_row_at(const fr_emb *t, size_t idx);
/* Cache hints for a batch of lookups: stage 0 touches the key's index slot, stage 1 (once the
 * slots are cached) the row its fingerprint points at, so the misses of a batch overlap instead
 * of being paid one after another. No effect on results. */
void fr_emb_prefetch(const fr_emb *t, uint64_t key, int stage);
static inline float *fr_emb_payload(fr_emb_row *r) { return (float *)(void *)(r + 1); }
/* Sets dirty bits on a row. Cannot fail: insert reserves the chunk lists. */
void fr_emb_mark(fr_emb *t, size_t idx, uint32_t bits);
/* Clears the given bits on the rows of their dirty chunks. */
void fr_emb_clear(fr_emb *t, uint32_t bits);
/* Iterates the rows carrying dirty bit number b (0 or 1): start with *cursor = 0; returns the
 * next row index, or -1 at the end. The table must not change during the iteration. */
int64_t fr_emb_next_dirty(const fr_emb *t, int b, size_t *cursor);
/* Bytes held by the table (arena, index, dirty lists). */
size_t fr_emb_memory(const fr_emb *t);

#endif
