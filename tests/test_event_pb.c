/* Tests of the Protobuf event decoder (fr_event_pb): a JSON event translated to Protobuf decodes
 * to the same fr_event, byte for byte, as the JSON (every event type, every value kind), bare and
 * in the Confluent framing; every bad JSON case Protobuf can express gets JSON's reason; and the
 * bad input only Protobuf has (truncation, wire types, framing, UTF-8, feature names) is refused
 * with its reason, never a crash. */
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
#include "fr_event_pb.h"
#include "fr_hash.h"
#include "fr_pipeline.h"

#include "event_cases.h"

/* Accepted events covering each type, each field kind and each value kind (string, integer, real,
 * array, null, absent), and the number spellings the JSON decoder canonicalises. */
static const char *const GOOD[] = {
    EXAMPLE_IMPRESSION,
    EXAMPLE_CLICK,
    EXAMPLE_CONVERSION,
    "{\"type\":\"conversion\",\"id\":\"i-9\",\"ts\":5}",
    "{\"type\":\"conversion\",\"id\":\"i-9\",\"ts\":5,\"value\":-3}",
    "{\"type\":\"click\",\"id\":\"a\",\"ts\":1764300000123.0}",
    "{\"type\":\"click\",\"id\":\"a\",\"ts\":0}",
    "{\"type\":\"click\",\"id\":\"a\",\"ts\":253402300799999}",
    "{\"type\":\"click\",\"id\":\"\xc3\xa9t\xc3\xa9\",\"ts\":7,\"scenario\":\"nope\",\"features\":{\"x\":1}}",
    IMP("{}"),
    IMP("{\"device\":null,\"price\":null,\"recent_ads\":null}"),
    IMP("{\"device\":\"\"}"),
    IMP("{\"device\":\"a\\u0000b\"}"),
    IMP("{\"hour\":13}"),
    IMP("{\"hour\":\"13\"}"),
    IMP("{\"hour\":13.0}"),
    IMP("{\"hour\":-0.0}"),
    IMP("{\"hour\":0.1}"),
    IMP("{\"hour\":13.5}"),
    IMP("{\"hour\":9223372036854775807}"),
    IMP("{\"hour\":-9223372036854775808}"),
    IMP("{\"price\":0}"),
    IMP("{\"price\":-0.5}"),
    IMP("{\"price\":7}"),
    IMP("{\"price\":1e300}"),
    IMP("{\"recent_ads\":[]}"),
    IMP("{\"recent_ads\":[\"r0\",\"r1\",\"r2\",\"r3\",\"r4\",\"r5\",\"r6\",\"r7\",\"r8\",\"r9\"]}"),
    IMP("{\"weather\":[\"x\"],\"new_field\":3}"),
    IMP_TOP(",\"scenario\":\"browser\",\"sample_rate\":1"),
    IMP_TOP(",\"scenario\":\"third_party\",\"sample_rate\":0.05"),
    IMP_TOP(",\"scenario\":\"music\",\"sample_rate\":null"),
};

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

/* The Protobuf message of a JSON event (must be expressible), framed when schema_id >= 0. */
static uint8_t *to_pb(const char *json, size_t len, int64_t schema_id, size_t *n)
{
    uint8_t *pb = NULL;
    char err[256] = "";
    int rc = fr_event_pb_from_json(json, len, schema_id, &pb, n, err, sizeof err);
    if (rc != 0)
        print_error("cannot translate %.80s: %s\n", json, err);
    assert_int_equal(rc, 0);
    return pb;
}

static fr_reject_reason decode_pb(const fr_config *c, const void *buf, size_t len, fr_event *ev, char *err,
                                  size_t errlen)
{
    return fr_event_decode_pb(&c->schema, buf, len, ev, NULL, err, errlen);
}

