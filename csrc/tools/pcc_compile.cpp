// pcc-compile: the standalone compiler CLI (no Python). Reads a .pcir circuit, compiles it, writes
// the .pcplan and prints the compile report; --dump-after prints a pass's result (golden tests use
// it); --report prints the report of an existing plan. Bad input of any kind exits with code 2 and
// one line on stderr, so scripts and the tests/error suite can rely on both.
#include <charconv>
#include <cstdio>
#include <iostream>
#include <sstream>
#include <string>

#include "pcc/compiler.h"
#include "pcc/error.h"
#include "pcc/ir.h"
#include "pcc/plan.h"

namespace {

constexpr int kBadInput = 2;
constexpr int kInternalError = 1;

void usage(std::ostream& out) {
  out << "usage: pcc-compile IN.pcir [-o OUT.pcplan] [--block-size=N] [--max-partitions=N]\n"
         "                   [--category-major-cats=N] [--fuse-products] [--fuse-max-arity=N]\n"
         "                   [--no-fuse-inputs] [--chunk-input-rows=N]\n"
         "                   [--dump-after=PASS] [--quiet]\n"
         "       pcc-compile --report PLAN.pcplan\n"
         "\n"
         "Compiles a circuit into an execution plan and prints the compile report.\n"
         "  -o, --output=FILE      write the plan to FILE (.pcplan)\n"
         "  --block-size=N         sum block size, a power of two (default: chosen per vector)\n"
         "  --max-partitions=N     fan-in buckets per layer (default 4)\n"
         "  --category-major-cats=N\n"
         "                         store categorical inputs with more than N categories category-major\n"
         "                         (default 512; 0: all, -1: none)\n"
         "  --fuse-products        compute element-wise products of sums inside the sums that read them\n"
         "                         (no rows for their values or flows)\n"
         "  --fuse-max-arity=N     with --fuse-products: only products of at most N children (default 64)\n"
         "  --no-fuse-inputs       compute every input in its own layer (default: discrete inputs that only\n"
         "                         products read are computed inside those products)\n"
         "  --chunk-input-rows=N   a product layer reading more input rows than N runs in pieces, each\n"
         "                         right after its own inputs (default 16384)\n"
         "  --dump-after=PASS      print the result of PASS to stdout; passes:";
  for (const auto& n : pcc::pass_names()) out << ' ' << n;
  out << "\n"
         "  --quiet                do not print the report\n"
         "  --report               read a .pcplan and print its report\n"
         "  -h, --help             show this help\n"
         "Exit codes: 0 success, 2 invalid input or arguments, 1 internal error.\n";
}

struct Args {
  std::string input, output;
  pcc::CompileOptions options;
  bool quiet = false, report = false, help = false;
};

int64_t parse_int(const std::string& flag, const std::string& text, int64_t min = 0) {
  int64_t v = 0;
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, v);
  PCC_CHECK(ec == std::errc() && ptr == end && v >= min, "bad value '", text, "' for ", flag,
            min == 0 ? std::string(" (expected a non-negative integer)")
                     : " (expected an integer >= " + std::to_string(min) + ")");
  return v;
}

