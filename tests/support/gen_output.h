/* gen_output.h: running the generator into memory and reading its output back for the generator
 * tests (test_gen.c, test_gen_real.c): the EVENTS.md objects checked with jansson as they are
 * parsed, the truth TSV, an id map, and the statistics helpers. Header-only, included after
 * cmocka.h. Ownership: gen/parse_* allocate what they return; the caller frees it (out_free, free). */
#ifndef FR_TEST_GEN_OUTPUT_H
#define FR_TEST_GEN_OUTPUT_H

#include <ctype.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fr_gen.h"

static const int64_t CLICK_WINDOW_MS = 30 * 60000;
static const int64_t ATTR_WINDOW_MS = 7 * 86400000LL;
static const char *const SCEN[4] = {"video", "browser", "music", "third_party"};
static const double SCEN_SHARE[4] = {0.50, 0.30, 0.17, 0.03};

/* ------------------------------------------------------------------ running the generator */

typedef struct {
    char *ev, *tr;
    size_t ev_len, tr_len;
} output;

static inline void out_free(output *o)
{
    free(o->ev);
    free(o->tr);
    memset(o, 0, sizeof *o);
}

static inline int gen(const fr_gen_opts *o, output *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    FILE *ev = open_memstream(&out->ev, &out->ev_len), *tr = open_memstream(&out->tr, &out->tr_len);
    assert_non_null(ev);
    assert_non_null(tr);
    int rc = fr_gen_run(o, ev, tr, err, errlen);
    fclose(ev);
    fclose(tr);
    return rc;
}

static inline void gen_ok(const fr_gen_opts *o, output *out)
{
    char err[256] = "";
    int rc = gen(o, out, err, sizeof err);
    if (rc != 0)
        fail_msg("fr_gen_run: %s", err);
}

/* A small run: 60k impressions over 3 days in a world a tenth of the default size, so the
 * sanitizer build stays fast; the shared fixture uses the default world. */
static inline void small_opts(fr_gen_opts *o)
{
    fr_gen_defaults(o);
    o->impressions = 60000;
    o->days = 3.0;
    o->n_users = 20000;
    o->n_ads = 4000;
}

/* ------------------------------------------------------------------ parsing */

enum { T_IMP = 0, T_CLICK = 1, T_CONV = 2 };

typedef struct {
    int type;
    uint64_t id;
    int64_t ts;
    int scen, hour, nrecent, has_sr, adv, age;
    char user[16], ad[16], device[16], category[24];
    char recent[8][16];
    double value, price;
} pev;

typedef struct {
    uint64_t id;
    int64_t ts, click_ts, conv_ts;
    int scen, clicked, converted;
    double p_ctr, p_cvr, p_cvr_7d;
    double p_star, p_ip, p_dp; /* delayed-feedback columns 11-13 */
} trow;

static inline uint64_t parse_id(const char *s)
{
    assert_int_equal(strlen(s), 18);
    assert_true(s[0] == 'i' && s[1] == '-');
    char *end;
    uint64_t v = strtoull(s + 2, &end, 16);
    assert_true(*end == '\0');
    return v;
}

static inline int scen_index(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(s, SCEN[i]) == 0)
            return i;
    fail_msg("unknown scenario %s", s);
    return -1;
}

static inline void copy_str(char *dst, size_t cap, json_t *v)
{
    assert_true(json_is_string(v));
    const char *s = json_string_value(v);
    assert_true(strlen(s) < cap);
    strcpy(dst, s);
}

/* The number after `"key":` in the raw line has exactly two decimals. */
static inline void assert_two_decimals(const char *line, size_t len, const char *key)
{
    char pat[32];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    /* A bounded copy: strndup on a line inside the big buffer would, under ASan's
     * strict_string_checks, scan to the end of the whole buffer for every line. */
    char *copy = malloc(len + 1);
    assert_non_null(copy);
    memcpy(copy, line, len);
    copy[len] = '\0';
    const char *p = strstr(copy, pat);
    assert_non_null(p);
    p += strlen(pat);
    int digits = 0;
    while (isdigit((unsigned char)*p))
        p++, digits++;
    assert_true(digits >= 1);
    assert_true(p[0] == '.' && isdigit((unsigned char)p[1]) && isdigit((unsigned char)p[2]));
    assert_true(p[3] == ',' || p[3] == '}');
    free(copy);
}

