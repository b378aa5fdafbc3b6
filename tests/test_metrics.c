/* Tests of fr_metrics against hand-computed values. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fr_metrics.h"

static fr_metric *new_metric(void)
{
    fr_metric *m = malloc(sizeof *m); /* 64 KiB: not on the stack */
    assert_non_null(m);
    fr_metric_reset(m);
    return m;
}

static void test_auc_extremes(void **state)
{
    (void)state;
    fr_metric *perfect = new_metric(), *reversed = new_metric(), *flat = new_metric(), *empty = new_metric();
    for (int i = 0; i < 100; i++) {
        double p = 0.005 + i * 0.0099;
        int y = i >= 60;
        fr_metric_add(perfect, p, y, 1);
        fr_metric_add(reversed, p, !y, 1);
        fr_metric_add(flat, 0.3, y, 1);
    }
    assert_true(fr_metric_auc(perfect) == 1.0);
    assert_true(fr_metric_auc(reversed) == 0.0);
    assert_true(fr_metric_auc(flat) == 0.5);
    assert_true(fr_metric_auc(empty) == 0.5);
    fr_metric_add(empty, 0.7, 1, 1); /* positives only: undefined, reported as 0.5 */
    assert_true(fr_metric_auc(empty) == 0.5);
    free(perfect);
    free(reversed);
    free(flat);
    free(empty);
}

static void test_auc_hand(void **state)
{
    (void)state;
    fr_metric *m = new_metric();
    /* positives 0.8, 0.4; negatives 0.6, 0.2, 0.4 (a tie with a positive counts half):
     * 0.8 beats all three (3), 0.4 beats 0.2 and ties 0.4 (1.5): 4.5 / 6 */
    fr_metric_add(m, 0.8, 1, 1);
    fr_metric_add(m, 0.4, 1, 1);
    fr_metric_add(m, 0.6, 0, 1);
    fr_metric_add(m, 0.2, 0, 1);
    fr_metric_add(m, 0.4, 0, 1);
    assert_true(fabs(fr_metric_auc(m) - 0.75) < 1e-12);
    /* a second negative at 0.6: 2 x 4 pairs; 0.8 beats all 4, 0.4 beats 0.2 and ties 0.4 (1.5): 5.5 / 8 */
    fr_metric_add(m, 0.6, 0, 1);
    assert_true(fabs(fr_metric_auc(m) - 5.5 / 8) < 1e-12);
    free(m);
}

static void test_logloss_hand(void **state)
{
    (void)state;
    fr_metric *m = new_metric();
    assert_true(fr_metric_logloss(m) == 0);
    assert_true(fr_metric_calibration(m) == 0);
    fr_metric_add(m, 0.8, 1, 1);
    fr_metric_add(m, 0.3, 0, 2);
    double expect = (-log(0.8) - 2 * log(0.7)) / 3;
    assert_true(fabs(fr_metric_logloss(m) - expect) < 1e-12);
    assert_true(fabs(fr_metric_calibration(m) - (0.8 + 2 * 0.3) / 1) < 1e-12);
    assert_int_equal(m->count, 2);
    assert_true(m->weight == 3);
    /* a confident wrong prediction is clipped, not infinite */
    fr_metric_add(m, 0.0, 1, 1);
    assert_true(isfinite(fr_metric_logloss(m)));
    assert_true(fabs(fr_metric_logloss(m) - (3 * expect - log(1e-7)) / 4) < 1e-9);
    free(m);
}

static void test_merge(void **state)
{
    (void)state;
    fr_metric *a = new_metric(), *b = new_metric(), *all = new_metric();
    uint64_t s = 1;
    for (int i = 0; i < 1000; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        double p = (double)(s >> 11) / 9007199254740992.0;
        int y = ((s >> 7) & 3) == 0;
        double w = 1 + (double)(i % 3);
        fr_metric_add(i % 2 ? a : b, p, y, w);
        fr_metric_add(all, p, y, w);
    }
    fr_metric_merge(a, b);
    /* integer weights: bin counts add exactly */
    assert_memory_equal(a->pos, all->pos, sizeof a->pos);
    assert_memory_equal(a->neg, all->neg, sizeof a->neg);
    assert_int_equal(a->count, all->count);
    assert_true(a->weight == all->weight);
    assert_true(fr_metric_auc(a) == fr_metric_auc(all));
    assert_true(fabs(fr_metric_logloss(a) - fr_metric_logloss(all)) < 1e-12);
    assert_true(fabs(fr_metric_calibration(a) - fr_metric_calibration(all)) < 1e-12);
    assert_true(fr_metric_auc(all) > 0.4 && fr_metric_auc(all) < 0.6); /* labels independent of p */
    free(a);
    free(b);
    free(all);
}


/* Conversion-rate predictions live around 1e-4..1e-2: a perfect ranking there must still score 1. */
static void test_auc_resolves_small_probabilities(void **state)
{
    (void)state;
    fr_metric *m = calloc(1, sizeof *m);
    assert_non_null(m);
    for (int i = 0; i < 100; i++) fr_metric_add(m, 1.0e-4 * (1 + 0.004 * i), 0, 1);
    for (int i = 0; i < 100; i++) fr_metric_add(m, 1.5e-4 * (1 + 0.004 * i), 1, 1);
    assert_true(fr_metric_auc(m) == 1.0);
    free(m);
}

/* fr_metric_add_n is fr_metric_add on each metric, bit for bit (the pipeline's metrics and their
 * history go through it; a replay's metrics must not change). */
static void test_add_n_is_add(void **state)
{
    (void)state;
    fr_metric *one = new_metric(), *a = new_metric(), *b = new_metric();
    uint64_t x = 99;
    for (int i = 0; i < 5000; i++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        double p = (double)(x >> 11) / 9007199254740992.0, w = 0.25 + (double)(x % 7), y = (x >> 5) % 5 == 0;
        if (i % 100 == 0) p = i % 200 ? 0.0 : 1.0;
        fr_metric_add(one, p, y, w);
        fr_metric *both[2] = {a, b};
        fr_metric_add_n(both, 2, p, y, w);
    }
    assert_memory_equal(one, a, sizeof *one);
    assert_memory_equal(one, b, sizeof *one);
    free(one);
    free(a);
    free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auc_resolves_small_probabilities),
        cmocka_unit_test(test_auc_extremes),
        cmocka_unit_test(test_auc_hand),
        cmocka_unit_test(test_logloss_hand),
        cmocka_unit_test(test_merge),
        cmocka_unit_test(test_add_n_is_add),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
