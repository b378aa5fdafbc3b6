/* The whole pipeline publishing to a private redis-server: a run that could not publish says so
 * (another daemon's lease, a rollback's hold), a run with nothing new publishes nothing and leaves
 * a rollback in force, the hold shows on the status line and the metrics page, and after each run
 * Redis serves exactly the checkpoint (fr_verify); the pipeline's and the publisher's messages go
 * to the program's logger, never straight to stderr. Skipped when redis-server is not installed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fr_ckpt.h"
#include "fr_config.h"
#include "fr_gen.h"
#include "fr_pipeline.h"
#include "fr_publish.h"
#include "fr_verify.h"
#include "gen_lines.h"
#include "redis_server.h"
#include "tmpdir.h"
#include <unistd.h>

static lines make_stream(void)
{
    fr_gen_opts o;
    fr_gen_defaults(&o);
    o.impressions = 6000;
    o.days = 1;
    o.seed = 17;
    o.n_users = 2000;
    o.n_ads = 200;
    return gen_lines(&o, NULL, NULL);
}

static fr_config publishing_config(const char *dir, int port, const char *prefix)
{
    fr_config c;
    fr_config_defaults(&c);
    snprintf(c.checkpoint_dir, sizeof c.checkpoint_dir, "%s", dir);
    snprintf(c.redis_host, sizeof c.redis_host, "127.0.0.1");
    c.redis_port = port;
    snprintf(c.redis_prefix, sizeof c.redis_prefix, "%s", prefix);
    c.redis_keep_versions = 3;
    c.checkpoint_every_samples = 0;
    c.checkpoint_every_seconds = 0;
    return c;
}

typedef struct {
    int rc;                /* fr_pipeline_finish_publishing */
    char msg[640];
    char status[1024];     /* the status line after the final checkpoint */
    char *metrics;         /* the metrics page (free) */
} run_result;

/* Feeds lines [from, to) as `freshet replay` does, checkpoints, and finishes publishing. */
static run_result run(const fr_config *c, const lines *L, size_t from, size_t to)
{
    char err[512];
    fr_pipeline *p = fr_pipeline_open(c, err, sizeof err);
    if (!p) fail_msg("open: %s", err);
    int64_t next = 0;
    assert_int_equal(fr_pipeline_register_source(p, "file", &next), 0);
    for (size_t i = from; i < to; i++)
        if (fr_pipeline_message(p, "file", (int64_t)i + 1, L->line[i], L->len[i], err, sizeof err) != 0)
            fail_msg("message %zu: %s", i, err);
    if (fr_pipeline_checkpoint(p, err, sizeof err) != 0) fail_msg("checkpoint: %s", err);
    run_result r = {0};
    r.rc = fr_pipeline_finish_publishing(p, 5, r.msg, sizeof r.msg);
    FILE *f = fmemopen(r.status, sizeof r.status - 1, "w");
    fr_pipeline_status_line(p, f, NULL);
    fclose(f);
    size_t len;
    f = open_memstream(&r.metrics, &len);
    fr_pipeline_write_metrics(p, f);
    fclose(f);
    fr_pipeline_close(p);
    return r;
}

static void assert_redis_serves_checkpoint(const fr_config *c)
{
    char err[512];
    fr_ckpt *ck = fr_ckpt_open_readonly(c->checkpoint_dir, err, sizeof err);
    assert_non_null(ck);
    fr_model *m = fr_ckpt_load_model(ck, err, sizeof err);
    assert_non_null(m);
    fr_ckpt_close(ck);
    fr_verify_report rep;
    if (fr_verify_redis(c->redis_host, c->redis_port, c->redis_prefix, m, &rep, err, sizeof err) != 0)
        fail_msg("verify: %s", err);
    for (int i = 0; i < rep.nnotes; i++) print_message("  verify: %s\n", rep.notes[i]);
    assert_true(fr_verify_ok(&rep));
    fr_model_free(m);
}