Args parse_args(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    std::string value;
    bool has_value = false;
    if (arg.rfind("--", 0) == 0) {
      const size_t eq = arg.find('=');
      if (eq != std::string::npos) {
        value = arg.substr(eq + 1);
        arg = arg.substr(0, eq);
        has_value = true;
      }
    }
    // Options that take a value accept "--opt=V" and "--opt V".
    auto take = [&]() -> std::string {
      if (has_value) return value;
      PCC_CHECK(i + 1 < argc, "option ", arg, " needs a value");
      return argv[++i];
    };
    auto no_value = [&]() { PCC_CHECK(!has_value, "option ", arg, " takes no value"); };
    if (arg == "-h" || arg == "--help") {
      no_value();
      a.help = true;
    } else if (arg == "-o" || arg == "--output") {
      a.output = take();
      PCC_CHECK(!a.output.empty(), "option ", arg, " needs a file name");
    } else if (arg == "--block-size") {
      a.options.block_size = parse_int(arg, take());
    } else if (arg == "--max-partitions") {
      a.options.max_partitions = parse_int(arg, take());
    } else if (arg == "--category-major-cats") {
      a.options.category_major_cats = parse_int(arg, take(), -1);
    } else if (arg == "--chunk-input-rows") {
      a.options.chunk_input_rows = parse_int(arg, take(), 1);
    } else if (arg == "--fuse-max-arity") {
      a.options.fuse_max_arity = parse_int(arg, take(), 1);
    } else if (arg == "--fuse-products") {
      no_value();
      a.options.fuse_products = true;
    } else if (arg == "--no-fuse-inputs") {
      no_value();
      a.options.fuse_inputs = false;
    } else if (arg == "--dump-after") {
      a.options.dump_after = take();
      bool known = false;
      for (const auto& n : pcc::pass_names()) known = known || n == a.options.dump_after;
      if (!known) {
        std::ostringstream names;
        for (const auto& n : pcc::pass_names()) names << (names.tellp() ? ", " : "") << n;
        pcc::raise("unknown pass '", a.options.dump_after, "' for --dump-after (passes: ", names.str(), ")");
      }
    } else if (arg == "--quiet") {
      no_value();
      a.quiet = true;
    } else if (arg == "--report") {
      no_value();
      a.report = true;
    } else if (arg.size() > 1 && arg[0] == '-') {
      pcc::raise("unknown option '", argv[i], "' (see --help)");
    } else {
      PCC_CHECK(a.input.empty(), "more than one input file ('", a.input, "' and '", arg, "')");
      a.input = arg;
    }
  }
  if (a.help) return a;
  PCC_CHECK(!a.input.empty(), "no input file (see --help)");
  if (a.report) {  // compile options would be silently ignored: the plan is already compiled
    const pcc::CompileOptions d;
    const pcc::CompileOptions& o = a.options;
    PCC_CHECK(a.output.empty() && o.dump_after.empty() && o.block_size == d.block_size &&
                  o.max_partitions == d.max_partitions && o.reuse_rows == d.reuse_rows &&
                  o.chunk_input_rows == d.chunk_input_rows && o.category_major_cats == d.category_major_cats &&
                  o.fuse_products == d.fuse_products && o.fuse_max_arity == d.fuse_max_arity &&
                  o.fuse_inputs == d.fuse_inputs && !a.quiet,
              "--report takes only a .pcplan file (compile options apply when compiling a circuit)");
  }
  return a;
}

int run(const Args& a) {
  if (a.report) {
    std::cout << pcc::plan_report(pcc::read_plan(a.input));
    return 0;
  }
  const pcc::Circuit circuit = pcc::read_circuit(a.input);
  std::ostringstream dump;
  pcc::Plan plan;
  try {
    plan = pcc::compile(circuit, a.options, &dump);
  } catch (const pcc::Error& e) {
    pcc::raise(a.input, ": ", e.what());  // readers name the file themselves; the passes do not
  }
  if (!a.output.empty()) pcc::write_plan(plan, a.output);
  std::cout << dump.str();
  if (!a.quiet) std::cout << pcc::plan_report(plan);
  return 0;
}

// One line, whatever the message holds.
void fail(const char* what, const std::string& message) {
  std::string line = message;
  for (char& ch : line) {
    if (ch == '\n' || ch == '\r') ch = ' ';
  }
  std::cerr << "pcc-compile: " << what << ": " << line << std::endl;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Args a = parse_args(argc, argv);
    if (a.help) {
      usage(std::cout);
      return 0;
    }
    return run(a);
  } catch (const pcc::Error& e) {
    fail("error", e.what());
    return kBadInput;
  } catch (const std::exception& e) {
    // Not the user's fault: a bug in pcc (or out of memory). Kept apart from exit code 2 so the
    // error-case tests notice it.
    fail("internal error", e.what());
    return kInternalError;
  }
}
