// repro relex: Wei, Zhu, Chen, Huang, Huang, Meng, "You Only Need Minimal RLVR Training:
// extrapolating LLMs via rank-1 trajectories" (RELEX, arXiv 2605.21468; shared/specs/papers-19-35.md
// §32), the spec's smallest faithful CPU experiment on the task of rlvr-geometry (token_task.h: a
// small transformer answering a + b mod p with one token, SFT-pre-trained to base_accuracy):
//   RL      `steps` GRPO steps (verifiable reward, group-normalised advantages, clip 0.2, k3 KL to the
//           base, Adam at rl_lr), the weights θ_t kept for t = 1..T, T = round(fit_fraction · steps)
//           (the paper: 75 of 500, 15 %);
//   RELEX   per weight tensor, the rank-1 fit of the deltas θ_t − θ₀ (t = 1..T) with a line through
//           its coefficient (diagnostics/relex.h relex_fit, the code's svd_extrapolation.py), then
//           θ̂(s) = predict(s − T) for s = 0.3, 0.6, 1 × steps and 2 × steps (beyond the run);
//   naive   the per-parameter least-squares line through θ_1..θ_T extrapolated the same way (relex_fit
//           with rank T: keeping every component makes the coefficient fit the per-parameter fit);
//   control T SFT steps (cross-entropy, the same rl_lr) from the same base: the rank-1 explained
//           variance of its trajectory.
// Measured: the greedy accuracy over the p² table of the real checkpoints, of the RELEX and the
// naive extrapolations (and, at the end of the prefix, of θ_T, of the fitted line at T and of θ_T's
// rank-1 projection: the "fit_reconstruct" and "reconstruct" modes of the code), and the rank-1 explained variance Λ₁/ΣΛ of each weight matrix's trajectory
// (the 2-D weights of rlvr-geometry), averaged over the matrices; mean ± std over seeds.
//
// Checks, fixed from the paper's claim before any run (means over seeds; the tolerance of "matches"
// is 0.03 accuracy, about one point of three seeds' spread on a few hundred pairs):
//   precondition: RL learns                 accuracy at the last step − base ≥ 0.05
//   RELEX matches the fully trained model   RELEX accuracy at the last step − real ≥ −0.03
//   and keeps it beyond the run             RELEX accuracy at 2 × steps − real at the last step ≥ −0.03
//   the RL trajectory is (more) rank-1      rank-1 explained variance RL − SFT > 0
//   the rank-1 fit beats the naive one      RELEX accuracy − naive accuracy at the last step ≥ 0
#include <fmt/format.h>
#include <torch/torch.h>

#include "entries.h"
#include "stablelearn/core/error.h"
#include "stablelearn/diagnostics/relex.h"
#include "stablelearn/report/svg.h"
#include "token_task.h"

