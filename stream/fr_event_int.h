/* fr_event_int: the contract's checks, shared by the JSON decoder (fr_event.c) and the Protobuf one
 * (fr_event_pb.c), so that a value gets the same verdict, reason and message whatever format it
 * came in. Each decoder checks its own syntax and JSON types, then hands the values here.
 * Internal to stream/. */
#ifndef FR_EVENT_INT_H
#define FR_EVENT_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fr_event.h"

typedef struct {
    char *err;
    size_t errlen;
    fr_event *ev;
    bool have_type, have_id;
} fr_evctx;

/* Clears ev (padding included: the joiner stores events as bytes) and err, and refuses a message
 * over max_message_bytes before any parsing. */
fr_reject_reason fr_ev_begin(const fr_schema *c, fr_evctx *d, size_t len, fr_event *ev, char *err, size_t errlen);

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
/* Writes "<type> <id>: <message>" into d->err and returns r. */
fr_reject_reason fr_ev_reject(const fr_evctx *d, fr_reject_reason r, const char *fmt, ...);
/* Copies at most max bytes of untrusted text for a log line; control and non-ASCII bytes become
 * '?' so an event cannot forge log lines or break a terminal. */
void fr_ev_sanitize(char *dst, size_t cap, const char *s, size_t len, size_t max);

/* The type by name (JSON) or by index (Protobuf: an index already known to be < FR_EV_NTYPES). */
fr_reject_reason fr_ev_type_name(fr_evctx *d, const char *t, size_t len);
void fr_ev_set_type(fr_evctx *d, fr_event_type t);
/* id: non-empty, at most FR_ID_MAX bytes, no NUL. */
fr_reject_reason fr_ev_id(fr_evctx *d, const char *s, size_t n);
/* ts given as an integer: in 0..FR_TS_MAX. */
fr_reject_reason fr_ev_ts(fr_evctx *d, long long t);
/* Impression: the scenario by name (index, "other", or unknown_scenario). */
fr_reject_reason fr_ev_scenario(const fr_schema *c, fr_evctx *d, const char *name, size_t len);
/* Impression: a sample_rate that was given (finite, in (0, 1], not below FLT_MIN as a float). */
fr_reject_reason fr_ev_sample_rate(fr_evctx *d, double r);
/* Conversion: a value that was given (finite). */
fr_reject_reason fr_ev_value(fr_evctx *d, double v);

/* A configured field's value. absent: no value or null. text: a string. integer / real: a number
 * as the producer wrote it (JSON's integer / real; Protobuf's int_value / double_value). A value
 * of the wrong kind for the field: fr_ev_bad_feature, with desc saying what it was ("an array"). */
fr_reject_reason fr_ev_feature_absent(const fr_field *f, fr_evctx *d);
fr_reject_reason fr_ev_feature_text(const fr_field *f, fr_evctx *d, const char *s, size_t n);
fr_reject_reason fr_ev_feature_integer(const fr_field *f, fr_evctx *d, long long v);
fr_reject_reason fr_ev_feature_real(const fr_field *f, fr_evctx *d, double x);
fr_reject_reason fr_ev_bad_feature(const fr_field *f, fr_evctx *d, const char *desc);
/* A multi field's values: item k of n (every item is passed, even past max_len, so that whether
 * an event is accepted does not depend on max_len), then the count. */
void fr_ev_multi_item(const fr_field *f, fr_evctx *d, size_t k, const char *s, size_t n);
void fr_ev_multi_done(const fr_field *f, fr_evctx *d, size_t n);
fr_reject_reason fr_ev_bad_multi_item(const fr_field *f, fr_evctx *d, size_t k, const char *desc);

#endif
