/* fr_gen: a synthetic ad-ranking world with exact ground truth, written as EVENTS.md JSON Lines.
 *
 * The world (users, ads, advertisers, interaction tables) depends only on seed, n_users and n_ads,
 * so runs that differ in length, delays, duplicates or jitter share one world and stay comparable.
 * The event stream is a pure function of the options: the same options give the same bytes on any
 * IEEE-754 machine, because every transcendental function on the output path is computed in
 * fr_gen.c from +, -, *, / (no libm rounding differences), timestamps and money are integers, and
 * the %.6f truth columns rely only on printf's exact decimal rounding (glibc, musl). Build without
 * floating-point contraction (the ISO -std=c17 default in GCC; fr_gen.c turns it off for clang).
 *
 * Label semantics follow the EVENTS.md defaults: a click counts if it comes within 30 minutes of its
 * impression, a conversion if it comes within 7 days of its click. The generator also writes events
 * that fall outside those windows (about 0.5% of clicks are late, conversions beyond 7 days are
 * kept, and a late click may still be followed by a conversion), so a consumer must drop them;
 * no event lies exactly on a window boundary.
 *
 * Impression features: user_id "u<n>" (n = popularity rank), user_age, device, ad_id "a<n>",
 * advertiser "adv<n>", category (20 named verticals), hour (UTC hour of ts), price (2 decimals),
 * recent_ads (the user's last up to 8 distinct clicked ads, most recent first). sample_rate is
 * always 1.0 and written on about half of the impressions to exercise the optional field.
 *
 * Truth TSV (header line, then one line per impression in event-time order), columns:
 *   id, ts, scenario       as in the impression event
 *   p_ctr                  P(click within 30 min | impression), %.6f
 *   p_cvr                  P(the click ever converts | click), %.6f (defined for every impression)
 *   clicked                1 if a click came within 30 min
 *   converted              1 if clicked and a conversion came within 7 days of that click
 *   p_cvr_7d               p_cvr * G(7 d), G the conversion delay CDF, %.6f
 *   click_ts, conv_ts      ts of the click / conversion event written for this impression (also when
 *                          outside its window), or -1 if none was written
 *   p_star                 P(converts within the 7 d attribution window | click) = p_cvr_7d, %.6f
 *   p_ip                   P(converts within the observation window w_o | click) = p_cvr G(w_o), %.6f
 *   p_dp                   P(converts after w_o, within 7 d | click) = p_star - p_ip, %.6f
 * (the delayed-feedback quantities of docs/delayed-feedback.md; columns are only ever appended).
 *
 * Conditions of real logs (fr_gen_opts.conditions; 0, the default, is the stationary world above, whose
 * bytes never change). Each is one bit, FR_GEN_REALISTIC sets them all; the world and the truth model
 * stay the same, only when events happen, who and what they show, and their arrival order change:
 *   WEEKLY    a day-of-week cycle on top of the diurnal one (Saturday +25 %, Tuesday -12 %);
 *   GAP       one day with no event of any type (a logging outage): impressions stop a click window
 *             before it, and clicks and conversions that would fall in it are lost (runs of >= 3 days);
 *   BURSTS    impression traffic x10 for 30-90 minutes, about every other day;
 *   LULLS     impression traffic x0.1 for 4-10 hours, about every third day;
 *   SESSIONS  heavy-tailed user activity: users come in sessions of Pareto(1.2) length (up to 2000
 *             impressions), served densely (30 % of the traffic while one is open);
 *   AD_CHURN  ads that come and go: 85 % of the ads live for 15-60 % of the run, the rest all along;
 *   SKEW      partitions arriving out of step: each event belongs to partition murmur2(id) % partitions
 *             (what Kafka's murmur2 partitioner does with the impression id as key, so topics stay
 *             co-partitioned); each partition arrives up to 5 minutes late, and at times one lags by
 *             2-4 hours for a few hours. Within a partition the order is event time (plus reorder_ms).
 *             A single-source replay of such a file needs join.allowed_lateness >= fr_gen_plan.max_lag_ms.
 * The truth stays exact: clicked/converted and click_ts/conv_ts are what the events say, and with GAP
 * p_cvr_7d = p_star and p_ip exclude the conversion delays that would land in the gap (for the click
 * written; for an impression without a counted click, as if clicked at its ts). */
