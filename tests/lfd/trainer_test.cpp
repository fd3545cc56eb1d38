// Tests of the LfD trainer and its building blocks (hnet_training.h, trainer.h).
#include <cmath>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/optim/adam.h>

#include "stablelearn/core/config.h"
#include "stablelearn/core/error.h"
#include "stablelearn/core/fs.h"
#include "stablelearn/lfd/hnet_training.h"
#include "stablelearn/lfd/trainer.h"
#include "stablelearn/models/snode_rollout.h"
#include "lfd_testing.h"
#include "testing.h"

namespace sl = stablelearn;
using namespace sl::lfd;
using nlohmann::json;

TEST(HnetAdam, MatchesLibtorchAdamOverSeveralSteps) {
  // libtorch's own Adam is the independent reference for the update rule.
  auto p_ours = torch::tensor({0.5, -1.0, 2.0}, torch::kFloat64);
  auto p_ref = p_ours.clone().requires_grad_(true);
  Adam ours({p_ours}, 0.01);
  torch::optim::Adam ref({p_ref}, torch::optim::AdamOptions(0.01));
  for (int k = 0; k < 5; ++k) {
    const auto g = torch::tensor({0.3 * k - 0.2, 1.0 / (k + 1), -0.7}, torch::kFloat64);
    ours.step({g});
    p_ref.mutable_grad() = g.clone();
    ref.step();
  }
  EXPECT_TRUE(torch::allclose(p_ours, p_ref.detach(), 1e-14, 1e-15)) << p_ours << p_ref;
}

TEST(HnetAdam, LookaheadIsTheHandComputedStepAndLeavesTheStateAlone) {
  // One step with g1 = 0.2, then a look-ahead with g2 = -0.4 (lr 0.1, betas 0.9/0.999, eps 1e-8):
  // m = 0.1·0.2 = 0.02, v = 0.001·0.04 = 4e-5;  s = 2:
  // m' = 0.9·0.02 + 0.1·(−0.4) = −0.022;  v' = 0.999·4e-5 + 0.001·0.16 = 1.9996e-4;
  // Δ = −0.1·sqrt(1 − 0.999²)/(1 − 0.9²) · m'/(sqrt(v') + 1e-8).
  auto p = torch::tensor({1.0}, torch::kFloat64);
  Adam opt({p}, 0.1);
  opt.step({torch::tensor({0.2}, torch::kFloat64)});
  const auto p_after = p.clone();
  const auto m_before = opt.exp_avg()[0].clone(), v_before = opt.exp_avg_sq()[0].clone();
  const auto d = opt.lookahead({torch::tensor({-0.4}, torch::kFloat64)});
  const double expected = -0.1 * std::sqrt(1 - 0.999 * 0.999) / (1 - 0.81) * (-0.022) / (std::sqrt(1.9996e-4) + 1e-8);
  EXPECT_NEAR(d[0].item<double>(), expected, 1e-15);
  EXPECT_TRUE(torch::equal(p, p_after));
  EXPECT_TRUE(torch::equal(opt.exp_avg()[0], m_before));
  EXPECT_TRUE(torch::equal(opt.exp_avg_sq()[0], v_before));
  EXPECT_EQ(opt.steps(), 1);
}

TEST(HnetAdam, OnePassFloatLookaheadEqualsTheTensorChainBitForBit) {
  // Random float32 state after a few steps, gradients of mixed magnitude (incl. zeros), sizes with
  // every remainder modulo the vector widths, 1 and 2 threads (libtorch splits large tensors).
  for (const int threads : {1, 2}) {
    at::set_num_threads(threads);
    for (const std::int64_t n : {1, 7, 8, 15, 17, 31, 33, 64, 1000, 32771, 100003, 2000003}) {
      auto gen = at::detail::createCPUGenerator(static_cast<std::uint64_t>(n));
      auto p = torch::randn({n}, gen);
      Adam opt({p}, 1e-4);
      for (int s = 0; s < 3; ++s) opt.step({torch::randn({n}, gen).mul_(std::pow(10.0, -2 * s))});
      auto g = torch::randn({n}, gen) * torch::exp(torch::randn({n}, gen) * 4);
      g.index_put_({torch::randint(0, n, {std::max<std::int64_t>(1, n / 10)}, gen)}, 0.0f);
      const auto fused = opt.lookahead_impl({g}, true)[0];
      const auto chain = opt.lookahead_impl({g}, false)[0];
      ASSERT_TRUE(torch::equal(fused, chain)) << "n = " << n << ", threads = " << threads << ", max |diff| "
                                              << (fused - chain).abs().max().item<float>();
    }
  }
  at::set_num_threads(sl::testing::test_threads());
}

