// Hand-computed cases for the strategies' mechanics (the end-to-end "forgets less than fine-tuning"
// checks are in tests/experiments/).
#include <gtest/gtest.h>
#include <torch/optim/sgd.h>

#include "stablelearn/continual/registry.h"
#include "stablelearn/continual/strategies.h"
#include "stablelearn/core/config.h"
#include "stablelearn/core/error.h"
#include "testing.h"

namespace sl = stablelearn;
using namespace sl::continual;

namespace {

/// A linear 2-class "MLP" (no hidden layer) on 1×1×2 images, weights zeroed.
struct Tiny {
  sl::models::Classifier model{[] {
    sl::models::ClassifierOptions o;
    o.hidden = {};
    o.classes = 2;
    o.input = {1, 1, 2};
    return o;
  }()};
  std::vector<sl::data::ClTask> tasks;
  Context ctx;
  Tiny() {
    torch::NoGradGuard g;
    for (auto& w : model->weights()) w.zero_();
    sl::data::ClTask t;
    t.train = {torch::tensor({1.f, 2.f}).reshape({1, 1, 1, 2}), torch::tensor({0}, torch::kInt64)};
    t.test = t.train;
    t.classes = {0, 1};
    tasks.push_back(t);
    ctx.model = model.get();
    ctx.params = model->weights();
    ctx.tasks = &tasks;
    ctx.batch_size = 1;
    ctx.gen = at::detail::createCPUGenerator(0);
  }
};

}  // namespace

TEST(Ewc, FisherAndPenaltyOfAHandComputedCase) {
  // Zero weights, one sample x = (1, 2), y = 0: softmax is uniform, ∂ log p_0/∂W = (onehot − p) xᵀ
  // = [[0.5, 1], [−0.5, −1]], ∂/∂b = (0.5, −0.5). The empirical Fisher is the square.
  Tiny t;
  Ewc ewc(Ewc::Options{100.0, "separate", 1.0, 1000});
  EXPECT_FALSE(ewc.extra_loss(t.ctx, {}, {}).defined());
  ewc.after_task(t.ctx);
  ASSERT_EQ(ewc.fishers().size(), 1u);
  EXPECT_TRUE(torch::allclose(ewc.fishers()[0][0], torch::tensor({{0.25f, 1.f}, {0.25f, 1.f}})));
  EXPECT_TRUE(torch::allclose(ewc.fishers()[0][1], torch::tensor({0.25f, 0.25f})));
  {
    torch::NoGradGuard g;
    for (auto& w : t.ctx.params) w.add_(1);
  }
  // Moving every parameter by 1: penalty = λ/2 · ΣF = 50 · 3 = 150.
  EXPECT_NEAR(ewc.extra_loss(t.ctx, {}, {}).item<double>(), 150.0, 1e-4);
}

TEST(Ewc, OnlineModeAccumulatesOneDecayedFisher) {
  Tiny t;
  Ewc ewc(Ewc::Options{1.0, "online", 0.5, 1000});
  ewc.after_task(t.ctx);
  ewc.after_task(t.ctx);  // same weights and data: F = 0.5·F0 + F0 = 1.5·F0, one anchor
  ASSERT_EQ(ewc.fishers().size(), 1u);
  EXPECT_TRUE(torch::allclose(ewc.fishers()[0][0], torch::tensor({{0.375f, 1.5f}, {0.375f, 1.5f}})));
}

TEST(AGem, ProjectsAConflictingGradientOntoTheReferencePlane) {
  // Memory = the single sample; with zero weights its loss gradient is g_ref = (−0.5, −1, 0.5, 1,
  // −0.5, 0.5) (descent direction negated: ∂CE/∂W = −(onehot − p)xᵀ). A current gradient g = g_ref·(−1)
  // + e conflicts; after the step's projection gᵀg_ref must be 0 and g − proj ∥ g_ref.
  Tiny t;
  AGem agem(AGem::Options{10, 10});
  agem.after_task(t.ctx);
  const auto g_ref = torch::tensor({-0.5f, -1.f, 0.5f, 1.f, -0.5f, 0.5f});
  const auto g = -g_ref + torch::tensor({0.1f, 0.f, 0.f, 0.f, 0.f, 0.f});
  set_flat_grad(t.ctx.params, g);
  agem.after_backward(t.ctx);
  const auto out = flat_grad(t.ctx.params);
  EXPECT_NEAR((out * g_ref).sum().item<double>(), 0.0, 1e-6);
  const double alpha = (g * g_ref).sum().item<double>() / (g_ref * g_ref).sum().item<double>();
  EXPECT_TRUE(torch::allclose(out, g - alpha * g_ref, 1e-5, 1e-6));
  EXPECT_EQ(agem.projections(), 1);
  // A gradient that agrees with g_ref is left alone.
  set_flat_grad(t.ctx.params, g_ref);
  agem.after_backward(t.ctx);
  EXPECT_TRUE(torch::allclose(flat_grad(t.ctx.params), g_ref));
}

