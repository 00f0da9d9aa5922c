// Pass 5, reuse_rows: let input and product rows share memory, so a pass over a circuit keeps only
// its sum nodes' values (and flows) for the whole pass.
//
// Input and product values are cheap to recompute (a lookup in x, a sum of child rows), sum values
// are not. So every input and product vector whose rows the root does not need becomes *transient*:
// it is computed right before its first reader (inputs move from layer 0 to an input layer placed
// just before the layer that first reads them; products whose children are sums move from the
// earliest layer their children allow to a product layer placed just before their first reader,
// which matters where a region's products have children of different depths, as in PD) and its rows
// are free again after its last reader, for the next transient vector. The backward pass visits the
// layers in reverse; before the backward of a layer it recomputes (forward op, flows zeroed) the
// transient vectors whose last reader that layer is, listed in Layer::recompute. A transient vector
// read by a transient product stays alive as long as that product (its recompute needs it), so when
// the backward recomputes a vector its children are already there.
//
// A product layer that reads more input rows than CompileOptions::chunk_input_rows (the first layers
// of PD and HCLT read thousands of input vectors) is first split into runs of whole vectors, each
// right after its own inputs, which share one region over the runs (chunk_input_readers). Where the
// split would copy more than half of those inputs (RAT-SPN's repetitions all read every input), the
// layer stays whole and its products are kept rather than recomputed, so that its inputs die there.
//
// Sum vectors share too, in time: a sum's rows are free before its layer runs in the forward and
// again once its layer's backward has run (its parents' backward ran before), while a transient is
// alive only between its first and last reader and recomputed there in the backward. So a sum of
// layer L takes the interval [L, end] and may reuse the rows of transients whose last reader comes
// before L (RAT-SPN's and PD's inputs of the first layers). Only the values and flows the API
// returns stay put: the root's, and rows that padding or constants pin.
//
// Units of relocation are whole IR vectors (a sum child block never straddles two vectors). Vectors
// of one partition (or input group) with the same lifetime are bundled and placed back to back, so
// they stay one launch. Moving whole vectors keeps every sum block's place inside its vector, which
// is all the block layout depends on. Fixed rows (kOneRow, kZeroRow, the root, padding, input vectors
// followed by -inf padding, which no input op writes, persistent products) are packed first, in
// their order, then the shared region: transient bundles and sum vectors, first fit over layer
// intervals.
#include <algorithm>
#include <map>
#include <tuple>

#include "core/passes.h"
#include "pcc/error.h"

namespace pcc {
namespace {

// Nodes of input groups a and b may share one group (one distribution, one parameter stride).
bool same_layout(const InputGroup& a, const InputGroup& b) {
  return a.dist == b.dist && a.cat_stride == b.cat_stride;
}

// A group without nodes, laid out like g, starting at `row`.
InputGroup empty_like(const InputGroup& g, int64_t row) {
  InputGroup n;
  n.dist = g.dist;
  n.cat_stride = g.cat_stride;
  n.row_start = row;
  return n;
}

// One IR vector's run of rows (padding included) inside an input group or product partition.
struct Atom {
  int64_t begin = 0, end = 0;
  int64_t layer = 0, part = 0;  // where the plan computes it (old layer, group / partition index)
  bool input = false, transient = true;
  int64_t first = INT64_MAX, last = -1;  // old layers of its first and last reader
  int64_t moved_to = -1;  // a product computed right before old layer moved_to instead (-1: stays)
  int64_t family = -1;    // an input read by one run of a split layer only (see chunk_input_readers)
};

// A bundle: atoms of one (layer, part) with the same lifetime, placed contiguously.
struct Bundle {
  std::vector<int64_t> atoms;
  int64_t start = 0, last = 0;  // new layer indices of its lifetime (inclusive)
  int64_t new_layer = 0, new_part = 0;
  int64_t offset = 0, size = 0;  // rows inside the scratch region
  int64_t family = -1;           // its atoms' family: rows inside the family's region instead
};

class Reuse {
 public:
  // family[l]: the split layer that old layer l is a run of (-1: none), from chunk_input_readers.
  // cuts: first rows of vectors the plan does not name (input copies), where atoms end too.
  // heavy[l]: old layer l reads many input rows but stays whole (chunk_input_readers).
  Reuse(const Plan& p, std::vector<int64_t> family, std::vector<int64_t> cuts, std::vector<uint8_t> heavy)
      : p_(p), family_of_layer_(std::move(family)), cuts_(std::move(cuts)), heavy_(std::move(heavy)) {}

  Plan run() {
    find_atoms();
    if (atoms_.empty()) return p_;
    find_readers();
    move_products();
    // The products of a layer that reads many input rows and stays whole (RAT-SPN's first) are kept,
    // not recomputed: recomputing them would hold all those inputs until the products' last reader,
    // where the next layer's sums could use their rows.
    for (Atom& a : atoms_)
      if (!a.input && heavy_[a.layer]) a.transient = false;
    extend_lifetimes();
    if (std::none_of(atoms_.begin(), atoms_.end(), [](const Atom& a) { return a.transient; })) return p_;
    make_bundles();
    find_sum_spans();
    allocate();
    return rewrite();
  }

