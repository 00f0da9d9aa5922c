// Sum layer forward: per sum block, out = log sum_k W_k exp(child block k), computed stably as
// m + log(sum_k W_k exp(child_k - m)) with m the per-column max over all (non-padding) child rows.
// That shift is shared by the block's rows, so a row whose nonzero-weight children all lie far below
// m (the max coming from a child it gives zero weight, e.g. in padded sparse blocks) gets a tiny or
// underflowed sum; such outputs (sum < kTrustedSum) are recomputed with the row's own shift.
//
// Work items are (batch tile of kTile columns, block) pairs, split statically over threads; each
// output is computed by one item in a fixed order, so results do not depend on the thread count. An
// item is a small dense product acc[b, tile] += W_k[b, cb] * E_k[cb, tile] with E = exp(child - m),
// done by a register-blocked micro-kernel on GCC/Clang vector types. Blocks of a dense sum vector
// share their child list, so consecutive items of one thread reuse the max and E of the previous
// item instead of recomputing the exponentials (the dominant cost otherwise).
//
// A child block of a fused product (child_arity A > 1) is read as the sum of its A row runs, in the
// three places that read children: the max, E and the exact path.
//
// The kernel is compiled for x86-64-v4 / v3 / baseline and picked at load time (target_clones),
// because the binary must run on machines without AVX2 yet should use AVX/FMA where present.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>
#include <new>
#include <vector>

#include "cpu/ops.h"
#include "cpu/simd.h"
#include "cpu/thread_pool.h"

