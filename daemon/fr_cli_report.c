/* fr_cli_report: `freshet report DIR` -- one self-contained HTML page of a checkpoint: the
 * progressive metrics now, their history over event time per task and scenario (drawn by gnuplot
 * as inline SVG), the join's accounting and the input's counters.
 *
 * Reads the checkpoint read-only, like `freshet inspect`, so it runs beside a daemon (it sees the
 * state as of the last checkpoint). The drawing is gnuplot's (run with posix_spawnp from PATH):
 * without it the page still holds every table and says what the plots need. The page loads
 * nothing from elsewhere, and holds nothing but what the checkpoint holds (no wall-clock time),
 * so the same checkpoint gives the same page. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fr_bytes.h"
#include "fr_ckpt.h"
#include "fr_ckpt_history.h"
#include "fr_cli_int.h"
#include "fr_history.h"
#include "fr_join.h"
#include "fr_pipeline.h"

extern char **environ;

enum { MAX_SERIES = FR_MAX_SCENARIOS + 1, BUCKET_ROWS = 500 };
static const char *const TASKS[FR_NTASKS] = {"ctr", "cvr", "ctcvr"};

typedef struct {
    int n_scenarios;
    char names[MAX_SERIES][FR_NAME_MAX]; /* scenarios, then "all" */
    uint32_t n;                          /* metrics: FR_NTASKS x (n_scenarios + 1) */
    fr_metric *running;                  /* [n], blob "metrics" */
    fr_history *history;                 /* the open bucket */
    fr_history_record *recs;             /* closed buckets, in seq order */
    size_t n_recs, cap_recs;
    fr_pipeline_counters counters;
    int have_counters;
    fr_join_counters join;
    int64_t watermark;
    int have_join;
    int have_history; /* 0: a checkpoint written before the history existed */
    char problems[4][400]; /* parts that could not be read: said on the page and on stderr */
    int n_problems;
} report;

static void problem(report *r, const char *what)
{
    if (r->n_problems < 4) snprintf(r->problems[r->n_problems++], sizeof r->problems[0], "%s", what);
}

/* ---- reading the checkpoint ---------------------------------------------------------------- */

static unsigned char *read_blob(fr_ckpt *ck, const char *name, size_t *len)
{
    long n = fr_ckpt_get_blob(ck, name, NULL, 0);
    if (n < 0) return NULL;
    unsigned char *buf = malloc(n ? (size_t)n : 1);
    if (buf && fr_ckpt_get_blob(ck, name, buf, (size_t)n) != n) {
        free(buf);
        return NULL;
    }
    *len = (size_t)n;
    return buf;
}

static void read_scenarios(fr_ckpt *ck, report *r)
{
    size_t len = 0;
    unsigned char *text = read_blob(ck, "manifest", &len);
    json_t *root = text ? json_loadb((const char *)text, len, 0, NULL) : NULL;
    const json_t *scen = json_object_get(root, "scenarios");
    r->n_scenarios = 0;
    for (size_t i = 0; json_is_array(scen) && i < json_array_size(scen) && i < FR_MAX_SCENARIOS; i++) {
        const char *s = json_string_value(json_array_get(scen, i));
        snprintf(r->names[r->n_scenarios++], FR_NAME_MAX, "%s", s ? s : "?");
    }
    json_decref(root);
    free(text);
}

