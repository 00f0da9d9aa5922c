// Standalone timing of the CPU sum kernel on one dense layer shaped like HCLT-256's: V sum vectors
// of N nodes, each dense over its own N children, batch B, split into blocks of b x cb. Not built by
// default; build and run with
//   g++ -std=c++17 -O3 -I csrc/include -I csrc benchmarks/cpu_sum_bench.cpp csrc/cpu/*.cpp \
//       csrc/core/tensor.cpp -o /tmp/cpu_sum_bench -pthread
//   /tmp/cpu_sum_bench [V=784] [N=256] [batch=64] [b=32] [cb=32] [threads=0 (all)]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "cpu/ops.h"
#include "pcc/backend.h"

int main(int argc, char** argv) {
  auto arg = [&](int i, int64_t d) { return argc > i ? std::atoll(argv[i]) : d; };
  const int64_t V = arg(1, 784), N = arg(2, 256), batch = arg(3, 64), b = arg(4, 32),
                cb = arg(5, 32);
  pcc::set_num_threads(static_cast<int>(arg(6, 0)));
  if (N % b || N % cb) {
    std::fprintf(stderr, "N must be a multiple of b and cb\n");
    return 2;
  }
  const int64_t fanin = N / cb, blocks_per_vec = N / b;

  // Rows: kOneRow, then V child vectors, then V output vectors.
  const int64_t child0 = 1, out0 = 1 + V * N, rows = 1 + 2 * V * N;
  pcc::SumPartition s;
  s.block_size = b, s.child_block_size = cb, s.fanin = fanin, s.num_blocks = V * blocks_per_vec;
  std::vector<float> params(V * N * N);
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(0.f, 1.f);
  for (auto& w : params) w = u(rng) / N;
  for (int64_t v = 0; v < V; ++v)
    for (int64_t i = 0; i < blocks_per_vec; ++i) {
      s.out_rows.push_back(out0 + v * N + i * b);
      for (int64_t k = 0; k < fanin; ++k) {
        s.child_rows.push_back(child0 + v * N + k * cb);
        s.weight_offsets.push_back(v * N * N + i * b * N + k * b * cb);  // [b, cb] blocks
      }
    }
  std::vector<float> values(rows * batch);
  std::normal_distribution<float> nd(-20.f, 3.f);
  for (int64_t r = child0; r < out0; ++r)
    for (int64_t j = 0; j < batch; ++j) values[r * batch + j] = nd(rng);

  const double flops = 2.0 * V * N * N * batch;
  std::vector<double> times;
  for (int rep = 0; rep < 6; ++rep) {
    auto t0 = std::chrono::steady_clock::now();
    pcc::cpu::sum_forward(s, params.data(), values.data(), batch);
    auto t1 = std::chrono::steady_clock::now();
    if (rep > 0) times.push_back(std::chrono::duration<double>(t1 - t0).count());
  }
  std::sort(times.begin(), times.end());
  const double t = times[times.size() / 2];
  std::printf("sum layer V=%lld N=%lld batch=%lld b=%lld cb=%lld threads=%d: %.2f ms, %.1f GFLOP/s, "
              "%.1f M sum edges x samples /s (check %.4f)\n",
              (long long)V, (long long)N, (long long)batch, (long long)b, (long long)cb,
              pcc::get_num_threads(), t * 1e3, flops / t * 1e-9,
              double(V * N * N) * batch / t * 1e-6, values[out0 * batch]);
  return 0;
}
