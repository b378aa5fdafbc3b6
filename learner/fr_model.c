#include "fr_model.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fr_admit.h"
#include "fr_emb.h"
#include "fr_hash.h"
#include "fr_optim.h"

/* Upper bounds keep every size computation far from overflow; they are well above any sane model. */
enum {
    MAX_EMB_DIM = 1024, MAX_EXPERTS = 64, MAX_HIDDEN = 4096, MAX_BATCH = 1 << 16, NAME_LEN = 64, TNAME_LEN = 96,
    MAX_LEVELS = 4, MAX_LEARNERS = 4, MAX_Q = 2 * MAX_LEARNERS, /* learners over both tasks */
    MAX_ST = 3,                    /* input streams of a level: shared, ctr, cvr */
    MAX_GT = MAX_Q,                /* gates of a level: one per learner at the last level */
    MAX_SCEN_EXPERTS = 256,        /* n_scenarios * n_scenario_experts */
    MAX_SCEN_DIM = 1024,
    MAX_GATE = 4 * MAX_EXPERTS,    /* experts one gate mixes */
    MAX_DFFI_LAYERS = 2,
    MAX_SCEN_CLASSES = 1024,       /* scenarios CausalInt's classifier tells apart */
    MAX_DFUB_HEADS = 8,
    HL = FR_MAX_MULTI_LEN,         /* DFUB's history length */
    MAX_DFUB_DIM = 64,             /* emb_dim with DFUB */
    MAX_DFFI_DIM = 32,             /* emb_dim with DFFI: a layer's D (D + 1) floats fit MAX_SCEN_DIM */
};
static const double P_CLIP = 1e-7;

/* The dense per-sample loops (ReLU masks, gate mixing, pair products, DFFI) are short vector loops;
 * built for x86-64's baseline SSE2 they run at half the width AVX2 gives. GCC and clang compile the
 * functions marked FR_VEC twice and pick the AVX2 copy at load time where the CPU has it. The
 * arithmetic is the same in both copies (element-wise operations and sums in a written-out order;
 * "avx2" does not enable FMA, so nothing is contracted), so the results do not depend on the copy.
 * The choice needs the loader's ifunc support, hence glibc only. */
#if defined(__x86_64__) && defined(__GLIBC__) && (defined(__GNUC__) || defined(__clang__)) && !defined(FR_NO_CLONES)
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

/* Mixes the table index into the initialisation seed. Changing it changes the initial value of
 * every row created afterwards, so replays across versions would diverge: treat it as format. */
static uint64_t table_mix(uint32_t table) { return (uint64_t)(table + 1) * 0x9E3779B97F4A7C15ULL; }

/* Optimizer state floats per embedding coordinate: Adagrad's accumulator, or FTRL's z and n. */
static int row_state_per_coord(const fr_model_config *c) { return c->emb_optimizer == 1 ? 2 : 1; }

/* The engine's plan, fixed at creation. An expert's output occupies columns [col, col + hd) of
 * its stream's activations; a gate's logits (then probabilities) occupy [col, col + ng). */
typedef struct {
    int st, col;
    char name[NAME_LEN];
} fr_xpert;

typedef struct {
    int st, col;               /* col = -1 when ng == 1: the identity, no parameters */
    int ng, n_fixed, n_sc, sc_base;
    int fixed[MAX_GATE];       /* expert indices of the level, then n_sc scenario slots */
    size_t off_sw;             /* [ng x scenario_dim], with scenario_dim and ng > 1 */
    char name[NAME_LEN];
} fr_gate;

typedef struct {
    int src;                   /* -1: x; else the gate of the previous level whose output this is */
    int dim, rows, ex_rows;    /* input width; outputs (experts then gates); expert outputs */
    size_t off_w, off_b;
} fr_stream;

typedef struct {
    int n_st, n_ex, n_gt;
    fr_stream st[MAX_ST];
    fr_xpert *ex;              /* n_ex, owned by the model */
    fr_gate gt[MAX_GT];
} fr_level;

/* Per-batch buffers, allocated once for `cap` samples so training never allocates (except rows). */
typedef struct {
    int cap;
    float *x;          /* [cap x in] */
    float *pr;         /* [cap x npair]: <e_i, e_j> for the field pairs i < j, in row-major pair order */
    /* the pairs batch-innermost, so their loops run over the batch in vector registers: */
    float *xt;         /* [nf x D x cap]: x's embedding columns transposed */
    float *prt;        /* [npair x cap]: pr transposed (forward), then d loss / d p (backward) */
    float *dxt;        /* [nf x D x cap]: backward, the pairs' part of d loss / d x's embedding columns */
    int32_t *scen;     /* [cap]: scenario index, -1 when outside [0, n_scenarios) */
    float *act[MAX_LEVELS][MAX_ST];  /* [cap x rows]: expert outputs after ReLU, gate probabilities */
    float *go[MAX_LEVELS][MAX_GT];   /* [cap x hd]: each gate's mixture of experts */
    float *th[MAX_Q];  /* [cap x td]: tower hidden layer after ReLU */
    float *zl[MAX_Q];  /* [cap]: learner logits */
    float *extra[2];   /* [cap]: the task's pair and wide terms */
    float *dffi_h[MAX_DFFI_LAYERS]; /* [cap x nf x D]: each field's output of DFFI layer l */
    float *dffi_wt;    /* [n_scenarios x dffi_layers x D x D]: the scenario's layer weights transposed */
    int32_t *dffi_seen;/* [n_scenarios]: dffi_wt holds the scenario's current weights (reset per batch) */
    float *dffi_d;     /* [nf x D]: backward scratch, d loss / d D(e_i) of one sample */
    float *dffi_dp;    /* [npair]: backward scratch, d loss / d p_ij of one sample */
    float *cz;         /* [n_scenarios + 3 hd]: CausalInt scratch: classifier logits, h_inv, h_spc, dh */
    float *gs;         /* [n_scenarios x max gate width]: one gate's scenario logit terms (forward), then the
                        * sums of its logit gradients per scenario (backward); with scenario_dim */
    /* DFUB, per sample: the history items' embeddings, keys and values [cap x HL x D], the query
     * [cap x D], the attention weights [cap x heads x HL], the item count [cap] */
    float *ub_e, *ub_k, *ub_v, *ub_q, *ub_a;
    float *ub_wt;      /* [2 x D x D]: DFUB's key and value projections transposed (per batch) */
    int32_t *ub_len;
    float *logit[2];   /* [cap]: fused logits */
    /* backward and sparse bookkeeping: NULL in the predict workspace */
    float *dact[MAX_LEVELS][MAX_ST];
    float *dgo[MAX_LEVELS][MAX_GT];
    float *dzl[MAX_Q]; /* [cap] */
    float *dextra[2];  /* [cap] */
    float *dt;         /* [cap x td] */
    float *dx;         /* [cap x in]: d loss / d x */
    float *gdense;     /* [P] */
    float *ones;       /* [cap] of 1: bias gradients are column sums, sgemv against it */
    int32_t *slot;     /* [cap x npos]: touched-row index per embedding position, -1 for none */
    float *inv_cnt;    /* [cap x n_multi]: 1 / number of keys pooled */
    int max_touch, n_touch;
    uint32_t *t_table; /* [max_touch]: the distinct (table, key) of the batch, in order of first touch */
    uint64_t *t_key;
    int64_t *t_row;    /* row index, -1 when the key has no row */
    float *t_grad;     /* [max_touch x emb_dim] */
    int32_t *dd;       /* [dd_cap]: open-addressing (table, key) -> touched index, -1 empty */
    size_t dd_cap;
} fr_ws;

struct fr_model {
    fr_model_config c;
    int row_state;           /* optimizer floats per row coordinate: 1 or 2, 0 for a weights-only model */
    int D, in, emb_in, hd, td, npos;
    int nf, npair, pair_off; /* embedded fields, their pairs, the column of the first pair in x */
    int pair_in;             /* pairs fed to the experts: npair or 0 */
    int dfub_off;            /* the column of DFUB's output in x */
    size_t off_dq, off_dk, off_dv; /* DFUB's projections */
    int fm_logit;            /* the pairs also reach each logit through a weight per pair */
    int wide;                /* a linear head from x's embedding and numeric columns to each logit */
    int NL, L, Q, sd;        /* levels, learners per task, learners in all, scenario vector width */
    fr_level lv[MAX_LEVELS];
    uint32_t n_tables;
    fr_emb *tables;
    size_t P, S;             /* dense parameters; optimizer state floats (P Adagrad, 2P Adam) */
    float *w, *acc;
    size_t off_cls;          /* CausalInt's classifier: [n_scenarios x hd] weights, then n_scenarios biases */
    size_t off_semb, off_th[MAX_Q], off_tb[MAX_Q], off_ow[MAX_Q], off_ob[MAX_Q], off_fm[2], off_wide[2];
    int n_tensors, max_tensors;
    fr_tensor_info *tensors;
    char *names;
    uint64_t version;
    uint64_t alloc_failures;
    struct fr_lifecycle *lc; /* admission and eviction (NULL: rows at first sight, never evicted) */
    fr_ws *train_ws;
    fr_ws *pred_ws; /* predict writes here through a const model: see the header's thread note */
};

struct fr_lifecycle;
static void lc_free(struct fr_lifecycle *lc);
static int lc_admit(fr_model *m, uint32_t table, uint64_t key);
static void lc_created(fr_model *m, fr_emb *e, size_t idx);
static void lc_after_batch(fr_model *m, const fr_sample *s, int n);
static void lc_clear(fr_model *m, uint32_t bits);

void fr_model_config_defaults(fr_model_config *c)
{
    memset(c, 0, sizeof *c);
    c->n_cat = 8;
    c->n_num = 1;
    c->n_multi = 1;
    c->n_scenarios = 4;
    c->emb_dim = 8;
    c->n_experts = 4;
    c->expert_dim = 32;
    c->tower_dim = 16;
    c->batch_size = 256;
    c->lr_emb = 0.3f;
    c->lr_dense = 0.05f;
    c->adagrad_init = 0.1f;
    c->init_scale = 0.1f;
    c->seed = 1;
    c->interactions = 3;
    c->wide = 1;
    c->n_levels = 1;
    c->n_learners = 1;
    c->adam_beta1 = 0.9f;
    c->adam_beta2 = 0.999f;
    c->adam_eps = 1e-8f;
    c->ftrl_alpha = 0.3f;
    c->ftrl_beta = 0.5f;
}

const fr_model_config *fr_model_get_config(const fr_model *m) { return &m->c; }

/* ---- workspace -------------------------------------------------------------------------------- */

static void ws_free(fr_ws *w)
{
    if (!w) return;
    free(w->x);
    free(w->pr);
    free(w->xt);
    free(w->prt);
    free(w->dxt);
    free(w->scen);
    for (int v = 0; v < MAX_LEVELS; v++) {
        for (int s = 0; s < MAX_ST; s++) {
            free(w->act[v][s]);
            free(w->dact[v][s]);
        }
        for (int g = 0; g < MAX_GT; g++) {
            free(w->go[v][g]);
            free(w->dgo[v][g]);
        }
    }
    for (int q = 0; q < MAX_Q; q++) {
        free(w->th[q]);
        free(w->zl[q]);
        free(w->dzl[q]);
    }
    for (int l = 0; l < MAX_DFFI_LAYERS; l++) free(w->dffi_h[l]);
    free(w->dffi_d);
    free(w->dffi_wt);
    free(w->dffi_seen);
    free(w->dffi_dp);
    free(w->cz);
    free(w->gs);
    free(w->ub_e);
    free(w->ub_wt);
    free(w->ub_k);
    free(w->ub_v);
    free(w->ub_q);
    free(w->ub_a);
    free(w->ub_len);
    for (int t = 0; t < 2; t++) {
        free(w->extra[t]);
        free(w->logit[t]);
        free(w->dextra[t]);
    }
    free(w->dt);
    free(w->dx);
    free(w->gdense);
    free(w->ones);
    free(w->slot);
    free(w->inv_cnt);
    free(w->t_table);
    free(w->t_key);
    free(w->t_row);
    free(w->t_grad);
    free(w->dd);
    free(w);
}

static void *falloc(size_t n, size_t size, int *fail)
{
    void *p = calloc(n ? n : 1, size);
    if (!p) *fail = 1;
    return p;
}

static fr_ws *ws_new(const fr_model *m, int cap, int backward)
{
    fr_ws *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    int f = 0;
    size_t n = (size_t)cap;
    w->cap = cap;
    w->x = falloc(n * m->in, sizeof(float), &f);
    w->pr = falloc(n * (size_t)m->npair, sizeof(float), &f);
    if (m->npair) {
        w->xt = falloc(n * (size_t)m->nf * m->D, sizeof(float), &f);
        w->prt = falloc(n * (size_t)m->npair, sizeof(float), &f);
        if (backward) w->dxt = falloc(n * (size_t)m->nf * m->D, sizeof(float), &f);
    }
    w->scen = falloc(n, sizeof(int32_t), &f);
    if (m->sd) {
        int ng = 1;
        for (int v = 0; v < m->NL; v++)
            for (int g = 0; g < m->lv[v].n_gt; g++) ng = m->lv[v].gt[g].ng > ng ? m->lv[v].gt[g].ng : ng;
        w->gs = falloc((size_t)m->c.n_scenarios * ng, sizeof(float), &f);
    }
    for (int v = 0; v < m->NL; v++) {
        const fr_level *lv = &m->lv[v];
        for (int s = 0; s < lv->n_st; s++) {
            w->act[v][s] = falloc(n * (size_t)lv->st[s].rows, sizeof(float), &f);
            if (backward) w->dact[v][s] = falloc(n * (size_t)lv->st[s].rows, sizeof(float), &f);
        }
        for (int g = 0; g < lv->n_gt; g++) {
            w->go[v][g] = falloc(n * m->hd, sizeof(float), &f);
            if (backward) w->dgo[v][g] = falloc(n * m->hd, sizeof(float), &f);
        }
    }
    for (int q = 0; q < m->Q; q++) {
        w->th[q] = falloc(n * m->td, sizeof(float), &f);
        w->zl[q] = falloc(n, sizeof(float), &f);
        if (backward) w->dzl[q] = falloc(n, sizeof(float), &f);
    }
    for (int t = 0; t < 2; t++) {
        w->extra[t] = falloc(n, sizeof(float), &f);
        w->logit[t] = falloc(n, sizeof(float), &f);
        if (backward) w->dextra[t] = falloc(n, sizeof(float), &f);
    }
    for (int l = 0; l < m->c.dffi_layers; l++) w->dffi_h[l] = falloc(n * m->nf * m->D, sizeof(float), &f);
    if (m->c.dffi_layers) {
        w->dffi_wt = falloc((size_t)m->c.n_scenarios * m->c.dffi_layers * m->D * m->D, sizeof(float), &f);
        w->dffi_seen = falloc((size_t)m->c.n_scenarios, sizeof(int32_t), &f);
    }
    if (m->c.dfub_heads) {
        w->ub_e = falloc(n * HL * m->D, sizeof(float), &f);
        w->ub_k = falloc(n * HL * m->D, sizeof(float), &f);
        w->ub_v = falloc(n * HL * m->D, sizeof(float), &f);
        w->ub_q = falloc(n * m->D, sizeof(float), &f);
        w->ub_a = falloc(n * (size_t)m->c.dfub_heads * HL, sizeof(float), &f);
        w->ub_len = falloc(n, sizeof(int32_t), &f);
        w->ub_wt = falloc(2 * (size_t)m->D * m->D, sizeof(float), &f);
    }
    if (backward) {
        if (m->c.causal_adv > 0 || m->c.causal_orth > 0)
            w->cz = falloc((size_t)m->c.n_scenarios + 3 * (size_t)m->hd, sizeof(float), &f);
        if (m->c.dffi_layers) {
            w->dffi_d = falloc((size_t)m->nf * m->D, sizeof(float), &f);
            w->dffi_dp = falloc((size_t)m->npair, sizeof(float), &f);
        }
        w->dt = falloc(n * m->td, sizeof(float), &f);
        w->dx = falloc(n * m->in, sizeof(float), &f);
        w->gdense = falloc(m->P, sizeof(float), &f);
        w->ones = falloc(n, sizeof(float), &f);
        for (size_t i = 0; w->ones && i < n; i++) w->ones[i] = 1.0f;
        w->slot = falloc(n * m->npos, sizeof(int32_t), &f);
        w->inv_cnt = falloc(n * (size_t)m->c.n_multi, sizeof(float), &f);
        w->max_touch = cap * m->npos;
        size_t mt = (size_t)w->max_touch;
        w->t_table = falloc(mt, sizeof(uint32_t), &f);
        w->t_key = falloc(mt, sizeof(uint64_t), &f);
        w->t_row = falloc(mt, sizeof(int64_t), &f);
        w->t_grad = falloc(mt * m->D, sizeof(float), &f);
        w->dd_cap = 16;
        while (w->dd_cap < 2 * mt) w->dd_cap *= 2;
        w->dd = falloc(w->dd_cap, sizeof(int32_t), &f);
    }
    if (f) {
        ws_free(w);
        return NULL;
    }
    return w;
}

