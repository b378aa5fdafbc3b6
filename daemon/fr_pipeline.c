/* glibc declares realpath (the publisher's writer id) only with X/Open */
#define _XOPEN_SOURCE 700
#include "fr_pipeline_int.h"

#include <inttypes.h>
#include <limits.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fr_hash.h"
#include "fr_manifest.h"

/* Names of fr_field_kind and fr_num_transform in the manifest. */
static const char *const FIELD_KINDS[] = {"categorical", "numeric", "multi"};
static const char *const TRANSFORMS[] = {"identity", "log1p"};

/* ---- learning ------------------------------------------------------------------------------ */

/* The delayed-feedback copies carry labels that are not final: metrics never count them. */
static int kind_is_copy(int kind) { return kind >= FR_SAMPLE_FAKE_NEG && kind <= FR_SAMPLE_ORACLE; }

/* used (may be NULL) receives the score each labelled task was judged by, 0 for the others. */
static void add_metrics(fr_pipeline *p, const fr_sample *s, const float pred_now[FR_NTASKS], double used[FR_NTASKS])
{
    double pred[FR_NTASKS];
    /* A CVR or CTCVR label that arrives after other samples of the same impression trained the
     * model is judged by the prediction made before them (see fr_sample.prior), in every policy,
     * so the methods are compared on the same footing: scored before anything of the click trains. */
    fr_serve_apply(p->policy->serve, s->has_prior ? s->prior : pred_now, pred);
    double now[FR_NTASKS];
    fr_serve_apply(p->policy->serve, pred_now, now);
    /* NULL only when out of memory: the sample then misses from the history alone */
    fr_metric *bucket = fr_history_advance(p->history, s->ts, p->metrics);
    for (int t = 0; t < FR_NTASKS; t++) {
        if (used) used[t] = 0;
        if (!s->has_label[t]) continue;
        /* Metrics weigh by the importance weight, so upstream sampling does not skew them. */
        double w = s->weight[t] > 0 ? s->weight[t] : 1.0;
        double x = s->has_prior && t != FR_TASK_CTR ? pred[t] : now[t];
        if (used) used[t] = x;
        fr_metric *to[4] = {metric_at(p, t, s->scenario), metric_at(p, t, -1),
                            bucket ? &bucket[metric_index(p, t, s->scenario)] : NULL,
                            bucket ? &bucket[metric_index(p, t, -1)] : NULL};
        fr_metric_add_n(to, bucket ? 4 : 2, x, s->label[t], w);
    }
}

/* The first sample of an impression that will have later labels (a click's): the learner keeps
 * what it predicts now as the impression's prior. */
static int takes_prior(const fr_sample *s)
{
    return !s->has_prior &&
           (kind_is_copy(s->kind) || (s->kind == FR_SAMPLE_CLICK_WINDOW && s->label[FR_TASK_CTR] > 0));
}

static void train_batch(fr_pipeline *p)
{
    if (p->batch_n == 0) return;
    fr_model_train(p->model, p->batch, p->batch_n, p->preds);
    for (int i = 0; i < p->batch_n; i++) {
        const fr_sample *s = &p->batch[i];
        double used[FR_NTASKS] = {0};
        if (!kind_is_copy(s->kind)) add_metrics(p, s, p->preds[i], used);
        if (p->samples_out) {
            int flags = (kind_is_copy(s->kind) ? 0 : FR_SAMPLEOUT_SCORED) | (s->has_prior ? FR_SAMPLEOUT_USES_PRIOR : 0) |
                        (takes_prior(s) ? FR_SAMPLEOUT_TAKES_PRIOR : 0);
            fr_sampleout_write(p->samples_out, FR_SAMPLEOUT_TRAIN, flags, p->batches_trained, p->batch_key[i], used, s);
        }
    }
    p->batches_trained++;
    p->counters.samples_trained += (uint64_t)p->batch_n;
    p->batch_n = 0;
    p->counters.samples_buffered = 0;
}

static void fail_with(fr_pipeline *p, const char *why)
{
    if (p->failed) return;
    p->failed = 1;
    snprintf(p->failure, sizeof p->failure, "%s; stopping before anything is lost (the last checkpoint is intact)", why);
}

