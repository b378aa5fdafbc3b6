/* fr_event_pb: the Protobuf decoder and the JSON -> Protobuf encoder.
 *
 * protobuf-c parses the wire format (generated at build time from proto/freshet_event.proto, with
 * string fields seen as bytes: proto/wire_view.cmake says why); this file checks what proto2 does
 * not (presence of the required fields, UTF-8, feature names) and hands every value to the checks
 * the JSON decoder uses (fr_event_int.h), so both formats give the same event, reason and message.
 *
 * Decisions where Protobuf differs from JSON (also in docs/protobuf-events.md):
 * - A scalar field given twice is Protobuf's "last one wins", which every parser agrees on, so it
 *   is not refused as JSON's duplicated key is; a feature named twice is refused (malformed).
 * - A feature with no value set stands for JSON null: the field's missing value.
 * - The framing's message index must be [0] (the file's first message, Event). */
#include "fr_event_pb.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fr_event_int.h"
#include "freshet_event.pb-c.h"

typedef Freshet__V1__Event pb_event;
typedef Freshet__V1__Feature pb_feature;

static const char *const FORMAT_NAMES[FR_NFORMATS] = {"json", "protobuf"};

const char *fr_event_format_name(fr_event_format f)
{
    return (f >= 0 && f < FR_NFORMATS) ? FORMAT_NAMES[f] : "unknown";
}

int fr_event_format_parse(const char *name, fr_event_format *out)
{
    for (int i = 0; i < FR_NFORMATS; i++)
        if (strcmp(name, FORMAT_NAMES[i]) == 0) {
            *out = (fr_event_format)i;
            return 0;
        }
    return -1;
}

fr_reject_reason fr_event_decode_as(const fr_schema *s, fr_event_format f, const char *buf, size_t len, fr_event *ev,
                                    char *err, size_t errlen)
{
    if (f == FR_FORMAT_PROTOBUF)
        return fr_event_decode_pb(s, buf, len, ev, NULL, err, errlen);
    return fr_event_decode(s, buf, len, ev, err, errlen);
}

/* ---- protobuf-c's allocations from a stack arena ------------------------------------------- */

/* An event of the contract unpacks into about 1 KiB; bigger ones (many features, long lists) fall
 * back to malloc piece by piece. */
enum { ARENA_BYTES = 8192 };

typedef struct {
    _Alignas(max_align_t) unsigned char mem[ARENA_BYTES];
    size_t used;
} arena;

static void *arena_alloc(void *data, size_t size)
{
    arena *a = data;
    size_t need = (size + 15) & ~(size_t)15;
    if (need >= size && need <= ARENA_BYTES - a->used) {
        void *p = a->mem + a->used;
        a->used += need;
        return p;
    }
    return malloc(size);
}

static void arena_free(void *data, void *p)
{
    arena *a = data;
    if ((unsigned char *)p >= a->mem && (unsigned char *)p < a->mem + ARENA_BYTES)
        return;
    free(p);
}

/* ---- syntax: framing, UTF-8, feature names ---------------------------------------------------- */

/* Reads a base-128 varint of at most 10 bytes at *p (< end). */
static int read_varint(const unsigned char **p, const unsigned char *end, uint64_t *out)
{
    uint64_t v = 0;
    for (int i = 0; i < 10 && *p < end; i++) {
        unsigned char b = *(*p)++;
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *out = v;
            return 0;
        }
    }
    return -1;
}

/* Confluent's framing: 0, the schema id (4 bytes, big-endian), the message indexes as zigzag
 * varints (a count, then the indexes; a count of 0 stands for [0]). Advances *p past it. */
static fr_reject_reason read_framing(fr_evctx *d, const unsigned char **p, const unsigned char *end, int64_t *id)
{
    if (end - *p < 5)
        return fr_ev_reject(d, FR_REJECT_MALFORMED_JSON,
                            "malformed Protobuf: Confluent framing of %td bytes, its header needs 5 (magic byte 0, "
                            "4-byte schema id)",
                            end - *p);
    const unsigned char *h = *p;
    *id = (int64_t)((uint32_t)h[1] << 24 | (uint32_t)h[2] << 16 | (uint32_t)h[3] << 8 | (uint32_t)h[4]);
    *p += 5;
    uint64_t count, index = 0;
    if (read_varint(p, end, &count) != 0)
        return fr_ev_reject(d, FR_REJECT_MALFORMED_JSON,
                            "malformed Protobuf: schema id %lld: the message-index array is truncated", (long long)*id);
    if (count != 0 && (count != 2 || read_varint(p, end, &index) != 0 || index != 0))
        return fr_ev_reject(d, FR_REJECT_MALFORMED_JSON,
                            "malformed Protobuf: schema id %lld: the message indexes do not name freshet.v1.Event "
                            "(expected [0], the first message of proto/freshet_event.proto)",
                            (long long)*id);
    return FR_REJECT_NONE;
}

