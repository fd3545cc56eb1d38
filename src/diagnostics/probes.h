// Random probe vectors shared by the diagnostics algorithms (private to src/diagnostics/).
// Probes are drawn on the CPU in float64 from a seeded generator, then moved to the operator's
// dtype and device, so results do not depend on the device.
#pragma once

#include <cstdint>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/types.h>

namespace stablelearn::diagnostics::detail {

inline at::Generator make_generator(std::uint64_t seed) { return at::detail::createCPUGenerator(seed); }

inline torch::Tensor gaussian_probe(std::int64_t n, at::Generator& gen, const torch::TensorOptions& options) {
  return torch::randn({n}, gen, torch::TensorOptions().dtype(torch::kFloat64)).to(options);
}

inline torch::Tensor rademacher_probe(std::int64_t n, at::Generator& gen, const torch::TensorOptions& options) {
  return (torch::randint(0, 2, {n}, gen, torch::TensorOptions().dtype(torch::kFloat64)) * 2.0 - 1.0).to(options);
}

}  // namespace stablelearn::diagnostics::detail
