/* Tests of the partitioned join (stream/fr_groups.c, join.partitions) and of the learner's prior
 * map (daemon/fr_priors.c): the partition function is Kafka's; the samples, and so the model, depend
 * only on each partition's own input, not on how the partitions interleave nor on how many groups
 * there are; a restore under another partition count is refused by name; the priors and the merge
 * buffer survive a kill and restart bit for bit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fr_ckpt.h"
#include "fr_config.h"
#include "fr_gen.h"
#include "fr_groups.h"
#include "fr_pipeline.h"
#include "fr_priors.h"
#include "gen_lines.h"
#include "tmpdir.h"

enum { P = 4 };

/* ---- the partition function ---- */

static void test_murmur2_is_kafkas(void **state)
{
    (void)state;
    /* org.apache.kafka.common.utils.UtilsTest#testMurmur2 */
    static const struct {
        const char *key;
        int32_t want;
    } java[] = {{"21", -973932308},
                {"foobar", -790332482},
                {"a-little-bit-long-string", -985981536},
                {"a-little-bit-longer-string", -1486304829},
                {"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971},
                {"abc", 479470107}};
    for (size_t i = 0; i < sizeof java / sizeof java[0]; i++)
        assert_int_equal((int32_t)fr_groups_murmur2(java[i].key, strlen(java[i].key)), java[i].want);
    /* and what librdkafka's partitioner (the one `freshet load` pins) assigns, for every length mod 4 */
    uint64_t rng = 7;
    for (int i = 0; i < 4000; i++) {
        char id[40];
        rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
        int len = snprintf(id, sizeof id, "i-%" PRIx64, rng >> (i % 29));
        for (int n = 1; n <= 9; n += 4)
            assert_int_equal(fr_groups_partition(id, (size_t)len, n),
                             rd_kafka_msg_partitioner_murmur2(NULL, id, (size_t)len, n, NULL, NULL));
    }
}

/* ---- pipelines fed partition by partition ---- */

/* A day of generated events, each line with its partition (the producer's: murmur2 of the id). */
typedef struct {
    lines L;
    int *part;
    size_t *pos; /* the line's position within its partition */
    size_t count[P];
} input;

static int64_t ts_of(const char *line)
{
    const char *t = strstr(line, "\"ts\":");
    assert_non_null(t);
    return strtoll(t + 5, NULL, 10);
}

static void id_of(const char *line, char *out, size_t cap)
{
    const char *t = strstr(line, "\"id\":\"");
    assert_non_null(t);
    t += 6;
    size_t n = (size_t)(strchr(t, '"') - t);
    assert_true(n < cap);
    memcpy(out, t, n);
    out[n] = '\0';
}

static const lines *g_sort_lines;
static int by_ts(const void *a, const void *b)
{
    const size_t x = *(const size_t *)a, y = *(const size_t *)b;
    const int64_t tx = ts_of(g_sort_lines->line[x]), ty = ts_of(g_sort_lines->line[y]);
    return tx != ty ? (tx > ty) - (tx < ty) : (x > y) - (x < y);
}

/* sorted: the lines in event-time order (no event is ever late, whatever the grouping). */
static input make_input(int impressions, int sorted)
{
    fr_gen_opts o;
    fr_gen_defaults(&o);
    o.impressions = impressions;
    o.days = 1;
    o.seed = 11;
    o.n_users = 500;
    o.n_ads = 80;
    input in = {.L = gen_lines(&o, NULL, NULL)};
    if (sorted) {
        size_t *idx = malloc(in.L.n * sizeof *idx);
        char **line = malloc(in.L.n * sizeof *line);
        size_t *len = malloc(in.L.n * sizeof *len);
        assert_true(idx && line && len);
        for (size_t i = 0; i < in.L.n; i++) idx[i] = i;
        g_sort_lines = &in.L;
        qsort(idx, in.L.n, sizeof *idx, by_ts);
        for (size_t i = 0; i < in.L.n; i++) line[i] = in.L.line[idx[i]], len[i] = in.L.len[idx[i]];
        free(in.L.line);
        free(in.L.len);
        in.L.line = line;
        in.L.len = len;
        free(idx);
    }
    in.part = malloc(in.L.n * sizeof *in.part);
    in.pos = malloc(in.L.n * sizeof *in.pos);
    assert_true(in.part && in.pos);
    for (size_t i = 0; i < in.L.n; i++) {
        char id[300];
        id_of(in.L.line[i], id, sizeof id);
        in.part[i] = fr_groups_partition(id, strlen(id), P);
        in.pos[i] = in.count[in.part[i]]++;
    }
    for (int g = 0; g < P; g++) assert_true(in.count[g] > 0);
    return in;
}

static void input_free(input *in)
{
    free(in->part);
    free(in->pos);
    lines_free(&in->L);
}

/* An order of the lines that keeps every partition's own order. Partitions run at random speeds;
 * some orders deliver whole partitions one after the other (a global watermark would then find
 * every later partition late). */
static size_t *interleave(const input *in, uint64_t seed)
{
    size_t *order = malloc(in->L.n * sizeof *order);
    size_t *by_part[P], next[P] = {0};
    assert_non_null(order);
    for (int g = 0; g < P; g++) {
        by_part[g] = malloc(in->count[g] * sizeof *by_part[g]);
        assert_non_null(by_part[g]);
    }
    size_t fill[P] = {0};
    for (size_t i = 0; i < in->L.n; i++) by_part[in->part[i]][fill[in->part[i]]++] = i;
    uint64_t rng = seed * 0x9E3779B97F4A7C15ULL + 1;
    double w[P];
    for (int g = 0; g < P; g++) w[g] = 0.05 + (double)((rng = rng * 6364136223846793005ULL + 1) >> 11) / 9007199254740992.0;
    const int sequential = seed % 10 == 0;
    for (size_t k = 0; k < in->L.n; k++) {
        int pick = -1;
        if (sequential) {
            for (int g = (int)(seed / 10) % P, t = 0; t < P && pick < 0; t++, g = (g + 1) % P)
                if (next[g] < in->count[g]) pick = g;
        } else {
            double total = 0;
            for (int g = 0; g < P; g++)
                if (next[g] < in->count[g]) total += w[g];
            rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
            double r = (double)(rng >> 11) / 9007199254740992.0 * total;
            for (int g = 0; g < P && pick < 0; g++) {
                if (next[g] >= in->count[g]) continue;
                if (r < w[g]) pick = g;
                r -= w[g];
            }
            for (int g = P - 1; pick < 0 && g >= 0; g--)
                if (next[g] < in->count[g]) pick = g; /* rounding */
        }
        order[k] = by_part[pick][next[pick]++];
    }
    for (int g = 0; g < P; g++) free(by_part[g]);
    return order;
}

static fr_config config_for(const char *dir, int partitions)
{
    fr_config c;
    fr_config_defaults(&c);
    snprintf(c.checkpoint_dir, sizeof c.checkpoint_dir, "%s", dir);
    c.redis_host[0] = '\0';
    c.checkpoint_every_samples = 0;
    c.checkpoint_every_seconds = 0;
    c.partitions = partitions;
    return c;
}

static fr_pipeline *open_pipeline(const char *dir, int partitions)
{
    fr_config c = config_for(dir, partitions);
    char err[512];
    fr_pipeline *p = fr_pipeline_open(&c, err, sizeof err);
    if (!p) fail_msg("open: %s", err);
    return p;
}

/* One source per partition, as a Kafka topic carrying every event type would be. */
static void register_parts(fr_pipeline *p, int64_t next[P])
{
    for (int g = 0; g < P; g++) {
        char name[32];
        snprintf(name, sizeof name, "part:%d", g);
        assert_int_equal(fr_pipeline_register_source(p, name, &next[g]), 0);
        assert_int_equal(fr_pipeline_bind_source(p, name, g), 0);
    }
}

static void feed(fr_pipeline *p, const input *in, const size_t *order, size_t from, size_t to, const int64_t next[P],
                 size_t ckpt_every)
{
    char err[512];
    for (size_t k = from; k < to; k++) {
        const size_t i = order[k];
        const int g = in->part[i];
        if ((int64_t)in->pos[i] < next[g]) continue; /* before this source's stored offset */
        char name[32];
        snprintf(name, sizeof name, "part:%d", g);
        if (fr_pipeline_message(p, name, (int64_t)in->pos[i] + 1, in->L.line[i], in->L.len[i], err, sizeof err) != 0)
            fail_msg("message %zu: %s", k, err);
        if (ckpt_every && (k + 1) % ckpt_every == 0 && fr_pipeline_checkpoint(p, err, sizeof err) != 0)
            fail_msg("checkpoint: %s", err);
    }
}

static void finish(fr_pipeline *p, int drain)
{
    char err[512];
    for (int g = 0; g < P; g++) {
        char name[32];
        snprintf(name, sizeof name, "part:%d", g);
        fr_pipeline_source_idle(p, name, 1);
    }
    assert_int_equal(fr_pipeline_tick(p), 0);
    if (drain && fr_pipeline_drain(p, err, sizeof err) != 0) fail_msg("drain: %s", err);
    if (fr_pipeline_checkpoint(p, err, sizeof err) != 0) fail_msg("checkpoint: %s", err);
}

/* The digest of a closed checkpoint; with model_only, of what learning produced (the model, the
 * priors, the metrics, the pending mini-batch), not of how the join was laid out. */
typedef struct {
    uint64_t h;
    int model_only;
} digest_ctx;

static int digest_kv(const char *k, size_t kl, const void *v, size_t vl, void *ctx)
{
    digest_ctx *d = ctx;
    if (d->model_only) {
        const int blob = kl > 1 && k[0] == 'C';
        const int keep = (kl > 0 && strchr("DEMP", k[0])) ||
                         (blob && ((kl == 8 && !memcmp(k, "Cmetrics", 8)) || (kl == 6 && !memcmp(k, "Cbatch", 6)) ||
                                   (kl == 10 && !memcmp(k, "Cdfm_heads", 10))));
        if (!keep) return 0;
    }
    for (size_t i = 0; i < kl; i++) d->h = (d->h ^ (unsigned char)k[i]) * 0x100000001b3ULL;
    d->h = (d->h ^ 0xff) * 0x100000001b3ULL;
    for (size_t i = 0; i < vl; i++) d->h = (d->h ^ ((const unsigned char *)v)[i]) * 0x100000001b3ULL;
    d->h = (d->h ^ 0xfe) * 0x100000001b3ULL;
    return 0;
}

static uint64_t digest_of(const char *dir, int model_only)
{
    char err[512];
    fr_ckpt *c = fr_ckpt_open_readonly(dir, err, sizeof err);
    if (!c) fail_msg("open %s: %s", dir, err);
    digest_ctx d = {0xcbf29ce484222325ULL, model_only};
    assert_int_equal(fr_ckpt_foreach(c, digest_kv, &d), 0);
    fr_ckpt_close(c);
    return d.h;
}

typedef struct {
    uint64_t digest;
    fr_join_counters join;
    size_t priors;
} outcome;

static outcome run_order(const char *dir, const input *in, const size_t *order, int drain)
{
    fr_pipeline *p = open_pipeline(dir, P);
    int64_t next[P];
    register_parts(p, next);
    feed(p, in, order, 0, in->L.n, next, 0);
    finish(p, drain);
    outcome o = {.join = *fr_pipeline_join_counters(p), .priors = fr_pipeline_priors(p)};
    fr_pipeline_close(p);
    o.digest = digest_of(dir, 0);
    return o;
}

/* 50 interleavings of the same four partitions, including whole partitions one after another: one
 * checkpoint digest, byte for byte (model, join, priors, merge buffer, counters). */
static void test_interleavings_give_one_digest(void **state)
{
    (void)state;
    input in = make_input(2500, 0);
    char *root = tmpdir_make("groups-il");
    outcome first = {0};
    for (uint64_t k = 0; k < 50; k++) {
        char dir[400];
        snprintf(dir, sizeof dir, "%s/r%" PRIu64, root, k);
        size_t *order = interleave(&in, k);
        outcome o = run_order(dir, &in, order, 0);
        free(order);
        if (k == 0) {
            first = o;
            const fr_join_counters *j = &o.join;
            print_message("events %" PRIu64 "/%" PRIu64 "/%" PRIu64 ", late %" PRIu64 ", priors held %zu\n",
                          j->events[FR_EV_IMPRESSION], j->events[FR_EV_CLICK], j->events[FR_EV_CONVERSION],
                          j->dropped[FR_EV_IMPRESSION][FR_DROP_LATE] + j->dropped[FR_EV_CLICK][FR_DROP_LATE] +
                              j->dropped[FR_EV_CONVERSION][FR_DROP_LATE],
                          o.priors);
            assert_true(o.priors > 0); /* clicks still in their attribution window */
        }
        if (memcmp(&o.join, &first.join, sizeof first.join) != 0) fail_msg("interleaving %" PRIu64 ": other join counters", k);
        if (o.digest != first.digest) fail_msg("interleaving %" PRIu64 ": another digest", k);
        tmpdir_remove_tree(dir);
    }
    tmpdir_remove(root);
    input_free(&in);
}

/* Events in time order through one group and through four: the same samples, so the same model,
 * metrics and priors (the join's layout differs, the learning does not). */
static void test_one_group_or_four_learn_the_same(void **state)
{
    (void)state;
    input in = make_input(2000, 1);
    char *root = tmpdir_make("groups-n");
    uint64_t d[2];
    const int counts[2] = {1, P};
    for (int r = 0; r < 2; r++) {
        char dir[400];
        snprintf(dir, sizeof dir, "%s/p%d", root, counts[r]);
        fr_pipeline *p = open_pipeline(dir, counts[r]);
        char err[512];
        assert_int_equal(fr_pipeline_register_source(p, "file", NULL), 0);
        for (size_t i = 0; i < in.L.n; i++)
            if (fr_pipeline_message(p, "file", (int64_t)i + 1, in.L.line[i], in.L.len[i], err, sizeof err) != 0)
                fail_msg("message %zu: %s", i, err);
        fr_pipeline_source_idle(p, "file", 1);
        assert_int_equal(fr_pipeline_tick(p), 0);
        if (fr_pipeline_drain(p, err, sizeof err) != 0) fail_msg("drain: %s", err);
        if (fr_pipeline_checkpoint(p, err, sizeof err) != 0) fail_msg("checkpoint: %s", err);
        assert_true(fr_pipeline_get_counters(p)->samples_trained > 1000);
        fr_pipeline_close(p);
        d[r] = digest_of(dir, 1);
    }
    assert_true(d[0] == d[1]);
    tmpdir_remove(root);
    input_free(&in);
}

/* A checkpoint written with 4 partitions is refused under 2, naming both counts and the function. */
static void test_restore_refuses_another_partition_count(void **state)
{
    (void)state;
    input in = make_input(300, 0);
    char *dir = tmpdir_make("groups-pc");
    size_t *order = interleave(&in, 3);
    run_order(dir, &in, order, 0);
    free(order);
    fr_config c = config_for(dir, 2);
    char err[512] = "";
    fr_pipeline *p = fr_pipeline_open(&c, err, sizeof err);
    if (p) {
        fr_pipeline_close(p);
        fail_msg("a checkpoint of 4 partitions restored under join.partitions 2");
    }
    print_message("refused: %s\n", err);
    assert_non_null(strstr(err, "4 partitions"));
    assert_non_null(strstr(err, "join.partitions 2"));
    assert_non_null(strstr(err, "murmur2"));
    c.partitions = P; /* the same count restores */
    p = fr_pipeline_open(&c, err, sizeof err);
    if (!p) fail_msg("restore: %s", err);
    fr_pipeline_close(p);
    tmpdir_remove(dir);
    input_free(&in);
}

/* Killed (closed without a checkpoint) at many points and restarted from the last checkpoint, each
 * source resuming at its stored offset: the same final checkpoint as an unbroken run. The priors and
 * the samples waiting in the merge are part of what the restart must get back. */
static void test_kill_and_restart_equals_unbroken(void **state)
{
    (void)state;
    input in = make_input(1500, 0);
    char *root = tmpdir_make("groups-kr");
    size_t *order = interleave(&in, 7);
    char dir[400];
    snprintf(dir, sizeof dir, "%s/ref", root);
    const outcome ref = run_order(dir, &in, order, 0);
    size_t saw_priors = 0, saw_merge = 0;
    for (size_t cut = 37; cut < in.L.n; cut += in.L.n / 6) {
        snprintf(dir, sizeof dir, "%s/k%zu", root, cut);
        fr_pipeline *p = open_pipeline(dir, P);
        int64_t next[P];
        register_parts(p, next);
        feed(p, &in, order, 0, cut, next, 97);
        fr_pipeline_close(p); /* kill: whatever followed the last checkpoint is lost */
        p = open_pipeline(dir, P);
        register_parts(p, next);
        if (fr_pipeline_priors(p) > saw_priors) saw_priors = fr_pipeline_priors(p);
        if (fr_pipeline_merge_buffered(p) > saw_merge) saw_merge = fr_pipeline_merge_buffered(p);
        feed(p, &in, order, 0, in.L.n, next, 0);
        finish(p, 0);
        fr_pipeline_close(p);
        if (digest_of(dir, 0) != ref.digest) fail_msg("restart after a kill at message %zu: another digest", cut);
        tmpdir_remove_tree(dir);
    }
    print_message("restored up to %zu priors and %zu merged samples waiting\n", saw_priors, saw_merge);
    assert_true(saw_priors > 0);
    assert_true(saw_merge > 0);
    free(order);
    tmpdir_remove(root);
    input_free(&in);
}

/* A Kafka partition holds back only its own group: with partition 1 idle, group 1 follows the
 * frontier and the samples of partition 0 are learnt as they come (an unbound source would hold
 * every group back, waiting for events of group 1 it never carries). */
static void test_a_bound_partition_holds_only_its_group(void **state)
{
    (void)state;
    input in = make_input(1500, 0);
    char *dir = tmpdir_make("groups-bind");
    fr_pipeline *p = open_pipeline(dir, 2);
    assert_int_equal(fr_pipeline_register_source(p, "k:0", NULL), 0);
    assert_int_equal(fr_pipeline_bind_source(p, "k:0", 0), 0);
    assert_int_equal(fr_pipeline_register_source(p, "k:1", NULL), 0);
    assert_int_equal(fr_pipeline_bind_source(p, "k:1", 1), 0);
    fr_pipeline_source_idle(p, "k:1", 1);
    char err[512];
    int64_t off = 0;
    for (size_t i = 0; i < in.L.n; i++) {
        char id[300];
        id_of(in.L.line[i], id, sizeof id);
        if (fr_groups_partition(id, strlen(id), 2) != 0) continue;
        if (fr_pipeline_message(p, "k:0", ++off, in.L.line[i], in.L.len[i], err, sizeof err) != 0)
            fail_msg("message: %s", err);
    }
    assert_true(fr_pipeline_get_counters(p)->samples_trained > 256);
    fr_pipeline_close(p);
    tmpdir_remove(dir);
    input_free(&in);
}

/* ---- the prior map ---- */

typedef struct {
    int puts, deletes;
    char last[16];
    unsigned char rec[FR_PRIOR_RECORD_BYTES];
} dirty_seen;

static int see_dirty(const char *id, size_t id_len, const void *bytes, size_t len, void *ctx)
{
    dirty_seen *d = ctx;
    snprintf(d->last, sizeof d->last, "%.*s", (int)id_len, id);
    if (len) {
        assert_int_equal(len, FR_PRIOR_RECORD_BYTES);
        memcpy(d->rec, bytes, len);
        d->puts++;
    } else {
        d->deletes++;
    }
    return 0;
}

static void test_prior_map_round_trip_and_refusals(void **state)
{
    (void)state;
    fr_priors *m = fr_priors_create();
    assert_non_null(m);
    const float a[FR_NTASKS] = {0.25f, 0.5f, 0.125f};
    float got[FR_NTASKS];
    char id[16];
    for (int i = 0; i < 1000; i++) {
        snprintf(id, sizeof id, "i%d", i);
        assert_int_equal(fr_priors_set(m, id, strlen(id), a), 0);
    }
    assert_int_equal(fr_priors_count(m), 1000);
    for (int i = 0; i < 1000; i += 2) {
        snprintf(id, sizeof id, "i%d", i);
        fr_priors_delete(m, id, strlen(id));
    }
    /* set and deleted before any checkpoint: nothing to write for those */
    dirty_seen d = {0};
    assert_int_equal(fr_priors_foreach_dirty(m, see_dirty, &d), 0);
    assert_int_equal(d.puts, 500);
    assert_int_equal(d.deletes, 0);
    fr_priors_clear_dirty(m);
    assert_int_equal(fr_priors_get(m, "i1", 2, got), 1);
    assert_memory_equal(got, a, sizeof a);
    assert_int_equal(fr_priors_get(m, "i2", 2, got), 0);
    /* a deletion after a checkpoint is written as one */
    fr_priors_delete(m, "i1", 2);
    memset(&d, 0, sizeof d);
    fr_priors_foreach_dirty(m, see_dirty, &d);
    assert_int_equal(d.deletes, 1);
    assert_string_equal(d.last, "i1");
    fr_priors_clear_dirty(m);
    assert_int_equal(fr_priors_count(m), 499);

    /* the stored record: loads back; malformed ones are refused by name */
    fr_priors_set(m, "x", 1, a);
    memset(&d, 0, sizeof d);
    fr_priors_foreach_dirty(m, see_dirty, &d);
    fr_priors *r = fr_priors_create();
    char why[300];
    assert_int_equal(fr_priors_load(r, "x", 1, d.rec, sizeof d.rec, why, sizeof why), 0);
    assert_int_equal(fr_priors_get(r, "x", 1, got), 1);
    assert_memory_equal(got, a, sizeof a);
    assert_int_equal(fr_priors_load(r, "x", 1, d.rec, sizeof d.rec, why, sizeof why), -1); /* twice */
    assert_non_null(strstr(why, "twice"));
    assert_int_equal(fr_priors_load(r, "y", 1, d.rec, sizeof d.rec - 1, why, sizeof why), -1);
    assert_non_null(strstr(why, "bytes"));
    unsigned char bad[FR_PRIOR_RECORD_BYTES];
    memcpy(bad, d.rec, sizeof bad);
    bad[0] = 9;
    assert_int_equal(fr_priors_load(r, "y", 1, bad, sizeof bad, why, sizeof why), -1);
    assert_non_null(strstr(why, "version"));
    memcpy(bad, d.rec, sizeof bad);
    const float nan = NAN, two = 2.0f;
    memcpy(bad + 5, &nan, 4);
    assert_int_equal(fr_priors_load(r, "y", 1, bad, sizeof bad, why, sizeof why), -1);
    assert_non_null(strstr(why, "outside [0, 1]"));
    memcpy(bad + 5, &two, 4);
    assert_int_equal(fr_priors_load(r, "y", 1, bad, sizeof bad, why, sizeof why), -1);
    assert_non_null(strstr(why, "\"y\""));
    assert_int_equal(fr_priors_load(r, "", 0, d.rec, sizeof d.rec, why, sizeof why), -1);
    assert_int_equal(fr_priors_count(r), 1);
    fr_priors_free(r);
    fr_priors_free(m);
}

/* ---- the merge ---- */

typedef struct {
    int64_t key[64];
    int n;
} keys;

static void take_key(const fr_sample *s, const fr_groups_origin *o, void *ctx)
{
    (void)s;
    keys *k = ctx;
    k->key[k->n++] = o->key;
}

/* A group's samples wait for the slowest group; a timer armed behind its group's watermark (a late
 * click's copy) is merged at that watermark; the buffer's record round-trips and refuses what it
 * must. */
static void test_merge_waits_and_its_record(void **state)
{
    (void)state;
    fr_join_config jc = {.click_window_ms = 10, .attribution_window_ms = 100, .policy = FR_POLICY_WAIT};
    fr_groups *g = fr_groups_create(&jc, 2);
    assert_non_null(g);
    /* ids in each group */
    const char *id0 = NULL, *id1 = NULL;
    static const char *const cand[] = {"a", "b", "c", "d", "e", "f", "g", "h"};
    for (int i = 0; i < 8; i++) {
        if (!id0 && fr_groups_partition(cand[i], 1, 2) == 0) id0 = cand[i];
        if (!id1 && fr_groups_partition(cand[i], 1, 2) == 1) id1 = cand[i];
    }
    assert_true(id0 && id1);
    fr_event ev;
    memset(&ev, 0, sizeof ev);
    ev.type = FR_EV_IMPRESSION;
    ev.sample_rate = 1.0f;
    ev.id_len = 1;
    ev.ts = 1000;
    memcpy(ev.id, id0, 2);
    assert_int_equal(fr_groups_add(g, 0, &ev), 0);
    ev.ts = 1001;
    memcpy(ev.id, id1, 2);
    assert_int_equal(fr_groups_add(g, 1, &ev), 0);
    assert_int_equal(fr_groups_advance(g, 0, 2000), 0);
    assert_int_equal(fr_groups_buffered(g), 1);
    keys k = {0};
    assert_int_equal(fr_groups_release(g, fr_groups_watermark(g), take_key, &k), 0); /* group 1 is behind */
    assert_int_equal(fr_groups_advance(g, 1, 1005), 0);

    /* the record */
    size_t need = fr_groups_export_buffer(g, NULL, 0);
    unsigned char *buf = malloc(need);
    assert_int_equal(fr_groups_export_buffer(g, buf, need), need);
    fr_groups *r = fr_groups_create(&jc, 2);
    char why[300];
    /* the key must be below its group's watermark: a fresh group's is INT64_MIN */
    assert_int_equal(fr_groups_import_buffer(r, buf, need, NULL, NULL, why, sizeof why), -1);
    assert_non_null(strstr(why, "watermark"));
    fr_groups_free(r);
    r = fr_groups_create(&jc, 2);
    assert_int_equal(fr_groups_advance(r, 0, 2000), 0);
    assert_int_equal(fr_groups_import_buffer(r, buf, need, NULL, NULL, why, sizeof why), 0);
    assert_int_equal(fr_groups_buffered(r), 1);
    fr_groups_free(r);
    buf[4] = 7; /* group 7 of 2 */
    r = fr_groups_create(&jc, 2);
    assert_int_equal(fr_groups_advance(r, 0, 2000), 0);
    assert_int_equal(fr_groups_import_buffer(r, buf, need, NULL, NULL, why, sizeof why), -1);
    assert_non_null(strstr(why, "group"));
    fr_groups_free(r);
    buf[4] = 0;
    r = fr_groups_create(&jc, 2);
    assert_int_equal(fr_groups_advance(r, 0, 2000), 0);
    assert_int_equal(fr_groups_import_buffer(r, buf, need - 1, NULL, NULL, why, sizeof why), -1);
    fr_groups_free(r);
    free(buf);

    /* group 1 catches up: both CTR samples in (deadline, id) order */
    assert_int_equal(fr_groups_advance(g, 1, 2000), 0);
    assert_int_equal(fr_groups_release(g, fr_groups_watermark(g), take_key, &k), 2);
    assert_int_equal(k.key[0], 1010);
    assert_int_equal(k.key[1], 1011);

    /* a click at 2005 whose copy (fnw: at the click's ts) is armed behind the watermark 2100 */
    fr_groups_free(g);
    jc.policy = FR_POLICY_FNW;
    g = fr_groups_create(&jc, 1);
    memcpy(ev.id, id0, 2);
    ev.type = FR_EV_IMPRESSION;
    ev.ts = 2000;
    assert_int_equal(fr_groups_add(g, 0, &ev), 0);
    assert_int_equal(fr_groups_advance(g, 0, 2008), 0);
    ev.type = FR_EV_CLICK;
    ev.ts = 2005;
    assert_int_equal(fr_groups_add(g, 0, &ev), 0);
    assert_int_equal(fr_groups_advance(g, 0, 2100), 0);
    k.n = 0;
    fr_groups_release(g, 2100, take_key, &k);
    assert_int_equal(k.n, 2);
    assert_int_equal(k.key[0], 2008); /* FAKE_NEG at ts 2005, merged at the watermark it was armed behind */
    assert_int_equal(k.key[1], 2010); /* CTR */
    fr_groups_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_murmur2_is_kafkas),
        cmocka_unit_test(test_prior_map_round_trip_and_refusals),
        cmocka_unit_test(test_merge_waits_and_its_record),
        cmocka_unit_test(test_restore_refuses_another_partition_count),
        cmocka_unit_test(test_a_bound_partition_holds_only_its_group),
        cmocka_unit_test(test_one_group_or_four_learn_the_same),
        cmocka_unit_test(test_kill_and_restart_equals_unbroken),
        cmocka_unit_test(test_interleavings_give_one_digest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
