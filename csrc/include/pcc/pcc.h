// Umbrella header for C++ embedders: load or build a circuit, compile it, run it.
#pragma once
#include "pcc/backend.h"
#include "pcc/compiler.h"
#include "pcc/error.h"
#include "pcc/ir.h"
#include "pcc/plan.h"
#include "pcc/tensor.h"
