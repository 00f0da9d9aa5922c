// Input layer forward: log-probabilities of Categorical, Bernoulli and Gaussian inputs. Missing
// entries give 0 (= log 1, marginalised out) and are never read, so they may hold anything.
#include <cmath>

#include "cpu/ops.h"
#include "cpu/thread_pool.h"

namespace pcc {
namespace cpu {
namespace {

constexpr double kHalfLog2Pi = 0.91893853320467274178;

// out[b] <- log p(x[b, var]) of discrete node i of g, 0 where missing. xv: the variable's column.
template <class T>
void discrete_row(const InputGroup& g, int64_t i, const float* params, const T* xv, int64_t xs,
                  const uint8_t* mv, int64_t ms, float* out, int64_t batch) {
  const float* p = params + g.param_offset[i];
  for (int64_t b = 0; b < batch; ++b) {
    if (mv && mv[b * ms]) {
      out[b] = 0.0f;
    } else {
      out[b] = std::log(p[static_cast<int64_t>(xv[b * xs]) * g.cat_stride]);
    }
  }
}

template <class T>
void input_nodes(const InputGroup& g, const float* params, const TensorRef& x,
                 const TensorRef& missing, float* values, int64_t batch, int64_t begin,
                 int64_t end) {
  const T* xd = static_cast<const T*>(x.data);
  const uint8_t* md = static_cast<const uint8_t*>(missing.data);
  for (int64_t i = begin; i < end; ++i) {
    const int64_t v = g.var[i];
    const T* xv = xd + v * x.strides[1];
    const int64_t xs = x.strides[0];
    const uint8_t* mv = md ? md + v * missing.strides[1] : nullptr;
    const int64_t ms = md ? missing.strides[0] : 0;
    const float* p = params + g.param_offset[i];
    float* out = values + (g.row_start + i) * batch;
    switch (g.dist) {
      case Dist::Categorical:
      case Dist::Bernoulli:  // two slots (P(x=0), P(x=1)): a two-category categorical
        discrete_row(g, i, params, xv, xs, mv, ms, out, batch);
        break;
      case Dist::Gaussian: {
        const double mean = p[0], inv_std = 1.0 / double(p[1]);
        const double c = -std::log(double(p[1])) - kHalfLog2Pi;
        for (int64_t b = 0; b < batch; ++b) {
          if (mv && mv[b * ms]) {
            out[b] = 0.0f;
          } else {
            const double z = (double(xv[b * xs]) - mean) * inv_std;
            out[b] = static_cast<float>(c - 0.5 * z * z);
          }
        }
        break;
      }
    }
  }
}

}  // namespace

void discrete_log_probs(const InputGroup& g, int64_t i, const float* params, const TensorRef& x,
                        const TensorRef& missing, float* out, int64_t batch) {
  with_dtype(x.dtype, [&](auto tag) {
    using T = decltype(tag);
    const int64_t v = g.var[i];
    const uint8_t* md = static_cast<const uint8_t*>(missing.data);
    discrete_row(g, i, params, static_cast<const T*>(x.data) + v * x.strides[1], x.strides[0],
                 md ? md + v * missing.strides[1] : nullptr, md ? missing.strides[0] : 0, out, batch);
  });
}

void input_forward(const InputGroup& g, const float* params, const TensorRef& x,
                   const TensorRef& missing, float* values, int64_t batch) {
  if (g.fused) return;  // its readers compute it
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(batch, 1));
  with_dtype(x.dtype, [&](auto tag) {
    using T = decltype(tag);
    parallel_for(
        g.num_nodes,
        [&](int64_t begin, int64_t end) {
          input_nodes<T>(g, params, x, missing, values, batch, begin, end);
        },
        grain);
  });
}

}  // namespace cpu
}  // namespace pcc
