/* Tests of the model config's one table (learner/fr_model_config.def) and what comes of it: the
 * stored JSON keeps the keys, order and absent values of every config stored so far; retune's shape
 * and setting lists cover every key; and conf/README.md documents every key with the table's range
 * and default. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fr_model.h"
#include "fr_model_json.h"

#ifndef FR_TEST_SOURCE_DIR
#error "FR_TEST_SOURCE_DIR must name the source tree (CMake sets it)"
#endif

/* The stored config's keys in the order every checkpoint meta and Redis manifest has had them (the
 * integers, the floats, the seed): checkpoint digests depend on it. */
static const char *const STORED_ORDER[] = {
    "n_cat", "n_num", "n_multi", "n_scenarios", "emb_dim", "n_experts", "expert_dim", "tower_dim", "batch_size",
    "interactions", "wide", "n_task_experts", "n_scenario_experts", "n_learner_experts", "n_levels", "n_learners",
    "scenario_dim", "dffi_layers", "dfub_heads", "dfub_target", "dfub_history", "dense_optimizer", "emb_optimizer",
    "lr_emb", "lr_dense", "adagrad_init", "init_scale", "distill", "learner_loss", "causal_adv", "causal_orth",
    "adam_beta1", "adam_beta2", "adam_eps", "ftrl_alpha", "ftrl_beta", "ftrl_l1", "ftrl_l2", "seed"};
enum { N_STORED = sizeof STORED_ORDER / sizeof STORED_ORDER[0] };

static void test_stored_keys_and_order(void **state)
{
    (void)state;
    assert_int_equal(fr_model_field_count(), N_STORED);
    fr_model_config c;
    fr_model_config_defaults(&c);
    json_t *o = fr_config_to_json(&c);
    assert_non_null(o);
    int i = 0;
    for (void *it = json_object_iter(o); it; it = json_object_iter_next(o, it), i++) {
        assert_true(i < N_STORED);
        assert_string_equal(json_object_iter_key(it), STORED_ORDER[i]);
    }
    assert_int_equal(i, N_STORED);
    json_decref(o);
}

/* The defaults as they were before the table, and a config with every key away from its default
 * goes through the stored JSON unchanged. */
static void test_defaults_and_round_trip(void **state)
{
    (void)state;
    fr_model_config c;
    fr_model_config_defaults(&c);
    assert_int_equal(c.n_cat, 8), assert_int_equal(c.n_num, 1), assert_int_equal(c.n_multi, 1);
    assert_int_equal(c.n_scenarios, 4), assert_int_equal(c.emb_dim, 8), assert_int_equal(c.n_experts, 4);
    assert_int_equal(c.expert_dim, 32), assert_int_equal(c.tower_dim, 16), assert_int_equal(c.batch_size, 256);
    assert_true(c.lr_emb == 0.3f && c.lr_dense == 0.05f && c.adagrad_init == 0.1f && c.init_scale == 0.1f);
    assert_true(c.seed == 1 && c.interactions == 3 && c.wide == 1 && c.n_levels == 1 && c.n_learners == 1);
    assert_true(c.n_task_experts == 0 && c.n_scenario_experts == 0 && c.n_learner_experts == 0);
    assert_true(c.scenario_dim == 0 && c.dffi_layers == 0 && c.dfub_heads == 0 && c.dfub_target == 0);
    assert_true(c.dfub_history == 0 && c.dense_optimizer == 0 && c.emb_optimizer == 0);
    assert_true(c.distill == 0 && c.learner_loss == 0 && c.causal_adv == 0 && c.causal_orth == 0);
    assert_true(c.adam_beta1 == 0.9f && c.adam_beta2 == 0.999f && c.adam_eps == 1e-8f);
    assert_true(c.ftrl_alpha == 0.3f && c.ftrl_beta == 0.5f && c.ftrl_l1 == 0 && c.ftrl_l2 == 0);
    char err[256];
    assert_int_equal(fr_model_config_validate(&c, err, sizeof err), 0);

    fr_model_config a = c, b;
    for (int i = 0; i < fr_model_field_count(); i++) {
        const fr_model_field *f = fr_model_field_at(i);
        if (f->kind == FR_MC_K_SEED)
            fr_model_field_set_u64(&a, f, UINT64_C(0xFEDCBA9876543210));
        else
            fr_model_field_set(&a, f, fr_model_field_get(&a, f) + 1 + 0.25 * (f->kind == FR_MC_K_REAL));
    }
    json_t *o = fr_config_to_json(&a);
    assert_non_null(o);
    assert_int_equal(fr_config_from_json(o, &b, err, sizeof err), 0);
    assert_memory_equal(&a, &b, sizeof a);
    json_decref(o);
}

/* A stored config written before a key existed reads as the key's absent value (that model was
 * trained without the feature); the keys stored since the first format are required. */
