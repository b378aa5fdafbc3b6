/* Tests of fr_join: hand-written event logs with the exact samples and counters they must give, and
 * the accounting invariant after every step. Restarts from a checkpoint, the dirty sets and the stored
 * blobs are in test_join_restore.c; the shared harness is tests/support/join_harness.h. */
#include "join_harness.h"

/* ---- hand-written logs ---- */

static void test_click_at_window_edge(void **state)
{
    (void)state;
    harness h;
    h_init(&h);
    imp(&h, "a", 1000);
    click(&h, "a", 1010); /* == imp.ts + window: counts */
    imp(&h, "b", 1000);
    click(&h, "b", 1011); /* one ms after: does not */
    expect_counts(h.j, FR_EV_CLICK, (counts){.events = 2, .pending = 1, .outside = 1});
    adv(&h, 1010); /* the deadline 1010 is not < 1010 */
    assert_int_equal(h.out.n, 0);
    adv(&h, 1011);
    assert_int_equal(h.out.n, 2);
    expect_ctr(&h.out.s[0], "a", 1010, 1);
    expect_ctr(&h.out.s[1], "b", 1010, 0);
    expect_counts(h.j, FR_EV_IMPRESSION, (counts){.events = 2, .joined = 2});
    expect_counts(h.j, FR_EV_CLICK, (counts){.events = 2, .joined = 1, .outside = 1});
    assert_int_equal(fr_join_entry_count(h.j), 1);
    adv(&h, 1110); /* attribution closes at click 1010 + 100 */
    assert_int_equal(h.out.n, 2);
    adv(&h, 1111);
    assert_int_equal(h.out.n, 3);
    expect_attr(&h.out.s[2], "a", 1110, 0);
    expect_counts(h.j, FR_EV_CONVERSION, (counts){0});
    expect_emitted(h.j, 2, 1);
    assert_int_equal(fr_join_entry_count(h.j), 0);
    h_free(&h);
}

static void test_click_before_impression_ts(void **state)
{
    (void)state;
    harness h;
    h_init(&h);
    imp(&h, "a", 1000);
    click(&h, "a", 999);  /* impression already known */
    click(&h, "b", 999);  /* held, then judged when the impression comes */
    imp(&h, "b", 1000);
    expect_counts(h.j, FR_EV_CLICK, (counts){.events = 2, .outside = 2});
    click(&h, "a", 1005); /* the first click decided: a second one is a duplicate */
    expect_counts(h.j, FR_EV_CLICK, (counts){.events = 3, .dup = 1, .outside = 2});
    adv(&h, 1011);
    assert_int_equal(h.out.n, 2);
    expect_ctr(&h.out.s[0], "a", 1010, 0);
    expect_ctr(&h.out.s[1], "b", 1010, 0);
    assert_int_equal(fr_join_entry_count(h.j), 0);
    h_free(&h);
}

static void test_conversion_at_attribution_edge(void **state)
{
    (void)state;
    harness h;
    h_init(&h);
    imp(&h, "a", 1000);
    click(&h, "a", 1005);
    conv(&h, "a", 1105); /* == click + window: counts */
    imp(&h, "b", 1000);
    click(&h, "b", 1005);
    conv(&h, "b", 1106); /* +1 ms: does not */
    imp(&h, "c", 1000);
    click(&h, "c", 1005);
    conv(&h, "c", 1004); /* before the click */
    expect_counts(h.j, FR_EV_CONVERSION, (counts){.events = 3, .pending = 1, .outside = 2});
    adv(&h, 1011);
    assert_int_equal(h.out.n, 3);
    expect_ctr(&h.out.s[0], "a", 1010, 1);
    expect_ctr(&h.out.s[1], "b", 1010, 1);
    expect_ctr(&h.out.s[2], "c", 1010, 1);
    adv(&h, 1105);
    assert_int_equal(h.out.n, 3);
    adv(&h, 1106);
    assert_int_equal(h.out.n, 6);
    expect_attr(&h.out.s[3], "a", 1105, 1);
    expect_attr(&h.out.s[4], "b", 1105, 0);
    expect_attr(&h.out.s[5], "c", 1105, 0);
    expect_counts(h.j, FR_EV_CONVERSION, (counts){.events = 3, .joined = 1, .outside = 2});
    expect_emitted(h.j, 3, 3);
    h_free(&h);
}

