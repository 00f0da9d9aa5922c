// Sum layer backward. For a block with parent rows r and child rows c (over its live child blocks k),
// with the forward's per-column shift m_t (max over the block's child rows, 0 if all are -inf):
//   a[r,t] = f[r,t] exp(m_t - v[r,t])       (0 where f = 0 or v[r,t] = -inf: such rows pass nothing)
//   e[c,t] = exp(v[c,t] - m_t)
//   child flow  F[c,t] += e[c,t] * sum_r W[r,c] a[r,t]          (pass 1: node flows)
//   param flow  P[r,c] += W[r,c] * sum_t a[r,t] e[c,t]          (pass 2: parameter flows)
// so f W exp(v_c - v_r) is formed as two small dense products with every exponent <= 0 except
// m - v_r = -log(sum_c W e), which is large only where the forward's sum was tiny. Where it exceeds
// kMaxShift for some live row (the forward's sum was near or below FLT_MIN), that 8-column vector of
// the block goes through an exact scalar path, f exp(log W + v_c - v_r), instead, so nothing
// overflows and no NaN appears.
//
// Parallel work without atomics, deterministic whatever the thread count:
//  * pass 1 writes child rows that many blocks share (dense sums), so threads own ranges of 8-column
//    vectors of the batch and walk every block of the partition in order;
//  * pass 2 reduces over the batch, so threads own blocks (disjoint_weights = 1) or groups of blocks
//    that share a weight matrix (tied vectors; connected by shared weight offsets), walking each
//    block's columns in order.
// Both keep the shift and E of the previous block when the next block reads the same child blocks
// (blocks of a dense vector), as the forward does. A child block that is a fused product
// (child_arity > 1) has the sum of its A rows as its value, and its flow goes to each of them (the
// product's backward); pass 1 still owns columns, so those adds race with nothing.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <unordered_map>
#include <vector>

#include "cpu/ops.h"
#include "cpu/simd.h"
#include "cpu/thread_pool.h"

namespace pcc {
namespace cpu {
namespace {

using namespace simd;

// exp(40) * block rows stays far below FLT_MAX, and E = exp8(v_c - m) flushes children below m - 87,
// so a fast-path row (m - v_r <= 40) loses only terms f W exp(v_c - v_r) < f W e^-47 (4e-21 f). At 80
// that bound was e^-7 f: rows 80 nats down lost real flow to their lower children.
constexpr float kMaxShift = 40.0f;
constexpr int64_t kMaxEVecs = 65536;  // v8f of E kept per thread (2 MiB)

// Shift, E and A of one block over the column vectors [u0, u0 + nv) of the batch (vector j covers
// columns 8 (u0 + j) .. + 8), rows of nv vectors each.
struct Panel {
  VecBuf m, e, a;
  std::vector<uint8_t> slow;  // per vector: handled by the scalar path
  std::vector<int64_t> live;  // indices k of the block's non-padding child blocks
  int64_t cached_blk = -1;    // block whose child list produced m and e (same u0, nv), or -1
  int64_t u0 = 0, nv = 0;
  bool e_ready = false;

  void reset() { cached_blk = -1; }

