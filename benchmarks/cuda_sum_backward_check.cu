// Standalone check and timing of the CUDA sum-layer backward (csrc/cuda/sum_backward.cu) against a
// float64 host reference, on random partitions: dense (b = cb = 32, fan-in 8), sparse (b = cb = 1,
// varying fan-in with padding), tied weights (disjoint_weights = 0), the exact path (zero weights
// inside blocks and child values far apart), odd shapes (cb = 64: chunks; b = 64: weight row steps;
// b = 16 with cb = 32, b = 64 with cb = 128, b = 128 with cb = 16: the tensor-core tiles; a child block
// read by more than 256 entries: the tensor-core kernel's entry rounds; batches that are not multiples
// of 4: its unvectorized loads), and timing partitions shaped like whole layers of the benchmark
// circuits, batch 512, checked on a sample of their vectors:
//   hclt256   400 vectors of 256 nodes (b = cb = 32), each reading one 256-node child vector (fan-in 8);
//   hmm2048   one dense 2048 x 2048 vector: 64 blocks of 32, fan-in 64, all reading one child list;
//   pd256     896 blocks of 32 x 32 in runs of 8 sharing a child list of 32 child blocks;
//   hclt512   320 blocks of 32 x 32 in vectors of 16 sharing a child list of 16 child blocks.
// Each line gives the time of one sum_backward call (both products) in ms and its rate in TFLOP/s
// (2 products x 2 flops x blocks x fan-in x b x cb x batch, padding included).
// Not built by default. From the repository root:
//   nvcc -std=c++17 -arch=sm_90 -O3 -I csrc/include -I csrc benchmarks/cuda_sum_backward_check.cu \
//        csrc/cuda/sum_backward.cu -o /tmp/sb_check && /tmp/sb_check
// (also under compute-sanitizer --tool memcheck / racecheck; pass --quick for fewer timing runs and no
// layer-sized partitions; --only NAME runs only the cases named NAME, for ncu).
// Every row and parameter that is not a target holds NaN before the run and must hold NaN after
// it (stray writes); targets start from random values (the kernels accumulate) and must match
// start + reference within 1e-4 relative (floor 1e-6 x the buffer's largest magnitude) on the float32
// SIMT path, 1e-3 on the tensor-core path (TF32 operands: b and cb powers of two >= 16); targets
// outside the checked sample must be finite. The last line is ALL OK or SOME FAILED.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "cuda/cuda_check.cuh"
#include "cuda/sum_backward.cuh"

using pcc::cuda::DevSum;

