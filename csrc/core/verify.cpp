// Pass 1, verify: reject any circuit that is not a valid probabilistic circuit, before any other
// pass indexes into it. Every message names the offending vector ("sum vector 12: ...") so a user can
// find it. Checked here: structure (root, topological child ids, parameter groups), kind-specific
// fields, decomposability and smoothness (scopes), edge shapes and ranges, repeated pairs, block
// shapes, sum nodes without edges, parameter counts and values (normalized rows, valid Bernoulli and
// Gaussian parameters), and that tied vectors really share one shape.
//
// All vectors are checked, reachable or not: unreachable ones are kept in files and rebuilt by
// pcc.load, so they must be valid too.
//
// Cost: linear in the size of the circuit. Scopes are interned (equal scopes share one id), so the
// smoothness test is an id comparison and circuits where many vectors share a scope store it once;
// edge lists are bucketed per sum node with a stamp array instead of sorted; tied vectors have their
// parameters checked once, by the group's first user.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <sstream>
#include <unordered_map>
#include <vector>

#include "core/verify.h"
#include "pcc/compiler.h"
#include "pcc/error.h"

namespace pcc {
namespace {

constexpr double kSumTolerance = 1e-3;  // |row sum - 1| allowed for float32 weights and probabilities

std::string name(const Circuit& c, int64_t i) {
  return std::string(to_string(c.nodes[i].kind)) + " vector " + std::to_string(i);
}

using Scope = std::vector<int32_t>;  // sorted variables

std::string format_scope(const Scope& s) {
  constexpr size_t kShown = 8;
  std::ostringstream o;
  o << '{';
  for (size_t i = 0; i < s.size() && i < kShown; ++i) o << (i ? "," : "") << s[i];
  if (s.size() > kShown) o << ",...} (" << s.size() << " variables)";
  else o << '}';
  return o.str();
}

// Equal scopes get one id, so smoothness is an id comparison and shared scopes are stored once.
class ScopeTable {
 public:
  int32_t intern(Scope s) {
    auto it = index_.find(s);
    if (it != index_.end()) return it->second;
    const int32_t id = static_cast<int32_t>(by_id_.size());
    auto ins = index_.emplace(std::move(s), id).first;
    by_id_.push_back(&ins->first);
    return id;
  }
  const Scope& operator[](int32_t id) const { return *by_id_[id]; }

 private:
  struct Hash {
    size_t operator()(const Scope& s) const {
      uint64_t h = 1469598103934665603ull ^ s.size();
      for (int32_t v : s) h = (h ^ static_cast<uint32_t>(v)) * 1099511628211ull;
      return static_cast<size_t>(h);
    }
  };
  std::unordered_map<Scope, int32_t, Hash> index_;  // node-based: key addresses stay valid
  std::vector<const Scope*> by_id_;
};

class Verifier {
 public:
  explicit Verifier(const Circuit& c) : c_(c), scope_of_(c.nodes.size(), -1), owner_(c.params.size(), -1) {}

  void run() {
    for (int64_t i = 0; i < static_cast<int64_t>(c_.nodes.size()); ++i) {
      const NodeVector& v = c_.nodes[i];
      PCC_CHECK(v.num_nodes > 0, name(c_, i), ": num_nodes is ", v.num_nodes, " (must be positive)");
      switch (v.kind) {
        case NodeKind::Input: input(i); break;
        case NodeKind::Product: product(i); break;
        case NodeKind::Sum: sum(i); break;
      }
      if (v.params >= 0) params(i);
    }
  }

 private:
  void input(int64_t i) {
    const NodeVector& v = c_.nodes[i];
    const std::string me = name(c_, i);
    PCC_CHECK(v.children.empty(), me, ": an input vector has no children, but ", v.children.size(), " are given");
    PCC_CHECK(v.prod_edges.empty() && v.sum_edges.empty(), me, ": an input vector has no edges");
    PCC_CHECK(v.var >= 0, me, ": variable ", v.var, " is negative");
    PCC_CHECK(v.var <= std::numeric_limits<int32_t>::max(), me, ": variable ", v.var, " is too large");
    if (v.dist == Dist::Categorical) {
      PCC_CHECK(v.num_cats >= 1, me, ": categorical num_cats is ", v.num_cats, " (must be at least 1)");
    }
    PCC_CHECK(v.params >= 0, me, ": no parameter group");
    scope_of_[i] = scopes_.intern({static_cast<int32_t>(v.var)});
  }

