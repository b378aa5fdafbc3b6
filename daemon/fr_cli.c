/* fr_cli: the command line of `freshet` and `freshetd`: the usage, the options every command
 * shares, the configuration they start from, the stop signals, and the dispatch to the command
 * families (fr_cli_int.h). */
#include "fr_cli.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fr_cli_int.h"

/* The commands: name, synopsis (continuation lines after '\n'), what it does in one line, the
 * handler, and whether SIGINT/SIGTERM stop it gracefully (finish the message, checkpoint, exit 0)
 * instead of ending it at once. The usage is printed from this table. */
typedef struct {
    const char *name;
    const char *synopsis;
    const char *help;
    int (*run)(const fr_cli_args *a);
    int graceful_stop;
} fr_cli_command;

static const fr_cli_command COMMANDS[] = {
    {"gen",
     "--out FILE [--truth FILE] [--impressions N] [--seed S] [--days D] [--users N] [--ads N]\n"
     "[--duplicates RATE] [--reorder-ms MS] [--delay-short-share S] [--delay-short-mean SEC]\n"
     "[--delay-long-mean SEC] [--obs-window SEC] [--realistic | --conditions LIST] [--partitions N]",
     "write a synthetic event stream (EVENTS.md JSON Lines) and its truth; the --delay-* options and "
     "--obs-window set the conversion delay mixture and w_o of the truth's p_ip / p_dp; --realistic adds the "
     "conditions of real logs (all, or some of weekly, gap, bursts, lulls, sessions, ad_churn, skew with "
     "--conditions; sim/fr_gen.h)",
     fr_cli_cmd_gen, 0},
    {"load", "FILE [-c CONFIG] [--brokers H:P] [--format json|protobuf] [--schema-id N] [--event-time]",
     "produce a JSON Lines file into the Kafka topics, each line in its topic's format (--format: every topic's); "
     "--schema-id: Protobuf in the Confluent framing; --event-time: each message's Kafka timestamp is its event's "
     "ts (else the clock's; the broker's time retention judges by it)",
     fr_cli_cmd_load, 0},
    {"replay",
     "FILE [-c CONFIG] [--state DIR] [--no-publish] [--drain] [--samples-out FILE]\n"
     "--kafka --from TIME [--to TIME] [-c CONFIG] [--brokers H:P] [--state DIR] [--no-publish] [--drain]",
     "learn from a file, no broker (resumes where it stopped); --drain: at its end close every window and train "
     "everything. --kafka: a backfill from the configured topics of the messages whose Kafka timestamp is in "
     "[--from, --to) (default --to: the end when it starts), read once per state; TIME: ms since 1970, 2025-12-01 "
     "or 2025-12-01T06:00:00Z. --samples-out: record every sample trained or scored, with its score "
     "(docs/samples-record.md; bench/peers)",
     fr_cli_cmd_replay, 1},
    {"run", "-c CONFIG [--state DIR] [--brokers H:P] [--redis H:P] [--no-publish] [--exit-when-idle SECONDS]",
     "the daemon: consume Kafka, learn, checkpoint, publish", fr_cli_cmd_run, 1},
    {"inspect", "DIR", "summarise a checkpoint and print its digest", fr_cli_cmd_inspect, 0},
    {"report", "DIR [--out FILE.html]",
     "write one self-contained HTML page of a checkpoint (default report.html): the progressive AUC, log loss and "
     "calibration over event time per task and scenario (plots drawn by gnuplot), the join's accounting",
     fr_cli_cmd_report, 0},
    {"pull", "[-c CONFIG] [--redis H:P] [--events FILE] [--limit N] [--state DIR]",
     "read the active model back from Redis and score with it (the first N impressions of FILE, default 10)",
     fr_cli_cmd_pull, 0},
    {"score", "[-c CONFIG] [--redis H:P] [--events FILE] [--limit N] [--follow SECONDS]",
     "score EVENTS.md impressions (default: stdin; every one, or the first N) with the active version; "
     "--follow: keep following pushes and rollbacks, scoring them again under each new version",
     fr_cli_cmd_score, 0},
    {"rollback", "[-c CONFIG] [--redis H:P] [--to VERSION | --release]",
     "make an earlier retained version active (default: the previous) and hold it there until --release hands "
     "back to the daemon",
     fr_cli_cmd_rollback, 0},
    {"verify", "[-c CONFIG] [--redis H:P] [--state DIR]",
     "compare what Redis serves with the checkpoint, row by row and the active dense blob; exit 0 only when they "
     "are equal",
     fr_cli_cmd_verify, 0},
    {"truth", "TRUTH.tsv [-c CONFIG]", "AUC and log loss of the generator's true probabilities", fr_cli_cmd_truth, 0},
};
enum { N_COMMANDS = sizeof COMMANDS / sizeof COMMANDS[0] };

static const fr_cli_command *find_command(const char *name)
{
    for (int i = 0; i < N_COMMANDS; i++)
        if (strcmp(COMMANDS[i].name, name) == 0) return &COMMANDS[i];
    return NULL;
}

const char *fr_cli_command_name(int i) { return i >= 0 && i < N_COMMANDS ? COMMANDS[i].name : NULL; }