static void test_duplicates(void **state)
{
    (void)state;
    harness h;
    h_init(&h);
    imp(&h, "a", 1000);
    imp(&h, "a", 1000);
    imp(&h, "a", 1003); /* same id, other ts: still the same impression */
    click(&h, "a", 1002);
    click(&h, "a", 1002);
    conv(&h, "a", 1050);
    conv(&h, "a", 1050);
    conv(&h, "a", 1060); /* a second distinct conversion: one per impression */
    expect_counts(h.j, FR_EV_IMPRESSION, (counts){.events = 3, .pending = 1, .dup = 2});
    expect_counts(h.j, FR_EV_CLICK, (counts){.events = 2, .pending = 1, .dup = 1});
    expect_counts(h.j, FR_EV_CONVERSION, (counts){.events = 3, .pending = 1, .dup = 2});
    adv(&h, 2000);
    assert_int_equal(h.out.n, 2);
    expect_ctr(&h.out.s[0], "a", 1010, 1);
    expect_attr(&h.out.s[1], "a", 1102, 1);
    expect_counts(h.j, FR_EV_IMPRESSION, (counts){.events = 3, .joined = 1, .dup = 2});
    expect_counts(h.j, FR_EV_CLICK, (counts){.events = 2, .joined = 1, .dup = 1});
    expect_counts(h.j, FR_EV_CONVERSION, (counts){.events = 3, .joined = 1, .dup = 2});
    h_free(&h);
}

static void test_early_click_then_impression(void **state)
{
    (void)state;
    harness h;
    h_init(&h);
    adv(&h, 900);
    click(&h, "a", 1005);
    expect_counts(h.j, FR_EV_CLICK, (counts){.events = 1, .pending = 1});
    /* The watermark passes the click's ts; an impression with ts in [996, 1005] is still
     * accepted, so the click must still be waiting for it. */
    adv(&h, 1006);
    expect_counts(h.j, FR_EV_CLICK, (counts){.events = 1, .pending = 1});
    imp(&h, "a", 1000);
    expect_counts(h.j, FR_EV_IMPRESSION, (counts){.events = 1, .pending = 1});
    expect_counts(h.j, FR_EV_CLICK, (counts){.events = 1, .pending = 1});
    adv(&h, 1011);
    assert_int_equal(h.out.n, 1);
    expect_ctr(&h.out.s[0], "a", 1010, 1);
    expect_counts(h.j, FR_EV_CLICK, (counts){.events = 1, .joined = 1});
    h_free(&h);
}

static void test_early_conversion_then_click_then_impression(void **state)
{
    (void)state;
    harness h;
    h_init(&h);
    conv(&h, "a", 1050);
    click(&h, "a", 1005);
    imp(&h, "a", 1000);
    expect_counts(h.j, FR_EV_CONVERSION, (counts){.events = 1, .pending = 1});
    /* b: the impression first, the conversion held until the click counts. */
    imp(&h, "b", 1000);
    conv(&h, "b", 1050);
    click(&h, "b", 1003);
    adv(&h, 1011);
    assert_int_equal(h.out.n, 2);
    expect_ctr(&h.out.s[0], "a", 1010, 1);
    expect_ctr(&h.out.s[1], "b", 1010, 1);
    adv(&h, 1106);
    assert_int_equal(h.out.n, 4);
    expect_attr(&h.out.s[2], "b", 1103, 1);
    expect_attr(&h.out.s[3], "a", 1105, 1);
    expect_counts(h.j, FR_EV_CONVERSION, (counts){.events = 2, .joined = 2});
    expect_counts(h.j, FR_EV_CLICK, (counts){.events = 2, .joined = 2});
    h_free(&h);
}