  // Fields only inputs use must be unset on products and sums.
  void not_input_fields(int64_t i) {
    const NodeVector& v = c_.nodes[i];
    PCC_CHECK(v.var == -1, name(c_, i), ": var is ", v.var, ", but only input vectors have a variable");
    PCC_CHECK(!v.children.empty(), name(c_, i), ": no children");
  }

  void product(int64_t i) {
    const NodeVector& v = c_.nodes[i];
    const std::string me = name(c_, i);
    not_input_fields(i);
    PCC_CHECK(v.params == -1, me, ": has parameter group ", v.params, ", but products have no parameters");
    PCC_CHECK(v.sum_edges.empty(), me, ": has sum_edges; a product's edges go in prod_edges");
    const int64_t k = static_cast<int64_t>(v.children.size());
    if (v.prod_edges.empty()) {
      for (int64_t ch : v.children) {
        PCC_CHECK(c_.nodes[ch].num_nodes == v.num_nodes, me, ": elementwise product of ", v.num_nodes,
                  " nodes, but child vector ", ch, " has ", c_.nodes[ch].num_nodes,
                  " nodes (give edges to combine vectors of different sizes)");
      }
    } else {
      PCC_CHECK(v.num_nodes <= std::numeric_limits<int64_t>::max() / k &&
                    static_cast<int64_t>(v.prod_edges.size()) == v.num_nodes * k,
                me, ": edges have ", v.prod_edges.size(), " entries, expected [num_nodes ", v.num_nodes,
                ", children ", k, "]");
      for (int64_t n = 0; n < v.num_nodes; ++n) {
        for (int64_t j = 0; j < k; ++j) {
          const int64_t e = v.prod_edges[n * k + j];
          const int64_t limit = c_.nodes[v.children[j]].num_nodes;
          PCC_CHECK(e >= 0 && e < limit, me, ": edge (", n, ", ", j, ") = ", e, " is out of range: child vector ",
                    v.children[j], " has ", limit, " nodes");
        }
      }
    }
    // Union of the children's scopes, which must be pairwise disjoint (decomposability).
    Scope acc = scopes_[scope_of_[v.children[0]]];
    for (int64_t j = 1; j < k; ++j) {
      const Scope& s = scopes_[scope_of_[v.children[j]]];
      Scope merged;
      merged.reserve(acc.size() + s.size());
      size_t a = 0, b = 0;
      while (a < acc.size() || b < s.size()) {
        if (b == s.size() || (a < acc.size() && acc[a] < s[b])) {
          merged.push_back(acc[a++]);
        } else if (a == acc.size() || s[b] < acc[a]) {
          merged.push_back(s[b++]);
        } else {
          overlap(i, j, s[b]);
        }
      }
      acc.swap(merged);
    }
    scope_of_[i] = scopes_.intern(std::move(acc));
  }

  // Error for child j of product i sharing variable x with an earlier child.
  [[noreturn]] void overlap(int64_t i, int64_t j, int32_t x) {
    const NodeVector& v = c_.nodes[i];
    const int64_t cj = v.children[j];
    for (int64_t e = 0; e < j; ++e) {
      const Scope& s = scopes_[scope_of_[v.children[e]]];
      if (std::binary_search(s.begin(), s.end(), x)) {
        raise(name(c_, i), ": children have overlapping scopes (not decomposable): vector ", v.children[e],
              " has ", format_scope(s), ", vector ", cj, " has ", format_scope(scopes_[scope_of_[cj]]),
              "; both contain variable ", x);
      }
    }
    raise(name(c_, i), ": children have overlapping scopes on variable ", x);
  }

