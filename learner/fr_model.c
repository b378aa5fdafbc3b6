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
enum { MAX_EMB_DIM = 1024, MAX_EXPERTS = 64, MAX_HIDDEN = 4096, MAX_BATCH = 1 << 16, NAME_LEN = 40 };
static const double P_CLIP = 1e-7;

/* Mixes the table index into the initialisation seed. Changing it changes the initial value of
 * every row created afterwards, so replays across versions would diverge: treat it as format. */
static uint64_t table_mix(uint32_t table) { return (uint64_t)(table + 1) * 0x9E3779B97F4A7C15ULL; }

/* Per-batch buffers, allocated once for `cap` samples so training never allocates (except rows). */
typedef struct {
    int cap;
    float *x;          /* [cap x in] */
    float *pr;         /* [cap x npair]: <e_i, e_j> for the field pairs i < j, in row-major pair order */
    float *a1;         /* [cap x r1]: expert outputs after ReLU, then each task's gate probabilities */
    float *mix[2];     /* [cap x hd]: each task's gated mixture of experts */
    float *th[2];      /* [cap x td]: tower hidden layer after ReLU */
    float *logit[2];   /* [cap] */
    /* backward and sparse bookkeeping: NULL in the predict workspace */
    float *dlogit[2];  /* [cap] */
    float *dt;         /* [cap x td] */
    float *dmix[2];    /* [cap x hd] */
    float *da1;        /* [cap x r1] */
    float *dx;         /* [cap x in]: d loss / d x */
    float *gdense;     /* [P] */
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
    int D, in, emb_in, r1, hd, td, ne, npos;
    int nf, npair, pair_off; /* embedded fields, their pairs, the column of the first pair in x */
    int pair_in;             /* pairs fed to the experts: npair or 0 */
    int fm_logit;            /* the pairs also reach each logit through a weight per pair */
    int wide;                /* a linear head from x's embedding and numeric columns to each logit */
    uint32_t n_tables;
    fr_emb *tables;
    size_t P;
    float *w, *acc;
    size_t off_b1, off_th[2], off_tb[2], off_ow[2], off_ob[2], off_fm[2], off_wide[2];
    int n_tensors;
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
}

const fr_model_config *fr_model_get_config(const fr_model *m) { return &m->c; }

/* ---- workspace -------------------------------------------------------------------------------- */

