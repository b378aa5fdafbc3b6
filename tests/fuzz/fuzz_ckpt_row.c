/* One checkpoint row (fr_ckpt_decode_row) into the fuzz model, which then scores and trains on
 * it. Input: optimizer byte (bit 0: FTRL), the 13-byte "E" key, the value. */
#include <stdint.h>

#include "fr_ckpt.h"
#include "fuzz_util.h"

enum { ROW_KEY_BYTES = 13 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 + ROW_KEY_BYTES) return 0;
    fr_model_config cfg;
    fuzz_model_config(&cfg);
    cfg.emb_optimizer = data[0] & 1;
    char err[256];
    fr_model *m = fr_model_create(&cfg, err, sizeof err);
    FUZZ_CHECK(m != NULL);
    /* the seeds' model: version 2, clock 1700000000007 ms */
    fr_model_set_version(m, 1000);
    uint32_t table;
    if (fr_ckpt_decode_row(m, INT64_C(1700000000007), data + 1, ROW_KEY_BYTES, data + 1 + ROW_KEY_BYTES, size - 1 - ROW_KEY_BYTES, &table,
                           err, sizeof err) == 0) {
        FUZZ_CHECK(table < fr_model_table_count(m) && fr_model_row_count(m, table) == 1);
        fr_sample s = {.scenario = 1, .ts = 5000, .has_label = {1, 1, 1}, .weight = {1, 1, 1}, .label = {1, 0, 0}};
        fuzz_features(&s.f, 0);
        /* the stored row's key in its own field, so the update reaches it */
        uint64_t key = 0;
        for (int i = 0; i < 8; i++) key = (key << 8) | data[1 + 5 + i];
        if (table < (uint32_t)cfg.n_cat)
            s.f.cat[table] = key;
        else
            s.f.multi[table - (uint32_t)cfg.n_cat][0] = key;
        float pred[1][FR_NTASKS];
        fr_model_train(m, &s, 1, pred);
    } else {
        FUZZ_CHECK(err[0] != '\0');
    }
    fr_model_free(m);
    return 0;
}
