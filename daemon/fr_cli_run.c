/* fr_cli_run: the commands that learn -- `freshet load` (a file into the Kafka topics),
 * `freshet replay` (a file, no broker) and `freshet run` / `freshetd` (the daemon). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fr_cli_int.h"
#include "fr_sampleout.h"
#include "fr_input.h"
#include "fr_progress.h"
#include "fr_fileid.h"
#include "fr_http.h"
#include "fr_kafka.h"
#include "fr_oracle.h"
#include "fr_pipeline.h"
#include "fr_policy.h"

/* ---- load --------------------------------------------------------------------------------- */

int fr_cli_cmd_load(const fr_cli_args *a)
{
    fr_config c;
    if (fr_cli_load_config(a, &c) != 0) return 2;
    if (!a->positional) {
        fprintf(stderr, "freshet load: which file?\n");
        return 2;
    }
    char err[512];
    FILE *in = strcmp(a->positional, "-") == 0 ? stdin : fr_input_open(a->positional, NULL, err, sizeof err);
    if (!in) {
        fprintf(stderr, "freshet load: %s\n", err);
        return 1;
    }
    if (a->format) {
        fr_event_format f;
        if (fr_event_format_parse(a->format, &f) != 0) {
            fprintf(stderr, "freshet load: --format is \"%s\"; use json or protobuf\n", a->format);
            return 2;
        }
        for (int t = 0; t < 3; t++) c.topic_format[t] = f;
    }
    c.load_schema_id = a->schema_id;
    c.load_event_time = a->event_time;
    fr_kafka_load_stats st;
    double t0 = fr_cli_now();
    int rc = fr_kafka_load(&c, in, &st, err, sizeof err);
    if (in != stdin) fclose(in);
    double dt = fr_cli_now() - t0;
    fprintf(stderr,
            "freshet load: %" PRIu64 " lines, %" PRIu64 " acknowledged, %" PRIu64 " unparsable (sent unkeyed), %.1f s, %.0f msg/s\n",
            st.lines, st.produced, st.unparsable, dt, dt > 0 ? (double)st.produced / dt : 0);
    if (st.unconvertible)
        fprintf(stderr, "freshet load: %" PRIu64 " lines not sent: Protobuf cannot express them\n", st.unconvertible);
    if (rc != 0) {
        fprintf(stderr, "freshet load: %s\n", err);
        return 1;
    }
    return 0;
}

/* ---- replay ------------------------------------------------------------------------------- */

/* A run asked to publish must say so when it could not, and exit non-zero (3: the work is in the
 * checkpoint, the next run publishes it). Also replay --kafka's (fr_cli_backfill.c). */
int fr_cli_finish_publishing(fr_pipeline *p, const char *cmd)
{
    char msg[640];
    int rc = fr_pipeline_finish_publishing(p, 5.0, msg, sizeof msg);
    if (rc == 0) return 0;
    fprintf(stderr, "freshet %s: checkpointed, but %s: %s\n", cmd,
            rc == FR_PIPELINE_PUBLISH_HELD ? "publishing is held by a rollback" : "NOT published", msg);
    return 3;
}

