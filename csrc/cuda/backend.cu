// The CUDA backend's entry points (pcc/cuda.h): argument checks, then one switch over layer kinds, as
// csrc/cpu/forward.cpp and backward.cpp. Forward: validate x on the device, set row kOneRow to 0 and
// the pad rows to -inf, stage x where the plan fuses inputs (Plan::x_rows), run the layers, copy the
// root rows out as [batch, num_root_nodes]. Backward: zero the flows, stage x again, seed the root rows with root_flow (0 where the root's value is -inf), run the
// layers in reverse, recomputing the transient rows each layer reads first (Layer::recompute).
// Everything is on the caller's stream, over caller-owned device buffers; with CUDA graphs on (the
// default, cuda_set_graphs), a pass's launches after validation are replayed as one graph once the
// same arguments come a second time (graph_cache.cuh).
#include <algorithm>
#include <cmath>

#include "cuda/cuda_check.cuh"
#include "cuda/device_plan.cuh"
#include "cuda/graph_cache.cuh"
#include "cuda/ops.cuh"
#include "cuda/sum_backward.cuh"
#include "cuda/sum_forward.cuh"
#include "pcc/cuda.h"
#include "pcc/error.h"

namespace pcc {
namespace cuda {
namespace {

constexpr int kThreads = 256;

int grid_1d(int64_t n) {
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>((n + kThreads - 1) / kThreads, 1 << 16)));
}

// Row kOneRow <- 0 (y = 0) and pad range y - 1 <- -inf (y >= 1).
__global__ void init_rows_kernel(const int64_t* pad_ranges, int64_t num_pad_ranges, float* values, int64_t batch) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t y = blockIdx.y; y <= num_pad_ranges; y += gridDim.y) {
    const int64_t first = y == 0 ? Plan::kOneRow : pad_ranges[2 * (y - 1)];
    const int64_t count = y == 0 ? 1 : pad_ranges[2 * (y - 1) + 1];
    const float fill = y == 0 ? 0.0f : -INFINITY;
    float* base = values + first * batch;
    const int64_t n = count * batch;
    for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) base[i] = fill;
  }
}

// out[b, j] = values[root_row + j, b]
__global__ void copy_out_kernel(const float* values, int64_t root_row, int64_t R, float* out, int64_t batch) {
  const int64_t n = batch * R, stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const int64_t b = i / R, j = i % R;
    out[i] = values[(root_row + j) * batch + b];
  }
}

// flows[root_row + j, b] = values[root_row + j, b] > -inf ? root_flow[b, j] : 0
__global__ void seed_root_kernel(const float* values, const float* root_flow, int64_t root_row, int64_t R,
                                 float* flows, int64_t batch) {
  const int64_t n = batch * R, stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const int64_t j = i / batch, b = i % batch;
    const int64_t at = (root_row + j) * batch + b;
    flows[at] = values[at] > -INFINITY ? root_flow[b * R + j] : 0.0f;
  }
}

// x's categories staged in the plan's x rows (Plan::x_rows) for the products that compute fused
// inputs, or null where the plan has none. Once per pass: the backward may get another x than the
// forward did (its recomputes must read the x they are given).
const int32_t* staged_x(const Plan& p, const TensorRef& x, const uint8_t* missing, float* values, int64_t batch,
                        cudaStream_t s) {
  if (p.x_rows < 0) return nullptr;
  int32_t* slots = reinterpret_cast<int32_t*>(values + p.x_rows * batch);
  stage_x(x.data, x.dtype, missing, p.num_vars, batch, slots, s);
  return slots;
}

// Makes cp.device current for the scope (kernels launch on the current device).
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    PCC_CUDA_CHECK(cudaGetDevice(&prev_));
    if (prev_ != device) PCC_CUDA_CHECK(cudaSetDevice(device));
    switched_ = prev_ != device;
  }
  ~DeviceGuard() {
    if (switched_) cudaSetDevice(prev_);
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int prev_ = 0;
  bool switched_ = false;
};

// An address as a graph-cache key word.
int64_t word(const void* p) { return static_cast<int64_t>(reinterpret_cast<uintptr_t>(p)); }

