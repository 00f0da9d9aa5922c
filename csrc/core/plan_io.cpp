// .pcplan files: the compiled Plan in the shared container (container.h), and validate_plan, the
// structural check that makes any plan that parses safe to hand to a backend. The payload order is
// documented in docs/ir.md; keep the two in step.
#include <algorithm>
#include <cmath>
#include <map>
#include <string>

#include "core/container.h"
#include "core/plan_io.h"
#include "pcc/error.h"
#include "pcc/plan.h"

namespace pcc {
namespace {

// Smallest possible records (scalars plus empty arrays), for checking counts before reserving; input
// groups and group layouts have one more i64 (cat_stride) from version 3, sum partitions one more
// (child_arity) from version 4, input groups one more (fused) and product partitions a count
// (fused_inputs) from version 5.
constexpr size_t kMinLayerBytes = 1 + 4 * 8;
constexpr size_t kMinInputGroupBytes = 1 + 2 * 8 + 3 * 8;
constexpr size_t kMinProductBytes = 3 * 8 + 8;
constexpr size_t kMinSumBytes = 5 * 8 + 3 * 8;
constexpr size_t kMinGroupBytes = 2 + 5 * 8 + 2 * 8;
constexpr size_t kPadRangeBytes = 2 * 8;
constexpr size_t kParamRunBytes = 5 * 8;
constexpr size_t kStatsFields = 7;
constexpr uint32_t kCatStrideVersion = 3;  // the first plan version with cat_stride fields
constexpr uint32_t kChildArityVersion = 4;  // the first plan version with child_arity fields
constexpr uint32_t kFusedInputsVersion = 5;  // the first plan version with fused input groups

// The Stats fields in file order.
void stats_fields(Stats& s, int64_t* (&out)[kStatsFields]) {
  int64_t* f[kStatsFields] = {&s.input_nodes, &s.sum_nodes,  &s.product_nodes, &s.sum_edges,
                              &s.product_edges, &s.sum_params, &s.input_params};
  for (size_t i = 0; i < kStatsFields; ++i) out[i] = f[i];
}

uint8_t read_enum(container::Reader& r, const char* what, uint8_t last) {
  const size_t at = r.offset();
  const uint8_t v = r.u8(what);
  if (v > last) {
    raise(r.source(), ": corrupt: ", r.field(what), " is ", int(v), ", out of range (0..", int(last),
          ") at offset ", at);
  }
  return v;
}

// [start, start + count) inside [lo, limit), without overflow for any int64 inputs.
bool span_ok(int64_t start, int64_t count, int64_t lo, int64_t limit) {
  return start >= lo && count >= 0 && start <= limit && count <= limit - start;
}

// start + k * stride inside [0, limit) for every k < count (stride >= 1), without overflow.
bool strided_span_ok(int64_t start, int64_t count, int64_t stride, int64_t limit) {
  return count == 0 ||
         (start >= 0 && start < limit && count > 0 && (count - 1) <= (limit - 1 - start) / stride);
}

// a * b == expected, without overflow.
bool product_is(int64_t a, int64_t b, size_t expected) {
  if (a < 0 || b < 0) return false;
  if (a == 0 || b == 0) return expected == 0;
  if (a > INT64_MAX / b) return false;
  return static_cast<size_t>(a * b) == expected;
}

// One group layout: slots inside the buffer, sum block lists consistent and in range.
void validate_group(const Plan& p, size_t gi) {
  const GroupLayout& g = p.groups[gi];
  const int64_t num_params = static_cast<int64_t>(p.params.size());
  const std::string at = "parameter group " + std::to_string(gi);
  PCC_CHECK(g.num_nodes >= 0, "invalid plan: ", at, ": num_nodes is ", g.num_nodes);
  if (g.num_nodes == 0) return;
  if (g.kind == NodeKind::Input) {
    PCC_CHECK(g.width >= 1 && (g.dist == Dist::Categorical || g.width == param_width(g.dist, 0)),
              "invalid plan: ", at, ": width ", g.width, " for ", to_string(g.dist));
    PCC_CHECK(g.cat_stride == 1 || (g.dist == Dist::Categorical && g.cat_stride == g.num_nodes),
              "invalid plan: ", at, ": cat_stride ", g.cat_stride, " (must be 1, or num_nodes ", g.num_nodes,
              " for categorical)");
    // Node- and category-major layouts both fill exactly num_nodes x width slots from base.
    PCC_CHECK(g.num_nodes <= INT64_MAX / g.width && span_ok(g.base, g.num_nodes * g.width, 0, num_params),
              "invalid plan: ", at, ": slots ", g.base, " + ", g.num_nodes, " x ", g.width, " outside the ",
              num_params, " parameters");
    return;
  }
  PCC_CHECK(g.kind == NodeKind::Sum, "invalid plan: ", at, ": a product group");
  PCC_CHECK(g.block_size >= 1 && g.child_block_size >= 1 && g.block_size <= (INT64_MAX / g.child_block_size),
            "invalid plan: ", at, ": block sizes ", g.block_size, " x ", g.child_block_size);
  const int64_t blocks = static_cast<int64_t>(g.block_start.size()) - 1;
  PCC_CHECK(blocks >= 1 && g.block_size <= INT64_MAX / blocks && g.num_nodes <= blocks * g.block_size &&
                g.num_nodes > (blocks - 1) * g.block_size,
            "invalid plan: ", at, ": ", blocks, " sum blocks of ", g.block_size, " for ", g.num_nodes, " nodes");
  PCC_CHECK(g.block_start[0] == 0 && g.block_start[blocks] == static_cast<int64_t>(g.block_offsets.size()),
            "invalid plan: ", at, ": block_start does not span block_offsets");
  for (int64_t s = 0; s < blocks; ++s) {
    PCC_CHECK(g.block_start[s] <= g.block_start[s + 1], "invalid plan: ", at, ": block_start decreases at ", s);
  }
  const int64_t matrix = g.block_size * g.child_block_size;
  for (int64_t off : g.block_offsets) {
    PCC_CHECK(span_ok(off, matrix, 0, num_params), "invalid plan: ", at, ": weight block at ", off,
              " outside the ", num_params, " parameters");
  }
}

}  // namespace

std::string serialize_plan(const Plan& p) { return serialize_plan_version(p, container::kPlanVersion); }

std::string serialize_plan_version(const Plan& p, uint32_t version) {
  PCC_CHECK(version >= container::kOldestPlanVersion && version <= container::kPlanVersion,
            "serialize_plan: cannot write plan version ", version);
  const bool strided = version >= kCatStrideVersion, fused = version >= kChildArityVersion;
  const bool fused_in = version >= kFusedInputsVersion;
  container::Writer w;
  auto cat_stride = [&](int64_t s) {  // version 2 plans are node-major: no field, stride 1
    if (strided) w.i64(s);
    else PCC_CHECK(s == 1, "serialize_plan: plan version ", version, " has no category-major inputs");
  };
  auto child_arity = [&](int64_t a) {  // versions 2 and 3 have no fused products: no field, arity 1
    if (fused) w.i64(a);
    else PCC_CHECK(a == 1, "serialize_plan: plan version ", version, " has no fused products (child_arity ", a, ")");
  };
  auto no_fused_inputs = [&](bool none) {  // versions 2 to 4: no fields, nothing fused
    PCC_CHECK(fused_in || none, "serialize_plan: plan version ", version, " has no fused input groups");
  };
  w.i64(p.num_vars);
  w.i64(p.num_rows);
  w.i64(p.root_row);
  w.i64(p.num_root_nodes);
  if (fused_in) w.i64(p.x_rows);
  no_fused_inputs(p.x_rows == -1);
  w.count(p.pad_ranges.size());
  for (const auto& [first, n] : p.pad_ranges) {
    w.i64(first);
    w.i64(n);
  }
  w.i64s(p.var_limit);
  w.i64s(p.vector_rows);
  w.f32s(p.params);
  w.count(p.param_map.size());
  for (const ParamRun& r : p.param_map) {
    w.i64(r.group);
    w.i64(r.ir_offset);
    w.i64(r.plan_offset);
    w.i64(r.length);
    w.i64(r.plan_stride);
  }
  w.i64s(p.param_group_sizes);
  w.count(p.groups.size());
  for (const GroupLayout& g : p.groups) {
    w.u8(static_cast<uint8_t>(g.kind));
    w.u8(static_cast<uint8_t>(g.dist));
    w.i64(g.num_nodes);
    w.i64(g.base);
    w.i64(g.width);
    cat_stride(g.cat_stride);
    w.i64(g.block_size);
    w.i64(g.child_block_size);
    w.i64s(g.block_start);
    w.i64s(g.block_offsets);
  }
  w.str(std::string(p.param_valid.begin(), p.param_valid.end()));
  Stats s = p.stats;
  int64_t* f[kStatsFields];
  stats_fields(s, f);
  for (int64_t* x : f) w.i64(*x);
  w.count(p.layers.size());
  for (const Layer& l : p.layers) {
    // All three lists are written for every layer (validate_plan requires the other two empty), so
    // the round trip is exact for any Plan.
    w.u8(static_cast<uint8_t>(l.kind));
    w.count(l.inputs.size());
    for (const InputGroup& g : l.inputs) {
      w.u8(static_cast<uint8_t>(g.dist));
      w.i64(g.row_start);
      w.i64(g.num_nodes);
      cat_stride(g.cat_stride);
      if (fused_in) w.i64(g.fused);
      no_fused_inputs(g.fused == 0);
      w.i64s(g.var);
      w.i64s(g.param_offset);
      w.i64s(g.num_cats);
    }
    w.count(l.products.size());
    for (const ProductPartition& q : l.products) {
      w.i64(q.row_start);
      w.i64(q.num_nodes);
      w.i64(q.fanin);
      w.i64s(q.child_rows);
      no_fused_inputs(q.fused_inputs.empty());
      if (!fused_in) continue;
      w.count(q.fused_inputs.size());
      for (const auto& [layer, group] : q.fused_inputs) {
        w.i64(layer);
        w.i64(group);
      }
    }
    w.count(l.sums.size());
    for (const SumPartition& q : l.sums) {
      w.i64(q.block_size);
      w.i64(q.child_block_size);
      w.i64(q.num_blocks);
      w.i64(q.fanin);
      child_arity(q.child_arity);
      w.i64(q.disjoint_weights);
      w.i64s(q.out_rows);
      w.i64s(q.child_rows);
      w.i64s(q.weight_offsets);
    }
    w.count(l.recompute.size());
    for (const auto& [layer, part] : l.recompute) {
      w.i64(layer);
      w.i64(part);
    }
  }
  return w.seal(container::Kind::Plan, version);
}

Plan parse_plan(const std::string& bytes, const std::string& source) {
  container::Reader r = container::open(bytes, container::Kind::Plan, source);
  const bool strided = r.version() >= kCatStrideVersion;  // older plans are node-major: cat_stride 1
  const bool fused = r.version() >= kChildArityVersion;   // older plans have child_arity 1
  const bool fused_in = r.version() >= kFusedInputsVersion;  // older plans fuse no inputs
  const size_t stride_bytes = strided ? 8 : 0;
  Plan p;
  p.num_vars = r.i64("num_vars");
  p.num_rows = r.i64("num_rows");
  p.root_row = r.i64("root_row");
  p.num_root_nodes = r.i64("num_root_nodes");
  if (fused_in) p.x_rows = r.i64("x_rows");
  p.pad_ranges.resize(r.count("pad range count", kPadRangeBytes));
  for (auto& [first, n] : p.pad_ranges) {
    first = r.i64("pad range first row");
    n = r.i64("pad range row count");
  }
  p.var_limit = r.i64s("var_limit");
  p.vector_rows = r.i64s("vector_rows");
  p.params = r.f32s("params");
  p.param_map.resize(r.count("param_map count", kParamRunBytes));
  for (ParamRun& m : p.param_map) {
    m.group = r.i64("param run group");
    m.ir_offset = r.i64("param run ir_offset");
    m.plan_offset = r.i64("param run plan_offset");
    m.length = r.i64("param run length");
    m.plan_stride = r.i64("param run plan_stride");
  }
  p.param_group_sizes = r.i64s("param_group_sizes");
  p.groups.resize(r.count("parameter group count", kMinGroupBytes + stride_bytes));
  for (size_t gi = 0; gi < p.groups.size(); ++gi) {
    GroupLayout& g = p.groups[gi];
    r.set_context("parameter group " + std::to_string(gi));
    g.kind = static_cast<NodeKind>(read_enum(r, "kind", static_cast<uint8_t>(NodeKind::Sum)));
    g.dist = static_cast<Dist>(read_enum(r, "dist", static_cast<uint8_t>(Dist::Gaussian)));
    g.num_nodes = r.i64("num_nodes");
    g.base = r.i64("base");
    g.width = r.i64("width");
    if (strided) g.cat_stride = r.i64("cat_stride");
    g.block_size = r.i64("block_size");
    g.child_block_size = r.i64("child_block_size");
    g.block_start = r.i64s("block_start");
    g.block_offsets = r.i64s("block_offsets");
  }
  r.set_context("");
  const std::string valid = r.str("param_valid");
  p.param_valid.assign(valid.begin(), valid.end());
  int64_t* f[kStatsFields];
  stats_fields(p.stats, f);
  for (int64_t* x : f) *x = r.i64("stats");
  p.layers.resize(r.count("layer count", kMinLayerBytes));
  for (size_t li = 0; li < p.layers.size(); ++li) {
    Layer& l = p.layers[li];
    r.set_context("layer " + std::to_string(li));
    l.kind = static_cast<LayerKind>(read_enum(r, "kind", static_cast<uint8_t>(LayerKind::Sum)));
    l.inputs.resize(r.count("input group count", kMinInputGroupBytes + stride_bytes + (fused_in ? 8 : 0)));
    for (size_t gi = 0; gi < l.inputs.size(); ++gi) {
      InputGroup& g = l.inputs[gi];
      r.set_context("input group " + std::to_string(gi) + " of layer " + std::to_string(li));
      g.dist = static_cast<Dist>(read_enum(r, "dist", static_cast<uint8_t>(Dist::Gaussian)));
      g.row_start = r.i64("row_start");
      g.num_nodes = r.i64("num_nodes");
      if (strided) g.cat_stride = r.i64("cat_stride");
      if (fused_in) g.fused = r.i64("fused");
      g.var = r.i64s("var");
      g.param_offset = r.i64s("param_offset");
      g.num_cats = r.i64s("num_cats");
    }
    r.set_context("layer " + std::to_string(li));
    l.products.resize(r.count("product partition count", kMinProductBytes + (fused_in ? 8 : 0)));
    for (size_t qi = 0; qi < l.products.size(); ++qi) {
      ProductPartition& q = l.products[qi];
      r.set_context("product partition " + std::to_string(qi) + " of layer " + std::to_string(li));
      q.row_start = r.i64("row_start");
      q.num_nodes = r.i64("num_nodes");
      q.fanin = r.i64("fanin");
      q.child_rows = r.i64s("child_rows");
      if (!fused_in) continue;
      q.fused_inputs.resize(r.count("fused input count", 16));
      for (auto& [layer, group] : q.fused_inputs) {
        layer = r.i64("fused input layer");
        group = r.i64("fused input group");
      }
    }
    r.set_context("layer " + std::to_string(li));
    l.sums.resize(r.count("sum partition count", kMinSumBytes + (fused ? 8 : 0)));
    for (size_t qi = 0; qi < l.sums.size(); ++qi) {
      SumPartition& q = l.sums[qi];
      r.set_context("sum partition " + std::to_string(qi) + " of layer " + std::to_string(li));
      q.block_size = r.i64("block_size");
      q.child_block_size = r.i64("child_block_size");
      q.num_blocks = r.i64("num_blocks");
      q.fanin = r.i64("fanin");
      if (fused) q.child_arity = r.i64("child_arity");
      q.disjoint_weights = r.i64("disjoint_weights");
      q.out_rows = r.i64s("out_rows");
      q.child_rows = r.i64s("child_rows");
      q.weight_offsets = r.i64s("weight_offsets");
    }
    r.set_context("layer " + std::to_string(li));
    l.recompute.resize(r.count("recompute count", 16));
    for (auto& [layer, part] : l.recompute) {
      layer = r.i64("recompute layer");
      part = r.i64("recompute index");
    }
  }
  r.set_context("");
  r.expect_end();
  try {
    validate_plan(p);
  } catch (const Error& e) {
    raise(source, ": ", e.what());
  }
  return p;
}

void write_plan(const Plan& p, const std::string& path) {
  container::write_file_atomic(path, serialize_plan(p));
}

Plan read_plan(const std::string& path) { return parse_plan(container::read_file(path), path); }

namespace {

// The input parameter groups' slot ranges, so that an input node reading inside one can be checked
// to read a node of it (its first slot a node_slot; the group's distribution, width and cat_stride):
// a node that read with another stride or from the middle of another node's slots would stay in
// range and be wrong. (Plans written by hand for the forward alone may have no group layouts.)
class InputLayouts {
 public:
  explicit InputLayouts(const Plan& p) {
    for (const GroupLayout& g : p.groups)
      if (g.kind == NodeKind::Input && g.num_nodes > 0) by_base_.push_back(&g);
    std::sort(by_base_.begin(), by_base_.end(), [](const GroupLayout* a, const GroupLayout* b) { return a->base < b->base; });
  }