 private:
  const Plan& p_;
  std::vector<int64_t> family_of_layer_;
  std::vector<int64_t> cuts_;
  std::vector<uint8_t> heavy_;
  std::map<int64_t, int64_t> family_last_;  // family -> old layer of its products' last reader
  std::vector<Atom> atoms_;
  std::vector<int64_t> atom_of_row_;  // -1: not in an input group or product partition
  std::vector<Bundle> bundles_;
  std::vector<int64_t> bundle_of_atom_;
  int64_t scratch_rows_ = 0;

  // Atoms: the vector starts (vector_rows) cut each group / partition into vectors.
  void find_atoms() {
    std::vector<int64_t> starts = cuts_;
    for (int64_t r : p_.vector_rows)
      if (r >= 0) starts.push_back(r);
    std::sort(starts.begin(), starts.end());
    starts.erase(std::unique(starts.begin(), starts.end()), starts.end());
    atom_of_row_.assign(p_.num_rows, -1);
    auto add = [&](int64_t begin, int64_t end, int64_t layer, int64_t part, bool input) {
      auto it = std::upper_bound(starts.begin(), starts.end(), begin);
      int64_t b = begin;
      while (b < end) {
        int64_t e = end;
        if (it != starts.end() && *it < end) e = *it++;
        Atom a;
        a.begin = b;
        a.end = e;
        a.layer = layer;
        a.part = part;
        a.input = input;
        for (int64_t r = b; r < e; ++r) atom_of_row_[r] = static_cast<int64_t>(atoms_.size());
        atoms_.push_back(a);
        b = e;
      }
    };
    for (size_t li = 0; li < p_.layers.size(); ++li) {
      const Layer& l = p_.layers[li];
      for (size_t gi = 0; gi < l.inputs.size(); ++gi)
        add(l.inputs[gi].row_start, l.inputs[gi].row_start + l.inputs[gi].num_nodes, li, gi, true);
      for (size_t pi = 0; pi < l.products.size(); ++pi)
        add(l.products[pi].row_start, l.products[pi].row_start + l.products[pi].num_nodes, li, pi, false);
    }
    // Input vectors followed by padding stay: their -inf pad rows are set once per pass, by no op.
    std::vector<uint8_t> pad_first(p_.num_rows + 1, 0);
    for (const auto& [first, n] : p_.pad_ranges)
      if (first >= 0 && first <= p_.num_rows) pad_first[first] = 1;
    for (Atom& a : atoms_)
      if (a.input && pad_first[a.end]) a.transient = false;
    for (int64_t r = p_.root_row; r < p_.root_row + p_.num_root_nodes; ++r)
      if (atom_of_row_[r] >= 0) atoms_[atom_of_row_[r]].transient = false;
  }

  void read(int64_t row, int64_t layer) {
    if (row < 0 || row >= p_.num_rows) return;
    const int64_t a = atom_of_row_[row];
    if (a < 0) return;
    atoms_[a].first = std::min(atoms_[a].first, layer);
    atoms_[a].last = std::max(atoms_[a].last, layer);
  }

  // The old layer that reads as product row r's partition: its own, or the one it moved before.
  int64_t reader_layer(int64_t li, int64_t r) const {
    const int64_t a = atom_of_row_[r];
    return a >= 0 && atoms_[a].moved_to >= 0 ? atoms_[a].moved_to : li;
  }

  void find_readers() {
    for (Atom& a : atoms_) {
      a.first = INT64_MAX;
      a.last = -1;
    }
    for (size_t li = 0; li < p_.layers.size(); ++li) {
      const Layer& l = p_.layers[li];
      for (const ProductPartition& pp : l.products)
        for (int64_t i = 0; i < pp.num_nodes; ++i) {
          const int64_t at = reader_layer(li, pp.row_start + i);
          for (int64_t k = 0; k < pp.fanin; ++k) read(pp.child_rows[i * pp.fanin + k], at);
        }
      for (const SumPartition& s : l.sums)
        for (int64_t r : s.child_rows)
          if (r >= 0)
            for (int64_t c = 0; c < s.child_block_size; ++c) read(r + c, li);
    }
    // Vectors no block reads (a sum's sparse edges can skip a whole child): products live in their
    // own layer only; inputs are left where they are.
    for (Atom& a : atoms_)
      if (a.last < 0) {
        if (a.input) a.transient = false;
        else a.first = a.last = a.layer;
      }
    // A product partition (or the part of it moved before one layer) stays one launch: its vectors
    // live until the last one's reader.
    std::map<std::tuple<int64_t, int64_t, int64_t>, int64_t> part_last;
    for (const Atom& a : atoms_)
      if (!a.input) {
        int64_t& l = part_last[{a.layer, a.part, a.moved_to}];
        l = std::max(l, a.last);
      }
    for (Atom& a : atoms_)
      if (!a.input) a.last = part_last[{a.layer, a.part, a.moved_to}];
  }

