// Random-subspace training (see intrinsic_dimension.h).
#include "stablelearn/diagnostics/intrinsic_dimension.h"

#include <algorithm>
#include <cmath>

#include <torch/autograd.h>

#include "probes.h"
#include "stablelearn/core/error.h"

namespace stablelearn::diagnostics {

RandomSubspace::RandomSubspace(std::int64_t full_dim, std::int64_t dim, std::uint64_t seed, torch::TensorOptions options,
                               bool orthonormal) {
  SL_CHECK(full_dim >= 1 && dim >= 1 && dim <= full_dim, ConfigError, "RandomSubspace: need 1 ≤ d ≤ D, got d = ", dim,
           ", D = ", full_dim);
  auto gen = detail::make_generator(seed);
  auto p = torch::randn({full_dim, dim}, gen, torch::TensorOptions().dtype(torch::kFloat64));
  if (orthonormal) {
    p = std::get<0>(torch::linalg_qr(p));
  } else {
    p = p / p.norm(2, {0}, true);
  }
  matrix_ = p.to(options);
}

torch::Tensor RandomSubspace::to_full(const torch::Tensor& theta_d) const {
  SL_CHECK(theta_d.numel() == dim(), ShapeError, "RandomSubspace: θ_d has ", theta_d.numel(), " elements, expected ", dim());
  return matrix_.mv(theta_d.reshape({dim()}).to(matrix_.options()));
}

torch::Tensor RandomSubspace::to_subspace(const torch::Tensor& g) const {
  SL_CHECK(g.numel() == full_dim(), ShapeError, "RandomSubspace: vector has ", g.numel(), " elements, expected ", full_dim());
  return matrix_.t().mv(g.reshape({full_dim()}).to(matrix_.options()));
}

SubspaceTrainingResult train_in_subspace(const std::vector<torch::Tensor>& params, const LossFn& loss,
                                         const std::vector<Batch>& batches, const SubspaceTrainingOptions& o) {
  SL_CHECK(o.steps() >= 0, ConfigError, "train_in_subspace: steps must be non-negative, got ", o.steps());
  SL_CHECK(o.learning_rate() > 0.0, ConfigError, "train_in_subspace: learning_rate must be positive, got ", o.learning_rate());
  // HessianOperator validates the parameters and batches and gives the batch-weighted gradient.
  const HessianOperator objective(params, loss, batches);
  const auto theta0 = flatten_tensors(params).clone();
  const RandomSubspace proj(objective.dim(), o.dim(), o.seed(), objective.options(), o.orthonormal());
  auto write = [&](const torch::Tensor& theta_d) {
    torch::NoGradGuard ng;
    const auto parts = unflatten_like(theta0 + proj.to_full(theta_d), params);
    for (std::size_t i = 0; i < params.size(); ++i) params[i].copy_(parts[i]);
  };
  SubspaceTrainingResult r;
  auto theta_d = torch::zeros({o.dim()}, objective.options());
  auto m1 = torch::zeros_like(theta_d), m2 = torch::zeros_like(theta_d);
  const double b1 = 0.9, b2 = 0.999, eps = 1e-8;
  for (std::int64_t step = 0; step < o.steps(); ++step) {
    write(theta_d);
    auto [value, g] = objective.loss_and_gradient();
    r.losses.push_back(value);
    const auto gd = proj.to_subspace(g);
    if (o.adam()) {
      m1 = b1 * m1 + (1 - b1) * gd;
      m2 = b2 * m2 + (1 - b2) * gd * gd;
      const double c1 = 1 - std::pow(b1, static_cast<double>(step + 1));
      const double c2 = 1 - std::pow(b2, static_cast<double>(step + 1));
      theta_d = theta_d - o.learning_rate() * (m1 / c1) / ((m2 / c2).sqrt() + eps);
    } else {
      theta_d = theta_d - o.learning_rate() * gd;
    }
  }
  write(theta_d);
  r.losses.push_back(objective.loss_and_gradient().first);
  r.theta_d = theta_d;
  return r;
}

std::int64_t smallest_passing_dimension(std::vector<std::int64_t> dims, const std::function<double(std::int64_t)>& score,
                                        double threshold) {
  std::sort(dims.begin(), dims.end());
  for (auto d : dims)
    if (score(d) >= threshold) return d;
  return -1;
}

}  // namespace stablelearn::diagnostics
