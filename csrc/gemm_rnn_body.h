/* gemm_rnn_body.h -- the step loop of a recurrent layer (LSTM, GRU in both
 * forms, SimpleRNN) over a whole sequence in one call, on the packed
 * recurrent kernels (REAL = float/double; included by gemm_inst.h after
 * gemm_body.h, whose static helpers it uses). One loop for every cell: what
 * varies is the step of a panel of rows (rnn_fwd_panel / rnn_bwd_panel),
 * which issues the cell's products on the panel and calls its cells
 * (rnn_body.h) between them.
 *
 * Row b of step t depends only on row b of step t - 1 (h_{t-1}, c_{t-1}),
 * so the rows of the batch are independent through the whole sequence:
 * each thread takes a block of rows through all T steps, with no barrier
 * between steps (one thread team per sequence, not two per step), and for
 * each step takes its rows a micro-panel (MR rows) at a time: the panel's
 * product z_t = [x_t | h_{t-1} | 1] [W; U; b] (gemm_panels: rows read in
 * place, every tile summed over the whole k in registers), then the cell on
 * those rows while their z_t is in L1. Backward is the same in reverse: the
 * cell's delta_t of the panel, then dh_{t-1} += delta_t U^T of the same rows.
 * The blocks and panels are multiples of the micro-tile's rows, so every
 * element is summed in the same order whatever the thread count.
 * mixed_bfloat16 (bf, float only; nc_rnn_seq_*_bf16): the products on the
 * bf16 micro-kernel (nc_bf16_panels; B from nc_bf16_pack), the forward's
 * chain started from the float32 bias, dP on the bf16 GEMM; the cells get
 * NC_ACT_BF16 on their codes from the caller (h_t and delta_t rounded). */

/* gemm_panels_cols at the level in use: the columns [j0, j1) of C := act(A B + beta C + bias) on this thread,
 * A in place, B packed whole. */
static void NC_NAME(rnn_panels)(int level, ptrdiff_t m, ptrdiff_t j0, ptrdiff_t j1, ptrdiff_t k, const REAL *A,
                                 ptrdiff_t lda, const REAL *bp, ptrdiff_t ntot, REAL beta, REAL *C, ptrdiff_t ldc,
                                 const REAL *bias, int act, REAL alpha)
{
    switch (level) {
#if NC_GEMM_X86
    case NC_SIMD_AVX512:
        NC_NAME(gemm_panels_cols_avx512)(m, j0, j1, k, A, lda, bp, ntot, beta, C, ldc, bias, act, alpha);
        break;
    case NC_SIMD_AVX2:
        NC_NAME(gemm_panels_cols_avx2)(m, j0, j1, k, A, lda, bp, ntot, beta, C, ldc, bias, act, alpha);
        break;
#endif
    default: NC_NAME(gemm_panels_cols_generic)(m, j0, j1, k, A, lda, bp, ntot, beta, C, ldc, bias, act, alpha);
    }
}

/* The lines the next panel of rows will read (and write), asked for a share at a time between the column
 * tiles of this panel's product (rnn_product), so that they arrive while its multiply-adds run: hundreds of
 * prefetches in one burst fill the core's miss buffers and stall it about as long as the reads themselves
 * would (the backward cell's first reads of the saved gates stayed cold so). Whole 64-byte steps from each
 * range's start, never past its end. */
#define NC_RNN_PF_RANGES 6
typedef struct {
    const char *p[NC_RNN_PF_RANGES];
    ptrdiff_t lines[NC_RNN_PF_RANGES];
    int n;
    ptrdiff_t total, done; /* lines in all ranges, lines asked for so far */
} NC_NAME(rnn_pf_t);

static inline void NC_NAME(rnn_pf_add)(NC_NAME(rnn_pf_t) *pf, const REAL *p, ptrdiff_t n)
{
    if (!p || n <= 0 || pf->n == NC_RNN_PF_RANGES) return;
    ptrdiff_t lines = ((ptrdiff_t)sizeof(REAL) * n + 63) / 64;
    pf->p[pf->n] = (const char *)p, pf->lines[pf->n++] = lines, pf->total += lines;
}

/* Ask for the lines up to the upto-th (counted over the ranges in turn). */
static void NC_NAME(rnn_pf_issue)(NC_NAME(rnn_pf_t) *pf, ptrdiff_t upto)
{
#ifdef __GNUC__
    ptrdiff_t base = 0;
    for (int r = 0; r < pf->n && pf->done < upto; r++) {
        for (ptrdiff_t l = pf->done - base; l < pf->lines[r] && pf->done < upto; l++, pf->done++)
            __builtin_prefetch(pf->p[r] + 64 * l, 0, 2);
        base += pf->lines[r];
    }
#else
    (void)pf, (void)upto;
#endif
}

/* The micro-tile the step loop's products run on: the float32 GEMM's at `level`, or (bf, float only) the
 * bf16 micro-kernel's in use. */
static void NC_NAME(rnn_tile)(int level, int bf, int *mr, int *nr)
{
#ifdef NC_F32
    if (bf) {
        nc_bf16_tile(mr, nr);
        return;
    }
#else
    (void)bf;
#endif
    NC_NAME(gemm_tile)(level, mr, nr);
}

