// Bindings for the compiler and the Plan it produces.
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <sstream>

#include "pcc/compiler.h"
#include "pcc/plan.h"
#include "python/bind.h"

namespace pcc_py {

py::dict stats_to_dict(const pcc::Stats& s);  // bind_ir.cpp

void bind_compile(py::module_& m) {
  py::class_<pcc::Plan>(m, "Plan")
      .def("save", [](const pcc::Plan& p, const std::string& path) {
        py::gil_scoped_release nogil;
        pcc::write_plan(p, path);
      })
      .def_static("load", [](const std::string& path) {
        py::gil_scoped_release nogil;
        return pcc::read_plan(path);
      })
      .def("to_bytes", [](const pcc::Plan& p) { return py::bytes(pcc::serialize_plan(p)); })
      .def_static("from_bytes", [](const py::bytes& b) { return pcc::parse_plan(std::string(b), "<bytes>"); })
      .def("report", &pcc::plan_report)
      .def("summary",
           [](const pcc::Plan& p) {
             const pcc::PlanSummary s = pcc::summarize(p);
             py::dict d;
             d["layers"] = s.layers;
             d["input_groups"] = s.input_groups;
             d["fused_input_groups"] = s.fused_input_groups;
             d["product_partitions"] = s.product_partitions;
             d["sum_partitions"] = s.sum_partitions;
             d["sum_blocks"] = s.sum_blocks;
             d["sum_edges_real"] = s.sum_edges_real;
             d["sum_edges_padded"] = s.sum_edges_padded;
             d["product_edges_real"] = s.product_edges_real;
             d["product_edges_padded"] = s.product_edges_padded;
             d["fused_product_edges"] = s.fused_product_edges;
             d["flops_per_sample"] = s.flops_per_sample;
             d["bytes_per_sample"] = s.bytes_per_sample;
             d["value_bytes_per_sample"] = s.value_bytes_per_sample;
             d["param_bytes"] = s.param_bytes;
             return d;
           })
      .def("fused_input_rows",
           [](const pcc::Plan& p) {  // (row_start, num_nodes) of every fused input group: rows no pass writes
             std::vector<std::pair<int64_t, int64_t>> out;
             for (const pcc::Layer& l : p.layers)
               for (const pcc::InputGroup& g : l.inputs)
                 if (g.fused) out.emplace_back(g.row_start, g.num_nodes);
             return out;
           })
      .def_readonly("num_rows", &pcc::Plan::num_rows)
      .def_readonly("x_rows", &pcc::Plan::x_rows)
      .def_readonly("num_vars", &pcc::Plan::num_vars)
      .def_readonly("root_row", &pcc::Plan::root_row)
      .def_readonly("num_root_nodes", &pcc::Plan::num_root_nodes)
      .def_property_readonly("num_params", [](const pcc::Plan& p) { return p.params.size(); })
      .def_property_readonly("stats", [](const pcc::Plan& p) { return stats_to_dict(p.stats); })
      .def_property_readonly("param_layout_id", &pcc::param_layout_id)
      .def("params", [](const pcc::Plan& p) {
        py::array_t<float> a(static_cast<py::ssize_t>(p.params.size()));
        std::copy(p.params.begin(), p.params.end(), a.mutable_data());
        return a;
      });

  m.def(
      "compile",
      [](const pcc::Circuit& c, int64_t block_size, int64_t max_partitions, bool reuse_rows,
         int64_t chunk_input_rows, int64_t category_major_cats, bool fuse_products, int64_t fuse_max_arity,
         bool fuse_inputs) {
        py::gil_scoped_release nogil;
        pcc::CompileOptions o;
        o.block_size = block_size;
        o.max_partitions = max_partitions;
        o.reuse_rows = reuse_rows;
        o.chunk_input_rows = chunk_input_rows;
        o.category_major_cats = category_major_cats;
        o.fuse_products = fuse_products;
        o.fuse_max_arity = fuse_max_arity;
        o.fuse_inputs = fuse_inputs;
        return pcc::compile(c, o);
      },
      py::arg("circuit"), py::arg("block_size") = 0, py::arg("max_partitions") = 4, py::arg("reuse_rows") = true,
      py::arg("chunk_input_rows") = pcc::CompileOptions().chunk_input_rows,
      py::arg("category_major_cats") = pcc::CompileOptions().category_major_cats,
      py::arg("fuse_products") = pcc::CompileOptions().fuse_products,
      py::arg("fuse_max_arity") = pcc::CompileOptions().fuse_max_arity,
      py::arg("fuse_inputs") = pcc::CompileOptions().fuse_inputs);
  m.def(
      "dump_after",
      [](const pcc::Circuit& c, const std::string& pass, int64_t block_size) {
        pcc::CompileOptions o;
        o.block_size = block_size;
        o.dump_after = pass;
        std::ostringstream s;
        pcc::compile(c, o, &s);
        return s.str();
      },
      py::arg("circuit"), py::arg("pass_name"), py::arg("block_size") = 0);
  m.def("pass_names", &pcc::pass_names);
}

}  // namespace pcc_py
