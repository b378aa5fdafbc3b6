/* Event decoding (fr_event_decode) with the default schema: any bytes give an event that keeps the
 * header's promises, or a reason. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "fr_event.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static fr_schema schema;
    static int ready;
    if (!ready) {
        fr_schema_defaults(&schema);
        ready = 1;
    }
    fr_event ev;
    char err[256];
    fr_reject_reason r = fr_event_decode(&schema, (const char *)data, size, &ev, err, sizeof err);
    FUZZ_CHECK(r >= FR_REJECT_NONE && r < FR_REJECT_NREASONS);
    if (r != FR_REJECT_NONE) {
        FUZZ_CHECK(memchr(err, '\0', sizeof err) != NULL);
        return 0;
    }
    FUZZ_CHECK(ev.type >= 0 && ev.type < FR_EV_NTYPES);
    FUZZ_CHECK(ev.id_len > 0 && ev.id_len <= FR_ID_MAX && ev.id[ev.id_len] == '\0');
    FUZZ_CHECK(ev.ts >= 0 && ev.ts <= FR_TS_MAX);
    if (ev.type == FR_EV_IMPRESSION) {
        FUZZ_CHECK(ev.scenario >= 0 && ev.scenario < schema.n_scenarios);
        FUZZ_CHECK(ev.sample_rate > 0 && ev.sample_rate <= 1);
        for (int i = 0; i < FR_MAX_MULTI; i++) FUZZ_CHECK(ev.features.multi_len[i] <= FR_MAX_MULTI_LEN);
        for (int i = 0; i < FR_MAX_NUM; i++) FUZZ_CHECK(isfinite(ev.features.num[i]));
    }
    FUZZ_CHECK(isfinite(ev.value));
    return 0;
}