static void test_round_trip(void **state)
{
    const fr_config *c = *state;
    int types[FR_EV_NTYPES] = {0};
    for (size_t i = 0; i < sizeof GOOD / sizeof GOOD[0]; i++) {
        fr_event want, got;
        char err[256] = "";
        assert_int_equal(fr_event_decode(&c->schema, GOOD[i], strlen(GOOD[i]), &want, err, sizeof err),
                         FR_REJECT_NONE);
        types[want.type]++;
        for (int framed = 0; framed < 2; framed++) {
            size_t n;
            int64_t id = -2;
            uint8_t *pb = to_pb(GOOD[i], strlen(GOOD[i]), framed ? 4242 : -1, &n);
            fr_reject_reason r = fr_event_decode_pb(&c->schema, (const char *)pb, n, &got, &id, err, sizeof err);
            if (r != FR_REJECT_NONE)
                print_error("case %zu (%s): %s\n", i, GOOD[i], err);
            assert_int_equal(r, FR_REJECT_NONE);
            assert_int_equal(id, framed ? 4242 : -1);
            /* field for field, and the padding: both decoders clear the struct */
            assert_int_equal(got.type, want.type);
            assert_string_equal(got.id, want.id);
            assert_int_equal(got.id_len, want.id_len);
            assert_int_equal(got.ts, want.ts);
            assert_int_equal(got.scenario, want.scenario);
            assert_true(got.sample_rate == want.sample_rate);
            assert_true(got.value == want.value);
            assert_memory_equal(&got.features, &want.features, sizeof got.features);
            assert_memory_equal(&got, &want, sizeof got);
            free(pb);
        }
    }
    for (int t = 0; t < FR_EV_NTYPES; t++)
        assert_true(types[t] > 0);
}

/* Every bad JSON case that Protobuf can express gets the same reason from the Protobuf decoder;
 * what it cannot express (a wrong JSON type, broken syntax) the translation refuses. */
static void test_bad_json_cases(void **state)
{
    const fr_config *c = *state;
    size_t n = sizeof BAD / sizeof BAD[0], expressed = 0;
    int failures = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len = BAD[i].len ? BAD[i].len : strlen(BAD[i].json);
        uint8_t *pb = NULL;
        size_t pblen = 0;
        char err[256] = "";
        if (fr_event_pb_from_json(BAD[i].json, len, 7, &pb, &pblen, err, sizeof err) != 0)
            continue;
        expressed++;
        fr_event ev;
        fr_reject_reason r = decode_pb(c, pb, pblen, &ev, err, sizeof err);
        if (r != BAD[i].want || err[0] == '\0') {
            print_error("case \"%s\": got %s, want %s (%s)\n", BAD[i].what, fr_event_reject_name(r),
                        fr_event_reject_name(BAD[i].want), err);
            failures++;
        }
        free(pb);
    }
    assert_int_equal(failures, 0);
    /* the type, id, ts, scenario, sample_rate, features and value checks at least */
    print_message("%zu of %zu bad JSON cases expressed in Protobuf\n", expressed, n);
    assert_true(expressed >= 24);
}

/* The same message from both decoders: the checks are one code path. */
static void test_same_messages(void **state)
{
    const fr_config *c = *state;
    static const char *const cases[] = {
        IMP("{\"price\":-1}"),
        IMP_TOP(",\"scenario\":\"podcast\""),
        IMP_TOP(",\"scenario\":\"video\",\"sample_rate\":1.5"),
        IMP("{\"recent_ads\":\"a12\"}"),
        IMP("{\"ad_id\":[\"a1\"]}"),
        "{\"type\":\"click\",\"id\":\"a\",\"ts\":-1}",
        "{\"type\":\"click\",\"id\":\"\",\"ts\":1}",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fr_event ev;
        char ej[256], ep[256];
        fr_reject_reason rj = fr_event_decode(&c->schema, cases[i], strlen(cases[i]), &ev, ej, sizeof ej);
        size_t n;
        uint8_t *pb = to_pb(cases[i], strlen(cases[i]), -1, &n);
        fr_reject_reason rp = decode_pb(c, pb, n, &ev, ep, sizeof ep);
        free(pb);
        assert_int_not_equal(rj, FR_REJECT_NONE);
        assert_int_equal(rp, rj);
        assert_string_equal(ep, ej);
    }
}

typedef struct {
    const char *what;
    const char *bytes;
    size_t len;
    fr_reject_reason want;
    const char *says;
} pb_case;

#define B(s) s, sizeof s - 1
/* field 1 type=CLICK (08 02), field 2 id="a" (12 01 61), field 3 ts=1 (18 01) */
#define CLICK_A "\x08\x02\x12\x01" "a" "\x18\x01"