static void learn_sample(fr_pipeline *p, const fr_sample *s, const fr_groups_origin *o)
{
    float now[FR_NTASKS];
    if (p->cfg.guard.enabled) {
        char msg[512];
        if (fr_guard_observe(&p->guard, &p->cfg.guard, s, msg, sizeof msg) != FR_GUARD_NO_CHANGE)
            fr_logf(&p->cfg.log, FR_LOG_WARN, "%s", msg);
        if (fr_guard_paused(&p->guard)) {
            /* Dropped, counted: labels joined while a stream is stalled are wrong (a CTR sample
             * emitted while clicks do not arrive says "not clicked"), and the join has already
             * finished with them, so holding them would only delay the damage. */
            fr_guard_hold(&p->guard, s);
            return;
        }
    }
    if (s->kind == FR_SAMPLE_MATURED) {
        /* Final labels of a clicked impression (non-wait policies): scored with the prior, then
         * the helper heads learn from them. Never trains the model, never enters a batch. */
        if (!s->has_prior) fr_model_predict(p->model, &s->f, s->scenario, now);
        double used[FR_NTASKS];
        add_metrics(p, s, s->has_prior ? s->prior : now, used);
        if (p->samples_out)
            fr_sampleout_write(p->samples_out, FR_SAMPLEOUT_SCORE,
                               FR_SAMPLEOUT_SCORED | (s->has_prior ? FR_SAMPLEOUT_USES_PRIOR : 0), p->batches_trained,
                               fr_hash_value(0, o->id, o->id_len), used, s);
        if (p->heads) fr_dfm_heads_train(p->heads, s);
        return;
    }
    const int copy = kind_is_copy(s->kind);
    if (takes_prior(s)) {
        /* The model has not yet trained on anything of this impression; its later CVR and CTCVR
         * labels must be scored with what it predicts now. Parameters change only at batch
         * boundaries, so this is the prediction the batch itself would record. */
        fr_model_predict(p->model, &s->f, s->scenario, now);
        if (fr_priors_set(p->priors, o->id, o->id_len, now) != 0) fail_with(p, "out of memory keeping a prior");
    } else if (copy) {
        fr_model_predict(p->model, &s->f, s->scenario, now);
    }
    p->batch[p->batch_n] = *s;
    if (p->batch_key) p->batch_key[p->batch_n] = fr_hash_value(0, o->id, o->id_len);
    if (copy) {
        /* Weights from stop-gradient values taken now, before the batch that holds the copy trains;
         * they are stored with the batch, so a restart never recomputes them. */
        double f_dp = 0, f_rn = 1;
        if (p->heads) fr_dfm_heads_predict(p->heads, &s->f, &f_dp, &f_rn);
        fr_dfm_apply(&p->batch[p->batch_n], fr_dfm_weights(p->policy->dfm, s->kind, s->label[FR_TASK_CVR] > 0.5f,
                                                           now[FR_TASK_CVR], f_dp, f_rn, &p->dfm_limits));
    }
    p->batch_n++;
    p->counters.samples_buffered = (uint64_t)p->batch_n;
    /* Batches are cut by sample count only, never by time, so parameters depend on the input alone. */
    if (p->batch_n == p->batch_cap) train_batch(p);
}

/* A sample of the merged sequence: the learner's prior of its impression rides along (the join
 * never holds it), and leaves the map with the impression's last sample. */
static void on_sample(const fr_sample *s, const fr_groups_origin *o, void *ctx)
{
    fr_pipeline *p = ctx;
    fr_sample sp = *s;
    if (fr_priors_get(p->priors, o->id, o->id_len, sp.prior)) sp.has_prior = 1;
    learn_sample(p, &sp, o);
    if (o->final) fr_priors_delete(p->priors, o->id, o->id_len);
}

static int64_t minus_lateness(const fr_pipeline *p, int64_t ts)
{
    return ts == INT64_MIN ? INT64_MIN : ts - p->cfg.allowed_lateness_ms;
}

/* Group g's watermark: the minimum over the registered sources that hold it and are not idle (a
 * source holds the group of its partition, a replay file every group: its events are split by id)
 * of the largest event time each delivered into g, minus the allowed lateness. */
static void refresh_group(fr_pipeline *p, int g)
{
    if (!p->gw) return; /* still opening */
    int64_t lo = INT64_MAX;
    int holding = 0;
    for (int i = 0; i < p->n_sources; i++) {
        const source *s = &p->sources[i];
        if (!s->registered || s->idle || (s->group >= 0 && s->group != g)) continue;
        holding = 1;
        const int64_t t = s->group >= 0 ? s->max_ts : s->gmax[g];
        if (t < lo) lo = t;
    }
    p->gholding[g] = holding;
    p->gw[g] = holding ? minus_lateness(p, lo) : INT64_MIN;
}

/* After a source was declared, bound, or went idle or back: every group it may hold. */
static void refresh_groups(fr_pipeline *p)
{
    for (int g = 0; g < p->cfg.partitions; g++) refresh_group(p, g);
}

/* Moves every group to its watermark (an idle group, one no source holds, follows the frontier),
 * then hands the learner every merged sample below the frontier: the minimum over the groups that
 * are held, or, when none is (every source idle), the largest event time any source delivered. */
static int advance_groups(fr_pipeline *p)
{
    const int n = p->cfg.partitions;
    int64_t frontier = INT64_MAX;
    int any = 0;
    for (int g = 0; g < n; g++)
        if (p->gholding[g]) {
            any = 1;
            if (p->gw[g] < frontier) frontier = p->gw[g];
        }
    if (!any) {
        int64_t hi = INT64_MIN;
        for (int i = 0; i < p->n_sources; i++)
            if (p->sources[i].registered && p->sources[i].max_ts > hi) hi = p->sources[i].max_ts;
        frontier = minus_lateness(p, hi);
    }
    /* A held group moves with its own sources even while another holds the frontier back: its
     * lateness decisions must depend on its own input only. */
    for (int g = 0; g < n; g++) {
        const int64_t w = p->gholding[g] ? p->gw[g] : frontier;
        if (w != INT64_MIN && fr_groups_advance(p->groups, g, w) != 0) return -1;
    }
    if (frontier != INT64_MIN) fr_groups_release(p->groups, frontier, on_sample, p);
    return p->failed ? -1 : 0;
}

