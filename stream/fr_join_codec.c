/* fr_join_codec: the join's stored formats -- one record per entry (family "join") and the
 * counters blob (fr_join_export_meta). See fr_join_int.h for the structures. */
#include "fr_join_int.h"

#include "fr_bytes.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

void fr_join_entry_serialise(const fr_join_entry *e, uint8_t out[ENTRY_BYTES])
{
    const entry_body *b = e->body;
    fr_bytes_out o = fr_bytes_out_init(out, ENTRY_BYTES);
    fr_out_u8(&o, ENTRY_FORMAT_VERSION);
    fr_out_u16le(&o, e->flags);
    fr_out_u64le(&o, (uint64_t)e->imp_ts);
    fr_out_u32le(&o, (uint32_t)b->scenario);
    fr_out_f32le(&o, b->sample_rate);
    fr_out_u64le(&o, (uint64_t)e->click_ts);
    fr_out_u64le(&o, (uint64_t)e->conv_ts);
    fr_out_f64le(&o, b->conv_value);
    for (int i = 0; i < FR_MAX_CAT; i++) fr_out_u64le(&o, b->f.cat[i]);
    for (int i = 0; i < FR_MAX_NUM; i++) fr_out_f32le(&o, b->f.num[i]);
    for (int m = 0; m < FR_MAX_MULTI; m++)
        for (int i = 0; i < FR_MAX_MULTI_LEN; i++) fr_out_u64le(&o, b->f.multi[m][i]);
    for (int m = 0; m < FR_MAX_MULTI; m++) fr_out_u8(&o, b->f.multi_len[m]);
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
    if (fl & F_PRIOR) return 0; /* format 1's; never written by format 2 */
    if ((fl & (F_EARLY_DONE | F_WINDOW_DONE | F_DP_DONE | F_RN_DONE)) && !(fl & F_CLICKED)) return 0;
    if ((fl & F_WINDOW_POS) && !((fl & F_WINDOW_DONE) && (fl & F_CONVERTED))) return 0;
    if ((fl & F_DP_DONE) && !(fl & F_CONVERTED)) return 0;
    return 1;
}

static int all_finite(const float *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i])) return 0;
    return 1;
}

/* Every stored value is untrusted: what indexes (the scenario), sizes (multi_len) or divides (the
 * sample rate), and every float that reaches the model or the metrics. */
int fr_join_entry_parse(const void *bytes, size_t len, int n_scenarios, parsed_entry *out, const char **why)
{
    *why = "not an entry of this version";
    if (bytes && len > 0 && ((const uint8_t *)bytes)[0] == 1)
        *why = "an entry of format 1 (it held the learner's prior, which this build keeps outside the join): "
               "restore with the build that wrote it, or start a new checkpoint.dir";
    if (!bytes || len != ENTRY_BYTES) return -1;
    fr_bytes_in r = fr_bytes_in_init(bytes, len);
    if (fr_in_u8(&r) != ENTRY_FORMAT_VERSION) return -1;
    memset(out, 0, sizeof *out);
    out->flags = fr_in_u16le(&r);
    *why = "impossible state flags";
    if (!flags_valid(out->flags)) return -1;
    entry_body *b = &out->body;
    out->imp_ts = fr_in_i64le(&r);
    b->scenario = (int32_t)fr_in_u32le(&r);
    b->sample_rate = fr_in_f32le(&r);
    out->click_ts = fr_in_i64le(&r);
    out->conv_ts = fr_in_i64le(&r);
    b->conv_value = fr_in_f64le(&r);
    for (int i = 0; i < FR_MAX_CAT; i++) b->f.cat[i] = fr_in_u64le(&r);
    for (int i = 0; i < FR_MAX_NUM; i++) b->f.num[i] = fr_in_f32le(&r);
    for (int m = 0; m < FR_MAX_MULTI; m++)
        for (int i = 0; i < FR_MAX_MULTI_LEN; i++) b->f.multi[m][i] = fr_in_u64le(&r);
    for (int m = 0; m < FR_MAX_MULTI; m++) b->f.multi_len[m] = fr_in_u8(&r);
    *why = "not an entry of this version";
    if (r.overrun || r.left != 0) return -1;
    *why = "a multi-valued field longer than its slots";
    for (int m = 0; m < FR_MAX_MULTI; m++)
        if (b->f.multi_len[m] > FR_MAX_MULTI_LEN) return -1;
    if (out->flags & F_IMP) {
        /* A weight of 1/0, 1/NaN or 1/subnormal (infinite) would poison the model silently: the
         * decoder's rule for events (fr_event.c). */
        *why = "sample rate outside [FLT_MIN, 1]";
        if (!(b->sample_rate >= FLT_MIN && b->sample_rate <= 1)) return -1;
        /* The scenario indexes the metrics and the model's per-scenario parameters. */
        *why = "scenario outside the configured list";
        if (b->scenario < 0 || (n_scenarios > 0 && b->scenario >= n_scenarios)) return -1;
        *why = "a numeric feature that is not finite";
        if (!all_finite(b->f.num, FR_MAX_NUM)) return -1;
    }
    *why = "a conversion value that is not finite";
    if (!isfinite(b->conv_value)) return -1;
    *why = NULL;
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
    fr_bytes_out o = fr_bytes_out_init(buf, need);
    fr_out_u8(&o, META_FORMAT_VERSION);
    fr_out_u8(&o, (uint8_t)j->cfg.policy);
    fr_out_u8(&o, FR_EV_NTYPES);
    fr_out_u8(&o, FR_DROP_NREASONS);
    fr_out_u8(&o, FR_SAMPLE_NKINDS);
    fr_out_u64le(&o, (uint64_t)j->watermark);
    fr_out_u64le(&o, (uint64_t)j->cfg.click_window_ms);
    fr_out_u64le(&o, (uint64_t)j->cfg.attribution_window_ms);
    for (int t = 0; t < FR_EV_NTYPES; t++) fr_out_u64le(&o, j->n.events[t]);
    for (int t = 0; t < FR_EV_NTYPES; t++) fr_out_u64le(&o, j->n.joined[t]);
    for (int t = 0; t < FR_EV_NTYPES; t++) fr_out_u64le(&o, j->n.pending[t]);
    for (int t = 0; t < FR_EV_NTYPES; t++)
        for (int r = 0; r < FR_DROP_NREASONS; r++) fr_out_u64le(&o, j->n.dropped[t][r]);
    for (int k = 0; k < FR_SAMPLE_NKINDS; k++) fr_out_u64le(&o, j->n.emitted[k]);
    return need;
}

