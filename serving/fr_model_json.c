#include "fr_model_json.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

json_t *fr_json_u64(uint64_t v)
{
    char buf[24];
    snprintf(buf, sizeof buf, "%" PRIu64, v);
    return json_string(buf);
}

int fr_parse_u64(const char *s, size_t len, uint64_t *v)
{
    if (len == 0 || len > 20) return -1;
    uint64_t x = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        uint64_t d = (uint64_t)(s[i] - '0');
        if (x > (UINT64_MAX - d) / 10) return -1;
        x = x * 10 + d;
    }
    *v = x;
    return 0;
}

int fr_json_get_u64(const json_t *o, const char *key, uint64_t *v)
{
    const json_t *j = json_object_get(o, key);
    if (!json_is_string(j)) return -1;
    return fr_parse_u64(json_string_value(j), json_string_length(j), v);
}

/* The stored model config: every key of learner/fr_model_config.def by its C name, the integers
 * first, then the floats, then the seed (a decimal string), each group in the table's order: the
 * key order every stored config has had, so the meta bytes and the checkpoint digests do not depend
 * on this code. */
static int stored_group(const fr_model_field *f)
{
    return f->kind == FR_MC_K_REAL ? 1 : f->kind == FR_MC_K_SEED ? 2 : 0;
}

json_t *fr_config_to_json(const fr_model_config *c)
{
    json_t *o = json_object();
    if (!o) return NULL;
    int bad = 0;
    for (int g = 0; g < 3; g++)
        for (int i = 0; i < fr_model_field_count(); i++) {
            const fr_model_field *f = fr_model_field_at(i);
            if (stored_group(f) != g) continue;
            json_t *v;
            if (f->kind == FR_MC_K_SEED)
                v = fr_json_u64(fr_model_field_get_u64(c, f));
            else if (f->kind == FR_MC_K_REAL)
                /* float -> double is exact and jansson prints 17 significant digits: the text round-trips. */
                v = json_real(fr_model_field_get(c, f));
            else
                v = json_integer((json_int_t)fr_model_field_get(c, f));
            bad |= json_object_set_new(o, f->name, v);
        }
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

int fr_config_from_json(const json_t *o, fr_model_config *c, char *err, size_t errlen)
{
    if (!json_is_object(o)) {
        snprintf(err, errlen, "model config is not a JSON object");
        return -1;
    }
    memset(c, 0, sizeof *c);
    for (int g = 0; g < 3; g++)
        for (int i = 0; i < fr_model_field_count(); i++) {
            const fr_model_field *f = fr_model_field_at(i);
            if (stored_group(f) != g) continue;
            const json_t *j = json_object_get(o, f->name);
            /* a key added after the first stored format reads as its `absent` value when missing */
            const int required = isnan(f->absent);
            if (f->kind == FR_MC_K_SEED) {
                uint64_t v;
                if (fr_json_get_u64(o, f->name, &v) != 0) {
                    snprintf(err, errlen, "model config: \"%s\" missing or not a decimal string", f->name);
                    return -1;
                }
                fr_model_field_set_u64(c, f, v);
                continue;
            }
            const int real = f->kind == FR_MC_K_REAL;
            double v = f->absent;
            if (j || required) {
                if (real ? !json_is_number(j)
                         : !json_is_integer(j) || json_integer_value(j) < INT32_MIN || json_integer_value(j) > INT32_MAX) {
                    snprintf(err, errlen, "model config: \"%s\" %s", f->name,
                             required ? (real ? "missing or not a number" : "missing or not an integer")
                                      : (real ? "is not a number" : "is not an integer"));
                    return -1;
                }
                v = real ? json_number_value(j) : (double)json_integer_value(j);
            }
            fr_model_field_set(c, f, v);
        }
    return 0;
}

json_t *fr_model_describe_json(const fr_model *m, const size_t *row_counts)
{
    const fr_model_config *cfg = fr_model_get_config(m);
    json_t *o = json_object(), *tables = json_array(), *tensors = json_array(), *dense = json_object();
    json_t *config = fr_config_to_json(cfg);
    int bad = !o || !tables || !tensors || !dense || !config;
    uint32_t ntab = fr_model_table_count(m);
    for (uint32_t t = 0; !bad && t < ntab; t++) {
        size_t rows = row_counts ? row_counts[t] : fr_model_row_count(m, t);
        json_t *e = json_pack("{s:I, s:s, s:i, s:I}", "id", (json_int_t)t, "kind",
                              (int)t < cfg->n_cat ? "categorical" : "multi", "dim", cfg->emb_dim, "rows",
                              (json_int_t)rows);
        bad |= !e || json_array_append_new(tables, e);
    }
    int nt = fr_model_dense_tensor_count(m);
    for (int i = 0; !bad && i < nt; i++) {
        fr_tensor_info ti = fr_model_dense_tensor(m, i);
        json_t *e = json_pack("{s:s, s:i, s:i, s:I}", "name", ti.name ? ti.name : "", "rows", ti.rows, "cols",
                              ti.cols, "offset", (json_int_t)ti.offset);
        bad |= !e || json_array_append_new(tensors, e);
    }
    if (!bad) {
        bad |= json_object_set_new(dense, "count", json_integer((json_int_t)fr_model_dense_count(m)));
        bad |= json_object_set(dense, "tensors", tensors);
        bad |= json_object_set(o, "model_config", config);
        bad |= json_object_set_new(o, "emb_dim", json_integer(cfg->emb_dim));
        bad |= json_object_set(o, "tables", tables);
        bad |= json_object_set(o, "dense", dense);
    }
    json_decref(tables);
    json_decref(tensors);
    json_decref(dense);
    json_decref(config);
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}
