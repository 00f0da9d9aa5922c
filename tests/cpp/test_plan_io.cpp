// .pcplan round trip (exact), version 2 files (before cat_stride), version 3 files (before
// child_arity) and version 4 files (before fused inputs) still read, and validate_plan: each index a
// backend follows is checked.
#include <cstdint>
#include <cstring>
#include <functional>

#include "check.h"
#include "core/passes.h"
#include "core/plan_io.h"
#include "pcc/compiler.h"
#include "pcc/plan.h"
#include "random_circuits.h"
#include "samples.h"

using namespace pcc;
using namespace pcc_test;

namespace {

CompileOptions unfused_inputs() {
  CompileOptions o;
  o.fuse_inputs = false;
  return o;
}

// tiny_plan() with its categorical group category-major: slot k of node i at i + 2 k.
Plan category_major_tiny() {
  Plan p = tiny_plan();
  p.params[1] = 0.5f;  // node 0 (0.25, 0.75), node 1 (0.5, 0.5)
  p.params[2] = 0.75f;
  p.groups[0].cat_stride = 2;
  p.layers[0].inputs[0].cat_stride = 2;
  p.layers[0].inputs[0].param_offset = {0, 1};
  p.param_map[0] = {0, 0, 0, 2, 2};
  p.param_map.insert(p.param_map.begin() + 1, ParamRun{0, 2, 1, 2, 2});
  return p;
}

// A copy of tiny_plan() (or `base`) changed by `edit` must fail validation (directly and when read from bytes)
// with a message containing `part`.
void rejects(const std::function<void(Plan&)>& edit, const char* part, const Plan& base = tiny_plan()) {
  Plan p = base;
  edit(p);
  CHECK_THROWS(validate_plan(p), "invalid plan", part);
  CHECK_THROWS(parse_plan(serialize_plan(p), "bad.pcplan"), "bad.pcplan: invalid plan", part);
}

// tiny_plan() with its sum reading fused products of two children: entry 0 adds the product rows
// 5-6 and the categorical rows 1-2; with `fanin2`, a second entry that is padding.
Plan fused_tiny(bool fanin2 = false) {
  Plan p = tiny_plan();
  SumPartition& s = p.layers[2].sums[0];
  s.child_arity = 2;
  s.child_rows = {5, 1};
  if (fanin2) {
    s.fanin = 2;
    s.child_rows = {5, 1, -1, -1};
    s.weight_offsets = {8, -1};
  }
  return p;
}

// fused_tiny(fanin2) changed by `edit` must fail validation, also when read from a version 4 file.
void rejects_fused(bool fanin2, const std::function<void(SumPartition&)>& edit, const char* part) {
  Plan p = fused_tiny(fanin2);
  edit(p.layers[2].sums[0]);
  CHECK_THROWS(validate_plan(p), "invalid plan: sum partition 0 of layer 2: ", part);
  CHECK_THROWS(parse_plan(serialize_plan(p), "bad.pcplan"), "bad.pcplan: invalid plan", part);
}

}  // namespace

