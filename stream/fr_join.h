/* fr_join: the event-time joiner. Impressions, clicks and conversions keyed by impression id
 * become labelled samples when their windows close under the watermark.
 *
 * Policy "wait" (fr_join_config zero value; the daemon defaults to esdfm): when the click window of an impression closes, emit a
 * FR_SAMPLE_CLICK_WINDOW sample (CTR label; if not clicked also CTCVR = 0); when the
 * attribution window of a clicked impression closes (click ts + attribution window), emit a
 * FR_SAMPLE_ATTRIBUTION sample (CVR and CTCVR labels). Weights are 1/sample_rate. The
 * delayed-feedback policies add copies of each click (fr_policy.h).
 *
 * A click or conversion that arrives before its impression is held until the latest moment an
 * impression it could match would still be accepted (its ts + click window); then it is dropped
 * as an orphan. Emission order is (deadline, id bytes), whatever the arrival order.
 *
 * Accounting: every accepted event is in exactly one bucket at any time:
 *   events[t] == joined[t] + pending[t] + sum over reasons of dropped[t][reason]
 * An event is "joined" when the sample that carries its final label is emitted: impressions and
 * clicks with the CLICK_WINDOW sample, conversions with the ATTRIBUTION / MATURED sample (an
 * earlier delayed-feedback copy may already use it; it stays pending until its label is final).
 *
 * State is an in-memory map; changes since the last fr_join_clear_dirty are exported to the
 * checkpoint (fr_join_foreach_dirty) and reloaded with fr_join_load_entry. The join never
 * reads the wall clock, so replaying a log reproduces it exactly.
 *
 * Bounded memory (optional, fr_join_set_store): the checkpoint stays the only writer of the
 * stored state. An entry equal to what the last checkpoint wrote may drop its features
 * from memory (fr_join_spill); a stub (id, flags, timestamps, timers) stays, so dedup,
 * timers and "is this id known" never ask the store. The rest is read back through the store
 * when the entry's timer fires or an event for its id arrives. Emission is the same byte for
 * byte with or without spilling.
 * Ownership: fr_join_create allocates; fr_join_free releases. Not thread-safe. */
#ifndef FR_JOIN_H
#define FR_JOIN_H

#include <stddef.h>
#include <stdint.h>

#include "fr_event.h"
#include "fr_policy.h"
#include "fr_sample.h"

/* Which samples the join emits and when is the policy's (fr_policy.h: its copies, whether the
 * attribution sample trains, the oracle's lookahead); docs/delayed-feedback.md explains them. Every
 * policy emits the CLICK_WINDOW (CTR) sample at imp.ts + click_window. */

/* Oracle lookahead: 1 with the ts of the impression's first conversion in the input (in arrival
 * order, as the join would dedup it), 0 when the input holds none. Must be a pure function of the
 * input (a replay pre-scans its file), so restarts reproduce it. */
typedef int (*fr_join_oracle_fn)(void *ctx, const char *id, size_t id_len, int64_t *conv_ts);

typedef struct {
    int64_t click_window_ms;          /* >= 0 */
    int64_t attribution_window_ms;    /* >= 0 */
    fr_policy_id policy;              /* 0 = wait */
    int64_t observation_window_ms;    /* w_o, in [0, attribution_window]: vanilla, esdfm, defuse, defer */
    int64_t real_negative_window_ms;  /* w_rn, in [w_o, attribution_window] (defer); 0 = attribution window */
    fr_join_oracle_fn oracle;         /* required by the oracle policy */
    void *oracle_ctx;
    int n_scenarios;                  /* > 0: a stored entry's scenario must be below it (0: not checked) */
} fr_join_config;

const char *fr_sample_kind_name(int kind);

typedef enum {
    FR_DROP_DUPLICATE = 0,        /* same type and id seen before */
    FR_DROP_LATE,                 /* its window had already closed under the watermark */
    FR_DROP_ORPHAN,               /* click/conversion whose impression never came before expiry */
    FR_DROP_OUTSIDE_WINDOW,       /* click after the click window / conversion after the attribution window */
    FR_DROP_NOT_CLICKED,          /* conversion on an impression without a counted click */
    FR_DROP_NREASONS
} fr_drop_reason;

typedef struct {
    uint64_t events[FR_EV_NTYPES];
    uint64_t joined[FR_EV_NTYPES];
    uint64_t pending[FR_EV_NTYPES];
    uint64_t dropped[FR_EV_NTYPES][FR_DROP_NREASONS];
    uint64_t emitted[FR_SAMPLE_NKINDS];
} fr_join_counters;

typedef struct fr_join fr_join;
/* Called for each emitted sample, in a deterministic order (deadline, then id). */
typedef void (*fr_join_emit_fn)(const fr_sample *s, void *ctx);

/* NULL when out of memory or when the config is invalid (negative window, unknown policy, windows
 * out of order, oracle policy without an oracle function). */
fr_join *fr_join_create(const fr_join_config *c);
void fr_join_free(fr_join *j);

