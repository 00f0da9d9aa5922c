// Input layer backward on the GPU: E-step statistics from the input nodes' flows, as
// csrc/cpu/input_backward.cpp: Categorical / Bernoulli slot k += sum_b f_b [x_b = k], a missing x_b
// counting f_b p_k instead; Gaussian (S1, S2, S0) += (f d, f d^2, f) with d = x - mean, a missing x_b
// counting (0, f std^2, f). Zero flows are skipped. Parameter flows are added with atomicAdd: tied
// nodes share slots, and several CTAs meet in one node's slots.
//
// Categorical / Bernoulli: runs of nodes over batch tiles with the tile's x column staged in shared
// memory (input_runs.cuh), one node per warp. A warp counts a node with <= kHistCats slots in its own
// shared histogram (float shared atomics), then adds each nonzero slot to the global flows once and
// clears it: at most one global atomic per slot and tile instead of one per sample. Larger category
// counts (vocabularies of HMMs) add each sample's flow to global memory directly. The missing
// entries' flow is summed per lane in float (<= kCols / 32 terms), across the warp in double, and
// spread as f p_k.
//
// Category-major Categorical groups (large vocabularies): lanes over nodes, see below.
//
// Gaussian: one block per (node, batch chunk): threads accumulate their columns in double, the block
// reduces, and thread 0 adds the three float totals.
#include <algorithm>

#include "core/input_values.h"
#include "cuda/cuda_check.cuh"
#include "cuda/input_runs.cuh"
#include "cuda/ops.cuh"
#include "cuda/reduce.cuh"
#include "pcc/error.h"

