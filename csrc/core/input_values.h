// What counts as a valid observed value of x, the dtype dispatch over x, and the wording of the error
// for a bad value: shared by the CPU backend (inputs_check.cpp) and the CUDA backend (validate.cu,
// whose static library cannot call into pcc_core, hence header-only).
#pragma once
#include <cmath>
#include <cstdint>
#include <iomanip>
#include <sstream>
#include <string>
#include <type_traits>

#include "pcc/error.h"
#include "pcc/plan.h"
#include "pcc/tensor.h"

#ifdef __CUDACC__
#define PCC_HOST_DEVICE __host__ __device__
#else
#define PCC_HOST_DEVICE
#endif

namespace pcc {

// An observed entry of a variable with var_limit `limit` (0: continuous, > 0: categories).
template <class T>
PCC_HOST_DEVICE inline bool value_ok(T val, int64_t limit) {
  using std::floor;
  using std::isfinite;
  using std::isnan;
  if constexpr (std::is_floating_point_v<T>) {
    if (isnan(val)) return false;
    if (limit == 0) return isfinite(val);
    return val >= T(0) && val < T(limit) && floor(val) == val;
  } else {
    if (limit == 0) return true;
    return static_cast<int64_t>(val) >= 0 && static_cast<int64_t>(val) < limit;
  }
}

// Calls f(T{}) with T the C++ type of dtype t (bool read as uint8_t).
template <class F>
decltype(auto) with_dtype(DType t, F&& f) {
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
  raise("unknown x dtype code ", static_cast<int>(t));
}

namespace input_values {

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

// What reads variable v, for messages: the discrete input that sets its limit, or a Gaussian.
inline std::string describe_var(const Plan& p, int64_t v) {
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

}  // namespace input_values

// Throws the error for x[b, v] = val, a value that failed value_ok.
template <class T>
[[noreturn]] void raise_bad_value(const Plan& p, int64_t b, int64_t v, T val) {
  using input_values::describe_var;
  using input_values::show;
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

}  // namespace pcc
