/* The pipeline's blob "sources" (a count, then each source's name and largest event time, decoded by
 * fr_pipeline_sources_decode as restoring does): accepted names are non-empty strings in strictly
 * ascending order, the event times leave room for the watermark's lateness subtraction, and the
 * entries encode back to the same bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fr_pipeline.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static fr_stored_source s[FR_MAX_SOURCES];
    char why[256];
    long n = fr_pipeline_sources_decode(data, size, s, why, sizeof why);
    if (n < 0) {
        FUZZ_CHECK(why[0] != '\0');
        return 0;
    }
    FUZZ_CHECK(n <= FR_MAX_SOURCES);
    for (long i = 0; i < n; i++) {
        FUZZ_CHECK(memchr(s[i].name, '\0', sizeof s[i].name) != NULL && s[i].name[0] != '\0');
        FUZZ_CHECK(s[i].max_ts == INT64_MIN || (s[i].max_ts >= 0 && s[i].max_ts <= FR_TS_MAX));
        FUZZ_CHECK(fr_pipeline_check_source(&s[i], why, sizeof why) == 0);
        if (i > 0) FUZZ_CHECK(strcmp(s[i - 1].name, s[i].name) < 0);
    }
    size_t len = fr_pipeline_sources_encode(s, (size_t)n, NULL, 0);
    unsigned char *again = malloc(len);
    if (again) {
        fr_pipeline_sources_encode(s, (size_t)n, again, len);
        FUZZ_CHECK(len == size && memcmp(again, data, size) == 0);
    }
    free(again);
    return 0;
}
