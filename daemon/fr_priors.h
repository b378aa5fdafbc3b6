/* fr_priors: the learner's prior per pending impression, owned by the pipeline.
 *
 * When an impression's first clicked sample is learnt, the pipeline records what the model
 * predicted before anything of that click trained it; the impression's later CVR and CTCVR labels
 * (days later) are scored with it (fr_sample.prior). The join used to keep it in its entry, written
 * back from the learner; it lives here, keyed by impression id, so the join never hears from the
 * learner and could run elsewhere. An id is forgotten at the impression's last sample.
 *
 * Persistence: changes since the last fr_priors_clear_dirty go into the checkpoint's write batch
 * (keys "P" + id, docs/checkpoint-format.md) through fr_priors_foreach_dirty; a restore loads each
 * stored record with fr_priors_load. A record is u8 version (1), f32 prior[FR_NTASKS] little-endian.
 * Stored bytes are untrusted: fr_priors_decode refuses a record of another size or version, or a
 * prior that is not in [0, 1], naming the reason.
 * Ownership: fr_priors_create allocates; fr_priors_free releases every entry. Not thread-safe. */
#ifndef FR_PRIORS_H
#define FR_PRIORS_H

#include <stddef.h>

#include "fr_sample.h"

enum { FR_PRIOR_RECORD_BYTES = 1 + 4 * FR_NTASKS };

typedef struct fr_priors fr_priors;

fr_priors *fr_priors_create(void);
void fr_priors_free(fr_priors *m);
/* 0, or -1 when out of memory (nothing changed). */
int fr_priors_set(fr_priors *m, const char *id, size_t id_len, const float prior[FR_NTASKS]);
/* 1 with the prior in out, 0 when id has none. */
int fr_priors_get(const fr_priors *m, const char *id, size_t id_len, float out[FR_NTASKS]);
void fr_priors_delete(fr_priors *m, const char *id, size_t id_len);
size_t fr_priors_count(const fr_priors *m);

/* fn gets each id changed since the last clear: its record (len FR_PRIOR_RECORD_BYTES), or len 0
 * when it was deleted. Stops at fn's first non-zero return, which it returns. */
typedef int (*fr_priors_fn)(const char *id, size_t id_len, const void *bytes, size_t len, void *ctx);
int fr_priors_foreach_dirty(const fr_priors *m, fr_priors_fn fn, void *ctx);
void fr_priors_clear_dirty(fr_priors *m);

/* A stored record: 0 with the prior in out, or -1 with the reason in why. Pure. */
int fr_priors_decode(const void *bytes, size_t len, float out[FR_NTASKS], char *why, size_t whylen);
/* Restores one stored record (not dirty): 0, or -1 with the reason (naming the id) in why. */
int fr_priors_load(fr_priors *m, const char *id, size_t id_len, const void *bytes, size_t len, char *why,
                   size_t whylen);

#endif
