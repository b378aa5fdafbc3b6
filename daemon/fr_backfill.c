#include "fr_backfill.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fr_kafka_int.h"
#include "fr_progress.h"

/* ---- times -------------------------------------------------------------------------------- */

/* ms as RFC 3339 UTC ("2025-12-01T00:00:00Z", with .mmm when not a whole second). */
static void format_time(int64_t ms, char *out, size_t cap)
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    if (ms < 0 || !gmtime_r(&secs, &tm)) {
        snprintf(out, cap, "%" PRId64 " ms", ms);
        return;
    }
    char day[32];
    strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%S", &tm);
    if (ms % 1000) snprintf(out, cap, "%s.%03dZ", day, (int)(ms % 1000));
    else snprintf(out, cap, "%sZ", day);
}

int fr_backfill_parse_time(const char *flag, const char *text, int64_t *ms, char *err, size_t errlen)
{
    static const char FORMS[] = "milliseconds since 1970, or a UTC date or date-time such as 2025-12-01, "
                                "2025-12-01T06:00:00Z or 2025-12-01T06:00:00.250Z";
    const size_t n = strlen(text);
    if (n > 0 && strspn(text, "0123456789") == n) {
        unsigned long long v = n <= 16 ? strtoull(text, NULL, 10) : ~0ULL;
        if (v > (unsigned long long)FR_TS_MAX) {
            snprintf(err, errlen, "%s %s: after the year 9999 as milliseconds since 1970", flag, text);
            return -1;
        }
        /* below 1973-03-03 in milliseconds, but a time of 1973..5138 in seconds: a unit mistake would
         * read or skip all of Kafka's retention, so it is refused (0 stays: "from the beginning") */
        if (v > 0 && v < 100000000000ULL) {
            char as_secs[40];
            format_time((int64_t)v * 1000, as_secs, sizeof as_secs);
            snprintf(err, errlen,
                     "%s %s: this looks like seconds (%s), but TIME is in milliseconds: write %s000, or the date-time",
                     flag, text, as_secs, text);
            return -1;
        }
        *ms = (int64_t)v;
        return 0;
    }
    if (fr_config_parse_instant(text, ms) == 0) return 0;
    /* RFC 3339 with milliseconds, "2025-12-01T06:00:00.250Z": Kafka's timestamps are milliseconds */
    const size_t digits = n >= 22 ? n - 21 : 0;
    if (digits >= 1 && digits <= 3 && text[19] == '.' && text[n - 1] == 'Z' &&
        strspn(text + 20, "0123456789") == digits) {
        char whole[24];
        snprintf(whole, sizeof whole, "%.19sZ", text);
        int64_t frac = 0;
        for (size_t i = 0; i < 3; i++) frac = frac * 10 + (i < digits ? text[20 + i] - '0' : 0);
        if (fr_config_parse_instant(whole, ms) == 0) {
            *ms += frac;
            return 0;
        }
    }
    const char *t = strchr(text, 'T');
    const char *why = "not a time";
    if (n > 24 && text[19] == '.' && strspn(text + 20, "0123456789") > 3)
        why = "Kafka's timestamps are milliseconds: give at most 3 digits after the point";
    else if (t && (strchr(t, '+') || strchr(t, '-'))) why = "an offset from UTC: write the time in UTC with Z";
    else if (t && text[n - 1] != 'Z') why = "a date-time needs its zone: add Z (UTC)";
    else if (n > 10 && (text[10] == ' ' || text[10] == 't')) why = "separate the date and the time with T";
    snprintf(err, errlen, "%s \"%s\": %s; TIME is %s", flag, text, why, FORMS);
    return -1;
}

/* ---- the offset rule ------------------------------------------------------------------------ */

fr_backfill_kind fr_backfill_range(const fr_backfill_marks *m, int has_to, int64_t stored, int64_t *start,
                                   int64_t *end)
{
    /* -1 from offsets_for_times: no message at or after that time (yet): the range ends at the end */
    int64_t s = m->at_from >= 0 ? m->at_from : m->high;
    int64_t e = has_to && m->at_to >= 0 ? m->at_to : m->high;
    if (s < m->low) s = m->low;
    if (e > m->high) e = m->high;
    if (e < s) e = s; /* timestamps out of order between the two lookups: nothing, rather than backwards */
    *start = s;
    *end = e;
    if (s == e) return FR_BACKFILL_EMPTY;
    if (stored >= e) return FR_BACKFILL_DONE;
    if (stored > s) {
        *start = stored;
        return FR_BACKFILL_RESUME;
    }
    return FR_BACKFILL_READ;
}

