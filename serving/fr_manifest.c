/* fr_manifest: see fr_manifest.h. */
#include "fr_manifest.h"

#include <stdio.h>
#include <string.h>

#include "fr_sample.h"

/* Names of fr_field_kind and fr_num_transform in the manifest. */
static const char *const KINDS[] = {"categorical", "numeric", "multi"};
static const char *const TRANSFORMS[] = {"identity", "log1p"};

static int field_kind(const char *name, fr_field_kind *k)
{
    for (int i = 0; i < 3; i++)
        if (strcmp(name, KINDS[i]) == 0) {
            *k = (fr_field_kind)i;
            return 0;
        }
    return -1;
}

static int model_size(const json_t *mc, const char *key, int want)
{
    const json_t *v = json_object_get(mc, key);
    return json_is_integer(v) && json_integer_value(v) == want;
}

int fr_manifest_schema(const json_t *manifest, fr_schema *s, char *err, size_t errlen)
{
    const json_t *d = json_object_get(manifest, "daemon");
    const json_t *fields = json_object_get(d, "fields"), *scen = json_object_get(d, "scenarios");
    const json_t *mc = json_object_get(manifest, "model_config");
    if (!json_is_array(fields) || !json_is_array(scen) || !json_is_object(mc)) {
        snprintf(err, errlen, "the manifest has no daemon.fields / daemon.scenarios: cannot decode JSON for it");
        return -1;
    }
    memset(s, 0, sizeof *s);
    s->max_message_bytes = 65536;
    size_t i;
    const json_t *v;
    if (json_array_size(scen) == 0 || json_array_size(scen) > FR_MAX_SCENARIOS) {
        snprintf(err, errlen, "the manifest's daemon.scenarios holds %zu names, expected 1 to %d", json_array_size(scen),
                 FR_MAX_SCENARIOS);
        return -1;
    }
    json_array_foreach(scen, i, v)
    {
        if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) >= FR_NAME_MAX) {
            snprintf(err, errlen, "the manifest's daemon.scenarios[%zu] is not a name of 1 to %d bytes", i,
                     FR_NAME_MAX - 1);
            return -1;
        }
        if (fr_schema_scenario_index(s, json_string_value(v), json_string_length(v)) >= 0) {
            snprintf(err, errlen, "the manifest's daemon.scenarios lists \"%s\" twice", json_string_value(v));
            return -1;
        }
        snprintf(s->scenarios[s->n_scenarios++], FR_NAME_MAX, "%s", json_string_value(v));
    }
    s->allow_new_scenarios = fr_schema_scenario_index(s, FR_OTHER_SCENARIO, strlen(FR_OTHER_SCENARIO)) >= 0;

    int count[3] = {0, 0, 0};
    const int limit[3] = {FR_MAX_CAT - 1, FR_MAX_NUM, FR_MAX_MULTI}; /* categorical slot 0 is the scenario */
    json_array_foreach(fields, i, v)
    {
        const json_t *name = json_object_get(v, "name"), *kind = json_object_get(v, "kind");
        const json_t *tr = json_object_get(v, "transform"), *ml = json_object_get(v, "max_len");
        fr_field_kind k;
        if (!json_is_string(name) || json_string_length(name) == 0 || json_string_length(name) >= FR_NAME_MAX ||
            strcmp(json_string_value(name), "scenario") == 0) {
            snprintf(err, errlen, "the manifest's daemon.fields[%zu].name is missing, empty, too long or \"scenario\"", i);
            return -1;
        }
        if (!json_is_string(kind) || field_kind(json_string_value(kind), &k) != 0) {
            snprintf(err, errlen, "the manifest's field \"%s\" has no kind categorical, numeric or multi",
                     json_string_value(name));
            return -1;
        }
        if (++count[k] > limit[k]) {
            snprintf(err, errlen, "the manifest has more %s fields than the limit of %d", json_string_value(kind), limit[k]);
            return -1;
        }
        for (int j = 0; j < s->n_fields; j++)
            if (strcmp(s->fields[j].name, json_string_value(name)) == 0) {
                snprintf(err, errlen, "the manifest declares the field \"%s\" twice", json_string_value(name));
                return -1;
            }
        fr_num_transform t = FR_NUM_IDENTITY;
        if (tr && (k != FR_FIELD_NUMERIC || !json_is_string(tr) ||
                   (strcmp(json_string_value(tr), "identity") != 0 && strcmp(json_string_value(tr), "log1p") != 0))) {
            snprintf(err, errlen, "the manifest's field \"%s\" has a transform other than identity or log1p",
                     json_string_value(name));
            return -1;
        }
        if (tr && strcmp(json_string_value(tr), "log1p") == 0) t = FR_NUM_LOG1P;
        int max_len = k == FR_FIELD_MULTI ? FR_MAX_MULTI_LEN : 0;
        if (ml) {
            if (k != FR_FIELD_MULTI || !json_is_integer(ml) || json_integer_value(ml) < 1 ||
                json_integer_value(ml) > FR_MAX_MULTI_LEN) {
                snprintf(err, errlen, "the manifest's field \"%s\" has a max_len outside 1..%d or is not multi",
                         json_string_value(name), FR_MAX_MULTI_LEN);
                return -1;
            }
            max_len = (int)json_integer_value(ml);
        }
        fr_field_init(&s->fields[s->n_fields++], json_string_value(name), k, t, max_len);
    }
    fr_schema_assign_slots(s);
    json_array_foreach(fields, i, v)
    {
        const json_t *slot = json_object_get(v, "slot");
        if (!json_is_integer(slot) || json_integer_value(slot) != s->fields[i].slot) {
            snprintf(err, errlen, "the manifest's field \"%s\" lands in another slot here than in the trainer",
                     s->fields[i].name);
            return -1;
        }
    }
    if (!model_size(mc, "n_cat", s->n_cat) || !model_size(mc, "n_num", s->n_num) ||
        !model_size(mc, "n_multi", s->n_multi) || !model_size(mc, "n_scenarios", s->n_scenarios)) {
        snprintf(err, errlen, "the manifest's field list does not match its model_config sizes");
        return -1;
    }
    return 0;
}