/* C (rows x n) := act(A B + beta C + bias) on this thread (beta 0 or 1), A's rows in place: B (k x n)
 * packed whole for the float32 panels (bias and act in the tiles' epilogue), or (bf) packed by nc_bf16_pack
 * for the bf16 micro-kernel: bf(A) B as vdpbf16ps chains it, from the float32 bias where there is one
 * (beta then 0), then act on the rows (bw: its A-panel work). pf (may be NULL): lines to ask for while it
 * runs, a share before each column tile (all of them before the bf16 product); the same bits either way. */
static inline void NC_NAME(rnn_product)(int level, int bf, ptrdiff_t rows, ptrdiff_t n, ptrdiff_t k, const REAL *A,
                                         ptrdiff_t lda, const REAL *packed, REAL beta, REAL *C, ptrdiff_t ldc,
                                         const REAL *bias, int act, REAL alpha, uint32_t *bw,
                                         NC_NAME(rnn_pf_t) *pf)
{
#ifdef NC_F32
    if (bf) {
        if (pf) NC_NAME(rnn_pf_issue)(pf, pf->total);
        if (bias)
            for (ptrdiff_t r = 0; r < rows; r++) memcpy(C + r * ldc, bias, (size_t)n * sizeof(REAL));
        nc_bf16_panels(rows, n, k, A, lda, packed, bias || beta != 0, C, ldc, bw);
        if (act != NC_ACT_LINEAR)
            for (ptrdiff_t r = 0; r < rows; r++) NC_NAME(act_forward)(act, alpha, C + r * ldc, C + r * ldc, n);
        return;
    }
#else
    (void)bf, (void)bw;
#endif
    int mr, nr;
    NC_NAME(gemm_tile)(level, &mr, &nr);
    const REAL *bp = packed + NC_GEMM_PACK_HEAD;
    const ptrdiff_t ntot = (n + nr - 1) / nr * nr, tiles = ntot / nr;
    if (!pf || pf->done >= pf->total) {
        NC_NAME(rnn_panels)(level, rows, 0, n, k, A, lda, bp, ntot, beta, C, ldc, bias, act, alpha);
        return;
    }
    const ptrdiff_t first = pf->done, left = pf->total - pf->done;
    for (ptrdiff_t q = 0; q < tiles; q++) {
        ptrdiff_t j0 = q * nr, j1 = j0 + nr < n ? j0 + nr : n;
        NC_NAME(rnn_pf_issue)(pf, first + (q + 1) * left / tiles);
        NC_NAME(rnn_panels)(level, rows, j0, j1, k, A, lda, bp, ntot, beta, C, ldc, bias, act, alpha);
    }
}

/* Backward, 1: the next panel's lines asked for a share between the column tiles of this panel's product;
 * 0: all at once before the panel (the form before; an A/B switch). */
#ifndef NC_RNN_PREFETCH
#define NC_RNN_PREFETCH 1
#endif

/* The micro-tiles of rows a thread takes through the whole sequence at a time where nothing is summed
 * across rows (the forward, the backward without dP): any cut at whole tiles gives the same bits. */
#ifndef NC_RNN_CHUNK_TILES
#define NC_RNN_CHUNK_TILES 2
#endif

/* Steps of delta summed into the weight gradient by one product (k = that many times a block's rows). */
#ifndef NC_RNN_WGRAD_STEPS
#define NC_RNN_WGRAD_STEPS 2
#endif

/* A thread's share of the weight gradient: C := A^T d + beta C over `rows` rows (C m x n, ldc apart; k =
 * rows; A's rows lda apart, d's ldd), on the float32 GEMM at `level`, or (bf) on the bf16 GEMM, this thread
 * alone. -1 if out of memory. */
static int NC_NAME(rnn_wgrad)(int level, int bf, ptrdiff_t m, ptrdiff_t n, ptrdiff_t rows, const REAL *A,
                              ptrdiff_t lda, const REAL *d, ptrdiff_t ldd, REAL beta, REAL *C, ptrdiff_t ldc,
                              REAL *work)
{
#ifdef NC_F32
    if (bf)
        return nc_gemm_bf16_f32(1, 0, m, n, rows, 1, A, lda, d, ldd, beta, C, ldc, NULL, NC_ACT_LINEAR, 0, 0, 1) != 0
                   ? -1
                   : 0;
#else
    (void)bf;
#endif
    switch (level) {
#if NC_GEMM_X86
    case NC_SIMD_AVX512:
        NC_NAME(gemm_serial_avx512)(1, 0, m, n, rows, 1, A, lda, d, ldd, beta, C, ldc, NULL, NC_ACT_LINEAR, 0, 0,
                                    work, NULL, 0, 0);
        break;
    case NC_SIMD_AVX2:
        NC_NAME(gemm_serial_avx2)(1, 0, m, n, rows, 1, A, lda, d, ldd, beta, C, ldc, NULL, NC_ACT_LINEAR, 0, 0, work,
                                  NULL, 0, 0);
        break;
#endif
    default:
        NC_NAME(gemm_serial_generic)(1, 0, m, n, rows, 1, A, lda, d, ldd, beta, C, ldc, NULL, NC_ACT_LINEAR, 0, 0,
                                     work, NULL, 0, 0);
    }
    return 0;
}

static ptrdiff_t NC_NAME(rnn_wgrad_work)(int level, ptrdiff_t K, ptrdiff_t G, ptrdiff_t rows)
{
    switch (level) {
#if NC_GEMM_X86
    case NC_SIMD_AVX512: return NC_NAME(gemm_work_avx512)(K, G, rows);
    case NC_SIMD_AVX2: return NC_NAME(gemm_work_avx2)(K, G, rows);
#endif
    default: return NC_NAME(gemm_work_generic)(K, G, rows);
    }
}

