#include "fr_metrics.h"

#include <math.h>
#include <string.h>

#include "fr_bytes.h"

void fr_metric_reset(fr_metric *m) { memset(m, 0, sizeof *m); }

/* Bins are uniform in logit space over [-FR_METRIC_LOGIT_RANGE, +FR_METRIC_LOGIT_RANGE]: ad
 * probabilities live between 1e-5 and 0.1, where bins uniform in probability would lump whole
 * conversion models into a handful of bins and understate their AUC. The map is monotonic, so
 * ranking (AUC) is exact up to ties within a bin. */
static int bin_of(double p)
{
    if (!(p > 0)) return 0; /* also catches NaN */
    if (p >= 1) return FR_METRIC_BINS - 1;
    double logit = log(p) - log1p(-p);
    double x = (logit + FR_METRIC_LOGIT_RANGE) / (2 * FR_METRIC_LOGIT_RANGE) * FR_METRIC_BINS;
    if (x < 0) return 0;
    if (x >= FR_METRIC_BINS) return FR_METRIC_BINS - 1;
    return (int)x;
}

void fr_metric_add_n(fr_metric *const *ms, int n, double pred, double label, double weight)
{
    const double eps = 1e-7;
    double p = pred < eps ? eps : (pred > 1 - eps ? 1 - eps : pred);
    const int b = bin_of(pred);
    const double loss = -weight * (label * log(p) + (1 - label) * log(1 - p));
    for (int i = 0; i < n; i++) {
        fr_metric *m = ms[i];
        m->pos[b] += weight * label;
        m->neg[b] += weight * (1 - label);
        m->weight += weight;
        m->loss += loss;
        m->label_sum += weight * label;
        m->pred_sum += weight * pred;
        m->count++;
    }
}

void fr_metric_add(fr_metric *m, double pred, double label, double weight) { fr_metric_add_n(&m, 1, pred, label, weight); }

int fr_metric_check(const fr_metric *m)
{
    /* Every sum adds weight >= 0 times a label, a prediction or a log loss, each >= 0. */
    for (int b = 0; b < FR_METRIC_BINS; b++)
        if (!(isfinite(m->pos[b]) && m->pos[b] >= 0 && isfinite(m->neg[b]) && m->neg[b] >= 0)) return -1;
    const double sums[] = {m->weight, m->loss, m->label_sum, m->pred_sum};
    for (size_t i = 0; i < sizeof sums / sizeof sums[0]; i++)
        if (!(isfinite(sums[i]) && sums[i] >= 0)) return -1;
    return 0;
}

/* A bin is stored when either count has any bit set (-0.0 included): restoring gives back the very
 * bits, so a restarted run's metrics stay those of the unbroken one. */
static int bin_used(const fr_metric *m, int b)
{
    uint64_t p, n;
    memcpy(&p, &m->pos[b], 8);
    memcpy(&n, &m->neg[b], 8);
    return (p | n) != 0;
}

enum { METRIC_HEAD = 8 + 4 * 8 + 2, METRIC_BIN = 2 + 8 + 8 };

size_t fr_metric_encode(const fr_metric *m, void *buf, size_t cap)
{
    size_t nb = 0;
    for (int b = 0; b < FR_METRIC_BINS; b++) nb += (size_t)bin_used(m, b);
    const size_t need = METRIC_HEAD + nb * METRIC_BIN;
    if (!buf || cap < need) return need;
    fr_bytes_out o = fr_bytes_out_init(buf, need);
    fr_out_u64le(&o, m->count);
    fr_out_f64le(&o, m->weight);
    fr_out_f64le(&o, m->loss);
    fr_out_f64le(&o, m->label_sum);
    fr_out_f64le(&o, m->pred_sum);
    fr_out_u16le(&o, (uint16_t)nb);
    for (int b = 0; b < FR_METRIC_BINS; b++) {
        if (!bin_used(m, b)) continue;
        fr_out_u16le(&o, (uint16_t)b);
        fr_out_f64le(&o, m->pos[b]);
        fr_out_f64le(&o, m->neg[b]);
    }
    return need;
}

long fr_metric_decode(fr_metric *m, const void *buf, size_t len)
{
    fr_metric_reset(m);
    fr_bytes_in r = fr_bytes_in_init(buf, len);
    m->count = fr_in_u64le(&r);
    m->weight = fr_in_f64le(&r);
    m->loss = fr_in_f64le(&r);
    m->label_sum = fr_in_f64le(&r);
    m->pred_sum = fr_in_f64le(&r);
    const unsigned nb = fr_in_u16le(&r);
    if (r.overrun || nb > FR_METRIC_BINS || (size_t)nb * METRIC_BIN > r.left) return -1;
    int last = -1;
    for (unsigned i = 0; i < nb; i++) {
        const int b = fr_in_u16le(&r);
        if (b <= last || b >= FR_METRIC_BINS) return -1;
        m->pos[b] = fr_in_f64le(&r);
        m->neg[b] = fr_in_f64le(&r);
        if (!r.overrun && !bin_used(m, b)) return -1; /* the encoder lists only used bins: one record per metric */
        last = b;
    }
    if (r.overrun) return -1;
    return fr_metric_check(m) == 0 ? (long)(len - r.left) : -2;
}

void fr_metric_merge(fr_metric *into, const fr_metric *from)
{
    for (int b = 0; b < FR_METRIC_BINS; b++) {
        into->pos[b] += from->pos[b];
        into->neg[b] += from->neg[b];
    }
    into->weight += from->weight;
    into->loss += from->loss;
    into->label_sum += from->label_sum;
    into->pred_sum += from->pred_sum;
    into->count += from->count;
}

double fr_metric_auc(const fr_metric *m)
{
    /* Walk bins from low to high prediction: each positive beats every negative in lower bins
     * and ties (counts half) with negatives in its own bin. */
    double neg_below = 0, area = 0, pos_total = 0, neg_total = 0;
    for (int b = 0; b < FR_METRIC_BINS; b++) {
        area += m->pos[b] * (neg_below + 0.5 * m->neg[b]);
        neg_below += m->neg[b];
        pos_total += m->pos[b];
        neg_total += m->neg[b];
    }
    if (pos_total <= 0 || neg_total <= 0) return 0.5;
    return area / (pos_total * neg_total);
}

double fr_metric_logloss(const fr_metric *m) { return m->weight > 0 ? m->loss / m->weight : 0; }

double fr_metric_calibration(const fr_metric *m) { return m->label_sum > 0 ? m->pred_sum / m->label_sum : 0; }
