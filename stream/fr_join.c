/* fr_join: the event-time joiner (see fr_join.h for the contract): handlers, timers, spilling.
 * The private structures are in fr_join_int.h, the stored formats in fr_join_codec.c.
 *
 * Shape. One entry per impression id holds everything known about that impression. What the
 * entry is waiting for is a set of timers, one per timer kind, kept in a single binary heap
 * ordered by (deadline, id bytes, kind): that total order is what makes emission independent of
 * arrival order, hash layout and restarts. Timers are never stored: policy_deadline() derives
 * each one from the entry's state, and sync_timers() reconciles the heap with it after every
 * change, so a restored entry gets exactly the timers the original had. A new policy is a row of
 * fr_policy.c; a new kind of copy is a case in policy_deadline()/fire(), not a rewrite.
 *
 * Semantics decisions where EVENTS.md leaves room (the "wait" policy):
 *  - An impression is accepted until its click window has closed under the watermark
 *    (imp.ts + click_window < watermark: LATE), because its CTR label can still be right.
 *  - A click or conversion whose impression is unknown must itself be on time (ts >= watermark,
 *    else LATE: without the impression nothing proves it could still match). It is then held
 *    until its impression's window closes at the latest: any impression it could match has
 *    ts <= its ts and is accepted while ts + click_window >= watermark. Expiring earlier (at its
 *    own ts) would drop the clicks of impressions that are still accepted, and train a false
 *    negative CTR label. So the orphan timer is (latest held ts) + click_window.
 *  - Dedup key is (type, id) while the entry lives: the first click decides, even when it fell
 *    outside the window; one conversion per impression (the first), later ones are DUPLICATE
 *    whatever their ts, because the labels are per impression, not per conversion.
 *  - A click or conversion on a live entry is judged by its ts against the windows, not against
 *    the watermark: while the sample it feeds has not been emitted it can still be counted.
 *  - The attribution sample is due at max(click.ts + attribution_window, imp.ts + click_window):
 *    in the wait policy it follows its CTR sample, and emission stays sorted by sample ts.
 *  - Without tombstones for finished impressions, a click/conversion that arrives on time for an
 *    impression already deleted (e.g. a click after the window) cannot be told from one that
 *    precedes its impression; it is held and expires as ORPHAN. Counted, never silent. */
#include "fr_join_int.h"

#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- small helpers ---- */

static int64_t sat_add(int64_t a, int64_t b)
{
    /* b is a window (>= 0): deadlines near INT64_MAX saturate instead of wrapping into the past. */
    return a > INT64_MAX - b ? INT64_MAX : a + b;
}

static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

static uint64_t hash_id(const char *id, size_t len)
{
    /* FNV-1a plus a murmur finaliser: the low bits index the table, so they must be mixed. The
     * join must link without libxxhash (it is tested standalone). */
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)id[i]) * 0x100000001b3ull;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

static int id_cmp(const fr_join_entry *a, const fr_join_entry *b)
{
    size_t n = a->id_len < b->id_len ? a->id_len : b->id_len;
    int c = memcmp(a->id, b->id, n);
    if (c) return c;
    return (a->id_len > b->id_len) - (a->id_len < b->id_len);
}

/* ---- counters: every move keeps events == joined + pending + dropped ---- */

static void count_pending(fr_join *j, fr_event_type t) { j->n.pending[t]++; }
static void count_drop(fr_join *j, fr_event_type t, fr_drop_reason r) { j->n.dropped[t][r]++; }
static void pending_to_drop(fr_join *j, fr_event_type t, fr_drop_reason r)
{
    j->n.pending[t]--;
    j->n.dropped[t][r]++;
}
static void pending_to_joined(fr_join *j, fr_event_type t)
{
    j->n.pending[t]--;
    j->n.joined[t]++;
}

/* ---- map ---- */

static size_t map_find_slot(const fr_join *j, const char *id, size_t len, uint64_t h)
{
    size_t mask = j->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        const fr_join_entry *e = j->slots[i].e;
        if (!e) return i;
        if (j->slots[i].hash == h && e->id_len == len && memcmp(e->id, id, len) == 0) return i;
    }
}

static int map_grow(fr_join *j)
{
    size_t ncap = j->cap * 2;
    map_slot *ns = calloc(ncap, sizeof *ns);
    if (!ns) return -1;
    for (size_t i = 0; i < j->cap; i++) {
        if (!j->slots[i].e) continue;
        size_t k = j->slots[i].hash & (ncap - 1);
        while (ns[k].e) k = (k + 1) & (ncap - 1);
        ns[k] = j->slots[i];
    }
    free(j->slots);
    j->slots = ns;
    j->cap = ncap;
    return 0;
}

static void map_remove(fr_join *j, const fr_join_entry *e)
{
    size_t mask = j->cap - 1;
    size_t i = map_find_slot(j, e->id, e->id_len, hash_id(e->id, e->id_len));
    /* Backward-shift deletion keeps probe chains intact without map-level tombstones. */
    for (size_t k = (i + 1) & mask; j->slots[k].e; k = (k + 1) & mask) {
        size_t home = j->slots[k].hash & mask;
        if (((k - home) & mask) >= ((k - i) & mask)) {
            j->slots[i] = j->slots[k];
            i = k;
        }
    }
    j->slots[i].e = NULL;
    j->slots[i].hash = 0;
    j->used--;
}

