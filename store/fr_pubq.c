/* fr_pubq: see fr_pubq.h. */
#include "fr_pubq.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fr_publish.h"
#include "fr_redis_layout.h"

enum { RETRY_MS = 1000, MAX_DIM = 1024 };

/* A row version that no row carries (versions count mini-batches): marks an entry of a rowset as
 * a deletion. A deletion and a later write of the same row overwrite each other like two writes,
 * so the set always holds the row's last state. */
#define DELETED UINT64_MAX
static const float NO_WEIGHTS[MAX_DIM];

/* ---- a set of rows keyed by (table, key): one entry per row, later puts overwrite ----------- */

typedef struct {
    int dim;
    size_t n, cap;
    uint32_t *tab;
    uint64_t *key;
    uint64_t *ver;
    float *w;        /* n x dim */
    size_t nslots;   /* power of two, or 0 */
    uint32_t *slots; /* entry index + 1; 0 = empty */
} rowset;

static size_t slot_of(const rowset *s, uint32_t table, uint64_t key)
{
    uint64_t h = (key ^ ((uint64_t)table * 0xD6E8FEB86659FD93ULL)) * 0x9E3779B97F4A7C15ULL;
    return (size_t)(h >> 17) & (s->nslots - 1);
}

static int rowset_grow_slots(rowset *s)
{
    size_t ns = s->nslots ? s->nslots * 2 : 1024;
    uint32_t *sl = calloc(ns, sizeof *sl);
    if (!sl) return -1;
    free(s->slots);
    s->slots = sl;
    s->nslots = ns;
    for (size_t i = 0; i < s->n; i++) {
        size_t j = slot_of(s, s->tab[i], s->key[i]);
        while (s->slots[j]) j = (j + 1) & (ns - 1);
        s->slots[j] = (uint32_t)(i + 1);
    }
    return 0;
}

static int rowset_grow_entries(rowset *s)
{
    size_t nc = s->cap ? s->cap * 2 : 256;
    uint32_t *tab = realloc(s->tab, nc * sizeof *tab);
    if (tab) s->tab = tab;
    uint64_t *key = realloc(s->key, nc * sizeof *key);
    if (key) s->key = key;
    uint64_t *ver = realloc(s->ver, nc * sizeof *ver);
    if (ver) s->ver = ver;
    float *w = realloc(s->w, nc * (size_t)s->dim * sizeof *w);
    if (w) s->w = w;
    if (!tab || !key || !ver || !w) return -1;
    s->cap = nc;
    return 0;
}

/* Inserts or (overwrite = 1) replaces a row. 0, or -1 out of memory. */
static int rowset_put(rowset *s, uint32_t table, uint64_t key, uint64_t ver, const float *w, int overwrite)
{
    if ((s->n + 1) * 2 > s->nslots && rowset_grow_slots(s) != 0) return -1;
    size_t j = slot_of(s, table, key);
    while (s->slots[j]) {
        size_t i = s->slots[j] - 1;
        if (s->key[i] == key && s->tab[i] == table) {
            if (overwrite) {
                s->ver[i] = ver;
                memcpy(s->w + i * (size_t)s->dim, w, (size_t)s->dim * sizeof *w);
            }
            return 0;
        }
        j = (j + 1) & (s->nslots - 1);
    }
    if (s->n == s->cap && rowset_grow_entries(s) != 0) return -1;
    size_t i = s->n++;
    s->tab[i] = table;
    s->key[i] = key;
    s->ver[i] = ver;
    memcpy(s->w + i * (size_t)s->dim, w, (size_t)s->dim * sizeof *w);
    s->slots[j] = (uint32_t)(i + 1);
    return 0;
}

/* Entry index of (table, key), or -1. */
static int64_t rowset_find(const rowset *s, uint32_t table, uint64_t key)
{
    if (!s->nslots) return -1;
    for (size_t j = slot_of(s, table, key); s->slots[j]; j = (j + 1) & (s->nslots - 1)) {
        size_t i = s->slots[j] - 1;
        if (s->key[i] == key && s->tab[i] == table) return (int64_t)i;
    }
    return -1;
}

