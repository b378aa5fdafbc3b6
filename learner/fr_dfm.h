/* fr_dfm: the delayed-feedback corrections (docs/delayed-feedback.md). Pure math, no I/O.
 *
 * Every method is one weighted logistic loss  l = w1 * softplus(-s) + w0 * softplus(s)
 * (gradient (w1 + w0) sigma(s) - w1) on the copies the joiner emits (fr_join_policy), with
 * (w1, w0) computed from stop-gradient values BEFORE the update: the main model's own CVR
 * prediction pbar, and two helper heads, f_dp ~ P(converts after w_o | x) and
 * f_rn ~ P(never converts | negative at w_o, x). The model's loss takes (weight, label), so a
 * pair is handed over as weight = w1 + w0, label = w1 / (w1 + w0): same gradient, same optimum.
 * The weights follow ../shared/research/anchors-delayed-feedback.md sections 3-5 as re-derived
 * there, NOT the released DEFUSE loss (which gives every positive (1 + f_dp) + 1) nor the DEFER
 * pos_weight of the DEFUSE repository (an operator-precedence bug). Pointwise optima (each x):
 *   PLAIN on the wait / oracle stream            -> p
 *   PLAIN on the vanilla stream (window only)    -> p_ip
 *   PLAIN on the window + delayed-positive stream -> p / (1 + p_dp)
 *   PLAIN on the fake-negative stream (fnc before its q/(1-q)) -> p / (1 + p)
 *   FNW, ESDFM (exact f_rn, any f_dp), DEFUSE, DEFER (w_rn = W_a, exact f_dp) -> p
 * tests/test_dfm.c checks each of these by simulation through the real joiner.
 * Clipping: each of w1, w0 is clipped to [0, clip]; f_rn is floored at rn_floor. */
#ifndef FR_DFM_H
#define FR_DFM_H

#include <stddef.h>
#include <stdint.h>

#include "fr_sample.h"

typedef enum {
    FR_DFM_PLAIN = 0, /* wait, vanilla, fnc, oracle: (1, 0) for a positive, (0, 1) for a negative */
    FR_DFM_FNW,       /* pos (1 + pbar, 0); neg (0, (1 - pbar)(1 + pbar)) */
    FR_DFM_ESDFM,     /* pos (1 + f_dp, 0); observed neg (0, (1 + f_dp) f_rn) */
    FR_DFM_DEFUSE,    /* IP (1 + f_dp, 0); observed neg (z f_dp, (1 - z)(1 + f_dp)), z = 1 - f_rn; DP (1, 0) */
    FR_DFM_DEFER,     /* pos (c, 0); neg (0, c (1 - pbar) / (2 (1 - pbar) + f_dp)), c = 2 - pbar + f_dp */
    FR_DFM_NMETHODS
} fr_dfm_method;

typedef struct {
    double w1, w0;
} fr_dfm_w;

typedef struct {
    double clip;     /* upper bound of each weight, > 0 (default 5) */
    double rn_floor; /* f_rn is used as max(f_rn, rn_floor) (default 0.01) */
} fr_dfm_limits;

/* The weights of one copy: kind (fr_sample_kind) and its observed CVR label; pbar, f_dp, f_rn are
 * stop-gradient values in [0, 1]. Kinds that do not train (MATURED, CLICK_WINDOW) get (0, 0). */
fr_dfm_w fr_dfm_weights(fr_dfm_method m, int kind, int label, double pbar, double f_dp, double f_rn,
                        const fr_dfm_limits *lim);
/* Writes w into s's CVR and CTCVR terms: weight = base * (w1 + w0), label = w1 / (w1 + w0), where
 * base is the joiner's importance weight (1/sample_rate) already in s->weight. */
void fr_dfm_apply(fr_sample *s, fr_dfm_w w);
/* What the method serves from the model's CVR output q: q itself, or FNC's q / (1 - q), clipped
 * into [1e-6, 1 - 1e-6]. */
double fr_dfm_serve(int fnc, double q);

/* ---- the helper heads f_dp and f_rn ----
 * Two small logistic models on hashed categorical features (bias + one weight per (field, key)
 * bucket), Adagrad, trained online on MATURED samples only (labels final at t_c + W_a):
 *   dp: every click, label 1{converted after w_o}       -> f_dp ~ p_dp
 *   rn: clicks negative at w_o, label 1{never converted} -> f_rn ~ p_rn = (1 - p) / (1 - p_ip)
 * Cold start: the biases start at f_dp = 0.01, f_rn = 0.99 (the weights are then near Vanilla's).
 * Deterministic: the same samples in the same order give the same bytes. */
typedef struct fr_dfm_heads fr_dfm_heads;

/* log2_buckets in [4, 26]; n_cat = fields of fr_features.cat used (<= FR_MAX_CAT); lr > 0. */
fr_dfm_heads *fr_dfm_heads_create(int log2_buckets, int n_cat, float lr);
void fr_dfm_heads_free(fr_dfm_heads *h);
void fr_dfm_heads_predict(const fr_dfm_heads *h, const fr_features *f, double *f_dp, double *f_rn);
/* Ignores anything but a FR_SAMPLE_MATURED sample. */
void fr_dfm_heads_train(fr_dfm_heads *h, const fr_sample *matured);
uint64_t fr_dfm_heads_trained(const fr_dfm_heads *h);
/* Matured samples before the heads count as warm. They learn only from labels W_a old, so on a
 * stream not much longer than the attribution window they stay near the cold-start prior (the
 * copies' weights then are Vanilla's), and the status line and /metrics say so. */
enum { FR_DFM_HEADS_WARM_SAMPLES = 1000 };
/* Serialisation (checkpoint blob), little-endian. export writes only when cap is large enough and
 * returns the size needed; import returns 0, -1 for a blob of another shape or version, or -2 for
 * one holding a weight that is not finite or an accumulator that is not finite and >= 0 (the heads
 * are then left as they were). */
size_t fr_dfm_heads_export(const fr_dfm_heads *h, void *buf, size_t cap);
int fr_dfm_heads_import(fr_dfm_heads *h, const void *buf, size_t len);

#endif
