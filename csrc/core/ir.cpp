// IR helpers shared by the front-end, the compiler and the file readers: enum names, parameter and
// edge counts, reachability and the circuit's statistics (ir.h). File I/O lives in ir_io.cpp.
//
// These functions may run on circuits that have not been verified yet (Python's stats() before
// compile), so they skip out-of-range child ids instead of trusting them.
#include <algorithm>

#include "pcc/ir.h"

namespace pcc {

const char* to_string(NodeKind k) {
  switch (k) {
    case NodeKind::Input: return "input";
    case NodeKind::Product: return "product";
    case NodeKind::Sum: return "sum";
  }
  return "unknown";
}

const char* to_string(Dist d) {
  switch (d) {
    case Dist::Categorical: return "categorical";
    case Dist::Bernoulli: return "bernoulli";
    case Dist::Gaussian: return "gaussian";
  }
  return "unknown";
}

const char* to_string(SumForm f) {
  switch (f) {
    case SumForm::Dense: return "dense";
    case SumForm::Sparse: return "sparse";
    case SumForm::Block: return "block";
  }
  return "unknown";
}

int64_t child_node_count(const Circuit& c, const NodeVector& v) {
  const int64_t n = static_cast<int64_t>(c.nodes.size());
  int64_t total = 0;
  for (int64_t ch : v.children) {
    if (ch >= 0 && ch < n) total += c.nodes[ch].num_nodes;
  }
  return total;
}

int64_t sum_edge_count(const Circuit& c, const NodeVector& v) {
  if (v.kind != NodeKind::Sum) return 0;
  switch (v.form) {
    case SumForm::Dense: return v.num_nodes * child_node_count(c, v);
    case SumForm::Sparse: return v.num_sum_edges();
    case SumForm::Block: return v.num_sum_edges() * v.block_size * v.block_size;
  }
  return 0;
}

int64_t expected_param_count(const Circuit& c, const NodeVector& v) {
  switch (v.kind) {
    case NodeKind::Input:
      switch (v.dist) {
        case Dist::Categorical: return v.num_nodes * v.num_cats;
        case Dist::Bernoulli: return v.num_nodes;
        case Dist::Gaussian: return 2 * v.num_nodes;
      }
      return 0;
    case NodeKind::Sum: return sum_edge_count(c, v);
    case NodeKind::Product: return 0;
  }
  return 0;
}

std::vector<bool> reachable(const Circuit& c) {
  const int64_t n = static_cast<int64_t>(c.nodes.size());
  std::vector<bool> live(n, false);
  if (c.root < 0 || c.root >= n) return live;
  live[c.root] = true;
  // Children have smaller ids, so one backward sweep from the root marks everything it reaches.
  // A child id that is not smaller (an unverified circuit) is skipped rather than followed.
  for (int64_t i = c.root; i >= 0; --i) {
    if (!live[i]) continue;
    for (int64_t ch : c.nodes[i].children) {
      if (ch >= 0 && ch < i) live[ch] = true;
    }
  }
  return live;
}

Stats circuit_stats(const Circuit& c) {
  const std::vector<bool> live = reachable(c);
  Stats s;
  for (size_t i = 0; i < c.nodes.size(); ++i) {
    if (!live[i]) continue;
    const NodeVector& v = c.nodes[i];
    switch (v.kind) {
      case NodeKind::Input:
        s.input_nodes += v.num_nodes;
        s.input_params += expected_param_count(c, v);
        break;
      case NodeKind::Product:
        s.product_nodes += v.num_nodes;
        s.product_edges += v.num_nodes * static_cast<int64_t>(v.children.size());
        break;
      case NodeKind::Sum: {
        s.sum_nodes += v.num_nodes;
        const int64_t e = sum_edge_count(c, v);
        s.sum_edges += e;
        s.sum_params += e;  // one weight per edge
        break;
      }
    }
  }
  return s;
}

int64_t num_vars(const Circuit& c) {
  const std::vector<bool> live = reachable(c);
  int64_t largest = -1;
  for (size_t i = 0; i < c.nodes.size(); ++i) {
    if (live[i] && c.nodes[i].kind == NodeKind::Input) largest = std::max(largest, c.nodes[i].var);
  }
  return largest + 1;
}

}  // namespace pcc
