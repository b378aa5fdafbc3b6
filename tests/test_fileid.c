/* Replay file identity (fr_fileid): names by real path, resume only in the same content, stored
 * identities decoded with bounds, and the identity's round trip through a checkpoint. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "fr_config.h"
#include "fr_fileid.h"
#include "fr_pipeline.h"
#include "tmpdir.h"

static char *path_in(const char *dir, const char *name)
{
    char *p = malloc(strlen(dir) + strlen(name) + 2);
    assert_non_null(p);
    sprintf(p, "%s/%s", dir, name);
    return p;
}

/* n lines "line <i> <padding>\n" from first on, appended to path (created when absent). */
static void write_lines(const char *path, int first, int n, const char *mode)
{
    FILE *f = fopen(path, mode);
    assert_non_null(f);
    for (int i = first; i < first + n; i++) fprintf(f, "line %06d %s\n", i, "-------------------------------------");
    assert_int_equal(fclose(f), 0);
}

/* What a replay does: identify, read every line (updating the tail), return the end offset. */
static int64_t read_all(const char *path, fr_fileid *id, char *name, size_t cap)
{
    FILE *in = fopen(path, "r");
    assert_non_null(in);
    char err[512];
    if (fr_fileid_of(in, path, name, cap, id, err, sizeof err) != 0) fail_msg("%s", err);
    char *line = NULL;
    size_t lcap = 0;
    ssize_t n;
    while ((n = getline(&line, &lcap, in)) > 0) fr_fileid_read(id, line, (size_t)n);
    int64_t end = (int64_t)ftello(in);
    free(line);
    fclose(in);
    return end;
}

/* fr_fileid_check_resume on the file at path as it is now, with the identity stored at offset. */
static int resume(const char *path, const fr_fileid *stored, int64_t offset, char *err, size_t errlen)
{
    FILE *in = fopen(path, "r");
    assert_non_null(in);
    fr_fileid now;
    char name[FR_SOURCE_NAME_MAX];
    assert_int_equal(fr_fileid_of(in, path, name, sizeof name, &now, err, errlen), 0);
    unsigned char b[FR_FILEID_LEN];
    fr_fileid_encode(stored, b);
    int rc = fr_fileid_check_resume(in, path, &now, b, sizeof b, offset, err, errlen);
    if (rc == 0) {
        assert_int_equal(now.tail_len, stored->tail_len);
        assert_true(now.tail_hash == stored->tail_hash);
    }
    fclose(in);
    return rc;
}

static void test_names(void **state)
{
    (void)state;
    char *d = tmpdir_make("fileid");
    char *d1 = path_in(d, "day1"), *d2 = path_in(d, "day2");
    assert_int_equal(mkdir(d1, 0755), 0);
    assert_int_equal(mkdir(d2, 0755), 0);
    char *f1 = path_in(d1, "events.jsonl"), *f2 = path_in(d2, "events.jsonl");
    write_lines(f1, 0, 10, "w");
    write_lines(f2, 0, 10, "w");
    char n1[FR_SOURCE_NAME_MAX], n2[FR_SOURCE_NAME_MAX], n3[FR_SOURCE_NAME_MAX], legacy[FR_SOURCE_NAME_MAX];
    fr_fileid id;
    read_all(f1, &id, n1, sizeof n1);
    read_all(f2, &id, n2, sizeof n2);
    /* one base name, two files (the backfill of daily logs): two sources */
    assert_string_not_equal(n1, n2);
    assert_int_equal(strncmp(n1, "file:events.jsonl@", 18), 0);
    assert_int_equal(strlen(n1), 18 + 16);
    /* the same file under another spelling of its path, or through a link: one source */
    char *other = path_in(d, "day1/../day1/./events.jsonl"), *link = path_in(d, "link.jsonl");
    assert_int_equal(symlink(f1, link), 0);
    read_all(other, &id, n3, sizeof n3);
    assert_string_equal(n1, n3);
    read_all(link, &id, n3, sizeof n3);
    assert_string_equal(n1, n3);
    fr_fileid_legacy_name(f1, legacy, sizeof legacy);
    assert_string_equal(legacy, "file:events.jsonl");
    /* a pipe can be neither identified nor resumed */
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    FILE *p = fdopen(fds[0], "r");
    char err[512];
    assert_int_equal(fr_fileid_of(p, "/dev/stdin", n3, sizeof n3, &id, err, sizeof err), -1);
    assert_non_null(strstr(err, "not a regular file"));
    fclose(p);
    close(fds[1]);
    free(other), free(link), free(f1), free(f2), free(d1), free(d2);
    tmpdir_remove(d);
}