/* ---- create / free ---------------------------------------------------------------------------- */

static int check_int(const char *key, int v, int lo, int hi, char *err, size_t errlen)
{
    if (v >= lo && v <= hi) return 0;
    snprintf(err, errlen, "%s must be in [%d, %d] (got %d)", key, lo, hi, v);
    return -1;
}

static int check_pos(const char *key, float v, int allow_zero, char *err, size_t errlen)
{
    if (isfinite(v) && (v > 0 || (allow_zero && v == 0))) return 0;
    snprintf(err, errlen, "%s must be a finite number %s 0 (got %g)", key, allow_zero ? ">=" : ">", (double)v);
    return -1;
}

int fr_model_config_validate(const fr_model_config *c, char *err, size_t errlen)
{
    if (check_int("model.n_cat", c->n_cat, 1, FR_MAX_CAT, err, errlen) ||
        check_int("model.n_num", c->n_num, 0, FR_MAX_NUM, err, errlen) ||
        check_int("model.n_multi", c->n_multi, 0, FR_MAX_MULTI, err, errlen) ||
        check_int("model.n_scenarios", c->n_scenarios, 1, 1 << 20, err, errlen) ||
        check_int("model.emb_dim", c->emb_dim, 1, MAX_EMB_DIM, err, errlen) ||
        check_int("model.n_experts", c->n_experts, 0, MAX_EXPERTS, err, errlen) ||
        check_int("model.n_task_experts", c->n_task_experts, 0, MAX_EXPERTS, err, errlen) ||
        check_int("model.n_learner_experts", c->n_learner_experts, 0, MAX_EXPERTS, err, errlen) ||
        check_int("model.n_scenario_experts", c->n_scenario_experts, 0, MAX_EXPERTS, err, errlen) ||
        check_int("model.n_levels", c->n_levels, 1, MAX_LEVELS, err, errlen) ||
        check_int("model.n_learners", c->n_learners, 1, MAX_LEARNERS, err, errlen) ||
        check_int("model.scenario_dim", c->scenario_dim, 0, MAX_SCEN_DIM, err, errlen) ||
        check_int("model.dffi_layers", c->dffi_layers, 0, MAX_DFFI_LAYERS, err, errlen) ||
        check_int("model.dfub_heads", c->dfub_heads, 0, MAX_DFUB_HEADS, err, errlen) ||
        check_int("model.dense_optimizer", c->dense_optimizer, 0, 1, err, errlen) ||
        check_int("model.emb_optimizer", c->emb_optimizer, 0, 1, err, errlen) ||
        check_int("model.expert_dim", c->expert_dim, 1, MAX_HIDDEN, err, errlen) ||
        check_int("model.tower_dim", c->tower_dim, 1, MAX_HIDDEN, err, errlen) ||
        check_int("model.batch_size", c->batch_size, 1, MAX_BATCH, err, errlen) ||
        check_pos("model.lr_emb", c->lr_emb, 0, err, errlen) ||
        check_pos("model.lr_dense", c->lr_dense, 0, err, errlen) ||
        check_pos("model.adagrad_init", c->adagrad_init, 0, err, errlen) ||
        check_pos("model.init_scale", c->init_scale, 1, err, errlen) ||
        check_pos("model.distill", c->distill, 1, err, errlen) ||
        check_pos("model.learner_loss", c->learner_loss, 1, err, errlen) ||
        check_pos("model.causal_adv", c->causal_adv, 1, err, errlen) ||
        check_pos("model.causal_orth", c->causal_orth, 1, err, errlen) ||
        check_int("model.interactions", c->interactions, 0, 3, err, errlen) ||
        check_int("model.wide", c->wide, 0, 1, err, errlen))
        return -1;
    if ((int64_t)c->n_scenario_experts * c->n_scenarios > MAX_SCEN_EXPERTS) {
        snprintf(err, errlen,
                 "model.n_scenario_experts: %d experts for each of %d scenarios exceed the limit of %d in all",
                 c->n_scenario_experts, c->n_scenarios, MAX_SCEN_EXPERTS);
        return -1;
    }
    if (c->n_experts + c->n_task_experts + c->n_learner_experts + c->n_scenario_experts < 1) {
        snprintf(err, errlen, "model.n_experts: every learner's gate needs at least one expert (n_experts + "
                              "n_task_experts + n_learner_experts + n_scenario_experts is 0)");
        return -1;
    }
    if (c->n_levels > 1 && c->n_experts + c->n_task_experts + c->n_scenario_experts < 1) {
        snprintf(err, errlen, "model.n_levels: %d levels need shared, task or scenario experts below the last level "
                              "(learner experts exist only at the last one)", c->n_levels);
        return -1;
    }
    if (c->dense_optimizer == 1 &&
        (!(c->adam_beta1 >= 0 && c->adam_beta1 < 1) || !(c->adam_beta2 >= 0 && c->adam_beta2 < 1) ||
         !(c->adam_eps > 0 && isfinite(c->adam_eps)))) {
        snprintf(err, errlen, "model.%s: Adam needs beta1 and beta2 in [0, 1) and eps > 0 (got %g, %g, %g)",
                 !(c->adam_beta1 >= 0 && c->adam_beta1 < 1) ? "adam_beta1"
                 : !(c->adam_beta2 >= 0 && c->adam_beta2 < 1) ? "adam_beta2"
                                                             : "adam_eps",
                 (double)c->adam_beta1, (double)c->adam_beta2, (double)c->adam_eps);
        return -1;
    }
    /* beta > 0: with beta = 0 a fresh coordinate (n = 0) would divide by l2, possibly 0 */
    if (c->emb_optimizer == 1 &&
        (check_pos("model.ftrl_alpha", c->ftrl_alpha, 0, err, errlen) ||
         check_pos("model.ftrl_beta", c->ftrl_beta, 0, err, errlen) ||
         check_pos("model.ftrl_l1", c->ftrl_l1, 1, err, errlen) ||
         check_pos("model.ftrl_l2", c->ftrl_l2, 1, err, errlen)))
        return -1;
    if (c->dfub_heads > 0) {
        if (c->emb_dim > MAX_DFUB_DIM) {
            snprintf(err, errlen, "model.dfub_heads: DFUB supports emb_dim up to %d (got %d)", MAX_DFUB_DIM, c->emb_dim);
            return -1;
        }
        if (c->emb_dim % c->dfub_heads) {
            snprintf(err, errlen, "model.dfub_heads: %d heads do not divide emb_dim %d", c->dfub_heads, c->emb_dim);
            return -1;
        }
        if (c->dfub_target < 1 || c->dfub_target >= c->n_cat) {
            snprintf(err, errlen, "model.dfub_target: categorical slot %d is not a feature field (1..%d)", c->dfub_target,
                     c->n_cat - 1);
            return -1;
        }
        if (c->dfub_history < 0 || c->dfub_history >= c->n_multi) {
            snprintf(err, errlen, "model.dfub_history: multi-valued field %d does not exist (the model has %d)",
                     c->dfub_history, c->n_multi);
            return -1;
        }
    }
    if (c->dffi_layers > 0 && c->interactions == 0) {
        snprintf(err, errlen, "model.dffi_layers: DFFI computes the pairwise interactions, but model.interactions is 0");
        return -1;
    }
    if (c->dffi_layers > 0 && c->scenario_dim < c->dffi_layers * c->emb_dim * (c->emb_dim + 1)) {
        snprintf(err, errlen,
                 "model.scenario_dim: %d floats are too narrow for the DFFI network (model.dffi_layers = %d with "
                 "emb_dim %d needs %d = dffi_layers x emb_dim x (emb_dim + 1))",
                 c->scenario_dim, c->dffi_layers, c->emb_dim, c->dffi_layers * c->emb_dim * (c->emb_dim + 1));
        return -1;
    }
    if ((c->causal_adv > 0 || c->causal_orth > 0) && c->n_experts < 1) {
        snprintf(err, errlen, "model.%s: CausalInt's invariant extractor is the shared experts, but model.n_experts is 0",
                 c->causal_adv > 0 ? "causal_adv" : "causal_orth");
        return -1;
    }
    if (c->causal_adv > 0 && (c->n_scenarios < 2 || c->n_scenarios > MAX_SCEN_CLASSES)) {
        snprintf(err, errlen, "model.causal_adv: the scenario classifier needs 2..%d scenarios (got %d)",
                 MAX_SCEN_CLASSES, c->n_scenarios);
        return -1;
    }
    if (c->causal_orth > 0 && c->n_scenario_experts < 1) {
        snprintf(err, errlen, "model.causal_orth: the orthogonality term needs scenario experts (model.n_scenario_experts "
                              "is 0)");
        return -1;
    }
    if (c->learner_loss > 0 && c->n_learners < 2) {
        snprintf(err, errlen, "model.learner_loss: per-learner losses need model.n_learners >= 2 (got %d)",
                 c->n_learners);
        return -1;
    }
    if (c->distill > 0 && c->n_learners < 2) {
        snprintf(err, errlen, "model.distill: self-distillation needs model.n_learners >= 2 (got %d)", c->n_learners);
        return -1;
    }
    return 0;
}

static void add_tensor(fr_model *m, const char *name, int rows, int cols, size_t *off)
{
    int i = m->n_tensors++;
    char *dst = m->names + (size_t)i * TNAME_LEN;
    snprintf(dst, TNAME_LEN, "%s", name);
    m->tensors[i] = (fr_tensor_info){.name = dst, .rows = rows, .cols = cols, .offset = *off};
    *off += (size_t)rows * (size_t)cols;
}

static const char *const TASK_NAME[2] = {"ctr", "cvr"};

static void add_gate(fr_level *lv, int st, const char *name, int n_sc, int sc_base)
{
    fr_gate *g = &lv->gt[lv->n_gt++];
    g->st = st;
    g->n_sc = n_sc;
    g->sc_base = sc_base;
    snprintf(g->name, NAME_LEN, "%s", name);
}

static void gate_take(fr_gate *g, int from, int count)
{
    for (int i = 0; i < count; i++) g->fixed[g->n_fixed++] = from + i;
}

/* Builds the levels: experts, gates, streams and the activation columns. Returns -1 when out of
 * memory. See the header for the wiring. */
static int plan(fr_model *m)
{
    const fr_model_config *c = &m->c;
    const int ns = c->n_experts, nt = c->n_task_experts, nl = c->n_learner_experts, nsc = c->n_scenario_experts;
    const int L = m->L;
    char pre[8], name[NAME_LEN];
    for (int v = 0; v < m->NL; v++) {
        fr_level *lv = &m->lv[v];
        const int last = v == m->NL - 1;
        snprintf(pre, sizeof pre, v ? "l%d." : "", v & 3); /* v < MAX_LEVELS = 4 */
        int st_shared = 0, st_task[2] = {0, 0};
        if (v == 0) {
            lv->n_st = 1;
            lv->st[0] = (fr_stream){.src = -1, .dim = m->in};
        } else {
            const fr_level *pv = &m->lv[v - 1];
            lv->n_st = pv->n_gt;
            for (int g = 0; g < pv->n_gt; g++) lv->st[g] = (fr_stream){.src = g, .dim = m->hd};
            int has_shared = pv->n_gt == 3;
            st_shared = has_shared ? 0 : -1;
            st_task[0] = has_shared;
            st_task[1] = has_shared + 1;
        }
        int nex = ns + 2 * nt + (last ? 2 * L * nl : 0) + c->n_scenarios * nsc;
        lv->ex = calloc((size_t)(nex ? nex : 1), sizeof *lv->ex);
        if (!lv->ex) return -1;
        int k = 0, t0[2], l0[2][MAX_LEARNERS];
        for (int i = 0; i < ns; i++, k++) {
            lv->ex[k].st = st_shared;
            snprintf(lv->ex[k].name, NAME_LEN, "%sexpert.%d", pre, i);
        }
        for (int t = 0; t < 2; t++) {
            t0[t] = k;
            for (int i = 0; i < nt; i++, k++) {
                lv->ex[k].st = st_task[t];
                snprintf(lv->ex[k].name, NAME_LEN, "%sexpert.%s.%d", pre, TASK_NAME[t], i);
            }
        }
        for (int t = 0; t < 2 && last; t++)
            for (int l = 0; l < L; l++) {
                l0[t][l] = k;
                for (int i = 0; i < nl; i++, k++) {
                    lv->ex[k].st = st_task[t];
                    snprintf(lv->ex[k].name, NAME_LEN, "%sexpert.%s.learner%d.%d", pre, TASK_NAME[t], l, i);
                }
            }
        const int sc0 = k;
        for (int s = 0; s < c->n_scenarios && nsc; s++)
            for (int i = 0; i < nsc; i++, k++) {
                lv->ex[k].st = st_shared;
                snprintf(lv->ex[k].name, NAME_LEN, "%sexpert.scenario%d.%d", pre, s, i);
            }
        lv->n_ex = k;
        if (!last) {
            if (ns + nsc > 0) {
                snprintf(name, sizeof name, "%sgate.shared", pre);
                add_gate(lv, st_shared, name, nsc, sc0);
                gate_take(&lv->gt[lv->n_gt - 1], 0, ns + 2 * nt);
            }
            for (int t = 0; t < 2; t++) {
                snprintf(name, sizeof name, "%sgate.%s", pre, TASK_NAME[t]);
                add_gate(lv, st_task[t], name, nsc, sc0);
                gate_take(&lv->gt[lv->n_gt - 1], 0, ns);
                gate_take(&lv->gt[lv->n_gt - 1], t0[t], nt);
            }
        } else {
            for (int t = 0; t < 2; t++)
                for (int l = 0; l < L; l++) {
                    if (l)
                        snprintf(name, sizeof name, "%sgate.%s.learner%d", pre, TASK_NAME[t], l);
                    else
                        snprintf(name, sizeof name, "%sgate.%s", pre, TASK_NAME[t]);
                    add_gate(lv, st_task[t], name, nsc, sc0);
                    fr_gate *g = &lv->gt[lv->n_gt - 1];
                    gate_take(g, 0, ns);
                    gate_take(g, t0[t], nt);
                    gate_take(g, l0[t][l], nl);
                }
        }
        for (int g = 0; g < lv->n_gt; g++) lv->gt[g].ng = lv->gt[g].n_fixed + lv->gt[g].n_sc;
        /* columns: per stream, its experts then its gates, in list order */
        for (int s = 0; s < lv->n_st; s++) {
            int col = 0;
            for (int e = 0; e < lv->n_ex; e++)
                if (lv->ex[e].st == s) lv->ex[e].col = col, col += m->hd;
            lv->st[s].ex_rows = col;
            for (int g = 0; g < lv->n_gt; g++) {
                fr_gate *gt = &lv->gt[g];
                if (gt->st != s) continue;
                if (gt->ng > 1)
                    gt->col = col, col += gt->ng;
                else
                    gt->col = -1;
            }
            lv->st[s].rows = col;
        }
        m->max_tensors += 2 * (lv->n_ex + 2 * lv->n_gt);
    }
    m->max_tensors += 1 + 4 * m->Q + 4 + 2 + 3;
    return 0;
}

