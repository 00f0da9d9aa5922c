// The CUDA backend against the CPU backend (the oracle) on circuits compiled with pcc::compile:
// random circuits with dense, sparse and block sums, tied sum and input vectors, all three
// distributions and random missing masks; wide dense sums; a chain 200 layers deep; large
// categoricals; integer x dtypes; a hand-written plan. Per circuit: forward (TF32 and BF16), the
// flow pass, normalize / log_params, EM and gradients, on fresh random inputs (the seed is printed;
// replay with PCC_TEST_SEED=N). Device outputs are poisoned with NaN first and every element is
// compared with the CPU's (whose buffers are poisoned the same way), so an unwritten element fails.
// The backward and the parameter ops are fed the CPU's values / flows, so each op is checked on its
// own. Everything runs on a non-blocking stream. Without a CUDA device the test prints [SKIP].
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "check.h"
#include "pcc/backend.h"
#include "pcc/compiler.h"
#include "pcc/cuda.h"
#include "random_circuits.h"
#include "samples.h"

using namespace pcc;
using namespace pcc_test;

namespace {

// Tolerances: |got - want| <= tol * max(1, |want|).
constexpr double kTolTF32 = 1e-3, kTolBF16 = 1e-2;  // forward log-likelihoods (issue 4)
constexpr double kTolFP32 = 2e-5;                   // forward and flows, float32 SIMT sum kernels
constexpr double kTolFlows = 1e-3;                  // node and parameter flows (TF32)
constexpr double kTolEM = 1e-3;                     // EM parameters
constexpr double kTolParams = 1e-5;                 // normalize / log_params (same math as the CPU)
constexpr double kTolGrads = 1e-4;                  // gradients (same math, float sums)

#define CU(call)                                                                                  \
  do {                                                                                            \
    const cudaError_t e_ = (call);                                                                \
    if (e_ != cudaSuccess) {                                                                      \
      std::fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_)); \
      std::exit(1);                                                                               \
    }                                                                                             \
  } while (0)

cudaStream_t stream;

// ---- device buffers --------------------------------------------------------------------------

struct DevBuf {
  void* p = nullptr;
  size_t bytes = 0;
  explicit DevBuf(size_t n) : bytes(std::max<size_t>(n, 1)) { CU(cudaMalloc(&p, bytes)); }
  ~DevBuf() { cudaFree(p); }
  DevBuf(const DevBuf&) = delete;
  DevBuf& operator=(const DevBuf&) = delete;
  float* f() const { return static_cast<float*>(p); }
  void poison() const { CU(cudaMemsetAsync(p, 0xff, bytes, stream)); }  // 0xffffffff is a NaN
};

template <class T>
void upload(const DevBuf& d, const std::vector<T>& v) {
  if (!v.empty()) CU(cudaMemcpyAsync(d.p, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice, stream));
  CU(cudaStreamSynchronize(stream));
}
template <class T>
std::vector<T> download(const DevBuf& d, size_t n) {
  std::vector<T> v(n);
  if (n) CU(cudaMemcpyAsync(v.data(), d.p, n * sizeof(T), cudaMemcpyDeviceToHost, stream));
  CU(cudaStreamSynchronize(stream));
  return v;
}

std::vector<float> nan_vector(size_t n) { return std::vector<float>(n, std::numeric_limits<float>::quiet_NaN()); }

// Element-wise comparison; NaN only where the reference is NaN too (an element neither backend
// writes), -inf only where the reference is -inf.
void compare(const std::string& what, const std::vector<float>& got, const std::vector<float>& want, double tol) {
  int bad = 0;
  double worst = 0;
  CHECK_EQ(got.size(), want.size());
  for (size_t i = 0; i < std::min(got.size(), want.size()); ++i) {
    const double g = got[i], w = want[i];
    bool ok;
    if (std::isnan(w)) ok = std::isnan(g);
    else if (std::isinf(w)) ok = g == w;
    else {
      const double err = std::abs(g - w) / std::max(1.0, std::abs(w));
      ok = err <= tol;  // false for NaN / inf g
      if (ok) worst = std::max(worst, err);
    }
    if (!ok && ++bad <= 8) std::fprintf(stderr, "  %s[%zu]: got %.9g want %.9g\n", what.c_str(), i, g, w);
  }
  if (bad) pcc_test::fail(__FILE__, __LINE__, what + ": " + std::to_string(bad) + " mismatches");
  std::printf("    %-34s %8zu elements, worst relative error %.2e\n", what.c_str(), got.size(), worst);
}

// ---- data ----------------------------------------------------------------------------------------

