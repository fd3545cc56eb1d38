// BO-REP and the stocBiO-style AID baseline on a quadratic bilevel problem whose lower level is a
// ridge regression with one regularisation weight per coordinate (x = log weights):
//   g(x, y) = ½‖A y − b‖²/n + ½ Σ_j e^{x_j} y_j²,   f(x, y) = ½‖C y − d‖² + c/2 ‖x‖².
// y*(x) = (AᵀA/n + diag e^x)⁻¹ Aᵀb/n is a linear solve, so Φ(x) = f(x, y*(x)) and its gradient by
// central finite differences are computed here without any of the code under test; the Hessian
// blocks are ∇²_yy g = AᵀA/n + diag e^x and ∇²_xy g v = e^x ⊙ y ⊙ v.
#include <cmath>
#include <filesystem>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "stablelearn/core/error.h"
#include "stablelearn/optim/bilevel.h"
#include "testing.h"

namespace so = stablelearn::optim;
namespace sl = stablelearn;

namespace {

torch::Tensor d(std::initializer_list<double> v) { return torch::tensor(std::vector<double>(v), torch::kFloat64); }

struct Quadratic {
  torch::Tensor A, b, C, dd;
  double c = 0.1;
  std::int64_t n = 8, k = 4;
  Quadratic() {
    auto gen = at::detail::createCPUGenerator(3);
    A = torch::randn({n, k}, gen, torch::kFloat64);
    b = torch::randn({n}, gen, torch::kFloat64);
    C = torch::randn({6, k}, gen, torch::kFloat64);
    dd = torch::randn({6}, gen, torch::kFloat64);
  }
  so::BilevelProblem problem() const {
    so::BilevelProblem p;
    p.lower = [this](const torch::Tensor& x, const torch::Tensor& y) {
      return 0.5 * (A.matmul(y) - b).pow(2).sum() / static_cast<double>(n) + 0.5 * (x.exp() * y.pow(2)).sum();
    };
    p.upper = [this](const torch::Tensor& x, const torch::Tensor& y) {
      return 0.5 * (C.matmul(y) - dd).pow(2).sum() + 0.5 * c * x.pow(2).sum();
    };
    return p;
  }
  torch::Tensor hessian(const torch::Tensor& x) const { return A.t().matmul(A) / static_cast<double>(n) + torch::diag(x.exp()); }
  torch::Tensor y_star(const torch::Tensor& x) const {
    return torch::linalg_solve(hessian(x), A.t().matmul(b) / static_cast<double>(n));
  }
  double phi(const torch::Tensor& x) const {
    const auto y = y_star(x);
    return 0.5 * (C.matmul(y) - dd).pow(2).sum().item<double>() + 0.5 * c * x.pow(2).sum().item<double>();
  }
  /// ∇Φ by central differences of Φ (step 1e-5).
  torch::Tensor fd_gradient(const torch::Tensor& x) const {
    auto g = torch::zeros_like(x);
    for (std::int64_t j = 0; j < x.numel(); ++j) {
      auto xp = x.clone(), xm = x.clone();
      xp[j] += 1e-5;
      xm[j] -= 1e-5;
      g[j] = (phi(xp) - phi(xm)) / 2e-5;
    }
    return g;
  }
};

}  // namespace

TEST(BilevelPrimitives, HessianVectorProductsAreTheClosedFormBlocks) {
  const Quadratic q;
  const auto x = d({0.1, -0.3, 0.5, 0.0}), y = d({1, -2, 0.5, 3}), v = d({0.2, 1, -1, 0.7});
  const auto [hyy, hxy] = so::lower_hvp(q.problem(), x, y, v);
  EXPECT_TRUE(torch::allclose(hyy, q.hessian(x).matmul(v), 1e-12, 1e-12));
  EXPECT_TRUE(torch::allclose(hxy, x.exp() * y * v, 1e-12, 1e-12));
  // ∇_y g and (∇_x f, ∇_y f) by hand.
  EXPECT_TRUE(torch::allclose(so::lower_gradient(q.problem(), x, y),
                              q.A.t().matmul(q.A.matmul(y) - q.b) / 8.0 + x.exp() * y, 1e-12, 1e-12));
  const auto [fx, fy] = so::upper_gradients(q.problem(), x, y);
  EXPECT_TRUE(torch::allclose(fx, 0.1 * x, 1e-12, 1e-15));
  EXPECT_TRUE(torch::allclose(fy, q.C.t().matmul(q.C.matmul(y) - q.dd), 1e-12, 1e-12));
}

