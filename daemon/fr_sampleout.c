/* fr_sampleout: see fr_sampleout.h. */
#include "fr_sampleout.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fr_sampleout {
    FILE *f;
    char *path;
    int n_cat, n_num, n_multi;
    int write_errno; /* the first failed write's errno, 0 while none failed */
};

static void put_u8(unsigned char **p, unsigned v) { *(*p)++ = (unsigned char)v; }
static void put_u32(unsigned char **p, uint32_t v)
{
    for (int i = 0; i < 4; i++) *(*p)++ = (unsigned char)(v >> (8 * i));
}
static void put_u64(unsigned char **p, uint64_t v)
{
    for (int i = 0; i < 8; i++) *(*p)++ = (unsigned char)(v >> (8 * i));
}
static void put_f32(unsigned char **p, float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    put_u32(p, u);
}

fr_sampleout *fr_sampleout_open(const char *path, int n_cat, int n_num, int n_multi, char *err, size_t errlen)
{
    if (n_cat < 0 || n_cat > FR_MAX_CAT || n_num < 0 || n_num > FR_MAX_NUM || n_multi < 0 || n_multi > FR_MAX_MULTI) {
        snprintf(err, errlen, "samples record %s: feature slots %d/%d/%d exceed the build's limits", path, n_cat, n_num,
                 n_multi);
        return NULL;
    }
    fr_sampleout *o = calloc(1, sizeof *o);
    if (!o || !(o->path = strdup(path))) {
        free(o);
        snprintf(err, errlen, "samples record %s: out of memory", path);
        return NULL;
    }
    if (!(o->f = fopen(path, "wb"))) {
        snprintf(err, errlen, "cannot create the samples record %s: %s", path, strerror(errno));
        free(o->path);
        free(o);
        return NULL;
    }
    o->n_cat = n_cat, o->n_num = n_num, o->n_multi = n_multi;
    unsigned char head[36], *p = head;
    memcpy(p, "FRESHET-SAMPLES\n", 16);
    p += 16;
    put_u32(&p, 1);
    put_u32(&p, (uint32_t)n_cat);
    put_u32(&p, (uint32_t)n_num);
    put_u32(&p, (uint32_t)n_multi);
    put_u32(&p, FR_MAX_MULTI_LEN);
    if (fwrite(head, 1, sizeof head, o->f) != sizeof head) o->write_errno = errno ? errno : EIO;
    return o;
}

void fr_sampleout_write(fr_sampleout *o, int op, int flags, uint64_t step, uint64_t key, const double score[FR_NTASKS],
                        const fr_sample *s)
{
    unsigned char rec[80 + 8 * FR_MAX_CAT + 4 * FR_MAX_NUM + (8 * FR_MAX_MULTI_LEN + 1) * FR_MAX_MULTI], *p = rec;
    put_u8(&p, (unsigned)op);
    put_u8(&p, (unsigned)flags);
    put_u8(&p, (unsigned)s->kind);
    put_u32(&p, (uint32_t)s->scenario);
    put_u64(&p, step);
    put_u64(&p, key);
    put_u64(&p, (uint64_t)s->ts);
    for (int t = 0; t < FR_NTASKS; t++) put_f32(&p, (float)score[t]);
    for (int t = 0; t < FR_NTASKS; t++) put_u8(&p, s->has_label[t]);
    for (int t = 0; t < FR_NTASKS; t++) put_f32(&p, s->label[t]);
    for (int t = 0; t < FR_NTASKS; t++) put_f32(&p, s->weight[t]);
    for (int i = 0; i < o->n_cat; i++) put_u64(&p, s->f.cat[i]);
    for (int i = 0; i < o->n_num; i++) put_f32(&p, s->f.num[i]);
    for (int m = 0; m < o->n_multi; m++)
        for (int k = 0; k < FR_MAX_MULTI_LEN; k++) put_u64(&p, k < s->f.multi_len[m] ? s->f.multi[m][k] : 0);
    for (int m = 0; m < o->n_multi; m++) put_u8(&p, s->f.multi_len[m]);
    const size_t n = (size_t)(p - rec);
    if (!o->write_errno && fwrite(rec, 1, n, o->f) != n) o->write_errno = errno ? errno : EIO;
}

int fr_sampleout_close(fr_sampleout *o, char *err, size_t errlen)
{
    if (!o) return 0;
    int werr = o->write_errno;
    if (fclose(o->f) != 0 && !werr) werr = errno ? errno : EIO;
    if (werr) snprintf(err, errlen, "writing the samples record %s failed: %s", o->path, strerror(werr));
    free(o->path);
    free(o);
    return werr ? -1 : 0;
}