  void sum(int64_t i) {
    const NodeVector& v = c_.nodes[i];
    const std::string me = name(c_, i);
    not_input_fields(i);
    PCC_CHECK(v.prod_edges.empty(), me, ": has prod_edges; a sum's edges go in sum_edges");
    PCC_CHECK(v.params >= 0, me, ": no parameter group");
    const int32_t scope = scope_of_[v.children[0]];
    for (int64_t ch : v.children) {
      PCC_CHECK(scope_of_[ch] == scope, me, ": children have different scopes (not smooth): vector ",
                v.children[0], " has ", format_scope(scopes_[scope]), ", vector ", ch, " has ",
                format_scope(scopes_[scope_of_[ch]]));
    }
    scope_of_[i] = scope;
    const int64_t C = child_node_count(c_, v);
    switch (v.form) {
      case SumForm::Dense:
        PCC_CHECK(v.sum_edges.empty(), me, ": dense but has sum_edges (use the sparse or block form)");
        break;
      case SumForm::Sparse:
        edge_list(i, v.num_nodes, C, "node");
        break;
      case SumForm::Block: {
        const int64_t b = v.block_size;
        PCC_CHECK(b >= 1 && (b & (b - 1)) == 0, me, ": block_size ", b, " is not a power of two");
        PCC_CHECK(b <= C, me, ": block_size ", b, " is larger than its ", C, " child nodes");
        PCC_CHECK(v.num_nodes % b == 0, me, ": num_nodes ", v.num_nodes, " is not a multiple of block_size ", b);
        for (int64_t ch : v.children) {
          PCC_CHECK(c_.nodes[ch].num_nodes % b == 0, me, ": child vector ", ch, " has ", c_.nodes[ch].num_nodes,
                    " nodes, not a multiple of block_size ", b);
        }
        edge_list(i, v.num_nodes / b, C / b, "block");
        break;
      }
    }
  }

  // Sparse or block edge list [2, E] of (sum unit, child unit) pairs, units being nodes or blocks:
  // shape, ranges, no repeated pair, every sum unit has an edge. Linear: edges are bucketed by sum
  // unit and each bucket is checked for repeats with a stamp array over the child units.
  void edge_list(int64_t i, int64_t rows, int64_t cols, const char* unit) {
    const NodeVector& v = c_.nodes[i];
    const std::string me = name(c_, i);
    PCC_CHECK(v.sum_edges.size() % 2 == 0, me, ": sum_edges has ", v.sum_edges.size(),
              " entries, expected [2, E]");
    const int64_t E = v.num_sum_edges();
    // Checked before sizing anything by `rows`, which comes straight from the file.
    PCC_CHECK(rows <= E, me, ": ", rows, " sum ", unit, "s but only ", E, " edges; every sum ", unit,
              " needs at least one");
    const int64_t* src = v.sum_edges.data();
    const int64_t* dst = src + E;
    std::vector<int64_t> start(rows + 1, 0);
    for (int64_t e = 0; e < E; ++e) {
      PCC_CHECK(src[e] >= 0 && src[e] < rows && dst[e] >= 0 && dst[e] < cols, me, ": edge ", e, " (sum ", unit,
                " ", src[e], ", child ", unit, " ", dst[e], ") is out of range: ", rows, " sum ", unit, "s, ",
                cols, " child ", unit, "s");
      ++start[src[e] + 1];
    }
    for (int64_t r = 0; r < rows; ++r) {
      PCC_CHECK(start[r + 1] > 0, me, ": sum ", unit, " ", r, " has no edge");
      start[r + 1] += start[r];
    }
    std::vector<int64_t> order(E), fill(start.begin(), start.end() - 1);
    for (int64_t e = 0; e < E; ++e) order[fill[src[e]]++] = e;
    std::vector<int64_t> stamp(cols, -1), first(cols, -1);
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t k = start[r]; k < start[r + 1]; ++k) {
        const int64_t e = order[k], d = dst[e];
        PCC_CHECK(stamp[d] != r, me, ": edge (sum ", unit, " ", r, ", child ", unit, " ", d,
                  ") is repeated (edges ", first[d], " and ", e, ")");
        stamp[d] = r;
        first[d] = e;
      }
    }
  }