TEST(BilevelPrimitives, AidHypergradientAtTheExactLowerSolutionIsTheFiniteDifferenceOfPhi) {
  const Quadratic q;
  const auto x = d({0.2, -0.5, 0.3, -1.0});
  const auto fd = q.fd_gradient(x);
  ASSERT_GT(fd.norm().item<double>(), 1e-2);  // a non-trivial gradient
  so::BilevelCounts counts;
  const auto cg = so::aid_hypergradient(q.problem(), x, q.y_star(x), so::HypergradSolver::CG, 4, 0, &counts);
  EXPECT_TRUE(torch::allclose(cg, fd, 1e-6, 1e-8)) << cg << fd;
  EXPECT_LE(counts.hvps, 5);  // at most 4 CG products + the mixed one
  EXPECT_EQ(counts.upper_gradients, 1);
  // The Neumann series converges to the same value when ν < 2/λ_max and enough terms are taken.
  const double lmax = torch::linalg_eigvalsh(q.hessian(x)).max().item<double>();
  const auto neu = so::aid_hypergradient(q.problem(), x, q.y_star(x), so::HypergradSolver::Neumann, 3000, 1 / lmax);
  EXPECT_TRUE(torch::allclose(neu, fd, 1e-5, 1e-7)) << neu << fd;
  // With one term, v = ν ∇_y f: ĝ = ∇_x f − ν e^x ⊙ y ⊙ ∇_y f.
  const auto y = q.y_star(x);
  const auto fy = q.C.t().matmul(q.C.matmul(y) - q.dd);
  const auto one = so::aid_hypergradient(q.problem(), x, y, so::HypergradSolver::Neumann, 1, 0.3);
  EXPECT_TRUE(torch::allclose(one, 0.1 * x - 0.3 * x.exp() * y * fy, 1e-12, 1e-12));
}

TEST(BilevelPrimitives, NormalisedMomentumStepMatchesHandValues) {
  auto x = d({1, 2});
  auto m = d({0, 0});
  so::normalized_momentum_step(x, m, d({3, 4}), 0.9, 0.5, 1e-10);
  // m = 0.1·(3, 4) = (0.3, 0.4), ‖m‖ = 0.5: x = (1, 2) − 0.5 (0.6, 0.8).
  EXPECT_TRUE(torch::allclose(m, d({0.3, 0.4}), 0, 1e-15));
  EXPECT_TRUE(torch::allclose(x, d({0.7, 1.6}), 0, 1e-9));
  so::normalized_momentum_step(x, m, d({0, -4}), 0.9, 0.5, 1e-10);
  // m = (0.27, 0.36 − 0.4) = (0.27, −0.04), ‖m‖ = 0.27294688…
  EXPECT_TRUE(torch::allclose(m, d({0.27, -0.04}), 0, 1e-15));
  EXPECT_NEAR(x[0].item<double>(), 0.20539826906427266, 1e-12);
  EXPECT_NEAR(x[1].item<double>(), 1.6732743305978857, 1e-12);
}

