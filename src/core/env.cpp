#include "stablelearn/core/env.h"

#include <dlfcn.h>
#include <link.h>

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <thread>

#include <ATen/Parallel.h>
#include <ATen/Version.h>
#include <torch/cuda.h>
#include <torch/types.h>
#include <torch/version.h>
#include <nlohmann/json.hpp>

namespace stablelearn {

const char* version() { return SL_VERSION; }

int apply_threads(int n) {
  if (n <= 0) n = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  at::set_num_threads(n);
  // OpenBLAS (openmp variant) follows OpenMP's count; set it explicitly too when it is there.
  using SetFn = void (*)(int);
  if (auto fn = reinterpret_cast<SetFn>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) fn(n);
  return at::get_num_threads();
}

namespace {

constexpr const char* kReexecMarker = "SL_BLAS_CORE_REEXEC";  // the core OpenBLAS chose before the re-exec

using CoreNameFn = char* (*)();

CoreNameFn openblas_corename_fn() {
  return reinterpret_cast<CoreNameFn>(dlsym(RTLD_DEFAULT, "openblas_get_corename"));
}

/// The OpenBLAS core for this CPU's instruction set, nullptr where Prescott is all it has.
const char* core_for_this_cpu() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd") &&
      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512vl"))
    return "SkylakeX";
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
#endif
  return nullptr;
}

}  // namespace

void select_blas_kernels(char** argv) {
  if (std::getenv("OPENBLAS_CORETYPE") != nullptr) return;
  const auto corename = openblas_corename_fn();
  if (corename == nullptr) return;
  const std::string core = corename();
  if (core != "Prescott") return;
  const char* better = core_for_this_cpu();
  if (better == nullptr) return;
  setenv("OPENBLAS_CORETYPE", better, 1);
  setenv(kReexecMarker, core.c_str(), 1);
  execv("/proc/self/exe", argv);
  // Only reached when the exec failed: go on as we are, and leave no trace for child processes.
  unsetenv("OPENBLAS_CORETYPE");
  unsetenv(kReexecMarker);
  std::fprintf(stderr,
               "stablelearn: note: OpenBLAS runs its slow Prescott kernels on this CPU and re-running with "
               "OPENBLAS_CORETYPE=%s failed; set that variable to get the fast ones\n",
               better);
}

std::string blas_core() {
  const auto corename = openblas_corename_fn();
  if (corename == nullptr) return "";
  std::string core = corename();
  if (const char* was = std::getenv(kReexecMarker)) core += std::string(" (re-executed: OpenBLAS chose ") + was + ")";
  return core;
}

void seed_everything(std::uint64_t seed) { torch::manual_seed(seed); }

namespace {

int find_blas(struct dl_phdr_info* info, size_t, void* out) {
  const char* name = info->dlpi_name;
  if (name && (std::strstr(name, "libblas") || std::strstr(name, "libopenblas") || std::strstr(name, "libmkl"))) {
    *static_cast<std::string*>(out) = name;
    return 1;
  }
  return 0;
}

/// The CPU's model name from /proc/cpuinfo, "unknown" where there is none.
std::string cpu_model_name() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("model name", 0) != 0) continue;
    const auto colon = line.find(':');
    if (colon != std::string::npos && colon + 2 <= line.size()) return line.substr(colon + 2);
  }
  return "unknown";
}

}  // namespace

const std::string& cpu_capability() {
  // The "CPU capability usage: X" line of at::show_config(): libtorch 1.13 exports no other way to
  // ask which kernels its dispatcher picked.
  static const std::string capability = [] {
    const std::string config = at::show_config();
    const std::string key = "CPU capability usage: ";
    const auto pos = config.find(key);
    if (pos == std::string::npos) return std::string("unknown");
    const auto end = config.find('\n', pos);
    const auto name = config.substr(pos + key.size(), end == std::string::npos ? std::string::npos : end - pos - key.size());
    return name == "NO AVX" ? std::string("DEFAULT") : name;  // how 1.13 names its plain C++ kernels
  }();
  return capability;
}

RuntimeInfo runtime_info() {
  RuntimeInfo r;
  r.stablelearn_version = SL_VERSION;
  r.torch_version = TORCH_VERSION;
#if defined(__clang__)
  r.compiler = std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
  r.compiler = std::string("g++ ") + __VERSION__;
#endif
#ifdef NDEBUG
  r.build_type = "release";
#else
  r.build_type = "debug";
#endif
  std::string lib;
  dl_iterate_phdr(find_blas, &lib);
  if (!lib.empty()) {
    char buf[4096];
    if (realpath(lib.c_str(), buf)) lib = buf;
  }
  r.blas_library = lib.empty() ? "(none loaded)" : lib;
  using ConfigFn = char* (*)();
  if (auto fn = reinterpret_cast<ConfigFn>(dlsym(RTLD_DEFAULT, "openblas_get_config"))) {
    r.blas_name = std::string("OpenBLAS: ") + fn();
  } else if (lib.find("mkl") != std::string::npos) {
    r.blas_name = "Intel MKL";
  } else if (lib.find("/blas/") != std::string::npos) {
    r.blas_name = "reference BLAS (slow: install libopenblas0-openmp)";
  } else {
    r.blas_name = "unknown";
  }
  r.blas_core = blas_core();
  if (lib.find("openblas-pthread") != std::string::npos) r.blas_name += " [pthread variant: fights libtorch's OpenMP threads]";
  static const std::string cpu = cpu_model_name();
  r.cpu_model = cpu;
  r.cpu_capability = cpu_capability();
  r.threads = at::get_num_threads();
  r.cores = static_cast<int>(std::thread::hardware_concurrency());
  r.cuda_available = torch::cuda::is_available();
  return r;
}

std::string runtime_info_text(const RuntimeInfo& r) {
  std::string s;
  s += "stablelearn " + r.stablelearn_version + " (" + r.build_type + ")\n";
  s += "libtorch    " + r.torch_version + (r.cuda_available ? " (CUDA available)" : " (CPU)") + "\n";
  s += "compiler    " + r.compiler + "\n";
  s += "BLAS        " + r.blas_name + "\n";
  s += "BLAS lib    " + r.blas_library + "\n";
  if (!r.blas_core.empty()) s += "BLAS core   " + r.blas_core + "\n";
  s += "CPU         " + r.cpu_model + " (libtorch kernels: " + r.cpu_capability + ")\n";
  s += "threads     " + std::to_string(r.threads) + " of " + std::to_string(r.cores) + " cores\n";
  return s;
}

std::string runtime_info_json(const RuntimeInfo& r) {
  nlohmann::json j{{"stablelearn", r.stablelearn_version}, {"torch", r.torch_version},
                   {"compiler", r.compiler},          {"build_type", r.build_type},
                   {"blas", r.blas_name},             {"blas_library", r.blas_library},
                   {"blas_core", r.blas_core},
                   {"cpu", r.cpu_model},              {"cpu_capability", r.cpu_capability},
                   {"threads", r.threads},            {"cores", r.cores},
                   {"cuda_available", r.cuda_available}};
  return j.dump(2);
}

std::filesystem::path compiled_data_dir() { return SL_DATA_DIR_DEFAULT; }

}  // namespace stablelearn
