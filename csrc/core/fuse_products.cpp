// Pass fuse_products (after plan_memory, before reuse_rows; CompileOptions::fuse_products): compute
// element-wise product vectors inside the sum partitions that read them.
//
// A product's value is a sum of child rows, so a sum block can form it while it reads it: its child
// block becomes the A row runs the product would have added (SumPartition::child_arity), and the
// product never takes rows, is never written, read back or recomputed, and its flows go straight to
// its children. That pays where the product's rows cost more than the second read: PD's products of
// two sum regions (a third of its rows), HCLT's and HMM's products of an input and sums.
//
// A product partition fuses when all of these hold, and stays as it is otherwise:
//  * only sum blocks read its rows (no product, not the root), each reading whole child blocks that
//    lie inside the partition;
//  * every such child block is element-wise: node j of the block reads row c_a + j of each child a
//    (or kOneRow, the padding of a product with fewer children, for every node of the block);
//  * its children are sum or input rows, and where they include inputs, its layer reads at most
//    `max_input_rows` input rows (CompileOptions::chunk_input_rows with reuse_rows): reuse_rows
//    computes a layer reading more in chunks, each right before its products, which a sum reading
//    the inputs itself would undo (all of them alive at once);
//  * its child blocks have at most `max_arity` children (CompileOptions::fuse_max_arity).
// Product layers left without partitions are dropped, fused vectors get vector_rows -1, and the rows
// are renumbered without the fused partitions' rows (reuse_rows would keep rows nobody writes).
#include <algorithm>

#include "core/passes.h"
#include "pcc/error.h"

