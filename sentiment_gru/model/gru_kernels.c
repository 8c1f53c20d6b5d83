/* Whole-layer GRU recurrences for BiGRUEncoder's "fast" path (float32, CPU).
 *
 * gru_forward runs one layer's recurrence for both directions, gru_backward its backward
 * pass, the gradients of W_hh and both biases included; the input projections (gi = x W_ih^T)
 * and their gradients are matrix products over all tokens, left to torch. Built with
 * OpenMP, each direction runs on a thread of its own: the two never depend on each other,
 * so the threads need no synchronisation between steps. With one thread (or no OpenMP) the
 * directions run one after the other; either way each direction's arithmetic, and so every
 * result, is the same.
 *
 * Tokens are in the packed layout (time-major, longest sequence first, no padding): step t's
 * rows are offsets[t] .. offsets[t] + batch_sizes[t] - 1 and batch sizes never grow, so row i
 * of a step continues row i of the step before, and belongs to sequence order[i] of the
 * batch. Direction 0 steps through the rows in this (natural) order; direction 1 reads each
 * sequence backwards: its step-order row p is the natural row rev[p]. For both, row i of
 * step t is its sequence's last step when i >= batch_sizes[t + 1].
 *
 * Arguments given as [2] are one array per direction, d = 0 and 1:
 *   natural order:  gi[2], grad_gi[2]: [tokens, 3H]
 *                   out, grad_out: [tokens, 2H] (direction 1 from column H)
 *   step order:     saved[2]: [tokens, 4H], each row's r, z, n and ghn (= W_hn h + b_hn)
 *   per sequence:   grad_h_n: [2, batch, H], the final states' gradients
 *   weights:        w_hh[2], grad_w_hh[2]: [3H, H]; b_ih[2], b_hh[2], grad_b_ih[2], grad_b_hh[2]: [3H]
 *                   (PyTorch's layout: the r, z and n gates stacked)
 *
 * PyTorch's equations (gi holds W_i x), from h = 0:
 *   r = sigmoid(gi_r + b_ir + W_hr h + b_hr), z = sigmoid(gi_z + b_iz + W_hz h + b_hz)
 *   ghn = W_hn h + b_hn, n = tanh(gi_n + b_in + r * ghn), h' = (1 - z) * n + z * h
 * Backward, with g the gradient of h' (its output's gradient plus what the next step passes
 * back, or at a sequence's last step its final state's gradient):
 *   dn = g (1 - z) (1 - n^2), dr = dn ghn r (1 - r), dz = g (h - n) z (1 - z)
 *   grad_gi = (dr, dz, dn), d_gh = (dr, dz, dn r) = d(W_hh h + b_hh)
 *   passed back: g z + d_gh W_hh; grad_w_hh = sum d_gh^T h
 *   grad_b_ih = sum grad_gi, grad_b_hh = sum d_gh
 *
 * The products (h W_hh^T and d_gh W_hh per step, d_gh^T h summed over steps) run in `tile`:
 * TILE_ROWS rows against one panel of 16 V columns, the accumulators held in vector
 * registers. Its vectors are GCC vector extensions of 16 floats, which compile to AVX-512
 * under -march=native where the CPU has it and to narrower instructions elsewhere. Each call
 * first copies W_hh into panels, zero past H: for the forward pass W_hh^T in panels of 16
 * hidden units, their r, z and n columns side by side ([ceil(H/16)][H][3][16]), for the
 * backward pass W_hh in panels of 32 columns ([ceil(H/32)][3H][32]).
 * Both entry points return 0, or -1 when their scratch memory cannot be allocated.
 */

#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef __linux__
#include <sys/mman.h>
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

#define TILE_ROWS 8
#define FWD_UNITS 16  /* hidden units per forward panel: 3 vectors (r, z, n) */
#define BWD_UNITS 32  /* columns per backward panel: 2 vectors */

typedef float vec __attribute__((vector_size(64)));  /* 16 floats */

static inline vec load(const float *p) { vec v; memcpy(&v, p, sizeof v); return v; }
static inline void store(float *p, vec v) { memcpy(p, &v, sizeof v); }
static inline long min(long a, long b) { return a < b ? a : b; }
static inline long round_up(long n, long k) { return (n + k - 1) / k * k; }
static inline float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