TEST(HnetAdam, OnePassFloatStepEqualsTheTensorChainBitForBit) {
  for (const int threads : {1, 2}) {
    at::set_num_threads(threads);
    for (const std::int64_t n : {1, 7, 8, 15, 17, 31, 33, 64, 1000, 32771, 100003, 2000003}) {
      auto gen = at::detail::createCPUGenerator(static_cast<std::uint64_t>(n) + 7);
      auto p1 = torch::randn({n}, gen);
      auto p2 = p1.clone();
      Adam fused({p1}, 1e-3), chain({p2}, 1e-3);
      for (int s = 0; s < 4; ++s) {
        auto g = torch::randn({n}, gen) * torch::exp(torch::randn({n}, gen) * 4);
        if (s == 2) g.index_put_({torch::randint(0, n, {std::max<std::int64_t>(1, n / 10)}, gen)}, 0.0f);
        fused.step_impl({g}, true);
        chain.step_impl({g}, false);
        ASSERT_TRUE(torch::equal(p1, p2)) << "n = " << n << ", threads = " << threads << ", step " << s
                                          << ", max |diff| " << (p1 - p2).abs().max().item<float>();
        ASSERT_TRUE(torch::equal(fused.exp_avg()[0], chain.exp_avg()[0])) << "m, n = " << n;
        ASSERT_TRUE(torch::equal(fused.exp_avg_sq()[0], chain.exp_avg_sq()[0])) << "v, n = " << n;
      }
    }
  }
  at::set_num_threads(sl::testing::test_threads());
}

TEST(HnetRegularizer, SamplingCoversAllPastTasksOrDrawsUniformly) {
  auto gen = at::detail::createCPUGenerator(3);
  EXPECT_TRUE(sample_regularized_tasks(0, 1, gen).empty());
  EXPECT_EQ(sample_regularized_tasks(3, 0, gen), (std::vector<std::int64_t>{0, 1, 2}));
  EXPECT_EQ(sample_regularized_tasks(3, 5, gen), (std::vector<std::int64_t>{0, 1, 2}));
  // R = 1 over 4 past tasks: 8000 draws, expected 2000 each; chi-square with 3 dof < 16.3 (p = 0.001).
  std::vector<int> counts(4, 0);
  for (int k = 0; k < 8000; ++k) {
    const auto s = sample_regularized_tasks(4, 1, gen);
    ASSERT_EQ(s.size(), 1u);
    ++counts[static_cast<std::size_t>(s[0])];
  }
  double chi2 = 0;
  for (int c : counts) chi2 += (c - 2000.0) * (c - 2000.0) / 2000.0;
  EXPECT_LT(chi2, 16.3);
  // R = 2: distinct indices.
  for (int k = 0; k < 100; ++k) {
    const auto s = sample_regularized_tasks(5, 2, gen);
    ASSERT_EQ(s.size(), 2u);
    EXPECT_NE(s[0], s[1]);
  }
  auto g1 = at::detail::createCPUGenerator(9), g2 = at::detail::createCPUGenerator(9);
  for (int k = 0; k < 20; ++k) EXPECT_EQ(sample_regularized_tasks(6, 1, g1), sample_regularized_tasks(6, 1, g2));
}