namespace {

struct Case {
  std::string name;
  int64_t b, cb, fanin, num_blocks, child_blocks, batch;
  bool tied = false;      // pairs of blocks share their weight matrices
  bool sparse = false;    // random padding slots
  bool extreme = false;   // zero weights on the largest child and child values ~100 apart
  bool spread = false;    // odd blocks' weights and every fourth row's elsewhere scaled by 1e-20
  int64_t vec = 0;        // > 0: vectors of `vec` blocks, each reading its own fanin child blocks
  int64_t sample = 1;     // with vec: check every sample-th vector (others get approximate values)
  int iters = 20;         // timed runs (--quick: 3)
};

bool tensor_core_shape(int64_t b, int64_t cb) {
  auto pow2 = [](int64_t x) { return x > 0 && (x & (x - 1)) == 0; };
  return pow2(b) && pow2(cb) && b >= 16 && cb >= 16;
}

template <class T>
T* upload(const std::vector<T>& v) {
  T* d = nullptr;
  PCC_CUDA_CHECK(cudaMalloc(&d, std::max<size_t>(1, v.size()) * sizeof(T)));
  if (!v.empty()) PCC_CUDA_CHECK(cudaMemcpy(d, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice));
  return d;
}

bool run_case(const Case& cs, bool quick) {
  std::mt19937_64 rng(1234 + cs.b * 7 + cs.cb * 13 + cs.fanin);
  std::uniform_real_distribution<double> U(0.0, 1.0);
  const int64_t b = cs.b, cb = cs.cb, F = cs.fanin, NB = cs.num_blocks, NC = cs.child_blocks, T = cs.batch;
  const int64_t child_rows0 = 2, parent_rows0 = child_rows0 + NC * cb + 3;  // NaN gap rows between
  const int64_t rows = parent_rows0 + NB * b + 2;
  const float nan = std::numeric_limits<float>::quiet_NaN();

  // Connectivity: each block reads F distinct child blocks (sparse: some slots padding).
  std::vector<int64_t> out_rows(NB), child_rows(NB * F), woff(NB * F);
  int64_t nparams = 5;  // leading guard, odd so weight blocks are not 16-byte aligned
  std::vector<int64_t> shared_off(NB * F, -1);
  for (int64_t i = 0; i < NB; ++i) {
    out_rows[i] = parent_rows0 + i * b;
    std::vector<int64_t> pick(cs.vec > 0 ? F : NC);
    for (int64_t k = 0; k < static_cast<int64_t>(pick.size()); ++k) pick[k] = cs.vec > 0 ? (i / cs.vec) * F + k : k;
    if (cs.vec == 0) std::shuffle(pick.begin(), pick.end(), rng);
    for (int64_t f = 0; f < F; ++f) {
      const int64_t e = i * F + f;
      const bool pad = cs.sparse && f > 0 && U(rng) < 0.4;
      if (pad || f >= NC) {
        child_rows[e] = -1;
        woff[e] = -1;
        continue;
      }
      child_rows[e] = child_rows0 + pick[f] * cb;
      if (cs.tied && (i % 2) == 1 && woff[(i - 1) * F + f] >= 0) {
        // share the previous block's matrix for the same slot; child block may differ
        woff[e] = woff[(i - 1) * F + f];
      } else {
        woff[e] = nparams;
        nparams += b * cb;
      }
    }
  }
  // Checked sample: parent blocks (and, through them, their entries and child blocks).
  std::vector<char> checked_block(NB, 1), checked_child(rows, cs.vec > 0 ? 0 : 1);
  if (cs.vec > 0)
    for (int64_t i = 0; i < NB; ++i) checked_block[i] = ((i / cs.vec) % cs.sample) == 0;
  for (int64_t e = 0; e < NB * F; ++e)
    if (child_rows[e] >= 0 && checked_block[e / F])
      for (int64_t c = 0; c < cb; ++c) checked_child[child_rows[e] + c] = 1;
  nparams += 3;  // trailing guard

  // Weights: positive, some zeros, rows normalized over the block's slots (first owner's view).
  std::vector<float> params(nparams, nan);
  for (int64_t e = 0; e < NB * F; ++e) {
    if (woff[e] < 0) continue;
    for (int64_t x = 0; x < b * cb; ++x) {
      double w = U(rng) < 0.15 ? 0.0 : U(rng) + 0.05;
      if (cs.extreme && (x % cb) == 0) w = 0.0;  // never reaches the child block's first row
      // spread: parent rows ~46 below the others of their block, whole blocks ~46 below their children.
      if (cs.spread && ((e / F) % 2 == 1 || (x / cb) % 4 == 1)) w *= 1e-20;
      params[woff[e] + x] = static_cast<float>(w / (F * cb * 0.6));
    }
  }
  // Child values: [-8, 0], some -inf rows and entries; extreme: first row of each child block ~0,
  // the others ~-110.
  std::vector<float> values(rows * T, nan), flows(rows * T, nan);
  for (int64_t r = 0; r < NC * cb; ++r) {
    const bool dead = U(rng) < 0.05;
    for (int64_t t = 0; t < T; ++t) {
      float v = static_cast<float>(-8.0 * U(rng));
      if (cs.extreme) v = (r % cb == 0) ? static_cast<float>(-U(rng)) : static_cast<float>(-110.0 - 5 * U(rng));
      if (dead || U(rng) < 0.02) v = -INFINITY;
      values[(child_rows0 + r) * T + t] = v;
      flows[(child_rows0 + r) * T + t] = static_cast<float>(U(rng));  // start values (accumulated onto)
    }
  }
  // Parent values: the forward in double (checked blocks; elsewhere a cheap stand-in of the same size:
  // log of the mean weight times the sum of the children); parent flows random with zeros. The
  // reference uses f W exp(v_c - v_r) = W * (f exp(-v_r)) * exp(v_c), in double (no under- or
  // overflow for these ranges), so the sums factor into loops over the batch.
  std::vector<double> ex(rows * T, 0.0);  // exp(v) of child rows
  for (int64_t r = child_rows0; r < child_rows0 + NC * cb; ++r)
    for (int64_t t = 0; t < T; ++t) ex[r * T + t] = std::exp(double(values[r * T + t]));
  std::vector<double> sum(b * T), fr(b * T);
  std::vector<double> ref_flows(flows.begin(), flows.end()), ref_p(nparams, std::nan(""));
  for (int64_t e = 0; e < NB * F; ++e)
    if (woff[e] >= 0)
      for (int64_t x = 0; x < b * cb; ++x) ref_p[woff[e] + x] = 0.0;
  std::vector<double> tmp;
  for (int64_t i = 0; i < NB; ++i) {
    std::fill(sum.begin(), sum.end(), 0.0);
    for (int64_t f = 0; f < F; ++f) {
      const int64_t e = i * F + f;
      if (child_rows[e] < 0) continue;
      for (int64_t r = 0; r < (checked_block[i] ? b : 1); ++r)
        for (int64_t c = 0; c < cb; ++c) {
          const double w = checked_block[i] ? double(params[woff[e] + r * cb + c]) : 1.0 / (F * cb * 1.2);
          const double* x = &ex[(child_rows[e] + c) * T];
          double* y = &sum[r * T];
          for (int64_t t = 0; t < T; ++t) y[t] += w * x[t];
        }
    }
    for (int64_t r = 0; r < b; ++r)
      for (int64_t t = 0; t < T; ++t) {
        const int64_t at = (out_rows[i] + r) * T + t;
        values[at] = static_cast<float>(std::log(sum[(checked_block[i] ? r : 0) * T + t]));  // -inf: nothing reaches it
        flows[at] = U(rng) < 0.1 ? 0.0f : static_cast<float>(U(rng) * 2.0);
        ref_flows[at] = flows[at];
        fr[r * T + t] = (flows[at] == 0.0f || std::isinf(values[at])) ? 0.0 : flows[at] * std::exp(-double(values[at]));
      }
    if (!checked_block[i]) continue;
    // Reference terms of block i's entries: parameter flows, and child flows before the exp(v_c) factor.
    for (int64_t f = 0; f < F; ++f) {
      const int64_t e = i * F + f;
      if (child_rows[e] < 0) continue;
      tmp.assign(cb * T, 0.0);
      for (int64_t r = 0; r < b; ++r)
        for (int64_t c = 0; c < cb; ++c) {
          const double w = params[woff[e] + r * cb + c];
          if (!(w > 0.0)) continue;
          const double* x = &fr[r * T];
          const double* y = &ex[(child_rows[e] + c) * T];
          double* z = &tmp[c * T];
          double dot = 0.0;
          for (int64_t t = 0; t < T; ++t) {
            dot += x[t] * y[t];
            z[t] += w * x[t];
          }
          ref_p[woff[e] + r * cb + c] += w * dot;
        }
      for (int64_t c = 0; c < cb; ++c)
        for (int64_t t = 0; t < T; ++t)
          ref_flows[(child_rows[e] + c) * T + t] += tmp[c * T + t] * ex[(child_rows[e] + c) * T + t];
    }
  }
  std::vector<float> pflows(nparams, nan);
  for (int64_t e = 0; e < NB * F; ++e)
    if (woff[e] >= 0)
      for (int64_t x = 0; x < b * cb; ++x) pflows[woff[e] + x] = static_cast<float>(U(rng));
  // Parameter starts are drawn after the reference terms: add them now (untied weights only in
  // sampled cases; a parameter is checked where its entry's block is).
  std::vector<char> checked_p(nparams, 1);
  for (int64_t x = 0; x < nparams; ++x)
    if (!std::isnan(ref_p[x])) ref_p[x] += pflows[x];
  for (int64_t e = 0; e < NB * F; ++e)
    if (woff[e] >= 0)
      for (int64_t x = 0; x < b * cb; ++x) checked_p[woff[e] + x] = checked_block[e / F];
  std::vector<char> checked_f(rows * T, 1);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t t = 0; t < T; ++t) checked_f[r * T + t] = r < child_rows0 + NC * cb ? checked_child[r] : 1;

