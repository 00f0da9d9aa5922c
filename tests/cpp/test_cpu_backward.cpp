// CPU backward (flows), normalize / log_params, EM update and parameter gradients, on circuits
// compiled with pcc::compile: random circuits with dense, sparse and block sums, tied sum and input
// vectors, all three distributions (Categorical parameters node- and category-major) and random
// missing masks; a circuit 200 layers deep; a multi-root
// circuit whose sums take the backward's exact (overflow-guarded) path. References are an
// independent double-precision evaluation of the IR written here (values, per-sample flows,
// parameter flows, EM), and central finite differences of the summed log-likelihood with respect
// to the log-parameters. Random inputs are fresh each run; the seed is printed (replay with
// PCC_TEST_SEED=N).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "check.h"
#include "pcc/backend.h"
#include "pcc/compiler.h"
#include "random_circuits.h"
#include "samples.h"

using namespace pcc;
using namespace pcc_test;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

void check_close(const char* what, double got, double want, double tol, int& bad) {
  const double err = std::abs(got - want);
  if (!(err <= tol * std::max(1.0, std::abs(want)))) {
    if (++bad <= 8) std::fprintf(stderr, "  %s: got %.9g want %.9g\n", what, got, want);
  }
}

// ---- double-precision reference on the IR ------------------------------------------------------

struct Edge {
  int64_t node, child, child_node, widx;
};

std::vector<Edge> sum_edges(const Circuit& c, const NodeVector& v) {
  std::vector<std::pair<int64_t, int64_t>> concat;  // concatenated index -> (child vector, node)
  for (int64_t ch : v.children)
    for (int64_t i = 0; i < c.nodes[ch].num_nodes; ++i) concat.push_back({ch, i});
  const int64_t C = static_cast<int64_t>(concat.size());
  std::vector<Edge> out;
  if (v.form == SumForm::Dense) {
    for (int64_t i = 0; i < v.num_nodes; ++i)
      for (int64_t k = 0; k < C; ++k) out.push_back({i, concat[k].first, concat[k].second, i * C + k});
  } else if (v.form == SumForm::Sparse) {
    const int64_t E = v.num_sum_edges();
    for (int64_t e = 0; e < E; ++e) {
      const auto& cc = concat[v.sum_edges[E + e]];
      out.push_back({v.sum_edges[e], cc.first, cc.second, e});
    }
  } else {
    const int64_t E = v.num_sum_edges(), bs = v.block_size;
    for (int64_t e = 0; e < E; ++e)
      for (int64_t r = 0; r < bs; ++r)
        for (int64_t k = 0; k < bs; ++k) {
          const auto& cc = concat[v.sum_edges[E + e] * bs + k];
          out.push_back({v.sum_edges[e] * bs + r, cc.first, cc.second, (e * bs + r) * bs + k});
        }
  }
  return out;
}

struct Data {
  int64_t B = 0, V = 0;
  std::vector<float> x;        // [B, V]
  std::vector<uint8_t> miss;   // [B, V]
  TensorRef xt, mt;
};

Data make_data(const Circuit& c, const std::vector<VarInfo>& vars, int64_t B, double p_missing) {
  Data d;
  d.B = B;
  d.V = static_cast<int64_t>(vars.size());
  d.x.resize(B * d.V);
  d.miss.assign(B * d.V, 0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t v = 0; v < d.V; ++v) {
      float& x = d.x[b * d.V + v];
      switch (vars[v].dist) {
        case Dist::Categorical: x = float(randint(vars[v].cats)); break;
        case Dist::Bernoulli: x = float(randint(2)); break;
        case Dist::Gaussian: x = float(uni(-2, 2)); break;
      }
      if (uni(0, 1) < p_missing) {
        d.miss[b * d.V + v] = 1;
        if (vars[v].dist == Dist::Gaussian) x = std::numeric_limits<float>::quiet_NaN();  // never read
      }
    }
  (void)c;
  d.xt.data = d.x.data();
  d.xt.dtype = DType::Float32;
  d.xt.ndim = 2;
  d.xt.shape[0] = B, d.xt.shape[1] = d.V;
  d.xt.strides[0] = d.V, d.xt.strides[1] = 1;
  d.mt = d.xt;
  d.mt.data = p_missing > 0 ? d.miss.data() : nullptr;
  d.mt.dtype = DType::Bool;
  return d;
}

struct Ref {
  std::vector<std::vector<double>> val, flow;  // per vector [n * B] (node-major)
  std::vector<std::vector<double>> pflow;      // per group: sums in IR layout; inputs [n * width]
  double objective = 0;                        // sum_b sum_j r_bj log p_j(x_b) over finite entries
};

int64_t width_of(const NodeVector& v) { return param_width(v.dist, v.num_cats); }

// Slot k of input node i of group gl in a plan-layout buffer (node- or category-major, plan.h).
int64_t slot(const GroupLayout& gl, int64_t i, int64_t k) { return node_slot(gl, i) + k * gl.cat_stride; }

