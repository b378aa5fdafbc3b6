/* fr_testkit: see fr_testkit.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "count_rows.h"
#include "fr_testkit.h"

uint64_t next_rand(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

float uniform01(uint64_t *s) { return (float)(next_rand(s) >> 40) / 16777216.0f; }

void small_config(fr_model_config *c)
{
    fr_model_config_defaults(c);
    c->n_cat = 3;
    c->n_num = 2;
    c->n_multi = 1;
    c->n_scenarios = 2;
    c->emb_dim = 4;
    c->n_experts = 2;
    c->expert_dim = 8;
    c->tower_dim = 4;
    c->batch_size = 16;
}

void make_features(uint64_t *s, const fr_model_config *c, uint64_t vocab, fr_features *f)
{
    memset(f, 0, sizeof *f);
    for (int t = 0; t < c->n_cat; t++) f->cat[t] = 1 + (uint64_t)t * 1000003u + next_rand(s) % vocab;
    for (int i = 0; i < c->n_num; i++) f->num[i] = uniform01(s);
    for (int j = 0; j < c->n_multi; j++) {
        f->multi_len[j] = (uint8_t)(next_rand(s) % 4);
        for (int k = 0; k < f->multi_len[j]; k++) f->multi[j][k] = 7 + next_rand(s) % vocab;
    }
}

void make_samples(uint64_t seed, const fr_model_config *c, uint64_t vocab, int64_t ts_step, fr_sample *out, int n)
{
    uint64_t s = seed;
    for (int i = 0; i < n; i++) {
        fr_sample *x = &out[i];
        memset(x, 0, sizeof *x);
        make_features(&s, c, vocab, &x->f);
        x->scenario = (int32_t)(next_rand(&s) % (uint64_t)c->n_scenarios);
        x->kind = FR_SAMPLE_CLICK_WINDOW;
        x->ts = i * ts_step;
        float p = (x->f.cat[0] % 3 == 0) ? 0.6f : 0.1f;
        x->label[FR_TASK_CTR] = uniform01(&s) < p ? 1.0f : 0.0f;
        x->label[FR_TASK_CVR] = x->label[FR_TASK_CTR] > 0 && uniform01(&s) < 0.3f ? 1.0f : 0.0f;
        x->label[FR_TASK_CTCVR] = x->label[FR_TASK_CTR] * x->label[FR_TASK_CVR];
        for (int t = 0; t < FR_NTASKS; t++) {
            x->weight[t] = 1.0f;
            x->has_label[t] = 1;
        }
    }
}

void train(fr_model *m, int n, uint64_t seed, uint64_t vocab)
{
    fr_sample *x = calloc((size_t)n, sizeof *x);
    assert_non_null(x);
    make_samples(seed, fr_model_get_config(m), vocab, 0, x, n);
    fr_model_train(m, x, n, NULL);
    free(x);
}

fr_model *new_model(void)
{
    fr_model_config c;
    small_config(&c);
    char err[256];
    fr_model *m = fr_model_create(&c, err, sizeof err);
    if (!m) fail_msg("model: %s", err);
    return m;
}

const char DAEMON_MANIFEST[] = "{\"fields\":[\"scenario\",\"ad\",\"user\"],\"scenarios\":[\"feed\",\"search\"]}";

long long redis_int(int port, const char *fmt, const char *arg)
{
    redisContext *c = redisConnect("127.0.0.1", port);
    assert_non_null(c);
    assert_int_equal(c->err, 0);
    redisReply *r = redisCommand(c, fmt, arg);
    assert_non_null(r);
    long long v = r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    freeReplyObject(r);
    redisFree(c);
    return v;
}

uint64_t push_ok(fr_publisher *p, fr_model *m)
{
    fr_publish_info info = {.manifest_json = DAEMON_MANIFEST};
    uint64_t v = 0;
    char err[512];
    if (fr_publish_push(p, m, &info, &v, err, sizeof err) != 0) fail_msg("push: %s", err);
    assert_int_equal(v, fr_model_version(m));
    assert_int_equal(count_rows(m, FR_DIRTY_PUBLISH), 0);
    return v;
}

void assert_reader_agrees(fr_reader *r, const fr_model *m, uint64_t seed)
{
    uint64_t s = seed;
    char err[512];
    for (int i = 0; i < 100; i++) {
        fr_features f;
        make_features(&s, fr_model_get_config(m), 70, &f);
        int sc = i % 2;
        float want[FR_NTASKS], got[FR_NTASKS];
        fr_model_predict(m, &f, sc, want);
        if (fr_reader_score(r, &f, sc, got, err, sizeof err) != 0) fail_msg("score: %s", err);
        for (int t = 0; t < FR_NTASKS; t++)
            if (fabsf(want[t] - got[t]) > 1e-6f)
                fail_msg("impression %d task %d: reader %.9g, trainer %.9g", i, t, got[t], want[t]);
    }
}

void assert_row_counts(fr_reader *r, const fr_model *m)
{
    for (uint32_t t = 0; t < fr_model_table_count(m); t++)
        assert_int_equal(fr_reader_row_count(r, t), (long)fr_model_row_count(m, t));
}
