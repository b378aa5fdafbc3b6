/* fr_pipeline: one learner's whole path, independent of where events come from.
 *
 * decode -> join -> learn (progressive validation first) -> checkpoint -> publish.
 * Both `freshet replay FILE` and the Kafka daemon feed it messages tagged with a source name
 * (a partition, or the replay file) and the offset after the message. The pipeline owns the
 * model, the join, the checkpoint store and the publisher.
 *
 * Exactly-once: a checkpoint captures, between two messages, everything that depends on the
 * input so far: model rows and dense state, join state, samples waiting for their mini-batch,
 * metrics, counters, per-source watermarks and the next offset of every source. A restart
 * loads it and the caller resumes every source at its stored offset, so a crash repeats
 * exactly the input after the checkpoint and the result is bit-identical to an unbroken run.
 *
 * Watermark: each source's is the largest event time it delivered; the global one is the
 * minimum over sources that are not idle (a source holds the watermark back from the moment
 * it is registered until it delivers or reports idle), minus the allowed lateness. Which
 * events may move a source's time is fr_evtime's call (c->evtime): an event too far ahead of its
 * source is held until the source's later events confirm it (then joined) or contradict it
 * (then rejected as ts_in_future, like a decoder rejection: counted, logged, dead-lettered).
 *
 * Ownership: fr_pipeline_open allocates; fr_pipeline_close frees (it does not checkpoint: call
 * fr_pipeline_checkpoint first to keep the work). Not thread-safe. */
#ifndef FR_PIPELINE_H
#define FR_PIPELINE_H

#include <stdint.h>
#include <stdio.h>

#include "fr_config.h"
#include "fr_event.h"
#include "fr_event_pb.h"
#include "fr_join.h"
#include "fr_metrics.h"

enum { FR_SOURCE_NAME_MAX = 160, FR_MAX_SOURCES = 256, FR_SOURCE_IDENTITY_MAX = 64 };

typedef struct {
    uint64_t consumed;                        /* messages handed to the pipeline */
    uint64_t rejected[FR_REJECT_NREASONS];    /* by reason; consumed = accepted + rejected + held */
    uint64_t samples_trained;
    uint64_t samples_buffered;                /* emitted, waiting for a full mini-batch */
} fr_pipeline_counters;

typedef struct fr_pipeline fr_pipeline;

/* The pipeline's own checkpoint records (daemon/fr_parts.c; docs/checkpoint-format.md), pure
 * functions over bytes (tests/fuzz calls them directly). Stored bytes are untrusted: every decoder
 * checks bounds and values.
 * fr_stored_source: one entry of the blob "sources" (a source's name and the largest event time it
 * delivered, INT64_MIN: none). check_source: 0, or -1 with the reason in why (a name empty or not
 * terminated, an event time outside [0, FR_TS_MAX]). check_sample: 0 when s is a sample the joiner
 * can emit into a batch (kind, scenario in [0, n_scenarios), labels, weights, priors, flags,
 * numerics, multi_len), else -1 with the reason.
 * sources_encode: the blob for n entries in ascending name order (its size; written only when cap
 * is enough, NULL, 0 sizes it); sources_decode: the entries (at most FR_MAX_SOURCES) or -1 with the
 * reason. batch_decode: the samples of a blob "batch" into out (fewer than cap, each accepted by
 * check_sample) or -1 with the reason. */
typedef struct {
    char name[FR_SOURCE_NAME_MAX];
    int64_t max_ts;
} fr_stored_source;
int fr_pipeline_check_source(const fr_stored_source *s, char *why, size_t whylen);
int fr_pipeline_check_sample(const fr_sample *s, int n_scenarios, char *why, size_t whylen);
size_t fr_pipeline_sources_encode(const fr_stored_source *s, size_t n, void *buf, size_t cap);
long fr_pipeline_sources_decode(const void *buf, size_t len, fr_stored_source out[FR_MAX_SOURCES], char *why,
                                size_t whylen);
int fr_pipeline_batch_decode(const void *buf, size_t len, fr_sample *out, int cap, int n_scenarios, char *why,
                             size_t whylen);

/* Opens the checkpoint in c->checkpoint_dir and restores from it when present; connects the
 * publisher when c->redis_host is set (publish failures are reported, not fatal). */
