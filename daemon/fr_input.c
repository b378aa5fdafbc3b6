#define _GNU_SOURCE /* fopencookie */
#include "fr_input.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

/* One decompressing stream behind a FILE (fopencookie). pos counts uncompressed bytes handed out. */
typedef struct {
    fr_input_kind kind;
    gzFile gz;
    FILE *raw; /* zstd: the compressed file */
    ZSTD_DCtx *z;
    ZSTD_inBuffer in;
    unsigned char *inbuf;
    size_t incap;
    size_t frame_left; /* zstd: ZSTD_decompressStream's last hint; 0 = at a frame boundary */
    int64_t pos;
} decoder;

static ssize_t zstd_read(decoder *d, char *buf, size_t size)
{
    ZSTD_outBuffer out = {buf, size, 0};
    while (out.pos == 0) {
        if (d->in.pos == d->in.size) {
            size_t n = fread(d->inbuf, 1, d->incap, d->raw);
            if (n == 0) {
                if (ferror(d->raw)) return -1;
                if (d->frame_left != 0) { /* the file ends inside a frame */
                    errno = EIO;
                    return -1;
                }
                return 0;
            }
            d->in = (ZSTD_inBuffer){d->inbuf, n, 0};
        }
        size_t r = ZSTD_decompressStream(d->z, &out, &d->in);
        if (ZSTD_isError(r)) {
            errno = EIO;
            return -1;
        }
        d->frame_left = r;
    }
    return (ssize_t)out.pos;
}

static ssize_t dec_read(void *cookie, char *buf, size_t size)
{
    decoder *d = cookie;
    ssize_t n;
    if (d->kind == FR_INPUT_GZIP) {
        int r = gzread(d->gz, buf, (unsigned)(size > (1u << 30) ? (1u << 30) : size));
        if (r < 0) {
            errno = EIO;
            return -1;
        }
        n = r;
    } else {
        n = zstd_read(d, buf, size);
    }
    if (n > 0) d->pos += n;
    return n;
}

static int restart(decoder *d)
{
    d->pos = 0;
    if (d->kind == FR_INPUT_GZIP) return gzrewind(d->gz);
    if (fseeko(d->raw, 0, SEEK_SET) != 0) return -1;
    ZSTD_DCtx_reset(d->z, ZSTD_reset_session_only);
    d->in = (ZSTD_inBuffer){d->inbuf, 0, 0};
    d->frame_left = 0;
    return 0;
}

/* SEEK_SET and SEEK_CUR only (a compressed stream's end is not known without reading it all). */
static int dec_seek(void *cookie, off64_t *offset, int whence)
{
    decoder *d = cookie;
    int64_t target = whence == SEEK_SET ? *offset : whence == SEEK_CUR ? d->pos + *offset : -1;
    if (target < 0) {
        errno = EINVAL;
        return -1;
    }
    if (target < d->pos && restart(d) != 0) {
        errno = EIO;
        return -1;
    }
    char scratch[65536];
    while (d->pos < target) {
        int64_t want = target - d->pos;
        ssize_t n = dec_read(d, scratch, want < (int64_t)sizeof scratch ? (size_t)want : sizeof scratch);
        if (n <= 0) {
            errno = n < 0 ? EIO : EINVAL; /* past the end */
            return -1;
        }
    }
    *offset = d->pos;
    return 0;
}

static int dec_close(void *cookie)
{
    decoder *d = cookie;
    int rc = 0;
    if (d->gz) rc = gzclose(d->gz) == Z_OK ? 0 : -1;
    if (d->raw) rc |= fclose(d->raw);
    ZSTD_freeDCtx(d->z);
    free(d->inbuf);
    free(d);
    return rc;
}

const char *fr_input_kind_name(fr_input_kind kind)
{
    return kind == FR_INPUT_GZIP ? "gzip" : kind == FR_INPUT_ZSTD ? "zstd" : "plain";
}

FILE *fr_input_open(const char *path, fr_input_kind *kind, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return NULL;
    }
    unsigned char magic[4] = {0};
    size_t got = fread(magic, 1, sizeof magic, f);
    fr_input_kind k = got >= 2 && magic[0] == 0x1f && magic[1] == 0x8b                                         ? FR_INPUT_GZIP
                      : got == 4 && magic[0] == 0x28 && magic[1] == 0xb5 && magic[2] == 0x2f && magic[3] == 0xfd ? FR_INPUT_ZSTD
                                                                                                                  : FR_INPUT_PLAIN;
    if (kind) *kind = k;
    if (k == FR_INPUT_PLAIN) {
        if (fseeko(f, 0, SEEK_SET) != 0) {
            snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
            fclose(f);
            return NULL;
        }
        return f;
    }
    decoder *d = calloc(1, sizeof *d);
    if (!d) goto oom;
    d->kind = k;
    if (k == FR_INPUT_GZIP) {
        fclose(f);
        f = NULL;
        if (!(d->gz = gzopen(path, "rb"))) {
            snprintf(err, errlen, "cannot read %s: %s", path, errno ? strerror(errno) : "gzopen failed");
            free(d);
            return NULL;
        }
        gzbuffer(d->gz, 1 << 17);
    } else {
        d->raw = f;
        f = NULL;
        d->incap = ZSTD_DStreamInSize();
        if (!(d->inbuf = malloc(d->incap)) || !(d->z = ZSTD_createDCtx()) || fseeko(d->raw, 0, SEEK_SET) != 0) {
            dec_close(d);
            goto oom;
        }
    }
    FILE *s = fopencookie(d, "r", (cookie_io_functions_t){.read = dec_read, .seek = dec_seek, .close = dec_close});
    if (!s) {
        dec_close(d);
        goto oom;
    }
    return s;
oom:
    if (f) fclose(f);
    snprintf(err, errlen, "cannot read %s: out of memory for its decompression", path);
    return NULL;
}
