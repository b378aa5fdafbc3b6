/* fr_http: see fr_http.h. */
#include "fr_http.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

/* A connection the sweeper watches; the connection's socket_context. */
typedef struct conn {
    struct conn *prev, *next;
    int fd;
    double deadline; /* monotonic seconds: the request must be done by then */
    int cut;         /* shut down by the sweeper already */
} conn;

struct fr_http {
    struct MHD_Daemon *daemon;
    int port;
    double stale_after;
    pthread_mutex_t mu; /* guards everything below */
    char *page;
    size_t page_len;
    double page_at;     /* monotonic seconds of the last hand-over */
    char unhealthy[256];
    conn *conns;        /* open connections */
    pthread_cond_t wake; /* stops the sweeper */
    int stopping;
    pthread_t sweeper;
};

static double mono_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *type, char *body, size_t len)
{
    /* body is malloc'ed: the response owns it from here */
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    enum MHD_Result ok = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ok;
}

static enum MHD_Result reply_text(struct MHD_Connection *c, unsigned status, const char *text)
{
    size_t len = strlen(text);
    char *body = malloc(len + 1);
    if (!body) return MHD_NO;
    memcpy(body, text, len + 1);
    return reply(c, status, "text/plain; charset=utf-8", body, len);
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                              const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
    (void)version, (void)upload_data, (void)upload_data_size, (void)con_cls;
    fr_http *h = cls;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return reply_text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET and HEAD\n");
    if (strcmp(url, "/metrics") == 0) {
        pthread_mutex_lock(&h->mu);
        size_t len = h->page_len;
        char *body = malloc(len + 1);
        if (body) memcpy(body, h->page ? h->page : "", len + 1);
        pthread_mutex_unlock(&h->mu);
        if (!body) return MHD_NO;
        return reply(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", body, len);
    }
    if (strcmp(url, "/healthz") == 0) {
        char why[320] = "";
        pthread_mutex_lock(&h->mu);
        double age = mono_seconds() - h->page_at;
        if (h->unhealthy[0])
            snprintf(why, sizeof why, "unhealthy: %s\n", h->unhealthy);
        else if (age > h->stale_after)
            snprintf(why, sizeof why, "stale: the loop has not reported for %.0f s (limit %.0f s)\n", age,
                     h->stale_after);
        pthread_mutex_unlock(&h->mu);
        return why[0] ? reply_text(c, MHD_HTTP_SERVICE_UNAVAILABLE, why) : reply_text(c, MHD_HTTP_OK, "ok\n");
    }
    return reply_text(c, MHD_HTTP_NOT_FOUND, "not found: try /metrics or /healthz\n");
}

/* ---- fairness: a deadline per request -------------------------------------------------------
 * libmicrohttpd's connection timeout is an idle timeout: every byte received resets it, so a client
 * sending a byte every few seconds keeps its connection (and before, with 32 of them, every slot).
 * The library has no total-time limit; it tells us when connections open and close, and a sweeper
 * thread shuts down the socket of a connection past its deadline, which the library then sees as
 * the client leaving. A connection carries one request: the handler answers on its first call, for
 * which libmicrohttpd 0.9 closes the connection after the answer (no keep-alive). The library calls the closed notification before it
 * closes the socket, and both sides hold h->mu, so the sweeper never touches a descriptor that was
 * closed and reused. */

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode what)
{
    fr_http *h = cls;
    if (what == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *info = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        conn *k = info ? calloc(1, sizeof *k) : NULL;
        *socket_context = k;
        if (!k) return; /* out of memory: the idle timeout still applies */
        k->fd = info->connect_fd;
        pthread_mutex_lock(&h->mu);
        k->deadline = mono_seconds() + FR_HTTP_REQUEST_SECONDS;
        k->next = h->conns;
        if (h->conns) h->conns->prev = k;
        h->conns = k;
        pthread_mutex_unlock(&h->mu);
    } else if (what == MHD_CONNECTION_NOTIFY_CLOSED && *socket_context) {
        conn *k = *socket_context;
        pthread_mutex_lock(&h->mu);
        if (k->prev) k->prev->next = k->next;
        else h->conns = k->next;
        if (k->next) k->next->prev = k->prev;
        pthread_mutex_unlock(&h->mu);
        free(k);
        *socket_context = NULL;
    }
}

