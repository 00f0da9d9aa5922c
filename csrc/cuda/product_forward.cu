// Product layer forward on the GPU: in log space a product node is the sum of its children's rows
// (padding entries read row kOneRow = 0). One thread per (node, 4 batch columns) where rows allow
// float4 access (a memory-bound op: wider accesses, fewer instructions), else per column
// (product_rows.cuh); the additions run in the order of csrc/cpu/product.cpp (c0 + c1, then pairs,
// then the odd one), so results match the CPU bit for bit. The backward's recompute passes its flow
// buffer as zero_flows: the node's flow rows are cleared in the same pass (no memset launch).
// A child that is a fused input node (DevProduct::in_var) is computed where it is read, log
// params[slot + x * stride] (0 where missing), instead of loaded from a row no kernel wrote; the
// recompute clears that node's flow row too (no recompute list names its group).
#include <cstdint>

#include "core/input_values.h"
#include "cuda/cuda_check.cuh"
#include "cuda/ops.cuh"
#include "cuda/product_rows.cuh"
#include "cuda/x_category.cuh"

namespace pcc {
namespace cuda {
namespace {

template <class T>
__device__ __forceinline__ T zero() { return T{}; }
__device__ __forceinline__ float4 operator+(float4 a, float4 b) {
  return make_float4(a.x + b.x, a.y + b.y, a.z + b.z, a.w + b.w);
}

// log p(x[col, v]) of a discrete node whose slot k is params[slot + k * stride]; 0 where missing.
template <class T>
__device__ __forceinline__ float input_value(const float* __restrict__ params, const T* __restrict__ x,
                                             const uint8_t* __restrict__ missing, int64_t num_vars, int64_t col,
                                             int32_t v, int64_t slot, int32_t stride) {
  const int32_t c = x_category(x, missing, col * num_vars + v);
  return c < 0 ? 0.0f : logf(params[slot + static_cast<int64_t>(c) * stride]);
}

template <int V, class T>
__device__ __forceinline__ product_rows::Vec<V> input_values(const float* params, const T* x,
                                                             const uint8_t* missing, int64_t num_vars, int64_t b,
                                                             int32_t v, int64_t slot, int32_t stride) {
  if constexpr (V == 4) {
    const int64_t c0 = 4 * b;
    return make_float4(input_value(params, x, missing, num_vars, c0, v, slot, stride),
                       input_value(params, x, missing, num_vars, c0 + 1, v, slot, stride),
                       input_value(params, x, missing, num_vars, c0 + 2, v, slot, stride),
                       input_value(params, x, missing, num_vars, c0 + 3, v, slot, stride));
  } else {
    return input_value(params, x, missing, num_vars, b, v, slot, stride);
  }
}

// kFused: the partition computes fused inputs (in_var not null), T being x's element type; the plain
// instance keeps the registers of a row-only kernel.
template <int V, class T, bool kFused>
__global__ void product_forward_kernel(int64_t row_start, int64_t num_nodes, int32_t fanin,
                                       const int32_t* __restrict__ child_rows, const int32_t* __restrict__ in_var,
                                       const int64_t* __restrict__ in_slot, const int32_t* __restrict__ in_stride,
                                       const float* __restrict__ params, const T* __restrict__ x,
                                       const uint8_t* __restrict__ missing, int64_t num_vars, float* values,
                                       float* zero_flows, int64_t batch) {
  using Vec = product_rows::Vec<V>;
  product_rows::for_each<V>(num_nodes, batch, [&](int64_t i, int64_t b) {
    const int64_t e0 = i * fanin;
    auto at = [&](int32_t k) -> Vec {
      const int64_t row = child_rows[e0 + k];
      if constexpr (kFused) {
        const int32_t v = in_var[e0 + k];
        if (v >= 0) {
          if (zero_flows != nullptr) reinterpret_cast<Vec*>(zero_flows + row * batch)[b] = zero<Vec>();
          return input_values<V>(params, x, missing, num_vars, b, v, in_slot[e0 + k], in_stride[e0 + k]);
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

template <class T, bool kFused>
void launch(const DevProduct& p, const float* params, const T* x, const uint8_t* missing, int64_t num_vars,
            float* values, float* zero_flows, int64_t batch, cudaStream_t stream) {
  const bool vec = product_rows::vectorized(values, batch) &&
                   (zero_flows == nullptr || product_rows::vectorized(zero_flows, batch));
  const unsigned grid = product_rows::grid(p.num_nodes, batch, vec);
  auto run = [&](auto kernel) {
    kernel<<<grid, product_rows::kThreads, 0, stream>>>(p.row_start, p.num_nodes, p.fanin, p.child_rows, p.in_var,
                                                        p.in_slot, p.in_stride, params, x, missing, num_vars, values,
                                                        zero_flows, batch);
  };
  if (vec)
    run(product_forward_kernel<4, T, kFused>);
  else
    run(product_forward_kernel<1, T, kFused>);
}

}  // namespace

void product_forward(const DevProduct& p, const float* params, const void* x, DType t, const uint8_t* missing,
                     int64_t num_vars, float* values, float* zero_flows, int64_t batch, cudaStream_t stream) {
  if (p.num_nodes == 0 || batch == 0) return;
  if (p.in_var == nullptr) {  // reads rows only: one instance whatever x's dtype
    launch<uint8_t, false>(p, params, nullptr, nullptr, num_vars, values, zero_flows, batch, stream);
  } else {
    with_dtype(t, [&](auto tag) {
      using T = decltype(tag);
      launch<T, true>(p, params, static_cast<const T*>(x), missing, num_vars, values, zero_flows, batch, stream);
    });
  }
  PCC_CUDA_CHECK_LAUNCH("product_forward");
}

}  // namespace cuda
}  // namespace pcc
