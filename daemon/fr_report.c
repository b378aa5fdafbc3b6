/* fr_report: what the pipeline tells an operator -- the status line, the end-of-run reports and
 * the Prometheus text of /metrics (fr_pipeline.h). Reads the pipeline's state only. */
#include <inttypes.h>
#include <stdio.h>

#include "fr_pipeline_int.h"

void fr_pipeline_status_line(fr_pipeline *p, FILE *out, const char *extra)
{
    double now = wall_seconds(), dt = now - p->last_status_wall;
    if (dt <= 0) dt = 1e-9;
    double ev_rate = (double)(p->counters.consumed - p->last_status_consumed) / dt;
    double sm_rate = (double)(p->counters.samples_trained - p->last_status_samples) / dt;
    p->last_status_wall = now;
    p->last_status_consumed = p->counters.consumed;
    p->last_status_samples = p->counters.samples_trained;
    uint64_t rejected = 0;
    for (int r = 0; r < FR_REJECT_NREASONS; r++) rejected += p->counters.rejected[r];
    fprintf(out, "status: consumed=%" PRIu64 " rejected=%" PRIu64 " pending=%" PRIu64 " samples=%" PRIu64
                 " events/s=%.0f samples/s=%.0f watermark=%" PRId64,
            p->counters.consumed, rejected, fr_pipeline_pending(p), p->counters.samples_trained, ev_rate, sm_rate,
            fr_pipeline_watermark(p));
    for (int t = 0; t < FR_NTASKS; t++) fprintf(out, " auc_%s=%.4f", task_name(t), fr_metric_auc(metric_at(p, t, -1)));
    fr_row_stats rs;
    fr_model_row_stats(p->model, &rs);
    fprintf(out, " rows=%" PRIu64 " B/row=%.1f evicted=%" PRIu64, rs.rows,
            rs.rows ? (double)rs.row_bytes / (double)rs.rows : 0.0, rs.evicted);
    if (p->cfg.max_cached_entries > 0)
        fprintf(out, " join_cached=%zu/%zu early_ckpts=%" PRIu64, fr_pipeline_join_cached(p),
                fr_pipeline_join_entries(p), p->early_checkpoints);
    if (fr_guard_paused(&p->guard))
        fprintf(out, " guard=paused(%s since ts %" PRId64 ")", fr_guard_reason_name((fr_guard_reason)p->guard.reason),
                p->guard.paused_since);
    if (p->heads) {
        const uint64_t hn = fr_dfm_heads_trained(p->heads);
        fprintf(out, " heads=%s(%" PRIu64 " matured)", hn < FR_DFM_HEADS_WARM_SAMPLES ? "cold" : "warm", hn);
    }
    if (p->pub) {
        fr_pubq_stats ps;
        fr_pubq_get_stats(p->pub, &ps);
        /* the operator's rollback, until `freshet rollback --release` */
        if (ps.held) fprintf(out, " publish=held@%" PRIu64, ps.held_version);
    }
    uint64_t held = fr_pipeline_held(p);
    if (held) fprintf(out, " held=%" PRIu64, held);
    if (extra && extra[0]) fprintf(out, " %s", extra);
    fputc('\n', out);
    fflush(out);
}

/* A Prometheus label value: backslash, double quote and newline escaped. */
static void label_value(FILE *out, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"') fputc('\\', out), fputc(*s, out);
        else if (*s == '\n') fputs("\\n", out);
        else fputc(*s, out);
    }
}

static void metric_head(FILE *out, const char *name, const char *type, const char *help)
{
    fprintf(out, "# HELP freshet_%s %s\n# TYPE freshet_%s %s\n", name, help, name, type);
}

/* A family of one unlabelled sample. %.17g: integers up to 2^53 print exactly, as Prometheus reads them. */
static void metric_one(FILE *out, const char *name, const char *type, const char *help, double value)
{
    metric_head(out, name, type, help);
    fprintf(out, "freshet_%s %.17g\n", name, value);
}

