/* The public serving API (include/freshet_serving.h): following the change stream, never loading a
 * half-written version, rollback, and the publisher thread (store/fr_pubq.h) through Redis outages.
 * Against a private redis-server on a loopback port.
 * Skipped (with a message) when redis-server is not installed. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <xxhash.h>

#include "fr_config.h"
#include "fr_event.h"
#include "fr_gen.h"
#include "fr_model.h"
#include "fr_pipeline.h"
#include "fr_publish.h"
#include "fr_publish_test.h"
#include "fr_pubq.h"
#include "fr_reader.h"
#include "freshet_serving.h"

#include "count_rows.h"
#include "fr_testkit.h"
#include "gen_lines.h"
#include "redis_server.h"
#include "row_hash.h"
#include "tmpdir.h"

/* ---- helpers for these tests ------------------------------------------------------------------ */

/* A model with m's rows (weights, versions) and the given dense parameters: what a reader that loaded
 * those dense weights scores, since rows are read from Redis at their latest values. */
typedef struct {
    fr_model *dst;
} put_ctx;

static int put_cb(const fr_row_view *r, void *ctx)
{
    put_ctx *c = ctx;
    return fr_model_put_row(c->dst, r->table, r->key, r->version, r->weights, NULL);
}

static fr_model *rows_with_dense(const fr_model *m, const float *dense)
{
    char err[256];
    fr_model *x = fr_model_create(fr_model_get_config(m), err, sizeof err);
    assert_non_null(x);
    put_ctx c = {x};
    assert_int_equal(fr_model_foreach_row(m, 0, put_cb, &c), 0);
    assert_int_equal(fr_model_set_dense(x, dense, NULL, fr_model_dense_count(m)), 0);
    return x;
}

static float *copy_dense(const fr_model *m)
{
    size_t n = fr_model_dense_count(m);
    float *d = malloc(n * sizeof *d);
    assert_non_null(d);
    memcpy(d, fr_model_dense_params(m), n * sizeof *d);
    return d;
}

/* f and scenario as the public API's impression, key by key through its setters. */
static void set_impression(freshet_impression *imp, const fr_features *f, int32_t scenario)
{
    freshet_impression_clear(imp);
    assert_int_equal(freshet_impression_set_scenario(imp, scenario), 0);
    for (int t = 0; t < FR_MAX_CAT; t++) assert_int_equal(freshet_impression_set_key(imp, t, f->cat[t]), 0);
    for (int t = 0; t < FR_MAX_NUM; t++) assert_int_equal(freshet_impression_set_number(imp, t, f->num[t]), 0);
    for (int j = 0; j < FR_MAX_MULTI; j++)
        assert_int_equal(freshet_impression_set_multi(imp, j, f->multi[j], f->multi_len[j]), 0);
}

/* n impressions for f[i], scenario[i]; freed with free_impressions. */
static freshet_impression **impressions(const fr_features *f, const int32_t *scenario, int n)
{
    freshet_impression **imp = calloc((size_t)n, sizeof *imp);
    assert_non_null(imp);
    for (int i = 0; i < n; i++) {
        assert_non_null(imp[i] = freshet_impression_new());
        set_impression(imp[i], &f[i], scenario[i]);
    }
    return imp;
}

static void free_impressions(freshet_impression **imp, int n)
{
    for (int i = 0; i < n; i++) freshet_impression_free(imp[i]);
    free(imp);
}

/* The public API scores 100 impressions as `want` predicts them, to 1e-6; returns the largest
 * difference to `other` (to show the two models do differ). */
static float serving_agrees(freshet_serving *s, const fr_model *want, const fr_model *other, uint64_t seed)
{
    uint64_t st = seed;
    char err[512];
    float far = 0;
    for (int i = 0; i < 100; i++) {
        fr_features f;
        make_features(&st, fr_model_get_config(want), 70, &f);
        int sc = i % 2;
        float w[FR_NTASKS], o[FR_NTASKS];
        fr_model_predict(want, &f, sc, w);
        if (other) fr_model_predict(other, &f, sc, o);
        freshet_scores got;
        freshet_impression *imp = freshet_impression_new();
        assert_non_null(imp);
        set_impression(imp, &f, sc);
        if (freshet_serving_score(s, imp, &got, err, sizeof err) != 0) fail_msg("score: %s", err);
        freshet_impression_free(imp);
        float g[FR_NTASKS] = {got.pctr, got.pcvr, got.pctcvr};
        for (int t = 0; t < FR_NTASKS; t++) {
            if (fabsf(w[t] - g[t]) > 1e-6f)
                fail_msg("impression %d task %d: serving %.9g, expected %.9g", i, t, g[t], w[t]);
            if (other && fabsf(o[t] - g[t]) > far) far = fabsf(o[t] - g[t]);
        }
    }
    return far;
}

static long long redis_get_u64(int port, const char *key)
{
    redisContext *c = redisConnect("127.0.0.1", port);
    assert_non_null(c);
    redisReply *r = redisCommand(c, "GET %s", key);
    assert_non_null(r);
    long long v = r->type == REDIS_REPLY_STRING ? strtoll(r->str, NULL, 10) : -1;
    freeReplyObject(r);
    redisFree(c);
    return v;
}

/* ---- tests ---------------------------------------------------------------------------------- */

/* A publisher dies between writing version V+1 (rows, dense blob, manifest) and the flip: a reader
 * following the stream keeps V's dense weights, bit for bit, until the flip happens. */
