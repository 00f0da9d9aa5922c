// How one sum vector's connections become dense weight blocks (used by partition_blocks).
// A block connects `b` consecutive sum nodes to `cb` consecutive nodes of one child; its weights are a
// [b, cb] matrix with zeros where the circuit has no edge. Block sizes are powers of two so that
// the GPU kernels can map blocks onto tensor-core tiles; padding is bounded by the choice below.
#include <algorithm>
#include <numeric>
#include <tuple>

#include "core/passes.h"
#include "pcc/error.h"

namespace pcc {
namespace {

constexpr int64_t kMaxAutoBlock = 32;

int64_t pow2_ceil(int64_t x) {
  int64_t p = 1;
  while (p < x) p <<= 1;
  return p;
}

struct ChildInfo {
  std::vector<int64_t> size, offset;  // per child: node count, offset in the concatenation
  int64_t max_size = 0;
};

ChildInfo child_info(const Circuit& c, const NodeVector& v) {
  ChildInfo ci;
  int64_t off = 0;
  for (int64_t ch : v.children) {
    const int64_t n = c.nodes[ch].num_nodes;
    ci.size.push_back(n);
    ci.offset.push_back(off);
    off += n;
    ci.max_size = std::max(ci.max_size, n);
  }
  return ci;
}

// Which child a concatenated index falls into (offsets are sorted).
int64_t child_of(const ChildInfo& ci, int64_t concat) {
  auto it = std::upper_bound(ci.offset.begin(), ci.offset.end(), concat);
  return static_cast<int64_t>(it - ci.offset.begin()) - 1;
}

void finish_csr(BlockPattern& p, std::vector<int64_t>& counts) {
  p.block_start.assign(p.num_sum_blocks + 1, 0);
  for (int64_t i = 0; i < p.num_sum_blocks; ++i) p.block_start[i + 1] = p.block_start[i] + counts[i];
}

BlockPattern dense_pattern(const Circuit& c, const NodeVector& v, int64_t block_size) {
  const ChildInfo ci = child_info(c, v);
  const int64_t n = v.num_nodes, C = ci.offset.back() + ci.size.back();
  const int64_t cap = block_size > 0 ? block_size : kMaxAutoBlock;
  BlockPattern p;
  p.block_size = std::min(cap, pow2_ceil(n));
  p.child_block_size = std::min(cap, pow2_ceil(ci.max_size));
  const int64_t b = p.block_size, cb = p.child_block_size;
  p.num_sum_blocks = (n + b - 1) / b;
  // Every sum block reads every child block: the same list for each block.
  std::vector<int64_t> row_child, row_local;
  for (size_t j = 0; j < ci.size.size(); ++j) {
    for (int64_t k = 0; k < ci.size[j]; k += cb) {
      row_child.push_back(static_cast<int64_t>(j));
      row_local.push_back(k);
    }
  }
  const int64_t fanin = static_cast<int64_t>(row_child.size());
  std::vector<int64_t> counts(p.num_sum_blocks, fanin);
  finish_csr(p, counts);
  p.weights.assign(p.num_sum_blocks * fanin * b * cb, 0.0f);
  const std::vector<float>& w = c.params[v.params];
  for (int64_t sb = 0; sb < p.num_sum_blocks; ++sb) {
    for (int64_t f = 0; f < fanin; ++f) {
      const int64_t j = row_child[f], k = row_local[f], wb = sb * fanin + f;
      p.child.push_back(j);
      p.child_local.push_back(k);
      p.weight_block.push_back(wb);
      const int64_t cols = std::min(cb, ci.size[j] - k);
      for (int64_t r = 0; r < b && sb * b + r < n; ++r) {
        const int64_t node = sb * b + r;
        const int64_t ir = node * C + ci.offset[j] + k, plan = (wb * b + r) * cb;
        std::copy_n(w.begin() + ir, cols, p.weights.begin() + plan);
        p.runs.push_back({v.params, ir, plan, cols, 1});
      }
    }
  }
  p.real_edges = n * C;
  return p;
}

// Node-level edges: the largest power-of-two block (up to the cap) whose blocks are at least half
// full on average, so padding never more than doubles the work.
BlockPattern sparse_pattern(const Circuit& c, const NodeVector& v, int64_t block_size) {
  const ChildInfo ci = child_info(c, v);
  const int64_t E = v.num_sum_edges();
  const int64_t* src = v.sum_edges.data();
  const int64_t* dst = v.sum_edges.data() + E;
  const int64_t cap = block_size > 0 ? block_size : kMaxAutoBlock;
  std::vector<int64_t> edge_child(E), edge_local(E);
  for (int64_t e = 0; e < E; ++e) {
    edge_child[e] = child_of(ci, dst[e]);
    edge_local[e] = dst[e] - ci.offset[edge_child[e]];
  }
  int64_t b = 1;
  std::vector<int64_t> keys(E), best_keys;
  for (int64_t cand = 1; cand <= cap && cand <= pow2_ceil(std::max(v.num_nodes, ci.max_size)); cand <<= 1) {
    // Key of the block pair: (sum block, child, child block) packed; child blocks per child fit in
    // max_size / cand + 1.
    const int64_t per_child = ci.max_size / cand + 1, children = static_cast<int64_t>(ci.size.size());
    for (int64_t e = 0; e < E; ++e) {
      keys[e] = ((src[e] / cand) * children + edge_child[e]) * per_child + edge_local[e] / cand;
    }
    std::vector<int64_t> uniq = keys;
    std::sort(uniq.begin(), uniq.end());
    const int64_t pairs = std::unique(uniq.begin(), uniq.end()) - uniq.begin();
    if (pairs * cand * cand > 2 * E) break;
    b = cand;
  }
  BlockPattern p;
  p.block_size = p.child_block_size = b;
  p.num_sum_blocks = (v.num_nodes + b - 1) / b;
  // Order edges by (sum block, child, child block) so each sum block's connections are contiguous.
  std::vector<int64_t> order(E);
  std::iota(order.begin(), order.end(), 0);
  auto key = [&](int64_t e) {
    return std::make_tuple(src[e] / b, edge_child[e], edge_local[e] / b);
  };
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t z) { return key(a) < key(z); });
  std::vector<int64_t> counts(p.num_sum_blocks, 0);
  const std::vector<float>& w = c.params[v.params];
  for (int64_t i = 0; i < E; ++i) {
    const int64_t e = order[i];
    if (i == 0 || key(e) != key(order[i - 1])) {
      const int64_t wb = static_cast<int64_t>(p.child.size());
      p.child.push_back(edge_child[e]);
      p.child_local.push_back(edge_local[e] / b * b);
      p.weight_block.push_back(wb);
      counts[src[e] / b] += 1;
      p.weights.resize(p.weights.size() + b * b, 0.0f);
    }
    const int64_t wb = p.weight_block.back();
    const int64_t plan = (wb * b + src[e] % b) * b + edge_local[e] % b;
    p.weights[plan] = w[e];
    p.runs.push_back({v.params, e, plan, 1, 1});
  }
  finish_csr(p, counts);
  p.real_edges = E;
  return p;
}