namespace pcc {
namespace cpu {
namespace {

using namespace simd;

constexpr int64_t kMaxERows = 2048;  // child rows of E kept per item (2048 * 64 floats = 512 KiB)

struct Scratch {
  VecBuf m, e, acc;
  std::vector<int64_t> live;  // indices k of non-padding child blocks of the current block
  float tmp[kTile];
};

// acc[r0 .. r0+RB, tile] += sum over live blocks of W_k[r, :] * E_k, for one chunk of live blocks.
// The micro-tile is RB rows x CV vectors of 8 columns, held in registers across the whole reduction:
// 6 x 2 (12 accumulators) fits the 16 AVX2 registers; narrow blocks use fewer rows, more columns.
template <int RB, int CV>
PCC_INLINE void gemm_rows(const SumPartition& s, const float* params, int64_t blk, int64_t r0,
                          const int64_t* live, int64_t nlive, const v8f* e, v8f* acc) {
  const int64_t cb = s.child_block_size, fanin = s.fanin;
  for (int cg = 0; cg < kTV; cg += CV) {
    v8f a[RB][CV];
    for (int i = 0; i < RB; ++i)
      for (int j = 0; j < CV; ++j) a[i][j] = acc[(r0 + i) * kTV + cg + j];
    for (int64_t q = 0; q < nlive; ++q) {
      const float* w = params + s.weight_offsets[blk * fanin + live[q]] + r0 * cb;
      const v8f* ek = e + q * cb * kTV + cg;
      for (int64_t c = 0; c < cb; ++c) {
        v8f ev[CV];
        for (int j = 0; j < CV; ++j) ev[j] = ek[c * kTV + j];
        for (int i = 0; i < RB; ++i) {
          const float wv = w[i * cb + c];  // scalar * vector: one broadcast load
          for (int j = 0; j < CV; ++j) a[i][j] += wv * ev[j];
        }
      }
    }
    for (int i = 0; i < RB; ++i)
      for (int j = 0; j < CV; ++j) acc[(r0 + i) * kTV + cg + j] = a[i][j];
  }
}

PCC_INLINE void gemm(const SumPartition& s, const float* params, int64_t blk, const int64_t* live,
                     int64_t nlive, const v8f* e, v8f* acc) {
  const int64_t b = s.block_size;
  int64_t r = 0;
  for (; r + 6 <= b; r += 6) gemm_rows<6, 2>(s, params, blk, r, live, nlive, e, acc);
  for (; r + 4 <= b; r += 4) gemm_rows<4, 2>(s, params, blk, r, live, nlive, e, acc);
  for (; r + 2 <= b; r += 2) gemm_rows<2, 4>(s, params, blk, r, live, nlive, e, acc);
  for (; r < b; ++r) gemm_rows<1, 8>(s, params, blk, r, live, nlive, e, acc);
}

// E rows for live blocks [q0, q1): exp(child - m).
PCC_INLINE void fill_e(const SumPartition& s, const float* values, int64_t batch, int64_t t0,
                       int cols, const int64_t* child_rows, const int64_t* live, int64_t q0,
                       int64_t q1, const v8f* m, v8f* e, float* tmp) {
  const int64_t cb = s.child_block_size, A = s.child_arity;
  for (int64_t q = q0; q < q1; ++q) {
    const int64_t* st = child_rows + live[q] * A;
    for (int64_t c = 0; c < cb; ++c) {
      v8f* er = e + ((q - q0) * cb + c) * kTV;
      load_child(er, values, batch, t0, cols, st, A, c, tmp);
      for (int j = 0; j < kTV; ++j) er[j] = exp8(er[j] - m[j]);
    }
  }
}

// Sums below this are not trusted to the shared shift: exp8 flushes terms below exp(-87) to 0, so a
// row whose own largest term sits far below the block's max m loses accuracy (or underflows to 0 and
// reads -inf) although its true value is finite. Above it, the flushed terms are < 1e-8 relative.
constexpr float kTrustedSum = 1e-30f;

// The exact path for lanes `bad` of output row r, columns col .. col + ncols (ncols may exceed 8, or
// be <= 0 when the vector lies past the batch): log sum W exp(v) shifted by the row's own max over
// its nonzero-weight children, so no term it needs underflows. -inf where all of them are -inf.
PCC_INLINE void exact_lanes(const SumPartition& s, const float* params, const float* values,
                            int64_t batch, int64_t blk, int64_t r, const int64_t* crow,
                            const int64_t* live, int64_t nlive, int64_t col, int ncols, const v8i& bad,
                            v8f& res) {
  if (ncols <= 0) return;  // nothing of this vector is stored
  const int64_t cb = s.child_block_size, fanin = s.fanin, A = s.child_arity;
  v8f mr = splat(kNegInf);
  bool any_w = false;
  for (int64_t q = 0; q < nlive; ++q) {
    const int64_t k = live[q];
    const float* w = params + s.weight_offsets[blk * fanin + k] + r * cb;
    for (int64_t c = 0; c < cb; ++c) {
      if (w[c] == 0.0f) continue;
      any_w = true;
      const v8f v = load_child_part(values, batch, col, ncols, crow + k * A, A, c);
      mr = v > mr ? v : mr;
    }
  }
  v8i fin = mr > splat(kNegInf);
  bool any_fin = false;
  for (int l = 0; l < 8; ++l) any_fin |= (fin[l] & bad[l]) != 0;
  v8f a = splat(0.0f);
  if (any_w && any_fin) {
    const v8f sh = fin ? mr : splat(0.0f);
    for (int64_t q = 0; q < nlive; ++q) {
      const int64_t k = live[q];
      const float* w = params + s.weight_offsets[blk * fanin + k] + r * cb;
      for (int64_t c = 0; c < cb; ++c) {
        if (w[c] == 0.0f) continue;
        a += w[c] * exp8(load_child_part(values, batch, col, ncols, crow + k * A, A, c) - sh);
      }
    }
  }
  for (int l = 0; l < std::min(8, ncols); ++l)
    if (bad[l]) res[l] = fin[l] ? static_cast<float>(std::log(double(a[l])) + double(mr[l])) : kNegInf;
}

PCC_CPU_CLONES
void sum_items(const SumPartition& s, const float* params, float* values, int64_t batch,
               int64_t begin, int64_t end, Scratch& sc) {
  const int64_t nb = s.num_blocks, fanin = s.fanin, cb = s.child_block_size, b = s.block_size;
  const int64_t A = s.child_arity, entry_rows = fanin * A;  // child_rows per block
  sc.m.resize(kTV);
  sc.acc.resize(b * kTV);
  sc.live.reserve(fanin);
  v8f* m = sc.m.data();
  v8f* acc = sc.acc.data();
  const int64_t chunk_blocks = std::max<int64_t>(1, kMaxERows / std::max<int64_t>(cb, 1));
  int64_t cached_tile = -1, cached_blk = -1;  // item whose max and E are in the scratch

  for (int64_t item = begin; item < end; ++item) {
    const int64_t tile = item / nb, blk = item % nb;
    const int64_t t0 = tile * kTile;
    const int cols = static_cast<int>(std::min<int64_t>(kTile, batch - t0));
    const int64_t* crow = s.child_rows.data() + blk * entry_rows;

    const bool reuse = cached_tile == tile &&
                       std::equal(crow, crow + entry_rows, s.child_rows.data() + cached_blk * entry_rows);
    if (!reuse) {
      sc.live.clear();
      for (int64_t k = 0; k < fanin; ++k)
        if (crow[k * A] >= 0) sc.live.push_back(k);
      for (int j = 0; j < kTV; ++j) m[j] = splat(kNegInf);
      v8f v[kTV];
      for (int64_t k : sc.live)
        for (int64_t c = 0; c < cb; ++c) {
          load_child(v, values, batch, t0, cols, crow + k * A, A, c, sc.tmp);
          for (int j = 0; j < kTV; ++j) m[j] = v[j] > m[j] ? v[j] : m[j];
        }
      // All children -inf: shift by 0 instead, so exp gives 0 and the output log 0 = -inf.
      for (int j = 0; j < kTV; ++j) m[j] = m[j] == splat(kNegInf) ? splat(0.0f) : m[j];
      cached_tile = -1;
    }
    const int64_t nlive = static_cast<int64_t>(sc.live.size());
    const bool fits = nlive <= chunk_blocks;

    for (int64_t i = 0; i < b * kTV; ++i) acc[i] = splat(0.0f);
    if (fits) {
      sc.e.resize(std::max<int64_t>(1, nlive * cb * kTV));
      if (!reuse)
        fill_e(s, values, batch, t0, cols, crow, sc.live.data(), 0, nlive, m, sc.e.data(), sc.tmp);
      gemm(s, params, blk, sc.live.data(), nlive, sc.e.data(), acc);
      cached_tile = tile;
      cached_blk = blk;
    } else {  // too many children to keep E: stream it through in chunks of child blocks
      sc.e.resize(chunk_blocks * cb * kTV);
      for (int64_t q0 = 0; q0 < nlive; q0 += chunk_blocks) {
        const int64_t q1 = std::min(nlive, q0 + chunk_blocks);
        fill_e(s, values, batch, t0, cols, crow, sc.live.data(), q0, q1, m, sc.e.data(), sc.tmp);
        gemm(s, params, blk, sc.live.data() + q0, q1 - q0, sc.e.data(), acc);
      }
      cached_tile = tile;  // max and live list stay valid; E is refilled since it does not fit
      cached_blk = blk;
    }

    for (int64_t r = 0; r < b; ++r) {
      float* out = values + (s.out_rows[blk] + r) * batch + t0;
      v8f res[kTV];
      for (int j = 0; j < kTV; ++j) {
        const v8f a = acc[r * kTV + j];
        v8i ok = (a >= splat(kTrustedSum)) & (a <= splat(FLT_MAX));
        res[j] = log8(a) + m[j];
        bool all_ok = true;
        for (int l = 0; l < 8; ++l) all_ok &= ok[l] != 0;
        if (!all_ok)  // rare: tiny (possibly underflowed), overflowed or NaN sums
          exact_lanes(s, params, values, batch, blk, r, crow, sc.live.data(), nlive, t0 + 8 * j,
                      cols - 8 * j, v8i(~ok), res[j]);
      }
      if (cols == kTile) {
        for (int j = 0; j < kTV; ++j) storeu(out + 8 * j, res[j]);
      } else {
        std::memcpy(sc.tmp, res, sizeof(float) * kTile);
        std::memcpy(out, sc.tmp, sizeof(float) * cols);
      }
    }
  }
}

}  // namespace

void sum_forward(const SumPartition& s, const float* params, float* values, int64_t batch) {
  if (s.num_blocks == 0 || batch == 0) return;
  const int64_t tiles = (batch + kTile - 1) / kTile;
  // Items in tile-major order: a thread's contiguous range walks consecutive blocks of one tile, so
  // the E reuse above applies to all but its first item.
  parallel_for(tiles * s.num_blocks, [&](int64_t begin, int64_t end) {
    thread_local Scratch sc;
    sum_items(s, params, values, batch, begin, end, sc);
  });
}

}  // namespace cpu
}  // namespace pcc
