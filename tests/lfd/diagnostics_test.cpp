// [diagnostics] of LfD training (trainer.h LfdDiagnostics, docs/lfd.md §5): configuration,
// rows in metrics.jsonl, λ_max against a dense Hessian, resume without duplicated rows.
#include <cmath>
#include <map>
#include <set>
#include <utility>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/autograd.h>

#include "stablelearn/core/config.h"
#include "stablelearn/core/error.h"
#include "stablelearn/core/fs.h"
#include "stablelearn/data/lfd_datasets.h"
#include "stablelearn/data/lfd_preprocess.h"
#include "stablelearn/lfd/trainer.h"
#include "stablelearn/models/node_mlp.h"
#include "stablelearn/models/odeint.h"
#include "lfd_testing.h"
#include "testing.h"

namespace sl = stablelearn;
using namespace sl::lfd;
using nlohmann::json;

namespace {

LfdConfig tiny_diag(std::int64_t tasks, std::int64_t iterations, std::int64_t every) {
  auto c = sl::testing::tiny_lfd_config(tasks, iterations, 0.005);
  c.tsub = 5;      // short windows and few Lanczos steps keep each measurement cheap
  c.evaluate = false;
  c.diagnostics.every = every;
  c.diagnostics.lanczos_steps = 6;
  return c;
}

std::vector<json> rows_of(const std::filesystem::path& run, bool diagnostics) {
  std::vector<json> out;
  for (const auto& line : sl::read_lines(run / "metrics.jsonl")) {
    auto r = json::parse(line);
    if ((r.value("event", "") == "diagnostics") == diagnostics) out.push_back(r);
  }
  return out;
}

std::string config_error(const std::string& toml) {
  try {
    LfdConfig::from_config(sl::Config::from_string(toml, "diag.toml"));
  } catch (const sl::ConfigError& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST(LfdDiagnosticsConfig, DefaultsOffRoundTripsAndBadKeysOrValuesNameTheKey) {
  const auto d = LfdConfig::from_config(sl::Config::from_string("", "empty"));
  EXPECT_EQ(d.diagnostics.every, 0);
  EXPECT_EQ(d.diagnostics.lanczos_steps, 20);
  EXPECT_EQ(d.diagnostics.trace_probes, 0);
  EXPECT_FALSE(d.diagnostics.enabled());
  // The resolved config always carries the table.
  EXPECT_NE(d.to_config().to_string().find("[diagnostics]"), std::string::npos);

  auto cfg = sl::Config::from_string("[diagnostics]\nevery = 7\ntrace_probes = 4\n", "x");
  cfg.set("diagnostics.lanczos_steps=12");
  const auto c = LfdConfig::from_config(cfg);
  EXPECT_EQ(c.diagnostics.every, 7);
  EXPECT_EQ(c.diagnostics.lanczos_steps, 12);
  EXPECT_EQ(c.diagnostics.trace_probes, 4);
  const auto back = LfdConfig::from_config(sl::Config::from_string(c.to_config().to_string(), "resolved"));
  EXPECT_EQ(back.to_config().to_string(), c.to_config().to_string());
  EXPECT_EQ(back.diagnostics.every, 7);

  const std::vector<std::pair<std::string, std::string>> bad = {
      {"[diagnostics]\nsamples = 5\n", "diagnostics.samples"},  // a cl key that LfD does not take
      {"[diagnostics]\nbogus = 1\n", "diagnostics.bogus"},
      {"[diagnostics]\nevery = -1\n", "diagnostics.every"},
      {"[diagnostics]\nevery = \"often\"\n", "diagnostics.every"},
      {"[diagnostics]\nlanczos_steps = 1\n", "diagnostics.lanczos_steps"},
      {"[diagnostics]\ntrace_probes = 1\n", "diagnostics.trace_probes"},
      {"[diagnostics]\ntrace_probes = -3\n", "diagnostics.trace_probes"},
  };
  for (const auto& [toml, key] : bad) {
    const auto msg = config_error(toml);
    EXPECT_NE(msg.find(key), std::string::npos) << toml << " -> " << msg;
  }
}

TEST(LfdDiagnostics, RowsAtEveryKIterationsWithPositiveSharpnessAndTrainingUnchanged) {
  const auto dir = sl::testing::temp_dir("lfd_diag_rows");
  auto cfg = tiny_diag(2, 12, 4);
  cfg.diagnostics.trace_probes = 2;
  LfdTrainer on(cfg, dir / "on");
  on.run(false);
  const auto rows = rows_of(dir / "on", true);
  ASSERT_EQ(rows.size(), 6u);
  for (std::size_t k = 0; k < rows.size(); ++k) {
    const auto& r = rows[k];
    EXPECT_EQ(r["task"], static_cast<std::int64_t>(k / 3));
    EXPECT_EQ(r["iteration"], static_cast<std::int64_t>(4 * (k % 3 + 1)));
    const double lam = r["lambda_max"].get<double>();
    EXPECT_TRUE(std::isfinite(lam) && lam > 0) << r.dump();
    EXPECT_GT(r["grad_norm"].get<double>(), 0);
    EXPECT_TRUE(std::isfinite(r["loss"].get<double>()));
    EXPECT_DOUBLE_EQ(r["two_over_lr"].get<double>(), 2.0 / cfg.lr);
    EXPECT_TRUE(std::isfinite(r["trace"].get<double>()));
    EXPECT_GE(r["trace_se"].get<double>(), 0);
    EXPECT_TRUE(r.contains("window_start"));
    EXPECT_GT(r["params"].get<std::int64_t>(), 0);
  }
  EXPECT_TRUE(std::filesystem::exists(dir / "on/sharpness.svg"));
  const auto summary = json::parse(sl::read_file_text(dir / "on/summary.json"));
  EXPECT_EQ(summary["diagnostics"]["measurements"], 6);
  EXPECT_EQ(summary["diagnostics"]["every"], 4);

  // Measuring draws nothing from the training streams: the training rows are the same without it.
  auto off_cfg = cfg;
  off_cfg.diagnostics.every = 0;
  LfdTrainer off(off_cfg, dir / "off");
  off.run(false);
  EXPECT_TRUE(rows_of(dir / "off", true).empty());
  EXPECT_FALSE(std::filesystem::exists(dir / "off/sharpness.svg"));
  const auto a = rows_of(dir / "on", false), b = rows_of(dir / "off", false);
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t k = 0; k < a.size(); ++k) EXPECT_EQ(a[k]["loss"], b[k]["loss"]) << k;
  std::filesystem::remove_all(dir);
}

TEST(LfdDiagnostics, BaselineLambdaMaxMatchesTheDenseHessianEigenvalue) {
  // sg with a 2-4-2 NODE (with the clock: 26 parameters), one update, a measurement after it.
  // Reference: the loss on the recorded window rebuilt here in float64 from the run's weights,
  // the full Hessian by double backward column by column, its top eigenvalue by eigvalsh.
  const auto dir = sl::testing::temp_dir("lfd_diag_dense");
  auto cfg = tiny_diag(1, 1, 1);
  cfg.method = "sg";
  cfg.target = "node";
  cfg.tnet_hidden = {4};
  cfg.tsub = 20;
  cfg.diagnostics.lanczos_steps = 40;  // capped at the 26 parameters: the whole Krylov space
  LfdTrainer trainer(cfg, dir / "run");
  trainer.run(false);
  const auto rows = rows_of(dir / "run", true);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0]["params"], 26);
  const double recorded = rows[0]["lambda_max"].get<double>();

