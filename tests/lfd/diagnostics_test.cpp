// [diagnostics] of LfD training (trainer.h LfdDiagnostics, docs/lfd.md §5): configuration,
// rows in metrics.jsonl, λ_max against a dense Hessian, resume without duplicated rows.
#include <cmath>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

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
#include "stablelearn/models/snode.h"
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

// ---------------------------------------------------------------------------------------------
// diagnostics.curvature (hessian | ggn) and diagnostics.metrics

TEST(LfdDiagnosticsConfig, CurvatureAndMetricsResolveRoundTripAndBadValuesNameTheKey) {
  // Defaults: the Hessian, and the rows recorded before `metrics` existed (+ trace with probes).
  const auto d = LfdConfig::from_config(sl::Config::from_string("", "empty"));
  EXPECT_EQ(d.diagnostics.curvature, "hessian");
  EXPECT_TRUE(d.diagnostics.metrics.empty());
  EXPECT_EQ(d.diagnostics.resolved_metrics(), (std::vector<std::string>{"lambda_max", "grad_norm", "loss"}));
  const auto with_trace = LfdConfig::from_config(sl::Config::from_string("[diagnostics]\ntrace_probes = 4\n", "t"));
  EXPECT_EQ(with_trace.diagnostics.resolved_metrics(),
            (std::vector<std::string>{"lambda_max", "grad_norm", "loss", "trace"}));
  // The resolved config writes both keys; reading it back gives the same text and values.
  for (const auto* cfg : {&d, &with_trace}) {
    const auto text = cfg->to_config().to_string();
    EXPECT_NE(text.find("curvature = "), std::string::npos) << text;
    EXPECT_NE(text.find("metrics = "), std::string::npos) << text;
    const auto back = LfdConfig::from_config(sl::Config::from_string(text, "resolved"));
    EXPECT_EQ(back.to_config().to_string(), text);
    EXPECT_EQ(back.diagnostics.resolved_metrics(), cfg->diagnostics.resolved_metrics());
  }

  // Explicit values (a --set override too), stored in the canonical order.
  auto cfg = sl::Config::from_string("[diagnostics]\ncurvature = \"ggn\"\n", "x");
  cfg.set(R"(diagnostics.metrics=["loss", "grad_norm"])");
  const auto c = LfdConfig::from_config(cfg);
  EXPECT_EQ(c.diagnostics.curvature, "ggn");
  EXPECT_EQ(c.diagnostics.metrics, (std::vector<std::string>{"grad_norm", "loss"}));
  EXPECT_TRUE(c.diagnostics.records("grad_norm"));
  EXPECT_FALSE(c.diagnostics.records("lambda_max"));
  const auto back = LfdConfig::from_config(sl::Config::from_string(c.to_config().to_string(), "resolved"));
  EXPECT_EQ(back.diagnostics.curvature, "ggn");
  EXPECT_EQ(back.diagnostics.metrics, c.diagnostics.metrics);
  EXPECT_EQ(back.to_config().to_string(), c.to_config().to_string());
  const auto tr = LfdConfig::from_config(
      sl::Config::from_string("[diagnostics]\ntrace_probes = 3\nmetrics = ['trace', 'lambda_max']\n", "y"));
  EXPECT_EQ(tr.diagnostics.metrics, (std::vector<std::string>{"lambda_max", "trace"}));

  // Unknown names list the known ones; a list long enough to be written over several lines.
  const std::string long_name(130, 'z');
  for (const auto& bad_name : {std::string("sharpness"), long_name}) {
    const auto msg = config_error("[diagnostics]\nmetrics = [\"lambda_max\", \"" + bad_name + "\"]\n");
    EXPECT_NE(msg.find("diagnostics.metrics"), std::string::npos) << msg;
    EXPECT_NE(msg.find(bad_name), std::string::npos) << msg;
    for (const auto* known : {"lambda_max", "grad_norm", "loss", "trace"})
      EXPECT_NE(msg.find(std::string("\"") + known + "\""), std::string::npos) << msg;
  }
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"[diagnostics]\ncurvature = \"fisher\"\n", "diagnostics.curvature"},
      {"[diagnostics]\ncurvature = 1\n", "diagnostics.curvature"},
      {"[diagnostics]\nmetrics = \"grad_norm\"\n", "diagnostics.metrics"},  // not a list
      {"[diagnostics]\nmetrics = [1, 2]\n", "diagnostics.metrics"},
      {"[diagnostics]\nmetrics = []\n", "diagnostics.metrics"},
      {"[diagnostics]\nmetrics = [\"loss\", \"loss\"]\n", "diagnostics.metrics"},
      // trace needs probes; probes need trace (neither is silently ignored)
      {"[diagnostics]\nmetrics = [\"trace\"]\n", "diagnostics.trace_probes"},
      {"[diagnostics]\ntrace_probes = 4\nmetrics = [\"lambda_max\"]\n", "diagnostics.metrics"},
  };
  for (const auto& [toml, key] : bad) {
    const auto msg = config_error(toml);
    EXPECT_NE(msg.find(key), std::string::npos) << toml << " -> " << msg;
  }
  // Programmatic configurations are checked by validate() too.
  auto prog = sl::testing::tiny_lfd_config(1, 1, 0);
  prog.diagnostics.curvature = "GGN";
  EXPECT_THROW(prog.validate(), sl::ConfigError);
  prog.diagnostics.curvature = "ggn";
  prog.diagnostics.metrics = {"lambda_max", "hessian_norm"};
  EXPECT_THROW(prog.validate(), sl::ConfigError);
}