TEST(HnetRegularizer, IsTheMeanOfSquaredOutputDifferences) {
  // targets (1,2) and (0,0); generated (1,0) and (3,4): (0+4 + 9+16) / 2 = 14.5 over both tasks.
  const std::vector<torch::Tensor> targets = {torch::tensor({1.0, 2.0}), torch::tensor({0.0, 0.0})};
  const std::vector<torch::Tensor> generated = {torch::tensor({1.0, 0.0}), torch::tensor({3.0, 4.0})};
  auto gen = [&](std::int64_t j) { return generated[static_cast<std::size_t>(j)]; };
  EXPECT_DOUBLE_EQ(output_regularizer(targets, {0, 1}, gen).item<double>(), 14.5);
  EXPECT_DOUBLE_EQ(output_regularizer(targets, {1}, gen).item<double>(), 25.0);
}

TEST(HnetRegularizer, LookaheadGradientIsAddedAtTheShiftedPointAndThetaIsRestoredBitForBit) {
  // θ = (a [2], b [2, 1]), Reg(θ) = Σ a² + 3 Σ b³ so ∇Reg = (2a, 9b²); evaluated at θ + Δθ.
  auto a = torch::tensor({0.5, -1.25}, torch::kFloat64).requires_grad_(true);
  auto b = torch::tensor({{2.0}, {-0.75}}, torch::kFloat64).requires_grad_(true);
  const std::vector<torch::Tensor> theta = {a, b};
  const auto a0 = a.detach().clone(), b0 = b.detach().clone();
  const auto* a_data = a.data_ptr<double>();
  const std::vector<torch::Tensor> delta = {torch::tensor({0.1, 0.2}, torch::kFloat64),
                                            torch::tensor({{-0.5}, {0.25}}, torch::kFloat64)};
  std::vector<torch::Tensor> grads = {torch::tensor({1.0, 2.0}, torch::kFloat64),
                                      torch::tensor({{3.0}, {4.0}}, torch::kFloat64)};
  const double scale = 0.5;
  auto reg = [&] { return a.pow(2).sum() + 3 * b.pow(3).sum(); };
  const double value = add_lookahead_regularizer_grad(theta, {delta[0].clone(), delta[1].clone()}, scale, reg, grads);
  // By hand: a' = (0.6, -1.05), b' = (1.5, -0.5): Reg = 0.36 + 1.1025 + 3 (3.375 − 0.125) = 11.2125.
  EXPECT_NEAR(value, 11.2125, 1e-12);
  EXPECT_TRUE(torch::allclose(grads[0], torch::tensor({1.0 + 0.5 * 1.2, 2.0 + 0.5 * -2.1}, torch::kFloat64), 0, 1e-12));
  EXPECT_TRUE(torch::allclose(grads[1], torch::tensor({{3.0 + 0.5 * 9 * 2.25}, {4.0 + 0.5 * 9 * 0.25}}, torch::kFloat64), 0,
                              1e-12));
  EXPECT_TRUE(torch::equal(a.detach(), a0));
  EXPECT_TRUE(torch::equal(b.detach(), b0));
  EXPECT_EQ(a.data_ptr<double>(), a_data);  // the original storage, not a copy
  EXPECT_FALSE(a.grad().defined());
  EXPECT_FALSE(b.grad().defined());
  // A failing regulariser leaves θ as it was.
  std::vector<torch::Tensor> g2 = {torch::zeros({2}, torch::kFloat64), torch::zeros({2, 1}, torch::kFloat64)};
  EXPECT_THROW(add_lookahead_regularizer_grad(theta, {delta[0].clone(), delta[1].clone()}, scale,
                                              [&]() -> torch::Tensor { throw sl::DataError("boom"); }, g2),
               sl::DataError);
  EXPECT_TRUE(torch::equal(a.detach(), a0));
  EXPECT_TRUE(torch::equal(b.detach(), b0));
  EXPECT_FALSE(a.grad().defined());
}

