// Tests of plan_memory through the whole pipeline: rows of vectors are disjoint and in range, pad
// rows cover every overhang, product partitions are contiguous, every reachable parameter group is
// mapped exactly once with its IR values, variable limits follow the inputs, and Categorical groups
// are category-major exactly as CompileOptions::category_major_cats asks.
#include <algorithm>
#include <map>

#include "check.h"
#include "pcc/compiler.h"
#include "random_circuits.h"
#include "samples.h"

using namespace pcc_test;

namespace {

int g_tied_partitions = 0;  // sum partitions seen holding two tied vectors

// The group layouts, param_valid and disjoint_weights against the IR.
void check_groups(const Circuit& c, const pcc::Plan& p) {
  const std::vector<bool> live = pcc::reachable(c);
  CHECK_EQ(p.groups.size(), c.params.size());
  CHECK_EQ(p.param_valid.size(), p.params.size());
  std::vector<bool> used(c.params.size(), false);
  for (size_t v = 0; v < c.nodes.size(); ++v) {
    if (live[v] && c.nodes[v].params >= 0) used[c.nodes[v].params] = true;
  }
  int64_t real_slots = 0;
  std::vector<uint8_t> expect_valid(p.params.size(), 0);
  for (const pcc::ParamRun& r : p.param_map) {
    for (int64_t k = 0; k < r.length; ++k) expect_valid[r.plan_offset + k * r.plan_stride] = 1;
  }
  for (size_t v = 0; v < c.nodes.size(); ++v) {
    const NodeVector& nv = c.nodes[v];
    if (!live[v] || nv.params < 0) continue;
    const pcc::GroupLayout& gl = p.groups[nv.params];
    CHECK(gl.kind == nv.kind);
    CHECK_EQ(gl.num_nodes, nv.num_nodes);
    if (nv.kind != NodeKind::Input) continue;
    CHECK(gl.dist == nv.dist);
    CHECK_EQ(gl.width, pcc::param_width(nv.dist, nv.num_cats));
    for (int64_t i = 0; i < gl.num_nodes; ++i) {
      const int64_t o = gl.base + i * gl.width;
      if (nv.dist == Dist::Bernoulli) {  // (1 - p, p), both real
        CHECK(p.params[o + 1] == c.params[nv.params][i]);
        CHECK(p.params[o] == static_cast<float>(1.0 - double(p.params[o + 1])));
        expect_valid[o] = 1;
      } else if (nv.dist == Dist::Gaussian) {  // (mean, std, spare)
        CHECK(p.params[o] == c.params[nv.params][i]);
        CHECK(p.params[o + 1] == c.params[nv.params][nv.num_nodes + i]);
        CHECK(p.params[o + 2] == 0.0f);
        CHECK_EQ(p.param_valid[o + 2], 0);
      }
    }
  }
  for (size_t g = 0; g < c.params.size(); ++g) {
    if (!used[g]) {
      CHECK_EQ(p.groups[g].num_nodes, 0);
      CHECK_THROWS(pcc::read_group(p, p.params.data(), static_cast<int64_t>(g)), "not used");
      continue;
    }
    CHECK(pcc::read_group(p, p.params.data(), static_cast<int64_t>(g)) == c.params[g]);
    real_slots += static_cast<int64_t>(c.params[g].size());
    if (p.groups[g].kind == NodeKind::Input && p.groups[g].dist == Dist::Bernoulli) real_slots += p.groups[g].num_nodes;
  }
  CHECK(p.param_valid == expect_valid);
  int64_t valid = 0;
  for (uint8_t b : p.param_valid) valid += b;
  CHECK_EQ(valid, real_slots);
  // write_group round-trips every group (complements included) into a fresh buffer.
  std::vector<float> copy(p.params.size(), 0.0f);
  for (size_t g = 0; g < c.params.size(); ++g) {
    if (used[g]) pcc::write_group(p, copy.data(), static_cast<int64_t>(g), c.params[g]);
  }
  for (size_t k = 0; k < copy.size(); ++k) {
    if (p.param_valid[k]) CHECK(copy[k] == p.params[k]);
  }
  // disjoint_weights is 0 exactly for the sum partitions holding two vectors of one group.
  for (const pcc::Layer& l : p.layers) {
    for (const auto& sp : l.sums) {
      std::vector<int64_t> groups;
      for (size_t v = 0; v < c.nodes.size(); ++v) {
        const int64_t r = p.vector_rows[v];
        if (r < 0 || c.nodes[v].kind != NodeKind::Sum) continue;
        for (int64_t o : sp.out_rows) {
          if (o < r + c.nodes[v].num_nodes && r < o + sp.block_size) {
            groups.push_back(c.nodes[v].params);
            break;
          }
        }
      }
      std::sort(groups.begin(), groups.end());
      const bool tied = std::adjacent_find(groups.begin(), groups.end()) != groups.end();
      g_tied_partitions += tied;
      CHECK_EQ(sp.disjoint_weights, tied ? 0 : 1);
    }
  }
}

void check_plan(const Circuit& c, const pcc::Plan& p) {
  std::vector<int> owner(p.num_rows, -1);
  owner[pcc::Plan::kOneRow] = owner[pcc::Plan::kZeroRow] = -2;
  for (size_t v = 0; v < c.nodes.size(); ++v) {
    const int64_t r = p.vector_rows[v];
    if (r < 0) continue;
    for (int64_t i = 0; i < c.nodes[v].num_nodes; ++i) {
      CHECK(r + i < p.num_rows);
      CHECK_EQ(owner[r + i], -1);
      owner[r + i] = static_cast<int>(v);
    }
  }
  for (auto [start, n] : p.pad_ranges) {
    for (int64_t i = 0; i < n; ++i) {
      CHECK(start + i < p.num_rows);
      if (start + i != pcc::Plan::kZeroRow) CHECK_EQ(owner[start + i], -1);
      owner[start + i] = -3;
    }
  }
  if (p.x_rows >= 0)  // x staged for fused inputs (Plan::x_rows)
    for (int64_t r = p.x_rows; r < p.num_rows; ++r) owner[r] = -4;
  for (int o : owner) CHECK(o != -1);  // every row is a node, a constant, padding or x
  for (const pcc::Layer& l : p.layers) {
    for (const auto& sp : l.sums) {
      for (int64_t k = 0; k < sp.num_blocks * sp.fanin; ++k) {
        if (sp.child_rows[k] < 0) continue;
        CHECK(sp.child_rows[k] + sp.child_block_size <= p.num_rows);
        CHECK(sp.weight_offsets[k] + sp.block_size * sp.child_block_size <= static_cast<int64_t>(p.params.size()));
      }
    }
    for (const auto& pp : l.products) CHECK_EQ(static_cast<int64_t>(pp.child_rows.size()), pp.num_nodes * pp.fanin);
  }
  std::vector<std::vector<int>> seen(c.params.size());
  for (size_t g = 0; g < c.params.size(); ++g) seen[g].assign(c.params[g].size(), 0);
  for (const pcc::ParamRun& r : p.param_map) {
    for (int64_t k = 0; k < r.length; ++k) {
      seen[r.group][r.ir_offset + k] += 1;
      CHECK(p.params[r.plan_offset + k * r.plan_stride] == c.params[r.group][r.ir_offset + k]);
    }
  }
  const std::vector<bool> live = pcc::reachable(c);
  for (size_t v = 0; v < c.nodes.size(); ++v) {
    if (!live[v] || c.nodes[v].params < 0) continue;
    for (int s : seen[c.nodes[v].params]) CHECK_EQ(s, 1);
  }
  CHECK_EQ(p.root_row, p.vector_rows[c.root]);
  CHECK_EQ(p.num_root_nodes, c.nodes[c.root].num_nodes);
  check_groups(c, p);
}

// Category-major Categorical groups (more than cm categories and more than one node, cm >= 0) have
// cat_stride num_nodes, all others 1; every input group node reads the slots node_slot gives its node,
// with its group layout's stride. The node is known from its row where every vector keeps its rows
// (kept), else from its first slot.
void check_layout(const Circuit& c, const pcc::Plan& p, int64_t cm, bool kept) {
  const std::vector<bool> live = pcc::reachable(c);
  std::map<int64_t, std::pair<int64_t, int64_t>> at_slot, at_row;  // -> (group, node)
  for (size_t v = 0; v < c.nodes.size(); ++v) {
    const NodeVector& nv = c.nodes[v];
    if (!live[v] || nv.kind != NodeKind::Input) continue;
    const pcc::GroupLayout& gl = p.groups[nv.params];
    const bool major = nv.dist == Dist::Categorical && nv.num_nodes > 1 && cm >= 0 && nv.num_cats > cm;
    CHECK_EQ(gl.cat_stride, major ? nv.num_nodes : 1);
    for (int64_t i = 0; i < nv.num_nodes; ++i) {
      at_slot[pcc::node_slot(gl, i)] = {nv.params, i};
      at_row[p.vector_rows[v] + i] = {nv.params, i};
    }
  }
  for (const pcc::Layer& l : p.layers)
    for (const pcc::InputGroup& g : l.inputs)
      for (int64_t j = 0; j < g.num_nodes; ++j) {
        const auto& at = kept ? at_row : at_slot;
        const auto it = at.find(kept ? g.row_start + j : g.param_offset[j]);
        CHECK(it != at.end());
        if (it == at.end()) continue;
        const pcc::GroupLayout& gl = p.groups[it->second.first];
        CHECK_EQ(g.param_offset[j], pcc::node_slot(gl, it->second.second));
        CHECK_EQ(g.cat_stride, gl.cat_stride);
      }
}

pcc::Plan compile_kept(const Circuit& c) {
  pcc::CompileOptions o;
  o.reuse_rows = false;  // plan_memory's own layout: every vector its rows
  return pcc::compile(c, o);
}

// reuse_rows: sum vectors keep rows no other vector touches, transient vectors are listed for
// recompute by their last reader, the plan validates and round-trips, and a deep circuit shrinks.
void check_reuse(const Circuit& c, bool must_shrink) {
  const pcc::Plan keep = compile_kept(c), p = pcc::compile(c);
  pcc::validate_plan(p);
  CHECK(pcc::serialize_plan(pcc::parse_plan(pcc::serialize_plan(p))) == pcc::serialize_plan(p));
  CHECK(p.num_rows <= keep.num_rows);
  if (must_shrink) CHECK(p.num_rows < keep.num_rows);
  // Sum vectors (alive from their layer to the end of the pass) never share rows with each other;
  // they may share with transients that are gone before them (test_cpu_backward checks the results).
  std::vector<int> users(p.num_rows, 0);
  for (size_t v = 0; v < c.nodes.size(); ++v) {
    if (p.vector_rows[v] < 0 || c.nodes[v].kind != NodeKind::Sum) continue;
    for (int64_t i = 0; i < c.nodes[v].num_nodes; ++i) users[p.vector_rows[v] + i] += 1;
  }
  for (size_t v = 0; v < c.nodes.size(); ++v) {
    if (p.vector_rows[v] < 0 || c.nodes[v].kind != NodeKind::Sum) continue;
    for (int64_t i = 0; i < c.nodes[v].num_nodes; ++i) CHECK_EQ(users[p.vector_rows[v] + i], 1);
  }
  int64_t recomputed = 0;
  for (size_t li = 0; li < p.layers.size(); ++li)
    for (auto [rl, rp] : p.layers[li].recompute) {
      CHECK(rl < static_cast<int64_t>(li) || (rl == static_cast<int64_t>(li) && p.layers[li].kind == pcc::LayerKind::Product));
      CHECK(p.layers[rl].kind != pcc::LayerKind::Sum);
      ++recomputed;
    }
  if (must_shrink) CHECK(recomputed > 0);
}

}  // namespace

