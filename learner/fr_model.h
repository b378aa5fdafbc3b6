/* fr_model: the multi-task, multi-scenario model and its online optimizers. Pure math, no I/O.
 *
 * Input: hashed embeddings per categorical field (rows created on first training sight,
 * initialised deterministically from (seed, field, key)), multi-valued fields mean-pooled, numeric
 * fields fed as they come. Explicit interactions (config.interactions, DeepFM / PNN style): the
 * inner products p_ij = <e_i, e_j> of every pair of field embeddings (the scenario, the other
 * categorical fields, the pooled multi-valued fields) are appended to x, and also added to each
 * logit with one weight per pair and task (FwFM). A linear "wide" head (config.wide) adds a
 * weighted sum of x's embedding and numeric columns to each logit.
 *
 * The engine: one or more extraction levels of expert groups and gates. Experts are one-layer
 * ReLU MLPs of width expert_dim, in groups: shared (n_experts), per task (n_task_experts each),
 * per scenario (n_scenario_experts for each scenario: a sample uses its own scenario's) and, at
 * the last level only, per learner (n_learner_experts for each of the n_learners learners of each
 * task). A gate is a softmax over the experts it may use, of a linear function of its input
 * (optionally plus a linear function of a learned per-scenario vector of scenario_dim floats):
 *   last level, learner (t, l):  shared + task t + learner (t, l) + the sample's scenario experts;
 *   earlier levels (PLE):        task t gate: shared + task t + scenario experts;
 *                                shared gate: every expert of the level (+ scenario experts).
 * Level 0 reads x; at a later level, task t's experts and gates read task t's gate output of the
 * level before, shared and scenario experts and the shared gate read the shared gate's output.
 * A gate over a single expert is the identity (no parameters). Shared-Bottom (1 shared expert),
 * MMoE (E shared experts), CGC / PLE (shared + per-task experts, 1 or more levels) and TAML
 * (shared + task + learner experts, several learners per task) are configurations of it.
 *
 * Each learner (t, l) has a tower (one ReLU hidden layer of tower_dim, a linear output); its
 * logit z_tl = tower output + the task's pair and wide terms. The task's fused logit is
 * z_t = mean_l z_tl; predictions are sigmoid(z_t). Loss per sample, ESMM style, on the fused
 * logits (u = z_ctr, v = z_cvr):
 *   w_ctr   * BCE(s(u), y_click)
 * + w_ctcvr * BCE(s(u) s(v), y_click_and_conversion)
 * + w_cvr   * BCE(s(v), y_conversion)          (only where a sample sets it)
 * and with n_learners > 1 (TAML), per learner l: learner_loss times the same loss on
 * (z_ctr_l, z_cvr_l), plus the self-distillation term distill * BCE(s(z_tl), stopgrad(s(z_t))) for
 * t = CTR where the CTR term is on and t = CVR where the CTCVR or the CVR term is on: the fused
 * score teaches each learner, and no gradient flows into the teacher through this term.
 * Scenario components (see fr_model_config): DFFI computes the pair products through the
 * scenario's micro-network D; DFUB appends a target attention over a behaviour list to x;
 * CausalInt adds a gradient-reversed scenario classifier and an orthogonality term on the level-0
 * shared and scenario experts (training only). Embeddings: Adagrad or FTRL-Proximal per
 * coordinate (emb_optimizer). Dense: Adagrad or Adam. Dense math on mini-batches via OpenBLAS.
 *
 * Loss scaling: a mini-batch's gradient is the SUM of its samples' gradients, not the mean, so
 * a rare key's row gets its full per-sample gradient whatever the batch size; Adagrad's
 * normalisation keeps the dense steps bounded (about lr_dense per coordinate at first).
 * Initialisation: embedding weights uniform in [-init_scale, init_scale] from
 * fr_hash_uniform(seed ^ table mix ^ key, i) -- a function of (seed, table, key) only, never of
 * arrival order; dense weights uniform in [-1/sqrt(fan_in), 1/sqrt(fan_in)] from
 * fr_hash_uniform(seed ^ fr_hash_field(tensor name), i); biases 0 except the output biases,
 * which start at the logits of typical base rates (CTR 0.05, CVR 0.1) so the first batches do
 * not spend their steps learning the prior.
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

#include "fr_sample.h"

typedef struct {
    int n_cat;              /* categorical fields used (<= FR_MAX_CAT), each its own table */
    int n_num;
    int n_multi;
    int n_scenarios;
    int emb_dim;            /* default 8 */
    int n_experts;          /* shared experts per level, default 4 */
    int expert_dim;         /* default 32 */
    int tower_dim;          /* default 16 */
    int batch_size;         /* default 256: the trainer updates once per batch */
    float lr_emb;           /* default 0.3 */
    float lr_dense;         /* default 0.05 */
    float adagrad_init;     /* initial accumulator, default 0.1 */
    float init_scale;       /* embedding init uniform in [-s, s], default 0.1: products of two
                             * embeddings start small but not at the zero saddle of the pair layer */
    uint64_t seed;          /* initialisation seed, default 1 */
    /* Explicit pairwise field interactions (FM / PNN inner products), a bit set, default 3:
     * 1 = the inner products <e_i, e_j> of every pair of embedded fields (categorical fields,
     *     the scenario included, and pooled multi-valued fields) are appended to the expert input;
     * 2 = they also reach each task's logit directly, one weight per pair and task (FwFM).
     * 0 = off: the concatenation alone, as before. */
    int interactions;
    /* 1 (default): a linear ("wide") head from x's embedding and numeric columns straight to each
     * logit, one weight per column and task: first-order effects (a key's own CTR or CVR lift)
     * reach the logits without going through the experts. 0 = off. */
    int wide;
    /* The engine (see the top of this file). Defaults give today's MMoE: 0, 0, 0, 1, 1, 0. */
    int n_task_experts;     /* experts of each task, per level (CGC / PLE / TAML) */
    int n_scenario_experts; /* experts of each scenario, per level; n_scenarios * this <= 256 */
    int n_learner_experts;  /* experts of each learner at the last level (TAML) */
    int n_levels;           /* extraction levels, 1..4 (PLE: 2 or more) */
    int n_learners;         /* learners (towers) per task, 1..4 (TAML: 2 or more) */
    int scenario_dim;       /* 0, or the width of the learned scenario vector every gate also reads */
    /* DFFI (DFFM's domain-facilitated feature interaction): 0 = off, or the layers (1..2) of a
     * per-sample micro-network D whose weights are sliced from the sample's scenario vector
     * (layer l: W_l [emb_dim x emb_dim] row-major then b_l [emb_dim], from float
     * l * emb_dim * (emb_dim + 1) on; needs scenario_dim >= dffi_layers * emb_dim * (emb_dim + 1)),
     * D(e) = tanh(W_L .. tanh(W_1 e + b_1) .. + b_L); the pairwise interactions become
     * <D(e_i), D(e_j)> (plain <e_i, e_j> for a scenario outside [0, n_scenarios)). */
    int dffi_layers;
    float distill;          /* self-distillation weight (n_learners > 1 only), default 0 */
    float learner_loss;     /* weight of each learner's own ESMM loss (n_learners > 1 only), default 0 */
    /* CausalInt's split: the shared experts are the scenario-invariant extractor, the scenario
     * experts the scenario-specific one, the gates fuse them. With h_inv = the mean of the level-0
     * shared experts' outputs and h_spc = the mean of the sample's level-0 scenario experts:
     * causal_adv > 0: a scenario classifier softmax(causal.classifier.w h_inv + .b) trained with
     *   weight causal_adv on cross-entropy, its gradient REVERSED into the shared experts
     *   (gradient reversal: the extractor learns to hide the scenario). Not used to predict.
     * causal_orth > 0: the penalty causal_orth * <h_inv, h_spc>^2 (a representation-orthogonality
     *   stand-in for the paper's gradient-based orthogonal regulariser, which is not reproduced).
     * Both apply to samples with a known scenario and at least one loss term on. */
    float causal_adv;
    float causal_orth;
    /* DFUB (DFFM's domain-facilitated user behaviour): 0 = off, or the heads (dividing emb_dim)
     * of a target attention over the items of multi-valued field dfub_history (each item's own
     * embedding, in list order): query = dfub.q.w [e_target; e_scenario] (e_target = categorical
     * field dfub_target's embedding, e_scenario = categorical field 0's), keys dfub.k.w e_k,
     * values dfub.v.w e_k; per head softmax(q_h . k_h / sqrt(emb_dim / heads)) weights the
     * values. The emb_dim outputs are appended to x after the pair products (zeros for an
     * empty list) and feed the experts. */
    int dfub_heads;
    int dfub_target;        /* categorical slot, 1..n_cat-1 */
    int dfub_history;       /* multi-valued field index, 0..n_multi-1 */
    /* Dense optimizer: 0 = Adagrad (lr_dense, adagrad_init), 1 = Adam (lr_dense as its step size,
     * adam_beta1, adam_beta2, adam_eps; the step count is the model version, so it survives a
     * checkpoint). */
    int dense_optimizer;
    float adam_beta1;       /* default 0.9 */
    float adam_beta2;       /* default 0.999 */
    float adam_eps;         /* default 1e-8 */
    /* Embedding optimizer: 0 = Adagrad (lr_emb, adagrad_init; one state float per coordinate),
     * 1 = FTRL-Proximal (fr_optim.h; ftrl_*; two state floats per coordinate, z then n). A new FTRL
     * row starts at the same random weights as under Adagrad, with n = 0 and z = fr_ftrl_z_for(w). */
    int emb_optimizer;
    float ftrl_alpha;       /* > 0, default 0.3 */
    float ftrl_beta;        /* > 0, default 0.5 */
    float ftrl_l1;          /* >= 0, default 0 */
    float ftrl_l2;          /* >= 0, default 0 */
} fr_model_config;

