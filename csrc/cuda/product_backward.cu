// Product layer backward on the GPU: each product node adds its flow to every child row it reads
// (d log v(node) / d log v(child) = 1). One thread per (node, batch column). When the partition's
// children are disjoint (DevProduct::children_disjoint: no non-constant row read twice) a plain
// read-modify-write is race-free; otherwise, and always for the constant rows kOneRow / kZeroRow
// that padding shares, the add is an atomicAdd. Zero flows add nothing and are skipped, as on the CPU.
#include <algorithm>

#include "cuda/cuda_check.cuh"
#include "cuda/ops.cuh"

namespace pcc {
namespace cuda {
namespace {

constexpr int kThreads = 256;

__global__ void product_backward_kernel(int64_t row_start, int64_t num_nodes, int32_t fanin,
                                        const int32_t* __restrict__ child_rows, bool disjoint, float* flows,
                                        int64_t batch) {
  const int64_t bstride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = blockIdx.y; i < num_nodes; i += gridDim.y) {
    const int32_t* rows = child_rows + i * fanin;
    const float* f = flows + (row_start + i) * batch;
    for (int64_t b = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; b < batch; b += bstride) {
      const float fb = f[b];
      if (fb == 0.0f) continue;
      for (int32_t k = 0; k < fanin; ++k) {
        const int64_t r = rows[k];
        float* c = flows + r * batch + b;
        if (disjoint && r > Plan::kZeroRow && r > Plan::kOneRow)
          *c += fb;
        else
          atomicAdd(c, fb);
      }
    }
  }
}

}  // namespace

void product_backward(const DevProduct& p, float* flows, int64_t batch, cudaStream_t stream) {
  if (p.num_nodes == 0 || batch == 0) return;
  const dim3 grid(static_cast<unsigned>(std::min<int64_t>((batch + kThreads - 1) / kThreads, 1 << 16)),
                  static_cast<unsigned>(std::min<int64_t>(p.num_nodes, 65535)));
  product_backward_kernel<<<grid, kThreads, 0, stream>>>(p.row_start, p.num_nodes, p.fanin, p.child_rows,
                                                         p.children_disjoint != 0, flows, batch);
  PCC_CUDA_CHECK_LAUNCH("product_backward");
}

}  // namespace cuda
}  // namespace pcc
