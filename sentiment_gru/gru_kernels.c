/* Fused per-step GRU gate arithmetic for BiGRUEncoder's "fast" path (float32, CPU).
 *
 * One call computes the elementwise part of one time step for both directions; the
 * matmuls stay in torch. All rows are in step order: tokens in the packed layout
 * (time-major, longest sequence first), direction 1 with each sequence reversed within
 * its length. A step's rows are off..off+bs-1; the previous step's prev..prev+bs-1.
 *
 *   hs, rz (r, z), n, ghn (W_hn h + b_hn), h_prev, dh: [2, tokens, width], d_gh: [2, tokens, 3H]
 *   gi[d], grad_gi[d]: [tokens, 3H] and grad_out[d]: [tokens, H] per direction d,
 *       each with its own row stride (they may be column blocks of a wider tensor)
 *   gh: [2, bs, 3H] = this step's W_hh h (no bias); m: [2, m_rows, H]; b_hn: [2, H]
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

void gru_forward_step(const float *gi0, const float *gi1, long gi0_stride, long gi1_stride,
                      const float *restrict gh, const float *restrict b_hn, float *hs, float *restrict rz,
                      float *restrict n, float *restrict ghn, float *restrict h_prev,
                      long tokens, long off, long prev, long bs, long H) {
#pragma omp parallel for schedule(static) if (bs * H >= PARALLEL_MIN)
    for (long k = 0; k < 2 * bs; k++) {
        long d = k / bs, i = k % bs;
        const float *bn = b_hn + d * H;
        const float *gi = d ? gi1 : gi0;
        long gi_stride = d ? gi1_stride : gi0_stride;
        {
            long row = d * tokens + off + i;
            const float *restrict g_i = gi + (off + i) * gi_stride;
            const float *restrict g_h = gh + (d * bs + i) * 3 * H;
            const float *h = prev >= 0 ? hs + (d * tokens + prev + i) * H : 0;
            float *restrict rz_r = rz + row * 2 * H;
            float *restrict n_r = n + row * H;
            float *restrict ghn_r = ghn + row * H;
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
            if (h_prev) {
                float *restrict hp = h_prev + row * H;
                for (long j = 0; j < H; j++)
                    hp[j] = h ? h[j] : 0.0f;
            }
        }
    }
}

/* Backward of one step, last step first. The gradient of a row's new state is its
 * output's gradient plus, for the first m_rows rows, what the next step passed back:
 * the z * h share (left in dh by the next step's call) and m = d_gh_next W_hh.
 * Writes d_gh = d(W_hh h + b_hh) per gate and grad_gi = d(gi), and
 * sets the previous step's rows of dh to this step's z * h share. */
void gru_backward_step(const float *go0, const float *go1, long go0_stride, long go1_stride,
                       float *gg0, float *gg1, long gg0_stride, long gg1_stride,
                       float *dh, const float *restrict m, const float *restrict rz, const float *restrict n,
                       const float *restrict ghn, const float *restrict h_prev, float *restrict d_gh,
                       long tokens, long off, long prev, long bs, long m_rows, long H) {
#pragma omp parallel for schedule(static) if (bs * H >= PARALLEL_MIN)
    for (long k = 0; k < 2 * bs; k++) {
        long d = k / bs, i = k % bs;
        const float *grad_out = d ? go1 : go0;
        long go_stride = d ? go1_stride : go0_stride;
        float *grad_gi = d ? gg1 : gg0;
        long gg_stride = d ? gg1_stride : gg0_stride;
        {
            long row = d * tokens + off + i;
            const float *restrict go = grad_out + (off + i) * go_stride;
            float *g = dh + row * H;
            if (i < m_rows) {
                const float *restrict m_r = m + (d * m_rows + i) * H;
                for (long j = 0; j < H; j++)
                    g[j] += go[j] + m_r[j];
            } else {
                for (long j = 0; j < H; j++)
                    g[j] = go[j];
            }
            const float *restrict rz_r = rz + row * 2 * H;
            const float *restrict n_r = n + row * H;
            const float *restrict ghn_r = ghn + row * H;
            const float *restrict hp = h_prev + row * H;
            float *restrict dg = d_gh + row * 3 * H;
            float *restrict gg = grad_gi + (off + i) * gg_stride;
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
            if (prev >= 0) {
                float *restrict dprev = dh + (d * tokens + prev + i) * H;
                for (long j = 0; j < H; j++)
                    dprev[j] = g[j] * rz_r[H + j];
            }
        }
    }
}
