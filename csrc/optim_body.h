/* optim_body.h -- the element rules of the optimizers, written once.
 * Included by optim.c for REAL = float/double, once per SIMD level
 * (simd_levels.h: NC_NAME(op) names the level's copy); the entry points are
 * in optim_driver.h.
 *
 * Every rule is one loop over a contiguous range: read w, g and the slots,
 * write w and the slots. The gradient transform (clipvalue, scale) and the
 * decoupled weight decay come first, as in Keras 3. No FMA contraction (see
 * optim.c), so the vector loop and its scalar tail round identically and a
 * result never depends on where a range starts or how a buffer is split. */

#ifdef NC_LEVEL /* (the entry pass of simd_levels.h has nothing here) */

/* g := clip(g, -cv, cv) * sc (cv = +inf, sc = 1: unchanged) */
static inline REAL NC_NAME(grad)(REAL g, REAL cv, REAL sc)
{
    g = g > -cv ? g : -cv;
    g = g < cv ? g : cv;
    return g * sc;
}

/* the common head of every rule: gi the transformed gradient, wi the decayed weight */
#define NC_OPT_HEAD                                      \
    REAL gi = NC_NAME(grad)(g[i], cv, sc);                    \
    REAL wi = w[i];                                      \
    wi = wi - wi * wd;

static void NC_NAME(sgd)(const nc_optim_step *s, REAL sc, REAL *restrict w, const REAL *restrict g,
                    REAL *const *slot, ptrdiff_t n)
{
    const REAL cv = (REAL)s->clipvalue, wd = (REAL)s->wd;
    const REAL lr = (REAL)s->c[0], mu = (REAL)s->c[1];
    if (s->c[1] == 0) {
        /* w := w - g lr */
        for (ptrdiff_t i = 0; i < n; i++) {
            NC_OPT_HEAD
            w[i] = wi - gi * lr;
        }
        return;
    }
    REAL *restrict v = slot[0];
    if (s->flags & NC_OPT_NESTEROV) {
        /* v := v mu - g lr ; w := w + v mu - g lr */
        for (ptrdiff_t i = 0; i < n; i++) {
            NC_OPT_HEAD
            REAL vi = v[i] * mu - gi * lr;
            v[i] = vi;
            w[i] = wi + (vi * mu - gi * lr);
        }
    } else {
        /* v := v mu - g lr ; w := w + v */
        for (ptrdiff_t i = 0; i < n; i++) {
            NC_OPT_HEAD
            REAL vi = v[i] * mu - gi * lr;
            v[i] = vi;
            w[i] = wi + vi;
        }
    }
}

static void NC_NAME(adagrad)(const nc_optim_step *s, REAL sc, REAL *restrict w, const REAL *restrict g,
                        REAL *const *slot, ptrdiff_t n)
{
    const REAL cv = (REAL)s->clipvalue, wd = (REAL)s->wd;
    const REAL lr = (REAL)s->c[0], eps = (REAL)s->c[1];
    REAL *restrict a = slot[0];
    /* a := a + g^2 ; w := w - lr g / sqrt(a + eps) */
    for (ptrdiff_t i = 0; i < n; i++) {
        NC_OPT_HEAD
        REAL ai = a[i] + gi * gi;
        a[i] = ai;
        w[i] = wi - (lr * gi) / SQRT(ai + eps);
    }
}