/* Blob "metrics": n u32, then n metric records (docs/checkpoint-format.md). */
static int read_running(fr_ckpt *ck, report *r, char *err, size_t errlen)
{
    size_t len = 0;
    unsigned char *buf = read_blob(ck, "metrics", &len);
    if (!buf) {
        snprintf(err, errlen, "checkpoint corrupt: blob \"metrics\" is missing");
        return -1;
    }
    uint32_t n = len >= 4 ? fr_get_u32le(buf) : 0;
    int rc = -1;
    if (n < 2 * FR_NTASKS || n > FR_HISTORY_MAX_METRICS || n % FR_NTASKS != 0) {
        snprintf(err, errlen, "checkpoint corrupt: blob \"metrics\" holds %" PRIu32 " metrics", n);
        goto out;
    }
    r->n = n;
    r->running = calloc(n, sizeof *r->running);
    if (!r->running) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    size_t off = 4;
    for (uint32_t i = 0; i < n; i++) {
        long used = fr_metric_decode(&r->running[i], buf + off, len - off);
        if (used < 0) {
            snprintf(err, errlen, "checkpoint corrupt: blob \"metrics\": metric %" PRIu32 " is malformed", i);
            goto out;
        }
        off += (size_t)used;
    }
    rc = 0;
out:
    free(buf);
    return rc;
}

static int keep_record(const fr_history_record *rec, void *ctx)
{
    report *r = ctx;
    if (rec->n != r->n) return 1;
    if (r->n_recs == r->cap_recs) {
        size_t cap = r->cap_recs ? 2 * r->cap_recs : 64;
        fr_history_record *p = realloc(r->recs, cap * sizeof *p);
        if (!p) return 2;
        r->recs = p;
        r->cap_recs = cap;
    }
    r->recs[r->n_recs++] = *rec;
    return 0;
}

static void read_join(fr_ckpt *ck, report *r)
{
    fr_join_config jc = {0};
    fr_join *j = fr_join_create(&jc);
    size_t cap = j ? fr_join_export_meta(j, NULL, 0) : 0;
    char *meta = cap ? malloc(cap) : NULL;
    long len = meta ? fr_ckpt_get_join_meta(ck, meta, cap) : -1;
    if (len >= 0 && (size_t)len <= cap && fr_join_import_meta(j, meta, (size_t)len) == 0) {
        r->join = *fr_join_get_counters(j);
        r->watermark = fr_join_watermark(j);
        r->have_join = 1;
    } else {
        problem(r, "the join's counters (key \"K\") are missing or unreadable");
    }
    free(meta);
    fr_join_free(j);
}

/* ---- numbers ------------------------------------------------------------------------------- */

/* AUC, log loss, calibration of a stat; NAN where the samples do not define it. */
static void values(const fr_history_stat *s, double out[3])
{
    const int both = s->label_sum > 0 && s->weight - s->label_sum > 1e-12 * s->weight;
    out[0] = both ? s->auc : NAN;
    out[1] = s->weight > 0 ? s->loss / s->weight : NAN;
    out[2] = s->label_sum > 0 ? s->pred_sum / s->label_sum : NAN;
}

static int metric_of(const report *r, int task, int series) { return task * (r->n_scenarios + 1) + series; }

static void time_text(int64_t ms, char *out, size_t cap)
{
    if (ms == INT64_MIN) {
        snprintf(out, cap, "none");
        return;
    }
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (!gmtime_r(&t, &tm) || !strftime(out, cap, "%Y-%m-%d %H:%M:%S UTC", &tm)) snprintf(out, cap, "%" PRId64, ms);
}

/* The closed buckets, then the open one (its totals are the running metrics). */
static size_t point_count(const report *r) { return r->n_recs + (fr_history_open_start(r->history) != INT64_MIN); }

static void point(const report *r, size_t i, int metric, int64_t *end_ms, fr_history_stat *bucket,
                  fr_history_stat *total)
{
    if (i < r->n_recs) {
        *end_ms = r->recs[i].start_ms + r->recs[i].width_ms;
        *bucket = r->recs[i].bucket[metric];
        *total = r->recs[i].total[metric];
        return;
    }
    *end_ms = fr_history_open_start(r->history) + fr_history_open_width(r->history);
    fr_history_stat_of(&fr_history_open_metrics(r->history)[metric], bucket);
    fr_history_stat_of(&r->running[metric], total);
}

/* ---- plots ----------------------------------------------------------------------------------- */