/* c[r][v vstride + u] (+)= sum_k a[r][k lda] b[k ldb + 16 v + u] for r < TILE_ROWS, v < V
 * (at most 3) and u < 16, c's rows ldc floats apart; with accumulate, added to c. */
static inline __attribute__((always_inline)) void tile(const float *const a[TILE_ROWS], long lda, const float *restrict b,
                                                       long ldb, long K, int V, float *restrict c, long ldc,
                                                       long vstride, int accumulate) {
    vec acc[TILE_ROWS][3] = {{{0}}};
    for (long k = 0; k < K; k++) {
        vec w[3];
#pragma GCC unroll 3
        for (int v = 0; v < V; v++)
            w[v] = load(b + k * ldb + v * 16);
#pragma GCC unroll 8
        for (int r = 0; r < TILE_ROWS; r++) {
            float s = a[r][k * lda];
#pragma GCC unroll 3
            for (int v = 0; v < V; v++)
                acc[r][v] += s * w[v];
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < TILE_ROWS; r++)
#pragma GCC unroll 3
        for (int v = 0; v < V; v++) {
            float *dst = c + r * ldc + v * vstride;
            store(dst, accumulate ? load(dst) + acc[r][v] : acc[r][v]);
        }
}

/* Asks for n floats from p to be brought into the cache ahead of their use. */
static inline void prefetch(const float *p, long n) {
    for (long j = 0; j < n; j += 16)
        __builtin_prefetch(p + j);
}

static inline void add(float *restrict dst, const float *restrict src, long n) {
    for (long j = 0; j < n; j++)
        dst[j] += src[j];
}

/* The large outputs are fresh tensors, their pages not yet touched. Where the kernel can
 * (Linux), ask for them to be backed by 2 MB pages: faulting in 4 KB pages one by one on
 * first touch would otherwise cost about as much as writing them. */
static void use_huge_pages(void *p, long bytes) {
#ifdef MADV_HUGEPAGE
    const unsigned long huge = 2UL << 20;
    unsigned long start = ((unsigned long)p + huge - 1) & ~(huge - 1), end = ((unsigned long)p + bytes) & ~(huge - 1);
    if (end > start)
        madvise((void *)start, end - start, MADV_HUGEPAGE);
#else
    (void)p;
    (void)bytes;
#endif
}

/* Rows saved for the backward pass are not read again until then: write them with
 * streaming stores, which skip reading each destination cache line first. */
#if defined(__AVX512F__)
#include <immintrin.h>
static inline void save_row(float *restrict dst, const float *restrict src, long n) {
    if (((unsigned long)dst & 63) == 0 && n % 16 == 0) {
        for (long j = 0; j < n; j += 16)
            _mm512_stream_ps(dst + j, _mm512_loadu_ps(src + j));
    } else {
        memcpy(dst, src, n * sizeof *dst);
    }
}
static inline void saved_rows_done(void) { _mm_sfence(); }
#else
static inline void save_row(float *restrict dst, const float *restrict src, long n) {
    memcpy(dst, src, n * sizeof *dst);
}
static inline void saved_rows_done(void) {}
#endif

/* One row's gates. gi_row: its 3H columns of gi; b: b_ih + (b_hr, b_hz, 0); gh: W_hh h, the r,
 * z and n blocks Hp apart; h: its previous state, NULL for zero. Writes rzng (r, z, n, ghn: 4H)
 * and h_new. */
static inline void gates(const float *restrict gi_row, const float *restrict b, const float *restrict gh,
                         const float *restrict b_hn, const float *restrict h, long H, long Hp,
                         float *restrict rzng, float *restrict h_new) {
    float *restrict r = rzng, *restrict z = rzng + H, *restrict n = rzng + 2 * H, *restrict ghn = rzng + 3 * H;
    for (long j = 0; j < H; j++) {
        r[j] = sigmoid(gi_row[j] + b[j] + gh[j]);
        z[j] = sigmoid(gi_row[H + j] + b[H + j] + gh[Hp + j]);
        ghn[j] = gh[2 * Hp + j] + b_hn[j];
        n[j] = tanhf(gi_row[2 * H + j] + b[2 * H + j] + r[j] * ghn[j]);
    }
    if (h) {
        for (long j = 0; j < H; j++)
            h_new[j] = n[j] + z[j] * (h[j] - n[j]);
    } else {
        for (long j = 0; j < H; j++)
            h_new[j] = n[j] - z[j] * n[j];
    }
}

/* One row's gate derivatives. g: the gradient of its new state, left holding g z; rzng: its
 * saved r, z, n, ghn; h: its previous state. Writes d_gh and grad_gi (3H each), adds grad_gi
 * to db_i and dn r to db_hn. */
static inline void gates_backward(float *restrict g, const float *restrict rzng, const float *restrict h, long H,
                                  float *restrict d_gh, float *restrict grad_gi, float *restrict db_i,
                                  float *restrict db_hn) {
    const float *restrict r = rzng, *restrict z = rzng + H, *restrict n = rzng + 2 * H, *restrict ghn = rzng + 3 * H;
    for (long j = 0; j < H; j++) {
        float dn = g[j] * (1.0f - z[j]) * (1.0f - n[j] * n[j]);
        float dr = dn * ghn[j] * (r[j] - r[j] * r[j]);
        float dz = g[j] * (h[j] - n[j]) * (z[j] - z[j] * z[j]);
        d_gh[j] = grad_gi[j] = dr;
        d_gh[H + j] = grad_gi[H + j] = dz;
        d_gh[2 * H + j] = dn * r[j];
        grad_gi[2 * H + j] = dn;
        db_i[j] += dr;
        db_i[H + j] += dz;
        db_i[2 * H + j] += dn;
        db_hn[j] += dn * r[j];
        g[j] *= z[j];
    }
}

static int direction_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads() > 1 ? 2 : 1;
#else
    return 1;
#endif
}