  void check_node(const InputGroup& g, size_t k, int64_t width, const std::string& at) const {
    const int64_t off = g.param_offset[k];
    auto it = std::upper_bound(by_base_.begin(), by_base_.end(), off,
                               [](int64_t o, const GroupLayout* l) { return o < l->base; });
    const GroupLayout* l = it == by_base_.begin() ? nullptr : *(it - 1);
    if (l == nullptr || off - l->base >= l->num_nodes * l->width) return;
    const int64_t rel = off - l->base;
    const bool first_slot = l->cat_stride == 1 ? rel % l->width == 0 : rel < l->num_nodes;
    PCC_CHECK(l->dist == g.dist && l->width == width && l->cat_stride == g.cat_stride && first_slot,
              "invalid plan: ", at, ": node ", k, " (", to_string(g.dist), ", ", width, " slots, cat_stride ",
              g.cat_stride, ") reads slot ", off, " of a ", to_string(l->dist), " group at ", l->base, " with ",
              l->width, " slots per node and cat_stride ", l->cat_stride, first_slot ? "" : ", not a node's first slot");
  }

 private:
  std::vector<const GroupLayout*> by_base_;
};

}  // namespace

void validate_plan(const Plan& p) {
  const int64_t rows = p.num_rows;
  const int64_t num_params = static_cast<int64_t>(p.params.size());
  PCC_CHECK(rows >= 1, "invalid plan: num_rows is ", rows, " (row ", Plan::kOneRow, " must exist)");
  PCC_CHECK(p.num_vars >= 0, "invalid plan: num_vars is ", p.num_vars);
  PCC_CHECK(p.var_limit.size() == static_cast<size_t>(p.num_vars), "invalid plan: var_limit has ",
            p.var_limit.size(), " entries for ", p.num_vars, " variables");
  for (size_t v = 0; v < p.var_limit.size(); ++v) {
    PCC_CHECK(p.var_limit[v] >= -1, "invalid plan: var_limit of variable ", v, " is ", p.var_limit[v]);
  }
  // The staged x rows (Plan::x_rows) are the last num_vars rows, and nothing else writes there.
  PCC_CHECK(p.x_rows == -1 || (p.x_rows > Plan::kZeroRow && p.x_rows == rows - p.num_vars), "invalid plan: x_rows is ",
            p.x_rows, " (must be -1, or num_rows - num_vars = ", rows - p.num_vars, ")");
  const int64_t writable = p.x_rows >= 0 ? p.x_rows : rows;  // rows layers may write
  PCC_CHECK(p.num_root_nodes >= 1 && span_ok(p.root_row, p.num_root_nodes, 0, writable),
            "invalid plan: root rows ", p.root_row, " + ", p.num_root_nodes, " outside the ", writable,
            " rows");
  for (size_t i = 0; i < p.pad_ranges.size(); ++i) {
    const auto [first, n] = p.pad_ranges[i];
    // Row kOneRow holds log 1 and must never be overwritten with -inf.
    PCC_CHECK(span_ok(first, n, Plan::kOneRow + 1, writable), "invalid plan: pad range ", i, " (rows ",
              first, " + ", n, ") outside rows 1..", writable - 1);
  }
  for (size_t i = 0; i < p.vector_rows.size(); ++i) {
    PCC_CHECK(p.vector_rows[i] >= -1 && p.vector_rows[i] < rows, "invalid plan: first row of vector ",
              i, " is ", p.vector_rows[i], ", outside the ", rows, " rows");
  }
  for (size_t g = 0; g < p.param_group_sizes.size(); ++g) {
    PCC_CHECK(p.param_group_sizes[g] >= 0, "invalid plan: parameter group ", g, " has size ",
              p.param_group_sizes[g]);
  }
  const int64_t num_groups = static_cast<int64_t>(p.param_group_sizes.size());
  for (size_t i = 0; i < p.param_map.size(); ++i) {
    const ParamRun& m = p.param_map[i];
    PCC_CHECK(m.group >= 0 && m.group < num_groups, "invalid plan: param run ", i, " names group ",
              m.group, " of ", num_groups);
    PCC_CHECK(span_ok(m.ir_offset, m.length, 0, p.param_group_sizes[m.group]), "invalid plan: param run ",
              i, " covers elements ", m.ir_offset, " + ", m.length, " of group ", m.group, " which has ",
              p.param_group_sizes[m.group]);
    PCC_CHECK(m.plan_stride >= 1, "invalid plan: param run ", i, " has stride ", m.plan_stride);
    PCC_CHECK(strided_span_ok(m.plan_offset, m.length, m.plan_stride, num_params), "invalid plan: param run ", i,
              " (offset ", m.plan_offset, ", length ", m.length, ", stride ", m.plan_stride, ") runs past the ",
              num_params, " plan parameters");
  }
  PCC_CHECK(p.param_valid.size() == p.params.size(), "invalid plan: param_valid has ", p.param_valid.size(),
            " entries for ", num_params, " parameters");
  PCC_CHECK(p.groups.size() == p.param_group_sizes.size(), "invalid plan: ", p.groups.size(),
            " group layouts for ", p.param_group_sizes.size(), " parameter groups");
  for (size_t gi = 0; gi < p.groups.size(); ++gi) validate_group(p, gi);
  const InputLayouts layouts(p);

  for (size_t li = 0; li < p.layers.size(); ++li) {
    const Layer& l = p.layers[li];
    PCC_CHECK((l.kind == LayerKind::Input || l.inputs.empty()) &&
                  (l.kind == LayerKind::Product || l.products.empty()) &&
                  (l.kind == LayerKind::Sum || l.sums.empty()),
              "invalid plan: layer ", li, " of kind ", static_cast<int>(l.kind),
              " holds partitions of another kind");
    for (size_t gi = 0; gi < l.inputs.size(); ++gi) {
      const InputGroup& g = l.inputs[gi];
      const std::string at = "input group " + std::to_string(gi) + " of layer " + std::to_string(li);
      // Layers write rows after kOneRow only.
      PCC_CHECK(g.num_nodes >= 0 && span_ok(g.row_start, g.num_nodes, Plan::kOneRow + 1, writable),
                "invalid plan: ", at, ": rows ", g.row_start, " + ", g.num_nodes, " outside rows 1..",
                writable - 1);
      const size_t n = static_cast<size_t>(g.num_nodes);
      PCC_CHECK(g.var.size() == n && g.param_offset.size() == n && g.num_cats.size() == n,
                "invalid plan: ", at, ": per-node arrays do not have num_nodes (", n, ") entries");
      // Bernoulli and Gaussian slots are always node-major (backends read them as consecutive).
      PCC_CHECK(g.cat_stride == 1 || (g.dist == Dist::Categorical && g.cat_stride > 1), "invalid plan: ", at,
                ": cat_stride ", g.cat_stride, " for ", to_string(g.dist), " (must be 1",
                g.dist == Dist::Categorical ? " or more)" : ")");
      PCC_CHECK(g.fused == 0 || (g.fused == 1 && g.dist != Dist::Gaussian), "invalid plan: ", at, ": fused is ",
                g.fused, g.fused == 1 ? " for a Gaussian group (only discrete groups fuse)" : " (must be 0 or 1)");
      for (size_t k = 0; k < n; ++k) {
        const int64_t var = g.var[k];
        PCC_CHECK(var >= 0 && var < p.num_vars, "invalid plan: ", at, ": node ", k, " reads variable ",
                  var, " of ", p.num_vars);
        const int64_t limit = p.var_limit[var];
        int64_t width = 0;  // parameters the node reads
        switch (g.dist) {
          case Dist::Categorical:
            width = g.num_cats[k];
            PCC_CHECK(width >= 1, "invalid plan: ", at, ": node ", k, " has ", width, " categories");
            // Inputs are checked against var_limit, so the node's table must cover every value below it.
            PCC_CHECK(limit >= 1 && limit <= width, "invalid plan: ", at, ": node ", k, " has ", width,
                      " categories but variable ", var, " admits ", limit);
            break;
          case Dist::Bernoulli:
            width = 2;
            PCC_CHECK(g.num_cats[k] == 2, "invalid plan: ", at, ": Bernoulli node ", k,
                      " has num_cats ", g.num_cats[k], " (must be 2)");
            PCC_CHECK(limit >= 1 && limit <= 2, "invalid plan: ", at, ": Bernoulli node ", k,
                      " but variable ", var, " admits ", limit, " values");
            break;
          case Dist::Gaussian:
            width = 3;
            PCC_CHECK(g.num_cats[k] == 0, "invalid plan: ", at, ": Gaussian node ", k, " has num_cats ",
                      g.num_cats[k], " (must be 0)");
            PCC_CHECK(limit != -1, "invalid plan: ", at, ": node ", k, " reads variable ", var,
                      " whose var_limit says no input reads it");
            break;
          default:
            raise("invalid plan: ", at, ": unknown distribution ", static_cast<int>(g.dist));
        }
        PCC_CHECK(strided_span_ok(g.param_offset[k], width, g.cat_stride, num_params), "invalid plan: ", at,
                  ": node ", k, " reads parameters ", g.param_offset[k], " + ", width,
                  g.cat_stride == 1 ? "" : " with stride " + std::to_string(g.cat_stride), " of ", num_params);
        layouts.check_node(g, k, width, at);
      }
    }
    for (size_t qi = 0; qi < l.products.size(); ++qi) {
      const ProductPartition& q = l.products[qi];
      const std::string at = "product partition " + std::to_string(qi) + " of layer " + std::to_string(li);
      PCC_CHECK(q.num_nodes >= 0 && span_ok(q.row_start, q.num_nodes, Plan::kOneRow + 1, writable),
                "invalid plan: ", at, ": rows ", q.row_start, " + ", q.num_nodes, " outside rows 1..",
                writable - 1);
      PCC_CHECK(q.fanin >= 1, "invalid plan: ", at, ": fanin is ", q.fanin);
      PCC_CHECK(product_is(q.num_nodes, q.fanin, q.child_rows.size()), "invalid plan: ", at,
                ": child_rows has ", q.child_rows.size(), " entries, expected num_nodes ", q.num_nodes,
                " x fanin ", q.fanin);
      for (size_t k = 0; k < q.child_rows.size(); ++k) {
        PCC_CHECK(q.child_rows[k] >= 0 && q.child_rows[k] < rows, "invalid plan: ", at,
                  ": child_rows[", k, "] is ", q.child_rows[k], ", outside the ", rows, " rows");
      }
      for (const auto& [gl, gi] : q.fused_inputs) {
        PCC_CHECK(gl >= 0 && gl < static_cast<int64_t>(li) && p.layers[gl].kind == LayerKind::Input &&
                      gi >= 0 && gi < static_cast<int64_t>(p.layers[gl].inputs.size()),
                  "invalid plan: ", at, ": fused input (", gl, ", ", gi, ") is not an input group of an earlier layer");
        PCC_CHECK(p.layers[gl].inputs[gi].fused == 1, "invalid plan: ", at, ": lists input group ", gi, " of layer ",
                  gl, " as fused, but that group is not");
      }
    }
    for (size_t qi = 0; qi < l.sums.size(); ++qi) {
      const SumPartition& q = l.sums[qi];
      const std::string at = "sum partition " + std::to_string(qi) + " of layer " + std::to_string(li);
      PCC_CHECK(q.block_size >= 1 && q.child_block_size >= 1, "invalid plan: ", at, ": block sizes ",
                q.block_size, " x ", q.child_block_size);
      PCC_CHECK(q.num_blocks >= 0 && q.fanin >= 1, "invalid plan: ", at, ": num_blocks ", q.num_blocks,
                ", fanin ", q.fanin);
      PCC_CHECK(product_is(q.num_blocks, 1, q.out_rows.size()), "invalid plan: ", at, ": out_rows has ",
                q.out_rows.size(), " entries for ", q.num_blocks, " blocks");
      PCC_CHECK(q.child_arity >= 1 && q.child_arity <= SumPartition::kMaxChildArity, "invalid plan: ", at, ": child_arity is ",
                q.child_arity, " (must be 1 to ", SumPartition::kMaxChildArity, ")");
      PCC_CHECK(product_is(q.num_blocks, q.fanin, q.weight_offsets.size()), "invalid plan: ", at,
                ": weight_offsets has ", q.weight_offsets.size(), " entries, expected num_blocks ", q.num_blocks,
                " x fanin ", q.fanin);
      // One entry per weight matrix, child_arity row starts per entry.
      const int64_t entries = static_cast<int64_t>(q.weight_offsets.size()), arity = q.child_arity;
      PCC_CHECK(product_is(entries, arity, q.child_rows.size()), "invalid plan: ", at, ": child_rows has ",
                q.child_rows.size(), " entries, expected num_blocks ", q.num_blocks, " x fanin ", q.fanin,
                " x child_arity ", arity);
      PCC_CHECK(q.block_size <= INT64_MAX / q.child_block_size, "invalid plan: ", at,
                ": block sizes overflow");
      PCC_CHECK(q.disjoint_weights == 0 || q.disjoint_weights == 1, "invalid plan: ", at,
                ": disjoint_weights is ", q.disjoint_weights);
      if (q.disjoint_weights) {
        // Backends accumulate parameter flows block-parallel on this promise: check it.
        std::vector<int64_t> used;
        for (int64_t w : q.weight_offsets) {
          if (w >= 0) used.push_back(w);
        }
        std::sort(used.begin(), used.end());
        PCC_CHECK(std::adjacent_find(used.begin(), used.end()) == used.end(), "invalid plan: ", at,
                  ": disjoint_weights is set but two blocks share a weight matrix");
      }
      const int64_t matrix = q.block_size * q.child_block_size;
      for (size_t b = 0; b < q.out_rows.size(); ++b) {
        PCC_CHECK(span_ok(q.out_rows[b], q.block_size, Plan::kOneRow + 1, writable), "invalid plan: ", at,
                  ": block ", b, " writes rows ", q.out_rows[b], " + ", q.block_size, " outside rows 1..",
                  writable - 1);
      }
      for (int64_t k = 0; k < entries; ++k) {
        // The entry's first start decides padding; a fused product may have fewer than child_arity
        // children, so later starts may be -1 on their own.
        const int64_t* start = q.child_rows.data() + k * arity;
        const int64_t row = start[0], w = q.weight_offsets[k];
        PCC_CHECK((row == -1) == (w == -1), "invalid plan: ", at, ": entry ", k,
                  " pads only one of child_rows (", row, ") and weight_offsets (", w, ")");
        if (row == -1) {
          for (int64_t a = 1; a < arity; ++a) {
            PCC_CHECK(start[a] == -1, "invalid plan: ", at, ": entry ", k, " is padding (first start -1) but start ",
                      a, " is ", start[a]);
          }
          continue;
        }
        for (int64_t a = 0; a < arity; ++a) {
          if (a > 0 && start[a] == -1) continue;
          PCC_CHECK(span_ok(start[a], q.child_block_size, 0, rows), "invalid plan: ", at, ": entry ", k,
                    arity == 1 ? "" : " start " + std::to_string(a), " reads rows ", start[a], " + ",
                    q.child_block_size, " outside the ", rows, " rows");
        }
        PCC_CHECK(span_ok(w, matrix, 0, num_params), "invalid plan: ", at, ": entry ", k,
                  " reads weights ", w, " + ", matrix, " of ", num_params);
      }
    }
    // Recompute lists name input groups / product partitions of earlier layers (backends re-run them).
    for (size_t k = 0; k < l.recompute.size(); ++k) {
      const auto [rl, rp] = l.recompute[k];
      PCC_CHECK(rl >= 0 && (rl < static_cast<int64_t>(li) || (rl == static_cast<int64_t>(li) && l.kind == LayerKind::Product)),
                "invalid plan: layer ", li, " recomputes layer ", rl, ", which is neither an earlier layer nor this product layer");
      const Layer& src = p.layers[rl];
      const int64_t parts = src.kind == LayerKind::Input     ? static_cast<int64_t>(src.inputs.size())
                            : src.kind == LayerKind::Product ? static_cast<int64_t>(src.products.size())
                                                             : 0;
      PCC_CHECK(rp >= 0 && rp < parts, "invalid plan: layer ", li, " recomputes part ", rp, " of layer ", rl,
                ", which has ", parts, " input groups or product partitions");
      PCC_CHECK(src.kind != LayerKind::Input || src.inputs[rp].fused == 0, "invalid plan: layer ", li,
                " recomputes input group ", rp, " of layer ", rl, ", which is fused (its readers compute it)");
    }
  }
  // A fused group's values exist only inside its readers, and its flows are cleared by them: each of
  // its nodes must be read by a partition that lists it.
  std::map<std::pair<int64_t, int64_t>, std::vector<char>> read;
  for (const Layer& l : p.layers)
    for (const ProductPartition& q : l.products)
      for (const auto& ref : q.fused_inputs) {
        const InputGroup& g = p.layers[ref.first].inputs[ref.second];
        std::vector<char>& seen = read[ref];
        seen.resize(static_cast<size_t>(g.num_nodes), 0);
        for (int64_t r : q.child_rows)
          if (holds_row(g, r)) seen[static_cast<size_t>(r - g.row_start)] = 1;
      }
  for (size_t li = 0; li < p.layers.size(); ++li)
    for (size_t gi = 0; gi < p.layers[li].inputs.size(); ++gi) {
      if (!p.layers[li].inputs[gi].fused) continue;
      PCC_CHECK(p.x_rows >= 0, "invalid plan: input group ", gi, " of layer ", li, " is fused but the plan has no x rows");
      const auto at = read.find({static_cast<int64_t>(li), static_cast<int64_t>(gi)});
      PCC_CHECK(at != read.end(), "invalid plan: input group ", gi, " of layer ", li,
                " is fused but no product partition computes it");
      const auto unread = std::find(at->second.begin(), at->second.end(), 0);
      PCC_CHECK(unread == at->second.end(), "invalid plan: input group ", gi, " of layer ", li, " is fused but node ",
                unread - at->second.begin(), " is read by none of the product partitions that compute it");
    }
}

}  // namespace pcc
