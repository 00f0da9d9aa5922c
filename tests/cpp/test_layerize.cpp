// Tests of the layerize pass: heights, layer order (inputs, then per height products before sums),
// unreachable vectors left out.
#include "check.h"
#include "core/passes.h"
#include "samples.h"

using namespace pcc_test;

int main() {
  {
    Builder b;
    const int64_t g2 = b.group(normalized(2, 2));
    const int64_t i0 = b.input(0, 2, Dist::Categorical, 2, g2);
    const int64_t i1 = b.input(1, 2, Dist::Bernoulli, 0, b.group(probabilities(2)));
    const int64_t i2 = b.input(2, 2, Dist::Gaussian, 0, b.group(gaussian(2)));
    const int64_t p = b.product({i0, i1}, 2);                          // height 1
    const int64_t s = b.sum({p}, 2, SumForm::Dense, b.group(normalized(2, 2)));  // height 2
    const int64_t q = b.product({p, i2}, 2);                           // height 2, beside s
    const int64_t unused = b.input(3, 2, Dist::Categorical, 2, g2);
    const int64_t t = b.product({s, i2}, 2);                           // height 3
    const int64_t root = b.sum({t, q}, 1, SumForm::Dense, b.group(normalized(1, 4)));  // height 4
    b.c.root = root;
    const pcc::Layering l = pcc::layerize(b.c);
    CHECK_EQ(l.layers.size(), 6u);
    CHECK(l.layers[0].kind == pcc::LayerKind::Input);
    CHECK((l.layers[0].vectors == std::vector<int64_t>{i0, i1, i2}));
    CHECK(l.layers[1].kind == pcc::LayerKind::Product && l.layers[1].vectors == std::vector<int64_t>{p});
    // Same height: the product layer comes before the sum layer.
    CHECK(l.layers[2].kind == pcc::LayerKind::Product && l.layers[2].vectors == std::vector<int64_t>{q});
    CHECK(l.layers[3].kind == pcc::LayerKind::Sum && l.layers[3].vectors == std::vector<int64_t>{s});
    CHECK(l.layers[4].kind == pcc::LayerKind::Product && l.layers[4].vectors == std::vector<int64_t>{t});
    CHECK(l.layers[5].kind == pcc::LayerKind::Sum && l.layers[5].vectors == std::vector<int64_t>{root});
    CHECK_EQ(l.height[unused], -1);
    CHECK_EQ(l.height[root], 4);
    CHECK_EQ(l.height[q], 2);
    // Every vector's children sit in strictly earlier layers.
    std::vector<int64_t> layer_of(b.c.nodes.size(), -1);
    for (size_t k = 0; k < l.layers.size(); ++k) {
      for (int64_t v : l.layers[k].vectors) layer_of[v] = static_cast<int64_t>(k);
    }
    for (size_t v = 0; v < b.c.nodes.size(); ++v) {
      if (layer_of[v] < 0) continue;
      for (int64_t ch : b.c.nodes[v].children) CHECK(layer_of[ch] >= 0 && layer_of[ch] < layer_of[v]);
    }
  }
  {
    // A root that is an input vector: one layer.
    Builder b;
    b.input(0, 3, Dist::Categorical, 4, b.group(normalized(3, 4)));
    const pcc::Layering l = pcc::layerize(b.c);
    CHECK_EQ(l.layers.size(), 1u);
  }
  return report("test_layerize");
}
