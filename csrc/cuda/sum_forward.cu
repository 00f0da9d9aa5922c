// Sum layer forward on the GPU (the CPU oracle is csrc/cpu/sum.cpp; same semantics):
//   out[r, col] = m + log sum_k sum_c W_k[r, c] exp(child_k[c, col] - m)
// with m the per-column max over all rows of the block's non-padding child blocks (0 where they are
// all -inf, so the output is log 0 = -inf), and an exact fallback for outputs whose sum is not
// trusted (< kTrustedSum, overflowed or NaN): a row whose nonzero-weight children all lie far below
// the shared shift m, recomputed with its own shift over those children.
//
// Two kernels:
//  * Tensor-core path (b >= 16 and cb >= 8 for TF32 / 16 for BF16): a CTA owns a tile of 128 output
//    rows x 128 batch columns. With b <= 128 the tile is 128 / b consecutive sum blocks; runs of them
//    that read the same child list (every block of a dense sum vector does) form a *segment* that
//    shares every load and exp of a child element, which is the dominant cost, not the matrix product.
//    With b > 128 the tile is a 128-row slice of one block. A partition whose runs of shared child
//    lists average under 128 rows (PD: two 32-row blocks per 64-node region) takes 64-row tiles
//    instead, so that one run keeps all 8 warps busy rather than half of them twice. The child rows of
//    all child blocks are one K dimension (k * cb + c; padding child blocks give E = 0 and W = 0).
//    K loop: the raw float32 child values and weights of 32 K rows at a time stream into a 3-stage
//    cp.async ring (16-byte copies where aligned), one __syncthreads per stage, so two stages are in
//    flight while the tensor cores work on the third. Each warp owns 64 (or 32) rows x 32 columns
//    (mma.sync m16n8k8 TF32 / m16n8k16 BF16, float32 accumulators in registers); it reads its B
//    fragments raw, folds them into a running per-column max and rescales its accumulators when that
//    max grows (as flash attention does), then exponentiates and rounds them in registers. So the child
//    values are read from memory once, with no separate max pass, and the final shift is the max over
//    all K rows, as before.
//    A partition that reads fused products (child_arity A > 1: a child block is the element-wise
//    product of A row runs, fused_child.cuh) takes a variant whose stages hold two E tiles, the first
//    run's and the second's (the sum of the others where A > 2, formed in registers), added at the
//    B-fragment read; two such stages fill the shared memory three plain ones do.
//    Where the grid would not fill the device once (2 CTAs per SM; a few large dense layers, HMM's), K
//    is split over a thread-block cluster of 2-8 CTAs (the size needing the fewest waves: a cluster
//    sits inside one GPC, so large clusters fit fewer per device) that combine their (accumulator,
//    max) tiles through distributed shared memory. The epilogue goes through shared memory and stores
//    whole rows.
//  * SIMT float32 path (everything else: b = 1 sparse rows, small blocks; and every block under
//    Precision::FP32, where no input is rounded for the tensor cores): one warp per (block, slice
//    of up to 8 rows, 64 columns), two columns per lane, weights broadcast from L1. Where that gives
//    too few warps to fill the device and K is long (root sums over thousands of children), the wide
//    variant has the 8 warps of a CTA split K for one (block, slice, 32 columns) and combine through
//    shared memory.
// Block and child-block sizes are runtime values (powers of two; the tensor-core path needs only
// b >= 16 and cb >= its k-step), so every shape the compiler or a block-form sum produces runs.
// Grids: the tensor-core kernel walks (row tile, batch tile) items, batch tiles fastest, grid-stride
// over a 1-D grid (a cluster's CTAs walk the same items); the SIMT kernel puts warps' items on grid.x
// and batch tiles on grid.y (grid-stride past 65535).
#include <cooperative_groups.h>
#include <cuda_bf16.h>

#include <algorithm>
#include <cfloat>
#include <climits>
#include <cstdint>
#include <map>
#include <mutex>

#include "cuda/cuda_check.cuh"
#include "cuda/fused_child.cuh"
#include "cuda/sum_forward.cuh"

