/* fr_progress: what a long replay shows on a terminal -- bytes done of the file, events/s, the ETA
 * of the input, and where the join's event time is between the file's first and last event.
 *
 * On a terminal the line is redrawn in place (carriage return, at most four times a second); when
 * the output is not a terminal (a log file, a pipe, CI) fr_progress shows nothing, and the daemon's
 * line-based status lines are the record. The state is a plain struct owned by the caller; nothing
 * is allocated. Used by one thread. */
#ifndef FR_PROGRESS_H
#define FR_PROGRESS_H

#include <stdint.h>
#include <stdio.h>

typedef struct {
    FILE *out;            /* NULL: quiet (not a terminal) */
    int64_t total_bytes;  /* the file's size; <= 0 unknown (a pipe) */
    int messages;         /* bytes are messages (a Kafka backfill: fr_progress_start_messages) */
    int64_t start_bytes;  /* where this run began (a resume) */
    int64_t first_ts, last_ts; /* event time of the file's first and last lines, ms; INT64_MIN unknown */
    double start_wall, last_draw;
    int drawn;            /* a line is on the terminal and must be ended before other output */
} fr_progress;

/* Starts showing progress for the regular file `path` opened as `in`, from byte start_bytes, on out
 * when out is a terminal (force_tty: as if it were, for tests). Reads the "ts" of the file's first
 * and last lines without moving `in`'s position. */
void fr_progress_start(fr_progress *pg, FILE *out, int force_tty, FILE *in, const char *path, int64_t start_bytes,
                       double now);
/* The same for a count of messages instead of a file's bytes (a backfill from Kafka: total, the
 * messages in its ranges); "bytes" below are then messages. Event time has no known span. */
void fr_progress_start_messages(fr_progress *pg, FILE *out, int force_tty, int64_t total, double now);
/* Redraws when a quarter second has passed since the last draw (or always, when force). */
void fr_progress_update(fr_progress *pg, int64_t bytes_done, uint64_t events, int64_t event_time_ms, double now,
                        int force);
/* Ends the line on the terminal (before other output, and at the end). */
void fr_progress_break(fr_progress *pg);

/* The text of one progress line into buf (no carriage return, no newline); for tests and callers
 * that log it. */
void fr_progress_format(const fr_progress *pg, char *buf, size_t cap, int64_t bytes_done, uint64_t events,
                        int64_t event_time_ms, double now);

/* The integer "ts" of one EVENTS.md JSON line, or INT64_MIN when it has none. */
int64_t fr_progress_line_ts(const char *line, size_t len);

#endif
