/* fr_model_config: the model configuration's defaults, its validation and its one-line description. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "fr_model_int.h"

void fr_model_config_defaults(fr_model_config *c)
{
    memset(c, 0, sizeof *c);
    c->n_cat = 8;
    c->n_num = 1;
    c->n_multi = 1;
    c->n_scenarios = 4;
    c->emb_dim = 8;
    c->n_experts = 4;
    c->expert_dim = 32;
    c->tower_dim = 16;
    c->batch_size = 256;
    c->lr_emb = 0.3f;
    c->lr_dense = 0.05f;
    c->adagrad_init = 0.1f;
    c->init_scale = 0.1f;
    c->seed = 1;
    c->interactions = 3;
    c->wide = 1;
    c->n_levels = 1;
    c->n_learners = 1;
    c->adam_beta1 = 0.9f;
    c->adam_beta2 = 0.999f;
    c->adam_eps = 1e-8f;
    c->ftrl_alpha = 0.3f;
    c->ftrl_beta = 0.5f;
}

static int check_int(const char *key, int v, int lo, int hi, char *err, size_t errlen)
{
    if (v >= lo && v <= hi) return 0;
    snprintf(err, errlen, "%s must be in [%d, %d] (got %d)", key, lo, hi, v);
    return -1;
}

static int check_pos(const char *key, float v, int allow_zero, char *err, size_t errlen)
{
    if (isfinite(v) && (v > 0 || (allow_zero && v == 0))) return 0;
    snprintf(err, errlen, "%s must be a finite number %s 0 (got %g)", key, allow_zero ? ">=" : ">", (double)v);
    return -1;
}

int fr_model_config_validate(const fr_model_config *c, char *err, size_t errlen)
{
    if (check_int("model.n_cat", c->n_cat, 1, FR_MAX_CAT, err, errlen) ||
        check_int("model.n_num", c->n_num, 0, FR_MAX_NUM, err, errlen) ||
        check_int("model.n_multi", c->n_multi, 0, FR_MAX_MULTI, err, errlen) ||
        check_int("model.n_scenarios", c->n_scenarios, 1, 1 << 20, err, errlen) ||
        check_int("model.emb_dim", c->emb_dim, 1, MAX_EMB_DIM, err, errlen) ||
        check_int("model.n_experts", c->n_experts, 0, MAX_EXPERTS, err, errlen) ||
        check_int("model.n_task_experts", c->n_task_experts, 0, MAX_EXPERTS, err, errlen) ||
        check_int("model.n_learner_experts", c->n_learner_experts, 0, MAX_EXPERTS, err, errlen) ||
        check_int("model.n_scenario_experts", c->n_scenario_experts, 0, MAX_EXPERTS, err, errlen) ||
        check_int("model.n_levels", c->n_levels, 1, MAX_LEVELS, err, errlen) ||
        check_int("model.n_learners", c->n_learners, 1, MAX_LEARNERS, err, errlen) ||
        check_int("model.scenario_dim", c->scenario_dim, 0, MAX_SCEN_DIM, err, errlen) ||
        check_int("model.dffi_layers", c->dffi_layers, 0, MAX_DFFI_LAYERS, err, errlen) ||
        check_int("model.dfub_heads", c->dfub_heads, 0, MAX_DFUB_HEADS, err, errlen) ||
        check_int("model.dense_optimizer", c->dense_optimizer, 0, 1, err, errlen) ||
        check_int("model.emb_optimizer", c->emb_optimizer, 0, 1, err, errlen) ||
        check_int("model.expert_dim", c->expert_dim, 1, MAX_HIDDEN, err, errlen) ||
        check_int("model.tower_dim", c->tower_dim, 1, MAX_HIDDEN, err, errlen) ||
        check_int("model.batch_size", c->batch_size, 1, MAX_BATCH, err, errlen) ||
        check_pos("model.lr_emb", c->lr_emb, 0, err, errlen) ||
        check_pos("model.lr_dense", c->lr_dense, 0, err, errlen) ||
        check_pos("model.adagrad_init", c->adagrad_init, 0, err, errlen) ||
        check_pos("model.init_scale", c->init_scale, 1, err, errlen) ||
        check_pos("model.distill", c->distill, 1, err, errlen) ||
        check_pos("model.learner_loss", c->learner_loss, 1, err, errlen) ||
        check_pos("model.causal_adv", c->causal_adv, 1, err, errlen) ||
        check_pos("model.causal_orth", c->causal_orth, 1, err, errlen) ||
        check_int("model.interactions", c->interactions, 0, 3, err, errlen) ||
        check_int("model.wide", c->wide, 0, 1, err, errlen))
        return -1;
    if ((int64_t)c->n_scenario_experts * c->n_scenarios > MAX_SCEN_EXPERTS) {
        snprintf(err, errlen,
                 "model.n_scenario_experts: %d experts for each of %d scenarios exceed the limit of %d in all",
                 c->n_scenario_experts, c->n_scenarios, MAX_SCEN_EXPERTS);
        return -1;
    }
    if (c->n_experts + c->n_task_experts + c->n_learner_experts + c->n_scenario_experts < 1) {
        snprintf(err, errlen, "model.n_experts: every learner's gate needs at least one expert (n_experts + "
                              "n_task_experts + n_learner_experts + n_scenario_experts is 0)");
        return -1;
    }
    if (c->n_levels > 1 && c->n_experts + c->n_task_experts + c->n_scenario_experts < 1) {
        snprintf(err, errlen, "model.n_levels: %d levels need shared, task or scenario experts below the last level "
                              "(learner experts exist only at the last one)", c->n_levels);
        return -1;
    }
    if (c->dense_optimizer == 1 &&
        (!(c->adam_beta1 >= 0 && c->adam_beta1 < 1) || !(c->adam_beta2 >= 0 && c->adam_beta2 < 1) ||
         !(c->adam_eps > 0 && isfinite(c->adam_eps)))) {
        snprintf(err, errlen, "model.%s: Adam needs beta1 and beta2 in [0, 1) and eps > 0 (got %g, %g, %g)",
                 !(c->adam_beta1 >= 0 && c->adam_beta1 < 1) ? "adam_beta1"
                 : !(c->adam_beta2 >= 0 && c->adam_beta2 < 1) ? "adam_beta2"
                                                             : "adam_eps",
                 (double)c->adam_beta1, (double)c->adam_beta2, (double)c->adam_eps);
        return -1;
    }
    /* beta > 0: with beta = 0 a fresh coordinate (n = 0) would divide by l2, possibly 0 */
    if (c->emb_optimizer == 1 &&
        (check_pos("model.ftrl_alpha", c->ftrl_alpha, 0, err, errlen) ||
         check_pos("model.ftrl_beta", c->ftrl_beta, 0, err, errlen) ||
         check_pos("model.ftrl_l1", c->ftrl_l1, 1, err, errlen) ||
         check_pos("model.ftrl_l2", c->ftrl_l2, 1, err, errlen)))
        return -1;
    if (c->dfub_heads > 0) {
        if (c->emb_dim > MAX_DFUB_DIM) {
            snprintf(err, errlen, "model.dfub_heads: DFUB supports emb_dim up to %d (got %d)", MAX_DFUB_DIM, c->emb_dim);
            return -1;
        }
        if (c->emb_dim % c->dfub_heads) {
            snprintf(err, errlen, "model.dfub_heads: %d heads do not divide emb_dim %d", c->dfub_heads, c->emb_dim);
            return -1;
        }
        if (c->dfub_target < 1 || c->dfub_target >= c->n_cat) {
            snprintf(err, errlen, "model.dfub_target: categorical slot %d is not a feature field (1..%d)", c->dfub_target,
                     c->n_cat - 1);
            return -1;
        }
        if (c->dfub_history < 0 || c->dfub_history >= c->n_multi) {
            snprintf(err, errlen, "model.dfub_history: multi-valued field %d does not exist (the model has %d)",
                     c->dfub_history, c->n_multi);
            return -1;
        }
    }
    if (c->dffi_layers > 0 && c->interactions == 0) {
        snprintf(err, errlen, "model.dffi_layers: DFFI computes the pairwise interactions, but model.interactions is 0");
        return -1;
    }
    if (c->dffi_layers > 0 && c->scenario_dim < c->dffi_layers * c->emb_dim * (c->emb_dim + 1)) {
        snprintf(err, errlen,
                 "model.scenario_dim: %d floats are too narrow for the DFFI network (model.dffi_layers = %d with "
                 "emb_dim %d needs %d = dffi_layers x emb_dim x (emb_dim + 1))",
                 c->scenario_dim, c->dffi_layers, c->emb_dim, c->dffi_layers * c->emb_dim * (c->emb_dim + 1));
        return -1;
    }
    if ((c->causal_adv > 0 || c->causal_orth > 0) && c->n_experts < 1) {
        snprintf(err, errlen, "model.%s: CausalInt's invariant extractor is the shared experts, but model.n_experts is 0",
                 c->causal_adv > 0 ? "causal_adv" : "causal_orth");
        return -1;
    }
    if (c->causal_adv > 0 && (c->n_scenarios < 2 || c->n_scenarios > MAX_SCEN_CLASSES)) {
        snprintf(err, errlen, "model.causal_adv: the scenario classifier needs 2..%d scenarios (got %d)",
                 MAX_SCEN_CLASSES, c->n_scenarios);
        return -1;
    }
    if (c->causal_orth > 0 && c->n_scenario_experts < 1) {
        snprintf(err, errlen, "model.causal_orth: the orthogonality term needs scenario experts (model.n_scenario_experts "
                              "is 0)");
        return -1;
    }
    if (c->learner_loss > 0 && c->n_learners < 2) {
        snprintf(err, errlen, "model.learner_loss: per-learner losses need model.n_learners >= 2 (got %d)",
                 c->n_learners);
        return -1;
    }
    if (c->distill > 0 && c->n_learners < 2) {
        snprintf(err, errlen, "model.distill: self-distillation needs model.n_learners >= 2 (got %d)", c->n_learners);
        return -1;
    }
    return 0;
}

