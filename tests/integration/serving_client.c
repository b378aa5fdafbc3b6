/* A serving team's program: scores EVENTS.md impressions (one JSON object per line on stdin)
 * with the model Freshet published, through the installed library only (freshet_serving.h,
 * pkg-config freshet_serving). Prints "score <id> scenario=<name> pctr=.. pcvr=.. pctcvr=.." per
 * impression, as `freshet score` does. Usage: serving_client HOST PORT PREFIX [LIMIT] */
#include <freshet_serving.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s HOST PORT PREFIX [LIMIT]\n", argv[0]);
        return 2;
    }
    long limit = argc > 4 ? atol(argv[4]) : 1000000;
    char err[512];
    freshet_serving *s = freshet_serving_open(argv[1], atoi(argv[2]), argv[3], err, sizeof err);
    if (!s || freshet_serving_load(s, err, sizeof err) != 0) {
        fprintf(stderr, "serving_client: %s\n", err);
        freshet_serving_close(s);
        return 1;
    }
    printf("version %" PRIu64 "\n", freshet_serving_version(s));
    freshet_impression *imp = freshet_impression_new();
    char line[65536];
    long scored = 0;
    int rc = imp ? 0 : 1;
    while (rc == 0 && scored < limit && fgets(line, sizeof line, stdin)) {
        size_t len = strcspn(line, "\n");
        if (freshet_serving_decode(s, line, len, imp, err, sizeof err) != 0) continue;
        freshet_scores sc;
        if (freshet_serving_score(s, imp, &sc, err, sizeof err) != 0) {
            fprintf(stderr, "serving_client: %s\n", err);
            rc = 1;
            break;
        }
        printf("score %s scenario=%s pctr=%.9g pcvr=%.9g pctcvr=%.9g\n", freshet_impression_id(imp),
               freshet_serving_scenario_name(s, freshet_impression_scenario(imp)), sc.pctr, sc.pcvr, sc.pctcvr);
        scored++;
    }
    freshet_impression_free(imp);
    freshet_serving_close(s);
    return rc;
}
