// pcc::Error: the one exception type the core throws for bad input (circuits, files, tensors).
// Messages name the offending thing (node vector, argument, file offset) so users can fix it.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace pcc {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

template <class... Parts>
[[noreturn]] void raise(const Parts&... parts) {
  std::ostringstream s;
  (s << ... << parts);
  throw Error(s.str());
}

}  // namespace pcc

// PCC_CHECK(cond, "message ", value, ...): throws pcc::Error with the concatenated message.
#define PCC_CHECK(cond, ...)          \
  do {                                \
    if (!(cond)) ::pcc::raise(__VA_ARGS__); \
  } while (0)
