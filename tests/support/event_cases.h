/* The event decoder's test cases, shared by the JSON tests (test_event.c) and the Protobuf ones
 * (test_event_pb.c): the EVENTS.md examples and every bad input with the reason it must get. */
#ifndef FR_TEST_EVENT_CASES_H
#define FR_TEST_EVENT_CASES_H

#include <stddef.h>

#include "fr_event.h"

static const char EXAMPLE_IMPRESSION[] =
    "{\"type\":\"impression\",\"id\":\"i-8f3a\",\"ts\":1764300000123,\"scenario\":\"video\",\n"
    " \"sample_rate\":1.0,\n"
    " \"features\":{\"user_id\":\"u91\",\"user_age\":\"25-34\",\"device\":\"android\",\"ad_id\":\"a77\",\n"
    "             \"advertiser\":\"adv12\",\"category\":\"games\",\"hour\":13,\"price\":3.5,\n"
    "             \"recent_ads\":[\"a12\",\"a99\",\"a7\"]}}";
static const char EXAMPLE_CLICK[] = "{\"type\":\"click\",\"id\":\"i-8f3a\",\"ts\":1764300004211}";
static const char EXAMPLE_CONVERSION[] = "{\"type\":\"conversion\",\"id\":\"i-8f3a\",\"ts\":1764386000000,\"value\":12.5}";

/* An impression with the given features object text. */
#define IMP(features) "{\"type\":\"impression\",\"id\":\"i-1\",\"ts\":1,\"scenario\":\"video\",\"features\":" features "}"
#define IMP_TOP(extra) "{\"type\":\"impression\",\"id\":\"i-1\",\"ts\":1,\"features\":{}" extra "}"

#define RAW_NUL "{\"type\":\"click\",\"id\":\"a\0b\",\"ts\":1}"

typedef struct {
    const char *what;
    const char *json;
    size_t len; /* 0: strlen(json) */
    fr_reject_reason want;
} bad_case;

