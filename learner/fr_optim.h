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

/* Adam (Kingma & Ba) with bias correction, step t >= 1 (the t-th update of these parameters):
 * m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2; w -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps).
 * The corrections are computed once per call in double and rounded to float, so a step is a
 * function of (t, state, g) only and exactly reproducible. */
void fr_adam_step(float *w, float *m, float *v, const float *g, size_t n, float lr, float b1, float b2, float eps,
                  uint64_t t);

#endif
