/* fr_parts: what a pipeline checkpoint holds besides the RocksDB engine's own keys -- the model,
 * the join, the guard, the sources, counters, metrics, the pending mini-batch, the helper heads --
 * written into a batch and restored from a checkpoint. Every stored value is untrusted input. */
#include "fr_pipeline_int.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static int stored_name_cmp(const void *a, const void *b)
{
    return strcmp(((const fr_stored_source *)a)->name, ((const fr_stored_source *)b)->name);
}

typedef struct {
    fr_join *join;
    char *err;
    size_t errlen;
} join_load;

static int load_join_entry(const char *key, size_t key_len, const void *val, size_t val_len, void *ctx)
{
    join_load *l = ctx;
    return fr_join_load_entry(l->join, key, key_len, val, val_len, l->err, l->errlen);
}

typedef struct {
    fr_pipeline *p;
    char *err;
    size_t errlen;
} offset_load;

static int load_offset(const char *name, int64_t next_offset, void *ctx)
{
    offset_load *o = ctx;
    /* -1 (never read) is never stored: a negative offset would seek before the start */
    if (next_offset < 0) {
        snprintf(o->err, o->errlen, "checkpoint corrupt: offset \"O%s\" is %" PRId64 ", below 0", name, next_offset);
        return -1;
    }
    if (strlen(name) >= FR_SOURCE_NAME_MAX) {
        snprintf(o->err, o->errlen, "checkpoint corrupt: offset \"O%.40s...\": a source name of %zu bytes (limit %d)",
                 name, strlen(name), FR_SOURCE_NAME_MAX - 1);
        return -1;
    }
    source *s = add_source(o->p, name);
    if (!s) {
        snprintf(o->err, o->errlen, "checkpoint corrupt: offset \"O%s\": more than %d sources", name, FR_MAX_SOURCES);
        return -1;
    }
    s->next_offset = next_offset;
    return 0;
}

/* A sample of the stored mini-batch: what indexes (kind, scenario), sizes (multi_len) and every
 * float the model or the metrics read. 0, or -1 with the reason in why. */
int fr_pipeline_check_sample(const fr_sample *s, int n_scenarios, char *why, size_t whylen)
{
    const char *bad = NULL;
    if (s->kind < 0 || s->kind >= FR_SAMPLE_NKINDS || s->kind == FR_SAMPLE_MATURED)
        bad = "kind"; /* MATURED samples never enter a batch */
    else if (s->scenario < 0 || s->scenario >= n_scenarios)
        bad = "scenario";
    for (int t = 0; !bad && t < FR_NTASKS; t++) {
        if (s->has_label[t] > 1 || !(s->label[t] >= 0 && s->label[t] <= 1))
            bad = "label";
        else if (!(isfinite(s->weight[t]) && s->weight[t] >= 0))
            bad = "weight";
        else if (!(s->prior[t] >= 0 && s->prior[t] <= 1))
            bad = "prior";
    }
    if (!bad && (s->has_prior > 1 || s->in_window > 1)) bad = "flag";
    for (int i = 0; !bad && i < FR_MAX_NUM; i++)
        if (!isfinite(s->f.num[i])) bad = "numeric feature";
    for (int m = 0; !bad && m < FR_MAX_MULTI; m++)
        if (s->f.multi_len[m] > FR_MAX_MULTI_LEN) bad = "multi_len";
    if (!bad) return 0;
    snprintf(why, whylen, "its %s is out of range (kind %" PRId32 ", scenario %" PRId32 " of %d)", bad, s->kind,
             s->scenario, n_scenarios);
    return -1;
}

/* consumed counts every message, rejected[r] those refused for reason r (never 0, "none"). */
static int check_counters(const fr_pipeline_counters *c)
{
    uint64_t rejected = 0;
    if (c->rejected[FR_REJECT_NONE] != 0) return -1;
    for (int r = 0; r < FR_REJECT_NREASONS; r++)
        if (__builtin_add_overflow(rejected, c->rejected[r], &rejected)) return -1;
    return rejected <= c->consumed ? 0 : -1;
}

