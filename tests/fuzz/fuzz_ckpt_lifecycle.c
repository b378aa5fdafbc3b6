/* The blob "lifecycle" (fr_ckpt_decode_lifecycle: the model's clock), set on the fuzz model with a
 * TTL and admission on every table, which then trains mini-batches at and after that clock (its
 * sweeps and halvings read it). Input: the blob, then optionally 8 bytes of sample time. */
#include <stdint.h>
#include <string.h>

#include "fr_ckpt.h"
#include "fr_event.h"
#include "fuzz_util.h"

enum { LIFECYCLE_BYTES = 12 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fr_model_config cfg;
    fuzz_model_config(&cfg);
    char err[256];
    fr_model *m = fr_model_create(&cfg, err, sizeof err);
    FUZZ_CHECK(m != NULL);
    fr_row_policy rp;
    fr_row_policy_defaults(&rp);
    rp.admit_after = 2;
    rp.admit_width_log2 = 11;
    rp.ttl_ms = 60 * 1000;
    rp.admit_half_life_ms = 3600 * 1000;
    for (uint32_t t = 0; t < fr_model_table_count(m); t++)
        FUZZ_CHECK(fr_model_set_row_policy(m, t, &rp, err, sizeof err) == 0);
    size_t blob = size < LIFECYCLE_BYTES ? size : LIFECYCLE_BYTES;
    int64_t clock;
    if (fr_ckpt_decode_lifecycle(data, blob, &clock, err, sizeof err) == 0) {
        FUZZ_CHECK(clock >= 0 && fr_model_set_clock(m, clock) == 0);
        /* samples as the joiner emits them: event times in [0, FR_TS_MAX] */
        uint64_t raw = 0;
        if (size >= LIFECYCLE_BYTES + 8) memcpy(&raw, data + LIFECYCLE_BYTES, 8);
        int64_t ts = (int64_t)(raw % (uint64_t)(FR_TS_MAX + 1));
        fr_sample s[4] = {0};
        for (int round = 0; round < 3; round++) {
            for (int i = 0; i < 4; i++) {
                fuzz_features(&s[i].f, (uint64_t)i);
                s[i].ts = ts;
                s[i].has_label[0] = 1, s[i].weight[0] = 1;
            }
            fr_model_train(m, s, 4, NULL);
            ts += 600000; /* 10 minutes: a sweep and maybe a halving */
        }
    } else {
        FUZZ_CHECK(err[0] != '\0');
    }
    fr_model_free(m);
    return 0;
}
