/* Tests of the config loader: defaults, the example file, durations, and refusals that name the
 * offending key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fr_config.h"
#include "fr_join.h"
#include "fr_hash.h"

#ifndef FR_TEST_SOURCE_DIR
#error "FR_TEST_SOURCE_DIR must name the source tree (CMake sets it)"
#endif

static void assert_default_fields(const fr_config *c)
{
    static const char *const names[] = {"user_id",  "user_age", "device", "ad_id",     "advertiser",
                                        "category", "hour",     "price",  "recent_ads"};
    assert_int_equal(c->schema.n_fields, 9);
    for (int i = 0; i < 9; i++) {
        assert_string_equal(c->schema.fields[i].name, names[i]);
        assert_true(c->schema.fields[i].hash == fr_hash_field(names[i]));
    }
    for (int i = 0; i < 7; i++) {
        assert_int_equal(c->schema.fields[i].kind, FR_FIELD_CATEGORICAL);
        assert_int_equal(c->schema.fields[i].slot, i + 1); /* slot 0 is the scenario */
    }
    assert_int_equal(c->schema.fields[7].kind, FR_FIELD_NUMERIC);
    assert_int_equal(c->schema.fields[7].transform, FR_NUM_LOG1P);
    assert_int_equal(c->schema.fields[7].slot, 0);
    assert_int_equal(c->schema.fields[8].kind, FR_FIELD_MULTI);
    assert_int_equal(c->schema.fields[8].max_len, 8);
    for (int i = 0; i < c->schema.n_fields; i++) {
        assert_int_equal(c->schema.fields[i].admit_after, 1);
        assert_int_equal(c->schema.fields[i].admit_width_log2, 20);
        assert_int_equal(c->schema.fields[i].ttl_ms, 0);
        assert_int_equal(c->schema.fields[i].admit_half_life_ms, 86400000LL);
    }
    assert_int_equal(c->schema.fields[8].slot, 0);
    assert_int_equal(c->schema.n_cat, 8);
    assert_int_equal(c->schema.n_num, 1);
    assert_int_equal(c->schema.n_multi, 1);
}

static void assert_defaults(const fr_config *c)
{
    assert_string_equal(c->brokers, "127.0.0.1:19092");
    assert_string_equal(c->group_id, "freshet");
    assert_string_equal(c->topic[0], "impressions");
    assert_string_equal(c->topic[1], "clicks");
    assert_string_equal(c->topic[2], "conversions");
    assert_int_equal(c->schema.max_message_bytes, 65536);
    assert_int_equal(c->schema.n_scenarios, 4);
    assert_string_equal(c->schema.scenarios[0], "video");
    assert_string_equal(c->schema.scenarios[1], "browser");
    assert_string_equal(c->schema.scenarios[2], "music");
    assert_string_equal(c->schema.scenarios[3], "third_party");
    assert_int_equal(c->schema.allow_new_scenarios, 0);
    assert_default_fields(c);
    assert_int_equal(c->click_window_ms, 30 * 60 * 1000);
    assert_int_equal(c->attribution_window_ms, 7LL * 24 * 3600 * 1000);
    assert_int_equal(c->allowed_lateness_ms, 0);
    assert_int_equal(c->evtime.max_ahead_ms, 15 * 60 * 1000);
    assert_int_equal(c->evtime.min_ts_ms, 946684800000LL); /* 2000-01-01 */
    assert_int_equal(c->evtime.confirm, 16);
    assert_int_equal(c->evtime.reject, 16);

    fr_model_config m;
    fr_model_config_defaults(&m);
    assert_int_equal(c->model.emb_dim, m.emb_dim);
    assert_int_equal(c->model.n_experts, m.n_experts);
    assert_int_equal(c->model.expert_dim, m.expert_dim);
    assert_int_equal(c->model.tower_dim, m.tower_dim);
    assert_int_equal(c->model.batch_size, m.batch_size);
    assert_true(c->model.lr_emb == m.lr_emb);
    assert_true(c->model.lr_dense == m.lr_dense);
    assert_true(c->model.adagrad_init == m.adagrad_init);
    assert_true(c->model.init_scale == m.init_scale);
    assert_true(c->model.seed == m.seed);
    assert_int_equal(c->model.emb_optimizer, 0);
    assert_true(c->model.ftrl_alpha == m.ftrl_alpha && c->model.ftrl_beta == m.ftrl_beta);
    assert_true(c->model.ftrl_l1 == m.ftrl_l1 && c->model.ftrl_l2 == m.ftrl_l2);
    assert_int_equal(c->model.n_cat, 8);
    assert_int_equal(c->model.n_num, 1);
    assert_int_equal(c->model.n_multi, 1);
    assert_int_equal(c->model.n_scenarios, 4);

    assert_string_equal(c->checkpoint_dir, "freshet-state");
    assert_true(c->checkpoint_every_seconds == 10.0);
    assert_int_equal(c->checkpoint_every_samples, 200000);
    assert_int_equal(c->history_bucket_ms, 3600000);
    assert_int_equal(c->history_keep, 10000);
    assert_string_equal(c->redis_host, "127.0.0.1");
    assert_int_equal(c->redis_port, 16379);
    assert_string_equal(c->redis_prefix, "freshet");
    assert_int_equal(c->redis_keep_versions, 5);
    assert_true(c->status_every_seconds == 5.0);
    assert_string_equal(c->metrics_listen, "");
}

