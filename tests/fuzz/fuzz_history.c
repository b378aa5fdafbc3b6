/* The metrics' history as a checkpoint stores it (store/fr_ckpt_history.c). First byte even: one
 * record (blob "history.SEQ", fr_history_record_decode): an accepted record encodes back to the
 * bytes it came from. Odd: the state (blob "history", fr_history_decode_state, 6 metrics): an
 * accepted state with a bucket open encodes back to its bytes; then a sample past the open bucket
 * closes it, and the record the next checkpoint would write is accepted by the record decoder. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fr_history.h"
#include "fuzz_util.h"

enum { N = 6 };

static int refuse_drop(void *ctx, uint64_t seq)
{
    (void)ctx, (void)seq;
    return 0;
}

static int check_put(void *ctx, uint64_t seq, const void *bytes, size_t len)
{
    fr_history_record *r = ctx;
    char why[320];
    FUZZ_CHECK(fr_history_record_decode(r, bytes, len, why, sizeof why) == 0);
    FUZZ_CHECK(r->seq == seq && r->n == N);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static fr_history_record rec;
    static unsigned char again[64 + 2 * FR_HISTORY_MAX_METRICS * 48];
    static fr_metric running[N];
    if (size < 1) return 0;
    const uint8_t *in = data + 1;
    const size_t len = size - 1;
    char why[320];
    if ((data[0] & 1) == 0) {
        if (fr_history_record_decode(&rec, in, len, why, sizeof why) != 0) return 0;
        FUZZ_CHECK(rec.n >= 1 && rec.n <= FR_HISTORY_MAX_METRICS);
        size_t n = fr_history_record_encode(&rec, again, sizeof again);
        FUZZ_CHECK(n == len && memcmp(again, in, n) == 0);
        return 0;
    }
    fr_history *h = fr_history_create(N, 3600000, FR_HISTORY_MAX_KEEP);
    FUZZ_CHECK(h != NULL);
    if (fr_history_decode_state(h, in, len, why, sizeof why) == 0 && fr_history_open_start(h) != INT64_MIN) {
        size_t n = fr_history_encode_state(h, NULL, 0);
        unsigned char *back = malloc(n);
        FUZZ_CHECK(back != NULL);
        fr_history_encode_state(h, back, n);
        FUZZ_CHECK(n == len && memcmp(back, in, n) == 0);
        free(back);
        /* the running metrics hold at least the open bucket, as the pipeline's do */
        memcpy(running, fr_history_open_metrics(h), sizeof running);
        const int64_t next = fr_history_open_start(h) + fr_history_open_width(h);
        fr_metric *open = fr_history_advance(h, next, running);
        FUZZ_CHECK(open != NULL);
        fr_metric_add(&open[0], 0.25, 1, 1);
        FUZZ_CHECK(fr_history_save_records(h, refuse_drop, check_put, &rec) == 0);
        fr_history_committed(h);
    }
    fr_history_free(h);
    return 0;
}
