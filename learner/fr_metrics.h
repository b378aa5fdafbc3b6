/* fr_metrics: streaming evaluation of probabilistic predictions (AUC, log loss, calibration).
 *
 * A fr_metric is a plain value (no heap): a histogram of predictions split by label, in bins
 * uniform in logit over [-16, 16] (width 1/128 in logit), so AUC is exact up to ties within a bin
 * in O(1) memory per stream, and two metrics can be merged. Progressive validation records each prediction before the update it feeds. */
#ifndef FR_METRICS_H
#define FR_METRICS_H

#include <stddef.h>
#include <stdint.h>

enum { FR_METRIC_BINS = 4096, FR_METRIC_LOGIT_RANGE = 16 };

typedef struct {
    double pos[FR_METRIC_BINS];  /* weighted count of positives whose prediction falls in the bin */
    double neg[FR_METRIC_BINS];
    double weight;               /* total weight */
    double loss;                 /* weighted sum of log loss */
    double label_sum;            /* weighted sum of labels */
    double pred_sum;             /* weighted sum of predictions */
    uint64_t count;              /* unweighted number of predictions */
} fr_metric;

void fr_metric_reset(fr_metric *m);
/* label is 0 or 1 (values in between are counted as positives by weight*label). */
void fr_metric_add(fr_metric *m, double pred, double label, double weight);
/* fr_metric_add on each of n metrics, bit for bit, with the logarithms computed once (a sample
 * counts in its scenario's metric, in "all", and in their history's open bucket). */
void fr_metric_add_n(fr_metric *const *ms, int n, double pred, double label, double weight);
/* 0 when m can be a metric fr_metric_add built (every sum finite and >= 0), else -1: for a metric
 * read back from storage. */
int fr_metric_check(const fr_metric *m);
/* The stored record of a metric (checkpoint format 3, little-endian; docs/checkpoint-format.md):
 *   count u64, weight f64, loss f64, label_sum f64, pred_sum f64, nbins u16,
 *   then nbins times: bin u16 (strictly ascending, < FR_METRIC_BINS), pos f64, neg f64
 * listing only the bins that hold anything, so an idle metric takes 42 bytes, not 64 KiB.
 * encode: the record's size; writes it only when cap is enough (call with NULL, 0 to size it).
 * decode: the bytes the record took from buf, -1 when it is malformed (cut short, a bin out of
 * range, out of order or holding nothing), -2 when it decodes to a metric fr_metric_check refuses. */
size_t fr_metric_encode(const fr_metric *m, void *buf, size_t cap);
long fr_metric_decode(fr_metric *m, const void *buf, size_t len);
void fr_metric_merge(fr_metric *into, const fr_metric *from);
/* 0.5 when there is no positive or no negative yet. */
double fr_metric_auc(const fr_metric *m);
/* Mean weighted log loss; 0 when empty. */
double fr_metric_logloss(const fr_metric *m);
/* Mean prediction over mean label (1 = calibrated); 0 when there is no positive. */
double fr_metric_calibration(const fr_metric *m);

#endif