namespace pcc {
namespace cuda {
namespace {

namespace cg = cooperative_groups;

constexpr int kThreads = 256;  // 8 warps
constexpr int kT = 64;         // SIMT path: batch columns per tile
constexpr int64_t kWideBelowWarps = 4096;  // SIMT: fewer warps than this (a few per SM) and long K: wide
// Tensor-core path: batch columns, K rows per stage, ring stages. Tile rows BM are 128 or 64 (a template
// parameter): 8 warps in 2 rows x 4 columns, each warp BM / 2 rows x 32 columns.
constexpr int kBN = 128, kBK = 32;
// Ring stages: 3; 2 where a stage holds two E tiles (fused products), to stay within the shared memory
// of 2 CTAs per SM.
template <bool F>
constexpr int kStages = F ? 2 : 3;
constexpr int kLdC = kBN + 8;  // accumulator tile rows: float2 stores of a warp hit distinct banks
constexpr int kTab = 256;      // child-list / weight-offset entries of a row tile cached in shared memory
constexpr int kMaxSplit = 8;   // CTAs per cluster that split K (the portable cluster limit)
constexpr unsigned kFull = 0xffffffffu;
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
  int32_t A;                      // child_arity: row starts per child block (fused_child.cuh)
  int32_t vec_e;                  // value rows are 16-byte aligned (batch % 4 == 0, aligned base)
  int64_t items;                  // tensor-core path: (row tile, batch tile) pairs
};

__device__ __forceinline__ float neg_inf() { return -__int_as_float(0x7f800000); }

__device__ __forceinline__ bool trusted(float a) { return a >= kTrustedSum && a <= FLT_MAX; }

// The exact path for output row r (local to block blk), column col: log sum W exp(v) shifted by the
// row's own max over its nonzero-weight children; -inf where all of them are -inf (or none exists).
template <bool F>
__device__ __forceinline__ float exact_output(const Args& a, int64_t blk, int r, int64_t col) {
  const int A = F ? a.A : 1;
  const int32_t* crow = a.child_rows + blk * a.fanin * A;
  const int64_t* woff = a.weight_offsets + blk * a.fanin;
  float mr = neg_inf();
  for (int k = 0; k < a.fanin; ++k) {
    const int32_t* st = crow + k * A;
    if (st[0] < 0) continue;
    const float* w = a.params + woff[k] + static_cast<int64_t>(r) * a.cb;
    for (int c = 0; c < a.cb; ++c)
      if (w[c] != 0.0f) mr = fmaxf(mr, fused_value(a.values, st, A, c, a.batch, col));
  }
  if (mr == neg_inf()) return neg_inf();
  float acc = 0.0f;
  for (int k = 0; k < a.fanin; ++k) {
    const int32_t* st = crow + k * A;
    if (st[0] < 0) continue;
    const float* w = a.params + woff[k] + static_cast<int64_t>(r) * a.cb;
    for (int c = 0; c < a.cb; ++c)
      if (w[c] != 0.0f) acc += w[c] * expf(fused_value(a.values, st, A, c, a.batch, col) - mr);
  }
  return logf(acc) + mr;
}

// ---------------------------------------------------------------------------------------------
// Tensor-core path: PTX helpers.

__device__ __forceinline__ uint32_t smem_u32(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
// cp.async: bytes past src_bytes are zero-filled (src_bytes 0 reads nothing).
__device__ __forceinline__ void cp_async16(float* dst, const float* src, int src_bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_u32(dst)), "l"(src), "r"(src_bytes)
               : "memory");
}
__device__ __forceinline__ void cp_async8(float* dst, const float* src) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 8;\n" ::"r"(smem_u32(dst)), "l"(src) : "memory");
}
__device__ __forceinline__ void cp_async4(float* dst, const float* src, int src_bytes) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(smem_u32(dst)), "l"(src), "r"(src_bytes)
               : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