int main() {
  {
    const Circuit c = tiny_circuit();
    const pcc::Plan p = compile_kept(c);
    check_plan(c, p);
    CHECK_EQ(p.num_vars, 3);
    CHECK((p.var_limit == std::vector<int64_t>{3, 2, 0}));
  }
  {
    // Overhanging blocks: sums of 3 nodes over children of 3 and 5 nodes, tied pair, sparse sum,
    // a product with explicit edges, an unreachable vector and a 2-node root.
    Builder b;
    const int64_t a = b.input(0, 3, Dist::Categorical, 4, b.group(normalized(3, 4)));
    const int64_t a2 = b.input(0, 5, Dist::Bernoulli, 0, b.group(probabilities(5)));
    const int64_t c1 = b.input(1, 3, Dist::Gaussian, 0, b.group(gaussian(3)));
    const int64_t d = b.input(1, 3, Dist::Categorical, 2, b.group(normalized(3, 2)));
    const int64_t g = b.group(normalized(3, 8));
    const int64_t s1 = b.sum({a, a2}, 3, SumForm::Dense, g);
    const int64_t s2 = b.sum({a, a2}, 3, SumForm::Dense, g);
    const int64_t unused = b.input(5, 2, Dist::Categorical, 2, b.group(normalized(2, 2)));
    const int64_t t = b.sum({c1, d}, 3, SumForm::Sparse, b.group({0.5f, 0.5f, 1.0f, 1.0f}), {0, 0, 1, 2, 0, 3, 4, 5});
    const int64_t p1 = b.product({s1, t}, 3);
    const int64_t p2 = b.product({s2, t}, 2, {2, 0, 1, 1});
    b.sum({p1, p2}, 2, SumForm::Dense, b.group(normalized(2, 5)));
    const pcc::Plan p = compile_kept(b.c);
    check_plan(b.c, p);
    CHECK_EQ(p.vector_rows[unused], -1);
    // Variable 5 is read only by the unreachable vector, so the plan has two variables.
    CHECK((p.var_limit == std::vector<int64_t>{2, 2}));
    CHECK(g_tied_partitions >= 1);  // s1 and s2 (tied) share a partition
  }
  {  // Tied Bernoulli and Gaussian inputs: one copy of their slots, shared offsets.
    Builder b;
    const int64_t gb = b.group(probabilities(4, 3));
    const int64_t gg = b.group(gaussian(4));
    const int64_t x0 = b.input(0, 4, Dist::Bernoulli, 0, gb);
    const int64_t x1 = b.input(1, 4, Dist::Bernoulli, 0, gb);
    const int64_t y2 = b.input(2, 4, Dist::Gaussian, 0, gg);
    const int64_t y3 = b.input(3, 4, Dist::Gaussian, 0, gg);
    const int64_t p = b.product({x0, x1, y2, y3}, 4);
    b.sum({p}, 2, SumForm::Dense, b.group(normalized(2, 4)));
    const pcc::Plan plan = compile_kept(b.c);
    check_plan(b.c, plan);
    CHECK_EQ(static_cast<int64_t>(plan.params.size()), 4 * 2 + 4 * 3 + 2 * 4);
  }
  for (SumForm form : {SumForm::Dense, SumForm::Sparse}) {  // the two_products circuits
    const Circuit c = form == SumForm::Dense
                          ? two_products(SumForm::Dense, {}, normalized(2, 8))
                          : two_products(SumForm::Sparse, {0, 0, 1, /**/ 0, 5, 3}, {0.5f, 0.5f, 1});
    check_plan(c, compile_kept(c));
  }
  for (int trial = 0; trial < 4; ++trial) check_reuse(random_circuit(random_vars(6, false), 1 + trial % 2), false);
  for (int trial = 0; trial < 6; ++trial) {  // category-major groups: varied node and category counts
    std::vector<VarInfo> vars = random_vars(6, false);
    for (VarInfo& v : vars)
      if (v.dist == Dist::Categorical) v.cats = 2 + randint(20);
    const Circuit c = random_circuit(vars, 1 + trial % 2, 4, true);
    for (const int64_t cm : {int64_t(-1), int64_t(0), int64_t(5), pcc::CompileOptions().category_major_cats}) {
      pcc::CompileOptions o;
      o.category_major_cats = cm;
      o.chunk_input_rows = trial % 2 ? 4 : o.chunk_input_rows;  // input copies of split product layers
      const pcc::Plan reused = pcc::compile(c, o);
      pcc::validate_plan(reused);
      check_layout(c, reused, cm, false);
      o.reuse_rows = false;
      const pcc::Plan kept = pcc::compile(c, o);
      check_plan(c, kept);
      check_layout(c, kept, cm, true);
    }
  }
  {  // A chain of products over fresh inputs: every input and product is transient.
    Builder b;
    int64_t prev = b.input(0, 4, Dist::Categorical, 3, b.group(normalized(4, 3)));
    for (int64_t v = 1; v < 12; ++v) {
      const int64_t in = b.input(v, 4, Dist::Categorical, 3, b.group(normalized(4, 3)));
      const int64_t prod = b.product({prev, in}, 4);
      prev = b.sum({prod}, 4, SumForm::Dense, b.group(normalized(4, 4)));
    }
    check_reuse(b.c, true);
  }
  {  // A product whose children are ready early but whose reader comes late (as PD's regions): it is
     // computed in the layer right before its reader, not where its children first allow.
    Builder b;
    auto leaf = [&](int64_t v) {
      const int64_t in = b.input(v, 4, Dist::Categorical, 3, b.group(normalized(4, 3)));
      return b.sum({in}, 4, SumForm::Dense, b.group(normalized(4, 4)));
    };
    const int64_t s0 = leaf(0), s1 = leaf(1);
    // The same scope as `deep` below ({0, 2..7}), two layers deep.
    std::vector<int64_t> leaves = {leaf(0)};
    for (int64_t v = 2; v < 8; ++v) leaves.push_back(leaf(v));
    const int64_t wide = b.sum({b.product(leaves, 4)}, 4, SumForm::Dense, b.group(normalized(4, 4)));
    const int64_t early = b.product({wide, s1}, 4);
    int64_t deep = s0;
    for (int64_t v = 2; v < 8; ++v)
      deep = b.sum({b.product({deep, leaf(v)}, 4)}, 4, SumForm::Dense, b.group(normalized(4, 4)));
    const int64_t late = b.product({deep, s1}, 4);
    const int64_t root = b.sum({early, late}, 1, SumForm::Dense, b.group(normalized(1, 8)));
    check_reuse(b.c, true);
    const pcc::Plan p = pcc::compile(b.c);
    // Rows are shared, so a vector's layer is the one whose partition computes it from its children.
    auto layer_of = [&](int64_t row, int64_t child) {
      std::vector<int64_t> found;
      for (size_t li = 0; li < p.layers.size(); ++li) {
        for (const auto& pp : p.layers[li].products)
          if (row >= pp.row_start && row < pp.row_start + pp.num_nodes &&
              pp.child_rows[(row - pp.row_start) * pp.fanin] == child)
            found.push_back(static_cast<int64_t>(li));
        for (const auto& sp : p.layers[li].sums)
          for (int64_t r : sp.out_rows)
            if (row >= r && row < r + sp.block_size) found.push_back(static_cast<int64_t>(li));
      }
      CHECK_EQ(found.size(), size_t(1));
      return found.empty() ? int64_t(-1) : found[0];
    };
    const int64_t reader = layer_of(p.vector_rows[root], -1);
    CHECK(reader > 4);
    CHECK_EQ(layer_of(p.vector_rows[early], p.vector_rows[wide]), reader - 1);
    const int64_t late_layer = layer_of(p.vector_rows[late], p.vector_rows[deep]);  // already the last
    CHECK(late_layer >= reader - 2 && late_layer < reader);
  }
  {  // RAT-SPN's first layer split into runs (inputs copied where an earlier run read them): the
     // inputs of one run at a time hold rows, not all of them.
    const Circuit c = repetitions_circuit();
    pcc::CompileOptions whole, runs;
    whole.chunk_input_rows = 1 << 30;
    runs.chunk_input_rows = 32;
    const pcc::Plan pw = pcc::compile(c, whole), pr = pcc::compile(c, runs);
    CHECK(pr.num_rows < pw.num_rows);
    CHECK(pr.layers.size() > pw.layers.size());
    auto groups = [](const pcc::Plan& p) {
      size_t n = 0;
      for (const auto& l : p.layers) n += l.inputs.size();
      return n;
    };
    CHECK(groups(pr) > groups(pw));  // copies of variable 0's shared vector
    int64_t twice = 0;  // recompute entries naming an input group in two layers' lists
    std::map<std::pair<int64_t, int64_t>, int> seen;
    for (const auto& l : pr.layers)
      for (const auto& e : l.recompute)
        if (pr.layers[e.first].kind == pcc::LayerKind::Input && ++seen[e] == 2) ++twice;
    CHECK(twice > 0);
  }
  {  // The same with inputs of varied sizes, category-major: vectors of different strides placed one
     // after another (copies, inputs of one run) stay separate input groups.
    const Circuit c = repetitions_circuit(16, false, true);
    pcc::CompileOptions runs;
    runs.chunk_input_rows = 64;
    runs.category_major_cats = 0;
    const pcc::Plan pr = pcc::compile(c, runs);
    pcc::validate_plan(pr);
    check_layout(c, pr, 0, false);
    int64_t adjacent = 0;  // consecutive groups on consecutive rows, of different strides
    for (const auto& l : pr.layers)
      for (size_t k = 1; k < l.inputs.size(); ++k)
        adjacent += l.inputs[k - 1].row_start + l.inputs[k - 1].num_nodes == l.inputs[k].row_start &&
                    l.inputs[k - 1].cat_stride != l.inputs[k].cat_stride;
    CHECK(adjacent > 0);
  }
  {  // As RAT-SPN: every repetition reads every input. Split, the runs would copy most inputs, so the
     // layer stays whole and its products are kept (never recomputed) so that the inputs die there.
    const Circuit c = repetitions_circuit(16, true);
    pcc::CompileOptions whole, runs;
    whole.chunk_input_rows = 1 << 30;
    runs.chunk_input_rows = 32;
    const pcc::Plan pw = pcc::compile(c, whole), pr = pcc::compile(c, runs);
    CHECK_EQ(pr.layers.size(), pw.layers.size());
    int64_t first_products = 0;  // the layer of region products, which reads the inputs
    while (pr.layers[first_products].kind != pcc::LayerKind::Product) ++first_products;
    int64_t recomputed = 0;
    for (const auto& l : pr.layers)
      for (const auto& e : l.recompute) recomputed += e.first == first_products;
    CHECK_EQ(recomputed, 0);
    CHECK(pr.num_rows < pw.num_rows);
    // Kept products stay one launch per source partition, not one per IR vector.
    const pcc::Plan raw = [&] {
      pcc::CompileOptions o = runs;
      o.reuse_rows = false;
      return pcc::compile(c, o);
    }();
    int64_t raw_first = 0;
    while (raw.layers[raw_first].kind != pcc::LayerKind::Product) ++raw_first;
    CHECK_EQ(pr.layers[first_products].products.size(), raw.layers[raw_first].products.size());
  }
  return report("test_plan_memory");
}
