#include "fr_hash.h"

#include <string.h>
#include <xxhash.h>

/* Changing this constant changes every key of every stored model: it is part of the format. */
static const uint64_t FIELD_SEED = 0x46524553484554ULL; /* "FRESHET" */

uint64_t fr_hash_field(const char *field_name) { return XXH3_64bits_withSeed(field_name, strlen(field_name), FIELD_SEED); }

uint64_t fr_hash_value(uint64_t field_hash, const void *bytes, size_t len)
{
    uint64_t h = XXH3_64bits_withSeed(bytes, len, field_hash);
    return h ? h : 1;
}

float fr_hash_uniform(uint64_t seed, uint64_t n)
{
    uint64_t h = XXH3_64bits_withSeed(&n, sizeof n, seed);
    /* top 24 bits give an exactly representable float in [0, 1) */
    return (float)(h >> 40) * (2.0f / 16777216.0f) - 1.0f;
}
