// CPU backend forward against a plain double-precision evaluation of the same hand-built plans
// (every input distribution, padded products, sum blocks of several shapes including padding child
// blocks and blocks overhanging into pad rows, multi-node roots), over dtypes, strides, missing masks,
// batch sizes and thread counts; plus the errors validate_inputs must raise. Seeded from the clock;
// the seed is printed so a failure can be replayed with PCC_TEST_SEED.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "pcc/backend.h"
#include "pcc/error.h"

#define CHECK(cond)                                                          \
  do {                                                                       \
    if (!(cond)) {                                                           \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      std::exit(1);                                                          \
    }                                                                        \
  } while (0)

using namespace pcc;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
std::mt19937_64 rng;

double uni(double a, double b) { return std::uniform_real_distribution<double>(a, b)(rng); }
int64_t randint(int64_t n) { return std::uniform_int_distribution<int64_t>(0, n - 1)(rng); }

// Builds a plan row by row, as the compiler would lay it out.
struct Builder {
  Plan p;
  Builder(int64_t num_vars) {
    p.num_vars = num_vars;
    p.num_rows = 1;  // kOneRow
    p.var_limit.assign(num_vars, -1);
  }
  // A vector of n nodes in `padded` rows; rows past n are pad rows (-inf).
  int64_t vec(int64_t n, int64_t padded) {
    int64_t r = p.num_rows;
    p.num_rows += padded;
    if (padded > n) p.pad_ranges.push_back({r + n, padded - n});
    return r;
  }
  int64_t params(const std::vector<float>& v) {
    int64_t off = static_cast<int64_t>(p.params.size());
    p.params.insert(p.params.end(), v.begin(), v.end());
    p.param_valid.resize(p.params.size(), 1);
    return off;
  }
  void limit(int64_t var, int64_t lim) {
    int64_t& l = p.var_limit[var];
    if (lim == 0) {
      if (l < 0) l = 0;
    } else {
      l = l <= 0 ? lim : std::min(l, lim);
    }
  }
  // One input group of n nodes per variable listed, all of one distribution.
  InputGroup inputs(Dist d, const std::vector<int64_t>& vars, int64_t n, int64_t cats, int64_t row) {
    InputGroup g;
    g.dist = d;
    g.row_start = row;
    for (int64_t v : vars)
      for (int64_t i = 0; i < n; ++i) {
        g.var.push_back(v);
        std::vector<float> w;
        if (d == Dist::Categorical) {
          double s = 0;
          for (int64_t c = 0; c < cats; ++c) w.push_back(float(uni(0.05, 1))), s += w.back();
          for (auto& x : w) x = float(x / s);
        } else if (d == Dist::Bernoulli) {  // two slots (P(x=0), P(x=1)) = (1 - p, p)
          const float pr = float(uni(0.05, 0.95));
          w.push_back(float(1.0 - double(pr)));
          w.push_back(pr);
        } else {  // three slots (mean, std, spare 0)
          w.push_back(float(uni(-1, 1)));
          w.push_back(float(uni(0.5, 2)));
          w.push_back(0.0f);
        }
        g.param_offset.push_back(params(w));
        if (d == Dist::Gaussian) p.param_valid[g.param_offset.back() + 2] = 0;  // the spare slot
        g.num_cats.push_back(d == Dist::Categorical ? cats : d == Dist::Bernoulli ? 2 : 0);
        limit(v, d == Dist::Gaussian ? 0 : g.num_cats.back());
      }
    g.num_nodes = static_cast<int64_t>(g.var.size());
    return g;
  }
  // Random weights for a [b, cb] block; output rows >= live_rows (overhang) get zero weight, and a
  // few other weights are zero too.
  int64_t weights(int64_t b, int64_t cb, int64_t live_rows) {
    std::vector<float> w(b * cb);
    for (int64_t r = 0; r < b; ++r)
      for (int64_t c = 0; c < cb; ++c)
        w[r * cb + c] = r >= live_rows ? 0.f : (randint(8) == 0 ? 0.f : float(uni(0.01, 1)));
    return params(w);
  }
};