static void ws_free(fr_ws *w)
{
    if (!w) return;
    free(w->x);
    free(w->pr);
    free(w->a1);
    for (int t = 0; t < 2; t++) {
        free(w->mix[t]);
        free(w->th[t]);
        free(w->logit[t]);
        free(w->dlogit[t]);
        free(w->dmix[t]);
    }
    free(w->dt);
    free(w->da1);
    free(w->dx);
    free(w->gdense);
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
    w->a1 = falloc(n * m->r1, sizeof(float), &f);
    for (int t = 0; t < 2; t++) {
        w->mix[t] = falloc(n * m->hd, sizeof(float), &f);
        w->th[t] = falloc(n * m->td, sizeof(float), &f);
        w->logit[t] = falloc(n, sizeof(float), &f);
    }
    if (backward) {
        for (int t = 0; t < 2; t++) {
            w->dlogit[t] = falloc(n, sizeof(float), &f);
            w->dmix[t] = falloc(n * m->hd, sizeof(float), &f);
        }
        w->dt = falloc(n * m->td, sizeof(float), &f);
        w->da1 = falloc(n * m->r1, sizeof(float), &f);
        w->dx = falloc(n * m->in, sizeof(float), &f);
        w->gdense = falloc(m->P, sizeof(float), &f);
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

static int validate(const fr_model_config *c, char *err, size_t errlen)
{
    if (check_int("model.n_cat", c->n_cat, 1, FR_MAX_CAT, err, errlen) ||
        check_int("model.n_num", c->n_num, 0, FR_MAX_NUM, err, errlen) ||
        check_int("model.n_multi", c->n_multi, 0, FR_MAX_MULTI, err, errlen) ||
        check_int("model.n_scenarios", c->n_scenarios, 1, 1 << 20, err, errlen) ||
        check_int("model.emb_dim", c->emb_dim, 1, MAX_EMB_DIM, err, errlen) ||
        check_int("model.n_experts", c->n_experts, 1, MAX_EXPERTS, err, errlen) ||
        check_int("model.expert_dim", c->expert_dim, 1, MAX_HIDDEN, err, errlen) ||
        check_int("model.tower_dim", c->tower_dim, 1, MAX_HIDDEN, err, errlen) ||
        check_int("model.batch_size", c->batch_size, 1, MAX_BATCH, err, errlen) ||
        check_pos("model.lr_emb", c->lr_emb, 0, err, errlen) ||
        check_pos("model.lr_dense", c->lr_dense, 0, err, errlen) ||
        check_pos("model.adagrad_init", c->adagrad_init, 0, err, errlen) ||
        check_pos("model.init_scale", c->init_scale, 1, err, errlen) ||
        check_int("model.interactions", c->interactions, 0, 3, err, errlen) ||
        check_int("model.wide", c->wide, 0, 1, err, errlen))
        return -1;
    return 0;
}

static void add_tensor(fr_model *m, const char *name, int rows, int cols, size_t *off)
{
    int i = m->n_tensors++;
    char *dst = m->names + (size_t)i * NAME_LEN;
    snprintf(dst, NAME_LEN, "%s", name);
    m->tensors[i] = (fr_tensor_info){.name = dst, .rows = rows, .cols = cols, .offset = *off};
    *off += (size_t)rows * (size_t)cols;
}

/* Lays the tensors out (see the header for the order) and records the offsets the math uses. */
static void layout(fr_model *m)
{
    static const char *task[2] = {"ctr", "cvr"};
    char name[NAME_LEN];
    size_t off = 0;
    for (int e = 0; e < m->ne; e++) {
        snprintf(name, sizeof name, "expert.%d.w", e);
        add_tensor(m, name, m->hd, m->in, &off);
    }
    for (int t = 0; t < 2; t++) {
        snprintf(name, sizeof name, "gate.%s.w", task[t]);
        add_tensor(m, name, m->ne, m->in, &off);
    }
    m->off_b1 = off;
    for (int e = 0; e < m->ne; e++) {
        snprintf(name, sizeof name, "expert.%d.b", e);
        add_tensor(m, name, 1, m->hd, &off);
    }
    for (int t = 0; t < 2; t++) {
        snprintf(name, sizeof name, "gate.%s.b", task[t]);
        add_tensor(m, name, 1, m->ne, &off);
    }
    for (int t = 0; t < 2; t++) {
        m->off_th[t] = off;
        snprintf(name, sizeof name, "tower.%s.hidden.w", task[t]);
        add_tensor(m, name, m->td, m->hd, &off);
        m->off_tb[t] = off;
        snprintf(name, sizeof name, "tower.%s.hidden.b", task[t]);
        add_tensor(m, name, 1, m->td, &off);
        m->off_ow[t] = off;
        snprintf(name, sizeof name, "tower.%s.out.w", task[t]);
        add_tensor(m, name, 1, m->td, &off);
        m->off_ob[t] = off;
        snprintf(name, sizeof name, "tower.%s.out.b", task[t]);
        add_tensor(m, name, 1, 1, &off);
    }
    if (m->fm_logit)
        for (int t = 0; t < 2; t++) {
            m->off_fm[t] = off;
            snprintf(name, sizeof name, "pair.%s.w", task[t]);
            add_tensor(m, name, 1, m->npair, &off);
        }
    if (m->wide)
        for (int t = 0; t < 2; t++) {
            m->off_wide[t] = off;
            snprintf(name, sizeof name, "wide.%s.w", task[t]);
            add_tensor(m, name, 1, m->pair_off, &off);
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
        int is_bias = t->name[len - 1] == 'b';
        if (!is_bias) {
            /* keyed by the tensor's name, so resizing one tensor leaves the others' init alone */
            uint64_t s = m->c.seed ^ fr_hash_field(t->name);
            float scale = 1.0f / sqrtf((float)t->cols);
            for (size_t j = 0; j < n; j++) p[j] = fr_hash_uniform(s, j) * scale;
        } else if (strcmp(t->name, "tower.ctr.out.b") == 0) {
            p[0] = (float)log(0.05 / 0.95);
        } else if (strcmp(t->name, "tower.cvr.out.b") == 0) {
            p[0] = (float)log(0.1 / 0.9);
        } else {
            memset(p, 0, n * sizeof *p);
        }
    }
    for (size_t j = 0; j < m->P; j++) m->acc[j] = m->c.adagrad_init;
}

fr_model *fr_model_create(const fr_model_config *c, char *err, size_t errlen)
{
    if (validate(c, err, errlen)) return NULL;
    fr_model *m = calloc(1, sizeof *m);
    if (!m) goto oom;
    m->c = *c;
    m->D = c->emb_dim;
    m->ne = c->n_experts;
    m->hd = c->expert_dim;
    m->td = c->tower_dim;
    m->emb_in = (c->n_cat + c->n_multi) * c->emb_dim;
    m->nf = c->n_cat + c->n_multi;
    m->npair = c->interactions ? m->nf * (m->nf - 1) / 2 : 0;
    m->pair_in = (c->interactions & 1) ? m->npair : 0;
    m->fm_logit = (c->interactions & 2) && m->npair > 0;
    m->pair_off = m->emb_in + c->n_num;
    m->wide = c->wide;
    m->in = m->pair_off + m->pair_in;
    m->r1 = m->ne * m->hd + 2 * m->ne;
    m->npos = c->n_cat + c->n_multi * FR_MAX_MULTI_LEN;
    m->n_tables = (uint32_t)(c->n_cat + c->n_multi);
    m->tables = calloc(m->n_tables, sizeof *m->tables);
    if (!m->tables) goto oom;
    for (uint32_t t = 0; t < m->n_tables; t++) fr_emb_init(&m->tables[t], 2 * (size_t)m->D * sizeof(float));
    int max_tensors = 2 * m->ne + 4 + 8 + 4;
    m->tensors = calloc((size_t)max_tensors, sizeof *m->tensors);
    m->names = calloc((size_t)max_tensors, NAME_LEN);
    if (!m->tensors || !m->names) goto oom;
    layout(m);
    m->w = malloc(m->P * sizeof *m->w);
    m->acc = malloc(m->P * sizeof *m->acc);
    if (!m->w || !m->acc) goto oom;
    init_dense(m);
    m->train_ws = ws_new(m, c->batch_size, 1);
    m->pred_ws = ws_new(m, 1, 0);
    if (!m->train_ws || !m->pred_ws) goto oom;
    return m;
oom:
    snprintf(err, errlen, "out of memory creating the model (check model.batch_size and layer sizes)");
    fr_model_free(m);
    return NULL;
}

void fr_model_free(fr_model *m)
{
    if (!m) return;
    if (m->tables)
        for (uint32_t t = 0; t < m->n_tables; t++) fr_emb_free(&m->tables[t]);
    free(m->tables);
    free(m->tensors);
    free(m->names);
    free(m->w);
    free(m->acc);
    ws_free(m->train_ws);
    ws_free(m->pred_ws);
    lc_free(m->lc);
    free(m);
}

/* ---- rows ------------------------------------------------------------------------------------- */

static void init_row(const fr_model *m, uint32_t table, uint64_t key, float *payload)
{
    uint64_t s = m->c.seed ^ table_mix(table) ^ key;
    for (int i = 0; i < m->D; i++) payload[i] = fr_hash_uniform(s, (uint64_t)i) * m->c.init_scale;
    for (int i = 0; i < m->D; i++) payload[m->D + i] = m->c.adagrad_init;
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

/* The inner products <e_i, e_j>, i < j, of one sample's nf field embeddings (x's first nf*D
 * columns), pairs in row-major order: (0,1), (0,2), .., (0,nf-1), (1,2), .. A plain loop in a
 * fixed order, so a sample's products are the same bits whatever the batch around it. */
static void pair_products(const fr_model *m, const float *x, float *pr)
{
    const int D = m->D, nf = m->nf;
    int k = 0;
    for (int i = 0; i < nf; i++) {
        const float *a = x + i * D;
        for (int j = i + 1; j < nf; j++) {
            const float *b = x + j * D;
            float s = 0;
            for (int d = 0; d < D; d++) s += a[d] * b[d];
            pr[k++] = s;
        }
    }
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
        if (m->npair) {
            float *pr = w->pr + (size_t)b * m->npair;
            pair_products(m, x, pr);
            if (m->pair_in) memcpy(x + m->pair_off, pr, (size_t)m->pair_in * sizeof *pr);
        }
    }
}

/* ---- forward / backward ----------------------------------------------------------------------- */

static void forward(const fr_model *m, fr_ws *w, int n)
{
    const int in = m->in, r1 = m->r1, hd = m->hd, td = m->td, ne = m->ne, eh = ne * hd;
    const float *b1 = m->w + m->off_b1;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, r1, in, 1.0f, w->x, in, m->w, in, 0.0f, w->a1, r1);
    for (int b = 0; b < n; b++) {
        float *a = w->a1 + (size_t)b * r1;
        for (int r = 0; r < eh; r++) {
            float z = a[r] + b1[r];
            a[r] = z > 0 ? z : 0;
        }
        for (int t = 0; t < 2; t++) {
            float *g = a + eh + t * ne;
            float mx = -INFINITY;
            for (int e = 0; e < ne; e++) {
                g[e] += b1[eh + t * ne + e];
                if (g[e] > mx) mx = g[e];
            }
            float sum = 0;
            for (int e = 0; e < ne; e++) {
                g[e] = expf(g[e] - mx);
                sum += g[e];
            }
            for (int e = 0; e < ne; e++) g[e] /= sum;
            float *mix = w->mix[t] + (size_t)b * hd;
            memset(mix, 0, (size_t)hd * sizeof *mix);
            for (int e = 0; e < ne; e++) {
                const float *h = a + e * hd;
                for (int j = 0; j < hd; j++) mix[j] += g[e] * h[j];
            }
        }
    }
    for (int t = 0; t < 2; t++) {
        const float *bh = m->w + m->off_tb[t];
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, td, hd, 1.0f, w->mix[t], hd, m->w + m->off_th[t], hd,
                    0.0f, w->th[t], td);
        for (int b = 0; b < n; b++) {
            float *h = w->th[t] + (size_t)b * td;
            for (int j = 0; j < td; j++) {
                float z = h[j] + bh[j];
                h[j] = z > 0 ? z : 0;
            }
        }
        cblas_sgemv(CblasRowMajor, CblasNoTrans, n, td, 1.0f, w->th[t], td, m->w + m->off_ow[t], 1, 0.0f, w->logit[t], 1);
        if (m->fm_logit) {
            /* a plain loop: the same bits for a sample alone and in a batch */
            const float *r = m->w + m->off_fm[t];
            for (int b = 0; b < n; b++) {
                const float *pr = w->pr + (size_t)b * m->npair;
                float z = 0;
                for (int k = 0; k < m->npair; k++) z += r[k] * pr[k];
                w->logit[t][b] += z;
            }
        }
        if (m->wide) {
            const float *r = m->w + m->off_wide[t];
            for (int b = 0; b < n; b++) {
                const float *x = w->x + (size_t)b * m->in;
                float z = 0;
                for (int k = 0; k < m->pair_off; k++) z += r[k] * x[k];
                w->logit[t][b] += z;
            }
        }
        float bo = m->w[m->off_ob[t]];
        for (int b = 0; b < n; b++) w->logit[t][b] += bo;
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

/* Gradient of the summed loss into w->gdense and w->t_grad; w->dlogit must be filled. */
static void backward(const fr_model *m, fr_ws *w, int n)
{
    const int in = m->in, r1 = m->r1, hd = m->hd, td = m->td, ne = m->ne, eh = ne * hd, D = m->D;
    float *g = w->gdense;
    for (int t = 0; t < 2; t++) {
        const float *th = w->th[t], *dl = w->dlogit[t], *wo = m->w + m->off_ow[t];
        cblas_sgemv(CblasRowMajor, CblasTrans, n, td, 1.0f, th, td, dl, 1, 0.0f, g + m->off_ow[t], 1);
        float sb = 0;
        for (int b = 0; b < n; b++) sb += dl[b];
        g[m->off_ob[t]] = sb;
        if (m->fm_logit)
            cblas_sgemv(CblasRowMajor, CblasTrans, n, m->npair, 1.0f, w->pr, m->npair, dl, 1, 0.0f, g + m->off_fm[t], 1);
        if (m->wide)
            cblas_sgemv(CblasRowMajor, CblasTrans, n, m->pair_off, 1.0f, w->x, m->in, dl, 1, 0.0f, g + m->off_wide[t], 1);
        for (int b = 0; b < n; b++) {
            const float *h = th + (size_t)b * td;
            float *d = w->dt + (size_t)b * td;
            for (int j = 0; j < td; j++) d[j] = h[j] > 0 ? dl[b] * wo[j] : 0;
        }
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, td, hd, n, 1.0f, w->dt, td, w->mix[t], hd, 0.0f,
                    g + m->off_th[t], hd);
        float *gb = g + m->off_tb[t];
        memset(gb, 0, (size_t)td * sizeof *gb);
        for (int b = 0; b < n; b++)
            for (int j = 0; j < td; j++) gb[j] += w->dt[(size_t)b * td + j];
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, hd, td, 1.0f, w->dt, td, m->w + m->off_th[t], hd,
                    0.0f, w->dmix[t], hd);
    }
    for (int b = 0; b < n; b++) {
        const float *a = w->a1 + (size_t)b * r1;
        float *da = w->da1 + (size_t)b * r1;
        const float *dm[2] = {w->dmix[0] + (size_t)b * hd, w->dmix[1] + (size_t)b * hd};
        const float *gate[2] = {a + eh, a + eh + ne};
        float dg[2][MAX_EXPERTS];
        for (int e = 0; e < ne; e++) {
            const float *h = a + e * hd;
            float *dh = da + e * hd;
            float s0 = 0, s1 = 0;
            for (int j = 0; j < hd; j++) {
                s0 += dm[0][j] * h[j];
                s1 += dm[1][j] * h[j];
                dh[j] = h[j] > 0 ? gate[0][e] * dm[0][j] + gate[1][e] * dm[1][j] : 0;
            }
            dg[0][e] = s0;
            dg[1][e] = s1;
        }
        for (int t = 0; t < 2; t++) {
            /* softmax: dz_e = g_e (dg_e - sum_k g_k dg_k) */
            float dot = 0;
            for (int e = 0; e < ne; e++) dot += gate[t][e] * dg[t][e];
            for (int e = 0; e < ne; e++) da[eh + t * ne + e] = gate[t][e] * (dg[t][e] - dot);
        }
    }
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r1, in, n, 1.0f, w->da1, r1, w->x, in, 0.0f, g, in);
    float *gb1 = g + m->off_b1;
    memset(gb1, 0, (size_t)r1 * sizeof *gb1);
    for (int b = 0; b < n; b++)
        for (int r = 0; r < r1; r++) gb1[r] += w->da1[(size_t)b * r1 + r];
    /* the embedding and pair columns of x need an input gradient (the numeric ones come along) */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, in, r1, 1.0f, w->da1, r1, m->w, in, 0.0f, w->dx, in);
    const int nc = m->c.n_cat, nm = m->c.n_multi, nf = m->nf;
    if (m->wide) {
        const float *w0 = m->w + m->off_wide[0], *w1 = m->w + m->off_wide[1];
        for (int b = 0; b < n; b++) {
            float *dx = w->dx + (size_t)b * in, dl0 = w->dlogit[0][b], dl1 = w->dlogit[1][b];
            for (int k = 0; k < m->emb_in; k++) dx[k] += dl0 * w0[k] + dl1 * w1[k];
        }
    }
    if (m->npair) {
        /* through p_ij = <e_i, e_j>: d e_i += dp_ij e_j, d e_j += dp_ij e_i */
        const float *r0 = m->fm_logit ? m->w + m->off_fm[0] : NULL, *r1w = m->fm_logit ? m->w + m->off_fm[1] : NULL;
        for (int b = 0; b < n; b++) {
            float *dx = w->dx + (size_t)b * in;
            const float *x = w->x + (size_t)b * in;
            float dl0 = w->dlogit[0][b], dl1 = w->dlogit[1][b];
            int k = 0;
            for (int i = 0; i < nf; i++) {
                for (int j = i + 1; j < nf; j++, k++) {
                    float dp = m->pair_in ? dx[m->pair_off + k] : 0.0f;
                    if (r0) dp += dl0 * r0[k] + dl1 * r1w[k];
                    if (dp == 0.0f) continue;
                    const float *ei = x + i * D, *ej = x + j * D;
                    float *di = dx + i * D, *dj = dx + j * D;
                    for (int d = 0; d < D; d++) {
                        di[d] += dp * ej[d];
                        dj[d] += dp * ei[d];
                    }
                }
            }
        }
    }
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

