/* A checkpoint is untrusted input. One real checkpoint is built through the pipeline (esdfm, so it
 * holds helper heads; an admission filter; pending join entries and a part-filled mini-batch), then
 * every part the restore reads is corrupted, one at a time, straight in RocksDB: each must be
 * refused with a message naming the part, never accepted and never a crash. Then the configuration
 * it is restored under: fields or scenarios renamed, reordered or added are refused by key, a
 * declaration order that keeps every slot is not. Last, `freshet inspect` exits non-zero when a
 * part cannot be read. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <rocksdb/c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fr_bytes.h"
#include "fr_ckpt.h"
#include "fr_config.h"
#include "fr_gen.h"
#include "fr_pipeline.h"
#include "fr_sample_codec.h"
#include "gen_lines.h"
#include "run_cli.h"
#include "tmpdir.h"

/* The default fields (fr_config_defaults) written out, user_id with an admission filter. */
#define F_USER "{\"name\":\"user_id\",\"kind\":\"categorical\",\"admit_after\":2}"
#define F_AGE "{\"name\":\"user_age\",\"kind\":\"categorical\"}"
#define F_DEVICE "{\"name\":\"device\",\"kind\":\"categorical\"}"
#define F_AD "{\"name\":\"ad_id\",\"kind\":\"categorical\"}"
#define F_REST                                                                                                \
    "{\"name\":\"advertiser\",\"kind\":\"categorical\"},{\"name\":\"category\",\"kind\":\"categorical\"},"   \
    "{\"name\":\"hour\",\"kind\":\"categorical\"}"
#define F_PRICE "{\"name\":\"price\",\"kind\":\"numeric\",\"transform\":\"log1p\"}"
#define F_RECENT "{\"name\":\"recent_ads\",\"kind\":\"multi\",\"max_len\":8}"
#define FIELDS "[" F_USER "," F_AGE "," F_DEVICE "," F_AD "," F_REST "," F_PRICE "," F_RECENT "]"
#define SCENARIOS "[\"video\",\"browser\",\"music\",\"third_party\"]"

static char *g_root;     /* scratch directory of the whole test */
static char g_pristine[256];

static fr_config config_with(const char *dir, const char *fields, const char *scenarios, const char *extra)
{
    char json[4096], err[512];
    snprintf(json, sizeof json,
             "{\"fields\": %s, \"scenarios\": %s, \"redis\": {\"host\": \"\"}, "
             "\"checkpoint\": {\"dir\": \"%s\", \"every_seconds\": 0, \"every_samples\": 0}%s}",
             fields, scenarios, dir, extra ? extra : "");
    fr_config c;
    if (fr_config_load_string(&c, json, err, sizeof err) != 0) fail_msg("config: %s", err);
    return c;
}

static fr_config config_for(const char *dir) { return config_with(dir, FIELDS, SCENARIOS, NULL); }

/* ---- RocksDB, straight (what a flipped bit or a hand edit does) ---- */

typedef struct {
    rocksdb_t *db;
    rocksdb_options_t *opts;
    rocksdb_column_family_handle_t *cf[2]; /* default, join */
    rocksdb_readoptions_t *ro;
    rocksdb_writeoptions_t *wo;
} raw_db;

static raw_db raw_open(const char *dir)
{
    raw_db r = {0};
    r.opts = rocksdb_options_create();
    r.ro = rocksdb_readoptions_create();
    r.wo = rocksdb_writeoptions_create();
    const char *names[2] = {"default", "join"};
    const rocksdb_options_t *o[2] = {r.opts, r.opts};
    char *err = NULL;
    r.db = rocksdb_open_column_families(r.opts, dir, 2, names, o, r.cf, &err);
    if (err) fail_msg("rocksdb open %s: %s", dir, err);
    return r;
}

static void raw_close(raw_db *r)
{
    rocksdb_column_family_handle_destroy(r->cf[0]);
    rocksdb_column_family_handle_destroy(r->cf[1]);
    rocksdb_close(r->db);
    rocksdb_options_destroy(r->opts);
    rocksdb_readoptions_destroy(r->ro);
    rocksdb_writeoptions_destroy(r->wo);
}

/* A malloc'ed copy of the value (NULL when absent). */
static unsigned char *raw_get(raw_db *r, int cf, const void *k, size_t kl, size_t *vl)
{
    char *err = NULL;
    char *v = rocksdb_get_cf(r->db, r->ro, r->cf[cf], k, kl, vl, &err);
    assert_null(err);
    if (!v) return NULL;
    unsigned char *copy = malloc(*vl ? *vl : 1);
    memcpy(copy, v, *vl);
    rocksdb_free(v);
    return copy;
}

static void raw_put(raw_db *r, int cf, const void *k, size_t kl, const void *v, size_t vl)
{
    char *err = NULL;
    rocksdb_put_cf(r->db, r->wo, r->cf[cf], k, kl, v, vl, &err);
    assert_null(err);
}

