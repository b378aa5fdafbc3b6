/* Embedding lifecycle benchmark (not a test): see run.sh and README.md. Modes:
 *   memory                      bytes per row against the raw payload, 1k..1M rows, dim 8/16/32,
 *                               embeddings under Adagrad and under FTRL (one state float per
 *                               coordinate, or two)
 *   ckpt DIR                    checkpoint time against dirty rows (1k..1M) in a 1M-row model,
 *                               without and with admission filters
 *   fresh HOST PORT DIR RATE SECONDS EVERY_S
 *                               freshness under a steady paced load: event time of a trained update
 *                               to the end of the push that carries it (rows are written before the
 *                               flip, so the row was readable at or before that moment)
 * One line per measurement. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fr_admit.h"
#include "fr_ckpt.h"
#include "fr_model.h"
#include "fr_pubq.h"

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t mix(uint64_t z)
{
    z += 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static fr_model *model_opt(int n_cat, int dim, int emb_optimizer)
{
    fr_model_config c;
    fr_model_config_defaults(&c);
    c.emb_optimizer = emb_optimizer;
    c.n_cat = n_cat;
    c.n_num = 1;
    c.n_multi = 1;
    c.n_scenarios = 4;
    c.emb_dim = dim;
    char err[256];
    fr_model *m = fr_model_create(&c, err, sizeof err);
    if (!m) {
        fprintf(stderr, "model: %s\n", err);
        exit(1);
    }
    return m;
}

static fr_model *model(int n_cat, int dim) { return model_opt(n_cat, dim, 0); }

static void die(const char *what, const char *err)
{
    fprintf(stderr, "%s: %s\n", what, err);
    exit(1);
}

/* ---- memory ---------------------------------------------------------------------------------- */

static void bench_memory(void)
{
    int dims[] = {8, 16, 32};
    size_t sizes[] = {1000, 10000, 100000, 1000000};
    for (size_t k = 0; k < 6; k++) {
        size_t d = k % 3;
        int ftrl = k >= 3;
        fr_model *m = model_opt(1, dims[d], ftrl);
        float *w = calloc((size_t)dims[d], sizeof *w);
        size_t have = 0;
        for (size_t i = 0; i < 4; i++) {
            for (; have < sizes[i]; have++)
                if (fr_model_put_row(m, 0, mix(have) | 1, 1, w, NULL) != 0) die("put_row", "out of memory");
            fr_row_stats st;
            fr_model_row_stats(m, &st);
            double per = (double)st.row_bytes / (double)st.rows;
            /* key, weights, optimizer state (Adagrad: accumulators; FTRL: z and n), version */
            double raw80 = 8 + 4.0 * dims[d] * (ftrl ? 3 : 2) + 8;
            printf("memory opt=%s dim=%d rows=%" PRIu64 " bytes_per_row=%.1f raw=%.0f ratio=%.2f raw_with_stamp=%.0f "
                   "ratio_with_stamp=%.2f\n",
                   ftrl ? "ftrl" : "adagrad", dims[d], st.rows, per, raw80, per / raw80, raw80 + 4,
                   per / (raw80 + 4));
        }
        free(w);
        fr_model_free(m);
    }
}

/* ---- checkpoint ------------------------------------------------------------------------------ */

/* Trains samples whose 9 embedded keys are keys[first .. first + rows) (key j = mix(j) | 1). */
static void train_keys(fr_model *m, uint64_t first, size_t rows)
{
    const fr_model_config *c = fr_model_get_config(m);
    size_t n = (rows + 8) / 9;
    fr_sample *s = calloc(n, sizeof *s);
    uint64_t j = first;
    for (size_t i = 0; i < n; i++) {
        for (int t = 0; t < c->n_cat; t++) s[i].f.cat[t] = mix(j++) | 1;
        s[i].f.multi_len[0] = 1;
        s[i].f.multi[0][0] = mix(j++) | 1;
        s[i].scenario = (int32_t)(i % 4);
        s[i].ts = 1764300000000LL + (int64_t)i;
        s[i].label[0] = (float)(i % 20 == 0);
        for (int t = 0; t < FR_NTASKS; t++) s[i].weight[t] = s[i].has_label[t] = 1;
    }
    fr_model_train(m, s, (int)n, NULL);
    free(s);
}

static int count_cb(const fr_row_view *r, void *ctx)
{
    (void)r;
    (*(size_t *)ctx)++;
    return 0;
}

static void checkpoint(fr_ckpt *ck, fr_model *m, double *put_ms, double *commit_ms, size_t *bytes)
{
    char err[512];
    double t0 = mono();
    fr_ckpt_batch *b = fr_ckpt_begin(ck);
    if (!b || fr_ckpt_put_model(b, m) != 0) die("checkpoint", "put_model failed");
    double t1 = mono();
    fr_ckpt_batch_stats st;
    fr_ckpt_batch_get_stats(b, &st);
    if (fr_ckpt_commit(b, err, sizeof err) != 0) die("commit", err);
    double t2 = mono();
    fr_model_clear_dirty(m, FR_DIRTY_CHECKPOINT);
    *put_ms = (t1 - t0) * 1e3;
    *commit_ms = (t2 - t1) * 1e3;
    *bytes = st.bytes;
}

