#include "fr_store_util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

/* The checkpoint meta and the Redis manifest must carry every field of fr_model_config, or a
 * restored / served model would silently differ from the trained one. When this fires, add the
 * new field to INT_FIELDS / FLOAT_FIELDS below (and to docs/checkpoint-format.md and
 * docs/redis-layout.md), then update the expected size here. */
/* (padding: 4 bytes before seed and 4 at the end where uint64_t is 8-aligned, none where it is 4-aligned) */
_Static_assert(sizeof(fr_model_config) == 23 * sizeof(int) + 15 * sizeof(float) + 8 + sizeof(uint64_t) ||
                   sizeof(fr_model_config) == 23 * sizeof(int) + 15 * sizeof(float) + sizeof(uint64_t),
               "fr_model_config changed: update store/fr_store_util.c (config <-> JSON) and the store docs");

typedef struct {
    const char *name;
    size_t offset;
} field_desc;

static const field_desc INT_FIELDS[] = {
    {"n_cat", offsetof(fr_model_config, n_cat)},
    {"n_num", offsetof(fr_model_config, n_num)},
    {"n_multi", offsetof(fr_model_config, n_multi)},
    {"n_scenarios", offsetof(fr_model_config, n_scenarios)},
    {"emb_dim", offsetof(fr_model_config, emb_dim)},
    {"n_experts", offsetof(fr_model_config, n_experts)},
    {"expert_dim", offsetof(fr_model_config, expert_dim)},
    {"tower_dim", offsetof(fr_model_config, tower_dim)},
    {"batch_size", offsetof(fr_model_config, batch_size)},
};
/* Fields added after the first stored format: a meta or manifest written before them lacks the
 * key, and its model was trained without the feature, so a missing key reads as `absent`. */
static const struct {
    const char *name;
    size_t offset;
    int absent;
} LATER_INT_FIELDS[] = {
    {"interactions", offsetof(fr_model_config, interactions), 0},
    {"wide", offsetof(fr_model_config, wide), 0},
    {"n_task_experts", offsetof(fr_model_config, n_task_experts), 0},
    {"n_scenario_experts", offsetof(fr_model_config, n_scenario_experts), 0},
    {"n_learner_experts", offsetof(fr_model_config, n_learner_experts), 0},
    {"n_levels", offsetof(fr_model_config, n_levels), 1},
    {"n_learners", offsetof(fr_model_config, n_learners), 1},
    {"scenario_dim", offsetof(fr_model_config, scenario_dim), 0},
    {"dffi_layers", offsetof(fr_model_config, dffi_layers), 0},
    {"dfub_heads", offsetof(fr_model_config, dfub_heads), 0},
    {"dfub_target", offsetof(fr_model_config, dfub_target), 0},
    {"dfub_history", offsetof(fr_model_config, dfub_history), 0},
    {"dense_optimizer", offsetof(fr_model_config, dense_optimizer), 0},
    {"emb_optimizer", offsetof(fr_model_config, emb_optimizer), 0},
};
static const struct {
    const char *name;
    size_t offset;
    float absent;
} LATER_FLOAT_FIELDS[] = {
    {"distill", offsetof(fr_model_config, distill), 0.0f},
    {"learner_loss", offsetof(fr_model_config, learner_loss), 0.0f},
    {"causal_adv", offsetof(fr_model_config, causal_adv), 0.0f},
    {"causal_orth", offsetof(fr_model_config, causal_orth), 0.0f},
    {"adam_beta1", offsetof(fr_model_config, adam_beta1), 0.9f},
    {"adam_beta2", offsetof(fr_model_config, adam_beta2), 0.999f},
    {"adam_eps", offsetof(fr_model_config, adam_eps), 1e-8f},
    {"ftrl_alpha", offsetof(fr_model_config, ftrl_alpha), 0.3f},
    {"ftrl_beta", offsetof(fr_model_config, ftrl_beta), 0.5f},
    {"ftrl_l1", offsetof(fr_model_config, ftrl_l1), 0.0f},
    {"ftrl_l2", offsetof(fr_model_config, ftrl_l2), 0.0f},
};
static const field_desc FLOAT_FIELDS[] = {
    {"lr_emb", offsetof(fr_model_config, lr_emb)},
    {"lr_dense", offsetof(fr_model_config, lr_dense)},
    {"adagrad_init", offsetof(fr_model_config, adagrad_init)},
    {"init_scale", offsetof(fr_model_config, init_scale)},
};

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

