// models/gka: the Chebyshev solve against torch::linalg_solve and its closed-form error bound, CG,
// the chunked layer against the per-token recurrence (values and gradients), causality, the
// reduced-precision behaviour of the solvers (float16 / bfloat16 emulated by rounding), adaptive
// against fixed regularisation, bad options, and one layer learning in-context linear regression.
#include <cmath>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "stablelearn/core/error.h"
#include "stablelearn/models/gka.h"
#include "testing.h"

namespace sm = stablelearn::models;
namespace sl = stablelearn;
namespace gk = stablelearn::models::gka;

namespace {

// Batched H = Σ_i γ^{T−i} k_i k_iᵀ of T unit keys k_i = normalise(c + s·n_i) around a common
// direction c (s small: strongly correlated keys, an ill-conditioned H).
torch::Tensor correlated_covariance(std::int64_t batch, std::int64_t T, std::int64_t D, double spread, double gamma,
                                    torch::ScalarType dtype = torch::kFloat64) {
  auto H = torch::zeros({batch, D, D}, dtype);
  const auto c = torch::randn({batch, 1, D}, dtype);
  const auto k = torch::nn::functional::normalize(c + spread * torch::randn({batch, T, D}, dtype),
                                                  torch::nn::functional::NormalizeFuncOptions().dim(-1));
  for (std::int64_t t = 0; t < T; ++t) H = gamma * H + k.select(1, t).unsqueeze(-1) * k.select(1, t).unsqueeze(-2);
  return H;
}

double rel_err(const torch::Tensor& x, const torch::Tensor& ref) {
  return ((x.to(torch::kFloat64) - ref).norm() / ref.norm()).item<double>();
}

// x* of (H + λI) x = q by Gaussian elimination written here (no pivoting needed: SPD), one system.
std::vector<double> eliminate(std::vector<std::vector<double>> a, std::vector<double> b) {
  const auto n = b.size();
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t r = i + 1; r < n; ++r) {
      const double f = a[r][i] / a[i][i];
      for (std::size_t c = i; c < n; ++c) a[r][c] -= f * a[i][c];
      b[r] -= f * b[i];
    }
  std::vector<double> x(n);
  for (std::size_t i = n; i-- > 0;) {
    double s = b[i];
    for (std::size_t c = i + 1; c < n; ++c) s -= a[i][c] * x[c];
    x[i] = s / a[i][i];
  }
  return x;
}

}  // namespace

TEST(GkaSolve, ChebyshevMatchesEliminationAndObeysItsErrorBound) {
  const std::int64_t D = 6;
  const auto H = correlated_covariance(3, 20, D, 0.5, 0.95);
  const auto q = torch::randn({3, D}, torch::kFloat64);
  const auto lam = gk::adaptive_ridge(H, 0.02);
  // λ = 0.02 ‖H‖_F, written out.
  for (int b = 0; b < 3; ++b) EXPECT_NEAR(lam[b].item<double>(), 0.02 * std::sqrt((H[b] * H[b]).sum().item<double>()), 1e-14);
  const auto x200 = gk::chebyshev_solve(H, q, lam, 200);
  for (int b = 0; b < 3; ++b) {
    std::vector<std::vector<double>> a(D, std::vector<double>(D));
    std::vector<double> rhs(D);
    for (int i = 0; i < D; ++i) {
      rhs[i] = q[b][i].item<double>();
      for (int j = 0; j < D; ++j) a[i][j] = H[b][i][j].item<double>() + (i == j ? lam[b].item<double>() : 0.0);
    }
    const auto xs = eliminate(a, rhs);
    for (int i = 0; i < D; ++i) EXPECT_NEAR(x200[b][i].item<double>(), xs[i], 1e-10);
  }
  // After n steps the error is at most 2 c^n in the (H + λI)-norm, c = (√κ − 1)/(√κ + 1) with
  // κ = (λ + F)/λ the bound's condition number; in the 2-norm a further factor √κ.
  const auto exact = torch::linalg_solve(H + lam.view({3, 1, 1}) * torch::eye(D, torch::kFloat64), q.unsqueeze(-1)).squeeze(-1);
  for (const std::int64_t n : {1, 5, 10, 30}) {
    const auto x = gk::chebyshev_solve(H, q, lam, n);
    for (int b = 0; b < 3; ++b) {
      const double F = std::sqrt((H[b] * H[b]).sum().item<double>()), l = lam[b].item<double>();
      const double kappa = (l + F) / l, c = (std::sqrt(kappa) - 1) / (std::sqrt(kappa) + 1);
      const double bound = 2 * std::pow(c, double(n)) * std::sqrt(kappa) * exact[b].norm().item<double>();
      EXPECT_LE((x[b] - exact[b]).norm().item<double>(), bound * (1 + 1e-9)) << "n = " << n;
    }
  }
}

