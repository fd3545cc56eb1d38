// Stable-SPAM and SPAM: each mechanism against values worked out by hand, a step of each optimiser
// against the scalar recursion written out here, a learning test with injected gradient spikes, and
// the optimiser state surviving torch::save / torch::load.
#include <cmath>
#include <filesystem>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "stablelearn/core/error.h"
#include "stablelearn/optim/spam.h"

namespace so = stablelearn::optim;

namespace {
torch::Tensor d(std::initializer_list<double> v) { return torch::tensor(std::vector<double>(v), torch::kFloat64); }
}  // namespace

TEST(StableSpamMechanisms, AdaClipLeavesOrdinaryGradientsAndScalesASpikeToTheRunningMax) {
  double m_max = 0;
  auto g = d({1, -10, 2});
  so::ada_clip_(g, m_max, 1, 0.999);
  // m_max = 0.001 * 10; bias-corrected 10: nothing exceeds it.
  EXPECT_NEAR(m_max, 0.01, 1e-15);
  EXPECT_TRUE(torch::equal(g, d({1, -10, 2})));
  auto spike = d({1, -100, 2});
  so::ada_clip_(spike, m_max, 2, 0.999);
  const double m2 = 0.999 * 0.01 + 0.001 * 100;  // 0.10999
  const double hat = m2 / (1 - 0.999 * 0.999);   // 55.0225...
  EXPECT_NEAR(m_max, m2, 1e-15);
  EXPECT_NEAR(spike[0].item<double>(), 1, 0);
  EXPECT_NEAR(spike[1].item<double>(), -hat, 1e-12);  // sign kept, the largest becomes exactly m̂_max
  EXPECT_NEAR(spike[2].item<double>(), 2, 0);
}

TEST(StableSpamMechanisms, AdaGnNormalisesBySmoothedNormsAndDampsASpike) {
  double m = 0, v = 0;
  const auto g1 = so::ada_gn(d({3, 4}), m, v, 1, 0.7, 0.9, 1e-8);
  // m = 0.3*5 = 1.5, v = 0.1*25 = 2.5; bias-corrected 5 and 25: c = 5 / (5 + 1e-8).
  EXPECT_NEAR(m, 1.5, 1e-15);
  EXPECT_NEAR(v, 2.5, 1e-15);
  const double c1 = 5 / (5 + 1e-8);
  EXPECT_NEAR(g1[0].item<double>(), 0.6 * c1, 1e-15);
  EXPECT_NEAR(g1[1].item<double>(), 0.8 * c1, 1e-15);
  // A spike of norm 50: m = 0.7*1.5 + 0.3*50 = 16.05, v = 0.9*2.5 + 0.1*2500 = 252.25.
  const auto g2 = so::ada_gn(d({30, 40}), m, v, 2, 0.7, 0.9, 1e-8);
  const double c2 = (16.05 / 0.51) / (std::sqrt(252.25 / 0.19) + 1e-8);  // 0.8637...
  EXPECT_NEAR(m, 16.05, 1e-12);
  EXPECT_NEAR(v, 252.25, 1e-12);
  EXPECT_NEAR(g2[0].item<double>(), 0.6 * c2, 1e-12);
  EXPECT_NEAR(g2[1].item<double>(), 0.8 * c2, 1e-12);
  EXPECT_LT(g2.norm().item<double>(), 1.0);  // the 10x spike leaves with a norm below 1
  // A zero gradient stays zero (no division by its norm).
  EXPECT_TRUE(torch::equal(so::ada_gn(d({0, 0}), m, v, 3, 0.7, 0.9, 1e-8), d({0, 0})));
}

