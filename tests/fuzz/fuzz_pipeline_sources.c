/* The pipeline's blob "sources" (fr_pipeline_decode_sources): accepted names are strings and the
 * event times leave room for the watermark's lateness subtraction. */
#include <stdint.h>
#include <string.h>

#include "fr_pipeline.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static fr_stored_source out[FR_MAX_SOURCES];
    char err[256];
    int n = fr_pipeline_decode_sources(data, size, out, FR_MAX_SOURCES, err, sizeof err);
    if (n < 0) {
        FUZZ_CHECK(err[0] != '\0');
        return 0;
    }
    FUZZ_CHECK(n <= FR_MAX_SOURCES);
    for (int i = 0; i < n; i++) {
        FUZZ_CHECK(memchr(out[i].name, '\0', sizeof out[i].name) != NULL);
        FUZZ_CHECK(out[i].max_ts == INT64_MIN || (out[i].max_ts >= 0 && out[i].max_ts <= FR_TS_MAX));
    }
    return 0;
}
