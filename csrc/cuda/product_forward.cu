// Product layer forward on the GPU: in log space a product node is the sum of its children's rows
// (padding entries read row kOneRow = 0). One thread per (node, 4 batch columns) where rows allow
// float4 access (a memory-bound op: wider accesses, fewer instructions), else per column
// (product_rows.cuh); the additions run in the order of csrc/cpu/product.cpp (c0 + c1, then pairs,
// then the odd one), so results match the CPU bit for bit. The backward's recompute passes its flow
// buffer as zero_flows: the node's flow rows are cleared in the same pass (no memset launch).
// A child that is a fused input node (DevProduct::in_var) is computed where it is read, log
// params[slot + x * stride] (0 where missing), from x's categories staged for the pass (stage_x.cu:
// one int32 row per variable, read like a value row), instead of loaded from a row no kernel wrote;
// the recompute clears that node's flow row too (no recompute list names its group).
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

// log p(x = c) of a discrete node whose slot k is params[slot + k * stride]; 0 where missing (c = -1).
__device__ __forceinline__ float input_value(const float* __restrict__ params, int32_t c, int64_t slot,
                                             int32_t stride) {
  return c < 0 ? 0.0f : logf(params[slot + static_cast<int64_t>(c) * stride]);
}

// The fused node's values at vector b of the batch, from its variable's staged categories.
template <int V>
__device__ __forceinline__ product_rows::Vec<V> input_values(const float* params, const int32_t* categories,
                                                             int64_t b, int64_t slot, int32_t stride) {
  if constexpr (V == 4) {
    const int4 c = reinterpret_cast<const int4*>(categories)[b];
    return make_float4(input_value(params, c.x, slot, stride), input_value(params, c.y, slot, stride),
                       input_value(params, c.z, slot, stride), input_value(params, c.w, slot, stride));
  } else {
    return input_value(params, categories[b], slot, stride);
  }
}

// kFused: the partition computes fused inputs (in_var not null) from x_slots, x's categories staged
// per variable (Plan::x_rows, stage_x.cu); the plain instance keeps the registers of a row-only kernel.
template <int V, bool kFused>
__global__ void product_forward_kernel(int64_t row_start, int64_t num_nodes, int32_t fanin,
                                       const int32_t* __restrict__ child_rows, const int32_t* __restrict__ in_var,
                                       const int64_t* __restrict__ in_slot, const int32_t* __restrict__ in_stride,
                                       const float* __restrict__ params, const int32_t* __restrict__ x_slots,
                                       float* values, float* zero_flows, int64_t batch) {
  using Vec = product_rows::Vec<V>;
  product_rows::for_each<V>(num_nodes, batch, [&](int64_t i, int64_t b) {
    const int64_t e0 = i * fanin;
    auto at = [&](int32_t k) -> Vec {
      const int64_t row = child_rows[e0 + k];
      if constexpr (kFused) {
        const int32_t v = in_var[e0 + k];
        if (v >= 0) {
          if (zero_flows != nullptr) reinterpret_cast<Vec*>(zero_flows + row * batch)[b] = zero<Vec>();
          return input_values<V>(params, x_slots + v * batch, b, in_slot[e0 + k], in_stride[e0 + k]);
        }
      }
      return reinterpret_cast<const Vec*>(values + row * batch)[b];
    };
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

template <bool kFused>
void launch(const DevProduct& p, const float* params, const int32_t* x_slots, float* values, float* zero_flows,
            int64_t batch, cudaStream_t stream) {
  const bool vec = product_rows::vectorized(values, batch) &&
                   (zero_flows == nullptr || product_rows::vectorized(zero_flows, batch));
  const unsigned grid = product_rows::grid(p.num_nodes, batch, vec);
  auto run = [&](auto kernel) {
    kernel<<<grid, product_rows::kThreads, 0, stream>>>(p.row_start, p.num_nodes, p.fanin, p.child_rows, p.in_var,
                                                        p.in_slot, p.in_stride, params, x_slots, values, zero_flows,
                                                        batch);
  };
  if (vec)
    run(product_forward_kernel<4, kFused>);
  else
    run(product_forward_kernel<1, kFused>);
}

}  // namespace

void product_forward(const DevProduct& p, const float* params, const int32_t* x_slots, float* values,
                     float* zero_flows, int64_t batch, cudaStream_t stream) {
  if (p.num_nodes == 0 || batch == 0) return;
  if (p.in_var == nullptr)
    launch<false>(p, params, x_slots, values, zero_flows, batch, stream);
  else
    launch<true>(p, params, x_slots, values, zero_flows, batch, stream);
  PCC_CUDA_CHECK_LAUNCH("product_forward");
}

}  // namespace cuda
}  // namespace pcc