static void test_defaults(void **state)
{
    (void)state;
    fr_config c;
    fr_config_defaults(&c);
    assert_defaults(&c);
    assert_int_equal(fr_schema_scenario_index(&c.schema, "music", 5), 2);
    assert_int_equal(fr_schema_scenario_index(&c.schema, "musical", 5), 2); /* len bounds the name */
    assert_int_equal(fr_schema_scenario_index(&c.schema, "musi", 4), -1);
    assert_int_equal(fr_schema_scenario_index(&c.schema, "other", 5), -1);
}

static void test_example_file(void **state)
{
    (void)state;
    fr_config c;
    char err[256] = "";
    int rc = fr_config_load(&c, FR_TEST_SOURCE_DIR "/conf/freshet.example.json", err, sizeof err);
    if (rc != 0)
        print_error("%s\n", err);
    assert_int_equal(rc, 0);
    /* the example spells out every default, so loading it changes nothing */
    assert_defaults(&c);

    assert_int_equal(fr_config_load(&c, FR_TEST_SOURCE_DIR "/conf/no-such-file.json", err, sizeof err), -1);
    assert_non_null(strstr(err, "no-such-file.json"));
}

static void test_empty_object_is_defaults(void **state)
{
    (void)state;
    fr_config c;
    char err[256];
    memset(&c, 0x5a, sizeof c);
    assert_int_equal(fr_config_load_string(&c, "{}", err, sizeof err), 0);
    assert_defaults(&c);
}

static void test_durations(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        int64_t ms;
    } good[] = {{"500ms", 500},     {"90s", 90000},        {"30m", 1800000}, {"2h", 7200000},
                {"7d", 604800000},  {"1h30m", 5400000},    {"0s", 0},        {"0ms", 0},
                {"1d2h3m4s5ms", 93784005}};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        int64_t ms = -1;
        assert_int_equal(fr_config_parse_duration(good[i].s, &ms), 0);
        assert_int_equal(ms, good[i].ms);
    }
    static const char *const bad[] = {"",   "5",    "m",      "5x",  "-5s", "5 s", "1.5h", " 5s",
                                      "5s ", "5S",  "5mss",   "h5",  "99999999999999999999d", "106751991167301d"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t ms = 0;
        if (fr_config_parse_duration(bad[i], &ms) != -1)
            fail_msg("\"%s\" parsed as %lld", bad[i], (long long)ms);
    }

    fr_config c;
    char err[256];
    assert_int_equal(fr_config_load_string(&c,
                                           "{\"join\":{\"click_window\":\"90s\",\"attribution_window\":\"2h\","
                                           "\"allowed_lateness\":1500}}",
                                           err, sizeof err),
                     0);
    assert_int_equal(c.click_window_ms, 90000);
    assert_int_equal(c.attribution_window_ms, 7200000);
    assert_int_equal(c.allowed_lateness_ms, 1500);
}

/* Instants (join.min_event_time): UTC dates, with or without a time, or milliseconds. */
static void test_instants(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        int64_t ms;
    } good[] = {{"1970-01-01", 0},
                {"2000-01-01", 946684800000LL},
                {"2000-02-29", 951782400000LL},
                {"2025-12-01T00:00:00Z", 1764547200000LL},
                {"2100-01-01T00:00:01Z", 4102444801000LL},
                {"9999-12-31T23:59:59Z", 253402300799000LL}};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        int64_t ms = -1;
        if (fr_config_parse_instant(good[i].s, &ms) != 0 || ms != good[i].ms)
            fail_msg("\"%s\" parsed as %lld, want %lld", good[i].s, (long long)ms, (long long)good[i].ms);
    }
    static const char *const bad[] = {"",           "2000",        "2000-1-01",  "2000-01-1",  "1969-12-31",
                                      "2019-02-29", "1900-02-29",  "2000-13-01", "2000-04-31", "2000-01-01T",
                                      "2000-01-01T24:00:00Z", "2000-01-01T00:00:00", "2000-01-01 00:00:00Z",
                                      "2000-01-01T00:00:00+01:00", "2000-01-01x", "yesterday"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t ms = 0;
        if (fr_config_parse_instant(bad[i], &ms) != -1)
            fail_msg("\"%s\" parsed as %lld", bad[i], (long long)ms);
    }

    fr_config c;
    char err[256];
    assert_int_equal(fr_config_load_string(&c,
                                           "{\"join\":{\"max_ahead\":\"1h\",\"ahead_confirm\":32,\"ahead_reject\":8,"
                                           "\"min_event_time\":\"2020-02-29T12:30:00Z\"}}",
                                           err, sizeof err),
                     0);
    assert_int_equal(c.evtime.max_ahead_ms, 3600000);
    assert_int_equal(c.evtime.confirm, 32);
    assert_int_equal(c.evtime.reject, 8);
    assert_int_equal(c.evtime.min_ts_ms, 1582979400000LL);
    assert_int_equal(fr_config_load_string(&c, "{\"join\":{\"max_ahead\":0,\"min_event_time\":0}}", err, sizeof err),
                     0);
    assert_int_equal(c.evtime.max_ahead_ms, 0);
    assert_int_equal(c.evtime.min_ts_ms, 0);
}

