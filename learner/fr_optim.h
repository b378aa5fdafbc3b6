/* fr_optim: the optimizer steps of embedding rows and dense parameters. Pure math.
 *
 * Adagrad without epsilon: acc += g^2; w -= lr * g / sqrt(acc). The accumulator starts at the
 * configured adagrad_init > 0, which bounds the first step and makes an epsilon unnecessary.
 * Every operation is a plain float expression evaluated in index order, so a step is exactly
 * reproducible (ISO C mode keeps the compiler from contracting it into FMAs). */
#ifndef FR_OPTIM_H
#define FR_OPTIM_H

#include <stddef.h>
#include <stdint.h>

void fr_adagrad_step(float *w, float *acc, const float *g, size_t n, float lr);

/* FTRL-Proximal per coordinate (McMahan et al. 2013, "Ad click prediction: a view from the
 * trenches", algorithm 1), with the state z (the adjusted gradient sum) and n (the squared gradient
 * sum) of each coordinate:
 *   sigma = (sqrt(n + g^2) - sqrt(n)) / alpha;  z += g - sigma w;  n += g^2;
 *   w = 0 if |z| <= l1, else -(z - sign(z) l1) / ((beta + sqrt(n)) / alpha + l2).
 * w must hold the weights the gradient was taken at (the previous step's output); it receives the
 * new ones, so callers keep w stored next to (z, n) instead of recomputing it at every read. */
typedef struct {
    float alpha, beta, l1, l2; /* alpha > 0, beta > 0, l1 >= 0, l2 >= 0 */
} fr_ftrl_params;
void fr_ftrl_step(float *w, float *z, float *n, const float *g, size_t count, const fr_ftrl_params *p);
/* The weight FTRL-Proximal assigns to state (z, n). */
float fr_ftrl_weight(float z, float n, const fr_ftrl_params *p);
/* The z that makes fr_ftrl_weight(z, 0) equal w: a coordinate can start at any weight instead of
 * at 0. 0 for w = 0. Exact up to the rounding of z = -sign(w) (|w| (beta / alpha + l2) + l1): with
 * l1 = 0 within an ulp or two of w, with a large l1 within ulp(|z|) / (beta / alpha + l2). */
float fr_ftrl_z_for(float w, const fr_ftrl_params *p);

/* Adam (Kingma & Ba) with bias correction, step t >= 1 (the t-th update of these parameters):
 * m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2; w -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps).
 * The corrections are computed once per call in double and rounded to float, so a step is a
 * function of (t, state, g) only and exactly reproducible. */
void fr_adam_step(float *w, float *m, float *v, const float *g, size_t n, float lr, float b1, float b2, float eps,
                  uint64_t t);

#endif
