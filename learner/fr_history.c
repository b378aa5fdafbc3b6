#include "fr_history.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fr_bytes.h"

struct fr_history {
    uint32_t n, keep;
    int64_t width_ms;    /* of the buckets opened from now on */
    int64_t open_start;  /* INT64_MIN: none open */
    int64_t open_width;
    uint64_t seq;        /* records closed */
    uint64_t first;      /* records below it are deleted from the store */
    fr_metric *open;     /* [n] */
    /* Records closed since the last commit, encoded: seq pend_base + i, so pend_base + pend_n == seq. */
    unsigned char **pend;
    size_t *pend_len;
    size_t pend_n, pend_cap;
    uint64_t pend_base;
};

enum { STAT_BYTES = 8 + 5 * 8, RECORD_HEAD = 1 + 8 + 8 + 8 + 2, STATE_HEAD = 1 + 8 + 8 + 8 + 8 + 2 };

fr_history *fr_history_create(uint32_t n, int64_t width_ms, uint32_t keep)
{
    if (n < 1 || n > FR_HISTORY_MAX_METRICS || width_ms < 1 || width_ms > FR_HISTORY_MAX_WIDTH_MS || keep < 1 ||
        keep > FR_HISTORY_MAX_KEEP)
        return NULL;
    fr_history *h = calloc(1, sizeof *h);
    if (!h) return NULL;
    h->open = calloc(n, sizeof *h->open);
    if (!h->open) {
        free(h);
        return NULL;
    }
    h->n = n;
    h->keep = keep;
    h->width_ms = h->open_width = width_ms;
    h->open_start = INT64_MIN;
    return h;
}

static void drop_pending(fr_history *h)
{
    for (size_t i = 0; i < h->pend_n; i++) free(h->pend[i]);
    h->pend_n = 0;
    h->pend_base = h->seq;
}

void fr_history_free(fr_history *h)
{
    if (!h) return;
    drop_pending(h);
    free(h->pend);
    free(h->pend_len);
    free(h->open);
    free(h);
}

void fr_history_stat_of(const fr_metric *m, fr_history_stat *out)
{
    double auc = m->count ? fr_metric_auc(m) : 0.5; /* 4096 bins: most scenarios' buckets of CVR are empty */
    *out = (fr_history_stat){.count = m->count, .weight = m->weight, .loss = m->loss, .label_sum = m->label_sum,
                             .pred_sum = m->pred_sum, .auc = auc >= 0 && auc <= 1 ? auc : 0.5};
}

/* Queues the open bucket's record; -1 when out of memory (the bucket is then lost, nothing else). */
static int queue_record(fr_history *h, const fr_history_record *r)
{
    size_t len = fr_history_record_encode(r, NULL, 0);
    unsigned char *bytes = malloc(len);
    if (!bytes) return -1;
    fr_history_record_encode(r, bytes, len);
    if (h->pend_n == h->pend_cap) {
        size_t cap = h->pend_cap ? 2 * h->pend_cap : 16;
        unsigned char **p = realloc(h->pend, cap * sizeof *p);
        if (p) h->pend = p;
        size_t *l = p ? realloc(h->pend_len, cap * sizeof *l) : NULL;
        if (l) h->pend_len = l;
        if (!p || !l) {
            free(bytes);
            return -1;
        }
        h->pend_cap = cap;
    }
    h->pend[h->pend_n] = bytes;
    h->pend_len[h->pend_n++] = len;
    /* Older ones would be deleted by the checkpoint anyway: the queue stays within keep. */
    if (h->pend_n > h->keep) {
        free(h->pend[0]);
        memmove(h->pend, h->pend + 1, (h->pend_n - 1) * sizeof *h->pend);
        memmove(h->pend_len, h->pend_len + 1, (h->pend_n - 1) * sizeof *h->pend_len);
        h->pend_n--;
        h->pend_base++;
    }
    return 0;
}

fr_metric *fr_history_advance(fr_history *h, int64_t ts, const fr_metric *running)
{
    if (ts < 0) ts = 0;
    if (ts > FR_HISTORY_MAX_TS) ts = FR_HISTORY_MAX_TS;
    if (h->open_start != INT64_MIN && ts < h->open_start + h->open_width) return h->open;
    if (h->open_start != INT64_MIN) {
        fr_history_record *r = malloc(sizeof *r);
        if (!r) return NULL;
        r->seq = h->seq;
        r->start_ms = h->open_start;
        r->width_ms = h->open_width;
        r->n = h->n;
        for (uint32_t i = 0; i < h->n; i++) {
            fr_history_stat_of(&h->open[i], &r->bucket[i]);
            fr_history_stat_of(&running[i], &r->total[i]);
        }
        int rc = queue_record(h, r);
        free(r);
        if (rc != 0) return NULL;
        h->seq++;
        for (uint32_t i = 0; i < h->n; i++) fr_metric_reset(&h->open[i]);
    }
    h->open_width = h->width_ms;
    h->open_start = ts - ts % h->open_width;
    return h->open;
}

