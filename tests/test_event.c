/* Tests of the EVENTS.md decoder: every bad input maps to its exact reason, and the example
 * events decode to the expected fields and keys. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fr_config.h"
#include "fr_event.h"
#include "fr_hash.h"

#include "event_cases.h"

static int setup(void **state)
{
    fr_config *c = malloc(sizeof *c);
    if (!c)
        return -1;
    fr_config_defaults(c);
    *state = c;
    return 0;
}

static int teardown(void **state)
{
    free(*state);
    return 0;
}

static fr_reject_reason decode(const fr_config *c, const char *json, fr_event *ev, char *err, size_t errlen)
{
    return fr_event_decode(&c->schema, json, strlen(json), ev, err, errlen);
}

static void test_bad_inputs(void **state)
{
    const fr_config *c = *state;
    size_t n = sizeof BAD / sizeof BAD[0];
    assert_true(n >= 35);
    int failures = 0;
    for (size_t i = 0; i < n; i++) {
        fr_event ev;
        char err[256] = "";
        size_t len = BAD[i].len ? BAD[i].len : strlen(BAD[i].json);
        fr_reject_reason r = fr_event_decode(&c->schema, BAD[i].json, len, &ev, err, sizeof err);
        if (r != BAD[i].want) {
            print_error("case \"%s\": got %s, want %s (%s)\n", BAD[i].what, fr_event_reject_name(r),
                        fr_event_reject_name(BAD[i].want), err);
            failures++;
        } else if (err[0] == '\0') {
            print_error("case \"%s\": no message\n", BAD[i].what);
            failures++;
        }
    }
    assert_int_equal(failures, 0);
}

static void test_long_ids(void **state)
{
    const fr_config *c = *state;
    char id[300];
    char json[512];
    fr_event ev;
    char err[256];

    memset(id, 'x', 256);
    id[256] = '\0';
    snprintf(json, sizeof json, "{\"type\":\"click\",\"id\":\"%s\",\"ts\":5}", id);
    assert_int_equal(decode(c, json, &ev, err, sizeof err), FR_REJECT_NONE);
    assert_int_equal(ev.id_len, 256);
    assert_string_equal(ev.id, id);

    memset(id, 'x', 257);
    id[257] = '\0';
    snprintf(json, sizeof json, "{\"type\":\"click\",\"id\":\"%s\",\"ts\":5}", id);
    assert_int_equal(decode(c, json, &ev, err, sizeof err), FR_REJECT_BAD_ID);
    assert_non_null(strstr(err, "257 bytes"));

    /* the limit is in bytes: 128 two-byte characters are exactly 256 bytes */
    char *p = id;
    for (int i = 0; i < 128; i++) {
        *p++ = (char)0xc3;
        *p++ = (char)0xa9; /* é */
    }
    *p = '\0';
    snprintf(json, sizeof json, "{\"type\":\"click\",\"id\":\"%s\",\"ts\":5}", id);
    assert_int_equal(decode(c, json, &ev, err, sizeof err), FR_REJECT_NONE);
    assert_int_equal(ev.id_len, 256);
}

static void test_oversized(void **state)
{
    const fr_config *c = *state;
    size_t limit = (size_t)c->schema.max_message_bytes;
    char *buf = malloc(limit + 2);
    assert_non_null(buf);
    size_t n = strlen(EXAMPLE_CLICK);
    memcpy(buf, EXAMPLE_CLICK, n);
    memset(buf + n, ' ', limit + 1 - n); /* whitespace padding: still valid JSON */
    fr_event ev;
    char err[256];
    assert_int_equal(fr_event_decode(&c->schema, buf, limit + 1, &ev, err, sizeof err), FR_REJECT_OVERSIZED);
    assert_non_null(strstr(err, "65537"));
    assert_int_equal(fr_event_decode(&c->schema, buf, limit, &ev, err, sizeof err), FR_REJECT_NONE);

    /* checked before parsing: garbage over the limit is oversized, not malformed */
    memset(buf, '{', limit + 1);
    assert_int_equal(fr_event_decode(&c->schema, buf, limit + 1, &ev, err, sizeof err), FR_REJECT_OVERSIZED);
    free(buf);
}

static uint64_t key(const char *field, const char *value)
{
    return fr_hash_value(fr_hash_field(field), value, strlen(value));
}

