/* fr_config: the daemon's configuration, loaded from a JSON file (schema: conf/README.md).
 *
 * fr_config_load fills a caller-owned fr_config; the struct owns no heap memory (fixed-size
 * strings), so there is nothing to free. Every refusal names the offending key. */
#ifndef FR_CONFIG_H
#define FR_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "fr_model.h"
#include "fr_guard.h"
#include "fr_sample.h"

enum { FR_MAX_SCENARIOS = 16, FR_NAME_MAX = 64, FR_PATH_MAX = 512, FR_MAX_KAFKA_PROPS = 32 };

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
    /* input */
    char brokers[FR_PATH_MAX];
    char group_id[FR_NAME_MAX];
    char topic[3][FR_NAME_MAX];      /* impressions, clicks, conversions (may be equal: mixed topic) */
    int max_message_bytes;           /* default 65536 */
    char dead_letter_topic[FR_NAME_MAX]; /* rejected messages are copied here; "" (default) = off */
    /* extra librdkafka properties (security.protocol, sasl.*, ssl.*, client.id, ...) for every
     * client (consumer, dead-letter producer, loader), applied after Freshet's own; a value
     * "env:NAME" is read from the environment variable NAME when the client is created */
    int n_kafka_props;
    char kafka_prop[FR_MAX_KAFKA_PROPS][2][FR_PATH_MAX];

    /* event contract */
    int n_scenarios;
    char scenarios[FR_MAX_SCENARIOS][FR_NAME_MAX];
    int allow_new_scenarios;         /* map unknown names to an extra "other" scenario instead of rejecting */
    int n_fields;
    fr_field fields[FR_MAX_CAT + FR_MAX_NUM + FR_MAX_MULTI];
    int n_cat, n_num, n_multi;       /* the scenario is always categorical slot 0 */

    /* join (event time, milliseconds) */
    int64_t click_window_ms;         /* default 30 min */
    int64_t attribution_window_ms;   /* default 7 days */
    int64_t allowed_lateness_ms;     /* default 0 */
    /* delayed feedback (docs/delayed-feedback.md) */
    int join_policy;                 /* fr_join_policy, default wait */
    int64_t observation_window_ms;   /* w_o, default 15 min */
    int64_t real_negative_window_ms; /* w_rn (defer), default 0 = the attribution window */
    double weight_clip;              /* each delayed-feedback weight clipped to [0, this], default 5 */
    double rn_floor;                 /* f_rn floored at this, default 0.01 */
    int helper_buckets_log2;         /* hashed buckets of the helper heads f_dp, f_rn, default 16 */
    int64_t max_cached_entries;      /* join entries kept whole in memory; 0 = all (no spilling) */
    fr_guard_config guard;           /* the label-collapse guard (fr_guard.h) */
    /* Not from JSON: the oracle policy's lookahead, set by `freshet replay` (fr_join.h). */
    int (*oracle)(void *ctx, const char *id, size_t id_len, int64_t *conv_ts);
    void *oracle_ctx;

    /* learner */
    fr_model_config model;

    /* checkpoint */
    char checkpoint_dir[FR_PATH_MAX];
    double checkpoint_every_seconds; /* wall clock: how much work a crash may repeat */
    int64_t checkpoint_every_samples;

    /* publish; redis_host empty = do not publish */
    char redis_host[FR_NAME_MAX];
    int redis_port;
    char redis_prefix[FR_NAME_MAX];
    int redis_keep_versions;

    double status_every_seconds;
    /* metrics endpoint of `freshet run` (GET /metrics, /healthz); empty = none */
    char metrics_listen[FR_NAME_MAX];
} fr_config;

/* Defaults for everything: three default topics, the four scenarios of EVENTS.md, the example
 * fields, and the windows of EVENTS.md. */
void fr_config_defaults(fr_config *c);
/* Loads path over the defaults. Returns 0, or -1 with a message naming the key in err. */
int fr_config_load(fr_config *c, const char *path, char *err, size_t errlen);
/* Same, from a JSON text (for tests and embedded defaults). */
int fr_config_load_string(fr_config *c, const char *json, char *err, size_t errlen);
/* Index of a scenario name, or -1. */
int fr_config_scenario_index(const fr_config *c, const char *name, size_t len);
/* Parses a duration as the config writes it: "<n><unit>" pairs with units ms, s, m, h, d ("90s",
 * "1h30m"), into milliseconds. Returns 0, or -1 when s is not such a duration or overflows. */
int fr_config_parse_duration(const char *s, int64_t *ms);

#endif
