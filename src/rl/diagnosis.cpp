#include "stablelearn/rl/diagnosis.h"

#include <cmath>
#include <limits>

#include <torch/autograd.h>
#include <torch/fft.h>
#include <torch/nn/functional/loss.h>

#include "stablelearn/core/error.h"

namespace stablelearn::rl {

torch::Tensor non_lipschitz_directions(const QFunction& q, const torch::Tensor& states, bool normalise) {
  SL_CHECK(static_cast<bool>(q), UsageError, "non_lipschitz_directions: no Q-function");
  SL_CHECK(states.dim() == 2 && states.size(0) >= 1 && states.size(1) >= 1, ShapeError,
           "non_lipschitz_directions: states must be [n, D] with n, D >= 1, got ", states.sizes());
  torch::AutoGradMode grad_on(true);
  const auto s = states.detach().clone().requires_grad_(true);
  const auto qv = q(s);
  SL_CHECK(qv.dim() == 2 && qv.size(0) == states.size(0) && qv.size(1) >= 2, ShapeError,
           "non_lipschitz_directions: Q must return [n, A] with n = ", states.size(0), " and A >= 2, got ", qv.sizes());
  const auto greedy = qv.detach().argmax(1);
  // Rows are independent (no batch statistics), so the gradient of the sum is every row's own.
  const auto ce = torch::nn::functional::cross_entropy(qv, greedy,
                                                       torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum));
  auto g = torch::autograd::grad({ce}, {s}, /*grad_outputs=*/{}, /*retain_graph=*/false, /*create_graph=*/false,
                                 /*allow_unused=*/true)[0];
  if (!g.defined()) g = torch::zeros_like(states);
  g = g.detach();
  if (normalise) {
    const auto n = g.norm(2, 1, true);
    g = torch::where(n > 0, g / n.clamp_min(std::numeric_limits<double>::min()), torch::zeros_like(g));
  }
  return g;
}

PrincipalDirection principal_direction(const torch::Tensor& directions, const PowerIterationOptions& options) {
  SL_CHECK(directions.dim() == 2 && directions.size(1) >= 1, ShapeError,
           "principal_direction: directions must be [n, D], got ", directions.sizes());
  SL_CHECK(options.max_iterations >= 1, ConfigError, "principal_direction: max_iterations must be >= 1, got ",
           options.max_iterations);
  SL_CHECK(options.tolerance >= 0, ConfigError, "principal_direction: tolerance must be >= 0, got ", options.tolerance);
  torch::NoGradGuard ng;
  const auto V = directions.detach().to(torch::kDouble);
  const auto D = V.size(1);
  // Start vector from the options' own stream (uniform in [−1/2, 1/2) per entry).
  SplitMix64 rng{stream_seed(options.seed, -7)};
  auto u = torch::empty({D}, torch::kDouble);
  for (std::int64_t i = 0; i < D; ++i) u[i] = static_cast<double>(rng.uniform01()) - 0.5;
  u = (u / u.norm()).to(V.device());
  PrincipalDirection out;
  auto apply = [&](const torch::Tensor& x) { return V.t().mv(V.mv(x)); };
  for (std::int64_t it = 1; it <= options.max_iterations; ++it) {
    const auto w = apply(u);
    const double wn = w.norm().item<double>();
    out.iterations = it;
    if (!(wn > 0)) break;  // L = 0 (or u in its null space): keep u
    const auto un = w / wn;
    const double c = std::abs(un.dot(u).item<double>());
    u = un;
    if (1 - c <= options.tolerance) {
      out.converged = true;
      break;
    }
  }
  const auto Vu = V.mv(u);
  out.eigenvalue = Vu.dot(Vu).item<double>();
  if (out.eigenvalue > 0) {
    out.residual = (V.t().mv(Vu) - out.eigenvalue * u).norm().item<double>() / out.eigenvalue;
  } else {
    out.converged = true;
    out.residual = 0;
  }
  const auto imax = u.abs().argmax().item<std::int64_t>();
  if (u[imax].item<double>() < 0) u = -u;
  out.direction = u;
  return out;
}

double feature_correlation_quotient(const torch::Tensor& transformed_directions, const torch::Tensor& base_directions,
                                    const PowerIterationOptions& options) {
  SL_CHECK(transformed_directions.dim() == 2 && base_directions.dim() == 2 &&
               transformed_directions.size(1) == base_directions.size(1),
           ShapeError, "feature_correlation_quotient: directions must be [n, D] with the same D, got ",
           transformed_directions.sizes(), " and ", base_directions.sizes());
  torch::NoGradGuard ng;
  const auto g = principal_direction(transformed_directions, options).direction;
  const auto base = principal_direction(base_directions, options);
  if (!(base.eigenvalue > 0)) return std::numeric_limits<double>::quiet_NaN();
  const auto Vg = base_directions.detach().to(torch::kDouble).mv(g.to(base_directions.device()));
  return Vg.dot(Vg).item<double>() / base.eigenvalue;
}

