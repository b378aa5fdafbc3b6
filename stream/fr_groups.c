/* fr_groups: N joins and the k-way merge of their samples (fr_groups.h). */
#include "fr_groups.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fr_bytes.h"
#include "fr_event.h"
#include "fr_sample_codec.h"

/* Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2; librdkafka rd_murmur2): 32-bit
 * MurmurHash2 with seed 0x9747b28c, reading the key as little-endian 4-byte words. */
uint32_t fr_groups_murmur2(const void *key, size_t len)
{
    const uint8_t *d = key;
    const uint32_t m = 0x5bd1e995u;
    uint32_t h = 0x9747b28cu ^ (uint32_t)len;
    size_t i = 0;
    for (; i + 4 <= len; i += 4) {
        uint32_t k = (uint32_t)d[i] | (uint32_t)d[i + 1] << 8 | (uint32_t)d[i + 2] << 16 | (uint32_t)d[i + 3] << 24;
        k *= m;
        k ^= k >> 24;
        k *= m;
        h *= m;
        h ^= k;
    }
    switch (len & 3) {
    case 3: h ^= (uint32_t)d[i + 2] << 16; /* fall through */
    case 2: h ^= (uint32_t)d[i + 1] << 8;  /* fall through */
    case 1:
        h ^= (uint32_t)d[i];
        h *= m;
    }
    h ^= h >> 13;
    h *= m;
    h ^= h >> 15;
    return h;
}

int fr_groups_partition(const char *id, size_t id_len, int n)
{
    if (n <= 1) return 0;
    return (int)((fr_groups_murmur2(id, id_len) & 0x7fffffffu) % (uint32_t)n);
}

typedef struct {
    int64_t key;
    uint16_t group;
    uint8_t order, final;
    uint16_t id_len;
    char id[FR_ID_MAX + 1];
    fr_sample s;
} item;

struct fr_groups {
    int n;
    fr_join **joins;
    item **heap; /* the merge buffer, a min-heap in merge order */
    size_t len, cap;
    int emitting;     /* the group whose advance is running */
    int64_t key_floor; /* its watermark before the advance */
    int oom;
    fr_join_counters sum;
};

static int item_less(const item *a, const item *b)
{
    if (a->key != b->key) return a->key < b->key;
    size_t n = a->id_len < b->id_len ? a->id_len : b->id_len;
    int c = memcmp(a->id, b->id, n);
    if (c) return c < 0;
    if (a->id_len != b->id_len) return a->id_len < b->id_len;
    if (a->order != b->order) return a->order < b->order;
    return a->group < b->group;
}

static void sift_up(item **h, size_t pos)
{
    item *t = h[pos];
    while (pos > 0) {
        size_t parent = (pos - 1) / 2;
        if (!item_less(t, h[parent])) break;
        h[pos] = h[parent];
        pos = parent;
    }
    h[pos] = t;
}

static void sift_down(item **h, size_t len, size_t pos)
{
    item *t = h[pos];
    for (;;) {
        size_t c = 2 * pos + 1;
        if (c >= len) break;
        if (c + 1 < len && item_less(h[c + 1], h[c])) c++;
        if (!item_less(h[c], t)) break;
        h[pos] = h[c];
        pos = c;
    }
    h[pos] = t;
}

static int push(fr_groups *g, item *it)
{
    if (g->len == g->cap) {
        size_t ncap = g->cap ? g->cap * 2 : 256;
        item **nh = realloc(g->heap, ncap * sizeof *nh);
        if (!nh) return -1;
        g->heap = nh;
        g->cap = ncap;
    }
    g->heap[g->len] = it;
    sift_up(g->heap, g->len++);
    return 0;
}

fr_groups *fr_groups_create(const fr_join_config *c, int n)
{
    if (n < 1 || n > FR_GROUPS_MAX) return NULL;
    fr_groups *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    g->n = n;
    g->joins = calloc((size_t)n, sizeof *g->joins);
    if (!g->joins) {
        free(g);
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        g->joins[i] = fr_join_create(c);
        if (!g->joins[i]) {
            fr_groups_free(g);
            return NULL;
        }
    }
    return g;
}

void fr_groups_free(fr_groups *g)
{
    if (!g) return;
    for (int i = 0; i < g->n; i++) fr_join_free(g->joins[i]);
    for (size_t i = 0; i < g->len; i++) free(g->heap[i]);
    free(g->heap);
    free(g->joins);
    free(g);
}