namespace stablelearn::experiments::repro {

using nlohmann::json;
namespace dg = stablelearn::diagnostics;

namespace {

constexpr double kFractions[] = {0.3, 0.6, 1.0, 2.0};  // evaluated steps / steps (2.0: beyond the run)
constexpr double kTolerance = 0.03;

// One rank-r fit per tensor of the trajectory history[t][i] (t = 1..T) around base[i].
std::vector<dg::RelexFit> fit_all(const std::vector<torch::Tensor>& base, const std::vector<std::vector<torch::Tensor>>& history,
                                  std::int64_t rank) {
  std::vector<dg::RelexFit> fits;
  for (std::size_t i = 0; i < base.size(); ++i) {
    std::vector<torch::Tensor> h;
    for (const auto& w : history) h.push_back(w[i].reshape({-1}));
    fits.push_back(dg::relex_fit(base[i].reshape({-1}), torch::stack(h), dg::RelexOptions().rank(rank)));
  }
  return fits;
}

std::vector<torch::Tensor> predict_all(const std::vector<dg::RelexFit>& fits, const std::vector<torch::Tensor>& base,
                                       double ahead) {
  std::vector<torch::Tensor> w;
  for (std::size_t i = 0; i < fits.size(); ++i) w.push_back(fits[i].predict(ahead).to(base[i].dtype()).view(base[i].sizes()));
  return w;
}

double mean_explained_variance(const std::vector<dg::RelexFit>& fits, const std::vector<std::size_t>& matrices) {
  double s = 0;
  for (auto i : matrices) s += fits[i].explained_variance / static_cast<double>(matrices.size());
  return s;
}

json run_seed(const ReproContext& ctx, std::int64_t k) {
  const auto progress = seed_progress(ctx, k);
  const auto steps = ctx.int_option("steps");
  const auto T = std::max<std::int64_t>(2, std::llround(ctx.option("fit_fraction") * static_cast<double>(steps)));
  SL_CHECK(T < steps, ConfigError, "options.fit_fraction: the fitted prefix (", T, " steps) must be shorter than steps = ", steps);
  progress(0, steps + T, "SFT pre-training");
  auto base = pretrained_token_base(ctx, k);
  auto& t = *base.trainer;
  const auto matrices = token_weight_matrices(t);
  std::vector<std::int64_t> at;
  for (double f : kFractions) at.push_back(std::llround(f * static_cast<double>(steps)));
  // RL: keep θ_1..θ_T, evaluate the real checkpoints at the fractions within the run.
  t.reset_optimizer(ctx.option("rl_lr"));
  std::vector<std::vector<torch::Tensor>> history;
  std::vector<double> reward;
  json real = json::object();
  double real_fit_end = 0;
  for (std::int64_t s = 1; s <= steps; ++s) {
    reward.push_back(t.grpo_step().mean_reward);
    if (s <= T) history.push_back(t.snapshot());
    if (s == T) real_fit_end = t.accuracy();
    for (auto a : at)
      if (a == s) real[std::to_string(s)] = t.accuracy();
    progress(s, steps + T, "GRPO");
  }
  const auto fits = fit_all(base.weights, history, 1);
  const auto naive = fit_all(base.weights, history, T);
  json relex = json::object(), lin = json::object();
  for (auto a : at) {
    relex[std::to_string(a)] = t.accuracy(predict_all(fits, base.weights, static_cast<double>(a - T)));
    lin[std::to_string(a)] = t.accuracy(predict_all(naive, base.weights, static_cast<double>(a - T)));
  }
  // Diagnostics at the end of the fitted prefix: the fitted line (ahead 0) and the rank-1 projection of θ_T.
  std::vector<torch::Tensor> projected;
  for (std::size_t i = 0; i < fits.size(); ++i)
    projected.push_back(fits[i].reconstruct(T - 1).to(base.weights[i].dtype()).view(base.weights[i].sizes()));
  const double relex_fit_end = t.accuracy(predict_all(fits, base.weights, 0.0)), rank1_fit_end = t.accuracy(projected);
  // Control: T SFT steps from the same base.
  t.load(base.weights);
  t.reset_optimizer(ctx.option("rl_lr"));
  std::vector<std::vector<torch::Tensor>> sft;
  for (std::int64_t s = 1; s <= T; ++s) {
    t.sft_step();
    sft.push_back(t.snapshot());
    progress(steps + s, steps + T, "SFT control");
  }
  const auto sft_fits = fit_all(base.weights, sft, 1);
  json ev = json::object();
  for (auto i : matrices) ev[t.model()->layout()[i].name] = fits[i].explained_variance;
  const auto last = std::to_string(steps), beyond = std::to_string(at.back());
  return {{"base_accuracy", base.pretrain.accuracy},
          {"pretrain_steps", base.pretrain.steps},
          {"pretrain_reached", base.pretrain.reached},
          {"fit_steps", T},
          {"real_fit_end", real_fit_end},
          {"relex_fit_end", relex_fit_end},
          {"rank1_fit_end", rank1_fit_end},
          {"real", real},
          {"relex", relex},
          {"naive", lin},
          {"final_accuracy", real.at(last)},
          {"relex_accuracy", relex.at(last)},
          {"relex_beyond_accuracy", relex.at(beyond)},
          {"naive_accuracy", lin.at(last)},
          {"rl_rank1_ev", mean_explained_variance(fits, matrices)},
          {"sft_rank1_ev", mean_explained_variance(sft_fits, matrices)},
          {"rl_rank1_ev_per_matrix", ev},
          {"rewards", reward}};
}

void write_figure(const RunDir& run, const ReproContext& ctx, const std::vector<json>& rows) {
  const auto steps = ctx.int_option("steps");
  report::SvgPlot plot(720, 440);
  plot.set_range(0, 2.0 * double(steps), 0, 1);
  plot.title("accuracy: real GRPO checkpoints vs RELEX / naive extrapolation from the first steps (mean over seeds)");
  plot.labels("GRPO step", "greedy accuracy over the table");
  const std::vector<std::pair<std::string, std::string>> series = {{"real", "#000000"}, {"relex", "#d62728"}, {"naive", "#1f77b4"}};
  for (const auto& [key, colour] : series) {
    std::vector<std::pair<double, double>> pts;
    double b = 0;
    for (const auto& r : rows) b += r.at("base_accuracy").get<double>() / double(rows.size());
    pts.emplace_back(0.0, b);
    for (const auto& [s, v] : rows.front().at(key).items()) {
      double a = 0;
      for (const auto& r : rows) a += r.at(key).at(s).get<double>() / double(rows.size());
      pts.emplace_back(std::stod(s), a);
    }
    std::sort(pts.begin(), pts.end());
    plot.polyline(pts, colour, 2.0);
    plot.legend(key == "real" ? "real checkpoints" : key == "relex" ? "RELEX (rank 1)" : "per-parameter line", colour);
  }
  run.write_text("relex_accuracy.svg", plot.str());
}

ReproOutcome summarise(const ReproContext& ctx, const std::vector<json>& rows) {
  ReproOutcome out;
  out.setup = token_task_setup(ctx);
  const auto steps = ctx.int_option("steps");
  out.setup["rl"] = fmt::format("{} GRPO steps from the base (Adam lr {}); the first round({} x {}) steps kept", steps,
                                ctx.option("rl_lr"), ctx.option("fit_fraction"), steps);
  out.setup["extrapolation"] = "per tensor: rank-1 SVD of the deltas, least-squares line through the coefficient, predicted at "
                               "0.3, 0.6, 1 and 2 x steps; naive: the per-parameter least-squares line";
  out.setup["control"] = "the same number of SFT steps from the base (Adam, the same lr): its rank-1 explained variance";
  std::map<std::string, double> m;
  auto add = [&](const std::string& name, const std::vector<double>& v) {
    put_seed_stats(out, name, v);
    m[name] = mean(v);
  };
  for (const char* key : {"base_accuracy", "pretrain_steps", "fit_steps", "real_fit_end", "relex_fit_end", "rank1_fit_end", "final_accuracy", "relex_accuracy",
                          "relex_beyond_accuracy", "naive_accuracy", "rl_rank1_ev", "sft_rank1_ev"})
    add(key, per_seed(rows, key));
  for (const char* series : {"real", "relex", "naive"})
    for (const auto& [s, v] : rows.front().at(series).items()) add(fmt::format("{}_at_{}", series, s), per_seed_at(rows, fmt::format("/{}/{}", series, s)));
  out.checks = {
      make_check("precondition, RL learns: accuracy at the last step - base (means)", m["final_accuracy"] - m["base_accuracy"],
                 ">=", 0.05),
      make_check("RELEX matches the fully trained model: RELEX accuracy at the last step - real (means)",
                 m["relex_accuracy"] - m["final_accuracy"], ">=", -kTolerance),
      make_check("RELEX keeps it beyond the run: RELEX accuracy at 2 x steps - real at the last step (means)",
                 m["relex_beyond_accuracy"] - m["final_accuracy"], ">=", -kTolerance),
      make_check("the RL trajectory is more rank-1 than SFT's: rank-1 explained variance RL - SFT (means)",
                 m["rl_rank1_ev"] - m["sft_rank1_ev"], ">", 0),
      make_check("the rank-1 fit beats the per-parameter line: RELEX - naive accuracy at the last step (means)",
                 m["relex_accuracy"] - m["naive_accuracy"], ">=", 0)};
  if (ctx.run) write_figure(*ctx.run, ctx, rows);
  return out;
}

}  // namespace

ReproEntry make_relex_repro() {
  ReproEntry e;
  e.name = "relex";
  e.paper = "You Only Need Minimal RLVR Training: extrapolating LLMs via rank-1 trajectories (RELEX; Wei, Zhu, Chen, Huang, "
            "Huang, Meng, arXiv 2605.21468, 2026)";
  e.claim = "An RLVR weight trajectory is nearly rank-1 with a coefficient growing linearly in the step, so a rank-1 fit of "
            "the first 15 % of the checkpoints, extrapolated to the end of training and beyond, matches the accuracy of "
            "the fully trained model (better than a per-parameter linear extrapolation).";
  e.options = token_task_options("Adam learning rate of the SFT pre-training", "step budget of the pre-training");
  e.options.push_back({"rl_lr", "Adam learning rate of GRPO and of the SFT control", 5e-4, 5e-4, false});
  e.options.push_back({"steps", "GRPO steps", 500, 200, true});
  e.options.push_back({"fit_fraction", "share of the GRPO steps RELEX is fitted on", 0.15, 0.15, false});
  e.run_seed = run_seed;
  e.summarise = summarise;
  return e;
}

}  // namespace stablelearn::experiments::repro
