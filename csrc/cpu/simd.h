// 8-lane float vector helpers shared by the sum layer's forward (sum.cpp) and backward
// (sum_backward.cpp): GCC/Clang vector types, Cephes exp/log on 8 lanes, an aligned grow-only
// buffer, and tile loads (of rows, and of child blocks that are fused products). Everything is always-inlined, so each target_clones variant of a caller
// gets its own AVX-512 / AVX2 / baseline code.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <new>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__linux__)
#define PCC_CPU_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define PCC_CPU_CLONES
#endif
#define PCC_INLINE inline __attribute__((always_inline))

// The vector helpers are always inlined into their callers, so the AVX argument-passing ABI note GCC
// emits for them does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace pcc {
namespace cpu {
namespace simd {

typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));

constexpr int kTile = 64;       // batch columns per work item of the sum forward
constexpr int kTV = kTile / 8;  // v8f per tile row
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

PCC_INLINE v8f splat(float x) { return v8f{x, x, x, x, x, x, x, x}; }
PCC_INLINE v8f loadu(const float* p) {
  v8f v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
PCC_INLINE void storeu(float* p, const v8f& v) { std::memcpy(p, &v, sizeof v); }

// exp on 8 lanes (Cephes expf polynomial, ~1 ulp); lanes below -87 (including -inf) give exactly 0.
PCC_INLINE v8f exp8(const v8f& xin) {
  v8f x = xin;
  const v8f lo = splat(-87.0f), hi = splat(88.0f);
  v8i under = x < lo;
  x = x < lo ? lo : x;
  x = x > hi ? hi : x;
  const v8f magic = splat(12582912.0f);  // 1.5 * 2^23: adding it rounds to an integer
  v8f n = (x * splat(1.44269504088896341f) + magic) - magic;
  v8f r = x - n * splat(0.693359375f) - n * splat(-2.12194440e-4f);
  v8f y = splat(1.9875691500e-4f);
  y = y * r + splat(1.3981999507e-3f);
  y = y * r + splat(8.3334519073e-3f);
  y = y * r + splat(4.1665795894e-2f);
  y = y * r + splat(1.6666665459e-1f);
  y = y * r + splat(5.0000001201e-1f);
  y = y * (r * r) + r + splat(1.0f);
  v8i e = (__builtin_convertvector(n, v8i) + 127) << 23;
  v8f scale;
  std::memcpy(&scale, &e, sizeof scale);
  y = y * scale;
  return under ? splat(0.0f) : y;
}

// log on 8 lanes (Cephes logf polynomial, ~1 ulp) for normal positive finite inputs; other lanes
// (0, subnormal, inf, NaN) are redone with std::log by the caller.
PCC_INLINE v8f log8(const v8f& x) {
  v8i bits;
  std::memcpy(&bits, &x, sizeof bits);
  v8i ei = ((bits >> 23) & 0xff) - 126;
  v8i mb = (bits & 0x007fffff) | 0x3f000000;  // mantissa in [0.5, 1)
  v8f m;
  std::memcpy(&m, &mb, sizeof m);
  v8f e = __builtin_convertvector(ei, v8f);
  v8i small = m < splat(0.707106781186547524f);
  e = small ? e - splat(1.0f) : e;
  m = small ? m + m - splat(1.0f) : m - splat(1.0f);
  v8f z = m * m;
  v8f y = splat(7.0376836292e-2f);
  y = y * m + splat(-1.1514610310e-1f);
  y = y * m + splat(1.1676998740e-1f);
  y = y * m + splat(-1.2420140846e-1f);
  y = y * m + splat(1.4249322787e-1f);
  y = y * m + splat(-1.6668057665e-1f);
  y = y * m + splat(2.0000714765e-1f);
  y = y * m + splat(-2.4999993993e-1f);
  y = y * m + splat(3.3333331174e-1f);
  y = y * m * z;
  y = y + e * splat(-2.12194440e-4f);
  y = y - splat(0.5f) * z;
  return m + y + e * splat(0.693359375f);
}

// Grow-only buffer of v8f, 64-byte aligned (std::vector<v8f> would drop the type's alignment
// attribute as a template argument, and aligned vector loads would then fault).
class VecBuf {
 public:
  VecBuf() = default;
  VecBuf(const VecBuf&) = delete;
  VecBuf& operator=(const VecBuf&) = delete;
  ~VecBuf() { release(); }
  v8f* data() { return p_; }
  void resize(int64_t n) {  // keeps the contents when n fits the current capacity
    if (n <= cap_) return;
    release();
    p_ = static_cast<v8f*>(::operator new(sizeof(v8f) * n, std::align_val_t(64)));
    cap_ = n;
  }

 private:
  void release() {
    if (p_) ::operator delete(p_, std::align_val_t(64));
    p_ = nullptr;
    cap_ = 0;
  }
  v8f* p_ = nullptr;
  int64_t cap_ = 0;
};

// Loads tile columns [0, cols) of a row into v[kTV], filling the rest with `fill`.
PCC_INLINE void load_tile(v8f* v, const float* row, int cols, float fill, float* tmp) {
  if (cols == kTile) {
    for (int j = 0; j < kTV; ++j) v[j] = loadu(row + 8 * j);
    return;
  }
  std::memcpy(tmp, row, sizeof(float) * cols);
  std::fill(tmp + cols, tmp + kTile, fill);
  for (int j = 0; j < kTV; ++j) v[j] = loadu(tmp + 8 * j);
}

// Loads columns [0, cols) (cols <= 8) of a row into one vector, filling the rest with `fill`.
PCC_INLINE v8f load_part(const float* row, int cols, float fill) {
  if (cols >= 8) return loadu(row);
  float tmp[8];
  for (int l = 0; l < 8; ++l) tmp[l] = l < cols ? row[l] : fill;
  return loadu(tmp);
}

// Row c of a sum's child block whose row starts are st[0 .. A) (plan.h: a fused product when A > 1;
// starts past the first may be -1), columns t0 .. t0 + cols, into v (-inf past cols).
PCC_INLINE void load_child(v8f* v, const float* values, int64_t batch, int64_t t0, int cols, const int64_t* st,
                           int64_t A, int64_t c, float* tmp) {
  load_tile(v, values + (st[0] + c) * batch + t0, cols, kNegInf, tmp);
  for (int64_t a = 1; a < A; ++a) {
    if (st[a] < 0) continue;
    v8f u[kTV];
    load_tile(u, values + (st[a] + c) * batch + t0, cols, kNegInf, tmp);
    for (int j = 0; j < kTV; ++j) v[j] += u[j];
  }
}

// The same for one vector of ncols (<= 8) columns from col.
PCC_INLINE v8f load_child_part(const float* values, int64_t batch, int64_t col, int ncols, const int64_t* st,
                               int64_t A, int64_t c) {
  v8f v = load_part(values + (st[0] + c) * batch + col, ncols, kNegInf);
  for (int64_t a = 1; a < A; ++a)
    if (st[a] >= 0) v += load_part(values + (st[a] + c) * batch + col, ncols, kNegInf);
  return v;
}

// Stores lanes [0, cols) (cols <= 8) of v.
PCC_INLINE void store_part(float* row, const v8f& v, int cols) {
  if (cols >= 8) {
    storeu(row, v);
    return;
  }
  float tmp[8];
  storeu(tmp, v);
  for (int l = 0; l < cols; ++l) row[l] = tmp[l];
}

}  // namespace simd
}  // namespace cpu
}  // namespace pcc
