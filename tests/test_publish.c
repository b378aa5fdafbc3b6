/* Publish and serving-reader tests against a private redis-server on a loopback port.
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

#include "fr_model.h"
#include "fr_publish.h"
#include "fr_publish_test.h"
#include "fr_reader.h"
#include "fr_verify.h"

#include "count_rows.h"
#include "fr_testkit.h"
#include "redis_server.h"
#include "row_hash.h"

/* ---- tests ---------------------------------------------------------------------------------- */

static void test_push_and_serve(void **state)
{
    redis_srv *s = need_redis(state);
    char err[512];
    fr_model *m = new_model();
    train(m, 400, 1, 50);
    fr_publisher *p = fr_publish_open("127.0.0.1", s->port, "t1", 2, NULL, err, sizeof err);
    if (!p) fail_msg("open: %s", err);

    uint64_t v1 = push_ok(p, m);
    fr_publish_stats st;
    fr_publish_last_stats(p, &st);
    assert_int_equal(st.full, 1);
    assert_int_equal(st.rows, count_rows(m, 0));
    assert_int_equal(st.version, v1);

    fr_reader *r = fr_reader_open("127.0.0.1", s->port, "t1", err, sizeof err);
    if (!r) fail_msg("reader open: %s", err);
    if (fr_reader_load_active(r, err, sizeof err) != 0) fail_msg("load: %s", err);
    assert_int_equal(fr_reader_version(r), v1);
    assert_non_null(strstr(fr_reader_manifest(r), "\"scenarios\":[\"feed\",\"search\"]"));
    /* format 3: each table names its shard count, a power of two sized to its rows */
    assert_non_null(strstr(fr_reader_manifest(r), "\"row_shard_fn\":\"" FR_REDIS_SHARD_FN_TOP "\""));
    assert_non_null(strstr(fr_reader_manifest(r), "\"format_version\":3"));
    assert_non_null(strstr(fr_reader_manifest(r), "\"shards\":"));
    assert_row_counts(r, m);
    assert_reader_agrees(r, m, 11);

    /* more training: an incremental push flips the version */
    train(m, 48, 2, 200);
    size_t dirty = count_rows(m, FR_DIRTY_PUBLISH);
    assert_true(dirty > 0 && dirty < count_rows(m, 0));
    uint64_t v2 = push_ok(p, m);
    assert_true(v2 > v1);
    fr_publish_last_stats(p, &st);
    assert_int_equal(st.full, 0);
    assert_int_equal(st.rows, dirty);
    assert_int_equal(fr_reader_version(r), v1); /* until it reloads */
    if (fr_reader_load_active(r, err, sizeof err) != 0) fail_msg("reload: %s", err);
    assert_int_equal(fr_reader_version(r), v2);
    assert_row_counts(r, m);
    assert_reader_agrees(r, m, 12);

    /* a third version retires the first (keep_versions = 2) */
    train(m, 32, 3, 50);
    uint64_t v3 = push_ok(p, m);
    fr_publish_last_stats(p, &st);
    assert_int_equal(st.retired_versions, 1);
    char key[128];
    snprintf(key, sizeof key, "t1:{v%llu}:dense", (unsigned long long)v1);
    assert_int_equal(redis_int(s->port, "EXISTS %s", key), 0);
    snprintf(key, sizeof key, "t1:{v%llu}:manifest", (unsigned long long)v1);
    assert_int_equal(redis_int(s->port, "EXISTS %s", key), 0);
    snprintf(key, sizeof key, "t1:{v%llu}:dense", (unsigned long long)v2);
    assert_int_equal(redis_int(s->port, "EXISTS %s", key), 1);
    assert_int_equal(redis_int(s->port, "ZCARD %s", "t1:versions"), 2);
    if (fr_reader_load_active(r, err, sizeof err) != 0) fail_msg("reload: %s", err);
    assert_int_equal(fr_reader_version(r), v3);
    assert_reader_agrees(r, m, 13);

    /* pushing the same state again is harmless: nothing is written, flipped or announced */
    assert_int_equal(push_ok(p, m), v3);
    fr_publish_last_stats(p, &st);
    assert_int_equal(st.rows, 0);
    assert_int_equal(st.unchanged, 1);
    if (fr_reader_load_active(r, err, sizeof err) != 0) fail_msg("reload: %s", err);
    assert_reader_agrees(r, m, 13);

    /* one stream entry per push that published a version */
    assert_int_equal(redis_int(s->port, "XLEN %s", "t1:changes"), 3);

    fr_reader_close(r);
    fr_publish_close(p);
    fr_model_free(m);
}

