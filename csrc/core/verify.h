// Internal: the structural half of verify, shared with the .pcir reader so that a parsed circuit can
// always be indexed safely (root and child ids in range and topological, parameter groups in range).
#pragma once
#include "pcc/ir.h"

namespace pcc {

// Throws pcc::Error naming the vector. verify() runs this first.
void check_structure(const Circuit& c);

}  // namespace pcc
