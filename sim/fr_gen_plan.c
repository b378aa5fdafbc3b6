/* fr_gen_plan: where the conditions of real logs put things in event time (fr_gen.h), and the
 * partitioner. A pure function of the options: its own PRNG streams (16: the calendar, 17: the
 * partition lags), so the plan does not move when anything else about the run changes but the
 * length, and fr_gen.c draws nothing from them. */
#include "fr_gen.h"
#include "fr_gen_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const int64_t MIN_MS = 60000, HOUR_MS = 3600000, DAY_MS = 86400000;
static const int64_t CLICK_WINDOW_MS = 30 * 60000; /* EVENTS.md default: impressions stop this long before a gap */

/* Monday .. Sunday: weekend traffic a quarter above the week's trough. */
static const double WEEKLY[7] = {0.92, 0.88, 0.90, 0.93, 1.02, 1.25, 1.15};
static const double BURST_FACTOR = 10.0, LULL_FACTOR = 0.1;
static const int64_t MAX_BASE_LAG_MS = 5 * 60000;

static const struct {
    const char *name;
    unsigned bit;
} NAMES[] = {{"weekly", FR_GEN_WEEKLY},     {"gap", FR_GEN_GAP},           {"bursts", FR_GEN_BURSTS},
             {"lulls", FR_GEN_LULLS},       {"sessions", FR_GEN_SESSIONS}, {"ad_churn", FR_GEN_AD_CHURN},
             {"skew", FR_GEN_SKEW},         {"realistic", FR_GEN_REALISTIC}};

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

int fr_gen_conditions_parse(const char *list, unsigned *bits, char *err, size_t errlen)
{
    unsigned out = 0;
    const char *p = list;
    for (;;) {
        size_t n = strcspn(p, ",");
        size_t i = 0;
        for (; i < sizeof NAMES / sizeof NAMES[0]; i++)
            if (strlen(NAMES[i].name) == n && strncmp(NAMES[i].name, p, n) == 0)
                break;
        if (i == sizeof NAMES / sizeof NAMES[0]) {
            set_err(err, errlen,
                    "unknown condition \"%.*s\" (known: weekly, gap, bursts, lulls, sessions, ad_churn, skew, "
                    "realistic)",
                    (int)n, p);
            return -1;
        }
        out |= NAMES[i].bit;
        if (!p[n])
            break;
        p += n + 1;
    }
    *bits = out;
    return 0;
}

/* Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2, librdkafka's rd_murmur2): Java's
 * signed arithmetic with logical shifts is this unsigned arithmetic. */
static uint32_t murmur2(const unsigned char *data, size_t len)
{
    const uint32_t m = 0x5bd1e995;
    uint32_t h = 0x9747b28cu ^ (uint32_t)len;
    for (; len >= 4; data += 4, len -= 4) {
        uint32_t k = (uint32_t)data[0] | (uint32_t)data[1] << 8 | (uint32_t)data[2] << 16 | (uint32_t)data[3] << 24;
        k *= m;
        k ^= k >> 24;
        k *= m;
        h *= m;
        h ^= k;
    }
    switch (len) {
    case 3:
        h ^= (uint32_t)data[2] << 16;
        /* fall through */
    case 2:
        h ^= (uint32_t)data[1] << 8;
        /* fall through */
    case 1:
        h ^= data[0];
        h *= m;
        break;
    default:
        break;
    }
    h ^= h >> 13;
    h *= m;
    h ^= h >> 15;
    return h;
}

int fr_gen_partition(const char *key, size_t len, int n)
{
    if (n <= 1)
        return 0;
    return (int)((murmur2((const unsigned char *)key, len) & 0x7fffffffu) % (uint32_t)n);
}

static int64_t run_end(const fr_gen_opts *o)
{
    int64_t end = o->start_ts_ms + (int64_t)floor(o->days * 86400000.0 + 0.5);
    return end <= o->start_ts_ms ? o->start_ts_ms + 1 : end;
}

static int overlaps(int64_t a0, int64_t a1, int64_t b0, int64_t b1) { return a0 < b1 && b0 < a1; }

/* n spans of length [min_len, max_len) ms at uniform places outside the impression gap. */
static void place_spans(fr_gen_plan *p, rng_t *r, int n, int64_t start, int64_t end, int64_t min_len, int64_t max_len,
                        double factor)
{
    const int64_t span = end - start, g0 = p->gap_from - CLICK_WINDOW_MS, g1 = p->gap_to;
    for (int i = 0; i < n && p->n_spans < FR_GEN_MAX_SPANS; i++) {
        int64_t len = min_len + (int64_t)(rng_u01(r) * (double)(max_len - min_len));
        if (len > span / 2)
            len = span / 2;
        if (len < 1)
            return;
        /* Apart from the gap and from each other, so each span shows as what it is. */
        int64_t t0 = start;
        for (int tries = 0, clear = 0; tries < 32 && !clear; tries++) {
            t0 = start + (int64_t)(rng_u01(r) * (double)(span - len));
            clear = p->gap_to == p->gap_from || !overlaps(t0, t0 + len, g0, g1);
            for (int j = 0; j < p->n_spans && clear; j++)
                clear = !overlaps(t0, t0 + len, p->span[j].from, p->span[j].to);
        }
        p->span[p->n_spans++] = (fr_gen_span){.from = t0, .to = t0 + len, .factor = factor};
    }
}

static int clamp_count(double x, int lo, int hi)
{
    int n = (int)floor(x + 0.5);
    return n < lo ? lo : n > hi ? hi : n;
}

