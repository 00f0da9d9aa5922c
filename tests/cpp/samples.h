// Small circuits and plans shared by the C++ tests and the generators of tests/error and
// tests/golden: a terse builder and deterministic, normalized parameters.
#pragma once
#include <cstdint>
#include <vector>

#include "pcc/ir.h"
#include "pcc/plan.h"

namespace pcc_test {

using pcc::Circuit;
using pcc::Dist;
using pcc::NodeKind;
using pcc::NodeVector;
using pcc::SumForm;

struct Builder {
  Circuit c;

  int64_t group(std::vector<float> values) {
    c.params.push_back(std::move(values));
    return static_cast<int64_t>(c.params.size()) - 1;
  }
  int64_t add(NodeVector v) {
    c.nodes.push_back(std::move(v));
    c.root = static_cast<int64_t>(c.nodes.size()) - 1;  // the last vector added, unless set
    return c.root;
  }
  int64_t input(int64_t var, int64_t n, Dist dist, int64_t num_cats, int64_t params) {
    NodeVector v;
    v.kind = NodeKind::Input;
    v.var = var;
    v.num_nodes = n;
    v.dist = dist;
    v.num_cats = dist == Dist::Categorical ? num_cats : 0;
    v.params = params;
    return add(v);
  }
  int64_t product(std::vector<int64_t> children, int64_t n, std::vector<int64_t> edges = {}) {
    NodeVector v;
    v.kind = NodeKind::Product;
    v.num_nodes = n;
    v.children = std::move(children);
    v.prod_edges = std::move(edges);
    return add(v);
  }
  int64_t sum(std::vector<int64_t> children, int64_t n, SumForm form, int64_t params,
              std::vector<int64_t> edges = {}, int64_t block_size = 1) {
    NodeVector v;
    v.kind = NodeKind::Sum;
    v.num_nodes = n;
    v.children = std::move(children);
    v.form = form;
    v.block_size = block_size;
    v.sum_edges = std::move(edges);
    v.params = params;
    return add(v);
  }
};

// `rows` rows of `cols` positive values, each row summing to 1 (float32 rounding aside).
inline std::vector<float> normalized(int64_t rows, int64_t cols, int64_t seed = 1) {
  std::vector<float> v(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r) {
    double total = 0;
    for (int64_t k = 0; k < cols; ++k) {
      const double x = 1.0 + ((r * 7 + k * 13 + seed * 5) % 11);
      v[r * cols + k] = static_cast<float>(x);
      total += x;
    }
    for (int64_t k = 0; k < cols; ++k) v[r * cols + k] = static_cast<float>(v[r * cols + k] / total);
  }
  return v;
}

// Values in (0, 1) for Bernoulli parameters.
inline std::vector<float> probabilities(int64_t n, int64_t seed = 1) {
  std::vector<float> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = static_cast<float>(0.1 + 0.8 * ((i * 3 + seed) % 7) / 6.0);
  return v;
}

// Gaussian [2, n]: means then stds.
inline std::vector<float> gaussian(int64_t n) {
  std::vector<float> v(2 * n);
  for (int64_t i = 0; i < n; ++i) {
    v[i] = static_cast<float>(i) - 1.5f;
    v[n + i] = 0.5f + 0.25f * static_cast<float>(i);
  }
  return v;
}

// The example: categorical, Bernoulli and Gaussian inputs (4 nodes each), an elementwise
// product, a dense sum with one node.
inline Circuit tiny_circuit() {
  Builder b;
  const int64_t a0 = b.input(0, 4, Dist::Categorical, 3, b.group(normalized(4, 3)));
  const int64_t a1 = b.input(1, 4, Dist::Bernoulli, 0, b.group(probabilities(4)));
  const int64_t g2 = b.input(2, 4, Dist::Gaussian, 0, b.group(gaussian(4)));
  const int64_t p = b.product({a0, a1, g2}, 4);
  b.sum({p}, 1, SumForm::Dense, b.group(normalized(1, 4)));
  return b.c;
}

// Two variables, each with two Bernoulli input vectors of 4 nodes (0,1 on var 0; 2,3 on var 1),
// elementwise products 4 = 0x2 and 5 = 1x3 over {0,1}, then a sum (6) over both products in `form`.
inline Circuit two_products(SumForm form, std::vector<int64_t> edges, std::vector<float> weights, int64_t block = 1,
                     int64_t n = 2) {
  Builder b;
  const int64_t i0 = b.input(0, 4, Dist::Bernoulli, 0, b.group(probabilities(4, 1)));
  const int64_t i1 = b.input(0, 4, Dist::Bernoulli, 0, b.group(probabilities(4, 2)));
  const int64_t i2 = b.input(1, 4, Dist::Bernoulli, 0, b.group(probabilities(4, 3)));
  const int64_t i3 = b.input(1, 4, Dist::Bernoulli, 0, b.group(probabilities(4, 4)));
  const int64_t p = b.product({i0, i2}, 4);
  const int64_t q = b.product({i1, i3}, 4);
  b.sum({p, q}, n, form, b.group(std::move(weights)), std::move(edges), block);
  return b.c;
}

// A hand-written valid plan (input -> product -> sum, one pad row), independent of the compiler.
// Parameters: 0-3 categorical (2 nodes x 2), 4-7 Bernoulli (2 nodes x (1 - p, p)), 8-9 sum weights.
// RAT-SPN's first layers in small: 3 repetitions, each a product of 4 regions (sums over a product
// of two input vectors), over 8 variables with `n` nodes per vector. Each repetition has its own input
// vectors except variable 0's, which all share (a few inputs read by several runs of a split layer);
// with share_all, as in RAT-SPN, all repetitions read the same 8 input vectors. varied: variable v's
// vectors have n + v nodes (category-major, each its own stride), variable 1's is shared too, and
// the region products pick their children's nodes with edges.
inline Circuit repetitions_circuit(int64_t n = 16, bool share_all = false, bool varied = false) {
  Builder b;
  auto size = [&](int64_t v) { return varied ? n + v : n; };
  const int64_t shared = b.input(0, size(0), Dist::Categorical, 3, b.group(normalized(size(0), 3)));
  std::vector<int64_t> common = {shared};
  for (int64_t v = 1; v < 8; ++v)
    common.push_back(b.input(v, size(v), Dist::Categorical, 3, b.group(normalized(size(v), 3, v))));
  const int64_t pairs[3][4][2] = {{{0, 1}, {2, 3}, {4, 5}, {6, 7}},
                                  {{0, 3}, {1, 2}, {4, 7}, {5, 6}},
                                  {{0, 5}, {1, 4}, {2, 7}, {3, 6}}};
  std::vector<int64_t> reps;
  for (const auto& rep : pairs) {
    std::vector<int64_t> in = {shared};
    for (int64_t v = 1; v < 8; ++v)
      in.push_back(share_all || (varied && v == 1)
                       ? common[v]
                       : b.input(v, size(v), Dist::Categorical, 3, b.group(normalized(size(v), 3, v))));
    std::vector<int64_t> regions;
    for (const auto& pr : rep) {
      std::vector<int64_t> edges;  // node i reads node i of each child, wrapped to its size
      for (int64_t i = 0; varied && i < n; ++i) {
        edges.push_back(i % size(pr[0]));
        edges.push_back(i % size(pr[1]));
      }
      const int64_t prod = b.product({in[pr[0]], in[pr[1]]}, n, edges);
      regions.push_back(b.sum({prod}, n, SumForm::Dense, b.group(normalized(n, n))));
    }
    reps.push_back(b.product(regions, n));
  }
  b.sum(reps, 1, SumForm::Dense, b.group(normalized(1, 3 * n)));
  return b.c;
}

inline pcc::Plan tiny_plan() {
  pcc::Plan p;
  p.num_vars = 2;
  p.num_rows = 9;  // 0: one, 1-2: categorical, 3-4: Bernoulli, 5-6: product, 7: sum, 8: pad
  p.var_limit = {2, 2};
  p.root_row = 7;
  p.num_root_nodes = 1;
  p.pad_ranges = {{8, 1}};
  p.vector_rows = {1, 3, 5, 7};
  p.params = {0.25f, 0.75f, 0.5f, 0.5f, 0.9f, 0.1f, 0.1f, 0.9f, 0.3f, 0.7f};
  p.param_group_sizes = {4, 2, 2};
  p.param_map = {{0, 0, 0, 4, 1}, {1, 0, 5, 2, 2}, {2, 0, 8, 2, 1}};
  p.param_valid.assign(p.params.size(), 1);
  p.groups.resize(3);
  p.groups[0].kind = NodeKind::Input;
  p.groups[0].dist = Dist::Categorical;
  p.groups[0].num_nodes = 2;
  p.groups[0].base = 0;
  p.groups[0].width = 2;
  p.groups[1].kind = NodeKind::Input;
  p.groups[1].dist = Dist::Bernoulli;
  p.groups[1].num_nodes = 2;
  p.groups[1].base = 4;
  p.groups[1].width = 2;
  p.groups[2].kind = NodeKind::Sum;
  p.groups[2].num_nodes = 1;
  p.groups[2].base = 8;
  p.groups[2].block_size = 1;
  p.groups[2].child_block_size = 2;
  p.groups[2].block_start = {0, 1};
  p.groups[2].block_offsets = {8};
  pcc::Layer in;
  in.kind = pcc::LayerKind::Input;
  in.inputs.push_back({Dist::Categorical, 1, 2, {0, 0}, {0, 2}, {2, 2}});
  in.inputs.push_back({Dist::Bernoulli, 3, 2, {1, 1}, {4, 6}, {2, 2}});
  pcc::Layer prod;
  prod.kind = pcc::LayerKind::Product;
  prod.products.push_back({5, 2, 2, {1, 3, 2, 4}});
  pcc::Layer sum;
  sum.kind = pcc::LayerKind::Sum;
  // block_size, child_block_size, num_blocks, fanin, child_arity, disjoint_weights, out_rows, child_rows,
  // weight_offsets
  sum.sums.push_back({1, 2, 1, 1, 1, 1, {7}, {5}, {8}});
  p.layers = {in, prod, sum};
  p.stats.input_nodes = 4;
  p.stats.product_nodes = 2;
  p.stats.product_edges = 4;
  p.stats.sum_nodes = 1;
  p.stats.sum_edges = 2;
  p.stats.sum_params = 2;
  p.stats.input_params = 6;
  return p;
}

// tiny_plan() with both input groups fused into the product partition that reads them (plan format
// version 5), two rows more for x's categories: the same values, flows and parameter flows, no input
// values stored.
inline pcc::Plan fused_inputs_tiny() {
  pcc::Plan p = tiny_plan();
  p.x_rows = p.num_rows;  // rows 9-10: x staged by a GPU backend
  p.num_rows += p.num_vars;
  p.layers[0].inputs[0].fused = 1;
  p.layers[0].inputs[1].fused = 1;
  p.layers[1].products[0].fused_inputs = {{0, 0}, {0, 1}};
  return p;
}

}  // namespace pcc_test