// Round to nearest (ties away) as cvt.rna.tf32.f32, which sm_90 emulates with a finiteness test and
// this same add: the tensor cores ignore the 13 low mantissa bits, and 0x1000 lies among them, so inf
// stays inf and NaN stays NaN.
__device__ __forceinline__ uint32_t to_tf32(float x) { return __float_as_uint(x) + 0x1000u; }
// 2^x with denormal results flushed to 0 (one MUFU op; __expf without -ftz adds a range fix-up). Terms
// below 2^-126 of the column max are far under kTrustedSum, so a flushed sum still takes the exact path.
__device__ __forceinline__ float exp2_ftz(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}
constexpr float kLog2e = 1.4426950408889634f;
// Two floats as bf16x2, lo in the low half (the lower K index, as mma.sync expects).
__device__ __forceinline__ uint32_t to_bf16x2(float lo, float hi) {
  uint32_t r;
  asm("cvt.rn.bf16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
  return r;
}

// d += a b. Fragments (g = lane / 4, t = lane % 4): TF32 A (g, t) (g+8, t) (g, t+4) (g+8, t+4),
// B (k t, n g) (k t+4, n g); BF16 A pairs (g, 2t..) (g+8, 2t..) (g, 2t+8..) (g+8, 2t+8..), B pairs
// (k 2t.., n g) (k 2t+8.., n g); C (g, 2t) (g, 2t+1) (g+8, 2t) (g+8, 2t+1).
__device__ __forceinline__ void mma_tf32(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
__device__ __forceinline__ void mma_bf16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Stage tiles, in floats: W [BM rows][kBK K columns] then E [kBK K rows][kBN batch columns], rows
// padded so that the fragment loads of a warp hit 32 distinct banks and every load is a per-thread base
// plus an immediate: TF32 reads one float of A at (g, t) and of B at (k t, n g), so W rows are 36 floats
// (4 mod 32 banks) and E rows 136 (8 mod 32); BF16 reads a float2 of A at (g, 2t) and B at (k 2t, n g),
// so 40 (8 mod 32) and 132 (4 mod 32). Rows stay 16-byte aligned for cp.async.
// A fused partition's stage holds a second E tile after the first (F): the first holds each child
// block's first row run, the second the sum of the others (0 where there is none), and the B-fragment
// read adds the two.
template <Precision P, int BM, bool F>
struct TcLd {
  static constexpr int kW = P == Precision::TF32 ? kBK + 4 : kBK + 8;
  static constexpr int kE = P == Precision::TF32 ? kBN + 8 : kBN + 4;
  static constexpr int kEOffset = BM * kW;  // E tile within a stage
  static constexpr int kE2 = kBK * kE;      // the second E tile, from the first
  static constexpr int kStageFloats = kEOffset + (F ? 2 : 1) * kE2;
};

// Dynamic shared memory: 2 CTAs of 8 warps per SM, so 2 x (this + 1 KiB reserved) <= 228 KiB on
// sm_90 (BM 128: TF32 108 KiB, BF16 112.5 KiB; one byte more and the SM holds one CTA, half the warps).
template <Precision P, int BM, bool F>
struct TcShared {
  // The cp.async ring; after the K loop, the [BM][kLdC] accumulator tile and then, at kMOffset, the
  // [2][kBN] column shifts (per warp row) of a segment.
  float ring[kStages<F> * TcLd<P, BM, F>::kStageFloats];
  int64_t woff[kTab];  // the row tile's weight offsets and child rows, where they fit
  int32_t crow[kTab];
  int32_t differs[BM / 16];  // block j's child list differs from block j - 1's
  static constexpr int kMOffset = BM * kLdC;
};
constexpr int kMaxSmemPerCta = 113 * 1024;
template <Precision P, int BM, bool F>
constexpr bool tc_fits() {
  return sizeof(TcShared<P, BM, F>) <= kMaxSmemPerCta &&  // and the epilogue tiles fit the ring:
         TcShared<P, BM, F>::kMOffset + 2 * kBN <= kStages<F> * TcLd<P, BM, F>::kStageFloats;
}
static_assert(tc_fits<Precision::TF32, 128, false>() && tc_fits<Precision::BF16, 128, false>(), "two CTAs per SM");
static_assert(tc_fits<Precision::TF32, 64, false>() && tc_fits<Precision::BF16, 64, false>(), "two CTAs per SM");
static_assert(tc_fits<Precision::TF32, 128, true>() && tc_fits<Precision::BF16, 128, true>(), "two CTAs per SM");
static_assert(tc_fits<Precision::TF32, 64, true>() && tc_fits<Precision::BF16, 64, true>(), "two CTAs per SM");

// One 16-byte chunk of weights (always whole: K and the chunk start are multiples of 4) by the widest
// copies its alignment allows: weight blocks start anywhere in the parameter buffer.
__device__ __forceinline__ void copy_w(float* dst, const float* src) {
  const uintptr_t al = reinterpret_cast<uintptr_t>(src) & 15;
  if (al == 0) {
    cp_async16(dst, src, 16);
  } else if ((al & 7) == 0) {
    cp_async8(dst, src);
    cp_async8(dst + 2, src + 2);
  } else {
#pragma unroll
    for (int e = 0; e < 4; ++e) cp_async4(dst + e, src + e, 4);
  }
}

// K rows kg .. kg + 15 of the current stage: running max, rescale, exp, MMAs. wa points at this
// lane's A base (W row wr0 + g, column t (TF32) / 2t (BF16)), eb at its B base (E row t / 2t, column
// wc0 + g). acc[i][j] is the warp's m-tile i (rows wr0 + 16 i ..) x n-tile j (columns wc0 + 8 j ..);
// m[j] the running max of column wc0 + 8 j + g over this warp's K rows so far (-inf: none seen, shift 0).
template <Precision P, int MT, int kg, bool F>
__device__ __forceinline__ void tc_group(const float* __restrict__ wa, const float* __restrict__ eb,
                                         float (&acc)[MT][4][4], float (&m)[4], unsigned live, int t) {
  constexpr bool kTf32 = P == Precision::TF32;
  constexpr int LW = TcLd<P, 128, F>::kW, LE = TcLd<P, 128, F>::kE;  // row strides do not depend on BM
  constexpr int E2 = TcLd<P, 128, F>::kE2;
  // Per n-tile j: its B values (4 per lane: K rows kg + (TF32: t, t+4, t+8, t+12; BF16: 2t, 2t+1,
  // 2t+8, 2t+9), column wc0 + 8 j + g), their max over the 4 lanes of group g (which hold one column's
  // K rows between them), the rescale, and E = exp(v - shift) <= 1 in the tensor cores' input type.
  uint32_t bq[4][4];
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    float v[4];
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      const int o = (kg + (kTf32 ? 4 * q : (q & 1) + 8 * (q >> 1))) * LE + 8 * j;
      v[q] = F ? eb[o] + eb[E2 + o] : eb[o];
    }
    float cm = fmaxf(fmaxf(v[0], v[1]), fmaxf(v[2], v[3]));
    cm = fmaxf(cm, __shfl_xor_sync(kFull, cm, 1));
    cm = fmaxf(cm, __shfl_xor_sync(kFull, cm, 2));
    if (__any_sync(kFull, cm > m[j])) {
      // The accumulators were summed under the old shift: scale by exp(old - new) (0 where nothing
      // finite was seen yet; those are 0). Accumulator columns 2t, 2t+1 belong to groups 2t, 2t+1.
      const float mn = fmaxf(m[j], cm);
      const float sc = mn == m[j] ? 1.0f : (m[j] == neg_inf() ? 0.0f : exp2_ftz((m[j] - mn) * kLog2e));
      m[j] = mn;
      const float s0 = __shfl_sync(kFull, sc, 8 * t), s1 = __shfl_sync(kFull, sc, 8 * t + 4);
#pragma unroll
      for (int i = 0; i < MT; ++i) {
        acc[i][j][0] *= s0;
        acc[i][j][1] *= s1;
        acc[i][j][2] *= s0;
        acc[i][j][3] *= s1;
      }
    }
    // exp(v - sh) as 2^(v log2e - sh log2e): one FFMA and one MUFU op; v = -inf gives 0.
    const float shl = m[j] == neg_inf() ? 0.0f : m[j] * kLog2e;
    float e[4];
#pragma unroll
    for (int q = 0; q < 4; ++q) e[q] = exp2_ftz(fmaf(v[q], kLog2e, -shl));
    if constexpr (kTf32) {
#pragma unroll
      for (int q = 0; q < 4; ++q) bq[j][q] = to_tf32(e[q]);
    } else {
      bq[j][0] = to_bf16x2(e[0], e[1]);
      bq[j][1] = to_bf16x2(e[2], e[3]);
    }
  }
  if constexpr (kTf32) {
#pragma unroll
    for (int s = 0; s < 2; ++s) {  // the two k-steps of 8
#pragma unroll
      for (int i = 0; i < MT; ++i) {
        if (!((live >> i) & 1)) continue;
        const float* w = wa + 16 * i * LW + kg + 8 * s;
        const uint32_t af[4] = {to_tf32(w[0]), to_tf32(w[8 * LW]), to_tf32(w[4]), to_tf32(w[8 * LW + 4])};
#pragma unroll
        for (int j = 0; j < 4; ++j) mma_tf32(acc[i][j], af, bq[j][2 * s], bq[j][2 * s + 1]);
      }
    }
  } else {
#pragma unroll
    for (int i = 0; i < MT; ++i) {
      if (!((live >> i) & 1)) continue;
      const float* w = wa + 16 * i * LW + kg;
      const float2 x0 = *reinterpret_cast<const float2*>(w);
      const float2 x1 = *reinterpret_cast<const float2*>(w + 8 * LW);
      const float2 x2 = *reinterpret_cast<const float2*>(w + 8);
      const float2 x3 = *reinterpret_cast<const float2*>(w + 8 * LW + 8);
      const uint32_t af[4] = {to_bf16x2(x0.x, x0.y), to_bf16x2(x1.x, x1.y), to_bf16x2(x2.x, x2.y),
                              to_bf16x2(x3.x, x3.y)};
#pragma unroll
      for (int j = 0; j < 4; ++j) mma_bf16(acc[i][j], af, bq[j][0], bq[j][1]);
    }
  }
}

