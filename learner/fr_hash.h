/* fr_hash: stable 64-bit feature keys.
 *
 * Keys are XXH3-64 of the value bytes seeded by the field's own hash, so equal strings in
 * different fields never share a row, and keys are stable across machines, runs and versions
 * (they are part of the checkpoint and the Redis layout). Never returns 0 (0 marks "no value"). */
#ifndef FR_HASH_H
#define FR_HASH_H

#include <stddef.h>
#include <stdint.h>

uint64_t fr_hash_field(const char *field_name);
uint64_t fr_hash_value(uint64_t field_hash, const void *bytes, size_t len);
/* Deterministic pseudo-random stream for initialisation: the n-th value for a seed, uniform in [-1, 1). */
float fr_hash_uniform(uint64_t seed, uint64_t n);

#endif