struct Data {
  int64_t B = 0, V = 0;
  DType dtype = DType::Float32;
  std::vector<unsigned char> x;  // [B, V] of dtype
  std::vector<uint8_t> miss;     // [B, V]
  bool has_missing = false;
};

template <class T>
void put_x(Data& d, int64_t i, double v) {
  const T t = static_cast<T>(v);
  std::memcpy(d.x.data() + i * sizeof(T), &t, sizeof(T));
}

void set_x(Data& d, int64_t i, double v) {
  switch (d.dtype) {
    case DType::Float32: put_x<float>(d, i, v); break;
    case DType::Float64: put_x<double>(d, i, v); break;
    case DType::Int64: put_x<int64_t>(d, i, v); break;
    case DType::Int32: put_x<int32_t>(d, i, v); break;
    case DType::Int16: put_x<int16_t>(d, i, v); break;
    case DType::Int8: put_x<int8_t>(d, i, v); break;
    default: put_x<uint8_t>(d, i, v); break;
  }
}

Data make_data(const std::vector<VarInfo>& vars, int64_t B, double p_missing, DType dtype = DType::Float32) {
  Data d;
  d.B = B;
  d.V = static_cast<int64_t>(vars.size());
  d.dtype = dtype;
  d.x.assign(B * d.V * dtype_size(dtype), 0);
  d.miss.assign(B * d.V, 0);
  d.has_missing = p_missing > 0;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t v = 0; v < d.V; ++v) {
      double x = 0;
      switch (vars[v].dist) {
        case Dist::Categorical: x = double(randint(vars[v].cats)); break;
        case Dist::Bernoulli: x = double(randint(2)); break;
        case Dist::Gaussian: x = double(float(uni(-2, 2))); break;
      }
      if (uni(0, 1) < p_missing) {
        d.miss[b * d.V + v] = 1;
        if (vars[v].dist == Dist::Gaussian && is_floating(dtype)) x = std::numeric_limits<double>::quiet_NaN();
        else if (!is_floating(dtype)) x = 99;  // out of range, never read where missing
      }
      set_x(d, b * d.V + v, x);
    }
  return d;
}

TensorRef host_ref(void* data, DType t, int64_t B, int64_t V) {
  TensorRef r;
  r.data = data;
  r.dtype = t;
  r.ndim = 2;
  r.shape[0] = B, r.shape[1] = V;
  r.strides[0] = V, r.strides[1] = 1;
  return r;
}
TensorRef dev_ref(void* data, DType t, int64_t B, int64_t V) {
  TensorRef r = host_ref(data, t, B, V);
  r.device = DeviceType::CUDA;
  r.device_id = 0;
  return r;
}

// ---- the comparison --------------------------------------------------------------------------

