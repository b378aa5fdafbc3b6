/* fr_model_int: the model's private structures (the plan of levels, experts and gates, the batch
 * workspace, struct fr_model) and the functions its files share. Private to learner/: the files
 * of the model (fr_model.c, fr_plan.c, fr_engine.c, fr_scenario_parts.c, fr_rows.c) and its test
 * library (fr_model_check.c) include it; nothing outside learner/ may. */
#ifndef FR_MODEL_INT_H
#define FR_MODEL_INT_H

#include <stddef.h>
#include <stdint.h>

#include "fr_emb.h"
#include "fr_model.h"

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

/* Mixes the table index into the initialisation seed. Changing it changes the initial value of
 * every row created afterwards, so replays across versions would diverge: treat it as format. */
static inline uint64_t table_mix(uint32_t table) { return (uint64_t)(table + 1) * 0x9E3779B97F4A7C15ULL; }

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

static inline const float *row_weights(const fr_model *m, uint32_t table, int64_t idx)
{
    return fr_emb_payload(fr_emb_row_at(&m->tables[table], (size_t)idx));
}

/* Expert index behind slot k of gate g for a sample of scenario sid, or -1: a scenario slot of a
 * sample whose scenario is unknown to the model reads as a zero expert. */
static inline int gate_expert(const fr_gate *g, int k, int sid)
{
    if (k < g->n_fixed) return g->fixed[k];
    return sid >= 0 ? g->sc_base + sid * g->n_sc + (k - g->n_fixed) : -1;
}

/* fr_plan.c: the plan (-1 when out of memory), the tensor layout, the initial dense values. */
int fr_plan_build(fr_model *m);
void fr_plan_layout(fr_model *m);
void fr_plan_init_dense(fr_model *m);

/* fr_rows.c: the row store, admission and eviction. */
/* Row index of (table, key); `creating` (the model itself, or NULL for read-only lookups) makes
 * training create (and admit) missing rows. -1 when absent or when memory ran out. */
int64_t fr_rows_for(const fr_model *m, fr_model *creating, uint32_t table, uint64_t key);
/* One optimizer step of a row's payload with its batch-summed gradient g. */
void fr_rows_step(const fr_model *m, float *payload, const float *g);
/* After a trained batch: stamps the touched rows, moves the clock, sweeps and ages (row policies). */
void fr_rows_after_batch(fr_model *m, const fr_sample *s, int n);
void fr_rows_free_lifecycle(struct fr_lifecycle *lc);

/* fr_scenario_parts.c: DFFI, DFUB, CausalInt. */
/* DFFI: the scenario networks start near the identity; forward replaces the plain pair products;
 * backward (one sample) adds d loss / d e_i to dx and the weights' gradient to g. */
void fr_dffi_init(fr_model *m);
void fr_dffi_forward(const fr_model *m, fr_ws *w, int n);
void fr_dffi_backward(const fr_model *m, fr_ws *w, int b, const float *dp, float *dx, float *g);
/* DFUB: the attention output into x's DFUB columns; backward for sample b. */
void fr_dfub_forward(const fr_model *m, fr_ws *w, const fr_features *f0, size_t stride, int n);
void fr_dfub_backward(const fr_model *m, fr_ws *w, int b, float *dx, float *g);
/* CausalInt: the terms' gradients into the level-0 dact and the classifier's into g. */
void fr_causal_backward(const fr_model *m, fr_ws *w, const fr_sample *smp, int n, float *g);

/* fr_engine.c: the workspace, gather, forward, the losses, backward. */
/* The batch workspace for cap samples (backward: with the gradient buffers); NULL when out of memory. */
fr_ws *fr_ws_new(const fr_model *m, int cap, int backward);
void fr_ws_free(fr_ws *w);
/* x for n feature sets spaced stride bytes apart; slots: record the touched rows for backward. */
void fr_engine_gather(const fr_model *m, fr_model *creating, fr_ws *w, const fr_features *f0, size_t stride, int n,
                      int slots);
void fr_engine_set_scenarios(const fr_model *m, fr_ws *w, const fr_sample *s, int n);
void fr_engine_forward(const fr_model *m, fr_ws *w, int n);
void fr_engine_probs(float u, float v, float out[FR_NTASKS]);
void fr_engine_logit_grads(const fr_model *m, fr_ws *w, const fr_sample *s, int n);
void fr_engine_backward(const fr_model *m, fr_ws *w, const fr_sample *smp, int n);
/* The loss of one sample on the fused logits u (CTR) and v (CVR), its clipped BCE, and which
 * tasks the distillation term covers. */
double fr_loss_sample(const fr_sample *s, double u, double v);
double fr_loss_bce(double p, double y);
void fr_loss_kd_on(const fr_sample *s, int on[2]);
/* 1 when at least one of the sample's loss terms is on. */
int fr_loss_any_term(const fr_sample *s);

#endif
