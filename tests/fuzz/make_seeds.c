/* make_seeds: writes the seed corpora of the fuzz targets from the real encoders (a trained fuzz
 * model checkpointed to a scratch RocksDB directory and read back part by part, the joiner's own
 * entries and meta, the publisher's row and dense formats), so each seed is a valid example a few
 * KB long. Usage: fuzz_seeds SOURCE_DIR (writes SOURCE_DIR/tests/fuzz/corpus/NAME/seed-*; the
 * regression inputs beside them are kept). Deterministic: the same build writes the same bytes. */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "fr_admit.h"
#include "fr_bytes.h"
#include "fr_ckpt.h"
#include "fr_dfm.h"
#include "fr_event_pb.h"
#include "fr_evtime.h"
#include "fr_groups.h"
#include "fr_history.h"
#include "fr_join.h"
#include "fr_pipeline.h"
#include "fr_priors.h"
#include "fr_redis_layout.h"
#include "fr_sample_codec.h"
#include "fr_model_json.h"
#include "fuzz_util.h"

static char root[4096];

static void die(const char *what)
{
    fprintf(stderr, "fuzz_seeds: %s\n", what);
    exit(1);
}

/* corpus/<target>/seed-<name> := prefix (plen bytes) + bytes */
static void seed2(const char *target, const char *name, const void *prefix, size_t plen, const void *bytes,
                  size_t len)
{
    char path[8192];
    snprintf(path, sizeof path, "%s/tests/fuzz/corpus/%s", root, target);
    if (mkdir(path, 0755) != 0 && errno != EEXIST) die(path);
    snprintf(path, sizeof path, "%s/tests/fuzz/corpus/%s/seed-%s", root, target, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(prefix, 1, plen, f) != plen || fwrite(bytes, 1, len, f) != len || fclose(f) != 0) die(path);
}

static void seed(const char *target, const char *name, const void *bytes, size_t len)
{
    seed2(target, name, "", 0, bytes, len);
}

static void events_and_config(void)
{
    static const char *const ev[] = {
        ("{\"type\":\"impression\",\"id\":\"i1\",\"ts\":1700000000000,\"scenario\":\"video\",\"sample_rate\":0.5,"
         "\"features\":{\"user_id\":\"u1\",\"user_age\":31,\"device\":\"ios\",\"ad_id\":\"a9\",\"advertiser\":\"adv\","
         "\"category\":\"shoes\",\"hour\":13,\"price\":9.5,\"recent_ads\":[\"a1\",\"a2\"]}}"),
        "{\"type\":\"click\",\"id\":\"i1\",\"ts\":1700000005000}",
        "{\"type\":\"conversion\",\"id\":\"i1\",\"ts\":1700000600000,\"value\":12.5}",
        ("{\"type\":\"impression\",\"id\":\"i2\",\"ts\":1700000000001,\"scenario\":\"music\",\"features\":{\"user_id\":"
         "null,\"price\":null}}"),
    };
    for (size_t i = 0; i < sizeof ev / sizeof ev[0]; i++) {
        char name[16];
        snprintf(name, sizeof name, "%zu", i);
        seed("event", name, ev[i], strlen(ev[i]));
        /* the same events in Protobuf: bare, and (the odd ones) in the Confluent framing */
        uint8_t *pb;
        size_t pblen;
        char why[256];
        if (fr_event_pb_from_json(ev[i], strlen(ev[i]), i % 2 ? (int64_t)i : -1, &pb, &pblen, why, sizeof why) != 0)
            die(why);
        seed("event_pb", name, pb, pblen);
        free(pb);
    }
    char path[8192];
    snprintf(path, sizeof path, "%s/conf/freshet.example.json", root);
    FILE *f = fopen(path, "rb");
    if (!f) die(path);
    char buf[65536];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    seed("config", "example", buf, n);
    static const char small[] =
        "{\"scenarios\":[\"a\",\"b\"],\"allow_new_scenarios\":true,\"fields\":[{\"name\":\"u\",\"kind\":"
        "\"categorical\",\"ttl\":\"7d\"},{\"name\":\"p\",\"kind\":\"numeric\",\"transform\":\"log1p\"},{\"name\":"
        "\"h\",\"kind\":\"multi\",\"max_len\":4}],\"join\":{\"policy\":\"defer\",\"click_window\":\"30m\"},"
        "\"model\":{\"emb_dim\":4,\"n_levels\":2,\"n_task_experts\":1}}";
    seed("config", "small", small, sizeof small - 1);
}

