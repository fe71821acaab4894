/* rnn.c -- recurrent cells, one time step forward and backward, float and double. */
#include "nncore.h"
#include "bf16_round.h"

#define NC_LEVELS_BODY "rnn_body.h" /* compiled once per SIMD level */

/* Run the block given as the last argument (it uses the row index b) for b = 0 .. B-1: on a team
 * when the work is large enough to amortise one (nc_team_size; dynamic chunks, so a busy core's
 * share moves), else serially without any OpenMP region. Rows are independent, so the result is
 * the same for any thread count. */
#define NC_FOR_ROWS(B, nthreads, work, ...)                                       \
    do {                                                                         \
        int nt_ = nc_team_size((nthreads), (work));                               \
        if (nt_ <= 1) {                                                           \
            for (ptrdiff_t b = 0; b < (B); b++) __VA_ARGS__                       \
        } else {                                                                  \
            _Pragma("omp parallel for schedule(dynamic, 4) num_threads(nt_)")     \
            for (ptrdiff_t b = 0; b < (B); b++) __VA_ARGS__                       \
        }                                                                         \
    } while (0)

#define NC_F32
#include "real.h"
#include "simd_levels.h"
#include "real_undef.h"

#define NC_F64
#include "real.h"
#include "simd_levels.h"
#include "real_undef.h"
