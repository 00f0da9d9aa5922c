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

#include "cuda/cuda_check.cuh"
#include "cuda/ops.cuh"
#include "pcc/error.h"

namespace pcc {
namespace cuda {
namespace {

constexpr int kThreads = 256;
constexpr unsigned long long kNone = ~0ull;

template <class T>
__device__ __forceinline__ bool entry_ok(T val, int64_t limit) {
  if constexpr (std::is_floating_point_v<T>) {
    if (isnan(val)) return false;
    if (limit == 0) return isfinite(val);
    return val >= T(0) && val < T(limit) && floor(val) == val;
  } else {
    if (limit == 0) return true;
    return static_cast<int64_t>(val) >= 0 && static_cast<int64_t>(val) < limit;
  }
}

template <class T>
__global__ void validate_kernel(const T* x, const uint8_t* missing, const int64_t* var_limit, int64_t num_vars,
                                int64_t n, unsigned long long* first_bad) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const int64_t limit = var_limit[i % num_vars];
    if (limit < 0 || (missing != nullptr && missing[i])) continue;
    if (!entry_ok(x[i], limit)) atomicMin(first_bad, static_cast<unsigned long long>(i));
  }
}

template <class F>
void with_type(DType t, F&& f) {
  switch (t) {
    case DType::Bool:
    case DType::UInt8: return f(uint8_t{});
    case DType::Int8: return f(int8_t{});
    case DType::Int16: return f(int16_t{});
    case DType::Int32: return f(int32_t{});
    case DType::Int64: return f(int64_t{});
    case DType::Float32: return f(float{});
    case DType::Float64: return f(double{});
  }
  raise("CUDA backend: unknown x dtype code ", static_cast<int>(t));
}

template <class T>
std::string show(T v) {
  std::ostringstream s;
  if constexpr (std::is_floating_point_v<T>) {
    if (std::isnan(v)) return "nan";
    s << std::setprecision(9) << v;
  } else {
    s << static_cast<int64_t>(v);
  }
  return s.str();
}

// As inputs_check.cpp's describe_var: what reads variable v, for messages.
std::string describe_var(const Plan& p, int64_t v) {
  const int64_t limit = p.var_limit[v];
  for (const Layer& l : p.layers)
    for (const InputGroup& g : l.inputs)
      for (int64_t i = 0; i < g.num_nodes; ++i) {
        if (g.var[i] != v) continue;
        if (limit == 0 && g.dist == Dist::Gaussian) return "Gaussian";
        if (limit > 0 && g.dist == Dist::Bernoulli && limit == 2) return "Bernoulli";
        if (limit > 0 && g.dist == Dist::Categorical && g.num_cats[i] == limit)
          return "Categorical with " + std::to_string(limit) + " categories";
      }
  return limit > 0 ? "discrete with " + std::to_string(limit) + " categories" : "continuous";
}

template <class T>
[[noreturn]] void report(const Plan& p, int64_t b, int64_t v, T val) {
  const int64_t limit = p.var_limit[v];
  if constexpr (std::is_floating_point_v<T>) {
    if (std::isnan(val))
      raise("x[", b, ", ", v, "] = nan: NaN in an observed entry of variable ", v,
            " (mark the entry missing to marginalise it)");
    if (limit == 0)
      raise("x[", b, ", ", v, "] = ", show(val), ": variable ", v, " is ", describe_var(p, v),
            ", observed values must be finite");
  }
  raise("x[", b, ", ", v, "] = ", show(val), ": variable ", v, " is ", describe_var(p, v),
        ", values must be integers in [0, ", limit, ")");
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
  with_type(t, [&](auto tag) {
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
  with_type(t, [&](auto tag) {
    using T = decltype(tag);
    T val{};
    PCC_CUDA_CHECK(cudaMemcpyAsync(&val, static_cast<const T*>(x) + bad, sizeof(T), cudaMemcpyDeviceToHost, stream));
    PCC_CUDA_CHECK(cudaStreamSynchronize(stream));
    report<T>(p, b, v, val);
  });
}

}  // namespace cuda
}  // namespace pcc
