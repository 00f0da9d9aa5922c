// Generates the inputs of tests/golden: a few small valid circuits covering every vector kind,
// distribution, sum form, product edges, tying, a multi-node root and fused products. Run once and commit:
//   build/ir/tests/make_golden_circuits tests/golden
// then regenerate the expected dumps with the update_golden target and review them.
#include <cstdio>
#include <string>

#include "pcc/ir.h"
#include "samples.h"

using namespace pcc;
using namespace pcc_test;

namespace {

// Sparse sums over products with explicit edges, a root with two nodes.
Circuit sparse_products() {
  Builder b;
  const int64_t x0 = b.input(0, 2, Dist::Bernoulli, 0, b.group(probabilities(2, 1)));
  const int64_t x1 = b.input(1, 3, Dist::Bernoulli, 0, b.group(probabilities(3, 2)));
  const int64_t x2 = b.input(2, 2, Dist::Categorical, 4, b.group(normalized(2, 4)));
  // Four product nodes, each picking one node of each child.
  const int64_t p = b.product({x0, x1}, 4, {0, 0, 0, 1, 1, 2, 1, 0});
  const int64_t s = b.sum({p}, 2, SumForm::Sparse, b.group({0.25f, 0.75f, 0.5f, 0.5f}), {0, 0, 1, 1, /**/ 0, 1, 2, 3});
  const int64_t q = b.product({s, x2}, 2);
  b.sum({q}, 2, SumForm::Sparse, b.group({1.0f, 0.3f, 0.7f}), {0, 1, 1, /**/ 0, 0, 1});
  return b.c;
}

// Block-sparse sums (block size 2) with tied parameters, tied (duplicated) inputs, Gaussian inputs.
Circuit block_tied() {
  Builder b;
  const int64_t cat = b.group(normalized(4, 3));
  const int64_t gauss = b.group(gaussian(4));
  const int64_t a = b.input(0, 4, Dist::Categorical, 3, cat);
  const int64_t c = b.input(1, 4, Dist::Categorical, 3, cat);  // tied copy on another variable
  const int64_t g2 = b.input(2, 4, Dist::Gaussian, 0, gauss);
  const int64_t g3 = b.input(3, 4, Dist::Gaussian, 0, gauss);
  const int64_t p = b.product({a, g2}, 4);
  const int64_t q = b.product({c, g3}, 4);
  // Block edges: sum block 0 <- child blocks 0 and 1, sum block 1 <- child block 1.
  // [3 edges, 2, 2]; sum block 0 draws on two edges, so their rows are halved to keep each node's
  // weights adding up to 1.
  std::vector<float> weights = normalized(6, 2, 3);
  for (int k = 0; k < 8; ++k) weights[k] *= 0.5f;
  const int64_t w = b.group(weights);
  const int64_t s = b.sum({p}, 4, SumForm::Block, w, {0, 0, 1, /**/ 0, 1, 1}, 2);
  const int64_t t = b.sum({q}, 4, SumForm::Block, w, {0, 0, 1, /**/ 0, 1, 1}, 2);  // tied
  const int64_t r = b.product({s, t}, 4);
  b.sum({r}, 1, SumForm::Dense, b.group(normalized(1, 4, 2)));
  return b.c;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_golden_circuits OUT_DIR\n");
    return 2;
  }
  const std::string dir = argv[1];
  write_circuit(tiny_circuit(), dir + "/issue_example.pcir");
  write_circuit(sparse_products(), dir + "/sparse_products.pcir");
  write_circuit(block_tied(), dir + "/block_tied.pcir");
  // The same circuit compiled with fused products (NAME.args: options run_golden.cmake passes on).
  write_circuit(block_tied(), dir + "/block_tied_fused.pcir");
  if (std::FILE* f = std::fopen((dir + "/block_tied_fused.args").c_str(), "w")) {
    std::fputs("--fuse-products\n", f);
    std::fclose(f);
  } else {
    std::fprintf(stderr, "cannot write %s/block_tied_fused.args\n", dir.c_str());
    return 1;
  }
  std::printf("wrote 4 circuits to %s\n", dir.c_str());
  return 0;
}