static void test_decode_bounds(void **state)
{
    (void)state;
    fr_fileid id = {.path_hash = 0x1122334455667788ull, .head_len = 4096, .head_hash = 7, .tail_len = 40, .tail_hash = 9};
    unsigned char b[FR_FILEID_LEN], c[FR_FILEID_LEN + 1];
    fr_fileid_encode(&id, b);
    fr_fileid out;
    assert_int_equal(fr_fileid_decode(b, sizeof b, &out), 0);
    assert_true(out.path_hash == id.path_hash && out.head_hash == id.head_hash && out.tail_hash == id.tail_hash);
    assert_int_equal(out.head_len, id.head_len);
    assert_int_equal(out.tail_len, id.tail_len);
    assert_int_equal(fr_fileid_decode(b, sizeof b - 1, &out), -1);
    memcpy(c, b, sizeof b);
    assert_int_equal(fr_fileid_decode(c, sizeof c, &out), -1);
    assert_int_equal(fr_fileid_decode(NULL, 0, &out), -1);
    assert_int_equal(fr_fileid_decode(b, -1, &out), -1);
    memcpy(c, b, sizeof b);
    c[0] = 'X';
    assert_int_equal(fr_fileid_decode(c, sizeof b, &out), -1);
    memcpy(c, b, sizeof b);
    c[14] = 0x01; /* head length 4096 + 65536 */
    assert_int_equal(fr_fileid_decode(c, sizeof b, &out), -1);
    memcpy(c, b, sizeof b);
    c[27] = 0x80; /* tail length past 2^31 */
    assert_int_equal(fr_fileid_decode(c, sizeof b, &out), -1);
}

/* A log that grew resumes; one truncated, rewritten at its start or at the resume point, or whose
 * last line was incomplete and has grown, is refused and says why; so is an offset without an
 * identity, or with a damaged one. */
