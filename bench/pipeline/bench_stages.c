/* Throughput of each pipeline stage on one JSON Lines file, without Kafka, RocksDB or Redis:
 *   decode          fr_event_decode on every line
 *   decode protobuf fr_event_decode_pb on every line translated to Protobuf beforehand (Confluent
 *                   framing, as a topic with "format": "protobuf" carries it; the translation is
 *                   not timed)
 *   decode + join   the same, fed to the joiner (watermark = largest event time so far, one source)
 *   learn           fr_model_train on the samples the join emitted, in mini-batches (one thread)
 * The file is read into memory first so disk speed does not count. Usage:
 *   bench_stages FILE [CONFIG]     (CONFIG: a daemon config; default: the built-in defaults) */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fr_config.h"
#include "fr_event.h"
#include "fr_event_pb.h"
#include "fr_join.h"
#include "fr_model.h"

typedef struct {
    fr_sample *s;
    size_t n, cap;
    int failed;
} sample_sink;

static void keep_sample(const fr_sample *s, void *ctx)
{
    sample_sink *k = ctx;
    /* MATURED samples only score and feed the helper heads; they never train the model. */
    if (s->kind == FR_SAMPLE_MATURED || k->failed) return;
    if (k->n == k->cap) {
        size_t cap = k->cap ? 2 * k->cap : 1 << 16;
        fr_sample *ns = realloc(k->s, cap * sizeof *ns);
        if (!ns) {
            k->failed = 1;
            return;
        }
        k->s = ns;
        k->cap = cap;
    }
    k->s[k->n++] = *s;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE [CONFIG]\n", argv[0]);
        return 2;
    }
    char err[512];
    fr_config cfg;
    fr_config_defaults(&cfg);
    if (argc > 2 && fr_config_load(&cfg, argv[2], err, sizeof err) != 0) {
        fprintf(stderr, "config: %s\n", err);
        return 1;
    }
    FILE *f = fopen(argv[1], "rb");
    if (!f) {
        perror(argv[1]);
        return 1;
    }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    rewind(f);
    char *buf = malloc((size_t)size + 1);
    if (!buf || fread(buf, 1, (size_t)size, f) != (size_t)size) {
        fprintf(stderr, "cannot read %s\n", argv[1]);
        return 1;
    }
    fclose(f);
    buf[size] = '\0';

    fr_event ev;
    char why[320];
    uint64_t lines = 0, bad = 0;
    double t0 = now_s();
    for (char *p = buf, *e; *p; p = e + 1) {
        e = strchr(p, '\n');
        if (!e) e = buf + size;
        lines++;
        bad += fr_event_decode(&cfg.schema, p, (size_t)(e - p), &ev, why, sizeof why) != FR_REJECT_NONE;
        if (e == buf + size) break;
    }
    double t_decode = now_s() - t0;

    /* the same lines as Protobuf messages, one buffer, offsets in pb_off */
    size_t *pb_off = malloc(((size_t)lines + 1) * sizeof *pb_off), pb_cap = (size_t)size + 1, pb_len = 0;
    uint8_t *pb_buf = malloc(pb_cap);
    uint64_t pb_n = 0, pb_bad = 0;
    if (!pb_off || !pb_buf) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    for (char *p = buf, *e; *p; p = e + 1) {
        e = strchr(p, '\n');
        if (!e) e = buf + size;
        uint8_t *m;
        size_t n;
        if (fr_event_pb_from_json(p, (size_t)(e - p), 1, &m, &n, why, sizeof why) == 0) {
            if (pb_len + n > pb_cap) {
                pb_cap = 2 * (pb_len + n);
                uint8_t *nb = realloc(pb_buf, pb_cap);
                if (!nb) {
                    fprintf(stderr, "out of memory\n");
                    return 1;
                }
                pb_buf = nb;
            }
            memcpy(pb_buf + pb_len, m, n);
            pb_off[pb_n++] = pb_len;
            pb_len += n;
            free(m);
        }
        if (e == buf + size) break;
    }
    pb_off[pb_n] = pb_len;
    t0 = now_s();
    for (uint64_t i = 0; i < pb_n; i++)
        pb_bad += fr_event_decode_pb(&cfg.schema, (const char *)pb_buf + pb_off[i], pb_off[i + 1] - pb_off[i], &ev, NULL,
                                     why, sizeof why) != FR_REJECT_NONE;
    double t_decode_pb = now_s() - t0;
    free(pb_buf);
    free(pb_off);

    fr_join_config jc = {.click_window_ms = cfg.click_window_ms,
                         .attribution_window_ms = cfg.attribution_window_ms,
                         .policy = (fr_policy_id)cfg.join_policy,
                         .observation_window_ms = cfg.observation_window_ms,
                         .real_negative_window_ms = cfg.real_negative_window_ms};
    if (jc.policy == FR_POLICY_ORACLE) jc.policy = FR_POLICY_WAIT; /* needs the future: not here */
    fr_join *j = fr_join_create(&jc);
    sample_sink sink = {0};
    int64_t wm = INT64_MIN;
    t0 = now_s();
    for (char *p = buf, *e; *p; p = e + 1) {
        e = strchr(p, '\n');
        if (!e) e = buf + size;
        if (fr_event_decode(&cfg.schema, p, (size_t)(e - p), &ev, why, sizeof why) == FR_REJECT_NONE) {
            if (fr_join_add(j, &ev, keep_sample, &sink) != 0) {
                fprintf(stderr, "join: out of memory\n");
                return 1;
            }
            if (ev.ts > wm) {
                wm = ev.ts;
                fr_join_advance(j, wm, keep_sample, &sink);
            }
        }
        if (e == buf + size) break;
    }
    fr_join_advance(j, INT64_MAX, keep_sample, &sink);
    double t_join = now_s() - t0;
    if (sink.failed) {
        fprintf(stderr, "out of memory keeping samples\n");
        return 1;
    }

    fr_model *m = fr_model_create(&cfg.model, err, sizeof err);
    if (!m) {
        fprintf(stderr, "model: %s\n", err);
        return 1;
    }
    const int bs = cfg.model.batch_size;
    float (*preds)[FR_NTASKS] = malloc((size_t)bs * sizeof *preds);
    t0 = now_s();
    size_t trained = 0;
    for (; trained + (size_t)bs <= sink.n; trained += (size_t)bs) fr_model_train(m, sink.s + trained, bs, preds);
    double t_learn = now_s() - t0;

    printf("input: %" PRIu64 " lines (%" PRIu64 " rejected), %.1f MB, policy %s\n", lines, bad, (double)size / 1e6,
           fr_policy_name(jc.policy));
    printf("%-16s %12s %12s\n", "stage", "seconds", "per second");
    printf("%-16s %12.2f %12.0f events\n", "decode", t_decode, (double)lines / t_decode);
    printf("%-16s %12.2f %12.0f events (%" PRIu64 " messages, %" PRIu64 " rejected, %.1f MB)\n", "decode protobuf",
           t_decode_pb, (double)pb_n / t_decode_pb, pb_n, pb_bad, (double)pb_len / 1e6);
    printf("%-16s %12.2f %12.0f events\n", "decode + join", t_join, (double)lines / t_join);
    printf("%-16s %12.2f %12.0f samples (%zu samples, batch %d)\n", "learn", t_learn, (double)trained / t_learn,
           trained, bs);
    fr_model_free(m);
    fr_join_free(j);
    free(preds);
    free(sink.s);
    free(buf);
    return 0;
}
