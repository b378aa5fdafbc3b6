/* fr_engine: the model's batch computation. gather builds the input x of a batch from the rows
 * (creating them when training), forward runs the levels, gates and towers, the loss gives the
 * logits' gradients, and backward returns the gradient of the summed loss, dense and per touched row.
 * All dense products are sgemm / sgemv; the per-sample loops are FR_VEC (fr_kernels.h). */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fr_kernels.h"
#include "fr_model_int.h"

static const double P_CLIP = 1e-7;

/* ---- workspace -------------------------------------------------------------------------------- */

void fr_ws_free(fr_ws *w)
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

fr_ws *fr_ws_new(const fr_model *m, int cap, int backward)
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
        fr_ws_free(w);
        return NULL;
    }
    return w;
}

/* ---- input: rows, pooled lists, numerics, pair products -------------------------------------------- */

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
void fr_engine_gather(const fr_model *m, fr_model *creating, fr_ws *w, const fr_features *f0, size_t stride, int n,
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
            int64_t r = key ? fr_rows_for(m, creating, (uint32_t)c, key) : -1;
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
                int64_t r = fr_rows_for(m, creating, table, key);
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

void fr_engine_set_scenarios(const fr_model *m, fr_ws *w, const fr_sample *s, int n)
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

FR_VEC void fr_engine_forward(const fr_model *m, fr_ws *w, int n)
{
    const int hd = m->hd, td = m->td, sd = m->sd;
    if (m->c.dffi_layers) fr_dffi_forward(m, w, n);
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

void fr_engine_probs(float u, float v, float out[FR_NTASKS])
{
    double a = sigmoid(u), b = sigmoid(v);
    out[FR_TASK_CTR] = (float)a;
    out[FR_TASK_CVR] = (float)b;
    out[FR_TASK_CTCVR] = (float)(a * b);
}

/* The loss of a sample, ESMM style, on the fused logits u = z_ctr, v = z_cvr (z_t = the mean of
 * task t's learner logits z_tl):
 *   w_ctr   * BCE(s(u), y_click)
 * + w_ctcvr * BCE(s(u) s(v), y_click_and_conversion)
 * + w_cvr   * BCE(s(v), y_conversion)          (only where a sample sets it)
 * and with n_learners > 1 (TAML), per learner l: learner_loss times the same loss on
 * (z_ctr_l, z_cvr_l), plus the self-distillation term distill * BCE(s(z_tl), stopgrad(s(z_t))) for
 * t = CTR where the CTR term is on and t = CVR where the CTCVR or the CVR term is on: the fused
 * score teaches each learner, and no gradient flows into the teacher through this term.
 * A task's term is on for a sample iff has_label[t] and weight[t] != 0 (both finite). */
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

double fr_loss_bce(double p, double y)
{
    if (p < P_CLIP) p = P_CLIP;
    if (p > 1 - P_CLIP) p = 1 - P_CLIP;
    return -(y * log(p) + (1 - y) * log(1 - p));
}

double fr_loss_sample(const fr_sample *s, double u, double v)
{
    double a = sigmoid(u), b = sigmoid(v), l = 0;
    if (term_on(s, FR_TASK_CTR)) l += s->weight[FR_TASK_CTR] * fr_loss_bce(a, s->label[FR_TASK_CTR]);
    if (term_on(s, FR_TASK_CTCVR)) l += s->weight[FR_TASK_CTCVR] * fr_loss_bce(a * b, s->label[FR_TASK_CTCVR]);
    if (term_on(s, FR_TASK_CVR)) l += s->weight[FR_TASK_CVR] * fr_loss_bce(b, s->label[FR_TASK_CVR]);
    return l;
}

/* Which tasks the distillation term covers for a sample: CTR where its CTR term is on, CVR where
 * it has a CTCVR or CVR term (the fused CVR teacher exists on every impression). */
void fr_loss_kd_on(const fr_sample *s, int on[2])
{
    on[0] = term_on(s, FR_TASK_CTR);
    on[1] = term_on(s, FR_TASK_CTCVR) || term_on(s, FR_TASK_CVR);
}

/* d loss / d learner logit; the fused teacher s(z_t) is a constant in the distillation term. */
void fr_engine_logit_grads(const fr_model *m, fr_ws *w, const fr_sample *s, int n)
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
        fr_loss_kd_on(&s[b], on);
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

int fr_loss_any_term(const fr_sample *s)
{
    return term_on(s, FR_TASK_CTR) || term_on(s, FR_TASK_CVR) || term_on(s, FR_TASK_CTCVR);
}

/* ---- backward: from the logits down to the rows ------------------------------------------------ */

/* The gradients that the per-sample loops below add into start at zero (the scenario vectors, the
 * gates' scenario weights, DFUB's projections); sgemm and sgemv write the others whole. */
static void backward_zero_sums(const fr_model *m, float *g)
{
    const int D = m->D, sd = m->sd;
    if (sd) {
        memset(g + m->off_semb, 0, (size_t)m->c.n_scenarios * sd * sizeof *g);
        for (int v = 0; v < m->NL; v++)
            for (int k = 0; k < m->lv[v].n_gt; k++)
                if (m->lv[v].gt[k].ng > 1)
                    memset(g + m->lv[v].gt[k].off_sw, 0, (size_t)m->lv[v].gt[k].ng * sd * sizeof *g);
    }
    if (m->c.dfub_heads) memset(g + m->off_dq, 0, (size_t)4 * D * D * sizeof *g); /* q, k, v: adjacent */
}

/* The towers, from the learner logits' gradients (w->dzl) down to d loss / d each last-level
 * gate's output; and the pair (FwFM) and wide weights, whose gradient is their input times the
 * task's summed learner gradient (w->dextra). */
FR_KERNEL void backward_towers(const fr_model *m, fr_ws *w, int n, float *g)
{
    const int hd = m->hd, td = m->td, F = m->NL - 1;
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
}

/* Level v's gates, from d loss / d each gate's output (w->dgo[v]) into w->dact[v]: a gate's output
 * is sum_k p_k h_k, so each expert output h_k gets p_k dout and each probability dout . h_k, which
 * the softmax turns into the gate's logit gradients; with scenario_dim, the scenario's logit term
 * takes the summed logit gradients of that scenario's samples. */
FR_KERNEL void backward_gates(const fr_model *m, fr_ws *w, int v, int n, float *g)
{
    const int hd = m->hd, sd = m->sd;
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
}

/* Level v's streams: the ReLU mask on the experts' rows of w->dact[v], then the weights' and
 * biases' gradients and d loss / d the stream's input (x, or a gate output of level v - 1). */
FR_KERNEL void backward_streams(const fr_model *m, fr_ws *w, int v, int n, float *g)
{
    const fr_level *lv = &m->lv[v];
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

/* Adds to d loss / d x's embedding columns (w->dx) what reaches them around the experts: the wide
 * head, and the pair products (plain, or through DFFI's networks), whose gradient comes from x's
 * pair columns and the FwFM logit terms. */
FR_KERNEL void backward_wide_and_pairs(const fr_model *m, fr_ws *w, int n, float *g)
{
    const int in = m->in, D = m->D, nf = m->nf;
    if (m->wide) {
        const float *w0 = m->w + m->off_wide[0], *w1 = m->w + m->off_wide[1];
        for (int b = 0; b < n; b++) {
            float *dx = w->dx + (size_t)b * in, dl0 = w->dextra[0][b], dl1 = w->dextra[1][b];
            for (int k = 0; k < m->emb_in; k++) dx[k] += dl0 * w0[k] + dl1 * w1[k];
        }
    }
    if (!m->npair) return;
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
            fr_dffi_backward(m, w, b, dp, w->dx + (size_t)b * in, g);
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

/* Hands d loss / d x's embedding columns to the touched rows (w->t_grad): a categorical field's row
 * takes its column block, each key of a pooled list its list's block divided by the keys pooled. */
FR_KERNEL void backward_rows(const fr_model *m, fr_ws *w, int n)
{
    const int in = m->in, D = m->D, nc = m->c.n_cat, nm = m->c.n_multi;
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

/* Gradient of the summed loss into w->gdense and w->t_grad; w->dzl must be filled. Top down: the
 * towers, each level's gates then streams (CausalInt's terms join level 0's expert gradients
 * before the ReLU mask), what reaches x around the experts, DFUB, and finally the rows. */
FR_VEC void fr_engine_backward(const fr_model *m, fr_ws *w, const fr_sample *smp, int n)
{
    float *g = w->gdense;
    backward_zero_sums(m, g);
    backward_towers(m, w, n, g);
    for (int v = m->NL - 1; v >= 0; v--) {
        backward_gates(m, w, v, n, g);
        if (v == 0 && w->cz) fr_causal_backward(m, w, smp, n, g);
        backward_streams(m, w, v, n, g);
    }
    backward_wide_and_pairs(m, w, n, g);
    if (m->c.dfub_heads)
        for (int b = 0; b < n; b++) fr_dfub_backward(m, w, b, w->dx + (size_t)b * m->in, g);
    backward_rows(m, w, n);
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