  // Transposed CSR as device_plan.cu builds it.
  std::vector<std::pair<int64_t, int64_t>> by_row;
  for (int64_t e = 0; e < NB * F; ++e)
    if (child_rows[e] >= 0) by_row.push_back({child_rows[e], e});
  std::sort(by_row.begin(), by_row.end());
  std::vector<int32_t> cbr, cbs, cbe;
  for (size_t k = 0; k < by_row.size(); ++k) {
    if (k == 0 || by_row[k].first != by_row[k - 1].first) {
      cbr.push_back(static_cast<int32_t>(by_row[k].first));
      cbs.push_back(static_cast<int32_t>(k));
    }
    cbe.push_back(static_cast<int32_t>(by_row[k].second));
  }
  cbs.push_back(static_cast<int32_t>(by_row.size()));

  std::vector<int32_t> out32(out_rows.begin(), out_rows.end()), child32(child_rows.begin(), child_rows.end());
  DevSum s;
  s.block_size = static_cast<int32_t>(b);
  s.child_block_size = static_cast<int32_t>(cb);
  s.fanin = static_cast<int32_t>(F);
  s.num_blocks = NB;
  s.out_rows = upload(out32);
  s.child_rows = upload(child32);
  s.weight_offsets = upload(woff);
  s.disjoint_weights = cs.tied ? 0 : 1;
  s.num_child_blocks = static_cast<int64_t>(cbr.size());
  s.child_block_rows = upload(cbr);
  s.child_block_start = upload(cbs);
  s.child_block_entries = upload(cbe);
  float* d_params = upload(params);
  float* d_values = upload(values);
  float* d_flows = upload(flows);
  float* d_pflows = upload(pflows);
  cudaStream_t stream;
  PCC_CUDA_CHECK(cudaStreamCreate(&stream));

