#include "fr_emb.h"

#include <stdlib.h>
#include <string.h>

/* 1024 rows per chunk: small tables (the scenario field has a handful of rows) waste at most one
 * chunk, and a million-row table needs only a thousand chunk pointers. */
enum { CHUNK_SHIFT = 10, CHUNK_ROWS = 1 << CHUNK_SHIFT, INITIAL_CAP = 16 };
#define MAX_ROWS 0xFFFFFFFEu /* row index + 1 must fit the 32 low bits of a slot */

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
    for (int b = 0; b < FR_EMB_NDIRTY; b++) free(t->dirty[b]);
    memset(t, 0, sizeof *t);
}

fr_emb_row *fr_emb_row_at(const fr_emb *t, size_t idx)
{
    return (fr_emb_row *)(void *)(t->chunks[idx >> CHUNK_SHIFT] + (idx & (CHUNK_ROWS - 1)) * t->stride);
}

int64_t fr_emb_find(const fr_emb *t, uint64_t key)
{
    if (t->cap == 0) return -1;
    uint64_t h = mix(key);
    uint64_t fp = h >> 32;
    size_t mask = t->cap - 1;
    for (size_t pos = (size_t)h & mask;; pos = (pos + 1) & mask) {
        uint64_t s = t->slots[pos];
        if (s == 0) return -1;
        if ((s >> 32) == fp) {
            size_t idx = (size_t)(s & 0xFFFFFFFFu) - 1;
            if (fr_emb_row_at(t, idx)->key == key) return (int64_t)idx;
        }
    }
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
    for (;; pos = (pos + 1) & mask) {
        uint64_t s = t->slots[pos];
        if (s == 0) return;
        if ((s >> 32) == h >> 32) {
            PREFETCH(fr_emb_row_at(t, (size_t)(s & 0xFFFFFFFFu) - 1));
            return;
        }
    }
}

static void place(uint64_t *slots, size_t cap, uint64_t key, size_t idx)
{
    uint64_t h = mix(key);
    size_t mask = cap - 1, pos = (size_t)h & mask;
    while (slots[pos]) pos = (pos + 1) & mask;
    slots[pos] = (h >> 32) << 32 | (uint64_t)(idx + 1);
}

/* Rebuilds the index from the arena (a sequential walk) rather than from the old slots, which
 * do not hold the full key. */
static int grow_index(fr_emb *t)
{
    size_t cap = t->cap ? t->cap * 2 : INITIAL_CAP;
    if (cap > SIZE_MAX / sizeof(uint64_t)) return -1;
    uint64_t *slots = calloc(cap, sizeof *slots);
    if (!slots) return -1;
    for (size_t i = 0; i < t->count; i++) place(slots, cap, fr_emb_row_at(t, i)->key, i);
    free(t->slots);
    t->slots = slots;
    t->cap = cap;
    return 0;
}

int64_t fr_emb_insert(fr_emb *t, uint64_t key, int *created)
{
    *created = 0;
    int64_t found = fr_emb_find(t, key);
    if (found >= 0) return found;
    if (t->count >= MAX_ROWS) return -1;
    /* load factor <= 3/4: linear probing stays short and slots cost 11-21 bytes per row */
    if ((t->count + 1) * 4 > t->cap * 3 && grow_index(t) != 0) return -1;
    size_t idx = t->count;
    /* Reserving dirty-list room here (a list never holds more than every row) means marking a
     * row can never fail: a row silently missing from a checkpoint would break exactly-once. */
    for (int b = 0; b < FR_EMB_NDIRTY; b++) {
        if (t->dirty_cap[b] > idx) continue;
        size_t ncap = t->dirty_cap[b] ? t->dirty_cap[b] * 2 : 64;
        uint32_t *d = realloc(t->dirty[b], ncap * sizeof *d);
        if (!d) return -1;
        t->dirty[b] = d;
        t->dirty_cap[b] = ncap;
    }
    if ((idx >> CHUNK_SHIFT) >= t->n_chunks) {
        if (t->n_chunks == t->chunks_cap) {
            size_t ncap = t->chunks_cap ? t->chunks_cap * 2 : 8;
            unsigned char **c = realloc(t->chunks, ncap * sizeof *c);
            if (!c) return -1;
            t->chunks = c;
            t->chunks_cap = ncap;
        }
        unsigned char *chunk = malloc((size_t)CHUNK_ROWS * t->stride);
        if (!chunk) return -1;
        t->chunks[t->n_chunks++] = chunk;
    }
    fr_emb_row *r = fr_emb_row_at(t, idx);
    memset(r, 0, t->stride);
    r->key = key;
    place(t->slots, t->cap, key, idx);
    t->count++;
    *created = 1;
    return (int64_t)idx;
}

void fr_emb_mark(fr_emb *t, size_t idx, uint32_t bits)
{
    fr_emb_row *r = fr_emb_row_at(t, idx);
    for (int b = 0; b < FR_EMB_NDIRTY; b++) {
        uint32_t bit = 1u << b;
        if (!(bits & bit) || (r->dirty & bit)) continue;
        t->dirty[b][t->dirty_len[b]++] = (uint32_t)idx; /* capacity reserved at insert */
        r->dirty |= bit;
    }
}

void fr_emb_clear(fr_emb *t, uint32_t bits)
{
    for (int b = 0; b < FR_EMB_NDIRTY; b++) {
        uint32_t bit = 1u << b;
        if (!(bits & bit)) continue;
        for (size_t i = 0; i < t->dirty_len[b]; i++) fr_emb_row_at(t, t->dirty[b][i])->dirty &= ~bit;
        t->dirty_len[b] = 0;
    }
}

size_t fr_emb_memory(const fr_emb *t)
{
    size_t bytes = t->n_chunks * (size_t)CHUNK_ROWS * t->stride + t->chunks_cap * sizeof(*t->chunks) +
                   t->cap * sizeof(*t->slots);
    for (int b = 0; b < FR_EMB_NDIRTY; b++) bytes += t->dirty_cap[b] * sizeof(uint32_t);
    return bytes;
}
