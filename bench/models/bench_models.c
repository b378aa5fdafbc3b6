/* bench_models: the learner's training throughput for one daemon config against the single-thread
 * OpenBLAS sgemm rate measured in the same process (the compute-bound limit).
 *
 * Usage: bench_models CONFIG.json [SAMPLES]
 * Prints one line of key=value pairs: dense parameters, FLOPs per example (the matrix products of
 * the forward and backward pass, fr_model_flops_per_example), examples/s of fr_model_train on
 * synthetic samples of the config's field layout (keys over a small vocabulary, so embedding rows
 * stay in cache as in the 1000-user / 200-ad benchmark stream), the achieved dense GFLOP/s, and the
 * sgemm GFLOP/s of a 1024^3 product and of the model's own first-layer product (batch x rows x in).
 * Three rounds, training and sgemm interleaved; each figure is the best round's, which on a shared
 * machine is the one least disturbed by the other processes. Not a test: numbers depend on the
 * machine and its load. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fr_config.h"
#include "fr_model.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* GFLOP/s of C[m x n] = A[m x k] B[k x n]^T, repeated until about 0.3 s have passed. */
static double sgemm_rate(int m, int n, int k)
{
    float *a = calloc((size_t)m * k, sizeof *a), *b = calloc((size_t)n * k, sizeof *b), *c = calloc((size_t)m * n, sizeof *c);
    if (!a || !b || !c) return 0;
    for (size_t i = 0; i < (size_t)m * k; i++) a[i] = (float)(i % 7) * 0.1f;
    for (size_t i = 0; i < (size_t)n * k; i++) b[i] = (float)(i % 5) * 0.1f;
    double t0 = now_s(), t;
    long reps = 0;
    do {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, a, k, b, k, 0.0f, c, n);
        reps++;
    } while ((t = now_s() - t0) < 0.3);
    free(a);
    free(b);
    free(c);
    return 2.0 * m * n * k * (double)reps / t / 1e9;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_models CONFIG.json [SAMPLES]\n");
        return 2;
    }
    openblas_set_num_threads(1);
    static fr_config cfg;
    char err[512];
    if (fr_config_load(&cfg, argv[1], err, sizeof err)) {
        fprintf(stderr, "bench_models: %s\n", err);
        return 1;
    }
    int n = argc > 2 ? atoi(argv[2]) : 100000;
    if (n < 1) n = 100000;
    fr_model *m = fr_model_create(&cfg.model, err, sizeof err);
    fr_sample *s = calloc((size_t)n, sizeof *s);
    if (!m || !s) {
        fprintf(stderr, "bench_models: %s\n", m ? "out of memory" : err);
        return 1;
    }
    const fr_model_config *c = &cfg.model;
    uint64_t r = 42;
    for (int i = 0; i < n; i++) {
        fr_sample *x = &s[i];
        x->scenario = (int32_t)(next(&r) % (uint64_t)c->n_scenarios);
        x->f.cat[0] = (uint64_t)x->scenario + 1;
        for (int f = 1; f < c->n_cat; f++) x->f.cat[f] = next(&r) % 1000 + 1;
        for (int k = 0; k < c->n_num; k++) x->f.num[k] = (float)(next(&r) % 1000) * 0.001f;
        for (int j = 0; j < c->n_multi; j++) {
            x->f.multi_len[j] = (uint8_t)(next(&r) % (FR_MAX_MULTI_LEN + 1));
            for (int k = 0; k < x->f.multi_len[j]; k++) x->f.multi[j][k] = next(&r) % 200 + 1;
        }
        x->label[FR_TASK_CTR] = next(&r) % 30 == 0;
        x->label[FR_TASK_CTCVR] = x->label[FR_TASK_CTR] && next(&r) % 10 == 0;
        for (int t = 0; t < FR_NTASKS; t++) x->has_label[t] = t != FR_TASK_CVR, x->weight[t] = t != FR_TASK_CVR;
    }
    fr_model_train(m, s, n < 20000 ? n : 20000, NULL); /* warm-up: rows created, caches hot */
    int in = fr_model_dense_tensor(m, 0).cols, rows = 0;
    for (int i = 0; i < fr_model_dense_tensor_count(m); i++) {
        fr_tensor_info t = fr_model_dense_tensor(m, i);
        if (t.cols == in && t.rows > 1) rows += t.rows; /* the level-0 weights read x */
    }
    double eps = 0, peak = 0, own = 0;
    for (int round = 0; round < 3; round++) {
        double t0 = now_s();
        fr_model_train(m, s, n, NULL);
        double e = n / (now_s() - t0), p = sgemm_rate(1024, 1024, 1024), o = sgemm_rate(c->batch_size, rows, in);
        eps = e > eps ? e : eps;
        peak = p > peak ? p : peak;
        own = o > own ? o : own;
    }
    double fpe = fr_model_flops_per_example(m);
    printf("params=%zu flops_per_example=%.0f examples_per_s=%.0f dense_gflops=%.2f sgemm_1024_gflops=%.2f "
           "sgemm_own_gflops=%.2f own_shape=%dx%dx%d share_of_peak=%.3f\n",
           fr_model_dense_count(m), fpe, eps, fpe * eps / 1e9, peak, own, c->batch_size, rows, in,
           fpe * eps / 1e9 / peak);
    free(s);
    fr_model_free(m);
    return 0;
}