// Plan 1: every op in small shapes. Variables: 0, 1 categorical; 2, 3 Bernoulli; 4, 5 Gaussian.
Plan small_plan() {
  Builder B(6);
  const int64_t n = 4;
  Layer in;
  in.kind = LayerKind::Input;
  int64_t cat_rows = B.vec(3 * n, 3 * n);  // var 0 (3 cats), var 1 (5 cats), var 1 again (7 cats)
  InputGroup c0 = B.inputs(Dist::Categorical, {0}, n, 3, cat_rows);
  InputGroup c1 = B.inputs(Dist::Categorical, {1}, n, 5, cat_rows + n);
  InputGroup c2 = B.inputs(Dist::Categorical, {1}, n, 7, cat_rows + 2 * n);
  int64_t ber_rows = B.vec(2 * n, 2 * n);
  int64_t gau_rows = B.vec(2 * n, 2 * n);
  in.inputs = {c0, c1, c2, B.inputs(Dist::Bernoulli, {2, 3}, n, 0, ber_rows),
               B.inputs(Dist::Gaussian, {4, 5}, n, 0, gau_rows)};
  B.p.layers.push_back(in);
  auto row_of = [&](int64_t var, int64_t i) {
    if (var == 0) return cat_rows + i;
    if (var == 1) return cat_rows + n + i;
    if (var == 7) return cat_rows + 2 * n + i;  // the 7-category inputs of variable 1
    if (var == 2 || var == 3) return ber_rows + (var - 2) * n + i;
    return gau_rows + (var - 4) * n + i;
  };

  // Products: P1 = v0*v2*v4 (4 nodes); P2 = v1*v3 padded to fan-in 3 with kOneRow, 3 nodes in 4 rows;
  // P3 = v7*v3*v5 with edges (node i uses node (i+1)%4 of the first child); P4 = v5 alone (fan-in 1).
  Layer prod;
  prod.kind = LayerKind::Product;
  int64_t p1 = B.vec(n, n), p2 = B.vec(3, 4), p3 = B.vec(n, n);
  ProductPartition A;
  A.fanin = 3;
  A.row_start = p1;
  A.num_nodes = n + 3;
  for (int64_t i = 0; i < n; ++i)
    A.child_rows.insert(A.child_rows.end(), {row_of(0, i), row_of(2, i), row_of(4, i)});
  for (int64_t i = 0; i < 3; ++i)
    A.child_rows.insert(A.child_rows.end(), {row_of(1, i), Plan::kOneRow, row_of(3, i)});
  ProductPartition A2;
  A2.fanin = 3;
  A2.row_start = p3;
  A2.num_nodes = n;
  for (int64_t i = 0; i < n; ++i)
    A2.child_rows.insert(A2.child_rows.end(), {row_of(7, (i + 1) % n), row_of(3, i), row_of(5, i)});
  int64_t p4 = B.vec(n, n);
  ProductPartition A3;
  A3.fanin = 1;
  A3.row_start = p4;
  A3.num_nodes = n;
  for (int64_t i = 0; i < n; ++i) A3.child_rows.push_back(row_of(5, i));
  prod.products = {A, A2, A3};
  B.p.layers.push_back(prod);

  // Sums. S1 over P1: one block b=4, cb=2, two child blocks plus a padding block (fan-in 3).
  // S2 over P3: node-level (b=1, cb=1), 3 nodes with 1..4 children, padded to fan-in 4.
  // S3 over P2 (3 nodes + pad row): b=4, cb=4, output 3 nodes (row 3 overhangs, zero weights).
  // S4 over P4: b=2, cb=2, 4 nodes (2 blocks sharing children: exercises E reuse).
  Layer sum;
  sum.kind = LayerKind::Sum;
  int64_t s1 = B.vec(n, n), s2 = B.vec(3, 4), s3 = B.vec(3, 4), s4 = B.vec(n, n);
  SumPartition S1;
  S1.block_size = 4, S1.child_block_size = 2, S1.num_blocks = 1, S1.fanin = 3;
  S1.out_rows = {s1};
  S1.child_rows = {p1, -1, p1 + 2};
  S1.weight_offsets = {B.weights(4, 2, 4), -1, B.weights(4, 2, 4)};
  SumPartition S2;
  S2.block_size = 1, S2.child_block_size = 1, S2.num_blocks = 4, S2.fanin = 4;
  for (int64_t i = 0; i < 3; ++i) {
    S2.out_rows.push_back(s2 + i);
    for (int64_t k = 0; k < 4; ++k) {
      bool live = k <= i + 0 || k == 3;
      S2.child_rows.push_back(live ? p3 + (k + i) % n : -1);
      S2.weight_offsets.push_back(live ? B.weights(1, 1, 1) : -1);
    }
  }
  // The fourth block writes the pad row of S2 with zero weights: must give -inf.
  S2.out_rows.push_back(s2 + 3);
  for (int64_t k = 0; k < 4; ++k) {
    S2.child_rows.push_back(p3 + k);
    S2.weight_offsets.push_back(B.weights(1, 1, 0));
  }
  SumPartition S3;
  S3.block_size = 4, S3.child_block_size = 4, S3.num_blocks = 1, S3.fanin = 1;
  S3.out_rows = {s3};
  S3.child_rows = {p2};
  S3.weight_offsets = {B.weights(4, 4, 3)};
  SumPartition S4;
  S4.block_size = 2, S4.child_block_size = 2, S4.num_blocks = 2, S4.fanin = 2;
  S4.out_rows = {s4, s4 + 2};
  S4.child_rows = {p4, p4 + 2, p4, p4 + 2};
  S4.weight_offsets = {B.weights(2, 2, 2), B.weights(2, 2, 2), B.weights(2, 2, 2),
                       B.weights(2, 2, 2)};
  sum.sums = {S1, S2, S3, S4};
  B.p.layers.push_back(sum);

  // Q = S1 * S2 * S4 elementwise over 3 nodes (scope 0..5), and Q2 = S3 * S1 (node i+1 of S1).
  Layer prod2;
  prod2.kind = LayerKind::Product;
  int64_t q = B.vec(3, 4), q2 = B.vec(3, 4);
  ProductPartition Q;
  Q.fanin = 3, Q.row_start = q, Q.num_nodes = 3;
  for (int64_t i = 0; i < 3; ++i) Q.child_rows.insert(Q.child_rows.end(), {s1 + i, s2 + i, s4 + i});
  ProductPartition Q2;
  Q2.fanin = 2, Q2.row_start = q2, Q2.num_nodes = 3;
  for (int64_t i = 0; i < 3; ++i) {  // push_back: GCC 12 warns (falsely) on insert of a braced list here
    Q2.child_rows.push_back(s3 + i);
    Q2.child_rows.push_back(s1 + i + 1);
  }
  prod2.products = {Q, Q2};
  B.p.layers.push_back(prod2);

  // Root: 2 nodes, one block b=2 over Q and Q2 in child blocks of 2 (the last of each overhangs).
  Layer root;
  root.kind = LayerKind::Sum;
  int64_t r = B.vec(2, 2);
  SumPartition R;
  R.block_size = 2, R.child_block_size = 2, R.num_blocks = 1, R.fanin = 4;
  R.out_rows = {r};
  R.child_rows = {q, q + 2, q2, q2 + 2};
  for (int k = 0; k < 4; ++k) R.weight_offsets.push_back(B.weights(2, 2, 2));
  root.sums = {R};
  B.p.layers.push_back(root);
  B.p.root_row = r;
  B.p.num_root_nodes = 2;
  return B.p;
}

