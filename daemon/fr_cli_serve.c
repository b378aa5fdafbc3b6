/* fr_cli_serve: `freshet pull` and `freshet score`, through the public serving library
 * (freshet_serving.h), as a serving team scores. */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fr_ckpt.h"
#include "fr_cli_int.h"
#include "fr_manifest.h"
#include "fr_serving_int.h"
#include "freshet_serving.h"

/* Opens the serving library on the configured Redis and loads the active version; NULL after
 * saying why on stderr. */
static freshet_serving *open_serving(const char *cmd, const fr_config *c)
{
    if (!c->redis_host[0]) {
        fprintf(stderr, "freshet %s: no Redis configured (redis.host is empty)\n", cmd);
        return NULL;
    }
    char err[512];
    freshet_serving *s = freshet_serving_open(c->redis_host, c->redis_port, c->redis_prefix, err, sizeof err);
    if (!s || freshet_serving_load(s, err, sizeof err) != 0) {
        fprintf(stderr, "freshet %s: %s\n", cmd, err);
        freshet_serving_close(s);
        return NULL;
    }
    return s;
}

/* One EVENTS.md line scored through the library: 1 with the scores of an impression, 0 when the
 * line is not a scorable impression (why says so), -1 when scoring failed (err). */
static int score_json(freshet_serving *s, freshet_impression *imp, const char *line, size_t len, freshet_scores *out,
                      char *why, size_t whylen, char *err, size_t errlen)
{
    int d = freshet_serving_decode(s, line, len, imp, why, whylen);
    if (d != 0) {
        if (d > 0) snprintf(why, whylen, "not an impression");
        return 0;
    }
    return freshet_serving_score(s, imp, out, err, errlen) == 0 ? 1 : -1;
}

/* What the reader refused while scoring (NaN or infinite rows, versions that failed their checks): a
 * serving team's first question when a score looks wrong, so it is said on stderr, never silently. */
static void report_refused(const char *cmd, const freshet_serving *s)
{
    freshet_serving_stats st;
    freshet_serving_get_stats(s, &st);
    if (st.refused_rows || st.refused_versions)
        fprintf(stderr,
                "freshet %s: refused %" PRIu64 " row values with NaN or infinite weights (scored as the key's earlier "
                "copy, or as an unseen key) and %" PRIu64 " versions that failed their checks\n",
                cmd, st.refused_rows, st.refused_versions);
}

