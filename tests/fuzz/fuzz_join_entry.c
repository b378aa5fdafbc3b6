/* A stored join entry (fr_join_load_entry) into a fresh join, then every timer it arms fired.
 * Input: policy byte, id length byte, the id, the entry bytes. */
#include <math.h>
#include <stdint.h>

#include "fr_join.h"
#include "fuzz_util.h"

static void check_sample(const fr_sample *s, void *ctx)
{
    (void)ctx;
    FUZZ_CHECK(s->kind >= 0 && s->kind < FR_SAMPLE_NKINDS);
    for (int m = 0; m < FR_MAX_MULTI; m++) FUZZ_CHECK(s->f.multi_len[m] <= FR_MAX_MULTI_LEN);
    for (int t = 0; t < FR_NTASKS; t++) {
        FUZZ_CHECK(s->label[t] == 0 || s->label[t] == 1);
        FUZZ_CHECK(isfinite(s->weight[t]) && s->weight[t] >= 0);
    }
}

static int count_dirty(const char *id, size_t id_len, const void *bytes, size_t len, void *ctx)
{
    (void)id, (void)id_len, (void)bytes, (void)len;
    ++*(size_t *)ctx;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2 || (size_t)data[1] + 2 > size) return 0;
    fr_join_config jc = {.click_window_ms = 30 * 60 * 1000,
                         .attribution_window_ms = 7LL * 24 * 3600 * 1000,
                         .policy = (fr_policy_id)(data[0] % FR_POLICY_ORACLE),
                         .observation_window_ms = 15 * 60 * 1000,
                         .n_scenarios = 4};
    fr_join *j = fr_join_create(&jc);
    if (!j) return 0;
    const char *id = (const char *)data + 2;
    size_t id_len = data[1];
    char err[512];
    if (fr_join_load_entry(j, id, id_len, data + 2 + id_len, size - 2 - id_len, err, sizeof err) == 0) {
        FUZZ_CHECK(fr_join_entry_count(j) <= 1);
        FUZZ_CHECK(fr_join_advance(j, INT64_MAX, check_sample, NULL) == 0);
        size_t dirty = 0;
        fr_join_foreach_dirty(j, count_dirty, &dirty);
    }
    fr_join_free(j);
    return 0;
}