// Plan 2: a wide sum layer. One Gaussian variable, N inputs; a sum over all of them at node level
// (N > 2048 child rows: the streamed path), and dense 16x16 blocks sharing children (the cached path).
Plan wide_plan(int64_t N) {
  Builder B(1);
  Layer in;
  in.kind = LayerKind::Input;
  int64_t ir = B.vec(N, N);
  in.inputs = {B.inputs(Dist::Gaussian, {0}, N, 0, ir)};
  B.p.layers.push_back(in);
  Layer sum;
  sum.kind = LayerKind::Sum;
  int64_t a = B.vec(8, 8), d = B.vec(64, 64);
  SumPartition S;
  S.block_size = 8, S.child_block_size = 1, S.num_blocks = 1, S.fanin = N;
  S.out_rows = {a};
  for (int64_t k = 0; k < N; ++k) {
    S.child_rows.push_back(ir + k);
    S.weight_offsets.push_back(B.weights(8, 1, 8));
  }
  SumPartition D;
  D.block_size = 16, D.child_block_size = 16, D.num_blocks = 4, D.fanin = 64;
  for (int64_t blk = 0; blk < 4; ++blk) {
    D.out_rows.push_back(d + 16 * blk);
    for (int64_t k = 0; k < 64; ++k) {
      // Blocks 0, 1 and 3 share children; block 2 uses another order with one padding block.
      int64_t kk = blk == 2 ? (k * 7) % 64 : k;
      bool pad = blk == 2 && k == 5;
      D.child_rows.push_back(pad ? -1 : ir + 16 * kk);
      D.weight_offsets.push_back(pad ? -1 : B.weights(16, 16, 16));
    }
  }
  sum.sums = {S, D};
  B.p.layers.push_back(sum);
  Layer prod;
  prod.kind = LayerKind::Product;
  int64_t out = B.vec(72, 72);
  ProductPartition P;  // copies (fan-in 1) so the root holds both sums' rows
  P.fanin = 1, P.row_start = out, P.num_nodes = 72;
  for (int64_t i = 0; i < 8; ++i) P.child_rows.push_back(a + i);
  for (int64_t i = 0; i < 64; ++i) P.child_rows.push_back(d + i);
  prod.products = {P};
  B.p.layers.push_back(prod);
  B.p.root_row = out;
  B.p.num_root_nodes = 72;
  return B.p;
}

