// CaRE (include/stablelearn/continual/care.h) against hand values, a per-sample brute-force
// reference of the bi-level routing, formulas, sample statistics and finite differences, and a
// short stream on which it must learn and forget less than fine-tuning.
#include <algorithm>
#include <cmath>
#include <numeric>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "stablelearn/continual/care.h"

namespace sl = stablelearn;
using namespace sl::continual::care;

namespace {

double entropy_hand(const std::vector<double>& l) {
  const double mx = *std::max_element(l.begin(), l.end());
  double z = 0;
  for (double v : l) z += std::exp(v - mx);
  double h = 0;
  for (double v : l) {
    const double p = std::exp(v - mx) / z;
    h -= p * std::log(p + 1e-10);
  }
  return h;
}

std::vector<double> row(const torch::Tensor& t) {
  const auto c = t.to(torch::kFloat64).contiguous();
  return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}

// Routing weights of one router's scores by hand: keep the k largest (all when k >= n), set the
// rest to −100, softmax in double.
std::vector<double> weights_hand(std::vector<double> s, std::int64_t k) {
  const auto n = static_cast<std::int64_t>(s.size());
  if (k < n) {
    std::vector<std::int64_t> idx(static_cast<std::size_t>(n));
    std::iota(idx.begin(), idx.end(), 0);
    std::stable_sort(idx.begin(), idx.end(), [&](auto a, auto b) { return s[a] > s[b]; });
    for (std::int64_t j = k; j < n; ++j) s[static_cast<std::size_t>(idx[static_cast<std::size_t>(j)])] = -100;
  }
  double mx = -INFINITY;
  for (double v : s) mx = std::max(mx, v);
  double z = 0;
  for (double v : s) z += std::isinf(v) ? 0 : std::exp(v - mx);
  std::vector<double> w;
  for (double v : s) w.push_back(std::isinf(v) ? 0 : std::exp(v - mx) / z);
  return w;
}

// The layer's mixture (without the shared adapter) for sample z [1, D], routers chosen by hand:
// full dynamic (task < 0): the M lowest-entropy recognisers of all n experts; semi dynamic (task t):
// router t plus the M − 1 lowest-entropy recognisers among 0..t−1.
torch::Tensor reference_mix(BrMoeLayer& layer, const torch::Tensor& z, const CareOptions& o, std::int64_t task) {
  const std::int64_t n = task < 0 ? layer->tasks() : task + 1;
  std::vector<torch::Tensor> outs;
  std::vector<double> H;
  std::vector<std::vector<double>> scores;
  for (std::int64_t i = 0; i < n; ++i) {
    const auto out = layer->experts[i]->forward(z);
    outs.push_back(out);
    H.push_back(entropy_hand(row(layer->recognisers[i]->forward(out))));
    auto s = row(layer->routers[i]->forward(out));
    while (static_cast<std::int64_t>(s.size()) < n) s.push_back(-INFINITY);
    scores.push_back(s);
  }
  std::vector<std::int64_t> chosen;
  const std::int64_t pool = task < 0 ? n : task, m = task < 0 ? o.topk_routers : o.topk_routers - 1;
  std::vector<std::int64_t> order(static_cast<std::size_t>(pool));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](auto a, auto b) { return H[a] < H[b]; });
  for (std::int64_t j = 0; j < std::min(m, pool); ++j) chosen.push_back(order[static_cast<std::size_t>(j)]);
  if (task >= 0) chosen.push_back(task);
  auto mix = torch::zeros_like(outs[0], torch::kFloat64);
  for (auto r : chosen) {
    const auto w = weights_hand(scores[static_cast<std::size_t>(r)], o.topk_experts);
    for (std::int64_t e = 0; e < n; ++e) mix += w[static_cast<std::size_t>(e)] * outs[static_cast<std::size_t>(e)].to(torch::kFloat64);
  }
  return mix;
}

