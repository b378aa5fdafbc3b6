/* Serving benchmark (not a test): see run.sh. Publishes a model, then scores through the public
 * serving API one impression at a time and in batches of candidate ads, printing latency
 * percentiles and impressions/s. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "fr_model.h"
#include "fr_publish.h"
#include "freshet_serving.h"

enum { ADS = 5000, REQUESTS = 400, KEYS_PER_IMPRESSION = 13 /* 8 categorical + 5 recent ads */ };
static uint64_t USERS = 100000;

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

/* The demo's shape: scenario, 7 more categorical fields, one numeric, recent ads. */
static void features(uint64_t user, uint64_t ad, fr_features *f)
{
    memset(f, 0, sizeof *f);
    f->cat[0] = 1 + user % 4;             /* scenario */
    f->cat[1] = mix(user) | 1;            /* user */
    f->cat[2] = mix(user * 7 + 1) % 8 + 10; /* age band */
    f->cat[3] = mix(user * 7 + 2) % 3 + 20; /* device */
    f->cat[4] = mix(ad + (1ULL << 40)) | 1; /* ad */
    f->cat[5] = ad % 300 + 100;           /* advertiser */
    f->cat[6] = ad % 20 + 30;             /* category */
    f->cat[7] = 40 + user % 24;           /* hour */
    f->num[0] = 0.5f;
    f->multi_len[0] = 5;
    for (int k = 0; k < 5; k++) f->multi[0][k] = mix((user * 5 + (uint64_t)k) % ADS + (1ULL << 40)) | 1;
}

/* f as the public API's impression, key by key (as a client that hashes its own values). */
static void to_impression(const fr_features *f, int32_t scenario, freshet_impression *imp)
{
    freshet_impression_clear(imp);
    freshet_impression_set_scenario(imp, scenario);
    for (int t = 0; t < FR_MAX_CAT; t++) freshet_impression_set_key(imp, t, f->cat[t]);
    for (int t = 0; t < FR_MAX_NUM; t++) freshet_impression_set_number(imp, t, f->num[t]);
    for (int j = 0; j < FR_MAX_MULTI; j++) freshet_impression_set_multi(imp, j, f->multi[j], f->multi_len[j]);
}

/* INFO memory's used_memory of the benchmark's Redis, in bytes (-1: unreadable). */
static long long used_memory(redisContext *c)
{
    redisReply *r = redisCommand(c, "INFO memory");
    long long v = -1;
    const char *p = r && r->type == REDIS_REPLY_STRING ? strstr(r->str, "used_memory:") : NULL;
    if (p) v = atoll(p + strlen("used_memory:"));
    if (r) freeReplyObject(r);
    return v;
}

