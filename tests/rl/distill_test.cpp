// Policy distillation (rl/distill.h): the three losses against closed forms computed here in plain
// double arithmetic, the KL loss's low-temperature limit (the NLL of the teacher's greedy action), a
// student network recovering a teacher network of the same architecture, the adversarial path's
// first loss against an independently FGSM-perturbed batch, determinism and option errors.
#include "stablelearn/rl/distill.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include <torch/torch.h>

#include "stablelearn/core/error.h"
#include "stablelearn/rl/diagnosis.h"

namespace sl = stablelearn;
using namespace sl::rl;

namespace {
std::vector<double> log_softmax(const std::vector<double>& x, double tau = 1) {
  double m = -1e300, s = 0;
  for (double v : x) m = std::max(m, v / tau);
  for (double v : x) s += std::exp(v / tau - m);
  std::vector<double> out;
  for (double v : x) out.push_back(v / tau - m - std::log(s));
  return out;
}
}  // namespace

TEST(Distill, LossesByHand) {
  const std::vector<std::vector<double>> qs = {{1, 2, -0.5}, {0, 0, 0.25}}, qt = {{1.5, 1, 0}, {3, -1, 2.5}};
  const auto S = torch::tensor({1.0, 2.0, -0.5, 0.0, 0.0, 0.25}, torch::kDouble).view({2, 3});
  const auto T = torch::tensor({1.5, 1.0, 0.0, 3.0, -1.0, 2.5}, torch::kDouble).view({2, 3});
  double mse = 0, nll = 0, kl = 0;
  const double tau = 0.7;
  for (int b = 0; b < 2; ++b) {
    const auto ls = log_softmax(qs[b]), lp = log_softmax(qt[b], tau);
    int best = 0;
    for (int a = 0; a < 3; ++a) {
      mse += (qs[b][a] - qt[b][a]) * (qs[b][a] - qt[b][a]) / 6;
      if (qt[b][a] > qt[b][best]) best = a;
      kl += std::exp(lp[a]) * (lp[a] - ls[a]) / 2;
    }
    nll += -ls[best] / 2;
  }
  EXPECT_NEAR(distillation_loss(S, T, "mse").item<double>(), mse, 1e-12);
  EXPECT_NEAR(distillation_loss(S, T, "nll").item<double>(), nll, 1e-12);
  EXPECT_NEAR(distillation_loss(S, T, "kl", tau).item<double>(), kl, 1e-12);
  // τ → 0: the sharpened teacher is one-hot on its greedy action, KL → NLL (the gaps here are >= 0.5,
  // so at τ = 0.005 the other actions' weights are below e^-100).
  EXPECT_NEAR(distillation_loss(S, T, "kl", 0.005).item<double>(), nll, 1e-12);
  // No gradient flows into the teacher; the MSE gradient is 2 (q_S − q_T) / (B A).
  const auto s = S.clone().requires_grad_(true);
  const auto t = T.clone().requires_grad_(true);
  distillation_loss(s, t, "mse").backward();
  EXPECT_FALSE(t.grad().defined());
  EXPECT_TRUE(torch::allclose(s.grad(), 2 * (S - T) / 6, 0, 1e-12));
  EXPECT_THROW(distillation_loss(S, T, "huber"), sl::ConfigError);
  EXPECT_THROW(distillation_loss(S, T, "kl", 0.0), sl::ConfigError);
  EXPECT_THROW(distillation_loss(S, T.slice(1, 0, 2), "mse"), sl::ShapeError);
}

// A student of the teacher's own architecture, distilled on 1024 random inputs with the MSE loss,
// matches the teacher on 512 fresh inputs: its Q error falls 100× below the untrained student's
// and it agrees with the teacher's greedy action almost everywhere.
TEST(Distill, StudentRecoversTeacher) {
  torch::manual_seed(1);
  DuelingQNet teacher(6, 2, 16);
  torch::manual_seed(2);
  DuelingQNet student(6, 2, 16);
  torch::manual_seed(3);
  const auto x = torch::randn({1024, 6}), xt = torch::randn({512, 6});
  torch::Tensor y, yt;
  {
    torch::NoGradGuard ng;
    y = teacher->forward(x);
    yt = teacher->forward(xt);
  }
  const double before = (student->forward(xt) - yt).pow(2).mean().item<double>();
  DistillOptions o;
  o.epochs = 150;
  o.seed = 4;
  const auto st = distill(student, x, y, o);
  ASSERT_EQ(st.epoch_loss.size(), 150u);
  EXPECT_LT(st.epoch_loss.back(), st.epoch_loss.front());
  torch::NoGradGuard ng;
  const double after = (student->forward(xt) - yt).pow(2).mean().item<double>();
  EXPECT_LT(after, before / 100) << before << " -> " << after;
  EXPECT_GT(st.agreement, 0.95);
  EXPECT_GT(student->forward(xt).argmax(1).eq(yt.argmax(1)).to(torch::kDouble).mean().item<double>(), 0.9);
}

// adv_eps > 0, one epoch of one full batch: the reported loss is the loss of the untrained student at
// x + eps sign v(x) (v of that student, rl/diagnosis.h), against the clean teacher values; the same
// seed gives the same student, and bad options name their key.
TEST(Distill, AdversarialLossAndDeterminism) {
  auto make = [] {
    torch::manual_seed(5);
    return DuelingQNet(4, 3, 8);
  };
  torch::manual_seed(6);
  const auto x = torch::randn({32, 4}), y = torch::randn({32, 3});
  auto ref = make();
  const QFunction q = [&](const torch::Tensor& s) { return ref->forward(s); };
  const auto xa = fgsm(q, x, 0.3);
  EXPECT_NEAR((xa - x).abs().max().item<double>(), 0.3, 1e-6);
  const double expected = distillation_loss(ref->forward(xa), y, "mse").item<double>();
  DistillOptions o;
  o.epochs = 1;
  o.batch_size = 32;
  o.adv_eps = 0.3;
  auto a = make();
  const auto st = distill(a, x, y, o);
  ASSERT_EQ(st.epoch_loss.size(), 1u);
  EXPECT_NEAR(st.epoch_loss[0], expected, 1e-6);
  // adv_weight 0.3: 0.7 of the clean loss plus 0.3 of the perturbed one.
  o.adv_weight = 0.3;
  auto a2 = make();
  const double clean = distillation_loss(ref->forward(x), y, "mse").item<double>();
  EXPECT_NEAR(distill(a2, x, y, o).epoch_loss[0], 0.7 * clean + 0.3 * expected, 1e-6);
  o.adv_weight = 1;
  // Determinism, with a shuffle over several minibatches.
  o.epochs = 3;
  o.batch_size = 5;
  auto b = make(), c = make();
  const auto sb = distill(b, x, y, o), sc = distill(c, x, y, o);
  EXPECT_EQ(sb.epoch_loss, sc.epoch_loss);
  const auto pb = b->parameters(), pc = c->parameters();
  for (std::size_t i = 0; i < pb.size(); ++i) EXPECT_TRUE(torch::equal(pb[i], pc[i]));
  DistillOptions bad;
  bad.loss = "l1";
  try {
    distill(b, x, y, bad);
    FAIL() << "no ConfigError";
  } catch (const sl::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("distill.loss"), std::string::npos) << e.what();
  }
  EXPECT_THROW(distill(b, x, y.slice(0, 0, 10), o), sl::ShapeError);
}