// A layer with `tasks` tasks of 3 classes whose experts have random non-zero weights and scales.
// (With `varied`, task t has 2 + t % 3 classes: the frozen experts' recognisers then run one by one.)
BrMoeLayer random_layer(const CareOptions& o, std::int64_t tasks, bool varied = false) {
  BrMoeLayer layer(o);
  for (std::int64_t t = 0; t < tasks; ++t) layer->add_task(varied ? 2 + t % 3 : 3);
  torch::NoGradGuard ng;
  for (auto& p : layer->parameters()) p.copy_(torch::randn_like(p) * 0.5);
  layer->eval();
  return layer;
}

}  // namespace

TEST(CareTest, EntropyAndLowestEntropyRoutersOnHandBuiltLogits) {
  // Four recognisers, two samples: sample 0 is most confident under recognisers 3 then 1, sample 1
  // under 0 then 2.
  const auto logits = torch::tensor({{{0.0, 0.0, 0.0}, {9.0, 0.0, 0.0}},
                                     {{10.0, 0.0, 0.0}, {0.0, 0.0, 0.0}},
                                     {{2.0, 0.0, 0.0}, {0.0, 5.0, 0.0}},
                                     {{0.0, 0.0, 30.0}, {0.0, 1.0, 0.0}}});  // [T=4, B=2, C=3]
  const auto h = entropy(logits);
  for (int t = 0; t < 4; ++t)
    for (int b = 0; b < 2; ++b) EXPECT_NEAR(h[t][b].item<double>(), entropy_hand(row(logits[t][b])), 1e-6);
  EXPECT_NEAR(h[0][0].item<double>(), std::log(3.0), 1e-6);  // uniform
  const auto idx = lowest_entropy(h, 2);
  ASSERT_EQ(idx.sizes(), (std::vector<std::int64_t>{2, 2}));
  EXPECT_EQ(idx[0][0].item<std::int64_t>(), 3);
  EXPECT_EQ(idx[1][0].item<std::int64_t>(), 1);
  EXPECT_EQ(idx[0][1].item<std::int64_t>(), 0);
  EXPECT_EQ(idx[1][1].item<std::int64_t>(), 2);
}

TEST(CareTest, TopKMaskingAndSoftmaxByHand) {
  const double inf = INFINITY;
  const auto s = torch::tensor({1.0, 3.0, 2.0, -inf, 0.5}, torch::kFloat64).reshape({1, 1, 5});
  const auto w = route_weights(s, 3);
  // Kept: 3, 2, 1; the −inf padding and 0.5 are outside the top 3 and become −100.
  const double z = std::exp(1.0) + std::exp(3.0) + std::exp(2.0) + 2 * std::exp(-100.0);
  const std::vector<double> expect = {std::exp(1.0) / z, std::exp(3.0) / z, std::exp(2.0) / z, std::exp(-100.0) / z,
                                      std::exp(-100.0) / z};
  for (int e = 0; e < 5; ++e) EXPECT_NEAR(w[0][0][e].item<double>(), expect[e], 1e-12);
  // k >= E: a plain softmax, the −inf entry weighs 0.
  const auto all = route_weights(s, 5);
  const double z2 = std::exp(1.0) + std::exp(3.0) + std::exp(2.0) + std::exp(0.5);
  EXPECT_NEAR(all[0][0][4].item<double>(), std::exp(0.5) / z2, 1e-12);
  EXPECT_EQ(all[0][0][3].item<double>(), 0.0);
}

TEST(CareTest, FullDynamicForwardMatchesPerSampleReference) {
  torch::manual_seed(3);
  CareOptions o;
  o.dim = 6;
  o.expert_dim = 3;
  o.adapter_dim = 4;
  o.shared_adapter = false;
  for (std::int64_t tasks : {1, 2, 5, -6}) {  // −6: six tasks of 2, 3, 4, 2, 3, 4 classes
    auto layer = random_layer(o, std::abs(tasks), tasks < 0);
    const auto z = torch::randn({7, 6});
    torch::NoGradGuard ng;
    const auto got = layer->full_dynamic(z);
    for (std::int64_t b = 0; b < 7; ++b) {
      const auto ref = reference_mix(layer, z.slice(0, b, b + 1), o, -1);
      EXPECT_TRUE(torch::allclose(got.slice(0, b, b + 1).to(torch::kFloat64), ref, 1e-5, 1e-6)) << tasks << " tasks, sample " << b;
    }
  }
}