Ref reference(const Circuit& c, const std::vector<std::vector<double>>& P, const Data& d,
              const std::vector<double>& rflow, bool with_flows = true) {
  const int64_t B = d.B, N = static_cast<int64_t>(c.nodes.size());
  Ref R;
  R.val.resize(N);
  std::vector<uint8_t> reach(N, 0);
  reach[c.root] = 1;
  for (int64_t v = N - 1; v >= 0; --v)
    if (reach[v])
      for (int64_t ch : c.nodes[v].children) reach[ch] = 1;
  for (int64_t id = 0; id < N; ++id) {
    if (!reach[id]) continue;
    const NodeVector& v = c.nodes[id];
    std::vector<double>& out = R.val[id];
    out.assign(v.num_nodes * B, 0.0);
    const std::vector<double>& p = v.params >= 0 ? P[v.params] : P[0];
    if (v.kind == NodeKind::Input) {
      for (int64_t i = 0; i < v.num_nodes; ++i)
        for (int64_t b = 0; b < B; ++b) {
          if (d.mt.data && d.miss[b * d.V + v.var]) continue;
          const double x = d.x[b * d.V + v.var];
          double lp;
          if (v.dist == Dist::Categorical) lp = std::log(p[i * v.num_cats + int64_t(x)]);
          else if (v.dist == Dist::Bernoulli) lp = std::log(x != 0 ? p[i] : 1 - p[i]);
          else {
            const double z = (x - p[i]) / p[v.num_nodes + i];
            lp = -0.5 * z * z - std::log(p[v.num_nodes + i]) - 0.5 * std::log(2 * M_PI);
          }
          out[i * B + b] = lp;
        }
    } else if (v.kind == NodeKind::Product) {
      const int64_t nc = static_cast<int64_t>(v.children.size());
      for (int64_t i = 0; i < v.num_nodes; ++i)
        for (int64_t j = 0; j < nc; ++j) {
          const int64_t cn = v.prod_edges.empty() ? i : v.prod_edges[i * nc + j];
          for (int64_t b = 0; b < B; ++b) out[i * B + b] += R.val[v.children[j]][cn * B + b];
        }
    } else {
      const std::vector<Edge> es = sum_edges(c, v);
      std::vector<double> mx(v.num_nodes * B, -kInf);
      for (const Edge& e : es)
        for (int64_t b = 0; b < B; ++b)
          mx[e.node * B + b] = std::max(mx[e.node * B + b], std::log(p[e.widx]) + R.val[e.child][e.child_node * B + b]);
      std::vector<double> acc(v.num_nodes * B, 0.0);
      for (const Edge& e : es)
        for (int64_t b = 0; b < B; ++b) {
          const double m = mx[e.node * B + b];
          if (m > -kInf) acc[e.node * B + b] += p[e.widx] * std::exp(R.val[e.child][e.child_node * B + b] - m);
        }
      for (int64_t i = 0; i < v.num_nodes * B; ++i) out[i] = mx[i] > -kInf ? mx[i] + std::log(acc[i]) : -kInf;
    }
  }
  const NodeVector& root = c.nodes[c.root];
  const int64_t RN = root.num_nodes;
  for (int64_t j = 0; j < RN; ++j)
    for (int64_t b = 0; b < B; ++b) {
      const double v = R.val[c.root][j * B + b];
      if (v > -kInf) R.objective += rflow[b * RN + j] * v;
    }
  if (!with_flows) return R;
  R.flow.resize(N);
  R.pflow.resize(P.size());
  for (int64_t id = 0; id < N; ++id)
    if (reach[id]) R.flow[id].assign(c.nodes[id].num_nodes * B, 0.0);
  for (size_t g = 0; g < P.size(); ++g) R.pflow[g].assign(P[g].size(), 0.0);
  for (int64_t j = 0; j < RN; ++j)
    for (int64_t b = 0; b < B; ++b)
      if (R.val[c.root][j * B + b] > -kInf) R.flow[c.root][j * B + b] = rflow[b * RN + j];
  for (int64_t id = N - 1; id >= 0; --id) {
    if (!reach[id]) continue;
    const NodeVector& v = c.nodes[id];
    const std::vector<double>& f = R.flow[id];
    if (v.kind == NodeKind::Product) {
      const int64_t nc = static_cast<int64_t>(v.children.size());
      for (int64_t i = 0; i < v.num_nodes; ++i)
        for (int64_t j = 0; j < nc; ++j) {
          const int64_t cn = v.prod_edges.empty() ? i : v.prod_edges[i * nc + j];
          for (int64_t b = 0; b < B; ++b) R.flow[v.children[j]][cn * B + b] += f[i * B + b];
        }
    } else if (v.kind == NodeKind::Sum) {
      const std::vector<double>& p = P[v.params];
      for (const Edge& e : sum_edges(c, v))
        for (int64_t b = 0; b < B; ++b) {
          const double vp = R.val[id][e.node * B + b], fp = f[e.node * B + b];
          if (!(vp > -kInf) || fp == 0) continue;
          const double t = fp * p[e.widx] * std::exp(R.val[e.child][e.child_node * B + b] - vp);
          R.flow[e.child][e.child_node * B + b] += t;
          R.pflow[v.params][e.widx] += t;
        }
    } else {
      // Inputs: plan slot order per node (Categorical/Bernoulli categories; Gaussian S1, S2, S0).
      std::vector<double>& st = R.pflow[v.params];
      const int64_t w = width_of(v);
      if (static_cast<int64_t>(st.size()) < v.num_nodes * w) st.resize(v.num_nodes * w, 0.0);
      const std::vector<double>& p = P[v.params];
      for (int64_t i = 0; i < v.num_nodes; ++i)
        for (int64_t b = 0; b < B; ++b) {
          const double fb = f[i * B + b];
          const bool m = d.mt.data && d.miss[b * d.V + v.var];
          const double x = d.x[b * d.V + v.var];
          if (v.dist == Dist::Gaussian) {
            // Centred on the node's mean: d = x - mean; a missing value counts (0, std^2).
            const double mean = p[i], sd = p[v.num_nodes + i], dx = x - mean;
            st[i * 3 + 0] += fb * (m ? 0.0 : dx);
            st[i * 3 + 1] += fb * (m ? sd * sd : dx * dx);
            st[i * 3 + 2] += fb;
          } else if (v.dist == Dist::Bernoulli) {
            if (m) st[i * 2] += fb * (1 - p[i]), st[i * 2 + 1] += fb * p[i];
            else st[i * 2 + int64_t(x)] += fb;
          } else {
            for (int64_t k = 0; k < w; ++k)
              st[i * w + k] += m ? fb * p[i * w + k] : (int64_t(x) == k ? fb : 0.0);
          }
        }
    }
  }
  return R;
}

std::vector<std::vector<double>> ir_params(const Circuit& c) {
  std::vector<std::vector<double>> P;
  for (const auto& g : c.params) P.emplace_back(g.begin(), g.end());
  return P;
}

// IR group parameters from a plan-layout buffer.
std::vector<std::vector<double>> plan_to_ir(const Plan& plan, const Circuit& c, const float* params) {
  std::vector<std::vector<double>> P(c.params.size());
  for (size_t g = 0; g < c.params.size(); ++g) {
    if (plan.groups[g].num_nodes == 0) continue;
    const std::vector<float> v = read_group(plan, params, static_cast<int64_t>(g));
    P[g].assign(v.begin(), v.end());
  }
  return P;
}

// ---- running the backend -----------------------------------------------------------------------

struct Run {
  std::vector<float> values, flows, pflow, out;
};

Run run(const Plan& plan, const float* params, const Data& d, const std::vector<float>& rflow) {
  Run r;
  r.values.assign(plan.num_rows * d.B, 0.0f);
  r.flows.assign(plan.num_rows * d.B, 123.0f);  // garbage: the backward overwrites it
  r.out.assign(d.B * plan.num_root_nodes, 0.0f);
  r.pflow.assign(plan.params.size(), 0.0f);
  ForwardArgs fa;
  fa.plan = &plan;
  fa.params = params;
  fa.x = d.xt;
  fa.missing = d.mt;
  fa.values = r.values.data();
  fa.out = r.out.data();
  fa.batch = d.B;
  cpu_forward(fa);
  BackwardArgs ba;
  ba.plan = &plan;
  ba.params = params;
  ba.x = d.xt;
  ba.missing = d.mt;
  ba.values = r.values.data();
  ba.root_flow = rflow.data();
  ba.flows = r.flows.data();
  ba.param_flows = r.pflow.data();
  ba.batch = d.B;
  cpu_backward(ba);
  return r;
}