static void test_orphan_expiry(void **state)
{
    (void)state;
    harness h;
    h_init(&h);
    adv(&h, 900);
    click(&h, "a", 1005);
    conv(&h, "b", 1020);
    click(&h, "c", 1040);
    conv(&h, "c", 1060);
    assert_int_equal(fr_join_entry_count(h.j), 3);
    adv(&h, 1015); /* a's last possible impression (ts 1005) closes at 1015 */
    assert_int_equal(fr_join_entry_count(h.j), 3);
    adv(&h, 1016);
    assert_int_equal(fr_join_entry_count(h.j), 2);
    expect_counts(h.j, FR_EV_CLICK, (counts){.events = 2, .pending = 1, .orphan = 1});
    adv(&h, 1031);
    expect_counts(h.j, FR_EV_CONVERSION, (counts){.events = 2, .pending = 1, .orphan = 1});
    adv(&h, 1070); /* c waits for its latest held event: 1060 + 10 */
    assert_int_equal(fr_join_entry_count(h.j), 1);
    adv(&h, 1071);
    assert_int_equal(fr_join_entry_count(h.j), 0);
    assert_int_equal(h.out.n, 0);
    expect_counts(h.j, FR_EV_CLICK, (counts){.events = 2, .orphan = 2});
    expect_counts(h.j, FR_EV_CONVERSION, (counts){.events = 2, .orphan = 2});
    /* Too late to be matched now. */
    imp(&h, "a", 1000);
    click(&h, "a", 1005);
    expect_counts(h.j, FR_EV_IMPRESSION, (counts){.events = 1, .late = 1});
    expect_counts(h.j, FR_EV_CLICK, (counts){.events = 3, .late = 1, .orphan = 2});
    assert_int_equal(fr_join_entry_count(h.j), 0);
    h_free(&h);
}

static void test_late_impression(void **state)
{
    (void)state;
    harness h;
    h_init(&h);
    adv(&h, 2000);
    imp(&h, "a", 1989); /* its window closed at 1999 < 2000 */
    imp(&h, "b", 1990); /* closes at 2000, not < 2000: still accepted */
    expect_counts(h.j, FR_EV_IMPRESSION, (counts){.events = 2, .pending = 1, .late = 1});
    assert_int_equal(fr_join_entry_count(h.j), 1);
    /* A late impression does not release the click held for it; it expires as an orphan. */
    click(&h, "c", 2005);
    adv(&h, 2010);
    assert_int_equal(h.out.n, 1);
    expect_ctr(&h.out.s[0], "b", 2000, 0);
    imp(&h, "c", 1995);
    expect_counts(h.j, FR_EV_IMPRESSION, (counts){.events = 3, .joined = 1, .late = 2});
    expect_counts(h.j, FR_EV_CLICK, (counts){.events = 1, .pending = 1});
    adv(&h, 2015);
    assert_int_equal(fr_join_entry_count(h.j), 1);
    adv(&h, 2016);
    expect_counts(h.j, FR_EV_CLICK, (counts){.events = 1, .orphan = 1});
    assert_int_equal(fr_join_entry_count(h.j), 0);
    assert_int_equal(h.out.n, 1);
    h_free(&h);
}

static void test_late_click(void **state)
{
    (void)state;
    harness h;
    h_init(&h);
    imp(&h, "a", 1000);
    imp(&h, "b", 1000);
    click(&h, "b", 1001);
    adv(&h, 1011);
    assert_int_equal(h.out.n, 2);
    expect_ctr(&h.out.s[0], "a", 1010, 0);
    expect_ctr(&h.out.s[1], "b", 1010, 1);
    click(&h, "a", 1005); /* the CTR sample of a is out (and a is gone) */
    click(&h, "b", 1002); /* b still lives for its attribution: a duplicate */
    expect_counts(h.j, FR_EV_CLICK, (counts){.events = 3, .joined = 1, .dup = 1, .late = 1});
    /* A click behind the watermark still counts while its impression's window is open. */
    imp(&h, "c", 1005);
    click(&h, "c", 1008);
    expect_counts(h.j, FR_EV_CLICK, (counts){.events = 4, .joined = 1, .pending = 1, .dup = 1, .late = 1});
    adv(&h, 1016);
    assert_int_equal(h.out.n, 3);
    expect_ctr(&h.out.s[2], "c", 1015, 1);
    h_free(&h);
}

static void test_conversion_without_click(void **state)
{
    (void)state;
    harness h;
    h_init(&h);
    imp(&h, "a", 1000);
    conv(&h, "a", 1005); /* held: a click may still come */
    expect_counts(h.j, FR_EV_CONVERSION, (counts){.events = 1, .pending = 1});
    adv(&h, 1011);
    assert_int_equal(h.out.n, 1);
    expect_ctr(&h.out.s[0], "a", 1010, 0);
    expect_counts(h.j, FR_EV_CONVERSION, (counts){.events = 1, .not_clicked = 1});
    /* After the entry is gone: a conversion behind the watermark is late; one ahead of it could
     * precede its impression, so it waits and expires as an orphan (no tombstones). */
    conv(&h, "a", 1007);
    conv(&h, "a", 1020);
    adv(&h, 1031);
    expect_counts(h.j, FR_EV_CONVERSION, (counts){.events = 3, .late = 1, .orphan = 1, .not_clicked = 1});
    assert_int_equal(h.out.n, 1);
    h_free(&h);
}

