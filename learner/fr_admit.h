/* fr_admit: the admission filter of one embedding table: a count-min sketch that counts how often
 * a key without a row was seen in training, so that a key gets a row only at its N-th sighting.
 *
 * FR_ADMIT_DEPTH rows of 2^width_log2 four-bit saturating counters (so thresholds up to 15),
 * conservative update (only the smallest counters of a key grow, which keeps over-estimates
 * low). Positions come from the key and a seed by a fixed hash: the same sightings in the same
 * order give the same counters, bit for bit. Over-estimates (collisions) can only admit a key
 * early, never late.
 *
 * Aging: fr_admit_halve halves every counter (the caller does it every half-life of event time),
 * so a count means "sightings lately", not "ever": without it the counters of a long-running
 * daemon fill up with the long tail (a fresh key's four counters all reach admit_after through
 * collisions) and the filter ends up admitting everything.
 *
 * Persistence: the counters are a byte array cut into FR_ADMIT_CHUNK_BYTES chunks; the filter
 * remembers which chunks changed since fr_admit_clear_dirty, so a checkpoint writes only those.
 * Pure: no I/O. Ownership: fr_admit_create allocates, fr_admit_free frees. */
#ifndef FR_ADMIT_H
#define FR_ADMIT_H

#include <stddef.h>
#include <stdint.h>

enum {
    FR_ADMIT_DEPTH = 4,
    FR_ADMIT_MAX_COUNT = 15,
    FR_ADMIT_CHUNK_BYTES = 4096,
    FR_ADMIT_MIN_WIDTH_LOG2 = 11, /* at least one whole chunk */
    FR_ADMIT_MAX_WIDTH_LOG2 = 28,
};

typedef struct fr_admit fr_admit;

/* NULL with a message when width_log2 is out of range or memory runs out.
 * Memory: FR_ADMIT_DEPTH x 2^width_log2 / 2 bytes (2 MiB at width_log2 = 20). */
fr_admit *fr_admit_create(unsigned width_log2, uint64_t seed, char *err, size_t errlen);
void fr_admit_free(fr_admit *a);
unsigned fr_admit_width_log2(const fr_admit *a);
/* Sightings of key so far (an upper bound; saturates at FR_ADMIT_MAX_COUNT). */
unsigned fr_admit_count(const fr_admit *a, uint64_t key);
/* Records one sighting of key and returns the new count (saturating). */
unsigned fr_admit_add(fr_admit *a, uint64_t key);

/* Halves every counter (rounding down) and marks the chunks that changed. */
void fr_admit_halve(fr_admit *a);
/* Share of the counters that are not zero: near 1, the sketch is too small for what it counts. */
double fr_admit_load(const fr_admit *a);

/* Serialisation: chunk i of fr_admit_chunks(a) is FR_ADMIT_CHUNK_BYTES bytes of counters. */
size_t fr_admit_chunks(const fr_admit *a);
const uint8_t *fr_admit_chunk(const fr_admit *a, size_t i);
/* Overwrites chunk i (len must be FR_ADMIT_CHUNK_BYTES); does not mark it changed. 0 or -1. */
int fr_admit_set_chunk(fr_admit *a, size_t i, const void *bytes, size_t len);
/* The chunks changed since the last fr_admit_clear_dirty, in order of first change. */
size_t fr_admit_dirty(const fr_admit *a, const uint32_t **chunks);
void fr_admit_clear_dirty(fr_admit *a);
size_t fr_admit_memory(const fr_admit *a);

#endif
