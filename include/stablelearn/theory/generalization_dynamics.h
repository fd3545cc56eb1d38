// High-dimensional dynamics of generalisation error in linear teacher–student learning (seed paper
// 7: Advani & Saxe, "High-dimensional dynamics of generalization error in neural networks",
// arXiv 1710.03667, with Sompolinsky in Neural Networks 132:428–446, 2020;
// shared/specs/papers-01-18.md §7; docs/theory.md).
//
// The model. Teacher y = w̄·x + ε with x ~ N(0, I/N), w̄ ~ N(0, σ_w̄² I), ε ~ N(0, σ_ε²); P = αN
// samples (the load α); SNR = σ_w̄²/σ_ε². Student ŷ = w·x, w(0) ~ N(0, σ_w0² I), trained by gradient
// flow on the mean squared error. Its generalisation error on a fresh sample is exactly
//   E_g = E(y − ŷ)² = ‖w − w̄‖²/N + σ_ε².
// Time. With x̃ = √N x ~ N(0, I) and u = w/√N (so ŷ = u·x̃), t is the gradient-flow time of
// du/dt = −∇_u (1/2P) Σ_μ (y_μ − u·x̃_μ)², i.e. of dw/dt = −N ∇_w L: each eigenmode of the sample
// covariance Σ̃ = (1/P) Σ x̃x̃ᵀ with eigenvalue λ relaxes at rate λ.
//
// Exact finite-size dynamics: least_squares_flow() solves gradient flow on any least-squares
// problem in closed form from the thin SVD of the features (each right singular direction relaxes
// independently), so E_g(t) of one data set needs no time stepping.
//
// The infinite-size limit (N → ∞ at fixed α): Σ̃'s eigenvalues follow the Marchenko–Pastur law of
// ratio 1/α, ρ(λ) = α √((λ₊ − λ)(λ − λ₋)) / (2πλ) on [λ₋, λ₊], λ± = (1 ± 1/√α)², plus a point mass
// 1 − α at λ = 0 when α < 1, and
//   E_g(t) = σ_ε² + (1 − α)₊ (σ_w0² + σ_w̄²)
//            + ∫ ρ(λ) [ (σ_w0² + σ_w̄²) e^{−2λt} + (σ_ε²/(αλ)) (1 − e^{−λt})² ] dλ.
// The λ = 0 modes (the frozen subspace) never move: they keep the initial error σ_w0² + σ_w̄².
// Asymptotes (the MP integral at t = ∞): α > 1: E_g(∞) = σ_ε² + σ_ε²/(α − 1); α < 1:
// E_g(∞) = σ_ε² + (1 − α)(σ_w̄² + σ_w0²) + σ_ε² α/(1 − α); both diverge at α = 1.
//
// The random-ReLU-features student: ŷ = a·φ(x), φ(x) = ReLU(F x̃/√N)/√H with a fixed F ~ N(0, 1)^{H×N}
// and only a trained (by the same exact gradient flow, from a = 0); its test error against the width
// H peaks where H = P (the interpolation threshold) and falls again for H ≫ P.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include <torch/types.h>

#include "stablelearn/core/options.h"