/* One direction of gru_forward. */
static int forward_direction(int d, const float *gi, const float *w_hh, const float *b_ih, const float *b_hh,
                             const long *rev, const long *offsets, const long *batch_sizes, long steps, long tokens,
                             long H, float *out, float *saved) {
    if (saved)
        use_huge_pages(saved, tokens * 4 * H * sizeof *saved);
    long panels = (H + FWD_UNITS - 1) / FWD_UNITS, Hp = panels * FWD_UNITS;
    float *w = calloc(panels * H * 3 * FWD_UNITS, sizeof *w);  /* W_hh^T in panels */
    float *gh = malloc(TILE_ROWS * 3 * Hp * sizeof *gh);  /* W_hh h of a tile's rows: r, z, n blocks Hp apart */
    float *rzng = malloc(4 * H * sizeof *rzng);  /* one row's r, z, n, ghn */
    float *b = malloc(3 * H * sizeof *b);  /* b_ih + (b_hr, b_hz, 0) */
    if (!w || !gh || !rzng || !b) {
        free(w);
        free(gh);
        free(rzng);
        free(b);
        return -1;
    }
    for (long g = 0; g < 3; g++)
        for (long j = 0; j < H; j++)
            for (long k = 0; k < H; k++)  /* unit j of gate g, input k */
                w[(((j / FWD_UNITS) * H + k) * 3 + g) * FWD_UNITS + j % FWD_UNITS] = w_hh[(g * H + j) * H + k];
    for (long j = 0; j < 3 * H; j++)
        b[j] = b_ih[j] + (j < 2 * H ? b_hh[j] : 0.0f);
    for (long t = 0; t < steps; t++) {
        long off = offsets[t], bs = batch_sizes[t], prev = t > 0 ? offsets[t - 1] : -1;
        for (long i0 = 0; i0 < bs; i0 += TILE_ROWS) {
            long rows = min(TILE_ROWS, bs - i0);
            /* gi rows of the next tile (this step's or the next step's first), read after this tile's matmul */
            long next = i0 + TILE_ROWS < bs ? off + i0 + TILE_ROWS : t + 1 < steps ? offsets[t + 1] : tokens;
            for (long p = next; p < min(next + TILE_ROWS, tokens); p++)
                prefetch(gi + (d ? rev[p] : p) * 3 * H, 3 * H);
            const float *h[TILE_ROWS];  /* the rows' previous states (past bs, the last row's again) */
            for (int r = 0; r < TILE_ROWS; r++) {
                long p = prev + i0 + min(r, rows - 1);
                h[r] = prev < 0 ? NULL : out + (d ? rev[p] : p) * 2 * H + d * H;
            }
            if (prev >= 0)
                for (long c = 0; c < panels; c++)
                    tile(h, 1, w + c * H * 3 * FWD_UNITS, 3 * FWD_UNITS, H, 3, gh + c * FWD_UNITS, 3 * Hp, Hp, 0);
            else
                memset(gh, 0, TILE_ROWS * 3 * Hp * sizeof *gh);
            for (long r = 0; r < rows; r++) {
                long p = off + i0 + r, nat = d ? rev[p] : p;
                gates(gi + nat * 3 * H, b, gh + r * 3 * Hp, b_hh + 2 * H, h[r], H, Hp, rzng, out + nat * 2 * H + d * H);
                if (saved)
                    save_row(saved + p * 4 * H, rzng, 4 * H);
            }
        }
    }
    saved_rows_done();
    free(w);
    free(gh);
    free(rzng);
    free(b);
    return 0;
}

