/* fr_store_util: byte-order helpers and the model configuration as JSON, shared by the checkpoint
 * (meta key) and the Redis manifest. Internal to store/.
 *
 * Every multi-byte number store/ writes is little-endian (or big-endian in RocksDB keys, so keys
 * sort by number), encoded byte by byte so the formats do not depend on the host.
 * 64-bit unsigned integers (seed, versions) go into JSON as decimal strings, because JSON readers
 * in many languages lose precision above 2^53. */
#ifndef FR_STORE_UTIL_H
#define FR_STORE_UTIL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fr_model.h"

static inline void fr_put_u16le(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}
static inline void fr_put_u32le(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static inline void fr_put_u64le(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static inline void fr_put_u32be(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * (3 - i)));
}
static inline void fr_put_u64be(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * (7 - i)));
}
static inline uint16_t fr_get_u16le(const unsigned char *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t fr_get_u32le(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}
static inline uint64_t fr_get_u64le(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}
static inline uint32_t fr_get_u32be(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v = (v << 8) | p[i];
    return v;
}
static inline uint64_t fr_get_u64be(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = (v << 8) | p[i];
    return v;
}
/* IEEE-754 binary32, little-endian. */
static inline void fr_put_f32le(unsigned char *p, float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    fr_put_u32le(p, u);
}
static inline float fr_get_f32le(const unsigned char *p)
{
    uint32_t u = fr_get_u32le(p);
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}
/* n floats to/from little-endian bytes (4n bytes). */
void fr_f32le_encode(unsigned char *dst, const float *src, size_t n);
void fr_f32le_decode(float *dst, const unsigned char *src, size_t n);

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
