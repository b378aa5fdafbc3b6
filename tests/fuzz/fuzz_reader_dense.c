/* The serving reader's dense blob (fr_reader_parse_version) under a manifest written for it (the
 * fuzz model's config, the blob's own length, count field and checksum), so the fuzzer explores the
 * blob itself rather than the checksum; then the model built from it scores, as the reader does. */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "fr_bytes.h"
#include "fr_reader.h"
#include "fr_model_json.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fr_model_config cfg;
    fuzz_model_config(&cfg);
    json_t *mc = fr_config_to_json(&cfg);
    char hash[17];
    snprintf(hash, sizeof hash, "%016" PRIx64, (uint64_t)XXH3_64bits(data, size));
    json_t *o = json_pack("{s:i, s:s, s:i, s:i, s:s, s:o, s:{s:I, s:I, s:s}}", "format_version", 1, "version", "7",
                          "row_shards", 64, "row_format", 1, "row_shard_fn", "mul_0x9E3779B97F4A7C15_shr58",
                          "model_config", mc, "dense", "count", (json_int_t)(size >= 8 ? fr_get_u32le(data + 4) : 0),
                          "bytes", (json_int_t)size, "xxh3_64", hash);
    char *manifest = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!manifest) return 0;
    float *dense = NULL;
    size_t count = 0;
    char err[256];
    if (fr_reader_parse_version(manifest, strlen(manifest), data, size, 7, &cfg, NULL, &dense, &count, NULL, err,
                                sizeof err) == 0) {
        fr_model *m = fr_model_create_weights_only(&cfg, err, sizeof err);
        FUZZ_CHECK(m != NULL);
        if (fr_model_set_dense(m, dense, NULL, count) == 0) {
            fr_features f;
            fuzz_features(&f, 0);
            float out[FR_NTASKS];
            fr_model_predict(m, &f, 1, out);
        }
        fr_model_free(m);
    } else {
        FUZZ_CHECK(err[0] != '\0' && dense == NULL);
    }
    free(dense);
    free(manifest);
    return 0;
}