static void test_half_pushed_version_is_never_loaded(void **state)
{
    redis_srv *s = need_redis(state);
    char err[512];
    fr_model *m = new_model();
    train(m, 400, 31, 60);
    fr_publisher *p = fr_publish_open("127.0.0.1", s->port, "s1", 3, NULL, err, sizeof err);
    assert_non_null(p);
    uint64_t v1 = push_ok(p, m);
    float *dense_v1 = copy_dense(m);

    freshet_serving *sv = freshet_serving_open("127.0.0.1", s->port, "s1", err, sizeof err);
    if (!sv) fail_msg("open: %s", err);
    assert_int_equal(freshet_serving_load(sv, err, sizeof err), 0);
    assert_int_equal(freshet_serving_version(sv), v1);
    serving_agrees(sv, m, NULL, 41);

    /* V+1 written but not flipped */
    train(m, 64, 32, 60);
    fr_publish_test_fail_before_flip(p, 1);
    fr_publish_info info = {.manifest_json = DAEMON_MANIFEST};
    uint64_t v = 0;
    assert_int_equal(fr_publish_push(p, m, &info, &v, err, sizeof err), -1);
    assert_non_null(strstr(err, "before the flip"));
    uint64_t v2 = fr_model_version(m);
    assert_true(v2 > v1);
    char key[128];
    snprintf(key, sizeof key, "s1:{v%llu}:dense", (unsigned long long)v2);
    assert_int_equal(redis_int(s->port, "EXISTS %s", key), 1); /* the later dense blob is there */
    assert_int_equal(redis_get_u64(s->port, "s1:active"), (long long)v1);

    /* following, reloading: still V's dense weights, with the rows as Redis has them now */
    assert_int_equal(freshet_serving_follow(sv, 0, err, sizeof err), 0);
    assert_int_equal(freshet_serving_load(sv, err, sizeof err), 0);
    assert_int_equal(freshet_serving_version(sv), v1);
    fr_model *expect = rows_with_dense(m, dense_v1);
    float far = serving_agrees(sv, expect, m, 42);
    assert_true(far > 1e-5f); /* and that is measurably not V+1's dense weights */

    /* the retried push completes: the stream wakes the reader, which loads V+1 */
    fr_publish_test_fail_before_flip(p, 0);
    assert_int_equal(push_ok(p, m), v2);
    assert_int_equal(freshet_serving_follow(sv, 1000, err, sizeof err), 1);
    assert_int_equal(freshet_serving_version(sv), v2);
    serving_agrees(sv, m, NULL, 43);
    assert_int_equal(freshet_serving_follow(sv, 0, err, sizeof err), 0);

    fr_model_free(expect);
    free(dense_v1);
    freshet_serving_close(sv);
    fr_publish_close(p);
    fr_model_free(m);
}

/* HMGET calls Redis has served so far (INFO commandstats). */
static long long hmget_calls(int port)
{
    redisContext *c = redisConnect("127.0.0.1", port);
    redisReply *r = redisCommand(c, "INFO commandstats");
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    const char *p = strstr(r->str, "cmdstat_hmget:calls=");
    long long v = p ? atoll(p + strlen("cmdstat_hmget:calls=")) : 0;
    freeReplyObject(r);
    redisFree(c);
    return v;
}

/* The candidates of one request scored together: the same bits as one by one, each shard hash
 * read once for the whole batch, and a bad scenario refuses the batch. */
static void test_batch_scoring(void **state)
{
    redis_srv *s = need_redis(state);
    char err[512];
    fr_model *m = new_model();
    train(m, 600, 51, 80);
    fr_publisher *p = fr_publish_open("127.0.0.1", s->port, "s3", 3, NULL, err, sizeof err);
    assert_non_null(p);
    push_ok(p, m);
    freshet_serving *sv = freshet_serving_open("127.0.0.1", s->port, "s3", err, sizeof err);
    assert_non_null(sv);
    assert_int_equal(freshet_serving_load(sv, err, sizeof err), 0);

    enum { N = 120 };
    fr_features f[N];
    int32_t sc[N];
    uint64_t seed = 77;
    for (int i = 0; i < N; i++) {
        make_features(&seed, fr_model_get_config(m), 80, &f[i]);
        f[i].cat[1] = f[0].cat[1]; /* one user, many ads: the user's row is shared */
        sc[i] = i % 2;
    }
    freshet_scores one[N], batch[N];
    freshet_impression **imp = impressions(f, sc, N);
    long long before = hmget_calls(s->port);
    for (int i = 0; i < N; i++) assert_int_equal(freshet_serving_score(sv, imp[i], &one[i], err, sizeof err), 0);
    long long single_calls = hmget_calls(s->port) - before;
    before = hmget_calls(s->port);
    assert_int_equal(freshet_serving_score_batch(sv, (const freshet_impression *const *)imp, N, batch, err, sizeof err),
                     0);
    long long batch_calls = hmget_calls(s->port) - before;
    assert_memory_equal(one, batch, sizeof one);
    for (int i = 0; i < N; i++) {
        float want[FR_NTASKS];
        fr_model_predict(m, &f[i], sc[i], want);
        assert_true(batch[i].pctr == want[FR_TASK_CTR] || fabsf(batch[i].pctr - want[FR_TASK_CTR]) <= 1e-6f);
    }
    /* at most one HMGET per shard hash of the 4 tables, against several per impression one by one */
    assert_true(batch_calls <= 4 * 64);
    assert_true(single_calls > 3 * batch_calls);
    /* sizes 1 and 7 agree too; 0 is nothing to do */
    const freshet_impression *const *all = (const freshet_impression *const *)imp;
    assert_int_equal(freshet_serving_score_batch(sv, all + 5, 1, batch, err, sizeof err), 0);
    assert_memory_equal(&one[5], &batch[0], sizeof batch[0]);
    assert_int_equal(freshet_serving_score_batch(sv, all + 10, 7, batch, err, sizeof err), 0);
    assert_memory_equal(&one[10], &batch[0], 7 * sizeof batch[0]);
    assert_int_equal(freshet_serving_score_batch(sv, all, 0, batch, err, sizeof err), 0);
    assert_int_equal(freshet_impression_set_scenario(imp[3], 9), 0);
    assert_int_equal(freshet_serving_score_batch(sv, all, N, batch, err, sizeof err), -1);
    assert_non_null(strstr(err, "impression 3: scenario 9 out of range"));
    free_impressions(imp, N);

    freshet_serving_close(sv);
    fr_publish_close(p);
    fr_model_free(m);
}