static void logit_grads(fr_ws *w, const fr_sample *s, int n)
{
    for (int b = 0; b < n; b++) {
        double du, dv;
        loss_grad(&s[b], w->logit[0][b], w->logit[1][b], &du, &dv);
        w->dlogit[0][b] = (float)du;
        w->dlogit[1][b] = (float)dv;
    }
}

/* ---- public: train / predict ------------------------------------------------------------------ */

void fr_model_train(fr_model *m, const fr_sample *samples, int n, float (*preds)[FR_NTASKS])
{
    fr_ws *w = m->train_ws;
    const int D = m->D;
    for (int start = 0; start < n; start += w->cap) {
        int k = n - start < w->cap ? n - start : w->cap;
        const fr_sample *s = samples + start;
        gather(m, m, w, &s[0].f, sizeof *s, k, 1);
        forward(m, w, k);
        if (preds)
            for (int b = 0; b < k; b++) probs(w->logit[0][b], w->logit[1][b], preds[start + b]);
        logit_grads(w, s, k);
        backward(m, w, k);
        fr_adagrad_step(m->w, m->acc, w->gdense, m->P, m->c.lr_dense);
        m->version++;
        for (int i = 0; i < w->n_touch; i++) {
            if (w->t_row[i] < 0) continue;
            fr_emb *e = &m->tables[w->t_table[i]];
            fr_emb_row *r = fr_emb_row_at(e, (size_t)w->t_row[i]);
            float *p = fr_emb_payload(r);
            fr_adagrad_step(p, p + D, w->t_grad + (size_t)i * D, (size_t)D, m->c.lr_emb);
            r->version = m->version;
            fr_emb_mark(e, (size_t)w->t_row[i], FR_DIRTY_CHECKPOINT | FR_DIRTY_PUBLISH);
        }
        lc_after_batch(m, s, k);
    }
}

