/* Joiner throughput and memory with N pending clicks (default 10 million), esdfm policy.
 * Not a test. Build and run: bash bench/delayed_feedback/bench_join.sh [N] [MAX_CACHED [DIR]]
 * Phase 1 adds N impressions + N clicks (1 ms apart, the watermark following them, so every
 * click's CTR sample fires and the click then waits for its 7-day attribution window: pending).
 * Phase 2 adds conversions for 10% of them. Phase 3 moves the watermark past everything: every
 * copy and MATURED sample is emitted. Prints events/s per phase and the resident memory.
 *
 * With MAX_CACHED > 0 the join spills as the daemon does (join.max_cached_entries): whenever more
 * than MAX_CACHED entries are whole in memory, the dirty entries are committed to a RocksDB
 * checkpoint in DIR (fr_ckpt, its "join" column family, synced), and the join keeps MAX_CACHED/2;
 * spilled entries are read back from RocksDB when a conversion or a timer needs them. The times
 * include those checkpoints and reads. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "fr_ckpt.h"
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

/* Bytes of the files in dir (RocksDB keeps no subdirectories). */
static long long dir_bytes(const char *dir)
{
    DIR *d = opendir(dir);
    long long total = 0;
    struct dirent *e;
    char path[4096];
    while (d && (e = readdir(d))) {
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) total += st.st_size;
    }
    if (d) closedir(d);
    return total;
}

static unsigned long long emitted;
static void sink(const fr_sample *s, void *ctx)
{
    (void)s, (void)ctx;
    emitted++;
}

typedef struct {
    fr_ckpt *ck;
    size_t max_cached;
    unsigned long checkpoints;
    unsigned long long written;
    double seconds;
} spill_ctx;

static long store_get(void *ctx, const char *id, size_t id_len, void *buf, size_t cap)
{
    return fr_ckpt_get_join_entry(ctx, id, id_len, buf, cap);
}

static int put_entry(const char *id, size_t id_len, const void *bytes, size_t len, void *ctx)
{
    return fr_ckpt_put_join_entry(ctx, id, id_len, bytes, len);
}

/* What fr_pipeline does when the join holds too many entries whole: checkpoint, then spill. */
static void maybe_spill(fr_join *j, spill_ctx *s, int force)
{
    if (!s->ck || (!force && fr_join_cached_count(j) <= s->max_cached)) return;
    double a = now();
    fr_ckpt_batch *b = fr_ckpt_begin(s->ck);
    char err[512];
    if (!b || fr_join_foreach_dirty(j, put_entry, b) != 0) {
        fprintf(stderr, "bench: batch failed\n");
        exit(3);
    }
    fr_ckpt_batch_stats st;
    fr_ckpt_batch_get_stats(b, &st);
    s->written += st.join_puts;
    if (fr_ckpt_commit(b, err, sizeof err) != 0) {
        fprintf(stderr, "bench: %s\n", err);
        exit(3);
    }
    fr_join_clear_dirty(j);
    fr_join_spill(j, s->max_cached / 2);
    s->checkpoints++;
    s->seconds += now() - a;
}

