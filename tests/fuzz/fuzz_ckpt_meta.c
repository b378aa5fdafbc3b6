/* The checkpoint meta (fr_ckpt_decode_meta): any bytes are refused with a message or give a model
 * of the stored config that scores. */
#include <stdint.h>
#include <stdlib.h>

#include "fr_ckpt.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t *rows = NULL;
    char err[256];
    fr_model *m = fr_ckpt_decode_meta(data, size, &rows, err, sizeof err);
    if (!m) {
        FUZZ_CHECK(err[0] != '\0' && rows == NULL);
        return 0;
    }
    FUZZ_CHECK(rows != NULL);
    fr_features f;
    fuzz_features(&f, 0);
    float out[FR_NTASKS];
    fr_model_predict(m, &f, 0, out);
    free(rows);
    fr_model_free(m);
    return 0;
}