  void params(int64_t i) {
    const NodeVector& v = c_.nodes[i];
    const int64_t g = v.params;
    if (owner_[g] >= 0) {
      same_shape(owner_[g], i);  // tied: the owner's check of the values covers this vector too
      return;
    }
    owner_[g] = i;
    const std::string me = name(c_, i);
    const std::vector<float>& p = c_.params[g];
    PCC_CHECK(!count_overflows(v), me, ": sizes are too large (parameter count overflows)");
    const int64_t expected = expected_param_count(c_, v);
    PCC_CHECK(static_cast<int64_t>(p.size()) == expected, me, ": parameter group ", g, " has ", p.size(),
              " values, expected ", expected);
    const int64_t n = v.num_nodes;
    if (v.kind == NodeKind::Input) {
      switch (v.dist) {
        case Dist::Categorical: {
          const int64_t K = v.num_cats;
          for (int64_t r = 0; r < n; ++r) {
            const float* row = p.data() + r * K;
            double total = 0;
            for (int64_t k = 0; k < K; ++k) {
              PCC_CHECK(std::isfinite(row[k]) && row[k] >= 0, me, ": probability (node ", r, ", category ", k,
                        ") is ", row[k], " (must be finite and non-negative)");
              total += row[k];
            }
            PCC_CHECK(std::abs(total - 1.0) <= kSumTolerance, me, ": probabilities of node ", r, " sum to ",
                      total, ", not 1");
          }
          break;
        }
        case Dist::Bernoulli:
          for (int64_t r = 0; r < n; ++r) {
            PCC_CHECK(p[r] >= 0 && p[r] <= 1, me, ": Bernoulli probability of node ", r, " is ", p[r],
                      " (must be in [0, 1])");
          }
          break;
        case Dist::Gaussian:
          for (int64_t r = 0; r < n; ++r) {
            PCC_CHECK(std::isfinite(p[r]), me, ": Gaussian mean of node ", r, " is ", p[r]);
            PCC_CHECK(std::isfinite(p[n + r]) && p[n + r] > 0, me, ": Gaussian std of node ", r, " is ",
                      p[n + r], " (must be finite and positive)");
          }
          break;
      }
      return;
    }
    weights(i);
  }

  // Sizes come from files, so the products expected_param_count forms must not overflow.
  bool count_overflows(const NodeVector& v) const {
    int64_t t = 0;
    if (v.kind == NodeKind::Input) {
      const int64_t width = v.dist == Dist::Categorical ? v.num_cats : v.dist == Dist::Gaussian ? 2 : 1;
      return __builtin_mul_overflow(v.num_nodes, width, &t);
    }
    switch (v.form) {
      case SumForm::Dense: return __builtin_mul_overflow(v.num_nodes, child_node_count(c_, v), &t);
      case SumForm::Sparse: return false;
      case SumForm::Block:
        return __builtin_mul_overflow(v.block_size, v.block_size, &t) ||
               __builtin_mul_overflow(v.num_sum_edges(), t, &t);
    }
    return false;
  }

  // Sum weights: finite, non-negative, and each sum node's weights add up to 1; one linear pass.
  void weights(int64_t i) {
    const NodeVector& v = c_.nodes[i];
    const std::vector<float>& p = c_.params[v.params];
    const size_t count = p.size();
    bool bad = false;
    for (size_t k = 0; k < count; ++k) bad |= !(p[k] >= 0.f && p[k] <= std::numeric_limits<float>::max());
    if (bad) {
      for (size_t k = 0; k < count; ++k) {
        PCC_CHECK(p[k] >= 0.f && std::isfinite(p[k]), name(c_, i), ": weight ", k, " is ", p[k],
                  " (must be finite and non-negative)");
      }
    }
    const int64_t n = v.num_nodes;
    std::vector<double> total(n, 0.0);
    switch (v.form) {
      case SumForm::Dense: {
        const int64_t C = child_node_count(c_, v);
        for (int64_t r = 0; r < n; ++r) {
          double t = 0;
          const float* row = p.data() + r * C;
          for (int64_t k = 0; k < C; ++k) t += row[k];
          total[r] = t;
        }
        break;
      }
      case SumForm::Sparse: {
        const int64_t E = v.num_sum_edges();
        for (int64_t e = 0; e < E; ++e) total[v.sum_edges[e]] += p[e];
        break;
      }
      case SumForm::Block: {
        const int64_t E = v.num_sum_edges(), b = v.block_size;
        for (int64_t e = 0; e < E; ++e) {
          const float* m = p.data() + e * b * b;
          for (int64_t r = 0; r < b; ++r) {
            double t = 0;
            for (int64_t k = 0; k < b; ++k) t += m[r * b + k];
            total[v.sum_edges[e] * b + r] += t;
          }
        }
        break;
      }
    }
    for (int64_t r = 0; r < n; ++r) {
      PCC_CHECK(std::abs(total[r] - 1.0) <= kSumTolerance, name(c_, i), ": weights of node ", r, " sum to ",
                total[r], ", not 1");
    }
  }