static int fail_join(fr_pipeline *p, char *err, size_t errlen)
{
    const char *why = fr_groups_error(p->groups);
    fail_with(p, why ? why : "the join failed");
    if (err) snprintf(err, errlen, "%s", p->failure);
    return -1;
}

int fr_pipeline_tick(fr_pipeline *p)
{
    if (p->failed) return -1;
    refresh_groups(p);
    if (advance_groups(p) != 0) return fail_join(p, NULL, 0);
    return 0;
}

int fr_pipeline_drain(fr_pipeline *p, char *err, size_t errlen)
{
    if (p->failed) return fail_join(p, err, errlen);
    /* An entry arms its next timer when one fires (the attribution window after the observation
     * window), so this takes a few rounds. */
    for (int g = 0; g < p->cfg.partitions; g++) {
        fr_join *j = fr_groups_join(p->groups, g);
        for (int64_t last; (last = fr_join_last_deadline(j)) != INT64_MIN && last < INT64_MAX;) {
            const int64_t jw = fr_join_watermark(j);
            if (last < jw && jw == INT64_MAX) break;
            if (fr_groups_advance(p->groups, g, last < jw ? jw + 1 : last + 1) != 0) return fail_join(p, err, errlen);
        }
    }
    fr_groups_release(p->groups, INT64_MAX, on_sample, p);
    if (p->failed) return fail_join(p, err, errlen);
    train_batch(p);
    return 0;
}

/* ---- opening and restoring ---------------------------------------------------------------- */

static long read_join_entry(void *ctx, const char *id, size_t id_len, void *buf, size_t cap)
{
    return fr_ckpt_get_join_entry(ctx, id, id_len, buf, cap);
}

/* Admission and TTL of every field with embedding rows (table = categorical slot, or n_cat +
 * multi slot). Applied to every embedded field, defaults included, so the model always keeps its
 * event-time clock and row stamps: a TTL added later judges rows by real stamps. */
int fr_pipeline_apply_row_policies(fr_model *m, const fr_config *c, char *err, size_t errlen)
{
    for (int i = 0; i < c->schema.n_fields; i++) {
        const fr_field *f = &c->schema.fields[i];
        if (f->kind == FR_FIELD_NUMERIC) continue;
        uint32_t table = (uint32_t)(f->kind == FR_FIELD_CATEGORICAL ? f->slot : c->schema.n_cat + f->slot);
        fr_row_policy rp;
        fr_row_policy_defaults(&rp);
        rp.admit_after = f->admit_after;
        rp.admit_width_log2 = (unsigned)f->admit_width_log2;
        rp.ttl_ms = f->ttl_ms;
        rp.admit_half_life_ms = f->admit_half_life_ms;
        char why[200];
        if (fr_model_set_row_policy(m, table, &rp, why, sizeof why) != 0) {
            snprintf(err, errlen, "field \"%s\": %s", f->name, why);
            return -1;
        }
    }
    return 0;
}

/* ---- what a checkpoint may hold: every stored value is untrusted input ---------------------- */

static const char SCEN_FIX[] = "restore the old \"scenarios\" or start a new checkpoint.dir";
static const char FIELD_FIX[] = "restore the old \"fields\" or start a new checkpoint.dir";

/* The field list and scenarios the checkpoint was trained with (its blob "manifest") against the
 * configuration's. A field's rows and weights are those of its slot, its keys are hashed with its
 * name, and per-scenario parameters and metrics go by position: a field that moved to another slot
 * or kind, was renamed, added or removed, a numeric transform that changed, or a scenario list in
 * another order would be reinterpreted, never mapped. Refused, by key. Declaring the fields in
 * another order is fine as long as every field keeps its slot (slots count per kind); max_len may
 * change (keys do not). */