static void NC_NAME(rmsprop)(const nc_optim_step *s, REAL sc, REAL *restrict w, const REAL *restrict g,
                        REAL *const *slot, ptrdiff_t n)
{
    const REAL cv = (REAL)s->clipvalue, wd = (REAL)s->wd;
    const REAL lr = (REAL)s->c[0], rho = (REAL)s->c[1], rho1 = (REAL)s->c[2], eps = (REAL)s->c[3];
    const REAL mu = (REAL)s->c[4];
    const int centered = (s->flags & NC_OPT_CENTERED) != 0, momentum = s->c[4] > 0;
    REAL *restrict v = slot[0];
    REAL *restrict gbar = centered ? slot[1] : NULL;
    REAL *restrict m = momentum ? slot[1 + centered] : NULL;
    /* v := rho v + (1-rho) g^2 ; d = lr g / sqrt(v + eps) ; w := w - d */
    if (!centered && !momentum) {
        for (ptrdiff_t i = 0; i < n; i++) {
            NC_OPT_HEAD
            REAL vi = rho * v[i] + rho1 * (gi * gi);
            v[i] = vi;
            w[i] = wi - (lr * gi) / SQRT(vi + eps);
        }
    } else if (!centered) {
        /* m := mu m + d ; w := w - m */
        for (ptrdiff_t i = 0; i < n; i++) {
            NC_OPT_HEAD
            REAL vi = rho * v[i] + rho1 * (gi * gi);
            v[i] = vi;
            REAL mi = mu * m[i] + (lr * gi) / SQRT(vi + eps);
            m[i] = mi;
            w[i] = wi - mi;
        }
    } else {
        /* gbar := rho gbar + (1-rho) g ; d = lr g / sqrt(v - gbar^2 + eps) */
        for (ptrdiff_t i = 0; i < n; i++) {
            NC_OPT_HEAD
            REAL vi = rho * v[i] + rho1 * (gi * gi);
            REAL bi = rho * gbar[i] + rho1 * gi;
            v[i] = vi;
            gbar[i] = bi;
            REAL d = (lr * gi) / SQRT((vi - bi * bi) + eps);
            if (momentum) {
                REAL mi = mu * m[i] + d;
                m[i] = mi;
                w[i] = wi - mi;
            } else {
                w[i] = wi - d;
            }
        }
    }
}

static void NC_NAME(adam)(const nc_optim_step *s, REAL sc, REAL *restrict w, const REAL *restrict g,
                     REAL *const *slot, ptrdiff_t n)
{
    const REAL cv = (REAL)s->clipvalue, wd = (REAL)s->wd;
    const REAL alpha = (REAL)s->c[0], b1c = (REAL)s->c[1], b2c = (REAL)s->c[2], eps = (REAL)s->c[3];
    REAL *restrict m = slot[0];
    REAL *restrict v = slot[1];
    if (s->flags & NC_OPT_AMSGRAD) {
        REAL *restrict vh = slot[2];
        /* ... vhat := max(vhat, v) ; w := w - alpha m / (sqrt(vhat) + eps) */
        for (ptrdiff_t i = 0; i < n; i++) {
            NC_OPT_HEAD
            REAL mi = m[i] + (gi - m[i]) * b1c;
            REAL vi = v[i] + (gi * gi - v[i]) * b2c;
            REAL hi = vh[i] > vi ? vh[i] : vi;
            m[i] = mi;
            v[i] = vi;
            vh[i] = hi;
            w[i] = wi - (mi * alpha) / (SQRT(hi) + eps);
        }
        return;
    }
    /* m := m + (g - m)(1-b1) ; v := v + (g^2 - v)(1-b2) ; w := w - alpha m / (sqrt(v) + eps) */
    for (ptrdiff_t i = 0; i < n; i++) {
        NC_OPT_HEAD
        REAL mi = m[i] + (gi - m[i]) * b1c;
        REAL vi = v[i] + (gi * gi - v[i]) * b2c;
        m[i] = mi;
        v[i] = vi;
        w[i] = wi - (mi * alpha) / (SQRT(vi) + eps);
    }
}

