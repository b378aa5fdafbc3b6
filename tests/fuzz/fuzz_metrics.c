/* Records of the pipeline's blob "metrics" (fr_metric_decode, one after another, as restoring
 * reads them): an accepted metric passes fr_metric_check, its AUC, log loss and calibration run,
 * and it encodes back to the bytes it came from. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fr_metrics.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static fr_metric m;
    static unsigned char again[64 + FR_METRIC_BINS * 18];
    size_t off = 0;
    while (off < size) {
        long used = fr_metric_decode(&m, data + off, size - off);
        FUZZ_CHECK(used == -1 || used == -2 || (used > 0 && (size_t)used <= size - off));
        if (used < 0) return 0;
        FUZZ_CHECK(fr_metric_check(&m) == 0);
        (void)fr_metric_auc(&m); /* may be NaN: finite sums whose products overflow (nothing promises more) */
        (void)fr_metric_logloss(&m);
        (void)fr_metric_calibration(&m);
        size_t n = fr_metric_encode(&m, again, sizeof again);
        FUZZ_CHECK(n == (size_t)used && memcmp(again, data + off, n) == 0);
        off += (size_t)used;
    }
    return 0;
}
