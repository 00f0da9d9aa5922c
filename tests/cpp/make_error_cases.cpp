// Generates tests/error: inputs pcc-compile must reject (exit code 2), each NAME.pcir / NAME.pcplan
// with NAME.expect holding a substring of the expected message. Run once and commit the output:
//   build/ir/tests/make_error_cases tests/error
// The files are committed (not generated at test time) so that a change to the writer cannot
// silently change what the reader is tested against.
#include <cstdio>
#include <fstream>
#include <functional>
#include <limits>
#include <string>

#include "core/container.h"
#include "core/plan_io.h"
#include "pcc/ir.h"
#include "pcc/plan.h"
#include "samples.h"

using namespace pcc;
using namespace pcc_test;
namespace ct = pcc::container;

namespace {

std::string out_dir;
int written = 0;

void put(const std::string& file, const std::string& bytes) {
  std::ofstream f(out_dir + "/" + file, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!f) {
    std::fprintf(stderr, "cannot write %s/%s\n", out_dir.c_str(), file.c_str());
    std::exit(1);
  }
}

void emit(const std::string& file, const std::string& bytes, const std::string& expect) {
  put(file, bytes);
  put(file.substr(0, file.rfind('.')) + ".expect", expect + "\n");
  ++written;
}

// tiny_circuit() (0 categorical, 1 Bernoulli, 2 Gaussian, 3 product, 4 dense sum) changed by `edit`.
std::string tiny(const std::function<void(Circuit&)>& edit) {
  Circuit c = tiny_circuit();
  edit(c);
  return serialize_circuit(c);
}

std::string with_version(std::string file, uint32_t v) {
  for (int k = 0; k < 4; ++k) file[8 + k] = static_cast<char>((v >> (8 * k)) & 0xff);
  return file;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_error_cases OUT_DIR\n");
    return 2;
  }
  out_dir = argv[1];
  const std::string circuit = serialize_circuit(tiny_circuit());
  // Plan cases are written in the format version they were added with, so the committed files stay
  // what they were and the suite keeps reading every version: those older than format version 3 as
  // version 2 files, the cat_stride ones as version 3, the child_arity ones as version 4, the fused
  // input ones as version 5.
  const auto v2 = [](const Plan& p) { return serialize_plan_version(p, 2); };
  const auto v3 = [](const Plan& p) { return serialize_plan_version(p, 3); };
  const auto v4 = [](const Plan& p) { return serialize_plan_version(p, 4); };
  const auto v5 = [](const Plan& p) { return serialize_plan_version(p, 5); };
  const std::string plan = v2(tiny_plan());
  const float nan = std::numeric_limits<float>::quiet_NaN();

  // ---- container: truncation, corruption, kind, version ----
  emit("empty.pcir", "", "truncated: need 32 bytes for the header at offset 0, 0 left");
  emit("truncated_header.pcir", circuit.substr(0, 20), "truncated: need 32 bytes for the header at offset 0, 20 left");
  emit("truncated_payload.pcir", circuit.substr(0, circuit.size() - 10), "truncated: need");
  emit("not_a_circuit.pcir", "this is a text file, not a circuit\n", "not a pcc circuit file (.pcir) (bad magic bytes at offset 0)");
  emit("plan_as_circuit.pcir", plan, "not a pcc circuit file (.pcir): it is a pcc plan file (.pcplan)");
  emit("circuit_as_plan.pcplan", circuit, "not a pcc plan file (.pcplan): it is a pcc circuit file (.pcir)");
  {
    std::string bad = circuit;
    bad[ct::kHeaderSize + 100] ^= 0x04;
    emit("checksum.pcir", bad, "corrupt: checksum mismatch");
  }
  emit("newer_version.pcir", with_version(circuit, 2), "file version 2 is newer than this pcc reads (1)");
  emit("older_version.pcir", with_version(circuit, 0), "file version 0 is older than this pcc reads (1)");
  emit("trailing_bytes.pcir", circuit + std::string(3, '\0'), "corrupt: 3 trailing bytes after the payload");
  {  // Sizes far beyond the file, with a valid checksum: refused before allocating.
    ct::Writer w;
    w.i64(0);
    w.u64(1);
    w.u64(uint64_t(1) << 40);
    emit("huge_array.pcir", w.seal(ct::Kind::Circuit),
         "truncated: need 4398046511104 bytes for values of parameter group 0 at offset 56, 0 left");
    ct::Writer v;
    v.i64(0);
    v.u64(0);
    v.u64(uint64_t(1) << 50);
    emit("huge_vector_count.pcir", v.seal(ct::Kind::Circuit),
         "bytes for vector count at offset 56, 0 left");
  }
  emit("bad_kind.pcir", tiny([](Circuit& c) { c.nodes[2].kind = static_cast<NodeKind>(7); }),
       "corrupt: kind of vector 2 is 7, out of range (0..2)");
  emit("bad_dist.pcir", tiny([](Circuit& c) { c.nodes[0].dist = static_cast<Dist>(9); }), "dist of vector 0 is 9, out of range");