TEST(GkaSolve, ConjugateGradientsSolveADSystemInDStepsAndExactSolveTakesLambda) {
  const std::int64_t D = 5;
  const auto H = correlated_covariance(2, 12, D, 1.0, 0.9);
  const auto q = torch::randn({2, D}, torch::kFloat64);
  const auto lam = torch::tensor({0.3, 0.05}, torch::kFloat64);
  const auto ref = torch::linalg_solve(H + lam.view({2, 1, 1}) * torch::eye(D, torch::kFloat64), q.unsqueeze(-1)).squeeze(-1);
  EXPECT_LT((gk::conjugate_gradient_solve(H, q, lam, D) - ref).abs().max().item<double>(), 1e-8);
  EXPECT_LT((gk::exact_solve(H, q, lam) - ref).abs().max().item<double>(), 1e-12);
  // Residual check of the exact solve, independent of linalg_solve.
  const auto x = gk::exact_solve(H, q, lam);
  EXPECT_LT((torch::matmul(H, x.unsqueeze(-1)).squeeze(-1) + lam.unsqueeze(-1) * x - q).abs().max().item<double>(), 1e-12);
}

TEST(GkaSolve, BadShapesAndIterationsAreErrors) {
  namespace st = stablelearn::testing;
  const auto H = torch::eye(3, torch::kFloat64).expand({2, 3, 3});
  st::expect_error<sl::ShapeError>([&] { gk::chebyshev_solve(H, torch::zeros({2, 4}, torch::kFloat64), torch::ones({2}, torch::kFloat64), 5); },
                                   "expected q [..., D]");
  st::expect_error<sl::ShapeError>([&] { gk::chebyshev_solve(H, torch::zeros({2, 3}, torch::kFloat64), torch::ones({3}, torch::kFloat64), 5); },
                                   "expected lambda of shape");
  st::expect_error<sl::ConfigError>([&] { gk::chebyshev_solve(H, torch::zeros({2, 3}, torch::kFloat64), torch::ones({2}, torch::kFloat64), 0); },
                                    "model.iterations");
}

