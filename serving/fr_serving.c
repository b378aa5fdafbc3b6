/* The public serving API (include/freshet_serving.h) over fr_reader, with the event decoder of
 * stream/ configured from each loaded manifest (fr_manifest_schema). */
#include "freshet_serving.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fr_event.h"
#include "fr_manifest.h"
#include "fr_reader.h"
#include "fr_serving_int.h"

struct freshet_serving {
    fr_reader *r;
    /* the decoder's schema of the loaded version, when its manifest has a field list */
    int have_schema;
    fr_schema schema;
    char schema_err[256]; /* why there is none */
};

/* After a load: the decoder's schema from the manifest. A manifest without a usable field list
 * still scores impressions built key by key; decode then says why it cannot. */
static void take_schema(freshet_serving *s)
{
    const char *text = fr_reader_manifest(s->r);
    json_error_t jerr;
    json_t *m = text ? json_loads(text, 0, &jerr) : NULL;
    s->have_schema = m && fr_manifest_schema(m, &s->schema, s->schema_err, sizeof s->schema_err) == 0;
    if (!m) snprintf(s->schema_err, sizeof s->schema_err, "no version loaded");
    json_decref(m);
}

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
    snprintf(s->schema_err, sizeof s->schema_err, "no version loaded; call freshet_serving_load first");
    return s;
}

void freshet_serving_close(freshet_serving *s)
{
    if (!s) return;
    fr_reader_close(s->r);
    free(s);
}

int freshet_serving_load(freshet_serving *s, char *err, size_t errlen)
{
    if (fr_reader_load_active(s->r, err, errlen) != 0) return -1;
    take_schema(s);
    return 0;
}

int freshet_serving_follow(freshet_serving *s, int block_ms, char *err, size_t errlen)
{
    int rc = fr_reader_follow(s->r, block_ms, err, errlen);
    if (rc == 1) take_schema(s);
    return rc;
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

const char *freshet_serving_scenario_name(const freshet_serving *s, int32_t scenario)
{
    if (!s->have_schema || scenario < 0 || scenario >= s->schema.n_scenarios) return NULL;
    return s->schema.scenarios[scenario];
}

int freshet_serving_table_count(const freshet_serving *s) { return fr_reader_table_count(s->r); }

long freshet_serving_row_count(freshet_serving *s, int table, char *err, size_t errlen)
{
    if (table < 0 || table >= fr_reader_table_count(s->r)) {
        snprintf(err, errlen, "serving: table %d out of range (the loaded version has %d)", table,
                 fr_reader_table_count(s->r));
        return -1;
    }
    long n = fr_reader_row_count(s->r, (uint32_t)table);
    if (n < 0) snprintf(err, errlen, "serving: counting the rows of table %d failed (Redis unreachable?)", table);
    return n;
}

/* ---- impressions ---- */

freshet_impression *freshet_impression_new(void) { return calloc(1, sizeof(freshet_impression)); }
void freshet_impression_free(freshet_impression *imp) { free(imp); }
void freshet_impression_clear(freshet_impression *imp) { memset(imp, 0, sizeof *imp); }
const char *freshet_impression_id(const freshet_impression *imp) { return imp->id; }
int32_t freshet_impression_scenario(const freshet_impression *imp) { return imp->scenario; }

int freshet_impression_set_scenario(freshet_impression *imp, int32_t scenario)
{
    if (scenario < 0) return -1;
    imp->scenario = scenario;
    return 0;
}

int freshet_impression_set_key(freshet_impression *imp, int slot, uint64_t key)
{
    if (slot < 0 || slot >= FR_MAX_CAT) return -1;
    imp->f.cat[slot] = key;
    return 0;
}

int freshet_impression_set_number(freshet_impression *imp, int slot, float value)
{
    if (slot < 0 || slot >= FR_MAX_NUM) return -1;
    imp->f.num[slot] = value;
    return 0;
}

int freshet_impression_set_multi(freshet_impression *imp, int field, const uint64_t *keys, int n)
{
    if (field < 0 || field >= FR_MAX_MULTI || n < 0 || n > FR_MAX_MULTI_LEN || (n > 0 && !keys)) return -1;
    memset(imp->f.multi[field], 0, sizeof imp->f.multi[field]);
    for (int i = 0; i < n; i++) imp->f.multi[field][i] = keys[i];
    imp->f.multi_len[field] = (uint8_t)n;
    return 0;
}

int freshet_serving_decode(freshet_serving *s, const char *json, size_t len, freshet_impression *imp, char *err,
                           size_t errlen)
{
    freshet_impression_clear(imp);
    if (!s->have_schema) {
        snprintf(err, errlen, "serving: cannot decode JSON: %s", s->schema_err);
        return -1;
    }
    fr_event ev;
    char why[256] = "";
    fr_reject_reason r = fr_event_decode(&s->schema, json, len, &ev, why, sizeof why);
    if (r != FR_REJECT_NONE) {
        snprintf(err, errlen, "%s: %s", fr_event_reject_name(r), why);
        return -1;
    }
    if (ev.type != FR_EV_IMPRESSION) return 1;
    memcpy(imp->id, ev.id, sizeof imp->id);
    imp->scenario = ev.scenario;
    imp->f = ev.features;
    return 0;
}

/* ---- scoring ---- */

/* The reader scores arrays of features and scenarios: the impressions' copies, then the scores. */
static int score(freshet_serving *s, const freshet_impression *const *imp, int n, freshet_scores *out, char *err,
                 size_t errlen)
{
    size_t m = (size_t)(n > 0 ? n : 1);
    fr_features *f = calloc(m, sizeof *f); /* zeroed: n may be 0 */
    int32_t *scenario = calloc(m, sizeof *scenario);
    float(*p)[FR_NTASKS] = malloc(m * sizeof *p);
    int rc = -1;
    if (!f || !scenario || !p) {
        snprintf(err, errlen, "serving: out of memory for %d scores", n);
    } else {
        for (int i = 0; i < n; i++) {
            f[i] = imp[i]->f;
            scenario[i] = imp[i]->scenario;
        }
        rc = fr_reader_score_batch(s->r, f, scenario, n, p, err, errlen);
        for (int i = 0; rc == 0 && i < n; i++)
            out[i] = (freshet_scores){p[i][FR_TASK_CTR], p[i][FR_TASK_CVR], p[i][FR_TASK_CTCVR]};
    }
    free(p);
    free(scenario);
    free(f);
    return rc;
}

int freshet_serving_score(freshet_serving *s, const freshet_impression *imp, freshet_scores *out, char *err,
                          size_t errlen)
{
    return score(s, &imp, 1, out, err, errlen);
}

int freshet_serving_score_batch(freshet_serving *s, const freshet_impression *const *imp, int n, freshet_scores *out,
                                char *err, size_t errlen)
{
    return score(s, imp, n, out, err, errlen);
}
