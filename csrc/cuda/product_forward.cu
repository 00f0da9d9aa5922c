// Product layer forward on the GPU: in log space a product node is the sum of its children's rows
// (padding entries read row kOneRow = 0). One thread per (node, batch column); the additions run in
// the order of csrc/cpu/product.cpp (c0 + c1, then pairs, then the odd one), so results match the
// CPU bit for bit.
#include <algorithm>

#include "cuda/cuda_check.cuh"
#include "cuda/ops.cuh"

namespace pcc {
namespace cuda {
namespace {

constexpr int kThreads = 256;

__global__ void product_forward_kernel(int64_t row_start, int64_t num_nodes, int32_t fanin,
                                       const int32_t* __restrict__ child_rows, float* values, int64_t batch) {
  const int64_t bstride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = blockIdx.y; i < num_nodes; i += gridDim.y) {
    const int32_t* rows = child_rows + i * fanin;
    float* out = values + (row_start + i) * batch;
    for (int64_t b = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; b < batch; b += bstride) {
      float acc = 0.0f;
      if (fanin >= 1) {
        acc = values[static_cast<int64_t>(rows[0]) * batch + b];
        int32_t k = 1;
        if (fanin >= 2) {
          acc = acc + values[static_cast<int64_t>(rows[1]) * batch + b];
          k = 2;
        }
        for (; k + 1 < fanin; k += 2)
          acc += values[static_cast<int64_t>(rows[k]) * batch + b] + values[static_cast<int64_t>(rows[k + 1]) * batch + b];
        if (k < fanin) acc += values[static_cast<int64_t>(rows[k]) * batch + b];
      }
      out[b] = acc;
    }
  }
}

}  // namespace

void product_forward(const DevProduct& p, float* values, int64_t batch, cudaStream_t stream) {
  if (p.num_nodes == 0 || batch == 0) return;
  const dim3 grid(static_cast<unsigned>(std::min<int64_t>((batch + kThreads - 1) / kThreads, 1 << 16)),
                  static_cast<unsigned>(std::min<int64_t>(p.num_nodes, 65535)));
  product_forward_kernel<<<grid, kThreads, 0, stream>>>(p.row_start, p.num_nodes, p.fanin, p.child_rows, values,
                                                        batch);
  PCC_CUDA_CHECK_LAUNCH("product_forward");
}

}  // namespace cuda
}  // namespace pcc