// Compares node flows, parameter flows and conservation; returns the plan's run.
Run check_flows(const char* name, const Circuit& c, const Plan& plan, const Data& d,
                const std::vector<float>& rflow, double tol) {
  const Run r = run(plan, plan.params.data(), d, rflow);
  const std::vector<double> rf(rflow.begin(), rflow.end());
  const Ref R = reference(c, ir_params(c), d, rf);
  int bad = 0;
  for (float x : r.flows) CHECK(!std::isnan(x));
  for (float x : r.pflow) CHECK(!std::isnan(x));
  // Node flows, per sample, and their conservation: only where every vector keeps its rows (with
  // reuse_rows, the rows of a vector hold whatever vector used them last; parameter flows, which
  // every node flow feeds, are the pass's output either way).
  bool all_rows = true;
  for (const Layer& l : plan.layers) all_rows = all_rows && l.recompute.empty();
  for (size_t id = 0; id < c.nodes.size() && all_rows; ++id) {
    const int64_t row = plan.vector_rows[id];
    if (R.flow[id].empty() || row < 0) continue;  // -1: a fused product, which has no rows
    for (int64_t i = 0; i < c.nodes[id].num_nodes; ++i)
      for (int64_t b = 0; b < d.B; ++b)
        check_close("node flow", r.flows[(row + i) * d.B + b], R.flow[id][i * d.B + b], tol, bad);
  }
  // Parameter flows: sums through read_group (IR layout, tied pooled), inputs slot by slot.
  for (size_t g = 0; g < c.params.size(); ++g) {
    const GroupLayout& gl = plan.groups[g];
    if (gl.num_nodes == 0) continue;
    if (gl.kind == NodeKind::Sum) {
      const std::vector<float> got = read_group(plan, r.pflow.data(), static_cast<int64_t>(g));
      for (size_t e = 0; e < got.size(); ++e) check_close("edge flow", got[e], R.pflow[g][e], tol, bad);
    } else {
      for (int64_t i = 0; i < gl.num_nodes; ++i)
        for (int64_t k = 0; k < gl.width; ++k)
          check_close("input statistic", r.pflow[slot(gl, i, k)], R.pflow[g][i * gl.width + k], tol, bad);
    }
  }
  // Conservation: per sum node, its edge flows add up to its node flow (summed over tied vectors).
  std::vector<std::vector<double>> node_total(c.params.size());
  for (size_t id = 0; id < c.nodes.size() && all_rows; ++id) {
    const NodeVector& v = c.nodes[id];
    if (R.flow[id].empty() || v.kind != NodeKind::Sum) continue;
    node_total[v.params].resize(v.num_nodes, 0.0);
    const int64_t row = plan.vector_rows[id];
    for (int64_t i = 0; i < v.num_nodes; ++i)
      for (int64_t b = 0; b < d.B; ++b) node_total[v.params][i] += r.flows[(row + i) * d.B + b];
  }
  for (size_t id = 0; id < c.nodes.size(); ++id) {
    const NodeVector& v = c.nodes[id];
    if (R.flow[id].empty() || v.kind != NodeKind::Sum || node_total[v.params].empty()) continue;
    const std::vector<float> got = read_group(plan, r.pflow.data(), v.params);
    std::vector<double> edge_total(v.num_nodes, 0.0);
    for (const Edge& e : sum_edges(c, v)) edge_total[e.node] += got[e.widx];
    for (int64_t i = 0; i < v.num_nodes; ++i)
      check_close("sum conservation", edge_total[i], node_total[v.params][i], tol, bad);
    node_total[v.params].clear();  // once per group
  }
  if (bad) pcc_test::fail(__FILE__, __LINE__, std::string(name) + ": " + std::to_string(bad) + " mismatches");
  return r;
}

// Per variable, the statistics of its inputs add up to the batch (root flow 1, no missing values).
void check_variable_totals(const char* name, const Circuit& c, const Plan& plan, const Run& r, int64_t B) {
  std::vector<double> tot(plan.num_vars, 0.0);
  std::vector<uint8_t> seen(c.params.size(), 0);
  for (size_t id = 0; id < c.nodes.size(); ++id) {
    const NodeVector& v = c.nodes[id];
    if (v.kind != NodeKind::Input || plan.vector_rows[id] < 0 || seen[v.params]) continue;
    seen[v.params] = 1;  // tied vectors (same variable here) share slots
    const GroupLayout& gl = plan.groups[v.params];
    for (int64_t i = 0; i < gl.num_nodes; ++i) {
      if (gl.dist == Dist::Gaussian) tot[v.var] += r.pflow[slot(gl, i, 2)];
      else
        for (int64_t k = 0; k < gl.width; ++k) tot[v.var] += r.pflow[slot(gl, i, k)];
    }
  }
  int bad = 0;
  for (int64_t v = 0; v < plan.num_vars; ++v) check_close("variable total", tot[v], double(B), 1e-4, bad);
  if (bad) pcc_test::fail(__FILE__, __LINE__, std::string(name) + ": variable totals");
}