typedef struct fr_model fr_model;

void fr_model_config_defaults(fr_model_config *c);
/* Returns 0, or -1 with a message naming the offending key ("model.n_levels: ...") when a value
 * is out of range or the sizes are inconsistent. fr_model_create calls it. */
int fr_model_config_validate(const fr_model_config *c, char *err, size_t errlen);
/* Returns NULL with a message in err when the config is inconsistent. */
fr_model *fr_model_create(const fr_model_config *c, char *err, size_t errlen);
/* For serving (store/fr_reader.c): rows hold their weights only, no optimizer state (half an
 * Adagrad row's floats, a third of an FTRL row's), and there is no training workspace:
 * fr_model_train does nothing on it; fr_model_predict, put/get row and set_dense work as usual. */
fr_model *fr_model_create_weights_only(const fr_model_config *c, char *err, size_t errlen);
void fr_model_free(fr_model *m);
const fr_model_config *fr_model_get_config(const fr_model *m);
/* One line naming every architecture and training setting of c ("levels=1 experts: shared=4 ..."),
 * for logs and `freshet inspect`. Returns snprintf's count. */
int fr_model_describe(const fr_model_config *c, char *buf, size_t len);
/* Restart with a possibly edited configuration: a checkpoint carries the config it was trained
 * with, and the operator's file may differ from it. Fields that shape the parameters or their
 * meaning (sizes, components, interactions, wide, both optimizers, causal_adv on/off) must match:
 * returns -1 with "model.<key>: the checkpoint was trained with X, the configuration says Y".
 * Training settings (learning rates, adagrad_init and init_scale for rows created from now on,
 * batch_size, seed, distill, learner_loss, the causal_adv / causal_orth weights, Adam's betas and
 * eps, FTRL's alpha, beta, l1, l2) are taken from c, and each one that changed is listed in changed ("model.lr_emb 0.3 -> 0.1,
 * ...", empty when none) so the caller can log it. On -1 (mismatch, or out of memory resizing the
 * batch) the model is unchanged. */
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