/* UTF-8 as jansson accepts it: no overlong forms, no surrogates, nothing above U+10FFFF. */
static bool utf8_valid(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t k;
        uint32_t cp, min;
        if (c >= 0xc2 && c <= 0xdf) k = 1, cp = c & 0x1f, min = 0x80;
        else if (c >= 0xe0 && c <= 0xef) k = 2, cp = c & 0x0f, min = 0x800;
        else if (c >= 0xf0 && c <= 0xf4) k = 3, cp = c & 0x07, min = 0x10000;
        else return false;
        if (n - i <= k)
            return false;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + j] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += k + 1;
    }
    return true;
}

static int name_cmp(const void *a, const void *b)
{
    const ProtobufCBinaryData *x = &(*(pb_feature *const *)a)->name, *y = &(*(pb_feature *const *)b)->name;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = n ? memcmp(x->data, y->data, n) : 0;
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* Whether two features share a name: pairwise for the usual few, else by sorting the message's own
 * list (its order means nothing once names are known to be unique). */
static const ProtobufCBinaryData *duplicate_name(pb_feature **fs, size_t n)
{
    if (n <= 32) {
        for (size_t i = 1; i < n; i++)
            for (size_t j = 0; j < i; j++)
                if (name_cmp(&fs[i], &fs[j]) == 0)
                    return &fs[i]->name;
        return NULL;
    }
    qsort(fs, n, sizeof *fs, name_cmp);
    for (size_t i = 1; i < n; i++)
        if (name_cmp(&fs[i], &fs[i - 1]) == 0)
            return &fs[i]->name;
    return NULL;
}

/* What JSON's parser refuses before any key is read: invalid UTF-8 in any string, a key twice. */
static fr_reject_reason check_syntax(fr_evctx *d, pb_event *m)
{
    const char *bad = NULL;
    if (m->has_id && !utf8_valid(m->id.data, m->id.len))
        bad = "id";
    else if (m->has_scenario && !utf8_valid(m->scenario.data, m->scenario.len))
        bad = "scenario";
    if (bad)
        return fr_ev_reject(d, FR_REJECT_MALFORMED_JSON, "malformed Protobuf: %s is not valid UTF-8", bad);
    if (!m->features)
        return FR_REJECT_NONE;
    size_t n = m->features->n_feature;
    const pb_feature *const *fs = (const pb_feature *const *)m->features->feature;
    for (size_t i = 0; i < n; i++) {
        const pb_feature *f = fs[i];
        if (!f->has_name)
            return fr_ev_reject(d, FR_REJECT_MALFORMED_JSON, "malformed Protobuf: features[%zu] has no name", i);
        bool ok = utf8_valid(f->name.data, f->name.len);
        if (ok && f->value_case == FRESHET__V1__FEATURE__VALUE_STRING_VALUE)
            ok = utf8_valid(f->string_value.data, f->string_value.len);
        if (ok && f->value_case == FRESHET__V1__FEATURE__VALUE_STRINGS)
            for (size_t k = 0; ok && k < f->strings->n_value; k++)
                ok = utf8_valid(f->strings->value[k].data, f->strings->value[k].len);
        if (!ok)
            return fr_ev_reject(d, FR_REJECT_MALFORMED_JSON, "malformed Protobuf: features[%zu] is not valid UTF-8",
                                i);
    }
    const ProtobufCBinaryData *dup = duplicate_name(m->features->feature, n);
    if (dup) {
        char s[80];
        fr_ev_sanitize(s, sizeof s, (const char *)dup->data, dup->len, 64);
        return fr_ev_reject(d, FR_REJECT_MALFORMED_JSON, "malformed Protobuf: feature \"%s\" is given twice", s);
    }
    return FR_REJECT_NONE;
}

/* ---- the contract ---------------------------------------------------------------------------- */

static const char *value_desc(const pb_feature *f)
{
    switch (f->value_case) {
    case FRESHET__V1__FEATURE__VALUE_STRING_VALUE: return "a string";
    case FRESHET__V1__FEATURE__VALUE_INT_VALUE:
    case FRESHET__V1__FEATURE__VALUE_DOUBLE_VALUE: return "a number";
    case FRESHET__V1__FEATURE__VALUE_STRINGS: return "an array";
    default: return "null";
    }
}

static fr_reject_reason decode_feature(const fr_field *f, fr_evctx *d, const pb_feature *v)
{
    switch (v ? v->value_case : FRESHET__V1__FEATURE__VALUE__NOT_SET) {
    case FRESHET__V1__FEATURE__VALUE_STRING_VALUE:
        return fr_ev_feature_text(f, d, (const char *)v->string_value.data, v->string_value.len);
    case FRESHET__V1__FEATURE__VALUE_INT_VALUE: return fr_ev_feature_integer(f, d, (long long)v->int_value);
    case FRESHET__V1__FEATURE__VALUE_DOUBLE_VALUE: return fr_ev_feature_real(f, d, v->double_value);
    case FRESHET__V1__FEATURE__VALUE_STRINGS: {
        if (f->kind != FR_FIELD_MULTI)
            return fr_ev_bad_feature(f, d, value_desc(v));
        size_t n = v->strings->n_value;
        for (size_t k = 0; k < n; k++)
            fr_ev_multi_item(f, d, k, (const char *)v->strings->value[k].data, v->strings->value[k].len);
        fr_ev_multi_done(f, d, n);
        return FR_REJECT_NONE;
    }
    default: return fr_ev_feature_absent(f, d);
    }
}

static fr_reject_reason decode_features(const fr_schema *c, fr_evctx *d, const Freshet__V1__Features *fs)
{
    /* each configured field's feature (names are unique by now); fields in configuration order,
     * so the first bad field reported is JSON's */
    const pb_feature *by_field[FR_MAX_CAT + FR_MAX_NUM + FR_MAX_MULTI] = {0};
    for (size_t i = 0; i < fs->n_feature; i++) {
        const ProtobufCBinaryData *name = &fs->feature[i]->name;
        for (int j = 0; j < c->n_fields; j++)
            if (strlen(c->fields[j].name) == name->len && memcmp(c->fields[j].name, name->data, name->len) == 0) {
                by_field[j] = fs->feature[i];
                break;
            }
    }
    for (int j = 0; j < c->n_fields; j++) {
        fr_reject_reason r = decode_feature(&c->fields[j], d, by_field[j]);
        if (r != FR_REJECT_NONE)
            return r;
    }
    return FR_REJECT_NONE;
}

static fr_reject_reason decode_event(const fr_schema *c, fr_evctx *d, const pb_event *m)
{
    fr_reject_reason r;
    if (!m->has_type || m->type == FRESHET__V1__EVENT_TYPE__EVENT_TYPE_UNSPECIFIED)
        return fr_ev_reject(d, FR_REJECT_BAD_TYPE, "type is missing");
    if (m->type < FRESHET__V1__EVENT_TYPE__EVENT_TYPE_IMPRESSION || m->type > FRESHET__V1__EVENT_TYPE__EVENT_TYPE_CONVERSION)
        return fr_ev_reject(d, FR_REJECT_BAD_TYPE, "type %d is unknown; use impression, click or conversion",
                            (int)m->type);
    fr_ev_set_type(d, (fr_event_type)(m->type - FRESHET__V1__EVENT_TYPE__EVENT_TYPE_IMPRESSION));

    if (!m->has_id)
        return fr_ev_reject(d, FR_REJECT_BAD_ID, "id is missing");
    if ((r = fr_ev_id(d, (const char *)m->id.data, m->id.len)) != FR_REJECT_NONE)
        return r;
    if (!m->has_ts)
        return fr_ev_reject(d, FR_REJECT_BAD_TS, "ts is missing");
    if ((r = fr_ev_ts(d, (long long)m->ts)) != FR_REJECT_NONE)
        return r;

    switch (d->ev->type) {
    case FR_EV_IMPRESSION:
        if (!m->has_scenario)
            return fr_ev_reject(d, FR_REJECT_BAD_SCENARIO, "scenario is missing");
        if ((r = fr_ev_scenario(c, d, (const char *)m->scenario.data, m->scenario.len)) != FR_REJECT_NONE)
            return r;
        d->ev->sample_rate = 1.0f;
        if (m->has_sample_rate && (r = fr_ev_sample_rate(d, m->sample_rate)) != FR_REJECT_NONE)
            return r;
        if (!m->features)
            return fr_ev_reject(d, FR_REJECT_BAD_FEATURES, "features is missing");
        return decode_features(c, d, m->features);
    case FR_EV_CLICK: return FR_REJECT_NONE;
    case FR_EV_CONVERSION: return m->has_value ? fr_ev_value(d, m->value) : FR_REJECT_NONE;
    case FR_EV_NTYPES: break;
    }
    return FR_REJECT_NONE;
}

fr_reject_reason fr_event_decode_pb(const fr_schema *c, const char *buf, size_t len, fr_event *ev, int64_t *schema_id,
                                    char *err, size_t errlen)
{
    if (schema_id)
        *schema_id = -1;
    fr_evctx d;
    fr_reject_reason r = fr_ev_begin(c, &d, len, ev, err, errlen);
    if (r != FR_REJECT_NONE)
        return r;
    /* an empty message (a tombstone) is no event, as in JSON; an empty Event would be "type is missing" */
    if (len == 0)
        return fr_ev_reject(&d, FR_REJECT_MALFORMED_JSON, "malformed Protobuf: the message is empty");
    const unsigned char *p = (const unsigned char *)buf, *end = p + len;
    /* a bare message cannot start with 0 (field number 0 does not exist), so 0 is the framing */
    if (p[0] == 0) {
        int64_t id = -1;
        if ((r = read_framing(&d, &p, end, &id)) != FR_REJECT_NONE)
            return r;
        if (schema_id)
            *schema_id = id;
    }
    arena a;
    a.used = 0;
    ProtobufCAllocator alloc = {arena_alloc, arena_free, &a};
    pb_event *m = freshet__v1__event__unpack(&alloc, (size_t)(end - p), p);
    if (!m)
        return fr_ev_reject(&d, FR_REJECT_MALFORMED_JSON,
                            "malformed Protobuf: not a freshet.v1.Event (truncated, a wrong wire type, or not "
                            "Protobuf) in %td bytes",
                            end - p);
    r = check_syntax(&d, m);
    if (r == FR_REJECT_NONE)
        r = decode_event(c, &d, m);
    freshet__v1__event__free_unpacked(m, &alloc);
    return r;
}

/* ---- JSON -> Protobuf (freshet load, tests) ---------------------------------------------------- */

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static int enc_fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static ProtobufCBinaryData bytes_of(const json_t *s)
{
    return (ProtobufCBinaryData){json_string_length(s), (uint8_t *)json_string_value(s)};
}

/* The features object's members; the arrays are the caller's to free (feats, feat, lists, vals). */
typedef struct {
    Freshet__V1__Features feats;
    pb_feature *feat;
    pb_feature **ptrs;
    Freshet__V1__StringList *lists;
    ProtobufCBinaryData *vals;
} enc_features;

static void enc_features_free(enc_features *e)
{
    free(e->feat);
    free(e->ptrs);
    free(e->lists);
    free(e->vals);
}

static int encode_features(const json_t *obj, enc_features *e, char *err, size_t errlen)
{
    size_t n = json_object_size(obj), nvals = 0;
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v) if (json_is_array(v)) nvals += json_array_size(v);
    e->feat = calloc(n ? n : 1, sizeof *e->feat);
    e->ptrs = calloc(n ? n : 1, sizeof *e->ptrs);
    e->lists = calloc(n ? n : 1, sizeof *e->lists);
    e->vals = calloc(nvals ? nvals : 1, sizeof *e->vals);
    if (!e->feat || !e->ptrs || !e->lists || !e->vals)
        return enc_fail(err, errlen, "out of memory");
    freshet__v1__features__init(&e->feats);
    size_t i = 0, used = 0;
    json_object_foreach((json_t *)obj, key, v) {
        pb_feature *f = &e->feat[i];
        freshet__v1__feature__init(f);
        f->has_name = 1;
        f->name = (ProtobufCBinaryData){strlen(key), (uint8_t *)key};
        if (json_is_string(v)) {
            f->value_case = FRESHET__V1__FEATURE__VALUE_STRING_VALUE;
            f->string_value = bytes_of(v);
        } else if (json_is_integer(v)) {
            f->value_case = FRESHET__V1__FEATURE__VALUE_INT_VALUE;
            f->int_value = (int64_t)json_integer_value(v);
        } else if (json_is_real(v)) {
            f->value_case = FRESHET__V1__FEATURE__VALUE_DOUBLE_VALUE;
            f->double_value = json_real_value(v);
        } else if (json_is_array(v)) {
            Freshet__V1__StringList *l = &e->lists[i];
            freshet__v1__string_list__init(l);
            l->n_value = json_array_size(v);
            l->value = e->vals + used;
            for (size_t k = 0; k < l->n_value; k++) {
                const json_t *s = json_array_get(v, k);
                if (!json_is_string(s))
                    return enc_fail(err, errlen, "features.%s[%zu] is not a string; Protobuf lists hold strings", key,
                                    k);
                l->value[k] = bytes_of(s);
            }
            used += l->n_value;
            f->value_case = FRESHET__V1__FEATURE__VALUE_STRINGS;
            f->strings = l;
        } else if (!json_is_null(v)) {
            return enc_fail(err, errlen, "features.%s is neither a string, a number, an array of strings nor null",
                            key);
        }
        e->ptrs[i++] = f;
    }
    e->feats.n_feature = i;
    e->feats.feature = e->ptrs;
    return 0;
}