TEST(GkaSolve, UnderEmulatedHalfPrecisionChebyshevStaysAccurateWhereTheUnregularisedSolveDoesNot) {
  // 32 systems of T = 256 strongly correlated unit keys in D = 16 with γ = 0.99 (cond(H) ≈ 3·10³),
  // unit queries; errors relative to the float64 solution of the same system. Measured (seed 11):
  //                    Chebyshev 30   CG 30    CG 16    exact, λ = a‖H‖_F   unregularised exact
  //   float32          1.1e-4         5.9e-7   5.9e-7   5.5e-7              3.2e-5
  //   float16          3.3e-3         2.9      4.8e-3   2.2e-3              0.11
  //   bfloat16         3.1e-2         2.2e-2   2.2e-2   2.0e-2              46
  // The regularisation bounds the error near ε·κ with κ ≤ 51 for every regularised solver; without
  // it bfloat16 loses the solution; CG iterated past D steps in float16 diverges (its recurrences
  // underflow), the fixed-step Chebyshev recurrence does not.
  torch::manual_seed(11);
  const std::int64_t D = 16;
  const auto H = correlated_covariance(32, 256, D, 0.1, 0.99);
  const auto q = torch::nn::functional::normalize(torch::randn({32, D}, torch::kFloat64),
                                                  torch::nn::functional::NormalizeFuncOptions().dim(-1));
  const auto lam = gk::adaptive_ridge(H, 0.02);
  const auto ref = gk::exact_solve(H, q, lam);
  const auto ref0 = gk::exact_solve(H, q, torch::zeros_like(lam));
  EXPECT_GT(torch::linalg_cond(H).median().item<double>(), 1e3) << "the keys should make H ill-conditioned";
  const auto H32 = H.to(torch::kFloat32), q32 = q.to(torch::kFloat32), l32 = lam.to(torch::kFloat32), z32 = torch::zeros_like(l32);
  EXPECT_LT(rel_err(gk::chebyshev_solve(H32, q32, l32, 30), ref), 1e-3);
  for (const auto t : {torch::kHalf, torch::kBFloat16}) {
    const double cheb = rel_err(gk::chebyshev_solve(H32, q32, l32, 30, t), ref);
    const double unreg = rel_err(gk::exact_solve(H32, q32, z32, t), ref0);
    EXPECT_LT(cheb, 0.1) << t;
    EXPECT_GT(unreg, 10 * cheb) << t;
  }
  EXPECT_GT(rel_err(gk::exact_solve(H32, q32, z32, torch::kBFloat16), ref0), 1.0);
  EXPECT_GT(rel_err(gk::conjugate_gradient_solve(H32, q32, l32, 30, torch::kHalf), ref), 0.5);
  EXPECT_LT(rel_err(gk::conjugate_gradient_solve(H32, q32, l32, 30, torch::kBFloat16), ref), 0.1);
}

TEST(GkaSolve, AdaptiveRegularisationKeepsThirtyStepsAccurateAsTheCovarianceGrows) {
  // Fixed λ = 0.02: κ = 1 + ‖H‖_F/λ grows with ‖H‖ and 30 Chebyshev steps no longer converge;
  // λ = 0.02‖H‖_F keeps κ ≤ 51 at every scale.
  const auto H0 = correlated_covariance(8, 64, 8, 0.3, 0.99);
  const auto q = torch::randn({8, 8}, torch::kFloat64);
  for (const double scale : {1.0, 100.0}) {
    const auto H = scale * H0;
    const auto adaptive = gk::adaptive_ridge(H, 0.02), fixed = torch::full({8}, 0.02, torch::kFloat64);
    const double ea = rel_err(gk::chebyshev_solve(H, q, adaptive, 30), gk::exact_solve(H, q, adaptive));
    const double ef = rel_err(gk::chebyshev_solve(H, q, fixed, 30), gk::exact_solve(H, q, fixed));
    EXPECT_LT(ea, 1e-2) << scale;
    if (scale == 100.0) {
      EXPECT_GT(ef, 0.1);
    }
  }
}

namespace {

std::vector<torch::Tensor> random_gka_weights(const sm::GkaOptions& o) {
  std::vector<torch::Tensor> w;
  const auto layout = sm::gka_layout(o);
  for (const auto& e : layout.entries()) w.push_back((0.5 * torch::randn(e.shape, torch::kFloat64)).requires_grad_());
  return w;
}

}  // namespace

TEST(Gka, ChunkedLayerMatchesThePerTokenRecurrenceInValueAndGradient) {
  for (const std::string solver : {"exact", "chebyshev"}) {
    sm::GkaOptions o;
    o.d_model = 8;
    o.heads = 2;
    o.chunk = 3;  // 7 tokens: chunks of 3, 3, 1
    o.solver = solver;
    o.iterations = 300;
    auto w = random_gka_weights(o);
    const auto x = torch::randn({2, 7, 8}, torch::kFloat64).requires_grad_();
    const auto a = sm::functional::gka(x, w.data(), o), b = sm::functional::gka_reference(x, w.data(), o);
    ASSERT_EQ(a.sizes(), (std::vector<std::int64_t>{2, 7, 8}));
    EXPECT_LT((a - b).abs().max().item<double>(), 1e-9) << solver;
    std::vector<torch::Tensor> inputs = w;
    inputs.push_back(x);
    const auto r = torch::randn(a.sizes(), torch::kFloat64);
    const auto ga = torch::autograd::grad({(a * r).sum()}, inputs), gb = torch::autograd::grad({(b * r).sum()}, inputs);
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      EXPECT_LT((ga[i] - gb[i]).abs().max().item<double>(), 1e-8) << solver << " input " << i;
      EXPECT_GT(gb[i].abs().max().item<double>(), 1e-6) << solver << " input " << i;
    }
  }
}

