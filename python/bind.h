// The pieces of the pcc._C extension, one function per area (module.cpp calls them in order).
#pragma once
#include <pybind11/pybind11.h>

namespace pcc_py {
namespace py = pybind11;
void bind_ir(py::module_& m);
void bind_compile(py::module_& m);
void bind_runtime(py::module_& m);
void bind_train(py::module_& m);
void bind_cuda(py::module_& m);
}  // namespace pcc_py
