/* fuzz_util: what the fuzz targets and make_seeds.c share -- the small model every checkpoint and
 * serving target decodes into (the seeds were written from it), and a check that aborts so
 * libFuzzer records the input when a decoder breaks its header's promise. */
#ifndef FUZZ_UTIL_H
#define FUZZ_UTIL_H

#include <stdio.h>
#include <stdlib.h>

#include "fr_model.h"

/* A broken promise: libFuzzer reports the abort and keeps the input. */
#define FUZZ_CHECK(cond)                                                                                               \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            fprintf(stderr, "fuzz check failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__);                            \
            abort();                                                                                                   \
        }                                                                                                              \
    } while (0)

/* Small enough that a seed is a few KB and an input runs in microseconds; every component that
 * changes a stored shape is on (interactions, wide, task and scenario experts, scenario vector). */
static inline void fuzz_model_config(fr_model_config *c)
{
    fr_model_config_defaults(c);
    c->n_cat = 3;
    c->n_num = 1;
    c->n_multi = 1;
    c->n_scenarios = 2;
    c->emb_dim = 2;
    c->n_experts = 1;
    c->n_task_experts = 1;
    c->n_scenario_experts = 1;
    c->expert_dim = 2;
    c->tower_dim = 2;
    c->scenario_dim = 2;
    c->batch_size = 4;
}

/* A few features of the fuzz model's shape, for scoring after a decode. */
static inline void fuzz_features(fr_features *f, uint64_t salt)
{
    *f = (fr_features){0};
    for (int i = 0; i < 3; i++) f->cat[i] = 0x9E3779B97F4A7C15ULL * (uint64_t)(i + 1) + salt;
    f->num[0] = 0.5f;
    f->multi[0][0] = 7 + salt;
    f->multi_len[0] = 1;
}

#endif
