// GD / SGD stability checks against exact spectra and against the dynamics they predict.
#include <cmath>
#include <limits>
#include <vector>

#include <gtest/gtest.h>
#include <torch/types.h>

#include "stablelearn/core/error.h"
#include "stablelearn/diagnostics/curvature.h"
#include "stablelearn/diagnostics/stability.h"
#include "testing.h"

namespace {

namespace D = stablelearn::diagnostics;

torch::TensorOptions f64() { return torch::TensorOptions().dtype(torch::kFloat64); }

/// Least squares L = (1/n) Σ ½ (x_iᵀw − y_i)²; H = XᵀX/n.
struct LeastSquares {
  torch::Tensor x, y, w;
  LeastSquares(std::int64_t n, std::int64_t d) : x(torch::randn({n, d}, f64())), y(torch::randn({n}, f64())) {
    w = torch::zeros({d}, f64()).requires_grad_(true);
  }
  D::HessianOperator hessian() const {
    auto w_ = w;
    return D::HessianOperator({w}, [w_](const D::Batch& b) { return 0.5 * (b.x.mv(w_) - b.y).pow(2).mean(); }, {{x, y}});
  }
  torch::Tensor h() const { return x.t().mm(x) / static_cast<double>(x.size(0)); }
};

TEST(Stability, NoiseFactor) {
  EXPECT_DOUBLE_EQ(D::sgd_noise_factor(1, 10), 1.0);
  EXPECT_DOUBLE_EQ(D::sgd_noise_factor(10, 10), 0.0);
  EXPECT_DOUBLE_EQ(D::sgd_noise_factor(5, 10), 5.0 / 45.0);
  EXPECT_THROW(D::sgd_noise_factor(0, 10), stablelearn::ConfigError);
  EXPECT_THROW(D::sgd_noise_factor(11, 10), stablelearn::ConfigError);
  EXPECT_THROW(D::sgd_noise_factor(1, 1), stablelearn::ConfigError);
}

TEST(Stability, ReportMatchesTheExactSpectrumOfLeastSquares) {
  LeastSquares p(40, 8);
  auto h = p.hessian();
  auto ev = torch::linalg_eigvalsh(p.h());
  const double lmax = ev[7].item<double>(), tr = ev.sum().item<double>(), fro = ev.pow(2).sum().sqrt().item<double>();
  const double eta = 0.1;
  auto r = D::stability_check(h, D::StabilityOptions()
                                     .learning_rate(eta)
                                     .batch_size(4)
                                     .num_samples(40)
                                     .trace_matvecs(30)  // sketch k = 8 = D: exact trace
                                     .frobenius_matvecs(200));
  EXPECT_NEAR(r.lambda_max, lmax, 1e-10 * lmax);
  EXPECT_NEAR(r.trace, tr, 1e-10 * tr);
  EXPECT_NEAR(r.frobenius * r.frobenius, fro * fro, 4.0 * r.frobenius_sq_stderr);
  const double p4 = 36.0 / (4.0 * 39.0);
  EXPECT_DOUBLE_EQ(r.p, p4);
  EXPECT_DOUBLE_EQ(r.gd_threshold, 2.0 / eta);
  EXPECT_NEAR(r.sharpness_ratio, eta * lmax / 2.0, 1e-10);
  EXPECT_NEAR(r.trace_threshold, 2.0 / (eta * p4), 1e-9);
  EXPECT_NEAR(r.trace_ratio, eta * p4 * tr / 2.0, 1e-10);
  EXPECT_NEAR(r.frobenius_scaled, eta * r.frobenius / 2.0, 1e-12);
  EXPECT_EQ(r.matvecs, 8 + 30 + 200);
  // Full batch: no SGD noise, the trace condition is vacuous.
  auto full = D::stability_check(h, D::StabilityOptions().learning_rate(eta).batch_size(40).num_samples(40));
  EXPECT_EQ(full.trace_threshold, std::numeric_limits<double>::infinity());
  EXPECT_TRUE(full.sgd_trace_condition());
}

TEST(Stability, GdConvergesBelowTwoOverEtaAndDivergesAbove) {
  LeastSquares p(30, 5);
  auto h = p.hessian();
  const auto w_star = std::get<0>(torch::linalg_lstsq(p.x, p.y.unsqueeze(1))).squeeze(1);
  for (double factor : {0.95, 1.05}) {
    const double lmax = torch::linalg_eigvalsh(p.h())[4].item<double>();
    const double eta = factor * 2.0 / lmax;
    auto r = D::stability_check(h, D::StabilityOptions().learning_rate(eta).batch_size(30).num_samples(30));
    // Run GD from a perturbed start and watch the distance to the minimum.
    auto w = (w_star + 0.1 * torch::randn({5}, f64())).clone();
    const double d0 = (w - w_star).norm().item<double>();
    for (int t = 0; t < 400; ++t) w = w - eta * p.h().mv(w - w_star);
    const double d1 = (w - w_star).norm().item<double>();
    if (factor < 1.0) {
      EXPECT_TRUE(r.gd_stable());
      EXPECT_LT(d1, d0);
    } else {
      EXPECT_FALSE(r.gd_stable());
      EXPECT_GT(d1, 100.0 * d0);
    }
  }
}

TEST(Stability, SgdSecondMomentExplodesWhenTheTraceConditionFails) {
  // Interpolation (n < d): linearised single-sample SGD Δ ← (I − η x_i x_iᵀ) Δ. The exact second
  // moment Σ_{t+1} = (1/n) Σ_i (I − ηH_i) Σ_t (I − ηH_i) is iterated without sampling.
  const std::int64_t n = 10, d = 20;
  auto x = torch::randn({n, d}, f64());
  auto y = torch::zeros({n}, f64());
  auto w = torch::zeros({d}, f64()).requires_grad_(true);
  D::HessianOperator h({w}, [w](const D::Batch& b) { return 0.5 * (b.x.mv(w) - b.y).pow(2).mean(); }, {{x, y}});
  const double tr = (x * x).sum().item<double>() / n;
  const double max_row = (x * x).sum(1).max().item<double>();
  auto second_moment_growth = [&](double eta) {
    auto proj = x.t().mm(torch::linalg_pinv(x.mm(x.t()))).mm(x);  // start inside the row space
    auto sigma = proj.clone();
    for (int t = 0; t < 200; ++t) {
      auto next = torch::zeros_like(sigma);
      for (std::int64_t i = 0; i < n; ++i) {
        auto a = torch::eye(d, f64()) - eta * torch::outer(x[i], x[i]);
        next += a.mm(sigma).mm(a);
      }
      sigma = next / static_cast<double>(n);
    }
    return sigma.trace().item<double>() / proj.trace().item<double>();
  };
  auto opts = D::StabilityOptions().batch_size(1).num_samples(n).trace_matvecs(60);
  // η·tr/2 = 1.3 > 1: the necessary condition fails, and the second moment explodes.
  const double eta_bad = 2.6 / tr;
  auto bad = D::stability_check(h, opts.learning_rate(eta_bad));
  EXPECT_FALSE(bad.sgd_trace_condition());
  EXPECT_NEAR(bad.trace_ratio, 1.3, 1e-9);
  EXPECT_GT(second_moment_growth(eta_bad), 1e3);
  // η ≤ 1/max‖x_i‖²: every factor is a contraction, so the second moment cannot grow.
  const double eta_good = 1.0 / max_row;
  auto good = D::stability_check(h, opts.learning_rate(eta_good));
  EXPECT_TRUE(good.sgd_trace_condition());
  EXPECT_TRUE(good.gd_stable());
  EXPECT_LT(second_moment_growth(eta_good), 1.0);
}

TEST(Stability, ExactSgdThresholdSeparatesBoundedFromExplodingSecondMoments) {
  // Least squares at interpolation with per-sample Hessians H_i = x_i x_iᵀ. The second moment
  // of the linearised SGD error is iterated exactly, enumerating every batch of B = 2 out of 6.
  const std::int64_t n = 6, d = 4, b = 2;
  auto x = torch::randn({n, d}, f64());
  std::vector<torch::Tensor> hs;
  for (std::int64_t i = 0; i < n; ++i) hs.push_back(torch::outer(x[i], x[i]));
  std::vector<torch::Tensor> batch_h;
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = i + 1; j < n; ++j) batch_h.push_back((hs[i] + hs[j]) / 2.0);
  const auto stacked = torch::stack(batch_h);  // [15, d, d]
  auto growth = [&](double eta) {
    const auto a = torch::eye(d, f64()) - eta * stacked;
    auto sigma = torch::eye(d, f64());
    for (int t = 0; t < 3000; ++t) sigma = a.matmul(sigma).matmul(a).mean(0);  // E over batches
    return sigma.trace().item<double>() / d;
  };
  const double eta_star = D::sgd_exact_threshold(hs, b);
  EXPECT_LT(growth(0.95 * eta_star), 1.0);
  EXPECT_GT(growth(1.05 * eta_star), 10.0);
  // The necessary conditions: η* ≤ 2/λ_max(H) (GD) and η* ≤ 2/(p tr H) (trace bound).
  auto h = x.t().mm(x) / static_cast<double>(n);
  const double p = D::sgd_noise_factor(b, n);
  EXPECT_LE(eta_star, 2.0 / torch::linalg_eigvalsh(h)[-1].item<double>() + 1e-12);
  EXPECT_LE(eta_star, 2.0 / (p * h.trace().item<double>()) + 1e-12);
  // Full batch: the GD threshold exactly.
  EXPECT_NEAR(D::sgd_exact_threshold(hs, n), 2.0 / torch::linalg_eigvalsh(h)[-1].item<double>(), 1e-9);
  EXPECT_THROW(D::sgd_exact_threshold({torch::eye(2, f64()), torch::eye(3, f64())}, 1), stablelearn::ShapeError);
}

TEST(Stability, RejectsBadOptions) {
  LeastSquares p(10, 3);
  auto h = p.hessian();
  EXPECT_THROW(D::stability_check(h, D::StabilityOptions().learning_rate(0).num_samples(10)), stablelearn::ConfigError);
  EXPECT_THROW(D::stability_check(h, D::StabilityOptions().learning_rate(0.1)), stablelearn::ConfigError);  // N = 0
}

}  // namespace
