/* count_rows.h: how many embedding rows a model holds with a dirty mark (which = 0: all rows).
 * Header-only, included (after cmocka.h) by the tests that need it. */
#ifndef FR_TEST_COUNT_ROWS_H
#define FR_TEST_COUNT_ROWS_H

#include <stddef.h>

#include "fr_model.h"

static int count_rows_cb(const fr_row_view *r, void *ctx)
{
    (void)r;
    (*(size_t *)ctx)++;
    return 0;
}

static size_t count_rows(const fr_model *m, int which)
{
    size_t n = 0;
    fr_model_foreach_row(m, which, count_rows_cb, &n);
    return n;
}

#endif