// Central differences of the objective in double w.r.t. each log-parameter vs cpu_param_grads.
void check_grads(const char* name, const Circuit& c, const Plan& plan, const Data& d,
                 const std::vector<float>& rflow, const Run& r) {
  std::vector<float> grad(plan.params.size(), 7.0f);  // invalid slots must come back 0
  for (size_t i = 0; i < grad.size(); ++i)
    if (plan.param_valid[i]) grad[i] = 0.0f;
  cpu_param_grads(plan, plan.params.data(), r.pflow.data(), grad.data());
  const std::vector<double> rf(rflow.begin(), rflow.end());
  const std::vector<std::vector<double>> P0 = ir_params(c);
  const double h = 1e-5;
  auto J = [&](const std::vector<std::vector<double>>& P) { return reference(c, P, d, rf, false).objective; };
  int bad = 0;
  double worst = 0;
  for (size_t g = 0; g < c.params.size(); ++g) {
    const GroupLayout& gl = plan.groups[g];
    if (gl.num_nodes == 0) continue;
    // The first vector using g gives its structure.
    const NodeVector* v = nullptr;
    for (const NodeVector& u : c.nodes)
      if (u.params == static_cast<int64_t>(g)) { v = &u; break; }
    auto fd = [&](auto perturb) {
      std::vector<std::vector<double>> Pp = P0, Pm = P0;
      perturb(Pp[g], h);
      perturb(Pm[g], -h);
      return (J(Pp) - J(Pm)) / (2 * h);
    };
    auto cmp = [&](double got, double want) {
      worst = std::max(worst, std::abs(got - want) / std::max(1.0, std::abs(want)));
      check_close("gradient", got, want, 2e-3, bad);
    };
    if (gl.kind == NodeKind::Sum) {
      const std::vector<Edge> es = sum_edges(c, *v);
      const std::vector<float> got = read_group(plan, grad.data(), static_cast<int64_t>(g));
      for (const Edge& e0 : es) {
        const double want = fd([&](std::vector<double>& p, double dh) {
          double tot = 0;
          p[e0.widx] *= std::exp(dh);
          for (const Edge& e : es) if (e.node == e0.node) tot += p[e.widx];
          for (const Edge& e : es) if (e.node == e0.node) p[e.widx] /= tot;
        });
        cmp(got[e0.widx], want);
      }
    } else if (gl.dist == Dist::Categorical) {
      for (int64_t i = 0; i < gl.num_nodes; ++i)
        for (int64_t k = 0; k < gl.width; ++k) {
          const double want = fd([&](std::vector<double>& p, double dh) {
            p[i * gl.width + k] *= std::exp(dh);
            double tot = 0;
            for (int64_t j = 0; j < gl.width; ++j) tot += p[i * gl.width + j];
            for (int64_t j = 0; j < gl.width; ++j) p[i * gl.width + j] /= tot;
          });
          cmp(grad[slot(gl, i, k)], want);
        }
    } else if (gl.dist == Dist::Bernoulli) {
      for (int64_t i = 0; i < gl.num_nodes; ++i)
        for (int64_t k = 0; k < 2; ++k) {
          const double want = fd([&](std::vector<double>& p, double dh) {
            const double q0 = (1 - p[i]) * (k == 0 ? std::exp(dh) : 1.0), q1 = p[i] * (k == 1 ? std::exp(dh) : 1.0);
            p[i] = q1 / (q0 + q1);
          });
          cmp(grad[slot(gl, i, k)], want);
        }
    } else {
      const int64_t n = gl.num_nodes;
      for (int64_t i = 0; i < n; ++i) {
        cmp(grad[slot(gl, i, 0)], fd([&](std::vector<double>& p, double dh) { p[i] += dh; }));
        cmp(grad[slot(gl, i, 1)], fd([&](std::vector<double>& p, double dh) { p[n + i] *= std::exp(dh); }));
        CHECK(grad[slot(gl, i, 2)] == 0.0f);
      }
    }
  }
  for (size_t i = 0; i < grad.size(); ++i)
    if (!plan.param_valid[i]) CHECK(grad[i] == 0.0f);
  std::printf("  %s: gradients vs finite differences, worst relative error %.2e\n", name, worst);
  if (bad) pcc_test::fail(__FILE__, __LINE__, std::string(name) + ": gradients");
}

// cpu_em_update against the docstring's EM in double from the reference flows.
void check_em(const char* name, const Circuit& c, const Plan& plan, const Data& d,
              const std::vector<float>& rflow, double s, double a) {
  const Run r = run(plan, plan.params.data(), d, rflow);
  const std::vector<double> rf(rflow.begin(), rflow.end());
  const std::vector<std::vector<double>> P = ir_params(c);
  const Ref R = reference(c, P, d, rf);
  std::vector<float> params = plan.params;
  cpu_em_update(plan, params.data(), r.pflow.data(), s, a);
  const std::vector<std::vector<double>> got = plan_to_ir(plan, c, params.data());
  auto mix = [&](double theta, double F, double tot, double K) {
    return tot + a > 0 ? (1 - s) * theta + s * (F + a / K) / (tot + a) : theta;
  };
  int bad = 0;
  for (size_t g = 0; g < c.params.size(); ++g) {
    const GroupLayout& gl = plan.groups[g];
    if (gl.num_nodes == 0) continue;
    const NodeVector* v = nullptr;
    for (const NodeVector& u : c.nodes)
      if (u.params == static_cast<int64_t>(g)) { v = &u; break; }
    const std::vector<double>& F = R.pflow[g];
    if (gl.kind == NodeKind::Sum) {
      const std::vector<Edge> es = sum_edges(c, *v);
      std::vector<double> tot(v->num_nodes, 0.0), K(v->num_nodes, 0.0);
      for (const Edge& e : es) tot[e.node] += F[e.widx], K[e.node] += 1;
      for (const Edge& e : es)
        check_close("em sum", got[g][e.widx], mix(P[g][e.widx], F[e.widx], tot[e.node], K[e.node]), 1e-4, bad);
    } else if (gl.dist == Dist::Gaussian) {
      const int64_t n = gl.num_nodes;
      for (int64_t i = 0; i < n; ++i) {
        const double s1 = F[3 * i], s2 = F[3 * i + 1], N = F[3 * i + 2];
        const double mean = P[g][i], sd = P[g][n + i];
        const double m = mean + s1 / N, var = std::max(s2 / N - (s1 / N) * (s1 / N), 0.0);
        const double nm = (1 - s) * mean + s * m;
        const double nv = (1 - s) * sd * sd + s * var + s * (1 - s) * (m - mean) * (m - mean);
        check_close("em mean", got[g][i], N > 0 ? nm : mean, 1e-4, bad);
        check_close("em std", got[g][n + i], N > 0 ? std::max(std::sqrt(nv), kGaussianMinStd) : sd, 1e-4, bad);
      }
    } else if (gl.dist == Dist::Bernoulli) {
      for (int64_t i = 0; i < gl.num_nodes; ++i)
        check_close("em bernoulli", got[g][i], mix(P[g][i], F[2 * i + 1], F[2 * i] + F[2 * i + 1], 2), 1e-4, bad);
    } else {
      const int64_t K = gl.width;
      for (int64_t i = 0; i < gl.num_nodes; ++i) {
        double tot = 0;
        for (int64_t k = 0; k < K; ++k) tot += F[i * K + k];
        for (int64_t k = 0; k < K; ++k)
          check_close("em categorical", got[g][i * K + k], mix(P[g][i * K + k], F[i * K + k], tot, double(K)), 1e-4, bad);
      }
    }
  }
  if (bad) pcc_test::fail(__FILE__, __LINE__, std::string(name) + ": EM update");
}

std::vector<float> root_flows(int64_t B, int64_t R, bool ones) {
  std::vector<float> f(B * R);
  for (float& x : f) x = ones ? 1.0f : float(uni(0.25, 2.0));
  return f;
}


