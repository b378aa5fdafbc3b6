#include "fr_optim.h"

#include <math.h>

void fr_adagrad_step(float *w, float *acc, const float *g, size_t n, float lr)
{
    for (size_t i = 0; i < n; i++) {
        float a = acc[i] + g[i] * g[i];
        acc[i] = a;
        w[i] = w[i] - lr * g[i] / sqrtf(a);
    }
}
