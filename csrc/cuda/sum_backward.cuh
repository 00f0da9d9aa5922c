// Sum layer backward on the GPU: child flows (gathered per child block through the transposed
// connectivity, no atomics) and parameter flows (reduced over the batch per weight block; atomics only
// where the partition's weight blocks are not disjoint).
#pragma once
#include <cuda_runtime.h>

#include "cuda/device_plan.cuh"

namespace pcc {
namespace cuda {

// Precision::FP32 takes the float32 SIMT kernels for every block size (the tensor-core kernel's
// operands are TF32 otherwise, BF16 included).
void sum_backward(const DevSum& s, const float* params, const float* values, float* flows, float* param_flows,
                  int64_t batch, Precision precision, cudaStream_t stream);

}  // namespace cuda
}  // namespace pcc
