// Input layer forward on the GPU: log-probabilities of Categorical, Bernoulli and Gaussian inputs, as
// csrc/cpu/input.cpp (Categorical / Bernoulli: the log of the slot; Gaussian in double). Missing
// entries give 0 (= log 1) and are never read. x has been validated (validate.cu), so discrete
// entries are in-range integers.
//
// Categorical / Bernoulli (node-major): a warp walks a run of nodes over a tile of batch columns with
// the tile's slot indices in registers and gathers each node's slots (input_runs.cuh's warp items).
// Before, CTAs staged x in shared memory behind barriers and built a logf table per node; on HCLT's
// many small groups (median 7 us a launch) that chain of loads and barriers was most of the time.
// __logf instead of logf measured 5% faster and was not kept: the CPU's logf of the same float.
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
using input_runs::kAll;
constexpr int kMaxCols = 8;  // batch columns per lane of the discrete kernel (64 registers)
constexpr double kHalfLog2Pi = 0.91893853320467274178;

// A warp walks its item's nodes (input_runs::for_each_item) with the slot indices in registers. Each
// node's J gathers go out before the previous node's logs and stores (software pipelined); the
// gathers of one node hit its few cache lines of parameters.
template <class T, int J>
__global__ void __launch_bounds__(kThreads) discrete_forward_kernel(
    int64_t row_start, int64_t num_nodes, int run, const int32_t* __restrict__ var,
    const int64_t* __restrict__ param_offset, const float* __restrict__ params, const T* __restrict__ x,
    const uint8_t* __restrict__ missing, int64_t num_vars, float* __restrict__ values, float* __restrict__ zero_flows,
    int64_t batch) {
  const int lane = threadIdx.x & 31;
  input_runs::for_each_item<J>(
      num_nodes, run, batch, var, param_offset, [&](int64_t i0, int n, int64_t c0, int32_t my_var, int64_t my_off) {
        int32_t k[J];  // slots of the current variable (input_runs::load_slots)
        int32_t cur = __shfl_sync(kAll, my_var, 0);
        input_runs::load_slots<J>(k, x, missing, num_vars, batch, c0, cur);
        float g[J];  // the gathered probabilities of the node in flight; 1 where k < 0 (log 1 = 0)
        const auto gather = [&](int64_t off) {
#pragma unroll
          for (int u = 0; u < J; ++u) g[u] = k[u] >= 0 ? __ldg(params + off + k[u]) : 1.0f;
        };
        gather(__shfl_sync(kAll, my_off, 0));
        for (int j = 0; j < n; ++j) {  // warp-uniform
          float p[J];
#pragma unroll
          for (int u = 0; u < J; ++u) p[u] = g[u];
          if (j + 1 < n) {
            const int32_t v = __shfl_sync(kAll, my_var, j + 1);
            const int64_t off = __shfl_sync(kAll, my_off, j + 1);
            if (v != cur) {  // warp-uniform
              cur = v;
              input_runs::load_slots<J>(k, x, missing, num_vars, batch, c0, v);
            }
            gather(off);
          }
          const int64_t at = (row_start + i0 + j) * batch + c0 + lane;
#pragma unroll
          for (int u = 0; u < J; ++u)
            if (c0 + lane + 32 * u < batch) {
              values[at + 32 * u] = logf(p[u]);
              if (zero_flows != nullptr) zero_flows[at + 32 * u] = 0.0f;
            }
        }
      });
}

