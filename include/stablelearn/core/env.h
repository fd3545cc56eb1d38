// Process-wide settings applied once at start-up and recorded in every run (shared/STYLE.md #13):
// thread count, seed, versions and the BLAS actually loaded.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

namespace stablelearn {

/// stablelearn's version ("0.1.0").
const char* version();

/// Applies the number of intra-op threads (libtorch and its OpenMP BLAS). n <= 0 = all cores.
/// Returns the count in effect. Debian's libtorch otherwise starts with one thread.
int apply_threads(int n);

/// Makes OpenBLAS run the kernels of the CPU it runs on. Debian 12's OpenBLAS 0.3.21 (DYNAMIC_ARCH)
/// falls back to its Prescott (SSE3) kernels on CPUs it does not know, e.g. recent Xeons that
/// report "Intel(R) Xeon(R) Processor": its GEMMs then run 2-3x slower than the CPU allows
/// (BENCHMARKS.md). Where the loaded OpenBLAS reports "Prescott" but the CPU has AVX2 and FMA, this
/// sets OPENBLAS_CORETYPE (SkylakeX with AVX-512 F/CD/BW/DQ/VL, else Haswell) and re-executes the
/// program with the same arguments, since OpenBLAS reads the variable only when it is loaded.
/// Does nothing when OPENBLAS_CORETYPE is already set (the user's choice, or after the re-exec),
/// when the BLAS is not OpenBLAS, or when it chose any other core; if the re-exec fails the
/// process goes on with the slow kernels. Call first thing in main(), before threads exist.
void select_blas_kernels(char** argv);

/// The OpenBLAS core in use ("SkylakeX", "Haswell", ...), "" when the BLAS is not OpenBLAS;
/// " (re-executed: OpenBLAS chose Prescott)" appended after select_blas_kernels' re-exec.
std::string blas_core();

/// Seeds libtorch's global generator (and anything else that draws randomness).
void seed_everything(std::uint64_t seed);

/// The vector kernels libtorch's dispatcher runs in this process: "AVX2", "AVX512" or "DEFAULT"
/// (plain C++), as at::show_config() reports it; the CPU's best unless ATEN_CPU_CAPABILITY says
/// otherwise. Elementwise rounding (e.g. whether a multiply-add is fused) depends on it.
const std::string& cpu_capability();

/// Facts about the running process, for --version and run directories.
struct RuntimeInfo {
  std::string stablelearn_version;
  std::string torch_version;
  std::string compiler;
  std::string build_type;
  std::string blas_library;  ///< resolved path of the BLAS shared object in this process
  std::string blas_name;     ///< "OpenBLAS 0.3.21 (openmp)", "reference BLAS", ...
  std::string blas_core;     ///< blas_core(): the OpenBLAS kernels in use, "" for another BLAS
  std::string cpu_model;       ///< "model name" of /proc/cpuinfo ("unknown" elsewhere)
  std::string cpu_capability;  ///< vector kernels libtorch dispatches to: "AVX2", "AVX512", "DEFAULT"
                               ///< (ATEN_CPU_CAPABILITY overrides the CPU's own; rounding depends on it)
  int threads = 0;           ///< libtorch intra-op threads
  int cores = 0;             ///< hardware threads of the machine
  bool cuda_available = false;
};
RuntimeInfo runtime_info();
/// Multi-line human-readable rendering of runtime_info().
std::string runtime_info_text(const RuntimeInfo& info);
/// JSON object rendering (for run directories).
std::string runtime_info_json(const RuntimeInfo& info);

/// The data root compiled in (the project's data/ folder).
std::filesystem::path compiled_data_dir();

}  // namespace stablelearn