static void NC_NAME(adadelta)(const nc_optim_step *s, REAL sc, REAL *restrict w, const REAL *restrict g,
                         REAL *const *slot, ptrdiff_t n)
{
    const REAL cv = (REAL)s->clipvalue, wd = (REAL)s->wd;
    const REAL lr = (REAL)s->c[0], rho = (REAL)s->c[1], rho1 = (REAL)s->c[2], eps = (REAL)s->c[3];
    REAL *restrict eg = slot[0];
    REAL *restrict ed = slot[1];
    /* Eg := rho Eg + (1-rho) g^2 ; d = -sqrt(Ed + eps) g / sqrt(Eg + eps) ;
     * Ed := rho Ed + (1-rho) d^2 ; w := w + lr d */
    for (ptrdiff_t i = 0; i < n; i++) {
        NC_OPT_HEAD
        REAL egi = rho * eg[i] + rho1 * (gi * gi);
        REAL d = -((SQRT(ed[i] + eps) * gi) / SQRT(egi + eps));
        eg[i] = egi;
        ed[i] = rho * ed[i] + rho1 * (d * d);
        w[i] = wi + lr * d;
    }
}

static void NC_NAME(adamax)(const nc_optim_step *s, REAL sc, REAL *restrict w, const REAL *restrict g,
                       REAL *const *slot, ptrdiff_t n)
{
    const REAL cv = (REAL)s->clipvalue, wd = (REAL)s->wd;
    const REAL lr = (REAL)s->c[0], b1c = (REAL)s->c[1], b2 = (REAL)s->c[2], bc = (REAL)s->c[3];
    const REAL eps = (REAL)s->c[4];
    REAL *restrict m = slot[0];
    REAL *restrict u = slot[1];
    /* m := m + (g - m)(1-b1) ; u := max(b2 u, |g|) ; w := w - lr m / ((1-b1^t)(u + eps)) */
    for (ptrdiff_t i = 0; i < n; i++) {
        NC_OPT_HEAD
        REAL mi = m[i] + (gi - m[i]) * b1c;
        REAL ui = b2 * u[i];
        REAL ag = FABS(gi);
        ui = ui > ag ? ui : ag;
        m[i] = mi;
        u[i] = ui;
        w[i] = wi - (lr * mi) / (bc * (ui + eps));
    }
}

static void NC_NAME(nadam)(const nc_optim_step *s, REAL sc, REAL *restrict w, const REAL *restrict g,
                      REAL *const *slot, ptrdiff_t n)
{
    const REAL cv = (REAL)s->clipvalue, wd = (REAL)s->wd;
    const REAL lr = (REAL)s->c[0], b1c = (REAL)s->c[1], b2c = (REAL)s->c[2], eps = (REAL)s->c[3];
    const REAL c1 = (REAL)s->c[4], c2 = (REAL)s->c[5], c3 = (REAL)s->c[6];
    REAL *restrict m = slot[0];
    REAL *restrict v = slot[1];
    /* m, v as Adam ; mhat = c1 m + c2 g ; vhat = c3 v ; w := w - lr mhat / (sqrt(vhat) + eps) */
    for (ptrdiff_t i = 0; i < n; i++) {
        NC_OPT_HEAD
        REAL mi = m[i] + (gi - m[i]) * b1c;
        REAL vi = v[i] + (gi * gi - v[i]) * b2c;
        m[i] = mi;
        v[i] = vi;
        REAL mh = c1 * mi + c2 * gi;
        w[i] = wi - (mh * lr) / (SQRT(vi * c3) + eps);
    }
}

