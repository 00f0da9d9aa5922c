// Random valid circuits for the C++ tests of the backends (test_cpu_backward, test_cuda_backend): dense,
// sparse and block sums, tied sum and input vectors, products with and without edges, all three
// distributions. Deterministic given pcc_test::rng's seed.
#pragma once
#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

#include "samples.h"

namespace pcc_test {

inline std::mt19937_64 rng;
inline double uni(double a, double b) { return std::uniform_real_distribution<double>(a, b)(rng); }
inline int64_t randint(int64_t n) { return std::uniform_int_distribution<int64_t>(0, n - 1)(rng); }

inline std::vector<float> normalize_rows(std::vector<double> w, const std::vector<int64_t>& node, int64_t n) {
  std::vector<double> tot(n, 0.0);
  for (size_t e = 0; e < w.size(); ++e) tot[node[e]] += w[e];
  std::vector<float> out(w.size());
  for (size_t e = 0; e < w.size(); ++e) out[e] = float(w[e] / tot[node[e]]);
  return out;
}

inline int64_t random_sum(Builder& b, const std::vector<int64_t>& children, int64_t n, int form_pick = -1,
                   int64_t tie_with = -1) {
  if (tie_with >= 0) {
    const NodeVector& t = b.c.nodes[tie_with];
    return b.sum(children, t.num_nodes, t.form, t.params, t.sum_edges, t.block_size);
  }
  int64_t C = 0;
  for (int64_t ch : children) C += b.c.nodes[ch].num_nodes;
  const int form = form_pick >= 0 ? form_pick : static_cast<int>(randint(3));
  std::vector<double> w;
  std::vector<int64_t> node, edges;
  if (form == 0) {
    for (int64_t i = 0; i < n; ++i)
      for (int64_t c = 0; c < C; ++c) w.push_back(uni(0.1, 1.0)), node.push_back(i);
    return b.sum(children, n, SumForm::Dense, b.group(normalize_rows(w, node, n)));
  }
  if (form == 1) {
    std::vector<int64_t> src, dst;
    for (int64_t i = 0; i < n; ++i) {
      bool any = false;
      for (int64_t c = 0; c < C; ++c)
        if (uni(0, 1) < 0.5 || (!any && c == C - 1)) {
          src.push_back(i), dst.push_back(c), any = true;
          w.push_back(uni(0.1, 1.0)), node.push_back(i);
        }
    }
    edges = src;
    edges.insert(edges.end(), dst.begin(), dst.end());
    return b.sum(children, n, SumForm::Sparse, b.group(normalize_rows(w, node, n)), edges);
  }
  const int64_t bs = 2, nb = n / bs, cblocks = C / bs;
  std::vector<int64_t> src, dst;
  for (int64_t s = 0; s < nb; ++s) {
    bool any = false;
    for (int64_t c = 0; c < cblocks; ++c)
      if (uni(0, 1) < 0.6 || (!any && c == cblocks - 1)) src.push_back(s), dst.push_back(c), any = true;
  }
  for (size_t e = 0; e < src.size(); ++e)
    for (int64_t r = 0; r < bs; ++r)
      for (int64_t c = 0; c < bs; ++c) w.push_back(uni(0.1, 1.0)), node.push_back(src[e] * bs + r);
  edges = src;
  edges.insert(edges.end(), dst.begin(), dst.end());
  return b.sum(children, n, SumForm::Block, b.group(normalize_rows(w, node, n)), edges, bs);
}

inline int64_t random_input(Builder& b, int64_t var, int64_t n, Dist d, int64_t cats, int64_t tie_group) {
  if (tie_group >= 0) return b.input(var, n, d, cats, tie_group);
  std::vector<float> p;
  if (d == Dist::Categorical) {
    std::vector<double> w;
    std::vector<int64_t> node;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t k = 0; k < cats; ++k) w.push_back(uni(0.05, 1.0)), node.push_back(i);
    p = normalize_rows(w, node, n);
  } else if (d == Dist::Bernoulli) {
    for (int64_t i = 0; i < n; ++i) p.push_back(float(uni(0.1, 0.9)));
  } else {
    for (int64_t i = 0; i < n; ++i) p.push_back(float(uni(-1, 1)));
    for (int64_t i = 0; i < n; ++i) p.push_back(float(uni(0.5, 1.5)));
  }
  return b.input(var, n, d, cats, b.group(p));
}

struct VarInfo {
  Dist dist;
  int64_t cats;
};

// varied_inputs: input vectors of 1 .. 2n nodes (different node counts per parameter group) in place
// of n, under dense and sparse sums only (block sums need children in whole blocks).
inline Circuit random_circuit(const std::vector<VarInfo>& vars, int64_t roots, int64_t n = 4,
                              bool varied_inputs = false) {
  Builder b;
  std::vector<int64_t> leaf;
  for (size_t v = 0; v < vars.size(); ++v) {
    const int64_t m = varied_inputs ? 1 + randint(2 * n) : n;
    const int64_t a = random_input(b, v, m, vars[v].dist, vars[v].cats, -1);
    const bool tie = uni(0, 1) < 0.5;
    const int64_t c = random_input(b, v, m, vars[v].dist, vars[v].cats, tie ? b.c.nodes[a].params : -1);
    leaf.push_back(random_sum(b, {a, c}, n, static_cast<int>(v % (varied_inputs ? 2 : 3))));
  }
  std::vector<int64_t> level = leaf;
  while (level.size() > 1) {
    std::vector<int64_t> next;
    for (size_t i = 0; i + 1 < level.size(); i += 2) {
      const int64_t p = b.product({level[i], level[i + 1]}, n);
      std::vector<int64_t> edges;
      for (int64_t k = 0; k < n; ++k) edges.push_back(randint(n)), edges.push_back(randint(n));
      const int64_t q = b.product({level[i], level[i + 1]}, n, edges);
      const int64_t t = random_sum(b, {p, q}, n);
      const int64_t t2 = random_sum(b, {p, q}, n, -1, t);  // tied copy
      next.push_back(random_sum(b, {t, t2}, n));
    }
    if (level.size() % 2) next.push_back(level.back());
    level = next;
  }
  random_sum(b, {level[0]}, roots, 0);
  return b.c;
}

inline std::vector<VarInfo> random_vars(int64_t V, bool discrete_only) {
  std::vector<VarInfo> vars;
  for (int64_t v = 0; v < V; ++v) {
    const int64_t pick = randint(discrete_only ? 2 : 3);
    vars.push_back({pick == 0 ? Dist::Categorical : pick == 1 ? Dist::Bernoulli : Dist::Gaussian,
                    pick == 0 ? 2 + randint(4) : 0});
  }
  return vars;
}

}  // namespace pcc_test
