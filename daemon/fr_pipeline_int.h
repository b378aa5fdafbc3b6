/* fr_pipeline_int.h: the pipeline's private state, shared by the files of the pipeline only
 * (daemon/fr_pipeline.c: the loop; daemon/fr_parts.c: the one table of what a checkpoint holds,
 * written and restored from it; daemon/fr_report.c: the status line, the reports and the
 * Prometheus text). Nothing outside them includes it: everything else goes through fr_pipeline.h. */
#ifndef FR_PIPELINE_INT_H
#define FR_PIPELINE_INT_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fr_ckpt.h"
#include "fr_dfm.h"
#include "fr_evtime.h"
#include "fr_history.h"
#include "fr_sampleout.h"
#include "fr_groups.h"
#include "fr_pipeline.h"
#include "fr_policy.h"
#include "fr_priors.h"
#include "fr_pubq.h"

typedef struct {
    char name[FR_SOURCE_NAME_MAX];
    int64_t next_offset;  /* -1: never read */
    int64_t max_ts;       /* INT64_MIN: delivered nothing yet */
    int registered;       /* only registered sources hold the watermark */
    int idle;
    int identity_len;     /* -1: none */
    unsigned char identity[FR_SOURCE_IDENTITY_MAX + 1];
    fr_evtime *et;        /* which of its events may move its event time (checkpointed as "evtime") */
    fr_event_format format; /* how its messages are encoded (its topic's; JSON by default); not checkpointed */
    int group;            /* the join group it holds back (a bound Kafka partition), -1: every group */
    int64_t *gmax;        /* per group, the largest event time it delivered (blob "lanes") */
} source;

struct fr_pipeline {
    fr_config cfg;
    fr_model *model;
    fr_groups *groups;     /* the join, one fr_join per partition group, and the merge of their samples */
    fr_priors *priors;     /* the learner's prior per pending clicked impression (keys "P") */
    int64_t *gw;           /* per group: the watermark its sources allow, INT64_MIN: none yet */
    int *gholding;         /* per group: 1 when a registered source that is not idle holds it */
    const fr_policy *policy; /* join.policy: the copies' weights, the helper heads, what serving returns */
    fr_dfm_heads *heads;   /* helper heads f_dp, f_rn when the policy uses them, else NULL */
    fr_dfm_limits dfm_limits;
    fr_ckpt *ckpt;
    fr_pubq *pub;          /* the publisher thread (NULL: not publishing) */
    fr_pipeline_reject_fn on_reject; /* the dead-letter copy (fr_kafka), or NULL */
    void *on_reject_ctx;
    char *manifest;

    source sources[FR_MAX_SOURCES];
    int n_sources;

    fr_sample *batch;      /* emitted samples waiting for a full mini-batch */
    int batch_n;
    int batch_cap;
    float (*preds)[FR_NTASKS];
    uint64_t batches_trained; /* in this process (the samples record's step) */
    fr_sampleout *samples_out; /* replay --samples-out (borrowed), or NULL */
    uint64_t *batch_key;   /* with samples_out: each batch slot's impression key */

    fr_metric *metrics;    /* [task][scenario], scenario n_scenarios = all */
    fr_history *history;   /* the metrics over event time (checkpointed as blobs "history*") */
    fr_pipeline_counters counters;

    fr_guard guard;        /* label-collapse guard state (checkpointed as the blob "guard") */
    uint64_t early_checkpoints; /* checkpoints taken because the join held too many entries */
    uint64_t publishes_withheld; /* checkpoints not followed by a publish: the guard was paused */
    int publish_finished;        /* fr_pipeline_finish_publishing waited already: closing does not wait again */
    int failed;            /* a spilled join entry could not be read back: stop consuming */
    char failure[320];

    uint64_t checkpoints;       /* written by this process */
    double last_ckpt_seconds;   /* how long the last one took (assemble + commit), wall time */
    double last_ckpt_wall;
    uint64_t samples_at_last_ckpt;
    uint64_t consumed_at_last_ckpt;
    double last_status_wall;
    uint64_t last_status_consumed;
    uint64_t last_status_samples;
};

static inline double wall_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* The index of a metric in p->metrics (and in the history's open bucket); scenario -1 = all. */
static inline int metric_index(const fr_pipeline *p, int task, int scenario)
{
    int s = scenario < 0 ? p->cfg.schema.n_scenarios : scenario;
    return task * (p->cfg.schema.n_scenarios + 1) + s;
}

static inline fr_metric *metric_at(const fr_pipeline *p, int task, int scenario)
{
    return &p->metrics[metric_index(p, task, scenario)];
}

static inline const char *task_name(int t)
{
    static const char *const names[FR_NTASKS] = {"ctr", "cvr", "ctcvr"};
    return names[t];
}

static inline size_t metric_count(const fr_pipeline *p) { return (size_t)FR_NTASKS * (size_t)(p->cfg.schema.n_scenarios + 1); }

static inline source *find_source(fr_pipeline *p, const char *name)
{
    for (int i = 0; i < p->n_sources; i++)
        if (strcmp(p->sources[i].name, name) == 0) return &p->sources[i];
    return NULL;
}

static inline source *add_source(fr_pipeline *p, const char *name)
{
    source *s = find_source(p, name);
    if (s) return s;
    if (p->n_sources == FR_MAX_SOURCES || strlen(name) >= FR_SOURCE_NAME_MAX) return NULL;
    fr_evtime *et = fr_evtime_create();
    int64_t *gmax = malloc((size_t)p->cfg.partitions * sizeof *gmax);
    if (!et || !gmax) {
        fr_evtime_free(et);
        free(gmax);
        return NULL;
    }
    for (int g = 0; g < p->cfg.partitions; g++) gmax[g] = INT64_MIN;
    s = &p->sources[p->n_sources++];
    memset(s, 0, sizeof *s);
    s->gmax = gmax;
    s->group = -1;
    snprintf(s->name, sizeof s->name, "%s", name);
    s->next_offset = -1;
    s->max_ts = INT64_MIN;
    s->identity_len = -1;
    s->et = et;
    return s;
}

static inline void identity_blob_name(const source *s, char *out, size_t cap) { snprintf(out, cap, "identity:%s", s->name); }

/* Admission and TTL of every embedded field (fr_pipeline.c). */
int fr_pipeline_apply_row_policies(fr_model *m, const fr_config *c, char *err, size_t errlen);
/* The field list and scenarios of a checkpoint's blob "manifest" against the configuration's
 * (fr_pipeline.c): 0, or -1 with the refusal, by key, in err. */
int fr_pipeline_check_schema(const fr_schema *sch, const char *text, size_t len, char *err, size_t errlen);

/* fr_parts.c: every saved part into the batch (0, or -1: why holds the cause, or is "" for a failed
 * put, whose reason the batch keeps), and every part back from p->ckpt into a freshly opened p. */
int fr_parts_save(fr_pipeline *p, fr_ckpt_batch *b, char *why, size_t whylen);
int fr_parts_restore(fr_pipeline *p, char *err, size_t errlen);

#endif
