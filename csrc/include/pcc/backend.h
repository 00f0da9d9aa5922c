// Backends run a Plan. The caller owns every buffer (the core allocates nothing on the hot path).
#pragma once
#include <cstdint>

#include "pcc/plan.h"
#include "pcc/tensor.h"

namespace pcc {

struct ForwardArgs {
  const Plan* plan = nullptr;
  const float* params = nullptr;  // [plan.params.size()]
  TensorRef x;                    // [batch, num_vars]; any DType; discrete entries hold integers
  TensorRef missing;              // [batch, num_vars] Bool/UInt8, or data == nullptr for none
  float* values = nullptr;        // workspace [plan.num_rows, batch]
  float* out = nullptr;           // [batch, plan.num_root_nodes]
  int64_t batch = 0;
};

// Validates x (shape, integer and in-range values for discrete variables, no NaN where observed)
// and throws pcc::Error naming the first offending entry.
void validate_inputs(const ForwardArgs& a);

void cpu_forward(const ForwardArgs& a);

// The flow pass (DESIGN.md, Semantics): per-sample node flows from the root down, in a stable form
// (child flow += parent flow * w * exp(child value - parent value); nodes whose value is -inf pass
// nothing), and their sums over the batch per parameter slot, accumulated (+=) into param_flows:
//   sum weights: the edge flow (expected count) of each (sum node, child node) pair;
//   Categorical / Bernoulli: expected count of each category (missing value: flow x the node's
//     own probabilities, the marginalized E-step);
//   Gaussian (3 slots), centred on the node's current mean d = x - mean: S1 = sum F d, S2 = sum F d^2,
//   S0 = sum F (missing: 0, F std^2, F).
// Tied vectors share slots, so their statistics pool. root_flow scales each sample's flows: 1 for EM
// statistics, d objective / d log p(x) for gradients.
struct BackwardArgs {
  const Plan* plan = nullptr;
  const float* params = nullptr;     // the parameters the forward used
  TensorRef x;                       // as in the forward (already validated there)
  TensorRef missing;
  // [num_rows, batch] from the forward; the backward rewrites the transient rows (plan.h) it
  // recomputes, and leaves the others as they are.
  float* values = nullptr;
  const float* root_flow = nullptr;  // [batch, num_root_nodes]
  float* flows = nullptr;            // workspace [num_rows, batch], overwritten
  float* param_flows = nullptr;      // [params.size()], accumulated
  int64_t batch = 0;
};
void cpu_backward(const BackwardArgs& a);

// params <- normalized log-parameters: softmax per sum node over its valid slots, per Categorical /
// Bernoulli node over its slots; Gaussian (mean, exp(log std), 0). Invalid slots become 0.
void cpu_normalize(const Plan& p, const float* log_params, float* params);
// The inverse: log_params <- log(params) (Gaussian: mean, log std); invalid slots 0.
void cpu_log_params(const Plan& p, const float* params, float* log_params);

// One EM update of every parameter from param_flows (DESIGN.md, Semantics; Gaussians as in
// pcc.reference): theta <- (1 - s) theta + s (F + a/K) / (sum F + a) per sum node (K = its edges)
// and per Categorical / Bernoulli node (K = categories); a node with zero total flow and a = 0 keeps
// its parameters; Gaussian stds are floored at kGaussianMinStd, and a variance below 1e-6 of the
// centred second moment (float32 rounding of the statistics) counts as 0.
constexpr double kGaussianMinStd = 1e-3;
void cpu_em_update(const Plan& p, float* params, const float* param_flows, double step_size,
                   double pseudocount);

// grad += d objective / d log-parameters, from param_flows accumulated with root_flow = d objective /
// d log p(x) and the normalized params: sums and categoricals G_k - p_k sum_j G_j; Gaussians
// d/d mean = S1 / std^2, d/d log std = S2 / std^2 - S0 (centred statistics).
void cpu_param_grads(const Plan& p, const float* params, const float* param_flows, float* grad);

void set_num_threads(int n);  // CPU backend; n <= 0 means hardware concurrency
int get_num_threads();

bool cuda_available();  // a CUDA device is usable by this build

}  // namespace pcc
