/* fr_groups: the join partitioned by impression id into groups, and the merge of their samples.
 *
 * Group g holds the impressions whose id falls in partition g (fr_groups_partition: murmur2 of the
 * id, the partitioner of librdkafka's "murmur2_random" and of Java's default producer, modulo the
 * group count), so one group's join never needs another's events. Each group is one fr_join with
 * its own watermark (the caller moves it: fr_groups_advance), its own timers and its own lateness
 * decisions. What a group emits waits in a merge buffer; fr_groups_release hands the caller, in
 * the total order (key, id bytes, timer kind, group), every buffered sample whose key is below the
 * frontier the caller passes (the minimum of the groups' watermarks: a k-way merge).
 *
 * The key is the sample's deadline, or the group's watermark before the advance that fired it when
 * that is later (a timer armed behind its group's watermark, e.g. the copy at a late click's ts).
 * Every released key is below every group's watermark, and a later sample's key is at least its
 * group's watermark, so the merged sequence never goes back and depends only on each group's own
 * input: not on how the groups' inputs interleave, nor on whether they run in one fr_groups.
 *
 * Persistence: each group's join is checkpointed as an fr_join (fr_groups_join); the merge buffer
 * (emitted, not yet released: the "channel state") with fr_groups_export_buffer and
 * fr_groups_import_buffer. Stored bytes are untrusted.
 * Ownership: fr_groups_create allocates the joins and the buffer; fr_groups_free releases all.
 * Not thread-safe. */
#ifndef FR_GROUPS_H
#define FR_GROUPS_H

#include <stddef.h>
#include <stdint.h>

#include "fr_join.h"

enum { FR_GROUPS_MAX = 256 };

/* Kafka's murmur2 (seed 0x9747b28c) of key; fr_groups_partition: (murmur2 & 0x7fffffff) mod n,
 * exactly what librdkafka's partitioner "murmur2_random" (and Java's DefaultPartitioner) assign to a
 * keyed message on a topic of n partitions. The checkpoint names this function "murmur2". */
uint32_t fr_groups_murmur2(const void *key, size_t len);
int fr_groups_partition(const char *id, size_t id_len, int n);

typedef struct fr_groups fr_groups;

/* A released sample's origin: its impression id (valid during the callback only), its merge key,
 * the join's timer kind, final = 1 for the impression's last sample, its group. */
typedef struct {
    const char *id;
    size_t id_len;
    int64_t key;
    int order;
    int final;
    int group;
} fr_groups_origin;
typedef void (*fr_groups_emit_fn)(const fr_sample *s, const fr_groups_origin *o, void *ctx);

/* n groups in [1, FR_GROUPS_MAX], each an fr_join of config c. NULL when out of memory or when
 * fr_join_create refuses c. */
fr_groups *fr_groups_create(const fr_join_config *c, int n);
void fr_groups_free(fr_groups *g);
int fr_groups_count(const fr_groups *g);
/* Group i's join (counters, persistence, spilling); borrowed. */
fr_join *fr_groups_join(fr_groups *g, int i);
const fr_join *fr_groups_join_const(const fr_groups *g, int i);

/* Feeds ev to group i (the caller routed it: fr_groups_partition). fr_join_add's contract. */
int fr_groups_add(fr_groups *g, int i, const fr_event *ev);
/* Moves group i's watermark to wm (never back); what it emits goes to the merge buffer.
 * fr_join_advance's contract (-1: a spilled entry could not be read back, fr_groups_error).
 * Also -1 when the buffer cannot grow (out of memory): nothing is lost, the group stays where it
 * was. */
int fr_groups_advance(fr_groups *g, int i, int64_t wm);
/* Hands emit every buffered sample with key < frontier, in merge order; returns how many. */
size_t fr_groups_release(fr_groups *g, int64_t frontier, fr_groups_emit_fn emit, void *ctx);
size_t fr_groups_buffered(const fr_groups *g);
/* The smallest watermark of the groups' joins (INT64_MIN before any moved). */
int64_t fr_groups_watermark(const fr_groups *g);
/* The sum of the groups' counters (recomputed on each call). */
const fr_join_counters *fr_groups_counters(const fr_groups *g);
size_t fr_groups_entry_count(const fr_groups *g);
size_t fr_groups_cached_count(const fr_groups *g);
/* The last read-back failure of any group, or "out of memory" for the buffer; NULL when none. */
const char *fr_groups_error(const fr_groups *g);

/* The merge buffer: u32 n, then n items in merge order: u16 group, i64 key, u8 order, u8 final,
 * u16 id_len, the id, a sample record (fr_sample_codec.h). export: the size (written when cap is
 * enough). import (into a restored fr_groups, after its joins' metas): 0, or -1 with the reason in
 * why: cut short, a group out of range, an id empty or over FR_ID_MAX or not in that group's
 * partition, a timer kind or flag out of range, a key not below its group's watermark, items out of
 * order, a sample record the decoder refuses or check refuses (check may be NULL). */
typedef int (*fr_groups_check_fn)(const fr_sample *s, char *why, size_t whylen, void *ctx);
size_t fr_groups_export_buffer(const fr_groups *g, void *buf, size_t cap);
int fr_groups_import_buffer(fr_groups *g, const void *buf, size_t len, fr_groups_check_fn check, void *ctx,
                            char *why, size_t whylen);

#endif