/* A string for a gnuplot single-quoted literal: '' is its only escape. */
static void gp_quoted(FILE *f, const char *s)
{
    fputc('\'', f);
    for (; *s; s++) {
        if (*s == '\'') fputc('\'', f);
        if ((unsigned char)*s >= 0x20) fputc(*s, f);
    }
    fputc('\'', f);
}

static const char *const PANELS[3] = {"AUC", "log loss", "calibration (mean prediction / mean label)"};

/* Writes task t's data file: column 1 the bucket's end in Unix seconds, then per series (the
 * scenarios, then all) the running AUC, log loss and calibration and the bucket's own; has[s][k]
 * says whether series s has any running value for panel k, had[s][k] any bucket value. */
static int write_task_data(const report *r, int t, const char *path, int has[MAX_SERIES][3], int had[MAX_SERIES][3])
{
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    memset(has, 0, sizeof(int) * MAX_SERIES * 3);
    memset(had, 0, sizeof(int) * MAX_SERIES * 3);
    for (size_t i = 0; i < point_count(r); i++) {
        for (int s = 0; s <= r->n_scenarios; s++) {
            int64_t end = 0;
            fr_history_stat b, tot;
            point(r, i, metric_of(r, t, s), &end, &b, &tot);
            if (s == 0) fprintf(f, "%.3f", (double)end / 1000.0);
            double vt[3], vb[3];
            values(&tot, vt);
            values(&b, vb);
            for (int k = 0; k < 6; k++) {
                const double v = k < 3 ? vt[k] : vb[k - 3];
                if (isnan(v))
                    fputs(" NaN", f); /* gnuplot leaves the point out */
                else
                    fprintf(f, " %.9g", v);
                (k < 3 ? has[s] : had[s])[k % 3] |= !isnan(v);
            }
        }
        fputc('\n', f);
    }
    return fclose(f) == 0 ? 0 : -1;
}

/* One SVG per task: three panels (AUC, log loss, calibration) over event time; per scenario a line
 * of the running (progressive) value, and the "all" series' per-bucket values as points. */
static void write_task_plot(FILE *g, const report *r, int t, const char *dat, const char *svg,
                            int has[MAX_SERIES][3], int had[MAX_SERIES][3])
{
    fputs("set output ", g);
    gp_quoted(g, svg);
    fprintf(g, "\nset multiplot layout 3,1 title '%s: progressive metrics over event time (UTC)'\n", TASKS[t]);
    const int all = r->n_scenarios;
    for (int k = 0; k < 3; k++) {
        fputs("set ylabel ", g);
        gp_quoted(g, PANELS[k]);
        fputc('\n', g);
        int any = 0;
        for (int s = 0; s <= all; s++) any |= has[s][k] || had[s][k];
        if (!any) {
            /* gnuplot refuses a plot whose every point is undefined: an empty panel that says so */
            int64_t x0 = 0, x1 = 0;
            fr_history_stat b, tot;
            point(r, 0, 0, &x0, &b, &tot);
            point(r, point_count(r) - 1, 0, &x1, &b, &tot);
            fprintf(g, "set label 1 'no samples define it yet' at graph 0.5, 0.5 center\n"
                       "plot ['%" PRId64 "':'%" PRId64 "'] [0:1] 2 notitle\nunset label 1\n",
                    x0 / 1000 - 3600, x1 / 1000 + 3600);
            continue;
        }
        fputs("plot ", g);
        int first = 1;
        /* "all" first, thick and dark; then each scenario */
        for (int i = 0; i <= all; i++) {
            const int s = i == 0 ? all : i - 1;
            if (!has[s][k]) continue;
            fprintf(g, "%s", first ? "" : ", ");
            gp_quoted(g, dat);
            fprintf(g, " using 1:%d with lines lw %s%s title ", 2 + 6 * s + k, s == all ? "3" : "1.5",
                    s == all ? " lc rgb '#222222'" : "");
            gp_quoted(g, r->names[s]);
            first = 0;
        }
        if (had[all][k]) {
            fprintf(g, "%s", first ? "" : ", ");
            gp_quoted(g, dat);
            fprintf(g, " using 1:%d with points pt 7 ps 0.35 lc rgb '#888888' title 'all, per bucket'",
                    2 + 6 * all + 3 + k);
        }
        if (k == 2) fputs(", 1 with lines dt 2 lc rgb '#aaaaaa' notitle", g);
        fputc('\n', g);
    }
    fputs("unset multiplot\nset output\n", g);
}

