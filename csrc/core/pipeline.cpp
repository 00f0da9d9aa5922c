// The compiler pipeline: a straight list of passes, each able to dump its result (--dump-after).
#include "pcc/compiler.h"

#include <cstdint>

#include "core/passes.h"
#include "pcc/error.h"

namespace pcc {

const std::vector<std::string>& pass_names() {
  static const std::vector<std::string> names = {"verify",      "layerize",      "partition_blocks",
                                                   "plan_memory", "fuse_products", "reuse_rows",
                                                   "fuse_inputs"};
  return names;
}

Plan compile(const Circuit& c, const CompileOptions& o, std::ostream* dump) {
  const std::string& after = o.dump_after;
  if (!after.empty()) {
    bool known = false;
    for (const auto& n : pass_names()) known = known || n == after;
    PCC_CHECK(known, "unknown pass '", after,
              "' (passes: verify, layerize, partition_blocks, plan_memory, fuse_products, reuse_rows, fuse_inputs)");
    PCC_CHECK(dump != nullptr, "internal error: dump_after without an output stream");
  }
  PCC_CHECK(o.category_major_cats >= -1, "compile: category_major_cats must be >= -1, got ",
            o.category_major_cats);
  PCC_CHECK(o.fuse_max_arity >= 1, "compile: fuse_max_arity must be >= 1, got ", o.fuse_max_arity);
  verify(c);
  if (after == "verify") *dump << dump_circuit(c);
  const Layering layering = layerize(c);
  if (after == "layerize") *dump << dump_layering(c, layering);
  const Partitioning parts = partition_blocks(c, layering, o.block_size, o.max_partitions);
  if (after == "partition_blocks") *dump << dump_partitioning(c, parts);
  Plan plan = plan_memory(c, parts, o.category_major_cats);
  if (after == "plan_memory") *dump << dump_plan(plan);
  // Without reuse_rows every input keeps its rows anyway, so a sum may read any number of them.
  if (o.fuse_products) plan = fuse_products(plan, o.reuse_rows ? o.chunk_input_rows : INT64_MAX, o.fuse_max_arity);
  if (after == "fuse_products") *dump << dump_plan(plan);
  if (o.reuse_rows) plan = reuse_rows(plan, o.chunk_input_rows);
  if (after == "reuse_rows") *dump << dump_plan(plan);
  if (o.fuse_inputs) plan = fuse_inputs(plan);
  if (after == "fuse_inputs") *dump << dump_plan(plan);
  validate_plan(plan);  // the structural promises every backend relies on, checked once here
  return plan;
}

}  // namespace pcc