  // Returns false when no row of the block has flow in these columns (then nothing else is set up).
  bool prepare(const SumPartition& s, const float* values, const float* flows, int64_t batch,
               int64_t blk, int64_t u0_, int64_t nv_) {
    const int64_t fanin = s.fanin, cb = s.child_block_size, b = s.block_size, ar = s.child_arity;
    const int64_t* crow = s.child_rows.data() + blk * fanin * ar;
    const bool same = cached_blk >= 0 && u0 == u0_ && nv == nv_ &&
                      std::equal(crow, crow + fanin * ar, s.child_rows.data() + cached_blk * fanin * ar);
    u0 = u0_;
    nv = nv_;
    if (!same) {
      live.clear();
      for (int64_t k = 0; k < fanin; ++k)
        if (crow[k * ar] >= 0 && s.weight_offsets[blk * fanin + k] >= 0) live.push_back(k);
      m.resize(nv);
      v8f* M = m.data();
      for (int64_t j = 0; j < nv; ++j) M[j] = splat(kNegInf);
      for (int64_t k : live)
        for (int64_t c = 0; c < cb; ++c) {
          for (int64_t j = 0; j < nv; ++j) {
            const int64_t col = 8 * (u0 + j);
            const v8f v = load_child_part(values, batch, col, static_cast<int>(batch - col), crow + k * ar, ar, c);
            M[j] = v > M[j] ? v : M[j];
          }
        }
      for (int64_t j = 0; j < nv; ++j) M[j] = M[j] == splat(kNegInf) ? splat(0.0f) : M[j];
      e_ready = false;
      cached_blk = blk;
    }
    // A, and which vectors need the exact path.
    a.resize(b * nv);
    slow.assign(nv, 0);
    const v8f* M = m.data();
    v8f* A = a.data();
    bool any = false;
    for (int64_t r = 0; r < b; ++r) {
      const float* vr = values + (s.out_rows[blk] + r) * batch;
      const float* fr = flows + (s.out_rows[blk] + r) * batch;
      for (int64_t j = 0; j < nv; ++j) {
        const int64_t col = 8 * (u0 + j);
        const int cols = static_cast<int>(batch - col);
        const v8f f = load_part(fr + col, cols, 0.0f);
        const v8f v = load_part(vr + col, cols, kNegInf);
        const v8i on = (f != splat(0.0f)) & (v > splat(kNegInf));
        const v8f d = M[j] - v;
        const v8i big = on & (d > splat(kMaxShift));
        bool any_on = false, any_big = false;
        for (int l = 0; l < 8; ++l) any_on |= on[l] != 0, any_big |= big[l] != 0;
        if (any_big) slow[j] = 1;
        if (!any_on) {
          A[r * nv + j] = splat(0.0f);
          continue;
        }
        any = true;
        const v8f dc = d > splat(kMaxShift) ? splat(kMaxShift) : d;
        A[r * nv + j] = on ? f * exp8(dc) : splat(0.0f);
      }
    }
    for (int64_t j = 0; j < nv; ++j)
      if (slow[j])
        for (int64_t r = 0; r < b; ++r) A[r * nv + j] = splat(0.0f);
    return any;
  }

