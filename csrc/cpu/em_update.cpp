// cpu_em_update: one EM step of every parameter from the parameter flows, exactly as
// pcc.reference_em's docstring defines it, node-parallel, in double:
//   sums (K = valid slots of the node's row), Categorical (K = width), Bernoulli (K = 2):
//     theta <- (1 - s) theta + s (F + a/K) / (sum F + a); a node with sum F + a = 0 keeps theta;
//   Gaussian (flow slots S1 = sum F d, S2 = sum F d^2 with d = x - mean, S0 = sum F; no pseudocount):
//     m = S1/N, v = max(S2/N - m^2, 0), mean' = (1-s) mean + s m,
//     var' = (1-s) std^2 + s v + s (1-s) (m - mean)^2, std' = max(sqrt(var'), kGaussianMinStd);
//     N = S0 = 0 keeps the parameters.
// Tied vectors share slots, so their flows are already pooled. Invalid slots are left as they are.
#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu/ops.h"
#include "cpu/param_rows.h"
#include "pcc/backend.h"
#include "pcc/error.h"

namespace pcc {

// Variance from centred statistics (S1 = sum F d, S2 = sum F d^2, d = x - mean). S1 and S2 are float32
// sums, exact to about 1e-7 relative: a variance below that resolution of the second moment is
// rounding noise, not data (a single observation would otherwise get a variance of its rounding),
// so it counts as 0.
static double gaussian_variance(double s1, double s2, double n) {
  const double m2 = s2 / n, d = s1 / n, v = m2 - d * d;
  return v > 1e-6 * m2 ? v : 0.0;
}
namespace {

void mix(float* params, const float* flows, const int64_t* idx, int64_t n, double s, double a) {
  double total = 0.0;
  for (int64_t k = 0; k < n; ++k) total += flows[idx[k]];
  const double denom = total + a;
  if (!(denom > 0.0)) return;
  const double prior = a / static_cast<double>(n);
  for (int64_t k = 0; k < n; ++k) {
    const double theta = params[idx[k]];
    params[idx[k]] = static_cast<float>((1.0 - s) * theta + s * (double(flows[idx[k]]) + prior) / denom);
  }
}

}  // namespace

void cpu_em_update(const Plan& p, float* params, const float* param_flows, double step_size,
                   double pseudocount) {
  PCC_CHECK(step_size >= 0.0 && step_size <= 1.0, "em_update: step_size must lie in [0, 1], got ",
            step_size);
  PCC_CHECK(pseudocount >= 0.0 && std::isfinite(pseudocount),
            "em_update: pseudocount must be finite and >= 0, got ", pseudocount);
  const double s = step_size, a = pseudocount;
  cpu::for_each_param_node(
      p,
      [&](const GroupLayout& g, int64_t blk, int64_t r) {
        thread_local std::vector<int64_t> idx;
        idx.clear();
        cpu::for_row_slots(g, blk, r, [&](int64_t i) {
          if (p.param_valid[i]) idx.push_back(i);
        });
        if (!idx.empty()) mix(params, param_flows, idx.data(), static_cast<int64_t>(idx.size()), s, a);
      },
      [&](const GroupLayout& g, int64_t i) {
        const int64_t off = node_slot(g, i);
        if (g.dist == Dist::Gaussian) {
          const double s1 = param_flows[off], s2 = param_flows[off + 1], n = param_flows[off + 2];
          if (!(n > 0.0)) return;
          const double mean = params[off], sd = params[off + 1];
          const double m = mean + s1 / n;
          const double v = gaussian_variance(s1, s2, n);
          const double mean2 = (1.0 - s) * mean + s * m;
          const double var2 = (1.0 - s) * sd * sd + s * v + s * (1.0 - s) * (m - mean) * (m - mean);
          params[off] = static_cast<float>(mean2);
          params[off + 1] = static_cast<float>(std::max(std::sqrt(var2), kGaussianMinStd));
        } else {
          thread_local std::vector<int64_t> slots;
          cpu::input_node_slots(g, i, slots);
          mix(params, param_flows, slots.data(), g.width, s, a);
        }
      });
}

}  // namespace pcc