static void raw_delete(raw_db *r, int cf, const void *k, size_t kl)
{
    char *err = NULL;
    rocksdb_delete_cf(r->db, r->wo, r->cf[cf], k, kl, &err);
    assert_null(err);
}

/* The first key of the family starting with prefix (prefix_len 0: the first key), malloc'ed. */
static char *raw_first_key(raw_db *r, int cf, const char *prefix, size_t prefix_len, size_t *kl)
{
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(r->db, r->ro, r->cf[cf]);
    if (prefix_len)
        rocksdb_iter_seek(it, prefix, prefix_len);
    else
        rocksdb_iter_seek_to_first(it);
    assert_true(rocksdb_iter_valid(it));
    const char *k = rocksdb_iter_key(it, kl);
    assert_true(*kl >= prefix_len && memcmp(k, prefix, prefix_len) == 0);
    char *copy = malloc(*kl);
    memcpy(copy, k, *kl);
    rocksdb_iter_destroy(it);
    return copy;
}

static unsigned char *blob_get(raw_db *r, const char *name, size_t *len)
{
    char k[64];
    snprintf(k, sizeof k, "C%s", name);
    unsigned char *v = raw_get(r, 0, k, strlen(k), len);
    assert_non_null(v);
    return v;
}

static void blob_put(raw_db *r, const char *name, const void *v, size_t len)
{
    char k[64];
    snprintf(k, sizeof k, "C%s", name);
    raw_put(r, 0, k, strlen(k), v, len);
}

static void copy_dir(const char *from, const char *to)
{
    assert_int_equal(mkdir(to, 0755), 0);
    DIR *d = opendir(from);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        char a[512], b[512];
        snprintf(a, sizeof a, "%s/%s", from, e->d_name);
        snprintf(b, sizeof b, "%s/%s", to, e->d_name);
        FILE *in = fopen(a, "rb"), *out = fopen(b, "wb");
        assert_true(in && out);
        char buf[65536];
        size_t n;
        while ((n = fread(buf, 1, sizeof buf, in)) > 0) assert_int_equal(fwrite(buf, 1, n, out), n);
        fclose(in);
        fclose(out);
    }
    closedir(d);
}

/* ---- the pristine checkpoint ---- */

static int group_setup(void **state)
{
    (void)state;
    g_root = tmpdir_make("trust");
    snprintf(g_pristine, sizeof g_pristine, "%s/pristine", g_root);
    fr_gen_opts o;
    fr_gen_defaults(&o);
    o.impressions = 6000;
    o.days = 1;
    o.seed = 3;
    o.n_users = 800;
    o.n_ads = 100;
    lines L = gen_lines(&o, NULL, NULL);
    fr_config c = config_for(g_pristine);
    char err[512];
    fr_pipeline *p = fr_pipeline_open(&c, err, sizeof err);
    if (!p) fail_msg("open: %s", err);
    assert_int_equal(fr_pipeline_register_source(p, "file", NULL), 0);
    /* Stop in the middle of the stream: join entries pending, a mini-batch part filled. */
    size_t stop = L.n / 2;
    for (size_t i = 0; i < stop; i++)
        if (fr_pipeline_message(p, "file", (int64_t)i + 1, L.line[i], L.len[i], err, sizeof err) != 0)
            fail_msg("message %zu: %s", i, err);
    for (size_t i = stop; fr_pipeline_get_counters(p)->samples_buffered == 0 && i < L.n; i++)
        if (fr_pipeline_message(p, "file", (int64_t)i + 1, L.line[i], L.len[i], err, sizeof err) != 0)
            fail_msg("message %zu: %s", i, err);
    assert_true(fr_pipeline_get_counters(p)->samples_buffered > 0);
    assert_true(fr_pipeline_pending(p) > 100);
    if (fr_pipeline_checkpoint(p, err, sizeof err) != 0) fail_msg("checkpoint: %s", err);
    fr_pipeline_close(p);
    lines_free(&L);
    /* It restores as it is. */
    p = fr_pipeline_open(&c, err, sizeof err);
    if (!p) fail_msg("the pristine checkpoint is refused: %s", err);
    fr_pipeline_close(p);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    tmpdir_remove(g_root);
    return 0;
}

/* A fresh copy of the pristine checkpoint, opened raw for corrupting. */
static int g_case;
static raw_db corrupt_begin(char dir[256])
{
    snprintf(dir, 256, "%s/case%d", g_root, ++g_case);
    copy_dir(g_pristine, dir);
    return raw_open(dir);
}

