// Per-node parameter work on the GPU: normalize (softmax of log-parameters), log_params, the EM
// update and parameter gradients, with exactly the math of csrc/cpu/normalize.cpp, em_update.cpp and
// param_grads.cpp (double where they use double). One warp per unit = one parameter node:
//   sum node (row r of sum block s of a group): its slots are unit_blocks[q] + r * cb + c for
//     q in [q0, q1), c < cb, restricted to param_valid slots;
//   Categorical / Bernoulli node: slots off .. off + width (all of them, as the CPU), node-major
//     groups only (category-major ones: params_category_major.cu);
//   Gaussian node: slots off (mean), off + 1 (std), off + 2 (spare / S0).
// Every slot belongs to at most one unit (tied vectors share one GroupLayout), so units run in
// parallel without races. Unit records are kUnitWidth int64s: {kind | cb << 8, a, b, c} with
//   kind 0 (sum): a = q0, b = q1 (into unit_blocks), c = r * cb;
//   kind 1 (Categorical / Bernoulli) and 2 (Gaussian): a = first slot, b = width.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "cuda/cuda_check.cuh"
#include "cuda/device_plan.cuh"
#include "cuda/ops.cuh"
#include "cuda/reduce.cuh"
#include "pcc/backend.h"
#include "pcc/error.h"