/* One sequence as the step loop takes it: the cell (NC_RNN_*), the products' kernels and the arrays,
 * time-major; which arrays a cell uses is in nncore.h (nc_rnn_seq_forward / backward). */
typedef struct {
    int cell, bf, act, ract;
    REAL alpha, ralpha;
    ptrdiff_t T, B, D, u, K, G;
    const REAL *packed, *packed2, *bias;
    int h0;      /* forward: h[0] may be non-zero; backward: dL/dh[0] wanted */
    int h0r;     /* backward: h[0] may be non-zero (the GRU's reset gate then meets it at t = 0) */
    REAL dh_beta;
    const REAL *x;
    REAL *xh, *z, *s1, *s2, *h, *dh, *dc, *delta, *drec;
} NC_NAME(rnn_seq_t);

/* The gate columns of a cell for u units. */
static ptrdiff_t NC_NAME(rnn_gates)(int cell, ptrdiff_t u)
{
    return cell == NC_RNN_LSTM ? 4 * u : cell == NC_RNN_SIMPLE ? u : 3 * u;
}

/* Step t of the rows [r0, r0 + rows) forward: the cell's products, each on the panel's rows while they are
 * in L1, and its cell (rnn_body.h) between them. h[t] holds h_{t-1}, h[t + 1] gets h_t. */
static void NC_NAME(rnn_fwd_panel)(const NC_NAME(rnn_seq_t) *s, int level, ptrdiff_t t, ptrdiff_t r0, ptrdiff_t rows,
                                   uint32_t *bw)
{
    const int bf = s->bf, act = s->act, ract = s->ract;
    const REAL alpha = s->alpha, ralpha = s->ralpha;
    const ptrdiff_t B = s->B, D = s->D, u = s->u, K = s->K, G = s->G, at = t * B + r0;
    REAL *zt = s->z + at * G, *hp = s->h + at * u, *ht = s->h + (at + B) * u;
    const int rec = t > 0 || s->h0; /* h_{t-1} may be non-zero */
    switch (s->cell) {
    case NC_RNN_LSTM:
    case NC_RNN_SIMPLE: { /* one product a step; SimpleRNN's cell is its epilogue, h_t = a(z_t), in z = h[1:] */
        const int pact = s->cell == NC_RNN_SIMPLE ? act : NC_ACT_LINEAR;
        if (D > 0) { /* z_t = [x_t | h_{t-1} | 1] [W; U; b]: the panel's rows of xh_t, then one product */
            REAL *a = s->xh + at * K;
            for (ptrdiff_t r = 0; r < rows; r++) {
                memcpy(a + r * K, s->x + (at + r) * D, (size_t)D * sizeof(REAL));
                memcpy(a + r * K + D, hp + r * u, (size_t)u * sizeof(REAL));
                if (K > D + u) a[r * K + D + u] = 1;
            }
            /* bf: the chain of bf(x_t | h_{t-1}) [W; U] from the float32 bias (the kernel lacks the row b) */
            NC_NAME(rnn_product)(level, bf, rows, G, bf ? D + u : K, a, K, s->packed, 0, zt, G, bf ? s->bias : NULL,
                                  pact, alpha, bw, NULL);
        } else if (rec) { /* z_t += h_{t-1} U */
            NC_NAME(rnn_product)(level, bf, rows, G, u, hp, u, s->packed, 1, zt, G, NULL, pact, alpha, bw, NULL);
        } else if (pact != NC_ACT_LINEAR) { /* h_0 = a(x_0 W + b) */
            for (ptrdiff_t r = 0; r < rows; r++) NC_NAME(act_forward)(pact, alpha, zt + r * G, zt + r * G, G);
        }
        if (s->cell == NC_RNN_LSTM)
            NC_NAME(lstm_cell_forward)(act, alpha, ract, ralpha, zt, s->s1 + at * u, hp, NULL, s->s1 + (at + B) * u,
                                       s->s2 + at * u, ht, rows, u, 1);
        break;
    }
    case NC_RNN_GRU: { /* z_t = x_t W + b_in, rec_t = h_{t-1} U + b_rec, then the cell on both */
        REAL *rt = s->s1 + at * G;
        const REAL *b_in = s->bias, *b_rec = s->bias ? s->bias + G : NULL;
        if (D > 0) /* x_t's rows read in place, W in packed2 */
            NC_NAME(rnn_product)(level, bf, rows, G, D, s->x + at * D, D, s->packed2, 0, zt, G, b_in, NC_ACT_LINEAR, 0,
                                 bw, NULL);
        if (rec) {
            NC_NAME(rnn_product)(level, bf, rows, G, u, hp, u, s->packed, 0, rt, G, b_rec, NC_ACT_LINEAR, 0, bw, NULL);
        } else {
            for (ptrdiff_t r = 0; r < rows; r++)
                if (b_rec) memcpy(rt + r * G, b_rec, (size_t)G * sizeof(REAL));
                else memset(rt + r * G, 0, (size_t)G * sizeof(REAL));
        }
        NC_NAME(gru_cell_forward)(act, alpha, ract, ralpha, zt, rt, hp, NULL, ht, rows, u, 1);
        break;
    }
    case NC_RNN_GRU_RB: { /* z_zr += h_{t-1} U_zr; z, r, q = r h_{t-1}; z_h += q U_h; h_t */
        REAL *qt = s->s1 + at * u;
        if (rec)
            NC_NAME(rnn_product)(level, bf, rows, 2 * u, u, hp, u, s->packed, 1, zt, G, NULL, NC_ACT_LINEAR, 0, bw,
                                 NULL);
        NC_NAME(gru_rb_gates_forward)(ract, ralpha, zt, hp, NULL, qt, rows, u, 1);
        if (rec)
            NC_NAME(rnn_product)(level, bf, rows, u, u, qt, u, s->packed2, 1, zt + 2 * u, G, NULL, NC_ACT_LINEAR, 0,
                                  bw, NULL);
        NC_NAME(gru_rb_state_forward)(act, alpha, zt, hp, NULL, ht, rows, u, 1);
        break;
    }
    }
}