TEST(HnetBestCopy, TiesGoToTheLaterIteration) {
  BestTracker b;
  EXPECT_TRUE(b.offer(0, 3.0));
  EXPECT_FALSE(b.offer(1, 4.0));
  EXPECT_TRUE(b.offer(2, 2.0));
  EXPECT_TRUE(b.offer(3, 2.0));
  EXPECT_EQ(b.best_iteration, 3);
  EXPECT_FALSE(b.offer(4, std::nan("")));
}

TEST(HnetEvaluation, WindowedRolloutRepeatsTheStateAtEveryWindowBoundary) {
  // ẋ = −x with Euler on a uniform grid h: inside a window x_{k+1} = (1−h) x_k; the next window
  // restarts from the last state at its own first time, so sample k holds x0 (1−h)^(k − ⌊k/20⌋).
  const double h = 0.01;
  const auto t = torch::arange(60, torch::kFloat64) * h;
  const auto x0 = torch::tensor({{2.0}}, torch::kFloat64);
  const auto y = windowed_rollout([](const torch::Tensor&, const torch::Tensor& x) { return -x; }, x0, t, 20);
  ASSERT_EQ(y.sizes().vec(), (std::vector<std::int64_t>{1, 60, 1}));
  for (int k = 0; k < 60; ++k) EXPECT_NEAR(y[0][k][0].item<double>(), 2.0 * std::pow(1 - h, k - k / 20), 1e-12) << k;
}

TEST(LfdConfigTest, UnknownKeysAndBadTypesNameTheKey) {
  auto bad = sl::Config::from_string("[train]\niterations = 10\nbogus = 1\n", "bad.toml");
  try {
    LfdConfig::from_config(bad);
    FAIL();
  } catch (const sl::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("train.bogus"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("iterations"), std::string::npos) << e.what();
  }
  auto typed = sl::Config::from_string("[train]\niterations = \"many\"\n", "typed.toml");
  try {
    LfdConfig::from_config(typed);
    FAIL();
  } catch (const sl::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("train.iterations"), std::string::npos) << e.what();
  }
  EXPECT_THROW(LfdConfig::from_config(sl::Config::from_string("[trian]\n", "x")), sl::ConfigError);
  EXPECT_THROW(LfdConfig::from_config(sl::Config::from_string("[model]\ntarget = \"mlp\"\n", "x")), sl::ConfigError);
  EXPECT_THROW(sl::Config::from_string("[train\n", "syntax.toml"), sl::ConfigError);
}

TEST(LfdConfigTest, OverridesKeepTheirTypesAndTheResolvedConfigRoundTrips) {
  auto cfg = sl::Config::from_string("[train]\niterations = 10\n", "x");
  cfg.set("train.iterations=25");
  cfg.set("train.lr=0.5");
  cfg.set("model.hnet_hidden=[10, 20]");
  cfg.set("data.dataset=helloworld");  // bare word -> string
  const auto c = LfdConfig::from_config(cfg);
  EXPECT_EQ(c.iterations, 25);
  EXPECT_DOUBLE_EQ(c.lr, 0.5);
  EXPECT_EQ(c.hnet_hidden, (std::vector<std::int64_t>{10, 20}));
  EXPECT_EQ(c.dataset, "helloworld");
  const auto back = LfdConfig::from_config(sl::Config::from_string(c.to_config().to_string(), "resolved"));
  EXPECT_EQ(back.to_config().to_string(), c.to_config().to_string());
  EXPECT_EQ(back.iterations, 25);
  EXPECT_THROW(cfg.set("iterations=3"), sl::ConfigError);
}

TEST(LfdParams, CountsMatchSpecTable) {
  // shared/specs/clfd-snode.md §2.6 (26 LASA tasks, te = ce = 256, hnet 200,200,200, C = 8192).
  struct Row {
    std::string target, hnet;
    std::int64_t h;
    std::int64_t P, total;
  };
  for (const auto& r : {Row{"snode", "hn", 100, 31706, 6511362}, Row{"snode", "chn", 1000, 2018906, 1899480},
                        Row{"node", "hn", 100, 20802, 4319658}, Row{"node", "chn", 1000, 2008002, 1899224}}) {
    LfdConfig c;
    c.root = sl::testing::project_data().string();
    c.target = r.target;
    c.hnet = r.hnet;
    c.h = r.h;
    c.tnet_hidden = {r.h, r.h, r.h};
    const auto p = count_parameters(c);
    EXPECT_EQ(p.tasks, 26);
    EXPECT_EQ(p.target, r.P) << r.target << "/" << r.hnet;
    EXPECT_EQ(p.hypernetwork, r.total) << r.target << "/" << r.hnet;
  }
}

