/* fr_scenario_parts: the model's scenario components, one place each (learner/fr_model.h says what
 * they compute): DFFI's per-scenario interaction network, DFUB's target attention over a
 * behaviour list, and CausalInt's adversarial and orthogonality terms (training only). */
#include <math.h>
#include <string.h>

#include "fr_kernels.h"
#include "fr_model_int.h"

/* ---- DFFI: domain-facilitated feature interaction ------------------------------------------------ */

/* DFFI starts near the plain inner product: each layer W = I + the small random init, b = 0, so
 * D(e) = tanh(~e) ~ e for the small initial embeddings, and the scenarios then bend it. */
void fr_dffi_init(fr_model *m)
{
    const int D = m->D;
    for (int s = 0; s < m->c.n_scenarios && m->c.dffi_layers; s++)
        for (int l = 0; l < m->c.dffi_layers; l++) {
            float *W = m->w + m->off_semb + (size_t)s * m->sd + (size_t)l * D * (D + 1);
            for (int r = 0; r < D; r++) W[r * D + r] += 1.0f;
            memset(W + D * D, 0, (size_t)D * sizeof *W);
        }
}

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
FR_VEC void fr_dffi_forward(const fr_model *m, fr_ws *w, int n)
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
FR_VEC void fr_dffi_backward(const fr_model *m, fr_ws *w, int b, const float *dp, float *dx, float *g)
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

/* ---- DFUB: domain-facilitated user behaviour ------------------------------------------------------ */

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
FR_VEC void fr_dfub_forward(const fr_model *m, fr_ws *w, const fr_features *f0, size_t stride, int n)
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
FR_VEC void fr_dfub_backward(const fr_model *m, fr_ws *w, int b, float *dx, float *g)
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

/* ---- CausalInt ----------------------------------------------------------------------------------- */

/* CausalInt's terms (see fr_model_config): their gradients w.r.t. the level-0 expert outputs are
 * added to dact before the ReLU mask; the classifier's own gradient goes to g. The adversary's
 * gradient enters the shared experts with its sign flipped (gradient reversal). */
FR_VEC void fr_causal_backward(const fr_model *m, fr_ws *w, const fr_sample *smp, int n, float *g)
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
        if (sid < 0 || !fr_loss_any_term(&smp[b])) continue;
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