/* ---- timer heap ---- */

static int timer_less(const timer *a, const timer *b)
{
    if (a->deadline != b->deadline) return a->deadline < b->deadline;
    if (a->e != b->e) return id_cmp(a->e, b->e) < 0;
    return a->kind < b->kind;
}

static void heap_set(fr_join *j, size_t pos, timer t)
{
    j->heap[pos] = t;
    t.e->heap_pos[t.kind] = (uint32_t)pos;
}

static void sift_up(fr_join *j, size_t pos)
{
    timer t = j->heap[pos];
    while (pos > 0) {
        size_t parent = (pos - 1) / 2;
        if (!timer_less(&t, &j->heap[parent])) break;
        heap_set(j, pos, j->heap[parent]);
        pos = parent;
    }
    heap_set(j, pos, t);
}

static void sift_down(fr_join *j, size_t pos)
{
    timer t = j->heap[pos];
    for (;;) {
        size_t c = 2 * pos + 1;
        if (c >= j->heap_len) break;
        if (c + 1 < j->heap_len && timer_less(&j->heap[c + 1], &j->heap[c])) c++;
        if (!timer_less(&j->heap[c], &t)) break;
        heap_set(j, pos, j->heap[c]);
        pos = c;
    }
    heap_set(j, pos, t);
}

static void heap_remove(fr_join *j, size_t pos)
{
    fr_join_entry *e = j->heap[pos].e;
    e->heap_pos[j->heap[pos].kind] = NO_POS;
    j->heap_len--;
    if (pos == j->heap_len) return;
    j->heap[pos] = j->heap[j->heap_len];
    j->heap[pos].e->heap_pos[j->heap[pos].kind] = (uint32_t)pos;
    sift_down(j, pos);
    sift_up(j, pos);
}

/* Capacity for every timer any live entry may hold is reserved when the entry is created, so
 * arming never allocates (and advance() never fails). */
static int heap_reserve(fr_join *j, size_t need)
{
    if (need <= j->heap_cap) return 0;
    size_t ncap = j->heap_cap ? j->heap_cap : 64;
    while (ncap < need) ncap *= 2;
    timer *nh = realloc(j->heap, ncap * sizeof *nh);
    if (!nh) return -1;
    j->heap = nh;
    j->heap_cap = ncap;
    return 0;
}

/* ---- policy: which timers an entry needs ---- */

/* The most timers one entry holds at once under the policy: wait 1 (orphan, click window or
 * attribution); CLICK_WINDOW or ATTRIBUTION, plus the first copy (at the click or the observation
 * window) or DELAYED_POS (which waits for it), plus REAL_NEG beside DELAYED_POS. */
static size_t policy_max_timers(const fr_policy *p)
{
    return 1 + (p->copies != 0) + ((p->copies & FR_COPY_REAL_NEG) != 0);
}

static int clicked_imp(uint16_t fl) { return (fl & (F_IMP | F_CLICKED)) == (F_IMP | F_CLICKED); }

/* The first copy's ts: a delayed positive never precedes it. */
static int64_t first_copy_ts(const fr_join *j, const fr_join_entry *e)
{
    return (j->pol->copies & FR_COPY_AT_CLICK) ? e->click_ts : sat_add(e->click_ts, j->cfg.observation_window_ms);
}

/* 1 with *deadline when the entry's state needs the timer of this kind. */
static int policy_deadline(const fr_join *j, const fr_join_entry *e, timer_kind k, int64_t *deadline)
{
    const uint16_t fl = e->flags;
    switch (k) {
    case TIMER_ORPHAN:
        if (fl & F_IMP) return 0;
        if (!(fl & (F_CLICK_HELD | F_CONV_HELD))) return 0;
        {
            int64_t held = INT64_MIN;
            if (fl & F_CLICK_HELD) held = max64(held, e->click_ts);
            if (fl & F_CONV_HELD) held = max64(held, e->conv_ts);
            *deadline = sat_add(held, j->cfg.click_window_ms);
        }
        return 1;
    case TIMER_CLICK_WINDOW:
        if (!(fl & F_IMP) || (fl & F_CTR_EMITTED)) return 0;
        *deadline = sat_add(e->imp_ts, j->cfg.click_window_ms);
        return 1;
    case TIMER_EARLY:
        if (!(j->pol->copies & FR_COPY_AT_CLICK) || !clicked_imp(fl) || (fl & F_EARLY_DONE)) return 0;
        *deadline = e->click_ts;
        return 1;
    case TIMER_OBS_WINDOW:
        if (!(j->pol->copies & FR_COPY_AT_WINDOW) || !clicked_imp(fl) || (fl & F_WINDOW_DONE)) return 0;
        *deadline = sat_add(e->click_ts, j->cfg.observation_window_ms);
        return 1;
    case TIMER_DELAYED_POS: {
        if (!(j->pol->copies & FR_COPY_DELAYED_POS) || !clicked_imp(fl) || !(fl & F_CONVERTED) || (fl & F_DP_DONE)) return 0;
        const int first_negative_out =
            (j->pol->copies & FR_COPY_AT_CLICK) ? (fl & F_EARLY_DONE) != 0 : (fl & (F_WINDOW_DONE | F_WINDOW_POS)) == F_WINDOW_DONE;
        if (!first_negative_out) return 0;
        *deadline = max64(e->conv_ts, first_copy_ts(j, e));
        return 1;
    }
    case TIMER_REAL_NEG: {
        if (!(j->pol->copies & FR_COPY_REAL_NEG) || !clicked_imp(fl) || !(fl & F_WINDOW_DONE) || (fl & F_RN_DONE))
            return 0;
        const int64_t rn = sat_add(e->click_ts, j->cfg.real_negative_window_ms);
        if ((fl & F_CONVERTED) && e->conv_ts <= rn) return 0;
        *deadline = rn;
        return 1;
    }
    case TIMER_ATTRIBUTION:
        if ((fl & (F_IMP | F_CTR_EMITTED | F_CLICKED)) != (F_IMP | F_CTR_EMITTED | F_CLICKED)) return 0;
        *deadline = max64(sat_add(e->click_ts, j->cfg.attribution_window_ms),
                          sat_add(e->imp_ts, j->cfg.click_window_ms));
        return 1;
    case TIMER_NKINDS:
        break;
    }
    return 0;
}