namespace {
LfdConfig tiny(std::int64_t tasks, std::int64_t iterations, double beta) {
  return sl::testing::tiny_lfd_config(tasks, iterations, beta);
}
}  // namespace

TEST(LfdTrainerTest, WritesTheRunFilesAndResumesToTheSameNumbers) {
  const auto dir = sl::testing::temp_dir("lfd_train");
  const auto cfg = tiny(3, 15, 0.005);
  LfdTrainer full(cfg, dir / "full");
  full.run(false);
  for (const char* f : {"config.toml", "summary.json", "eval_results.json", "metrics.jsonl", "checkpoint.json",
                        "checkpoint_task2.npz"})
    EXPECT_TRUE(std::filesystem::exists(dir / "full" / f)) << f;
  const auto summary = json::parse(sl::read_file_text(dir / "full/summary.json"));
  EXPECT_EQ(summary["completed_tasks"], 3);
  EXPECT_EQ(summary["per_task_train_seconds"].size(), 3u);
  const auto evals = json::parse(sl::read_file_text(dir / "full/eval_results.json"));
  EXPECT_EQ(evals["data"]["metric_errors"]["train_task_2"]["eval_task_0"]["dtw"].size(), 7u);

  // Stop after two tasks (as a killed run), then resume the third: same evaluations as the
  // uninterrupted run.
  LfdTrainer first_two(cfg, dir / "part");
  first_two.run(false, {}, /*stop_after=*/2);
  EXPECT_FALSE(std::filesystem::exists(dir / "part/checkpoint_task2.npz"));
  LfdTrainer resumed(cfg, dir / "part");
  resumed.run(true);
  ASSERT_EQ(resumed.evaluations().size(), 3u);
  for (std::size_t j = 0; j < 3; ++j)
    EXPECT_EQ(resumed.evaluations()[2][j].dtw.per_demo, full.evaluations()[2][j].dtw.per_demo) << j;
  EXPECT_EQ(resumed.evaluations()[1][0].dtw.per_demo, full.evaluations()[1][0].dtw.per_demo);
  // Resuming with another configuration is refused.
  auto other = cfg;
  other.beta = 0.5;
  LfdTrainer mismatch(other, dir / "part");
  EXPECT_THROW(mismatch.run(true), sl::ConfigError);
  // A second fresh run into a used directory is refused.
  LfdTrainer again(cfg, dir / "full");
  EXPECT_THROW(again.run(false), sl::UsageError);
  std::filesystem::remove_all(dir);
}

TEST(LfdTrainerTest, RegularisedHypernetworkForgetsLessThanFineTuning) {
  // Two LASA shapes; after learning the second, the first task's DTW error should stay near its
  // just-learned value with the output regulariser (beta > 0) and grow without it (beta = 0).
  const auto dir = sl::testing::temp_dir("lfd_forget");
  auto cfg = tiny(2, 300, 0.005);
  cfg.h = 32;
  cfg.hp = 16;
  cfg.hnet_hidden = {32};
  LfdTrainer reg(cfg, dir / "reg");
  reg.run(false);
  cfg.beta = 0;
  LfdTrainer ft(cfg, dir / "ft");
  ft.run(false);
  const auto& r = reg.evaluations();
  const auto& f = ft.evaluations();
  // Task 0 is trained identically in both runs (regularisation starts at task 1).
  EXPECT_EQ(r[0][0].dtw.per_demo, f[0][0].dtw.per_demo);
  const double just_learned = r[0][0].dtw.median;
  const double kept = r[1][0].dtw.median, forgot = f[1][0].dtw.median;
  std::cout << "task-0 DTW median: just learned " << just_learned << ", after task 1 with regulariser " << kept
            << ", fine-tuning " << forgot << "\n";
  EXPECT_LT(kept, forgot);
  EXPECT_LT(kept, 1.5 * just_learned);
  std::filesystem::remove_all(dir);
}

