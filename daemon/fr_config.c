/* fr_config: defaults and the strict JSON loader (schema: conf/README.md).
 *
 * Strict on purpose: a typo in a key ("lerning_rate") would otherwise silently leave a default
 * in force for the life of a model, so every unknown key, wrong type and out-of-range value is
 * refused with the full key path. The loader works on a copy and writes the caller's struct
 * only on success, so a failed reload never leaves a half-applied config behind. */
#include "fr_config.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "fr_event.h"
#include "fr_hash.h"
#include "fr_history.h"
#include "fr_policy.h"
#include "fr_publish.h"

enum { PATH_MAX_LEN = 160 };

typedef struct {
    char *err;
    size_t errlen;
} errbuf;

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static int fail(errbuf *e, const char *fmt, ...)
{
    if (e->err && e->errlen) {
        int n = snprintf(e->err, e->errlen, "config: ");
        if (n >= 0 && (size_t)n < e->errlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(e->err + n, e->errlen - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return -1;
}

static const char *type_desc(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a real number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "an unknown JSON value";
}

/* dst (PATH_MAX_LEN bytes) = base.key, or key when base is empty; a cut path still names the key
 * well enough for a message. */
static void join_path(char *dst, const char *base, const char *key)
{
    size_t o = 0;
    for (const char *p = base; *p && o + 1 < PATH_MAX_LEN; p++)
        dst[o++] = *p;
    if (base[0] && o + 1 < PATH_MAX_LEN)
        dst[o++] = '.';
    for (const char *p = key; *p && o + 1 < PATH_MAX_LEN; p++)
        dst[o++] = *p;
    dst[o] = '\0';
}

/* Refuses any key of obj not in allowed (NULL-terminated). */
static int check_keys(errbuf *e, const json_t *obj, const char *path, const char *const *allowed)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v) {
        bool ok = false;
        for (const char *const *a = allowed; *a; a++)
            if (strcmp(*a, key) == 0) {
                ok = true;
                break;
            }
        if (!ok) {
            char p[PATH_MAX_LEN];
            join_path(p, path, key);
            return fail(e, "unknown key \"%s\"", p);
        }
    }
    return 0;
}

static int want_object(errbuf *e, const json_t *v, const char *path)
{
    if (!json_is_object(v))
        return fail(e, "\"%s\" is %s, expected an object", path, type_desc(v));
    return 0;
}

static int get_string(errbuf *e, const json_t *v, const char *path, char *dst, size_t cap, bool allow_empty)
{
    if (!json_is_string(v))
        return fail(e, "\"%s\" is %s, expected a string", path, type_desc(v));
    size_t n = json_string_length(v);
    if (n == 0 && !allow_empty)
        return fail(e, "\"%s\" is empty", path);
    if (n >= cap)
        return fail(e, "\"%s\" is %zu bytes long, the limit is %zu", path, n, cap - 1);
    memcpy(dst, json_string_value(v), n + 1);
    return 0;
}

static int get_int64(errbuf *e, const json_t *v, const char *path, int64_t min, int64_t max, int64_t *out)
{
    if (!json_is_integer(v))
        return fail(e, "\"%s\" is %s, expected an integer", path, type_desc(v));
    json_int_t x = json_integer_value(v);
    if (x < min || x > max)
        return fail(e, "\"%s\" is %lld, must be in %lld..%lld", path, (long long)x, (long long)min,
                    (long long)max);
    *out = (int64_t)x;
    return 0;
}

static int get_int(errbuf *e, const json_t *v, const char *path, int min, int max, int *out)
{
    int64_t x = 0;
    if (get_int64(e, v, path, min, max, &x))
        return -1;
    *out = (int)x;
    return 0;
}

/* A number (integer or real) in [min, max], or (min, max] when min_exclusive. */
static int get_number(errbuf *e, const json_t *v, const char *path, double min, bool min_exclusive, double max,
                      double *out)
{
    if (!json_is_number(v))
        return fail(e, "\"%s\" is %s, expected a number", path, type_desc(v));
    double x = json_number_value(v);
    if (!isfinite(x) || (min_exclusive ? x <= min : x < min) || x > max)
        return fail(e, "\"%s\" is %g, must be %s %g and <= %g", path, x, min_exclusive ? ">" : ">=", min, max);
    *out = x;
    return 0;
}

static int get_bool(errbuf *e, const json_t *v, const char *path, int *out)
{
    if (!json_is_boolean(v))
        return fail(e, "\"%s\" is %s, expected true or false", path, type_desc(v));
    *out = json_is_true(v);
    return 0;
}

int fr_config_parse_duration(const char *s, int64_t *ms)
{
    static const struct {
        const char *unit;
        int64_t ms;
    } units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
    if (!s || !*s)
        return -1;
    int64_t total = 0;
    const char *p = s;
    while (*p) {
        if (*p < '0' || *p > '9')
            return -1;
        int64_t n = 0;
        while (*p >= '0' && *p <= '9') {
            if (n > (INT64_MAX - 9) / 10)
                return -1;
            n = n * 10 + (*p++ - '0');
        }
        /* longest unit first, so "5ms" is not read as 5 minutes followed by garbage */
        int64_t mult = 0;
        size_t ulen = 0;
        for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
            size_t l = strlen(units[i].unit);
            if (strncmp(p, units[i].unit, l) == 0 && l > ulen) {
                mult = units[i].ms;
                ulen = l;
            }
        }
        if (!mult)
            return -1;
        p += ulen;
        if (n > INT64_MAX / mult || total > INT64_MAX - n * mult)
            return -1;
        total += n * mult;
    }
    *ms = total;
    return 0;
}

