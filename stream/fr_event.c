/* fr_event: the EVENTS.md decoder. On the hot path (every Kafka message), so the success path
 * does no formatting and no allocation beyond jansson's own tree; messages are built only on
 * rejection.
 *
 * Decisions where EVENTS.md is silent (also in conf/README.md):
 * - A duplicated key is malformed JSON: which value wins differs between parsers, so the
 *   producer and Freshet could disagree on what the event said.
 * - ts is an integer; a real with no fractional part (1764300000123.0, 1.7643e12) is accepted
 *   as that integer, as JSON Schema defines "integer" by value, not spelling. ts above FR_TS_MAX
 *   (year 9999) is refused so join arithmetic cannot overflow.
 * - null stands for "absent": an optional key (sample_rate, value, a feature) that is null gets
 *   its default; a required key that is null is rejected as missing.
 * - An integer too large for int64 or a real too large for a double is refused by jansson
 *   while parsing, so it is malformed JSON, whichever key it sits under.
 * - With allow_new_scenarios, an unknown scenario takes the index of "other" (per-scenario
 *   parameters and metrics) while features.cat[0] still hashes its own name, so each new
 *   scenario gets its own embedding row. */
#include "fr_event.h"
#include "fr_event_int.h"

#include <float.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fr_hash.h"

static const char *const REJECT_NAMES[FR_REJECT_NREASONS] = {
    [FR_REJECT_NONE] = "none",
    [FR_REJECT_OVERSIZED] = "oversized",
    [FR_REJECT_MALFORMED_JSON] = "malformed_json",
    [FR_REJECT_NOT_OBJECT] = "not_object",
    [FR_REJECT_BAD_TYPE] = "bad_type",
    [FR_REJECT_BAD_ID] = "bad_id",
    [FR_REJECT_BAD_TS] = "bad_ts",
    [FR_REJECT_BAD_SCENARIO] = "bad_scenario",
    [FR_REJECT_UNKNOWN_SCENARIO] = "unknown_scenario",
    [FR_REJECT_BAD_SAMPLE_RATE] = "bad_sample_rate",
    [FR_REJECT_BAD_FEATURES] = "bad_features",
    [FR_REJECT_BAD_FEATURE_VALUE] = "bad_feature_value",
    [FR_REJECT_NON_FINITE] = "non_finite",
    [FR_REJECT_BAD_VALUE] = "bad_value",
    [FR_REJECT_TS_IN_FUTURE] = "ts_in_future",
    [FR_REJECT_TS_TOO_OLD] = "ts_too_old",
};

static const char *const TYPE_NAMES[FR_EV_NTYPES] = {"impression", "click", "conversion"};

const char *fr_event_reject_name(fr_reject_reason r)
{
    return (r >= 0 && r < FR_REJECT_NREASONS) ? REJECT_NAMES[r] : "unknown";
}

const char *fr_event_type_name(fr_event_type t)
{
    return (t >= 0 && t < FR_EV_NTYPES) ? TYPE_NAMES[t] : "unknown";
}

/* ---- the contract's checks (fr_event_int.h) --------------------------------------------------- */

void fr_ev_sanitize(char *dst, size_t cap, const char *s, size_t len, size_t max)
{
    size_t n = len < max ? len : max, o = 0;
    for (size_t i = 0; i < n && o + 1 < cap; i++) {
        unsigned char ch = (unsigned char)s[i];
        dst[o++] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
    }
    if (n < len && o + 4 < cap) {
        memcpy(dst + o, "...", 3);
        o += 3;
    }
    dst[o] = '\0';
}