namespace pcc {
namespace cuda {
namespace {

constexpr int64_t kUnitWidth = 4;
constexpr int64_t kSumUnit = 0, kCatUnit = 1, kGaussUnit = 2;
constexpr int kThreads = 256;
constexpr int kWarpsPerBlock = kThreads / 32;

struct Unit {
  int64_t kind, cb, a, b, c;
  int lcb;  // log2 cb where cb is a power of two (sum blocks always are), else -1
};

__device__ __forceinline__ Unit load_unit(const int64_t* units, int64_t u) {
  const int64_t* r = units + u * kUnitWidth;
  Unit x;
  x.kind = r[0] & 0xff;
  x.cb = r[0] >> 8;
  x.a = r[1];
  x.b = r[2];
  x.c = r[3];
  x.lcb = x.cb > 0 && (x.cb & (x.cb - 1)) == 0 ? __ffsll(x.cb) - 1 : -1;
  return x;
}

// Number of slots of a unit (sum: (q1 - q0) * cb, valid or not) and the k-th one.
__device__ __forceinline__ int64_t unit_slots(const Unit& u) {
  return u.kind == kSumUnit ? (u.b - u.a) * u.cb : u.b;
}
__device__ __forceinline__ int64_t unit_slot(const Unit& u, const int64_t* unit_blocks, int64_t k) {
  // Shifts, not 64-bit divisions (a call each): this runs once per parameter per pass.
  if (u.kind == kSumUnit)
    return u.lcb >= 0 ? unit_blocks[u.a + (k >> u.lcb)] + u.c + (k & (u.cb - 1))
                      : unit_blocks[u.a + k / u.cb] + u.c + k % u.cb;
  return u.a + k;
}

__device__ __forceinline__ bool is_valid_slot(const Unit& u, const uint8_t* valid, int64_t i) {
  return u.kind != kSumUnit || valid[i] != 0;
}

// Softmax over the unit's (valid) slots of `in` into `out`; invalid sum slots become 0.
__device__ void softmax_unit(const Unit& u, const int64_t* ub, const uint8_t* valid, const float* in, float* out,
                             int lane) {
  const int64_t n = unit_slots(u);
  float mx = -INFINITY;
  for (int64_t k = lane; k < n; k += 32) {
    const int64_t i = unit_slot(u, ub, k);
    if (is_valid_slot(u, valid, i)) mx = max_like_std(mx, in[i]);
  }
  mx = warp_max(mx);
  if (!(mx > -INFINITY)) {
    for (int64_t k = lane; k < n; k += 32) {
      const int64_t i = unit_slot(u, ub, k);
      out[i] = is_valid_slot(u, valid, i) ? (mx == mx ? 0.0f : mx) : 0.0f;
    }
    return;
  }
  double total = 0.0;
  for (int64_t k = lane; k < n; k += 32) {
    const int64_t i = unit_slot(u, ub, k);
    if (is_valid_slot(u, valid, i)) total += exp(double(in[i]) - double(mx));
  }
  total = warp_sum(total);
  for (int64_t k = lane; k < n; k += 32) {
    const int64_t i = unit_slot(u, ub, k);
    out[i] = is_valid_slot(u, valid, i) ? static_cast<float>(exp(double(in[i]) - double(mx)) / total) : 0.0f;
  }
}

template <class Body>
__device__ __forceinline__ void for_each_unit_warp(int64_t num_units, Body&& body) {
  const int lane = threadIdx.x & 31;
  const int64_t warp = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  const int64_t warps = (static_cast<int64_t>(gridDim.x) * blockDim.x) >> 5;
  for (int64_t u = warp; u < num_units; u += warps) body(u, lane);  // warp-uniform loop
}

__global__ void zero_invalid_kernel(const uint8_t* valid, float* out, int64_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    if (!valid[i]) out[i] = 0.0f;
}

__global__ void normalize_kernel(const int64_t* units, const int64_t* ub, int64_t num_units, const uint8_t* valid,
                                 const float* log_params, float* params) {
  for_each_unit_warp(num_units, [&](int64_t ui, int lane) {
    const Unit u = load_unit(units, ui);
    if (u.kind == kGaussUnit) {
      if (lane == 0) {
        params[u.a] = log_params[u.a];
        params[u.a + 1] = expf(log_params[u.a + 1]);
        params[u.a + 2] = 0.0f;
      }
    } else {
      softmax_unit(u, ub, valid, log_params, params, lane);
    }
  });
}

__global__ void log_params_kernel(const int64_t* units, const int64_t* ub, int64_t num_units, const uint8_t* valid,
                                  const float* params, float* log_params) {
  for_each_unit_warp(num_units, [&](int64_t ui, int lane) {
    const Unit u = load_unit(units, ui);
    if (u.kind == kGaussUnit) {
      if (lane == 0) {
        log_params[u.a] = params[u.a];
        log_params[u.a + 1] = logf(params[u.a + 1]);
        log_params[u.a + 2] = 0.0f;
      }
      return;
    }
    const int64_t n = unit_slots(u);
    for (int64_t k = lane; k < n; k += 32) {
      const int64_t i = unit_slot(u, ub, k);
      log_params[i] = is_valid_slot(u, valid, i) ? logf(params[i]) : 0.0f;
    }
  });
}

// Visits the unit's slots: four at a time (`quad(i)`: slots i .. i + 3, i a multiple of 4) where
// they are contiguous and 16-byte aligned, one at a time (`one(i)`) elsewhere. Four consecutive slot
// indices k are contiguous in memory for Categorical / Bernoulli runs and for sum rows with cb a
// multiple of 4. The EM update reads each parameter and its flow twice and writes it once; with one
// float per lane a warp keeps too few loads in flight to reach the memory's rate (3x the floor).
template <bool VEC, class Quad, class One>
__device__ __forceinline__ void for_each_slot(const Unit& u, const int64_t* ub, int lane, Quad&& quad, One&& one) {
  const int64_t n = unit_slots(u);
  int64_t k0 = 0;
  if (VEC && (u.kind != kSumUnit || (u.cb & 3) == 0)) {
    const int64_t nq = n >> 2;
    for (int64_t k = lane; k < nq; k += 32) {
      const int64_t i = unit_slot(u, ub, 4 * k);
      if ((i & 3) == 0) {
        quad(i);
      } else {
        one(i);
        one(i + 1);
        one(i + 2);
        one(i + 3);
      }
    }
    k0 = nq << 2;
  }
  for (int64_t k = k0 + lane; k < n; k += 32) one(unit_slot(u, ub, k));
}

// valid[i .. i + 3] of a sum unit as four flags (all set for other units); i is a multiple of 4 and
// the plan's valid array is 16-byte aligned.
__device__ __forceinline__ uchar4 valid4(const Unit& u, const uint8_t* valid, int64_t i) {
  return u.kind == kSumUnit ? *reinterpret_cast<const uchar4*>(valid + i) : make_uchar4(1, 1, 1, 1);
}

template <bool VEC>
__global__ void em_kernel(const int64_t* units, const int64_t* ub, int64_t num_units, const uint8_t* valid,
                          float* params, const float* flows, double s, double a, double min_std) {
  for_each_unit_warp(num_units, [&](int64_t ui, int lane) {
    const Unit u = load_unit(units, ui);
    if (u.kind == kGaussUnit) {
      if (lane != 0) return;
      const int64_t off = u.a;
      const double s1 = flows[off], s2 = flows[off + 1], n = flows[off + 2];
      if (!(n > 0.0)) return;
      const double mean = params[off], sd = params[off + 1];
      // Centred statistics (d = x - mean); a variance below float32 resolution of the second moment
      // is rounding noise and counts as 0 (as csrc/cpu/em_update.cpp).
      const double m2 = s2 / n, dm = s1 / n;
      const double m = mean + dm, v = (m2 - dm * dm > 1e-6 * m2) ? m2 - dm * dm : 0.0;
      const double mean2 = (1.0 - s) * mean + s * m;
      const double var2 = (1.0 - s) * sd * sd + s * v + s * (1.0 - s) * (m - mean) * (m - mean);
      params[off] = static_cast<float>(mean2);
      params[off + 1] = static_cast<float>(fmax(sqrt(var2), min_std));
      return;
    }
    double total = 0.0;
    int64_t count = 0;
    for_each_slot<VEC>(
        u, ub, lane,
        [&](int64_t i) {
          const float4 f = *reinterpret_cast<const float4*>(flows + i);
          const uchar4 ok = valid4(u, valid, i);
          if (ok.x) total += double(f.x), ++count;
          if (ok.y) total += double(f.y), ++count;
          if (ok.z) total += double(f.z), ++count;
          if (ok.w) total += double(f.w), ++count;
        },
        [&](int64_t i) {
          if (is_valid_slot(u, valid, i)) total += double(flows[i]), ++count;
        });
    total = warp_sum(total);
    count = warp_sum_i(count);
    if (count == 0) return;
    const double denom = total + a;
    if (!(denom > 0.0)) return;
    const double prior = a / static_cast<double>(count);
    auto update = [&](float theta, float f) {
      return static_cast<float>((1.0 - s) * double(theta) + s * (double(f) + prior) / denom);
    };
    for_each_slot<VEC>(
        u, ub, lane,
        [&](int64_t i) {
          const float4 f = *reinterpret_cast<const float4*>(flows + i);
          float4 p = *reinterpret_cast<const float4*>(params + i);
          const uchar4 ok = valid4(u, valid, i);
          if (ok.x) p.x = update(p.x, f.x);
          if (ok.y) p.y = update(p.y, f.y);
          if (ok.z) p.z = update(p.z, f.z);
          if (ok.w) p.w = update(p.w, f.w);
          *reinterpret_cast<float4*>(params + i) = p;
        },
        [&](int64_t i) {
          if (is_valid_slot(u, valid, i)) params[i] = update(params[i], flows[i]);
        });
  });
}

__global__ void grads_kernel(const int64_t* units, const int64_t* ub, int64_t num_units, const uint8_t* valid,
                             const float* params, const float* flows, float* grad) {
  for_each_unit_warp(num_units, [&](int64_t ui, int lane) {
    const Unit u = load_unit(units, ui);
    if (u.kind == kGaussUnit) {
      if (lane != 0) return;
      const int64_t off = u.a;
      const double s1 = flows[off], s2 = flows[off + 1], n = flows[off + 2];
      const double sd = params[off + 1], var = sd * sd;
      grad[off] += static_cast<float>(s1 / var);  // centred statistics
      grad[off + 1] += static_cast<float>(s2 / var - n);
      grad[off + 2] = 0.0f;
      return;
    }
    const int64_t n = unit_slots(u);
    double total = 0.0;
    for (int64_t k = lane; k < n; k += 32) {
      const int64_t i = unit_slot(u, ub, k);
      if (is_valid_slot(u, valid, i)) total += double(flows[i]);
    }
    total = warp_sum(total);
    for (int64_t k = lane; k < n; k += 32) {
      const int64_t i = unit_slot(u, ub, k);
      if (is_valid_slot(u, valid, i))
        grad[i] += static_cast<float>(double(flows[i]) - double(params[i]) * total);
      else
        grad[i] = 0.0f;
    }
  });
}

int grid_for(int64_t items, int64_t per_block) {
  const int64_t g = (items + per_block - 1) / per_block;
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(g, 65535)));
}

void zero_invalid(const CudaPlan& cp, float* out, cudaStream_t stream) {
  if (cp.num_params == 0) return;
  zero_invalid_kernel<<<grid_for(cp.num_params, kThreads), kThreads, 0, stream>>>(cp.param_valid, out,
                                                                                  cp.num_params);
  PCC_CUDA_CHECK_LAUNCH("zero_invalid");
}

int unit_grid(const CudaPlan& cp) { return grid_for(cp.num_units, kWarpsPerBlock); }

}  // namespace

