/* fr_policy: the delayed-feedback policies (join.policy, docs/delayed-feedback.md) in one table.
 *
 * A policy is three things that must agree: which copies of a click the joiner emits and when
 * (fr_join), which weights the trainer gives those copies and whether it trains the helper heads
 * f_dp and f_rn (learner/fr_dfm.h, whose pure math stays there), and what serving must do with the
 * model's output (the serve transform, recorded in the Redis manifest and applied by every
 * reader). Each row of the table says all three, so a new policy is one row, not a case in four
 * files.
 *
 * The table is static and read-only (thread-safe); nothing here allocates. */
#ifndef FR_POLICY_H
#define FR_POLICY_H

#include "fr_dfm.h"
#include "fr_sample.h"

/* The policy's id. Stored (the join's checkpoint meta holds it as one byte): never renumber.
 * 0 is wait, so a zero-initialised fr_join_config keeps working. */
typedef enum {
    FR_POLICY_WAIT = 0,
    FR_POLICY_VANILLA,
    FR_POLICY_FNW,
    FR_POLICY_FNC,
    FR_POLICY_ESDFM,
    FR_POLICY_DEFUSE,
    FR_POLICY_DEFER,
    FR_POLICY_ORACLE,
    FR_NPOLICIES
} fr_policy_id;

/* What serving returns from the model's outputs (pCTR, q = pCVR, pCTCVR). The names are part of
 * the Redis layout (manifest member "serve_transform", docs/redis-layout.md). */
typedef enum {
    FR_SERVE_IDENTITY = 0, /* the outputs as they are */
    FR_SERVE_ODDS = 1,     /* fnc: pCVR = q / (1 - q) clipped into [1e-6, 1 - 1e-6]; pCTCVR = pCTR x pCVR */
    FR_SERVE_NTRANSFORMS
} fr_serve_transform;

/* The copies of a counted click (at t_c) the joiner emits, besides the CLICK_WINDOW sample
 * every policy emits and the final-label sample at the attribution window. */
enum {
    FR_COPY_AT_CLICK = 1 << 0,   /* a first copy at t_c: a fake negative, or (oracle) the eventual label */
    FR_COPY_AT_WINDOW = 1 << 1,  /* a first copy at t_c + w_o with the label observed by then */
    FR_COPY_DELAYED_POS = 1 << 2, /* a positive at the conversion when the first copy was negative */
    FR_COPY_REAL_NEG = 1 << 3,   /* a negative at t_c + w_rn when not converted by then */
};

typedef struct {
    fr_policy_id id;
    const char *name;           /* the join.policy value */
    /* the joiner */
    unsigned copies;            /* FR_COPY_* */
    int oracle;                 /* the copy at the click carries the eventual label from the lookahead
                                 * (fr_join_config.oracle): `freshet replay` only */
    int final_trains;           /* 1: the sample at the attribution window trains (ATTRIBUTION);
                                 * 0: it only matures labels for metrics and helper heads (MATURED) */
    /* the trainer */
    fr_dfm_method dfm;          /* the copies' weights */
    int helper_heads;           /* trains and uses f_dp, f_rn (fr_dfm_heads) */
    /* serving */
    fr_serve_transform serve;
} fr_policy;

/* The row of a policy; NULL for an id out of range. */
const fr_policy *fr_policy_get(fr_policy_id id);
/* Name <-> id ("wait", "vanilla", ...): "unknown" for an id out of range, -1 for an unknown name. */
const char *fr_policy_name(fr_policy_id id);
int fr_policy_from_name(const char *name);

/* Name <-> transform ("identity", "odds"): "unknown" out of range, -1 for an unknown name. */
const char *fr_serve_transform_name(fr_serve_transform t);
int fr_serve_transform_from_name(const char *name);
/* What serving returns for the model's outputs in (pCTR, pCVR, pCTCVR), in double precision (the
 * trainer's progressive metrics read these; a reader rounds them to float). An unknown transform
 * serves the identity. */
void fr_serve_apply(fr_serve_transform t, const float in[FR_NTASKS], double out[FR_NTASKS]);

#endif
