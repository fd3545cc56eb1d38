// Koopman representations with information terms ("Information Shapes Koopman Representation",
// Cheng et al., ICLR 2026; shared/specs/papers-19-35.md §23), and the dynamical systems that feed
// them (trajectories from the project's own RK4, models/odeint.h).
//
//   KoopmanAutoencoder net(KoopmanOptions().state(3).latent(16));
//   const auto x = lorenz63_trajectories(starts, 0.01, 400);        // [N, steps + 1, 3]
//   auto parts = koopman_loss(*net, windows, KoopmanLossOptions());  // L_fwd + λ L_id + α L_MI − β S
//
// The model: an MLP encoder E (state → hidden → latent, tanh) and decoder D. The Koopman operator
// is not learned: on each batch of windows it is re-estimated in closed form by ridge regression of
// the encoded next states on the encoded states (koopman_operator, detached), and the latent
// dynamics are z_{t+1} = z_t C (row vectors). The information terms: a multi-positive InfoNCE over
// time within each window (info_nce_time: neighbours within k steps are positives, every other
// step of the window a negative) and the von Neumann entropy of the latents' normalised covariance
// (von_neumann_entropy). The paper maximises the entropy (−β S in the loss); the released code
// adds +β S — KoopmanLossOptions::entropy_sign keeps both.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <torch/arg.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/types.h>

namespace stablelearn::models {

struct KoopmanOptions {
  /// ConfigError naming prefix + key for sizes < 1.
  void validate(const std::string& prefix = "model.") const;
  TORCH_ARG(std::int64_t, state) = 3;                      ///< state dimension
  TORCH_ARG(std::vector<std::int64_t>, hidden) = std::vector<std::int64_t>{64, 64};  ///< encoder widths (decoder mirrored)
  TORCH_ARG(std::int64_t, latent) = 16;                    ///< latent dimension H
};

class KoopmanAutoencoderImpl : public torch::nn::Module {
 public:
  explicit KoopmanAutoencoderImpl(KoopmanOptions options);
  /// z [..., latent] of states x [..., state].
  torch::Tensor encode(const torch::Tensor& x);
  /// States [..., state] of latents z [..., latent].
  torch::Tensor decode(const torch::Tensor& z);
  const KoopmanOptions& options() const { return options_; }

 private:
  KoopmanOptions options_;
  torch::nn::Sequential encoder_{nullptr}, decoder_{nullptr};
};
TORCH_MODULE(KoopmanAutoencoder);

/// The ridge Koopman operator of latent windows z [B, T, H] and their encoded next states z_next
/// [B, T, H]: C = mean_b Z_bᵀ (Z_b Z_bᵀ + ridge I_T)⁻¹ Z'_b [H, H] (the kernel form of
/// (Z_bᵀZ_b + ridge I_H)⁻¹ Z_bᵀ Z'_b), so that z_{t+1} ≈ z_t C. ridge > 0. Differentiable; callers
/// detach it as the paper does.
torch::Tensor koopman_operator(const torch::Tensor& z, const torch::Tensor& z_next, double ridge);

/// Multi-positive InfoNCE over time on latent windows z [B, T, H] (cosine similarities / τ): for
/// every anchor n ∈ [k, T − k) of every window, −(1/2k) Σ_{0<|p−n|≤k} log(exp(s_np) / Σ_{m≠n}
/// exp(s_nm)); the mean over anchors and windows. Needs T > 2k.
torch::Tensor info_nce_time(const torch::Tensor& z, std::int64_t k, double temperature);

/// The von Neumann entropy −Σ λ log λ of ρ = Σ / tr Σ, Σ the centred covariance of the rows of
/// z [N, H] (N ≥ 2); log H for isotropic latents, 0 for latents on one line. exp of it is the
/// entropy effective rank.
torch::Tensor von_neumann_entropy(const torch::Tensor& z);

struct KoopmanLossOptions {
  TORCH_ARG(double, lambda_id) = 0.1;    ///< weight of the reconstruction term L_id
  TORCH_ARG(double, alpha) = 2.0;        ///< weight of the InfoNCE term L_MI
  TORCH_ARG(double, beta) = 0.1;         ///< weight of the entropy term
  TORCH_ARG(double, entropy_sign) = -1;  ///< −1: the paper's (maximise S); +1: the released code's
  TORCH_ARG(std::int64_t, k) = 3;        ///< InfoNCE positives within k steps
  TORCH_ARG(double, temperature) = 0.1;  ///< InfoNCE temperature
  TORCH_ARG(double, ridge) = 0.1;        ///< ridge of koopman_operator
};

struct KoopmanLossParts {
  torch::Tensor total, forward, identity, mi, entropy;  ///< total = fwd + λ id + α mi + sign·β S
  torch::Tensor op;                                     ///< the batch's C (detached)
};

/// The paper's loss on windows x [B, T + 1, state]: z = E(x[:, :T]), z' = E(x[:, 1:]), C =
/// koopman_operator(z, z') detached, L_fwd = Σ_t MSE(D(z_t C), x_{t+1}), L_id = Σ_t MSE(D(z_t), x_t)
/// (sums over the T steps of the mean over windows and coordinates, as the released trainer).
KoopmanLossParts koopman_loss(KoopmanAutoencoderImpl& net, const torch::Tensor& x, const KoopmanLossOptions& o);

/// Predictions [N, steps + 1, state] from states x0 [N, state]: D(E(x0) Cⁿ), n = 0..steps.
torch::Tensor koopman_rollout(KoopmanAutoencoderImpl& net, const torch::Tensor& x0, const torch::Tensor& c, std::int64_t steps);

/// Lorenz-63, ẋ = σ(y − x), ẏ = x(ρ − z) − y, ż = xy − βz, on states [N, 3].
torch::Tensor lorenz63(const torch::Tensor& x, double sigma = 10, double rho = 28, double beta = 8.0 / 3.0);
/// The damped pendulum on states (θ, ω) [N, 2]: θ̇ = ω, ω̇ = −(g/l) sin θ − c ω.
torch::Tensor damped_pendulum(const torch::Tensor& x, double damping = 0.1, double g_over_l = 1.0);
/// Trajectories [N, steps + 1, d] of ẋ = f(x) from x0 [N, d] sampled every dt, integrated by RK4
/// (models/odeint.h) with `substeps` steps per sample.
torch::Tensor simulate(const std::function<torch::Tensor(const torch::Tensor&)>& f, const torch::Tensor& x0, double dt,
                       std::int64_t steps, std::int64_t substeps = 1);

}  // namespace stablelearn::models
