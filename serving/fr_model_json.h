/* fr_model_json: the model configuration as JSON, shared by the checkpoint (meta key) and the
 * Redis manifest, and the byte codec (base/fr_bytes.h) for the files of store/. Internal to store/.
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

/* A uint64 as a JSON decimal string (new reference), and back (-1 when absent or malformed). */
json_t *fr_json_u64(uint64_t v);
int fr_json_get_u64(const json_t *o, const char *key, uint64_t *v);
/* Parses a whole decimal uint64 from len bytes; -1 when not exactly a number. */
int fr_parse_u64(const char *s, size_t len, uint64_t *v);

#endif