/* Every duration is at most 100 years: event times (<= FR_TS_MAX) plus any window, ttl or half-life
 * then stay far from int64 overflow, wherever they are added. */
static const int64_t DURATION_MAX_MS = INT64_C(100) * 365 * 86400000;

/* A duration: a string like "30m" / "1h30m", or an integer number of milliseconds. */
static int get_duration(errbuf *e, const json_t *v, const char *path, bool allow_zero, int64_t *out)
{
    int64_t ms;
    if (json_is_integer(v)) {
        if (json_integer_value(v) < 0)
            return fail(e, "\"%s\" is %lld, a duration cannot be negative", path, (long long)json_integer_value(v));
        ms = (int64_t)json_integer_value(v);
    } else if (json_is_string(v)) {
        if (fr_config_parse_duration(json_string_value(v), &ms) != 0)
            return fail(e,
                        "\"%s\" is \"%s\", not a duration; write e.g. \"500ms\", \"90s\", \"30m\", \"2h\", \"7d\" "
                        "or an integer number of milliseconds",
                        path, json_string_value(v));
    } else {
        return fail(e, "\"%s\" is %s, expected a duration string like \"30m\" or integer milliseconds", path,
                    type_desc(v));
    }
    if (ms == 0 && !allow_zero)
        return fail(e, "\"%s\" must be longer than zero", path);
    if (ms > DURATION_MAX_MS) {
        if (json_is_string(v))
            return fail(e, "\"%s\" is \"%s\": durations are limited to 100 years (\"36500d\")", path,
                        json_string_value(v));
        return fail(e, "\"%s\" is %lld ms: durations are limited to 100 years (%lld ms)", path, (long long)ms,
                    (long long)DURATION_MAX_MS);
    }
    *out = ms;
    return 0;
}

/* Days from 1970-01-01 to the civil date y-m-d (proleptic Gregorian; H. Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const int64_t yoe = y - era * 400;
    const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

int fr_config_parse_instant(const char *s, int64_t *ms)
{
    static const int mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int y, mo, d, h = 0, mi = 0, sec = 0, used = 0;
    if (!s || sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &used) != 3 || used != 10)
        return -1;
    if (s[10] != '\0') {
        int tail = 0;
        if (sscanf(s + 10, "T%2d:%2d:%2dZ%n", &h, &mi, &sec, &tail) != 3 || tail != 10 || s[20] != '\0')
            return -1;
    }
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] ||
        (mo == 2 && d == 29 && !(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0))) || h > 23 || mi > 59 || sec > 59)
        return -1;
    *ms = ((days_from_civil(y, mo, d) * 24 + h) * 60 + mi) * 60000 + sec * INT64_C(1000);
    return 0;
}

/* An instant: a UTC date "YYYY-MM-DD" or "YYYY-MM-DDTHH:MM:SSZ", or integer ms since the epoch. */
static int get_instant(errbuf *e, const json_t *v, const char *path, int64_t *out)
{
    if (json_is_integer(v)) {
        if (json_integer_value(v) < 0 || json_integer_value(v) > FR_TS_MAX)
            return fail(e, "\"%s\" is %lld, expected milliseconds since 1970 up to year 9999", path,
                        (long long)json_integer_value(v));
        *out = (int64_t)json_integer_value(v);
        return 0;
    }
    if (json_is_string(v) && fr_config_parse_instant(json_string_value(v), out) == 0)
        return 0;
    if (json_is_string(v))
        return fail(e, "\"%s\" is \"%s\", not a UTC date; write e.g. \"2000-01-01\" or \"2000-01-01T00:00:00Z\"",
                    path, json_string_value(v));
    return fail(e, "\"%s\" is %s, expected a UTC date like \"2000-01-01\" or integer milliseconds since 1970", path,
                type_desc(v));
}

/* Kafka's own rule for topic names, checked here so a typo fails at start, not at subscribe. */
static int check_topic(errbuf *e, const char *name, const char *path)
{
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '.' ||
              *p == '_' || *p == '-'))
            return fail(e, "\"%s\" is \"%s\"; Kafka topic names use only letters, digits, '.', '_' and '-'", path,
                        name);
    return 0;
}

/* The model's input sizes follow from the schema. */
static void assign_slots(fr_config *c)
{
    fr_schema_assign_slots(&c->schema);
    c->model.n_cat = c->schema.n_cat;
    c->model.n_num = c->schema.n_num;
    c->model.n_multi = c->schema.n_multi;
    c->model.n_scenarios = c->schema.n_scenarios;
}

void fr_config_defaults(fr_config *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->brokers, sizeof c->brokers, "127.0.0.1:19092");
    snprintf(c->group_id, sizeof c->group_id, "freshet");
    snprintf(c->topic[0], sizeof c->topic[0], "impressions");
    snprintf(c->topic[1], sizeof c->topic[1], "clicks");
    snprintf(c->topic[2], sizeof c->topic[2], "conversions");
    fr_schema_defaults(&c->schema);
    c->load_schema_id = -1;

    c->click_window_ms = INT64_C(30) * 60 * 1000;
    c->attribution_window_ms = INT64_C(7) * 24 * 3600 * 1000;
    c->allowed_lateness_ms = 0;
    fr_evtime_config_defaults(&c->evtime);
    c->join_policy = FR_POLICY_ESDFM;
    c->observation_window_ms = INT64_C(15) * 60 * 1000;
    c->real_negative_window_ms = 0;
    c->weight_clip = 5.0;
    c->rn_floor = 0.01;
    c->helper_buckets_log2 = 16;
    c->max_cached_entries = 1000000;
    c->partitions = 1;
    fr_guard_config_defaults(&c->guard);

    fr_model_config_defaults(&c->model);

    snprintf(c->checkpoint_dir, sizeof c->checkpoint_dir, "freshet-state");
    c->checkpoint_every_seconds = 10;
    c->checkpoint_every_samples = 200000;
    c->history_bucket_ms = 3600000;
    c->history_keep = 10000;

    snprintf(c->redis_host, sizeof c->redis_host, "127.0.0.1");
    c->redis_port = 16379;
    snprintf(c->redis_prefix, sizeof c->redis_prefix, "freshet");
    c->redis_keep_versions = 5;

    c->status_every_seconds = 5;
    assign_slots(c);
}

