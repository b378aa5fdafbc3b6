/* gen_lines.h: a generated event stream held in memory as lines, for tests that feed a pipeline
 * message by message. Header-only, included (after cmocka.h) by the tests that need one.
 * Ownership: gen_lines allocates; lines_free releases. */
#ifndef FR_TEST_GEN_LINES_H
#define FR_TEST_GEN_LINES_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fr_gen.h"

typedef struct {
    char *buf;    /* the whole stream; every line NUL-terminated in place */
    char **line;
    size_t *len;
    size_t n;
} lines;

/* The lines fr_gen_run writes for o, except those keep (may be NULL) returns 0 for. */
static lines gen_lines(const fr_gen_opts *o, int (*keep)(const char *line, void *ctx), void *ctx)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    assert_non_null(mem);
    char err[256];
    assert_int_equal(fr_gen_run(o, mem, NULL, err, sizeof err), 0);
    fclose(mem);
    lines L = {.buf = buf};
    size_t cap = 0;
    for (char *p = buf, *nl; p < buf + len; p = nl + 1) {
        /* memchr, not strchr: the buffer is one string, and ASan's strict_string_checks (CI) makes
         * every strchr scan to its end, which made this loop quadratic (minutes). */
        nl = memchr(p, '\n', (size_t)(buf + len - p));
        assert_non_null(nl);
        *nl = '\0';
        if (keep && !keep(p, ctx)) continue;
        if (L.n == cap) {
            cap = cap ? 2 * cap : 1024;
            L.line = realloc(L.line, cap * sizeof *L.line);
            L.len = realloc(L.len, cap * sizeof *L.len);
            assert_true(L.line && L.len);
        }
        L.line[L.n] = p;
        L.len[L.n++] = (size_t)(nl - p);
    }
    return L;
}

static void lines_free(lines *L)
{
    free(L->line);
    free(L->len);
    free(L->buf);
}

#endif