// Plan 3: sibling log-values hundreds of nats apart inside sum blocks padded with zero weights (what
// the compiler makes of node-level sparse sums). N Gaussian inputs on variable 0 with std 1 and means
// sqrt(2 D), D up to `gap` nats, so at x in [-3, 3] the children's log-values spread over ~gap nats;
// a sum partition of b x cb blocks over them (shared child list: the cached path) where each weight
// is nonzero with probability `density`, so most rows read only children far below the block's max.
// A row must still get its exact value (the forward once shifted by the block's max only and gave
// -inf); rows with no nonzero weight must give -inf. One more block reads a padding child block.
Plan spread_plan(int64_t N, int64_t b, int64_t cb, double density, double gap) {
  Builder B(1);
  Layer in;
  in.kind = LayerKind::Input;
  const int64_t ir = B.vec(N, N);
  in.inputs = {B.inputs(Dist::Gaussian, {0}, N, 0, ir)};
  for (int64_t i = 0; i < N; ++i) {
    const int64_t o = in.inputs[0].param_offset[i];
    B.p.params[o] = float((randint(2) ? 1 : -1) * std::sqrt(2 * uni(0, gap)));
    B.p.params[o + 1] = 1.0f;
  }
  B.p.layers.push_back(in);
  Layer sum;
  sum.kind = LayerKind::Sum;
  const int64_t nout = 2 * N, nblk = nout / b;
  const int64_t out = B.vec(nout - 1, nout);  // the last row overhangs: zero weights, -inf
  SumPartition S;
  S.block_size = b, S.child_block_size = cb, S.fanin = N / cb + 1, S.num_blocks = nblk;
  for (int64_t blk = 0; blk < nblk; ++blk) {
    S.out_rows.push_back(out + blk * b);
    for (int64_t k = 0; k < S.fanin; ++k) {
      const bool pad = k == S.fanin - 1 || (blk == 1 && k == 0);
      S.child_rows.push_back(pad ? -1 : ir + k * cb);
      if (pad) {
        S.weight_offsets.push_back(-1);
        continue;
      }
      std::vector<float> w(b * cb, 0.0f);
      for (int64_t r = 0; r < b; ++r)
        for (int64_t c = 0; c < cb; ++c)
          if (blk * b + r < nout - 1 && uni(0, 1) < density) w[r * cb + c] = float(uni(0.01, 1));
      S.weight_offsets.push_back(B.params(w));
    }
  }
  sum.sums = {S};
  B.p.layers.push_back(sum);
  B.p.root_row = out;
  B.p.num_root_nodes = nout;
  return B.p;
}

