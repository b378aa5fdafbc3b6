/* fr_manifest: the event contract in a published manifest (docs/redis-layout.md, "Manifest"), in
 * both directions: the trainer writes its "daemon" member (field list and scenarios) here, and a
 * reader takes from a manifest, besides the model, the contract to decode impressions with and the
 * serve transform. One implementation for the trainer, the serving library, `freshet score`,
 * `freshet pull` and `freshet inspect`, so they decode and calibrate alike.
 *
 * The manifest comes from Redis: everything is checked (kinds, names, limits, slots against the
 * model's sizes), and a refusal names the member. Pure functions, no allocation kept. */
#ifndef FR_MANIFEST_H
#define FR_MANIFEST_H

#include <jansson.h>
#include <stddef.h>

#include "fr_policy.h"
#include "fr_schema.h"

/* The decoder's schema of a manifest (a parsed manifest object): its daemon.fields and
 * daemon.scenarios, with slots assigned as the trainer assigned them (checked against each
 * field's "slot") and sizes checked against model_config. An "other" scenario means the trainer
 * allowed new scenarios: unknown names then score as "other". 0, or -1 with a message. */
int fr_manifest_schema(const json_t *manifest, fr_schema *out, char *err, size_t errlen);
/* The serve transform of a manifest: its "serve_transform" member, identity when absent (writers
 * before format version 2). -1 with a message for a name this reader does not know. */
int fr_manifest_serve_transform(const json_t *manifest, fr_serve_transform *out, char *err, size_t errlen);

/* The "daemon" member of the manifest, as the trainer writes it (and keeps in its checkpoint as the
 * blob "manifest"): the event contract -- scenarios, and each field's name, kind, slot, transform
 * and max_len -- as compact JSON text with sorted keys, which fr_manifest_schema reads back.
 * Caller frees with free(). */
char *fr_manifest_daemon_json(const fr_schema *s);
/* The names of a model's tables in table order (categorical slots, slot 0 = the scenario, then
 * multi-valued slots) from a "daemon" member's field list (JSON text); "tableN" where the text names
 * none (or daemon is NULL or not JSON). names holds n_cat + n_multi entries. */
void fr_manifest_table_names(const char *daemon, int n_cat, int n_multi, char names[][FR_NAME_MAX]);

#endif