static void test_rollback(void **state)
{
    redis_srv *s = need_redis(state);
    char err[512];
    fr_model *m = new_model();
    train(m, 300, 51, 60);
    fr_publisher *p = fr_publish_open("127.0.0.1", s->port, "s2", 3, NULL, err, sizeof err);
    assert_non_null(p);
    uint64_t from = 0, now = 0;
    assert_int_equal(fr_publish_rollback("127.0.0.1", s->port, "s2", 0, &from, &now, err, sizeof err), -1);
    assert_non_null(strstr(err, "nothing is published"));

    uint64_t v1 = push_ok(p, m);
    float *d1 = copy_dense(m);
    train(m, 48, 52, 60);
    uint64_t v2 = push_ok(p, m);
    float *d2 = copy_dense(m);
    train(m, 48, 53, 60);
    uint64_t v3 = push_ok(p, m);

    freshet_serving *sv = freshet_serving_open("127.0.0.1", s->port, "s2", err, sizeof err);
    assert_non_null(sv);
    assert_int_equal(freshet_serving_load(sv, err, sizeof err), 0);
    assert_int_equal(freshet_serving_version(sv), v3);

    /* default: the previous retained version */
    assert_int_equal(fr_publish_rollback("127.0.0.1", s->port, "s2", 0, &from, &now, err, sizeof err), 0);
    assert_int_equal(from, v3);
    assert_int_equal(now, v2);
    assert_int_equal(redis_get_u64(s->port, "s2:active"), (long long)v2);
    assert_int_equal(freshet_serving_follow(sv, 1000, err, sizeof err), 1);
    assert_int_equal(freshet_serving_version(sv), v2);
    fr_model *e2 = rows_with_dense(m, d2);
    assert_true(serving_agrees(sv, e2, m, 61) > 1e-5f);

    /* --to an older one; then one that is not retained */
    assert_int_equal(fr_publish_rollback("127.0.0.1", s->port, "s2", v1, &from, &now, err, sizeof err), 0);
    assert_int_equal(now, v1);
    assert_int_equal(freshet_serving_follow(sv, 1000, err, sizeof err), 1);
    assert_int_equal(freshet_serving_version(sv), v1);
    fr_model *e1 = rows_with_dense(m, d1);
    serving_agrees(sv, e1, NULL, 62);
    assert_int_equal(fr_publish_rollback("127.0.0.1", s->port, "s2", 0, &from, &now, err, sizeof err), -1);
    assert_non_null(strstr(err, "no retained version older"));
    assert_int_equal(fr_publish_rollback("127.0.0.1", s->port, "s2", v3 + 100, &from, &now, err, sizeof err), -1);
    assert_non_null(strstr(err, "not retained"));
    /* each rollback is announced on the stream */
    assert_int_equal(redis_int(s->port, "XLEN %s", "s2:changes"), 5);

    /* forward again to the newest */
    assert_int_equal(fr_publish_rollback("127.0.0.1", s->port, "s2", v3, &from, &now, err, sizeof err), 0);
    assert_int_equal(freshet_serving_follow(sv, 1000, err, sizeof err), 1);
    serving_agrees(sv, m, NULL, 63);

    fr_model_free(e1);
    fr_model_free(e2);
    free(d1);
    free(d2);
    freshet_serving_close(sv);
    fr_publish_close(p);
    fr_model_free(m);
}

/* A rollback is an operator's decision: a daemon restarted with nothing new publishes nothing, one
 * with new input writes nothing and says it is held, until the operator releases the hold. */
static void test_rollback_holds_until_released(void **state)
{
    redis_srv *s = need_redis(state);
    char err[1024];
    fr_model *m = new_model();
    train(m, 300, 141, 60);
    fr_publisher *p = fr_publish_open("127.0.0.1", s->port, "s8", 3, "host:/state", err, sizeof err);
    assert_non_null(p);
    uint64_t v1 = push_ok(p, m);
    train(m, 48, 142, 60);
    uint64_t v2 = push_ok(p, m);
    fr_publish_close(p);
    uint64_t from, now;
    assert_int_equal(fr_publish_rollback("127.0.0.1", s->port, "s8", 0, &from, &now, err, sizeof err), 0);
    assert_int_equal(now, v1);
    int held = 0;
    uint64_t hv = 0;
    assert_int_equal(fr_publish_held("127.0.0.1", s->port, "s8", &held, &hv, err, sizeof err), 0);
    assert_true(held);
    assert_int_equal(hv, v1);
    long long entries = redis_int(s->port, "XLEN %s", "s8:changes");

    /* the daemon restarts on the same state: nothing new, nothing published */
    p = fr_publish_open("127.0.0.1", s->port, "s8", 3, "host:/state", err, sizeof err);
    fr_publish_info info = {.manifest_json = DAEMON_MANIFEST};
    uint64_t v = 0;
    if (fr_publish_push(p, m, &info, &v, err, sizeof err) != 0) fail_msg("push: %s", err);
    fr_publish_stats st;
    fr_publish_last_stats(p, &st);
    assert_int_equal(st.unchanged, 1);
    assert_int_equal(v, v2);
    assert_int_equal(redis_get_u64(s->port, "s8:active"), (long long)v1);
    assert_int_equal(redis_int(s->port, "XLEN %s", "s8:changes"), entries);

    /* new input: held, nothing made active, the marks kept for later */
    train(m, 48, 143, 60);
    size_t dirty = count_rows(m, FR_DIRTY_PUBLISH);
    assert_int_equal(fr_publish_push(p, m, &info, &v, err, sizeof err), FR_PUBLISH_HELD);
    print_message("  %s\n", err);
    assert_non_null(strstr(err, "rolled it back to version"));
    assert_non_null(strstr(err, "freshet rollback --release"));
    assert_int_equal(redis_get_u64(s->port, "s8:active"), (long long)v1);
    assert_int_equal(count_rows(m, FR_DIRTY_PUBLISH), dirty);

    /* released: the next push publishes the trainer's newest state under a new number */
    uint64_t was = 0;
    assert_int_equal(fr_publish_release("127.0.0.1", s->port, "s8", &was, err, sizeof err), 0);
    assert_int_equal(was, v1);
    assert_int_equal(fr_publish_held("127.0.0.1", s->port, "s8", &held, &hv, err, sizeof err), 0);
    assert_false(held);
    uint64_t v3 = push_ok(p, m);
    assert_true(v3 > v2);
    assert_int_equal(redis_get_u64(s->port, "s8:active"), (long long)v3);
    assert_int_equal(fr_publish_release("127.0.0.1", s->port, "s8", &was, err, sizeof err), 0);
    assert_int_equal(was, 0);
    fr_publish_close(p);
    fr_model_free(m);
}

/* Two runs from one checkpoint reach the same model version with other weights (a restart from an
 * older checkpoint, or a second run): the second publishes under a new number, so a follower that
 * holds the first reloads, and serves the second exactly. */
