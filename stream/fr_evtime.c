/* fr_evtime: which events may move one partition's event time (see fr_evtime.h for the rule).
 *
 * Shape. A partition's state is its time (hi), a ring of its last steps (the pace), and the held
 * messages in arrival order, each with its votes. The common case, nothing held and the event
 * within max_ahead of hi, touches hi and the ring only. Everything else takes the slow path,
 * which reserves all it may need before it changes anything, so a failed allocation leaves the
 * state as it was. */
#include "fr_evtime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fr_bytes.h"
#include "fr_event.h"

enum {
    FORMAT_VERSION = 1,
    /* the most a state can hold: every held event is decided within confirm + reject - 1 votes */
    MAX_HELD = 2 * FR_EVTIME_MAX_VOTES,
    MAX_MESSAGE = 1 << 26, /* kafka.max_message_bytes' limit */
};

typedef struct {
    int64_t offset, ts;
    uint32_t support, oppose;
    char *bytes;
    size_t len;
    int release; /* scratch of one offer */
} held_msg;

struct fr_evtime {
    int64_t hi;                         /* INT64_MIN: nothing accepted yet */
    uint32_t accepted;                  /* events accepted, saturating */
    uint32_t n_steps, step_pos;         /* the ring: n_steps valid values, step_pos is written next */
    int64_t steps[FR_EVTIME_STEPS];
    uint64_t released;
    held_msg *held;
    size_t n_held, cap_held;
    fr_evtime_msg *decided;             /* the last offer's decisions; their bytes are owned here */
    size_t n_decided, cap_decided;
};

void fr_evtime_config_defaults(fr_evtime_config *c)
{
    c->max_ahead_ms = INT64_C(15) * 60 * 1000;
    c->min_ts_ms = INT64_C(946684800000); /* 2000-01-01T00:00:00Z */
    c->confirm = 16;
    c->reject = 16;
}

fr_evtime *fr_evtime_create(void)
{
    fr_evtime *e = calloc(1, sizeof *e);
    if (e) e->hi = INT64_MIN;
    return e;
}

static void clear_decided(fr_evtime *e)
{
    for (size_t i = 0; i < e->n_decided; i++) free((void *)e->decided[i].bytes);
    e->n_decided = 0;
}

static void free_held(held_msg *h, size_t n)
{
    for (size_t i = 0; i < n; i++) free(h[i].bytes);
}

void fr_evtime_free(fr_evtime *e)
{
    if (!e) return;
    clear_decided(e);
    free_held(e->held, e->n_held);
    free(e->held);
    free(e->decided);
    free(e);
}

static int reserve(void **v, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap) return 0;
    size_t n = *cap ? *cap : 8;
    while (n < need) n *= 2;
    void *nv = realloc(*v, n * size);
    if (!nv) return -1;
    *v = nv;
    *cap = n;
    return 0;
}

/* The upper quartile of the recorded steps: a step at least 5 of the last 15 events made is the
 * partition's pace (bursts of a few events hours apart, conversions of a night), a rarer one is
 * a jump (a gap of days: it waits for confirmation). Small while the partition is dense, whatever
 * order its events come in. */
static int64_t pace(const fr_evtime *e)
{
    if (e->n_steps == 0) return 0;
    int64_t v[FR_EVTIME_STEPS];
    memcpy(v, e->steps, e->n_steps * sizeof v[0]);
    for (uint32_t i = 1; i < e->n_steps; i++)
        for (uint32_t k = i; k > 0 && v[k - 1] > v[k]; k--) {
            int64_t t = v[k];
            v[k] = v[k - 1];
            v[k - 1] = t;
        }
    return v[3 * (e->n_steps - 1) / 4];
}

int64_t fr_evtime_bound(const fr_evtime *e, const fr_evtime_config *c)
{
    if (c->max_ahead_ms == 0) return INT64_MAX;
    const int64_t p = pace(e); /* <= FR_TS_MAX: no overflow below */
    return p * FR_EVTIME_PACE_FACTOR > c->max_ahead_ms ? p * FR_EVTIME_PACE_FACTOR : c->max_ahead_ms;
}