int fr_pipeline_check_schema(const fr_schema *sch, const char *text, size_t len, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *root = json_loadb(text, len, 0, &jerr);
    json_t *fields = json_object_get(root, "fields"), *scen = json_object_get(root, "scenarios");
    const char *sf = json_string_value(json_object_get(root, "scenario_field"));
    int rc = -1;
    if (!json_is_array(fields) || !json_is_array(scen) || !sf) {
        snprintf(err, errlen, "checkpoint corrupt: blob \"manifest\" (the fields and scenarios it was trained with) "
                              "is not the JSON this build writes");
        goto out;
    }
    if (strcmp(sf, "scenario") != 0) {
        snprintf(err, errlen, "checkpoint was trained with the scenario in the event field \"%s\", this build reads "
                              "\"scenario\"; start a new checkpoint.dir", sf);
        goto out;
    }
    size_t i;
    json_t *v;
    json_array_foreach(scen, i, v)
    {
        const char *name = json_string_value(v);
        if (!name) {
            snprintf(err, errlen, "checkpoint corrupt: blob \"manifest\": scenarios[%zu] is not a string", i);
            goto out;
        }
        const int have = (int)i < sch->n_scenarios;
        if (!have || strcmp(name, sch->scenarios[i]) != 0) {
            snprintf(err, errlen,
                     "scenarios[%zu]: the checkpoint was trained with \"%s\" there, the configuration has %s%s%s "
                     "(per-scenario parameters and metrics go by position, so the list keeps its names and order "
                     "for the life of a checkpoint, allow_new_scenarios's \"other\" included); %s",
                     i, name, have ? "\"" : "", have ? sch->scenarios[i] : "none", have ? "\"" : "", SCEN_FIX);
            goto out;
        }
    }
    if (json_array_size(scen) != (size_t)sch->n_scenarios) {
        snprintf(err, errlen,
                 "scenarios[%zu]: the configuration adds \"%s\", the checkpoint was trained with %zu scenarios (the "
                 "model's shape follows them); %s",
                 json_array_size(scen), sch->scenarios[json_array_size(scen)], json_array_size(scen), SCEN_FIX);
        goto out;
    }
    int seen[FR_MAX_CAT + FR_MAX_NUM + FR_MAX_MULTI] = {0};
    json_array_foreach(fields, i, v)
    {
        const char *name = json_string_value(json_object_get(v, "name"));
        const char *kind = json_string_value(json_object_get(v, "kind"));
        const char *tr = json_string_value(json_object_get(v, "transform"));
        json_t *slot = json_object_get(v, "slot");
        if (!name || !kind || !json_is_integer(slot)) {
            snprintf(err, errlen, "checkpoint corrupt: blob \"manifest\": fields[%zu] lacks a name, kind or slot", i);
            goto out;
        }
        int f = 0;
        while (f < sch->n_fields && strcmp(sch->fields[f].name, name) != 0) f++;
        if (f == sch->n_fields) {
            snprintf(err, errlen,
                     "fields: the checkpoint was trained with field \"%s\" (%s slot %lld), the configuration has no "
                     "field of that name (renamed or removed? its rows would be orphans); %s",
                     name, kind, (long long)json_integer_value(slot), FIELD_FIX);
            goto out;
        }
        const fr_field *cf = &sch->fields[f];
        seen[f] = 1;
        if (strcmp(kind, FIELD_KINDS[cf->kind]) != 0 || json_integer_value(slot) != cf->slot) {
            snprintf(err, errlen,
                     "fields[%d] \"%s\": the checkpoint was trained with it as %s slot %lld, the configuration makes "
                     "it %s slot %d (reordered? its rows and weights would be another field's); %s",
                     f, name, kind, (long long)json_integer_value(slot), FIELD_KINDS[cf->kind], cf->slot, FIELD_FIX);
            goto out;
        }
        if (cf->kind == FR_FIELD_NUMERIC && (!tr || strcmp(tr, TRANSFORMS[cf->transform]) != 0)) {
            snprintf(err, errlen,
                     "fields[%d].transform: the checkpoint was trained with \"%s\" for field \"%s\", the "
                     "configuration says \"%s\"; %s",
                     f, tr ? tr : "?", name, TRANSFORMS[cf->transform], FIELD_FIX);
            goto out;
        }
    }
    for (int f = 0; f < sch->n_fields; f++) {
        if (seen[f]) continue;
        snprintf(err, errlen,
                 "fields[%d]: the configuration adds field \"%s\", the checkpoint was trained without it (the model's "
                 "shape follows the fields); remove it or start a new checkpoint.dir",
                 f, sch->fields[f].name);
        goto out;
    }
    rc = 0;
out:
    json_decref(root);
    return rc;
}


