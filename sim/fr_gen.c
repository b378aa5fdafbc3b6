/* fr_gen: the synthetic world and its event writer (see fr_gen.h for the contract).
 *
 * Pipeline, all in event time and bounded memory:
 *   impressions are drawn in time order (sorted uniforms mapped through a diurnal intensity);
 *   each impression decides its click and conversion at once (so the truth line is final) and
 *   pushes them into a pending min-heap keyed by (ts, seq);
 *   before an impression is written, every pending event due at or before it is written, and a
 *   click updates its user's behaviour list at that moment, so recent_ads only ever holds clicks
 *   that happened before the impression that shows them;
 *   with reorder_ms > 0 the ts-ordered stream passes through a second heap keyed by arrival time.
 * Independent PRNG streams (world, impressions, jitter, duplicates) keep the world and the
 * event content unchanged when only the jitter or the duplicate rate changes. */
#include "fr_gen.h"
#include "fr_gen_int.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

enum { N_SCEN = 4, N_CAT = 20, N_AGE = 6, N_DEV = 3, RECENT_MAX = 8 };
enum { SCEN_THIRD_PARTY = 3, DEV_PC = 2 };

static const int64_t HOUR_MS = 3600000;
static const int64_t CLICK_WINDOW_MS = 30 * 60000;          /* EVENTS.md default click window */
static const int64_t ATTR_WINDOW_MS = 7 * 86400000LL;       /* EVENTS.md default attribution window */

static const char *const SCEN_NAME[N_SCEN] = {"video", "browser", "music", "third_party"};
static const double SCEN_SHARE[N_SCEN] = {0.50, 0.30, 0.17, 0.03};

static const char *const AGE_NAME[N_AGE] = {"18-24", "25-34", "35-44", "45-54", "55-64", "65+"};
static const double AGE_SHARE[N_AGE] = {0.18, 0.27, 0.22, 0.16, 0.10, 0.07};

static const char *const DEV_NAME[N_DEV] = {"android", "ios", "pc"};
/* P(pc | the user owns one, scenario): the browser is used on desktops, music on phones. */
static const double PC_PROB[N_SCEN] = {0.25, 0.55, 0.08, 0.35};

/* Named categories so a human reading a replay file can sanity-check it; the weights are how
 * many advertisers sell in each, the median prices are realistic per vertical. */
static const char *const CAT_NAME[N_CAT] = {
    "games", "apps",   "shopping", "fashion", "beauty", "food",   "travel", "finance", "insurance", "education",
    "auto",  "realestate", "health", "sports", "music", "movies", "books", "electronics", "home", "pets"};
static const double CAT_WEIGHT[N_CAT] = {12, 9, 10, 7, 5, 5, 5, 6, 3, 4, 3, 2, 4, 4, 3, 4, 2, 6, 4, 2};
static const double CAT_MEDIAN_PRICE[N_CAT] = {3,  2,  25, 35, 20, 12, 80, 50, 60, 40,
                                               90, 95, 18, 30, 5,  8,  12, 70, 40, 15};

/* Traffic by clock hour (UTC taken as local time): trough at 4h, peak at 21h. */
static const double DIURNAL[24] = {0.55, 0.38, 0.27, 0.21, 0.20, 0.26, 0.45, 0.72, 0.90, 0.95, 0.98, 1.05,
                                   1.15, 1.10, 1.02, 1.00, 1.05, 1.15, 1.30, 1.45, 1.60, 1.62, 1.35, 0.95};
/* CTR logit shift by hour: night owls click more, office hours less. */
static const double HOUR_CTR[24] = {0.10,  0.14,  0.18,  0.18,  0.15,  0.08,  -0.02, -0.08,
                                    -0.10, -0.08, -0.06, -0.04, -0.02, -0.04, -0.06, -0.06,
                                    -0.04, -0.02, 0.02,  0.05,  0.07,  0.08,  0.08,  0.09};

/* Logit coefficients. Biases were tuned (1M impressions, 14 days, seeds 1-7 and 42) so that CTR
 * lands near 3%, 2%, 4%, 1.5% and CVR near 9%, 11%, 7%, 12% of clicks per scenario. Besides the
 * shared terms of CTR and CVR (interest, quality, age x category, user propensity), three parts are
 * built so that an additive model (embeddings + field pairs + an MLP over their concatenation)
 * leaves signal on the table and the multi-task multi-scenario components can take it:
 *  - a three-way scenario x age x category term whose sign flips between scenarios (what one
 *    audience of a surface likes, the same audience on another surface avoids), so the pooled
 *    age x category pair only sees its traffic-weighted average;
 *  - clickbait: an ad attribute that raises CTR and lowers CVR, the task conflict one shared
 *    representation has to split;
 *  - retargeting: a click boost when ANY of the user's recent clicks is an ad of the target's
 *    advertiser, however many other clicks the list holds, which mean pooling dilutes by the
 *    list length and target attention does not. */
static const double CTR_BIAS[N_SCEN] = {-4.89, -5.08, -4.65, -5.41};
static const double BETA_INTEREST[N_SCEN] = {1.0, 0.8, 1.2, 0.7};
static const double BETA_BEHAVIOUR[N_SCEN] = {0.9, 0.6, 1.1, 0.5};
static const double SCEN_AGE_CAT[N_SCEN] = {1.0, -1.0, 0.6, -1.2}; /* sign and strength of the three-way term */
static const double DEV_CTR[N_DEV] = {0.0, 0.10, -0.25};
static const double CVR_BIAS[N_SCEN] = {-3.51, -3.10, -3.79, -3.08};
static const double DEV_CVR[N_DEV] = {0.0, 0.20, 0.10};
static const double CVR_QUALITY = 0.6, CVR_INTEREST = 0.5, CVR_AGE_CAT = 0.5, CVR_BEHAVIOUR = 0.3;
static const double CVR_AGE_CAT3 = 0.5;     /* the three-way term in CVR, same sign as in CTR */
static const double CTR_BAIT = 1.0, CVR_BAIT = -1.5; /* clickbait: clicks up, conversions down */
static const double CVR_LOG_PRICE = -0.35;  /* per e-fold of price: expensive converts less */
static const double TARGETED_SHARE = 0.3;   /* impressions the upstream ranker aimed at the user's top interest */
static const double LATE_CLICK_SHARE = 0.005;