TEST(StableSpamMechanisms, SpamClipsOnlyWhereTheSquareExceedsThresholdTimesV) {
  auto g = d({1, 100, -100, 3});
  so::spam_clip_(g, d({1, 1, 1, 0}), 2000);
  EXPECT_EQ(g[0].item<double>(), 1);
  EXPECT_NEAR(g[1].item<double>(), std::sqrt(2000.0), 1e-12);
  EXPECT_NEAR(g[2].item<double>(), -std::sqrt(2000.0), 1e-12);
  EXPECT_EQ(g[3].item<double>(), 0);  // v = 0: clipped to 0 (the reference's rule)
}

TEST(StableSpamMechanisms, CosineFactorRunsFromOneTowardsEtaMin) {
  EXPECT_NEAR(so::stable_spam_cosine(0, 10, 0.5), 1.0, 1e-15);
  EXPECT_NEAR(so::stable_spam_cosine(11, 10, 0.5), 0.5, 1e-15);
  EXPECT_NEAR(so::stable_spam_cosine(5, 9, 0.5), 0.75, 1e-15);  // half way: cos(pi/2) = 0
}

TEST(StableSpam, OneStepOnAScalarFollowsTheRecursion) {
  auto p = d({1.0}).requires_grad_();
  so::StableSpam opt({p}, so::StableSpamOptions(0.1).weight_decay(0.5));
  p.mutable_grad() = d({2.0});
  opt.step();
  // AdaClip: m̂_max = 2, nothing clipped. AdaGN: m̂ = 2, v̂ = 4, g̃ = c = 2 / (2 + 1e-8).
  // Decay first: p = 1 * (1 - 0.05) = 0.95. Adam: m = 0.1 c, v = 0.001 c², bc1 = 0.1, bc2 = 0.001.
  const double c = 2 / (2 + 1e-8);
  const double want = 0.95 - (0.1 / 0.1) * (0.1 * c) / (std::sqrt(0.001 * c * c) / std::sqrt(0.001) + 1e-8);
  EXPECT_NEAR(p.item<double>(), want, 1e-14);
}

TEST(StableSpam, MoRetZeroesTheMomentsAndRestartsBiasCorrection) {
  auto p = d({0.0, 0.0}).requires_grad_();
  const double lr = 0.01, eps = 1e-8;
  so::StableSpam opt({p}, so::StableSpamOptions(lr).update_proj_gap(3));
  for (int k = 1; k <= 3; ++k) {
    const auto before = p.detach().clone();
    p.mutable_grad() = d({1.0 * k, -2.0 * k});
    opt.step();
    const auto& s = static_cast<so::StableSpamParamState&>(*opt.state().begin()->second);
    if (k < 3) {
      EXPECT_EQ(s.step(), k);
      continue;
    }
    // After the reset m and v hold only this step's processed gradient g̃ (m = 0.1 g̃, v = 0.001 g̃²),
    // the step counter is 1 again, and the update is lr * g̃ / (|g̃| + eps): a sign step.
    EXPECT_EQ(s.step(), 1);
    const auto gt = s.exp_avg() / 0.1;
    EXPECT_TRUE(torch::allclose(s.exp_avg_sq(), 0.001 * gt * gt, 1e-12, 0));
    const auto step = before - p.detach();
    EXPECT_TRUE(torch::allclose(step, lr * gt / (gt.abs() + eps), 1e-12, 0)) << step;
    EXPECT_GT(step[0].item<double>(), 0.0099);
    EXPECT_LT(step[1].item<double>(), -0.0099);
  }
  EXPECT_EQ(opt.steps(), 3);
}

