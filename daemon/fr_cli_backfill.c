/* fr_cli_backfill: `freshet replay --kafka --from TIME [--to TIME]`, a backfill from the topics'
 * retention (daemon/fr_backfill.h), finished like a file replay: the same report, --drain, the
 * checkpoint, publishing. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "fr_backfill.h"
#include "fr_cli_int.h"
#include "fr_pipeline.h"

int fr_cli_cmd_replay_kafka(const fr_cli_args *a)
{
    if (!a->kafka) {
        fprintf(stderr, "freshet replay: --from and --to select a backfill from Kafka: add --kafka (a file is replayed "
                        "whole, resuming where it stopped)\n");
        return 2;
    }
    if (a->positional) {
        fprintf(stderr, "freshet replay: --kafka reads the configured topics, not %s: give a FILE or --kafka\n",
                a->positional);
        return 2;
    }
    if (!a->from) {
        fprintf(stderr, "freshet replay: --kafka needs --from TIME (--from 0: everything the topics retain)\n");
        return 2;
    }
    char err[512];
    int64_t from = 0, to = -1;
    if (fr_backfill_parse_time("--from", a->from, &from, err, sizeof err) != 0 ||
        (a->to && fr_backfill_parse_time("--to", a->to, &to, err, sizeof err) != 0)) {
        fprintf(stderr, "freshet replay: %s\n", err);
        return 2;
    }
    if (a->to && from >= to) {
        fprintf(stderr, "freshet replay: --from %s is not before --to %s: the range [from, to) is empty\n", a->from,
                a->to);
        return 2;
    }
    fr_config c;
    if (fr_cli_load_config(a, &c) != 0) return 2;
    sigset_t stop;
    fr_cli_block_stop_signals(&stop);
    fr_backfill_plan plan;
    if (fr_backfill_plan_make(&c, from, to, &plan, err, sizeof err) != 0) {
        fprintf(stderr, "freshet replay: %s\n", err);
        return 1;
    }
    fr_pipeline *p = fr_pipeline_open(&c, err, sizeof err);
    if (!p) {
        fprintf(stderr, "freshet replay: %s\n", err);
        fr_backfill_plan_free(&plan);
        return 1;
    }
    fprintf(stderr,
            "freshet replay: backfill from %s, %s, %s (brokers %s) of the messages whose Kafka timestamp is in [%s, %s); "
            "events are joined by their own ts\n",
            c.topic[0], c.topic[1], c.topic[2], c.brokers, a->from, a->to ? a->to : "the end now");
    fr_backfill_opts o = {.stop_signals = &stop, .log = stderr};
    fr_backfill_stats st;
    int rc = fr_backfill_run(p, &c, &plan, &o, &st, err, sizeof err);
    fr_backfill_plan_free(&plan);
    if (rc < 0) {
        fprintf(stderr, "freshet replay: stopping: %s\n", err);
        fr_pipeline_close(p);
        return 1;
    }
    if (rc == FR_BACKFILL_UNREADABLE) fprintf(stderr, "freshet replay: %s; what came before is checkpointed\n", err);
    fprintf(stderr, "freshet replay: kafka backfill %s: read=%" PRIu64 " of %" PRIu64 " offsets in range\n",
            rc == 0 ? "done" : "stopped", st.read, st.to_read);
    int exit_code = 0;
    if (rc == 0 && a->drain && fr_pipeline_drain(p, err, sizeof err) != 0) {
        fprintf(stderr, "freshet replay: --drain: %s\n", err);
        exit_code = 1;
    } else if (fr_pipeline_checkpoint(p, err, sizeof err) != 0) {
        fprintf(stderr, "freshet replay: %s\n", err);
        exit_code = 1;
    } else {
        fr_pipeline_report(p, stdout);
        fr_pipeline_row_report(p, stderr);
        exit_code = fr_cli_finish_publishing(p, "replay");
        if (rc == FR_BACKFILL_UNREADABLE) exit_code = 1;
    }
    fr_pipeline_close(p);
    return exit_code;
}