TEST(CareTest, SemiDynamicForwardUsesCurrentRouterAndLowestEntropyPrevious) {
  torch::manual_seed(4);
  CareOptions o;
  o.dim = 6;
  o.expert_dim = 3;
  o.shared_adapter = false;
  auto layer = random_layer(o, 6);
  const auto z = torch::randn({9, 6});
  torch::NoGradGuard ng;
  for (std::int64_t t : {1, 2, 5}) {
    const auto [got, latent] = layer->semi_dynamic(z, t);
    EXPECT_TRUE(torch::allclose(latent, layer->recognisers[t]->forward(layer->experts[t]->forward(z))));
    for (std::int64_t b = 0; b < 9; ++b) {
      const auto ref = reference_mix(layer, z.slice(0, b, b + 1), o, t);
      EXPECT_TRUE(torch::allclose(got.slice(0, b, b + 1).to(torch::kFloat64), ref, 1e-5, 1e-6)) << "task " << t << ", sample " << b;
    }
  }
}

TEST(CareTest, EmaAnchorFollowsTheFormula) {
  torch::manual_seed(5);
  const auto p = torch::randn({4, 3}, torch::kFloat64), a = torch::randn({4, 3}, torch::kFloat64);
  const auto before = p.clone();
  ema_anchor({p}, {a}, 0.999);
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 3; ++j)
      EXPECT_NEAR(p[i][j].item<double>(), 0.999 * a[i][j].item<double>() + 0.001 * before[i][j].item<double>(), 1e-15);

  // Through the layer: from the second task on, a training forward first blends the shared adapter
  // with its copy taken at begin_phase.
  CareOptions o;
  o.dim = 5;
  BrMoeLayer layer(o);
  layer->add_task(2);
  layer->begin_phase(true);
  EXPECT_TRUE(layer->anchor().empty());  // one expert: no anchor (task 0 trains Ē freely)
  layer->add_task(2);
  layer->begin_phase(true);
  ASSERT_FALSE(layer->anchor().empty());
  std::vector<torch::Tensor> anchor, moved;
  {
    torch::NoGradGuard ng;
    for (auto& q : layer->shared->parameters()) {
      anchor.push_back(q.detach().clone());
      q.add_(torch::randn_like(q));
      moved.push_back(q.detach().clone());
    }
  }
  layer->train();
  (void)layer->semi_dynamic(torch::randn({3, 5}), 1);
  const auto now = layer->shared->parameters();
  for (std::size_t i = 0; i < now.size(); ++i)
    EXPECT_TRUE(torch::allclose(now[i], 0.999 * anchor[i] + 0.001 * moved[i], 1e-6, 1e-7));
  // Evaluation forwards leave it alone.
  layer->eval();
  const auto kept = now[0].detach().clone();
  (void)layer->full_dynamic(torch::randn({3, 5}));
  EXPECT_TRUE(torch::equal(layer->shared->parameters()[0], kept));
}