/* ---- sections ------------------------------------------------------------------------------ */

/* kafka.topics.<key>: a topic name, or {"name": ..., "format": "json" | "protobuf"}. */
static int load_topic(errbuf *e, fr_config *c, int t, const json_t *tv, const char *key)
{
    char p[PATH_MAX_LEN], q[PATH_MAX_LEN];
    join_path(p, "kafka.topics", key);
    if (json_is_object(tv)) {
        static const char *const okeys[] = {"name", "format", NULL};
        if (check_keys(e, tv, p, okeys))
            return -1;
        const json_t *f = json_object_get(tv, "format");
        if (f) {
            char name[16];
            join_path(q, p, "format");
            if (get_string(e, f, q, name, sizeof name, false) ||
                fr_event_format_parse(name, &c->topic_format[t]) != 0)
                return fail(e, "\"%s\" must be \"json\" or \"protobuf\"", q);
        }
        tv = json_object_get(tv, "name");
        if (!tv)
            return 0;
        join_path(q, p, "name");
        memcpy(p, q, sizeof p);
    }
    return get_string(e, tv, p, c->topic[t], sizeof c->topic[t], false) || check_topic(e, c->topic[t], p);
}

fr_event_format fr_config_topic_format(const fr_config *c, const char *topic)
{
    for (int t = 0; t < 3; t++)
        if (strcmp(c->topic[t], topic) == 0)
            return c->topic_format[t];
    return FR_FORMAT_JSON;
}

static int load_kafka(errbuf *e, fr_config *c, const json_t *o)
{
    static const char *const keys[] = {"brokers",           "group_id",   "topics", "max_message_bytes",
                                       "dead_letter_topic", "properties", NULL};
    if (want_object(e, o, "kafka") || check_keys(e, o, "kafka", keys))
        return -1;
    const json_t *v;
    if ((v = json_object_get(o, "brokers")) &&
        get_string(e, v, "kafka.brokers", c->brokers, sizeof c->brokers, false))
        return -1;
    if ((v = json_object_get(o, "group_id")) &&
        get_string(e, v, "kafka.group_id", c->group_id, sizeof c->group_id, false))
        return -1;
    if ((v = json_object_get(o, "max_message_bytes")) &&
        get_int(e, v, "kafka.max_message_bytes", 1, 64 * 1024 * 1024, &c->schema.max_message_bytes))
        return -1;
    if ((v = json_object_get(o, "dead_letter_topic")) &&
        (get_string(e, v, "kafka.dead_letter_topic", c->dead_letter_topic, sizeof c->dead_letter_topic, true) ||
         (c->dead_letter_topic[0] && check_topic(e, c->dead_letter_topic, "kafka.dead_letter_topic"))))
        return -1;
    if ((v = json_object_get(o, "properties"))) {
        if (want_object(e, v, "kafka.properties")) return -1;
        /* what Freshet's exactly-once and its own keys decide cannot be overridden */
        static const char *const owned[][2] = {{"bootstrap.servers", "kafka.brokers"},
                                               {"group.id", "kafka.group_id"},
                                               {"enable.auto.commit", NULL},
                                               {"enable.auto.offset.store", NULL},
                                               {"enable.partition.eof", NULL}};
        const char *k;
        const json_t *pv;
        c->n_kafka_props = 0;
        json_object_foreach((json_t *)v, k, pv) {
            char p[PATH_MAX_LEN];
            join_path(p, "kafka.properties", k);
            for (size_t i = 0; i < sizeof owned / sizeof owned[0]; i++)
                if (strcmp(k, owned[i][0]) == 0)
                    return owned[i][1] ? fail(e, "\"%s\": set it with \"%s\"", p, owned[i][1])
                                       : fail(e, "\"%s\": Freshet sets it (offsets live in the checkpoint)", p);
            if (c->n_kafka_props >= FR_MAX_KAFKA_PROPS)
                return fail(e, "\"kafka.properties\": at most %d properties", FR_MAX_KAFKA_PROPS);
            if (strlen(k) >= FR_PATH_MAX) return fail(e, "\"%s\": name too long", p);
            snprintf(c->kafka_prop[c->n_kafka_props][0], FR_PATH_MAX, "%s", k);
            if (get_string(e, pv, p, c->kafka_prop[c->n_kafka_props][1], FR_PATH_MAX, false)) return -1;
            c->n_kafka_props++;
        }
    }
    if ((v = json_object_get(o, "topics"))) {
        static const char *const tkeys[] = {"impressions", "clicks", "conversions", NULL};
        if (want_object(e, v, "kafka.topics") || check_keys(e, v, "kafka.topics", tkeys))
            return -1;
        for (int t = 0; t < 3; t++) {
            const json_t *tv = json_object_get(v, tkeys[t]);
            if (tv && load_topic(e, c, t, tv, tkeys[t]))
                return -1;
        }
        /* one topic, one format: a mixed topic's messages cannot say which decoder they need */
        for (int t = 1; t < 3; t++)
            for (int u = 0; u < t; u++)
                if (strcmp(c->topic[t], c->topic[u]) == 0 && c->topic_format[t] != c->topic_format[u])
                    return fail(e,
                                "\"kafka.topics.%s\" is topic \"%s\" in format \"%s\", and \"kafka.topics.%s\" is "
                                "the same topic in format \"%s\"; one topic has one format",
                                tkeys[t], c->topic[t], fr_event_format_name(c->topic_format[t]), tkeys[u],
                                fr_event_format_name(c->topic_format[u]));
    }
    return 0;
}