namespace pcc {
namespace {

enum class Writer : uint8_t { None, Input, Product, Sum };

struct RowInfo {
  std::vector<Writer> writer;  // per row
  std::vector<int64_t> part;   // per row: its product partition (index into `parts`), or -1
};

struct PartRef {
  size_t layer, index;
};

// The starts c_a of child block [r, r + cb) of product partition q if it is element-wise over sum
// rows, or input rows where `inputs` (absent children, kOneRow for every node, are left out), else
// empty.
std::vector<int64_t> element_wise_starts(const ProductPartition& q, int64_t r, int64_t cb, const RowInfo& rows,
                                         bool inputs) {
  std::vector<int64_t> starts;
  const int64_t i0 = r - q.row_start;
  for (int64_t a = 0; a < q.fanin; ++a) {
    const int64_t c0 = q.child_rows[i0 * q.fanin + a];
    bool absent = c0 == Plan::kOneRow, ok = true;
    for (int64_t j = 1; j < cb && ok; ++j) {
      const int64_t c = q.child_rows[(i0 + j) * q.fanin + a];
      ok = absent ? c == Plan::kOneRow : c == c0 + j;
    }
    if (!ok) return {};
    if (absent) continue;
    for (int64_t j = 0; j < cb; ++j) {
      if (c0 + j >= static_cast<int64_t>(rows.writer.size())) return {};
      const Writer w = rows.writer[c0 + j];
      if (!(w == Writer::Sum || (inputs && w == Writer::Input))) return {};
    }
    starts.push_back(c0);
  }
  return starts;
}

}  // namespace

Plan fuse_products(const Plan& p, int64_t max_input_rows, int64_t max_arity) {
  for (const Layer& l : p.layers)
    PCC_CHECK(l.recompute.empty(), "internal error: fuse_products runs before reuse_rows");
  const int64_t n = p.num_rows;
  RowInfo rows{std::vector<Writer>(n, Writer::None), std::vector<int64_t>(n, -1)};
  std::vector<PartRef> parts;
  for (size_t li = 0; li < p.layers.size(); ++li) {
    const Layer& l = p.layers[li];
    for (const InputGroup& g : l.inputs)
      std::fill(rows.writer.begin() + g.row_start, rows.writer.begin() + g.row_start + g.num_nodes, Writer::Input);
    for (size_t qi = 0; qi < l.products.size(); ++qi) {
      const ProductPartition& q = l.products[qi];
      for (int64_t r = q.row_start; r < q.row_start + q.num_nodes; ++r) {
        rows.writer[r] = Writer::Product;
        rows.part[r] = static_cast<int64_t>(parts.size());
      }
      parts.push_back({li, qi});
    }
    for (const SumPartition& s : l.sums)
      for (int64_t o : s.out_rows)
        std::fill(rows.writer.begin() + o, rows.writer.begin() + o + s.block_size, Writer::Sum);
  }

  // Product layers whose children may be inputs: those reading at most max_input_rows input rows
  // (counted as reuse_rows counts them, per child entry).
  std::vector<uint8_t> inputs_ok(p.layers.size(), 0);
  for (size_t li = 0; li < p.layers.size(); ++li) {
    int64_t reads = 0;
    for (const ProductPartition& q : p.layers[li].products)
      for (int64_t c : q.child_rows) reads += c >= 0 && c < n && rows.writer[c] == Writer::Input;
    inputs_ok[li] = reads <= max_input_rows;
  }

  // Which partitions fuse: any reader that is not a whole element-wise child block keeps one. The
  // starts of every sum entry that reads a product row are kept, in the order of the entries, for
  // the rewrite below (which walks the entries in the same order).
  std::vector<uint8_t> fuses(parts.size(), 1);
  std::vector<std::vector<int64_t>> entry_starts;
  auto keep_row = [&](int64_t r) {
    if (r >= 0 && r < n && rows.part[r] >= 0) fuses[rows.part[r]] = 0;
  };
  for (int64_t j = 0; j < p.num_root_nodes; ++j) keep_row(p.root_row + j);
  for (const Layer& l : p.layers) {
    for (const ProductPartition& q : l.products)
      for (int64_t c : q.child_rows) keep_row(c);
    for (const SumPartition& s : l.sums) {
      PCC_CHECK(s.child_arity == 1, "internal error: fuse_products runs once");
      const int64_t cb = s.child_block_size;
      for (int64_t r : s.child_rows) {
        if (r < 0 || rows.part[r] < 0) continue;
        const PartRef& at = parts[rows.part[r]];
        const ProductPartition& q = p.layers[at.layer].products[at.index];
        entry_starts.push_back(r + cb > q.row_start + q.num_nodes
                                   ? std::vector<int64_t>{}
                                   : element_wise_starts(q, r, cb, rows, inputs_ok[at.layer]));
        const std::vector<int64_t>& starts = entry_starts.back();
        if (starts.empty() || static_cast<int64_t>(starts.size()) > max_arity) {
          for (int64_t c = r; c < r + cb; ++c) keep_row(c);
        }
      }
    }
  }
  if (std::none_of(fuses.begin(), fuses.end(), [](uint8_t f) { return f != 0; })) return p;

  Plan out = p;
  out.layers.clear();
  size_t next_entry = 0;  // into entry_starts
  for (size_t li = 0; li < p.layers.size(); ++li) {
    Layer l = p.layers[li];
    if (l.kind == LayerKind::Product) {
      std::vector<ProductPartition> kept;
      for (size_t qi = 0; qi < l.products.size(); ++qi) {
        const ProductPartition& q = l.products[qi];
        if (q.num_nodes > 0 && fuses[rows.part[q.row_start]]) continue;
        kept.push_back(q);
      }
      if (kept.empty()) continue;  // nothing left to run in this layer
      l.products = std::move(kept);
    }
    for (SumPartition& s : l.sums) {
      // Arity: the most children of a fused product this partition reads (1 if it reads none).
      std::vector<std::vector<int64_t>> starts(s.child_rows.size());
      int64_t arity = 1;
      for (size_t e = 0; e < s.child_rows.size(); ++e) {
        const int64_t r = s.child_rows[e];
        const bool reads_product = r >= 0 && rows.part[r] >= 0;
        if (reads_product) PCC_CHECK(next_entry < entry_starts.size(), "internal error: fuse_products lost an entry");
        if (reads_product && fuses[rows.part[r]]) {
          starts[e] = std::move(entry_starts[next_entry++]);
          PCC_CHECK(!starts[e].empty(), "internal error: fuse_products lost a product's children");
        } else {
          next_entry += reads_product;
          starts[e] = {r};  // an ordinary child block, or padding (-1)
        }
        arity = std::max<int64_t>(arity, static_cast<int64_t>(starts[e].size()));
      }
      if (arity == 1) continue;
      std::vector<int64_t> child_rows;
      child_rows.reserve(s.child_rows.size() * arity);
      for (const std::vector<int64_t>& st : starts) {
        child_rows.insert(child_rows.end(), st.begin(), st.end());
        child_rows.insert(child_rows.end(), arity - static_cast<int64_t>(st.size()), -1);
      }
      s.child_arity = arity;
      s.child_rows = std::move(child_rows);
    }
    out.layers.push_back(std::move(l));
  }
  for (int64_t& v : out.vector_rows)
    if (v >= 0 && rows.part[v] >= 0 && fuses[rows.part[v]]) v = -1;

  // Renumber: every row keeps its order, the fused partitions' rows (padding included) go.
  std::vector<int64_t> to(n + 1, 0);
  int64_t kept = 0;
  for (int64_t r = 0; r < n; ++r) {
    to[r] = kept;
    kept += !(rows.part[r] >= 0 && fuses[rows.part[r]]);
  }
  to[n] = kept;
  auto map = [&](int64_t& r) {
    if (r >= 0) r = to[r];
  };
  for (Layer& l : out.layers) {
    for (InputGroup& g : l.inputs) map(g.row_start);
    for (ProductPartition& q : l.products) {
      map(q.row_start);
      for (int64_t& c : q.child_rows) map(c);
    }
    for (SumPartition& s : l.sums) {
      for (int64_t& o : s.out_rows) map(o);
      for (int64_t& c : s.child_rows) map(c);
    }
  }
  for (int64_t& v : out.vector_rows) map(v);
  map(out.root_row);
  std::vector<std::pair<int64_t, int64_t>> pads;
  for (const auto& [first, count] : p.pad_ranges)
    for (int64_t r = first; r < first + count; ++r) {
      if (rows.part[r] >= 0 && fuses[rows.part[r]]) continue;
      if (!pads.empty() && pads.back().first + pads.back().second == to[r]) ++pads.back().second;
      else pads.push_back({to[r], 1});
    }
  out.pad_ranges = std::move(pads);
  out.num_rows = kept;
  return out;
}

}  // namespace pcc
