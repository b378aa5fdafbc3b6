/* fr_cli_int.h: what the files of the command line share (private to daemon/fr_cli*.c): the
 * parsed options, the helpers every command uses, and one entry point per command. Each command
 * returns the process's exit status: 0, 1 on errors, 2 on bad usage or configuration, 3 when
 * work is checkpointed but not published (replay, run). */
#ifndef FR_CLI_INT_H
#define FR_CLI_INT_H

#include <signal.h>

#include "fr_config.h"
#include "fr_pipeline.h"

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
    int drain;              /* replay --drain */
    const char *samples_out; /* replay --samples-out FILE */
    double exit_when_idle;
    long long impressions;
    long long seed;
    double days;
    double duplicates;
    double reorder_ms;
    long long limit;        /* --limit: impressions to score, >= 1; -1 when not given */
    long long users, ads;
    const char *to;         /* --to as given: rollback's version, replay --kafka's end time; NULL: not given */
    const char *from;       /* replay --kafka --from TIME */
    int kafka;              /* replay --kafka */
    int event_time;         /* load --event-time */
    int release;            /* rollback --release */
    double follow;          /* score --follow seconds */
    int have_impressions, have_seed, have_days;
    double delay_short_share, delay_short_mean, delay_long_mean, obs_window; /* gen; < 0 = default */
    const char *conditions; /* gen: a list for fr_gen_conditions_parse, or NULL */
    long long partitions;   /* gen; 0 = default */
    const char *format;     /* load --format: every topic's format instead of the configuration's */
    long long schema_id;    /* load --schema-id: Confluent framing; -1 = bare */
} fr_cli_args;

/* Config file first, then command-line overrides. 0, or -1 after saying why on stderr. */
int fr_cli_load_config(const fr_cli_args *a, fr_config *c);
/* SIGINT and SIGTERM blocked on this thread (set receives them), so a loop can poll for a stop
 * between messages with fr_cli_stop_requested. */
void fr_cli_block_stop_signals(sigset_t *set);
int fr_cli_stop_requested(const sigset_t *set);
/* Monotonic seconds. */
double fr_cli_now(void);

/* fr_cli_run.c: the learner (load, replay, run) */
int fr_cli_cmd_load(const fr_cli_args *a);
int fr_cli_cmd_replay(const fr_cli_args *a);
/* fr_cli_backfill.c: replay --kafka, a backfill from the topics (fr_backfill.h) */
int fr_cli_cmd_replay_kafka(const fr_cli_args *a);
/* After a run's last checkpoint: 0 when published (or not asked to); else says why on stderr and
 * returns 3 (the work is in the checkpoint, the next run publishes it). */
int fr_cli_finish_publishing(fr_pipeline *p, const char *cmd);
int fr_cli_cmd_run(const fr_cli_args *a);
/* fr_cli_state.c: the state of a checkpoint and of a Redis prefix (inspect, verify, rollback) */
int fr_cli_cmd_inspect(const fr_cli_args *a);
int fr_cli_cmd_verify(const fr_cli_args *a);
int fr_cli_cmd_rollback(const fr_cli_args *a);
/* fr_cli_report.c: a checkpoint as an HTML page (report) */
int fr_cli_cmd_report(const fr_cli_args *a);
/* fr_cli_serve.c: scoring with what Redis serves (pull, score) */
int fr_cli_cmd_pull(const fr_cli_args *a);
int fr_cli_cmd_score(const fr_cli_args *a);
/* fr_cli_sim.c: the synthetic world (gen, truth) */
int fr_cli_cmd_gen(const fr_cli_args *a);
int fr_cli_cmd_truth(const fr_cli_args *a);

#endif
