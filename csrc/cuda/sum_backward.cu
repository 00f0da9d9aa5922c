// Sum layer backward on the GPU (float32 SIMT), the same quantities as csrc/cpu/sum_backward.cpp:
//   child flow  F[c,t] += sum over (block i, slot k) reading c, sum_r f[r,t] W[r,c] exp(v[c,t] - v[r,t])
//   param flow  P[r,c] += W[r,c] * sum_t f[r,t] exp(v[c,t] - v[r,t])
// where parent rows r with f = 0 or v = -inf pass nothing and padding slots (child row or weight
// offset -1) are skipped.
//
// Stable form (as the CPU's): per column t pick a shift M_t (the max of the child rows in question,
// so e = exp(v_c - M) <= 1), form a = f exp(M - v_r) per parent row, and the term is W a e. M - v_r is
// large only where the forward's sum was tiny relative to the child (zero weights inside a block):
// where it exceeds kMaxShift for a live row, that (row, column) takes the exact path
// f exp(log W + v_c - v_r) per weight (each term <= f for a valid forward, so nothing overflows, and
// zero weights are skipped, so no 0 * inf). The threshold differs from the CPU's (80): the two paths
// are the same number, 64 only leaves more headroom for sums of a * e over long batches.
//
// Kernel 1, child flows, no atomics: one CTA per (distinct child block k, chunk of <= 32 of its rows,
// tile of 128 batch columns), one thread per column holding the chunk's accumulators in registers. It
// walks the entries (i * fanin + f) that read block k (the transposed CSR of DevSum), stages each
// weight block's columns of the chunk in shared memory, and adds its result into the flow rows once.
// Correct without atomics because each flow element is written by exactly one thread of one CTA in
// this launch; this needs the uploader's guarantee (below) that distinct child blocks of one partition
// do not overlap.
//
// Kernel 2, parameter flows: one CTA per non-padding entry (i, f); it stages tiles of A [b, TT] and
// E [cb, TT] in shared memory and reduces over the batch, each thread owning up to kOpt outputs (or,
// for small blocks, L threads sharing one output and combined by shuffles and shared memory at the
// end). Plain += where s.disjoint_weights, atomicAdd otherwise (tied weight blocks in one partition).
//
// Uploader guarantees assumed (device_plan.cu):
//  * child_block_rows holds distinct starts whose ranges [row, row + child_block_size) are pairwise
//    disjoint (true when child blocks of one size are aligned: vectors are rounded to the largest
//    block size that reads them, and blocks step by cb inside a vector);
//  * child_block_entries lists every entry e with child_rows[e] >= 0 exactly once, under the block
//    whose start is child_rows[e]; entries with weight_offsets[e] < 0 may be listed (they are skipped);
//  * a partition's child rows are not its own output rows (layers read earlier layers only).
// Entries whose child row disagrees with their CSR block are skipped rather than written elsewhere.
#include <cuda_runtime.h>
#include <mma.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "cuda/cuda_check.cuh"
#include "cuda/sum_backward.cuh"

