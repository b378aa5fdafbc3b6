/* fr_parts: the one table of what a pipeline checkpoint holds -- manifest, model, join, guard,
 * partition groups, merge buffer, priors, sources, counters, metrics, the pending mini-batch, the
 * helper heads -- each with how it is
 * written into a write batch and how it is read back, in the order restoring needs. Checkpoint and
 * restore both walk PARTS, so a part is never written without being read, or the other way round.
 *
 * Every part is encoded with base/fr_bytes.h (checkpoint format 3, docs/checkpoint-format.md); its
 * record format lives with its owner: the metric's in learner/fr_metrics.c, the sample's in
 * learner/fr_sample_codec.c, the guard's in stream/fr_guard_codec.c, the join's in
 * stream/fr_join_codec.c, the event-time state's in stream/fr_evtime.c, the helper heads' in
 * learner/fr_dfm.c, the model's in store/fr_ckpt_model.c; the pipeline's own (counters, sources,
 * the batch's framing) are here. Every stored value is untrusted input: each decoder checks bounds
 * and values and a refusal names the part. */
#include "fr_pipeline_int.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fr_bytes.h"
#include "fr_ckpt_history.h"
#include "fr_sample_codec.h"

/* A part stored as one blob goes through encode (its size when cap is short: called with NULL, 0
 * first) and decode (0, or -1 with the reason in err, which names the blob). A part of several
 * keys has save and load of its own instead. */
typedef struct {
    const char *name; /* the blob's name, or the part's in messages */
    size_t (*encode)(const fr_pipeline *p, void *buf, size_t cap);
    int (*decode)(fr_pipeline *p, const void *buf, size_t len, char *err, size_t errlen);
    int (*save)(fr_pipeline *p, fr_ckpt_batch *b, const char **why);
    int (*load)(fr_pipeline *p, char *err, size_t errlen);
    int (*present)(const fr_pipeline *p); /* NULL: always; else whether this pipeline has the part */
} part;

/* ---- the pipeline's own records ---------------------------------------------------------------- */

/* Counters: u64 consumed, u64 rejected[n], u64 samples_trained, u64 samples_buffered; n is the
 * blob's length / 8 - 3, so a build with more reasons reads an older blob (the new ones start at 0). */
int fr_pipeline_counters_decode(const void *buf, size_t len, fr_pipeline_counters *out)
{
    memset(out, 0, sizeof *out);
    if (!buf || len % 8 != 0 || len / 8 < 4 || len / 8 - 3 > FR_REJECT_NREASONS) return -1;
    const size_t n = len / 8 - 3;
    fr_bytes_in r = fr_bytes_in_init(buf, len);
    out->consumed = fr_in_u64le(&r);
    for (size_t i = 0; i < n; i++) out->rejected[i] = fr_in_u64le(&r);
    out->samples_trained = fr_in_u64le(&r);
    out->samples_buffered = fr_in_u64le(&r);
    /* consumed counts every message, rejected[r] those refused for reason r (never 0, "none") */
    uint64_t rejected = 0;
    if (out->rejected[FR_REJECT_NONE] != 0) return -2;
    for (int i = 0; i < FR_REJECT_NREASONS; i++)
        if (__builtin_add_overflow(rejected, out->rejected[i], &rejected)) return -2;
    return rejected <= out->consumed ? 0 : -2;
}