static const pb_case PB_BAD[] = {
    {"empty message", B(""), FR_REJECT_MALFORMED_JSON, "empty"},
    {"truncated varint", B("\x08\x02\x12\x01" "a" "\x18\x81"), FR_REJECT_MALFORMED_JSON, "Protobuf"},
    {"truncated length", B("\x08\x02\x12\x05" "ab"), FR_REJECT_MALFORMED_JSON, "Protobuf"},
    {"truncated tag", B(CLICK_A "\x80"), FR_REJECT_MALFORMED_JSON, "Protobuf"},
    {"ts as a string (wrong wire type)", B("\x08\x02\x12\x01" "a" "\x1a\x01" "1"), FR_REJECT_MALFORMED_JSON,
     "wire type"},
    {"id as a varint (wrong wire type)", B("\x08\x02\x10\x05\x18\x01"), FR_REJECT_MALFORMED_JSON, "wire type"},
    {"end-group without start", B(CLICK_A "\x0c"), FR_REJECT_MALFORMED_JSON, "Protobuf"},
    {"JSON text on a Protobuf topic", B("{\"type\":\"click\",\"id\":\"a\",\"ts\":1}"), FR_REJECT_MALFORMED_JSON,
     "Protobuf"},
    {"id not UTF-8", B("\x08\x02\x12\x02\xff\xfe\x18\x01"), FR_REJECT_MALFORMED_JSON, "UTF-8"},
    {"id overlong UTF-8", B("\x08\x02\x12\x02\xc0\xaf\x18\x01"), FR_REJECT_MALFORMED_JSON, "UTF-8"},
    {"id surrogate", B("\x08\x02\x12\x03\xed\xa0\x80\x18\x01"), FR_REJECT_MALFORMED_JSON, "UTF-8"},
    {"scenario not UTF-8", B("\x08\x01\x12\x01" "a" "\x18\x01\x22\x01\x80\x32\x00"), FR_REJECT_MALFORMED_JSON,
     "UTF-8"},
    /* features { feature { name "device" string_value "\xff" } } */
    {"feature value not UTF-8",
     B("\x08\x01\x12\x01" "a" "\x18\x01\x22\x05" "video" "\x32\x0d\x0a\x0b\x0a\x06" "device" "\x12\x01\xff"),
     FR_REJECT_MALFORMED_JSON, "features[0]"},
    /* features { feature { string_value "x" } } */
    {"feature without a name", B("\x08\x01\x12\x01" "a" "\x18\x01\x22\x05" "video" "\x32\x05\x0a\x03\x12\x01" "x"),
     FR_REJECT_MALFORMED_JSON, "no name"},
    /* features { feature { name "device" string_value "x" } feature { name "device" int_value 1 } } */
    {"feature named twice",
     B("\x08\x01\x12\x01" "a" "\x18\x01\x22\x05" "video"
       "\x32\x19\x0a\x0b\x0a\x06" "device" "\x12\x01" "x" "\x0a\x0a\x0a\x06" "device" "\x18\x02"),
     FR_REJECT_MALFORMED_JSON, "twice"},
    {"type missing", B("\x12\x01" "a" "\x18\x01"), FR_REJECT_BAD_TYPE, "type is missing"},
    {"type unspecified", B("\x08\x00\x12\x01" "a" "\x18\x01"), FR_REJECT_BAD_TYPE, "type is missing"},
    {"type unknown", B("\x08\x09\x12\x01" "a" "\x18\x01"), FR_REJECT_BAD_TYPE, "type 9 is unknown"},
    {"type negative", B("\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01\x12\x01" "a" "\x18\x01"), FR_REJECT_BAD_TYPE,
     "unknown"},
    {"id missing", B("\x08\x02\x18\x01"), FR_REJECT_BAD_ID, "id is missing"},
    {"id empty", B("\x08\x02\x12\x00\x18\x01"), FR_REJECT_BAD_ID, "id is empty"},
    {"id with NUL", B("\x08\x02\x12\x03" "a\0b" "\x18\x01"), FR_REJECT_BAD_ID, "NUL"},
    {"ts missing", B("\x08\x02\x12\x01" "a"), FR_REJECT_BAD_TS, "ts is missing"},
    {"ts negative", B("\x08\x02\x12\x01" "a" "\x18\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"), FR_REJECT_BAD_TS,
     "ts is -1"},
    {"scenario missing", B("\x08\x01\x12\x01" "a" "\x18\x01\x32\x00"), FR_REJECT_BAD_SCENARIO, "scenario is missing"},
    {"scenario unknown", B("\x08\x01\x12\x01" "a" "\x18\x01\x22\x07" "podcast" "\x32\x00"),
     FR_REJECT_UNKNOWN_SCENARIO, "podcast"},
    {"features missing", B("\x08\x01\x12\x01" "a" "\x18\x01\x22\x05" "video"), FR_REJECT_BAD_FEATURES,
     "features is missing"},
    /* sample_rate (field 5, fixed64) = NaN */
    {"sample_rate NaN", B("\x08\x01\x12\x01" "a" "\x18\x01\x22\x05" "video" "\x29\x00\x00\x00\x00\x00\x00\xf8\x7f"
                          "\x32\x00"),
     FR_REJECT_NON_FINITE, "sample_rate"},
    /* features { feature { name "price" double_value +inf } } */
    {"numeric infinite",
     B("\x08\x01\x12\x01" "a" "\x18\x01\x22\x05" "video"
       "\x32\x12\x0a\x10\x0a\x05" "price" "\x21\x00\x00\x00\x00\x00\x00\xf0\x7f"),
     FR_REJECT_NON_FINITE, "features.price"},
    /* value (field 7, fixed64) = -inf on a conversion */
    {"conversion value infinite", B("\x08\x03\x12\x01" "a" "\x18\x01\x39\x00\x00\x00\x00\x00\x00\xf0\xff"),
     FR_REJECT_NON_FINITE, "value"},
    /* the Confluent framing */
    {"framing cut in the schema id", B("\x00\x00\x00"), FR_REJECT_MALFORMED_JSON, "header needs 5"},
    {"framing without message indexes", B("\x00\x00\x00\x00\x07"), FR_REJECT_MALFORMED_JSON, "truncated"},
    {"framing naming message 1", B("\x00\x00\x00\x00\x07\x02\x02" CLICK_A), FR_REJECT_MALFORMED_JSON,
     "do not name freshet.v1.Event"},
    {"framing naming a nested message", B("\x00\x00\x00\x00\x07\x04\x00\x00" CLICK_A), FR_REJECT_MALFORMED_JSON,
     "do not name"},
    {"framing with a negative count", B("\x00\x00\x00\x00\x07\x01" CLICK_A), FR_REJECT_MALFORMED_JSON,
     "do not name"},
    {"framing with an endless varint", B("\x00\x00\x00\x00\x07\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"),
     FR_REJECT_MALFORMED_JSON, "truncated"},
    {"framing around garbage", B("\x00\x00\x00\x00\x07\x00\x12\x05"), FR_REJECT_MALFORMED_JSON, "Protobuf"},
};

