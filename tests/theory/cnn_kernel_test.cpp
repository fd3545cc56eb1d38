// Hierarchical CNN kernels and ridgeless regression (theory/cnn_kernel.h) against independent values:
// * one layer (filters = (d)): the arc-cosine kernel of a two-layer ReLU network in closed form
//   (NNGP k₁(u) = (√(1 − u²) + (π − arccos u) u)/π, NTK k₁(u) + k₀(u) u; u = 0: 1/π and 1/π;
//   u = 1: 1 and 2; a general-norm pair scales by √(|x|²|y|²)/d);
// * a two-level tree by hand (filters (2, 2), patch correlations 1 and 0);
// * a Monte Carlo of wide random CNNs (H = 1024 channels, weights shared across positions): the
//   read-out layer's empirical kernel (→ NNGP) and the autograd NTK ∇f(x)·∇f(y) (→ NTK);
// * the fully connected case (d, 1, 1) against the nested arc-cosine composition;
// * ridgeless regression interpolates; the nested learning curve against separate solves; the power-
//   law fit on an exact power law; a GP sample's covariance; bad input.
#include <cmath>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "stablelearn/core/config.h"
#include "stablelearn/core/error.h"
#include "stablelearn/theory/cnn_kernel.h"
#include "testing.h"

namespace sl = stablelearn;
namespace th = stablelearn::theory;

namespace {

const auto kF64 = torch::TensorOptions().dtype(torch::kFloat64);

double k1(double u) { return (std::sqrt(1 - u * u) + (M_PI - std::acos(u)) * u) / M_PI; }
double k0(double u) { return (M_PI - std::acos(u)) / M_PI; }

th::HierarchicalKernelOptions tree(std::vector<std::int64_t> filters, std::int64_t d) {
  th::HierarchicalKernelOptions o;
  o.filters = std::move(filters);
  o.inputs = d;
  return o;
}

// A random CNN with non-overlapping filters (the header's network), its output and the read-out
// layer's activations: weights[0] [H, s_1], weights[l] [H, H, s_l], weights.back() = a [H].
struct WideCnn {
  std::vector<torch::Tensor> w;
  std::vector<std::int64_t> filters;
  std::int64_t h;
  WideCnn(const std::vector<std::int64_t>& f, std::int64_t width, at::Generator& gen) : filters(f), h(width) {
    w.push_back(torch::randn({h, f[0]}, gen, kF64));
    for (std::size_t l = 1; l < f.size(); ++l) w.push_back(torch::randn({h, h, f[l]}, gen, kF64));
    w.push_back(torch::randn({h}, gen, kF64));
    for (auto& t : w) t.requires_grad_(true);
  }
  // σ(h^L_top) [B, H] for inputs [B, d].
  torch::Tensor top(const torch::Tensor& x) const {
    const auto b = x.size(0), s1 = filters[0];
    auto z = torch::matmul(x.reshape({b, -1, s1}), w[0].t()) / std::sqrt(static_cast<double>(s1));  // [B, P, H]
    auto a = std::sqrt(2.0) * torch::relu(z);
    for (std::size_t l = 1; l < filters.size(); ++l) {
      const auto s = filters[l];
      const auto groups = a.reshape({b, -1, s, h});  // [B, P', s, H]
      z = torch::einsum("bpkc,hck->bph", {groups, w[l]}) / std::sqrt(static_cast<double>(s * h));
      a = std::sqrt(2.0) * torch::relu(z);
    }
    return a.squeeze(1);
  }
  torch::Tensor output(const torch::Tensor& x) const { return top(x).mv(w.back()) / std::sqrt(static_cast<double>(h)); }
};

}  // namespace