// Block-level edges: the caller's blocks are used as they are; weights keep the IR's [E, b, b] order.
BlockPattern block_form_pattern(const Circuit& c, const NodeVector& v) {
  const ChildInfo ci = child_info(c, v);
  const int64_t E = v.num_sum_edges(), b = v.block_size;
  const int64_t* src = v.sum_edges.data();
  const int64_t* dst = v.sum_edges.data() + E;
  BlockPattern p;
  p.block_size = p.child_block_size = b;
  p.num_sum_blocks = v.num_nodes / b;
  std::vector<int64_t> order(E);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t z) { return std::make_pair(src[a], dst[a]) < std::make_pair(src[z], dst[z]); });
  std::vector<int64_t> counts(p.num_sum_blocks, 0);
  for (int64_t e : order) {
    const int64_t j = child_of(ci, dst[e] * b);
    p.child.push_back(j);
    p.child_local.push_back(dst[e] * b - ci.offset[j]);
    p.weight_block.push_back(e);
    counts[src[e]] += 1;
  }
  finish_csr(p, counts);
  p.weights = c.params[v.params];
  p.runs.push_back({v.params, 0, 0, E * b * b, 1});
  p.real_edges = E * b * b;
  return p;
}

}  // namespace

BlockPattern make_block_pattern(const Circuit& c, const NodeVector& v, int64_t block_size) {
  PCC_CHECK(block_size == 0 || (block_size > 0 && (block_size & (block_size - 1)) == 0),
            "block_size must be a power of two, got ", block_size);
  switch (v.form) {
    case SumForm::Dense: return dense_pattern(c, v, block_size);
    case SumForm::Sparse: return sparse_pattern(c, v, block_size);
    case SumForm::Block: return block_form_pattern(c, v);
  }
  raise("unknown sum form");
}

}  // namespace pcc