TEST(Gpm, ProtectedInputDirectionsGetNoGradient) {
  // Inputs of the only linear layer all lie along (1, 2)/√5: after the task the basis is that
  // direction, and any later weight gradient G becomes G (I − u uᵀ), so G u = 0.
  Tiny t;
  Gpm gpm(Gpm::Options{0.97, 0.0, 300});
  gpm.after_task(t.ctx);
  ASSERT_EQ(gpm.bases().size(), 1u);
  ASSERT_EQ(gpm.bases()[0].size(1), 1);
  const auto u = torch::tensor({1.f, 2.f}) / std::sqrt(5.f);
  EXPECT_NEAR(std::abs((gpm.bases()[0].squeeze(1) * u).sum().item<double>()), 1.0, 1e-5);
  set_flat_grad(t.ctx.params, torch::tensor({3.f, -1.f, 2.f, 5.f, 1.f, 1.f}));
  gpm.after_backward(t.ctx);
  const auto gw = t.ctx.params[0].grad();
  EXPECT_TRUE(torch::allclose(gw.matmul(u), torch::zeros({2}), 1e-5, 1e-5));
  EXPECT_TRUE(torch::allclose(t.ctx.params[1].grad(), torch::tensor({1.f, 1.f})));  // biases unprojected
}

TEST(Lwf, NoDistillationLossWhenStudentEqualsTeacher) {
  Tiny t;
  sl::data::ClTask t1 = t.tasks[0];
  t1.id = 1;
  t.tasks.push_back(t1);
  t.ctx.task = 1;
  Lwf lwf;
  {
    torch::NoGradGuard g;
    t.ctx.params[0].copy_(torch::tensor({{0.3f, -0.2f}, {0.1f, 0.4f}}));
  }
  lwf.before_task(t.ctx);
  Batch b{t.tasks[0].train.images, t.tasks[0].train.labels, torch::zeros({1}, torch::kInt64)};
  const auto z = t.ctx.logits(b.x, b.task);
  EXPECT_NEAR(lwf.extra_loss(t.ctx, b, z).item<double>(), 0.0, 1e-7);
  // Moving the student away gives a positive KL: with teacher logits (−0.1, 0.9)/T and student
  // logits 0: KL(p‖u) = Σ p log(2p) for T = 2 — p = softmax(−0.05, 0.45).
  {
    torch::NoGradGuard g;
    t.ctx.params[0].zero_();
  }
  const auto p = torch::softmax(torch::tensor({-0.05, 0.45}), 0);
  const double kl = (p * (2 * p).log()).sum().item<double>();
  EXPECT_NEAR(lwf.extra_loss(t.ctx, b, t.ctx.logits(b.x, b.task)).item<double>(), 1.0 * 4.0 * kl, 1e-6);
}

TEST(EmaMerge, BalanceWeightFollowsTheLciaFormula) {
  // One parameter tensor of each kind; after two steps with gradients g1, g2 and θ − θ_ema known,
  // α = 2(1 + ‖g2‖₁) / (‖θ − θ_ema‖₁ ‖g2 − g1‖₁) when it lies in (0, 1).
  Tiny t;
  EmaMerge ema;
  ema.before_task(t.ctx);
  set_flat_grad(t.ctx.params, torch::zeros({6}));
  ema.after_backward(t.ctx);
  ema.after_step(t.ctx, {});
  EXPECT_DOUBLE_EQ(ema.last_alphas()[0], 0.01);  // first step: no previous gradient → fallback
  {
    torch::NoGradGuard g;
    t.ctx.params[0].fill_(10.f);  // θ − θ_ema = 10 in each of 4 entries → ‖·‖₁ = 40
  }
  set_flat_grad(t.ctx.params, torch::tensor({1.f, 1.f, 1.f, 1.f, 0.f, 0.f}));  // ‖g‖₁ = 4, ‖g − 0‖₁ = 4
  ema.after_backward(t.ctx);
  ema.after_step(t.ctx, {});
  EXPECT_NEAR(ema.last_alphas()[0], 2.0 * (1 + 4) / (40.0 * 4), 1e-9);
  EXPECT_DOUBLE_EQ(ema.last_alphas()[1], 0.01);  // bias: ‖g − g_prev‖₁ = 0 → α = ∞ → fallback
}

