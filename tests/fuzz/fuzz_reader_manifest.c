/* The serving reader's load of a version (fr_reader_parse_version: manifest and dense blob), then
 * the model it builds from them and a score, as fr_reader_load_active does. Input: the manifest
 * text, a 0 byte, the dense blob; the version is 7 (the seeds'). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fr_reader.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *sep = memchr(data, 0, size);
    if (!sep) return 0;
    size_t mlen = (size_t)(sep - data);
    fr_model_config cfg;
    float *dense = NULL;
    size_t count = 0;
    char err[256];
    fr_serve_transform serve = FR_SERVE_NTRANSFORMS;
    if (fr_reader_parse_version((const char *)data, mlen, sep + 1, size - mlen - 1, 7, &cfg, &serve, &dense, &count,
                                NULL, err, sizeof err) != 0) {
        FUZZ_CHECK(err[0] != '\0' && dense == NULL);
        return 0;
    }
    FUZZ_CHECK(serve == FR_SERVE_IDENTITY || serve == FR_SERVE_ODDS);
    fr_model *m = fr_model_create_weights_only(&cfg, err, sizeof err);
    if (m && fr_model_set_dense(m, dense, NULL, count) == 0) {
        fr_features f;
        fuzz_features(&f, 0);
        float out[FR_NTASKS];
        fr_model_predict(m, &f, 0, out);
    }
    fr_model_free(m);
    free(dense);
    return 0;
}
