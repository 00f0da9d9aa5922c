// Backends run a Plan. The caller owns every buffer (the core allocates nothing on the hot path).
#pragma once
#include <cstdint>

#include "pcc/plan.h"
#include "pcc/tensor.h"

namespace pcc {

struct ForwardArgs {
  const Plan* plan = nullptr;
  const float* params = nullptr;  // [plan.params.size()]
  TensorRef x;                    // [batch, num_vars]; any DType; discrete entries hold integers
  TensorRef missing;              // [batch, num_vars] Bool/UInt8, or data == nullptr for none
  float* values = nullptr;        // workspace [plan.num_rows, batch]
  float* out = nullptr;           // [batch, plan.num_root_nodes]
  int64_t batch = 0;
};

// Validates x (shape, integer and in-range values for discrete variables, no NaN where observed)
// and throws pcc::Error naming the first offending entry.
void validate_inputs(const ForwardArgs& a);

void cpu_forward(const ForwardArgs& a);

void set_num_threads(int n);  // CPU backend; n <= 0 means hardware concurrency
int get_num_threads();

bool cuda_available();  // a CUDA device is usable by this build

}  // namespace pcc
