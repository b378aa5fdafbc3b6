/* Tests of fr_hash: keys are part of the checkpoint and the Redis layout, so their values are
 * frozen here; a change to the hash, its seed or the byte encoding must fail this test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "fr_hash.h"

static uint64_t value_key(const char *field, const char *value)
{
    return fr_hash_value(fr_hash_field(field), value, strlen(value));
}

/* Format freeze: values computed once with the XXH3-64 implementation (libxxhash 0.8). */
static void test_frozen_values(void **state)
{
    (void)state;
    assert_int_equal(fr_hash_field("scenario"), 0x43903afb8e838a17ULL);
    assert_int_equal(fr_hash_field("ad_id"), 0xd3aa61584ca4ab34ULL);
    assert_int_equal(fr_hash_field("user_id"), 0xad0012cfd853b051ULL);
    assert_int_equal(fr_hash_field(""), 0xadf71d5a742fae3dULL);
    assert_int_equal(value_key("scenario", "video"), 0x0d462f7455578386ULL);
    assert_int_equal(value_key("ad_id", "a-123"), 0x46ddf8ecbc891ce3ULL);
    assert_int_equal(value_key("user_id", "u-42"), 0x80e299833c820b0eULL);
    assert_int_equal(value_key("ad_id", ""), 0x97ac3fbcf39b018aULL);
    /* the initialisation stream is frozen too: it decides every new row's weights */
    assert_true(fr_hash_uniform(1, 0) == 0x1.e51adp-3f);
    assert_true(fr_hash_uniform(1, 1) == 0x1.59c4p-5f);
    assert_true(fr_hash_uniform(1, 2) == -0x1.a37488p-1f);
    assert_true(fr_hash_uniform(1, 3) == -0x1.0b4d8p-4f);
}

/* The worked examples of docs/redis-layout.md ("Feature keys"), which readers in other languages check
 * their implementation against: the keys, the shard and the little-endian field bytes. */
static void test_documented_examples(void **state)
{
    (void)state;
    static const struct {
        const char *field, *value;
        size_t len;
        uint64_t seed, key;
        unsigned shard;
    } ex[] = {
        {"user_id", "u12", 3, 0xad0012cfd853b051ULL, 0xcb871a23d2e9d329ULL, 4},
        {"hour", "0", 1, 0x38446fc5add1262fULL, 0x9ebdceb3e641ebaaULL, 4},
        {"scenario", "browser", 7, 0x43903afb8e838a17ULL, 0x1cb93a923560dcfbULL, 18},
        {"user_age", "\xff" "missing", 8, 0xd48736052d5110d9ULL, 0xdbec6c01ecfe54e8ULL, 40},
    };
    for (size_t i = 0; i < sizeof ex / sizeof *ex; i++) {
        assert_int_equal(fr_hash_field(ex[i].field), ex[i].seed);
        uint64_t key = fr_hash_value(ex[i].seed, ex[i].value, ex[i].len);
        assert_int_equal(key, ex[i].key);
        assert_int_equal((key * 0x9E3779B97F4A7C15ULL) >> 58, ex[i].shard);
    }
    const unsigned char user_id_u12_field[8] = {0x29, 0xd3, 0xe9, 0xd2, 0x23, 0x1a, 0x87, 0xcb};
    for (int b = 0; b < 8; b++) assert_int_equal((ex[0].key >> (8 * b)) & 0xff, user_id_u12_field[b]);
}

static void test_fields_separate_values(void **state)
{
    (void)state;
    const char *values[] = {"video", "1", "", "a-123", "missing"};
    for (size_t i = 0; i < sizeof values / sizeof *values; i++) {
        uint64_t a = value_key("ad_id", values[i]), b = value_key("user_id", values[i]);
        assert_true(a != b);
        assert_true(a == value_key("ad_id", values[i])); /* and stable within a run */
    }
    assert_true(value_key("ad_id", "1") != value_key("ad_id", "2"));
    assert_true(fr_hash_field("ad_id") != fr_hash_field("ad_id "));
}

static void test_never_zero(void **state)
{
    (void)state;
    uint64_t fh = fr_hash_field("ad_id");
    for (uint32_t i = 0; i < 200000; i++) {
        assert_true(fr_hash_value(fh, &i, sizeof i) != 0);
        assert_true(fr_hash_value(i, &i, sizeof i) != 0); /* any seed, including 0 */
    }
}

static void test_uniform(void **state)
{
    (void)state;
    double sum = 0, lo = 1, hi = -1;
    enum { N = 200000 };
    for (uint64_t n = 0; n < N; n++) {
        float u = fr_hash_uniform(42, n);
        assert_true(u >= -1.0f && u < 1.0f);
        assert_true(u == fr_hash_uniform(42, n));
        sum += u;
        lo = u < lo ? u : lo;
        hi = u > hi ? u : hi;
    }
    assert_true(sum / N > -0.01 && sum / N < 0.01);
    assert_true(lo < -0.999 && hi > 0.999);
    int same = 0;
    for (uint64_t n = 0; n < 100; n++) same += fr_hash_uniform(42, n) == fr_hash_uniform(43, n);
    assert_true(same < 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frozen_values),
        cmocka_unit_test(test_documented_examples),
        cmocka_unit_test(test_fields_separate_values),
        cmocka_unit_test(test_never_zero),
        cmocka_unit_test(test_uniform),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