TEST(Spam, ResetAndCosineWarmupScaleTheUpdate) {
  auto p = d({0.0}).requires_grad_();
  const double lr = 0.1, b1 = 0.9, b2 = 0.999, eps = 1e-6;
  so::Spam opt({p}, so::SpamOptions(lr).threshold(0).update_proj_gap(4).warmup_steps(3));
  double m = 0, v = 0, x = 0;
  const double pi = 3.14159265358979323846;
  for (int k = 1; k <= 9; ++k) {
    const double g = 0.5 + 0.1 * k;
    p.mutable_grad() = d({g});
    opt.step();
    if (k % 4 == 0) m = v = 0;  // reset at steps 4 and 8 (the step counter goes on)
    m = b1 * m + (1 - b1) * g;
    v = b2 * v + (1 - b2) * g * g;
    const int j = k >= 8 ? k - 8 : k >= 4 ? k - 4 : -1;  // steps since the last reset
    const double factor = j >= 0 && j < 3 ? 1 - 0.99 * (1 + std::cos(pi * j / 4.0)) / 2 : 1.0;
    x -= lr * std::sqrt(1 - std::pow(b2, k)) / (1 - std::pow(b1, k)) * factor * m / (std::sqrt(v) + eps);
    EXPECT_NEAR(p.item<double>(), x, 1e-13) << "step " << k;
  }
}

TEST(Spam, ClipsASpikeOnlyAfterTheAccumulationSteps) {
  auto p = d({0.0}).requires_grad_();
  so::Spam opt({p}, so::SpamOptions(0.1).threshold(100).grad_accu_steps(3));
  for (int k = 1; k <= 2; ++k) {
    p.mutable_grad() = d({1.0});
    opt.step();
  }
  const auto& s = static_cast<so::SpamParamState&>(*opt.state().begin()->second);
  const double v2 = s.exp_avg_sq().item<double>();  // before step 3
  p.mutable_grad() = d({1000.0});
  opt.step();
  // Step 3 clips 1000 to sqrt(100 v2): v3 = 0.999 v2 + 0.001 * 100 v2.
  EXPECT_NEAR(s.exp_avg_sq().item<double>(), 0.999 * v2 + 0.001 * 100 * v2, 1e-15);
}

namespace {
// Least squares with a gradient spike (x1000) every 25 steps; returns the final loss.
template <typename MakeOpt>
double spiky_regression(MakeOpt make) {
  torch::manual_seed(0);
  const auto X = torch::randn({64, 8}, torch::kFloat64);
  const auto w_true = torch::randn({8, 1}, torch::kFloat64);
  const auto y = X.mm(w_true);
  auto w = torch::zeros({8, 1}, torch::kFloat64).requires_grad_();
  auto opt = make(w);
  for (int k = 1; k <= 400; ++k) {
    opt.zero_grad();
    auto loss = (X.mm(w) - y).pow(2).mean();
    loss.backward();
    if (k % 25 == 0) w.mutable_grad().mul_(1000);
    opt.step();
  }
  torch::NoGradGuard ng;
  return (X.mm(w) - y).pow(2).mean().item<double>();
}
}  // namespace

TEST(StableSpam, LearnsThroughGradientSpikesWhereAdamStalls) {
  torch::manual_seed(0);
  const auto X = torch::randn({64, 8}, torch::kFloat64);
  const double initial = X.mm(torch::randn({8, 1}, torch::kFloat64)).pow(2).mean().item<double>();
  const double adam = spiky_regression([](torch::Tensor w) { return torch::optim::Adam({w}, torch::optim::AdamOptions(0.05)); });
  const double stable = spiky_regression([](torch::Tensor w) { return so::StableSpam({w}, so::StableSpamOptions(0.05)); });
  const double spam = spiky_regression([](torch::Tensor w) { return so::Spam({w}, so::SpamOptions(0.05)); });
  EXPECT_LT(stable, 0.01 * initial);
  EXPECT_LT(spam, 0.1 * initial);  // SPAM's clip (θ = 2000) still lets a 1000x spike through at ~45x
  EXPECT_LT(stable, 0.5 * adam) << "Stable-SPAM " << stable << ", Adam " << adam;
  RecordProperty("final_loss_adam_stable_spam_spam", std::to_string(adam) + " " + std::to_string(stable) + " " + std::to_string(spam) + " initial " + std::to_string(initial));
}