static void test_resume_rules(void **state)
{
    (void)state;
    char *d = tmpdir_make("fileid");
    char *f = path_in(d, "events.jsonl");
    char name[FR_SOURCE_NAME_MAX], err[1024];
    fr_fileid id;
    write_lines(f, 0, 300, "w");
    int64_t end = read_all(f, &id, name, sizeof name);

    /* unchanged, then appended to: resumes */
    assert_int_equal(resume(f, &id, end, err, sizeof err), 0);
    write_lines(f, 300, 100, "a");
    assert_int_equal(resume(f, &id, end, err, sizeof err), 0);

    /* truncated */
    assert_int_equal(truncate(f, end - 100), 0);
    assert_int_equal(resume(f, &id, end, err, sizeof err), -1);
    assert_non_null(strstr(err, "shorter than the"));

    /* rewritten at the start (another day's file under the same path), as long or longer */
    write_lines(f, 1000, 400, "w");
    assert_int_equal(resume(f, &id, end, err, sizeof err), -1);
    assert_non_null(strstr(err, "first 4096 bytes differ"));

    /* the same start, other content at the resume point */
    write_lines(f, 0, 200, "w");
    write_lines(f, 5000, 200, "a");
    assert_int_equal(resume(f, &id, end, err, sizeof err), -1);
    assert_non_null(strstr(err, "the line before byte"));
    print_message("  refused: %s\n", err);

    /* the last line read had no newline, and the file grew since */
    write_lines(f, 0, 300, "w");
    FILE *a = fopen(f, "a");
    fputs("{\"type\":\"impr", a);
    fclose(a);
    int64_t cut = read_all(f, &id, name, sizeof name);
    assert_int_equal(resume(f, &id, cut, err, sizeof err), 0); /* unchanged: nothing to cut */
    a = fopen(f, "a");
    fputs("ession\"}\n", a);
    fclose(a);
    assert_int_equal(resume(f, &id, cut, err, sizeof err), -1);
    assert_non_null(strstr(err, "no newline"));

    /* an offset without an identity, a damaged identity, another file's identity */
    write_lines(f, 0, 300, "w");
    end = read_all(f, &id, name, sizeof name);
    FILE *in = fopen(f, "r");
    fr_fileid now;
    assert_int_equal(fr_fileid_of(in, f, name, sizeof name, &now, err, sizeof err), 0);
    assert_int_equal(fr_fileid_check_resume(in, f, &now, NULL, -1, end, err, sizeof err), -1);
    assert_non_null(strstr(err, "no identity"));
    unsigned char b[FR_FILEID_LEN];
    fr_fileid_encode(&id, b);
    assert_int_equal(fr_fileid_check_resume(in, f, &now, b, 20, end, err, sizeof err), -1);
    assert_non_null(strstr(err, "damaged"));
    fr_fileid other = id;
    other.path_hash ^= 1;
    fr_fileid_encode(&other, b);
    assert_int_equal(fr_fileid_check_resume(in, f, &now, b, sizeof b, end, err, sizeof err), -1);
    assert_non_null(strstr(err, "another file"));
    fclose(in);
    free(f);
    tmpdir_remove(d);
}

/* The pipeline stores a source's identity with its offset and gives both back after a restart. */
static void test_identity_in_checkpoint(void **state)
{
    (void)state;
    char *dir = tmpdir_make("fileid");
    fr_config c;
    fr_config_defaults(&c);
    snprintf(c.checkpoint_dir, sizeof c.checkpoint_dir, "%s", dir);
    c.redis_host[0] = '\0';
    char err[512];
    fr_pipeline *p = fr_pipeline_open(&c, err, sizeof err);
    if (!p) fail_msg("open: %s", err);
    int64_t off;
    assert_int_equal(fr_pipeline_register_source(p, "file:a@1", &off), 0);
    assert_int_equal(off, -1);
    unsigned char id[FR_FILEID_LEN], got[FR_SOURCE_IDENTITY_MAX];
    for (int i = 0; i < FR_FILEID_LEN; i++) id[i] = (unsigned char)(i * 7 + 1);
    assert_int_equal(fr_pipeline_source_identity(p, "file:a@1", got, sizeof got), -1);
    assert_int_equal(fr_pipeline_set_source_identity(p, "file:a@1", id, sizeof id), 0);
    assert_int_equal(fr_pipeline_set_source_identity(p, "file:unknown", id, sizeof id), -1);
    unsigned char big[FR_SOURCE_IDENTITY_MAX + 1] = {0};
    assert_int_equal(fr_pipeline_set_source_identity(p, "file:a@1", big, sizeof big), -1);
    const char msg[] = "{not json";
    assert_int_equal(fr_pipeline_message(p, "file:a@1", 123, msg, strlen(msg), err, sizeof err), 0);
    assert_int_equal(fr_pipeline_checkpoint(p, err, sizeof err), 0);
    fr_pipeline_close(p);

    p = fr_pipeline_open(&c, err, sizeof err);
    if (!p) fail_msg("reopen: %s", err);
    assert_int_equal(fr_pipeline_source_offset(p, "file:a@1"), 123);
    assert_int_equal(fr_pipeline_source_offset(p, "file:b@2"), -1);
    assert_int_equal(fr_pipeline_source_identity(p, "file:a@1", got, sizeof got), FR_FILEID_LEN);
    assert_memory_equal(got, id, sizeof id);
    fr_pipeline_close(p);
    tmpdir_remove(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_decode_bounds),
        cmocka_unit_test(test_resume_rules),
        cmocka_unit_test(test_identity_in_checkpoint),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
