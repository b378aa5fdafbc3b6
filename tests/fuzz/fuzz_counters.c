/* The pipeline's blob "counters" (decoded by fr_pipeline_counters_decode as restoring and `freshet
 * inspect` do): what it accepts counts no more rejected messages than consumed ones and nothing
 * under reason 0, and a record of this build's length encodes back to the same bytes. */
#include <stdint.h>
#include <string.h>

#include "fr_pipeline.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fr_pipeline_counters c;
    int rc = fr_pipeline_counters_decode(data, size, &c);
    FUZZ_CHECK(rc == 0 || rc == -1 || rc == -2);
    if (rc != 0) return 0;
    uint64_t rejected = 0;
    FUZZ_CHECK(c.rejected[FR_REJECT_NONE] == 0);
    for (int r = 0; r < FR_REJECT_NREASONS; r++) {
        FUZZ_CHECK(!__builtin_add_overflow(rejected, c.rejected[r], &rejected));
    }
    FUZZ_CHECK(rejected <= c.consumed);
    unsigned char again[8 * (3 + FR_REJECT_NREASONS)];
    FUZZ_CHECK(fr_pipeline_counters_encode(&c, again, sizeof again) == sizeof again);
    if (size == sizeof again) FUZZ_CHECK(memcmp(again, data, size) == 0);
    return 0;
}
