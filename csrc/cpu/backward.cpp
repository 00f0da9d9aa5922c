// cpu_backward: the flow pass. Zeroes the flow workspace, seeds the root rows with root_flow (zero
// where the root's value is -inf: d log 0 is undefined, such samples pass nothing), then runs the
// layers in reverse, one switch over layer kinds; within a layer the partitions run in order. Every
// op is deterministic and independent of the thread count (see the op files for how each splits its
// work without atomics).
#include <algorithm>
#include <cmath>

#include "cpu/ops.h"
#include "cpu/thread_pool.h"
#include "pcc/backend.h"
#include "pcc/error.h"

namespace pcc {

void cpu_backward(const BackwardArgs& a) {
  PCC_CHECK(a.plan != nullptr, "backward: no plan");
  const Plan& p = *a.plan;
  const int64_t batch = a.batch;
  if (batch <= 0) return;
  PCC_CHECK(a.params && a.values && a.root_flow && a.flows && a.param_flows,
            "backward: a buffer is missing (params, values, root_flow, flows, param_flows)");
  float* flows = a.flows;
  const float* values = a.values;

  const int64_t rows_per_chunk = std::max<int64_t>(1, 65536 / batch);
  cpu::parallel_for(
      (p.num_rows + rows_per_chunk - 1) / rows_per_chunk,
      [&](int64_t begin, int64_t end) {
        const int64_t r0 = begin * rows_per_chunk, r1 = std::min(p.num_rows, end * rows_per_chunk);
        std::fill(flows + r0 * batch, flows + r1 * batch, 0.0f);
      });

  const int64_t R = p.num_root_nodes;
  for (int64_t j = 0; j < R; ++j) {
    const float* v = values + (p.root_row + j) * batch;
    float* f = flows + (p.root_row + j) * batch;
    for (int64_t b = 0; b < batch; ++b) f[b] = v[b] > -INFINITY ? a.root_flow[b * R + j] : 0.0f;
  }

  for (auto it = p.layers.rbegin(); it != p.layers.rend(); ++it) {
    const Layer& layer = *it;
    switch (layer.kind) {
      case LayerKind::Input:
        cpu::input_backward(layer, a.params, a.x, a.missing, flows, a.param_flows, batch);
        break;
      case LayerKind::Product:
        for (const ProductPartition& pp : layer.products) cpu::product_backward(pp, flows, batch);
        break;
      case LayerKind::Sum:
        for (const SumPartition& s : layer.sums)
          cpu::sum_backward(s, a.params, values, flows, a.param_flows, batch);
        break;
    }
  }
}

}  // namespace pcc
