// The grid of the product kernels, forward and backward: one thread per (node, vector of V batch
// columns) over the partition, flat, so a CTA covers several nodes when the batch is short (batch 512
// in float4s is 128 threads: a CTA per node left half of its threads idle, and HCLT's many small
// partitions paid a CTA start per node). V = 4 where rows are 16-byte aligned (float4 access, sm_90's
// vector atomics), else 1.
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

namespace pcc {
namespace cuda {
namespace product_rows {

constexpr int kThreads = 256;

template <int V>
using Vec = typename std::conditional<V == 4, float4, float>::type;

// Whether V = 4 applies to rows of `batch` floats in `buf`.
inline bool vectorized(const float* buf, int64_t batch) {
  return batch % 4 == 0 && reinterpret_cast<uintptr_t>(buf) % 16 == 0;
}

inline unsigned grid(int64_t num_nodes, int64_t batch, bool vec) {
  const int64_t work = num_nodes * (vec ? batch / 4 : batch);
  return static_cast<unsigned>(std::min<int64_t>((work + kThreads - 1) / kThreads, int64_t(1) << 20));
}

// Calls f(i, b) for node i and vector b (< batch / V) of each of this thread's work items.
template <int V, class F>
__device__ __forceinline__ void for_each(int64_t num_nodes, int64_t batch, F&& f) {
  const int64_t n = batch / V, total = num_nodes * n;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < total; t += stride)
    f(t / n, t % n);
}

}  // namespace product_rows
}  // namespace cuda
}  // namespace pcc