/* Step t of the rows [r0, r0 + rows) backward: the cell's delta_t into dt (the panel's rows of delta, G
 * apart; the GRU's drec_t into drt likewise), then dh_{t-1} (+)= the products of the cell's deltas with
 * U^T. dh[t + 1] holds dL/dh_t, dh[t] gets dL/dh_{t-1} (when t > 0 or h0). dq: rows x u scratch (the GRU's
 * reset-before form). */
static void NC_NAME(rnn_bwd_panel)(const NC_NAME(rnn_seq_t) *s, int level, ptrdiff_t t, ptrdiff_t r0, ptrdiff_t rows,
                                   REAL *dt, REAL *drt, REAL *dq, uint32_t *bw, NC_NAME(rnn_pf_t) *pf)
{
    const int bf = s->bf, act = s->act, ract = s->ract;
    const REAL alpha = s->alpha, ralpha = s->ralpha;
    const ptrdiff_t B = s->B, u = s->u, G = s->G, at = t * B + r0;
    REAL *zt = s->z + at * G, *hp = s->h ? s->h + at * u : NULL, *dht = s->dh + (at + B) * u;
    REAL *dhp = t > 0 || s->h0 ? s->dh + at * u : NULL;
    if (dhp && s->dh_beta == 0 && (s->cell == NC_RNN_GRU || s->cell == NC_RNN_GRU_RB))
        memset(dhp, 0, (size_t)(rows * u) * sizeof(REAL)); /* their cells add dh z to it */
    switch (s->cell) {
    case NC_RNN_LSTM:
        NC_NAME(lstm_cell_backward)(act, alpha, ract, ralpha, zt, s->s1 + at * u, s->s2 + at * u, dht, NULL,
                                    s->dc + r0 * u, dt, NULL, rows, u, 1);
        break;
    case NC_RNN_SIMPLE: /* delta_t = dh_t a'(h_t), h_t in z = h[1:] */
        NC_NAME(simple_rnn_cell_backward)(act, alpha, zt, dht, NULL, dt, NULL, rows, u, 1);
        break;
    case NC_RNN_GRU: /* dx_t = delta_t, drec_t; dh_{t-1} += dh z, then += drec_t U^T */
        NC_NAME(gru_cell_backward)(act, alpha, ract, ralpha, zt, s->s1 + at * G, hp, dht, NULL, dt, drt, dhp, rows, u,
                                   1);
        if (dhp)
            NC_NAME(rnn_product)(level, bf, rows, u, G, drt, G, s->packed, 1, dhp, u, NULL, NC_ACT_LINEAR, 0, bw, pf);
        return;
    case NC_RNN_GRU_RB: /* delta_z, delta_h; dq = delta_h U_h^T, delta_r; dh_{t-1} += delta_zr U_zr^T */
        NC_NAME(gru_rb_state_backward)(act, alpha, ract, ralpha, zt, hp, dht, NULL, dt, dhp, rows, u, 1);
        if (t > 0 || s->h0r) { /* r meets a non-zero h_{t-1} */
            NC_NAME(rnn_product)(level, bf, rows, u, u, dt + 2 * u, G, s->packed2, 0, dq, u, NULL, NC_ACT_LINEAR, 0,
                                  bw, NULL);
            NC_NAME(gru_rb_reset_backward)(ract, ralpha, zt, hp, NULL, dq, dt, dhp, rows, u, 1);
        }
        if (dhp) NC_NAME(rnn_product)(level, bf, rows, u, 2 * u, dt, G, s->packed, 1, dhp, u, NULL, NC_ACT_LINEAR,
                                       0, bw, pf);
        return;
    }
    if (dhp) /* dh_{t-1} := delta_t U^T + dh_beta dh_{t-1} */
        NC_NAME(rnn_product)(level, bf, rows, u, G, dt, G, s->packed, s->dh_beta, dhp, u, NULL, NC_ACT_LINEAR, 0, bw,
                             pf);
}

/* The lines of the panel of nrows rows from row nr0 of step nt0 (the next one this thread takes backward)
 * that it reads out of cache, into pf: the saved gates and state its cell reads (a step written long ago),
 * its rows of dh_{t-1} (written by its product) and, with dP, of xh (the LSTM's, copied at the step's end).
 * Forward, the same for the lines a panel writes (z, xh, the cell's outputs) cost 1-5% of the loop: not
 * asked for. */