static int load_scenarios(errbuf *e, fr_config *c, const json_t *a)
{
    if (!json_is_array(a))
        return fail(e, "\"scenarios\" is %s, expected an array of names", type_desc(a));
    size_t n = json_array_size(a);
    if (n == 0)
        return fail(e, "\"scenarios\" is empty; list at least one scenario name");
    if (n > FR_MAX_SCENARIOS)
        return fail(e, "\"scenarios\" lists %zu names, the limit is %d", n, FR_MAX_SCENARIOS);
    c->schema.n_scenarios = 0;
    for (size_t i = 0; i < n; i++) {
        char p[PATH_MAX_LEN];
        snprintf(p, sizeof p, "scenarios[%zu]", i);
        char *dst = c->schema.scenarios[c->schema.n_scenarios];
        if (get_string(e, json_array_get(a, i), p, dst, FR_NAME_MAX, false))
            return -1;
        if (fr_schema_scenario_index(&c->schema, dst, strlen(dst)) >= 0)
            return fail(e, "\"%s\": scenario \"%s\" is listed twice", p, dst);
        c->schema.n_scenarios++;
    }
    return 0;
}

static int load_field(errbuf *e, fr_field *f, const json_t *o, const char *path)
{
    static const char *const keys[] = {"name", "kind", "transform", "max_len", "admit_after", "admit_width_log2",
                                       "ttl", "admit_half_life", NULL};
    if (want_object(e, o, path) || check_keys(e, o, path, keys))
        return -1;
    char p[PATH_MAX_LEN];
    memset(f, 0, sizeof *f);

    const json_t *v = json_object_get(o, "name");
    join_path(p, path, "name");
    if (!v)
        return fail(e, "\"%s\" is missing", p);
    if (get_string(e, v, p, f->name, sizeof f->name, false))
        return -1;
    /* the scenario is hashed with the field hash of "scenario" into slot 0; a declared field of
     * that name would share its keys */
    if (strcmp(f->name, "scenario") == 0)
        return fail(e, "\"%s\": \"scenario\" is reserved (the scenario is always categorical slot 0)", p);

    v = json_object_get(o, "kind");
    join_path(p, path, "kind");
    if (!v)
        return fail(e, "\"%s\" is missing (field \"%s\"); use categorical, numeric or multi", p, f->name);
    if (!json_is_string(v))
        return fail(e, "\"%s\" is %s, expected \"categorical\", \"numeric\" or \"multi\"", p, type_desc(v));
    if (strcmp(json_string_value(v), "categorical") == 0)
        f->kind = FR_FIELD_CATEGORICAL;
    else if (strcmp(json_string_value(v), "numeric") == 0)
        f->kind = FR_FIELD_NUMERIC;
    else if (strcmp(json_string_value(v), "multi") == 0)
        f->kind = FR_FIELD_MULTI;
    else
        return fail(e, "\"%s\" is \"%s\"; use categorical, numeric or multi", p, json_string_value(v));

    v = json_object_get(o, "transform");
    join_path(p, path, "transform");
    if (v) {
        if (f->kind != FR_FIELD_NUMERIC)
            return fail(e, "\"%s\": only numeric fields take a transform (field \"%s\" is %s)", p, f->name,
                        json_string_value(json_object_get(o, "kind")));
        if (!json_is_string(v))
            return fail(e, "\"%s\" is %s, expected \"identity\" or \"log1p\"", p, type_desc(v));
        if (strcmp(json_string_value(v), "identity") == 0)
            f->transform = FR_NUM_IDENTITY;
        else if (strcmp(json_string_value(v), "log1p") == 0)
            f->transform = FR_NUM_LOG1P;
        else
            return fail(e, "\"%s\" is \"%s\"; use identity or log1p", p, json_string_value(v));
    }

    v = json_object_get(o, "max_len");
    join_path(p, path, "max_len");
    if (v) {
        if (f->kind != FR_FIELD_MULTI)
            return fail(e, "\"%s\": only multi fields take max_len (field \"%s\" is %s)", p, f->name,
                        json_string_value(json_object_get(o, "kind")));
        if (get_int(e, v, p, 1, FR_MAX_MULTI_LEN, &f->max_len))
            return -1;
    } else if (f->kind == FR_FIELD_MULTI) {
        f->max_len = FR_MAX_MULTI_LEN;
    }

    f->admit_after = 1;
    f->admit_width_log2 = 20;
    f->admit_half_life_ms = 86400000;
    static const char *const row_keys[] = {"admit_after", "admit_width_log2", "ttl", "admit_half_life"};
    for (int k = 0; k < 4; k++) {
        v = json_object_get(o, row_keys[k]);
        join_path(p, path, row_keys[k]);
        if (!v) continue;
        if (f->kind == FR_FIELD_NUMERIC)
            return fail(e, "\"%s\": only categorical and multi fields have embedding rows (field \"%s\" is numeric)", p,
                        f->name);
        if (k == 0 && get_int(e, v, p, 1, 15, &f->admit_after)) return -1;
        if (k == 1 && get_int(e, v, p, 11, 28, &f->admit_width_log2)) return -1;
        if (k == 2 && get_duration(e, v, p, true, &f->ttl_ms)) return -1;
        if (k == 3 && get_duration(e, v, p, true, &f->admit_half_life_ms)) return -1;
    }
    return 0;
}

