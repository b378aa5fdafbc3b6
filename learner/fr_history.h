/* fr_history: the progressive metrics over event time, for `freshet report`.
 *
 * The running metrics (fr_metrics.h) say where the model stands now; the history says how it got
 * there. Event time is cut into buckets of a fixed width (history.bucket_seconds, default 1 h);
 * for each bucket and each metric of the pipeline (task x scenario, the same layout as its running
 * metrics) a record keeps what the bucket's own samples scored and where the running metrics stood
 * when it closed: count, weight, log loss, label and prediction sums, AUC.
 *
 * A bucket is chosen by the scored sample's event time alone, never the wall clock, so a replay and
 * a restarted run record the same history. Samples leave the join in nearly ascending event time:
 * one past the open bucket closes it and opens its own (empty buckets in between get no record);
 * one before the open bucket is counted in the open bucket, since a closed record never changes.
 *
 * Closed records are numbered 0, 1, ... (seq) and stored one key each, written once by the
 * checkpoint after they close; only the newest `keep` are retained (history.keep, default 10 000;
 * older ones are deleted by the checkpoint that makes them fall out). The open bucket (its
 * histograms, since its AUC is computed when it closes) is part of the state blob written with
 * every checkpoint. Memory: the open bucket's metrics (64 KiB each) and the records closed since the
 * last checkpoint, encoded (at most `keep` of them, about 100 B per metric each).
 *
 * Pure: no I/O; a checkpoint hands the records to callbacks. Ownership: fr_history_create
 * allocates, fr_history_free releases. Not thread-safe. */
#ifndef FR_HISTORY_H
#define FR_HISTORY_H

#include <stddef.h>
#include <stdint.h>

#include "fr_metrics.h"

/* 3 tasks x (16 scenarios + "all") = 51 fit. */
enum { FR_HISTORY_MAX_METRICS = 64, FR_HISTORY_VERSION = 1, FR_HISTORY_MAX_KEEP = 1000000 };
#define FR_HISTORY_MAX_WIDTH_MS INT64_C(31622400000) /* 366 days */
#define FR_HISTORY_MAX_TS INT64_C(253402300799999)   /* 9999-12-31, as event times */

/* One metric over some samples. auc is 0.5 when they hold no positive or no negative. */
typedef struct {
    uint64_t count;
    double weight, loss, label_sum, pred_sum, auc;
} fr_history_stat;

/* A closed bucket: [start_ms, start_ms + width_ms) of event time. */
typedef struct {
    uint64_t seq;
    int64_t start_ms, width_ms;
    uint32_t n;                                      /* metrics, as the running metrics' layout */
    fr_history_stat bucket[FR_HISTORY_MAX_METRICS];  /* the bucket's own samples */
    fr_history_stat total[FR_HISTORY_MAX_METRICS];   /* the running metrics when it closed */
} fr_history_record;

typedef struct fr_history fr_history;

/* n metrics (1..FR_HISTORY_MAX_METRICS), buckets of width_ms (1..FR_HISTORY_MAX_WIDTH_MS), the
 * newest keep (1..FR_HISTORY_MAX_KEEP) records retained. NULL when out of memory or an argument is out of range. */
fr_history *fr_history_create(uint32_t n, int64_t width_ms, uint32_t keep);
void fr_history_free(fr_history *h);

/* A sample of event time ts is about to be scored: closes the open bucket when ts is past it,
 * recording running (n metrics, not yet holding this sample) as its totals. Returns the open
 * bucket's n metrics, which the caller adds the sample to (the same index as in running); NULL
 * only when out of memory queueing the closed record (the sample is then left out of the history,
 * never out of the running metrics). */
fr_metric *fr_history_advance(fr_history *h, int64_t ts, const fr_metric *running);

uint64_t fr_history_closed(const fr_history *h);   /* records closed so far (the next seq) */
int64_t fr_history_open_start(const fr_history *h); /* INT64_MIN when no bucket is open */
int64_t fr_history_open_width(const fr_history *h);
uint32_t fr_history_count(const fr_history *h);
/* The open bucket's metrics (n); they hold nothing when no bucket is open. */
const fr_metric *fr_history_open_metrics(const fr_history *h);

/* One metric's stat. */
void fr_history_stat_of(const fr_metric *m, fr_history_stat *out);

/* ---- checkpoint ---- */

/* What a checkpoint writes, in order: drop(seq) for every stored record retention now drops, then
 * put(seq, record bytes) for every record closed since the last fr_history_committed that is still
 * retained. Stops at, and returns, a callback's non-zero value. */
int fr_history_save_records(const fr_history *h, int (*drop)(void *ctx, uint64_t seq),
                            int (*put)(void *ctx, uint64_t seq, const void *bytes, size_t len), void *ctx);
/* The state blob (little-endian): version u8 (1), width_ms i64 of the open bucket, seq u64 (records
 * closed), first u64 (records below it are deleted), open start i64 (INT64_MIN: none), n u16, then
 * n metric records (fr_metric_encode). Its size; writes only when cap is enough. */
size_t fr_history_encode_state(const fr_history *h, void *buf, size_t cap);
/* The checkpoint that fr_history_save_records and fr_history_encode_state went into is committed. */
void fr_history_committed(fr_history *h);
/* Restores the state blob into h (created with the same n): 0, or -1 with the reason in why (h
 * unchanged): cut short or too long, another version, a width out of range, more than
 * FR_HISTORY_MAX_KEEP records retained (the next checkpoint would delete them one by one), an open
 * bucket not a multiple of its width, another n, a malformed metric, samples with no bucket open. The open bucket keeps its stored width; h's width applies from the next bucket. */
int fr_history_decode_state(fr_history *h, const void *buf, size_t len, char *why, size_t whylen);

/* A record (little-endian): version u8 (1), seq u64, start_ms i64, width_ms i64, n u16, then n
 * times the bucket's stat and the total's: count u64, weight, loss, label_sum, pred_sum, auc f64.
 * encode: its size, written only when cap is enough. decode: 0, or -1 with the reason in why: cut
 * short or too long, another version, n out of range, width out of range, start not a multiple of
 * the width or outside [0, 9999-12-31], a sum not finite or below 0, an AUC outside [0, 1], a
 * total counting fewer samples than its bucket. */
size_t fr_history_record_encode(const fr_history_record *r, void *buf, size_t cap);
int fr_history_record_decode(fr_history_record *r, const void *buf, size_t len, char *why, size_t whylen);

#endif