namespace pcc {
namespace cuda {
namespace {

using input_runs::kAll;
using input_runs::kMaxGrid;
using input_runs::kThreads;
using input_runs::kWarps;
constexpr int kMinCtas = 5;      // per SM: caps registers at 48 (the unrolled loads fit unspilled)
constexpr int kMinTile = 256;    // batch columns per CTA at least (each tile of a node spreads its
                                 // missing flow over all the node's slots)
constexpr int kHistCats = 512;   // slots of a warp's histogram (2 KiB)
constexpr int64_t kChunk = 8192;  // Gaussian: batch columns per block (before the grid-stride wrap)

template <class T>
__global__ void __launch_bounds__(kThreads, kMinCtas) discrete_backward_kernel(
    int64_t row_start, int64_t num_nodes, input_runs::Shape sh, const int32_t* __restrict__ var,
    const int64_t* __restrict__ param_offset, const int32_t* __restrict__ num_cats, bool bernoulli,
    const float* __restrict__ params, const T* __restrict__ x, const uint8_t* __restrict__ missing,
    int64_t num_vars, const float* __restrict__ flows, float* __restrict__ param_flows, int64_t batch) {
  __shared__ int32_t xs[input_runs::kCols];   // the tile's slot indices of one variable, -1 = missing
  __shared__ float hists[kWarps][kHistCats];  // per warp: its node's slot flows over the tile
  const int lane = threadIdx.x & 31;
  float* hist = hists[threadIdx.x >> 5];
  // Cleared once here (ordered before use by the first __syncthreads of for_each_node); each flush
  // clears the slots its node could touch.
  for (int k = lane; k < kHistCats; k += 32) hist[k] = 0.0f;
  input_runs::for_each_node(
      num_nodes, sh, var, param_offset, num_cats, bernoulli, x, missing, num_vars, batch, xs,
      [&](int64_t i, int64_t off, int32_t cats, int64_t c0, int cols) {
        const float* p = params + off;
        float* pf = param_flows + off;
        const float* f = flows + (row_start + i) * batch + c0;
        float fm_lane = 0.0f;  // flow of this lane's missing entries
        if (cats <= kHistCats) {
#pragma unroll 4
          for (int c = lane; c < cols; c += 32) {
            const float fb = f[c];
            const int32_t k = xs[c];
            if (fb == 0.0f) continue;
            if (k < 0)
              fm_lane += fb;
            else
              atomicAdd(hist + k, fb);
          }
          const double fm = warp_sum(fm_lane);
          __syncwarp();  // the histogram is complete
#pragma unroll 2
          for (int k = lane; k < cats; k += 32) {
            const double add = double(hist[k]) + (fm != 0.0 ? fm * double(p[k]) : 0.0);
            hist[k] = 0.0f;
            if (add != 0.0) atomicAdd(pf + k, static_cast<float>(add));
          }
          __syncwarp();  // cleared before the warp's next node counts
        } else {
#pragma unroll 4
          for (int c = lane; c < cols; c += 32) {
            const float fb = f[c];
            const int32_t k = xs[c];
            if (fb == 0.0f) continue;
            if (k < 0)
              fm_lane += fb;
            else
              atomicAdd(pf + k, fb);
          }
          const double fm = warp_sum(fm_lane);
          if (fm != 0.0)
            for (int k = lane; k < cats; k += 32) atomicAdd(pf + k, static_cast<float>(fm * double(p[k])));
        }
      });
}

// Category-major Categorical groups: lanes over nodes (input_runs::for_each_cm_tile), so a column's
// 32 atomics hit consecutive floats. The tile's flows are staged through shared memory (read row by
// row); each thread sums the missing flow of its lane's node over its columns in float, the CTA sums
// those per node in double and spreads f p_k over the node's slots.
template <class T>
__global__ void __launch_bounds__(kThreads, 4) category_major_backward_kernel(
    int64_t row_start, int64_t num_nodes, const int32_t* __restrict__ var, const int64_t* __restrict__ param_offset,
    const int32_t* __restrict__ num_cats, int64_t stride, const float* __restrict__ params, const T* __restrict__ x,
    const uint8_t* __restrict__ missing, int64_t num_vars, const float* __restrict__ flows,
    float* __restrict__ param_flows, int64_t batch) {
  __shared__ int32_t xs[input_runs::kCmTile];
  __shared__ float ft[32][input_runs::kCmTile + 1];  // [node][column], padded: lanes read a column
  __shared__ float fm_part[kWarps][32];
  __shared__ double fm_node[32];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  float fm = 0.0f;  // missing flow of node `lane` over this thread's columns of the tile
  input_runs::for_each_cm_tile(
      num_nodes, var, param_offset, x, missing, num_vars, batch, xs,
      [&](int64_t i0, int n, int64_t c0, int cols) {
        for (int j = warp; j < n; j += kWarps) {
          const float* f = flows + (row_start + i0 + j) * batch + c0;
          for (int c = lane; c < cols; c += 32) ft[j][c] = f[c];
        }
        fm = 0.0f;
      },
      [&](int j, int64_t off, int32_t k, int c) {
        const float fb = ft[j][c];
        if (fb == 0.0f) return;
        if (k < 0)
          fm += fb;
        else
          atomicAdd(param_flows + off + static_cast<int64_t>(k) * stride, fb);
      },
      [&](int64_t i0, int n, int64_t, int) {
        fm_part[warp][lane] = fm;
        __syncthreads();
        double t = 0.0;
        if (threadIdx.x < 32) {
          for (int w = 0; w < kWarps; ++w) t += double(fm_part[w][threadIdx.x]);
          fm_node[threadIdx.x] = t;
        }
        if (!__syncthreads_or(t != 0.0) || lane >= n || fm_node[lane] == 0.0) return;
        const double f = fm_node[lane];
        const int64_t off = param_offset[i0 + lane];
        for (int64_t k = warp; k < num_cats[i0 + lane]; k += kWarps) {
          const int64_t at = off + k * stride;
          atomicAdd(param_flows + at, static_cast<float>(f * double(params[at])));
        }
      });
}

// Sum over the block; the result is valid in thread 0. Every thread of the block must call it.
__device__ double block_sum(double v, double* partial) {
  v = warp_sum(v);
  __syncthreads();  // partial may still be read by a previous call
  if ((threadIdx.x & 31) == 0) partial[threadIdx.x >> 5] = v;
  __syncthreads();
  double t = 0.0;
  if (threadIdx.x < 32) {
    t = threadIdx.x < kWarps ? partial[threadIdx.x] : 0.0;
    t = warp_sum(t);
  }
  return t;
}

// Centred on the node's mean (d = x - mean), as the CPU does, so float32 statistics keep precision.
template <class T>
__global__ void __launch_bounds__(kThreads) gaussian_backward_kernel(
    int64_t row_start, int64_t num_nodes, const int32_t* var, const int64_t* param_offset, const float* params,
    const T* x, const uint8_t* missing, int64_t num_vars, const float* flows, float* param_flows,
    int64_t batch) {
  __shared__ double partial[kWarps];
  for (int64_t i = blockIdx.x; i < num_nodes; i += gridDim.x) {  // block-uniform
    const int64_t v = var[i], off = param_offset[i];
    const T* xv = x + v;
    const uint8_t* m = missing != nullptr ? missing + v : nullptr;
    const float* f = flows + (row_start + i) * batch;
    const float* p = params + off;
    float* pf = param_flows + off;
    const double mean = p[0];
    double s0 = 0.0, s1 = 0.0, s2 = 0.0, fm = 0.0;
    for (int64_t b = static_cast<int64_t>(blockIdx.y) * blockDim.x + threadIdx.x; b < batch;
         b += static_cast<int64_t>(gridDim.y) * blockDim.x) {
      const double fb = f[b];
      if (fb == 0.0) continue;
      if (m != nullptr && m[b * num_vars]) {
        fm += fb;
        continue;
      }
      const double d = static_cast<double>(xv[b * num_vars]) - mean;
      s0 += fb;
      s1 += fb * d;
      s2 += fb * d * d;
    }
    s0 = block_sum(s0, partial);
    s1 = block_sum(s1, partial);
    s2 = block_sum(s2, partial);
    fm = block_sum(fm, partial);
    if (threadIdx.x == 0) {
      if (fm != 0.0) {
        const double sd = p[1];
        s2 += fm * sd * sd;
        s0 += fm;
      }
      if (s1 != 0.0) atomicAdd(pf + 0, static_cast<float>(s1));
      if (s2 != 0.0) atomicAdd(pf + 1, static_cast<float>(s2));
      if (s0 != 0.0) atomicAdd(pf + 2, static_cast<float>(s0));
    }
    __syncthreads();  // partial is reused by the next node
  }
}

}  // namespace

void input_backward(const DevInputGroup& g, const float* params, const void* x, DType t, const uint8_t* missing,
                    int64_t num_vars, const float* flows, float* param_flows, int64_t batch, cudaStream_t stream) {
  if (g.num_nodes == 0 || batch == 0) return;
  with_dtype(t, [&](auto tag) {
    using T = decltype(tag);
    const T* xt = static_cast<const T*>(x);
    if (g.dist == Dist::Gaussian) {
      const dim3 grid(static_cast<unsigned>(std::min<int64_t>(g.num_nodes, kMaxGrid)),
                      static_cast<unsigned>(std::min<int64_t>((batch + kChunk - 1) / kChunk, 65535)));
      gaussian_backward_kernel<T><<<grid, kThreads, 0, stream>>>(g.row_start, g.num_nodes, g.var, g.param_offset,
                                                                params, xt, missing, num_vars, flows, param_flows,
                                                                batch);
      PCC_CUDA_CHECK_LAUNCH("input_backward (gaussian)");
      return;
    }
    if (g.cat_stride != 1) {
      category_major_backward_kernel<T><<<input_runs::cm_grid(g.num_nodes, batch), kThreads, 0, stream>>>(
          g.row_start, g.num_nodes, g.var, g.param_offset, g.num_cats, g.cat_stride, params, xt, missing, num_vars,
          flows, param_flows, batch);
      PCC_CUDA_CHECK_LAUNCH("input_backward (category-major)");
      return;
    }
    const input_runs::Shape sh = input_runs::shape(g.num_nodes, batch, g.max_cats > kHistCats, kMinTile);
    discrete_backward_kernel<T><<<input_runs::grid(sh, g.num_nodes, batch), kThreads, 0, stream>>>(g.row_start, g.num_nodes, sh, g.var,
                                                              g.param_offset, g.num_cats, g.dist == Dist::Bernoulli,
                                                              params, xt, missing, num_vars, flows, param_flows,
                                                              batch);
    PCC_CUDA_CHECK_LAUNCH("input_backward");
  });
}

}  // namespace cuda
}  // namespace pcc
