#include "fr_cli.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fr_admit.h"
#include "fr_ckpt.h"
#include "fr_config.h"
#include "fr_event.h"
#include "fr_fileid.h"
#include "fr_gen.h"
#include "fr_kafka.h"
#include "fr_manifest.h"
#include "fr_metrics.h"
#include "fr_oracle.h"
#include "fr_pipeline.h"
#include "fr_publish.h"
#include "fr_serving_int.h"
#include "fr_verify.h"
#include "freshet_serving.h"

static const char USAGE[] =
    "usage: freshet COMMAND [options]\n"
    "\n"
    "  gen --out FILE [--truth FILE] [--impressions N] [--seed S] [--days D] [--users N] [--ads N]\n"
    "      [--duplicates RATE] [--reorder-ms MS]   write a synthetic event stream (EVENTS.md JSON Lines)\n"
    "      [--delay-short-share S] [--delay-short-mean SEC] [--delay-long-mean SEC] [--obs-window SEC]\n"
    "                                             conversion delay mixture; w_o of the truth's p_ip / p_dp\n"
    "  load FILE [-c CONFIG] [--brokers H:P]        produce a JSON Lines file into the Kafka topics\n"
    "  replay FILE [-c CONFIG] [--state DIR] [--no-publish]\n"
    "                                               learn from a file, no broker (resumes where it stopped)\n"
    "  run -c CONFIG [--state DIR] [--brokers H:P] [--redis H:P] [--no-publish] [--exit-when-idle SECONDS]\n"
    "                                               the daemon: consume Kafka, learn, checkpoint, publish\n"
    "  inspect DIR                                  summarise a checkpoint and print its digest\n"
    "  pull [-c CONFIG] [--redis H:P] [--events FILE] [--limit N] [--state DIR]\n"
    "                                               read the active model back from Redis and score with it\n"
    "                                               (the first N impressions of FILE, default 10)\n"
    "  score [-c CONFIG] [--redis H:P] [--events FILE] [--limit N] [--follow SECONDS]\n"
    "                                               score EVENTS.md impressions (default: stdin; every one, or\n"
    "                                               the first N) with the active version; --follow: keep\n"
    "                                               following pushes and rollbacks, scoring them again under\n"
    "                                               each new version\n"
    "  rollback [-c CONFIG] [--redis H:P] [--to VERSION | --release]\n"
    "                                               make an earlier retained version active (default: the previous)\n"
    "                                               and hold it there until --release hands back to the daemon\n"
    "  verify [-c CONFIG] [--redis H:P] [--state DIR]\n"
    "                                               compare what Redis serves with the checkpoint, row by row and\n"
    "                                               the active dense blob; exit 0 only when they are equal\n"
    "  truth TRUTH.tsv [-c CONFIG]                  AUC and log loss of the generator's true probabilities\n"
    "\n"
    "freshetd -c CONFIG is `freshet run -c CONFIG`. SIGINT/SIGTERM: finish the message, checkpoint, exit 0.\n"
    "replay and run exit 3 when their work is checkpointed but could not be published (Redis unreachable, another\n"
    "daemon's lease on the prefix, a rollback's hold); 1 on other errors, 2 on bad usage or configuration.\n";

typedef struct {
    const char *config;
    const char *state;
    const char *brokers;
    const char *redis;
    const char *out;
    const char *truth;
    const char *events;
    const char *positional;
    int no_publish;
    double exit_when_idle;
    long long impressions;
    long long seed;
    double days;
    double duplicates;
    double reorder_ms;
    long long limit;        /* --limit: impressions to score, >= 1; -1 when not given */
    long long users, ads;
    unsigned long long to;  /* rollback --to; 0 = the previous version */
    int release;            /* rollback --release */
    double follow;          /* score --follow seconds */
    int have_impressions, have_seed, have_days;
    double delay_short_share, delay_short_mean, delay_long_mean, obs_window; /* gen; < 0 = default */
} cli_args;

