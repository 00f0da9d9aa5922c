// Pass 3, partition_blocks: cut each layer into partitions a kernel can run as one launch.
// Sum vectors become node blocks (block_pattern.cpp); blocks of one shape are bucketed by fan-in
// (number of child blocks) and each bucket pads to its largest fan-in, as PyJuice's partitions do.
// The buckets are chosen by dynamic programming to minimise the padded work, with at most
// `max_partitions` buckets per shape, so padding stays bounded without a launch per fan-in.
#include <algorithm>
#include <limits>
#include <map>

#include "core/passes.h"
#include "pcc/error.h"

namespace pcc {
namespace {

// Splits the sorted distinct fan-ins into at most max_parts contiguous buckets minimising
// sum(weight * bucket's largest fan-in). Returns the upper fan-in of each bucket.
std::vector<int64_t> fanin_buckets(const std::map<int64_t, int64_t>& weight_of_fanin, int64_t max_parts) {
  std::vector<int64_t> f, w;
  for (auto [fanin, weight] : weight_of_fanin) {
    f.push_back(fanin);
    w.push_back(weight);
  }
  const int64_t D = static_cast<int64_t>(f.size());
  const int64_t P = std::max<int64_t>(1, std::min(max_parts, D));
  std::vector<int64_t> prefix(D + 1, 0);
  for (int64_t i = 0; i < D; ++i) prefix[i + 1] = prefix[i] + w[i];
  const int64_t inf = std::numeric_limits<int64_t>::max() / 4;
  // cost[p][i]: best cost of the first i fan-ins in p buckets; cut[p][i]: start of the last bucket.
  std::vector<std::vector<int64_t>> cost(P + 1, std::vector<int64_t>(D + 1, inf)), cut = cost;
  cost[0][0] = 0;
  for (int64_t p = 1; p <= P; ++p) {
    for (int64_t i = 1; i <= D; ++i) {
      for (int64_t s = p - 1; s < i; ++s) {
        if (cost[p - 1][s] >= inf) continue;
        const int64_t c = cost[p - 1][s] + (prefix[i] - prefix[s]) * f[i - 1];
        if (c < cost[p][i]) {
          cost[p][i] = c;
          cut[p][i] = s;
        }
      }
    }
  }
  int64_t best_p = 1;
  for (int64_t p = 1; p <= P; ++p) {
    if (cost[p][D] < cost[best_p][D]) best_p = p;
  }
  std::vector<int64_t> uppers;
  for (int64_t p = best_p, i = D; p > 0; i = cut[p][i], --p) uppers.push_back(f[i - 1]);
  std::reverse(uppers.begin(), uppers.end());
  return uppers;
}

int64_t bucket_of(const std::vector<int64_t>& uppers, int64_t fanin) {
  return std::lower_bound(uppers.begin(), uppers.end(), fanin) - uppers.begin();
}

Partitioning::Layer partition_inputs(const Circuit& c, const std::vector<int64_t>& vectors) {
  Partitioning::Layer out;
  out.kind = LayerKind::Input;
  for (Dist d : {Dist::Categorical, Dist::Bernoulli, Dist::Gaussian}) {
    Partitioning::InputPart part;
    part.dist = d;
    for (int64_t v : vectors) {
      if (c.nodes[v].dist == d) part.vectors.push_back(v);
    }
    if (!part.vectors.empty()) out.inputs.push_back(std::move(part));
  }
  return out;
}

Partitioning::Layer partition_products(const Circuit& c, const std::vector<int64_t>& vectors,
                                       int64_t max_partitions) {
  std::map<int64_t, int64_t> weight;
  for (int64_t v : vectors) weight[c.nodes[v].children.size()] += c.nodes[v].num_nodes;
  const std::vector<int64_t> uppers = fanin_buckets(weight, max_partitions);
  Partitioning::Layer out;
  out.kind = LayerKind::Product;
  out.products.resize(uppers.size());
  for (size_t i = 0; i < uppers.size(); ++i) out.products[i].fanin = uppers[i];
  for (int64_t v : vectors) {
    out.products[bucket_of(uppers, c.nodes[v].children.size())].vectors.push_back(v);
  }
  return out;
}

Partitioning::Layer partition_sums(const Circuit& c, const std::vector<int64_t>& vectors,
                                   int64_t max_partitions, const Partitioning& p) {
  // Blocks grouped by shape (b, cb); within a shape, bucketed by fan-in.
  std::map<std::pair<int64_t, int64_t>, std::map<int64_t, int64_t>> weight;
  for (int64_t v : vectors) {
    const BlockPattern& bp = p.patterns[p.pattern_of_group[c.nodes[v].params]];
    auto& w = weight[{bp.block_size, bp.child_block_size}];
    for (int64_t i = 0; i < bp.num_sum_blocks; ++i) w[bp.block_start[i + 1] - bp.block_start[i]] += 1;
  }
  Partitioning::Layer out;
  out.kind = LayerKind::Sum;
  std::map<std::pair<int64_t, int64_t>, std::pair<size_t, std::vector<int64_t>>> first_and_uppers;
  for (auto& [shape, w] : weight) {
    std::vector<int64_t> uppers = fanin_buckets(w, max_partitions);
    first_and_uppers[shape] = {out.sums.size(), uppers};
    for (int64_t u : uppers) {
      Partitioning::SumPart part;
      part.block_size = shape.first;
      part.child_block_size = shape.second;
      part.fanin = u;
      out.sums.push_back(std::move(part));
    }
  }
  for (int64_t v : vectors) {
    const BlockPattern& bp = p.patterns[p.pattern_of_group[c.nodes[v].params]];
    const auto& [first, uppers] = first_and_uppers[{bp.block_size, bp.child_block_size}];
    for (int64_t i = 0; i < bp.num_sum_blocks; ++i) {
      Partitioning::SumPart& part = out.sums[first + bucket_of(uppers, bp.block_start[i + 1] - bp.block_start[i])];
      part.vector.push_back(v);
      part.block.push_back(i);
    }
  }
  return out;
}

}  // namespace

Partitioning partition_blocks(const Circuit& c, const Layering& l, int64_t block_size,
                              int64_t max_partitions) {
  PCC_CHECK(max_partitions >= 1, "max_partitions must be at least 1, got ", max_partitions);
  Partitioning p;
  p.pattern_of_group.assign(c.params.size(), -1);
  p.align.assign(c.nodes.size(), 1);
  // Patterns first: one per tied parameter group, shared by its vectors.
  for (const auto& layer : l.layers) {
    if (layer.kind != LayerKind::Sum) continue;
    for (int64_t v : layer.vectors) {
      const NodeVector& nv = c.nodes[v];
      if (p.pattern_of_group[nv.params] < 0) {
        p.pattern_of_group[nv.params] = static_cast<int64_t>(p.patterns.size());
        p.patterns.push_back(make_block_pattern(c, nv, block_size));
      }
      const BlockPattern& bp = p.patterns[p.pattern_of_group[nv.params]];
      // Blocks may overhang a vector's end: round its rows up so the overhang is padding.
      p.align[v] = std::max(p.align[v], bp.block_size);
      for (int64_t ch : nv.children) p.align[ch] = std::max(p.align[ch], bp.child_block_size);
    }
  }
  for (const auto& layer : l.layers) {
    switch (layer.kind) {
      case LayerKind::Input: p.layers.push_back(partition_inputs(c, layer.vectors)); break;
      case LayerKind::Product: p.layers.push_back(partition_products(c, layer.vectors, max_partitions)); break;
      case LayerKind::Sum: p.layers.push_back(partition_sums(c, layer.vectors, max_partitions, p)); break;
    }
  }
  return p;
}

}  // namespace pcc
