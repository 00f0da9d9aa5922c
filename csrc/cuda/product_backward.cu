// Product layer backward on the GPU: each product node adds its flow to every child row it reads
// (d log v(node) / d log v(child) = 1). One thread per (node, 4 batch columns) where rows are 16-byte
// aligned (float4 and sm_90's vector atomics), else per column (product_rows.cuh). When the partition's
// children are disjoint (DevProduct::children_disjoint: no non-constant row read twice) a plain
// read-modify-write is race-free; otherwise, and always for the constant rows kOneRow / kZeroRow
// that padding shares, the add is an atomicAdd. Zero flows add nothing and are skipped, as on the CPU
// (a vector where all four are zero; adding a zero changes nothing).
#include <cstdint>

#include "cuda/cuda_check.cuh"
#include "cuda/ops.cuh"
#include "cuda/product_rows.cuh"

namespace pcc {
namespace cuda {
namespace {

__device__ __forceinline__ void add(float* c, float v, bool plain) {
  if (plain)
    *c += v;
  else
    atomicAdd(c, v);
}
__device__ __forceinline__ void add(float4* c, float4 v, bool plain) {
  if (plain) {
    float4 x = *c;
    *c = make_float4(x.x + v.x, x.y + v.y, x.z + v.z, x.w + v.w);
  } else {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    atomicAdd(c, v);  // one vector atomic
#else
    atomicAdd(&c->x, v.x);
    atomicAdd(&c->y, v.y);
    atomicAdd(&c->z, v.z);
    atomicAdd(&c->w, v.w);
#endif
  }
}
__device__ __forceinline__ bool is_zero(float v) { return v == 0.0f; }
__device__ __forceinline__ bool is_zero(float4 v) { return v.x == 0.0f && v.y == 0.0f && v.z == 0.0f && v.w == 0.0f; }

template <int V>
__global__ void product_backward_kernel(int64_t row_start, int64_t num_nodes, int32_t fanin,
                                        const int32_t* __restrict__ child_rows, bool disjoint, float* flows,
                                        int64_t batch) {
  using Vec = product_rows::Vec<V>;
  product_rows::for_each<V>(num_nodes, batch, [&](int64_t i, int64_t b) {
    const Vec fb = reinterpret_cast<const Vec*>(flows + (row_start + i) * batch)[b];
    if (is_zero(fb)) return;
    const int32_t* rows = child_rows + i * fanin;
    for (int32_t k = 0; k < fanin; ++k) {
      const int64_t r = rows[k];
      add(reinterpret_cast<Vec*>(flows + r * batch) + b, fb, disjoint && r > Plan::kZeroRow && r > Plan::kOneRow);
    }
  });
}

}  // namespace

void product_backward(const DevProduct& p, float* flows, int64_t batch, cudaStream_t stream) {
  if (p.num_nodes == 0 || batch == 0) return;
  const bool vec = product_rows::vectorized(flows, batch);
  const unsigned grid = product_rows::grid(p.num_nodes, batch, vec);
  const bool disjoint = p.children_disjoint != 0;
  if (vec)
    product_backward_kernel<4><<<grid, product_rows::kThreads, 0, stream>>>(p.row_start, p.num_nodes, p.fanin,
                                                                            p.child_rows, disjoint, flows, batch);
  else
    product_backward_kernel<1><<<grid, product_rows::kThreads, 0, stream>>>(p.row_start, p.num_nodes, p.fanin,
                                                                            p.child_rows, disjoint, flows, batch);
  PCC_CUDA_CHECK_LAUNCH("product_backward");
}

}  // namespace cuda
}  // namespace pcc
