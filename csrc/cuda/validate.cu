// Input validation on the GPU: the checks of csrc/cpu/inputs_check.cpp on every observed entry of x
// that an input reads (NaN, non-finite continuous values, discrete values that are not integers in
// [0, var_limit)). The kernel records the row-major index of the first bad entry with an atomicMin
// into the plan's error scratch; the host reads it back (synchronizing the stream), copies that one
// entry of x and words the error exactly as the CPU backend does.
#include <algorithm>
#include <cmath>
#include <iomanip>
#include <sstream>
#include <string>
#include <type_traits>

#include "core/input_values.h"
#include "cuda/cuda_check.cuh"
#include "cuda/ops.cuh"
#include "pcc/error.h"

namespace pcc {
namespace cuda {
namespace {

constexpr int kThreads = 256;
constexpr unsigned long long kNone = ~0ull;

template <class T>
__global__ void validate_kernel(const T* x, const uint8_t* missing, const int64_t* var_limit, int64_t num_vars,
                                int64_t n, unsigned long long* first_bad) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const int64_t limit = var_limit[i % num_vars];
    if (limit < 0 || (missing != nullptr && missing[i])) continue;
    if (!value_ok(x[i], limit)) atomicMin(first_bad, static_cast<unsigned long long>(i));
  }
}


}  // namespace

void validate_inputs(const CudaPlan& cp, const void* x, DType t, const uint8_t* missing, int64_t batch,
                     cudaStream_t stream) {
  const Plan& p = *cp.plan;
  const int64_t nv = p.num_vars;
  const int64_t n = batch * nv;
  if (n == 0) return;
  unsigned long long* first_bad = reinterpret_cast<unsigned long long*>(cp.error);
  PCC_CUDA_CHECK(cudaMemsetAsync(first_bad, 0xff, sizeof(unsigned long long), stream));
  const int grid = static_cast<int>(std::min<int64_t>((n + kThreads - 1) / kThreads, 4096));
  with_dtype(t, [&](auto tag) {
    using T = decltype(tag);
    validate_kernel<T><<<grid, kThreads, 0, stream>>>(static_cast<const T*>(x), missing, cp.var_limit, nv, n,
                                                      first_bad);
    PCC_CUDA_CHECK_LAUNCH("validate_inputs");
  });
  unsigned long long bad = kNone;
  PCC_CUDA_CHECK(cudaMemcpyAsync(&bad, first_bad, sizeof(bad), cudaMemcpyDeviceToHost, stream));
  PCC_CUDA_CHECK(cudaStreamSynchronize(stream));
  if (bad == kNone) return;
  PCC_CHECK(bad < static_cast<unsigned long long>(n), "CUDA backend: corrupt validation verdict ", bad);
  const int64_t b = static_cast<int64_t>(bad) / nv, v = static_cast<int64_t>(bad) % nv;
  with_dtype(t, [&](auto tag) {
    using T = decltype(tag);
    T val{};
    PCC_CUDA_CHECK(cudaMemcpyAsync(&val, static_cast<const T*>(x) + bad, sizeof(T), cudaMemcpyDeviceToHost, stream));
    PCC_CUDA_CHECK(cudaStreamSynchronize(stream));
    raise_bad_value(p, b, v, val);
  });
}

}  // namespace cuda
}  // namespace pcc
