// Embedding pcc from C++: load a circuit (.pcir), compile it, and evaluate log-likelihoods of a few
// rows on the CPU backend, with buffers this program owns.
//   pcc_embed model.pcir [rows]    rows of x are read from stdin, num_vars numbers per row
#include <pcc/pcc.h>

#include <cstdio>
#include <iostream>
#include <vector>

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s MODEL.pcir < rows\n", argv[0]);
    return 2;
  }
  try {
    const pcc::Circuit circuit = pcc::read_circuit(argv[1]);
    const pcc::Plan plan = pcc::compile(circuit);
    std::vector<double> x;
    for (double v; std::cin >> v;) x.push_back(v);
    const int64_t V = plan.num_vars, B = V ? static_cast<int64_t>(x.size()) / V : 0;
    std::vector<float> values(static_cast<size_t>(plan.num_rows * B)), out(static_cast<size_t>(B * plan.num_root_nodes));
    pcc::ForwardArgs a;
    a.plan = &plan;
    a.params = plan.params.data();
    a.x.data = x.data();
    a.x.dtype = pcc::DType::Float64;
    a.x.ndim = 2;
    a.x.shape[0] = B;
    a.x.shape[1] = V;
    a.x.strides[0] = V;
    a.x.strides[1] = 1;
    a.values = values.data();
    a.out = out.data();
    a.batch = B;
    pcc::cpu_forward(a);
    for (int64_t b = 0; b < B; ++b) std::printf("%.6f\n", out[b * plan.num_root_nodes]);
  } catch (const pcc::Error& e) {
    std::fprintf(stderr, "pcc_embed: error: %s\n", e.what());
    return 2;
  }
  return 0;
}