// split = CTAs per cluster sharing one item's K range (1: no cluster launch).
template <Precision P, int BM, bool F>
__global__ void __launch_bounds__(kThreads, 2) sum_forward_tc(const Args a, const int split) {
  extern __shared__ __align__(128) unsigned char smem_raw[];
  using Sh = TcShared<P, BM, F>;
  using Ld = TcLd<P, BM, F>;
  constexpr int kSt = kStages<F>;
  Sh& sm = *reinterpret_cast<Sh*>(smem_raw);

  constexpr bool kTf32 = P == Precision::TF32;
  constexpr int kBM = BM, MT = BM / 32, kWR = BM / 2;  // m-tiles and rows per warp
  constexpr int kLogWR = BM == 128 ? 6 : 5;
  static_assert(BM == 128 || BM == 64, "tile rows");
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int g = lane >> 2, t = lane & 3;
  const int b = a.b, cb = a.cb, fanin = a.fanin;
  const int A = F ? a.A : 1;  // F: the partition reads fused products (a separate kernel keeps the other lean)
  const int K = fanin * cb;  // < INT_MAX - kBK: checked by the launcher
  // Warp tile: rows wr0 .. wr0 + kWR - 1 (warp row wrow), columns wc0 .. wc0 + 31.
  const int wrow = warp >> 2, wr0 = wrow * kWR, wc0 = (warp & 3) * 32;

  // This CTA's share of K: chunks [rank * per, ..) of 32 rows.
  const int rank = split > 1 ? static_cast<int>(cg::this_cluster().block_rank()) : 0;
  const int nch_all = (K + kBK - 1) / kBK;
  const int per = (nch_all + split - 1) / split;
  const int nch = max(0, min(per, nch_all - rank * per));
  const int kbeg = rank * per * kBK;

  const int G = b <= kBM ? kBM >> a.lb : 1;  // blocks per row tile

  // Items are (row tile, batch tile), batch tiles fastest: the CTAs running together share weights
  // and (for the row tiles of one vector) child values in L2, so each is read from memory about once.
  for (int64_t item = blockIdx.x / split; item < a.items; item += gridDim.x / split) {
    const int64_t tile = item % a.num_tiles, grp = item / a.num_tiles;
    const int64_t t0 = tile * kBN;
    const int cols = static_cast<int>(min(static_cast<int64_t>(kBN), a.batch - t0));

    // The row tile: blocks g0 .. g0 + nblk - 1 (row rho -> block g0 + rho / b, row rho % b), or
    // for b > 128 the rows lr0 .. lr0 + 127 of block g0.
    int64_t g0;
    int nblk, lr0 = 0, rows_per_blk;
    if (b <= kBM) {
      g0 = grp * G;
      nblk = static_cast<int>(min(static_cast<int64_t>(G), a.num_blocks - g0));
      rows_per_blk = b;
    } else {
      const int slices = b / kBM;
      g0 = grp / slices;
      lr0 = static_cast<int>(grp % slices) * kBM;
      nblk = 1;
      rows_per_blk = kBM;
    }

    // The tile's child lists and weight offsets into shared memory (staging reads them per chunk), and
    // segments: runs of blocks with identical child lists (warp j compares block j with j - 1).
    __syncthreads();  // the previous item is done with the tables
    const int tab_n = nblk * fanin, list = fanin * A;  // list: child starts per block
    const bool tab = nblk * list <= kTab;
    if (tab) {
      for (int i = tid; i < tab_n; i += kThreads) {
        sm.woff[i] = a.weight_offsets[g0 * fanin + i];
        for (int x = 0; x < A; ++x) sm.crow[i * A + x] = a.child_rows[(g0 * fanin + i) * A + x];
      }
    }
    if (warp < nblk) {
      bool d = warp == 0;
      for (int k = lane; k < list && !d; k += 32)
        d = a.child_rows[(g0 + warp) * list + k] != a.child_rows[(g0 + warp - 1) * list + k];
      d = __any_sync(kFull, d);
      if (lane == 0) sm.differs[warp] = d;
    }
    __syncthreads();
    const int64_t* wtab = tab ? sm.woff : a.weight_offsets + g0 * fanin;  // [block - g0][k]

    for (int s0 = 0; s0 < nblk;) {
      int s1 = s0 + 1;
      while (s1 < nblk && !sm.differs[s1]) ++s1;
      const int32_t* ctab = tab ? sm.crow + s0 * list : a.child_rows + (g0 + s0) * list;
      const int r0 = s0 * rows_per_blk, r1 = s1 * rows_per_blk;  // the segment's tile rows
      unsigned live = 0;  // this warp's m-tiles inside the segment (segments are multiples of 16 rows)
#pragma unroll
      for (int i = 0; i < MT; ++i) live |= (wr0 + 16 * i >= r0 && wr0 + 16 * i < r1 ? 1u : 0u) << i;

      // Stage chunk c of this CTA's K range into ring slot st. E rows past K or of padding child
      // blocks are -inf (E = 0), columns past the batch zero (never stored); W of segment rows only,
      // zero past K and for padding. A fused child block's first run goes to the first E tile, a second
      // one to the second (both cp.async); more than two are summed in registers (plain loads).
      auto issue = [&](int c, int st) {
        float* ws = sm.ring + st * Ld::kStageFloats;
        float* es = ws + Ld::kEOffset;
        const int kc0 = kbeg + c * kBK;
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          const int kl = (tid >> 5) + 8 * i, col = (tid & 31) << 2, kr = kc0 + kl;
          float* dst = es + kl * Ld::kE + col;
          const int32_t* cst = ctab + (kr >> a.lcb) * A;
          const int32_t r = kr < K ? cst[0] : -1;
          const int n = min(max(cols - col, 0), 4);
          const int64_t cr = kr & (cb - 1);
          auto copy_e = [&](float* d, int32_t run) {  // row cr of the run at `run`; 0 past the batch
            const float* src = a.values + (static_cast<int64_t>(run) + cr) * a.batch + t0 + col;
            if (a.vec_e) {
              cp_async16(d, n > 0 ? src : a.values, 4 * n);
            } else {
#pragma unroll
              for (int e = 0; e < 4; ++e) cp_async4(d + e, e < n ? src + e : a.values, e < n ? 4 : 0);
            }
          };
          if (r >= 0) {
            copy_e(dst, r);
            if constexpr (F) {
              float* const d2 = dst + Ld::kE2;
              if (A == 2 && cst[1] >= 0) {
                copy_e(d2, cst[1]);
              } else {  // none (0), or the sum of the other runs in registers (plain loads)
                float4 v = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
                for (int x = 1; x < A; ++x) {
                  if (cst[x] < 0) continue;
                  const float* src = a.values + (static_cast<int64_t>(cst[x]) + cr) * a.batch + t0 + col;
                  if (a.vec_e && n == 4) {
                    const float4 u = *reinterpret_cast<const float4*>(src);
                    v.x += u.x;
                    v.y += u.y;
                    v.z += u.z;
                    v.w += u.w;
                  } else {
                    if (n > 0) v.x += src[0];
                    if (n > 1) v.y += src[1];
                    if (n > 2) v.z += src[2];
                    if (n > 3) v.w += src[3];
                  }
                }
                *reinterpret_cast<float4*>(d2) = v;
              }
            }
          } else {
            *reinterpret_cast<float4*>(dst) = make_float4(neg_inf(), neg_inf(), neg_inf(), neg_inf());
            if constexpr (F) *reinterpret_cast<float4*>(dst + Ld::kE2) = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
          }
        }
#pragma unroll
        for (int i = 0; i < BM / 32; ++i) {
          const int row = (tid >> 3) + 32 * i;
          if (row < r0 || row >= r1) continue;
          const int kc = (tid & 7) << 2, kw = kc0 + kc;
          float* dst = ws + row * Ld::kW + kc;
          const int jr = b <= kBM ? row >> a.lb : 0;
          const int lr = b <= kBM ? row & (b - 1) : lr0 + row;
          const int64_t o = kw < K ? wtab[jr * fanin + (kw >> a.lcb)] : -1;
          if (o >= 0)
            copy_w(dst, a.params + o + static_cast<int64_t>(lr) * cb + (kw & (cb - 1)));
          else
            *reinterpret_cast<float4*>(dst) = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        }
      };

      float acc[MT][4][4];
#pragma unroll
      for (int i = 0; i < MT; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j)
#pragma unroll
          for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.0f;
      float m[4] = {neg_inf(), neg_inf(), neg_inf(), neg_inf()};

      // One commit group per chunk (empty past the end) so that wait_group<kSt - 2> at chunk c
      // always means: chunk c has landed.
#pragma unroll
      for (int c = 0; c < kSt - 1; ++c) {
        if (c < nch) issue(c, c);
        cp_async_commit();
      }
#pragma unroll 1
      for (int c = 0; c < nch; ++c) {
        cp_async_wait<kSt - 2>();
        __syncthreads();  // chunk c visible to all; all warps are past chunk c - 1, so its slot is free
        if (c + kSt - 1 < nch) issue(c + kSt - 1, (c + kSt - 1) % kSt);
        cp_async_commit();
        if (live) {
          const float* ws = sm.ring + (c % kSt) * Ld::kStageFloats;
          const float* wa = ws + (wr0 + g) * Ld::kW + (kTf32 ? t : 2 * t);
          const float* eb = ws + Ld::kEOffset + (kTf32 ? t : 2 * t) * Ld::kE + wc0 + g;
          tc_group<P, MT, 0, F>(wa, eb, acc, m, live, t);
          // Keeps ptxas from hoisting the second group's loads over the first's MMAs, which would
          // need more than the 128 registers of 2 CTAs per SM.
          asm volatile("" ::: "memory");
          tc_group<P, MT, 16, F>(wa, eb, acc, m, live, t);
        }
      }

      // Epilogue: accumulators and shifts into shared memory (over the drained ring), then each CTA of
      // the cluster combines a slice of the rows from all of them and stores whole rows.
      cp_async_wait<0>();
      __syncthreads();
      float* cs = sm.ring;
      float* ms = sm.ring + Sh::kMOffset;  // [2][kBN]
      if (live) {
#pragma unroll
        for (int i = 0; i < MT; ++i) {
          if (!((live >> i) & 1)) continue;
#pragma unroll
          for (int j = 0; j < 4; ++j) {
            const int r = wr0 + 16 * i + g, c = wc0 + 8 * j + 2 * t;
            *reinterpret_cast<float2*>(&cs[r * kLdC + c]) = make_float2(acc[i][j][0], acc[i][j][1]);
            *reinterpret_cast<float2*>(&cs[(r + 8) * kLdC + c]) = make_float2(acc[i][j][2], acc[i][j][3]);
          }
        }
        if (t == 0) {
#pragma unroll
          for (int j = 0; j < 4; ++j) ms[wrow * kBN + wc0 + 8 * j + g] = m[j];
        }
      }
      if (split > 1) cg::this_cluster().sync(); else __syncthreads();
      {
        const int rs = (kBM + split - 1) / split;  // rows per CTA of the cluster
        const int q0 = max(r0, rank * rs), q1 = min(r1, rank * rs + rs);
        const int col = tid & (kBN - 1);
        if (col < cols) {
          for (int rho = q0 + tid / kBN; rho < q1; rho += kThreads / kBN) {
            // sum = sum over CTAs of acc exp(m_cta - mx); mx = -inf only where every child is -inf,
            // and then sum = 0 takes the exact path, which returns -inf.
            float mx, sum;
            if (split == 1) {
              mx = ms[(rho >> kLogWR) * kBN + col];
              sum = cs[rho * kLdC + col];
            } else {
              cg::cluster_group cl = cg::this_cluster();
              mx = neg_inf();
              for (int q = 0; q < split; ++q) mx = fmaxf(mx, *cl.map_shared_rank(&ms[(rho >> kLogWR) * kBN + col], q));
              sum = 0.0f;
              if (mx != neg_inf()) {
                for (int q = 0; q < split; ++q) {
                  const float mq = *cl.map_shared_rank(&ms[(rho >> kLogWR) * kBN + col], q);
                  if (mq != neg_inf()) sum += *cl.map_shared_rank(&cs[rho * kLdC + col], q) * __expf(mq - mx);
                }
              }
            }
            const int64_t j = g0 + (b <= kBM ? (rho >> a.lb) : 0);
            const int lr = b <= kBM ? (rho & (b - 1)) : lr0 + rho;
            const float out = trusted(sum) ? logf(sum) + mx : exact_output<F>(a, j, lr, t0 + col);
            a.values[(static_cast<int64_t>(a.out_rows[j]) + lr) * a.batch + t0 + col] = out;
          }
        }
      }
      // Every CTA is done reading the tiles before the next segment's staging overwrites them.
      if (split > 1) cg::this_cluster().sync(); else __syncthreads();
      s0 = s1;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// SIMT float32 path: warp per (block, RB-row slice, 64 columns).

template <int RB, bool F>
__global__ void __launch_bounds__(kThreads, 4) sum_forward_simt(const Args a, int64_t num_items) {
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t item = static_cast<int64_t>(blockIdx.x) * (kThreads / 32) + warp;
  if (item >= num_items) return;  // no block-level synchronization below
  const int slices = a.b / RB;
  const int64_t blk = item / slices;
  const int r0 = static_cast<int>(item % slices) * RB;
  const int cb = a.cb, fanin = a.fanin, A = F ? a.A : 1;
  const int32_t* crow = a.child_rows + blk * fanin * A;
  const int64_t* woff = a.weight_offsets + blk * fanin;

  for (int64_t tile = blockIdx.y; tile < a.num_tiles; tile += gridDim.y) {
    const int64_t t0 = tile * kT;
    const int cols = static_cast<int>(min(static_cast<int64_t>(kT), a.batch - t0));
    const bool ok0 = lane < cols, ok1 = lane + 32 < cols;
    const int64_t c0 = t0 + lane, c1 = t0 + lane + 32;

    float m0 = neg_inf(), m1 = neg_inf();
    for (int k = 0; k < fanin; ++k) {
      const int32_t* st = crow + k * A;
      const int32_t r = st[0];
      if (r < 0) continue;
      const float* v = a.values + static_cast<int64_t>(r) * a.batch;
      if constexpr (F) {
        for (int c = 0; c < cb; ++c) {
          if (ok0) m0 = fmaxf(m0, fused_value(a.values, st, A, c, a.batch, c0));
          if (ok1) m1 = fmaxf(m1, fused_value(a.values, st, A, c, a.batch, c1));
        }
      } else {
#pragma unroll 4
        for (int c = 0; c < cb; ++c) {
          if (ok0) m0 = fmaxf(m0, v[c * a.batch + c0]);
          if (ok1) m1 = fmaxf(m1, v[c * a.batch + c1]);
        }
      }
    }
    m0 = m0 == neg_inf() ? 0.0f : m0;
    m1 = m1 == neg_inf() ? 0.0f : m1;

    float acc[RB][2];
#pragma unroll
    for (int r = 0; r < RB; ++r) acc[r][0] = acc[r][1] = 0.0f;
    for (int k = 0; k < fanin; ++k) {
      const int32_t* st = crow + k * A;
      if (st[0] < 0) continue;
      const float* w = a.params + woff[k] + static_cast<int64_t>(r0) * cb;
#pragma unroll 2
      for (int c = 0; c < cb; ++c) {
        const float e0 = ok0 ? __expf(fused_value(a.values, st, A, c, a.batch, c0) - m0) : 0.0f;
        const float e1 = ok1 ? __expf(fused_value(a.values, st, A, c, a.batch, c1) - m1) : 0.0f;
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
      if (ok0) out[c0] = trusted(acc[q][0]) ? logf(acc[q][0]) + m0 : exact_output<F>(a, blk, r0 + q, c0);
      if (ok1) out[c1] = trusted(acc[q][1]) ? logf(acc[q][1]) + m1 : exact_output<F>(a, blk, r0 + q, c1);
    }
  }
}

// SIMT, K split over the warps of a CTA: CTA per (block, RB-row slice, 32 columns), lane = column,
// warp w takes the K entries k = w, w + 8, ...; the column max and then the sums are combined in
// shared memory. Same result as sum_forward_simt up to the order of the float additions.
template <int RB, bool F>
__global__ void __launch_bounds__(kThreads, 4) sum_forward_wide(const Args a, int64_t num_items) {
  __shared__ float red[kThreads / 32][RB][32];
  __shared__ float colmax[32];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int slices = a.b / RB, cb = a.cb, K = a.fanin * cb, A = F ? a.A : 1;
  for (int64_t item = blockIdx.x; item < num_items; item += gridDim.x) {
    const int64_t blk = item / slices;
    const int r0 = static_cast<int>(item % slices) * RB;
    const int32_t* crow = a.child_rows + blk * a.fanin * A;
    const int64_t* woff = a.weight_offsets + blk * a.fanin;
    for (int64_t tile = blockIdx.y; tile * 32 < a.batch; tile += gridDim.y) {
      const int64_t col = tile * 32 + lane;
      const bool ok = col < a.batch;
      float m = neg_inf();
      for (int k = warp; k < K; k += kThreads / 32) {
        const int32_t* st = crow + (k / cb) * A;
        if (st[0] >= 0 && ok) m = fmaxf(m, fused_value(a.values, st, A, k % cb, a.batch, col));
      }
      red[warp][0][lane] = m;
      __syncthreads();
      if (warp == 0) {
        float mm = red[0][0][lane];
        for (int w = 1; w < kThreads / 32; ++w) mm = fmaxf(mm, red[w][0][lane]);
        colmax[lane] = mm == neg_inf() ? 0.0f : mm;
      }
      __syncthreads();
      const float shift = colmax[lane];
      float acc[RB];
#pragma unroll
      for (int q = 0; q < RB; ++q) acc[q] = 0.0f;
      for (int k = warp; k < K; k += kThreads / 32) {
        const int32_t* st = crow + (k / cb) * A;
        if (st[0] < 0) continue;
        const float e = ok ? __expf(fused_value(a.values, st, A, k % cb, a.batch, col) - shift) : 0.0f;
        const float* w = a.params + woff[k / cb] + static_cast<int64_t>(r0) * cb + k % cb;
#pragma unroll
        for (int q = 0; q < RB; ++q) acc[q] = fmaf(w[q * cb], e, acc[q]);
      }
#pragma unroll
      for (int q = 0; q < RB; ++q) red[warp][q][lane] = acc[q];
      __syncthreads();
      if (warp == 0 && ok) {
#pragma unroll
        for (int q = 0; q < RB; ++q) {
          float sum = 0.0f;
          for (int w = 0; w < kThreads / 32; ++w) sum += red[w][q][lane];
          float* out = a.values + (static_cast<int64_t>(a.out_rows[blk]) + r0 + q) * a.batch;
          out[col] = trusted(sum) ? logf(sum) + shift : exact_output<F>(a, blk, r0 + q, col);
        }
      }
      __syncthreads();  // red and colmax are reused by the next tile
    }
  }
}

int ilog2(int x) {
  int l = 0;
  while ((1 << l) < x) ++l;
  return l;
}

// Per device and precision, once: the tensor-core kernel's shared-memory opt-in (2 CTAs of ~110 KiB
// per SM), how many CTAs fit on the device at once, and for each cluster size how many clusters do
// (clusters live inside one GPC, so 4-CTA clusters fit fewer than a quarter of the CTA slots).
struct TcDevice {
  int resident = 1;
  int clusters[kMaxSplit + 1] = {};  // [s]: clusters of s CTAs resident at once (0: not schedulable)
};

template <Precision P, int BM, bool F>
TcDevice tc_device() {
  static std::mutex mu;
  static std::map<int, TcDevice> cache;
  int dev = 0;
  PCC_CUDA_CHECK(cudaGetDevice(&dev));
  std::lock_guard<std::mutex> lock(mu);
  const auto it = cache.find(dev);
  if (it != cache.end()) return it->second;
  TcDevice d;
  int sms = 1, per_sm = 1;
  PCC_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  auto* kernel = sum_forward_tc<P, BM, F>;
  PCC_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                      static_cast<int>(sizeof(TcShared<P, BM, F>))));
  PCC_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributePreferredSharedMemoryCarveout,
                                      static_cast<int>(cudaSharedmemCarveoutMaxShared)));
  PCC_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kThreads, sizeof(TcShared<P, BM, F>)));
  d.resident = sms * std::max(per_sm, 1);
  for (int s = 2; s <= kMaxSplit; ++s) {
    cudaLaunchAttribute attr;
    attr.id = cudaLaunchAttributeClusterDimension;
    attr.val.clusterDim.x = s;
    attr.val.clusterDim.y = 1;
    attr.val.clusterDim.z = 1;
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3(s);
    cfg.blockDim = dim3(kThreads);
    cfg.dynamicSmemBytes = sizeof(TcShared<P, BM, F>);
    cfg.attrs = &attr;
    cfg.numAttrs = 1;
    int clusters = 0;
    if (cudaOccupancyMaxActiveClusters(&clusters, kernel, &cfg) == cudaSuccess)
      d.clusters[s] = clusters;
    else
      (void)cudaGetLastError();  // a refused query is an answer, not an error to report later
  }
  cache[dev] = d;
  return d;
}

