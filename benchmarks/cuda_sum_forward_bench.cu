// Standalone GPU check and timing of the CUDA sum forward (csrc/cuda/sum_forward.cu). Not built by
// default; build and run on the GPU machine with
//   nvcc -std=c++17 -arch=sm_90 -O3 -I csrc/include -I csrc benchmarks/cuda_sum_forward_bench.cu \
//       csrc/cuda/sum_forward.cu -o /tmp/sf_bench && /tmp/sf_bench
//   /tmp/sf_bench --quick     (correctness cases only, small: for compute-sanitizer memcheck/racecheck)
//   /tmp/sf_bench --only PD   (only the timing layers whose name contains PD: for ncu)
// Checks: a suite of partitions covering every kernel path (tensor-core TF32/BF16 with shared child
// lists, distinct child lists, b > 128 slices, K split over a cluster (small grids with long K),
// child lists cached in shared memory or read from global (row tile x fanin > 256 entries), 16-, 8-
// and 4-byte weight copies (weight blocks at every alignment), 16-byte and 4-byte child-value copies
// (batch % 4); SIMT rows 1..8; padding child blocks; batch tails; -inf children; rows whose sum
// underflows under the shared shift and take the exact fallback; all zero-weight rows) against a
// float64 CPU reference, outputs poisoned with NaN first, guard rows between output blocks and the
// child rows verified untouched. Timing, batch 512, median of 20 after warm-up, against the H100
// ceilings of BENCHMARKS.md: HMM-2048-like (one dense 2048 x 2048 matrix as 64 blocks of 32 x 32
// reading one child list of 64 blocks), PD-64-like (230 blocks of 32 x 32, fanin 8, pairs share a
// list: 64-row tiles), PD-256-like (920 blocks of 32 x 32, fanin 32, runs of 8 share
// a list), HCLT-256-like (1072 blocks, fanin 8, runs of 8), with 16-byte aligned weight blocks (and
// HMM once unaligned, as a plan's parameter layout may leave them), the HCLT layer docs/cuda.md
// quotes, an HCLT-512-like layer, and a sparse b = 1 layer (SIMT path).
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "cuda/sum_forward.cuh"

using pcc::Precision;

#define CK(call)                                                                                \
  do {                                                                                          \
    cudaError_t e_ = (call);                                                                    \
    if (e_ != cudaSuccess) {                                                                    \
      std::fprintf(stderr, "CUDA error %s at %s:%d: %s\n", #call, __FILE__, __LINE__,          \
                   cudaGetErrorString(e_));                                                     \
      std::exit(1);                                                                             \
    }                                                                                           \
  } while (0)

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
constexpr float kGuard = 12345.0f;

struct Case {
  std::string name;
  int b, cb, fanin;
  int64_t nb, batch;
  int share = 1;            // consecutive blocks sharing one child list
  double pad_prob = 0.0;    // child block is padding (-1)
  double ninf_prob = 0.02;  // a child value is -inf
  double wzero_prob = 0.2;  // a weight is 0
  bool underflow = false;   // rows weighting only child block 1, which sits 200 below block 0
  bool zero_rows = false;   // last rows of each block have all-zero weights (vector overhang)
  int guard = 1;            // guard rows after each output block
  int64_t child_pool = 0;   // distinct child blocks to pick from (0: nb / share * fanin)
  int param_pad = 7;        // floats before the first weight block (7: unaligned, 8: 16-byte aligned)
  bool misalign = false;    // 0-3 floats between weight blocks: every alignment in one layer
  int64_t sample = 0;       // blocks to check (0: all in the correctness suite, 16 when timing)
};

struct Host {
  int64_t rows = 0, child0 = 0, nchild_blocks = 0;
  std::vector<float> values, params;
  std::vector<int32_t> out_rows, child_rows;
  std::vector<int64_t> woff;
};