TEST(Registry, EveryStrategyIsBuiltFromItsNameAndUnknownKeysAreRejected) {
  for (const auto& info : strategies()) {
    auto s = make_strategy(info.name);
    EXPECT_EQ(s->name(), info.name);
  }
  sl::testing::expect_error<sl::ConfigError>([] { make_strategy("nope"); }, "unknown strategy \"nope\"");
  auto cfg = sl::Config::from_string("[strategy]\nname = \"ewc\"\nlamda = 3\n");
  auto sec = cfg.section("strategy");
  auto s = make_strategy(sec);
  sl::testing::expect_error<sl::ConfigError>([&] { sec.finish(); }, "lamda");
}

TEST(Registry, AParsedSpecMakesFreshStrategiesAndWritesTheTableItRead) {
  auto cfg = sl::Config::from_string("[strategy]\nname = \"er\"\nmemory = 7\n", "cfg.toml");
  auto sec = cfg.section("strategy");
  const auto spec = parse_strategy(sec);
  sec.finish();
  EXPECT_EQ(spec.name, "er");
  const auto a = spec.make(), b = spec.make();
  EXPECT_NE(a.get(), b.get());
  EXPECT_EQ(a->name(), "er");
  // The spec's table equals the one a strategy built from it writes, and holds the value read.
  sl::ConfigWriter from_spec, from_strategy;
  spec.describe(from_spec);
  a->describe(from_strategy);
  EXPECT_EQ(from_spec.to_string(), from_strategy.to_string());
  EXPECT_NE(from_spec.to_string().find("memory = 7"), std::string::npos) << from_spec.to_string();
  // Options are checked when read, not when a strategy is made.
  auto bad = sl::Config::from_string("[strategy]\nname = \"ewc\"\nlambda = -1.0\n", "bad.toml");
  auto bad_sec = bad.section("strategy");
  sl::testing::expect_error<sl::ConfigError>([&] { parse_strategy(bad_sec); }, "strategy.lambda");
}

namespace {
/// An MLP with random weights on random images, two tasks with every class (a domain-like stream),
/// `batch` samples per context batch.
struct RandomNet {
  sl::models::Classifier model;
  std::vector<sl::data::ClTask> tasks;
  Context ctx;
  std::int64_t n;
  RandomNet(std::vector<std::int64_t> hidden, std::int64_t classes, std::vector<std::int64_t> input, std::int64_t samples,
            std::uint64_t seed, std::int64_t batch)
      : model([&] {
          sl::models::ClassifierOptions o;
          o.hidden = std::move(hidden);
          o.classes = classes;
          o.input = input;
          return o;
        }()),
        n(samples) {
    torch::manual_seed(seed);
    std::vector<std::int64_t> shape{samples};
    shape.insert(shape.end(), input.begin(), input.end());
    for (int k = 0; k < 2; ++k) {
      sl::data::ClTask t;
      t.id = k;
      t.train = {torch::randn(shape), torch::randint(0, classes, {samples}, torch::kInt64)};
      t.test = t.train;
      for (std::int64_t c = 0; c < classes; ++c) t.classes.push_back(c);
      tasks.push_back(t);
    }
    ctx.model = model.get();
    ctx.params = model->weights();
    ctx.tasks = &tasks;
    ctx.batch_size = batch;
    ctx.lr = 0.01;
    ctx.gen = at::detail::createCPUGenerator(0);
  }
  void backward() {
    for (auto& p : ctx.params) p.mutable_grad() = torch::Tensor();
    const auto& d = tasks[static_cast<std::size_t>(ctx.task)].train;
    cross_entropy(ctx.logits(d.images, torch::zeros({n}, torch::kInt64)), d.labels).backward();
  }
};

/// MLP 6-8-3 on 1×2×3 images, 40 samples per task, for the subspace strategies.
struct Small : RandomNet {
  Small() : RandomNet({8}, 3, {1, 2, 3}, 40, 5, 40) {}
};
}  // namespace