TEST(LfdTrainerTest, FusedRolloutTrainsLikeTheTensorPath) {
  // train.fused_rollout = true (the default) and false start from the same weights and windows:
  // the first losses agree to float rounding, and a few Adam steps later they still agree closely
  // (Adam's normalised steps let rounding differences grow slowly), for the hypernetwork and for a
  // conditioned baseline (whose embedding enters f̂ as the conditioning vector). Which path ran is
  // read from the fused rollout's call counter: one fused window per iteration with the switch on,
  // none with it off (whether the two paths round differently depends on the CPU's kernels).
  const auto dir = sl::testing::temp_dir("lfd_fused");
  for (const std::string method : {"hnet", "mas"}) {
    std::vector<std::vector<double>> losses;
    for (const bool fused : {true, false}) {
      auto cfg = tiny(1, 5, 0.005);
      cfg.method = method;
      cfg.log_every = 1;
      cfg.evaluate = false;
      cfg.fused_rollout = fused;
      const auto run = dir / (method + (fused ? "_fused" : "_tensor"));
      const auto calls_before = sl::models::functional::snode_euler_rollout_calls();
      LfdTrainer(cfg, run).run(false);
      const auto calls = sl::models::functional::snode_euler_rollout_calls() - calls_before;
      EXPECT_EQ(calls, fused ? 5u : 0u) << method << (fused ? ": one fused rollout per iteration's window"
                                                              : ": the tensor path alone ran");
      std::vector<double> l;
      std::ifstream in(run / "metrics.jsonl");
      for (std::string line; std::getline(in, line);) {
        const auto row = json::parse(line);
        if (row.contains("loss") && row.contains("iteration")) l.push_back(row["loss"].get<double>());
      }
      ASSERT_EQ(l.size(), 5u) << method;
      losses.push_back(l);
    }
    EXPECT_NEAR(losses[0][0], losses[1][0], 1e-5 * losses[1][0]) << method;
    for (std::size_t k = 1; k < 5; ++k) EXPECT_NEAR(losses[0][k], losses[1][k], 1e-3 * losses[1][k]) << method << " " << k;
    EXPECT_NE(losses[1][0], losses[1][4]) << method << ": training moved";
  }
  std::filesystem::remove_all(dir);
}

TEST(LfdConfigTest, EveryShippedConfigParses) {
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator(sl::testing::source_dir() / "configs")) {
    if (e.path().extension() != ".toml") continue;
    SCOPED_TRACE(e.path().string());
    const auto c = LfdConfig::from_config(sl::Config::from_file(e.path()));
    EXPECT_GE(c.iterations, 1);
    ++n;
  }
  // 6 data sets x {hn, chn} x ({node, snode} x {full, stochastic} + autonomous snode x {full,
  // stochastic}) + LASA 2D baselines {sg, ft, rep, si, mas} x {node, snode} + demo + demo_autonomous
  // + demo_discrete + demo_stable.
  EXPECT_EQ(n, 6 * 2 * 6 + 10 + 4);
}

