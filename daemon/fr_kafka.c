#include "fr_kafka.h"
#include "fr_kafka_int.h"

#include <inttypes.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int set_conf(rd_kafka_conf_t *conf, const char *key, const char *value, char *err, size_t errlen)
{
    char kerr[256];
    if (rd_kafka_conf_set(conf, key, value, kerr, sizeof kerr) != RD_KAFKA_CONF_OK) {
        snprintf(err, errlen, "kafka: %s=%s: %s", key, value, kerr);
        return -1;
    }
    return 0;
}

/* kafka.properties, after Freshet's own settings (so they win where both set a key). */
static int set_user_conf(rd_kafka_conf_t *conf, const fr_config *c, char *err, size_t errlen)
{
    for (int i = 0; i < c->n_kafka_props; i++) {
        const char *key = c->kafka_prop[i][0], *value = c->kafka_prop[i][1];
        if (strncmp(value, "env:", 4) == 0) {
            value = getenv(value + 4);
            if (!value) {
                snprintf(err, errlen, "kafka.properties.%s: the environment variable %s is not set", key,
                         c->kafka_prop[i][1] + 4);
                return -1;
            }
        }
        char kerr[256];
        if (rd_kafka_conf_set(conf, key, value, kerr, sizeof kerr) != RD_KAFKA_CONF_OK) {
            /* the value may be a secret: name the key only */
            snprintf(err, errlen, "kafka.properties.%s: %s", key, kerr);
            return -1;
        }
    }
    return 0;
}

static void source_name(char *out, size_t cap, const char *topic, int32_t partition)
{
    snprintf(out, cap, "kafka:%s:%" PRId32, topic, partition);
}

/* The same three for fr_backfill.c (fr_kafka_int.h). */
int fr_kafka_conf_set(rd_kafka_conf_t *conf, const char *key, const char *value, char *err, size_t errlen)
{
    return set_conf(conf, key, value, err, errlen);
}
int fr_kafka_conf_user(rd_kafka_conf_t *conf, const fr_config *c, char *err, size_t errlen)
{
    return set_user_conf(conf, c, err, errlen);
}
void fr_kafka_source_name(char *out, size_t cap, const char *topic, int32_t partition)
{
    source_name(out, cap, topic, partition);
}

/* ---- consumer ---------------------------------------------------------------------------- */

typedef struct {
    fr_pipeline *p;
    const fr_config *cfg;                        /* each topic's format */
    rd_kafka_topic_partition_list_t *assigned;  /* owned; NULL when nothing is assigned */
    int *at_eof;                                 /* per entry of assigned */
    char err[512];
    int failed;
} consumer_ctx;

static void forget_assignment(consumer_ctx *cx)
{
    if (cx->assigned) rd_kafka_topic_partition_list_destroy(cx->assigned);
    free(cx->at_eof);
    cx->assigned = NULL;
    cx->at_eof = NULL;
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t why, rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    consumer_ctx *cx = opaque;
    if (why == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        for (int i = 0; i < parts->cnt; i++) {
            char name[FR_SOURCE_NAME_MAX];
            int64_t next = -1;
            source_name(name, sizeof name, parts->elems[i].topic, parts->elems[i].partition);
            if (fr_pipeline_register_source(cx->p, name, &next) != 0) {
                snprintf(cx->err, sizeof cx->err, "too many partitions assigned (limit %d)", FR_MAX_SOURCES);
                cx->failed = 1;
            } else {
                fr_pipeline_set_source_format(cx->p, name, fr_config_topic_format(cx->cfg, parts->elems[i].topic));
            }
            /* partition p holds back join group p mod join.partitions only */
            fr_pipeline_bind_source(cx->p, name, parts->elems[i].partition);
            parts->elems[i].offset = next >= 0 ? next : RD_KAFKA_OFFSET_BEGINNING;
        }
        forget_assignment(cx);
        cx->assigned = rd_kafka_topic_partition_list_copy(parts);
        cx->at_eof = calloc((size_t)parts->cnt, sizeof *cx->at_eof);
        rd_kafka_assign(rk, parts);
    } else {
        /* Checkpoint before giving partitions away so their next owner starts where we stopped. */
        if (!cx->failed && fr_pipeline_checkpoint(cx->p, cx->err, sizeof cx->err) != 0) cx->failed = 1;
        for (int i = 0; i < parts->cnt; i++) {
            char name[FR_SOURCE_NAME_MAX];
            source_name(name, sizeof name, parts->elems[i].topic, parts->elems[i].partition);
            fr_pipeline_source_idle(cx->p, name, 1);
        }
        forget_assignment(cx);
        rd_kafka_assign(rk, NULL);
    }
}

