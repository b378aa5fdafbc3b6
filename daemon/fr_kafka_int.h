/* fr_kafka_int.h: what the Kafka clients of daemon/ share (fr_kafka.c: the daemon's consumer, the
 * dead-letter producer and the loader; fr_backfill.c: the backfill's consumer). Private to them. */
#ifndef FR_KAFKA_INT_H
#define FR_KAFKA_INT_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdint.h>

#include "fr_config.h"

/* One of Freshet's own settings: 0, or -1 with "kafka: KEY=VALUE: why". */
int fr_kafka_conf_set(rd_kafka_conf_t *conf, const char *key, const char *value, char *err, size_t errlen);
/* kafka.properties, after Freshet's own settings (so they win where both set a key); env: values
 * read now. 0, or -1 naming the key (never the value: it may be a secret). */
int fr_kafka_conf_user(rd_kafka_conf_t *conf, const fr_config *c, char *err, size_t errlen);
/* The pipeline's source name of a partition: "kafka:TOPIC:PARTITION". */
void fr_kafka_source_name(char *out, size_t cap, const char *topic, int32_t partition);

#endif