static void test_redis_down(void **state)
{
    redis_srv *s = need_redis(state);
    char err[512];
    fr_model *m = new_model();
    train(m, 200, 4, 50);
    fr_publisher *p = fr_publish_open("127.0.0.1", s->port, "t2", 3, NULL, err, sizeof err);
    if (!p) fail_msg("open: %s", err);
    push_ok(p, m);
    fr_reader *r = fr_reader_open("127.0.0.1", s->port, "t2", err, sizeof err);
    assert_non_null(r);
    assert_int_equal(fr_reader_load_active(r, err, sizeof err), 0);

    train(m, 64, 5, 300);
    size_t dirty = count_rows(m, FR_DIRTY_PUBLISH);
    assert_true(dirty > 0);
    redis_stop(s);

    fr_publish_info info = {.manifest_json = DAEMON_MANIFEST};
    uint64_t v = 0;
    assert_int_equal(fr_publish_push(p, m, &info, &v, err, sizeof err), -1);
    print_message("  expected failure: %s\n", err);
    assert_non_null(strstr(err, "next push retries"));
    assert_int_equal(count_rows(m, FR_DIRTY_PUBLISH), dirty); /* the marks are kept */
    /* the reader keeps its loaded version and says why it cannot fetch */
    float out[FR_NTASKS];
    fr_features f;
    uint64_t seed = 3;
    make_features(&seed, fr_model_get_config(m), 50, &f);
    assert_int_equal(fr_reader_score(r, &f, 0, out, err, sizeof err), -1);
    assert_non_null(strstr(err, "redis"));

    /* Redis comes back empty (no persistence): the next push writes every row */
    redis_start(s);
    uint64_t v2 = push_ok(p, m);
    fr_publish_stats st;
    fr_publish_last_stats(p, &st);
    assert_int_equal(st.full, 1);
    assert_int_equal(st.rows, count_rows(m, 0));
    assert_int_equal(v2, fr_model_version(m));
    /* the reader reconnects by itself */
    if (fr_reader_load_active(r, err, sizeof err) != 0) fail_msg("reload after restart: %s", err);
    assert_int_equal(fr_reader_version(r), v2);
    assert_row_counts(r, m);
    assert_reader_agrees(r, m, 21);
    assert_int_equal(redis_int(s->port, "XLEN %s", "t2:changes"), 1);

    fr_reader_close(r);
    fr_publish_close(p);
    fr_model_free(m);
}

static void test_reader_errors(void **state)
{
    redis_srv *s = need_redis(state);
    char err[512];
    fr_reader *r = fr_reader_open("127.0.0.1", s->port, "t3", err, sizeof err);
    assert_non_null(r);
    assert_int_equal(fr_reader_load_active(r, err, sizeof err), -1);
    assert_non_null(strstr(err, "nothing published"));
    fr_features f;
    memset(&f, 0, sizeof f);
    float out[FR_NTASKS];
    assert_int_equal(fr_reader_score(r, &f, 0, out, err, sizeof err), -1);
    assert_non_null(strstr(err, "no version loaded"));

    assert_null(fr_publish_open("127.0.0.1", s->port, "bad{prefix}", 2, NULL, err, sizeof err));
    assert_non_null(strstr(err, "not allowed"));
    assert_null(fr_publish_open("127.0.0.1", s->port, "t3", 0, NULL, err, sizeof err));

    fr_model *m = new_model();
    train(m, 100, 6, 50);
    fr_publisher *p = fr_publish_open("127.0.0.1", s->port, "t3", 2, NULL, err, sizeof err);
    assert_non_null(p);
    fr_publish_info bad = {.manifest_json = "{not json"};
    uint64_t v;
    assert_int_equal(fr_publish_push(p, m, &bad, &v, err, sizeof err), -1);
    assert_non_null(strstr(err, "not valid JSON"));
    uint64_t v1 = push_ok(p, m);
    assert_int_equal(fr_reader_load_active(r, err, sizeof err), 0);

    /* a damaged dense blob is refused; the reader keeps serving what it had */
    train(m, 32, 7, 50);
    uint64_t v2 = push_ok(p, m);
    char key[128];
    snprintf(key, sizeof key, "t3:{v%llu}:dense", (unsigned long long)v2);
    redisContext *c = redisConnect("127.0.0.1", s->port);
    assert_non_null(c);
    redisReply *rep = redisCommand(c, "SETRANGE %s 20 %b", key, "\x01\x02\x03\x04", (size_t)4);
    assert_non_null(rep);
    freeReplyObject(rep);
    assert_int_equal(fr_reader_load_active(r, err, sizeof err), -1);
    assert_non_null(strstr(err, "checksum"));
    assert_int_equal(fr_reader_version(r), v1);
    make_features(&(uint64_t){5}, fr_model_get_config(m), 50, &f);
    assert_int_equal(fr_reader_score(r, &f, 1, out, err, sizeof err), 0);

    /* a restored (older) model publishes under a new number above every earlier one, never under one
     * a follower may hold with other content; its manifest records the model version it holds */
    fr_model_set_version(m, v1 - 1 > 0 ? v1 - 1 : 0);
    fr_publish_info info = {.manifest_json = DAEMON_MANIFEST};
    uint64_t v0 = 0;
    if (fr_publish_push(p, m, &info, &v0, err, sizeof err) != 0) fail_msg("push: %s", err);
    assert_int_equal(v0, v2 + 1);
    rep = redisCommand(c, "ZRANGE t3:versions 0 -1");
    assert_non_null(rep);
    assert_int_equal(rep->type, REDIS_REPLY_ARRAY);
    assert_int_equal(rep->elements, 2);
    assert_int_equal(strtoull(rep->element[0]->str, NULL, 10), v2);
    assert_int_equal(strtoull(rep->element[1]->str, NULL, 10), v0);
    freeReplyObject(rep);
    rep = redisCommand(c, "GET t3:active");
    assert_int_equal(strtoull(rep->str, NULL, 10), v0);
    freeReplyObject(rep);
    redisFree(c);
    assert_int_equal(fr_reader_load_active(r, err, sizeof err), 0);
    assert_int_equal(fr_reader_version(r), v0);
    char want[64];
    snprintf(want, sizeof want, "\"model_version\":\"%llu\"", (unsigned long long)(v1 - 1));
    assert_non_null(strstr(fr_reader_manifest(r), want));

    fr_publish_close(p);
    fr_reader_close(r);
    fr_model_free(m);
}