int fr_groups_count(const fr_groups *g) { return g->n; }
fr_join *fr_groups_join(fr_groups *g, int i) { return g->joins[i]; }
const fr_join *fr_groups_join_const(const fr_groups *g, int i) { return g->joins[i]; }

int fr_groups_add(fr_groups *g, int i, const fr_event *ev) { return fr_join_add(g->joins[i], ev, NULL, NULL); }

/* The join's emit callback: the sample joins the merge buffer under its key. */
static void buffer_sample(const fr_sample *s, void *ctx)
{
    fr_groups *g = ctx;
    const fr_join_origin *o = fr_join_emitting(g->joins[g->emitting]);
    item *it = malloc(sizeof *it);
    if (!it) {
        g->oom = 1;
        return;
    }
    it->key = o->deadline > g->key_floor ? o->deadline : g->key_floor;
    it->group = (uint16_t)g->emitting;
    it->order = (uint8_t)o->order;
    it->final = (uint8_t)o->final;
    it->id_len = (uint16_t)o->id_len;
    memcpy(it->id, o->id, o->id_len);
    it->id[o->id_len] = '\0';
    it->s = *s;
    if (push(g, it) != 0) {
        /* The sample is lost to this run: fr_groups_advance fails and the caller stops before a
         * checkpoint could record the loss. */
        free(it);
        g->oom = 1;
    }
}

int fr_groups_advance(fr_groups *g, int i, int64_t wm)
{
    fr_join *j = g->joins[i];
    if (wm <= fr_join_watermark(j)) return 0;
    g->emitting = i;
    g->key_floor = fr_join_watermark(j);
    int rc = fr_join_advance(j, wm, buffer_sample, g);
    return rc != 0 || g->oom ? -1 : 0;
}

size_t fr_groups_release(fr_groups *g, int64_t frontier, fr_groups_emit_fn emit, void *ctx)
{
    size_t n = 0;
    while (g->len > 0 && g->heap[0]->key < frontier) {
        item *it = g->heap[0];
        g->heap[0] = g->heap[--g->len];
        if (g->len > 0) sift_down(g->heap, g->len, 0);
        const fr_groups_origin o = {it->id, it->id_len, it->key, it->order, it->final, it->group};
        if (emit) emit(&it->s, &o, ctx);
        free(it);
        n++;
    }
    return n;
}

size_t fr_groups_buffered(const fr_groups *g) { return g->len; }

int64_t fr_groups_watermark(const fr_groups *g)
{
    int64_t w = INT64_MAX;
    for (int i = 0; i < g->n; i++)
        if (fr_join_watermark(g->joins[i]) < w) w = fr_join_watermark(g->joins[i]);
    return w;
}

const fr_join_counters *fr_groups_counters(const fr_groups *cg)
{
    fr_groups *g = (fr_groups *)cg; /* sum is a cache, not state */
    memset(&g->sum, 0, sizeof g->sum);
    uint64_t *sum = (uint64_t *)&g->sum;
    const size_t words = sizeof g->sum / sizeof(uint64_t);
    for (int i = 0; i < g->n; i++) {
        const uint64_t *c = (const uint64_t *)fr_join_get_counters(g->joins[i]);
        for (size_t k = 0; k < words; k++) sum[k] += c[k];
    }
    return &g->sum;
}

size_t fr_groups_entry_count(const fr_groups *g)
{
    size_t n = 0;
    for (int i = 0; i < g->n; i++) n += fr_join_entry_count(g->joins[i]);
    return n;
}

size_t fr_groups_cached_count(const fr_groups *g)
{
    size_t n = 0;
    for (int i = 0; i < g->n; i++) n += fr_join_cached_count(g->joins[i]);
    return n;
}

const char *fr_groups_error(const fr_groups *g)
{
    for (int i = 0; i < g->n; i++)
        if (fr_join_error(g->joins[i])) return fr_join_error(g->joins[i]);
    return g->oom ? "out of memory buffering the join's samples for the merge" : NULL;
}

/* ---- the merge buffer's record ---- */

enum { ITEM_HEAD = 2 + 8 + 1 + 1 + 2 };

static int cmp_items(const void *a, const void *b)
{
    const item *x = *(item *const *)a, *y = *(item *const *)b;
    return item_less(x, y) ? -1 : item_less(y, x) ? 1 : 0;
}

