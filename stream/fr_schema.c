/* fr_schema: see fr_schema.h. */
#include "fr_schema.h"

#include <stdio.h>
#include <string.h>

#include "fr_hash.h"

void fr_field_init(fr_field *f, const char *name, fr_field_kind kind, fr_num_transform tr, int max_len)
{
    memset(f, 0, sizeof *f);
    snprintf(f->name, sizeof f->name, "%s", name);
    f->kind = kind;
    f->transform = tr;
    f->max_len = max_len;
    f->admit_after = 1;
    f->admit_width_log2 = 20;
    f->admit_half_life_ms = 86400000;
}

void fr_schema_defaults(fr_schema *s)
{
    memset(s, 0, sizeof *s);
    s->max_message_bytes = 65536;
    static const char *const scenarios[] = {"video", "browser", "music", "third_party"};
    for (size_t i = 0; i < sizeof scenarios / sizeof scenarios[0]; i++)
        snprintf(s->scenarios[s->n_scenarios++], FR_NAME_MAX, "%s", scenarios[i]);
    s->allow_new_scenarios = 0;

    /* the fields of the EVENTS.md example impression; hour is a number used as a category */
    static const char *const cats[] = {"user_id", "user_age", "device", "ad_id", "advertiser", "category", "hour"};
    for (size_t i = 0; i < sizeof cats / sizeof cats[0]; i++)
        fr_field_init(&s->fields[s->n_fields++], cats[i], FR_FIELD_CATEGORICAL, FR_NUM_IDENTITY, 0);
    fr_field_init(&s->fields[s->n_fields++], "price", FR_FIELD_NUMERIC, FR_NUM_LOG1P, 0);
    fr_field_init(&s->fields[s->n_fields++], "recent_ads", FR_FIELD_MULTI, FR_NUM_IDENTITY, 8);
    fr_schema_assign_slots(s);
}

void fr_schema_assign_slots(fr_schema *s)
{
    int ncat = 1, nnum = 0, nmulti = 0;
    for (int i = 0; i < s->n_fields; i++) {
        fr_field *f = &s->fields[i];
        f->hash = fr_hash_field(f->name);
        switch (f->kind) {
        case FR_FIELD_CATEGORICAL: f->slot = ncat++; break;
        case FR_FIELD_NUMERIC: f->slot = nnum++; break;
        case FR_FIELD_MULTI: f->slot = nmulti++; break;
        }
    }
    s->n_cat = ncat;
    s->n_num = nnum;
    s->n_multi = nmulti;
}

int fr_schema_scenario_index(const fr_schema *s, const char *name, size_t len)
{
    if (len >= FR_NAME_MAX)
        return -1;
    for (int i = 0; i < s->n_scenarios; i++)
        if (strlen(s->scenarios[i]) == len && memcmp(s->scenarios[i], name, len) == 0)
            return i;
    return -1;
}

int fr_schema_field_slot(const fr_schema *s, const char *name, fr_field_kind kind)
{
    int slot = kind == FR_FIELD_CATEGORICAL ? 1 : 0;
    for (int i = 0; i < s->n_fields; i++) {
        if (s->fields[i].kind != kind) continue;
        if (strcmp(s->fields[i].name, name) == 0) return slot;
        slot++;
    }
    return -1;
}
