/* fr_model_config: the model's configuration. Its schema is one table, fr_model_config.def; the
 * struct below, the defaults, the range checks, the restart rules, the one-line description, and
 * (through fr_model_field_*) the stored JSON of store/ and the config file's "model" keys of
 * daemon/ all come from it. Pure data, no I/O; the functions are thread-safe (the table is const). */
#ifndef FR_MODEL_CONFIG_H
#define FR_MODEL_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "fr_sample.h"

/* The struct: one member per line of the table, in its order (see fr_model_config.def for what
 * each key does). */
typedef struct {
#define FR_MC_INT(name, ...) int name;
#define FR_MC_REAL(name, ...) float name;
#define FR_MC_CHOICE(name, ...) int name;
#define FR_MC_SLOT(name, ...) int name;
#define FR_MC_SEED(name, ...) uint64_t name;
#include "fr_model_config.def"
} fr_model_config;

void fr_model_config_defaults(fr_model_config *c);
/* Returns 0, or -1 with a message naming the offending key ("model.n_levels: ...") when a value
 * is out of range or the sizes are inconsistent. fr_model_create calls it. */
int fr_model_config_validate(const fr_model_config *c, char *err, size_t errlen);
/* One line of key=value for the keys the table marks FR_MC_DESCRIBE (FTRL's only with FTRL): the
 * architecture and the main training settings, for logs and `freshet inspect` (under 512 bytes).
 * Returns snprintf's count. */
int fr_model_describe(const fr_model_config *c, char *buf, size_t len);
/* Restart rules (fr_model_retune). Returns 0 when every FR_MC_SHAPE key of c equals trained's,
 * else -1 with "model.<key>: the checkpoint was trained with X, the configuration says Y ...". */
int fr_model_config_same_shape(const fr_model_config *trained, const fr_model_config *c, char *err, size_t errlen);
/* The training settings (keys without FR_MC_SHAPE) that differ, as "model.lr_emb 0.3 -> 0.1, ..."
 * (empty when none; cut at cap, never mid-item). */
void fr_model_config_changes(const fr_model_config *from, const fr_model_config *to, char *out, size_t cap);

/* ---- The schema, for the code that stores or parses the keys by name. ----------------------- */

/* Every REAL key is at most this: a learning rate or a weight above it is a typo. */
#define FR_MC_REAL_MAX 1e6

typedef enum { FR_MC_K_INT, FR_MC_K_REAL, FR_MC_K_CHOICE, FR_MC_K_SLOT, FR_MC_K_SEED } fr_mc_kind;
enum {
    FR_MC_SHAPE = 1 << 0,     /* fixed for a model's life */
    FR_MC_DERIVED = 1 << 1,   /* not a key of the config file (follows from its fields and scenarios) */
    FR_MC_DESCRIBE = 1 << 2,  /* in fr_model_describe's line */
    FR_MC_LO_OPEN = 1 << 3,   /* lo itself is refused */
    FR_MC_HI_OPEN = 1 << 4,   /* hi itself is refused */
    FR_MC_WITH_ADAM = 1 << 5, /* the key matters only with dense_optimizer adam */
    FR_MC_WITH_FTRL = 1 << 6, /* ... only with emb_optimizer ftrl */
    FR_MC_WITH_DFUB = 1 << 7, /* ... only with dfub_heads > 0 */
};
enum { FR_MC_CATEGORICAL = 1, FR_MC_MULTI = 2 }; /* the kind of field a SLOT key names */

typedef struct {
    const char *name;         /* the C member, the stored JSON key and the file's "model.<name>" */
    fr_mc_kind kind;
    size_t offset;            /* in fr_model_config */
    double def;               /* the default (not for SLOT) */
    double lo, hi;            /* INT and CHOICE: lo..hi; REAL: see fr_model_config.def */
    unsigned flags;
    double absent;            /* a stored config without the key reads as this; NaN: the key is required */
    const char *const *names; /* CHOICE: the names of the values 0, 1, ..., NULL-terminated */
    int field_kind;           /* SLOT: FR_MC_CATEGORICAL or FR_MC_MULTI */
    const char *what;         /* SLOT: what the named field must be, for messages */
} fr_model_field;

int fr_model_field_count(void);
const fr_model_field *fr_model_field_at(int i);
/* The value of f in c as a double (exact for every kind but SEED, whose value is c's uint64_t). */
double fr_model_field_get(const fr_model_config *c, const fr_model_field *f);
/* Sets f in c from v (converted to the member's type; SEED: v must be a whole number >= 0). */
void fr_model_field_set(fr_model_config *c, const fr_model_field *f, double v);
uint64_t fr_model_field_get_u64(const fr_model_config *c, const fr_model_field *f); /* SEED */
void fr_model_field_set_u64(fr_model_config *c, const fr_model_field *f, uint64_t v);
/* 1 when f matters for c (its FR_MC_WITH_* component is on, or it has none). */
int fr_model_field_applies(const fr_model_field *f, const fr_model_config *c);
/* CHOICE: the value named name, or -1. */
int fr_model_field_choice(const fr_model_field *f, const char *name);

#endif
