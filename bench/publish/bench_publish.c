/* Publish and checkpoint benchmark (not a test): see run.sh. Prints one line per measurement. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fr_ckpt.h"
#include "fr_model.h"
#include "fr_publish.h"
#include "fr_pubq.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static fr_model *model(void)
{
    fr_model_config c;
    fr_model_config_defaults(&c);
    c.n_cat = 8;
    c.n_num = 1;
    c.n_multi = 1;
    c.n_scenarios = 4;
    char err[256];
    fr_model *m = fr_model_create(&c, err, sizeof err);
    if (!m) {
        fprintf(stderr, "model: %s\n", err);
        exit(1);
    }
    return m;
}

/* Trains on fresh keys until about `rows` rows are dirty (9 new rows per sample). */
static void train_new_rows(fr_model *m, size_t rows, uint64_t *salt)
{
    const fr_model_config *c = fr_model_get_config(m);
    size_t n = rows / 9 + 1;
    fr_sample *s = calloc(n, sizeof *s);
    for (size_t i = 0; i < n; i++) {
        for (int t = 0; t < c->n_cat; t++) s[i].f.cat[t] = mix(++*salt) | 1;
        s[i].f.multi_len[0] = 1;
        s[i].f.multi[0][0] = mix(++*salt) | 1;
        s[i].scenario = (int32_t)(i % 4);
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

int main(int argc, char **argv)
{
    const char *host = argc > 1 ? argv[1] : "127.0.0.1";
    int port = argc > 2 ? atoi(argv[2]) : 16379;
    const char *dir = argc > 3 ? argv[3] : "/tmp/freshet-bench-ckpt";
    char err[512];
    uint64_t salt = 1;

    /* 1. full pushes of 100k rows, synchronous, and the hand-over to the publisher thread */
    fr_model *m = model();
    train_new_rows(m, 100000, &salt);
    size_t rows = 0;
    fr_model_foreach_row(m, 0, count_cb, &rows);
    for (int rep = 0; rep < 3; rep++) {
        fr_publisher *p = fr_publish_open(host, port, "freshet-bench", 2, NULL, err, sizeof err);
        if (!p) {
            fprintf(stderr, "%s\n", err);
            return 1;
        }
        fr_publish_info info = {0};
        uint64_t v;
        if (fr_publish_push(p, m, &info, &v, err, sizeof err) != 0) {
            fprintf(stderr, "%s\n", err);
            return 1;
        }
        fr_publish_stats st;
        fr_publish_last_stats(p, &st);
        printf("push full rows=%zu seconds=%.3f rows_per_s=%.0f\n", st.rows, st.seconds, (double)st.rows / st.seconds);
        fr_publish_close(p);
    }
    for (int rep = 0; rep < 3; rep++) {
        fr_pubq *q = fr_pubq_open(host, port, "freshet-bench", 2, NULL, fr_model_get_config(m), NULL, NULL, err, sizeof err);
        double t0 = now();
        if (!q || fr_pubq_submit(q, m, err, sizeof err) != 0) {
            fprintf(stderr, "%s\n", err);
            return 1;
        }
        double t1 = now();
        fr_pubq_flush(q, 60);
        double t2 = now();
        printf("pubq handover rows=%zu ms=%.1f (learner thread)  push_done_ms=%.1f rows_per_s=%.0f\n", rows,
               (t1 - t0) * 1e3, (t2 - t0) * 1e3, (double)rows / (t2 - t0));
        fr_pubq_close(q, 5);
    }
    fr_model_free(m);

    /* 2. checkpoint time against dirty rows */
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) return 1;
    fr_ckpt *ck = fr_ckpt_open(dir, err, sizeof err);
    if (!ck) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    m = model();
    size_t sizes[] = {1000, 10000, 100000, 300000};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        for (int rep = 0; rep < 3; rep++) {
            train_new_rows(m, sizes[i], &salt);
            size_t dirty = 0;
            fr_model_foreach_row(m, FR_DIRTY_CHECKPOINT, count_cb, &dirty);
            double t0 = now();
            fr_ckpt_batch *b = fr_ckpt_begin(ck);
            fr_ckpt_put_model(b, m);
            double t1 = now();
            if (fr_ckpt_commit(b, err, sizeof err) != 0) {
                fprintf(stderr, "%s\n", err);
                return 1;
            }
            double t2 = now();
            fr_model_clear_dirty(m, 0);
            printf("checkpoint dirty_rows=%zu put_ms=%.1f commit_ms=%.1f total_ms=%.1f\n", dirty, (t1 - t0) * 1e3,
                   (t2 - t1) * 1e3, (t2 - t0) * 1e3);
        }
    }
    fr_model_free(m);
    fr_ckpt_close(ck);
    return 0;
}