TEST(LfdRunTest, LoadsTheLearnedSkillsAndChecksTheirStability) {
  const auto dir = sl::testing::temp_dir("lfd_run");
  const auto cfg = tiny(2, 20, 0.005);
  LfdTrainer trainer(cfg, dir);
  trainer.run(false);
  const LfdRun run(dir);
  EXPECT_EQ(run.completed_tasks(), 2);
  EXPECT_THROW(run.weights(2), sl::UsageError);
  // The loaded skill reproduces the trainer's evaluation: the windowed rollout of task 0 from its
  // demonstrations' starts gives the same DTW errors as stored after the last task.
  const auto d = run.task(0);
  torch::NoGradGuard no_grad;
  const auto traj = windowed_rollout(run.field(0), d.x.select(1, 0).to(torch::kFloat32), d.t.to(torch::kFloat32), cfg.tsub)
                        .to(torch::kFloat64);
  const auto pred = (traj + d.goal.unsqueeze(1)) * d.std + d.mean;
  const auto raw = d.raw.contiguous();
  const auto p = pred.contiguous();
  const auto dtw = compute_metric(TrajectoryMetric::Dtw, {raw.data_ptr<double>(), 7, 1000, 2}, {p.data_ptr<double>(), 7, 1000, 2});
  ASSERT_EQ(trainer.evaluations().size(), 2u);
  for (std::size_t m = 0; m < 7; ++m) EXPECT_NEAR(dtw.per_demo[m], trainer.evaluations()[1][0].dtw.per_demo[m], 1e-6);

  StabilityOptions o;
  o.starts = 10;
  o.horizon_factor = 0.5;
  const auto r = check_stability(run, 0, o);
  EXPECT_EQ(r.starts, 10);
  EXPECT_EQ(r.steps, 500);
  EXPECT_EQ(r.final_distances.size(), 10u);
  EXPECT_GE(r.converged_fraction, 0.0);
  EXPECT_LE(r.converged_fraction, 1.0);
  EXPECT_GE(r.max_final_distance, r.median_final_distance);
  std::filesystem::remove_all(dir);
  EXPECT_THROW(LfdRun(dir / "nothing"), sl::IoError);
}

TEST(LfdTrainerTest, EveryDataSetTrainsAndEvaluates) {
  // One tiny task of each data set through training and the full evaluation protocol; RoboTasks9
  // adds the quaternion error (positions and orientations restored from the tangent space).
  const auto dir = sl::testing::temp_dir("lfd_all");
  for (const char* ds : {"lasa8d", "helloworld", "robottasks9"}) {
    for (const char* target : {"snode", "node"}) {
      SCOPED_TRACE(std::string(ds) + "/" + target);
      auto c = tiny(1, 5, 0.005);
      c.dataset = ds;
      c.target = target;
      c.tnet_hidden = {8, 8};
      c.tangent_vec_scale = 5.0;
      LfdTrainer t(c, dir / (std::string(ds) + target));
      t.run(false);
      ASSERT_EQ(t.evaluations().size(), 1u);
      const auto& cell = t.evaluations()[0][0];
      EXPECT_EQ(cell.dtw.per_demo.size(), std::string(ds) == "helloworld" ? 8u : std::string(ds) == "robottasks9" ? 9u : 7u);
      EXPECT_TRUE(std::isfinite(cell.dtw.median));
      EXPECT_EQ(cell.has_quat, std::string(ds) == "robottasks9");
      if (cell.has_quat) {
        // Half-angle errors lie in [0, pi].
        for (double q : cell.quat.per_demo) {
          EXPECT_GE(q, 0.0);
          EXPECT_LE(q, M_PI);
        }
      }
    }
  }
  std::filesystem::remove_all(dir);
}