/* Runs gnuplot on script, its messages into log. 0, or -1 with the reason in why. */
static int run_gnuplot(const char *script, const char *log, char *why, size_t whylen)
{
    posix_spawn_file_actions_t fa;
    if (posix_spawn_file_actions_init(&fa) != 0) {
        snprintf(why, whylen, "cannot start gnuplot: out of memory");
        return -1;
    }
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    char *argv[] = {"gnuplot", (char *)script, NULL};
    pid_t pid;
    int rc = posix_spawnp(&pid, "gnuplot", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
        snprintf(why, whylen, rc == ENOENT ? "gnuplot is not installed (not found on PATH; Debian: apt-get install "
                                             "gnuplot-nox)"
                                           : "cannot start gnuplot: %s",
                 strerror(rc));
        return -1;
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) {
            snprintf(why, whylen, "waiting for gnuplot: %s", strerror(errno));
            return -1;
        }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return 0;
    char msg[240] = "";
    FILE *f = fopen(log, "r");
    if (f) {
        size_t n = fread(msg, 1, sizeof msg - 1, f);
        msg[n] = '\0';
        fclose(f);
    }
    for (char *c = msg; *c; c++)
        if (*c == '\n') *c = ' ';
    snprintf(why, whylen, "gnuplot failed (%s %d): %s",
             WIFEXITED(status) ? "exit status" : "signal", WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status),
             msg[0] ? msg : "no message");
    return -1;
}

/* ---- the page ---------------------------------------------------------------------------------- */

static void html_text(FILE *o, const char *s)
{
    for (; *s; s++) switch (*s) {
        case '<': fputs("&lt;", o); break;
        case '>': fputs("&gt;", o); break;
        case '&': fputs("&amp;", o); break;
        case '"': fputs("&quot;", o); break;
        default: fputc(*s, o);
        }
}

static void html_num(FILE *o, double v, const char *fmt)
{
    if (isnan(v))
        fputs("<td>&ndash;</td>", o);
    else {
        fputs("<td>", o);
        fprintf(o, fmt, v);
        fputs("</td>", o);
    }
}

/* The SVG gnuplot wrote, from its <svg> element on (the XML prolog has no place inside HTML). */
static int copy_svg(FILE *o, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[4096];
    int in = 0;
    while (fgets(line, sizeof line, f)) {
        if (!in && strncmp(line, "<svg", 4) == 0) in = 1;
        if (in) fputs(line, o);
    }
    fclose(f);
    return in ? 0 : -1;
}

static const char *const STYLE =
    "body{font-family:'DejaVu Sans',sans-serif;margin:24px;color:#222;max-width:1100px}"
    "h1{font-size:22px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ccc}"
    "table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
    "th{background:#f3f3f3}td.l,th.l{text-align:left}.note{background:#fff4d6;padding:8px;border:1px solid #e0c070}"
    "figure{margin:12px 0}svg{max-width:100%;height:auto}";

static void page_head(FILE *o, const char *dir)
{
    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>freshet report: ", o);
    html_text(o, dir);
    fprintf(o, "</title><style>%s</style></head><body>\n<h1>Freshet report: ", STYLE);
    html_text(o, dir);
    fputs("</h1>\n", o);
}

