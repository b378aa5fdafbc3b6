/* fr_model: the multi-task, multi-scenario model (CTR, CVR, CTCVR) and its online optimizers. Pure
 * math, no I/O.
 *
 * x = the hashed embeddings of the categorical fields (the scenario is field 0), the mean-pooled
 * multi-valued fields, the numeric fields and, by configuration, the pair products <e_i, e_j>
 * (PNN) and DFUB's attention output. Levels of expert groups (shared, per task, per scenario, per
 * learner) mixed by softmax gates feed one tower per learner; a task's logit is the mean of its
 * learners' plus its pair (FwFM) and wide terms. Shared-Bottom, MMoE, CGC / PLE and TAML are
 * configurations of it (fr_plan.c draws the wiring; fr_model_config.def says what each key does).
 * The loss is ESMM's on the fused logits (fr_engine.c).
 *
 * A batch's gradient is the SUM of its samples' gradients, not the mean: a rare key's row then
 * gets its full per-sample gradient whatever the batch size, and Adagrad's normalisation keeps the
 * dense steps bounded. Initial values are functions of (seed, table, key) for rows and of (seed,
 * tensor name) for dense tensors, never of arrival order, so a replay recreates them and resizing
 * one tensor leaves the others' draws alone; the output biases start at typical base rates so the
 * first batches do not spend their steps learning the prior.
 *
 * Ownership: fr_model_create allocates everything; fr_model_free releases it. A model is not
 * thread-safe, not even fr_model_predict (it uses model-owned scratch); callers serialise access.
 * Determinism: the same calls in the same order give bit-identical parameters on the same machine
 * and library build: sgemm's summation order may change with the thread count and the CPU kernel,
 * so fr_model_create sets OpenBLAS to one thread (openblas_set_num_threads(1), process-wide; no
 * environment variable needed). Batching is part of the order:
 * train(512 samples) equals train(256) + train(256), but not train(100) + train(412). */
#ifndef FR_MODEL_H
#define FR_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "fr_model_config.h"
#include "fr_sample.h"


typedef struct fr_model fr_model;

/* Returns NULL with a message in err when the config is inconsistent. */
fr_model *fr_model_create(const fr_model_config *c, char *err, size_t errlen);
/* For serving (store/fr_reader.c): rows hold their weights only, no optimizer state (half an
 * Adagrad row's floats, a third of an FTRL row's), and there is no training workspace:
 * fr_model_train does nothing on it; fr_model_predict, put/get row and set_dense work as usual. */
fr_model *fr_model_create_weights_only(const fr_model_config *c, char *err, size_t errlen);
void fr_model_free(fr_model *m);
const fr_model_config *fr_model_get_config(const fr_model *m);
/* Restart with a possibly edited configuration: a checkpoint carries the config it was trained
 * with, and the operator's file may differ from it. The keys marked FR_MC_SHAPE in
 * fr_model_config.def (sizes, components, interactions, wide, both optimizers), and whether
 * causal_adv is on, must match: returns -1 with "model.<key>: the checkpoint was trained with X,
 * the configuration says Y". The training settings (the other keys; adagrad_init and init_scale
 * for rows created from now on) are taken from c, and each one that changed is listed in changed
 * ("model.lr_emb 0.3 -> 0.1, ...", empty when none) so the caller can log it. On -1 (mismatch, or
 * out of memory resizing the batch) the model is unchanged. */
int fr_model_retune(fr_model *m, const fr_model_config *c, char *changed, size_t changed_len, char *err,
                    size_t errlen);

/* Progressive validation and training on n samples (any n; split into batch_size chunks; with row
 * policies, a key gets its row only when admitted and the chunk's end may run an eviction sweep):
 * preds[i][t] receives the prediction for sample i made before any update from samples[i..],
 * then the model trains on them. Creates embedding rows for unseen keys (the chunk's forward
 * already uses their initial weights, whereas fr_model_predict reads unseen keys as zeros).
 * For known keys preds equal fr_model_predict made before the chunk up to the last float bit
 * (sgemm over one row and over a batch may round differently; measured <= 3e-7 relative).
 * preds may be NULL. Each chunk is one mini-batch: version + 1, one optimizer step (Adagrad or FTRL) per touched row
 * (in order of first touch) and per dense coordinate. A task's loss term is on for a sample iff
 * has_label[t] and weight[t] != 0. Key 0 (and non-finite numerics, read as 0) never train. */
void fr_model_train(fr_model *m, const fr_sample *samples, int n, float (*preds)[FR_NTASKS]);

/* Scoring without side effects: unseen keys read as zero vectors. out = {pCTR, pCVR, pCTCVR}. */
void fr_model_predict(const fr_model *m, const fr_features *f, int32_t scenario, float out[FR_NTASKS]);

/* --- Serialisation interface for store/ (checkpoint and publish). ---------------------------- */

/* Which consumer a dirty mark is for: checkpoint and publish each clear their own. */
enum { FR_DIRTY_CHECKPOINT = 1, FR_DIRTY_PUBLISH = 2 };