int fr_pipeline_check_source(const fr_stored_source *s, char *why, size_t whylen)
{
    if (!memchr(s->name, '\0', FR_SOURCE_NAME_MAX) || !s->name[0]) {
        snprintf(why, whylen, "the source name is %s", s->name[0] ? "not terminated" : "empty");
        return -1;
    }
    /* an event time or INT64_MIN (none): the watermark subtracts the allowed lateness from it */
    if (s->max_ts != INT64_MIN && (s->max_ts < 0 || s->max_ts > FR_TS_MAX)) {
        snprintf(why, whylen, "source \"%.64s\" has event time %" PRId64 ", outside [0, %" PRId64 "]", s->name,
                 s->max_ts, FR_TS_MAX);
        return -1;
    }
    return 0;
}

static int restore_sources(fr_pipeline *p, char *err, size_t errlen)
{
    /* Sized for one entry more than the limit: a longer blob is told from a full one. */
    fr_stored_source stored[FR_MAX_SOURCES + 1];
    long n = fr_ckpt_get_blob(p->ckpt, "sources", stored, sizeof stored);
    if (n < 0) return 0; /* written by every checkpoint, but an older one may lack it: no watermarks */
    if (n % (long)sizeof(fr_stored_source) != 0 || n / (long)sizeof(fr_stored_source) > FR_MAX_SOURCES) {
        snprintf(err, errlen,
                 "checkpoint corrupt: blob \"sources\" has %ld bytes, not a whole number of at most %d entries of %zu",
                 n, FR_MAX_SOURCES, sizeof(fr_stored_source));
        return -1;
    }
    for (long i = 0; i < n / (long)sizeof(fr_stored_source); i++) {
        const char *name = stored[i].name;
        char why[256];
        if (fr_pipeline_check_source(&stored[i], why, sizeof why) != 0) {
            snprintf(err, errlen, "checkpoint corrupt: blob \"sources\", entry %ld: %s", i, why);
            return -1;
        }
        source *s = find_source(p, name);
        if (s && s->max_ts != INT64_MIN) {
            snprintf(err, errlen, "checkpoint corrupt: blob \"sources\" lists \"%s\" twice", name);
            return -1;
        }
        if (!s) s = add_source(p, name);
        if (!s) {
            snprintf(err, errlen, "checkpoint corrupt: blob \"sources\" and the offsets name more than %d sources",
                     FR_MAX_SOURCES);
            return -1;
        }
        s->max_ts = stored[i].max_ts;
    }
    return 0;
}

/* The counters blob is the struct's bytes, all uint64. Before the event-time check it had two
 * reasons fewer (ts_in_future and ts_too_old are the last): that layout still loads. */
enum { PRE_EVTIME_REASONS = FR_REJECT_TS_IN_FUTURE };

int fr_pipeline_counters_decode(const void *buf, size_t len, fr_pipeline_counters *out)
{
    const size_t old = sizeof(uint64_t) * (1 + PRE_EVTIME_REASONS + 2);
    memset(out, 0, sizeof *out);
    if (len == sizeof *out) {
        memcpy(out, buf, len);
        return 0;
    }
    if (len != old) return -1;
    const unsigned char *b = buf;
    memcpy(&out->consumed, b, 8);
    memcpy(out->rejected, b + 8, 8 * PRE_EVTIME_REASONS);
    memcpy(&out->samples_trained, b + 8 + 8 * PRE_EVTIME_REASONS, 8);
    memcpy(&out->samples_buffered, b + 16 + 8 * PRE_EVTIME_REASONS, 8);
    return 0;
}

static int import_source_evtime(const char *name, const void *state, size_t len, void *ctx)
{
    source *s = strlen(name) < FR_SOURCE_NAME_MAX ? add_source(ctx, name) : NULL;
    return s ? fr_evtime_import(s->et, state, len) : -1;
}

/* The held messages and the pace of every source. A checkpoint written before the event-time
 * check has no blob: each source starts from its stored largest event time. */
static int restore_evtime(fr_pipeline *p, char *err, size_t errlen)
{
    long n = fr_ckpt_get_blob(p->ckpt, "evtime", NULL, 0);
    if (n < 0) {
        for (int i = 0; i < p->n_sources; i++) fr_evtime_set_time(p->sources[i].et, p->sources[i].max_ts);
        return 0;
    }
    unsigned char *buf = malloc(n ? (size_t)n : 1);
    char name[FR_SOURCE_NAME_MAX] = "";
    const char *why = !buf ? "too large for the memory left"
                      : fr_ckpt_get_blob(p->ckpt, "evtime", buf, (size_t)n) != n
                          ? "unreadable"
                          : fr_evtime_walk_all(buf, (size_t)n, import_source_evtime, p, name, sizeof name);
    free(buf);
    if (why) {
        snprintf(err, errlen, "checkpoint: the event-time state (blob \"evtime\"%s%s) is %s", name[0] ? ", source " : "",
                 name, why);
        return -1;
    }
    return 0;
}