json_t *fr_config_to_json(const fr_model_config *c)
{
    json_t *o = json_object();
    if (!o) return NULL;
    int bad = 0;
    for (size_t i = 0; i < sizeof INT_FIELDS / sizeof INT_FIELDS[0]; i++) {
        int v;
        memcpy(&v, (const char *)c + INT_FIELDS[i].offset, sizeof v);
        bad |= json_object_set_new(o, INT_FIELDS[i].name, json_integer(v));
    }
    for (size_t i = 0; i < sizeof LATER_INT_FIELDS / sizeof LATER_INT_FIELDS[0]; i++) {
        int v;
        memcpy(&v, (const char *)c + LATER_INT_FIELDS[i].offset, sizeof v);
        bad |= json_object_set_new(o, LATER_INT_FIELDS[i].name, json_integer(v));
    }
    for (size_t i = 0; i < sizeof FLOAT_FIELDS / sizeof FLOAT_FIELDS[0]; i++) {
        float v;
        memcpy(&v, (const char *)c + FLOAT_FIELDS[i].offset, sizeof v);
        /* float -> double is exact and jansson prints 17 significant digits: the text round-trips. */
        bad |= json_object_set_new(o, FLOAT_FIELDS[i].name, json_real((double)v));
    }
    for (size_t i = 0; i < sizeof LATER_FLOAT_FIELDS / sizeof LATER_FLOAT_FIELDS[0]; i++) {
        float v;
        memcpy(&v, (const char *)c + LATER_FLOAT_FIELDS[i].offset, sizeof v);
        bad |= json_object_set_new(o, LATER_FLOAT_FIELDS[i].name, json_real((double)v));
    }
    bad |= json_object_set_new(o, "seed", fr_json_u64(c->seed));
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
    for (size_t i = 0; i < sizeof INT_FIELDS / sizeof INT_FIELDS[0]; i++) {
        const json_t *j = json_object_get(o, INT_FIELDS[i].name);
        if (!json_is_integer(j) || json_integer_value(j) < INT32_MIN || json_integer_value(j) > INT32_MAX) {
            snprintf(err, errlen, "model config: \"%s\" missing or not an integer", INT_FIELDS[i].name);
            return -1;
        }
        int v = (int)json_integer_value(j);
        memcpy((char *)c + INT_FIELDS[i].offset, &v, sizeof v);
    }
    for (size_t i = 0; i < sizeof LATER_INT_FIELDS / sizeof LATER_INT_FIELDS[0]; i++) {
        const json_t *j = json_object_get(o, LATER_INT_FIELDS[i].name);
        int v = LATER_INT_FIELDS[i].absent;
        if (j) {
            if (!json_is_integer(j) || json_integer_value(j) < INT32_MIN || json_integer_value(j) > INT32_MAX) {
                snprintf(err, errlen, "model config: \"%s\" is not an integer", LATER_INT_FIELDS[i].name);
                return -1;
            }
            v = (int)json_integer_value(j);
        }
        memcpy((char *)c + LATER_INT_FIELDS[i].offset, &v, sizeof v);
    }
    for (size_t i = 0; i < sizeof FLOAT_FIELDS / sizeof FLOAT_FIELDS[0]; i++) {
        const json_t *j = json_object_get(o, FLOAT_FIELDS[i].name);
        if (!json_is_number(j)) {
            snprintf(err, errlen, "model config: \"%s\" missing or not a number", FLOAT_FIELDS[i].name);
            return -1;
        }
        float v = (float)json_number_value(j);
        memcpy((char *)c + FLOAT_FIELDS[i].offset, &v, sizeof v);
    }
    for (size_t i = 0; i < sizeof LATER_FLOAT_FIELDS / sizeof LATER_FLOAT_FIELDS[0]; i++) {
        const json_t *j = json_object_get(o, LATER_FLOAT_FIELDS[i].name);
        float v = LATER_FLOAT_FIELDS[i].absent;
        if (j) {
            if (!json_is_number(j)) {
                snprintf(err, errlen, "model config: \"%s\" is not a number", LATER_FLOAT_FIELDS[i].name);
                return -1;
            }
            v = (float)json_number_value(j);
        }
        memcpy((char *)c + LATER_FLOAT_FIELDS[i].offset, &v, sizeof v);
    }
    if (fr_json_get_u64(o, "seed", &c->seed) != 0) {
        snprintf(err, errlen, "model config: \"seed\" missing or not a decimal string");
        return -1;
    }
    return 0;
}
