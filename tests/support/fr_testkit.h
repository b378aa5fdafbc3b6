/* fr_testkit: the fixtures several unit tests share -- a seeded random stream, a small model
 * configuration, synthetic features and labelled samples, a trained model, and the publish/serve
 * checks of test_publish.c and test_serving.c. Test code only (cmocka asserts on failure). */
#ifndef FR_TESTKIT_H
#define FR_TESTKIT_H

#include <stddef.h>
#include <stdint.h>

#include "fr_model.h"
#include "fr_publish.h"
#include "fr_reader.h"
#include "fr_sample.h"

/* splitmix64: the next value of the stream *s. */
uint64_t next_rand(uint64_t *s);
/* uniform in [0, 1), 24 bits */
float uniform01(uint64_t *s);

/* A model small enough to train in milliseconds: 3 categorical, 2 numeric and 1 multi field,
 * 2 scenarios, emb_dim 4, 2 experts of 8, towers of 4, batches of 16. */
void small_config(fr_model_config *c);
/* Features for c: categorical keys in vocab per slot, numerics in [0, 1), up to 3 multi values. */
void make_features(uint64_t *s, const fr_model_config *c, uint64_t vocab, fr_features *f);
/* n click-window samples from seed: features, a scenario, CTR and CVR labels that depend on
 * cat[0], weight 1 on every task. Sample i has event time i * ts_step. */
void make_samples(uint64_t seed, const fr_model_config *c, uint64_t vocab, int64_t ts_step, fr_sample *out, int n);
/* Trains m on n such samples, all at event time 0. */
void train(fr_model *m, int n, uint64_t seed, uint64_t vocab);
/* An untrained model with small_config (fails the test when it cannot be made). */
fr_model *new_model(void);

/* ---- publish and serve ---- */

/* The daemon part of the manifest the publish tests push. */
extern const char DAEMON_MANIFEST[];
/* One command on a throw-away connection to 127.0.0.1:port: the integer reply (or -1). */
long long redis_int(int port, const char *fmt, const char *arg);
/* Pushes m (with DAEMON_MANIFEST); asserts it published m's version and left nothing dirty. */
uint64_t push_ok(fr_publisher *p, fr_model *m);
/* The reader scores 100 impressions as the trainer predicts them (seen and unseen keys). */
void assert_reader_agrees(fr_reader *r, const fr_model *m, uint64_t seed);
/* The reader holds as many rows per table as the model. */
void assert_row_counts(fr_reader *r, const fr_model *m);

#endif