/* Lays the tensors out (see the header for the order) and records the offsets the math uses. */
static void layout(fr_model *m)
{
    char name[TNAME_LEN];
    size_t off = 0;
    for (int v = 0; v < m->NL; v++) {
        fr_level *lv = &m->lv[v];
        for (int s = 0; s < lv->n_st; s++) {
            fr_stream *st = &lv->st[s];
            for (int part = 0; part < 2; part++) {
                if (part == 0)
                    st->off_w = off;
                else
                    st->off_b = off;
                const char *suffix = part ? "b" : "w";
                for (int e = 0; e < lv->n_ex; e++) {
                    if (lv->ex[e].st != s) continue;
                    snprintf(name, sizeof name, "%s.%s", lv->ex[e].name, suffix);
                    add_tensor(m, name, part ? 1 : m->hd, part ? m->hd : st->dim, &off);
                }
                for (int g = 0; g < lv->n_gt; g++) {
                    const fr_gate *gt = &lv->gt[g];
                    if (gt->st != s || gt->ng < 2) continue;
                    snprintf(name, sizeof name, "%s.%s", gt->name, suffix);
                    add_tensor(m, name, part ? 1 : gt->ng, part ? gt->ng : st->dim, &off);
                }
            }
        }
        for (int g = 0; g < lv->n_gt && m->sd; g++) {
            fr_gate *gt = &lv->gt[g];
            if (gt->ng < 2) continue;
            gt->off_sw = off;
            snprintf(name, sizeof name, "%s.scenario.w", gt->name);
            add_tensor(m, name, gt->ng, m->sd, &off);
        }
    }
    if (m->sd) {
        m->off_semb = off;
        add_tensor(m, "scenario.embedding", m->c.n_scenarios, m->sd, &off);
    }
    for (int q = 0; q < m->Q; q++) {
        int t = q / m->L, l = q % m->L;
        char base[NAME_LEN];
        if (l)
            snprintf(base, sizeof base, "tower.%s.learner%d", TASK_NAME[t], l);
        else
            snprintf(base, sizeof base, "tower.%s", TASK_NAME[t]);
        m->off_th[q] = off;
        snprintf(name, sizeof name, "%s.hidden.w", base);
        add_tensor(m, name, m->td, m->hd, &off);
        m->off_tb[q] = off;
        snprintf(name, sizeof name, "%s.hidden.b", base);
        add_tensor(m, name, 1, m->td, &off);
        m->off_ow[q] = off;
        snprintf(name, sizeof name, "%s.out.w", base);
        add_tensor(m, name, 1, m->td, &off);
        m->off_ob[q] = off;
        snprintf(name, sizeof name, "%s.out.b", base);
        add_tensor(m, name, 1, 1, &off);
    }
    if (m->fm_logit)
        for (int t = 0; t < 2; t++) {
            m->off_fm[t] = off;
            snprintf(name, sizeof name, "pair.%s.w", TASK_NAME[t]);
            add_tensor(m, name, 1, m->npair, &off);
        }
    if (m->wide)
        for (int t = 0; t < 2; t++) {
            m->off_wide[t] = off;
            snprintf(name, sizeof name, "wide.%s.w", TASK_NAME[t]);
            add_tensor(m, name, 1, m->pair_off, &off);
        }
    if (m->c.causal_adv > 0) {
        m->off_cls = off;
        add_tensor(m, "causal.classifier.w", m->c.n_scenarios, m->hd, &off);
        add_tensor(m, "causal.classifier.b", 1, m->c.n_scenarios, &off);
    }
    if (m->c.dfub_heads) {
        m->off_dq = off;
        add_tensor(m, "dfub.q.w", m->D, 2 * m->D, &off);
        m->off_dk = off;
        add_tensor(m, "dfub.k.w", m->D, m->D, &off);
        m->off_dv = off;
        add_tensor(m, "dfub.v.w", m->D, m->D, &off);
    }
    m->P = off;
}

static void init_dense(fr_model *m)
{
    for (int i = 0; i < m->n_tensors; i++) {
        const fr_tensor_info *t = &m->tensors[i];
        float *p = m->w + t->offset;
        size_t n = (size_t)t->rows * (size_t)t->cols;
        size_t len = strlen(t->name);
        int is_bias = len > 2 && strcmp(t->name + len - 2, ".b") == 0;
        int out_bias = is_bias && len > 6 && strcmp(t->name + len - 6, ".out.b") == 0;
        if (!is_bias) {
            /* keyed by the tensor's name, so resizing one tensor leaves the others' init alone */
            uint64_t s = m->c.seed ^ fr_hash_field(t->name);
            float scale = 1.0f / sqrtf((float)t->cols);
            for (size_t j = 0; j < n; j++) p[j] = fr_hash_uniform(s, j) * scale;
        } else if (out_bias && strncmp(t->name, "tower.ctr", 9) == 0) {
            p[0] = (float)log(0.05 / 0.95);
        } else if (out_bias && strncmp(t->name, "tower.cvr", 9) == 0) {
            p[0] = (float)log(0.1 / 0.9);
        } else {
            memset(p, 0, n * sizeof *p);
        }
    }
    for (size_t j = 0; j < m->S; j++) m->acc[j] = m->c.dense_optimizer == 1 ? 0.0f : m->c.adagrad_init;
}

/* DFFI starts near the plain inner product: each layer W = I + the small random init, b = 0, so
 * D(e) = tanh(~e) ~ e for the small initial embeddings, and the scenarios then bend it. */
static void init_dffi(fr_model *m)
{
    const int D = m->D;
    for (int s = 0; s < m->c.n_scenarios && m->c.dffi_layers; s++)
        for (int l = 0; l < m->c.dffi_layers; l++) {
            float *W = m->w + m->off_semb + (size_t)s * m->sd + (size_t)l * D * (D + 1);
            for (int r = 0; r < D; r++) W[r * D + r] += 1.0f;
            memset(W + D * D, 0, (size_t)D * sizeof *W);
        }
}

static fr_model *create(const fr_model_config *c, int weights_only, char *err, size_t errlen)
{
    if (fr_model_config_validate(c, err, errlen)) return NULL;
    fr_model *m = calloc(1, sizeof *m);
    if (!m) goto oom;
    m->c = *c;
    m->row_state = weights_only ? 0 : row_state_per_coord(c);
    m->D = c->emb_dim;
    m->hd = c->expert_dim;
    m->td = c->tower_dim;
    m->NL = c->n_levels;
    m->L = c->n_learners;
    m->Q = 2 * m->L;
    m->sd = c->scenario_dim;
    m->emb_in = (c->n_cat + c->n_multi) * c->emb_dim;
    m->nf = c->n_cat + c->n_multi;
    m->npair = c->interactions ? m->nf * (m->nf - 1) / 2 : 0;
    m->pair_in = (c->interactions & 1) ? m->npair : 0;
    m->fm_logit = (c->interactions & 2) && m->npair > 0;
    m->pair_off = m->emb_in + c->n_num;
    m->wide = c->wide;
    m->dfub_off = m->pair_off + m->pair_in;
    m->in = m->dfub_off + (c->dfub_heads ? c->emb_dim : 0);
    m->npos = c->n_cat + c->n_multi * FR_MAX_MULTI_LEN;
    m->n_tables = (uint32_t)(c->n_cat + c->n_multi);
    m->tables = calloc(m->n_tables, sizeof *m->tables);
    if (!m->tables) goto oom;
    for (uint32_t t = 0; t < m->n_tables; t++)
        fr_emb_init(&m->tables[t], (size_t)m->D * (size_t)(1 + m->row_state) * sizeof(float));
    if (plan(m)) goto oom;
    m->tensors = calloc((size_t)m->max_tensors, sizeof *m->tensors);
    m->names = calloc((size_t)m->max_tensors, TNAME_LEN);
    if (!m->tensors || !m->names) goto oom;
    layout(m);
    m->S = c->dense_optimizer == 1 ? 2 * m->P : m->P;
    m->w = malloc(m->P * sizeof *m->w);
    m->acc = malloc((m->S ? m->S : 1) * sizeof *m->acc);
    if (!m->w || !m->acc) goto oom;
    init_dense(m);
    init_dffi(m);
    m->train_ws = weights_only ? NULL : ws_new(m, c->batch_size, 1);
    m->pred_ws = ws_new(m, 1, 0);
    if ((!weights_only && !m->train_ws) || !m->pred_ws) goto oom;
    return m;
oom:
    snprintf(err, errlen, "out of memory creating the model (check model.batch_size and layer sizes)");
    fr_model_free(m);
    return NULL;
}

fr_model *fr_model_create(const fr_model_config *c, char *err, size_t errlen)
{
    /* Training is bit-identical only with one sgemm summation order: one BLAS thread. OpenBLAS's
     * count is process-wide (0.3.21 has no per-call setting), so it is set where every trainer (the
     * daemon, the tests, the benchmarks) passes, rather than left to OPENBLAS_NUM_THREADS=1. */
    openblas_set_num_threads(1);
    return create(c, 0, err, errlen);
}

fr_model *fr_model_create_weights_only(const fr_model_config *c, char *err, size_t errlen)
{
    return create(c, 1, err, errlen);
}

void fr_model_free(fr_model *m)
{
    if (!m) return;
    if (m->tables)
        for (uint32_t t = 0; t < m->n_tables; t++) fr_emb_free(&m->tables[t]);
    free(m->tables);
    for (int v = 0; v < MAX_LEVELS; v++) free(m->lv[v].ex);
    free(m->tensors);
    free(m->names);
    free(m->w);
    free(m->acc);
    ws_free(m->train_ws);
    ws_free(m->pred_ws);
    lc_free(m->lc);
    free(m);
}

int fr_model_describe(const fr_model_config *c, char *buf, size_t len)
{
    char emb[96];
    if (c->emb_optimizer == 1)
        snprintf(emb, sizeof emb, "ftrl alpha %g beta %g l1 %g l2 %g", (double)c->ftrl_alpha, (double)c->ftrl_beta,
                 (double)c->ftrl_l1, (double)c->ftrl_l2);
    else
        snprintf(emb, sizeof emb, "adagrad lr %g", (double)c->lr_emb);
    return snprintf(buf, len,
                    "levels=%d experts: shared=%d per_task=%d per_scenario=%d per_learner=%d; learners=%d "
                    "emb_dim=%d expert_dim=%d tower_dim=%d scenario_dim=%d interactions=%d wide=%d dffi_layers=%d "
                    "dfub_heads=%d distill=%g learner_loss=%g causal_adv=%g causal_orth=%g; optimizers: emb=%s, "
                    "dense=%s lr %g; batch=%d",
                    c->n_levels, c->n_experts, c->n_task_experts, c->n_scenario_experts, c->n_learner_experts,
                    c->n_learners, c->emb_dim, c->expert_dim, c->tower_dim, c->scenario_dim, c->interactions, c->wide,
                    c->dffi_layers, c->dfub_heads, (double)c->distill, (double)c->learner_loss, (double)c->causal_adv,
                    (double)c->causal_orth, emb, c->dense_optimizer == 1 ? "adam" : "adagrad", (double)c->lr_dense,
                    c->batch_size);
}

/* ---- restart with an edited configuration ------------------------------------------------------ */

/* Every field of fr_model_config is either compared (shape) or taken over (training setting) below;
 * a new field must be placed in one of the two lists, which this assertion forces. */
_Static_assert(sizeof(fr_model_config) == 23 * sizeof(int) + 15 * sizeof(float) + 8 + sizeof(uint64_t) ||
                   sizeof(fr_model_config) == 23 * sizeof(int) + 15 * sizeof(float) + sizeof(uint64_t),
               "fr_model_config changed: classify the new field in fr_model_retune");

static void note_change(char *out, size_t cap, size_t *len, const char *key, double from, double to)
{
    char item[96];
    int k = snprintf(item, sizeof item, "%smodel.%s %g -> %g", *len ? ", " : "", key, from, to);
    if (k <= 0 || *len + (size_t)k >= cap) return; /* the log line is cut, the settings still apply */
    memcpy(out + *len, item, (size_t)k + 1);
    *len += (size_t)k;
}