// CTAs per cluster that split K: the fewest waves times chunks per CTA (plus about two chunks' worth
// of cluster epilogue), so a small grid with long K (HMM-2048: 64 items x 64 chunks) fills the device
// in one wave: 3-CTA clusters all fit where 4-CTA clusters would leave a second wave.
int choose_split(const TcDevice& d, int64_t items, int64_t nch) {
  if (items >= d.resident) return 1;  // the grid fills the device already
  int best = 1;
  int64_t best_cost = ((items + d.resident - 1) / d.resident) * nch;
  for (int s = 2; s <= kMaxSplit; ++s) {
    if (d.clusters[s] <= 0 || nch < 2 * s) continue;
    const int64_t waves = (items + d.clusters[s] - 1) / d.clusters[s];
    const int64_t cost = waves * ((nch + s - 1) / s + 2);
    if (cost < best_cost) {
      best = s;
      best_cost = cost;
    }
  }
  return best;
}

template <Precision P, int BM, bool F>
void launch_tc(Args a, int64_t num_blocks, cudaStream_t stream) {
  const int b = a.b;
  const int64_t groups = b <= BM ? (num_blocks + (BM / b) - 1) / (BM / b) : num_blocks * (b / BM);
  a.items = groups * a.num_tiles;
  const int64_t items = a.items;
  const TcDevice d = tc_device<P, BM, F>();
  const int64_t nch = (static_cast<int64_t>(a.fanin) * a.cb + kBK - 1) / kBK;
  const int split = choose_split(d, items, nch);
  const int64_t ctas = std::min<int64_t>(items * split, (INT_MAX / split) * split);
  if (split == 1) {
    sum_forward_tc<P, BM, F><<<static_cast<unsigned>(ctas), kThreads, sizeof(TcShared<P, BM, F>), stream>>>(a, 1);
    return;
  }
  cudaLaunchAttribute attr;
  attr.id = cudaLaunchAttributeClusterDimension;
  attr.val.clusterDim.x = static_cast<unsigned>(split);
  attr.val.clusterDim.y = 1;
  attr.val.clusterDim.z = 1;
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3(static_cast<unsigned>(ctas));
  cfg.blockDim = dim3(kThreads);
  cfg.dynamicSmemBytes = sizeof(TcShared<P, BM, F>);
  cfg.stream = stream;
  cfg.attrs = &attr;
  cfg.numAttrs = 1;
  PCC_CUDA_CHECK(cudaLaunchKernelEx(&cfg, sum_forward_tc<P, BM, F>, a, split));
}