void check_plan(const std::string& name, const Plan& plan, const Data& d, bool check_bf16 = true) {
  std::printf("  %s: %zu layers, %lld rows, %zu params, batch %lld, x %s%s\n", name.c_str(), plan.layers.size(),
              (long long)plan.num_rows, plan.params.size(), (long long)d.B, to_string(d.dtype),
              d.has_missing ? ", missing" : "");
  const int64_t B = d.B, R = plan.num_root_nodes, rows = plan.num_rows, P = static_cast<int64_t>(plan.params.size());

  // Plan upload into a NaN-poisoned buffer.
  DevBuf planbuf(cuda_plan_bytes(plan));
  planbuf.poison();
  const std::shared_ptr<CudaPlan> cp = cuda_upload_plan(plan, planbuf.p, 0, stream);

  DevBuf x(d.x.size()), miss(d.miss.size()), params(P * 4), values(rows * B * 4), out(B * R * 4);
  upload(x, d.x);
  upload(miss, d.miss);
  upload(params, plan.params);
  const TensorRef xh = host_ref(const_cast<unsigned char*>(d.x.data()), d.dtype, B, d.V);
  TensorRef mh = host_ref(d.has_missing ? const_cast<uint8_t*>(d.miss.data()) : nullptr, DType::Bool, B, d.V);
  const TensorRef xd = dev_ref(x.p, d.dtype, B, d.V);
  const TensorRef md = dev_ref(d.has_missing ? miss.p : nullptr, DType::Bool, B, d.V);

  // CPU forward (buffers poisoned like the device ones).
  std::vector<float> cv = nan_vector(rows * B), cout = nan_vector(B * R);
  ForwardArgs fa;
  fa.plan = &plan;
  fa.params = plan.params.data();
  fa.x = xh;
  fa.missing = mh;
  fa.values = cv.data();
  fa.out = cout.data();
  fa.batch = B;
  cpu_forward(fa);

  for (Precision prec : {Precision::TF32, Precision::BF16, Precision::FP32}) {
    if (prec == Precision::BF16 && !check_bf16) continue;
    const double tol = prec == Precision::TF32 ? kTolTF32 : prec == Precision::BF16 ? kTolBF16 : kTolFP32;
    const char* pn = prec == Precision::TF32 ? "tf32" : prec == Precision::BF16 ? "bf16" : "fp32";
    values.poison();
    out.poison();
    ForwardArgs ga = fa;
    ga.params = params.f();
    ga.x = xd;
    ga.missing = md;
    ga.values = values.f();
    ga.out = out.f();
    cuda_forward(*cp, ga, prec, stream);
    compare(std::string("forward out ") + pn, download<float>(out, B * R), cout, tol);
    // Rows past x_rows (Plan::x_rows) hold the GPU's staged categories of x, the CPU's nothing.
    const int64_t kept = (plan.x_rows >= 0 ? plan.x_rows : rows) * B;
    std::vector<float> gv = download<float>(values, rows * B);
    gv.resize(kept);
    compare(std::string("forward values ") + pn, gv, std::vector<float>(cv.begin(), cv.begin() + kept), tol);
  }

  // Backward from the CPU's values, random root flows, param_flows accumulating onto random values.
  // A flow pass may overwrite value rows (recomputed transients share rows with values the forward
  // left), so each backward starts from a copy of the forward's values.
  const std::vector<float> forward_values = cv;
  std::vector<float> rflow(B * R);
  for (float& f : rflow) f = float(uni(0.25, 2.0));
  std::vector<float> pf0(P);
  for (float& f : pf0) f = float(uni(0, 1));
  std::vector<float> cflows = nan_vector(rows * B), cpf = pf0;
  BackwardArgs ba;
  ba.plan = &plan;
  ba.params = plan.params.data();
  ba.x = xh;
  ba.missing = mh;
  ba.values = cv.data();
  ba.root_flow = rflow.data();
  ba.flows = cflows.data();
  ba.param_flows = cpf.data();
  ba.batch = B;
  cpu_backward(ba);
  for (Precision prec : {Precision::TF32, Precision::FP32}) {
    const double tol = prec == Precision::TF32 ? kTolFlows : kTolFP32;
    const std::string pn = prec == Precision::TF32 ? " tf32" : " fp32";
    DevBuf dvals(rows * B * 4), drf(B * R * 4), dflows(rows * B * 4), dpf(P * 4);
    upload(dvals, forward_values);
    upload(drf, rflow);
    upload(dpf, pf0);
    dflows.poison();
    BackwardArgs gb = ba;
    gb.params = params.f();
    gb.x = xd;
    gb.missing = md;
    gb.values = dvals.f();
    gb.root_flow = drf.f();
    gb.flows = dflows.f();
    gb.param_flows = dpf.f();
    cuda_backward(*cp, gb, prec, stream);
    compare("backward node flows" + pn, download<float>(dflows, rows * B), cflows, tol);
    compare("backward parameter flows" + pn, download<float>(dpf, P), cpf, tol);
  }

  // Parameter ops on the CPU's parameter flows (root flow 1 for EM).
  std::vector<float> ones(B * R, 1.0f), em_flows(P, 0.0f), scratch_flows(rows * B);
  ba.root_flow = ones.data();
  ba.flows = scratch_flows.data();
  ba.param_flows = em_flows.data();
  cv = forward_values;
  cpu_backward(ba);
  DevBuf dflow(P * 4), dout(P * 4), din(P * 4);
  upload(dflow, em_flows);
  for (auto [s, a] : {std::pair<double, double>{1.0, 0.0}, {0.6, 0.3}}) {
    std::vector<float> cp_params = plan.params;
    cpu_em_update(plan, cp_params.data(), em_flows.data(), s, a);
    upload(dout, plan.params);
    cuda_em_update(*cp, dout.f(), dflow.f(), s, a, stream);
    compare("em_update s=" + std::to_string(s).substr(0, 3), download<float>(dout, P), cp_params, kTolEM);
  }
  {
    std::vector<float> lp(P);
    for (float& v : lp) v = float(uni(-5, 5));
    std::vector<float> cn = nan_vector(P);
    cpu_normalize(plan, lp.data(), cn.data());
    upload(din, lp);
    dout.poison();
    cuda_normalize(*cp, din.f(), dout.f(), stream);
    compare("normalize", download<float>(dout, P), cn, kTolParams);
    std::vector<float> cl = nan_vector(P);
    cpu_log_params(plan, cn.data(), cl.data());
    upload(din, cn);
    dout.poison();
    cuda_log_params(*cp, din.f(), dout.f(), stream);
    compare("log_params", download<float>(dout, P), cl, kTolParams);
  }
  {
    std::vector<float> g0(P);
    for (float& v : g0) v = float(uni(-1, 1));
    std::vector<float> cg = g0;
    cpu_param_grads(plan, plan.params.data(), cpf.data(), cg.data());
    upload(dout, g0);
    upload(dflow, cpf);
    cuda_param_grads(*cp, params.f(), dflow.f(), dout.f(), stream);
    compare("param_grads", download<float>(dout, P), cg, kTolGrads);
  }
  CU(cudaStreamSynchronize(stream));
}