static void accept_ts(fr_evtime *e, int64_t ts)
{
    const int64_t step = e->hi == INT64_MIN || ts <= e->hi ? 0 : ts - e->hi;
    e->steps[e->step_pos] = step;
    e->step_pos = (e->step_pos + 1) % FR_EVTIME_STEPS;
    if (e->n_steps < FR_EVTIME_STEPS) e->n_steps++;
    if (ts > e->hi) e->hi = ts;
    if (e->accepted < UINT32_MAX) e->accepted++;
}

/* ts is within bound of hi. Every ts is in [0, FR_TS_MAX], so the difference cannot overflow. */
static int within(int64_t hi, int64_t ts, int64_t bound) { return hi != INT64_MIN && ts - hi <= bound; }

int fr_evtime_offer(fr_evtime *e, const fr_evtime_config *c, int64_t ts, int64_t offset, const char *buf, size_t len,
                    fr_evtime_verdict *verdict)
{
    clear_decided(e);
    if (ts < c->min_ts_ms) {
        *verdict = FR_EVTIME_TOO_OLD;
        return 0;
    }
    const int off = c->max_ahead_ms == 0;
    if (e->n_held == 0 && (off || within(e->hi, ts, c->max_ahead_ms))) {
        accept_ts(e, ts);
        *verdict = FR_EVTIME_ACCEPT;
        return 0;
    }

    if (len > MAX_MESSAGE) return -1; /* the decoder refuses such messages first (oversized) */
    if (reserve((void **)&e->held, &e->cap_held, e->n_held + 1, sizeof *e->held) != 0 ||
        reserve((void **)&e->decided, &e->cap_decided, e->n_held, sizeof *e->decided) != 0)
        return -1;
    char *copy = malloc(len ? len : 1);
    if (!copy) return -1;

    const int64_t bound = fr_evtime_bound(e, c);
    /* Evidence grows with what the partition has shown: its first event needs one later event
     * at or after it, an established partition `confirm`. */
    const uint32_t need = e->accepted < 1 ? 1 : e->accepted < c->confirm ? e->accepted : c->confirm;
    for (size_t i = 0; i < e->n_held; i++) {
        held_msg *h = &e->held[i];
        if (h->ts - ts <= bound)
            h->support++;
        else
            h->oppose++;
        h->release = 0;
    }
    /* Releasing one event can bring others (and this one) within bound: repeat until stable. */
    int64_t hi = e->hi;
    int take = 0;
    for (int changed = 1; changed;) {
        changed = 0;
        for (size_t i = 0; i < e->n_held; i++) {
            held_msg *h = &e->held[i];
            if (h->release || !(off || within(hi, h->ts, bound) || h->support >= need)) continue;
            h->release = changed = 1;
            if (h->ts > hi) hi = h->ts;
        }
        if (!take && (off || within(hi, ts, bound))) {
            take = changed = 1;
            if (ts > hi) hi = ts;
        }
    }

    size_t keep = 0;
    for (size_t i = 0; i < e->n_held; i++) {
        held_msg *h = &e->held[i];
        fr_evtime_verdict v;
        if (h->release) {
            accept_ts(e, h->ts);
            e->released++;
            v = FR_EVTIME_ACCEPT;
        } else if (h->oppose >= c->reject) {
            v = FR_EVTIME_FUTURE;
        } else {
            e->held[keep++] = *h;
            continue;
        }
        e->decided[e->n_decided++] = (fr_evtime_msg){.verdict = v,
                                                     .offset = h->offset,
                                                     .ts = h->ts,
                                                     .support = h->support,
                                                     .oppose = h->oppose,
                                                     .partition_ts = e->hi,
                                                     .bytes = h->bytes,
                                                     .len = h->len};
    }
    e->n_held = keep;
    if (take) {
        free(copy);
        accept_ts(e, ts);
        *verdict = FR_EVTIME_ACCEPT;
    } else {
        if (len) memcpy(copy, buf, len);
        e->held[e->n_held++] = (held_msg){.offset = offset, .ts = ts, .bytes = copy, .len = len};
        *verdict = FR_EVTIME_HOLD;
    }
    return 0;
}