/* A row that disappears from Redis (evicted) must not be served from the reader's memory. */
static void test_deleted_row_reads_zero(void **state)
{
    redis_srv *s = need_redis(state);
    char err[512];
    fr_model *m = new_model();
    train(m, 200, 8, 20);
    fr_publisher *p = fr_publish_open("127.0.0.1", s->port, "t4", 2, NULL, err, sizeof err);
    assert_non_null(p);
    push_ok(p, m);
    fr_reader *r = fr_reader_open("127.0.0.1", s->port, "t4", err, sizeof err);
    assert_non_null(r);
    assert_int_equal(fr_reader_load_active(r, err, sizeof err), 0);
    fr_features f;
    uint64_t seed = 9;
    make_features(&seed, fr_model_get_config(m), 20, &f);
    float a[FR_NTASKS], b[FR_NTASKS], want[FR_NTASKS];
    assert_int_equal(fr_reader_score(r, &f, 0, a, err, sizeof err), 0);

    /* delete the row of cat[1] from its shard hash */
    char key[FR_REDIS_KEY_MAX];
    /* shard = top log2(shards) bits of key * 0x9E3779B97F4A7C15 (docs/redis-layout.md) */
    unsigned char field[8];
    row_hash_key(key, s->port, "t4", 1, f.cat[1], -1, field);
    redisContext *c = redisConnect("127.0.0.1", s->port);
    redisReply *rep = redisCommand(c, "HDEL %s %b", key, field, sizeof field);
    assert_int_equal(rep->integer, 1);
    freeReplyObject(rep);
    redisFree(c);

    assert_int_equal(fr_reader_score(r, &f, 0, b, err, sizeof err), 0);
    fr_features g = f;
    g.cat[1] = 0xdeadbeefULL; /* an unseen key reads as zeros in the trainer */
    fr_model_predict(m, &g, 0, want);
    for (int t = 0; t < FR_NTASKS; t++) assert_true(fabsf(b[t] - want[t]) <= 1e-6f);
    assert_true(memcmp(a, b, sizeof a) != 0);

    fr_reader_close(r);
    fr_publish_close(p);
    fr_model_free(m);
}

/* One writer per prefix: a second writer is refused by name and writes nothing; the same writer
 * (a restarted daemon) takes over at once; closing releases; a lease that is not renewed runs out. */
static void test_writer_lease(void **state)
{
    redis_srv *s = need_redis(state);
    char err[1024];
    fr_model *m = new_model();
    train(m, 200, 3, 20);
    fr_publisher *a = fr_publish_open("127.0.0.1", s->port, "t5", 2, "host-a:/state", err, sizeof err);
    fr_publisher *b = fr_publish_open("127.0.0.1", s->port, "t5", 2, "host-b:/state", err, sizeof err);
    assert_non_null(a);
    assert_non_null(b);
    uint64_t va = push_ok(a, m);

    train(m, 50, 4, 20);
    uint64_t v;
    assert_int_equal(fr_publish_push(b, m, NULL, &v, err, sizeof err), -1);
    assert_non_null(strstr(err, "held by another writer (\"host-a:/state\"), this one is \"host-b:/state\""));
    assert_non_null(strstr(err, "redis.prefix"));
    redisContext *c = redisConnect("127.0.0.1", s->port);
    redisReply *rep = redisCommand(c, "GET t5:active");
    assert_int_equal(strtoull(rep->str, NULL, 10), va); /* b flipped nothing */
    freeReplyObject(rep);

    /* the same writer id from a new handle: a restart after a crash publishes at once */
    fr_publisher *a2 = fr_publish_open("127.0.0.1", s->port, "t5", 2, "host-a:/state", err, sizeof err);
    assert_non_null(a2);
    uint64_t va2 = push_ok(a2, m);
    assert_true(va2 > va);
    fr_publish_close(a2); /* releases the lease ... */
    rep = redisCommand(c, "EXISTS t5:writer");
    assert_int_equal(rep->integer, 0);
    freeReplyObject(rep);
    train(m, 50, 5, 20);
    assert_true(push_ok(b, m) > va2); /* ... so b takes over */
    fr_publish_close(a);                /* a's close leaves b's lease alone */
    rep = redisCommand(c, "GET t5:writer");
    assert_string_equal(rep->str, "host-b:/state");
    freeReplyObject(rep);

    /* a lease that is not renewed runs out */
    fr_publish_test_lease_ms(b, 200);
    train(m, 50, 6, 20);
    push_ok(b, m);
    fr_publisher *d = fr_publish_open("127.0.0.1", s->port, "t5", 2, "host-d:/state", err, sizeof err);
    assert_int_equal(fr_publish_push(d, m, NULL, &v, err, sizeof err), -1);
    struct timespec pause = {0, 400 * 1000 * 1000};
    nanosleep(&pause, NULL);
    assert_true(push_ok(d, m) > 0);
    rep = redisCommand(c, "GET t5:writer");
    assert_string_equal(rep->str, "host-d:/state");
    freeReplyObject(rep);
    redisFree(c);
    fr_publish_close(b);
    fr_publish_close(d);
    fr_model_free(m);
}