static int load_fields(errbuf *e, fr_config *c, const json_t *a)
{
    if (!json_is_array(a))
        return fail(e, "\"fields\" is %s, expected an array of field objects", type_desc(a));
    int ncat = 0, nnum = 0, nmulti = 0;
    c->schema.n_fields = 0;
    for (size_t i = 0; i < json_array_size(a); i++) {
        char p[PATH_MAX_LEN];
        snprintf(p, sizeof p, "fields[%zu]", i);
        fr_field f;
        if (load_field(e, &f, json_array_get(a, i), p))
            return -1;
        for (int j = 0; j < c->schema.n_fields; j++)
            if (strcmp(c->schema.fields[j].name, f.name) == 0)
                return fail(e, "\"%s.name\": field \"%s\" is declared twice (also fields[%d])", p, f.name, j);
        /* categorical slot 0 is the scenario, so declared categoricals get FR_MAX_CAT - 1 */
        if (f.kind == FR_FIELD_CATEGORICAL && ++ncat > FR_MAX_CAT - 1)
            return fail(e, "\"%s\": too many categorical fields, the limit is %d (plus the scenario)", p,
                        FR_MAX_CAT - 1);
        if (f.kind == FR_FIELD_NUMERIC && ++nnum > FR_MAX_NUM)
            return fail(e, "\"%s\": too many numeric fields, the limit is %d", p, FR_MAX_NUM);
        if (f.kind == FR_FIELD_MULTI && ++nmulti > FR_MAX_MULTI)
            return fail(e, "\"%s\": too many multi fields, the limit is %d", p, FR_MAX_MULTI);
        c->schema.fields[c->schema.n_fields++] = f;
    }
    return 0;
}

static int load_join(errbuf *e, fr_config *c, const json_t *o)
{
    static const char *const keys[] = {"click_window",       "attribution_window",   "allowed_lateness",
                                       "max_ahead",          "ahead_confirm",        "ahead_reject",
                                       "min_event_time",     "policy",               "observation_window",
                                       "real_negative_window", "weight_clip",        "rn_floor",
                                       "helper_buckets_log2", "max_cached_entries",  "partitions", NULL};
    if (want_object(e, o, "join") || check_keys(e, o, "join", keys))
        return -1;
    const json_t *v;
    if ((v = json_object_get(o, "click_window")) &&
        get_duration(e, v, "join.click_window", false, &c->click_window_ms))
        return -1;
    if ((v = json_object_get(o, "attribution_window")) &&
        get_duration(e, v, "join.attribution_window", false, &c->attribution_window_ms))
        return -1;
    if ((v = json_object_get(o, "allowed_lateness")) &&
        get_duration(e, v, "join.allowed_lateness", true, &c->allowed_lateness_ms))
        return -1;
    fr_evtime_config *et = &c->evtime;
    if ((v = json_object_get(o, "max_ahead")) && get_duration(e, v, "join.max_ahead", true, &et->max_ahead_ms))
        return -1;
    int n;
    if ((v = json_object_get(o, "ahead_confirm"))) {
        if (get_int(e, v, "join.ahead_confirm", 1, FR_EVTIME_MAX_VOTES, &n))
            return -1;
        et->confirm = (uint32_t)n;
    }
    if ((v = json_object_get(o, "ahead_reject"))) {
        if (get_int(e, v, "join.ahead_reject", 1, FR_EVTIME_MAX_VOTES, &n))
            return -1;
        et->reject = (uint32_t)n;
    }
    if ((v = json_object_get(o, "min_event_time")) && get_instant(e, v, "join.min_event_time", &et->min_ts_ms))
        return -1;
    if ((v = json_object_get(o, "policy"))) {
        char name[FR_NAME_MAX];
        if (get_string(e, v, "join.policy", name, sizeof name, false))
            return -1;
        int pol = fr_policy_from_name(name);
        if (pol < 0) {
            char names[160] = "";
            for (int i = 0; i < FR_NPOLICIES; i++)
                snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s",
                         i == 0 ? "" : i == FR_NPOLICIES - 1 ? " or " : ", ", fr_policy_name((fr_policy_id)i));
            return fail(e, "\"join.policy\" is \"%s\", expected %s", name, names);
        }
        c->join_policy = (fr_policy_id)pol;
    }
    if ((v = json_object_get(o, "observation_window")) &&
        get_duration(e, v, "join.observation_window", true, &c->observation_window_ms))
        return -1;
    if ((v = json_object_get(o, "real_negative_window")) &&
        get_duration(e, v, "join.real_negative_window", true, &c->real_negative_window_ms))
        return -1;
    if ((v = json_object_get(o, "weight_clip")) && get_number(e, v, "join.weight_clip", 0, true, 1e6, &c->weight_clip))
        return -1;
    if ((v = json_object_get(o, "rn_floor")) && get_number(e, v, "join.rn_floor", 0, false, 1, &c->rn_floor))
        return -1;
    if ((v = json_object_get(o, "helper_buckets_log2")) &&
        get_int(e, v, "join.helper_buckets_log2", 4, 26, &c->helper_buckets_log2))
        return -1;
    if ((v = json_object_get(o, "max_cached_entries")) &&
        get_int64(e, v, "join.max_cached_entries", 0, INT64_C(1) << 40, &c->max_cached_entries))
        return -1;
    if ((v = json_object_get(o, "partitions")) && get_int(e, v, "join.partitions", 1, 256, &c->partitions))
        return -1;
    if (c->max_cached_entries == 1)
        return fail(e, "\"join.max_cached_entries\" is 1: use 0 (no spilling) or at least 2 (a checkpoint keeps half)");
    if (c->observation_window_ms > c->attribution_window_ms) {
        /* Only the window policies need w_o; the others keep working with short test windows. */
        if (json_object_get(o, "observation_window"))
            return fail(e, "\"join.observation_window\" must not exceed join.attribution_window");
        c->observation_window_ms = c->attribution_window_ms;
    }
    if (c->real_negative_window_ms &&
        (c->real_negative_window_ms < c->observation_window_ms || c->real_negative_window_ms > c->attribution_window_ms))
        return fail(e, "\"join.real_negative_window\" must lie between join.observation_window and join.attribution_window");
    return 0;
}