bool known_dtype(DType t) { return static_cast<uint8_t>(t) <= static_cast<uint8_t>(DType::Float64); }
// pcc::to_string(DType) lives in pcc_core, which links before pcc_cuda.
const char* dtype_name(DType t) {
  static const char* names[] = {"bool", "uint8", "int8", "int16", "int32", "int64", "float32", "float64"};
  return known_dtype(t) ? names[static_cast<int>(t)] : "an unknown dtype";
}

// x and missing: CUDA tensors on the plan's device, [batch, num_vars] contiguous row-major.
void check_matrix_args(const CudaPlan& cp, const TensorRef& x, const TensorRef& missing, int64_t batch,
                       const char* op) {
  const Plan& p = *cp.plan;
  PCC_CHECK(batch >= 0, op, ": negative batch size ", batch);
  PCC_CHECK(known_dtype(x.dtype), "x has an unknown dtype code ", int(x.dtype));
  PCC_CHECK(x.ndim == 2, "x must be 2-D [batch, num_vars] = [", batch, ", ", p.num_vars, "], got ndim ", x.ndim);
  PCC_CHECK(x.shape[0] == batch && x.shape[1] == p.num_vars, "x has shape [", x.shape[0], ", ", x.shape[1],
            "], expected [", batch, ", ", p.num_vars, "] (batch, num_vars)");
  if (batch == 0 || p.num_vars == 0) return;
  PCC_CHECK(x.data != nullptr, "x has no data pointer");
  PCC_CHECK(x.device == DeviceType::CUDA, "x is not a CUDA tensor; the CUDA backend needs x on cuda:", cp.device);
  PCC_CHECK(x.device_id == cp.device, "x is on cuda:", x.device_id, " but the plan was uploaded to cuda:", cp.device);
  PCC_CHECK((x.strides[1] == 1 || x.shape[1] == 1) && (x.strides[0] == x.shape[1] || x.shape[0] == 1),
            "x must be contiguous (row-major [batch, num_vars]) for the CUDA backend");
  if (missing.data != nullptr) {
    PCC_CHECK(missing.dtype == DType::Bool || missing.dtype == DType::UInt8, "missing must be bool or uint8, got ",
              dtype_name(missing.dtype));
    PCC_CHECK(missing.ndim == 2 && missing.shape[0] == x.shape[0] && missing.shape[1] == x.shape[1],
              "missing must have the shape of x [", x.shape[0], ", ", x.shape[1], "]");
    PCC_CHECK(missing.device == DeviceType::CUDA && missing.device_id == cp.device,
              "missing must be a CUDA tensor on cuda:", cp.device);
    PCC_CHECK((missing.strides[1] == 1 || missing.shape[1] == 1) &&
                  (missing.strides[0] == missing.shape[1] || missing.shape[0] == 1),
              "missing must be contiguous (row-major [batch, num_vars]) for the CUDA backend");
  }
}

void check_precision(Precision precision, const char* op) {
  PCC_CHECK(precision == Precision::TF32 || precision == Precision::BF16 || precision == Precision::FP32, op,
            ": unknown precision ", static_cast<int>(precision));
}

const CudaPlan& checked(const CudaPlan& cp, const Plan* plan, const char* op) {
  PCC_CHECK(cp.plan != nullptr, op, ": the CUDA plan holds no plan");
  PCC_CHECK(plan == nullptr || plan == cp.plan, op, ": the arguments name another plan than the uploaded one");
  return cp;
}

}  // namespace
}  // namespace cuda