int fr_join_check_meta(const fr_join *j, const void *buf, size_t len, char *err, size_t errlen)
{
    const uint8_t *p = buf;
    if (!buf || len < META_HEADER || p[0] != META_FORMAT_VERSION || p[1] >= FR_NPOLICIES) {
        snprintf(err, errlen, "checkpoint: join counters missing or unreadable");
        return -1;
    }
    if (p[1] != (uint8_t)j->cfg.policy) {
        snprintf(err, errlen,
                 "checkpoint was written with join.policy \"%s\" but the configuration says \"%s\": the pending "
                 "clicks' copies were planned for the old policy; restore join.policy \"%s\" or use a new "
                 "checkpoint.dir",
                 fr_policy_name((fr_policy_id)p[1]), fr_policy_name(j->cfg.policy),
                 fr_policy_name((fr_policy_id)p[1]));
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
    if (p[0] != META_FORMAT_VERSION || p[1] >= FR_NPOLICIES) return -1;
    const size_t ntypes = p[2], nreasons = p[3], nkinds = p[4];
    if (ntypes != FR_EV_NTYPES || nreasons > FR_DROP_NREASONS || nkinds > FR_SAMPLE_NKINDS) return -1;
    if (len != meta_size(ntypes, nreasons, nkinds)) return -1;
    fr_bytes_in r = fr_bytes_in_init(p + 5, len - 5);
    int64_t wm = fr_in_i64le(&r);
    fr_in_take(&r, 16); /* the windows */
    fr_join_counters n;
    memset(&n, 0, sizeof n);
    for (size_t t = 0; t < ntypes; t++) n.events[t] = fr_in_u64le(&r);
    for (size_t t = 0; t < ntypes; t++) n.joined[t] = fr_in_u64le(&r);
    for (size_t t = 0; t < ntypes; t++) n.pending[t] = fr_in_u64le(&r);
    for (size_t t = 0; t < ntypes; t++)
        for (size_t k = 0; k < nreasons; k++) n.dropped[t][k] = fr_in_u64le(&r);
    for (size_t k = 0; k < nkinds; k++) n.emitted[k] = fr_in_u64le(&r);
    if (r.overrun) return -1;
    /* Every accepted event is in exactly one bucket (fr_join.h, "Accounting"): counts that break
     * it were not written by this join. */
    for (size_t t = 0; t < ntypes; t++) {
        uint64_t sum = n.joined[t];
        int over = __builtin_add_overflow(sum, n.pending[t], &sum);
        for (size_t k = 0; k < nreasons; k++) over |= __builtin_add_overflow(sum, n.dropped[t][k], &sum);
        if (over || sum != n.events[t]) return -1;
    }
    j->n = n;
    j->watermark = wm;
    return 0;
}