static int find_assigned(const consumer_ctx *cx, const char *topic, int32_t partition)
{
    if (!cx->assigned) return -1;
    for (int i = 0; i < cx->assigned->cnt; i++)
        if (cx->assigned->elems[i].partition == partition && strcmp(cx->assigned->elems[i].topic, topic) == 0)
            return i;
    return -1;
}

/* Messages between a consumer position and its partition's end (the client's cached high watermark). */
static int64_t partition_lag(rd_kafka_t *rk, const rd_kafka_topic_partition_t *pos)
{
    int64_t lo = 0, hi = 0;
    if (rd_kafka_get_watermark_offsets(rk, pos->topic, pos->partition, &lo, &hi) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        pos->offset < 0 || hi <= pos->offset)
        return 0;
    return hi - pos->offset;
}

/* The positions of the assigned partitions (NULL when none); the caller destroys the list. */
static rd_kafka_topic_partition_list_t *positions(rd_kafka_t *rk, const consumer_ctx *cx)
{
    if (!cx->assigned) return NULL;
    rd_kafka_topic_partition_list_t *pos = rd_kafka_topic_partition_list_copy(cx->assigned);
    rd_kafka_position(rk, pos);
    return pos;
}

static int64_t total_lag(rd_kafka_t *rk, const consumer_ctx *cx)
{
    rd_kafka_topic_partition_list_t *pos = positions(rk, cx);
    int64_t lag = 0;
    for (int i = 0; pos && i < pos->cnt; i++) lag += partition_lag(rk, &pos->elems[i]);
    if (pos) rd_kafka_topic_partition_list_destroy(pos);
    return lag;
}

/* The pipeline's page plus the consumer's own gauges, handed to the endpoint. */
static void refresh_metrics(fr_http *h, rd_kafka_t *rk, const consumer_ctx *cx, const fr_pipeline *p)
{
    char *page = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&page, &len);
    if (!out) return; /* out of memory: the endpoint keeps the previous page, /healthz turns stale */
    fr_pipeline_write_metrics(p, out);
    fputs("# HELP freshet_kafka_lag_messages Messages behind the partition's end (the client's cached high watermark).\n"
          "# TYPE freshet_kafka_lag_messages gauge\n",
          out);
    rd_kafka_topic_partition_list_t *pos = positions(rk, cx);
    for (int i = 0; pos && i < pos->cnt; i++)
        /* topic names are [a-zA-Z0-9._-]: nothing to escape */
        fprintf(out, "freshet_kafka_lag_messages{topic=\"%s\",partition=\"%d\"} %" PRId64 "\n", pos->elems[i].topic,
                (int)pos->elems[i].partition, partition_lag(rk, &pos->elems[i]));
    if (pos) rd_kafka_topic_partition_list_destroy(pos);
    fprintf(out, "# HELP freshet_kafka_assigned_partitions Partitions this daemon consumes.\n"
                 "# TYPE freshet_kafka_assigned_partitions gauge\nfreshet_kafka_assigned_partitions %d\n",
            cx->assigned ? cx->assigned->cnt : 0);
    if (fclose(out) == 0) fr_http_set_page(h, page, len);
    free(page);
}