void cuda_forward(const CudaPlan& cp, const ForwardArgs& a, Precision precision, void* stream) {
  cuda::checked(cp, a.plan, "forward");
  const Plan& p = *cp.plan;
  const int64_t batch = a.batch;
  cuda::check_matrix_args(cp, a.x, a.missing, batch, "forward");
  if (batch == 0) return;
  PCC_CHECK(a.params != nullptr || p.params.empty(), "forward: no parameter buffer");
  PCC_CHECK(a.values != nullptr, "forward: no workspace (values) buffer");
  PCC_CHECK(a.out != nullptr || p.num_root_nodes == 0, "forward: no output buffer");
  cuda::check_precision(precision, "forward");
  cuda::DeviceGuard guard(cp.device);
  cudaStream_t caller_stream = static_cast<cudaStream_t>(stream);
  const uint8_t* missing = static_cast<const uint8_t*>(a.missing.data);
  cuda::validate_inputs(cp, a.x.data, a.x.dtype, missing, batch, caller_stream);
  // Everything after the validation (which reads its verdict back) is one graph's worth of launches.
  auto launches = [&](cudaStream_t s) {
    float* values = a.values;
    {
      const dim3 grid(cuda::grid_1d(batch), static_cast<unsigned>(std::min<int64_t>(cp.num_pad_ranges + 1, 65535)));
      cuda::init_rows_kernel<<<grid, cuda::kThreads, 0, s>>>(cp.pad_ranges, cp.num_pad_ranges, values, batch);
      PCC_CUDA_CHECK_LAUNCH("init_rows");
    }
    const int32_t* x_slots = cuda::staged_x(p, a.x, missing, values, batch, s);
    for (const cuda::DevLayer& layer : cp.layers) {
      switch (layer.kind) {
        case LayerKind::Input:
          for (const cuda::DevInputGroup& g : layer.inputs)
            if (!g.fused)  // its readers compute it
              cuda::input_forward(g, a.params, a.x.data, a.x.dtype, missing, p.num_vars, values, nullptr, batch, s);
          break;
        case LayerKind::Product:
          for (const cuda::DevProduct& pp : layer.products)
            cuda::product_forward(pp, a.params, x_slots, values, nullptr, batch, s);
          break;
        case LayerKind::Sum:
          for (const cuda::DevSum& sum : layer.sums) cuda::sum_forward(sum, a.params, values, batch, precision, s);
          break;
      }
    }
    const int64_t R = p.num_root_nodes;
    if (R > 0) {
      cuda::copy_out_kernel<<<cuda::grid_1d(batch * R), cuda::kThreads, 0, s>>>(values, p.root_row, R, a.out, batch);
      PCC_CUDA_CHECK_LAUNCH("copy_out");
    }
  };
  if (!cuda_graphs()) return launches(caller_stream);
  cp.forward_graphs->run({batch, cuda::word(a.x.data), static_cast<int64_t>(a.x.dtype), cuda::word(missing),
                          cuda::word(a.params), cuda::word(a.values), cuda::word(a.out),
                          static_cast<int64_t>(precision)},
                         caller_stream, launches);
}

