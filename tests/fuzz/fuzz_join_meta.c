/* The join meta blob (fr_join_check_meta, fr_join_import_meta) into a fresh join, which then takes
 * an impression and its click and fires their timers. Input: policy byte, the blob. */
#include <stdint.h>
#include <string.h>

#include "fr_join.h"
#include "fuzz_util.h"

static fr_event event(fr_event_type type, int64_t ts)
{
    fr_event ev;
    memset(&ev, 0, sizeof ev);
    ev.type = type;
    memcpy(ev.id, "imp-1", 6);
    ev.id_len = 5;
    ev.ts = ts;
    ev.sample_rate = 1;
    ev.features.cat[0] = 11;
    return ev;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    fr_join_config jc = {.click_window_ms = 30 * 60 * 1000,
                         .attribution_window_ms = 7LL * 24 * 3600 * 1000,
                         .policy = (fr_policy_id)(data[0] % FR_POLICY_ORACLE),
                         .observation_window_ms = 15 * 60 * 1000};
    fr_join *j = fr_join_create(&jc);
    if (!j) return 0;
    char err[256];
    if (fr_join_check_meta(j, data + 1, size - 1, err, sizeof err) == 0 &&
        fr_join_import_meta(j, data + 1, size - 1) == 0) {
        int64_t wm = fr_join_watermark(j);
        int64_t ts = wm > 0 && wm < FR_TS_MAX ? wm : 1000;
        fr_event imp = event(FR_EV_IMPRESSION, ts), click = event(FR_EV_CLICK, ts);
        fr_join_add(j, &imp, NULL, NULL);
        fr_join_add(j, &click, NULL, NULL);
        FUZZ_CHECK(fr_join_advance(j, INT64_MAX, NULL, NULL) == 0);
        unsigned char out[1024];
        size_t n = fr_join_export_meta(j, out, sizeof out);
        FUZZ_CHECK(n <= sizeof out && fr_join_import_meta(j, out, n) == 0);
    }
    fr_join_free(j);
    return 0;
}