TEST(AdaptiveSvd, TopSingularTripletsOfEachWeightStayExactlyAfterSteps) {
  Small s;
  AdaptiveSvd a(AdaptiveSvd::Options{0.5, 0.9});
  s.ctx.task = 1;
  a.before_task(s.ctx);
  ASSERT_EQ(a.ranks(), (std::vector<std::int64_t>{3, 2}));  // round(0.5·6) and round(0.5·3)
  // The frozen part: U_h, V_h from an independent SVD of the weights before training.
  const auto w0 = s.ctx.params[0].detach().clone().to(torch::kFloat64);
  const auto svd = torch::linalg_svd(w0, false);
  const auto u = std::get<0>(svd).narrow(1, 0, 3), v = std::get<2>(svd).narrow(0, 0, 3).t();
  torch::optim::SGD opt(s.ctx.params, torch::optim::SGDOptions(0.5));
  for (int it = 0; it < 5; ++it) {
    s.backward();
    a.after_backward(s.ctx);
    opt.step();
    a.after_step(s.ctx, {});
  }
  const auto w1 = s.ctx.params[0].detach().to(torch::kFloat64);
  EXPECT_GT((w1 - w0).abs().max().item<double>(), 1e-3);  // it trains
  // Uᵀ W V over the frozen directions is unchanged: ΔW is orthogonal to U_h on the left and V_h on the right.
  EXPECT_LT((u.t().matmul(w1 - w0)).abs().max().item<double>(), 1e-5);
  EXPECT_LT(((w1 - w0).matmul(v)).abs().max().item<double>(), 1e-5);
}

TEST(AdaptiveSvd, APretrainedModelKeepsItsTopDirectionsFromTaskZero) {
  Small s;
  // Without a pre-trained model task 0 trains freely; with one it already freezes rank_step.
  AdaptiveSvd plain(AdaptiveSvd::Options{0.25, 0.9, false}), pre(AdaptiveSvd::Options{0.25, 0.9, true});
  plain.before_task(s.ctx);
  pre.before_task(s.ctx);
  EXPECT_EQ(plain.ranks(), (std::vector<std::int64_t>{0, 0}));
  EXPECT_EQ(pre.ranks(), (std::vector<std::int64_t>{2, 1}));  // round(0.25·6 = 1.5), round(0.25·3 = 0.75)
  s.ctx.task = 1;
  pre.before_task(s.ctx);
  EXPECT_EQ(pre.ranks(), (std::vector<std::int64_t>{3, 2}));  // round(0.5·6), round(0.5·3 = 1.5)
  s.ctx.task = 4;
  pre.before_task(s.ctx);
  EXPECT_EQ(pre.ranks(), (std::vector<std::int64_t>{5, 3}));  // the cap: round(0.9·6 = 5.4), round(0.9·3 = 2.7)
}

TEST(Coso, UpdatesOfALaterTaskAreOrthogonalToTheLearnedSubspace) {
  Small s;
  Coso c(Coso::Options{2, 4, 0.9, 1, 1.0});
  c.before_task(s.ctx);
  for (int it = 0; it < 5; ++it) {
    s.backward();
    EXPECT_TRUE(c.step(s.ctx));
  }
  c.after_task(s.ctx);
  ASSERT_TRUE(c.bases()[0].defined());
  const auto m = c.bases()[0];  // [8, k], orthonormal
  EXPECT_TRUE(torch::allclose(m.t().matmul(m), torch::eye(m.size(1)), 1e-4, 1e-5));
  s.ctx.task = 1;
  c.before_task(s.ctx);
  const auto w0 = s.ctx.params[0].detach().clone();
  for (int it = 0; it < 5; ++it) {
    s.backward();
    c.step(s.ctx);
  }
  const auto dw = s.ctx.params[0].detach() - w0;
  EXPECT_GT(dw.abs().max().item<double>(), 1e-4);
  // Mᵀ ΔW = 0: the outputs W x of the first layer keep their component in span(M) for every x.
  EXPECT_LT(m.t().matmul(dw).abs().max().item<double>(), 1e-5);
}

