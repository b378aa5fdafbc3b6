/* The metrics endpoint (fr_http) over a real socket, and the page the pipeline renders for it. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "fr_config.h"
#include "fr_http.h"
#include "fr_pipeline.h"
#include "tmpdir.h"

/* One HTTP/1.0 request; the whole response (status line, headers, body) into buf. */
static void http(int port, const char *method, const char *path, char *buf, size_t cap)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    char req[256];
    int n = snprintf(req, sizeof req, "%s %s HTTP/1.0\r\nHost: localhost\r\n\r\n", method, path);
    assert_int_equal(write(fd, req, (size_t)n), n);
    size_t got = 0;
    ssize_t r;
    while (got + 1 < cap && (r = read(fd, buf + got, cap - 1 - got)) > 0) got += (size_t)r;
    buf[got] = '\0';
    close(fd);
}

static const char *body_of(const char *response)
{
    const char *b = strstr(response, "\r\n\r\n");
    assert_non_null(b);
    return b + 4;
}

static void test_listen_refused(void **state)
{
    (void)state;
    char err[256];
    const char *bad[] = {"", "9464", "localhost:9464", "127.0.0.1:", "127.0.0.1:99999", "127.0.0.1:12x", ":9464"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        assert_null(fr_http_start(bad[i], 60, err, sizeof err));
        assert_non_null(strstr(err, "metrics.listen"));
    }
    /* a port already taken is refused, not silently ignored */
    fr_http *a = fr_http_start("127.0.0.1:0", 60, err, sizeof err);
    assert_non_null(a);
    char taken[64];
    snprintf(taken, sizeof taken, "127.0.0.1:%d", fr_http_port(a));
    assert_null(fr_http_start(taken, 60, err, sizeof err));
    assert_non_null(strstr(err, "cannot listen"));
    fr_http_stop(a);
}

static void test_pages_and_health(void **state)
{
    (void)state;
    char err[256], resp[4096];
    fr_http *h = fr_http_start("127.0.0.1:0", 0.3, err, sizeof err);
    if (!h) fail_msg("start: %s", err);
    int port = fr_http_port(h);
    assert_true(port > 0);

    http(port, "GET", "/healthz", resp, sizeof resp);
    assert_non_null(strstr(resp, " 200 "));
    assert_string_equal(body_of(resp), "ok\n");

    const char page[] = "# TYPE freshet_x counter\nfreshet_x 42\n";
    assert_int_equal(fr_http_set_page(h, page, strlen(page)), 0);
    http(port, "GET", "/metrics", resp, sizeof resp);
    assert_non_null(strstr(resp, " 200 "));
    assert_non_null(strstr(resp, "text/plain; version=0.0.4"));
    assert_string_equal(body_of(resp), page);

    http(port, "GET", "/nothing", resp, sizeof resp);
    assert_non_null(strstr(resp, " 404 "));
    http(port, "POST", "/metrics", resp, sizeof resp);
    assert_non_null(strstr(resp, " 405 "));

    fr_http_set_unhealthy(h, "checkpoint failing");
    http(port, "GET", "/healthz", resp, sizeof resp);
    assert_non_null(strstr(resp, " 503 "));
    assert_string_equal(body_of(resp), "unhealthy: checkpoint failing\n");
    fr_http_set_unhealthy(h, NULL);

    /* no page for longer than stale_after: the loop is stuck */
    struct timespec pause = {0, 400 * 1000 * 1000};
    nanosleep(&pause, NULL);
    http(port, "GET", "/healthz", resp, sizeof resp);
    assert_non_null(strstr(resp, " 503 "));
    assert_non_null(strstr(body_of(resp), "stale: the loop has not reported"));
    assert_int_equal(fr_http_set_page(h, page, strlen(page)), 0);
    http(port, "GET", "/healthz", resp, sizeof resp);
    assert_non_null(strstr(resp, " 200 "));
    fr_http_stop(h);
}

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000 * 1000};
    nanosleep(&ts, NULL);
}

