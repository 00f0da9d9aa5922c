// Pass fuse_inputs (last; CompileOptions::fuse_inputs): compute discrete input groups inside the
// product partitions that read them.
//
// A Categorical or Bernoulli node's value is one lookup, log params[slot + x * stride], cheaper to
// redo where a product reads it than to write into its row and read back, and each group dropped from
// the forward and the recompute is one launch less (HCLT runs an input group per tree level, PD and
// RAT-SPN without fused products one per layer). The group stays in the plan: its rows still carry
// its flows, and its backward (the E-step statistics) runs as before. A plan with fused groups gets
// num_vars rows more at its end (Plan::x_rows), where the CUDA backend stages x's category indices
// once per pass, so that a product reads a fused node's categories as it would read a row.
//
// A group fuses when all of these hold, and stays as it is otherwise:
//  * it is discrete and not the root;
//  * while its values are live, only product partitions read them, all of one layer (a sum reads
//    value rows it does not compute, and the readers' recomputes clear the group's flows, which
//    readers of two layers would do after the later layer's backward had added to them);
//  * they read every node of it exactly once (a reader clears the flows of the nodes it reads: a node
//    nobody read would keep the flows its rows last held; see below for twice);
//  * each recompute list that names it also names one of its readers after it, so its flows are
//    still cleared where they were (the readers' recompute does it instead).
// Readers are found by replaying the plan's writes in forward order (after reuse_rows, rows are
// shared over time, so a row's reader reads whatever was written there last).
#include <algorithm>
#include <cstdint>
#include <map>
#include <set>

#include "core/passes.h"
#include "pcc/error.h"

namespace pcc {
namespace {

using Ref = std::pair<int64_t, int64_t>;  // (layer, index)

struct Readers {
  std::set<Ref> products;      // product partitions that read the group's values
  std::vector<int64_t> reads;  // per node: product entries reading it
  bool other = false;          // something else reads them (a sum, the root)
};

// Each node's value is computed by every product entry that reads it: a node read twice costs its
// lookup and log twice, more than its row's write and read save (RAT-SPN's repetitions all read every
// input: its forward 1.7x slower on the CPU, measured), so each node must be read exactly once.

// For every input group: who reads its values, replaying the forward pass's writes.
std::map<Ref, Readers> find_readers(const Plan& p) {
  constexpr int64_t kNone = -1;
  std::vector<int64_t> owner(static_cast<size_t>(p.num_rows), kNone);  // index into `groups`, or -1
  std::vector<Ref> groups;
  std::map<Ref, Readers> readers;
  auto reader_of = [&](int64_t row) -> Readers* {
    const int64_t o = owner[static_cast<size_t>(row)];
    return o == kNone ? nullptr : &readers[groups[static_cast<size_t>(o)]];
  };
  auto node_of = [&](int64_t row) {
    const Ref& g = groups[static_cast<size_t>(owner[static_cast<size_t>(row)])];
    return row - p.layers[static_cast<size_t>(g.first)].inputs[static_cast<size_t>(g.second)].row_start;
  };
  auto write = [&](int64_t row, int64_t n, int64_t who) {
    std::fill(owner.begin() + row, owner.begin() + row + n, who);
  };
  for (size_t li = 0; li < p.layers.size(); ++li) {
    const Layer& l = p.layers[li];
    // A layer reads only rows written by earlier layers: all its reads come before its writes.
    for (size_t qi = 0; qi < l.products.size(); ++qi)
      for (int64_t r : l.products[qi].child_rows)
        if (Readers* rd = reader_of(r)) {
          rd->products.insert({static_cast<int64_t>(li), static_cast<int64_t>(qi)});
          rd->reads[static_cast<size_t>(node_of(r))] += 1;
        }
    for (const SumPartition& s : l.sums)
      for (int64_t start : s.child_rows) {
        if (start < 0) continue;
        for (int64_t r = start; r < start + s.child_block_size; ++r)
          if (Readers* rd = reader_of(r)) rd->other = true;
      }
    for (size_t gi = 0; gi < l.inputs.size(); ++gi) {
      const InputGroup& g = l.inputs[gi];
      groups.push_back({static_cast<int64_t>(li), static_cast<int64_t>(gi)});
      readers[groups.back()].reads.assign(static_cast<size_t>(g.num_nodes), 0);
      write(g.row_start, g.num_nodes, static_cast<int64_t>(groups.size()) - 1);
    }
    for (const ProductPartition& q : l.products) write(q.row_start, q.num_nodes, kNone);
    for (const SumPartition& s : l.sums)
      for (int64_t out : s.out_rows) write(out, s.block_size, kNone);
  }
  for (int64_t r = p.root_row; r < p.root_row + p.num_root_nodes; ++r)
    if (Readers* rd = reader_of(r)) rd->other = true;
  return readers;
}

// Every recompute list naming `g` names one of `readers` after it.
bool recomputed_with_readers(const Plan& p, const Ref& g, const std::set<Ref>& readers) {
  for (const Layer& l : p.layers) {
    const auto at = std::find(l.recompute.begin(), l.recompute.end(), g);
    if (at == l.recompute.end()) continue;
    if (std::none_of(at + 1, l.recompute.end(), [&](const Ref& r) { return readers.count(r) > 0; })) return false;
  }
  return true;
}

}  // namespace

Plan fuse_inputs(const Plan& in) {
  Plan p = in;
  for (const auto& [g, rd] : find_readers(in)) {
    const InputGroup& group = in.layers[static_cast<size_t>(g.first)].inputs[static_cast<size_t>(g.second)];
    const bool discrete = group.dist == Dist::Categorical || group.dist == Dist::Bernoulli;
    if (!discrete || group.num_nodes == 0 || rd.other || rd.products.empty()) continue;
    if (rd.products.begin()->first != rd.products.rbegin()->first) continue;  // readers of two layers
    if (!std::all_of(rd.reads.begin(), rd.reads.end(), [](int64_t n) { return n == 1; })) continue;
    if (!recomputed_with_readers(in, g, rd.products)) continue;
    p.layers[static_cast<size_t>(g.first)].inputs[static_cast<size_t>(g.second)].fused = 1;
    for (const Ref& q : rd.products)
      p.layers[static_cast<size_t>(q.first)].products[static_cast<size_t>(q.second)].fused_inputs.push_back(g);
    for (Layer& l : p.layers) l.recompute.erase(std::remove(l.recompute.begin(), l.recompute.end(), g), l.recompute.end());
    if (p.x_rows < 0) {  // rows for x's category indices, staged by a GPU backend (Plan::x_rows)
      p.x_rows = p.num_rows;
      p.num_rows += p.num_vars;
    }
  }
  return p;
}

}  // namespace pcc
