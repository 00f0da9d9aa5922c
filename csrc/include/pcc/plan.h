// The execution plan: what the compiler emits and every backend runs.
//
// Values. All node values of one pass live in one float32 buffer of num_rows rows, each row holding
// one node's log-value for every batch element (row-major [num_rows, batch], batch contiguous).
//   * Row kOneRow holds log 1 = 0 for every batch element: product partitions pad with it.
//   * Row kZeroRow holds log 0 = -inf (it is listed in pad_ranges): a product node that reads it is
//     -inf, which is how product partitions fill the pad rows between their vectors.
//   * Each node vector occupies a contiguous run of rows, rounded up to a multiple of the largest
//     block size that writes or reads it. The rows past the vector's end (listed in pad_ranges) hold
//     -inf: sum blocks that overhang a vector read zero probability there, and sum blocks whose
//     output overhangs write -inf there (their weight rows are zero).
// Layers run in order; a layer reads only rows written by earlier layers.
// Transient rows. Input and product vectors the root does not need are computed right before their
// first reader and share rows with vectors whose lifetimes do not overlap (compiler pass reuse_rows),
// so only sum values persist through a pass. The backward pass recomputes them (Layer::recompute);
// after a pass their rows hold whatever was computed there last.
//   * InputGroup: rows [row_start, row_start + num_nodes) get log p(x[var]) of one distribution kind
//     (unless the group is fused: then its product readers compute those values where they read them).
//   * ProductPartition: row_start + i gets the sum of the fanin rows child_rows[i * fanin + k].
//   * SumPartition: num_blocks sum blocks of block_size rows each. Block i writes rows
//     out_rows[i] .. out_rows[i] + block_size and reads fanin child blocks of child_block_size rows;
//     its weights for child block k are a [block_size, child_block_size] row-major matrix at
//     params[weight_offsets[i * fanin + k]] (-1: padding, skipped).
//     out[r] = log sum_k sum_c W_k[r, c] * exp(child_k[c]).
//     With child_arity A = 1, child block k is the rows starting at child_rows[i * fanin + k]. With
//     A > 1 it is an element-wise product the plan never stores (a fused product vector): child_k[c]
//     = sum over a of value[child_rows[(i * fanin + k) * A + a] + c], over the starts that are not
//     -1. Its flow goes to every one of those rows (the product's backward, folded into the sum's).
//     An entry is padding when its first start is -1 (and then all of its starts are).
// Parameters. One float32 buffer in linear space. Input node slots: Categorical K probabilities
// (node-major: a node's K slots are contiguous; or category-major, chosen per parameter group by the
// compiler for large vocabularies: slot k of every node of the group together, so the nodes of one
// variable reading one category read contiguous memory), Bernoulli 2 probabilities (P(x=0), P(x=1): a two-category categorical), Gaussian 3 slots (mean, std,
// and one that holds nothing in the parameters but the E-step's flow total in the flow buffer); then
// the sum weight blocks. Tied vectors share offsets. A buffer of parameter flows (EM statistics) has
// the same layout. param_map relates each IR parameter group element to its place in the buffer,
// `groups` gives each group's structure (for normalization and EM), and param_valid marks the slots
// that hold real parameters (zero padding inside weight blocks and the Gaussian's third slot do not).
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "pcc/ir.h"