static fr_event event(fr_event_type type, const char *id, int64_t ts, int32_t scenario)
{
    fr_event e;
    memset(&e, 0, sizeof e);
    e.type = type;
    snprintf(e.id, sizeof e.id, "%s", id);
    e.id_len = (uint32_t)strlen(id);
    e.ts = ts;
    e.scenario = scenario;
    e.sample_rate = 1;
    fuzz_features(&e.features, (uint64_t)ts);
    return e;
}

typedef struct {
    int policy;
    int n;
} entry_ctx;

static int write_entry(const char *id, size_t id_len, const void *bytes, size_t len, void *ctx)
{
    entry_ctx *c = ctx;
    if (!len || c->n >= 3) return 0;
    unsigned char prefix[2 + 256] = {(unsigned char)c->policy, (unsigned char)id_len};
    memcpy(prefix + 2, id, id_len);
    char name[32];
    snprintf(name, sizeof name, "p%d-%d", c->policy, c->n++);
    seed2("join_entry", name, prefix, 2 + id_len, bytes, len);
    return 0;
}

static void join_parts(void)
{
    for (int policy = 0; policy < FR_POLICY_ORACLE; policy++) {
        fr_join_config jc = {.click_window_ms = 30 * 60 * 1000,
                             .attribution_window_ms = 7LL * 24 * 3600 * 1000,
                             .policy = (fr_policy_id)policy,
                             .observation_window_ms = 15 * 60 * 1000};
        fr_join *j = fr_join_create(&jc);
        if (!j) die("fr_join_create");
        const int64_t t0 = 1700000000000;
        fr_event evs[] = {event(FR_EV_IMPRESSION, "imp-a", t0, 0), event(FR_EV_CLICK, "imp-a", t0 + 1000, 0),
                          event(FR_EV_CONVERSION, "imp-a", t0 + 60000, 0), event(FR_EV_IMPRESSION, "imp-b", t0, 1),
                          event(FR_EV_CLICK, "imp-c", t0 + 5, 0)};
        for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++) fr_join_add(j, &evs[i], NULL, NULL);
        fr_join_advance(j, t0 + 20 * 60 * 1000, NULL, NULL); /* past the observation window */
        entry_ctx c = {policy, 0};
        fr_join_foreach_dirty(j, write_entry, &c);
        unsigned char meta[1024];
        size_t n = fr_join_export_meta(j, meta, sizeof meta);
        unsigned char p = (unsigned char)policy;
        char name[16];
        snprintf(name, sizeof name, "p%d", policy);
        seed2("join_meta", name, &p, 1, meta, n);
        fr_join_free(j);
    }
}

static int write_prior(const char *id, size_t id_len, const void *bytes, size_t len, void *ctx)
{
    (void)ctx;
    unsigned char prefix[1 + 256];
    prefix[0] = (unsigned char)id_len;
    memcpy(prefix + 1, id, id_len);
    seed2("prior", id, prefix, 1 + id_len, bytes, len);
    return 0;
}