static void test_two_runs_from_one_state_get_two_numbers(void **state)
{
    redis_srv *s = need_redis(state);
    char err[512];
    fr_model *a = new_model(), *b = new_model();
    train(a, 300, 101, 60);
    train(b, 300, 101, 60);
    fr_publisher *p = fr_publish_open("127.0.0.1", s->port, "s6", 3, NULL, err, sizeof err);
    assert_non_null(p);
    push_ok(p, a);
    train(a, 64, 102, 60);
    uint64_t va = push_ok(p, a);
    fr_publish_close(p);
    freshet_serving *sv = freshet_serving_open("127.0.0.1", s->port, "s6", err, sizeof err);
    assert_non_null(sv);
    assert_int_equal(freshet_serving_load(sv, err, sizeof err), 0);
    assert_int_equal(freshet_serving_version(sv), va);
    serving_agrees(sv, a, NULL, 111);

    /* the daemon restarts from the earlier state (b) and learns other input up to the same model version */
    train(b, 64, 103, 60);
    assert_int_equal(fr_model_version(b), va);
    p = fr_publish_open("127.0.0.1", s->port, "s6", 3, NULL, err, sizeof err);
    fr_publish_info info = {.manifest_json = DAEMON_MANIFEST};
    uint64_t vb = 0;
    if (fr_publish_push(p, b, &info, &vb, err, sizeof err) != 0) fail_msg("push: %s", err);
    print_message("  model version %llu published as %llu, then as %llu by the second run\n", (unsigned long long)va,
                  (unsigned long long)va, (unsigned long long)vb);
    assert_true(vb > va);
    assert_int_equal(freshet_serving_follow(sv, 1000, err, sizeof err), 1);
    assert_int_equal(freshet_serving_version(sv), vb);
    assert_true(serving_agrees(sv, b, a, 112) > 1e-5f);
    char want[64];
    snprintf(want, sizeof want, "\"model_version\":\"%llu\"", (unsigned long long)va);
    assert_non_null(strstr(freshet_serving_manifest(sv), want));
    fr_publish_close(p);
    freshet_serving_close(sv);
    fr_model_free(a);
    fr_model_free(b);
}

/* Copies a string key byte for byte. */
static void redis_copy(int port, const char *from, const char *to)
{
    redisContext *c = redisConnect("127.0.0.1", port);
    redisReply *r = redisCommand(c, "GET %s", from);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    redisReply *w = redisCommand(c, "SET %s %b", to, r->str, r->len);
    assert_int_equal(w->type, REDIS_REPLY_STATUS);
    freeReplyObject(w);
    freeReplyObject(r);
    redisFree(c);
}

/* A writer that breaks the layout's rule (an older daemon) republishes the loaded version number
 * with other dense weights: a follower compares the checksum, not only the number, and reloads. */
static void test_reader_notices_a_republished_number(void **state)
{
    redis_srv *s = need_redis(state);
    char err[512];
    fr_model *a = new_model(), *b = new_model();
    train(a, 300, 121, 60);
    train(b, 300, 122, 60);
    assert_int_equal(fr_model_version(a), fr_model_version(b));
    fr_publisher *p = fr_publish_open("127.0.0.1", s->port, "s7", 3, NULL, err, sizeof err);
    fr_publisher *q = fr_publish_open("127.0.0.1", s->port, "s7x", 3, NULL, err, sizeof err);
    uint64_t v = push_ok(p, a);
    assert_int_equal(push_ok(q, b), v);
    fr_reader *r = fr_reader_open("127.0.0.1", s->port, "s7", err, sizeof err);
    assert_non_null(r);
    assert_int_equal(fr_reader_load_active(r, err, sizeof err), 0);
    assert_reader_agrees(r, a, 131);

    /* the same number, b's dense weights, announced as an older writer did (no checksum field) */
    char from[64], to[64];
    snprintf(from, sizeof from, "s7x:{v%llu}:dense", (unsigned long long)v);
    snprintf(to, sizeof to, "s7:{v%llu}:dense", (unsigned long long)v);
    redis_copy(s->port, from, to);
    snprintf(from, sizeof from, "s7x:{v%llu}:manifest", (unsigned long long)v);
    snprintf(to, sizeof to, "s7:{v%llu}:manifest", (unsigned long long)v);
    redis_copy(s->port, from, to);
    redisContext *c = redisConnect("127.0.0.1", s->port);
    freeReplyObject(redisCommand(c, "XADD s7:changes * version %llu rows 0 full 0 retired 0 deleted 0",
                                 (unsigned long long)v));
    assert_int_equal(fr_reader_follow(r, 0, err, sizeof err), 1);
    assert_int_equal(fr_reader_version(r), v);
    fr_reader_stats st;
    fr_reader_get_stats(r, &st);
    assert_int_equal(st.republished, 1);
    float *db = copy_dense(b);
    fr_model *expect = rows_with_dense(a, db); /* the rows are still a's */
    assert_reader_agrees(r, expect, 132);
    /* an entry that names the loaded version with its own checksum reloads nothing */
    uint64_t loads = st.loads;
    redisReply *m = redisCommand(c, "GET s7:{v%llu}:manifest", (unsigned long long)v);
    const char *h = strstr(m->str, "\"xxh3_64\":\"");
    assert_non_null(h);
    char sum[17];
    memcpy(sum, h + strlen("\"xxh3_64\":\""), 16);
    sum[16] = 0;
    freeReplyObject(m);
    freeReplyObject(redisCommand(c, "XADD s7:changes * version %llu rows 0 full 0 retired 0 deleted 0 dense_xxh3_64 %s",
                                 (unsigned long long)v, sum));
    assert_int_equal(fr_reader_follow(r, 0, err, sizeof err), 0);
    fr_reader_get_stats(r, &st);
    assert_int_equal(st.loads, loads);
    redisFree(c);
    fr_model_free(expect);
    free(db);
    fr_reader_close(r);
    fr_publish_close(p);
    fr_publish_close(q);
    fr_model_free(a);
    fr_model_free(b);
}

