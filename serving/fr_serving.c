/* The public serving API (include/freshet_serving.h) over fr_reader. */
#include "freshet_serving.h"

#include <stdio.h>
#include <stdlib.h>

#include "fr_reader.h"

struct freshet_serving {
    fr_reader *r;
};

freshet_serving *freshet_serving_open(const char *host, int port, const char *prefix, char *err, size_t errlen)
{
    freshet_serving *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "serving: out of memory");
        return NULL;
    }
    s->r = fr_reader_open(host, port, prefix, err, errlen);
    if (!s->r) {
        free(s);
        return NULL;
    }
    return s;
}

void freshet_serving_close(freshet_serving *s)
{
    if (!s) return;
    fr_reader_close(s->r);
    free(s);
}

int freshet_serving_load(freshet_serving *s, char *err, size_t errlen) { return fr_reader_load_active(s->r, err, errlen); }

int freshet_serving_follow(freshet_serving *s, int block_ms, char *err, size_t errlen)
{
    return fr_reader_follow(s->r, block_ms, err, errlen);
}

uint64_t freshet_serving_version(const freshet_serving *s) { return fr_reader_version(s->r); }

void freshet_serving_get_stats(const freshet_serving *s, freshet_serving_stats *out)
{
    fr_reader_stats st;
    fr_reader_get_stats(s->r, &st);
    *out = (freshet_serving_stats){.loads = st.loads,
                                   .republished = st.republished,
                                   .refused_versions = st.refused_versions,
                                   .refused_rows = st.refused_rows};
}
const char *freshet_serving_manifest(const freshet_serving *s) { return fr_reader_manifest(s->r); }

int freshet_serving_score(freshet_serving *s, const fr_features *f, int32_t scenario, freshet_scores *out, char *err,
                          size_t errlen)
{
    return freshet_serving_score_batch(s, f, &scenario, 1, out, err, errlen);
}

int freshet_serving_score_batch(freshet_serving *s, const fr_features *f, const int32_t *scenario, int n,
                                freshet_scores *out, char *err, size_t errlen)
{
    float(*p)[FR_NTASKS] = malloc((size_t)(n > 0 ? n : 1) * sizeof *p);
    if (!p) {
        snprintf(err, errlen, "serving: out of memory for %d scores", n);
        return -1;
    }
    int rc = fr_reader_score_batch(s->r, f, scenario, n, p, err, errlen);
    for (int i = 0; rc == 0 && i < n; i++) {
        out[i].pctr = p[i][FR_TASK_CTR];
        out[i].pcvr = p[i][FR_TASK_CVR];
        out[i].pctcvr = p[i][FR_TASK_CTCVR];
    }
    free(p);
    return rc;
}