static void usage(FILE *out)
{
    fputs("usage: freshet COMMAND [options]\n\n", out);
    for (int i = 0; i < N_COMMANDS; i++) {
        const fr_cli_command *c = &COMMANDS[i];
        fprintf(out, "  %s ", c->name);
        for (const char *s = c->synopsis; *s; s++) {
            fputc(*s, out);
            if (*s == '\n') fputs("      ", out);
        }
        /* the help wrapped at word boundaries to 110 columns */
        int col = 110;
        for (const char *w = c->help; *w;) {
            size_t n = strcspn(w, " ");
            if (col + 1 + (int)n > 110) fputs("\n     ", out), col = 5;
            fprintf(out, " %.*s", (int)n, w);
            col += 1 + (int)n;
            w += n + (w[n] == ' ');
        }
        fputc('\n', out);
    }
    fputs("\n"
          "freshetd -c CONFIG is `freshet run -c CONFIG`. SIGINT/SIGTERM: finish the message, checkpoint, exit 0.\n"
          "replay and run exit 3 when their work is checkpointed but could not be published (Redis unreachable, "
          "another\n"
          "daemon's lease on the prefix, a rollback's hold); 1 on other errors, 2 on bad usage or configuration.\n",
          out);
}

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

static int parse_args(int argc, char **argv, fr_cli_args *a)
{
    memset(a, 0, sizeof *a);
    a->limit = -1; /* not given: score all (pull: 10) */
    a->schema_id = -1;
    a->delay_short_share = a->delay_short_mean = a->delay_long_mean = a->obs_window = -1;
    for (int i = 0; i < argc; i++) {
        const char *f = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        double num;
#define FR_NEEDS_VALUE                                                        \
    if (!v) {                                                                 \
        fprintf(stderr, "freshet: %s needs a value\n", f);                   \
        usage(stderr);                                                        \
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
        else if (!strcmp(f, "--drain")) { a->drain = 1; }
        else if (!strcmp(f, "--samples-out")) { FR_NEEDS_VALUE a->samples_out = v; }
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
        else if (!strcmp(f, "--realistic")) { a->conditions = "realistic"; }
        else if (!strcmp(f, "--conditions")) { FR_NEEDS_VALUE a->conditions = v; }
        else if (!strcmp(f, "--format")) { FR_NEEDS_VALUE a->format = v; }
        else if (!strcmp(f, "--schema-id")) {
            FR_NEEDS_VALUE
            if (parse_number(f, v, &num)) return -1;
            if (!(num >= 0 && num <= 2147483647.0) || num != (double)(long long)num) {
                fprintf(stderr, "freshet: --schema-id expects a schema registry id in 0..2147483647, got \"%s\"\n", v);
                return -1;
            }
            a->schema_id = (long long)num;
        }
        else if (!strcmp(f, "--partitions")) { FR_NEEDS_VALUE if (parse_number(f, v, &num)) return -1; a->partitions = (long long)num; }
        else if (!strcmp(f, "--reorder-ms")) { FR_NEEDS_VALUE if (parse_number(f, v, &a->reorder_ms)) return -1; }
        else if (!strcmp(f, "--users")) { FR_NEEDS_VALUE if (parse_number(f, v, &num)) return -1; a->users = (long long)num; }
        else if (!strcmp(f, "--ads")) { FR_NEEDS_VALUE if (parse_number(f, v, &num)) return -1; a->ads = (long long)num; }
        else if (!strcmp(f, "--to")) { FR_NEEDS_VALUE a->to = v; } /* rollback: a version; replay --kafka: a time */
        else if (!strcmp(f, "--from")) { FR_NEEDS_VALUE a->from = v; }
        else if (!strcmp(f, "--kafka")) { a->kafka = 1; }
        else if (!strcmp(f, "--event-time")) { a->event_time = 1; }
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
            fprintf(stderr, "freshet: unknown option %s\n", f);
            usage(stderr);
            return -1;
        } else if (!a->positional) {
            a->positional = f;
        } else {
            fprintf(stderr, "freshet: unexpected argument %s\n", f);
            usage(stderr);
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
int fr_cli_load_config(const fr_cli_args *a, fr_config *c)
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
    c->log = fr_log_stderr();
    return 0;
}

static void stop_signal_set(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
}

void fr_cli_block_stop_signals(sigset_t *set)
{
    /* Blocked, not handled: the loops poll sigpending() between messages, so a stop always lands
     * on a message boundary and needs no global flag. Every thread must block them, library threads
     * started before main() included: main.c blocks them first thing (DT_PREINIT_ARRAY); this only
     * makes sure of it. */
    stop_signal_set(set);
    sigprocmask(SIG_BLOCK, set, NULL);
}

int fr_cli_stop_requested(const sigset_t *set)
{
    sigset_t pending;
    sigpending(&pending);
    return (sigismember(set, SIGINT) == 1 && sigismember(&pending, SIGINT) == 1) ||
           (sigismember(set, SIGTERM) == 1 && sigismember(&pending, SIGTERM) == 1);
}

double fr_cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- entry points ------------------------------------------------------------------------- */

int fr_cli_main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const fr_cli_command *cmd = find_command(argv[1]);
    if (!cmd) {
        fprintf(stderr, "freshet: unknown command \"%s\"\n", argv[1]);
        usage(stderr);
        return 2;
    }
    fr_cli_args a;
    if (parse_args(argc - 2, argv + 2, &a) != 0) return 2;
    if (!cmd->graceful_stop) {
        /* No graceful stop here: SIGINT and SIGTERM end these commands at once, as usual (main.c
         * blocked them in every thread; unblocked on this one, the default action applies). */
        sigset_t stop;
        stop_signal_set(&stop);
        sigprocmask(SIG_UNBLOCK, &stop, NULL);
    }
    return cmd->run(&a);
}

int fr_cli_daemon_main(int argc, char **argv)
{
    fr_cli_args a;
    if (parse_args(argc - 1, argv + 1, &a) != 0) return 2;
    if (!a.config) {
        fprintf(stderr, "usage: freshetd -c CONFIG [--state DIR] [--brokers H:P] [--redis H:P] [--no-publish]\n");
        return 2;
    }
    return fr_cli_cmd_run(&a);
}
