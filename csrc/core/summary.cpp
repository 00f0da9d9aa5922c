// The compile report: what a plan costs (work, padding, memory), printed by pcc-compile and
// returned by TensorCircuit.report().
#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>
#include <sstream>

#include "pcc/plan.h"

namespace pcc {

PlanSummary summarize(const Plan& p) {
  PlanSummary s;
  s.layers = static_cast<int64_t>(p.layers.size());
  int64_t rows_written = 0, rows_read = 0, input_nodes = 0;
  for (const Layer& l : p.layers) {
    for (const InputGroup& g : l.inputs) {
      s.input_groups += 1;
      s.fused_input_groups += g.fused;
      input_nodes += g.num_nodes;
      if (!g.fused) rows_written += g.num_nodes;  // a fused group's readers compute it
    }
    for (const ProductPartition& pp : l.products) {
      s.product_partitions += 1;
      s.product_edges_padded += pp.num_nodes * pp.fanin;
      rows_written += pp.num_nodes;
      rows_read += pp.num_nodes * pp.fanin;
      for (const auto& [gl, gi] : pp.fused_inputs) {
        const InputGroup& g = p.layers[gl].inputs[gi];
        rows_read -= std::count_if(pp.child_rows.begin(), pp.child_rows.end(),
                                   [&](int64_t r) { return holds_row(g, r); });
      }
    }
    for (const SumPartition& sp : l.sums) {
      s.sum_partitions += 1;
      s.sum_blocks += sp.num_blocks;
      s.sum_edges_padded += sp.num_blocks * sp.fanin * sp.block_size * sp.child_block_size;
      rows_written += sp.num_blocks * sp.block_size;
      if (sp.child_arity == 1) {
        rows_read += sp.num_blocks * sp.fanin * sp.child_block_size;
        continue;
      }
      // Fused products are never stored: every block that reads one adds its children again.
      for (size_t e = 0; e < sp.child_rows.size(); e += sp.child_arity) {
        const int64_t starts = std::count_if(sp.child_rows.begin() + e, sp.child_rows.begin() + e + sp.child_arity,
                                             [](int64_t r) { return r >= 0; });
        rows_read += std::max<int64_t>(starts, 1) * sp.child_block_size;
        if (starts > 1) s.fused_product_edges += starts * sp.child_block_size;
      }
    }
  }
  s.sum_edges_real = p.stats.sum_edges;
  s.product_edges_real = p.stats.product_edges;
  // A multiply-add per padded sum edge, an exp per child value read and a log per output; an add
  // per product edge; about ten operations per input node.
  s.flops_per_sample = 2 * s.sum_edges_padded + s.product_edges_padded + s.fused_product_edges + rows_read +
                       rows_written +
                       10 * input_nodes;
  s.bytes_per_sample = 4 * (rows_written + rows_read);
  s.value_bytes_per_sample = 4 * p.num_rows;
  s.param_bytes = 4 * static_cast<int64_t>(p.params.size());
  return s;
}

namespace {

std::string human(double x) {
  char buf[32];
  const char* unit[] = {"", "K", "M", "G", "T"};
  int u = 0;
  while (x >= 1000.0 && u < 4) {
    x /= 1000.0;
    ++u;
  }
  std::snprintf(buf, sizeof buf, u ? "%.2f%s" : "%.0f%s", x, unit[u]);
  return buf;
}

std::string bytes(double x) {
  char buf[32];
  const char* unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (x >= 1024.0 && u < 4) {
    x /= 1024.0;
    ++u;
  }
  std::snprintf(buf, sizeof buf, u ? "%.2f %s" : "%.0f %s", x, unit[u]);
  return buf;
}

double overhead(int64_t padded, int64_t real) {
  return real > 0 ? 100.0 * static_cast<double>(padded - real) / static_cast<double>(real) : 0.0;
}

}  // namespace

std::string plan_report(const Plan& p) {
  const PlanSummary s = summarize(p);
  const Stats& st = p.stats;
  std::ostringstream o;
  char line[256];
  o << "circuit   " << human(st.input_nodes) << " input, " << human(st.product_nodes) << " product, "
    << human(st.sum_nodes) << " sum nodes; " << human(st.sum_edges) << " sum edges; " << p.num_vars
    << " variables\n";
  o << "plan      " << s.layers << " layers: " << s.input_groups << " input groups"
    << (s.fused_input_groups ? " (" + std::to_string(s.fused_input_groups) + " fused)" : "") << ", "
    << s.product_partitions
    << " product partitions, " << s.sum_partitions << " sum partitions (" << human(s.sum_blocks)
    << " node blocks)\n";
  std::snprintf(line, sizeof line, "padding   sum edges %s -> %s (+%.1f%%), ", human(s.sum_edges_real).c_str(),
                human(s.sum_edges_padded).c_str(), overhead(s.sum_edges_padded, s.sum_edges_real));
  o << line;
  if (s.fused_product_edges == 0) {
    std::snprintf(line, sizeof line, "product edges %s -> %s (+%.1f%%)\n", human(s.product_edges_real).c_str(),
                  human(s.product_edges_padded).c_str(), overhead(s.product_edges_padded, s.product_edges_real));
    o << line;
  } else {  // fused products are added again by every block that reads them: not padding
    o << "product edges " << human(s.product_edges_real) << " -> " << human(s.product_edges_padded)
      << " stored + " << human(s.fused_product_edges) << " fused\n";
    o << "fused     product edges added inside the sums that read them, once per reading block (no rows)\n";
  }
  o << "work      " << human(s.flops_per_sample) << " FLOPs and " << bytes(s.bytes_per_sample)
    << " of value traffic per sample\n";
  o << "memory    " << bytes(s.value_bytes_per_sample) << " of node values per batch element ("
    << human(p.num_rows) << " rows), " << bytes(s.param_bytes) << " of parameters\n";
  // Small plans list every partition; large ones (hundreds of layers) list the heaviest few.
  struct Line {
    int64_t cost;
    std::string text;
  };
  std::vector<Line> lines;
  for (size_t i = 0; i < p.layers.size(); ++i) {
    const Layer& l = p.layers[i];
    const std::string at = "  " + std::to_string(i) + " ";
    for (const InputGroup& g : l.inputs) {
      lines.push_back({g.num_nodes, at + "input    " + to_string(g.dist) + ": " + human(g.num_nodes) + " nodes" +
                                        (g.cat_stride != 1 ? ", category-major" : "")});
    }
    for (const ProductPartition& pp : l.products) {
      lines.push_back({pp.num_nodes * pp.fanin,
                       at + "product  " + human(pp.num_nodes) + " nodes x fan-in " + std::to_string(pp.fanin)});
    }
    for (const SumPartition& sp : l.sums) {
      lines.push_back({sp.num_blocks * sp.fanin * sp.block_size * sp.child_block_size,
                       at + "sum      " + human(sp.num_blocks) + " blocks of " + std::to_string(sp.block_size) +
                           "x" + std::to_string(sp.child_block_size) + " x fan-in " + std::to_string(sp.fanin) +
                           (sp.child_arity != 1 ? ", fused products of " + std::to_string(sp.child_arity) : "")});
    }
  }
  constexpr size_t kListAll = 24, kHeaviest = 8;
  if (lines.size() <= kListAll) {
    o << "partitions\n";
    for (const Line& l : lines) o << l.text << "\n";
  } else {
    std::stable_sort(lines.begin(), lines.end(), [](const Line& a, const Line& b) { return a.cost > b.cost; });
    o << "partitions (the " << kHeaviest << " heaviest of " << lines.size() << "; layer, kind, shape)\n";
    for (size_t k = 0; k < kHeaviest; ++k) o << lines[k].text << "\n";
  }
  return o.str();
}

}  // namespace pcc