static void sync_timers(fr_join *j, fr_join_entry *e)
{
    /* Disarm first so the pushes below always fit in the reserved capacity. */
    int64_t want[TIMER_NKINDS];
    int need[TIMER_NKINDS];
    for (int k = 0; k < TIMER_NKINDS; k++) {
        need[k] = !e->tomb && policy_deadline(j, e, (timer_kind)k, &want[k]);
        uint32_t pos = e->heap_pos[k];
        if (pos != NO_POS && (!need[k] || j->heap[pos].deadline != want[k])) heap_remove(j, pos);
    }
    for (int k = 0; k < TIMER_NKINDS; k++) {
        if (!need[k] || e->heap_pos[k] != NO_POS) continue;
        size_t pos = j->heap_len++;
        heap_set(j, pos, (timer){.deadline = want[k], .e = e, .kind = (uint32_t)k});
        sift_up(j, pos);
    }
}

/* ---- dirty set ---- */

static void mark_dirty(fr_join *j, fr_join_entry *e)
{
    if (e->dirty) return;
    e->dirty = 1;
    e->dirty_next = NULL;
    e->dirty_prev = j->dirty_tail;
    if (j->dirty_tail)
        j->dirty_tail->dirty_next = e;
    else
        j->dirty_head = e;
    j->dirty_tail = e;
}

static void unlink_dirty(fr_join *j, fr_join_entry *e)
{
    if (!e->dirty) return;
    if (e->dirty_prev)
        e->dirty_prev->dirty_next = e->dirty_next;
    else
        j->dirty_head = e->dirty_next;
    if (e->dirty_next)
        e->dirty_next->dirty_prev = e->dirty_prev;
    else
        j->dirty_tail = e->dirty_prev;
    e->dirty = 0;
    e->dirty_prev = e->dirty_next = NULL;
}

/* ---- entries ---- */

static void entry_reset_state(fr_join_entry *e)
{
    e->imp_ts = e->click_ts = e->conv_ts = 0;
    e->flags = 0;
    e->tomb = 0;
    if (e->body) memset(e->body, 0, sizeof *e->body);
    for (int k = 0; k < TIMER_NKINDS; k++) e->heap_pos[k] = NO_POS;
}

static void drop_body(fr_join *j, fr_join_entry *e)
{
    if (!e->body) return;
    free(e->body);
    e->body = NULL;
    j->cached--;
}

static void entry_free(fr_join *j, fr_join_entry *e)
{
    drop_body(j, e);
    free(e);
}

/* Returns the entry to fill: the tombstone rec when there is one (the new state overwrites the
 * stored deletion), else a new one; with a zeroed body unless stub_only. All allocation happens
 * here, before any state changes. */
static fr_join_entry *entry_create(fr_join *j, fr_join_entry *rec, const char *id, size_t len, uint64_t h,
                                   int stub_only)
{
    if (heap_reserve(j, (j->live + 1) * policy_max_timers(j->pol)) != 0) return NULL;
    entry_body *body = NULL;
    if (!stub_only && !(rec && rec->body)) {
        body = calloc(1, sizeof *body);
        if (!body) return NULL;
    }
    if (rec) {
        if (body) {
            rec->body = body;
            j->cached++;
        }
        entry_reset_state(rec);
        j->live++;
        return rec;
    }
    if ((j->used + 1) * 10 > j->cap * 7 && map_grow(j) != 0) {
        free(body);
        return NULL;
    }
    fr_join_entry *e = malloc(offsetof(fr_join_entry, id) + len + 1);
    if (!e) {
        free(body);
        return NULL;
    }
    e->body = body;
    if (body) j->cached++;
    e->id_len = (uint16_t)len;
    memcpy(e->id, id, len);
    e->id[len] = '\0';
    e->dirty = 0;
    e->persisted = 0;
    e->dirty_prev = e->dirty_next = NULL;
    entry_reset_state(e);
    size_t slot = map_find_slot(j, id, len, h);
    j->slots[slot].hash = h;
    j->slots[slot].e = e;
    j->used++;
    j->live++;
    return e;
}

