// Input layer forward on the GPU: log-probabilities of Categorical, Bernoulli and Gaussian inputs,
// one thread per (node, batch column), as csrc/cpu/input.cpp (Categorical / Bernoulli: logf of the
// slot; Gaussian in double). Missing entries give 0 (= log 1) and are never read. x has been
// validated (validate.cu), so discrete entries are in-range integers. Writes along the batch are
// coalesced; x is read per variable column (strided, [batch, num_vars] row-major).
#include <algorithm>

#include "core/input_values.h"
#include "cuda/cuda_check.cuh"
#include "cuda/ops.cuh"
#include "pcc/error.h"

namespace pcc {
namespace cuda {
namespace {

constexpr int kThreads = 256;
constexpr double kHalfLog2Pi = 0.91893853320467274178;

template <class T>
__global__ void input_forward_kernel(int64_t row_start, int64_t num_nodes, const int32_t* var,
                                     const int64_t* param_offset, bool gaussian, const float* params,
                                     const T* x, const uint8_t* missing, int64_t num_vars, float* values,
                                     int64_t batch) {
  const int64_t bstride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = blockIdx.y; i < num_nodes; i += gridDim.y) {
    const int64_t v = var[i];
    const float* p = params + param_offset[i];
    float* out = values + (row_start + i) * batch;
    for (int64_t b = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; b < batch; b += bstride) {
      const int64_t at = b * num_vars + v;
      if (missing != nullptr && missing[at]) {
        out[b] = 0.0f;
      } else if (!gaussian) {
        out[b] = logf(p[static_cast<int64_t>(x[at])]);
      } else {
        const double mean = p[0], inv_std = 1.0 / double(p[1]);
        const double c = -log(double(p[1])) - kHalfLog2Pi;
        const double z = (static_cast<double>(x[at]) - mean) * inv_std;
        out[b] = static_cast<float>(c - 0.5 * z * z);
      }
    }
  }
}


}  // namespace

void input_forward(const DevInputGroup& g, const float* params, const void* x, DType t, const uint8_t* missing,
                   int64_t num_vars, float* values, int64_t batch, cudaStream_t stream) {
  if (g.num_nodes == 0 || batch == 0) return;
  const dim3 grid(static_cast<unsigned>(std::min<int64_t>((batch + kThreads - 1) / kThreads, 1 << 16)),
                  static_cast<unsigned>(std::min<int64_t>(g.num_nodes, 65535)));
  // Gaussian: mean, std at the node's first slots, as the CPU: -log(std) - log(2 pi)/2 - z^2/2.
  const bool gaussian = g.dist == Dist::Gaussian;
  with_dtype(t, [&](auto tag) {
    using T = decltype(tag);
    input_forward_kernel<T><<<grid, kThreads, 0, stream>>>(g.row_start, g.num_nodes, g.var, g.param_offset,
                                                          gaussian, params, static_cast<const T*>(x), missing,
                                                          num_vars, values, batch);
    PCC_CUDA_CHECK_LAUNCH("input_forward");
  });
}

}  // namespace cuda
}  // namespace pcc