/* Restoring the corrupted copy must fail with a message holding every one of the strings. */
static void expect_refused(raw_db *r, const char *dir, const char *want, const char *want2)
{
    raw_close(r);
    fr_config c = config_for(dir);
    char err[512] = "";
    fr_pipeline *p = fr_pipeline_open(&c, err, sizeof err);
    if (p) {
        fr_pipeline_close(p);
        fail_msg("a checkpoint with a corrupt %s was restored", want);
    }
    if (!strstr(err, want) || (want2 && !strstr(err, want2)))
        fail_msg("refused, but the message does not name \"%s\"%s%s: %s", want, want2 ? " / " : "",
                 want2 ? want2 : "", err);
    print_message("refused: %s\n", err);
}

/* The stored formats are little-endian, and so are the machines this runs on. */
static void put_f32(unsigned char *p, float f) { memcpy(p, &f, 4); }
static void add_u64le(unsigned char *p, int64_t d)
{
    uint64_t v;
    memcpy(&v, p, 8);
    v += (uint64_t)d;
    memcpy(p, &v, 8);
}

/* ---- the daemon's blobs ---- */

static void test_sources(void **state)
{
    (void)state;
    char dir[256];
    raw_db r = corrupt_begin(dir);
    size_t len;
    unsigned char *one = blob_get(&r, "sources", &len);
    fr_stored_source s[300];
    char why[256];
    assert_int_equal(fr_pipeline_sources_decode(one, len, s, why, sizeof why), 1);
    /* 300 entries (the limit is 256): once read past a stack array */
    for (int i = 1; i < 300; i++) {
        s[i] = s[0];
        snprintf(s[i].name, sizeof s[i].name, "s%03d", i);
    }
    size_t n = fr_pipeline_sources_encode(s, 300, NULL, 0);
    unsigned char *many = malloc(n);
    fr_pipeline_sources_encode(s, 300, many, n);
    blob_put(&r, "sources", many, n);
    expect_refused(&r, dir, "blob \"sources\"", "limit 256");

    /* an event time near INT64_MIN: the watermark's lateness subtraction overflowed */
    r = corrupt_begin(dir);
    fr_stored_source bad = s[0];
    bad.max_ts = INT64_MIN + 1;
    unsigned char b1[256];
    blob_put(&r, "sources", b1, fr_pipeline_sources_encode(&bad, 1, b1, sizeof b1));
    expect_refused(&r, dir, "blob \"sources\"", "event time");

    /* a NUL inside a name (a stored name has its length, never a terminator) */
    r = corrupt_begin(dir);
    memcpy(b1, one, len);
    b1[4] = '\0'; /* n u16, name length u8, then the name "file" */
    blob_put(&r, "sources", b1, len);
    expect_refused(&r, dir, "blob \"sources\"", "NUL");

    /* the same source twice */
    r = corrupt_begin(dir);
    s[1] = s[0];
    blob_put(&r, "sources", b1, fr_pipeline_sources_encode(s, 2, b1, sizeof b1));
    expect_refused(&r, dir, "blob \"sources\"", "twice");
    free(many);
    free(one);
}

