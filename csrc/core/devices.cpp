// Which backends this build can run: the CPU always; CUDA when built with nvcc and a device exists.
#include "pcc/backend.h"

namespace pcc {
#ifdef PCC_WITH_CUDA
namespace cuda {
bool device_present();
}
bool cuda_available() { return cuda::device_present(); }
#else
bool cuda_available() { return false; }
#endif
}  // namespace pcc