static void test_bad_protobuf(void **state)
{
    const fr_config *c = *state;
    int failures = 0;
    for (size_t i = 0; i < sizeof PB_BAD / sizeof PB_BAD[0]; i++) {
        fr_event ev;
        char err[256] = "";
        fr_reject_reason r = decode_pb(c, PB_BAD[i].bytes, PB_BAD[i].len, &ev, err, sizeof err);
        if (r != PB_BAD[i].want || !strstr(err, PB_BAD[i].says)) {
            print_error("case \"%s\": got %s (%s), want %s (\"%s\")\n", PB_BAD[i].what, fr_event_reject_name(r), err,
                        fr_event_reject_name(PB_BAD[i].want), PB_BAD[i].says);
            failures++;
        }
    }
    assert_int_equal(failures, 0);
}

static void test_framings(void **state)
{
    const fr_config *c = *state;
    fr_event want, ev;
    char err[256];
    const char *click = "{\"type\":\"click\",\"id\":\"a\",\"ts\":1}";
    assert_int_equal(fr_event_decode(&c->schema, click, strlen(click), &want, err, sizeof err), FR_REJECT_NONE);
    static const struct {
        const char *bytes;
        size_t len;
        int64_t id;
    } ok[] = {
        {B(CLICK_A), -1},
        {B("\x00\x00\x00\x00\x07\x00" CLICK_A), 7},                 /* index [0] as Confluent writes it: one 0 */
        {B("\x00\x00\x00\x00\x07\x02\x00" CLICK_A), 7},             /* the long form: count 1, index 0 */
        {B("\x00\x7f\xff\xff\xff\x00" CLICK_A), 2147483647},
        {B("\x00\xff\xff\xff\xff\x00" CLICK_A), 4294967295LL},      /* ids are unsigned on the wire */
        {B(CLICK_A "\x18\x01\xa0\x06\x01"), -1},                     /* ts twice (last wins), an unknown field */
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int64_t id = 0;
        fr_reject_reason r = fr_event_decode_pb(&c->schema, ok[i].bytes, ok[i].len, &ev, &id, err, sizeof err);
        if (r != FR_REJECT_NONE)
            print_error("framing %zu: %s\n", i, err);
        assert_int_equal(r, FR_REJECT_NONE);
        assert_int_equal(id, ok[i].id);
        assert_memory_equal(&ev, &want, sizeof ev);
    }
}

