/* fr_emb: one embedding table: 64-bit key -> fixed-size row, plus per-consumer dirty lists.
 *
 * Rows live in an arena of fixed-size chunks addressed by a dense row index, so a row never
 * moves once created (pointers into it stay valid while the table grows) and iterating all rows
 * is a sequential walk. The index is open addressing with linear probing; a slot packs a 32-bit
 * fingerprint of the key with the row index, so a probe touches the row itself only when the
 * fingerprint matches. Rows are never deleted (eviction will need tombstones; not here yet).
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
    uint32_t reserved;
    /* payload follows */
} fr_emb_row;

enum { FR_EMB_NDIRTY = 2 }; /* dirty bit b (1 << b) has its own list */

typedef struct {
    uint64_t *slots;        /* cap entries: 0 = empty, else fingerprint << 32 | (row index + 1) */
    size_t cap;             /* power of two, 0 before the first insert */
    size_t count;           /* rows */
    size_t stride;          /* bytes per row, header included */
    unsigned char **chunks; /* FR_EMB_CHUNK_ROWS rows each */
    size_t n_chunks, chunks_cap;
    uint32_t *dirty[FR_EMB_NDIRTY];     /* row indices with the bit set, in marking order */
    size_t dirty_len[FR_EMB_NDIRTY], dirty_cap[FR_EMB_NDIRTY];
} fr_emb;

void fr_emb_init(fr_emb *t, size_t payload_bytes);
void fr_emb_free(fr_emb *t);
/* Row index of key, or -1. */
int64_t fr_emb_find(const fr_emb *t, uint64_t key);
/* Row index of key, inserting a row with a zero payload when absent (*created = 1).
 * Returns -1 when memory runs out or the table is full (2^32 - 1 rows); the table is unchanged. */
int64_t fr_emb_insert(fr_emb *t, uint64_t key, int *created);
fr_emb_row *fr_emb_row_at(const fr_emb *t, size_t idx);
/* Cache hints for a batch of lookups: stage 0 touches the key's index slot, stage 1 (once the
 * slots are cached) the row its fingerprint points at, so the misses of a batch overlap instead
 * of being paid one after another. No effect on results. */
void fr_emb_prefetch(const fr_emb *t, uint64_t key, int stage);
static inline float *fr_emb_payload(fr_emb_row *r) { return (float *)(void *)(r + 1); }
/* Sets dirty bits on a row, appending it to each bit's list once. Cannot fail: insert reserves. */
void fr_emb_mark(fr_emb *t, size_t idx, uint32_t bits);
/* Clears the given bits on the rows of their lists: cost proportional to the dirty rows. */
void fr_emb_clear(fr_emb *t, uint32_t bits);
/* Bytes held by the table (arena, index, dirty lists). */
size_t fr_emb_memory(const fr_emb *t);

#endif