const char *fr_backfill_kind_name(fr_backfill_kind k)
{
    static const char *const names[] = {"read", "resumed", "empty", "done"};
    return (unsigned)k < FR_BACKFILL_NKINDS ? names[k] : "?";
}

/* ---- planning ----------------------------------------------------------------------------- */

/* A consumer for assign() only. librdkafka wants a group.id even then: the daemon's own, so that
 * what its ACLs allow is what the backfill may do; the group is never joined (no subscribe) and
 * nothing is committed, so the daemon's membership and committed offsets do not move. */
static rd_kafka_t *new_consumer(const fr_config *c, char *err, size_t errlen)
{
    char maxbytes[32];
    snprintf(maxbytes, sizeof maxbytes, "%d", c->schema.max_message_bytes * 4 + 1024);
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (fr_kafka_conf_set(conf, "bootstrap.servers", c->brokers, err, errlen) ||
        fr_kafka_conf_set(conf, "group.id", c->group_id, err, errlen) ||
        fr_kafka_conf_set(conf, "enable.auto.commit", "false", err, errlen) ||
        fr_kafka_conf_set(conf, "enable.auto.offset.store", "false", err, errlen) ||
        /* an offset deleted by retention since the plan is an error, not a silent jump */
        fr_kafka_conf_set(conf, "auto.offset.reset", "error", err, errlen) ||
        fr_kafka_conf_set(conf, "enable.partition.eof", "true", err, errlen) ||
        fr_kafka_conf_set(conf, "fetch.message.max.bytes", maxbytes, err, errlen) ||
        fr_kafka_conf_user(conf, c, err, errlen)) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    char kerr[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, kerr, sizeof kerr);
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        snprintf(err, errlen, "kafka: cannot create the backfill's consumer: %s", kerr);
        return NULL;
    }
    rd_kafka_poll_set_consumer(rk);
    return rk;
}

static int by_topic_partition(const void *a, const void *b)
{
    const fr_backfill_partition *x = a, *y = b;
    int t = strcmp(x->topic, y->topic);
    return t ? t : (x->partition > y->partition) - (x->partition < y->partition);
}

static const char *const TOPIC_KEYS[3] = {"kafka.topics.impressions", "kafka.topics.clicks", "kafka.topics.conversions"};

static int add_topic(rd_kafka_t *rk, const fr_config *c, int t, fr_backfill_plan *plan, char *err, size_t errlen)
{
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, c->topic[t], NULL);
    if (!rkt) {
        snprintf(err, errlen, "kafka: %s \"%s\": %s", TOPIC_KEYS[t], c->topic[t], rd_kafka_err2str(rd_kafka_last_error()));
        return -1;
    }
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, rkt, &md, 10000);
    rd_kafka_topic_destroy(rkt);
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR && (md->topic_cnt != 1 || md->topics[0].err)) e = md->topic_cnt == 1 ? md->topics[0].err : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR && md->topics[0].partition_cnt == 0) e = RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
    if (e) {
        if (md) rd_kafka_metadata_destroy(md);
        if (e == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART || e == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC)
            snprintf(err, errlen, "kafka: topic \"%s\" (%s) does not exist on %s", c->topic[t], TOPIC_KEYS[t], c->brokers);
        else
            snprintf(err, errlen, "kafka: no metadata for topic \"%s\" from %s: %s", c->topic[t], c->brokers,
                     rd_kafka_err2str(e));
        return -1;
    }
    const int n = md->topics[0].partition_cnt;
    if (plan->n + n > FR_MAX_SOURCES) {
        rd_kafka_metadata_destroy(md);
        snprintf(err, errlen, "kafka: the topics have more than %d partitions, the most one state follows", FR_MAX_SOURCES);
        return -1;
    }
    fr_backfill_partition *grown = realloc(plan->part, (size_t)(plan->n + n) * sizeof *grown);
    if (!grown) {
        rd_kafka_metadata_destroy(md);
        snprintf(err, errlen, "out of memory for the backfill's plan");
        return -1;
    }
    plan->part = grown;
    for (int i = 0; i < n; i++) {
        fr_backfill_partition *bp = &plan->part[plan->n++];
        memset(bp, 0, sizeof *bp);
        snprintf(bp->topic, sizeof bp->topic, "%s", c->topic[t]);
        bp->partition = md->topics[0].partitions[i].id;
        bp->marks.at_from = bp->marks.at_to = -1;
    }
    rd_kafka_metadata_destroy(md);
    return 0;
}

