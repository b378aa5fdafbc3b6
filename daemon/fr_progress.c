#define _XOPEN_SOURCE 700 /* fseeko, ftello */
#include "fr_progress.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define REDRAW_SECONDS 0.25
#define TAIL_BYTES 65536 /* enough for the last line of any accepted event (oversized ones are refused) */

int64_t fr_progress_line_ts(const char *line, size_t len)
{
    json_t *o = json_loadb(line, len, JSON_DISABLE_EOF_CHECK, NULL);
    json_t *ts = o ? json_object_get(o, "ts") : NULL;
    int64_t v = json_is_integer(ts) ? (int64_t)json_integer_value(ts) : INT64_MIN;
    json_decref(o);
    return v;
}

static int64_t first_line_ts(FILE *in)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int64_t ts = INT64_MIN;
    for (int tries = 0; ts == INT64_MIN && tries < 16 && (n = getline(&line, &cap, in)) > 0; tries++)
        ts = fr_progress_line_ts(line, (size_t)n);
    free(line);
    return ts;
}

static int64_t last_line_ts(FILE *in, int64_t size)
{
    int64_t from = size > TAIL_BYTES ? size - TAIL_BYTES : 0;
    char *buf = malloc(TAIL_BYTES + 1);
    if (!buf || fseeko(in, from, SEEK_SET) != 0) {
        free(buf);
        return INT64_MIN;
    }
    size_t n = fread(buf, 1, TAIL_BYTES, in);
    buf[n] = '\0';
    int64_t ts = INT64_MIN;
    /* the last lines first: the newest event with a ts */
    size_t end = n;
    while (ts == INT64_MIN && end > 0) {
        while (end > 0 && (buf[end - 1] == '\n' || buf[end - 1] == '\r')) end--;
        size_t start = end;
        while (start > 0 && buf[start - 1] != '\n') start--;
        if (start == 0 && from > 0) break; /* a line cut by the window */
        if (end > start) ts = fr_progress_line_ts(buf + start, end - start);
        end = start;
    }
    free(buf);
    return ts;
}

void fr_progress_start_messages(fr_progress *pg, FILE *out, int force_tty, int64_t total, double now)
{
    fr_progress_start(pg, out, force_tty, NULL, NULL, 0, now);
    pg->total_bytes = total;
    pg->messages = 1;
}

void fr_progress_start(fr_progress *pg, FILE *out, int force_tty, FILE *in, const char *path, int64_t start_bytes,
                       double now)
{
    memset(pg, 0, sizeof *pg);
    pg->first_ts = pg->last_ts = INT64_MIN;
    pg->start_bytes = start_bytes;
    pg->start_wall = pg->last_draw = now;
    pg->out = out && (force_tty || isatty(fileno(out))) ? out : NULL;
    struct stat st;
    if (!pg->out || !in || stat(path, &st) != 0 || !S_ISREG(st.st_mode)) return;
    pg->total_bytes = (int64_t)st.st_size;
    off_t at = ftello(in);
    if (at < 0 || fseeko(in, 0, SEEK_SET) != 0) return;
    pg->first_ts = first_line_ts(in);
    pg->last_ts = last_line_ts(in, pg->total_bytes);
    if (fseeko(in, at, SEEK_SET) != 0) pg->out = NULL; /* cannot restore the position: stay quiet */
}

static void duration(char *buf, size_t cap, double s)
{
    if (!(s >= 0) || s > 1e8) {
        snprintf(buf, cap, "?");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, cap, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else snprintf(buf, cap, "%ld:%02ld", t / 60, t % 60);
}

void fr_progress_format(const fr_progress *pg, char *buf, size_t cap, int64_t bytes_done, uint64_t events,
                        int64_t event_time_ms, double now)
{
    double elapsed = now - pg->start_wall;
    double done = (double)(bytes_done - pg->start_bytes);
    double rate = elapsed > 0 ? done / elapsed : 0;
    char eta[32] = "?";
    size_t n = 0;
    if (pg->total_bytes > 0) {
        double left = (double)(pg->total_bytes - bytes_done);
        if (rate > 0) duration(eta, sizeof eta, left / rate);
    }
    if (pg->messages) {
        n += (size_t)snprintf(buf + n, cap - n, "%5.1f%% %" PRId64 "/%" PRId64 " messages",
                              pg->total_bytes > 0 ? 100.0 * (double)bytes_done / (double)pg->total_bytes : 100.0,
                              bytes_done, pg->total_bytes);
    } else if (pg->total_bytes > 0) {
        n += (size_t)snprintf(buf + n, cap - n, "%5.1f%% %.1f/%.1f MB", 100.0 * (double)bytes_done / (double)pg->total_bytes,
                              (double)bytes_done / 1e6, (double)pg->total_bytes / 1e6);
    } else {
        n += (size_t)snprintf(buf + n, cap - n, "%.1f MB", (double)bytes_done / 1e6);
    }
    if (n >= cap) return;
    n += (size_t)snprintf(buf + n, cap - n, "  %.0f events/s  ETA %s", elapsed > 0 ? (double)events / elapsed : 0.0,
                          eta);
    if (n >= cap || event_time_ms == INT64_MIN) return;
    time_t sec = (time_t)(event_time_ms / 1000);
    struct tm tm;
    char when[32] = "?";
    if (gmtime_r(&sec, &tm)) strftime(when, sizeof when, "%Y-%m-%d %H:%M", &tm);
    n += (size_t)snprintf(buf + n, cap - n, "  event time %s UTC", when);
    if (n >= cap || pg->first_ts == INT64_MIN || pg->last_ts <= pg->first_ts) return;
    double span = (double)(pg->last_ts - pg->first_ts), at = (double)(event_time_ms - pg->first_ts);
    snprintf(buf + n, cap - n, " (%.1f of %.1f days)", at / 86400e3, span / 86400e3);
}

void fr_progress_update(fr_progress *pg, int64_t bytes_done, uint64_t events, int64_t event_time_ms, double now,
                        int force)
{
    if (!pg->out || (!force && now - pg->last_draw < REDRAW_SECONDS)) return;
    char line[256];
    fr_progress_format(pg, line, sizeof line, bytes_done, events, event_time_ms, now);
    fprintf(pg->out, "\r%s\033[K", line);
    fflush(pg->out);
    pg->last_draw = now;
    pg->drawn = 1;
}

void fr_progress_break(fr_progress *pg)
{
    if (pg->out && pg->drawn) {
        fputc('\n', pg->out);
        fflush(pg->out);
    }
    pg->drawn = 0;
}