/* Zipf-Mandelbrot (k + q)^-s: the offset q keeps the single heaviest user at ~1% of traffic
 * instead of 13% (a bot, not a user) while keeping the 1.1 tail. */
static const double ZIPF_S = 1.1, USER_Q = 20.0, AD_Q = 5.0, ADV_Q = 3.0;
static const double COLD_USER_S = 0.7;  /* third_party reaches mostly users rarely seen elsewhere */

/* ---------------------------------------------------------------- discrete distributions */

/* Index of the first cdf entry above u; cdf[n-1] is exactly 1. */
static int cdf_pick(const double *cdf, int n, double u)
{
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (cdf[mid] > u)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

static void cdf_from_weights(double *w, int n)
{
    double sum = 0.0;
    for (int i = 0; i < n; i++)
        sum += w[i];
    double c = 0.0;
    for (int i = 0; i < n; i++) {
        c += w[i];
        w[i] = c / sum;
    }
    w[n - 1] = 1.0;
}

static void zipf_cdf(double *cdf, int n, double s, double q)
{
    for (int k = 0; k < n; k++)
        cdf[k] = px_exp(-s * px_log((double)k + q));
    cdf_from_weights(cdf, n);
}

/* ---------------------------------------------------------------- the world */

typedef struct {
    int n_users, n_ads, n_adv;
    /* users */
    float *u_interest; /* n_users x N_CAT */
    float *u_bias, *u_cvr;
    uint8_t *u_age, *u_os, *u_has_pc, *u_fav;
    int32_t *u_recent; /* n_users x RECENT_MAX, most recent first */
    uint8_t *u_nrecent;
    /* ads */
    int32_t *a_adv;
    uint8_t *a_cat;
    int64_t *a_price_cents;
    float *a_quality, *a_lnprice, *a_bait;
    /* advertisers */
    float *adv_cvr, *adv_scen; /* adv_scen: n_adv x N_SCEN */
    /* interaction tables */
    double age_cat[N_AGE][N_CAT], scen_cat[N_SCEN][N_CAT];
    double age_cat3[N_AGE][N_CAT]; /* times SCEN_AGE_CAT[s]: the scenario-dependent age x category term */
    /* samplers */
    double *user_cdf, *cold_user_cdf, *ad_cdf;
    int32_t *cat_ads;         /* ads grouped by category, by id within a category */
    double *cat_ad_cdf;       /* popularity cdf within each group */
    int cat_start[N_CAT + 1];
    double scen_cdf[N_SCEN], age_cdf[N_AGE], cat_cdf[N_CAT];
} world_t;

static void world_free(world_t *w)
{
    void *ptrs[] = {w->u_interest, w->u_bias,     w->u_cvr,    w->u_age,      w->u_os,       w->u_has_pc,
                    w->u_fav,      w->u_recent,   w->u_nrecent, w->a_adv,     w->a_cat,      w->a_price_cents,
                    w->a_quality,  w->a_lnprice,  w->a_bait,   w->adv_cvr,  w->adv_scen,   w->user_cdf,   w->cold_user_cdf,
                    w->ad_cdf,     w->cat_ads,    w->cat_ad_cdf};
    for (size_t i = 0; i < sizeof ptrs / sizeof ptrs[0]; i++)
        free(ptrs[i]);
    memset(w, 0, sizeof *w);
}

static int pick_weighted(rng_t *r, const double *cdf, int n) { return cdf_pick(cdf, n, rng_u01(r)); }

/* Latent effects are centred under the traffic distribution. Without this the few head users and
 * head ads of a Zipf world would move the base rates by a factor of two from one seed to the next;
 * with it the scenario biases set the rates and every seed has the intended CTR and CVR. */
static void world_center(world_t *w)
{
    double ub = 0, uc = 0, q = 0, lp = 0, bait = 0, adv_c = 0, adv_s[N_SCEN] = {0}, cat_share[N_CAT] = {0};
    for (int u = 0; u < w->n_users; u++) {
        double p = w->user_cdf[u] - (u ? w->user_cdf[u - 1] : 0.0);
        ub += p * w->u_bias[u];
        uc += p * w->u_cvr[u];
    }
    for (int u = 0; u < w->n_users; u++) {
        w->u_bias[u] = (float)(w->u_bias[u] - ub);
        w->u_cvr[u] = (float)(w->u_cvr[u] - uc);
    }
    for (int a = 0; a < w->n_ads; a++) {
        /* The untargeted share of traffic follows ad popularity, the targeted share the users' tastes. */
        double p = w->ad_cdf[a] - (a ? w->ad_cdf[a - 1] : 0.0);
        q += p * w->a_quality[a];
        lp += p * w->a_lnprice[a];
        bait += p * w->a_bait[a];
        adv_c += p * w->adv_cvr[w->a_adv[a]];
        for (int s = 0; s < N_SCEN; s++)
            adv_s[s] += p * w->adv_scen[(size_t)w->a_adv[a] * N_SCEN + (size_t)s];
        cat_share[w->a_cat[a]] += (1.0 - TARGETED_SHARE) * p;
    }
    for (int c = 0; c < N_CAT; c++)
        cat_share[c] += TARGETED_SHARE * (w->cat_cdf[c] - (c ? w->cat_cdf[c - 1] : 0.0));
    for (int a = 0; a < w->n_ads; a++) {
        w->a_quality[a] = (float)(w->a_quality[a] - q);
        w->a_lnprice[a] = (float)(w->a_lnprice[a] - lp);
        w->a_bait[a] = (float)(w->a_bait[a] - bait);
    }
    for (int v = 0; v < w->n_adv; v++) {
        w->adv_cvr[v] = (float)(w->adv_cvr[v] - adv_c);
        float *row = w->adv_scen + (size_t)v * N_SCEN;
        for (int s = 0; s < N_SCEN; s++)
            row[s] = (float)(row[s] - adv_s[s]);
    }
    for (int s = 0; s < N_SCEN; s++) {
        double m = 0;
        for (int c = 0; c < N_CAT; c++)
            m += cat_share[c] * w->scen_cat[s][c];
        for (int c = 0; c < N_CAT; c++)
            w->scen_cat[s][c] -= m;
    }
    for (int g = 0; g < N_AGE; g++) {
        double m = 0, m3 = 0;
        for (int c = 0; c < N_CAT; c++) {
            m += cat_share[c] * w->age_cat[g][c];
            m3 += cat_share[c] * w->age_cat3[g][c];
        }
        for (int c = 0; c < N_CAT; c++) {
            w->age_cat[g][c] -= m;
            w->age_cat3[g][c] -= m3;
        }
    }
}

static int world_build(world_t *w, uint64_t seed, int n_users, int n_ads)
{
    memset(w, 0, sizeof *w);
    w->n_users = n_users;
    w->n_ads = n_ads;
    w->n_adv = n_ads / 10 < 1 ? 1 : (n_ads / 10 > 2000 ? 2000 : n_ads / 10);
    size_t nu = (size_t)n_users, na = (size_t)n_ads, nv = (size_t)w->n_adv;

    w->u_interest = malloc(nu * N_CAT * sizeof *w->u_interest);
    w->u_bias = malloc(nu * sizeof *w->u_bias);
    w->u_cvr = malloc(nu * sizeof *w->u_cvr);
    w->u_age = malloc(nu);
    w->u_os = malloc(nu);
    w->u_has_pc = malloc(nu);
    w->u_fav = malloc(nu);
    w->u_recent = malloc(nu * RECENT_MAX * sizeof *w->u_recent);
    w->u_nrecent = calloc(nu, 1);
    w->a_adv = malloc(na * sizeof *w->a_adv);
    w->a_cat = malloc(na);
    w->a_price_cents = malloc(na * sizeof *w->a_price_cents);
    w->a_quality = malloc(na * sizeof *w->a_quality);
    w->a_lnprice = malloc(na * sizeof *w->a_lnprice);
    w->a_bait = malloc(na * sizeof *w->a_bait);
    w->adv_cvr = malloc(nv * sizeof *w->adv_cvr);
    w->adv_scen = malloc(nv * N_SCEN * sizeof *w->adv_scen);
    w->user_cdf = malloc(nu * sizeof *w->user_cdf);
    w->cold_user_cdf = malloc(nu * sizeof *w->cold_user_cdf);
    w->ad_cdf = malloc(na * sizeof *w->ad_cdf);
    w->cat_ads = malloc(na * sizeof *w->cat_ads);
    w->cat_ad_cdf = malloc(na * sizeof *w->cat_ad_cdf);
    double *adv_cdf = malloc(nv * sizeof *adv_cdf);
    uint8_t *adv_cat = malloc(nv);
    if (!w->u_interest || !w->u_bias || !w->u_cvr || !w->u_age || !w->u_os || !w->u_has_pc || !w->u_fav ||
        !w->u_recent || !w->u_nrecent || !w->a_adv || !w->a_cat || !w->a_price_cents || !w->a_quality ||
        !w->a_lnprice || !w->a_bait || !w->adv_cvr || !w->adv_scen || !w->user_cdf || !w->cold_user_cdf || !w->ad_cdf ||
        !w->cat_ads || !w->cat_ad_cdf || !adv_cdf || !adv_cat) {
        free(adv_cdf);
        free(adv_cat);
        world_free(w);
        return -1;
    }

    /* One stream per entity kind, so adding users does not reshuffle the ads. */
    rng_t rt, ru, ra, rv, rt3, rb;
    rng_seed(&rt, seed, 1);
    rng_seed(&ru, seed, 2);
    rng_seed(&ra, seed, 3);
    rng_seed(&rv, seed, 4);
    rng_seed(&rt3, seed, 5);
    rng_seed(&rb, seed, 6);

    memcpy(w->scen_cdf, SCEN_SHARE, sizeof w->scen_cdf);
    cdf_from_weights(w->scen_cdf, N_SCEN);
    memcpy(w->age_cdf, AGE_SHARE, sizeof w->age_cdf);
    cdf_from_weights(w->age_cdf, N_AGE);
    memcpy(w->cat_cdf, CAT_WEIGHT, sizeof w->cat_cdf);
    cdf_from_weights(w->cat_cdf, N_CAT);

    for (int a = 0; a < N_AGE; a++)
        for (int c = 0; c < N_CAT; c++)
            w->age_cat[a][c] = 0.35 * rng_normal(&rt);
    /* third_party's inventory behaves least like the rest: the cold scenario gets the widest spread. */
    for (int s = 0; s < N_SCEN; s++)
        for (int c = 0; c < N_CAT; c++)
            w->scen_cat[s][c] = (s == SCEN_THIRD_PARTY ? 0.7 : 0.45) * rng_normal(&rt);
    for (int a = 0; a < N_AGE; a++)
        for (int c = 0; c < N_CAT; c++)
            w->age_cat3[a][c] = 0.6 * rng_normal(&rt3);

    for (size_t u = 0; u < nu; u++) {
        w->u_age[u] = (uint8_t)pick_weighted(&ru, w->age_cdf, N_AGE);
        w->u_os[u] = rng_u01(&ru) < 0.3 ? 1 : 0; /* ios share */
        w->u_has_pc[u] = rng_u01(&ru) < 0.45;
        double b = 0.5 * rng_normal(&ru);
        w->u_bias[u] = (float)b;
        /* Users who click more also convert somewhat more. */
        w->u_cvr[u] = (float)(0.4 * b + 0.35 * rng_normal(&ru));
        float *in = w->u_interest + u * N_CAT;
        for (int c = 0; c < N_CAT; c++)
            in[c] = (float)(0.35 * rng_normal(&ru));
        int f1 = pick_weighted(&ru, w->cat_cdf, N_CAT), f2 = pick_weighted(&ru, w->cat_cdf, N_CAT);
        in[f1] += 1.2f;
        if (f2 != f1)
            in[f2] += 0.8f;
        w->u_fav[u] = (uint8_t)f1;
    }

    zipf_cdf(adv_cdf, w->n_adv, ZIPF_S, ADV_Q);
    for (size_t v = 0; v < nv; v++) {
        adv_cat[v] = (uint8_t)pick_weighted(&rv, w->cat_cdf, N_CAT);
        w->adv_cvr[v] = (float)(0.4 * rng_normal(&rv));
        for (int s = 0; s < N_SCEN; s++)
            w->adv_scen[v * N_SCEN + (size_t)s] = (float)(0.35 * rng_normal(&rv));
    }
    for (size_t a = 0; a < na; a++) {
        int v = pick_weighted(&ra, adv_cdf, w->n_adv);
        w->a_adv[a] = v;
        /* Advertisers mostly sell in their own vertical. */
        w->a_cat[a] = rng_u01(&ra) < 0.8 ? adv_cat[v] : (uint8_t)pick_weighted(&ra, w->cat_cdf, N_CAT);
        double price = CAT_MEDIAN_PRICE[w->a_cat[a]] * px_exp(0.6 * rng_normal(&ra));
        price = price < 0.5 ? 0.5 : (price > 100.0 ? 100.0 : price);
        w->a_price_cents[a] = (int64_t)floor(price * 100.0 + 0.5);
        w->a_lnprice[a] = (float)px_log((double)w->a_price_cents[a] / 100.0); /* centred later */
        w->a_quality[a] = (float)(0.5 * rng_normal(&ra));
        /* Own stream: the clickbait draw leaves the other ad attributes as they were. Most ads are
         * honest, a minority is strongly baity (a right-skewed |normal|^2-like shape). */
        double b = rng_normal(&rb);
        w->a_bait[a] = (float)(0.35 * b * b);
    }
    free(adv_cdf);
    free(adv_cat);

    zipf_cdf(w->user_cdf, n_users, ZIPF_S, USER_Q);
    zipf_cdf(w->cold_user_cdf, n_users, COLD_USER_S, USER_Q);
    zipf_cdf(w->ad_cdf, n_ads, ZIPF_S, AD_Q);
    world_center(w);

    /* Counting sort of ads by category; within a category keep the global popularity shape. */
    int counts[N_CAT] = {0};
    for (size_t a = 0; a < na; a++)
        counts[w->a_cat[a]]++;
    w->cat_start[0] = 0;
    for (int c = 0; c < N_CAT; c++)
        w->cat_start[c + 1] = w->cat_start[c] + counts[c];
    int fill[N_CAT];
    memcpy(fill, w->cat_start, sizeof fill);
    for (size_t a = 0; a < na; a++) {
        int i = fill[w->a_cat[a]]++;
        w->cat_ads[i] = (int32_t)a;
        w->cat_ad_cdf[i] = px_exp(-ZIPF_S * px_log((double)a + AD_Q));
    }
    for (int c = 0; c < N_CAT; c++)
        if (counts[c] > 0)
            cdf_from_weights(w->cat_ad_cdf + w->cat_start[c], counts[c]);
    return 0;
}

/* ---------------------------------------------------------------- events and heaps */

typedef enum { EV_IMP = 0, EV_CLICK = 1, EV_CONV = 2 } ev_type;

typedef struct {
    int64_t ts;
    int64_t key;      /* heap order: ts in the pending heap, arrival in the reorder heap */
    uint64_t seq;     /* insertion order breaks ties, so the order never depends on the heap layout */
    uint64_t imp;     /* impression index, gives the id */
    int64_t value_cents;
    int32_t user, ad;
    int32_t recent[RECENT_MAX];
    uint8_t type, scen, dev, hour, nrecent, has_sr;
} gen_ev;

typedef struct {
    gen_ev *v;
    size_t n, cap;
} heap_t;

static int ev_less(const gen_ev *a, const gen_ev *b)
{
    return a->key < b->key || (a->key == b->key && a->seq < b->seq);
}

static int heap_push(heap_t *h, const gen_ev *e)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 1024;
        gen_ev *v = realloc(h->v, cap * sizeof *v);
        if (!v)
            return -1;
        h->v = v;
        h->cap = cap;
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!ev_less(e, &h->v[p]))
            break;
        h->v[i] = h->v[p];
        i = p;
    }
    h->v[i] = *e;
    return 0;
}