static void test_example_impression(void **state)
{
    const fr_config *c = *state;
    fr_event ev;
    char err[256] = "";
    assert_int_equal(decode(c, EXAMPLE_IMPRESSION, &ev, err, sizeof err), FR_REJECT_NONE);
    assert_string_equal(err, "");
    assert_int_equal(ev.type, FR_EV_IMPRESSION);
    assert_string_equal(ev.id, "i-8f3a");
    assert_int_equal(ev.id_len, 6);
    assert_int_equal(ev.ts, 1764300000123LL);
    assert_int_equal(ev.scenario, 0);
    assert_true(ev.sample_rate == 1.0f);

    const fr_features *f = &ev.features;
    assert_int_equal(c->schema.n_cat, 8);
    assert_true(f->cat[0] == key("scenario", "video"));
    assert_true(f->cat[1] == key("user_id", "u91"));
    assert_true(f->cat[2] == key("user_age", "25-34"));
    assert_true(f->cat[3] == key("device", "android"));
    assert_true(f->cat[4] == key("ad_id", "a77"));
    assert_true(f->cat[5] == key("advertiser", "adv12"));
    assert_true(f->cat[6] == key("category", "games"));
    assert_true(f->cat[7] == key("hour", "13"));
    for (int i = 8; i < FR_MAX_CAT; i++)
        assert_true(f->cat[i] == 0);
    assert_true(f->num[0] == (float)log1p(3.5));
    assert_int_equal(f->multi_len[0], 3);
    assert_true(f->multi[0][0] == key("recent_ads", "a12"));
    assert_true(f->multi[0][1] == key("recent_ads", "a99"));
    assert_true(f->multi[0][2] == key("recent_ads", "a7"));
    for (int i = 3; i < FR_MAX_MULTI_LEN; i++)
        assert_true(f->multi[0][i] == 0);
    assert_int_equal(f->multi_len[1], 0);
}

static void test_example_click_and_conversion(void **state)
{
    const fr_config *c = *state;
    fr_event ev;
    char err[256];
    assert_int_equal(decode(c, EXAMPLE_CLICK, &ev, err, sizeof err), FR_REJECT_NONE);
    assert_int_equal(ev.type, FR_EV_CLICK);
    assert_string_equal(ev.id, "i-8f3a");
    assert_int_equal(ev.ts, 1764300004211LL);

    assert_int_equal(decode(c, EXAMPLE_CONVERSION, &ev, err, sizeof err), FR_REJECT_NONE);
    assert_int_equal(ev.type, FR_EV_CONVERSION);
    assert_string_equal(ev.id, "i-8f3a");
    assert_int_equal(ev.ts, 1764386000000LL);
    assert_true(ev.value == 12.5);

    /* value is optional; clicks and conversions need nothing else, and ignore impression keys */
    assert_int_equal(decode(c, "{\"type\":\"conversion\",\"id\":\"x\",\"ts\":0}", &ev, err, sizeof err),
                     FR_REJECT_NONE);
    assert_true(ev.value == 0.0);
    assert_int_equal(decode(c, "{\"type\":\"conversion\",\"id\":\"x\",\"ts\":0,\"value\":null}", &ev, err, sizeof err),
                     FR_REJECT_NONE);
    assert_int_equal(decode(c, "{\"type\":\"click\",\"id\":\"x\",\"ts\":0,\"scenario\":7,\"features\":[]}", &ev, err,
                            sizeof err),
                     FR_REJECT_NONE);
}

static void test_unknown_keys_ignored(void **state)
{
    const fr_config *c = *state;
    fr_event a, b;
    char err[256];
    assert_int_equal(decode(c, EXAMPLE_IMPRESSION, &a, err, sizeof err), FR_REJECT_NONE);
    const char *with_extra =
        "{\"type\":\"impression\",\"id\":\"i-8f3a\",\"ts\":1764300000123,\"scenario\":\"video\",\"sample_rate\":1.0,"
        "\"producer\":{\"host\":\"ad7\"},\"schema\":3,"
        "\"features\":{\"user_id\":\"u91\",\"user_age\":\"25-34\",\"device\":\"android\",\"ad_id\":\"a77\","
        "\"advertiser\":\"adv12\",\"category\":\"games\",\"hour\":13,\"price\":3.5,"
        "\"recent_ads\":[\"a12\",\"a99\",\"a7\"],\"weather\":[1,{}],\"new_field\":true}}\n";
    assert_int_equal(decode(c, with_extra, &b, err, sizeof err), FR_REJECT_NONE);
    /* the decoder clears the whole struct, so equal events are equal bytes */
    assert_memory_equal(&a, &b, sizeof a);
}

