// The compiler: IR -> Plan, as a straight list of passes (csrc/core/pipeline.cpp).
//   verify -> layerize -> partition_blocks -> plan_memory -> reuse_rows
// Each pass can dump its result as text (pcc-compile --dump-after=PASS; golden tests read these).
#pragma once
#include <ostream>
#include <string>
#include <vector>

#include "pcc/ir.h"
#include "pcc/plan.h"

namespace pcc {

struct CompileOptions {
  int64_t block_size = 0;       // sum block size (power of two); 0 = chosen per vector
  int64_t max_partitions = 4;   // fan-in buckets per layer
  std::string dump_after;       // pass name, or "" for none
  // Let input and product vectors share rows (only sum values persist; the backward recomputes the
  // rest). Off: every vector keeps its rows, so a pass leaves every node's value and flow readable.
  bool reuse_rows = true;
  // With reuse_rows: a product layer reading more input rows than this runs in several product
  // layers, each right after its own inputs, which share rows (and are recomputed in the backward).
  int64_t chunk_input_rows = 16384;
  // Categorical parameter groups with more categories than this are stored category-major (plan.h),
  // so an input layer's nodes on one variable gather contiguous memory instead of a sector per node
  // and sample (HMM vocabularies); smaller ones stay node-major, where a node's slots fit a table in
  // shared memory. 0: every Categorical group category-major; -1: none.
  int64_t category_major_cats = 512;
  // Compute element-wise product vectors whose children are sums inside the sum partitions that
  // read them (pass fuse_products; SumPartition::child_arity), so their values and flows take no
  // rows. Off by default: plans keep their shape unless asked (pcc.compile's "auto" asks on CUDA).
  bool fuse_products = false;
  // ... only products of at most this many children (the CUDA kernels read two at full speed, PD's,
  // HMM's and RAT-SPN's; more go through a slower generic path).
  int64_t fuse_max_arity = SumPartition::kMaxChildArity;
  // Compute discrete input groups whose only readers are the product partitions of one layer inside
  // those partitions (pass fuse_inputs; InputGroup::fused): no input launch, no write and read back
  // of their values. On by default: values, flows and parameters come out the same (bit for bit on
  // the CPU), and the parameter layout does not change.
  bool fuse_inputs = true;
};

const std::vector<std::string>& pass_names();

// Throws pcc::Error on an invalid circuit. If options.dump_after names a pass, its dump is written to
// *dump (which must then be non-null).
Plan compile(const Circuit& c, const CompileOptions& options = {}, std::ostream* dump = nullptr);

// The verify pass alone (also run by compile).
void verify(const Circuit& c);

}  // namespace pcc
