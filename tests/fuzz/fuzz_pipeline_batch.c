/* The pipeline's blob "batch" (the sample limits, a count and sample records, decoded by
 * fr_pipeline_batch_decode as restoring does, each sample accepted by fr_pipeline_check_sample)
 * under the default configuration; what it accepts keeps the check's promises, and the model trains
 * on it. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fr_pipeline.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fr_config *c = malloc(sizeof *c);
    if (!c) return 0;
    fr_config_defaults(c);
    fuzz_model_config(&c->model); /* the seeds' batch size and a small model */
    c->model.n_cat = c->schema.n_cat, c->model.n_num = c->schema.n_num, c->model.n_multi = c->schema.n_multi;
    c->model.n_scenarios = c->schema.n_scenarios;
    fr_sample *batch = malloc((size_t)c->model.batch_size * sizeof *batch);
    char why[256];
    const int n = batch ? fr_pipeline_batch_decode(data, size, batch, c->model.batch_size, c->schema.n_scenarios, why,
                                                   sizeof why)
                        : -1;
    if (batch) {
        FUZZ_CHECK(n >= 0 || why[0] != '\0');
        const int ok = n > 0;
        if (ok) {
            for (int i = 0; i < n; i++) {
                FUZZ_CHECK(batch[i].scenario >= 0 && batch[i].scenario < c->schema.n_scenarios);
                FUZZ_CHECK(batch[i].kind >= 0 && batch[i].kind < FR_SAMPLE_NKINDS);
                for (int t = 0; t < FR_NTASKS; t++)
                    FUZZ_CHECK(isfinite(batch[i].weight[t]) && batch[i].weight[t] >= 0);
            }
            char err[256];
            fr_model *m = fr_model_create(&c->model, err, sizeof err);
            FUZZ_CHECK(m != NULL);
            float (*preds)[FR_NTASKS] = malloc((size_t)n * sizeof *preds);
            if (preds) fr_model_train(m, batch, n, preds);
            free(preds);
            fr_model_free(m);
        }
    }
    free(batch);
    free(c);
    return 0;
}
