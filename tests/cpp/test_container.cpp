// The .pcir/.pcplan container: CRC, field round trip, and the safety rules: every truncation and
// every single-byte change of a real file is rejected with pcc::Error (never a crash), counts are
// refused before allocating, versions and kinds are named, writes are atomic.
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "check.h"
#include "core/container.h"
#include "pcc/ir.h"
#include "pcc/plan.h"
#include "samples.h"

using namespace pcc;
using namespace pcc_test;
namespace ct = pcc::container;

namespace {

// Every prefix and every single-byte change of a valid file must be rejected with pcc::Error.
template <class Parse>
void fuzz(const std::string& file, Parse parse) {
  for (size_t n = 0; n < file.size(); ++n) CHECK_THROWS(parse(file.substr(0, n)), "truncated");
  for (size_t i = 0; i < file.size(); ++i) {
    for (unsigned mask : {0x01u, 0x80u, 0xffu}) {
      std::string bad = file;
      bad[i] = static_cast<char>(bad[i] ^ mask);
      CHECK_THROWS(parse(bad), "");
    }
  }
  CHECK_THROWS(parse(file + "x"), "trailing bytes");
}

std::string with_version(std::string file, uint32_t v) {
  for (int k = 0; k < 4; ++k) file[8 + k] = static_cast<char>((v >> (8 * k)) & 0xff);
  return file;
}

int count_entries(const std::string& dir) {
  int n = 0;
  DIR* d = opendir(dir.c_str());
  while (dirent* e = readdir(d)) n += e->d_name[0] != '.';
  closedir(d);
  return n;
}

}  // namespace

int main() {
  CHECK_EQ(ct::crc32c("123456789", 9), 0xE3069283u);  // the standard CRC-32C check value
  {
    const std::string s = "The quick brown fox jumps over the lazy dog, twice over for length.";
    CHECK_EQ(ct::crc32c(s.data() + 5, s.size() - 5, ct::crc32c(s.data(), 5)), ct::crc32c(s.data(), s.size()));
  }
  {  // Field round trip.
    ct::Writer w;
    w.u8(200);
    w.u32(0xdeadbeef);
    w.i64(-5);
    w.f32(-0.0f);
    w.i64s({1, -2, std::numeric_limits<int64_t>::min()});
    w.f32s({});
    w.str("hello");
    const std::string file = w.seal(ct::Kind::Circuit);
    CHECK_EQ(file.size(), ct::kHeaderSize + w.payload().size());
    ct::Reader r = ct::open(file, ct::Kind::Circuit, "mem");
    CHECK_EQ(r.u8("a"), 200);
    CHECK_EQ(r.u32("b"), 0xdeadbeefu);
    CHECK_EQ(r.i64("c"), -5);
    const float z = r.f32("d");
    CHECK(z == 0.0f && std::signbit(z));
    CHECK(r.i64s("e") == (std::vector<int64_t>{1, -2, std::numeric_limits<int64_t>::min()}));
    CHECK(r.f32s("f").empty());
    CHECK(r.str("g") == "hello");
    r.expect_end();
    CHECK_THROWS(r.u8("more"), "mem: truncated: need 1 bytes for more at offset");
  }
  {  // Counts are refused before anything is allocated, naming field, context, offset and bytes left.
    ct::Writer w;
    w.u64(uint64_t(1) << 60);
    w.u64(7);
    ct::Reader r = ct::open(w.seal(ct::Kind::Plan), ct::Kind::Plan, "f.pcplan");
    r.set_context("vector 7");
    CHECK_THROWS(r.i64s("sum_edges"), "f.pcplan: truncated: need 9223372036854775808 bytes for sum_edges of vector 7 at offset 40, 8 left");
    ct::Writer w2;
    w2.u64(std::numeric_limits<uint64_t>::max());
    ct::Reader r2 = ct::open(w2.seal(ct::Kind::Plan), ct::Kind::Plan, "g");
    CHECK_THROWS(r2.f32s("params"), "truncated", "params", "impossibly large");
    ct::Writer w3;
    w3.u64(3);
    ct::Reader r3 = ct::open(w3.seal(ct::Kind::Plan), ct::Kind::Plan, "h");
    CHECK_THROWS(r3.count("layer count", 25), "need 75 bytes for layer count at offset 40, 0 left");
  }
  const std::string circuit = serialize_circuit(tiny_circuit());
  const std::string plan = serialize_plan(tiny_plan());
  {  // Header checks.
    CHECK_THROWS(parse_circuit("", "e.pcir"), "e.pcir: truncated: need 32 bytes for the header");
    CHECK_THROWS(parse_circuit("hello world, not a circuit at all", "t.txt"), "t.txt: not a pcc circuit file");
    CHECK_THROWS(parse_circuit(plan, "p.pcplan"), "p.pcplan: not a pcc circuit file (.pcir): it is a pcc plan file (.pcplan)");
    CHECK_THROWS(parse_plan(circuit, "c.pcir"), "c.pcir: not a pcc plan file (.pcplan): it is a pcc circuit file (.pcir)");
    CHECK_THROWS(parse_circuit(with_version(circuit, 2), "v2"), "v2: file version 2 is newer than this pcc reads (1)");
    CHECK_THROWS(parse_circuit(with_version(circuit, 0), "v0"), "v0: file version 0 is older than this pcc reads (1)");
    CHECK_THROWS(parse_plan(with_version(plan, 9), "v9"), "file version 9 is newer than this pcc reads (5)");
    CHECK_THROWS(parse_plan(with_version(plan, 1), "v1"),
                 "v1: file version 1 is older than this pcc reads (2); recompile the circuit");
    std::string bad = circuit;
    bad[ct::kHeaderSize + 3] ^= 0x10;
    CHECK_THROWS(parse_circuit(bad, "x.pcir"), "x.pcir: corrupt: checksum mismatch");
    CHECK_THROWS(parse_circuit(circuit.substr(0, circuit.size() - 1), "y"), "y: truncated: need",
                 "bytes for the payload at offset 32");
  }
  fuzz(circuit, [](const std::string& b) { parse_circuit(b, "fuzz.pcir"); });
  fuzz(plan, [](const std::string& b) { parse_plan(b, "fuzz.pcplan"); });

  {  // Atomic writes.
    char tmpl[] = "/tmp/pcc_test_container_XXXXXX";
    const std::string dir = mkdtemp(tmpl);
    const std::string path = dir + "/c.pcir";
    write_circuit(tiny_circuit(), path);
    CHECK(serialize_circuit(read_circuit(path)) == circuit);
    write_circuit(tiny_circuit(), path);  // overwrite in place
    CHECK_EQ(count_entries(dir), 1);
    // A directory in the way: the rename fails, the temporary goes, the directory stays.
    const std::string blocker = dir + "/blocker";
    mkdir(blocker.c_str(), 0755);
    CHECK_THROWS(write_plan(tiny_plan(), blocker), "cannot write", "blocker");
    CHECK_EQ(count_entries(dir), 2);
    struct stat st {};
    CHECK(stat(blocker.c_str(), &st) == 0 && S_ISDIR(st.st_mode));
    CHECK_THROWS(write_circuit(tiny_circuit(), dir + "/missing/x.pcir"), "cannot write", "missing/x.pcir");
    CHECK_THROWS(read_circuit(dir + "/nope.pcir"), "cannot open", "nope.pcir");
    CHECK_THROWS(read_circuit(blocker), "blocker", "directory");
    rmdir(blocker.c_str());
    unlink(path.c_str());
    rmdir(dir.c_str());
  }
  return report("test_container");
}