static void NC_NAME(rnn_next_lines)(const NC_NAME(rnn_seq_t) *s, int dP, ptrdiff_t nt0, ptrdiff_t nr0,
                                    ptrdiff_t nrows, NC_NAME(rnn_pf_t) *pf)
{
    const ptrdiff_t B = s->B, u = s->u, K = s->K, G = s->G, nat = nt0 * B + nr0;
    pf->n = 0, pf->total = pf->done = 0;
    NC_NAME(rnn_pf_add)(pf, s->z + nat * G, nrows * G);
    switch (s->cell) {
    case NC_RNN_LSTM:
        NC_NAME(rnn_pf_add)(pf, s->s1 + nat * u, nrows * u);
        NC_NAME(rnn_pf_add)(pf, s->s2 + nat * u, nrows * u);
        if (dP && s->xh) NC_NAME(rnn_pf_add)(pf, s->xh + nat * K, nrows * K);
        break;
    case NC_RNN_GRU:
        NC_NAME(rnn_pf_add)(pf, s->s1 + nat * G, nrows * G);
        NC_NAME(rnn_pf_add)(pf, s->h + nat * u, nrows * u);
        break;
    case NC_RNN_GRU_RB: NC_NAME(rnn_pf_add)(pf, s->h + nat * u, nrows * u); break;
    default: break;
    }
    if (nt0 > 0 || s->h0) NC_NAME(rnn_pf_add)(pf, s->dh + nat * u, nrows * u);
}

/* Rows [i0, i1) through every step: forward (dir 0) or backward (dir 1). Each
 * step takes the rows a micro-panel (MR rows) at a time: the panel's
 * products, their rows of A read in place and every tile summed over the whole
 * k in registers (gemm_panels), and its cell while the panel's rows are in
 * L1 (rnn_fwd_panel / rnn_bwd_panel: the cell is the variable part).
 * Backward with dP (K x G, else NULL): the weight gradient summed over the
 * block's rows while their deltas are in cache, every NC_RNN_WGRAD_STEPS steps
 * (dP = the block's part, its first product overwrites it): LSTM and SimpleRNN
 * dP = [dW; dU; db] += xh^T delta; the GRU (reset_after) from the rows
 * [x_t | 1 | h_{t-1} | 1] (K = D + u + 2), dP = [dW; db_in; dU; db_rec]:
 * [dW; db_in] += [x_t | 1]^T dx_t and [dU; db_rec] += [h_{t-1} | 1]^T drec_t;
 * the GRU (reset before) from [x_t | 1 | h_{t-1} | q_t] (K = D + u + 1, q_t =
 * r_t h_{t-1} from s1), dP = [dW; db; dU]: [dW; db] += [x_t | 1]^T delta_t,
 * dU_zr += h_{t-1}^T delta_zr and dU_h += q_t^T delta_h (three products).
 * The deltas then go to scratch slots of the block's rows (reused: they go to
 * memory only when the caller keeps them).
 * Returns -1 if its workspace could not be had, else 0. */
