/* fr_gen_int.h: what the generator's files share (private to fr_gen*.c): arithmetic that computes the
 * same bits on every IEEE-754 machine, and the PRNG. Everything here is static inline.
 * Ownership: none (value types only). */
#ifndef FR_GEN_INT_H
#define FR_GEN_INT_H

#include <math.h>
#include <stdint.h>

#include "fr_gen.h"

#ifdef __clang__
/* Fused multiply-add would change rounding and so the bytes written; GCC in ISO mode (-std=c17)
 * already does not contract, clang does unless told. */
#pragma STDC FP_CONTRACT OFF
/* ---------------------------------------------------------------- the plan (fr_gen_plan.c) */

/* Impression traffic at t relative to the stationary world's (the weekly cycle, bursts, lulls). */
double fr_gen_plan_traffic(const fr_gen_plan *p, unsigned conditions, int64_t t);
/* 1 where no impression happens: the gap and the click window before it. */
int fr_gen_plan_no_impressions(const fr_gen_plan *p, int64_t t);
/* 1 inside the gap, where no event of any type is written. */
int fr_gen_plan_in_gap(const fr_gen_plan *p, int64_t t);
/* The first time after t where the traffic changes other than at a clock hour (INT64_MAX: none). */
int64_t fr_gen_plan_next_edge(const fr_gen_plan *p, int64_t t);
/* How late events of the partition with event time t arrive (SKEW), in ms. */
int64_t fr_gen_plan_lag(const fr_gen_plan *p, int partition, int64_t t);

#endif

/* ---------------------------------------------------------------- portable arithmetic */

/* libm's exp/log differ in the last bit between implementations, which would flip a Bernoulli
 * draw or a printed digit now and then; these use only correctly rounded IEEE operations plus
 * the exact frexp/ldexp/floor, so every machine computes the same bits. */
static const double LN2_HI = 6.93147180369123816490e-01; /* 32 significant bits: k*LN2_HI is exact */
static const double LN2_LO = 1.90821492927058770002e-10;

static inline double px_exp(double x)
{
    if (x > 709.0)
        x = 709.0;
    if (x < -740.0)
        return 0.0;
    double k = floor(x * 1.4426950408889634 + 0.5);
    double r = (x - k * LN2_HI) - k * LN2_LO; /* |r| <= 0.35: Taylor to r^14 is below 1 ulp */
    static const double inv_fact[15] = {1.0,
                                        1.0,
                                        1.0 / 2,
                                        1.0 / 6,
                                        1.0 / 24,
                                        1.0 / 120,
                                        1.0 / 720,
                                        1.0 / 5040,
                                        1.0 / 40320,
                                        1.0 / 362880,
                                        1.0 / 3628800,
                                        1.0 / 39916800,
                                        1.0 / 479001600,
                                        1.0 / 6227020800.0,
                                        1.0 / 87178291200.0};
    double p = inv_fact[14];
    for (int i = 13; i >= 0; i--)
        p = p * r + inv_fact[i];
    return ldexp(p, (int)k);
}

static inline double px_log(double x) /* x > 0, finite */
{
    int e;
    double m = frexp(x, &e);
    if (m < 0.70710678118654752) {
        m *= 2.0;
        e -= 1;
    }
    double s = (m - 1.0) / (m + 1.0), s2 = s * s; /* |s| <= 0.172: the odd series to s^25 suffices */
    double t = 1.0 / 25;
    for (int i = 23; i >= 1; i -= 2)
        t = t * s2 + 1.0 / i;
    return (double)e * LN2_HI + (2.0 * s * t + (double)e * LN2_LO);
}

static inline double sigmoid(double z) { return 1.0 / (1.0 + px_exp(-z)); }

/* ---------------------------------------------------------------- PRNG: xoshiro256** */

typedef struct {
    uint64_t s[4];
} rng_t;

static inline uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* The splitmix64 finaliser is a bijection, so distinct counters give distinct ids. */
static inline uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static inline void rng_seed(rng_t *r, uint64_t seed, uint64_t stream)
{
    uint64_t x = seed ^ (stream * 0xD1B54A32D192ED03ull);
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static inline uint64_t rng_next(rng_t *r)
{
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

static inline double rng_u01(rng_t *r) { return (double)(rng_next(r) >> 11) * 0x1.0p-53; } /* [0, 1) */

static inline double rng_exp1(rng_t *r) { return -px_log(1.0 - rng_u01(r)); }

static inline double rng_normal(rng_t *r) /* Marsaglia polar: needs log and sqrt only, both portable here */
{
    for (;;) {
        double a = 2.0 * rng_u01(r) - 1.0, b = 2.0 * rng_u01(r) - 1.0, s = a * a + b * b;
        if (s > 0.0 && s < 1.0)
            return a * sqrt(-2.0 * px_log(s) / s);
    }
}

/* ---------------------------------------------------------------- the plan (fr_gen_plan.c) */

/* Impression traffic at t relative to the stationary world's (the weekly cycle, bursts, lulls). */
double fr_gen_plan_traffic(const fr_gen_plan *p, unsigned conditions, int64_t t);
/* 1 where no impression happens: the gap and the click window before it. */
int fr_gen_plan_no_impressions(const fr_gen_plan *p, int64_t t);
/* 1 inside the gap, where no event of any type is written. */
int fr_gen_plan_in_gap(const fr_gen_plan *p, int64_t t);
/* The first time after t where the traffic changes other than at a clock hour (INT64_MAX: none). */
int64_t fr_gen_plan_next_edge(const fr_gen_plan *p, int64_t t);
/* How late events of the partition with event time t arrive (SKEW), in ms. */
int64_t fr_gen_plan_lag(const fr_gen_plan *p, int partition, int64_t t);

#endif