namespace {
/// The k largest |values| of v, counted independently of the strategy (a full sort).
std::vector<float> sorted_magnitudes(const torch::Tensor& v) {
  const auto c = v.reshape(-1).abs().contiguous();
  std::vector<float> m(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
  std::sort(m.begin(), m.end(), std::greater<float>());
  return m;
}
}  // namespace

TEST(PackNet, KeepsTheLargestFreeWeightsPerTaskAndEvaluatesEachTaskWithItsOwn) {
  Small s;
  s.tasks.push_back(s.tasks[1]);  // three tasks, the same classes (a domain-like stream)
  s.tasks[2].id = 2;
  PackNet pn(PackNet::Options{0.5, 0});
  pn.before_task(s.ctx);
  ASSERT_EQ(pn.owners().size(), s.ctx.params.size());
  // Task 0: distinct magnitudes; half of each weight tensor's entries are kept, the largest.
  std::vector<torch::Tensor> before0;
  for (auto& p : s.ctx.params) before0.push_back(p.detach().clone());
  pn.after_task(s.ctx);
  for (std::size_t i = 0; i < s.ctx.params.size(); ++i) {
    const auto& o = pn.owners()[i];
    const auto& p = s.ctx.params[i];
    if (p.dim() < 2) {  // biases: task 0's, all of them, values kept
      EXPECT_TRUE(o.eq(1).all().item<bool>()) << i;
      EXPECT_TRUE(torch::equal(p, before0[i])) << i;
      continue;
    }
    const auto n = p.numel(), keep = static_cast<std::int64_t>(std::llround(0.5 * static_cast<double>(n)));
    EXPECT_EQ(o.eq(1).sum().item<std::int64_t>(), keep) << i;
    const auto mags = sorted_magnitudes(before0[i]);
    const float threshold = mags[static_cast<std::size_t>(keep - 1)];  // the smallest kept magnitude
    const auto kept = o.eq(1);
    EXPECT_TRUE(before0[i].abs().masked_select(kept).ge(threshold).all().item<bool>()) << i;
    EXPECT_TRUE(before0[i].abs().masked_select(kept.logical_not()).le(threshold).all().item<bool>()) << i;
    EXPECT_TRUE(torch::equal(p.masked_select(kept), before0[i].masked_select(kept))) << i;
    EXPECT_TRUE(p.masked_select(kept.logical_not()).eq(0).all().item<bool>()) << i << ": released weights are zeroed";
  }
  // Task 1 trains: its view holds task 0's weights and the free ones; the owned ones get no gradient.
  s.ctx.task = 1;
  pn.before_task(s.ctx);
  {
    torch::NoGradGuard g;
    for (std::size_t i = 0; i < s.ctx.params.size(); ++i)
      s.ctx.params[i].masked_scatter_(pn.owners()[i].eq(0), torch::randn({s.ctx.params[i].numel()}) + 3);
  }
  const auto w0 = pn.task_weights(s.ctx, 0), w1 = pn.task_weights(s.ctx, 1);
  for (std::size_t i = 0; i < s.ctx.params.size(); ++i) {
    const auto& o = pn.owners()[i];
    EXPECT_TRUE(torch::equal(w0[i], torch::where(o.eq(1), s.ctx.params[i], torch::zeros_like(s.ctx.params[i])))) << i;
    EXPECT_TRUE(torch::equal(w1[i], s.ctx.params[i])) << i << ": free + task 0's = everything";
  }
  s.backward();
  pn.after_backward(s.ctx);
  for (std::size_t i = 0; i < s.ctx.params.size(); ++i) {
    const auto& g = s.ctx.params[i].grad();
    ASSERT_TRUE(g.defined()) << i;
    EXPECT_TRUE(g.masked_select(pn.owners()[i].ne(0)).eq(0).all().item<bool>()) << i;
  }
  std::vector<std::int64_t> free1;
  for (const auto& o : pn.owners()) free1.push_back(o.eq(0).sum().item<std::int64_t>());
  pn.after_task(s.ctx);
  for (std::size_t i = 0; i < s.ctx.params.size(); ++i) {
    if (s.ctx.params[i].dim() < 2) continue;
    EXPECT_EQ(pn.owners()[i].eq(2).sum().item<std::int64_t>(),
              static_cast<std::int64_t>(std::llround(0.5 * static_cast<double>(free1[i]))))
        << i;
  }
  // Task 0's view did not change; the last task keeps every weight still free.
  const auto w0_after = pn.task_weights(s.ctx, 0);
  for (std::size_t i = 0; i < w0.size(); ++i) EXPECT_TRUE(torch::equal(w0_after[i], w0[i])) << i;
  s.ctx.task = 2;
  pn.before_task(s.ctx);
  pn.after_task(s.ctx);
  for (const auto& o : pn.owners()) EXPECT_TRUE(o.ne(0).all().item<bool>());
  // The state round-trips.
  PackNet copy(PackNet::Options{0.5, 0});
  copy.load_state(pn.state());
  for (std::size_t i = 0; i < pn.owners().size(); ++i) EXPECT_TRUE(torch::equal(copy.owners()[i], pn.owners()[i]));
  const auto a = pn.task_weights(s.ctx, 1), b = copy.task_weights(s.ctx, 1);
  for (std::size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i], b[i])) << i;
}