static void test_offsets(void **state)
{
    (void)state;
    char dir[256];
    raw_db r = corrupt_begin(dir);
    raw_put(&r, 0, "Ofile", 5, "abc", 3); /* 3 bytes: once reported as "too many sources" */
    expect_refused(&r, dir, "offset key \"Ofile\"", "3 bytes");

    r = corrupt_begin(dir);
    const unsigned char minus5[8] = {0xfb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    raw_put(&r, 0, "Ofile", 5, minus5, 8);
    expect_refused(&r, dir, "offset \"Ofile\"", "below 0");
}

static void test_counters(void **state)
{
    (void)state;
    char dir[256];
    raw_db r = corrupt_begin(dir);
    size_t len;
    unsigned char *blob = blob_get(&r, "counters", &len);
    fr_pipeline_counters c;
    assert_int_equal(fr_pipeline_counters_decode(blob, len, &c), 0);
    assert_int_equal(len, fr_pipeline_counters_encode(&c, NULL, 0));
    c.rejected[1] = c.consumed + 1;
    fr_pipeline_counters_encode(&c, blob, len);
    blob_put(&r, "counters", blob, len);
    expect_refused(&r, dir, "blob \"counters\"", NULL);

    r = corrupt_begin(dir);
    c.rejected[1] = 0;
    c.samples_buffered += 1;
    fr_pipeline_counters_encode(&c, blob, len);
    blob_put(&r, "counters", blob, len);
    expect_refused(&r, dir, "blob \"counters\"", "blob \"batch\"");
    free(blob);
}

/* The stored metrics, decoded (three tasks, four scenarios and "all"), and written back. */
static fr_metric *metrics_get(raw_db *r, size_t *n)
{
    size_t len;
    unsigned char *blob = blob_get(r, "metrics", &len);
    assert_true(len >= 4);
    *n = fr_get_u32le(blob);
    fr_metric *m = calloc(*n, sizeof *m);
    size_t off = 4;
    for (size_t i = 0; i < *n; i++) {
        long used = fr_metric_decode(&m[i], blob + off, len - off);
        assert_true(used > 0);
        off += (size_t)used;
    }
    assert_int_equal(off, len);
    free(blob);
    return m;
}

static void metrics_put(raw_db *r, const fr_metric *m, size_t n)
{
    size_t len = 4;
    for (size_t i = 0; i < n; i++) len += fr_metric_encode(&m[i], NULL, 0);
    unsigned char *blob = malloc(len);
    fr_put_u32le(blob, (uint32_t)n);
    size_t off = 4;
    for (size_t i = 0; i < n; i++) off += fr_metric_encode(&m[i], blob + off, len - off);
    blob_put(r, "metrics", blob, len);
    free(blob);
}

static void test_metrics(void **state)
{
    (void)state;
    char dir[256];
    raw_db r = corrupt_begin(dir);
    size_t n;
    fr_metric *m = metrics_get(&r, &n);
    assert_int_equal(n, 3 * 5); /* three tasks, four scenarios and "all" */
    m[7].pos[100] = NAN;
    metrics_put(&r, m, n);
    expect_refused(&r, dir, "blob \"metrics\"", "cvr");

    r = corrupt_begin(dir);
    m[7].pos[100] = 0;
    m[2].weight = -1;
    metrics_put(&r, m, n);
    expect_refused(&r, dir, "blob \"metrics\"", "ctr");

    /* one metric fewer: written with another scenario list */
    r = corrupt_begin(dir);
    m[2].weight = 0;
    metrics_put(&r, m, n - 1);
    expect_refused(&r, dir, "blob \"metrics\"", "scenario list");
    free(m);
}

/* The history's open bucket (blob "history"): refused by name when malformed; absent (a checkpoint
 * from before the history) it is not an error, the history starts at the restore. */
static void test_history(void **state)
{
    (void)state;
    char dir[256];
    raw_db r = corrupt_begin(dir);
    size_t len;
    unsigned char *blob = blob_get(&r, "history", &len);
    assert_true(len > 34);
    blob_put(&r, "history", blob, len - 1);
    expect_refused(&r, dir, "blob \"history\"", NULL);

    r = corrupt_begin(dir);
    fr_put_u16le(blob + 33, 9); /* n: another scenario list */
    blob_put(&r, "history", blob, len);
    expect_refused(&r, dir, "blob \"history\"", "metrics");

    r = corrupt_begin(dir);
    raw_delete(&r, 0, "Chistory", 8);
    raw_close(&r);
    fr_config c = config_for(dir);
    char err[512];
    fr_pipeline *p = fr_pipeline_open(&c, err, sizeof err);
    if (!p) fail_msg("a checkpoint without the history is refused: %s", err);
    fr_pipeline_close(p);
    free(blob);
}

static void batch_put(raw_db *r, const fr_sample *s, int n)
{
    size_t len = FR_SAMPLE_LIMITS_BYTES + 4;
    for (int i = 0; i < n; i++) len += fr_sample_encode(&s[i], NULL, 0);
    unsigned char *blob = malloc(len);
    fr_sample_limits_encode(blob);
    fr_put_u32le(blob + FR_SAMPLE_LIMITS_BYTES, (uint32_t)n);
    size_t off = FR_SAMPLE_LIMITS_BYTES + 4;
    for (int i = 0; i < n; i++) off += fr_sample_encode(&s[i], blob + off, len - off);
    blob_put(r, "batch", blob, len);
    free(blob);
}

static void test_batch(void **state)
{
    (void)state;
    size_t len;
    char dir[256];
    raw_db r = corrupt_begin(dir);
    unsigned char *blob = blob_get(&r, "batch", &len);
    enum { CAP = 1 << 14 };
    fr_sample *s = calloc(CAP, sizeof *s);
    char why[256];
    const int n = fr_pipeline_batch_decode(blob, len, s, CAP, 4, why, sizeof why);
    if (n < 1) fail_msg("the pristine batch: %s", why);
    const fr_sample keep = s[0];
    /* scenario 1000: once written out of bounds in the metrics */
    s[0].scenario = 1000;
    batch_put(&r, s, n);
    expect_refused(&r, dir, "blob \"batch\"", "sample 0: its scenario");

    static const char *const what[] = {"kind", "weight", "label", "numeric feature", "multi_len"};
    for (size_t i = 0; i < sizeof what / sizeof what[0]; i++) {
        s[0] = keep;
        switch (i) {
        case 0: s[0].kind = 99; break;
        case 1: s[0].weight[FR_TASK_CTR] = NAN; break;
        case 2: s[0].label[FR_TASK_CVR] = 2; break;
        case 3: s[0].f.num[0] = INFINITY; break;
        default: s[0].f.multi_len[1] = 200; break;
        }
        r = corrupt_begin(dir);
        batch_put(&r, s, n);
        expect_refused(&r, dir, "blob \"batch\"", what[i]);
    }

    /* a build with other limits: refused by name, never misread */
    r = corrupt_begin(dir);
    blob[1] ^= 1; /* FR_MAX_CAT */
    blob_put(&r, "batch", blob, len);
    expect_refused(&r, dir, "blob \"batch\"", "other sample limits");
    free(blob);
    free(s);
}

static void test_guard(void **state)
{
    (void)state;
    size_t len;
    char dir[256];
    raw_db r = corrupt_begin(dir);
    unsigned char *blob = blob_get(&r, "guard", &len);
    fr_guard g;
    char why[256];
    if (fr_guard_decode(&g, blob, len, why, sizeof why) != 0) fail_msg("the pristine guard: %s", why);
    const fr_guard keep = g;
    g.reason = 7;
    blob_put(&r, "guard", blob, fr_guard_encode(&g, blob, len));
    expect_refused(&r, dir, "blob \"guard\"", "reason");

    r = corrupt_begin(dir);
    g = keep;
    g.cvr.den_l = NAN;
    blob_put(&r, "guard", blob, fr_guard_encode(&g, blob, len));
    expect_refused(&r, dir, "blob \"guard\"", "finite");

    r = corrupt_begin(dir);
    g = keep;
    g.trips = 3; /* three pauses, no resume, yet running */
    blob_put(&r, "guard", blob, fr_guard_encode(&g, blob, len));
    expect_refused(&r, dir, "blob \"guard\"", "trips");

    /* times near INT64_MIN: the first sample's time minus them overflowed (found by fuzz_guard) */
    r = corrupt_begin(dir);
    g = keep;
    g.first_ts = g.last_ts = INT64_MIN + 1;
    blob_put(&r, "guard", blob, fr_guard_encode(&g, blob, len));
    expect_refused(&r, dir, "blob \"guard\"", "below 0");
    free(blob);
}

/* Every part of format 3 cut short by a byte, or by half, or missing: refused, naming the part. */
static void test_parts_truncated_or_missing(void **state)
{
    (void)state;
    static const char *const parts[] = {"guard", "counters", "metrics", "batch", "sources", "evtime", "manifest"};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        for (int cut = 0; cut < 3; cut++) {
            char dir[256], want[64];
            raw_db r = corrupt_begin(dir);
            size_t len;
            unsigned char *blob = blob_get(&r, parts[i], &len);
            snprintf(want, sizeof want, "blob \"%s\"", parts[i]);
            if (cut == 2) {
                char k[64];
                snprintf(k, sizeof k, "C%s", parts[i]);
                raw_delete(&r, 0, k, strlen(k));
                expect_refused(&r, dir, want, "missing");
            } else {
                blob_put(&r, parts[i], blob, cut == 0 ? len - 1 : len / 2);
                expect_refused(&r, dir, want, NULL);
            }
            free(blob);
        }
    }
    /* an event-time source name with a NUL inside: once restored as another source ("f"), whose next
     * checkpoint no restore read (found by fuzz_evtime) */
    {
        char dir[256];
        raw_db r = corrupt_begin(dir);
        size_t len;
        unsigned char *blob = blob_get(&r, "evtime", &len);
        assert_true(len > 11 && memcmp(blob + 7, "file", 4) == 0); /* version u8, count u32, name length u16 */
        blob[8] = '\0';
        blob_put(&r, "evtime", blob, len);
        expect_refused(&r, dir, "blob \"evtime\"", "corrupt");
        free(blob);
    }
    /* bins listed out of order */
    char dir[256];
    raw_db r = corrupt_begin(dir);
    size_t n;
    fr_metric *m = metrics_get(&r, &n);
    size_t len;
    unsigned char *blob = blob_get(&r, "metrics", &len);
    /* the first metric holding two bins: swap their indexes */
    size_t off = 4;
    int done = 0;
    for (size_t i = 0; i < n && !done; i++) {
        unsigned nb = (unsigned)blob[off + 40] | (unsigned)blob[off + 41] << 8;
        if (nb >= 2) {
            unsigned char *b0 = blob + off + 42, *b1 = b0 + 18, t0 = b0[0], t1 = b0[1];
            b0[0] = b1[0], b0[1] = b1[1], b1[0] = t0, b1[1] = t1;
            done = 1;
        }
        off += fr_metric_encode(&m[i], NULL, 0);
    }
    assert_true(done);
    blob_put(&r, "metrics", blob, len);
    expect_refused(&r, dir, "blob \"metrics\"", "out of order");
    free(blob);
    free(m);
}