static void heap_pop(heap_t *h, gen_ev *out)
{
    *out = h->v[0];
    gen_ev last = h->v[--h->n];
    size_t i = 0, n = h->n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && ev_less(&h->v[c + 1], &h->v[c]))
            c++;
        if (!ev_less(&h->v[c], &last))
            break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (n > 0)
        h->v[i] = last;
}

/* ---------------------------------------------------------------- the run */

typedef struct {
    const fr_gen_opts *o;
    world_t w;
    FILE *events, *truth;
    rng_t r_imp, r_jitter, r_dup;
    uint64_t id_key;
    heap_t pending, reorder;
    uint64_t seq_pending, seq_reorder;
    char line[1024];
    /* the conditions of real logs (fr_gen.h); unused when o->conditions is 0 */
    fr_gen_plan plan;
    rng_t r_sess, r_ads;          /* their own streams: the other draws stay where they were */
    int32_t sess_user, sess_left; /* the open session and the impressions it still has */
    int64_t *ad_from, *ad_to;     /* AD_CHURN: each ad is shown in [from, to) */
    int32_t *evergreen;           /* ads live all along, the fallback when redraws keep hitting dead ads */
    int n_evergreen;
} run_t;

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static uint64_t imp_id(const run_t *r, uint64_t imp) { return mix64(imp + r->id_key); }