// A bad entry gives the CPU backend's message.
void check_validation(const Plan& plan, const std::vector<VarInfo>& vars) {
  const int64_t B = 300;
  Data d = make_data(vars, B, 0.0);
  int64_t bad_var = -1;
  for (size_t v = 0; v < vars.size(); ++v)
    if (vars[v].dist != Dist::Gaussian) bad_var = static_cast<int64_t>(v);
  if (bad_var < 0) return;
  set_x(d, 257 * d.V + bad_var, 1.5);  // not an integer
  set_x(d, 290 * d.V + bad_var, 7e3);  // later: not the first
  DevBuf planbuf(cuda_plan_bytes(plan));
  const std::shared_ptr<CudaPlan> cp = cuda_upload_plan(plan, planbuf.p, 0, stream);
  DevBuf x(d.x.size()), params(plan.params.size() * 4), values(plan.num_rows * B * 4),
      out(B * plan.num_root_nodes * 4);
  upload(x, d.x);
  upload(params, plan.params);
  std::vector<float> cv(plan.num_rows * B), co(B * plan.num_root_nodes);
  ForwardArgs fa;
  fa.plan = &plan;
  fa.params = plan.params.data();
  fa.x = host_ref(d.x.data(), d.dtype, B, d.V);
  fa.values = cv.data();
  fa.out = co.data();
  fa.batch = B;
  std::string cpu_msg, gpu_msg;
  try {
    cpu_forward(fa);
  } catch (const Error& e) {
    cpu_msg = e.what();
  }
  ForwardArgs ga = fa;
  ga.params = params.f();
  ga.x = dev_ref(x.p, d.dtype, B, d.V);
  ga.values = values.f();
  ga.out = out.f();
  try {
    cuda_forward(*cp, ga, Precision::TF32, stream);
  } catch (const Error& e) {
    gpu_msg = e.what();
  }
  CHECK(!cpu_msg.empty());
  if (cpu_msg != gpu_msg) {
    std::fprintf(stderr, "  cpu: %s\n  gpu: %s\n", cpu_msg.c_str(), gpu_msg.c_str());
    pcc_test::fail(__FILE__, __LINE__, "validation messages differ");
  }
  // A CPU tensor is refused.
  ga.x = fa.x;
  CHECK_THROWS(cuda_forward(*cp, ga, Precision::TF32, stream), "CUDA");
  std::printf("  validation: \"%s\"\n", gpu_msg.c_str());
}

void test_random_circuits() {
  std::printf("random circuits\n");
  for (int trial = 0; trial < 8; ++trial) {
    std::vector<VarInfo> vars = random_vars(4 + trial % 3, false);
    vars[trial % 4] = {Dist::Gaussian, 0};
    vars[(trial + 1) % 4] = {Dist::Categorical, 3};
    vars[(trial + 2) % 4] = {Dist::Bernoulli, 0};
    const int64_t roots = trial % 3 == 2 ? 2 : 1;
    const Circuit c = random_circuit(vars, roots, trial < 6 ? 4 : 16);
    CompileOptions opt;
    if (trial % 2) opt.block_size = 2;
    if (trial % 3 == 1) opt.category_major_cats = 0;  // every Categorical group category-major
    const Plan plan = compile(c, opt);
    const int64_t B = trial == 0 ? 1 : trial == 1 ? 1000 : 1 + randint(300);
    check_plan("random " + std::to_string(trial), plan, make_data(vars, B, trial % 4 == 3 ? 0.0 : 0.2));
    if (trial == 0) check_validation(plan, vars);
  }
}

