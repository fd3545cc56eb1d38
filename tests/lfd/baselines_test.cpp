// Baselines of spec §7 (lfd/baselines.h): run files, resume, loading, and forgetting vs FT.
#include <cmath>
#include <iostream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "stablelearn/core/error.h"
#include "stablelearn/core/fs.h"
#include "stablelearn/lfd/baselines.h"
#include "stablelearn/lfd/skill_export.h"
#include "stablelearn/lfd/trainer.h"
#include "testing.h"

namespace sl = stablelearn;
using namespace sl::lfd;
using nlohmann::json;

namespace {
LfdConfig tiny_baseline(const std::string& method, std::int64_t tasks, std::int64_t iterations) {
  LfdConfig c;
  c.root = sl::testing::project_data().string();
  c.method = method;
  c.tasks = tasks;
  c.h = 16;
  c.hp = 8;
  c.fhat_layers = 2;
  c.task_emb_dim = 4;
  c.iterations = iterations;
  c.lr = 1e-3;
  c.log_every = 5;
  c.mas_samples = 20;
  return c;
}
}  // namespace

TEST(LfdBaselines, EveryMethodWritesTheRunFilesAndResumesToTheSameNumbers) {
  const auto dir = sl::testing::temp_dir("lfd_baselines");
  for (const auto& method : baseline_methods()) {
    SCOPED_TRACE(method);
    const auto cfg = tiny_baseline(method, 2, 8);
    LfdTrainer full(cfg, dir / (method + "_full"));
    full.run(false);
    for (const char* f : {"config.toml", "summary.json", "eval_results.json", "metrics.jsonl", "checkpoint.json",
                          "checkpoint_task1.npz"})
      EXPECT_TRUE(std::filesystem::exists(dir / (method + "_full") / f)) << f;
    const auto summary = json::parse(sl::read_file_text(dir / (method + "_full") / "summary.json"));
    EXPECT_EQ(summary["method"], method);
    EXPECT_EQ(summary["completed_tasks"], 2);
    EXPECT_TRUE(summary.contains("cl_scores"));
    EXPECT_EQ(summary["cl_scores"]["SSS"].get<double>() < 1.0, method == "rep");  // only replay stores data
    const auto evals = json::parse(sl::read_file_text(dir / (method + "_full") / "eval_results.json"));
    EXPECT_EQ(evals["data"]["metric_errors"]["train_task_1"]["eval_task_0"]["dtw"].size(), 7u);
    ASSERT_EQ(full.evaluations().size(), 2u);
    if (method == "sg") {
      // One network per task, never changed afterwards: its cells stay as just learned.
      EXPECT_EQ(full.evaluations()[1][0].dtw.per_demo, full.evaluations()[0][0].dtw.per_demo);
    } else {
      // The shared network moved while learning task 1.
      EXPECT_NE(full.evaluations()[1][0].dtw.per_demo, full.evaluations()[0][0].dtw.per_demo);
    }
    LfdTrainer part(cfg, dir / (method + "_part"));
    part.run(false, {}, /*stop_after=*/1);
    LfdTrainer resumed(cfg, dir / (method + "_part"));
    resumed.run(true);
    // The resumed task 1 starts from the checkpointed network, embeddings and (si, mas) importance
    // and anchor: the same numbers as the uninterrupted run.
    ASSERT_EQ(resumed.evaluations().size(), 2u);
    for (std::size_t j = 0; j < 2; ++j)
      EXPECT_EQ(resumed.evaluations()[1][j].dtw.per_demo, full.evaluations()[1][j].dtw.per_demo) << j;
  }
  std::filesystem::remove_all(dir);
}

TEST(LfdBaselines, LoadedRunsReproduceTheEvaluationAndOnlySgExports) {
  const auto dir = sl::testing::temp_dir("lfd_baseline_run");
  for (const std::string method : {"ft", "sg"}) {
    SCOPED_TRACE(method);
    const auto cfg = tiny_baseline(method, 2, 6);
    LfdTrainer trainer(cfg, dir / method);
    trainer.run(false);
    const LfdRun run(dir / method);
    EXPECT_EQ(run.completed_tasks(), 2);
    const auto d = run.task(0);
    torch::NoGradGuard no_grad;
    const auto traj = windowed_rollout(run.field(0), d.x.select(1, 0).to(torch::kFloat32), d.t.to(torch::kFloat32),
                                       cfg.tsub)
                          .to(torch::kFloat64);
    const auto pred = ((traj + d.goal.unsqueeze(1)) * d.std + d.mean).contiguous();
    const auto raw = d.raw.contiguous();
    const auto dtw =
        compute_metric(TrajectoryMetric::Dtw, {raw.data_ptr<double>(), 7, 1000, 2}, {pred.data_ptr<double>(), 7, 1000, 2});
    for (std::size_t m = 0; m < 7; ++m) EXPECT_NEAR(dtw.per_demo[m], trainer.evaluations()[1][0].dtw.per_demo[m], 1e-6);
    if (method == "sg") {
      EXPECT_NO_THROW(export_skill(run, 1, dir / "sg.slskill"));
    } else {
      sl::testing::expect_error<sl::UsageError>([&] { run.weights(0); }, "task embedding");
    }
  }
  std::filesystem::remove_all(dir);
}

TEST(LfdBaselines, ParameterCountsOfTheConditionedNetwork) {
  // FT-sNODE with te = 4 on LASA 2D (d = 2, no clock): f̂ 6 -> 16 -> 16 -> 2, ICNN [2, 8, 8, 1]:
  // f̂ 16·6 + 16 + 16·16 + 16 + 2·16 + 2 = 418; ICNN 8·2·2 + 2 + 64 + 8 + 8 + 8 + 1 = 123 -> 541
  // (with the clock, n = 3: f̂ +16, ICNN + 8 + 8 + 1 -> 574).
  auto cfg = tiny_baseline("ft", 0, 1);
  cfg.explicit_time = false;
  auto p = count_parameters(cfg);
  EXPECT_EQ(p.target, 541);
  EXPECT_EQ(p.hypernetwork, 0);
  cfg.explicit_time = true;
  EXPECT_EQ(count_parameters(cfg).target, 574);
  cfg.method = "sg";  // no embedding input, one network per task (26 LASA tasks)
  p = count_parameters(cfg);
  EXPECT_EQ(p.target, 574 - 16 * 4);
  EXPECT_EQ(p.theta, 26 * (574 - 16 * 4));
}