  // ---- structure (checked while reading) ----
  emit("empty_circuit.pcir", serialize_circuit(Circuit{}), "empty circuit");
  emit("bad_root.pcir", tiny([](Circuit& c) { c.root = 9; }), "root 9 is not a vector id (the circuit has 5 vectors)");
  emit("forward_reference.pcir", tiny([](Circuit& c) { c.nodes[3].children[0] = 4; }),
       "product vector 3: child 0 is vector 4, not an earlier vector (cycle or forward reference)");
  emit("bad_param_group.pcir", tiny([](Circuit& c) { c.nodes[4].params = 9; }),
       "sum vector 4: parameter group 9 does not exist (4 groups)");

  // ---- verify: valid files, invalid circuits ----
  emit("not_decomposable.pcir", tiny([](Circuit& c) { c.nodes[2].var = 0; }),
       "product vector 3: children have overlapping scopes (not decomposable): vector 0 has {0}, vector 2 has {0}");
  {
    Builder b;
    const int64_t g = b.group(probabilities(2));
    for (int64_t v : {0, 1, 2}) b.input(v, 2, Dist::Bernoulli, 0, g);
    const int64_t p01 = b.product({0, 1}, 2);
    const int64_t p02 = b.product({0, 2}, 2);
    b.sum({p01, p02}, 1, SumForm::Dense, b.group(normalized(1, 4)));
    emit("not_smooth.pcir", serialize_circuit(b.c),
         "sum vector 5: children have different scopes (not smooth): vector 3 has {0,1}, vector 4 has {0,2}");
  }
  emit("negative_var.pcir", tiny([](Circuit& c) { c.nodes[1].var = -1; }), "input vector 1: variable -1 is negative");
  emit("zero_nodes.pcir", tiny([](Circuit& c) { c.nodes[3].num_nodes = 0; }), "product vector 3: num_nodes is 0");
  emit("zero_categories.pcir", tiny([](Circuit& c) { c.nodes[0].num_cats = 0; c.params[0].clear(); }),
       "input vector 0: categorical num_cats is 0");
  emit("input_with_children.pcir", tiny([](Circuit& c) { c.nodes[1].children = {0}; }),
       "input vector 1: an input vector has no children");
  emit("product_with_params.pcir", tiny([](Circuit& c) { c.nodes[3].params = 3; }),
       "product vector 3: has parameter group 3, but products have no parameters");
  emit("product_edges_shape.pcir", tiny([](Circuit& c) { c.nodes[3].prod_edges = {0, 1, 2}; }),
       "product vector 3: edges have 3 entries, expected [num_nodes 4, children 3]");
  emit("product_edge_range.pcir",
       tiny([](Circuit& c) { c.nodes[3].prod_edges = {0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 4}; }),
       "product vector 3: edge (3, 2) = 4 is out of range: child vector 2 has 4 nodes");
  emit("elementwise_sizes.pcir", tiny([](Circuit& c) { c.nodes[2].num_nodes = 3; c.params[2].resize(6); }),
       "product vector 3: elementwise product of 4 nodes, but child vector 2 has 3 nodes");
  emit("sum_no_children.pcir", tiny([](Circuit& c) { c.nodes[4].children.clear(); }), "sum vector 4: no children");
  emit("dense_with_edges.pcir", tiny([](Circuit& c) { c.nodes[4].sum_edges = {0, 1}; }),
       "sum vector 4: dense but has sum_edges");
  emit("sparse_edge_range.pcir",
       serialize_circuit(two_products(SumForm::Sparse, {0, 0, 1, /**/ 0, 8, 3}, {0.5f, 0.5f, 1})),
       "sum vector 6: edge 1 (sum node 0, child node 8) is out of range: 2 sum nodes, 8 child nodes");
  emit("sparse_repeated_pair.pcir",
       serialize_circuit(two_products(SumForm::Sparse, {0, 1, 0, /**/ 5, 3, 5}, {0.5f, 1, 0.5f})),
       "sum vector 6: edge (sum node 0, child node 5) is repeated (edges 0 and 2)");
  emit("sparse_node_without_edge.pcir",
       serialize_circuit(two_products(SumForm::Sparse, {1, 1, 2, /**/ 0, 1, 0}, {0.5f, 0.5f, 1}, 1, 3)),
       "sum vector 6: sum node 0 has no edge");
  emit("sparse_odd_edges.pcir", serialize_circuit(two_products(SumForm::Sparse, {0, 0, 1, /**/ 0, 7}, {0.5f, 0.5f, 1})),
       "sum vector 6: sum_edges has 5 entries, expected [2, E]");
  emit("block_not_power_of_two.pcir", serialize_circuit(two_products(SumForm::Block, {0, /**/ 0}, normalized(9, 3), 3, 3)),
       "sum vector 6: block_size 3 is not a power of two");
  emit("block_not_multiple.pcir", serialize_circuit(two_products(SumForm::Block, {0, /**/ 0}, normalized(8, 8), 8, 8)),
       "sum vector 6: child vector 4 has 4 nodes, not a multiple of block_size 8");
  emit("block_repeated_pair.pcir",
       serialize_circuit(two_products(SumForm::Block, {0, 1, 0, /**/ 2, 1, 2}, normalized(6, 2), 2, 4)),
       "sum vector 6: edge (sum block 0, child block 2) is repeated (edges 0 and 2)");
  emit("block_without_edge.pcir", serialize_circuit(two_products(SumForm::Block, {0, 0, /**/ 0, 1}, normalized(4, 2), 2, 4)),
       "sum vector 6: sum block 1 has no edge");
  emit("param_count.pcir", tiny([](Circuit& c) { c.params[3].push_back(0.0f); }),
       "sum vector 4: parameter group 3 has 5 values, expected 4");
  emit("weights_not_normalized.pcir", tiny([](Circuit& c) { c.params[3][0] += 0.5f; }),
       "sum vector 4: weights of node 0 sum to 1.5, not 1");
  emit("negative_weight.pcir", tiny([](Circuit& c) { c.params[3][1] = -0.25f; }),
       "sum vector 4: weight 1 is -0.25 (must be finite and non-negative)");
  emit("nan_weight.pcir", tiny([nan](Circuit& c) { c.params[3][2] = nan; }), "sum vector 4: weight 2 is nan");
  emit("categorical_not_normalized.pcir", tiny([](Circuit& c) { c.params[0][3] = 0.0f; }),
       "input vector 0: probabilities of node 1 sum to");
  emit("bernoulli_out_of_range.pcir", tiny([](Circuit& c) { c.params[1][2] = 1.25f; }),
       "input vector 1: Bernoulli probability of node 2 is 1.25 (must be in [0, 1])");
  emit("gaussian_zero_std.pcir", tiny([](Circuit& c) { c.params[2][4] = 0.0f; }),
       "input vector 2: Gaussian std of node 0 is 0 (must be finite and positive)");
  emit("gaussian_nan_mean.pcir", tiny([nan](Circuit& c) { c.params[2][1] = nan; }),
       "input vector 2: Gaussian mean of node 1 is nan");
  emit("tied_mismatch.pcir", tiny([](Circuit& c) {
         NodeVector copy = c.nodes[0];  // a duplicate on variable 3 with the wrong category count
         copy.var = 3;
         copy.num_cats = 2;
         c.nodes.insert(c.nodes.begin() + 3, copy);
         c.nodes[4].children.push_back(3);  // product (now vector 4) also uses it
         c.nodes[5].children = {4};
         c.root = 5;
       }),
       "input vector 3: tied to input vector 0 (parameter group 0) but differs in num_cats");

