// model.discrete_step: the discrete-time sNODE map Φ (models/snode_discrete.h) as the one map of
// training, evaluation and `lfd stability` (docs/lfd.md §7).
#include <algorithm>
#include <cmath>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "stablelearn/core/config.h"
#include "stablelearn/core/error.h"
#include "stablelearn/core/fs.h"
#include "stablelearn/lfd/hnet_training.h"
#include "stablelearn/lfd/trainer.h"
#include "stablelearn/lfd/trajectory_metrics.h"
#include "stablelearn/models/snode_discrete.h"
#include "stablelearn/models/snode_rollout.h"
#include "lfd_testing.h"
#include "testing.h"

namespace sl = stablelearn;
using namespace sl::lfd;
using nlohmann::json;

namespace {

LfdConfig from_text(const std::string& text) { return LfdConfig::from_config(sl::Config::from_string(text, "t.toml")); }

/// (first, last) logged training loss of `task` in RUN/metrics.jsonl.
std::pair<double, double> first_last_loss(const std::filesystem::path& run, std::int64_t task) {
  std::vector<double> l;
  for (const auto& line : sl::read_lines(run / "metrics.jsonl")) {
    const auto row = json::parse(line);
    if (row.contains("loss") && row.contains("iteration") && row["task"] == task) l.push_back(row["loss"].get<double>());
  }
  return {l.front(), l.back()};
}

/// The autonomous sNODE options of a tiny config (2-D LASA), to recompute its maps by hand.
sl::models::SNodeOptions tiny_snode(const LfdConfig& cfg) {
  return sl::models::SNodeOptions(2).hidden(cfg.h).fhat_layers(cfg.fhat_layers).icnn_hidden(cfg.hp).eps(cfg.eps)
      .explicit_time(false);
}

/// The evaluation protocol recomputed by hand: `rollout` windowed (tsub) from the demonstrations'
/// starts over their grid, de-normalised, DTW against each demonstration.
MetricSummary hand_dtw(const LfdRun::TaskData& d, const GridRollout& rollout, std::int64_t tsub) {
  const auto traj =
      windowed_rollout(rollout, d.x.select(1, 0).to(torch::kFloat32), d.t.to(torch::kFloat32), tsub).to(torch::kFloat64);
  const auto pred = ((traj + d.goal.unsqueeze(1)) * d.std + d.mean).contiguous();
  const auto ref = d.raw.narrow(1, 0, pred.size(1)).contiguous();
  return compute_metric(TrajectoryMetric::Dtw, {ref.data_ptr<double>(), ref.size(0), ref.size(1), 2},
                        {pred.data_ptr<double>(), pred.size(0), pred.size(1), 2});
}

}  // namespace

TEST(LfdDiscreteConfig, KeysParseValidateAndAreWrittenToTheResolvedConfig) {
  const auto def = from_text("");
  EXPECT_FALSE(def.discrete_step);
  EXPECT_EQ(def.discrete_kappa, 0.5);
  const auto resolved = def.to_config().to_string();
  EXPECT_NE(resolved.find("discrete_step = false"), std::string::npos) << resolved;
  EXPECT_NE(resolved.find("discrete_kappa = 0.5"), std::string::npos) << resolved;
  const auto on = from_text("[model]\nexplicit_time = false\ndiscrete_step = true\ndiscrete_kappa = 0.8\n");
  EXPECT_TRUE(on.discrete_step);
  EXPECT_EQ(on.discrete_kappa, 0.8);
  const auto back = LfdConfig::from_config(sl::Config::from_string(on.to_config().to_string(), "resolved"));
  EXPECT_TRUE(back.discrete_step);
  EXPECT_EQ(back.to_config().to_string(), on.to_config().to_string());
  // The clock input (the default explicit_time = true) and the NODE target have no Lyapunov
  // function of the executed map.
  sl::testing::expect_error<sl::ConfigError>([] { from_text("[model]\ndiscrete_step = true\n"); }, "model.discrete_step");
  sl::testing::expect_error<sl::ConfigError>(
      [] { from_text("[model]\ntarget = \"node\"\nexplicit_time = false\ndiscrete_step = true\n"); }, "model.discrete_step");
  sl::testing::expect_error<sl::ConfigError>(
      [] { from_text("[model]\nexplicit_time = false\ndiscrete_step = true\ndiscrete_kappa = 0\n"); }, "model.discrete_kappa");
  sl::testing::expect_error<sl::ConfigError>([] { from_text("[model]\ndiscrete_kappa = 1.5\n"); }, "model.discrete_kappa");
}

