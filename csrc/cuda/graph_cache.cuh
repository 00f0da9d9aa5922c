// CUDA graphs of the forward and backward passes, so a circuit of many small layers (HMMs, HCLTs'
// input groups) does not pay a kernel launch from the host per layer (pcc/cuda.h: cuda_set_graphs).
//
// A pass is keyed by everything its host-side launch decisions read (batch, buffer addresses, dtype,
// precision): the same key launches the same kernels with the same arguments. The first call with a
// key runs eagerly (it also does one-time setup such as shared-memory opt-ins), the second captures
// the launches into a graph on a private stream and instantiates it, and later calls replay it with
// one cudaGraphLaunch on the caller's stream. A few keys are kept (a training loop alternates between
// two input buffers); the least recently used one goes.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <functional>
#include <mutex>
#include <vector>

#include "pcc/cuda.h"

namespace pcc {
namespace cuda {

class GraphCache {
 public:
  using Key = std::vector<int64_t>;
  GraphCache() = default;
  ~GraphCache();
  GraphCache(const GraphCache&) = delete;
  GraphCache& operator=(const GraphCache&) = delete;

  // Runs launches(s) for `key` on `stream`: eagerly, or captured and replayed as described above.
  void run(const Key& key, cudaStream_t stream, const std::function<void(cudaStream_t)>& launches);
  // Calls so far: run eagerly, captured (then replayed once), replayed.
  CudaGraphStats stats();

 private:
  struct Entry {
    Key key;
    cudaGraphExec_t exec = nullptr;  // null: seen once, not captured yet
    bool eager = false;              // capture failed: always run eagerly
    uint64_t used = 0;
  };
  static constexpr size_t kMaxEntries = 4;
  cudaGraphExec_t capture(const std::function<void(cudaStream_t)>& launches);

  std::mutex mu_;
  std::vector<Entry> entries_;
  cudaStream_t capture_stream_ = nullptr;
  uint64_t clock_ = 0;
  CudaGraphStats stats_;
};

}  // namespace cuda
}  // namespace pcc
