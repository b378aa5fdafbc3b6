/* The pipeline's blob "sources" (fr_stored_source entries, each accepted by
 * fr_pipeline_check_source as restoring does): accepted names are strings and the event times leave
 * room for the watermark's lateness subtraction. */
#include <stdint.h>
#include <string.h>

#include "fr_pipeline.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size % sizeof(fr_stored_source) != 0 || size / sizeof(fr_stored_source) > FR_MAX_SOURCES) return 0;
    for (size_t i = 0; i < size / sizeof(fr_stored_source); i++) {
        fr_stored_source s;
        memcpy(&s, data + i * sizeof s, sizeof s);
        char why[256];
        if (fr_pipeline_check_source(&s, why, sizeof why) != 0) {
            FUZZ_CHECK(why[0] != '\0');
            return 0;
        }
        FUZZ_CHECK(memchr(s.name, '\0', sizeof s.name) != NULL && s.name[0] != '\0');
        FUZZ_CHECK(s.max_ts == INT64_MIN || (s.max_ts >= 0 && s.max_ts <= FR_TS_MAX));
    }
    return 0;
}
