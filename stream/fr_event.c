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

/* ---- rejection messages (cold path) ---------------------------------------------------------- */

typedef struct {
    char *err;
    size_t errlen;
    fr_event *ev;
    bool have_type, have_id;
} dctx;

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

/* Copies at most max bytes of untrusted text for a log line; control and non-ASCII bytes become
 * '?' so an event cannot forge log lines or break a terminal. */
static void sanitize(char *dst, size_t cap, const char *s, size_t len, size_t max)
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

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static fr_reject_reason reject(const dctx *d, fr_reject_reason r, const char *fmt, ...)
{
    if (!d->err || !d->errlen)
        return r;
    char id[80];
    sanitize(id, sizeof id, d->ev->id, d->ev->id_len, 64);
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

/* ---- value helpers --------------------------------------------------------------------------- */

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
static size_t fmt_number(char *dst, size_t cap, const json_t *v)
{
    if (json_is_integer(v))
        return fmt_i64(dst, (long long)json_integer_value(v));
    double x = json_real_value(v);
    if (x == trunc(x) && fabs(x) < 9.2e18)
        return fmt_i64(dst, (long long)x);
    int n = snprintf(dst, cap, "%.15g", x);
    if (strtod(dst, NULL) != x)
        n = snprintf(dst, cap, "%.17g", x);
    return (size_t)n;
}

/* ---- the decoder ----------------------------------------------------------------------------- */

static fr_reject_reason decode_features(const fr_schema *c, dctx *d, const json_t *feats)
{
    fr_features *out = &d->ev->features;
    for (int i = 0; i < c->n_fields; i++) {
        const fr_field *f = &c->fields[i];
        const json_t *v = json_object_get(feats, f->name);
        /* null: the producer says "no value", the same as leaving the key out */
        if (v && json_is_null(v))
            v = NULL;
        switch (f->kind) {
        case FR_FIELD_CATEGORICAL:
            if (!v) {
                out->cat[f->slot] = fr_hash_value(f->hash, FR_MISSING_VALUE, FR_MISSING_VALUE_LEN);
            } else if (json_is_string(v)) {
                out->cat[f->slot] = fr_hash_value(f->hash, json_string_value(v), json_string_length(v));
            } else if (json_is_number(v)) {
                if (!isfinite(json_number_value(v)))
                    return reject(d, FR_REJECT_NON_FINITE, "features.%s is not a finite number", f->name);
                char buf[40];
                size_t n = fmt_number(buf, sizeof buf, v);
                out->cat[f->slot] = fr_hash_value(f->hash, buf, n);
            } else {
                return reject(d, FR_REJECT_BAD_FEATURE_VALUE, "features.%s is %s, expected a string or a number",
                              f->name, type_desc(v));
            }
            break;
        case FR_FIELD_NUMERIC: {
            /* missing is 0, which log1p also maps to 0: "no signal" either way */
            if (!v) {
                out->num[f->slot] = 0.0f;
                break;
            }
            if (!json_is_number(v))
                return reject(d, FR_REJECT_BAD_FEATURE_VALUE, "features.%s is %s, expected a number", f->name,
                              type_desc(v));
            double x = json_number_value(v);
            if (!isfinite(x))
                return reject(d, FR_REJECT_NON_FINITE, "features.%s is not a finite number", f->name);
            if (f->transform == FR_NUM_LOG1P) {
                /* log1p is undefined at and below -1; refusing beats feeding NaN to the model */
                if (x <= -1.0)
                    return reject(d, FR_REJECT_BAD_FEATURE_VALUE, "features.%s is %g, log1p needs a value > -1",
                                  f->name, x);
                x = log1p(x);
            }
            if (!(fabs(x) <= FLT_MAX))
                return reject(d, FR_REJECT_NON_FINITE, "features.%s is %g, too large for a float", f->name, x);
            out->num[f->slot] = (float)x;
            break;
        }
        case FR_FIELD_MULTI: {
            out->multi_len[f->slot] = 0;
            if (!v)
                break;
            if (!json_is_array(v))
                return reject(d, FR_REJECT_BAD_FEATURE_VALUE, "features.%s is %s, expected an array of strings",
                              f->name, type_desc(v));
            /* every element is checked, even past max_len, so whether an event is accepted does not
             * depend on the configured max_len */
            size_t n = json_array_size(v);
            size_t keep = n < (size_t)f->max_len ? n : (size_t)f->max_len;
            for (size_t k = 0; k < n; k++) {
                const json_t *s = json_array_get(v, k);
                if (!json_is_string(s))
                    return reject(d, FR_REJECT_BAD_FEATURE_VALUE, "features.%s[%zu] is %s, expected a string",
                                  f->name, k, type_desc(s));
                if (k < keep)
                    out->multi[f->slot][k] = fr_hash_value(f->hash, json_string_value(s), json_string_length(s));
            }
            out->multi_len[f->slot] = (uint8_t)keep;
            break;
        }
        }
    }
    return FR_REJECT_NONE;
}

static fr_reject_reason decode_impression(const fr_schema *c, dctx *d, const json_t *root)
{
    fr_event *ev = d->ev;
    const json_t *v = json_object_get(root, "scenario");
    if (!v || json_is_null(v))
        return reject(d, FR_REJECT_BAD_SCENARIO, "scenario is missing");
    if (!json_is_string(v))
        return reject(d, FR_REJECT_BAD_SCENARIO, "scenario is %s, expected a string", type_desc(v));
    const char *name = json_string_value(v);
    size_t name_len = json_string_length(v);
    int idx = fr_schema_scenario_index(c, name, name_len);
    if (idx < 0 && c->allow_new_scenarios)
        idx = fr_schema_scenario_index(c, FR_OTHER_SCENARIO, sizeof FR_OTHER_SCENARIO - 1);
    if (idx < 0) {
        char s[80];
        sanitize(s, sizeof s, name, name_len, 64);
        return reject(d, FR_REJECT_UNKNOWN_SCENARIO,
                      "scenario \"%s\" is not configured; add it to \"scenarios\" or set \"allow_new_scenarios\"", s);
    }
    ev->scenario = idx;
    ev->features.cat[0] = fr_hash_value(fr_hash_field("scenario"), name, name_len);

    ev->sample_rate = 1.0f;
    v = json_object_get(root, "sample_rate");
    if (v && !json_is_null(v)) {
        if (!json_is_number(v))
            return reject(d, FR_REJECT_BAD_SAMPLE_RATE, "sample_rate is %s, expected a number in (0, 1]",
                          type_desc(v));
        double r = json_number_value(v);
        if (!isfinite(r))
            return reject(d, FR_REJECT_NON_FINITE, "sample_rate is not a finite number");
        /* below FLT_MIN the float rate is 0 or subnormal and the 1/rate weight overflows */
        if (!(r > 0.0 && r <= 1.0) || (float)r < FLT_MIN)
            return reject(d, FR_REJECT_BAD_SAMPLE_RATE, "sample_rate is %g, must be in (0, 1]", r);
        ev->sample_rate = (float)r;
    }

    v = json_object_get(root, "features");
    if (!v || json_is_null(v))
        return reject(d, FR_REJECT_BAD_FEATURES, "features is missing");
    if (!json_is_object(v))
        return reject(d, FR_REJECT_BAD_FEATURES, "features is %s, expected an object", type_desc(v));
    return decode_features(c, d, v);
}

static fr_reject_reason decode_object(const fr_schema *c, dctx *d, const json_t *root)
{
    fr_event *ev = d->ev;
    if (!json_is_object(root))
        return reject(d, FR_REJECT_NOT_OBJECT, "the message is %s, expected an object", type_desc(root));

    const json_t *v = json_object_get(root, "type");
    if (!v || json_is_null(v))
        return reject(d, FR_REJECT_BAD_TYPE, "type is missing");
    if (!json_is_string(v))
        return reject(d, FR_REJECT_BAD_TYPE, "type is %s, expected \"impression\", \"click\" or \"conversion\"",
                      type_desc(v));
    {
        const char *t = json_string_value(v);
        size_t tl = json_string_length(v);
        int type = -1;
        for (int i = 0; i < FR_EV_NTYPES; i++)
            if (strlen(TYPE_NAMES[i]) == tl && memcmp(TYPE_NAMES[i], t, tl) == 0)
                type = i;
        if (type < 0) {
            char s[80];
            sanitize(s, sizeof s, t, tl, 64);
            return reject(d, FR_REJECT_BAD_TYPE, "type \"%s\" is unknown; use impression, click or conversion", s);
        }
        ev->type = (fr_event_type)type;
        d->have_type = true;
    }

    v = json_object_get(root, "id");
    if (!v || json_is_null(v))
        return reject(d, FR_REJECT_BAD_ID, "id is missing");
    if (!json_is_string(v))
        return reject(d, FR_REJECT_BAD_ID, "id is %s, expected a string", type_desc(v));
    {
        size_t n = json_string_length(v);
        const char *s = json_string_value(v);
        if (n == 0)
            return reject(d, FR_REJECT_BAD_ID, "id is empty");
        if (n > FR_ID_MAX)
            return reject(d, FR_REJECT_BAD_ID, "id is %zu bytes, the limit is %d", n, FR_ID_MAX);
        /* the id is a C string for the joiner and the logs; a NUL would silently cut it short */
        if (memchr(s, '\0', n))
            return reject(d, FR_REJECT_BAD_ID, "id contains a NUL character");
        memcpy(ev->id, s, n + 1);
        ev->id_len = (uint32_t)n;
        d->have_id = true;
    }

    v = json_object_get(root, "ts");
    if (!v || json_is_null(v))
        return reject(d, FR_REJECT_BAD_TS, "ts is missing");
    if (json_is_integer(v)) {
        json_int_t t = json_integer_value(v);
        if (t < 0 || t > FR_TS_MAX)
            return reject(d, FR_REJECT_BAD_TS, "ts is %lld, expected milliseconds since the epoch in 0..%lld",
                          (long long)t, (long long)FR_TS_MAX);
        ev->ts = (int64_t)t;
    } else if (json_is_real(v)) {
        double t = json_real_value(v);
        if (!isfinite(t))
            return reject(d, FR_REJECT_NON_FINITE, "ts is not a finite number");
        if (t != trunc(t) || t < 0 || t > (double)FR_TS_MAX)
            return reject(d, FR_REJECT_BAD_TS, "ts is %.17g, expected integer milliseconds since the epoch", t);
        ev->ts = (int64_t)t;
    } else {
        return reject(d, FR_REJECT_BAD_TS, "ts is %s, expected integer milliseconds since the epoch", type_desc(v));
    }

    switch (ev->type) {
    case FR_EV_IMPRESSION: return decode_impression(c, d, root);
    case FR_EV_CLICK: return FR_REJECT_NONE;
    case FR_EV_CONVERSION:
        v = json_object_get(root, "value");
        if (v && !json_is_null(v)) {
            if (!json_is_number(v))
                return reject(d, FR_REJECT_BAD_VALUE, "value is %s, expected a number", type_desc(v));
            if (!isfinite(json_number_value(v)))
                return reject(d, FR_REJECT_NON_FINITE, "value is not a finite number");
            ev->value = json_number_value(v);
        }
        return FR_REJECT_NONE;
    case FR_EV_NTYPES: break;
    }
    return FR_REJECT_NONE;
}

fr_reject_reason fr_event_decode(const fr_schema *c, const char *buf, size_t len, fr_event *ev, char *err,
                                 size_t errlen)
{
    /* The whole struct is cleared, padding included: the joiner stores events as bytes, and a
     * replay must write the same bytes. */
    memset(ev, 0, sizeof *ev);
    dctx d = {err, errlen, ev, false, false};
    if (err && errlen)
        err[0] = '\0';

    /* before parsing: an oversized message must not cost a parse */
    if (len > (size_t)c->max_message_bytes)
        return reject(&d, FR_REJECT_OVERSIZED, "message is %zu bytes, the limit is %d (kafka.max_message_bytes)", len,
                      c->max_message_bytes);

    /* JSON_DECODE_ANY: a bare 13 or "x" is valid JSON that is not an object (not_object, not
     * malformed_json). JSON_REJECT_DUPLICATES: see the top of the file. JSON_ALLOW_NUL: \u0000 is
     * valid JSON; the id check refuses it, and hashing uses lengths, not C strings. Invalid UTF-8
     * and trailing garbage are refused by jansson's defaults. */
    if (len == 0)
        return reject(&d, FR_REJECT_MALFORMED_JSON, "malformed JSON: the message is empty");
    json_error_t jerr;
    json_t *root = json_loadb(buf, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (!root) {
        /* jansson quotes the offending input in its text */
        char text[sizeof jerr.text];
        sanitize(text, sizeof text, jerr.text, strlen(jerr.text), sizeof text - 5);
        return reject(&d, FR_REJECT_MALFORMED_JSON, "malformed JSON at line %d column %d: %s", jerr.line, jerr.column,
                      text);
    }
    fr_reject_reason r = decode_object(c, &d, root);
    json_decref(root);
    return r;
}