namespace pcc {
namespace cuda {
namespace {

constexpr float kMaxShift = 64.0f;  // a = f exp(<= 64): sums of a * e stay finite for huge batches
constexpr int kChildThreads = 128;  // kernel 1: batch columns per CTA
constexpr int kWRows = 32;          // kernel 1: weight rows staged per step
constexpr int kParamThreads = 256;  // kernel 2
constexpr int kOpt = 4;             // kernel 2: outputs per thread per pass
constexpr int64_t kMaxGrid = int64_t(1) << 20;

__device__ __forceinline__ bool live_row(float f, float v) { return f != 0.0f && v > -INFINITY; }

// f exp(log w + v_c - v_r) in double: the exact path (w > 0, v_c > -inf, live row).
__device__ __forceinline__ float exact_term(float f, float w, float vc, float vr) {
  return static_cast<float>(static_cast<double>(f) *
                            exp(log(static_cast<double>(w)) + static_cast<double>(vc) - static_cast<double>(vr)));
}

// ---- kernel 1: child flows ---------------------------------------------------------------------

template <int CB>
__global__ void __launch_bounds__(kChildThreads, 1) child_flow_kernel(DevSum s, const float* __restrict__ params,
                                                                   const float* __restrict__ values,
                                                                   float* __restrict__ flows, int64_t batch,
                                                                   int col_tiles) {
  __shared__ __align__(16) float ws[kWRows][CB];
  const int64_t b = s.block_size, cb = s.child_block_size, fanin = s.fanin;
  // blockIdx.y = chunk * col_tiles + tile (32-bit: a 64-bit division would be a call that spills).
  const uint32_t tile = blockIdx.y % static_cast<uint32_t>(col_tiles);
  const uint32_t chunk = blockIdx.y / static_cast<uint32_t>(col_tiles);
  for (int64_t k = blockIdx.x; k < s.num_child_blocks; k += gridDim.x) {
    const int64_t t = static_cast<int64_t>(tile) * kChildThreads + threadIdx.x;
    const int64_t crow = s.child_block_rows[k];
    const int64_t c0 = chunk * CB;
    const int ncb = static_cast<int>(cb - c0 < CB ? cb - c0 : CB);
    const bool in_batch = t < batch;

    // Shift: the max over the chunk's child rows in this column; -inf means every child value is
    // -inf, so every term is 0 and the column stays as it is.
    float m = -INFINITY;
    if (in_batch) {
#pragma unroll
      for (int c = 0; c < CB; ++c)
        if (c < ncb) m = fmaxf(m, values[(crow + c0 + c) * batch + t]);
    }
    const bool active = m > -INFINITY;

    float acc[CB];
#pragma unroll
    for (int c = 0; c < CB; ++c) acc[c] = 0.0f;

    const int64_t q_end = s.child_block_start[k + 1];
    for (int64_t q = s.child_block_start[k]; q < q_end; ++q) {
      const int64_t e = s.child_block_entries[q];
      const int64_t woff = s.weight_offsets[e];
      if (woff < 0 || s.child_rows[e] != crow) continue;  // uniform over the CTA
      const int64_t prow = s.out_rows[static_cast<uint32_t>(e) / static_cast<uint32_t>(fanin)];
      for (int64_t r0 = 0; r0 < b; r0 += kWRows) {
        const int nr = static_cast<int>(b - r0 < kWRows ? b - r0 : kWRows);
        __syncthreads();  // previous step's readers are done with ws
        for (int idx = threadIdx.x; idx < kWRows * CB; idx += kChildThreads) {
          const int rr = idx / CB, c = idx % CB;
          ws[rr][c] = (rr < nr && c < ncb) ? params[woff + (r0 + rr) * cb + c0 + c] : 0.0f;
        }
        __syncthreads();
        if (!active) continue;
        for (int rr = 0; rr < nr; ++rr) {
          const int64_t at = (prow + r0 + rr) * batch + t;
          const float f = flows[at], vr = values[at];
          if (!live_row(f, vr)) continue;
          const float d = m - vr;
          if (d <= kMaxShift) {
            const float a = f * expf(d);
#pragma unroll
            for (int c = 0; c < CB; ++c) acc[c] = fmaf(ws[rr][c], a, acc[c]);
          } else {
            // Exact path, added straight into the flow rows: this thread alone writes these
            // elements in this launch (the final += below comes later in the same thread).
            for (int c = 0; c < ncb; ++c) {
              const float w = ws[rr][c];
              if (!(w > 0.0f)) continue;
              const int64_t ct = (crow + c0 + c) * batch + t;
              const float vc = values[ct];
              if (vc > -INFINITY) flows[ct] += exact_term(f, w, vc, vr);
            }
          }
        }
      }
    }
    if (active) {
#pragma unroll
      for (int c = 0; c < CB; ++c) {
        if (c < ncb) {
          const int64_t at = (crow + c0 + c) * batch + t;
          const float ec = expf(values[at] - m);
          flows[at] += ec * acc[c];
        }
      }
    }
  }
}

template <int CB>
void launch_child(const DevSum& s, const float* params, const float* values, float* flows, int64_t batch,
                  cudaStream_t stream) {
  const int64_t col_tiles = (batch + kChildThreads - 1) / kChildThreads;
  const int64_t chunks = (s.child_block_size + CB - 1) / CB;
  if (chunks * col_tiles > 65535)
    ::pcc::raise("sum_backward: batch ", batch, " too large for child block size ", s.child_block_size);
  const dim3 grid(static_cast<unsigned>(std::min(s.num_child_blocks, kMaxGrid)),
                  static_cast<unsigned>(chunks * col_tiles));
  child_flow_kernel<CB><<<grid, kChildThreads, 0, stream>>>(s, params, values, flows, batch,
                                                            static_cast<int>(col_tiles));
  PCC_CUDA_CHECK_LAUNCH("sum_backward (child flows)");
}

// ---- kernel 2: parameter flows -----------------------------------------------------------------

// Shared memory of one CTA: V/E [cb][tt + 4], A [b][tt + 4] (padded rows: 16-byte reads of consecutive
// rows at one column do not conflict), shift [tt], slow flags [b][tt].
struct ParamShape {
  int64_t tt = 32, lanes = 1, passes = 1;
  size_t smem = 0;
};

__host__ __device__ inline size_t param_smem_bytes(int64_t b, int64_t cb, int64_t tt) {
  return static_cast<size_t>(((b + cb) * (tt + 4) + tt) * sizeof(float) + b * tt);
}

__global__ void __launch_bounds__(kParamThreads) param_flow_kernel(DevSum s, const float* __restrict__ params,
                                                                   const float* __restrict__ values,
                                                                   const float* __restrict__ flows,
                                                                   float* __restrict__ param_flows, int64_t batch,
                                                                   int tt, int lanes, int passes) {
  extern __shared__ __align__(16) unsigned char smem[];
  const int64_t b = s.block_size, cb = s.child_block_size, fanin = s.fanin;
  const int ld = tt + 4;  // rows stay 16-byte aligned; 8 consecutive rows hit distinct 16-byte banks
  float* E = reinterpret_cast<float*>(smem);  // [cb][ld]: child values, then exp(v_c - m)
  float* A = E + cb * ld;                     // [b][ld]
  float* M = A + b * ld;                      // [tt]
  unsigned char* slow_flag = reinterpret_cast<unsigned char*>(M + tt);  // [b][tt]
  __shared__ float red[kParamThreads / 32][kOpt];

  const int tid = threadIdx.x;
  const int lane = tid % lanes, slot = tid / lanes, slots = kParamThreads / lanes;
  const int n_out = static_cast<int>(b * cb);  // < 2^31 (the host checks)
  const uint32_t ucb = static_cast<uint32_t>(cb);
  const int64_t entries = s.num_blocks * fanin;  // < 2^31 (the host checks)
  const bool shared_c = static_cast<uint32_t>(slots) % ucb == 0;

  for (int64_t e = blockIdx.x; e < entries; e += gridDim.x) {
    const int64_t crow = s.child_rows[e], woff = s.weight_offsets[e];
    if (crow < 0 || woff < 0) continue;  // uniform over the CTA
    const int64_t prow = s.out_rows[static_cast<uint32_t>(e) / static_cast<uint32_t>(fanin)];
    for (int pass = 0; pass < passes; ++pass) {
      const int o0 = pass * slots * kOpt + slot;
      float acc[kOpt], sacc[kOpt];
#pragma unroll
      for (int j = 0; j < kOpt; ++j) acc[j] = sacc[j] = 0.0f;

      for (int64_t t0 = 0; t0 < batch; t0 += tt) {
        __syncthreads();  // previous tile's readers are done
        for (int idx = tid; idx < cb * tt; idx += kParamThreads) {
          const int c = idx / tt, x = idx % tt;
          E[c * ld + x] = t0 + x < batch ? values[(crow + c) * batch + t0 + x] : -INFINITY;
        }
        __syncthreads();
        for (int x = tid; x < tt; x += kParamThreads) {
          float m = -INFINITY;
          for (int c = 0; c < cb; ++c) m = fmaxf(m, E[c * ld + x]);
          M[x] = m;
        }
        __syncthreads();
        int any_slow = 0;
        for (int idx = tid; idx < cb * tt; idx += kParamThreads) {
          const int c = idx / tt, x = idx % tt;
          const float m = M[x];
          E[c * ld + x] = m > -INFINITY ? expf(E[c * ld + x] - m) : 0.0f;
        }
        for (int idx = tid; idx < b * tt; idx += kParamThreads) {
          const int r = idx / tt, x = idx % tt;
          const float m = M[x];
          float a = 0.0f;
          unsigned char sl = 0;
          if (t0 + x < batch && m > -INFINITY) {
            const int64_t at = (prow + r) * batch + t0 + x;
            const float f = flows[at], vr = values[at];
            if (live_row(f, vr)) {
              const float d = m - vr;
              if (d <= kMaxShift)
                a = f * expf(d);
              else
                sl = 1;
            }
          }
          A[r * ld + x] = a;
          slow_flag[r * tt + x] = sl;
          any_slow |= sl;
        }
        any_slow = __syncthreads_or(any_slow);
        if (shared_c) {
          // The thread's outputs share column c (rows o / cb differ): one E vector feeds kOpt FMAs, and
          // the A rows are the same across a warp (broadcast) when cb >= 32.
          const float* ec = E + (static_cast<uint32_t>(o0) % ucb) * ld;
          const float* ar[kOpt];
#pragma unroll
          for (int j = 0; j < kOpt; ++j) {
            const int o = o0 + j * slots;
            ar[j] = A + (o < n_out ? static_cast<uint32_t>(o) / ucb : 0u) * ld;  // row 0 for unused outputs: read, never stored
          }
          for (int x = 4 * lane; x < tt; x += 4 * lanes) {
            const float4 ev = *reinterpret_cast<const float4*>(ec + x);
#pragma unroll
            for (int j = 0; j < kOpt; ++j) {
              const float4 av = *reinterpret_cast<const float4*>(ar[j] + x);
              acc[j] = fmaf(av.x, ev.x, acc[j]);
              acc[j] = fmaf(av.y, ev.y, acc[j]);
              acc[j] = fmaf(av.z, ev.z, acc[j]);
              acc[j] = fmaf(av.w, ev.w, acc[j]);
            }
          }
        } else {
#pragma unroll
          for (int j = 0; j < kOpt; ++j) {
            const int o = o0 + j * slots;
            if (o < n_out) {
              const float* ar = A + (static_cast<uint32_t>(o) / ucb) * ld;
              const float* ec = E + (static_cast<uint32_t>(o) % ucb) * ld;
              for (int x = 4 * lane; x < tt; x += 4 * lanes) {
                const float4 av = *reinterpret_cast<const float4*>(ar + x);
                const float4 ev = *reinterpret_cast<const float4*>(ec + x);
                acc[j] = fmaf(av.x, ev.x, acc[j]);
                acc[j] = fmaf(av.y, ev.y, acc[j]);
                acc[j] = fmaf(av.z, ev.z, acc[j]);
                acc[j] = fmaf(av.w, ev.w, acc[j]);
              }
            }
          }
        }
        if (any_slow) {
#pragma unroll
          for (int j = 0; j < kOpt; ++j) {
            const int o = o0 + j * slots;
            if (o >= n_out) continue;
            const int r = static_cast<uint32_t>(o) / ucb, c = static_cast<uint32_t>(o) % ucb;
            const float w = params[woff + o];
            if (!(w > 0.0f)) continue;
            for (int x = lane; x < tt; x += lanes) {
              if (!slow_flag[r * tt + x]) continue;
              const int64_t t = t0 + x;
              const float vc = values[(crow + c) * batch + t];
              if (!(vc > -INFINITY)) continue;
              const int64_t at = (prow + r) * batch + t;
              sacc[j] += exact_term(flows[at], w, vc, values[at]);
            }
          }
        }
      }

      // Combine the lanes of each output: w * acc + sacc, reduced over `lanes` consecutive threads.
      float val[kOpt];
#pragma unroll
      for (int j = 0; j < kOpt; ++j) {
        const int o = o0 + j * slots;
        val[j] = o < n_out ? params[woff + o] * acc[j] + sacc[j] : 0.0f;
      }
      const int wl = lanes < 32 ? lanes : 32;
#pragma unroll
      for (int j = 0; j < kOpt; ++j)
        for (int off = wl / 2; off > 0; off /= 2) val[j] += __shfl_xor_sync(0xffffffffu, val[j], off);
      if (lanes > 32) {  // the output's threads span lanes / 32 whole warps
        const int warp = tid / 32;
        if (tid % 32 == 0) {
#pragma unroll
          for (int j = 0; j < kOpt; ++j) red[warp][j] = val[j];
        }
        __syncthreads();
        if (lane == 0) {
#pragma unroll
          for (int j = 0; j < kOpt; ++j) {
            float v = 0.0f;
            for (int w = 0; w < lanes / 32; ++w) v += red[warp + w][j];
            val[j] = v;
          }
        }
        __syncthreads();  // red is reused by the next pass
      }
      if (lane == 0) {
#pragma unroll
        for (int j = 0; j < kOpt; ++j) {
          const int o = o0 + j * slots;
          if (o >= n_out) continue;
          if (s.disjoint_weights)
            param_flows[woff + o] += val[j];
          else
            atomicAdd(param_flows + woff + o, val[j]);
        }
      }
    }
  }
}

int64_t pow2_ceil(int64_t x) {
  int64_t p = 1;
  while (p < x) p <<= 1;
  return p;
}

ParamShape param_shape(int64_t b, int64_t cb, int64_t batch) {
  ParamShape sh;
  const int64_t n_out = b * cb;
  // Small blocks: several threads (a power of two dividing the CTA) share an output.
  sh.lanes = n_out >= kParamThreads ? 1 : kParamThreads / pow2_ceil(n_out);
  const int64_t slots = kParamThreads / sh.lanes;
  sh.passes = (n_out + slots * kOpt - 1) / (slots * kOpt);
  // Columns per tile: a multiple of 4 (float4 reads), 4 per lane where lanes share an output.
  sh.tt = std::max<int64_t>(64, 4 * sh.lanes);
  sh.tt = std::min(sh.tt, std::max<int64_t>(32, pow2_ceil(batch)));
  while (sh.tt > 4 && param_smem_bytes(b, cb, sh.tt) > 48 * 1024) sh.tt /= 2;
  sh.smem = param_smem_bytes(b, cb, sh.tt);
  return sh;
}

// ---- tensor-core path (b, cb powers of two >= 16; TF32 operands, float32 accumulation) -------------

using namespace nvcuda;
using FragWt = wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::col_major>;  // W^T
using FragArow = wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::row_major>;  // A
using FragBrow = wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::row_major>;  // A
using FragEt = wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::col_major>;    // E^T
using FragAcc = wmma::fragment<wmma::accumulator, 16, 16, 8, float>;

constexpr int kTcThreads = 256;  // 8 warps

__device__ __forceinline__ float tf32(float x) { return wmma::__float_to_tf32(x); }

// Kernel 1 (tensor cores). A CTA owns (child block k, slice of CS child rows, tile of T = 2048 / CS
// batch columns): the output C [CS, T] is 8 fragments of 16 x 16, one per warp. The K dimension is the
// concatenation of the parent rows of every entry reading k (entry q, row r -> q * b + r), consumed in
// chunks of KC = CS rows: each thread stages 8 consecutive K rows of one column of A (one entry, as
// b >= 16) and NW weights of one W row; the next chunk's global loads are in flight during the
// current chunk's products. Shared memory (rows padded by 16 bytes; fragment pointers 32-byte aligned).
template <int CS>
struct ChildSmem {
  static constexpr int T = 2048 / CS, KC = CS, kLdA = T + 4, kLdW = CS + 4, kLdC = T + 4;
  union __align__(128) U {
    struct {
      float a[KC][kLdA];  // A chunk [K rows, batch columns], tf32
      float w[KC][kLdW];  // W chunk [K rows, child rows of the slice] = W^T column-major, tf32
    } st;
    float acc[CS][kLdC];  // accumulators for the epilogue
  };
  U u;
  float sacc[CS][T];               // exact-path terms (shared atomics: several K rows per column)
  float red[kTcThreads / T][T];    // partial column maxima
};

template <int CS>
__global__ void __launch_bounds__(kTcThreads, 2) child_flow_tc(DevSum s, const float* __restrict__ params,
                                                               const float* __restrict__ values,
                                                               float* __restrict__ flows, int64_t batch,
                                                               int64_t col_tiles, int lb) {
  using S = ChildSmem<CS>;
  constexpr int T = S::T, KC = S::KC, G = kTcThreads / T;
  constexpr int NW = KC * CS / kTcThreads;  // weights staged per thread: 4 (CS 32) or 1 (CS 16)
  constexpr int FR = CS / 16;
  static_assert(G * 8 == CS && G * 8 == KC, "8 rows per thread");
  __shared__ S sm;

  const int tid = threadIdx.x, warp = tid >> 5;
  const int col = tid % T, row0 = (tid / T) * 8;
  const int wrow = tid / (CS / NW), wcol = (tid % (CS / NW)) * NW;
  const int fr = warp % FR, fc = warp / FR;
  const int64_t b = s.block_size, cb = s.child_block_size;
  const uint32_t ufanin = static_cast<uint32_t>(s.fanin);
  const int64_t slices = cb / CS;
  const int64_t items = s.num_child_blocks * slices * col_tiles;

  for (int64_t item = blockIdx.x; item < items; item += gridDim.x) {
    const int64_t tile = item % col_tiles, rest = item / col_tiles;
    const int64_t k = rest / slices, c0 = (rest % slices) * CS;
    const int64_t cblock = s.child_block_rows[k];
    const int64_t crow = cblock + c0;  // first child row of the slice
    const int64_t t = tile * T + col;
    const bool in_batch = t < batch;

    // Shift: per column, the max over the slice's child rows (-inf: every term is 0, column untouched).
    float pm = -INFINITY;
    if (in_batch) {
#pragma unroll
      for (int j = 0; j < 8; ++j) pm = fmaxf(pm, values[(crow + row0 + j) * batch + t]);
    }
    __syncthreads();  // the previous item is done with the shared buffers
    sm.red[row0 / 8][col] = pm;
    for (int idx = tid; idx < CS * T; idx += kTcThreads) sm.sacc[idx / T][idx % T] = 0.0f;
    __syncthreads();
    float m = sm.red[0][col];
#pragma unroll
    for (int gg = 1; gg < G; ++gg) m = fmaxf(m, sm.red[gg][col]);
    const bool active = m > -INFINITY;

    const int64_t q0 = s.child_block_start[k];
    const int64_t K = (s.child_block_start[k + 1] - q0) * b;
    const int64_t nch = (K + KC - 1) / KC;

    FragAcc acc;
    wmma::fill_fragment(acc, 0.0f);
    float fv[8], vv[8], wv[NW];
    int64_t prow = -1, aw = -1;  // this thread's staged A rows: first parent row, its weight row (slice)
    auto load_chunk = [&](int64_t ch) {
      const int64_t kr = ch * KC + row0;
      prow = -1;
      if (active && kr < K) {
        const int32_t e = s.child_block_entries[q0 + (kr >> lb)];
        const int64_t wo = s.weight_offsets[e];
        if (wo >= 0 && s.child_rows[e] == cblock) {
          const int64_t r = kr & (b - 1);
          prow = s.out_rows[static_cast<uint32_t>(e) / ufanin] + r;
          aw = wo + r * cb + c0;
        }
      }
      if (prow >= 0) {
#pragma unroll
        for (int j = 0; j < 8; ++j) {
          fv[j] = flows[(prow + j) * batch + t];
          vv[j] = values[(prow + j) * batch + t];
        }
      } else {
#pragma unroll
        for (int j = 0; j < 8; ++j) {
          fv[j] = 0.0f;
          vv[j] = -INFINITY;
        }
      }
      const int64_t kw = ch * KC + wrow;
      int64_t wp = -1;
      if (kw < K) {
        const int32_t e = s.child_block_entries[q0 + (kw >> lb)];
        const int64_t wo = s.weight_offsets[e];
        if (wo >= 0 && s.child_rows[e] == cblock) wp = wo + (kw & (b - 1)) * cb + c0 + wcol;
      }
#pragma unroll
      for (int u = 0; u < NW; ++u) wv[u] = wp >= 0 ? params[wp + u] : 0.0f;
    };

    if (nch > 0) load_chunk(0);
    for (int64_t ch = 0; ch < nch; ++ch) {
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        float a = 0.0f;
        if (live_row(fv[j], vv[j])) {  // only loaded where the column is active
          const float d = m - vv[j];
          if (d <= kMaxShift) {
            a = fv[j] * __expf(d);
          } else {
            // Exact path for this (row, column): its terms go to sacc, which the epilogue adds
            // without the e factor. Several K rows of one column may take it: shared atomics.
            for (int c = 0; c < CS; ++c) {
              const float w = params[aw + j * cb + c];
              if (!(w > 0.0f)) continue;
              const float vc = values[(crow + c) * batch + t];
              if (vc > -INFINITY) atomicAdd(&sm.sacc[c][col], exact_term(fv[j], w, vc, vv[j]));
            }
          }
        }
        sm.u.st.a[row0 + j][col] = tf32(a);
      }
#pragma unroll
      for (int u = 0; u < NW; ++u) sm.u.st.w[wrow][wcol + u] = tf32(wv[u]);
      __syncthreads();
      if (ch + 1 < nch) load_chunk(ch + 1);  // in flight during the products below
#pragma unroll
      for (int kk = 0; kk < KC; kk += 8) {
        FragWt fa;
        FragBrow fb;
        wmma::load_matrix_sync(fa, &sm.u.st.w[kk][fr * 16], S::kLdW);
        wmma::load_matrix_sync(fb, &sm.u.st.a[kk][fc * 16], S::kLdA);
        wmma::mma_sync(acc, fa, fb, acc);
      }
      __syncthreads();  // readers are done with the chunk
    }

    // Epilogue: flows[c, t] += exp(v_c - m) * acc[c, t] + sacc[c, t].
    wmma::store_matrix_sync(&sm.u.acc[fr * 16][fc * 16], acc, S::kLdC, wmma::mem_row_major);
    __syncthreads();
    if (active) {
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        const int c = row0 + j;
        const int64_t at = (crow + c) * batch + t;
        flows[at] += __expf(values[at] - m) * sm.u.acc[c][col] + sm.sacc[c][col];
      }
    }
  }
}

// Kernel 2 (tensor cores). A CTA owns (entry (i, f), output tile RT x CT of the b x cb weight block)
// and reduces over the batch in stages of kTK = 64 columns: P [RT, CT] += A [RT, kTK] x E^T [kTK, CT],
// with the shift per column the max over the tile's CT child rows. Each thread stages RT / 4 rows of A
// and CT / 4 rows of E in one column (the next stage's global loads in flight during the current
// stage's products); the NFR = (RT / 16) (CT / 16) <= 8 fragments are spread over the 8 warps, each
// fragment's k-steps split over 8 / NFR warps and summed in the epilogue.
constexpr int kTK = 64;

template <int RT, int CT>
struct ParamSmemTc {
  static constexpr int kLd = kTK + 4;
  static constexpr int NFR = (RT / 16) * (CT / 16);
  union __align__(128) U {
    struct {
      float a[RT][kLd];  // A [rows, batch], tf32
      float e[CT][kLd];  // E [child rows, batch] = E^T column-major, tf32
    } st;
    float acc[8][256];  // one 16 x 16 fragment per warp
  };
  U u;
  float sacc[RT][CT];              // exact-path sums, one owner thread per output
  float red[4][kTK];               // partial column maxima
  unsigned char slow[RT][kTK];     // (row, column) takes the exact path
};

template <int RT, int CT>
__global__ void __launch_bounds__(kTcThreads, 2) param_flow_tc(DevSum s, const float* __restrict__ params,
                                                               const float* __restrict__ values,
                                                               const float* __restrict__ flows,
                                                               float* __restrict__ param_flows, int64_t batch) {
  using S = ParamSmemTc<RT, CT>;
  constexpr int NFR = S::NFR, KS = 8 / NFR, RA = RT / 4, RE = CT / 4, NOUT = RT * CT / kTcThreads;
  static_assert(NFR >= 1 && NFR <= 8 && NOUT >= 1, "tile shape");
  __shared__ S sm;

  const int tid = threadIdx.x, warp = tid >> 5;
  const int col = tid & (kTK - 1), g = tid >> 6;
  const int frag = warp % NFR, phase = warp / NFR;
  const int fr = frag / (CT / 16), fc = frag % (CT / 16);
  const int64_t b = s.block_size, cb = s.child_block_size;
  const uint32_t ufanin = static_cast<uint32_t>(s.fanin);
  const int64_t tr = b / RT, tc = cb / CT;
  const int64_t items = s.num_blocks * s.fanin * tr * tc;

  for (int64_t item = blockIdx.x; item < items; item += gridDim.x) {
    const int64_t e = item / (tr * tc), rest = item % (tr * tc);
    const int64_t r0 = (rest / tc) * RT, c0 = (rest % tc) * CT;
    const int64_t crow0 = s.child_rows[e], woff = s.weight_offsets[e];
    if (crow0 < 0 || woff < 0) continue;  // uniform over the CTA
    const int64_t prow = s.out_rows[static_cast<uint32_t>(e) / ufanin] + r0;  // first parent row of the tile
    const int64_t crow = crow0 + c0;                                          // first child row of the tile

    __syncthreads();  // the previous item is done with the shared buffers
    for (int idx = tid; idx < RT * CT; idx += kTcThreads) sm.sacc[idx / CT][idx % CT] = 0.0f;

    FragAcc acc;
    wmma::fill_fragment(acc, 0.0f);
    float fv[RA], vv[RA], cv[RE];
    auto load_stage = [&](int64_t t0) {
      const int64_t t = t0 + col;
      if (t < batch) {
#pragma unroll
        for (int j = 0; j < RE; ++j) cv[j] = values[(crow + g * RE + j) * batch + t];
#pragma unroll
        for (int j = 0; j < RA; ++j) {
          fv[j] = flows[(prow + g * RA + j) * batch + t];
          vv[j] = values[(prow + g * RA + j) * batch + t];
        }
      } else {
#pragma unroll
        for (int j = 0; j < RE; ++j) cv[j] = -INFINITY;
#pragma unroll
        for (int j = 0; j < RA; ++j) {
          fv[j] = 0.0f;
          vv[j] = -INFINITY;
        }
      }
    };

    load_stage(0);
    for (int64_t t0 = 0; t0 < batch; t0 += kTK) {
      float pm = -INFINITY;
#pragma unroll
      for (int j = 0; j < RE; ++j) pm = fmaxf(pm, cv[j]);
      sm.red[g][col] = pm;
      __syncthreads();
      const float m = fmaxf(fmaxf(sm.red[0][col], sm.red[1][col]), fmaxf(sm.red[2][col], sm.red[3][col]));
      const bool active = m > -INFINITY;
#pragma unroll
      for (int j = 0; j < RE; ++j) sm.u.st.e[g * RE + j][col] = tf32(active ? __expf(cv[j] - m) : 0.0f);
      int any_slow = 0;
#pragma unroll
      for (int j = 0; j < RA; ++j) {
        float a = 0.0f;
        unsigned char sl = 0;
        if (active && live_row(fv[j], vv[j])) {
          const float d = m - vv[j];
          if (d <= kMaxShift)
            a = fv[j] * __expf(d);
          else
            sl = 1;
        }
        sm.u.st.a[g * RA + j][col] = tf32(a);
        sm.slow[g * RA + j][col] = sl;
        any_slow |= sl;
      }
      any_slow = __syncthreads_or(any_slow);
      if (t0 + kTK < batch) load_stage(t0 + kTK);  // in flight during the products below
#pragma unroll
      for (int ks = 0; ks < 8 / KS; ++ks) {
        const int kk = (phase + ks * KS) * 8;
        FragArow fa;
        FragEt fb;
        wmma::load_matrix_sync(fa, &sm.u.st.a[fr * 16][kk], S::kLd);
        wmma::load_matrix_sync(fb, &sm.u.st.e[fc * 16][kk], S::kLd);
        wmma::mma_sync(acc, fa, fb, acc);
      }
      if (any_slow) {
#pragma unroll
        for (int j = 0; j < NOUT; ++j) {
          const int o = tid + j * kTcThreads, r = o / CT, c = o % CT;
          const float w = params[woff + (r0 + r) * cb + c0 + c];
          if (!(w > 0.0f)) continue;
          float sum = 0.0f;
          for (int x = 0; x < kTK; ++x) {
            if (!sm.slow[r][x]) continue;
            const int64_t tt = t0 + x;
            const float vc = values[(crow + c) * batch + tt];
            if (!(vc > -INFINITY)) continue;
            const int64_t at = (prow + r) * batch + tt;
            sum += exact_term(flows[at], w, vc, values[at]);
          }
          sm.sacc[r][c] += sum;  // this thread alone owns output (r, c)
        }
      }
      __syncthreads();  // readers are done with the stage
    }

    // Epilogue: per-warp fragments through shared memory, summed over the k-step phases.
    wmma::store_matrix_sync(sm.u.acc[warp], acc, 16, wmma::mem_row_major);
    __syncthreads();
#pragma unroll
    for (int j = 0; j < NOUT; ++j) {
      const int o = tid + j * kTcThreads, r = o / CT, c = o % CT;
      const int f = (r / 16) * (CT / 16) + c / 16, x = (r % 16) * 16 + c % 16;
      float p = 0.0f;
#pragma unroll
      for (int ph = 0; ph < KS; ++ph) p += sm.u.acc[f + ph * NFR][x];
      const int64_t at = woff + (r0 + r) * cb + c0 + c;
      const float val = params[at] * p + sm.sacc[r][c];
      if (s.disjoint_weights)
        param_flows[at] += val;
      else
        atomicAdd(param_flows + at, val);
    }
  }
}

bool pow2(int64_t x) { return x > 0 && (x & (x - 1)) == 0; }

int ilog2(int64_t x) {
  int l = 0;
  while ((int64_t(1) << l) < x) ++l;
  return l;
}

template <int CS>
void launch_child_tc(const DevSum& s, const float* params, const float* values, float* flows, int64_t batch,
                     cudaStream_t stream) {
  constexpr int T = ChildSmem<CS>::T;
  const int64_t col_tiles = (batch + T - 1) / T;
  const int64_t items = s.num_child_blocks * (s.child_block_size / CS) * col_tiles;
  const unsigned grid = static_cast<unsigned>(std::min(items, kMaxGrid));
  child_flow_tc<CS><<<grid, kTcThreads, 0, stream>>>(s, params, values, flows, batch, col_tiles,
                                                     ilog2(s.block_size));
  PCC_CUDA_CHECK_LAUNCH("sum_backward (child flows, tensor cores)");
}

template <int RT, int CT>
void launch_param_tc(const DevSum& s, const float* params, const float* values, const float* flows,
                     float* param_flows, int64_t batch, cudaStream_t stream) {
  const int64_t items = s.num_blocks * s.fanin * (s.block_size / RT) * (s.child_block_size / CT);
  const unsigned grid = static_cast<unsigned>(std::min(items, kMaxGrid));
  param_flow_tc<RT, CT><<<grid, kTcThreads, 0, stream>>>(s, params, values, flows, param_flows, batch);
  PCC_CUDA_CHECK_LAUNCH("sum_backward (parameter flows, tensor cores)");
}

template <int RT>
void launch_param_tc_rt(const DevSum& s, const float* params, const float* values, const float* flows,
                        float* param_flows, int64_t batch, cudaStream_t stream) {
  if (s.child_block_size >= 32)
    launch_param_tc<RT, 32>(s, params, values, flows, param_flows, batch, stream);
  else
    launch_param_tc<RT, 16>(s, params, values, flows, param_flows, batch, stream);
}

}  // namespace

