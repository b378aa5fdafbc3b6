/* fr_bytes: the one byte codec. Every multi-byte number Freshet stores (checkpoint records, join
 * entries, helper heads, Redis values) goes through here.
 *
 * Numbers are little-endian, or big-endian in RocksDB keys so keys sort by number, and are encoded
 * byte by byte so the formats do not depend on the host. Floats are IEEE-754 bit patterns.
 *
 * Two ways in: fixed-offset put/get on a buffer the caller has sized, and a bounded cursor
 * (fr_bytes_out / fr_bytes_in) that remembers an overrun instead of writing or reading past the end,
 * so a decoder checks once, after the last field. Header only; no allocation. */
#ifndef FR_BYTES_H
#define FR_BYTES_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* ---- fixed offsets ---- */

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
/* IEEE-754 binary32 and binary64, little-endian. */
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
static inline void fr_put_f64le(unsigned char *p, double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    fr_put_u64le(p, u);
}
static inline double fr_get_f64le(const unsigned char *p)
{
    uint64_t u = fr_get_u64le(p);
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}
/* n floats to/from little-endian bytes (4n bytes). */
static inline void fr_f32le_encode(unsigned char *dst, const float *src, size_t n)
{
    for (size_t i = 0; i < n; i++) fr_put_f32le(dst + 4 * i, src[i]);
}
static inline void fr_f32le_decode(float *dst, const unsigned char *src, size_t n)
{
    for (size_t i = 0; i < n; i++) dst[i] = fr_get_f32le(src + 4 * i);
}

/* ---- bounded cursors ----
 * A write or read that does not fit sets `overrun`, moves nothing and leaves the rest of the
 * buffer alone (reads return 0); every later call is a no-op. */

typedef struct {
    unsigned char *p;
    size_t left;
    int overrun;
} fr_bytes_out;

typedef struct {
    const unsigned char *p;
    size_t left;
    int overrun;
} fr_bytes_in;

static inline fr_bytes_out fr_bytes_out_init(void *buf, size_t cap)
{
    fr_bytes_out o = {(unsigned char *)buf, buf ? cap : 0, 0};
    return o;
}
static inline fr_bytes_in fr_bytes_in_init(const void *buf, size_t len)
{
    fr_bytes_in r = {(const unsigned char *)buf, buf ? len : 0, 0};
    return r;
}

/* Reserves n bytes: their address, or NULL (and overrun set) when they do not fit. */
static inline unsigned char *fr_out_take(fr_bytes_out *o, size_t n)
{
    if (o->overrun || n > o->left) {
        o->overrun = 1;
        return NULL;
    }
    unsigned char *at = o->p;
    o->p += n;
    o->left -= n;
    return at;
}
static inline const unsigned char *fr_in_take(fr_bytes_in *r, size_t n)
{
    if (r->overrun || n > r->left) {
        r->overrun = 1;
        return NULL;
    }
    const unsigned char *at = r->p;
    r->p += n;
    r->left -= n;
    return at;
}

static inline void fr_out_u8(fr_bytes_out *o, uint8_t v)
{
    unsigned char *p = fr_out_take(o, 1);
    if (p) *p = v;
}
static inline void fr_out_u16le(fr_bytes_out *o, uint16_t v)
{
    unsigned char *p = fr_out_take(o, 2);
    if (p) fr_put_u16le(p, v);
}
static inline void fr_out_u32le(fr_bytes_out *o, uint32_t v)
{
    unsigned char *p = fr_out_take(o, 4);
    if (p) fr_put_u32le(p, v);
}
static inline void fr_out_u64le(fr_bytes_out *o, uint64_t v)
{
    unsigned char *p = fr_out_take(o, 8);
    if (p) fr_put_u64le(p, v);
}
static inline void fr_out_f32le(fr_bytes_out *o, float v)
{
    unsigned char *p = fr_out_take(o, 4);
    if (p) fr_put_f32le(p, v);
}
static inline void fr_out_f64le(fr_bytes_out *o, double v)
{
    unsigned char *p = fr_out_take(o, 8);
    if (p) fr_put_f64le(p, v);
}

static inline uint8_t fr_in_u8(fr_bytes_in *r)
{
    const unsigned char *p = fr_in_take(r, 1);
    return p ? *p : 0;
}
static inline uint16_t fr_in_u16le(fr_bytes_in *r)
{
    const unsigned char *p = fr_in_take(r, 2);
    return p ? fr_get_u16le(p) : 0;
}
static inline uint32_t fr_in_u32le(fr_bytes_in *r)
{
    const unsigned char *p = fr_in_take(r, 4);
    return p ? fr_get_u32le(p) : 0;
}
static inline uint64_t fr_in_u64le(fr_bytes_in *r)
{
    const unsigned char *p = fr_in_take(r, 8);
    return p ? fr_get_u64le(p) : 0;
}
static inline int64_t fr_in_i64le(fr_bytes_in *r) { return (int64_t)fr_in_u64le(r); }
static inline float fr_in_f32le(fr_bytes_in *r)
{
    const unsigned char *p = fr_in_take(r, 4);
    return p ? fr_get_f32le(p) : 0.0f;
}
static inline double fr_in_f64le(fr_bytes_in *r)
{
    const unsigned char *p = fr_in_take(r, 8);
    return p ? fr_get_f64le(p) : 0.0;
}

#endif