static void test_overrides(void **state)
{
    (void)state;
    fr_config c;
    char err[256] = "";
    const char *json = "{\"kafka\":{\"brokers\":\"k1:9092,k2:9092\",\"topics\":{\"impressions\":\"events\","
                       "\"clicks\":\"events\",\"conversions\":\"events\"},"
                       "\"properties\":{\"security.protocol\":\"SASL_SSL\",\"sasl.password\":\"env:KAFKA_PASSWORD\"}},"
                       "\"scenarios\":[\"feed\",\"search\"],\"allow_new_scenarios\":true,"
                       "\"fields\":[{\"name\":\"u\",\"kind\":\"categorical\"},{\"name\":\"n\",\"kind\":\"numeric\"},"
                       "{\"name\":\"h\",\"kind\":\"multi\"},{\"name\":\"v\",\"kind\":\"categorical\"},"
                       "{\"name\":\"h2\",\"kind\":\"multi\",\"max_len\":3,\"admit_after\":4,"
                       "\"admit_width_log2\":12,\"ttl\":\"30d\",\"admit_half_life\":\"6h\"}],"
                       "\"model\":{\"emb_dim\":16,\"lr_emb\":0.1,\"seed\":42,\"emb_optimizer\":\"ftrl\","
                       "\"ftrl_alpha\":0.2,\"ftrl_beta\":0.75,\"ftrl_l1\":0.5,\"ftrl_l2\":0},"
                       "\"redis\":{\"host\":\"\"},\"status_every_seconds\":0.5,"
                       "\"metrics\":{\"listen\":\"127.0.0.1:9464\"}}";
    int rc = fr_config_load_string(&c, json, err, sizeof err);
    if (rc)
        print_error("%s\n", err);
    assert_int_equal(rc, 0);
    assert_string_equal(c.brokers, "k1:9092,k2:9092");
    assert_string_equal(c.metrics_listen, "127.0.0.1:9464");
    assert_int_equal(c.n_kafka_props, 2);
    assert_string_equal(c.kafka_prop[0][0], "security.protocol");
    assert_string_equal(c.kafka_prop[1][1], "env:KAFKA_PASSWORD");
    assert_string_equal(c.topic[1], "events");
    assert_string_equal(c.group_id, "freshet");
    assert_int_equal(c.schema.n_scenarios, 3);
    assert_string_equal(c.schema.scenarios[2], "other");
    assert_int_equal(c.model.n_scenarios, 3);
    assert_int_equal(c.schema.n_fields, 5);
    assert_int_equal(c.schema.fields[0].slot, 1);
    assert_int_equal(c.schema.fields[3].slot, 2);
    assert_int_equal(c.schema.fields[1].slot, 0);
    assert_int_equal(c.schema.fields[1].transform, FR_NUM_IDENTITY);
    assert_int_equal(c.schema.fields[2].slot, 0);
    assert_int_equal(c.schema.fields[2].max_len, FR_MAX_MULTI_LEN);
    assert_int_equal(c.schema.fields[4].slot, 1);
    assert_int_equal(c.schema.fields[4].max_len, 3);
    assert_int_equal(c.schema.fields[4].admit_after, 4);
    assert_int_equal(c.schema.fields[4].admit_width_log2, 12);
    assert_int_equal(c.schema.fields[4].ttl_ms, 30LL * 86400000);
    assert_int_equal(c.schema.fields[4].admit_half_life_ms, 6LL * 3600000);
    assert_int_equal(c.schema.fields[0].admit_half_life_ms, 86400000LL);
    assert_int_equal(c.schema.fields[0].admit_after, 1);
    assert_int_equal(c.schema.fields[0].ttl_ms, 0);
    assert_int_equal(c.schema.n_cat, 3);
    assert_int_equal(c.model.n_cat, 3);
    assert_int_equal(c.model.n_num, 1);
    assert_int_equal(c.model.n_multi, 2);
    assert_int_equal(c.model.emb_dim, 16);
    assert_true(c.model.lr_emb == 0.1f);
    assert_true(c.model.seed == 42);
    assert_int_equal(c.model.emb_optimizer, 1);
    assert_true(c.model.ftrl_alpha == 0.2f && c.model.ftrl_beta == 0.75f);
    assert_true(c.model.ftrl_l1 == 0.5f && c.model.ftrl_l2 == 0.0f);
    assert_string_equal(c.redis_host, "");
    assert_true(c.status_every_seconds == 0.5);

    /* a listed "other" is the catch-all itself, not a duplicate */
    assert_int_equal(fr_config_load_string(&c, "{\"scenarios\":[\"other\",\"a\"],\"allow_new_scenarios\":true}", err,
                                           sizeof err),
                     0);
    assert_int_equal(c.schema.n_scenarios, 2);
    assert_int_equal(fr_schema_scenario_index(&c.schema, "other", 5), 0);
}

typedef struct {
    const char *json;
    const char *want; /* substring of the message */
} refusal;

