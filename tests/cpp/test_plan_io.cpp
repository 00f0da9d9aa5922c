// .pcplan round trip (exact) and validate_plan: each index a backend follows is checked.
#include <cstring>
#include <functional>

#include "check.h"
#include "pcc/compiler.h"
#include "pcc/plan.h"
#include "samples.h"

using namespace pcc;
using namespace pcc_test;

namespace {

// A copy of tiny_plan() changed by `edit` must fail validation (directly and when read from bytes)
// with a message containing `part`.
void rejects(const std::function<void(Plan&)>& edit, const char* part) {
  Plan p = tiny_plan();
  edit(p);
  CHECK_THROWS(validate_plan(p), "invalid plan", part);
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
    CHECK_EQ(back.param_map[2].plan_offset, 6);
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
  rejects([](Plan& p) { p.num_rows = 0; }, "num_rows is 0");
  rejects([](Plan& p) { p.var_limit.pop_back(); }, "var_limit has 1 entries for 2 variables");
  rejects([](Plan& p) { p.root_row = 8; p.num_root_nodes = 2; }, "root rows 8 + 2");
  rejects([](Plan& p) { p.num_root_nodes = 0; }, "root rows");
  rejects([](Plan& p) { p.pad_ranges[0] = {8, 2}; }, "pad range 0");
  rejects([](Plan& p) { p.pad_ranges[0] = {0, 1}; }, "pad range 0");
  rejects([](Plan& p) { p.vector_rows[1] = 9; }, "first row of vector 1 is 9");
  rejects([](Plan& p) { p.param_map[1].group = 3; }, "param run 1 names group 3");
  rejects([](Plan& p) { p.param_map[1].length = 3; }, "param run 1 covers elements 0 + 3 of group 1");
  rejects([](Plan& p) { p.param_map[2].plan_stride = 2; }, "param run 2 (offset 6, length 2, stride 2)");
  rejects([](Plan& p) { p.param_map[2].plan_stride = 0; }, "param run 2 has stride 0");
  rejects([](Plan& p) { p.param_group_sizes[0] = -1; }, "parameter group 0 has size -1");
  rejects([](Plan& p) { p.layers[0].kind = LayerKind::Sum; }, "layer 0 of kind 2 holds partitions of another kind");
  rejects([](Plan& p) { p.layers[0].inputs[1].row_start = 8; }, "input group 1 of layer 0: rows 8 + 2");
  rejects([](Plan& p) { p.layers[0].inputs[0].row_start = 0; }, "input group 0 of layer 0: rows 0 + 2");
  rejects([](Plan& p) { p.layers[0].inputs[0].var.pop_back(); }, "per-node arrays");
  rejects([](Plan& p) { p.layers[0].inputs[0].var[1] = 2; }, "node 1 reads variable 2 of 2");
  rejects([](Plan& p) { p.layers[0].inputs[0].param_offset[1] = 7; }, "node 1 reads parameters 7 + 2 of 8");
  rejects([](Plan& p) { p.layers[0].inputs[1].param_offset[0] = -1; }, "node 0 reads parameters -1 + 1");
  rejects([](Plan& p) { p.var_limit[0] = 3; }, "has 2 categories but variable 0 admits 3");
  rejects([](Plan& p) { p.layers[0].inputs[1].num_cats[0] = 3; }, "Bernoulli node 0 has num_cats 3");
  rejects([](Plan& p) { p.var_limit[1] = -1; }, "Bernoulli node 0 but variable 1 admits -1");
  rejects([](Plan& p) { p.layers[1].products[0].fanin = 3; }, "child_rows has 4 entries, expected num_nodes 2 x fanin 3");
  rejects([](Plan& p) { p.layers[1].products[0].child_rows[3] = 9; }, "product partition 0 of layer 1: child_rows[3] is 9");
  rejects([](Plan& p) { p.layers[1].products[0].row_start = 8; }, "product partition 0 of layer 1: rows 8 + 2");
  rejects([](Plan& p) { p.layers[2].sums[0].out_rows[0] = 8; p.layers[2].sums[0].block_size = 2; },
          "sum partition 0 of layer 2: block 0 writes rows 8 + 2");
  rejects([](Plan& p) { p.layers[2].sums[0].child_rows[0] = 8; }, "entry 0 reads rows 8 + 2 outside the 9 rows");
  rejects([](Plan& p) { p.layers[2].sums[0].weight_offsets[0] = 7; }, "entry 0 reads weights 7 + 2 of 8");
  rejects([](Plan& p) { p.layers[2].sums[0].weight_offsets[0] = -1; }, "pads only one of child_rows");
  rejects([](Plan& p) { p.layers[2].sums[0].num_blocks = 2; }, "out_rows has 1 entries for 2 blocks");
  rejects([](Plan& p) { p.layers[2].sums[0].fanin = 0; }, "fanin 0");
  rejects([](Plan& p) { p.layers[2].sums[0].child_block_size = 0; }, "block sizes 1 x 0");
  {  // Padding entries (-1, -1) are fine.
    Plan p = tiny_plan();
    SumPartition& s = p.layers[2].sums[0];
    s.fanin = 2;
    s.child_rows = {5, -1};
    s.weight_offsets = {6, -1};
    validate_plan(p);
  }
  return report("test_plan_io");
}
