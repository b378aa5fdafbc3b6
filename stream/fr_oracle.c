/* fr_oracle: see fr_oracle.h. */
#include "fr_oracle.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "fr_event.h"

typedef struct {
    char id[FR_ID_MAX + 1];
    int64_t ts;
    uint64_t order;
} oracle_conv;

struct fr_oracle {
    oracle_conv *v; /* sorted by (id, file order) */
    size_t n;
};

static int oracle_cmp(const void *a, const void *b)
{
    const oracle_conv *x = a, *y = b;
    int c = strcmp(x->id, y->id);
    if (c) return c;
    return (x->order > y->order) - (x->order < y->order);
}

int fr_oracle_lookup(void *ctx, const char *id, size_t id_len, int64_t *conv_ts)
{
    const fr_oracle *t = ctx;
    oracle_conv key;
    if (id_len > FR_ID_MAX) return 0;
    memcpy(key.id, id, id_len);
    key.id[id_len] = '\0';
    size_t lo = 0, hi = t->n; /* first entry with this id = its first conversion in file order */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(t->v[mid].id, key.id) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == t->n || strcmp(t->v[lo].id, key.id) != 0) return 0;
    *conv_ts = t->v[lo].ts;
    return 1;
}

fr_oracle *fr_oracle_scan(const fr_schema *s, FILE *in, const char *path, char *err, size_t errlen)
{
    fr_oracle *t = calloc(1, sizeof *t);
    if (!t) {
        snprintf(err, errlen, "out of memory for the oracle's lookahead");
        return NULL;
    }
    char *line = NULL, why[320];
    size_t cap = 0, vcap = 0;
    ssize_t n;
    uint64_t order = 0;
    fr_event ev;
    int oom = 0;
    while ((n = getline(&line, &cap, in)) > 0) {
        size_t len = (size_t)n;
        if (line[len - 1] == '\n') len--;
        if (len == 0 || fr_event_decode(s, line, len, &ev, why, sizeof why) != FR_REJECT_NONE) continue;
        if (ev.type != FR_EV_CONVERSION) continue;
        if (t->n == vcap) {
            vcap = vcap ? 2 * vcap : 4096;
            oracle_conv *nv = realloc(t->v, vcap * sizeof *nv);
            if (!nv) {
                oom = 1;
                break;
            }
            t->v = nv;
        }
        oracle_conv *o = &t->v[t->n++];
        memcpy(o->id, ev.id, ev.id_len);
        o->id[ev.id_len] = '\0';
        o->ts = ev.ts;
        o->order = order++;
    }
    free(line);
    if (!oom && ferror(in)) {
        snprintf(err, errlen, "cannot read %s for the oracle's lookahead: %s", path, strerror(errno));
        fr_oracle_free(t);
        return NULL;
    }
    if (oom) {
        /* a truncated table would silently turn conversions into negatives */
        snprintf(err, errlen, "out of memory for the oracle's lookahead after %zu conversions of %s", t->n, path);
        fr_oracle_free(t);
        return NULL;
    }
    if (t->n) qsort(t->v, t->n, sizeof *t->v, oracle_cmp);
    return t;
}

void fr_oracle_free(fr_oracle *o)
{
    if (!o) return;
    free(o->v);
    free(o);
}

size_t fr_oracle_count(const fr_oracle *o) { return o->n; }
