/* A Redis row value (fr_redis_row_decode), for an emb_dim taken from the first byte (1..64). */
#include <stdint.h>

#include "fr_redis_layout.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    int dim = 1 + data[0] % 64;
    float w[64];
    uint64_t version;
    char err[160];
    if (fr_redis_row_decode(data + 1, size - 1, dim, &version, w, err, sizeof err) == 0)
        FUZZ_CHECK(size - 1 == FR_REDIS_ROW_HEADER + 4 * (size_t)dim);
    else
        FUZZ_CHECK(err[0] != '\0');
    return 0;
}
