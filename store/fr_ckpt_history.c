#include "fr_ckpt_history.h"

#include "fr_ckpt_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HISTORY_STATE "history"
#define HISTORY_RECORD "history."
enum { SEQ_DIGITS = 20 };

static void record_name(char out[48], uint64_t seq) { snprintf(out, 48, HISTORY_RECORD "%020" PRIu64, seq); }

static int drop_record(void *ctx, uint64_t seq)
{
    char name[48];
    record_name(name, seq);
    return fr_ckpt_delete_blob(ctx, name);
}

static int put_record(void *ctx, uint64_t seq, const void *bytes, size_t len)
{
    char name[48];
    record_name(name, seq);
    return fr_ckpt_put_blob(ctx, name, bytes, len);
}

int fr_ckpt_put_history(fr_ckpt_batch *b, const fr_history *h)
{
    if (fr_history_save_records(h, drop_record, put_record, b) != 0) return -1;
    size_t n = fr_history_encode_state(h, NULL, 0);
    unsigned char *buf = malloc(n);
    if (!buf) return ckpt_batch_fail(b, "out of memory encoding blob \"" HISTORY_STATE "\"");
    fr_history_encode_state(h, buf, n);
    int rc = fr_ckpt_put_blob(b, HISTORY_STATE, buf, n);
    free(buf);
    return rc;
}

int fr_ckpt_load_history(fr_ckpt *c, fr_history *h, char *err, size_t errlen)
{
    long n = fr_ckpt_get_blob(c, HISTORY_STATE, NULL, 0);
    if (n < 0) return 0;
    unsigned char *buf = malloc(n ? (size_t)n : 1);
    if (!buf) {
        snprintf(err, errlen, "checkpoint: out of memory reading blob \"" HISTORY_STATE "\" (%ld bytes)", n);
        return -1;
    }
    char why[320];
    int rc = 1;
    if (fr_ckpt_get_blob(c, HISTORY_STATE, buf, (size_t)n) != n) {
        snprintf(err, errlen, "checkpoint: blob \"" HISTORY_STATE "\" changed or could not be read");
        rc = -1;
    } else if (fr_history_decode_state(h, buf, (size_t)n, why, sizeof why) != 0) {
        snprintf(err, errlen, "checkpoint corrupt: blob \"" HISTORY_STATE "\" (the metrics' open bucket): %s", why);
        rc = -1;
    }
    free(buf);
    return rc;
}

typedef struct {
    int (*fn)(const fr_history_record *r, void *ctx);
    void *ctx;
    char *err;
    size_t errlen;
    fr_history_record *rec;
    int failed; /* the refusal is ours, in err */
} walk;

static int record_cb(const char *k, size_t kl, const void *v, size_t vl, void *ctx)
{
    walk *w = ctx;
    const size_t pl = strlen(HISTORY_RECORD);
    uint64_t seq = 0;
    int named = kl == pl + SEQ_DIGITS;
    for (size_t i = pl; named && i < kl; i++) {
        named = k[i] >= '0' && k[i] <= '9' && seq <= (UINT64_MAX - 9) / 10;
        seq = seq * 10 + (uint64_t)(k[i] - '0');
    }
    char why[320];
    if (!named)
        snprintf(why, sizeof why, "its name is not \"" HISTORY_RECORD "\" and %d digits", SEQ_DIGITS);
    else if (fr_history_record_decode(w->rec, v, vl, why, sizeof why) != 0)
        ; /* why says it */
    else if (w->rec->seq != seq)
        snprintf(why, sizeof why, "it holds record %" PRIu64, w->rec->seq);
    else
        return w->fn(w->rec, w->ctx);
    snprintf(w->err, w->errlen, "checkpoint corrupt: blob \"%.*s\" (a bucket of the metrics' history): %s",
             (int)(kl < 64 ? kl : 64), k, why);
    w->failed = 1;
    return -1;
}

int fr_ckpt_foreach_history(fr_ckpt *c, int (*fn)(const fr_history_record *r, void *ctx), void *ctx, char *err,
                            size_t errlen)
{
    walk w = {fn, ctx, err, errlen, malloc(sizeof(fr_history_record)), 0};
    if (!w.rec) {
        snprintf(err, errlen, "checkpoint: out of memory reading the metrics' history");
        return -1;
    }
    int rc = fr_ckpt_foreach_blob(c, HISTORY_RECORD, record_cb, &w);
    if (rc != 0 && !w.failed && rc == -1)
        snprintf(err, errlen, "checkpoint: reading the metrics' history (blobs \"" HISTORY_RECORD "*\") failed "
                              "(RocksDB read error)");
    free(w.rec);
    return rc;
}
