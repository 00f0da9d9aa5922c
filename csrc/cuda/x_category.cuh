// The category of a discrete input's entry x[at], or -1 where it is missing: what every discrete
// input kernel and the products that compute fused inputs read. Validation has run (validate.cu), so
// an observed entry is an in-range integer.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace pcc {
namespace cuda {

template <class T>
__device__ __forceinline__ int32_t x_category(const T* __restrict__ x, const uint8_t* __restrict__ missing,
                                              int64_t at) {
  const T xv = x[at];  // read even where missing (junk, unused): both loads go out together
  return missing != nullptr && missing[at] ? -1 : static_cast<int32_t>(xv);
}

}  // namespace cuda
}  // namespace pcc