static void *sweep(void *arg)
{
    fr_http *h = arg;
    pthread_mutex_lock(&h->mu);
    while (!h->stopping) {
        double now = mono_seconds();
        for (conn *k = h->conns; k; k = k->next)
            if (!k->cut && now >= k->deadline) {
                shutdown(k->fd, SHUT_RDWR);
                k->cut = 1;
            }
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_nsec += 200 * 1000 * 1000;
        if (until.tv_nsec >= 1000000000L) until.tv_sec++, until.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&h->wake, &h->mu, &until);
    }
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

fr_http *fr_http_start(const char *listen, double stale_after_seconds, char *err, size_t errlen)
{
    char host[64];
    unsigned port = 0;
    const char *colon = listen ? strrchr(listen, ':') : NULL;
    size_t hlen = colon ? (size_t)(colon - listen) : 0;
    char tail;
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    if (!colon || hlen == 0 || hlen >= sizeof host || sscanf(colon + 1, "%u%c", &port, &tail) != 1 || port > 65535) {
        snprintf(err, errlen, "metrics.listen \"%s\": expected host:port, e.g. \"127.0.0.1:9464\"",
                 listen ? listen : "");
        return NULL;
    }
    memcpy(host, listen, hlen);
    host[hlen] = '\0';
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        snprintf(err, errlen, "metrics.listen \"%s\": \"%s\" is not an IPv4 address (use 0.0.0.0 for every interface)",
                 listen, host);
        return NULL;
    }
    addr.sin_port = htons((uint16_t)port);
    fr_http *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(err, errlen, "metrics endpoint: out of memory");
        return NULL;
    }
    pthread_mutex_init(&h->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&h->wake, &ca);
    pthread_condattr_destroy(&ca);
    h->stale_after = stale_after_seconds;
    h->page_at = mono_seconds();
    /* epoll (MHD_USE_AUTO): select() would refuse the sockets of a daemon whose RocksDB and Kafka
     * descriptors pass 1024 */
    h->daemon = MHD_start_daemon(
        MHD_USE_AUTO_INTERNAL_THREAD, (uint16_t)port, NULL, NULL, handle, h, MHD_OPTION_SOCK_ADDR,
        (struct sockaddr *)&addr, MHD_OPTION_CONNECTION_LIMIT, (unsigned)FR_HTTP_MAX_CONNECTIONS,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)FR_HTTP_PER_CLIENT, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)FR_HTTP_REQUEST_SECONDS, MHD_OPTION_NOTIFY_CONNECTION, on_connection, h,
        MHD_OPTION_END);
    int swept = h->daemon && pthread_create(&h->sweeper, NULL, sweep, h) == 0;
    if (!swept) {
        if (h->daemon)
            snprintf(err, errlen, "metrics endpoint: cannot start a thread");
        else
            snprintf(err, errlen,
                     "metrics.listen \"%s\": cannot listen there (address in use, or not this host's)", listen);
        if (h->daemon) MHD_stop_daemon(h->daemon);
        pthread_cond_destroy(&h->wake);
        pthread_mutex_destroy(&h->mu);
        free(h);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
    h->port = info ? info->port : (int)port;
    return h;
}

void fr_http_stop(fr_http *h)
{
    if (!h) return;
    pthread_mutex_lock(&h->mu);
    h->stopping = 1;
    pthread_cond_signal(&h->wake);
    pthread_mutex_unlock(&h->mu);
    pthread_join(h->sweeper, NULL);
    MHD_stop_daemon(h->daemon); /* closes every connection: the notifications free the list */
    pthread_cond_destroy(&h->wake);
    pthread_mutex_destroy(&h->mu);
    free(h->page);
    free(h);
}

int fr_http_port(const fr_http *h) { return h->port; }

int fr_http_set_page(fr_http *h, const char *text, size_t len)
{
    char *copy = malloc(len + 1);
    if (!copy) return -1;
    memcpy(copy, text, len);
    copy[len] = '\0';
    pthread_mutex_lock(&h->mu);
    char *old = h->page;
    h->page = copy;
    h->page_len = len;
    h->page_at = mono_seconds();
    pthread_mutex_unlock(&h->mu);
    free(old);
    return 0;
}

void fr_http_set_unhealthy(fr_http *h, const char *why)
{
    pthread_mutex_lock(&h->mu);
    snprintf(h->unhealthy, sizeof h->unhealthy, "%s", why ? why : "");
    pthread_mutex_unlock(&h->mu);
}