static void bench_ckpt(const char *dir, int admission)
{
    char err[512], cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) die("rm", dir);
    fr_ckpt *ck = fr_ckpt_open(dir, err, sizeof err);
    if (!ck) die("open", err);
    fr_model *m = model(8, 8);
    if (admission)
        for (uint32_t t = 0; t < fr_model_table_count(m); t++) {
            fr_row_policy p;
            fr_row_policy_defaults(&p);
            p.admit_after = 2; /* each key below is sighted twice: rows exist, counters changed */
            if (fr_model_set_row_policy(m, t, &p, err, sizeof err) != 0) die("policy", err);
        }
    const size_t base = 1000000;
    train_keys(m, 0, base);
    if (admission) train_keys(m, 0, base);
    double put, commit;
    size_t bytes;
    checkpoint(ck, m, &put, &commit, &bytes);
    size_t total = 0;
    fr_model_foreach_row(m, 0, count_cb, &total);
    printf("ckpt admission=%d base_rows=%zu first_checkpoint put_ms=%.0f commit_ms=%.0f bytes=%zu\n", admission, total,
           put, commit, bytes);
    size_t sizes[] = {1000, 10000, 100000, 1000000};
    uint64_t fresh = 18 * base; /* key j lands in table j % 9: every offset is a multiple of 9 */
    for (size_t i = 0; i < 4; i++) {
        for (int rep = 0; rep < 3; rep++) {
            /* dirty rows: existing keys retrained; with admission, also as many new keys sighted once
             * (no row, but their sketch counters change: the chunks the checkpoint must write) */
            train_keys(m, (uint64_t)rep * 9 * 1111, sizes[i]);
            if (admission) {
                train_keys(m, fresh, sizes[i]);
                fresh += (sizes[i] + 8) / 9 * 9;
            }
            size_t dirty = 0;
            fr_model_foreach_row(m, FR_DIRTY_CHECKPOINT, count_cb, &dirty);
            size_t chunks = 0;
            for (uint32_t t = 0; t < fr_model_table_count(m); t++)
                if (fr_model_admit(m, t)) {
                    const uint32_t *d;
                    chunks += fr_admit_dirty(fr_model_admit(m, t), &d);
                }
            checkpoint(ck, m, &put, &commit, &bytes);
            printf("ckpt admission=%d dirty_rows=%zu sketch_chunks=%zu put_ms=%.1f commit_ms=%.1f total_ms=%.1f "
                   "batch_bytes=%zu\n",
                   admission, dirty, chunks, put, commit, put + commit, bytes);
        }
    }
    fr_model_free(m);
    fr_ckpt_close(ck);
    if (system(cmd) != 0) die("rm", dir);
}

/* ---- freshness ------------------------------------------------------------------------------- */

typedef struct {
    uint64_t version; /* model version after the mini-batch that trained the sample */
    int64_t ts;       /* the sample's event time, ms (wall clock at its scheduled moment) */
} trained;

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

typedef struct {
    fr_pubq *q;
    int64_t *pub_ms; /* per version: wall ms when a finished push first covered it, -1 before */
    uint64_t n_versions, seen;
} pub_watch;

/* Notes the wall time at which the publisher thread reports a push of a newer version: every
 * version up to it is then in Redis. */
static void poll_pub(pub_watch *w)
{
    fr_pubq_stats st;
    fr_pubq_get_stats(w->q, &st);
    if (st.last_version <= w->seen) return;
    int64_t t = wall_ms();
    for (uint64_t v = w->seen + 1; v <= st.last_version && v < w->n_versions; v++) w->pub_ms[v] = t;
    w->seen = st.last_version;
}