TEST(CareTest, NewExpertIsTheMeanOfEarlierExpertsButTheLatest) {
  torch::manual_seed(6);
  CareOptions o;
  o.dim = 5;
  auto layer = random_layer(o, 3);  // experts 0, 1, 2 with distinct random weights
  layer->add_task(3);                // expert 3 = mean of experts 0 and 1 (not 2)
  auto e3 = layer->experts[3]->named_parameters();
  for (const auto& kv : e3) {
    const auto a = layer->experts[0]->named_parameters()[kv.key()], b = layer->experts[1]->named_parameters()[kv.key()];
    EXPECT_TRUE(torch::equal(kv.value(), torch::stack({a, b}, 0).mean(0))) << kv.key();
    EXPECT_TRUE(torch::allclose(kv.value(), (a + b) / 2, 1e-6, 1e-7)) << kv.key();
  }
  // Only the newest triplet and the shared adapter learn.
  for (std::int64_t i = 0; i < 3; ++i)
    for (const auto& p : layer->experts[i]->parameters()) EXPECT_FALSE(p.requires_grad());
  for (const auto& p : layer->experts[3]->parameters()) EXPECT_TRUE(p.requires_grad());
  for (const auto& p : layer->routers[3]->parameters()) EXPECT_TRUE(p.requires_grad());
  for (const auto& p : layer->shared->parameters()) EXPECT_TRUE(p.requires_grad());
  EXPECT_EQ(layer->routers[3]->weight.size(0), 4);  // router t scores t + 1 experts
}

TEST(CareTest, FreshExpertsAndSharedAdapterStartAtZeroOutput) {
  torch::manual_seed(7);
  CareOptions o;
  o.dim = 8;
  BrMoeLayer layer(o);
  layer->add_task(3);
  layer->add_task(3);  // the second expert is also randomly initialised (mean init needs two earlier experts)
  layer->eval();
  const auto z = torch::randn({4, 8}) * 3;
  torch::NoGradGuard ng;
  for (std::int64_t i = 0; i < 2; ++i) {
    EXPECT_GT(layer->experts[i]->down->weight.abs().sum().item<double>(), 0.0);
    EXPECT_EQ(layer->experts[i]->forward(z).abs().max().item<double>(), 0.0);
  }
  EXPECT_EQ(layer->shared->forward(z).abs().max().item<double>(), 0.0);
  EXPECT_EQ(layer->full_dynamic(z).abs().max().item<double>(), 0.0);
}

TEST(CareTest, PseudoFeaturesHaveTheStoredMeanAndCovariance) {
  torch::manual_seed(8);
  const std::int64_t d = 4, n = 200000;
  const auto a = torch::randn({d, d}, torch::kFloat64);
  const auto cov = a.mm(a.t()) + 0.5 * torch::eye(d, torch::kFloat64);
  const auto mean = torch::randn({d}, torch::kFloat64) * 3;
  const auto x = gaussian_samples(mean, cov, n, at::detail::createCPUGenerator(11)).to(torch::kFloat64);
  ASSERT_EQ(x.sizes(), (std::vector<std::int64_t>{n, d}));
  const auto m = x.mean(0);
  for (std::int64_t i = 0; i < d; ++i)  // 5 standard errors
    EXPECT_NEAR(m[i].item<double>(), mean[i].item<double>(), 5 * std::sqrt(cov[i][i].item<double>() / n));
  const auto c = torch::cov(x.t());
  for (std::int64_t i = 0; i < d; ++i)
    for (std::int64_t j = 0; j < d; ++j) {  // Var of a sample covariance ≈ (Σij² + Σii Σjj)/n
      const double se = std::sqrt((std::pow(cov[i][j].item<double>(), 2) + cov[i][i].item<double>() * cov[j][j].item<double>()) / n);
      EXPECT_NEAR(c[i][j].item<double>(), cov[i][j].item<double>(), 5 * se) << i << "," << j;
    }
  // The code's mean factor: task_size = −3 at task 2 (t + 1 = 3); class 0 → t_id 0, class 4 → ⌊4/−3⌋ = −2.
  EXPECT_NEAR(ca_mean_factor(0, 3, 2), 0.9 + 0.1 / 3, 1e-15);
  EXPECT_NEAR(ca_mean_factor(3, 3, 2), 0.9 + 0.0, 1e-15);
  EXPECT_NEAR(ca_mean_factor(4, 3, 2), 0.9 - 0.1 / 3, 1e-15);
}

