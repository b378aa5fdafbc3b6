/* fr_config: the daemon's configuration, loaded from a JSON file (schema: conf/README.md).
 *
 * fr_config_load fills a caller-owned fr_config; the struct owns no heap memory (fixed-size
 * strings), so there is nothing to free. Every refusal names the offending key. */
#ifndef FR_CONFIG_H
#define FR_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "fr_event_pb.h"
#include "fr_evtime.h"
#include "fr_guard.h"
#include "fr_log.h"
#include "fr_model.h"
#include "fr_policy.h"
#include "fr_sample.h"
#include "fr_schema.h"

enum { FR_PATH_MAX = 512, FR_MAX_KAFKA_PROPS = 32 };

typedef struct {
    /* input */
    char brokers[FR_PATH_MAX];
    char group_id[FR_NAME_MAX];
    char topic[3][FR_NAME_MAX];      /* impressions, clicks, conversions (may be equal: mixed topic) */
    fr_event_format topic_format[3]; /* what each topic carries; default JSON; a mixed topic has one */
    char dead_letter_topic[FR_NAME_MAX]; /* rejected messages are copied here; "" (default) = off */
    /* extra librdkafka properties (security.protocol, sasl.*, ssl.*, client.id, ...) for every
     * client (consumer, dead-letter producer, loader), applied after Freshet's own; a value
     * "env:NAME" is read from the environment variable NAME when the client is created */
    int n_kafka_props;
    char kafka_prop[FR_MAX_KAFKA_PROPS][2][FR_PATH_MAX];

    /* event contract: scenarios, fields and their slots, kafka.max_message_bytes */
    fr_schema schema;

    /* join (event time, milliseconds) */
    int64_t click_window_ms;         /* default 30 min */
    int64_t attribution_window_ms;   /* default 7 days */
    int64_t allowed_lateness_ms;     /* default 0 */
    fr_evtime_config evtime;         /* which events may move a partition's event time (fr_evtime.h) */
    /* delayed feedback (docs/delayed-feedback.md) */
    fr_policy_id join_policy;        /* default esdfm (fr_policy.h) */
    int64_t observation_window_ms;   /* w_o, default 15 min */
    int64_t real_negative_window_ms; /* w_rn (defer), default 0 = the attribution window */
    double weight_clip;              /* each delayed-feedback weight clipped to [0, this], default 5 */
    double rn_floor;                 /* f_rn floored at this, default 0.01 */
    int helper_buckets_log2;         /* hashed buckets of the helper heads f_dp, f_rn, default 16 */
    int64_t max_cached_entries;      /* join entries kept whole in memory; 0 = all (no spilling) */
    int partitions;                  /* join.partitions: join groups, the input's partition count (default 1) */
    fr_guard_config guard;           /* the label-collapse guard (fr_guard.h) */
    /* Not from JSON: the oracle policy's lookahead, set by `freshet replay` (fr_join.h). */
    int (*oracle)(void *ctx, const char *id, size_t id_len, int64_t *conv_ts);
    void *oracle_ctx;
    /* Not from JSON: `freshet load --schema-id`: Protobuf messages framed for Confluent with this
     * schema id; -1 (the default) = bare */
    int64_t load_schema_id;
    /* Not from JSON: `freshet load --event-time`: each message's Kafka timestamp (CreateTime) is its
     * event's "ts", as a producer at that moment would have set it, so `freshet replay --kafka --from
     * --to` selects a loaded historical file by time; lines without a readable ts get the clock's.
     * 0 (the default): every message gets the clock of the load. The broker's time retention
     * (retention.ms) judges segments by these timestamps: old events loaded so are deleted at its
     * next retention check. */
    int load_event_time;
    /* Not from JSON: where the pipeline and its publisher send their messages (rejections, the
     * guard, publish failures; fr_log.h). Zeroed by fr_config_defaults: silent; the CLI sets stderr. */
    fr_log log;

    /* learner */
    fr_model_config model;

    /* checkpoint */
    char checkpoint_dir[FR_PATH_MAX];
    double checkpoint_every_seconds; /* wall clock: how much work a crash may repeat */
    int64_t checkpoint_every_samples;
    /* the progressive metrics over event time (learner/fr_history.h), kept in the checkpoint */
    int64_t history_bucket_ms;       /* event time per bucket, default 1 h */
    int history_keep;                /* newest buckets kept, default 10 000 */

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
/* The format of topic's messages (one of the configured topics; JSON for any other name). */
fr_event_format fr_config_topic_format(const fr_config *c, const char *topic);
/* Parses a duration as the config writes it: "<n><unit>" pairs with units ms, s, m, h, d ("90s",
 * "1h30m"), into milliseconds. Returns 0, or -1 when s is not such a duration or overflows. */
int fr_config_parse_duration(const char *s, int64_t *ms);
/* Parses a UTC instant as the config writes it: "YYYY-MM-DD" or "YYYY-MM-DDTHH:MM:SSZ", years
 * 1970..9999, into milliseconds since the epoch. Returns 0, or -1 when s is not such a date. */
int fr_config_parse_instant(const char *s, int64_t *ms);

#endif
