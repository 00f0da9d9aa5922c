// cuda_plan_bytes / cuda_upload_plan: lay a Plan's index arrays (and the derived indexes the kernels
// need: product child disjointness, each sum partition's transposed child-block CSR, the parameter
// units, the validation scratch) into one caller-owned device buffer. Everything is first written
// into a host staging vector in 256-byte aligned sections, then copied with one cudaMemcpyAsync on
// the caller's stream; the stream is synchronized before the staging vector is freed. The same
// layout function computes the size (cuda_plan_bytes), so the two can never disagree.
#include <algorithm>
#include <cstring>
#include <limits>
#include <memory>
#include <unordered_map>
#include <vector>

#include "cuda/cuda_check.cuh"
#include "cuda/device_plan.cuh"
#include "cuda/ops.cuh"
#include "pcc/error.h"

namespace pcc {
namespace cuda {

int64_t param_unit_width();  // params.cu: int64s per unit record of build_param_units
int64_t category_major_unit_width();  // params_category_major.cu: the same for its units

namespace {

constexpr size_t kAlign = 256;

// Host image of the device buffer. put() appends an aligned section and returns the device address
// it will have (base + offset; base is 0 when only the size is wanted).
struct Staging {
  std::vector<unsigned char> bytes;
  uintptr_t base = 0;

