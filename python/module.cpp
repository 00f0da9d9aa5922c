// pcc._C: thin bindings over the torch-free core. The public API (and its docstrings) is the Python
// package `pcc`; buffers arrive as integer data pointers, so no libtorch is linked here.
#include "pcc/error.h"
#include "python/bind.h"

PYBIND11_MODULE(_C, m) {
  m.doc() = "pcc core bindings (internal; use the `pcc` package)";
  pybind11::register_exception<pcc::Error>(m, "Error", PyExc_ValueError);
  pcc_py::bind_ir(m);
  pcc_py::bind_compile(m);
  pcc_py::bind_runtime(m);
  pcc_py::bind_train(m);
  pcc_py::bind_cuda(m);
}