/* A directory of format version 2 (parts stored as the writing host's structs) is refused by name,
 * saying what to do; nothing in it is read as version 3. */
static void test_version2_refused(void **state)
{
    (void)state;
    char dir[256];
    raw_db r = corrupt_begin(dir);
    const unsigned char v2[8] = {'F', 'R', 'C', '1', 2, 0, 0, 0};
    raw_put(&r, 0, "#", 1, v2, sizeof v2);
    expect_refused(&r, dir, "format version 2", "replay the input log into a new checkpoint.dir");
}

static void test_dfm_heads(void **state)
{
    (void)state;
    size_t len;
    char dir[256];
    raw_db r = corrupt_begin(dir);
    unsigned char *h = blob_get(&r, "dfm_heads", &len);
    put_f32(h + 32 + 4 * 1000, NAN); /* a weight of f_dp (after the header, the biases and their accumulators) */
    blob_put(&r, "dfm_heads", h, len);
    expect_refused(&r, dir, "blob \"dfm_heads\"", NULL);
    free(h);
}

static void test_lifecycle_manifest_admission(void **state)
{
    (void)state;
    size_t len;
    char dir[256];
    raw_db r = corrupt_begin(dir);
    unsigned char *l = blob_get(&r, "lifecycle", &len);
    assert_int_equal(len, 12);
    memset(l + 4, 0xff, 8); /* clock -1 ms */
    blob_put(&r, "lifecycle", l, len);
    expect_refused(&r, dir, "blob \"lifecycle\"", "negative");
    free(l);

    r = corrupt_begin(dir);
    raw_delete(&r, 0, "Cmanifest", 9);
    expect_refused(&r, dir, "blob \"manifest\"", "missing");

    r = corrupt_begin(dir);
    blob_put(&r, "manifest", "{\"fields\": 3}", 13);
    expect_refused(&r, dir, "blob \"manifest\"", NULL);

    r = corrupt_begin(dir);
    unsigned char w[4] = {12, 0, 0, 0}; /* user_id's filter is 2^20 wide */
    blob_put(&r, "admit.1", w, 4);
    expect_refused(&r, dir, "admit_width_log2", NULL);
}

