/* fr_http: the daemon's metrics endpoint (libmicrohttpd, on a thread of its own).
 *
 *   GET /metrics   the last page the loop handed over (Prometheus text format 0.0.4)
 *   GET /healthz   200 "ok", or 503 with the reason: the loop has not handed a page over for
 *                  stale_after seconds (stuck), or the owner declared it unhealthy
 *
 * The server never reads the pipeline: the loop renders the page on its own thread and hands a
 * copy over (fr_http_set_page), so a scrape can neither race with training nor slow it down beyond
 * one memcpy under a mutex.
 *
 * Fairness: a client that trickles its request (each byte resets libmicrohttpd's idle timeout) or
 * reads the answer a byte at a time must not keep the probes out. One client address holds at most
 * FR_HTTP_PER_CLIENT connections (more are closed at once), all clients together at most
 * FR_HTTP_MAX_CONNECTIONS, and a connection (one request: the answer closes it) must be done
 * within FR_HTTP_REQUEST_SECONDS of its start, whatever it sends: a sweeper thread shuts down the
 * connections past it.
 * Ownership: fr_http_start allocates and starts the server and sweeper threads; fr_http_stop stops
 * them and frees. */
#ifndef FR_HTTP_H
#define FR_HTTP_H

#include <stddef.h>

enum { FR_HTTP_PER_CLIENT = 4, FR_HTTP_MAX_CONNECTIONS = 64, FR_HTTP_REQUEST_SECONDS = 5 };

typedef struct fr_http fr_http;

/* listen: "host:port" with an IPv4 host (port 0: any free port, see fr_http_port). NULL with a
 * message when the address is malformed or cannot be bound. */
fr_http *fr_http_start(const char *listen, double stale_after_seconds, char *err, size_t errlen);
void fr_http_stop(fr_http *h);
/* The bound port. */
int fr_http_port(const fr_http *h);
/* Replaces the /metrics page (copied). 0, or -1 when out of memory (the old page stays). */
int fr_http_set_page(fr_http *h, const char *text, size_t len);
/* why = NULL or "": healthy again; otherwise /healthz answers 503 with why. */
void fr_http_set_unhealthy(fr_http *h, const char *why);

#endif