int main() {
  {
    const Plan p = tiny_plan();
    validate_plan(p);
    const std::string bytes = serialize_plan(p);
    const Plan back = parse_plan(bytes);
    CHECK(serialize_plan(back) == bytes);
    CHECK(std::memcmp(back.params.data(), p.params.data(), p.params.size() * 4) == 0);
    CHECK(back.pad_ranges == p.pad_ranges && back.vector_rows == p.vector_rows);
    CHECK_EQ(back.layers.size(), 3u);
    CHECK(back.layers[2].sums[0].weight_offsets == p.layers[2].sums[0].weight_offsets);
    CHECK_EQ(back.stats.input_params, 6);
    CHECK_EQ(back.param_map[2].plan_offset, 8);
    // The fields added with the group layouts survive the trip.
    CHECK(back.param_valid == p.param_valid);
    CHECK_EQ(back.groups.size(), p.groups.size());
    for (size_t g = 0; g < p.groups.size(); ++g) {
      const GroupLayout &a = back.groups[g], &b = p.groups[g];
      CHECK(a.kind == b.kind && a.dist == b.dist);
      CHECK(a.num_nodes == b.num_nodes && a.base == b.base && a.width == b.width);
      CHECK(a.block_size == b.block_size && a.child_block_size == b.child_block_size);
      CHECK(a.block_start == b.block_start && a.block_offsets == b.block_offsets);
    }
    CHECK_EQ(back.layers[2].sums[0].disjoint_weights, 1);
  }
  {  // Non-default values of the new fields round-trip too.
    Plan p = tiny_plan();
    p.param_valid[9] = 0;
    p.layers[2].sums[0].disjoint_weights = 0;
    validate_plan(p);
    const Plan back = parse_plan(serialize_plan(p));
    CHECK(back.param_valid == p.param_valid);
    CHECK_EQ(back.layers[2].sums[0].disjoint_weights, 0);
  }
  {  // A plan from the compiler round-trips too.
    const Plan p = compile(tiny_circuit());
    validate_plan(p);
    const std::string bytes = serialize_plan(p);
    CHECK(serialize_plan(parse_plan(bytes)) == bytes);
    char tmpl[] = "/tmp/pcc_test_plan_io_XXXXXX";
    const std::string dir = mkdtemp(tmpl);
    write_plan(p, dir + "/t.pcplan");
    CHECK(serialize_plan(read_plan(dir + "/t.pcplan")) == bytes);
    std::remove((dir + "/t.pcplan").c_str());
    std::remove(dir.c_str());
  }
  {  // Category-major inputs round-trip, in a hand-written plan and in compiled ones.
    const Plan p = category_major_tiny();
    validate_plan(p);
    const Plan back = parse_plan(serialize_plan(p));
    CHECK_EQ(back.groups[0].cat_stride, 2);
    CHECK_EQ(back.groups[1].cat_stride, 1);
    CHECK_EQ(back.layers[0].inputs[0].cat_stride, 2);
    CHECK(back.layers[0].inputs[0].param_offset == p.layers[0].inputs[0].param_offset);
    CHECK(read_group(back, back.params.data(), 0) == read_group(tiny_plan(), tiny_plan().params.data(), 0));
    CHECK_THROWS(serialize_plan_version(p, 2), "plan version 2 has no category-major inputs");
    rng.seed(17);
    const Circuit c = random_circuit(random_vars(5, false), 1, 4, true);
    for (const int64_t cm : {0, -1}) {
      CompileOptions o;
      o.category_major_cats = cm;
      const Plan q = compile(c, o);
      const std::string bytes = serialize_plan(q);
      const Plan qb = parse_plan(bytes);
      CHECK(serialize_plan(qb) == bytes);
      for (size_t g = 0; g < q.groups.size(); ++g) CHECK_EQ(qb.groups[g].cat_stride, q.groups[g].cat_stride);
      for (size_t l = 0; l < q.layers.size(); ++l)
        for (size_t k = 0; k < q.layers[l].inputs.size(); ++k)
          CHECK_EQ(qb.layers[l].inputs[k].cat_stride, q.layers[l].inputs[k].cat_stride);
    }
  }
  {  // A version 2 file (no cat_stride fields) reads as node-major, exactly.
    for (const Plan& p : {tiny_plan(), compile(tiny_circuit(), unfused_inputs())}) {
      const std::string v2 = serialize_plan_version(p, 2);
      CHECK(v2 != serialize_plan(p));
      CHECK(serialize_plan(parse_plan(v2, "old.pcplan")) == serialize_plan(p));
    }
    CHECK_THROWS(serialize_plan_version(tiny_plan(), 1), "cannot write plan version 1");
  }
  {  // A version 3 file (no child_arity fields) reads with child_arity 1, exactly.
    for (const Plan& p : {tiny_plan(), compile(tiny_circuit(), unfused_inputs()), category_major_tiny()}) {
      const std::string v3 = serialize_plan_version(p, 3);
      CHECK(v3 != serialize_plan(p));
      const Plan back = parse_plan(v3, "old.pcplan");
      for (const Layer& l : back.layers)
        for (const SumPartition& s : l.sums) CHECK_EQ(s.child_arity, 1);
      CHECK(serialize_plan(back) == serialize_plan(p));
    }
    CHECK_EQ(serialize_plan_version(tiny_plan(), 4).size(), serialize_plan_version(tiny_plan(), 3).size() + 8);
  }
  {  // Fused inputs round-trip in version 5 and are refused by the older writers; a version 4 file
     // reads with nothing fused, exactly (one i64 more per input group, one count per product partition).
    const Plan p = fused_inputs_tiny();
    validate_plan(p);
    const std::string bytes = serialize_plan(p);
    const Plan back = parse_plan(bytes, "fused.pcplan");
    CHECK(serialize_plan(back) == bytes);
    CHECK_EQ(back.layers[0].inputs[0].fused, 1);
    CHECK_EQ(back.layers[0].inputs[1].fused, 1);
    CHECK(back.layers[1].products[0].fused_inputs == p.layers[1].products[0].fused_inputs);
    CHECK_THROWS(serialize_plan_version(p, 4), "serialize_plan: plan version 4 has no fused input groups");
    CHECK_THROWS(serialize_plan_version(p, 2), "serialize_plan: plan version 2 has no fused input groups");
    const Plan old = parse_plan(serialize_plan_version(tiny_plan(), 4), "old.pcplan");
    CHECK(serialize_plan(old) == serialize_plan(tiny_plan()));
    CHECK_EQ(serialize_plan(tiny_plan()).size(), serialize_plan_version(tiny_plan(), 4).size() + 8 + 2 * 8 + 8);
    CHECK_EQ(back.x_rows, 9);
    CHECK(dump_plan(p).find("x rows: 9+2\n") != std::string::npos);
    CHECK(dump_plan(p).find("rows 1+2 var=[0 0] param=[0 2] fused\n") != std::string::npos);
    CHECK(dump_plan(p).find("children=[1 3 2 4] fused_inputs: 0.0 0.1\n") != std::string::npos);
    CHECK(dump_plan(tiny_plan()).find("fused") == std::string::npos);
  }
  {  // Compiled plans with fused inputs round-trip too.
    const Plan p = compile(tiny_circuit());
    const std::string bytes = serialize_plan(p);
    CHECK(serialize_plan(parse_plan(bytes)) == bytes);
  }
  const Plan fi = fused_inputs_tiny();
  rejects([](Plan& p) { p.layers[0].inputs[0].fused = 2; }, "input group 0 of layer 0: fused is 2 (must be 0 or 1)", fi);
  rejects([](Plan& p) { p.layers[1].products[0].fused_inputs.pop_back(); },
          "input group 1 of layer 0 is fused but no product partition computes it", fi);
  rejects([](Plan& p) { p.layers[1].products[0].child_rows = {1, 3, 2, 3}; },
          "input group 1 of layer 0 is fused but node 1 is read by none of the product partitions that compute it", fi);
  rejects([](Plan& p) { p.layers[0].inputs[1].fused = 0; },
          "product partition 0 of layer 1: lists input group 1 of layer 0 as fused, but that group is not", fi);
  rejects([](Plan& p) { p.layers[1].products[0].fused_inputs[1] = {1, 0}; },
          "product partition 0 of layer 1: fused input (1, 0) is not an input group of an earlier layer", fi);
  rejects([](Plan& p) { p.layers[1].products[0].fused_inputs[1] = {0, 2}; },
          "fused input (0, 2) is not an input group of an earlier layer", fi);
  rejects([](Plan& p) { p.layers[1].products[0].fused_inputs[1] = {-1, 0}; },
          "fused input (-1, 0) is not an input group of an earlier layer", fi);
  rejects([](Plan& p) { p.x_rows = 3; }, "x_rows is 3 (must be -1, or num_rows - num_vars = 9)", fi);
  rejects([](Plan& p) { p.x_rows = -1; }, "input group 0 of layer 0 is fused but the plan has no x rows", fi);
  rejects([](Plan& p) { p.layers[2].sums[0].out_rows[0] = 9; }, "block 0 writes rows 9 + 1 outside rows 1..8", fi);
  rejects([](Plan& p) { p.root_row = 10; }, "root rows 10 + 1 outside the 9 rows", fi);
  rejects([](Plan& p) { p.layers[2].recompute = {{0, 1}, {1, 0}}; },
          "layer 2 recomputes input group 1 of layer 0, which is fused", fi);
  {  // Fused products (child_arity 2) round-trip in version 4 and are refused by the older writers.
    for (const bool fanin2 : {false, true}) {
      const Plan p = fused_tiny(fanin2);
      validate_plan(p);
      const std::string bytes = serialize_plan(p);
      const Plan back = parse_plan(bytes, "fused.pcplan");
      CHECK(serialize_plan(back) == bytes);
      const SumPartition &a = back.layers[2].sums[0], &b = p.layers[2].sums[0];
      CHECK_EQ(a.child_arity, 2);
      CHECK_EQ(a.fanin, b.fanin);
      CHECK(a.child_rows == b.child_rows && a.weight_offsets == b.weight_offsets && a.out_rows == b.out_rows);
      CHECK_THROWS(serialize_plan_version(p, 3), "serialize_plan: plan version 3 has no fused products (child_arity 2)");
      CHECK_THROWS(serialize_plan_version(p, 2), "serialize_plan: plan version 2 has no fused products (child_arity 2)");
    }
    Plan p = fused_tiny();
    p.layers[2].sums[0].child_rows = {5, -1};  // a product with fewer children than the arity
    validate_plan(p);
    CHECK(parse_plan(serialize_plan(p)).layers[2].sums[0].child_rows == p.layers[2].sums[0].child_rows);
    // The dump and the report say so (and say nothing for arity 1: the golden dumps stay as they were).
    CHECK(dump_plan(p).find("sum b=1 cb=2 fanin=1 arity=2 blocks=1 out=[7] children=[5 -1] weights=[8]") != std::string::npos);
    CHECK(dump_plan(tiny_plan()).find("sum b=1 cb=2 fanin=1 blocks=1 out=[7] children=[5] weights=[8]") != std::string::npos);
    CHECK(plan_report(p).find("x fan-in 1, fused products of 2") != std::string::npos);
    CHECK(plan_report(tiny_plan()).find("fused") == std::string::npos);
    CHECK_EQ(summarize(p).product_edges_padded, summarize(tiny_plan()).product_edges_padded);
    CHECK_EQ(summarize(p).fused_product_edges, 0);  // one start present: a plain child
    p.layers[2].sums[0].child_rows = {5, 3};
    CHECK_EQ(summarize(p).fused_product_edges, 4);  // 2 starts x 2 rows
    CHECK(plan_report(p).find(" stored + 4 fused\n") != std::string::npos);
    p.layers[2].sums[0].child_rows = {5, -1};
    p.layers[2].sums[0].child_arity = 64;  // the largest accepted
    p.layers[2].sums[0].child_rows.resize(64, -1);
    validate_plan(p);
  }
  rejects_fused(false, [](SumPartition& s) { s.child_arity = 0; }, "child_arity is 0 (must be 1 to 64)");
  rejects_fused(false, [](SumPartition& s) { s.child_arity = -3; }, "child_arity is -3");
  rejects_fused(false, [](SumPartition& s) { s.child_arity = 65; }, "child_arity is 65 (must be 1 to 64)");
  rejects_fused(false, [](SumPartition& s) { s.child_rows.pop_back(); },
                "child_rows has 1 entries, expected num_blocks 1 x fanin 1 x child_arity 2");
  rejects_fused(false, [](SumPartition& s) { s.child_arity = 3; },
                "child_rows has 2 entries, expected num_blocks 1 x fanin 1 x child_arity 3");
  rejects_fused(true, [](SumPartition& s) { s.child_arity = 1; },
                "child_rows has 4 entries, expected num_blocks 1 x fanin 2 x child_arity 1");
  rejects_fused(true, [](SumPartition& s) { s.weight_offsets.pop_back(); },
                "weight_offsets has 1 entries, expected num_blocks 1 x fanin 2");
  rejects_fused(true, [](SumPartition& s) { s.child_rows[3] = 3; },
                "entry 1 is padding (first start -1) but start 1 is 3");
  rejects_fused(true, [](SumPartition& s) { s.child_rows[2] = 3; },
                "entry 1 pads only one of child_rows (3) and weight_offsets (-1)");
  rejects_fused(true, [](SumPartition& s) { s.child_rows[0] = -1; },
                "entry 0 pads only one of child_rows (-1) and weight_offsets (8)");
  rejects_fused(false, [](SumPartition& s) { s.child_rows[1] = 8; }, "entry 0 start 1 reads rows 8 + 2 outside the 9 rows");
  rejects_fused(false, [](SumPartition& s) { s.child_rows[1] = -2; }, "entry 0 start 1 reads rows -2 + 2 outside the 9 rows");
  rejects_fused(false, [](SumPartition& s) { s.child_rows[0] = 8; }, "entry 0 start 0 reads rows 8 + 2 outside the 9 rows");
  rejects([](Plan& p) { p.num_rows = 0; }, "num_rows is 0");
  rejects([](Plan& p) { p.var_limit.pop_back(); }, "var_limit has 1 entries for 2 variables");
  rejects([](Plan& p) { p.root_row = 8; p.num_root_nodes = 2; }, "root rows 8 + 2");
  rejects([](Plan& p) { p.num_root_nodes = 0; }, "root rows");
  rejects([](Plan& p) { p.pad_ranges[0] = {8, 2}; }, "pad range 0");
  rejects([](Plan& p) { p.pad_ranges[0] = {0, 1}; }, "pad range 0");
  rejects([](Plan& p) { p.vector_rows[1] = 9; }, "first row of vector 1 is 9");
  rejects([](Plan& p) { p.param_map[1].group = 3; }, "param run 1 names group 3");
  rejects([](Plan& p) { p.param_map[1].length = 3; }, "param run 1 covers elements 0 + 3 of group 1");
  rejects([](Plan& p) { p.param_map[2].plan_stride = 2; }, "param run 2 (offset 8, length 2, stride 2)");
  rejects([](Plan& p) { p.param_map[2].plan_stride = 0; }, "param run 2 has stride 0");
  rejects([](Plan& p) { p.param_group_sizes[0] = -1; }, "parameter group 0 has size -1");
  rejects([](Plan& p) { p.layers[0].kind = LayerKind::Sum; }, "layer 0 of kind 2 holds partitions of another kind");
  rejects([](Plan& p) { p.layers[0].inputs[1].row_start = 8; }, "input group 1 of layer 0: rows 8 + 2");
  rejects([](Plan& p) { p.layers[0].inputs[0].row_start = 0; }, "input group 0 of layer 0: rows 0 + 2");
  rejects([](Plan& p) { p.layers[0].inputs[0].var.pop_back(); }, "per-node arrays");
  rejects([](Plan& p) { p.layers[0].inputs[0].var[1] = 2; }, "node 1 reads variable 2 of 2");
  rejects([](Plan& p) { p.layers[0].inputs[0].param_offset[1] = 9; }, "node 1 reads parameters 9 + 2 of 10");
  rejects([](Plan& p) { p.layers[0].inputs[1].param_offset[0] = -1; }, "node 0 reads parameters -1 + 2");
  rejects([](Plan& p) { p.var_limit[0] = 3; }, "has 2 categories but variable 0 admits 3");
  rejects([](Plan& p) { p.layers[0].inputs[1].num_cats[0] = 3; }, "Bernoulli node 0 has num_cats 3");
  rejects([](Plan& p) { p.var_limit[1] = -1; }, "Bernoulli node 0 but variable 1 admits -1");
  rejects([](Plan& p) { p.layers[1].products[0].fanin = 3; }, "child_rows has 4 entries, expected num_nodes 2 x fanin 3");
  rejects([](Plan& p) { p.layers[1].products[0].child_rows[3] = 9; }, "product partition 0 of layer 1: child_rows[3] is 9");
  rejects([](Plan& p) { p.layers[1].products[0].row_start = 8; }, "product partition 0 of layer 1: rows 8 + 2");
  rejects([](Plan& p) { p.layers[2].sums[0].out_rows[0] = 8; p.layers[2].sums[0].block_size = 2; },
          "sum partition 0 of layer 2: block 0 writes rows 8 + 2");
  rejects([](Plan& p) { p.layers[2].sums[0].child_rows[0] = 8; }, "entry 0 reads rows 8 + 2 outside the 9 rows");
  rejects([](Plan& p) { p.layers[2].sums[0].weight_offsets[0] = 9; }, "entry 0 reads weights 9 + 2 of 10");
  rejects([](Plan& p) { p.layers[2].sums[0].weight_offsets[0] = -1; }, "pads only one of child_rows");
  rejects([](Plan& p) { p.layers[2].sums[0].num_blocks = 2; }, "out_rows has 1 entries for 2 blocks");
  rejects([](Plan& p) { p.layers[2].sums[0].fanin = 0; }, "fanin 0");
  rejects([](Plan& p) { p.layers[2].sums[0].child_block_size = 0; }, "block sizes 1 x 0");
  // The group layouts, param_valid and disjoint_weights.
  rejects([](Plan& p) { p.param_valid.pop_back(); }, "param_valid has 9 entries for 10 parameters");
  rejects([](Plan& p) { p.param_valid.push_back(1); }, "param_valid has 11 entries for 10 parameters");
  rejects([](Plan& p) { p.groups.pop_back(); }, "2 group layouts for 3 parameter groups");
  rejects([](Plan& p) { p.groups[1].base = 7; }, "parameter group 1: slots 7 + 2 x 2 outside the 10 parameters");
  rejects([](Plan& p) { p.groups[0].num_nodes = 6; }, "parameter group 0: slots 0 + 6 x 2 outside the 10 parameters");
  rejects([](Plan& p) { p.groups[1].width = 1; }, "parameter group 1: width 1 for");
  rejects([](Plan& p) { p.groups[0].num_nodes = -1; }, "parameter group 0: num_nodes is -1");
  // cat_stride: 1, or num_nodes for a categorical group layout; an input group's slots in range.
  rejects([](Plan& p) { p.groups[0].cat_stride = 3; },
          "parameter group 0: cat_stride 3 (must be 1, or num_nodes 2 for categorical)");
  rejects([](Plan& p) { p.groups[0].cat_stride = 0; }, "parameter group 0: cat_stride 0");
  rejects([](Plan& p) { p.groups[1].cat_stride = 2; }, "parameter group 1: cat_stride 2");
  rejects([](Plan& p) { p.layers[0].inputs[0].cat_stride = 0; },
          "input group 0 of layer 0: cat_stride 0 for categorical (must be 1 or more)");
  rejects([](Plan& p) { p.layers[0].inputs[0].cat_stride = -2; }, "input group 0 of layer 0: cat_stride -2");
  rejects([](Plan& p) { p.layers[0].inputs[1].cat_stride = 2; },
          "input group 1 of layer 0: cat_stride 2 for bernoulli (must be 1)");
  rejects([](Plan& p) { p.layers[0].inputs[0].cat_stride = 9; },
          "node 0 (categorical, 2 slots, cat_stride 9) reads slot 0 of a categorical group at 0 with 2 slots per "
          "node and cat_stride 1");
  rejects([](Plan& p) { p.layers[0].inputs[0].param_offset[1] = 1; },
          "reads slot 1 of a categorical group at 0 with 2 slots per node and cat_stride 1, not a node's first slot");
  rejects([](Plan& p) { p.layers[0].inputs[0].cat_stride = INT64_MAX; },  // must not wrap around
          "node 0 reads parameters 0 + 2 with stride 9223372036854775807 of 10");
  {
    Plan p = category_major_tiny();
    p.layers[0].inputs[0].param_offset[1] = 2;  // slots 2 and 4: in the buffer, not node 1's slots
    CHECK_THROWS(validate_plan(p), "node 1 (categorical, 2 slots, cat_stride 2) reads slot 2", "not a node's first slot");
    p.layers[0].inputs[0].param_offset[1] = 8;  // slots 8 and 10
    CHECK_THROWS(validate_plan(p), "node 1 reads parameters 8 + 2 with stride 2 of 10");
    CHECK_THROWS(parse_plan(serialize_plan(p), "cm.pcplan"), "cm.pcplan: invalid plan", "with stride 2 of 10");
  }
  rejects([](Plan& p) { p.groups[2].block_offsets[0] = 9; }, "parameter group 2: weight block at 9 outside the 10");
  rejects([](Plan& p) { p.groups[2].block_start = {0, 2}; }, "parameter group 2: block_start does not span block_offsets");
  rejects([](Plan& p) { p.groups[2].block_start = {1, 1}; }, "parameter group 2: block_start does not span block_offsets");
  rejects([](Plan& p) { p.groups[2].block_start = {0, 1, 1}; }, "parameter group 2: 2 sum blocks of 1 for 1 nodes");
  rejects(
      [](Plan& p) {  // 5 x 2^62 wraps around int64: must not slip through as 2^62
        p.groups[2].block_size = int64_t(1) << 62;
        p.groups[2].child_block_size = 1;
        p.groups[2].block_start = {0, 0, 0, 0, 0, 0};
        p.groups[2].block_offsets.clear();
      },
      "parameter group 2: 5 sum blocks of 4611686018427387904 for 1 nodes");
  rejects([](Plan& p) { p.groups[2].child_block_size = 0; }, "parameter group 2: block sizes 1 x 0");
  rejects([](Plan& p) { p.groups[2].kind = NodeKind::Product; }, "parameter group 2: a product group");
  rejects([](Plan& p) { p.layers[2].sums[0].disjoint_weights = 2; }, "disjoint_weights is 2");
  rejects(
      [](Plan& p) {  // two blocks reading one weight matrix (a tied pair) but marked disjoint
        SumPartition& s = p.layers[2].sums[0];
        s.num_blocks = 2;
        s.out_rows = {7, 8};
        s.child_rows = {5, 5};
        s.weight_offsets = {8, 8};
      },
      "sum partition 0 of layer 2: disjoint_weights is set but two blocks share a weight matrix");
  {  // ... which is fine once disjoint_weights says so.
    Plan p = tiny_plan();
    SumPartition& s = p.layers[2].sums[0];
    s.num_blocks = 2;
    s.out_rows = {7, 8};
    s.child_rows = {5, 5};
    s.weight_offsets = {8, 8};
    s.disjoint_weights = 0;
    validate_plan(p);
  }
  {  // A group no reachable vector uses (num_nodes 0) is not checked further.
    Plan p = tiny_plan();
    p.param_group_sizes.push_back(3);
    GroupLayout g;
    g.num_nodes = 0;
    g.base = 1000;
    p.groups.push_back(g);
    validate_plan(p);
  }
  {  // Padding entries (-1, -1) are fine.
    Plan p = tiny_plan();
    SumPartition& s = p.layers[2].sums[0];
    s.fanin = 2;
    s.child_rows = {5, -1};
    s.weight_offsets = {8, -1};
    validate_plan(p);
  }
  return report("test_plan_io");
}