int fr_cli_cmd_pull(const fr_cli_args *a)
{
    fr_config c;
    if (fr_cli_load_config(a, &c) != 0) return 2;
    freshet_serving *s = open_serving("pull", &c);
    if (!s) return c.redis_host[0] ? 1 : 2;
    char err[512];
    printf("redis %s:%d prefix %s: active version %" PRIu64 "\n", c.redis_host, c.redis_port, c.redis_prefix,
           freshet_serving_version(s));
    long total = 0;
    for (int t = 0; t < freshet_serving_table_count(s); t++) {
        long rows = freshet_serving_row_count(s, t, err, sizeof err);
        if (rows > 0) total += rows;
    }
    printf("rows in redis: %ld\n", total);
    int rc = 0;
    if (a->events) {
        FILE *in = fopen(a->events, "r");
        if (!in) {
            fprintf(stderr, "freshet pull: cannot read %s: %s\n", a->events, strerror(errno));
            freshet_serving_close(s);
            return 1;
        }
        /* the checkpoint's model, served as the manifest says (its serve transform) */
        fr_model *local = NULL;
        fr_ckpt *ck = NULL;
        fr_serve_transform serve = FR_SERVE_IDENTITY;
        if (a->state) {
            json_t *m = json_loads(freshet_serving_manifest(s), 0, NULL);
            ck = fr_ckpt_open_readonly(a->state, err, sizeof err);
            local = ck && fr_manifest_serve_transform(m, &serve, err, sizeof err) == 0
                        ? fr_ckpt_load_model(ck, err, sizeof err)
                        : NULL;
            json_decref(m);
            if (!local) fprintf(stderr, "freshet pull: no local model to compare with: %s\n", err);
        }
        freshet_impression *imp = freshet_impression_new();
        char *line = NULL;
        size_t cap = 0;
        ssize_t n;
        long long scored = 0;
        double max_diff = 0;
        const long long limit = a->limit > 0 ? a->limit : 10;
        while (imp && scored < limit && (n = getline(&line, &cap, in)) > 0) {
            freshet_scores got;
            char why[320];
            int k = score_json(s, imp, line, (size_t)n - (line[n - 1] == '\n'), &got, why, sizeof why, err, sizeof err);
            if (k == 0) continue;
            if (k < 0) {
                fprintf(stderr, "freshet pull: %s\n", err);
                rc = 1;
                break;
            }
            const float out[FR_NTASKS] = {got.pctr, got.pcvr, got.pctcvr};
            printf("score %s scenario=%s pctr=%.6f pcvr=%.6f pctcvr=%.6f", freshet_impression_id(imp),
                   freshet_serving_scenario_name(s, freshet_impression_scenario(imp)), out[0], out[1], out[2]);
            if (local) {
                float raw[FR_NTASKS];
                double ref[FR_NTASKS];
                fr_model_predict(local, &imp->f, imp->scenario, raw);
                fr_serve_apply(serve, raw, ref);
                for (int t = 0; t < FR_NTASKS; t++) {
                    double d = out[t] > (float)ref[t] ? out[t] - (float)ref[t] : (float)ref[t] - out[t];
                    if (d > max_diff) max_diff = d;
                }
                printf(" trainer_pctr=%.6f trainer_pcvr=%.6f", (float)ref[FR_TASK_CTR], (float)ref[FR_TASK_CVR]);
            }
            putchar('\n');
            scored++;
        }
        if (!imp) {
            fprintf(stderr, "freshet pull: out of memory\n");
            rc = 1;
        }
        if (local) printf("max |redis - trainer| over %lld impressions: %.3g\n", scored, max_diff);
        freshet_impression_free(imp);
        free(line);
        fclose(in);
        fr_model_free(local);
        fr_ckpt_close(ck);
    }
    report_refused("pull", s);
    freshet_serving_close(s);
    return rc;
}

/* Scores one input line through the library when it is an impression: 1 scored (printed when print
 * is set), 0 not an impression (an impression that does not decode is reported once, with its line
 * number, when report is set), -1 the reader failed (err). */
static int score_line(freshet_serving *s, freshet_impression *imp, const char *line, size_t lineno, int print,
                      int report, char *err, size_t errlen)
{
    freshet_scores sc;
    char why[320] = "not an impression";
    int k = score_json(s, imp, line, strlen(line), &sc, why, sizeof why, err, errlen);
    if (k == 0 && report && strstr(line, "\"impression\""))
        fprintf(stderr, "freshet score: line %zu not scored: %s\n", lineno, why);
    if (k == 1 && print)
        printf("score %s scenario=%s pctr=%.9g pcvr=%.9g pctcvr=%.9g\n", freshet_impression_id(imp),
               freshet_serving_scenario_name(s, freshet_impression_scenario(imp)), sc.pctr, sc.pcvr, sc.pctcvr);
    return k;
}