/* The first offset of every partition whose timestamp is >= ms, into at (-1: none). */
static int lookup_times(rd_kafka_t *rk, fr_backfill_plan *plan, int64_t ms, int to, char *err, size_t errlen)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(plan->n);
    for (int i = 0; i < plan->n; i++) rd_kafka_topic_partition_list_add(l, plan->part[i].topic, plan->part[i].partition)->offset = ms;
    rd_kafka_resp_err_t e = rd_kafka_offsets_for_times(rk, l, 10000);
    for (int i = 0; i < plan->n && !e; i++) {
        fr_backfill_partition *bp = &plan->part[i];
        rd_kafka_topic_partition_t *r = rd_kafka_topic_partition_list_find(l, bp->topic, bp->partition);
        if (!r || r->err) {
            e = r ? r->err : RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION;
            snprintf(err, errlen, "kafka: cannot find the offset of time %" PRId64 " in %s[%" PRId32 "]: %s", ms, bp->topic,
                     bp->partition, rd_kafka_err2str(e));
            break;
        }
        *(to ? &bp->marks.at_to : &bp->marks.at_from) = r->offset >= 0 ? r->offset : -1;
    }
    if (e && !err[0]) snprintf(err, errlen, "kafka: cannot look offsets up by time on %s: %s", plan->part[0].topic, rd_kafka_err2str(e));
    rd_kafka_topic_partition_list_destroy(l);
    return e ? -1 : 0;
}

int fr_backfill_plan_make(const fr_config *c, int64_t from_ms, int64_t to_ms, fr_backfill_plan *plan, char *err,
                          size_t errlen)
{
    memset(plan, 0, sizeof *plan);
    plan->from_ms = from_ms;
    plan->to_ms = to_ms;
    err[0] = '\0';
    if (to_ms >= 0 && from_ms >= to_ms) {
        char f[40], t[40];
        format_time(from_ms, f, sizeof f);
        format_time(to_ms, t, sizeof t);
        snprintf(err, errlen, "--from (%s) must be before --to (%s): the range [from, to) is empty", f, t);
        return -1;
    }
    rd_kafka_t *rk = new_consumer(c, err, errlen);
    if (!rk) return -1;
    int rc = 0;
    for (int t = 0; t < 3 && rc == 0; t++) {
        int seen = 0;
        for (int u = 0; u < t; u++) seen |= strcmp(c->topic[u], c->topic[t]) == 0;
        if (!seen) rc = add_topic(rk, c, t, plan, err, errlen);
    }
    if (rc == 0) qsort(plan->part, (size_t)plan->n, sizeof *plan->part, by_topic_partition);
    for (int i = 0; i < plan->n && rc == 0; i++) {
        fr_backfill_partition *bp = &plan->part[i];
        rd_kafka_resp_err_t e =
            rd_kafka_query_watermark_offsets(rk, bp->topic, bp->partition, &bp->marks.low, &bp->marks.high, 10000);
        if (e) {
            snprintf(err, errlen, "kafka: cannot read the offsets of %s[%" PRId32 "] from %s: %s", bp->topic,
                     bp->partition, c->brokers, rd_kafka_err2str(e));
            rc = -1;
        }
    }
    if (rc == 0) rc = lookup_times(rk, plan, from_ms, 0, err, errlen);
    if (rc == 0 && to_ms >= 0) rc = lookup_times(rk, plan, to_ms, 1, err, errlen);
    rd_kafka_destroy(rk);
    if (rc != 0) fr_backfill_plan_free(plan);
    return rc;
}

void fr_backfill_plan_free(fr_backfill_plan *plan)
{
    free(plan->part);
    plan->part = NULL;
    plan->n = 0;
}

/* ---- reading ------------------------------------------------------------------------------ */

typedef struct {
    char name[FR_SOURCE_NAME_MAX];
    int64_t start, end;
    int active; /* assigned and not yet at its end */
} range;

typedef struct {
    fr_pipeline *p;
    rd_kafka_t *rk;
    const fr_backfill_plan *plan;
    range *r;
    int remaining;
} reader;

static int find_partition(const fr_backfill_plan *plan, const char *topic, int32_t partition)
{
    for (int i = 0; i < plan->n; i++)
        if (plan->part[i].partition == partition && strcmp(plan->part[i].topic, topic) == 0) return i;
    return -1;
}

/* A partition reached its range's end: its offset moves there (the last offsets of a range may
 * hold no message: transaction markers, compaction), it stops holding the watermark, and its
 * fetching stops. -1 when the join failed. */