static void test_absent_and_required(void **state)
{
    (void)state;
    json_t *o = json_pack("{s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:f, s:f, s:f, s:f, s:s}", "n_cat", 3, "n_num", 1,
                          "n_multi", 1, "n_scenarios", 2, "emb_dim", 4, "n_experts", 2, "expert_dim", 8, "tower_dim",
                          4, "batch_size", 16, "lr_emb", 0.25, "lr_dense", 0.5, "adagrad_init", 0.125, "init_scale",
                          0.0625, "seed", "42");
    assert_non_null(o);
    fr_model_config c;
    char err[256];
    assert_int_equal(fr_config_from_json(o, &c, err, sizeof err), 0);
    assert_true(c.n_cat == 3 && c.n_scenarios == 2 && c.emb_dim == 4 && c.batch_size == 16 && c.seed == 42);
    assert_true(c.lr_emb == 0.25f && c.init_scale == 0.0625f);
    /* the absent values: interactions and wide were off before they existed */
    assert_true(c.interactions == 0 && c.wide == 0 && c.n_task_experts == 0 && c.n_scenario_experts == 0);
    assert_true(c.n_learner_experts == 0 && c.n_levels == 1 && c.n_learners == 1 && c.scenario_dim == 0);
    assert_true(c.dffi_layers == 0 && c.dfub_heads == 0 && c.dfub_target == 0 && c.dfub_history == 0);
    assert_true(c.dense_optimizer == 0 && c.emb_optimizer == 0 && c.distill == 0 && c.learner_loss == 0);
    assert_true(c.causal_adv == 0 && c.causal_orth == 0);
    assert_true(c.adam_beta1 == 0.9f && c.adam_beta2 == 0.999f && c.adam_eps == 1e-8f);
    assert_true(c.ftrl_alpha == 0.3f && c.ftrl_beta == 0.5f && c.ftrl_l1 == 0 && c.ftrl_l2 == 0);
    assert_int_equal(fr_model_config_validate(&c, err, sizeof err), 0);

    static const struct {
        const char *key, *msg;
    } required[] = {{"emb_dim", "\"emb_dim\" missing or not an integer"},
                    {"lr_dense", "\"lr_dense\" missing or not a number"},
                    {"seed", "\"seed\" missing or not a decimal string"}};
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++) {
        json_t *p = json_deep_copy(o);
        json_object_del(p, required[i].key);
        err[0] = '\0';
        assert_int_equal(fr_config_from_json(p, &c, err, sizeof err), -1);
        assert_non_null(strstr(err, required[i].msg));
        json_decref(p);
    }
    json_object_set_new(o, "wide", json_string("1"));
    assert_int_equal(fr_config_from_json(o, &c, err, sizeof err), -1);
    assert_non_null(strstr(err, "\"wide\" is not an integer"));
    json_decref(o);
}

/* fr_model_retune refuses a change of every shape key by name and takes over, and lists, a change
 * of every training setting: the two lists are the table's, with no key in neither. */
static void test_retune_covers_every_key(void **state)
{
    (void)state;
    fr_model_config c;
    fr_model_config_defaults(&c);
    c.n_cat = 3, c.n_multi = 1, c.n_num = 1, c.emb_dim = 4, c.expert_dim = 8, c.tower_dim = 4, c.batch_size = 16;
    c.n_experts = 1, c.n_scenario_experts = 1, c.n_learners = 2, c.distill = 0.5f, c.learner_loss = 0.5f;
    c.causal_adv = 0.5f, c.causal_orth = 0.5f, c.dense_optimizer = 1, c.emb_optimizer = 1;
    char err[256], changed[512];
    fr_model *m = fr_model_create(&c, err, sizeof err);
    assert_non_null(m);
    int shapes = 0, settings = 0;
    for (int i = 0; i < fr_model_field_count(); i++) {
        const fr_model_field *f = fr_model_field_at(i);
        fr_model_config t = c;
        if (f->kind == FR_MC_K_SEED)
            fr_model_field_set_u64(&t, f, 7);
        else if (f->kind == FR_MC_K_REAL)
            fr_model_field_set(&t, f, fr_model_field_get(&c, f) == 0 ? 0.5 : fr_model_field_get(&c, f) / 2);
        else if (f->flags & FR_MC_SHAPE)
            fr_model_field_set(&t, f, fr_model_field_get(&c, f) == 0 ? 1 : 0);
        else
            fr_model_field_set(&t, f, fr_model_field_get(&c, f) + 4);
        char key[64];
        snprintf(key, sizeof key, "model.%s", f->name);
        err[0] = changed[0] = '\0';
        int rc = fr_model_retune(m, &t, changed, sizeof changed, err, sizeof err);
        if (f->flags & FR_MC_SHAPE) {
            shapes++;
            assert_int_equal(rc, -1);
            assert_non_null(strstr(err, key));
            assert_non_null(strstr(err, "the checkpoint was trained with"));
        } else {
            settings++;
            if (rc != 0) fail_msg("%s: %s", key, err);
            assert_true(strncmp(changed, key, strlen(key)) == 0 && changed[strlen(key)] == ' ');
            assert_int_equal(fr_model_retune(m, &c, changed, sizeof changed, err, sizeof err), 0); /* back */
        }
    }
    assert_int_equal(shapes, 22);
    assert_int_equal(settings, 17);
    fr_model_free(m);
}

