// CUDA device discovery for the CUDA backend: is a usable device present? Built whenever nvcc is
// found; on a machine without a driver cudaGetDeviceCount fails and the answer is simply no.
#include <cuda_runtime.h>

namespace pcc {
namespace cuda {

bool device_present() {
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver" error so later probes start clean
    return false;
  }
  return count > 0;
}

}  // namespace cuda
}  // namespace pcc