static void test_refusals(void **state)
{
    (void)state;
    static const refusal cases[] = {
        {"{\"model\":{\"lerning_rate\":0.1}}", "config: unknown key \"model.lerning_rate\""},
        {"{\"kafka\":{\"topics\":{\"impression\":\"x\"}}}", "unknown key \"kafka.topics.impression\""},
        {"{\"fields\":[{\"name\":\"a\",\"kind\":\"numeric\",\"transfrom\":\"log1p\"}]}",
         "unknown key \"fields[0].transfrom\""},
        {"{\"redis_host\":\"x\"}", "unknown key \"redis_host\""},
        {"{\"history\":{\"buckets\":\"1h\"}}", "unknown key \"history.buckets\""},
        {"{\"history\":{\"bucket\":0}}", "\"history.bucket\""},
        {"{\"history\":{\"bucket\":\"400d\"}}", "\"history.bucket\" is 34560000000 ms, longer than 366 days"},
        {"{\"history\":{\"keep\":0}}", "\"history.keep\" is 0"},
        {"{\"history\":{\"keep\":1000001}}", "\"history.keep\" is 1000001"},
        {"{\"model\":{\"n_cat\":3}}", "unknown key \"model.n_cat\""},
        {"{\"kafka\":{\"max_message_bytes\":\"64k\"}}", "\"kafka.max_message_bytes\" is a string, expected an integer"},
        {"{\"kafka\":{\"max_message_bytes\":0}}", "\"kafka.max_message_bytes\" is 0"},
        {"{\"kafka\":[]}", "\"kafka\" is an array, expected an object"},
        {"{\"kafka\":{\"brokers\":\"\"}}", "\"kafka.brokers\" is empty"},
        {"{\"kafka\":{\"topics\":{\"clicks\":\"my clicks\"}}}", "\"kafka.topics.clicks\""},
        {"{\"model\":{\"emb_dim\":0}}", "\"model.emb_dim\" is 0"},
        {"{\"model\":{\"emb_dim\":8.5}}", "\"model.emb_dim\" is a real number, expected an integer"},
        {"{\"model\":{\"lr_emb\":\"fast\"}}", "\"model.lr_emb\" is a string, expected a number"},
        {"{\"model\":{\"lr_dense\":0}}", "\"model.lr_dense\" is 0"},
        {"{\"model\":{\"seed\":-1}}", "\"model.seed\""},
        {"{\"model\":{\"architecture\":\"star\"}}", "\"model.architecture\" is \"star\", expected shared_bottom"},
        {"{\"model\":{\"architecture\":3}}", "\"model.architecture\" is an integer, expected a string"},
        {"{\"model\":{\"architecture\":\"mmoe\",\"n_expert\":3}}", "unknown key \"model.n_expert\""},
        {"{\"model\":{\"n_levels\":5}}", "\"model.n_levels\" is 5"},
        {"{\"model\":{\"n_learners\":2}}", "\"model.distill\" is missing"},
        {"{\"model\":{\"n_experts\":0}}", "model.n_experts: every learner's gate needs at least one expert"},
        {"{\"model\":{\"architecture\":\"ple\",\"n_experts\":0,\"n_task_experts\":0,\"n_learner_experts\":2}}",
         "model.n_levels: 2 levels need shared, task or scenario experts below the last level"},
        {"{\"model\":{\"distill\":0.3}}", "model.distill: self-distillation needs model.n_learners >= 2"},
        {"{\"model\":{\"distill\":-1}}", "\"model.distill\" is -1"},
        {"{\"model\":{\"dffi_layers\":1,\"scenario_dim\":8}}",
         "model.scenario_dim: 8 floats are too narrow for the DFFI network (model.dffi_layers = 1 with emb_dim 8 needs 72"},
        {"{\"model\":{\"dffi\":1}}", "unknown key \"model.dffi\""},
        {"{\"model\":{\"dfub_heads\":2,\"dfub_history\":\"recent_ads\"}}",
         "\"model.dfub_target\" is missing: model.dfub_heads = 2 needs the name of a categorical field"},
        {"{\"model\":{\"dfub_heads\":2,\"dfub_target\":\"recent_ads\",\"dfub_history\":\"recent_ads\"}}",
         "\"model.dfub_target\" is \"recent_ads\", which is not a categorical field"},
        {"{\"model\":{\"dfub_heads\":3,\"dfub_target\":\"ad_id\",\"dfub_history\":\"recent_ads\"}}",
         "model.dfub_heads: 3 heads do not divide emb_dim 8"},
        {"{\"model\":{\"dense_optimizer\":\"sgd\"}}", "\"model.dense_optimizer\" is \"sgd\", expected adagrad or adam"},
        {"{\"model\":{\"dense_optimizer\":\"adam\",\"adam_beta1\":1}}", "model.adam_beta1: Adam needs beta1"},
        {"{\"model\":{\"emb_optimizer\":\"ftlr\"}}", "\"model.emb_optimizer\" is \"ftlr\", expected adagrad or ftrl"},
        {"{\"model\":{\"emb_optimizer\":1}}", "\"model.emb_optimizer\""},
        {"{\"model\":{\"emb_optimizer\":\"ftrl\",\"ftrl_alpha\":-0.1}}", "\"model.ftrl_alpha\" is -0.1, must be > 0"},
        {"{\"model\":{\"ftrl_alpha\":0}}", "\"model.ftrl_alpha\" is 0, must be > 0"},
        {"{\"model\":{\"ftrl_beta\":0}}", "\"model.ftrl_beta\" is 0, must be > 0"},
        {"{\"model\":{\"ftrl_l1\":-1}}", "\"model.ftrl_l1\" is -1, must be >= 0"},
        {"{\"model\":{\"ftrl_l2\":\"0.1\"}}", "\"model.ftrl_l2\" is a string, expected a number"},
        {"{\"model\":{\"ftrl_gamma\":1}}", "unknown key \"model.ftrl_gamma\""},
        {"{\"model\":{\"causal_orth\":0.1}}", "model.causal_orth: the orthogonality term needs scenario experts"},
        {"{\"model\":{\"causal_adv\":0.1,\"n_experts\":0,\"n_task_experts\":1}}",
         "model.causal_adv: CausalInt's invariant extractor is the shared experts, but model.n_experts is 0"},
        {"{\"model\":{\"learner_loss\":1}}", "model.learner_loss: per-learner losses need model.n_learners >= 2"},
        {"{\"scenarios\":[\"a\",\"b\",\"c\",\"d\",\"e\"],\"model\":{\"n_scenario_experts\":52}}",
         "model.n_scenario_experts: 52 experts for each of 5 scenarios exceed the limit of 256"},
        {"{\"redis\":{\"port\":70000}}", "\"redis.port\" is 70000"},
        {"{\"redis\":{\"keep_versions\":0}}", "\"redis.keep_versions\""},
        {"{\"redis\":{\"prefix\":\"my{model}\"}}", "redis.prefix: redis prefix \"my{model}\": character '{' not allowed"},
        {"{\"redis\":{\"prefix\":\"ads model\"}}", "redis.prefix: "},
        {"{\"checkpoint\":{\"every_seconds\":-1}}", "\"checkpoint.every_seconds\""},
        {"{\"checkpoint\":{\"every_samples\":-5}}", "\"checkpoint.every_samples\""},
        {"{\"checkpoint\":{\"dir\":7}}", "\"checkpoint.dir\" is an integer, expected a string"},
        {"{\"status_every_seconds\":\"5s\"}", "\"status_every_seconds\" is a string, expected a number"},
        {"{\"allow_new_scenarios\":1}", "\"allow_new_scenarios\" is an integer, expected true or false"},
        {"{\"scenarios\":\"video\"}", "\"scenarios\" is a string, expected an array"},
        {"{\"scenarios\":[]}", "\"scenarios\" is empty"},
        {"{\"scenarios\":[\"a\",\"b\",\"a\"]}", "\"scenarios[2]\": scenario \"a\" is listed twice"},
        {"{\"scenarios\":[\"a\",\"\"]}", "\"scenarios[1]\" is empty"},
        {"{\"scenarios\":[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\",\"i\",\"j\",\"k\",\"l\",\"m\",\"n\",\"o\","
         "\"p\",\"q\"]}",
         "\"scenarios\" lists 17 names, the limit is 16"},
        {"{\"scenarios\":[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\",\"i\",\"j\",\"k\",\"l\",\"m\",\"n\",\"o\","
         "\"p\"],\"allow_new_scenarios\":true}",
         "\"allow_new_scenarios\" adds the scenario \"other\""},
        {"{\"fields\":{}}", "\"fields\" is an object, expected an array"},
        {"{\"fields\":[\"user_id\"]}", "\"fields[0]\" is a string, expected an object"},
        {"{\"fields\":[{\"kind\":\"categorical\"}]}", "\"fields[0].name\" is missing"},
        {"{\"fields\":[{\"name\":\"a\"}]}", "\"fields[0].kind\" is missing"},
        {"{\"fields\":[{\"name\":\"a\",\"kind\":\"text\"}]}", "\"fields[0].kind\" is \"text\""},
        {"{\"fields\":[{\"name\":\"a\",\"kind\":\"numeric\",\"transform\":\"log\"}]}",
         "\"fields[0].transform\" is \"log\""},
        {"{\"fields\":[{\"name\":\"a\",\"kind\":\"categorical\",\"transform\":\"log1p\"}]}",
         "\"fields[0].transform\": only numeric fields take a transform"},
        {"{\"fields\":[{\"name\":\"a\",\"kind\":\"numeric\",\"max_len\":3}]}",
         "\"fields[0].max_len\": only multi fields take max_len"},
        {"{\"fields\":[{\"name\":\"a\",\"kind\":\"multi\",\"max_len\":9}]}", "\"fields[0].max_len\" is 9, must be in 1..8"},
        {"{\"fields\":[{\"name\":\"a\",\"kind\":\"multi\",\"max_len\":0}]}", "\"fields[0].max_len\" is 0"},
        {"{\"fields\":[{\"name\":\"a\",\"kind\":\"categorical\"},{\"name\":\"a\",\"kind\":\"numeric\"}]}",
         "\"fields[1].name\": field \"a\" is declared twice"},
        {"{\"fields\":[{\"name\":\"scenario\",\"kind\":\"categorical\"}]}", "\"fields[0].name\": \"scenario\" is reserved"},
        {"{\"fields\":[{\"name\":\"a\",\"kind\":\"multi\"},{\"name\":\"b\",\"kind\":\"multi\"},"
         "{\"name\":\"c\",\"kind\":\"multi\"}]}",
         "\"fields[2]\": too many multi fields, the limit is 2"},
        {"{\"fields\":[{\"name\":\"a\",\"kind\":\"numeric\",\"ttl\":\"1d\"}]}",
         "\"fields[0].ttl\": only categorical and multi fields have embedding rows"},
        {"{\"fields\":[{\"name\":\"a\",\"kind\":\"categorical\",\"admit_after\":16}]}",
         "\"fields[0].admit_after\" is 16, must be in 1..15"},
        {"{\"fields\":[{\"name\":\"a\",\"kind\":\"categorical\",\"admit_after\":0}]}",
         "\"fields[0].admit_after\" is 0"},
        {"{\"fields\":[{\"name\":\"a\",\"kind\":\"multi\",\"admit_width_log2\":10}]}",
         "\"fields[0].admit_width_log2\" is 10, must be in 11..28"},
        {"{\"fields\":[{\"name\":\"a\",\"kind\":\"categorical\",\"ttl\":\"soon\"}]}",
         "\"fields[0].ttl\" is \"soon\", not a duration"},
        {"{\"fields\":[{\"name\":\"a\",\"kind\":\"categorical\",\"admit_half_life\":-5}]}",
         "\"fields[0].admit_half_life\" is -5, a duration cannot be negative"},
        {"{\"fields\":[{\"name\":\"a\",\"kind\":\"categorical\",\"tll\":\"1d\"}]}", "unknown key \"fields[0].tll\""},
        {"{\"metrics\":{\"port\":9464}}", "metrics.port"},
        {"{\"kafka\":{\"properties\":{\"group.id\":\"x\"}}}", "\"kafka.properties.group.id\": set it with \"kafka.group_id\""},
        {"{\"kafka\":{\"properties\":{\"enable.auto.commit\":\"true\"}}}", "Freshet sets it"},
        {"{\"kafka\":{\"properties\":{\"sasl.username\":7}}}", "kafka.properties.sasl.username"},
        {"{\"join\":{\"click_window\":\"30 minutes\"}}", "\"join.click_window\" is \"30 minutes\", not a duration"},
        {"{\"join\":{\"click_window\":\"0s\"}}", "\"join.click_window\" must be longer than zero"},
        {"{\"join\":{\"attribution_window\":-5}}", "\"join.attribution_window\" is -5"},
        {"{\"join\":{\"allowed_lateness\":1.5}}", "\"join.allowed_lateness\" is a real number"},
        {"{\"join\":{\"click_window\":\"36600d\"}}", "limited to 100 years"},
        {"{\"join\":{\"max_ahead\":\"36600d\"}}", "\"join.max_ahead\" is \"36600d\": durations are limited to 100 years"},
        {"{\"join\":{\"ahead_confirm\":0}}", "\"join.ahead_confirm\" is 0, must be in 1..1024"},
        {"{\"join\":{\"ahead_reject\":1025}}", "\"join.ahead_reject\" is 1025, must be in 1..1024"},
        {"{\"join\":{\"min_event_time\":\"2019-02-29\"}}", "\"join.min_event_time\" is \"2019-02-29\", not a UTC date"},
        {"{\"join\":{\"min_event_time\":-1}}", "\"join.min_event_time\" is -1, expected milliseconds since 1970"},
        {"{\"join\":{\"min_event_time\":true}}", "\"join.min_event_time\" is a boolean, expected a UTC date"},
        {"[]", "the top level is an array, expected an object"},
        {"{\"model\":{\"emb_dim\":8,}}", "JSON syntax error at line 1 column 23"},
        {"{\n  \"model\": {\n    \"emb_dim\": 8\n  }\n  \"redis\": {}\n}", "line 5 column"},
        {"{\"model\":{},\"model\":{}}", "duplicate object key"},
        {"", "config: "},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fr_config c;
        fr_config_defaults(&c);
        c.redis_port = 4242; /* marks the struct: a refused load must not touch it */
        char err[512] = "";
        int rc = fr_config_load_string(&c, cases[i].json, err, sizeof err);
        if (rc != -1 || !strstr(err, cases[i].want) || strncmp(err, "config: ", 8) != 0)
            fail_msg("case %zu %s: rc %d, message \"%s\", want \"%s\"", i, cases[i].json, rc, err, cases[i].want);
        assert_int_equal(c.redis_port, 4242);
    }
}