/* ---- conf/README.md's model table ------------------------------------------------------------ */

static void trim_g(char *s)
{
    /* "1e-08" -> "1e-8", as people write it */
    char *e = strstr(s, "e-0");
    if (!e) e = strstr(s, "e+0");
    if (e) memmove(e + 2, e + 3, strlen(e + 3) + 1);
}

/* The range and default columns the docs must show for f. */
static void doc_cells(const fr_model_field *f, char *range, char *def, size_t len)
{
    char g[32];
    switch (f->kind) {
    case FR_MC_K_INT:
        snprintf(range, len, "integer %d..%d", (int)f->lo, (int)f->hi);
        snprintf(def, len, "`%d`", (int)f->def);
        break;
    case FR_MC_K_REAL:
        if (f->hi >= FR_MC_REAL_MAX)
            snprintf(range, len, "number %s %g", (f->flags & FR_MC_LO_OPEN) ? ">" : ">=", f->lo);
        else
            snprintf(range, len, "number in %c%g, %g%c", (f->flags & FR_MC_LO_OPEN) ? '(' : '[', f->lo, f->hi,
                     (f->flags & FR_MC_HI_OPEN) ? ')' : ']');
        snprintf(g, sizeof g, "%g", f->def);
        trim_g(g);
        snprintf(def, len, "`%s`", g);
        break;
    case FR_MC_K_CHOICE: {
        size_t o = 0;
        for (int i = 0; f->names[i]; i++) o += (size_t)snprintf(range + o, len - o, "%s`\"%s\"`", i ? ", " : "", f->names[i]);
        snprintf(def, len, "`\"%s\"`", f->names[(int)f->def]);
        break;
    }
    case FR_MC_K_SLOT:
        snprintf(range, len, "field name");
        snprintf(def, len, "required with `dfub_heads`");
        break;
    case FR_MC_K_SEED:
        snprintf(range, len, "integer >= 0");
        snprintf(def, len, "`%llu`", (unsigned long long)f->def);
        break;
    }
}

static char *read_file(const char *path)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    assert_non_null(s);
    assert_int_equal(fread(s, 1, (size_t)n, fp), (size_t)n);
    s[n] = '\0';
    fclose(fp);
    return s;
}

/* Every key of the file's "model" section has a row "| `model.<key>` | <range> | <default> | ..."
 * showing the table's range and default, and every such row is a key (or the architecture preset). */
static void test_docs_table(void **state)
{
    (void)state;
    char *doc = read_file(FR_TEST_SOURCE_DIR "/conf/README.md");
    int keys = 0;
    for (int i = 0; i < fr_model_field_count(); i++) {
        const fr_model_field *f = fr_model_field_at(i);
        if (f->flags & FR_MC_DERIVED) continue;
        keys++;
        char head[96], range[160], def[96], want[512];
        snprintf(head, sizeof head, "\n| `model.%s` | ", f->name);
        const char *row = strstr(doc, head);
        if (!row) fail_msg("conf/README.md has no row for model.%s", f->name);
        doc_cells(f, range, def, sizeof range < sizeof def ? sizeof range : sizeof def);
        snprintf(want, sizeof want, "%s%s | %s | ", head, range, def);
        if (strncmp(row, want, strlen(want)) != 0) {
            const char *eol = strchr(row + 1, '\n');
            fail_msg("conf/README.md's row for model.%s should start \"%s\", it is \"%.*s\"", f->name, want + 1,
                     (int)(eol ? eol - row - 1 : 80), row + 1);
        }
    }
    assert_true(keys > 30);
    for (const char *p = strstr(doc, "\n| `model."); p; p = strstr(p + 1, "\n| `model.")) {
        const char *k = p + strlen("\n| `model."), *end = strchr(k, '`');
        assert_non_null(end);
        int known = (size_t)(end - k) == strlen("architecture") && strncmp(k, "architecture", 12) == 0;
        for (int i = 0; i < fr_model_field_count() && !known; i++) {
            const fr_model_field *f = fr_model_field_at(i);
            known = !(f->flags & FR_MC_DERIVED) && strlen(f->name) == (size_t)(end - k) &&
                    strncmp(f->name, k, (size_t)(end - k)) == 0;
        }
        if (!known) fail_msg("conf/README.md documents model.%.*s, which is not a key", (int)(end - k), k);
    }
    free(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stored_keys_and_order),
        cmocka_unit_test(test_defaults_and_round_trip),
        cmocka_unit_test(test_absent_and_required),
        cmocka_unit_test(test_retune_covers_every_key),
        cmocka_unit_test(test_docs_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