namespace pcc {

enum class LayerKind : uint8_t { Input = 0, Product = 1, Sum = 2 };

struct InputGroup {
  Dist dist = Dist::Categorical;
  int64_t row_start = 0, num_nodes = 0;
  std::vector<int64_t> var;           // [num_nodes]
  std::vector<int64_t> param_offset;  // [num_nodes]: first parameter of the node
  std::vector<int64_t> num_cats;      // [num_nodes]: categories (Categorical), 2 (Bernoulli), 0
  // Slot k of node i is param_offset[i] + k * cat_stride: 1 for node-major parameters, the parameter
  // group's node count for category-major ones (Categorical only; one stride per InputGroup).
  int64_t cat_stride = 1;
  // 1: a fused input group (compiler pass fuse_inputs; Categorical and Bernoulli only). No backend
  // writes its values: the product partitions that list it in fused_inputs, its only readers, compute
  // a node's log p(x[var]) where they read its row. Its flows and its backward are as for any group.
  int64_t fused = 0;
};

// Whether `row` is one of g's node rows (a fused group's readers compute the nodes they find there).
inline bool holds_row(const InputGroup& g, int64_t row) { return row >= g.row_start && row < g.row_start + g.num_nodes; }

struct ProductPartition {
  int64_t row_start = 0, num_nodes = 0, fanin = 0;
  std::vector<int64_t> child_rows;  // [num_nodes * fanin], padded with kOneRow
  // (layer, index) of the fused input groups this partition computes: a child row inside one of them
  // is that node's log p(x[var]), computed here instead of read (its flow still goes to the row). The
  // backward's recompute of the partition also clears the flow rows of the fused nodes it reads (the
  // groups are in no recompute list), before any of their readers' backward adds to them; every node
  // of a fused group is read by some partition that lists it.
  std::vector<std::pair<int64_t, int64_t>> fused_inputs;
};

struct SumPartition {
  int64_t block_size = 1, child_block_size = 1, num_blocks = 0, fanin = 0;
  // Row starts per child block (1, or the arity of fused products; see above).
  int64_t child_arity = 1;
  // The largest child_arity validate_plan accepts: fused products have a few children, so a larger
  // value is a corrupt or hand-made file, and backends may keep an entry's starts in a small array.
  static constexpr int64_t kMaxChildArity = 64;
  // 1 when no two blocks of this partition share a weight matrix (no tied vectors inside it), so
  // parameter flows may be accumulated block-parallel without atomics.
  int64_t disjoint_weights = 1;
  std::vector<int64_t> out_rows;        // [num_blocks]
  std::vector<int64_t> child_rows;      // [num_blocks * fanin * child_arity], -1 = padding / none
  std::vector<int64_t> weight_offsets;  // [num_blocks * fanin], -1 = padding
};

struct Layer {
  LayerKind kind = LayerKind::Input;
  std::vector<InputGroup> inputs;      // kind Input
  std::vector<ProductPartition> products;  // kind Product
  std::vector<SumPartition> sums;      // kind Sum
  // (layer, index) of earlier input groups / product partitions whose rows are reused by other
  // vectors (see Transient rows above): before this layer's backward, run them forward again and
  // zero their flows. Sorted, so children come before the products that read them. A product layer
  // may name its own partitions (products nothing reads: their flows must start at zero).
  std::vector<std::pair<int64_t, int64_t>> recompute;
};

// IR parameter group `group`, elements ir_offset .. ir_offset + length, live at params[plan_offset +
// k * plan_stride] for k < length.
struct ParamRun {
  int64_t group = 0, ir_offset = 0, plan_offset = 0, length = 0, plan_stride = 1;
};

// How one IR parameter group sits in the buffer. Inputs: slot k of node i is at
// node_slot(g, i) + k * cat_stride: base + i * width + k node-major (cat_stride 1), base + k *
// num_nodes + i category-major (cat_stride = num_nodes, Categorical only).
// Sums: sum block s (nodes s*b .. s*b+b-1, those below num_nodes real) has weight matrices [b, cb]
// at block_offsets[block_start[s] .. block_start[s+1]); a sum node's parameters are its row of
// each, restricted to param_valid slots. Groups no reachable vector uses have num_nodes 0.
struct GroupLayout {
  NodeKind kind = NodeKind::Input;
  Dist dist = Dist::Categorical;
  int64_t num_nodes = 0, base = 0, width = 0;
  int64_t cat_stride = 1;  // inputs: 1 node-major, num_nodes category-major
  int64_t block_size = 0, child_block_size = 0;
  std::vector<int64_t> block_start, block_offsets;
};

// First slot of input node i of group g (slot k is at node_slot(g, i) + k * g.cat_stride).
inline int64_t node_slot(const GroupLayout& g, int64_t i) {
  return g.cat_stride == 1 ? g.base + i * g.width : g.base + i;
}

// Parameter slots per input node (see Parameters above).
int64_t param_width(Dist d, int64_t num_cats);

struct Plan {
  static constexpr int64_t kOneRow = 0;
  static constexpr int64_t kZeroRow = 1;