static void entry_delete(fr_join *j, fr_join_entry *e)
{
    for (int k = 0; k < TIMER_NKINDS; k++)
        if (e->heap_pos[k] != NO_POS) heap_remove(j, e->heap_pos[k]);
    j->live--;
    if (e->persisted) {
        /* The checkpoint holds this id: keep a tombstone until the deletion is exported. */
        drop_body(j, e);
        entry_reset_state(e);
        e->tomb = 1;
        mark_dirty(j, e);
        return;
    }
    /* Never exported: the store has nothing to delete, so the entry vanishes from the dirty set. */
    unlink_dirty(j, e);
    map_remove(j, e);
    entry_free(j, e);
}

/* ---- samples ---- */

static fr_sample make_sample(const fr_join_entry *e, fr_sample_kind kind, int64_t ts)
{
    fr_sample s;
    /* Zero the padding too: samples are compared and stored byte for byte. */
    memset(&s, 0, sizeof s);
    memcpy(&s.f, &e->body->f, sizeof s.f);
    s.scenario = e->body->scenario;
    s.kind = (int32_t)kind;
    s.ts = ts;
    return s;
}

/* s->ts is the timer's deadline; final: the entry is deleted right after (its last sample). */
static void emit_sample(fr_join *j, fr_join_entry *e, const fr_sample *s, timer_kind k, int final,
                        fr_join_emit_fn emit, void *ctx)
{
    j->n.emitted[s->kind]++;
    j->origin = (fr_join_origin){.id = e->id, .id_len = e->id_len, .deadline = s->ts, .order = (int)k,
                                 .final = final};
    if (emit) emit(s, ctx);
    j->origin = (fr_join_origin){0};
}

const fr_join_origin *fr_join_emitting(const fr_join *j) { return j->origin.id ? &j->origin : NULL; }

/* A delayed-feedback copy of a clicked impression: CVR and CTCVR carry the label known at ts.
 * The caller has set the flag that marks the copy out; the entry lives on. */
static void emit_copy(fr_join *j, fr_join_entry *e, timer_kind k, fr_sample_kind kind, int64_t ts, int label,
                      fr_join_emit_fn emit, void *ctx)
{
    fr_sample s = make_sample(e, kind, ts);
    const float w = 1.0f / e->body->sample_rate;
    s.has_label[FR_TASK_CVR] = s.has_label[FR_TASK_CTCVR] = 1;
    s.label[FR_TASK_CVR] = s.label[FR_TASK_CTCVR] = label ? 1.0f : 0.0f;
    s.weight[FR_TASK_CVR] = s.weight[FR_TASK_CTCVR] = w;
    /* A positive duplicate of a conversion within w_o of its click (fnw, fnc; or one that reached a
     * window policy after its WINDOW copy): the guard counts those, with the click, as in-window. */
    if (kind == FR_SAMPLE_DELAYED_POS)
        s.in_window = (uint8_t)(e->conv_ts <= sat_add(e->click_ts, j->cfg.observation_window_ms));
    mark_dirty(j, e);
    emit_sample(j, e, &s, k, 0, emit, ctx);
    sync_timers(j, e);
}

/* ---- timers firing ---- */

static void fire(fr_join *j, fr_join_entry *e, timer_kind k, int64_t deadline, fr_join_emit_fn emit, void *ctx)
{
    /* Every kind but ORPHAN emits: the caller has read the body back for them. */
    const float w = e->body ? 1.0f / e->body->sample_rate : 0.0f;
    switch (k) {
    case TIMER_ORPHAN:
        if (e->flags & F_CLICK_HELD) pending_to_drop(j, FR_EV_CLICK, FR_DROP_ORPHAN);
        if (e->flags & F_CONV_HELD) pending_to_drop(j, FR_EV_CONVERSION, FR_DROP_ORPHAN);
        entry_delete(j, e);
        return;
    case TIMER_CLICK_WINDOW: {
        const int clicked = (e->flags & F_CLICKED) != 0;
        fr_sample s = make_sample(e, FR_SAMPLE_CLICK_WINDOW, deadline);
        s.has_label[FR_TASK_CTR] = 1;
        s.label[FR_TASK_CTR] = clicked ? 1.0f : 0.0f;
        s.weight[FR_TASK_CTR] = w;
        if (!clicked) {
            /* No click can count any more, so the impression's CTCVR label is final too. */
            s.has_label[FR_TASK_CTCVR] = 1;
            s.weight[FR_TASK_CTCVR] = w;
        }
        pending_to_joined(j, FR_EV_IMPRESSION);
        if (clicked) pending_to_joined(j, FR_EV_CLICK);
        emit_sample(j, e, &s, k, !clicked, emit, ctx);
        if (!clicked) {
            if (e->flags & F_CONV_HELD) pending_to_drop(j, FR_EV_CONVERSION, FR_DROP_NOT_CLICKED);
            entry_delete(j, e);
            return;
        }
        e->flags |= F_CTR_EMITTED;
        mark_dirty(j, e);
        sync_timers(j, e);
        return;
    }
    case TIMER_EARLY: {
        int label = 0;
        fr_sample_kind kind = FR_SAMPLE_FAKE_NEG;
        if (j->pol->oracle) {
            /* The lookahead stands in for the future: the label the ATTRIBUTION sample will have,
             * under the same window rule as on_conversion. */
            int64_t ts = 0;
            kind = FR_SAMPLE_ORACLE;
            label = j->cfg.oracle(j->cfg.oracle_ctx, e->id, e->id_len, &ts) == 1 && ts >= e->click_ts &&
                    ts <= sat_add(e->click_ts, j->cfg.attribution_window_ms);
        }
        e->flags |= F_EARLY_DONE;
        emit_copy(j, e, k, kind, deadline, label, emit, ctx);
        return;
    }
    case TIMER_OBS_WINDOW: {
        const int pos = (e->flags & F_CONVERTED) && e->conv_ts <= deadline;
        e->flags |= F_WINDOW_DONE | (pos ? F_WINDOW_POS : 0);
        emit_copy(j, e, k, FR_SAMPLE_WINDOW, deadline, pos, emit, ctx);
        return;
    }
    case TIMER_DELAYED_POS:
        e->flags |= F_DP_DONE;
        emit_copy(j, e, k, FR_SAMPLE_DELAYED_POS, deadline, 1, emit, ctx);
        return;
    case TIMER_REAL_NEG:
        e->flags |= F_RN_DONE;
        emit_copy(j, e, k, FR_SAMPLE_REAL_NEG, deadline, 0, emit, ctx);
        return;
    case TIMER_ATTRIBUTION: {
        const int converted = (e->flags & F_CONVERTED) != 0;
        const int wait = j->pol->final_trains;
        fr_sample s = make_sample(e, wait ? FR_SAMPLE_ATTRIBUTION : FR_SAMPLE_MATURED, deadline);
        s.has_label[FR_TASK_CVR] = s.has_label[FR_TASK_CTCVR] = 1;
        s.label[FR_TASK_CVR] = s.label[FR_TASK_CTCVR] = converted ? 1.0f : 0.0f;
        s.weight[FR_TASK_CVR] = s.weight[FR_TASK_CTCVR] = w;
        if (!wait)
            s.in_window = (uint8_t)(converted && e->conv_ts <= sat_add(e->click_ts, j->cfg.observation_window_ms));
        if (converted) pending_to_joined(j, FR_EV_CONVERSION);
        emit_sample(j, e, &s, k, 1, emit, ctx);
        entry_delete(j, e);
        return;
    }
    case TIMER_NKINDS:
        break;
    }
}

