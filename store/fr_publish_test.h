/* fr_publish_test: fault and timing hooks of the publisher, for the tests only. Private to the
 * tests (never included by production code, never installed): production headers carry no test
 * hooks. The hooks are two setters on the handle, so the library is built once for both. */
#ifndef FR_PUBLISH_TEST_H
#define FR_PUBLISH_TEST_H

#include "fr_publish.h"

/* While on, every push stops with an error after writing the rows, the dense blob and the
 * manifest, before the flip -- the state a publisher that dies mid-push leaves behind. */
void fr_publish_test_fail_before_flip(fr_publisher *p, int on);
/* The lease TTL in ms instead of FR_PUBLISH_LEASE_MS. */
void fr_publish_test_lease_ms(fr_publisher *p, int ms);

#endif