static void write_event(run_t *r, const gen_ev *e)
{
    const world_t *w = &r->w;
    char *p = r->line;
    size_t cap = sizeof r->line;
    int n;
    uint64_t id = imp_id(r, e->imp);
    if (e->type == EV_IMP) {
        int a = e->ad;
        int64_t pc = w->a_price_cents[a];
        n = snprintf(p, cap,
                     "{\"type\":\"impression\",\"id\":\"i-%016" PRIx64 "\",\"ts\":%" PRId64 ",\"scenario\":\"%s\",%s"
                     "\"features\":{\"user_id\":\"u%d\",\"user_age\":\"%s\",\"device\":\"%s\",\"ad_id\":\"a%d\","
                     "\"advertiser\":\"adv%d\",\"category\":\"%s\",\"hour\":%d,\"price\":%" PRId64 ".%02d,"
                     "\"recent_ads\":[",
                     id, e->ts, SCEN_NAME[e->scen], e->has_sr ? "\"sample_rate\":1.0," : "", e->user,
                     AGE_NAME[w->u_age[e->user]], DEV_NAME[e->dev], a, w->a_adv[a], CAT_NAME[w->a_cat[a]], e->hour,
                     pc / 100, (int)(pc % 100));
        for (int j = 0; j < e->nrecent; j++)
            n += snprintf(p + n, cap - (size_t)n, "%s\"a%d\"", j ? "," : "", e->recent[j]);
        n += snprintf(p + n, cap - (size_t)n, "]}}\n");
    } else if (e->type == EV_CLICK) {
        n = snprintf(p, cap, "{\"type\":\"click\",\"id\":\"i-%016" PRIx64 "\",\"ts\":%" PRId64 "}\n", id, e->ts);
    } else {
        n = snprintf(p, cap,
                     "{\"type\":\"conversion\",\"id\":\"i-%016" PRIx64 "\",\"ts\":%" PRId64 ",\"value\":%" PRId64
                     ".%02d}\n",
                     id, e->ts, e->value_cents / 100, (int)(e->value_cents % 100));
    }
    /* The line buffer is sized for the longest impression (8 recent ids); errors surface via ferror. */
    fwrite(p, 1, (size_t)n, r->events);
    if (r->o->duplicate_rate > 0.0 && rng_u01(&r->r_dup) < r->o->duplicate_rate)
        fwrite(p, 1, (size_t)n, r->events);
}