  LfdRun run(dir / "run");  // sg: the best copy = the weights after the one update
  std::vector<torch::Tensor> w;
  for (const auto& t : run.weights(0)) w.push_back(t.to(torch::kFloat64).detach().requires_grad_(true));
  const auto& spec = sl::data::lfd_dataset_spec(cfg.dataset);
  sl::data::LfdDataset ds(spec.kind, cfg.root);
  const auto prep = sl::data::prepare_task(ds.task(0), spec, {false, 1.0});
  const auto win = sl::data::window_at(prep, rows[0]["window_start"].get<std::int64_t>(), cfg.tsub);
  const auto o = sl::models::NodeMlpOptions(spec.state_dim).hidden({4}).explicit_time(true);
  const auto loss_of = [&](const std::vector<torch::Tensor>& ws) {
    const sl::lfd::VectorField f([&](const torch::Tensor& t, const torch::Tensor& x) {
      return sl::models::functional::node_rhs(t, x, ws, o);
    });
    const auto pred = sl::models::odeint(f, win.y.select(1, 0), win.t, sl::models::OdeintOptions{});
    return (pred - win.y).pow(2).mean();
  };
  const auto grads = torch::autograd::grad({loss_of(w)}, w, {}, true, true);
  std::vector<torch::Tensor> flat;
  for (const auto& g : grads) flat.push_back(g.reshape({-1}));
  const auto g = torch::cat(flat);
  const auto D = g.numel();
  ASSERT_EQ(D, 26);
  auto H = torch::zeros({D, D}, torch::kFloat64);
  for (std::int64_t i = 0; i < D; ++i) {
    const auto col = torch::autograd::grad({g[i]}, w, {}, true, false, true);
    std::vector<torch::Tensor> parts;
    for (std::size_t k = 0; k < col.size(); ++k)
      parts.push_back(col[k].defined() ? col[k].reshape({-1}) : torch::zeros({w[k].numel()}, torch::kFloat64));
    H[i] = torch::cat(parts).detach();
  }
  EXPECT_LT((H - H.t()).abs().max().item<double>(), 1e-9 * std::max(1.0, H.abs().max().item<double>()));
  const double dense = torch::linalg_eigvalsh(0.5 * (H + H.t()), "L").max().item<double>();
  EXPECT_GT(dense, 0);
  EXPECT_NEAR(recorded, dense, 1e-3 * dense) << "recorded " << recorded << " dense " << dense;
  // ‖∇‖ too (float32 run vs float64 here).
  EXPECT_NEAR(rows[0]["grad_norm"].get<double>(), g.norm().item<double>(), 1e-4 * g.norm().item<double>() + 1e-7);
  std::filesystem::remove_all(dir);
}

