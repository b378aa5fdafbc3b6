/* The join's merge buffer (blob "merge", stream/fr_groups.h) restored into two groups whose
 * watermarks the input's first 16 bytes set: what loads releases in non-decreasing key order, every
 * key below its group's watermark, and exports back to the same bytes (the record is canonical). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fr_bytes.h"
#include "fr_groups.h"
#include "fuzz_util.h"

typedef struct {
    int64_t last;
    int64_t wm[2];
    int n;
} seen;

static void check_released(const fr_sample *s, const fr_groups_origin *o, void *ctx)
{
    (void)s;
    seen *k = ctx;
    FUZZ_CHECK(o->key >= k->last);
    FUZZ_CHECK(o->group >= 0 && o->group < 2 && o->key < k->wm[o->group]);
    FUZZ_CHECK(o->id_len >= 1 && o->id_len <= 256);
    k->last = o->key;
    k->n++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 16) return 0;
    fr_join_config jc = {.click_window_ms = 30 * 60 * 1000, .attribution_window_ms = 7LL * 24 * 3600 * 1000};
    fr_groups *g = fr_groups_create(&jc, 2);
    if (!g) return 0;
    seen k = {INT64_MIN, {(int64_t)fr_get_u64le(data), (int64_t)fr_get_u64le(data + 8)}, 0};
    for (int i = 0; i < 2; i++)
        if (k.wm[i] != INT64_MIN) FUZZ_CHECK(fr_groups_advance(g, i, k.wm[i]) == 0);
    char why[300];
    if (fr_groups_import_buffer(g, data + 16, size - 16, NULL, NULL, why, sizeof why) == 0) {
        size_t n = fr_groups_export_buffer(g, NULL, 0);
        FUZZ_CHECK(n == size - 16);
        unsigned char *again = malloc(n);
        if (again) {
            FUZZ_CHECK(fr_groups_export_buffer(g, again, n) == n);
            FUZZ_CHECK(memcmp(again, data + 16, n) == 0);
            free(again);
        }
        const size_t buffered = fr_groups_buffered(g);
        FUZZ_CHECK(fr_groups_release(g, INT64_MAX, check_released, &k) == buffered);
        FUZZ_CHECK((size_t)k.n == buffered);
    }
    fr_groups_free(g);
    return 0;
}