static void test_number_as_categorical(void **state)
{
    const fr_config *c = *state;
    fr_event ev;
    char err[256];
    uint64_t want = key("hour", "13");
    static const char *const spellings[] = {IMP("{\"hour\":13}"), IMP("{\"hour\":\"13\"}"), IMP("{\"hour\":13.0}"),
                                            IMP("{\"hour\":1.3e1}")};
    for (size_t i = 0; i < sizeof spellings / sizeof spellings[0]; i++) {
        assert_int_equal(decode(c, spellings[i], &ev, err, sizeof err), FR_REJECT_NONE);
        assert_true(ev.features.cat[7] == want);
    }
    assert_int_equal(decode(c, IMP("{\"hour\":-0.0}"), &ev, err, sizeof err), FR_REJECT_NONE);
    assert_true(ev.features.cat[7] == key("hour", "0"));
    assert_int_equal(decode(c, IMP("{\"hour\":-7}"), &ev, err, sizeof err), FR_REJECT_NONE);
    assert_true(ev.features.cat[7] == key("hour", "-7"));
    assert_int_equal(decode(c, IMP("{\"hour\":0.1}"), &ev, err, sizeof err), FR_REJECT_NONE);
    assert_true(ev.features.cat[7] == key("hour", "0.1"));
    assert_int_equal(decode(c, IMP("{\"hour\":13.5}"), &ev, err, sizeof err), FR_REJECT_NONE);
    assert_true(ev.features.cat[7] == key("hour", "13.5"));
    assert_int_equal(decode(c, IMP("{\"hour\":9223372036854775807}"), &ev, err, sizeof err), FR_REJECT_NONE);
    assert_true(ev.features.cat[7] == key("hour", "9223372036854775807"));
    assert_int_equal(decode(c, IMP("{\"hour\":-9223372036854775808}"), &ev, err, sizeof err), FR_REJECT_NONE);
    assert_true(ev.features.cat[7] == key("hour", "-9223372036854775808"));
}

static void test_multi_truncated(void **state)
{
    const fr_config *c = *state;
    fr_event ev;
    char err[256];
    assert_int_equal(
        decode(c, IMP("{\"recent_ads\":[\"r0\",\"r1\",\"r2\",\"r3\",\"r4\",\"r5\",\"r6\",\"r7\",\"r8\",\"r9\"]}"), &ev,
               err, sizeof err),
        FR_REJECT_NONE);
    assert_int_equal(ev.features.multi_len[0], 8);
    for (int i = 0; i < 8; i++) {
        char v[4];
        snprintf(v, sizeof v, "r%d", i);
        assert_true(ev.features.multi[0][i] == key("recent_ads", v));
    }
    assert_int_equal(decode(c, IMP("{\"recent_ads\":[]}"), &ev, err, sizeof err), FR_REJECT_NONE);
    assert_int_equal(ev.features.multi_len[0], 0);
    assert_true(ev.features.multi[0][0] == 0);
}

static void test_missing_features(void **state)
{
    const fr_config *c = *state;
    fr_event ev;
    char err[256];
    uint64_t missing = fr_hash_value(fr_hash_field("device"), FR_MISSING_VALUE, FR_MISSING_VALUE_LEN);

    assert_int_equal(decode(c, IMP("{}"), &ev, err, sizeof err), FR_REJECT_NONE);
    assert_true(ev.features.cat[3] == missing);
    assert_true(ev.features.cat[3] != key("device", ""));
    assert_true(ev.features.cat[3] != 0);
    /* each field's missing key is its own */
    assert_true(ev.features.cat[1] == fr_hash_value(fr_hash_field("user_id"), FR_MISSING_VALUE, FR_MISSING_VALUE_LEN));
    assert_true(ev.features.cat[1] != ev.features.cat[3]);
    assert_true(ev.features.num[0] == 0.0f);
    assert_int_equal(ev.features.multi_len[0], 0);

    /* null is the same as absent */
    fr_event ev2;
    assert_int_equal(decode(c, IMP("{\"device\":null,\"price\":null,\"recent_ads\":null}"), &ev2, err, sizeof err),
                     FR_REJECT_NONE);
    assert_memory_equal(&ev, &ev2, sizeof ev);

    /* the empty string is a value, not a missing one */
    assert_int_equal(decode(c, IMP("{\"device\":\"\"}"), &ev, err, sizeof err), FR_REJECT_NONE);
    assert_true(ev.features.cat[3] == key("device", ""));
    assert_true(ev.features.cat[3] != missing);
    /* a producer cannot forge the marker: its bytes are not valid UTF-8, and \u00ff is two bytes */
    assert_int_equal(decode(c, IMP("{\"device\":\"\\u00ffmissing\"}"), &ev, err, sizeof err), FR_REJECT_NONE);
    assert_true(ev.features.cat[3] != missing);
}