int fr_cli_cmd_replay(const fr_cli_args *a)
{
    if ((a->kafka || a->from || a->to) && a->samples_out) {
        fprintf(stderr, "freshet replay: --samples-out records a file's replay only; leave it out with --kafka\n");
        return 2;
    }
    if (a->kafka || a->from || a->to) return fr_cli_cmd_replay_kafka(a);
    fr_config c;
    if (fr_cli_load_config(a, &c) != 0) return 2;
    if (!a->positional) {
        fprintf(stderr, "freshet replay: which file?\n");
        return 2;
    }
    sigset_t stop;
    fr_cli_block_stop_signals(&stop);
    char err[512];
    fr_input_kind kind;
    FILE *in = fr_input_open(a->positional, &kind, err, sizeof err);
    if (!in) {
        fprintf(stderr, "freshet replay: %s\n", err);
        return 1;
    }
    fr_oracle *oracle = NULL;
    if (fr_policy_get(c.join_policy)->oracle) {
        oracle = fr_oracle_scan(&c.schema, in, a->positional, err, sizeof err);
        if (oracle && fseeko(in, 0, SEEK_SET) != 0) {
            snprintf(err, sizeof err, "cannot read %s again after the oracle's lookahead", a->positional);
            fr_oracle_free(oracle);
            oracle = NULL;
        }
        if (!oracle) {
            fprintf(stderr, "freshet replay: %s\n", err);
            fclose(in);
            return 1;
        }
        c.oracle = fr_oracle_lookup;
        c.oracle_ctx = oracle;
        fprintf(stderr, "freshet replay: oracle policy: %zu conversions looked ahead\n", fr_oracle_count(oracle));
    }
    fr_pipeline *p = fr_pipeline_open(&c, err, sizeof err);
    fr_sampleout *samples_out = NULL;
    if (p && a->samples_out) {
        samples_out = fr_sampleout_open(a->samples_out, c.schema.n_cat, c.schema.n_num, c.schema.n_multi, err, sizeof err);
        if (samples_out && fr_pipeline_set_samples_out(p, samples_out) != 0) {
            char ignored[64];
            fr_sampleout_close(samples_out, ignored, sizeof ignored);
            samples_out = NULL;
            snprintf(err, sizeof err, "out of memory for --samples-out");
        }
        if (!samples_out) {
            fr_pipeline_close(p);
            p = NULL;
        }
    }
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
        fr_sampleout_close(samples_out, err, sizeof err);
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
    int rc = 0, stopped = 0, read_failed = 0;
    uint64_t lines = 0;
    double last_status = fr_cli_now();
    fr_progress progress;
    /* a compressed file's size and last line are not known without reading it all */
    fr_progress_start(&progress, stderr, 0, kind == FR_INPUT_PLAIN ? in : NULL, a->positional, offset > 0 ? offset : 0,
                      last_status);
    int64_t next = offset > 0 ? offset : 0;
    while ((n = getline(&line, &cap, in)) > 0) {
        next = (int64_t)ftello(in);
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
            if (fr_cli_stop_requested(&stop)) {
                fprintf(stderr, "freshet replay: stop requested: checkpointing and exiting\n");
                stopped = 1;
                break;
            }
            double now = fr_cli_now();
            if (c.status_every_seconds > 0 && now - last_status >= c.status_every_seconds) {
                fr_progress_break(&progress);
                fr_pipeline_status_line(p, stderr, NULL);
                last_status = now;
            }
            fr_progress_update(&progress, next, lines, fr_pipeline_watermark(p), now, 0);
        }
    }
    fr_progress_update(&progress, next, lines, fr_pipeline_watermark(p), fr_cli_now(), 1);
    fr_progress_break(&progress);
    if (rc == 0 && !stopped && ferror(in)) {
        /* a read error or a corrupt compressed file is not the end of the input: keep what was read
         * (checkpointed below) and say where it stopped */
        fprintf(stderr, "freshet replay: cannot read %s (%s) after byte %" PRId64 ": %s; what came before is checkpointed\n",
                a->positional, fr_input_kind_name(kind), next, strerror(errno));
        stopped = read_failed = 1;
    }
    free(line);
    fclose(in);
    if (rc == 0) {
        if (!stopped) {
            fr_pipeline_source_idle(p, source, 1);
            fr_pipeline_tick(p);
        }
        if (!stopped && a->drain && fr_pipeline_drain(p, err, sizeof err) != 0) {
            fprintf(stderr, "freshet replay: --drain: %s\n", err);
            rc = 1;
        } else if (fr_pipeline_checkpoint(p, err, sizeof err) != 0) {
            fprintf(stderr, "freshet replay: %s\n", err);
            rc = 1;
        } else {
            fr_pipeline_report(p, stdout);
            fr_pipeline_row_report(p, stderr);
            rc = fr_cli_finish_publishing(p, "replay");
            if (read_failed) rc = 1;
        }
    }
    fr_pipeline_close(p);
    if (fr_sampleout_close(samples_out, err, sizeof err) != 0) {
        fprintf(stderr, "freshet replay: %s\n", err);
        rc = 1;
    }
    fr_oracle_free(oracle);
    return rc;
}

/* ---- run ---------------------------------------------------------------------------------- */

int fr_cli_cmd_run(const fr_cli_args *a)
{
    fr_config c;
    if (fr_cli_load_config(a, &c) != 0) return 2;
    sigset_t stop;
    fr_cli_block_stop_signals(&stop);
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
        exit_code = fr_cli_finish_publishing(p, "run");
    }
    fr_pipeline_close(p);
    return exit_code;
}
