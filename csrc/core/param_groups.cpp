// Moving one IR parameter group in and out of a plan-layout buffer (parameters or flows): what
// compile uses to lay out the initial parameters and what get_params / set_params / to_circuit use.
#include <cstdio>

#include "pcc/error.h"
#include "pcc/plan.h"

namespace pcc {

int64_t param_width(Dist d, int64_t num_cats) {
  switch (d) {
    case Dist::Categorical: return num_cats;
    case Dist::Bernoulli: return 2;
    case Dist::Gaussian: return 3;
  }
  return 0;
}

namespace {

void check_group(const Plan& p, int64_t g) {
  PCC_CHECK(g >= 0 && g < static_cast<int64_t>(p.param_group_sizes.size()), "parameter group ", g,
            " does not exist (the plan has ", p.param_group_sizes.size(), ")");
  PCC_CHECK(p.groups[g].num_nodes > 0, "parameter group ", g, " is not used by the compiled circuit");
}

}  // namespace

std::vector<int64_t> group_slots(const Plan& p, int64_t g) {
  check_group(p, g);
  std::vector<int64_t> out(p.param_group_sizes[g], -1);
  for (const ParamRun& r : p.param_map) {
    if (r.group != g) continue;
    for (int64_t k = 0; k < r.length; ++k) out[r.ir_offset + k] = r.plan_offset + k * r.plan_stride;
  }
  return out;
}

std::vector<float> read_group(const Plan& p, const float* params, int64_t g) {
  const std::vector<int64_t> slots = group_slots(p, g);
  std::vector<float> out(slots.size(), 0.0f);
  for (size_t i = 0; i < slots.size(); ++i)
    if (slots[i] >= 0) out[i] = params[slots[i]];
  return out;
}

void write_group(const Plan& p, float* params, int64_t g, const std::vector<float>& values) {
  check_group(p, g);
  PCC_CHECK(static_cast<int64_t>(values.size()) == p.param_group_sizes[g], "parameter group ", g, " has ",
            p.param_group_sizes[g], " values, got ", values.size());
  for (const ParamRun& r : p.param_map) {
    if (r.group != g) continue;
    for (int64_t k = 0; k < r.length; ++k) params[r.plan_offset + k * r.plan_stride] = values[r.ir_offset + k];
  }
  const GroupLayout& gl = p.groups[g];
  if (gl.kind == NodeKind::Input && gl.dist == Dist::Bernoulli) {
    for (int64_t i = 0; i < gl.num_nodes; ++i) {
      params[gl.base + 2 * i] = static_cast<float>(1.0 - double(params[gl.base + 2 * i + 1]));
    }
  }
}

std::string param_layout_id(const Plan& p) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a, 64 bits
  auto mix = [&](int64_t v) {
    for (int k = 0; k < 8; ++k) {
      h ^= static_cast<uint64_t>(v >> (8 * k)) & 0xffu;
      h *= 1099511628211ull;
    }
  };
  mix(static_cast<int64_t>(p.params.size()));
  for (const ParamRun& r : p.param_map) {
    for (int64_t v : {r.group, r.ir_offset, r.plan_offset, r.length, r.plan_stride}) mix(v);
  }
  for (const GroupLayout& g : p.groups) {
    for (int64_t v : {static_cast<int64_t>(g.kind), static_cast<int64_t>(g.dist), g.num_nodes, g.base, g.width,
                      g.cat_stride, g.block_size, g.child_block_size})
      mix(v);
    for (int64_t v : g.block_start) mix(v);
    for (int64_t v : g.block_offsets) mix(v);
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

}  // namespace pcc