/* ---- events ---- */

/* A counted click decides a held conversion: it counts only inside [click, click + window]. */
static void resolve_held_conversion(fr_join *j, fr_join_entry *e)
{
    if (!(e->flags & F_CONV_HELD) || !(e->flags & F_CLICKED)) return;
    e->flags &= (uint16_t)~F_CONV_HELD;
    if (e->conv_ts >= e->click_ts && e->conv_ts <= sat_add(e->click_ts, j->cfg.attribution_window_ms))
        e->flags |= F_CONVERTED; /* stays pending until the attribution sample */
    else
        pending_to_drop(j, FR_EV_CONVERSION, FR_DROP_OUTSIDE_WINDOW);
}

static void on_impression(fr_join *j, fr_join_entry *e, const fr_event *ev)
{
    if (e->flags & F_IMP) {
        count_drop(j, FR_EV_IMPRESSION, FR_DROP_DUPLICATE);
        return;
    }
    if (sat_add(ev->ts, j->cfg.click_window_ms) < j->watermark) {
        /* Only reachable with held events; they stay until their own orphan timer. */
        count_drop(j, FR_EV_IMPRESSION, FR_DROP_LATE);
        return;
    }
    e->flags |= F_IMP;
    e->imp_ts = ev->ts;
    entry_body *b = e->body;
    b->scenario = ev->scenario;
    b->sample_rate = ev->sample_rate;
    /* Field by field into the zeroed struct: the caller's padding bytes must not reach samples. */
    memcpy(b->f.cat, ev->features.cat, sizeof b->f.cat);
    memcpy(b->f.num, ev->features.num, sizeof b->f.num);
    memcpy(b->f.multi, ev->features.multi, sizeof b->f.multi);
    memcpy(b->f.multi_len, ev->features.multi_len, sizeof b->f.multi_len);
    count_pending(j, FR_EV_IMPRESSION);
    if (e->flags & F_CLICK_HELD) {
        e->flags &= (uint16_t)~F_CLICK_HELD;
        if (e->click_ts >= e->imp_ts && e->click_ts <= sat_add(e->imp_ts, j->cfg.click_window_ms))
            e->flags |= F_CLICKED;
        else
            pending_to_drop(j, FR_EV_CLICK, FR_DROP_OUTSIDE_WINDOW);
    }
    /* A held conversion without a counted click waits for the click window (NOT_CLICKED). */
    resolve_held_conversion(j, e);
    mark_dirty(j, e);
    sync_timers(j, e);
}

