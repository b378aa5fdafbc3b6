#include "fr_admit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fr_admit {
    unsigned width_log2;
    uint64_t seed;
    uint8_t *cells;      /* DEPTH rows of 2^width_log2 nibbles, row after row; low nibble first */
    size_t bytes;
    uint8_t *chunk_dirty;
    uint32_t *dirty;     /* changed chunks (room for all of them: marking cannot fail) */
    size_t n_dirty;
};

static void mark_chunk(fr_admit *a, size_t c);

static uint64_t mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

fr_admit *fr_admit_create(unsigned width_log2, uint64_t seed, char *err, size_t errlen)
{
    if (width_log2 < FR_ADMIT_MIN_WIDTH_LOG2 || width_log2 > FR_ADMIT_MAX_WIDTH_LOG2) {
        snprintf(err, errlen, "admission filter: width_log2 %u outside %d..%d", width_log2, FR_ADMIT_MIN_WIDTH_LOG2,
                 FR_ADMIT_MAX_WIDTH_LOG2);
        return NULL;
    }
    fr_admit *a = calloc(1, sizeof *a);
    if (!a) goto oom;
    a->width_log2 = width_log2;
    a->seed = seed;
    a->bytes = (size_t)FR_ADMIT_DEPTH << (width_log2 - 1);
    a->cells = calloc(a->bytes, 1);
    a->chunk_dirty = calloc(a->bytes / FR_ADMIT_CHUNK_BYTES, 1);
    a->dirty = malloc(a->bytes / FR_ADMIT_CHUNK_BYTES * sizeof *a->dirty);
    if (!a->cells || !a->chunk_dirty || !a->dirty) goto oom;
    return a;
oom:
    snprintf(err, errlen, "admission filter: out of memory for %zu bytes (lower the field's admit_width_log2)",
             (size_t)FR_ADMIT_DEPTH << (width_log2 - 1));
    fr_admit_free(a);
    return NULL;
}

void fr_admit_free(fr_admit *a)
{
    if (!a) return;
    free(a->cells);
    free(a->chunk_dirty);
    free(a->dirty);
    free(a);
}

unsigned fr_admit_width_log2(const fr_admit *a) { return a->width_log2; }

/* Nibble index of key in each row (double hashing; the step is odd, so the rows differ). */
static void positions(const fr_admit *a, uint64_t key, size_t pos[FR_ADMIT_DEPTH])
{
    uint64_t h = mix(key ^ a->seed);
    uint64_t h1 = h & 0xFFFFFFFFu, h2 = (h >> 32) | 1;
    size_t w = (size_t)1 << a->width_log2;
    for (size_t i = 0; i < FR_ADMIT_DEPTH; i++) pos[i] = i * w + (size_t)((h1 + i * h2) & (w - 1));
}

static unsigned get(const fr_admit *a, size_t n) { return (a->cells[n >> 1] >> ((n & 1) * 4)) & 15u; }

unsigned fr_admit_count(const fr_admit *a, uint64_t key)
{
    size_t pos[FR_ADMIT_DEPTH];
    positions(a, key, pos);
    unsigned lo = FR_ADMIT_MAX_COUNT;
    for (int i = 0; i < FR_ADMIT_DEPTH; i++) {
        unsigned v = get(a, pos[i]);
        if (v < lo) lo = v;
    }
    return lo;
}

unsigned fr_admit_add(fr_admit *a, uint64_t key)
{
    size_t pos[FR_ADMIT_DEPTH];
    positions(a, key, pos);
    unsigned lo = FR_ADMIT_MAX_COUNT;
    for (int i = 0; i < FR_ADMIT_DEPTH; i++) {
        unsigned v = get(a, pos[i]);
        if (v < lo) lo = v;
    }
    if (lo == FR_ADMIT_MAX_COUNT) return lo;
    for (int i = 0; i < FR_ADMIT_DEPTH; i++) {
        if (get(a, pos[i]) != lo) continue; /* conservative update */
        size_t byte = pos[i] >> 1;
        a->cells[byte] = (uint8_t)(a->cells[byte] + (1u << ((pos[i] & 1) * 4)));
        mark_chunk(a, byte / FR_ADMIT_CHUNK_BYTES);
    }
    return lo + 1;
}

static void mark_chunk(fr_admit *a, size_t c)
{
    if (a->chunk_dirty[c]) return;
    a->chunk_dirty[c] = 1;
    a->dirty[a->n_dirty++] = (uint32_t)c;
}

void fr_admit_halve(fr_admit *a)
{
    for (size_t c = 0; c < fr_admit_chunks(a); c++) {
        uint8_t *p = a->cells + c * FR_ADMIT_CHUNK_BYTES;
        uint8_t any = 0;
        for (size_t i = 0; i < FR_ADMIT_CHUNK_BYTES; i++) {
            any |= p[i]; /* every non-zero nibble changes when halved */
            p[i] = (uint8_t)((p[i] >> 1) & 0x77);
        }
        if (any) mark_chunk(a, c);
    }
}

double fr_admit_load(const fr_admit *a)
{
    size_t nonzero = 0;
    for (size_t i = 0; i < a->bytes; i++) nonzero += (a->cells[i] & 0x0F) != 0, nonzero += (a->cells[i] & 0xF0) != 0;
    return (double)nonzero / (double)(2 * a->bytes);
}

size_t fr_admit_chunks(const fr_admit *a) { return a->bytes / FR_ADMIT_CHUNK_BYTES; }

const uint8_t *fr_admit_chunk(const fr_admit *a, size_t i) { return a->cells + i * FR_ADMIT_CHUNK_BYTES; }

int fr_admit_set_chunk(fr_admit *a, size_t i, const void *bytes, size_t len)
{
    if (i >= fr_admit_chunks(a) || len != FR_ADMIT_CHUNK_BYTES) return -1;
    memcpy(a->cells + i * FR_ADMIT_CHUNK_BYTES, bytes, len);
    return 0;
}

size_t fr_admit_dirty(const fr_admit *a, const uint32_t **chunks)
{
    *chunks = a->dirty;
    return a->n_dirty;
}

void fr_admit_clear_dirty(fr_admit *a)
{
    for (size_t i = 0; i < a->n_dirty; i++) a->chunk_dirty[a->dirty[i]] = 0;
    a->n_dirty = 0;
}

size_t fr_admit_memory(const fr_admit *a)
{
    size_t n = fr_admit_chunks(a);
    return sizeof *a + a->bytes + n + n * sizeof *a->dirty;
}
