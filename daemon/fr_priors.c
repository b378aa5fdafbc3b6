/* fr_priors: an open-addressing map id -> prior with a dirty list (fr_priors.h). */
#include "fr_priors.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fr_bytes.h"
#include "fr_event.h"
#include "fr_hash.h"

enum { RECORD_VERSION = 1 };

typedef struct {
    uint64_t hash;
    float prior[FR_NTASKS];
    uint8_t live;      /* 0: deleted, kept until the checkpoint has exported the deletion */
    uint8_t dirty;
    uint8_t persisted; /* the last exported dirty set holds this id */
    uint16_t id_len;
    char id[];
} entry;

/* A slot that held an entry since removed: probing goes on past it. */
static entry removed_slot;
#define REMOVED (&removed_slot)

struct fr_priors {
    entry **slots;
    size_t cap;  /* power of two */
    size_t used; /* entries + removed slots */
    size_t live;
    entry **dirty;
    size_t n_dirty, dirty_cap;
};

static uint64_t hash_id(const char *id, size_t len) { return fr_hash_value(0x7072696f72ULL, id, len); }

fr_priors *fr_priors_create(void)
{
    fr_priors *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->cap = 64;
    m->slots = calloc(m->cap, sizeof *m->slots);
    if (!m->slots) {
        free(m);
        return NULL;
    }
    return m;
}

void fr_priors_free(fr_priors *m)
{
    if (!m) return;
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i] && m->slots[i] != REMOVED) free(m->slots[i]);
    free(m->slots);
    free(m->dirty);
    free(m);
}

/* The slot holding id, or (when absent) the first free one on its probe chain. */
static size_t find(const fr_priors *m, const char *id, size_t len, uint64_t h, int *found)
{
    size_t mask = m->cap - 1, i = h & mask, first_removed = SIZE_MAX;
    *found = 0;
    for (;; i = (i + 1) & mask) {
        entry *e = m->slots[i];
        if (!e) return first_removed != SIZE_MAX ? first_removed : i;
        if (e == REMOVED) {
            if (first_removed == SIZE_MAX) first_removed = i;
            continue;
        }
        if (e->hash == h && e->id_len == len && memcmp(e->id, id, len) == 0) {
            *found = 1;
            return i;
        }
    }
}

static int grow(fr_priors *m)
{
    size_t ncap = m->live * 4 > m->cap ? m->cap * 2 : m->cap; /* mostly removed slots: rehash in place */
    entry **ns = calloc(ncap, sizeof *ns);
    if (!ns) return -1;
    for (size_t i = 0; i < m->cap; i++) {
        entry *e = m->slots[i];
        if (!e || e == REMOVED) continue;
        size_t k = e->hash & (ncap - 1);
        while (ns[k]) k = (k + 1) & (ncap - 1);
        ns[k] = e;
    }
    free(m->slots);
    m->slots = ns;
    m->cap = ncap;
    size_t used = 0;
    for (size_t i = 0; i < ncap; i++) used += ns[i] != NULL;
    m->used = used;
    return 0;
}

static int mark_dirty(fr_priors *m, entry *e)
{
    if (e->dirty) return 0;
    if (m->n_dirty == m->dirty_cap) {
        size_t ncap = m->dirty_cap ? m->dirty_cap * 2 : 64;
        entry **nd = realloc(m->dirty, ncap * sizeof *nd);
        if (!nd) return -1;
        m->dirty = nd;
        m->dirty_cap = ncap;
    }
    m->dirty[m->n_dirty++] = e;
    e->dirty = 1;
    return 0;
}

/* The live or deleted entry of id, created (not live) when absent; NULL when out of memory. */
static entry *obtain(fr_priors *m, const char *id, size_t len)
{
    if ((m->used + 1) * 10 > m->cap * 7 && grow(m) != 0) return NULL;
    const uint64_t h = hash_id(id, len);
    int found;
    size_t i = find(m, id, len, h, &found);
    if (found) return m->slots[i];
    entry *e = calloc(1, sizeof *e + len + 1);
    if (!e) return NULL;
    e->hash = h;
    e->id_len = (uint16_t)len;
    memcpy(e->id, id, len);
    if (!m->slots[i]) m->used++;
    m->slots[i] = e;
    return e;
}

int fr_priors_set(fr_priors *m, const char *id, size_t id_len, const float prior[FR_NTASKS])
{
    if (id_len == 0 || id_len > FR_ID_MAX) return -1;
    entry *e = obtain(m, id, id_len);
    if (!e || mark_dirty(m, e) != 0) return -1;
    memcpy(e->prior, prior, sizeof e->prior);
    if (!e->live) m->live++;
    e->live = 1;
    return 0;
}