static void on_click(fr_join *j, fr_join_entry *e, const fr_event *ev)
{
    if (e->flags & F_CLICK_SEEN) {
        count_drop(j, FR_EV_CLICK, FR_DROP_DUPLICATE);
        return;
    }
    if (e->flags & F_IMP) {
        const int64_t close = sat_add(e->imp_ts, j->cfg.click_window_ms);
        if ((e->flags & F_CTR_EMITTED) || close < j->watermark) {
            count_drop(j, FR_EV_CLICK, FR_DROP_LATE);
            return;
        }
        e->flags |= F_CLICK_SEEN;
        if (ev->ts < e->imp_ts || ev->ts > close) {
            count_drop(j, FR_EV_CLICK, FR_DROP_OUTSIDE_WINDOW);
        } else {
            e->flags |= F_CLICKED;
            e->click_ts = ev->ts;
            count_pending(j, FR_EV_CLICK);
            resolve_held_conversion(j, e);
        }
    } else {
        if (ev->ts < j->watermark) {
            count_drop(j, FR_EV_CLICK, FR_DROP_LATE);
            return;
        }
        e->flags |= F_CLICK_SEEN | F_CLICK_HELD;
        e->click_ts = ev->ts;
        count_pending(j, FR_EV_CLICK);
    }
    mark_dirty(j, e);
    sync_timers(j, e);
}

static void on_conversion(fr_join *j, fr_join_entry *e, const fr_event *ev)
{
    /* One conversion per impression: the labels are per impression, so a second distinct
     * conversion adds nothing and is counted as a duplicate. */
    if (e->flags & F_CONV_SEEN) {
        count_drop(j, FR_EV_CONVERSION, FR_DROP_DUPLICATE);
        return;
    }
    if (e->flags & F_CLICKED) {
        /* The entry lives until its attribution sample, so the window alone decides (a finished
         * impression has no entry: LATE in fr_join_add). */
        const int64_t close = sat_add(e->click_ts, j->cfg.attribution_window_ms);
        e->flags |= F_CONV_SEEN;
        if (ev->ts < e->click_ts || ev->ts > close) {
            count_drop(j, FR_EV_CONVERSION, FR_DROP_OUTSIDE_WINDOW);
        } else {
            e->flags |= F_CONVERTED;
            e->conv_ts = ev->ts;
            e->body->conv_value = ev->value;
            count_pending(j, FR_EV_CONVERSION);
        }
    } else if ((e->flags & F_IMP) && (e->flags & F_CTR_EMITTED)) {
        /* The click window closed without a click (policies that keep such entries). */
        e->flags |= F_CONV_SEEN;
        count_drop(j, FR_EV_CONVERSION, FR_DROP_NOT_CLICKED);
    } else {
        if (!(e->flags & F_IMP) && ev->ts < j->watermark) {
            count_drop(j, FR_EV_CONVERSION, FR_DROP_LATE);
            return;
        }
        /* Held until a click counts (or the window closes, or the impression never comes). */
        e->flags |= F_CONV_SEEN | F_CONV_HELD;
        e->conv_ts = ev->ts;
        e->body->conv_value = ev->value;
        count_pending(j, FR_EV_CONVERSION);
    }
    mark_dirty(j, e);
    sync_timers(j, e);
}

/* ---- public API ---- */

static int load_body(fr_join *j, fr_join_entry *e);

fr_join *fr_join_create(const fr_join_config *c)
{
    if (!c || c->click_window_ms < 0 || c->attribution_window_ms < 0) return NULL;
    const fr_policy *pol = fr_policy_get(c->policy);
    if (!pol) return NULL;
    if (c->observation_window_ms < 0 || c->observation_window_ms > c->attribution_window_ms) return NULL;
    const int64_t rn = c->real_negative_window_ms ? c->real_negative_window_ms : c->attribution_window_ms;
    if (rn < c->observation_window_ms || rn > c->attribution_window_ms) return NULL;
    if (pol->oracle && !c->oracle) return NULL;
    fr_join *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    j->cfg = *c;
    j->pol = pol;
    j->cfg.real_negative_window_ms = rn;
    j->watermark = INT64_MIN;
    j->cap = 64;
    j->slots = calloc(j->cap, sizeof *j->slots);
    if (!j->slots) {
        free(j);
        return NULL;
    }
    return j;
}

void fr_join_free(fr_join *j)
{
    if (!j) return;
    for (size_t i = 0; i < j->cap; i++)
        if (j->slots[i].e) entry_free(j, j->slots[i].e);
    free(j->slots);
    free(j->heap);
    free(j);
}

int fr_join_add(fr_join *j, const fr_event *ev, fr_join_emit_fn emit, void *ctx)
{
    /* Nothing in the wait policy emits on arrival; later policies will. */
    (void)emit;
    (void)ctx;
    if ((unsigned)ev->type >= FR_EV_NTYPES || ev->id_len == 0 || ev->id_len > FR_ID_MAX) return -1;
    const uint64_t h = hash_id(ev->id, ev->id_len);
    fr_join_entry *rec = j->slots[map_find_slot(j, ev->id, ev->id_len, h)].e;
    fr_join_entry *e = rec && !rec->tomb ? rec : NULL;
    if (!e) {
        /* A new entry is only worth creating for an event that can still be used. */
        const int late = ev->type == FR_EV_IMPRESSION ? sat_add(ev->ts, j->cfg.click_window_ms) < j->watermark
                                                      : ev->ts < j->watermark;
        if (late) {
            j->n.events[ev->type]++;
            count_drop(j, ev->type, FR_DROP_LATE);
            return 0;
        }
        e = entry_create(j, rec, ev->id, ev->id_len, h, 0);
        if (!e) return -1;
    } else if (!e->body && load_body(j, e) != 0) {
        return -1;
    }
    j->n.events[ev->type]++;
    switch (ev->type) {
    case FR_EV_IMPRESSION: on_impression(j, e, ev); break;
    case FR_EV_CLICK: on_click(j, e, ev); break;
    case FR_EV_CONVERSION: on_conversion(j, e, ev); break;
    case FR_EV_NTYPES: break;
    }
    return 0;
}