/* A Redis with a password: refused without it (a message naming the variable to set), served with
 * FRESHET_REDIS_PASSWORD, refused with a wrong one. */
static void test_password(void **state)
{
    redis_srv *s = need_redis(state);
    char err[512];
    redisContext *admin = redisConnect("127.0.0.1", s->port);
    freeReplyObject(redisCommand(admin, "CONFIG SET requirepass s3cret"));
    fr_model *m = new_model();
    train(m, 100, 9, 20);
    unsetenv("FRESHET_REDIS_PASSWORD");
    fr_publisher *p = fr_publish_open("127.0.0.1", s->port, "t6", 2, NULL, err, sizeof err);
    uint64_t v;
    if (p) {
        assert_int_equal(fr_publish_push(p, m, NULL, &v, err, sizeof err), -1);
        fr_publish_close(p);
    }
    assert_non_null(strstr(err, "NOAUTH"));
    setenv("FRESHET_REDIS_PASSWORD", "wrong", 1);
    assert_null(fr_publish_open("127.0.0.1", s->port, "t6", 2, NULL, err, sizeof err));
    assert_non_null(strstr(err, "refused FRESHET_REDIS_PASSWORD"));
    setenv("FRESHET_REDIS_PASSWORD", "s3cret", 1);
    p = fr_publish_open("127.0.0.1", s->port, "t6", 2, NULL, err, sizeof err);
    if (!p) fail_msg("open with the password: %s", err);
    push_ok(p, m);
    fr_reader *r = fr_reader_open("127.0.0.1", s->port, "t6", err, sizeof err);
    if (!r) fail_msg("reader with the password: %s", err);
    assert_int_equal(fr_reader_load_active(r, err, sizeof err), 0);
    fr_reader_close(r);
    fr_publish_close(p);
    unsetenv("FRESHET_REDIS_PASSWORD");
    freeReplyObject(redisCommand(admin, "AUTH s3cret"));
    redisReply *rep = redisCommand(admin, "CONFIG SET requirepass %s", ""); /* no password again */
    assert_int_equal(rep->type, REDIS_REPLY_STATUS);
    freeReplyObject(rep);
    redisFree(admin);
    fr_model_free(m);
}

/* One raw command (printf-style, %b for binary) on a throw-away connection; the reply is freed. */
static void redis_do(int port, const char *fmt, ...)
{
    redisContext *c = redisConnect("127.0.0.1", port);
    assert_non_null(c);
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    if (r->type == REDIS_REPLY_ERROR) fail_msg("redis: %s", r->str);
    freeReplyObject(r);
    redisFree(c);
}

/* The row hash of (table, key) and the key as its 8-byte field. */
static void row_key(char *hkey, size_t cap, int port, const char *prefix, uint32_t table, uint64_t key, unsigned char field[8])
{
    assert_true(cap >= FR_REDIS_KEY_MAX);
    row_hash_key(hkey, port, prefix, table, key, -1, field);
}

static fr_verify_report verify(int port, const char *prefix, const fr_model *m)
{
    fr_verify_report rep;
    char err[512];
    if (fr_verify_redis("127.0.0.1", port, prefix, m, &rep, err, sizeof err) != 0) fail_msg("verify: %s", err);
    for (int i = 0; i < rep.nnotes; i++) print_message("  verify: %s\n", rep.notes[i]);
    return rep;
}

static int first_row_cb(const fr_row_view *r, void *ctx)
{
    *(fr_row_view *)ctx = *r;
    return 1;
}

/* fr_verify finds each kind of difference between a model and what Redis serves. */
static void test_verify(void **state)
{
    redis_srv *s = need_redis(state);
    char err[512];
    fr_model *m = new_model();
    train(m, 400, 31, 50);
    fr_publisher *p = fr_publish_open("127.0.0.1", s->port, "t7", 2, NULL, err, sizeof err);
    assert_non_null(p);
    push_ok(p, m);
    fr_verify_report rep = verify(s->port, "t7", m);
    assert_true(fr_verify_ok(&rep));
    assert_int_equal(rep.model_rows, count_rows(m, 0));
    assert_int_equal(rep.redis_rows, rep.model_rows);
    assert_int_equal(rep.equal, rep.model_rows);
    assert_int_equal(rep.dense_count, fr_model_dense_count(m));
    assert_int_equal(rep.active_version, fr_model_version(m));

    fr_row_view row;
    assert_int_equal(fr_model_foreach_row(m, 0, first_row_cb, &row), 1);
    char hkey[FR_REDIS_KEY_MAX];
    unsigned char field[8];
    /* a row missing */
    row_key(hkey, sizeof hkey, s->port, "t7", row.table, row.key, field);
    redis_do(s->port, "HDEL %s %b", hkey, field, sizeof field);
    rep = verify(s->port, "t7", m);
    assert_false(fr_verify_ok(&rep));
    assert_int_equal(rep.missing, 1);
    assert_int_equal(rep.extra + rep.different, 0);
    /* a row with another value */
    redis_do(s->port, "HSET %s %b %s", hkey, field, sizeof field, "not a row");
    rep = verify(s->port, "t7", m);
    assert_int_equal(rep.different, 1);
    assert_int_equal(rep.missing + rep.extra, 0);
    /* rows the model does not hold: in a table it has, in one it does not */
    row_key(hkey, sizeof hkey, s->port, "t7", 0, 0xabcdef12345ULL, field);
    redis_do(s->port, "HSET %s %b %s", hkey, field, sizeof field, "stale");
    redis_do(s->port, "HSET t7:emb:{t9s3} a b c d");
    rep = verify(s->port, "t7", m);
    assert_int_equal(rep.different, 1);
    assert_int_equal(rep.extra, 3);
    assert_int_equal(rep.missing, 0);
    assert_int_equal(rep.redis_rows, rep.model_rows + 3);

    /* rows and dense parameters the push has not carried yet */
    fr_publish_close(p);
    p = fr_publish_open("127.0.0.1", s->port, "t7", 2, NULL, err, sizeof err);
    push_ok(p, m); /* a full push: every row written, the strays of the tables the model has removed */
    redis_do(s->port, "DEL t7:emb:{t9s3}");
    rep = verify(s->port, "t7", m);
    assert_true(fr_verify_ok(&rep));
    train(m, 64, 32, 50);
    rep = verify(s->port, "t7", m);
    assert_false(fr_verify_ok(&rep));
    assert_true(rep.different > 0);
    assert_true(rep.dense_different > 0);

    /* nothing published under a prefix */
    rep = verify(s->port, "t7-none", m);
    assert_false(rep.loaded);
    assert_int_equal(rep.missing, count_rows(m, 0));
    assert_false(fr_verify_ok(&rep));
    fr_publish_close(p);
    fr_model_free(m);
}