static const bad_case BAD[] = {
    /* malformed JSON */
    {"empty", "", 0, FR_REJECT_MALFORMED_JSON},
    {"whitespace only", "  \n ", 0, FR_REJECT_MALFORMED_JSON},
    {"truncated number", "{\"type\":\"click\",\"id\":\"i-1\",\"ts\":17", 0, FR_REJECT_MALFORMED_JSON},
    {"truncated string", "{\"type\":\"click\",\"id\":\"i-", 0, FR_REJECT_MALFORMED_JSON},
    {"truncated after brace", "{", 0, FR_REJECT_MALFORMED_JSON},
    {"trailing garbage", "{\"type\":\"click\",\"id\":\"a\",\"ts\":1} x", 0, FR_REJECT_MALFORMED_JSON},
    {"two objects", "{\"type\":\"click\",\"id\":\"a\",\"ts\":1}{}", 0, FR_REJECT_MALFORMED_JSON},
    {"trailing comma", "{\"type\":\"click\",\"id\":\"a\",\"ts\":1,}", 0, FR_REJECT_MALFORMED_JSON},
    {"single quotes", "{'type':'click','id':'a','ts':1}", 0, FR_REJECT_MALFORMED_JSON},
    {"unquoted key", "{type:\"click\",\"id\":\"a\",\"ts\":1}", 0, FR_REJECT_MALFORMED_JSON},
    {"NaN literal", "{\"type\":\"click\",\"id\":\"a\",\"ts\":NaN}", 0, FR_REJECT_MALFORMED_JSON},
    {"Infinity literal", IMP("{\"price\":Infinity}"), 0, FR_REJECT_MALFORMED_JSON},
    {"real overflow", IMP("{\"price\":1e400}"), 0, FR_REJECT_MALFORMED_JSON},
    {"integer overflow", "{\"type\":\"click\",\"id\":\"a\",\"ts\":99999999999999999999}", 0, FR_REJECT_MALFORMED_JSON},
    {"duplicate key", "{\"type\":\"click\",\"id\":\"a\",\"id\":\"b\",\"ts\":1}", 0, FR_REJECT_MALFORMED_JSON},
    {"duplicate feature key", IMP("{\"device\":\"a\",\"device\":\"b\"}"), 0, FR_REJECT_MALFORMED_JSON},
    {"invalid UTF-8", "{\"type\":\"click\",\"id\":\"\xff\xfe\",\"ts\":1}", 0, FR_REJECT_MALFORMED_JSON},
    {"overlong UTF-8", "{\"type\":\"click\",\"id\":\"\xc0\xaf\",\"ts\":1}", 0, FR_REJECT_MALFORMED_JSON},
    {"lone surrogate escape", "{\"type\":\"click\",\"id\":\"\\ud800\",\"ts\":1}", 0, FR_REJECT_MALFORMED_JSON},
    {"raw NUL byte", RAW_NUL, sizeof RAW_NUL - 1, FR_REJECT_MALFORMED_JSON},
    {"raw control character", "{\"type\":\"click\",\"id\":\"a\nb\",\"ts\":1}", 0, FR_REJECT_MALFORMED_JSON},
    /* not an object */
    {"array", "[{\"type\":\"click\",\"id\":\"a\",\"ts\":1}]", 0, FR_REJECT_NOT_OBJECT},
    {"number", "13", 0, FR_REJECT_NOT_OBJECT},
    {"string", "\"click\"", 0, FR_REJECT_NOT_OBJECT},
    {"null", "null", 0, FR_REJECT_NOT_OBJECT},
    {"boolean", "true", 0, FR_REJECT_NOT_OBJECT},
    /* type */
    {"type missing", "{\"id\":\"a\",\"ts\":1}", 0, FR_REJECT_BAD_TYPE},
    {"type number", "{\"type\":1,\"id\":\"a\",\"ts\":1}", 0, FR_REJECT_BAD_TYPE},
    {"type null", "{\"type\":null,\"id\":\"a\",\"ts\":1}", 0, FR_REJECT_BAD_TYPE},
    {"type unknown", "{\"type\":\"view\",\"id\":\"a\",\"ts\":1}", 0, FR_REJECT_BAD_TYPE},
    {"type wrong case", "{\"type\":\"Click\",\"id\":\"a\",\"ts\":1}", 0, FR_REJECT_BAD_TYPE},
    {"type with NUL", "{\"type\":\"click\\u0000\",\"id\":\"a\",\"ts\":1}", 0, FR_REJECT_BAD_TYPE},
    /* id */
    {"id missing", "{\"type\":\"click\",\"ts\":1}", 0, FR_REJECT_BAD_ID},
    {"id number", "{\"type\":\"click\",\"id\":42,\"ts\":1}", 0, FR_REJECT_BAD_ID},
    {"id array", "{\"type\":\"click\",\"id\":[\"a\"],\"ts\":1}", 0, FR_REJECT_BAD_ID},
    {"id empty", "{\"type\":\"click\",\"id\":\"\",\"ts\":1}", 0, FR_REJECT_BAD_ID},
    {"id with NUL", "{\"type\":\"click\",\"id\":\"a\\u0000b\",\"ts\":1}", 0, FR_REJECT_BAD_ID},
    /* ts */
    {"ts missing", "{\"type\":\"click\",\"id\":\"a\"}", 0, FR_REJECT_BAD_TS},
    {"ts negative", "{\"type\":\"click\",\"id\":\"a\",\"ts\":-1}", 0, FR_REJECT_BAD_TS},
    {"ts real", "{\"type\":\"click\",\"id\":\"a\",\"ts\":1.5}", 0, FR_REJECT_BAD_TS},
    {"ts string", "{\"type\":\"click\",\"id\":\"a\",\"ts\":\"1764300000123\"}", 0, FR_REJECT_BAD_TS},
    {"ts boolean", "{\"type\":\"click\",\"id\":\"a\",\"ts\":true}", 0, FR_REJECT_BAD_TS},
    {"ts past year 9999", "{\"type\":\"click\",\"id\":\"a\",\"ts\":253402300800000}", 0, FR_REJECT_BAD_TS},
    {"ts negative real", "{\"type\":\"click\",\"id\":\"a\",\"ts\":-1.0}", 0, FR_REJECT_BAD_TS},
    /* scenario */
    {"scenario missing", "{\"type\":\"impression\",\"id\":\"a\",\"ts\":1,\"features\":{}}", 0, FR_REJECT_BAD_SCENARIO},
    {"scenario number", IMP_TOP(",\"scenario\":3"), 0, FR_REJECT_BAD_SCENARIO},
    {"scenario null", IMP_TOP(",\"scenario\":null"), 0, FR_REJECT_BAD_SCENARIO},
    {"scenario unknown", IMP_TOP(",\"scenario\":\"podcast\""), 0, FR_REJECT_UNKNOWN_SCENARIO},
    {"scenario wrong case", IMP_TOP(",\"scenario\":\"Video\""), 0, FR_REJECT_UNKNOWN_SCENARIO},
    {"scenario other not enabled", IMP_TOP(",\"scenario\":\"other\""), 0, FR_REJECT_UNKNOWN_SCENARIO},
    /* sample_rate */
    {"sample_rate 0", IMP_TOP(",\"scenario\":\"video\",\"sample_rate\":0"), 0, FR_REJECT_BAD_SAMPLE_RATE},
    {"sample_rate 1.5", IMP_TOP(",\"scenario\":\"video\",\"sample_rate\":1.5"), 0, FR_REJECT_BAD_SAMPLE_RATE},
    {"sample_rate negative", IMP_TOP(",\"scenario\":\"video\",\"sample_rate\":-0.5"), 0, FR_REJECT_BAD_SAMPLE_RATE},
    {"sample_rate string", IMP_TOP(",\"scenario\":\"video\",\"sample_rate\":\"0.5\""), 0, FR_REJECT_BAD_SAMPLE_RATE},
    {"sample_rate underflows float", IMP_TOP(",\"scenario\":\"video\",\"sample_rate\":1e-300"), 0,
     FR_REJECT_BAD_SAMPLE_RATE},
    /* features */
    {"features missing", "{\"type\":\"impression\",\"id\":\"a\",\"ts\":1,\"scenario\":\"video\"}", 0,
     FR_REJECT_BAD_FEATURES},
    {"features array", IMP("[]"), 0, FR_REJECT_BAD_FEATURES},
    {"features string", IMP("\"user_id=u1\""), 0, FR_REJECT_BAD_FEATURES},
    {"features null", IMP("null"), 0, FR_REJECT_BAD_FEATURES},
    {"categorical boolean", IMP("{\"user_id\":true}"), 0, FR_REJECT_BAD_FEATURE_VALUE},
    {"categorical object", IMP("{\"device\":{\"os\":\"android\"}}"), 0, FR_REJECT_BAD_FEATURE_VALUE},
    {"categorical array", IMP("{\"ad_id\":[\"a1\"]}"), 0, FR_REJECT_BAD_FEATURE_VALUE},
    {"numeric string", IMP("{\"price\":\"3.5\"}"), 0, FR_REJECT_BAD_FEATURE_VALUE},
    {"numeric array", IMP("{\"price\":[3.5]}"), 0, FR_REJECT_BAD_FEATURE_VALUE},
    {"numeric boolean", IMP("{\"price\":false}"), 0, FR_REJECT_BAD_FEATURE_VALUE},
    {"numeric outside log1p domain", IMP("{\"price\":-1}"), 0, FR_REJECT_BAD_FEATURE_VALUE},
    {"multi string", IMP("{\"recent_ads\":\"a12\"}"), 0, FR_REJECT_BAD_FEATURE_VALUE},
    {"multi object", IMP("{\"recent_ads\":{}}"), 0, FR_REJECT_BAD_FEATURE_VALUE},
    {"multi number element", IMP("{\"recent_ads\":[\"a1\",7]}"), 0, FR_REJECT_BAD_FEATURE_VALUE},
    {"multi null element past max_len", IMP("{\"recent_ads\":[\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\",null]}"),
     0, FR_REJECT_BAD_FEATURE_VALUE},
    {"multi nested array", IMP("{\"recent_ads\":[[\"a1\"]]}"), 0, FR_REJECT_BAD_FEATURE_VALUE},
    /* conversion value */
    {"conversion value string", "{\"type\":\"conversion\",\"id\":\"a\",\"ts\":1,\"value\":\"12.5\"}", 0,
     FR_REJECT_BAD_VALUE},
    {"conversion value object", "{\"type\":\"conversion\",\"id\":\"a\",\"ts\":1,\"value\":{}}", 0,
     FR_REJECT_BAD_VALUE},
};

#endif
