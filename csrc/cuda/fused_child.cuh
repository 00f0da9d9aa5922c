// Child blocks of fused products (SumPartition::child_arity A > 1, plan.h): an entry's child block is
// the element-wise product of A row runs that the plan never stores, so its log-value is the sum of
// their values, and its flow goes to each of them. st points at the entry's A starts: the first
// decides padding (-1), a later -1 is a product with fewer children than A. Summed in start order,
// as the CPU's load_child, so both backends round alike (the tensor-core forward adds the first run
// to the sum of the others: the same for two, within an ulp or so for more).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace pcc {
namespace cuda {

// log-value of row c of the child block at column t.
__device__ __forceinline__ float fused_value(const float* __restrict__ values, const int32_t* st, int A, int64_t c,
                                             int64_t batch, int64_t t) {
  float v = values[(static_cast<int64_t>(st[0]) + c) * batch + t];
  for (int a = 1; a < A; ++a)
    if (st[a] >= 0) v += values[(static_cast<int64_t>(st[a]) + c) * batch + t];
  return v;
}

// Adds f to the flow of row c of the child block at column t: every one of its rows gets it.
__device__ __forceinline__ void fused_add_flow(float* flows, const int32_t* st, int A, int64_t c, int64_t batch,
                                               int64_t t, float f) {
  atomicAdd(flows + (static_cast<int64_t>(st[0]) + c) * batch + t, f);
  for (int a = 1; a < A; ++a)
    if (st[a] >= 0) atomicAdd(flows + (static_cast<int64_t>(st[a]) + c) * batch + t, f);
}

// Whether two entries read the same child block (all A starts equal).
__device__ __forceinline__ bool same_child(const int32_t* x, const int32_t* y, int A) {
  for (int a = 0; a < A; ++a)
    if (x[a] != y[a]) return false;
  return true;
}

}  // namespace cuda
}  // namespace pcc