/* Partitions of the subscribed topics in the cluster, or -1 if metadata is unavailable. */
static int count_topic_partitions(rd_kafka_t *rk, const fr_config *c)
{
    const struct rd_kafka_metadata *md = NULL;
    if (rd_kafka_metadata(rk, 1, NULL, &md, 5000) != RD_KAFKA_RESP_ERR_NO_ERROR) return -1;
    int total = 0;
    for (int i = 0; i < md->topic_cnt; i++) {
        int ours = 0;
        for (int t = 0; t < 3; t++) ours |= strcmp(md->topics[i].topic, c->topic[t]) == 0;
        if (ours) total += md->topics[i].partition_cnt;
    }
    rd_kafka_metadata_destroy(md);
    return total;
}

/* ---- dead-letter copies -------------------------------------------------------------------- */

/* Rejected messages copied to c->dead_letter_topic, with why in headers, so an operator can look
 * at them and replay them once fixed. Best effort: a copy that cannot be delivered is counted and
 * logged, never a reason to stop training. After a crash, rejections after the last checkpoint are
 * consumed again and copied again (at least once). */
typedef struct {
    rd_kafka_t *rk;
    const char *topic;
    uint64_t copied, failed;
} dead_letter;

static void on_dead_letter_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    dead_letter *d = opaque;
    if (!m->err) {
        d->copied++;
        return;
    }
    if (d->failed++ < 5)
        fprintf(stderr, "freshet: dead-letter copy to %s failed: %s\n", d->topic, rd_kafka_err2str(m->err));
}

static int dead_letter_open(dead_letter *d, const fr_config *c, char *err, size_t errlen)
{
    memset(d, 0, sizeof *d);
    if (!c->dead_letter_topic[0]) return 0;
    d->topic = c->dead_letter_topic;
    char maxbytes[32];
    snprintf(maxbytes, sizeof maxbytes, "%d", c->schema.max_message_bytes * 4 + 65536);
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (set_conf(conf, "bootstrap.servers", c->brokers, err, errlen) ||
        set_conf(conf, "enable.idempotence", "true", err, errlen) || set_conf(conf, "linger.ms", "50", err, errlen) ||
        set_conf(conf, "message.max.bytes", maxbytes, err, errlen) || set_user_conf(conf, c, err, errlen)) {
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, on_dead_letter_delivery);
    rd_kafka_conf_set_opaque(conf, d);
    char kerr[512];
    d->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, kerr, sizeof kerr);
    if (!d->rk) {
        rd_kafka_conf_destroy(conf);
        snprintf(err, errlen, "kafka: cannot create the dead-letter producer: %s", kerr);
        return -1;
    }
    return 0;
}

static void dead_letter_copy(const char *source, int64_t offset, const char *buf, size_t len, const char *reason,
                             const char *detail, void *ctx)
{
    dead_letter *d = ctx;
    char off[24];
    snprintf(off, sizeof off, "%" PRId64, offset);
    for (int attempt = 0;; attempt++) {
        rd_kafka_resp_err_t e = rd_kafka_producev(
            d->rk, RD_KAFKA_V_TOPIC(d->topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_VALUE((void *)(uintptr_t)buf, len), RD_KAFKA_V_HEADER("freshet-reason", reason, -1),
            RD_KAFKA_V_HEADER("freshet-detail", detail, -1), RD_KAFKA_V_HEADER("freshet-source", source, -1),
            RD_KAFKA_V_HEADER("freshet-offset", off, -1), RD_KAFKA_V_END);
        if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL && attempt < 100) {
            rd_kafka_poll(d->rk, 10);
            continue;
        }
        if (e && d->failed++ < 5)
            fprintf(stderr, "freshet: dead-letter copy to %s failed: %s\n", d->topic, rd_kafka_err2str(e));
        return;
    }
}

