// Sum layer forward on the GPU: per (sum block, batch tile), stable log-sum-exp of weight blocks times
// exponentiated child blocks on tensor cores (mma.sync, TF32 or BF16 inputs, float32 accumulation).
#pragma once
#include <cuda_runtime.h>

#include "cuda/device_plan.cuh"

namespace pcc {
namespace cuda {

void sum_forward(const DevSum& s, const float* params, float* values, int64_t batch, Precision precision,
                 cudaStream_t stream);

}  // namespace cuda
}  // namespace pcc