  // Transient products whose children are all sums or constants (always there) and whose first
  // reader comes more than one layer later move right before that reader; then the readers are found
  // again. (Products over inputs stay: chunk_input_readers below spaced them out on purpose.)
  void move_products() {
    bool any = false;
    for (Atom& a : atoms_) {
      if (a.input || !a.transient || a.first == INT64_MAX || a.first <= a.layer + 1) continue;
      const ProductPartition& pp = p_.layers[a.layer].products[a.part];
      bool ok = true;
      for (int64_t r = a.begin; r < a.end && ok; ++r)
        for (int64_t k = 0; k < pp.fanin && ok; ++k) {
          const int64_t c = pp.child_rows[(r - pp.row_start) * pp.fanin + k];
          const int64_t ca = c >= 0 && c < p_.num_rows ? atom_of_row_[c] : -1;
          ok = ca < 0;
        }
      if (ok) {
        a.moved_to = a.first;
        any = true;
      }
    }
    if (any) find_readers();
  }

  // A transient product's recompute reads its children: they must live at least as long. Products
  // of later layers first, so a chain of products passes its lifetime all the way down. Except an
  // input read by one run of a split layer only: it keeps its short life, and its family's region
  // (allocate) keeps rows for it until the products' last reader, where the backward recomputes the
  // runs one after another, each run's inputs right before it.
  void extend_lifetimes() {
    std::vector<int64_t> order(atoms_.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int64_t>(i);
    std::sort(order.begin(), order.end(), [&](int64_t x, int64_t y) { return atoms_[x].layer > atoms_[y].layer; });
    for (int64_t ai : order) {
      const Atom& a = atoms_[ai];
      if (a.input) continue;
      const ProductPartition& pp = p_.layers[a.layer].products[a.part];
      const int64_t fam = family_of_layer_[a.layer];
      for (int64_t r = a.begin; r < a.end; ++r) {
        for (int64_t k = 0; k < pp.fanin; ++k) {
          const int64_t c = pp.child_rows[(r - pp.row_start) * pp.fanin + k];
          const int64_t ca = c >= 0 && c < p_.num_rows ? atom_of_row_[c] : -1;
          if (ca < 0) continue;
          Atom& child = atoms_[ca];
          if (!a.transient) {
            // A kept product is never recomputed: its children serve it in its own layer only (the
            // backward adds its flows into theirs there, and their own readers span it).
            child.last = std::max(child.last, a.layer);
          } else if (fam >= 0 && child.input && child.first == a.layer && child.last == a.layer) {
            child.family = fam;
            family_last_[fam] = std::max(family_last_[fam], a.last);
          } else {
            child.last = std::max(child.last, a.last);
          }
        }
      }
    }
    for (Atom& a : atoms_)
      if (!a.transient || a.last != a.first) a.family = -1;  // persistent, or read outside its run too
  }

  // New layer sequence: before old layer L, an input layer holding the transient inputs first read
  // by L (or by the products moved before L), then a product layer holding the products moved before
  // L; then L itself. Bundles get their new layer, part index and lifetime.
  std::vector<int64_t> new_index_;  // old layer -> new index
  std::vector<int64_t> deferred_index_;  // old layer -> new index of the input layer before it, or -1
  std::vector<int64_t> moved_index_;  // old layer -> new index of the product layer before it, or -1
  std::vector<std::vector<int64_t>> deferred_;  // old layer L -> bundles of inputs placed before L
  std::vector<std::vector<int64_t>> moved_;     // old layer L -> bundles of products placed before L
  int64_t num_layers_ = 0;

  void make_bundles() {
    const int64_t L = static_cast<int64_t>(p_.layers.size());
    std::map<std::tuple<int64_t, int64_t, int64_t, int64_t>, int64_t> key_to_bundle;
    bundle_of_atom_.assign(atoms_.size(), -1);
    for (size_t ai = 0; ai < atoms_.size(); ++ai) {
      const Atom& a = atoms_[ai];
      if (!a.transient) continue;
      // Inputs: one bundle per (first reader, last reader, old group); products: (layer, part,
      // where it moved, last).
      const auto key = a.input ? std::make_tuple(int64_t(-1), a.first, a.last, a.part)
                               : std::make_tuple(a.layer, a.part, a.moved_to, a.last);
      auto [it, fresh] = key_to_bundle.emplace(key, static_cast<int64_t>(bundles_.size()));
      if (fresh) bundles_.emplace_back();
      bundles_[it->second].atoms.push_back(static_cast<int64_t>(ai));
      bundles_[it->second].family = a.family;  // one key, one family (inputs of one run and group)
      bundle_of_atom_[ai] = it->second;
    }
    deferred_.assign(L, {});
    moved_.assign(L, {});
    for (size_t bi = 0; bi < bundles_.size(); ++bi) {
      const Atom& a = atoms_[bundles_[bi].atoms[0]];
      auto& list = a.input ? deferred_[a.first] : moved_[std::max<int64_t>(a.moved_to, 0)];
      if (a.input || a.moved_to >= 0) {
        bundles_[bi].new_part = static_cast<int64_t>(list.size());
        list.push_back(static_cast<int64_t>(bi));
      }
    }
    // New indices: [inputs L reads first] [products moved before L], then L unless it is an input
    // or product layer left with nothing.
    new_index_.assign(L, -1);
    deferred_index_.assign(L, -1);
    moved_index_.assign(L, -1);
    // Per old layer: its kept product partitions and kept input atoms, then what stays in it.
    std::vector<int64_t> kept_parts(L, 0), kept_inputs(L, 0);
    for (const Atom& a : atoms_)
      if (!a.transient && a.input) ++kept_inputs[a.layer];
    for (int64_t li = 0; li < L; ++li) kept_parts[li] = static_cast<int64_t>(kept_products(li).size());
    std::vector<int64_t> parts = kept_parts;
    for (const Bundle& b : bundles_) {
      const Atom& a = atoms_[b.atoms[0]];
      if (!a.input && a.moved_to < 0) ++parts[a.layer];
    }
    int64_t n = 0;
    for (int64_t li = 0; li < L; ++li) {
      if (!deferred_[li].empty()) deferred_index_[li] = n++;
      if (!moved_[li].empty()) moved_index_[li] = n++;
      const LayerKind kind = p_.layers[li].kind;
      if (kind == LayerKind::Sum || (kind == LayerKind::Input ? kept_inputs[li] > 0 : parts[li] > 0))
        new_index_[li] = n++;
    }
    num_layers_ = n;
    std::vector<int64_t> next_part = kept_parts;
    for (Bundle& b : bundles_) {
      const Atom& a = atoms_[b.atoms[0]];
      if (a.input) {
        b.new_layer = deferred_index_[a.first];
      } else if (a.moved_to >= 0) {
        b.new_layer = moved_index_[a.moved_to];
      } else {
        b.new_layer = new_index_[a.layer];
        b.new_part = next_part[a.layer]++;  // after the layer's kept partitions
      }
      b.start = b.new_layer;
      b.last = new_index_[a.last];
    }
  }

  // Persistent atoms of old layer li, inputs or products, in row order.
  std::vector<int64_t> kept(int64_t li, bool input) const {
    std::vector<int64_t> out;
    for (size_t ai = 0; ai < atoms_.size(); ++ai)
      if (atoms_[ai].layer == li && atoms_[ai].input == input && !atoms_[ai].transient)
        out.push_back(static_cast<int64_t>(ai));
    return out;
  }

  // Persistent product atoms of old layer li as partitions: runs of atoms of one source partition
  // whose rows follow each other (fixed rows keep their order, so such a run stays contiguous). One
  // partition per atom would be one launch per IR vector (RAT-SPN's first layer: over a hundred).
  std::vector<std::vector<int64_t>> kept_products(int64_t li) const {
    std::vector<std::vector<int64_t>> out;
    for (int64_t ai : kept(li, false)) {
      const Atom& a = atoms_[ai];
      if (!out.empty()) {
        const Atom& prev = atoms_[out.back().back()];
        if (prev.part == a.part && prev.end == a.begin) {
          out.back().push_back(ai);
          continue;
        }
      }
      out.push_back({ai});
    }
    return out;
  }

  // Sum vectors that may move: their block rows, written by layer `layer` (old index). A vector
  // holding a root row or a padding row stays fixed.
  struct SumSpan {
    int64_t begin = 0, end = 0, layer = 0;
    Bundle slot;  // its interval and offset in the shared region
  };
  std::vector<SumSpan> sums_;
  std::vector<int64_t> span_of_row_;  // -1: not in a movable sum vector

  void find_sum_spans() {
    std::vector<int64_t> starts;
    for (int64_t r : p_.vector_rows)
      if (r >= 0) starts.push_back(r);
    std::sort(starts.begin(), starts.end());
    std::map<int64_t, SumSpan> by_start;  // vector start -> its blocks' rows
    for (size_t li = 0; li < p_.layers.size(); ++li)
      for (const SumPartition& sp : p_.layers[li].sums)
        for (int64_t r0 : sp.out_rows) {
          auto it = std::upper_bound(starts.begin(), starts.end(), r0);
          if (it == starts.begin()) continue;
          auto [s, fresh] = by_start.emplace(*std::prev(it), SumSpan());
          SumSpan& span = s->second;
          if (fresh) {
            span.begin = r0;
            span.end = r0 + sp.block_size;
            span.layer = static_cast<int64_t>(li);
          }
          span.begin = std::min(span.begin, r0);
          span.end = std::max(span.end, r0 + sp.block_size);
          if (span.layer != static_cast<int64_t>(li)) span.layer = -1;  // written by two layers: stays
        }
    std::vector<uint8_t> pinned(p_.num_rows + 1, 0);
    for (const auto& [first, n] : p_.pad_ranges)
      for (int64_t r = std::max<int64_t>(first, 0); r < std::min(first + n, p_.num_rows); ++r) pinned[r] = 1;
    for (int64_t r = p_.root_row; r < p_.root_row + p_.num_root_nodes; ++r) pinned[r] = 1;
    // Candidates, then those some child block reads only partly (a reader's child block reaching
    // into padding past the vector's own blocks) are dropped: a block must move in one piece.
    std::vector<SumSpan> cand;
    std::vector<int64_t> cand_of_row(p_.num_rows, -1);
    for (auto& [start, span] : by_start) {
      bool ok = span.layer >= 0 && new_index_[span.layer] >= 0 && span.begin >= start;
      for (int64_t r = span.begin; r < span.end && ok; ++r) ok = !pinned[r] && atom_of_row_[r] < 0 && cand_of_row[r] < 0;
      if (!ok) continue;
      for (int64_t r = span.begin; r < span.end; ++r) cand_of_row[r] = static_cast<int64_t>(cand.size());
      cand.push_back(span);
    }
    std::vector<uint8_t> dropped(cand.size(), 0);
    for (const Layer& l : p_.layers)
      for (const SumPartition& sp : l.sums)
        for (int64_t r : sp.child_rows) {
          if (r < 0) continue;
          const int64_t e = std::min(r + sp.child_block_size, p_.num_rows);
          for (int64_t k = r; k < e; ++k)
            if (cand_of_row[k] != cand_of_row[r]) {
              if (cand_of_row[k] >= 0) dropped[cand_of_row[k]] = 1;
              if (cand_of_row[r] >= 0) dropped[cand_of_row[r]] = 1;
            }
        }
    span_of_row_.assign(p_.num_rows, -1);
    for (size_t i = 0; i < cand.size(); ++i) {
      if (dropped[i]) continue;
      SumSpan span = cand[i];
      span.slot.start = new_index_[span.layer];
      span.slot.last = num_layers_ - 1;  // its values are read until its own backward
      span.slot.size = span.end - span.begin;
      for (int64_t r = span.begin; r < span.end; ++r) span_of_row_[r] = static_cast<int64_t>(sums_.size());
      sums_.push_back(span);
    }
  }

  // Shared-region offsets: bundles and sum vectors in order of their first layer, first fit over the
  // free gaps.
  void allocate() {
    for (Bundle& b : bundles_)
      for (int64_t ai : b.atoms) b.size += atoms_[ai].end - atoms_[ai].begin;
    // A family's bundles share one region: each run's bundles back to back from its start, as large
    // as the largest run, live from the first run to the products' last reader.
    std::map<int64_t, Bundle> regions;
    std::map<std::pair<int64_t, int64_t>, int64_t> run_fill;  // (family, run's layer) -> rows so far
    for (Bundle& b : bundles_) {
      if (b.family < 0) continue;
      auto [it, fresh] = regions.emplace(b.family, Bundle());
      Bundle& reg = it->second;
      if (fresh) {
        reg.start = b.start;
        reg.last = new_index_[family_last_.at(b.family)];
      }
      reg.start = std::min(reg.start, b.start);
      int64_t& fill = run_fill[{b.family, b.start}];
      b.offset = fill;  // inside the region, for now
      fill += b.size;
      reg.size = std::max(reg.size, fill);
      b.last = reg.last;
    }
    std::vector<Bundle*> slots;
    for (Bundle& b : bundles_)
      if (b.family < 0) slots.push_back(&b);
    for (auto& [fam, reg] : regions) slots.push_back(&reg);
    for (SumSpan& sp : sums_) slots.push_back(&sp.slot);
    std::stable_sort(slots.begin(), slots.end(), [](const Bundle* x, const Bundle* y) { return x->start < y->start; });
    std::vector<const Bundle*> live;  // slots holding rows
    for (Bundle* b : slots) {
      live.erase(std::remove_if(live.begin(), live.end(), [&](const Bundle* o) { return o->last < b->start; }),
                 live.end());
      std::vector<std::pair<int64_t, int64_t>> used;
      for (const Bundle* o : live) used.push_back({o->offset, o->offset + o->size});
      std::sort(used.begin(), used.end());
      int64_t at = 0;
      for (const auto& [u0, u1] : used) {
        if (u0 - at >= b->size) break;
        at = std::max(at, u1);
      }
      b->offset = at;
      scratch_rows_ = std::max(scratch_rows_, at + b->size);
      live.push_back(b);
    }
    for (Bundle& b : bundles_)
      if (b.family >= 0) b.offset += regions.at(b.family).offset;
  }

  Plan rewrite() {
    // Row map: fixed rows packed first, in order (kOneRow and kZeroRow stay 0 and 1), then the
    // shared region: each bundle's atoms back to back, each sum vector in one piece.
    std::vector<int64_t> map(p_.num_rows, -1);
    int64_t scratch = 0;
    for (int64_t r = 0; r < p_.num_rows; ++r)
      if ((atom_of_row_[r] < 0 || !atoms_[atom_of_row_[r]].transient) && span_of_row_[r] < 0) map[r] = scratch++;
    for (const Bundle& b : bundles_) {
      int64_t at = scratch + b.offset;
      for (int64_t ai : b.atoms)
        for (int64_t k = atoms_[ai].begin; k < atoms_[ai].end; ++k) map[k] = at++;
    }
    for (const SumSpan& sp : sums_)
      for (int64_t k = sp.begin; k < sp.end; ++k) map[k] = scratch + sp.slot.offset + (k - sp.begin);
    auto row = [&](int64_t r) { return r < 0 ? r : map[r]; };

    Plan q;
    q.num_vars = p_.num_vars;
    q.num_rows = scratch + scratch_rows_;
    for (const auto& [first, n] : p_.pad_ranges) {
      const int64_t a = atom_of_row_[first];
      if (a >= 0 && atoms_[a].transient) continue;  // product padding: the product writes it
      q.pad_ranges.push_back({map[first], n});
    }
    q.var_limit = p_.var_limit;
    q.root_row = row(p_.root_row);
    q.num_root_nodes = p_.num_root_nodes;
    for (int64_t r : p_.vector_rows) q.vector_rows.push_back(row(r));
    q.params = p_.params;
    q.param_map = p_.param_map;
    q.param_group_sizes = p_.param_group_sizes;
    q.groups = p_.groups;
    q.param_valid = p_.param_valid;
    q.stats = p_.stats;

    const int64_t L = static_cast<int64_t>(p_.layers.size());
    for (int64_t li = 0; li < L; ++li) {
      if (!deferred_[li].empty()) {
        Layer in;
        in.kind = LayerKind::Input;
        for (int64_t bi : deferred_[li]) in.inputs.push_back(input_group(bundles_[bi].atoms, map));
        q.layers.push_back(std::move(in));
      }
      if (!moved_[li].empty()) {
        Layer pl;
        pl.kind = LayerKind::Product;
        for (int64_t bi : moved_[li]) pl.products.push_back(product_part(bundles_[bi].atoms, map));
        q.layers.push_back(std::move(pl));
      }
      if (new_index_[li] < 0) continue;
      const Layer& l = p_.layers[li];
      Layer out;
      out.kind = l.kind;
      switch (l.kind) {
        case LayerKind::Input:
          out.inputs = input_groups(kept(li, true), map);
          break;
        case LayerKind::Product:
          for (const std::vector<int64_t>& run : kept_products(li)) out.products.push_back(product_part(run, map));
          for (const Bundle& b : bundles_)
            if (!atoms_[b.atoms[0]].input && atoms_[b.atoms[0]].layer == li && atoms_[b.atoms[0]].moved_to < 0)
              out.products.push_back(product_part(b.atoms, map));
          break;
        case LayerKind::Sum:
          out.sums = l.sums;
          for (SumPartition& s : out.sums) {
            for (int64_t& r : s.out_rows) r = row(r);
            for (int64_t& r : s.child_rows) r = row(r);
          }
          break;
      }
      q.layers.push_back(std::move(out));
    }
    PCC_CHECK(static_cast<int64_t>(q.layers.size()) == num_layers_, "internal error: reuse_rows miscounted layers");
    // Recompute lists, children before parents (input layers and lower layers first).
    // A product no later layer reads is listed under its own layer: its flows must still start at
    // zero (its rows are shared), or its backward would pass another vector's flows on.
    // A family's inputs are also recomputed right before their run's backward: the run's products
    // add their flows into the shared rows, which the previous run's input backward left full.
    // A product recomputed before a later reader's backward needs its family inputs there too: the
    // family's region holds another run's inputs by then (the last run recomputed). The lists sort by
    // layer, and runs alternate input and product layers, so each run's inputs come right before its
    // products and after the earlier runs' products.
    for (const Bundle& b : bundles_) {
      q.layers[b.last].recompute.push_back({b.new_layer, b.new_part});
      if (b.family >= 0) q.layers[new_index_[atoms_[b.atoms[0]].first]].recompute.push_back({b.new_layer, b.new_part});
      if (atoms_[b.atoms[0]].input) continue;
      for (int64_t ai : b.atoms) {
        const Atom& a = atoms_[ai];
        const ProductPartition& src = p_.layers[a.layer].products[a.part];
        for (int64_t r = a.begin; r < a.end; ++r)
          for (int64_t k = 0; k < src.fanin; ++k) {
            const int64_t c = src.child_rows[(r - src.row_start) * src.fanin + k];
            const int64_t ca = c < 0 ? -1 : atom_of_row_[c];
            if (ca < 0 || atoms_[ca].family < 0 || bundle_of_atom_[ca] < 0) continue;
            const Bundle& fb = bundles_[bundle_of_atom_[ca]];
            q.layers[b.last].recompute.push_back({fb.new_layer, fb.new_part});
          }
      }
    }
    for (Layer& l : q.layers) {
      std::sort(l.recompute.begin(), l.recompute.end());
      l.recompute.erase(std::unique(l.recompute.begin(), l.recompute.end()), l.recompute.end());
    }
    return q;
  }

  // Input atoms (in row order of the new layout) as groups: one per run of contiguous rows, dist and
  // cat_stride.
  std::vector<InputGroup> input_groups(const std::vector<int64_t>& atoms, const std::vector<int64_t>& map) const {
    std::vector<InputGroup> out;
    for (int64_t ai : atoms) {
      const Atom& a = atoms_[ai];
      const InputGroup& g = p_.layers[a.layer].inputs[a.part];
      const int64_t to = map[a.begin];
      if (out.empty() || !same_layout(out.back(), g) || out.back().row_start + out.back().num_nodes != to)
        out.push_back(empty_like(g, to));
      InputGroup& n = out.back();
      for (int64_t r = a.begin; r < a.end; ++r) {
        const int64_t i = r - g.row_start;
        n.var.push_back(g.var[i]);
        n.param_offset.push_back(g.param_offset[i]);
        n.num_cats.push_back(g.num_cats[i]);
      }
      n.num_nodes += a.end - a.begin;
    }
    return out;
  }

  // A bundle's atoms are back to back and of one group (one dist): one group, named by recompute lists.
  InputGroup input_group(const std::vector<int64_t>& atoms, const std::vector<int64_t>& map) const {
    std::vector<InputGroup> gs = input_groups(atoms, map);
    PCC_CHECK(gs.size() == 1, "internal error: reuse_rows split an input bundle");
    return gs[0];
  }

  // Product atoms of one source partition, back to back in the new layout, as one partition.
  ProductPartition product_part(const std::vector<int64_t>& atoms, const std::vector<int64_t>& map) const {
    const Atom& a0 = atoms_[atoms[0]];
    const ProductPartition& src = p_.layers[a0.layer].products[a0.part];
    ProductPartition out;
    out.fanin = src.fanin;
    out.row_start = map[a0.begin];
    for (int64_t ai : atoms) {
      const Atom& a = atoms_[ai];
      PCC_CHECK(map[a.begin] == out.row_start + out.num_nodes, "internal error: reuse_rows split a product bundle");
      for (int64_t r = a.begin; r < a.end; ++r)
        for (int64_t k = 0; k < out.fanin; ++k) {
          const int64_t c = src.child_rows[(r - src.row_start) * src.fanin + k];
          out.child_rows.push_back(c < 0 ? c : map[c]);
        }
      out.num_nodes += a.end - a.begin;
    }
    return out;
  }
};

// Splits product layers that read more than max_rows input rows into consecutive product
// layers, each reading about that many; a run ends only at a vector boundary. An input vector that an
// earlier run of the same layer read already gets a copy of its own (new rows in an input group of
// copies in layer 0, the run's child rows redirected): inputs are cheap to compute twice, and without copies an
// input shared by far-apart runs (RAT-SPN's repetitions share all inputs) would keep its rows for the
// whole layer. Layers hold no recompute lists yet, and sum partitions name rows only, so shifting
// layer indices changes nothing.
Plan chunk_input_readers(const Plan& p, int64_t max_rows, std::vector<int64_t>& family,
                         std::vector<int64_t>& cuts, std::vector<uint8_t>& heavy) {
  // Input rows: their group and vector (first row, end); vectors followed by -inf padding never
  // move (reuse_rows keeps them), so they get no copies.
  struct Vec {
    int64_t layer = 0, group = 0, begin = 0, end = 0;
  };
  std::vector<int64_t> vec_of_row(p.num_rows, -1);
  std::vector<Vec> vecs;
  std::vector<uint8_t> starts(p.num_rows + 1, 0), pad_first(p.num_rows + 1, 0);
  for (int64_t r : p.vector_rows)
    if (r >= 0) starts[r] = 1;
  for (const auto& [first, n] : p.pad_ranges)
    if (first >= 0 && first <= p.num_rows) pad_first[first] = 1;
  for (size_t li = 0; li < p.layers.size(); ++li)
    for (size_t gi = 0; gi < p.layers[li].inputs.size(); ++gi) {
      const InputGroup& g = p.layers[li].inputs[gi];
      for (int64_t r = g.row_start; r < g.row_start + g.num_nodes; ++r) {
        if (r == g.row_start || starts[r])
          vecs.push_back({static_cast<int64_t>(li), static_cast<int64_t>(gi), r, r});
        vecs.back().end = r + 1;
        vec_of_row[r] = static_cast<int64_t>(vecs.size()) - 1;
      }
    }
  auto reads_input = [&](int64_t r) { return r >= 0 && r < p.num_rows && vec_of_row[r] >= 0; };
  Plan q = p;
  q.layers.clear();
  std::vector<InputGroup> copies;  // appended to the first input layer
  for (const Layer& l : p.layers) {
    int64_t total = 0;
    if (l.kind == LayerKind::Product)
      for (const ProductPartition& pp : l.products)
        total += std::count_if(pp.child_rows.begin(), pp.child_rows.end(), reads_input);
    if (total <= max_rows) {
      q.layers.push_back(l);
      family.push_back(-1);
      continue;
    }
    const int64_t fam = static_cast<int64_t>(q.layers.size());  // named by its first run
    // The runs: whole vectors of the layer's partitions, in order, about max_rows input reads each.
    struct Piece {
      int64_t part, i, j, run;
    };
    std::vector<Piece> pieces;
    int64_t run = 0, in_run = 0;
    for (size_t pi = 0; pi < l.products.size(); ++pi) {
      const ProductPartition& pp = l.products[pi];
      for (int64_t i = 0, j; i < pp.num_nodes; i = j) {
        j = i + 1;  // the vector [i, j)
        while (j < pp.num_nodes && !starts[pp.row_start + j]) ++j;
        const int64_t reads = std::count_if(pp.child_rows.begin() + i * pp.fanin,
                                            pp.child_rows.begin() + j * pp.fanin, reads_input);
        if (in_run > 0 && in_run + reads > max_rows) {
          ++run;
          in_run = 0;
        }
        pieces.push_back({static_cast<int64_t>(pi), i, j, run});
        in_run += reads;
      }
    }
    // Which input vectors each run must copy (an earlier run read them); where the copies would add
    // more than half the rows the layer reads (RAT-SPN's repetitions all read every input), the
    // layer stays whole: computing its inputs several times over costs more time than rows save.
    std::vector<int64_t> owner(vecs.size(), -1);  // the run that reads the original
    std::vector<int64_t> copied(vecs.size(), -1);  // the last run that copied it
    int64_t distinct = 0, copy_rows = 0;
    for (const Piece& pc : pieces) {
      const ProductPartition& pp = l.products[pc.part];
      for (int64_t e = pc.i * pp.fanin; e < pc.j * pp.fanin; ++e) {
        const int64_t r = pp.child_rows[e];
        if (!reads_input(r)) continue;
        const int64_t v = vec_of_row[r], n = vecs[v].end - vecs[v].begin;
        if (owner[v] < 0) {
          owner[v] = pc.run;
          distinct += n;
        } else if (owner[v] != pc.run && !pad_first[vecs[v].end] && copied[v] != pc.run) {
          copied[v] = pc.run;
          copy_rows += n;
        }
      }
    }
    if (run == 0 || 2 * copy_rows > distinct) {
      q.layers.push_back(l);
      family.push_back(-1);
      heavy.resize(q.layers.size(), 0);
      heavy.back() = 1;
      continue;
    }
    std::map<int64_t, int64_t> copy_of;  // the current run's copies: vector -> first row
    int64_t cur = 0;
    auto redirect = [&](int64_t r) {
      if (!reads_input(r)) return r;
      const int64_t v = vec_of_row[r];
      if (owner[v] == cur || pad_first[vecs[v].end]) return r;
      auto [it, fresh] = copy_of.emplace(v, q.num_rows);
      if (fresh) {
        // Copies of one layout made one after another form one group (their rows follow each
        // other), so that reuse_rows bundles a run's copies into one launch, not one per vector.
        const InputGroup& src = p.layers[vecs[v].layer].inputs[vecs[v].group];
        if (copies.empty() || !same_layout(copies.back(), src)) copies.push_back(empty_like(src, q.num_rows));
        InputGroup& c = copies.back();
        cuts.push_back(q.num_rows);
        const int64_t o = vecs[v].begin - src.row_start, n = vecs[v].end - vecs[v].begin;
        c.var.insert(c.var.end(), src.var.begin() + o, src.var.begin() + o + n);
        c.param_offset.insert(c.param_offset.end(), src.param_offset.begin() + o, src.param_offset.begin() + o + n);
        c.num_cats.insert(c.num_cats.end(), src.num_cats.begin() + o, src.num_cats.begin() + o + n);
        c.num_nodes += n;
        q.num_rows += n;
      }
      return it->second + (r - vecs[v].begin);
    };
    Layer chunk;
    chunk.kind = LayerKind::Product;
    for (const Piece& pc : pieces) {
      if (pc.run != cur) {
        q.layers.push_back(std::move(chunk));
        family.push_back(fam);
        chunk = Layer();
        chunk.kind = LayerKind::Product;
        cur = pc.run;
        copy_of.clear();
      }
      const ProductPartition& pp = l.products[pc.part];
      // Extend this partition's piece in the run, or start one.
      if (chunk.products.empty() || chunk.products.back().row_start + chunk.products.back().num_nodes !=
                                        pp.row_start + pc.i || chunk.products.back().fanin != pp.fanin) {
        ProductPartition piece;
        piece.fanin = pp.fanin;
        piece.row_start = pp.row_start + pc.i;
        chunk.products.push_back(std::move(piece));
      }
      ProductPartition& piece = chunk.products.back();
      for (int64_t e = pc.i * pp.fanin; e < pc.j * pp.fanin; ++e) piece.child_rows.push_back(redirect(pp.child_rows[e]));
      piece.num_nodes += pc.j - pc.i;
    }
    q.layers.push_back(std::move(chunk));
    family.push_back(fam);
  }
  if (!copies.empty()) {
    auto first_input = std::find_if(q.layers.begin(), q.layers.end(),
                                     [](const Layer& l) { return l.kind == LayerKind::Input; });
    PCC_CHECK(first_input != q.layers.end(), "internal error: input rows without an input layer");
    for (InputGroup& c : copies) first_input->inputs.push_back(std::move(c));
  }
  return q;
}

}  // namespace

Plan reuse_rows(const Plan& p, int64_t chunk_input_rows) {
  PCC_CHECK(chunk_input_rows >= 1, "compile: chunk_input_rows must be >= 1, got ", chunk_input_rows);
  std::vector<int64_t> family, cuts;
  std::vector<uint8_t> heavy;
  const Plan chunked = chunk_input_readers(p, chunk_input_rows, family, cuts, heavy);
  heavy.resize(chunked.layers.size(), 0);
  return Reuse(chunked, std::move(family), std::move(cuts), std::move(heavy)).run();
}

}  // namespace pcc