void sum_backward(const DevSum& s, const float* params, const float* values, float* flows, float* param_flows,
                  int64_t batch, cudaStream_t stream) {
  if (s.num_blocks == 0 || batch <= 0 || s.fanin <= 0) return;
  // Every parent row's flow is final here (its layer's partitions ran after all later layers), and
  // the parameter kernel reads parent flows only, so the two kernels are independent; the stream
  // orders them anyway.
  const int64_t b = s.block_size, cb = s.child_block_size;
  const int64_t entries = s.num_blocks * s.fanin;
  if (entries > INT32_MAX || b * cb > INT32_MAX)
    ::pcc::raise("sum_backward: partition too large (", s.num_blocks, " blocks x fanin ", s.fanin, ")");
  if (pow2(b) && pow2(cb) && b >= 16 && cb >= 16) {
    if (s.num_child_blocks > 0) {
      if (cb >= 32)
        launch_child_tc<32>(s, params, values, flows, batch, stream);
      else
        launch_child_tc<16>(s, params, values, flows, batch, stream);
    }
    if (b >= 32)
      launch_param_tc_rt<32>(s, params, values, flows, param_flows, batch, stream);
    else
      launch_param_tc_rt<16>(s, params, values, flows, param_flows, batch, stream);
    return;
  }

  if (s.num_child_blocks > 0) {
    if (cb >= 32)
      launch_child<32>(s, params, values, flows, batch, stream);
    else if (cb > 8)
      launch_child<16>(s, params, values, flows, batch, stream);
    else if (cb > 4)
      launch_child<8>(s, params, values, flows, batch, stream);
    else if (cb > 2)
      launch_child<4>(s, params, values, flows, batch, stream);
    else if (cb > 1)
      launch_child<2>(s, params, values, flows, batch, stream);
    else
      launch_child<1>(s, params, values, flows, batch, stream);
  }

  const ParamShape sh = param_shape(b, cb, batch);
  if (sh.smem > 48 * 1024)
    ::pcc::raise("sum_backward: block ", b, " x ", cb, " needs too much shared memory");
  const unsigned grid = static_cast<unsigned>(std::min(entries, kMaxGrid));
  param_flow_kernel<<<grid, kParamThreads, sh.smem, stream>>>(s, params, values, flows, param_flows, batch,
                                                              static_cast<int>(sh.tt), static_cast<int>(sh.lanes),
                                                              static_cast<int>(sh.passes));
  PCC_CUDA_CHECK_LAUNCH("sum_backward (parameter flows)");
}

}  // namespace cuda
}  // namespace pcc