static void test_unclicked_impression_emits_ctcvr_zero(void **state)
{
    (void)state;
    harness h;
    h_init(&h);
    add(&h, imp_ev("a", 1000, 2, 1.0f));
    adv(&h, 1011);
    assert_int_equal(h.out.n, 1);
    const fr_sample *s = &h.out.s[0];
    expect_ctr_w(s, "a", 1010, 0, 1.0f, 2);
    /* Byte for byte, padding included: the expected sample built from scratch. */
    fr_sample want;
    memset(&want, 0, sizeof want);
    want.f = features_of("a", 2);
    want.scenario = 2;
    want.kind = FR_SAMPLE_CLICK_WINDOW;
    want.ts = 1010;
    want.has_label[FR_TASK_CTR] = want.has_label[FR_TASK_CTCVR] = 1;
    want.weight[FR_TASK_CTR] = want.weight[FR_TASK_CTCVR] = 1.0f;
    assert_memory_equal(s, &want, sizeof want);
    assert_int_equal(fr_join_entry_count(h.j), 0);
    h_free(&h);
}

static void test_sample_rate_weight(void **state)
{
    (void)state;
    harness h;
    h_init(&h);
    add(&h, imp_ev("a", 1000, 1, 0.25f));
    click(&h, "a", 1001);
    conv(&h, "a", 1050);
    add(&h, imp_ev("b", 1000, 3, 0.25f));
    adv(&h, 2000);
    assert_int_equal(h.out.n, 3);
    expect_ctr_w(&h.out.s[0], "a", 1010, 1, 4.0f, 1);
    expect_ctr_w(&h.out.s[1], "b", 1010, 0, 4.0f, 3);
    expect_attr_w(&h.out.s[2], "a", 1101, 1, 4.0f, 1);
    h_free(&h);
}

static void test_watermark_never_moves_back(void **state)
{
    (void)state;
    harness h;
    h_init(&h);
    assert_int_equal(fr_join_watermark(h.j), INT64_MIN);
    adv(&h, 1000);
    adv(&h, 500);
    assert_int_equal(fr_join_watermark(h.j), 1000);
    imp(&h, "a", 989); /* late against 1000, even after the attempt to go back to 500 */
    imp(&h, "b", 995);
    adv(&h, 1004);
    adv(&h, 900);
    assert_int_equal(h.out.n, 0);
    adv(&h, 1006);
    assert_int_equal(h.out.n, 1);
    expect_ctr(&h.out.s[0], "b", 1005, 0);
    adv(&h, 1006);
    assert_int_equal(h.out.n, 1);
    expect_counts(h.j, FR_EV_IMPRESSION, (counts){.events = 2, .joined = 1, .late = 1});
    h_free(&h);
}

static void test_equal_deadlines_ordered_by_id(void **state)
{
    (void)state;
    harness h;
    h_init(&h);
    const char *arrival[] = {"b", "ab", "c", "a", "b0"};
    for (int i = 0; i < 5; i++) imp(&h, arrival[i], 1000);
    imp(&h, "z", 999); /* an earlier deadline comes first whatever its id */
    for (int i = 0; i < 5; i++) click(&h, arrival[i], 1000);
    adv(&h, 2000);
    const char *want[] = {"a", "ab", "b", "b0", "c"};
    assert_int_equal(h.out.n, 11);
    expect_ctr(&h.out.s[0], "z", 1009, 0);
    for (int i = 0; i < 5; i++) expect_ctr(&h.out.s[1 + i], want[i], 1010, 1);
    for (int i = 0; i < 5; i++) expect_attr(&h.out.s[6 + i], want[i], 1100, 0);
    h_free(&h);
}