static void bench_fresh(const char *host, int port, const char *dir, double rate, double seconds, double every)
{
    char err[512], cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) die("rm", dir);
    fr_ckpt *ck = fr_ckpt_open(dir, err, sizeof err);
    if (!ck) die("open", err);
    fr_model *m = model(8, 8);
    for (uint32_t t = 0; t < fr_model_table_count(m); t++) {
        fr_row_policy p;
        fr_row_policy_defaults(&p);
        if (fr_model_set_row_policy(m, t, &p, err, sizeof err) != 0) die("policy", err); /* stamps, as the daemon */
    }
    const fr_model_config *c = fr_model_get_config(m);
    fr_pubq *q = fr_pubq_open(host, port, "freshet-lcbench", 2, NULL, c, NULL, &(fr_log){fr_log_stderr_fn, NULL}, err,
                              sizeof err);
    if (!q) die("pubq", err);
    size_t n = (size_t)(rate * seconds);
    int bs = c->batch_size;
    trained *rec = calloc(n, sizeof *rec);
    fr_sample *batch = calloc((size_t)bs, sizeof *batch);
    pub_watch w = {.q = q, .n_versions = n / (size_t)bs + 16};
    w.pub_ms = malloc(w.n_versions * sizeof *w.pub_ms);
    if (!rec || !batch || !w.pub_ms) die("bench", "out of memory");
    for (uint64_t v = 0; v < w.n_versions; v++) w.pub_ms[v] = -1;
    int nb = 0;
    size_t first_of_batch = 0, ckpts = 0;
    double ckpt_ms = 0, start = mono(), next_ckpt = start + every;
    uint64_t rng = 12345;
    const uint64_t vocab = 200000; /* per field: new rows at first and updates of known rows, mixed */
    for (size_t i = 0; i < n; i++) {
        double target = start + (double)i / rate;
        for (double t; (t = mono()) < target;) {
            poll_pub(&w);
            if (target - t > 0.0005) nanosleep(&(struct timespec){0, 200000}, NULL);
        }
        fr_sample *s = &batch[nb++];
        memset(s, 0, sizeof *s);
        for (int k = 0; k < c->n_cat; k++) s->f.cat[k] = mix((uint64_t)k << 40 | (mix(rng++) % vocab)) | 1;
        s->f.multi_len[0] = 1;
        s->f.multi[0][0] = mix((uint64_t)99 << 40 | (mix(rng++) % vocab)) | 1;
        s->ts = wall_ms();
        s->label[0] = (float)(mix(rng++) % 20 == 0);
        for (int t = 0; t < FR_NTASKS; t++) s->weight[t] = s->has_label[t] = 1;
        if (nb == bs) {
            fr_model_train(m, batch, nb, NULL);
            for (int b = 0; b < nb; b++) rec[first_of_batch + (size_t)b] = (trained){fr_model_version(m), batch[b].ts};
            first_of_batch += (size_t)nb;
            nb = 0;
        }
        if (mono() >= next_ckpt) {
            /* as the daemon: checkpoint, then hand the changed rows to the publisher thread */
            double p0, p1;
            size_t bytes;
            checkpoint(ck, m, &p0, &p1, &bytes);
            ckpt_ms += p0 + p1;
            ckpts++;
            if (fr_pubq_submit(q, m, err, sizeof err) != 0) die("submit", err);
            next_ckpt += every;
        }
        poll_pub(&w);
    }
    double p0, p1;
    size_t bytes;
    checkpoint(ck, m, &p0, &p1, &bytes);
    if (fr_pubq_submit(q, m, err, sizeof err) != 0) die("submit", err);
    uint64_t last = fr_model_version(m);
    for (double t0 = mono(); w.seen < last && mono() - t0 < 30;) {
        poll_pub(&w);
        nanosleep(&(struct timespec){0, 200000}, NULL);
    }
    int64_t *lat = malloc(first_of_batch * sizeof *lat);
    size_t k = 0;
    for (size_t i = 0; i < first_of_batch; i++)
        if (rec[i].version < w.n_versions && w.pub_ms[rec[i].version] >= 0)
            lat[k++] = w.pub_ms[rec[i].version] - rec[i].ts;
    qsort(lat, k, sizeof *lat, cmp_i64);
    fr_pubq_stats st;
    fr_pubq_get_stats(q, &st);
    double elapsed = mono() - start;
    printf("fresh rate=%.0f/s achieved=%.0f/s seconds=%.0f checkpoint_every_s=%.1f samples=%zu measured=%zu "
           "p50_ms=%" PRId64 " p99_ms=%" PRId64 " max_ms=%" PRId64 " pushes=%" PRIu64 " checkpoints=%zu "
           "checkpoint_avg_ms=%.1f rows=%zu\n",
           rate, (double)n / elapsed, seconds, every, first_of_batch, k, k ? lat[k / 2] : -1,
           k ? lat[(size_t)((double)k * 0.99)] : -1, k ? lat[k - 1] : -1, st.pushes, ckpts,
           ckpts ? ckpt_ms / (double)ckpts : 0, (size_t)fr_model_row_count(m, 1));
    free(lat);
    free(rec);
    free(batch);
    free(w.pub_ms);
    fr_pubq_close(q, 5);
    fr_model_free(m);
    fr_ckpt_close(ck);
    if (system(cmd) != 0) die("rm", dir);
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "memory") == 0) {
        bench_memory();
        return 0;
    }
    if (argc >= 3 && strcmp(argv[1], "ckpt") == 0) {
        bench_ckpt(argv[2], 0);
        bench_ckpt(argv[2], 1);
        return 0;
    }
    if (argc >= 8 && strcmp(argv[1], "fresh") == 0) {
        bench_fresh(argv[2], atoi(argv[3]), argv[4], atof(argv[5]), atof(argv[6]), atof(argv[7]));
        return 0;
    }
    fprintf(stderr, "usage: bench_lifecycle memory | ckpt DIR | fresh HOST PORT DIR RATE SECONDS EVERY_S\n");
    return 2;
}
