// validate_inputs: every check on x and missing that a forward pass needs, so the kernels can read
// x without bounds checks. Errors name the first offending entry (row-major order), its variable
// and what the variable accepts.
#include <cmath>
#include <iomanip>
#include <sstream>
#include <string>
#include <type_traits>

#include "core/input_values.h"
#include "cpu/ops.h"
#include "pcc/backend.h"
#include "pcc/error.h"
#include "pcc/tensor.h"

namespace pcc {
namespace {

bool known_dtype(DType t) { return static_cast<uint8_t>(t) <= static_cast<uint8_t>(DType::Float64); }

const char* device_name(DeviceType d) { return d == DeviceType::CPU ? "cpu" : "cuda"; }

template <class T>
void check_values(const ForwardArgs& a) {
  const Plan& p = *a.plan;
  const TensorRef& x = a.x;
  const int64_t nv = p.num_vars;
  for (int64_t b = 0; b < a.batch; ++b)
    for (int64_t v = 0; v < nv; ++v) {
      const int64_t limit = p.var_limit[v];
      if (limit < 0 || cpu::is_missing(a.missing, b, v)) continue;  // not read
      const T val = cpu::at2<T>(x, b, v);
      if (!value_ok(val, limit)) raise_bad_value(p, b, v, val);
    }
}

}  // namespace

void validate_inputs(const ForwardArgs& a) {
  PCC_CHECK(a.plan != nullptr, "forward: no plan given");
  const Plan& p = *a.plan;
  const TensorRef& x = a.x;
  PCC_CHECK(a.batch >= 0, "forward: negative batch size ", a.batch);
  PCC_CHECK(static_cast<int64_t>(p.var_limit.size()) == p.num_vars, "forward: plan has ",
            p.var_limit.size(), " variable limits for ", p.num_vars, " variables");
  PCC_CHECK(x.device == DeviceType::CPU, "x is on device ", device_name(x.device), ":", x.device_id,
            "; the CPU backend needs a CPU tensor");
  PCC_CHECK(known_dtype(x.dtype), "x has an unknown dtype code ", int(x.dtype));
  PCC_CHECK(x.ndim == 2, "x must be 2-D [batch, num_vars] = [", a.batch, ", ", p.num_vars,
            "], got ndim ", x.ndim);
  PCC_CHECK(x.shape[0] == a.batch && x.shape[1] == p.num_vars, "x has shape [", x.shape[0], ", ",
            x.shape[1], "], expected [", a.batch, ", ", p.num_vars, "] (batch, num_vars)");
  const bool empty = a.batch == 0;
  PCC_CHECK(empty || p.num_vars == 0 || x.data != nullptr, "x has no data pointer");
  if (a.missing.data != nullptr) {
    const TensorRef& m = a.missing;
    PCC_CHECK(m.device == DeviceType::CPU, "missing is on device ", device_name(m.device), ":",
              m.device_id, "; the CPU backend needs a CPU tensor");
    PCC_CHECK(m.dtype == DType::Bool || m.dtype == DType::UInt8,
              "missing must be bool or uint8, got ",
              known_dtype(m.dtype) ? to_string(m.dtype) : "an unknown dtype");
    PCC_CHECK(m.ndim == 2 && m.shape[0] == x.shape[0] && m.shape[1] == x.shape[1],
              "missing must have the shape of x [", x.shape[0], ", ", x.shape[1], "], got ndim ",
              m.ndim, m.ndim == 2 ? " shape [" + std::to_string(m.shape[0]) + ", " +
                                        std::to_string(m.shape[1]) + "]"
                                  : std::string());
  }
  PCC_CHECK(empty || (a.params != nullptr || p.params.empty()), "forward: no parameter buffer");
  PCC_CHECK(empty || a.values != nullptr, "forward: no workspace (values) buffer");
  PCC_CHECK(empty || a.out != nullptr || p.num_root_nodes == 0, "forward: no output buffer");
  if (empty) return;
  with_dtype(x.dtype, [&](auto tag) { check_values<decltype(tag)>(a); });
}

}  // namespace pcc