TEST(PackNet, PrunesTheConfiguredShareOfTheFreeWeightsByHandCount) {
  // MLP 6-8-3 (W1: 8·6 = 48 weights, W2: 3·8 = 24), prune = 0.3, four tasks. Kept by hand,
  // round(0.7 · free) per task; the last task keeps what is left:
  //   W1: 48 → 34 kept (14 free), 14 → 10 (4 free), 4 → 3 (1 free), last: 1
  //   W2: 24 → 17 (7 free),       7 → 5 (2 free),   2 → 1 (1 free), last: 1
  // and the biases (8 + 3) are task 0's.
  Small s;
  for (std::int64_t k = 2; k < 4; ++k) {
    s.tasks.push_back(s.tasks[1]);
    s.tasks.back().id = k;
  }
  PackNet pn(PackNet::Options{0.3, 0});
  const std::vector<std::vector<std::int64_t>> want = {{34, 10, 3, 1}, {8, 0, 0, 0}, {17, 5, 1, 1}, {3, 0, 0, 0}};
  const std::vector<std::vector<std::int64_t>> free_after = {{14, 4, 1, 0}, {0, 0, 0, 0}, {7, 2, 1, 0}, {0, 0, 0, 0}};
  for (std::int64_t k = 0; k < 4; ++k) {
    s.ctx.task = k;
    pn.before_task(s.ctx);
    {  // "training": new distinct values in the free weights
      torch::NoGradGuard g;
      for (std::size_t i = 0; i < s.ctx.params.size(); ++i)
        s.ctx.params[i].masked_scatter_(pn.owners()[i].eq(0), torch::randn({s.ctx.params[i].numel()}));
    }
    pn.after_task(s.ctx);
    for (std::size_t i = 0; i < 4; ++i) {
      EXPECT_EQ(pn.owners()[i].eq(k + 1).sum().item<std::int64_t>(), want[i][static_cast<std::size_t>(k)]) << i << " task " << k;
      EXPECT_EQ(pn.owners()[i].eq(0).sum().item<std::int64_t>(), free_after[i][static_cast<std::size_t>(k)]) << i << " task " << k;
    }
  }
}

TEST(PackNet, RefusesAClassIncrementalStreamAndBadOptions) {
  Small s;
  s.tasks[1].classes = {1, 2};
  PackNet pn;
  sl::testing::expect_error<sl::ConfigError>([&] { pn.before_task(s.ctx); }, "task identity");
  s.ctx.task_incremental = true;  // split-task: every sample's task is known
  pn.before_task(s.ctx);
  auto cfg = sl::Config::from_string("[strategy]\nname = \"packnet\"\nprune = 1.0\n", "bad.toml");
  auto sec = cfg.section("strategy");
  sl::testing::expect_error<sl::ConfigError>([&] { parse_strategy(sec); }, "strategy.prune");
}

namespace {
/// MLP 2-4-3-2 on 1×1×2 images, 20 samples per task in 4 batches of 5, for HAT.
struct Deep : RandomNet {
  Deep() : RandomNet({4, 3}, 2, {1, 1, 2}, 20, 11, 5) {}
};
double sig(double v) { return 1.0 / (1.0 + std::exp(-v)); }
}  // namespace