  template <class T>
  const T* put(const T* data, size_t n) {
    const size_t off = (bytes.size() + kAlign - 1) / kAlign * kAlign;
    bytes.resize(off + std::max<size_t>(n * sizeof(T), 1));
    if (n) std::memcpy(bytes.data() + off, data, n * sizeof(T));
    return reinterpret_cast<const T*>(base + off);
  }
  template <class T>
  const T* put(const std::vector<T>& v) {
    return put(v.data(), v.size());
  }
};

int32_t to_i32(int64_t v, const char* what) {
  PCC_CHECK(v >= std::numeric_limits<int32_t>::min() && v <= std::numeric_limits<int32_t>::max(),
            "CUDA backend: ", what, " = ", v, " does not fit in 32 bits (the plan is too large for the GPU "
            "index layout)");
  return static_cast<int32_t>(v);
}

std::vector<int32_t> narrow(const std::vector<int64_t>& v, const char* what) {
  std::vector<int32_t> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = to_i32(v[i], what);
  return out;
}

// Puts the child blocks of a transposed CSR (rows: A starts per block; start: CSR offsets; entries:
// ascending within a block) in the order of their first entry, i * fanin + f, so that child blocks
// read by the same parent blocks (a PD or HCLT region's products) are neighbours in the grid: their
// CTAs run together and share the parent rows (flows and values) in L2 instead of each reading them
// from memory. Ties keep the starts order; the kernels assume no order.
void reorder_by_first_reader(int64_t A, std::vector<int32_t>& rows, std::vector<int32_t>& start,
                             std::vector<int32_t>& entries) {
  const size_t n = start.size() - 1;
  std::vector<size_t> perm(n);
  for (size_t k = 0; k < n; ++k) perm[k] = k;
  std::stable_sort(perm.begin(), perm.end(),
                   [&](size_t x, size_t y) { return entries[start[x]] < entries[start[y]]; });
  std::vector<int32_t> r, st, en;
  r.reserve(rows.size());
  st.reserve(start.size());
  en.reserve(entries.size());
  for (size_t k : perm) {
    r.insert(r.end(), rows.begin() + k * A, rows.begin() + (k + 1) * A);
    st.push_back(static_cast<int32_t>(en.size()));
    en.insert(en.end(), entries.begin() + start[k], entries.begin() + start[k + 1]);
  }
  st.push_back(static_cast<int32_t>(en.size()));
  rows.swap(r);
  start.swap(st);
  entries.swap(en);
}
// The per-entry arrays of a product partition's fused inputs (DevProduct::in_var and the rest): an
// entry whose child row lies in one of the groups it lists computes that node.
void put_fused_inputs(const Plan& p, const ProductPartition& pp, Staging& st, DevProduct& d) {
  std::vector<int32_t> var(pp.child_rows.size(), -1), stride(pp.child_rows.size(), 0);
  std::vector<int64_t> slot(pp.child_rows.size(), 0);
  for (const auto& [gl, gi] : pp.fused_inputs) {
    const InputGroup& g = p.layers[gl].inputs[gi];
    for (size_t e = 0; e < pp.child_rows.size(); ++e) {
      if (!holds_row(g, pp.child_rows[e])) continue;
      const int64_t node = pp.child_rows[e] - g.row_start;
      var[e] = to_i32(g.var[node], "input variable");
      slot[e] = g.param_offset[node];
      stride[e] = to_i32(g.cat_stride, "category stride");
    }
  }
  d.in_var = st.put(var);
  d.in_slot = st.put(slot);
  d.in_stride = st.put(stride);
}

// Builds the whole device image of `p` into st and the matching view into cp.
void layout(const Plan& p, Staging& st, CudaPlan& cp) {
  cp.plan = &p;
  to_i32(p.num_rows, "plan rows");
  to_i32(p.num_vars, "variables");

  std::vector<int64_t> pads;
  for (const auto& [first, count] : p.pad_ranges) {
    PCC_CHECK(first >= 0 && count >= 0 && first + count <= p.num_rows, "CUDA backend: pad range (", first, ", ",
              count, ") outside the plan's ", p.num_rows, " rows");
    pads.push_back(first);
    pads.push_back(count);
  }
  cp.num_pad_ranges = static_cast<int64_t>(p.pad_ranges.size());
  cp.pad_ranges = st.put(pads);
  PCC_CHECK(static_cast<int64_t>(p.var_limit.size()) == p.num_vars, "CUDA backend: plan has ", p.var_limit.size(),
            " variable limits for ", p.num_vars, " variables");
  cp.var_limit = st.put(p.var_limit);
  {
    std::vector<int32_t> err(kErrorInts, 0);
    cp.error = const_cast<int32_t*>(st.put(err));
  }

  cp.layers.clear();
  for (const Layer& l : p.layers) {
    DevLayer dl;
    dl.kind = l.kind;
    for (const InputGroup& g : l.inputs) {
      PCC_CHECK(static_cast<int64_t>(g.var.size()) == g.num_nodes &&
                    static_cast<int64_t>(g.param_offset.size()) == g.num_nodes &&
                    static_cast<int64_t>(g.num_cats.size()) == g.num_nodes,
                "CUDA backend: input group index arrays do not match its ", g.num_nodes, " nodes");
      DevInputGroup d;
      d.dist = g.dist;
      d.row_start = g.row_start;
      d.num_nodes = g.num_nodes;
      to_i32(g.row_start + g.num_nodes, "input rows");
      d.var = st.put(narrow(g.var, "input variable"));
      d.param_offset = st.put(g.param_offset);
      d.num_cats = st.put(narrow(g.num_cats, "category count"));
      d.cat_stride = g.cat_stride;
      d.fused = g.fused != 0;
      for (int64_t k : g.num_cats) d.max_cats = std::max<int32_t>(d.max_cats, static_cast<int32_t>(std::min<int64_t>(k, INT32_MAX)));
      dl.inputs.push_back(d);
    }
    for (const ProductPartition& pp : l.products) {
      PCC_CHECK(static_cast<int64_t>(pp.child_rows.size()) == pp.num_nodes * pp.fanin,
                "CUDA backend: product partition has ", pp.child_rows.size(), " child rows for ", pp.num_nodes,
                " nodes x fan-in ", pp.fanin);
      DevProduct d;
      d.row_start = pp.row_start;
      d.num_nodes = pp.num_nodes;
      d.fanin = to_i32(pp.fanin, "product fan-in");
      to_i32(pp.row_start + pp.num_nodes, "product rows");
      d.child_rows = st.put(narrow(pp.child_rows, "product child row"));
      // Disjoint unless a non-constant row is read twice (the constant rows are handled with atomics).
      std::vector<int64_t> rows;
      rows.reserve(pp.child_rows.size());
      for (int64_t r : pp.child_rows)
        if (r != Plan::kOneRow && r != Plan::kZeroRow) rows.push_back(r);
      std::sort(rows.begin(), rows.end());
      d.children_disjoint = std::adjacent_find(rows.begin(), rows.end()) == rows.end() ? 1 : 0;
      if (!pp.fused_inputs.empty()) put_fused_inputs(p, pp, st, d);
      dl.products.push_back(d);
    }
    for (const SumPartition& s : l.sums) {
      const int64_t entries = s.num_blocks * s.fanin, A = s.child_arity;
      PCC_CHECK(static_cast<int64_t>(s.out_rows.size()) == s.num_blocks &&
                    static_cast<int64_t>(s.child_rows.size()) == entries * A &&
                    static_cast<int64_t>(s.weight_offsets.size()) == entries,
                "CUDA backend: sum partition index arrays do not match its ", s.num_blocks, " blocks x fan-in ",
                s.fanin, " x child arity ", A);
      DevSum d;
      d.block_size = to_i32(s.block_size, "sum block size");
      d.child_block_size = to_i32(s.child_block_size, "sum child block size");
      d.fanin = to_i32(s.fanin, "sum fan-in");
      d.child_arity = to_i32(A, "sum child arity");
      d.num_blocks = s.num_blocks;
      to_i32(entries * A, "sum partition child rows (blocks x fan-in x child arity)");
      d.disjoint_weights = s.disjoint_weights ? 1 : 0;
      const int64_t list = s.fanin * A;  // child_rows per block
      int64_t runs = 0;
      for (int64_t i = 0; i < s.num_blocks; ++i)
        runs += i == 0 || !std::equal(s.child_rows.begin() + i * list, s.child_rows.begin() + (i + 1) * list,
                                      s.child_rows.begin() + (i - 1) * list);
      d.rows_per_child_list = runs > 0 ? s.num_blocks * s.block_size / runs : 1;
      d.out_rows = st.put(narrow(s.out_rows, "sum output row"));
      d.child_rows = st.put(narrow(s.child_rows, "sum child row"));
      d.weight_offsets = st.put(s.weight_offsets);
      // Transposed connectivity: distinct child blocks (grouped by their starts, then put in the order
      // of their first reader), each with its entries (ascending i * fanin + f); padding entries (-1)
      // are not listed.
      auto starts = [&](int64_t e) { return s.child_rows.begin() + e * A; };
      std::vector<int64_t> order;
      order.reserve(entries);
      for (int64_t e = 0; e < entries; ++e)
        if (*starts(e) >= 0) order.push_back(e);
      auto less = [&](int64_t x, int64_t y) {
        return std::lexicographical_compare(starts(x), starts(x) + A, starts(y), starts(y) + A);
      };
      auto same = [&](int64_t x, int64_t y) { return std::equal(starts(x), starts(x) + A, starts(y)); };
      std::stable_sort(order.begin(), order.end(), less);
      std::vector<int32_t> cb_rows, cb_start, cb_entries;
      cb_entries.reserve(order.size());
      for (size_t k = 0; k < order.size(); ++k) {
        if (k == 0 || !same(order[k], order[k - 1])) {
          for (int64_t a = 0; a < A; ++a) cb_rows.push_back(to_i32(starts(order[k])[a], "sum child row"));
          cb_start.push_back(static_cast<int32_t>(k));
        }
        cb_entries.push_back(static_cast<int32_t>(order[k]));
      }
      cb_start.push_back(static_cast<int32_t>(order.size()));
      reorder_by_first_reader(A, cb_rows, cb_start, cb_entries);
      d.num_child_blocks = static_cast<int64_t>(cb_start.size()) - 1;
      d.child_block_rows = st.put(cb_rows);
      d.child_block_start = st.put(cb_start);
      d.child_block_entries = st.put(cb_entries);
      dl.sums.push_back(d);
    }
    cp.layers.push_back(std::move(dl));
  }

  std::vector<int64_t> units, unit_blocks;
  build_param_units(p, units, unit_blocks);
  cp.num_units = static_cast<int64_t>(units.size()) / param_unit_width();
  cp.units = st.put(units);
  cp.unit_blocks = st.put(unit_blocks);
  std::vector<int64_t> cm_units;
  build_category_major_units(p, cm_units);
  cp.num_cm_units = static_cast<int64_t>(cm_units.size()) / category_major_unit_width();
  cp.cm_units = st.put(cm_units);
  PCC_CHECK(p.param_valid.size() == p.params.size(), "CUDA backend: plan has ", p.param_valid.size(),
            " validity flags for ", p.params.size(), " parameters");
  cp.param_valid = st.put(p.param_valid);
  cp.num_params = static_cast<int64_t>(p.params.size());
}

}  // namespace
}  // namespace cuda

int64_t cuda_plan_bytes(const Plan& p) {
  cuda::Staging st;
  CudaPlan cp;
  cuda::layout(p, st, cp);
  return static_cast<int64_t>(st.bytes.size());
}

namespace cuda {
// cuda_upload_plan (csrc/core/devices.cpp) runs validate_plan first, then this. (pcc_cuda links after
// pcc_core, so it calls nothing defined there.)
std::shared_ptr<CudaPlan> upload_plan(const Plan& p, void* device_buffer, int device, void* stream) {
  PCC_CHECK(device_buffer != nullptr, "cuda_upload_plan: no device buffer");
  PCC_CHECK(reinterpret_cast<uintptr_t>(device_buffer) % 16 == 0,
            "cuda_upload_plan: the device buffer must be 16-byte aligned");
  int count = 0;
  PCC_CUDA_CHECK(cudaGetDeviceCount(&count));
  PCC_CHECK(device >= 0 && device < count, "cuda_upload_plan: no CUDA device ", device, " (", count, " present)");
  int prev = 0;
  PCC_CUDA_CHECK(cudaGetDevice(&prev));
  PCC_CUDA_CHECK(cudaSetDevice(device));
  auto cp = std::make_shared<CudaPlan>();
  cuda::Staging st;
  st.base = reinterpret_cast<uintptr_t>(device_buffer);
  try {
    cuda::layout(p, st, *cp);
    cp->device = device;
    cudaStream_t s = static_cast<cudaStream_t>(stream);
    PCC_CUDA_CHECK(cudaMemcpyAsync(device_buffer, st.bytes.data(), st.bytes.size(), cudaMemcpyHostToDevice, s));
    PCC_CUDA_CHECK(cudaStreamSynchronize(s));  // the staging vector dies with this scope
  } catch (...) {
    cudaSetDevice(prev);
    throw;
  }
  PCC_CUDA_CHECK(cudaSetDevice(prev));
  return cp;
}
}  // namespace cuda

}  // namespace pcc