/* Takes events in nondecreasing ts. With jitter or skew, an event can be released once its arrival
 * is at or before the current ts: every later event has ts, hence arrival, at least that, and a
 * larger seq. */
static int emit(run_t *r, gen_ev *e)
{
    const int skew = (r->o->conditions & FR_GEN_SKEW) != 0;
    if (r->o->reorder_ms <= 0.0 && !skew) {
        write_event(r, e);
        return 0;
    }
    e->key = e->ts;
    if (skew) {
        char id[24];
        int n = snprintf(id, sizeof id, "i-%016" PRIx64, imp_id(r, e->imp));
        e->key += fr_gen_plan_lag(&r->plan, fr_gen_partition(id, (size_t)n, r->o->partitions), e->ts);
    }
    if (r->o->reorder_ms > 0.0)
        e->key += (int64_t)floor(rng_u01(&r->r_jitter) * r->o->reorder_ms);
    e->seq = r->seq_reorder++;
    if (heap_push(&r->reorder, e) != 0)
        return -1;
    gen_ev out;
    while (r->reorder.n > 0 && r->reorder.v[0].key <= e->ts) {
        heap_pop(&r->reorder, &out);
        write_event(r, &out);
    }
    return 0;
}

static void remember_click(world_t *w, int user, int ad)
{
    int32_t *rec = w->u_recent + (size_t)user * RECENT_MAX;
    int n = w->u_nrecent[user], j;
    /* A re-clicked ad moves to the front instead of appearing twice. */
    for (j = 0; j < n && rec[j] != ad; j++)
        ;
    if (j == n)
        j = n < RECENT_MAX ? n++ : RECENT_MAX - 1;
    memmove(rec + 1, rec, (size_t)j * sizeof *rec);
    rec[0] = ad;
    w->u_nrecent[user] = (uint8_t)n;
}

/* Writes every pending click and conversion due at or before `until`. */
static int flush_pending(run_t *r, int64_t until)
{
    gen_ev e;
    while (r->pending.n > 0 && r->pending.v[0].key <= until) {
        heap_pop(&r->pending, &e);
        if (e.type == EV_CLICK)
            remember_click(&r->w, e.user, e.ad);
        if (emit(r, &e) != 0)
            return -1;
    }
    return 0;
}

static int push_pending(run_t *r, gen_ev *e)
{
    e->key = e->ts;
    e->seq = r->seq_pending++;
    return heap_push(&r->pending, e);
}

/* Delay CDF of conversions (ms), the two-component exponential mixture. */
static double delay_cdf(const fr_gen_opts *o, double t_ms)
{
    double s = o->delay_short_share;
    return s * (1.0 - px_exp(-t_ms / (o->delay_short_mean_s * 1000.0))) +
           (1.0 - s) * (1.0 - px_exp(-t_ms / (o->delay_long_mean_s * 1000.0)));
}

typedef struct {
    int64_t t0, len; /* clock-hour slot clipped to the run: [t0, t0 + len) */
    double cum0, density;
} slot_t;

/* ---------------------------------------------------------------- conditions of real logs */

static const double SESSION_SHARE = 0.3;  /* of the traffic while a session is open */
static const double SESSION_ALPHA = 1.2;  /* Pareto tail of session lengths: heavy, finite mean */
static const int32_t SESSION_MAX = 2000;
static const double EVERGREEN_SHARE = 0.15;

/* SESSIONS: the open session takes SESSION_SHARE of the impressions until it has had its length;
 * the first user drawn after it opens the next one. drawn: the user the stationary world drew. */
static int session_user(run_t *r, int drawn)
{
    if (r->sess_left > 0 && rng_u01(&r->r_sess) < SESSION_SHARE) {
        r->sess_left--;
        return r->sess_user;
    }
    if (r->sess_left == 0) {
        double len = px_exp(-px_log(1.0 - rng_u01(&r->r_sess)) / SESSION_ALPHA); /* Pareto, x_m = 1 */
        r->sess_user = drawn;
        r->sess_left = len >= (double)SESSION_MAX ? SESSION_MAX - 1 : (int32_t)len - 1;
    }
    return drawn;
}