int fr_priors_get(const fr_priors *m, const char *id, size_t id_len, float out[FR_NTASKS])
{
    int found;
    size_t i = find(m, id, id_len, hash_id(id, id_len), &found);
    if (!found || !m->slots[i]->live) return 0;
    memcpy(out, m->slots[i]->prior, sizeof m->slots[i]->prior);
    return 1;
}

void fr_priors_delete(fr_priors *m, const char *id, size_t id_len)
{
    int found;
    size_t i = find(m, id, id_len, hash_id(id, id_len), &found);
    if (!found || !m->slots[i]->live) return;
    entry *e = m->slots[i];
    e->live = 0;
    m->live--;
    /* Out of memory for the dirty list: the entry stays, deleted, until a later delete marks it. */
    if (e->persisted || e->dirty) {
        mark_dirty(m, e);
        return;
    }
    m->slots[i] = REMOVED;
    free(e);
}

size_t fr_priors_count(const fr_priors *m) { return m->live; }

static void encode(const entry *e, unsigned char out[FR_PRIOR_RECORD_BYTES])
{
    fr_bytes_out o = fr_bytes_out_init(out, FR_PRIOR_RECORD_BYTES);
    fr_out_u8(&o, RECORD_VERSION);
    for (int t = 0; t < FR_NTASKS; t++) fr_out_f32le(&o, e->prior[t]);
}

int fr_priors_foreach_dirty(const fr_priors *m, fr_priors_fn fn, void *ctx)
{
    unsigned char rec[FR_PRIOR_RECORD_BYTES];
    for (size_t i = 0; i < m->n_dirty; i++) {
        const entry *e = m->dirty[i];
        int rc;
        if (e->live) {
            encode(e, rec);
            rc = fn(e->id, e->id_len, rec, sizeof rec, ctx);
        } else if (e->persisted) {
            rc = fn(e->id, e->id_len, NULL, 0, ctx);
        } else {
            continue; /* set and deleted since the last checkpoint: the store never held it */
        }
        if (rc) return rc;
    }
    return 0;
}

void fr_priors_clear_dirty(fr_priors *m)
{
    for (size_t i = 0; i < m->n_dirty; i++) {
        entry *e = m->dirty[i];
        e->dirty = 0;
        e->persisted = e->live;
        if (e->live) continue;
        int found;
        size_t k = find(m, e->id, e->id_len, e->hash, &found);
        if (found) m->slots[k] = REMOVED;
        free(e);
    }
    m->n_dirty = 0;
}

int fr_priors_decode(const void *bytes, size_t len, float out[FR_NTASKS], char *why, size_t whylen)
{
    if (!bytes || len != FR_PRIOR_RECORD_BYTES) {
        snprintf(why, whylen, "a prior record of %zu bytes, not %d", len, FR_PRIOR_RECORD_BYTES);
        return -1;
    }
    fr_bytes_in r = fr_bytes_in_init(bytes, len);
    const unsigned v = fr_in_u8(&r);
    if (v != RECORD_VERSION) {
        snprintf(why, whylen, "a prior record of version %u, this build reads %d", v, RECORD_VERSION);
        return -1;
    }
    for (int t = 0; t < FR_NTASKS; t++) {
        out[t] = fr_in_f32le(&r);
        /* a prediction: a probability; NaN fails the comparison too */
        if (!(out[t] >= 0 && out[t] <= 1)) {
            snprintf(why, whylen, "a prior prediction for task %d outside [0, 1]", t);
            return -1;
        }
    }
    return 0;
}

int fr_priors_load(fr_priors *m, const char *id, size_t id_len, const void *bytes, size_t len, char *why,
                   size_t whylen)
{
    float p[FR_NTASKS];
    char w[160];
    if (id_len == 0 || id_len > FR_ID_MAX) {
        /* the id is not terminated: print at most its own bytes */
        snprintf(why, whylen, "prior \"P%.*s\": an impression id of %zu bytes (1 to %d)", (int)(id_len > 40 ? 40 : id_len),
                 id, id_len, FR_ID_MAX);
        return -1;
    }
    if (fr_priors_decode(bytes, len, p, w, sizeof w) != 0) {
        snprintf(why, whylen, "prior of impression \"%.*s\": %s", (int)(id_len > 64 ? 64 : id_len), id, w);
        return -1;
    }
    if (fr_priors_get(m, id, id_len, p) == 1) {
        snprintf(why, whylen, "prior of impression \"%.*s\" stored twice", (int)(id_len > 64 ? 64 : id_len), id);
        return -1;
    }
    fr_priors_decode(bytes, len, p, w, sizeof w);
    entry *e = obtain(m, id, id_len);
    if (!e) {
        snprintf(why, whylen, "out of memory loading the priors");
        return -1;
    }
    memcpy(e->prior, p, sizeof p);
    e->live = 1;
    e->persisted = 1;
    m->live++;
    return 0;
}