fr_pipeline *fr_pipeline_open(const fr_config *c, char *err, size_t errlen)
{
    fr_pipeline *p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    p->cfg = *c;
    p->batch_cap = c->model.batch_size;
    p->batch = calloc((size_t)p->batch_cap, sizeof *p->batch);
    p->preds = calloc((size_t)p->batch_cap, sizeof *p->preds);
    p->metrics = calloc(metric_count(p), sizeof *p->metrics);
    fr_join_config jc = {.click_window_ms = c->click_window_ms,
                         .attribution_window_ms = c->attribution_window_ms,
                         .policy = (fr_policy_id)c->join_policy,
                         .observation_window_ms = c->observation_window_ms,
                         .real_negative_window_ms = c->real_negative_window_ms,
                         .oracle = c->oracle,
                         .oracle_ctx = c->oracle_ctx,
                         .n_scenarios = c->schema.n_scenarios};
    p->policy = fr_policy_get(c->join_policy);
    if (!p->policy) {
        snprintf(err, errlen, "join.policy: unknown policy id %d", (int)c->join_policy);
        free(p->batch), free(p->preds), free(p->metrics), free(p);
        return NULL;
    }
    if (p->policy->oracle && !c->oracle) {
        snprintf(err, errlen, "join.policy \"%s\" needs the future: it works only in `freshet replay`", p->policy->name);
        free(p->batch), free(p->preds), free(p->metrics), free(p);
        return NULL;
    }
    p->dfm_limits = (fr_dfm_limits){.clip = c->weight_clip, .rn_floor = c->rn_floor};
    if (p->policy->helper_heads) {
        p->heads = fr_dfm_heads_create(c->helper_buckets_log2, c->schema.n_cat, 0.05f);
        if (!p->heads) {
            snprintf(err, errlen, "out of memory (helper heads)");
            free(p->batch), free(p->preds), free(p->metrics), free(p);
            return NULL;
        }
    }
    p->history = fr_history_create((uint32_t)metric_count(p), c->history_bucket_ms, (uint32_t)c->history_keep);
    p->groups = fr_groups_create(&jc, c->partitions);
    p->priors = fr_priors_create();
    p->gw = calloc((size_t)c->partitions, sizeof *p->gw);
    p->gholding = calloc((size_t)c->partitions, sizeof *p->gholding);
    p->manifest = fr_manifest_daemon_json(&c->schema);
    if (!p->batch || !p->preds || !p->metrics || !p->history || !p->groups || !p->priors || !p->gw || !p->gholding ||
        !p->manifest) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    p->model = fr_model_create(&c->model, err, errlen);
    if (!p->model || fr_pipeline_apply_row_policies(p->model, c, err, errlen) != 0) goto fail;
    p->ckpt = fr_ckpt_open(c->checkpoint_dir, err, errlen);
    if (!p->ckpt) goto fail;
    fr_guard_init(&p->guard);
    if (c->max_cached_entries > 0) {
        /* Before restoring: restored entries then stay on disk until needed. */
        const fr_join_store st = {read_join_entry, p->ckpt};
        for (int g = 0; g < c->partitions; g++) fr_join_set_store(fr_groups_join(p->groups, g), &st);
    }
    if (fr_ckpt_exists(p->ckpt) && fr_parts_restore(p, err, errlen) != 0) goto fail;
    /* Disabling the guard is also how an operator ends a pause at once: forget its state. */
    if (!c->guard.enabled) fr_guard_init(&p->guard);
    if (c->redis_host[0]) {
        /* connects lazily on its own thread: a Redis that is down never stops the daemon */
        /* The writer is this state directory on this host: a restart of the same daemon takes its
         * lease back at once, a second daemon pointed at the same prefix is kept out. */
        char host[128] = "unknown-host", dir[PATH_MAX], writer[PATH_MAX + 160];
        gethostname(host, sizeof host - 1);
        if (!realpath(c->checkpoint_dir, dir)) snprintf(dir, sizeof dir, "%s", c->checkpoint_dir);
        snprintf(writer, sizeof writer, "%s:%s", host, dir);
        if (strlen(writer) > 256) /* fr_publish's limit */
            snprintf(writer, sizeof writer, "%s:path-xxh3-%016" PRIx64, host, fr_hash_value(0, dir, strlen(dir)));
        const fr_publish_info info = {.manifest_json = p->manifest, .policy = p->policy};
        p->pub = fr_pubq_open(c->redis_host, c->redis_port, c->redis_prefix, c->redis_keep_versions, writer,
                              fr_model_get_config(p->model), &info, &p->cfg.log, err, errlen);
        if (!p->pub) goto fail;
    }
    p->last_ckpt_wall = p->last_status_wall = wall_seconds();
    p->samples_at_last_ckpt = p->counters.samples_trained;
    p->consumed_at_last_ckpt = p->counters.consumed;
    p->last_status_consumed = p->counters.consumed;
    p->last_status_samples = p->counters.samples_trained;
    return p;
fail:
    fr_pipeline_close(p);
    return NULL;
}

void fr_pipeline_close(fr_pipeline *p)
{
    if (!p) return;
    fr_pubq_close(p->pub, p->publish_finished ? 0 : 5.0); /* a last push of what is pending, if Redis answers */
    fr_ckpt_close(p->ckpt);
    fr_model_free(p->model);
    fr_groups_free(p->groups);
    fr_priors_free(p->priors);
    free(p->gw);
    free(p->gholding);
    for (int i = 0; i < p->n_sources; i++) {
        fr_evtime_free(p->sources[i].et);
        free(p->sources[i].gmax);
    }
    fr_dfm_heads_free(p->heads);
    free(p->manifest);
    free(p->metrics);
    fr_history_free(p->history);
    free(p->preds);
    free(p->batch_key);
    free(p->batch);
    free(p);
}

/* ---- input -------------------------------------------------------------------------------- */

int fr_pipeline_set_samples_out(fr_pipeline *p, fr_sampleout *o)
{
    if (o && !p->batch_key && !(p->batch_key = calloc((size_t)p->batch_cap, sizeof *p->batch_key))) return -1;
    p->samples_out = o;
    return 0;
}

