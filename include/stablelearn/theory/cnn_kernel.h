// Kernels of infinitely wide hierarchical CNNs and ridgeless kernel regression (seed paper 31:
// Favero, Cagnetta, Wyart, "What Can Be Learnt With Wide Convolutional Neural Networks?", ICML 2023,
// arXiv 2208.01003; shared/specs/papers-19-35.md §31; docs/theory.md).
//
// The network. Input x ∈ R^d; filter sizes s_1 … s_L with s_1 s_2 ⋯ s_L = d, stride = filter size
// (non-overlapping), so the architecture is a tree: layer 1 sees the d/s_1 contiguous patches of
// s_1 inputs, each node of layer l sees s_l contiguous nodes of layer l − 1, and layer L has one
// node, read out linearly. With H channels per node, σ = √2·ReLU and NTK scaling:
//   h¹_i = W¹ x_i / √s_1,   h^l_i = Σ_{k=1}^{s_l} W^l_k σ(h^{l−1}_{child k of i}) / √(s_l H),
//   f(x) = a · σ(h^L_top) / √H,   all weights N(0, 1), shared across positions (a convolution).
// The infinite-width kernels (H → ∞). Non-overlapping filters make different positions' weights
// independent pieces of every product, so only same-position covariances enter (weight sharing
// changes nothing, as in Novak et al.'s CNN-GP without pooling) and the kernels follow the tree:
//   Σ¹_i = x_i·y_i / s_1,   Σ^l_i = (1/s_l) Σ_k k₁(Σ^{l−1}_k),    NNGP = k₁(Σ^L_top),
//   Θ¹_i = Σ¹_i,            Θ^l_i = Σ^l_i + (1/s_l) Σ_k k₀(Σ^{l−1}_k) Θ^{l−1}_k,
//   NTK = k₁(Σ^L_top) + k₀(Σ^L_top) Θ^L_top,
// with the arc-cosine kernels of σ = √2 ReLU for a pair of variance a, b and covariance c
// (cos θ = c/√(ab)): k₁ = √(ab) (sin θ + (π − θ) cos θ)/π, k₀ = (π − θ)/π. The diagonal Σ(x, x) is
// carried through the same recursion. For unit-norm patches (|x_i|² = s_1) every diagonal stays 1
// and k₁(u) = (√(1 − u²) + (π − arccos u) u)/π, k₀(u) = (π − arccos u)/π.
// A fully connected ReLU network of depth L is the special case s = (d, 1, …, 1).
#pragma once

#include <cstdint>
#include <vector>

#include <torch/types.h>

#include "stablelearn/core/options.h"

namespace stablelearn::theory {

struct HierarchicalKernelOptions {
  std::vector<std::int64_t> filters = {2, 2, 2};  ///< s_1 … s_L (non-overlapping, stride = size); ∏ s_l = inputs
  std::int64_t inputs = 8;                        ///< d, the input dimension
  void fields(options::Visitor& v);
  void cross_check() const;  ///< the filters tile the input: ∏ s_l = d (ConfigError naming "filters")
  /// A fully connected ReLU network of `depth` hidden layers: filters (d, 1, …, 1).
  static HierarchicalKernelOptions fully_connected(std::int64_t inputs, std::int64_t depth);
  /// The hierarchical CNN with `depth` layers of filter size `filter` (d = filter^depth).
  static HierarchicalKernelOptions uniform(std::int64_t filter, std::int64_t depth);
};

/// k₁ and k₀ of σ = √2 ReLU for covariance c and variances a, b (elementwise; see the file comment).
torch::Tensor arccos_kernel1(const torch::Tensor& c, const torch::Tensor& a, const torch::Tensor& b);
torch::Tensor arccos_kernel0(const torch::Tensor& c, const torch::Tensor& a, const torch::Tensor& b);

struct KernelPair {
  torch::Tensor nngp;  ///< [n, m]
  torch::Tensor ntk;   ///< [n, m]
};
/// The NNGP and NTK between the rows of x [n, d] and y [m, d] by the tree recursion (float64 in,
/// float64 out; any device). ShapeError when the rows are not of length d.
KernelPair hierarchical_kernels(const torch::Tensor& x, const torch::Tensor& y, const HierarchicalKernelOptions& o);

/// n inputs [n, d] (float64) whose level-1 patches are independent and uniform on the sphere of
/// radius √s_1 (so every Σ¹ diagonal is 1).
torch::Tensor sample_patch_spheres(std::int64_t n, const HierarchicalKernelOptions& o, at::Generator& gen);

/// One sample of the centred Gaussian process with covariance k [n, n] at the n points, plus
/// independent N(0, noise²) label noise: L z + noise·ε with L the Cholesky factor of k (a jitter of
/// 1e-12·mean diagonal, raised ×100 up to 1e-6 when the factorisation fails). ConfigError naming
/// "noise" for noise < 0.
torch::Tensor sample_gaussian_process(const torch::Tensor& k, double noise, at::Generator& gen);

/// Kernel (ridge) regression: predictions k_test [m, n] (k_train + ridge·I)⁻¹ y. ridge = 0 is the
/// ridgeless interpolant. ConfigError naming "ridge" for ridge < 0; DataError when the system is
/// singular.
torch::Tensor kernel_regression(const torch::Tensor& k_train, const torch::Tensor& y, const torch::Tensor& k_test, double ridge = 0);

/// The test mean squared error of kernel regression trained on the first n pool points, for each n
/// in `sizes` (increasing, <= the pool): one Cholesky factor of the pool's Gram matrix k_pool [N, N]
/// serves every n (the factor of a leading block is the leading block of the factor).
/// k_test [M, N], y_pool [N], y_test [M].
std::vector<double> nested_learning_curve(const torch::Tensor& k_pool, const torch::Tensor& y_pool, const torch::Tensor& k_test,
                                          const torch::Tensor& y_test, const std::vector<std::int64_t>& sizes, double ridge = 0);

/// The least-squares line log ε = log c − β log n: {β, c}. ConfigError for fewer than 2 points or a
/// non-positive value.
struct PowerLaw {
  double exponent = 0;  ///< β
  double prefactor = 0; ///< c
};
PowerLaw fit_power_law(const std::vector<double>& n, const std::vector<double>& error);

}  // namespace stablelearn::theory