static int finish(reader *rd, int i)
{
    range *r = &rd->r[i];
    r->active = 0;
    rd->remaining--;
    fr_pipeline_source_advance(rd->p, r->name, r->end);
    fr_pipeline_source_idle(rd->p, r->name, 1);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, rd->plan->part[i].topic, rd->plan->part[i].partition);
    rd_kafka_pause_partitions(rd->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    return fr_pipeline_tick(rd->p);
}

/* Errors after which a partition's range cannot be read: anything else is the client's to retry. */
static int unreadable(rd_kafka_resp_err_t e)
{
    return e == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET || e == RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE ||
           e == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART || e == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION ||
           e == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC || e == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED;
}

static int stop_requested(const sigset_t *set)
{
    if (!set) return 0;
    sigset_t pending;
    sigpending(&pending);
    for (int s = 1; s < 32; s++)
        if (sigismember(set, s) == 1 && sigismember(&pending, s) == 1) return 1;
    return 0;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Registers every partition (so the watermark waits for all) in its topic's format, works out each
 * range against the state, and says what is skipped. The assignment of the ranges left to read into *assign. */
static int prepare(reader *rd, const fr_config *c, const fr_backfill_opts *o, fr_backfill_stats *st,
                   rd_kafka_topic_partition_list_t *assign, char *err, size_t errlen)
{
    const fr_backfill_plan *plan = rd->plan;
    for (int i = 0; i < plan->n; i++) {
        const fr_backfill_partition *bp = &plan->part[i];
        range *r = &rd->r[i];
        int64_t stored = -1;
        fr_kafka_source_name(r->name, sizeof r->name, bp->topic, bp->partition);
        if (fr_pipeline_register_source(rd->p, r->name, &stored) != 0) {
            snprintf(err, errlen, "too many sources in one state (limit %d)", FR_MAX_SOURCES);
            return -1;
        }
        fr_pipeline_set_source_format(rd->p, r->name, fr_config_topic_format(c, bp->topic));
        /* as the daemon does (fr_kafka.c): a partition holds back only its own join group */
        fr_pipeline_bind_source(rd->p, r->name, bp->partition);
        fr_backfill_kind k = fr_backfill_range(&bp->marks, plan->to_ms >= 0, stored, &r->start, &r->end);
        st->partitions[k]++;
        if (k == FR_BACKFILL_READ || k == FR_BACKFILL_RESUME) {
            r->active = 1;
            rd->remaining++;
            st->to_read += (uint64_t)(r->end - r->start);
            rd_kafka_topic_partition_list_add(assign, bp->topic, bp->partition)->offset = r->start;
        } else {
            fr_pipeline_source_advance(rd->p, r->name, r->end);
            fr_pipeline_source_idle(rd->p, r->name, 1);
        }
        if (!o->log) continue;
        if (k == FR_BACKFILL_RESUME)
            fprintf(o->log, "freshet replay: %s: resuming at offset %" PRId64 " (range ends at %" PRId64 ")\n", r->name,
                    r->start, r->end);
        else if (k == FR_BACKFILL_DONE)
            fprintf(o->log,
                    "freshet replay: %s: the state is at offset %" PRId64 ", at or past this range's end %" PRId64
                    ": nothing to read (never twice)\n",
                    r->name, stored, r->end);
        else if ((k == FR_BACKFILL_READ || k == FR_BACKFILL_EMPTY) && stored >= 0 && stored < r->start)
            fprintf(o->log,
                    "freshet replay: %s: the state is at offset %" PRId64 " and the range starts at %" PRId64
                    ": offsets %" PRId64 "..%" PRId64 " (before --from) are skipped\n",
                    r->name, stored, r->start, stored, r->start - 1);
    }
    return 0;
}

int fr_backfill_run(fr_pipeline *p, const fr_config *c, const fr_backfill_plan *plan, const fr_backfill_opts *o,
                    fr_backfill_stats *st, char *err, size_t errlen)
{
    memset(st, 0, sizeof *st);
    reader rd = {.p = p, .plan = plan, .r = calloc((size_t)(plan->n ? plan->n : 1), sizeof *rd.r)};
    rd_kafka_topic_partition_list_t *assign = rd_kafka_topic_partition_list_new(plan->n ? plan->n : 1);
    fr_progress pg;
    memset(&pg, 0, sizeof pg); /* quiet until the ranges are known */
    int rc = 0;
    if (!rd.r) {
        snprintf(err, errlen, "out of memory for the backfill's ranges");
        rc = -1;
        goto out;
    }
    if ((rc = prepare(&rd, c, o, st, assign, err, errlen)) != 0) goto out;
    if (o->log)
        fprintf(o->log,
                "freshet replay: kafka backfill: %d partitions: %d to read, %d resumed, %d with nothing in the range, "
                "%d already read; %" PRIu64 " offsets to read\n",
                plan->n, st->partitions[FR_BACKFILL_READ], st->partitions[FR_BACKFILL_RESUME],
                st->partitions[FR_BACKFILL_EMPTY], st->partitions[FR_BACKFILL_DONE], st->to_read);
    if (fr_pipeline_tick(p) != 0) {
        snprintf(err, errlen, "the join failed: stopping before anything is lost");
        rc = -1;
        goto out;
    }
    if (rd.remaining == 0) goto out;
    if (!(rd.rk = new_consumer(c, err, errlen))) {
        rc = -1;
        goto out;
    }
    rd_kafka_resp_err_t e = rd_kafka_assign(rd.rk, assign);
    if (e) {
        snprintf(err, errlen, "kafka: cannot assign the backfill's partitions: %s", rd_kafka_err2str(e));
        rc = -1;
        goto out;
    }
    double last_status = now_seconds();
    /* on a terminal: messages read of those in the ranges, redrawn in place (fr_progress.h) */
    fr_progress_start_messages(&pg, o->log, 0, (int64_t)st->to_read, last_status);
    uint64_t logged_errors = 0;
    while (rd.remaining > 0) {
        if (stop_requested(o->stop_signals)) {
            fr_progress_break(&pg);
            if (o->log) fprintf(o->log, "freshet replay: stop requested: checkpointing and exiting\n");
            rc = FR_BACKFILL_STOPPED;
            break;
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rd.rk, 100);
        if (m) {
            int i = m->rkt ? find_partition(plan, rd_kafka_topic_name(m->rkt), m->partition) : -1;
            range *r = i >= 0 ? &rd.r[i] : NULL;
            int failed = 0;
            if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                /* m->offset is the partition's end; below the range's end, the rest is not readable yet
                 * (an open transaction under read_committed): wait for it */
                if (r && r->active && m->offset >= r->end) failed = finish(&rd, i) != 0;
            } else if (m->err) {
                if (r && unreadable(m->err)) {
                    snprintf(err, errlen,
                             "kafka: %s cannot be read in its range [%" PRId64 ", %" PRId64 "): %s (deleted by retention "
                             "since the backfill was planned?)",
                             r->name, r->start, r->end, rd_kafka_message_errstr(m));
                    rd_kafka_message_destroy(m);
                    rc = FR_BACKFILL_UNREADABLE;
                    break;
                }
                if (o->log && logged_errors++ < 10) {
                    fr_progress_break(&pg);
                    fprintf(o->log, "freshet replay: kafka: %s\n", rd_kafka_message_errstr(m));
                }
            } else if (r && r->active) {
                if (m->offset >= r->end) {
                    failed = finish(&rd, i) != 0; /* the range's last offsets held no message */
                } else {
                    if (fr_pipeline_message(p, r->name, m->offset + 1, m->payload, m->len, err, errlen) != 0) {
                        rd_kafka_message_destroy(m);
                        rc = -1;
                        break;
                    }
                    st->read++;
                    if (m->offset + 1 >= r->end) failed = finish(&rd, i) != 0;
                }
            }
            rd_kafka_message_destroy(m);
            if (failed) {
                snprintf(err, errlen, "the join failed: stopping before anything is lost (the last checkpoint is intact)");
                rc = -1;
                break;
            }
        }
        if (fr_pipeline_maybe_checkpoint(p, err, errlen) != 0) {
            rc = -1;
            break;
        }
        double now = now_seconds();
        if (o->log && c->status_every_seconds > 0 && now - last_status >= c->status_every_seconds) {
            fr_progress_break(&pg);
            char extra[96];
            snprintf(extra, sizeof extra, "backfill=%" PRIu64 "/%" PRIu64, st->read, st->to_read);
            fr_pipeline_status_line(p, o->log, extra);
            last_status = now;
        }
        fr_progress_update(&pg, (int64_t)st->read, st->read, fr_pipeline_watermark(p), now, 0);
    }
    if (rc >= 0) fr_progress_update(&pg, (int64_t)st->read, st->read, fr_pipeline_watermark(p), now_seconds(), 1);
    fr_progress_break(&pg);
out:
    if (rd.rk) {
        rd_kafka_consumer_close(rd.rk);
        rd_kafka_destroy(rd.rk);
    }
    rd_kafka_topic_partition_list_destroy(assign);
    free(rd.r);
    return rc;
}