  void ensure_e(const SumPartition& s, const float* values, int64_t batch, int64_t blk) {
    if (e_ready) return;
    const int64_t cb = s.child_block_size, A = s.child_arity;
    const int64_t* crow = s.child_rows.data() + blk * s.fanin * A;
    e.resize(std::max<int64_t>(1, static_cast<int64_t>(live.size()) * cb * nv));
    const v8f* M = m.data();
    v8f* E = e.data();
    for (size_t q = 0; q < live.size(); ++q)
      for (int64_t c = 0; c < cb; ++c) {
        const int64_t* st = crow + live[q] * A;
        v8f* er = E + (q * cb + c) * nv;
        for (int64_t j = 0; j < nv; ++j) {
          const int64_t col = 8 * (u0 + j);
          er[j] = exp8(load_child_part(values, batch, col, static_cast<int>(batch - col), st, A, c) - M[j]);
        }
      }
    e_ready = true;
  }
};

// Vectors per column chunk so that E of this block fits the budget.
int64_t chunk_vectors(const SumPartition& s, int64_t nlive, int64_t nv) {
  const int64_t rows = std::max<int64_t>(1, nlive * s.child_block_size);
  return std::max<int64_t>(1, std::min<int64_t>(nv, kMaxEVecs / rows));
}

// The exact path for one vector j of a block: f exp(log W + v_c - v_r) per element (each term <= f,
// since v_r >= log W + v_c), added to child flows (node_flows) or to parameter flows (params_out).
void slow_vector(const SumPartition& s, const float* params, const float* values, float* flows,
                 float* param_flows, int64_t batch, int64_t blk, const std::vector<int64_t>& live,
                 int64_t col0, bool node_flows) {
  const int64_t b = s.block_size, cb = s.child_block_size, fanin = s.fanin, A = s.child_arity;
  const int64_t* crow = s.child_rows.data() + blk * fanin * A;
  const int64_t* woff = s.weight_offsets.data() + blk * fanin;
  for (int64_t r = 0; r < b; ++r) {
    const int64_t prow = s.out_rows[blk] + r;
    for (int64_t t = col0; t < std::min(batch, col0 + 8); ++t) {
      const float f = flows[prow * batch + t], vr = values[prow * batch + t];
      if (f == 0.0f || !(vr > kNegInf)) continue;
      for (int64_t k : live) {
        const float* w = params + woff[k] + r * cb;
        const int64_t* st = crow + k * A;
        for (int64_t c = 0; c < cb; ++c) {
          if (!(w[c] > 0.0f)) continue;
          float vc = values[(st[0] + c) * batch + t];  // as load_child_part, in float
          for (int64_t a = 1; a < A; ++a)
            if (st[a] >= 0) vc += values[(st[a] + c) * batch + t];
          if (!(vc > kNegInf)) continue;
          const float term =
              static_cast<float>(double(f) * std::exp(std::log(double(w[c])) + double(vc) - double(vr)));
          if (!node_flows) {
            param_flows[woff[k] + r * cb + c] += term;
            continue;
          }
          for (int64_t a = 0; a < A; ++a)
            if (st[a] >= 0) flows[(st[a] + c) * batch + t] += term;
        }
      }
    }
  }
}

// ---- pass 1: node flows ------------------------------------------------------------------------

// F[c0 + i, vectors j0 + j] += E * sum_r W[r, c0 + i] A[r, j0 + j] for CR child rows x TV vectors.
// frow[i * na + a]: the na flow rows child row c0 + i adds to (a fused product's children).
template <int CR, int TV>
PCC_INLINE void h_tile(const float* w, int64_t b, int64_t cb, int64_t c0, const v8f* A, const v8f* E,
                       int64_t nv, int64_t j0, float* const* frow, int na, int64_t col0, int64_t batch) {
  v8f acc[CR][TV];
  for (int i = 0; i < CR; ++i)
    for (int j = 0; j < TV; ++j) acc[i][j] = splat(0.0f);
  for (int64_t r = 0; r < b; ++r) {
    v8f av[TV];
    for (int j = 0; j < TV; ++j) av[j] = A[r * nv + j0 + j];
    for (int i = 0; i < CR; ++i) {
      const float wv = w[r * cb + c0 + i];
      for (int j = 0; j < TV; ++j) acc[i][j] += wv * av[j];
    }
  }
  for (int i = 0; i < CR; ++i)
    for (int j = 0; j < TV; ++j) {
      const int64_t col = col0 + 8 * (j0 + j);
      const int cols = static_cast<int>(std::min<int64_t>(8, batch - col));
      const v8f add = E[(c0 + i) * nv + j0 + j] * acc[i][j];
      for (int a = 0; a < na; ++a) {
        float* out = frow[i * na + a] + col;
        store_part(out, load_part(out, cols, 0.0f) + add, cols);
      }
    }
}

// Child rows c0 .. c0 + CR of the child block with row starts st[0 .. arity) (-1 past the first: none).
template <int CR>
PCC_INLINE void h_rows(const float* w, int64_t b, int64_t cb, int64_t c0, const v8f* A, const v8f* E,
                       int64_t nv, float* flows, const int64_t* st, int64_t arity, int64_t col0,
                       int64_t batch) {
  int64_t present[SumPartition::kMaxChildArity];  // validate_plan bounds the arity
  int na = 0;
  for (int64_t a = 0; a < arity; ++a)
    if (st[a] >= 0) present[na++] = st[a];
  float* frow[CR * SumPartition::kMaxChildArity];
  for (int i = 0; i < CR; ++i)
    for (int a = 0; a < na; ++a) frow[i * na + a] = flows + (present[a] + c0 + i) * batch;
  int64_t j0 = 0;
  for (; j0 + 3 <= nv; j0 += 3) h_tile<CR, 3>(w, b, cb, c0, A, E, nv, j0, frow, na, col0, batch);
  for (; j0 < nv; ++j0) h_tile<CR, 1>(w, b, cb, c0, A, E, nv, j0, frow, na, col0, batch);
}

PCC_CPU_CLONES
void node_flow_range(const SumPartition& s, const float* params, const float* values, float* flows,
                     int64_t batch, int64_t ubegin, int64_t uend, Panel& pn) {
  const int64_t b = s.block_size, cb = s.child_block_size, fanin = s.fanin, A = s.child_arity;
  pn.reset();
  for (int64_t blk = 0; blk < s.num_blocks; ++blk) {
    int64_t nlive = 0;
    for (int64_t k = 0; k < fanin; ++k)
      nlive += s.child_rows[(blk * fanin + k) * A] >= 0 && s.weight_offsets[blk * fanin + k] >= 0;
    if (nlive == 0) continue;
    const int64_t step = chunk_vectors(s, nlive, uend - ubegin);
    if (step < uend - ubegin) pn.reset();  // chunks of this block replace each other's E
    for (int64_t u0 = ubegin; u0 < uend; u0 += step) {
      const int64_t nv = std::min(step, uend - u0);
      const bool any = pn.prepare(s, values, flows, batch, blk, u0, nv);
      const int64_t* crow = s.child_rows.data() + blk * fanin * A;
      const int64_t* woff = s.weight_offsets.data() + blk * fanin;
      if (any) pn.ensure_e(s, values, batch, blk);
      const v8f* Am = pn.a.data();
      for (size_t q = 0; any && q < pn.live.size(); ++q) {
        const int64_t k = pn.live[q];
        const float* w = params + woff[k];
        const v8f* E = pn.e.data() + q * cb * nv;
        const int64_t col0 = 8 * u0;
        const int64_t* st = crow + k * A;
        int64_t c0 = 0;
        for (; c0 + 4 <= cb; c0 += 4) h_rows<4>(w, b, cb, c0, Am, E, nv, flows, st, A, col0, batch);
        for (; c0 < cb; ++c0) h_rows<1>(w, b, cb, c0, Am, E, nv, flows, st, A, col0, batch);
      }
      for (int64_t j = 0; j < nv; ++j)
        if (pn.slow[j])
          slow_vector(s, params, values, flows, nullptr, batch, blk, pn.live, 8 * (u0 + j), true);
      if (step < uend - ubegin) pn.reset();
    }
  }
}

// ---- pass 2: parameter flows -------------------------------------------------------------------

// P[r0 + i, c0 + jj] += W * sum over vectors and lanes of A[r0 + i] E[c0 + jj].
template <int RB, int CB>
PCC_INLINE void g_tile(const float* w, float* p, int64_t cb, int64_t r0, int64_t c0, const v8f* A,
                       const v8f* E, int64_t nv) {
  v8f acc[RB][CB];
  for (int i = 0; i < RB; ++i)
    for (int jj = 0; jj < CB; ++jj) acc[i][jj] = splat(0.0f);
  for (int64_t j = 0; j < nv; ++j) {
    v8f av[RB];
    for (int i = 0; i < RB; ++i) av[i] = A[(r0 + i) * nv + j];
    for (int jj = 0; jj < CB; ++jj) {
      const v8f ev = E[(c0 + jj) * nv + j];
      for (int i = 0; i < RB; ++i) acc[i][jj] += av[i] * ev;
    }
  }
  for (int i = 0; i < RB; ++i)
    for (int jj = 0; jj < CB; ++jj) {
      const v8f x = acc[i][jj];
      const float g = ((x[0] + x[1]) + (x[2] + x[3])) + ((x[4] + x[5]) + (x[6] + x[7]));
      const int64_t idx = (r0 + i) * cb + c0 + jj;
      p[idx] += w[idx] * g;
    }
}

// 3 rows x 4 columns: 12 accumulators + 3 A vectors + 1 E vector = the 16 AVX2 registers.
template <int RB>
PCC_INLINE void g_rows(const float* w, float* p, int64_t cb, int64_t r0, const v8f* A, const v8f* E,
                       int64_t nv) {
  int64_t c0 = 0;
  for (; c0 + 4 <= cb; c0 += 4) g_tile<RB, 4>(w, p, cb, r0, c0, A, E, nv);
  for (; c0 < cb; ++c0) g_tile<RB, 1>(w, p, cb, r0, c0, A, E, nv);
}

PCC_CPU_CLONES
void param_flow_blocks(const SumPartition& s, const float* params, const float* values,
                       const float* flows, float* param_flows, int64_t batch, const int64_t* blocks,
                       int64_t nblocks, Panel& pn) {
  const int64_t b = s.block_size, cb = s.child_block_size, fanin = s.fanin;
  const int64_t nvec = (batch + 7) / 8;
  pn.reset();
  for (int64_t bi = 0; bi < nblocks; ++bi) {
    const int64_t blk = blocks[bi];
    int64_t nlive = 0;
    for (int64_t k = 0; k < fanin; ++k)
      nlive += s.child_rows[(blk * fanin + k) * s.child_arity] >= 0 && s.weight_offsets[blk * fanin + k] >= 0;
    if (nlive == 0) continue;
    const int64_t step = chunk_vectors(s, nlive, nvec);
    if (step < nvec) pn.reset();
    for (int64_t u0 = 0; u0 < nvec; u0 += step) {
      const int64_t nv = std::min(step, nvec - u0);
      bool any = pn.prepare(s, values, flows, batch, blk, u0, nv);
      bool any_slow = false;
      for (uint8_t x : pn.slow) any_slow |= x != 0;
      if (!any && !any_slow) continue;
      const int64_t* woff = s.weight_offsets.data() + blk * fanin;
      if (any) {
        pn.ensure_e(s, values, batch, blk);
        const v8f* A = pn.a.data();
        for (size_t q = 0; q < pn.live.size(); ++q) {
          const int64_t k = pn.live[q];
          const float* w = params + woff[k];
          float* p = param_flows + woff[k];
          const v8f* E = pn.e.data() + q * cb * nv;
          int64_t r0 = 0;
          for (; r0 + 3 <= b; r0 += 3) g_rows<3>(w, p, cb, r0, A, E, nv);
          for (; r0 < b; ++r0) g_rows<1>(w, p, cb, r0, A, E, nv);
        }
      }
      for (int64_t j = 0; j < nv; ++j)
        if (pn.slow[j])
          slow_vector(s, params, values, const_cast<float*>(flows), param_flows, batch, blk, pn.live,
                      8 * (u0 + j), false);
      if (step < nvec) pn.reset();
    }
  }
}

// Blocks grouped so that blocks sharing any weight matrix fall in one group (union-find over weight
// offsets); groups in order of their first block, blocks in increasing order inside a group.
void weight_groups(const SumPartition& s, std::vector<int64_t>& order, std::vector<int64_t>& start) {
  const int64_t nb = s.num_blocks, fanin = s.fanin;
  std::vector<int64_t> parent(nb);
  std::iota(parent.begin(), parent.end(), 0);
  auto find = [&](int64_t x) {
    while (parent[x] != x) x = parent[x] = parent[parent[x]];
    return x;
  };
  std::unordered_map<int64_t, int64_t> owner;
  owner.reserve(nb * fanin);
  for (int64_t blk = 0; blk < nb; ++blk)
    for (int64_t k = 0; k < fanin; ++k) {
      const int64_t w = s.weight_offsets[blk * fanin + k];
      if (w < 0) continue;
      auto it = owner.emplace(w, blk).first;
      const int64_t x = find(it->second), y = find(blk);
      if (x != y) parent[std::max(x, y)] = std::min(x, y);
    }
  // Roots are each group's smallest block; a counting sort keeps blocks ascending within a group.
  std::vector<int64_t> root(nb), gid(nb, -1), count;
  for (int64_t blk = 0; blk < nb; ++blk) {
    root[blk] = find(blk);
    if (gid[root[blk]] < 0) {
      gid[root[blk]] = static_cast<int64_t>(count.size());
      count.push_back(0);
    }
    ++count[gid[root[blk]]];
  }
  start.assign(count.size() + 1, 0);
  for (size_t g = 0; g < count.size(); ++g) start[g + 1] = start[g] + count[g];
  order.assign(nb, 0);
  std::vector<int64_t> fill(start.begin(), start.end() - 1);
  for (int64_t blk = 0; blk < nb; ++blk) order[fill[gid[root[blk]]]++] = blk;
}

}  // namespace

void sum_backward(const SumPartition& s, const float* params, const float* values, float* flows,
                  float* param_flows, int64_t batch) {
  if (s.num_blocks == 0 || batch == 0) return;
  const int64_t nvec = (batch + 7) / 8;
  const int64_t work_per_vec = std::max<int64_t>(1, s.num_blocks * s.fanin * s.block_size * s.child_block_size);
  const int64_t grain = std::max<int64_t>(1, 65536 / work_per_vec);
  parallel_for(
      nvec,
      [&](int64_t begin, int64_t end) {
        thread_local Panel pn;
        node_flow_range(s, params, values, flows, batch, begin, end, pn);
      },
      grain);

  const int64_t block_work = std::max<int64_t>(1, s.fanin * s.block_size * s.child_block_size * nvec);
  const int64_t bgrain = std::max<int64_t>(1, 65536 / block_work);
  if (s.disjoint_weights) {
    std::vector<int64_t> blocks(s.num_blocks);
    std::iota(blocks.begin(), blocks.end(), 0);
    parallel_for(
        s.num_blocks,
        [&](int64_t begin, int64_t end) {
          thread_local Panel pn;
          param_flow_blocks(s, params, values, flows, param_flows, batch, blocks.data() + begin,
                            end - begin, pn);
        },
        bgrain);
  } else {
    std::vector<int64_t> order, start;
    weight_groups(s, order, start);
    const int64_t ngroups = static_cast<int64_t>(start.size()) - 1;
    parallel_for(
        ngroups,
        [&](int64_t begin, int64_t end) {
          thread_local Panel pn;
          param_flow_blocks(s, params, values, flows, param_flows, batch, order.data() + start[begin],
                            start[end] - start[begin], pn);
        },
        1);
  }
}

}  // namespace cpu
}  // namespace pcc
