// Input layer backward on the GPU: E-step statistics from the input nodes' flows, as
// csrc/cpu/input_backward.cpp: Categorical / Bernoulli slot k += sum_b f_b [x_b = k], a missing x_b
// counting f_b p_k instead; Gaussian (S1, S2, S0) += (f d, f d^2, f) with d = x - mean, a missing x_b
// counting (0, f std^2, f). Zero flows are skipped.
//
// One block per (node, batch chunk): threads accumulate their columns in double, the block reduces,
// and thread 0 adds each slot's float total with one atomicAdd (tied nodes share slots, and chunks
// of one node meet in the same slots). Category counts live in registers for up to 16 categories;
// beyond that each observed sample adds its flow with a float atomicAdd on global memory directly
// (the missing part is still reduced in double).
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
constexpr int64_t kChunk = 8192;  // batch columns per block (before the grid-stride wrap)

__device__ __forceinline__ double warp_sum(double v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Sum over the block; the result is valid in thread 0. Every thread of the block must call it.
__device__ double block_sum(double v, double* sh) {
  v = warp_sum(v);
  __syncthreads();  // sh may still be read by a previous call
  if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = v;
  __syncthreads();
  double t = 0.0;
  if (threadIdx.x < 32) {
    t = threadIdx.x < kWarps ? sh[threadIdx.x] : 0.0;
    t = warp_sum(t);
  }
  return t;
}

template <class T>
struct Node {
  const T* x;          // x + v: column of the node's variable, stride num_vars
  const uint8_t* m;    // missing + v, or nullptr
  const float* f;      // the node's flow row
  int64_t num_vars, b0, bstep, batch;
};

// Categories kept in registers (compile-time indexing only).
template <int KM, class T>
__device__ void small_categorical(const Node<T>& n, const float* p, int64_t K, float* pf, double* sh) {
  double a[KM];
#pragma unroll
  for (int k = 0; k < KM; ++k) a[k] = 0.0;
  double fm = 0.0;
  for (int64_t b = n.b0; b < n.batch; b += n.bstep) {
    const double fb = n.f[b];
    if (fb == 0.0) continue;
    if (n.m != nullptr && n.m[b * n.num_vars]) {
      fm += fb;
      continue;
    }
    const int64_t idx = static_cast<int64_t>(n.x[b * n.num_vars]);
#pragma unroll
    for (int k = 0; k < KM; ++k) a[k] += idx == k ? fb : 0.0;
  }
  fm = block_sum(fm, sh);
#pragma unroll
  for (int k = 0; k < KM; ++k) {
    const double t = block_sum(a[k], sh);
    if (threadIdx.x == 0 && k < K) {
      const double add = t + (fm != 0.0 ? fm * double(p[k]) : 0.0);
      if (add != 0.0) atomicAdd(pf + k, static_cast<float>(add));
    }
  }
}

template <class T>
__device__ void large_categorical(const Node<T>& n, const float* p, int64_t K, float* pf, double* sh) {
  double fm = 0.0;
  for (int64_t b = n.b0; b < n.batch; b += n.bstep) {
    const float fb = n.f[b];
    if (fb == 0.0f) continue;
    if (n.m != nullptr && n.m[b * n.num_vars]) {
      fm += fb;
      continue;
    }
    atomicAdd(pf + static_cast<int64_t>(n.x[b * n.num_vars]), fb);
  }
  fm = block_sum(fm, sh);
  __syncthreads();
  if (threadIdx.x == 0) sh[0] = fm;
  __syncthreads();
  fm = sh[0];
  if (fm != 0.0)
    for (int64_t k = threadIdx.x; k < K; k += blockDim.x) atomicAdd(pf + k, static_cast<float>(fm * double(p[k])));
}

template <class T>
__device__ void gaussian(const Node<T>& n, const float* p, float* pf, double* sh) {
  // Centred on the node's mean (d = x - mean), as the CPU does, so float32 statistics keep precision.
  const double mean = p[0];
  double s0 = 0.0, s1 = 0.0, s2 = 0.0, fm = 0.0;
  for (int64_t b = n.b0; b < n.batch; b += n.bstep) {
    const double fb = n.f[b];
    if (fb == 0.0) continue;
    if (n.m != nullptr && n.m[b * n.num_vars]) {
      fm += fb;
      continue;
    }
    const double d = static_cast<double>(n.x[b * n.num_vars]) - mean;
    s0 += fb;
    s1 += fb * d;
    s2 += fb * d * d;
  }
  s0 = block_sum(s0, sh);
  s1 = block_sum(s1, sh);
  s2 = block_sum(s2, sh);
  fm = block_sum(fm, sh);
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
}

template <class T>
__global__ void __launch_bounds__(kThreads) input_backward_kernel(
    Dist dist, int64_t row_start, int64_t num_nodes, const int32_t* var, const int64_t* param_offset,
    const int32_t* num_cats, const float* params, const T* x, const uint8_t* missing, int64_t num_vars,
    const float* flows, float* param_flows, int64_t batch) {
  __shared__ double sh[kWarps];
  for (int64_t i = blockIdx.x; i < num_nodes; i += gridDim.x) {  // block-uniform
    const int64_t v = var[i], off = param_offset[i];
    Node<T> n;
    n.x = x + v;
    n.m = missing != nullptr ? missing + v : nullptr;
    n.f = flows + (row_start + i) * batch;
    n.num_vars = num_vars;
    n.b0 = static_cast<int64_t>(blockIdx.y) * blockDim.x + threadIdx.x;
    n.bstep = static_cast<int64_t>(gridDim.y) * blockDim.x;
    n.batch = batch;
    const float* p = params + off;
    float* pf = param_flows + off;
    if (dist == Dist::Gaussian) {
      gaussian(n, p, pf, sh);
    } else {
      const int64_t K = dist == Dist::Bernoulli ? 2 : num_cats[i];
      if (K <= 4)
        small_categorical<4>(n, p, K, pf, sh);
      else if (K <= 16)
        small_categorical<16>(n, p, K, pf, sh);
      else
        large_categorical(n, p, K, pf, sh);
    }
    __syncthreads();  // sh is reused by the next node
  }
}


}  // namespace

void input_backward(const DevInputGroup& g, const float* params, const void* x, DType t, const uint8_t* missing,
                    int64_t num_vars, const float* flows, float* param_flows, int64_t batch, cudaStream_t stream) {
  if (g.num_nodes == 0 || batch == 0) return;
  const dim3 grid(static_cast<unsigned>(std::min<int64_t>(g.num_nodes, int64_t(1) << 20)),
                  static_cast<unsigned>(std::min<int64_t>((batch + kChunk - 1) / kChunk, 65535)));
  with_dtype(t, [&](auto tag) {
    using T = decltype(tag);
    input_backward_kernel<T><<<grid, kThreads, 0, stream>>>(g.dist, g.row_start, g.num_nodes, g.var, g.param_offset,
                                                           g.num_cats, params, static_cast<const T*>(x), missing,
                                                           num_vars, flows, param_flows, batch);
    PCC_CUDA_CHECK_LAUNCH("input_backward");
  });
}

}  // namespace cuda
}  // namespace pcc