int fr_cli_cmd_score(const fr_cli_args *a)
{
    fr_config c;
    if (fr_cli_load_config(a, &c) != 0) return 2;
    freshet_serving *s = open_serving("score", &c);
    if (!s) return c.redis_host[0] ? 1 : 2;
    char err[512];
    printf("version %" PRIu64 "\n", freshet_serving_version(s));
    const char *path = a->events ? a->events : "-";
    FILE *in = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    freshet_impression *imp = freshet_impression_new();
    if (!in || !imp) {
        fprintf(stderr, "freshet score: cannot read %s: %s\n", path, !imp ? "out of memory" : strerror(errno));
        if (in && in != stdin) fclose(in);
        freshet_impression_free(imp);
        freshet_serving_close(s);
        return 1;
    }
    /* The limit counts impressions scored; clicks, conversions and lines that do not decode are
     * skipped. Without --follow each impression is scored as it is read (stdin may be a pipe that
     * never ends); with it, the impressions are kept and scored again by every version loaded. */
    const int follow = a->follow > 0;
    char *line = NULL;
    size_t cap = 0, lineno = 0;
    ssize_t n;
    char **lines = NULL;
    size_t nlines = 0, lcap = 0;
    long long scored = 0;
    int rc = 0;
    uint64_t errors = 0, reloads = 0, rounds = 1;
    while ((a->limit < 0 || scored < a->limit) && (n = getline(&line, &cap, in)) > 0) {
        lineno++;
        line[n - (line[n - 1] == '\n')] = '\0';
        int r = score_line(s, imp, line, lineno, 1, 1, err, sizeof err);
        if (r < 0 && !follow) {
            fprintf(stderr, "freshet score: %s\n", err);
            rc = 1;
            break;
        }
        /* following: counted, and the impression is kept for the next version */
        if (r < 0 && errors++ < 5) fprintf(stderr, "freshet score: %s\n", err);
        if (r == 0) continue;
        scored++;
        if (in == stdin) fflush(stdout);
        if (!follow) continue;
        if (nlines == lcap) {
            lcap = lcap ? 2 * lcap : 64;
            char **nl = realloc(lines, lcap * sizeof *nl);
            if (!nl) {
                fprintf(stderr, "freshet score: out of memory keeping the impressions to follow\n");
                rc = 1;
                break;
            }
            lines = nl;
        }
        if (!(lines[nlines] = strdup(line))) {
            fprintf(stderr, "freshet score: out of memory keeping the impressions to follow\n");
            rc = 1;
            break;
        }
        nlines++;
    }
    free(line);
    if (in != stdin) fclose(in);
    double until = fr_cli_now() + a->follow;
    /* Following: every round scores the kept impressions with the current version (a reader under
     * load); a round after a new version was loaded prints them again under its "version" line. */
    for (int print = 0; follow && rc == 0 && fr_cli_now() < until; rounds++) {
        int f = freshet_serving_follow(s, 200, err, sizeof err);
        if (f < 0) {
            if (errors++ < 5) fprintf(stderr, "freshet score: %s\n", err);
            struct timespec ts = {0, 200 * 1000 * 1000};
            nanosleep(&ts, NULL);
            continue;
        }
        if (f > 0) {
            reloads++;
            print = 1;
            printf("version %" PRIu64 "\n", freshet_serving_version(s));
            if (!freshet_serving_scenario_name(s, 0)) {
                fprintf(stderr, "freshet score: version %" PRIu64 ": its manifest has no field list to decode JSON with\n",
                        freshet_serving_version(s));
                rc = 1;
                break;
            }
        }
        for (size_t i = 0; i < nlines; i++) {
            if (score_line(s, imp, lines[i], 0, print, 0, err, sizeof err) >= 0) continue;
            if (errors++ < 5) fprintf(stderr, "freshet score: %s\n", err);
            break;
        }
        print = 0;
        fflush(stdout);
    }
    if (follow)
        printf("followed %.0f s: %" PRIu64 " rounds, %" PRIu64 " versions loaded, %" PRIu64 " errors, final version %" PRIu64
               "\n",
               a->follow, rounds, reloads, errors, freshet_serving_version(s));
    for (size_t i = 0; i < nlines; i++) free(lines[i]);
    free(lines);
    freshet_impression_free(imp);
    report_refused("score", s);
    freshet_serving_close(s);
    return rc;
}
