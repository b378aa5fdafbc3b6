/* fr_input: opening an input file of events -- plain JSON Lines, or gzip- or zstd-compressed (found
 * by the file's magic bytes, not its name) -- as an ordinary FILE * of the uncompressed bytes.
 *
 * Offsets (ftello, fseeko) count uncompressed bytes, so replay's checkpointed offsets, its resume
 * and the file identity (fr_fileid) work on a compressed log exactly as on the plain one. Seeking a
 * compressed stream backwards restarts its decompression, and forwards decompresses up to the
 * target: a resume decompresses the part already replayed again (twice: once to check the file's
 * identity at the offset, once to get there). A corrupt or truncated compressed file is a read
 * error (ferror), never a silent end of input. The FILE is the caller's, closed with fclose. */
#ifndef FR_INPUT_H
#define FR_INPUT_H

#include <stddef.h>
#include <stdio.h>

typedef enum { FR_INPUT_PLAIN, FR_INPUT_GZIP, FR_INPUT_ZSTD } fr_input_kind;

/* NULL with a message (the path and the cause) when it cannot be opened. kind (may be NULL)
 * receives what the file is. */
FILE *fr_input_open(const char *path, fr_input_kind *kind, char *err, size_t errlen);
const char *fr_input_kind_name(fr_input_kind kind);

#endif
