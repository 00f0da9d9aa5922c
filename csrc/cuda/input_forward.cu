// Input layer forward on the GPU: log-probabilities of Categorical, Bernoulli and Gaussian inputs, as
// csrc/cpu/input.cpp (Categorical / Bernoulli: logf of the slot; Gaussian in double). Missing entries
// give 0 (= log 1) and are never read. x has been validated (validate.cu), so discrete entries are
// in-range integers.
//
// Categorical / Bernoulli: a CTA takes a run of up to 32 consecutive nodes over a tile of batch
// columns (Shape). x is [batch, num_vars] row-major, so a variable's column is a strided read (a
// sector per entry): the CTA stages the tile's column once per variable of its run, as slot indices
// (-1 = missing) in shared memory, and its warps share it, one node per warp at a time. A warp writes
// its node's logf(p[k]) table (<= kTableCats slots) into its own shared slice with coalesced reads,
// so each entry costs a shared lookup instead of a global gather and a logf; the value is the same
// logf of the same float. Where the table would cost more than it saves (more slots than the tile
// has columns, or more than kTableCats: vocabularies of HMMs) the warp gathers and takes logf per
// entry. Warps sync among themselves between nodes; the CTA syncs only when its variable changes.
// Gaussian: one thread per (node, batch column).
#include <algorithm>

#include "core/input_values.h"
#include "cuda/cuda_check.cuh"
#include "cuda/ops.cuh"
#include "pcc/error.h"

namespace pcc {
namespace cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kMinCtas = 5;          // per SM: caps registers at 48 (the unrolled loads fit unspilled)
constexpr int kMaxRun = 32;          // nodes per CTA at most (one per lane of the run's metadata)
constexpr int kCols = 1024;          // batch columns per CTA at most (the staged column of x)
constexpr int kMinTile = 64;         // batch columns per CTA at least
constexpr int kTableCats = 512;      // slots of a warp's log-probability table (2 KiB)
constexpr int64_t kFillCtas = 2048;  // CTAs a grid should have (a few waves of an H100)
constexpr int64_t kGatherCtas = 512;  // the same where a group gathers (more than kTableCats slots)
constexpr int64_t kMaxGrid = int64_t(1) << 20;
constexpr unsigned kAll = 0xffffffffu;
constexpr double kHalfLog2Pi = 0.91893853320467274178;

// One CTA's work: sh.run consecutive nodes x sh.tile batch columns. Long runs reuse a staged column
// of x over more nodes and wide tiles spread a node's table over more columns; both shrink (runs
// first) until the grid has kFillCtas CTAs, so that small groups still spread over the device.
struct Shape {
  int run, tile;
};

// Groups whose categories exceed the shared tables (HMM vocabularies) gather from global memory:
// fewer, wider CTAs there (kGatherCtas), so each lane has several gathers in flight per node.
Shape shape(int64_t num_nodes, int64_t batch, bool gather) {
  const int64_t fill = gather ? kGatherCtas : kFillCtas;
  Shape sh{kMaxRun, kCols};
  const auto ctas = [&] { return (num_nodes + sh.run - 1) / sh.run * ((batch + sh.tile - 1) / sh.tile); };
  while (sh.run > kWarps && ctas() < fill) sh.run /= 2;
  while (sh.tile > kMinTile && ctas() < fill) sh.tile /= 2;
  return sh;
}

template <class T>
__global__ void __launch_bounds__(kThreads, kMinCtas) discrete_forward_kernel(
    int64_t row_start, int64_t num_nodes, Shape sh, const int32_t* __restrict__ var,
    const int64_t* __restrict__ param_offset, const int32_t* __restrict__ num_cats, bool bernoulli,
    const float* __restrict__ params, const T* __restrict__ x, const uint8_t* __restrict__ missing,
    int64_t num_vars, float* __restrict__ values, int64_t batch) {
  __shared__ int32_t xs[kCols];                  // the tile's slot indices of one variable, -1 = missing
  __shared__ float tables[kWarps][kTableCats];  // per warp: logf of its node's slots
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  float* table = tables[warp];
  for (int64_t i0 = static_cast<int64_t>(blockIdx.x) * sh.run; i0 < num_nodes;
       i0 += static_cast<int64_t>(gridDim.x) * sh.run) {  // block-uniform
    // The run's metadata, one node per lane; bit j of starts: node i0 + j begins a variable segment.
    const int n = num_nodes - i0 < sh.run ? static_cast<int>(num_nodes - i0) : sh.run;
    const bool mine = lane < n;
    const int32_t my_var = mine ? var[i0 + lane] : -1;
    const int64_t my_off = mine ? param_offset[i0 + lane] : 0;
    const int32_t my_cats = !mine ? 0 : bernoulli ? 2 : num_cats[i0 + lane];
    const int32_t prev_var = __shfl_up_sync(kAll, my_var, 1);
    const unsigned starts = __ballot_sync(kAll, mine && (lane == 0 || my_var != prev_var));
    for (int64_t c0 = static_cast<int64_t>(blockIdx.y) * sh.tile; c0 < batch;
         c0 += static_cast<int64_t>(gridDim.y) * sh.tile) {
      const int cols = batch - c0 < sh.tile ? static_cast<int>(batch - c0) : sh.tile;
      for (unsigned rest = starts; rest != 0;) {
        const int s = __ffs(rest) - 1;
        rest &= rest - 1;
        const int e = rest != 0 ? __ffs(rest) - 1 : n;
        const int64_t v = __shfl_sync(kAll, my_var, s);
        __syncthreads();  // every warp is done with the previous variable's xs
#pragma unroll 1
        for (int c = threadIdx.x; c < cols; c += kThreads) {
          const int64_t at = (c0 + c) * num_vars + v;
          const T xv = x[at];  // read even where missing (junk, unused): both loads go out together
          xs[c] = missing != nullptr && missing[at] ? -1 : static_cast<int32_t>(xv);
        }
        __syncthreads();
        for (int j = s + warp; j < e; j += kWarps) {  // warp-uniform
          const int64_t off = __shfl_sync(kAll, my_off, j);
          const int32_t cats = __shfl_sync(kAll, my_cats, j);
          const float* p = params + off;
          float* out = values + (row_start + i0 + j) * batch + c0;
          if (cats <= kTableCats && cats <= cols) {
            __syncwarp();  // the warp's previous lookups are done
#pragma unroll 8
            for (int k = lane; k < cats; k += 32) table[k] = logf(p[k]);
            __syncwarp();
#pragma unroll 1
            for (int c = lane; c < cols; c += 32) {
              const int32_t k = xs[c];
              out[c] = k < 0 ? 0.0f : table[k];
            }
          } else {
#pragma unroll 4
            for (int c = lane; c < cols; c += 32) {
              const int32_t k = xs[c];
              out[c] = k < 0 ? 0.0f : logf(p[k]);
            }
          }
        }
      }
    }
  }
}

// Gaussian: mean, std at the node's first slots, as the CPU: -log(std) - log(2 pi)/2 - z^2/2.
template <class T>
__global__ void gaussian_forward_kernel(int64_t row_start, int64_t num_nodes, const int32_t* var,
                                        const int64_t* param_offset, const float* params, const T* x,
                                        const uint8_t* missing, int64_t num_vars, float* values, int64_t batch) {
  const int64_t bstride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = blockIdx.y; i < num_nodes; i += gridDim.y) {
    const int64_t v = var[i];
    const float* p = params + param_offset[i];
    const double mean = p[0], inv_std = 1.0 / double(p[1]);
    const double c = -log(double(p[1])) - kHalfLog2Pi;
    float* out = values + (row_start + i) * batch;
    for (int64_t b = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; b < batch; b += bstride) {
      const int64_t at = b * num_vars + v;
      if (missing != nullptr && missing[at]) {
        out[b] = 0.0f;
      } else {
        const double z = (static_cast<double>(x[at]) - mean) * inv_std;
        out[b] = static_cast<float>(c - 0.5 * z * z);
      }
    }
  }
}

}  // namespace

