// A minimal test harness for the C++ tests (no external framework): CHECK macros that count
// failures and print file:line, and CHECK_THROWS, which also checks the pcc::Error message.
#pragma once
#include <cstdio>
#include <functional>
#include <initializer_list>
#include <string>

#include "pcc/error.h"

namespace pcc_test {

inline int& failures() {
  static int n = 0;
  return n;
}

inline void fail(const char* file, int line, const std::string& what) {
  ++failures();
  std::fprintf(stderr, "%s:%d: FAILED: %s\n", file, line, what.c_str());
}

// Runs f, which must throw pcc::Error whose message contains every one of `parts`.
inline void check_throws(const char* file, int line, const char* expr, const std::function<void()>& f,
                         std::initializer_list<const char*> parts) {
  try {
    f();
  } catch (const pcc::Error& e) {
    const std::string msg = e.what();
    for (const char* p : parts) {
      if (msg.find(p) == std::string::npos) {
        fail(file, line, std::string(expr) + ": message \"" + msg + "\" lacks \"" + p + "\"");
        return;
      }
    }
    return;
  } catch (const std::exception& e) {
    fail(file, line, std::string(expr) + ": threw a non-pcc exception: " + e.what());
    return;
  }
  fail(file, line, std::string(expr) + ": did not throw");
}

inline int report(const char* name) {
  if (failures()) {
    std::fprintf(stderr, "%s: %d check(s) failed\n", name, failures());
    return 1;
  }
  std::printf("%s: all checks passed\n", name);
  return 0;
}

}  // namespace pcc_test

#define CHECK(cond) \
  do { if (!(cond)) ::pcc_test::fail(__FILE__, __LINE__, #cond); } while (0)
#define CHECK_EQ(a, b)                                                                            \
  do {                                                                                           \
    if (!((a) == (b))) ::pcc_test::fail(__FILE__, __LINE__, std::string(#a " == " #b) + " (" +   \
                                        std::to_string(a) + " vs " + std::to_string(b) + ")");  \
  } while (0)
// CHECK_THROWS(statement, "substring", ...): the statement throws pcc::Error naming every substring.
#define CHECK_THROWS(stmt, ...) \
  ::pcc_test::check_throws(__FILE__, __LINE__, #stmt, [&]() { stmt; }, {__VA_ARGS__})
