// Tests of partition_blocks: block shapes chosen for dense, sparse and block-form sums, weight blocks
// matching the IR parameters through the parameter runs, fan-in buckets covering every block with
// bounded count, ties sharing one pattern, and alignment of vectors that blocks overhang.
#include <algorithm>
#include <map>

#include "check.h"
#include "core/passes.h"
#include "samples.h"

using namespace pcc_test;

namespace {

// Every IR element of the pattern's group appears exactly once and holds the IR value.
void check_runs(const Circuit& c, const pcc::BlockPattern& p, int64_t group) {
  std::vector<int> seen(c.params[group].size(), 0);
  for (const pcc::ParamRun& r : p.runs) {
    CHECK_EQ(r.group, group);
    for (int64_t k = 0; k < r.length; ++k) {
      seen[r.ir_offset + k] += 1;
      CHECK(p.weights[r.plan_offset + k * r.plan_stride] == c.params[group][r.ir_offset + k]);
    }
  }
  for (int s : seen) CHECK_EQ(s, 1);
  // Total weight mass equals the IR's: padding entries are zero.
  double a = 0, b = 0;
  for (float w : p.weights) a += w;
  for (float w : c.params[group]) b += w;
  CHECK(std::abs(a - b) < 1e-4);
}

}  // namespace

int main() {
  {
    // Dense: 5 sum nodes over children of 3 and 4 nodes.
    Builder b;
    const int64_t x = b.input(0, 3, Dist::Categorical, 2, b.group(normalized(3, 2)));
    const int64_t y = b.input(0, 4, Dist::Categorical, 2, b.group(normalized(4, 2)));
    const int64_t g = b.group(normalized(5, 7));
    b.sum({x, y}, 5, SumForm::Dense, g);
    const pcc::BlockPattern p = pcc::make_block_pattern(b.c, b.c.nodes.back(), 0);
    CHECK_EQ(p.block_size, 8);
    CHECK_EQ(p.child_block_size, 4);
    CHECK_EQ(p.num_sum_blocks, 1);
    CHECK_EQ(p.block_start[1], 2);  // one child block per child
    CHECK_EQ(p.real_edges, 35);
    check_runs(b.c, p, g);
    // A cap of 2 cuts the same sum into 3 x 4 blocks of 2 x 2.
    const pcc::BlockPattern q = pcc::make_block_pattern(b.c, b.c.nodes.back(), 2);
    CHECK_EQ(q.num_sum_blocks, 3);
    CHECK_EQ(q.block_start[1], 4);
    check_runs(b.c, q, g);
    CHECK_THROWS(pcc::make_block_pattern(b.c, b.c.nodes.back(), 3), "power of two");
  }
  {
    // Sparse diagonal over 8 nodes: 2x2 blocks are half full (kept), 4x4 would be a quarter full.
    Builder b;
    const int64_t x = b.input(0, 8, Dist::Bernoulli, 0, b.group(probabilities(8)));
    std::vector<int64_t> e(16);
    for (int64_t i = 0; i < 8; ++i) e[i] = e[8 + i] = i;
    const int64_t g = b.group(std::vector<float>(8, 1.0f));
    b.sum({x}, 8, SumForm::Sparse, g, e);
    const pcc::BlockPattern p = pcc::make_block_pattern(b.c, b.c.nodes.back(), 0);
    CHECK_EQ(p.block_size, 2);
    CHECK_EQ(p.num_sum_blocks, 4);
    CHECK_EQ(p.child.size(), 4u);
    check_runs(b.c, p, g);
  }
  {
    // Block form keeps the caller's blocks and weight order.
    Builder b;
    const int64_t x = b.input(0, 4, Dist::Categorical, 3, b.group(normalized(4, 3)));
    const int64_t y = b.input(0, 4, Dist::Categorical, 3, b.group(normalized(4, 3, 2)));
    // sum blocks 0,1 ; concatenated child blocks 0..3 (two per child)
    const std::vector<int64_t> e = {1, 0, 0, 1, /* child blocks */ 3, 0, 2, 1};
    std::vector<float> w(4 * 2 * 2, 0.5f);
    const int64_t g = b.group(w);
    b.sum({x, y}, 4, SumForm::Block, g, e, 2);
    const pcc::BlockPattern p = pcc::make_block_pattern(b.c, b.c.nodes.back(), 0);
    CHECK_EQ(p.block_size, 2);
    CHECK_EQ(p.num_sum_blocks, 2);
    CHECK_EQ(p.block_start[1], 2);
    // Sum block 0 reads concatenated blocks 0 and 2: child 0 at node 0, child 1 at node 0.
    CHECK_EQ(p.child[0], 0);
    CHECK_EQ(p.child_local[0], 0);
    CHECK_EQ(p.child[1], 1);
    CHECK_EQ(p.child_local[1], 0);
    CHECK_EQ(p.weight_block[0], 1);  // edge 1 is (0, 0)
    check_runs(b.c, p, g);
  }
  {
    // Partitions: products with fan-ins 2, 2, 3 and 8 in at most 2 buckets; tied sums share a pattern;
    // alignment of overhung vectors.
    Builder b;
    std::vector<int64_t> in;
    for (int64_t v = 0; v < 8; ++v) in.push_back(b.input(v, 3, Dist::Categorical, 2, b.group(normalized(3, 2, v))));
    const int64_t p2a = b.product({in[0], in[1]}, 3);
    const int64_t p2b = b.product({in[2], in[3]}, 3);
    const int64_t p3 = b.product({in[4], in[5], in[6]}, 3);
    const int64_t g = b.group(normalized(2, 3));
    const int64_t s1 = b.sum({p2a}, 2, SumForm::Dense, g);
    const int64_t s2 = b.sum({p2b}, 2, SumForm::Dense, g);  // tied to s1
    const int64_t p8 = b.product({s1, s2, p3, in[7]}, 2, {0, 0, 0, 0, 1, 1, 1, 1});
    b.sum({p8}, 1, SumForm::Dense, b.group(normalized(1, 2)));
    const pcc::Layering l = pcc::layerize(b.c);
    const pcc::Partitioning part = pcc::partition_blocks(b.c, l, 0, 2);
    CHECK_EQ(part.pattern_of_group[g], part.pattern_of_group[g]);
    int sum_patterns = 0;
    for (int64_t pg : part.pattern_of_group) sum_patterns += pg >= 0;
    CHECK_EQ(sum_patterns, 2);  // the tied pair shares one
    CHECK_EQ(part.patterns.size(), 2u);
    CHECK_EQ(part.align[p2a], 4);  // read by 4-row child blocks
    CHECK_EQ(part.align[s1], 2);
    for (const auto& layer : part.layers) {
      CHECK(layer.products.size() <= 2);
      for (const auto& pp : layer.products) {
        for (int64_t v : pp.vectors) CHECK(static_cast<int64_t>(b.c.nodes[v].children.size()) <= pp.fanin);
      }
      for (const auto& sp : layer.sums) {
        for (size_t k = 0; k < sp.vector.size(); ++k) {
          const auto& bp = part.patterns[part.pattern_of_group[b.c.nodes[sp.vector[k]].params]];
          CHECK(bp.block_start[sp.block[k] + 1] - bp.block_start[sp.block[k]] <= sp.fanin);
        }
      }
    }
    CHECK_THROWS(pcc::partition_blocks(b.c, l, 0, 0), "max_partitions");
  }
  return report("test_partition_blocks");
}