static void dead_letter_close(dead_letter *d)
{
    if (!d->rk) return;
    if (rd_kafka_flush(d->rk, 10000) != RD_KAFKA_RESP_ERR_NO_ERROR)
        d->failed += (uint64_t)rd_kafka_outq_len(d->rk);
    fprintf(stderr, "freshet: dead-letter topic %s: %" PRIu64 " rejected messages copied, %" PRIu64 " failed\n",
            d->topic, d->copied, d->failed);
    rd_kafka_destroy(d->rk);
    d->rk = NULL;
}

/* Informational only: restarts use the checkpoint, but operators watch consumer-group lag. */
static void commit_informational(rd_kafka_t *rk) { rd_kafka_commit(rk, NULL, 1); }

int fr_kafka_run(fr_pipeline *p, const fr_config *c, const fr_kafka_run_opts *o, char *err, size_t errlen)
{
    consumer_ctx cx = {.p = p, .cfg = c};
    dead_letter dl;
    if (dead_letter_open(&dl, c, err, errlen) != 0) return -1;
    if (dl.rk) fr_pipeline_set_reject_hook(p, dead_letter_copy, &dl);
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char maxbytes[32];
    /* Fetch more than the contract's limit so oversized events reach the decoder and are counted there. */
    snprintf(maxbytes, sizeof maxbytes, "%d", c->schema.max_message_bytes * 4 + 1024);
    if (set_conf(conf, "bootstrap.servers", c->brokers, err, errlen) || set_conf(conf, "group.id", c->group_id, err, errlen) ||
        set_conf(conf, "enable.auto.commit", "false", err, errlen) ||
        set_conf(conf, "enable.auto.offset.store", "true", err, errlen) ||
        set_conf(conf, "auto.offset.reset", "earliest", err, errlen) ||
        set_conf(conf, "enable.partition.eof", "true", err, errlen) ||
        /* A killed daemon's partitions move to its restarted self after this long: keep it short. */
        set_conf(conf, "session.timeout.ms", "6000", err, errlen) ||
        set_conf(conf, "heartbeat.interval.ms", "1500", err, errlen) ||
        set_conf(conf, "fetch.message.max.bytes", maxbytes, err, errlen) || set_user_conf(conf, c, err, errlen)) {
        rd_kafka_conf_destroy(conf);
        fr_pipeline_set_reject_hook(p, NULL, NULL);
        dead_letter_close(&dl);
        return -1;
    }
    rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
    rd_kafka_conf_set_opaque(conf, &cx);
    char kerr[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, kerr, sizeof kerr);
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        snprintf(err, errlen, "kafka: cannot create consumer: %s", kerr);
        fr_pipeline_set_reject_hook(p, NULL, NULL);
        dead_letter_close(&dl);
        return -1;
    }
    rd_kafka_poll_set_consumer(rk);

    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(3);
    for (int t = 0; t < 3; t++) {
        int seen = 0;
        for (int u = 0; u < t; u++) seen |= strcmp(c->topic[u], c->topic[t]) == 0;
        if (!seen) rd_kafka_topic_partition_list_add(topics, c->topic[t], RD_KAFKA_PARTITION_UA);
    }
    rd_kafka_resp_err_t e = rd_kafka_subscribe(rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    int rc = 0;
    if (e) {
        snprintf(err, errlen, "kafka: subscribe failed: %s", rd_kafka_err2str(e));
        rc = -1;
        goto out;
    }

    double last_message = now_seconds(), last_status = now_seconds(), last_metrics = 0;
    int topic_partitions = -1;
    for (;;) {
        if (o->stop_signals) {
            sigset_t pending;
            sigpending(&pending);
            int stop = 0;
            for (int s = 1; s < 32; s++) stop |= sigismember(o->stop_signals, s) == 1 && sigismember(&pending, s) == 1;
            if (stop) {
                fprintf(stderr, "freshet: stop requested: checkpointing and exiting\n");
                break;
            }
        }
        if (cx.failed) {
            snprintf(err, errlen, "%s", cx.err);
            rc = -1;
            goto out;
        }
        if (dl.rk) rd_kafka_poll(dl.rk, 0);
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        double now = now_seconds();
        if (m) {
            if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                char name[FR_SOURCE_NAME_MAX];
                source_name(name, sizeof name, rd_kafka_topic_name(m->rkt), m->partition);
                fr_pipeline_source_idle(p, name, 1);
                fr_pipeline_tick(p);
                int i = find_assigned(&cx, rd_kafka_topic_name(m->rkt), m->partition);
                if (i >= 0) cx.at_eof[i] = 1;
            } else if (m->err) {
                fprintf(stderr, "freshet: kafka: %s\n", rd_kafka_message_errstr(m));
            } else {
                char name[FR_SOURCE_NAME_MAX];
                source_name(name, sizeof name, rd_kafka_topic_name(m->rkt), m->partition);
                int i = find_assigned(&cx, rd_kafka_topic_name(m->rkt), m->partition);
                if (i >= 0) cx.at_eof[i] = 0;
                last_message = now;
                if (fr_pipeline_message(p, name, m->offset + 1, m->payload, m->len, err, errlen) != 0) {
                    rd_kafka_message_destroy(m);
                    rc = -1;
                    goto out;
                }
            }
            rd_kafka_message_destroy(m);
        }
        if (fr_pipeline_maybe_checkpoint(p, err, errlen) != 0) {
            rc = -1;
            goto out;
        }
        if (o->status_out && c->status_every_seconds > 0 && now - last_status >= c->status_every_seconds) {
            char extra[64];
            snprintf(extra, sizeof extra, "lag=%" PRId64, total_lag(rk, &cx));
            fr_pipeline_status_line(p, o->status_out, extra);
            last_status = now;
        }
        if (o->metrics && now - last_metrics >= 1.0) {
            refresh_metrics(o->metrics, rk, &cx, p);
            last_metrics = now;
        }
        if (o->exit_when_idle_seconds > 0 && cx.assigned && cx.assigned->cnt > 0 &&
            now - last_message >= o->exit_when_idle_seconds) {
            int all_eof = 1;
            for (int i = 0; i < cx.assigned->cnt; i++) all_eof &= cx.at_eof[i];
            /* Idle means the whole input is consumed: while a dead predecessor still holds some
             * partitions in the group (until its session times out), ours being done is not enough. */
            if (all_eof && topic_partitions < 0) topic_partitions = count_topic_partitions(rk, c);
            if (all_eof && cx.assigned->cnt >= topic_partitions) {
                fprintf(stderr, "freshet: every partition at its end for %.0f s: checkpointing and exiting\n",
                        o->exit_when_idle_seconds);
                break;
            }
        }
    }
    if (fr_pipeline_checkpoint(p, err, errlen) != 0) {
        rc = -1;
        goto out;
    }
    commit_informational(rk);
