#include "fr_emb.h"

#include <stdlib.h>
#include <string.h>

/* 1024 rows per chunk: small tables (the scenario field has a handful of rows) waste at most one
 * chunk, and a million-row table needs only a thousand chunk pointers. */
enum { CHUNK_SHIFT = FR_EMB_CHUNK_SHIFT, CHUNK_ROWS = 1 << CHUNK_SHIFT, INITIAL_SHIFT = 4, MAX_SHIFT = 31,
       CHUNK0_INITIAL_ROWS = 16 };
/* load factor <= 3/4 at the largest index (2^31 slots); row index + 1 then always fits the low bits */
#define MAX_ROWS ((size_t)3 << 29)

/* Keys are usually XXH3 outputs already, but tests and callers may use small integers: mixing
 * keeps linear probing from clustering on them. (splitmix64 finaliser.) */
static uint64_t mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

/* The slot position comes from the low bits of h, the fingerprint from its top bits. */
static uint32_t fingerprint(uint64_t h, unsigned shift) { return (uint32_t)(h >> (32 + shift)) << shift; }
static uint32_t fp_mask(unsigned shift) { return ~(uint32_t)0 << shift; }
static uint32_t idx_mask(unsigned shift) { return ((uint32_t)1 << shift) - 1; }

void fr_emb_init(fr_emb *t, size_t payload_bytes)
{
    memset(t, 0, sizeof *t);
    /* rows hold uint64 headers: keep every row 8-byte aligned */
    t->stride = (sizeof(fr_emb_row) + payload_bytes + 7) & ~(size_t)7;
}

void fr_emb_free(fr_emb *t)
{
    if (!t) return;
    free(t->slots);
    for (size_t i = 0; i < t->n_chunks; i++) free(t->chunks[i]);
    free(t->chunks);
    free(t->chunk_dirty);
    for (int b = 0; b < FR_EMB_NDIRTY; b++) free(t->dirty[b]);
    memset(t, 0, sizeof *t);
}

fr_emb_row *fr_emb_row_at(const fr_emb *t, size_t idx)
{
    return (fr_emb_row *)(void *)(t->chunks[idx >> CHUNK_SHIFT] + (idx & (CHUNK_ROWS - 1)) * t->stride);
}

/* Slot position of key, or -1. */
static int64_t find_slot(const fr_emb *t, uint64_t key)
{
    if (t->cap == 0) return -1;
    uint64_t h = mix(key);
    uint32_t fp = fingerprint(h, t->shift), fm = fp_mask(t->shift), im = idx_mask(t->shift);
    size_t mask = t->cap - 1;
    for (size_t pos = (size_t)h & mask;; pos = (pos + 1) & mask) {
        uint32_t s = t->slots[pos];
        if (s == 0) return -1;
        if ((s & fm) == fp && fr_emb_row_at(t, (size_t)(s & im) - 1)->key == key) return (int64_t)pos;
    }
}

int64_t fr_emb_find(const fr_emb *t, uint64_t key)
{
    int64_t pos = find_slot(t, key);
    return pos < 0 ? -1 : (int64_t)(t->slots[pos] & idx_mask(t->shift)) - 1;
}

#if defined(__GNUC__)
#define PREFETCH(p) __builtin_prefetch(p)
#else
#define PREFETCH(p) ((void)(p))
#endif

void fr_emb_prefetch(const fr_emb *t, uint64_t key, int stage)
{
    if (t->cap == 0) return;
    uint64_t h = mix(key);
    size_t mask = t->cap - 1, pos = (size_t)h & mask;
    if (stage == 0) {
        PREFETCH(&t->slots[pos]);
        return;
    }
    uint32_t fp = fingerprint(h, t->shift), fm = fp_mask(t->shift);
    for (;; pos = (pos + 1) & mask) {
        uint32_t s = t->slots[pos];
        if (s == 0) return;
        if ((s & fm) == fp) {
            PREFETCH(fr_emb_row_at(t, (size_t)(s & idx_mask(t->shift)) - 1));
            return;
        }
    }
}