static void test_allow_new_scenarios(void **state)
{
    (void)state;
    fr_config c;
    char err[256];
    assert_int_equal(fr_config_load_string(&c, "{\"allow_new_scenarios\": true}", err, sizeof err), 0);
    int other = fr_schema_scenario_index(&c.schema, "other", 5);
    assert_int_equal(other, 4);
    assert_int_equal(c.schema.n_scenarios, 5);

    fr_event ev;
    const char *json = "{\"type\":\"impression\",\"id\":\"i-2\",\"ts\":3,\"scenario\":\"podcast\",\"features\":{}}";
    assert_int_equal(decode(&c, json, &ev, err, sizeof err), FR_REJECT_NONE);
    assert_int_equal(ev.scenario, other);
    /* the embedding still tells new scenarios apart */
    assert_true(ev.features.cat[0] == key("scenario", "podcast"));

    json = "{\"type\":\"impression\",\"id\":\"i-2\",\"ts\":3,\"scenario\":\"music\",\"features\":{}}";
    assert_int_equal(decode(&c, json, &ev, err, sizeof err), FR_REJECT_NONE);
    assert_int_equal(ev.scenario, 2);
    assert_true(ev.features.cat[0] == key("scenario", "music"));
}

static void test_numbers_accepted(void **state)
{
    const fr_config *c = *state;
    fr_event ev;
    char err[256];
    /* an integral real is that integer (JSON Schema's notion of integer) */
    assert_int_equal(decode(c, "{\"type\":\"click\",\"id\":\"a\",\"ts\":1764300000123.0}", &ev, err, sizeof err),
                     FR_REJECT_NONE);
    assert_int_equal(ev.ts, 1764300000123LL);
    assert_int_equal(decode(c, "{\"type\":\"click\",\"id\":\"a\",\"ts\":1.764300000123e12}", &ev, err, sizeof err),
                     FR_REJECT_NONE);
    assert_int_equal(ev.ts, 1764300000123LL);
    assert_int_equal(decode(c, "{\"type\":\"click\",\"id\":\"a\",\"ts\":0}", &ev, err, sizeof err), FR_REJECT_NONE);
    assert_int_equal(decode(c, "{\"type\":\"click\",\"id\":\"a\",\"ts\":253402300799999}", &ev, err, sizeof err),
                     FR_REJECT_NONE);

    const char *json = IMP_TOP(",\"scenario\":\"browser\",\"sample_rate\":1");
    assert_int_equal(decode(c, json, &ev, err, sizeof err), FR_REJECT_NONE);
    assert_true(ev.sample_rate == 1.0f);
    assert_int_equal(ev.scenario, 1);
    json = IMP_TOP(",\"scenario\":\"third_party\",\"sample_rate\":0.05");
    assert_int_equal(decode(c, json, &ev, err, sizeof err), FR_REJECT_NONE);
    assert_true(ev.sample_rate == 0.05f);
    assert_int_equal(ev.scenario, 3);
    json = IMP_TOP(",\"scenario\":\"video\",\"sample_rate\":null");
    assert_int_equal(decode(c, json, &ev, err, sizeof err), FR_REJECT_NONE);
    assert_true(ev.sample_rate == 1.0f);

    assert_int_equal(decode(c, IMP("{\"price\":0}"), &ev, err, sizeof err), FR_REJECT_NONE);
    assert_true(ev.features.num[0] == 0.0f);
    assert_int_equal(decode(c, IMP("{\"price\":-0.5}"), &ev, err, sizeof err), FR_REJECT_NONE);
    assert_true(ev.features.num[0] == (float)log1p(-0.5));
    assert_int_equal(decode(c, IMP("{\"price\":1e300}"), &ev, err, sizeof err), FR_REJECT_NONE);
}