static void section_summary(FILE *o, const report *r)
{
    char a[64], b[64], wm[64];
    size_t np = point_count(r);
    fr_history_stat x, y;
    int64_t first = np ? (r->n_recs ? r->recs[0].start_ms : fr_history_open_start(r->history)) : INT64_MIN;
    int64_t last = INT64_MIN;
    if (np) point(r, np - 1, 0, &last, &x, &y);
    time_text(first, a, sizeof a);
    time_text(last, b, sizeof b);
    time_text(r->have_join ? r->watermark : INT64_MIN, wm, sizeof wm);
    fputs("<h2 id=\"summary\">Summary</h2>\n<table>\n", o);
    fprintf(o, "<tr><th class=\"l\">history</th><td class=\"l\">%zu buckets (%zu closed%s) from %s to %s</td></tr>\n",
            np, r->n_recs, np > r->n_recs ? ", the last still open" : "", a, b);
    fprintf(o, "<tr><th class=\"l\">bucket width</th><td class=\"l\">%.0f s of event time</td></tr>\n",
            (double)(np > r->n_recs || !r->n_recs ? fr_history_open_width(r->history) : r->recs[r->n_recs - 1].width_ms) /
                1000.0);
    fprintf(o, "<tr><th class=\"l\">watermark</th><td class=\"l\">%s</td></tr>\n", wm);
    fputs("</table>\n", o);
    for (int i = 0; i < r->n_problems; i++) {
        fputs("<p class=\"note\">Not shown: ", o);
        html_text(o, r->problems[i]);
        fputs("</p>\n", o);
    }
}

static void section_metrics(FILE *o, const report *r)
{
    fputs("<h2 id=\"metrics\">Progressive metrics now</h2>\n<p>Every sample scored before it trained, over the "
          "whole stream so far.</p>\n<table>\n<tr><th class=\"l\">task</th><th class=\"l\">scenario</th><th>samples"
          "</th><th>positives (weighted)</th><th>AUC</th><th>log loss</th><th>calibration</th></tr>\n",
          o);
    for (int t = 0; t < FR_NTASKS; t++)
        for (int i = 0; i <= r->n_scenarios; i++) {
            const int s = i == 0 ? r->n_scenarios : i - 1;
            fr_history_stat st;
            fr_history_stat_of(&r->running[metric_of(r, t, s)], &st);
            double v[3];
            values(&st, v);
            fprintf(o, "<tr><td class=\"l\">%s</td><td class=\"l\">", TASKS[t]);
            html_text(o, r->names[s]);
            fprintf(o, "</td><td>%" PRIu64 "</td>", st.count);
            html_num(o, st.label_sum, "%.1f");
            html_num(o, v[0], "%.4f");
            html_num(o, v[1], "%.4f");
            html_num(o, v[2], "%.3f");
            fputs("</tr>\n", o);
        }
    fputs("</table>\n", o);
}

static void section_plots(FILE *o, const report *r, const char *tmp, const char *plot_error)
{
    fputs("<h2 id=\"plots\">Over event time</h2>\n", o);
    if (plot_error) {
        fputs("<p class=\"note\">The plots need gnuplot: ", o);
        html_text(o, plot_error);
        fputs(". The tables hold the numbers.</p>\n", o);
        return;
    }
    if (!point_count(r)) {
        fputs(r->have_history ? "<p class=\"note\">No sample has been scored yet: nothing to draw.</p>\n"
                              : "<p class=\"note\">This checkpoint holds no history: it was written by a build "
                                "before it. The daemon keeps one from its next start on.</p>\n",
              o);
        return;
    }
    fputs("<p>Lines: the progressive value at the end of each bucket (every sample so far), per scenario; grey points:"
          " the bucket's own samples, all scenarios. The last bucket may still be open.</p>\n",
          o);
    for (int t = 0; t < FR_NTASKS; t++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s.svg", tmp, TASKS[t]);
        fprintf(o, "<figure id=\"plot-%s\">\n", TASKS[t]);
        if (copy_svg(o, path) != 0) fprintf(o, "<p class=\"note\">gnuplot wrote no plot for %s.</p>\n", TASKS[t]);
        fprintf(o, "<figcaption>%s: AUC, log loss and calibration over event time</figcaption></figure>\n", TASKS[t]);
    }
}