out:
    rd_kafka_consumer_close(rk);
    forget_assignment(&cx);
    rd_kafka_destroy(rk);
    fr_pipeline_set_reject_hook(p, NULL, NULL);
    dead_letter_close(&dl);
    return rc;
}

/* ---- loader ------------------------------------------------------------------------------ */

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    fr_kafka_load_stats *st = opaque;
    if (m->err) {
        if (st->failed < 5) fprintf(stderr, "freshet load: delivery failed: %s\n", rd_kafka_err2str(m->err));
        st->failed++;
    } else {
        st->produced++;
    }
}

/* Reads type and id without judging the rest: validation is the daemon's job, and a line the
 * loader cannot classify still goes to Kafka so the daemon counts its rejection. */
static int classify(const char *line, size_t len, int *type, char *id, size_t idcap, int64_t *ts)
{
    json_error_t jerr;
    json_t *o = json_loadb(line, len, 0, &jerr);
    if (!o) return -1;
    const json_t *t_ms = json_object_get(o, "ts");
    if (json_is_integer(t_ms) && json_integer_value(t_ms) > 0) *ts = (int64_t)json_integer_value(t_ms);
    const char *t = json_string_value(json_object_get(o, "type"));
    const char *i = json_string_value(json_object_get(o, "id"));
    int ok = t && i && strlen(i) < idcap;
    if (ok) {
        *type = strcmp(t, "click") == 0 ? 1 : strcmp(t, "conversion") == 0 ? 2 : 0;
        snprintf(id, idcap, "%s", i);
    }
    json_decref(o);
    return ok ? 0 : -1;
}