static int NC_NAME(rnn_seq_rows)(const NC_NAME(rnn_seq_t) *s, int level, int dir, ptrdiff_t i0, ptrdiff_t i1,
                                  REAL *dP)
{
    int mr, nr;
    const int bf = s->bf, gru = s->cell == NC_RNN_GRU, rb = s->cell == NC_RNN_GRU_RB;
    NC_NAME(rnn_tile)(level, bf, &mr, &nr);
    const ptrdiff_t T = s->T, B = s->B, D = s->D, u = s->u, K = s->K, G = s->G, nrow = i1 - i0;
    const ptrdiff_t ka = rb ? K + u : K; /* the A rows of the weight gradient: the reset-before form's q_t too */
    uint32_t *bw = NULL;
    (void)nr;
#ifdef NC_F32
    /* the deepest product a step runs: K, G (dh_{t-1} from the deltas) or D (the GRU's x_t W on the step's rows) */
    ptrdiff_t kb = K > G ? K : G;
    kb = D > kb ? D : kb;
    if (bf && !(bw = (uint32_t *)malloc((size_t)nc_bf16_panels_work(kb) * sizeof(uint32_t)))) return -1;
#endif
    if (dir == 0) {
        for (ptrdiff_t t = 0; t < T; t++)
            for (ptrdiff_t r0 = i0; r0 < i1; r0 += mr)
                NC_NAME(rnn_fwd_panel)(s, level, t, r0, i1 - r0 < mr ? i1 - r0 : mr, bw);
        free(bw);
        return 0;
    }
    NC_NAME(rnn_pf_t) pf = {0}, *pfp = NC_RNN_PREFETCH ? &pf : NULL;
    /* with dP: the deltas and the A rows of the block go to scratch slots, S steps of them, and each S
     * steps dP += (their A)^T (their deltas), k = S rows a step: the products are S times as deep as
     * one step's rows would give (a tile's C passes through memory once per S steps) */
    enum { S = NC_RNN_WGRAD_STEPS };
    const ptrdiff_t nd = dP ? S * nrow * G * (gru ? 2 : 1) : 0, na = dP ? S * nrow * ka : 0;
    const ptrdiff_t nw = dP ? NC_NAME(rnn_wgrad_work)(level, ka, G, S * nrow) : 0;
    const ptrdiff_t nq = s->cell == NC_RNN_GRU_RB ? mr * u : 0;
    REAL *work = NULL, *dsc = NULL, *rsc = NULL, *xsc = NULL, *dq = NULL;
    if (nw + nd + na + nq) {
        if (!(work = (REAL *)malloc((size_t)(nw + nd + na + nq) * sizeof(REAL)))) {
            free(bw);
            return -1;
        }
        dsc = work + nw, rsc = dsc + S * nrow * G, xsc = work + nw + nd, dq = xsc + na;
    }
    int failed = 0;
    for (ptrdiff_t t = T - 1; t >= 0 && !failed; t--) {
        /* this step's delta rows: row r0 of the block at dblk + (r0 - i0) G (the GRU's drec at rblk) */
        ptrdiff_t slot = (T - 1 - t) % S, at0 = t * B + i0;
        REAL *dblk = dP ? dsc + slot * nrow * G : s->delta + at0 * G;
        REAL *rblk = !gru ? NULL : dP ? rsc + slot * nrow * G : s->drec + at0 * G;
        for (ptrdiff_t r0 = i0; r0 < i1; r0 += mr) {
            ptrdiff_t nt0 = r0 + mr < i1 ? t : t - 1, nr0 = r0 + mr < i1 ? r0 + mr : i0;
            pf.n = 0, pf.total = pf.done = 0;
            if (nt0 >= 0) NC_NAME(rnn_next_lines)(s, dP != NULL, nt0, nr0, i1 - nr0 < mr ? i1 - nr0 : mr, &pf);
            if (!pfp) NC_NAME(rnn_pf_issue)(&pf, pf.total); /* all at once, before the panel */
            NC_NAME(rnn_bwd_panel)(s, level, t, r0, i1 - r0 < mr ? i1 - r0 : mr, dblk + (r0 - i0) * G,
                                   rblk ? rblk + (r0 - i0) * G : NULL, dq, bw, pfp);
            NC_NAME(rnn_pf_issue)(&pf, pf.total); /* what no product took */
        }
        if (!dP) continue;
        if (s->delta) memcpy(s->delta + at0 * G, dblk, (size_t)(nrow * G) * sizeof(REAL));
        if (gru && s->drec) memcpy(s->drec + at0 * G, rblk, (size_t)(nrow * G) * sizeof(REAL));
        REAL *a = xsc + slot * nrow * ka;
        if (gru || rb) { /* [x_t | 1 | h_{t-1} | 1], reset before [x_t | 1 | h_{t-1} | q_t] */
            for (ptrdiff_t r = 0; r < nrow; r++, a += ka) {
                memcpy(a, s->x + (at0 + r) * D, (size_t)D * sizeof(REAL));
                a[D] = 1;
                memcpy(a + D + 1, s->h + (at0 + r) * u, (size_t)u * sizeof(REAL));
                if (rb) memcpy(a + D + 1 + u, s->s1 + (at0 + r) * u, (size_t)u * sizeof(REAL));
                else a[D + u + 1] = 1;
            }
        } else {
            memcpy(a, s->xh + at0 * K, (size_t)(nrow * K) * sizeof(REAL));
        }
        if (slot == S - 1 || t == 0) { /* dP += A^T delta over the slots' rows */
            ptrdiff_t k = (slot + 1) * nrow;
            REAL beta = t + slot == T - 1 ? 0 : 1;
            REAL *dU = dP + (D + 1) * G;
            if (gru)
                failed = NC_NAME(rnn_wgrad)(level, bf, D + 1, G, k, xsc, K, dsc, G, beta, dP, G, work) ||
                         NC_NAME(rnn_wgrad)(level, bf, u + 1, G, k, xsc + D + 1, K, rsc, G, beta, dU, G, work);
            else if (rb) /* [dW; db] += [x_t | 1]^T delta_t, dU_zr += h_{t-1}^T delta_zr, dU_h += q_t^T delta_h */
                failed = NC_NAME(rnn_wgrad)(level, bf, D + 1, G, k, xsc, ka, dsc, G, beta, dP, G, work) ||
                         NC_NAME(rnn_wgrad)(level, bf, u, 2 * u, k, xsc + D + 1, ka, dsc, G, beta, dU, G, work) ||
                         NC_NAME(rnn_wgrad)(level, bf, u, u, k, xsc + D + 1 + u, ka, dsc + 2 * u, G, beta, dU + 2 * u,
                                            G, work);
            else
                failed = NC_NAME(rnn_wgrad)(level, bf, K, G, k, xsc, K, dsc, G, beta, dP, G, work);
        }
    }
    free(work);
    free(bw);
    return failed ? -1 : 0;
}

/* The blocks of rows the threads take in turn: about 64 rows each, an even
 * count (two threads get equal shares), the micro-tiles spread evenly: 128
 * rows are 8 + 8 tiles of 8 (AVX-512) or 11 + 11 tiles of 6 (AVX2). Each
 * block sums its own part of the weight gradient, k = its rows times
 * NC_RNN_WGRAD_STEPS a product (the lstm row's backward loop with dP, AVX2,
 * 1 thread: 13.0 ms on blocks of 4 to 6 tiles of 6 and one step a product,
 * 12.7 on blocks of 11 tiles, 12.3 with two steps a product, against 12.8
 * for the loop and a separate dP GEMM). Fixed by B and the tile alone, not by the thread
 * count: the parts are added in block order, so the result does not depend
 * on the thread count. The count comes from B itself: from the rows rounded
 * up to whole tiles, AVX2's 128 rows (22 tiles, 132 rows) made 3, then 4
 * blocks of 5-6 tiles. */
static ptrdiff_t NC_NAME(rnn_nblocks)(ptrdiff_t B, int mr)
{
    ptrdiff_t tiles = (B + mr - 1) / mr, nb = (B + 63) / 64;
    if (nb > 1 && nb % 2) nb++;
    return nb < tiles ? nb : tiles;
}