/* A prior record, and a merge buffer holding the CTR samples of two groups' impressions. */
static void groups_parts(void)
{
    fr_priors *m = fr_priors_create();
    if (!m) die("fr_priors_create");
    const float pr[FR_NTASKS] = {0.25f, 0.5f, 0.125f};
    fr_priors_set(m, "imp-a", 5, pr);
    fr_priors_foreach_dirty(m, write_prior, NULL);
    fr_priors_free(m);

    fr_join_config jc = {.click_window_ms = 30 * 60 * 1000, .attribution_window_ms = 7LL * 24 * 3600 * 1000};
    fr_groups *g = fr_groups_create(&jc, 2);
    if (!g) die("fr_groups_create");
    const int64_t t0 = 1700000000000, wm = t0 + 3600 * 1000;
    static const char *const ids[] = {"imp-a", "imp-b", "imp-c", "imp-d"};
    for (int i = 0; i < 4; i++) {
        fr_event ev = event(FR_EV_IMPRESSION, ids[i], t0 + i, i % 2);
        fr_groups_add(g, fr_groups_partition(ids[i], strlen(ids[i]), 2), &ev);
    }
    for (int i = 0; i < 2; i++) fr_groups_advance(g, i, wm);
    unsigned char prefix[16];
    fr_put_u64le(prefix, (uint64_t)wm);
    fr_put_u64le(prefix + 8, (uint64_t)wm);
    size_t n = fr_groups_export_buffer(g, NULL, 0);
    unsigned char *buf = malloc(n);
    if (!buf) die("out of memory");
    fr_groups_export_buffer(g, buf, n);
    seed2("merge", "four", prefix, sizeof prefix, buf, n);
    free(buf);
    fr_groups_free(g);
}

static void heads_and_admission(void)
{
    fr_dfm_heads *h = fr_dfm_heads_create(4, 3, 0.05f);
    if (!h) die("fr_dfm_heads_create");
    for (int i = 0; i < 20; i++) {
        fr_sample s = {.kind = FR_SAMPLE_MATURED, .has_label = {1, 1, 1}, .label = {1, (float)(i % 3 == 0), 0}};
        fuzz_features(&s.f, (uint64_t)(i % 5));
        fr_dfm_heads_train(h, &s);
    }
    size_t n = fr_dfm_heads_export(h, NULL, 0);
    void *b = malloc(n);
    if (!b) die("out of memory");
    fr_dfm_heads_export(h, b, n);
    seed("dfm_heads", "trained", b, n);
    free(b);
    fr_dfm_heads_free(h);

    char err[128];
    fr_admit *a = fr_admit_create(FR_ADMIT_MIN_WIDTH_LOG2 + 1, 42, err, sizeof err);
    if (!a) die(err);
    for (uint64_t k = 1; k < 400; k++) fr_admit_add(a, k % 97);
    for (size_t i = 0; i < fr_admit_chunks(a); i++) {
        unsigned char idx = (unsigned char)i;
        char name[16];
        snprintf(name, sizeof name, "chunk%zu", i);
        seed2("admit_chunk", name, &idx, 1, fr_admit_chunk(a, i), FR_ADMIT_CHUNK_BYTES);
    }
    fr_admit_free(a);
}

static fr_model *trained_model(int ftrl, int adam, int policy)
{
    fr_model_config cfg;
    fuzz_model_config(&cfg);
    cfg.emb_optimizer = ftrl;
    cfg.dense_optimizer = adam;
    char err[256];
    fr_model *m = fr_model_create(&cfg, err, sizeof err);
    if (!m) die(err);
    if (policy) {
        fr_row_policy rp;
        fr_row_policy_defaults(&rp);
        rp.admit_width_log2 = 11;
        rp.ttl_ms = 24 * 3600 * 1000;
        for (uint32_t t = 0; t < fr_model_table_count(m); t++)
            if (fr_model_set_row_policy(m, t, &rp, err, sizeof err) != 0) die(err);
    }
    fr_sample s[8] = {0};
    for (int i = 0; i < 8; i++) {
        fuzz_features(&s[i].f, (uint64_t)(i % 3));
        s[i].scenario = i % 2;
        s[i].ts = 1700000000000 + i;
        for (int t = 0; t < FR_NTASKS; t++) s[i].has_label[t] = 1, s[i].weight[t] = 1, s[i].label[t] = (float)(i & 1);
    }
    fr_model_train(m, s, 8, NULL);
    return m;
}