/* A view of one embedding row; the pointers are valid until the next call that mutates m. */
typedef struct {
    uint32_t table;         /* categorical fields 0..n_cat-1, then multi-valued fields n_cat.. */
    uint64_t key;
    uint64_t version;       /* model version (fr_model_version) of the last update of this row */
    int dim;
    const float *weights;   /* dim floats */
    const float *accum;     /* nstate floats of optimizer state: dim Adagrad accumulators, or with
                             * FTRL dim z then dim n */
    int nstate;             /* fr_model_row_state_count */
    uint32_t updated;       /* event time of the last update, in seconds (the model's clock then) */
} fr_row_view;

typedef int (*fr_row_fn)(const fr_row_view *row, void *ctx);

/* Calls fn for each row whose dirty mark `which` is set (which = 0: every row), in no particular
 * order; stops early and returns fn's value when fn returns non-zero. With both bits, a row
 * dirty for either is visited once. Cost: proportional to the dirty rows, not to all rows. */
int fr_model_foreach_row(const fr_model *m, int which, fr_row_fn fn, void *ctx);
/* Clears the marks `which` (0: both); cost proportional to the rows that carried them. */
void fr_model_clear_dirty(fr_model *m, int which);
size_t fr_model_row_count(const fr_model *m, uint32_t table);
uint32_t fr_model_table_count(const fr_model *m);
/* Floats of optimizer state per embedding row: emb_dim (Adagrad) or 2 x emb_dim (FTRL). */
size_t fr_model_row_state_count(const fr_model *m);
/* Inserts or overwrites a row (checkpoint load; serving reader). accum (fr_model_row_state_count
 * floats) may be NULL: a new row then gets the state of a fresh row at these weights (Adagrad:
 * adagrad_init; FTRL: n = 0, z = fr_ftrl_z_for(w)), an existing row keeps its state. Does not mark
 * the row dirty (what was loaded is already stored). Returns 0, or -1 (bad table, key 0, out of
 * memory). */
int fr_model_put_row(fr_model *m, uint32_t table, uint64_t key, uint64_t version, const float *weights,
                     const float *accum);
/* Looks one row up without creating it. Returns 0 and fills *out, or -1 when absent. */
int fr_model_get_row(const fr_model *m, uint32_t table, uint64_t key, fr_row_view *out);
/* Bytes held for embedding rows over all tables (arena, hash index, dirty lists). */
size_t fr_model_row_memory(const fr_model *m);
/* Keys that training could not give a row because memory ran out (they read as zeros). */
uint64_t fr_model_alloc_failures(const fr_model *m);

/* --- Row lifecycle: admission and eviction (docs/checkpoint-format.md, docs/redis-layout.md). -- */

/* Per table. Admission: a key gets a row only at its admit_after-th training sighting (counted in a
 * count-min sketch of 4 x 2^admit_width_log2 four-bit counters, fr_admit.h); before that it reads
 * as zeros, trains nothing and is neither stored nor published. Eviction: a row whose last update
 * is ttl_ms or more behind the model's clock (the largest event time trained) is deleted at the
 * next sweep; sweeps run at the end of the mini-batch whose samples move the clock across a
 * multiple of max(1 s, smallest ttl / 16) -- event time only, so replays evict identically.
 * Aging: the admission counts are halved every admit_half_life of event time, at batch ends. */
typedef struct {
    int admit_after;            /* 1..15; 1 (default) = a row at first sight, as without a policy */
    unsigned admit_width_log2;  /* 11..28, default 20 (2 MiB of counters) */
    int64_t ttl_ms;             /* 0 (default) = never evicted */
    /* the admission counters are halved each time the clock crosses a multiple of this (at a
     * batch end, up to 4 times at once); 0 = never. Default 1 day. */
    int64_t admit_half_life_ms;
} fr_row_policy;
void fr_row_policy_defaults(fr_row_policy *p);
/* Sets table's policy (replacing its admission filter by an empty one). 0, or -1 with a message. */
int fr_model_set_row_policy(fr_model *m, uint32_t table, const fr_row_policy *p, char *err, size_t errlen);
/* Evicts now (normally called by fr_model_train at its sweep points); returns the rows deleted. */
size_t fr_model_evict(fr_model *m);
/* The clock: the largest sample ts trained (ms). Checkpointed, so restarts sweep at the same points. */
int64_t fr_model_clock(const fr_model *m);
int fr_model_set_clock(fr_model *m, int64_t ms);
/* Sets a row's last-update stamp (checkpoint load). 0, or -1 when absent. */
int fr_model_set_row_updated(fr_model *m, uint32_t table, uint64_t key, uint32_t seconds);
/* The admission filter of a table (NULL without one), for the checkpoint: its dirty chunks are
 * cleared with the FR_DIRTY_CHECKPOINT marks. */
struct fr_admit;
struct fr_admit *fr_model_admit(const fr_model *m, uint32_t table);
/* Rows deleted since the marks `which` (FR_DIRTY_CHECKPOINT or FR_DIRTY_PUBLISH) were last cleared,
 * in deletion order (a key may appear again if it was re-created and evicted again; it may also
 * have a row again now: consumers apply deletions before the rows). Cleared by fr_model_clear_dirty. */