void test_dtypes() {
  std::printf("integer and float64 x\n");
  std::vector<VarInfo> vars = random_vars(5, true);
  vars[0] = {Dist::Categorical, 5};
  const Circuit c = random_circuit(vars, 1);
  CompileOptions cm;
  cm.category_major_cats = 0;
  for (const Plan& plan : {compile(c), compile(c, cm)})
    for (DType t : {DType::Int64, DType::Int32, DType::UInt8, DType::Int8, DType::Int16, DType::Float64})
      check_plan(std::string("dtype ") + to_string(t), plan, make_data(vars, 77, 0.1, t), false);
}

// Wide dense sums and categoricals of 7, 20 and 300 categories (register / global count paths).
void test_wide() {
  std::printf("wide dense sums, large categoricals\n");
  const std::vector<VarInfo> vars = {{Dist::Categorical, 7}, {Dist::Categorical, 20}, {Dist::Categorical, 300},
                                     {Dist::Bernoulli, 0}};
  const int64_t n = 64;
  Builder b;
  const int64_t a = random_input(b, 0, n, vars[0].dist, 7, -1);
  const int64_t c = random_input(b, 1, n, vars[1].dist, 20, -1);
  const int64_t p = b.product({a, c}, n);
  const int64_t s1 = random_sum(b, {p}, 48, 0);
  const int64_t s2 = random_sum(b, {p}, 32, 0);
  const int64_t e = random_input(b, 3, 80, vars[3].dist, 0, -1);
  const int64_t big = random_input(b, 2, 32, vars[2].dist, 300, -1);
  const int64_t t = random_sum(b, {s1, s2}, 32, 0);
  const int64_t q = b.product({t, e, big}, 32, [&] {
    std::vector<int64_t> ed;
    for (int64_t i = 0; i < 32; ++i) ed.push_back(i), ed.push_back(randint(80)), ed.push_back(randint(32));
    return ed;
  }());
  random_sum(b, {q}, 1, 0);
  const Plan plan = compile(b.c);
  check_plan("wide", plan, make_data(vars, 203, 0.15));
  check_plan("wide, large batch", plan, make_data(vars, 9000, 0.05), false);
  // The 300-category group category-major (lanes over nodes), then every Categorical group.
  for (int64_t cats : {256, 0}) {
    CompileOptions cm;
    cm.category_major_cats = cats;
    const Plan cplan = compile(b.c, cm);
    const std::string name = "wide, category-major above " + std::to_string(cats);
    check_plan(name, cplan, make_data(vars, 203, 0.15));
    check_plan(name + ", large batch", cplan, make_data(vars, 9000, 0.05), false);
  }
}

void test_deep() {
  std::printf("deep chain\n");
  const int64_t V = 110, n = 4;
  std::vector<VarInfo> vars(V, VarInfo{Dist::Categorical, 4});
  vars[3] = {Dist::Gaussian, 0};
  vars[5] = {Dist::Bernoulli, 0};
  Builder b;
  int64_t s = random_sum(b, {random_input(b, 0, n, vars[0].dist, 4, -1)}, n, 0);
  for (int64_t v = 1; v < V; ++v) {
    const int64_t in = random_input(b, v, n, vars[v].dist, vars[v].cats, -1);
    const int64_t p = b.product({s, in}, n);
    s = random_sum(b, {p}, n, static_cast<int>(v % 3));
  }
  random_sum(b, {s}, 1, 0);
  const Plan plan = compile(b.c);
  check_plan("deep chain", plan, make_data(vars, 37, 0.1), false);
}

void test_tiny_plan() {
  std::printf("hand-written plan\n");
  const Plan plan = pcc_test::tiny_plan();
  check_plan("tiny plan", plan, make_data({{Dist::Categorical, 2}, {Dist::Bernoulli, 0}}, 19, 0.3));
}

}  // namespace

int main() {
  if (!cuda_available()) {
    std::printf("[SKIP] no CUDA device\n");
    return 0;
  }
  uint64_t seed = static_cast<uint64_t>(std::chrono::high_resolution_clock::now().time_since_epoch().count());
  if (const char* s = std::getenv("PCC_TEST_SEED")) seed = std::strtoull(s, nullptr, 10);
  std::printf("test_cuda_backend: seed %llu (PCC_TEST_SEED=%llu to replay)\n", (unsigned long long)seed,
              (unsigned long long)seed);
  rng.seed(seed);
  CU(cudaSetDevice(0));
  CU(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  try {
    test_tiny_plan();
    test_random_circuits();
    test_dtypes();
    test_wide();
    test_deep();
  } catch (const std::exception& e) {
    pcc_test::fail(__FILE__, __LINE__, std::string("exception: ") + e.what());
  }
  CU(cudaStreamDestroy(stream));
  return pcc_test::report("test_cuda_backend");
}
