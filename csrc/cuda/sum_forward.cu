// Sum layer forward on the GPU (the CPU oracle is csrc/cpu/sum.cpp; same semantics):
//   out[r, col] = m + log sum_k sum_c W_k[r, c] exp(child_k[c, col] - m)
// with m the per-column max over all rows of the block's non-padding child blocks (0 where they are
// all -inf, so the output is log 0 = -inf), and an exact fallback for outputs whose sum is not
// trusted (< kTrustedSum, overflowed or NaN): a row whose nonzero-weight children all lie far below
// the shared shift m, recomputed with its own shift over those children.
//
// Two kernels:
//  * Tensor-core path (b >= 16 and cb >= 8 for TF32 / 16 for BF16): a CTA owns a tile of 128 output
//    rows x 64 batch columns. With b <= 128 the tile is 128 / b consecutive sum blocks; runs of them
//    that read the same child list (every block of a dense sum vector does) form a *segment* that
//    shares one max pass and one exp per child element, which is the dominant cost, not the matrix
//    product. With b > 128 the tile is a 128-row slice of one block. The child rows of all child
//    blocks are one K dimension (k * cb + c; padding child blocks give zero E and zero W), consumed in
//    chunks of 32: E = exp(v - m) and the W slice are staged in shared memory already converted to the
//    tensor cores' input type, the next chunk's global loads are in flight during the current chunk's
//    WMMA (float accumulators in registers, 2 x 2 fragments of 16 x 16 per warp).
//  * SIMT float32 path (everything else: b = 1 sparse rows, small blocks): one warp per (block, slice
//    of up to 8 rows, 64 columns), two columns per lane, weights broadcast from L1.
// Block and child-block sizes are runtime values (powers of two; the tensor-core path needs only
// b >= 16 and cb >= its k-step), so every shape the compiler or a block-form sum produces runs.
// Grids: the tensor-core kernel walks (row tile, batch tile) items, batch tiles fastest, grid-stride
// over a 1-D grid; the SIMT kernel puts warps' items on grid.x and batch tiles on grid.y (grid-stride
// past 65535).
#include <cuda_bf16.h>
#include <mma.h>

#include <algorithm>
#include <cfloat>
#include <climits>
#include <cstdint>

#include "cuda/cuda_check.cuh"
#include "cuda/sum_forward.cuh"