static void check_advance(fr_join *j, int64_t wm)
{
    if (fr_join_advance(j, wm, sink, NULL) != 0) {
        fprintf(stderr, "bench: %s\n", fr_join_error(j));
        exit(2);
    }
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    long n = argc > 1 ? atol(argv[1]) : 10000000;
    spill_ctx sp = {.max_cached = argc > 2 ? (size_t)atol(argv[2]) : 0};
    const char *dir = argc > 3 ? argv[3] : "/tmp/freshet-bench-join-ckpt";
    fr_join_config c = {.click_window_ms = 30 * 60000LL, .attribution_window_ms = 7 * 86400000LL,
                        .policy = FR_POLICY_ESDFM, .observation_window_ms = 15 * 60000LL};
    fr_join *j = fr_join_create(&c);
    if (!j) return 1;
    long rss0 = rss_kb();
    if (sp.max_cached > 0) {
        char err[512];
        sp.ck = fr_ckpt_open(dir, err, sizeof err);
        if (!sp.ck) {
            fprintf(stderr, "bench: %s\n", err);
            return 1;
        }
        fr_join_store st = {store_get, sp.ck};
        fr_join_set_store(j, &st);
        printf("spilling: at most %zu entries whole in memory, checkpoints in %s\n", sp.max_cached, dir);
    } else {
        printf("no spilling: every entry whole in memory\n");
    }
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
        if ((i & 1023) == 0) {
            check_advance(j, t0 + i);
            maybe_spill(j, &sp, 0);
        }
    }
    maybe_spill(j, &sp, 1);
    double b = now();
    long rss1 = rss_kb();
    const fr_join_counters *k = fr_join_get_counters(j);
    printf("phase 1: %ld impressions + %ld clicks in %.1f s: %.0f events/s; clicks still in the CTR window %llu, clicked impressions waiting for W_a %zu\n", n, n,
           b - a, 2.0 * n / (b - a), (unsigned long long)k->pending[FR_EV_CLICK], fr_join_entry_count(j));
    if (sp.ck)
        printf("  %lu checkpoints (%.1f s of it), %llu entry writes; %zu entries whole in memory\n", sp.checkpoints,
               sp.seconds, sp.written, fr_join_cached_count(j));
    printf("memory: %.2f GB resident for %ld pending clicks (%.0f bytes each)\n", (rss1 - rss0) / 1048576.0, n,
           (rss1 - rss0) * 1024.0 / (double)n);
    if (sp.ck) {
        long long disk = dir_bytes(dir);
        printf("disk: %.2f GB in %s (%.0f bytes per pending click; WAL and SST files as RocksDB left them)\n",
               disk / 1073741824.0, dir, (double)disk / (double)n);
    }
    a = now();
    long nconv = 0;
    for (long i = 0; i < n; i += 10, nconv++) {
        ev.id_len = (uint32_t)snprintf(ev.id, sizeof ev.id, "i-%016lx", (unsigned long)i * 0x9e3779b97f4a7c15ul);
        ev.type = FR_EV_CONVERSION;
        ev.ts = t0 + n + 3600000LL;
        if (fr_join_add(j, &ev, sink, NULL) != 0) {
            fprintf(stderr, "bench: %s\n", fr_join_error(j) ? fr_join_error(j) : "out of memory");
            return 2;
        }
        if ((nconv & 1023) == 0) maybe_spill(j, &sp, 0);
    }
    b = now();
    printf("phase 2: %ld conversions in %.2f s: %.0f events/s\n", nconv, b - a, nconv / (b - a));
    if (sp.ck)
        printf("  %lu checkpoints so far, %zu entries whole in memory, resident %.2f GB\n", sp.checkpoints,
               fr_join_cached_count(j), rss_kb() / 1048576.0);
    a = now();
    unsigned long long e0 = emitted;
    /* In small steps (the phase-1 clicks span only N ms of event time, so their window copies
     * all fall due within minutes), with the daemon's checkpoint-and-spill between them: one jump
     * past everything would read every entry back and hold it, dirty, until the end. */
    const long long t_end = t0 + n + 3600000LL + c.attribution_window_ms + 1;
    enum { STEPS = 50000 };
    for (int step = 1; step <= STEPS; step++) {
        check_advance(j, t0 + n + (t_end - t0 - n) * step / STEPS);
        maybe_spill(j, &sp, 0);
        if (step % (STEPS / 10) == 0)
            printf("  phase 3: %d%%, %llu samples, %.1f s, %zu entries left, %zu whole in memory\n",
                   step / (STEPS / 100), emitted - e0, now() - a, fr_join_entry_count(j), fr_join_cached_count(j));
    }
    check_advance(j, INT64_MAX);
    b = now();
    printf("phase 3: flush, %llu samples emitted in %.1f s: %.0f samples/s; entries left %zu\n", emitted - e0, b - a,
           (double)(emitted - e0) / (b - a), fr_join_entry_count(j));
    printf("peak resident: %.2f GB\n", rss_kb() / 1048576.0);
    fr_join_free(j);
    fr_ckpt_close(sp.ck);
    return 0;
}