#ifndef FR_GEN_H
#define FR_GEN_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct {
    uint64_t seed;              /* default 42 */
    int64_t impressions;        /* default 1000000 */
    int64_t start_ts_ms;        /* default 1764547200000 (2025-12-01T00:00:00Z) */
    double days;                /* event-time span of the impressions, default 14 */
    int n_users, n_ads;         /* default 200000, 20000; Zipf exponent ~1.1 */
    double delay_short_share;   /* mixture: share of conversions with short delay, default 0.35 */
    double delay_short_mean_s, delay_long_mean_s;  /* defaults 900 s and 2 days */
    double obs_window_s;        /* w_o for the truth's p_ip and p_dp, default 900 s (15 min) */
    double duplicate_rate;      /* probability an event is written twice, default 0 */
    double reorder_ms;          /* max random arrival jitter; 0 = arrival in event-time order (default) */
    unsigned conditions;        /* FR_GEN_* bits below; 0 = none (default) */
    int partitions;             /* partitions of FR_GEN_SKEW, 1..256, default 4 */
} fr_gen_opts;

enum {
    FR_GEN_WEEKLY = 1u << 0,
    FR_GEN_GAP = 1u << 1,
    FR_GEN_BURSTS = 1u << 2,
    FR_GEN_LULLS = 1u << 3,
    FR_GEN_SESSIONS = 1u << 4,
    FR_GEN_AD_CHURN = 1u << 5,
    FR_GEN_SKEW = 1u << 6,
    FR_GEN_REALISTIC = (1u << 7) - 1,
};

/* Name <-> bit ("weekly", "gap", "bursts", "lulls", "sessions", "ad_churn", "skew"; "realistic" = all):
 * parses a comma-separated list into *bits; -1 with a message naming the unknown word. */
int fr_gen_conditions_parse(const char *list, unsigned *bits, char *err, size_t errlen);

/* Where the conditions put things in time, a pure function of the options (fr_gen_run uses the same):
 * for reports, and for tests that need to know where to look. Times are event-time milliseconds. */
enum { FR_GEN_MAX_SPANS = 48, FR_GEN_MAX_LAGS = 16 };
typedef struct {
    int64_t from, to;   /* [from, to) */
    double factor;      /* impression traffic times this (10: burst, 0.1: lull) */
} fr_gen_span;
typedef struct {
    int partition;
    int64_t from, to;   /* the lag rises from `from`, holds `peak_ms`, and is back to the base by `to` */
    int64_t peak_ms;
} fr_gen_lag;
typedef struct {
    int64_t gap_from, gap_to;       /* no event of any type in [gap_from, gap_to); equal: no gap */
    int n_spans;
    fr_gen_span span[FR_GEN_MAX_SPANS];
    int n_lags;
    fr_gen_lag lag[FR_GEN_MAX_LAGS];
    int64_t base_lag_ms[256];       /* the steady lateness of each partition (SKEW) */
    int64_t max_lag_ms;             /* the most an event arrives after events of the same ts (SKEW + reorder_ms) */
} fr_gen_plan;
int fr_gen_plan_make(const fr_gen_opts *o, fr_gen_plan *plan, char *err, size_t errlen);

/* The partition of a key among n, as Kafka's murmur2 partitioner (Java's default) picks it. */
int fr_gen_partition(const char *key, size_t len, int n);

void fr_gen_defaults(fr_gen_opts *o);
/* Writes events (JSON Lines, EVENTS.md objects, arrival order) to `events` and the truth TSV to
 * `truth` (may be NULL). Returns 0, or -1 with a message. */
int fr_gen_run(const fr_gen_opts *o, FILE *events, FILE *truth, char *err, size_t errlen);

#endif
