/* FTRL embeddings through the whole pipeline (replay path, no Kafka, no Redis): two runs of one
 * stream give the same checkpoint digest, a run stopped and restored in the middle ends
 * bit-identical to a straight one (z and n survive the checkpoint), l1 leaves exactly-zero
 * weights in the checkpoint, and restoring under the other model.emb_optimizer is refused by name. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fr_ckpt.h"
#include "fr_config.h"
#include "fr_gen.h"
#include "fr_pipeline.h"
#include "gen_lines.h"
#include "tmpdir.h"

static lines make_stream(void)
{
    fr_gen_opts o;
    fr_gen_defaults(&o);
    o.impressions = 12000;
    o.days = 2;
    o.seed = 5;
    o.n_users = 3000;
    o.n_ads = 300;
    return gen_lines(&o, NULL, NULL);
}

static fr_config ftrl_pipeline_config(const char *dir)
{
    fr_config c;
    fr_config_defaults(&c);
    snprintf(c.checkpoint_dir, sizeof c.checkpoint_dir, "%s", dir);
    c.redis_host[0] = '\0';
    c.checkpoint_every_samples = 2500;
    c.checkpoint_every_seconds = 0;
    c.model.emb_optimizer = 1;
    c.model.ftrl_l1 = 0.3f;
    c.model.ftrl_l2 = 0.1f;
    return c;
}

/* Feeds L's lines from the stored offset up to stop_at, checkpoints (unless killed: closed
 * without one, as after a SIGKILL), closes; the digest after. Returns where it started. */
static size_t run_from(const fr_config *c, const lines *L, size_t stop_at, int killed, char digest[33])
{
    char err[512];
    fr_pipeline *p = fr_pipeline_open(c, err, sizeof err);
    if (!p) fail_msg("open: %s", err);
    int64_t next = 0;
    assert_int_equal(fr_pipeline_register_source(p, "file", &next), 0);
    size_t i = next < 0 ? 0 : (size_t)next, first = i;
    for (; i < L->n && i < stop_at; i++)
        if (fr_pipeline_message(p, "file", (int64_t)i + 1, L->line[i], L->len[i], err, sizeof err) != 0)
            fail_msg("message %zu: %s", i, err);
    if (i == L->n) {
        fr_pipeline_source_idle(p, "file", 1);
        assert_int_equal(fr_pipeline_tick(p), 0);
    }
    if (!killed && fr_pipeline_checkpoint(p, err, sizeof err) != 0) fail_msg("checkpoint: %s", err);
    fr_pipeline_close(p);
    fr_ckpt *ck = fr_ckpt_open_readonly(c->checkpoint_dir, err, sizeof err);
    assert_non_null(ck);
    assert_int_equal(fr_ckpt_digest(ck, digest), 0);
    fr_ckpt_close(ck);
    return first;
}

/* The same, returning where it stopped. */
static size_t run(const fr_config *c, const lines *L, size_t stop_at, char digest[33])
{
    run_from(c, L, stop_at, 0, digest);
    return stop_at < L->n ? stop_at : L->n;
}

static int count_weights(const fr_row_view *r, void *ctx)
{
    size_t *c = ctx;
    c[0] += (size_t)r->dim;
    for (int i = 0; i < r->dim; i++) c[1] += r->weights[i] == 0.0f;
    return 0;
}

static void test_ftrl_replay_restart_bit_identical(void **state)
{
    (void)state;
    char *dir = tmpdir_make("ftrl");
    char a[128], b[128], s[128];
    snprintf(a, sizeof a, "%s/a", dir);
    snprintf(b, sizeof b, "%s/b", dir);
    snprintf(s, sizeof s, "%s/s", dir);
    lines L = make_stream();
    char da[33], db[33], ds[33];

    fr_config ca = ftrl_pipeline_config(a), cb = ftrl_pipeline_config(b), cs = ftrl_pipeline_config(s);
    assert_int_equal(run(&ca, &L, SIZE_MAX, da), L.n);
    assert_int_equal(run(&cb, &L, SIZE_MAX, db), L.n);
    assert_string_equal(da, db);
    /* stopped in the middle (between two periodic checkpoints), restored, run to the end */
    assert_int_equal(run(&cs, &L, L.n / 2 + 77, ds), L.n / 2 + 77);
    assert_string_not_equal(ds, da);
    assert_int_equal(run(&cs, &L, SIZE_MAX, ds), L.n);
    assert_string_equal(ds, da);
    /* killed twice (no checkpoint at the stop: the input after the last periodic one is read
     * again), then run to the end: the same bits */
    char k[128], dk[33];
    snprintf(k, sizeof k, "%s/k", dir);
    fr_config ck_cfg = ftrl_pipeline_config(k);
    assert_int_equal(run_from(&ck_cfg, &L, L.n / 3, 1, dk), 0);
    size_t resumed = run_from(&ck_cfg, &L, 2 * L.n / 3, 1, dk);
    assert_true(resumed > 0 && resumed < L.n / 3); /* from the last periodic checkpoint */
    assert_true(run_from(&ck_cfg, &L, SIZE_MAX, 0, dk) < 2 * L.n / 3);
    assert_string_equal(dk, da);

    /* the stored rows are FTRL rows, and l1 has made some weights exactly 0 */
    char err[512];
    fr_ckpt *ck = fr_ckpt_open_readonly(a, err, sizeof err);
    assert_non_null(ck);
    fr_model *m = fr_ckpt_load_model(ck, err, sizeof err);
    if (!m) fail_msg("load: %s", err);
    assert_int_equal(fr_model_get_config(m)->emb_optimizer, 1);
    assert_int_equal(fr_model_row_state_count(m), 2 * (size_t)fr_model_get_config(m)->emb_dim);
    size_t w[2] = {0, 0};
    fr_model_foreach_row(m, 0, count_weights, w);
    print_message("ftrl pipeline: %zu of %zu embedding coordinates exactly 0\n", w[1], w[0]);
    assert_true(w[1] > 0 && w[1] < w[0]);
    fr_model_free(m);
    fr_ckpt_close(ck);

    /* restoring under Adagrad is refused, naming the key; the directory is left as it was */
    fr_config cw = ca;
    cw.model.emb_optimizer = 0;
    assert_null(fr_pipeline_open(&cw, err, sizeof err));
    assert_non_null(strstr(err, "model.emb_optimizer"));
    char after[33];
    ck = fr_ckpt_open_readonly(a, err, sizeof err);
    assert_non_null(ck);
    assert_int_equal(fr_ckpt_digest(ck, after), 0);
    fr_ckpt_close(ck);
    assert_string_equal(after, da);

    lines_free(&L);
    tmpdir_remove(dir);
}

/* And the other way round: an Adagrad checkpoint is not restored as FTRL. */
static void test_adagrad_checkpoint_refused_under_ftrl(void **state)
{
    (void)state;
    char *dir = tmpdir_make("ftrl");
    lines L = make_stream();
    fr_config c = ftrl_pipeline_config(dir);
    c.model.emb_optimizer = 0;
    char d[33], err[512];
    assert_int_equal(run(&c, &L, 3000, d), 3000);
    c.model.emb_optimizer = 1;
    assert_null(fr_pipeline_open(&c, err, sizeof err));
    assert_non_null(strstr(err, "model.emb_optimizer: the checkpoint was trained with 0, the configuration says 1"));
    lines_free(&L);
    tmpdir_remove(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ftrl_replay_restart_bit_identical),
        cmocka_unit_test(test_adagrad_checkpoint_refused_under_ftrl),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
