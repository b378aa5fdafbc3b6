/* The pipeline's blob "evtime" (every source's held messages and pace, walked by fr_evtime_walk_all
 * into fr_evtime_import as restoring does): what it accepts exports to a blob it accepts again, and
 * the restored state keeps taking messages. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fr_evtime.h"
#include "fr_pipeline.h"
#include "fuzz_util.h"

typedef struct {
    fr_evtime *et[8];
    char names[8][FR_SOURCE_NAME_MAX];
    size_t n;
} restored;

static int import_one(const char *name, const void *state, size_t len, void *ctx)
{
    restored *r = ctx;
    if (r->n == 8 || strlen(name) >= FR_SOURCE_NAME_MAX) return -1;
    fr_evtime *e = fr_evtime_create();
    if (!e) return -1;
    if (fr_evtime_import(e, state, len) != 0) {
        fr_evtime_free(e);
        return -1;
    }
    snprintf(r->names[r->n], sizeof r->names[r->n], "%s", name);
    r->et[r->n++] = e;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    restored r = {0};
    char name[FR_SOURCE_NAME_MAX];
    const char *why = fr_evtime_walk_all(data, size, import_one, &r, name, sizeof name);
    if (!why) {
        fr_evtime_named parts[8];
        for (size_t i = 0; i < r.n; i++) parts[i] = (fr_evtime_named){r.names[i], r.et[i]};
        size_t len = 0;
        unsigned char *again = fr_evtime_export_all(parts, r.n, &len);
        FUZZ_CHECK(again != NULL);
        restored r2 = {0};
        FUZZ_CHECK(fr_evtime_walk_all(again, len, import_one, &r2, name, sizeof name) == NULL);
        for (size_t i = 0; i < r2.n; i++) fr_evtime_free(r2.et[i]);
        free(again);
        fr_evtime_config c;
        fr_evtime_config_defaults(&c);
        for (size_t i = 0; i < r.n; i++) {
            fr_evtime_verdict v;
            int64_t t = fr_evtime_time(r.et[i]);
            (void)fr_evtime_offer(r.et[i], &c, t > 0 && t < FR_TS_MAX ? t + 1 : 1, 1, "{}", 2, &v);
        }
    }
    for (size_t i = 0; i < r.n; i++) fr_evtime_free(r.et[i]);
    return 0;
}