// Category-major Categorical groups: lanes over nodes (input_runs::for_each_cm_tile), so a column's
// 32 gathers hit consecutive floats; the tile's values go through shared memory and are written row
// by row. Same logf of the same float as the kernel above.
template <class T, int Tile>
__global__ void __launch_bounds__(kThreads) category_major_forward_kernel(
    int64_t row_start, int64_t num_nodes, const int32_t* __restrict__ var, const int64_t* __restrict__ param_offset,
    int64_t stride, const float* __restrict__ params, const T* __restrict__ x, const uint8_t* __restrict__ missing,
    int64_t num_vars, float* __restrict__ values, float* __restrict__ zero_flows, int64_t batch) {
  __shared__ int32_t xs[Tile];
  __shared__ float tile[32][Tile + 1];  // [node][column], padded: lanes write a column
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  input_runs::for_each_cm_tile<Tile>(
      num_nodes, var, param_offset, x, missing, num_vars, batch, xs, [](int64_t, int, int64_t, int) {},
      [&](int j, int64_t off, int32_t k, int c) {
        tile[j][c] = k < 0 ? 0.0f : logf(params[off + static_cast<int64_t>(k) * stride]);
      },
      [&](int64_t i0, int n, int64_t c0, int cols) {
        for (int j = warp; j < n; j += kWarps) {
          const int64_t at = (row_start + i0 + j) * batch + c0;
          for (int c = lane; c < cols; c += 32) {
            values[at + c] = tile[j][c];
            if (zero_flows != nullptr) zero_flows[at + c] = 0.0f;
          }
        }
      });
}

// Gaussian: mean, std at the node's first slots, as the CPU: -log(std) - log(2 pi)/2 - z^2/2.
template <class T>
__global__ void gaussian_forward_kernel(int64_t row_start, int64_t num_nodes, const int32_t* var,
                                        const int64_t* param_offset, const float* params, const T* x,
                                        const uint8_t* missing, int64_t num_vars, float* values, float* zero_flows,
                                        int64_t batch) {
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
      if (zero_flows != nullptr) zero_flows[(row_start + i) * batch + b] = 0.0f;
    }
  }
}

}  // namespace

void input_forward(const DevInputGroup& g, const float* params, const void* x, DType t, const uint8_t* missing,
                   int64_t num_vars, float* values, float* zero_flows, int64_t batch, cudaStream_t stream) {
  if (g.num_nodes == 0 || batch == 0) return;
  with_dtype(t, [&](auto tag) {
    using T = decltype(tag);
    const T* xt = static_cast<const T*>(x);
    if (g.dist == Dist::Gaussian) {
      const dim3 grid(static_cast<unsigned>(std::min<int64_t>((batch + kThreads - 1) / kThreads, 1 << 16)),
                      static_cast<unsigned>(std::min<int64_t>(g.num_nodes, 65535)));
      gaussian_forward_kernel<T><<<grid, kThreads, 0, stream>>>(g.row_start, g.num_nodes, g.var, g.param_offset,
                                                               params, xt, missing, num_vars, values, zero_flows,
                                                               batch);
      PCC_CUDA_CHECK_LAUNCH("input_forward (gaussian)");
      return;
    }
    if (g.cat_stride != 1) {
      const int tile = input_runs::cm_tile(g.num_nodes, batch);
      const auto launch = [&](auto kernel) {
        kernel<<<input_runs::cm_grid(g.num_nodes, batch, tile), kThreads, 0, stream>>>(
            g.row_start, g.num_nodes, g.var, g.param_offset, g.cat_stride, params, xt, missing, num_vars, values,
            zero_flows, batch);
      };
      if (tile == 128)
        launch(category_major_forward_kernel<T, 128>);
      else if (tile == 64)
        launch(category_major_forward_kernel<T, 64>);
      else
        launch(category_major_forward_kernel<T, 32>);
      PCC_CUDA_CHECK_LAUNCH("input_forward (category-major)");
      return;
    }
    const input_runs::WarpShape sh = input_runs::warp_shape(g.num_nodes, batch, kMaxCols);
    const auto launch = [&](auto kernel) {
      kernel<<<sh.grid, kThreads, 0, stream>>>(g.row_start, g.num_nodes, sh.run, g.var, g.param_offset, params, xt,
                                               missing, num_vars, values, zero_flows, batch);
    };
    if (sh.j == 8)
      launch(discrete_forward_kernel<T, 8>);
    else if (sh.j == 4)
      launch(discrete_forward_kernel<T, 4>);
    else
      launch(discrete_forward_kernel<T, 2>);
    PCC_CUDA_CHECK_LAUNCH("input_forward");
  });
}

}  // namespace cuda
}  // namespace pcc
