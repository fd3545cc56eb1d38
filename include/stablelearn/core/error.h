// One way to fail (shared/STYLE.md #6): every error stablelearn raises is a stablelearn::Error
// carrying a message with its context (file, key, shape). Library code throws; only main()
// catches, prints one line and exits with Error::exit_code().
//
//   SL_CHECK(n > 0, DataError, path, ": expected at least one demonstration, got ", n);
//
// Exit codes of the command-line tool: 2 for bad input (user's file, config, shape, usage),
// 1 for internal failures (a bug, an unexpected library exception).
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace stablelearn {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
  /// Process exit status the CLI uses for this error.
  virtual int exit_code() const noexcept { return 2; }
  /// Short category name used as message prefix ("data error", ...).
  virtual const char* kind() const noexcept { return "error"; }
};

#define SL_DEFINE_ERROR(Name, Kind, Code)                                   \
  class Name : public Error {                                               \
   public:                                                                  \
    explicit Name(const std::string& what) : Error(what) {}                 \
    int exit_code() const noexcept override { return Code; }                \
    const char* kind() const noexcept override { return Kind; }             \
  };

/// A file that cannot be opened, read or written.
SL_DEFINE_ERROR(IoError, "io error", 2)
/// A file or array whose contents are not what was expected (corrupt, truncated, NaN, ...).
SL_DEFINE_ERROR(DataError, "data error", 2)
/// Arrays whose shapes do not fit together.
SL_DEFINE_ERROR(ShapeError, "shape error", 2)
/// A bad configuration key or value.
SL_DEFINE_ERROR(ConfigError, "config error", 2)
/// A bad command line.
SL_DEFINE_ERROR(UsageError, "usage error", 2)
/// A broken invariant inside stablelearn: a bug.
SL_DEFINE_ERROR(InternalError, "internal error", 1)
#undef SL_DEFINE_ERROR

namespace detail {
template <typename... Args>
std::string concat(Args&&... args) {
  std::ostringstream os;
  os.precision(17);
  (os << ... << std::forward<Args>(args));
  return os.str();
}
}  // namespace detail

}  // namespace stablelearn

/// Throws stablelearn::Kind with the streamed concatenation of the remaining arguments.
#define SL_THROW(Kind, ...) throw ::stablelearn::Kind(::stablelearn::detail::concat(__VA_ARGS__))

/// Checks `cond`; on failure throws stablelearn::Kind with the streamed message.
#define SL_CHECK(cond, Kind, ...)      \
  do {                                 \
    if (!(cond)) SL_THROW(Kind, __VA_ARGS__); \
  } while (0)
