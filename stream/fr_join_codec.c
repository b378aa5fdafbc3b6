/* fr_join_codec: the join's stored formats -- one record per entry (family "join") and the
 * counters blob (fr_join_export_meta). See fr_join_int.h for the structures. */
#include "fr_join_int.h"

#include <stdio.h>
#include <string.h>

static uint8_t *put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
    return p + 8;
}
static uint8_t *put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
    return p + 4;
}
static uint8_t *put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    return p + 2;
}
static uint8_t *put_f32(uint8_t *p, float f)
{
    uint32_t v;
    memcpy(&v, &f, sizeof v);
    return put_u32(p, v);
}
static uint8_t *put_f64(uint8_t *p, double d)
{
    uint64_t v;
    memcpy(&v, &d, sizeof v);
    return put_u64(p, v);
}
static const uint8_t *get_u64(const uint8_t *p, uint64_t *v)
{
    *v = 0;
    for (int i = 0; i < 8; i++) *v |= (uint64_t)p[i] << (8 * i);
    return p + 8;
}
static const uint8_t *get_i64(const uint8_t *p, int64_t *v)
{
    uint64_t u;
    p = get_u64(p, &u);
    *v = (int64_t)u;
    return p;
}
static const uint8_t *get_u32(const uint8_t *p, uint32_t *v)
{
    *v = 0;
    for (int i = 0; i < 4; i++) *v |= (uint32_t)p[i] << (8 * i);
    return p + 4;
}
static const uint8_t *get_f32(const uint8_t *p, float *f)
{
    uint32_t v;
    p = get_u32(p, &v);
    memcpy(f, &v, sizeof v);
    return p;
}
static const uint8_t *get_f64(const uint8_t *p, double *d)
{
    uint64_t v;
    p = get_u64(p, &v);
    memcpy(d, &v, sizeof v);
    return p;
}

void fr_join_entry_serialise(const fr_join_entry *e, uint8_t out[ENTRY_BYTES])
{
    const entry_body *b = e->body;
    uint8_t *p = out;
    *p++ = ENTRY_FORMAT_VERSION;
    p = put_u16(p, e->flags);
    p = put_u64(p, (uint64_t)e->imp_ts);
    p = put_u32(p, (uint32_t)b->scenario);
    p = put_f32(p, b->sample_rate);
    p = put_u64(p, (uint64_t)e->click_ts);
    p = put_u64(p, (uint64_t)e->conv_ts);
    p = put_f64(p, b->conv_value);
    for (int i = 0; i < FR_MAX_CAT; i++) p = put_u64(p, b->f.cat[i]);
    for (int i = 0; i < FR_MAX_NUM; i++) p = put_f32(p, b->f.num[i]);
    for (int m = 0; m < FR_MAX_MULTI; m++)
        for (int i = 0; i < FR_MAX_MULTI_LEN; i++) p = put_u64(p, b->f.multi[m][i]);
    for (int m = 0; m < FR_MAX_MULTI; m++) *p++ = b->f.multi_len[m];
    for (int t = 0; t < FR_NTASKS; t++) p = put_f32(p, b->prior[t]);
}

/* The flag combinations the event handlers can produce; anything else is a corrupt blob. */
static int flags_valid(uint16_t fl)
{
    if (fl & ~F_KNOWN) return 0;
    if (!(fl & (F_IMP | F_CLICK_HELD | F_CONV_HELD))) return 0;
    if ((fl & F_CLICKED) && !(fl & F_IMP)) return 0;
    if ((fl & F_CLICK_HELD) && (fl & F_IMP)) return 0;
    if ((fl & (F_CLICKED | F_CLICK_HELD)) && !(fl & F_CLICK_SEEN)) return 0;
    if ((fl & F_CONVERTED) && !(fl & F_CLICKED)) return 0;
    if ((fl & F_CONV_HELD) && (fl & (F_CONVERTED | F_CLICKED))) return 0;
    if ((fl & (F_CONVERTED | F_CONV_HELD)) && !(fl & F_CONV_SEEN)) return 0;
    if ((fl & F_CTR_EMITTED) && !(fl & F_IMP)) return 0;
    if ((fl & F_PRIOR) && !(fl & F_IMP)) return 0;
    if ((fl & (F_EARLY_DONE | F_WINDOW_DONE | F_DP_DONE | F_RN_DONE)) && !(fl & F_CLICKED)) return 0;
    if ((fl & F_WINDOW_POS) && !((fl & F_WINDOW_DONE) && (fl & F_CONVERTED))) return 0;
    if ((fl & F_DP_DONE) && !(fl & F_CONVERTED)) return 0;
    return 1;
}

int fr_join_entry_parse(const void *bytes, size_t len, parsed_entry *out)
{
    if (!bytes || len != ENTRY_BYTES) return -1;
    const uint8_t *p = bytes;
    if (*p++ != ENTRY_FORMAT_VERSION) return -1;
    memset(out, 0, sizeof *out);
    out->flags = (uint16_t)(p[0] | (p[1] << 8));
    p += 2;
    if (!flags_valid(out->flags)) return -1;
    entry_body *b = &out->body;
    uint32_t u;
    p = get_i64(p, &out->imp_ts);
    p = get_u32(p, &u);
    b->scenario = (int32_t)u;
    p = get_f32(p, &b->sample_rate);
    p = get_i64(p, &out->click_ts);
    p = get_i64(p, &out->conv_ts);
    p = get_f64(p, &b->conv_value);
    for (int i = 0; i < FR_MAX_CAT; i++) p = get_u64(p, &b->f.cat[i]);
    for (int i = 0; i < FR_MAX_NUM; i++) p = get_f32(p, &b->f.num[i]);
    for (int m = 0; m < FR_MAX_MULTI; m++)
        for (int i = 0; i < FR_MAX_MULTI_LEN; i++) p = get_u64(p, &b->f.multi[m][i]);
    for (int m = 0; m < FR_MAX_MULTI; m++) b->f.multi_len[m] = *p++;
    for (int t = 0; t < FR_NTASKS; t++) p = get_f32(p, &b->prior[t]);
    for (int m = 0; m < FR_MAX_MULTI; m++)
        if (b->f.multi_len[m] > FR_MAX_MULTI_LEN) return -1;
    /* A weight of 1/0 or 1/NaN would poison the model silently. */
    if ((out->flags & F_IMP) && !(b->sample_rate > 0 && b->sample_rate <= 1)) return -1;
    return 0;
}