uint64_t fr_history_closed(const fr_history *h) { return h->seq; }
int64_t fr_history_open_start(const fr_history *h) { return h->open_start; }
int64_t fr_history_open_width(const fr_history *h) { return h->open_width; }
uint32_t fr_history_count(const fr_history *h) { return h->n; }
const fr_metric *fr_history_open_metrics(const fr_history *h) { return h->open; }

/* Records below it are gone once the next checkpoint is committed. */
static uint64_t first_after_save(const fr_history *h)
{
    uint64_t f = h->seq > h->keep ? h->seq - h->keep : 0;
    return f > h->first ? f : h->first;
}

int fr_history_save_records(const fr_history *h, int (*drop)(void *ctx, uint64_t seq),
                            int (*put)(void *ctx, uint64_t seq, const void *bytes, size_t len), void *ctx)
{
    const uint64_t first = first_after_save(h);
    for (uint64_t s = h->first; s < first; s++) {
        int rc = drop(ctx, s);
        if (rc) return rc;
    }
    for (size_t i = 0; i < h->pend_n; i++) {
        if (h->pend_base + i < first) continue;
        int rc = put(ctx, h->pend_base + i, h->pend[i], h->pend_len[i]);
        if (rc) return rc;
    }
    return 0;
}

void fr_history_committed(fr_history *h)
{
    h->first = first_after_save(h);
    drop_pending(h);
}

size_t fr_history_encode_state(const fr_history *h, void *buf, size_t cap)
{
    size_t need = STATE_HEAD;
    for (uint32_t i = 0; i < h->n; i++) need += fr_metric_encode(&h->open[i], NULL, 0);
    if (!buf || cap < need) return need;
    fr_bytes_out o = fr_bytes_out_init(buf, need);
    fr_out_u8(&o, FR_HISTORY_VERSION);
    fr_out_u64le(&o, (uint64_t)h->open_width);
    fr_out_u64le(&o, h->seq);
    fr_out_u64le(&o, first_after_save(h));
    fr_out_u64le(&o, (uint64_t)h->open_start);
    fr_out_u16le(&o, (uint16_t)h->n);
    size_t off = STATE_HEAD;
    for (uint32_t i = 0; i < h->n; i++) off += fr_metric_encode(&h->open[i], (unsigned char *)buf + off, need - off);
    return need;
}

static int bucket_ok(int64_t start, int64_t width) { return start >= 0 && start <= FR_HISTORY_MAX_TS && start % width == 0; }

