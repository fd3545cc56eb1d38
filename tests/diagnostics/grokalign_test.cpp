// GrokAlign regulariser, centroids and Jacobian PC1 against closed forms (float64).
//
// For a linear model f(x) = Wx + b (W ∈ R^{K×d}) the input Jacobian is W at every x, so
//     r_i = √max((K/P) Σ_p ‖Wᵀv_{p,i}‖², 1e-8),  c(x_i) = Wᵀ1,  PC1 = σ₁(W)²/‖W‖_F²,
// and when WWᵀ = s²I, ‖Wᵀv‖ = s for every unit v, so r_i = s√K = ‖W‖_F exactly. For
// f(x) = W₂ tanh(W₁x + b₁), J(x) = W₂ diag(1 − tanh²(W₁x + b₁)) W₁. Gradients of the regulariser
// w.r.t. the weights (a double backward) are checked by central differences.
#include <cmath>
#include <vector>

#include <gtest/gtest.h>
#include <torch/types.h>
#include <torch/optim/adam.h>

#include "diagnostics_testing.h"
#include "stablelearn/core/error.h"
#include "stablelearn/diagnostics/grokalign.h"
#include "stablelearn/testing/gradcheck.h"
#include "testing.h"

namespace {

namespace D = stablelearn::diagnostics;
using D::testing::max_abs_diff;

torch::TensorOptions f64() { return torch::TensorOptions().dtype(torch::kFloat64); }

D::OutputFn affine_model(const torch::Tensor& w, const torch::Tensor& b) {
  return [w, b](const torch::Tensor& x) { return x.mm(w.t()) + b; };
}

/// Σ_p ‖Wᵀv_{p,i}‖² by plain matrix products: v [P, n, K] → [n].
torch::Tensor by_hand(const torch::Tensor& w, const torch::Tensor& v) {
  return v.matmul(w).pow(2).sum(-1).sum(0);  // (v_{p,i}ᵀW) is (Wᵀv_{p,i})ᵀ
}

TEST(GrokAlign, ProjectionsAreUnitGaussianDirections) {
  auto gen = at::detail::createCPUGenerator(3);
  const auto v = D::grokalign_projections(4, 5, 3, gen, f64());
  ASSERT_EQ(v.sizes(), (std::vector<std::int64_t>{4, 5, 3}));
  EXPECT_LT(max_abs_diff(v.norm(2, {-1}), torch::ones({4, 5}, f64())), 1e-14);
  auto gen2 = at::detail::createCPUGenerator(3);
  EXPECT_TRUE(torch::equal(D::grokalign_projections(4, 5, 3, gen2, f64()), v));
  EXPECT_EQ(D::grokalign_projections(1, 2, 2, gen, torch::TensorOptions().dtype(torch::kFloat32)).scalar_type(), torch::kFloat32);
  stablelearn::testing::expect_error<stablelearn::ConfigError>([&] { D::grokalign_projections(0, 5, 3, gen, f64()); },
                                                               "positive");
}

TEST(GrokAlign, LinearModelMatchesTheClosedForm) {
  const std::int64_t k = 4, d = 6, n = 5, p = 3;
  const auto w = torch::randn({k, d}, f64()).requires_grad_(true);
  const auto b = torch::randn({k}, f64());
  const auto x = torch::randn({n, d}, f64());
  auto gen = at::detail::createCPUGenerator(1);
  const auto v = D::grokalign_projections(p, n, k, gen, f64());
  const auto r = D::jacobian_norm_estimates(affine_model(w, b), x, v);
  const auto want = torch::sqrt(by_hand(w.detach(), v) * (double(k) / p));
  EXPECT_LT(max_abs_diff(r.detach(), want), 1e-13);
  EXPECT_TRUE(r.requires_grad());  // create_graph: differentiable w.r.t. W
  EXPECT_FALSE(D::jacobian_norm_estimates(affine_model(w, b), x, v, false).requires_grad());
  // The input x is not modified and need not require grad.
  EXPECT_FALSE(x.requires_grad());
  stablelearn::testing::expect_error<stablelearn::ShapeError>(
      [&] { D::jacobian_norm_estimates(affine_model(w, b), x, v.narrow(1, 0, 2)); }, "projections must be");
}

TEST(GrokAlign, ScaledOrthonormalRowsGiveTheFrobeniusNormExactly) {
  const std::int64_t k = 3, d = 7;
  const double s = 2.5;
  const auto w = s * D::testing::random_orthogonal(d, 4).narrow(1, 0, k).t().contiguous();  // WWᵀ = s²I
  const auto x = torch::randn({6, d}, f64());
  for (std::int64_t p : {1, 4}) {
    D::GrokAlign reg(affine_model(w, torch::zeros({k}, f64())), D::GrokAlignOptions().num_projections(p).seed(9));
    EXPECT_LT(max_abs_diff(reg.per_sample(x), torch::full({6}, s * std::sqrt(double(k)), f64())), 1e-12);
    EXPECT_NEAR(reg(x).item<double>(), w.norm().item<double>(), 1e-12);
  }
}

TEST(GrokAlign, ManyProjectionsEstimateTheFrobeniusNorm) {
  // E[(K/P) Σ_p ‖Jᵀv_p‖²] = ‖J‖_F² for unit v uniform on the sphere (E vvᵀ = I/K).
  const auto w = torch::randn({5, 8}, f64());
  const auto x = torch::randn({1, 8}, f64());
  D::GrokAlign reg(affine_model(w, torch::zeros({5}, f64())), D::GrokAlignOptions().num_projections(4000).seed(2).create_graph(false));
  const double est = reg(x).item<double>();
  EXPECT_NEAR(est * est / w.pow(2).sum().item<double>(), 1.0, 0.04);
  // Fresh projections on every call, as the reference draws them.
  D::GrokAlign one(affine_model(w, torch::zeros({5}, f64())), D::GrokAlignOptions().seed(2));
  EXPECT_NE(one(x).item<double>(), one(x).item<double>());
}

TEST(GrokAlign, ZeroJacobianIsClamped) {
  const auto x = torch::randn({3, 4}, f64());
  D::GrokAlign reg(affine_model(torch::zeros({2, 4}, f64()), torch::ones({2}, f64())));
  EXPECT_NEAR(reg(x).item<double>(), 1e-4, 1e-18);  // √1e-8
  // A model that ignores x entirely.
  D::GrokAlign constant([](const torch::Tensor& in) { return torch::ones({in.size(0), 2}, in.options()); });
  EXPECT_NEAR(constant(x).item<double>(), 1e-4, 1e-18);
}

TEST(GrokAlign, RegulariserGradientPassesGradcheck) {
  using stablelearn::testing::gradcheck;
  const auto x = torch::randn({4, 3}, f64());
  auto gen = at::detail::createCPUGenerator(5);
  const auto v = D::grokalign_projections(2, 4, 2, gen, f64());
  // Linear: R(W) = mean_i √((K/P) Σ_p ‖Wᵀv_{p,i}‖²).
  const auto w = torch::randn({2, 3}, f64()).requires_grad_(true);
  const auto lin = gradcheck(
      [&](const std::vector<torch::Tensor>& in) {
        return D::jacobian_norm_estimates(affine_model(in[0], torch::zeros({2}, f64())), x, v).mean().reshape({1});
      },
      {w});
  EXPECT_TRUE(lin.ok) << lin;
  // A tanh MLP: the gradient of Jᵀv w.r.t. W₁, b₁, W₂ involves tanh''.
  const auto w1 = torch::randn({5, 3}, f64()).requires_grad_(true);
  const auto b1 = torch::randn({5}, f64()).requires_grad_(true);
  const auto w2 = torch::randn({2, 5}, f64()).requires_grad_(true);
  const auto mlp = gradcheck(
      [&](const std::vector<torch::Tensor>& in) {
        const D::OutputFn f = [&](const torch::Tensor& z) { return torch::tanh(z.mm(in[0].t()) + in[1]).mm(in[2].t()); };
        return D::jacobian_norm_estimates(f, x, v);
      },
      {w1, b1, w2});
  EXPECT_TRUE(mlp.ok) << mlp;
}

TEST(GrokAlign, CentroidsOfALinearModel) {
  const auto w = torch::randn({3, 4}, f64());
  const auto b = torch::randn({3}, f64());
  const auto c1 = w.sum(0);  // Wᵀ1
  auto orth = torch::randn({4}, f64());
  orth = orth - orth.dot(c1) / c1.dot(c1) * c1;
  const auto x = torch::stack({2.0 * c1, -c1, orth, torch::randn({4}, f64()), torch::zeros({4}, f64())});
  const auto r = D::centroid_alignment(affine_model(w, b), x);
  EXPECT_LT(max_abs_diff(r.centroids, c1.expand({5, 4})), 1e-14);
  EXPECT_LT(max_abs_diff(r.inner_products, x.mv(c1)), 1e-13);
  EXPECT_LT(max_abs_diff(r.norms, torch::full({5}, c1.norm().item<double>(), f64())), 1e-14);
  EXPECT_NEAR(r.alignments[0].item<double>(), 1.0, 1e-14);
  EXPECT_NEAR(r.alignments[1].item<double>(), -1.0, 1e-14);
  EXPECT_NEAR(r.alignments[2].item<double>(), 0.0, 1e-14);
  EXPECT_NEAR(r.alignments[3].item<double>(), x[3].dot(c1).item<double>() / (x[3].norm() * c1.norm()).item<double>(), 1e-14);
  EXPECT_EQ(r.alignments[4].item<double>(), 0.0);  // x = 0: ⟨c, x⟩ / max(0, 1e-8)
  EXPECT_NEAR(r.mean_alignment, r.alignments.mean().item<double>(), 1e-15);
  // Image-shaped inputs: centroids keep x's shape.
  const auto img = torch::randn({2, 2, 2}, f64());
  const auto ri = D::centroid_alignment([w](const torch::Tensor& z) { return z.reshape({z.size(0), -1}).mm(w.t()); }, img);
  EXPECT_EQ(ri.centroids.sizes(), img.sizes());
}

TEST(GrokAlign, JacobiansAndPc1) {
  const auto w1 = torch::randn({5, 3}, f64());
  const auto b1 = torch::randn({5}, f64());
  const auto w2 = torch::randn({2, 5}, f64());
  const D::OutputFn f = [&](const torch::Tensor& z) { return torch::tanh(z.mm(w1.t()) + b1).mm(w2.t()); };
  const auto x = torch::randn({4, 3}, f64());
  const auto j = D::input_jacobians(f, x);
  ASSERT_EQ(j.sizes(), (std::vector<std::int64_t>{4, 2, 3}));
  for (std::int64_t i = 0; i < 4; ++i) {
    const auto s = 1.0 - torch::tanh(w1.mv(x[i]) + b1).pow(2);
    EXPECT_LT(max_abs_diff(j[i], w2.mm(torch::diag(s)).mm(w1)), 1e-14);
  }
  // Linear: PC1 = σ₁²/‖W‖_F² at every x; a rank-one W gives 1.
  const auto w = torch::randn({3, 4}, f64());
  const auto sv = torch::linalg_svdvals(w).pow(2);
  const auto pc1 = D::jacobian_pc1(affine_model(w, torch::zeros({3}, f64())), x.narrow(1, 0, 3).mm(torch::randn({3, 4}, f64())));
  EXPECT_LT(max_abs_diff(pc1, torch::full({4}, (sv[0] / sv.sum()).item<double>(), f64())), 1e-14);
  const auto r1 = torch::randn({3, 1}, f64()).mm(torch::randn({1, 4}, f64()));
  EXPECT_NEAR(D::jacobian_pc1(affine_model(r1, torch::zeros({3}, f64())), torch::randn({2, 4}, f64()))[0].item<double>(), 1.0, 1e-12);
}

/// The end-to-end task: a bias-free ReLU MLP 32-32-32-4 (the paper's networks are bias-free MLPs)
/// fitted by MSE to one-hot labels of a random linear teacher on 32 Gaussian inputs in R^32 (few
/// samples in a high dimension: the memorisation regime of the paper's MNIST runs). For a bias-free
/// ReLU network f(x) = J(x)x, and with MSE on one-hot targets Σ_k f_k ≈ 1 at a fit, so
/// ⟨c, x⟩ = 1ᵀJx = Σ_k f_k ≈ 1 and the alignment 1/(‖c‖‖x‖) grows as the Jacobian shrinks toward
/// f xᵀ/‖x‖², the smallest Jacobian that produces f.
struct TinyTask {
  torch::Tensor x, y;
  std::vector<torch::Tensor> params;
  D::OutputFn model;
  explicit TinyTask(std::uint64_t seed) {
    auto gen = at::detail::createCPUGenerator(seed);
    x = torch::randn({32, 32}, gen, f64());
    const auto teacher = torch::randn({4, 32}, gen, f64());
    y = torch::one_hot(x.mm(teacher.t()).argmax(1), 4).to(torch::kFloat64);
    for (auto shape : std::vector<std::vector<std::int64_t>>{{32, 32}, {32, 32}, {4, 32}})
      params.push_back((torch::randn(shape, gen, f64()) * std::sqrt(2.0 / double(shape[1]))).requires_grad_(true));
    const auto ps = params;
    model = [ps](const torch::Tensor& in) { return torch::relu(torch::relu(in.mm(ps[0].t())).mm(ps[1].t())).mm(ps[2].t()); };
  }
  /// Full-batch Adam (rate 1e-2) on ½‖f − y‖² + λ R(x) for `steps` steps.
  void train(double lambda, int steps) {
    torch::optim::Adam opt(params, torch::optim::AdamOptions(1e-2));
    D::GrokAlign reg(model, D::GrokAlignOptions().seed(1));
    for (int s = 0; s < steps; ++s) {
      opt.zero_grad();
      auto loss = 0.5 * (model(x) - y).pow(2).sum(1).mean();
      if (lambda > 0) loss = loss + lambda * reg(x);
      loss.backward();
      opt.step();
    }
  }
  double accuracy() const {
    torch::NoGradGuard ng;
    return model(x).argmax(1).eq(y.argmax(1)).to(torch::kFloat64).mean().item<double>();
  }
  /// Exact mean ‖J(x_i)‖_F over the training inputs.
  double jacobian_norm() const { return D::input_jacobians(model, x).flatten(1).norm(2, {1}).mean().item<double>(); }
  /// Jacobian misalignment: 1 − mean centroid alignment cos(J(x)ᵀ1, x).
  double misalignment() const { return 1.0 - D::centroid_alignment(model, x).mean_alignment; }
};

TEST(GrokAlign, TrainingWithTheRegulariserLowersJacobianMisalignment) {
  // Measured (seeds 0 and 1, 1000 steps): without the regulariser ‖J‖_F ≈ 1.3 and alignment
  // 0.15 / 0.19; with λ = 0.1 ‖J‖_F ≈ 0.36 / 0.30 and alignment 0.70 / 0.77; both fit every label.
  TinyTask plain(0), regularised(0);
  plain.train(0.0, 1000);
  regularised.train(0.1, 1000);
  EXPECT_EQ(plain.accuracy(), 1.0);
  EXPECT_EQ(regularised.accuracy(), 1.0);
  EXPECT_LT(regularised.jacobian_norm(), 0.5 * plain.jacobian_norm());
  EXPECT_LT(regularised.misalignment(), plain.misalignment() - 0.3)
      << "misalignment " << plain.misalignment() << " without, " << regularised.misalignment() << " with the regulariser";
}

}  // namespace
