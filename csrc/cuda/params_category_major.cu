// normalize, log_params, the EM update and parameter gradients of category-major Categorical groups
// (plan.h: slot k of node i at base + k * n + i), with the math of csrc/cpu/normalize.cpp,
// em_update.cpp and param_grads.cpp for an input node (every slot of a node counts; double where
// they use double).
//
// A node's slots are n floats apart, so a warp per node (params.cu) would read a sector per slot.
// Here a unit is kNodes consecutive nodes and one CTA takes it: thread t serves node t % kNodes and
// categories t / kNodes + m * kCatLanes, so each warp reads kNodes contiguous floats (one 32-byte
// sector) of four categories per load. Per-node totals (max, sums) are reduced over the CTA. Units
// are {first slot, categories, stride, nodes}.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "cuda/cuda_check.cuh"
#include "cuda/device_plan.cuh"
#include "cuda/ops.cuh"
#include "cuda/reduce.cuh"
#include "pcc/error.h"

namespace pcc {
namespace cuda {
namespace {

constexpr int64_t kUnitWidth = 4;
constexpr int kNodes = 8;  // a 32-byte sector of one category
constexpr int kThreads = 512;
constexpr int kWarps = kThreads / 32;
constexpr int kCatLanes = kThreads / kNodes;  // categories a CTA reads per step
constexpr int64_t kMaxGrid = 65535;

struct Unit {
  int64_t first, cats, stride;
  int nodes;
};

// Per-CTA view: this thread's node j, its first category q, whether node j is real.
struct Lanes {
  int j, q;
  bool mine;
};

__device__ __forceinline__ Unit load_unit(const int64_t* units, int64_t u) {
  const int64_t* r = units + u * kUnitWidth;
  return Unit{r[0], r[1], r[2], static_cast<int>(r[3])};
}

// Calls body(lanes, unit) for each unit this CTA takes (block-uniform loop: body may sync).
template <class Body>
__device__ __forceinline__ void for_each_unit(const int64_t* units, int64_t num_units, Body&& body) {
  const Lanes l{static_cast<int>(threadIdx.x % kNodes), static_cast<int>(threadIdx.x / kNodes), false};
  for (int64_t ui = blockIdx.x; ui < num_units; ui += gridDim.x) {
    const Unit u = load_unit(units, ui);
    Lanes m = l;
    m.mine = l.j < u.nodes;
    body(m, u);
  }
}

// Calls f(slot) for each slot of this thread's node and categories (none where the node is not real).
template <class F>
__device__ __forceinline__ void for_each_slot(const Lanes& l, const Unit& u, F&& f) {
  if (!l.mine) return;
  const int64_t node = u.first + l.j;
#pragma unroll 4
  for (int64_t k = l.q; k < u.cats; k += kCatLanes) f(node + k * u.stride);
}

// Combines v over the threads of each node (op: associative), returning node j's total to all its
// threads. Every thread of the CTA calls it; partial and total are shared scratch.
template <class Op>
__device__ double across_categories(double v, Op op, double (*partial)[kNodes], double* total) {
  v = op(v, __shfl_xor_sync(kFullMask, v, 8));  // lanes j, j + 8, j + 16, j + 24 serve node j
  v = op(v, __shfl_xor_sync(kFullMask, v, 16));
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  __syncthreads();  // the previous call's total has been read
  if (lane < kNodes) partial[warp][lane] = v;
  __syncthreads();
  if (threadIdx.x < kNodes) {
    double t = partial[0][threadIdx.x];
    for (int w = 1; w < kWarps; ++w) t = op(t, partial[w][threadIdx.x]);
    total[threadIdx.x] = t;
  }
  __syncthreads();
  return total[threadIdx.x % kNodes];
}

struct Add {
  __device__ double operator()(double a, double b) const { return a + b; }
};
struct Max {  // std::max order, so NaN never replaces the running max (as the CPU's softmax)
  __device__ double operator()(double a, double b) const { return a < b ? b : a; }
};

__global__ void __launch_bounds__(kThreads) normalize_kernel(const int64_t* units, int64_t num_units,
                                                             const float* __restrict__ in, float* __restrict__ out) {
  __shared__ double partial[kWarps][kNodes];
  __shared__ double total[kNodes];
  for_each_unit(units, num_units, [&](const Lanes& l, const Unit& u) {
    float mx = -INFINITY;
    for_each_slot(l, u, [&](int64_t i) { mx = max_like_std(mx, in[i]); });
    mx = static_cast<float>(across_categories(mx, Max(), partial, total));
    const bool none = !(mx > -INFINITY);  // all -inf: zeros (NaN stays NaN)
    double sum = 0.0;
    if (!none) for_each_slot(l, u, [&](int64_t i) { sum += exp(double(in[i]) - double(mx)); });
    sum = across_categories(sum, Add(), partial, total);  // every thread: it syncs the CTA
    if (none)
      for_each_slot(l, u, [&](int64_t i) { out[i] = mx == mx ? 0.0f : mx; });
    else
      for_each_slot(l, u, [&](int64_t i) { out[i] = static_cast<float>(exp(double(in[i]) - double(mx)) / sum); });
  });
}

__global__ void __launch_bounds__(kThreads) log_params_kernel(const int64_t* units, int64_t num_units,
                                                              const float* __restrict__ in, float* __restrict__ out) {
  for_each_unit(units, num_units, [&](const Lanes& l, const Unit& u) {
    for_each_slot(l, u, [&](int64_t i) { out[i] = logf(in[i]); });
  });
}

// Calls body(lanes, unit, F) for each unit this CTA takes, F = the sum of node j's flows (double).
template <class Body>
__device__ __forceinline__ void for_each_unit_flow_total(const int64_t* units, int64_t num_units,
                                                         const float* __restrict__ flows, Body&& body) {
  __shared__ double partial[kWarps][kNodes];
  __shared__ double total[kNodes];
  for_each_unit(units, num_units, [&](const Lanes& l, const Unit& u) {
    double sum = 0.0;
    for_each_slot(l, u, [&](int64_t i) { sum += double(flows[i]); });
    body(l, u, across_categories(sum, Add(), partial, total));
  });
}

// theta <- (1 - s) theta + s (F + a/K) / (sum F + a); a node with sum F + a = 0 keeps theta.
__global__ void __launch_bounds__(kThreads) em_kernel(const int64_t* units, int64_t num_units, float* params,
                                                      const float* __restrict__ flows, double s, double a) {
  for_each_unit_flow_total(units, num_units, flows, [&](const Lanes& l, const Unit& u, double sum) {
    const double denom = sum + a;
    if (!(denom > 0.0)) return;  // this node keeps theta (no sync follows in the unit)
    const double prior = a / static_cast<double>(u.cats);
    for_each_slot(l, u, [&](int64_t i) {
      params[i] = static_cast<float>((1.0 - s) * double(params[i]) + s * (double(flows[i]) + prior) / denom);
    });
  });
}

// grad += G_k - p_k sum_j G_j.
__global__ void __launch_bounds__(kThreads) grads_kernel(const int64_t* units, int64_t num_units,
                                                         const float* __restrict__ params,
                                                         const float* __restrict__ flows, float* grad) {
  for_each_unit_flow_total(units, num_units, flows, [&](const Lanes& l, const Unit& u, double sum) {
    for_each_slot(l, u, [&](int64_t i) {
      grad[i] += static_cast<float>(double(flows[i]) - double(params[i]) * sum);
    });
  });
}

unsigned grid(const CudaPlan& cp) { return static_cast<unsigned>(std::min<int64_t>(cp.num_cm_units, kMaxGrid)); }

}  // namespace

int64_t category_major_unit_width() { return kUnitWidth; }

void build_category_major_units(const Plan& p, std::vector<int64_t>& units) {
  units.clear();
  for (const GroupLayout& g : p.groups) {
    if (g.kind != NodeKind::Input || g.num_nodes <= 0 || g.cat_stride == 1) continue;
    PCC_CHECK(g.dist == Dist::Categorical && g.cat_stride == g.num_nodes,
              "CUDA backend: category-major parameters of a ", to_string(g.dist), " group with stride ",
              g.cat_stride, " for ", g.num_nodes, " nodes");
    for (int64_t i = 0; i < g.num_nodes; i += kNodes)
      units.insert(units.end(), {node_slot(g, i), g.width, g.cat_stride, std::min<int64_t>(kNodes, g.num_nodes - i)});
  }
}

void category_major_normalize(const CudaPlan& cp, const float* log_params, float* params, cudaStream_t stream) {
  if (cp.num_cm_units == 0) return;
  normalize_kernel<<<grid(cp), kThreads, 0, stream>>>(cp.cm_units, cp.num_cm_units, log_params, params);
  PCC_CUDA_CHECK_LAUNCH("normalize (category-major)");
}

void category_major_log_params(const CudaPlan& cp, const float* params, float* log_params, cudaStream_t stream) {
  if (cp.num_cm_units == 0) return;
  log_params_kernel<<<grid(cp), kThreads, 0, stream>>>(cp.cm_units, cp.num_cm_units, params, log_params);
  PCC_CUDA_CHECK_LAUNCH("log_params (category-major)");
}

void category_major_em_update(const CudaPlan& cp, float* params, const float* param_flows, double step,
                              double pseudocount, cudaStream_t stream) {
  if (cp.num_cm_units == 0) return;
  em_kernel<<<grid(cp), kThreads, 0, stream>>>(cp.cm_units, cp.num_cm_units, params, param_flows, step, pseudocount);
  PCC_CUDA_CHECK_LAUNCH("em_update (category-major)");
}

void category_major_param_grads(const CudaPlan& cp, const float* params, const float* param_flows, float* grad,
                                cudaStream_t stream) {
  if (cp.num_cm_units == 0) return;
  grads_kernel<<<grid(cp), kThreads, 0, stream>>>(cp.cm_units, cp.num_cm_units, params, param_flows, grad);
  PCC_CUDA_CHECK_LAUNCH("param_grads (category-major)");
}

}  // namespace cuda
}  // namespace pcc
