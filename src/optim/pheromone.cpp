// The DPPN pheromone field (include/stablelearn/optim/pheromone.h; docs/optim.md).
#include "stablelearn/optim/pheromone.h"

#include <cmath>

#include <torch/torch.h>

#include "stablelearn/core/error.h"

namespace stablelearn::optim {

void PheromoneOptions::validate() const {
  SL_CHECK(slots > 0, ConfigError, "pheromone.slots: ", slots, " (want > 0)");
  SL_CHECK(evaporation >= 0 && evaporation < 1, ConfigError, "pheromone.evaporation: ", evaporation, " (want [0, 1))");
  SL_CHECK(std::isfinite(deposit) && deposit > 0, ConfigError, "pheromone.deposit: ", deposit, " (want a finite number > 0)");
}

PheromoneField::PheromoneField(PheromoneOptions options, const torch::TensorOptions& tensor_options) : options_(options) {
  options_.validate();
  p_ = torch::zeros({options_.slots, options_.slots}, tensor_options);
}

void PheromoneField::update(const torch::Tensor& usage) {
  const auto k = options_.slots;
  SL_CHECK(usage.dim() == 2 && usage.size(0) == k && usage.size(1) == k, ShapeError, "pheromone: usage of shape ",
           usage.sizes(), " (want ", k, " x ", k, ")");
  SL_CHECK(torch::isfinite(usage).all().item<bool>() && (usage >= 0).all().item<bool>(), DataError,
           "pheromone: usage has negative or non-finite values");
  torch::NoGradGuard ng;
  p_.mul_(1 - options_.evaporation).add_(usage.to(p_.options()), options_.deposit);
}

torch::Tensor PheromoneField::normalised() const {
  const double m = p_.max().item<double>();
  return m > 0 ? p_ / m : torch::zeros_like(p_);
}

torch::Tensor PheromoneField::routing_bias(double beta, double eps) const {
  SL_CHECK(std::isfinite(beta) && beta >= 0, ConfigError, "pheromone.beta: ", beta, " (want a finite number >= 0)");
  SL_CHECK(std::isfinite(eps) && eps > 0, ConfigError, "pheromone.eps: ", eps, " (want a finite number > 0)");
  return torch::log(normalised() + eps) * beta;
}

torch::Tensor PheromoneField::lr_multiplier(double gamma) const {
  SL_CHECK(std::isfinite(gamma) && gamma >= 0, ConfigError, "pheromone.gamma: ", gamma, " (want a finite number >= 0)");
  return normalised() * gamma + 1;
}

PheromoneField PheromoneField::remapped(const std::vector<std::int64_t>& map) const {
  const auto k = options_.slots;
  SL_CHECK(static_cast<std::int64_t>(map.size()) == k, ShapeError, "pheromone: map of ", map.size(), " entries (want ", k, ")");
  for (std::size_t i = 0; i < map.size(); ++i)
    SL_CHECK(map[i] >= 0 && map[i] < k, ShapeError, "pheromone: map[", i, "] = ", map[i], " (want [0, ", k, "))");
  const auto idx = torch::tensor(map, torch::TensorOptions(torch::kInt64).device(p_.device()));
  PheromoneField out(options_, p_.options());
  out.p_ = p_.index_select(0, idx).index_select(1, idx);
  return out;
}

}  // namespace stablelearn::optim