/* A client at loopback address `from` (127.0.0.x) that sends a request line and one header, then
 * stops: the start of a slow request. -1 when the connection fails. */
static int slow_client(int port, const char *from)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in src = {.sin_family = AF_INET}, dst = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, from, &src.sin_addr);
    inet_pton(AF_INET, "127.0.0.1", &dst.sin_addr);
    assert_int_equal(bind(fd, (struct sockaddr *)&src, sizeof src), 0);
    if (connect(fd, (struct sockaddr *)&dst, sizeof dst) != 0) {
        close(fd);
        return -1;
    }
    const char start[] = "GET /metrics HTTP/1.1\r\nHost: localhost\r\n";
    if (write(fd, start, sizeof start - 1) != (ssize_t)(sizeof start - 1)) {
        close(fd);
        return -1;
    }
    return fd;
}

/* 1 when the server has closed (or reset) the connection: reading finds the end or an error. */
static int closed_by_server(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 0) <= 0) return 0;
    char b[256];
    ssize_t n = recv(fd, b, sizeof b, MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

/* One more byte of an endless header from every client still open: each resets the idle timeout. */
static void trickle(int *fds, int n)
{
    for (int i = 0; i < n; i++)
        if (fds[i] >= 0 && (closed_by_server(fds[i]) || send(fds[i], "x", 1, MSG_NOSIGNAL) != 1)) {
            close(fds[i]);
            fds[i] = -1;
        }
}

/* GET path from 127.0.0.1 within timeout_ms; the HTTP status, or 0 when nothing came in time. */
static int timed_get(int port, const char *path, long timeout_ms)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    int status = 0;
    char req[128], resp[512];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n", path);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0 && write(fd, req, (size_t)n) == n) {
        ssize_t got = read(fd, resp, sizeof resp - 1);
        if (got > 12) {
            resp[got] = '\0';
            sscanf(resp, "HTTP/1.%*d %d", &status);
        }
    }
    close(fd);
    return status;
}

/* 40 clients from one address trickle their requests a byte at a time, which resets the idle
 * timeout: before, they took every connection slot and /healthz went unanswered for as long as
 * they went on (a liveness probe would have restarted a healthy daemon). Now one address holds at
 * most a few connections, every request has a deadline whatever it sends, and the probe from
 * elsewhere answers at once throughout. */
static void test_slow_clients(void **state)
{
    (void)state;
    char err[256];
    fr_http *h = fr_http_start("127.0.0.1:0", 60, err, sizeof err);
    if (!h) fail_msg("start: %s", err);
    int port = fr_http_port(h);
    enum { N = 40 };
    int fds[N];
    for (int i = 0; i < N; i++) fds[i] = slow_client(port, "127.0.0.2");
    double started = mono_now(), worst = 0;
    int probes = 0;
    while (mono_now() - started < FR_HTTP_REQUEST_SECONDS + 1.5) {
        trickle(fds, N);
        double t0 = mono_now();
        int status = timed_get(port, "/healthz", 1000);
        double took = mono_now() - t0;
        if (status != 200) fail_msg("/healthz under 40 slow clients: status %d after %.2f s", status, took);
        if (took > worst) worst = took;
        probes++;
        sleep_ms(250);
    }
    print_message("  %d probes of /healthz under 40 slow clients, slowest %.3f s\n", probes, worst);
    assert_true(worst < 0.5);
    /* past the deadline every slow request was cut, though each kept sending */
    trickle(fds, N);
    int open_left = 0;
    for (int i = 0; i < N; i++) open_left += fds[i] >= 0 && !closed_by_server(fds[i]);
    assert_int_equal(open_left, 0);
    for (int i = 0; i < N; i++)
        if (fds[i] >= 0) close(fds[i]);
    /* and the address is served again */
    assert_int_equal(timed_get(port, "/healthz", 1000), 200);
    fr_http_stop(h);
}