Host build(const Case& c, std::mt19937_64& rng) {
  Host h;
  std::uniform_real_distribution<double> U(0.0, 1.0);
  std::normal_distribution<double> N(0.0, 1.0);
  const int64_t groups = (c.nb + c.share - 1) / c.share;
  h.nchild_blocks = c.child_pool > 0 ? c.child_pool : groups * c.fanin;
  h.child0 = 2;
  const int64_t out0 = h.child0 + h.nchild_blocks * c.cb;
  h.rows = out0 + c.nb * (c.b + c.guard);
  h.values.assign(static_cast<size_t>(h.rows * c.batch), kGuard);
  // Children: a per-column level plus per-row noise, some -inf; in underflow cases child block 2q+1
  // lies 200 below block 2q.
  std::vector<double> level(c.batch);
  for (auto& l : level) l = -50.0 - 250.0 * U(rng);
  for (int64_t r = 0; r < h.nchild_blocks * c.cb; ++r) {
    const int64_t blk = r / c.cb;
    const double shift = c.underflow && (blk & 1) ? -200.0 : 0.0;
    for (int64_t t = 0; t < c.batch; ++t) {
      float v = static_cast<float>(level[t] + 5.0 * N(rng) + shift);
      if (U(rng) < c.ninf_prob) v = kNegInf;
      h.values[(h.child0 + r) * c.batch + t] = v;
    }
  }
  if (c.underflow && c.batch > 3) {  // column 3: every child -inf
    for (int64_t r = 0; r < h.nchild_blocks * c.cb; ++r) h.values[(h.child0 + r) * c.batch + 3] = kNegInf;
  }
  h.out_rows.resize(c.nb);
  h.child_rows.resize(c.nb * c.fanin);
  h.woff.resize(c.nb * c.fanin);
  for (int64_t i = 0; i < c.nb; ++i) h.out_rows[i] = static_cast<int32_t>(out0 + i * (c.b + c.guard));
  std::vector<int32_t> list(c.fanin);
  h.params.assign(c.param_pad, 0.5f);  // like input parameters before the weight blocks
  for (int64_t i = 0; i < c.nb; ++i) {
    if (i % c.share == 0) {
      for (int k = 0; k < c.fanin; ++k) {
        int64_t cbk;
        if (c.underflow) cbk = k % h.nchild_blocks;
        else if (c.child_pool > 0) cbk = static_cast<int64_t>(U(rng) * h.nchild_blocks) % h.nchild_blocks;
        else cbk = (i / c.share) * c.fanin + k;
        list[k] = static_cast<int32_t>(h.child0 + cbk * c.cb);
        if (k > 0 && U(rng) < c.pad_prob) list[k] = -1;
      }
    }
    for (int k = 0; k < c.fanin; ++k) {
      h.child_rows[i * c.fanin + k] = list[k];
      if (list[k] < 0) {
        h.woff[i * c.fanin + k] = -1;
        continue;
      }
      if (c.misalign) h.params.resize(h.params.size() + rng() % 4, 0.5f);
      h.woff[i * c.fanin + k] = static_cast<int64_t>(h.params.size());
      for (int r = 0; r < c.b; ++r)
        for (int q = 0; q < c.cb; ++q) {
          float w = static_cast<float>(0.05 + U(rng));
          if (U(rng) < c.wzero_prob) w = 0.0f;
          if (c.underflow && (r % 2 == 0) && k != 1) w = 0.0f;  // even rows: only child block 1
          if (c.zero_rows && r >= c.b - std::max(1, c.b / 4)) w = 0.0f;
          h.params.push_back(w);
        }
    }
  }
  // Normalize each sum node's row over all its child blocks.
  for (int64_t i = 0; i < c.nb; ++i)
    for (int r = 0; r < c.b; ++r) {
      double tot = 0;
      for (int k = 0; k < c.fanin; ++k)
        if (h.woff[i * c.fanin + k] >= 0)
          for (int q = 0; q < c.cb; ++q) tot += h.params[h.woff[i * c.fanin + k] + r * c.cb + q];
      if (tot > 0)
        for (int k = 0; k < c.fanin; ++k)
          if (h.woff[i * c.fanin + k] >= 0)
            for (int q = 0; q < c.cb; ++q) h.params[h.woff[i * c.fanin + k] + r * c.cb + q] /= tot;
    }
  // Outputs poisoned with NaN (guard rows keep kGuard).
  for (int64_t i = 0; i < c.nb; ++i)
    for (int r = 0; r < c.b; ++r)
      std::fill_n(h.values.begin() + (h.out_rows[i] + r) * c.batch, c.batch, std::nanf(""));
  return h;
}