TEST(BoRep, FirstIterationIsTheAlgorithmWrittenOutByHand) {
  const Quadratic q;
  const auto x0 = d({0.2, -0.5, 0.3, -1.0}), y0 = d({0.5, 0.5, -0.5, 0.1});
  so::BoRepOptions o;
  o.lr = 0.1, o.beta = 0.8, o.lower_lr = 0.2, o.interval = 1, o.lower_steps = 2, o.init_steps = 1, o.z_lr = 0.3;
  so::BoRep opt(q.problem(), x0, y0, o);
  opt.step();
  // Refinement (1 step) + the periodic update (2 steps): three SGD steps on g(x0, ·).
  auto y = y0.clone();
  for (int k = 0; k < 3; ++k) y = y - 0.2 * (q.A.t().matmul(q.A.matmul(y) - q.b) / 8.0 + x0.exp() * y);
  const auto fy = q.C.t().matmul(q.C.matmul(y) - q.dd);
  const auto z = 0.3 * fy;  // z0 = 0: z = 0 − ν (H·0 − ∇_y f)
  const auto g = 0.1 * x0 - x0.exp() * y * z;
  const auto m = 0.2 * g;
  const auto x = x0 - 0.1 * m / (m.norm() + 1e-10);  // ε = 1e-10 as documented
  EXPECT_TRUE(torch::allclose(opt.y(), y, 1e-12, 1e-13));
  EXPECT_TRUE(torch::allclose(opt.z(), z, 1e-12, 1e-13));
  EXPECT_TRUE(torch::allclose(opt.hypergradient(), g, 1e-12, 1e-13));
  EXPECT_TRUE(torch::allclose(opt.x(), x, 1e-10, 1e-12));
  EXPECT_NEAR((opt.x() - x0).norm().item<double>(), 0.1, 1e-6);  // a step of length η (up to ε/‖m‖)
  EXPECT_EQ(opt.counts().lower_gradients, 3);
  EXPECT_EQ(opt.counts().hvps, 2);
  // Second iteration: z moves against the Hessian, y is refreshed again (interval 1).
  opt.step();
  auto y2 = y.clone();
  for (int k = 0; k < 2; ++k) y2 = y2 - 0.2 * (q.A.t().matmul(q.A.matmul(y2) - q.b) / 8.0 + x.exp() * y2);
  const auto fy2 = q.C.t().matmul(q.C.matmul(y2) - q.dd);
  const auto z2 = z - 0.3 * (q.hessian(x).matmul(z) - fy2);
  EXPECT_TRUE(torch::allclose(opt.z(), z2, 1e-9, 1e-11));
}

TEST(BoRep, PeriodicLowerUpdatesRunEveryIntervalIterations) {
  const Quadratic q;
  so::BoRepOptions o;
  o.interval = 3, o.lower_steps = 5, o.init_steps = 7;
  so::BoRep opt(q.problem(), torch::zeros({4}, torch::kFloat64), torch::zeros({4}, torch::kFloat64), o);
  for (int t = 0; t < 7; ++t) opt.step();
  // refinement 7 + updates at t = 0, 3, 6.
  EXPECT_EQ(opt.counts().lower_gradients, 7 + 3 * 5);
  EXPECT_EQ(opt.counts().hvps, 14);
  EXPECT_EQ(opt.iterations(), 7);
}

TEST(BoRep, BothMethodsDriveTheTrueHypergradientDownOnTheQuadratic) {
  const Quadratic q;
  const auto x0 = d({1.0, 1.0, 1.0, 1.0});
  const double g0 = q.fd_gradient(x0).norm().item<double>(), phi0 = q.phi(x0);
  so::BoRepOptions o;
  o.lr = 0.02, o.lower_lr = 0.3, o.z_lr = 0.3, o.interval = 1, o.lower_steps = 5, o.init_steps = 50;
  so::BoRep bo(q.problem(), x0, torch::zeros({4}, torch::kFloat64), o);
  for (int t = 0; t < 600; ++t) bo.step();
  so::StocBioOptions s;
  s.lr = 0.2, s.lower_lr = 0.3, s.lower_steps = 5, s.solver_steps = 20, s.neumann_eta = 0.3;
  so::StocBio sb(q.problem(), x0, torch::zeros({4}, torch::kFloat64), s);
  for (int t = 0; t < 300; ++t) sb.step();
  for (const auto& [name, x] : {std::pair<const char*, torch::Tensor>{"bo-rep", bo.x()}, {"stocbio", sb.x()}}) {
    EXPECT_LT(q.phi(x), phi0) << name;
    EXPECT_LT(q.fd_gradient(x).norm().item<double>(), 0.05 * g0) << name << " " << q.fd_gradient(x);
  }
  EXPECT_EQ(sb.counts().hvps, 300 * sb.hvps_per_step());
}

TEST(BoRep, StateSurvivesSaveAndLoadAndContinuesIdentically) {
  const Quadratic q;
  so::BoRepOptions o;
  o.interval = 2;
  const auto x0 = d({0.2, -0.5, 0.3, -1.0});
  so::BoRep a(q.problem(), x0, torch::zeros({4}, torch::kFloat64), o);
  for (int t = 0; t < 3; ++t) a.step();
  const auto file = (std::filesystem::temp_directory_path() / "sl_bo_rep_state.pt").string();
  {
    torch::serialize::OutputArchive ar;
    a.save(ar);
    ar.save_to(file);
  }
  so::BoRep b(q.problem(), torch::zeros({4}, torch::kFloat64), torch::zeros({4}, torch::kFloat64), o);
  {
    torch::serialize::InputArchive ar;
    ar.load_from(file);
    b.load(ar);
  }
  std::filesystem::remove(file);
  a.step();
  b.step();
  EXPECT_TRUE(torch::equal(a.x(), b.x()));
  EXPECT_TRUE(torch::equal(a.z(), b.z()));
  EXPECT_EQ(b.iterations(), 4);
  EXPECT_EQ(a.counts().hvps, b.counts().hvps);
}

