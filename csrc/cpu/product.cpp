// Product layer forward: in log space a product node is the sum of its children's rows. Padding
// entries point at row kOneRow (all zeros), so every node sums exactly `fanin` rows.
#include <algorithm>

#include "cpu/ops.h"
#include "cpu/thread_pool.h"

namespace pcc {
namespace cpu {

void product_forward(const ProductPartition& p, float* values, int64_t batch) {
  const int64_t fanin = p.fanin;
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(batch * fanin, 1));
  parallel_for(
      p.num_nodes,
      [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) {
          float* __restrict out = values + (p.row_start + i) * batch;
          const int64_t* rows = p.child_rows.data() + i * fanin;
          if (fanin == 0) {
            std::fill(out, out + batch, 0.0f);
            continue;
          }
          // Pairs of children per pass halve the passes over `out` for the common fan-ins 2 and 4.
          const float* __restrict c0 = values + rows[0] * batch;
          int64_t k = 1;
          if (fanin >= 2) {
            const float* __restrict c1 = values + rows[1] * batch;
            for (int64_t b = 0; b < batch; ++b) out[b] = c0[b] + c1[b];
            k = 2;
          } else {
            for (int64_t b = 0; b < batch; ++b) out[b] = c0[b];
          }
          for (; k + 1 < fanin; k += 2) {
            const float* __restrict a = values + rows[k] * batch;
            const float* __restrict c = values + rows[k + 1] * batch;
            for (int64_t b = 0; b < batch; ++b) out[b] += a[b] + c[b];
          }
          if (k < fanin) {
            const float* __restrict a = values + rows[k] * batch;
            for (int64_t b = 0; b < batch; ++b) out[b] += a[b];
          }
        }
      },
      grain);
}

}  // namespace cpu
}  // namespace pcc
