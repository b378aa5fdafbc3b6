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

void fr_adam_step(float *w, float *m, float *v, const float *g, size_t n, float lr, float b1, float b2, float eps,
                  uint64_t t)
{
    const float c1 = (float)(1.0 / (1.0 - pow((double)b1, (double)t)));
    const float c2 = (float)(1.0 / (1.0 - pow((double)b2, (double)t)));
    const float a1 = 1.0f - b1, a2 = 1.0f - b2;
    for (size_t i = 0; i < n; i++) {
        float mi = b1 * m[i] + a1 * g[i], vi = b2 * v[i] + a2 * g[i] * g[i];
        m[i] = mi;
        v[i] = vi;
        w[i] = w[i] - lr * (mi * c1) / (sqrtf(vi * c2) + eps);
    }
}
