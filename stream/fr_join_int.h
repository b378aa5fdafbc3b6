/* fr_join_int: the joiner's private structures, shared by fr_join.c (handlers, timers, spilling)
 * and fr_join_codec.c (the stored entry and meta formats). Not for use outside stream/fr_join*.c. */
#ifndef FR_JOIN_INT_H
#define FR_JOIN_INT_H

#include <stddef.h>
#include <stdint.h>

#include "fr_join.h"

/* Entry format 2: format 1 also held the learner's prior (now the pipeline's, daemon/fr_priors.h). */
enum { ENTRY_FORMAT_VERSION = 2, META_FORMAT_VERSION = 1 };

/* Timer kinds. The order is the tie-break for equal (deadline, id): a click's delayed-feedback
 * copies come before its CTR sample at the same instant, and all of them before its final one. */
typedef enum {
    TIMER_ORPHAN = 0,
    TIMER_EARLY,        /* fnw/fnc FAKE_NEG, oracle ORACLE: at click ts */
    TIMER_CLICK_WINDOW,
    TIMER_OBS_WINDOW,   /* WINDOW: click ts + w_o */
    TIMER_DELAYED_POS,  /* DELAYED_POS: max(conv ts, first copy's ts) */
    TIMER_REAL_NEG,     /* REAL_NEG: click ts + w_rn */
    TIMER_ATTRIBUTION,  /* ATTRIBUTION (wait) / MATURED */
    TIMER_NKINDS
} timer_kind;

/* Entry flags (persisted: the values are part of the entry format). */
enum {
    F_IMP = 1u << 0,          /* impression accepted: imp_ts, scenario, sample_rate, f are valid */
    F_CLICK_SEEN = 1u << 1,   /* a click was accepted into this entry (dedup) */
    F_CLICKED = 1u << 2,      /* counted click: click_ts */
    F_CLICK_HELD = 1u << 3,   /* click waiting for its impression: click_ts */
    F_CONV_SEEN = 1u << 4,    /* a conversion was accepted into this entry (dedup) */
    F_CONVERTED = 1u << 5,    /* counted conversion: conv_ts, conv_value */
    F_CONV_HELD = 1u << 6,    /* conversion waiting for its click or impression: conv_ts, conv_value */
    F_CTR_EMITTED = 1u << 7,  /* the CLICK_WINDOW sample is out */
    F_PRIOR = 1u << 8,        /* format 1 only (a prior in the entry): refused in format 2 */
    F_EARLY_DONE = 1u << 9,   /* the FAKE_NEG / ORACLE copy is out */
    F_WINDOW_DONE = 1u << 10, /* the WINDOW copy is out */
    F_WINDOW_POS = 1u << 11,  /* ... and it was an in-window positive */
    F_DP_DONE = 1u << 12,     /* the DELAYED_POS copy is out */
    F_RN_DONE = 1u << 13,     /* the REAL_NEG copy is out */
    F_KNOWN = (1u << 14) - 1
};

#define NO_POS UINT32_MAX

/* What only emitting a sample needs. It can be dropped from memory ("spilled") once the store
 * holds the entry as it is (clean and persisted), and is read back before the entry changes or
 * emits; the rest of the entry stays, so timers, dedup and the dirty set never touch the store. */
typedef struct {
    double conv_value;
    float sample_rate;
    int32_t scenario;
    fr_features f;
} entry_body;

/* Every pending click keeps one of these in memory even when spilled, so it stays small: the
 * hash lives in the map slot only, and the allocation stops at the id (entry_create). */
typedef struct fr_join_entry fr_join_entry;
struct fr_join_entry {
    int64_t imp_ts, click_ts, conv_ts;
    entry_body *body;                /* NULL: spilled (or a tombstone) */
    /* Intrusive dirty list: marking dirty never allocates. */
    fr_join_entry *dirty_prev, *dirty_next;
    uint32_t heap_pos[TIMER_NKINDS]; /* NO_POS = timer not armed */
    uint16_t flags;
    uint8_t dirty;
    uint8_t persisted; /* the last exported dirty set holds this id: deleting it needs a tombstone */
    uint8_t tomb;      /* deleted, kept only until clear_dirty exports the deletion */
    uint16_t id_len;
    char id[];         /* id_len bytes + NUL */
};

typedef struct {
    uint64_t hash;
    fr_join_entry *e; /* NULL = empty slot */
} map_slot;

typedef struct {
    int64_t deadline;
    fr_join_entry *e;
    uint32_t kind;
} timer;

struct fr_join {
    fr_join_config cfg;
    const fr_policy *pol;   /* fr_policy_get(cfg.policy) */
    int64_t watermark;
    fr_join_counters n;

    map_slot *slots;  /* open addressing, linear probing; holds live entries and tombstones */
    size_t cap;       /* power of two */
    size_t used;      /* entries + tombstones */
    size_t live;

    timer *heap;
    size_t heap_len, heap_cap;

    fr_join_entry *dirty_head, *dirty_tail;
    fr_join_origin origin;   /* the sample in the emit callback: fr_join_emitting */

    fr_join_store store;     /* store.get NULL: never spill */
    size_t cached;           /* entry bodies in memory */
    size_t spill_hand;       /* where the next fr_join_spill sweep starts in slots */
    char err[256];
};

/* ---- persistence ----
 * Entry format v2, little-endian, fixed 333 bytes:
 *   u8 version, u16 flags, i64 imp_ts, i32 scenario, f32 sample_rate, i64 click_ts,
 *   i64 conv_ts, f64 conv_value, u64 cat[16], f32 num[8], u64 multi[2][8], u8 multi_len[2]
 * Timers are not stored: they follow from the state (policy_deadline). */

enum {
    ENTRY_BYTES = 1 + 2 + 8 + 4 + 4 + 8 + 8 + 8 + 8 * FR_MAX_CAT + 4 * FR_MAX_NUM +
                  8 * FR_MAX_MULTI * FR_MAX_MULTI_LEN + FR_MAX_MULTI
};

/* A stored entry, decoded: the stub fields and the body. */
typedef struct {
    uint16_t flags;
    int64_t imp_ts, click_ts, conv_ts;
    entry_body body;
} parsed_entry;

/* The stored form of a live entry (ENTRY_BYTES bytes). */
void fr_join_entry_serialise(const fr_join_entry *e, uint8_t out[ENTRY_BYTES]);
/* Decodes a stored entry: 0, or -1 with the reason in *why when it is malformed (wrong size or
 * version, impossible flags, a multi length or sample rate out of range) or holds a value no event
 * produces (a scenario outside [0, n_scenarios) when n_scenarios > 0, a float that is not finite,
 * or a format-1 entry, which held the learner's prior). */
int fr_join_entry_parse(const void *bytes, size_t len, int n_scenarios, parsed_entry *out, const char **why);

#endif
