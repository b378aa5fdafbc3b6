/* fr_plan: the model's plan (levels, experts, gates, their input streams and activation columns)
 * and the layout of the dense parameters it implies (learner/fr_model.h describes the order),
 * with their initial values. Run once, by fr_model_create.
 *
 * The wiring. Experts are one-layer ReLU MLPs of width expert_dim, in groups: shared (n_experts),
 * per task (n_task_experts each), per scenario (n_scenario_experts for each scenario: a sample
 * uses its own scenario's) and, at the last level only, per learner (n_learner_experts for each
 * of the n_learners learners of each task). A gate is a softmax over the experts it may use, of a
 * linear function of its input (plus, with scenario_dim, of the learned scenario vector):
 *   last level, learner (t, l):  shared + task t + learner (t, l) + the sample's scenario experts;
 *   earlier levels (PLE):        task t gate: shared + task t + scenario experts;
 *                                shared gate: every expert of the level (+ scenario experts).
 * Level 0 reads x; at a later level, task t's experts and gates read task t's gate output of the
 * level before, shared and scenario experts and the shared gate read the shared gate's output.
 * A gate over a single expert is the identity (no parameters). Each learner has a tower (one
 * ReLU hidden layer of tower_dim, a linear output).
 *
 * Initial values: dense weights uniform in [-1/sqrt(fan_in), 1/sqrt(fan_in)] from
 * fr_hash_uniform(seed ^ fr_hash_field(tensor name), i); biases 0 except the output biases, at
 * the logits of CTR 0.05 and CVR 0.1. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fr_hash.h"
#include "fr_model_int.h"

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
int fr_plan_build(fr_model *m)
{
    const fr_model_config *c = &m->c;
    const int ns = c->n_experts, nt = c->n_task_experts, nl = c->n_learner_experts, nsc = c->n_scenario_experts;
    const int L = m->L;
    char pre[8], name[NAME_LEN];
    for (int v = 0; v < m->NL; v++) {
        fr_level *lv = &m->lv[v];
        const int last = v == m->NL - 1;
        pre[0] = '\0'; /* level 0's names have no prefix */
        if (v) snprintf(pre, sizeof pre, "l%d.", v & 3); /* v < MAX_LEVELS = 4 */
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
void fr_plan_layout(fr_model *m)
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

void fr_plan_init_dense(fr_model *m)
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