TEST(LfdDiscreteConfig, RunsWrittenBeforeTheKeysExistedStillResume) {
  // A run directory whose config.toml lacks the two keys (as every run before them) resumes, and
  // its config.toml is rewritten in the current resolved form.
  const auto dir = sl::testing::temp_dir("lfd_discrete_resume");
  const auto cfg = sl::testing::tiny_lfd_config(2, 3, 0.005);
  LfdTrainer(cfg, dir).run(false, {}, /*stop_after=*/1);
  std::string old;
  for (const auto& line : sl::read_lines(dir / "config.toml"))
    if (line.rfind("discrete_", 0) != 0) old += line + "\n";
  ASSERT_EQ(old.find("discrete_"), std::string::npos);
  sl::write_file_atomic(dir / "config.toml", old);
  EXPECT_NO_THROW(LfdRun{dir});
  LfdTrainer resumed(cfg, dir);
  EXPECT_NO_THROW(resumed.run(true));
  EXPECT_EQ(resumed.evaluations().size(), 2u);
  EXPECT_NE(sl::read_file_text(dir / "config.toml").find("discrete_step = false"), std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST(LfdDiscreteTraining, TrainsEvaluatesAndConvergesWithTheSameMap) {
  // A tiny CHN -> autonomous sNODE with model.discrete_step on two LASA shapes: training goes
  // through Φ (not the fused Euler rollout) and lowers the loss; the evaluation's rollout is Φ; and
  // every skill, executed with Φ at the data's period, reaches its goal from 30 starts (7
  // demonstration starts + 23 random ones in the 1.5x box).
  const auto dir = sl::testing::temp_dir("lfd_discrete_train");
  auto cfg = sl::testing::tiny_lfd_config(2, 60, 0.005);
  cfg.explicit_time = false;
  cfg.eps = 1e-3;
  cfg.discrete_step = true;
  const auto fused_before = sl::models::functional::snode_euler_rollout_calls();
  LfdTrainer(cfg, dir).run(false);
  EXPECT_EQ(sl::models::functional::snode_euler_rollout_calls(), fused_before) << "Φ has no fused form";
  const LfdRun run(dir);
  const auto summary = json::parse(sl::read_file_text(dir / "summary.json"));
  for (std::int64_t task = 0; task < 2; ++task) {
    SCOPED_TRACE(task);
    const auto [first, last] = first_last_loss(dir, task);
    EXPECT_LT(last, 0.7 * first) << "training lowers the window loss";
    // The rollout of the run is Φ with the generated weights...
    torch::NoGradGuard no_grad;
    const auto d = run.task(task);
    const auto x0 = d.x.select(1, 0).to(torch::kFloat32);
    const auto t = d.t.narrow(0, 0, 20).to(torch::kFloat32);
    const auto w = run.weights(task);
    EXPECT_TRUE(torch::equal(run.rollout(task)(x0, t),
                             sl::models::functional::snode_discrete_rollout(x0, t, w, tiny_snode(cfg), 0.5)));
    // ...and the evaluation in summary.json is the windowed rollout of that map.
    const auto dtw = hand_dtw(d, run.rollout(task), cfg.tsub);
    const std::string key = "eval_task_" + std::to_string(task);
    EXPECT_NEAR(dtw.median, summary["median_errors"]["train_task_1"][key]["dtw"].get<double>(), 1e-6 * dtw.median);
    // Stability: `auto` picks Φ for such a skill.
    StabilityOptions so;
    so.starts = 30;
    const auto r = check_stability(run, task, so);
    EXPECT_EQ(r.method, "discrete");
    EXPECT_EQ(r.uncertified_substeps, 0);
    EXPECT_GT(r.substeps, 0);
    EXPECT_GE(r.projected_fraction, 0.0);
    EXPECT_LE(r.projected_fraction, 1.0);
    const double tol_model = 0.5 * r.tolerance / d.std.max().item<double>();
    EXPECT_NEAR(r.bound_horizon_seconds,
                std::log(r.max_initial_lyapunov / (cfg.eps * tol_model * tol_model)) / (cfg.discrete_kappa * cfg.alpha), 1e-9);
    EXPECT_EQ(r.converged_fraction, 1.0) << "max final distance " << r.max_final_distance << " > " << r.tolerance;
    // Accuracy as executed: the demonstrations' starts under Φ, the evaluation recomputed above; the
    // steps counted are those of the windowed protocol: M starts × T / tsub windows × (tsub − 1).
    EXPECT_NEAR(r.demo_errors.dtw.median, dtw.median, 1e-6 * dtw.median);
    EXPECT_EQ(r.demo_steps, d.x.size(0) * (d.x.size(1) / cfg.tsub) * (cfg.tsub - 1));
    EXPECT_GE(r.demo_projected_steps, 0);
    EXPECT_LE(r.demo_projected_steps, r.demo_steps);
    EXPECT_DOUBLE_EQ(r.demo_projected_fraction, static_cast<double>(r.demo_projected_steps) / static_cast<double>(r.demo_steps));
  }
  std::filesystem::remove_all(dir);
}

TEST(LfdDiscreteTraining, EulerTrainingOfADiscreteSkillTrainsLikeEulerAndEvaluatesPhi) {
  // train.rollout = "euler" with model.discrete_step: training takes the fused Euler rollout and
  // ends with exactly the weights of the same run without discrete_step (the same seed and
  // updates), while the evaluation, `lfd stability` and the skill file are Φ's.
  auto cfg = sl::testing::tiny_lfd_config(2, 20, 0.005);
  cfg.explicit_time = false;
  cfg.eps = 1e-4;
  const auto euler_dir = sl::testing::temp_dir("lfd_euler_plain");
  LfdTrainer(cfg, euler_dir).run(false);
  cfg.discrete_step = true;
  cfg.train_rollout = "euler";
  const auto dir = sl::testing::temp_dir("lfd_euler_phi");
  const auto fused_before = sl::models::functional::snode_euler_rollout_calls();
  LfdTrainer(cfg, dir).run(false);
  EXPECT_GE(sl::models::functional::snode_euler_rollout_calls() - fused_before, 2 * 20) << "one fused rollout per update";
  const LfdRun plain(euler_dir), run(dir);
  EXPECT_EQ(run.config().train_rollout, "euler");
  const auto summary = json::parse(sl::read_file_text(dir / "summary.json"));
  for (std::int64_t task = 0; task < 2; ++task) {
    SCOPED_TRACE(task);
    const auto w = run.weights(task), w_plain = plain.weights(task);
    ASSERT_EQ(w.size(), w_plain.size());
    for (std::size_t k = 0; k < w.size(); ++k) EXPECT_TRUE(torch::equal(w[k], w_plain[k])) << "tensor " << k;
    // The evaluation is Φ's windowed rollout of those weights (κ = 0.5), recomputed by hand.
    torch::NoGradGuard no_grad;
    const auto d = run.task(task);
    const auto o = tiny_snode(cfg);
    const GridRollout phi{[&](const torch::Tensor& x, const torch::Tensor& t, sl::models::functional::SNodeDiscreteStats*) {
      return sl::models::functional::snode_discrete_rollout(x, t, w, o, 0.5);
    }};
    const auto dtw = hand_dtw(d, phi, cfg.tsub);
    const std::string key = "eval_task_" + std::to_string(task);
    EXPECT_NEAR(dtw.median, summary["median_errors"]["train_task_1"][key]["dtw"].get<double>(), 1e-6 * dtw.median);
    StabilityOptions so;
    so.starts = 10;
    EXPECT_EQ(check_stability(run, task, so).method, "discrete");
  }
  sl::testing::expect_error<sl::ConfigError>([] { from_text("[train]\nrollout = \"rk4\"\n"); }, "train.rollout");
  std::filesystem::remove_all(euler_dir);
  std::filesystem::remove_all(dir);
}

TEST(LfdDiscreteStability, DiscreteMethodAppliesTheMapToASkillTrainedWithEuler) {
  // `--method discrete` on an autonomous skill trained without discrete_step runs Φ (κ = --kappa)
  // on its weights: every start and step is an application of Φ (counted), V's certificate gives
  // the horizon with rate κα, and every start converges. A clock-input skill is refused.
  const auto dir = sl::testing::temp_dir("lfd_discrete_method");
  auto cfg = sl::testing::tiny_lfd_config(1, 10, 0.005);
  cfg.explicit_time = false;
  cfg.eps = 1e-3;
  cfg.evaluate = false;
  LfdTrainer(cfg, dir).run(false);
  const LfdRun run(dir);
  StabilityOptions so;
  so.starts = 12;
  so.method = "discrete";
  so.kappa = 0.4;
  const auto r = check_stability(run, 0, so);
  EXPECT_EQ(r.method, "discrete");
  EXPECT_GT(r.substeps, 0);
  EXPECT_EQ(r.substeps % 12, 0);
  EXPECT_EQ(r.uncertified_substeps, 0);
  const auto d = run.task(0);
  const double tol_model = 0.5 * r.tolerance / d.std.max().item<double>();
  EXPECT_NEAR(r.bound_horizon_seconds, std::log(r.max_initial_lyapunov / (cfg.eps * tol_model * tol_model)) / (0.4 * cfg.alpha),
              1e-9);
  EXPECT_EQ(r.converged_fraction, 1.0);
  // Accuracy as executed under Φ (κ = 0.4) on the Euler-trained weights, recomputed by hand: the
  // windowed rollout of snode_discrete_rollout, de-normalised, DTW per demonstration.
  {
    torch::NoGradGuard no_grad;
    const auto w = run.weights(0);
    const auto o = tiny_snode(cfg);
    sl::models::functional::SNodeDiscreteStats st;
    const GridRollout phi{[&](const torch::Tensor& x, const torch::Tensor& t, sl::models::functional::SNodeDiscreteStats*) {
      return sl::models::functional::snode_discrete_rollout(x, t, w, o, 0.4, {}, &st);
    }};
    const auto dtw = hand_dtw(d, phi, cfg.tsub);
    EXPECT_NEAR(r.demo_errors.dtw.median, dtw.median, 1e-6 * dtw.median);
    EXPECT_EQ(r.demo_steps, st.steps);
    EXPECT_EQ(r.demo_projected_steps, st.projected);
    // With Euler (as trained and evaluated) the same protocol gives the other solver's rollout.
    StabilityOptions eo = so;
    eo.method = "euler";
    const auto re = check_stability(run, 0, eo);
    const auto dtw_e = hand_dtw(d, ode_rollout(run.field(0)), cfg.tsub);
    EXPECT_NEAR(re.demo_errors.dtw.median, dtw_e.median, 1e-6 * dtw_e.median);
    EXPECT_EQ(re.demo_steps, 0);
  }
  // Arrival times: with only the demonstrations' starts, recomputed by hand from one Φ rollout of
  // the whole horizon (the check integrates in chunks): the first grid time within the tolerance.
  {
    StabilityOptions ao = so;
    ao.starts = d.x.size(0);
    const auto ra = check_stability(run, 0, ao);
    ASSERT_EQ(ra.arrival_seconds.size(), static_cast<std::size_t>(d.x.size(0)));
    torch::NoGradGuard no_grad;
    const auto o = tiny_snode(cfg);
    std::vector<torch::Tensor> w;
    for (const auto& t : run.weights(0)) w.push_back(t.to(torch::kFloat32));
    const double dt = (d.t[1] - d.t[0]).item<double>();
    const auto grid = d.t[0] + torch::arange(ra.steps, torch::kFloat64) * dt;
    const auto traj = sl::models::functional::snode_discrete_rollout(d.x.select(1, 0).to(torch::kFloat32), grid, w, o, 0.4);
    // Model coordinates are centred on the goal: the raw distance to it is ‖x · std‖.
    const auto dist = (traj.to(torch::kFloat64) * d.std).norm(2, 2);
    std::vector<double> expected;
    for (std::int64_t m = 0; m < d.x.size(0); ++m) {
      double a = -1;
      for (std::int64_t k = 0; k < dist.size(1); ++k)
        if (dist[m][k].item<double>() <= ra.tolerance) {
          a = static_cast<double>(k) * dt;
          break;
        }
      expected.push_back(a);
      EXPECT_NEAR(ra.arrival_seconds[static_cast<std::size_t>(m)], a, 1e-9) << "start " << m;
      EXPECT_GE(a, 0.0) << "every start converges, so every start arrives";
    }
    std::sort(expected.begin(), expected.end());
    const auto M = expected.size();
    const double median = M % 2 ? expected[M / 2] : 0.5 * (expected[M / 2 - 1] + expected[M / 2]);
    EXPECT_DOUBLE_EQ(ra.demo_arrival_median, median);
    EXPECT_NEAR(ra.demo_duration_seconds, (d.t[-1] - d.t[0]).item<double>(), 1e-9);
  }
  std::filesystem::remove_all(dir);
  const auto clock_dir = sl::testing::temp_dir("lfd_discrete_clock");
  auto clock = sl::testing::tiny_lfd_config(1, 2, 0.005);
  clock.evaluate = false;
  LfdTrainer(clock, clock_dir).run(false);
  EXPECT_THROW(check_stability(LfdRun(clock_dir), 0, so), sl::UsageError);
  std::filesystem::remove_all(clock_dir);
}