// Straightforward double evaluation of the plan's meaning (plan.h).
std::vector<double> reference(const Plan& p, const std::vector<double>& x,
                              const std::vector<uint8_t>& miss, int64_t batch) {
  const int64_t nv = p.num_vars;
  std::vector<double> val(p.num_rows * batch, 0.0);
  for (auto [first, count] : p.pad_ranges)
    for (int64_t r = first; r < first + count; ++r)
      for (int64_t b = 0; b < batch; ++b) val[r * batch + b] = -kInf;
  const std::vector<float>& w = p.params;
  for (const Layer& l : p.layers) {
    for (const InputGroup& g : l.inputs)
      for (int64_t i = 0; i < g.num_nodes; ++i)
        for (int64_t b = 0; b < batch; ++b) {
          int64_t v = g.var[i], o = g.param_offset[i];
          double xv = x[b * nv + v], r = 0;
          if (!miss.empty() && miss[b * nv + v]) {
            r = 0;
          } else if (g.dist == Dist::Categorical) {
            r = std::log(double(w[o + int64_t(xv)]));
          } else if (g.dist == Dist::Bernoulli) {
            r = std::log(double(w[o + (xv != 0 ? 1 : 0)]));  // slots (P(x=0), P(x=1))
          } else {
            double z = (xv - w[o]) / w[o + 1];
            r = -0.5 * z * z - std::log(double(w[o + 1])) - 0.5 * std::log(2 * M_PI);
          }
          val[(g.row_start + i) * batch + b] = r;
        }
    for (const ProductPartition& pp : l.products)
      for (int64_t i = 0; i < pp.num_nodes; ++i)
        for (int64_t b = 0; b < batch; ++b) {
          double s = 0;
          for (int64_t k = 0; k < pp.fanin; ++k) s += val[pp.child_rows[i * pp.fanin + k] * batch + b];
          val[(pp.row_start + i) * batch + b] = s;
        }
    for (const SumPartition& s : l.sums)
      for (int64_t blk = 0; blk < s.num_blocks; ++blk)
        for (int64_t r = 0; r < s.block_size; ++r)
          for (int64_t b = 0; b < batch; ++b) {
            // Shifted by this row's own max over its nonzero-weight children, so that log-values
            // far below 0 (spread_plan: down to ~-1000) do not underflow even in double.
            double mx = -kInf;
            for (int pass = 0; pass < 2; ++pass) {
              double acc = 0;
              for (int64_t k = 0; k < s.fanin; ++k) {
                int64_t cr = s.child_rows[blk * s.fanin + k];
                if (cr < 0) continue;
                const float* W = w.data() + s.weight_offsets[blk * s.fanin + k];
                for (int64_t c = 0; c < s.child_block_size; ++c) {
                  const double wv = W[r * s.child_block_size + c], v = val[(cr + c) * batch + b];
                  if (wv == 0 || v == -kInf) continue;
                  if (pass == 0) mx = std::max(mx, v);
                  else acc += wv * std::exp(v - mx);
                }
              }
              if (pass == 1) val[(s.out_rows[blk] + r) * batch + b] = mx == -kInf ? -kInf : mx + std::log(acc);
            }
          }
  }
  std::vector<double> out(batch * p.num_root_nodes);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t j = 0; j < p.num_root_nodes; ++j)
      out[b * p.num_root_nodes + j] = val[(p.root_row + j) * batch + b];
  return out;
}

// Random observations valid for the plan's variables.
std::vector<double> random_x(const Plan& p, int64_t batch) {
  std::vector<double> x(batch * p.num_vars);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t v = 0; v < p.num_vars; ++v) {
      int64_t lim = p.var_limit[v];
      x[b * p.num_vars + v] = lim > 0 ? double(randint(lim)) : std::round(uni(-3, 3) * 8) / 8;
    }
  return x;
}

struct XBuf {  // x stored in some dtype, possibly transposed (strides [1, batch])
  std::vector<char> bytes;
  TensorRef t;
};

template <class T>
XBuf make_x(const std::vector<double>& x, int64_t batch, int64_t nv, DType dt, bool transposed) {
  XBuf r;
  r.bytes.resize(sizeof(T) * std::max<int64_t>(1, batch * nv));
  T* d = reinterpret_cast<T*>(r.bytes.data());
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t v = 0; v < nv; ++v)
      d[transposed ? v * batch + b : b * nv + v] = static_cast<T>(x[b * nv + v]);
  r.t.data = d;
  r.t.dtype = dt;
  r.t.ndim = 2;
  r.t.shape[0] = batch, r.t.shape[1] = nv;
  r.t.strides[0] = transposed ? 1 : nv;
  r.t.strides[1] = transposed ? batch : 1;
  return r;
}