/* A row value as the layout encodes it (docs/redis-layout.md), with every weight w. */
static void set_row(int port, const char *prefix, uint32_t table, uint64_t key, int dim, float w)
{
    char hkey[FR_REDIS_KEY_MAX];
    unsigned char field[8], value[12 + 4 * 64];
    row_hash_key(hkey, port, prefix, table, key, -1, field);
    value[0] = 0x45, value[1] = 1, value[2] = (unsigned char)dim, value[3] = 0;
    for (int i = 0; i < 8; i++) value[4 + i] = (unsigned char)(i == 0 ? 1 : 0);
    for (int j = 0; j < dim; j++) memcpy(value + 12 + 4 * j, &w, 4); /* the test host is little-endian */
    redisContext *c = redisConnect("127.0.0.1", port);
    redisReply *r = redisCommand(c, "HSET %s %b %b", hkey, field, sizeof field, value, (size_t)(12 + 4 * dim));
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    freeReplyObject(r);
    redisFree(c);
}

/* Publishes, by hand, version `to` as a copy of version `from` whose dense parameter `at` is `value`
 * (header, checksum and manifest consistent), and makes it active: a diverged model. */
static void publish_tampered_dense(int port, const char *prefix, uint64_t from, uint64_t to, size_t at, float value)
{
    redisContext *c = redisConnect("127.0.0.1", port);
    redisReply *b = redisCommand(c, "GET %s:{v%llu}:dense", prefix, (unsigned long long)from);
    redisReply *m = redisCommand(c, "GET %s:{v%llu}:manifest", prefix, (unsigned long long)from);
    assert_int_equal(b->type, REDIS_REPLY_STRING);
    assert_int_equal(m->type, REDIS_REPLY_STRING);
    unsigned char *blob = malloc(b->len);
    memcpy(blob, b->str, b->len);
    for (int i = 0; i < 8; i++) blob[8 + i] = (unsigned char)(to >> (8 * i));
    memcpy(blob + 16 + 4 * at, &value, 4);
    char hash[17], vs[24];
    snprintf(hash, sizeof hash, "%016llx", (unsigned long long)XXH3_64bits(blob, b->len));
    snprintf(vs, sizeof vs, "%llu", (unsigned long long)to);
    json_t *o = json_loads(m->str, 0, NULL);
    assert_non_null(o);
    json_object_set_new(o, "version", json_string(vs));
    json_object_set_new(json_object_get(o, "dense"), "xxh3_64", json_string(hash));
    char *text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    freeReplyObject(redisCommand(c, "SET %s:{v%s}:dense %b", prefix, vs, blob, b->len));
    freeReplyObject(redisCommand(c, "SET %s:{v%s}:manifest %s", prefix, vs, text));
    freeReplyObject(redisCommand(c, "SET %s:active %s", prefix, vs));
    freeReplyObject(redisCommand(c, "XADD %s:changes * version %s rows 0 full 0 retired 0 dense_xxh3_64 %s", prefix, vs,
                                 hash));
    free(text);
    json_decref(o);
    free(blob);
    freeReplyObject(b);
    freeReplyObject(m);
    redisFree(c);
}

/* NaN and infinities never reach a score: a row holding one is ignored (the copy fetched before, or
 * zeros), a version whose dense weights hold one is not loaded, each is counted, and the writer
 * refuses to publish a diverged model. */
static void test_non_finite_values_refused(void **state)
{
    redis_srv *s = need_redis(state);
    char err[512];
    fr_model *m = new_model();
    train(m, 300, 161, 60);
    fr_publisher *p = fr_publish_open("127.0.0.1", s->port, "s10", 3, NULL, err, sizeof err);
    uint64_t v1 = push_ok(p, m);
    freshet_serving *sv = freshet_serving_open("127.0.0.1", s->port, "s10", err, sizeof err);
    assert_int_equal(freshet_serving_load(sv, err, sizeof err), 0);
    uint64_t seed = 171;
    fr_features f;
    fr_row_view held;
    do make_features(&seed, fr_model_get_config(m), 60, &f);
    while (fr_model_get_row(m, 1, f.cat[1], &held) != 0); /* a key the trainer has a row for */
    freshet_impression *fi = freshet_impression_new(), *gi = freshet_impression_new();
    assert_true(fi && gi);
    set_impression(fi, &f, 0);
    freshet_scores before, after;
    assert_int_equal(freshet_serving_score(sv, fi, &before, err, sizeof err), 0);

    /* a row of f turns NaN in Redis: the copy fetched before stays in use */
    const int dim = fr_model_get_config(m)->emb_dim;
    set_row(s->port, "s10", 1, f.cat[1], dim, NAN);
    assert_int_equal(freshet_serving_score(sv, fi, &after, err, sizeof err), 0);
    assert_memory_equal(&before, &after, sizeof before);
    freshet_serving_stats st;
    freshet_serving_get_stats(sv, &st);
    assert_int_equal(st.refused_rows, 1);

    /* an infinite row for a key never fetched: zeros, as the trainer reads an unseen key */
    fr_features g = f;
    g.cat[2] = 0xfeedfacecafeULL;
    set_row(s->port, "s10", 2, g.cat[2], dim, INFINITY);
    set_impression(gi, &g, 0);
    assert_int_equal(freshet_serving_score(sv, gi, &after, err, sizeof err), 0);
    float want[FR_NTASKS];
    fr_model_predict(m, &g, 0, want);
    assert_true(isfinite(after.pctr) && fabsf(after.pctr - want[FR_TASK_CTR]) <= 1e-6f);
    freshet_serving_get_stats(sv, &st);
    assert_int_equal(st.refused_rows, 3); /* g's cat[2], and its cat[1] again */

    /* a version whose dense weights hold a NaN: refused, the loaded version keeps serving */
    publish_tampered_dense(s->port, "s10", v1, v1 + 100, 3, NAN);
    assert_int_equal(freshet_serving_follow(sv, 0, err, sizeof err), -1);
    print_message("  %s\n", err);
    assert_non_null(strstr(err, "1 non-finite parameters (the first is parameter 3, "));
    assert_int_equal(freshet_serving_version(sv), v1);
    freshet_serving_get_stats(sv, &st);
    assert_int_equal(st.refused_versions, 1);
    assert_int_equal(freshet_serving_score(sv, fi, &after, err, sizeof err), 0);
    assert_memory_equal(&before, &after, sizeof before);

    /* the writer does not publish a diverged model */
    size_t n = fr_model_dense_count(m);
    float *d = copy_dense(m);
    d[n / 2] = INFINITY;
    assert_int_equal(fr_model_set_dense(m, d, NULL, n), 0);
    train(m, 16, 172, 60);
    fr_publish_info info = {.manifest_json = DAEMON_MANIFEST};
    uint64_t v;
    assert_int_equal(fr_publish_push(p, m, &info, &v, err, sizeof err), -1);
    print_message("  %s\n", err);
    assert_non_null(strstr(err, "NaN or infinite"));
    assert_int_equal(redis_get_u64(s->port, "s10:active"), (long long)(v1 + 100));
    free(d);
    freshet_impression_free(fi);
    freshet_impression_free(gi);
    freshet_serving_close(sv);
    fr_publish_close(p);
    fr_model_free(m);
}