static void test_oversized(void **state)
{
    const fr_config *c = *state;
    size_t limit = (size_t)c->schema.max_message_bytes;
    /* a click whose id is padded by an unknown bytes field: valid Protobuf of exactly limit + 1 bytes */
    uint8_t *buf = malloc(limit + 1);
    assert_non_null(buf);
    size_t head = sizeof CLICK_A - 1, pad = limit + 1 - head - 5;
    memcpy(buf, CLICK_A, head);
    buf[head] = 0xa2; /* field 100, length-delimited, a 3-byte length */
    buf[head + 1] = 0x06;
    buf[head + 2] = (uint8_t)(0x80 | (pad & 0x7f));
    buf[head + 3] = (uint8_t)(0x80 | ((pad >> 7) & 0x7f));
    buf[head + 4] = (uint8_t)(pad >> 14);
    memset(buf + head + 5, 'x', pad);
    fr_event ev;
    char err[256];
    assert_int_equal(decode_pb(c, buf, limit + 1, &ev, err, sizeof err), FR_REJECT_OVERSIZED);
    assert_non_null(strstr(err, "65537"));
    buf[head + 2] = (uint8_t)(0x80 | ((pad - 1) & 0x7f));
    buf[head + 3] = (uint8_t)(0x80 | (((pad - 1) >> 7) & 0x7f));
    buf[head + 4] = (uint8_t)((pad - 1) >> 14);
    assert_int_equal(decode_pb(c, buf, limit, &ev, err, sizeof err), FR_REJECT_NONE);
    /* checked before parsing: garbage over the limit is oversized, not malformed */
    memset(buf, 0xff, limit + 1);
    assert_int_equal(decode_pb(c, buf, limit + 1, &ev, err, sizeof err), FR_REJECT_OVERSIZED);
    free(buf);
}

/* Many features: protobuf-c's allocations leave the decoder's stack arena (and the duplicate check
 * sorts); the event is still JSON's. */
static void test_many_features(void **state)
{
    const fr_config *c = *state;
    size_t cap = 64 * 1024;
    char *json = malloc(cap);
    assert_non_null(json);
    int o = snprintf(json, cap, "{\"type\":\"impression\",\"id\":\"i\",\"ts\":1,\"scenario\":\"video\",\"features\":{");
    for (int i = 0; i < 1500; i++)
        o += snprintf(json + o, cap - (size_t)o, "\"f%d\":[\"v%d\",\"w\"],", i, i);
    snprintf(json + o, cap - (size_t)o, "\"device\":\"d\",\"recent_ads\":[\"a\",\"b\"]}}");
    fr_event want, got;
    char err[256];
    assert_int_equal(fr_event_decode(&c->schema, json, strlen(json), &want, err, sizeof err), FR_REJECT_NONE);
    size_t n;
    uint8_t *pb = to_pb(json, strlen(json), -1, &n);
    assert_int_equal(decode_pb(c, pb, n, &got, err, sizeof err), FR_REJECT_NONE);
    assert_memory_equal(&got, &want, sizeof got);

    /* the same, with one name given twice among many: a second features field (field 6) holding
     * {feature {name "f77" string_value "again"}}, which Protobuf merges into the first */
    static const char more[] = "\x32\x0e\x0a\x0c\x0a\x03" "f77" "\x12\x05" "again";
    uint8_t *dup = malloc(n + sizeof more);
    assert_non_null(dup);
    memcpy(dup, pb, n);
    memcpy(dup + n, more, sizeof more - 1);
    assert_int_equal(decode_pb(c, dup, n + sizeof more - 1, &got, err, sizeof err), FR_REJECT_MALFORMED_JSON);
    assert_non_null(strstr(err, "\"f77\" is given twice"));
    free(dup);
    free(pb);
    free(json);
}

