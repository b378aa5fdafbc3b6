/* fr_cli_sim: the synthetic world's commands -- `freshet gen` (an event stream and its truth) and
 * `freshet truth` (the Bayes scores of a truth file). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fr_cli_int.h"
#include "fr_gen.h"
#include "fr_metrics.h"

/* ---- gen ---------------------------------------------------------------------------------- */

int fr_cli_cmd_gen(const fr_cli_args *a)
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
    char err[512];
    if (a->conditions && fr_gen_conditions_parse(a->conditions, &o.conditions, err, sizeof err) != 0) {
        fprintf(stderr, "freshet gen: --conditions: %s\n", err);
        return 2;
    }
    if (a->partitions != 0) o.partitions = a->partitions < 1 || a->partitions > 256 ? -1 : (int)a->partitions;
    FILE *ev = fopen(a->out, "w");
    FILE *tr = a->truth ? fopen(a->truth, "w") : NULL;
    if (!ev || (a->truth && !tr)) {
        fprintf(stderr, "freshet gen: cannot write %s: %s\n", !ev ? a->out : a->truth, strerror(errno));
        if (ev) fclose(ev);
        if (tr) fclose(tr);
        return 1;
    }
    double t0 = fr_cli_now();
    int rc = fr_gen_run(&o, ev, tr, err, sizeof err);
    if (fclose(ev) != 0 && rc == 0) snprintf(err, sizeof err, "writing %s: %s", a->out, strerror(errno)), rc = -1;
    if (tr && fclose(tr) != 0 && rc == 0) snprintf(err, sizeof err, "writing %s: %s", a->truth, strerror(errno)), rc = -1;
    if (rc != 0) {
        fprintf(stderr, "freshet gen: %s\n", err);
        return 1;
    }
    fprintf(stderr, "freshet gen: %lld impressions in %.1f s -> %s\n", (long long)o.impressions, fr_cli_now() - t0,
            a->out);
    fr_gen_plan plan;
    if (o.conditions && fr_gen_plan_make(&o, &plan, err, sizeof err) == 0) {
        if (plan.gap_to > plan.gap_from)
            fprintf(stderr, "freshet gen: no event in [%" PRId64 ", %" PRId64 ")\n", plan.gap_from, plan.gap_to);
        for (int i = 0; i < plan.n_spans; i++)
            fprintf(stderr, "freshet gen: impressions x%g in [%" PRId64 ", %" PRId64 ")\n", plan.span[i].factor,
                    plan.span[i].from, plan.span[i].to);
        for (int i = 0; i < plan.n_lags; i++)
            fprintf(stderr, "freshet gen: partition %d of %d up to %.1f h late in [%" PRId64 ", %" PRId64 ")\n",
                    plan.lag[i].partition, o.partitions, (double)plan.lag[i].peak_ms / 3.6e6, plan.lag[i].from,
                    plan.lag[i].to);
        if (o.conditions & FR_GEN_SKEW)
            fprintf(stderr,
                    "freshet gen: partitions arrive out of step by up to %" PRId64 " ms: replay the file with "
                    "join.allowed_lateness of at least that, or load it into %d partitions\n",
                    plan.max_lag_ms, o.partitions);
    }
    return 0;
}

/* ---- truth -------------------------------------------------------------------------------- */

int fr_cli_cmd_truth(const fr_cli_args *a)
{
    fr_config c;
    if (fr_cli_load_config(a, &c) != 0) return 2;
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