namespace pcc {
namespace cuda {
namespace {

using namespace nvcuda;

constexpr int kThreads = 256;  // 8 warps
constexpr int kT = 64;         // batch columns per tile
constexpr int kR = 128;        // output rows per tensor-core tile
constexpr int kKC = 32;        // K rows per staged chunk
// As csrc/cpu/sum.cpp: sums below this are recomputed with the row's own shift.
constexpr float kTrustedSum = 1e-30f;

struct Args {
  const int32_t* out_rows;
  const int32_t* child_rows;
  const int64_t* weight_offsets;
  const float* params;
  float* values;
  int64_t num_blocks, batch, num_tiles;
  int32_t b, cb, lb, lcb, fanin;  // lb = log2 b, lcb = log2 cb
};

__device__ __forceinline__ float neg_inf() { return -__int_as_float(0x7f800000); }

__device__ __forceinline__ bool trusted(float a) { return a >= kTrustedSum && a <= FLT_MAX; }

// The exact path for output row r (local to block blk), column col: log sum W exp(v) shifted by the
// row's own max over its nonzero-weight children; -inf where all of them are -inf (or none exists).
__device__ __forceinline__ float exact_output(const Args& a, int64_t blk, int r, int64_t col) {
  const int32_t* crow = a.child_rows + blk * a.fanin;
  const int64_t* woff = a.weight_offsets + blk * a.fanin;
  float mr = neg_inf();
  for (int k = 0; k < a.fanin; ++k) {
    const int32_t c0 = crow[k];
    if (c0 < 0) continue;
    const float* w = a.params + woff[k] + static_cast<int64_t>(r) * a.cb;
    for (int c = 0; c < a.cb; ++c)
      if (w[c] != 0.0f) mr = fmaxf(mr, a.values[(static_cast<int64_t>(c0) + c) * a.batch + col]);
  }
  if (mr == neg_inf()) return neg_inf();
  float acc = 0.0f;
  for (int k = 0; k < a.fanin; ++k) {
    const int32_t c0 = crow[k];
    if (c0 < 0) continue;
    const float* w = a.params + woff[k] + static_cast<int64_t>(r) * a.cb;
    for (int c = 0; c < a.cb; ++c)
      if (w[c] != 0.0f) acc += w[c] * expf(a.values[(static_cast<int64_t>(c0) + c) * a.batch + col] - mr);
  }
  return logf(acc) + mr;
}

// ---------------------------------------------------------------------------------------------
// Tensor-core path.

template <Precision P>
struct Tc;

template <>
struct Tc<Precision::TF32> {
  using In = float;  // staged already rounded to tf32
  static constexpr int kK = 8;
  using FragA = wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::row_major>;
  using FragB = wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::row_major>;
  using FragC = wmma::fragment<wmma::accumulator, 16, 16, 8, float>;
  static __device__ __forceinline__ In cvt(float x) { return wmma::__float_to_tf32(x); }
  static __device__ __forceinline__ In zero() { return 0.0f; }
};

template <>
struct Tc<Precision::BF16> {
  using In = __nv_bfloat16;
  static constexpr int kK = 16;
  using FragA = wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major>;
  using FragB = wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::row_major>;
  using FragC = wmma::fragment<wmma::accumulator, 16, 16, 16, float>;
  static __device__ __forceinline__ In cvt(float x) { return __float2bfloat16_rn(x); }
  static __device__ __forceinline__ In zero() { return __float2bfloat16_rn(0.0f); }
};

// Leading dimensions: rows padded by 16 bytes (4 floats / 8 bf16) against bank conflicts; WMMA
// needs 32-byte aligned fragment pointers, which these keep for every 16-row / k-step offset.
template <Precision P>
struct TcSmem {
  using In = typename Tc<P>::In;
  static constexpr int kLdE = kT + 16 / static_cast<int>(sizeof(In));
  static constexpr int kLdW = kKC + 16 / static_cast<int>(sizeof(In));
  static constexpr int kLdAcc = kT + 4;
  union __align__(128) U {
    struct {
      In e[kKC][kLdE];  // E chunk: [K rows, batch columns]
      In w[kR][kLdW];   // W chunk: [tile rows, K rows]
    } st;
    float acc[kR][kLdAcc];  // accumulators for the epilogue
  };
  U u;
  float red[kThreads / 32][kT];  // per-warp partial maxima
  float m[kT];                    // the column shifts
  int32_t differs[kR / 16];       // block j's child list differs from block j - 1's
};

template <Precision P>
__global__ void __launch_bounds__(kThreads, 2) sum_forward_tc(const Args a) {
  using T = Tc<P>;
  using In = typename T::In;
  using S = TcSmem<P>;
  __shared__ S sm;

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int b = a.b, cb = a.cb, fanin = a.fanin;
  const int K = fanin * cb;  // < 2^31: checked by the launcher
  const int nchunks = (K + kKC - 1) / kKC;

  // Fixed per-thread coordinates. E staging: column ecol, K rows erow0 .. erow0 + 7 of a chunk (one
  // child block, as cb >= 8). W staging: tile row wrow, K columns wk0 .. wk0 + 15 (two runs of 8,
  // each inside one child block). MMA: warp rows wr0 .. wr0 + 31, columns wc0 .. wc0 + 31.
  const int ecol = tid & (kT - 1), erow0 = (tid >> 6) * 8;
  const int wrow = tid >> 1, wk0 = (tid & 1) * 16;
  const int wr0 = (warp & 3) * 32, wc0 = (warp >> 2) * 32;

  const int64_t groups = b <= kR ? (a.num_blocks + (kR >> a.lb) - 1) / (kR >> a.lb) : a.num_blocks * (b / kR);
  const int64_t items = groups * a.num_tiles;

  // Items are (row tile, batch tile), batch tiles fastest: the CTAs running together share weights
  // and (for the row tiles of one vector) child values in L2, so each is read from memory about once.
  for (int64_t item = blockIdx.x; item < items; item += gridDim.x) {
    const int64_t tile = item % a.num_tiles, grp = item / a.num_tiles;
    const int64_t t0 = tile * kT;
    const int cols = static_cast<int>(min(static_cast<int64_t>(kT), a.batch - t0));
    const bool col_ok = ecol < cols;

    // The row tile: blocks g0 .. g0 + nblk - 1 (row rho -> block g0 + rho / b, row rho % b), or
    // for b > 128 the rows lr0 .. lr0 + 127 of block g0.
    int64_t g0;
    int nblk, lr0 = 0, rows_per_blk;
    if (b <= kR) {
      const int G = kR >> a.lb;
      g0 = grp * G;
      nblk = static_cast<int>(min(static_cast<int64_t>(G), a.num_blocks - g0));
      rows_per_blk = b;
    } else {
      const int slices = b / kR;
      g0 = grp / slices;
      lr0 = static_cast<int>(grp % slices) * kR;
      nblk = 1;
      rows_per_blk = kR;
    }

    // Segments: runs of blocks with identical child lists.
    __syncthreads();  // the previous item is done with sm.differs
    if (tid < kR / 16) sm.differs[tid] = 0;
    __syncthreads();
    if (nblk > 1) {
      const int64_t total = static_cast<int64_t>(nblk - 1) * fanin;
      for (int64_t i = tid; i < total; i += kThreads) {
        const int j = 1 + static_cast<int>(i / fanin), k = static_cast<int>(i % fanin);
        if (a.child_rows[(g0 + j) * fanin + k] != a.child_rows[(g0 + j - 1) * fanin + k])
          atomicOr(&sm.differs[j], 1);
      }
    }
    __syncthreads();

    for (int s0 = 0; s0 < nblk;) {
      int s1 = s0 + 1;
      while (s1 < nblk && !sm.differs[s1]) ++s1;
      const int64_t blk0 = g0 + s0;
      const int32_t* crow = a.child_rows + blk0 * fanin;
      const int seg_r0 = s0 * rows_per_blk, seg_r1 = s1 * rows_per_blk;
      __syncthreads();  // the previous segment's epilogue is done with the shared buffers

      // Pass 1: per-column max over all child rows (warp per K row, lanes along the batch).
      {
        float m0 = neg_inf(), m1 = neg_inf();
        const int64_t c0 = t0 + lane, c1 = t0 + lane + 32;
        const bool ok0 = lane < cols, ok1 = lane + 32 < cols;
#pragma unroll 4
        for (int kr = warp; kr < K; kr += kThreads / 32) {
          const int32_t r = crow[kr >> a.lcb];
          if (r < 0) continue;
          const float* v = a.values + (static_cast<int64_t>(r) + (kr & (cb - 1))) * a.batch;
          if (ok0) m0 = fmaxf(m0, v[c0]);
          if (ok1) m1 = fmaxf(m1, v[c1]);
        }
        sm.red[warp][lane] = m0;
        sm.red[warp][lane + 32] = m1;
      }
      __syncthreads();
      if (tid < kT) {
        float m = sm.red[0][tid];
#pragma unroll
        for (int w = 1; w < kThreads / 32; ++w) m = fmaxf(m, sm.red[w][tid]);
        sm.m[tid] = m == neg_inf() ? 0.0f : m;  // all -inf: shift 0, exp gives 0, output -inf
      }
      __syncthreads();
      const float my_m = sm.m[ecol];

      // Pass 2: acc[tile rows, columns] += W[rows, K] x E[K, columns], chunk by chunk.
      typename T::FragC acc[2][2];
#pragma unroll
      for (int i = 0; i < 2; ++i)
#pragma unroll
        for (int j = 0; j < 2; ++j) wmma::fill_fragment(acc[i][j], 0.0f);
      bool frag_live[2];
#pragma unroll
      for (int i = 0; i < 2; ++i) frag_live[i] = wr0 + 16 * i >= seg_r0 && wr0 + 16 * i < seg_r1;

      // This thread's W row: block wj, row wlr, if it lies in the segment.
      const bool w_row_ok = wrow >= seg_r0 && wrow < seg_r1;
      const int64_t wj = g0 + (b <= kR ? (wrow >> a.lb) : 0);
      const int wlr = b <= kR ? (wrow & (b - 1)) : lr0 + wrow;
      const int64_t* wofs = a.weight_offsets + wj * fanin;
      const int32_t* wcrow = a.child_rows + wj * fanin;

      float ev[8], wv[16];
      auto load_chunk = [&](int ch) {
        const int kr = ch * kKC + erow0;
        const int32_t r = kr < K ? crow[kr >> a.lcb] : -1;
        if (r >= 0 && col_ok) {
          const float* v = a.values + (static_cast<int64_t>(r) + (kr & (cb - 1))) * a.batch + t0 + ecol;
#pragma unroll
          for (int i = 0; i < 8; ++i) ev[i] = v[i * a.batch];
        } else {
#pragma unroll
          for (int i = 0; i < 8; ++i) ev[i] = neg_inf();
        }
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const int kw = ch * kKC + wk0 + 8 * h;
          const int k = kw >> a.lcb;
          if (w_row_ok && kw < K && wcrow[k] >= 0) {
            const float* w = a.params + wofs[k] + static_cast<int64_t>(wlr) * cb + (kw & (cb - 1));
#pragma unroll
            for (int u = 0; u < 8; ++u) wv[8 * h + u] = w[u];
          } else {
#pragma unroll
            for (int u = 0; u < 8; ++u) wv[8 * h + u] = 0.0f;
          }
        }
      };
      if (nchunks > 0) load_chunk(0);
      for (int ch = 0; ch < nchunks; ++ch) {
#pragma unroll
        for (int i = 0; i < 8; ++i) sm.u.st.e[erow0 + i][ecol] = T::cvt(__expf(ev[i] - my_m));
#pragma unroll
        for (int u = 0; u < 16; ++u) sm.u.st.w[wrow][wk0 + u] = T::cvt(wv[u]);
        __syncthreads();
        if (ch + 1 < nchunks) load_chunk(ch + 1);  // in flight during the products below
#pragma unroll
        for (int kk = 0; kk < kKC; kk += T::kK) {
          typename T::FragB fb[2];
#pragma unroll
          for (int j = 0; j < 2; ++j) wmma::load_matrix_sync(fb[j], &sm.u.st.e[kk][wc0 + 16 * j], S::kLdE);
#pragma unroll
          for (int i = 0; i < 2; ++i) {
            if (!frag_live[i]) continue;
            typename T::FragA fa;
            wmma::load_matrix_sync(fa, &sm.u.st.w[wr0 + 16 * i][kk], S::kLdW);
#pragma unroll
            for (int j = 0; j < 2; ++j) wmma::mma_sync(acc[i][j], fa, fb[j], acc[i][j]);
          }
        }
        __syncthreads();
      }

      // Epilogue: accumulators through shared memory, log + shift, stores along the batch.
#pragma unroll
      for (int i = 0; i < 2; ++i)
#pragma unroll
        for (int j = 0; j < 2; ++j)
          wmma::store_matrix_sync(&sm.u.acc[wr0 + 16 * i][wc0 + 16 * j], acc[i][j], S::kLdAcc,
                                  wmma::mem_row_major);
      __syncthreads();
      if (col_ok) {
        for (int rho = seg_r0 + (tid >> 6); rho < seg_r1; rho += kThreads / kT) {
          const int64_t j = g0 + (b <= kR ? (rho >> a.lb) : 0);
          const int lr = b <= kR ? (rho & (b - 1)) : lr0 + rho;
          const float s = sm.u.acc[rho][ecol];
          const float out = trusted(s) ? logf(s) + my_m : exact_output(a, j, lr, t0 + ecol);
          a.values[(static_cast<int64_t>(a.out_rows[j]) + lr) * a.batch + t0 + ecol] = out;
        }
      }
      s0 = s1;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// SIMT float32 path: warp per (block, RB-row slice, 64 columns).

template <int RB>
__global__ void __launch_bounds__(kThreads, 4) sum_forward_simt(const Args a, int64_t num_items) {
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t item = static_cast<int64_t>(blockIdx.x) * (kThreads / 32) + warp;
  if (item >= num_items) return;  // no block-level synchronization below
  const int slices = a.b / RB;
  const int64_t blk = item / slices;
  const int r0 = static_cast<int>(item % slices) * RB;
  const int cb = a.cb, fanin = a.fanin;
  const int32_t* crow = a.child_rows + blk * fanin;
  const int64_t* woff = a.weight_offsets + blk * fanin;

  for (int64_t tile = blockIdx.y; tile < a.num_tiles; tile += gridDim.y) {
    const int64_t t0 = tile * kT;
    const int cols = static_cast<int>(min(static_cast<int64_t>(kT), a.batch - t0));
    const bool ok0 = lane < cols, ok1 = lane + 32 < cols;
    const int64_t c0 = t0 + lane, c1 = t0 + lane + 32;

    float m0 = neg_inf(), m1 = neg_inf();
    for (int k = 0; k < fanin; ++k) {
      const int32_t r = crow[k];
      if (r < 0) continue;
      const float* v = a.values + static_cast<int64_t>(r) * a.batch;
#pragma unroll 4
      for (int c = 0; c < cb; ++c) {
        if (ok0) m0 = fmaxf(m0, v[c * a.batch + c0]);
        if (ok1) m1 = fmaxf(m1, v[c * a.batch + c1]);
      }
    }
    m0 = m0 == neg_inf() ? 0.0f : m0;
    m1 = m1 == neg_inf() ? 0.0f : m1;

    float acc[RB][2];
#pragma unroll
    for (int r = 0; r < RB; ++r) acc[r][0] = acc[r][1] = 0.0f;
    for (int k = 0; k < fanin; ++k) {
      const int32_t r = crow[k];
      if (r < 0) continue;
      const float* v = a.values + static_cast<int64_t>(r) * a.batch;
      const float* w = a.params + woff[k] + static_cast<int64_t>(r0) * cb;
#pragma unroll 2
      for (int c = 0; c < cb; ++c) {
        const float e0 = ok0 ? __expf(v[c * a.batch + c0] - m0) : 0.0f;
        const float e1 = ok1 ? __expf(v[c * a.batch + c1] - m1) : 0.0f;
#pragma unroll
        for (int q = 0; q < RB; ++q) {
          const float wq = w[q * cb + c];
          acc[q][0] = fmaf(wq, e0, acc[q][0]);
          acc[q][1] = fmaf(wq, e1, acc[q][1]);
        }
      }
    }
#pragma unroll
    for (int q = 0; q < RB; ++q) {
      float* out = a.values + (static_cast<int64_t>(a.out_rows[blk]) + r0 + q) * a.batch;
      if (ok0) out[c0] = trusted(acc[q][0]) ? logf(acc[q][0]) + m0 : exact_output(a, blk, r0 + q, c0);
      if (ok1) out[c1] = trusted(acc[q][1]) ? logf(acc[q][1]) + m1 : exact_output(a, blk, r0 + q, c1);
    }
  }
}

int ilog2(int x) {
  int l = 0;
  while ((1 << l) < x) ++l;
  return l;
}

}  // namespace

void sum_forward(const DevSum& s, const float* params, float* values, int64_t batch, Precision precision,
                 cudaStream_t stream) {
  if (s.num_blocks == 0 || batch == 0) return;
  const int b = s.block_size, cb = s.child_block_size;
  PCC_CHECK(b >= 1 && cb >= 1 && (b & (b - 1)) == 0 && (cb & (cb - 1)) == 0,
            "sum_forward: block sizes must be powers of two, got ", b, " x ", cb);
  Args a;
  a.out_rows = s.out_rows;
  a.child_rows = s.child_rows;
  a.weight_offsets = s.weight_offsets;
  a.params = params;
  a.values = values;
  a.num_blocks = s.num_blocks;
  a.batch = batch;
  a.num_tiles = (batch + kT - 1) / kT;
  a.b = b;
  a.cb = cb;
  a.lb = ilog2(b);
  a.lcb = ilog2(cb);
  a.fanin = s.fanin;
  const unsigned grid_y = static_cast<unsigned>(std::min<int64_t>(a.num_tiles, 65535));

  PCC_CHECK(static_cast<int64_t>(s.fanin) * cb < INT_MAX, "sum_forward: fan-in too large (", s.fanin, ")");
  const int kstep = precision == Precision::BF16 ? 16 : 8;
  if (b >= 16 && cb >= kstep) {
    const int64_t groups = b <= kR ? (s.num_blocks + (kR / b) - 1) / (kR / b) : s.num_blocks * (b / kR);
    const dim3 grid(static_cast<unsigned>(std::min<int64_t>(groups * a.num_tiles, INT_MAX)));
    if (precision == Precision::BF16)
      sum_forward_tc<Precision::BF16><<<grid, kThreads, 0, stream>>>(a);
    else
      sum_forward_tc<Precision::TF32><<<grid, kThreads, 0, stream>>>(a);
  } else {
    const int rb = b < 8 ? b : 8;
    const int64_t items = s.num_blocks * (b / rb);
    const int64_t ctas = (items + kThreads / 32 - 1) / (kThreads / 32);
    PCC_CHECK(ctas <= INT_MAX, "sum_forward: too many sum blocks (", s.num_blocks, ")");
    const dim3 grid(static_cast<unsigned>(ctas), grid_y);
    switch (rb) {
      case 1: sum_forward_simt<1><<<grid, kThreads, 0, stream>>>(a, items); break;
      case 2: sum_forward_simt<2><<<grid, kThreads, 0, stream>>>(a, items); break;
      case 4: sum_forward_simt<4><<<grid, kThreads, 0, stream>>>(a, items); break;
      default: sum_forward_simt<8><<<grid, kThreads, 0, stream>>>(a, items); break;
    }
  }
  PCC_CUDA_CHECK_LAUNCH("sum_forward");
}

}  // namespace cuda
}  // namespace pcc