/* Parses every line with jansson and checks the EVENTS.md shape. Returns the count. */
static inline size_t parse_events(const output *o, pev **out)
{
    size_t cap = 1024, n = 0;
    pev *v = malloc(cap * sizeof *v);
    assert_non_null(v);
    const char *p = o->ev, *end = o->ev + o->ev_len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        assert_non_null(nl); /* every line is terminated */
        size_t len = (size_t)(nl - p);
        json_error_t jerr;
        json_t *j = json_loadb(p, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!j)
            fail_msg("line %zu: %s", n + 1, jerr.text);
        assert_true(json_is_object(j));
        if (n == cap) {
            cap *= 2;
            v = realloc(v, cap * sizeof *v);
            assert_non_null(v);
        }
        pev *e = &v[n++];
        memset(e, 0, sizeof *e);
        const char *type = json_string_value(json_object_get(j, "type"));
        assert_non_null(type);
        json_t *id = json_object_get(j, "id"), *ts = json_object_get(j, "ts");
        assert_true(json_is_string(id));
        e->id = parse_id(json_string_value(id));
        assert_true(json_is_integer(ts));
        e->ts = json_integer_value(ts);
        if (strcmp(type, "impression") == 0) {
            e->type = T_IMP;
            assert_int_equal(json_object_size(j), json_object_get(j, "sample_rate") ? 6 : 5);
            json_t *sc = json_object_get(j, "scenario"), *sr = json_object_get(j, "sample_rate"),
                   *f = json_object_get(j, "features");
            assert_true(json_is_string(sc));
            e->scen = scen_index(json_string_value(sc));
            if (sr) {
                assert_true(json_is_real(sr));
                assert_true(json_real_value(sr) == 1.0);
                e->has_sr = 1;
            }
            assert_true(json_is_object(f));
            assert_int_equal(json_object_size(f), 9);
            copy_str(e->user, sizeof e->user, json_object_get(f, "user_id"));
            copy_str(e->ad, sizeof e->ad, json_object_get(f, "ad_id"));
            copy_str(e->device, sizeof e->device, json_object_get(f, "device"));
            copy_str(e->category, sizeof e->category, json_object_get(f, "category"));
            assert_true(e->user[0] == 'u' && e->ad[0] == 'a');
            char tmp[16];
            copy_str(tmp, sizeof tmp, json_object_get(f, "advertiser"));
            assert_true(strncmp(tmp, "adv", 3) == 0);
            e->adv = atoi(tmp + 3);
            copy_str(tmp, sizeof tmp, json_object_get(f, "user_age"));
            assert_true(strchr(tmp, '-') || strcmp(tmp, "65+") == 0);
            e->age = tmp[0] - '1'; /* "18-24" .. "65+" -> 0 .. 5 */
            assert_true(e->age >= 0 && e->age < 6);
            assert_true(!strcmp(e->device, "android") || !strcmp(e->device, "ios") || !strcmp(e->device, "pc"));
            json_t *hour = json_object_get(f, "hour"), *price = json_object_get(f, "price"),
                   *rec = json_object_get(f, "recent_ads");
            assert_true(json_is_integer(hour));
            e->hour = (int)json_integer_value(hour);
            assert_int_equal(e->hour, (int)((e->ts / 3600000) % 24));
            assert_true(json_is_real(price));
            e->price = json_real_value(price);
            assert_true(e->price >= 0.5 && e->price <= 100.0);
            assert_two_decimals(p, len, "price");
            assert_true(json_is_array(rec));
            assert_true(json_array_size(rec) <= 8);
            e->nrecent = (int)json_array_size(rec);
            for (int k = 0; k < e->nrecent; k++) {
                copy_str(e->recent[k], sizeof e->recent[k], json_array_get(rec, (size_t)k));
                assert_true(e->recent[k][0] == 'a');
            }
        } else if (strcmp(type, "click") == 0) {
            e->type = T_CLICK;
            assert_int_equal(json_object_size(j), 3);
        } else if (strcmp(type, "conversion") == 0) {
            e->type = T_CONV;
            assert_int_equal(json_object_size(j), 4);
            json_t *val = json_object_get(j, "value");
            assert_true(json_is_real(val));
            e->value = json_real_value(val);
            assert_true(e->value > 0.0);
            assert_two_decimals(p, len, "value");
        } else {
            fail_msg("unknown type %s", type);
        }
        json_decref(j);
        p = nl + 1;
    }
    *out = v;
    return n;
}

/* The first 10 columns are those `freshet truth` reads by position; the delayed-feedback ones follow. */
static const char TRUTH_HEADER[] =
    "id\tts\tscenario\tp_ctr\tp_cvr\tclicked\tconverted\tp_cvr_7d\tclick_ts\tconv_ts\tp_star\tp_ip\tp_dp\n";