static void section_join(FILE *o, const report *r)
{
    fputs("<h2 id=\"join\">Join accounting</h2>\n", o);
    if (!r->have_join) {
        fputs("<p class=\"note\">The join's counters could not be read.</p>\n", o);
        return;
    }
    fputs("<p>Every accepted event is in one place: events = joined + pending + dropped.</p>\n<table>\n"
          "<tr><th class=\"l\">type</th><th>events</th><th>joined</th><th>pending</th>",
          o);
    for (int d = 0; d < FR_DROP_NREASONS; d++) fprintf(o, "<th>dropped: %s</th>", fr_join_drop_name((fr_drop_reason)d));
    fputs("</tr>\n", o);
    for (int t = 0; t < FR_EV_NTYPES; t++) {
        fprintf(o, "<tr><th class=\"l\">%s</th><td>%" PRIu64 "</td><td>%" PRIu64 "</td><td>%" PRIu64 "</td>",
                fr_event_type_name((fr_event_type)t), r->join.events[t], r->join.joined[t], r->join.pending[t]);
        for (int d = 0; d < FR_DROP_NREASONS; d++) fprintf(o, "<td>%" PRIu64 "</td>", r->join.dropped[t][d]);
        fputs("</tr>\n", o);
    }
    fputs("</table>\n<table>\n<tr><th class=\"l\">samples emitted</th><th>count</th></tr>\n", o);
    for (int k = 0; k < FR_SAMPLE_NKINDS; k++)
        fprintf(o, "<tr><td class=\"l\">%s</td><td>%" PRIu64 "</td></tr>\n", fr_sample_kind_name(k), r->join.emitted[k]);
    fputs("</table>\n", o);
}

static void section_input(FILE *o, const report *r)
{
    fputs("<h2 id=\"input\">Input</h2>\n", o);
    if (!r->have_counters) {
        fputs("<p class=\"note\">The counters could not be read.</p>\n", o);
        return;
    }
    const fr_pipeline_counters *c = &r->counters;
    uint64_t rejected = 0;
    for (int i = 0; i < FR_REJECT_NREASONS; i++) rejected += c->rejected[i];
    fprintf(o, "<table>\n<tr><th class=\"l\">consumed</th><td>%" PRIu64 "</td></tr>\n"
               "<tr><th class=\"l\">rejected</th><td>%" PRIu64 "</td></tr>\n",
            c->consumed, rejected);
    for (int i = 1; i < FR_REJECT_NREASONS; i++)
        if (c->rejected[i])
            fprintf(o, "<tr><td class=\"l\">&nbsp;&nbsp;%s</td><td>%" PRIu64 "</td></tr>\n",
                    fr_event_reject_name((fr_reject_reason)i), c->rejected[i]);
    fprintf(o, "<tr><th class=\"l\">samples_trained</th><td>%" PRIu64 "</td></tr>\n"
               "<tr><th class=\"l\">samples_buffered</th><td>%" PRIu64 "</td></tr>\n</table>\n",
            c->samples_trained, c->samples_buffered);
}