TEST(CnnKernel, OneLayerIsTheArcCosineKernel) {
  const auto o = tree({4}, 4);
  // Unit-norm patches (|x|² = d = 4): x·y/4 = u.
  const auto x = torch::tensor({{2.0, 0.0, 0.0, 0.0}, {0.0, 2.0, 0.0, 0.0}, {1.0, 1.0, 1.0, 1.0}}, kF64);
  const auto k = th::hierarchical_kernels(x, x, o);
  EXPECT_NEAR(k.nngp[0][1].item<double>(), 1 / M_PI, 1e-14);  // u = 0
  EXPECT_NEAR(k.ntk[0][1].item<double>(), 1 / M_PI, 1e-14);
  EXPECT_NEAR(k.nngp[0][0].item<double>(), 1.0, 1e-12);  // u = 1
  EXPECT_NEAR(k.ntk[0][0].item<double>(), 2.0, 1e-12);
  EXPECT_NEAR(k.nngp[0][2].item<double>(), k1(0.5), 1e-14);  // u = 2/4 = 0.5
  EXPECT_NEAR(k.ntk[0][2].item<double>(), k1(0.5) + k0(0.5) * 0.5, 1e-14);
  // General norms: |x|² = 16, |y|² = 4 (per d: 4 and 1), cos = 0.5 → NNGP 2 k₁(0.5), NTK 2 k₁(0.5) + k₀(0.5) · 1.
  const auto a = torch::tensor({{4.0, 0.0, 0.0, 0.0}}, kF64), b = torch::tensor({{1.0, std::sqrt(3.0), 0.0, 0.0}}, kF64);
  const auto g = th::hierarchical_kernels(a, b, o);
  EXPECT_NEAR(g.nngp[0][0].item<double>(), 2 * k1(0.5), 1e-14);
  EXPECT_NEAR(g.ntk[0][0].item<double>(), 2 * k1(0.5) + k0(0.5) * 1.0, 1e-14);
}

TEST(CnnKernel, TwoLevelTreeByHand) {
  // d = 4, filters (2, 2): patch 1 identical (u₁ = 1), patch 2 orthogonal (u₂ = 0).
  //   Σ² = (k₁(1) + k₁(0))/2 = (1 + 1/π)/2,  Θ² = Σ² + (k₀(1)·1 + k₀(0)·0)/2 = Σ² + 1/2,
  //   NNGP = k₁(Σ²), NTK = k₁(Σ²) + k₀(Σ²) Θ².
  const auto x = torch::tensor({{1.0, 1.0, std::sqrt(2.0), 0.0}}, kF64), y = torch::tensor({{1.0, 1.0, 0.0, std::sqrt(2.0)}}, kF64);
  const auto k = th::hierarchical_kernels(x, y, tree({2, 2}, 4));
  const double s2 = (1 + 1 / M_PI) / 2, t2 = s2 + 0.5;
  EXPECT_NEAR(k.nngp[0][0].item<double>(), k1(s2), 1e-14);
  EXPECT_NEAR(k.ntk[0][0].item<double>(), k1(s2) + k0(s2) * t2, 1e-14);
  // Symmetric, positive semi-definite on random inputs; the diagonal is 1 (NNGP) for unit patches.
  auto gen = at::detail::createCPUGenerator(3);
  const auto o = tree({2, 2, 2}, 8);
  const auto z = th::sample_patch_spheres(50, o, gen);
  const auto kk = th::hierarchical_kernels(z, z, o);
  EXPECT_LT((kk.ntk - kk.ntk.t()).abs().max().item<double>(), 1e-13);
  EXPECT_GT(torch::linalg_eigvalsh(kk.ntk).min().item<double>(), -1e-10);
  EXPECT_LT((kk.nngp.diagonal() - 1).abs().max().item<double>(), 1e-12);
  // Θ = L + 1 on the diagonal; k₀ = 1 − θ/π with θ = arccos(1 − O(ε)) = O(√ε): 1e-7, not 1e-12.
  EXPECT_LT((kk.ntk.diagonal() - 4).abs().max().item<double>(), 1e-7);
}

TEST(CnnKernel, FullyConnectedCaseIsTheNestedArcCosineComposition) {
  const auto o = th::HierarchicalKernelOptions::fully_connected(6, 3);  // filters (6, 1, 1)
  EXPECT_EQ(o.filters, (std::vector<std::int64_t>{6, 1, 1}));
  auto gen = at::detail::createCPUGenerator(4);
  auto x = torch::randn({2, 6}, gen, kF64);
  x = x / x.norm(2, {1}, true) * std::sqrt(6.0);
  const double u = (x[0] * x[1]).sum().item<double>() / 6;
  const auto k = th::hierarchical_kernels(x.slice(0, 0, 1), x.slice(0, 1, 2), o);
  // Σ¹ = u, Σ² = k₁(u), Σ³ = k₁(Σ²); Θ¹ = u, Θ² = Σ² + k₀(u) u, Θ³ = Σ³ + k₀(Σ²) Θ².
  const double s2 = k1(u), s3 = k1(s2), t2 = s2 + k0(u) * u, t3 = s3 + k0(s2) * t2;
  EXPECT_NEAR(k.nngp[0][0].item<double>(), k1(s3), 1e-13);
  EXPECT_NEAR(k.ntk[0][0].item<double>(), k1(s3) + k0(s3) * t3, 1e-13);
  EXPECT_EQ(th::HierarchicalKernelOptions::uniform(3, 2).inputs, 9);
}

