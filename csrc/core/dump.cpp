// Text dumps of the IR after each compiler pass: what `pcc-compile --dump-after=PASS` prints and what
// the golden tests compare. Stable, line-oriented, and complete for small circuits.
#include <sstream>

#include "core/passes.h"

namespace pcc {
namespace {

template <class T>
void list(std::ostream& s, const std::vector<T>& v) {
  s << "[";
  for (size_t i = 0; i < v.size(); ++i) s << (i ? " " : "") << v[i];
  s << "]";
}

const char* kind_name(LayerKind k) {
  switch (k) {
    case LayerKind::Input: return "input";
    case LayerKind::Product: return "product";
    case LayerKind::Sum: return "sum";
  }
  return "?";
}

}  // namespace

std::string dump_circuit(const Circuit& c) {
  std::ostringstream s;
  s << "circuit: " << c.nodes.size() << " vectors, " << c.params.size() << " parameter groups, root v"
    << c.root << ", " << num_vars(c) << " variables\n";
  for (size_t i = 0; i < c.nodes.size(); ++i) {
    const NodeVector& v = c.nodes[i];
    s << "v" << i << " " << to_string(v.kind) << " n=" << v.num_nodes;
    if (v.kind == NodeKind::Input) {
      s << " var=" << v.var << " " << to_string(v.dist);
      if (v.dist == Dist::Categorical) s << " cats=" << v.num_cats;
    } else {
      s << " children=";
      list(s, v.children);
    }
    if (v.kind == NodeKind::Product) s << (v.prod_edges.empty() ? " elementwise" : " edges");
    if (v.kind == NodeKind::Sum) {
      s << " " << to_string(v.form);
      if (v.form == SumForm::Block) s << " b=" << v.block_size;
      if (v.form != SumForm::Dense) s << " E=" << v.num_sum_edges();
    }
    if (v.params >= 0) s << " params=g" << v.params;
    s << "\n";
  }
  const Stats st = circuit_stats(c);
  s << "stats: input_nodes=" << st.input_nodes << " sum_nodes=" << st.sum_nodes
    << " product_nodes=" << st.product_nodes << " sum_edges=" << st.sum_edges
    << " product_edges=" << st.product_edges << " sum_params=" << st.sum_params
    << " input_params=" << st.input_params << "\n";
  return s.str();
}

std::string dump_layering(const Circuit& c, const Layering& l) {
  std::ostringstream s;
  s << "layers: " << l.layers.size() << "\n";
  for (size_t i = 0; i < l.layers.size(); ++i) {
    s << "layer " << i << " " << kind_name(l.layers[i].kind) << ":";
    for (int64_t v : l.layers[i].vectors) s << " v" << v << "(h" << l.height[v] << ")";
    s << "\n";
  }
  for (size_t v = 0; v < c.nodes.size(); ++v) {
    if (l.height[v] < 0) s << "unreachable: v" << v << "\n";
  }
  return s.str();
}

std::string dump_partitioning(const Circuit& c, const Partitioning& p) {
  std::ostringstream s;
  for (size_t i = 0; i < p.layers.size(); ++i) {
    const auto& layer = p.layers[i];
    s << "layer " << i << " " << kind_name(layer.kind) << "\n";
    for (const auto& part : layer.inputs) {
      s << "  inputs " << to_string(part.dist) << ": ";
      for (int64_t v : part.vectors) s << "v" << v << " ";
      s << "\n";
    }
    for (const auto& part : layer.products) {
      s << "  products fanin=" << part.fanin << ": ";
      for (int64_t v : part.vectors) s << "v" << v << "(" << c.nodes[v].children.size() << ") ";
      s << "\n";
    }
    for (const auto& part : layer.sums) {
      s << "  sums b=" << part.block_size << " cb=" << part.child_block_size << " fanin=" << part.fanin
        << " blocks=" << part.vector.size() << ":";
      for (size_t k = 0; k < part.vector.size(); ++k) {
        const BlockPattern& bp = p.patterns[p.pattern_of_group[c.nodes[part.vector[k]].params]];
        const int64_t blk = part.block[k];
        s << " v" << part.vector[k] << "." << blk << "(" << bp.block_start[blk + 1] - bp.block_start[blk] << ")";
      }
      s << "\n";
    }
  }
  s << "alignment:";
  for (size_t v = 0; v < p.align.size(); ++v) {
    if (p.align[v] > 1) s << " v" << v << "=" << p.align[v];
  }
  s << "\n";
  return s.str();
}

std::string dump_plan(const Plan& p) {
  std::ostringstream s;
  s << "plan: rows=" << p.num_rows << " vars=" << p.num_vars << " params=" << p.params.size()
    << " root=rows " << p.root_row << "+" << p.num_root_nodes << "\n";
  s << "vector rows: ";
  list(s, p.vector_rows);
  s << "\npad ranges:";
  for (auto [r, n] : p.pad_ranges) s << " " << r << "+" << n;
  if (p.x_rows >= 0) s << "\nx rows: " << p.x_rows << "+" << p.num_vars;
  s << "\nvar limits: ";
  list(s, p.var_limit);
  s << "\n";
  for (size_t i = 0; i < p.layers.size(); ++i) {
    const Layer& l = p.layers[i];
    s << "layer " << i << " " << kind_name(l.kind) << "\n";
    if (!l.recompute.empty()) {
      s << "  recompute:";
      for (auto [li, k] : l.recompute) s << " " << li << "." << k;
      s << "\n";
    }
    for (const InputGroup& g : l.inputs) {
      s << "  input " << to_string(g.dist) << " rows " << g.row_start << "+" << g.num_nodes << " var=";
      list(s, g.var);
      s << " param=";
      list(s, g.param_offset);
      if (g.cat_stride != 1) s << " cat_stride=" << g.cat_stride;
      if (g.fused) s << " fused";
      s << "\n";
    }
    for (const ProductPartition& pp : l.products) {
      s << "  product rows " << pp.row_start << "+" << pp.num_nodes << " fanin=" << pp.fanin << " children=";
      list(s, pp.child_rows);
      if (!pp.fused_inputs.empty()) {
        s << " fused_inputs:";
        for (auto [li, k] : pp.fused_inputs) s << " " << li << "." << k;
      }
      s << "\n";
    }
    for (const SumPartition& sp : l.sums) {
      s << "  sum b=" << sp.block_size << " cb=" << sp.child_block_size << " fanin=" << sp.fanin;
      if (sp.child_arity != 1) s << " arity=" << sp.child_arity;  // children= then lists arity starts per entry
      s << " blocks=" << sp.num_blocks << " out=";
      list(s, sp.out_rows);
      s << " children=";
      list(s, sp.child_rows);
      s << " weights=";
      list(s, sp.weight_offsets);
      s << "\n";
    }
  }
  s << "param map:";
  for (const ParamRun& r : p.param_map) {
    s << " g" << r.group << "[" << r.ir_offset << "+" << r.length << "]->" << r.plan_offset;
    if (r.plan_stride != 1) s << "/" << r.plan_stride;
  }
  s << "\n";
  return s.str();
}

}  // namespace pcc