static int pick_ad(const world_t *w, int targeted, int fav, rng_t *g)
{
    if (targeted) {
        int lo = w->cat_start[fav], n = w->cat_start[fav + 1] - lo;
        return w->cat_ads[lo + cdf_pick(w->cat_ad_cdf + lo, n, rng_u01(g))];
    }
    return cdf_pick(w->ad_cdf, w->n_ads, rng_u01(g));
}

static int ad_live(const run_t *r, int a, int64_t ts) { return ts >= r->ad_from[a] && ts < r->ad_to[a]; }

/* AD_CHURN: a life for every ad from its own stream (15): most run for 15-60 % of the run at a
 * uniform place overlapping it, the evergreen ones all along (ad 0 among them, so there is one). */
static int ads_lives(run_t *r, int64_t start, int64_t end)
{
    const int n = r->w.n_ads;
    r->ad_from = malloc((size_t)n * sizeof *r->ad_from);
    r->ad_to = malloc((size_t)n * sizeof *r->ad_to);
    r->evergreen = malloc((size_t)n * sizeof *r->evergreen);
    if (!r->ad_from || !r->ad_to || !r->evergreen)
        return -1;
    rng_t g;
    rng_seed(&g, r->o->seed, 15);
    const double span = (double)(end - start);
    for (int a = 0; a < n; a++) {
        double u = rng_u01(&g), len = span * (0.15 + 0.45 * rng_u01(&g)), at = rng_u01(&g);
        if (a == 0 || u < EVERGREEN_SHARE) {
            r->ad_from[a] = INT64_MIN;
            r->ad_to[a] = INT64_MAX;
            r->evergreen[r->n_evergreen++] = a;
            continue;
        }
        r->ad_from[a] = start - (int64_t)len + (int64_t)(at * (span + len));
        r->ad_to[a] = r->ad_from[a] + (int64_t)len;
    }
    return 0;
}

/* Probability that a conversion of a click at c is censored by the gap, among delays below x ms. */
static double gap_delay_mass(const run_t *r, int64_t c, double x)
{
    double lo = (double)(r->plan.gap_from - c), hi = (double)(r->plan.gap_to - c);
    if (lo < 0)
        lo = 0;
    if (hi > x)
        hi = x;
    return hi > lo ? delay_cdf(r->o, hi) - delay_cdf(r->o, lo) : 0.0;
}