// Tile rows BM and the fused variant (separate kernels: each keeps its own registers and ring).
template <Precision P>
void launch_tc_for(Args a, int64_t num_blocks, bool short_runs, cudaStream_t stream) {
  if (a.A > 1)
    short_runs ? launch_tc<P, 64, true>(a, num_blocks, stream) : launch_tc<P, 128, true>(a, num_blocks, stream);
  else
    short_runs ? launch_tc<P, 64, false>(a, num_blocks, stream) : launch_tc<P, 128, false>(a, num_blocks, stream);
}

// The SIMT kernels (Wide: K split over a CTA) for RB rows per warp (1, 2, 4 or 8).
template <bool Wide, bool F>
void launch_simt(int rb, dim3 grid, const Args& a, int64_t items, cudaStream_t stream) {
  auto* k = Wide ? sum_forward_wide<8, F> : sum_forward_simt<8, F>;
  if (rb == 1) k = Wide ? sum_forward_wide<1, F> : sum_forward_simt<1, F>;
  if (rb == 2) k = Wide ? sum_forward_wide<2, F> : sum_forward_simt<2, F>;
  if (rb == 4) k = Wide ? sum_forward_wide<4, F> : sum_forward_simt<4, F>;
  k<<<grid, kThreads, 0, stream>>>(a, items);
}

}  // namespace

