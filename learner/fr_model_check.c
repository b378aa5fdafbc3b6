/* fr_model_check: an independent reference of the model's loss, in double precision and plain
 * loops, and the training path's analytic gradient at the same point, for the gradient checks.
 * Built into fr_learner_check, which only the tests link. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fr_kernels.h"
#include "fr_model_check.h"
#include "fr_model_int.h"

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
