// Bindings for the circuit IR: a builder used by the Python front-end to hand a circuit to the core,
// readers used by pcc.load, and the .pcir file I/O.
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include "pcc/compiler.h"
#include "pcc/error.h"
#include "pcc/ir.h"
#include "python/bind.h"

namespace pcc_py {
namespace {

using pcc::Circuit;
using pcc::NodeVector;
using I64Array = py::array_t<int64_t, py::array::c_style | py::array::forcecast>;

int64_t add(Circuit& c, NodeVector v) {
  for (int64_t ch : v.children) {
    PCC_CHECK(ch >= 0 && ch < static_cast<int64_t>(c.nodes.size()), "child id ", ch, " does not exist yet");
  }
  PCC_CHECK(v.params < static_cast<int64_t>(c.params.size()), "parameter group ", v.params, " does not exist");
  c.nodes.push_back(std::move(v));
  c.root = static_cast<int64_t>(c.nodes.size()) - 1;
  return c.root;
}

std::vector<int64_t> to_vec(const py::object& o) {
  if (o.is_none()) return {};
  I64Array a = py::cast<I64Array>(o);
  return std::vector<int64_t>(a.data(), a.data() + a.size());
}

pcc::Dist parse_dist(const std::string& s) {
  if (s == "categorical") return pcc::Dist::Categorical;
  if (s == "bernoulli") return pcc::Dist::Bernoulli;
  if (s == "gaussian") return pcc::Dist::Gaussian;
  pcc::raise("unknown distribution '", s, "'");
}

pcc::SumForm parse_form(const std::string& s) {
  if (s == "dense") return pcc::SumForm::Dense;
  if (s == "sparse") return pcc::SumForm::Sparse;
  if (s == "block") return pcc::SumForm::Block;
  pcc::raise("unknown sum form '", s, "'");
}

py::object edges_array(const std::vector<int64_t>& e, int64_t rows) {
  if (e.empty()) return py::none();
  I64Array a({rows, static_cast<int64_t>(e.size()) / rows});
  std::copy(e.begin(), e.end(), a.mutable_data());
  return std::move(a);
}

py::dict vector_dict(const Circuit& c, int64_t i) {
  PCC_CHECK(i >= 0 && i < static_cast<int64_t>(c.nodes.size()), "vector ", i, " out of range");
  const NodeVector& v = c.nodes[i];
  py::dict d;
  const char* kinds[] = {"input", "product", "sum"};
  const char* dists[] = {"categorical", "bernoulli", "gaussian"};
  const char* forms[] = {"dense", "sparse", "block"};
  d["kind"] = kinds[static_cast<int>(v.kind)];
  d["num_nodes"] = v.num_nodes;
  d["children"] = v.children;
  d["var"] = v.var;
  d["dist"] = dists[static_cast<int>(v.dist)];
  d["num_cats"] = v.num_cats;
  d["form"] = forms[static_cast<int>(v.form)];
  d["block_size"] = v.block_size;
  d["params"] = v.params;
  if (v.kind == pcc::NodeKind::Product) {
    d["edges"] = edges_array(v.prod_edges, v.num_nodes);
  } else if (v.kind == pcc::NodeKind::Sum) {
    d["edges"] = edges_array(v.sum_edges, 2);
  } else {
    d["edges"] = py::none();
  }
  return d;
}

py::dict stats_dict(const pcc::Stats& s) {
  py::dict d;
  d["input_nodes"] = s.input_nodes;
  d["sum_nodes"] = s.sum_nodes;
  d["product_nodes"] = s.product_nodes;
  d["sum_edges"] = s.sum_edges;
  d["product_edges"] = s.product_edges;
  d["sum_params"] = s.sum_params;
  d["input_params"] = s.input_params;
  return d;
}

}  // namespace

py::dict stats_to_dict(const pcc::Stats& s) { return stats_dict(s); }

void bind_ir(py::module_& m) {
  py::class_<Circuit>(m, "Circuit")
      .def(py::init<>())
      .def("add_params",
           [](Circuit& c, py::array_t<float, py::array::c_style | py::array::forcecast> a) {
             c.params.emplace_back(a.data(), a.data() + a.size());
             return static_cast<int64_t>(c.params.size()) - 1;
           })
      .def("add_input",
           [](Circuit& c, int64_t var, int64_t n, const std::string& dist, int64_t num_cats, int64_t params) {
             NodeVector v;
             v.kind = pcc::NodeKind::Input;
             v.var = var;
             v.num_nodes = n;
             v.dist = parse_dist(dist);
             v.num_cats = num_cats;
             v.params = params;
             return add(c, std::move(v));
           })
      .def("add_product",
           [](Circuit& c, std::vector<int64_t> children, int64_t n, py::object edges) {
             NodeVector v;
             v.kind = pcc::NodeKind::Product;
             v.children = std::move(children);
             v.num_nodes = n;
             v.prod_edges = to_vec(edges);
             return add(c, std::move(v));
           })
      .def("add_sum",
           [](Circuit& c, std::vector<int64_t> children, int64_t n, const std::string& form, int64_t block_size,
              py::object edges, int64_t params) {
             NodeVector v;
             v.kind = pcc::NodeKind::Sum;
             v.children = std::move(children);
             v.num_nodes = n;
             v.form = parse_form(form);
             v.block_size = block_size;
             v.sum_edges = to_vec(edges);
             v.params = params;
             return add(c, std::move(v));
           })
      .def_readwrite("root", &Circuit::root)
      .def_property_readonly("num_vectors", [](const Circuit& c) { return c.nodes.size(); })
      .def_property_readonly("num_param_groups", [](const Circuit& c) { return c.params.size(); })
      .def("vector", &vector_dict)
      .def("param_group",
           [](const Circuit& c, int64_t g) {
             PCC_CHECK(g >= 0 && g < static_cast<int64_t>(c.params.size()), "parameter group ", g, " out of range");
             const auto& p = c.params[g];
             py::array_t<float> a(static_cast<py::ssize_t>(p.size()));
             std::copy(p.begin(), p.end(), a.mutable_data());
             return a;
           })
      .def("set_param_group",
           [](Circuit& c, int64_t g, py::array_t<float, py::array::c_style | py::array::forcecast> a) {
             PCC_CHECK(g >= 0 && g < static_cast<int64_t>(c.params.size()), "parameter group ", g, " out of range");
             PCC_CHECK(static_cast<size_t>(a.size()) == c.params[g].size(), "parameter group ", g, " has ",
                       c.params[g].size(), " values, got ", a.size());
             std::copy(a.data(), a.data() + a.size(), c.params[g].begin());
           })
      .def("verify", [](const Circuit& c) { pcc::verify(c); })
      .def("stats", [](const Circuit& c) { return stats_dict(pcc::circuit_stats(c)); })
      .def("num_vars", [](const Circuit& c) { return pcc::num_vars(c); })
      .def("save", [](const Circuit& c, const std::string& path) {
        py::gil_scoped_release nogil;
        pcc::write_circuit(c, path);
      })
      .def_static("load", [](const std::string& path) {
        py::gil_scoped_release nogil;
        return pcc::read_circuit(path);
      })
      .def("to_bytes", [](const Circuit& c) { return py::bytes(pcc::serialize_circuit(c)); })
      .def_static("from_bytes", [](const py::bytes& b) { return pcc::parse_circuit(std::string(b), "<bytes>"); });
}

}  // namespace pcc_py