int fr_join_advance(fr_join *j, int64_t watermark, fr_join_emit_fn emit, void *ctx)
{
    if (watermark <= j->watermark) return 0;
    while (j->heap_len > 0 && j->heap[0].deadline < watermark) {
        timer t = j->heap[0];
        /* Read back before the timer leaves the heap: a failed read leaves it armed. */
        if (!t.e->body && t.kind != TIMER_ORPHAN && load_body(j, t.e) != 0) return -1;
        heap_remove(j, 0);
        fire(j, t.e, (timer_kind)t.kind, t.deadline, emit, ctx);
    }
    /* Set last: nothing above reads it, and a failure leaves the old one for a retry. */
    j->watermark = watermark;
    return 0;
}

int64_t fr_join_watermark(const fr_join *j) { return j->watermark; }

int64_t fr_join_last_deadline(const fr_join *j)
{
    int64_t last = INT64_MIN;
    for (size_t i = 0; i < j->heap_len; i++)
        if (j->heap[i].deadline > last) last = j->heap[i].deadline;
    return last;
}

const fr_join_counters *fr_join_get_counters(const fr_join *j) { return &j->n; }

const char *fr_sample_kind_name(int kind)
{
    static const char *const names[FR_SAMPLE_NKINDS] = {"click_window", "attribution", "fake_negative",
                                                         "window",       "delayed_positive", "real_negative",
                                                         "oracle",       "matured"};
    return kind >= 0 && kind < FR_SAMPLE_NKINDS ? names[kind] : "unknown";
}

const char *fr_join_drop_name(fr_drop_reason r)
{
    switch (r) {
    case FR_DROP_DUPLICATE: return "duplicate";
    case FR_DROP_LATE: return "late";
    case FR_DROP_ORPHAN: return "orphan";
    case FR_DROP_OUTSIDE_WINDOW: return "outside_window";
    case FR_DROP_NOT_CLICKED: return "not_clicked";
    case FR_DROP_NREASONS: break;
    }
    return "unknown";
}

size_t fr_join_entry_count(const fr_join *j) { return j->live; }

int fr_join_foreach_dirty(const fr_join *j, fr_join_entry_fn fn, void *ctx)
{
    uint8_t buf[ENTRY_BYTES];
    for (const fr_join_entry *e = j->dirty_head; e; e = e->dirty_next) {
        int rc;
        if (e->tomb) {
            rc = fn(e->id, e->id_len, NULL, 0, ctx);
        } else {
            if (!e->body) return -1; /* cannot happen: only clean entries are spilled */
            fr_join_entry_serialise(e, buf);
            rc = fn(e->id, e->id_len, buf, sizeof buf, ctx);
        }
        if (rc != 0) return rc;
    }
    return 0;
}

void fr_join_clear_dirty(fr_join *j)
{
    fr_join_entry *e = j->dirty_head;
    while (e) {
        fr_join_entry *next = e->dirty_next;
        e->dirty = 0;
        e->dirty_prev = e->dirty_next = NULL;
        if (e->tomb) {
            map_remove(j, e);
            entry_free(j, e);
        } else {
            e->persisted = 1;
        }
        e = next;
    }
    j->dirty_head = j->dirty_tail = NULL;
}

/* Reads a spilled entry's body back from the store. The stored entry must be the one the stub
 * was made from: the store is written only by checkpoints, and only clean entries spill. */
static int load_body(fr_join *j, fr_join_entry *e)
{
    uint8_t buf[ENTRY_BYTES];
    long n = j->store.get ? j->store.get(j->store.ctx, e->id, e->id_len, buf, sizeof buf) : -2;
    parsed_entry pe;
    const char *why = NULL, *bad = NULL;
    if (n == -2)
        why = "the store could not be read";
    else if (n < 0)
        why = "the store does not hold it";
    else if ((size_t)n != sizeof buf || fr_join_entry_parse(buf, (size_t)n, j->cfg.n_scenarios, &pe, &bad) != 0)
        why = "the stored entry is malformed";
    else if (pe.flags != e->flags || pe.imp_ts != e->imp_ts || pe.click_ts != e->click_ts || pe.conv_ts != e->conv_ts)
        why = "the stored entry differs from the one in memory (was the checkpoint directory changed?)";
    if (!why) {
        e->body = malloc(sizeof *e->body);
        if (!e->body) why = "out of memory";
    }
    if (why) {
        snprintf(j->err, sizeof j->err, "joiner: reading back the state of id \"%.*s\" failed: %s%s%s", (int)e->id_len,
                 e->id, why, bad ? ": " : "", bad ? bad : "");
        return -1;
    }
    *e->body = pe.body;
    j->cached++;
    return 0;
}