  // Parent flow rows are only read: a single run must change exactly the child rows and parameters.
  pcc::cuda::sum_backward(s, d_params, d_values, d_flows, d_pflows, T, pcc::Precision::TF32, stream);
  PCC_CUDA_CHECK(cudaStreamSynchronize(stream));
  std::vector<float> got_f(flows.size()), got_p(pflows.size());
  PCC_CUDA_CHECK(cudaMemcpy(got_f.data(), d_flows, got_f.size() * 4, cudaMemcpyDeviceToHost));
  PCC_CUDA_CHECK(cudaMemcpy(got_p.data(), d_pflows, got_p.size() * 4, cudaMemcpyDeviceToHost));

  const double tol = tensor_core_shape(b, cb) ? 1e-3 : 1e-4;
  auto compare = [tol](const std::vector<float>& got, const std::vector<double>& ref, const std::vector<char>& checked,
                       int64_t& bad) {
    double scale = 0.0;
    for (size_t x = 0; x < ref.size(); ++x)
      if (!std::isnan(ref[x]) && checked[x]) scale = std::max(scale, std::fabs(ref[x]));
    double worst = 0.0;
    bad = 0;
    for (size_t x = 0; x < got.size(); ++x) {
      if (std::isnan(ref[x])) {
        if (!std::isnan(got[x])) ++bad;  // stray write into a poisoned element
        continue;
      }
      if (!std::isfinite(got[x])) {
        ++bad;
        continue;
      }
      if (!checked[x]) continue;
      const double err = std::fabs(got[x] - ref[x]) / std::max(std::fabs(ref[x]), 1e-6 * scale);
      worst = std::max(worst, err);
      if (err > tol) ++bad;
    }
    return worst;
  };
  int64_t bad_f = 0, bad_p = 0;
  const double ef = compare(got_f, ref_flows, checked_f, bad_f);
  const double ep = compare(got_p, ref_p, checked_p, bad_p);