int fr_model_retune(fr_model *m, const fr_model_config *c, char *changed, size_t changed_len, char *err,
                    size_t errlen)
{
    const fr_model_config *a = &m->c;
#define FR_SHAPE(field)                                                                                        \
    if (a->field != c->field) {                                                                                \
        snprintf(err, errlen,                                                                                  \
                 "model." #field ": the checkpoint was trained with %d, the configuration says %d; restore the " \
                 "old value or start a new checkpoint.dir",                                                    \
                 (int)a->field, (int)c->field);                                                                \
        return -1;                                                                                             \
    }
    FR_SHAPE(n_cat) FR_SHAPE(n_num) FR_SHAPE(n_multi) FR_SHAPE(n_scenarios) FR_SHAPE(emb_dim)
    FR_SHAPE(n_experts) FR_SHAPE(expert_dim) FR_SHAPE(tower_dim) FR_SHAPE(interactions) FR_SHAPE(wide)
    FR_SHAPE(n_task_experts) FR_SHAPE(n_scenario_experts) FR_SHAPE(n_learner_experts) FR_SHAPE(n_levels)
    FR_SHAPE(n_learners) FR_SHAPE(scenario_dim) FR_SHAPE(dffi_layers) FR_SHAPE(dfub_heads) FR_SHAPE(dfub_target)
    FR_SHAPE(dfub_history) FR_SHAPE(dense_optimizer) FR_SHAPE(emb_optimizer)
#undef FR_SHAPE
    if ((a->causal_adv > 0) != (c->causal_adv > 0)) {
        /* the scenario classifier's parameters exist only with causal_adv > 0 */
        snprintf(err, errlen,
                 "model.causal_adv: the checkpoint was trained %s the scenario classifier, the configuration %s it; "
                 "restore the old value or start a new checkpoint.dir",
                 a->causal_adv > 0 ? "with" : "without", c->causal_adv > 0 ? "asks for" : "turns off");
        return -1;
    }
    if (fr_model_config_validate(c, err, errlen)) return -1;
    if (c->batch_size != a->batch_size && m->train_ws) {
        fr_ws *w = ws_new(m, c->batch_size, 1);
        if (!w) {
            snprintf(err, errlen, "model.batch_size: out of memory for a batch of %d", c->batch_size);
            return -1;
        }
        ws_free(m->train_ws);
        m->train_ws = w;
    }
    size_t len = 0;
    if (changed_len) changed[0] = '\0';
#define FR_TUNE(field)                                                                                         \
    if (a->field != c->field) note_change(changed, changed_len, &len, #field, (double)a->field, (double)c->field);
    FR_TUNE(batch_size) FR_TUNE(lr_emb) FR_TUNE(lr_dense) FR_TUNE(adagrad_init) FR_TUNE(init_scale) FR_TUNE(seed)
    FR_TUNE(distill) FR_TUNE(learner_loss) FR_TUNE(causal_adv) FR_TUNE(causal_orth) FR_TUNE(adam_beta1)
    FR_TUNE(adam_beta2) FR_TUNE(adam_eps) FR_TUNE(ftrl_alpha) FR_TUNE(ftrl_beta) FR_TUNE(ftrl_l1) FR_TUNE(ftrl_l2)
#undef FR_TUNE
    m->c = *c;
    return 0;
}

/* ---- rows ------------------------------------------------------------------------------------- */

/* A row's payload: D weights, then the optimizer state, D floats per state variable (Adagrad: the
 * accumulators; FTRL: z, then n). The weights are stored even under FTRL, where they are a
 * function of (z, n): reads (the forward pass, the checkpoint, publishing) then never depend on
 * the optimizer. */
static fr_ftrl_params ftrl_params(const fr_model_config *c)
{
    return (fr_ftrl_params){.alpha = c->ftrl_alpha, .beta = c->ftrl_beta, .l1 = c->ftrl_l1, .l2 = c->ftrl_l2};
}

/* The state of a row that has never trained, at weights payload[0..D). FTRL's z is set so that
 * the weights it implies are those weights: a row keeps its random draw instead of starting at
 * w = 0, where every pair product <e_i, e_j> of two new rows, and so their gradients through the
 * FwFM and PNN terms, would be exactly 0 (a saddle the rows could leave only through the wide and
 * expert paths). The alternative, w = w0 + FTRL(z, n) with z starting at 0, would keep the draw as
 * a permanent offset: l1 could then never make a weight exactly 0, and w0 would have to be stored
 * or rehashed at every step. With z0 the regularisation beta / alpha + l2 of the first step is
 * centred on the draw (a prior that fades as sqrt(n) grows), l1 on 0. z0 is a function of the
 * draw and the config, and z, n and w are all checkpointed, so a row is reproduced exactly. */
static void init_row_state(const fr_model *m, float *payload)
{
    const int D = m->D;
    if (m->row_state == 0) return;
    if (m->c.emb_optimizer == 1) {
        fr_ftrl_params fp = ftrl_params(&m->c);
        for (int i = 0; i < D; i++) payload[D + i] = fr_ftrl_z_for(payload[i], &fp);
        for (int i = 0; i < D; i++) payload[2 * D + i] = 0.0f;
    } else {
        for (int i = 0; i < D; i++) payload[D + i] = m->c.adagrad_init;
    }
}

static void init_row(const fr_model *m, uint32_t table, uint64_t key, float *payload)
{
    uint64_t s = m->c.seed ^ table_mix(table) ^ key;
    for (int i = 0; i < m->D; i++) payload[i] = fr_hash_uniform(s, (uint64_t)i) * m->c.init_scale;
    init_row_state(m, payload);
    /* the draw as z0 implies it (within a rounding): a trained FTRL row then always holds
     * w = fr_ftrl_weight(z, n), whether or not a step has touched it yet */
    if (m->c.emb_optimizer == 1) {
        fr_ftrl_params fp = ftrl_params(&m->c);
        for (int i = 0; i < m->D; i++) payload[i] = fr_ftrl_weight(payload[m->D + i], 0.0f, &fp);
    }
}

/* One optimizer step of a row's payload with its batch-summed gradient g. */
static void row_step(const fr_model *m, float *payload, const float *g)
{
    const size_t D = (size_t)m->D;
    if (m->c.emb_optimizer == 1) {
        fr_ftrl_params fp = ftrl_params(&m->c);
        fr_ftrl_step(payload, payload + D, payload + 2 * D, g, D, &fp);
    } else {
        fr_adagrad_step(payload, payload + D, g, D, m->c.lr_emb);
    }
}

/* Row index of (table, key); `creating` (the model itself, or NULL for read-only lookups) makes
 * training create missing rows. -1 when absent or when memory ran out. */
static int64_t row_for(const fr_model *m, fr_model *creating, uint32_t table, uint64_t key)
{
    if (!creating) return fr_emb_find(&m->tables[table], key);
    int created;
    fr_emb *e = &creating->tables[table];
    if (creating->lc) {
        int64_t found = fr_emb_find(e, key);
        if (found >= 0) return found;
        if (!lc_admit(creating, table, key)) return -1; /* not admitted yet: reads as zeros */
    }
    int64_t idx = fr_emb_insert(e, key, &created);
    if (idx < 0) {
        creating->alloc_failures++;
        return -1;
    }
    if (created) {
        init_row(m, table, key, fr_emb_payload(fr_emb_row_at(e, (size_t)idx)));
        if (creating->lc) lc_created(creating, e, (size_t)idx);
    }
    return idx;
}

static const float *row_weights(const fr_model *m, uint32_t table, int64_t idx)
{
    return fr_emb_payload(fr_emb_row_at(&m->tables[table], (size_t)idx));
}

/* Index of (table, key) among the batch's distinct rows, adding it on first touch. */
static int32_t touch(fr_ws *w, int D, uint32_t table, uint64_t key, int64_t row)
{
    uint64_t h = (key ^ table_mix(table)) * 0xD6E8FEB86659FD93ULL;
    size_t mask = w->dd_cap - 1;
    for (size_t pos = (size_t)(h >> 32) & mask;; pos = (pos + 1) & mask) {
        int32_t s = w->dd[pos];
        if (s < 0) {
            s = w->n_touch++;
            w->t_table[s] = table;
            w->t_key[s] = key;
            w->t_row[s] = row;
            memset(w->t_grad + (size_t)s * D, 0, (size_t)D * sizeof(float));
            w->dd[pos] = s;
            return s;
        }
        if (w->t_key[s] == key && w->t_table[s] == table) return s;
    }
}

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
FR_VEC static void transpose(float *r, size_t ld_r, float *t, size_t ld_t, int n, int cols, int mode)
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

/* The inner products <e_i, e_j>, i < j, of each sample's nf field embeddings (x's first nf*D
 * columns) into w->pr and, when the experts read them, x's pair columns; pairs in row-major order:
 * (0,1), (0,2), .., (0,nf-1), (1,2), .. Computed on the transposed embeddings, the batch innermost,
 * each product summed over d in increasing order: a sample's products are the same bits whatever
 * the batch around it. */
FR_VEC static void pair_products(const fr_model *m, fr_ws *w, int n)
{
    const int D = m->D, nf = m->nf, cap = w->cap;
    transpose(w->x, (size_t)m->in, w->xt, (size_t)cap, n, nf * D, TO_T);
    for (int i = 0, k = 0; i < nf; i++)
        for (int j = i + 1; j < nf; j++, k++) {
            float *restrict p = w->prt + (size_t)k * cap;
            const float *restrict a = w->xt + (size_t)i * D * cap, *restrict e = w->xt + (size_t)j * D * cap;
            for (int b = 0; b < n; b++) p[b] = a[b] * e[b];
            for (int d = 1; d < D; d++)
                for (int b = 0; b < n; b++) p[b] += a[(size_t)d * cap + b] * e[(size_t)d * cap + b];
        }
    transpose(w->pr, (size_t)m->npair, w->prt, (size_t)cap, n, m->npair, FROM_T);
    for (int b = 0; m->pair_in && b < n; b++)
        memcpy(w->x + (size_t)b * m->in + m->pair_off, w->pr + (size_t)b * m->npair,
               (size_t)m->pair_in * sizeof *w->pr);
}

/* Builds x for n feature sets spaced `stride` bytes apart. With slots, also records which
 * distinct row each embedding position reads, for the backward pass. */
static void gather(const fr_model *m, fr_model *creating, fr_ws *w, const fr_features *f0, size_t stride, int n,
                   int slots)
{
    const int D = m->D, nc = m->c.n_cat, nm = m->c.n_multi;
    if (slots) {
        w->n_touch = 0;
        memset(w->dd, 0xff, w->dd_cap * sizeof *w->dd);
    }
    /* rows are random accesses into tables far larger than the cache: announce them first */
    for (int stage = 0; n > 1 && stage < 2; stage++) {
        for (int b = 0; b < n; b++) {
            const fr_features *f = (const fr_features *)(const void *)((const char *)f0 + (size_t)b * stride);
            for (int c = 0; c < nc; c++) fr_emb_prefetch(&m->tables[c], f->cat[c], stage);
            for (int j = 0; j < nm; j++)
                for (int k = 0; k < f->multi_len[j] && k < FR_MAX_MULTI_LEN; k++)
                    fr_emb_prefetch(&m->tables[nc + j], f->multi[j][k], stage);
        }
    }
    for (int b = 0; b < n; b++) {
        const fr_features *f = (const fr_features *)(const void *)((const char *)f0 + (size_t)b * stride);
        float *x = w->x + (size_t)b * m->in;
        int32_t *sl = slots ? w->slot + (size_t)b * m->npos : NULL;
        for (int c = 0; c < nc; c++) {
            float *dst = x + c * D;
            uint64_t key = f->cat[c];
            int64_t r = key ? row_for(m, creating, (uint32_t)c, key) : -1;
            if (r >= 0)
                memcpy(dst, row_weights(m, (uint32_t)c, r), (size_t)D * sizeof *dst);
            else
                memset(dst, 0, (size_t)D * sizeof *dst);
            if (sl) sl[c] = key ? touch(w, D, (uint32_t)c, key, r) : -1;
        }
        for (int j = 0; j < nm; j++) {
            uint32_t table = (uint32_t)(nc + j);
            float *dst = x + (nc + j) * D;
            memset(dst, 0, (size_t)D * sizeof *dst);
            int len = f->multi_len[j] < FR_MAX_MULTI_LEN ? f->multi_len[j] : FR_MAX_MULTI_LEN;
            int cnt = 0;
            for (int k = 0; k < len; k++) {
                uint64_t key = f->multi[j][k];
                int32_t *s = sl ? &sl[nc + j * FR_MAX_MULTI_LEN + k] : NULL;
                if (s) *s = -1;
                if (!key) continue;
                cnt++;
                int64_t r = row_for(m, creating, table, key);
                if (r >= 0) {
                    const float *src = row_weights(m, table, r);
                    for (int d = 0; d < D; d++) dst[d] += src[d];
                }
                if (s) *s = touch(w, D, table, key, r);
            }
            if (sl)
                for (int k = len; k < FR_MAX_MULTI_LEN; k++) sl[nc + j * FR_MAX_MULTI_LEN + k] = -1;
            float inv = cnt ? 1.0f / (float)cnt : 0.0f;
            for (int d = 0; d < D; d++) dst[d] *= inv;
            if (slots) w->inv_cnt[(size_t)b * nm + j] = inv;
        }
        for (int i = 0; i < m->c.n_num; i++) {
            float v = f->num[i];
            /* one non-finite value would poison every dense parameter for good */
            x[m->emb_in + i] = isfinite(v) ? v : 0.0f;
        }
    }
    if (m->npair) pair_products(m, w, n);
}

/* ---- forward / backward ----------------------------------------------------------------------- */

/* Expert index behind slot k of gate g for a sample of scenario sid, or -1: a scenario slot of a
 * sample whose scenario is unknown to the model reads as a zero expert. */
static int gate_expert(const fr_gate *g, int k, int sid)
{
    if (k < g->n_fixed) return g->fixed[k];
    return sid >= 0 ? g->sc_base + sid * g->n_sc + (k - g->n_fixed) : -1;
}

static void set_scenarios(const fr_model *m, fr_ws *w, const fr_sample *s, int n)
{
    for (int b = 0; b < n; b++)
        w->scen[b] = s[b].scenario >= 0 && s[b].scenario < m->c.n_scenarios ? s[b].scenario : -1;
}

/* The task's pair (FwFM) and wide terms of each sample: the same bits for a sample alone and in a
 * batch. */
FR_VEC static void extras(const fr_model *m, fr_ws *w, int n)
{
    for (int t = 0; t < 2; t++) {
        for (int b = 0; b < n; b++) {
            float z = 0;
            if (m->fm_logit) z += dot(m->w + m->off_fm[t], w->pr + (size_t)b * m->npair, m->npair);
            if (m->wide) z += dot(m->w + m->off_wide[t], w->x + (size_t)b * m->in, m->pair_off);
            w->extra[t][b] = z;
        }
    }
}

/* tanh through expf: a fifth of DFFI's time went to libm's tanhf (expm1f). Absolute error about
 * 1e-7 (1 - 2/(e^2z + 1) cancels near 0, where tanh itself is small), saturating cleanly: e^2z
 * overflows to inf -> 1, underflows to 0 -> -1. Training and serving share it, so they agree. */
static float tanh_fast(float z) { return 1.0f - 2.0f / (expf(2.0f * z) + 1.0f); }

/* DFFI's pieces for one sample, inlined twice below: with D = 8 (the usual width) as a constant
 * the compiler unrolls them into a few vector instructions; the generic copy serves other widths.
 * Same arithmetic, same order, in both. */

/* y = tanh(b + W u) for each of the nf fields' rows u of U, y of Y; WT = W^T (D x D). The sums run
 * over the input in increasing order, vectorised over the output. */
FR_KERNEL void dffi_layer(int D, int nf, const float *restrict WT, const float *restrict bb,
                          const float *restrict U, float *restrict Y)
{
    for (int i = 0; i < nf; i++) {
        const float *restrict u = U + i * D;
        float *restrict y = Y + i * D;
        for (int r = 0; r < D; r++) y[r] = bb[r];
        for (int c = 0; c < D; c++)
            for (int r = 0; r < D; r++) y[r] += WT[c * D + r] * u[c];
        for (int r = 0; r < D; r++) y[r] = tanh_fast(y[r]);
    }
}

/* The pair products of the nf rows of O (D wide), summed over d in increasing order. */
FR_KERNEL void dffi_pairs(int D, int nf, const float *restrict O, float *restrict pr)
{
    for (int i = 0, k = 0; i < nf; i++)
        for (int j = i + 1; j < nf; j++, k++) {
            float z = 0;
            for (int d = 0; d < D; d++) z += O[i * D + d] * O[j * D + d];
            pr[k] = z;
        }
}

/* dd_i += dp_ij o_j, dd_j += dp_ij o_i over the pairs (dd zeroed first). */
FR_KERNEL void dffi_pairs_back(int D, int nf, const float *restrict dp, const float *restrict O,
                               float *restrict dd)
{
    memset(dd, 0, (size_t)nf * D * sizeof *dd);
    for (int i = 0, k = 0; i < nf; i++)
        for (int j = i + 1; j < nf; j++, k++) {
            const float pk = dp[k];
            if (pk == 0.0f) continue;
            for (int d = 0; d < D; d++) {
                dd[i * D + d] += pk * O[j * D + d];
                dd[j * D + d] += pk * O[i * D + d];
            }
        }
}

/* One layer backward for one field: dy (d loss / d y) becomes d loss / d u; adds to gW, gb. */
FR_KERNEL void dffi_layer_back(int D, const float *restrict W, const float *restrict y, const float *restrict u,
                               float *restrict dy, float *restrict gW, float *restrict gb)
{
    float dz[MAX_DFFI_DIM];
    for (int r = 0; r < D; r++) dz[r] = dy[r] * (1.0f - y[r] * y[r]);
    for (int r = 0; r < D; r++) {
        gb[r] += dz[r];
        for (int c = 0; c < D; c++) gW[r * D + c] += dz[r] * u[c];
    }
    /* dy_c = sum_r W_rc dz_r, over r in increasing order, vectorised over c */
    for (int c = 0; c < D; c++) dy[c] = 0;
    for (int r = 0; r < D; r++)
        for (int c = 0; c < D; c++) dy[c] += W[r * D + c] * dz[r];
}

/* DFFI forward: every field embedding of a sample through its scenario's network D, then the pair
 * products <D(e_i), D(e_j)> replace gather's plain ones (in w->pr and x's pair columns). A sample
 * of an unknown scenario keeps the plain products. */
FR_VEC static void dffi_forward(const fr_model *m, fr_ws *w, int n)
{
    const int D = m->D, nf = m->nf, L = m->c.dffi_layers;
    memset(w->dffi_seen, 0, (size_t)m->c.n_scenarios * sizeof *w->dffi_seen);
    for (int b = 0; b < n; b++) {
        const int sid = w->scen[b];
        if (sid < 0) continue;
        float *x = w->x + (size_t)b * m->in;
        const float *th = m->w + m->off_semb + (size_t)sid * m->sd;
        float *wt = w->dffi_wt + (size_t)sid * L * D * D;
        if (!w->dffi_seen[sid]) {
            /* W^T, so the products below run over output rows in vector registers */
            for (int l = 0; l < L; l++)
                for (int r = 0; r < D; r++)
                    for (int c = 0; c < D; c++)
                        wt[(size_t)l * D * D + c * D + r] = th[(size_t)l * D * (D + 1) + r * D + c];
            w->dffi_seen[sid] = 1;
        }
        const float *U = x;
        for (int l = 0; l < L; l++) {
            const float *WT = wt + (size_t)l * D * D, *bb = th + (size_t)l * D * (D + 1) + D * D;
            float *Y = w->dffi_h[l] + (size_t)b * nf * D;
            if (D == 8)
                dffi_layer(8, nf, WT, bb, U, Y);
            else
                dffi_layer(D, nf, WT, bb, U, Y);
            U = Y;
        }
        float *pr = w->pr + (size_t)b * m->npair;
        if (D == 8)
            dffi_pairs(8, nf, U, pr);
        else
            dffi_pairs(D, nf, U, pr);
        if (m->pair_in) memcpy(x + m->pair_off, pr, (size_t)m->pair_in * sizeof *pr);
    }
}

/* DFFI backward for one sample: dp holds d loss / d p_ij (pair order); adds d loss / d e_i to dx
 * and the slices' gradient to g's scenario row. */
FR_VEC static void dffi_backward(const fr_model *m, fr_ws *w, int b, const float *dp, float *dx, float *g)
{
    const int D = m->D, nf = m->nf, L = m->c.dffi_layers, sid = w->scen[b];
    const float *o = w->dffi_h[L - 1] + (size_t)b * nf * D, *x = w->x + (size_t)b * m->in;
    float *dd = w->dffi_d;
    if (D == 8)
        dffi_pairs_back(8, nf, dp, o, dd);
    else
        dffi_pairs_back(D, nf, dp, o, dd);
    const float *th = m->w + m->off_semb + (size_t)sid * m->sd;
    float *gth = g + m->off_semb + (size_t)sid * m->sd;
    for (int i = 0; i < nf; i++) {
        float *dy = dd + i * D; /* d loss / d (layer output), then reused for its input */
        for (int l = L - 1; l >= 0; l--) {
            const float *y = w->dffi_h[l] + ((size_t)b * nf + i) * D;
            const float *u = l ? w->dffi_h[l - 1] + ((size_t)b * nf + i) * D : x + i * D;
            const float *W = th + (size_t)l * D * (D + 1);
            float *gW = gth + (size_t)l * D * (D + 1), *gb = gW + D * D;
            if (D == 8)
                dffi_layer_back(8, W, y, u, dy, gW, gb);
            else
                dffi_layer_back(D, W, y, u, dy, gW, gb);
        }
        for (int d = 0; d < D; d++) dx[i * D + d] += dy[d];
    }
}

/* DFUB's per-item projections, inlined with D = 8 as a constant and generically (see DFFI's).
 * k = Wk e, v = Wv e from the transposed weights, summed over e in increasing order. */
FR_KERNEL void dfub_project(int D, const float *restrict WkT, const float *restrict WvT, const float *restrict e,
                            float *restrict k, float *restrict v)
{
    for (int r = 0; r < D; r++) k[r] = v[r] = 0;
    for (int c = 0; c < D; c++)
        for (int r = 0; r < D; r++) {
            k[r] += WkT[c * D + r] * e[c];
            v[r] += WvT[c * D + r] * e[c];
        }
}

/* One history item backward: the projections' gradient into gk, gv, the item's into gr. */
FR_KERNEL void dfub_item_back(int D, const float *restrict Wk, const float *restrict Wv, const float *restrict dk,
                              const float *restrict dv, const float *restrict e, float *restrict gk,
                              float *restrict gv, float *restrict gr)
{
    for (int r = 0; r < D; r++)
        for (int c = 0; c < D; c++) {
            gk[r * D + c] += dk[r] * e[c];
            gv[r * D + c] += dv[r] * e[c];
            gr[c] += Wk[r * D + c] * dk[r] + Wv[r * D + c] * dv[r];
        }
}

/* DFUB forward (see fr_model_config): reads the history keys of the n feature sets spaced
 * `stride` bytes apart; an item without a row reads as zeros but still attends. Writes x's DFUB
 * columns. */
FR_VEC static void dfub_forward(const fr_model *m, fr_ws *w, const fr_features *f0, size_t stride, int n)
{
    const int D = m->D, H = m->c.dfub_heads, dh = D / H, tgt = m->c.dfub_target, hist = m->c.dfub_history;
    const uint32_t table = (uint32_t)(m->c.n_cat + hist);
    const float *Wq = m->w + m->off_dq, *Wk = m->w + m->off_dk, *Wv = m->w + m->off_dv;
    const float scale = 1.0f / sqrtf((float)dh);
    float *WkT = w->ub_wt, *WvT = WkT + D * D;
    for (int r = 0; r < D; r++)
        for (int c = 0; c < D; c++) {
            WkT[c * D + r] = Wk[r * D + c];
            WvT[c * D + r] = Wv[r * D + c];
        }
    for (int b = 0; b < n; b++) {
        const fr_features *f = (const fr_features *)(const void *)((const char *)f0 + (size_t)b * stride);
        float *x = w->x + (size_t)b * m->in, *o = x + m->dfub_off;
        float *E = w->ub_e + (size_t)b * HL * D, *K = w->ub_k + (size_t)b * HL * D, *V = w->ub_v + (size_t)b * HL * D;
        float *q = w->ub_q + (size_t)b * D, *a = w->ub_a + (size_t)b * H * HL;
        int len = 0, flen = f->multi_len[hist] < HL ? f->multi_len[hist] : HL;
        for (int k = 0; k < flen; k++) {
            uint64_t key = f->multi[hist][k];
            if (!key) continue;
            int64_t r = fr_emb_find(&m->tables[table], key);
            if (r >= 0)
                memcpy(E + len * D, row_weights(m, table, r), (size_t)D * sizeof *E);
            else
                memset(E + len * D, 0, (size_t)D * sizeof *E);
            len++;
        }
        w->ub_len[b] = len;
        memset(o, 0, (size_t)D * sizeof *o);
        if (!len) continue;
        const float *et = x + tgt * D, *es = x; /* the scenario is categorical slot 0 */
        for (int r = 0; r < D; r++) {
            float z = 0;
            for (int c = 0; c < D; c++) z += Wq[r * 2 * D + c] * et[c] + Wq[r * 2 * D + D + c] * es[c];
            q[r] = z;
        }
        for (int k = 0; k < len; k++) {
            if (D == 8)
                dfub_project(8, WkT, WvT, E + k * D, K + k * D, V + k * D);
            else
                dfub_project(D, WkT, WvT, E + k * D, K + k * D, V + k * D);
        }
        for (int h = 0; h < H; h++) {
            float *ah = a + h * HL, mx = -INFINITY, sum = 0;
            for (int k = 0; k < len; k++) {
                float z = 0;
                for (int j = 0; j < dh; j++) z += q[h * dh + j] * K[k * D + h * dh + j];
                ah[k] = z * scale;
                mx = ah[k] > mx ? ah[k] : mx;
            }
            for (int k = 0; k < len; k++) sum += ah[k] = expf(ah[k] - mx);
            for (int k = 0; k < len; k++) {
                ah[k] /= sum;
                for (int j = 0; j < dh; j++) o[h * dh + j] += ah[k] * V[k * D + h * dh + j];
            }
        }
    }
}

/* DFUB backward for one sample: d loss / d output is dx's DFUB columns; adds the projections'
 * gradient to g, the target's and the scenario's to dx, and each item's to its touched row. */
FR_VEC static void dfub_backward(const fr_model *m, fr_ws *w, int b, float *dx, float *g)
{
    const int D = m->D, H = m->c.dfub_heads, dh = D / H, tgt = m->c.dfub_target, hist = m->c.dfub_history;
    const int len = w->ub_len[b];
    if (!len) return;
    const float *Wq = m->w + m->off_dq, *Wk = m->w + m->off_dk, *Wv = m->w + m->off_dv;
    float *gq = g + m->off_dq, *gk = g + m->off_dk, *gv = g + m->off_dv;
    const float *E = w->ub_e + (size_t)b * HL * D, *K = w->ub_k + (size_t)b * HL * D, *V = w->ub_v + (size_t)b * HL * D;
    const float *q = w->ub_q + (size_t)b * D, *a = w->ub_a + (size_t)b * H * HL, *x = w->x + (size_t)b * m->in;
    const float *dout = dx + m->dfub_off, scale = 1.0f / sqrtf((float)dh);
    float dq[MAX_EMB_DIM], dK[HL][MAX_DFUB_DIM], dV[HL][MAX_DFUB_DIM];
    memset(dq, 0, (size_t)D * sizeof *dq);
    for (int h = 0; h < H; h++) {
        const float *ah = a + h * HL, *doh = dout + h * dh;
        float da[HL], dot = 0;
        for (int k = 0; k < len; k++) {
            float z = 0;
            for (int j = 0; j < dh; j++) {
                z += doh[j] * V[k * D + h * dh + j];
                dV[k][h * dh + j] = ah[k] * doh[j];
            }
            da[k] = z;
            dot += ah[k] * z;
        }
        for (int k = 0; k < len; k++) {
            float ds = ah[k] * (da[k] - dot) * scale;
            for (int j = 0; j < dh; j++) {
                dq[h * dh + j] += ds * K[k * D + h * dh + j];
                dK[k][h * dh + j] = ds * q[h * dh + j];
            }
        }
    }
    const float *et = x + tgt * D, *es = x;
    for (int r = 0; r < D; r++)
        for (int c = 0; c < D; c++) {
            gq[r * 2 * D + c] += dq[r] * et[c];
            gq[r * 2 * D + D + c] += dq[r] * es[c];
            dx[tgt * D + c] += Wq[r * 2 * D + c] * dq[r];
            dx[c] += Wq[r * 2 * D + D + c] * dq[r];
        }
    /* the k-th non-zero key of the list is the item at position k of E; its touched row */
    const int32_t *sl = w->slot + (size_t)b * m->npos + m->c.n_cat + hist * FR_MAX_MULTI_LEN;
    for (int p = 0, k = 0; p < FR_MAX_MULTI_LEN && k < len; p++) {
        if (sl[p] < 0) continue;
        float *gr = w->t_grad + (size_t)sl[p] * D;
        if (D == 8)
            dfub_item_back(8, Wk, Wv, dK[k], dV[k], E + k * D, gk, gv, gr);
        else
            dfub_item_back(D, Wk, Wv, dK[k], dV[k], E + k * D, gk, gv, gr);
        k++;
    }
}

FR_VEC static void forward(const fr_model *m, fr_ws *w, int n)
{
    const int hd = m->hd, td = m->td, sd = m->sd;
    if (m->c.dffi_layers) dffi_forward(m, w, n);
    for (int v = 0; v < m->NL; v++) {
        const fr_level *lv = &m->lv[v];
        for (int s = 0; s < lv->n_st; s++) {
            const fr_stream *st = &lv->st[s];
            if (!st->rows) continue;
            const float *in = st->src < 0 ? w->x : w->go[v - 1][st->src];
            float *a = w->act[v][s];
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, st->rows, st->dim, 1.0f, in, st->dim,
                        m->w + st->off_w, st->dim, 0.0f, a, st->rows);
            const float *bias = m->w + st->off_b;
            for (int b = 0; b < n; b++) {
                float *ab = a + (size_t)b * st->rows;
                for (int r = 0; r < st->ex_rows; r++) {
                    float z = ab[r] + bias[r];
                    ab[r] = z > 0 ? z : 0;
                }
                for (int r = st->ex_rows; r < st->rows; r++) ab[r] += bias[r];
            }
        }
        for (int g = 0; g < lv->n_gt; g++) {
            const fr_gate *gt = &lv->gt[g];
            const int ng = gt->ng, use_sc = sd && ng > 1;
            /* the scenario's logit term is the same for every sample of the scenario */
            if (use_sc)
                for (int sid = 0; sid < m->c.n_scenarios; sid++)
                    for (int k = 0; k < ng; k++)
                        w->gs[sid * ng + k] =
                            dot(m->w + gt->off_sw + (size_t)k * sd, m->w + m->off_semb + (size_t)sid * sd, sd);
            for (int b = 0; b < n; b++) {
                const int sid = w->scen[b];
                float *restrict out = w->go[v][g] + (size_t)b * hd;
                float one = 1.0f, *p = &one;
                if (ng > 1) {
                    p = w->act[v][gt->st] + (size_t)b * lv->st[gt->st].rows + gt->col;
                    if (use_sc && sid >= 0)
                        for (int k = 0; k < ng; k++) p[k] += w->gs[sid * ng + k];
                    float mx = -INFINITY, sum = 0;
                    for (int k = 0; k < gt->ng; k++) mx = p[k] > mx ? p[k] : mx;
                    for (int k = 0; k < gt->ng; k++) {
                        p[k] = expf(p[k] - mx);
                        sum += p[k];
                    }
                    for (int k = 0; k < gt->ng; k++) p[k] /= sum;
                }
                int first = 1;
                for (int k = 0; k < ng; k++) {
                    int e = gate_expert(gt, k, sid);
                    if (e < 0) continue;
                    const fr_xpert *x = &lv->ex[e];
                    const float *restrict h = w->act[v][x->st] + (size_t)b * lv->st[x->st].rows + x->col;
                    const float pk = p[k];
                    if (first)
                        for (int j = 0; j < hd; j++) out[j] = pk * h[j];
                    else
                        for (int j = 0; j < hd; j++) out[j] += pk * h[j];
                    first = 0;
                }
                if (first) memset(out, 0, (size_t)hd * sizeof *out);
            }
        }
    }
    extras(m, w, n);
    const int F = m->NL - 1;
    for (int q = 0; q < m->Q; q++) {
        const int t = q / m->L;
        const float *bh = m->w + m->off_tb[q];
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, td, hd, 1.0f, w->go[F][q], hd, m->w + m->off_th[q], hd,
                    0.0f, w->th[q], td);
        for (int b = 0; b < n; b++) {
            float *h = w->th[q] + (size_t)b * td;
            for (int j = 0; j < td; j++) {
                float z = h[j] + bh[j];
                h[j] = z > 0 ? z : 0;
            }
        }
        cblas_sgemv(CblasRowMajor, CblasNoTrans, n, td, 1.0f, w->th[q], td, m->w + m->off_ow[q], 1, 0.0f, w->zl[q], 1);
        float bo = m->w[m->off_ob[q]];
        for (int b = 0; b < n; b++) w->zl[q][b] += w->extra[t][b] + bo;
    }
    for (int t = 0; t < 2; t++)
        for (int b = 0; b < n; b++) {
            float z = 0;
            for (int l = 0; l < m->L; l++) z += w->zl[t * m->L + l][b];
            w->logit[t][b] = m->L == 1 ? z : z / (float)m->L;
        }
}

