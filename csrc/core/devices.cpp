// Which backends this build can run: the CPU always; CUDA when built with nvcc and a device exists.
// In builds without CUDA the entry points of pcc/cuda.h are defined here and throw pcc::Error.
#include <atomic>

#include "pcc/backend.h"
#include "pcc/cuda.h"
#include "pcc/error.h"

namespace pcc {
namespace {
std::atomic<bool> g_cuda_graphs{true};
}  // namespace
void cuda_set_graphs(bool on) { g_cuda_graphs = on; }
bool cuda_graphs() { return g_cuda_graphs; }

#ifdef PCC_WITH_CUDA
namespace cuda {
bool device_present();
std::shared_ptr<CudaPlan> upload_plan(const Plan& p, void* device_buffer, int device, void* stream);
}  // namespace cuda
bool cuda_available() { return cuda::device_present(); }
std::shared_ptr<CudaPlan> cuda_upload_plan(const Plan& p, void* device_buffer, int device, void* stream) {
  validate_plan(p);  // a plan from a file or a caller: never index out of bounds on the device
  return cuda::upload_plan(p, device_buffer, device, stream);
}
#else
bool cuda_available() { return false; }

namespace {
[[noreturn]] void no_cuda() { raise("pcc was built without CUDA"); }
}  // namespace

int64_t cuda_plan_bytes(const Plan&) { no_cuda(); }
std::shared_ptr<CudaPlan> cuda_upload_plan(const Plan&, void*, int, void*) { no_cuda(); }
void cuda_forward(const CudaPlan&, const ForwardArgs&, Precision, void*) { no_cuda(); }
void cuda_backward(const CudaPlan&, const BackwardArgs&, Precision, void*) { no_cuda(); }
void cuda_normalize(const CudaPlan&, const float*, float*, void*) { no_cuda(); }
void cuda_log_params(const CudaPlan&, const float*, float*, void*) { no_cuda(); }
void cuda_em_update(const CudaPlan&, float*, const float*, double, double, void*) { no_cuda(); }
void cuda_param_grads(const CudaPlan&, const float*, const float*, float*, void*) { no_cuda(); }
CudaGraphStats cuda_graph_stats(const CudaPlan&, bool) { no_cuda(); }
#endif
}  // namespace pcc
