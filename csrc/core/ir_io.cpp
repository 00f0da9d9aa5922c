// .pcir files: the circuit IR in the shared container (container.h). The payload order is
// documented field by field in docs/ir.md; keep the two in step. Every field of every vector is
// written whatever its kind, so the round trip is exact even for fields a kind ignores, and verify
// can reject those fields in files just as in memory.
#include "core/container.h"
#include "core/verify.h"
#include "pcc/error.h"
#include "pcc/ir.h"

namespace pcc {
namespace {

// Bytes of the smallest possible vector record (3 enums, 5 scalars, 3 empty arrays) and parameter
// group (an empty array): counts of them are checked against the bytes left before reserving.
constexpr size_t kMinVectorBytes = 3 * 1 + 5 * 8 + 3 * 8;
constexpr size_t kMinGroupBytes = 8;

template <class E>
E read_enum(container::Reader& r, const char* what, uint8_t last) {
  const size_t at = r.offset();
  const uint8_t v = r.u8(what);
  if (v > last) {
    raise(r.source(), ": corrupt: ", r.field(what), " is ", int(v), ", out of range (0..", int(last),
          ") at offset ", at);
  }
  return static_cast<E>(v);
}

}  // namespace

std::string serialize_circuit(const Circuit& c) {
  container::Writer w;
  w.i64(c.root);
  w.count(c.params.size());
  for (const auto& g : c.params) w.f32s(g);
  w.count(c.nodes.size());
  for (const NodeVector& v : c.nodes) {
    w.u8(static_cast<uint8_t>(v.kind));
    w.u8(static_cast<uint8_t>(v.dist));
    w.u8(static_cast<uint8_t>(v.form));
    w.i64(v.num_nodes);
    w.i64(v.var);
    w.i64(v.num_cats);
    w.i64(v.block_size);
    w.i64(v.params);
    w.i64s(v.children);
    w.i64s(v.prod_edges);
    w.i64s(v.sum_edges);
  }
  return w.seal(container::Kind::Circuit);
}

Circuit parse_circuit(const std::string& bytes, const std::string& source) {
  container::Reader r = container::open(bytes, container::Kind::Circuit, source);
  Circuit c;
  c.root = r.i64("root");
  const size_t num_groups = r.count("parameter group count", kMinGroupBytes);
  c.params.resize(num_groups);
  for (size_t g = 0; g < num_groups; ++g) {
    r.set_context("parameter group " + std::to_string(g));
    c.params[g] = r.f32s("values");
  }
  r.set_context("");
  const size_t num_vectors = r.count("vector count", kMinVectorBytes);
  c.nodes.resize(num_vectors);
  for (size_t i = 0; i < num_vectors; ++i) {
    r.set_context("vector " + std::to_string(i));
    NodeVector& v = c.nodes[i];
    v.kind = read_enum<NodeKind>(r, "kind", static_cast<uint8_t>(NodeKind::Sum));
    v.dist = read_enum<Dist>(r, "dist", static_cast<uint8_t>(Dist::Gaussian));
    v.form = read_enum<SumForm>(r, "form", static_cast<uint8_t>(SumForm::Block));
    v.num_nodes = r.i64("num_nodes");
    v.var = r.i64("var");
    v.num_cats = r.i64("num_cats");
    v.block_size = r.i64("block_size");
    v.params = r.i64("params");
    v.children = r.i64s("children");
    v.prod_edges = r.i64s("prod_edges");
    v.sum_edges = r.i64s("sum_edges");
  }
  r.set_context("");
  r.expect_end();
  try {
    check_structure(c);
  } catch (const Error& e) {
    raise(source, ": ", e.what());
  }
  return c;
}

void write_circuit(const Circuit& c, const std::string& path) {
  container::write_file_atomic(path, serialize_circuit(c));
}

Circuit read_circuit(const std::string& path) { return parse_circuit(container::read_file(path), path); }

}  // namespace pcc