static long long redis_int(int port, const char *fmt, const char *arg)
{
    redisContext *x = redisConnect("127.0.0.1", port);
    redisReply *r = redisCommand(x, fmt, arg);
    assert_non_null(r);
    long long v = r->type == REDIS_REPLY_INTEGER ? r->integer : r->type == REDIS_REPLY_STRING ? atoll(r->str) : -1;
    freeReplyObject(r);
    redisFree(x);
    return v;
}

/* Another daemon's lease blocks every push: the run says why and reports failure. */
static void test_lease_blocks_publishing(void **state)
{
    redis_srv *s = need_redis(state);
    char *dir = tmpdir_make("pp-lease");
    lines L = make_stream();
    fr_config c = publishing_config(dir, s->port, "pp1");
    redisContext *x = redisConnect("127.0.0.1", s->port);
    freeReplyObject(redisCommand(x, "SET pp1:writer other-host:/other/state PX 60000"));
    redisFree(x);
    run_result r = run(&c, &L, 0, L.n);
    print_message("  %s\n", r.msg);
    assert_int_equal(r.rc, -1);
    assert_non_null(strstr(r.msg, "held by another writer (\"other-host:/other/state\")"));
    assert_int_equal(redis_int(s->port, "EXISTS %s", "pp1:active"), 0);
    free(r.metrics);
    lines_free(&L);
    tmpdir_remove(dir);
}

/* Publish; an operator rolls back; a run with nothing new publishes nothing (the rollback holds); a
 * run with new input is held and says so (status line, metrics); after the release the next run
 * publishes the newest state. Redis serves the checkpoint exactly whenever nothing holds it. */
static void test_rollback_survives_runs(void **state)
{
    redis_srv *s = need_redis(state);
    char *dir = tmpdir_make("pp-hold");
    lines L = make_stream();
    fr_config c = publishing_config(dir, s->port, "pp2");
    size_t third = L.n / 3;
    run_result r = run(&c, &L, 0, third);
    assert_int_equal(r.rc, 0);
    free(r.metrics);
    long long v1 = redis_int(s->port, "GET %s", "pp2:active");
    r = run(&c, &L, third, 2 * third);
    assert_int_equal(r.rc, 0);
    free(r.metrics);
    long long v2 = redis_int(s->port, "GET %s", "pp2:active");
    assert_true(v2 > v1);
    assert_redis_serves_checkpoint(&c);

    char err[512];
    uint64_t from, now;
    assert_int_equal(fr_publish_rollback("127.0.0.1", s->port, "pp2", 0, &from, &now, err, sizeof err), 0);
    assert_int_equal((long long)now, v1);
    long long entries = redis_int(s->port, "XLEN %s", "pp2:changes");

    /* a replay that consumes nothing: nothing new, nothing published, the rollback stays */
    r = run(&c, &L, 2 * third, 2 * third);
    assert_int_equal(r.rc, 0);
    free(r.metrics);
    assert_int_equal(redis_int(s->port, "GET %s", "pp2:active"), v1);
    assert_int_equal(redis_int(s->port, "XLEN %s", "pp2:changes"), entries);

    /* new input: held, and the daemon says so */
    r = run(&c, &L, 2 * third, L.n);
    print_message("  %s\n  %s", r.msg, r.status);
    assert_int_equal(r.rc, FR_PIPELINE_PUBLISH_HELD);
    assert_non_null(strstr(r.msg, "freshet rollback --release"));
    char want[64];
    snprintf(want, sizeof want, " publish=held@%lld", v1);
    assert_non_null(strstr(r.status, want));
    assert_non_null(strstr(r.metrics, "freshet_publish_held 1\n"));
    snprintf(want, sizeof want, "freshet_publish_held_version %lld\n", v1);
    assert_non_null(strstr(r.metrics, want));
    free(r.metrics);
    assert_int_equal(redis_int(s->port, "GET %s", "pp2:active"), v1);

    /* released: the next run (nothing new since its checkpoint, but newer than what is served)
     * publishes the trainer's newest state -- its first push writes every row */
    uint64_t was;
    assert_int_equal(fr_publish_release("127.0.0.1", s->port, "pp2", &was, err, sizeof err), 0);
    r = run(&c, &L, L.n, L.n);
    assert_int_equal(r.rc, 0);
    assert_null(strstr(r.status, "publish=held"));
    assert_non_null(strstr(r.metrics, "freshet_publish_held 0\n"));
    free(r.metrics);
    assert_true(redis_int(s->port, "GET %s", "pp2:active") > v2);
    assert_redis_serves_checkpoint(&c);
    lines_free(&L);
    tmpdir_remove(dir);
}

