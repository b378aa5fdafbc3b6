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
 * (the delayed-feedback quantities of docs/delayed-feedback.md; columns are only ever appended). */
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
} fr_gen_opts;

void fr_gen_defaults(fr_gen_opts *o);
/* Writes events (JSON Lines, EVENTS.md objects, arrival order) to `events` and the truth TSV to
 * `truth` (may be NULL). Returns 0, or -1 with a message. */
int fr_gen_run(const fr_gen_opts *o, FILE *events, FILE *truth, char *err, size_t errlen);

#endif