/* --- For tests and gradient checks only: not used by the daemon. ---------------------------- */

/* Total weighted loss (a sum over samples, as trained) of n samples under the current parameters,
 * by a separate double-precision forward pass that reads rows without creating them (unseen =
 * zeros). Probabilities are clipped to [1e-7, 1 - 1e-7]. NAN when memory runs out. */
double fr_model_loss(const fr_model *m, const fr_sample *s, int n);
/* fr_model_loss counts CausalInt's adversarial term with + (the classifier's objective).
 * fr_model_loss_teacher: the same with the distillation teacher held fixed: teacher[2i + t] is
 * sample i's fused probability of task t (CTR, CVR); with fill = 1 it is computed at the current
 * parameters and written, with fill = 0 it is read (differencing the fill = 0 loss checks the
 * stop-gradient); and with the adversarial term's sign adv_sign: +1 for the classifier's
 * parameters, -1 for everything else (what gradient reversal means). */
double fr_model_loss_teacher(const fr_model *m, const fr_sample *s, int n, double *teacher, int fill, int adv_sign);
/* Analytic gradient of the same loss, at the same point (unseen rows = zeros, none created), by
 * the training code path. n <= batch_size. dense_grad receives fr_model_dense_count floats (may
 * be NULL); fn (may be NULL) is called once per distinct (table, key) the samples touch, in order
 * of first touch, with emb_dim floats of gradient. Changes no parameter. Returns 0, or -1. */
/* Dense multiply-add flops (2 per multiply-add) of one training example, forward and backward,
 * counting the matrix products only (the layers' sgemm and DFFI's matrix-vector products): what
 * the sgemm rate bounds. For benchmarks. */
double fr_model_flops_per_example(const fr_model *m);
typedef void (*fr_row_grad_fn)(uint32_t table, uint64_t key, const float *grad, void *ctx);
int fr_model_gradients(fr_model *m, const fr_sample *s, int n, float *dense_grad, fr_row_grad_fn fn, void *ctx);

#endif