TEST(Gka, ChangingALaterTokenLeavesEveryEarlierOutputUnchanged) {
  sm::GkaOptions o;
  o.d_model = 8;
  o.heads = 2;
  o.chunk = 4;
  const auto w = random_gka_weights(o);
  const auto x = torch::randn({1, 9, 8}, torch::kFloat64);
  auto x2 = x.clone();
  x2.index_put_({0, 6}, torch::randn({8}, torch::kFloat64));
  const auto a = sm::functional::gka(x, w.data(), o), b = sm::functional::gka(x2, w.data(), o);
  EXPECT_EQ((a.slice(1, 0, 6) - b.slice(1, 0, 6)).abs().max().item<double>(), 0.0);
  EXPECT_GT((a.slice(1, 6) - b.slice(1, 6)).abs().max().item<double>(), 1e-6);
}

TEST(Gka, BadOptionsAndInputsAreErrorsNamingTheKey) {
  namespace st = stablelearn::testing;
  sm::GkaOptions o;
  o.d_model = 8;
  o.heads = 3;
  st::expect_error<sl::ConfigError>([&] { sm::Gka g(o); }, "model.heads: must divide d_model = 8, got 3");
  o.heads = 2;
  o.solver = "lu";
  st::expect_error<sl::ConfigError>([&] { sm::Gka g(o); }, "model.solver");
  o.solver = "chebyshev";
  o.ridge = 0;
  st::expect_error<sl::ConfigError>([&] { sm::Gka g(o); }, "model.ridge");
  o.ridge = 0.02;
  sm::Gka g(o);
  st::expect_error<sl::ShapeError>([&] { g->forward(torch::zeros({2, 3, 6})); }, "d_model = 8");
}

TEST(Gka, OneLayerLearnsInContextLinearRegression) {
  // Each sequence: 16 tokens [k_i, v_i] with unit keys k_i ∈ R^4 and v_i = W k_i for a fresh random
  // W ∈ R^{4×4} per sequence, then 4 query tokens [q, 0]; the target at a query is W q. Ridge
  // regression over the context is what the layer computes, once its projections pick k and v.
  torch::manual_seed(4);
  const std::int64_t n = 16, m = 4, dk = 4;
  auto batch = [&](std::int64_t B) {
    const auto k = torch::nn::functional::normalize(torch::randn({B, n + m, dk}), torch::nn::functional::NormalizeFuncOptions().dim(-1));
    const auto W = torch::randn({B, dk, dk}) / std::sqrt(double(dk));
    const auto v = torch::matmul(k, W.transpose(1, 2));
    auto x = torch::cat({k, v}, -1);
    x.slice(1, n).slice(2, dk).zero_();
    return std::make_pair(x, v.slice(1, n));
  };
  sm::GkaOptions o;
  o.d_model = 2 * dk;
  o.heads = 1;
  sm::Gka layer(o);
  torch::optim::Adam opt(layer->parameters(), torch::optim::AdamOptions(3e-2));
  auto loss_of = [&](const std::pair<torch::Tensor, torch::Tensor>& b) {
    return (layer->forward(b.first).slice(1, n).slice(2, dk) - b.second).pow(2).sum(-1).mean();
  };
  const auto test = batch(256);
  const double zero_predictor = test.second.pow(2).sum(-1).mean().item<double>();
  double first = 0;
  {
    torch::NoGradGuard ng;
    first = loss_of(test).item<double>();
  }
  for (int step = 0; step < 160; ++step) {
    const auto loss = loss_of(batch(16));
    opt.zero_grad();
    loss.backward();
    opt.step();
  }
  torch::NoGradGuard ng;
  const double last = loss_of(test).item<double>();
  EXPECT_LT(last, 0.2 * zero_predictor) << "first " << first << ", zero predictor " << zero_predictor;
}