static void place(uint32_t *slots, size_t cap, unsigned shift, uint64_t key, size_t idx)
{
    uint64_t h = mix(key);
    size_t mask = cap - 1, pos = (size_t)h & mask;
    while (slots[pos]) pos = (pos + 1) & mask;
    slots[pos] = fingerprint(h, shift) | (uint32_t)(idx + 1);
}

/* Rebuilds the index from the arena (a sequential walk) rather than from the old slots, which
 * do not hold the full key (and whose fingerprints are one bit wider). */
static int grow_index(fr_emb *t)
{
    unsigned shift = t->cap ? t->shift + 1 : INITIAL_SHIFT;
    if (shift > MAX_SHIFT) return -1;
    size_t cap = (size_t)1 << shift;
    uint32_t *slots = calloc(cap, sizeof *slots);
    if (!slots) return -1;
    for (size_t i = 0; i < t->count; i++) place(slots, cap, shift, fr_emb_row_at(t, i)->key, i);
    free(t->slots);
    t->slots = slots;
    t->cap = cap;
    t->shift = shift;
    return 0;
}

/* A new chunk, with room reserved in every dirty list and the chunk flags, so that marking a
 * row can never fail: a row silently missing from a checkpoint would break exactly-once. */
static int add_chunk(fr_emb *t)
{
    if (t->n_chunks == t->chunks_cap) {
        size_t ncap = t->chunks_cap ? t->chunks_cap * 2 : 8;
        unsigned char **c = realloc(t->chunks, ncap * sizeof *c);
        if (!c) return -1;
        t->chunks = c;
        uint8_t *cd = realloc(t->chunk_dirty, ncap);
        if (!cd) return -1;
        memset(cd + t->chunks_cap, 0, ncap - t->chunks_cap);
        t->chunk_dirty = cd;
        for (int b = 0; b < FR_EMB_NDIRTY; b++) {
            uint32_t *d = realloc(t->dirty[b], ncap * sizeof *d);
            if (!d) return -1;
            t->dirty[b] = d;
        }
        t->chunks_cap = ncap; /* only once every array has its room */
    }
    size_t rows = t->n_chunks ? CHUNK_ROWS : CHUNK0_INITIAL_ROWS;
    unsigned char *chunk = malloc(rows * t->stride);
    if (!chunk) return -1;
    if (t->n_chunks == 0) t->chunk0_rows = rows;
    t->chunks[t->n_chunks++] = chunk;
    return 0;
}

static int grow_chunk0(fr_emb *t)
{
    size_t rows = t->chunk0_rows * 2 < CHUNK_ROWS ? t->chunk0_rows * 2 : CHUNK_ROWS;
    unsigned char *c = realloc(t->chunks[0], rows * t->stride);
    if (!c) return -1;
    t->chunks[0] = c;
    t->chunk0_rows = rows;
    return 0;
}

int64_t fr_emb_insert(fr_emb *t, uint64_t key, int *created)
{
    *created = 0;
    int64_t found = fr_emb_find(t, key);
    if (found >= 0) return found;
    if (t->count >= MAX_ROWS) return -1;
    if ((t->count + 1) * 4 > t->cap * 3 && grow_index(t) != 0) return -1;
    size_t idx = t->count;
    if ((idx >> CHUNK_SHIFT) >= t->n_chunks && add_chunk(t) != 0) return -1;
    if (idx < CHUNK_ROWS && idx >= t->chunk0_rows && grow_chunk0(t) != 0) return -1;
    fr_emb_row *r = fr_emb_row_at(t, idx);
    memset(r, 0, t->stride);
    r->key = key;
    place(t->slots, t->cap, t->shift, key, idx);
    t->count++;
    *created = 1;
    return (int64_t)idx;
}

static void mark_chunk(fr_emb *t, size_t chunk, uint32_t bits)
{
    for (int b = 0; b < FR_EMB_NDIRTY; b++) {
        uint8_t bit = (uint8_t)(1u << b);
        if (!(bits & bit) || (t->chunk_dirty[chunk] & bit)) continue;
        t->dirty[b][t->dirty_len[b]++] = (uint32_t)chunk; /* room reserved by add_chunk */
        t->chunk_dirty[chunk] |= bit;
    }
}

