// Input layer forward on the GPU: log-probabilities of Categorical, Bernoulli and Gaussian inputs, as
// csrc/cpu/input.cpp (Categorical / Bernoulli: logf of the slot; Gaussian in double). Missing entries
// give 0 (= log 1) and are never read. x has been validated (validate.cu), so discrete entries are
// in-range integers.
//
// Categorical / Bernoulli: runs of nodes over batch tiles with the tile's x column staged in shared
// memory (input_runs.cuh), one node per warp. A warp writes its node's logf(p[k]) table (<= kTableCats
// slots) into its own shared slice with coalesced reads, so each entry costs a shared lookup instead
// of a global gather and a logf; the value is the same logf of the same float. Where the table would
// cost more than it saves (more slots than the tile has columns, or more than kTableCats: vocabularies
// of HMMs) the warp gathers and takes logf per entry.
// Category-major Categorical groups (large vocabularies): lanes over nodes, see below.
// Gaussian: one thread per (node, batch column).
#include <algorithm>

#include "core/input_values.h"
#include "cuda/cuda_check.cuh"
#include "cuda/input_runs.cuh"
#include "cuda/ops.cuh"
#include "pcc/error.h"

namespace pcc {
namespace cuda {
namespace {

using input_runs::kThreads;
using input_runs::kWarps;
constexpr int kMinCtas = 5;      // per SM: caps registers at 48 (the unrolled loads fit unspilled)
constexpr int kMinTile = 64;     // batch columns per CTA at least
constexpr int kTableCats = 512;  // slots of a warp's log-probability table (2 KiB)
constexpr double kHalfLog2Pi = 0.91893853320467274178;

template <class T>
__global__ void __launch_bounds__(kThreads, kMinCtas) discrete_forward_kernel(
    int64_t row_start, int64_t num_nodes, input_runs::Shape sh, const int32_t* __restrict__ var,
    const int64_t* __restrict__ param_offset, const int32_t* __restrict__ num_cats, bool bernoulli,
    const float* __restrict__ params, const T* __restrict__ x, const uint8_t* __restrict__ missing,
    int64_t num_vars, float* __restrict__ values, int64_t batch) {
  __shared__ int32_t xs[input_runs::kCols];     // the tile's slot indices of one variable, -1 = missing
  __shared__ float tables[kWarps][kTableCats];  // per warp: logf of its node's slots
  const int lane = threadIdx.x & 31;
  float* table = tables[threadIdx.x >> 5];
  input_runs::for_each_node(
      num_nodes, sh, var, param_offset, num_cats, bernoulli, x, missing, num_vars, batch, xs,
      [&](int64_t i, int64_t off, int32_t cats, int64_t c0, int cols) {
        const float* p = params + off;
        float* out = values + (row_start + i) * batch + c0;
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
      });
}

// Category-major Categorical groups: lanes over nodes (input_runs::for_each_cm_tile), so a column's
// 32 gathers hit consecutive floats; the tile's values go through shared memory and are written row
// by row. Same logf of the same float as the kernel above.
template <class T>
__global__ void __launch_bounds__(kThreads) category_major_forward_kernel(
    int64_t row_start, int64_t num_nodes, const int32_t* __restrict__ var, const int64_t* __restrict__ param_offset,
    int64_t stride, const float* __restrict__ params, const T* __restrict__ x, const uint8_t* __restrict__ missing,
    int64_t num_vars, float* __restrict__ values, int64_t batch) {
  __shared__ int32_t xs[input_runs::kCmTile];
  __shared__ float tile[32][input_runs::kCmTile + 1];  // [node][column], padded: lanes write a column
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  input_runs::for_each_cm_tile(
      num_nodes, var, param_offset, x, missing, num_vars, batch, xs, [](int64_t, int, int64_t, int) {},
      [&](int j, int64_t off, int32_t k, int c) {
        tile[j][c] = k < 0 ? 0.0f : logf(params[off + static_cast<int64_t>(k) * stride]);
      },
      [&](int64_t i0, int n, int64_t c0, int cols) {
        for (int j = warp; j < n; j += kWarps) {
          float* out = values + (row_start + i0 + j) * batch + c0;
          for (int c = lane; c < cols; c += 32) out[c] = tile[j][c];
        }
      });
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
    if (g.cat_stride != 1) {
      category_major_forward_kernel<T><<<input_runs::cm_grid(g.num_nodes, batch), kThreads, 0, stream>>>(
          g.row_start, g.num_nodes, g.var, g.param_offset, g.cat_stride, params, xt, missing, num_vars, values, batch);
      PCC_CUDA_CHECK_LAUNCH("input_forward (category-major)");
      return;
    }
    const input_runs::Shape sh = input_runs::shape(g.num_nodes, batch, g.max_cats > kTableCats, kMinTile);
    discrete_forward_kernel<T><<<input_runs::grid(sh, g.num_nodes, batch), kThreads, 0, stream>>>(g.row_start, g.num_nodes, sh, g.var, g.param_offset,
                                                             g.num_cats, g.dist == Dist::Bernoulli, params, xt,
                                                             missing, num_vars, values, batch);
    PCC_CUDA_CHECK_LAUNCH("input_forward");
  });
}

}  // namespace cuda
}  // namespace pcc