static int load_guard(errbuf *e, fr_guard_config *g, const json_t *o)
{
    static const char *const keys[] = {"enabled",       "short_half_life", "long_half_life", "trip_fraction",
                                       "resume_fraction", "min_impressions", "min_clicks",   "max_pause", NULL};
    if (want_object(e, o, "guard") || check_keys(e, o, "guard", keys))
        return -1;
    const json_t *v;
    if ((v = json_object_get(o, "enabled")) && get_bool(e, v, "guard.enabled", &g->enabled))
        return -1;
    if ((v = json_object_get(o, "short_half_life")) &&
        get_duration(e, v, "guard.short_half_life", false, &g->short_half_life_ms))
        return -1;
    if ((v = json_object_get(o, "long_half_life")) &&
        get_duration(e, v, "guard.long_half_life", false, &g->long_half_life_ms))
        return -1;
    if ((v = json_object_get(o, "trip_fraction")) &&
        get_number(e, v, "guard.trip_fraction", 0, true, 0.999, &g->trip_fraction))
        return -1;
    if ((v = json_object_get(o, "resume_fraction")) &&
        get_number(e, v, "guard.resume_fraction", 0, true, 1, &g->resume_fraction))
        return -1;
    if ((v = json_object_get(o, "min_impressions")) &&
        get_number(e, v, "guard.min_impressions", 1, false, 1e12, &g->min_impressions))
        return -1;
    if ((v = json_object_get(o, "min_clicks")) && get_number(e, v, "guard.min_clicks", 1, false, 1e12, &g->min_clicks))
        return -1;
    if ((v = json_object_get(o, "max_pause")) && get_duration(e, v, "guard.max_pause", true, &g->max_pause_ms))
        return -1;
    if (g->long_half_life_ms <= g->short_half_life_ms)
        return fail(e, "\"guard.long_half_life\" must be longer than guard.short_half_life");
    if (g->resume_fraction < g->trip_fraction)
        return fail(e, "\"guard.resume_fraction\" must be at least guard.trip_fraction");
    return 0;
}
/* The architectures as presets of the engine's explicit keys (learner/fr_model.h); explicit keys
 * given next to "architecture" override the preset's values. */
static const struct {
    const char *name;
    int shared, task, learner, levels, learners;
    float distill, learner_loss;
} ARCHITECTURES[] = {
    {"shared_bottom", 1, 0, 0, 1, 1, 0.0f, 0.0f},
    {"mmoe", 4, 0, 0, 1, 1, 0.0f, 0.0f},
    {"cgc", 2, 2, 0, 1, 1, 0.0f, 0.0f},
    {"ple", 2, 2, 0, 2, 1, 0.0f, 0.0f},
    {"taml", 2, 1, 1, 1, 2, 0.5f, 0.0f},
};

/* DFUB's fields by name: the categorical slot (the scenario is slot 0) or the multi-field index of
 * field `name` among c's fields, or -1 when no field of that kind has the name. */
static int field_slot(const fr_config *c, const char *name, fr_field_kind kind)
{
    return fr_schema_field_slot(&c->schema, name, kind);
}

/* "expected adagrad or adam": a CHOICE key's names for a message. */
static void choice_list(const fr_model_field *f, char *buf, size_t len)
{
    size_t o = 0;
    buf[0] = '\0';
    for (int i = 0; f->names[i] && o < len; i++) {
        const char *sep = i == 0 ? "" : f->names[i + 1] ? ", " : " or ";
        int k = snprintf(buf + o, len - o, "%s%s", sep, f->names[i]);
        if (k < 0) return;
        o += (size_t)k;
    }
}

/* One key of the "model" section, as learner/fr_model_config.def describes it. */
static int load_model_key(errbuf *e, fr_config *cfg, const fr_model_field *f, const json_t *v)
{
    fr_model_config *m = &cfg->model;
    char p[PATH_MAX_LEN], name[FR_NAME_MAX];
    join_path(p, "model", f->name);
    switch (f->kind) {
    case FR_MC_K_INT: {
        int x;
        if (get_int(e, v, p, (int)f->lo, (int)f->hi, &x)) return -1;
        fr_model_field_set(m, f, x);
        return 0;
    }
    case FR_MC_K_REAL: {
        /* the upper bounds below FR_MC_REAL_MAX (Adam's betas) hold only with their component:
         * fr_model_config_validate checks them once the whole section is read */
        double x;
        if (get_number(e, v, p, f->lo, (f->flags & FR_MC_LO_OPEN) != 0, FR_MC_REAL_MAX, &x)) return -1;
        fr_model_field_set(m, f, x);
        return 0;
    }
    case FR_MC_K_CHOICE: {
        if (get_string(e, v, p, name, sizeof name, false)) return -1;
        int x = fr_model_field_choice(f, name);
        if (x < 0) {
            char names[128];
            choice_list(f, names, sizeof names);
            return fail(e, "\"%s\" is \"%s\", expected %s", p, name, names);
        }
        fr_model_field_set(m, f, x);
        return 0;
    }
    case FR_MC_K_SLOT: {
        if (get_string(e, v, p, name, sizeof name, false)) return -1;
        int slot = field_slot(cfg, name, f->field_kind == FR_MC_MULTI ? FR_FIELD_MULTI : FR_FIELD_CATEGORICAL);
        if (slot < 0) return fail(e, "\"%s\" is \"%s\", which is not %s of \"fields\"", p, name, f->what);
        fr_model_field_set(m, f, slot);
        return 0;
    }
    case FR_MC_K_SEED: {
        int64_t x;
        if (get_int64(e, v, p, 0, INT64_MAX, &x)) return -1;
        fr_model_field_set_u64(m, f, (uint64_t)x);
        return 0;
    }
    }
    return 0;
}

