/* fr_kafka: Kafka I/O through librdkafka. The consumer feeds a fr_pipeline; the loader writes a
 * JSON Lines file into the topics (key = impression id, partitioned like Java clients do).
 *
 * Offsets: the pipeline's checkpoint is the source of truth. On assignment every partition is
 * started at the offset stored in the checkpoint (or the beginning); Kafka's committed offsets
 * are written after each checkpoint for monitoring only. */
#ifndef FR_KAFKA_H
#define FR_KAFKA_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "fr_config.h"
#include "fr_http.h"
#include "fr_pipeline.h"

typedef struct {
    double exit_when_idle_seconds;  /* > 0: stop once this daemon owns every partition of its topics
                                     * and all were at their end this long (backfill, tests, demo) */
    const sigset_t *stop_signals;   /* blocked signals that ask for a clean stop (checked, not handled) */
    FILE *status_out;               /* status lines; NULL = none */
    fr_http *metrics;               /* gets a fresh /metrics page every second; NULL = none */
} fr_kafka_run_opts;

/* Consumes until a stop signal or idleness; checkpoints before returning 0. Returns -1 with a
 * message on a fatal error (a failed checkpoint, a broker configuration error). */
int fr_kafka_run(fr_pipeline *p, const fr_config *c, const fr_kafka_run_opts *o, char *err, size_t errlen);

typedef struct {
    uint64_t lines;
    uint64_t produced;        /* acknowledged by the broker */
    uint64_t failed;          /* delivery failed */
    uint64_t unparsable;      /* lines without a readable type/id: sent to the impressions topic unkeyed */
    uint64_t unconvertible;   /* lines for a Protobuf topic that Protobuf cannot express: not sent */
} fr_kafka_load_stats;

/* Produces every line of in, in its topic's format (c->topic_format: a Protobuf topic gets the
 * line's fr_event_pb_from_json, Confluent-framed when c->load_schema_id >= 0), stamped with its
 * event's ts when c->load_event_time. Returns 0 when all were acknowledged. */
int fr_kafka_load(const fr_config *c, FILE *in, fr_kafka_load_stats *st, char *err, size_t errlen);

#endif