static double sigmoid(double z) { return 1.0 / (1.0 + exp(-z)); }

static void probs(float u, float v, float out[FR_NTASKS])
{
    double a = sigmoid(u), b = sigmoid(v);
    out[FR_TASK_CTR] = (float)a;
    out[FR_TASK_CVR] = (float)b;
    out[FR_TASK_CTCVR] = (float)(a * b);
}

static int term_on(const fr_sample *s, int t)
{
    return s->has_label[t] && s->weight[t] != 0 && isfinite(s->weight[t]) && isfinite(s->label[t]);
}

/* d loss / d logit for the CTR logit u and the CVR logit v of one sample. With a = s(u),
 * b = s(v), p = ab, the CTCVR term w*BCE(p, y) gives dL/dp = w(p - y)/(p(1 - p)) and
 * dp/du = p(1 - a), so dL/du = w(p - y)(1 - a)/(1 - p) (and the same with b for v): no division
 * by p, and 1 - p = (1 - a) + a(1 - b) is a sum of non-negative terms, so it keeps its precision
 * when a and b are near 1; it is clamped at P_CLIP, matching the loss's clipping of p. */
static void loss_grad(const fr_sample *s, double u, double v, double *du, double *dv)
{
    double a = sigmoid(u), ca = sigmoid(-u), b = sigmoid(v), cb = sigmoid(-v);
    double gu = 0, gv = 0;
    if (term_on(s, FR_TASK_CTR)) gu += s->weight[FR_TASK_CTR] * (a - s->label[FR_TASK_CTR]);
    if (term_on(s, FR_TASK_CVR)) gv += s->weight[FR_TASK_CVR] * (b - s->label[FR_TASK_CVR]);
    if (term_on(s, FR_TASK_CTCVR)) {
        double q = ca + a * cb;
        if (q < P_CLIP) q = P_CLIP;
        double g = s->weight[FR_TASK_CTCVR] * (a * b - s->label[FR_TASK_CTCVR]) / q;
        gu += g * ca;
        gv += g * cb;
    }
    *du = gu;
    *dv = gv;
}

static double bce(double p, double y)
{
    if (p < P_CLIP) p = P_CLIP;
    if (p > 1 - P_CLIP) p = 1 - P_CLIP;
    return -(y * log(p) + (1 - y) * log(1 - p));
}

static double sample_loss(const fr_sample *s, double u, double v)
{
    double a = sigmoid(u), b = sigmoid(v), l = 0;
    if (term_on(s, FR_TASK_CTR)) l += s->weight[FR_TASK_CTR] * bce(a, s->label[FR_TASK_CTR]);
    if (term_on(s, FR_TASK_CTCVR)) l += s->weight[FR_TASK_CTCVR] * bce(a * b, s->label[FR_TASK_CTCVR]);
    if (term_on(s, FR_TASK_CVR)) l += s->weight[FR_TASK_CVR] * bce(b, s->label[FR_TASK_CVR]);
    return l;
}

/* Which tasks the distillation term covers for a sample: CTR where its CTR term is on, CVR where
 * it has a CTCVR or CVR term (the fused CVR teacher exists on every impression). */
static void kd_on(const fr_sample *s, int on[2])
{
    on[0] = term_on(s, FR_TASK_CTR);
    on[1] = term_on(s, FR_TASK_CTCVR) || term_on(s, FR_TASK_CVR);
}