/* Every duration is bounded at parse time, and the refusal names the key and the bound: a ttl near
 * INT64_MAX used to load and overflow in the learner's eviction arithmetic. 100 years itself loads. */
static void test_duration_bounds(void **state)
{
    (void)state;
    static const char *const refused[][2] = {
        {"{\"fields\":[{\"name\":\"a\",\"kind\":\"categorical\",\"ttl\":\"36501d\"}]}",
         "\"fields[0].ttl\" is \"36501d\": durations are limited to 100 years (\"36500d\")"},
        {"{\"fields\":[{\"name\":\"a\",\"kind\":\"categorical\",\"ttl\":9223372036854775807}]}",
         "\"fields[0].ttl\" is 9223372036854775807 ms: durations are limited to 100 years (3153600000000 ms)"},
        {"{\"fields\":[{\"name\":\"a\",\"kind\":\"multi\",\"admit_half_life\":\"99999999d\"}]}",
         "\"fields[0].admit_half_life\" is \"99999999d\": durations are limited to 100 years"},
        {"{\"join\":{\"click_window\":\"36600d\"}}", "\"join.click_window\" is \"36600d\": durations are limited"},
        {"{\"join\":{\"attribution_window\":\"36600d\"}}", "\"join.attribution_window\" is \"36600d\""},
        {"{\"join\":{\"allowed_lateness\":\"36600d\"}}", "\"join.allowed_lateness\" is \"36600d\""},
        {"{\"join\":{\"observation_window\":3153600000001}}", "\"join.observation_window\" is 3153600000001 ms"},
        {"{\"guard\":{\"max_pause\":\"36501d\"}}", "\"guard.max_pause\" is \"36501d\": durations are limited"},
        {"{\"guard\":{\"long_half_life\":\"36501d\"}}", "\"guard.long_half_life\" is \"36501d\""},
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        fr_config c;
        char err[512] = "";
        if (fr_config_load_string(&c, refused[i][0], err, sizeof err) != -1 || !strstr(err, refused[i][1]))
            fail_msg("case %zu %s: message \"%s\", want \"%s\"", i, refused[i][0], err, refused[i][1]);
    }
    fr_config c;
    char err[512] = "";
    int rc = fr_config_load_string(
        &c, "{\"fields\":[{\"name\":\"a\",\"kind\":\"categorical\",\"ttl\":\"36500d\"}],"
            "\"join\":{\"click_window\":\"36500d\",\"attribution_window\":3153600000000}}",
        err, sizeof err);
    if (rc != 0) fail_msg("100 years refused: %s", err);
    assert_true(c.schema.fields[0].ttl_ms == INT64_C(3153600000000) && c.click_window_ms == c.schema.fields[0].ttl_ms);
}