static void test_identity_overflow(void **state)
{
    (void)state;
    fr_config c;
    char err[256];
    assert_int_equal(fr_config_load_string(&c, "{\"fields\":[{\"name\":\"bid\",\"kind\":\"numeric\"}]}", err,
                                           sizeof err),
                     0);
    fr_event ev;
    assert_int_equal(decode(&c, IMP("{\"bid\":1e300}"), &ev, err, sizeof err), FR_REJECT_NON_FINITE);
    assert_non_null(strstr(err, "features.bid"));
    assert_int_equal(decode(&c, IMP("{\"bid\":-2.5}"), &ev, err, sizeof err), FR_REJECT_NONE);
    assert_true(ev.features.num[0] == -2.5f);
}

static void test_messages(void **state)
{
    const fr_config *c = *state;
    fr_event ev;
    char err[256];
    const char *json = "{\"type\":\"impression\",\"id\":\"i-8f3a\",\"ts\":1,\"scenario\":\"video\","
                       "\"features\":{\"price\":\"3.5\"}}";
    assert_int_equal(decode(c, json, &ev, err, sizeof err), FR_REJECT_BAD_FEATURE_VALUE);
    assert_string_equal(err, "impression i-8f3a: features.price is a string, expected a number");

    assert_int_equal(decode(c, IMP("{\"recent_ads\":[\"a\",3]}"), &ev, err, sizeof err), FR_REJECT_BAD_FEATURE_VALUE);
    assert_string_equal(err, "impression i-1: features.recent_ads[1] is a number, expected a string");

    assert_int_equal(decode(c, "{\"id\":\"a\"}", &ev, err, sizeof err), FR_REJECT_BAD_TYPE);
    assert_string_equal(err, "event: type is missing");

    assert_int_equal(decode(c, "{\"type\":\"click\",\"id\":\"a\\nb\",\"ts\":-4}", &ev, err, sizeof err),
                     FR_REJECT_BAD_TS);
    assert_non_null(strstr(err, "click a?b: ts is -4"));

    assert_int_equal(decode(c, "{\"type\":", &ev, err, sizeof err), FR_REJECT_MALFORMED_JSON);
    assert_non_null(strstr(err, "malformed JSON at line 1"));

    /* a tiny or absent buffer is fine */
    char small[8];
    assert_int_equal(decode(c, "[]", &ev, small, sizeof small), FR_REJECT_NOT_OBJECT);
    assert_int_equal(strlen(small), 7);
    assert_int_equal(decode(c, "[]", &ev, NULL, 0), FR_REJECT_NOT_OBJECT);
}

static void test_reject_names(void **state)
{
    (void)state;
    assert_string_equal(fr_event_reject_name(FR_REJECT_NONE), "none");
    assert_string_equal(fr_event_reject_name(FR_REJECT_MALFORMED_JSON), "malformed_json");
    assert_string_equal(fr_event_reject_name(FR_REJECT_BAD_FEATURE_VALUE), "bad_feature_value");
    assert_string_equal(fr_event_reject_name(FR_REJECT_NREASONS), "unknown");
    for (int i = 0; i < FR_REJECT_NREASONS; i++) {
        const char *a = fr_event_reject_name((fr_reject_reason)i);
        assert_non_null(a);
        for (const char *p = a; *p; p++)
            assert_true((*p >= 'a' && *p <= 'z') || *p == '_');
        for (int j = 0; j < i; j++)
            assert_string_not_equal(a, fr_event_reject_name((fr_reject_reason)j));
    }
    assert_string_equal(fr_event_type_name(FR_EV_IMPRESSION), "impression");
    assert_string_equal(fr_event_type_name(FR_EV_CLICK), "click");
    assert_string_equal(fr_event_type_name(FR_EV_CONVERSION), "conversion");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_inputs),
        cmocka_unit_test(test_long_ids),
        cmocka_unit_test(test_oversized),
        cmocka_unit_test(test_example_impression),
        cmocka_unit_test(test_example_click_and_conversion),
        cmocka_unit_test(test_unknown_keys_ignored),
        cmocka_unit_test(test_number_as_categorical),
        cmocka_unit_test(test_multi_truncated),
        cmocka_unit_test(test_missing_features),
        cmocka_unit_test(test_allow_new_scenarios),
        cmocka_unit_test(test_numbers_accepted),
        cmocka_unit_test(test_identity_overflow),
        cmocka_unit_test(test_messages),
        cmocka_unit_test(test_reject_names),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