void test_random_circuits() {
  for (int trial = 0; trial < 6; ++trial) {
    std::vector<VarInfo> vars = random_vars(4, false);
    vars[trial % 4] = {Dist::Gaussian, 0};
    vars[(trial + 1) % 4] = {Dist::Categorical, 3};
    vars[(trial + 2) % 4] = {Dist::Bernoulli, 0};
    const int64_t roots = trial % 3 == 2 ? 2 : 1;
    const Circuit c = random_circuit(vars, roots);
    CompileOptions opt;
    if (trial % 2) opt.block_size = 2;
    opt.category_major_cats = trial < 3 ? 0 : -1;  // every Categorical group category-major, or none
    const Plan plan = compile(c, opt);
    const int64_t B = 1 + randint(150);
    const std::string name = "random circuit " + std::to_string(trial) + " (batch " + std::to_string(B) +
                             (trial < 3 ? ", category-major)" : ")");
    // Missing values, random root flows.
    const Data dm = make_data(c, vars, B, 0.2);
    const std::vector<float> rf = root_flows(B, roots, false);
    const Run r = check_flows(name.c_str(), c, plan, dm, rf, 1e-4);
    CompileOptions keep = opt;  // every vector keeps its rows: every node's flow is checked
    keep.reuse_rows = false;
    check_flows((name + ", rows kept").c_str(), c, compile(c, keep), dm, rf, 1e-4);
    check_grads(name.c_str(), c, plan, dm, rf, r);
    check_em(name.c_str(), c, plan, dm, rf, 1.0, 0.0);
    check_em(name.c_str(), c, plan, dm, rf, 0.6, 0.3);
    // Product layers over inputs split into runs of a vector or so, shared inputs copied per run.
    CompileOptions runs = opt;
    runs.chunk_input_rows = 1 + trial % 3;
    const Plan chunked = compile(c, runs);
    check_flows((name + ", input runs").c_str(), c, chunked, dm, rf, 1e-4);
    check_em((name + ", input runs").c_str(), c, chunked, dm, rf, 0.6, 0.3);
    // No missing values, root flow 1: per-variable totals.
    if (roots == 1) {
      const Data d = make_data(c, vars, B, 0.0);
      const Run r1 = check_flows(name.c_str(), c, plan, d, root_flows(B, 1, true), 1e-4);
      check_variable_totals(name.c_str(), c, plan, r1, B);
    }
    // Deterministic across calls and thread counts.
    const int threads = get_num_threads();
    set_num_threads(1);
    const Run a = run(plan, plan.params.data(), dm, rf);
    set_num_threads(3);
    const Run b = run(plan, plan.params.data(), dm, rf);
    set_num_threads(threads);
    const Run b2 = run(plan, plan.params.data(), dm, rf);
    CHECK(a.pflow == b.pflow && b.pflow == b2.pflow && b2.pflow == r.pflow);
    CHECK(a.flows == b.flows && b.flows == b2.flows);
  }
  std::printf("random circuits: flows, gradients, EM ok\n");
}

// A chain 200+ layers deep: S_k = sum(P_k), P_k = S_{k-1} x I_k. Log-likelihoods of hundreds of nats.
// RAT-SPN's first layer in small (samples.h), split into runs (chunk_input_rows): each run's inputs
// share one region, are recomputed before its backward, and inputs an earlier run read are copied:
// flows and EM must not notice. Variant 2: inputs of varied sizes, category-major.
void test_input_runs() {
  const std::vector<VarInfo> vars(8, VarInfo{Dist::Categorical, 3});
  for (const int variant : {0, 1, 2})  // 1: all shared, the layer stays whole, its products kept
  for (int64_t rows : {1, 16, 40}) {
    const Circuit c = repetitions_circuit(8, variant == 1, variant == 2);
    CompileOptions runs;
    runs.chunk_input_rows = rows;
    runs.category_major_cats = variant == 2 ? 0 : -1;
    const Plan plan = compile(c, runs);
    const std::string name = "input runs of " + std::to_string(rows) + " rows" +
                             (variant == 1 ? ", all shared" : variant == 2 ? ", category-major" : "");
    const int64_t B = 1 + randint(90);
    const Data dm = make_data(c, vars, B, 0.2);
    const std::vector<float> rf = root_flows(B, 1, false);
    const Run r = check_flows(name.c_str(), c, plan, dm, rf, 1e-4);
    check_grads(name.c_str(), c, plan, dm, rf, r);
    check_em(name.c_str(), c, plan, dm, rf, 0.6, 0.3);
  }
}

void test_deep() {
  const int64_t V = 110, n = 4;
  std::vector<VarInfo> vars(V, VarInfo{Dist::Categorical, 4});
  vars[3] = {Dist::Gaussian, 0};
  vars[5] = {Dist::Bernoulli, 0};
  Builder b;
  int64_t s = random_sum(b, {random_input(b, 0, n, vars[0].dist, 4, -1)}, n, 0);
  for (int64_t v = 1; v < V; ++v) {
    const int64_t in = random_input(b, v, n, vars[v].dist, vars[v].cats, -1);
    const int64_t p = b.product({s, in}, n);
    s = random_sum(b, {p}, n, static_cast<int>(v % 3));
  }
  random_sum(b, {s}, 1, 0);
  const Circuit c = b.c;
  const Plan plan = compile(c);
  CHECK(plan.layers.size() >= 200);
  const int64_t B = 37;
  const Data d = make_data(c, vars, B, 0.0);
  const Run r = check_flows("deep chain", c, plan, d, root_flows(B, 1, true), 2e-4);
  check_variable_totals("deep chain", c, plan, r, B);
  double ll = 0;
  for (float x : r.out) ll += x;
  std::printf("deep chain: %zu layers, mean log-likelihood %.1f, flows ok\n", plan.layers.size(), ll / B);
}

// Sum rows whose forward sum is tiny relative to the block's shift m (the max over the block's child
// rows): a 2 x 3 sparse block where row 0 reads a Gaussian ~80-86 nats below the one row 1 reads, with
// weight 1e-3 (and one ~128 nats down that the forward flushes to 0), so m - v_row0 reaches 87-93:
// exp(m - v) would overflow or be clamped on the fast path; the exact path must match the reference.
void test_extreme_shift() {
  Builder b;
  const int64_t g = b.input(0, 3, Dist::Gaussian, 0, b.group({13.0f, 0.0f, 16.0f, 1.0f, 1.0f, 1.0f}));
  b.sum({g}, 2, SumForm::Sparse, b.group({1e-3f, 0.999f, 1e-6f, 0.999999f}), {0, 0, 1, 1, 0, 2, 0, 1});
  const Circuit c = b.c;
  const Plan plan = compile(c);
  std::vector<VarInfo> vars = {{Dist::Gaussian, 0}};
  const int64_t B = 40;
  Data d = make_data(c, vars, B, 0.0);
  // Row 0 sits 80.6 .. 85.8 nats below the block's shift (the forward's exp flushes below -87).
  for (int64_t i = 0; i < B; ++i) d.x[i] = float(-0.1 + 0.4 * i / (B - 1));
  const std::vector<float> rf = root_flows(B, 2, false);
  CHECK(plan.layers.back().sums.at(0).block_size == 2);
  const Run r = check_flows("extreme shift", c, plan, d, rf, 1e-4);
  for (float v : r.values) CHECK(!std::isnan(v));
  for (int64_t i = 0; i < B; ++i) CHECK(std::isfinite(r.out[2 * i]));
  check_grads("extreme shift", c, plan, d, rf, r);
  std::printf("extreme shift: exact path ok\n");
}