TEST(Hat, GatesActAsTheTasksOwnWeightsAndTheSlopeAnnealsWithinAnUpdate) {
  Deep d;
  Hat hat(Hat::Options{400, 0.75, 0.05, 6});
  hat.before_task(d.ctx);
  ASSERT_EQ(hat.embeddings().size(), 2u);
  ASSERT_EQ(hat.embeddings()[0].size(), 2u);
  {
    torch::NoGradGuard g;
    hat.embeddings()[1][0].copy_(torch::tensor({0.01f, -0.02f, 0.003f, 0.5f}));
    hat.embeddings()[1][1].copy_(torch::tensor({-0.004f, 0.002f, 1.0f}));
  }
  // Logits through task 1's weights against a hand forward: h = σ(s e) ⊙ ReLU(W h + b), s = s_max.
  const auto x = d.tasks[0].train.images.narrow(0, 0, 3);
  const auto z = d.model->forward(x, hat.task_weights(d.ctx, 1));
  const auto& p = d.ctx.params;
  const auto xa = x.reshape({3, 2}).to(torch::kFloat64);
  auto pd = [&](std::size_t i) { return p[i].detach().to(torch::kFloat64); };
  for (std::int64_t n = 0; n < 3; ++n) {
    std::vector<double> h0(4), h1(3);
    for (int i = 0; i < 4; ++i) {
      double v = pd(1)[i].item<double>();
      for (int j = 0; j < 2; ++j) v += pd(0)[i][j].item<double>() * xa[n][j].item<double>();
      h0[i] = std::max(v, 0.0) * sig(400 * hat.embeddings()[1][0][i].item<double>());
    }
    for (int i = 0; i < 3; ++i) {
      double v = pd(3)[i].item<double>();
      for (int j = 0; j < 4; ++j) v += pd(2)[i][j].item<double>() * h0[j];
      h1[i] = std::max(v, 0.0) * sig(400 * hat.embeddings()[1][1][i].item<double>());
    }
    for (int c = 0; c < 2; ++c) {
      double v = pd(5)[c].item<double>();
      for (int j = 0; j < 3; ++j) v += pd(4)[c][j].item<double>() * h1[j];
      EXPECT_NEAR(z[n][c].item<double>(), v, 1e-5) << n << " " << c;
    }
  }
  // s over an epoch of 4 batches: 1/s_max + (s_max − 1/s_max) b / 3; s_max outside an update.
  d.ctx.task = 1;
  EXPECT_DOUBLE_EQ(hat.slope(d.ctx), 400.0);
  hat.adapt_batch(d.ctx, {});
  for (std::int64_t it : {0, 1, 2, 3, 5}) {
    d.ctx.task_iteration = it;
    const double b = static_cast<double>(it % 4);
    EXPECT_NEAR(hat.slope(d.ctx), 1.0 / 400 + (400 - 1.0 / 400) * b / 3, 1e-12) << it;
  }
  hat.after_step(d.ctx, {});
  EXPECT_DOUBLE_EQ(hat.slope(d.ctx), 400.0);
}

