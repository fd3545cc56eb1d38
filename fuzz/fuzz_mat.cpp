// libFuzzer target for the MATLAB reader (io/mat.h, on Debian's matio; scripts/fuzz.sh builds and
// runs it). matio reads from a path, so the input is written to a file first; then the variables
// are listed and the file read as a LASA .mat. stablelearn::Error is the expected rejection; a
// crash, a leak or a sanitizer report (in our code or in matio as we call it) is a finding.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "stablelearn/core/error.h"
#include "stablelearn/core/fs.h"
#include "stablelearn/io/mat.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::string path = "/tmp/stablelearn_fuzz_mat_" + std::to_string(::getpid()) + ".mat";
  stablelearn::write_file_atomic(path, std::string_view(reinterpret_cast<const char*>(data), size));
  try {
    (void)stablelearn::io::list_mat_variables(path);
  } catch (const stablelearn::Error&) {
  }
  try {
    (void)stablelearn::io::read_lasa_mat(path);
  } catch (const stablelearn::Error&) {
  }
  return 0;
}