TEST(BilevelOptions, InvalidValuesAreConfigErrorsNamingTheKey) {
  const Quadratic q;
  const auto z = torch::zeros({4}, torch::kFloat64);
  auto bad = [&](auto edit, const std::string& part) {
    so::BoRepOptions o;
    edit(o);
    sl::testing::expect_error<sl::ConfigError>([&] { so::BoRep(q.problem(), z, z, o); }, part);
  };
  bad([](so::BoRepOptions& o) { o.lr = -1; }, "bo_rep.lr = -1");
  bad([](so::BoRepOptions& o) { o.lr = std::nan(""); }, "bo_rep.lr");
  bad([](so::BoRepOptions& o) { o.beta = 1; }, "bo_rep.beta = 1 (want [0, 1))");
  bad([](so::BoRepOptions& o) { o.lower_lr = 0; }, "bo_rep.lower_lr");
  bad([](so::BoRepOptions& o) { o.interval = 0; }, "bo_rep.interval = 0");
  bad([](so::BoRepOptions& o) { o.lower_steps = 0; }, "bo_rep.lower_steps");
  bad([](so::BoRepOptions& o) { o.init_steps = -2; }, "bo_rep.init_steps");
  bad([](so::BoRepOptions& o) { o.z_lr = -0.1; }, "bo_rep.z_lr");
  bad([](so::BoRepOptions& o) { o.z_radius = -1; }, "bo_rep.z_radius");
  bad([](so::BoRepOptions& o) { o.eps = -1; }, "bo_rep.eps");
  auto bad_s = [&](auto edit, const std::string& part) {
    so::StocBioOptions o;
    edit(o);
    sl::testing::expect_error<sl::ConfigError>([&] { so::StocBio(q.problem(), z, z, o); }, part);
  };
  bad_s([](so::StocBioOptions& o) { o.lr = 0; }, "stocbio.lr");
  bad_s([](so::StocBioOptions& o) { o.solver_steps = 0; }, "stocbio.solver_steps");
  bad_s([](so::StocBioOptions& o) { o.neumann_eta = -1; }, "stocbio.neumann_eta");
  bad_s([](so::StocBioOptions& o) { o.lower_steps = 0; }, "stocbio.lower_steps");
  sl::testing::expect_error<sl::ConfigError>([] { so::parse_hypergrad_solver("lbfgs", "bo_rep.solver"); },
                                             "bo_rep.solver = 'lbfgs' (want 'neumann' or 'cg')");
  sl::testing::expect_error<sl::ConfigError>([&] { so::BoRep(so::BilevelProblem{}, z, z); }, "upper and a lower");
  sl::testing::expect_error<sl::DataError>([&] { so::BoRep(q.problem(), d({0, std::nan(""), 0, 0}), z); }, "NaN");
  sl::testing::expect_error<sl::ShapeError>([&] { so::lower_hvp(q.problem(), z, z, torch::zeros({3}, torch::kFloat64)); },
                                            "want y's shape");
  // A non-finite objective stops the methods with a DataError instead of spreading NaN into x.
  auto nan_problem = q.problem();
  nan_problem.upper = [](const torch::Tensor& x, const torch::Tensor& y) { return (y.sum() + x.sum()) * std::nan(""); };
  so::BoRep bo(nan_problem, z, z);
  sl::testing::expect_error<sl::DataError>([&] { bo.step(); }, "NaN or an infinity");
  so::StocBio sb(nan_problem, z, z);
  sl::testing::expect_error<sl::DataError>([&] { sb.step(); }, "stocbio: the hypergradient holds a NaN");
  sl::testing::expect_error<sl::ShapeError>(
      [&] { so::upper_gradients(so::BilevelProblem{[](const torch::Tensor& x, const torch::Tensor&) { return x; }, {}}, z, z); },
      "must return a scalar");
}