/* d loss / d learner logit; the fused teacher s(z_t) is a constant in the distillation term. */
static void logit_grads(const fr_model *m, fr_ws *w, const fr_sample *s, int n)
{
    const int L = m->L;
    for (int b = 0; b < n; b++) {
        double du, dv;
        loss_grad(&s[b], w->logit[0][b], w->logit[1][b], &du, &dv);
        if (L == 1) {
            w->dzl[0][b] = (float)du;
            w->dzl[1][b] = (float)dv;
            continue;
        }
        double teach[2] = {sigmoid(w->logit[0][b]), sigmoid(w->logit[1][b])}, lam = m->c.distill;
        double own = m->c.learner_loss;
        int on[2];
        kd_on(&s[b], on);
        for (int l = 0; l < L; l++) {
            double zu = w->zl[l][b], zv = w->zl[L + l][b], lu, lv;
            loss_grad(&s[b], zu, zv, &lu, &lv);
            double gu = du / L + own * lu, gv = dv / L + own * lv;
            if (on[0]) gu += lam * (sigmoid(zu) - teach[0]);
            if (on[1]) gv += lam * (sigmoid(zv) - teach[1]);
            w->dzl[l][b] = (float)gu;
            w->dzl[L + l][b] = (float)gv;
        }
    }
}

static int any_term(const fr_sample *s)
{
    return term_on(s, FR_TASK_CTR) || term_on(s, FR_TASK_CVR) || term_on(s, FR_TASK_CTCVR);
}

/* CausalInt's terms (see fr_model_config): their gradients w.r.t. the level-0 expert outputs are
 * added to dact before the ReLU mask; the classifier's own gradient goes to g. The adversary's
 * gradient enters the shared experts with its sign flipped (gradient reversal). */
FR_VEC static void causal_backward(const fr_model *m, fr_ws *w, const fr_sample *smp, int n, float *g)
{
    const fr_level *lv = &m->lv[0];
    const int hd = m->hd, ns = m->c.n_experts, nsc = m->c.n_scenario_experts, S = m->c.n_scenarios;
    const int rows = lv->st[0].rows, sc0 = lv->gt[0].sc_base;
    const float adv = m->c.causal_adv, orth = m->c.causal_orth;
    float *cl = w->cz, *hinv = cl + S, *hspc = hinv + hd, *dh = hspc + hd;
    const float *Wc = m->w + m->off_cls, *bc = Wc + (size_t)S * hd;
    float *gW = g + m->off_cls, *gb = gW + (size_t)S * hd;
    if (adv > 0) memset(gW, 0, ((size_t)S * hd + S) * sizeof *gW);
    for (int b = 0; b < n; b++) {
        const int sid = w->scen[b];
        if (sid < 0 || !any_term(&smp[b])) continue;
        const float *a = w->act[0][0] + (size_t)b * rows;
        float *da = w->dact[0][0] + (size_t)b * rows;
        for (int j = 0; j < hd; j++) hinv[j] = 0;
        for (int e = 0; e < ns; e++)
            for (int j = 0; j < hd; j++) hinv[j] += a[lv->ex[e].col + j];
        for (int j = 0; j < hd; j++) hinv[j] /= (float)ns;
        if (adv > 0) {
            float mx = -INFINITY, sum = 0;
            for (int k = 0; k < S; k++) {
                float z = bc[k] + dot(Wc + (size_t)k * hd, hinv, hd);
                cl[k] = z;
                mx = z > mx ? z : mx;
            }
            for (int k = 0; k < S; k++) sum += cl[k] = expf(cl[k] - mx);
            for (int j = 0; j < hd; j++) dh[j] = 0;
            for (int k = 0; k < S; k++) {
                float dl = adv * (cl[k] / sum - (k == sid ? 1.0f : 0.0f));
                gb[k] += dl;
                for (int j = 0; j < hd; j++) {
                    gW[(size_t)k * hd + j] += dl * hinv[j];
                    dh[j] += Wc[(size_t)k * hd + j] * dl;
                }
            }
            for (int e = 0; e < ns; e++)
                for (int j = 0; j < hd; j++) da[lv->ex[e].col + j] -= dh[j] / (float)ns;
        }
        if (orth > 0) {
            for (int j = 0; j < hd; j++) hspc[j] = 0;
            for (int q = 0; q < nsc; q++)
                for (int j = 0; j < hd; j++) hspc[j] += a[lv->ex[sc0 + sid * nsc + q].col + j];
            float dot = 0;
            for (int j = 0; j < hd; j++) dot += (hspc[j] /= (float)nsc) * hinv[j];
            float c = 2.0f * orth * dot;
            for (int e = 0; e < ns; e++)
                for (int j = 0; j < hd; j++) da[lv->ex[e].col + j] += c * hspc[j] / (float)ns;
            for (int q = 0; q < nsc; q++)
                for (int j = 0; j < hd; j++) da[lv->ex[sc0 + sid * nsc + q].col + j] += c * hinv[j] / (float)nsc;
        }
    }
}

/* Gradient of the summed loss into w->gdense and w->t_grad; w->dzl must be filled. */
FR_VEC static void backward(const fr_model *m, fr_ws *w, const fr_sample *smp, int n)
{
    const int in = m->in, hd = m->hd, td = m->td, D = m->D, sd = m->sd, F = m->NL - 1;
    float *g = w->gdense;
    if (sd) {
        /* accumulated per sample below */
        memset(g + m->off_semb, 0, (size_t)m->c.n_scenarios * sd * sizeof *g);
        for (int v = 0; v < m->NL; v++)
            for (int k = 0; k < m->lv[v].n_gt; k++)
                if (m->lv[v].gt[k].ng > 1)
                    memset(g + m->lv[v].gt[k].off_sw, 0, (size_t)m->lv[v].gt[k].ng * sd * sizeof *g);
    }
    if (m->c.dfub_heads) memset(g + m->off_dq, 0, (size_t)4 * D * D * sizeof *g); /* q, k, v: adjacent */
    for (int t = 0; t < 2; t++)
        for (int b = 0; b < n; b++) {
            float z = 0;
            for (int l = 0; l < m->L; l++) z += w->dzl[t * m->L + l][b];
            w->dextra[t][b] = z;
        }
    for (int q = 0; q < m->Q; q++) {
        const float *th = w->th[q], *dl = w->dzl[q], *wo = m->w + m->off_ow[q];
        cblas_sgemv(CblasRowMajor, CblasTrans, n, td, 1.0f, th, td, dl, 1, 0.0f, g + m->off_ow[q], 1);
        float sb = 0;
        for (int b = 0; b < n; b++) sb += dl[b];
        g[m->off_ob[q]] = sb;
        for (int b = 0; b < n; b++) {
            const float *restrict h = th + (size_t)b * td, *restrict wr = wo;
            float *restrict d = w->dt + (size_t)b * td;
            const float db = dl[b];
            for (int j = 0; j < td; j++) d[j] = h[j] > 0 ? db * wr[j] : 0;
        }
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, td, hd, n, 1.0f, w->dt, td, w->go[F][q], hd, 0.0f,
                    g + m->off_th[q], hd);
        cblas_sgemv(CblasRowMajor, CblasTrans, n, td, 1.0f, w->dt, td, w->ones, 1, 0.0f, g + m->off_tb[q], 1);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, hd, td, 1.0f, w->dt, td, m->w + m->off_th[q], hd,
                    0.0f, w->dgo[F][q], hd);
    }
    for (int t = 0; t < 2; t++) {
        if (m->fm_logit)
            cblas_sgemv(CblasRowMajor, CblasTrans, n, m->npair, 1.0f, w->pr, m->npair, w->dextra[t], 1, 0.0f,
                        g + m->off_fm[t], 1);
        if (m->wide)
            cblas_sgemv(CblasRowMajor, CblasTrans, n, m->pair_off, 1.0f, w->x, m->in, w->dextra[t], 1, 0.0f,
                        g + m->off_wide[t], 1);
    }
    for (int v = F; v >= 0; v--) {
        const fr_level *lv = &m->lv[v];
        for (int s = 0; s < lv->n_st; s++)
            if (lv->st[s].rows) memset(w->dact[v][s], 0, (size_t)n * lv->st[s].rows * sizeof(float));
        for (int k = 0; k < lv->n_gt; k++) {
            const fr_gate *gt = &lv->gt[k];
            const int use_sc = sd && gt->ng > 1;
            if (use_sc) memset(w->gs, 0, (size_t)m->c.n_scenarios * gt->ng * sizeof *w->gs);
            for (int b = 0; b < n; b++) {
                const int sid = w->scen[b];
                const float *dout = w->dgo[v][k] + (size_t)b * hd;
                float one = 1.0f;
                const float *p = &one;
                float dp[MAX_GATE];
                if (gt->ng > 1) p = w->act[v][gt->st] + (size_t)b * lv->st[gt->st].rows + gt->col;
                for (int q = 0; q < gt->ng; q++) {
                    int e = gate_expert(gt, q, sid);
                    dp[q] = 0;
                    if (e < 0) continue;
                    const fr_xpert *x = &lv->ex[e];
                    size_t at = (size_t)b * lv->st[x->st].rows + x->col;
                    const float *restrict h = w->act[v][x->st] + at;
                    float *restrict dh = w->dact[v][x->st] + at;
                    const float pq = p[q];
                    dp[q] = dot(dout, h, hd);
                    for (int j = 0; j < hd; j++) dh[j] += pq * dout[j];
                }
                if (gt->ng < 2) continue;
                /* softmax: dz_k = p_k (dp_k - sum_q p_q dp_q) */
                float pdp = 0;
                for (int q = 0; q < gt->ng; q++) pdp += p[q] * dp[q];
                float *dz = w->dact[v][gt->st] + (size_t)b * lv->st[gt->st].rows + gt->col;
                for (int q = 0; q < gt->ng; q++) dz[q] = p[q] * (dp[q] - pdp);
                if (use_sc && sid >= 0)
                    for (int q = 0; q < gt->ng; q++) w->gs[sid * gt->ng + q] += dz[q];
            }
            /* the scenario term is linear in the summed logit gradients of the scenario's samples */
            for (int sid = 0; use_sc && sid < m->c.n_scenarios; sid++) {
                const float *restrict se = m->w + m->off_semb + (size_t)sid * sd, *restrict sw = m->w + gt->off_sw;
                float *restrict gse = g + m->off_semb + (size_t)sid * sd, *restrict gsw = g + gt->off_sw;
                for (int q = 0; q < gt->ng; q++) {
                    const float c = w->gs[sid * gt->ng + q];
                    for (int d = 0; d < sd; d++) {
                        gsw[q * sd + d] += c * se[d];
                        gse[d] += c * sw[q * sd + d];
                    }
                }
            }
        }
        if (v == 0 && w->cz) causal_backward(m, w, smp, n, g);
        for (int s = 0; s < lv->n_st; s++) {
            const fr_stream *st = &lv->st[s];
            float *dprev = st->src < 0 ? w->dx : w->dgo[v - 1][st->src];
            if (!st->rows) {
                memset(dprev, 0, (size_t)n * st->dim * sizeof *dprev);
                continue;
            }
            const float *restrict a = w->act[v][s];
            float *restrict da = w->dact[v][s];
            /* a select, not a branch: the compiler vectorises it */
            for (int b = 0; b < n; b++)
                for (int r = 0; r < st->ex_rows; r++) {
                    size_t i = (size_t)b * st->rows + r;
                    da[i] = a[i] > 0 ? da[i] : 0.0f;
                }
            const float *inp = st->src < 0 ? w->x : w->go[v - 1][st->src];
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, st->rows, st->dim, n, 1.0f, da, st->rows, inp, st->dim,
                        0.0f, g + st->off_w, st->dim);
            cblas_sgemv(CblasRowMajor, CblasTrans, n, st->rows, 1.0f, da, st->rows, w->ones, 1, 0.0f, g + st->off_b, 1);
            /* the embedding and pair columns of x need an input gradient (the numeric ones come along) */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, st->dim, st->rows, 1.0f, da, st->rows,
                        m->w + st->off_w, st->dim, 0.0f, dprev, st->dim);
        }
    }
    const int nc = m->c.n_cat, nm = m->c.n_multi, nf = m->nf;
    if (m->wide) {
        const float *w0 = m->w + m->off_wide[0], *w1 = m->w + m->off_wide[1];
        for (int b = 0; b < n; b++) {
            float *dx = w->dx + (size_t)b * in, dl0 = w->dextra[0][b], dl1 = w->dextra[1][b];
            for (int k = 0; k < m->emb_in; k++) dx[k] += dl0 * w0[k] + dl1 * w1[k];
        }
    }
    if (m->npair) {
        /* through p_ij = <e_i, e_j>: d e_i += dp_ij e_j, d e_j += dp_ij e_i, batch-innermost */
        const int cap = w->cap, np = m->npair;
        float *restrict dpt = w->prt;
        if (m->pair_in) transpose(w->dx + m->pair_off, (size_t)in, dpt, (size_t)cap, n, np, TO_T);
        for (int k = 0; k < np; k++) {
            float *restrict dp = dpt + (size_t)k * cap;
            if (!m->pair_in) memset(dp, 0, (size_t)n * sizeof *dp);
            if (m->fm_logit) {
                const float r0 = m->w[m->off_fm[0] + k], r1 = m->w[m->off_fm[1] + k];
                const float *restrict dl0 = w->dextra[0], *restrict dl1 = w->dextra[1];
                for (int b = 0; b < n; b++) dp[b] += dl0[b] * r0 + dl1[b] * r1;
            }
        }
        if (m->c.dffi_layers)
            for (int b = 0; b < n; b++) {
                if (w->scen[b] < 0) continue;
                float *dp = w->dffi_dp;
                for (int k = 0; k < np; k++) {
                    dp[k] = dpt[(size_t)k * cap + b];
                    dpt[(size_t)k * cap + b] = 0; /* not through the plain products below */
                }
                dffi_backward(m, w, b, dp, w->dx + (size_t)b * in, w->gdense);
            }
        memset(w->dxt, 0, (size_t)nf * D * cap * sizeof *w->dxt);
        for (int i = 0, k = 0; i < nf; i++)
            for (int j = i + 1; j < nf; j++, k++) {
                const float *restrict dp = dpt + (size_t)k * cap;
                const float *restrict ei = w->xt + (size_t)i * D * cap, *restrict ej = w->xt + (size_t)j * D * cap;
                float *restrict di = w->dxt + (size_t)i * D * cap, *restrict dj = w->dxt + (size_t)j * D * cap;
                for (int d = 0; d < D; d++)
                    for (int b = 0; b < n; b++) {
                        size_t o = (size_t)d * cap + b;
                        di[o] += dp[b] * ej[o];
                        dj[o] += dp[b] * ei[o];
                    }
            }
        transpose(w->dx, (size_t)in, w->dxt, (size_t)cap, n, nf * D, ADD_T);
    }
    if (m->c.dfub_heads)
        for (int b = 0; b < n; b++) dfub_backward(m, w, b, w->dx + (size_t)b * in, g);
    for (int b = 0; b < n; b++) {
        const float *dx = w->dx + (size_t)b * in;
        const int32_t *sl = w->slot + (size_t)b * m->npos;
        for (int c = 0; c < nc; c++) {
            if (sl[c] < 0) continue;
            float *gr = w->t_grad + (size_t)sl[c] * D;
            for (int d = 0; d < D; d++) gr[d] += dx[c * D + d];
        }
        for (int j = 0; j < nm; j++) {
            float inv = w->inv_cnt[(size_t)b * nm + j];
            const float *src = dx + (nc + j) * D;
            for (int k = 0; k < FR_MAX_MULTI_LEN; k++) {
                int32_t s = sl[nc + j * FR_MAX_MULTI_LEN + k];
                if (s < 0) continue;
                float *gr = w->t_grad + (size_t)s * D;
                for (int d = 0; d < D; d++) gr[d] += src[d] * inv;
            }
        }
    }
}

/* ---- public: train / predict ------------------------------------------------------------------ */