int64_t param_unit_width() { return kUnitWidth; }

// Mirrors cpu::for_each_param_node: every real node of every sum block, every input node.
void build_param_units(const Plan& p, std::vector<int64_t>& units, std::vector<int64_t>& unit_blocks) {
  units.clear();
  unit_blocks.clear();
  for (size_t gi = 0; gi < p.groups.size(); ++gi) {
    const GroupLayout& g = p.groups[gi];
    if (g.num_nodes <= 0) continue;
    if (g.kind == NodeKind::Sum) {
      const int64_t blocks = static_cast<int64_t>(g.block_start.size()) - 1;
      const int64_t cb = g.child_block_size;
      PCC_CHECK(cb >= 1 && cb < (int64_t(1) << 40), "CUDA backend: parameter group ", gi,
                " has child block size ", cb);
      for (int64_t s = 0; s < blocks; ++s) {
        const int64_t q0 = static_cast<int64_t>(unit_blocks.size());
        for (int64_t q = g.block_start[s]; q < g.block_start[s + 1]; ++q) unit_blocks.push_back(g.block_offsets[q]);
        const int64_t q1 = static_cast<int64_t>(unit_blocks.size());
        for (int64_t r = 0; r < g.block_size && s * g.block_size + r < g.num_nodes; ++r)
          units.insert(units.end(), {kSumUnit | (cb << 8), q0, q1, r * cb});
      }
    } else if (g.cat_stride == 1) {  // category-major groups: build_category_major_units
      const int64_t kind = g.dist == Dist::Gaussian ? kGaussUnit : kCatUnit;
      for (int64_t i = 0; i < g.num_nodes; ++i) units.insert(units.end(), {kind, g.base + i * g.width, g.width, 0});
    }
  }
}

