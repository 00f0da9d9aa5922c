// Walking the parameters node by node (internal to csrc/cpu): the units cpu_normalize,
// cpu_log_params, cpu_em_update and cpu_param_grads split over threads, and a node's slots.
// Every unit touches only its own nodes' slots (tied vectors share one GroupLayout, so each slot
// belongs to exactly one unit), so the per-node ops run unit-parallel without races.
#pragma once
#include <cstdint>
#include <vector>

#include "cpu/ops.h"
#include "cpu/thread_pool.h"
#include "pcc/plan.h"

namespace pcc {
namespace cpu {

// Calls f(idx) for every slot of row r of sum block s of group g (its row of each weight block), in
// buffer order of the blocks; pad rows (node >= num_nodes) included, their slots are invalid.
template <class F>
inline void for_row_slots(const GroupLayout& g, int64_t s, int64_t r, F&& f) {
  const int64_t cb = g.child_block_size;
  for (int64_t q = g.block_start[s]; q < g.block_start[s + 1]; ++q) {
    const int64_t base = g.block_offsets[q] + r * cb;
    for (int64_t c = 0; c < cb; ++c) f(base + c);
  }
}

// The slots of Categorical / Bernoulli input node i of group g, in category order, into idx
// (node-major or category-major, plan.h).
inline void input_node_slots(const GroupLayout& g, int64_t i, std::vector<int64_t>& idx) {
  idx.resize(g.width);
  const int64_t first = node_slot(g, i);
  for (int64_t k = 0; k < g.width; ++k) idx[k] = first + k * g.cat_stride;
}

// Runs sum_row(g, s, r) for each real node of every sum block and input_node(g, i) for each input
// node, unit-parallel.
template <class SumRow, class InputNode>
inline void for_each_param_node(const Plan& p, SumRow&& sum_row, InputNode&& input_node) {
  const std::vector<ParamUnit> units = param_units(p);
  parallel_for(static_cast<int64_t>(units.size()), [&](int64_t begin, int64_t end) {
    for (int64_t u = begin; u < end; ++u) {
      const ParamUnit& pu = units[u];
      const GroupLayout& g = p.groups[pu.group];
      if (g.kind == NodeKind::Sum) {
        const int64_t s = pu.lo;
        for (int64_t r = 0; r < g.block_size && s * g.block_size + r < g.num_nodes; ++r) sum_row(g, s, r);
      } else {
        for (int64_t i = pu.lo; i < pu.hi; ++i) input_node(g, i);
      }
    }
  });
}

}  // namespace cpu
}  // namespace pcc
