/* fr_evtime: which events may move one partition's event time (EVENTS.md, "Bad input").
 *
 * The watermark is built from each partition's largest accepted event time, so a single event
 * with a wrong ts (a clock bug, a year-2100 typo) accepted as is would flush every pending
 * impression and make every later event late, for good: the watermark is checkpointed. This
 * module decides, per partition and from that partition's message order alone, which events
 * count. The rule (conf/README.md, "Event time"):
 *
 *  - ts < min_ts: rejected at once (FR_EVTIME_TOO_OLD).
 *  - ts <= hi + bound, hi being the largest ts accepted so far: accepted. bound is max_ahead, or
 *    FR_EVTIME_PACE_FACTOR times the partition's pace when that is larger: the upper quartile of
 *    how far each of its last FR_EVTIME_STEPS accepted events moved hi (0 when one did not). A
 *    dense partition is held to max_ahead; one whose events come hours apart (conversions of a
 *    small advertiser, bursts, a night) is judged by its own spacing.
 *  - further ahead, or any event before the partition has a time: held in a quarantine. Every
 *    later event of the partition votes on each held one: at or after (its ts - bound) supports
 *    it, earlier opposes it. A held event is released (accepted, in arrival order) once `need`
 *    events support it, need = min(confirm, max(1, events accepted so far)): a partition that
 *    stopped for days and resumed, or a replay of the next day, has moved on, and only its first
 *    `confirm` events wait. It is rejected (FR_EVTIME_FUTURE) once `reject` events oppose it:
 *    the partition kept delivering events at its old time. It is also released as soon as the
 *    partition's time has caught up with it (ts <= hi + bound).
 *  So one wild event, or a handful (fewer than `confirm`, agreeing or not), never moves the
 *  partition's time once it has `confirm` accepted events; a wild first event never does
 *  either (the next event opposes it), and in a partition's first events the evidence a jump
 *  needs grows with the events seen. Each held event is decided within need + reject - 1 later
 *  events, so at most confirm + reject - 1 messages are held per partition.
 *
 * The state (hi, the pace, the held messages with their bytes and votes) is a function of the
 * partition's input alone and goes into the checkpoint (fr_evtime_export / fr_evtime_import): a
 * restart neither skips nor repeats a held message, and replays decide the same way every time.
 * Ownership: fr_evtime_create allocates, fr_evtime_free releases (with every held message).
 * Not thread-safe. */
#ifndef FR_EVTIME_H
#define FR_EVTIME_H

#include <stddef.h>
#include <stdint.h>

enum { FR_EVTIME_STEPS = 15, FR_EVTIME_PACE_FACTOR = 16, FR_EVTIME_MAX_VOTES = 1024 };

typedef struct {
    int64_t max_ahead_ms;  /* the bound of a dense partition; 0 = off (every event at or after min_ts counts) */
    int64_t min_ts_ms;     /* earlier events are rejected as too old */
    uint32_t confirm;      /* supporting later events that release a held event, 1..FR_EVTIME_MAX_VOTES */
    uint32_t reject;       /* opposing later events that reject it, 1..FR_EVTIME_MAX_VOTES */
} fr_evtime_config;

/* max_ahead 15 min, min_ts 2000-01-01T00:00:00Z, confirm 16, reject 16. */
void fr_evtime_config_defaults(fr_evtime_config *c);

typedef enum {
    FR_EVTIME_ACCEPT = 0, /* counts now: feed it to the join */
    FR_EVTIME_HOLD,       /* held: decided by later events of the partition */
    FR_EVTIME_FUTURE,     /* too far ahead of the partition's time (reason ts_in_future) */
    FR_EVTIME_TOO_OLD     /* before min_ts (reason ts_too_old) */
} fr_evtime_verdict;

/* A held message the last fr_evtime_offer decided (ACCEPT: released; FUTURE: rejected). */
typedef struct {
    fr_evtime_verdict verdict;
    int64_t offset;        /* as given to fr_evtime_offer */
    int64_t ts;
    uint32_t support, oppose;
    int64_t partition_ts;  /* hi when it was decided, for the rejection message */
    const char *bytes;     /* the message, as given; valid until the next offer or free */
    size_t len;
} fr_evtime_msg;

typedef struct fr_evtime fr_evtime;

fr_evtime *fr_evtime_create(void);
void fr_evtime_free(fr_evtime *e);

/* One decoded message of the partition: its ts, where it came from and its bytes (copied when
 * held). Sets *verdict for this message and decides the held ones this arrival settles: read
 * them with fr_evtime_decided and handle them BEFORE this message (they arrived earlier).
 * Returns 0, or -1 when out of memory (nothing changed). */
int fr_evtime_offer(fr_evtime *e, const fr_evtime_config *c, int64_t ts, int64_t offset, const char *buf, size_t len,
                    fr_evtime_verdict *verdict);
/* The held messages the last offer decided, in arrival order; *out valid until the next offer. */
size_t fr_evtime_decided(const fr_evtime *e, const fr_evtime_msg **out);

/* The largest accepted ts (INT64_MIN: none yet), the current bound, messages held now, and
 * messages held and later released since the state began. */
int64_t fr_evtime_time(const fr_evtime *e);
int64_t fr_evtime_bound(const fr_evtime *e, const fr_evtime_config *c);
size_t fr_evtime_held(const fr_evtime *e);
uint64_t fr_evtime_released(const fr_evtime *e);

/* A state restored from a checkpoint written before this module: the partition's time only. */
void fr_evtime_set_time(fr_evtime *e, int64_t hi);

/* Persistence: a private, versioned format. Export writes only when cap is large enough and
 * returns the size needed either way. Import replaces e's state; -1 (e unchanged) when the blob
 * is malformed, from an unknown version, or out of bounds. */
size_t fr_evtime_export(const fr_evtime *e, void *buf, size_t cap);
int fr_evtime_import(fr_evtime *e, const void *buf, size_t len);

/* Several partitions' states in one blob (the checkpoint's "evtime"), each under its name.
 * Export writes them sorted by name, so the blob does not depend on the order partitions were
 * met; it returns malloc'ed bytes (caller frees) or NULL when out of memory. Walk calls fn for
 * each (name NUL-terminated, at most 255 bytes) and returns NULL, or why the blob is bad (the
 * name it failed at, or "", is in name, of name_cap bytes); fn's -1 stops it as "corrupt". */
typedef struct {
    const char *name;
    const fr_evtime *state;
} fr_evtime_named;
typedef int (*fr_evtime_part_fn)(const char *name, const void *state, size_t len, void *ctx);
unsigned char *fr_evtime_export_all(const fr_evtime_named *parts, size_t n, size_t *len);
const char *fr_evtime_walk_all(const void *blob, size_t len, fr_evtime_part_fn fn, void *ctx, char *name,
                               size_t name_cap);

#endif