typedef struct {
    uint64_t held, released;
} evtime_totals;

static int add_source_totals(const char *name, const void *state, size_t len, void *ctx)
{
    (void)name;
    evtime_totals *t = ctx;
    fr_evtime *e = fr_evtime_create();
    int rc = e ? fr_evtime_import(e, state, len) : -1;
    if (rc == 0) {
        t->held += fr_evtime_held(e);
        t->released += fr_evtime_released(e);
    }
    fr_evtime_free(e);
    return rc;
}

int fr_pipeline_evtime_totals(const void *blob, size_t len, uint64_t *held, uint64_t *released)
{
    evtime_totals t = {0, 0};
    char name[FR_SOURCE_NAME_MAX];
    if (fr_evtime_walk_all(blob, len, add_source_totals, &t, name, sizeof name) != NULL) return -1;
    *held = t.held;
    *released = t.released;
    return 0;
}

int fr_parts_restore(fr_pipeline *p, char *err, size_t errlen)
{
    /* The field list first: a reordered field list also changes the model's shape, less clearly. */
    long ml = fr_ckpt_get_blob(p->ckpt, "manifest", NULL, 0);
    char *man = ml >= 0 ? malloc((size_t)ml + 1) : NULL;
    if (!man || fr_ckpt_get_blob(p->ckpt, "manifest", man, (size_t)ml + 1) != ml) {
        snprintf(err, errlen, ml < 0 ? "checkpoint corrupt: blob \"manifest\" (the fields and scenarios it was trained "
                                       "with) is missing"
                                     : "checkpoint: out of memory reading blob \"manifest\"");
        free(man);
        return -1;
    }
    int bad_schema = fr_pipeline_check_schema(&p->cfg.schema, man, (size_t)ml, err, errlen);
    free(man);
    if (bad_schema) return -1;

    fr_model *m = fr_ckpt_load_model(p->ckpt, err, errlen);
    if (!m) return -1;
    char changed[512];
    if (fr_model_retune(m, &p->cfg.model, changed, sizeof changed, err, errlen) != 0) {
        fr_model_free(m);
        return -1;
    }
    if (changed[0]) fprintf(stderr, "freshet: restored with changed training settings: %s\n", changed);
    fr_model_free(p->model);
    p->model = m;
    if (fr_pipeline_apply_row_policies(m, &p->cfg, err, errlen) != 0 || fr_ckpt_load_admission(p->ckpt, m, err, errlen) != 0)
        return -1;

    size_t meta_cap = fr_join_export_meta(p->join, NULL, 0);
    char *meta = malloc(meta_cap);
    long meta_len = meta ? fr_ckpt_get_join_meta(p->ckpt, meta, meta_cap) : -1;
    /* The policy first: entries of another policy would be refused one by one, less clearly. */
    int bad_meta = 0;
    if (meta_len < 0 || (size_t)meta_len > meta_cap) {
        snprintf(err, errlen, "checkpoint corrupt: join counters (key \"K\") missing or of another size");
        bad_meta = 1;
    } else if (fr_join_check_meta(p->join, meta, (size_t)meta_len, err, errlen) != 0) {
        bad_meta = 1;
    } else if (fr_join_import_meta(p->join, meta, (size_t)meta_len) != 0) {
        snprintf(err, errlen, "checkpoint corrupt: join counters (key \"K\") unreadable, or their counts break "
                              "events = joined + pending + dropped");
        bad_meta = 1;
    }
    free(meta);
    if (bad_meta) return -1;
    char why[400];
    why[0] = '\0';
    if (fr_ckpt_foreach_join_entry(p->ckpt, load_join_entry, &(join_load){p->join, why, sizeof why}) != 0) {
        snprintf(err, errlen, "checkpoint corrupt: %s", why[0] ? why : "the join entries could not be read");
        return -1;
    }
    if (fr_join_check_pending(p->join, why, sizeof why) != 0) {
        snprintf(err, errlen, "checkpoint corrupt: %s", why);
        return -1;
    }
    if (fr_ckpt_get_blob(p->ckpt, "guard", &p->guard, sizeof p->guard) != (long)sizeof p->guard) {
        snprintf(err, errlen, "checkpoint: blob \"guard\" (the guard's state) missing or from another version");
        return -1;
    }
    if (fr_guard_check(&p->guard, why, sizeof why) != 0) {
        snprintf(err, errlen, "checkpoint corrupt: blob \"guard\": %s", why);
        return -1;
    }
    if (fr_ckpt_foreach_offset(p->ckpt, load_offset, &(offset_load){p, err, errlen}, err, errlen) != 0) return -1;
    if (restore_sources(p, err, errlen) != 0) return -1;
    if (restore_evtime(p, err, errlen) != 0) return -1;
    for (int i = 0; i < p->n_sources; i++) {
        source *s = &p->sources[i];
        char name[FR_SOURCE_NAME_MAX + 16];
        identity_blob_name(s, name, sizeof name);
        long len = fr_ckpt_get_blob(p->ckpt, name, s->identity, sizeof s->identity);
        s->identity_len = len < 0 ? -1 : len > FR_SOURCE_IDENTITY_MAX ? FR_SOURCE_IDENTITY_MAX + 1 : (int)len;
    }
    unsigned char cbuf[sizeof p->counters];
    long clen = fr_ckpt_get_blob(p->ckpt, "counters", cbuf, sizeof cbuf);
    if (clen < 0 || fr_pipeline_counters_decode(cbuf, (size_t)clen, &p->counters) != 0) {
        snprintf(err, errlen, "checkpoint: blob \"counters\" missing or from another version");
        return -1;
    }
    if (check_counters(&p->counters) != 0) {
        snprintf(err, errlen, "checkpoint corrupt: blob \"counters\": more messages rejected than consumed");
        return -1;
    }
    size_t mbytes = metric_count(p) * sizeof(fr_metric);
    if (fr_ckpt_get_blob(p->ckpt, "metrics", p->metrics, mbytes) != (long)mbytes) {
        snprintf(err, errlen, "checkpoint: blob \"metrics\" missing or written with another scenario list");
        return -1;
    }
    for (size_t i = 0; i < metric_count(p); i++) {
        if (fr_metric_check(&p->metrics[i]) == 0) continue;
        const int per_task = p->cfg.schema.n_scenarios + 1, s = (int)i % per_task;
        snprintf(err, errlen,
                 "checkpoint corrupt: blob \"metrics\": task %s, scenario %s holds a sum that is negative or not "
                 "finite",
                 task_name((int)i / per_task), s < p->cfg.schema.n_scenarios ? p->cfg.schema.scenarios[s] : "all");
        return -1;
    }
    long sbytes = fr_ckpt_get_blob(p->ckpt, "batch", p->batch, (size_t)p->batch_cap * sizeof(fr_sample));
    if (sbytes < 0 || sbytes % (long)sizeof(fr_sample) != 0 || sbytes / (long)sizeof(fr_sample) >= p->batch_cap) {
        snprintf(err, errlen,
                 "checkpoint: blob \"batch\" (the pending mini-batch) missing or written with another batch size");
        return -1;
    }
    p->batch_n = (int)(sbytes / (long)sizeof(fr_sample));
    for (int i = 0; i < p->batch_n; i++) {
        if (fr_pipeline_check_sample(&p->batch[i], p->cfg.schema.n_scenarios, why, sizeof why) == 0) continue;
        snprintf(err, errlen, "checkpoint corrupt: blob \"batch\", sample %d: %s", i, why);
        return -1;
    }
    if (p->counters.samples_buffered != (uint64_t)p->batch_n) {
        snprintf(err, errlen,
                 "checkpoint corrupt: blob \"counters\" counts %" PRIu64 " buffered samples, blob \"batch\" holds %d",
                 p->counters.samples_buffered, p->batch_n);
        return -1;
    }
    if (p->heads) {
        size_t hn = fr_dfm_heads_export(p->heads, NULL, 0);
        void *hb = malloc(hn);
        long got = hb ? fr_ckpt_get_blob(p->ckpt, "dfm_heads", hb, hn) : -1;
        int bad = got < 0 ? -1 : fr_dfm_heads_import(p->heads, hb, (size_t)got);
        free(hb);
        if (bad == -2) {
            snprintf(err, errlen, "checkpoint corrupt: blob \"dfm_heads\": a helper-head weight that is not finite or "
                                  "an accumulator below zero");
            return -1;
        }
        if (bad) {
            snprintf(err, errlen, "checkpoint: blob \"dfm_heads\" (the helper heads) missing or written with another "
                                  "join.policy or join.helper_buckets_log2");
            return -1;
        }
    }
    return 0;
}