/* The presets fill the engine's keys; explicit keys next to a preset override it. */
static void test_architectures(void **state)
{
    (void)state;
    static const struct {
        const char *json;
        int shared, task, learner, scen, levels, learners, sd;
        float distill;
    } cases[] = {
        {"{\"model\":{}}", 4, 0, 0, 0, 1, 1, 0, 0.0f},
        {"{\"model\":{\"architecture\":\"shared_bottom\"}}", 1, 0, 0, 0, 1, 1, 0, 0.0f},
        {"{\"model\":{\"architecture\":\"mmoe\"}}", 4, 0, 0, 0, 1, 1, 0, 0.0f},
        {"{\"model\":{\"architecture\":\"cgc\"}}", 2, 2, 0, 0, 1, 1, 0, 0.0f},
        {"{\"model\":{\"architecture\":\"ple\"}}", 2, 2, 0, 0, 2, 1, 0, 0.0f},
        {"{\"model\":{\"architecture\":\"taml\"}}", 2, 1, 1, 0, 1, 2, 0, 0.5f},
        {"{\"model\":{\"n_task_experts\":1,\"architecture\":\"ple\",\"n_levels\":3,\"scenario_dim\":4,"
         "\"n_scenario_experts\":1}}",
         2, 1, 0, 1, 3, 1, 4, 0.0f},
        {"{\"model\":{\"architecture\":\"taml\",\"distill\":0,\"n_learners\":3}}", 2, 1, 1, 0, 1, 3, 0, 0.0f},
        {"{\"model\":{\"n_learners\":2,\"distill\":0.25}}", 4, 0, 0, 0, 1, 2, 0, 0.25f},
        {"{\"model\":{\"dfub_heads\":2,\"dfub_target\":\"ad_id\",\"dfub_history\":\"recent_ads\"}}", 4, 0, 0, 0, 1, 1,
         0, 0.0f},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fr_config c;
        char err[512] = "";
        if (fr_config_load_string(&c, cases[i].json, err, sizeof err) != 0) fail_msg("case %zu: %s", i, err);
        const fr_model_config *m = &c.model;
        if (m->n_experts != cases[i].shared || m->n_task_experts != cases[i].task ||
            m->n_learner_experts != cases[i].learner || m->n_scenario_experts != cases[i].scen ||
            m->n_levels != cases[i].levels || m->n_learners != cases[i].learners || m->scenario_dim != cases[i].sd ||
            m->distill != cases[i].distill)
            fail_msg("case %zu %s: loaded %d %d %d %d %d %d %d %g", i, cases[i].json, m->n_experts, m->n_task_experts,
                     m->n_learner_experts, m->n_scenario_experts, m->n_levels, m->n_learners, m->scenario_dim,
                     (double)m->distill);
        if (strstr(cases[i].json, "dfub") && (m->dfub_target != 4 || m->dfub_history != 0 || m->dfub_heads != 2))
            fail_msg("case %zu: DFUB fields resolved to %d %d", i, m->dfub_target, m->dfub_history);
        fr_model *model = fr_model_create(m, err, sizeof err);
        if (!model) fail_msg("case %zu: the loaded config does not build: %s", i, err);
        fr_model_free(model);
    }
}