int fr_history_decode_state(fr_history *h, const void *buf, size_t len, char *why, size_t whylen)
{
    fr_bytes_in r = fr_bytes_in_init(buf, len);
    const unsigned version = fr_in_u8(&r);
    const int64_t width = fr_in_i64le(&r);
    const uint64_t seq = fr_in_u64le(&r), first = fr_in_u64le(&r);
    const int64_t start = fr_in_i64le(&r);
    const unsigned n = fr_in_u16le(&r);
    if (r.overrun) {
        snprintf(why, whylen, "cut short (%zu bytes)", len);
        return -1;
    }
    if (version != FR_HISTORY_VERSION) {
        snprintf(why, whylen, "version %u (this build reads %d)", version, FR_HISTORY_VERSION);
        return -1;
    }
    if (width < 1 || width > FR_HISTORY_MAX_WIDTH_MS) {
        snprintf(why, whylen, "a bucket width of %lld ms, outside [1, %lld]", (long long)width,
                 (long long)FR_HISTORY_MAX_WIDTH_MS);
        return -1;
    }
    if (first > seq || seq - first > FR_HISTORY_MAX_KEEP) {
        snprintf(why, whylen, "%llu records deleted of %llu closed (at most %d are kept)", (unsigned long long)first,
                 (unsigned long long)seq, FR_HISTORY_MAX_KEEP);
        return -1;
    }
    if (start != INT64_MIN && !bucket_ok(start, width)) {
        snprintf(why, whylen, "an open bucket starting at %lld ms, not a multiple of its width %lld in [0, "
                              "9999-12-31]",
                 (long long)start, (long long)width);
        return -1;
    }
    if (n != h->n) {
        snprintf(why, whylen, "%u metrics, the configuration has %u (3 tasks x (scenarios + 1))", n, h->n);
        return -1;
    }
    fr_metric *open = malloc((size_t)n * sizeof *open);
    if (!open) {
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    size_t off = STATE_HEAD;
    for (unsigned i = 0; i < n; i++) {
        long used = fr_metric_decode(&open[i], (const unsigned char *)buf + off, len - off);
        const char *bad = used == -1 ? "cut short or its bins out of range, out of order or empty"
                          : used < 0 ? "a sum or a bin not finite or below 0"
                          : start == INT64_MIN && open[i].count ? "samples while no bucket is open"
                                                                : NULL;
        if (bad) {
            snprintf(why, whylen, "open bucket, metric %u: %s", i, bad);
            free(open);
            return -1;
        }
        off += (size_t)used;
    }
    if (off != len) {
        snprintf(why, whylen, "%zu bytes after its %u metrics", len - off, n);
        free(open);
        return -1;
    }
    free(h->open);
    h->open = open;
    h->open_start = start;
    h->open_width = start == INT64_MIN ? h->width_ms : width;
    h->seq = seq;
    h->first = first;
    drop_pending(h);
    return 0;
}

size_t fr_history_record_encode(const fr_history_record *r, void *buf, size_t cap)
{
    const size_t need = RECORD_HEAD + (size_t)r->n * 2 * STAT_BYTES;
    if (!buf || cap < need) return need;
    fr_bytes_out o = fr_bytes_out_init(buf, need);
    fr_out_u8(&o, FR_HISTORY_VERSION);
    fr_out_u64le(&o, r->seq);
    fr_out_u64le(&o, (uint64_t)r->start_ms);
    fr_out_u64le(&o, (uint64_t)r->width_ms);
    fr_out_u16le(&o, (uint16_t)r->n);
    for (uint32_t i = 0; i < r->n; i++)
        for (int k = 0; k < 2; k++) {
            const fr_history_stat *s = k ? &r->total[i] : &r->bucket[i];
            fr_out_u64le(&o, s->count);
            fr_out_f64le(&o, s->weight);
            fr_out_f64le(&o, s->loss);
            fr_out_f64le(&o, s->label_sum);
            fr_out_f64le(&o, s->pred_sum);
            fr_out_f64le(&o, s->auc);
        }
    return need;
}

static const char *stat_bad(const fr_history_stat *s)
{
    const double sums[] = {s->weight, s->loss, s->label_sum, s->pred_sum};
    for (size_t i = 0; i < sizeof sums / sizeof sums[0]; i++)
        if (!(isfinite(sums[i]) && sums[i] >= 0)) return "a sum not finite or below 0";
    if (!(s->auc >= 0 && s->auc <= 1)) return "an AUC outside [0, 1]";
    return NULL;
}

int fr_history_record_decode(fr_history_record *r, const void *buf, size_t len, char *why, size_t whylen)
{
    memset(r, 0, sizeof *r);
    fr_bytes_in in = fr_bytes_in_init(buf, len);
    const unsigned version = fr_in_u8(&in);
    r->seq = fr_in_u64le(&in);
    r->start_ms = fr_in_i64le(&in);
    r->width_ms = fr_in_i64le(&in);
    const unsigned n = fr_in_u16le(&in);
    if (in.overrun) {
        snprintf(why, whylen, "cut short (%zu bytes)", len);
        return -1;
    }
    if (version != FR_HISTORY_VERSION) {
        snprintf(why, whylen, "version %u (this build reads %d)", version, FR_HISTORY_VERSION);
        return -1;
    }
    if (n < 1 || n > FR_HISTORY_MAX_METRICS) {
        snprintf(why, whylen, "%u metrics, outside [1, %d]", n, FR_HISTORY_MAX_METRICS);
        return -1;
    }
    if (len != RECORD_HEAD + (size_t)n * 2 * STAT_BYTES) {
        snprintf(why, whylen, "%zu bytes, %u metrics take %zu", len, n, RECORD_HEAD + (size_t)n * 2 * STAT_BYTES);
        return -1;
    }
    if (r->width_ms < 1 || r->width_ms > FR_HISTORY_MAX_WIDTH_MS || !bucket_ok(r->start_ms, r->width_ms)) {
        snprintf(why, whylen, "bucket [%lld, +%lld ms): a width outside [1 ms, 366 days] or a start not a multiple "
                              "of it in [0, 9999-12-31]",
                 (long long)r->start_ms, (long long)r->width_ms);
        return -1;
    }
    r->n = n;
    for (unsigned i = 0; i < n; i++)
        for (int k = 0; k < 2; k++) {
            fr_history_stat *s = k ? &r->total[i] : &r->bucket[i];
            s->count = fr_in_u64le(&in);
            s->weight = fr_in_f64le(&in);
            s->loss = fr_in_f64le(&in);
            s->label_sum = fr_in_f64le(&in);
            s->pred_sum = fr_in_f64le(&in);
            s->auc = fr_in_f64le(&in);
            const char *bad = stat_bad(s);
            if (bad) {
                snprintf(why, whylen, "metric %u, %s: %s", i, k ? "total" : "bucket", bad);
                return -1;
            }
        }
    for (unsigned i = 0; i < n; i++)
        if (r->total[i].count < r->bucket[i].count) {
            snprintf(why, whylen, "metric %u: its total counts %llu samples, its bucket %llu", i,
                     (unsigned long long)r->total[i].count, (unsigned long long)r->bucket[i].count);
            return -1;
        }
    return 0;
}
