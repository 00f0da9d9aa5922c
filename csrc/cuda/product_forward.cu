// Product layer forward on the GPU: in log space a product node is the sum of its children's rows
// (padding entries read row kOneRow = 0). One thread per (node, 4 batch columns) where rows allow
// float4 access (a memory-bound op: wider accesses, fewer instructions), else per column
// (product_rows.cuh); the additions run in the order of csrc/cpu/product.cpp (c0 + c1, then pairs,
// then the odd one), so results match the CPU bit for bit. The backward's recompute passes its flow
// buffer as zero_flows: the node's flow rows are cleared in the same pass (no memset launch).
#include <cstdint>

#include "cuda/cuda_check.cuh"
#include "cuda/ops.cuh"
#include "cuda/product_rows.cuh"

namespace pcc {
namespace cuda {
namespace {

template <class T>
__device__ __forceinline__ T zero() { return T{}; }
__device__ __forceinline__ float4 operator+(float4 a, float4 b) {
  return make_float4(a.x + b.x, a.y + b.y, a.z + b.z, a.w + b.w);
}

template <int V>
__global__ void product_forward_kernel(int64_t row_start, int64_t num_nodes, int32_t fanin,
                                       const int32_t* __restrict__ child_rows, float* values, float* zero_flows,
                                       int64_t batch) {
  using Vec = product_rows::Vec<V>;
  product_rows::for_each<V>(num_nodes, batch, [&](int64_t i, int64_t b) {
    const int32_t* rows = child_rows + i * fanin;
    auto at = [&](int32_t k) { return reinterpret_cast<const Vec*>(values + int64_t(rows[k]) * batch)[b]; };
    Vec acc = zero<Vec>();
    if (fanin >= 1) {
      acc = at(0);
      int32_t k = 1;
      if (fanin >= 2) {
        acc = acc + at(1);
        k = 2;
      }
      for (; k + 1 < fanin; k += 2) acc = acc + (at(k) + at(k + 1));
      if (k < fanin) acc = acc + at(k);
    }
    const int64_t at_out = (row_start + i) * batch;
    reinterpret_cast<Vec*>(values + at_out)[b] = acc;
    if (zero_flows != nullptr) reinterpret_cast<Vec*>(zero_flows + at_out)[b] = zero<Vec>();
  });
}

}  // namespace

void product_forward(const DevProduct& p, float* values, float* zero_flows, int64_t batch, cudaStream_t stream) {
  if (p.num_nodes == 0 || batch == 0) return;
  const bool vec = product_rows::vectorized(values, batch) &&
                   (zero_flows == nullptr || product_rows::vectorized(zero_flows, batch));
  const unsigned grid = product_rows::grid(p.num_nodes, batch, vec);
  if (vec)
    product_forward_kernel<4><<<grid, product_rows::kThreads, 0, stream>>>(p.row_start, p.num_nodes, p.fanin,
                                                                           p.child_rows, values, zero_flows, batch);
  else
    product_forward_kernel<1><<<grid, product_rows::kThreads, 0, stream>>>(p.row_start, p.num_nodes, p.fanin,
                                                                           p.child_rows, values, zero_flows, batch);
  PCC_CUDA_CHECK_LAUNCH("product_forward");
}

}  // namespace cuda
}  // namespace pcc
