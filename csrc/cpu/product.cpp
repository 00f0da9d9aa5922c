// Product layer forward: in log space a product node is the sum of its children's rows. Padding
// entries point at row kOneRow (all zeros), so every node sums exactly `fanin` rows. A child in a
// fused input group is computed into a scratch row first, then added like any row (the same order,
// so a fused plan's values equal the unfused plan's bit for bit).
#include <algorithm>
#include <vector>

#include "cpu/ops.h"
#include "cpu/thread_pool.h"

namespace pcc {
namespace cpu {

void product_forward(const ProductPartition& p, const InputSource& in, float* values, int64_t batch) {
  const int64_t fanin = p.fanin;
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(batch * fanin, 1));
  std::vector<const InputGroup*> fused;
  for (const auto& [l, g] : p.fused_inputs) fused.push_back(&in.plan->layers[l].inputs[g]);
  parallel_for(
      p.num_nodes,
      [&](int64_t begin, int64_t end) {
        std::vector<float> scratch(fused.empty() ? 0 : static_cast<size_t>(fanin * batch));
        for (int64_t i = begin; i < end; ++i) {
          float* __restrict out = values + (p.row_start + i) * batch;
          const int64_t* rows = p.child_rows.data() + i * fanin;
          if (fanin == 0) {
            std::fill(out, out + batch, 0.0f);
            continue;
          }
          // Child k's values: its row, or for a fused input node, its log-probabilities computed now.
          auto child = [&](int64_t k) -> const float* {
            const int64_t r = rows[k];
            for (const InputGroup* g : fused) {
              if (!holds_row(*g, r)) continue;
              float* row = scratch.data() + k * batch;
              discrete_log_probs(*g, r - g->row_start, in.params, *in.x, *in.missing, row, batch);
              return row;
            }
            return values + r * batch;
          };
          // Pairs of children per pass halve the passes over `out` for the common fan-ins 2 and 4.
          const float* __restrict c0 = child(0);
          int64_t k = 1;
          if (fanin >= 2) {
            const float* __restrict c1 = child(1);
            for (int64_t b = 0; b < batch; ++b) out[b] = c0[b] + c1[b];
            k = 2;
          } else {
            for (int64_t b = 0; b < batch; ++b) out[b] = c0[b];
          }
          for (; k + 1 < fanin; k += 2) {
            const float* __restrict a = child(k);
            const float* __restrict c = child(k + 1);
            for (int64_t b = 0; b < batch; ++b) out[b] += a[b] + c[b];
          }
          if (k < fanin) {
            const float* __restrict a = child(k);
            for (int64_t b = 0; b < batch; ++b) out[b] += a[b];
          }
        }
      },
      grain);
}

}  // namespace cpu
}  // namespace pcc
