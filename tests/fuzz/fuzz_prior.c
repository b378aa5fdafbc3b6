/* A stored prior record (keys "P" + id, daemon/fr_priors.h) as a restore loads it: input = id length
 * u8, the id, the record. What loads is a prediction in [0, 1] per task, not dirty (the checkpoint
 * already holds it), and the decoder agrees with the loader. */
#include <stdint.h>
#include <string.h>

#include "fr_priors.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size < 1u + data[0]) return 0;
    const size_t id_len = data[0];
    const char *id = (const char *)data + 1;
    const uint8_t *rec = data + 1 + id_len;
    const size_t len = size - 1 - id_len;
    fr_priors *m = fr_priors_create();
    if (!m) return 0;
    char why[300];
    float p[FR_NTASKS];
    const int dec = fr_priors_decode(rec, len, p, why, sizeof why);
    const int rc = fr_priors_load(m, id, id_len, rec, len, why, sizeof why);
    FUZZ_CHECK(rc == 0 || rc == -1);
    if (rc == 0) {
        FUZZ_CHECK(dec == 0);
        float got[FR_NTASKS];
        FUZZ_CHECK(fr_priors_get(m, id, id_len, got) == 1);
        for (int t = 0; t < FR_NTASKS; t++) FUZZ_CHECK(got[t] >= 0 && got[t] <= 1);
        FUZZ_CHECK(fr_priors_count(m) == 1);
        FUZZ_CHECK(fr_priors_foreach_dirty(m, NULL, NULL) == 0); /* nothing dirty: fn never called */
        FUZZ_CHECK(fr_priors_load(m, id, id_len, rec, len, why, sizeof why) == -1); /* twice */
    } else {
        FUZZ_CHECK(fr_priors_count(m) == 0);
    }
    fr_priors_free(m);
    return 0;
}
