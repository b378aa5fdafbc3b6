/* fr_policy: see fr_policy.h. The table below is the one place a policy is defined. */
#include "fr_policy.h"

#include <stddef.h>
#include <string.h>

/* The joiner's copies per policy, for a counted click at t_c converting at t_v:
 *   wait     none: ATTRIBUTION at max(t_c + W_a, imp.ts + click window), final label, trains
 *   vanilla  WINDOW at t_c + w_o, label 1{t_v <= t_c + w_o}
 *   fnw, fnc FAKE_NEG at t_c (label 0); DELAYED_POS at t_v
 *   esdfm, defuse  WINDOW at t_c + w_o; DELAYED_POS at max(t_v, t_c + w_o) if the WINDOW copy was 0
 *   defer    as esdfm, plus REAL_NEG at t_c + w_rn if not converted by then
 *   oracle   ORACLE at t_c with the eventual label, from the lookahead (replay only)
 * Every policy but wait emits MATURED (final labels, never trained) where wait emits ATTRIBUTION.
 * fnw and fnc, esdfm and defuse, emit the same samples and differ in weights or serving. */
#define ROW(ID, NAME, COPIES, ORACLE, FINAL_TRAINS, DFM, HEADS, SERVE)                                              \
    [ID] = {.id = ID, .name = NAME, .copies = COPIES, .oracle = ORACLE, .final_trains = FINAL_TRAINS, .dfm = DFM,        \
            .helper_heads = HEADS, .serve = SERVE}
static const fr_policy POLICIES[FR_NPOLICIES] = {
    /*  id                 name       copies of a click                     oracle trains dfm       heads serve */
    ROW(FR_POLICY_WAIT,    "wait",    0,                                         0, 1, FR_DFM_PLAIN,  0, FR_SERVE_IDENTITY),
    ROW(FR_POLICY_VANILLA, "vanilla", FR_COPY_AT_WINDOW,                         0, 0, FR_DFM_PLAIN,  0, FR_SERVE_IDENTITY),
    ROW(FR_POLICY_FNW,     "fnw",     FR_COPY_AT_CLICK | FR_COPY_DELAYED_POS,    0, 0, FR_DFM_FNW,    0, FR_SERVE_IDENTITY),
    /* trained plain on fake negatives, the model learns p / (1 + p): q / (1 - q) undoes it */
    ROW(FR_POLICY_FNC,     "fnc",     FR_COPY_AT_CLICK | FR_COPY_DELAYED_POS,    0, 0, FR_DFM_PLAIN,  0, FR_SERVE_ODDS),
    ROW(FR_POLICY_ESDFM,   "esdfm",   FR_COPY_AT_WINDOW | FR_COPY_DELAYED_POS,   0, 0, FR_DFM_ESDFM,  1, FR_SERVE_IDENTITY),
    ROW(FR_POLICY_DEFUSE,  "defuse",  FR_COPY_AT_WINDOW | FR_COPY_DELAYED_POS,   0, 0, FR_DFM_DEFUSE, 1, FR_SERVE_IDENTITY),
    ROW(FR_POLICY_DEFER,   "defer",   FR_COPY_AT_WINDOW | FR_COPY_DELAYED_POS | FR_COPY_REAL_NEG,
                                                                                 0, 0, FR_DFM_DEFER,  1, FR_SERVE_IDENTITY),
    ROW(FR_POLICY_ORACLE,  "oracle",  FR_COPY_AT_CLICK,                          1, 0, FR_DFM_PLAIN,  0, FR_SERVE_IDENTITY),
};
#undef ROW

const fr_policy *fr_policy_get(fr_policy_id id)
{
    return (unsigned)id < FR_NPOLICIES ? &POLICIES[id] : NULL;
}

const char *fr_policy_name(fr_policy_id id)
{
    const fr_policy *p = fr_policy_get(id);
    return p ? p->name : "unknown";
}

int fr_policy_from_name(const char *name)
{
    for (int i = 0; name && i < FR_NPOLICIES; i++)
        if (strcmp(name, POLICIES[i].name) == 0) return i;
    return -1;
}

static const char *const SERVE_NAMES[FR_SERVE_NTRANSFORMS] = {"identity", "odds"};

const char *fr_serve_transform_name(fr_serve_transform t)
{
    return (unsigned)t < FR_SERVE_NTRANSFORMS ? SERVE_NAMES[t] : "unknown";
}

int fr_serve_transform_from_name(const char *name)
{
    for (int i = 0; name && i < FR_SERVE_NTRANSFORMS; i++)
        if (strcmp(name, SERVE_NAMES[i]) == 0) return i;
    return -1;
}

void fr_serve_apply(fr_serve_transform t, const float in[FR_NTASKS], double out[FR_NTASKS])
{
    out[FR_TASK_CTR] = in[FR_TASK_CTR];
    out[FR_TASK_CVR] = in[FR_TASK_CVR];
    out[FR_TASK_CTCVR] = in[FR_TASK_CTCVR];
    if (t == FR_SERVE_ODDS) {
        out[FR_TASK_CVR] = fr_dfm_serve(1, in[FR_TASK_CVR]);
        out[FR_TASK_CTCVR] = in[FR_TASK_CTR] * out[FR_TASK_CVR];
    }
}
