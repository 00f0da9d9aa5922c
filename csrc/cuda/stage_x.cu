// Stages x's category indices for the products that compute fused inputs (Plan::x_rows): row v of
// `slots` gets x[:, v] as int32 (-1 where missing), so a product reads a fused node's categories as
// it reads a value row, coalesced (x is [batch, num_vars] row-major: a variable's column is one
// sector per entry). A tiled transpose through shared memory: 32 x 32 tiles, reads along variables,
// writes along the batch. Validation has run, so discrete entries are in-range integers; continuous
// variables' rows hold junk no product reads.
#include <algorithm>
#include <cstdint>

#include "core/input_values.h"
#include "cuda/cuda_check.cuh"
#include "cuda/ops.cuh"
#include "cuda/x_category.cuh"

namespace pcc {
namespace cuda {
namespace {

constexpr int kTile = 32, kRowsPerPass = 8;  // a CTA of 32 x 8 threads moves one 32 x 32 tile

template <class T>
__global__ void stage_x_kernel(const T* __restrict__ x, const uint8_t* __restrict__ missing, int64_t num_vars,
                               int64_t batch, int32_t* __restrict__ slots) {
  __shared__ int32_t tile[kTile][kTile + 1];  // +1: the column reads hit 32 banks
  const int64_t v0 = static_cast<int64_t>(blockIdx.x) * kTile;
  for (int64_t b0 = static_cast<int64_t>(blockIdx.y) * kTile; b0 < batch; b0 += static_cast<int64_t>(gridDim.y) * kTile) {
    for (int r = threadIdx.y; r < kTile; r += kRowsPerPass) {
      const int64_t b = b0 + r, v = v0 + threadIdx.x;
      if (b < batch && v < num_vars) tile[r][threadIdx.x] = x_category(x, missing, b * num_vars + v);
    }
    __syncthreads();
    for (int r = threadIdx.y; r < kTile; r += kRowsPerPass) {
      const int64_t v = v0 + r, b = b0 + threadIdx.x;
      if (b < batch && v < num_vars) slots[v * batch + b] = tile[threadIdx.x][r];
    }
    __syncthreads();  // the tile is reused for the next batch tile
  }
}

}  // namespace

void stage_x(const void* x, DType t, const uint8_t* missing, int64_t num_vars, int64_t batch, int32_t* slots,
             cudaStream_t stream) {
  if (num_vars == 0 || batch == 0) return;
  const dim3 grid(static_cast<unsigned>((num_vars + kTile - 1) / kTile),
                  static_cast<unsigned>(std::min<int64_t>((batch + kTile - 1) / kTile, 65535)));
  with_dtype(t, [&](auto tag) {
    using T = decltype(tag);
    stage_x_kernel<T><<<grid, dim3(kTile, kRowsPerPass), 0, stream>>>(static_cast<const T*>(x), missing, num_vars,
                                                                      batch, slots);
  });
  PCC_CUDA_CHECK_LAUNCH("stage_x");
}

}  // namespace cuda
}  // namespace pcc
