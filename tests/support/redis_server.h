/* redis_server.h: a private redis-server for the unit tests that need one (test_publish,
 * test_serving, test_lifecycle), on a free loopback port, without persistence. Used as a cmocka
 * group fixture: group_setup starts it (or marks every test skipped when redis-server is not
 * installed), need_redis restarts it if a test stopped it, group_teardown stops it.
 * Header-only, included (after cmocka.h) by one test file per executable. */
#ifndef FR_TEST_REDIS_SERVER_H
#define FR_TEST_REDIS_SERVER_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* ---- a private redis-server ----------------------------------------------------------------- */

typedef struct {
    int available; /* redis-server found on PATH */
    pid_t pid;     /* 0 when stopped */
    int port;
} redis_srv;

static int on_path(const char *name)
{
    const char *path = getenv("PATH");
    if (!path) return 0;
    char *dup = strdup(path);
    int found = 0;
    for (char *save = NULL, *dir = strtok_r(dup, ":", &save); dir && !found; dir = strtok_r(NULL, ":", &save)) {
        char full[1024];
        snprintf(full, sizeof full, "%s/%s", dir, name);
        found = access(full, X_OK) == 0;
    }
    free(dup);
    return found;
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static int redis_ping(int port)
{
    struct timeval tv = {0, 200000};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    int ok = 0;
    if (c && !c->err) {
        redisReply *r = redisCommand(c, "PING");
        ok = r && r->type == REDIS_REPLY_STATUS;
        if (r) freeReplyObject(r);
    }
    if (c) redisFree(c);
    return ok;
}

static void redis_start(redis_srv *s)
{
    char port[16];
    snprintf(port, sizeof port, "%d", s->port);
    char *argv[] = {"redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                    "--daemonize", "no", "--loglevel", "warning", NULL};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    int rc = posix_spawnp(&s->pid, "redis-server", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) fail_msg("cannot start redis-server: %s", strerror(rc));
    for (int i = 0; i < 100; i++) {
        if (redis_ping(s->port)) return;
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    fail_msg("redis-server on port %d did not answer PING within 5 s", s->port);
}

static void redis_stop(redis_srv *s)
{
    if (s->pid <= 0) return;
    kill(s->pid, SIGTERM);
    int st;
    while (waitpid(s->pid, &st, 0) < 0 && errno == EINTR) {
    }
    s->pid = 0;
}

static int group_setup(void **state)
{
    redis_srv *s = calloc(1, sizeof *s);
    if (!s) return -1;
    *state = s;
    s->available = on_path("redis-server");
    if (!s->available) {
        fprintf(stderr, "redis-server is not installed; every test of this file is skipped "
                        "(install the redis-server package to run them)\n");
        return 0;
    }
    s->port = free_port();
    redis_start(s);
    return 0;
}

static int group_teardown(void **state)
{
    redis_srv *s = *state;
    redis_stop(s);
    free(s);
    return 0;
}

static redis_srv *need_redis(void **state)
{
    redis_srv *s = *state;
    if (!s->available) skip();
    if (!s->pid) redis_start(s);
    return s;
}

#endif