static int put_join_entry(const char *id, size_t id_len, const void *bytes, size_t len, void *ctx)
{
    return fr_ckpt_put_join_entry(ctx, id, id_len, bytes, len);
}


int fr_parts_save(fr_pipeline *p, fr_ckpt_batch *b, const char **why)
{
    int rc = fr_ckpt_put_model(b, p->model);
    if (rc == 0 && fr_join_foreach_dirty(p->join, put_join_entry, b) != 0) {
        rc = -1;
        *why = "a join entry changed since the last checkpoint has no state in memory";
    }
    size_t meta_len = fr_join_export_meta(p->join, NULL, 0);
    char *meta = rc == 0 ? malloc(meta_len ? meta_len : 1) : NULL;
    if (rc == 0 && !meta) rc = -1, *why = "out of memory for the join counters";
    if (rc == 0) {
        fr_join_export_meta(p->join, meta, meta_len);
        rc = fr_ckpt_put_join_meta(b, meta, meta_len);
    }
    free(meta);
    fr_stored_source stored[FR_MAX_SOURCES];
    memset(stored, 0, sizeof stored);
    for (int i = 0; rc == 0 && i < p->n_sources; i++) {
        if (p->sources[i].next_offset >= 0) rc = fr_ckpt_put_offset(b, p->sources[i].name, p->sources[i].next_offset);
        if (rc == 0 && p->sources[i].identity_len >= 0) {
            char name[FR_SOURCE_NAME_MAX + 16];
            identity_blob_name(&p->sources[i], name, sizeof name);
            rc = fr_ckpt_put_blob(b, name, p->sources[i].identity, (size_t)p->sources[i].identity_len);
        }
        snprintf(stored[i].name, sizeof stored[i].name, "%s", p->sources[i].name);
        stored[i].max_ts = p->sources[i].max_ts;
    }
    /* In name order: the order sources were met depends on which partitions delivered before a
     * restart's checkpoint, and the digest must not. */
    qsort(stored, (size_t)p->n_sources, sizeof *stored, stored_name_cmp);
    if (rc == 0) rc = fr_ckpt_put_blob(b, "sources", stored, (size_t)p->n_sources * sizeof *stored);
    if (rc == 0) {
        fr_evtime_named parts[FR_MAX_SOURCES];
        for (int i = 0; i < p->n_sources; i++) parts[i] = (fr_evtime_named){p->sources[i].name, p->sources[i].et};
        size_t elen = 0;
        unsigned char *eb = fr_evtime_export_all(parts, (size_t)p->n_sources, &elen);
        if (!eb) rc = -1, *why = "out of memory for the event-time state";
        else rc = fr_ckpt_put_blob(b, "evtime", eb, elen);
        free(eb);
    }
    if (rc == 0) rc = fr_ckpt_put_blob(b, "manifest", p->manifest, strlen(p->manifest));
    if (rc == 0) rc = fr_ckpt_put_blob(b, "counters", &p->counters, sizeof p->counters);
    if (rc == 0) rc = fr_ckpt_put_blob(b, "metrics", p->metrics, metric_count(p) * sizeof(fr_metric));
    if (rc == 0) rc = fr_ckpt_put_blob(b, "batch", p->batch, (size_t)p->batch_n * sizeof(fr_sample));
    if (rc == 0) rc = fr_ckpt_put_blob(b, "guard", &p->guard, sizeof p->guard);
    if (rc == 0 && p->heads) {
        size_t hn = fr_dfm_heads_export(p->heads, NULL, 0);
        void *hb = malloc(hn);
        if (!hb) *why = "out of memory for the helper heads";
        rc = hb ? fr_ckpt_put_blob(b, "dfm_heads", hb, fr_dfm_heads_export(p->heads, hb, hn)) : -1;
        free(hb);
    }
    return rc;
}