static void NC_NAME(ftrl)(const nc_optim_step *s, REAL sc, REAL *restrict w, const REAL *restrict g,
                     REAL *const *slot, ptrdiff_t n)
{
    const REAL cv = (REAL)s->clipvalue, wd = (REAL)s->wd;
    const REAL lr = (REAL)s->c[0], mp = (REAL)(-s->c[1]), l1 = (REAL)s->c[2], q2 = (REAL)s->c[3];
    const REAL l2s2 = (REAL)s->c[4];
    REAL *restrict acc = slot[0];
    REAL *restrict z = slot[1];
    /* gs = g + 2 l2s w ; n' = n + g^2 ; z := z + gs - (n'^-p - n^-p) / lr w ;
     * w := (clip(z, -l1, l1) - z) / (n'^-p / lr + q2) ; n := n' */
#define NC_FTRL_BODY(POWF)                                          \
    for (ptrdiff_t i = 0; i < n; i++) {                             \
        NC_OPT_HEAD                                                 \
        REAL gs = gi + l2s2 * wi;                                   \
        REAL ni = acc[i] + gi * gi;                                 \
        REAL pn = POWF(ni), po = POWF(acc[i]);                      \
        REAL zi = z[i] + (gs - ((pn - po) / lr) * wi);              \
        REAL zc = zi > -l1 ? zi : -l1;                              \
        zc = zc < l1 ? zc : l1;                                     \
        acc[i] = ni;                                                \
        z[i] = zi;                                                  \
        w[i] = (zc - zi) / (pn / lr + q2);                          \
    }
    if (s->c[1] == -0.5) {
#define NC_FTRL_SQRT(x) SQRT(x)
        NC_FTRL_BODY(NC_FTRL_SQRT)
#undef NC_FTRL_SQRT
    } else {
#define NC_FTRL_POW(x) POW(x, mp)
        NC_FTRL_BODY(NC_FTRL_POW)
#undef NC_FTRL_POW
    }
#undef NC_FTRL_BODY
}

#undef NC_OPT_HEAD

/* one range [0, n) of a step, the rule picked by s->kind */
static void NC_NAME(range)(const nc_optim_step *s, REAL sc, REAL *w, const REAL *g, REAL *const *slot,
                      ptrdiff_t n)
{
    switch (s->kind) {
    case NC_OPT_SGD: NC_NAME(sgd)(s, sc, w, g, slot, n); break;
    case NC_OPT_ADAGRAD: NC_NAME(adagrad)(s, sc, w, g, slot, n); break;
    case NC_OPT_RMSPROP: NC_NAME(rmsprop)(s, sc, w, g, slot, n); break;
    case NC_OPT_ADAM: NC_NAME(adam)(s, sc, w, g, slot, n); break;
    case NC_OPT_ADADELTA: NC_NAME(adadelta)(s, sc, w, g, slot, n); break;
    case NC_OPT_ADAMAX: NC_NAME(adamax)(s, sc, w, g, slot, n); break;
    case NC_OPT_NADAM: NC_NAME(nadam)(s, sc, w, g, slot, n); break;
    case NC_OPT_FTRL: NC_NAME(ftrl)(s, sc, w, g, slot, n); break;
    default: break;
    }
}

/* 1 when every x[i], i < n, is finite (x - x is 0 for a finite x, NaN for inf/NaN): the optimizer's check of
 * a chunk it has just written, while the chunk is in cache (as nc_all_finite, an OR of the comparisons) */
static int NC_NAME(finite)(const REAL *x, ptrdiff_t n)
{
    int bad = 0;
#pragma omp simd reduction(| : bad)
    for (ptrdiff_t i = 0; i < n; i++) bad |= (x[i] - x[i]) != 0;
    return !bad;
}

/* sum of x[i]^2 over [0, n) in double, in NC_OPT_LANES fixed lanes (lane = i mod LANES
 * from the range start), lanes added in order: independent of alignment */
static double NC_NAME(lane_sumsq)(const REAL *x, ptrdiff_t n)
{
    double acc[NC_OPT_LANES] = {0};
    ptrdiff_t nb = n / NC_OPT_LANES * NC_OPT_LANES;
    for (ptrdiff_t i = 0; i < nb; i += NC_OPT_LANES)
        for (int j = 0; j < NC_OPT_LANES; j++) acc[j] += (double)x[i + j] * (double)x[i + j];
    for (ptrdiff_t i = nb; i < n; i++) acc[i - nb] += (double)x[i] * (double)x[i];
    double t = 0;
    for (int j = 0; j < NC_OPT_LANES; j++) t += acc[j];
    return t;
}

#endif /* NC_LEVEL */
