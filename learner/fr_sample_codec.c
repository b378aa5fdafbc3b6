/* fr_sample_codec: see fr_sample_codec.h. */
#include "fr_sample_codec.h"

#include <stdio.h>
#include <string.h>

#include "fr_bytes.h"

size_t fr_sample_encode(const fr_sample *s, void *buf, size_t cap)
{
    size_t need = 1 + 4 + 8 + FR_NTASKS * (1 + 4 + 4) + 1 + 4 * FR_NTASKS + 1 + 8 * FR_MAX_CAT + 4 * FR_MAX_NUM;
    for (int m = 0; m < FR_MAX_MULTI; m++)
        need += 1 + 8 * (size_t)(s->f.multi_len[m] < FR_MAX_MULTI_LEN ? s->f.multi_len[m] : FR_MAX_MULTI_LEN);
    if (!buf || cap < need) return need;
    fr_bytes_out o = fr_bytes_out_init(buf, need);
    fr_out_u8(&o, (uint8_t)s->kind);
    fr_out_u32le(&o, (uint32_t)s->scenario);
    fr_out_u64le(&o, (uint64_t)s->ts);
    for (int t = 0; t < FR_NTASKS; t++) {
        fr_out_u8(&o, s->has_label[t]);
        fr_out_f32le(&o, s->label[t]);
        fr_out_f32le(&o, s->weight[t]);
    }
    fr_out_u8(&o, s->has_prior);
    for (int t = 0; t < FR_NTASKS; t++) fr_out_f32le(&o, s->prior[t]);
    fr_out_u8(&o, s->in_window);
    for (int i = 0; i < FR_MAX_CAT; i++) fr_out_u64le(&o, s->f.cat[i]);
    for (int i = 0; i < FR_MAX_NUM; i++) fr_out_f32le(&o, s->f.num[i]);
    for (int m = 0; m < FR_MAX_MULTI; m++) {
        /* the length as it is (a decoder refuses one over the slots), the ids that exist */
        const int n = s->f.multi_len[m] < FR_MAX_MULTI_LEN ? s->f.multi_len[m] : FR_MAX_MULTI_LEN;
        fr_out_u8(&o, s->f.multi_len[m]);
        for (int i = 0; i < n; i++) fr_out_u64le(&o, s->f.multi[m][i]);
    }
    return need;
}

long fr_sample_decode(fr_sample *s, const void *buf, size_t len, const char **why)
{
    memset(s, 0, sizeof *s);
    fr_bytes_in r = fr_bytes_in_init(buf, len);
    s->kind = fr_in_u8(&r);
    s->scenario = (int32_t)fr_in_u32le(&r);
    s->ts = fr_in_i64le(&r);
    for (int t = 0; t < FR_NTASKS; t++) {
        s->has_label[t] = fr_in_u8(&r);
        s->label[t] = fr_in_f32le(&r);
        s->weight[t] = fr_in_f32le(&r);
    }
    s->has_prior = fr_in_u8(&r);
    for (int t = 0; t < FR_NTASKS; t++) s->prior[t] = fr_in_f32le(&r);
    s->in_window = fr_in_u8(&r);
    for (int i = 0; i < FR_MAX_CAT; i++) s->f.cat[i] = fr_in_u64le(&r);
    for (int i = 0; i < FR_MAX_NUM; i++) s->f.num[i] = fr_in_f32le(&r);
    for (int m = 0; m < FR_MAX_MULTI && !r.overrun; m++) {
        const uint8_t n = fr_in_u8(&r);
        if (n > FR_MAX_MULTI_LEN) {
            *why = "its multi_len is over the slot's length";
            return -1;
        }
        s->f.multi_len[m] = n;
        for (int i = 0; i < n; i++) s->f.multi[m][i] = fr_in_u64le(&r);
    }
    if (r.overrun) {
        *why = "its record is cut short";
        return -1;
    }
    return (long)(len - r.left);
}

void fr_sample_limits_encode(unsigned char out[FR_SAMPLE_LIMITS_BYTES])
{
    const unsigned char lim[FR_SAMPLE_LIMITS_BYTES] = {FR_NTASKS, FR_MAX_CAT, FR_MAX_NUM, FR_MAX_MULTI,
                                                       FR_MAX_MULTI_LEN};
    memcpy(out, lim, sizeof lim);
}

int fr_sample_limits_check(const unsigned char in[FR_SAMPLE_LIMITS_BYTES], char *why, size_t whylen)
{
    unsigned char own[FR_SAMPLE_LIMITS_BYTES];
    fr_sample_limits_encode(own);
    if (memcmp(in, own, sizeof own) == 0) return 0;
    snprintf(why, whylen,
             "written by a build with other sample limits (tasks %u, categorical %u, numeric %u, multi %u x %u; this "
             "build: %u, %u, %u, %u x %u)",
             in[0], in[1], in[2], in[3], in[4], own[0], own[1], own[2], own[3], own[4]);
    return -1;
}