void input_forward(const DevInputGroup& g, const float* params, const void* x, DType t, const uint8_t* missing,
                   int64_t num_vars, float* values, int64_t batch, cudaStream_t stream) {
  if (g.num_nodes == 0 || batch == 0) return;
  with_dtype(t, [&](auto tag) {
    using T = decltype(tag);
    const T* xt = static_cast<const T*>(x);
    if (g.dist == Dist::Gaussian) {
      const dim3 grid(static_cast<unsigned>(std::min<int64_t>((batch + kThreads - 1) / kThreads, 1 << 16)),
                      static_cast<unsigned>(std::min<int64_t>(g.num_nodes, 65535)));
      gaussian_forward_kernel<T><<<grid, kThreads, 0, stream>>>(g.row_start, g.num_nodes, g.var, g.param_offset,
                                                               params, xt, missing, num_vars, values, batch);
      PCC_CUDA_CHECK_LAUNCH("input_forward (gaussian)");
      return;
    }
    const Shape sh = shape(g.num_nodes, batch, g.max_cats > kTableCats);
    const dim3 grid(static_cast<unsigned>(std::min<int64_t>((g.num_nodes + sh.run - 1) / sh.run, kMaxGrid)),
                    static_cast<unsigned>(std::min<int64_t>((batch + sh.tile - 1) / sh.tile, 65535)));
    discrete_forward_kernel<T><<<grid, kThreads, 0, stream>>>(g.row_start, g.num_nodes, sh, g.var, g.param_offset,
                                                             g.num_cats, g.dist == Dist::Bernoulli, params, xt,
                                                             missing, num_vars, values, batch);
    PCC_CUDA_CHECK_LAUNCH("input_forward");
  });
}

}  // namespace cuda
}  // namespace pcc