namespace stablelearn::theory {

/// One linear teacher–student problem (paper 7's notation; docs/theory.md).
struct TeacherStudentOptions {
  std::int64_t inputs = 200;  ///< N, the input dimension (paper 7's experiments: 100–300)
  double load = 1.0;          ///< α = P/N, samples per input dimension; P = round(αN)
  double teacher_std = 1.0;   ///< σ_w̄, the teacher's weight standard deviation
  double noise_std = 0.5;     ///< σ_ε, the label noise's standard deviation (SNR = σ_w̄²/σ_ε²)
  double init_std = 0.0;      ///< σ_w0, the student's initial weight standard deviation
  void fields(options::Visitor& v);
  void cross_check() const;   ///< P = round(αN) >= 1 (key "load")
  std::int64_t samples() const;
};

// ---- Marchenko–Pastur (ratio 1/α: Σ̃ = (1/P) X̃ᵀX̃ with X̃ ∈ R^{P×N} standard normal, α = P/N) ----

/// The edges λ₋ = (1 − 1/√α)², λ₊ = (1 + 1/√α)² of the continuous part. ConfigError naming "load"
/// for α <= 0 or non-finite.
std::pair<double, double> mp_support(double load);
/// The continuous part's density at λ (0 outside the support); it has mass min(1, α).
double mp_density(double lambda, double load);
/// The point mass at λ = 0: max(0, 1 − α).
double mp_zero_mass(double load);
/// ∫ ρ(λ) f(λ) dλ over the continuous part. λ = m + r cos θ (m, r the support's centre and half
/// width) turns it into ∫₀^π α r² sin²θ f(λ(θ)) / (2π λ(θ)) dθ, whose integrand is smooth and, as a
/// function of θ, even and 2π-periodic: the midpoint rule with `points` nodes converges
/// geometrically for smooth f (no node sits on an edge, so λ₋ = 0 at α = 1 is never evaluated).
double mp_integral(double load, const std::function<double(double)>& f, std::int64_t points = 4096);

/// E_g(t) of the infinite-size limit (the MP integral above) at each time (t >= 0; +inf gives
/// the asymptote, which is +inf at α = 1).
std::vector<double> mp_generalization_error(const TeacherStudentOptions& o, const std::vector<double>& times,
                                            std::int64_t points = 4096);
/// The closed-form asymptote E_g(∞) of the infinite-size limit (+inf at α = 1).
double asymptotic_error(const TeacherStudentOptions& o);
/// The exact expectation of E_g(∞) at finite N, P (Gaussian inputs, gradient flow to convergence):
/// P > N + 1: σ_ε² + σ_ε² N/(P − N − 1); P < N − 1: σ_ε² + (N − P)/N (σ_w̄² + σ_w0²) +
/// σ_ε² P/(N − P − 1) (from E[W⁻¹] = I/(n − p − 1) of a Wishart W_p(I, n)); +inf otherwise (the
/// expectation does not exist when |P − N| <= 1).
double finite_size_asymptotic_error(const TeacherStudentOptions& o);
/// The time of the minimum of the MP E_g(t) over [t_lo, t_hi]: a log grid of 200 points, then a
/// golden-section search in log t around the best one. Returns t_hi when the error still falls there.
double mp_optimal_stopping_time(const TeacherStudentOptions& o, double t_lo = 1e-3, double t_hi = 1e5);

// ---- Exact gradient flow on least squares ----

/// Gradient flow da/dt = −∇ (1/2P)‖y − Φa‖² from a(0) = a₀, in closed form. With the thin SVD
/// Φ = U S Vᵀ (singular values above max(P, D)·ε·s_max; the others are null directions), the rates
/// are λ_k = s_k²/P, the minimum-norm least-squares coefficients c_k = u_kᵀy/s_k, and
///   a(t) = a₀ + Σ_k v_k (1 − e^{−λ_k t}) (c_k − v_kᵀa₀).
/// Components of a₀ outside the span of the v_k (the null space of Φ) never move; at t = ∞, a is the
/// minimum-norm interpolant plus that null-space part of a₀.
struct LinearFlow {
  torch::Tensor init;        ///< a₀ [D]
  torch::Tensor directions;  ///< V [D, r]
  torch::Tensor rates;       ///< λ [r]
  torch::Tensor solution;    ///< c [r]
  /// a(t) for each time (>= 0, +inf allowed) as the columns of a [D, T] tensor.
  torch::Tensor at(const std::vector<double>& times) const;
};
/// features [P, D], targets [P], init [D] (floating point, one device). ShapeError for mismatched
/// shapes; DataError for non-finite values.
LinearFlow least_squares_flow(const torch::Tensor& features, const torch::Tensor& targets, const torch::Tensor& init);

// ---- The teacher–student data and its error curves ----

/// One sampled data set, float64: inputs x̃ = √N x [P, N] (standard normal), targets y [P],
/// teacher w̄ [N], noise ε [P], initial student w(0) [N] (N(0, σ_w0²); zero when σ_w0 = 0).
struct TeacherStudentData {
  torch::Tensor inputs, targets, teacher, noise, init;
};
TeacherStudentData sample_teacher_student(const TeacherStudentOptions& o, at::Generator& gen);

/// Generalisation and training error of the student along the exact gradient flow.
struct ErrorCurve {
  std::vector<double> test;   ///< E_g(t) = ‖w(t) − w̄‖²/N + σ_ε² (exact for a fresh sample)
  std::vector<double> train;  ///< (1/P) Σ (y − ŷ)²
};
/// The curves at `times` (+inf allowed) of the data set's student, started from data.init (or from
/// `init` [N] when defined: the same data with another initialisation).
ErrorCurve teacher_student_errors(const TeacherStudentData& data, const TeacherStudentOptions& o, const std::vector<double>& times,
                                  const torch::Tensor& init = {});

/// φ(x̃) = ReLU(x̃ Fᵀ/√N)/√H for inputs x̃ [M, N] and first-layer weights F [H, N].
torch::Tensor relu_features(const torch::Tensor& inputs, const torch::Tensor& first_layer);

/// The random-ReLU-features student of width H on a teacher–student data set: F ~ N(0, 1) drawn from
/// `gen`, a trained from 0 by the exact flow. Test error = mean over `test_samples` fresh inputs of
/// (w̄·x − ŷ)² + σ_ε² (noise-free test targets plus the noise variance, which is its expectation).
/// ConfigError naming "width" / "test_samples" for values < 1.
ErrorCurve random_features_errors(const TeacherStudentData& data, const TeacherStudentOptions& o, std::int64_t width,
                                  const std::vector<double>& times, std::int64_t test_samples, at::Generator& gen);

}  // namespace stablelearn::theory
