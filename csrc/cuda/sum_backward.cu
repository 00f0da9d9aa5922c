// Sum layer backward on the GPU, the same quantities as csrc/cpu/sum_backward.cpp:
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
// Blocks with b and cb powers of two >= 16 take the tensor-core kernel (TF32 operands, float32
// accumulation; described at "tensor-core path" below), which computes both products in one pass over
// the transposed connectivity, unless the precision is FP32. Other blocks take two float32 SIMT
// kernels:
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
//    block size that reads them, and blocks step by cb inside a vector). Fused child blocks
//    (child_arity A > 1, fused_child.cuh) are A starts each, and distinct ones may share rows, so
//    their flows are added with atomics everywhere;
//  * child_block_entries lists every entry e whose first start is >= 0 exactly once, under the block
//    with its starts; entries with weight_offsets[e] < 0 may be listed (they are skipped);
//  * a partition's child rows are not its own output rows (layers read earlier layers only).
// Entries whose child row disagrees with their CSR block are skipped rather than written elsewhere.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <mutex>
#include <utility>

#include "cuda/cuda_check.cuh"
#include "cuda/fused_child.cuh"
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

template <int CB, bool F>  // F: fused child blocks (child_arity > 1)
__global__ void __launch_bounds__(kChildThreads, 1) child_flow_kernel(DevSum s, const float* __restrict__ params,
                                                                   const float* __restrict__ values,
                                                                   float* __restrict__ flows, int64_t batch,
                                                                   int col_tiles) {
  __shared__ __align__(16) float ws[kWRows][CB];
  const int64_t b = s.block_size, cb = s.child_block_size, fanin = s.fanin;
  // blockIdx.y = chunk * col_tiles + tile (32-bit: a 64-bit division would be a call that spills).
  const uint32_t tile = blockIdx.y % static_cast<uint32_t>(col_tiles);
  const uint32_t chunk = blockIdx.y / static_cast<uint32_t>(col_tiles);
  const int A = F ? s.child_arity : 1;
  for (int64_t k = blockIdx.x; k < s.num_child_blocks; k += gridDim.x) {
    const int64_t t = static_cast<int64_t>(tile) * kChildThreads + threadIdx.x;
    const int32_t* kst = s.child_block_rows + k * A;  // the child block's starts
    const int64_t crow = kst[0];
    const int64_t c0 = chunk * CB;
    auto child_v = [&](int64_t c) {  // row c of the child block at column t
      if constexpr (F)
        return fused_value(values, kst, A, c, batch, t);
      else
        return values[(crow + c) * batch + t];
    };
    const int ncb = static_cast<int>(cb - c0 < CB ? cb - c0 : CB);
    const bool in_batch = t < batch;

    // Shift: the max over the chunk's child rows in this column; -inf means every child value is
    // -inf, so every term is 0 and the column stays as it is.
    float m = -INFINITY;
    if (in_batch) {
#pragma unroll
      for (int c = 0; c < CB; ++c)
        if (c < ncb) m = fmaxf(m, child_v(c0 + c));
    }
    const bool active = m > -INFINITY;

    float acc[CB];
#pragma unroll
    for (int c = 0; c < CB; ++c) acc[c] = 0.0f;

    const int64_t q_end = s.child_block_start[k + 1];
    for (int64_t q = s.child_block_start[k]; q < q_end; ++q) {
      const int64_t e = s.child_block_entries[q];
      const int64_t woff = s.weight_offsets[e];
      if (woff < 0 || !(F ? same_child(s.child_rows + e * A, kst, A) : s.child_rows[e] == crow))
        continue;  // uniform over the CTA
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
            // elements in this launch (the final += below comes later in the same thread), unless
            // the block is fused (its rows are shared with other fused blocks: atomics).
            for (int c = 0; c < ncb; ++c) {
              const float w = ws[rr][c];
              if (!(w > 0.0f)) continue;
              const float vc = child_v(c0 + c);
              if (!(vc > -INFINITY)) continue;
              if constexpr (!F)
                flows[(crow + c0 + c) * batch + t] += exact_term(f, w, vc, vr);
              else
                fused_add_flow(flows, kst, A, c0 + c, batch, t, exact_term(f, w, vc, vr));
            }
          }
        }
      }
    }
    if (active) {
#pragma unroll
      for (int c = 0; c < CB; ++c) {
        if (c < ncb) {
          const float ec = expf(child_v(c0 + c) - m);
          if constexpr (!F)
            flows[(crow + c0 + c) * batch + t] += ec * acc[c];
          else
            acc[c] *= ec;  // a fused block: all its value loads before the atomics below
        }
      }
      if constexpr (F) {
#pragma unroll
        for (int c = 0; c < CB; ++c)
          if (c < ncb) fused_add_flow(flows, kst, A, c0 + c, batch, t, acc[c]);
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
  auto* kernel = s.child_arity > 1 ? child_flow_kernel<CB, true> : child_flow_kernel<CB, false>;
  kernel<<<grid, kChildThreads, 0, stream>>>(s, params, values, flows, batch, static_cast<int>(col_tiles));
  PCC_CUDA_CHECK_LAUNCH("sum_backward (child flows)");
}

// ---- kernel 2: parameter flows -----------------------------------------------------------------

// Shared memory of one CTA: V/E [cb][tt + 4], A [b][tt + 4] (padded rows: 16-byte reads of consecutive
// rows at one column do not conflict), shift [tt], slow flags [b][tt]; b x cb the tile of a weight
// block one CTA owns. Blocks of more than kParamTile weights (only FP32 sends large blocks here) are
// cut into tiles of at most 128 x 128, each with its own shift: the max over the tile's child rows
// is as valid a shift as the max over all of them (e <= 1 either way; the exact path covers the rest).
constexpr int64_t kParamTile = 128 * 128;
struct ParamShape {
  int64_t tt = 32, lanes = 1, passes = 1, tb = 1, tcb = 1;  // tb x tcb: a CTA's tile of the block
  size_t smem = 0;
};

__host__ __device__ inline size_t param_smem_bytes(int64_t b, int64_t cb, int64_t tt) {
  return static_cast<size_t>(((b + cb) * (tt + 4) + tt) * sizeof(float) + b * tt);
}

// F: fused child blocks (child_arity > 1); T: the block is cut into tiles (tb x tcb < b x cb).
template <bool F, bool T>
__global__ void __launch_bounds__(kParamThreads) param_flow_kernel(DevSum s, const float* __restrict__ params,
                                                                   const float* __restrict__ values,
                                                                   const float* __restrict__ flows,
                                                                   float* __restrict__ param_flows, int64_t batch,
                                                                   int tt, int lanes, int passes, int tb, int tcb) {
  extern __shared__ __align__(16) unsigned char smem[];
  const int64_t fanin = s.fanin, full_cb = s.child_block_size;
  const int64_t b = T ? tb : s.block_size, cb = T ? tcb : full_cb;  // the tile's rows and child rows
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
  const int64_t col_tiles = T ? full_cb / tcb : 1, tiles = T ? s.block_size / tb * col_tiles : 1;
  // Output o of the tile is weight (r0 + o / cb, c0 + o % cb) of the block: at wp + weight(o).
  const auto weight = [&](int o) -> int64_t {
    return T ? (static_cast<uint32_t>(o) / ucb) * full_cb + static_cast<uint32_t>(o) % ucb : o;
  };

  for (int64_t item = blockIdx.x; item < entries * tiles; item += gridDim.x) {
    const int64_t e = T ? item / tiles : item, tile = T ? item % tiles : 0;
    const int64_t r0 = T ? tile / col_tiles * tb : 0, c0 = T ? tile % col_tiles * tcb : 0;
    const int ar = F ? s.child_arity : 1;
    const int32_t* est = s.child_rows + e * ar;  // the entry's child starts
    const int64_t woff = s.weight_offsets[e];
    if (est[0] < 0 || woff < 0) continue;  // uniform over the CTA
    const int64_t prow = s.out_rows[static_cast<uint32_t>(e) / static_cast<uint32_t>(fanin)] + r0;
    const float* wp = params + woff + r0 * full_cb + c0;  // the tile's first weight
    float* pf = param_flows + woff + r0 * full_cb + c0;
    for (int pass = 0; pass < passes; ++pass) {
      const int o0 = pass * slots * kOpt + slot;
      float acc[kOpt], sacc[kOpt];
#pragma unroll
      for (int j = 0; j < kOpt; ++j) acc[j] = sacc[j] = 0.0f;

      for (int64_t t0 = 0; t0 < batch; t0 += tt) {
        __syncthreads();  // previous tile's readers are done
        for (int idx = tid; idx < cb * tt; idx += kParamThreads) {
          const int c = idx / tt, x = idx % tt;
          E[c * ld + x] = t0 + x < batch ? fused_value(values, est, ar, c0 + c, batch, t0 + x) : -INFINITY;
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
            const float w = wp[weight(o)];
            if (!(w > 0.0f)) continue;
            for (int x = lane; x < tt; x += lanes) {
              if (!slow_flag[r * tt + x]) continue;
              const int64_t t = t0 + x;
              const float vc = fused_value(values, est, ar, c0 + c, batch, t);
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
        val[j] = o < n_out ? wp[weight(o)] * acc[j] + sacc[j] : 0.0f;
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
            pf[weight(o)] += val[j];
          else
            atomicAdd(pf + weight(o), val[j]);
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
  sh.tb = b * cb > kParamTile ? std::min<int64_t>(b, 128) : b;
  sh.tcb = b * cb > kParamTile ? std::min<int64_t>(cb, 128) : cb;
  b = sh.tb;
  cb = sh.tcb;
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
//
// One fused kernel computes both products, since they share their operands: for a child block k, a
// slice of CS <= 32 of its rows (the shift's rows) and a tile of T = 128 batch columns, with
// A[r, t] = f exp(M_t - v_r) (parent rows r of every entry reading k) and E[c, t] = exp(v_c - M_t),
//   child flows      C [CS, T]  = sum over entries of W^T [CS, b] A [b, T]   (then times E),
//   parameter flows  P [b, CS] += A [b, T] E^T [T, CS]                       (per entry, then times W).
// A and E are computed once for both (the two former kernels each formed them, and read f and v once
// per child block each). The CTA stages E once per tile and walks the entries' parent rows in chunks
// of RT = 16 rows (the K of the first product, the M of the second; a chunk never spans two entries).
// Per chunk each lane loads its share of f and v (float4) straight into registers in the layout of the
// second product's A fragments (mma.sync m16n8k8: lane (g, q) holds rows g, g + 8 and columns
// 4q .. 4q + 3 of its warp's 16-column group, the k index permuted so that one float4 of E feeds two
// k-steps), forms A there, writes it once to shared memory for the first product (read there as B
// fragments; columns swizzled so that both accesses are free of bank conflicts), and the next chunk's
// loads are in flight during the chunk's products. The second product's 8 warps split the tile's
// columns (8 partial P tiles, summed in shared memory); parameter flows are added with (vector)
// atomics, as the column tiles of one weight block are different CTAs (and tied blocks share weights).
// Child flows are owned by one CTA: the epilogue adds each element once, with an atomic add (no read;
// one add per element, so the order cannot matter, except for exact-path terms added before it).
// One barrier per chunk (two when a row takes the exact path): A, W and the P partials are
// double-buffered. Exact path: a (row, column) with M - v_r > kMaxShift contributes 0 to A; its terms
// are computed in double by the lane that owns it and added to the chunk's exact-term slot (parameter
// flows, shared atomics) and to the child flows (global atomics).

__device__ __forceinline__ uint32_t to_tf32(float x) {  // round to nearest (ties away), as .b32
  uint32_t r;
  asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(x));
  return r;
}

// D += A B on one m16n8k8 TF32 tile. With g = lane / 4, q = lane % 4 (PTX ISA, mma.m16n8k8 fragments):
// a0..a3 = A[g][q], A[g + 8][q], A[g][q + 4], A[g + 8][q + 4]; b0, b1 = B[q][g], B[q + 4][g];
// d0..d3 = D[g][2q], D[g][2q + 1], D[g + 8][2q], D[g + 8][2q + 1].
__device__ __forceinline__ void mma_tf32(float (&d)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                         uint32_t b0, uint32_t b1) {
  asm("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

// dst[0..3] += v with atomics; one vector atomic where dst is 16-byte aligned (sm_90).
__device__ __forceinline__ void atomic_add4(float* dst, float4 v, bool aligned) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  if (aligned) {
    atomicAdd(reinterpret_cast<float4*>(dst), v);
    return;
  }
#endif
  (void)aligned;
  atomicAdd(dst, v.x);
  atomicAdd(dst + 1, v.y);
  atomicAdd(dst + 2, v.z);
  atomicAdd(dst + 3, v.w);
}

__device__ __forceinline__ float* tc_smem() {
  extern __shared__ __align__(16) float tc_smem_buf[];
  return tc_smem_buf;
}

// ==== tensor-core kernel: begin ====
constexpr int kTcThreads = 256;     // 8 warps
constexpr int kTcT = 128;           // batch columns per tile
constexpr int kTcMeta = kTcThreads;  // entries staged per round

// How the CTAs split the work: item = (child block, slice of CS rows, group of tiles_per_cta column
// tiles); a chunk index j of a child block is (entry j >> lrc, row chunk j & (2^lrc - 1)).
struct TcGrid {
  int col_tiles = 1, tiles_per_cta = 1, groups = 1, slices = 1, lrc = 0, items = 0;
  int parts = 1;  // CTAs sharing one (child block, slice, column group): each takes a part of its entries
};

template <int RT, int CS>
struct TcShape {
  static constexpr int T = kTcT;
  static constexpr int NWM = RT / 16;             // P product: warps along parent rows
  static constexpr int NWK = 8 / NWM;             // ... and along the batch (partial P tiles)
  static constexpr int TW = T / NWK;              // batch columns per warp there
  static constexpr int NG = TW / 16;              // 16-column groups per lane
  static constexpr int NCM = CS / 16;             // child product: warps along child rows
  static constexpr int NCN = 8 / NCM;             // ... and along the batch
  static constexpr int TN = T / NCN;              // batch columns per warp there
  static constexpr int NT = TN / 8;               // its n-tiles
  static constexpr int NPN = CS / 8;              // P product: n-tiles
  static constexpr int NWV = RT * CS / kTcThreads;  // weights staged per thread
  // Row strides (floats): A and E rows 16 mod 32 banks (A's columns swizzled, see below), W and P
  // rows 8 mod 32.
  static constexpr int LDA = T + 16, LDE = T + 16, LDW = CS + 8, LDP = CS + 8;
  // The epilogue's C tile [CS][LDC] lies over the A buffers; rows 8 mod 32 banks apart, so the float2
  // writes of the fragment layout (rows g, columns 2q) are free of bank conflicts.
  static constexpr int LDC = T + 8;
  // Shared memory layout (offsets in floats, all multiples of 4).
  static constexpr int kA = 0;                         // [2][RT][LDA] A chunk, TF32
  static constexpr int kW = kA + 2 * RT * LDA;         // [2][RT][LDW] W chunk, float32
  static constexpr int kP = kW + 2 * RT * LDW;         // [2][NWK + 1][RT][LDP] partial P tiles, exact terms
  static constexpr int kE = kP + 2 * (NWK + 1) * RT * LDP;  // [CS][LDE] E tile, TF32
  static constexpr int kM = kE + CS * LDE;             // [T] shift
  static constexpr int kRed = kM + T;                  // [2][T] partial column maxima
  static constexpr int kMetaW = kRed + 2 * T;          // int64 [kTcMeta] weight offsets
  static constexpr int kMetaP = kMetaW + 2 * kTcMeta;  // int32 [kTcMeta] parent rows
  static constexpr int kCnt = kMetaP + kTcMeta;        // int32 [8] per-warp counts
  static constexpr int kStarts = kCnt + 8;              // int32 [kMaxChildArity] a fused block's starts
  static constexpr int kFloats = kStarts + static_cast<int>(SumPartition::kMaxChildArity);
  static constexpr size_t kBytes = static_cast<size_t>(kFloats) * sizeof(float);
  static_assert(RT == 16 || RT == 32, "RT");
  static_assert(CS == 16 || CS == 32, "CS");
  static_assert(2 * T == kTcThreads, "the tile prologue has two threads per column");
  static_assert(NG >= 1 && NT >= 1 && NWV >= 1 && NWV <= 4, "tile shape");
  static_assert(kMetaW % 2 == 0, "int64 alignment");
  static_assert(CS * LDC <= kW - kA, "the C tile fits in the A buffers");
};

// A's column swizzle: A rows are 16 mod 32 banks apart and element (r, t) sits at column
// t ^ (8 * ((r >> 1) & 1)); then the child product's B-fragment reads (rows k0 + q, columns n0 + g)
// and the float4 writes of A (rows m0 + g, columns 4q..4q+3 of a 16-column group) are both free of
// bank conflicts, and 4-column groups stay contiguous. The kernel applies it in closed form.

// Stages the entries q in [qb, qe) (at most kTcMeta) of the child block with starts kst: parent row
// and weight offset of each one that is not padding, compacted in order. Returns how many.
template <bool F>
__device__ __forceinline__ int tc_load_meta(const DevSum& s, int qb, int qe, const int32_t* kst, int cblock,
                                            int* meta_p, int64_t* meta_w, int* cnt) {
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  __syncthreads();  // readers of the previous round are done
  bool ok = false;
  int prow = 0;
  int64_t wo = -1;
  if (qb + tid < qe) {
    const int e = s.child_block_entries[qb + tid];
    wo = s.weight_offsets[e];
    ok = wo >= 0 && (F ? same_child(s.child_rows + static_cast<int64_t>(e) * s.child_arity, kst, s.child_arity)
                       : s.child_rows[e] == cblock);
    if (ok) prow = s.out_rows[static_cast<uint32_t>(e) / static_cast<uint32_t>(s.fanin)];
  }
  const unsigned m = __ballot_sync(0xffffffffu, ok);
  if (lane == 0) cnt[warp] = __popc(m);
  __syncthreads();
  int base = 0, total = 0;
#pragma unroll
  for (int w = 0; w < kTcThreads / 32; ++w) {
    const int c = cnt[w];
    base += w < warp ? c : 0;
    total += c;
  }
  if (ok) {
    const int pos = base + __popc(m & ((1u << lane) - 1u));
    meta_p[pos] = prow;
    meta_w[pos] = wo;
  }
  __syncthreads();
  return total;
}

template <int RT, int CS, bool VEC, bool F>  // F: fused child blocks (child_arity > 1)
__global__ void __launch_bounds__(kTcThreads, 2)
    sum_backward_tc(DevSum s, const float* __restrict__ params, const float* __restrict__ values,
                    float* __restrict__ flows, float* __restrict__ param_flows, int64_t batch, TcGrid grid) {
  using S = TcShape<RT, CS>;
  constexpr int T = S::T, NG = S::NG, NT = S::NT, NPN = S::NPN, NWK = S::NWK, NWV = S::NWV;
  constexpr int LDA = S::LDA, LDE = S::LDE, LDW = S::LDW, LDP = S::LDP, LDC = S::LDC;
  float* const sm = tc_smem();
  float* const As = sm + S::kA;
  float* const Ws = sm + S::kW;
  float* const Pp = sm + S::kP;
  float* const Es = sm + S::kE;
  float* const Ms = sm + S::kM;
  float* const red = sm + S::kRed;
  int64_t* const meta_w = reinterpret_cast<int64_t*>(sm + S::kMetaW);
  int* const meta_p = reinterpret_cast<int*>(sm + S::kMetaP);
  int* const cnt = reinterpret_cast<int*>(sm + S::kCnt);
  int32_t* const starts = reinterpret_cast<int32_t*>(sm + S::kStarts);

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, q = lane & 3;
  // P product and A: this warp's 16 parent rows (mt) and TW batch columns (kw); the lane's rows are
  // arow, arow + 8 and its columns acol + 16 jg + (0..3).
  const int mt = warp % S::NWM, kw = warp / S::NWM;
  const int arow = mt * 16 + g, acol = kw * S::TW + 4 * q;
  // Child product: this warp's 16 child rows (wm) and TN batch columns (wn).
  const int wm = warp % S::NCM, wn = warp / S::NCM;
  // W staging: NWV consecutive weights of one row.
  const int wr = tid / (CS / NWV), wc = (tid % (CS / NWV)) * NWV;
  const int64_t cb = s.child_block_size;
  const int rcmask = (1 << grid.lrc) - 1;
  uint32_t step = 0;  // chunks done by this CTA: selects the buffers
  // The exact-term slots of the P buffers start at zero, and the reduction that reads one clears it.
  for (int x = tid; x < 2 * RT * LDP; x += kTcThreads)
    Pp[(x / (RT * LDP)) * ((NWK + 1) * RT * LDP) + NWK * RT * LDP + x % (RT * LDP)] = 0.0f;

  for (int item = blockIdx.x; item < grid.items; item += gridDim.x) {
    const int part = item % grid.parts;
    const int grp = item / grid.parts % grid.groups, rest = item / grid.parts / grid.groups;
    const int slice = rest % grid.slices, k = rest / grid.slices;
    const int tile0 = grp * grid.tiles_per_cta;
    const int tile1 = min(grid.col_tiles, tile0 + grid.tiles_per_cta);
    // The child block's starts. A fused block's are read from shared memory (`starts`; the arity from
    // the parameters): in registers they would be live through the chunk loop, where this kernel is
    // at its register limit, and spills there cost far more than the shared loads.
    int cblock;
    if constexpr (F) {
      __syncthreads();  // the previous item's readers are done
      if (tid < s.child_arity) starts[tid] = s.child_block_rows[static_cast<int64_t>(k) * s.child_arity + tid];
      __syncthreads();
      cblock = starts[0];
    } else {
      cblock = s.child_block_rows[k];
    }
    const int c0 = slice * CS;
    const int64_t crow = static_cast<int64_t>(cblock) + c0;  // first child row of the slice
    // Child value at slice row c, column t: a fused block's is the sum of its rows.
    auto child_v = [&](int c, int64_t t) {
      if constexpr (F)
        return fused_value(values, starts, s.child_arity, c0 + c, batch, t);
      else
        return values[(crow + c) * batch + t];
    };
    // This part's share of the entries reading the block (every flow goes out with atomics, so the
    // parts' partial sums simply add).
    const int qb0 = s.child_block_start[k], qb1 = s.child_block_start[k + 1];
    const int per = (qb1 - qb0 + grid.parts - 1) / grid.parts;
    const int q0 = qb0 + part * per, q1 = min(qb1, q0 + per);
    if (q1 <= q0) continue;  // uniform over the CTA
    const int rounds = (q1 - q0 + kTcMeta - 1) / kTcMeta;
    int nvalid = rounds == 1 ? tc_load_meta<F>(s, q0, q1, starts, cblock, meta_p, meta_w, cnt) : 0;

    // The prefetched chunk: parent flows and values (A-fragment layout), its weights, where it lives.
    float4 fx[2][NG], vx[2][NG];
    float wx[NWV];
    bool have = false;
    // Chunk j of the staged entries: its first parent row and its weights' offset.
    auto chunk_prow = [&](int j) { return static_cast<int64_t>(meta_p[j >> grid.lrc]) + (j & rcmask) * RT; };
    auto chunk_wbase = [&](int j) {
      return meta_w[j >> grid.lrc] + static_cast<int64_t>(j & rcmask) * RT * cb + c0;
    };
    auto load_chunk = [&](int tile, int j) {
      const int64_t prow = chunk_prow(j);
      const int64_t t0 = static_cast<int64_t>(tile) * T + acol;
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int64_t row = (prow + arow + 8 * h) * batch;
        const float* fr = flows + row;
        const float* vr = values + row;
#pragma unroll
        for (int jg = 0; jg < NG; ++jg) {
          const int64_t t = t0 + 16 * jg;
          if (VEC) {  // batch % 4 == 0: a float4 is all in or all out
            if (t < batch) {
              fx[h][jg] = *reinterpret_cast<const float4*>(fr + t);
              vx[h][jg] = *reinterpret_cast<const float4*>(vr + t);
            } else {
              fx[h][jg] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
              vx[h][jg] = fx[h][jg];
            }
          } else {
            fx[h][jg].x = t < batch ? fr[t] : 0.0f;
            fx[h][jg].y = t + 1 < batch ? fr[t + 1] : 0.0f;
            fx[h][jg].z = t + 2 < batch ? fr[t + 2] : 0.0f;
            fx[h][jg].w = t + 3 < batch ? fr[t + 3] : 0.0f;
            vx[h][jg].x = t < batch ? vr[t] : 0.0f;
            vx[h][jg].y = t + 1 < batch ? vr[t + 1] : 0.0f;
            vx[h][jg].z = t + 2 < batch ? vr[t + 2] : 0.0f;
            vx[h][jg].w = t + 3 < batch ? vr[t + 3] : 0.0f;
          }
        }
      }
      const float* wp = params + chunk_wbase(j) + static_cast<int64_t>(wr) * cb + wc;
#pragma unroll
      for (int u = 0; u < NWV; ++u) wx[u] = wp[u];
    };

    for (int tile = tile0; tile < tile1; ++tile) {
      const int64_t tbase = static_cast<int64_t>(tile) * T;
      // Tile prologue: M[t] = max over the slice's child rows (-inf: every term is 0, the column is
      // left alone), E[c][t] = exp(v_c - M[t]).
      __syncthreads();  // the previous tile's readers of Es, Ms and red are done
      {
        constexpr int CH = CS / 2;
        const int t = tid % T, half = tid / T;
        const int64_t gt = tbase + t;
        float m;
        if constexpr (!F) {  // (child values read twice: L1)
          float pm = -INFINITY;
          if (gt < batch) {
#pragma unroll
            for (int c = 0; c < CH; ++c) pm = fmaxf(pm, child_v(half * CH + c, gt));
          }
          red[half * T + t] = pm;
          __syncthreads();
          m = fmaxf(red[t], red[T + t]);
#pragma unroll
          for (int c = 0; c < CH; ++c)
            Es[(half * CH + c) * LDE + t] =
                __uint_as_float(m > -INFINITY ? to_tf32(__expf(child_v(half * CH + c, gt) - m)) : 0u);
        } else {  // a fused block's values (sums of rows) are formed once, into Es, then exponentiated there
          float pm = -INFINITY;
          const int32_t s0 = starts[0], s1 = starts[1];  // (starts has room for kMaxChildArity)
          if (s.child_arity == 2 && gt < batch) {  // binary products (PD, HMM, RAT-SPN): fixed strides
            const int64_t rr = c0 + half * CH;
            const float* const p0 = values + (s0 + rr) * batch + gt;
            const float* const p1 = values + ((s1 >= 0 ? s1 : s0) + rr) * batch + gt;
#pragma unroll
            for (int c = 0; c < CH; ++c) {
              const float v = s1 >= 0 ? p0[c * batch] + p1[c * batch] : p0[c * batch];
              Es[(half * CH + c) * LDE + t] = v;
              pm = fmaxf(pm, v);
            }
          } else {
#pragma unroll 1
            for (int c = 0; c < CH; ++c) {
              const float v = gt < batch ? child_v(half * CH + c, gt) : -INFINITY;
              Es[(half * CH + c) * LDE + t] = v;
              pm = fmaxf(pm, v);
            }
          }
          red[half * T + t] = pm;
          __syncthreads();
          m = fmaxf(red[t], red[T + t]);
#pragma unroll 1
          for (int c = 0; c < CH; ++c) {
            float* const e = Es + (half * CH + c) * LDE + t;
            *e = __uint_as_float(m > -INFINITY ? to_tf32(__expf(*e - m)) : 0u);
          }
        }
        if (half == 0) Ms[t] = m;
      }
      __syncthreads();

      float cacc[NT][4];
#pragma unroll
      for (int nt = 0; nt < NT; ++nt)
#pragma unroll
        for (int i = 0; i < 4; ++i) cacc[nt][i] = 0.0f;
      int tile_slow = 0;

      for (int round = 0; round < rounds; ++round) {
        if (rounds > 1) {
          nvalid = tc_load_meta<F>(s, q0 + round * kTcMeta, min(q1, q0 + (round + 1) * kTcMeta), starts,
                                   cblock, meta_p, meta_w, cnt);
          have = false;
        }
        const int nch = nvalid << grid.lrc;
        if (nch == 0) continue;
        if (VEC && !have) load_chunk(tile, 0);
        for (int j = 0; j < nch; ++j, ++step) {
          if (!VEC) load_chunk(tile, j);  // unaligned batches: no prefetch (registers)
          float* const A = As + (step & 1) * (RT * LDA);
          float* const W = Ws + (step & 1) * (RT * LDW);
          float* const P = Pp + (step & 1) * ((NWK + 1) * RT * LDP);
          // A = f exp(M - v) in TF32 (0 where the row passes nothing; rows over kMaxShift flagged),
          // kept in registers and written for the child product.
          uint32_t slow = 0;
          uint32_t a[2][NG][4];
#pragma unroll
          for (int jg = 0; jg < NG; ++jg) {
            const float4 m4 = *reinterpret_cast<const float4*>(Ms + acol + 16 * jg);
            const float mm[4] = {m4.x, m4.y, m4.z, m4.w};
#pragma unroll
            for (int h = 0; h < 2; ++h) {
              const float ff[4] = {fx[h][jg].x, fx[h][jg].y, fx[h][jg].z, fx[h][jg].w};
              const float vv[4] = {vx[h][jg].x, vx[h][jg].y, vx[h][jg].z, vx[h][jg].w};
#pragma unroll
              for (int i = 0; i < 4; ++i) {
                float x = 0.0f;
                if (live_row(ff[i], vv[i])) {
                  const float d = mm[i] - vv[i];
                  if (d <= kMaxShift)
                    x = ff[i] * __expf(d);
                  else
                    slow |= 1u << ((h * NG + jg) * 4 + i);
                }
                a[h][jg][i] = to_tf32(x);
              }
              // A's swizzle at row arow + 8 h (whose bit 1 is g's): column bit 3 flips where g & 2.
              *reinterpret_cast<uint4*>(A + (arow + 8 * h) * LDA + (acol ^ ((g & 2) << 2)) + 16 * jg) =
                  make_uint4(a[h][jg][0], a[h][jg][1], a[h][jg][2], a[h][jg][3]);
            }
          }
#pragma unroll
          for (int u = 0; u < NWV; ++u) W[wr * LDW + wc + u] = wx[u];

          // The next chunk's loads (this chunk's f, v and w are consumed), in flight during the products.
          have = false;
          if (VEC && j + 1 < nch) {
            load_chunk(tile, j + 1);
            have = true;
          } else if (VEC && rounds == 1 && tile + 1 < tile1) {
            load_chunk(tile + 1, 0);
            have = true;
          }

          // P product over this warp's columns, one n-tile (8 child rows) at a time, stored as this
          // warp's partial: k-step s of column group jg takes columns 4q + 2s (as k = q) and 4q + 2s + 1
          // (as k = q + 4) in both operands, so one float4 of E feeds two k-steps.
#pragma unroll
          for (int n = 0; n < NPN; ++n) {
            float pacc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
            for (int jg = 0; jg < NG; ++jg) {
              const uint4 e4 = *reinterpret_cast<const uint4*>(Es + (n * 8 + g) * LDE + acol + 16 * jg);
              mma_tf32(pacc, a[0][jg][0], a[1][jg][0], a[0][jg][1], a[1][jg][1], e4.x, e4.y);
              mma_tf32(pacc, a[0][jg][2], a[1][jg][2], a[0][jg][3], a[1][jg][3], e4.z, e4.w);
            }
            *reinterpret_cast<float2*>(P + (kw * RT + arow) * LDP + n * 8 + 2 * q) = make_float2(pacc[0], pacc[1]);
            *reinterpret_cast<float2*>(P + (kw * RT + arow + 8) * LDP + n * 8 + 2 * q) = make_float2(pacc[2], pacc[3]);
          }
          const int any_slow = __syncthreads_or(slow != 0);  // A, W and the P partials are complete

          if (any_slow) {
            // Exact path, by the lane that flagged the (row, column): f exp(log w + v_c - v_r) per
            // positive weight, into the chunk's exact-term slot and the child flow.
            tile_slow = 1;
#pragma unroll 1
            for (int bit = 0; bit < 8 * NG; ++bit) {
              if (!((slow >> bit) & 1u)) continue;
              const int h = bit / (4 * NG), jg = (bit / 4) % NG, i = bit % 4;
              const int r = arow + 8 * h;
              const int64_t t = tbase + acol + 16 * jg + i;
              const int64_t at = (chunk_prow(j) + r) * batch + t;
              const float f = flows[at], vr = values[at];
#pragma unroll 1
              for (int c = 0; c < CS; ++c) {
                const float w = W[r * LDW + c];
                if (!(w > 0.0f)) continue;
                const float vc = child_v(c, t);
                if (!(vc > -INFINITY)) continue;
                const float term = exact_term(f, w, vc, vr);
                atomicAdd(P + (NWK * RT + r) * LDP + c, term);
                if constexpr (!F)
                  atomicAdd(flows + (crow + c) * batch + t, term);
                else
                  fused_add_flow(flows, starts, s.child_arity, c0 + c, batch, t, term);
              }
            }
            __syncthreads();
          }

          // Child product: C [CS, T] += W^T [CS, RT] A [RT, T]. B fragments: rows k0 + q (+ 4), columns
          // wn TN + 8 nt + g, swizzled: bit 3 flips where q & 2 (bit 1 of the row), i.e. n-tile nt ^ (q >> 1).
          {
            const int sw = (q & 2) << 2;
            const float* const be = A + q * LDA + wn * S::TN + g + sw;  // even n-tiles
            const float* const bo = A + q * LDA + wn * S::TN + g - sw;  // odd n-tiles
#pragma unroll 1
            for (int k0 = 0; k0 < RT; k0 += 8) {
              const float* w0 = W + (k0 + q) * LDW + wm * 16 + g;
              const uint32_t a0 = to_tf32(w0[0]), a1 = to_tf32(w0[8]);
              const uint32_t a2 = to_tf32(w0[4 * LDW]), a3 = to_tf32(w0[4 * LDW + 8]);
#pragma unroll
              for (int nt = 0; nt < NT; ++nt) {
                const float* b = ((nt & 1) ? bo : be) + k0 * LDA + nt * 8;
                mma_tf32(cacc[nt], a0, a1, a2, a3, __float_as_uint(b[0]), __float_as_uint(b[4 * LDA]));
              }
            }
          }

          // Parameter flows of the chunk: W * (sum of the partial P tiles) + exact terms.
          if (tid < RT * CS / 4) {
            const int r = tid / (CS / 4), c = (tid % (CS / 4)) * 4;
            float4 p = *reinterpret_cast<const float4*>(P + r * LDP + c);
#pragma unroll
            for (int x = 1; x < NWK; ++x) {
              const float4 o = *reinterpret_cast<const float4*>(P + (x * RT + r) * LDP + c);
              p.x += o.x;
              p.y += o.y;
              p.z += o.z;
              p.w += o.w;
            }
            const float4 w = *reinterpret_cast<const float4*>(W + r * LDW + c);
            float4 val = make_float4(w.x * p.x, w.y * p.y, w.z * p.z, w.w * p.w);
            if (any_slow) {
              float4* const xs = reinterpret_cast<float4*>(P + (NWK * RT + r) * LDP + c);
              const float4 e = *xs;
              val.x += e.x;
              val.y += e.y;
              val.z += e.z;
              val.w += e.w;
              *xs = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
            }
            float* const dst0 = param_flows + chunk_wbase(j);
            const bool aligned = (reinterpret_cast<uintptr_t>(dst0) & 15u) == 0;
            atomic_add4(dst0 + static_cast<int64_t>(r) * cb + c, val, aligned);
          }
        }
      }

      // Epilogue: flows[c, t] += exp(v_c - M_t) C[c, t], with atomics (exact terms may have gone there
      // too, and a fused block's rows are shared with other blocks). C goes through shared memory (the
      // A buffers, free after the last chunk) so that each thread adds float4s along a row: a quarter
      // of the atomics of the fragment layout, and every L2 sector they touch is used whole.
      __syncthreads();  // the last chunk's readers of A are done
      float* const Cs = As;
#pragma unroll
      for (int nt = 0; nt < NT; ++nt)
#pragma unroll
        for (int h = 0; h < 2; ++h)
          *reinterpret_cast<float2*>(Cs + (wm * 16 + g + 8 * h) * LDC + wn * S::TN + nt * 8 + 2 * q) =
              make_float2(cacc[nt][2 * h], cacc[nt][2 * h + 1]);
      __syncthreads();
#pragma unroll 1
      for (int x = tid; x < CS * T / 4; x += kTcThreads) {
        const int c = x / (T / 4), tl = (x % (T / 4)) * 4;
        const int64_t t = tbase + tl;
        if (t >= batch) continue;
        // 4 columns of a row from t (0 past the batch; VEC: a float4 is all in or all out).
        auto load4 = [&](const float* row) {
          if (VEC) return *reinterpret_cast<const float4*>(row + t);
          return make_float4(row[t], t + 1 < batch ? row[t + 1] : 0.0f, t + 2 < batch ? row[t + 2] : 0.0f,
                             t + 3 < batch ? row[t + 3] : 0.0f);
        };
        auto add4 = [&](float* row, float4 e) {
          if (VEC) {
            atomic_add4(row + t, e, true);
          } else {
            const float ee[4] = {e.x, e.y, e.z, e.w};
            for (int i = 0; i < 4 && t + i < batch; ++i) atomicAdd(row + t + i, ee[i]);
          }
        };
        // The child value: a fused block's is the sum of its rows, all loaded before any atomic.
        float4 v;
        if constexpr (!F) {
          v = load4(values + (crow + c) * batch);
        } else {
          v = load4(values + (static_cast<int64_t>(starts[0]) + c0 + c) * batch);
          for (int a = 1; a < s.child_arity; ++a) {
            if (starts[a] < 0) continue;
            const float4 o = load4(values + (static_cast<int64_t>(starts[a]) + c0 + c) * batch);
            v.x += o.x;
            v.y += o.y;
            v.z += o.z;
            v.w += o.w;
          }
        }
        const float4 m = *reinterpret_cast<const float4*>(Ms + tl);
        const float4 cv = *reinterpret_cast<const float4*>(Cs + c * LDC + tl);
        // Columns whose shift is -inf pass nothing (select, not multiply: exp(-inf + inf) is NaN).
        const float4 e = make_float4(m.x > -INFINITY ? __expf(v.x - m.x) * cv.x : 0.0f,
                                     m.y > -INFINITY ? __expf(v.y - m.y) * cv.y : 0.0f,
                                     m.z > -INFINITY ? __expf(v.z - m.z) * cv.z : 0.0f,
                                     m.w > -INFINITY ? __expf(v.w - m.w) * cv.w : 0.0f);
        if constexpr (!F) {
          add4(flows + (crow + c) * batch, e);
        } else {  // ... and its flow goes to each of its rows
          for (int a = 0; a < s.child_arity; ++a)
            if (a == 0 || starts[a] >= 0) add4(flows + (static_cast<int64_t>(starts[a]) + c0 + c) * batch, e);
        }
      }
    }
  }
}

int ilog2(int64_t x) {
  int l = 0;
  while ((int64_t(1) << l) < x) ++l;
  return l;
}

// Work split: about four waves of two CTAs per SM; where there is more work than that, a CTA walks
// several column tiles of its (child block, slice), staging the entries once and loading the next
// tile's first chunk during the current tile's last. Where there is less than one wave (an HMM step's
// 16 child blocks x 4 column tiles: 64 CTAs, each walking 16 entries in sequence), the entries of a
// block are split over `parts` CTAs, at least two entries each on average.
template <int RT, int CS>
TcGrid tc_grid(const DevSum& s, int64_t batch, int sms) {
  const int64_t col_tiles = (batch + kTcT - 1) / kTcT;
  const int64_t slices = s.child_block_size / CS;
  const int64_t units = s.num_child_blocks * slices;
  int64_t tpc = std::min<int64_t>(std::max<int64_t>(units * col_tiles / (8 * int64_t(std::max(sms, 1))), 1),
                                  col_tiles);
  const int64_t groups = (col_tiles + tpc - 1) / tpc;
  tpc = (col_tiles + groups - 1) / groups;
  const int64_t wave = 2 * int64_t(std::max(sms, 1)), work = units * groups;
  const int64_t avg_entries = s.num_child_blocks > 0 ? s.num_blocks * s.fanin / s.num_child_blocks : 1;
  const int64_t parts = work >= wave ? 1 : std::max<int64_t>(1, std::min((wave + work - 1) / work, avg_entries / 2));
  if (units * groups * parts > INT32_MAX - kMaxGrid || col_tiles > INT32_MAX)  // item += gridDim.x stays in range
    ::pcc::raise("sum_backward: partition too large (", s.num_child_blocks, " child blocks, batch ", batch, ")");
  TcGrid gr;
  gr.col_tiles = static_cast<int>(col_tiles);
  gr.tiles_per_cta = static_cast<int>(tpc);
  gr.groups = static_cast<int>(groups);
  gr.slices = static_cast<int>(slices);
  gr.lrc = ilog2(s.block_size / RT);
  gr.parts = static_cast<int>(parts);
  gr.items = static_cast<int>(units * groups * parts);
  return gr;
}
// ==== tensor-core kernel: end ====

bool pow2(int64_t x) { return x > 0 && (x & (x - 1)) == 0; }

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

// Once per kernel instance and device: its shared-memory opt-in (two CTAs per SM, the launch bounds'
// register budget, need the largest carveout); returns the device's SM count. Once, not per launch:
// the attribute calls cost host time, and a captured pass (graph_cache.cuh) wants none of them.
template <class Kernel>
int tc_setup(Kernel kernel, size_t bytes) {
  static std::mutex mu;
  static std::map<std::pair<const void*, int>, int> sms_of;
  int dev = 0;
  PCC_CUDA_CHECK(cudaGetDevice(&dev));
  std::lock_guard<std::mutex> lock(mu);
  const auto key = std::make_pair(reinterpret_cast<const void*>(kernel), dev);
  const auto it = sms_of.find(key);
  if (it != sms_of.end()) return it->second;
  int sms = 0;
  PCC_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  PCC_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
  PCC_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributePreferredSharedMemoryCarveout,
                                      static_cast<int>(cudaSharedmemCarveoutMaxShared)));
  sms_of[key] = sms;
  return sms;
}

template <int RT, int CS>
void launch_tc(const DevSum& s, const float* params, const float* values, float* flows, float* param_flows,
               int64_t batch, cudaStream_t stream) {
  using S = TcShape<RT, CS>;
  const bool vec = batch % 4 == 0 && aligned16(values) && aligned16(flows);
  const bool fused = s.child_arity > 1;
  auto kernel = vec ? (fused ? sum_backward_tc<RT, CS, true, true> : sum_backward_tc<RT, CS, true, false>)
                    : (fused ? sum_backward_tc<RT, CS, false, true> : sum_backward_tc<RT, CS, false, false>);
  const int sms = tc_setup(kernel, S::kBytes);
  const TcGrid gr = tc_grid<RT, CS>(s, batch, sms);
  if (gr.items == 0) return;
  const unsigned grid = static_cast<unsigned>(std::min<int64_t>(gr.items, kMaxGrid));
  kernel<<<grid, kTcThreads, S::kBytes, stream>>>(s, params, values, flows, param_flows, batch, gr);
  PCC_CUDA_CHECK_LAUNCH("sum_backward (tensor cores)");
}

}  // namespace

void sum_backward(const DevSum& s, const float* params, const float* values, float* flows, float* param_flows,
                  int64_t batch, Precision precision, cudaStream_t stream) {
  if (s.num_blocks == 0 || batch <= 0 || s.fanin <= 0) return;
  // Every parent row's flow is final here (its layer's partitions ran after all later layers), and
  // the parameter kernel reads parent flows only, so the two kernels are independent; the stream
  // orders them anyway.
  const int64_t b = s.block_size, cb = s.child_block_size;
  const int64_t entries = s.num_blocks * s.fanin;
  if (entries > INT32_MAX || b * cb > INT32_MAX)
    ::pcc::raise("sum_backward: partition too large (", s.num_blocks, " blocks x fanin ", s.fanin, ")");
  if (precision != Precision::FP32 && pow2(b) && pow2(cb) && b >= 16 && cb >= 16) {
    // Both products in one kernel walking the transposed connectivity, which lists every entry that
    // is not padding (no child blocks: nothing to do).
    if (s.num_child_blocks == 0) return;
    if (cb >= 32)
      launch_tc<16, 32>(s, params, values, flows, param_flows, batch, stream);
    else
      launch_tc<16, 16>(s, params, values, flows, param_flows, batch, stream);
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
  const int64_t items = entries * (b / sh.tb) * (cb / sh.tcb);
  const unsigned grid = static_cast<unsigned>(std::min(items, kMaxGrid));
  const bool tiled = sh.tb < b || sh.tcb < cb;
  auto* param_kernel = s.child_arity > 1 ? (tiled ? param_flow_kernel<true, true> : param_flow_kernel<true, false>)
                                         : (tiled ? param_flow_kernel<false, true> : param_flow_kernel<false, false>);
  param_kernel<<<grid, kParamThreads, sh.smem, stream>>>(s, params, values, flows, param_flows, batch,
                                                              static_cast<int>(sh.tt), static_cast<int>(sh.lanes),
                                                              static_cast<int>(sh.passes), static_cast<int>(sh.tb),
                                                              static_cast<int>(sh.tcb));
  PCC_CUDA_CHECK_LAUNCH("sum_backward (parameter flows)");
}

}  // namespace cuda
}  // namespace pcc