TEST(CnnKernel, KernelsMatchAMonteCarloOfWideRandomCnns) {
  const std::vector<std::int64_t> filters = {2, 2, 2};
  const auto o = tree(filters, 8);
  auto gen = at::detail::createCPUGenerator(5);
  const auto x = th::sample_patch_spheres(3, o, gen) * torch::tensor({1.0, 0.7, 1.3}, kF64).unsqueeze(1);  // also other norms
  const auto k = th::hierarchical_kernels(x, x, o);
  const std::int64_t h = 1024, nets = 8;
  auto nngp = torch::zeros({3, 3}, kF64), ntk = torch::zeros({3, 3}, kF64);
  for (int r = 0; r < nets; ++r) {
    WideCnn net(filters, h, gen);
    {
      torch::NoGradGuard ng;
      const auto a = net.top(x);
      nngp += a.mm(a.t()) / static_cast<double>(h) / nets;
    }
    std::vector<torch::Tensor> grads;
    for (int i = 0; i < 3; ++i) {
      const auto g = torch::autograd::grad({net.output(x.slice(0, i, i + 1)).sum()}, net.w);
      std::vector<torch::Tensor> flat;
      for (const auto& t : g) flat.push_back(t.reshape({-1}));
      grads.push_back(torch::cat(flat));
    }
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 3; ++j) ntk[i][j] += grads[static_cast<std::size_t>(i)].dot(grads[static_cast<std::size_t>(j)]) / nets;
  }
  // A net's overall gain fluctuates by O(√(L/H)) (the mean of H squared √2-ReLU activations has a
  // relative s.d. of √(5/H) ≈ 7 % per layer), common to all inputs: the diagonals (the kernels' scale)
  // are compared within 15 % (about 3 s.d. of the mean of 8 nets), the correlations
  // K(x, y)/√(K(x, x) K(y, y)), where the gain cancels, within 0.03.
  const auto corr = [](const torch::Tensor& k, int i, int j) {
    return k[i][j].item<double>() / std::sqrt(k[i][i].item<double>() * k[j][j].item<double>());
  };
  for (int i = 0; i < 3; ++i) {
    EXPECT_NEAR(nngp[i][i].item<double>() / k.nngp[i][i].item<double>(), 1.0, 0.15) << i;
    EXPECT_NEAR(ntk[i][i].item<double>() / k.ntk[i][i].item<double>(), 1.0, 0.15) << i;
    for (int j = 0; j < i; ++j) {
      EXPECT_NEAR(corr(nngp, i, j), corr(k.nngp, i, j), 0.03) << i << j;
      EXPECT_NEAR(corr(ntk, i, j), corr(k.ntk, i, j), 0.03) << i << j;
    }
  }
  // The inputs are not trivially correlated: the kernels' correlations lie well inside (0, 1).
  EXPECT_LT(corr(k.nngp, 1, 0), 0.95);
}

TEST(CnnKernel, RidgelessRegressionInterpolatesAndTheNestedCurveMatchesSeparateSolves) {
  const auto o = tree({2, 2, 2}, 8);
  auto gen = at::detail::createCPUGenerator(6);
  const auto x = th::sample_patch_spheres(60, o, gen), xt = th::sample_patch_spheres(20, o, gen);
  const auto y = torch::randn({60}, gen, kF64), yt = torch::randn({20}, gen, kF64);
  const auto k = th::hierarchical_kernels(x, x, o).ntk, kt = th::hierarchical_kernels(xt, x, o).ntk;
  EXPECT_LT((th::kernel_regression(k, y, k) - y).abs().max().item<double>(), 1e-8);
  const std::vector<std::int64_t> sizes = {10, 30, 60};
  const auto curve = th::nested_learning_curve(k, y, kt, yt, sizes);
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    const auto n = sizes[i];
    const auto kn = k.slice(0, 0, n).slice(1, 0, n);
    const auto pred = kt.slice(1, 0, n).mv(torch::linalg_solve(kn, y.slice(0, 0, n)));
    EXPECT_NEAR(curve[i], (pred - yt).pow(2).mean().item<double>(), 1e-8) << n;
  }
  // With a ridge the fit no longer interpolates.
  EXPECT_GT((th::kernel_regression(k, y, k, 1.0) - y).abs().max().item<double>(), 1e-3);
}