void fr_model_train(fr_model *m, const fr_sample *samples, int n, float (*preds)[FR_NTASKS])
{
    if (m->row_state == 0) return; /* weights only: nothing to train with (fr_model_create_weights_only) */
    fr_ws *w = m->train_ws;
    const int D = m->D;
    for (int start = 0; start < n; start += w->cap) {
        int k = n - start < w->cap ? n - start : w->cap;
        const fr_sample *s = samples + start;
        gather(m, m, w, &s[0].f, sizeof *s, k, 1);
        set_scenarios(m, w, s, k);
        if (m->c.dfub_heads) dfub_forward(m, w, &s[0].f, sizeof *s, k);
        forward(m, w, k);
        if (preds)
            for (int b = 0; b < k; b++) probs(w->logit[0][b], w->logit[1][b], preds[start + b]);
        logit_grads(m, w, s, k);
        backward(m, w, s, k);
        if (m->c.dense_optimizer == 1)
            fr_adam_step(m->w, m->acc, m->acc + m->P, w->gdense, m->P, m->c.lr_dense, m->c.adam_beta1, m->c.adam_beta2,
                         m->c.adam_eps, m->version + 1);
        else
            fr_adagrad_step(m->w, m->acc, w->gdense, m->P, m->c.lr_dense);
        m->version++;
        for (int i = 0; i < w->n_touch; i++) {
            if (w->t_row[i] < 0) continue;
            fr_emb *e = &m->tables[w->t_table[i]];
            fr_emb_row *r = fr_emb_row_at(e, (size_t)w->t_row[i]);
            row_step(m, fr_emb_payload(r), w->t_grad + (size_t)i * D);
            r->version = m->version;
            fr_emb_mark(e, (size_t)w->t_row[i], FR_DIRTY_CHECKPOINT | FR_DIRTY_PUBLISH);
        }
        lc_after_batch(m, s, k);
    }
}

void fr_model_predict(const fr_model *m, const fr_features *f, int32_t scenario, float out[FR_NTASKS])
{
    fr_ws *w = m->pred_ws;
    gather(m, NULL, w, f, sizeof *f, 1, 0);
    w->scen[0] = scenario >= 0 && scenario < m->c.n_scenarios ? scenario : -1;
    if (m->c.dfub_heads) dfub_forward(m, w, f, sizeof *f, 1);
    forward(m, w, 1);
    probs(w->logit[0][0], w->logit[1][0], out);
}

/* ---- public: serialisation -------------------------------------------------------------------- */

static fr_row_view view_of(const fr_model *m, uint32_t table, fr_emb_row *r)
{
    const float *p = fr_emb_payload(r);
    return (fr_row_view){.table = table, .key = r->key, .version = r->version, .dim = m->D, .weights = p,
                         .accum = p + m->D, .nstate = m->D * m->row_state, .updated = r->updated};
}

int fr_model_foreach_row(const fr_model *m, int which, fr_row_fn fn, void *ctx)
{
    uint32_t bits = (uint32_t)which & (FR_DIRTY_CHECKPOINT | FR_DIRTY_PUBLISH);
    for (uint32_t t = 0; t < m->n_tables; t++) {
        const fr_emb *e = &m->tables[t];
        if (!bits) {
            for (size_t i = 0; i < e->count; i++) {
                fr_row_view v = view_of(m, t, fr_emb_row_at(e, i));
                int rc = fn(&v, ctx);
                if (rc) return rc;
            }
            continue;
        }
        uint32_t seen = 0;
        for (int b = 0; b < FR_EMB_NDIRTY; b++) {
            uint32_t bit = 1u << b;
            if (!(bits & bit)) continue;
            size_t cur = 0;
            for (int64_t i; (i = fr_emb_next_dirty(e, b, &cur)) >= 0;) {
                fr_emb_row *r = fr_emb_row_at(e, (size_t)i);
                if (r->dirty & seen) continue; /* already visited through an earlier bit's list */
                fr_row_view v = view_of(m, t, r);
                int rc = fn(&v, ctx);
                if (rc) return rc;
            }
            seen |= bit;
        }
    }
    return 0;
}

void fr_model_clear_dirty(fr_model *m, int which)
{
    uint32_t bits = (uint32_t)which & (FR_DIRTY_CHECKPOINT | FR_DIRTY_PUBLISH);
    if (!bits) bits = FR_DIRTY_CHECKPOINT | FR_DIRTY_PUBLISH;
    for (uint32_t t = 0; t < m->n_tables; t++) fr_emb_clear(&m->tables[t], bits);
    lc_clear(m, bits);
}

size_t fr_model_row_state_count(const fr_model *m) { return (size_t)m->D * (size_t)m->row_state; }

size_t fr_model_row_count(const fr_model *m, uint32_t table) { return table < m->n_tables ? m->tables[table].count : 0; }

uint32_t fr_model_table_count(const fr_model *m) { return m->n_tables; }

int fr_model_put_row(fr_model *m, uint32_t table, uint64_t key, uint64_t version, const float *weights,
                     const float *accum)
{
    if (table >= m->n_tables || key == 0 || !weights) return -1;
    int created;
    fr_emb *e = &m->tables[table];
    int64_t idx = fr_emb_insert(e, key, &created);
    if (idx < 0) return -1;
    fr_emb_row *r = fr_emb_row_at(e, (size_t)idx);
    float *p = fr_emb_payload(r);
    memcpy(p, weights, (size_t)m->D * sizeof *p);
    if (accum)
        memcpy(p + m->D, accum, fr_model_row_state_count(m) * sizeof *p);
    else if (created)
        init_row_state(m, p);
    r->version = version;
    return 0;
}

int fr_model_get_row(const fr_model *m, uint32_t table, uint64_t key, fr_row_view *out)
{
    if (table >= m->n_tables || key == 0) return -1;
    int64_t idx = fr_emb_find(&m->tables[table], key);
    if (idx < 0) return -1;
    *out = view_of(m, table, fr_emb_row_at(&m->tables[table], (size_t)idx));
    return 0;
}

size_t fr_model_row_memory(const fr_model *m)
{
    size_t bytes = 0;
    for (uint32_t t = 0; t < m->n_tables; t++) bytes += fr_emb_memory(&m->tables[t]);
    return bytes;
}

uint64_t fr_model_alloc_failures(const fr_model *m) { return m->alloc_failures; }

size_t fr_model_dense_count(const fr_model *m) { return m->P; }
int fr_model_dense_tensor_count(const fr_model *m) { return m->n_tensors; }

fr_tensor_info fr_model_dense_tensor(const fr_model *m, int i)
{
    if (i < 0 || i >= m->n_tensors) return (fr_tensor_info){0};
    return m->tensors[i];
}

const float *fr_model_dense_params(const fr_model *m) { return m->w; }
const float *fr_model_dense_accum(const fr_model *m) { return m->acc; }
size_t fr_model_dense_state_count(const fr_model *m) { return m->S; }

int fr_model_set_dense(fr_model *m, const float *params, const float *accum, size_t count)
{
    if (count != m->P || !params) return -1;
    memcpy(m->w, params, count * sizeof *m->w);
    if (accum) memcpy(m->acc, accum, m->S * sizeof *m->acc);
    return 0;
}

uint64_t fr_model_version(const fr_model *m) { return m->version; }
void fr_model_set_version(fr_model *m, uint64_t version) { m->version = version; }

/* ---- tests and gradient checks ---------------------------------------------------------------- */

int fr_model_gradients(fr_model *m, const fr_sample *s, int n, float *dense_grad, fr_row_grad_fn fn, void *ctx)
{
    fr_ws *w = m->train_ws;
    if (!w || n < 1 || n > w->cap) return -1;
    gather(m, NULL, w, &s[0].f, sizeof *s, n, 1);
    set_scenarios(m, w, s, n);
    if (m->c.dfub_heads) dfub_forward(m, w, &s[0].f, sizeof *s, n);
    forward(m, w, n);
    logit_grads(m, w, s, n);
    backward(m, w, s, n);
    if (dense_grad) memcpy(dense_grad, w->gdense, m->P * sizeof *dense_grad);
    if (fn)
        for (int i = 0; i < w->n_touch; i++) fn(w->t_table[i], w->t_key[i], w->t_grad + (size_t)i * m->D, ctx);
    return 0;
}

double fr_model_flops_per_example(const fr_model *m)
{
    /* multiply-adds of the matrix products (the sgemm ones and DFFI's per-sample ones), 2 flops
     * each; the backward pass does two products (weights and inputs) for each forward one */
    double f = 0;
    for (int v = 0; v < m->NL; v++)
        for (int s = 0; s < m->lv[v].n_st; s++) f += 2.0 * m->lv[v].st[s].rows * m->lv[v].st[s].dim;
    f += m->Q * 2.0 * ((double)m->td * m->hd + m->td);
    f += 2.0 * m->nf * m->c.dffi_layers * (double)m->D * m->D; /* DFFI's per-sample matrix-vector products */
    if (m->c.causal_adv > 0) f += 2.0 * m->c.n_scenarios * m->hd; /* the scenario classifier */
    if (m->c.dfub_heads) f += 2.0 * m->D * (2.0 * m->D + 2.0 * HL * m->D + 2.0 * HL); /* q, k, v, scores, mix */
    return 3 * f;
}

/* An independent, plain-loop forward pass in double of one sample: the reference the gradient
 * checks difference, and a cross-check of the sgemm path. x: [in]; act: per level and stream,
 * rows doubles; go: per level and gate, hd doubles; zl: [Q] learner logits. */
typedef struct {
    double *x, *pp, *h, *dz, *act[MAX_LEVELS][MAX_ST], *go[MAX_LEVELS][MAX_GT];
} ref_buf;

/* DFUB in double: writes x's DFUB columns from x's embeddings and the history rows. */
static void ref_dfub(const fr_model *m, const fr_features *f, double *x)
{
    const int D = m->D, H = m->c.dfub_heads, dh = D / H, hist = m->c.dfub_history;
    const uint32_t table = (uint32_t)(m->c.n_cat + hist);
    const float *Wq = m->w + m->off_dq, *Wk = m->w + m->off_dk, *Wv = m->w + m->off_dv;
    double q[MAX_DFUB_DIM], K[HL][MAX_DFUB_DIM], V[HL][MAX_DFUB_DIM], *o = x + m->dfub_off;
    int len = 0, flen = f->multi_len[hist] < HL ? f->multi_len[hist] : HL;
    for (int k = 0; k < flen; k++) {
        if (!f->multi[hist][k]) continue;
        int64_t r = fr_emb_find(&m->tables[table], f->multi[hist][k]);
        for (int i = 0; i < D; i++) {
            double zk = 0, zv = 0;
            for (int c = 0; c < D && r >= 0; c++) {
                double e = row_weights(m, table, r)[c];
                zk += (double)Wk[i * D + c] * e;
                zv += (double)Wv[i * D + c] * e;
            }
            K[len][i] = zk;
            V[len][i] = zv;
        }
        len++;
    }
    for (int i = 0; i < D; i++) o[i] = 0;
    if (!len) return;
    const double *et = x + m->c.dfub_target * D, *es = x;
    for (int i = 0; i < D; i++) {
        double z = 0;
        for (int c = 0; c < D; c++) z += (double)Wq[i * 2 * D + c] * et[c] + (double)Wq[i * 2 * D + D + c] * es[c];
        q[i] = z;
    }
    for (int h = 0; h < H; h++) {
        double sc[HL], mx = -INFINITY, sum = 0;
        for (int k = 0; k < len; k++) {
            double z = 0;
            for (int j = 0; j < dh; j++) z += q[h * dh + j] * K[k][h * dh + j];
            sc[k] = z / sqrt((double)dh);
            mx = sc[k] > mx ? sc[k] : mx;
        }
        for (int k = 0; k < len; k++) sum += sc[k] = exp(sc[k] - mx);
        for (int k = 0; k < len; k++)
            for (int j = 0; j < dh; j++) o[h * dh + j] += sc[k] / sum * V[k][h * dh + j];
    }
}

static void ref_forward(const fr_model *m, ref_buf *rb, const fr_features *f, int32_t scen, double *zl)
{
    const int D = m->D, hd = m->hd, td = m->td, sd = m->sd;
    const float *W = m->w;
    double *x = rb->x;
    const int sid = scen >= 0 && scen < m->c.n_scenarios ? scen : -1;
    for (int c = 0; c < m->c.n_cat; c++) {
        int64_t r = f->cat[c] ? fr_emb_find(&m->tables[c], f->cat[c]) : -1;
        for (int d = 0; d < D; d++) x[c * D + d] = r >= 0 ? row_weights(m, (uint32_t)c, r)[d] : 0.0;
    }
    for (int j = 0; j < m->c.n_multi; j++) {
        uint32_t table = (uint32_t)(m->c.n_cat + j);
        double *dst = x + table * D;
        int len = f->multi_len[j] < FR_MAX_MULTI_LEN ? f->multi_len[j] : FR_MAX_MULTI_LEN, cnt = 0;
        for (int d = 0; d < D; d++) dst[d] = 0;
        for (int k = 0; k < len; k++) {
            if (!f->multi[j][k]) continue;
            cnt++;
            int64_t r = fr_emb_find(&m->tables[table], f->multi[j][k]);
            if (r >= 0)
                for (int d = 0; d < D; d++) dst[d] += row_weights(m, table, r)[d];
        }
        for (int d = 0; d < D; d++) dst[d] = cnt ? dst[d] / cnt : 0;
    }
    for (int k = 0; k < m->c.n_num; k++) x[m->emb_in + k] = isfinite(f->num[k]) ? f->num[k] : 0.0;
    const double *pe = x; /* the vectors whose inner products are the pairs */
    if (m->c.dffi_layers && sid >= 0 && m->npair) {
        const float *th = W + m->off_semb + (size_t)sid * sd;
        for (int i = 0; i < m->nf; i++) {
            double u[MAX_EMB_DIM], y[MAX_EMB_DIM];
            for (int d = 0; d < D; d++) u[d] = x[i * D + d];
            for (int l = 0; l < m->c.dffi_layers; l++) {
                const float *Wl = th + (size_t)l * D * (D + 1);
                for (int r = 0; r < D; r++) {
                    double z = Wl[D * D + r];
                    for (int c = 0; c < D; c++) z += (double)Wl[r * D + c] * u[c];
                    y[r] = tanh(z);
                }
                memcpy(u, y, (size_t)D * sizeof *u);
            }
            for (int d = 0; d < D; d++) rb->dz[i * D + d] = u[d];
        }
        pe = rb->dz;
    }
    for (int i = 0, k = 0; i < m->nf; i++)
        for (int j = i + 1; j < m->nf && m->npair; j++, k++) {
            double z = 0;
            for (int d = 0; d < D; d++) z += pe[i * D + d] * pe[j * D + d];
            rb->pp[k] = z;
            if (m->pair_in) x[m->pair_off + k] = z;
        }
    if (m->c.dfub_heads) ref_dfub(m, f, x);
    for (int v = 0; v < m->NL; v++) {
        const fr_level *lv = &m->lv[v];
        for (int s = 0; s < lv->n_st; s++) {
            const fr_stream *st = &lv->st[s];
            const double *in = st->src < 0 ? x : rb->go[v - 1][st->src];
            for (int r = 0; r < st->rows; r++) {
                double z = W[st->off_b + r];
                for (int k = 0; k < st->dim; k++) z += (double)W[st->off_w + (size_t)r * st->dim + k] * in[k];
                rb->act[v][s][r] = r < st->ex_rows && z < 0 ? 0 : z;
            }
        }
        for (int k = 0; k < lv->n_gt; k++) {
            const fr_gate *gt = &lv->gt[k];
            double p[MAX_GATE];
            if (gt->ng == 1) {
                p[0] = 1;
            } else {
                double mx = -INFINITY, sum = 0;
                for (int q = 0; q < gt->ng; q++) {
                    double z = rb->act[v][gt->st][gt->col + q];
                    if (sd && sid >= 0)
                        for (int d = 0; d < sd; d++)
                            z += (double)W[gt->off_sw + (size_t)q * sd + d] * W[m->off_semb + (size_t)sid * sd + d];
                    p[q] = z;
                    mx = z > mx ? z : mx;
                }
                for (int q = 0; q < gt->ng; q++) sum += exp(p[q] - mx);
                for (int q = 0; q < gt->ng; q++) p[q] = exp(p[q] - mx) / sum;
            }
            double *out = rb->go[v][k];
            for (int j = 0; j < hd; j++) out[j] = 0;
            for (int q = 0; q < gt->ng; q++) {
                int e = gate_expert(gt, q, sid);
                if (e < 0) continue;
                const double *h = rb->act[v][lv->ex[e].st] + lv->ex[e].col;
                for (int j = 0; j < hd; j++) out[j] += p[q] * h[j];
            }
        }
    }
    double extra[2];
    for (int t = 0; t < 2; t++) {
        double z = 0;
        if (m->fm_logit)
            for (int k = 0; k < m->npair; k++) z += (double)W[m->off_fm[t] + k] * rb->pp[k];
        if (m->wide)
            for (int k = 0; k < m->pair_off; k++) z += (double)W[m->off_wide[t] + k] * x[k];
        extra[t] = z;
    }
    for (int q = 0; q < m->Q; q++) {
        const double *in = rb->go[m->NL - 1][q];
        double z = W[m->off_ob[q]] + extra[q / m->L];
        for (int j = 0; j < td; j++) {
            double y = W[m->off_tb[q] + j];
            for (int k = 0; k < hd; k++) y += (double)W[m->off_th[q] + (size_t)j * hd + k] * in[k];
            rb->h[j] = y > 0 ? y : 0;
            z += (double)W[m->off_ow[q] + j] * rb->h[j];
        }
        zl[q] = z;
    }
}

