// The CPU backend's per-op functions (internal to csrc/cpu). Each runs one plan element over the
// whole batch on the values buffer [num_rows, batch]; forward.cpp calls them layer by layer.
#pragma once
#include <cstdint>
#include <vector>

#include "core/input_values.h"
#include "pcc/plan.h"
#include "pcc/tensor.h"

namespace pcc {
namespace cpu {

// Rows [g.row_start, g.row_start + g.num_nodes) <- log p(x[:, var]); 0 (= log 1) where missing.
// x has been validated (validate_inputs), so discrete entries are in-range integers. A fused group
// (InputGroup::fused) is left alone: its product readers compute it.
void input_forward(const InputGroup& g, const float* params, const TensorRef& x,
                   const TensorRef& missing, float* values, int64_t batch);

// out[b] <- log p(x[b, var]) of discrete (Categorical / Bernoulli) node i of g; 0 where missing.
void discrete_log_probs(const InputGroup& g, int64_t i, const float* params, const TensorRef& x,
                        const TensorRef& missing, float* out, int64_t batch);

// What a product partition with fused inputs computes them from.
struct InputSource {
  const Plan* plan = nullptr;
  const float* params = nullptr;
  const TensorRef* x = nullptr;
  const TensorRef* missing = nullptr;
};

// Row p.row_start + i <- sum over k of row p.child_rows[i * fanin + k]; a child row of a fused input
// group (p.fused_inputs) is computed from `in` instead of read.
void product_forward(const ProductPartition& p, const InputSource& in, float* values, int64_t batch);

// Each block's rows <- log sum_k W_k exp(child block k), stable (max-shifted) log-sum-exp.
void sum_forward(const SumPartition& s, const float* params, float* values, int64_t batch);

// Backward (flow) ops, run by cpu_backward over the layers in reverse. `flows` is [num_rows, batch]
// like `values`; each op reads the flows of its own rows (complete by then) and adds to its
// children's rows. Parameter flows are added (+=) into param_flows (plan parameter layout).

// Children's flows += each node's flow (product nodes pass their flow unchanged).
void product_backward(const ProductPartition& p, float* flows, int64_t batch);

// Child flows += f_r W[r, c] exp(v_c - v_r) per (block row r, child c), and param_flows of every
// weight slot += its sum over the batch. Rows whose value is -inf pass nothing.
void sum_backward(const SumPartition& s, const float* params, const float* values, float* flows,
                  float* param_flows, int64_t batch);

// E-step statistics of every input node of one input layer from its flows (backend.h: BackwardArgs).
void input_backward(const Layer& layer, const float* params, const TensorRef& x,
                    const TensorRef& missing, const float* flows, float* param_flows, int64_t batch);

// A per-node unit of parameter work for cpu_normalize / cpu_log_params / cpu_em_update /
// cpu_param_grads: group g, and either sum block `lo` (sum groups) or input nodes [lo, hi).
struct ParamUnit {
  int64_t group = 0, lo = 0, hi = 0;
};
std::vector<ParamUnit> param_units(const Plan& p);

// Element (b, v) of a 2-D strided tensor.
template <class T>
inline T at2(const TensorRef& t, int64_t b, int64_t v) {
  return static_cast<const T*>(t.data)[b * t.strides[0] + v * t.strides[1]];
}

inline bool is_missing(const TensorRef& m, int64_t b, int64_t v) {
  return m.data != nullptr && at2<uint8_t>(m, b, v) != 0;
}

}  // namespace cpu
}  // namespace pcc
