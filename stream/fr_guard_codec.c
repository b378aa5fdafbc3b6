/* fr_guard_codec: the guard's stored record (blob "guard" of checkpoint format 3; see fr_guard.h
 * and docs/checkpoint-format.md). The guard owns it: a change of fr_guard changes this file and
 * nothing in the pipeline, which only calls fr_guard_encode and fr_guard_decode. */
#include "fr_guard.h"

#include <stdio.h>
#include <string.h>

#include "fr_bytes.h"

enum { GUARD_HEAD = 3 * 8 + 1 + 8 * 8 + 2 * 8 + 1 };

static void put_flow(fr_bytes_out *o, const fr_guard_flow *f)
{
    fr_out_f64le(o, f->den_s);
    fr_out_f64le(o, f->num_s);
    fr_out_f64le(o, f->den_l);
    fr_out_f64le(o, f->num_l);
}

static void get_flow(fr_bytes_in *r, fr_guard_flow *f)
{
    f->den_s = fr_in_f64le(r);
    f->num_s = fr_in_f64le(r);
    f->den_l = fr_in_f64le(r);
    f->num_l = fr_in_f64le(r);
}

size_t fr_guard_encode(const fr_guard *g, void *buf, size_t cap)
{
    const size_t need = GUARD_HEAD + 8 * FR_SAMPLE_NKINDS;
    if (!buf || cap < need) return need;
    fr_bytes_out o = fr_bytes_out_init(buf, need);
    fr_out_u64le(&o, (uint64_t)g->first_ts);
    fr_out_u64le(&o, (uint64_t)g->last_ts);
    fr_out_u64le(&o, (uint64_t)g->paused_since);
    fr_out_u8(&o, (uint8_t)g->reason);
    put_flow(&o, &g->ctr);
    put_flow(&o, &g->cvr);
    fr_out_u64le(&o, g->trips);
    fr_out_u64le(&o, g->resumes);
    fr_out_u8(&o, FR_SAMPLE_NKINDS);
    for (int k = 0; k < FR_SAMPLE_NKINDS; k++) fr_out_u64le(&o, g->held[k]);
    return need;
}

int fr_guard_decode(fr_guard *g, const void *buf, size_t len, char *why, size_t whylen)
{
    fr_guard_init(g);
    fr_bytes_in r = fr_bytes_in_init(buf, len);
    g->first_ts = fr_in_i64le(&r);
    g->last_ts = fr_in_i64le(&r);
    g->paused_since = fr_in_i64le(&r);
    g->reason = fr_in_u8(&r);
    get_flow(&r, &g->ctr);
    get_flow(&r, &g->cvr);
    g->trips = fr_in_u64le(&r);
    g->resumes = fr_in_u64le(&r);
    /* A later build with more sample kinds reads an older record: the new kinds start at 0. */
    const unsigned nk = fr_in_u8(&r);
    if (!r.overrun && nk > FR_SAMPLE_NKINDS) {
        snprintf(why, whylen, "it counts %u sample kinds, this build knows %d", nk, FR_SAMPLE_NKINDS);
        fr_guard_init(g);
        return -1;
    }
    for (unsigned k = 0; k < nk; k++) g->held[k] = fr_in_u64le(&r);
    if (r.overrun || r.left != 0) {
        snprintf(why, whylen, "%zu bytes, not a guard record of this format (%d bytes)", len,
                 GUARD_HEAD + 8 * FR_SAMPLE_NKINDS);
        fr_guard_init(g);
        return -1;
    }
    if (fr_guard_check(g, why, whylen) != 0) {
        fr_guard_init(g);
        return -1;
    }
    return 0;
}