/* ---- the join ---- */

static void test_join_entries(void **state)
{
    (void)state;
    char dir[256];
    /* Offsets in the entry format (stream/fr_join_codec.c): version u8, flags u16, imp_ts i64, scenario u32,
     * sample_rate f32, click_ts, conv_ts i64, conv_value f64, cat u64[16], num f32[8], ... */
    enum { SCENARIO = 11, RATE = 15, CONV_VALUE = 35, NUM = 43 + 8 * 16 };
    for (int c = 0; c < 4; c++) {
        raw_db r = corrupt_begin(dir);
        size_t kl, vl;
        char *id = NULL;
        unsigned char *v = NULL;
        /* the first entry that holds an impression (flags bit 0) */
        rocksdb_iterator_t *it = rocksdb_create_iterator_cf(r.db, r.ro, r.cf[1]);
        for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it) && !id; rocksdb_iter_next(it)) {
            const char *k = rocksdb_iter_key(it, &kl);
            const unsigned char *val = (const unsigned char *)rocksdb_iter_value(it, &vl);
            if (vl != 333 || !(val[1] & 1)) continue;
            id = malloc(kl);
            memcpy(id, k, kl);
            v = malloc(vl);
            memcpy(v, val, vl);
        }
        rocksdb_iter_destroy(it);
        assert_non_null(id);
        const char *why = NULL;
        switch (c) {
        case 0: v[SCENARIO] = 0xe8, v[SCENARIO + 1] = 0x03, why = "scenario"; break; /* 1000 */
        case 1: put_f32(v + NUM, NAN), why = "numeric"; break;
        case 2: put_f32(v + RATE, 2.0f), why = "sample rate"; break;
        default: memset(v + CONV_VALUE, 0xff, 8), why = "conversion value"; break; /* a NaN */
        }
        raw_put(&r, 1, id, kl, v, vl);
        char want[300];
        snprintf(want, sizeof want, "join entry \"%.*s\"", (int)kl, id);
        expect_refused(&r, dir, want, why);
        free(id);
        free(v);
    }
}

static void test_join_counters(void **state)
{
    (void)state;
    /* Meta format (stream/fr_join_codec.c): 5 header bytes, watermark and the two windows (i64), then events,
     * joined, pending (u64 per event type), ... */
    enum { EVENTS = 29, PENDING = 29 + 2 * 24 };
    char dir[256];
    raw_db r = corrupt_begin(dir);
    size_t len;
    unsigned char *m = raw_get(&r, 0, "K", 1, &len);
    assert_non_null(m);
    add_u64le(m + EVENTS, 1); /* one impression more than the buckets hold */
    raw_put(&r, 0, "K", 1, m, len);
    expect_refused(&r, dir, "join counters (key \"K\")", "events = joined + pending + dropped");

    r = corrupt_begin(dir);
    add_u64le(m + EVENTS, -1);
    add_u64le(m + EVENTS + 8, 1), add_u64le(m + PENDING + 8, 1); /* one click more, pending: no entry holds it */
    raw_put(&r, 0, "K", 1, m, len);
    expect_refused(&r, dir, "pending click events", NULL);
    free(m);
}

