// Pass 4, plan_memory: give every vector its rows in the value buffer and every parameter group its
// place in the parameter buffer, and emit the final Plan with resolved row and weight offsets.
// Rows are laid out in execution order, each vector rounded up to its alignment (the largest block
// that reads or writes it) with the overhang recorded as -inf padding. Vectors of one product
// partition are consecutive, so a partition is one contiguous run of rows.
#include <algorithm>

#include "core/passes.h"
#include "pcc/error.h"

namespace pcc {
namespace {

int64_t round_up(int64_t x, int64_t a) { return (x + a - 1) / a * a; }

struct Layout {
  const Circuit& c;
  const Partitioning& p;
  Plan& plan;
  std::vector<int64_t> group_base;  // parameter buffer offset of each group, -1 until placed
  int64_t category_major_cats;      // CompileOptions::category_major_cats

  int64_t place_rows(int64_t v) {
    const int64_t n = c.nodes[v].num_nodes, padded = round_up(n, p.align[v]);
    const int64_t row = plan.num_rows;
    plan.vector_rows[v] = row;
    if (padded > n) plan.pad_ranges.push_back({row + n, padded - n});
    plan.num_rows += padded;
    return padded;
  }

  bool category_major(const NodeVector& v) const {
    return v.dist == Dist::Categorical && v.num_nodes > 1 && category_major_cats >= 0 &&
           v.num_cats > category_major_cats;
  }

  // Input parameters in the plan's layout (plan.h): Categorical K probabilities (node- or
  // category-major), Bernoulli (1 - p, p), Gaussian (mean, std, spare).
  int64_t place_input_params(const NodeVector& v) {
    if (group_base[v.params] >= 0) return group_base[v.params];
    const std::vector<float>& w = c.params[v.params];
    const int64_t base = static_cast<int64_t>(plan.params.size()), n = v.num_nodes;
    const int64_t width = param_width(v.dist, v.num_cats);
    group_base[v.params] = base;
    plan.params.resize(base + n * width, 0.0f);
    GroupLayout& gl = plan.groups[v.params];
    gl.kind = NodeKind::Input;
    gl.dist = v.dist;
    gl.num_nodes = n;
    gl.base = base;
    gl.width = width;
    switch (v.dist) {
      case Dist::Categorical:
        if (category_major(v)) {
          gl.cat_stride = n;
          for (int64_t i = 0; i < n; ++i) plan.param_map.push_back({v.params, i * width, base + i, width, n});
        } else {
          plan.param_map.push_back({v.params, 0, base, n * width, 1});
        }
        break;
      case Dist::Bernoulli:
        plan.param_map.push_back({v.params, 0, base + 1, n, 2});
        break;
      case Dist::Gaussian:
        plan.param_map.push_back({v.params, 0, base, n, 3});
        plan.param_map.push_back({v.params, n, base + 1, n, 3});
        break;
    }
    write_group(plan, plan.params.data(), v.params, w);
    return base;
  }

  int64_t place_sum_params(const NodeVector& v) {
    if (group_base[v.params] >= 0) return group_base[v.params];
    const BlockPattern& bp = p.patterns[p.pattern_of_group[v.params]];
    const int64_t base = static_cast<int64_t>(plan.params.size());
    group_base[v.params] = base;
    plan.params.insert(plan.params.end(), bp.weights.begin(), bp.weights.end());
    for (ParamRun r : bp.runs) {
      r.plan_offset += base;
      plan.param_map.push_back(r);
    }
    GroupLayout& gl = plan.groups[v.params];
    gl.kind = NodeKind::Sum;
    gl.num_nodes = v.num_nodes;
    gl.base = base;
    gl.block_size = bp.block_size;
    gl.child_block_size = bp.child_block_size;
    gl.block_start = bp.block_start;
    for (int64_t wb : bp.weight_block) gl.block_offsets.push_back(base + wb * bp.block_size * bp.child_block_size);
    return base;
  }

  void inputs(const Partitioning::Layer& layer, Layer& out) {
    for (const auto& part : layer.inputs) {
      for (int64_t v : part.vectors) {
        const NodeVector& nv = c.nodes[v];
        const int64_t row = plan.num_rows;
        place_rows(v);
        place_input_params(nv);
        const GroupLayout& gl = plan.groups[nv.params];
        // Extend the previous group when this vector follows it with no padding in between and
        // with the same parameter layout.
        if (out.inputs.empty() || out.inputs.back().dist != part.dist ||
            out.inputs.back().row_start + out.inputs.back().num_nodes != row ||
            out.inputs.back().cat_stride != gl.cat_stride) {
          InputGroup g;
          g.dist = part.dist;
          g.row_start = row;
          g.cat_stride = gl.cat_stride;
          out.inputs.push_back(std::move(g));
        }
        InputGroup& g = out.inputs.back();
        for (int64_t i = 0; i < nv.num_nodes; ++i) {
          g.var.push_back(nv.var);
          g.param_offset.push_back(node_slot(gl, i));
          g.num_cats.push_back(nv.dist == Dist::Categorical ? nv.num_cats : nv.dist == Dist::Bernoulli ? 2 : 0);
        }
        g.num_nodes += nv.num_nodes;
      }
    }
  }