/* Feeds one decoded event. Never emits at once (every sample is due at a timer), so the emission
 * order is (deadline, id, timer kind) whatever the arrival order.
 * Returns 0; -1 (nothing changed, nothing counted) when out of memory or when ev breaks the
 * decoder's contract (type, id_len). emit may be NULL; it must not call back into j. */
int fr_join_add(fr_join *j, const fr_event *ev, fr_join_emit_fn emit, void *ctx);
/* Moves the watermark forward (never back) and fires every timer with deadline < watermark.
 * The initial watermark is INT64_MIN. Returns 0; -1 only with a store, when a spilled entry
 * could not be read back (fr_join_error says why): the timers not yet fired stay armed and the
 * watermark stays where it was; the caller must stop consuming. Without a store it never fails.
 * Also -1 from fr_join_add when an event's spilled entry could not be read back. */
int fr_join_advance(fr_join *j, int64_t watermark, fr_join_emit_fn emit, void *ctx);
int64_t fr_join_watermark(const fr_join *j);
/* The latest deadline of an armed timer (a window still open); INT64_MIN when none is. Advancing
 * past it closes every window the join holds (freshet replay --drain). */
int64_t fr_join_last_deadline(const fr_join *j);
/* Where the sample in the emit callback comes from: its impression id (valid during the callback
 * only), its timer's deadline (= fr_sample.ts), the timer kind (order: the tie-break after
 * (deadline, id); 0..6) and final = 1 when it is the impression's last sample (the join forgets the
 * id after it). The join never reads anything back from its caller: what the learner keeps per
 * impression (its prior) it keeps itself, keyed by id, and drops at the final sample.
 * fr_join_emitting: the origin, only inside the emit callback (NULL elsewhere). */
typedef struct {
    const char *id;
    size_t id_len;
    int64_t deadline;
    int order;
    int final;
} fr_join_origin;
enum { FR_JOIN_ORDER_KINDS = 7 };
const fr_join_origin *fr_join_emitting(const fr_join *j);

const fr_join_counters *fr_join_get_counters(const fr_join *j);
const char *fr_join_drop_name(fr_drop_reason r);

/* Persistence. fn gets each entry changed since the last clear: bytes/len is its serialised
 * state, or len 0 when the entry was deleted. Counters and the watermark are exported by
 * fr_join_export_meta as one blob. Both formats are private to fr_join. */
typedef int (*fr_join_entry_fn)(const char *id, size_t id_len, const void *bytes, size_t len, void *ctx);
int fr_join_foreach_dirty(const fr_join *j, fr_join_entry_fn fn, void *ctx);
void fr_join_clear_dirty(fr_join *j);
/* Restore into a fresh join: load every stored entry and the meta (in either order), then
 * fr_join_check_pending. Loaded entries count as already checkpointed (not dirty); their timers
 * follow from their state and this join's windows. Both return 0, or -1 for a malformed or
 * unknown-version blob or an id already present. Stored bytes are untrusted: an entry is also
 * refused for a state no event sequence produces, a scenario outside [0, n_scenarios), a sample
 * rate outside [FLT_MIN, 1], a float that is not finite, an entry of format 1 (the reason, naming the
 * id, in err); a meta whose counts break events = joined + pending + dropped. The meta records the
 * windows and policy but does not enforce them. */
int fr_join_load_entry(fr_join *j, const char *id, size_t id_len, const void *bytes, size_t len, char *err,
                       size_t errlen);
/* Writes the blob only when cap is large enough; returns the size needed either way. */
size_t fr_join_export_meta(const fr_join *j, void *buf, size_t cap);
int fr_join_import_meta(fr_join *j, const void *buf, size_t len);
/* After a restore: 0 when the pending counts of the meta are what the loaded entries hold, else -1
 * with a message naming the event type. */
int fr_join_check_pending(const fr_join *j, char *err, size_t errlen);
/* Live entries (pending impressions, clicks, conversions), not counting tombstones. */
size_t fr_join_entry_count(const fr_join *j);
/* Refuses (-1, message) a meta blob written under another policy; 0 when it matches. */
int fr_join_check_meta(const fr_join *j, const void *buf, size_t len, char *err, size_t errlen);

/* Spilling. get copies the entry the last committed checkpoint holds for id into buf (cap
 * bytes) and returns its length, -1 when absent, -2 on a read error. Set it before loading
 * entries: with a store, fr_join_load_entry keeps restored entries spilled. The store is
 * borrowed (ctx must outlive the join). NULL turns spilling off. */
typedef struct {
    long (*get)(void *ctx, const char *id, size_t id_len, void *buf, size_t cap);
    void *ctx;
} fr_join_store;
void fr_join_set_store(fr_join *j, const fr_join_store *store);
/* Right after fr_join_clear_dirty (a committed checkpoint): drops the bodies of clean entries
 * until at most keep remain in memory. Returns how many were dropped; 0 without a store. */
size_t fr_join_spill(fr_join *j, size_t keep);
/* Entries whose bodies are in memory (312 bytes each; a stub is about 85 bytes + the id). */
size_t fr_join_cached_count(const fr_join *j);
/* The last read-back failure, for the caller's message; NULL when none happened. */
const char *fr_join_error(const fr_join *j);

#endif
