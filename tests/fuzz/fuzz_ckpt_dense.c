/* The checkpoint's dense value (fr_ckpt_decode_dense) into the fuzz model, which then scores and
 * trains one mini-batch. */
#include <stdint.h>

#include "fr_ckpt.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fr_model_config cfg;
    fuzz_model_config(&cfg);
    char err[256];
    fr_model *m = fr_model_create(&cfg, err, sizeof err);
    FUZZ_CHECK(m != NULL);
    if (fr_ckpt_decode_dense(m, data, size, err, sizeof err) == 0) {
        fr_sample s[4] = {0};
        for (int i = 0; i < 4; i++) {
            fuzz_features(&s[i].f, (uint64_t)i);
            s[i].scenario = i % 2;
            s[i].ts = 1000 * i;
            for (int t = 0; t < FR_NTASKS; t++)
                s[i].has_label[t] = 1, s[i].weight[t] = 1, s[i].label[t] = (float)(i & 1);
        }
        float preds[4][FR_NTASKS];
        fr_model_train(m, s, 4, preds);
    } else {
        FUZZ_CHECK(err[0] != '\0');
    }
    fr_model_free(m);
    return 0;
}