TEST(LfdDiagnostics, BaselineGgnLambdaMaxMatchesTheDenseGaussNewtonEigenvalue) {
  // As the Hessian test above, with curvature = ggn, for a NODE (26 parameters) and a tiny sNODE
  // (510): the reference is (2/N) JᵀJ of the float64 rollout Ŷ of the recorded window, J = ∂Ŷ/∂w
  // built row by row (one backward per element of Ŷ), its top eigenvalue by eigvalsh. Lanczos
  // runs to the end of the Krylov space (its dimension is at most rank G + 1, and the window's
  // first state, 14 of the N outputs, does not depend on w), so it is exact.
  for (const std::string target : {"node", "snode"}) {
    SCOPED_TRACE(target);
    const auto dir = sl::testing::temp_dir("lfd_diag_ggn_dense_" + target);
    auto cfg = tiny_diag(1, 1, 1);
    cfg.method = "sg";
    cfg.target = target;
    cfg.tnet_hidden = {4};
    cfg.tsub = target == "node" ? 20 : 5;  // N = 280 or 70 outputs (7 demonstrations, 2-D)
    cfg.diagnostics.lanczos_steps = 80;     // node: capped at D = 26; sNODE: rank G <= 70 - 14 < 80
    cfg.diagnostics.curvature = "ggn";
    cfg.diagnostics.trace_probes = 16;
    LfdTrainer trainer(cfg, dir / "run");
    trainer.run(false);
    const auto rows = rows_of(dir / "run", true);
    ASSERT_EQ(rows.size(), 1u);
    EXPECT_EQ(rows[0]["curvature"], "ggn");
    const double recorded = rows[0]["lambda_max"].get<double>();

    LfdRun run(dir / "run");  // sg: the best copy = the weights after the one update
    std::vector<torch::Tensor> w;
    for (const auto& t : run.weights(0)) w.push_back(t.to(torch::kFloat64).detach().requires_grad_(true));
    const auto& spec = sl::data::lfd_dataset_spec(cfg.dataset);
    sl::data::LfdDataset ds(spec.kind, cfg.root);
    const auto prep = sl::data::prepare_task(ds.task(0), spec, {target == "snode", 1.0});  // sNODE: goal-centred
    const auto win = sl::data::window_at(prep, rows[0]["window_start"].get<std::int64_t>(), cfg.tsub);
    const auto node = sl::models::NodeMlpOptions(spec.state_dim).hidden({4}).explicit_time(true);
    const auto snode = sl::models::SNodeOptions(spec.state_dim)
                           .hidden(cfg.h)
                           .fhat_layers(cfg.fhat_layers)
                           .icnn_hidden(cfg.hp)
                           .alpha(cfg.alpha)
                           .eps(cfg.eps)
                           .rehu(cfg.rehu)
                           .explicit_time(cfg.explicit_time);
    const sl::lfd::VectorField f([&](const torch::Tensor& t, const torch::Tensor& x) {
      return target == "node" ? sl::models::functional::node_rhs(t, x, w, node)
                              : sl::models::functional::snode_rhs(t, x, w, snode);
    });
    const auto pred = sl::models::odeint(f, win.y.select(1, 0), win.t, sl::models::OdeintOptions{}).reshape({-1});
    const auto N = pred.numel();
    ASSERT_EQ(N, win.y.numel());
    std::int64_t D = 0;
    for (const auto& t : w) D += t.numel();
    EXPECT_EQ(rows[0]["params"], D);
    auto J = torch::zeros({N, D}, torch::kFloat64);
    for (std::int64_t r = 0; r < N; ++r) {
      const auto row = torch::autograd::grad({pred[r]}, w, {}, true, false, true);
      std::vector<torch::Tensor> parts;
      for (std::size_t k = 0; k < row.size(); ++k)
        parts.push_back(row[k].defined() ? row[k].reshape({-1}) : torch::zeros({w[k].numel()}, torch::kFloat64));
      J[r] = torch::cat(parts).detach();
    }
    const auto G = J.t().mm(J) * (2.0 / static_cast<double>(N));
    const double dense = torch::linalg_eigvalsh(G, "L").max().item<double>();
    EXPECT_GT(dense, 0);
    EXPECT_NEAR(recorded, dense, 1e-4 * dense) << "recorded " << recorded << " dense " << dense;
    // Hutchinson's estimate of the same operator: within 4 standard errors of tr G (fixed seed).
    const double trace = G.trace().item<double>();
    EXPECT_GT(rows[0]["trace_se"].get<double>(), 0);
    EXPECT_NEAR(rows[0]["trace"].get<double>(), trace, 4 * rows[0]["trace_se"].get<double>() + 1e-6 * trace)
        << "trace " << trace;
    // ‖∇‖ and the loss do not depend on the curvature.
    const auto loss = (pred - win.y.reshape({-1})).pow(2).mean();
    const auto g = torch::autograd::grad({loss}, w, {}, true, target == "node");
    std::vector<torch::Tensor> flat;
    for (const auto& gi : g) flat.push_back(gi.reshape({-1}));
    const auto gv = torch::cat(flat);
    EXPECT_NEAR(rows[0]["grad_norm"].get<double>(), gv.norm().item<double>(), 1e-4 * gv.norm().item<double>() + 1e-7);
    EXPECT_NEAR(rows[0]["loss"].get<double>(), loss.item<double>(), 1e-5 * loss.item<double>() + 1e-9);
    if (target == "node") {
      // The GGN is not the Hessian: the residual term matters on this window (dense, as above).
      auto H = torch::zeros({D, D}, torch::kFloat64);
      for (std::int64_t i = 0; i < D; ++i) {
        const auto col = torch::autograd::grad({gv[i]}, w, {}, true, false, true);
        std::vector<torch::Tensor> parts;
        for (std::size_t k = 0; k < col.size(); ++k)
          parts.push_back(col[k].defined() ? col[k].reshape({-1}) : torch::zeros({w[k].numel()}, torch::kFloat64));
        H[i] = torch::cat(parts).detach();
      }
      const double hess = torch::linalg_eigvalsh(0.5 * (H + H.t()), "L").max().item<double>();
      EXPECT_GT(std::abs(hess - dense), 1e-3 * dense) << "hessian " << hess << " ggn " << dense;
    }
    std::filesystem::remove_all(dir);
  }
}