fr_pipeline *fr_pipeline_open(const fr_config *c, char *err, size_t errlen);
void fr_pipeline_close(fr_pipeline *p);

/* Declares a source; returns its stored next offset in *next_offset (-1 when unknown). */
int fr_pipeline_register_source(fr_pipeline *p, const char *name, int64_t *next_offset);
/* The stored next offset of a source, without declaring it (-1 when unknown). */
int64_t fr_pipeline_source_offset(const fr_pipeline *p, const char *name);
/* What identifies a source's content beyond its name (a replay file's: fr_fileid.h): opaque bytes,
 * at most FR_SOURCE_IDENTITY_MAX, stored with its offset in every checkpoint (blob "identity:" +
 * name) and restored with it. set copies them: 0, or -1 for an undeclared source or too many bytes.
 * get: the restored or last set length (copying at most cap bytes), -1 when there is none; a stored
 * blob longer than the maximum reads as FR_SOURCE_IDENTITY_MAX + 1 bytes, which no decoder takes. */
int fr_pipeline_set_source_identity(fr_pipeline *p, const char *name, const void *bytes, size_t len);
long fr_pipeline_source_identity(const fr_pipeline *p, const char *name, void *buf, size_t cap);
/* How a declared source's messages are encoded (default JSON): 0, or -1 for an undeclared source. */
int fr_pipeline_set_source_format(fr_pipeline *p, const char *name, fr_event_format format);
/* Moves a declared source's next offset forward (never back) without a message: a Kafka backfill's
 * partition whose range ends in offsets that hold none. 0, or -1 for an undeclared source. */
int fr_pipeline_source_advance(fr_pipeline *p, const char *name, int64_t next_offset);
/* A Kafka partition: the source holds back only join group partition mod join.partitions (the
 * others are none of its business). Unbound sources (a replay file) hold every group: their events
 * are split by id. 0, or -1 for an undeclared source. */
int fr_pipeline_bind_source(fr_pipeline *p, const char *name, int32_t partition);
/* Idle sources (at the end of their data) do not hold the watermark back. */
void fr_pipeline_source_idle(fr_pipeline *p, const char *name, int idle);
/* One message; next_offset is where the source resumes after it. Returns -1 only on a fatal
 * error (a failed checkpoint): the caller must stop consuming. */
int fr_pipeline_message(fr_pipeline *p, const char *source, int64_t next_offset, const char *buf, size_t len,
                        char *err, size_t errlen);
/* Called for every rejected message, after it is counted: where the Kafka loop copies it to the
 * dead-letter topic. reason is fr_event_reject_name's; detail the decoder's message. */
typedef void (*fr_pipeline_reject_fn)(const char *source, int64_t offset, const char *buf, size_t len,
                                      const char *reason, const char *detail, void *ctx);
void fr_pipeline_set_reject_hook(fr_pipeline *p, fr_pipeline_reject_fn fn, void *ctx);
/* replay --samples-out: every sample trained or scored from now on is appended to o (borrowed: it
 * must outlive p, or be detached with NULL), with the score the progressive metrics used. Samples of
 * a mini-batch restored from the checkpoint carry key 0. 0, or -1 when out of memory. */
struct fr_sampleout;
int fr_pipeline_set_samples_out(fr_pipeline *p, struct fr_sampleout *o);
/* Re-evaluates the watermark (after idleness changes). -1 when the join could not read a spilled
 * entry back: the pipeline then refuses every further message and checkpoint (stop consuming). */
int fr_pipeline_tick(fr_pipeline *p);
/* End of input (freshet replay --drain): the input holds every label it will ever have, so every
 * window closes now. The join fires every timer (all CTR, CVR and CTCVR labels become final and
 * are scored; the guard sees those samples as any others), and the last partial mini-batch
 * trains. The join's watermark ends past the last window: events older than it are late in a
 * later run on this state. 0, or -1 with the reason in err (the join could not read a spilled
 * entry back). */
int fr_pipeline_drain(fr_pipeline *p, char *err, size_t errlen);
/* Checkpoints when c->checkpoint_every_samples or _seconds is due; publishes after it. */
int fr_pipeline_maybe_checkpoint(fr_pipeline *p, char *err, size_t errlen);
/* Checkpoints now (and publishes when configured). */
int fr_pipeline_checkpoint(fr_pipeline *p, char *err, size_t errlen);