  int64_t num_vars = 0;
  int64_t num_rows = 0;
  std::vector<std::pair<int64_t, int64_t>> pad_ranges;  // (first row, count) holding -inf
  std::vector<Layer> layers;

  // Per variable: the smallest category count of a discrete input on it (Bernoulli counts 2), 0 if
  // only continuous inputs read it, -1 if no input reads it. Inputs are validated against this.
  std::vector<int64_t> var_limit;

  int64_t root_row = 0, num_root_nodes = 0;  // the root vector's rows
  // Where a plan has fused input groups: the first of num_vars rows that no layer writes, in which a
  // GPU backend may stage x's category indices (row x_rows + v, one int32 per batch element) for the
  // products that compute fused inputs, so they read them coalesced; the CPU reads x itself. -1: none.
  int64_t x_rows = -1;
  std::vector<int64_t> vector_rows;          // first row of each IR vector; -1 if unreachable or fused

  std::vector<float> params;
  std::vector<ParamRun> param_map;
  std::vector<int64_t> param_group_sizes;    // element count of each IR group
  std::vector<GroupLayout> groups;           // per IR group
  std::vector<uint8_t> param_valid;          // [params.size()]

  Stats stats;  // of the source circuit
};

// Numbers for the compile report.
struct PlanSummary {
  int64_t layers = 0, input_groups = 0, product_partitions = 0, sum_partitions = 0;
  int64_t fused_input_groups = 0;  // of input_groups: computed by the products that read them
  int64_t sum_blocks = 0;
  int64_t sum_edges_real = 0, sum_edges_padded = 0;          // node-level multiply-adds
  int64_t product_edges_real = 0, product_edges_padded = 0;  // padded: of stored products
  int64_t fused_product_edges = 0;  // of fused products, once per sum block entry that reads one
  int64_t flops_per_sample = 0, bytes_per_sample = 0;
  int64_t value_bytes_per_sample = 0, param_bytes = 0;
};

PlanSummary summarize(const Plan& p);
std::string plan_report(const Plan& p);  // human-readable, what pcc-compile prints

// .pcplan files: same container and safety rules as .pcir (docs/ir.md).
std::string serialize_plan(const Plan& p);
Plan parse_plan(const std::string& bytes, const std::string& source = "<memory>");
void write_plan(const Plan& p, const std::string& path);
Plan read_plan(const std::string& path);
// IR parameter group g <-> its slots in a plan-layout buffer (Bernoulli complements and the
// Gaussian's spare slot are filled by write_group). group_slots: the slot of each of the group's
// elements in IR order (-1: not stored, read as 0), so a caller can gather them where the buffer is.
std::vector<int64_t> group_slots(const Plan& p, int64_t g);
std::vector<float> read_group(const Plan& p, const float* params, int64_t g);
void write_group(const Plan& p, float* params, int64_t g, const std::vector<float>& values);

// A fingerprint (16 hex digits) of where every IR parameter lives in a plan-layout buffer (param_map,
// group layouts, buffer size): two plans with the same one can exchange raw parameter buffers
// (state_dict, optimizer state); different ones would scramble them.
std::string param_layout_id(const Plan& p);

// Structural checks of a plan read from a file (rows, offsets and counts in range), so a plan that
// parsed can never make a backend read or write out of bounds.
void validate_plan(const Plan& p);

}  // namespace pcc
