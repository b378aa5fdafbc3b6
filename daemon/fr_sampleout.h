/* fr_sampleout: the samples record of `freshet replay --samples-out FILE` (docs/samples-record.md),
 * every sample the learner trains or scores, in the order it does, with the score Freshet's
 * progressive metrics gave it. bench/peers replays it through other learners so that they see
 * each label exactly when Freshet's join released it and are judged on the same samples.
 *
 * Layout (little-endian, no padding): "FRESHET-SAMPLES\n", then u32 version (1), n_cat, n_num,
 * n_multi, multi_len; then fixed-size records:
 *   op u8 (1 = trains in the batch of its step, 2 = scored only), flags u8 (1 = scored by the
 *   progressive metrics, 2 = the learner takes its prediction as the impression's prior, 4 = its
 *   CVR/CTCVR score is that prior), kind u8, scenario u32, step u64 (batches trained before it),
 *   key u64 (fr_hash of the impression id), ts i64, score f32 x 3 (what the metrics used; 0 when
 *   not scored), has_label u8 x 3, label f32 x 3, weight f32 x 3 (the loss weights it trained with),
 *   cat u64 x n_cat, num f32 x n_num, multi u64 x n_multi x multi_len, multi_len u8 x n_multi.
 * Ownership: fr_sampleout_open allocates; fr_sampleout_close flushes and frees. */
#ifndef FR_SAMPLEOUT_H
#define FR_SAMPLEOUT_H

#include <stddef.h>
#include <stdint.h>

#include "fr_sample.h"

enum { FR_SAMPLEOUT_TRAIN = 1, FR_SAMPLEOUT_SCORE = 2 };
enum { FR_SAMPLEOUT_SCORED = 1, FR_SAMPLEOUT_TAKES_PRIOR = 2, FR_SAMPLEOUT_USES_PRIOR = 4 };

typedef struct fr_sampleout fr_sampleout;

/* n_cat, n_num, n_multi: the feature slots in use (at most FR_MAX_CAT, FR_MAX_NUM, FR_MAX_MULTI).
 * NULL with the reason (naming path) in err. */
fr_sampleout *fr_sampleout_open(const char *path, int n_cat, int n_num, int n_multi, char *err, size_t errlen);
/* Appends one record. A write error is remembered and reported by fr_sampleout_close. */
void fr_sampleout_write(fr_sampleout *o, int op, int flags, uint64_t step, uint64_t key, const double score[FR_NTASKS],
                        const fr_sample *s);
/* Flushes, closes, frees (NULL is a no-op). 0, or -1 with the first write or close error in err. */
int fr_sampleout_close(fr_sampleout *o, char *err, size_t errlen);

#endif