TEST(StableSpam, StateSurvivesSaveAndLoad) {
  const auto dir = std::filesystem::temp_directory_path() / "sl_optim_test";
  std::filesystem::create_directories(dir);
  const auto file = (dir / "stable_spam.pt").string();
  auto run = [](torch::Tensor p, torch::optim::Optimizer& opt, int from, int to) {
    for (int k = from; k < to; ++k) {
      p.mutable_grad() = torch::sin(p.detach() * (k + 1)) + (k == 4 ? 50.0 : 0.0);
      opt.step();
    }
  };
  auto a = d({0.3, -0.2, 0.1}).requires_grad_();
  so::StableSpam full({a}, so::StableSpamOptions(0.01).update_proj_gap(5).total_steps(10));
  run(a, full, 0, 10);
  auto b = d({0.3, -0.2, 0.1}).requires_grad_();
  {
    so::StableSpam first({b}, so::StableSpamOptions(0.01).update_proj_gap(5).total_steps(10));
    run(b, first, 0, 3);
    torch::save(first, file);
  }
  so::StableSpam second({b}, so::StableSpamOptions(0.01).update_proj_gap(5).total_steps(10));
  torch::load(second, file);
  EXPECT_EQ(second.steps(), 3);
  run(b, second, 3, 10);
  EXPECT_TRUE(torch::equal(a, b)) << a << b;
  std::filesystem::remove_all(dir);
}

// The fused CPU loops (contiguous float tensors) against the tensor-operation path (taken for a
// non-contiguous parameter), over 40 steps with spikes, clipping, momentum resets and decay.
TEST(StableSpam, FusedLoopsMatchTheTensorPath) {
  auto run = [](bool contiguous, bool stable) {
    auto base = torch::linspace(-1, 1, 12, torch::kFloat64).reshape({4, 3});
    auto p = (contiguous ? base.t().contiguous() : base.t()).detach().requires_grad_();
    EXPECT_EQ(p.is_contiguous(), contiguous);
    std::unique_ptr<torch::optim::Optimizer> opt;
    if (stable)
      opt = std::make_unique<so::StableSpam>(std::vector<torch::Tensor>{p},
                                             so::StableSpamOptions(0.01).update_proj_gap(7).weight_decay(0.1).total_steps(40));
    else
      opt = std::make_unique<so::Spam>(std::vector<torch::Tensor>{p},
                                       so::SpamOptions(0.01).threshold(50).grad_accu_steps(3).update_proj_gap(9).warmup_steps(4).weight_decay(0.1));
    for (int k = 0; k < 40; ++k) {
      auto g = torch::cos(p.detach() * (k + 1)) * (k % 11 == 5 ? 300.0 : 1.0);
      g.index_put_({0, 0}, g.index({0, 0}) * (k % 6 == 3 ? -500.0 : 1.0));  // one coordinate spikes alone
      p.mutable_grad() = g.contiguous();
      opt->step();
    }
    return p.detach().contiguous();
  };
  for (bool stable : {true, false}) {
    const auto fused = run(true, stable), tensor = run(false, stable);
    EXPECT_TRUE(torch::allclose(fused, tensor, 1e-12, 1e-14)) << (stable ? "Stable-SPAM" : "SPAM") << fused - tensor;
    EXPECT_FALSE(torch::equal(fused, torch::linspace(-1, 1, 12, torch::kFloat64).reshape({4, 3}).t().contiguous()));
  }
}

TEST(StableSpam, BadOptionsAreConfigErrors) {
  auto p = d({0.0}).requires_grad_();
  EXPECT_THROW(so::StableSpam({p}, so::StableSpamOptions(-1)), stablelearn::ConfigError);
  EXPECT_THROW(so::StableSpam({p}, so::StableSpamOptions(0.1).gamma2(1.0)), stablelearn::ConfigError);
  EXPECT_THROW(so::Spam({p}, so::SpamOptions(0.1).threshold(-1)), stablelearn::ConfigError);
}