static void test_too_many_fields(void **state)
{
    (void)state;
    char json[4096];
    size_t n = (size_t)snprintf(json, sizeof json, "{\"fields\":[");
    for (int i = 0; i < FR_MAX_CAT; i++) /* one more than the FR_MAX_CAT - 1 left beside the scenario */
        n += (size_t)snprintf(json + n, sizeof json - n, "%s{\"name\":\"c%d\",\"kind\":\"categorical\"}", i ? "," : "",
                              i);
    snprintf(json + n, sizeof json - n, "]}");
    fr_config c;
    char err[256];
    assert_int_equal(fr_config_load_string(&c, json, err, sizeof err), -1);
    assert_non_null(strstr(err, "\"fields[15]\": too many categorical fields, the limit is 15"));

    /* exactly the limit loads and fills every categorical slot */
    char *last = strrchr(json, '{');
    strcpy(last - 1, "]}");
    assert_int_equal(fr_config_load_string(&c, json, err, sizeof err), 0);
    assert_int_equal(c.schema.n_cat, FR_MAX_CAT);

    n = (size_t)snprintf(json, sizeof json, "{\"fields\":[");
    for (int i = 0; i <= FR_MAX_NUM; i++)
        n += (size_t)snprintf(json + n, sizeof json - n, "%s{\"name\":\"n%d\",\"kind\":\"numeric\"}", i ? "," : "", i);
    snprintf(json + n, sizeof json - n, "]}");
    assert_int_equal(fr_config_load_string(&c, json, err, sizeof err), -1);
    assert_non_null(strstr(err, "\"fields[8]\": too many numeric fields, the limit is 8"));
}