typedef struct {
    const char *tag;
    int optimizer_byte;
    int rows;
} dump_ctx;

static int dump_part(const char *k, size_t kl, const void *v, size_t vl, void *ctx)
{
    dump_ctx *d = ctx;
    char name[64];
    if (kl == 1 && k[0] == 'M') seed("ckpt_meta", d->tag, v, vl);
    if (kl == 1 && k[0] == 'D') seed("ckpt_dense", d->tag, v, vl);
    if (kl == 10 && memcmp(k, "Clifecycle", 10) == 0) {
        seed("ckpt_lifecycle", d->tag, v, vl);
    }
    if (kl == 13 && k[0] == 'E' && d->rows < 2) {
        unsigned char pk[1 + 13] = {(unsigned char)d->optimizer_byte};
        memcpy(pk + 1, k, 13);
        snprintf(name, sizeof name, "%s-%d", d->tag, d->rows++);
        seed2("ckpt_row", name, pk, sizeof pk, v, vl);
    }
    return 0;
}

static void checkpoint_parts(const char *scratch)
{
    const struct {
        const char *tag;
        int ftrl, adam, policy;
    } v[] = {{"adagrad", 0, 0, 1}, {"ftrl-adam", 1, 1, 0}};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        char dir[8192], err[512];
        snprintf(dir, sizeof dir, "%s/ckpt-%zu", scratch, i);
        fr_ckpt *c = fr_ckpt_open(dir, err, sizeof err);
        if (!c) die(err);
        fr_model *m = trained_model(v[i].ftrl, v[i].adam, v[i].policy);
        fr_ckpt_batch *b = fr_ckpt_begin(c);
        if (fr_ckpt_put_model(b, m) != 0 || fr_ckpt_commit(b, err, sizeof err) != 0) die(err);
        dump_ctx d = {v[i].tag, v[i].ftrl, 0};
        if (fr_ckpt_foreach(c, dump_part, &d) != 0) die("fr_ckpt_foreach");
        fr_ckpt_close(c);

        if (i == 0) {
            /* the reader's formats: a row, and version 7's manifest and dense blob */
            const fr_model_config *cfg = fr_model_get_config(m);
            unsigned char row[1 + FR_REDIS_ROW_HEADER + 4 * 2] = {(unsigned char)(cfg->emb_dim - 1)};
            const float w[2] = {0.25f, -1.5f};
            fr_redis_row_encode(row + 1, cfg->emb_dim, 3, w);
            seed("redis_row", "dim2", row, sizeof row);
            size_t n = fr_model_dense_count(m);
            size_t blen = FR_REDIS_DENSE_HEADER + 4 * n;
            unsigned char *blob = malloc(blen);
            if (!blob) die("out of memory");
            memcpy(blob, "FRD1", 4);
            fr_put_u32le(blob + 4, (uint32_t)n);
            fr_put_u64le(blob + 8, 7);
            fr_f32le_encode(blob + FR_REDIS_DENSE_HEADER, fr_model_dense_params(m), n);
            seed("reader_dense", "v7", blob, blen);
            char hash[17];
            snprintf(hash, sizeof hash, "%016" PRIx64, (uint64_t)XXH3_64bits(blob, blen));
            json_t *o = json_pack("{s:i, s:s, s:i, s:i, s:s, s:o, s:{s:I, s:I, s:s}}", "format_version",
                                  FR_REDIS_FORMAT_VERSION_PLAIN, "version", "7", "row_shards", FR_REDIS_ROW_SHARDS,
                                  "row_format", FR_REDIS_ROW_F32LE, "row_shard_fn", FR_REDIS_SHARD_FN, "model_config",
                                  fr_config_to_json(cfg), "dense", "count", (json_int_t)n, "bytes", (json_int_t)blen,
                                  "xxh3_64", hash);
            char *manifest = o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
            if (!manifest) die("manifest");
            seed2("reader_manifest", "v7", manifest, strlen(manifest) + 1, blob, blen);
            free(manifest);
            json_decref(o);
            free(blob);
        }
        fr_model_free(m);
    }
}

