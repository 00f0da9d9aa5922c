// Launchers of the CUDA backend's small ops (one .cu file each): input validation, input layers,
// product layers, forward and backward. The sum layers have their own headers.
#pragma once
#include <cuda_runtime.h>

#include <vector>

#include "cuda/device_plan.cuh"
#include "pcc/tensor.h"

namespace pcc {
namespace cuda {

// validate.cu: checks x [batch, num_vars] (contiguous, dtype t) against var_limit where not missing;
// throws pcc::Error naming the first bad entry (synchronizes the stream).
void validate_inputs(const CudaPlan& cp, const void* x, DType t, const uint8_t* missing, int64_t batch,
                     cudaStream_t stream);
// input_forward.cu / input_backward.cu. The forward ops take zero_flows: when not null (the backward's
// recompute), the flow rows of the nodes they compute are cleared in the same pass.
void input_forward(const DevInputGroup& g, const float* params, const void* x, DType t, const uint8_t* missing,
                   int64_t num_vars, float* values, float* zero_flows, int64_t batch, cudaStream_t stream);
void input_backward(const DevInputGroup& g, const float* params, const void* x, DType t,
                    const uint8_t* missing, int64_t num_vars, const float* flows, float* param_flows,
                    int64_t batch, cudaStream_t stream);
// stage_x.cu: slots[v * batch + b] <- x[b, v] as a category index (-1 where missing), for the products
// that compute fused inputs (Plan::x_rows).
void stage_x(const void* x, DType t, const uint8_t* missing, int64_t num_vars, int64_t batch, int32_t* slots,
             cudaStream_t stream);
// product_forward.cu / product_backward.cu. The forward reads params and x_slots (stage_x's rows) only
// for the fused inputs it computes (DevProduct::in_var).
void product_forward(const DevProduct& p, const float* params, const int32_t* x_slots, float* values,
                     float* zero_flows, int64_t batch, cudaStream_t stream);
// Children's flow rows += each product node's flow row (parents and children share the buffer).
void product_backward(const DevProduct& p, float* flows, int64_t batch, cudaStream_t stream);

// params.cu: per-node parameter work over the units device_plan.cu uploaded.
void build_param_units(const Plan& p, std::vector<int64_t>& units, std::vector<int64_t>& unit_blocks);
void normalize(const CudaPlan& cp, const float* log_params, float* params, cudaStream_t stream);
void log_params(const CudaPlan& cp, const float* params, float* log_params, cudaStream_t stream);
void em_update(const CudaPlan& cp, float* params, const float* param_flows, double step, double pseudocount,
               cudaStream_t stream);
void param_grads(const CudaPlan& cp, const float* params, const float* param_flows, float* grad,
                 cudaStream_t stream);
// params_category_major.cu: the same four ops for the category-major Categorical groups, which
// build_param_units leaves out (called by the params.cu launchers).
void build_category_major_units(const Plan& p, std::vector<int64_t>& units);
void category_major_normalize(const CudaPlan& cp, const float* log_params, float* params, cudaStream_t stream);
void category_major_log_params(const CudaPlan& cp, const float* params, float* log_params, cudaStream_t stream);
void category_major_em_update(const CudaPlan& cp, float* params, const float* param_flows, double step,
                              double pseudocount, cudaStream_t stream);
void category_major_param_grads(const CudaPlan& cp, const float* params, const float* param_flows, float* grad,
                                cudaStream_t stream);

}  // namespace cuda
}  // namespace pcc