int fr_model_describe(const fr_model_config *c, char *buf, size_t len)
{
    char emb[96];
    if (c->emb_optimizer == 1)
        snprintf(emb, sizeof emb, "ftrl alpha %g beta %g l1 %g l2 %g", (double)c->ftrl_alpha, (double)c->ftrl_beta,
                 (double)c->ftrl_l1, (double)c->ftrl_l2);
    else
        snprintf(emb, sizeof emb, "adagrad lr %g", (double)c->lr_emb);
    return snprintf(buf, len,
                    "levels=%d experts: shared=%d per_task=%d per_scenario=%d per_learner=%d; learners=%d "
                    "emb_dim=%d expert_dim=%d tower_dim=%d scenario_dim=%d interactions=%d wide=%d dffi_layers=%d "
                    "dfub_heads=%d distill=%g learner_loss=%g causal_adv=%g causal_orth=%g; optimizers: emb=%s, "
                    "dense=%s lr %g; batch=%d",
                    c->n_levels, c->n_experts, c->n_task_experts, c->n_scenario_experts, c->n_learner_experts,
                    c->n_learners, c->emb_dim, c->expert_dim, c->tower_dim, c->scenario_dim, c->interactions, c->wide,
                    c->dffi_layers, c->dfub_heads, (double)c->distill, (double)c->learner_loss, (double)c->causal_adv,
                    (double)c->causal_orth, emb, c->dense_optimizer == 1 ? "adam" : "adagrad", (double)c->lr_dense,
                    c->batch_size);
}