/* A blob through its encoder into the corpus: encode(NULL, 0) sizes it. */
#define SEED_ENCODED(target, name, call_with_buf_cap)                                                               \
    do {                                                                                                           \
        void *buf_ = NULL;                                                                                         \
        size_t cap_ = 0;                                                                                           \
        size_t n_ = call_with_buf_cap;                                                                             \
        buf_ = malloc(n_ ? n_ : 1), cap_ = n_;                                                                     \
        if (!buf_) die("malloc");                                                                                  \
        if ((call_with_buf_cap) != n_) die(name);                                                                  \
        seed(target, name, buf_, n_);                                                                              \
        free(buf_);                                                                                                \
    } while (0)

static void pipeline_parts(void)
{
    fr_stored_source src[2];
    memset(src, 0, sizeof src);
    snprintf(src[0].name, sizeof src[0].name, "clicks-3");
    src[0].max_ts = INT64_MIN;
    snprintf(src[1].name, sizeof src[1].name, "impressions-0");
    src[1].max_ts = 1700000000000;
    SEED_ENCODED("pipeline_sources", "two", fr_pipeline_sources_encode(src, 2, buf_, cap_));

    fr_sample s[3];
    memset(s, 0, sizeof s);
    for (int i = 0; i < 3; i++) {
        fuzz_features(&s[i].f, (uint64_t)i);
        s[i].scenario = i;
        s[i].kind = i == 2 ? FR_SAMPLE_WINDOW : FR_SAMPLE_CLICK_WINDOW;
        s[i].ts = 1700000000000 + i;
        s[i].has_label[FR_TASK_CTR] = 1;
        s[i].weight[FR_TASK_CTR] = 2;
        s[i].label[FR_TASK_CTR] = (float)(i & 1);
    }
    /* the batch blob: the limits, a count, the records */
    unsigned char batch[8192];
    fr_sample_limits_encode(batch);
    fr_put_u32le(batch + FR_SAMPLE_LIMITS_BYTES, 3);
    size_t off = FR_SAMPLE_LIMITS_BYTES + 4;
    for (int i = 0; i < 3; i++) off += fr_sample_encode(&s[i], batch + off, sizeof batch - off);
    if (off > sizeof batch) die("batch");
    seed("pipeline_batch", "three", batch, off);

    fr_guard g;
    fr_guard_init(&g);
    SEED_ENCODED("guard", "fresh", fr_guard_encode(&g, buf_, cap_));
    fr_guard_config c;
    fr_guard_config_defaults(&c);
    c.min_impressions = 10;
    c.short_half_life_ms = 60 * 1000;
    c.long_half_life_ms = 600 * 1000;
    char msg[512];
    int64_t ts = 1700000000000;
    fr_metric m;
    fr_metric_reset(&m);
    for (int i = 0; i < 4000 && !fr_guard_paused(&g); i++, ts += 1000) {
        fr_sample x = {.ts = ts, .kind = FR_SAMPLE_CLICK_WINDOW};
        x.label[FR_TASK_CTR] = (float)(i < 2000 && i % 5 == 0);
        fr_guard_observe(&g, &c, &x, msg, sizeof msg);
        fr_metric_add(&m, 0.01 + 0.2 * (i % 7) / 7.0, x.label[FR_TASK_CTR], 1 + (i & 1));
    }
    if (!fr_guard_paused(&g)) die("the guard did not trip");
    SEED_ENCODED("guard", "paused", fr_guard_encode(&g, buf_, cap_));

    fr_pipeline_counters pc;
    memset(&pc, 0, sizeof pc);
    pc.consumed = 1000, pc.rejected[1] = 3, pc.rejected[FR_REJECT_NREASONS - 1] = 2;
    pc.samples_trained = 900, pc.samples_buffered = 17;
    SEED_ENCODED("counters", "some", fr_pipeline_counters_encode(&pc, buf_, cap_));

    /* two metrics one after the other, as in the blob (after its count): a used one and an empty one */
    unsigned char mb[2 * (64 + FR_METRIC_BINS * 18)];
    size_t mn = fr_metric_encode(&m, mb, sizeof mb);
    fr_metric_reset(&m);
    mn += fr_metric_encode(&m, mb + mn, sizeof mb - mn);
    seed("metrics", "used-and-empty", mb, mn);

    /* two sources' event-time state, one holding a message ahead of its time */
    fr_evtime_config ec;
    fr_evtime_config_defaults(&ec);
    fr_evtime *e1 = fr_evtime_create(), *e2 = fr_evtime_create();
    if (!e1 || !e2) die("evtime");
    fr_evtime_verdict v;
    for (int i = 0; i < 50; i++) fr_evtime_offer(e1, &ec, 1700000000000 + 1000 * i, i, "{}", 2, &v);
    fr_evtime_offer(e1, &ec, 1700000000000 + INT64_C(400) * 86400 * 1000, 50, "{\"ahead\":1}", 11, &v);
    fr_evtime_offer(e2, &ec, 1700000000000, 0, "{}", 2, &v);
    fr_evtime_named parts[2] = {{"impressions-0", e1}, {"clicks-0", e2}};
    size_t elen = 0;
    unsigned char *eb = fr_evtime_export_all(parts, 2, &elen);
    if (!eb) die("evtime export");
    seed("evtime", "two", eb, elen);
    free(eb);
    fr_evtime_free(e1);
    fr_evtime_free(e2);
}