void fr_pipeline_write_metrics(const fr_pipeline *p, FILE *out)
{
    const fr_pipeline_counters *c = &p->counters;
    metric_one(out, "messages_consumed_total", "counter", "Input messages handed to the pipeline, accepted or not.",
               (double)c->consumed);
    metric_head(out, "messages_rejected_total", "counter", "Input messages rejected by the decoder or the event-time check, by reason.");
    for (int r = 1; r < FR_REJECT_NREASONS; r++)
        fprintf(out, "freshet_messages_rejected_total{reason=\"%s\"} %" PRIu64 "\n",
                fr_event_reject_name((fr_reject_reason)r), c->rejected[r]);

    metric_one(out, "event_time_held_messages", "gauge",
               "Messages held because they are far ahead of their partition's event time (join.max_ahead).",
               (double)fr_pipeline_held(p));
    metric_one(out, "event_time_released_total", "counter",
               "Held messages released because later events of their partition confirmed their time.",
               (double)fr_pipeline_released(p));

    const fr_join_counters *j = fr_pipeline_join_counters(p);
    metric_head(out, "join_events_total", "counter", "Accepted events by type and where they are: joined or dropped.");
    for (int t = 0; t < FR_EV_NTYPES; t++) {
        const char *type = fr_event_type_name((fr_event_type)t);
        fprintf(out, "freshet_join_events_total{type=\"%s\",state=\"joined\"} %" PRIu64 "\n", type, j->joined[t]);
        for (int r = 0; r < FR_DROP_NREASONS; r++)
            fprintf(out, "freshet_join_events_total{type=\"%s\",state=\"dropped\",reason=\"%s\"} %" PRIu64 "\n", type,
                    fr_join_drop_name((fr_drop_reason)r), j->dropped[t][r]);
    }
    metric_head(out, "join_pending_events", "gauge", "Accepted events the join still holds, by type.");
    for (int t = 0; t < FR_EV_NTYPES; t++)
        fprintf(out, "freshet_join_pending_events{type=\"%s\"} %" PRIu64 "\n", fr_event_type_name((fr_event_type)t),
                j->pending[t]);
    metric_one(out, "join_cached_entries", "gauge",
               "Join entries whose bodies are in memory (join.max_cached_entries).",
               (double)fr_pipeline_join_cached(p));
    metric_head(out, "samples_emitted_total", "counter", "Samples the join emitted, by kind.");
    for (int k = 0; k < FR_SAMPLE_NKINDS; k++)
        fprintf(out, "freshet_samples_emitted_total{kind=\"%s\"} %" PRIu64 "\n", fr_sample_kind_name(k), j->emitted[k]);
    metric_one(out, "samples_trained_total", "counter", "Samples trained on.", (double)c->samples_trained);
    if (p->heads) {
        const uint64_t hn = fr_dfm_heads_trained(p->heads);
        metric_one(out, "dfm_heads_trained_samples_total", "counter",
                   "Matured samples the helper heads f_dp and f_rn learned from (checkpointed).", (double)hn);
        metric_one(out, "dfm_heads_cold", "gauge",
                   "1 while the helper heads have learned from fewer than 1000 matured samples: the copies' weights "
                   "are still near Vanilla's.",
                   hn < FR_DFM_HEADS_WARM_SAMPLES ? 1.0 : 0.0);
    }
    int64_t wm = fr_pipeline_watermark(p);
    metric_one(out, "watermark_timestamp_seconds", "gauge", "Event-time watermark (Unix seconds): how far the join has got.",
               wm == INT64_MIN ? 0.0 : (double)wm / 1000.0);

    metric_head(out, "progressive_auc", "gauge",
                "Progressive-validation AUC over the whole stream so far (checkpointed), by task and scenario.");
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1)
            metric_head(out, "progressive_logloss", "gauge", "Progressive-validation log loss, by task and scenario.");
        for (int t = 0; t < FR_NTASKS; t++)
            for (int s = -1; s < p->cfg.schema.n_scenarios; s++) {
                const fr_metric *m = metric_at(p, t, s);
                fprintf(out, "freshet_progressive_%s{task=\"%s\",scenario=\"", pass ? "logloss" : "auc", task_name(t));
                label_value(out, s < 0 ? "all" : p->cfg.schema.scenarios[s]);
                fprintf(out, "\"} %.6f\n", pass ? fr_metric_logloss(m) : fr_metric_auc(m));
            }
    }

    fr_row_stats rs;
    fr_model_row_stats(p->model, &rs);
    metric_one(out, "model_version", "gauge", "Trained mini-batches (the version a push publishes).",
               (double)fr_model_version(p->model));
    metric_one(out, "embedding_rows", "gauge", "Embedding rows held.", (double)rs.rows);
    metric_one(out, "embedding_memory_bytes", "gauge", "Memory held for embedding rows (arena, index, dirty lists).",
               (double)rs.row_bytes);
    metric_head(out, "embedding_row_events_total", "counter",
                "Keys given a row, refused by admission, or evicted, by this process.");
    fprintf(out, "freshet_embedding_row_events_total{event=\"admitted\"} %" PRIu64 "\n", rs.admitted);
    fprintf(out, "freshet_embedding_row_events_total{event=\"not_admitted\"} %" PRIu64 "\n", rs.not_admitted);
    fprintf(out, "freshet_embedding_row_events_total{event=\"evicted\"} %" PRIu64 "\n", rs.evicted);

    metric_one(out, "checkpoints_total", "counter", "Checkpoints written by this process.", (double)p->checkpoints);
    metric_one(out, "checkpoint_duration_seconds", "gauge", "Wall time the last checkpoint took.",
               (double)p->last_ckpt_seconds);
    metric_one(out, "checkpoint_age_seconds", "gauge", "Wall time since the last checkpoint (or the start).",
               (double)(wall_seconds() - p->last_ckpt_wall));

    metric_head(out, "guard_paused", "gauge", "1 while the label-collapse guard holds training and publishing.");
    fprintf(out, "freshet_guard_paused{reason=\"%s\"} %d\n", fr_guard_reason_name((fr_guard_reason)p->guard.reason),
            fr_guard_paused(&p->guard));
    metric_one(out, "guard_trips_total", "counter", "Times the guard paused training (checkpointed).",
               (double)p->guard.trips);

    if (p->pub) {
        fr_pubq_stats ps;
        fr_pubq_get_stats(p->pub, &ps);
        metric_one(out, "publish_pushes_total", "counter", "Successful pushes to Redis.", (double)ps.pushes);
        metric_one(out, "publish_failures_total", "counter", "Failed pushes (retried about once a second).",
                   (double)ps.failures);
        metric_one(out, "publish_unchanged_total", "counter",
                   "Pushes that found their state already published (nothing new): nothing was published.",
                   (double)ps.unchanged);
        metric_one(out, "publish_version", "gauge", "Version of the last push that published one (0: none yet).",
                   (double)ps.last_version);
        metric_one(out, "publish_held", "gauge",
                   "1 while an operator's rollback holds publishing (freshet rollback --release lifts it).",
                   (double)ps.held);
        metric_one(out, "publish_held_version", "gauge", "The version the rollback holds active (0: none).",
                   (double)ps.held_version);
        metric_one(out, "publish_pending_rows", "gauge", "Changed rows waiting for a push.", (double)ps.pending_rows);
        metric_one(out, "publish_withheld_total", "counter", "Checkpoints not published because the guard was paused.",
                   (double)p->publishes_withheld);
    }
}

