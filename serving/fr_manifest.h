/* fr_manifest: what a reader takes from a published manifest (docs/redis-layout.md, "Manifest")
 * besides the model: the event contract to decode impressions with (the "daemon" member: field
 * list and scenarios) and the serve transform. One implementation for the serving library,
 * `freshet score` and `freshet pull`, so they decode and calibrate alike.
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

#endif