/* One impression: features, probabilities, outcomes, truth line; pushes its click and conversion. */
static int gen_impression(run_t *r, uint64_t k, int64_t ts, double p_cvr_7d_factor, double p_ip_factor)
{
    world_t *w = &r->w;
    rng_t *g = &r->r_imp;
    gen_ev e;
    memset(&e, 0, sizeof e);
    e.type = EV_IMP;
    e.imp = k;
    e.ts = ts;
    e.hour = (uint8_t)((ts / HOUR_MS) % 24);
    int s = pick_weighted(g, w->scen_cdf, N_SCEN);
    e.scen = (uint8_t)s;
    int u = cdf_pick(s == SCEN_THIRD_PARTY ? w->cold_user_cdf : w->user_cdf, w->n_users, rng_u01(g));
    if (r->o->conditions & FR_GEN_SESSIONS)
        u = session_user(r, u);
    e.user = u;
    e.dev = (w->u_has_pc[u] && rng_u01(g) < PC_PROB[s]) ? DEV_PC : w->u_os[u];
    int fav = w->u_fav[u];
    const int targeted = rng_u01(g) < TARGETED_SHARE && w->cat_start[fav + 1] > w->cat_start[fav];
    int a = pick_ad(w, targeted, fav, g);
    if ((r->o->conditions & FR_GEN_AD_CHURN) && !ad_live(r, a, ts)) {
        /* Redrawn the same way from the churn's own stream; the fallback is rarely needed. */
        int tries = 0;
        do
            a = pick_ad(w, targeted, fav, &r->r_ads);
        while (!ad_live(r, a, ts) && ++tries < 32);
        if (!ad_live(r, a, ts))
            a = r->evergreen[(int)(rng_u01(&r->r_ads) * r->n_evergreen)];
    }
    e.ad = a;
    e.has_sr = rng_u01(g) < 0.5;
    e.nrecent = w->u_nrecent[u];
    memcpy(e.recent, w->u_recent + (size_t)u * RECENT_MAX, sizeof e.recent);

    int c = w->a_cat[a], v = w->a_adv[a], age = w->u_age[u];
    /* Retargeting: one recent click on the advertiser is the whole signal, wherever it sits. */
    double match = 0.0;
    for (int j = 0; j < e.nrecent; j++)
        if (w->a_adv[e.recent[j]] == v) {
            match = 1.0;
            break;
        }
    double interest = w->u_interest[(size_t)u * N_CAT + (size_t)c], q = w->a_quality[a], bait = w->a_bait[a];
    double t3 = SCEN_AGE_CAT[s] * w->age_cat3[age][c];
    double z_ctr = CTR_BIAS[s] + w->u_bias[u] + q + BETA_INTEREST[s] * interest + w->age_cat[age][c] +
                   HOUR_CTR[e.hour] + w->scen_cat[s][c] + BETA_BEHAVIOUR[s] * match + DEV_CTR[e.dev] + t3 +
                   CTR_BAIT * bait;
    double z_cvr = CVR_BIAS[s] + w->u_cvr[u] + CVR_QUALITY * q + CVR_INTEREST * interest +
                   CVR_AGE_CAT * w->age_cat[age][c] + w->adv_cvr[v] + w->adv_scen[(size_t)v * N_SCEN + (size_t)s] +
                   CVR_LOG_PRICE * w->a_lnprice[a] + CVR_BEHAVIOUR * match + DEV_CVR[e.dev] + CVR_AGE_CAT3 * t3 +
                   CVR_BAIT * bait;
    double p_ctr = sigmoid(z_ctr), p_cvr = sigmoid(z_cvr);

    if (emit(r, &e) != 0)
        return -1;

    /* Outcomes. A late click (beyond the window) is a click event the daemon must not count. */
    int clicked = 0, converted = 0;
    int64_t click_ts = -1, conv_ts = -1;
    double uc = rng_u01(g);
    if (uc < p_ctr) {
        clicked = 1;
        int64_t d = CLICK_WINDOW_MS - 1;
        for (int tries = 0; tries < 16; tries++) { /* lognormal, median ~8 s, truncated to the window */
            double ms = 300.0 + 8000.0 * px_exp(1.2 * rng_normal(g));
            if (ms < (double)(CLICK_WINDOW_MS - 1)) {
                d = (int64_t)ms;
                break;
            }
        }
        click_ts = ts + d;
    } else if (uc < p_ctr / (1.0 - LATE_CLICK_SHARE)) {
        click_ts = ts + CLICK_WINDOW_MS + 1000 + (int64_t)(3600000.0 * rng_exp1(g));
    }
    /* Only a late click can fall in the gap (impressions stop a click window before it): lost. */
    const int click_lost = click_ts >= 0 && fr_gen_plan_in_gap(&r->plan, click_ts);
    if (click_ts >= 0) {
        gen_ev ce;
        memset(&ce, 0, sizeof ce);
        ce.type = EV_CLICK;
        ce.imp = k;
        ce.ts = click_ts;
        ce.user = u;
        ce.ad = a;
        if (!click_lost && push_pending(r, &ce) != 0)
            return -1;
        if (rng_u01(g) < p_cvr) {
            double mean_ms =
                (rng_u01(g) < r->o->delay_short_share ? r->o->delay_short_mean_s : r->o->delay_long_mean_s) * 1000.0;
            int64_t d = (int64_t)floor(mean_ms * rng_exp1(g) + 0.5);
            if (d < 1)
                d = 1;
            if (d == ATTR_WINDOW_MS) /* nothing sits exactly on the boundary */
                d++;
            conv_ts = click_ts + d;
            const int conv_lost = click_lost || fr_gen_plan_in_gap(&r->plan, conv_ts);
            converted = clicked && d < ATTR_WINDOW_MS && !conv_lost;
            /* Order value: the ad's price times a small quantity. */
            int64_t qty = 1 + (int64_t)(0.6 * rng_exp1(g));
            gen_ev ve = ce;
            ve.type = EV_CONV;
            ve.ts = conv_ts;
            ve.value_cents = w->a_price_cents[a] * qty;
            if (conv_lost)
                conv_ts = -1;
            else if (push_pending(r, &ve) != 0)
                return -1;
        }
    }
    if (click_lost)
        click_ts = -1;
    if (r->plan.gap_to > r->plan.gap_from) {
        /* The gap censors conversions whose delay would land in it: exclude that delay mass. */
        const int64_t c = clicked ? click_ts : ts;
        p_cvr_7d_factor -= gap_delay_mass(r, c, (double)ATTR_WINDOW_MS);
        p_ip_factor -= gap_delay_mass(r, c, r->o->obs_window_s * 1000.0 < (double)ATTR_WINDOW_MS
                                                ? r->o->obs_window_s * 1000.0
                                                : (double)ATTR_WINDOW_MS);
    }
    if (r->truth)
        fprintf(r->truth,
                "i-%016" PRIx64 "\t%" PRId64 "\t%s\t%.6f\t%.6f\t%d\t%d\t%.6f\t%" PRId64 "\t%" PRId64
                "\t%.6f\t%.6f\t%.6f\n",
                imp_id(r, k), ts, SCEN_NAME[s], p_ctr, p_cvr, clicked, converted, p_cvr * p_cvr_7d_factor, click_ts,
                conv_ts, p_cvr * p_cvr_7d_factor, p_cvr * p_ip_factor, p_cvr * (p_cvr_7d_factor - p_ip_factor));
    return 0;
}

static int check_opts(const fr_gen_opts *o, char *err, size_t errlen)
{
    if (o->impressions < 0 || o->impressions > 10000000000LL)
        return set_err(err, errlen, "impressions must be in [0, 1e10]"), -1;
    if (o->start_ts_ms < 0 || o->start_ts_ms > 4000000000000000LL)
        return set_err(err, errlen, "start_ts_ms must be in [0, 4e15]"), -1;
    if (!(o->days > 0.0 && o->days <= 3660.0))
        return set_err(err, errlen, "days must be in (0, 3660]"), -1;
    if (o->n_users < 1 || o->n_users > 100000000)
        return set_err(err, errlen, "n_users must be in [1, 1e8]"), -1;
    if (o->n_ads < 1 || o->n_ads > 100000000)
        return set_err(err, errlen, "n_ads must be in [1, 1e8]"), -1;
    if (!(o->delay_short_share >= 0.0 && o->delay_short_share <= 1.0))
        return set_err(err, errlen, "delay_short_share must be in [0, 1]"), -1;
    if (!(o->delay_short_mean_s > 0.0 && o->delay_short_mean_s <= 1e9) ||
        !(o->delay_long_mean_s > 0.0 && o->delay_long_mean_s <= 1e9))
        return set_err(err, errlen, "delay means must be in (0, 1e9] seconds"), -1;
    if (!(o->obs_window_s >= 0.0 && o->obs_window_s <= 1e9))
        return set_err(err, errlen, "obs_window_s must be in [0, 1e9] seconds"), -1;
    if (!(o->duplicate_rate >= 0.0 && o->duplicate_rate < 1.0))
        return set_err(err, errlen, "duplicate_rate must be in [0, 1)"), -1;
    if (!(o->reorder_ms >= 0.0 && o->reorder_ms <= 1e12))
        return set_err(err, errlen, "reorder_ms must be in [0, 1e12]"), -1;
    if (o->conditions & ~(unsigned)FR_GEN_REALISTIC)
        return set_err(err, errlen, "conditions: unknown bits 0x%x", o->conditions & ~(unsigned)FR_GEN_REALISTIC), -1;
    if (o->partitions < 1 || o->partitions > 256)
        return set_err(err, errlen, "partitions must be in [1, 256]"), -1;
    return 0;
}