torch::Tensor fgsm(const QFunction& q, const torch::Tensor& states, double eps, const torch::Tensor& scale) {
  SL_CHECK(eps >= 0 && std::isfinite(eps), ConfigError, "fgsm: eps must be finite and >= 0, got ", eps);
  const auto v = non_lipschitz_directions(q, states);
  auto step = v.sign() * eps;
  if (scale.defined()) {
    SL_CHECK(scale.dim() == 1 && scale.size(0) == states.size(1), ShapeError, "fgsm: scale must be [D] with D = ",
             states.size(1), ", got ", scale.sizes());
    step = step * scale.to(states.device(), states.scalar_type());
  }
  return (states.detach() + step).detach();
}

torch::Tensor direction_norms(const QFunction& q, const torch::Tensor& episode_states) {
  return non_lipschitz_directions(q, episode_states).norm(2, 1);
}

double temporal_oscillation(const std::vector<double>& series) {
  const auto n = series.size();
  if (n < 2) return std::numeric_limits<double>::quiet_NaN();
  double tv = 0, sum = 0;
  for (std::size_t t = 0; t + 1 < n; ++t) tv += std::abs(series[t + 1] - series[t]);
  for (double x : series) sum += x;
  const double m = sum / static_cast<double>(n);
  if (!(m != 0)) return std::numeric_limits<double>::quiet_NaN();
  return (tv / static_cast<double>(n - 1)) / m;
}

torch::Tensor power_spectrum_2d(const torch::Tensor& map) {
  SL_CHECK(map.dim() == 2 && map.size(0) >= 1 && map.size(1) >= 1, ShapeError, "power_spectrum_2d: map must be [H, W], got ",
           map.sizes());
  torch::NoGradGuard ng;
  const auto f = torch::fft_fft2(map.detach().to(torch::kDouble));
  return torch::fft_fftshift(f.abs().pow(2));
}

double spectral_spread(const torch::Tensor& map) {
  const auto P = power_spectrum_2d(map);
  const auto H = P.size(0), W = P.size(1);
  const auto opts = torch::TensorOptions().dtype(torch::kDouble).device(P.device());
  const auto ky = (torch::arange(H, opts) - static_cast<double>(H / 2)) / static_cast<double>(H);
  const auto kx = (torch::arange(W, opts) - static_cast<double>(W / 2)) / static_cast<double>(W);
  const auto radius = (ky.unsqueeze(1).pow(2) + kx.unsqueeze(0).pow(2)).sqrt();
  auto Pn = P.clone();
  Pn[H / 2][W / 2] = 0;  // the zero frequency
  const double total = Pn.sum().item<double>();
  if (!(total > 0)) return std::numeric_limits<double>::quiet_NaN();
  return (Pn * radius).sum().item<double>() / total;
}

Rollouts collect_episodes(const std::string& name, const PolicyFn& policy, std::int64_t episodes, std::uint64_t seed) {
  SL_CHECK(episodes >= 1, ConfigError, "collect_episodes: episodes must be >= 1, got ", episodes);
  SL_CHECK(static_cast<bool>(policy), UsageError, "collect_episodes: no policy");
  EnvOptions o;
  o.num_envs = episodes;
  o.auto_reset = true;
  auto env = make_env(name, o);
  const auto n = episodes, d = env->obs_dim();
  std::vector<float> obs(n * d), rew(n);
  std::vector<std::uint8_t> term(n), trunc(n), finished(n, 0);
  std::vector<std::int32_t> act(n);
  std::vector<std::vector<float>> seen(n);
  Rollouts r;
  r.returns.assign(n, 0.0);
  env->reset(seed, obs.data());
  std::int64_t left = n;
  while (left > 0) {
    policy(obs.data(), n, act.data());
    for (std::int64_t i = 0; i < n; ++i)
      if (!finished[i]) seen[i].insert(seen[i].end(), obs.begin() + i * d, obs.begin() + (i + 1) * d);
    env->step(act.data(), obs.data(), rew.data(), term.data(), trunc.data());
    for (std::int64_t i = 0; i < n; ++i) {
      if (finished[i]) continue;
      r.returns[i] += rew[i];
      if (term[i] || trunc[i]) {
        finished[i] = 1;
        --left;
      }
    }
  }
  for (auto& s : seen) {
    const auto T = static_cast<std::int64_t>(s.size()) / d;
    r.states.push_back(torch::from_blob(s.data(), {T, d}, torch::kFloat).clone());
  }
  return r;
}

}  // namespace stablelearn::rl
