/* The pipeline's blob "guard" (the guard's record, decoded by fr_guard_decode as restoring does: it
 * accepts only what fr_guard_check does, and a record of this build's length encodes back to the same
 * bytes), then the guard
 * observing a stream of samples from its last event time on, with a max_pause so both ways out of a
 * pause run. */
#include <stdint.h>
#include <string.h>

#include "fr_guard.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fr_guard g;
    char why[256];
    if (fr_guard_decode(&g, data, size, why, sizeof why) != 0) {
        FUZZ_CHECK(why[0] != '\0');
        return 0;
    }
    FUZZ_CHECK(fr_guard_check(&g, why, sizeof why) == 0);
    /* a record of this build's sample kinds encodes back to its bytes (an older one, with fewer, grows) */
    unsigned char again[512];
    if (fr_guard_encode(&g, again, sizeof again) == size) FUZZ_CHECK(memcmp(again, data, size) == 0);
    fr_guard_config c;
    fr_guard_config_defaults(&c);
    c.max_pause_ms = 3600 * 1000;
    c.min_impressions = 10;
    c.min_clicks = 2;
    int64_t ts = g.last_ts > 0 ? g.last_ts : 0;
    char msg[512];
    for (int i = 0; i < 64; i++) {
        fr_sample s = {.ts = ts, .kind = i % 5 == 4 ? FR_SAMPLE_WINDOW : FR_SAMPLE_CLICK_WINDOW};
        s.label[FR_TASK_CTR] = (float)(i % 7 == 0);
        s.label[FR_TASK_CVR] = (float)(i % 11 == 0);
        fr_guard_observe(&g, &c, &s, msg, sizeof msg);
        if (fr_guard_paused(&g)) fr_guard_hold(&g, &s);
        FUZZ_CHECK(fr_guard_check(&g, why, sizeof why) == 0);
        double rs, rl;
        fr_guard_rates(&g.ctr, &rs, &rl);
        (void)fr_guard_reason_name((fr_guard_reason)g.reason);
        if (ts < INT64_MAX - 10 * 60 * 1000) ts += 10 * 60 * 1000;
    }
    return 0;
}