static int encode_event(const json_t *root, pb_event *m, enc_features *ef, char *err, size_t errlen)
{
    if (!json_is_object(root))
        return enc_fail(err, errlen, "not a JSON object");
    const json_t *v = json_object_get(root, "type");
    if (v && !json_is_null(v)) {
        static const char *const names[] = {"impression", "click", "conversion"};
        int t = -1;
        for (int i = 0; i < 3; i++)
            if (json_is_string(v) && json_string_length(v) == strlen(names[i]) &&
                memcmp(json_string_value(v), names[i], strlen(names[i])) == 0)
                t = i;
        if (t < 0)
            return enc_fail(err, errlen, "type is not \"impression\", \"click\" or \"conversion\"");
        m->has_type = 1;
        m->type = (Freshet__V1__EventType)(FRESHET__V1__EVENT_TYPE__EVENT_TYPE_IMPRESSION + t);
    }
    if ((v = json_object_get(root, "id")) && !json_is_null(v)) {
        if (!json_is_string(v))
            return enc_fail(err, errlen, "id is not a string");
        m->has_id = 1;
        m->id = bytes_of(v);
    }
    if ((v = json_object_get(root, "ts")) && !json_is_null(v)) {
        if (json_is_integer(v))
            m->ts = (int64_t)json_integer_value(v);
        else if (json_is_real(v) && json_real_value(v) == trunc(json_real_value(v)) &&
                 fabs(json_real_value(v)) < 9.2e18)
            m->ts = (int64_t)json_real_value(v);
        else
            return enc_fail(err, errlen, "ts is not an integer");
        m->has_ts = 1;
    }
    if ((v = json_object_get(root, "scenario")) && !json_is_null(v)) {
        if (!json_is_string(v))
            return enc_fail(err, errlen, "scenario is not a string");
        m->has_scenario = 1;
        m->scenario = bytes_of(v);
    }
    if ((v = json_object_get(root, "sample_rate")) && !json_is_null(v)) {
        if (!json_is_number(v))
            return enc_fail(err, errlen, "sample_rate is not a number");
        m->has_sample_rate = 1;
        m->sample_rate = json_number_value(v);
    }
    if ((v = json_object_get(root, "value")) && !json_is_null(v)) {
        if (!json_is_number(v))
            return enc_fail(err, errlen, "value is not a number");
        m->has_value = 1;
        m->value = json_number_value(v);
    }
    if ((v = json_object_get(root, "features")) && !json_is_null(v)) {
        if (!json_is_object(v))
            return enc_fail(err, errlen, "features is not an object");
        if (encode_features(v, ef, err, errlen) != 0)
            return -1;
        m->features = &ef->feats;
    }
    return 0;
}