static void section_buckets(FILE *o, const report *r)
{
    const size_t np = point_count(r), from = np > BUCKET_ROWS ? np - BUCKET_ROWS : 0;
    fprintf(o, "<h2 id=\"buckets\">Buckets</h2>\n<details><summary>The %s%zu buckets, all scenarios: the bucket's "
               "own samples, and the progressive AUC at its end</summary>\n<table>\n<tr><th class=\"l\">bucket end"
               "</th>",
            from ? "newest " : "", np - from);
    for (int t = 0; t < FR_NTASKS; t++)
        fprintf(o, "<th>%s samples</th><th>%s AUC</th><th>%s log loss</th><th>%s calibration</th><th>%s progressive "
                   "AUC</th>",
                TASKS[t], TASKS[t], TASKS[t], TASKS[t], TASKS[t]);
    fputs("</tr>\n", o);
    for (size_t i = from; i < np; i++) {
        int64_t end = 0;
        fr_history_stat b, tot;
        point(r, i, 0, &end, &b, &tot);
        char when[64];
        time_text(end, when, sizeof when);
        fprintf(o, "<tr><td class=\"l\">%s%s</td>", when, i >= r->n_recs ? " (open)" : "");
        for (int t = 0; t < FR_NTASKS; t++) {
            point(r, i, metric_of(r, t, r->n_scenarios), &end, &b, &tot);
            double vb[3], vt[3];
            values(&b, vb);
            values(&tot, vt);
            fprintf(o, "<td>%" PRIu64 "</td>", b.count);
            html_num(o, vb[0], "%.4f");
            html_num(o, vb[1], "%.4f");
            html_num(o, vb[2], "%.3f");
            html_num(o, vt[0], "%.4f");
        }
        fputs("</tr>\n", o);
    }
    fputs("</table></details>\n", o);
}

/* Draws the three plots into tmp; NULL, or why not. */
static const char *draw(const report *r, const char *tmp, char *why, size_t whylen)
{
    char script[4200], log[4200];
    snprintf(script, sizeof script, "%s/plots.gp", tmp);
    snprintf(log, sizeof log, "%s/gnuplot.log", tmp);
    FILE *g = fopen(script, "w");
    if (!g) {
        snprintf(why, whylen, "cannot write its script in %.300s: %s", tmp, strerror(errno));
        return why;
    }
    fputs("set terminal svg size 1000,900 dynamic noenhanced font 'DejaVu Sans,11' background '#ffffff'\n"
          "set xdata time\nset timefmt '%s'\nset format x \"%m-%d\\n%H:%M\"\nset grid\n"
          "set key outside right top\nset lmargin 12\n",
          g);
    for (int t = 0; t < FR_NTASKS; t++) {
        char dat[4200], svg[4200];
        snprintf(dat, sizeof dat, "%s/%s.dat", tmp, TASKS[t]);
        snprintf(svg, sizeof svg, "%s/%s.svg", tmp, TASKS[t]);
        int has[MAX_SERIES][3], had[MAX_SERIES][3];
        if (write_task_data(r, t, dat, has, had) != 0) {
            fclose(g);
            snprintf(why, whylen, "cannot write its data in %.300s: %s", tmp, strerror(errno));
            return why;
        }
        write_task_plot(g, r, t, dat, svg, has, had);
    }
    if (fclose(g) != 0) {
        snprintf(why, whylen, "cannot write its script in %.300s: %s", tmp, strerror(errno));
        return why;
    }
    return run_gnuplot(script, log, why, whylen) == 0 ? NULL : why;
}

static void remove_tmp(const char *tmp)
{
    static const char *const files[] = {"plots.gp", "gnuplot.log", "ctr.dat", "cvr.dat", "ctcvr.dat",
                                        "ctr.svg",  "cvr.svg",     "ctcvr.svg"};
    char path[4200];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", tmp, files[i]);
        unlink(path);
    }
    rmdir(tmp);
}