static void test_attribution_follows_its_ctr_sample(void **state)
{
    (void)state;
    /* Attribution window shorter than the click window: the attribution sample still comes
     * after the CTR sample it depends on, and emission stays sorted by ts. */
    fr_join_config c = {.click_window_ms = 100, .attribution_window_ms = 10};
    fr_join *j = fr_join_create(&c);
    assert_non_null(j);
    sink out = {0};
    fr_event e = make_event(FR_EV_IMPRESSION, "a", 1000);
    assert_int_equal(fr_join_add(j, &e, collect, &out), 0);
    e = make_event(FR_EV_CLICK, "a", 1001);
    assert_int_equal(fr_join_add(j, &e, collect, &out), 0);
    e = make_event(FR_EV_CONVERSION, "a", 1011);
    assert_int_equal(fr_join_add(j, &e, collect, &out), 0);
    fr_join_advance(j, 5000, collect, &out);
    assert_int_equal(out.n, 2);
    assert_int_equal(out.s[0].kind, FR_SAMPLE_CLICK_WINDOW);
    assert_int_equal(out.s[0].ts, 1100);
    assert_int_equal(out.s[1].kind, FR_SAMPLE_ATTRIBUTION);
    assert_int_equal(out.s[1].ts, 1100);
    expect_f(out.s[1].label[FR_TASK_CVR], 1.0f);
    check_invariant(j);
    fr_join_free(j);
    free(out.s);
}

static void test_extreme_timestamps(void **state)
{
    (void)state;
    harness h;
    h_init(&h);
    /* Deadlines saturate instead of wrapping into the past. */
    imp(&h, "a", INT64_MAX - 3);
    click(&h, "a", INT64_MAX - 1);
    adv(&h, INT64_MAX);
    assert_int_equal(h.out.n, 0);
    assert_int_equal(fr_join_entry_count(h.j), 1);
    h_free(&h);
}

static void test_bad_input_and_config(void **state)
{
    (void)state;
    fr_join_config bad = {.click_window_ms = -1, .attribution_window_ms = 10};
    assert_null(fr_join_create(&bad));
    bad = (fr_join_config){.click_window_ms = 1, .attribution_window_ms = 10, .policy = FR_NPOLICIES};
    assert_null(fr_join_create(&bad));
    harness h;
    h_init(&h);
    fr_event e = make_event(FR_EV_IMPRESSION, "a", 1);
    e.id_len = 0;
    assert_int_equal(fr_join_add(h.j, &e, collect, &h.out), -1);
    e.id_len = FR_ID_MAX + 1;
    assert_int_equal(fr_join_add(h.j, &e, collect, &h.out), -1);
    e = make_event(FR_EV_IMPRESSION, "a", 1);
    e.type = FR_EV_NTYPES;
    assert_int_equal(fr_join_add(h.j, &e, collect, &h.out), -1);
    expect_counts(h.j, FR_EV_IMPRESSION, (counts){0});
    /* An id of the maximum length works. */
    char id[FR_ID_MAX + 1];
    memset(id, 'x', FR_ID_MAX);
    id[FR_ID_MAX] = '\0';
    imp(&h, id, 5);
    assert_int_equal(fr_join_entry_count(h.j), 1);
    assert_string_equal(fr_join_drop_name(FR_DROP_OUTSIDE_WINDOW), "outside_window");
    assert_string_equal(fr_join_drop_name(FR_DROP_NOT_CLICKED), "not_clicked");
    assert_string_equal(fr_join_drop_name(FR_DROP_NREASONS), "unknown");
    h_free(&h);
}


int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_click_at_window_edge),
        cmocka_unit_test(test_click_before_impression_ts),
        cmocka_unit_test(test_conversion_at_attribution_edge),
        cmocka_unit_test(test_duplicates),
        cmocka_unit_test(test_early_click_then_impression),
        cmocka_unit_test(test_early_conversion_then_click_then_impression),
        cmocka_unit_test(test_orphan_expiry),
        cmocka_unit_test(test_late_impression),
        cmocka_unit_test(test_late_click),
        cmocka_unit_test(test_conversion_without_click),
        cmocka_unit_test(test_unclicked_impression_emits_ctcvr_zero),
        cmocka_unit_test(test_sample_rate_weight),
        cmocka_unit_test(test_watermark_never_moves_back),
        cmocka_unit_test(test_equal_deadlines_ordered_by_id),
        cmocka_unit_test(test_attribution_follows_its_ctr_sample),
        cmocka_unit_test(test_extreme_timestamps),
        cmocka_unit_test(test_bad_input_and_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