void fr_pipeline_set_reject_hook(fr_pipeline *p, fr_pipeline_reject_fn fn, void *ctx)
{
    p->on_reject = fn;
    p->on_reject_ctx = ctx;
}

int64_t fr_pipeline_source_offset(const fr_pipeline *p, const char *name)
{
    for (int i = 0; i < p->n_sources; i++)
        if (strcmp(p->sources[i].name, name) == 0) return p->sources[i].next_offset;
    return -1;
}

int fr_pipeline_set_source_identity(fr_pipeline *p, const char *name, const void *bytes, size_t len)
{
    source *s = find_source(p, name);
    if (!s || len > FR_SOURCE_IDENTITY_MAX) return -1;
    memcpy(s->identity, bytes, len);
    s->identity_len = (int)len;
    return 0;
}

long fr_pipeline_source_identity(const fr_pipeline *p, const char *name, void *buf, size_t cap)
{
    for (int i = 0; i < p->n_sources; i++) {
        const source *s = &p->sources[i];
        if (strcmp(s->name, name) != 0 || s->identity_len < 0) continue;
        memcpy(buf, s->identity, (size_t)s->identity_len < cap ? (size_t)s->identity_len : cap);
        return s->identity_len;
    }
    return -1;
}

int fr_pipeline_register_source(fr_pipeline *p, const char *name, int64_t *next_offset)
{
    source *s = add_source(p, name);
    if (!s) return -1;
    s->registered = 1;
    s->idle = 0;
    if (next_offset) *next_offset = s->next_offset;
    refresh_groups(p);
    return 0;
}

int fr_pipeline_set_source_format(fr_pipeline *p, const char *name, fr_event_format format)
{
    source *s = find_source(p, name);
    if (!s) return -1;
    s->format = format;
    return 0;
}

int fr_pipeline_source_advance(fr_pipeline *p, const char *name, int64_t next_offset)
{
    source *s = find_source(p, name);
    if (!s || !s->registered) return -1;
    if (next_offset > s->next_offset) s->next_offset = next_offset;
    return 0;
}

int fr_pipeline_bind_source(fr_pipeline *p, const char *name, int32_t partition)
{
    source *s = find_source(p, name);
    if (!s || partition < 0) return -1;
    s->group = (int)(partition % p->cfg.partitions);
    refresh_groups(p);
    return 0;
}

void fr_pipeline_source_idle(fr_pipeline *p, const char *name, int idle)
{
    source *s = find_source(p, name);
    if (!s || s->idle == idle) return;
    s->idle = idle;
    refresh_groups(p);
}

/* Logs the first rejections of each reason and then every power of two, so a flood of bad
 * input is visible without drowning the log. */
static int should_log_rejection(uint64_t count) { return count <= 10 || (count & (count - 1)) == 0; }

/* Counts a rejected message, logs it (rate-limited) and hands it to the dead-letter hook. offset
 * is the message's own. */
static void reject(fr_pipeline *p, const char *source_name, int64_t offset, const char *buf, size_t len,
                   fr_reject_reason r, const char *why)
{
    uint64_t n = ++p->counters.rejected[r];
    if (should_log_rejection(n))
        fr_logf(&p->cfg.log, FR_LOG_WARN, "rejected %s (%s, %" PRIu64 " so far) at %s offset %" PRId64 ": %s",
                fr_event_reject_name(r), fr_event_reject_name(r), n, source_name, offset, why);
    if (p->on_reject) p->on_reject(source_name, offset, buf, len, fr_event_reject_name(r), why, p->on_reject_ctx);
}

/* An event that may count: into the join, then the watermark moves. */
static int accept_event(fr_pipeline *p, source *s, const fr_event *ev, char *err, size_t errlen)
{
    /* The group is the partition the producer's partitioner gives the id (fr_groups.h), whatever
     * the source: a replay file is split the way `freshet load` would write it to Kafka. */
    const int g = fr_groups_partition(ev->id, ev->id_len, p->cfg.partitions);
    if (ev->ts > s->max_ts) s->max_ts = ev->ts;
    if (ev->ts > s->gmax[g]) s->gmax[g] = ev->ts;
    if (fr_groups_add(p->groups, g, ev) != 0) {
        if (fr_groups_error(p->groups)) return fail_join(p, err, errlen);
        snprintf(err, errlen, "joiner: out of memory holding event %s; stopping before it is lost", ev->id);
        return -1;
    }
    /* Only the event's group (or, for a bound source, its partition's) can have moved. */
    refresh_group(p, g);
    if (s->group >= 0 && s->group != g) refresh_group(p, s->group);
    if (advance_groups(p) != 0) return fail_join(p, err, errlen);
    return 0;
}

/* The held messages the last fr_evtime_offer decided, in arrival order: a released one is decoded
 * again (it was valid when held; a config changed by a restart may refuse it now) and joined. */
