// The .pcir/.pcplan container (container.h, docs/ir.md): header, CRC-32C, typed little-endian
// fields with bounds-checked reads, and atomic file writes.
#include "core/container.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <limits>
#include <sstream>

#include "pcc/error.h"

namespace pcc::container {
namespace {

// 8 bytes each; the \r\n\x1a tail catches text-mode transfers that mangle line endings, as in PNG.
constexpr char kCircuitMagic[8] = {'P', 'C', 'C', 'I', 'R', '\r', '\n', '\x1a'};
constexpr char kPlanMagic[8] = {'P', 'C', 'C', 'P', 'L', '\r', '\n', '\x1a'};

const char* magic_of(Kind k) { return k == Kind::Circuit ? kCircuitMagic : kPlanMagic; }
const char* noun_of(Kind k) { return k == Kind::Circuit ? "circuit file (.pcir)" : "plan file (.pcplan)"; }

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
constexpr bool kHostLittleEndian = true;
#else
constexpr bool kHostLittleEndian = false;
#endif

// Little-endian encode/decode of one value of any trivially copyable type.
template <class T>
void put(std::string& out, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  if (!kHostLittleEndian) {
    for (size_t i = 0; i < sizeof(T) / 2; ++i) std::swap(b[i], b[sizeof(T) - 1 - i]);
  }
  out.append(b, sizeof(T));
}

template <class T>
T get(const char* p) {
  char b[sizeof(T)];
  std::memcpy(b, p, sizeof(T));
  if (!kHostLittleEndian) {
    for (size_t i = 0; i < sizeof(T) / 2; ++i) std::swap(b[i], b[sizeof(T) - 1 - i]);
  }
  T v;
  std::memcpy(&v, b, sizeof(T));
  return v;
}

template <class T>
void put_array(std::string& out, const std::vector<T>& v) {
  put<uint64_t>(out, v.size());
  if (kHostLittleEndian) {
    out.append(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
  } else {
    for (const T& x : v) put<T>(out, x);
  }
}

struct CrcTables {
  uint32_t t[8][256];
  CrcTables() {
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;  // reflected 0x1EDC6F41
      t[0][i] = c;
    }
    for (int k = 1; k < 8; ++k) {
      for (uint32_t i = 0; i < 256; ++i) t[k][i] = (t[k - 1][i] >> 8) ^ t[0][t[k - 1][i] & 0xff];
    }
  }
};

std::string hex32(uint32_t v) {
  std::ostringstream s;
  s << "0x" << std::hex << v;
  return s.str();
}

std::string errno_text() { return std::strerror(errno); }

}  // namespace

uint32_t crc32c(const void* data, size_t size, uint32_t crc) {
  static const CrcTables tables;
  const auto& t = tables.t;
  const unsigned char* p = static_cast<const unsigned char*>(data);
  crc = ~crc;
  // Slicing-by-8: eight table lookups per 8 bytes, so checksumming a 100 MB plan costs well under a
  // second on one core.
  while (size >= 8) {
    const uint32_t lo = (uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24) ^ crc;
    const uint32_t hi = uint32_t(p[4]) | uint32_t(p[5]) << 8 | uint32_t(p[6]) << 16 | uint32_t(p[7]) << 24;
    crc = t[7][lo & 0xff] ^ t[6][(lo >> 8) & 0xff] ^ t[5][(lo >> 16) & 0xff] ^ t[4][lo >> 24] ^
          t[3][hi & 0xff] ^ t[2][(hi >> 8) & 0xff] ^ t[1][(hi >> 16) & 0xff] ^ t[0][hi >> 24];
    p += 8;
    size -= 8;
  }
  while (size--) crc = t[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
  return ~crc;
}

// ---- Writer ----

void Writer::u8(uint8_t v) { buf_.push_back(static_cast<char>(v)); }
void Writer::u32(uint32_t v) { put(buf_, v); }
void Writer::u64(uint64_t v) { put(buf_, v); }
void Writer::i64(int64_t v) { put(buf_, v); }
void Writer::f32(float v) { put(buf_, v); }
void Writer::i64s(const std::vector<int64_t>& v) { put_array(buf_, v); }
void Writer::f32s(const std::vector<float>& v) { put_array(buf_, v); }
void Writer::str(const std::string& s) {
  put<uint64_t>(buf_, s.size());
  buf_.append(s);
}

std::string Writer::seal(Kind kind, uint32_t version) const {
  std::string out;
  out.reserve(kHeaderSize + buf_.size());
  out.append(magic_of(kind), 8);
  put<uint32_t>(out, version);
  put<uint32_t>(out, 0);  // flags: none defined
  put<uint64_t>(out, buf_.size());
  put<uint32_t>(out, crc32c(buf_.data(), buf_.size()));
  put<uint32_t>(out, 0);  // reserved
  out.append(buf_);
  return out;
}

// ---- Reader ----

Reader::Reader(const char* data, size_t size, size_t base_offset, std::string source, uint32_t version)
    : data_(data), size_(size), base_(base_offset), source_(std::move(source)), version_(version) {}

std::string Reader::field(const char* what) const {
  return context_.empty() ? std::string(what) : std::string(what) + " of " + context_;
}

void Reader::need(size_t bytes, const char* what) const {
  if (bytes > remaining()) {
    raise(source_, ": truncated: need ", bytes, " bytes for ", field(what), " at offset ", offset(),
          ", ", remaining(), " left");
  }
}

uint8_t Reader::u8(const char* what) {
  need(1, what);
  return static_cast<uint8_t>(data_[pos_++]);
}

#define PCC_READER_SCALAR(name, T)    \
  T Reader::name(const char* what) {  \
    need(sizeof(T), what);            \
    const T v = get<T>(data_ + pos_); \
    pos_ += sizeof(T);                \
    return v;                         \
  }
PCC_READER_SCALAR(u32, uint32_t)
PCC_READER_SCALAR(u64, uint64_t)
PCC_READER_SCALAR(i64, int64_t)
PCC_READER_SCALAR(f32, float)
#undef PCC_READER_SCALAR

size_t Reader::count(const char* what, size_t min_record_bytes) {
  const uint64_t n = u64(what);
  if (min_record_bytes > 0 && n > remaining() / min_record_bytes) {
    if (n > std::numeric_limits<uint64_t>::max() / min_record_bytes) {
      raise(source_, ": truncated: count ", n, " for ", field(what), " at offset ", offset(),
            " is impossibly large, ", remaining(), " bytes left");
    }
    raise(source_, ": truncated: need ", n * min_record_bytes, " bytes for ", field(what), " at offset ",
          offset(), ", ", remaining(), " left");
  }
  return static_cast<size_t>(n);
}

namespace {
template <class T>
std::vector<T> read_array(Reader& r, const char* data, size_t& pos, const char* what) {
  const size_t n = r.count(what, sizeof(T));  // checked against the remaining bytes first
  std::vector<T> v(n);
  if (kHostLittleEndian) {
    if (n) std::memcpy(v.data(), data + pos, n * sizeof(T));
  } else {
    for (size_t i = 0; i < n; ++i) v[i] = get<T>(data + pos + i * sizeof(T));
  }
  pos += n * sizeof(T);
  return v;
}
}  // namespace

std::vector<int64_t> Reader::i64s(const char* what) { return read_array<int64_t>(*this, data_, pos_, what); }
std::vector<float> Reader::f32s(const char* what) { return read_array<float>(*this, data_, pos_, what); }

std::string Reader::str(const char* what) {
  const size_t n = count(what, 1);
  std::string s(data_ + pos_, n);
  pos_ += n;
  return s;
}

void Reader::expect_end() {
  if (remaining() != 0) {
    raise(source_, ": corrupt: ", remaining(), " unread bytes at the end of the payload at offset ",
          offset());
  }
}

// ---- open ----

Reader open(const std::string& bytes, Kind kind, const std::string& source) {
  const size_t size = bytes.size();
  const char* p = bytes.data();
  const size_t m = size < 8 ? size : 8;
  if (std::memcmp(p, magic_of(kind), m) != 0) {
    const Kind other = kind == Kind::Circuit ? Kind::Plan : Kind::Circuit;
    if (m == 8 && std::memcmp(p, magic_of(other), 8) == 0) {
      raise(source, ": not a pcc ", noun_of(kind), ": it is a pcc ", noun_of(other));
    }
    raise(source, ": not a pcc ", noun_of(kind), " (bad magic bytes at offset 0)");
  }
  if (size < 12) {
    raise(source, ": truncated: need ", kHeaderSize, " bytes for the header at offset 0, ", size,
          " left");
  }
  // Magic and version sit at the same place in every version, so a newer file is recognised as such.
  const uint32_t version = get<uint32_t>(p + 8), newest = version_of(kind), oldest = oldest_version_of(kind);
  if (version > newest) {
    raise(source, ": file version ", version, " is newer than this pcc reads (", newest,
          "); upgrade pcc");
  }
  if (version < oldest) {
    raise(source, ": file version ", version, " is older than this pcc reads (", oldest,
          kind == Kind::Plan ? "); recompile the circuit to get a current plan"
                             : "); no older version exists, so the file is damaged or was not written by pcc");
  }
  if (size < kHeaderSize) {
    raise(source, ": truncated: need ", kHeaderSize, " bytes for the header at offset 0, ", size,
          " left");
  }
  const uint32_t flags = get<uint32_t>(p + 12);
  const uint64_t length = get<uint64_t>(p + 16);
  const uint32_t stored = get<uint32_t>(p + 24);
  const uint32_t reserved = get<uint32_t>(p + 28);
  if (flags != 0) raise(source, ": corrupt: unknown header flags ", hex32(flags), " at offset 12");
  if (reserved != 0) raise(source, ": corrupt: reserved header field is ", hex32(reserved), " at offset 28");
  const size_t left = size - kHeaderSize;
  if (length > left) {
    raise(source, ": truncated: need ", length, " bytes for the payload at offset ", kHeaderSize, ", ",
          left, " left");
  }
  if (length < left) {
    raise(source, ": corrupt: ", left - length, " trailing bytes after the payload at offset ",
          kHeaderSize + length);
  }
  const uint32_t computed = crc32c(p + kHeaderSize, length);
  if (computed != stored) {
    raise(source, ": corrupt: checksum mismatch (header says ", hex32(stored), ", payload has ",
          hex32(computed), ")");
  }
  return Reader(p + kHeaderSize, length, kHeaderSize, source, version);
}

// ---- files ----

std::string read_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) raise("cannot open ", path, ": ", errno_text());
  struct stat st {};
  if (::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
    ::close(fd);
    raise("cannot read ", path, ": it is a directory");
  }
  std::string out;
  if (st.st_size > 0) out.reserve(static_cast<size_t>(st.st_size));
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      const std::string why = errno_text();
      ::close(fd);
      raise("cannot read ", path, ": ", why);
    }
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

void write_file_atomic(const std::string& path, const std::string& bytes) {
  std::string tmp = path + ".tmpXXXXXX";
  const int fd = ::mkstemp(tmp.data());
  if (fd < 0) raise("cannot write ", path, ": cannot create a temporary file next to it: ", errno_text());
  auto abandon = [&](const std::string& why) {
    ::close(fd);
    ::unlink(tmp.c_str());
    raise("cannot write ", path, ": ", why);
  };
  // mkstemp creates 0600; give the file the mode it had, or the usual 0644 for a new one.
  struct stat st {};
  const mode_t mode = ::stat(path.c_str(), &st) == 0 ? (st.st_mode & 07777) : 0644;
  if (::fchmod(fd, mode) != 0) abandon(errno_text());
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      abandon(errno_text());
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) abandon(errno_text());
  if (::close(fd) != 0) {
    const std::string why = errno_text();
    ::unlink(tmp.c_str());
    raise("cannot write ", path, ": ", why);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string why = errno_text();
    ::unlink(tmp.c_str());
    raise("cannot write ", path, ": ", why);
  }
  // Make the rename itself durable; failing to open the directory is not an error for the caller.
  const size_t slash = path.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

}  // namespace pcc::container