/* Rows in Redis under a prefix: the fields of every row hash. */
static long long redis_rows(int port, const char *prefix)
{
    redisContext *c = redisConnect("127.0.0.1", port);
    assert_non_null(c);
    long long n = 0;
    redisReply *keys = redisCommand(c, "KEYS %s:emb:*", prefix);
    assert_non_null(keys);
    for (size_t i = 0; i < keys->elements; i++) {
        redisReply *h = redisCommand(c, "HLEN %s", keys->element[i]->str);
        n += h->integer;
        freeReplyObject(h);
    }
    freeReplyObject(keys);
    redisFree(c);
    return n;
}

/* A full push leaves Redis holding exactly the model's rows: whatever an abandoned run (a restart
 * from an older checkpoint) or another model (with fewer tables) left under the prefix is
 * removed, and "deleted" counts the rows removed. */
static void test_full_push_leaves_exactly_the_model(void **state)
{
    redis_srv *s = need_redis(state);
    char err[512];
    /* two runs from one state: the first got further and published; the second is what the restarted
     * daemon holds */
    fr_model *ahead = new_model(), *restored = new_model();
    train(ahead, 400, 41, 60);
    train(restored, 400, 41, 60);
    train(ahead, 800, 42, 3000);
    train(restored, 200, 43, 3000);
    fr_publisher *p = fr_publish_open("127.0.0.1", s->port, "t8", 2, NULL, err, sizeof err);
    assert_non_null(p);
    push_ok(p, ahead);
    fr_publish_close(p);
    long long before = redis_rows(s->port, "t8");
    assert_int_equal(before, (long long)count_rows(ahead, 0));

    fr_verify_report rep = verify(s->port, "t8", restored);
    uint64_t stale = rep.extra;
    assert_true(stale > 100);
    p = fr_publish_open("127.0.0.1", s->port, "t8", 2, NULL, err, sizeof err);
    fr_publish_info info = {.manifest_json = DAEMON_MANIFEST};
    uint64_t v;
    if (fr_publish_push(p, restored, &info, &v, err, sizeof err) != 0) fail_msg("push: %s", err);
    fr_publish_stats st;
    fr_publish_last_stats(p, &st);
    fr_publish_close(p);
    rep = verify(s->port, "t8", restored);
    print_message("  restart from an older state: %lld rows in redis before, %llu extra after, %zu deleted\n", before,
                  (unsigned long long)rep.extra, st.deleted);
    assert_int_equal(rep.extra, 0);
    assert_int_equal(rep.missing + rep.different, 0);
    assert_true(fr_verify_ok(&rep));
    /* deleted = the rows removed: those Redis held and the restored model does not */
    assert_int_equal(st.full, 1);
    assert_int_equal(st.deleted, stale);
    assert_int_equal(redis_rows(s->port, "t8"), (long long)count_rows(restored, 0));

    /* another model with one table fewer on the same prefix */
    fr_model_config c;
    small_config(&c);
    c.n_cat = 2;
    fr_model *other = fr_model_create(&c, err, sizeof err);
    assert_non_null(other);
    train(other, 300, 44, 400);
    before = redis_rows(s->port, "t8");
    stale = verify(s->port, "t8", other).extra;
    p = fr_publish_open("127.0.0.1", s->port, "t8", 2, NULL, err, sizeof err);
    if (fr_publish_push(p, other, &info, &v, err, sizeof err) != 0) fail_msg("push: %s", err);
    fr_publish_last_stats(p, &st);
    fr_publish_close(p);
    rep = verify(s->port, "t8", other);
    print_message("  another model: %lld rows in redis before, %llu extra after, %zu deleted\n", before,
                  (unsigned long long)rep.extra, st.deleted);
    assert_true(fr_verify_ok(&rep));
    assert_int_equal(st.deleted, stale);
    assert_int_equal(redis_rows(s->port, "t8"), (long long)count_rows(other, 0));
    assert_int_equal(redis_int(s->port, "EXISTS %s", "t8:emb:{t3s0}") + redis_int(s->port, "HLEN %s", "t8:emb:{t3s0}"),
                     0);
    fr_model_free(other);
    fr_model_free(ahead);
    fr_model_free(restored);
}

