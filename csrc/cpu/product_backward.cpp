// Product layer backward: d log v(node) / d log v(child) = 1, so each product node adds its flow to
// each child row it reads. Products share children (and padding reads kOneRow), so threads own
// column ranges of the batch and each walks every node in order: race-free, and each column's sums
// are formed in one fixed order whatever the thread count.
#include <algorithm>

#include "cpu/ops.h"
#include "cpu/thread_pool.h"

namespace pcc {
namespace cpu {

void product_backward(const ProductPartition& p, float* flows, int64_t batch) {
  if (p.num_nodes == 0 || batch == 0) return;
  constexpr int64_t kCols = 16;  // one cache line of floats per column unit
  const int64_t units = (batch + kCols - 1) / kCols, fanin = p.fanin;
  // Enough work per chunk to pay for waking a thread.
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(p.num_nodes * fanin * kCols, 1));
  parallel_for(
      units,
      [&](int64_t begin, int64_t end) {
        const int64_t c0 = begin * kCols, c1 = std::min(batch, end * kCols);
        for (int64_t i = 0; i < p.num_nodes; ++i) {
          const float* __restrict f = flows + (p.row_start + i) * batch;
          bool any = false;
          for (int64_t b = c0; b < c1; ++b) any |= f[b] != 0.0f;
          if (!any) continue;
          const int64_t* rows = p.child_rows.data() + i * fanin;
          for (int64_t k = 0; k < fanin; ++k) {
            float* __restrict c = flows + rows[k] * batch;
            for (int64_t b = c0; b < c1; ++b) c[b] += f[b];
          }
        }
      },
      grain);
}

}  // namespace cpu
}  // namespace pcc
