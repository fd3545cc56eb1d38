// Helpers shared by the diagnostics tests: explicit matrices with a known spectrum and the
// materialisation of a matrix-free operator (A e_j for every basis vector).
#pragma once

#include <cstdint>
#include <vector>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/types.h>

#include "stablelearn/diagnostics/curvature.h"

namespace stablelearn::diagnostics::testing {

/// A random orthogonal matrix (QR of a Gaussian matrix), float64.
inline torch::Tensor random_orthogonal(std::int64_t n, std::uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  auto g = torch::randn({n, n}, gen, torch::TensorOptions().dtype(torch::kFloat64));
  return std::get<0>(torch::linalg_qr(g));
}

/// Q diag(λ) Qᵀ with a random orthogonal Q: a symmetric matrix with exactly the eigenvalues λ.
inline torch::Tensor known_spectrum(const torch::Tensor& lambda, std::uint64_t seed) {
  const auto q = random_orthogonal(lambda.size(0), seed);
  auto a = q.mm(torch::diag(lambda.to(torch::kFloat64))).mm(q.t());
  return (a + a.t()) / 2;
}

/// The D × D matrix of an operator, column j = A e_j.
inline torch::Tensor materialize(const CurvatureOperator& op) {
  const auto d = op.dim();
  auto eye = torch::eye(d, op.options());
  std::vector<torch::Tensor> cols;
  for (std::int64_t j = 0; j < d; ++j) cols.push_back(op.apply(eye[j]));
  return torch::stack(cols, 1);
}

/// Max |a − b|.
inline double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a - b).abs().max().item<double>();
}

}  // namespace stablelearn::diagnostics::testing