/* ---- shard counts sized to the tables (format 3) --------------------------------------------- */

/* Every row hash of the prefix: how many, how many in the compact encoding (listpack; ziplist before
 * Redis 7), the largest HLEN, and how many hold table `table` under `shards` hashes. */
typedef struct {
    long hashes, compact, largest; /* every row hash of the prefix */
    long of_count, of_count_compact, of_count_largest; /* those of `table` under `shards` hashes */
} hash_census;

static hash_census census(int port, const char *prefix, uint32_t table, uint32_t shards)
{
    hash_census h = {0, 0, 0, 0, 0, 0};
    redisContext *c = redisConnect("127.0.0.1", port);
    assert_non_null(c);
    char cursor[32] = "0", mine[64];
    snprintf(mine, sizeof mine, "%s:emb:{t%un%us", prefix, table, shards);
    do {
        redisReply *r = redisCommand(c, "SCAN %s MATCH %s:emb:* COUNT 1000", cursor, prefix);
        assert_int_equal(r->type, REDIS_REPLY_ARRAY);
        snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
        for (size_t i = 0; i < r->element[1]->elements; i++) {
            const char *k = r->element[1]->element[i]->str;
            redisReply *e = redisCommand(c, "OBJECT ENCODING %s", k), *l = redisCommand(c, "HLEN %s", k);
            int compact = strcmp(e->str, "listpack") == 0 || strcmp(e->str, "ziplist") == 0;
            h.hashes++;
            h.compact += compact;
            if (l->integer > h.largest) h.largest = l->integer;
            if (strncmp(k, mine, strlen(mine)) == 0) {
                h.of_count++;
                h.of_count_compact += compact;
                if (l->integer > h.of_count_largest) h.of_count_largest = l->integer;
            }
            freeReplyObject(e);
            freeReplyObject(l);
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    redisFree(c);
    return h;
}

/* tables[t].shards of the active version's manifest. */
static uint32_t active_shards(int port, const char *prefix, uint32_t table)
{
    int lay = active_layout(port, prefix, table);
    assert_true(lay >= 0);
    return fr_redis_layout_shards(lay);
}

static int copy_row_cb(const fr_row_view *row, void *ctx)
{
    return fr_model_put_row(ctx, row->table, row->key, row->version, row->weights, NULL);
}

/* The reader scores, bit for bit, what the trainer's current rows with the dense parameters `dense`
 * give: a rollback restores a version's dense weights, rows stay at their latest values. */
static void assert_reader_scores(fr_reader *r, const fr_model *m, const float *dense, size_t count, uint64_t seed)
{
    char err[512];
    fr_model *w = fr_model_create_weights_only(fr_model_get_config(m), err, sizeof err);
    assert_non_null(w);
    assert_int_equal(fr_model_set_dense(w, dense, NULL, count), 0);
    assert_int_equal(fr_model_foreach_row(m, 0, copy_row_cb, w), 0);
    uint64_t s = seed;
    for (int i = 0; i < 200; i++) {
        fr_features f;
        /* keys of the trained vocabulary, so nearly every row is read */
        make_features(&s, fr_model_get_config(m), i % 2 ? 50 : 20000, &f);
        float want[FR_NTASKS], got[FR_NTASKS];
        fr_model_predict(w, &f, i % 2, want);
        if (fr_reader_score(r, &f, i % 2, got, err, sizeof err) != 0) fail_msg("score: %s", err);
        if (memcmp(want, got, sizeof want) != 0)
            fail_msg("impression %d: reader %.9g %.9g, trainer %.9g %.9g", i, got[0], got[1], want[0], want[1]);
    }
    fr_model_free(w);
}

/* A table that outgrows its shard count moves to more hashes in the push before the flip: every
 * hash stays in the compact encoding under the smallest default limit (128 entries), the reader
 * scores the same rows through either count, a rollback to the version of the old count serves the
 * latest rows (both counts are kept current while it is retained), freshet verify passes at each
 * step, and the old hashes go once no retained version reads them. */
static void test_reshard_keeps_hashes_compact(void **state)
{
    redis_srv *s = need_redis(state);
    char err[512];
    redis_do(s->port, "CONFIG SET hash-max-listpack-entries 128"); /* Redis < 7's default, the smallest */
    fr_model *m = new_model();
    train(m, 400, 1, 50);
    fr_publisher *p = fr_publish_open("127.0.0.1", s->port, "rs1", 2, NULL, err, sizeof err);
    assert_non_null(p);
    uint64_t v1 = push_ok(p, m);
    assert_int_equal(active_shards(s->port, "rs1", 1), 1); /* 50 rows: one hash */
    fr_reader *r = fr_reader_open("127.0.0.1", s->port, "rs1", err, sizeof err);
    assert_non_null(r);
    if (fr_reader_load_active(r, err, sizeof err) != 0) fail_msg("load: %s", err);
    size_t count;
    const float *d = fr_reader_dense(r, &count);
    float *dense1 = malloc(count * sizeof *dense1);
    memcpy(dense1, d, count * sizeof *dense1);
    assert_reader_scores(r, m, dense1, count, 3);
    assert_true(fr_verify_ok((fr_verify_report[]){verify(s->port, "rs1", m)}));

    /* table 1 grows to ~20 000 rows: past 128 x 64, where 64 fixed hashes leave the listpack encoding */
    train(m, 20000, 2, 20000);
    size_t rows1 = fr_model_row_count(m, 1);
    assert_true(rows1 > 128 * 64);
    uint64_t v2 = push_ok(p, m);
    fr_publish_stats st;
    fr_publish_last_stats(p, &st);
    assert_true(st.resharded >= 1);
    assert_int_equal(st.full, 0); /* the new hashes were filled from the old ones, not by a full push */
    uint32_t n2 = active_shards(s->port, "rs1", 1);
    assert_int_equal(n2, (uint32_t)1 << fr_redis_layout_for_rows(rows1));
    hash_census h = census(s->port, "rs1", 1, n2);
    /* the new hashes are compact; the old one (v1 is retained, so it is kept current) is not, until v1 goes */
    assert_int_equal(h.of_count, n2);
    assert_int_equal(h.of_count_compact, n2);
    assert_true(h.of_count_largest < 128);
    assert_int_equal(census(s->port, "rs1", 1, 1).of_count, 1); /* v1 is retained: its hash stays */
    fr_verify_report rep = verify(s->port, "rs1", m);
    assert_true(fr_verify_ok(&rep));
    if (fr_reader_load_active(r, err, sizeof err) != 0) fail_msg("load: %s", err);
    assert_int_equal(fr_reader_version(r), v2);
    d = fr_reader_dense(r, &count);
    assert_memory_equal(d, fr_model_dense_params(m), count * sizeof *d);
    assert_reader_scores(r, m, d, count, 4);
    assert_row_counts(r, m);

    /* more rows while both counts are live: written to both */
    train(m, 200, 5, 20000);
    uint64_t v3 = push_ok(p, m);
    assert_true(fr_verify_ok((fr_verify_report[]){verify(s->port, "rs1", m)}));
    /* v1 is retired now (keep 2): its hash is gone */
    assert_int_equal(census(s->port, "rs1", 1, 1).of_count, 0);

    assert_true(v3 > v2 && v2 > v1);
    h = census(s->port, "rs1", 1, n2);
    assert_int_equal(h.compact, h.hashes); /* every row hash of the prefix */
    assert_true(h.largest < 128);
    free(dense1);
    fr_reader_close(r);
    fr_publish_close(p);
    fr_model_free(m);
    redis_do(s->port, "CONFIG SET hash-max-listpack-entries 512");
}

/* A rollback to a retained version of the old shard count: its hashes were kept current, so the
 * reader serves the latest rows through them, scoring what the trainer's rows give with that
 * version's dense weights; freshet verify passes in the rolled-back state. */
static void test_rollback_across_a_reshard(void **state)
{
    redis_srv *s = need_redis(state);
    char err[512];
    fr_model *m = new_model();
    train(m, 400, 1, 50);
    fr_publisher *p = fr_publish_open("127.0.0.1", s->port, "rs2", 3, NULL, err, sizeof err);
    assert_non_null(p);
    uint64_t v1 = push_ok(p, m);
    size_t count = fr_model_dense_count(m);
    float *dense1 = malloc(count * sizeof *dense1);
    memcpy(dense1, fr_model_dense_params(m), count * sizeof *dense1);
    train(m, 6000, 2, 20000); /* table 1 moves */
    uint64_t v2 = push_ok(p, m);
    fr_publish_stats st;
    fr_publish_last_stats(p, &st);
    assert_true(st.resharded >= 1);
    train(m, 300, 3, 20000); /* rows change after the move: written under both counts */
    uint64_t v3 = push_ok(p, m);
    assert_true(v3 > v2);

    uint64_t from, now;
    assert_int_equal(fr_publish_rollback("127.0.0.1", s->port, "rs2", v1, &from, &now, err, sizeof err), 0);
    assert_int_equal(now, v1);
    fr_reader *r = fr_reader_open("127.0.0.1", s->port, "rs2", err, sizeof err);
    assert_non_null(r);
    if (fr_reader_load_active(r, err, sizeof err) != 0) fail_msg("load: %s", err);
    assert_int_equal(fr_reader_version(r), v1);
    assert_int_equal(active_shards(s->port, "rs2", 1), 1);
    assert_reader_scores(r, m, dense1, count, 6);
    assert_row_counts(r, m);
    /* rows as freshet verify sees them: all of them under both counts (the dense weights are v1's) */
    fr_verify_report rep = verify(s->port, "rs2", m);
    assert_int_equal(rep.missing + rep.extra + rep.different, 0);
    assert_true(rep.equal >= rep.model_rows + fr_model_row_count(m, 1)); /* table 1 counted under both */

    /* released: the next push publishes at the new count, and the old hash goes once v1 is retired */
    uint64_t held;
    assert_int_equal(fr_publish_release("127.0.0.1", s->port, "rs2", &held, err, sizeof err), 0);
    for (int i = 0; i < 3; i++) {
        train(m, 50, 10 + (uint64_t)i, 20000);
        push_ok(p, m);
    }
    uint32_t n = active_shards(s->port, "rs2", 1);
    assert_true(n > 1);
    assert_int_equal(census(s->port, "rs2", 1, 1).of_count, 0);
    if (fr_reader_load_active(r, err, sizeof err) != 0) fail_msg("load: %s", err);
    assert_reader_scores(r, m, fr_model_dense_params(m), count, 7);
    assert_true(fr_verify_ok((fr_verify_report[]){verify(s->port, "rs2", m)}));
    free(dense1);
    fr_reader_close(r);
    fr_publish_close(p);
    fr_model_free(m);
}

/* A daemon killed while it moved a table (rows written to the new hashes, no flip) restarts from its
 * last checkpoint, which may not need the move: its first push (full) removes the hashes no retained
 * version reads, and freshet verify passes. */
static void test_reshard_interrupted(void **state)
{
    redis_srv *s = need_redis(state);
    char err[512];
    fr_model *m = new_model(), *ckpt = new_model();
    train(m, 400, 1, 50);
    train(ckpt, 400, 1, 50); /* the checkpoint: the same state, deterministically */
    fr_publisher *p = fr_publish_open("127.0.0.1", s->port, "rs3", 2, NULL, err, sizeof err);
    assert_non_null(p);
    push_ok(p, m);
    train(m, 6000, 2, 20000);
    fr_publish_test_fail_before_flip(p, 1);
    uint64_t v;
    assert_int_equal(fr_publish_push(p, m, NULL, &v, err, sizeof err), -1);
    fr_publish_close(p);
    uint32_t moved_to = (uint32_t)1 << fr_redis_layout_for_rows(fr_model_row_count(m, 1));
    assert_true(census(s->port, "rs3", 1, moved_to).of_count > 0); /* the dead push's hashes */
    assert_false(fr_verify_ok((fr_verify_report[]){verify(s->port, "rs3", ckpt)}));

    p = fr_publish_open("127.0.0.1", s->port, "rs3", 2, NULL, err, sizeof err);
    assert_non_null(p);
    if (fr_publish_push(p, ckpt, NULL, &v, err, sizeof err) != 0) fail_msg("push: %s", err);
    assert_int_equal(census(s->port, "rs3", 1, moved_to).of_count, 0);
    assert_true(fr_verify_ok((fr_verify_report[]){verify(s->port, "rs3", ckpt)}));
    /* and the same move, completed by the next process */
    fr_publish_close(p);
    p = fr_publish_open("127.0.0.1", s->port, "rs3", 2, NULL, err, sizeof err);
    assert_non_null(p);
    if (fr_publish_push(p, m, NULL, &v, err, sizeof err) != 0) fail_msg("push: %s", err);
    assert_int_equal(census(s->port, "rs3", 1, moved_to).of_count, (long)moved_to);
    assert_true(fr_verify_ok((fr_verify_report[]){verify(s->port, "rs3", m)}));
    fr_publish_close(p);
    fr_model_free(m);
    fr_model_free(ckpt);
}

/* The publisher reads Redis' hash settings once and says which one to raise when row hashes would
 * leave the compact encoding: too few entries, or a row value (12 + 4 x emb_dim bytes) above the
 * value limit. */
static void test_hash_settings_checked(void **state)
{
    redis_srv *s = need_redis(state);
    char err[512];
    fr_model *m = new_model();
    train(m, 100, 1, 50);
    redis_do(s->port, "CONFIG SET hash-max-listpack-value 16"); /* emb_dim 4: rows of 28 bytes */
    redis_do(s->port, "CONFIG SET hash-max-listpack-entries 64");
    fr_publisher *p = fr_publish_open("127.0.0.1", s->port, "hs1", 2, NULL, err, sizeof err);
    assert_non_null(p);
    assert_string_equal(fr_publish_redis_note(p), "");
    push_ok(p, m);
    const char *note = fr_publish_redis_note(p);
    print_message("  note: %s\n", note);
    assert_non_null(strstr(note, "hash-max-listpack-value 16 but a row value is 28 bytes"));
    assert_non_null(strstr(note, "CONFIG SET hash-max-listpack-value 28"));
    assert_non_null(strstr(note, "hash-max-listpack-entries 64"));
    fr_publish_close(p);
    redis_do(s->port, "CONFIG SET hash-max-listpack-value 64");
    redis_do(s->port, "CONFIG SET hash-max-listpack-entries 512");
    p = fr_publish_open("127.0.0.1", s->port, "hs1", 2, NULL, err, sizeof err);
    push_ok(p, m);
    assert_string_equal(fr_publish_redis_note(p), "");
    fr_publish_close(p);
    fr_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_push_and_serve),
        cmocka_unit_test(test_redis_down),
        cmocka_unit_test(test_reader_errors),
        cmocka_unit_test(test_deleted_row_reads_zero),
        cmocka_unit_test(test_writer_lease),
        cmocka_unit_test(test_password),
        cmocka_unit_test(test_verify),
        cmocka_unit_test(test_full_push_leaves_exactly_the_model),
        cmocka_unit_test(test_reshard_keeps_hashes_compact),
        cmocka_unit_test(test_rollback_across_a_reshard),
        cmocka_unit_test(test_reshard_interrupted),
        cmocka_unit_test(test_hash_settings_checked),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
