// IR helpers (ir.h) and DType helpers (tensor.h): names, counts, reachability, statistics.
#include <cstring>

#include "check.h"
#include "pcc/ir.h"
#include "pcc/tensor.h"
#include "samples.h"

using namespace pcc;
using namespace pcc_test;

int main() {
  CHECK(std::strcmp(to_string(NodeKind::Sum), "sum") == 0);
  CHECK(std::strcmp(to_string(Dist::Gaussian), "gaussian") == 0);
  CHECK(std::strcmp(to_string(SumForm::Block), "block") == 0);
  CHECK(std::strcmp(to_string(DType::Float64), "float64") == 0);
  CHECK_EQ(dtype_size(DType::Int16), 2);
  CHECK_EQ(dtype_size(DType::Bool), 1);
  CHECK_EQ(dtype_size(DType::Float64), 8);
  CHECK(is_floating(DType::Float32) && !is_floating(DType::Int64));

  {  // The example.
    const Circuit c = tiny_circuit();
    const Stats s = circuit_stats(c);
    CHECK_EQ(s.input_nodes, 12);
    CHECK_EQ(s.product_nodes, 4);
    CHECK_EQ(s.sum_nodes, 1);
    CHECK_EQ(s.product_edges, 12);
    CHECK_EQ(s.sum_edges, 4);
    CHECK_EQ(s.sum_params, 4);
    CHECK_EQ(s.input_params, 4 * 3 + 4 + 2 * 4);
    CHECK_EQ(num_vars(c), 3);
    CHECK_EQ(child_node_count(c, c.nodes[3]), 12);
    CHECK_EQ(expected_param_count(c, c.nodes[0]), 12);
    CHECK_EQ(expected_param_count(c, c.nodes[2]), 8);
    CHECK_EQ(expected_param_count(c, c.nodes[3]), 0);
  }
  {  // Sparse and block edge counts; tied copies counted; unreachable vectors ignored.
    Builder b;
    const int64_t x = b.input(0, 4, Dist::Bernoulli, 0, b.group(probabilities(4)));
    const int64_t y = b.input(1, 4, Dist::Bernoulli, 0, 0);  // tied to x's group
    const int64_t unused = b.input(9, 2, Dist::Bernoulli, 0, b.group(probabilities(2)));
    const int64_t p = b.product({x, y}, 4);
    const int64_t sp = b.sum({p}, 2, SumForm::Sparse, b.group({1, 1, 1}), {0, 1, 1, /**/ 0, 2, 3});
    const int64_t bl = b.sum({p}, 4, SumForm::Block, b.group(std::vector<float>(12, 0.5f)),
                             {0, 1, 1, /**/ 0, 0, 1}, 2);
    const int64_t root = b.product({sp, bl}, 2, {0, 0, 1, 3});
    CHECK_EQ(sum_edge_count(b.c, b.c.nodes[sp]), 3);
    CHECK_EQ(sum_edge_count(b.c, b.c.nodes[bl]), 12);
    const std::vector<bool> live = reachable(b.c);
    CHECK(live[x] && live[y] && !live[unused] && live[root]);
    const Stats s = circuit_stats(b.c);
    CHECK_EQ(s.input_nodes, 8);
    CHECK_EQ(s.input_params, 8);
    CHECK_EQ(s.sum_nodes, 6);
    CHECK_EQ(s.sum_edges, 15);
    CHECK_EQ(s.product_nodes, 6);
    CHECK_EQ(s.product_edges, 4 * 2 + 2 * 2);
    CHECK_EQ(num_vars(b.c), 2);  // variable 9 is only read by an unreachable vector
  }
  {  // Unverified circuits: bad ids are skipped, never followed.
    Circuit c;
    CHECK_EQ(num_vars(c), 0);
    CHECK(reachable(c).empty());
    Builder b;
    const int64_t x = b.input(0, 2, Dist::Bernoulli, 0, b.group(probabilities(2)));
    b.product({x, 7, -3}, 2);
    CHECK_EQ(circuit_stats(b.c).input_nodes, 2);
    b.c.root = 42;
    CHECK_EQ(circuit_stats(b.c).input_nodes, 0);
  }
  return report("test_ir");
}
