/* Joiner throughput and memory with N pending clicks (default 10 million), esdfm policy.
 * Not a test. Build and run: bash bench/delayed_feedback/bench_join.sh [N]
 * Phase 1 adds N impressions + N clicks (1 ms apart, the watermark following them, so every
 * click's CTR sample fires and the click then waits for its 7-day attribution window: pending).
 * Phase 2 adds conversions for 10% of them. Phase 3 moves the watermark past everything: every
 * copy and MATURED sample is emitted. Prints events/s per phase and the resident memory. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fr_join.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0) kb = atol(line + 6);
    if (f) fclose(f);
    return kb;
}

static unsigned long long emitted;
static void sink(const fr_sample *s, void *ctx)
{
    (void)s, (void)ctx;
    emitted++;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 10000000;
    fr_join_config c = {.click_window_ms = 30 * 60000LL, .attribution_window_ms = 7 * 86400000LL,
                        .policy = FR_JOIN_POLICY_ESDFM, .observation_window_ms = 15 * 60000LL};
    fr_join *j = fr_join_create(&c);
    if (!j) return 1;
    long rss0 = rss_kb();
    fr_event ev;
    memset(&ev, 0, sizeof ev);
    ev.sample_rate = 1.0f;
    for (int i = 0; i < 7; i++) ev.features.cat[i] = 1000u + (unsigned)i;
    const long long t0 = 1764547200000LL;
    double a = now();
    for (long i = 0; i < n; i++) {
        ev.id_len = (uint32_t)snprintf(ev.id, sizeof ev.id, "i-%016lx", (unsigned long)i * 0x9e3779b97f4a7c15ul);
        ev.type = FR_EV_IMPRESSION;
        ev.ts = t0 + i;
        ev.features.cat[0] = (uint64_t)i;
        if (fr_join_add(j, &ev, sink, NULL) != 0) return 2;
        ev.type = FR_EV_CLICK;
        ev.ts = t0 + i + 5;
        if (fr_join_add(j, &ev, sink, NULL) != 0) return 2;
        if ((i & 1023) == 0) fr_join_advance(j, t0 + i, sink, NULL);
    }
    double b = now();
    long rss1 = rss_kb();
    const fr_join_counters *k = fr_join_get_counters(j);
    printf("phase 1: %ld impressions + %ld clicks in %.1f s: %.0f events/s; clicks still in the CTR window %llu, clicked impressions waiting for W_a %zu\n", n, n,
           b - a, 2.0 * n / (b - a), (unsigned long long)k->pending[FR_EV_CLICK], fr_join_entry_count(j));
    printf("memory: %.2f GB resident for %ld pending clicks (%.0f bytes each)\n", (rss1 - rss0) / 1048576.0, n,
           (rss1 - rss0) * 1024.0 / (double)n);
    a = now();
    long nconv = 0;
    for (long i = 0; i < n; i += 10, nconv++) {
        ev.id_len = (uint32_t)snprintf(ev.id, sizeof ev.id, "i-%016lx", (unsigned long)i * 0x9e3779b97f4a7c15ul);
        ev.type = FR_EV_CONVERSION;
        ev.ts = t0 + n + 3600000LL;
        if (fr_join_add(j, &ev, sink, NULL) != 0) return 2;
    }
    b = now();
    printf("phase 2: %ld conversions in %.2f s: %.0f events/s\n", nconv, b - a, nconv / (b - a));
    a = now();
    unsigned long long e0 = emitted;
    fr_join_advance(j, INT64_MAX, sink, NULL);
    b = now();
    printf("phase 3: flush, %llu samples emitted in %.1f s: %.0f samples/s; entries left %zu\n", emitted - e0, b - a,
           (double)(emitted - e0) / (b - a), fr_join_entry_count(j));
    fr_join_free(j);
    return 0;
}
