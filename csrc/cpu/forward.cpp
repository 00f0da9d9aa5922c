// cpu_forward: runs a plan's layers in order over a caller-owned workspace, then copies the root
// rows out as [batch, num_root_nodes]. One switch over layer kinds; the ops live in their own files.
#include <algorithm>
#include <limits>

#include "cpu/ops.h"
#include "cpu/thread_pool.h"
#include "pcc/backend.h"

namespace pcc {

void cpu_forward(const ForwardArgs& a) {
  validate_inputs(a);
  const Plan& p = *a.plan;
  const int64_t batch = a.batch;
  if (batch == 0) return;
  float* values = a.values;
  const cpu::InputSource inputs{&p, a.params, &a.x, &a.missing};

  std::fill(values + Plan::kOneRow * batch, values + (Plan::kOneRow + 1) * batch, 0.0f);
  for (const auto& [first, count] : p.pad_ranges)
    std::fill(values + first * batch, values + (first + count) * batch,
              -std::numeric_limits<float>::infinity());

  for (const Layer& layer : p.layers) {
    switch (layer.kind) {
      case LayerKind::Input:
        for (const InputGroup& g : layer.inputs)
          cpu::input_forward(g, a.params, a.x, a.missing, values, batch);
        break;
      case LayerKind::Product:
        for (const ProductPartition& pp : layer.products) cpu::product_forward(pp, inputs, values, batch);
        break;
      case LayerKind::Sum:
        for (const SumPartition& s : layer.sums) cpu::sum_forward(s, a.params, values, batch);
        break;
    }
  }

  const int64_t R = p.num_root_nodes;
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t j = 0; j < R; ++j) a.out[b * R + j] = values[(p.root_row + j) * batch + b];
}

}  // namespace pcc
