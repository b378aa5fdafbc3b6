/* fr_model_config: the table of fr_model_config.def as descriptors, and what the model takes from it:
 * defaults, range checks (then the rules between keys), restart rules and the description. */
#include "fr_model_config.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "fr_model_int.h"

#define FR_MC_REQUIRED NAN

static const fr_model_field FIELDS[] = {
#define FR_MC_FIELD(n, k) .name = #n, .kind = k, .offset = offsetof(fr_model_config, n)
#define FR_MC_INT(n, d, l, h, fl, ab) {FR_MC_FIELD(n, FR_MC_K_INT), .def = d, .lo = l, .hi = h, .flags = fl, .absent = ab},
#define FR_MC_REAL(n, d, l, h, fl, ab) {FR_MC_FIELD(n, FR_MC_K_REAL), .def = d, .lo = l, .hi = h, .flags = fl, .absent = ab},
/* values 0 .. (number of names - 1) */
#define FR_MC_CHOICE(n, d, fl, ab, ...)                                                                        \
    {FR_MC_FIELD(n, FR_MC_K_CHOICE), .def = d, .lo = 0, .hi = sizeof((const char *[]){__VA_ARGS__}) / sizeof(char *) - 1, \
     .flags = fl, .absent = ab, .names = (const char *const[]){__VA_ARGS__, NULL}},
#define FR_MC_SLOT(n, fl, k, wh) {FR_MC_FIELD(n, FR_MC_K_SLOT), .flags = fl, .field_kind = k, .what = wh},
#define FR_MC_SEED(n, d) {FR_MC_FIELD(n, FR_MC_K_SEED), .def = d, .absent = FR_MC_REQUIRED},
#include "fr_model_config.def"
#undef FR_MC_FIELD
};
enum { N_FIELDS = sizeof FIELDS / sizeof FIELDS[0] };

int fr_model_field_count(void) { return N_FIELDS; }

const fr_model_field *fr_model_field_at(int i) { return i >= 0 && i < N_FIELDS ? &FIELDS[i] : NULL; }

double fr_model_field_get(const fr_model_config *c, const fr_model_field *f)
{
    const char *p = (const char *)c + f->offset;
    int i;
    float x;
    switch (f->kind) {
    case FR_MC_K_REAL: memcpy(&x, p, sizeof x); return x;
    case FR_MC_K_SEED: return (double)fr_model_field_get_u64(c, f);
    default: memcpy(&i, p, sizeof i); return i;
    }
}

void fr_model_field_set(fr_model_config *c, const fr_model_field *f, double v)
{
    char *p = (char *)c + f->offset;
    if (f->kind == FR_MC_K_REAL) {
        float x = (float)v;
        memcpy(p, &x, sizeof x);
    } else if (f->kind == FR_MC_K_SEED) {
        fr_model_field_set_u64(c, f, (uint64_t)v);
    } else {
        int i = (int)v;
        memcpy(p, &i, sizeof i);
    }
}

uint64_t fr_model_field_get_u64(const fr_model_config *c, const fr_model_field *f)
{
    uint64_t v;
    memcpy(&v, (const char *)c + f->offset, sizeof v);
    return v;
}

void fr_model_field_set_u64(fr_model_config *c, const fr_model_field *f, uint64_t v)
{
    memcpy((char *)c + f->offset, &v, sizeof v);
}

int fr_model_field_applies(const fr_model_field *f, const fr_model_config *c)
{
    if ((f->flags & FR_MC_WITH_ADAM) && c->dense_optimizer != 1) return 0;
    if ((f->flags & FR_MC_WITH_FTRL) && c->emb_optimizer != 1) return 0;
    if ((f->flags & FR_MC_WITH_DFUB) && c->dfub_heads <= 0) return 0;
    return 1;
}

int fr_model_field_choice(const fr_model_field *f, const char *name)
{
    for (int i = 0; f->names && f->names[i]; i++)
        if (strcmp(f->names[i], name) == 0) return i;
    return -1;
}

void fr_model_config_defaults(fr_model_config *c)
{
    memset(c, 0, sizeof *c);
    for (int i = 0; i < N_FIELDS; i++)
        if (FIELDS[i].kind != FR_MC_K_SLOT) fr_model_field_set(c, &FIELDS[i], FIELDS[i].def);
}

/* What a component is called in a message, for a key that matters only with it. */
static const char *component(unsigned flags)
{
    return flags & FR_MC_WITH_ADAM ? "Adam" : flags & FR_MC_WITH_FTRL ? "FTRL" : flags & FR_MC_WITH_DFUB ? "DFUB" : "";
}

