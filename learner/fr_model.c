/* fr_model: create and free, train and predict, restart with an edited configuration (retune), and
 * the dense parameters' accessors. The work is done by the plan (fr_plan.c), the engine
 * (fr_engine.c, with fr_scenario_parts.c) and the row store (fr_rows.c); fr_model_int.h holds what
 * they share. */
#include "fr_model.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fr_model_int.h"
#include "fr_optim.h"

/* Optimizer state floats per embedding coordinate: Adagrad's accumulator, or FTRL's z and n. */
static int row_state_per_coord(const fr_model_config *c) { return c->emb_optimizer == 1 ? 2 : 1; }

const fr_model_config *fr_model_get_config(const fr_model *m) { return &m->c; }

/* ---- create / free ---------------------------------------------------------------------------- */

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
    if (fr_plan_build(m)) goto oom;
    m->tensors = calloc((size_t)m->max_tensors, sizeof *m->tensors);
    m->names = calloc((size_t)m->max_tensors, TNAME_LEN);
    if (!m->tensors || !m->names) goto oom;
    fr_plan_layout(m);
    m->S = c->dense_optimizer == 1 ? 2 * m->P : m->P;
    m->w = malloc(m->P * sizeof *m->w);
    m->acc = malloc((m->S ? m->S : 1) * sizeof *m->acc);
    if (!m->w || !m->acc) goto oom;
    fr_plan_init_dense(m);
    fr_dffi_init(m);
    m->train_ws = weights_only ? NULL : fr_ws_new(m, c->batch_size, 1);
    m->pred_ws = fr_ws_new(m, 1, 0);
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
    fr_ws_free(m->train_ws);
    fr_ws_free(m->pred_ws);
    fr_rows_free_lifecycle(m->lc);
    free(m);
}

/* ---- restart with an edited configuration ------------------------------------------------------ */

int fr_model_retune(fr_model *m, const fr_model_config *c, char *changed, size_t changed_len, char *err,
                    size_t errlen)
{
    const fr_model_config *a = &m->c;
    if (fr_model_config_same_shape(a, c, err, errlen)) return -1;
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
        fr_ws *w = fr_ws_new(m, c->batch_size, 1);
        if (!w) {
            snprintf(err, errlen, "model.batch_size: out of memory for a batch of %d", c->batch_size);
            return -1;
        }
        fr_ws_free(m->train_ws);
        m->train_ws = w;
    }
    fr_model_config_changes(a, c, changed, changed_len);
    m->c = *c;
    return 0;
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
        fr_engine_gather(m, m, w, &s[0].f, sizeof *s, k, 1);
        fr_engine_set_scenarios(m, w, s, k);
        if (m->c.dfub_heads) fr_dfub_forward(m, w, &s[0].f, sizeof *s, k);
        fr_engine_forward(m, w, k);
        if (preds)
            for (int b = 0; b < k; b++) fr_engine_probs(w->logit[0][b], w->logit[1][b], preds[start + b]);
        fr_engine_logit_grads(m, w, s, k);
        fr_engine_backward(m, w, s, k);
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
            fr_rows_step(m, fr_emb_payload(r), w->t_grad + (size_t)i * D);
            r->version = m->version;
            fr_emb_mark(e, (size_t)w->t_row[i], FR_DIRTY_CHECKPOINT | FR_DIRTY_PUBLISH);
        }
        fr_rows_after_batch(m, s, k);
    }
}

void fr_model_predict(const fr_model *m, const fr_features *f, int32_t scenario, float out[FR_NTASKS])
{
    fr_ws *w = m->pred_ws;
    fr_engine_gather(m, NULL, w, f, sizeof *f, 1, 0);
    w->scen[0] = scenario >= 0 && scenario < m->c.n_scenarios ? scenario : -1;
    if (m->c.dfub_heads) fr_dfub_forward(m, w, f, sizeof *f, 1);
    fr_engine_forward(m, w, 1);
    fr_engine_probs(w->logit[0][0], w->logit[1][0], out);
}

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

