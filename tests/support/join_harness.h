/* tests/support/join_harness.h: what the join's tests share -- a sink that collects samples, events
 * built directly (no JSON), the accounting invariant checked after every step, and the expected
 * samples and counters. Windows are short (click 10 ms, attribution 100 ms) so the edges are
 * readable. For tests/test_join.c and tests/test_join_restore.c. */
#ifndef FR_TEST_JOIN_HARNESS_H
#define FR_TEST_JOIN_HARNESS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fr_join.h"

enum { CW = 10, AW = 100 };

/* ---- harness ---- */

typedef struct {
    fr_sample *s;
    size_t n, cap;
    fr_join *j; /* set: check each sample's origin (fr_join_emitting), as the merge reads it */
} sink;

/* A stable per-id tag in the features, so a sample says which impression it came from. */
static inline uint64_t tag_of(const char *id)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (const char *p = id; *p; p++) h = (h ^ (unsigned char)*p) * 0x100000001b3ull;
    return h | 1;
}

static inline void collect(const fr_sample *s, void *ctx)
{
    sink *k = ctx;
    if (k->j) {
        /* The origin names the sample's impression and deadline; final marks its last sample. */
        const fr_join_origin *o = fr_join_emitting(k->j);
        assert_non_null(o);
        assert_int_equal(o->deadline, s->ts);
        assert_int_equal(o->id_len, strlen(o->id));
        if (s->f.cat[1]) assert_true(s->f.cat[1] == tag_of(o->id));
        const int last = s->kind == FR_SAMPLE_ATTRIBUTION || s->kind == FR_SAMPLE_MATURED ||
                         (s->kind == FR_SAMPLE_CLICK_WINDOW && s->label[FR_TASK_CTR] == 0);
        assert_int_equal(o->final, last);
    }
    if (k->n == k->cap) {
        k->cap = k->cap ? 2 * k->cap : 64;
        k->s = realloc(k->s, k->cap * sizeof *k->s);
        assert_non_null(k->s);
    }
    k->s[k->n++] = *s;
}

/* The config every new join (and every restore) gets; the delayed-feedback tests switch policy. */
static fr_join_config g_cfg = {.click_window_ms = CW, .attribution_window_ms = AW, .policy = FR_POLICY_WAIT};

static inline fr_join *new_join(void)
{
    fr_join *j = fr_join_create(&g_cfg);
    assert_non_null(j);
    return j;
}

static inline void check_invariant(const fr_join *j)
{
    const fr_join_counters *n = fr_join_get_counters(j);
    for (int t = 0; t < FR_EV_NTYPES; t++) {
        uint64_t dropped = 0;
        for (int r = 0; r < FR_DROP_NREASONS; r++) dropped += n->dropped[t][r];
        assert_int_equal(n->events[t], n->joined[t] + n->pending[t] + dropped);
    }
}

static inline fr_features features_of(const char *id, int32_t scenario)
{
    fr_features f;
    memset(&f, 0, sizeof f);
    f.cat[0] = 1000u + (uint64_t)scenario;
    f.cat[1] = tag_of(id);
    f.num[0] = 3.5f;
    f.multi[0][0] = 77;
    f.multi[0][1] = 78;
    f.multi_len[0] = 2;
    return f;
}

static inline fr_event make_event(fr_event_type type, const char *id, int64_t ts)
{
    fr_event ev;
    /* Garbage in every unused byte: the join must not let it reach samples or blobs. */
    memset(&ev, 0xa5, sizeof ev);
    ev.type = type;
    ev.id_len = (uint32_t)strlen(id);
    memcpy(ev.id, id, ev.id_len + 1);
    ev.ts = ts;
    ev.scenario = 0;
    ev.sample_rate = 1.0f;
    ev.value = 0;
    fr_features f = features_of(id, 0);
    memcpy(ev.features.cat, f.cat, sizeof f.cat);
    memcpy(ev.features.num, f.num, sizeof f.num);
    memcpy(ev.features.multi, f.multi, sizeof f.multi);
    memcpy(ev.features.multi_len, f.multi_len, sizeof f.multi_len);
    return ev;
}

static inline fr_event imp_ev(const char *id, int64_t ts, int32_t scenario, float rate)
{
    fr_event ev = make_event(FR_EV_IMPRESSION, id, ts);
    ev.scenario = scenario;
    ev.sample_rate = rate;
    ev.features.cat[0] = 1000u + (uint64_t)scenario;
    return ev;
}

typedef struct {
    fr_join *j;
    sink out;
} harness;

static inline void h_init(harness *h)
{
    memset(h, 0, sizeof *h);
    h->j = new_join();
}

static inline void h_free(harness *h)
{
    fr_join_free(h->j);
    free(h->out.s);
}