/* Meta format v1, little-endian:
 *   u8 version, u8 policy, u8 ntypes, u8 nreasons, u8 nkinds, i64 watermark,
 *   i64 click_window_ms, i64 attribution_window_ms,
 *   u64 events[ntypes], joined[ntypes], pending[ntypes], dropped[ntypes][nreasons], emitted[nkinds]
 * The counts let a later build with more reasons or kinds read an older blob. */
enum { META_HEADER = 5 + 3 * 8 };

static size_t meta_size(size_t ntypes, size_t nreasons, size_t nkinds)
{
    return META_HEADER + 8 * (3 * ntypes + ntypes * nreasons + nkinds);
}

size_t fr_join_export_meta(const fr_join *j, void *buf, size_t cap)
{
    const size_t need = meta_size(FR_EV_NTYPES, FR_DROP_NREASONS, FR_SAMPLE_NKINDS);
    if (!buf || cap < need) return need;
    uint8_t *p = buf;
    *p++ = META_FORMAT_VERSION;
    *p++ = (uint8_t)j->cfg.policy;
    *p++ = FR_EV_NTYPES;
    *p++ = FR_DROP_NREASONS;
    *p++ = FR_SAMPLE_NKINDS;
    p = put_u64(p, (uint64_t)j->watermark);
    p = put_u64(p, (uint64_t)j->cfg.click_window_ms);
    p = put_u64(p, (uint64_t)j->cfg.attribution_window_ms);
    for (int t = 0; t < FR_EV_NTYPES; t++) p = put_u64(p, j->n.events[t]);
    for (int t = 0; t < FR_EV_NTYPES; t++) p = put_u64(p, j->n.joined[t]);
    for (int t = 0; t < FR_EV_NTYPES; t++) p = put_u64(p, j->n.pending[t]);
    for (int t = 0; t < FR_EV_NTYPES; t++)
        for (int r = 0; r < FR_DROP_NREASONS; r++) p = put_u64(p, j->n.dropped[t][r]);
    for (int k = 0; k < FR_SAMPLE_NKINDS; k++) p = put_u64(p, j->n.emitted[k]);
    return need;
}

int fr_join_check_meta(const fr_join *j, const void *buf, size_t len, char *err, size_t errlen)
{
    const uint8_t *p = buf;
    if (!buf || len < META_HEADER || p[0] != META_FORMAT_VERSION || p[1] >= FR_JOIN_NPOLICIES) {
        snprintf(err, errlen, "checkpoint: join counters missing or unreadable");
        return -1;
    }
    if (p[1] != (uint8_t)j->cfg.policy) {
        snprintf(err, errlen,
                 "checkpoint was written with join.policy \"%s\" but the configuration says \"%s\": the pending "
                 "clicks' copies were planned for the old policy; restore join.policy \"%s\" or use a new "
                 "checkpoint.dir",
                 fr_join_policy_name((fr_join_policy)p[1]), fr_join_policy_name(j->cfg.policy),
                 fr_join_policy_name((fr_join_policy)p[1]));
        return -1;
    }
    return 0;
}

int fr_join_import_meta(fr_join *j, const void *buf, size_t len)
{
    if (!buf || len < META_HEADER) return -1;
    const uint8_t *p = buf;
    /* Policy and windows are recorded but not enforced: `freshet inspect` reads the counters with a
     * default join, and refusing a changed window is the pipeline's call, not the blob's. */
    if (p[0] != META_FORMAT_VERSION || p[1] >= FR_JOIN_NPOLICIES) return -1;
    const size_t ntypes = p[2], nreasons = p[3], nkinds = p[4];
    if (ntypes != FR_EV_NTYPES || nreasons > FR_DROP_NREASONS || nkinds > FR_SAMPLE_NKINDS) return -1;
    if (len != meta_size(ntypes, nreasons, nkinds)) return -1;
    p += 5;
    int64_t wm;
    p = get_i64(p, &wm);
    p += 16; /* the windows */
    fr_join_counters n;
    memset(&n, 0, sizeof n);
    for (size_t t = 0; t < ntypes; t++) p = get_u64(p, &n.events[t]);
    for (size_t t = 0; t < ntypes; t++) p = get_u64(p, &n.joined[t]);
    for (size_t t = 0; t < ntypes; t++) p = get_u64(p, &n.pending[t]);
    for (size_t t = 0; t < ntypes; t++)
        for (size_t r = 0; r < nreasons; r++) p = get_u64(p, &n.dropped[t][r]);
    for (size_t k = 0; k < nkinds; k++) p = get_u64(p, &n.emitted[k]);
    j->n = n;
    j->watermark = wm;
    return 0;
}