static void test_translation_refusals(void **state)
{
    (void)state;
    static const char *const cases[] = {
        "{\"type\":\"click\",\"id\":\"a\",\"ts\":1",
        "[1]",
        "{\"type\":\"view\",\"id\":\"a\",\"ts\":1}",
        "{\"type\":\"click\",\"id\":7,\"ts\":1}",
        "{\"type\":\"click\",\"id\":\"a\",\"ts\":1.5}",
        IMP("{\"device\":true}"),
        IMP("{\"recent_ads\":[\"a\",1]}"),
        IMP("[]"),
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t *pb = (uint8_t *)"not touched";
        size_t n = 99;
        char err[256] = "";
        assert_int_equal(fr_event_pb_from_json(cases[i], strlen(cases[i]), -1, &pb, &n, err, sizeof err), -1);
        assert_null(pb);
        assert_int_equal(n, 0);
        assert_true(err[0] != '\0');
    }
    uint8_t *pb;
    size_t n;
    char err[256];
    assert_int_equal(fr_event_pb_from_json(EXAMPLE_CLICK, strlen(EXAMPLE_CLICK), 1LL << 31, &pb, &n, err, sizeof err),
                     -1);
}

static void test_formats_and_config(void **state)
{
    (void)state;
    fr_event_format f;
    assert_int_equal(fr_event_format_parse("protobuf", &f), 0);
    assert_int_equal(f, FR_FORMAT_PROTOBUF);
    assert_int_equal(fr_event_format_parse("json", &f), 0);
    assert_int_equal(f, FR_FORMAT_JSON);
    assert_int_equal(fr_event_format_parse("avro", &f), -1);
    assert_string_equal(fr_event_format_name(FR_FORMAT_PROTOBUF), "protobuf");

    fr_config c;
    char err[256];
    fr_config_defaults(&c);
    assert_int_equal(c.topic_format[0], FR_FORMAT_JSON);
    assert_int_equal(c.load_schema_id, -1);
    assert_int_equal(fr_config_load_string(&c,
                                           "{\"kafka\":{\"topics\":{\"impressions\":{\"name\":\"imp-pb\",\"format\":"
                                           "\"protobuf\"},\"clicks\":{\"format\":\"protobuf\"},\"conversions\":\"conv\"}}}",
                                           err, sizeof err),
                     0);
    assert_string_equal(c.topic[0], "imp-pb");
    assert_string_equal(c.topic[1], "clicks");
    assert_string_equal(c.topic[2], "conv");
    assert_int_equal(c.topic_format[0], FR_FORMAT_PROTOBUF);
    assert_int_equal(c.topic_format[1], FR_FORMAT_PROTOBUF);
    assert_int_equal(c.topic_format[2], FR_FORMAT_JSON);
    assert_int_equal(fr_config_topic_format(&c, "imp-pb"), FR_FORMAT_PROTOBUF);
    assert_int_equal(fr_config_topic_format(&c, "conv"), FR_FORMAT_JSON);
    assert_int_equal(fr_config_topic_format(&c, "elsewhere"), FR_FORMAT_JSON);

    static const struct {
        const char *json, *says;
    } bad[] = {
        {"{\"kafka\":{\"topics\":{\"clicks\":{\"format\":\"avro\"}}}}", "\"kafka.topics.clicks.format\" must be"},
        {"{\"kafka\":{\"topics\":{\"clicks\":{\"format\":1}}}}", "\"kafka.topics.clicks.format\" must be"},
        {"{\"kafka\":{\"topics\":{\"clicks\":{\"fromat\":\"json\"}}}}", "unknown key \"kafka.topics.clicks.fromat\""},
        {"{\"kafka\":{\"topics\":{\"clicks\":{\"name\":\"a b\"}}}}", "\"kafka.topics.clicks.name\""},
        {"{\"kafka\":{\"topics\":{\"clicks\":{\"name\":\"\"}}}}", "\"kafka.topics.clicks.name\" is empty"},
        {"{\"kafka\":{\"topics\":{\"impressions\":\"ev\",\"clicks\":{\"name\":\"ev\",\"format\":\"protobuf\"}}}}",
         "one topic has one format"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        fr_config_defaults(&c);
        err[0] = '\0';
        assert_int_equal(fr_config_load_string(&c, bad[i].json, err, sizeof err), -1);
        if (!strstr(err, bad[i].says))
            print_error("config %s: %s\n", bad[i].json, err);
        assert_non_null(strstr(err, bad[i].says));
    }
    /* a mixed topic in one format is fine */
    assert_int_equal(fr_config_load_string(&c,
                                           "{\"kafka\":{\"topics\":{\"impressions\":{\"name\":\"ev\",\"format\":"
                                           "\"protobuf\"},\"clicks\":{\"name\":\"ev\",\"format\":\"protobuf\"},"
                                           "\"conversions\":{\"name\":\"ev\",\"format\":\"protobuf\"}}}}",
                                           err, sizeof err),
                     0);
}

/* The pipeline decodes a source's messages in its format: the same events as JSON on one source and
 * as Protobuf on another give the same counters; a Protobuf message on a JSON source is malformed. */
static void test_pipeline_format_switch(void **state)
{
    (void)state;
    char dir[] = "/tmp/freshet-test-event-pb-XXXXXX";
    assert_non_null(mkdtemp(dir));
    fr_config c;
    fr_config_defaults(&c);
    snprintf(c.checkpoint_dir, sizeof c.checkpoint_dir, "%s", dir);
    c.redis_host[0] = '\0';
    c.checkpoint_every_seconds = 0;
    c.checkpoint_every_samples = 0;
    char err[512];
    fr_pipeline *p = fr_pipeline_open(&c, err, sizeof err);
    assert_non_null(p);
    assert_int_equal(fr_pipeline_register_source(p, "kafka:pb:0", NULL), 0);
    assert_int_equal(fr_pipeline_set_source_format(p, "kafka:pb:0", FR_FORMAT_PROTOBUF), 0);
    assert_int_equal(fr_pipeline_set_source_format(p, "kafka:nobody:0", FR_FORMAT_PROTOBUF), -1);
    const char *events[] = {EXAMPLE_IMPRESSION, EXAMPLE_CLICK, EXAMPLE_CONVERSION};
    for (int i = 0; i < 3; i++) {
        size_t n;
        uint8_t *pb = to_pb(events[i], strlen(events[i]), 1, &n);
        assert_int_equal(fr_pipeline_message(p, "kafka:pb:0", i + 1, (const char *)pb, n, err, sizeof err), 0);
        /* on a JSON source the same bytes are malformed */
        assert_int_equal(fr_pipeline_message(p, "kafka:json:0", i + 1, (const char *)pb, n, err, sizeof err), 0);
        free(pb);
    }
    const fr_pipeline_counters *k = fr_pipeline_get_counters(p);
    assert_int_equal(k->consumed, 6);
    assert_int_equal(k->rejected[FR_REJECT_MALFORMED_JSON], 3);
    uint64_t rejected = 0;
    for (int r = 0; r < FR_REJECT_NREASONS; r++)
        rejected += k->rejected[r];
    assert_int_equal(rejected, 3);
    fr_pipeline_close(p);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_bad_json_cases),
        cmocka_unit_test(test_same_messages),
        cmocka_unit_test(test_bad_protobuf),
        cmocka_unit_test(test_framings),
        cmocka_unit_test(test_oversized),
        cmocka_unit_test(test_many_features),
        cmocka_unit_test(test_translation_refusals),
        cmocka_unit_test(test_formats_and_config),
        cmocka_unit_test(test_pipeline_format_switch),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