static double seconds_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static fr_pubq *open_queue(int port, const char *prefix, const fr_model *m)
{
    char err[512];
    const fr_publish_info info = {.manifest_json = DAEMON_MANIFEST};
    fr_pubq *q = fr_pubq_open("127.0.0.1", port, prefix, 3, NULL, fr_model_get_config(m), &info, NULL, err,
                              sizeof err);
    if (!q) fail_msg("pubq: %s", err);
    return q;
}

static void submit(fr_pubq *q, fr_model *m)
{
    char err[512];
    if (fr_pubq_submit(q, m, err, sizeof err) != 0) fail_msg("submit: %s", err);
    assert_int_equal(count_rows(m, FR_DIRTY_PUBLISH), 0); /* the queue owns the marks now */
}

/* Redis down while training goes on: hand-overs never wait, rows changed meanwhile are kept, and
 * once Redis is back one push catches up with every one of them. */
static void test_queue_survives_redis_outage(void **state)
{
    redis_srv *s = need_redis(state);
    char err[512];
    fr_model *m = new_model();
    train(m, 300, 71, 60);
    fr_pubq *q = open_queue(s->port, "s5", m);
    submit(q, m);
    assert_int_equal(fr_pubq_flush(q, 10), 0);
    fr_pubq_stats st;
    fr_pubq_get_stats(q, &st);
    assert_int_equal(st.pushes, 1);
    assert_int_equal(st.full_snapshots, 1); /* the first push of a process writes every row */
    assert_int_equal(st.last_version, fr_model_version(m));

    redis_stop(s);
    double worst = 0;
    for (int i = 0; i < 6; i++) {
        train(m, 48, 72 + (uint64_t)i, 400); /* new keys: rows Redis has never seen */
        double t0 = seconds_now();
        submit(q, m);
        double dt = seconds_now() - t0;
        if (dt > worst) worst = dt;
        struct timespec ts = {0, 300 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    print_message("  slowest hand-over while Redis was down: %.2f ms\n", worst * 1e3);
    assert_true(worst < 0.2); /* copies only: never a connect timeout */
    assert_int_equal(fr_pubq_flush(q, 0.5), -1);
    fr_pubq_get_stats(q, &st);
    assert_true(st.failures >= 1);
    assert_true(st.merged >= 1);
    assert_true(st.pending_rows > 0);
    assert_non_null(strstr(st.last_error, "redis"));

    redis_start(s); /* empty: no persistence */
    if (fr_pubq_flush(q, 15) != 0) {
        fr_pubq_get_stats(q, &st);
        fail_msg("did not catch up: %s", st.last_error);
    }
    fr_pubq_get_stats(q, &st);
    assert_int_equal(st.last_version, fr_model_version(m));
    assert_int_equal(st.pending_rows, 0);
    fr_reader *r = fr_reader_open("127.0.0.1", s->port, "s5", err, sizeof err);
    assert_non_null(r);
    assert_int_equal(fr_reader_load_active(r, err, sizeof err), 0);
    assert_int_equal(fr_reader_version(r), fr_model_version(m));
    assert_row_counts(r, m);
    assert_reader_agrees(r, m, 81);
    fr_reader_close(r);
    fr_pubq_close(q, 5);
    fr_model_free(m);
}

/* Through the publisher thread: a rollback holds what the learner hands over (kept, merged, said so
 * in the stats) until it is released; a flush does not wait for the operator. */
static void test_queue_held_by_rollback(void **state)
{
    redis_srv *s = need_redis(state);
    char err[512];
    fr_model *m = new_model();
    train(m, 300, 151, 60);
    fr_pubq *q = open_queue(s->port, "s9", m);
    submit(q, m);
    assert_int_equal(fr_pubq_flush(q, 10), 0);
    train(m, 48, 152, 60);
    submit(q, m);
    assert_int_equal(fr_pubq_flush(q, 10), 0);
    fr_pubq_stats st;
    fr_pubq_get_stats(q, &st);
    uint64_t v2 = st.last_version, from, now;
    assert_int_equal(fr_publish_rollback("127.0.0.1", s->port, "s9", 0, &from, &now, err, sizeof err), 0);

    train(m, 48, 153, 60);
    submit(q, m);
    double t0 = seconds_now();
    assert_int_equal(fr_pubq_flush(q, 10), -1);
    assert_true(seconds_now() - t0 < 3);
    fr_pubq_get_stats(q, &st);
    assert_int_equal(st.held, 1);
    assert_int_equal(st.held_version, now);
    assert_int_equal(st.last_version, v2);
    assert_true(st.pending_rows > 0);
    assert_non_null(strstr(st.last_error, "held"));
    assert_int_equal(redis_get_u64(s->port, "s9:active"), (long long)now);

    uint64_t was;
    assert_int_equal(fr_publish_release("127.0.0.1", s->port, "s9", &was, err, sizeof err), 0);
    assert_int_equal(fr_pubq_flush(q, 10), 0);
    fr_pubq_get_stats(q, &st);
    assert_int_equal(st.held, 0);
    assert_true(st.last_version > v2);
    assert_int_equal(redis_get_u64(s->port, "s9:active"), (long long)st.last_version);
    fr_reader *r = fr_reader_open("127.0.0.1", s->port, "s9", err, sizeof err);
    assert_int_equal(fr_reader_load_active(r, err, sizeof err), 0);
    assert_reader_agrees(r, m, 154);
    fr_reader_close(r);
    /* a hand-over with nothing new publishes nothing */
    submit(q, m);
    assert_int_equal(fr_pubq_flush(q, 10), 0);
    fr_pubq_get_stats(q, &st);
    assert_int_equal(st.unchanged, 1);
    fr_pubq_close(q, 5);
    fr_model_free(m);
}

/* Redis restarts empty while the queue is idle: the next hand-over holds only the changed rows, which
 * must not be flipped alone; the queue asks for every row and publishes a complete version. */
static void test_queue_never_flips_partial_rows(void **state)
{
    redis_srv *s = need_redis(state);
    char err[512];
    fr_model *m = new_model();
    train(m, 300, 91, 60);
    fr_pubq *q = open_queue(s->port, "s4", m);
    submit(q, m);
    assert_int_equal(fr_pubq_flush(q, 10), 0);
    redis_stop(s);
    redis_start(s);
    train(m, 32, 92, 60);
    submit(q, m); /* the changed rows only */
    /* the push finds Redis empty and refuses to flip with those rows alone */
    double t0 = seconds_now();
    fr_pubq_stats st;
    do {
        fr_pubq_get_stats(q, &st);
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    } while (!st.wants_full && seconds_now() - t0 < 10);
    assert_int_equal(st.wants_full, 1);
    assert_int_equal(redis_int(s->port, "EXISTS %s", "s4:active"), 0);
    assert_int_equal(fr_pubq_flush(q, 0.2), -1);
    /* the next hand-over copies every row */
    submit(q, m);
    assert_int_equal(fr_pubq_flush(q, 10), 0);
    fr_pubq_get_stats(q, &st);
    assert_int_equal(st.full_snapshots, 2);
    fr_reader *r = fr_reader_open("127.0.0.1", s->port, "s4", err, sizeof err);
    assert_non_null(r);
    assert_int_equal(fr_reader_load_active(r, err, sizeof err), 0);
    assert_row_counts(r, m);
    assert_reader_agrees(r, m, 93);
    fr_reader_close(r);
    fr_pubq_close(q, 5);
    fr_model_free(m);
}

/* The daemon's pipeline trains under join.policy `policy` on a generated stream and publishes to
 * prefix; returns it open, once Redis serves the model it holds (the publisher runs on its own
 * thread). Closed by the caller. */
static fr_pipeline *train_and_publish(int port, const char *prefix, fr_policy_id policy, const char *dir,
                                      const lines *L)
{
    char err[512];
    fr_config c;
    fr_config_defaults(&c);
    snprintf(c.checkpoint_dir, sizeof c.checkpoint_dir, "%s", dir);
    snprintf(c.redis_host, sizeof c.redis_host, "127.0.0.1");
    snprintf(c.redis_prefix, sizeof c.redis_prefix, "%s", prefix);
    c.redis_port = port;
    c.join_policy = policy;
    c.checkpoint_every_seconds = 0;
    c.checkpoint_every_samples = 1 << 30;
    fr_pipeline *p = fr_pipeline_open(&c, err, sizeof err);
    if (!p) fail_msg("pipeline: %s", err);
    int64_t next = 0;
    assert_int_equal(fr_pipeline_register_source(p, "file", &next), 0);
    for (size_t i = 0; i < L->n; i++)
        if (fr_pipeline_message(p, "file", (int64_t)i + 1, L->line[i], L->len[i], err, sizeof err) != 0)
            fail_msg("message %zu: %s", i, err);
    fr_pipeline_source_idle(p, "file", 1);
    assert_int_equal(fr_pipeline_tick(p), 0);
    if (fr_pipeline_checkpoint(p, err, sizeof err) != 0) fail_msg("checkpoint: %s", err);
    char akey[96];
    snprintf(akey, sizeof akey, "%s:active", prefix);
    double t0 = seconds_now();
    while (redis_get_u64(port, akey) != (long long)fr_model_version(fr_pipeline_model(p))) {
        if (seconds_now() - t0 > 30) fail_msg("the pipeline did not publish version %llu within 30 s",
                                              (unsigned long long)fr_model_version(fr_pipeline_model(p)));
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return p;
}

/* fnc trains on fake negatives, so the model's CVR output q estimates p / (1 + p), and what the
 * policy serves is q / (1 - q) (docs/delayed-feedback.md): the trainer's progressive metrics score
 * that. A model trained with fnc, published, scored through the public library from EVENTS.md JSON
 * gives the trainer's calibrated pCVR -- clip(q / (1 - q), 1e-6, 1 - 1e-6), pCTCVR = pCTR x that --
 * and the manifest says so (serve_transform "odds", format 2, so version-1 readers refuse it). The
 * same stream under esdfm serves the raw outputs and stays format 1. */
static void test_fnc_serves_the_calibrated_cvr(void **state)
{
    redis_srv *s = need_redis(state);
    char err[512];
    fr_gen_opts o;
    fr_gen_defaults(&o);
    o.impressions = 6000;
    o.days = 2;
    o.seed = 11;
    o.n_users = 2000;
    o.n_ads = 200;
    lines L = gen_lines(&o, NULL, NULL);
    const fr_policy_id policies[2] = {FR_POLICY_FNC, FR_POLICY_ESDFM};
    for (int k = 0; k < 2; k++) {
        const int fnc = policies[k] == FR_POLICY_FNC;
        const char *prefix = fnc ? "fnc1" : "esdfm1";
        char *dir = tmpdir_make("serving-fnc");
        fr_pipeline *p = train_and_publish(s->port, prefix, policies[k], dir, &L);
        const fr_model *m = fr_pipeline_model(p);
        const fr_config *c = fr_pipeline_config(p);

        freshet_serving *sv = freshet_serving_open("127.0.0.1", s->port, prefix, err, sizeof err);
        if (!sv || freshet_serving_load(sv, err, sizeof err) != 0) fail_msg("serving: %s", err);
        assert_int_equal(freshet_serving_version(sv), fr_model_version(m));
        const char *manifest = freshet_serving_manifest(sv);
        assert_non_null(strstr(manifest, fnc ? "\"serve_transform\":\"odds\"" : "\"serve_transform\":\"identity\""));
        assert_non_null(strstr(manifest, fnc ? "\"join_policy\":\"fnc\"" : "\"join_policy\":\"esdfm\""));
        assert_non_null(strstr(manifest, "\"format_version\":3")); /* per-table shard counts, either transform */

        freshet_impression *imp = freshet_impression_new();
        assert_non_null(imp);
        int scored = 0, calibrated = 0;
        for (size_t i = 0; i < L.n && scored < 300; i++) {
            fr_event ev;
            if (fr_event_decode(&c->schema, L.line[i], L.len[i], &ev, NULL, 0) != FR_REJECT_NONE ||
                ev.type != FR_EV_IMPRESSION)
                continue;
            /* the trainer: its own decoder and config, its model, its policy's calibration */
            float raw[FR_NTASKS];
            fr_model_predict(m, &ev.features, ev.scenario, raw);
            float want[FR_NTASKS] = {raw[FR_TASK_CTR], raw[FR_TASK_CVR], raw[FR_TASK_CTCVR]};
            if (fnc) {
                double q = raw[FR_TASK_CVR], cvr = q < 1 ? q / (1 - q) : 1;
                cvr = cvr < 1e-6 ? 1e-6 : cvr > 1 - 1e-6 ? 1 - 1e-6 : cvr;
                want[FR_TASK_CVR] = (float)cvr;
                want[FR_TASK_CTCVR] = (float)(raw[FR_TASK_CTR] * cvr);
            }
            /* serving: the public library from the JSON line */
            assert_int_equal(freshet_serving_decode(sv, L.line[i], L.len[i], imp, err, sizeof err), 0);
            assert_string_equal(freshet_impression_id(imp), ev.id);
            freshet_scores got;
            if (freshet_serving_score(sv, imp, &got, err, sizeof err) != 0) fail_msg("score: %s", err);
            const float g[FR_NTASKS] = {got.pctr, got.pcvr, got.pctcvr};
            for (int t = 0; t < FR_NTASKS; t++)
                if (fabsf(g[t] - want[t]) > 1e-6f)
                    fail_msg("%s, impression %s task %d: serving %.9g, the trainer serves %.9g (raw %.9g)",
                             fr_policy_name(policies[k]), ev.id, t, g[t], want[t], raw[t]);
            calibrated += fabsf(want[FR_TASK_CVR] - raw[FR_TASK_CVR]) > 1e-4f;
            scored++;
        }
        assert_int_equal(scored, 300);
        if (fnc) assert_true(calibrated > 250); /* the transform is not a rounding: raw q differs */
        freshet_impression_free(imp);
        freshet_serving_close(sv);
        fr_pipeline_close(p);
        tmpdir_remove(dir);
    }
    lines_free(&L);
}

/* Replaces the first `from` in the manifest of `version` under prefix with `to`. */
static void edit_manifest(int port, const char *prefix, uint64_t version, const char *from, const char *to)
{
    char key[128];
    snprintf(key, sizeof key, "%s:{v%llu}:manifest", prefix, (unsigned long long)version);
    redisContext *c = redisConnect("127.0.0.1", port);
    assert_non_null(c);
    redisReply *r = redisCommand(c, "GET %s", key);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    char *at = strstr(r->str, from);
    assert_non_null(at);
    size_t head = (size_t)(at - r->str), n = head + strlen(to) + strlen(at + strlen(from));
    char *text = malloc(n + 1);
    assert_non_null(text);
    snprintf(text, n + 1, "%.*s%s%s", (int)head, r->str, to, at + strlen(from));
    freeReplyObject(r);
    r = redisCommand(c, "SET %s %s", key, text);
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);
    free(text);
    redisFree(c);
}

/* A manifest whose serve transform this reader cannot apply is refused by name, and the version
 * loaded before stays in use: an unknown transform, a format 2 manifest without one, a format
 * from the future. */
static void test_unknown_serve_transform_is_refused(void **state)
{
    redis_srv *s = need_redis(state);
    char err[512];
    fr_model *m = new_model();
    train(m, 200, 81, 60);
    fr_publisher *p = fr_publish_open("127.0.0.1", s->port, "st1", 3, NULL, err, sizeof err);
    assert_non_null(p);
    uint64_t v1 = push_ok(p, m);
    freshet_serving *sv = freshet_serving_open("127.0.0.1", s->port, "st1", err, sizeof err);
    assert_non_null(sv);
    assert_int_equal(freshet_serving_load(sv, err, sizeof err), 0);
    assert_non_null(strstr(freshet_serving_manifest(sv), "\"format_version\":3"));
    assert_non_null(strstr(freshet_serving_manifest(sv), "\"serve_transform\":\"identity\""));
    train(m, 48, 82, 60);
    uint64_t v2 = push_ok(p, m);

    edit_manifest(s->port, "st1", v2, "\"serve_transform\":\"identity\"", "\"serve_transform\":\"cube\"");
    assert_int_equal(freshet_serving_follow(sv, 1000, err, sizeof err), -1);
    assert_non_null(strstr(err, "serve_transform \"cube\" is unknown"));
    assert_int_equal(freshet_serving_version(sv), v1);
    edit_manifest(s->port, "st1", v2, "\"serve_transform\":\"cube\",", "");
    assert_int_equal(freshet_serving_load(sv, err, sizeof err), -1);
    assert_non_null(strstr(err, "lacks serve_transform"));
    edit_manifest(s->port, "st1", v2, "\"format_version\":3", "\"format_version\":4");
    assert_int_equal(freshet_serving_load(sv, err, sizeof err), -1);
    assert_non_null(strstr(err, "format_version is not 1 to 3"));
    assert_int_equal(freshet_serving_version(sv), v1);
    /* the manifest as written again: loads */
    edit_manifest(s->port, "st1", v2, "\"format_version\":4", "\"format_version\":3,\"serve_transform\":\"identity\"");
    assert_int_equal(freshet_serving_load(sv, err, sizeof err), 0);
    assert_int_equal(freshet_serving_version(sv), v2);

    freshet_serving_close(sv);
    fr_publish_close(p);
    fr_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_half_pushed_version_is_never_loaded),
        cmocka_unit_test(test_rollback),
        cmocka_unit_test(test_rollback_holds_until_released),
        cmocka_unit_test(test_two_runs_from_one_state_get_two_numbers),
        cmocka_unit_test(test_reader_notices_a_republished_number),
        cmocka_unit_test(test_non_finite_values_refused),
        cmocka_unit_test(test_batch_scoring),
        cmocka_unit_test(test_queue_survives_redis_outage),
        cmocka_unit_test(test_queue_never_flips_partial_rows),
        cmocka_unit_test(test_queue_held_by_rollback),
        cmocka_unit_test(test_fnc_serves_the_calibrated_cvr),
        cmocka_unit_test(test_unknown_serve_transform_is_refused),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