double ref_out(const Case& c, const Host& h, int64_t i, int r, int64_t t) {
  double mr = -INFINITY;
  for (int k = 0; k < c.fanin; ++k) {
    const int64_t row = h.child_rows[i * c.fanin + k];
    if (row < 0) continue;
    const float* w = &h.params[h.woff[i * c.fanin + k] + r * c.cb];
    for (int q = 0; q < c.cb; ++q)
      if (w[q] != 0.0f) mr = std::max(mr, double(h.values[(row + q) * c.batch + t]));
  }
  if (mr == -INFINITY) return -INFINITY;
  double acc = 0;
  for (int k = 0; k < c.fanin; ++k) {
    const int64_t row = h.child_rows[i * c.fanin + k];
    if (row < 0) continue;
    const float* w = &h.params[h.woff[i * c.fanin + k] + r * c.cb];
    for (int q = 0; q < c.cb; ++q)
      if (w[q] != 0.0f) acc += double(w[q]) * std::exp(double(h.values[(row + q) * c.batch + t]) - mr);
  }
  return std::log(acc) + mr;
}

struct Dev {
  float *values = nullptr, *params = nullptr;
  int32_t *out_rows = nullptr, *child_rows = nullptr;
  int64_t* woff = nullptr;
  pcc::cuda::DevSum s;
};

Dev upload(const Case& c, const Host& h) {
  Dev d;
  CK(cudaMalloc(&d.values, h.values.size() * 4));
  CK(cudaMalloc(&d.params, h.params.size() * 4));
  CK(cudaMalloc(&d.out_rows, h.out_rows.size() * 4));
  CK(cudaMalloc(&d.child_rows, h.child_rows.size() * 4));
  CK(cudaMalloc(&d.woff, h.woff.size() * 8));
  CK(cudaMemcpy(d.values, h.values.data(), h.values.size() * 4, cudaMemcpyHostToDevice));
  CK(cudaMemcpy(d.params, h.params.data(), h.params.size() * 4, cudaMemcpyHostToDevice));
  CK(cudaMemcpy(d.out_rows, h.out_rows.data(), h.out_rows.size() * 4, cudaMemcpyHostToDevice));
  CK(cudaMemcpy(d.child_rows, h.child_rows.data(), h.child_rows.size() * 4, cudaMemcpyHostToDevice));
  CK(cudaMemcpy(d.woff, h.woff.data(), h.woff.size() * 8, cudaMemcpyHostToDevice));
  d.s.block_size = c.b;
  d.s.child_block_size = c.cb;
  d.s.fanin = c.fanin;
  d.s.num_blocks = c.nb;
  d.s.out_rows = d.out_rows;
  d.s.child_rows = d.child_rows;
  d.s.weight_offsets = d.woff;
  // As device_plan.cu: mean rows per run of blocks with one child list (picks the 64- or 128-row tile).
  int64_t runs = 0;
  for (int64_t i = 0; i < c.nb; ++i)
    runs += i == 0 || !std::equal(h.child_rows.begin() + i * c.fanin, h.child_rows.begin() + (i + 1) * c.fanin,
                                  h.child_rows.begin() + (i - 1) * c.fanin);
  d.s.rows_per_child_list = c.nb * c.b / std::max<int64_t>(runs, 1);
  return d;
}

void release(Dev& d) {
  cudaFree(d.values);
  cudaFree(d.params);
  cudaFree(d.out_rows);
  cudaFree(d.child_rows);
  cudaFree(d.woff);
}

