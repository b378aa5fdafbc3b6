/* fr_sample: the learner's input types, shared by decode, join and learn.
 *
 * Owns nothing: plain fixed-size value types, safe to memcpy (the joiner stores them as bytes
 * in RocksDB). Categorical values arrive already hashed (see fr_hash.h), so the learner never
 * sees strings and the stored state has a fixed size. */
#ifndef FR_SAMPLE_H
#define FR_SAMPLE_H

#include <stdint.h>

enum {
    FR_MAX_CAT = 16,        /* categorical fields per impression (the scenario is one of them) */
    FR_MAX_NUM = 8,         /* numeric fields */
    FR_MAX_MULTI = 2,       /* multi-valued fields (recent items, ...) */
    FR_MAX_MULTI_LEN = 8,   /* values kept per multi-valued field, most recent first */
};

/* The three heads. CTCVR = CTR x CVR over impressions (ESMM). */
typedef enum { FR_TASK_CTR = 0, FR_TASK_CVR = 1, FR_TASK_CTCVR = 2, FR_NTASKS = 3 } fr_task;

/* Features of one impression in the order the configuration declares the fields.
 * A missing categorical field carries the hash of the field's "missing" value, never 0;
 * key 0 is reserved for "no value" in multi-valued slots beyond multi_len. */
typedef struct {
    uint64_t cat[FR_MAX_CAT];
    float num[FR_MAX_NUM];
    uint64_t multi[FR_MAX_MULTI][FR_MAX_MULTI_LEN];
    uint8_t multi_len[FR_MAX_MULTI];
} fr_features;

/* Why the joiner emitted a sample. The values are persisted (join meta, checkpointed batches).
 * Kinds 2..6 are the delayed-feedback copies of a click (docs/delayed-feedback.md): their CVR and
 * CTCVR labels are what the join knew at the sample's ts, not the final label, so progressive
 * metrics never count them; the trainer turns (kind, label) into loss weights (learner/fr_dfm.h). */
typedef enum {
    FR_SAMPLE_CLICK_WINDOW = 0,  /* click window closed: CTR label final (and CTCVR=0 if not clicked) */
    FR_SAMPLE_ATTRIBUTION = 1,   /* attribution window closed on a clicked impression: CVR label final (wait) */
    FR_SAMPLE_FAKE_NEG = 2,      /* fnw/fnc: at click time, label 0 */
    FR_SAMPLE_WINDOW = 3,        /* observation window w_o closed: observed label (1 = in-window positive) */
    FR_SAMPLE_DELAYED_POS = 4,   /* a conversion after an earlier negative copy: label 1 */
    FR_SAMPLE_REAL_NEG = 5,      /* defer: no conversion by the real-negative window: label 0 */
    FR_SAMPLE_ORACLE = 6,        /* oracle (replay only): at click time, the eventual label */
    FR_SAMPLE_MATURED = 7,       /* non-wait policies, attribution window closed: final labels, for the
                                  * progressive metrics and the helper heads; never trains the model */
    FR_SAMPLE_NKINDS
} fr_sample_kind;

/* One training example. For each task, has_label says the label is defined for this sample
 * (progressive metrics count it) and weight is its loss weight (0 = this sample does not train
 * the task). Importance weights (1/sample_rate, delayed-feedback corrections) go into weight. */
typedef struct {
    fr_features f;
    int32_t scenario;           /* index into the configured scenario list */
    int32_t kind;               /* fr_sample_kind */
    int64_t ts;                 /* event time at which the sample was emitted */
    float label[FR_NTASKS];
    float weight[FR_NTASKS];
    uint8_t has_label[FR_NTASKS];
    /* Predictions recorded when the impression's first sample was emitted, carried by the joiner
     * to its later samples: a clicked impression's CTCVR label is only known days later, after its
     * click has trained the model, so an honest progressive score must come from before that. */
    uint8_t has_prior;
    float prior[FR_NTASKS];
    /* FR_SAMPLE_MATURED and FR_SAMPLE_DELAYED_POS only: 1 when the conversion came within the
     * observation window of its click (an in-window positive), else 0. The helper heads' labels
     * follow from it and label[CVR]; the label-collapse guard counts in-window conversions. */
    uint8_t in_window;
} fr_sample;

#endif
