/* fr_event_pb: the event contract as Protobuf (proto/freshet_event.proto, docs/protobuf-events.md),
 * bare or in the Confluent wire framing, decoded into the same fr_event as JSON with the same
 * reasons; and the event formats a topic can carry.
 *
 * The decoder's only allocations are protobuf-c's, served from a stack arena for messages of
 * ordinary size; nothing outlives the call. The encoder (for `freshet load` and the tests) returns
 * a malloc'd buffer the caller frees. */
#ifndef FR_EVENT_PB_H
#define FR_EVENT_PB_H

#include <stddef.h>
#include <stdint.h>

#include "fr_event.h"

typedef enum { FR_FORMAT_JSON = 0, FR_FORMAT_PROTOBUF = 1, FR_NFORMATS } fr_event_format;

/* "json", "protobuf" */
const char *fr_event_format_name(fr_event_format f);
/* 0 and *out for a format's name, -1 for any other text. */
int fr_event_format_parse(const char *name, fr_event_format *out);

/* One Protobuf message: a freshet.v1.Event, bare, or framed as Confluent's serializers write it
 * (byte 0, the schema id as 4 bytes big-endian, the message-index array, which must name the
 * file's first message: a single 0 byte, or count 1 and index 0). Malformed input (truncated, a
 * wrong wire type, invalid UTF-8, a feature named twice or not at all, bad framing) is
 * FR_REJECT_MALFORMED_JSON, the reason of input that does not parse in its format; every other
 * rule and reason is fr_event_decode's. *schema_id (may be NULL): the framing's schema id, -1 for
 * a bare message or a rejection before it was read. */
fr_reject_reason fr_event_decode_pb(const fr_schema *s, const char *buf, size_t len, fr_event *ev, int64_t *schema_id,
                                    char *err, size_t errlen);
/* fr_event_decode or fr_event_decode_pb. */
fr_reject_reason fr_event_decode_as(const fr_schema *s, fr_event_format f, const char *buf, size_t len, fr_event *ev,
                                    char *err, size_t errlen);

/* The Protobuf message of one JSON event, framed for Confluent when schema_id >= 0 (0..2^31-1;
 * message index [0] as a single 0 byte). The translation is literal, not the decoder's: values
 * keep their JSON kind (integer, real, string, array of strings, null = no value) and no field is
 * checked against a configuration, so a bad value stays bad for the decoder to reject. What
 * Protobuf cannot express is refused: malformed JSON, a type that is not one of the three names,
 * a required key of another JSON kind than the .proto's, a feature value that is an object, a
 * boolean or an array holding a non-string. Returns 0 with *out (malloc'd, caller frees) and
 * *outlen, or -1 with the reason in err. */
int fr_event_pb_from_json(const char *json, size_t len, int64_t schema_id, uint8_t **out, size_t *outlen, char *err,
                          size_t errlen);

#endif