const fr_pipeline_counters *fr_pipeline_get_counters(const fr_pipeline *p);
/* The "counters" blob of a checkpoint: encode gives its size (written only when cap is enough);
 * decode: 0, -1 when it is not a counters record, -2 when its counts are impossible (a reason 0
 * count, more rejected than consumed). A record of fewer reasons (an older build's) reads with the
 * new ones at 0. */
size_t fr_pipeline_counters_encode(const fr_pipeline_counters *c, void *buf, size_t cap);
int fr_pipeline_counters_decode(const void *buf, size_t len, fr_pipeline_counters *out);
/* Messages held now because they are far ahead of their source's time (fr_evtime.h), and
 * messages held and later released, over the life of the checkpoint. */
uint64_t fr_pipeline_held(const fr_pipeline *p);
uint64_t fr_pipeline_released(const fr_pipeline *p);
/* The same totals from a checkpoint's "evtime" blob (for `freshet inspect`); -1 when malformed. */
int fr_pipeline_evtime_totals(const void *blob, size_t len, uint64_t *held, uint64_t *released);
const fr_join_counters *fr_pipeline_join_counters(const fr_pipeline *p);
int64_t fr_pipeline_watermark(const fr_pipeline *p);
/* Progressive metric of a task for a scenario, or over all scenarios with scenario = -1. */
const fr_metric *fr_pipeline_metric(const fr_pipeline *p, fr_task task, int scenario);
/* Total events still held by the join. */
uint64_t fr_pipeline_pending(const fr_pipeline *p);
const fr_model *fr_pipeline_model(const fr_pipeline *p);
const fr_config *fr_pipeline_config(const fr_pipeline *p);
/* The label-collapse guard's state (paused or not, why, what it dropped). */
const fr_guard *fr_pipeline_guard(const fr_pipeline *p);
/* Checkpoints of this process that did not publish because the guard was paused. */
uint64_t fr_pipeline_publishes_withheld(const fr_pipeline *p);
/* After the last checkpoint of a run: waits up to timeout_seconds until the publisher has pushed
 * everything handed to it. 0 when it did (or publishing is off, or there was nothing new);
 * FR_PIPELINE_PUBLISH_HELD when an operator's rollback holds the prefix; -1 when a push failed
 * (Redis unreachable, another daemon's lease, ...). msg says what happened (empty on 0). A run
 * that was asked to publish reports anything but 0 and exits non-zero. */
enum { FR_PIPELINE_PUBLISH_HELD = 1 };
int fr_pipeline_finish_publishing(fr_pipeline *p, double timeout_seconds, char *msg, size_t msglen);
/* Join entries whose features are in memory (the rest is spilled; join.max_cached_entries). */
size_t fr_pipeline_join_cached(const fr_pipeline *p);
/* Live join entries over all groups; priors the learner keeps; samples emitted by a group and
 * waiting in the merge for the other groups' watermarks. */
size_t fr_pipeline_join_entries(const fr_pipeline *p);
size_t fr_pipeline_priors(const fr_pipeline *p);
size_t fr_pipeline_merge_buffered(const fr_pipeline *p);

/* One status line: events/s and samples/s since the previous call, watermark, AUC per task. */
void fr_pipeline_status_line(fr_pipeline *p, FILE *out, const char *extra);
/* The accounting and the progressive metrics per task and scenario, human-readable. */
void fr_pipeline_report(const fr_pipeline *p, FILE *out);
/* Embedding rows held, bytes per row against the raw payload, admission filter bytes, and the
 * keys admitted, refused and evicted by this process. Separate from fr_pipeline_report because
 * it is not a function of the input alone (memory keeps the high-water mark of a run; counters
 * restart with the process): the daemon prints it on stderr. */
void fr_pipeline_row_report(const fr_pipeline *p, FILE *out);

/* Every counter and gauge an operator graphs, in the Prometheus text format (names freshet_*,
 * documented in conf/README.md, "Metrics"): what /metrics serves. Reads only; call it on the
 * pipeline's thread. */
void fr_pipeline_write_metrics(const fr_pipeline *p, FILE *out);

#endif