TEST(LfdDiagnostics, MetricsChooseTheRecordedFieldsAndTrainingIsUnchanged) {
  const auto dir = sl::testing::temp_dir("lfd_diag_metrics");
  auto base = tiny_diag(1, 6, 3);
  LfdTrainer full(base, dir / "full");  // the default metrics
  full.run(false);
  auto only = base;
  only.diagnostics.metrics = {"grad_norm"};
  LfdTrainer grad_only(only, dir / "grad");
  grad_only.run(false);
  auto off = base;
  off.diagnostics.every = 0;
  LfdTrainer none(off, dir / "off");
  none.run(false);

  const auto a = rows_of(dir / "full", true), b = rows_of(dir / "grad", true);
  ASSERT_EQ(a.size(), 2u);
  ASSERT_EQ(b.size(), 2u);
  for (std::size_t k = 0; k < b.size(); ++k) {
    for (const auto* absent : {"lambda_max", "lambda_residual", "loss", "trace", "trace_se", "curvature"})
      EXPECT_FALSE(b[k].contains(absent)) << absent << " in " << b[k].dump();
    EXPECT_TRUE(a[k].contains("lambda_max") && a[k].contains("loss") && !a[k].contains("trace")) << a[k].dump();
    EXPECT_EQ(b[k]["iteration"], a[k]["iteration"]);
    EXPECT_EQ(b[k]["grad_norm"], a[k]["grad_norm"]);  // same state, same window
    EXPECT_EQ(b[k]["hvps"], 0);
    EXPECT_EQ(b[k]["params"], a[k]["params"]);
  }
  EXPECT_FALSE(std::filesystem::exists(dir / "grad/sharpness.svg"));
  EXPECT_TRUE(std::filesystem::exists(dir / "full/sharpness.svg"));
  const auto summary = json::parse(sl::read_file_text(dir / "grad/summary.json"));
  EXPECT_EQ(summary["diagnostics"]["metrics"], json::array({"grad_norm"}));
  EXPECT_FALSE(summary["diagnostics"].contains("max_lambda_max"));
  const auto resolved = sl::read_file_text(dir / "grad/config.toml");
  EXPECT_EQ(LfdConfig::from_config(sl::Config::from_string(resolved, "config.toml")).diagnostics.metrics,
            std::vector<std::string>{"grad_norm"});
  // Training rows: identical with the full, the reduced and no diagnostics.
  const auto ta = rows_of(dir / "full", false), tb = rows_of(dir / "grad", false), tc = rows_of(dir / "off", false);
  ASSERT_EQ(ta.size(), tc.size());
  ASSERT_EQ(tb.size(), tc.size());
  for (std::size_t k = 0; k < tc.size(); ++k) {
    EXPECT_EQ(ta[k]["loss"], tc[k]["loss"]) << k;
    EXPECT_EQ(tb[k]["loss"], tc[k]["loss"]) << k;
  }
  std::filesystem::remove_all(dir);
}

