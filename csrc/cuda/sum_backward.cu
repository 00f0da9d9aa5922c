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

}  // namespace

void sum_backward(const DevSum& s, const float* params, const float* values, float* flows, float* param_flows,
                  int64_t batch, cudaStream_t stream) {
  if (s.num_blocks == 0 || batch <= 0 || s.fanin <= 0) return;
  // Every parent row's flow is final here (its layer's partitions ran after all later layers), and
  // the parameter kernel reads parent flows only, so the two kernels are independent; the stream
  // orders them anyway.
  const int64_t cb = s.child_block_size;
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

  const ParamShape sh = param_shape(s.block_size, cb, batch);
  if (sh.smem > 48 * 1024)
    ::pcc::raise("sum_backward: block ", s.block_size, " x ", cb, " needs too much shared memory");
  const int64_t entries = s.num_blocks * s.fanin;
  if (entries > INT32_MAX || s.block_size * cb > INT32_MAX)
    ::pcc::raise("sum_backward: partition too large (", s.num_blocks, " blocks x fanin ", s.fanin, ")");
  const unsigned grid = static_cast<unsigned>(std::min(entries, kMaxGrid));
  param_flow_kernel<<<grid, kParamThreads, sh.smem, stream>>>(s, params, values, flows, param_flows, batch,
                                                              static_cast<int>(sh.tt), static_cast<int>(sh.lanes),
                                                              static_cast<int>(sh.passes));
  PCC_CUDA_CHECK_LAUNCH("sum_backward (parameter flows)");
}

}  // namespace cuda
}  // namespace pcc
