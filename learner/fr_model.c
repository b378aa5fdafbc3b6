#include "fr_model.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fr_admit.h"
#include "fr_emb.h"
#include "fr_hash.h"
#include "fr_kernels.h"
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

fr_model *fr_model_create(const fr_model_config *c, char *err, size_t errlen) { return create(c, 0, err, errlen); }

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
        fr_ws *w = fr_ws_new(m, c->batch_size, 1);
        if (!w) {
            snprintf(err, errlen, "model.batch_size: out of memory for a batch of %d", c->batch_size);
            return -1;
        }
        fr_ws_free(m->train_ws);
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

/* ---- tests and gradient checks ---------------------------------------------------------------- */

int fr_model_gradients(fr_model *m, const fr_sample *s, int n, float *dense_grad, fr_row_grad_fn fn, void *ctx)
{
    fr_ws *w = m->train_ws;
    if (!w || n < 1 || n > w->cap) return -1;
    fr_engine_gather(m, NULL, w, &s[0].f, sizeof *s, n, 1);
    fr_engine_set_scenarios(m, w, s, n);
    if (m->c.dfub_heads) fr_dfub_forward(m, w, &s[0].f, sizeof *s, n);
    fr_engine_forward(m, w, n);
    fr_engine_logit_grads(m, w, s, n);
    fr_engine_backward(m, w, s, n);
    if (dense_grad) memcpy(dense_grad, w->gdense, m->P * sizeof *dense_grad);
    if (fn)
        for (int i = 0; i < w->n_touch; i++) fn(w->t_table[i], w->t_key[i], w->t_grad + (size_t)i * m->D, ctx);
    return 0;
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
        total += fr_loss_sample(&s[i], z[0], z[1]);
        if ((m->c.causal_adv > 0 || m->c.causal_orth > 0) && s[i].scenario >= 0 && s[i].scenario < m->c.n_scenarios &&
            fr_loss_any_term(&s[i]))
            total += ref_causal(m, &rb, s[i].scenario, adv_sign);
        if (L == 1) continue;
        double teach[2] = {sigmoid(z[0]), sigmoid(z[1])};
        if (teacher && fill) teacher[2 * i] = teach[0], teacher[2 * i + 1] = teach[1];
        if (teacher && !fill) teach[0] = teacher[2 * i], teach[1] = teacher[2 * i + 1];
        int on[2];
        fr_loss_kd_on(&s[i], on);
        for (int l = 0; l < L; l++) {
            total += m->c.learner_loss * fr_loss_sample(&s[i], zl[l], zl[L + l]);
            for (int t = 0; t < 2; t++)
                if (on[t]) total += m->c.distill * fr_loss_bce(sigmoid(zl[t * L + l]), teach[t]);
        }
    }
    free(pool);
    return total;
}

double fr_model_loss(const fr_model *m, const fr_sample *s, int n)
{
    return fr_model_loss_teacher(m, s, n, NULL, 0, 1);
}
