/* fr_dfm: see fr_dfm.h. */
#include "fr_dfm.h"

#include "fr_bytes.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static double clamp01(double v) { return v < 0 ? 0 : v > 1 ? 1 : v; }

static double clipw(double w, double clip)
{
    if (!(w > 0)) return 0; /* also NaN */
    return w > clip ? clip : w;
}

fr_dfm_w fr_dfm_weights(fr_dfm_method m, int kind, int label, double pbar, double f_dp, double f_rn,
                        const fr_dfm_limits *lim)
{
    const double clip = lim && lim->clip > 0 ? lim->clip : 5.0;
    const double floor_rn = lim ? lim->rn_floor : 0.01;
    fr_dfm_w w = {0, 0};
    if (kind == FR_SAMPLE_MATURED || kind == FR_SAMPLE_CLICK_WINDOW || kind < 0 || kind >= FR_SAMPLE_NKINDS)
        return w;
    pbar = clamp01(pbar);
    f_dp = clamp01(f_dp);
    f_rn = clamp01(f_rn);
    if (f_rn < floor_rn) f_rn = floor_rn;
    const int pos = label != 0;
    switch (m) {
    case FR_DFM_FNW:
        if (pos)
            w.w1 = 1 + pbar;
        else
            w.w0 = (1 - pbar) * (1 + pbar);
        break;
    case FR_DFM_ESDFM:
        if (pos)
            w.w1 = 1 + f_dp;
        else
            w.w0 = (1 + f_dp) * f_rn;
        break;
    case FR_DFM_DEFUSE:
        if (kind == FR_SAMPLE_DELAYED_POS) {
            w.w1 = 1;
        } else if (pos) {
            w.w1 = 1 + f_dp;
        } else {
            /* An observed negative is a fake negative with probability z: soft positive part. */
            const double z = 1 - f_rn;
            w.w1 = z * f_dp;
            w.w0 = (1 - z) * (1 + f_dp);
        }
        break;
    case FR_DFM_DEFER: {
        const double c = 2 - pbar + f_dp;
        if (pos)
            w.w1 = c;
        else
            w.w0 = c * (1 - pbar) / (2 * (1 - pbar) + f_dp);
        break;
    }
    case FR_DFM_PLAIN:
    case FR_DFM_NMETHODS:
    default:
        if (pos)
            w.w1 = 1;
        else
            w.w0 = 1;
        break;
    }
    w.w1 = clipw(w.w1, clip);
    w.w0 = clipw(w.w0, clip);
    return w;
}

void fr_dfm_apply(fr_sample *s, fr_dfm_w w)
{
    const double sum = w.w1 + w.w0;
    for (int t = FR_TASK_CVR; t <= FR_TASK_CTCVR; t++) {
        if (!s->has_label[t]) continue;
        s->weight[t] = (float)(s->weight[t] * sum);
        s->label[t] = sum > 0 ? (float)(w.w1 / sum) : 0.0f;
    }
}

double fr_dfm_serve(int fnc, double q)
{
    if (fnc) q = q < 1 ? q / (1 - q) : 1;
    return q < 1e-6 ? 1e-6 : q > 1 - 1e-6 ? 1 - 1e-6 : q;
}

/* ---- helper heads ---- */

enum { HEADS_VERSION = 1, HEAD_DP = 0, HEAD_RN = 1, NHEADS = 2 };

struct fr_dfm_heads {
    int log2, n_cat;
    float lr;
    size_t n;          /* buckets */
    uint64_t trained;  /* MATURED samples seen */
    float *w;          /* [NHEADS][n] bucket weights (the biases are kept apart) */
    float *acc;        /* [NHEADS][n] Adagrad accumulators */
    float bias[NHEADS], bias_acc[NHEADS];
};

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

static size_t bucket(const fr_dfm_heads *h, int field, uint64_t key)
{
    return (size_t)(mix(key ^ (0x9e3779b97f4a7c15ull * (uint64_t)(field + 1))) & (h->n - 1));
}

fr_dfm_heads *fr_dfm_heads_create(int log2_buckets, int n_cat, float lr)
{
    if (log2_buckets < 4 || log2_buckets > 26 || n_cat < 1 || n_cat > FR_MAX_CAT || !(lr > 0)) return NULL;
    fr_dfm_heads *h = calloc(1, sizeof *h);
    if (!h) return NULL;
    h->log2 = log2_buckets;
    h->n_cat = n_cat;
    h->lr = lr;
    h->n = (size_t)1 << log2_buckets;
    /* Cold start: until matured labels arrive (W_a after the first click) the heads say "delayed
     * conversions are rare, observed negatives are real" (f_dp 0.01, f_rn 0.99): close to Vanilla,
     * never the 0.5 / 0.5 of a zero logit, which would soft-label every negative 0.25 in DEFUSE. */
    h->bias[HEAD_DP] = (float)log(0.01 / 0.99);
    h->bias[HEAD_RN] = (float)log(0.99 / 0.01);
    h->w = calloc(NHEADS * h->n, sizeof *h->w);
    h->acc = calloc(NHEADS * h->n, sizeof *h->acc);
    if (!h->w || !h->acc) {
        fr_dfm_heads_free(h);
        return NULL;
    }
    return h;
}

