// The built-in regression problem (see toy_problem.h).
#include "stablelearn/diagnostics/toy_problem.h"

#include <cmath>

#include "probes.h"
#include "stablelearn/core/error.h"

namespace stablelearn::diagnostics {

ToyProblem make_toy_problem(const ToyProblemOptions& o) {
  SL_CHECK(o.inputs() >= 2, ConfigError, "toy problem: inputs must be at least 2, got ", o.inputs());
  SL_CHECK(o.hidden() >= 1 && o.samples() >= 1 && o.batch_size() >= 1, ConfigError,
           "toy problem: hidden, samples and batch_size must be positive");
  auto gen = detail::make_generator(o.seed());
  const auto cpu = torch::TensorOptions().dtype(torch::kFloat64);
  const auto opts = torch::TensorOptions().dtype(o.dtype()).device(o.device());
  auto x = torch::randn({o.samples(), o.inputs()}, gen, cpu);
  auto y = (torch::sin(2.0 * x.select(1, 0)) + 0.5 * x.select(1, 1).pow(2)).unsqueeze(1);
  // LeCun-normal initialisation.
  auto w1 = torch::randn({o.hidden(), o.inputs()}, gen, cpu) / std::sqrt(static_cast<double>(o.inputs()));
  auto b1 = torch::zeros({o.hidden()}, cpu);
  auto w2 = torch::randn({1, o.hidden()}, gen, cpu) / std::sqrt(static_cast<double>(o.hidden()));
  auto b2 = torch::zeros({1}, cpu);
  ToyProblem p;
  for (auto* t : {&w1, &b1, &w2, &b2}) p.params.push_back(t->to(opts).requires_grad_(true));
  x = x.to(opts);
  y = y.to(opts);
  for (std::int64_t off = 0; off < o.samples(); off += o.batch_size()) {
    const auto n = std::min(o.batch_size(), o.samples() - off);
    p.batches.push_back({x.narrow(0, off, n), y.narrow(0, off, n)});
  }
  const auto ps = p.params;
  p.model = [ps](const torch::Tensor& in) { return torch::tanh(in.mm(ps[0].t()) + ps[1]).mm(ps[2].t()) + ps[3]; };
  const auto model = p.model;
  p.loss = [model](const Batch& b) { return 0.5 * (model(b.x) - b.y).pow(2).sum(1).mean(); };
  return p;
}

std::vector<double> ToyProblem::train_gd(std::int64_t steps, double learning_rate) const {
  SL_CHECK(steps >= 0 && learning_rate > 0.0, ConfigError, "toy problem: need steps ≥ 0 and a positive learning rate");
  const HessianOperator objective(params, loss, batches);
  std::vector<double> losses;
  for (std::int64_t s = 0; s <= steps; ++s) {
    auto [value, g] = objective.loss_and_gradient();
    losses.push_back(value);
    if (s == steps) break;
    torch::NoGradGuard ng;
    const auto parts = unflatten_like(g, params);
    for (std::size_t i = 0; i < params.size(); ++i) params[i].sub_(parts[i], learning_rate);
  }
  return losses;
}

}  // namespace stablelearn::diagnostics