/* One address cannot hold more than FR_HTTP_PER_CLIENT connections: the others are closed at once. */
static void test_connections_per_client(void **state)
{
    (void)state;
    char err[256];
    fr_http *h = fr_http_start("127.0.0.1:0", 60, err, sizeof err);
    if (!h) fail_msg("start: %s", err);
    enum { N = 3 * FR_HTTP_PER_CLIENT };
    int fds[N];
    for (int i = 0; i < N; i++) fds[i] = slow_client(fr_http_port(h), "127.0.0.3");
    sleep_ms(300);
    int open = 0;
    for (int i = 0; i < N; i++)
        if (fds[i] >= 0) {
            open += !closed_by_server(fds[i]);
            close(fds[i]);
        }
    assert_int_equal(open, FR_HTTP_PER_CLIENT);
    fr_http_stop(h);
}

/* The pipeline's page counts what it was fed, names scenarios, and is valid exposition text. */
static void test_pipeline_page(void **state)
{
    (void)state;
    char *dir = tmpdir_make("http");
    fr_config c;
    fr_config_defaults(&c);
    snprintf(c.checkpoint_dir, sizeof c.checkpoint_dir, "%s", dir);
    c.redis_host[0] = '\0';
    char err[512];
    fr_pipeline *p = fr_pipeline_open(&c, err, sizeof err);
    if (!p) fail_msg("open: %s", err);
    int64_t off;
    fr_pipeline_register_source(p, "file", &off);
    const char *msgs[] = {
        "{\"type\":\"impression\",\"id\":\"i-1\",\"ts\":1764547208121,\"scenario\":\"video\",\"features\":"
        "{\"user_id\":\"u1\",\"ad_id\":\"a1\"}}",
        "{\"type\":\"impression\",\"id\":\"i-1\",\"ts\":1764547208121,\"scenario\":\"video\",\"features\":"
        "{\"user_id\":\"u1\",\"ad_id\":\"a1\"}}", /* a duplicate */
        "{not json",
    };
    for (int i = 0; i < 3; i++)
        assert_int_equal(fr_pipeline_message(p, "file", i + 1, msgs[i], strlen(msgs[i]), err, sizeof err), 0);
    assert_int_equal(fr_pipeline_checkpoint(p, err, sizeof err), 0);

    char *page = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&page, &len);
    fr_pipeline_write_metrics(p, out);
    fclose(out);
    assert_non_null(strstr(page, "\nfreshet_messages_consumed_total 3\n"));
    assert_non_null(strstr(page, "\nfreshet_messages_rejected_total{reason=\"malformed_json\"} 1\n"));
    assert_non_null(
        strstr(page, "\nfreshet_join_events_total{type=\"impression\",state=\"dropped\",reason=\"duplicate\"} 1\n"));
    assert_non_null(strstr(page, "\nfreshet_join_pending_events{type=\"impression\"} 1\n"));
    assert_non_null(strstr(page, "\nfreshet_progressive_auc{task=\"ctr\",scenario=\"third_party\"} "));
    assert_non_null(strstr(page, "\nfreshet_progressive_logloss{task=\"cvr\",scenario=\"all\"} "));
    assert_non_null(strstr(page, "\nfreshet_checkpoints_total 1\n"));
    assert_non_null(strstr(page, "\nfreshet_watermark_timestamp_seconds "));
    /* every sample line belongs to a declared family: "# TYPE freshet_<name> ..." precedes it */
    char *save = NULL, *copy = strdup(page);
    const char *family = "";
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (strncmp(line, "# TYPE ", 7) == 0) {
            family = line + 7;
            continue;
        }
        if (line[0] == '#') continue;
        size_t flen = strcspn(family, " ");
        if (strncmp(line, family, flen) != 0 || (line[flen] != ' ' && line[flen] != '{'))
            fail_msg("sample \"%s\" outside its family \"%s\"", line, family);
    }
    free(copy);
    free(page);
    fr_pipeline_close(p);
    tmpdir_remove(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_listen_refused),
        cmocka_unit_test(test_pages_and_health),
        cmocka_unit_test(test_pipeline_page),
        cmocka_unit_test(test_slow_clients),
        cmocka_unit_test(test_connections_per_client),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