size_t fr_pipeline_counters_encode(const fr_pipeline_counters *c, void *buf, size_t cap)
{
    const size_t need = 8 * (3 + FR_REJECT_NREASONS);
    if (!buf || cap < need) return need;
    fr_bytes_out o = fr_bytes_out_init(buf, need);
    fr_out_u64le(&o, c->consumed);
    for (int i = 0; i < FR_REJECT_NREASONS; i++) fr_out_u64le(&o, c->rejected[i]);
    fr_out_u64le(&o, c->samples_trained);
    fr_out_u64le(&o, c->samples_buffered);
    return need;
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

/* Sources: n u16, then n times: name length u8, the name's bytes (no NUL), max_ts i64; in strictly
 * ascending name order (the order sources were met depends on which partitions delivered before a
 * restart, and the digest must not). */
size_t fr_pipeline_sources_encode(const fr_stored_source *s, size_t n, void *buf, size_t cap)
{
    size_t need = 2;
    for (size_t i = 0; i < n; i++) need += 1 + strlen(s[i].name) + 8;
    if (!buf || cap < need) return need;
    fr_bytes_out o = fr_bytes_out_init(buf, need);
    fr_out_u16le(&o, (uint16_t)n);
    for (size_t i = 0; i < n; i++) {
        const size_t len = strlen(s[i].name);
        fr_out_u8(&o, (uint8_t)len);
        unsigned char *at = fr_out_take(&o, len);
        if (at) memcpy(at, s[i].name, len);
        fr_out_u64le(&o, (uint64_t)s[i].max_ts);
    }
    return need;
}

long fr_pipeline_sources_decode(const void *buf, size_t len, fr_stored_source out[FR_MAX_SOURCES], char *why,
                                size_t whylen)
{
    fr_bytes_in r = fr_bytes_in_init(buf, len);
    const unsigned n = fr_in_u16le(&r);
    if (r.overrun || n > FR_MAX_SOURCES) {
        if (r.overrun)
            snprintf(why, whylen, "it is cut short (%zu bytes)", len);
        else
            snprintf(why, whylen, "it lists %u sources (limit %d)", n, FR_MAX_SOURCES);
        return -1;
    }
    for (unsigned i = 0; i < n; i++) {
        fr_stored_source *s = &out[i];
        memset(s, 0, sizeof *s);
        const unsigned nl = fr_in_u8(&r);
        const unsigned char *name = nl < FR_SOURCE_NAME_MAX ? fr_in_take(&r, nl) : NULL;
        s->max_ts = fr_in_i64le(&r);
        if (r.overrun || !name) {
            snprintf(why, whylen, "entry %u: %s", i,
                     !name && !r.overrun ? "a name over the limit" : "cut short");
            return -1;
        }
        if (memchr(name, '\0', nl)) {
            snprintf(why, whylen, "entry %u: the source name holds a NUL byte", i);
            return -1;
        }
        memcpy(s->name, name, nl);
        char w[256];
        if (fr_pipeline_check_source(s, w, sizeof w) != 0) {
            snprintf(why, whylen, "entry %u: %s", i, w);
            return -1;
        }
        if (i > 0 && strcmp(out[i - 1].name, s->name) >= 0) {
            snprintf(why, whylen, "it lists \"%s\" %s", s->name,
                     strcmp(out[i - 1].name, s->name) == 0 ? "twice" : "out of name order");
            return -1;
        }
    }
    if (r.left != 0) {
        snprintf(why, whylen, "%zu bytes after its %u entries", r.left, n);
        return -1;
    }
    return (long)n;
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

/* Batch: the limits record (fr_sample_codec.h), n u32, then n sample records. */
int fr_pipeline_batch_decode(const void *buf, size_t len, fr_sample *out, int cap, int n_scenarios, char *why,
                             size_t whylen)
{
    fr_bytes_in r = fr_bytes_in_init(buf, len);
    const unsigned char *lim = fr_in_take(&r, FR_SAMPLE_LIMITS_BYTES);
    const uint32_t n = fr_in_u32le(&r);
    if (r.overrun) {
        snprintf(why, whylen, "cut short (%zu bytes)", len);
        return -1;
    }
    if (fr_sample_limits_check(lim, why, whylen) != 0) return -1;
    if (n >= (uint32_t)cap) {
        snprintf(why, whylen,
                 "it holds %" PRIu32 " samples, a full mini-batch is %d (written with another batch size?)", n, cap);
        return -1;
    }
    for (uint32_t i = 0; i < n; i++) {
        const char *bad = NULL;
        long used = fr_sample_decode(&out[i], r.p, r.left, &bad);
        char w[200];
        if (used < 0) {
            snprintf(why, whylen, "sample %" PRIu32 ": %s", i, bad);
            return -1;
        }
        fr_in_take(&r, (size_t)used);
        if (fr_pipeline_check_sample(&out[i], n_scenarios, w, sizeof w) != 0) {
            snprintf(why, whylen, "sample %" PRIu32 ": %s", i, w);
            return -1;
        }
    }
    if (r.left != 0) {
        snprintf(why, whylen, "%zu bytes after its %" PRIu32 " samples", r.left, n);
        return -1;
    }
    return (int)n;
}

/* ---- blob parts --------------------------------------------------------------------------------- */

static size_t manifest_encode(const fr_pipeline *p, void *buf, size_t cap)
{
    const size_t n = strlen(p->manifest);
    if (buf && cap >= n) memcpy(buf, p->manifest, n);
    return n;
}

/* The field list first: a reordered field list also changes the model's shape, less clearly. */
static int manifest_decode(fr_pipeline *p, const void *buf, size_t len, char *err, size_t errlen)
{
    return fr_pipeline_check_schema(&p->cfg.schema, buf, len, err, errlen);
}

static size_t guard_encode(const fr_pipeline *p, void *buf, size_t cap) { return fr_guard_encode(&p->guard, buf, cap); }

static int guard_decode(fr_pipeline *p, const void *buf, size_t len, char *err, size_t errlen)
{
    char why[400];
    if (fr_guard_decode(&p->guard, buf, len, why, sizeof why) == 0) return 0;
    snprintf(err, errlen, "checkpoint corrupt: blob \"guard\": %s", why);
    return -1;
}

static size_t counters_encode(const fr_pipeline *p, void *buf, size_t cap)
{
    return fr_pipeline_counters_encode(&p->counters, buf, cap);
}

static int counters_decode(fr_pipeline *p, const void *buf, size_t len, char *err, size_t errlen)
{
    int rc = fr_pipeline_counters_decode(buf, len, &p->counters);
    if (rc == -1)
        snprintf(err, errlen, "checkpoint corrupt: blob \"counters\" has %zu bytes, not 8 x (3 + at most %d reasons)",
                 len, FR_REJECT_NREASONS);
    else if (rc == -2)
        snprintf(err, errlen, "checkpoint corrupt: blob \"counters\": more messages rejected than consumed");
    return rc == 0 ? 0 : -1;
}

/* Metrics: n u32 (tasks x (scenarios + 1)), then n metric records (fr_metrics.h), task by task. */
static size_t metrics_encode(const fr_pipeline *p, void *buf, size_t cap)
{
    size_t need = 4;
    for (size_t i = 0; i < metric_count(p); i++) need += fr_metric_encode(&p->metrics[i], NULL, 0);
    if (!buf || cap < need) return need;
    unsigned char *at = buf;
    fr_put_u32le(at, (uint32_t)metric_count(p));
    size_t off = 4;
    for (size_t i = 0; i < metric_count(p); i++) off += fr_metric_encode(&p->metrics[i], at + off, need - off);
    return need;
}

static int metrics_decode(fr_pipeline *p, const void *buf, size_t len, char *err, size_t errlen)
{
    const unsigned char *at = buf;
    if (len < 4) {
        snprintf(err, errlen, "checkpoint corrupt: blob \"metrics\" has %zu bytes, too few for its count", len);
        return -1;
    }
    if (fr_get_u32le(at) != metric_count(p)) {
        snprintf(err, errlen, "checkpoint: blob \"metrics\" holds %" PRIu32 " metrics, the configuration has %zu (3 "
                 "tasks x (scenarios + 1)): written with another scenario list",
                 fr_get_u32le(at), metric_count(p));
        return -1;
    }
    size_t off = 4;
    const int per_task = p->cfg.schema.n_scenarios + 1;
    for (size_t i = 0; i < metric_count(p); i++) {
        long used = fr_metric_decode(&p->metrics[i], at + off, len - off);
        if (used >= 0) {
            off += (size_t)used;
            continue;
        }
        const int s = (int)i % per_task;
        snprintf(err, errlen, "checkpoint corrupt: blob \"metrics\": task %s, scenario %s %s",
                 task_name((int)i / per_task), s < p->cfg.schema.n_scenarios ? p->cfg.schema.scenarios[s] : "all",
                 used == -2 ? "holds a sum that is negative or not finite"
                            : "is cut short or lists a bin out of range, out of order or empty");
        return -1;
    }
    if (off != len) {
        snprintf(err, errlen, "checkpoint corrupt: blob \"metrics\": %zu bytes after its %zu metrics", len - off,
                 metric_count(p));
        return -1;
    }
    return 0;
}

static size_t batch_encode(const fr_pipeline *p, void *buf, size_t cap)
{
    size_t need = FR_SAMPLE_LIMITS_BYTES + 4;
    for (int i = 0; i < p->batch_n; i++) need += fr_sample_encode(&p->batch[i], NULL, 0);
    if (!buf || cap < need) return need;
    unsigned char *at = buf;
    fr_sample_limits_encode(at);
    fr_put_u32le(at + FR_SAMPLE_LIMITS_BYTES, (uint32_t)p->batch_n);
    size_t off = FR_SAMPLE_LIMITS_BYTES + 4;
    for (int i = 0; i < p->batch_n; i++) off += fr_sample_encode(&p->batch[i], at + off, need - off);
    return need;
}

/* After the counters: they say how many samples the batch must hold. */
static int batch_decode(fr_pipeline *p, const void *buf, size_t len, char *err, size_t errlen)
{
    char why[400];
    int n = fr_pipeline_batch_decode(buf, len, p->batch, p->batch_cap, p->cfg.schema.n_scenarios, why, sizeof why);
    if (n < 0) {
        snprintf(err, errlen, "checkpoint corrupt: blob \"batch\" (the pending mini-batch), %s", why);
        return -1;
    }
    p->batch_n = n;
    if (p->counters.samples_buffered != (uint64_t)p->batch_n) {
        snprintf(err, errlen,
                 "checkpoint corrupt: blob \"counters\" counts %" PRIu64 " buffered samples, blob \"batch\" holds %d",
                 p->counters.samples_buffered, p->batch_n);
        return -1;
    }
    return 0;
}

static int has_heads(const fr_pipeline *p) { return p->heads != NULL; }

static size_t heads_encode(const fr_pipeline *p, void *buf, size_t cap)
{
    size_t n = fr_dfm_heads_export(p->heads, NULL, 0);
    return buf && cap >= n ? fr_dfm_heads_export(p->heads, buf, cap) : n;
}

static int heads_decode(fr_pipeline *p, const void *buf, size_t len, char *err, size_t errlen)
{
    int bad = fr_dfm_heads_import(p->heads, buf, len);
    if (bad == -2)
        snprintf(err, errlen, "checkpoint corrupt: blob \"dfm_heads\": a helper-head weight that is not finite or an "
                              "accumulator below zero");
    else if (bad)
        snprintf(err, errlen, "checkpoint: blob \"dfm_heads\" (the helper heads) written with another join.policy or "
                              "join.helper_buckets_log2");
    return bad ? -1 : 0;
}

/* ---- parts of several keys ---------------------------------------------------------------------- */

static int model_save(fr_pipeline *p, fr_ckpt_batch *b, const char **why)
{
    (void)why;
    return fr_ckpt_put_model(b, p->model);
}

static int model_load(fr_pipeline *p, char *err, size_t errlen)
{
    fr_model *m = fr_ckpt_load_model(p->ckpt, err, errlen);
    if (!m) return -1;
    char changed[512];
    if (fr_model_retune(m, &p->cfg.model, changed, sizeof changed, err, errlen) != 0) {
        fr_model_free(m);
        return -1;
    }
    if (changed[0]) fr_logf(&p->cfg.log, FR_LOG_INFO, "restored with changed training settings: %s", changed);
    fr_model_free(p->model);
    p->model = m;
    if (fr_pipeline_apply_row_policies(m, &p->cfg, err, errlen) != 0 ||
        fr_ckpt_load_admission(p->ckpt, m, err, errlen) != 0)
        return -1;
    return 0;
}

static int put_join_entry(const char *id, size_t id_len, const void *bytes, size_t len, void *ctx)
{
    return fr_ckpt_put_join_entry(ctx, id, id_len, bytes, len);
}

/* Group 0's join counters and watermark are key "K" (as before groups), group g's blob
 * "join_meta:g"; the entries of every group share family "join" (an id belongs to one group). */
static void group_meta_name(int g, char *out, size_t cap) { snprintf(out, cap, "join_meta:%d", g); }

static int join_save(fr_pipeline *p, fr_ckpt_batch *b, const char **why)
{
    for (int g = 0; g < p->cfg.partitions; g++) {
        fr_join *j = fr_groups_join(p->groups, g);
        if (fr_join_foreach_dirty(j, put_join_entry, b) != 0) {
            *why = "a join entry changed since the last checkpoint has no state in memory";
            return -1;
        }
        size_t meta_len = fr_join_export_meta(j, NULL, 0);
        char *meta = malloc(meta_len ? meta_len : 1);
        if (!meta) {
            *why = "out of memory for the join counters";
            return -1;
        }
        fr_join_export_meta(j, meta, meta_len);
        char name[32];
        group_meta_name(g, name, sizeof name);
        int rc = g == 0 ? fr_ckpt_put_join_meta(b, meta, meta_len) : fr_ckpt_put_blob(b, name, meta, meta_len);
        free(meta);
        if (rc != 0) return rc;
    }
    return 0;
}

typedef struct {
    fr_groups *groups;
    char *err;
    size_t errlen;
} join_loader;

static int load_join_entry(const char *key, size_t key_len, const void *val, size_t val_len, void *ctx)
{
    join_loader *l = ctx;
    const int g = fr_groups_partition(key, key_len, fr_groups_count(l->groups));
    return fr_join_load_entry(fr_groups_join(l->groups, g), key, key_len, val, val_len, l->err, l->errlen);
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

static int join_load(fr_pipeline *p, char *err, size_t errlen)
{
    for (int g = 0; g < p->cfg.partitions; g++) {
        fr_join *j = fr_groups_join(p->groups, g);
        size_t meta_cap = fr_join_export_meta(j, NULL, 0);
        char *meta = malloc(meta_cap);
        char name[32];
        group_meta_name(g, name, sizeof name);
        long meta_len = !meta ? -1 : g == 0 ? fr_ckpt_get_join_meta(p->ckpt, meta, meta_cap)
                                            : fr_ckpt_get_blob(p->ckpt, name, meta, meta_cap);
        /* The policy first: entries of another policy would be refused one by one, less clearly. */
        int bad_meta = 0;
        if (meta_len < 0 || (size_t)meta_len > meta_cap) {
            snprintf(err, errlen, "checkpoint corrupt: join counters (%s) of group %d missing or of another size",
                     g == 0 ? "key \"K\"" : name, g);
            bad_meta = 1;
        } else if (fr_join_check_meta(j, meta, (size_t)meta_len, err, errlen) != 0) {
            bad_meta = 1;
        } else if (fr_join_import_meta(j, meta, (size_t)meta_len) != 0) {
            snprintf(err, errlen, "checkpoint corrupt: join counters (%s) of group %d unreadable, or their counts "
                                  "break events = joined + pending + dropped", g == 0 ? "key \"K\"" : name, g);
            bad_meta = 1;
        }
        free(meta);
        if (bad_meta) return -1;
    }
    char why[400];
    why[0] = '\0';
    if (fr_ckpt_foreach_join_entry(p->ckpt, load_join_entry, &(join_loader){p->groups, why, sizeof why}) != 0) {
        snprintf(err, errlen, "checkpoint corrupt: %s", why[0] ? why : "the join entries could not be read");
        return -1;
    }
    for (int g = 0; g < p->cfg.partitions; g++)
        if (fr_join_check_pending(fr_groups_join(p->groups, g), why, sizeof why) != 0) {
            snprintf(err, errlen, "checkpoint corrupt: join group %d: %s", g, why);
            return -1;
        }
    return 0;
}

/* ---- partition groups: the partition function, the groups' event times, the merge buffer --------- */

/* Blob "partitions": u8 version (1), u16 partition count, u8 name length, the partition function's
 * name ("murmur2"). A restore under another count or function would put ids in other groups than
 * their stored entries and watermarks: refused, naming both. */
static const char PARTITION_FN[] = "murmur2";

static size_t partitions_encode(const fr_pipeline *p, void *buf, size_t cap)
{
    const size_t need = 1 + 2 + 1 + strlen(PARTITION_FN);
    if (!buf || cap < need) return need;
    fr_bytes_out o = fr_bytes_out_init(buf, need);
    fr_out_u8(&o, 1);
    fr_out_u16le(&o, (uint16_t)p->cfg.partitions);
    fr_out_u8(&o, (uint8_t)strlen(PARTITION_FN));
    unsigned char *at = fr_out_take(&o, strlen(PARTITION_FN));
    if (at) memcpy(at, PARTITION_FN, strlen(PARTITION_FN));
    return need;
}

static int partitions_decode(fr_pipeline *p, const void *buf, size_t len, char *err, size_t errlen)
{
    fr_bytes_in r = fr_bytes_in_init(buf, len);
    const unsigned v = fr_in_u8(&r), n = fr_in_u16le(&r), nl = fr_in_u8(&r);
    const unsigned char *name = fr_in_take(&r, nl);
    if (r.overrun || r.left || v != 1 || n < 1 || n > FR_GROUPS_MAX) {
        snprintf(err, errlen, "checkpoint corrupt: blob \"partitions\" is not the record this build writes");
        return -1;
    }
    if (n != (unsigned)p->cfg.partitions || nl != strlen(PARTITION_FN) || memcmp(name, PARTITION_FN, nl) != 0) {
        snprintf(err, errlen,
                 "checkpoint was written with %u partitions (function \"%.*s\"), the configuration has "
                 "join.partitions %d (function \"%s\"): the join's groups would not match its stored state; restore "
                 "the old join.partitions or start a new checkpoint.dir",
                 n, (int)nl, (const char *)name, p->cfg.partitions, PARTITION_FN);
        return -1;
    }
    return 0;
}

/* Blob "lanes": u16 n, then per source in ascending name order: name length u8, the name,
 * partitions x i64 the largest event time it delivered into each group (INT64_MIN: none). */
static size_t lanes_encode(const fr_pipeline *p, void *buf, size_t cap)
{
    const int n = p->n_sources, P = p->cfg.partitions;
    size_t need = 2;
    for (int i = 0; i < n; i++) need += 1 + strlen(p->sources[i].name) + 8 * (size_t)P;
    if (!buf || cap < need) return need;
    const source *order[FR_MAX_SOURCES];
    for (int i = 0; i < n; i++) order[i] = &p->sources[i];
    for (int i = 1; i < n; i++) /* few sources: insertion sort by name */
        for (int k = i; k > 0 && strcmp(order[k - 1]->name, order[k]->name) > 0; k--) {
            const source *t = order[k];
            order[k] = order[k - 1];
            order[k - 1] = t;
        }
    fr_bytes_out o = fr_bytes_out_init(buf, need);
    fr_out_u16le(&o, (uint16_t)n);
    for (int i = 0; i < n; i++) {
        const size_t nl = strlen(order[i]->name);
        fr_out_u8(&o, (uint8_t)nl);
        unsigned char *at = fr_out_take(&o, nl);
        if (at) memcpy(at, order[i]->name, nl);
        for (int g = 0; g < P; g++) fr_out_u64le(&o, (uint64_t)order[i]->gmax[g]);
    }
    return need;
}

/* After "sources": each lane's time is at most its source's. */
static int lanes_decode(fr_pipeline *p, const void *buf, size_t len, char *err, size_t errlen)
{
    fr_bytes_in r = fr_bytes_in_init(buf, len);
    const unsigned n = fr_in_u16le(&r);
    for (unsigned i = 0; i < n && !r.overrun; i++) {
        const unsigned nl = fr_in_u8(&r);
        const unsigned char *name = fr_in_take(&r, nl);
        char nm[FR_SOURCE_NAME_MAX];
        if (r.overrun || !name || nl >= FR_SOURCE_NAME_MAX) break;
        memcpy(nm, name, nl);
        nm[nl] = '\0';
        source *s = find_source(p, nm);
        for (int g = 0; g < p->cfg.partitions; g++) {
            const int64_t t = fr_in_i64le(&r);
            if (r.overrun) break;
            if (!s || (t != INT64_MIN && (t < 0 || t > s->max_ts))) {
                snprintf(err, errlen, "checkpoint corrupt: blob \"lanes\": source \"%.64s\" %s", nm,
                         s ? "has a group event time outside [0, its own]" : "is not in blob \"sources\"");
                return -1;
            }
            s->gmax[g] = t;
        }
    }
    if (r.overrun || r.left) {
        snprintf(err, errlen, "checkpoint corrupt: blob \"lanes\" is %s", r.overrun ? "cut short" : "too long");
        return -1;
    }
    return 0;
}

static size_t merge_encode(const fr_pipeline *p, void *buf, size_t cap)
{
    return fr_groups_export_buffer(p->groups, buf, cap);
}

/* A buffered sample: what the batch check asks, MATURED included (it never enters a batch, but it
 * goes through the merge like any other). */
static int check_merged(const fr_sample *s, char *why, size_t whylen, void *ctx)
{
    const fr_pipeline *p = ctx;
    fr_sample t = *s;
    if (t.kind == FR_SAMPLE_MATURED) t.kind = FR_SAMPLE_ATTRIBUTION;
    return fr_pipeline_check_sample(&t, p->cfg.schema.n_scenarios, why, whylen);
}

/* After the join: a buffered key must be below its group's restored watermark. */
static int merge_decode(fr_pipeline *p, const void *buf, size_t len, char *err, size_t errlen)
{
    char why[400];
    if (fr_groups_import_buffer(p->groups, buf, len, check_merged, p, why, sizeof why) == 0) return 0;
    snprintf(err, errlen, "checkpoint corrupt: blob \"merge\" (samples waiting for the other groups), %s", why);
    return -1;
}

/* The learner's priors (keys "P" + id, daemon/fr_priors.h). */
static int put_prior(const char *id, size_t id_len, const void *bytes, size_t len, void *ctx)
{
    return fr_ckpt_put_prior(ctx, id, id_len, bytes, len);
}

static int priors_save(fr_pipeline *p, fr_ckpt_batch *b, const char **why)
{
    (void)why;
    return fr_priors_foreach_dirty(p->priors, put_prior, b);
}

typedef struct {
    fr_priors *m;
    char *why;
    size_t whylen;
} prior_loader;

static int load_prior(const char *key, size_t key_len, const void *val, size_t val_len, void *ctx)
{
    prior_loader *l = ctx;
    return fr_priors_load(l->m, key, key_len, val, val_len, l->why, l->whylen);
}

static int priors_load(fr_pipeline *p, char *err, size_t errlen)
{
    char why[400];
    why[0] = '\0';
    if (fr_ckpt_foreach_prior(p->ckpt, load_prior, &(prior_loader){p->priors, why, sizeof why}) == 0) return 0;
    snprintf(err, errlen, "checkpoint corrupt: %s", why[0] ? why : "the priors (keys \"P\") could not be read");
    return -1;
}

static int stored_name_cmp(const void *a, const void *b)
{
    return strcmp(((const fr_stored_source *)a)->name, ((const fr_stored_source *)b)->name);
}

/* Every source: its next offset (key "O" + name), what identifies its content (blob "identity:" +
 * name), the largest event time it delivered (blob "sources") and its event-time state (blob
 * "evtime", stream/fr_evtime.c). */
static int sources_save(fr_pipeline *p, fr_ckpt_batch *b, const char **why)
{
    fr_stored_source stored[FR_MAX_SOURCES];
    memset(stored, 0, sizeof stored);
    int rc = 0;
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
    if (rc != 0) return rc;
    qsort(stored, (size_t)p->n_sources, sizeof *stored, stored_name_cmp);
    size_t sn = fr_pipeline_sources_encode(stored, (size_t)p->n_sources, NULL, 0);
    unsigned char *sb = malloc(sn);
    if (!sb) {
        *why = "out of memory for the sources";
        return -1;
    }
    fr_pipeline_sources_encode(stored, (size_t)p->n_sources, sb, sn);
    rc = fr_ckpt_put_blob(b, "sources", sb, sn);
    free(sb);
    if (rc != 0) return rc;
    fr_evtime_named parts[FR_MAX_SOURCES];
    for (int i = 0; i < p->n_sources; i++) parts[i] = (fr_evtime_named){p->sources[i].name, p->sources[i].et};
    size_t elen = 0;
    unsigned char *eb = fr_evtime_export_all(parts, (size_t)p->n_sources, &elen);
    if (!eb) {
        *why = "out of memory for the event-time state";
        return -1;
    }
    rc = fr_ckpt_put_blob(b, "evtime", eb, elen);
    free(eb);
    return rc;
}

static int import_source_evtime(const char *name, const void *state, size_t len, void *ctx)
{
    source *s = strlen(name) < FR_SOURCE_NAME_MAX ? add_source(ctx, name) : NULL;
    return s ? fr_evtime_import(s->et, state, len) : -1;
}

/* Reads a whole blob into a new buffer (free()); NULL with the reason in err. */
static unsigned char *get_blob(fr_pipeline *p, const char *name, size_t *len, char *err, size_t errlen)
{
    long n = fr_ckpt_get_blob(p->ckpt, name, NULL, 0);
    if (n < 0) {
        snprintf(err, errlen, "checkpoint corrupt: blob \"%s\" is missing", name);
        return NULL;
    }
    unsigned char *buf = malloc(n ? (size_t)n : 1);
    if (!buf) {
        snprintf(err, errlen, "checkpoint: out of memory reading blob \"%s\" (%ld bytes)", name, n);
        return NULL;
    }
    if (fr_ckpt_get_blob(p->ckpt, name, buf, (size_t)n) != n) {
        snprintf(err, errlen, "checkpoint: blob \"%s\" changed or could not be read", name);
        free(buf);
        return NULL;
    }
    *len = (size_t)n;
    return buf;
}

static int sources_load(fr_pipeline *p, char *err, size_t errlen)
{
    if (fr_ckpt_foreach_offset(p->ckpt, load_offset, &(offset_load){p, err, errlen}, err, errlen) != 0) return -1;
    size_t len;
    unsigned char *buf = get_blob(p, "sources", &len, err, errlen);
    if (!buf) return -1;
    fr_stored_source stored[FR_MAX_SOURCES];
    char why[320];
    long n = fr_pipeline_sources_decode(buf, len, stored, why, sizeof why);
    free(buf);
    if (n < 0) {
        snprintf(err, errlen, "checkpoint corrupt: blob \"sources\": %s", why);
        return -1;
    }
    for (long i = 0; i < n; i++) {
        source *s = add_source(p, stored[i].name);
        if (!s) {
            snprintf(err, errlen, "checkpoint corrupt: blob \"sources\" and the offsets name more than %d sources",
                     FR_MAX_SOURCES);
            return -1;
        }
        s->max_ts = stored[i].max_ts;
    }
    /* The held messages and the pace of every source. */
    buf = get_blob(p, "evtime", &len, err, errlen);
    if (!buf) return -1;
    char name[FR_SOURCE_NAME_MAX] = "";
    const char *bad = fr_evtime_walk_all(buf, len, import_source_evtime, p, name, sizeof name);
    free(buf);
    if (bad) {
        snprintf(err, errlen, "checkpoint: the event-time state (blob \"evtime\"%s%s) is %s",
                 name[0] ? ", source " : "", name, bad);
        return -1;
    }
    for (int i = 0; i < p->n_sources; i++) {
        source *s = &p->sources[i];
        char bn[FR_SOURCE_NAME_MAX + 16];
        identity_blob_name(s, bn, sizeof bn);
        long ilen = fr_ckpt_get_blob(p->ckpt, bn, s->identity, sizeof s->identity);
        s->identity_len = ilen < 0 ? -1 : ilen > FR_SOURCE_IDENTITY_MAX ? FR_SOURCE_IDENTITY_MAX + 1 : (int)ilen;
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

/* The metrics over event time (store/fr_ckpt_history.c): the buckets closed since the last
 * checkpoint, the deletions of those retention drops, the open bucket. A checkpoint from before the
 * history holds none of it: the history then starts at the restore. After "metrics", whose layout
 * the open bucket shares. */
static int history_save(fr_pipeline *p, fr_ckpt_batch *b, const char **why)
{
    (void)why;
    return fr_ckpt_put_history(b, p->history);
}

static int history_load(fr_pipeline *p, char *err, size_t errlen)
{
    int rc = fr_ckpt_load_history(p->ckpt, p->history, err, errlen);
    if (rc == 0)
        fr_logf(&p->cfg.log, FR_LOG_INFO, "the checkpoint holds no history of the metrics (written before it "
                                          "existed): `freshet report` shows them from this run on");
    return rc < 0 ? -1 : 0;
}

/* ---- the table ---------------------------------------------------------------------------------- */

/* In the order restoring needs: the manifest before the model (a reordered field list also changes
 * the model's shape, less clearly), the counters before the batch they count. */
static const part PARTS[] = {
    {.name = "manifest", .encode = manifest_encode, .decode = manifest_decode},
    {.name = "partitions", .encode = partitions_encode, .decode = partitions_decode},
    {.name = "model", .save = model_save, .load = model_load},
    {.name = "join", .save = join_save, .load = join_load},
    {.name = "merge", .encode = merge_encode, .decode = merge_decode},
    {.name = "priors", .save = priors_save, .load = priors_load},
    {.name = "guard", .encode = guard_encode, .decode = guard_decode},
    {.name = "sources", .save = sources_save, .load = sources_load},
    {.name = "lanes", .encode = lanes_encode, .decode = lanes_decode},
    {.name = "counters", .encode = counters_encode, .decode = counters_decode},
    {.name = "metrics", .encode = metrics_encode, .decode = metrics_decode},
    {.name = "history", .save = history_save, .load = history_load},
    {.name = "batch", .encode = batch_encode, .decode = batch_decode},
    {.name = "dfm_heads", .encode = heads_encode, .decode = heads_decode, .present = has_heads},
};

int fr_parts_save(fr_pipeline *p, fr_ckpt_batch *b, char *why, size_t whylen)
{
    why[0] = '\0';
    for (size_t i = 0; i < sizeof PARTS / sizeof PARTS[0]; i++) {
        const part *pt = &PARTS[i];
        if (pt->present && !pt->present(p)) continue;
        if (pt->save) {
            const char *cause = NULL;
            if (pt->save(p, b, &cause) == 0) continue;
            if (cause) snprintf(why, whylen, "%s", cause);
            return -1;
        }
        size_t n = pt->encode(p, NULL, 0);
        unsigned char *buf = malloc(n ? n : 1);
        if (!buf) {
            snprintf(why, whylen, "out of memory encoding blob \"%s\" (%zu bytes)", pt->name, n);
            return -1;
        }
        pt->encode(p, buf, n);
        int rc = fr_ckpt_put_blob(b, pt->name, buf, n);
        free(buf);
        if (rc != 0) return -1;
    }
    return 0;
}

int fr_parts_restore(fr_pipeline *p, char *err, size_t errlen)
{
    /* Before partition groups the join entries held the learner's prior (entry format 1) and there
     * was one watermark: not migrated, refused by name rather than as a missing blob. */
    if (fr_ckpt_get_blob(p->ckpt, "partitions", NULL, 0) < 0) {
        snprintf(err, errlen, "checkpoint was written before partition groups (no blob \"partitions\"; its join "
                              "entries hold the learner's prior): replay the input log into a new checkpoint.dir, or "
                              "keep running the build that wrote it");
        return -1;
    }
    for (size_t i = 0; i < sizeof PARTS / sizeof PARTS[0]; i++) {
        const part *pt = &PARTS[i];
        if (pt->present && !pt->present(p)) continue;
        if (pt->load) {
            if (pt->load(p, err, errlen) != 0) return -1;
            continue;
        }
        size_t len;
        unsigned char *buf = get_blob(p, pt->name, &len, err, errlen);
        if (!buf) return -1;
        int rc = pt->decode(p, buf, len, err, errlen);
        free(buf);
        if (rc != 0) return -1;
    }
    return 0;
}