  // Tied vectors (same parameter group) must agree on everything that shapes the parameters.
  void same_shape(int64_t owner, int64_t i) {
    const NodeVector& a = c_.nodes[owner];
    const NodeVector& b = c_.nodes[i];
    const char* diff = nullptr;
    if (a.kind != b.kind) diff = "kind";
    else if (a.num_nodes != b.num_nodes) diff = "num_nodes";
    else if (a.kind == NodeKind::Input && a.dist != b.dist) diff = "distribution";
    else if (a.kind == NodeKind::Input && a.dist == Dist::Categorical && a.num_cats != b.num_cats) diff = "num_cats";
    else if (a.kind == NodeKind::Sum && a.form != b.form) diff = "form";
    else if (a.kind == NodeKind::Sum && a.form == SumForm::Block && a.block_size != b.block_size) diff = "block_size";
    else if (a.kind == NodeKind::Sum && a.sum_edges != b.sum_edges) diff = "edges";
    else if (a.kind == NodeKind::Sum) {
      if (a.children.size() != b.children.size()) diff = "number of children";
      for (size_t j = 0; !diff && j < a.children.size(); ++j) {
        if (c_.nodes[a.children[j]].num_nodes != c_.nodes[b.children[j]].num_nodes) diff = "child sizes";
      }
    }
    PCC_CHECK(!diff, name(c_, i), ": tied to ", name(c_, owner), " (parameter group ", b.params,
              ") but differs in ", diff);
  }

  const Circuit& c_;
  ScopeTable scopes_;
  std::vector<int32_t> scope_of_;
  std::vector<int64_t> owner_;  // per parameter group: first vector using it, -1 if none yet
};

}  // namespace

void check_structure(const Circuit& c) {
  const int64_t n = static_cast<int64_t>(c.nodes.size());
  const int64_t groups = static_cast<int64_t>(c.params.size());
  PCC_CHECK(n > 0, "empty circuit: no node vectors");
  PCC_CHECK(c.root >= 0 && c.root < n, "root ", c.root, " is not a vector id (the circuit has ", n, " vectors)");
  for (int64_t i = 0; i < n; ++i) {
    const NodeVector& v = c.nodes[i];
    // In-memory circuits can carry any enum value; names below index by kind.
    PCC_CHECK(static_cast<uint8_t>(v.kind) <= static_cast<uint8_t>(NodeKind::Sum), "vector ", i, ": kind ",
              int(static_cast<uint8_t>(v.kind)), " out of range");
    PCC_CHECK(static_cast<uint8_t>(v.dist) <= static_cast<uint8_t>(Dist::Gaussian), name(c, i), ": dist ",
              int(static_cast<uint8_t>(v.dist)), " out of range");
    PCC_CHECK(static_cast<uint8_t>(v.form) <= static_cast<uint8_t>(SumForm::Block), name(c, i), ": form ",
              int(static_cast<uint8_t>(v.form)), " out of range");
    for (size_t j = 0; j < v.children.size(); ++j) {
      const int64_t ch = v.children[j];
      PCC_CHECK(ch >= 0 && ch < i, name(c, i), ": child ", j, " is vector ", ch,
                ", not an earlier vector (cycle or forward reference)");
    }
    PCC_CHECK(v.params >= -1 && v.params < groups, name(c, i), ": parameter group ", v.params,
              " does not exist (", groups, " groups)");
  }
}

void verify(const Circuit& c) {
  check_structure(c);
  Verifier(c).run();
}

}  // namespace pcc