/* What a logger collected: the publisher calls it from its own thread. */
typedef struct {
    pthread_mutex_t mu;
    char text[8192];
    int n, levels[3];
} collected;

static void collect(void *ctx, fr_log_level level, const char *msg)
{
    collected *c = ctx;
    pthread_mutex_lock(&c->mu);
    size_t used = strlen(c->text);
    snprintf(c->text + used, sizeof c->text - used, "%s\n", msg);
    c->n++;
    c->levels[level]++;
    pthread_mutex_unlock(&c->mu);
}

/* One run that has something to say: two messages rejected, a publisher that cannot reach Redis.
 * Returns how many bytes the process wrote on stderr meanwhile. */
static long run_with_messages(const char *dir, const fr_log *log)
{
    lines L = make_stream();
    fr_config c = publishing_config(dir, 1, "logs"); /* port 1: nothing answers */
    c.log = *log;
    char errpath[300], err[512];
    snprintf(errpath, sizeof errpath, "%s.stderr", dir);
    fflush(stderr);
    int saved = dup(2), fd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(saved >= 0 && fd >= 0);
    dup2(fd, 2);
    fr_pipeline *p = fr_pipeline_open(&c, err, sizeof err);
    int ok = p != NULL;
    if (p) {
        fr_pipeline_register_source(p, "file", NULL);
        const char *bad[] = {"not json", "{\"type\":\"impression\"}"};
        for (size_t i = 0; i < 2000 && ok; i++)
            ok = fr_pipeline_message(p, "file", (int64_t)i + 1, L.line[i], L.len[i], err, sizeof err) == 0;
        for (int i = 0; i < 2 && ok; i++)
            ok = fr_pipeline_message(p, "file", 2001 + i, bad[i], strlen(bad[i]), err, sizeof err) == 0;
        ok = ok && fr_pipeline_checkpoint(p, err, sizeof err) == 0;
        char msg[640];
        ok = ok && fr_pipeline_finish_publishing(p, 5, msg, sizeof msg) == -1;
        fr_pipeline_close(p);
    }
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    off_t written = lseek(fd, 0, SEEK_END);
    close(fd);
    unlink(errpath);
    lines_free(&L);
    if (!ok) fail_msg("run: %s", err);
    return (long)written;
}

/* The pipeline and its publisher write nothing on stderr themselves: their messages go to the
 * logger the program gave them (fr_log.h), none by default. */
static void test_messages_go_to_the_logger(void **state)
{
    (void)state;
    char *dir = tmpdir_make("pplog");
    char sub[300];
    collected got = {.mu = PTHREAD_MUTEX_INITIALIZER};
    const fr_log log = {collect, &got};
    snprintf(sub, sizeof sub, "%s/a", dir);
    assert_int_equal(run_with_messages(sub, &log), 0);
    static const char *const want[] = {"rejected malformed_json (malformed_json, 1 so far) at file offset 2000: ",
                                       "rejected bad_id (bad_id, 1 so far) at file offset 2001: ",
                                       "publish failed, will retry: "};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (!strstr(got.text, want[i])) fail_msg("the logger did not get \"%s\":\n%s", want[i], got.text);
    assert_null(strstr(got.text, "freshet: ")); /* the program's sink adds its name */
    assert_true(got.levels[FR_LOG_WARN] >= 2 && got.levels[FR_LOG_ERROR] >= 1);

    /* no logger: silent */
    snprintf(sub, sizeof sub, "%s/b", dir);
    assert_int_equal(run_with_messages(sub, &(fr_log){0}), 0);
    tmpdir_remove(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lease_blocks_publishing),
        cmocka_unit_test(test_rollback_survives_runs),
        cmocka_unit_test(test_messages_go_to_the_logger),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