/* ---- the model ---- */

static void test_rows(void **state)
{
    (void)state;
    char dir[256];
    for (int c = 0; c < 4; c++) {
        raw_db r = corrupt_begin(dir);
        size_t kl, vl;
        char *k = raw_first_key(&r, 0, "E", 1, &kl);
        unsigned char *v = raw_get(&r, 0, k, kl, &vl);
        assert_int_equal(vl, 12 + 8 * 8); /* emb_dim 8, Adagrad */
        const char *why;
        switch (c) {
        case 0: put_f32(v + 8 + 4 * 3, NAN), why = "weight 3 is nan"; break;
        case 1: put_f32(v + 8 + 4 * 8 + 4 * 2, -1.0f), why = "Adagrad accumulator"; break;
        case 2: memset(v, 0x7f, 8), why = "after the model's version"; break;
        default: memset(v + vl - 4, 0xff, 4), why = "after the model's clock"; break;
        }
        raw_put(&r, 0, k, kl, v, vl);
        expect_refused(&r, dir, "row", why);
        free(k);
        free(v);
    }
    raw_db r = corrupt_begin(dir);
    size_t kl, vl;
    char *k = raw_first_key(&r, 0, "E", 1, &kl);
    unsigned char *v = raw_get(&r, 0, k, kl, &vl);
    memset(k + 5, 0, 8); /* key 0 of the same table */
    raw_put(&r, 0, k, kl, v, vl);
    expect_refused(&r, dir, "row", "key 0");
    free(k);
    free(v);
}

static void test_dense_and_meta(void **state)
{
    (void)state;
    char dir[256];
    raw_db r = corrupt_begin(dir);
    size_t len;
    unsigned char *d = raw_get(&r, 0, "D", 1, &len);
    assert_non_null(d);
    put_f32(d + 4 * 17, INFINITY);
    raw_put(&r, 0, "D", 1, d, len);
    expect_refused(&r, dir, "dense key \"D\"", "parameter 17");

    r = corrupt_begin(dir);
    put_f32(d + 4 * 17, 0);
    put_f32(d + len - 4, -0.5f); /* the last Adagrad accumulator */
    raw_put(&r, 0, "D", 1, d, len);
    expect_refused(&r, dir, "dense key \"D\"", "Adagrad accumulator");
    free(d);

    r = corrupt_begin(dir);
    unsigned char *m = raw_get(&r, 0, "M", 1, &len);
    json_t *meta = json_loadb((const char *)m, len, 0, NULL);
    assert_non_null(meta);
    json_object_set_new(json_array_get(json_object_get(meta, "tables"), 2), "dim", json_integer(4));
    char *text = json_dumps(meta, JSON_COMPACT | JSON_SORT_KEYS);
    raw_put(&r, 0, "M", 1, text, strlen(text));
    expect_refused(&r, dir, "checkpoint meta: tables[2]", NULL);
    free(text);
    json_decref(meta);
    free(m);
}

/* ---- the configuration it is restored under ---- */

static void expect_config(const char *fields, const char *scenarios, const char *extra, const char *want,
                          const char *want2)
{
    char dir[256];
    snprintf(dir, sizeof dir, "%s/case%d", g_root, ++g_case);
    copy_dir(g_pristine, dir);
    fr_config c = config_with(dir, fields, scenarios, extra);
    char err[512] = "";
    fr_pipeline *p = fr_pipeline_open(&c, err, sizeof err);
    if (!want) {
        if (!p) fail_msg("refused: %s", err);
        fr_pipeline_close(p);
        return;
    }
    if (p) {
        fr_pipeline_close(p);
        fail_msg("restored under a configuration that should be refused (%s)", want);
    }
    if (!strstr(err, want) || (want2 && !strstr(err, want2)))
        fail_msg("refused, but the message does not name \"%s\"%s%s: %s", want, want2 ? " / " : "",
                 want2 ? want2 : "", err);
    print_message("refused: %s\n", err);
}