/* Removes the benchmark's keys (an earlier run's), so used_memory's growth is this run's rows. */
static void unlink_prefix(redisContext *c)
{
    char cursor[32] = "0";
    do {
        redisReply *r = redisCommand(c, "SCAN %s MATCH freshet-servebench:* COUNT 1000", cursor);
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
            if (r) freeReplyObject(r);
            return;
        }
        snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
        for (size_t i = 0; i < r->element[1]->elements; i++) {
            redisReply *u = redisCommand(c, "UNLINK %b", r->element[1]->element[i]->str, r->element[1]->element[i]->len);
            if (u) freeReplyObject(u);
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
}

/* How many row hashes of the prefix are in each encoding (OBJECT ENCODING). */
static void encodings(redisContext *c, size_t *compact, size_t *table)
{
    char cursor[32] = "0";
    *compact = *table = 0;
    do {
        redisReply *r = redisCommand(c, "SCAN %s MATCH freshet-servebench:emb:* COUNT 1000", cursor);
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
            if (r) freeReplyObject(r);
            return;
        }
        snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
        for (size_t i = 0; i < r->element[1]->elements; i++) {
            redisReply *e = redisCommand(c, "OBJECT ENCODING %b", r->element[1]->element[i]->str,
                                         r->element[1]->element[i]->len);
            if (e && e->type == REDIS_REPLY_STRING) {
                if (strcmp(e->str, "hashtable") == 0) ++*table;
                else ++*compact;
            }
            if (e) freeReplyObject(e);
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
}

/* HMGET calls and the microseconds Redis spent in them since the last CONFIG RESETSTAT: the server's
 * side of a request, which CPU contention on a shared client machine moves less than wall time. */
static void hmget_stats(redisContext *c, long long *calls, long long *usec)
{
    redisReply *r = redisCommand(c, "INFO commandstats");
    const char *p = r && r->type == REDIS_REPLY_STRING ? strstr(r->str, "cmdstat_hmget:calls=") : NULL;
    *calls = *usec = 0;
    if (p) {
        *calls = atoll(p + strlen("cmdstat_hmget:calls="));
        const char *u = strstr(p, "usec=");
        if (u) *usec = atoll(u + 5);
    }
    if (r) freeReplyObject(r);
}

static void reset_stats(redisContext *c)
{
    redisReply *r = redisCommand(c, "CONFIG RESETSTAT");
    if (r) freeReplyObject(r);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    const char *host = argc > 1 ? argv[1] : "127.0.0.1";
    int port = argc > 2 ? atoi(argv[2]) : 16379;
    if (argc > 3) USERS = strtoull(argv[3], NULL, 10);
    char err[512];
    redisContext *rc0 = redisConnect(host, port);
    if (!rc0 || rc0->err) return fprintf(stderr, "redis %s:%d unreachable\n", host, port), 1;
    unlink_prefix(rc0);
    long long mem0 = used_memory(rc0);
    fr_model_config c;
    fr_model_config_defaults(&c);
    c.n_cat = 8, c.n_num = 1, c.n_multi = 1, c.n_scenarios = 4;
    fr_model *m = fr_model_create(&c, err, sizeof err);
    if (!m) return fprintf(stderr, "model: %s\n", err), 1;
    /* every user and ad gets a row */
    enum { CHUNK = 4096 };
    fr_sample *s = calloc(CHUNK, sizeof *s);
    for (uint64_t i = 0; i < USERS; i += CHUNK) {
        int n = 0;
        for (uint64_t u = i; u < i + CHUNK && u < USERS; u++, n++) {
            memset(&s[n], 0, sizeof s[n]);
            features(u, u % ADS, &s[n].f);
            s[n].scenario = (int32_t)(u % 4);
            s[n].label[0] = (float)(u % 20 == 0);
            for (int t = 0; t < FR_NTASKS; t++) s[n].weight[t] = s[n].has_label[t] = 1;
        }
        fr_model_train(m, s, n, NULL);
    }
    free(s);
    fr_publisher *p = fr_publish_open(host, port, "freshet-servebench", 2, NULL, err, sizeof err);
    if (!p) return fprintf(stderr, "publish: %s\n", err), 1;
    uint64_t version;
    if (fr_publish_push(p, m, NULL, &version, err, sizeof err) != 0) return fprintf(stderr, "push: %s\n", err), 1;
    size_t rows = 0;
    for (uint32_t t = 0; t < fr_model_table_count(m); t++) rows += fr_model_row_count(m, t);
    long long mem1 = used_memory(rc0);
    size_t compact, table;
    encodings(rc0, &compact, &table);
    size_t payload = 8 + 12 + 4 * (size_t)c.emb_dim;
    printf("published %zu rows (emb_dim %d), version %" PRIu64 ": used_memory +%lld bytes, %.1f B/row against a "
           "%zu-byte payload (%.2fx); row hashes: %zu compact (listpack/ziplist), %zu hashtable\n",
           rows, c.emb_dim, version, mem1 - mem0, (double)(mem1 - mem0) / (double)rows, payload,
           (double)(mem1 - mem0) / (double)rows / (double)payload, compact, table);

    freshet_serving *sv = freshet_serving_open(host, port, "freshet-servebench", err, sizeof err);
    if (!sv || freshet_serving_load(sv, err, sizeof err) != 0) return fprintf(stderr, "serving: %s\n", err), 1;
    const int sizes[] = {1, 10, 100, 500};
    fr_features f;
    freshet_impression *imp[500];
    for (int i = 0; i < 500; i++) imp[i] = freshet_impression_new();
    freshet_scores *out = calloc(500, sizeof *out);
    double *lat = calloc(REQUESTS, sizeof *lat);
    printf("%-10s %-8s %12s %12s %12s %16s %16s %16s %16s %12s %14s\n", "mode", "batch", "p50 ms", "p99 ms",
           "requests/s", "impressions/s", "lookups/s", "one-by-one p50", "one-by-one imp/s", "HMGET/req",
           "redis us/req");
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        int n = sizes[si];
        double one_by_one = 0, one_by_one_rate = 0;
        for (int pass = 0; pass < 2; pass++) { /* pass 0: one call per impression; pass 1: one batch */
            if (pass == 0 && n == 1) continue;
            if (pass == 1) reset_stats(rc0);
            double t0 = now();
            for (int q = 0; q < REQUESTS; q++) {
                uint64_t user = mix((uint64_t)q * 31 + (uint64_t)n) % USERS;
                for (int i = 0; i < n; i++) {
                    features(user, mix(user + (uint64_t)i * 977) % ADS, &f);
                    to_impression(&f, (int32_t)(user % 4), imp[i]);
                }
                double a = now();
                int rc = 0;
                if (pass == 0)
                    for (int i = 0; i < n && rc == 0; i++) rc = freshet_serving_score(sv, imp[i], &out[i], err, sizeof err);
                else
                    rc = freshet_serving_score_batch(sv, (const freshet_impression *const *)imp, n, out, err, sizeof err);
                if (rc != 0) return fprintf(stderr, "score: %s\n", err), 1;
                lat[q] = now() - a;
            }
            double total = now() - t0;
            qsort(lat, REQUESTS, sizeof *lat, cmp_double);
            if (pass == 0) {
                one_by_one = lat[REQUESTS / 2];
                one_by_one_rate = REQUESTS * (double)n / total;
                continue;
            }
            char obo[32] = "-", obr[32] = "-";
            if (one_by_one > 0) snprintf(obo, sizeof obo, "%.3f", one_by_one * 1e3);
            if (one_by_one_rate > 0) snprintf(obr, sizeof obr, "%.0f", one_by_one_rate);
            long long calls, usec;
            hmget_stats(rc0, &calls, &usec);
            printf("%-10s %-8d %12.3f %12.3f %12.0f %16.0f %16.0f %16s %16s %12.1f %14.1f\n", "batch", n,
                   lat[REQUESTS / 2] * 1e3, lat[REQUESTS * 99 / 100] * 1e3, REQUESTS / total,
                   REQUESTS * (double)n / total, REQUESTS * (double)n / total * KEYS_PER_IMPRESSION, obo, obr,
                   (double)calls / REQUESTS, (double)usec / REQUESTS);
        }
    }
    for (int i = 0; i < 500; i++) freshet_impression_free(imp[i]);
    free(out), free(lat);
    freshet_serving_close(sv);
    fr_publish_close(p);
    fr_model_free(m);
    redisFree(rc0);
    return 0;
}
