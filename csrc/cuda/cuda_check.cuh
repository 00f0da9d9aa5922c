// Every CUDA call goes through PCC_CUDA_CHECK, and every launch is followed by
// PCC_CUDA_CHECK_LAUNCH("kernel name"): failures throw pcc::Error with file:line, the kernel or call,
// and CUDA's error string.
#pragma once
#include <cuda_runtime.h>

#include "pcc/error.h"

#define PCC_CUDA_CHECK(call)                                                                       \
  do {                                                                                             \
    const cudaError_t pcc_err_ = (call);                                                           \
    if (pcc_err_ != cudaSuccess) {                                                                 \
      ::pcc::raise("CUDA error at ", __FILE__, ":", __LINE__, " in ", #call, ": ",                 \
                   cudaGetErrorString(pcc_err_));                                                  \
    }                                                                                              \
  } while (0)

#define PCC_CUDA_CHECK_LAUNCH(kernel_name)                                                         \
  do {                                                                                             \
    const cudaError_t pcc_err_ = cudaGetLastError();                                               \
    if (pcc_err_ != cudaSuccess) {                                                                 \
      ::pcc::raise("CUDA kernel ", kernel_name, " failed to launch at ", __FILE__, ":", __LINE__,  \
                   ": ", cudaGetErrorString(pcc_err_));                                            \
    }                                                                                              \
  } while (0)