static void test_fields_and_scenarios(void **state)
{
    (void)state;
    /* user_id and ad_id swapped: each would read the other's rows */
    expect_config("[" F_AD "," F_AGE "," F_DEVICE "," F_USER "," F_REST "," F_PRICE "," F_RECENT "]", SCENARIOS, NULL,
                  "\"user_id\"", "categorical slot 4");
    /* renamed */
    expect_config("[" F_USER "," F_AGE ",{\"name\":\"device_type\",\"kind\":\"categorical\"}," F_AD "," F_REST
                  "," F_PRICE "," F_RECENT "]",
                  SCENARIOS, NULL, "field \"device\"", "no field of that name");
    /* another kind in the same place */
    expect_config("[" F_USER "," F_AGE "," F_DEVICE "," F_AD "," F_REST "," F_PRICE
                  ",{\"name\":\"recent_ads\",\"kind\":\"categorical\"}]",
                  SCENARIOS, NULL, "\"recent_ads\"", "multi slot 0");
    /* added at the end */
    expect_config("[" F_USER "," F_AGE "," F_DEVICE "," F_AD "," F_REST "," F_PRICE "," F_RECENT
                  ",{\"name\":\"site\",\"kind\":\"categorical\"}]",
                  SCENARIOS, NULL, "fields[9]: the configuration adds field \"site\"", NULL);
    /* another transform */
    expect_config("[" F_USER "," F_AGE "," F_DEVICE "," F_AD "," F_REST ",{\"name\":\"price\",\"kind\":\"numeric\"},"
                  F_RECENT "]",
                  SCENARIOS, NULL, "fields[7].transform", "\"log1p\"");
    /* scenarios reordered: per-scenario metrics and parameters go by position */
    expect_config(FIELDS, "[\"browser\",\"video\",\"music\",\"third_party\"]", NULL, "scenarios[0]", "\"video\"");
    expect_config(FIELDS, "[\"video\",\"browser\",\"music\",\"podcast\"]", NULL, "scenarios[3]", "\"third_party\"");
    expect_config(FIELDS, SCENARIOS, ", \"allow_new_scenarios\": true", "scenarios[4]", "\"other\"");
    /* Not reinterpretations: the numeric field declared first keeps its slot (slots count per
     * kind), and max_len only keeps fewer recent values. */
    expect_config("[" F_PRICE "," F_USER "," F_AGE "," F_DEVICE "," F_AD "," F_REST "," F_RECENT "]", SCENARIOS, NULL,
                  NULL, NULL);
    expect_config("[" F_USER "," F_AGE "," F_DEVICE "," F_AD "," F_REST "," F_PRICE
                  ",{\"name\":\"recent_ads\",\"kind\":\"multi\",\"max_len\":4}]",
                  SCENARIOS, NULL, NULL, NULL);
}

/* ---- freshet inspect ---- */

static int run_inspect(const char *dir, char *out, size_t outcap)
{
    char scratch[300];
    snprintf(scratch, sizeof scratch, "%s/inspect.out", g_root);
    char *const argv[] = {"freshet", "inspect", (char *)dir, NULL};
    return run_cli(argv, scratch, out, outcap);
}

static void test_inspect_exit_status(void **state)
{
    (void)state;
    static char out[65536];
    char dir[256];
    assert_int_equal(run_inspect(g_pristine, out, sizeof out), 0);
    assert_non_null(strstr(out, "\ndigest "));

    raw_db r = corrupt_begin(dir);
    raw_put(&r, 0, "Ofile", 5, "abc", 3);
    raw_close(&r);
    assert_int_equal(run_inspect(dir, out, sizeof out), 1);
    assert_non_null(strstr(out, "offset key \"Ofile\""));

    r = corrupt_begin(dir);
    raw_put(&r, 0, "K", 1, "short", 5);
    raw_close(&r);
    assert_int_equal(run_inspect(dir, out, sizeof out), 1);
    assert_non_null(strstr(out, "join counters (key \"K\")"));

    r = corrupt_begin(dir);
    raw_delete(&r, 0, "Ccounters", 9);
    raw_close(&r);
    assert_int_equal(run_inspect(dir, out, sizeof out), 1);
    assert_non_null(strstr(out, "blob \"counters\""));

    /* a bucket of the metrics' history cut short: inspect (and freshet report) name it */
    assert_int_equal(run_inspect(g_pristine, out, sizeof out), 0);
    assert_non_null(strstr(out, "\nhistory closed="));
    r = corrupt_begin(dir);
    size_t kl;
    char *k = raw_first_key(&r, 0, "Chistory.", 9, &kl);
    raw_put(&r, 0, k, kl, "\x01", 1);
    raw_close(&r);
    assert_int_equal(run_inspect(dir, out, sizeof out), 1);
    assert_non_null(strstr(out, "blob \"history.0000"));
    assert_non_null(strstr(out, "cut short"));
    free(k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sources),
        cmocka_unit_test(test_offsets),
        cmocka_unit_test(test_counters),
        cmocka_unit_test(test_metrics),
        cmocka_unit_test(test_history),
        cmocka_unit_test(test_batch),
        cmocka_unit_test(test_guard),
        cmocka_unit_test(test_dfm_heads),
        cmocka_unit_test(test_parts_truncated_or_missing),
        cmocka_unit_test(test_version2_refused),
        cmocka_unit_test(test_lifecycle_manifest_admission),
        cmocka_unit_test(test_join_entries),
        cmocka_unit_test(test_join_counters),
        cmocka_unit_test(test_rows),
        cmocka_unit_test(test_dense_and_meta),
        cmocka_unit_test(test_fields_and_scenarios),
        cmocka_unit_test(test_inspect_exit_status),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