TEST(CareTest, CosFaceAndDistillationAgainstHandValuesAndFiniteDifferences) {
  const auto wf = torch::tensor({{0.5, -0.2, 0.1}, {0.0, 0.3, -0.4}}, torch::kFloat64);
  const auto y = torch::tensor({0, 1}, torch::kInt64);
  const double l0 = -std::log(std::exp(10.0) / (std::exp(10.0) + std::exp(-4.0) + std::exp(2.0)));
  const double l1 = -std::log(std::exp(6.0) / (std::exp(0.0) + std::exp(6.0) + std::exp(-8.0)));
  EXPECT_NEAR(cosface_loss(wf, y, 20, 0).item<double>(), (l0 + l1) / 2, 1e-12);
  const double m0 = -std::log(std::exp(4.0) / (std::exp(4.0) + std::exp(-4.0) + std::exp(2.0)));
  const double m1 = -std::log(std::exp(0.0) / (std::exp(0.0) + std::exp(0.0) + std::exp(-8.0)));
  EXPECT_NEAR(cosface_loss(wf, y, 20, 0.3).item<double>(), (m0 + m1) / 2, 1e-12);

  const auto student = torch::tensor({{1.0, -0.5, 0.2}, {0.3, 0.0, 2.0}}, torch::kFloat64);
  const auto teacher = torch::tensor({{0.4, 0.1, -0.3}, {-1.0, 0.5, 0.5}}, torch::kFloat64);
  for (double tau : {1.0, 2.0}) {
    double kl = 0;
    for (int b = 0; b < 2; ++b) {
      std::vector<double> p(3), q(3);
      double zp = 0, zq = 0;
      for (int k = 0; k < 3; ++k) {
        zp += std::exp(teacher[b][k].item<double>() / tau);
        zq += std::exp(student[b][k].item<double>() / tau);
      }
      for (int k = 0; k < 3; ++k) {
        p[k] = std::exp(teacher[b][k].item<double>() / tau) / zp;
        q[k] = std::exp(student[b][k].item<double>() / tau) / zq;
        kl += p[k] * std::log(p[k] / q[k]);
      }
    }
    EXPECT_NEAR(distillation_kl(student, teacher, tau).item<double>(), kl / 2 * tau * tau, 1e-12);
    // Gradient w.r.t. the student against central differences.
    auto s = student.clone().requires_grad_(true);
    distillation_kl(s, teacher, tau).backward();
    for (int b = 0; b < 2; ++b)
      for (int k = 0; k < 3; ++k) {
        auto up = student.clone(), dn = student.clone();
        up[b][k] += 1e-6;
        dn[b][k] -= 1e-6;
        const double fd = (distillation_kl(up, teacher, tau).item<double>() - distillation_kl(dn, teacher, tau).item<double>()) / 2e-6;
        EXPECT_NEAR(s.grad()[b][k].item<double>(), fd, 1e-7);
      }
    // The teacher is detached.
    auto t = teacher.clone().requires_grad_(true);
    EXPECT_FALSE(distillation_kl(student, t, tau).requires_grad());
  }
}

namespace {

// A short class-incremental stream: `tasks` tasks of 3 Gaussian classes in 10 dimensions.
struct Stream {
  std::vector<torch::Tensor> xtr, ytr, xte, yte;
};
Stream make_stream(std::int64_t tasks) {
  torch::manual_seed(21);
  Stream s;
  const auto means = torch::randn({tasks * 3, 10}) * 2.0;
  for (std::int64_t t = 0; t < tasks; ++t) {
    std::vector<torch::Tensor> xa, ya, xb, yb;
    for (std::int64_t c = t * 3; c < t * 3 + 3; ++c) {
      xa.push_back(means[c] + 0.7 * torch::randn({30, 10}));
      ya.push_back(torch::full({30}, c, torch::kInt64));
      xb.push_back(means[c] + 0.7 * torch::randn({30, 10}));
      yb.push_back(torch::full({30}, c, torch::kInt64));
    }
    s.xtr.push_back(torch::cat(xa));
    s.ytr.push_back(torch::cat(ya));
    s.xte.push_back(torch::cat(xb));
    s.yte.push_back(torch::cat(yb));
  }
  return s;
}

}  // namespace