size_t fr_evtime_decided(const fr_evtime *e, const fr_evtime_msg **out)
{
    *out = e->decided;
    return e->n_decided;
}

int64_t fr_evtime_time(const fr_evtime *e) { return e->hi; }
size_t fr_evtime_held(const fr_evtime *e) { return e->n_held; }
uint64_t fr_evtime_released(const fr_evtime *e) { return e->released; }

void fr_evtime_set_time(fr_evtime *e, int64_t hi) { e->hi = hi; }

/* ---- persistence ----
 * Format v1, little-endian:
 *   u8 version, i64 hi, u32 accepted, u8 n_steps, u8 step_pos, i64 steps[n_steps], u64 released,
 *   u32 n_held, then per held message: i64 offset, i64 ts, u32 support, u32 oppose, u32 len, bytes. */

size_t fr_evtime_export(const fr_evtime *e, void *buf, size_t cap)
{
    size_t need = 1 + 8 + 4 + 2 + 8 * (size_t)e->n_steps + 8 + 4;
    for (size_t i = 0; i < e->n_held; i++) need += 8 + 8 + 4 + 4 + 4 + e->held[i].len;
    if (!buf || cap < need) return need;
    fr_bytes_out o = fr_bytes_out_init(buf, need);
    fr_out_u8(&o, FORMAT_VERSION);
    fr_out_u64le(&o, (uint64_t)e->hi);
    fr_out_u32le(&o, e->accepted);
    fr_out_u8(&o, (uint8_t)e->n_steps);
    fr_out_u8(&o, (uint8_t)e->step_pos);
    for (uint32_t i = 0; i < e->n_steps; i++) fr_out_u64le(&o, (uint64_t)e->steps[i]);
    fr_out_u64le(&o, e->released);
    fr_out_u32le(&o, (uint32_t)e->n_held);
    for (size_t i = 0; i < e->n_held; i++) {
        const held_msg *h = &e->held[i];
        fr_out_u64le(&o, (uint64_t)h->offset);
        fr_out_u64le(&o, (uint64_t)h->ts);
        fr_out_u32le(&o, h->support);
        fr_out_u32le(&o, h->oppose);
        fr_out_u32le(&o, (uint32_t)h->len);
        unsigned char *p = fr_out_take(&o, h->len);
        if (p && h->len) memcpy(p, h->bytes, h->len);
    }
    return need;
}

static int ts_ok(int64_t ts) { return ts >= 0 && ts <= FR_TS_MAX; }

int fr_evtime_import(fr_evtime *e, const void *buf, size_t len)
{
    fr_bytes_in r = fr_bytes_in_init(buf, len);
    if (fr_in_u8(&r) != FORMAT_VERSION) return -1;
    fr_evtime n = {0};
    n.hi = fr_in_i64le(&r);
    n.accepted = fr_in_u32le(&r);
    n.n_steps = fr_in_u8(&r);
    n.step_pos = fr_in_u8(&r);
    if (r.overrun || (n.hi != INT64_MIN && !ts_ok(n.hi)) || n.n_steps > FR_EVTIME_STEPS ||
        n.step_pos >= FR_EVTIME_STEPS || (n.n_steps < FR_EVTIME_STEPS && n.step_pos != n.n_steps))
        return -1;
    for (uint32_t i = 0; i < n.n_steps; i++) {
        n.steps[i] = fr_in_i64le(&r);
        if (!ts_ok(n.steps[i])) return -1;
    }
    n.released = fr_in_u64le(&r);
    const uint32_t n_held = fr_in_u32le(&r);
    if (r.overrun || n_held > MAX_HELD) return -1;
    if (n_held) {
        n.held = calloc(n_held, sizeof *n.held);
        if (!n.held) return -1;
        n.cap_held = n_held;
    }
    for (; n.n_held < n_held; n.n_held++) {
        held_msg *h = &n.held[n.n_held];
        h->offset = fr_in_i64le(&r);
        h->ts = fr_in_i64le(&r);
        h->support = fr_in_u32le(&r);
        h->oppose = fr_in_u32le(&r);
        h->len = fr_in_u32le(&r);
        const unsigned char *p = r.overrun || h->len > MAX_MESSAGE ? NULL : fr_in_take(&r, h->len);
        if (!p || !ts_ok(h->ts) || h->support > MAX_HELD || h->oppose > MAX_HELD) break;
        h->bytes = malloc(h->len ? h->len : 1);
        if (!h->bytes) break;
        if (h->len) memcpy(h->bytes, p, h->len);
    }
    if (n.n_held != n_held || r.left != 0) {
        free_held(n.held, n.n_held);
        free(n.held);
        return -1;
    }
    clear_decided(e);
    free_held(e->held, e->n_held);
    free(e->held);
    n.decided = e->decided;
    n.cap_decided = e->cap_decided;
    *e = n;
    return 0;
}