  // ---- plans ----
  emit("plan_truncated.pcplan", plan.substr(0, plan.size() / 2), "truncated: need");
  {
    std::string bad = plan;
    bad[bad.size() - 5] ^= 0x40;
    emit("plan_checksum.pcplan", bad, "corrupt: checksum mismatch");
  }
  // The one case that follows the current version: the first one this build does not read (the
  // reader stops at the header, so the payload stays a version 3 one and only the version changes).
  emit("plan_newer_version.pcplan", with_version(v3(tiny_plan()), ct::kPlanVersion + 1),
       "file version " + std::to_string(ct::kPlanVersion + 1) + " is newer than this pcc reads (" +
           std::to_string(ct::kPlanVersion) + ")");
  emit("plan_older_version.pcplan", with_version(plan, 1), "file version 1 is older than this pcc reads (2); recompile");
  {
    Plan p = tiny_plan();
    p.layers[2].sums[0].child_rows[0] = 8;
    emit("plan_bad_row.pcplan", v2(p),
         "invalid plan: sum partition 0 of layer 2: entry 0 reads rows 8 + 2 outside the 9 rows");
    p = tiny_plan();
    p.layers[0].inputs[0].param_offset[1] = 100;
    emit("plan_bad_param_offset.pcplan", v2(p),
         "invalid plan: input group 0 of layer 0: node 1 reads parameters 100 + 2 of 10");
    p = tiny_plan();
    p.param_valid.pop_back();
    emit("plan_param_valid_size.pcplan", v2(p), "invalid plan: param_valid has 9 entries for 10 parameters");
    p = tiny_plan();
    p.groups[1].base = 8;
    emit("plan_group_slots.pcplan", v2(p),
         "invalid plan: parameter group 1: slots 8 + 2 x 2 outside the 10 parameters");
    p = tiny_plan();
    p.groups[0].cat_stride = 3;
    emit("plan_group_cat_stride.pcplan", v3(p),
         "invalid plan: parameter group 0: cat_stride 3 (must be 1, or num_nodes 2 for categorical)");
    p = tiny_plan();
    p.layers[0].inputs[0].cat_stride = 9;
    emit("plan_cat_stride_slots.pcplan", v3(p),
         "invalid plan: input group 0 of layer 0: node 0 (categorical, 2 slots, cat_stride 9) reads slot 0 of a "
         "categorical group at 0 with 2 slots per node and cat_stride 1");
    p = tiny_plan();
    p.layers[0].inputs[0].param_offset[1] = 1;  // in range, but inside node 0's slots
    emit("plan_input_mid_node.pcplan", v3(p),
         "invalid plan: input group 0 of layer 0: node 1 (categorical, 2 slots, cat_stride 1) reads slot 1 of a "
         "categorical group at 0 with 2 slots per node and cat_stride 1, not a node's first slot");
    p = tiny_plan();
    p.groups[2].block_start = {0, 2};
    emit("plan_group_block_start.pcplan", v2(p),
         "invalid plan: parameter group 2: block_start does not span block_offsets");
    p = tiny_plan();
    SumPartition& s = p.layers[2].sums[0];  // two blocks on one weight matrix, marked disjoint
    s.num_blocks = 2;
    s.out_rows = {7, 8};
    s.child_rows = {5, 5};
    s.weight_offsets = {8, 8};
    emit("plan_shared_weights.pcplan", v2(p),
         "invalid plan: sum partition 0 of layer 2: disjoint_weights is set but two blocks share a weight matrix");
  }
  {  // Fused inputs: both input groups computed by the product partition.
    Plan p = fused_inputs_tiny();
    p.layers[1].products[0].fused_inputs.pop_back();
    emit("plan_fused_input_unlisted.pcplan", v5(p),
         "invalid plan: input group 1 of layer 0 is fused but no product partition computes it");
    p = fused_inputs_tiny();
    p.layers[1].products[0].fused_inputs[0] = {3, 0};
    emit("plan_fused_input_ref.pcplan", v5(p),
         "invalid plan: product partition 0 of layer 1: fused input (3, 0) is not an input group of an earlier layer");
  }
  {  // Fused products: the sum's one entry adds rows 5-6 and 1-2 (child_arity 2).
    Plan p = tiny_plan();
    p.layers[2].sums[0].child_arity = 0;
    emit("plan_child_arity_zero.pcplan", v4(p),
         "invalid plan: sum partition 0 of layer 2: child_arity is 0 (must be 1 to 64)");
    p = tiny_plan();
    p.layers[2].sums[0].child_arity = 2;  // child_rows left with one start
    emit("plan_fused_child_rows_size.pcplan", v4(p),
         "invalid plan: sum partition 0 of layer 2: child_rows has 1 entries, expected num_blocks 1 x fanin 1 x "
         "child_arity 2");
    p = tiny_plan();
    SumPartition& s = p.layers[2].sums[0];  // entry 1 is padding but names a second child
    s.child_arity = 2;
    s.fanin = 2;
    s.child_rows = {5, 1, -1, 3};
    s.weight_offsets = {8, -1};
    emit("plan_fused_padding.pcplan", v4(p),
         "invalid plan: sum partition 0 of layer 2: entry 1 is padding (first start -1) but start 1 is 3");
  }
  std::printf("wrote %d error cases to %s\n", written, out_dir.c_str());
  return 0;
}