void cuda_backward(const CudaPlan& cp, const BackwardArgs& a, Precision precision, void* stream) {
  cuda::checked(cp, a.plan, "backward");
  const Plan& p = *cp.plan;
  const int64_t batch = a.batch;
  cuda::check_matrix_args(cp, a.x, a.missing, batch, "backward");
  if (batch == 0) return;
  PCC_CHECK(a.params && a.values && a.root_flow && a.flows && a.param_flows,
            "backward: a buffer is missing (params, values, root_flow, flows, param_flows)");
  cuda::check_precision(precision, "backward");
  cuda::DeviceGuard guard(cp.device);
  const uint8_t* missing = static_cast<const uint8_t*>(a.missing.data);
  float* flows = a.flows;
  auto launches = [&](cudaStream_t s) {
    PCC_CUDA_CHECK(cudaMemsetAsync(flows, 0, static_cast<size_t>(p.num_rows) * batch * sizeof(float), s));
    const int32_t* x_slots = cuda::staged_x(p, a.x, missing, a.values, batch, s);
    const int64_t R = p.num_root_nodes;
    if (R > 0) {
      cuda::seed_root_kernel<<<cuda::grid_1d(batch * R), cuda::kThreads, 0, s>>>(a.values, a.root_flow, p.root_row, R,
                                                                                flows, batch);
      PCC_CUDA_CHECK_LAUNCH("seed_root_flows");
    }
    for (size_t li = cp.layers.size(); li-- > 0;) {
      const cuda::DevLayer& layer = cp.layers[li];
      // Transient rows this layer reads: values again, flows from zero (their readers all come now;
      // the recompute clears them as it writes the values).
      for (const auto& [rl, rp] : p.layers[li].recompute) {
        const cuda::DevLayer& src = cp.layers[rl];
        if (src.kind == LayerKind::Input)
          cuda::input_forward(src.inputs[rp], a.params, a.x.data, a.x.dtype, missing, p.num_vars, a.values, flows,
                              batch, s);
        else
          cuda::product_forward(src.products[rp], a.params, x_slots, a.values, flows, batch, s);
      }
      switch (layer.kind) {
        case LayerKind::Input:
          for (const cuda::DevInputGroup& g : layer.inputs)
            cuda::input_backward(g, a.params, a.x.data, a.x.dtype, missing, p.num_vars, flows, a.param_flows, batch,
                                 s);
          break;
        case LayerKind::Product:
          for (const cuda::DevProduct& pp : layer.products) cuda::product_backward(pp, flows, batch, s);
          break;
        case LayerKind::Sum:
          for (const cuda::DevSum& sum : layer.sums)
            cuda::sum_backward(sum, a.params, a.values, flows, a.param_flows, batch, precision, s);
          break;
      }
    }
  };
  cudaStream_t caller_stream = static_cast<cudaStream_t>(stream);
  if (!cuda_graphs()) return launches(caller_stream);
  cp.backward_graphs->run({batch, cuda::word(a.x.data), static_cast<int64_t>(a.x.dtype), cuda::word(missing),
                           cuda::word(a.params), cuda::word(a.values), cuda::word(a.root_flow),
                           cuda::word(a.flows), cuda::word(a.param_flows), static_cast<int64_t>(precision)},
                          caller_stream, launches);
}

CudaGraphStats cuda_graph_stats(const CudaPlan& cp, bool backward) {
  return (backward ? cp.backward_graphs : cp.forward_graphs)->stats();
}

void cuda_normalize(const CudaPlan& cp, const float* log_params, float* params, void* stream) {
  cuda::checked(cp, nullptr, "normalize");
  if (cp.num_params == 0) return;
  PCC_CHECK(log_params && params, "normalize: a parameter buffer is missing");
  cuda::DeviceGuard guard(cp.device);
  cuda::normalize(cp, log_params, params, static_cast<cudaStream_t>(stream));
}

void cuda_log_params(const CudaPlan& cp, const float* params, float* log_params, void* stream) {
  cuda::checked(cp, nullptr, "log_params");
  if (cp.num_params == 0) return;
  PCC_CHECK(log_params && params, "log_params: a parameter buffer is missing");
  cuda::DeviceGuard guard(cp.device);
  cuda::log_params(cp, params, log_params, static_cast<cudaStream_t>(stream));
}

void cuda_em_update(const CudaPlan& cp, float* params, const float* param_flows, double step_size,
                    double pseudocount, void* stream) {
  cuda::checked(cp, nullptr, "em_update");
  PCC_CHECK(step_size >= 0.0 && step_size <= 1.0, "em_update: step_size must lie in [0, 1], got ", step_size);
  PCC_CHECK(pseudocount >= 0.0 && std::isfinite(pseudocount), "em_update: pseudocount must be finite and >= 0, got ",
            pseudocount);
  if (cp.num_params == 0) return;
  PCC_CHECK(params && param_flows, "em_update: a parameter buffer is missing");
  cuda::DeviceGuard guard(cp.device);
  cuda::em_update(cp, params, param_flows, step_size, pseudocount, static_cast<cudaStream_t>(stream));
}

void cuda_param_grads(const CudaPlan& cp, const float* params, const float* param_flows, float* grad,
                      void* stream) {
  cuda::checked(cp, nullptr, "param_grads");
  if (cp.num_params == 0) return;
  PCC_CHECK(params && param_flows && grad, "param_grads: a parameter buffer is missing");
  cuda::DeviceGuard guard(cp.device);
  cuda::param_grads(cp, params, param_flows, grad, static_cast<cudaStream_t>(stream));
}

}  // namespace pcc
