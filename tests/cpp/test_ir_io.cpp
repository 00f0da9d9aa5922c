// .pcir round trip (exact, float32 bits included) and the reader's structural checks.
#include <cmath>
#include <cstring>
#include <limits>

#include "check.h"
#include "pcc/ir.h"
#include "samples.h"

using namespace pcc;
using namespace pcc_test;

namespace {

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

bool same(const Circuit& a, const Circuit& b) {
  if (a.root != b.root || a.nodes.size() != b.nodes.size() || a.params.size() != b.params.size()) return false;
  for (size_t g = 0; g < a.params.size(); ++g) {
    if (!same_bits(a.params[g], b.params[g])) return false;
  }
  for (size_t i = 0; i < a.nodes.size(); ++i) {
    const NodeVector &x = a.nodes[i], &y = b.nodes[i];
    if (x.kind != y.kind || x.num_nodes != y.num_nodes || x.children != y.children || x.var != y.var ||
        x.dist != y.dist || x.num_cats != y.num_cats || x.prod_edges != y.prod_edges || x.form != y.form ||
        x.block_size != y.block_size || x.sum_edges != y.sum_edges || x.params != y.params) {
      return false;
    }
  }
  return true;
}

// Every kind, distribution and sum form, tying, and float32 values whose bits must survive.
Circuit varied_circuit() {
  Builder b;
  std::vector<float> odd = probabilities(4);
  odd[1] = std::numeric_limits<float>::denorm_min();
  odd[2] = -0.0f;
  odd[3] = std::nextafter(1.0f, 0.0f);
  const int64_t x = b.input(0, 4, Dist::Bernoulli, 0, b.group(odd));
  const int64_t y = b.input(1, 4, Dist::Bernoulli, 0, 0);
  const int64_t z = b.input(2, 4, Dist::Categorical, 5, b.group(normalized(4, 5)));
  std::vector<float> g = gaussian(4);
  g[0] = std::numeric_limits<float>::quiet_NaN();  // not valid, but files carry bits, not judgement
  const int64_t w = b.input(3, 4, Dist::Gaussian, 0, b.group(g));
  const int64_t p = b.product({x, y}, 4);
  const int64_t q = b.product({z, w}, 2, {0, 3, 1, 2});
  const int64_t s1 = b.sum({p}, 2, SumForm::Sparse, b.group({0.5f, 0.5f, 1.0f}), {0, 0, 1, /**/ 0, 3, 2});
  const int64_t s2 = b.sum({p}, 4, SumForm::Block, b.group(normalized(4, 2)), {0, 1, /**/ 1, 0}, 2);
  const int64_t s3 = b.sum({q}, 2, SumForm::Dense, b.group(normalized(2, 2)));
  b.product({s1, s3}, 2);
  b.sum({s2}, 1, SumForm::Dense, b.group(normalized(1, 4)));  // unreachable from the root below
  b.c.root = 9;
  return b.c;
}

}  // namespace

int main() {
  for (const Circuit& c : {tiny_circuit(), varied_circuit()}) {
    const std::string bytes = serialize_circuit(c);
    const Circuit back = parse_circuit(bytes);
    CHECK(same(c, back));
    CHECK(serialize_circuit(back) == bytes);
  }
  {  // Through a file.
    char tmpl[] = "/tmp/pcc_test_ir_io_XXXXXX";
    const std::string path = std::string(mkdtemp(tmpl)) + "/v.pcir";
    write_circuit(varied_circuit(), path);
    CHECK(same(read_circuit(path), varied_circuit()));
    std::remove(path.c_str());
    std::remove(path.substr(0, path.size() - 7).c_str());
  }
  {  // A large dense sum round-trips exactly and quickly.
    Builder b;
    const int64_t x = b.input(0, 2048, Dist::Bernoulli, 0, b.group(probabilities(2048)));
    b.sum({x}, 512, SumForm::Dense, b.group(normalized(512, 2048)));
    CHECK(same(parse_circuit(serialize_circuit(b.c)), b.c));
  }
  // Structural checks: the reader never returns a circuit that can index out of bounds.
  {
    Circuit c = tiny_circuit();
    c.nodes[3].children[1] = 3;
    CHECK_THROWS(parse_circuit(serialize_circuit(c), "fwd.pcir"), "fwd.pcir: product vector 3: child 1 is vector 3",
                 "cycle or forward reference");
    c = tiny_circuit();
    c.nodes[4].children[0] = -1;
    CHECK_THROWS(parse_circuit(serialize_circuit(c), "neg.pcir"), "sum vector 4: child 0 is vector -1");
    c = tiny_circuit();
    c.root = 5;
    CHECK_THROWS(parse_circuit(serialize_circuit(c), "root.pcir"), "root.pcir: root 5 is not a vector id");
    c = tiny_circuit();
    c.nodes[1].params = 9;
    CHECK_THROWS(parse_circuit(serialize_circuit(c), "g.pcir"), "input vector 1: parameter group 9 does not exist");
    c = tiny_circuit();
    c.nodes[2].kind = static_cast<NodeKind>(7);
    CHECK_THROWS(parse_circuit(serialize_circuit(c), "k.pcir"), "k.pcir: corrupt: kind of vector 2 is 7, out of range",
                 "at offset");
    c = tiny_circuit();
    c.nodes[0].dist = static_cast<Dist>(3);
    CHECK_THROWS(parse_circuit(serialize_circuit(c)), "dist of vector 0 is 3");
    c = tiny_circuit();
    c.nodes[4].form = static_cast<SumForm>(200);
    CHECK_THROWS(parse_circuit(serialize_circuit(c)), "form of vector 4 is 200");
    CHECK_THROWS(parse_circuit(serialize_circuit(Circuit{})), "empty circuit");
  }
  return report("test_ir_io");
}
