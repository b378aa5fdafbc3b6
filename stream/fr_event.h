/* fr_event: decoding of the EVENTS.md contract (JSON, via jansson) into fixed-size events.
 *
 * The decoder never allocates on behalf of the caller: fr_event is a plain value. Every
 * rejection has a reason code, counted by the caller, and a human-readable message. */
#ifndef FR_EVENT_H
#define FR_EVENT_H

#include <stddef.h>
#include <stdint.h>

#include "fr_sample.h"
#include "fr_schema.h"

enum { FR_ID_MAX = 256 };

/* Largest accepted ts: 9999-12-31T23:59:59.999Z. Bounding it keeps ts + window arithmetic in the
 * joiner far from int64 overflow, and every ts below it is exact as a double. */
#define FR_TS_MAX INT64_C(253402300799999)

/* The value bytes hashed for a categorical field an impression does not carry (or carries as
 * null): fr_hash_value(field hash, FR_MISSING_VALUE, FR_MISSING_VALUE_LEN). 0xFF never occurs in
 * UTF-8, and the decoder only sees valid UTF-8 or decimal text, so no real value collides with
 * it. Part of the key format: a serving client must hash missing fields the same way. */
#define FR_MISSING_VALUE "\xff" "missing"
#define FR_MISSING_VALUE_LEN 8

typedef enum { FR_EV_IMPRESSION = 0, FR_EV_CLICK = 1, FR_EV_CONVERSION = 2, FR_EV_NTYPES } fr_event_type;

typedef enum {
    FR_REJECT_NONE = 0,
    FR_REJECT_OVERSIZED,         /* message over max_message_bytes */
    FR_REJECT_MALFORMED_JSON,    /* not JSON, not UTF-8, or trailing garbage */
    FR_REJECT_NOT_OBJECT,
    FR_REJECT_BAD_TYPE,          /* missing, not a string, or not impression/click/conversion */
    FR_REJECT_BAD_ID,            /* missing, not a string, empty, or over FR_ID_MAX bytes */
    FR_REJECT_BAD_TS,            /* missing, not an integer, negative */
    FR_REJECT_BAD_SCENARIO,      /* impression: missing or not a string */
    FR_REJECT_UNKNOWN_SCENARIO,  /* impression: not configured and new ones not allowed */
    FR_REJECT_BAD_SAMPLE_RATE,   /* not a number in (0, 1] */
    FR_REJECT_BAD_FEATURES,      /* impression: missing or not an object */
    FR_REJECT_BAD_FEATURE_VALUE, /* a configured field of the wrong JSON type */
    FR_REJECT_NON_FINITE,        /* a number that is not finite */
    FR_REJECT_BAD_VALUE,         /* conversion value not a number */
    /* Not from the decoder: the pipeline's event-time check (fr_evtime.h) */
    FR_REJECT_TS_IN_FUTURE,      /* too far ahead of its partition's event time, and the partition did not follow */
    FR_REJECT_TS_TOO_OLD,        /* before join.min_event_time */
    FR_REJECT_NREASONS
} fr_reject_reason;

typedef struct {
    fr_event_type type;
    char id[FR_ID_MAX + 1];      /* NUL-terminated */
    uint32_t id_len;
    int64_t ts;                  /* event time, ms since the epoch */
    int32_t scenario;            /* impression only */
    float sample_rate;           /* impression only, default 1 */
    double value;                /* conversion only, default 0 */
    fr_features features;        /* impression only; cat[0] is the scenario */
} fr_event;

/* Decodes one message. Returns FR_REJECT_NONE and fills ev, or a reason with a message in err.
 * ev is cleared first (padding included), so equal events are equal bytes. The rules where
 * EVENTS.md is silent (numbers as categories, missing values, null, integral reals as ts) are
 * listed in conf/README.md; they are part of the key format. err may be NULL. */
fr_reject_reason fr_event_decode(const fr_schema *s, const char *buf, size_t len, fr_event *ev, char *err,
                                 size_t errlen);
/* Stable snake_case name of a reason, for counters and logs ("malformed_json"). */
const char *fr_event_reject_name(fr_reject_reason r);
const char *fr_event_type_name(fr_event_type t);

#endif
