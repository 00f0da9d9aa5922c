// Pass 2, layerize: group the reachable vectors into layers that can run as one step.
// A vector's height is 1 + its children's largest height (inputs: 0). All inputs form the first
// layer; each height then gives a product layer followed by a sum layer. Vectors in one layer never
// depend on each other, so a backend may run a layer's partitions in any order.
#include <algorithm>

#include "core/passes.h"

namespace pcc {

Layering layerize(const Circuit& c) {
  const int64_t n = static_cast<int64_t>(c.nodes.size());
  const std::vector<bool> live = reachable(c);
  Layering out;
  out.height.assign(n, -1);
  int64_t max_height = 0;
  // Ids are topological (verify checked it), so one forward sweep sees children first.
  for (int64_t i = 0; i < n; ++i) {
    if (!live[i]) continue;
    const NodeVector& v = c.nodes[i];
    int64_t h = 0;
    if (v.kind != NodeKind::Input) {
      for (int64_t ch : v.children) h = std::max(h, out.height[ch] + 1);
    }
    out.height[i] = h;
    max_height = std::max(max_height, h);
  }
  // Bucket by (height, kind): index 2*h + (kind == Sum).
  std::vector<std::vector<int64_t>> bucket(2 * (max_height + 1));
  std::vector<int64_t> inputs;
  for (int64_t i = 0; i < n; ++i) {
    if (out.height[i] < 0) continue;
    const NodeKind k = c.nodes[i].kind;
    if (k == NodeKind::Input) {
      inputs.push_back(i);
    } else {
      bucket[2 * out.height[i] + (k == NodeKind::Sum ? 1 : 0)].push_back(i);
    }
  }
  if (!inputs.empty()) out.layers.push_back({LayerKind::Input, std::move(inputs)});
  for (size_t b = 0; b < bucket.size(); ++b) {
    if (bucket[b].empty()) continue;
    out.layers.push_back({b % 2 ? LayerKind::Sum : LayerKind::Product, std::move(bucket[b])});
  }
  return out;
}

}  // namespace pcc