  void products(const Partitioning::Layer& layer, Layer& out) {
    for (const auto& part : layer.products) {
      ProductPartition pp;
      pp.row_start = plan.num_rows;
      pp.fanin = part.fanin;
      for (int64_t v : part.vectors) {
        const NodeVector& nv = c.nodes[v];
        const int64_t k = static_cast<int64_t>(nv.children.size());
        const int64_t padded = place_rows(v);
        for (int64_t i = 0; i < padded; ++i) {
          for (int64_t j = 0; j < part.fanin; ++j) {
            int64_t row = Plan::kOneRow;
            if (i >= nv.num_nodes) {
              row = j == 0 ? Plan::kZeroRow : Plan::kOneRow;  // pad node: -inf
            } else if (j < k) {
              const int64_t local = nv.prod_edges.empty() ? i : nv.prod_edges[i * k + j];
              row = plan.vector_rows[nv.children[j]] + local;
            }
            pp.child_rows.push_back(row);
          }
        }
        pp.num_nodes += padded;
      }
      out.products.push_back(std::move(pp));
    }
  }

  void sums(const Partitioning::Layer& layer, Layer& out) {
    for (const auto& part : layer.sums) {
      for (int64_t v : part.vector) {
        if (plan.vector_rows[v] < 0) place_rows(v);
      }
    }
    for (const auto& part : layer.sums) {
      SumPartition sp;
      sp.block_size = part.block_size;
      sp.child_block_size = part.child_block_size;
      sp.fanin = part.fanin;
      sp.num_blocks = static_cast<int64_t>(part.vector.size());
      const int64_t block_elems = sp.block_size * sp.child_block_size;
      for (int64_t i = 0; i < sp.num_blocks; ++i) {
        const NodeVector& nv = c.nodes[part.vector[i]];
        const BlockPattern& bp = p.patterns[p.pattern_of_group[nv.params]];
        const int64_t base = place_sum_params(nv), blk = part.block[i];
        sp.out_rows.push_back(plan.vector_rows[part.vector[i]] + blk * sp.block_size);
        const int64_t first = bp.block_start[blk], count = bp.block_start[blk + 1] - first;
        for (int64_t f = 0; f < sp.fanin; ++f) {
          if (f < count) {
            const int64_t e = first + f;
            sp.child_rows.push_back(plan.vector_rows[nv.children[bp.child[e]]] + bp.child_local[e]);
            sp.weight_offsets.push_back(base + bp.weight_block[e] * block_elems);
          } else {
            sp.child_rows.push_back(-1);
            sp.weight_offsets.push_back(-1);
          }
        }
      }
      std::vector<int64_t> used;
      for (int64_t w : sp.weight_offsets) {
        if (w >= 0) used.push_back(w);
      }
      std::sort(used.begin(), used.end());
      sp.disjoint_weights = std::adjacent_find(used.begin(), used.end()) == used.end() ? 1 : 0;
      out.sums.push_back(std::move(sp));
    }
  }
};

// Real parameter slots: those an IR element maps to, plus the Bernoulli complements.
void fill_param_valid(Plan& plan) {
  plan.param_valid.assign(plan.params.size(), 0);
  for (const ParamRun& r : plan.param_map) {
    for (int64_t k = 0; k < r.length; ++k) plan.param_valid[r.plan_offset + k * r.plan_stride] = 1;
  }
  for (const GroupLayout& g : plan.groups) {
    if (g.kind == NodeKind::Input && g.dist == Dist::Bernoulli) {
      for (int64_t i = 0; i < g.num_nodes; ++i) plan.param_valid[g.base + 2 * i] = 1;
    }
  }
}

void fill_var_limits(Plan& plan) {
  plan.var_limit.assign(plan.num_vars, -1);
  for (const Layer& layer : plan.layers) {
    for (const InputGroup& g : layer.inputs) {
      for (int64_t i = 0; i < g.num_nodes; ++i) {
        int64_t& lim = plan.var_limit[g.var[i]];
        if (g.dist == Dist::Gaussian) {
          if (lim < 0) lim = 0;
        } else {
          lim = lim <= 0 ? g.num_cats[i] : std::min(lim, g.num_cats[i]);
        }
      }
    }
  }
}

}  // namespace

Plan plan_memory(const Circuit& c, const Partitioning& p, int64_t category_major_cats) {
  Plan plan;
  plan.num_vars = num_vars(c);
  plan.stats = circuit_stats(c);
  plan.vector_rows.assign(c.nodes.size(), -1);
  plan.num_rows = 2;  // kOneRow and kZeroRow
  plan.pad_ranges.push_back({Plan::kZeroRow, 1});
  for (const auto& g : c.params) plan.param_group_sizes.push_back(static_cast<int64_t>(g.size()));
  plan.groups.resize(c.params.size());
  Layout lay{c, p, plan, std::vector<int64_t>(c.params.size(), -1), category_major_cats};
  for (const auto& layer : p.layers) {
    Layer out;
    out.kind = layer.kind;
    switch (layer.kind) {
      case LayerKind::Input: lay.inputs(layer, out); break;
      case LayerKind::Product: lay.products(layer, out); break;
      case LayerKind::Sum: lay.sums(layer, out); break;
    }
    plan.layers.push_back(std::move(out));
  }
  PCC_CHECK(plan.vector_rows[c.root] >= 0, "internal error: the root vector got no rows");
  plan.root_row = plan.vector_rows[c.root];
  plan.num_root_nodes = c.nodes[c.root].num_nodes;
  fill_var_limits(plan);
  fill_param_valid(plan);
  return plan;
}

}  // namespace pcc