void normalize(const CudaPlan& cp, const float* log_params, float* params, cudaStream_t stream) {
  zero_invalid(cp, params, stream);
  category_major_normalize(cp, log_params, params, stream);
  if (cp.num_units == 0) return;
  normalize_kernel<<<unit_grid(cp), kThreads, 0, stream>>>(cp.units, cp.unit_blocks, cp.num_units, cp.param_valid,
                                                          log_params, params);
  PCC_CUDA_CHECK_LAUNCH("normalize");
}

void log_params(const CudaPlan& cp, const float* params, float* log_params, cudaStream_t stream) {
  zero_invalid(cp, log_params, stream);
  category_major_log_params(cp, params, log_params, stream);
  if (cp.num_units == 0) return;
  log_params_kernel<<<unit_grid(cp), kThreads, 0, stream>>>(cp.units, cp.unit_blocks, cp.num_units,
                                                           cp.param_valid, params, log_params);
  PCC_CUDA_CHECK_LAUNCH("log_params");
}

void em_update(const CudaPlan& cp, float* params, const float* param_flows, double step, double pseudocount,
               cudaStream_t stream) {
  PCC_CHECK(step >= 0.0 && step <= 1.0, "em_update: step_size must lie in [0, 1], got ", step);
  PCC_CHECK(pseudocount >= 0.0 && std::isfinite(pseudocount), "em_update: pseudocount must be finite and >= 0, got ",
            pseudocount);
  category_major_em_update(cp, params, param_flows, step, pseudocount, stream);
  if (cp.num_units == 0) return;
  const bool vec = (reinterpret_cast<uintptr_t>(params) & 15u) == 0 && (reinterpret_cast<uintptr_t>(param_flows) & 15u) == 0;
  (vec ? em_kernel<true> : em_kernel<false>)<<<unit_grid(cp), kThreads, 0, stream>>>(
      cp.units, cp.unit_blocks, cp.num_units, cp.param_valid, params, param_flows, step, pseudocount, kGaussianMinStd);
  PCC_CUDA_CHECK_LAUNCH("em_update");
}

void param_grads(const CudaPlan& cp, const float* params, const float* param_flows, float* grad,
                 cudaStream_t stream) {
  category_major_param_grads(cp, params, param_flows, grad, stream);
  if (cp.num_units > 0) {
    grads_kernel<<<unit_grid(cp), kThreads, 0, stream>>>(cp.units, cp.unit_blocks, cp.num_units, cp.param_valid,
                                                        params, param_flows, grad);
    PCC_CUDA_CHECK_LAUNCH("param_grads");
  }
  zero_invalid(cp, grad, stream);  // pad rows of sum blocks carry no parameter either
}

}  // namespace cuda
}  // namespace pcc