void fr_gen_defaults(fr_gen_opts *o)
{
    memset(o, 0, sizeof *o);
    o->seed = 42;
    o->impressions = 1000000;
    o->start_ts_ms = 1764547200000LL;
    o->days = 14.0;
    o->n_users = 200000;
    o->n_ads = 20000;
    o->delay_short_share = 0.35;
    o->delay_short_mean_s = 900.0;
    o->delay_long_mean_s = 2.0 * 86400.0;
    o->obs_window_s = 900.0;
    o->duplicate_rate = 0.0;
    o->reorder_ms = 0.0;
    o->conditions = 0;
    o->partitions = 4;
}

int fr_gen_run(const fr_gen_opts *o, FILE *events, FILE *truth, char *err, size_t errlen)
{
    if (!o || !events)
        return set_err(err, errlen, "fr_gen_run: options and events stream are required"), -1;
    if (check_opts(o, err, errlen) != 0)
        return -1;

    run_t *r = calloc(1, sizeof *r);
    if (!r)
        return set_err(err, errlen, "out of memory"), -1;
    r->o = o;
    r->events = events;
    r->truth = truth;
    if (world_build(&r->w, o->seed, o->n_users, o->n_ads) != 0) {
        free(r);
        return set_err(err, errlen, "out of memory building a world of %d users and %d ads", o->n_users, o->n_ads), -1;
    }
    rng_seed(&r->r_imp, o->seed, 10);
    rng_seed(&r->r_jitter, o->seed, 11);
    rng_seed(&r->r_dup, o->seed, 12);
    uint64_t x = o->seed ^ 0x5851F42D4C957F2Dull;
    r->id_key = splitmix64(&x);
    rng_seed(&r->r_sess, o->seed, 13);
    rng_seed(&r->r_ads, o->seed, 14);
    slot_t *slots = NULL;
    int rc = -1;
    if (fr_gen_plan_make(o, &r->plan, err, errlen) != 0)
        goto done;

    /* Slots over [start, end) between clock hours and the plan's edges, each with its density
     * (the diurnal one times the conditions'); none where the gap allows no impression. */
    int64_t start = o->start_ts_ms, end = start + (int64_t)floor(o->days * 86400000.0 + 0.5);
    if (end <= start)
        end = start + 1;
    if ((o->conditions & FR_GEN_AD_CHURN) && ads_lives(r, start, end) != 0) {
        set_err(err, errlen, "out of memory");
        goto done;
    }
    size_t nslots = (size_t)((end - start) / HOUR_MS + 2) + 2 * (size_t)r->plan.n_spans + 2;
    slots = malloc(nslots * sizeof *slots);
    if (!slots) {
        set_err(err, errlen, "out of memory");
        goto done;
    }
    size_t ns = 0;
    double cum = 0.0;
    for (int64_t t = start; t < end;) {
        int64_t next = (t / HOUR_MS + 1) * HOUR_MS, edge = fr_gen_plan_next_edge(&r->plan, t);
        if (edge < next)
            next = edge;
        if (next > end)
            next = end;
        if (!fr_gen_plan_no_impressions(&r->plan, t)) {
            slots[ns].t0 = t;
            slots[ns].len = next - t;
            slots[ns].cum0 = cum;
            slots[ns].density = DIURNAL[(t / HOUR_MS) % 24] * fr_gen_plan_traffic(&r->plan, o->conditions, t);
            cum += slots[ns].density * (double)slots[ns].len;
            ns++;
        }
        t = next;
    }

    if (ns == 0) { /* the plan never leaves the whole run without traffic; refuse rather than read nothing */
        set_err(err, errlen, "no time left for impressions");
        goto done;
    }
    if (truth)
        fprintf(truth, "id\tts\tscenario\tp_ctr\tp_cvr\tclicked\tconverted\tp_cvr_7d\tclick_ts\tconv_ts\tp_star\tp_ip\tp_dp\n");
    double g7 = delay_cdf(o, (double)ATTR_WINDOW_MS);
    double gwo = delay_cdf(o, o->obs_window_s * 1000.0 < (double)ATTR_WINDOW_MS ? o->obs_window_s * 1000.0 : (double)ATTR_WINDOW_MS);

    /* Sorted uniforms one at a time: given the k smallest of N, the next is
     * 1 - (1 - prev) * V^(1/(N-k)), so impressions come out in time order with no buffer. */
    uint64_t N = (uint64_t)o->impressions;
    double rest = 1.0;
    size_t si = 0;
    for (uint64_t k = 0; k < N; k++) {
        double vv = 1.0 - rng_u01(&r->r_imp);
        rest *= px_exp(px_log(vv) / (double)(N - k));
        double target = (1.0 - rest) * cum;
        while (si + 1 < ns && slots[si + 1].cum0 <= target)
            si++;
        int64_t off = (int64_t)floor((target - slots[si].cum0) / slots[si].density);
        if (off < 0)
            off = 0;
        if (off >= slots[si].len)
            off = slots[si].len - 1;
        int64_t ts = slots[si].t0 + off;
        if (flush_pending(r, ts) != 0 || gen_impression(r, k, ts, g7, gwo) != 0) {
            set_err(err, errlen, "out of memory");
            goto done;
        }
        if ((k & 0xFFFF) == 0 && (ferror(events) || (truth && ferror(truth)))) {
            set_err(err, errlen, "write failed");
            goto done;
        }
    }
    if (flush_pending(r, INT64_MAX) != 0) {
        set_err(err, errlen, "out of memory");
        goto done;
    }
    gen_ev e;
    while (r->reorder.n > 0) {
        heap_pop(&r->reorder, &e);
        write_event(r, &e);
    }
    if (fflush(events) != 0 || ferror(events) || (truth && (fflush(truth) != 0 || ferror(truth)))) {
        set_err(err, errlen, "write failed");
        goto done;
    }
    rc = 0;
done:
    free(slots);
    free(r->ad_from);
    free(r->ad_to);
    free(r->evergreen);
    free(r->pending.v);
    free(r->reorder.v);
    world_free(&r->w);
    free(r);
    return rc;
}