TEST(LfdStabilityTest, AutonomousSNodeSkillsConvergeEvenWhenUndertrained) {
  // The guarantee does not depend on training: V(x) >= eps‖x‖², V(0) = 0 and V̇ <= −αV hold for
  // any generated weights. Ten iterations per task on two LASA shapes, then rollouts from the 7
  // demonstration starts and 33 random starts in the 1.5x box for the automatic horizon (the time
  // after which the Lyapunov bound guarantees half the tolerance): every start ends within the
  // tolerance (2 % of the demonstrations' extent) of the goal.
  const auto dir = sl::testing::temp_dir("lfd_converge");
  auto cfg = tiny(2, 10, 0.005);
  cfg.explicit_time = false;
  cfg.eps = 1e-3;
  LfdTrainer trainer(cfg, dir);
  trainer.run(false);
  const LfdRun run(dir);
  for (std::int64_t task = 0; task < 2; ++task) {
    SCOPED_TRACE(task);
    StabilityOptions o;
    o.starts = 40;
    const auto r = check_stability(run, task, o);
    EXPECT_EQ(r.starts, 40);
    EXPECT_GT(r.max_initial_lyapunov, 0.0);
    // Independent recomputation of the bound's horizon from V at the starts.
    const auto d = run.task(task);
    EXPECT_NEAR(r.tolerance, 0.02 * (std::get<0>(d.raw.reshape({-1, 2}).max(0)) - std::get<0>(d.raw.reshape({-1, 2}).min(0)))
                                        .max()
                                        .item<double>(),
                1e-9);
    const double tol_model = 0.5 * r.tolerance / d.std.max().item<double>();
    // The default solver for an autonomous sNODE is the certified one: rate κα instead of α.
    EXPECT_EQ(r.method, "certified");
    EXPECT_NEAR(r.bound_horizon_seconds,
                std::log(r.max_initial_lyapunov / (cfg.eps * tol_model * tol_model)) / (o.kappa * cfg.alpha), 1e-9);
    EXPECT_EQ(r.uncertified_substeps, 0);
    EXPECT_GE(r.substeps, r.starts * r.steps);
    const double dt = (d.t[1] - d.t[0]).item<double>();
    if (r.certified_ball_seconds > 0) {
      // Stopped early: every start had V <= ε (tol / (2 max std))², which (V never rises under
      // certified steps, V >= ε‖x‖²) keeps it within half the tolerance.
      EXPECT_NEAR(r.horizon_seconds, r.certified_ball_seconds, 1e-9);
      EXPECT_LE(r.horizon_seconds, r.bound_horizon_seconds + dt);
      EXPECT_LE(r.max_final_distance, 0.5 * r.tolerance);
    } else {
      EXPECT_GE(r.horizon_seconds + 2 * dt, r.bound_horizon_seconds);
    }
    EXPECT_EQ(r.converged_fraction, 1.0) << "max final distance " << r.max_final_distance << " > tolerance "
                                         << r.tolerance;
    EXPECT_LE(r.max_final_distance, r.tolerance);
  }
  std::filesystem::remove_all(dir);
}

TEST(LfdConfigTest, MipIsOffByDefaultParsesAndNeedsTheHypernetwork) {
  EXPECT_FALSE(LfdConfig{}.mip);
  auto c = LfdConfig::from_config(sl::Config::from_string("[model]\nmip = true\n", "x"));
  EXPECT_TRUE(c.mip);
  c.cross_check();
  c.method = "sg";
  sl::testing::expect_error<sl::ConfigError>([&] { c.cross_check(); }, "model.mip = true applies to the hypernetwork");
  sl::testing::expect_error<sl::ConfigError>(
      [] { LfdConfig::from_config(sl::Config::from_string("[model]\nmip = 2\n", "x")); }, "model.mip");
}

TEST(LfdTrainerTest, MipHypernetworkLearnsAndDiffersFromTheDefault) {
  // CHN -> sNODE with model.mip = true: the training loss falls; the default run of the same seed is
  // another network (θ₀ is a parameter only with mip), so its losses differ.
  const auto dir = sl::testing::temp_dir("lfd_mip");
  auto cfg = tiny(1, 60, 0);
  cfg.evaluate = false;
  cfg.mip = true;
  std::vector<double> mip, def;
  LfdTrainer(cfg, dir / "mip").run(false, [&](const TrainProgress& p) { mip.push_back(p.loss); });
  cfg.mip = false;
  LfdTrainer(cfg, dir / "def").run(false, [&](const TrainProgress& p) { def.push_back(p.loss); });
  ASSERT_EQ(mip.size(), 60u);
  const double first = (mip[0] + mip[1] + mip[2]) / 3, last = (mip[57] + mip[58] + mip[59]) / 3;
  EXPECT_LT(last, 0.8 * first) << first << " -> " << last;
  EXPECT_NE(mip[0], def[0]);
  std::filesystem::remove_all(dir);
}