static int parse_number(const char *flag, const char *text, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || *end) {
        fprintf(stderr, "freshet: %s expects a number, got \"%s\"\n", flag, text);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_args(int argc, char **argv, cli_args *a)
{
    memset(a, 0, sizeof *a);
    a->limit = -1; /* not given: score all (pull: 10) */
    a->delay_short_share = a->delay_short_mean = a->delay_long_mean = a->obs_window = -1;
    for (int i = 0; i < argc; i++) {
        const char *f = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        double num;
#define FR_NEEDS_VALUE                                                        \
    if (!v) {                                                                 \
        fprintf(stderr, "freshet: %s needs a value\n%s", f, USAGE);           \
        return -1;                                                            \
    }                                                                         \
    i++;
        if (!strcmp(f, "-c") || !strcmp(f, "--config")) { FR_NEEDS_VALUE a->config = v; }
        else if (!strcmp(f, "--state")) { FR_NEEDS_VALUE a->state = v; }
        else if (!strcmp(f, "--brokers")) { FR_NEEDS_VALUE a->brokers = v; }
        else if (!strcmp(f, "--redis")) { FR_NEEDS_VALUE a->redis = v; }
        else if (!strcmp(f, "--out")) { FR_NEEDS_VALUE a->out = v; }
        else if (!strcmp(f, "--truth")) { FR_NEEDS_VALUE a->truth = v; }
        else if (!strcmp(f, "--events")) { FR_NEEDS_VALUE a->events = v; }
        else if (!strcmp(f, "--no-publish")) { a->no_publish = 1; }
        else if (!strcmp(f, "--release")) { a->release = 1; }
        else if (!strcmp(f, "--exit-when-idle")) { FR_NEEDS_VALUE if (parse_number(f, v, &a->exit_when_idle)) return -1; }
        else if (!strcmp(f, "--impressions")) { FR_NEEDS_VALUE if (parse_number(f, v, &num)) return -1; a->impressions = (long long)num; a->have_impressions = 1; }
        else if (!strcmp(f, "--seed")) { FR_NEEDS_VALUE if (parse_number(f, v, &num)) return -1; a->seed = (long long)num; a->have_seed = 1; }
        else if (!strcmp(f, "--days")) { FR_NEEDS_VALUE if (parse_number(f, v, &a->days)) return -1; a->have_days = 1; }
        else if (!strcmp(f, "--duplicates")) { FR_NEEDS_VALUE if (parse_number(f, v, &a->duplicates)) return -1; }
        else if (!strcmp(f, "--delay-short-share")) { FR_NEEDS_VALUE if (parse_number(f, v, &a->delay_short_share)) return -1; }
        else if (!strcmp(f, "--delay-short-mean")) { FR_NEEDS_VALUE if (parse_number(f, v, &a->delay_short_mean)) return -1; }
        else if (!strcmp(f, "--delay-long-mean")) { FR_NEEDS_VALUE if (parse_number(f, v, &a->delay_long_mean)) return -1; }
        else if (!strcmp(f, "--obs-window")) { FR_NEEDS_VALUE if (parse_number(f, v, &a->obs_window)) return -1; }
        else if (!strcmp(f, "--reorder-ms")) { FR_NEEDS_VALUE if (parse_number(f, v, &a->reorder_ms)) return -1; }
        else if (!strcmp(f, "--users")) { FR_NEEDS_VALUE if (parse_number(f, v, &num)) return -1; a->users = (long long)num; }
        else if (!strcmp(f, "--ads")) { FR_NEEDS_VALUE if (parse_number(f, v, &num)) return -1; a->ads = (long long)num; }
        else if (!strcmp(f, "--to")) {
            FR_NEEDS_VALUE
            char *end = (char *)v;
            errno = 0;
            /* digits only: strtoull would skip blanks and take "-3" as 2^64 - 3 */
            a->to = v[0] >= '0' && v[0] <= '9' ? strtoull(v, &end, 10) : 0;
            if (errno || a->to == 0 || *end) {
                fprintf(stderr, "freshet: --to expects a version number (> 0), got \"%s\"\n", v);
                return -1;
            }
        }
        else if (!strcmp(f, "--follow")) { FR_NEEDS_VALUE if (parse_number(f, v, &a->follow)) return -1; }
        else if (!strcmp(f, "--limit")) {
            FR_NEEDS_VALUE
            if (parse_number(f, v, &num)) return -1;
            if (!(num >= 1 && num <= 1e15) || num != (double)(long long)num) {
                fprintf(stderr, "freshet: --limit expects a whole number of impressions >= 1, got \"%s\" (leave it "
                                "out to score them all)\n", v);
                return -1;
            }
            a->limit = (long long)num;
        }
        else if (f[0] == '-' && f[1]) {
            fprintf(stderr, "freshet: unknown option %s\n%s", f, USAGE);
            return -1;
        } else if (!a->positional) {
            a->positional = f;
        } else {
            fprintf(stderr, "freshet: unexpected argument %s\n%s", f, USAGE);
            return -1;
        }
#undef FR_NEEDS_VALUE
    }
    return 0;
}

static int split_host_port(const char *text, char *host, size_t hostcap, int *port)
{
    const char *colon = strrchr(text, ':');
    if (!colon || colon == text || (size_t)(colon - text) >= hostcap) return -1;
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (*end || p <= 0 || p > 65535) return -1;
    memcpy(host, text, (size_t)(colon - text));
    host[colon - text] = '\0';
    *port = (int)p;
    return 0;
}

/* Config file first, then command-line overrides. */
static int load_config(const cli_args *a, fr_config *c)
{
    char err[512];
    fr_config_defaults(c);
    if (a->config && fr_config_load(c, a->config, err, sizeof err) != 0) {
        fprintf(stderr, "freshet: %s\n", err);
        return -1;
    }
    if (a->state) snprintf(c->checkpoint_dir, sizeof c->checkpoint_dir, "%s", a->state);
    if (a->brokers) snprintf(c->brokers, sizeof c->brokers, "%s", a->brokers);
    if (a->redis && split_host_port(a->redis, c->redis_host, sizeof c->redis_host, &c->redis_port) != 0) {
        fprintf(stderr, "freshet: --redis expects HOST:PORT, got \"%s\"\n", a->redis);
        return -1;
    }
    if (a->no_publish) c->redis_host[0] = '\0';
    return 0;
}

static void stop_signal_set(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
}

static void block_stop_signals(sigset_t *set)
{
    /* Blocked, not handled: the loops poll sigpending() between messages, so a stop always lands
     * on a message boundary and needs no global flag. Every thread must block them, library threads
     * started before main() included: main.c blocks them first thing (DT_PREINIT_ARRAY); this only
     * makes sure of it. */
    stop_signal_set(set);
    sigprocmask(SIG_BLOCK, set, NULL);
}

static int stop_requested(const sigset_t *set)
{
    sigset_t pending;
    sigpending(&pending);
    return (sigismember(set, SIGINT) == 1 && sigismember(&pending, SIGINT) == 1) ||
           (sigismember(set, SIGTERM) == 1 && sigismember(&pending, SIGTERM) == 1);
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- gen ---------------------------------------------------------------------------------- */

static int cmd_gen(const cli_args *a)
{
    if (!a->out) {
        fprintf(stderr, "freshet gen: --out FILE is required\n");
        return 2;
    }
    fr_gen_opts o;
    fr_gen_defaults(&o);
    if (a->have_impressions) o.impressions = a->impressions;
    if (a->have_seed) o.seed = (uint64_t)a->seed;
    if (a->have_days) o.days = a->days;
    if (a->users > 0) o.n_users = (int)a->users;
    if (a->ads > 0) o.n_ads = (int)a->ads;
    o.duplicate_rate = a->duplicates;
    o.reorder_ms = a->reorder_ms;
    if (a->delay_short_share >= 0) o.delay_short_share = a->delay_short_share;
    if (a->delay_short_mean >= 0) o.delay_short_mean_s = a->delay_short_mean;
    if (a->delay_long_mean >= 0) o.delay_long_mean_s = a->delay_long_mean;
    if (a->obs_window >= 0) o.obs_window_s = a->obs_window;
    FILE *ev = fopen(a->out, "w");
    FILE *tr = a->truth ? fopen(a->truth, "w") : NULL;
    if (!ev || (a->truth && !tr)) {
        fprintf(stderr, "freshet gen: cannot write %s: %s\n", !ev ? a->out : a->truth, strerror(errno));
        if (ev) fclose(ev);
        if (tr) fclose(tr);
        return 1;
    }
    char err[512];
    double t0 = now_seconds();
    int rc = fr_gen_run(&o, ev, tr, err, sizeof err);
    if (fclose(ev) != 0 && rc == 0) snprintf(err, sizeof err, "writing %s: %s", a->out, strerror(errno)), rc = -1;
    if (tr && fclose(tr) != 0 && rc == 0) snprintf(err, sizeof err, "writing %s: %s", a->truth, strerror(errno)), rc = -1;
    if (rc != 0) {
        fprintf(stderr, "freshet gen: %s\n", err);
        return 1;
    }
    fprintf(stderr, "freshet gen: %lld impressions in %.1f s -> %s\n", (long long)o.impressions, now_seconds() - t0,
            a->out);
    return 0;
}

/* ---- load --------------------------------------------------------------------------------- */

static int cmd_load(const cli_args *a)
{
    fr_config c;
    if (load_config(a, &c) != 0) return 2;
    if (!a->positional) {
        fprintf(stderr, "freshet load: which file?\n");
        return 2;
    }
    FILE *in = strcmp(a->positional, "-") == 0 ? stdin : fopen(a->positional, "r");
    if (!in) {
        fprintf(stderr, "freshet load: cannot read %s: %s\n", a->positional, strerror(errno));
        return 1;
    }
    fr_kafka_load_stats st;
    char err[512];
    double t0 = now_seconds();
    int rc = fr_kafka_load(&c, in, &st, err, sizeof err);
    if (in != stdin) fclose(in);
    double dt = now_seconds() - t0;
    fprintf(stderr,
            "freshet load: %" PRIu64 " lines, %" PRIu64 " acknowledged, %" PRIu64 " unparsable (sent unkeyed), %.1f s, %.0f msg/s\n",
            st.lines, st.produced, st.unparsable, dt, dt > 0 ? (double)st.produced / dt : 0);
    if (rc != 0) {
        fprintf(stderr, "freshet load: %s\n", err);
        return 1;
    }
    return 0;
}

/* ---- replay ------------------------------------------------------------------------------- */

/* A run asked to publish must say so when it could not, and exit non-zero (3: the work is in the
 * checkpoint, the next run publishes it). */
static int finish_publishing(fr_pipeline *p, const char *cmd)
{
    char msg[640];
    int rc = fr_pipeline_finish_publishing(p, 5.0, msg, sizeof msg);
    if (rc == 0) return 0;
    fprintf(stderr, "freshet %s: checkpointed, but %s: %s\n", cmd,
            rc == FR_PIPELINE_PUBLISH_HELD ? "publishing is held by a rollback" : "NOT published", msg);
    return 3;
}

static int cmd_replay(const cli_args *a)
{
    fr_config c;
    if (load_config(a, &c) != 0) return 2;
    if (!a->positional) {
        fprintf(stderr, "freshet replay: which file?\n");
        return 2;
    }
    sigset_t stop;
    block_stop_signals(&stop);
    FILE *in = fopen(a->positional, "r");
    if (!in) {
        fprintf(stderr, "freshet replay: cannot read %s: %s\n", a->positional, strerror(errno));
        return 1;
    }
    char err[512];
    fr_oracle *oracle = NULL;
    if (fr_policy_get(c.join_policy)->oracle) {
        if (!(oracle = fr_oracle_scan(&c.schema, a->positional, err, sizeof err))) {
            fprintf(stderr, "freshet replay: %s\n", err);
            fclose(in);
            return 1;
        }
        c.oracle = fr_oracle_lookup;
        c.oracle_ctx = oracle;
        fprintf(stderr, "freshet replay: oracle policy: %zu conversions looked ahead\n", fr_oracle_count(oracle));
    }
    fr_pipeline *p = fr_pipeline_open(&c, err, sizeof err);
    if (!p) {
        fprintf(stderr, "freshet replay: %s\n", err);
        fclose(in);
        fr_oracle_free(oracle);
        return 1;
    }
    /* The source is named after the file's real path, so that one state can backfill several logs,
     * and its offset is resumed only in the same content (fr_fileid.h). */
    char source[FR_SOURCE_NAME_MAX], legacy[FR_SOURCE_NAME_MAX];
    fr_fileid id;
    int64_t offset = -1;
    unsigned char idb[FR_SOURCE_IDENTITY_MAX];
    int refused = fr_fileid_of(in, a->positional, source, sizeof source, &id, err, sizeof err) != 0;
    fr_fileid_legacy_name(a->positional, legacy, sizeof legacy);
    if (!refused && fr_pipeline_source_offset(p, legacy) > 0) {
        snprintf(err, sizeof err,
                 "the state holds an offset for \"%s\" from an older freshet that named replay files by base name "
                 "only: it cannot tell whether %s is that file; replay into a fresh --state",
                 legacy, a->positional);
        refused = 1;
    }
    if (!refused) {
        fr_pipeline_register_source(p, source, &offset);
        long sl = fr_pipeline_source_identity(p, source, idb, sizeof idb);
        refused = offset > 0 && fr_fileid_check_resume(in, a->positional, &id, idb, sl, offset, err, sizeof err) != 0;
    }
    if (!refused && offset > 0 && fseeko(in, offset, SEEK_SET) != 0) {
        snprintf(err, sizeof err, "cannot seek %s to the checkpointed offset %" PRId64, a->positional, offset);
        refused = 1;
    }
    if (refused) {
        fprintf(stderr, "freshet replay: %s\n", err);
        fr_pipeline_close(p);
        fclose(in);
        fr_oracle_free(oracle);
        return 1;
    }
    if (offset > 0) fprintf(stderr, "freshet replay: resuming %s at byte %" PRId64 "\n", a->positional, offset);
    fr_fileid_encode(&id, idb);
    fr_pipeline_set_source_identity(p, source, idb, FR_FILEID_LEN);
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int rc = 0, stopped = 0;
    uint64_t lines = 0;
    double last_status = now_seconds();
    while ((n = getline(&line, &cap, in)) > 0) {
        int64_t next = (int64_t)ftello(in);
        size_t len = (size_t)n;
        if (line[len - 1] == '\n') len--;
        if (len == 0) continue;
        /* before the message: a checkpoint it triggers stores next with this identity */
        fr_fileid_read(&id, line, (size_t)n);
        fr_fileid_encode(&id, idb);
        fr_pipeline_set_source_identity(p, source, idb, FR_FILEID_LEN);
        if (fr_pipeline_message(p, source, next, line, len, err, sizeof err) != 0) {
            fprintf(stderr, "freshet replay: stopping: %s\n", err);
            rc = 1;
            break;
        }
        if ((++lines & 4095) == 0) {
            if (stop_requested(&stop)) {
                fprintf(stderr, "freshet replay: stop requested: checkpointing and exiting\n");
                stopped = 1;
                break;
            }
            double now = now_seconds();
            if (c.status_every_seconds > 0 && now - last_status >= c.status_every_seconds) {
                fr_pipeline_status_line(p, stderr, NULL);
                last_status = now;
            }
        }
    }
    free(line);
    fclose(in);
    if (rc == 0) {
        if (!stopped) {
            fr_pipeline_source_idle(p, source, 1);
            fr_pipeline_tick(p);
        }
        if (fr_pipeline_checkpoint(p, err, sizeof err) != 0) {
            fprintf(stderr, "freshet replay: %s\n", err);
            rc = 1;
        } else {
            fr_pipeline_report(p, stdout);
            fr_pipeline_row_report(p, stderr);
            rc = finish_publishing(p, "replay");
        }
    }
    fr_pipeline_close(p);
    fr_oracle_free(oracle);
    return rc;
}

/* ---- run ---------------------------------------------------------------------------------- */

static int cmd_run(const cli_args *a)
{
    fr_config c;
    if (load_config(a, &c) != 0) return 2;
    sigset_t stop;
    block_stop_signals(&stop);
    char err[512];
    fr_pipeline *p = fr_pipeline_open(&c, err, sizeof err);
    if (!p) {
        fprintf(stderr, "freshet run: %s\n", err);
        return 1;
    }
    fprintf(stderr, "freshet run: brokers=%s topics=%s,%s,%s state=%s publish=%s%s%d\n", c.brokers, c.topic[0],
            c.topic[1], c.topic[2], c.checkpoint_dir, c.redis_host[0] ? c.redis_host : "off", c.redis_host[0] ? ":" : "",
            c.redis_host[0] ? c.redis_port : 0);
    char arch[512];
    fr_model_describe(fr_model_get_config(fr_pipeline_model(p)), arch, sizeof arch);
    fprintf(stderr, "freshet run: model %s\n", arch);
    fr_http *metrics = NULL;
    if (c.metrics_listen[0]) {
        /* 60 s: the loop hands a page over every second unless a step blocks (a checkpoint of
         * millions of rows takes about 2 s); a minute without one is a stuck daemon */
        metrics = fr_http_start(c.metrics_listen, 60, err, sizeof err);
        if (!metrics) {
            fprintf(stderr, "freshet run: %s\n", err);
            fr_pipeline_close(p);
            return 1;
        }
        const char *colon = strrchr(c.metrics_listen, ':');
        fprintf(stderr, "freshet run: metrics on http://%.*s:%d/metrics (health: /healthz)\n",
                (int)(colon - c.metrics_listen), c.metrics_listen, fr_http_port(metrics));
    }
    fr_kafka_run_opts o = {
        .exit_when_idle_seconds = a->exit_when_idle, .stop_signals = &stop, .status_out = stderr, .metrics = metrics};
    int rc = fr_kafka_run(p, &c, &o, err, sizeof err);
    fr_http_stop(metrics);
    int exit_code = rc == 0 ? 0 : 1;
    if (rc != 0) fprintf(stderr, "freshet run: stopping: %s\n", err);
    else {
        fr_pipeline_report(p, stdout);
        fr_pipeline_row_report(p, stderr);
        exit_code = finish_publishing(p, "run");
    }
    fr_pipeline_close(p);
    return exit_code;
}

/* ---- inspect ------------------------------------------------------------------------------ */

static int print_offset(const char *source, int64_t next_offset, void *ctx)
{
    (void)ctx;
    printf("offset %s next=%" PRId64 "\n", source, next_offset);
    return 0;
}

/* Table names in table order: categorical slots (slot 0 = scenario), then multi-valued slots. */
static void table_names(const char *manifest, int n_cat, int n_multi, char names[][FR_NAME_MAX])
{
    for (int t = 0; t < n_cat + n_multi; t++) snprintf(names[t], FR_NAME_MAX, "table%d", t);
    if (n_cat > 0) snprintf(names[0], FR_NAME_MAX, "scenario");
    json_t *root = manifest ? json_loads(manifest, 0, NULL) : NULL;
    size_t i;
    json_t *f;
    json_array_foreach(json_object_get(root, "fields"), i, f)
    {
        const char *kind = json_string_value(json_object_get(f, "kind"));
        const char *name = json_string_value(json_object_get(f, "name"));
        int slot = (int)json_integer_value(json_object_get(f, "slot"));
        if (!kind || !name) continue;
        int t = !strcmp(kind, "categorical") ? slot : !strcmp(kind, "multi") ? n_cat + slot : -1;
        if (t >= 0 && t < n_cat + n_multi) snprintf(names[t], FR_NAME_MAX, "%s", name);
    }
    json_decref(root);
}

static int count_zero_weights(const fr_row_view *r, void *ctx)
{
    uint64_t *c = ctx;
    c[0] += (uint64_t)r->dim;
    for (int i = 0; i < r->dim; i++) c[1] += r->weights[i] == 0.0f;
    return 0;
}

static int cmd_inspect(const cli_args *a)
{
    if (!a->positional) {
        fprintf(stderr, "freshet inspect: which checkpoint directory?\n");
        return 2;
    }
    char err[512];
    fr_ckpt *ck = fr_ckpt_open_readonly(a->positional, err, sizeof err);
    if (!ck) {
        fprintf(stderr, "freshet inspect: %s\n", err);
        return 1;
    }
    if (!fr_ckpt_exists(ck)) {
        fprintf(stderr, "freshet inspect: %s holds no checkpoint\n", a->positional);
        fr_ckpt_close(ck);
        return 1;
    }
    fr_model *m = fr_ckpt_load_model(ck, err, sizeof err);
    if (!m) {
        fprintf(stderr, "freshet inspect: %s\n", err);
        fr_ckpt_close(ck);
        return 1;
    }
    const fr_model_config *mc = fr_model_get_config(m);
    char manifest[65536];
    long ml = fr_ckpt_get_blob(ck, "manifest", manifest, sizeof manifest - 1);
    if (ml >= 0 && ml < (long)sizeof manifest) manifest[ml] = '\0';
    char names[FR_MAX_CAT + FR_MAX_MULTI][FR_NAME_MAX];
    table_names(ml >= 0 && ml < (long)sizeof manifest ? manifest : NULL, mc->n_cat, mc->n_multi, names);
    printf("checkpoint %s\n", a->positional);
    char arch[512];
    fr_model_describe(mc, arch, sizeof arch);
    printf("model version=%" PRIu64 " %s\n", fr_model_version(m), arch);
    size_t total_rows = 0;
    for (uint32_t t = 0; t < fr_model_table_count(m); t++) {
        size_t rows = fr_model_row_count(m, t);
        total_rows += rows;
        printf("rows %-12s %zu\n", names[t], rows);
    }
    printf("rows total %zu\n", total_rows);
    uint64_t coords[2] = {0, 0}; /* all, exactly 0 */
    fr_model_foreach_row(m, 0, count_zero_weights, coords);
    /* FTRL's l1 makes coordinates exactly 0: the share says how much a sparse encoding would save */
    printf("embedding coordinates=%" PRIu64 " zero=%" PRIu64 " (%.2f%%) emb_optimizer=%s\n", coords[0], coords[1],
           coords[0] ? 100.0 * (double)coords[1] / (double)coords[0] : 0.0,
           mc->emb_optimizer == 1 ? "ftrl" : "adagrad");
    fr_row_stats rs;
    fr_model_row_stats(m, &rs);
    /* the filters are not built by a bare load: their size follows from the stored widths */
    uint64_t admit_bytes = 0;
    for (uint32_t t = 0; t < fr_model_table_count(m); t++) {
        char bname[32];
        unsigned char w[4];
        snprintf(bname, sizeof bname, "admit.%" PRIu32, t);
        if (fr_ckpt_get_blob(ck, bname, w, sizeof w) == 4) {
            uint32_t wl = (uint32_t)w[0] | (uint32_t)w[1] << 8 | (uint32_t)w[2] << 16 | (uint32_t)w[3] << 24;
            if (wl >= 1 && wl < 40) admit_bytes += (uint64_t)FR_ADMIT_DEPTH << (wl - 1);
            printf("admission %-12s counters=4x2^%" PRIu32 "\n", names[t], wl);
        }
    }
    printf("rows memory %" PRIu64 " B = %.1f B/row (raw payload %.0f B/row: key 8 + weights %d + optimizer state %zu + "
           "version 8 + stamp 4; %.2fx); admission filters %" PRIu64 " B; clock=%" PRId64 "\n",
           rs.row_bytes, rs.rows ? (double)rs.row_bytes / (double)rs.rows : 0.0,
           rs.rows ? (double)rs.raw_bytes / (double)rs.rows : 0.0, 4 * mc->emb_dim, 4 * fr_model_row_state_count(m),
           rs.rows && rs.raw_bytes ? (double)rs.row_bytes / (double)rs.raw_bytes : 0.0, admit_bytes,
           fr_model_clock(m));
    printf("dense floats=%zu tensors=%d\n", fr_model_dense_count(m), fr_model_dense_tensor_count(m));
    /* Every part it reads must be readable: an unreadable one is named, the rest still printed,
     * and the exit status says the checkpoint is not whole. */
    int rc = 0;
    if (fr_ckpt_foreach_offset(ck, print_offset, NULL, err, sizeof err) != 0) {
        fprintf(stderr, "freshet inspect: %s\n", err);
        rc = 1;
    }
    fr_pipeline_counters pc;
    unsigned char cbuf[sizeof pc];
    long clen = fr_ckpt_get_blob(ck, "counters", cbuf, sizeof cbuf);
    if (clen >= 0 && fr_pipeline_counters_decode(cbuf, (size_t)clen, &pc) == 0) {
        uint64_t rejected = 0;
        for (int r = 0; r < FR_REJECT_NREASONS; r++) rejected += pc.rejected[r];
        printf("consumed=%" PRIu64 " rejected=%" PRIu64 " samples_trained=%" PRIu64 " samples_buffered=%" PRIu64 "\n",
               pc.consumed, rejected, pc.samples_trained, pc.samples_buffered);
    } else {
        fprintf(stderr, "freshet inspect: checkpoint: blob \"counters\" missing or of another length\n");
        rc = 1;
    }
    /* absent in a checkpoint from before the event-time check: nothing held */
    long elen = fr_ckpt_get_blob(ck, "evtime", NULL, 0);
    unsigned char *eb = elen > 0 ? malloc((size_t)elen) : NULL;
    uint64_t held, released;
    if (eb && fr_ckpt_get_blob(ck, "evtime", eb, (size_t)elen) == elen &&
        fr_pipeline_evtime_totals(eb, (size_t)elen, &held, &released) == 0) {
        printf("event_time held=%" PRIu64 " released=%" PRIu64 "\n", held, released);
    } else if (elen >= 0) {
        fprintf(stderr, "freshet inspect: checkpoint: blob \"evtime\" (messages held ahead of their partition's "
                        "time) unreadable\n");
        rc = 1;
    }
    free(eb);
    fr_join_config jc = {0};
    fr_join *j = fr_join_create(&jc);
    size_t cap = j ? fr_join_export_meta(j, NULL, 0) : 0;
    char *meta = cap ? malloc(cap) : NULL;
    long len = meta ? fr_ckpt_get_join_meta(ck, meta, cap) : -1;
    if (len >= 0 && (size_t)len <= cap && fr_join_import_meta(j, meta, (size_t)len) == 0) {
        const fr_join_counters *jcnt = fr_join_get_counters(j);
        printf("watermark=%" PRId64 " pending impressions=%" PRIu64 " clicks=%" PRIu64 " conversions=%" PRIu64 "\n",
               fr_join_watermark(j), jcnt->pending[FR_EV_IMPRESSION], jcnt->pending[FR_EV_CLICK],
               jcnt->pending[FR_EV_CONVERSION]);
        printf("samples emitted click_window=%" PRIu64 " attribution=%" PRIu64 "\n",
               jcnt->emitted[FR_SAMPLE_CLICK_WINDOW], jcnt->emitted[FR_SAMPLE_ATTRIBUTION]);
    } else {
        fprintf(stderr, "freshet inspect: checkpoint: join counters (key \"K\") %s\n",
                !j || (cap && !meta) ? "not read: out of memory"
                : len < 0            ? "missing"
                                     : "unreadable, or their counts break events = joined + pending + dropped");
        rc = 1;
    }
    free(meta);
    fr_join_free(j);
    char digest[33];
    if (fr_ckpt_digest(ck, digest) == 0) {
        printf("digest %s\n", digest);
    } else {
        fprintf(stderr, "freshet inspect: checkpoint: no digest: reading every key failed (a RocksDB read error: a "
                        "corrupt or missing file?)\n");
        rc = 1;
    }
    fr_model_free(m);
    fr_ckpt_close(ck);
    return rc;
}

/* ---- pull and score: through the public serving library, as a serving team scores ---------- */

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

static int cmd_pull(const cli_args *a)
{
    fr_config c;
    if (load_config(a, &c) != 0) return 2;
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

static int cmd_score(const cli_args *a)
{
    fr_config c;
    if (load_config(a, &c) != 0) return 2;
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
    double until = now_seconds() + a->follow;
    /* Following: every round scores the kept impressions with the current version (a reader under
     * load); a round after a new version was loaded prints them again under its "version" line. */
    for (int print = 0; follow && rc == 0 && now_seconds() < until; rounds++) {
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

/* ---- rollback ------------------------------------------------------------------------------ */

static int cmd_rollback(const cli_args *a)
{
    fr_config c;
    if (load_config(a, &c) != 0) return 2;
    if (!c.redis_host[0]) {
        fprintf(stderr, "freshet rollback: no Redis configured (redis.host is empty)\n");
        return 2;
    }
    char err[512];
    if (a->release) {
        if (a->to) {
            fprintf(stderr, "freshet rollback: --to and --release exclude each other\n");
            return 2;
        }
        uint64_t held = 0;
        if (fr_publish_release(c.redis_host, c.redis_port, c.redis_prefix, &held, err, sizeof err) != 0) {
            fprintf(stderr, "freshet rollback: %s\n", err);
            return 1;
        }
        if (held)
            printf("released %s:%d prefix %s: the hold on version %" PRIu64 " is lifted; the daemon's next push with "
                   "something new publishes its newest state\n",
                   c.redis_host, c.redis_port, c.redis_prefix, held);
        else
            printf("%s:%d prefix %s: no rollback held it; nothing to release\n", c.redis_host, c.redis_port,
                   c.redis_prefix);
        return 0;
    }
    uint64_t from = 0, now = 0;
    if (fr_publish_rollback(c.redis_host, c.redis_port, c.redis_prefix, (uint64_t)a->to, &from, &now, err,
                            sizeof err) != 0) {
        fprintf(stderr, "freshet rollback: %s\n", err);
        return 1;
    }
    printf("rolled back %s:%d prefix %s: active version %" PRIu64 " -> %" PRIu64 "\n", c.redis_host, c.redis_port,
           c.redis_prefix, from, now);
    printf("publishing is held at version %" PRIu64 ": daemons publish nothing until `freshet rollback --release`\n",
           now);
    return 0;
}

/* ---- verify ------------------------------------------------------------------------------- */

static int cmd_verify(const cli_args *a)
{
    fr_config c;
    if (load_config(a, &c) != 0) return 2;
    if (!c.redis_host[0]) {
        fprintf(stderr, "freshet verify: no Redis configured (redis.host is empty)\n");
        return 2;
    }
    char err[512];
    fr_ckpt *ck = fr_ckpt_open_readonly(c.checkpoint_dir, err, sizeof err);
    fr_model *m = ck ? fr_ckpt_load_model(ck, err, sizeof err) : NULL;
    fr_ckpt_close(ck);
    if (!m) {
        fprintf(stderr, "freshet verify: the checkpoint in %s: %s\n", c.checkpoint_dir, err);
        return 1;
    }
    printf("verify: redis %s:%d prefix %s against the checkpoint in %s (model version %" PRIu64 ")\n", c.redis_host,
           c.redis_port, c.redis_prefix, c.checkpoint_dir, fr_model_version(m));
    fr_verify_report rep;
    int rc = fr_verify_redis(c.redis_host, c.redis_port, c.redis_prefix, m, &rep, err, sizeof err);
    fr_model_free(m);
    if (rc != 0) {
        fprintf(stderr, "freshet verify: %s\n", err);
        return 1;
    }
    printf("rows: checkpoint=%" PRIu64 " redis=%" PRIu64 " equal=%" PRIu64 " missing=%" PRIu64 " extra=%" PRIu64
           " different=%" PRIu64 "\n",
           rep.model_rows, rep.redis_rows, rep.equal, rep.missing, rep.extra, rep.different);
    if (rep.loaded)
        printf("dense: active version %" PRIu64 " (model version %" PRIu64 "): %zu parameters, %zu different\n",
               rep.active_version, rep.active_model_version, rep.dense_count, rep.dense_different);
    else
        printf("dense: no active version could be loaded\n");
    int held = 0;
    uint64_t hv = 0;
    if (fr_publish_held(c.redis_host, c.redis_port, c.redis_prefix, &held, &hv, err, sizeof err) == 0 && held)
        printf("hold: a rollback holds version %" PRIu64 " active (freshet rollback --release lifts it)\n", hv);
    for (int i = 0; i < rep.nnotes; i++) printf("  %s\n", rep.notes[i]);
    if (!fr_verify_ok(&rep)) {
        printf("FAIL: redis does not serve exactly the checkpoint\n");
        return 1;
    }
    printf("ok: redis serves exactly the checkpoint\n");
    return 0;
}

/* ---- truth -------------------------------------------------------------------------------- */

static int cmd_truth(const cli_args *a)
{
    fr_config c;
    if (load_config(a, &c) != 0) return 2;
    if (!a->positional) {
        fprintf(stderr, "freshet truth: which truth file?\n");
        return 2;
    }
    FILE *in = fopen(a->positional, "r");
    if (!in) {
        fprintf(stderr, "freshet truth: cannot read %s: %s\n", a->positional, strerror(errno));
        return 1;
    }
    size_t nm = (size_t)FR_NTASKS * (size_t)(c.schema.n_scenarios + 1);
    fr_metric *m = calloc(nm, sizeof *m);
    if (!m) {
        fclose(in);
        return 1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    long long rows = 0;
    while ((n = getline(&line, &cap, in)) > 0) {
        char id[300], scen[FR_NAME_MAX];
        long long ts, click_ts, conv_ts;
        double p_ctr, p_cvr, p_cvr7;
        int clicked, converted;
        if (sscanf(line, "%299s %lld %63s %lf %lf %d %d %lf %lld %lld", id, &ts, scen, &p_ctr, &p_cvr, &clicked,
                   &converted, &p_cvr7, &click_ts, &conv_ts) != 10)
            continue; /* the header */
        int s = fr_schema_scenario_index(&c.schema, scen, strlen(scen));
        if (s < 0) continue;
        for (int pass = 0; pass < 2; pass++) {
            int k = pass == 0 ? s : c.schema.n_scenarios;
            fr_metric_add(&m[FR_TASK_CTR * (c.schema.n_scenarios + 1) + k], p_ctr, clicked, 1);
            fr_metric_add(&m[FR_TASK_CTCVR * (c.schema.n_scenarios + 1) + k], p_ctr * p_cvr7, converted, 1);
            if (clicked) fr_metric_add(&m[FR_TASK_CVR * (c.schema.n_scenarios + 1) + k], p_cvr7, converted, 1);
        }
        rows++;
    }
    free(line);
    fclose(in);
    static const char *const tasks[FR_NTASKS] = {"ctr", "cvr", "ctcvr"};
    printf("truth (Bayes) over %lld impressions of %s:\n", rows, a->positional);
    printf("  %-6s %-12s %10s %8s %8s\n", "task", "scenario", "samples", "auc", "logloss");
    for (int t = 0; t < FR_NTASKS; t++)
        for (int s = -1; s < c.schema.n_scenarios; s++) {
            const fr_metric *x = &m[t * (c.schema.n_scenarios + 1) + (s < 0 ? c.schema.n_scenarios : s)];
            if (!x->count) continue;
            printf("  %-6s %-12s %10" PRIu64 " %8.4f %8.4f\n", tasks[t], s < 0 ? "all" : c.schema.scenarios[s], x->count,
                   fr_metric_auc(x), fr_metric_logloss(x));
        }
    free(m);
    return 0;
}

/* ---- entry points ------------------------------------------------------------------------- */

int fr_cli_main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        fputs(USAGE, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    cli_args a;
    if (parse_args(argc - 2, argv + 2, &a) != 0) return 2;
    const char *cmd = argv[1];
    if (strcmp(cmd, "replay") != 0 && strcmp(cmd, "run") != 0) {
        /* No graceful stop here: SIGINT and SIGTERM end these commands at once, as usual (main.c
         * blocked them in every thread; unblocked on this one, the default action applies). */
        sigset_t stop;
        stop_signal_set(&stop);
        sigprocmask(SIG_UNBLOCK, &stop, NULL);
    }
    if (!strcmp(cmd, "gen")) return cmd_gen(&a);
    if (!strcmp(cmd, "load")) return cmd_load(&a);
    if (!strcmp(cmd, "replay")) return cmd_replay(&a);
    if (!strcmp(cmd, "run")) return cmd_run(&a);
    if (!strcmp(cmd, "inspect")) return cmd_inspect(&a);
    if (!strcmp(cmd, "pull")) return cmd_pull(&a);
    if (!strcmp(cmd, "truth")) return cmd_truth(&a);
    if (!strcmp(cmd, "score")) return cmd_score(&a);
    if (!strcmp(cmd, "rollback")) return cmd_rollback(&a);
    if (!strcmp(cmd, "verify")) return cmd_verify(&a);
    fprintf(stderr, "freshet: unknown command \"%s\"\n%s", cmd, USAGE);
    return 2;
}

int fr_cli_daemon_main(int argc, char **argv)
{
    cli_args a;
    if (parse_args(argc - 1, argv + 1, &a) != 0) return 2;
    if (!a.config) {
        fprintf(stderr, "usage: freshetd -c CONFIG [--state DIR] [--brokers H:P] [--redis H:P] [--no-publish]\n");
        return 2;
    }
    return cmd_run(&a);
}
