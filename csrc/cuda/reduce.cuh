// Warp reductions shared by the CUDA parameter and input kernels. max_like_std keeps std::max's
// semantics (a < b ? b : a), so a NaN never replaces a running max, as on the CPU.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace pcc {
namespace cuda {

constexpr unsigned kFullMask = 0xffffffffu;

__device__ __forceinline__ double warp_sum(double v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFullMask, v, o);
  return v;
}
__device__ __forceinline__ int64_t warp_sum_i(int64_t v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFullMask, v, o);
  return v;
}
__device__ __forceinline__ float max_like_std(float a, float b) { return a < b ? b : a; }
__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = max_like_std(v, __shfl_xor_sync(kFullMask, v, o));
  return v;
}

}  // namespace cuda
}  // namespace pcc