static int load_model(errbuf *e, fr_config *cfg, const json_t *o)
{
    fr_model_config *m = &cfg->model;
    /* the table's keys (without the sizes that follow from "fields" and "scenarios"), and the preset */
    const char *keys[128];
    size_t nk = 0;
    keys[nk++] = "architecture";
    for (int i = 0; i < fr_model_field_count() && nk + 1 < sizeof keys / sizeof keys[0]; i++)
        if (!(fr_model_field_at(i)->flags & FR_MC_DERIVED)) keys[nk++] = fr_model_field_at(i)->name;
    keys[nk] = NULL;
    if (want_object(e, o, "model") || check_keys(e, o, "model", keys))
        return -1;
    const json_t *arch = json_object_get(o, "architecture");
    if (arch) {
        char name[FR_NAME_MAX];
        if (get_string(e, arch, "model.architecture", name, sizeof name, false))
            return -1;
        size_t i = 0, n = sizeof ARCHITECTURES / sizeof ARCHITECTURES[0];
        while (i < n && strcmp(name, ARCHITECTURES[i].name) != 0) i++;
        if (i == n)
            return fail(e, "\"model.architecture\" is \"%s\", expected shared_bottom, mmoe, cgc, ple or taml", name);
        m->n_experts = ARCHITECTURES[i].shared;
        m->n_task_experts = ARCHITECTURES[i].task;
        m->n_learner_experts = ARCHITECTURES[i].learner;
        m->n_levels = ARCHITECTURES[i].levels;
        m->n_learners = ARCHITECTURES[i].learners;
        m->distill = ARCHITECTURES[i].distill;
        m->learner_loss = ARCHITECTURES[i].learner_loss;
    }
    /* explicit keys after the preset, so they override it */
    for (int i = 0; i < fr_model_field_count(); i++) {
        const fr_model_field *f = fr_model_field_at(i);
        const json_t *v = json_object_get(o, f->name);
        if (v && !(f->flags & FR_MC_DERIVED) && load_model_key(e, cfg, f, v))
            return -1;
    }
    /* DFUB's fields are named in the file: there is no default to fall back on */
    for (int i = 0; i < fr_model_field_count(); i++) {
        const fr_model_field *f = fr_model_field_at(i);
        if (f->kind == FR_MC_K_SLOT && fr_model_field_applies(f, m) && !json_object_get(o, f->name))
            return fail(e, "\"model.%s\" is missing: model.dfub_heads = %d needs the name of %s", f->name, m->dfub_heads,
                        f->what);
    }
    /* Several learners without a preset: how much the fused score teaches them is a choice the
     * file must make, not a default that silently differs from TAML's. */
    if (!arch && m->n_learners > 1 && !json_object_get(o, "distill"))
        return fail(e, "\"model.distill\" is missing: model.n_learners = %d needs a self-distillation weight "
                       "(0 turns distillation off)",
                    m->n_learners);
    return 0;
}

static int load_checkpoint(errbuf *e, fr_config *c, const json_t *o)
{
    static const char *const keys[] = {"dir", "every_seconds", "every_samples", NULL};
    if (want_object(e, o, "checkpoint") || check_keys(e, o, "checkpoint", keys))
        return -1;
    const json_t *v;
    if ((v = json_object_get(o, "dir")) &&
        get_string(e, v, "checkpoint.dir", c->checkpoint_dir, sizeof c->checkpoint_dir, false))
        return -1;
    if ((v = json_object_get(o, "every_seconds")) &&
        get_number(e, v, "checkpoint.every_seconds", 0, false, 1e9, &c->checkpoint_every_seconds))
        return -1;
    if ((v = json_object_get(o, "every_samples")) &&
        get_int64(e, v, "checkpoint.every_samples", 0, INT64_MAX, &c->checkpoint_every_samples))
        return -1;
    return 0;
}

static int load_history(errbuf *e, fr_config *c, const json_t *o)
{
    static const char *const keys[] = {"bucket", "keep", NULL};
    if (want_object(e, o, "history") || check_keys(e, o, "history", keys))
        return -1;
    const json_t *v;
    if ((v = json_object_get(o, "bucket")) && get_duration(e, v, "history.bucket", false, &c->history_bucket_ms))
        return -1;
    if (c->history_bucket_ms > FR_HISTORY_MAX_WIDTH_MS)
        return fail(e, "\"history.bucket\" is %lld ms, longer than 366 days", (long long)c->history_bucket_ms);
    if ((v = json_object_get(o, "keep")) && get_int(e, v, "history.keep", 1, FR_HISTORY_MAX_KEEP, &c->history_keep))
        return -1;
    return 0;
}

