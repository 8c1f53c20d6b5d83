/* Fused per-step GRU gate arithmetic for BiGRUEncoder's "fast" path (float32, CPU).
 *
 * One call computes the elementwise part of one time step for both directions; the
 * matmuls stay in torch. Tokens are in the packed layout (time-major, longest sequence
 * first). A step's rows are off..off+bs-1 and the previous step's prev..prev+bs-1, in
 * step order; direction 1 reads each sequence backwards, so its step-order row p is the
 * packed row rev[p] of the natural-order tensors.
 *
 *   natural order:  gi, grad_gi: [tokens, 6H] (direction 1 from column 3H)
 *                   out, grad_out: [tokens, 2H] (direction 1 from column H)
 *   step order:     hs, rz (r, z), n, ghn (W_hn h + b_hn), h_prev, dh: [2, tokens, width];
 *                   d_gh: [2, tokens, 3H]
 *   this step:      gh: [2, bs, 3H] = W_hh h (no bias); m: [2, m_rows, H]; b_hn: [2, H]
 *
 * PyTorch's equations:
 *   r = sigmoid(gi_r + gh_r), z = sigmoid(gi_z + gh_z)
 *   n = tanh(gi_n + r * (gh_n + b_hn)), h' = (1 - z) * n + z * h
 * prev < 0 means the initial state (zero).
 */

#include <math.h>

/* Below this many rows x units a step runs on one thread (thread start-up would cost more).
 * Built with -fopenmp, the kernels share the OpenMP runtime torch has loaded, so its
 * thread count (torch.set_num_threads) applies and no second thread pool competes. */
#define PARALLEL_MIN 2048

static inline float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

/* Rows saved for the backward pass are not read again until then: write them with
 * streaming stores, which skip reading each destination cache line first. */
#if defined(__AVX512F__)
#include <immintrin.h>
static inline void save_row(float *restrict dst, const float *restrict src, long n) {
    if (((unsigned long)dst & 63) == 0 && n % 16 == 0) {
        for (long j = 0; j < n; j += 16)
            _mm512_stream_ps(dst + j, _mm512_loadu_ps(src + j));
    } else {
        for (long j = 0; j < n; j++)
            dst[j] = src[j];
    }
}
static inline void saved_rows_done(void) { _mm_sfence(); }
#else
static inline void save_row(float *restrict dst, const float *restrict src, long n) {
    for (long j = 0; j < n; j++)
        dst[j] = src[j];
}
static inline void saved_rows_done(void) {}
#endif

void gru_forward_step(const float *gi, const long *restrict rev, const float *restrict gh,
                      const float *restrict b_hn, float *hs, float *out, float *restrict rz,
                      float *restrict n, float *restrict ghn, float *restrict h_prev,
                      long tokens, long off, long prev, long bs, long H) {
#pragma omp parallel if (bs * H >= PARALLEL_MIN)
    {
#pragma omp for schedule(static)
        for (long k = 0; k < 2 * bs; k++) {
            long d = k / bs, i = k % bs;
            long row = d * tokens + off + i;  /* step order */
            long nat = d ? rev[off + i] : off + i;  /* natural order */
            const float *restrict g_i = gi + nat * 6 * H + d * 3 * H;
            const float *restrict g_h = gh + (d * bs + i) * 3 * H;
            const float *bn = b_hn + d * H;
            const float *h = prev >= 0 ? hs + (d * tokens + prev + i) * H : 0;
            float rz_r[2 * H], n_r[H], ghn_r[H];
            float *restrict h_new = hs + row * H;
            for (long j = 0; j < 2 * H; j++)
                rz_r[j] = sigmoid(g_i[j] + g_h[j]);
            for (long j = 0; j < H; j++) {
                float g = g_h[2 * H + j] + bn[j];
                ghn_r[j] = g;
                n_r[j] = tanhf(g_i[2 * H + j] + rz_r[j] * g);
            }
            if (h) {
                for (long j = 0; j < H; j++)
                    h_new[j] = n_r[j] + rz_r[H + j] * (h[j] - n_r[j]);
            } else {
                for (long j = 0; j < H; j++)
                    h_new[j] = n_r[j] - rz_r[H + j] * n_r[j];
            }
            save_row(out + nat * 2 * H + d * H, h_new, H);
            save_row(rz + row * 2 * H, rz_r, 2 * H);
            save_row(n + row * H, n_r, H);
            save_row(ghn + row * H, ghn_r, H);
            if (h_prev) {
                if (h) {
                    save_row(h_prev + row * H, h, H);
                } else {
                    for (long j = 0; j < H; j++)
                        h_prev[row * H + j] = 0.0f;
                }
            }
        }
        saved_rows_done();  /* each thread's own streaming stores */
    }
}

/* Backward of one step, last step first. The gradient of a row's new state is its
 * output's gradient plus, for the first m_rows rows, what the next step passed back:
 * the z * h share (left in dh by the next step's call) and m = d_gh_next W_hh.
 * Writes d_gh = d(W_hh h + b_hh) per gate and grad_gi = d(gi), and sets the previous
 * step's rows of dh to this step's z * h share. */
void gru_backward_step(const float *grad_out, float *grad_gi, const long *restrict rev,
                       float *dh, const float *restrict m, const float *restrict rz, const float *restrict n,
                       const float *restrict ghn, const float *restrict h_prev, float *restrict d_gh,
                       long tokens, long off, long prev, long bs, long m_rows, long H) {
#pragma omp parallel if (bs * H >= PARALLEL_MIN)
    {
#pragma omp for schedule(static)
        for (long k = 0; k < 2 * bs; k++) {
            long d = k / bs, i = k % bs;
            long row = d * tokens + off + i;
            long nat = d ? rev[off + i] : off + i;
            const float *restrict go = grad_out + nat * 2 * H + d * H;
            float g[H], gg[3 * H];
            if (i < m_rows) {
                const float *restrict dh_r = dh + row * H;
                const float *restrict m_r = m + (d * m_rows + i) * H;
                for (long j = 0; j < H; j++)
                    g[j] = dh_r[j] + go[j] + m_r[j];
            } else {
                for (long j = 0; j < H; j++)
                    g[j] = go[j];
            }
            const float *restrict rz_r = rz + row * 2 * H;
            const float *restrict n_r = n + row * H;
            const float *restrict ghn_r = ghn + row * H;
            const float *restrict hp = h_prev + row * H;
            float *restrict dg = d_gh + row * 3 * H;
            for (long j = 0; j < H; j++) {
                float r = rz_r[j], z = rz_r[H + j], nj = n_r[j], gj = g[j];
                float dn = gj * (1.0f - z) * (1.0f - nj * nj);
                float dr = dn * ghn_r[j] * (r - r * r);
                float dz = gj * (hp[j] - nj) * (z - z * z);
                dg[j] = dr;
                dg[H + j] = dz;
                dg[2 * H + j] = dn * r;
                gg[j] = dr;
                gg[H + j] = dz;
                gg[2 * H + j] = dn;
            }
            save_row(grad_gi + nat * 6 * H + d * 3 * H, gg, 3 * H);
            if (prev >= 0) {
                float *restrict dprev = dh + (d * tokens + prev + i) * H;
                for (long j = 0; j < H; j++)
                    dprev[j] = g[j] * rz_r[H + j];
            }
        }
        saved_rows_done();
    }
}