// A node-level sparse sum compiled into 4 x 4 blocks padded with zero weights, over Gaussians whose
// log-values lie hundreds of nats apart: most rows read only children far below their block's max
// (it comes from a child they give zero weight). The forward must give each row its exact finite
// value (it once underflowed to -inf there), and the backward the exact flows: the rows' m - v reach
// hundreds of nats, beyond the fast path's shift guard. Multi-root, so every row carries flow.
void test_spread_sparse() {
  for (double gap : {100.0, 1000.0}) {
    Builder b;
    const int64_t n = 16, ns = 12;
    std::vector<float> gp(2 * n);
    for (int64_t i = 0; i < n; ++i) {
      gp[i] = float((randint(2) ? 1 : -1) * std::sqrt(2 * uni(0, gap)));
      gp[n + i] = 1.0f;
    }
    const int64_t g = b.input(0, n, Dist::Gaussian, 0, b.group(gp));
    std::vector<int64_t> src, dst, node;
    std::vector<double> w;
    // Node i reads about 60% of the children in child block (i / 4) % 4 (at least one), so the
    // compiler's 4 x 4 blocks are over half full, with zero weights where an edge is missing.
    for (int64_t i = 0; i < ns; ++i) {
      const int64_t c0 = 4 * ((i / 4) % 4), must = randint(4);
      for (int64_t c = c0; c < c0 + 4; ++c)
        if (c - c0 == must || uni(0, 1) < 0.6)
          src.push_back(i), dst.push_back(c), node.push_back(i), w.push_back(uni(0.1, 1.0));
    }
    std::vector<int64_t> edges = src;
    edges.insert(edges.end(), dst.begin(), dst.end());
    b.sum({g}, ns, SumForm::Sparse, b.group(normalize_rows(w, node, ns)), edges);
    const Circuit c = b.c;
    CompileOptions opt;
    opt.block_size = 4;
    const Plan plan = compile(c, opt);
    CHECK(plan.layers.back().sums.at(0).block_size == 4);
    const std::vector<VarInfo> vars = {{Dist::Gaussian, 0}};
    const int64_t B = 77;
    const Data d = make_data(c, vars, B, 0.0);
    const std::vector<float> rf = root_flows(B, ns, false);
    const std::string name = "spread sparse gap " + std::to_string(int(gap));
    // Log-values near -1000 hold ~1e-4 nats of float32 rounding, so flows exp(v_c - v_r) carry
    // ~1e-4 relative error there (lost mass would be off by 100%).
    const Run r = check_flows(name.c_str(), c, plan, d, rf, gap > 500 ? 1e-3 : 1e-4);
    const Ref R = reference(c, ir_params(c), d, std::vector<double>(rf.begin(), rf.end()), false);
    int bad = 0, far = 0;
    for (int64_t j = 0; j < ns; ++j)
      for (int64_t t = 0; t < B; ++t) {
        const double want = R.val[c.root][j * B + t];
        CHECK(std::isfinite(r.out[t * ns + j]));
        check_close("value", r.out[t * ns + j], want, 1e-5, bad);
        far += want < -100;
      }
    CHECK(gap < 500 || far > 0);  // at gap 1000 some rows sit far below their block max
    if (bad) pcc_test::fail(__FILE__, __LINE__, name + ": values");
    check_grads(name.c_str(), c, plan, d, rf, r);
    // Deterministic across thread counts.
    const int threads = get_num_threads();
    set_num_threads(1);
    const Run a = run(plan, plan.params.data(), d, rf);
    set_num_threads(3);
    const Run a3 = run(plan, plan.params.data(), d, rf);
    set_num_threads(threads);
    CHECK(a.out == a3.out && a.out == r.out && a.flows == a3.flows && a.pflow == a3.pflow);
  }
  // The fast path's guard: a 2 x 2 block where row 1 sits 79.5 nats below the block's max (from
  // child 0, which only row 0 reads) and reads a child 87.6 below it. exp8 flushes that child's E to
  // 0, so unless row 1 takes the exact path its true flow f 0.5 e^-8.1 (1.5e-4 f) is lost.
  {
    Builder b;
    const float mu1 = float(std::sqrt(2 * 78.8)), mu2 = float(std::sqrt(2 * 87.6));
    const int64_t g = b.input(0, 4, Dist::Gaussian, 0, b.group({0.0f, mu1, mu2, 0.0f, 1, 1, 1, 1}));
    // Blocks: sum block 0 -> child block 0 (children 0, 1) and child block 1 (children 2, 3).
    b.sum({g}, 2, SumForm::Block, b.group({1.0f, 0.0f, 0.0f, 0.5f, 0.0f, 0.0f, 0.5f, 0.0f}),
          {0, 0, 0, 1}, 2);
    const Circuit c = b.c;
    const Plan plan = compile(c);
    CHECK(plan.layers.back().sums.at(0).block_size == 2);
    const std::vector<VarInfo> vars = {{Dist::Gaussian, 0}};
    const int64_t B = 40;
    Data d = make_data(c, vars, B, 0.0);
    for (int64_t i = 0; i < B; ++i) d.x[i] = float(uni(-0.005, 0.005));
    const std::vector<float> rf = root_flows(B, 2, true);
    const Run r = check_flows("guard edge", c, plan, d, rf, 1e-4);
    check_grads("guard edge", c, plan, d, rf, r);
  }
  std::printf("spread sparse sums: values, flows and gradients exact\n");
}

void test_normalize() {
  const std::vector<VarInfo> vars = random_vars(4, false);
  const Circuit c = random_circuit(vars, 1);
  for (const int64_t category_major : {-1, 0}) {
    CompileOptions opt;
    opt.category_major_cats = category_major;
    const Plan plan = compile(c, opt);
    std::vector<float> lp(plan.params.size()), p(plan.params.size(), 5.0f), back(plan.params.size());
    cpu_log_params(plan, plan.params.data(), lp.data());
    cpu_normalize(plan, lp.data(), p.data());
    double worst = 0;
    for (size_t i = 0; i < p.size(); ++i) {
      if (!plan.param_valid[i]) {
        CHECK(p[i] == 0.0f && lp[i] == 0.0f);
        continue;
      }
      worst = std::max(worst, double(std::abs(p[i] - plan.params[i])));
    }
    CHECK(worst <= 1e-6);
    // Random log-parameters: every node's parameters sum to 1 and log_params inverts normalize.
    for (size_t i = 0; i < lp.size(); ++i) lp[i] = float(uni(-5, 5));
    cpu_normalize(plan, lp.data(), p.data());
    cpu_log_params(plan, p.data(), back.data());
    std::vector<float> p2(p.size());
    cpu_normalize(plan, back.data(), p2.data());
    for (size_t i = 0; i < p.size(); ++i) CHECK(std::abs(p[i] - p2[i]) <= 1e-6);
    for (size_t g = 0; g < c.params.size(); ++g) {
      const GroupLayout& gl = plan.groups[g];
      if (gl.num_nodes == 0 || (gl.kind == NodeKind::Input && gl.dist == Dist::Gaussian)) continue;
      if (gl.kind == NodeKind::Input) {
        for (int64_t i = 0; i < gl.num_nodes; ++i) {
          double t = 0;
          for (int64_t k = 0; k < gl.width; ++k) t += p[slot(gl, i, k)];
          CHECK(std::abs(t - 1) <= 1e-5);
        }
      } else {
        for (int64_t s = 0; s + 1 < static_cast<int64_t>(gl.block_start.size()); ++s)
          for (int64_t r = 0; r < gl.block_size && s * gl.block_size + r < gl.num_nodes; ++r) {
            double t = 0;
            for (int64_t q = gl.block_start[s]; q < gl.block_start[s + 1]; ++q)
              for (int64_t k = 0; k < gl.child_block_size; ++k) t += p[gl.block_offsets[q] + r * gl.child_block_size + k];
            CHECK(std::abs(t - 1) <= 1e-5);
          }
      }
    }
    std::printf("normalize / log_params (category_major_cats %lld): round trip worst %.1e\n",
                static_cast<long long>(category_major), worst);
  }
}

