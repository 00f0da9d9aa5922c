// GraphCache (graph_cache.cuh): capture on a private stream, replay on the caller's.
#include "cuda/graph_cache.cuh"

#include <algorithm>

#include "cuda/cuda_check.cuh"

namespace pcc {
namespace cuda {

GraphCache::~GraphCache() {
  // No checks: this may run at interpreter exit, after the CUDA context is gone.
  for (Entry& e : entries_)
    if (e.exec != nullptr) cudaGraphExecDestroy(e.exec);
  if (capture_stream_ != nullptr) cudaStreamDestroy(capture_stream_);
}

cudaGraphExec_t GraphCache::capture(const std::function<void(cudaStream_t)>& launches) {
  // The caller's stream may be the legacy default stream, which cannot capture: capture on our own
  // (nothing runs there), replay on the caller's.
  if (capture_stream_ == nullptr) PCC_CUDA_CHECK(cudaStreamCreateWithFlags(&capture_stream_, cudaStreamNonBlocking));
  // Thread-local mode: other threads' CUDA calls (a data loader's) stay legal while we capture.
  PCC_CUDA_CHECK(cudaStreamBeginCapture(capture_stream_, cudaStreamCaptureModeThreadLocal));
  cudaGraph_t graph = nullptr;
  try {
    launches(capture_stream_);
  } catch (...) {
    cudaStreamEndCapture(capture_stream_, &graph);  // leave the stream usable, drop what was captured
    if (graph != nullptr) cudaGraphDestroy(graph);
    (void)cudaGetLastError();
    throw;
  }
  PCC_CUDA_CHECK(cudaStreamEndCapture(capture_stream_, &graph));
  cudaGraphExec_t exec = nullptr;
  const cudaError_t err = cudaGraphInstantiate(&exec, graph, 0);
  cudaGraphDestroy(graph);
  PCC_CUDA_CHECK(err);
  return exec;
}

void GraphCache::run(const Key& key, cudaStream_t stream, const std::function<void(cudaStream_t)>& launches) {
  std::lock_guard<std::mutex> lock(mu_);
  ++clock_;
  auto it = std::find_if(entries_.begin(), entries_.end(), [&](const Entry& e) { return e.key == key; });
  if (it == entries_.end()) {  // first sighting: eager, remembered
    if (entries_.size() == kMaxEntries) {
      auto lru = std::min_element(entries_.begin(), entries_.end(),
                                  [](const Entry& a, const Entry& b) { return a.used < b.used; });
      if (lru->exec != nullptr) cudaGraphExecDestroy(lru->exec);
      entries_.erase(lru);
    }
    entries_.push_back(Entry{key, nullptr, false, clock_});
    ++stats_.eager;
    launches(stream);
    return;
  }
  it->used = clock_;
  if (it->exec == nullptr && !it->eager) {
    try {
      it->exec = capture(launches);
      ++stats_.captured;
    } catch (const Error&) {
      // Capture refused (the caller is capturing a graph itself, say) or a launch check failed:
      // this key runs eagerly from now on, which raises the launch's error again if there was one.
      (void)cudaGetLastError();
      it->eager = true;
    }
  }
  if (it->exec == nullptr) {
    ++stats_.eager;
    launches(stream);
    return;
  }
  PCC_CUDA_CHECK(cudaGraphLaunch(it->exec, stream));
  ++stats_.replayed;
}

CudaGraphStats GraphCache::stats() {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

}  // namespace cuda
}  // namespace pcc