void fr_model_predict(const fr_model *m, const fr_features *f, int32_t scenario, float out[FR_NTASKS])
{
    /* the scenario reaches the model as categorical slot 0; the index is for later
     * scenario-specific components */
    (void)scenario;
    fr_ws *w = m->pred_ws;
    gather(m, NULL, w, f, sizeof *f, 1, 0);
    forward(m, w, 1);
    probs(w->logit[0][0], w->logit[1][0], out);
}

/* ---- public: serialisation -------------------------------------------------------------------- */

static fr_row_view view_of(const fr_model *m, uint32_t table, fr_emb_row *r)
{
    const float *p = fr_emb_payload(r);
    return (fr_row_view){.table = table, .key = r->key, .version = r->version, .dim = m->D, .weights = p,
                         .accum = p + m->D, .updated = r->updated};
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
        memcpy(p + m->D, accum, (size_t)m->D * sizeof *p);
    else if (created)
        for (int i = 0; i < m->D; i++) p[m->D + i] = m->c.adagrad_init;
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

int fr_model_set_dense(fr_model *m, const float *params, const float *accum, size_t count)
{
    if (count != m->P || !params) return -1;
    memcpy(m->w, params, count * sizeof *m->w);
    if (accum) memcpy(m->acc, accum, count * sizeof *m->acc);
    return 0;
}

uint64_t fr_model_version(const fr_model *m) { return m->version; }
void fr_model_set_version(fr_model *m, uint64_t version) { m->version = version; }

/* ---- tests and gradient checks ---------------------------------------------------------------- */

int fr_model_gradients(fr_model *m, const fr_sample *s, int n, float *dense_grad, fr_row_grad_fn fn, void *ctx)
{
    fr_ws *w = m->train_ws;
    if (n < 1 || n > w->cap) return -1;
    gather(m, NULL, w, &s[0].f, sizeof *s, n, 1);
    forward(m, w, n);
    logit_grads(w, s, n);
    backward(m, w, n);
    if (dense_grad) memcpy(dense_grad, w->gdense, m->P * sizeof *dense_grad);
    if (fn)
        for (int i = 0; i < w->n_touch; i++) fn(w->t_table[i], w->t_key[i], w->t_grad + (size_t)i * m->D, ctx);
    return 0;
}

/* An independent, plain-loop forward pass in double: the reference the gradient checks
 * difference, and a cross-check of the sgemm path. */
double fr_model_loss(const fr_model *m, const fr_sample *s, int n)
{
    const int D = m->D, in = m->in, hd = m->hd, td = m->td, ne = m->ne, eh = ne * hd;
    double *x = malloc((size_t)in * sizeof *x), *a = malloc((size_t)m->r1 * sizeof *a);
    double *mix = malloc((size_t)hd * sizeof *mix), *h = malloc((size_t)td * sizeof *h);
    double *pp = malloc((size_t)(m->npair ? m->npair : 1) * sizeof *pp);
    double total = NAN;
    if (!x || !a || !mix || !h || !pp) goto out;
    total = 0;
    const float *W = m->w;
    for (int i = 0; i < n; i++) {
        const fr_features *f = &s[i].f;
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
        for (int i = 0, k = 0; i < m->nf; i++)
            for (int j = i + 1; j < m->nf && m->npair; j++, k++) {
                double z = 0;
                for (int d = 0; d < D; d++) z += x[i * D + d] * x[j * D + d];
                pp[k] = z;
                if (m->pair_in) x[m->pair_off + k] = z;
            }
        for (int r = 0; r < m->r1; r++) {
            double z = W[m->off_b1 + r];
            for (int k = 0; k < in; k++) z += (double)W[(size_t)r * in + k] * x[k];
            a[r] = r < eh && z < 0 ? 0 : z;
        }
        double logit[2];
        for (int t = 0; t < 2; t++) {
            double *g = a + eh + t * ne, mx = -INFINITY, sum = 0;
            for (int e = 0; e < ne; e++) mx = g[e] > mx ? g[e] : mx;
            for (int e = 0; e < ne; e++) sum += exp(g[e] - mx);
            for (int j = 0; j < hd; j++) mix[j] = 0;
            for (int e = 0; e < ne; e++)
                for (int j = 0; j < hd; j++) mix[j] += exp(g[e] - mx) / sum * a[e * hd + j];
            double z = W[m->off_ob[t]];
            for (int q = 0; q < td; q++) {
                double y = W[m->off_tb[t] + q];
                for (int j = 0; j < hd; j++) y += (double)W[m->off_th[t] + (size_t)q * hd + j] * mix[j];
                h[q] = y > 0 ? y : 0;
                z += (double)W[m->off_ow[t] + q] * h[q];
            }
            if (m->fm_logit)
                for (int k = 0; k < m->npair; k++) z += (double)W[m->off_fm[t] + k] * pp[k];
            if (m->wide)
                for (int k = 0; k < m->pair_off; k++) z += (double)W[m->off_wide[t] + k] * x[k];
            logit[t] = z;
        }
        total += sample_loss(&s[i], logit[0], logit[1]);
    }
out:
    free(x);
    free(a);
    free(mix);
    free(h);
    free(pp);
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
    if (!lc->admit || !lc->admit_after || !lc->ttl_ms) {
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
    if (p->ttl_ms < 0) {
        snprintf(err, errlen, "row policy: negative ttl");
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
    /* key 8 + weights 4D + accumulators 4D + version 8 + last-update stamp 4 */
    st->raw_bytes = st->rows * (8 + 8 * (uint64_t)m->D + 8 + 4);
    if (m->lc) {
        for (uint32_t t = 0; t < m->n_tables; t++)
            if (m->lc->admit[t]) st->admit_bytes += fr_admit_memory(m->lc->admit[t]);
        st->not_admitted = m->lc->not_admitted;
        st->admitted = m->lc->admitted;
        st->evicted = m->lc->evicted;
    }
}