TEST(CareTest, LearnsAShortStreamAndForgetsLessThanFineTuning) {
  const std::int64_t tasks = 4, d = 16;
  const auto s = make_stream(tasks);
  torch::manual_seed(5);
  const auto w0 = torch::randn({d, 10}) / std::sqrt(10.0);
  const auto w1 = torch::randn({d, d}) / std::sqrt(double(d)) * 0.5;
  FrozenBackbone bb;
  bb.stem = [w0](const torch::Tensor& x) { return torch::tanh(x.mm(w0.t())); };
  bb.branches = {[w1](const torch::Tensor& z) { return torch::relu(z.mm(w1.t())); }};
  bb.out_norm = [d](const torch::Tensor& z) { return torch::layer_norm(z, {d}); };
  CareOptions o;
  o.dim = d;
  o.expert_dim = 4;
  o.adapter_dim = 4;
  o.epochs = 6;
  o.ca_samples = 16;
  Learner care(o, bb, 1);
  std::vector<double> just_learned;
  for (std::int64_t t = 0; t < tasks; ++t) {
    const auto cost = care.learn_task(s.xtr[t], s.ytr[t], 3);
    EXPECT_GT(cost.parameters, 0);
    EXPECT_EQ(cost.statistic_floats, (t + 1) * 3 * (d + d * d));
    just_learned.push_back(care.predict(s.xte[t]).eq(s.yte[t]).to(torch::kFloat64).mean().item<double>());
  }
  double care_final = 0, care_forget = 0;
  for (std::int64_t t = 0; t < tasks; ++t) {
    const double a = care.predict(s.xte[t]).eq(s.yte[t]).to(torch::kFloat64).mean().item<double>();
    care_final += a / tasks;
    care_forget += (just_learned[t] - a) / (tasks - 1) * (t + 1 < tasks);
  }
  // Fine-tuning: the same frozen features, a linear head over the seen classes trained with SGD
  // on each task in turn.
  torch::manual_seed(5);
  auto head = torch::zeros({tasks * 3, d}, torch::requires_grad());
  torch::optim::SGD opt({head}, torch::optim::SGDOptions(0.1).momentum(0.9));
  auto feat = [&](const torch::Tensor& x) { return bb.out_norm(bb.stem(x) + bb.branches[0](bb.stem(x))); };
  std::vector<double> ft_just;
  for (std::int64_t t = 0; t < tasks; ++t) {
    for (int e = 0; e < 30; ++e) {
      const auto logits = feat(s.xtr[t]).mm(head.slice(0, 0, (t + 1) * 3).t());
      const auto loss = torch::nn::functional::cross_entropy(logits, s.ytr[t]);
      opt.zero_grad();
      loss.backward();
      opt.step();
    }
    torch::NoGradGuard ng;
    ft_just.push_back(feat(s.xte[t]).mm(head.slice(0, 0, (t + 1) * 3).t()).argmax(1).eq(s.yte[t]).to(torch::kFloat64).mean().item<double>());
  }
  double ft_final = 0, ft_forget = 0;
  {
    torch::NoGradGuard ng;
    for (std::int64_t t = 0; t < tasks; ++t) {
      const double a = feat(s.xte[t]).mm(head.t()).argmax(1).eq(s.yte[t]).to(torch::kFloat64).mean().item<double>();
      ft_final += a / tasks;
      ft_forget += (ft_just[t] - a) / (tasks - 1) * (t + 1 < tasks);
    }
  }
  EXPECT_GE(care_final, 0.6) << "fine-tuning " << ft_final;  // chance 1/12
  EXPECT_GT(care_final, ft_final + 0.1);
  EXPECT_LT(care_forget, ft_forget);
  EXPECT_EQ(care.seen_classes(), tasks * 3);
}
