/* fr_backfill: `freshet replay --kafka --from T1 [--to T2]`, a backfill from Kafka's retention. It
 * plans, per partition of the configured topics, the offsets whose messages were written in
 * [T1, T2) by Kafka's message timestamp, then reads exactly those through a static assignment
 * (rd_kafka_assign: the consumer group is never joined and no offset is committed, so a running
 * daemon of the same group is not disturbed) into a fr_pipeline.
 *
 * The range of a partition is contiguous in offsets: from the first offset whose timestamp is
 * >= T1 to the first whose timestamp is >= T2 (rd_kafka_offsets_for_times), or to the high
 * watermark when the backfill was planned when no --to is given or no message is at or after T2
 * yet: a backfill ends, it never follows live traffic. Every message inside the range is read,
 * whatever its own timestamp, so consecutive backfills [T1, T2) and [T2, T3) read each message of
 * a partition exactly once even when producers' clocks disagree. Kafka's timestamp (CreateTime:
 * the producer's clock, or LogAppendTime: the broker's) only selects the messages; the join works
 * in each event's own "ts".
 *
 * Exactly once across runs: partitions are sources "kafka:TOPIC:PARTITION" of the pipeline, as for
 * the daemon, and each resumes at max(start of its range, the state's next offset). A backfill
 * stopped half-way resumes where its checkpoint is; the same backfill run again after it finished
 * reads nothing; a range the state has already read past is skipped, never trained twice.
 * Partitions whose range holds no message move their offset to the range's end, so `freshet run`
 * on the same state continues every partition where the backfill stopped. */
#ifndef FR_BACKFILL_H
#define FR_BACKFILL_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "fr_config.h"
#include "fr_pipeline.h"

/* A time of --from / --to: integer milliseconds since 1970 (0: everything Kafka retains), or a UTC
 * date or date-time as the configuration writes instants ("2025-12-01", "2025-12-01T06:00:00Z";
 * fr_config_parse_instant), also with milliseconds ("2025-12-01T06:00:00.250Z", RFC 3339). 0, or
 * -1 with a message naming flag and saying what to write instead (a time without a zone, an offset,
 * more than 3 digits of fractions, a count of seconds). */
int fr_backfill_parse_time(const char *flag, const char *text, int64_t *ms, char *err, size_t errlen);

/* What Kafka says of one partition when the backfill is planned. */
typedef struct {
    int64_t low, high;      /* log start offset and high watermark */
    int64_t at_from, at_to; /* first offset whose timestamp is >= from / to; -1: none (yet) */
} fr_backfill_marks;

typedef enum {
    FR_BACKFILL_READ,    /* reads [start, end) */
    FR_BACKFILL_RESUME,  /* the state stopped inside the range: reads [its offset, end) */
    FR_BACKFILL_EMPTY,   /* no message of the partition is in the range */
    FR_BACKFILL_DONE,    /* the state has read up to the range's end or past it: nothing to read */
    FR_BACKFILL_NKINDS
} fr_backfill_kind;

/* The offsets to read, [*start, *end), of a partition with marks m (has_to: --to was given) for a
 * state whose next offset for it is stored (-1: none). Pure: the whole offset rule is here. */
fr_backfill_kind fr_backfill_range(const fr_backfill_marks *m, int has_to, int64_t stored, int64_t *start,
                                   int64_t *end);
const char *fr_backfill_kind_name(fr_backfill_kind k);

typedef struct {
    char topic[FR_NAME_MAX];
    int32_t partition;
    fr_backfill_marks marks;
} fr_backfill_partition;

typedef struct {
    int64_t from_ms, to_ms; /* to_ms < 0: no --to */
    int n;
    fr_backfill_partition *part; /* every partition of the configured topics; fr_backfill_plan_free */
} fr_backfill_plan;

/* Asks the brokers of c for the partitions of c's topics and their marks for [from_ms, to_ms)
 * (to_ms < 0: up to the high watermarks). -1 with a message when a topic does not exist, the
 * brokers do not answer, from_ms >= to_ms, or there are more than FR_MAX_SOURCES partitions. */
int fr_backfill_plan_make(const fr_config *c, int64_t from_ms, int64_t to_ms, fr_backfill_plan *plan, char *err,
                          size_t errlen);
void fr_backfill_plan_free(fr_backfill_plan *plan);

typedef struct {
    const sigset_t *stop_signals; /* blocked signals that ask for a clean stop (checked, not handled) */
    FILE *log;                    /* the plan per partition, status lines; NULL = quiet */
} fr_backfill_opts;

typedef struct {
    int partitions[FR_BACKFILL_NKINDS]; /* by kind, when the run started */
    uint64_t to_read;                   /* offsets in the ranges left to read then (compaction may leave fewer) */
    uint64_t read;                      /* messages handed to the pipeline */
} fr_backfill_stats;

/* fr_backfill_run's outcomes besides 0 (every range read; the pipeline's sources idle, its
 * watermark moved) and -1 (a fatal pipeline error: stop, do not checkpoint). After these two the
 * work is whole up to a message boundary: checkpoint it. */
enum { FR_BACKFILL_STOPPED = 1, /* a stop signal */
       FR_BACKFILL_UNREADABLE = 2 /* a partition cannot be read (its offsets deleted since the plan...): err */ };

/* Reads plan's ranges into p (registering every partition as a source, so the watermark waits
 * for all of them) without checkpointing at the end: the caller drains and checkpoints. */
int fr_backfill_run(fr_pipeline *p, const fr_config *c, const fr_backfill_plan *plan, const fr_backfill_opts *o,
                    fr_backfill_stats *st, char *err, size_t errlen);

#endif