int fr_kafka_load(const fr_config *c, FILE *in, fr_kafka_load_stats *st, char *err, size_t errlen)
{
    memset(st, 0, sizeof *st);
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    /* murmur2 is what Java producers use, so topics stay co-partitioned with other writers. */
    if (set_conf(conf, "bootstrap.servers", c->brokers, err, errlen) ||
        set_conf(conf, "partitioner", "murmur2_random", err, errlen) || set_conf(conf, "linger.ms", "20", err, errlen) ||
        set_conf(conf, "enable.idempotence", "true", err, errlen) ||
        set_conf(conf, "queue.buffering.max.messages", "500000", err, errlen) ||
        set_conf(conf, "message.max.bytes", "4000000", err, errlen) || set_user_conf(conf, c, err, errlen)) {
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_opaque(conf, st);
    char kerr[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, kerr, sizeof kerr);
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        snprintf(err, errlen, "kafka: cannot create producer: %s", kerr);
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int rc = 0;
    while ((n = getline(&line, &cap, in)) > 0) {
        if (line[n - 1] == '\n') n--;
        if (n == 0) continue;
        st->lines++;
        int type = 0;
        char id[FR_ID_MAX + 2] = "";
        int64_t ts = 0; /* librdkafka: 0 = the producer's clock now */
        int keyed = classify(line, (size_t)n, &type, id, sizeof id, &ts) == 0;
        if (!keyed) st->unparsable++;
        if (!c->load_event_time) ts = 0;
        /* plain variables: librdkafka's RD_KAFKA_V_ macros cast their arguments unparenthesised */
        const char *key = keyed ? id : NULL;
        const size_t key_len = keyed ? strlen(id) : 0;
        char *value = line;
        size_t value_len = (size_t)n;
        uint8_t *pb = NULL;
        if (c->topic_format[type] == FR_FORMAT_PROTOBUF) {
            char why[256];
            if (fr_event_pb_from_json(line, (size_t)n, c->load_schema_id, &pb, &value_len, why, sizeof why) != 0) {
                if (st->unconvertible++ < 10)
                    fprintf(stderr, "freshet load: line %" PRIu64 " not sent, Protobuf cannot express it: %s\n",
                            st->lines, why);
                continue;
            }
            value = (char *)pb;
        }
        for (;;) {
            rd_kafka_resp_err_t e = rd_kafka_producev(
                rk, RD_KAFKA_V_TOPIC(c->topic[type]), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                RD_KAFKA_V_KEY(key, key_len), RD_KAFKA_V_VALUE(value, value_len), RD_KAFKA_V_TIMESTAMP(ts),
                RD_KAFKA_V_END);
            if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                rd_kafka_poll(rk, 50);
                continue;
            }
            if (e) {
                snprintf(err, errlen, "kafka: produce to %s failed: %s", c->topic[type], rd_kafka_err2str(e));
                rc = -1;
            }
            break;
        }
        free(pb);
        if (rc) break;
        rd_kafka_poll(rk, 0);
    }
    free(line);
    rd_kafka_resp_err_t fe = rd_kafka_flush(rk, 120000);
    if (rc == 0 && fe) {
        snprintf(err, errlen, "kafka: flush timed out with %d messages unacknowledged", rd_kafka_outq_len(rk));
        rc = -1;
    }
    if (rc == 0 && st->failed) {
        snprintf(err, errlen, "kafka: %" PRIu64 " messages were not delivered", st->failed);
        rc = -1;
    }
    rd_kafka_destroy(rk);
    return rc;
}