static inline size_t parse_truth(const output *o, trow **out)
{
    const char *hdr = TRUTH_HEADER;
    assert_true(o->tr_len >= strlen(hdr));
    assert_memory_equal(o->tr, hdr, strlen(hdr));
    size_t cap = 1024, n = 0;
    trow *v = malloc(cap * sizeof *v);
    assert_non_null(v);
    /* Lines are found with memchr, not strtok: ASan's strict_string_checks (tests/run.sh) makes
     * every strtok call scan the whole rest of the buffer. */
    const char *p = o->tr + strlen(hdr), *end = o->tr + o->tr_len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        assert_non_null(nl);
        char line[256];
        assert_true((size_t)(nl - p) < sizeof line);
        memcpy(line, p, (size_t)(nl - p));
        line[nl - p] = '\0';
        p = nl + 1;
        if (n == cap) {
            cap *= 2;
            v = realloc(v, cap * sizeof *v);
            assert_non_null(v);
        }
        trow *t = &v[n++];
        char id[32], scen[32];
        int got = sscanf(line, "%31s\t%" SCNd64 "\t%31s\t%lf\t%lf\t%d\t%d\t%lf\t%" SCNd64 "\t%" SCNd64 "\t%lf\t%lf\t%lf",
                         id, &t->ts, scen, &t->p_ctr, &t->p_cvr, &t->clicked, &t->converted, &t->p_cvr_7d,
                         &t->click_ts, &t->conv_ts, &t->p_star, &t->p_ip, &t->p_dp);
        assert_int_equal(got, 13);
        assert_true(t->p_star == t->p_cvr_7d);
        assert_true(t->p_ip >= 0 && t->p_dp >= 0 && fabs(t->p_ip + t->p_dp - t->p_star) < 2e-6);
        t->id = parse_id(id);
        t->scen = scen_index(scen);
        assert_true(t->p_ctr > 0.0 && t->p_ctr < 1.0 && t->p_cvr > 0.0 && t->p_cvr < 1.0);
        assert_true(t->p_cvr_7d <= t->p_cvr);
        assert_true(t->clicked == 0 || t->clicked == 1);
        assert_true(t->converted == 0 || t->converted == 1);
    }
    *out = v;
    return n;
}

/* Open addressing from impression id to its index. */
typedef struct {
    uint64_t *key;
    size_t *val;
    size_t mask;
} idmap;

static inline void idmap_init(idmap *m, size_t n)
{
    size_t cap = 16;
    while (cap < 2 * n)
        cap *= 2;
    m->key = calloc(cap, sizeof *m->key);
    m->val = calloc(cap, sizeof *m->val);
    assert_true(m->key && m->val);
    m->mask = cap - 1;
}

static inline void idmap_free(idmap *m)
{
    free(m->key);
    free(m->val);
}

/* Returns 0 if inserted, 1 if the id was already there. Ids are never 0 in practice; 0 marks empty. */
static inline int idmap_put(idmap *m, uint64_t k, size_t v)
{
    assert_true(k != 0);
    for (size_t i = (k * 0x9E3779B97F4A7C15ull) & m->mask;; i = (i + 1) & m->mask) {
        if (m->key[i] == k)
            return 1;
        if (m->key[i] == 0) {
            m->key[i] = k;
            m->val[i] = v;
            return 0;
        }
    }
}

static inline int idmap_get(const idmap *m, uint64_t k, size_t *v)
{
    for (size_t i = (k * 0x9E3779B97F4A7C15ull) & m->mask;; i = (i + 1) & m->mask) {
        if (m->key[i] == k) {
            *v = m->val[i];
            return 1;
        }
        if (m->key[i] == 0)
            return 0;
    }
}

static inline double delay_cdf(const fr_gen_opts *o, double t_ms)
{
    double s = o->delay_short_share;
    return s * (1.0 - exp(-t_ms / (o->delay_short_mean_s * 1000.0))) +
           (1.0 - s) * (1.0 - exp(-t_ms / (o->delay_long_mean_s * 1000.0)));
}

/* |observed - expected| within k standard errors of a sum of Bernoullis with probabilities p_i. */
static inline void assert_within_se(const char *what, double observed, double expected, double variance, double k)
{
    double se = sqrt(variance);
    if (fabs(observed - expected) > k * se)
        fail_msg("%s: observed %.2f expected %.2f (se %.2f)", what, observed, expected, se);
}

#endif
