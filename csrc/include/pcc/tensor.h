// TensorRef: a non-owning view of a buffer that crosses the core's API. Field meanings follow DLPack
// (device type codes, element strides) so torch, NumPy or an embedder can hand over memory they own.
#pragma once
#include <cstdint>

namespace pcc {

enum class DType : uint8_t { Bool, UInt8, Int8, Int16, Int32, Int64, Float32, Float64 };
enum class DeviceType : int32_t { CPU = 1, CUDA = 2 };  // DLPack's kDLCPU / kDLCUDA

constexpr int kMaxDims = 4;

struct TensorRef {
  void* data = nullptr;
  DType dtype = DType::Float32;
  DeviceType device = DeviceType::CPU;
  int32_t device_id = 0;
  int32_t ndim = 0;
  int64_t shape[kMaxDims] = {0, 0, 0, 0};
  int64_t strides[kMaxDims] = {0, 0, 0, 0};  // in elements

  int64_t numel() const {
    int64_t n = 1;
    for (int i = 0; i < ndim; ++i) n *= shape[i];
    return n;
  }
};

const char* to_string(DType t);
int64_t dtype_size(DType t);
bool is_floating(DType t);

}  // namespace pcc
