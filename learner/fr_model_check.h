/* fr_model_check: the model's loss by an independent double-precision reference pass, and its
 * analytic gradient by the training path, for gradient checks. In the fr_learner_check library,
 * which only the tests link: nothing here ships in the daemon or the serving library. */
#ifndef FR_MODEL_CHECK_H
#define FR_MODEL_CHECK_H

#include <stdint.h>

#include "fr_model.h"

/* Total weighted loss (a sum over samples, as trained) of n samples under the current parameters,
 * by a separate double-precision forward pass that reads rows without creating them (unseen =
 * zeros). Probabilities are clipped to [1e-7, 1 - 1e-7]. NAN when memory runs out. */
double fr_model_loss(const fr_model *m, const fr_sample *s, int n);
/* fr_model_loss counts CausalInt's adversarial term with + (the classifier's objective).
 * fr_model_loss_teacher: the same with the distillation teacher held fixed: teacher[2i + t] is
 * sample i's fused probability of task t (CTR, CVR); with fill = 1 it is computed at the current
 * parameters and written, with fill = 0 it is read (differencing the fill = 0 loss checks the
 * stop-gradient); and with the adversarial term's sign adv_sign: +1 for the classifier's
 * parameters, -1 for everything else (what gradient reversal means). */
double fr_model_loss_teacher(const fr_model *m, const fr_sample *s, int n, double *teacher, int fill, int adv_sign);
/* Analytic gradient of the same loss, at the same point (unseen rows = zeros, none created), by
 * the training code path. n <= batch_size. dense_grad receives fr_model_dense_count floats (may
 * be NULL); fn (may be NULL) is called once per distinct (table, key) the samples touch, in order
 * of first touch, with emb_dim floats of gradient. Changes no parameter. Returns 0, or -1. */
typedef void (*fr_row_grad_fn)(uint32_t table, uint64_t key, const float *grad, void *ctx);
int fr_model_gradients(fr_model *m, const fr_sample *s, int n, float *dense_grad, fr_row_grad_fn fn, void *ctx);

#endif
