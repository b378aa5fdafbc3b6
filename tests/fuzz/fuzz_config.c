/* Config loading (fr_config_load_string over the defaults): any text is refused with a message
 * or gives a configuration whose counts fit its arrays and whose model config validates. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fr_config.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    fr_config *c = malloc(sizeof *c);
    if (!c) {
        free(text);
        return 0;
    }
    fr_config_defaults(c);
    char err[512];
    if (fr_config_load_string(c, text, err, sizeof err) == 0) {
        FUZZ_CHECK(c->schema.n_scenarios > 0 && c->schema.n_scenarios <= FR_MAX_SCENARIOS);
        FUZZ_CHECK(c->schema.n_cat >= 1 && c->schema.n_cat <= FR_MAX_CAT && c->schema.n_num >= 0 && c->schema.n_num <= FR_MAX_NUM);
        FUZZ_CHECK(c->schema.n_multi >= 0 && c->schema.n_multi <= FR_MAX_MULTI);
        /* the scenario is categorical slot 0 without a field of its own */
        FUZZ_CHECK(c->schema.n_fields == c->schema.n_cat - 1 + c->schema.n_num + c->schema.n_multi);
        FUZZ_CHECK(c->model.n_scenarios == c->schema.n_scenarios);
        FUZZ_CHECK(fr_model_config_validate(&c->model, err, sizeof err) == 0);
        for (int i = 0; i < c->schema.n_fields; i++) FUZZ_CHECK(memchr(c->schema.fields[i].name, '\0', FR_NAME_MAX) != NULL);
    } else {
        FUZZ_CHECK(err[0] != '\0');
    }
    free(c);
    free(text);
    return 0;
}
