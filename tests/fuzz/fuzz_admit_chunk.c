/* An admission filter's stored chunk (fr_admit_set_chunk) into a two-chunk filter, which then
 * counts, halves and reports its load. Input: chunk index byte, then the chunk's bytes. */
#include <stdint.h>

#include "fr_admit.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    char err[128];
    fr_admit *a = fr_admit_create(FR_ADMIT_MIN_WIDTH_LOG2 + 1, 42, err, sizeof err);
    if (!a) return 0;
    if (fr_admit_set_chunk(a, data[0], data + 1, size - 1) == 0) {
        for (uint64_t k = 1; k < 64; k++) FUZZ_CHECK(fr_admit_add(a, k * 0x9E3779B97F4A7C15ULL) <= FR_ADMIT_MAX_COUNT);
        fr_admit_halve(a);
        double load = fr_admit_load(a);
        FUZZ_CHECK(load >= 0 && load <= 1);
    }
    fr_admit_free(a);
    return 0;
}