// Runs one precision, checks `nsample` blocks (all if <= 0) against float64; returns pass.
bool check(const Case& c, const Host& h, Dev& d, Precision p, int64_t nsample, std::mt19937_64& rng) {
  CK(cudaMemcpy(d.values, h.values.data(), h.values.size() * 4, cudaMemcpyHostToDevice));  // re-poison
  pcc::cuda::sum_forward(d.s, d.params, d.values, c.batch, p, 0);
  CK(cudaDeviceSynchronize());
  std::vector<float> out(h.values.size());
  CK(cudaMemcpy(out.data(), d.values, out.size() * 4, cudaMemcpyDeviceToHost));
  const double tol = p == Precision::BF16 ? 1e-2 : 1e-3;
  double max_err = 0, sum_err = 0;
  int64_t n = 0, bad = 0, unwritten = 0, ninf = 0, touched = 0;
  std::vector<int64_t> blocks;
  if (nsample <= 0 || nsample >= c.nb) {
    for (int64_t i = 0; i < c.nb; ++i) blocks.push_back(i);
  } else {
    for (int64_t q = 0; q < nsample; ++q) blocks.push_back(static_cast<int64_t>(rng() % c.nb));
    blocks.push_back(c.nb - 1);
  }
  for (int64_t i : blocks) {
    for (int r = 0; r < c.b; ++r)
      for (int64_t t = 0; t < c.batch; ++t) {
        const float o = out[(h.out_rows[i] + r) * c.batch + t];
        const double ref = ref_out(c, h, i, r, t);
        ++n;
        if (std::isnan(o)) {
          ++unwritten;
          continue;
        }
        if (std::isinf(ref) || std::isinf(o)) {
          if (ref == -INFINITY) ++ninf;
          if (!(double(o) == ref)) {
            if (bad < 3)
              std::printf("    mismatch blk %lld row %d col %lld: got %g want %g\n", (long long)i, r,
                          (long long)t, o, ref);
            ++bad;
          }
          continue;
        }
        const double e = std::fabs(double(o) - ref) / std::max(1.0, std::fabs(ref));
        max_err = std::max(max_err, e);
        sum_err += e;
        if (e > tol) {
          if (bad < 3)
            std::printf("    error blk %lld row %d col %lld: got %.7g want %.7g (rel %.3g)\n", (long long)i, r,
                        (long long)t, o, ref, e);
          ++bad;
        }
      }
    for (int g = 0; g < c.guard; ++g)
      for (int64_t t = 0; t < c.batch; ++t) touched += out[(h.out_rows[i] + c.b + g) * c.batch + t] != kGuard;
  }
  // Child rows must be untouched (stride through them).
  const int64_t child_elems = h.nchild_blocks * c.cb * c.batch;
  for (int64_t e = 0; e < child_elems; e += 1 + child_elems / 100000) {
    const int64_t idx = h.child0 * c.batch + e;
    const float a = out[idx], bv = h.values[idx];
    touched += !(a == bv || (std::isnan(a) && std::isnan(bv)));
  }
  const bool ok = bad == 0 && unwritten == 0 && touched == 0;
  std::printf("  %-4s %-34s checked %9lld  max rel err %.2e  mean %.2e  -inf %lld  unwritten %lld  "
              "bad %lld  touched %lld  %s\n",
              p == Precision::BF16 ? "bf16" : "tf32", c.name.c_str(), (long long)n, max_err,
              n ? sum_err / n : 0.0, (long long)ninf, (long long)unwritten, (long long)bad, (long long)touched,
              ok ? "ok" : "FAIL");
  return ok;
}

