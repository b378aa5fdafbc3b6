/* fr_ckpt_history: the progressive metrics over event time (learner/fr_history.h) in a checkpoint.
 *
 * Keys (docs/checkpoint-format.md): the blob "history", the history's state (the open bucket), and
 * one blob "history.SEQ" per closed bucket kept (SEQ: 20 decimal digits, so names sort by seq),
 * written once, by the checkpoint after the bucket closed, and deleted by the one that drops it
 * from the retained range. Every stored byte is untrusted: a refusal names the blob. */
#ifndef FR_CKPT_HISTORY_H
#define FR_CKPT_HISTORY_H

#include "fr_ckpt.h"
#include "fr_history.h"

/* The records closed since the last commit, the deletions retention asks for, and the state, into
 * b. 0, or -1 (the batch holds the reason). After the commit the caller calls fr_history_committed. */
int fr_ckpt_put_history(fr_ckpt_batch *b, const fr_history *h);
/* The state blob into h: 1 when restored, 0 when the checkpoint has none (written before the
 * history existed; h is left as it is), -1 with the refusal in err. */
int fr_ckpt_load_history(fr_ckpt *c, fr_history *h, char *err, size_t errlen);
/* fn gets every stored record in seq order, each decoded and checked (its name says its seq).
 * Stops on, and returns, fn's value when it is above 0; -1 with err naming the blob when a record
 * is refused or the read fails. */
int fr_ckpt_foreach_history(fr_ckpt *c, int (*fn)(const fr_history_record *r, void *ctx), void *ctx, char *err,
                            size_t errlen);

#endif