fr_reject_reason fr_ev_reject(const fr_evctx *d, fr_reject_reason r, const char *fmt, ...)
{
    if (!d->err || !d->errlen)
        return r;
    char id[80];
    fr_ev_sanitize(id, sizeof id, d->ev->id, d->ev->id_len, 64);
    int n = snprintf(d->err, d->errlen, "%s%s%s: ", d->have_type ? fr_event_type_name(d->ev->type) : "event",
                     d->have_id ? " " : "", d->have_id ? id : "");
    if (n >= 0 && (size_t)n < d->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(d->err + n, d->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return r;
}

fr_reject_reason fr_ev_begin(const fr_schema *c, fr_evctx *d, size_t len, fr_event *ev, char *err, size_t errlen)
{
    /* The whole struct is cleared, padding included: the joiner stores events as bytes, and a
     * replay must write the same bytes. */
    memset(ev, 0, sizeof *ev);
    *d = (fr_evctx){err, errlen, ev, false, false};
    if (err && errlen)
        err[0] = '\0';
    /* before parsing: an oversized message must not cost a parse */
    if (len > (size_t)c->max_message_bytes)
        return fr_ev_reject(d, FR_REJECT_OVERSIZED, "message is %zu bytes, the limit is %d (kafka.max_message_bytes)",
                            len, c->max_message_bytes);
    return FR_REJECT_NONE;
}

void fr_ev_set_type(fr_evctx *d, fr_event_type t)
{
    d->ev->type = t;
    d->have_type = true;
}

fr_reject_reason fr_ev_type_name(fr_evctx *d, const char *t, size_t tl)
{
    for (int i = 0; i < FR_EV_NTYPES; i++)
        if (strlen(TYPE_NAMES[i]) == tl && memcmp(TYPE_NAMES[i], t, tl) == 0) {
            fr_ev_set_type(d, (fr_event_type)i);
            return FR_REJECT_NONE;
        }
    char s[80];
    fr_ev_sanitize(s, sizeof s, t, tl, 64);
    return fr_ev_reject(d, FR_REJECT_BAD_TYPE, "type \"%s\" is unknown; use impression, click or conversion", s);
}

fr_reject_reason fr_ev_id(fr_evctx *d, const char *s, size_t n)
{
    if (n == 0)
        return fr_ev_reject(d, FR_REJECT_BAD_ID, "id is empty");
    if (n > FR_ID_MAX)
        return fr_ev_reject(d, FR_REJECT_BAD_ID, "id is %zu bytes, the limit is %d", n, FR_ID_MAX);
    /* the id is a C string for the joiner and the logs; a NUL would silently cut it short */
    if (memchr(s, '\0', n))
        return fr_ev_reject(d, FR_REJECT_BAD_ID, "id contains a NUL character");
    memcpy(d->ev->id, s, n);
    d->ev->id[n] = '\0';
    d->ev->id_len = (uint32_t)n;
    d->have_id = true;
    return FR_REJECT_NONE;
}

fr_reject_reason fr_ev_ts(fr_evctx *d, long long t)
{
    if (t < 0 || t > FR_TS_MAX)
        return fr_ev_reject(d, FR_REJECT_BAD_TS, "ts is %lld, expected milliseconds since the epoch in 0..%lld", t,
                            (long long)FR_TS_MAX);
    d->ev->ts = (int64_t)t;
    return FR_REJECT_NONE;
}

fr_reject_reason fr_ev_scenario(const fr_schema *c, fr_evctx *d, const char *name, size_t name_len)
{
    int idx = fr_schema_scenario_index(c, name, name_len);
    if (idx < 0 && c->allow_new_scenarios)
        idx = fr_schema_scenario_index(c, FR_OTHER_SCENARIO, sizeof FR_OTHER_SCENARIO - 1);
    if (idx < 0) {
        char s[80];
        fr_ev_sanitize(s, sizeof s, name, name_len, 64);
        return fr_ev_reject(d, FR_REJECT_UNKNOWN_SCENARIO,
                            "scenario \"%s\" is not configured; add it to \"scenarios\" or set \"allow_new_scenarios\"",
                            s);
    }
    d->ev->scenario = idx;
    d->ev->features.cat[0] = fr_hash_value(fr_hash_field("scenario"), name, name_len);
    return FR_REJECT_NONE;
}

fr_reject_reason fr_ev_sample_rate(fr_evctx *d, double r)
{
    if (!isfinite(r))
        return fr_ev_reject(d, FR_REJECT_NON_FINITE, "sample_rate is not a finite number");
    /* below FLT_MIN the float rate is 0 or subnormal and the 1/rate weight overflows */
    if (!(r > 0.0 && r <= 1.0) || (float)r < FLT_MIN)
        return fr_ev_reject(d, FR_REJECT_BAD_SAMPLE_RATE, "sample_rate is %g, must be in (0, 1]", r);
    d->ev->sample_rate = (float)r;
    return FR_REJECT_NONE;
}

fr_reject_reason fr_ev_value(fr_evctx *d, double v)
{
    if (!isfinite(v))
        return fr_ev_reject(d, FR_REJECT_NON_FINITE, "value is not a finite number");
    d->ev->value = v;
    return FR_REJECT_NONE;
}

/* Decimal text of v; dst holds at least 21 bytes. */
static size_t fmt_i64(char *dst, long long v)
{
    char tmp[24];
    size_t n = 0;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    size_t o = 0;
    if (v < 0)
        dst[o++] = '-';
    while (n)
        dst[o++] = tmp[--n];
    return o;
}

/* Canonical text of a number used as a categorical value, so the key does not depend on how the
 * producer spelled it: an integral value is its decimal integer text (13, 13.0 and "13" hash
 * alike; -0 is "0"); any other value is the shortest of %.15g / %.17g that reads back exactly. */
static size_t fmt_real(char *dst, size_t cap, double x)
{
    if (x == trunc(x) && fabs(x) < 9.2e18)
        return fmt_i64(dst, (long long)x);
    int n = snprintf(dst, cap, "%.15g", x);
    if (strtod(dst, NULL) != x)
        n = snprintf(dst, cap, "%.17g", x);
    return (size_t)n;
}

fr_reject_reason fr_ev_bad_feature(const fr_field *f, fr_evctx *d, const char *desc)
{
    static const char *const expected[] = {[FR_FIELD_CATEGORICAL] = "a string or a number",
                                           [FR_FIELD_NUMERIC] = "a number",
                                           [FR_FIELD_MULTI] = "an array of strings"};
    return fr_ev_reject(d, FR_REJECT_BAD_FEATURE_VALUE, "features.%s is %s, expected %s", f->name, desc,
                        expected[f->kind]);
}

fr_reject_reason fr_ev_feature_absent(const fr_field *f, fr_evctx *d)
{
    fr_features *out = &d->ev->features;
    switch (f->kind) {
    case FR_FIELD_CATEGORICAL:
        out->cat[f->slot] = fr_hash_value(f->hash, FR_MISSING_VALUE, FR_MISSING_VALUE_LEN);
        break;
    /* missing is 0, which log1p also maps to 0: "no signal" either way */
    case FR_FIELD_NUMERIC: out->num[f->slot] = 0.0f; break;
    case FR_FIELD_MULTI: out->multi_len[f->slot] = 0; break;
    }
    return FR_REJECT_NONE;
}

fr_reject_reason fr_ev_feature_text(const fr_field *f, fr_evctx *d, const char *s, size_t n)
{
    if (f->kind != FR_FIELD_CATEGORICAL)
        return fr_ev_bad_feature(f, d, "a string");
    d->ev->features.cat[f->slot] = fr_hash_value(f->hash, s, n);
    return FR_REJECT_NONE;
}

static fr_reject_reason feature_number(const fr_field *f, fr_evctx *d, double x)
{
    if (!isfinite(x))
        return fr_ev_reject(d, FR_REJECT_NON_FINITE, "features.%s is not a finite number", f->name);
    if (f->transform == FR_NUM_LOG1P) {
        /* log1p is undefined at and below -1; refusing beats feeding NaN to the model */
        if (x <= -1.0)
            return fr_ev_reject(d, FR_REJECT_BAD_FEATURE_VALUE, "features.%s is %g, log1p needs a value > -1", f->name,
                                x);
        x = log1p(x);
    }
    if (!(fabs(x) <= FLT_MAX))
        return fr_ev_reject(d, FR_REJECT_NON_FINITE, "features.%s is %g, too large for a float", f->name, x);
    d->ev->features.num[f->slot] = (float)x;
    return FR_REJECT_NONE;
}

fr_reject_reason fr_ev_feature_integer(const fr_field *f, fr_evctx *d, long long v)
{
    if (f->kind == FR_FIELD_NUMERIC)
        return feature_number(f, d, (double)v);
    if (f->kind != FR_FIELD_CATEGORICAL)
        return fr_ev_bad_feature(f, d, "a number");
    char buf[40];
    size_t n = fmt_i64(buf, v);
    d->ev->features.cat[f->slot] = fr_hash_value(f->hash, buf, n);
    return FR_REJECT_NONE;
}

fr_reject_reason fr_ev_feature_real(const fr_field *f, fr_evctx *d, double x)
{
    if (f->kind == FR_FIELD_NUMERIC)
        return feature_number(f, d, x);
    if (f->kind != FR_FIELD_CATEGORICAL)
        return fr_ev_bad_feature(f, d, "a number");
    if (!isfinite(x))
        return fr_ev_reject(d, FR_REJECT_NON_FINITE, "features.%s is not a finite number", f->name);
    char buf[40];
    size_t n = fmt_real(buf, sizeof buf, x);
    d->ev->features.cat[f->slot] = fr_hash_value(f->hash, buf, n);
    return FR_REJECT_NONE;
}

void fr_ev_multi_item(const fr_field *f, fr_evctx *d, size_t k, const char *s, size_t n)
{
    if (k < (size_t)f->max_len)
        d->ev->features.multi[f->slot][k] = fr_hash_value(f->hash, s, n);
}

void fr_ev_multi_done(const fr_field *f, fr_evctx *d, size_t n)
{
    d->ev->features.multi_len[f->slot] = (uint8_t)(n < (size_t)f->max_len ? n : (size_t)f->max_len);
}

fr_reject_reason fr_ev_bad_multi_item(const fr_field *f, fr_evctx *d, size_t k, const char *desc)
{
    return fr_ev_reject(d, FR_REJECT_BAD_FEATURE_VALUE, "features.%s[%zu] is %s, expected a string", f->name, k,
                        desc);
}

/* ---- the JSON decoder ------------------------------------------------------------------------ */

static const char *type_desc(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER:
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "an unknown JSON value";
}

static fr_reject_reason decode_features(const fr_schema *c, fr_evctx *d, const json_t *feats)
{
    for (int i = 0; i < c->n_fields; i++) {
        const fr_field *f = &c->fields[i];
        const json_t *v = json_object_get(feats, f->name);
        fr_reject_reason r;
        /* null: the producer says "no value", the same as leaving the key out */
        if (!v || json_is_null(v))
            r = fr_ev_feature_absent(f, d);
        else if (json_is_string(v))
            r = fr_ev_feature_text(f, d, json_string_value(v), json_string_length(v));
        else if (json_is_integer(v))
            r = fr_ev_feature_integer(f, d, (long long)json_integer_value(v));
        else if (json_is_real(v))
            r = fr_ev_feature_real(f, d, json_real_value(v));
        else if (json_is_array(v) && f->kind == FR_FIELD_MULTI) {
            r = FR_REJECT_NONE;
            size_t n = json_array_size(v);
            for (size_t k = 0; k < n && r == FR_REJECT_NONE; k++) {
                const json_t *s = json_array_get(v, k);
                if (!json_is_string(s))
                    r = fr_ev_bad_multi_item(f, d, k, type_desc(s));
                else
                    fr_ev_multi_item(f, d, k, json_string_value(s), json_string_length(s));
            }
            if (r == FR_REJECT_NONE)
                fr_ev_multi_done(f, d, n);
        } else
            r = fr_ev_bad_feature(f, d, type_desc(v));
        if (r != FR_REJECT_NONE)
            return r;
    }
    return FR_REJECT_NONE;
}

static fr_reject_reason decode_impression(const fr_schema *c, fr_evctx *d, const json_t *root)
{
    const json_t *v = json_object_get(root, "scenario");
    if (!v || json_is_null(v))
        return fr_ev_reject(d, FR_REJECT_BAD_SCENARIO, "scenario is missing");
    if (!json_is_string(v))
        return fr_ev_reject(d, FR_REJECT_BAD_SCENARIO, "scenario is %s, expected a string", type_desc(v));
    fr_reject_reason r = fr_ev_scenario(c, d, json_string_value(v), json_string_length(v));
    if (r != FR_REJECT_NONE)
        return r;

    d->ev->sample_rate = 1.0f;
    v = json_object_get(root, "sample_rate");
    if (v && !json_is_null(v)) {
        if (!json_is_number(v))
            return fr_ev_reject(d, FR_REJECT_BAD_SAMPLE_RATE, "sample_rate is %s, expected a number in (0, 1]",
                                type_desc(v));
        if ((r = fr_ev_sample_rate(d, json_number_value(v))) != FR_REJECT_NONE)
            return r;
    }

    v = json_object_get(root, "features");
    if (!v || json_is_null(v))
        return fr_ev_reject(d, FR_REJECT_BAD_FEATURES, "features is missing");
    if (!json_is_object(v))
        return fr_ev_reject(d, FR_REJECT_BAD_FEATURES, "features is %s, expected an object", type_desc(v));
    return decode_features(c, d, v);
}

static fr_reject_reason decode_object(const fr_schema *c, fr_evctx *d, const json_t *root)
{
    fr_event *ev = d->ev;
    fr_reject_reason r;
    if (!json_is_object(root))
        return fr_ev_reject(d, FR_REJECT_NOT_OBJECT, "the message is %s, expected an object", type_desc(root));

    const json_t *v = json_object_get(root, "type");
    if (!v || json_is_null(v))
        return fr_ev_reject(d, FR_REJECT_BAD_TYPE, "type is missing");
    if (!json_is_string(v))
        return fr_ev_reject(d, FR_REJECT_BAD_TYPE, "type is %s, expected \"impression\", \"click\" or \"conversion\"",
                            type_desc(v));
    if ((r = fr_ev_type_name(d, json_string_value(v), json_string_length(v))) != FR_REJECT_NONE)
        return r;

    v = json_object_get(root, "id");
    if (!v || json_is_null(v))
        return fr_ev_reject(d, FR_REJECT_BAD_ID, "id is missing");
    if (!json_is_string(v))
        return fr_ev_reject(d, FR_REJECT_BAD_ID, "id is %s, expected a string", type_desc(v));
    if ((r = fr_ev_id(d, json_string_value(v), json_string_length(v))) != FR_REJECT_NONE)
        return r;

    v = json_object_get(root, "ts");
    if (!v || json_is_null(v))
        return fr_ev_reject(d, FR_REJECT_BAD_TS, "ts is missing");
    if (json_is_integer(v)) {
        if ((r = fr_ev_ts(d, (long long)json_integer_value(v))) != FR_REJECT_NONE)
            return r;
    } else if (json_is_real(v)) {
        double t = json_real_value(v);
        if (!isfinite(t))
            return fr_ev_reject(d, FR_REJECT_NON_FINITE, "ts is not a finite number");
        if (t != trunc(t) || t < 0 || t > (double)FR_TS_MAX)
            return fr_ev_reject(d, FR_REJECT_BAD_TS, "ts is %.17g, expected integer milliseconds since the epoch", t);
        ev->ts = (int64_t)t;
    } else {
        return fr_ev_reject(d, FR_REJECT_BAD_TS, "ts is %s, expected integer milliseconds since the epoch",
                            type_desc(v));
    }

    switch (ev->type) {
    case FR_EV_IMPRESSION: return decode_impression(c, d, root);
    case FR_EV_CLICK: return FR_REJECT_NONE;
    case FR_EV_CONVERSION:
        v = json_object_get(root, "value");
        if (v && !json_is_null(v)) {
            if (!json_is_number(v))
                return fr_ev_reject(d, FR_REJECT_BAD_VALUE, "value is %s, expected a number", type_desc(v));
            return fr_ev_value(d, json_number_value(v));
        }
        return FR_REJECT_NONE;
    case FR_EV_NTYPES: break;
    }
    return FR_REJECT_NONE;
}

fr_reject_reason fr_event_decode(const fr_schema *c, const char *buf, size_t len, fr_event *ev, char *err,
                                 size_t errlen)
{
    fr_evctx d;
    fr_reject_reason r = fr_ev_begin(c, &d, len, ev, err, errlen);
    if (r != FR_REJECT_NONE)
        return r;

    /* JSON_DECODE_ANY: a bare 13 or "x" is valid JSON that is not an object (not_object, not
     * malformed_json). JSON_REJECT_DUPLICATES: see the top of the file. JSON_ALLOW_NUL: \u0000 is
     * valid JSON; the id check refuses it, and hashing uses lengths, not C strings. Invalid UTF-8
     * and trailing garbage are refused by jansson's defaults. */
    if (len == 0)
        return fr_ev_reject(&d, FR_REJECT_MALFORMED_JSON, "malformed JSON: the message is empty");
    json_error_t jerr;
    json_t *root = json_loadb(buf, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (!root) {
        /* jansson quotes the offending input in its text */
        char text[sizeof jerr.text];
        fr_ev_sanitize(text, sizeof text, jerr.text, strlen(jerr.text), sizeof text - 5);
        return fr_ev_reject(&d, FR_REJECT_MALFORMED_JSON, "malformed JSON at line %d column %d: %s", jerr.line,
                            jerr.column, text);
    }
    r = decode_object(c, &d, root);
    json_decref(root);
    return r;
}
