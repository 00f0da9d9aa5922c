// The CUDA backend's entry points. Everything runs on the caller's stream (a cudaStream_t passed as
// void*) over device buffers the caller owns: the core allocates no device memory. The plan's index
// arrays live in one caller-allocated device buffer of cuda_plan_bytes(plan) bytes, filled by
// cuda_upload_plan. In builds without CUDA these functions throw pcc::Error.
#pragma once
#include <cstdint>
#include <memory>

#include "pcc/backend.h"
#include "pcc/plan.h"

namespace pcc {

// Precision of the sum layers' matrix products; accumulation is float32 always. TF32 and BF16 round
// the products' inputs for the tensor cores (the forward's; the backward's run TF32 for both). FP32
// keeps every input a float32 and runs the sum layers on the SIMT kernels, forward and backward: the
// CPU backend's arithmetic, several times slower, for results that must match a float32 reference
// (another system's flows, parameter updates compared element by element).
enum class Precision : uint8_t { TF32 = 0, BF16 = 1, FP32 = 2 };

struct CudaPlan;  // the device-side view of a plan (csrc/cuda/device_plan.cuh)

int64_t cuda_plan_bytes(const Plan& p);
// Copies the plan's index arrays into `device_buffer` (cuda_plan_bytes bytes on device `device`) and
// returns the view the kernels use. The Plan must outlive the returned object.
std::shared_ptr<CudaPlan> cuda_upload_plan(const Plan& p, void* device_buffer, int device, void* stream);

// As the CPU functions of backend.h, on device buffers. The forward validates x on the device and
// throws pcc::Error naming the first bad entry (it synchronizes the stream to read the verdict).
void cuda_forward(const CudaPlan& cp, const ForwardArgs& a, Precision precision, void* stream);
void cuda_backward(const CudaPlan& cp, const BackwardArgs& a, Precision precision, void* stream);
void cuda_normalize(const CudaPlan& cp, const float* log_params, float* params, void* stream);
void cuda_log_params(const CudaPlan& cp, const float* params, float* log_params, void* stream);
void cuda_em_update(const CudaPlan& cp, float* params, const float* param_flows, double step_size,
                    double pseudocount, void* stream);
void cuda_param_grads(const CudaPlan& cp, const float* params, const float* param_flows, float* grad,
                      void* stream);

// CUDA graphs (on by default): cuda_forward / cuda_backward replay a pass as one captured graph from
// the second call with the same batch, buffers, dtype and precision on, instead of launching each
// layer's kernels from the host. Off, every call launches them one by one. Process-wide.
void cuda_set_graphs(bool on);
bool cuda_graphs();
// How a plan's passes ran so far: eagerly (graphs off, a first sighting, or capture refused),
// captured into a graph, replayed from one (a captured call counts as captured and replayed).
struct CudaGraphStats {
  int64_t eager = 0, captured = 0, replayed = 0;
};
CudaGraphStats cuda_graph_stats(const CudaPlan& cp, bool backward);

}  // namespace pcc