size_t fr_groups_export_buffer(const fr_groups *g, void *buf, size_t cap)
{
    size_t need = 4;
    for (size_t i = 0; i < g->len; i++) need += ITEM_HEAD + g->heap[i]->id_len + fr_sample_encode(&g->heap[i]->s, NULL, 0);
    if (!buf || cap < need) return need;
    /* In merge order, so the record is a function of the buffer's content, not of the heap's shape. */
    item **sorted = malloc((g->len ? g->len : 1) * sizeof *sorted);
    if (!sorted) return 0;
    if (g->len) memcpy(sorted, g->heap, g->len * sizeof *sorted);
    qsort(sorted, g->len, sizeof *sorted, cmp_items);
    fr_bytes_out o = fr_bytes_out_init(buf, need);
    fr_out_u32le(&o, (uint32_t)g->len);
    for (size_t i = 0; i < g->len; i++) {
        const item *it = sorted[i];
        fr_out_u16le(&o, it->group);
        fr_out_u64le(&o, (uint64_t)it->key);
        fr_out_u8(&o, it->order);
        fr_out_u8(&o, it->final);
        fr_out_u16le(&o, it->id_len);
        unsigned char *at = fr_out_take(&o, it->id_len);
        if (at) memcpy(at, it->id, it->id_len);
        const size_t sl = fr_sample_encode(&it->s, NULL, 0);
        at = fr_out_take(&o, sl);
        if (at) fr_sample_encode(&it->s, at, sl);
    }
    free(sorted);
    return need;
}

int fr_groups_import_buffer(fr_groups *g, const void *buf, size_t len, fr_groups_check_fn check, void *ctx,
                            char *why, size_t whylen)
{
    fr_bytes_in r = fr_bytes_in_init(buf, len);
    const uint32_t n = fr_in_u32le(&r);
    if (r.overrun) {
        snprintf(why, whylen, "cut short (%zu bytes)", len);
        return -1;
    }
    item *prev = NULL;
    for (uint32_t i = 0; i < n; i++) {
        item *it = calloc(1, sizeof *it);
        if (!it) {
            snprintf(why, whylen, "out of memory at item %" PRIu32, i);
            return -1;
        }
        it->group = fr_in_u16le(&r);
        it->key = fr_in_i64le(&r);
        it->order = fr_in_u8(&r);
        it->final = fr_in_u8(&r);
        it->id_len = fr_in_u16le(&r);
        const unsigned char *id = it->id_len <= FR_ID_MAX ? fr_in_take(&r, it->id_len) : NULL;
        const char *bad = NULL, *sbad = NULL;
        char w[200] = "";
        if (r.overrun)
            bad = "cut short";
        else if (it->group >= g->n)
            bad = "a group beyond the configured partitions";
        else if (!id || it->id_len == 0)
            bad = "an id empty or over the limit";
        else if (it->order >= FR_JOIN_ORDER_KINDS || it->final > 1)
            bad = "a timer kind or flag out of range";
        if (!bad) {
            memcpy(it->id, id, it->id_len);
            if (memchr(it->id, '\0', it->id_len) || fr_groups_partition(it->id, it->id_len, g->n) != it->group)
                bad = "an id that is not in its group's partition";
            else if (it->key >= fr_join_watermark(g->joins[it->group]))
                bad = "a key not below its group's watermark";
            else if (prev && !item_less(prev, it))
                bad = "items out of merge order";
        }
        long used = bad ? 0 : fr_sample_decode(&it->s, r.p, r.left, &sbad);
        if (!bad && used < 0) bad = sbad;
        if (!bad) {
            fr_in_take(&r, (size_t)used);
            if (it->s.has_prior || it->s.kind < 0 || it->s.kind >= FR_SAMPLE_NKINDS)
                bad = "a sample with a prior or of an unknown kind";
            else if (check && check(&it->s, w, sizeof w, ctx) != 0)
                bad = w;
        }
        if (bad || push(g, it) != 0) {
            snprintf(why, whylen, "item %" PRIu32 ": %s", i, bad ? bad : "out of memory");
            free(it);
            return -1;
        }
        prev = it;
    }
    if (r.left != 0) {
        snprintf(why, whylen, "%zu bytes after its %" PRIu32 " items", r.left, n);
        return -1;
    }
    return 0;
}
