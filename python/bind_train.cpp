// Bindings for learning on the CPU: the flow pass, parameter normalization, the EM update, gradients,
// and moving one parameter group in and out of a plan-layout buffer. Buffers are data pointers.
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include "pcc/backend.h"
#include "pcc/error.h"
#include "python/bind.h"

namespace pcc_py {

pcc::TensorRef matrix_ref(uintptr_t ptr, pcc::DType t, int64_t rows, int64_t cols);  // bind_runtime.cpp
pcc::DType dtype_from_name(const std::string& s);                                     // bind_runtime.cpp

namespace {

const float* cf(uintptr_t p) { return reinterpret_cast<const float*>(p); }
float* mf(uintptr_t p) { return reinterpret_cast<float*>(p); }

}  // namespace

void bind_train(py::module_& m) {
  m.def(
      "cpu_backward",
      [](const pcc::Plan& plan, uintptr_t params, uintptr_t x, const std::string& x_dtype, int64_t batch,
         uintptr_t missing, uintptr_t values, uintptr_t root_flow, uintptr_t flows, uintptr_t param_flows) {
        pcc::BackwardArgs a;
        a.plan = &plan;
        a.params = cf(params);
        a.x = matrix_ref(x, dtype_from_name(x_dtype), batch, plan.num_vars);
        if (missing) a.missing = matrix_ref(missing, pcc::DType::Bool, batch, plan.num_vars);
        a.values = mf(values);
        a.root_flow = cf(root_flow);
        a.flows = mf(flows);
        a.param_flows = mf(param_flows);
        a.batch = batch;
        py::gil_scoped_release nogil;
        pcc::cpu_backward(a);
      },
      py::arg("plan"), py::arg("params"), py::arg("x"), py::arg("x_dtype"), py::arg("batch"), py::arg("missing"),
      py::arg("values"), py::arg("root_flow"), py::arg("flows"), py::arg("param_flows"));
  m.def("cpu_normalize", [](const pcc::Plan& p, uintptr_t log_params, uintptr_t params) {
    py::gil_scoped_release nogil;
    pcc::cpu_normalize(p, cf(log_params), mf(params));
  });
  m.def("cpu_log_params", [](const pcc::Plan& p, uintptr_t params, uintptr_t log_params) {
    py::gil_scoped_release nogil;
    pcc::cpu_log_params(p, cf(params), mf(log_params));
  });
  m.def("cpu_em_update", [](const pcc::Plan& p, uintptr_t params, uintptr_t param_flows, double step, double a) {
    py::gil_scoped_release nogil;
    pcc::cpu_em_update(p, mf(params), cf(param_flows), step, a);
  });
  m.def("cpu_param_grads", [](const pcc::Plan& p, uintptr_t params, uintptr_t param_flows, uintptr_t grad) {
    py::gil_scoped_release nogil;
    pcc::cpu_param_grads(p, cf(params), cf(param_flows), mf(grad));
  });
  m.def("read_group", [](const pcc::Plan& p, uintptr_t params, int64_t g) {
    const std::vector<float> v = pcc::read_group(p, cf(params), g);
    py::array_t<float> a(static_cast<py::ssize_t>(v.size()));
    std::copy(v.begin(), v.end(), a.mutable_data());
    return a;
  });
  m.def("group_slots", [](const pcc::Plan& p, int64_t g) {
    const std::vector<int64_t> v = pcc::group_slots(p, g);
    py::array_t<int64_t> a(static_cast<py::ssize_t>(v.size()));
    std::copy(v.begin(), v.end(), a.mutable_data());
    return a;
  });
  m.def("write_group", [](const pcc::Plan& p, uintptr_t params, int64_t g,
                          py::array_t<float, py::array::c_style | py::array::forcecast> values) {
    pcc::write_group(p, mf(params), g, std::vector<float>(values.data(), values.data() + values.size()));
  });
  // Raw slots [num_nodes, width] of an input group in node order whatever its layout (Bernoulli: both
  // categories; Gaussian: mean, std or log std, spare), e.g. to read gradients of log-parameters.
  m.def("input_slots", [](const pcc::Plan& p, uintptr_t buf, int64_t g) {
    PCC_CHECK(g >= 0 && g < static_cast<int64_t>(p.groups.size()) && p.groups[g].kind == pcc::NodeKind::Input &&
                  p.groups[g].num_nodes > 0,
              "parameter group ", g, " is not an input group of this plan");
    const pcc::GroupLayout& gl = p.groups[g];
    py::array_t<float> a({gl.num_nodes, gl.width});
    float* out = a.mutable_data();
    const float* in = cf(buf);
    for (int64_t i = 0; i < gl.num_nodes; ++i)
      for (int64_t k = 0; k < gl.width; ++k) out[i * gl.width + k] = in[pcc::node_slot(gl, i) + k * gl.cat_stride];
    return a;
  });
  m.attr("GAUSSIAN_MIN_STD") = pcc::kGaussianMinStd;
}

}  // namespace pcc_py