TEST(CnnKernel, PowerLawFitAndGaussianProcessSamples) {
  std::vector<double> n, e;
  for (int i = 4; i <= 12; ++i) {
    n.push_back(std::pow(2.0, i));
    e.push_back(3.0 * std::pow(n.back(), -0.7));
  }
  const auto fit = th::fit_power_law(n, e);
  EXPECT_NEAR(fit.exponent, 0.7, 1e-12);
  EXPECT_NEAR(fit.prefactor, 3.0, 1e-10);
  // The empirical covariance of 20000 samples of a 3-point GP (with noise 0.5) against k + 0.25 I.
  const auto k = torch::tensor({{1.0, 0.5, 0.2}, {0.5, 1.0, 0.3}, {0.2, 0.3, 1.0}}, kF64);
  auto gen = at::detail::createCPUGenerator(7);
  std::vector<torch::Tensor> s;
  for (int i = 0; i < 20000; ++i) s.push_back(th::sample_gaussian_process(k, 0.5, gen));
  const auto f = torch::stack(s);
  const auto cov = f.t().mm(f) / 20000.0;
  EXPECT_LT((cov - k - 0.25 * torch::eye(3, kF64)).abs().max().item<double>(), 0.05);  // s.e. ≈ 1.25·√2/√20000 ≈ 0.0125
}

TEST(CnnKernel, BadInputIsAConfigErrorNamingTheKey) {
  using sl::ConfigError;
  auto gen = at::detail::createCPUGenerator(1);
  const auto x = torch::zeros({2, 8}, kF64);
  sl::testing::expect_error<ConfigError>([&] { th::hierarchical_kernels(x, x, tree({2, 3}, 8)); }, "filters");
  sl::testing::expect_error<ConfigError>([&] { th::hierarchical_kernels(x, x, tree({}, 8)); }, "filters");
  sl::testing::expect_error<ConfigError>([&] { th::hierarchical_kernels(x, x, tree({8, 0}, 8)); }, "filters");
  sl::testing::expect_error<ConfigError>([&] { th::sample_patch_spheres(4, tree({3, 3}, 8), gen); }, "do not tile");
  sl::testing::expect_error<ConfigError>([&] { th::sample_gaussian_process(torch::eye(2, kF64), -0.1, gen); }, "noise");
  sl::testing::expect_error<ConfigError>([&] { th::kernel_regression(torch::eye(2, kF64), torch::ones({2}, kF64), torch::eye(2, kF64), -1); },
                                         "ridge");
  sl::testing::expect_error<ConfigError>([] { th::fit_power_law({1.0, 2.0}, {1.0, 0.0}); }, "positive");
  sl::testing::expect_error<sl::ShapeError>([&] { th::hierarchical_kernels(torch::zeros({2, 6}, kF64), x, tree({2, 2, 2}, 8)); },
                                            "length d = 8");
}

TEST(CnnKernel, OptionsReadFromTomlRoundTripAndRejectFiltersThatDoNotTile) {
  auto cfg = sl::Config::from_string("[kernel]\nfilters = [3, 3]\ninputs = 9\n");
  auto s = cfg.section("kernel");
  const auto o = sl::options::read<th::HierarchicalKernelOptions>(s);
  s.finish();
  EXPECT_EQ(o.filters, (std::vector<std::int64_t>{3, 3}));
  EXPECT_EQ(o.inputs, 9);
  sl::ConfigWriter w;
  sl::options::write(w, o, "kernel");
  auto back_cfg = w.config();
  auto back_s = back_cfg.section("kernel");
  const auto back = sl::options::read<th::HierarchicalKernelOptions>(back_s);
  back_s.finish();
  EXPECT_EQ(back.filters, o.filters);
  EXPECT_EQ(back.inputs, 9);
  auto bad = sl::Config::from_string("[kernel]\nfilters = [2, 2]\ninputs = 9\n");
  sl::testing::expect_error<sl::ConfigError>([&] { auto b = bad.section("kernel"); sl::options::read<th::HierarchicalKernelOptions>(b); },
                                             "filters: the filter sizes 2 x 2 = 4 do not tile the input dimension d = 9");
}