static void rowset_clear(rowset *s)
{
    if (s->n && s->slots) memset(s->slots, 0, s->nslots * sizeof *s->slots);
    s->n = 0;
}

static void rowset_free(rowset *s)
{
    free(s->tab);
    free(s->key);
    free(s->ver);
    free(s->w);
    free(s->slots);
    memset(s, 0, sizeof *s);
}

/* ---- snapshots ------------------------------------------------------------------------------ */

typedef struct {
    rowset rows;
    float *dense;
    size_t *counts;
    uint64_t version;
    int has;      /* something to push */
    int complete; /* rows hold every row of the model */
} snapshot;

struct fr_pubq {
    /* fixed at open */
    char *host;
    int port;
    char *prefix;
    char *writer; /* NULL: no lease */
    int keep;
    char *manifest;
    const fr_policy *policy; /* static table row (fr_policy.h), or NULL */
    fr_log log;
    fr_model *shape; /* the configuration's layout; no rows */
    size_t dense_count;
    uint32_t ntab;

    pthread_t thread;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t wake; /* to the worker: a submission, or stop */
    pthread_cond_t idle; /* to flush: a push ended */
    /* under mu */
    snapshot pend;
    int busy;       /* the worker is pushing `work` */
    int wants_full;
    int stop;
    int last_failed;
    int retry_now;     /* a flush asks the worker not to wait out its retry delay */
    uint64_t attempts; /* pushes tried */
    fr_pubq_stats st;

    /* the worker's own */
    snapshot work;
    fr_publisher *pub;
};

static int snapshot_init(snapshot *s, int dim, size_t dense_count, uint32_t ntab)
{
    memset(s, 0, sizeof *s);
    s->rows.dim = dim;
    s->dense = calloc(dense_count ? dense_count : 1, sizeof *s->dense);
    s->counts = calloc(ntab ? ntab : 1, sizeof *s->counts);
    return s->dense && s->counts ? 0 : -1;
}

static void snapshot_free(snapshot *s)
{
    rowset_free(&s->rows);
    free(s->dense);
    free(s->counts);
}

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static struct timespec deadline_in(double seconds)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    double t = (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9 + seconds;
    ts.tv_sec = (time_t)t;
    ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
    if (ts.tv_nsec >= 1000000000L) ts.tv_nsec = 999999999L;
    return ts;
}

static int work_foreach(void *ctx, int all, fr_row_fn fn, void *fn_ctx)
{
    (void)all; /* the set holds exactly what is to be written: every row when complete */
    const snapshot *s = ctx;
    fr_row_view v = {.dim = s->rows.dim};
    for (size_t i = 0; i < s->rows.n; i++) {
        if (s->rows.ver[i] == DELETED) continue;
        v.table = s->rows.tab[i];
        v.key = s->rows.key[i];
        v.version = s->rows.ver[i];
        v.weights = s->rows.w + i * (size_t)s->rows.dim;
        int rc = fn(&v, fn_ctx);
        if (rc) return rc;
    }
    return 0;
}

static int work_foreach_deleted(void *ctx, fr_deleted_fn fn, void *fn_ctx)
{
    const snapshot *s = ctx;
    for (size_t i = 0; i < s->rows.n; i++) {
        if (s->rows.ver[i] != DELETED) continue;
        int rc = fn(s->rows.tab[i], s->rows.key[i], fn_ctx);
        if (rc) return rc;
    }
    return 0;
}

static int work_has_row(void *ctx, uint32_t table, uint64_t key)
{
    const snapshot *s = ctx;
    int64_t i = rowset_find(&s->rows, table, key);
    return i >= 0 && s->rows.ver[i] != DELETED;
}

