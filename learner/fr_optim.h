/* fr_optim: the optimizer steps shared by embedding rows and dense parameters. Pure math.
 *
 * Adagrad without epsilon: acc += g^2; w -= lr * g / sqrt(acc). The accumulator starts at the
 * configured adagrad_init > 0, which bounds the first step and makes an epsilon unnecessary.
 * Every operation is a plain float expression evaluated in index order, so a step is exactly
 * reproducible (ISO C mode keeps the compiler from contracting it into FMAs). */
#ifndef FR_OPTIM_H
#define FR_OPTIM_H

#include <stddef.h>

void fr_adagrad_step(float *w, float *acc, const float *g, size_t n, float lr);

#endif
