/* fr_model_json: the model as JSON -- its configuration, and the one description of a model
 * (configuration, tables, dense tensors) that both the checkpoint's meta key and the Redis manifest
 * are built from -- and the byte codec (base/fr_bytes.h) for the files that include it. Internal
 * to serving/ and store/.
 *
 * 64-bit unsigned integers (seed, versions) go into JSON as decimal strings, because JSON readers
 * in many languages lose precision above 2^53. */
#ifndef FR_MODEL_JSON_H
#define FR_MODEL_JSON_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fr_bytes.h"
#include "fr_model.h"

/* The model configuration as a JSON object with one member per fr_model_config field (the
 * field names; seed as a decimal string). Returns a new reference (json_decref it), NULL on OOM. */
json_t *fr_config_to_json(const fr_model_config *c);
/* Fills c from such an object; every member is required. -1 with a message naming the member. */
int fr_config_from_json(const json_t *o, fr_model_config *c, char *err, size_t errlen);

/* The description both stored formats share (docs/checkpoint-format.md, docs/redis-layout.md):
 *   {"model_config": {...}, "emb_dim": D,
 *    "tables": [{"id": T, "kind": "categorical" | "multi", "dim": D, "rows": R}, ...],
 *    "dense": {"count": N, "tensors": [{"name", "rows", "cols", "offset"}, ...]}}
 * row_counts: rows per table to record (NULL: the model's own counts). Each writer adds its own
 * members to the new object (json_decref it); NULL when out of memory. */
json_t *fr_model_describe_json(const fr_model *m, const size_t *row_counts);

/* A uint64 as a JSON decimal string (new reference), and back (-1 when absent or malformed). */
json_t *fr_json_u64(uint64_t v);
int fr_json_get_u64(const json_t *o, const char *key, uint64_t *v);
/* Parses a whole decimal uint64 from len bytes; -1 when not exactly a number. */
int fr_parse_u64(const char *s, size_t len, uint64_t *v);

#endif