TensorRef mask_ref(std::vector<uint8_t>& m, int64_t batch, int64_t nv) {
  TensorRef t;
  t.data = m.data();
  t.dtype = DType::Bool;
  t.ndim = 2;
  t.shape[0] = batch, t.shape[1] = nv;
  t.strides[0] = nv, t.strides[1] = 1;
  return t;
}

std::vector<float> run(const Plan& p, const TensorRef& x, const TensorRef& miss, int64_t batch) {
  std::vector<float> values(p.num_rows * batch, 123.0f), out(batch * p.num_root_nodes, 0.0f);
  ForwardArgs a;
  a.plan = &p;
  a.params = p.params.data();
  a.x = x;
  a.missing = miss;
  a.values = values.data();
  a.out = out.data();
  a.batch = batch;
  cpu_forward(a);
  return out;
}

int g_compared = 0;

void compare(const std::vector<float>& got, const std::vector<double>& ref, const char* what) {
  CHECK(got.size() == ref.size());
  for (size_t i = 0; i < ref.size(); ++i) {
    double g = got[i], r = ref[i];
    bool ok = (std::isinf(r) && r < 0) ? (std::isinf(g) && g < 0)
                                      : std::fabs(g - r) <= 1e-5 * std::max(1.0, std::fabs(r));
    if (!ok) {
      std::fprintf(stderr, "%s: out[%zu] = %.9g, reference %.9g\n", what, i, g, r);
      std::exit(1);
    }
    ++g_compared;
  }
}

void check_plan(const Plan& p, const char* name) {
  validate_plan(p);  // the hand-built plan follows the plan rules (slot widths included)
  const int64_t nv = p.num_vars;
  for (int64_t batch : {1, 5, 64, 150}) {
    std::vector<double> x = random_x(p, batch);
    std::vector<uint8_t> miss(batch * nv);
    for (auto& m : miss) m = randint(4) == 0;
    for (bool use_mask : {false, true}) {
      std::vector<double> ref = reference(p, x, use_mask ? miss : std::vector<uint8_t>{}, batch);
      TensorRef mref = use_mask ? mask_ref(miss, batch, nv) : TensorRef{};
      std::vector<float> first;
      for (int threads : {1, 2, 3}) {
        set_num_threads(threads);
        for (bool tr : {false, true}) {
          XBuf xf = make_x<float>(x, batch, nv, DType::Float32, tr);
          XBuf xd = make_x<double>(x, batch, nv, DType::Float64, tr);
          std::vector<float> got = run(p, xf.t, mref, batch);
          compare(got, ref, name);
          compare(run(p, xd.t, mref, batch), ref, name);
          // Same results for every thread count (bitwise).
          if (first.empty()) first = got;
          CHECK(std::memcmp(first.data(), got.data(), got.size() * sizeof(float)) == 0);
        }
      }
      // Integer dtypes where every variable is discrete.
      bool all_discrete = true;
      for (int64_t v = 0; v < nv; ++v) all_discrete &= p.var_limit[v] != 0;
      if (all_discrete) {
        compare(run(p, make_x<int64_t>(x, batch, nv, DType::Int64, true).t, mref, batch), ref, name);
        compare(run(p, make_x<uint8_t>(x, batch, nv, DType::UInt8, false).t, mref, batch), ref, name);
      }
    }
  }
}

// Expects validate_inputs (through cpu_forward) to throw pcc::Error containing `needle`.
void expect_error(const Plan& p, const TensorRef& x, const TensorRef& miss, int64_t batch,
                  const std::string& needle) {
  try {
    run(p, x, miss, batch);
  } catch (const Error& e) {
    if (std::string(e.what()).find(needle) == std::string::npos) {
      std::fprintf(stderr, "error \"%s\" does not contain \"%s\"\n", e.what(), needle.c_str());
      std::exit(1);
    }
    std::printf("  rejected as expected: %s\n", e.what());
    return;
  }
  std::fprintf(stderr, "no error raised; expected \"%s\"\n", needle.c_str());
  std::exit(1);
}

