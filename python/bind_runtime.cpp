// Bindings for running plans: CPU forward over caller-owned buffers (torch tensors' data pointers),
// thread control, device discovery.
#include <pybind11/stl.h>

#include "pcc/backend.h"
#include "pcc/error.h"
#include "python/bind.h"

namespace pcc_py {
pcc::DType dtype_from_name(const std::string& s) {
  static const std::pair<const char*, pcc::DType> table[] = {
      {"bool", pcc::DType::Bool},       {"uint8", pcc::DType::UInt8},     {"int8", pcc::DType::Int8},
      {"int16", pcc::DType::Int16},     {"int32", pcc::DType::Int32},     {"int64", pcc::DType::Int64},
      {"float32", pcc::DType::Float32}, {"float64", pcc::DType::Float64}};
  for (auto& [name, t] : table) {
    if (s == name) return t;
  }
  pcc::raise("unsupported input dtype '", s, "'");
}

pcc::TensorRef matrix_ref(uintptr_t ptr, pcc::DType t, int64_t rows, int64_t cols) {
  pcc::TensorRef r;
  r.data = reinterpret_cast<void*>(ptr);
  r.dtype = t;
  r.ndim = 2;
  r.shape[0] = rows;
  r.shape[1] = cols;
  r.strides[0] = cols;
  r.strides[1] = 1;
  return r;
}

void bind_runtime(py::module_& m) {
  m.def(
      "cpu_forward",
      [](const pcc::Plan& plan, uintptr_t params, uintptr_t x, const std::string& x_dtype, int64_t batch,
         uintptr_t missing, uintptr_t values, uintptr_t out) {
        pcc::ForwardArgs a;
        a.plan = &plan;
        a.params = reinterpret_cast<const float*>(params);
        a.x = matrix_ref(x, dtype_from_name(x_dtype), batch, plan.num_vars);
        if (missing) a.missing = matrix_ref(missing, pcc::DType::Bool, batch, plan.num_vars);
        a.values = reinterpret_cast<float*>(values);
        a.out = reinterpret_cast<float*>(out);
        a.batch = batch;
        py::gil_scoped_release nogil;
        pcc::cpu_forward(a);
      },
      py::arg("plan"), py::arg("params"), py::arg("x"), py::arg("x_dtype"), py::arg("batch"), py::arg("missing"),
      py::arg("values"), py::arg("out"));
  m.def("set_num_threads", &pcc::set_num_threads);
  m.def("get_num_threads", &pcc::get_num_threads);
  m.def("cuda_available", &pcc::cuda_available);
}

}  // namespace pcc_py