TEST(LfdDiagnostics, GgnWithTraceForTheHypernetworkAndEveryBaseline) {
  // The shared hook: hnet (θ and e_i) and every baseline (two tasks, so conditioned baselines
  // measure w.r.t. a second embedding and SI/MAS run with their penalty) record a finite
  // positive GGN λ_max and a positive Hutchinson trace (zᵀGz = ‖J'z‖² >= 0 for every probe).
  const auto dir = sl::testing::temp_dir("lfd_diag_ggn_all");
  for (const auto* method : {"hnet", "sg", "ft", "rep", "si", "mas"}) {
    auto cfg = tiny_diag(2, 2, 2);
    cfg.method = method;
    cfg.diagnostics.curvature = "ggn";
    cfg.diagnostics.trace_probes = 2;
    cfg.diagnostics.metrics = {"lambda_max", "trace"};
    cfg.mas_samples = 4;
    LfdTrainer trainer(cfg, dir / method);
    trainer.run(false);
    const auto rows = rows_of(dir / method, true);
    ASSERT_EQ(rows.size(), 2u) << method;
    for (const auto& r : rows) {
      EXPECT_EQ(r["curvature"], "ggn") << method;
      const double lam = r["lambda_max"].get<double>(), tr = r["trace"].get<double>();
      EXPECT_TRUE(std::isfinite(lam) && lam > 0) << method << " " << r.dump();
      EXPECT_TRUE(std::isfinite(tr) && tr > 0) << method << " " << r.dump();
      EXPECT_FALSE(r.contains("grad_norm") || r.contains("loss")) << method << " " << r.dump();
    }
    const auto summary = json::parse(sl::read_file_text(dir / method / "summary.json"));
    EXPECT_EQ(summary["diagnostics"]["curvature"], "ggn") << method;
  }
  std::filesystem::remove_all(dir);
}

TEST(LfdDiagnostics, ResumeWithGgnAndOlderConfigWithoutTheNewKeys) {
  const auto dir = sl::testing::temp_dir("lfd_diag_ggn_resume");
  auto cfg = tiny_diag(2, 4, 2);
  cfg.diagnostics.curvature = "ggn";
  cfg.diagnostics.metrics = {"lambda_max", "grad_norm"};
  LfdTrainer full(cfg, dir / "full");
  full.run(false);
  const auto expected = rows_of(dir / "full", true);
  ASSERT_EQ(expected.size(), 4u);
  LfdTrainer first(cfg, dir / "part");
  first.run(false, {}, 1);
  LfdTrainer resumed(cfg, dir / "part");
  resumed.run(true);
  const auto got = rows_of(dir / "part", true);
  ASSERT_EQ(got.size(), expected.size());
  for (std::size_t k = 0; k < got.size(); ++k) {
    EXPECT_EQ(got[k]["iteration"], expected[k]["iteration"]);
    EXPECT_NEAR(got[k]["lambda_max"].get<double>(), expected[k]["lambda_max"].get<double>(),
                1e-6 * std::abs(expected[k]["lambda_max"].get<double>()));
    EXPECT_FALSE(got[k].contains("loss"));
  }

  // A run written before `curvature` and `metrics` existed (its [diagnostics] table without them,
  // trace on): the defaults resolve to the same configuration, so it resumes.
  auto old = tiny_diag(2, 4, 2);
  old.diagnostics.trace_probes = 2;
  LfdTrainer old_first(old, dir / "old");
  old_first.run(false, {}, 1);
  auto text = sl::read_file_text(dir / "old/config.toml");
  for (const std::string key : {"curvature = ", "metrics = "}) {
    const auto at = text.find("\n" + key);
    ASSERT_NE(at, std::string::npos) << text;
    text.erase(at, text.find('\n', at + 1) - at);
  }
  ASSERT_EQ(text.find("metrics"), std::string::npos);
  sl::write_file_atomic(dir / "old/config.toml", text);
  LfdTrainer old_resumed(old, dir / "old");
  EXPECT_NO_THROW(old_resumed.run(true));
  EXPECT_NE(sl::read_file_text(dir / "old/config.toml").find("metrics = "), std::string::npos);
  const auto old_rows = rows_of(dir / "old", true);
  ASSERT_EQ(old_rows.size(), 4u);
  for (const auto& r : old_rows) EXPECT_TRUE(r.contains("trace") && r.contains("loss")) << r.dump();
  std::filesystem::remove_all(dir);
}
