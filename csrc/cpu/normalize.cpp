// cpu_normalize (log-parameters -> parameters: softmax per sum node over its valid slots and per
// Categorical / Bernoulli node over its slots; Gaussian (mean, exp(log std), 0)) and its inverse
// cpu_log_params, node-parallel. Both write 0 into every invalid slot.
//
// A node whose log-parameters are all -inf (never produced by cpu_log_params of valid parameters)
// gets all-zero parameters: it becomes an impossible node (value -inf) rather than NaN.
#include <cmath>
#include <limits>
#include <vector>

#include "cpu/ops.h"
#include "cpu/param_rows.h"
#include "cpu/thread_pool.h"
#include "pcc/backend.h"

namespace pcc {
namespace cpu {

std::vector<ParamUnit> param_units(const Plan& p) {
  constexpr int64_t kInputNodes = 256;
  std::vector<ParamUnit> units;
  for (size_t gi = 0; gi < p.groups.size(); ++gi) {
    const GroupLayout& g = p.groups[gi];
    if (g.num_nodes <= 0) continue;
    const int64_t id = static_cast<int64_t>(gi);
    if (g.kind == NodeKind::Sum) {
      const int64_t blocks = static_cast<int64_t>(g.block_start.size()) - 1;
      for (int64_t s = 0; s < blocks; ++s) units.push_back({id, s, s + 1});
    } else {
      for (int64_t i = 0; i < g.num_nodes; i += kInputNodes)
        units.push_back({id, i, std::min(g.num_nodes, i + kInputNodes)});
    }
  }
  return units;
}

namespace {

void zero_invalid(const Plan& p, float* out) {
  const int64_t n = static_cast<int64_t>(p.param_valid.size());
  parallel_for(
      n,
      [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i)
          if (!p.param_valid[i]) out[i] = 0.0f;
      },
      65536);
}

// Softmax of the slots idx[0 .. n) of `in` into `out` (stable: shifted by the max; all -inf: zeros).
void softmax(const float* in, float* out, const int64_t* idx, int64_t n) {
  float mx = -std::numeric_limits<float>::infinity();
  for (int64_t k = 0; k < n; ++k) mx = std::max(mx, in[idx[k]]);
  if (!(mx > -std::numeric_limits<float>::infinity())) {
    for (int64_t k = 0; k < n; ++k) out[idx[k]] = mx == mx ? 0.0f : mx;  // NaN stays NaN
    return;
  }
  double total = 0.0;
  for (int64_t k = 0; k < n; ++k) total += std::exp(double(in[idx[k]]) - double(mx));
  for (int64_t k = 0; k < n; ++k)
    out[idx[k]] = static_cast<float>(std::exp(double(in[idx[k]]) - double(mx)) / total);
}

}  // namespace
}  // namespace cpu

void cpu_normalize(const Plan& p, const float* log_params, float* params) {
  cpu::zero_invalid(p, params);
  cpu::for_each_param_node(
      p,
      [&](const GroupLayout& g, int64_t s, int64_t r) {
        thread_local std::vector<int64_t> idx;
        idx.clear();
        cpu::for_row_slots(g, s, r, [&](int64_t i) {
          if (p.param_valid[i]) idx.push_back(i);
          else params[i] = 0.0f;
        });
        cpu::softmax(log_params, params, idx.data(), static_cast<int64_t>(idx.size()));
      },
      [&](const GroupLayout& g, int64_t i) {
        const int64_t off = node_slot(g, i);
        if (g.dist == Dist::Gaussian) {
          params[off] = log_params[off];
          params[off + 1] = std::exp(log_params[off + 1]);
          params[off + 2] = 0.0f;
        } else {
          thread_local std::vector<int64_t> slots;
          cpu::input_node_slots(g, i, slots);
          cpu::softmax(log_params, params, slots.data(), g.width);
        }
      });
}

void cpu_log_params(const Plan& p, const float* params, float* log_params) {
  cpu::zero_invalid(p, log_params);
  cpu::for_each_param_node(
      p,
      [&](const GroupLayout& g, int64_t s, int64_t r) {
        cpu::for_row_slots(g, s, r, [&](int64_t i) {
          log_params[i] = p.param_valid[i] ? std::log(params[i]) : 0.0f;
        });
      },
      [&](const GroupLayout& g, int64_t i) {
        const int64_t off = node_slot(g, i);
        if (g.dist == Dist::Gaussian) {
          log_params[off] = params[off];
          log_params[off + 1] = std::log(params[off + 1]);
          log_params[off + 2] = 0.0f;
        } else {
          thread_local std::vector<int64_t> slots;
          cpu::input_node_slots(g, i, slots);
          for (int64_t j : slots) log_params[j] = std::log(params[j]);
        }
      });
}

}  // namespace pcc