TEST(Hat, ConditionsGradientsByEarlierTasksGatesAndCompensatesTheEmbeddings) {
  Deep d;
  Hat hat(Hat::Options{400, 0.75, 0.05, 6});
  hat.before_task(d.ctx);
  const std::vector<double> c0 = {0.0, 1.0, 0.25, 0.9}, c1 = {0.5, 0.0, 1.0};
  hat.cumulative() = {torch::tensor({0.0f, 1.0f, 0.25f, 0.9f}), torch::tensor({0.5f, 0.0f, 1.0f})};
  d.ctx.task = 1;
  for (auto& q : d.ctx.params) q.mutable_grad() = torch::ones_like(q);
  const std::vector<double> e = {0.01, -0.2, 0.001, 7.0};  // 400 e = 4, −80 (clipped to −50), 0.4, 2800 (clipped)
  {
    torch::NoGradGuard g;
    hat.embeddings()[1][0].copy_(torch::tensor({0.01f, -0.2f, 0.001f, 7.0f}));
  }
  hat.embeddings()[1][0].mutable_grad() = torch::ones({4});
  const auto before = hat.embeddings()[1][0].detach().clone().to(torch::kFloat64);
  hat.after_backward(d.ctx);
  const auto& p = d.ctx.params;
  for (int i = 0; i < 4; ++i) {
    for (int j = 0; j < 2; ++j) EXPECT_NEAR(p[0].grad()[i][j].item<double>(), 1 - c0[i], 1e-7) << i;
    EXPECT_NEAR(p[1].grad()[i].item<double>(), 1 - c0[i], 1e-7) << i;
  }
  for (int i = 0; i < 3; ++i) {
    for (int j = 0; j < 4; ++j) EXPECT_NEAR(p[2].grad()[i][j].item<double>(), 1 - std::min(c1[i], c0[j]), 1e-7) << i << j;
    EXPECT_NEAR(p[3].grad()[i].item<double>(), 1 - c1[i], 1e-7) << i;
  }
  for (int c = 0; c < 2; ++c) {
    for (int j = 0; j < 3; ++j) EXPECT_NEAR(p[4].grad()[c][j].item<double>(), 1 - c1[j], 1e-7);
    EXPECT_EQ(p[5].grad()[c].item<double>(), 0.0) << "the shared head's bias is task 0's";
  }
  // The embedding's SGD step: e − lr · s_max/s · (cosh(clip(s e)) + 1)/(cosh(e) + 1), s = s_max, then
  // clamped to ±6 (the fourth value starts outside and is clamped).
  for (int i = 0; i < 4; ++i) {
    const double ei = before[i].item<double>();
    const double comp = (std::cosh(std::clamp(400 * ei, -50.0, 50.0)) + 1) / (std::cosh(ei) + 1);
    const double want = std::clamp(ei - 0.05 * comp, -6.0, 6.0);
    EXPECT_NEAR(hat.embeddings()[1][0][i].item<double>(), want, 1e-5 * std::max(1.0, std::abs(want))) << i;
  }
  EXPECT_FALSE(hat.embeddings()[1][0].grad().defined());
  // The capacity regulariser: c Σ a (1 − a<t) / Σ (1 − a<t) with a = σ(s e) of task 1.
  const auto a0 = torch::sigmoid(400 * hat.embeddings()[1][0].detach().to(torch::kFloat64));
  const auto a1 = torch::sigmoid(400 * hat.embeddings()[1][1].detach().to(torch::kFloat64));
  double num = 0, den = 0;
  for (int i = 0; i < 4; ++i) num += a0[i].item<double>() * (1 - c0[i]), den += 1 - c0[i];
  for (int i = 0; i < 3; ++i) num += a1[i].item<double>() * (1 - c1[i]), den += 1 - c1[i];
  EXPECT_NEAR(hat.extra_loss(d.ctx, {}, {}).item<double>(), 0.75 * num / den, 1e-6);
  // After the task: a<t ← max(a<t, σ(s_max e)).
  hat.after_task(d.ctx);
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(hat.cumulative()[0][i].item<double>(), std::max(c0[i], a0[i].item<double>()), 1e-6);
}

TEST(Hat, RefusesConvolutionalModelsAndDataParallelRunsAndRoundTripsItsState) {
  Deep d;
  d.ctx.world_size = 2;
  sl::testing::expect_error<sl::ConfigError>([&] { Hat().before_task(d.ctx); }, "data-parallel");
  d.ctx.world_size = 1;
  Hat hat;
  hat.before_task(d.ctx);
  hat.after_task(d.ctx);
  Hat copy;
  copy.load_state(hat.state());
  copy.before_task(d.ctx);
  ASSERT_EQ(copy.embeddings().size(), 2u);
  for (std::size_t k = 0; k < 2; ++k)
    for (std::size_t l = 0; l < 2; ++l) EXPECT_TRUE(torch::equal(copy.embeddings()[k][l], hat.embeddings()[k][l]));
  for (std::size_t l = 0; l < 2; ++l) EXPECT_TRUE(torch::equal(copy.cumulative()[l], hat.cumulative()[l]));
  sl::models::ClassifierOptions o;
  o.kind = "cnn";
  o.channels = {2, 2};
  o.fc = 4;
  o.classes = 2;
  o.input = {1, 4, 4};
  sl::models::Classifier cnn(o);
  d.ctx.model = cnn.get();
  d.ctx.params = cnn->weights();
  Hat h2;
  sl::testing::expect_error<sl::ConfigError>([&] { h2.before_task(d.ctx); }, "model.kind");
}
