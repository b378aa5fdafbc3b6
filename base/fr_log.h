/* fr_log: where the libraries' messages to an operator go. Library code (the publisher, the
 * pipeline) never writes to stderr itself: it is given an fr_log and calls fr_logf; the program
 * decides where the lines go -- the daemon and the CLI print them on stderr as "freshet: MESSAGE"
 * (fr_log_stderr), a serving process hands them to its own log, a test collects them or drops them.
 *
 * A message is one line without its newline and without a program name. A logger whose fn is NULL
 * is silent, so a zeroed fr_log is a valid default. fn may be called from a library's own thread
 * (the publisher's): it must be thread-safe, and must not call back into the library.
 * Header only; no allocation. */
#ifndef FR_LOG_H
#define FR_LOG_H

#include <stdarg.h>
#include <stdio.h>

typedef enum { FR_LOG_INFO, FR_LOG_WARN, FR_LOG_ERROR } fr_log_level;

typedef void (*fr_log_fn)(void *ctx, fr_log_level level, const char *msg);

typedef struct {
    fr_log_fn fn; /* NULL: silent */
    void *ctx;    /* handed to fn */
} fr_log;

/* Formats a message (truncated at 2 KiB) and hands it to log->fn; nothing when log or fn is NULL. */
static inline void fr_logf(const fr_log *log, fr_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static inline void fr_logf(const fr_log *log, fr_log_level level, const char *fmt, ...)
{
    if (!log || !log->fn) return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    log->fn(log->ctx, level, msg);
}

/* The sink of the freshet programs: "freshet: MESSAGE\n" on stderr, one write per message (stderr is
 * unbuffered), every level. ctx is unused. */
static inline void fr_log_stderr_fn(void *ctx, fr_log_level level, const char *msg)
{
    (void)ctx;
    (void)level;
    fprintf(stderr, "freshet: %s\n", msg);
}

static inline fr_log fr_log_stderr(void) { return (fr_log){fr_log_stderr_fn, NULL}; }

#endif
