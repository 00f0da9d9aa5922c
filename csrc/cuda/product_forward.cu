// Product layer forward on the GPU: in log space a product node is the sum of its children's rows
// (padding entries read row kOneRow = 0). One thread per (node, 4 batch columns) where rows allow
// float4 access (a memory-bound op: wider accesses, fewer instructions), else per column; the
// additions run in the order of csrc/cpu/product.cpp (c0 + c1, then pairs, then the odd one), so
// results match the CPU bit for bit.
#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "cuda/cuda_check.cuh"
#include "cuda/ops.cuh"

namespace pcc {
namespace cuda {
namespace {

constexpr int kThreads = 256;

template <class T>
__device__ __forceinline__ T zero() { return T{}; }
__device__ __forceinline__ float4 operator+(float4 a, float4 b) {
  return make_float4(a.x + b.x, a.y + b.y, a.z + b.z, a.w + b.w);
}

// V columns per thread (V = 4: float4 loads and stores where rows are 16-byte aligned), the same
// order of additions per column either way.
template <int V>
__global__ void product_forward_kernel(int64_t row_start, int64_t num_nodes, int32_t fanin,
                                       const int32_t* __restrict__ child_rows, float* values, int64_t batch) {
  using Vec = typename std::conditional<V == 4, float4, float>::type;
  const int64_t n = batch / V;  // vectors per row
  const int64_t bstride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = blockIdx.y; i < num_nodes; i += gridDim.y) {
    const int32_t* rows = child_rows + i * fanin;
    Vec* out = reinterpret_cast<Vec*>(values + (row_start + i) * batch);
    auto at = [&](int32_t k, int64_t b) { return reinterpret_cast<const Vec*>(values + int64_t(rows[k]) * batch)[b]; };
    for (int64_t b = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; b < n; b += bstride) {
      Vec acc = zero<Vec>();
      if (fanin >= 1) {
        acc = at(0, b);
        int32_t k = 1;
        if (fanin >= 2) {
          acc = acc + at(1, b);
          k = 2;
        }
        for (; k + 1 < fanin; k += 2) acc = acc + (at(k, b) + at(k + 1, b));
        if (k < fanin) acc = acc + at(k, b);
      }
      out[b] = acc;
    }
  }
}

}  // namespace

void product_forward(const DevProduct& p, float* values, int64_t batch, cudaStream_t stream) {
  if (p.num_nodes == 0 || batch == 0) return;
  const bool vec = batch % 4 == 0 && reinterpret_cast<uintptr_t>(values) % 16 == 0;
  const int64_t n = vec ? batch / 4 : batch;
  const dim3 grid(static_cast<unsigned>(std::min<int64_t>((n + kThreads - 1) / kThreads, 1 << 16)),
                  static_cast<unsigned>(std::min<int64_t>(p.num_nodes, 65535)));
  if (vec)
    product_forward_kernel<4><<<grid, kThreads, 0, stream>>>(p.row_start, p.num_nodes, p.fanin, p.child_rows,
                                                             values, batch);
  else
    product_forward_kernel<1><<<grid, kThreads, 0, stream>>>(p.row_start, p.num_nodes, p.fanin, p.child_rows,
                                                             values, batch);
  PCC_CUDA_CHECK_LAUNCH("product_forward");
}

}  // namespace cuda
}  // namespace pcc