void fr_dfm_heads_free(fr_dfm_heads *h)
{
    if (!h) return;
    free(h->w);
    free(h->acc);
    free(h);
}

static double sigmoid(double z) { return z >= 0 ? 1 / (1 + exp(-z)) : exp(z) / (1 + exp(z)); }

static double head_logit(const fr_dfm_heads *h, int head, const fr_features *f, size_t *idx)
{
    double z = h->bias[head];
    const float *w = h->w + (size_t)head * h->n;
    for (int i = 0; i < h->n_cat; i++) {
        idx[i] = bucket(h, i, f->cat[i]);
        z += w[idx[i]];
    }
    return z;
}

void fr_dfm_heads_predict(const fr_dfm_heads *h, const fr_features *f, double *f_dp, double *f_rn)
{
    size_t idx[FR_MAX_CAT];
    if (f_dp) *f_dp = sigmoid(head_logit(h, HEAD_DP, f, idx));
    if (f_rn) *f_rn = sigmoid(head_logit(h, HEAD_RN, f, idx));
}

static void head_step(fr_dfm_heads *h, int head, const fr_features *f, double y, double weight)
{
    size_t idx[FR_MAX_CAT];
    const double g = weight * (sigmoid(head_logit(h, head, f, idx)) - y);
    float *w = h->w + (size_t)head * h->n, *acc = h->acc + (size_t)head * h->n;
    const float g2 = (float)(g * g);
    h->bias_acc[head] += g2;
    h->bias[head] -= (float)(h->lr * g / sqrt(h->bias_acc[head] + 1e-6));
    for (int i = 0; i < h->n_cat; i++) {
        /* A key that repeats in two fields updates its bucket once per field: plain SGD semantics. */
        acc[idx[i]] += g2;
        w[idx[i]] -= (float)(h->lr * g / sqrt(acc[idx[i]] + 1e-6));
    }
}

void fr_dfm_heads_train(fr_dfm_heads *h, const fr_sample *s)
{
    if (s->kind != FR_SAMPLE_MATURED || !s->has_label[FR_TASK_CVR]) return;
    const int converted = s->label[FR_TASK_CVR] > 0.5f;
    const double w = s->weight[FR_TASK_CVR] > 0 ? 1.0 : 0.0; /* unweighted: sample_rate is not a label */
    if (w == 0) return;
    h->trained++;
    head_step(h, HEAD_DP, &s->f, converted && !s->in_window ? 1.0 : 0.0, 1.0);
    if (!s->in_window) head_step(h, HEAD_RN, &s->f, converted ? 0.0 : 1.0, 1.0);
}

uint64_t fr_dfm_heads_trained(const fr_dfm_heads *h) { return h->trained; }

/* Blob: u8 version, u8 log2, u8 n_cat, u8 nheads, f32 lr, u64 trained, f32 bias[2], f32 bias_acc[2],
 * f32 w[2][n], f32 acc[2][n]. */
enum { BLOB_HEADER = 4 + 4 + 8 + 16 };

size_t fr_dfm_heads_export(const fr_dfm_heads *h, void *buf, size_t cap)
{
    const size_t need = BLOB_HEADER + 4 * 2 * NHEADS * h->n;
    if (!buf || cap < need) return need;
    uint8_t *p = buf;
    p[0] = HEADS_VERSION;
    p[1] = (uint8_t)h->log2;
    p[2] = (uint8_t)h->n_cat;
    p[3] = NHEADS;
    fr_put_f32le(p + 4, h->lr);
    fr_put_u64le(p + 8, h->trained);
    p += 16;
    fr_f32le_encode(p, h->bias, NHEADS);
    fr_f32le_encode(p + 4 * NHEADS, h->bias_acc, NHEADS);
    p += 8 * NHEADS;
    fr_f32le_encode(p, h->w, NHEADS * h->n);
    fr_f32le_encode(p + 4 * NHEADS * h->n, h->acc, NHEADS * h->n);
    return need;
}

int fr_dfm_heads_import(fr_dfm_heads *h, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    if (!buf || len != BLOB_HEADER + 4 * 2 * NHEADS * h->n) return -1;
    if (p[0] != HEADS_VERSION || p[1] != h->log2 || p[2] != h->n_cat || p[3] != NHEADS) return -1;
    /* The values are untrusted too: a NaN or infinite weight, or an accumulator below zero (the
     * square root of the next step), is refused before anything is overwritten. */
    const size_t nw = NHEADS * h->n;
    for (size_t i = 0; i < 2 * NHEADS + 2 * nw; i++) {
        const float v = fr_get_f32le(p + 16 + 4 * i);
        const int accumulator = (i >= NHEADS && i < 2 * NHEADS) || i >= 2 * NHEADS + nw;
        if (!isfinite(v) || (accumulator && v < 0)) return -2;
    }
    h->trained = fr_get_u64le(p + 8);
    p += 16;
    fr_f32le_decode(h->bias, p, NHEADS);
    fr_f32le_decode(h->bias_acc, p + 4 * NHEADS, NHEADS);
    p += 8 * NHEADS;
    fr_f32le_decode(h->w, p, NHEADS * h->n);
    fr_f32le_decode(h->acc, p + 4 * NHEADS * h->n, NHEADS * h->n);
    return 0;
}
