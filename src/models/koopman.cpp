// Koopman autoencoder, ridge operator, InfoNCE over time, von Neumann entropy and the dynamical
// systems (include/stablelearn/models/koopman.h).
#include "stablelearn/models/koopman.h"

#include <torch/torch.h>

#include "stablelearn/core/error.h"
#include "stablelearn/models/odeint.h"
#include "sequential_mlp.h"

namespace stablelearn::models {

void KoopmanOptions::validate(const std::string& prefix) const {
  SL_CHECK(state() >= 1, ConfigError, prefix, "state: ", state(), " (want >= 1)");
  SL_CHECK(latent() >= 1, ConfigError, prefix, "latent: ", latent(), " (want >= 1)");
  for (auto h : hidden()) SL_CHECK(h >= 1, ConfigError, prefix, "hidden: a width of ", h, " (want >= 1)");
}

KoopmanAutoencoderImpl::KoopmanAutoencoderImpl(KoopmanOptions options) : options_(std::move(options)) {
  options_.validate();
  encoder_ = register_module("encoder", detail::sequential_mlp<torch::nn::Tanh>(options_.state(), options_.hidden(), options_.latent()));
  const std::vector<std::int64_t> mirrored(options_.hidden().rbegin(), options_.hidden().rend());
  decoder_ = register_module("decoder", detail::sequential_mlp<torch::nn::Tanh>(options_.latent(), mirrored, options_.state()));
}

torch::Tensor KoopmanAutoencoderImpl::encode(const torch::Tensor& x) {
  SL_CHECK(x.size(-1) == options_.state(), ShapeError, "KoopmanAutoencoder: states of dimension ", x.size(-1), ", want ",
           options_.state());
  return encoder_->forward(x);
}

torch::Tensor KoopmanAutoencoderImpl::decode(const torch::Tensor& z) {
  SL_CHECK(z.size(-1) == options_.latent(), ShapeError, "KoopmanAutoencoder: latents of dimension ", z.size(-1), ", want ",
           options_.latent());
  return decoder_->forward(z);
}

torch::Tensor koopman_operator(const torch::Tensor& z, const torch::Tensor& z_next, double ridge) {
  SL_CHECK(z.dim() == 3 && z.sizes() == z_next.sizes(), ShapeError, "koopman_operator: want z and z_next [B, T, H] alike, got ",
           z.sizes(), " and ", z_next.sizes());
  SL_CHECK(ridge > 0, ConfigError, "koopman_operator: ridge ", ridge, " (want > 0)");
  const auto T = z.size(1);
  const auto gram = z.matmul(z.transpose(1, 2)) + ridge * torch::eye(T, z.options());  // [B, T, T]
  const auto solved = torch::linalg_solve(gram, z_next);                                  // (Z Zᵀ + rI)⁻¹ Z'
  return z.transpose(1, 2).matmul(solved).mean(0);                                        // mean_b Zᵀ(...)
}

torch::Tensor info_nce_time(const torch::Tensor& z, std::int64_t k, double temperature) {
  SL_CHECK(z.dim() == 3, ShapeError, "info_nce_time: want z [B, T, H], got ", z.sizes());
  const auto T = z.size(1);
  SL_CHECK(k >= 1 && T > 2 * k, ConfigError, "info_nce_time: k = ", k, " needs windows longer than 2k (T = ", T, ")");
  SL_CHECK(temperature > 0, ConfigError, "info_nce_time: temperature ", temperature, " (want > 0)");
  const auto u = torch::nn::functional::normalize(z, torch::nn::functional::NormalizeFuncOptions().dim(-1));
  auto s = u.matmul(u.transpose(1, 2)) / temperature;  // [B, T, T]
  const auto eye = torch::eye(T, torch::TensorOptions().dtype(torch::kBool).device(z.device()));
  s = s.masked_fill(eye, -std::numeric_limits<double>::infinity());  // the anchor itself is no candidate
  const auto log_p = torch::log_softmax(s, -1);                    // log(exp(s_nm) / Σ_{m≠n} exp(s_nm))
  const auto idx = torch::arange(T, torch::TensorOptions().dtype(torch::kInt64).device(z.device()));
  const auto dist = (idx.unsqueeze(0) - idx.unsqueeze(1)).abs();
  const auto positive = dist.ge(1).logical_and(dist.le(k)).to(z.scalar_type());  // [T, T]
  const auto per_anchor = -(log_p.masked_fill(eye, 0) * positive).sum(-1) / static_cast<double>(2 * k);  // [B, T]
  return per_anchor.slice(1, k, T - k).mean();
}

torch::Tensor von_neumann_entropy(const torch::Tensor& z) {
  SL_CHECK(z.dim() == 2 && z.size(0) >= 2, ShapeError, "von_neumann_entropy: want z [N >= 2, H], got ", z.sizes());
  const auto c = z - z.mean(0, true);
  const auto cov = c.t().matmul(c) / static_cast<double>(z.size(0) - 1);
  const auto rho = cov / cov.trace();
  const auto lam = torch::linalg_eigvalsh(rho).clamp_min(1e-12);
  return -(lam * lam.log()).sum();
}

KoopmanLossParts koopman_loss(KoopmanAutoencoderImpl& net, const torch::Tensor& x, const KoopmanLossOptions& o) {
  SL_CHECK(x.dim() == 3 && x.size(1) >= 2, ShapeError, "koopman_loss: want windows [B, T + 1, state], got ", x.sizes());
  const auto T = x.size(1) - 1;
  const auto xs = x.slice(1, 0, T), xn = x.slice(1, 1, T + 1);
  const auto z = net.encode(xs), zn = net.encode(xn);
  KoopmanLossParts p;
  p.op = koopman_operator(z, zn, o.ridge()).detach();
  const auto mse_sum = [&](const torch::Tensor& pred, const torch::Tensor& target) {
    return (pred - target).pow(2).mean(std::vector<std::int64_t>{0, 2}).sum();  // Σ_t of the per-step MSE
  };
  p.forward = mse_sum(net.decode(z.matmul(p.op)), xn);
  p.identity = mse_sum(net.decode(z), xs);
  const auto zero = torch::zeros({}, x.options());
  p.mi = o.alpha() != 0 ? info_nce_time(z, o.k(), o.temperature()) : zero;
  p.entropy = o.beta() != 0 ? von_neumann_entropy(z.reshape({-1, z.size(-1)})) : zero;
  p.total = p.forward + o.lambda_id() * p.identity + o.alpha() * p.mi + o.entropy_sign() * o.beta() * p.entropy;
  return p;
}

torch::Tensor koopman_rollout(KoopmanAutoencoderImpl& net, const torch::Tensor& x0, const torch::Tensor& c, std::int64_t steps) {
  auto z = net.encode(x0);
  std::vector<torch::Tensor> out{net.decode(z)};
  for (std::int64_t n = 0; n < steps; ++n) {
    z = z.matmul(c);
    out.push_back(net.decode(z));
  }
  return torch::stack(out, 1);
}

torch::Tensor lorenz63(const torch::Tensor& x, double sigma, double rho, double beta) {
  SL_CHECK(x.size(-1) == 3, ShapeError, "lorenz63: want states [..., 3], got ", x.sizes());
  const auto a = x.select(-1, 0), b = x.select(-1, 1), c = x.select(-1, 2);
  return torch::stack({sigma * (b - a), a * (rho - c) - b, a * b - beta * c}, -1);
}

torch::Tensor damped_pendulum(const torch::Tensor& x, double damping, double g_over_l) {
  SL_CHECK(x.size(-1) == 2, ShapeError, "damped_pendulum: want states (theta, omega) [..., 2], got ", x.sizes());
  const auto th = x.select(-1, 0), om = x.select(-1, 1);
  return torch::stack({om, -g_over_l * th.sin() - damping * om}, -1);
}

torch::Tensor simulate(const std::function<torch::Tensor(const torch::Tensor&)>& f, const torch::Tensor& x0, double dt,
                       std::int64_t steps, std::int64_t substeps) {
  SL_CHECK(dt > 0 && steps >= 0 && substeps >= 1, ConfigError, "simulate: dt ", dt, ", steps ", steps, ", substeps ", substeps,
           " (want dt > 0, steps >= 0, substeps >= 1)");
  torch::NoGradGuard no_grad;
  const auto t = torch::arange(steps * substeps + 1, torch::TensorOptions().dtype(torch::kFloat64)) * (dt / substeps);
  const auto y = odeint([&](const torch::Tensor&, const torch::Tensor& s) { return f(s); }, x0, t,
                        OdeintOptions().method(OdeMethod::Rk4));
  return y.slice(1, 0, y.size(1), substeps);
}

}  // namespace stablelearn::models