typedef int (*fr_deleted_fn)(uint32_t table, uint64_t key, void *ctx);
int fr_model_foreach_deleted(const fr_model *m, int which, fr_deleted_fn fn, void *ctx);
typedef struct {
    uint64_t rows;
    uint64_t row_bytes;     /* memory held for rows: arena, index, dirty lists (fr_model_row_memory) */
    uint64_t raw_bytes;     /* rows x (key 8 + weights 4D + optimizer state 4D or 8D + version 8 + stamp 4) */
    uint64_t admit_bytes;   /* admission filters */
    uint64_t admitted, not_admitted, evicted; /* since the process started */
    double admit_load;      /* the fullest filter's share of non-zero counters (fr_admit_load); 0 without */
} fr_row_stats;
void fr_model_row_stats(const fr_model *m, fr_row_stats *st);

/* Dense parameters: a flat float vector of fr_model_dense_count floats, laid out as the tensors
 * fr_model_dense_tensor describes, in order. Optimizer state has the same layout. A weight
 * matrix is row-major with rows = outputs and cols = inputs (y = W x + b). Order:
 *   for each level v (name prefix "" at level 0, "l<v>." after), for each of its input streams
 *   (level 0: x; later: the previous level's gate outputs, shared gate first if any, then ctr,
 *   cvr): the weights of the experts reading the stream [expert_dim x in], then of its gates
 *   [gate width x in] (a gate over one expert has none), then the same experts' and gates'
 *   biases [1 x expert_dim] / [1 x gate width]; then, with scenario_dim, each gate's scenario
 *   weights gate.<g>.scenario.w [gate width x scenario_dim] of that level;
 *   then, with scenario_dim, scenario.embedding [n_scenarios x scenario_dim];
 *   then for t in ctr, cvr, for each learner l: tower.t[.learner<l>].hidden.w
 *   [tower_dim x expert_dim], .hidden.b, .out.w [1 x tower_dim], .out.b [1 x 1];
 *   then, with interactions bit 2, pair.ctr.w, pair.cvr.w [1 x npair];
 *   then, with wide, wide.ctr.w, wide.cvr.w [1 x (n_cat + n_multi)*emb_dim + n_num];
 *   then, with causal_adv, causal.classifier.w [n_scenarios x expert_dim], causal.classifier.b;
 *   then, with dfub_heads, dfub.q.w [emb_dim x 2 emb_dim], dfub.k.w, dfub.v.w [emb_dim x emb_dim].
 * Expert names: expert.<i> (shared), expert.<task>.<i>, expert.<task>.learner<l>.<i>,
 * expert.scenario<s>.<i>; experts are listed in that group order. Gate names: at the last level
 * gate.<task> (learner 0) and gate.<task>.learner<l>; at earlier levels gate.shared, gate.<task>.
 * A gate's columns are its experts in that same group order, the sample's scenario experts last.
 * The default (MMoE) layout: expert.0.w .. expert.{E-1}.w, gate.ctr.w, gate.cvr.w, their biases,
 * the two towers, pair and wide weights.
 * in = n_cat*emb_dim + n_multi*emb_dim + n_num [+ npair with interactions bit 1] [+ emb_dim with
 * dfub_heads] (the input order: embeddings, numerics, pair products, the DFUB attention output), npair = F(F-1)/2 over the F = n_cat + n_multi fields,
 * pairs (0,1), (0,2), .., (1,2), .. A stream's weight matrices are adjacent so one sgemm computes
 * every expert and gate that reads it. */
size_t fr_model_dense_count(const fr_model *m);
typedef struct {
    const char *name;       /* "expert.0.w", "gate.ctr.b", "tower.cvr.out.w", ... */
    int rows, cols;         /* a vector has rows = 1 */
    size_t offset;          /* in floats, into the flat vector */
} fr_tensor_info;
int fr_model_dense_tensor_count(const fr_model *m);
fr_tensor_info fr_model_dense_tensor(const fr_model *m, int i);
const float *fr_model_dense_params(const fr_model *m);
/* The dense optimizer state: fr_model_dense_state_count floats = count Adagrad accumulators, or
 * with Adam 2 x count (the first moments, then the second moments), each in the tensor layout. */
const float *fr_model_dense_accum(const fr_model *m);
size_t fr_model_dense_state_count(const fr_model *m);
/* Copies count parameters and, unless accum is NULL, fr_model_dense_state_count state floats in.
 * Returns -1 if count differs. */
int fr_model_set_dense(fr_model *m, const float *params, const float *accum, size_t count);

/* Monotonic update counter: +1 per trained mini-batch. Stored with the checkpoint. */
uint64_t fr_model_version(const fr_model *m);
void fr_model_set_version(fr_model *m, uint64_t version);

/* Dense multiply-add flops (2 per multiply-add) of one training example, forward and backward,
 * counting the matrix products only (the layers' sgemm and DFFI's matrix-vector products): what
 * the sgemm rate bounds. For benchmarks. */
double fr_model_flops_per_example(const fr_model *m);

#endif