// A plan-layout buffer with every input group's slots rewritten node-major (node i's slot k at
// base + i * width + k), so buffers of a category-major plan compare with a node-major plan's.
std::vector<float> node_major(const Plan& p, const std::vector<float>& buf) {
  std::vector<float> out = buf;
  for (const GroupLayout& gl : p.groups)
    if (gl.kind == NodeKind::Input)
      for (int64_t i = 0; i < gl.num_nodes; ++i)
        for (int64_t k = 0; k < gl.width; ++k) out[gl.base + i * gl.width + k] = buf[slot(gl, i, k)];
  return out;
}

void check_same(const char* what, const std::vector<float>& got, const std::vector<float>& want) {
  int bad = 0;
  CHECK_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size() && i < want.size(); ++i) check_close(what, got[i], want[i], 1e-6, bad);
  if (bad) pcc_test::fail(__FILE__, __LINE__, std::string(what) + ": " + std::to_string(bad) + " mismatches");
}

// Random circuits (varied node and category counts, ties, missing values) compiled with every
// Categorical group category-major and with none: forward, flows, EM, normalize / log_params and
// gradients agree slot for slot and in IR order (read_group); the category-major plan also against
// the float64 reference.
void test_category_major() {
  int64_t total_strided = 0;
  for (int trial = 0; trial < 4; ++trial) {
    std::vector<VarInfo> vars = random_vars(5, false);
    vars[trial % 5] = vars[(trial + 1) % 5] = {Dist::Categorical, 0};
    for (VarInfo& v : vars)
      if (v.dist == Dist::Categorical) v.cats = 2 + randint(30);
    const int64_t roots = 1 + trial % 2;
    const Circuit c = random_circuit(vars, roots, 4, true);
    CompileOptions om, on;
    om.category_major_cats = 0;
    on.category_major_cats = -1;
    om.block_size = on.block_size = trial % 2 ? 2 : 0;
    const Plan pm = compile(c, om), pn = compile(c, on);
    int64_t strided = 0, multi_node = 0;  // Categorical groups of 2+ nodes: all category-major
    for (const GroupLayout& gl : pm.groups) {
      strided += gl.cat_stride > 1;
      multi_node += gl.num_nodes > 1 && gl.kind == NodeKind::Input && gl.dist == Dist::Categorical;
    }
    CHECK_EQ(strided, multi_node);
    total_strided += strided;
    CHECK(node_major(pm, pm.params) == pn.params);
    const int64_t B = 1 + randint(100);
    const Data d = make_data(c, vars, B, 0.2);
    const std::vector<float> rf = root_flows(B, roots, false);
    const std::string name = "category-major circuit " + std::to_string(trial);
    const Run rm = check_flows(name.c_str(), c, pm, d, rf, 1e-4), rn = run(pn, pn.params.data(), d, rf);
    check_same("forward", rm.out, rn.out);
    check_same("parameter flows", node_major(pm, rm.pflow), rn.pflow);
    check_grads(name.c_str(), c, pm, d, rf, rm);
    check_em(name.c_str(), c, pm, d, rf, 0.7, 0.2);
    std::vector<float> em = pm.params, en = pn.params;
    cpu_em_update(pm, em.data(), rm.pflow.data(), 0.7, 0.2);
    cpu_em_update(pn, en.data(), rn.pflow.data(), 0.7, 0.2);
    check_same("EM update", node_major(pm, em), en);
    for (size_t g = 0; g < c.params.size(); ++g)
      if (pm.groups[g].num_nodes > 0)
        check_same("EM update in IR order", read_group(pm, em.data(), g), read_group(pn, en.data(), g));
    std::vector<float> gm(pm.params.size(), 0.0f), gn(pn.params.size(), 0.0f);
    cpu_param_grads(pm, pm.params.data(), rm.pflow.data(), gm.data());
    cpu_param_grads(pn, pn.params.data(), rn.pflow.data(), gn.data());
    check_same("gradients", node_major(pm, gm), gn);
    std::vector<float> lm(pm.params.size()), ln(pn.params.size());
    cpu_log_params(pm, pm.params.data(), lm.data());
    cpu_log_params(pn, pn.params.data(), ln.data());
    check_same("log_params", node_major(pm, lm), ln);
    for (float& x : lm) x = float(uni(-5, 5));  // random log-parameters, the same in both layouts
    ln = node_major(pm, lm);
    cpu_normalize(pm, lm.data(), em.data());
    cpu_normalize(pn, ln.data(), en.data());
    check_same("normalize", node_major(pm, em), en);
  }
  CHECK(total_strided > 0);
  std::printf("category-major inputs (%lld groups): the CPU ops agree with node-major and the reference\n",
              static_cast<long long>(total_strided));
}

// A chain as HCLT's tree levels: S_k = sum(P_k), P_k = S_{k-1} x I_k (x J_k every third level, a
// product of three), so each input vector is read by one product, once; some products pick their
// children's nodes with edges (a permutation: still one read per node), inputs of mixed kinds.
Circuit chain_circuit(const std::vector<VarInfo>& vars, int64_t n) {
  Builder b;
  const auto input = [&](int64_t v) { return random_input(b, v, n, vars[v].dist, vars[v].cats, -1); };
  int64_t s = random_sum(b, {input(0)}, n);
  for (size_t v = 1; v < vars.size(); ++v) {
    std::vector<int64_t> children = {s, input(static_cast<int64_t>(v))};
    if (v % 3 == 0 && v + 1 < vars.size()) children.push_back(input(static_cast<int64_t>(++v)));
    std::vector<int64_t> edges;
    if (v % 2 == 1) {
      std::vector<int64_t> perm(n);
      for (int64_t i = 0; i < n; ++i) perm[i] = (i * 3 + 1) % n;
      for (int64_t i = 0; i < n; ++i)
        for (size_t k = 0; k < children.size(); ++k) edges.push_back(k == 1 ? perm[i] : i);
    }
    s = random_sum(b, {b.product(children, n, edges)}, n);
  }
  random_sum(b, {s}, 1, 0);
  return b.c;
}