static int load_redis(errbuf *e, fr_config *c, const json_t *o)
{
    static const char *const keys[] = {"host", "port", "prefix", "keep_versions", NULL};
    if (want_object(e, o, "redis") || check_keys(e, o, "redis", keys))
        return -1;
    const json_t *v;
    /* empty host is allowed: it turns publishing off */
    if ((v = json_object_get(o, "host")) && get_string(e, v, "redis.host", c->redis_host, sizeof c->redis_host, true))
        return -1;
    if ((v = json_object_get(o, "port")) && get_int(e, v, "redis.port", 1, 65535, &c->redis_port))
        return -1;
    if ((v = json_object_get(o, "prefix")) &&
        get_string(e, v, "redis.prefix", c->redis_prefix, sizeof c->redis_prefix, false))
        return -1;
    char why[200];
    /* the publisher's rule, checked here: a prefix it refuses would only fail every push */
    if (fr_publish_check_prefix(c->redis_prefix, why, sizeof why) != 0)
        return fail(e, "redis.prefix: %s", why);
    if ((v = json_object_get(o, "keep_versions")) &&
        get_int(e, v, "redis.keep_versions", 1, 1000000, &c->redis_keep_versions))
        return -1;
    return 0;
}

static int load_metrics(errbuf *e, fr_config *c, const json_t *o)
{
    static const char *const keys[] = {"listen", NULL};
    if (want_object(e, o, "metrics") || check_keys(e, o, "metrics", keys))
        return -1;
    const json_t *v = json_object_get(o, "listen");
    if (v && get_string(e, v, "metrics.listen", c->metrics_listen, sizeof c->metrics_listen, true))
        return -1;
    return 0;
}

static int load_root(errbuf *e, fr_config *c, const json_t *root)
{
    static const char *const keys[] = {"kafka", "scenarios", "allow_new_scenarios", "fields", "join", "model",
                                       "checkpoint", "redis", "status_every_seconds", "guard", "metrics",
                                       "history", NULL};
    if (!json_is_object(root))
        return fail(e, "the top level is %s, expected an object", type_desc(root));
    if (check_keys(e, root, "", keys))
        return -1;
    const json_t *v;
    if ((v = json_object_get(root, "kafka")) && load_kafka(e, c, v))
        return -1;
    if ((v = json_object_get(root, "scenarios")) && load_scenarios(e, c, v))
        return -1;
    if ((v = json_object_get(root, "allow_new_scenarios")) &&
        get_bool(e, v, "allow_new_scenarios", &c->schema.allow_new_scenarios))
        return -1;
    if ((v = json_object_get(root, "fields")) && load_fields(e, c, v))
        return -1;
    if ((v = json_object_get(root, "join")) && load_join(e, c, v))
        return -1;
    if ((v = json_object_get(root, "model")) && load_model(e, c, v))
        return -1;
    if ((v = json_object_get(root, "guard")) && load_guard(e, &c->guard, v))
        return -1;
    if ((v = json_object_get(root, "checkpoint")) && load_checkpoint(e, c, v))
        return -1;
    if ((v = json_object_get(root, "redis")) && load_redis(e, c, v))
        return -1;
    if ((v = json_object_get(root, "metrics")) && load_metrics(e, c, v))
        return -1;
    if ((v = json_object_get(root, "history")) && load_history(e, c, v))
        return -1;
    if ((v = json_object_get(root, "status_every_seconds")) &&
        get_number(e, v, "status_every_seconds", 0, true, 1e9, &c->status_every_seconds))
        return -1;

    /* A listed "other" already is the catch-all: appending a second one would give two indexes
     * to one name. */
    if (c->schema.allow_new_scenarios &&
        fr_schema_scenario_index(&c->schema, FR_OTHER_SCENARIO, strlen(FR_OTHER_SCENARIO)) < 0) {
        if (c->schema.n_scenarios >= FR_MAX_SCENARIOS)
            return fail(e, "\"allow_new_scenarios\" adds the scenario \"" FR_OTHER_SCENARIO
                           "\", but \"scenarios\" already lists the maximum of %d; remove one",
                        FR_MAX_SCENARIOS);
        snprintf(c->schema.scenarios[c->schema.n_scenarios++], FR_NAME_MAX, "%s", FR_OTHER_SCENARIO);
    }
    assign_slots(c);
    /* sizes that are fine alone but not together (the learner names the offending key) */
    char merr[256];
    if (fr_model_config_validate(&c->model, merr, sizeof merr))
        return fail(e, "%s", merr);
    return 0;
}

/* path: the file's name for messages, or NULL for a string */
static int load_json(fr_config *c, json_t *root, const json_error_t *jerr, const char *path, errbuf *e)
{
    if (!root) {
        if (jerr->line > 0)
            return fail(e, "%s%sJSON syntax error at line %d column %d: %s", path ? path : "", path ? ": " : "",
                        jerr->line, jerr->column, jerr->text);
        return fail(e, "%s", jerr->text);
    }
    fr_config tmp;
    fr_config_defaults(&tmp);
    int rc = load_root(e, &tmp, root);
    json_decref(root);
    if (rc == 0)
        *c = tmp;
    return rc;
}

int fr_config_load(fr_config *c, const char *path, char *err, size_t errlen)
{
    errbuf e = {err, errlen};
    json_error_t jerr;
    /* a duplicated key would leave it to the parser which value wins */
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    return load_json(c, root, &jerr, path, &e);
}

int fr_config_load_string(fr_config *c, const char *json, char *err, size_t errlen)
{
    errbuf e = {err, errlen};
    json_error_t jerr;
    json_t *root = json_loads(json, JSON_REJECT_DUPLICATES, &jerr);
    return load_json(c, root, &jerr, NULL, &e);
}