/* The packed kernels' shapes a cell's products take (k x n, one or two). */
static int NC_NAME(rnn_packed_ok)(const NC_NAME(rnn_seq_t) *s, int level, int dir)
{
    const ptrdiff_t u = s->u, G = s->G;
    ptrdiff_t k1, n1, k2 = 0, n2 = 0;
    if (s->cell == NC_RNN_GRU_RB) /* U_zr and U_h forward, U_zr^T and U_h^T backward */
        k1 = dir ? 2 * u : u, n1 = dir ? u : 2 * u, k2 = u, n2 = u;
    else if (s->cell == NC_RNN_GRU && !dir) /* U, and W with x */
        k1 = u, n1 = G, k2 = s->D, n2 = G;
    else if (dir)
        k1 = G, n1 = u;
    else
        k1 = s->D > 0 ? (s->bf ? s->D + u : s->K) : u, n1 = G;
#ifdef NC_F32
    if (s->bf) return nc_bf16_packed_ok(s->packed, k1, n1) && (!k2 || nc_bf16_packed_ok(s->packed2, k2, n2));
#endif
    return NC_NAME(gemm_packed_ok)(s->packed, level, k1, n1) &&
           (!k2 || NC_NAME(gemm_packed_ok)(s->packed2, level, k2, n2));
}

static int NC_NAME(rnn_seq)(const NC_NAME(rnn_seq_t) *s, int dir, REAL *dP, int nthreads)
{
    int level = nc_active_simd_level();
    const ptrdiff_t T = s->T, B = s->B, D = s->D, u = s->u, K = s->K, G = s->G;
    if (s->cell < NC_RNN_LSTM || s->cell > NC_RNN_SIMPLE) return -3;
    if (!NC_NAME(rnn_packed_ok)(s, level, dir)) return -2;
    if (B <= 0 || u <= 0) return 0;
    if (T <= 0) {
        if (dP) memset(dP, 0, (size_t)(K * G) * sizeof(REAL));
        return 0;
    }
    int mr, nr;
    NC_NAME(rnn_tile)(level, s->bf, &mr, &nr);
    /* the products' multiply-adds plus the cells' (about 40 a unit) */
    double work = (double)T * (double)B * (double)u * (2.0 * (double)G + 40.0) + (double)T * B * D * 2.0 * G;
    if (dP) work += (double)T * B * K * 2.0 * G;
    int nt = work < NC_GEMM_TEAM_WORK * 2.0 ? 1 : nc_team_size(nthreads, work);
    /* bf16 with dP: blocks of whole 24-row quanta (8, 6 and 4, the bf16 kernels' tile rows, divide 24), so
     * that the parts of dP, and with them its bits, are the same on every bf16 kernel */
    ptrdiff_t bq = s->bf && dP ? 24 : mr, tiles = (B + bq - 1) / bq;
    /* the blocks the threads take in turn: with dP about 64 rows each (rnn_nblocks), each summing its part
     * of dP; else, with nothing summed across rows, NC_RNN_CHUNK_TILES tiles each, so that a thread that
     * starts late (a sleeping thread wakes in 10-100 us) or runs on a busier core takes fewer */
    ptrdiff_t nb = dP ? NC_NAME(rnn_nblocks)(B, (int)bq) : (tiles + NC_RNN_CHUNK_TILES - 1) / NC_RNN_CHUNK_TILES;
    if (nt > nb) nt = (int)nb;
    /* block 0 sums its part of the weight gradient in dP, the others in parts of their own */
    REAL *parts = NULL;
    if (dP && nb > 1) {
        parts = (REAL *)malloc((size_t)((nb - 1) * K * G) * sizeof(REAL));
        if (!parts) return -1;
    }
    int failed = 0;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt) reduction(| : failed) if (nt > 1)
    for (ptrdiff_t q = 0; q < nb; q++) {
        ptrdiff_t i0 = q * tiles / nb * bq, i1 = (q + 1) * tiles / nb * bq;
        if (i1 > B) i1 = B;
        REAL *part = !dP ? NULL : q == 0 ? dP : parts + (q - 1) * K * G;
        failed |= NC_NAME(rnn_seq_rows)(s, level, dir, i0, i1, part) != 0;
    }
    if (parts) {
        if (!failed) /* the blocks' parts in block order */
            for (ptrdiff_t q = 1; q < nb; q++) {
                const REAL *src = parts + (q - 1) * K * G;
#pragma omp simd
                for (ptrdiff_t e = 0; e < K * G; e++) dP[e] += src[e];
            }
        free(parts);
    }
    return failed ? -1 : 0;
}

static int NC_NAME(rnn_seq_fwd)(int bf, int cell, ptrdiff_t T, ptrdiff_t B, ptrdiff_t D, ptrdiff_t u, int act,
                                REAL alpha, int ract, REAL ralpha, const REAL *packed, const REAL *packed2,
                                const REAL *bias, int with_h0, const REAL *x, REAL *xh, REAL *z, REAL *s1, REAL *s2,
                                REAL *h, int nthreads)
{
    if (D > 0 && cell == NC_RNN_GRU_RB) return -3;
    NC_NAME(rnn_seq_t) s = {0};
    s.cell = cell, s.bf = bf, s.act = act, s.ract = ract, s.alpha = alpha, s.ralpha = ralpha;
    s.T = T, s.B = B, s.D = D, s.u = u, s.G = NC_NAME(rnn_gates)(cell, u);
    s.K = D > 0 && cell != NC_RNN_GRU ? D + u + 1 : u; /* the layer passes [W; U; b]; without a bias, a zero row b */
    s.packed = packed, s.packed2 = packed2, s.bias = bias, s.h0 = with_h0, s.dh_beta = 1;
    s.x = x, s.xh = xh, s.s1 = s1, s.s2 = s2, s.h = h;
    s.z = cell == NC_RNN_SIMPLE ? h + B * u : z; /* SimpleRNN: z_t and h_t in h[t + 1] */
    return NC_NAME(rnn_seq)(&s, 0, NULL, nthreads);
}

