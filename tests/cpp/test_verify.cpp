// The verify pass: one case per rejection, each checking that the message names the right vector,
// plus valid circuits that must pass and a 31M-weight dense sum that must verify quickly.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <limits>

#include "check.h"
#include "pcc/compiler.h"
#include "samples.h"

using namespace pcc;
using namespace pcc_test;

namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

// tiny_circuit() (vectors: 0 categorical, 1 Bernoulli, 2 Gaussian, 3 product, 4 dense sum) changed.
Circuit tiny(const std::function<void(Circuit&)>& edit) {
  Circuit c = tiny_circuit();
  edit(c);
  return c;
}

}  // namespace

int main() {
  // ---- valid circuits ----
  verify(tiny_circuit());
  verify(two_products(SumForm::Dense, {}, normalized(2, 8)));
  verify(two_products(SumForm::Sparse, {0, 0, 1, /**/ 0, 7, 3}, {0.25f, 0.75f, 1.0f}));
  verify(two_products(SumForm::Block, {0, 1, /**/ 3, 0}, normalized(4, 2), 2, 4));
  {  // Tied inputs on different variables (duplicate), tied sums with the same shape.
    Builder b;
    const int64_t g = b.group(normalized(4, 3));
    const int64_t x = b.input(0, 4, Dist::Categorical, 3, g);
    const int64_t y = b.input(1, 4, Dist::Categorical, 3, g);
    const int64_t w = b.group(normalized(4, 4));
    const int64_t s = b.sum({x}, 4, SumForm::Dense, w);
    const int64_t t = b.sum({y}, 4, SumForm::Dense, w);
    b.product({s, t}, 4);
    verify(b.c);
  }

  // ---- structure ----
  CHECK_THROWS(verify(Circuit{}), "empty circuit");
  CHECK_THROWS(verify(tiny([](Circuit& c) { c.root = 7; })), "root 7 is not a vector id (the circuit has 5 vectors)");
  CHECK_THROWS(verify(tiny([](Circuit& c) { c.root = -1; })), "root -1");
  CHECK_THROWS(verify(tiny([](Circuit& c) { c.nodes[3].children[2] = 4; })),
               "product vector 3: child 2 is vector 4, not an earlier vector (cycle or forward reference)");
  CHECK_THROWS(verify(tiny([](Circuit& c) { c.nodes[4].children[0] = 4; })), "sum vector 4: child 0 is vector 4",
               "cycle");
  CHECK_THROWS(verify(tiny([](Circuit& c) { c.nodes[2].params = 5; })),
               "input vector 2: parameter group 5 does not exist (4 groups)");
  CHECK_THROWS(verify(tiny([](Circuit& c) { c.nodes[4].kind = static_cast<NodeKind>(3); })), "vector 4: kind 3");
  CHECK_THROWS(verify(tiny([](Circuit& c) { c.nodes[0].num_nodes = 0; })), "input vector 0: num_nodes is 0");
  CHECK_THROWS(verify(tiny([](Circuit& c) { c.nodes[4].num_nodes = -2; })), "sum vector 4: num_nodes is -2");

  // ---- kind-specific fields ----
  CHECK_THROWS(verify(tiny([](Circuit& c) { c.nodes[1].children = {0}; })), "input vector 1: an input vector has no children");
  CHECK_THROWS(verify(tiny([](Circuit& c) { c.nodes[1].sum_edges = {0, 0}; })), "input vector 1: an input vector has no edges");
  CHECK_THROWS(verify(tiny([](Circuit& c) { c.nodes[1].params = -1; })), "input vector 1: no parameter group");
  CHECK_THROWS(verify(tiny([](Circuit& c) { c.nodes[3].params = 0; })), "product vector 3: has parameter group 0");
  CHECK_THROWS(verify(tiny([](Circuit& c) { c.nodes[3].var = 1; })), "product vector 3: var is 1");
  CHECK_THROWS(verify(tiny([](Circuit& c) { c.nodes[3].sum_edges = {0, 0}; })), "product vector 3: has sum_edges");
  CHECK_THROWS(verify(tiny([](Circuit& c) { c.nodes[4].prod_edges = {0}; })), "sum vector 4: has prod_edges");
  CHECK_THROWS(verify(tiny([](Circuit& c) { c.nodes[4].sum_edges = {0, 0}; })), "sum vector 4: dense but has sum_edges");
  CHECK_THROWS(verify(tiny([](Circuit& c) { c.nodes[4].params = -1; })), "sum vector 4: no parameter group");
  CHECK_THROWS(verify(tiny([](Circuit& c) { c.nodes[1].var = -2; })), "input vector 1: variable -2 is negative");
  CHECK_THROWS(verify(tiny([](Circuit& c) { c.nodes[1].var = int64_t(1) << 40; })), "input vector 1: variable", "too large");
  CHECK_THROWS(verify(tiny([](Circuit& c) { c.nodes[0].num_cats = 0; })), "input vector 0: categorical num_cats is 0");

  // ---- products ----
  CHECK_THROWS(verify(tiny([](Circuit& c) { c.nodes[1].var = 0; })),
               "product vector 3: children have overlapping scopes (not decomposable): vector 0 has {0}, vector 1 has {0}",
               "both contain variable 0");
  CHECK_THROWS(verify(tiny([](Circuit& c) { c.nodes[3].children = {0, 1, 0}; })), "product vector 3", "overlapping",
               "vector 0 has {0}");
  CHECK_THROWS(verify(tiny([](Circuit& c) { c.nodes[3].children.clear(); })), "product vector 3: no children");
  CHECK_THROWS(verify(tiny([](Circuit& c) { c.nodes[1].num_nodes = 2; c.params[1].resize(2); })),
               "product vector 3: elementwise product of 4 nodes, but child vector 1 has 2 nodes");
  CHECK_THROWS(verify(tiny([](Circuit& c) { c.nodes[3].prod_edges = {0, 1, 2, 3, 0}; })),
               "product vector 3: edges have 5 entries, expected [num_nodes 4, children 3]");
  CHECK_THROWS(verify(tiny([](Circuit& c) { c.nodes[3].prod_edges = {0, 0, 0, 1, 1, 1, 2, 9, 2, 3, 3, 3}; })),
               "product vector 3: edge (2, 1) = 9 is out of range: child vector 1 has 4 nodes");

  // ---- sums ----
  CHECK_THROWS(verify(tiny([](Circuit& c) { c.nodes[4].children.clear(); })), "sum vector 4: no children");
  {  // The example from the issue: {0,1} against {0,2}.
    Builder b;
    const int64_t g = b.group(probabilities(2));
    for (int64_t v : {0, 1, 2}) b.input(v, 2, Dist::Bernoulli, 0, g);
    const int64_t p01 = b.product({0, 1}, 2);
    const int64_t p02 = b.product({0, 2}, 2);
    b.sum({p01, p02}, 1, SumForm::Dense, b.group(normalized(1, 4)));
    CHECK_THROWS(verify(b.c), "sum vector 5: children have different scopes (not smooth): vector 3 has {0,1}, vector 4 has {0,2}");
  }
  {  // Long scopes are abbreviated.
    Builder b;
    const int64_t g = b.group(probabilities(1));
    std::vector<int64_t> in;
    for (int64_t v = 0; v < 20; ++v) in.push_back(b.input(v, 1, Dist::Bernoulli, 0, g));
    const int64_t wide = b.product(in, 1);
    const int64_t narrow = b.product({in[0], in[1]}, 1);
    b.sum({wide, narrow}, 1, SumForm::Dense, b.group({0.5f, 0.5f}));
    CHECK_THROWS(verify(b.c), "sum vector 22", "vector 20 has {0,1,2,3,4,5,6,7,...} (20 variables)", "vector 21 has {0,1}");
  }
  CHECK_THROWS(verify(two_products(SumForm::Sparse, {0, 0, 1, /**/ 0, 7}, {0.5f, 0.5f, 1})),
               "sum vector 6: sum_edges has 5 entries, expected [2, E]");
  CHECK_THROWS(verify(two_products(SumForm::Sparse, {0, 0, 1, /**/ 0, 8, 3}, {0.5f, 0.5f, 1})),
               "sum vector 6: edge 1 (sum node 0, child node 8) is out of range: 2 sum nodes, 8 child nodes");
  CHECK_THROWS(verify(two_products(SumForm::Sparse, {0, 2, 1, /**/ 0, 1, 3}, {0.5f, 0.5f, 1})),
               "sum vector 6: edge 1 (sum node 2");
  CHECK_THROWS(verify(two_products(SumForm::Sparse, {0, 1, 0, /**/ 5, 3, 5}, {0.5f, 1, 0.5f})),
               "sum vector 6: edge (sum node 0, child node 5) is repeated (edges 0 and 2)");
  CHECK_THROWS(verify(two_products(SumForm::Sparse, {1, 1, /**/ 0, 1}, {0.5f, 0.5f}, 1, 3)),
               "sum vector 6: 3 sum nodes but only 2 edges");
  CHECK_THROWS(verify(two_products(SumForm::Sparse, {1, 1, 2, /**/ 0, 1, 0}, {0.5f, 0.5f, 1}, 1, 3)),
               "sum vector 6: sum node 0 has no edge");
  CHECK_THROWS(verify(two_products(SumForm::Block, {0, /**/ 0}, normalized(9, 3), 3, 3)),
               "sum vector 6: block_size 3 is not a power of two");
  CHECK_THROWS(verify(two_products(SumForm::Block, {0, /**/ 0}, normalized(4, 4), 4, 6)),
               "sum vector 6: num_nodes 6 is not a multiple of block_size 4");
  CHECK_THROWS(verify(two_products(SumForm::Block, {0, /**/ 0}, normalized(8, 8), 8, 8)),
               "sum vector 6: child vector 4 has 4 nodes, not a multiple of block_size 8");
  CHECK_THROWS(verify(two_products(SumForm::Block, {0, 1, /**/ 0, 4}, normalized(4, 2), 2, 4)),
               "sum vector 6: edge 1 (sum block 1, child block 4) is out of range: 2 sum blocks, 4 child blocks");
  CHECK_THROWS(verify(two_products(SumForm::Block, {0, 1, 0, /**/ 2, 1, 2}, normalized(6, 2), 2, 4)),
               "sum vector 6: edge (sum block 0, child block 2) is repeated (edges 0 and 2)");
  CHECK_THROWS(verify(two_products(SumForm::Block, {0, /**/ 0}, normalized(2, 2), 2, 4)),
               "sum vector 6: 2 sum blocks but only 1 edges");
  CHECK_THROWS(verify(two_products(SumForm::Block, {0, 0, /**/ 0, 1}, normalized(4, 2), 2, 4)),
               "sum vector 6: sum block 1 has no edge");
  CHECK_THROWS(verify(two_products(SumForm::Block, {1, 1, 1, /**/ 0, 1, 2}, normalized(6, 2), 2, 4)),
               "sum vector 6: sum block 0 has no edge");

  // ---- parameters ----
  CHECK_THROWS(verify(tiny([](Circuit& c) { c.params[3].push_back(0); })),
               "sum vector 4: parameter group 3 has 5 values, expected 4");
  CHECK_THROWS(verify(tiny([](Circuit& c) { c.params[0].pop_back(); })),
               "input vector 0: parameter group 0 has 11 values, expected 12");
  CHECK_THROWS(verify(tiny([](Circuit& c) { c.params[2].resize(4); })), "input vector 2: parameter group 2 has 4 values, expected 8");
  CHECK_THROWS(verify(tiny([](Circuit& c) { c.params[3][2] = kNaN; })), "sum vector 4: weight 2 is nan");
  CHECK_THROWS(verify(tiny([](Circuit& c) { c.params[3][1] = -kInf; })), "sum vector 4: weight 1 is -inf");
  CHECK_THROWS(verify(tiny([](Circuit& c) { c.params[3][0] = -0.1f; c.params[3][1] += 0.1f; })),
               "sum vector 4: weight 0 is -0.1 (must be finite and non-negative)");
  CHECK_THROWS(verify(tiny([](Circuit& c) { c.params[3][3] += 0.01f; })), "sum vector 4: weights of node 0 sum to 1.01", "not 1");
  CHECK_THROWS(verify(tiny([](Circuit& c) { c.params[3] = {0, 0, 0, 0}; })), "sum vector 4: weights of node 0 sum to 0, not 1");
  verify(tiny([](Circuit& c) { c.params[3][3] += 0.0005f; }));  // within the 1e-3 tolerance
  CHECK_THROWS(verify(two_products(SumForm::Sparse, {0, 0, 1, /**/ 0, 7, 3}, {0.25f, 0.75f, 0.5f})),
               "sum vector 6: weights of node 1 sum to 0.5, not 1");
  {
    std::vector<float> w = normalized(4, 2);
    w[2 * 2 + 1] = 0.0f;  // weight row 2 = (edge 1, node 0 of sum block 1) = sum node 2
    CHECK_THROWS(verify(two_products(SumForm::Block, {0, 1, /**/ 3, 0}, w, 2, 4)),
                 "sum vector 6: weights of node 2 sum to");
  }
  CHECK_THROWS(verify(tiny([](Circuit& c) { c.params[0][4] = 0.9f; })),
               "input vector 0: probabilities of node 1 sum to", "not 1");
  CHECK_THROWS(verify(tiny([](Circuit& c) { c.params[0][5] = kNaN; })),
               "input vector 0: probability (node 1, category 2) is nan");
  CHECK_THROWS(verify(tiny([](Circuit& c) { c.params[0][0] = -0.5f; })),
               "input vector 0: probability (node 0, category 0) is -0.5");
  CHECK_THROWS(verify(tiny([](Circuit& c) { c.params[1][3] = 1.5f; })),
               "input vector 1: Bernoulli probability of node 3 is 1.5 (must be in [0, 1])");
  CHECK_THROWS(verify(tiny([](Circuit& c) { c.params[1][0] = kNaN; })), "input vector 1: Bernoulli probability of node 0 is nan");
  CHECK_THROWS(verify(tiny([](Circuit& c) { c.params[2][5] = 0; })),
               "input vector 2: Gaussian std of node 1 is 0 (must be finite and positive)");
  CHECK_THROWS(verify(tiny([](Circuit& c) { c.params[2][7] = kInf; })), "input vector 2: Gaussian std of node 3 is inf");
  CHECK_THROWS(verify(tiny([](Circuit& c) { c.params[2][2] = -kInf; })), "input vector 2: Gaussian mean of node 2 is -inf");

  // ---- tying ----
  {
    auto tied = [](const std::function<void(Builder&, int64_t, int64_t)>& second) {
      Builder b;
      const int64_t g = b.group(normalized(4, 3));
      const int64_t x = b.input(0, 4, Dist::Categorical, 3, g);
      second(b, g, x);
      return b.c;
    };
    CHECK_THROWS(verify(tied([](Builder& b, int64_t g, int64_t) { b.input(1, 4, Dist::Categorical, 4, g); })),
                 "input vector 1: tied to input vector 0 (parameter group 0) but differs in num_cats");
    CHECK_THROWS(verify(tied([](Builder& b, int64_t g, int64_t) { b.input(1, 2, Dist::Categorical, 3, g); })),
                 "input vector 1: tied to input vector 0", "differs in num_nodes");
    CHECK_THROWS(verify(tied([](Builder& b, int64_t g, int64_t) { b.input(1, 4, Dist::Bernoulli, 0, g); })),
                 "input vector 1: tied to input vector 0", "differs in distribution");
    CHECK_THROWS(verify(tied([](Builder& b, int64_t g, int64_t x) { b.sum({x}, 4, SumForm::Dense, g); })),
                 "sum vector 1: tied to input vector 0", "differs in kind");
  }
  {
    auto tied_sums = [](SumForm form2, std::vector<int64_t> edges2, int64_t block2, int64_t child_nodes2) {
      Builder b;
      const int64_t x = b.input(0, 4, Dist::Bernoulli, 0, b.group(probabilities(4)));
      const int64_t y = b.input(0, child_nodes2, Dist::Bernoulli, 0, b.group(probabilities(child_nodes2)));
      const int64_t w = b.group(std::vector<float>(4, 0.5f));
      b.sum({x}, 2, SumForm::Sparse, w, {0, 0, 1, 1, /**/ 0, 1, 2, 3});
      b.sum({y}, 2, form2, w, std::move(edges2), block2);
      return b.c;
    };
    verify(tied_sums(SumForm::Sparse, {0, 0, 1, 1, /**/ 0, 1, 2, 3}, 1, 4));
    CHECK_THROWS(verify(tied_sums(SumForm::Sparse, {0, 0, 1, 1, /**/ 0, 1, 3, 2}, 1, 4)),
                 "sum vector 3: tied to sum vector 2 (parameter group 2) but differs in edges");
    CHECK_THROWS(verify(tied_sums(SumForm::Sparse, {0, 0, 1, 1, /**/ 0, 1, 2, 3}, 1, 8)),
                 "sum vector 3: tied to sum vector 2", "differs in child sizes");
    CHECK_THROWS(verify(tied_sums(SumForm::Block, {0, /**/ 0}, 2, 4)), "sum vector 3: tied to sum vector 2",
                 "differs in form");
  }
  {
    Builder b;
    const int64_t x = b.input(0, 4, Dist::Bernoulli, 0, b.group(probabilities(4)));
    const int64_t w = b.group(normalized(4, 2));
    b.sum({x}, 4, SumForm::Block, w, {0, 1, /**/ 0, 1}, 2);
    b.sum({x}, 4, SumForm::Block, w, {0, /**/ 0}, 4);
    CHECK_THROWS(verify(b.c), "sum vector 2: tied to sum vector 1", "differs in block_size");
  }

  // ---- unreachable vectors are verified too ----
  CHECK_THROWS(verify(tiny([](Circuit& c) {
                 c.nodes.push_back(c.nodes[1]);
                 c.nodes.back().var = -1;
               })),
               "input vector 5: variable -1 is negative");

  // ---- speed: a dense sum with 31M weights verifies in well under a second ----
  {
    const int64_t rows = 4096, cols = 7680;
    Builder b;
    const int64_t x = b.input(0, cols, Dist::Bernoulli, 0, b.group(std::vector<float>(cols, 0.5f)));
    b.sum({x}, rows, SumForm::Dense, b.group(std::vector<float>(rows * cols, 1.0f / cols)));
    const auto t0 = std::chrono::steady_clock::now();
    verify(b.c);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("verify of a dense sum with %lld weights: %.3f s\n", static_cast<long long>(rows * cols), s);
    CHECK(s < 1.0);
  }
  return report("test_verify");
}