void sum_forward(const DevSum& s, const float* params, float* values, int64_t batch, Precision precision,
                 cudaStream_t stream) {
  if (s.num_blocks == 0 || batch == 0) return;
  const int b = s.block_size, cb = s.child_block_size;
  PCC_CHECK(b >= 1 && cb >= 1 && (b & (b - 1)) == 0 && (cb & (cb - 1)) == 0,
            "sum_forward: block sizes must be powers of two, got ", b, " x ", cb);
  PCC_CHECK(static_cast<int64_t>(s.fanin) * cb < INT_MAX - kBK, "sum_forward: fan-in too large (", s.fanin, ")");
  Args a;
  a.out_rows = s.out_rows;
  a.child_rows = s.child_rows;
  a.weight_offsets = s.weight_offsets;
  a.params = params;
  a.values = values;
  a.num_blocks = s.num_blocks;
  a.batch = batch;
  a.b = b;
  a.cb = cb;
  a.lb = ilog2(b);
  a.lcb = ilog2(cb);
  a.fanin = s.fanin;
  a.A = s.child_arity;
  a.vec_e = batch % 4 == 0 && reinterpret_cast<uintptr_t>(values) % 16 == 0;
  a.items = 0;

  const int kstep = precision == Precision::BF16 ? 16 : 8;
  if (precision != Precision::FP32 && b >= 16 && cb >= kstep) {
    a.num_tiles = (batch + kBN - 1) / kBN;
    // A 128-row tile runs its runs of shared child lists one after another, each with only the warps
    // whose rows it holds; runs shorter than that (PD's 64-node regions) take 64-row tiles, so all
    // 8 warps work on one run.
    const bool short_runs = s.rows_per_child_list < 128;
    if (precision == Precision::BF16)
      launch_tc_for<Precision::BF16>(a, s.num_blocks, short_runs, stream);
    else
      launch_tc_for<Precision::TF32>(a, s.num_blocks, short_runs, stream);
  } else {
    a.num_tiles = (batch + kT - 1) / kT;
    const unsigned grid_y = static_cast<unsigned>(std::min<int64_t>(a.num_tiles, 65535));
    const int rb = b < 8 ? b : 8;
    const int64_t items = s.num_blocks * (b / rb);
    const int64_t K = static_cast<int64_t>(s.fanin) * cb;
    if (K >= 256 && items * a.num_tiles < kWideBelowWarps) {
      const int64_t tiles = (batch + 31) / 32;
      const dim3 grid(static_cast<unsigned>(std::min<int64_t>(items, 65535)),
                      static_cast<unsigned>(std::min<int64_t>(tiles, 65535)));
      a.A > 1 ? launch_simt<true, true>(rb, grid, a, items, stream) : launch_simt<true, false>(rb, grid, a, items, stream);
      PCC_CUDA_CHECK_LAUNCH("sum_forward (wide)");
      return;
    }
    const int64_t ctas = (items + kThreads / 32 - 1) / (kThreads / 32);
    PCC_CHECK(ctas <= INT_MAX, "sum_forward: too many sum blocks (", s.num_blocks, ")");
    const dim3 grid(static_cast<unsigned>(ctas), grid_y);
    a.A > 1 ? launch_simt<false, true>(rb, grid, a, items, stream) : launch_simt<false, false>(rb, grid, a, items, stream);
  }
  PCC_CUDA_CHECK_LAUNCH("sum_forward");
}

}  // namespace cuda
}  // namespace pcc