static int NC_NAME(rnn_seq_bwd)(int bf, int cell, ptrdiff_t T, ptrdiff_t B, ptrdiff_t u, int act, REAL alpha,
                                int ract, REAL ralpha, const REAL *packed_t, const REAL *packed2_t, int with_h0,
                                int h0, int add_dh, const REAL *gates, const REAL *s1, const REAL *s2, const REAL *h,
                                REAL *dh, REAL *dc, REAL *delta, REAL *drec, ptrdiff_t K, const REAL *xh, REAL *dP,
                                int nthreads)
{
    if (!dP) xh = NULL, K = u;
    if (!delta && !dP) return -3;
    if (cell == NC_RNN_GRU && !drec && !dP) return -3;
    NC_NAME(rnn_seq_t) s = {0};
    s.cell = cell, s.bf = bf, s.act = act, s.ract = ract, s.alpha = alpha, s.ralpha = ralpha;
    s.T = T, s.B = B, s.u = u, s.K = K, s.G = NC_NAME(rnn_gates)(cell, u);
    if (cell == NC_RNN_GRU && dP) { /* xh is x (T, B, D), K = D + u + 2 */
        if (K < u + 3) return -3;
        s.D = K - u - 2, s.x = xh, xh = NULL;
    }
    if (cell == NC_RNN_GRU_RB && dP) { /* xh is x (T, B, D), K = D + u + 1; s1 = q */
        if (K < u + 2 || !s1) return -3;
        s.D = K - u - 1, s.x = xh, xh = NULL;
    }
    s.packed = packed_t, s.packed2 = packed2_t, s.h0 = with_h0, s.h0r = h0 || with_h0, s.dh_beta = add_dh ? 1 : 0;
    s.xh = (REAL *)xh, s.z = (REAL *)(cell == NC_RNN_SIMPLE ? h + B * u : gates), s.s1 = (REAL *)s1;
    s.s2 = (REAL *)s2, s.h = (REAL *)h, s.dh = dh, s.dc = dc, s.delta = delta, s.drec = drec;
    return NC_NAME(rnn_seq)(&s, 1, dP, nthreads);
}

int NC_NAME(rnn_seq_forward)(int cell, ptrdiff_t T, ptrdiff_t B, ptrdiff_t D, ptrdiff_t u, int act, REAL alpha,
                             int ract, REAL ralpha, const REAL *packed, const REAL *packed2, const REAL *bias,
                             int with_h0, const REAL *x, REAL *xh, REAL *z, REAL *s1, REAL *s2, REAL *h, int nthreads)
{
    if (D > 0 && bias && cell != NC_RNN_GRU) return -3; /* [W; U; b] holds it */
    return NC_NAME(rnn_seq_fwd)(0, cell, T, B, D, u, act, alpha, ract, ralpha, packed, packed2, bias, with_h0, x, xh,
                                z, s1, s2, h, nthreads);
}

int NC_NAME(rnn_seq_backward)(int cell, ptrdiff_t T, ptrdiff_t B, ptrdiff_t u, int act, REAL alpha, int ract,
                              REAL ralpha, const REAL *packed_t, const REAL *packed2_t, int with_h0, int h0,
                              int add_dh, const REAL *gates, const REAL *s1, const REAL *s2, const REAL *h, REAL *dh,
                              REAL *dc, REAL *delta, REAL *drec, ptrdiff_t K, const REAL *xh, REAL *dP, int nthreads)
{
    return NC_NAME(rnn_seq_bwd)(0, cell, T, B, u, act, alpha, ract, ralpha, packed_t, packed2_t, with_h0, h0, add_dh,
                                gates, s1, s2, h, dh, dc, delta, drec, K, xh, dP, nthreads);
}

#ifdef NC_F32
int nc_rnn_seq_forward_bf16(int cell, ptrdiff_t T, ptrdiff_t B, ptrdiff_t D, ptrdiff_t u, int act, float alpha,
                            int ract, float ralpha, const float *packed, const float *packed2, const float *bias,
                            int with_h0, const float *x, float *xh, float *z, float *s1, float *s2, float *h,
                            int nthreads)
{
    return NC_NAME(rnn_seq_fwd)(1, cell, T, B, D, u, act, alpha, ract, ralpha, packed, packed2, bias, with_h0, x, xh,
                                z, s1, s2, h, nthreads);
}

int nc_rnn_seq_backward_bf16(int cell, ptrdiff_t T, ptrdiff_t B, ptrdiff_t u, int act, float alpha, int ract,
                             float ralpha, const float *packed_t, const float *packed2_t, int with_h0, int h0,
                             int add_dh, const float *gates, const float *s1, const float *s2, const float *h,
                             float *dh, float *dc, float *delta, float *drec, ptrdiff_t K, const float *xh, float *dP,
                             int nthreads)
{
    return NC_NAME(rnn_seq_bwd)(1, cell, T, B, u, act, alpha, ract, ralpha, packed_t, packed2_t, with_h0, h0, add_dh,
                                gates, s1, s2, h, dh, dc, delta, drec, K, xh, dP, nthreads);
}
#endif
