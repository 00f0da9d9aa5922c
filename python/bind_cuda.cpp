// Bindings for the CUDA backend (pcc/cuda.h): uploading a plan's index arrays into a caller-owned
// device buffer, and the forward / backward / parameter ops on device buffers. Buffers and the
// stream arrive as integers (torch data_ptr() and torch.cuda.current_stream().cuda_stream). In builds
// without CUDA every entry point raises pcc.Error ("pcc was built without CUDA").
#include <pybind11/pybind11.h>

#include <memory>

#include "pcc/backend.h"
#include "pcc/cuda.h"
#include "pcc/error.h"
#include "python/bind.h"

namespace pcc_py {

pcc::TensorRef matrix_ref(uintptr_t ptr, pcc::DType t, int64_t rows, int64_t cols);  // bind_runtime.cpp
pcc::DType dtype_from_name(const std::string& s);                                     // bind_runtime.cpp

namespace {

// The device view of a plan, and a reference that keeps the Plan it points into alive.
struct CudaPlanHolder {
  std::shared_ptr<pcc::CudaPlan> cp;
  py::object plan;
  const pcc::Plan* plan_ptr = nullptr;
  int device = 0;
};

const float* cf(uintptr_t p) { return reinterpret_cast<const float*>(p); }
float* mf(uintptr_t p) { return reinterpret_cast<float*>(p); }
void* stream_of(uintptr_t s) { return reinterpret_cast<void*>(s); }

const pcc::CudaPlan& view(const CudaPlanHolder& h) {
  PCC_CHECK(h.cp != nullptr, "CudaPlan is empty");
  return *h.cp;
}

pcc::TensorRef cuda_matrix(uintptr_t ptr, pcc::DType t, int64_t rows, int64_t cols, int device) {
  pcc::TensorRef r = matrix_ref(ptr, t, rows, cols);
  r.device = pcc::DeviceType::CUDA;
  r.device_id = device;
  return r;
}

pcc::Precision precision_from_name(const std::string& s) {
  if (s == "tf32") return pcc::Precision::TF32;
  if (s == "bf16") return pcc::Precision::BF16;
  if (s == "fp32") return pcc::Precision::FP32;
  pcc::raise("unknown precision '", s, "' (expected 'tf32', 'bf16' or 'fp32')");
}

}  // namespace

void bind_cuda(py::module_& m) {
  py::class_<CudaPlanHolder>(m, "CudaPlan")
      .def_property_readonly("device", [](const CudaPlanHolder& h) { return h.device; })
      .def_property_readonly("plan", [](const CudaPlanHolder& h) { return h.plan; })
      .def(
          "graph_stats",
          [](const CudaPlanHolder& h) {
            py::dict d;
            for (const bool backward : {false, true}) {
              const pcc::CudaGraphStats st = pcc::cuda_graph_stats(view(h), backward);
              py::dict one;
              one["eager"] = st.eager;
              one["captured"] = st.captured;
              one["replayed"] = st.replayed;
              d[backward ? "backward" : "forward"] = one;
            }
            return d;
          },
          "How this plan's forward and backward passes ran: eager, captured into a CUDA graph, replayed.");

  m.def("cuda_set_graphs", &pcc::cuda_set_graphs, py::arg("on"));
  m.def("cuda_graphs", &pcc::cuda_graphs);
  m.def("cuda_plan_bytes", [](const pcc::Plan& plan) { return pcc::cuda_plan_bytes(plan); }, py::arg("plan"));
  m.def(
      "cuda_upload_plan",
      [](py::object plan_obj, uintptr_t buffer, int device, uintptr_t stream) {
        const pcc::Plan& plan = plan_obj.cast<const pcc::Plan&>();
        CudaPlanHolder h;
        {
          py::gil_scoped_release nogil;
          h.cp = pcc::cuda_upload_plan(plan, reinterpret_cast<void*>(buffer), device, stream_of(stream));
        }
        h.plan = std::move(plan_obj);
        h.plan_ptr = &plan;
        h.device = device;
        return h;
      },
      py::arg("plan"), py::arg("buffer_ptr"), py::arg("device"), py::arg("stream"));
  m.def(
      "cuda_forward",
      [](const CudaPlanHolder& h, uintptr_t params, uintptr_t x, const std::string& x_dtype, int64_t batch,
         uintptr_t missing, uintptr_t values, uintptr_t out, const std::string& precision, uintptr_t stream) {
        const pcc::CudaPlan& cp = view(h);
        const pcc::Plan& plan = *h.plan_ptr;
        pcc::ForwardArgs a;
        a.plan = &plan;
        a.params = cf(params);
        a.x = cuda_matrix(x, dtype_from_name(x_dtype), batch, plan.num_vars, h.device);
        if (missing) a.missing = cuda_matrix(missing, pcc::DType::Bool, batch, plan.num_vars, h.device);
        a.values = mf(values);
        a.out = mf(out);
        a.batch = batch;
        const pcc::Precision prec = precision_from_name(precision);
        py::gil_scoped_release nogil;
        pcc::cuda_forward(cp, a, prec, stream_of(stream));
      },
      py::arg("cplan"), py::arg("params"), py::arg("x"), py::arg("x_dtype"), py::arg("batch"), py::arg("missing"),
      py::arg("values"), py::arg("out"), py::arg("precision") = "tf32", py::arg("stream") = 0);
  m.def(
      "cuda_backward",
      [](const CudaPlanHolder& h, uintptr_t params, uintptr_t x, const std::string& x_dtype, int64_t batch,
         uintptr_t missing, uintptr_t values, uintptr_t root_flow, uintptr_t flows, uintptr_t param_flows,
         const std::string& precision, uintptr_t stream) {
        const pcc::CudaPlan& cp = view(h);
        const pcc::Plan& plan = *h.plan_ptr;
        pcc::BackwardArgs a;
        a.plan = &plan;
        a.params = cf(params);
        a.x = cuda_matrix(x, dtype_from_name(x_dtype), batch, plan.num_vars, h.device);
        if (missing) a.missing = cuda_matrix(missing, pcc::DType::Bool, batch, plan.num_vars, h.device);
        a.values = mf(values);
        a.root_flow = cf(root_flow);
        a.flows = mf(flows);
        a.param_flows = mf(param_flows);
        a.batch = batch;
        const pcc::Precision prec = precision_from_name(precision);
        py::gil_scoped_release nogil;
        pcc::cuda_backward(cp, a, prec, stream_of(stream));
      },
      py::arg("cplan"), py::arg("params"), py::arg("x"), py::arg("x_dtype"), py::arg("batch"), py::arg("missing"),
      py::arg("values"), py::arg("root_flow"), py::arg("flows"), py::arg("param_flows"), py::arg("precision") = "tf32",
      py::arg("stream") = 0);
  m.def(
      "cuda_normalize",
      [](const CudaPlanHolder& h, uintptr_t log_params, uintptr_t params, uintptr_t stream) {
        const pcc::CudaPlan& cp = view(h);
        py::gil_scoped_release nogil;
        pcc::cuda_normalize(cp, cf(log_params), mf(params), stream_of(stream));
      },
      py::arg("cplan"), py::arg("log_params"), py::arg("params"), py::arg("stream") = 0);
  m.def(
      "cuda_log_params",
      [](const CudaPlanHolder& h, uintptr_t params, uintptr_t log_params, uintptr_t stream) {
        const pcc::CudaPlan& cp = view(h);
        py::gil_scoped_release nogil;
        pcc::cuda_log_params(cp, cf(params), mf(log_params), stream_of(stream));
      },
      py::arg("cplan"), py::arg("params"), py::arg("log_params"), py::arg("stream") = 0);
  m.def(
      "cuda_em_update",
      [](const CudaPlanHolder& h, uintptr_t params, uintptr_t param_flows, double step, double pseudocount,
         uintptr_t stream) {
        const pcc::CudaPlan& cp = view(h);
        py::gil_scoped_release nogil;
        pcc::cuda_em_update(cp, mf(params), cf(param_flows), step, pseudocount, stream_of(stream));
      },
      py::arg("cplan"), py::arg("params"), py::arg("param_flows"), py::arg("step_size"), py::arg("pseudocount"),
      py::arg("stream") = 0);
  m.def(
      "cuda_param_grads",
      [](const CudaPlanHolder& h, uintptr_t params, uintptr_t param_flows, uintptr_t grad, uintptr_t stream) {
        const pcc::CudaPlan& cp = view(h);
        py::gil_scoped_release nogil;
        pcc::cuda_param_grads(cp, cf(params), cf(param_flows), mf(grad), stream_of(stream));
      },
      py::arg("cplan"), py::arg("params"), py::arg("param_flows"), py::arg("grad"), py::arg("stream") = 0);
}

}  // namespace pcc_py