/* CausalInt's terms of one sample in double, from the reference pass's level-0 activations. */
static double ref_causal(const fr_model *m, const ref_buf *rb, int sid, int adv_sign)
{
    const fr_level *lv = &m->lv[0];
    const int hd = m->hd, ns = m->c.n_experts, nsc = m->c.n_scenario_experts, S = m->c.n_scenarios;
    const double *a = rb->act[0][0];
    double total = 0, hinv[MAX_HIDDEN];
    for (int j = 0; j < hd; j++) {
        double z = 0;
        for (int e = 0; e < ns; e++) z += a[lv->ex[e].col + j];
        hinv[j] = z / ns;
    }
    if (m->c.causal_adv > 0) {
        const float *Wc = m->w + m->off_cls, *bc = Wc + (size_t)S * hd;
        double mx = -INFINITY, sum = 0, zs = 0;
        for (int k = 0; k < S; k++) {
            double z = bc[k];
            for (int j = 0; j < hd; j++) z += (double)Wc[(size_t)k * hd + j] * hinv[j];
            mx = z > mx ? z : mx;
            if (k == sid) zs = z;
        }
        for (int k = 0; k < S; k++) {
            double z = bc[k];
            for (int j = 0; j < hd; j++) z += (double)Wc[(size_t)k * hd + j] * hinv[j];
            sum += exp(z - mx);
        }
        total += adv_sign * m->c.causal_adv * (log(sum) + mx - zs);
    }
    if (m->c.causal_orth > 0) {
        double dot = 0;
        for (int j = 0; j < hd; j++) {
            double z = 0;
            for (int q = 0; q < nsc; q++) z += a[lv->ex[lv->gt[0].sc_base + sid * nsc + q].col + j];
            dot += z / nsc * hinv[j];
        }
        total += m->c.causal_orth * dot * dot;
    }
    return total;
}

/* ---- row lifecycle: admission and eviction ------------------------------------------------------ */

typedef struct {
    uint32_t table;
    uint64_t key;
} fr_deleted;

struct fr_lifecycle {
    uint32_t n_tables;
    fr_admit **admit;        /* [n_tables]: NULL where rows come at first sight */
    int *admit_after;        /* [n_tables] */
    int64_t *ttl_ms;         /* [n_tables]: 0 = never evicted */
    int64_t *half_life_ms;   /* [n_tables]: admission counters halved per this much clock; 0 = never */
    int64_t sweep_ms;        /* eviction sweeps happen when the clock crosses a multiple of this; 0 = none */
    int64_t clock_ms;        /* largest event time trained so far */
    fr_deleted *del[FR_EMB_NDIRTY]; /* deleted rows per consumer (checkpoint, publish) */
    size_t del_len[FR_EMB_NDIRTY], del_cap[FR_EMB_NDIRTY];
    uint64_t not_admitted, admitted, evicted;
};

static void lc_free(struct fr_lifecycle *lc)
{
    if (!lc) return;
    if (lc->admit)
        for (uint32_t t = 0; t < lc->n_tables; t++) fr_admit_free(lc->admit[t]);
    free(lc->admit);
    free(lc->admit_after);
    free(lc->ttl_ms);
    free(lc->half_life_ms);
    for (int b = 0; b < FR_EMB_NDIRTY; b++) free(lc->del[b]);
    free(lc);
}

static struct fr_lifecycle *lc_get(fr_model *m)
{
    if (m->lc) return m->lc;
    struct fr_lifecycle *lc = calloc(1, sizeof *lc);
    if (!lc) return NULL;
    lc->admit = calloc(m->n_tables + 1, sizeof *lc->admit);
    lc->admit_after = malloc((m->n_tables + 1) * sizeof *lc->admit_after);
    lc->ttl_ms = calloc(m->n_tables + 1, sizeof *lc->ttl_ms);
    lc->half_life_ms = calloc(m->n_tables + 1, sizeof *lc->half_life_ms);
    if (!lc->admit || !lc->admit_after || !lc->ttl_ms || !lc->half_life_ms) {
        lc_free(lc);
        return NULL;
    }
    lc->n_tables = m->n_tables;
    for (uint32_t t = 0; t < m->n_tables; t++) lc->admit_after[t] = 1;
    m->lc = lc;
    return lc;
}

/* One training sighting of a key without a row: 1 when this sighting admits it. */
static int lc_admit(fr_model *m, uint32_t table, uint64_t key)
{
    struct fr_lifecycle *lc = m->lc;
    fr_admit *a = lc->admit[table];
    if (!a) return 1;
    if ((int)fr_admit_add(a, key) >= lc->admit_after[table]) return 1;
    lc->not_admitted++;
    return 0;
}

static uint32_t clock_seconds(int64_t ms)
{
    if (ms <= 0) return 0;
    int64_t s = ms / 1000;
    return s > (int64_t)UINT32_MAX ? UINT32_MAX : (uint32_t)s;
}

/* A new row is stored even if training never updates it (its first sighting may come before an
 * update in the same batch, or its update may be skipped): mark it, or the checkpoint would miss it. */
static void lc_created(fr_model *m, fr_emb *e, size_t idx)
{
    m->lc->admitted++;
    fr_emb_row_at(e, idx)->updated = clock_seconds(m->lc->clock_ms);
    fr_emb_mark(e, idx, FR_DIRTY_CHECKPOINT | FR_DIRTY_PUBLISH);
}

static int lc_note_deleted(struct fr_lifecycle *lc, uint32_t table, uint64_t key)
{
    for (int b = 0; b < FR_EMB_NDIRTY; b++) {
        if (lc->del_len[b] < lc->del_cap[b]) continue;
        size_t ncap = lc->del_cap[b] ? lc->del_cap[b] * 2 : 256;
        fr_deleted *d = realloc(lc->del[b], ncap * sizeof *d);
        if (!d) return -1;
        lc->del[b] = d;
        lc->del_cap[b] = ncap;
    }
    for (int b = 0; b < FR_EMB_NDIRTY; b++) lc->del[b][lc->del_len[b]++] = (fr_deleted){table, key};
    return 0;
}

size_t fr_model_evict(fr_model *m)
{
    struct fr_lifecycle *lc = m->lc;
    if (!lc) return 0;
    size_t gone = 0;
    for (uint32_t t = 0; t < m->n_tables; t++) {
        if (lc->ttl_ms[t] <= 0) continue;
        fr_emb *e = &m->tables[t];
        /* downwards: a deletion moves the last row (already looked at) into the hole */
        for (size_t i = e->count; i-- > 0;) {
            fr_emb_row *r = fr_emb_row_at(e, i);
            if ((int64_t)r->updated * 1000 + lc->ttl_ms[t] > lc->clock_ms) continue;
            /* out of memory for the note: keep the row; a later sweep retries */
            if (lc_note_deleted(lc, t, r->key) != 0) continue;
            fr_emb_delete(e, r->key);
            gone++;
        }
    }
    lc->evicted += gone;
    return gone;
}

/* The stamps and the sweeps follow event time, never the wall clock, and happen at batch ends: a
 * replay of the same input makes the same sweeps at the same points. */
static void lc_after_batch(fr_model *m, const fr_sample *s, int n)
{
    struct fr_lifecycle *lc = m->lc;
    if (!lc) return;
    int64_t before = lc->clock_ms;
    for (int b = 0; b < n; b++)
        if (s[b].ts > lc->clock_ms) lc->clock_ms = s[b].ts;
    fr_ws *w = m->train_ws;
    uint32_t now = clock_seconds(lc->clock_ms);
    for (int i = 0; i < w->n_touch; i++)
        if (w->t_row[i] >= 0) fr_emb_row_at(&m->tables[w->t_table[i]], (size_t)w->t_row[i])->updated = now;
    if (lc->sweep_ms > 0 && before / lc->sweep_ms != lc->clock_ms / lc->sweep_ms) fr_model_evict(m);
    /* before == 0: the first batch sets the clock; its own sightings are not old news */
    for (uint32_t t = 0; t < m->n_tables && before > 0; t++) {
        int64_t h = lc->half_life_ms[t];
        if (!lc->admit[t] || h <= 0) continue;
        int64_t crossed = lc->clock_ms / h - before / h;
        for (int64_t k = 0; k < crossed && k < 4; k++) fr_admit_halve(lc->admit[t]); /* 4: a nibble is 0 */
    }
}

static void lc_clear(fr_model *m, uint32_t bits)
{
    struct fr_lifecycle *lc = m->lc;
    if (!lc) return;
    for (int b = 0; b < FR_EMB_NDIRTY; b++)
        if (bits & (1u << b)) lc->del_len[b] = 0;
    if (bits & FR_DIRTY_CHECKPOINT)
        for (uint32_t t = 0; t < m->n_tables; t++)
            if (lc->admit[t]) fr_admit_clear_dirty(lc->admit[t]);
}

void fr_row_policy_defaults(fr_row_policy *p)
{
    p->admit_after = 1;
    p->admit_width_log2 = 20;
    p->ttl_ms = 0;
    p->admit_half_life_ms = 86400000;
}

int fr_model_set_row_policy(fr_model *m, uint32_t table, const fr_row_policy *p, char *err, size_t errlen)
{
    if (table >= m->n_tables) {
        snprintf(err, errlen, "row policy: table %u does not exist (the model has %u)", table, m->n_tables);
        return -1;
    }
    if (p->admit_after < 1 || p->admit_after > FR_ADMIT_MAX_COUNT) {
        snprintf(err, errlen, "row policy: admit_after %d outside 1..%d", p->admit_after, FR_ADMIT_MAX_COUNT);
        return -1;
    }
    if (p->ttl_ms < 0 || p->admit_half_life_ms < 0) {
        snprintf(err, errlen, "row policy: negative %s", p->ttl_ms < 0 ? "ttl" : "admit_half_life");
        return -1;
    }
    struct fr_lifecycle *lc = lc_get(m);
    if (!lc) {
        snprintf(err, errlen, "row policy: out of memory");
        return -1;
    }
    fr_admit *a = NULL;
    if (p->admit_after > 1) {
        /* per-table seed: two fields' filters collide differently */
        a = fr_admit_create(p->admit_width_log2, m->c.seed ^ table_mix(table), err, errlen);
        if (!a) return -1;
    }
    fr_admit_free(lc->admit[table]);
    lc->admit[table] = a;
    lc->admit_after[table] = p->admit_after;
    lc->ttl_ms[table] = p->ttl_ms;
    lc->half_life_ms[table] = p->admit_half_life_ms;
    lc->sweep_ms = 0;
    for (uint32_t t = 0; t < m->n_tables; t++) {
        if (lc->ttl_ms[t] <= 0) continue;
        int64_t s = lc->ttl_ms[t] / 16 > 1000 ? lc->ttl_ms[t] / 16 : 1000;
        if (lc->sweep_ms == 0 || s < lc->sweep_ms) lc->sweep_ms = s;
    }
    return 0;
}

fr_admit *fr_model_admit(const fr_model *m, uint32_t table)
{
    return m->lc && table < m->n_tables ? m->lc->admit[table] : NULL;
}

int64_t fr_model_clock(const fr_model *m) { return m->lc ? m->lc->clock_ms : 0; }

int fr_model_set_clock(fr_model *m, int64_t ms)
{
    struct fr_lifecycle *lc = lc_get(m);
    if (!lc) return -1;
    lc->clock_ms = ms;
    return 0;
}

int fr_model_set_row_updated(fr_model *m, uint32_t table, uint64_t key, uint32_t seconds)
{
    if (table >= m->n_tables) return -1;
    int64_t idx = fr_emb_find(&m->tables[table], key);
    if (idx < 0) return -1;
    fr_emb_row_at(&m->tables[table], (size_t)idx)->updated = seconds;
    return 0;
}

int fr_model_foreach_deleted(const fr_model *m, int which, fr_deleted_fn fn, void *ctx)
{
    if (!m->lc || (which != FR_DIRTY_CHECKPOINT && which != FR_DIRTY_PUBLISH)) return 0;
    int b = which == FR_DIRTY_CHECKPOINT ? 0 : 1;
    for (size_t i = 0; i < m->lc->del_len[b]; i++) {
        int rc = fn(m->lc->del[b][i].table, m->lc->del[b][i].key, ctx);
        if (rc) return rc;
    }
    return 0;
}

void fr_model_row_stats(const fr_model *m, fr_row_stats *st)
{
    memset(st, 0, sizeof *st);
    for (uint32_t t = 0; t < m->n_tables; t++) {
        st->rows += m->tables[t].count;
        st->row_bytes += fr_emb_memory(&m->tables[t]);
    }
    /* key 8 + weights 4D + optimizer state 4D (Adagrad) or 8D (FTRL) + version 8 + last-update stamp 4 */
    st->raw_bytes = st->rows * (8 + 4 * (uint64_t)m->D * (1 + (uint64_t)m->row_state) + 8 + 4);
    if (m->lc) {
        for (uint32_t t = 0; t < m->n_tables; t++)
            if (m->lc->admit[t]) {
                st->admit_bytes += fr_admit_memory(m->lc->admit[t]);
                double load = fr_admit_load(m->lc->admit[t]);
                if (load > st->admit_load) st->admit_load = load;
            }
        st->not_admitted = m->lc->not_admitted;
        st->admitted = m->lc->admitted;
        st->evicted = m->lc->evicted;
    }
}

double fr_model_loss_teacher(const fr_model *m, const fr_sample *s, int n, double *teacher, int fill, int adv_sign)
{
    ref_buf rb = {0};
    size_t need = (size_t)m->in + (size_t)(m->npair ? m->npair : 1) + (size_t)m->td + (size_t)m->nf * m->D;
    for (int v = 0; v < m->NL; v++) {
        for (int k = 0; k < m->lv[v].n_st; k++) need += (size_t)m->lv[v].st[k].rows;
        need += (size_t)m->lv[v].n_gt * m->hd;
    }
    double *pool = malloc(need * sizeof *pool), total = NAN;
    if (!pool) return NAN;
    double *p = pool;
    rb.x = p, p += m->in;
    rb.pp = p, p += m->npair ? m->npair : 1;
    rb.h = p, p += m->td;
    rb.dz = p, p += (size_t)m->nf * m->D;
    for (int v = 0; v < m->NL; v++) {
        for (int k = 0; k < m->lv[v].n_st; k++) rb.act[v][k] = p, p += m->lv[v].st[k].rows;
        for (int k = 0; k < m->lv[v].n_gt; k++) rb.go[v][k] = p, p += m->hd;
    }
    total = 0;
    const int L = m->L;
    for (int i = 0; i < n; i++) {
        double zl[MAX_Q], z[2] = {0, 0};
        ref_forward(m, &rb, &s[i].f, s[i].scenario, zl);
        for (int t = 0; t < 2; t++) {
            for (int l = 0; l < L; l++) z[t] += zl[t * L + l];
            z[t] /= L;
        }
        total += sample_loss(&s[i], z[0], z[1]);
        if ((m->c.causal_adv > 0 || m->c.causal_orth > 0) && s[i].scenario >= 0 && s[i].scenario < m->c.n_scenarios &&
            any_term(&s[i]))
            total += ref_causal(m, &rb, s[i].scenario, adv_sign);
        if (L == 1) continue;
        double teach[2] = {sigmoid(z[0]), sigmoid(z[1])};
        if (teacher && fill) teacher[2 * i] = teach[0], teacher[2 * i + 1] = teach[1];
        if (teacher && !fill) teach[0] = teacher[2 * i], teach[1] = teacher[2 * i + 1];
        int on[2];
        kd_on(&s[i], on);
        for (int l = 0; l < L; l++) {
            total += m->c.learner_loss * sample_loss(&s[i], zl[l], zl[L + l]);
            for (int t = 0; t < 2; t++)
                if (on[t]) total += m->c.distill * bce(sigmoid(zl[t * L + l]), teach[t]);
        }
    }
    free(pool);
    return total;
}

double fr_model_loss(const fr_model *m, const fr_sample *s, int n)
{
    return fr_model_loss_teacher(m, s, n, NULL, 0, 1);
}
