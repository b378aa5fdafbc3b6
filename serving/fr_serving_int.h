/* fr_serving_int: the inside of the public serving API's impression handle, for Freshet's own
 * tools (`freshet pull` compares a served score with a checkpoint's model on the same features).
 * Never installed: include/freshet_serving.h keeps the handle opaque. */
#ifndef FR_SERVING_INT_H
#define FR_SERVING_INT_H

#include <stdint.h>

#include "fr_event.h"
#include "fr_sample.h"
#include "freshet_serving.h"

struct freshet_impression {
    char id[FR_ID_MAX + 1]; /* NUL-terminated; "" unless decoded */
    int32_t scenario;
    fr_features f;
};

#endif
