// The circuit IR: what a probabilistic circuit *means*, independent of how it runs.
//
// A Circuit is a list of node vectors in topological order (every child id is smaller than the id of
// the vector that uses it) plus a list of parameter groups. Node values are probabilities; every
// backend computes them in log space.
//
//  * Input vector  (kind Input): num_nodes univariate distributions on one variable `var`.
//      Categorical: params [num_nodes, num_cats], rows are probabilities summing to 1.
//      Bernoulli:   params [num_nodes] = P(x = 1).
//      Gaussian:    params [2, num_nodes] = means, then standard deviations (> 0).
//  * Product vector (kind Product): node i multiplies one node of each child. prod_edges is
//    [num_nodes, children.size()] row-major, entry (i, j) = node of child j used by node i; empty
//    means elementwise (all children have num_nodes nodes). Children have pairwise disjoint scopes
//    (decomposability); the scope is their union.
//  * Sum vector (kind Sum): node i is a mixture of the nodes of its children, concatenated in child
//    order (C nodes in all). All children have the same scope (smoothness).
//      Dense:  every sum node uses every child node; params [num_nodes, C].
//      Sparse: sum_edges [2, E] row-major: (sum node, concatenated child node) pairs; params [E].
//      Block:  sum_edges [2, E] pairs whole blocks of block_size nodes (sum block, concatenated child
//              block); params [E, b, b] indexed (edge, node in sum block, node in child block).
//              num_nodes and every child's num_nodes are multiples of block_size.
//    No pair repeats. Weights are non-negative; the weights of each sum node sum to 1 (a sum node
//    with no edge is invalid).
//  * Parameters live in groups (Circuit::params). Vectors naming the same group are tied: they have
//    the same kind, distribution, shape and connectivity, and share one set of parameters.
//  * The scope of an input vector is {var}; scopes of other vectors follow from their children.
//    Variables are numbered 0 .. num_vars-1 where num_vars = largest variable + 1.
//  * `root` is the output vector; vectors that the root does not reach are kept in files but ignored
//    by the compiler.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace pcc {

enum class NodeKind : uint8_t { Input = 0, Product = 1, Sum = 2 };
enum class Dist : uint8_t { Categorical = 0, Bernoulli = 1, Gaussian = 2 };
enum class SumForm : uint8_t { Dense = 0, Sparse = 1, Block = 2 };

struct NodeVector {
  NodeKind kind = NodeKind::Input;
  int64_t num_nodes = 0;
  std::vector<int64_t> children;  // ids of earlier vectors

  // Input only.
  int64_t var = -1;
  Dist dist = Dist::Categorical;
  int64_t num_cats = 0;  // Categorical only

  // Product only: [num_nodes, children.size()] or empty (elementwise).
  std::vector<int64_t> prod_edges;

  // Sum only.
  SumForm form = SumForm::Dense;
  int64_t block_size = 1;          // Block form only
  std::vector<int64_t> sum_edges;  // Sparse / Block: [2, E] row-major

  // Input and Sum: index into Circuit::params.
  int64_t params = -1;

  int64_t num_sum_edges() const { return static_cast<int64_t>(sum_edges.size() / 2); }
};

struct Circuit {
  std::vector<NodeVector> nodes;
  std::vector<std::vector<float>> params;
  int64_t root = -1;
};

// Counts of the circuit as built (reachable from the root; tied copies counted, nothing inserted by the
// compiler). Edges of sums are (sum node, child node) pairs; product edges are num_nodes * fan-in.
struct Stats {
  int64_t input_nodes = 0, sum_nodes = 0, product_nodes = 0;
  int64_t sum_edges = 0, product_edges = 0;
  int64_t sum_params = 0, input_params = 0;
};

const char* to_string(NodeKind k);
const char* to_string(Dist d);
const char* to_string(SumForm f);

// Number of parameters a group used by vector `v` must hold (given its children's sizes).
int64_t expected_param_count(const Circuit& c, const NodeVector& v);
// Number of (sum node, child node) edges of a sum vector.
int64_t sum_edge_count(const Circuit& c, const NodeVector& v);
// Concatenated child node count of a vector.
int64_t child_node_count(const Circuit& c, const NodeVector& v);
// Vectors reachable from the root, as a mask over ids.
std::vector<bool> reachable(const Circuit& c);
Stats circuit_stats(const Circuit& c);
int64_t num_vars(const Circuit& c);

// File format (docs/ir.md). write_circuit is atomic (temporary file + rename); the readers check
// every size against the file before allocating and verify the checksum, throwing pcc::Error that
// names the file and the byte offset.
std::string serialize_circuit(const Circuit& c);
Circuit parse_circuit(const std::string& bytes, const std::string& source = "<memory>");
void write_circuit(const Circuit& c, const std::string& path);
Circuit read_circuit(const std::string& path);

}  // namespace pcc
