// cpu_param_grads: gradients of the objective with respect to the log-parameters that
// cpu_normalize maps to the parameters, from parameter flows accumulated with root_flow =
// d objective / d log p(x) (pcc.reference_em's identities), node-parallel, in double:
//   sums (valid slots of the node's row) and Categorical / Bernoulli: G_k - p_k sum_j G_j;
//   Gaussian (centred statistics): d/d mean = S1 / std^2, d/d log std = S2 / std^2 - S0.
// Results are added (+=) into grad; invalid slots and the Gaussian's spare slot are set to 0 (their
// log-parameters are fixed at 0 and have no gradient).
#include <cmath>
#include <vector>

#include "cpu/ops.h"
#include "cpu/param_rows.h"
#include "cpu/thread_pool.h"
#include "pcc/backend.h"

namespace pcc {
namespace {

void softmax_grad(const float* params, const float* flows, float* grad, const int64_t* idx, int64_t n) {
  double total = 0.0;
  for (int64_t k = 0; k < n; ++k) total += flows[idx[k]];
  for (int64_t k = 0; k < n; ++k)
    grad[idx[k]] += static_cast<float>(double(flows[idx[k]]) - double(params[idx[k]]) * total);
}

}  // namespace

void cpu_param_grads(const Plan& p, const float* params, const float* param_flows, float* grad) {
  cpu::for_each_param_node(
      p,
      [&](const GroupLayout& g, int64_t blk, int64_t r) {
        thread_local std::vector<int64_t> idx;
        idx.clear();
        cpu::for_row_slots(g, blk, r, [&](int64_t i) {
          if (p.param_valid[i]) idx.push_back(i);
          else grad[i] = 0.0f;
        });
        softmax_grad(params, param_flows, grad, idx.data(), static_cast<int64_t>(idx.size()));
      },
      [&](const GroupLayout& g, int64_t i) {
        const int64_t off = node_slot(g, i);
        if (g.dist == Dist::Gaussian) {
          const double s1 = param_flows[off], s2 = param_flows[off + 1], n = param_flows[off + 2];
          const double sd = params[off + 1], var = sd * sd;  // S1, S2 are centred on the mean
          grad[off] += static_cast<float>(s1 / var);
          grad[off + 1] += static_cast<float>(s2 / var - n);
          grad[off + 2] = 0.0f;
        } else {
          thread_local std::vector<int64_t> slots;
          cpu::input_node_slots(g, i, slots);
          softmax_grad(params, param_flows, grad, slots.data(), g.width);
        }
      });
  // Slots outside every node's row (pad rows of sum blocks) carry no parameter either.
  cpu::parallel_for(
      static_cast<int64_t>(p.param_valid.size()),
      [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i)
          if (!p.param_valid[i]) grad[i] = 0.0f;
      },
      65536);
}

}  // namespace pcc