/* The range of one key. A REAL's hi below FR_MC_REAL_MAX holds only where the key applies. */
static int check_field(const fr_model_field *f, const fr_model_config *c, char *err, size_t errlen)
{
    const double v = fr_model_field_get(c, f);
    if (f->kind == FR_MC_K_INT || f->kind == FR_MC_K_CHOICE) {
        if (v >= f->lo && v <= f->hi) return 0;
        snprintf(err, errlen, "model.%s must be in [%d, %d] (got %d)", f->name, (int)f->lo, (int)f->hi, (int)v);
        return -1;
    }
    if (f->kind != FR_MC_K_REAL) return 0; /* SLOT: the rules below; SEED: any value */
    const int lo_open = (f->flags & FR_MC_LO_OPEN) != 0, hi_open = (f->flags & FR_MC_HI_OPEN) != 0;
    if (!isfinite(v) || (lo_open ? v <= f->lo : v < f->lo) || v > FR_MC_REAL_MAX) {
        snprintf(err, errlen, "model.%s must be a finite number %s %g and <= %g (got %g)", f->name, lo_open ? ">" : ">=",
                 f->lo, FR_MC_REAL_MAX, v);
        return -1;
    }
    if (f->hi >= FR_MC_REAL_MAX || !fr_model_field_applies(f, c) || (hi_open ? v < f->hi : v <= f->hi)) return 0;
    const char *with = component(f->flags), *u = strchr(f->name, '_');
    char range[64];
    snprintf(range, sizeof range, "%c%g, %g%c", lo_open ? '(' : '[', f->lo, f->hi, hi_open ? ')' : ']');
    if (with[0] && u) /* "model.adam_beta1: Adam needs beta1 in [0, 1)" */
        snprintf(err, errlen, "model.%s: %s needs %s in %s (got %g)", f->name, with, u + 1, range, v);
    else
        snprintf(err, errlen, "model.%s must be in %s (got %g)", f->name, range, v);
    return -1;
}

int fr_model_config_validate(const fr_model_config *c, char *err, size_t errlen)
{
    for (int i = 0; i < N_FIELDS; i++)
        if (check_field(&FIELDS[i], c, err, errlen)) return -1;
    /* the rules between keys */
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
    int total = 0;
    for (int i = 0; i < N_FIELDS; i++) {
        const fr_model_field *f = &FIELDS[i];
        if (!(f->flags & FR_MC_DESCRIBE) || !fr_model_field_applies(f, c)) continue;
        const double v = fr_model_field_get(c, f);
        char val[32];
        if (f->kind == FR_MC_K_CHOICE && v >= f->lo && v <= f->hi)
            snprintf(val, sizeof val, "%s", f->names[(int)v]);
        else
            snprintf(val, sizeof val, "%g", v);
        size_t at = (size_t)total < len ? (size_t)total : len;
        int k = snprintf(buf + at, len - at, "%s%s=%s", total ? " " : "", f->name, val);
        if (k < 0) return k;
        total += k;
    }
    if (total == 0 && len) buf[0] = '\0';
    return total;
}

int fr_model_config_same_shape(const fr_model_config *trained, const fr_model_config *c, char *err, size_t errlen)
{
    for (int i = 0; i < N_FIELDS; i++) {
        const fr_model_field *f = &FIELDS[i];
        if (!(f->flags & FR_MC_SHAPE)) continue;
        const double a = fr_model_field_get(trained, f), b = fr_model_field_get(c, f);
        if (a == b) continue;
        snprintf(err, errlen,
                 "model.%s: the checkpoint was trained with %d, the configuration says %d; restore the old value or "
                 "start a new checkpoint.dir",
                 f->name, (int)a, (int)b);
        return -1;
    }
    return 0;
}

void fr_model_config_changes(const fr_model_config *from, const fr_model_config *to, char *out, size_t cap)
{
    size_t len = 0;
    if (cap) out[0] = '\0';
    for (int i = 0; i < N_FIELDS; i++) {
        const fr_model_field *f = &FIELDS[i];
        if (f->flags & FR_MC_SHAPE) continue;
        const double a = fr_model_field_get(from, f), b = fr_model_field_get(to, f);
        if (a == b && (f->kind != FR_MC_K_SEED || fr_model_field_get_u64(from, f) == fr_model_field_get_u64(to, f)))
            continue;
        char item[96];
        int k = snprintf(item, sizeof item, "%smodel.%s %g -> %g", len ? ", " : "", f->name, a, b);
        if (k <= 0 || len + (size_t)k >= cap) return; /* the log line is cut, the settings still apply */
        memcpy(out + len, item, (size_t)k + 1);
        len += (size_t)k;
    }
}