int fr_event_pb_from_json(const char *json, size_t len, int64_t schema_id, uint8_t **out, size_t *outlen, char *err,
                          size_t errlen)
{
    *out = NULL;
    *outlen = 0;
    if (schema_id > INT32_MAX)
        return enc_fail(err, errlen, "schema id %lld is above 2^31-1", (long long)schema_id);
    json_error_t jerr;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (!root)
        return enc_fail(err, errlen, "malformed JSON at line %d column %d: %s", jerr.line, jerr.column, jerr.text);
    pb_event m;
    freshet__v1__event__init(&m);
    enc_features ef = {0};
    int rc = encode_event(root, &m, &ef, err, errlen);
    if (rc == 0) {
        size_t head = schema_id >= 0 ? 6 : 0, body = freshet__v1__event__get_packed_size(&m);
        uint8_t *buf = malloc(head + body + 1);
        if (!buf) {
            rc = enc_fail(err, errlen, "out of memory");
        } else {
            if (head) {
                uint32_t id = (uint32_t)schema_id;
                uint8_t h[6] = {0, (uint8_t)(id >> 24), (uint8_t)(id >> 16), (uint8_t)(id >> 8), (uint8_t)id, 0};
                memcpy(buf, h, sizeof h);
            }
            freshet__v1__event__pack(&m, buf + head);
            *out = buf;
            *outlen = head + body;
        }
    }
    enc_features_free(&ef);
    json_decref(root);
    return rc;
}
