/* fr_sample_codec: a sample's stored record (the pipeline's pending mini-batch, blob "batch" of
 * checkpoint format 3; docs/checkpoint-format.md), little-endian, explicit widths:
 *   kind u8, scenario u32, ts i64,
 *   per task (FR_NTASKS): has_label u8, label f32, weight f32;
 *   has_prior u8, prior f32 x FR_NTASKS, in_window u8,
 *   cat u64 x FR_MAX_CAT, num f32 x FR_MAX_NUM, per multi slot (FR_MAX_MULTI): len u8, id u64 x len
 * Only the used ids of a multi-valued slot are stored (a restored sample has zeros after them).
 * The limits record (FR_NTASKS, FR_MAX_CAT, FR_MAX_NUM, FR_MAX_MULTI, FR_MAX_MULTI_LEN, u8 each)
 * heads a list of samples, so a build with other limits refuses it by name instead of misreading.
 *
 * The decoder checks the record's shape only (lengths, multi_len within its slots); what the values
 * may be (kind, scenario, labels ...) is the caller's rule (fr_pipeline_check_sample).
 * Ownership: none (no allocation). Thread-safe. */
#ifndef FR_SAMPLE_CODEC_H
#define FR_SAMPLE_CODEC_H

#include <stddef.h>

#include "fr_sample.h"

enum { FR_SAMPLE_LIMITS_BYTES = 5 };

/* The record's size; written only when cap is enough (call with NULL, 0 to size it). */
size_t fr_sample_encode(const fr_sample *s, void *buf, size_t cap);
/* The bytes the record took from buf, or -1 with the reason in *why (cut short, a multi_len over
 * FR_MAX_MULTI_LEN). */
long fr_sample_decode(fr_sample *s, const void *buf, size_t len, const char **why);
/* The limits record (FR_SAMPLE_LIMITS_BYTES) and its check: 0 when buf holds this build's limits,
 * else -1 with the difference in why. */
void fr_sample_limits_encode(unsigned char out[FR_SAMPLE_LIMITS_BYTES]);
int fr_sample_limits_check(const unsigned char in[FR_SAMPLE_LIMITS_BYTES], char *why, size_t whylen);

#endif
