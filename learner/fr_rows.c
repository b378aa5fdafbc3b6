/* fr_rows: the embedding rows. A row is created at a key's first training sighting (or at its
 * admission, with a row policy), stepped by the embedding optimizer, visited for the checkpoint and
 * for publishing through its dirty marks, and evicted when its table's ttl has passed in event time.
 * The public side is the second half of learner/fr_model.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fr_admit.h"
#include "fr_hash.h"
#include "fr_model_int.h"
#include "fr_optim.h"

struct fr_lifecycle;
static int lc_admit(fr_model *m, uint32_t table, uint64_t key);
static void lc_created(fr_model *m, fr_emb *e, size_t idx);
static void lc_clear(fr_model *m, uint32_t bits);

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

/* A new row's weights: uniform in [-init_scale, init_scale] from fr_hash_uniform(seed ^ table mix ^
 * key, i), a function of (seed, table, key) only. */
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
void fr_rows_step(const fr_model *m, float *payload, const float *g)
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
int64_t fr_rows_for(const fr_model *m, fr_model *creating, uint32_t table, uint64_t key)
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

void fr_rows_free_lifecycle(struct fr_lifecycle *lc)
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
        fr_rows_free_lifecycle(lc);
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
            /* kept while its age is under the ttl; the age, not stamp + ttl, so that no ttl and no
             * clock overflows (the stamp is at most 2^32 s, the clock at least the stamp here) */
            const int64_t stamp_ms = (int64_t)r->updated * 1000;
            if (lc->clock_ms < stamp_ms || lc->clock_ms - stamp_ms < lc->ttl_ms[t]) continue;
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
void fr_rows_after_batch(fr_model *m, const fr_sample *s, int n)
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
