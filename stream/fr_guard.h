/* fr_guard: the label-collapse guard. It watches, over event time, two label flows of the joined
 * samples: clicks per impression (CTR samples) and conversions per click (each click at its first
 * CVR copy, with the conversion that copy decides: within w_o of the click for the window and
 * fake-negative policies), each as a short EWMA against a long one. When samples keep
 * flowing but a short-term rate falls below trip_fraction of its long-term rate (the clicks or
 * conversions topic stalled, its producer broke), the guard pauses: the pipeline then neither
 * trains nor publishes. It resumes when the short-term rate is back above resume_fraction of the
 * long-term one (or after max_pause of event time, accepting the new level as the baseline and
 * warming up again as at a cold start).
 *
 * Deterministic: it reads only the samples' event times and labels, never the wall clock, so a
 * replay pauses and resumes at the same samples. Its whole state is fr_guard (a plain struct,
 * checkpointed field by field as the blob "guard"), so restarts continue it bit for bit.
 * While paused, the long-term rates are frozen: they keep the level the stream had before the
 * collapse, which recovery is measured against. Cold start: nothing trips until the long EWMA has
 * seen long_half_life of event time and min_impressions (resp. min_clicks) samples; and never
 * while the short window expects fewer than 10 clicks (conversions) at the long-term rate.
 * Ownership: none (no allocation). Not thread-safe. */
#ifndef FR_GUARD_H
#define FR_GUARD_H

#include <stddef.h>
#include <stdint.h>

#include "fr_sample.h"

typedef struct {
    int enabled;
    int64_t short_half_life_ms;  /* > 0 */
    int64_t long_half_life_ms;   /* > short_half_life_ms */
    double trip_fraction;        /* in (0, 1) */
    double resume_fraction;      /* in [trip_fraction, 1] */
    double min_impressions;      /* CTR samples the short EWMA must hold (decayed count) to judge */
    double min_clicks;           /* first CVR copies the short EWMA must hold to judge */
    int64_t max_pause_ms;        /* 0: stay paused until the rate recovers */
} fr_guard_config;

void fr_guard_config_defaults(fr_guard_config *c);

typedef enum { FR_GUARD_RUNNING = 0, FR_GUARD_CLICKS, FR_GUARD_CONVERSIONS, FR_GUARD_NREASONS } fr_guard_reason;

/* One flow: decayed counts of the denominator (impressions / clicks) and numerator (clicks /
 * conversions), short and long. */
typedef struct {
    double den_s, num_s, den_l, num_l;
} fr_guard_flow;

typedef struct {
    int64_t first_ts, last_ts;   /* INT64_MIN: no sample yet */
    int64_t paused_since;        /* event time of the sample that tripped it */
    int32_t reason;              /* fr_guard_reason */
    int32_t pad;
    fr_guard_flow ctr, cvr;
    uint64_t trips, resumes;
    uint64_t held[FR_SAMPLE_NKINDS]; /* samples not used while paused, by kind */
} fr_guard;

void fr_guard_init(fr_guard *g);

/* What observing one sample did. */
typedef enum { FR_GUARD_NO_CHANGE = 0, FR_GUARD_TRIPPED, FR_GUARD_RESUMED } fr_guard_event;

/* Feeds one emitted sample (in emission order: its ts never decreases). Returns whether the guard
 * tripped or resumed on it, with a sentence for the log in msg. After it, fr_guard_paused says
 * whether this sample may be used; the caller counts it with fr_guard_hold if not. */
fr_guard_event fr_guard_observe(fr_guard *g, const fr_guard_config *c, const fr_sample *s, char *msg, size_t msglen);
int fr_guard_paused(const fr_guard *g);
/* 0 when g is a state fr_guard_init and fr_guard_observe can produce (reason in range, times
 * INT64_MIN ("none") or >= 0, pause time set exactly while paused, counts finite and >= 0,
 * trips - resumes = 1 while paused, else 0); -1 with the reason in why: for a state read back
 * from a checkpoint. */
int fr_guard_check(const fr_guard *g, char *why, size_t whylen);
/* The stored record (blob "guard", fr_guard_codec.c), little-endian, explicit widths:
 *   first_ts, last_ts, paused_since i64; reason u8; ctr, cvr: den_s, num_s, den_l, num_l f64;
 *   trips, resumes u64; nkinds u8; held u64 x nkinds
 * encode: the record's size; written only when cap is enough (NULL, 0 sizes it). decode: 0, or -1
 * with the reason in why (the record's length, or what fr_guard_check refuses); g is then fresh. */
size_t fr_guard_encode(const fr_guard *g, void *buf, size_t cap);
int fr_guard_decode(fr_guard *g, const void *buf, size_t len, char *why, size_t whylen);
void fr_guard_hold(fr_guard *g, const fr_sample *s);
const char *fr_guard_reason_name(fr_guard_reason r);
/* Short and long rates of a flow (NaN while its window holds less than one decayed event). */
void fr_guard_rates(const fr_guard_flow *f, double *short_rate, double *long_rate);

#endif
