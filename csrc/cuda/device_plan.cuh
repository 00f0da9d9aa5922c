// The device-side view of a Plan: its index arrays copied into one caller-owned device buffer (int32
// rows and counts, int64 parameter offsets), plus the derived indexes the kernels need and the plan
// does not store (transposed sum connectivity for gather-style backward passes, per-node parameter
// units, disjointness flags). Built on the host by cuda_upload_plan (device_plan.cu).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "cuda/graph_cache.cuh"
#include "pcc/cuda.h"
#include "pcc/plan.h"

namespace pcc {
namespace cuda {

struct DevInputGroup {
  Dist dist = Dist::Categorical;
  bool fused = false;  // InputGroup::fused: the products that read it compute it
  int64_t row_start = 0, num_nodes = 0;
  const int32_t* var = nullptr;           // [num_nodes]
  const int64_t* param_offset = nullptr;  // [num_nodes]
  const int32_t* num_cats = nullptr;      // [num_nodes]
  int64_t cat_stride = 1;                 // slot k of node i: param_offset[i] + k * cat_stride
  int32_t max_cats = 0;                   // host side: the largest category count (kernel shapes)
};

struct DevProduct {
  int64_t row_start = 0, num_nodes = 0;
  int32_t fanin = 0;
  const int32_t* child_rows = nullptr;  // [num_nodes * fanin]
  // 1 when no child row other than the constant rows appears twice in the partition: the backward
  // may add flows with plain stores; otherwise it uses atomics.
  int32_t children_disjoint = 1;
  // Fused inputs (ProductPartition::fused_inputs), per entry i * fanin + k: the variable of the input
  // node the entry computes (-1: a row it reads), the node's first parameter slot and its category
  // stride. All null where the partition computes no inputs.
  const int32_t* in_var = nullptr;
  const int64_t* in_slot = nullptr;
  const int32_t* in_stride = nullptr;
};

struct DevSum {
  int32_t block_size = 1, child_block_size = 1, fanin = 0;
  // Row starts per child block: 1, or a fused product's arity (SumPartition::child_arity; the kernels
  // read such blocks through fused_child.cuh).
  int32_t child_arity = 1;
  int64_t num_blocks = 0;
  const int32_t* out_rows = nullptr;        // [num_blocks]
  const int32_t* child_rows = nullptr;      // [num_blocks * fanin * child_arity], -1 = padding
  const int64_t* weight_offsets = nullptr;  // [num_blocks * fanin], -1 = padding
  int32_t disjoint_weights = 1;             // as SumPartition::disjoint_weights
  // Rows per run of consecutive blocks that read the same child list (the whole partition's mean):
  // the forward's tensor-core tile shares a run's child loads, so short runs take a shorter tile.
  int64_t rows_per_child_list = 1;
  // Transposed connectivity: the distinct child blocks this partition reads, and for each the
  // entries (i * fanin + f) that read it, so a backward kernel can own a child block and gather.
  // Distinct fused blocks may share rows (PD's region feeds several products), so kernels add their
  // flows with atomics where child_arity > 1.
  int64_t num_child_blocks = 0;
  const int32_t* child_block_rows = nullptr;     // [num_child_blocks * child_arity]: its row starts
  const int32_t* child_block_start = nullptr;    // [num_child_blocks + 1]: CSR into child_block_entries
  const int32_t* child_block_entries = nullptr;  // entries i * fanin + f
};

struct DevLayer {
  LayerKind kind = LayerKind::Input;
  std::vector<DevInputGroup> inputs;
  std::vector<DevProduct> products;
  std::vector<DevSum> sums;
};

}  // namespace cuda

struct CudaPlan {
  const Plan* plan = nullptr;
  int device = 0;
  std::vector<cuda::DevLayer> layers;
  const int64_t* pad_ranges = nullptr;  // [2 * num_pad_ranges]: (first row, count)
  int64_t num_pad_ranges = 0;
  const int64_t* var_limit = nullptr;   // [num_vars]
  int32_t* error = nullptr;             // device scratch for validation verdicts (kErrorInts ints)
  // Per-node parameter units for normalize / log_params / EM / grads (built by device_plan.cu; their
  // layout is private to params.cu).
  const int64_t* units = nullptr;
  int64_t num_units = 0;
  const int64_t* unit_blocks = nullptr;  // sum units: weight block offsets, CSR'd by the units
  // The same work for category-major Categorical groups, a few nodes per unit and a CTA per unit
  // (params_category_major.cu): their nodes' slots are strided, so lanes run over nodes.
  const int64_t* cm_units = nullptr;
  int64_t num_cm_units = 0;
  const uint8_t* param_valid = nullptr;
  int64_t num_params = 0;
  // Captured forward and backward passes of this plan (graph_cache.cuh).
  std::shared_ptr<cuda::GraphCache> forward_graphs = std::make_shared<cuda::GraphCache>();
  std::shared_ptr<cuda::GraphCache> backward_graphs = std::make_shared<cuda::GraphCache>();
};

namespace cuda {
constexpr int kErrorInts = 8;
}  // namespace cuda

}  // namespace pcc