/* One push of q->work, without the lock. 0, FR_PUBLISH_NEED_FULL or -1. */
static int push_work(fr_pubq *q, uint64_t *version, char *err, size_t errlen)
{
    if (!q->pub) {
        q->pub = fr_publish_open(q->host, q->port, q->prefix, q->keep, q->writer, err, errlen);
        if (!q->pub) return -1;
        fr_publish_set_log(q->pub, &q->log);
    }
    fr_publish_source src = {.shape = q->shape,
                             .dense = q->work.dense,
                             .version = q->work.version,
                             .row_counts = q->work.counts,
                             .complete = q->work.complete,
                             .foreach_row = work_foreach,
                             .foreach_deleted = work_foreach_deleted,
                             .has_row = q->work.complete ? work_has_row : NULL,
                             .ctx = &q->work};
    fr_publish_info info = {.manifest_json = q->manifest, .policy = q->policy};
    return fr_publish_push_source(q->pub, &src, &info, version, err, errlen);
}

/* After a failed push: the work's rows go back under the pending ones (pending values are newer). */
static int merge_back(fr_pubq *q)
{
    snapshot *p = &q->pend, *w = &q->work;
    int rc = 0;
    for (size_t i = 0; i < w->rows.n && rc == 0; i++)
        rc = rowset_put(&p->rows, w->rows.tab[i], w->rows.key[i], w->rows.ver[i], w->rows.w + i * (size_t)w->rows.dim,
                        0);
    if (!p->has) {
        memcpy(p->dense, w->dense, q->dense_count * sizeof *p->dense);
        memcpy(p->counts, w->counts, q->ntab * sizeof *p->counts);
        p->version = w->version;
    }
    p->has = 1;
    p->complete |= w->complete;
    rowset_clear(&w->rows);
    w->has = w->complete = 0;
    if (rc != 0) {
        /* out of memory: the rows cannot be kept; ask the learner for every row instead */
        p->complete = 0;
        q->wants_full = 1;
    }
    return rc;
}

static int pushable(const fr_pubq *q) { return q->pend.has && (q->pend.complete || !q->wants_full); }