/* ---- the checkpoint's blob of every partition ----
 * v1, little-endian: u8 version, u32 count, then per partition, sorted by name: u16 name length
 * (1..255), the name, u32 state length, the state (fr_evtime_export's format). */

enum { ALL_VERSION = 1, NAME_MAX_LEN = 255 };

static int named_cmp(const void *a, const void *b)
{
    return strcmp(((const fr_evtime_named *)a)->name, ((const fr_evtime_named *)b)->name);
}

unsigned char *fr_evtime_export_all(const fr_evtime_named *parts, size_t n, size_t *len)
{
    fr_evtime_named *sorted = malloc((n ? n : 1) * sizeof *sorted);
    if (!sorted) return NULL;
    if (n) memcpy(sorted, parts, n * sizeof *sorted);
    qsort(sorted, n, sizeof *sorted, named_cmp);
    size_t need = 1 + 4;
    for (size_t i = 0; i < n; i++) need += 2 + strlen(sorted[i].name) + 4 + fr_evtime_export(sorted[i].state, NULL, 0);
    unsigned char *buf = malloc(need);
    if (buf) {
        fr_bytes_out o = fr_bytes_out_init(buf, need);
        fr_out_u8(&o, ALL_VERSION);
        fr_out_u32le(&o, (uint32_t)n);
        for (size_t i = 0; i < n; i++) {
            const size_t nl = strlen(sorted[i].name), sl = fr_evtime_export(sorted[i].state, NULL, 0);
            fr_out_u16le(&o, (uint16_t)nl);
            unsigned char *p = fr_out_take(&o, nl);
            if (p) memcpy(p, sorted[i].name, nl);
            fr_out_u32le(&o, (uint32_t)sl);
            p = fr_out_take(&o, sl);
            if (p) fr_evtime_export(sorted[i].state, p, sl);
        }
        *len = need;
    }
    free(sorted);
    return buf;
}

const char *fr_evtime_walk_all(const void *blob, size_t len, fr_evtime_part_fn fn, void *ctx, char *name,
                               size_t name_cap)
{
    char part[NAME_MAX_LEN + 1] = "";
    const char *why = NULL;
    fr_bytes_in r = fr_bytes_in_init(blob, len);
    if (fr_in_u8(&r) != ALL_VERSION) why = "unreadable or from another version";
    const uint32_t count = why ? 0 : fr_in_u32le(&r);
    for (uint32_t k = 0; !why && k < count; k++) {
        const size_t nl = fr_in_u16le(&r);
        const unsigned char *p = nl == 0 || nl > NAME_MAX_LEN ? NULL : fr_in_take(&r, nl);
        /* A NUL inside would cut the name short: another source (or none, "") would get the state,
         * and the next checkpoint would write what no restore reads (found by fuzz_evtime). */
        if (!p || memchr(p, '\0', nl)) {
            why = r.overrun ? "truncated" : "corrupt";
            break;
        }
        memcpy(part, p, nl);
        part[nl] = '\0';
        const size_t sl = fr_in_u32le(&r);
        p = fr_in_take(&r, sl);
        if (!p)
            why = "truncated";
        else if (fn(part, p, sl, ctx) != 0)
            why = "corrupt";
    }
    if (!why && (r.overrun || r.left != 0)) why = r.overrun ? "truncated" : "followed by trailing bytes";
    if (!why) part[0] = '\0';
    if (name && name_cap) snprintf(name, name_cap, "%s", part);
    return why;
}