/* One layer's recurrence, both directions: writes out and, unless saved[d] is NULL, what the
 * backward pass needs. */
int gru_forward(const float *const gi[2], const float *const w_hh[2], const float *const b_ih[2],
                const float *const b_hh[2], const long *rev, const long *offsets, const long *batch_sizes, long steps,
                long tokens, long H, float *out, float *const saved[2]) {
    int status = 0;
    use_huge_pages(out, tokens * 2 * H * sizeof *out);
#pragma omp parallel for num_threads(direction_threads()) schedule(static) reduction(| : status)
    for (int d = 0; d < 2; d++)
        status |= forward_direction(d, gi[d], w_hh[d], b_ih[d], b_hh[d], rev, offsets, batch_sizes, steps, tokens, H,
                                    out, saved[d]);
    return status;
}

/* One direction of gru_backward, last step first. */
static int backward_direction(int d, const float *grad_out, const float *grad_h_n, const long *order,
                              const long *rev, const float *w_hh, const float *out, const float *saved,
                              const long *offsets, const long *batch_sizes, long steps, long tokens, long H,
                              float *grad_gi, float *grad_w_hh, float *grad_b_ih, float *grad_b_hh) {
    use_huge_pages(grad_gi, tokens * 3 * H * sizeof *grad_gi);
    long panels = (H + BWD_UNITS - 1) / BWD_UNITS, Hp = panels * BWD_UNITS;
    long batch = batch_sizes[0], q_rows = round_up(3 * H, TILE_ROWS);
    /* Rows Hp floats apart, so that a panel's columns past H stay inside the buffers (and a
     * tile's rows past the batch inside carry, past 3H inside dw); nothing reads them. */
    float *carry = calloc(round_up(batch, TILE_ROWS) * Hp, sizeof(float));  /* row i: g, then what step t passes back */
    float *hs = calloc(batch * Hp, sizeof(float));  /* row i: the state step t started from */
    float *dw = calloc(q_rows * Hp, sizeof(float));  /* grad_w_hh */
    float *dg = malloc(batch * 3 * H * sizeof(float));  /* row i: d_gh of step t */
    float *gg = malloc(3 * H * sizeof(float));  /* one row's grad_gi */
    float *db = calloc(4 * H, sizeof(float));  /* grad_b_ih, then grad_b_hn */
    float *w = calloc(panels * 3 * H * BWD_UNITS, sizeof(float));  /* W_hh in panels */
    int status = carry && hs && dw && dg && gg && db && w ? 0 : -1;
    for (long c = 0; c < panels && status == 0; c++)
        for (long q = 0; q < 3 * H; q++)
            memcpy(w + (c * 3 * H + q) * BWD_UNITS, w_hh + q * H + c * BWD_UNITS,
                   min(BWD_UNITS, H - c * BWD_UNITS) * sizeof *w);
    for (long t = steps - 1; t >= 0 && status == 0; t--) {
        long off = offsets[t], bs = batch_sizes[t], prev = t > 0 ? offsets[t - 1] : -1;
        long carried = t + 1 < steps ? batch_sizes[t + 1] : 0;
        for (long i0 = 0; i0 < bs; i0 += TILE_ROWS) {
            long rows = min(TILE_ROWS, bs - i0);
            /* what the next tile (this step's or the next step's first) reads, fetched during this one */
            long next_t = i0 + TILE_ROWS < bs ? t : t - 1, next_i0 = i0 + TILE_ROWS < bs ? i0 + TILE_ROWS : 0;
            for (long i = next_i0; next_t >= 0 && i < min(next_i0 + TILE_ROWS, batch_sizes[next_t]); i++) {
                long p = offsets[next_t] + i, q = next_t > 0 ? offsets[next_t - 1] + i : -1;
                if (grad_out)
                    prefetch(grad_out + (d ? rev[p] : p) * 2 * H + d * H, H);
                prefetch(saved + p * 4 * H, 4 * H);
                if (q >= 0)
                    prefetch(out + (d ? rev[q] : q) * 2 * H + d * H, H);
            }
            for (long i = i0; i < i0 + rows; i++) {
                long p = off + i, nat = d ? rev[p] : p;
                float *g = carry + i * Hp;
                if (prev >= 0)
                    memcpy(hs + i * Hp, out + (d ? rev[prev + i] : prev + i) * 2 * H + d * H, H * sizeof *hs);
                else
                    memset(hs + i * Hp, 0, H * sizeof *hs);
                if (i >= carried) {  /* the sequence's last step: its final state's gradient */
                    memset(g, 0, H * sizeof *g);
                    if (grad_h_n)
                        add(g, grad_h_n + (d * batch + order[i]) * H, H);
                }
                if (grad_out)
                    add(g, grad_out + nat * 2 * H + d * H, H);
                gates_backward(g, saved + p * 4 * H, hs + i * Hp, H, dg + i * 3 * H, gg, db, db + 3 * H);
                save_row(grad_gi + nat * 3 * H, gg, 3 * H);
            }
            if (prev < 0)
                continue;
            const float *a[TILE_ROWS];  /* the tile's rows of d_gh (past bs, the last row's again) */
            for (int r = 0; r < TILE_ROWS; r++)
                a[r] = dg + (i0 + min(r, rows - 1)) * 3 * H;
            for (long c = 0; c < panels; c++)
                tile(a, 1, w + c * 3 * H * BWD_UNITS, BWD_UNITS, 3 * H, 2, carry + i0 * Hp + c * BWD_UNITS, Hp, 16, 1);
        }
        if (prev < 0)
            continue;
        for (long q0 = 0; q0 < 3 * H; q0 += TILE_ROWS) {  /* dw += d_gh^T hs over the step's rows */
            const float *a[TILE_ROWS];  /* columns q of d_gh (past 3H, the last one again) */
            for (int r = 0; r < TILE_ROWS; r++)
                a[r] = dg + min(q0 + r, 3 * H - 1);
            for (long c = 0; c < panels; c++)
                tile(a, 3 * H, hs + c * BWD_UNITS, Hp, bs, 2, dw + q0 * Hp + c * BWD_UNITS, Hp, 16, 1);
        }
    }
    saved_rows_done();
    if (status == 0) {
        for (long q = 0; q < 3 * H; q++)
            memcpy(grad_w_hh + q * H, dw + q * Hp, H * sizeof *dw);
        memcpy(grad_b_ih, db, 3 * H * sizeof *db);
        memcpy(grad_b_hh, db, 2 * H * sizeof *db);  /* r and z: as for b_ih */
        memcpy(grad_b_hh + 2 * H, db + 3 * H, H * sizeof *db);
    }
    free(w);
    free(carry);
    free(hs);
    free(dw);
    free(dg);
    free(gg);
    free(db);
    return status;
}

/* One layer's backward pass, both directions: grad_gi and the gradients of W_hh and the
 * biases. grad_out or grad_h_n may be NULL (zero). */
int gru_backward(const float *grad_out, const float *grad_h_n, const long *order, const long *rev,
                 const float *const w_hh[2], const float *out, const float *const saved[2],
                 const long *offsets, const long *batch_sizes, long steps, long tokens, long H,
                 float *const grad_gi[2], float *const grad_w_hh[2], float *const grad_b_ih[2],
                 float *const grad_b_hh[2]) {
    int status = 0;
#pragma omp parallel for num_threads(direction_threads()) schedule(static) reduction(| : status)
    for (int d = 0; d < 2; d++)
        status |= backward_direction(d, grad_out, grad_h_n, order, rev, w_hh[d], out, saved[d], offsets, batch_sizes,
                                     steps, tokens, H, grad_gi[d], grad_w_hh[d], grad_b_ih[d], grad_b_hh[d]);
    return status;
}