int fr_manifest_serve_transform(const json_t *manifest, fr_serve_transform *out, char *err, size_t errlen)
{
    const json_t *v = json_object_get(manifest, "serve_transform");
    if (!v) {
        *out = FR_SERVE_IDENTITY;
        return 0;
    }
    int t = json_is_string(v) ? fr_serve_transform_from_name(json_string_value(v)) : -1;
    if (t < 0) {
        snprintf(err, errlen, "manifest serve_transform \"%s\" is unknown to this reader (it knows identity and odds)",
                 json_is_string(v) ? json_string_value(v) : "(not a string)");
        return -1;
    }
    *out = (fr_serve_transform)t;
    return 0;
}

char *fr_manifest_daemon_json(const fr_schema *s)
{
    json_t *root = json_object(), *fields = json_array(), *scen = json_array();
    for (int i = 0; i < s->n_scenarios; i++) json_array_append_new(scen, json_string(s->scenarios[i]));
    for (int i = 0; i < s->n_fields; i++) {
        const fr_field *f = &s->fields[i];
        json_t *o = json_pack("{s:s, s:s, s:i}", "name", f->name, "kind", KINDS[f->kind], "slot", f->slot);
        if (f->kind == FR_FIELD_NUMERIC) json_object_set_new(o, "transform", json_string(TRANSFORMS[f->transform]));
        if (f->kind == FR_FIELD_MULTI) json_object_set_new(o, "max_len", json_integer(f->max_len));
        json_array_append_new(fields, o);
    }
    json_object_set_new(root, "scenarios", scen);
    json_object_set_new(root, "scenario_field", json_string("scenario"));
    json_object_set_new(root, "fields", fields);
    json_object_set_new(root, "hash", json_string("xxh3_64(value bytes, seed = xxh3_64(field name, seed 0x46524553484554)); 0 maps to 1"));
    json_object_set_new(root, "missing_categorical", json_string("see conf/README.md"));
    char *text = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(root);
    return text;
}

void fr_manifest_table_names(const char *daemon, int n_cat, int n_multi, char names[][FR_NAME_MAX])
{
    for (int t = 0; t < n_cat + n_multi; t++) snprintf(names[t], FR_NAME_MAX, "table%d", t);
    if (n_cat > 0) snprintf(names[0], FR_NAME_MAX, "scenario");
    json_t *root = daemon ? json_loads(daemon, 0, NULL) : NULL;
    size_t i;
    json_t *f;
    json_array_foreach(json_object_get(root, "fields"), i, f)
    {
        const char *kind = json_string_value(json_object_get(f, "kind"));
        const char *name = json_string_value(json_object_get(f, "name"));
        int slot = (int)json_integer_value(json_object_get(f, "slot"));
        if (!kind || !name) continue;
        int t = !strcmp(kind, "categorical") ? slot : !strcmp(kind, "multi") ? n_cat + slot : -1;
        if (t >= 0 && t < n_cat + n_multi) snprintf(names[t], FR_NAME_MAX, "%s", name);
    }
    json_decref(root);
}
