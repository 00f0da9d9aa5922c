// Input layer backward: E-step statistics from the input nodes' flows (backend.h, BackwardArgs).
// Categorical / Bernoulli slot k += sum_b f_b [x_b = k], a missing x_b counting f_b p_k instead;
// Gaussian (S1, S2, S0) += (f d, f d^2, f) with d = x - mean (centred on the node's current mean, so
// float32 statistics keep their precision), a missing x_b counting (0, f std^2, f).
// Tied vectors share slots, so nodes are grouped by param_offset and each group is reduced by one
// thread, nodes in a fixed order (layer order), in double, and added to param_flows once: race-free
// and independent of the thread count.
#include <algorithm>
#include <vector>

#include "cpu/ops.h"
#include "cpu/thread_pool.h"

namespace pcc {
namespace cpu {
namespace {

struct NodeRef {
  int64_t offset, group, node;
};

template <class T>
void reduce_slot_group(const Layer& layer, const NodeRef* nodes, int64_t count, const float* params,
                       const TensorRef& x, const TensorRef& missing, const float* flows,
                       float* param_flows, int64_t batch, std::vector<double>& acc) {
  const InputGroup& g0 = layer.inputs[nodes[0].group];
  const int64_t off = nodes[0].offset;
  const int64_t width = param_width(g0.dist, g0.num_cats[nodes[0].node]);
  acc.assign(width, 0.0);
  double f_missing = 0.0;
  const T* xd = static_cast<const T*>(x.data);
  const uint8_t* md = static_cast<const uint8_t*>(missing.data);
  for (int64_t n = 0; n < count; ++n) {
    const InputGroup& g = layer.inputs[nodes[n].group];
    const int64_t i = nodes[n].node, v = g.var[i];
    const float* f = flows + (g.row_start + i) * batch;
    const T* xv = xd + v * x.strides[1];
    const int64_t xs = x.strides[0];
    const uint8_t* mv = md ? md + v * missing.strides[1] : nullptr;
    const int64_t ms = md ? missing.strides[0] : 0;
    if (g.dist == Dist::Gaussian) {
      const double mean = params[g.param_offset[i]];
      double s0 = 0, s1 = 0, s2 = 0;
      for (int64_t b = 0; b < batch; ++b) {
        const double fb = f[b];
        if (fb == 0.0) continue;
        if (mv && mv[b * ms]) {
          f_missing += fb;
          continue;
        }
        const double d = static_cast<double>(xv[b * xs]) - mean;
        s0 += fb;
        s1 += fb * d;
        s2 += fb * d * d;
      }
      acc[0] += s1;
      acc[1] += s2;
      acc[2] += s0;
    } else {
      double* a = acc.data();
      for (int64_t b = 0; b < batch; ++b) {
        const float fb = f[b];
        if (fb == 0.0f) continue;
        if (mv && mv[b * ms]) {
          f_missing += fb;
          continue;
        }
        a[static_cast<int64_t>(xv[b * xs])] += fb;
      }
    }
  }
  const float* p = params + off;
  const int64_t stride = g0.cat_stride;  // tied nodes share one parameter group, so one stride
  if (f_missing != 0.0) {
    if (g0.dist == Dist::Gaussian) {
      const double std = p[1];
      acc[1] += f_missing * std * std;
      acc[2] += f_missing;
    } else {
      for (int64_t k = 0; k < width; ++k) acc[k] += f_missing * double(p[k * stride]);
    }
  }
  for (int64_t k = 0; k < width; ++k) param_flows[off + k * stride] += static_cast<float>(acc[k]);
}

}  // namespace

void input_backward(const Layer& layer, const float* params, const TensorRef& x,
                    const TensorRef& missing, const float* flows, float* param_flows, int64_t batch) {
  if (batch == 0) return;
  std::vector<NodeRef> nodes;
  for (size_t gi = 0; gi < layer.inputs.size(); ++gi)
    for (int64_t i = 0; i < layer.inputs[gi].num_nodes; ++i)
      nodes.push_back({layer.inputs[gi].param_offset[i], static_cast<int64_t>(gi), i});
  if (nodes.empty()) return;
  // Untied layers list strictly increasing offsets already; otherwise bring tied nodes together.
  bool increasing = true;
  for (size_t n = 1; n < nodes.size() && increasing; ++n) increasing = nodes[n].offset > nodes[n - 1].offset;
  if (!increasing)
    std::stable_sort(nodes.begin(), nodes.end(),
                     [](const NodeRef& a, const NodeRef& b) { return a.offset < b.offset; });
  std::vector<int64_t> start;
  for (size_t n = 0; n < nodes.size(); ++n)
    if (n == 0 || nodes[n].offset != nodes[n - 1].offset) start.push_back(static_cast<int64_t>(n));
  start.push_back(static_cast<int64_t>(nodes.size()));
  const int64_t ngroups = static_cast<int64_t>(start.size()) - 1;
  const int64_t grain = std::max<int64_t>(1, 16384 / batch);
  with_dtype(x.dtype, [&](auto tag) {
    using T = decltype(tag);
    parallel_for(
        ngroups,
        [&](int64_t begin, int64_t end) {
          std::vector<double> acc;
          for (int64_t gi = begin; gi < end; ++gi)
            reduce_slot_group<T>(layer, nodes.data() + start[gi], start[gi + 1] - start[gi], params, x,
                                 missing, flows, param_flows, batch, acc);
        },
        grain);
  });
}

}  // namespace cpu
}  // namespace pcc
