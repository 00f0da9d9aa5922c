// Internal to the core and its tests: writing a .pcplan of an older format version, so the tests can
// check that this build still reads them (plan.h's serialize_plan writes the current one).
#pragma once
#include <cstdint>
#include <string>

#include "pcc/plan.h"

namespace pcc {

// `version` from container::kOldestPlanVersion to kPlanVersion; refuses a plan that version cannot
// express (version 2: category-major inputs; versions 2 and 3: fused products, child_arity != 1).
std::string serialize_plan_version(const Plan& p, uint32_t version);

}  // namespace pcc
