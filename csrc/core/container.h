// The binary container shared by .pcir and .pcplan files (docs/ir.md): a fixed 32-byte header
// (magic, format version, payload length, CRC-32C of the payload) followed by a little-endian
// payload of typed fields. Writer builds payloads; Reader takes them apart with every size checked
// against the bytes that remain *before* anything is allocated, so a corrupt or hostile file can only
// ever produce a pcc::Error naming the file, the byte offset and the field, never a crash or a huge
// allocation.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace pcc::container {

enum class Kind : uint8_t { Circuit, Plan };

// The version of each kind this build writes, and the oldest it still reads (plans: 2 added
// recompute lists, 3 the input parameters' cat_stride, 4 the sum partitions' child_arity; a version 2
// plan reads as node-major, versions 2 and 3 with child_arity 1).
constexpr uint32_t kCircuitVersion = 1, kPlanVersion = 5, kOldestPlanVersion = 2;
constexpr uint32_t version_of(Kind k) { return k == Kind::Plan ? kPlanVersion : kCircuitVersion; }
constexpr uint32_t oldest_version_of(Kind k) { return k == Kind::Plan ? kOldestPlanVersion : kCircuitVersion; }
constexpr size_t kHeaderSize = 32;

// CRC-32C (Castagnoli), table driven; `crc` continues an earlier call (0 to start).
uint32_t crc32c(const void* data, size_t size, uint32_t crc = 0);

// Appends typed little-endian fields to a payload.
class Writer {
 public:
  void u8(uint8_t v);
  void u32(uint32_t v);
  void u64(uint64_t v);
  void i64(int64_t v);
  void f32(float v);
  void count(size_t n) { u64(n); }  // element count of what follows
  void i64s(const std::vector<int64_t>& v);  // count, then the elements
  void f32s(const std::vector<float>& v);
  void str(const std::string& s);
  const std::string& payload() const { return buf_; }
  // Header + payload, ready for a file.
  std::string seal(Kind kind) const { return seal(kind, version_of(kind)); }
  std::string seal(Kind kind, uint32_t version) const;

 private:
  std::string buf_;
};

// Reads fields back. `what` names the field for error messages; the current context (set_context,
// e.g. "vector 7") is appended to it: "sum_edges of vector 7".
class Reader {
 public:
  Reader(const char* data, size_t size, size_t base_offset, std::string source, uint32_t version);

  void set_context(std::string context) { context_ = std::move(context); }
  uint8_t u8(const char* what);
  uint32_t u32(const char* what);
  uint64_t u64(const char* what);
  int64_t i64(const char* what);
  float f32(const char* what);
  // A count of records of at least `min_record_bytes` each: refused unless that many bytes remain.
  size_t count(const char* what, size_t min_record_bytes);
  std::vector<int64_t> i64s(const char* what);
  std::vector<float> f32s(const char* what);
  std::string str(const char* what);

  uint32_t version() const { return version_; }  // the file's format version
  size_t offset() const { return base_ + pos_; }  // in the file
  size_t remaining() const { return size_ - pos_; }
  const std::string& source() const { return source_; }
  // Throws unless every payload byte was consumed.
  void expect_end();
  // `what` with the current context appended.
  std::string field(const char* what) const;

 private:
  void need(size_t bytes, const char* what) const;

  const char* data_;
  size_t size_, pos_ = 0, base_;
  std::string source_, context_;
  uint32_t version_;
};

// Checks header (a version this build reads), length and checksum of a whole file's bytes and
// returns a Reader over its payload.
// Errors name `source`; a file of the other kind gets a message saying which kind it is.
Reader open(const std::string& bytes, Kind kind, const std::string& source);

// Whole file into memory; throws pcc::Error naming the path on failure.
std::string read_file(const std::string& path);
// Writes to a temporary file in the same directory, fsyncs and renames it over `path`, so readers
// never see a half-written file; on failure the temporary is removed and an existing file is kept.
void write_file_atomic(const std::string& path, const std::string& bytes);

}  // namespace pcc::container