  // Timing (flows keep accumulating; the values do not matter for speed).
  const int iters = quick ? 3 : cs.iters;
  cudaEvent_t e0, e1;
  PCC_CUDA_CHECK(cudaEventCreate(&e0));
  PCC_CUDA_CHECK(cudaEventCreate(&e1));
  pcc::cuda::sum_backward(s, d_params, d_values, d_flows, d_pflows, T, pcc::Precision::TF32, stream);
  PCC_CUDA_CHECK(cudaEventRecord(e0, stream));
  for (int it = 0; it < iters; ++it) pcc::cuda::sum_backward(s, d_params, d_values, d_flows, d_pflows, T, pcc::Precision::TF32, stream);
  PCC_CUDA_CHECK(cudaEventRecord(e1, stream));
  PCC_CUDA_CHECK(cudaEventSynchronize(e1));
  float ms = 0.0f;
  PCC_CUDA_CHECK(cudaEventElapsedTime(&ms, e0, e1));
  const double ms_call = double(ms) / iters;
  const double flop = 4.0 * double(NB) * F * b * cb * T;  // two products, padded multiply-adds x 2
  const bool ok = bad_f == 0 && bad_p == 0;
  std::printf("%-9s %s b=%-3lld cb=%-3lld fanin=%-2lld blocks=%-6lld child_blocks=%-6lld batch=%-4lld | "
              "flows max rel %.2e (%lld bad)  params max rel %.2e (%lld bad) | %8.4f ms %7.2f TFLOP/s  %s\n",
              cs.name.c_str(), tensor_core_shape(b, cb) ? "tc  " : "simt", (long long)b, (long long)cb,
              (long long)F, (long long)NB, (long long)s.num_child_blocks, (long long)T, ef, (long long)bad_f, ep,
              (long long)bad_p, ms_call, flop / (ms_call * 1e-3) * 1e-12, ok ? "OK" : "FAIL");
  std::fflush(stdout);

  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  cudaStreamDestroy(stream);
  for (const void* p : {(const void*)s.out_rows, (const void*)s.child_rows, (const void*)s.weight_offsets,
                        (const void*)s.child_block_rows, (const void*)s.child_block_start,
                        (const void*)s.child_block_entries, (const void*)d_params, (const void*)d_values,
                        (const void*)d_flows, (const void*)d_pflows})
    cudaFree(const_cast<void*>(p));
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  // --only NAME: only the cases named NAME (layer-sized ones included; for ncu).
  const char* only = argc > 2 && std::strcmp(argv[1], "--only") == 0 ? argv[2] : nullptr;
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) {
    std::printf("[SKIP] no CUDA device\n");
    return 0;
  }
  std::vector<Case> cases = {
      {"dense", 32, 32, 8, quick ? 64 : 2048, 16, 512},
      {"dense", 32, 32, 8, 64, 8, 37},                      // batch not a multiple of any tile
      {"sparse", 1, 1, 6, quick ? 4000 : 200000, 20000, 256, false, true},
      {"sparse", 1, 1, 3, 3000, 500, 1000, false, true},
      {"tied", 16, 16, 4, 512, 12, 300, true},
      {"tied", 1, 1, 5, 2000, 300, 129, true, true},
      {"extreme", 4, 4, 3, 64, 8, 200, false, false, true},
      {"extreme", 32, 32, 2, 16, 4, 70, true, false, true},
      {"cb64", 4, 64, 3, 64, 6, 150},
      {"b64", 64, 2, 3, 64, 6, 150},
      {"b2cb8", 2, 8, 5, 300, 40, 33, false, true},
      {"b16cb32", 16, 32, 3, 96, 10, 200, false, true},   // tensor cores: K chunks span two entries
      {"b64cb128", 64, 128, 3, 40, 6, 130},               // tensor cores: slices and output tiles
      {"b128cb16", 128, 16, 2, 24, 5, 90, true},          // tensor cores: tied, CS = 16
      {"tied32", 32, 32, 4, 200, 10, 256, true},
      {"rounds", 16, 16, 2, 300, 2, 70, false, true},     // tensor cores: 300 entries per child block
      {"b32cb16", 32, 16, 5, 40, 12, 129, false, true},   // tensor cores: CS = 16, unaligned batch
      {"spread", 32, 32, 4, 64, 12, 200},                 // parent values far apart within blocks
      {"spread", 16, 32, 3, 40, 8, 131},
  };
  for (Case& c : cases)
    if (c.name == "spread") c.spread = true;
  if (!quick) {
    Case hclt{"hclt256", 32, 32, 8, 3200, 3200, 512};
    hclt.vec = 8;
    hclt.sample = 25;
    hclt.iters = 10;
    Case hmm{"hmm2048", 32, 32, 64, 64, 64, 512};
    hmm.vec = 64;
    hmm.iters = 20;
    Case pd{"pd256", 32, 32, 32, 896, 3584, 512};
    pd.vec = 8;
    pd.sample = 14;
    pd.iters = 10;
    Case hclt512{"hclt512", 32, 32, 16, 320, 320, 512};
    hclt512.vec = 16;
    hclt512.sample = 5;
    hclt512.iters = 20;
    cases.push_back(hclt);
    cases.push_back(hmm);
    cases.push_back(pd);
    cases.push_back(hclt512);
  }
  bool ok = true;
  for (const Case& c : cases)
    if (!only || c.name == only) ok = run_case(c, quick) && ok;
  std::printf("%s\n", ok ? "ALL OK" : "SOME FAILED");
  return ok ? 0 : 1;
}