static inline void add(harness *h, fr_event ev)
{
    assert_int_equal(fr_join_add(h->j, &ev, collect, &h->out), 0);
    check_invariant(h->j);
}
static inline void imp(harness *h, const char *id, int64_t ts) { add(h, imp_ev(id, ts, 0, 1.0f)); }
static inline void click(harness *h, const char *id, int64_t ts) { add(h, make_event(FR_EV_CLICK, id, ts)); }
static inline void conv(harness *h, const char *id, int64_t ts) { add(h, make_event(FR_EV_CONVERSION, id, ts)); }
static inline void adv(harness *h, int64_t wm)
{
    fr_join_advance(h->j, wm, collect, &h->out);
    check_invariant(h->j);
}

/* ---- expectations ---- */

typedef struct {
    int events, joined, pending, dup, late, orphan, outside, not_clicked;
} counts;

static inline void expect_counts(const fr_join *j, fr_event_type t, counts c)
{
    const fr_join_counters *n = fr_join_get_counters(j);
    assert_int_equal(n->events[t], c.events);
    assert_int_equal(n->joined[t], c.joined);
    assert_int_equal(n->pending[t], c.pending);
    assert_int_equal(n->dropped[t][FR_DROP_DUPLICATE], c.dup);
    assert_int_equal(n->dropped[t][FR_DROP_LATE], c.late);
    assert_int_equal(n->dropped[t][FR_DROP_ORPHAN], c.orphan);
    assert_int_equal(n->dropped[t][FR_DROP_OUTSIDE_WINDOW], c.outside);
    assert_int_equal(n->dropped[t][FR_DROP_NOT_CLICKED], c.not_clicked);
}

static inline void expect_emitted(const fr_join *j, int click_window, int attribution)
{
    const fr_join_counters *n = fr_join_get_counters(j);
    assert_int_equal(n->emitted[FR_SAMPLE_CLICK_WINDOW], click_window);
    assert_int_equal(n->emitted[FR_SAMPLE_ATTRIBUTION], attribution);
}

static inline void expect_common(const fr_sample *s, const char *id, int32_t scenario, int kind, int64_t ts)
{
    assert_int_equal(s->kind, kind);
    assert_int_equal(s->ts, ts);
    assert_int_equal(s->scenario, scenario);
    fr_features f = features_of(id, scenario);
    assert_memory_equal(&s->f, &f, sizeof f);
}

static inline void expect_f(float got, float want) { assert_true(got == want); }

/* CLICK_WINDOW sample: CTR label; CTCVR = 0 too when not clicked; never CVR. */
static inline void expect_ctr_w(const fr_sample *s, const char *id, int64_t ts, int clicked, float w, int32_t scenario)
{
    expect_common(s, id, scenario, FR_SAMPLE_CLICK_WINDOW, ts);
    assert_int_equal(s->has_label[FR_TASK_CTR], 1);
    expect_f(s->label[FR_TASK_CTR], clicked ? 1.0f : 0.0f);
    expect_f(s->weight[FR_TASK_CTR], w);
    assert_int_equal(s->has_label[FR_TASK_CVR], 0);
    expect_f(s->label[FR_TASK_CVR], 0.0f);
    expect_f(s->weight[FR_TASK_CVR], 0.0f);
    assert_int_equal(s->has_label[FR_TASK_CTCVR], clicked ? 0 : 1);
    expect_f(s->label[FR_TASK_CTCVR], 0.0f);
    expect_f(s->weight[FR_TASK_CTCVR], clicked ? 0.0f : w);
}
static inline void expect_ctr(const fr_sample *s, const char *id, int64_t ts, int clicked)
{
    expect_ctr_w(s, id, ts, clicked, 1.0f, 0);
}

/* ATTRIBUTION sample: CVR and CTCVR labels, no CTR. */
static inline void expect_attr_w(const fr_sample *s, const char *id, int64_t ts, int converted, float w, int32_t scenario)
{
    expect_common(s, id, scenario, FR_SAMPLE_ATTRIBUTION, ts);
    assert_int_equal(s->has_label[FR_TASK_CTR], 0);
    expect_f(s->label[FR_TASK_CTR], 0.0f);
    expect_f(s->weight[FR_TASK_CTR], 0.0f);
    for (int t = FR_TASK_CVR; t <= FR_TASK_CTCVR; t++) {
        assert_int_equal(s->has_label[t], 1);
        expect_f(s->label[t], converted ? 1.0f : 0.0f);
        expect_f(s->weight[t], w);
    }
}
static inline void expect_attr(const fr_sample *s, const char *id, int64_t ts, int converted)
{
    expect_attr_w(s, id, ts, converted, 1.0f, 0);
}


#endif
