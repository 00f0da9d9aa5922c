// Internal: the compiler's passes and the intermediate results they hand to each other.
// The pipeline (pipeline.cpp) runs them in order: verify -> layerize -> partition_blocks -> plan_memory
// -> fuse_products (if CompileOptions::fuse_products) -> reuse_rows (unless CompileOptions::reuse_rows
// is off) -> fuse_inputs (if CompileOptions::fuse_inputs).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "pcc/ir.h"
#include "pcc/plan.h"

namespace pcc {

// layerize: reachable vectors grouped into layers that can run together. Inputs form layer 0; a
// vector's height is 1 + the largest height of its children; each height gives a product layer and
// then a sum layer (either may be absent).
struct Layering {
  struct Layer {
    LayerKind kind = LayerKind::Input;
    std::vector<int64_t> vectors;
  };
  std::vector<Layer> layers;
  std::vector<int64_t> height;  // per vector, -1 if unreachable
};

// How the sums of one tied parameter group map onto dense weight blocks. Shared by all tied vectors.
struct BlockPattern {
  int64_t block_size = 1, child_block_size = 1;
  int64_t num_sum_blocks = 0;
  // One entry per (sum block, child block) connection, grouped by sum block (CSR by block_start).
  std::vector<int64_t> block_start;  // [num_sum_blocks + 1]
  std::vector<int64_t> child;        // which child of the vector (0 .. children.size()-1)
  std::vector<int64_t> child_local;  // first node of the child block inside that child
  std::vector<int64_t> weight_block; // index of its [b, cb] matrix in `weights`
  std::vector<float> weights;        // [num_weight_blocks, b, cb]
  std::vector<ParamRun> runs;        // IR group elements -> offsets inside `weights`
  int64_t real_edges = 0;            // node-level edges of one vector using the pattern
};

// partition_blocks: the layers cut into partitions of node blocks with a common shape and fan-in.
struct Partitioning {
  struct InputPart {  // input vectors of one distribution
    Dist dist = Dist::Categorical;
    std::vector<int64_t> vectors;
  };
  struct ProductPart {  // product vectors whose fan-in pads to `fanin`
    int64_t fanin = 0;
    std::vector<int64_t> vectors;
  };
  struct SumPart {  // sum blocks of one shape whose fan-in (child blocks) pads to `fanin`
    int64_t block_size = 1, child_block_size = 1, fanin = 0;
    std::vector<int64_t> vector, block;  // [num_blocks]: which vector, which of its blocks
  };
  struct Layer {
    LayerKind kind = LayerKind::Input;
    std::vector<InputPart> inputs;
    std::vector<ProductPart> products;
    std::vector<SumPart> sums;
  };
  std::vector<Layer> layers;
  std::vector<int64_t> pattern_of_group;  // per param group: index into patterns, -1 if not a sum
  std::vector<BlockPattern> patterns;
  std::vector<int64_t> align;             // per vector: rows are rounded up to a multiple of this
};

Layering layerize(const Circuit& c);
Partitioning partition_blocks(const Circuit& c, const Layering& l, int64_t block_size,
                              int64_t max_partitions);
Plan plan_memory(const Circuit& c, const Partitioning& p, int64_t category_major_cats);
Plan fuse_products(const Plan& p, int64_t max_input_rows, int64_t max_arity);
Plan reuse_rows(const Plan& p, int64_t chunk_input_rows);
Plan fuse_inputs(const Plan& p);

// Block pattern of one sum vector (block_pattern.cpp); block_size 0 = choose from the shape.
BlockPattern make_block_pattern(const Circuit& c, const NodeVector& v, int64_t block_size);

// Text dumps after each pass (dump.cpp), for pcc-compile --dump-after and golden tests.
std::string dump_circuit(const Circuit& c);
std::string dump_layering(const Circuit& c, const Layering& l);
std::string dump_partitioning(const Circuit& c, const Partitioning& p);
std::string dump_plan(const Plan& p);

}  // namespace pcc