static void *worker(void *arg)
{
    fr_pubq *q = arg;
    pthread_mutex_lock(&q->mu);
    for (;;) {
        while (!q->stop && !pushable(q)) pthread_cond_wait(&q->wake, &q->mu);
        if (!pushable(q)) break; /* stopping with nothing that can be pushed */
        /* take the pending snapshot; new submissions start a fresh one */
        snapshot t = q->work;
        q->work = q->pend;
        q->pend = t;
        q->pend.has = q->pend.complete = 0;
        q->busy = 1;
        pthread_mutex_unlock(&q->mu);

        char err[512];
        uint64_t v = 0;
        double t0 = mono_now();
        int rc = push_work(q, &v, err, sizeof err);
        size_t rows = q->work.rows.n;
        int full = q->work.complete;

        fr_publish_stats ps = {0};
        if (q->pub) fr_publish_last_stats(q->pub, &ps);
        uint64_t held = q->pub ? fr_publish_held_version(q->pub) : 0;

        pthread_mutex_lock(&q->mu);
        q->busy = 0;
        q->attempts++;
        if (rc == 0) {
            rowset_clear(&q->work.rows);
            q->work.has = q->work.complete = 0;
            rows = ps.rows; /* what the push wrote, not what the snapshot held */
            if (ps.unchanged) {
                q->st.unchanged++;
            } else {
                q->st.pushes++;
                q->st.last_version = v;
                q->st.last_rows = rows;
            }
            if (full) q->wants_full = 0;
            if (q->last_failed || q->st.held)
                fr_logf(&q->log, FR_LOG_INFO, "publishing again (version %" PRIu64 ", %zu rows%s, %.2f s)", v, rows,
                        full ? ", every row" : "", mono_now() - t0);
            q->last_failed = 0;
            q->st.held = 0;
            q->st.held_version = 0;
        } else if (rc == FR_PUBLISH_HELD) {
            /* the operator's decision: keep everything, look again in a second; no reconnect was involved */
            merge_back(q);
            if (!q->st.held) fr_logf(&q->log, FR_LOG_WARN, "publishing held: %s", err);
            q->st.held = 1;
            q->st.held_version = held;
            snprintf(q->st.last_error, sizeof q->st.last_error, "%s", err);
        } else {
            merge_back(q);
            /* Any failure may mean a reconnect, and a reconnect needs every row: ask for them now,
             * so the push that follows Redis' return is complete and immediate. */
            q->wants_full = 1;
            if (rc != FR_PUBLISH_NEED_FULL) {
                q->st.failures++;
                snprintf(q->st.last_error, sizeof q->st.last_error, "%s", err);
                if (!q->last_failed) fr_logf(&q->log, FR_LOG_ERROR, "publish failed, will retry: %s", err);
                q->last_failed = 1;
            }
        }
        pthread_cond_broadcast(&q->idle);
        if (rc != 0 && rc != FR_PUBLISH_NEED_FULL) {
            if (q->stop) break; /* the final attempt failed: the checkpoint has it all */
            struct timespec dl = deadline_in(RETRY_MS / 1000.0);
            while (!q->stop && !q->retry_now && pthread_cond_timedwait(&q->wake, &q->mu, &dl) != ETIMEDOUT) {
            }
            q->retry_now = 0;
        }
    }
    pthread_cond_broadcast(&q->idle);
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

fr_pubq *fr_pubq_open(const char *host, int port, const char *prefix, int keep_versions, const char *writer_id,
                      const fr_model_config *cfg, const fr_publish_info *info, const fr_log *log, char *err, size_t errlen)
{
    const char *manifest_json = info ? info->manifest_json : NULL;
    if (!host || !host[0] || keep_versions < 1) {
        snprintf(err, errlen, "publish: no redis host, or keep_versions < 1");
        return NULL;
    }
    /* refused now, not by every push of a thread that would retry it forever */
    if (fr_redis_check_prefix(prefix, err, errlen) != 0) return NULL;
    fr_pubq *q = calloc(1, sizeof *q);
    if (!q) {
        snprintf(err, errlen, "publish: out of memory");
        return NULL;
    }
    q->port = port;
    q->keep = keep_versions;
    if (log) q->log = *log;
    q->wants_full = 1; /* the first push of a process writes every row */
    q->host = strdup(host);
    q->prefix = strdup(prefix);
    q->writer = writer_id ? strdup(writer_id) : NULL;
    q->manifest = manifest_json ? strdup(manifest_json) : NULL;
    q->policy = info ? info->policy : NULL;
    q->shape = fr_model_create_weights_only(cfg, err, errlen);
    if (!q->shape) goto fail;
    q->dense_count = fr_model_dense_count(q->shape);
    q->ntab = fr_model_table_count(q->shape);
    if (!q->host || !q->prefix || (writer_id && !q->writer) || (manifest_json && !q->manifest) ||
        snapshot_init(&q->pend, cfg->emb_dim, q->dense_count, q->ntab) != 0 ||
        snapshot_init(&q->work, cfg->emb_dim, q->dense_count, q->ntab) != 0) {
        snprintf(err, errlen, "publish: out of memory");
        goto fail;
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->wake, &ca);
    pthread_cond_init(&q->idle, &ca);
    pthread_condattr_destroy(&ca);
    int rc = pthread_create(&q->thread, NULL, worker, q);
    if (rc != 0) {
        snprintf(err, errlen, "publish: cannot start the publisher thread: %s", strerror(rc));
        pthread_cond_destroy(&q->wake);
        pthread_cond_destroy(&q->idle);
        pthread_mutex_destroy(&q->mu);
        goto fail;
    }
    q->started = 1;
    return q;
fail:
    snapshot_free(&q->pend);
    snapshot_free(&q->work);
    fr_model_free(q->shape);
    free(q->host);
    free(q->prefix);
    free(q->writer);
    free(q->manifest);
    free(q);
    return NULL;
}

int fr_pubq_flush(fr_pubq *q, double timeout_seconds)
{
    struct timespec dl = deadline_in(timeout_seconds);
    pthread_mutex_lock(&q->mu);
    /* A hold lasts until an operator lifts it: waiting for it would only run out the clock. Held,
     * the flush asks for one attempt now and returns after it, held or (released) pushed. */
    uint64_t seen = q->attempts;
    if (q->st.held) {
        q->retry_now = 1;
        pthread_cond_broadcast(&q->wake);
    }
    while ((q->busy || (pushable(q) && (!q->st.held || q->attempts == seen))) &&
           pthread_cond_timedwait(&q->idle, &q->mu, &dl) != ETIMEDOUT) {
    }
    int rc = !q->busy && !q->pend.has && !q->last_failed && !q->st.held ? 0 : -1;
    pthread_mutex_unlock(&q->mu);
    return rc;
}

void fr_pubq_close(fr_pubq *q, double timeout_seconds)
{
    if (!q) return;
    if (q->started) {
        if (timeout_seconds > 0) fr_pubq_flush(q, timeout_seconds);
        pthread_mutex_lock(&q->mu);
        q->stop = 1;
        pthread_cond_broadcast(&q->wake);
        pthread_mutex_unlock(&q->mu);
        pthread_join(q->thread, NULL);
        pthread_cond_destroy(&q->wake);
        pthread_cond_destroy(&q->idle);
        pthread_mutex_destroy(&q->mu);
    }
    fr_publish_close(q->pub);
    snapshot_free(&q->pend);
    snapshot_free(&q->work);
    fr_model_free(q->shape);
    free(q->host);
    free(q->prefix);
    free(q->writer);
    free(q->manifest);
    free(q);
}

typedef struct {
    rowset *rows;
    int failed;
} copy_ctx;

static int copy_row(const fr_row_view *row, void *ctx)
{
    copy_ctx *c = ctx;
    if (rowset_put(c->rows, row->table, row->key, row->version, row->weights, 1) != 0) {
        c->failed = 1;
        return -1;
    }
    return 0;
}

static int copy_deleted(uint32_t table, uint64_t key, void *ctx)
{
    copy_ctx *c = ctx;
    if (rowset_put(c->rows, table, key, DELETED, NO_WEIGHTS, 1) != 0) {
        c->failed = 1;
        return -1;
    }
    return 0;
}

int fr_pubq_submit(fr_pubq *q, fr_model *m, char *err, size_t errlen)
{
    if (fr_model_dense_count(m) != q->dense_count || fr_model_table_count(m) != q->ntab ||
        fr_model_get_config(m)->emb_dim != q->pend.rows.dim || q->pend.rows.dim > MAX_DIM) {
        snprintf(err, errlen, "publish: the model's shape differs from the publisher's configuration");
        return -1;
    }
    pthread_mutex_lock(&q->mu);
    int all = q->wants_full && !q->pend.complete;
    copy_ctx c = {.rows = &q->pend.rows};
    /* deletions before rows: a row deleted and created again since the last hand-over is written */
    fr_model_foreach_deleted(m, FR_DIRTY_PUBLISH, copy_deleted, &c);
    if (!c.failed) fr_model_foreach_row(m, all ? 0 : FR_DIRTY_PUBLISH, copy_row, &c);
    if (c.failed) {
        /* the rows copied so far are newer values and stay; the marks stay too (retried next time) */
        pthread_mutex_unlock(&q->mu);
        snprintf(err, errlen, "publish: out of memory copying %s rows for the publisher", all ? "every" : "the changed");
        return -1;
    }
    memcpy(q->pend.dense, fr_model_dense_params(m), q->dense_count * sizeof *q->pend.dense);
    for (uint32_t t = 0; t < q->ntab; t++) q->pend.counts[t] = fr_model_row_count(m, t);
    q->pend.version = fr_model_version(m);
    if (q->pend.has) q->st.merged++;
    q->pend.has = 1;
    if (all) {
        q->pend.complete = 1;
        q->st.full_snapshots++;
    }
    q->st.submitted++;
    pthread_cond_broadcast(&q->wake);
    pthread_mutex_unlock(&q->mu);
    fr_model_clear_dirty(m, FR_DIRTY_PUBLISH);
    return 0;
}

void fr_pubq_get_stats(fr_pubq *q, fr_pubq_stats *st)
{
    pthread_mutex_lock(&q->mu);
    *st = q->st;
    st->pending_rows = q->pend.rows.n + q->work.rows.n;
    st->wants_full = q->wants_full;
    pthread_mutex_unlock(&q->mu);
}