void fr_pipeline_row_report(const fr_pipeline *p, FILE *out)
{
    fr_row_stats rs;
    fr_model_row_stats(p->model, &rs);
    double per = rs.rows ? (double)rs.row_bytes / (double)rs.rows : 0, raw = rs.rows ? (double)rs.raw_bytes / (double)rs.rows : 0;
    fprintf(out,
            "rows: held=%" PRIu64 " memory=%" PRIu64 " B (%.1f B/row; raw payload %.0f B/row, %.2fx) admission_filters=%" PRIu64
            " B admission_load=%.3f admitted=%" PRIu64 " not_admitted=%" PRIu64 " evicted=%" PRIu64 "\n",
            rs.rows, rs.row_bytes, per, raw, raw > 0 ? per / raw : 0.0, rs.admit_bytes, rs.admit_load, rs.admitted,
            rs.not_admitted, rs.evicted);
}

void fr_pipeline_report(const fr_pipeline *p, FILE *out)
{
    const fr_join_counters *j = fr_pipeline_join_counters(p);
    uint64_t rejected = 0;
    for (int r = 0; r < FR_REJECT_NREASONS; r++) rejected += p->counters.rejected[r];
    const uint64_t held = fr_pipeline_held(p);
    fprintf(out, "accounting: consumed=%" PRIu64 " rejected=%" PRIu64 " held=%" PRIu64 " accepted=%" PRIu64 "\n",
            p->counters.consumed, rejected, held, p->counters.consumed - rejected - held);
    for (int r = 1; r < FR_REJECT_NREASONS; r++)
        if (p->counters.rejected[r])
            fprintf(out, "  rejected.%s=%" PRIu64 "\n", fr_event_reject_name((fr_reject_reason)r), p->counters.rejected[r]);
    for (int t = 0; t < FR_EV_NTYPES; t++) {
        fprintf(out, "  %-10s events=%" PRIu64 " joined=%" PRIu64 " pending=%" PRIu64, fr_event_type_name((fr_event_type)t),
                j->events[t], j->joined[t], j->pending[t]);
        for (int r = 0; r < FR_DROP_NREASONS; r++)
            if (j->dropped[t][r]) fprintf(out, " dropped.%s=%" PRIu64, fr_join_drop_name((fr_drop_reason)r), j->dropped[t][r]);
        fputc('\n', out);
    }
    fprintf(out, "samples: trained=%" PRIu64 " buffered=%" PRIu64 " click_window=%" PRIu64 " attribution=%" PRIu64,
            p->counters.samples_trained, p->counters.samples_buffered, j->emitted[FR_SAMPLE_CLICK_WINDOW],
            j->emitted[FR_SAMPLE_ATTRIBUTION]);
    for (int k = FR_SAMPLE_FAKE_NEG; k < FR_SAMPLE_NKINDS; k++)
        if (j->emitted[k]) fprintf(out, " %s=%" PRIu64, fr_sample_kind_name(k), j->emitted[k]);
    fprintf(out, " (policy %s)\n", fr_policy_name((fr_policy_id)p->cfg.join_policy));
    /* Only what the input decides: the report of a run restarted N times equals the unbroken one's
     * (what is in memory and the early checkpoints are in the status line). */
    const fr_guard *g = &p->guard;
    fprintf(out, "guard: %s", !p->cfg.guard.enabled ? "disabled" : fr_guard_paused(g) ? "PAUSED" : "running");
    if (fr_guard_paused(g))
        fprintf(out, " (%s rate collapsed at event time %" PRId64 "; training and publishing stopped)",
                fr_guard_reason_name((fr_guard_reason)g->reason), g->paused_since);
    fprintf(out, " trips=%" PRIu64 " resumes=%" PRIu64, g->trips, g->resumes);
    for (int k = 0; k < FR_SAMPLE_NKINDS; k++)
        if (g->held[k]) fprintf(out, " dropped.%s=%" PRIu64, fr_sample_kind_name(k), g->held[k]);
    double rs, rl;
    fr_guard_rates(&g->ctr, &rs, &rl);
    fprintf(out, " ctr_short=%.4g ctr_long=%.4g", rs, rl);
    fr_guard_rates(&g->cvr, &rs, &rl);
    fprintf(out, " cvr_short=%.4g cvr_long=%.4g\n", rs, rl);
    fprintf(out, "progressive validation (each sample scored before it trains):\n");
    fprintf(out, "  %-6s %-12s %10s %8s %8s %8s\n", "task", "scenario", "samples", "auc", "logloss", "calib");
    for (int t = 0; t < FR_NTASKS; t++) {
        for (int s = -1; s < p->cfg.schema.n_scenarios; s++) {
            const fr_metric *m = metric_at(p, t, s);
            if (m->count == 0) continue;
            fprintf(out, "  %-6s %-12s %10" PRIu64 " %8.4f %8.4f %8.3f\n", task_name(t), s < 0 ? "all" : p->cfg.schema.scenarios[s],
                    m->count, fr_metric_auc(m), fr_metric_logloss(m), fr_metric_calibration(m));
        }
    }
    /* What the metrics cover: a sample is scored once its label is final, so impressions inside their
     * click window and clicks inside their attribution window are not in them yet (replay --drain
     * closes those windows at the end of input). */
    const uint64_t matured = j->emitted[FR_SAMPLE_ATTRIBUTION] + j->emitted[FR_SAMPLE_MATURED];
    const uint64_t open_attr = j->joined[FR_EV_CLICK] > matured ? j->joined[FR_EV_CLICK] - matured : 0;
    fprintf(out,
            "coverage: ctr scored %" PRIu64 " impressions, %" PRIu64 " pending (click window open); cvr scored %" PRIu64
            " clicks, %" PRIu64 " pending (%" PRIu64 " in their click window, %" PRIu64
            " in their attribution window); ctcvr scored %" PRIu64 " impressions, %" PRIu64
            " pending; %" PRIu64 " samples not trained yet (the next mini-batch)\n",
            metric_at(p, FR_TASK_CTR, -1)->count, j->pending[FR_EV_IMPRESSION], metric_at(p, FR_TASK_CVR, -1)->count,
            j->pending[FR_EV_CLICK] + open_attr, j->pending[FR_EV_CLICK], open_attr,
            metric_at(p, FR_TASK_CTCVR, -1)->count, j->pending[FR_EV_IMPRESSION] + open_attr,
            p->counters.samples_buffered);
}