static int first_record(void *ctx, uint64_t seq, const void *bytes, size_t len)
{
    if (seq == 0) seed2("history", "record", "\x00", 1, bytes, len);
    (void)ctx;
    return 0;
}

static int no_drop(void *ctx, uint64_t seq)
{
    (void)ctx, (void)seq;
    return 0;
}

/* the metrics' history of 6 metrics (two scenarios): a closed bucket's record, and the state with
 * the next bucket open */
static void history_parts(void)
{
    fr_history *h = fr_history_create(6, 3600000, 100);
    fr_metric *run = calloc(6, sizeof *run);
    if (!h || !run) die("history");
    for (int i = 0; i < 40; i++) {
        fr_metric *open = fr_history_advance(h, 1700000000000 + 180000 * i, run);
        if (!open) die("history");
        const double p = 0.02 + 0.01 * (i % 9), y = i % 4 == 0;
        fr_metric_add(&run[i % 2], p, y, 1), fr_metric_add(&open[i % 2], p, y, 1);
        fr_metric_add(&run[2], p, y, 1), fr_metric_add(&open[2], p, y, 1);
    }
    if (fr_history_save_records(h, no_drop, first_record, NULL) != 0) die("history");
    unsigned char buf[65536];
    size_t n = fr_history_encode_state(h, buf, sizeof buf);
    if (n > sizeof buf) die("history state");
    seed2("history", "state", "\x01", 1, buf, n);
    free(run);
    fr_history_free(h);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s SOURCE_DIR\n", argv[0]);
        return 2;
    }
    snprintf(root, sizeof root, "%s", argv[1]);
    char scratch[] = "/tmp/fuzz_seeds.XXXXXX";
    if (!mkdtemp(scratch)) die("mkdtemp");
    events_and_config();
    join_parts();
    groups_parts();
    heads_and_admission();
    checkpoint_parts(scratch);
    pipeline_parts();
    history_parts();
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", scratch);
    return system(cmd) == 0 ? 0 : 1;
}
