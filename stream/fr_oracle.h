/* fr_oracle: the oracle join policy's lookahead -- every impression's first conversion in a JSON
 * Lines file, read ahead of the replay (the future, as far as the join is concerned). Used by
 * `freshet replay` with join.policy "oracle", as an upper bound for the delayed-feedback policies.
 *
 * Ownership: fr_oracle_scan returns a table the caller frees with fr_oracle_free, after the join
 * that looks things up in it. Lookups only read the table, so several threads may share it. */
#ifndef FR_ORACLE_H
#define FR_ORACLE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "fr_schema.h"

typedef struct fr_oracle fr_oracle;

/* Decodes the lines of in (from its start; name is for messages) with schema s and keeps the
 * conversions; lines the decoder rejects are skipped. The caller opens and closes in (plain or
 * decompressing, daemon/fr_input.h). Deterministic, so a resumed replay builds the same table. NULL
 * with a message when the input cannot be read or memory runs out. */
fr_oracle *fr_oracle_scan(const fr_schema *s, FILE *in, const char *name, char *err, size_t errlen);
void fr_oracle_free(fr_oracle *o);
/* Conversions in the table (duplicates included). */
size_t fr_oracle_count(const fr_oracle *o);
/* An fr_join_oracle_fn (ctx = the fr_oracle): 1 and the first conversion's ts in file order for
 * the impression id, 0 when the file holds no conversion for it. */
int fr_oracle_lookup(void *ctx, const char *id, size_t id_len, int64_t *conv_ts);

#endif