int fr_join_load_entry(fr_join *j, const char *id, size_t id_len, const void *bytes, size_t len, char *err,
                       size_t errlen)
{
    if (!id || id_len == 0 || id_len > FR_ID_MAX) {
        snprintf(err, errlen, "join entry with an id of %zu bytes (1 to %d)", id_len, FR_ID_MAX);
        return -1;
    }
    const int idl = (int)id_len;
    parsed_entry pe;
    const char *why;
    if (fr_join_entry_parse(bytes, len, j->cfg.n_scenarios, &pe, &why) != 0) {
        snprintf(err, errlen, "join entry \"%.*s\" (%zu bytes): %s", idl, id, len, why);
        return -1;
    }
    const uint64_t h = hash_id(id, id_len);
    if (j->slots[map_find_slot(j, id, id_len, h)].e) {
        snprintf(err, errlen, "join entry \"%.*s\" loaded twice", idl, id);
        return -1;
    }
    fr_join_entry tmp;
    memset(&tmp, 0, sizeof tmp);
    tmp.flags = pe.flags;
    tmp.imp_ts = pe.imp_ts;
    tmp.click_ts = pe.click_ts;
    tmp.conv_ts = pe.conv_ts;
    /* An entry that needs no timer would never be finished: it cannot come from this policy. */
    int any = 0;
    for (int k = 0; k < TIMER_NKINDS; k++) {
        int64_t d;
        any |= policy_deadline(j, &tmp, (timer_kind)k, &d);
    }
    if (!any) {
        snprintf(err, errlen, "join entry \"%.*s\": a state join.policy \"%s\" never leaves (flags 0x%x)", idl, id,
                 fr_policy_name(j->cfg.policy), (unsigned)pe.flags);
        return -1;
    }

    /* With a store, a restored entry stays spilled until it is needed: restoring takes the
     * memory of the stubs only. */
    fr_join_entry *e = entry_create(j, NULL, id, id_len, h, j->store.get != NULL);
    if (!e) {
        snprintf(err, errlen, "join entry \"%.*s\": out of memory", idl, id);
        return -1;
    }
    e->flags = pe.flags;
    e->imp_ts = pe.imp_ts;
    e->click_ts = pe.click_ts;
    e->conv_ts = pe.conv_ts;
    if (e->body) *e->body = pe.body;
    e->persisted = 1;
    sync_timers(j, e);
    return 0;
}

void fr_join_set_store(fr_join *j, const fr_join_store *store)
{
    if (store)
        j->store = *store;
    else
        memset(&j->store, 0, sizeof j->store);
}

/* The earliest deadline among the entry's armed timers (INT64_MAX: none). */
static int64_t next_deadline(const fr_join *j, const fr_join_entry *e)
{
    int64_t d = INT64_MAX;
    for (int k = 0; k < TIMER_NKINDS; k++)
        if (e->heap_pos[k] != NO_POS && j->heap[e->heap_pos[k]].deadline < d) d = j->heap[e->heap_pos[k]].deadline;
    return d;
}

size_t fr_join_spill(fr_join *j, size_t keep)
{
    if (!j->store.get) return 0;
    size_t n = 0;
    /* Two sweeps of a clock hand over the slots (each resumes where the last stopped). The first
     * spills only entries whose next timer is further than the short windows (click, observation)
     * ahead of the watermark, i.e. clicks waiting for their attribution window: spilling an
     * entry whose timer fires in minutes only buys a read back in minutes. The second, needed
     * when those are not enough, takes any clean entry. */
    const int64_t horizon = sat_add(j->watermark == INT64_MIN ? INT64_MIN + 1 : j->watermark,
                                    j->cfg.click_window_ms > j->cfg.observation_window_ms ? j->cfg.click_window_ms
                                                                                          : j->cfg.observation_window_ms);
    for (int pass = 0; pass < 2; pass++) {
        for (size_t seen = 0; j->cached > keep && seen < j->cap; seen++) {
            j->spill_hand = (j->spill_hand + 1) & (j->cap - 1);
            fr_join_entry *e = j->slots[j->spill_hand].e;
            if (!e || !e->body || e->dirty || !e->persisted || e->tomb) continue;
            if (pass == 0 && next_deadline(j, e) <= horizon) continue;
            drop_body(j, e);
            n++;
        }
    }
    return n;
}

size_t fr_join_cached_count(const fr_join *j) { return j->cached; }

const char *fr_join_error(const fr_join *j) { return j->err[0] ? j->err : NULL; }

int fr_join_check_pending(const fr_join *j, char *err, size_t errlen)
{
    uint64_t held[FR_EV_NTYPES] = {0};
    for (size_t i = 0; i < j->cap; i++) {
        const fr_join_entry *e = j->slots[i].e;
        if (!e || e->tomb) continue;
        const uint16_t fl = e->flags;
        held[FR_EV_IMPRESSION] += (fl & F_IMP) && !(fl & F_CTR_EMITTED);
        held[FR_EV_CLICK] += (fl & F_CLICK_HELD) || ((fl & F_CLICKED) && !(fl & F_CTR_EMITTED));
        held[FR_EV_CONVERSION] += (fl & (F_CONVERTED | F_CONV_HELD)) != 0;
    }
    for (int t = 0; t < FR_EV_NTYPES; t++) {
        if (held[t] == j->n.pending[t]) continue;
        snprintf(err, errlen,
                 "the join counters count %" PRIu64 " pending %s events but the stored join entries hold %" PRIu64,
                 j->n.pending[t], fr_event_type_name((fr_event_type)t), held[t]);
        return -1;
    }
    return 0;
}