double median_ms(const Case& c, Dev& d, Precision p, int reps) {
  cudaEvent_t e0, e1;
  CK(cudaEventCreate(&e0));
  CK(cudaEventCreate(&e1));
  for (int w = 0; w < 3; ++w) pcc::cuda::sum_forward(d.s, d.params, d.values, c.batch, p, 0);
  CK(cudaDeviceSynchronize());
  std::vector<float> ts;
  for (int i = 0; i < reps; ++i) {
    CK(cudaEventRecord(e0));
    pcc::cuda::sum_forward(d.s, d.params, d.values, c.batch, p, 0);
    CK(cudaEventRecord(e1));
    CK(cudaEventSynchronize(e1));
    float ms;
    CK(cudaEventElapsedTime(&ms, e0, e1));
    ts.push_back(ms);
  }
  std::sort(ts.begin(), ts.end());
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  return ts[ts.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  // --only NAME: no correctness cases, only the timing layers whose name contains NAME (for ncu).
  const char* only = argc > 2 && std::strcmp(argv[1], "--only") == 0 ? argv[2] : nullptr;
  int dev = 0;
  cudaDeviceProp prop;
  CK(cudaGetDevice(&dev));
  CK(cudaGetDeviceProperties(&prop, dev));
  std::printf("device: %s, %d SMs\n", prop.name, prop.multiProcessorCount);
  std::mt19937_64 rng(1234);

  std::vector<Case> cases = {
      // name, b, cb, fanin, nb, batch, share, pad, ninf, wzero, underflow, zero_rows
      {"tc 32x32 dense shared, tail", 32, 32, 8, 40, 200, 8, 0.0, 0.02, 0.0},
      {"tc 32x32 pad blocks, zero rows", 32, 32, 6, 21, 130, 4, 0.3, 0.05, 0.3, false, true},
      {"tc 32x32 underflow fallback", 32, 32, 2, 12, 70, 4, 0.0, 0.0, 0.0, true},
      {"tc 16x8 distinct lists", 16, 8, 5, 37, 77, 1, 0.2, 0.02, 0.2},
      {"tc 16x16 mixed sharing", 16, 16, 4, 53, 64, 3},
      {"tc 64x16 pairs", 64, 16, 12, 9, 100, 2, 0.1},
      {"tc 256x32 row slices", 256, 32, 3, 3, 65, 1, 0.0, 0.02, 0.2, false, true},
      {"tc 32x64 block form", 32, 64, 4, 6, 33, 2},
      {"tc 16x16 fanin 1500", 16, 16, 1500, 4, 40, 1, 0.05},
      {"simt 1x1 sparse", 1, 1, 7, 1000, 130, 1, 0.1, 0.05, 0.0, false, false, 1, 300},
      {"simt 2x2", 2, 2, 3, 300, 64, 1, 0.1},
      {"simt 4x4 underflow", 4, 4, 2, 50, 90, 2, 0.0, 0.0, 0.0, true},
      {"simt 8x8 shared", 8, 8, 9, 64, 129, 4, 0.1, 0.02, 0.3, false, true},
      {"simt 32x1 (dense over singletons)", 32, 1, 6, 10, 70, 1},
      {"simt 1x32 root", 1, 32, 8, 1, 512, 1},
      {"simt 16x4", 16, 4, 5, 20, 50, 1, 0.1},
      {"simt b=1 many blocks", 1, 2, 4, 70000, 3, 1, 0.0, 0.02, 0.2, false, false, 1, 5000},
      // Few warps, long K: the wide SIMT kernel (warps split K), with padding, -inf, zero rows.
      {"simt 1x32 wide root", 1, 32, 64, 1, 200, 1, 0.1, 0.02, 0.0},
      {"simt 8x8 wide", 8, 8, 40, 3, 130, 1, 0.1, 0.02, 0.2, false, true},
      {"simt 2x4 wide underflow", 2, 4, 80, 2, 70, 1, 0.0, 0.0, 0.0, true},
  };
  // Tensor-core paths the cases above leave out. A grid under one wave with >= 16 chunks of 32 K rows
  // splits K over a cluster (the fanin-1500 case above too).
  auto add = [&cases](Case c, int param_pad, bool misalign, int64_t sample) {
    c.param_pad = param_pad;
    c.misalign = misalign;
    c.sample = sample;
    cases.push_back(c);
  };
  add({"tc 32x32 split-K shared list", 32, 32, 64, 8, 200, 8, 0.1, 0.02, 0.2}, 7, true, 0);
  add({"tc 32x32 split-K underflow", 32, 32, 64, 4, 70, 4, 0.0, 0.0, 0.0, true}, 8, false, 0);
  add({"tc 16x16 split-K distinct lists", 16, 16, 64, 11, 77, 1, 0.2, 0.02, 0.2, false, true}, 7, true, 0);
  add({"tc 256x16 slices split-K", 256, 16, 64, 2, 130, 1, 0.1, 0.02, 0.2}, 8, false, 0);
  add({"tc 32x32 aligned W, 16-byte E", 32, 32, 8, 24, 256, 8, 0.1, 0.02, 0.2}, 8, false, 0);
  add({"tc 16x8 lists past the cache", 16, 8, 66, 300, 1100, 2, 0.1, 0.02, 0.2, false, false, 1, 200}, 8, true,
      40);
  cases[4].misalign = true;  // tc 16x16 mixed sharing
  cases[5].misalign = true;  // tc 64x16 pairs
  bool all_ok = true;
  std::printf("correctness (float64 reference, tolerance tf32 1e-3, bf16 1e-2 x max(1,|ref|)):\n");
  for (const Case& c : cases) {
    if (only) break;
    Host h = build(c, rng);
    Dev d = upload(c, h);
    // Tensor-core cases run both tile shapes (64 rows where rows_per_child_list < 128, else 128).
    const bool tc = c.b >= 16 && c.cb >= 8;
    for (const int64_t runs : {int64_t(1), int64_t(1) << 40}) {
      if (tc) {
        d.s.rows_per_child_list = runs;
        std::printf("  [%d-row tiles]\n", runs == 1 ? 64 : 128);
      }
      all_ok &= check(c, h, d, Precision::TF32, c.sample, rng);
      all_ok &= check(c, h, d, Precision::BF16, c.sample, rng);
      if (!tc) break;
    }
    release(d);
  }
  if (quick) {
    std::printf("%s\n", all_ok ? "ALL OK" : "FAILURES");
    return all_ok ? 0 : 1;
  }

  struct Timing {
    const char* name;
    Case c;
  };
  auto aligned = [](Case c, int64_t sample) {
    c.param_pad = 8;
    c.sample = sample;
    return c;
  };
  std::vector<Timing> timings = {
      // One dense 2048 x 2048 matrix: 64 blocks of 32 x 32, all reading one list of 64 child blocks.
      {"HMM-2048-like 64x(32x32) f64",
       aligned({"hmm2048", 32, 32, 64, 64, 512, 64, 0.0, 0.0, 0.0, false, false, 0}, 4)},
      {"HMM-2048-like, W unaligned", {"hmm2048 unaligned", 32, 32, 64, 64, 512, 64, 0.0, 0.0, 0.0, false, false, 0,
                                      0, 7, false, 4}},
      // 115 vectors of 256 nodes, each over 32 child blocks picked from 1024.
      {"PD-256-like 920x(32x32) f32",
       aligned({"pd256", 32, 32, 32, 920, 512, 8, 0.0, 0.0, 0.0, false, false, 0, 1024}, 16)},
      // PyJuice's PD-64 converted: 64-node regions (two 32-row blocks sharing a list of 8 child blocks).
      {"PD-64-like 230x(32x32) f8",
       aligned({"pd64", 32, 32, 8, 230, 512, 2, 0.0, 0.0, 0.0, false, false, 0}, 16)},
      // 134 vectors of 256 nodes, each dense over its own 256 children.
      {"HCLT-256-like 1072x(32x32) f8",
       aligned({"hclt256", 32, 32, 8, 1072, 512, 8, 0.0, 0.0, 0.0, false, false, 0}, 16)},
      // docs/cuda.md's HCLT-256-like layer (400 vectors; unaligned weights, as measured there).
      {"HCLT-256 V=400 (docs) f8", {"hclt256 V=400", 32, 32, 8, 400 * 8, 512, 8, 0.0, 0.0, 0.0, false, false, 0}},
      {"HCLT-512-like V=200 f16", {"hclt512 V=200", 32, 32, 16, 200 * 16, 512, 16, 0.0, 0.0, 0.0, false, false, 0}},
      {"sparse b=1 cb=1 fanin 8", {"sparse 1x1", 1, 1, 8, 200000, 512, 1, 0.0, 0.0, 0.0, false, false, 0, 50000}},
  };
  std::printf("\ntiming (median of 20 after warm-up); ceilings: TF32 392 TFLOP/s, BF16 751, fp32 SIMT 51, "
              "copy 3.0 TB/s\n");
  std::printf("%-30s %-5s %9s %9s %9s %10s %10s %8s\n", "layer", "prec", "ms", "TFLOP/s", "GB/s", "floor ms",
              "%roofline", "check");
  for (auto& tm : timings) {
    if (only && !std::strstr(tm.name, only)) continue;
    const Case& c = tm.c;
    Host h = build(c, rng);
    Dev d = upload(c, h);
    const int64_t K = int64_t(c.fanin) * c.cb;
    const double flops = 2.0 * c.nb * c.b * K * c.batch;
    // Bytes: every distinct child value read once, every output written once, every weight read once.
    const double bytes = 4.0 * (h.nchild_blocks * c.cb * c.batch + c.nb * c.b * c.batch) + 4.0 * c.nb * c.b * K;
    const bool simt = c.b < 16;
    const int64_t chosen = d.s.rows_per_child_list;
    // Tensor-core layers: the tile the launcher picks first, then the other shape for comparison.
    for (const int64_t runs : {chosen, chosen < 128 ? int64_t(1) << 40 : int64_t(1)}) {
      d.s.rows_per_child_list = runs;
      const char* tile = simt ? "" : (runs < 128 ? (runs == chosen ? " [64]" : " [64, not chosen]")
                                                 : (runs == chosen ? " [128]" : " [128, not chosen]"));
      for (Precision p : {Precision::TF32, Precision::BF16}) {
        const bool ok = check(c, h, d, p, c.sample > 0 ? c.sample : 16, rng);
        all_ok &= ok;
        const double ms = median_ms(c, d, p, 20);
        const double rate = simt ? 51e12 : (p == Precision::BF16 ? 751e12 : 392e12);
        const double floor_ms = 1e3 * std::max(flops / rate, bytes / 3.0e12);
        std::printf("%-30s %-5s %9.4f %9.2f %9.1f %10.4f %9.1f%% %8s%s\n", tm.name,
                    p == Precision::BF16 ? "bf16" : "tf32", ms, flops / ms / 1e9, bytes / ms / 1e6, floor_ms,
                    100.0 * floor_ms / ms, ok ? "ok" : "FAIL", tile);
      }
      if (simt) break;
    }
    release(d);
  }
  std::printf("%s\n", all_ok ? "ALL OK" : "FAILURES");
  return all_ok ? 0 : 1;
}