int fr_emb_delete(fr_emb *t, uint64_t key)
{
    int64_t p = find_slot(t, key);
    if (p < 0) return -1;
    uint32_t im = idx_mask(t->shift);
    size_t mask = t->cap - 1, pos = (size_t)p;
    size_t idx = (size_t)(t->slots[pos] & im) - 1;
    /* backward-shift deletion: pull every later entry of the cluster that may live at pos */
    for (size_t j = (pos + 1) & mask; t->slots[j]; j = (j + 1) & mask) {
        size_t home = (size_t)mix(fr_emb_row_at(t, (size_t)(t->slots[j] & im) - 1)->key) & mask;
        /* the entry at j may move to pos iff its home is not cyclically within (pos, j] */
        int stays = pos <= j ? (pos < home && home <= j) : (pos < home || home <= j);
        if (stays) continue;
        t->slots[pos] = t->slots[j];
        pos = j;
    }
    t->slots[pos] = 0;
    size_t last = t->count - 1;
    if (idx != last) {
        fr_emb_row *src = fr_emb_row_at(t, last);
        int64_t lp = find_slot(t, src->key);
        t->slots[lp] = (t->slots[lp] & ~im) | (uint32_t)(idx + 1);
        memcpy(fr_emb_row_at(t, idx), src, t->stride);
        mark_chunk(t, idx >> CHUNK_SHIFT, src->dirty);
    }
    t->count--;
    return 0;
}

void fr_emb_mark(fr_emb *t, size_t idx, uint32_t bits)
{
    fr_emb_row *r = fr_emb_row_at(t, idx);
    r->dirty |= bits & ((1u << FR_EMB_NDIRTY) - 1);
    mark_chunk(t, idx >> CHUNK_SHIFT, bits);
}

void fr_emb_clear(fr_emb *t, uint32_t bits)
{
    for (int b = 0; b < FR_EMB_NDIRTY; b++) {
        uint32_t bit = 1u << b;
        if (!(bits & bit)) continue;
        for (size_t i = 0; i < t->dirty_len[b]; i++) {
            size_t c = t->dirty[b][i];
            size_t lo = c << CHUNK_SHIFT, hi = lo + CHUNK_ROWS < t->count ? lo + CHUNK_ROWS : t->count;
            for (size_t k = lo; k < hi; k++) fr_emb_row_at(t, k)->dirty &= ~bit;
            t->chunk_dirty[c] &= (uint8_t)~bit;
        }
        t->dirty_len[b] = 0;
    }
}

int64_t fr_emb_next_dirty(const fr_emb *t, int b, size_t *cursor)
{
    uint32_t bit = 1u << b;
    for (size_t cur = *cursor;; cur++) {
        size_t li = cur >> CHUNK_SHIFT;
        if (li >= t->dirty_len[b]) {
            *cursor = cur;
            return -1;
        }
        size_t idx = ((size_t)t->dirty[b][li] << CHUNK_SHIFT) | (cur & (CHUNK_ROWS - 1));
        if (idx >= t->count) { /* rows past the end of a chunk that deletions emptied */
            cur = (cur | (CHUNK_ROWS - 1));
            continue;
        }
        if (fr_emb_row_at(t, idx)->dirty & bit) {
            *cursor = cur + 1;
            return (int64_t)idx;
        }
    }
}

size_t fr_emb_memory(const fr_emb *t)
{
    size_t arena = t->n_chunks ? ((t->n_chunks - 1) * (size_t)CHUNK_ROWS + t->chunk0_rows) * t->stride : 0;
    return arena +
           t->chunks_cap * (sizeof(*t->chunks) + sizeof(*t->chunk_dirty) + FR_EMB_NDIRTY * sizeof(uint32_t)) +
           t->cap * sizeof(*t->slots);
}
