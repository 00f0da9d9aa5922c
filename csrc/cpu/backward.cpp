// cpu_backward: the flow pass. Zeroes the flow workspace, seeds the root rows with root_flow (zero
// where the root's value is -inf: d log 0 is undefined, such samples pass nothing), then runs the
// layers in reverse, one switch over layer kinds; within a layer the partitions run in order. Before
// a layer it recomputes the transient rows the layer reads (Layer::recompute). Every
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
  float* values = a.values;
  const cpu::InputSource inputs{&p, a.params, &a.x, &a.missing};

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
    // Transient rows this layer reads: values again, flows from zero (their readers all come now).
    for (const auto& [rl, rp] : layer.recompute) {
      const Layer& src = p.layers[rl];
      int64_t row = 0, n = 0;
      if (src.kind == LayerKind::Input) {
        const InputGroup& g = src.inputs[rp];
        cpu::input_forward(g, a.params, a.x, a.missing, values, batch);
        row = g.row_start, n = g.num_nodes;
      } else {
        const ProductPartition& pp = src.products[rp];
        cpu::product_forward(pp, inputs, values, batch);
        row = pp.row_start, n = pp.num_nodes;
        // The fused input groups it computes are in no recompute list: their flows start here.
        for (const auto& [gl, gi] : pp.fused_inputs) {
          const InputGroup& g = p.layers[gl].inputs[gi];
          std::fill(flows + g.row_start * batch, flows + (g.row_start + g.num_nodes) * batch, 0.0f);
        }
      }
      std::fill(flows + row * batch, flows + (row + n) * batch, 0.0f);
    }
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
