// The CPU backend's persistent thread pool. parallel_for splits [0, n) statically into one contiguous
// chunk per thread, so which thread computes which output never depends on scheduling; ops write each
// output from exactly one chunk and never reduce across chunks, so results are deterministic.
#pragma once
#include <cstdint>
#include <functional>

namespace pcc {
namespace cpu {

using RangeFn = std::function<void(int64_t begin, int64_t end)>;

// Calls fn(begin, end) over disjoint chunks covering [0, n), at most one chunk per thread and none
// smaller than `grain` items (so tiny ranges stay on the calling thread). Runs serially when called
// from inside a pool task or while another caller holds the pool. Rethrows the exception of the
// lowest failing chunk.
void parallel_for(int64_t n, const RangeFn& fn, int64_t grain = 1);

// Threads parallel_for uses (including the calling thread).
int pool_threads();

}  // namespace cpu
}  // namespace pcc
