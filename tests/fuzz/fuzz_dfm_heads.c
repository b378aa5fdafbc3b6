/* The delayed-feedback helper heads blob (fr_dfm_heads_import) into heads of the shape the seeds
 * were written with; what they then predict must be a probability (fr_dfm_weights' contract). */
#include <stdint.h>

#include "fr_dfm.h"
#include "fuzz_util.h"

enum { FUZZ_HEADS_LOG2 = 4, FUZZ_HEADS_NCAT = 3 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fr_dfm_heads *h = fr_dfm_heads_create(FUZZ_HEADS_LOG2, FUZZ_HEADS_NCAT, 0.05f);
    if (!h) return 0;
    if (fr_dfm_heads_import(h, data, size) == 0) {
        fr_features f;
        fuzz_features(&f, 0);
        double dp, rn;
        fr_dfm_heads_predict(h, &f, &dp, &rn);
        FUZZ_CHECK(dp >= 0 && dp <= 1 && rn >= 0 && rn <= 1);
        fr_sample s = {.f = f, .kind = FR_SAMPLE_MATURED, .has_label = {1, 1, 1}, .label = {1, 1, 1}};
        fr_dfm_heads_train(h, &s);
    }
    fr_dfm_heads_free(h);
    return 0;
}
