/* fr_kernels: the small numeric kernels the model's per-sample loops share, and the attribute
 * that compiles those loops twice (AVX2 and baseline). Private to learner/. */
#ifndef FR_KERNELS_H
#define FR_KERNELS_H

#include <math.h>
#include <stddef.h>

/* The dense per-sample loops (ReLU masks, gate mixing, pair products, DFFI) are short vector loops;
 * built for x86-64's baseline SSE2 they run at half the width AVX2 gives. GCC compiles the
 * functions marked FR_VEC twice and picks the AVX2 copy at load time where the CPU has it. The
 * arithmetic is the same in both copies (element-wise operations and sums in a written-out order;
 * "avx2" does not enable FMA, so nothing is contracted), so the results do not depend on the copy.
 * The choice needs the loader's ifunc support, hence glibc only. Not under clang: its dispatcher
 * is a local symbol, so an FR_VEC function called from another file does not link (clang 14). */
#if defined(__x86_64__) && defined(__GLIBC__) && defined(__GNUC__) && !defined(__clang__) && !defined(FR_NO_CLONES)
#define FR_VEC __attribute__((target_clones("avx2", "default")))
#else
#define FR_VEC
#endif
/* The small kernels the FR_VEC functions call: inlined into each copy, so they get its vector width. */
#if defined(__GNUC__) || defined(__clang__)
#define FR_KERNEL static inline __attribute__((always_inline))
#else
#define FR_KERNEL static inline
#endif

/* sum_k a[k] b[k] in an order fixed by n alone (so a sample's value does not depend on the batch
 * around it): eight interleaved partial sums, which the compiler keeps in vector registers instead
 * of one serial chain of adds, combined pairwise, then the tail. */
FR_KERNEL float dot(const float *restrict a, const float *restrict b, int n)
{
    float acc[8] = {0};
    int k = 0;
    for (; k + 8 <= n; k += 8)
        for (int l = 0; l < 8; l++) acc[l] += a[k + l] * b[k + l];
    float z = ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
    for (; k < n; k++) z += a[k] * b[k];
    return z;
}

/* Transposes between the batch's row-major buffers and batch-innermost ones, a block of samples at
 * a time so that both sides stay in L1, for c < cols, b < n: TO_T t[c * ld_t + b] = r[b * ld_r + c];
 * FROM_T r[b * ld_r + c] = t[c * ld_t + b]; ADD_T r[b * ld_r + c] += t[c * ld_t + b]. */
enum { TB = 16 };
enum { TO_T, FROM_T, ADD_T };
FR_KERNEL void transpose(float *r, size_t ld_r, float *t, size_t ld_t, int n, int cols, int mode)
{
    for (int b0 = 0; b0 < n; b0 += TB) {
        const int b1 = n - b0 < TB ? n : b0 + TB;
        for (int c = 0; c < cols; c++)
            for (int b = b0; b < b1; b++) {
                if (mode == TO_T)
                    t[(size_t)c * ld_t + b] = r[(size_t)b * ld_r + c];
                else if (mode == FROM_T)
                    r[(size_t)b * ld_r + c] = t[(size_t)c * ld_t + b];
                else
                    r[(size_t)b * ld_r + c] += t[(size_t)c * ld_t + b];
            }
    }
}

/* tanh through expf: a fifth of DFFI's time went to libm's tanhf (expm1f). Absolute error about
 * 1e-7 (1 - 2/(e^2z + 1) cancels near 0, where tanh itself is small), saturating cleanly: e^2z
 * overflows to inf -> 1, underflows to 0 -> -1. Training and serving share it, so they agree. */
FR_KERNEL float tanh_fast(float z) { return 1.0f - 2.0f / (expf(2.0f * z) + 1.0f); }

static inline double sigmoid(double z) { return 1.0 / (1.0 + exp(-z)); }

#endif
