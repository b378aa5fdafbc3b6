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

float fr_ftrl_weight(float z, float n, const fr_ftrl_params *p)
{
    if (fabsf(z) <= p->l1) return 0.0f;
    float shrunk = z > 0 ? z - p->l1 : z + p->l1;
    return -shrunk / ((p->beta + sqrtf(n)) / p->alpha + p->l2);
}

float fr_ftrl_z_for(float w, const fr_ftrl_params *p)
{
    if (w == 0) return 0.0f;
    /* invert the weight formula at n = 0; the l1 margin keeps a non-zero w outside the dead zone */
    float mag = fabsf(w) * (p->beta / p->alpha + p->l2) + p->l1;
    return w > 0 ? -mag : mag;
}

void fr_ftrl_step(float *w, float *z, float *n, const float *g, size_t count, const fr_ftrl_params *p)
{
    for (size_t i = 0; i < count; i++) {
        float nn = n[i] + g[i] * g[i];
        float sigma = (sqrtf(nn) - sqrtf(n[i])) / p->alpha;
        z[i] = z[i] + g[i] - sigma * w[i];
        n[i] = nn;
        w[i] = fr_ftrl_weight(z[i], nn, p);
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
