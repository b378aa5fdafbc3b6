/* Protobuf event decoding (fr_event_decode_pb) with the default schema: any bytes, bare or in the
 * Confluent framing, give an event that keeps the header's promises, or a reason. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "fr_event_pb.h"
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
    int64_t schema_id = 42;
    fr_reject_reason r = fr_event_decode_pb(&schema, (const char *)data, size, &ev, &schema_id, err, sizeof err);
    FUZZ_CHECK(r >= FR_REJECT_NONE && r < FR_REJECT_NREASONS);
    /* a schema id is reported exactly when the framing was read */
    FUZZ_CHECK(schema_id >= -1 && schema_id <= (int64_t)UINT32_MAX);
    FUZZ_CHECK(schema_id == -1 || (size >= 6 && data[0] == 0));
    if (r != FR_REJECT_NONE) {
        FUZZ_CHECK(memchr(err, '\0', sizeof err) != NULL);
        FUZZ_CHECK(err[0] != '\0');
        return 0;
    }
    FUZZ_CHECK(size > 0 && (data[0] != 0) == (schema_id == -1));
    FUZZ_CHECK(ev.type >= 0 && ev.type < FR_EV_NTYPES);
    FUZZ_CHECK(ev.id_len > 0 && ev.id_len <= FR_ID_MAX && ev.id[ev.id_len] == '\0');
    FUZZ_CHECK(strlen(ev.id) == ev.id_len);
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
