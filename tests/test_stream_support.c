/* Unit tests for the small pieces under stream/ and base/ that have no test of their own: the
 * oracle policy's lookahead table (fr_oracle) and the bounded cursors of the byte codec (fr_bytes). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fr_bytes.h"
#include "fr_oracle.h"
#include "tmpdir.h"

/* ---- fr_oracle ---- */

static void test_oracle_first_conversion_in_file_order(void **state)
{
    (void)state;
    char *dir = tmpdir_make("oracle");
    char path[512];
    snprintf(path, sizeof path, "%s/events.jsonl", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    /* a later conversion with an earlier ts must not win: the oracle replays the file's order */
    fputs("{\"type\":\"impression\",\"id\":\"a\",\"ts\":1,\"scenario\":\"video\",\"features\":{}}\n"
          "{\"type\":\"conversion\",\"id\":\"a\",\"ts\":500}\n"
          "not json\n"
          "\n"
          "{\"type\":\"click\",\"id\":\"b\",\"ts\":7}\n"
          "{\"type\":\"conversion\",\"id\":\"a\",\"ts\":300}\n"
          "{\"type\":\"conversion\",\"id\":\"c\",\"ts\":900}\n",
          f);
    fclose(f);

    fr_schema s;
    fr_schema_defaults(&s);
    char err[256];
    FILE *in = fopen(path, "r");
    assert_non_null(in);
    fr_oracle *o = fr_oracle_scan(&s, in, path, err, sizeof err);
    fclose(in);
    if (!o) fail_msg("scan: %s", err);
    assert_int_equal(fr_oracle_count(o), 3);
    int64_t ts = -1;
    assert_int_equal(fr_oracle_lookup(o, "a", 1, &ts), 1);
    assert_int_equal(ts, 500);
    assert_int_equal(fr_oracle_lookup(o, "c", 1, &ts), 1);
    assert_int_equal(ts, 900);
    ts = -1;
    assert_int_equal(fr_oracle_lookup(o, "b", 1, &ts), 0); /* clicked, never converted */
    assert_int_equal(fr_oracle_lookup(o, "ab", 1, &ts), 1); /* id_len bounds the id */
    assert_int_equal(fr_oracle_lookup(o, "zz", 2, &ts), 0);
    fr_oracle_free(o);
    tmpdir_remove(dir);
}

/* A read error is a refusal that names the input, never a lookahead cut short (conversions the
 * table lacks would train as negatives). */
static void test_oracle_read_error(void **state)
{
    (void)state;
    fr_schema s;
    fr_schema_defaults(&s);
    char err[256] = "";
    FILE *wo = fopen("/dev/null", "w"); /* opened for writing only: every read fails */
    assert_non_null(wo);
    assert_null(fr_oracle_scan(&s, wo, "day1.jsonl", err, sizeof err));
    assert_non_null(strstr(err, "cannot read day1.jsonl"));
    fclose(wo);
}

/* ---- fr_bytes ---- */

static void test_bytes_round_trip(void **state)
{
    (void)state;
    unsigned char buf[1 + 2 + 4 + 8 + 4 + 8];
    fr_bytes_out o = fr_bytes_out_init(buf, sizeof buf);
    fr_out_u8(&o, 0xAB);
    fr_out_u16le(&o, 0x1234);
    fr_out_u32le(&o, 0xDEADBEEFu);
    fr_out_u64le(&o, UINT64_C(0x0102030405060708));
    fr_out_f32le(&o, -1.5f);
    fr_out_f64le(&o, 0.1);
    assert_false(o.overrun);
    assert_int_equal(o.left, 0);
    /* little-endian on every host */
    assert_int_equal(buf[1], 0x34);
    assert_int_equal(buf[2], 0x12);
    assert_int_equal(buf[7], 0x08);
    assert_int_equal(buf[14], 0x01);

    fr_bytes_in r = fr_bytes_in_init(buf, sizeof buf);
    assert_int_equal(fr_in_u8(&r), 0xAB);
    assert_int_equal(fr_in_u16le(&r), 0x1234);
    assert_int_equal(fr_in_u32le(&r), 0xDEADBEEFu);
    assert_true(fr_in_u64le(&r) == UINT64_C(0x0102030405060708));
    assert_true(fr_in_f32le(&r) == -1.5f);
    assert_true(fr_in_f64le(&r) == 0.1);
    assert_false(r.overrun);
    assert_int_equal(r.left, 0);

    unsigned char be[8];
    fr_put_u64be(be, UINT64_C(0x0102030405060708));
    assert_int_equal(be[0], 0x01);
    assert_true(fr_get_u64be(be) == UINT64_C(0x0102030405060708));
}

static void test_bytes_overrun_is_sticky(void **state)
{
    (void)state;
    unsigned char buf[6];
    memset(buf, 0xEE, sizeof buf);
    fr_bytes_out o = fr_bytes_out_init(buf, 5);
    fr_out_u32le(&o, 1);
    fr_out_u16le(&o, 2); /* does not fit: nothing written */
    fr_out_u8(&o, 3);    /* would fit, but the cursor already overran */
    assert_true(o.overrun);
    assert_int_equal(buf[4], 0xEE);
    assert_int_equal(buf[5], 0xEE);

    const unsigned char in[3] = {1, 2, 3};
    fr_bytes_in r = fr_bytes_in_init(in, sizeof in);
    assert_int_equal(fr_in_u16le(&r), 0x0201);
    assert_int_equal(fr_in_u32le(&r), 0); /* short */
    assert_true(r.overrun);
    assert_int_equal(fr_in_u8(&r), 0); /* sticky */

    fr_bytes_in none = fr_bytes_in_init(NULL, 10);
    assert_int_equal(fr_in_u8(&none), 0);
    assert_true(none.overrun);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_oracle_first_conversion_in_file_order),
        cmocka_unit_test(test_oracle_read_error),
        cmocka_unit_test(test_bytes_round_trip),
        cmocka_unit_test(test_bytes_overrun_is_sticky),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