static int handle_decided(fr_pipeline *p, source *s, char *err, size_t errlen)
{
    const fr_evtime_msg *d;
    size_t nd = fr_evtime_decided(s->et, &d);
    for (size_t i = 0; i < nd; i++) {
        char why[320];
        if (d[i].verdict == FR_EVTIME_ACCEPT) {
            fr_event ev;
            fr_reject_reason r = fr_event_decode_as(&p->cfg.schema, s->format, d[i].bytes, d[i].len, &ev, why, sizeof why);
            if (r != FR_REJECT_NONE)
                reject(p, s->name, d[i].offset, d[i].bytes, d[i].len, r, why);
            else if (accept_event(p, s, &ev, err, errlen) != 0)
                return -1;
            continue;
        }
        snprintf(why, sizeof why,
                 "ts %" PRId64 " is %.1f h ahead of the partition's event time %" PRId64 " (bound %.1f h); %" PRIu32
                 " later events were earlier, %" PRIu32 " agreed (join.max_ahead, join.ahead_reject)",
                 d[i].ts, (double)(d[i].ts - d[i].partition_ts) / 3.6e6, d[i].partition_ts,
                 (double)fr_evtime_bound(s->et, &p->cfg.evtime) / 3.6e6, d[i].oppose, d[i].support);
        reject(p, s->name, d[i].offset, d[i].bytes, d[i].len, FR_REJECT_TS_IN_FUTURE, why);
    }
    return 0;
}

int fr_pipeline_message(fr_pipeline *p, const char *source_name, int64_t next_offset, const char *buf, size_t len,
                        char *err, size_t errlen)
{
    if (p->failed) return fail_join(p, err, errlen);
    source *s = find_source(p, source_name);
    if (!s || !s->registered) {
        if (fr_pipeline_register_source(p, source_name, NULL) != 0) {
            snprintf(err, errlen, "too many input sources (limit %d)", FR_MAX_SOURCES);
            return -1;
        }
        s = find_source(p, source_name);
    }
    s->next_offset = next_offset;
    if (s->idle) {
        s->idle = 0;
        refresh_groups(p);
    }
    p->counters.consumed++;

    fr_event ev;
    char why[320];
    fr_reject_reason r = fr_event_decode_as(&p->cfg.schema, s->format, buf, len, &ev, why, sizeof why);
    if (r != FR_REJECT_NONE) {
        reject(p, source_name, next_offset - 1, buf, len, r, why);
        return fr_pipeline_maybe_checkpoint(p, err, errlen);
    }
    fr_evtime_verdict v;
    if (fr_evtime_offer(s->et, &p->cfg.evtime, ev.ts, next_offset - 1, buf, len, &v) != 0) {
        snprintf(err, errlen, "out of memory holding a message of %s ahead of its partition's time; stopping", source_name);
        return -1;
    }
    /* No checkpoint until this message is done: the decided messages are out of the state. */
    if (handle_decided(p, s, err, errlen) != 0) return -1;
    if (v == FR_EVTIME_ACCEPT) {
        if (accept_event(p, s, &ev, err, errlen) != 0) return -1;
    } else if (v == FR_EVTIME_TOO_OLD) {
        snprintf(why, sizeof why, "ts %" PRId64 " is before join.min_event_time (%" PRId64 ")", ev.ts,
                 p->cfg.evtime.min_ts_ms);
        reject(p, source_name, next_offset - 1, buf, len, FR_REJECT_TS_TOO_OLD, why);
    }
    if (p->cfg.max_cached_entries > 0 && fr_groups_cached_count(p->groups) > (size_t)p->cfg.max_cached_entries) {
        /* Only clean entries can leave memory: checkpoint now so that they all are. */
        p->early_checkpoints++;
        return fr_pipeline_checkpoint(p, err, errlen);
    }
    return fr_pipeline_maybe_checkpoint(p, err, errlen);
}

/* ---- checkpoint and publish --------------------------------------------------------------- */

/* Hands the publisher thread a copy of the rows changed since the last hand-over and of the dense
 * parameters (store/fr_pubq.h); Redis I/O never happens on this thread. */
static void publish(fr_pipeline *p)
{
    if (!p->pub) {
        /* nobody consumes the publish marks: drop them, or the list of evicted rows would grow forever */
        fr_model_clear_dirty(p->model, FR_DIRTY_PUBLISH);
        return;
    }
    char err[512];
    if (fr_pubq_submit(p->pub, p->model, err, sizeof err) != 0) fr_logf(&p->cfg.log, FR_LOG_ERROR, "%s", err);
}

