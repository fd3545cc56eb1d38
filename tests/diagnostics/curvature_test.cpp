// Curvature operators against closed forms and finite differences (float64).
#include <cmath>
#include <vector>

#include <gtest/gtest.h>
#include <torch/types.h>

#include "diagnostics_testing.h"
#include "stablelearn/core/error.h"
#include "stablelearn/diagnostics/curvature.h"
#include "testing.h"

namespace {

namespace D = stablelearn::diagnostics;
using D::testing::materialize;
using D::testing::max_abs_diff;

torch::TensorOptions f64() { return torch::TensorOptions().dtype(torch::kFloat64); }

/// X [n, d], y [n] split into batches of the given sizes (uneven on purpose).
std::vector<D::Batch> split(const torch::Tensor& x, const torch::Tensor& y, const std::vector<std::int64_t>& sizes) {
  std::vector<D::Batch> out;
  std::int64_t off = 0;
  for (auto s : sizes) {
    out.push_back({x.narrow(0, off, s), y.narrow(0, off, s)});
    off += s;
  }
  return out;
}

struct LinearRegression {
  torch::Tensor x = torch::randn({30, 5}, f64());
  torch::Tensor y = torch::randn({30}, f64());
  torch::Tensor w = torch::randn({5}, f64()).requires_grad_(true);
  /// Mean of ½ (xᵀw − y)² over the batch.
  D::LossFn loss() const {
    auto w_ = w;
    return [w_](const D::Batch& b) { return 0.5 * (b.x.mv(w_) - b.y).pow(2).mean(); };
  }
  std::vector<D::Batch> batches() const { return split(x, y, {12, 10, 8}); }
  /// Closed form: H = XᵀX / n.
  torch::Tensor hessian() const { return x.t().mm(x) / x.size(0); }
};

/// A 3-4-2 tanh MLP with MSE, parameters as separate leaves.
struct TinyMlp {
  torch::Tensor w1 = (torch::randn({4, 3}, f64()) * 0.8).requires_grad_(true);
  torch::Tensor b1 = (torch::randn({4}, f64()) * 0.1).requires_grad_(true);
  torch::Tensor w2 = (torch::randn({2, 4}, f64()) * 0.8).requires_grad_(true);
  torch::Tensor x = torch::randn({9, 3}, f64());
  torch::Tensor y = torch::randn({9, 2}, f64());
  std::vector<torch::Tensor> params() const { return {w1, b1, w2}; }
  D::OutputFn model() const {
    auto a = w1, b = b1, c = w2;
    return [a, b, c](const torch::Tensor& in) { return torch::tanh(in.mm(a.t()) + b).mm(c.t()); };
  }
  D::LossFn loss() const {
    auto f = model();
    return [f](const D::Batch& bt) { return 0.5 * (f(bt.x) - bt.y).pow(2).sum(1).mean(); };
  }
  std::vector<D::Batch> batches() const { return split(x, y, {5, 4}); }
};

/// (g(θ + εv) − g(θ − εv)) / 2ε, g the gradient of `op`'s loss at `params` (shifted in place and
/// restored): the central difference of the gradient along v, an independent H v.
torch::Tensor gradient_difference(const D::HessianOperator& op, const std::vector<torch::Tensor>& params,
                                  const torch::Tensor& v, double eps = 1e-5) {
  auto shift = [&](double s) {
    torch::NoGradGuard ng;
    auto parts = D::unflatten_like(v, params);
    for (std::size_t i = 0; i < parts.size(); ++i) params[i].add_(parts[i], s);
  };
  shift(eps);
  const auto gp = op.loss_and_gradient().second;
  shift(-2 * eps);
  const auto gm = op.loss_and_gradient().second;
  shift(eps);
  return (gp - gm) / (2 * eps);
}

TEST(Curvature, FlattenAndUnflattenRoundTrip) {
  std::vector<torch::Tensor> ts{torch::arange(6, f64()).reshape({2, 3}), torch::arange(6, 8, f64())};
  auto flat = D::flatten_tensors(ts);
  EXPECT_TRUE(torch::equal(flat, torch::arange(8, f64())));
  auto back = D::unflatten_like(flat, ts);
  EXPECT_TRUE(torch::equal(back[0], ts[0]));
  EXPECT_TRUE(torch::equal(back[1], ts[1]));
  EXPECT_EQ(D::total_numel(ts), 8);
  EXPECT_THROW(D::unflatten_like(torch::zeros({7}, f64()), ts), stablelearn::ShapeError);
}

TEST(Curvature, HessianOfLinearRegressionIsXtXOverN) {
  LinearRegression p;
  D::HessianOperator h({p.w}, p.loss(), p.batches());
  EXPECT_EQ(h.dim(), 5);
  EXPECT_EQ(h.num_samples(), 30);
  // Batch weighting n_b / N makes the uneven batches sum to the full-data Hessian.
  EXPECT_LT(max_abs_diff(materialize(h), p.hessian()), 1e-13);
  auto v = torch::randn({5}, f64());
  EXPECT_LT(max_abs_diff(h.apply(v), p.hessian().mv(v)), 1e-13);
  // The full-data gradient: Xᵀ(Xw − y)/n.
  auto [loss, g] = h.loss_and_gradient();
  auto r = p.x.mv(p.w.detach()) - p.y;
  EXPECT_NEAR(loss, 0.5 * r.pow(2).mean().item<double>(), 1e-13);
  EXPECT_LT(max_abs_diff(g, p.x.t().mv(r) / 30.0), 1e-13);
}

TEST(Curvature, HessianOfLogisticRegressionMatchesClosedForm) {
  auto x = torch::randn({20, 4}, f64());
  auto y = (torch::rand({20}, f64()) > 0.5).to(torch::kFloat64);
  auto w = (torch::randn({4}, f64()) * 0.5).requires_grad_(true);
  D::LossFn loss = [w](const D::Batch& b) {
    auto z = b.x.mv(w);
    return (torch::softplus(z) - b.y * z).mean();  // binary cross-entropy with logits
  };
  D::HessianOperator h({w}, loss, split(x, y, {7, 13}));
  auto s = torch::sigmoid(x.mv(w.detach()));
  auto expected = x.t().mm(torch::diag(s * (1 - s))).mm(x) / 20.0;  // (1/N) Xᵀ diag(σ(1−σ)) X
  EXPECT_LT(max_abs_diff(materialize(h), expected), 1e-13);
}

TEST(Curvature, SoftmaxCrossEntropyHessianAndGaussNewtonMatchKroneckerForm) {
  const std::int64_t n = 12, d = 4, k = 3;
  auto x = torch::randn({n, d}, f64());
  auto y = torch::randint(0, k, {n}, torch::kLong);
  auto w = (torch::randn({k, d}, f64()) * 0.5).requires_grad_(true);
  D::OutputFn model = [w](const torch::Tensor& in) { return in.mm(w.t()); };
  D::LossFn loss = [model](const D::Batch& b) {
    return -torch::log_softmax(model(b.x), 1).gather(1, b.y.unsqueeze(1)).mean();
  };
  // (1/N) Σ_i (diag p_i − p_i p_iᵀ) ⊗ x_i x_iᵀ for W flattened row-major.
  auto p = torch::softmax(x.mm(w.detach().t()), 1);
  auto expected = torch::zeros({k * d, k * d}, f64());
  for (std::int64_t i = 0; i < n; ++i)
    expected += torch::kron(torch::diag(p[i]) - torch::outer(p[i], p[i]), torch::outer(x[i], x[i]));
  expected /= static_cast<double>(n);
  auto batches = split(x, y, {5, 7});
  D::HessianOperator h({w}, loss, batches);
  D::GaussNewtonOperator g({w}, model, D::OutputLoss::CrossEntropy, batches);
  EXPECT_LT(max_abs_diff(materialize(h), expected), 1e-13);
  EXPECT_LT(max_abs_diff(materialize(g), expected), 1e-13);  // linear model: GGN = Hessian
  EXPECT_NEAR(g.exact_trace(), expected.trace().item<double>(), 1e-12);
}

TEST(Curvature, HessianOfMlpMatchesFiniteDifferencesOfTheGradient) {
  TinyMlp m;
  D::HessianOperator h(m.params(), m.loss(), m.batches());
  auto v = torch::randn({h.dim()}, f64());
  auto hv = h.apply(v);
  const auto fd = gradient_difference(h, m.params(), v);
  EXPECT_LT(max_abs_diff(hv, fd), 1e-7 * std::max(1.0, hv.abs().max().item<double>()));
  auto hm = materialize(h);
  EXPECT_LT(max_abs_diff(hm, hm.t()), 1e-12);  // symmetric
}

TEST(Curvature, HessianKeepsItsGradientGraphsUntilAParameterChanges) {
  // The kept graphs give the products of a fresh operator (built per product: reuse_graph(false))
  // bit for bit, and after an in-place step on the parameters the product is the new Hessian's:
  // checked against a second operator built after the step and against central differences.
  TinyMlp m;
  D::HessianOperator kept(m.params(), m.loss(), m.batches());
  D::HessianOperator fresh(m.params(), m.loss(), m.batches());
  fresh.reuse_graph(false);
  for (int k = 0; k < 3; ++k) {
    const auto v = torch::randn({kept.dim()}, f64());
    EXPECT_TRUE(torch::equal(kept.apply(v), fresh.apply(v))) << k;
  }
  {
    torch::NoGradGuard ng;
    for (auto& p : m.params()) p.mul_(1.3).add_(0.05);
  }
  const auto v = torch::randn({kept.dim()}, f64());
  const D::HessianOperator after(m.params(), m.loss(), m.batches());
  const auto hv = kept.apply(v);
  EXPECT_TRUE(torch::equal(hv, after.apply(v)));
  // clear_cache() drops the graphs; the next product builds them again, same values.
  kept.clear_cache();
  EXPECT_TRUE(torch::equal(kept.apply(v), hv));
  EXPECT_LT(max_abs_diff(hv, gradient_difference(after, m.params(), v)), 1e-7 * std::max(1.0, hv.abs().max().item<double>()));
}

TEST(Curvature, ParameterSubsetGivesTheMatchingBlockOfTheHessian) {
  // Per-layer curvature: an operator over a subset of the parameters (the others held fixed) is
  // the corresponding diagonal block of the full Hessian.
  TinyMlp m;
  D::HessianOperator full(m.params(), m.loss(), m.batches());
  D::HessianOperator last({m.w2}, m.loss(), m.batches());
  auto hf = materialize(full);
  const auto off = m.w1.numel() + m.b1.numel();
  auto block = hf.narrow(0, off, m.w2.numel()).narrow(1, off, m.w2.numel());
  EXPECT_LT(max_abs_diff(materialize(last), block), 1e-12);
}

TEST(Curvature, GaussNewtonOfMlpMatchesFiniteDifferenceJacobians) {
  TinyMlp m;
  D::GaussNewtonOperator g(m.params(), m.model(), D::OutputLoss::MeanSquaredError, m.batches());
  // Output Jacobian by central differences, one parameter at a time: J [n, k, D].
  const auto dim = g.dim();
  const double eps = 1e-6;
  std::vector<torch::Tensor> cols;
  auto flat_params = D::flatten_tensors(m.params());
  for (std::int64_t j = 0; j < dim; ++j) {
    auto e = torch::zeros({dim}, f64());
    e[j] = 1.0;
    auto parts = D::unflatten_like(e, m.params());
    torch::NoGradGuard ng;
    for (std::size_t i = 0; i < parts.size(); ++i) m.params()[i].add_(parts[i], eps);
    auto fp = m.model()(m.x);
    for (std::size_t i = 0; i < parts.size(); ++i) m.params()[i].add_(parts[i], -2 * eps);
    auto fm = m.model()(m.x);
    for (std::size_t i = 0; i < parts.size(); ++i) m.params()[i].add_(parts[i], eps);
    cols.push_back((fp - fm) / (2 * eps));
  }
  auto jac = torch::stack(cols, 2);  // [n, k, D]
  auto expected = torch::einsum("nki,nkj->ij", {jac, jac}) / static_cast<double>(m.x.size(0));
  auto gm = materialize(g);
  EXPECT_LT(max_abs_diff(gm, expected), 1e-8);
  EXPECT_NEAR(g.exact_trace(), expected.trace().item<double>(), 1e-8);
  EXPECT_GT(torch::linalg_eigvalsh(gm).min().item<double>(), -1e-12);  // positive semi-definite
  EXPECT_TRUE(torch::allclose(flat_params, D::flatten_tensors(m.params())));
}

TEST(Curvature, EmpiricalFisherOfLinearRegression) {
  LinearRegression p;
  D::EmpiricalFisherOperator f({p.w}, p.loss(), p.batches());
  // g_i = (x_iᵀw − y_i) x_i, so F = Xᵀ diag(r²) X / n.
  auto r = p.x.mv(p.w.detach()) - p.y;
  auto expected = p.x.t().mm(torch::diag(r * r)).mm(p.x) / 30.0;
  EXPECT_EQ(f.sample_gradients().sizes(), (std::vector<std::int64_t>{30, 5}));
  EXPECT_LT(max_abs_diff(materialize(f), expected), 1e-13);
  EXPECT_NEAR(f.exact_trace(), expected.trace().item<double>(), 1e-12);
}

TEST(Curvature, HessianVarianceOfLinearRegression) {
  LinearRegression p;
  D::HessianVarianceOperator s({p.w}, p.loss(), p.batches());
  // H_i = x_i x_iᵀ, so (1/n) Σ H_i² = (1/n) Σ ‖x_i‖² x_i x_iᵀ and Σ = that − H².
  auto sq = (p.x * p.x).sum(1);
  auto expected = p.x.t().mm(torch::diag(sq)).mm(p.x) / 30.0 - p.hessian().mm(p.hessian());
  auto m = materialize(s);
  EXPECT_LT(max_abs_diff(m, expected), 1e-12 * expected.abs().max().item<double>());
  EXPECT_GT(torch::linalg_eigvalsh(m).min().item<double>(), -1e-10);  // a variance: PSD
}

TEST(Curvature, DenseAndLambdaOperators) {
  auto a = D::testing::known_spectrum(torch::tensor({3.0, 1.0, -2.0}, f64()), 7);
  D::DenseOperator op(a);
  auto v = torch::randn({3}, f64());
  EXPECT_LT(max_abs_diff(op.apply(v), a.mv(v)), 1e-15);
  EXPECT_LT(max_abs_diff(op.apply(v.to(torch::kFloat32)), a.mv(v.to(torch::kFloat32).to(torch::kFloat64))), 1e-15);
  D::LambdaOperator lam(3, f64(), [a](const torch::Tensor& u) { return a.mv(u); });
  EXPECT_LT(max_abs_diff(lam.apply(v), a.mv(v)), 1e-15);
}

TEST(Curvature, RejectsBadInput) {
  using stablelearn::testing::expect_error;
  expect_error<stablelearn::DataError>([] { D::DenseOperator(torch::tensor({1.0, 2.0, 0.0, 1.0}, f64()).reshape({2, 2})); },
                                       "not symmetric");
  expect_error<stablelearn::ShapeError>([] { D::DenseOperator(torch::zeros({2, 3}, f64())); }, "square");
  D::DenseOperator op(torch::eye(3, f64()));
  expect_error<stablelearn::ShapeError>([&] { op.apply(torch::zeros({4}, f64())); }, "expected 3");
  LinearRegression p;
  auto frozen = torch::zeros({5}, f64());
  expect_error<stablelearn::ConfigError>([&] { D::HessianOperator({frozen}, p.loss(), p.batches()); }, "does not require grad");
  expect_error<stablelearn::ConfigError>([&] { D::HessianOperator({p.w}, p.loss(), {}); }, "no batches");
  expect_error<stablelearn::ConfigError>([&] { D::HessianOperator({}, p.loss(), p.batches()); }, "no parameters");
}

}  // namespace