static int read_report(const char *dir, report *r, char *err, size_t errlen)
{
    fr_ckpt *ck = fr_ckpt_open_readonly(dir, err, errlen);
    if (!ck) return -1;
    int rc = -1;
    if (!fr_ckpt_exists(ck)) {
        snprintf(err, errlen, "%s holds no checkpoint", dir);
        goto out;
    }
    read_scenarios(ck, r);
    if (read_running(ck, r, err, errlen) != 0) goto out;
    if ((uint32_t)FR_NTASKS * (uint32_t)(r->n_scenarios + 1) != r->n) {
        /* a manifest that does not say the scenarios the metrics were kept for: name them by position */
        r->n_scenarios = (int)(r->n / FR_NTASKS) - 1;
        for (int s = 0; s < r->n_scenarios; s++) snprintf(r->names[s], FR_NAME_MAX, "scenario %d", s);
        problem(r, "the blob \"manifest\" does not list the scenarios of the metrics: named by position");
    }
    snprintf(r->names[r->n_scenarios], FR_NAME_MAX, "all");
    r->history = fr_history_create(r->n, 3600000, 1);
    if (!r->history) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    int loaded = fr_ckpt_load_history(ck, r->history, err, errlen);
    if (loaded < 0) goto out;
    r->have_history = loaded == 1;
    int hr = fr_ckpt_foreach_history(ck, keep_record, r, err, errlen);
    if (hr == 1) {
        snprintf(err, errlen, "checkpoint corrupt: a bucket of the metrics' history holds another count of metrics "
                              "than the blob \"metrics\" (%" PRIu32 ")",
                 r->n);
        goto out;
    }
    if (hr != 0) {
        if (hr == 2) snprintf(err, errlen, "out of memory reading the metrics' history");
        goto out;
    }
    size_t clen = 0;
    unsigned char *cb = read_blob(ck, "counters", &clen);
    r->have_counters = cb && fr_pipeline_counters_decode(cb, clen, &r->counters) == 0;
    free(cb);
    if (!r->have_counters) problem(r, "the blob \"counters\" is missing or unreadable");
    read_join(ck, r);
    rc = 0;
out:
    fr_ckpt_close(ck);
    return rc;
}

int fr_cli_cmd_report(const fr_cli_args *a)
{
    if (!a->positional) {
        fprintf(stderr, "freshet report: which checkpoint directory?\n");
        return 2;
    }
    const char *out_path = a->out ? a->out : "report.html";
    report r;
    memset(&r, 0, sizeof r);
    r.watermark = INT64_MIN;
    char err[512];
    int rc = 1;
    if (read_report(a->positional, &r, err, sizeof err) != 0) {
        fprintf(stderr, "freshet report: %s\n", err);
        goto out;
    }
    for (int i = 0; i < r.n_problems; i++) fprintf(stderr, "freshet report: %s\n", r.problems[i]);
    const char *base = getenv("TMPDIR");
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s/freshet-report.XXXXXX", base && base[0] ? base : "/tmp");
    char why[600];
    const char *plot_error = NULL;
    if (!mkdtemp(tmp)) {
        snprintf(why, sizeof why, "cannot make a scratch directory for them (%.300s: %s)", tmp, strerror(errno));
        plot_error = why;
        tmp[0] = '\0';
    } else if (point_count(&r)) {
        plot_error = draw(&r, tmp, why, sizeof why);
    }
    FILE *o = fopen(out_path, "w");
    if (!o) {
        fprintf(stderr, "freshet report: cannot write %s: %s\n", out_path, strerror(errno));
    } else {
        page_head(o, a->positional);
        section_summary(o, &r);
        section_metrics(o, &r);
        section_plots(o, &r, tmp, plot_error);
        section_join(o, &r);
        section_input(o, &r);
        section_buckets(o, &r);
        fputs("</body></html>\n", o);
        if (fclose(o) != 0) {
            fprintf(stderr, "freshet report: writing %s failed: %s\n", out_path, strerror(errno));
        } else if (plot_error) {
            fprintf(stderr, "freshet report: wrote %s with tables only: the plots need gnuplot: %s\n", out_path,
                    plot_error);
        } else {
            printf("report %s: %zu buckets of event time, %d scenarios\n", out_path, point_count(&r), r.n_scenarios);
            rc = r.n_problems ? 1 : 0;
        }
    }
    if (tmp[0]) remove_tmp(tmp);
out:
    free(r.running);
    free(r.recs);
    fr_history_free(r.history);
    return rc;
}
