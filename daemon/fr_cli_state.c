/* fr_cli_state: the commands that read or change stored state -- `freshet inspect` (a checkpoint),
 * `freshet verify` (Redis against the checkpoint) and `freshet rollback` (the active version). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fr_admit.h"
#include "fr_bytes.h"
#include "fr_ckpt.h"
#include "fr_ckpt_history.h"
#include "fr_cli_int.h"
#include "fr_join.h"
#include "fr_manifest.h"
#include "fr_pipeline.h"
#include "fr_publish.h"
#include "fr_verify.h"

/* ---- inspect ------------------------------------------------------------------------------ */

static int print_offset(const char *source, int64_t next_offset, void *ctx)
{
    (void)ctx;
    printf("offset %s next=%" PRId64 "\n", source, next_offset);
    return 0;
}

static int count_zero_weights(const fr_row_view *r, void *ctx)
{
    uint64_t *c = ctx;
    c[0] += (uint64_t)r->dim;
    for (int i = 0; i < r->dim; i++) c[1] += r->weights[i] == 0.0f;
    return 0;
}

static int count_record(const fr_history_record *r, void *ctx)
{
    (void)r;
    ++*(size_t *)ctx;
    return 0;
}

/* The metrics' history (what `freshet report` draws): buckets closed, kept, the open one. Absent in
 * a checkpoint from before it: nothing printed. 0, or -1 after naming the part that is unreadable. */
static int print_history(fr_ckpt *ck)
{
    unsigned char n[4];
    if (fr_ckpt_get_blob(ck, "history", NULL, 0) < 0 || fr_ckpt_get_blob(ck, "metrics", n, sizeof n) < 4) return 0;
    fr_history *h = fr_history_create(fr_get_u32le(n), 3600000, 1);
    char err[512] = "the blob \"metrics\" counts no metrics";
    size_t kept = 0;
    int ok = h && fr_ckpt_load_history(ck, h, err, sizeof err) == 1 &&
             fr_ckpt_foreach_history(ck, count_record, &kept, err, sizeof err) == 0;
    if (ok)
        printf("history closed=%" PRIu64 " kept=%zu open=%s bucket_ms=%" PRId64 "\n", fr_history_closed(h), kept,
               fr_history_open_start(h) == INT64_MIN ? "no" : "yes", fr_history_open_width(h));
    else
        fprintf(stderr, "freshet inspect: %s\n", err);
    fr_history_free(h);
    return ok ? 0 : -1;
}

int fr_cli_cmd_inspect(const fr_cli_args *a)
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
    fr_manifest_table_names(ml >= 0 && ml < (long)sizeof manifest ? manifest : NULL, mc->n_cat, mc->n_multi, names);
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
            uint32_t wl = fr_get_u32le(w);
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
    if (print_history(ck) != 0) rc = 1;
    /* The join's partition groups (blob "partitions"; absent: one group): group 0's counters are key
     * "K", group g's blob "join_meta:g"; the line sums them, the watermark is the smallest. */
    unsigned char pb[64];
    long pl = fr_ckpt_get_blob(ck, "partitions", pb, sizeof pb);
    int groups = pl >= 3 && pl <= (long)sizeof pb ? pb[1] | pb[2] << 8 : 1;
    if (pl >= 4 && pl <= (long)sizeof pb && 4 + (long)pb[3] == pl)
        printf("partitions=%d function=%.*s\n", groups, (int)pb[3], (const char *)pb + 4);
    fr_join_config jc = {0};
    fr_join *j = fr_join_create(&jc);
    size_t cap = j ? fr_join_export_meta(j, NULL, 0) : 0;
    char *meta = cap ? malloc(cap) : NULL;
    fr_join_counters sum;
    memset(&sum, 0, sizeof sum);
    int64_t wm = INT64_MAX;
    long len = -1;
    int g = 0;
    for (; g < groups; g++) {
        char name[32];
        snprintf(name, sizeof name, "join_meta:%d", g);
        fr_join_free(j);
        j = fr_join_create(&jc);
        len = !meta || !j ? -1 : g == 0 ? fr_ckpt_get_join_meta(ck, meta, cap) : fr_ckpt_get_blob(ck, name, meta, cap);
        if (len < 0 || (size_t)len > cap || fr_join_import_meta(j, meta, (size_t)len) != 0) break;
        const uint64_t *c = (const uint64_t *)fr_join_get_counters(j);
        for (size_t k = 0; k < sizeof sum / sizeof(uint64_t); k++) ((uint64_t *)&sum)[k] += c[k];
        if (fr_join_watermark(j) < wm) wm = fr_join_watermark(j);
    }
    if (g == groups) {
        const fr_join_counters *jcnt = &sum;
        printf("watermark=%" PRId64 " pending impressions=%" PRIu64 " clicks=%" PRIu64 " conversions=%" PRIu64 "\n",
               wm, jcnt->pending[FR_EV_IMPRESSION], jcnt->pending[FR_EV_CLICK],
               jcnt->pending[FR_EV_CONVERSION]);
        printf("samples emitted click_window=%" PRIu64 " attribution=%" PRIu64 "\n",
               jcnt->emitted[FR_SAMPLE_CLICK_WINDOW], jcnt->emitted[FR_SAMPLE_ATTRIBUTION]);
    } else {
        char what[48];
        snprintf(what, sizeof what, g == 0 ? "key \"K\"" : "blob \"join_meta:%d\"", g);
        fprintf(stderr, "freshet inspect: checkpoint: join counters (%s) %s\n", what,
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

/* ---- rollback ------------------------------------------------------------------------------ */

int fr_cli_cmd_rollback(const fr_cli_args *a)
{
    /* digits only: strtoull would skip blanks and take "-3" as 2^64 - 3 */
    unsigned long long to = 0;
    if (a->to) {
        char *end = (char *)a->to;
        errno = 0;
        to = a->to[0] >= '0' && a->to[0] <= '9' ? strtoull(a->to, &end, 10) : 0;
        if (errno || to == 0 || *end) {
            fprintf(stderr, "freshet: --to expects a version number (> 0), got \"%s\"\n", a->to);
            return 2;
        }
    }
    fr_config c;
    if (fr_cli_load_config(a, &c) != 0) return 2;
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
    if (fr_publish_rollback(c.redis_host, c.redis_port, c.redis_prefix, (uint64_t)to, &from, &now, err,
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

int fr_cli_cmd_verify(const fr_cli_args *a)
{
    fr_config c;
    if (fr_cli_load_config(a, &c) != 0) return 2;
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
