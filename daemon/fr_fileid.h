/* fr_fileid: which file a replay read, so that a resume continues that file and nothing else.
 *
 * `freshet replay FILE` names its source after the file's real path ("file:" base name "@" 16 hex
 * digits of the path's XXH3-64), so day1/events.jsonl and day2/events.jsonl are two sources of one
 * state, each read from its start. The offset stored for a source is tied to the file's content by
 * an identity, stored with it in every checkpoint (fr_pipeline_set_source_identity): a hash of the
 * first block of the file and a hash of the bytes just before the offset (the end of the last line
 * handed over). A resume continues the file only when both still match and the file is at least as
 * long: a log that grew. A file that is shorter, or whose start or resume point changed (truncated,
 * rewritten, replaced), is refused with what changed; it is never cut at an offset that belongs to
 * other content. Stored identities are untrusted input: decoded with bounds, refused by name.
 *
 * Identity bytes (FR_FILEID_LEN, little-endian): "FRF1", path hash u64, head length u32 (<=
 * FR_FILEID_BLOCK), XXH3-64 of the first head-length bytes u64, tail length u32 (<= FR_FILEID_BLOCK),
 * XXH3-64 of the tail-length bytes before the offset u64.
 *
 * No allocation; no I/O but reads of the file passed in. */
#ifndef FR_FILEID_H
#define FR_FILEID_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum { FR_FILEID_BLOCK = 4096, FR_FILEID_LEN = 36 };

typedef struct {
    uint64_t path_hash;
    uint32_t head_len;  /* bytes hashed from the start of the file */
    uint64_t head_hash;
    uint32_t tail_len;  /* bytes hashed before the offset (0: nothing read yet) */
    uint64_t tail_hash;
} fr_fileid;

/* The source name of the file at path and the start of its identity (head from the file's first
 * block, no tail), read through in. -1 with a message when path has no real path or is not a
 * regular file (a pipe cannot be identified, nor resumed). */
int fr_fileid_of(FILE *in, const char *path, char *name, size_t name_cap, fr_fileid *id, char *err, size_t errlen);
/* The name an older build gave the file ("file:" base name), to recognise its offsets. */
void fr_fileid_legacy_name(const char *path, char *name, size_t name_cap);

/* Records the line just handed over (its bytes up to and including the newline, len > 0): the tail
 * now ends where the source's next offset is. */
void fr_fileid_read(fr_fileid *id, const char *line, size_t len);

void fr_fileid_encode(const fr_fileid *id, unsigned char out[FR_FILEID_LEN]);
/* 0, or -1 when the bytes are not an identity (wrong length, magic, or lengths out of bounds). */
int fr_fileid_decode(const void *bytes, long len, fr_fileid *id);

/* May the file read through in, identified as now, resume at offset, given the identity stored
 * with that offset (bytes, len as the checkpoint had them; len < 0: none stored)? 0 and *now takes
 * the stored tail (the file is the same; a head that was shorter than a block is re-read from the
 * longer file); -1 with a message naming what differs. path is for the message. */
int fr_fileid_check_resume(FILE *in, const char *path, fr_fileid *now, const void *stored, long stored_len,
                           int64_t offset, char *err, size_t errlen);

#endif