int fr_pipeline_checkpoint(fr_pipeline *p, char *err, size_t errlen)
{
    /* After a failed read-back the state is consistent but the caller must stop: refusing here
     * makes every caller (replay's final checkpoint, a clean stop) report it and exit non-zero. */
    if (p->failed) return fail_join(p, err, errlen);
    double started = wall_seconds();
    fr_ckpt_batch *b = fr_ckpt_begin(p->ckpt);
    if (!b) {
        snprintf(err, errlen, "checkpoint not written: out of memory starting its write batch");
        return -1;
    }
    char cause[256]; /* a part's own failure; a failed put leaves its reason in the batch */
    int rc = fr_parts_save(p, b, cause, sizeof cause);
    if (rc != 0) {
        /* The cause, not the step: "out of memory building a key" tells the operator what to fix. */
        const char *why = cause[0] ? cause : fr_ckpt_batch_error(b);
        snprintf(err, errlen, "checkpoint not written (the previous one is intact): %s",
                 why ? why : "a put into the write batch failed");
        fr_ckpt_abort(b);
        return -1;
    }
    if (fr_ckpt_commit(b, err, errlen) != 0) return -1;
    p->checkpoints++;
    p->last_ckpt_seconds = wall_seconds() - started;
    fr_model_clear_dirty(p->model, FR_DIRTY_CHECKPOINT);
    fr_history_committed(p->history);
    fr_priors_clear_dirty(p->priors);
    for (int g = 0; g < p->cfg.partitions; g++) {
        fr_join *j = fr_groups_join(p->groups, g);
        fr_join_clear_dirty(j);
        /* Half the bound, so the next early checkpoint is some way off. */
        if (p->cfg.max_cached_entries > 0)
            fr_join_spill(j, (size_t)p->cfg.max_cached_entries / 2 / (size_t)p->cfg.partitions + 1);
    }
    p->last_ckpt_wall = wall_seconds();
    p->samples_at_last_ckpt = p->counters.samples_trained;
    p->consumed_at_last_ckpt = p->counters.consumed;
    /* Paused by the guard: Redis keeps serving the model from before the collapse. */
    if (fr_guard_paused(&p->guard))
        p->publishes_withheld++;
    else
        publish(p);
    return 0;
}

int fr_pipeline_maybe_checkpoint(fr_pipeline *p, char *err, size_t errlen)
{
    if (p->failed) return fail_join(p, err, errlen);
    int due_samples = p->cfg.checkpoint_every_samples > 0 &&
                      p->counters.samples_trained - p->samples_at_last_ckpt >= (uint64_t)p->cfg.checkpoint_every_samples;
    int due_time = p->counters.consumed != p->consumed_at_last_ckpt && p->cfg.checkpoint_every_seconds > 0 &&
                   wall_seconds() - p->last_ckpt_wall >= p->cfg.checkpoint_every_seconds;
    if (!due_samples && !due_time) return 0;
    return fr_pipeline_checkpoint(p, err, errlen);
}

/* ---- reporting ---------------------------------------------------------------------------- */

const fr_pipeline_counters *fr_pipeline_get_counters(const fr_pipeline *p) { return &p->counters; }
const fr_join_counters *fr_pipeline_join_counters(const fr_pipeline *p) { return fr_groups_counters(p->groups); }
int64_t fr_pipeline_watermark(const fr_pipeline *p) { return fr_groups_watermark(p->groups); }
size_t fr_pipeline_join_entries(const fr_pipeline *p) { return fr_groups_entry_count(p->groups); }
size_t fr_pipeline_priors(const fr_pipeline *p) { return fr_priors_count(p->priors); }
size_t fr_pipeline_merge_buffered(const fr_pipeline *p) { return fr_groups_buffered(p->groups); }
const fr_metric *fr_pipeline_metric(const fr_pipeline *p, fr_task task, int scenario) { return metric_at(p, task, scenario); }
const fr_model *fr_pipeline_model(const fr_pipeline *p) { return p->model; }
const fr_config *fr_pipeline_config(const fr_pipeline *p) { return &p->cfg; }
const fr_guard *fr_pipeline_guard(const fr_pipeline *p) { return &p->guard; }
uint64_t fr_pipeline_publishes_withheld(const fr_pipeline *p) { return p->publishes_withheld; }

int fr_pipeline_finish_publishing(fr_pipeline *p, double timeout_seconds, char *msg, size_t msglen)
{
    msg[0] = '\0';
    if (!p->pub) return 0;
    int rc = fr_pubq_flush(p->pub, timeout_seconds);
    p->publish_finished = 1;
    fr_pubq_stats ps;
    fr_pubq_get_stats(p->pub, &ps);
    if (rc == 0) return 0;
    if (ps.held) {
        snprintf(msg, msglen, "%s", ps.last_error);
        return FR_PIPELINE_PUBLISH_HELD;
    }
    snprintf(msg, msglen, "%s", ps.last_error[0] ? ps.last_error : "the last push did not finish in time");
    return -1;
}

size_t fr_pipeline_join_cached(const fr_pipeline *p) { return fr_groups_cached_count(p->groups); }

uint64_t fr_pipeline_held(const fr_pipeline *p)
{
    uint64_t n = 0;
    for (int i = 0; i < p->n_sources; i++) n += fr_evtime_held(p->sources[i].et);
    return n;
}

uint64_t fr_pipeline_released(const fr_pipeline *p)
{
    uint64_t n = 0;
    for (int i = 0; i < p->n_sources; i++) n += fr_evtime_released(p->sources[i].et);
    return n;
}

uint64_t fr_pipeline_pending(const fr_pipeline *p)
{
    const fr_join_counters *j = fr_groups_counters(p->groups);
    uint64_t n = 0;
    for (int t = 0; t < FR_EV_NTYPES; t++) n += j->pending[t];
    return n;
}