// Fused inputs (CompileOptions::fuse_inputs): chains (above) compiled with and without, rows reused
// or kept, whole or in input runs, fused products or not, category-major or not: the same outputs,
// flows and parameter flows bit for bit (the products add the same floats in the same order), and
// against the reference; the hand-written fused_inputs_tiny() likewise against tiny_plan(). RAT-SPN's
// first layers in small (samples.h) read shared inputs more than once: those stay unfused.
void test_fused_inputs() {
  int64_t fused = 0;
  for (int trial = 0; trial < 12; ++trial) {
    std::vector<VarInfo> vars = random_vars(7 + trial % 5, true);
    const int64_t n = trial % 3 == 0 ? 4 : 6;  // 6 nodes: vectors padded to blocks of 4
    const Circuit c = chain_circuit(vars, n);
    CompileOptions on, off;
    on.reuse_rows = off.reuse_rows = trial % 4 != 3;
    on.chunk_input_rows = off.chunk_input_rows = std::vector<int64_t>{1, 16, 40, 16384}[trial % 4];
    on.fuse_products = off.fuse_products = trial % 5 == 1;
    on.category_major_cats = off.category_major_cats = trial % 2 ? 0 : -1;
    on.block_size = off.block_size = trial % 3 == 2 ? 1 : 0;
    off.fuse_inputs = false;
    const Plan pn = compile(c, on), po = compile(c, off);
    for (const Layer& l : pn.layers)
      for (const InputGroup& g : l.inputs) fused += g.fused;
    const int64_t B = 1 + randint(100);
    const Data d = make_data(c, vars, B, 0.2);
    const std::vector<float> rf = root_flows(B, 1, false);
    const std::string name = "fused-input chain " + std::to_string(trial);
    const Run rn = check_flows(name.c_str(), c, pn, d, rf, 1e-4), ro = run(po, po.params.data(), d, rf);
    CHECK(rn.out == ro.out);
    // The fused plan has its x rows (Plan::x_rows) after all of the unfused plan's rows.
    CHECK(rn.flows.size() == ro.flows.size() + static_cast<size_t>(pn.num_rows - po.num_rows) * B);
    CHECK(std::equal(ro.flows.begin(), ro.flows.end(), rn.flows.begin()));
    CHECK(rn.pflow == ro.pflow);
    check_em(name.c_str(), c, pn, d, rf, 0.7, 0.2);
  }
  {
    const Plan rat = compile(repetitions_circuit(8, true));
    for (const Layer& l : rat.layers)
      for (const InputGroup& g : l.inputs) CHECK_EQ(g.fused, 0);
  }
  CHECK(fused > 0);
  // The tiny plans: variable 0 Categorical with 2 values, variable 1 Bernoulli.
  const Data d = make_data(tiny_circuit(), {{Dist::Categorical, 2}, {Dist::Bernoulli, 0}}, 37, 0.2);
  const Plan tf = fused_inputs_tiny(), tp = tiny_plan();
  const std::vector<float> rf = root_flows(d.B, 1, false);
  const Run a = run(tf, tf.params.data(), d, rf), b = run(tp, tp.params.data(), d, rf);
  CHECK(a.out == b.out && std::equal(b.flows.begin(), b.flows.end(), a.flows.begin()) && a.pflow == b.pflow);
  std::printf("fused inputs (%lld groups): the same outputs, flows and parameter flows as unfused\n",
              static_cast<long long>(fused));
}

// Full-batch EM (step 1, pseudocount 0) never lowers the log-likelihood.
void test_em_monotone() {
  const std::vector<VarInfo> vars = random_vars(4, true);
  const Circuit c = random_circuit(vars, 1);
  const Plan plan = compile(c);
  const int64_t B = 200;
  const Data d = make_data(c, vars, B, 0.1);
  std::vector<float> params = plan.params;
  double prev = -kInf;
  for (int it = 0; it <= 5; ++it) {
    const Run r = run(plan, params.data(), d, root_flows(B, 1, true));
    double ll = 0;
    for (float x : r.out) ll += x;
    std::printf("  EM iteration %d: log-likelihood %.6f\n", it, ll);
    CHECK(ll >= prev - 1e-5 * std::abs(prev));
    prev = ll;
    cpu_em_update(plan, params.data(), r.pflow.data(), 1.0, 0.0);
  }
  std::printf("EM: monotone over 5 iterations\n");
}


// Wide dense sums (blocks of 32 x 32, the register kernels' full tiles and remainders), a batch that
// is not a multiple of 8, and a sum over 1024 child rows whose E does not fit one column chunk.
void test_wide() {
  const std::vector<VarInfo> vars = {{Dist::Categorical, 5}, {Dist::Categorical, 7}, {Dist::Bernoulli, 0}};
  for (int64_t n : {64, 1024}) {
    Builder b;
    const int64_t a = random_input(b, 0, n, vars[0].dist, 5, -1);
    const int64_t c = random_input(b, 1, n, vars[1].dist, 7, -1);
    const int64_t p = b.product({a, c}, n);
    const int64_t s1 = random_sum(b, {p}, 48, 0);
    const int64_t s2 = random_sum(b, {p}, 32, 0);
    const int64_t e = random_input(b, 2, 80, vars[2].dist, 0, -1);
    const int64_t t = random_sum(b, {s1, s2}, 32, 0);
    const int64_t q = b.product({t, e}, 32, [&] {
      std::vector<int64_t> ed;
      for (int64_t i = 0; i < 32; ++i) ed.push_back(i), ed.push_back(randint(80));
      return ed;
    }());
    random_sum(b, {q}, 1, 0);
    const Circuit circ = b.c;
    const Plan plan = compile(circ);
    const int64_t B = n == 64 ? 203 : 601;
    const Data d = make_data(circ, vars, B, 0.15);
    const std::string name = "wide dense n=" + std::to_string(n);
    check_flows(name.c_str(), circ, plan, d, root_flows(B, 1, false), 1e-4);
  }
  std::printf("wide dense sums ok\n");
}

}  // namespace

int main() {
  uint64_t seed = static_cast<uint64_t>(std::chrono::high_resolution_clock::now().time_since_epoch().count());
  if (const char* s = std::getenv("PCC_TEST_SEED")) seed = std::strtoull(s, nullptr, 10);
  std::printf("test_cpu_backward: seed %llu (PCC_TEST_SEED=%llu to replay)\n", (unsigned long long)seed,
              (unsigned long long)seed);
  rng.seed(seed);
  test_random_circuits();
  test_input_runs();
  test_wide();
  test_deep();
  test_extreme_shift();
  test_spread_sparse();
  test_normalize();
  test_category_major();
  test_fused_inputs();
  test_em_monotone();
  return pcc_test::report("test_cpu_backward");
}
