/* fr_fileid: see fr_fileid.h. */
/* glibc declares realpath only with X/Open */
#define _XOPEN_SOURCE 700
#include "fr_fileid.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "fr_bytes.h"

static const char MAGIC[4] = {'F', 'R', 'F', '1'};
static const char AND_THEN[] = "; a replay never resumes a file at an offset that belongs to other content: to learn "
                               "it as a new file give it another path, to start over replay into a fresh --state";

/* Reads up to len (<= FR_FILEID_BLOCK) bytes at off through the stream (plain or decompressing,
 * fr_input.h: offsets are the content's), and puts the stream back where it was. The count read,
 * or -1 when the stream cannot seek or read. */
static long read_at(FILE *in, int64_t off, uint32_t len, unsigned char *buf)
{
    off_t was = ftello(in);
    if (was < 0 || fseeko(in, (off_t)off, SEEK_SET) != 0) return -1;
    size_t got = fread(buf, 1, len, in);
    int failed = ferror(in);
    clearerr(in);
    if (fseeko(in, was, SEEK_SET) != 0 || failed) return -1;
    return (long)got;
}

/* XXH3-64 of the len bytes at off; last: their last byte. -1 when the content has fewer (or
 * cannot be read). */
static int hash_range(FILE *in, int64_t off, uint32_t len, uint64_t *out, unsigned char *last)
{
    unsigned char buf[FR_FILEID_BLOCK] = {0};
    if (read_at(in, off, len, buf) != (long)len) return -1;
    *out = XXH3_64bits(buf, len);
    if (last) *last = len ? buf[len - 1] : 0;
    return 0;
}

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

int fr_fileid_of(FILE *in, const char *path, char *name, size_t name_cap, fr_fileid *id, char *err, size_t errlen)
{
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen,
                 "%s is not a regular file (a pipe or a device?): a replay resumes where it stopped, which needs a "
                 "file it can identify and seek; write the stream to a file first",
                 path);
        return -1;
    }
    char *real = realpath(path, NULL);
    if (!real) {
        snprintf(err, errlen, "cannot resolve the path of %s: %s", path, strerror(errno));
        return -1;
    }
    memset(id, 0, sizeof *id);
    id->path_hash = XXH3_64bits(real, strlen(real));
    /* the base name is for people; the hash of the real path makes the name unique */
    int room = (int)name_cap - (int)strlen("file:@") - 16 - 1;
    snprintf(name, name_cap, "file:%.*s@%016" PRIx64, room > 0 ? room : 0, base_name(real), id->path_hash);
    free(real);
    /* the content's first bytes (a compressed file's uncompressed ones) */
    unsigned char head[FR_FILEID_BLOCK];
    long got = read_at(in, 0, FR_FILEID_BLOCK, head);
    if (got < 0) {
        snprintf(err, errlen, "cannot read the first bytes of %s", path);
        return -1;
    }
    id->head_len = (uint32_t)got;
    id->head_hash = XXH3_64bits(head, (size_t)got);
    return 0;
}

void fr_fileid_legacy_name(const char *path, char *name, size_t name_cap)
{
    snprintf(name, name_cap, "file:%s", base_name(path));
}

void fr_fileid_read(fr_fileid *id, const char *line, size_t len)
{
    size_t n = len < FR_FILEID_BLOCK ? len : FR_FILEID_BLOCK;
    id->tail_len = (uint32_t)n;
    id->tail_hash = XXH3_64bits(line + len - n, n);
}

void fr_fileid_encode(const fr_fileid *id, unsigned char out[FR_FILEID_LEN])
{
    memcpy(out, MAGIC, 4);
    fr_put_u64le(out + 4, id->path_hash);
    fr_put_u32le(out + 12, id->head_len);
    fr_put_u64le(out + 16, id->head_hash);
    fr_put_u32le(out + 24, id->tail_len);
    fr_put_u64le(out + 28, id->tail_hash);
}

int fr_fileid_decode(const void *bytes, long len, fr_fileid *id)
{
    const unsigned char *b = bytes;
    if (!b || len != FR_FILEID_LEN || memcmp(b, MAGIC, 4) != 0) return -1;
    fr_fileid d = {.path_hash = fr_get_u64le(b + 4),
                   .head_len = fr_get_u32le(b + 12),
                   .head_hash = fr_get_u64le(b + 16),
                   .tail_len = fr_get_u32le(b + 24),
                   .tail_hash = fr_get_u64le(b + 28)};
    if (d.head_len > FR_FILEID_BLOCK || d.tail_len > FR_FILEID_BLOCK) return -1;
    *id = d;
    return 0;
}

int fr_fileid_check_resume(FILE *in, const char *path, fr_fileid *now, const void *stored, long stored_len,
                           int64_t offset, char *err, size_t errlen)
{
    fr_fileid was;
    if (stored_len < 0) {
        snprintf(err, errlen,
                 "the state holds an offset (byte %" PRId64 ") for %s but no identity of the file it read (written "
                 "by an older freshet, or damaged): it cannot tell whether this is that file%s",
                 offset, path, AND_THEN);
        return -1;
    }
    if (fr_fileid_decode(stored, stored_len, &was) != 0 || was.path_hash != now->path_hash ||
        (offset > 0 && was.tail_len == 0) || (int64_t)was.tail_len > offset) {
        snprintf(err, errlen,
                 "checkpoint: the identity stored for %s (%ld bytes) is damaged or belongs to another file: refusing "
                 "to resume at byte %" PRId64 " without knowing what was read%s",
                 path, stored_len, offset, AND_THEN);
        return -1;
    }
    /* a plain file's size tells a truncation at once; a compressed one shows it when its content ends
     * before the offset (the line before it cannot be read) */
    struct stat st;
    int fd = fileno(in);
    if (fd >= 0 && fstat(fd, &st) == 0 && (int64_t)st.st_size < offset) {
        snprintf(err, errlen,
                 "%s is %" PRId64 " bytes, shorter than the %" PRId64 " bytes already replayed from it: truncated or "
                 "replaced since%s",
                 path, (int64_t)st.st_size, offset, AND_THEN);
        return -1;
    }
    uint64_t h;
    unsigned char last = 0;
    if (hash_range(in, 0, was.head_len, &h, NULL) != 0 || h != was.head_hash) {
        snprintf(err, errlen, "%s changed since it was replayed: its first %" PRIu32 " bytes differ (rewritten or "
                              "replaced)%s",
                 path, was.head_len, AND_THEN);
        return -1;
    }
    if (hash_range(in, offset - (int64_t)was.tail_len, was.tail_len, &h, &last) != 0 || h != was.tail_hash) {
        snprintf(err, errlen,
                 "%s changed since it was replayed: the line before byte %" PRId64 ", where the replay stopped, "
                 "differs (rewritten or replaced)%s",
                 path, offset, AND_THEN);
        return -1;
    }
    unsigned char after;
    if (last != '\n' && read_at(in, offset, 1, &after) == 1) {
        snprintf(err, errlen,
                 "%s has grown since it was replayed, but the last line read then had no newline: it may have been "
                 "completed since, and resuming at byte %" PRId64 " would cut it in two%s",
                 path, offset, AND_THEN);
        return -1;
    }
    now->tail_len = was.tail_len;
    now->tail_hash = was.tail_hash;
    return 0;
}