int fr_gen_plan_make(const fr_gen_opts *o, fr_gen_plan *p, char *err, size_t errlen)
{
    memset(p, 0, sizeof *p);
    if (o->conditions & ~(unsigned)FR_GEN_REALISTIC)
        return set_err(err, errlen, "conditions: unknown bits 0x%x", o->conditions & ~(unsigned)FR_GEN_REALISTIC), -1;
    if ((o->conditions & FR_GEN_SKEW) && (o->partitions < 1 || o->partitions > 256))
        return set_err(err, errlen, "partitions must be in [1, 256]"), -1;
    const int64_t start = o->start_ts_ms, end = run_end(o);
    const double days = o->days;
    rng_t cal, lag;
    rng_seed(&cal, o->seed, 16);
    rng_seed(&lag, o->seed, 17);
    if ((o->conditions & FR_GEN_GAP) && days >= 3.0) {
        int64_t k = (int64_t)floor(0.4 * days), last = (int64_t)floor(days) - 2;
        if (k > last)
            k = last;
        if (k < 1)
            k = 1;
        p->gap_from = start + k * DAY_MS;
        p->gap_to = p->gap_from + DAY_MS;
    }
    if (o->conditions & FR_GEN_BURSTS)
        place_spans(p, &cal, clamp_count(days / 2.0, 1, 24), start, end, 30 * MIN_MS, 90 * MIN_MS, BURST_FACTOR);
    if (o->conditions & FR_GEN_LULLS)
        place_spans(p, &cal, clamp_count(days / 3.0, 1, 16), start, end, 4 * HOUR_MS, 10 * HOUR_MS, LULL_FACTOR);
    int64_t max_base = 0, max_peak = 0;
    if (o->conditions & FR_GEN_SKEW) {
        for (int k = 0; k < o->partitions; k++) {
            p->base_lag_ms[k] = (int64_t)(rng_u01(&lag) * (double)MAX_BASE_LAG_MS);
            if (p->base_lag_ms[k] > max_base)
                max_base = p->base_lag_ms[k];
        }
        int n = clamp_count(days / 3.0, 1, FR_GEN_MAX_LAGS);
        for (int i = 0; i < n; i++) {
            fr_gen_lag *l = &p->lag[p->n_lags++];
            l->partition = (int)(rng_u01(&lag) * o->partitions);
            l->peak_ms = 2 * HOUR_MS + (int64_t)(rng_u01(&lag) * (double)(2 * HOUR_MS));
            int64_t hold = HOUR_MS + (int64_t)(rng_u01(&lag) * (double)(3 * HOUR_MS));
            l->from = start + (int64_t)(rng_u01(&lag) * (double)(end - start));
            /* It catches up at a third of real time: the arrival order within a partition never turns back. */
            l->to = l->from + HOUR_MS + hold + l->peak_ms + l->peak_ms / 2;
            if (l->peak_ms > max_peak)
                max_peak = l->peak_ms;
        }
    }
    p->max_lag_ms = max_base + max_peak + (int64_t)ceil(o->reorder_ms);
    return 0;
}

/* ---- what fr_gen.c asks of the plan ---- */

double fr_gen_plan_traffic(const fr_gen_plan *p, unsigned conditions, int64_t t)
{
    double f = 1.0;
    if (conditions & FR_GEN_WEEKLY)
        f *= WEEKLY[(t / DAY_MS + 3) % 7]; /* 1970-01-01 was a Thursday */
    for (int i = 0; i < p->n_spans; i++)
        if (t >= p->span[i].from && t < p->span[i].to)
            f *= p->span[i].factor;
    return f;
}

int fr_gen_plan_no_impressions(const fr_gen_plan *p, int64_t t)
{
    return p->gap_to > p->gap_from && t >= p->gap_from - CLICK_WINDOW_MS && t < p->gap_to;
}

int fr_gen_plan_in_gap(const fr_gen_plan *p, int64_t t) { return t >= p->gap_from && t < p->gap_to; }

int64_t fr_gen_plan_next_edge(const fr_gen_plan *p, int64_t t)
{
    int64_t next = INT64_MAX;
    const int64_t edges[2] = {p->gap_from - CLICK_WINDOW_MS, p->gap_to};
    for (int i = 0; i < 2 && p->gap_to > p->gap_from; i++)
        if (edges[i] > t && edges[i] < next)
            next = edges[i];
    for (int i = 0; i < p->n_spans; i++) {
        if (p->span[i].from > t && p->span[i].from < next)
            next = p->span[i].from;
        if (p->span[i].to > t && p->span[i].to < next)
            next = p->span[i].to;
    }
    return next;
}

int64_t fr_gen_plan_lag(const fr_gen_plan *p, int partition, int64_t t)
{
    int64_t extra = 0;
    for (int i = 0; i < p->n_lags; i++) {
        const fr_gen_lag *l = &p->lag[i];
        if (l->partition != partition || t < l->from || t >= l->to)
            continue;
        const int64_t up = l->from + HOUR_MS, down = l->to - (l->peak_ms + l->peak_ms / 2);
        int64_t v = t < up     ? l->peak_ms * (t - l->from) / HOUR_MS
                    : t < down ? l->peak_ms
                               : l->peak_ms * (l->to - t) / (l->peak_ms + l->peak_ms / 2);
        if (v > extra)
            extra = v;
    }
    return p->base_lag_ms[partition] + extra;
}