TEST(LfdDiagnostics, ResumeKeepsEarlierRowsWithoutDuplicates) {
  const auto dir = sl::testing::temp_dir("lfd_diag_resume");
  const auto cfg = tiny_diag(2, 10, 5);
  LfdTrainer full(cfg, dir / "full");
  full.run(false);
  const auto expected = rows_of(dir / "full", true);
  ASSERT_EQ(expected.size(), 4u);

  LfdTrainer first(cfg, dir / "part");
  first.run(false, {}, /*stop_after=*/1);
  ASSERT_EQ(rows_of(dir / "part", true).size(), 2u);
  // A kill during task 1: rows of the interrupted task and a torn last line are left behind.
  sl::append_line(dir / "part/metrics.jsonl",
                  R"({"event":"diagnostics","task":1,"iteration":5,"lambda_max":1.0})");
  sl::append_line(dir / "part/metrics.jsonl", R"({"task":1,"iteration":5,"loss":0.5})");
  sl::append_line(dir / "part/metrics.jsonl", R"({"task":1,"itera)");
  LfdTrainer resumed(cfg, dir / "part");
  resumed.run(true);
  const auto got = rows_of(dir / "part", true);
  ASSERT_EQ(got.size(), expected.size());
  std::set<std::pair<std::int64_t, std::int64_t>> seen;
  for (std::size_t k = 0; k < got.size(); ++k) {
    EXPECT_EQ(got[k]["task"], expected[k]["task"]);
    EXPECT_EQ(got[k]["iteration"], expected[k]["iteration"]);
    EXPECT_NEAR(got[k]["lambda_max"].get<double>(), expected[k]["lambda_max"].get<double>(),
                1e-6 * std::abs(expected[k]["lambda_max"].get<double>()));
    EXPECT_TRUE(seen.insert({got[k]["task"].get<std::int64_t>(), got[k]["iteration"].get<std::int64_t>()}).second);
  }
  EXPECT_EQ(rows_of(dir / "part", false).size(), rows_of(dir / "full", false).size());
  const auto summary = json::parse(sl::read_file_text(dir / "part/summary.json"));
  EXPECT_EQ(summary["diagnostics"]["measurements"], 4);

  // Diagnostics off, and a config.toml written before the table existed: still resumable.
  auto off = cfg;
  off.diagnostics = LfdDiagnostics{};  // an old run has no table: every key at its default
  LfdTrainer old_first(off, dir / "old");
  old_first.run(false, {}, 1);
  auto text = sl::read_file_text(dir / "old/config.toml");
  const auto at = text.find("[diagnostics]");
  ASSERT_NE(at, std::string::npos);
  auto end = text.find("\n[", at + 1);
  text.erase(at, end == std::string::npos ? std::string::npos : end + 1 - at);
  ASSERT_EQ(text.find("[diagnostics]"), std::string::npos);
  sl::write_file_atomic(dir / "old/config.toml", text);
  LfdTrainer old_resumed(off, dir / "old");
  EXPECT_NO_THROW(old_resumed.run(true));
  EXPECT_NE(sl::read_file_text(dir / "old/config.toml").find("[diagnostics]"), std::string::npos);
  std::filesystem::remove_all(dir);
}
