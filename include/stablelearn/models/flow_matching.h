// Flow matching with a velocity MLP (Lipman et al. 2023; the latent flow matching of "Exploring and
// Exploiting Stability in Latent Flow Matching", Briq et al., ICML 2026; shared/specs/papers-19-35.md
// §34), samplers, and the balanced-cluster data pruning of that paper.
//
//   VelocityMlp v(VelocityMlpOptions().dim(16).hidden({256, 256}));
//   auto loss = flow_matching_loss(*v, x1, torch::randn_like(x1), torch::rand({n}));
//   auto x = sample_ode(velocity_fn(*v), torch::randn({m, 16}), 50, OdeSampler::Euler);
//
// Path (the paper's "Linear" path with velocity prediction): x_t = t x1 + (1 − t) x0 with x0 the
// noise (t = 0) and x1 the data (t = 1); the regression target is x1 − x0. Sampling integrates
// dx/dt = v(x, t) from t = 0 to 1.
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

struct VelocityMlpOptions {
  /// ConfigError naming prefix + key for sizes < 1.
  void validate(const std::string& prefix = "model.") const;
  TORCH_ARG(std::int64_t, dim) = 16;                                                 ///< data (latent) dimension
  TORCH_ARG(std::vector<std::int64_t>, hidden) = std::vector<std::int64_t>{256, 256};  ///< hidden widths (SiLU)
  TORCH_ARG(std::int64_t, time_features) = 16;  ///< sinusoidal features of t (even), concatenated to x
};

/// v(x, t): MLP on [x, sin(2π f t), cos(2π f t)] with frequencies f = 1..time_features/2.
class VelocityMlpImpl : public torch::nn::Module {
 public:
  explicit VelocityMlpImpl(VelocityMlpOptions options);
  /// Velocities [N, dim] at states x [N, dim] and times t [N] (or a 0-dim t for every row).
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& t);
  /// Multiply-adds of one evaluation per sample (the linear layers), for cost comparisons.
  std::int64_t macs() const;
  const VelocityMlpOptions& options() const { return options_; }

 private:
  VelocityMlpOptions options_;
  torch::nn::Sequential net_{nullptr};
};
TORCH_MODULE(VelocityMlp);

using VelocityFn = std::function<torch::Tensor(const torch::Tensor& x, const torch::Tensor& t)>;

/// mean over samples of ‖v(x_t, t) − (x1 − x0)‖², x_t = t x1 + (1 − t) x0; x1, x0 [N, d], t [N].
torch::Tensor flow_matching_loss(VelocityMlpImpl& v, const torch::Tensor& x1, const torch::Tensor& x0, const torch::Tensor& t);

enum class OdeSampler { Euler, Heun };
/// Integrates dx/dt = v(x, t) from x0 at t = 0 to t = 1 in `steps` equal steps (no gradient).
torch::Tensor sample_ode(const VelocityFn& v, const torch::Tensor& x0, std::int64_t steps, OdeSampler sampler = OdeSampler::Euler);
/// Coarse-to-fine sampling: `coarse` for the steps that start before t_split, `fine` after, along
/// one Euler trajectory (the paper's small model early, large model late).
torch::Tensor sample_coarse_to_fine(const VelocityFn& coarse, const VelocityFn& fine, const torch::Tensor& x0, std::int64_t steps,
                                    double t_split);
/// The network as a VelocityFn.
VelocityFn velocity_fn(VelocityMlpImpl& v);

/// k-means (k-means++ seeding from `seed`, Lloyd iterations until the assignment stops changing or
/// `iterations`): the cluster of every row of x [N, d] (int64 [N]).
torch::Tensor kmeans(const torch::Tensor& x, std::int64_t k, std::uint64_t seed, std::int64_t iterations = 100);
/// Balanced-cluster pruning: indices (sorted) of `keep` rows of x, the same number from every
/// k-means cluster as far as the clusters allow (the rest spread over the larger clusters), drawn
/// at random within each cluster from `seed`.
torch::Tensor balanced_cluster_subset(const torch::Tensor& x, std::int64_t keep, std::int64_t clusters, std::uint64_t seed);

/// Squared MMD with the Gaussian kernel exp(−‖a − b‖²/(2σ²)) between rows of a and b (the unbiased
/// U-statistic within each set).
double mmd2(const torch::Tensor& a, const torch::Tensor& b, double sigma);

}  // namespace stablelearn::models
