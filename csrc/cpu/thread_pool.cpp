// A small persistent std::thread pool (workers sleep on a condition variable between jobs) plus
// pcc::set_num_threads / get_num_threads from backend.h.
#include "cpu/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "pcc/backend.h"

namespace pcc {
namespace cpu {
namespace {

int default_threads() {
  unsigned h = std::thread::hardware_concurrency();
  return h == 0 ? 1 : static_cast<int>(h);
}

thread_local bool t_inside_task = false;  // nested parallel_for runs serially instead of deadlocking

class Pool {
 public:
  explicit Pool(int threads) {
    for (int i = 1; i < threads; ++i) workers_.emplace_back([this, i] { loop(i); });
  }
  ~Pool() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_ = true;
    }
    wake_.notify_all();
    for (auto& t : workers_) t.join();
  }
  int threads() const { return static_cast<int>(workers_.size()) + 1; }

  // Runs chunk 0 on the caller and chunks 1 .. chunks-1 on workers 1 .. chunks-1.
  void run(int64_t n, int chunks, const RangeFn& fn) {
    errors_.assign(chunks, nullptr);
    {
      std::lock_guard<std::mutex> lk(mu_);
      fn_ = &fn;
      n_ = n;
      chunks_ = chunks;
      pending_ = chunks - 1;
      ++generation_;
    }
    wake_.notify_all();
    run_chunk(0);
    {
      std::unique_lock<std::mutex> lk(mu_);
      done_.wait(lk, [this] { return pending_ == 0; });
      fn_ = nullptr;
    }
    for (auto& e : errors_)
      if (e) std::rethrow_exception(e);
  }

 private:
  void run_chunk(int i) {
    int64_t begin = n_ * i / chunks_, end = n_ * (i + 1) / chunks_;
    t_inside_task = true;
    try {
      if (begin < end) (*fn_)(begin, end);
    } catch (...) {
      errors_[i] = std::current_exception();
    }
    t_inside_task = false;
  }

  void loop(int index) {
    uint64_t seen = 0;
    for (;;) {
      {
        std::unique_lock<std::mutex> lk(mu_);
        wake_.wait(lk, [&] { return stop_ || generation_ != seen; });
        if (stop_) return;
        seen = generation_;
        if (index >= chunks_) continue;  // this job has fewer chunks than threads
      }
      run_chunk(index);
      {
        std::lock_guard<std::mutex> lk(mu_);
        if (--pending_ == 0) done_.notify_one();
      }
    }
  }

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable wake_, done_;
  bool stop_ = false;
  uint64_t generation_ = 0;
  const RangeFn* fn_ = nullptr;
  int64_t n_ = 0;
  int chunks_ = 0, pending_ = 0;
  std::vector<std::exception_ptr> errors_;
};

std::mutex g_pool_mu;  // held by the one caller using the pool, and by set_num_threads
std::unique_ptr<Pool> g_pool;
std::atomic<int> g_threads{0};  // 0 = not set yet: hardware concurrency

int wanted_threads() {
  int t = g_threads.load();
  return t > 0 ? t : default_threads();
}

}  // namespace

int pool_threads() { return wanted_threads(); }

void parallel_for(int64_t n, const RangeFn& fn, int64_t grain) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  int64_t max_chunks = (n + grain - 1) / grain;
  int chunks = static_cast<int>(std::min<int64_t>(wanted_threads(), max_chunks));
  if (chunks <= 1 || t_inside_task) {
    fn(0, n);
    return;
  }
  std::unique_lock<std::mutex> lk(g_pool_mu, std::try_to_lock);
  if (!lk.owns_lock()) {  // another thread is using the pool: do the work here rather than wait
    fn(0, n);
    return;
  }
  int threads = wanted_threads();
  if (!g_pool || g_pool->threads() != threads) {
    g_pool.reset();
    g_pool = std::make_unique<Pool>(threads);
  }
  chunks = std::min(chunks, threads);
  g_pool->run(n, chunks, fn);
}

}  // namespace cpu

void set_num_threads(int n) {
  std::lock_guard<std::mutex> lk(cpu::g_pool_mu);
  cpu::g_threads.store(n > 0 ? n : cpu::default_threads());
}

int get_num_threads() { return cpu::wanted_threads(); }

}  // namespace pcc