static void test_long_strings(void **state)
{
    (void)state;
    char name[FR_NAME_MAX + 1];
    memset(name, 'a', FR_NAME_MAX);
    name[FR_NAME_MAX] = '\0';
    char json[256];
    snprintf(json, sizeof json, "{\"kafka\":{\"group_id\":\"%s\"}}", name);
    fr_config c;
    char err[256];
    assert_int_equal(fr_config_load_string(&c, json, err, sizeof err), -1);
    assert_non_null(strstr(err, "\"kafka.group_id\" is 64 bytes long, the limit is 63"));
    name[FR_NAME_MAX - 1] = '\0';
    snprintf(json, sizeof json, "{\"kafka\":{\"group_id\":\"%s\"}}", name);
    assert_int_equal(fr_config_load_string(&c, json, err, sizeof err), 0);
    assert_string_equal(c.group_id, name);
}

/* The delayed-feedback keys of "join" (docs/delayed-feedback.md). */
static void test_join_policy_keys(void **state)
{
    (void)state;
    fr_config c;
    char err[512];
    fr_config_defaults(&c);
    assert_int_equal(c.join_policy, FR_POLICY_ESDFM);
    assert_int_equal(c.observation_window_ms, 15 * 60 * 1000);
    assert_int_equal(fr_config_load_string(&c,
                                           "{\"join\":{\"policy\":\"defer\",\"observation_window\":\"30m\","
                                           "\"real_negative_window\":\"1d\",\"weight_clip\":3,\"rn_floor\":0.05,"
                                           "\"helper_buckets_log2\":12}}",
                                           err, sizeof err),
                     0);
    assert_int_equal(c.join_policy, FR_POLICY_DEFER);
    assert_int_equal(c.observation_window_ms, 30 * 60 * 1000);
    assert_int_equal(c.real_negative_window_ms, 86400000);
    assert_true(c.weight_clip == 3 && c.rn_floor == 0.05 && c.helper_buckets_log2 == 12);
    fr_config_defaults(&c);
    assert_int_equal(fr_config_load_string(&c, "{\"join\":{\"policy\":\"defuse2\"}}", err, sizeof err), -1);
    assert_non_null(strstr(err, "join.policy"));
    fr_config_defaults(&c);
    assert_int_equal(fr_config_load_string(&c, "{\"join\":{\"attribution_window\":\"1h\",\"observation_window\":\"2h\"}}",
                                           err, sizeof err),
                     -1);
    fr_config_defaults(&c);
    assert_int_equal(fr_config_load_string(&c, "{\"join\":{\"real_negative_window\":\"8d\"}}", err, sizeof err), -1);
    /* A short attribution window without an explicit w_o still loads (w_o follows it). */
    fr_config_defaults(&c);
    assert_int_equal(fr_config_load_string(&c, "{\"join\":{\"attribution_window\":\"5m\"}}", err, sizeof err), 0);
    assert_int_equal(c.observation_window_ms, 5 * 60 * 1000);
}

static void test_spill_and_guard_keys(void **state)
{
    (void)state;
    fr_config c;
    char err[512];
    fr_config_defaults(&c);
    assert_int_equal(c.max_cached_entries, 1000000);
    assert_true(c.guard.enabled && c.guard.trip_fraction == 0.2 && c.guard.resume_fraction == 0.5);
    assert_int_equal(fr_config_load_string(&c,
                                           "{\"join\":{\"max_cached_entries\":0},\"guard\":{\"enabled\":false,"
                                           "\"short_half_life\":\"10m\",\"long_half_life\":\"1d\",\"trip_fraction\":0.1,"
                                           "\"resume_fraction\":0.3,\"min_impressions\":50,\"min_clicks\":5,"
                                           "\"max_pause\":\"6h\"}}",
                                           err, sizeof err),
                     0);
    assert_int_equal(c.max_cached_entries, 0);
    assert_false(c.guard.enabled);
    assert_int_equal(c.guard.short_half_life_ms, 600000);
    assert_int_equal(c.guard.long_half_life_ms, 86400000);
    assert_true(c.guard.trip_fraction == 0.1 && c.guard.resume_fraction == 0.3);
    assert_true(c.guard.min_impressions == 50 && c.guard.min_clicks == 5);
    assert_int_equal(c.guard.max_pause_ms, 6 * 3600000);
    static const refusal cases[] = {
        {"{\"join\":{\"max_cached_entries\":1}}", "\"join.max_cached_entries\" is 1"},
        {"{\"join\":{\"max_cached_entries\":-3}}", "\"join.max_cached_entries\""},
        {"{\"guard\":{\"enable\":true}}", "unknown key \"guard.enable\""},
        {"{\"guard\":{\"long_half_life\":\"10m\"}}", "\"guard.long_half_life\" must be longer"},
        {"{\"guard\":{\"trip_fraction\":0.6}}", "\"guard.resume_fraction\" must be at least"},
        {"{\"guard\":{\"trip_fraction\":0}}", "\"guard.trip_fraction\""},
        {"{\"guard\":{\"min_clicks\":0}}", "\"guard.min_clicks\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fr_config_defaults(&c);
        int rc = fr_config_load_string(&c, cases[i].json, err, sizeof err);
        if (rc != -1 || !strstr(err, cases[i].want))
            fail_msg("case %zu %s: rc %d, message \"%s\", want \"%s\"", i, cases[i].json, rc, err, cases[i].want);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spill_and_guard_keys),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_example_file),
        cmocka_unit_test(test_empty_object_is_defaults),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_instants),
        cmocka_unit_test(test_join_policy_keys),
        cmocka_unit_test(test_overrides),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_architectures),
        cmocka_unit_test(test_duration_bounds),
        cmocka_unit_test(test_too_many_fields),
        cmocka_unit_test(test_long_strings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
