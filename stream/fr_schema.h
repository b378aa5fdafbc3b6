/* fr_schema: the event contract's shape -- the scenarios, the feature fields and the slot each
 * field fills in fr_features. The decoder (fr_event), the manifest and serving read this and
 * nothing else of the daemon's configuration; fr_config embeds one.
 *
 * A plain value with fixed-size strings: it owns no heap memory, copy it freely. */
#ifndef FR_SCHEMA_H
#define FR_SCHEMA_H

#include <stddef.h>
#include <stdint.h>

#include "fr_sample.h"

enum { FR_MAX_SCENARIOS = 16, FR_NAME_MAX = 64 };

/* The scenario that allow_new_scenarios adds; events with an unconfigured scenario get its index. */
#define FR_OTHER_SCENARIO "other"

typedef enum { FR_FIELD_CATEGORICAL = 0, FR_FIELD_NUMERIC = 1, FR_FIELD_MULTI = 2 } fr_field_kind;
/* How a numeric field is scaled before it reaches the model. */
typedef enum { FR_NUM_IDENTITY = 0, FR_NUM_LOG1P = 1 } fr_num_transform;

typedef struct {
    char name[FR_NAME_MAX];
    fr_field_kind kind;
    fr_num_transform transform;  /* numeric only */
    int slot;                    /* index into fr_features.cat / num / multi for its kind */
    uint64_t hash;               /* fr_hash_field(name) */
    int max_len;                 /* multi only: values kept, <= FR_MAX_MULTI_LEN */
    /* categorical and multi only (fields with embedding rows; learner/fr_model.h fr_row_policy) */
    int admit_after;             /* a key gets a row at its N-th training sighting; default 1 */
    int admit_width_log2;        /* admission sketch: 4 x 2^this four-bit counters; default 20 */
    int64_t ttl_ms;              /* rows not updated for this much event time are evicted; 0 = never */
    int64_t admit_half_life_ms;  /* admission counts halved per this much event time; default 1 day, 0 = never */
} fr_field;

typedef struct {
    int max_message_bytes;           /* larger messages are rejected (kafka.max_message_bytes); default 65536 */
    int n_scenarios;
    char scenarios[FR_MAX_SCENARIOS][FR_NAME_MAX];
    int allow_new_scenarios;         /* map unknown names to an extra "other" scenario instead of rejecting */
    int n_fields;
    fr_field fields[FR_MAX_CAT + FR_MAX_NUM + FR_MAX_MULTI];
    int n_cat, n_num, n_multi;       /* the scenario is always categorical slot 0 */
} fr_schema;

/* The four scenarios of EVENTS.md and the fields of its example impression, slots assigned. */
void fr_schema_defaults(fr_schema *s);
/* A field with the defaults for its row policy (admit at the first sighting, 2^20-wide sketch,
 * one-day half-life, no TTL). The caller assigns slots afterwards. */
void fr_field_init(fr_field *f, const char *name, fr_field_kind kind, fr_num_transform tr, int max_len);
/* Hashes, slots and counts follow from the field list; the scenario always holds categorical slot 0. */
void fr_schema_assign_slots(fr_schema *s);
/* Index of a scenario name (len bytes, not NUL-terminated), or -1. */
int fr_schema_scenario_index(const fr_schema *s, const char *name, size_t len);
/* The categorical slot (the scenario is slot 0) or the multi-field index of the field called name
 * among those of that kind, or -1 when no field of that kind has the name. */
int fr_schema_field_slot(const fr_schema *s, const char *name, fr_field_kind kind);

#endif