void check_errors(const Plan& p) {
  const int64_t nv = p.num_vars, batch = 4;
  std::vector<double> x = random_x(p, batch);
  auto with = [&](int64_t b, int64_t v, double val) {
    std::vector<double> y = x;
    y[b * nv + v] = val;
    return y;
  };
  TensorRef none;
  // Out of range: variable 1 has inputs with 5 and 7 categories, so its limit is 5.
  expect_error(p, make_x<float>(with(3, 1, 5), batch, nv, DType::Float32, false).t, none, batch,
               "x[3, 1] = 5: variable 1 is Categorical with 5 categories, values must be integers "
               "in [0, 5)");
  expect_error(p, make_x<double>(with(2, 0, -1), batch, nv, DType::Float64, true).t, none, batch,
               "x[2, 0] = -1: variable 0 is Categorical with 3 categories");
  expect_error(p, make_x<float>(with(1, 2, 2), batch, nv, DType::Float32, false).t, none, batch,
               "x[1, 2] = 2: variable 2 is Bernoulli, values must be integers in [0, 2)");
  // Non-integer.
  expect_error(p, make_x<float>(with(0, 1, 1.5), batch, nv, DType::Float32, false).t, none, batch,
               "x[0, 1] = 1.5: variable 1 is Categorical");
  // NaN observed; infinite Gaussian value.
  expect_error(p, make_x<float>(with(2, 4, NAN), batch, nv, DType::Float32, false).t, none, batch,
               "x[2, 4] = nan");
  expect_error(p, make_x<double>(with(0, 5, INFINITY), batch, nv, DType::Float64, false).t, none,
               batch, "x[0, 5] = inf: variable 5 is Gaussian");
  // NaN and out-of-range values under the missing mask are accepted, and not read.
  {
    std::vector<double> y = with(2, 4, NAN);
    y[1 * nv + 1] = 99;
    std::vector<uint8_t> miss(batch * nv, 0);
    miss[2 * nv + 4] = 1;
    miss[1 * nv + 1] = 1;
    std::vector<double> ref = reference(p, x, miss, batch);  // x's own values there: never read
    compare(run(p, make_x<float>(y, batch, nv, DType::Float32, false).t, mask_ref(miss, batch, nv),
                batch),
            ref, "masked NaN");
  }
  // Shapes, dtypes, devices.
  XBuf good = make_x<float>(x, batch, nv, DType::Float32, false);
  TensorRef t = good.t;
  t.ndim = 3;
  t.shape[2] = 1;
  expect_error(p, t, none, batch, "x must be 2-D");
  t = good.t;
  t.shape[1] = nv + 1;
  expect_error(p, t, none, batch, "x has shape [4, 7], expected [4, 6]");
  t = good.t;
  expect_error(p, t, none, batch + 1, "expected [5, 6]");
  t.device = DeviceType::CUDA;
  expect_error(p, t, none, batch, "x is on device cuda:0");
  std::vector<uint8_t> miss(batch * nv, 0);
  TensorRef m = mask_ref(miss, batch, nv);
  m.dtype = DType::Float32;
  expect_error(p, good.t, m, batch, "missing must be bool or uint8, got float32");
  m = mask_ref(miss, batch, nv);
  m.shape[0] = 3;
  expect_error(p, good.t, m, batch, "missing must have the shape of x");
}

}  // namespace

int main() {
  uint64_t seed = std::chrono::high_resolution_clock::now().time_since_epoch().count();
  if (const char* s = std::getenv("PCC_TEST_SEED")) seed = std::strtoull(s, nullptr, 10);
  std::printf("test_cpu_forward seed %llu (replay with PCC_TEST_SEED)\n", (unsigned long long)seed);
  rng.seed(seed);

  Plan small = small_plan();
  check_plan(small, "small plan");
  Plan wide = wide_plan(2304 + randint(200));
  check_plan(wide, "wide plan");
  for (auto [b, cb] : {std::pair<int64_t, int64_t>{4, 4}, {8, 2}, {2, 8}, {1, 1}})
    for (double gap : {100.0, 1000.0}) {
      Plan sp = spread_plan(32, b, cb, 0.15, gap);
      const std::string name = "spread plan " + std::to_string(b) + "x" + std::to_string(cb) +
                               " gap " + std::to_string(int(gap));
      check_plan(sp, name.c_str());
    }
  check_errors(small);
  set_num_threads(0);
  CHECK(get_num_threads() >= 1);
  std::printf("test_cpu_forward: %d values compared, all within 1e-5; errors OK\n", g_compared);
  return 0;
}
