// repro rlvr-geometry: Zhu et al., "The Path Not Taken: RLVR Provably Learns Off the Principals"
// (arXiv 2511.08567; shared/specs/papers-01-18.md §16), the spec's smallest faithful CPU experiment:
// a small causal transformer (models/transformer.h: 4 heads, learned positions, pre-LayerNorm blocks
// with an MLP) answers a + b mod p with one token (rl/token_grpo.h). It is "pre-trained" by SFT to a
// moderate greedy accuracy on the p² table (base_accuracy); from that base two fine-tunings run with
// the same Adam learning rate, batch of prompts and stopping rule:
//   RL   GRPO with `group` sampled answers per prompt, reward 1[ŷ = y], group-normalised advantages,
//        clip 0.2, 2 Adam steps per batch, k3 KL to the base (β = kl_coef);
//   SFT  cross-entropy on the ground-truth answers;
// each stopped at the first check (every eval_every steps) where the table accuracy reaches
// base + gain (the matched accuracy gain of the spec). Per weight matrix W₀ → W₁ (every 2-D weight
// but the 4-row position embedding: token embedding, in_proj, out_proj, fc_1, fc_2 per layer, head;
// diagnostics/spectra.h and update_alignment.h), with the rank k option:
//   spectral drift      ‖σ_{1:k}(W₁) − σ_{1:k}(W₀)‖/‖σ_{1:k}(W₀)‖ (and the full-spectrum NSS)
//   principal angles    between the top-k left and the top-k right singular subspaces of W₀ and W₁,
//                       the mean of the 2k angles in degrees (and the largest)
//   off-principal share 1 − ‖U_kᵀ ΔW V_k‖_F²/‖ΔW‖_F² (random update: 1 − k²/(mn))
//   principal overlap   share of ΔW's top-α entries (by |ΔW|) among the top-α entries of the rank-k
//                       reconstruction |W₀^{(k)}| (random: α)
//   bf16-unchanged      share of entries with bf16(W₁) = bf16(W₀) (reported, not checked: fp32 run)
// each averaged over the matrices, then mean ± std over seeds.
//
// Checks, fixed from the paper's claim before any run (means over seeds):
//   precondition: the base is moderate    every seed's pre-training reached base_accuracy (share = 1)
//   precondition: the gains are matched    every RL and SFT run reached base + gain (share = 1)
//   RL preserves the spectrum               top-k spectral drift RL / SFT < 1
//   RL rotates the principal subspaces less mean principal angle RL / SFT < 1
//   RL's update is off the principals       off-principal energy share RL − SFT > 0
//   RL avoids the principal weights         principal-mask overlap RL / α < 1 (below random)
//   SFT targets them more than RL           principal-mask overlap SFT − RL > 0
#include <fmt/format.h>
#include <torch/torch.h>

#include "entries.h"
#include "stablelearn/core/error.h"
#include "stablelearn/diagnostics/spectra.h"
#include "stablelearn/diagnostics/update_alignment.h"
#include "stablelearn/report/svg.h"
#include "token_task.h"

namespace stablelearn::experiments::repro {

using nlohmann::json;
namespace dg = stablelearn::diagnostics;

std::vector<ReproOption> token_task_options(const std::string& lr_doc, const std::string& max_steps_doc) {
  return {{"p", "modulus of the addition task", 31, 23, true},
          {"d_model", "transformer width", 64, 32, true},
          {"layers", "transformer blocks", 2, 1, true},
          {"batch", "prompts per step", 64, 64, true},
          {"group", "sampled answers per prompt (GRPO)", 8, 8, true},
          {"lr", lr_doc, 1e-3, 1e-3, false},
          {"kl_coef", "beta of GRPO's k3 KL to the base", 0.02, 0.02, false},
          {"base_accuracy", "accuracy the SFT pre-training stops at", 0.6, 0.6, false},
          {"eval_every", "steps between accuracy checks", 10, 10, true},
          {"max_steps", max_steps_doc, 6000, 2000, true}};
}

rl::TokenTrainerOptions token_trainer_options(const ReproContext& ctx, std::int64_t k) {
  rl::TokenTrainerOptions o;
  o.p = ctx.int_option("p");
  o.d_model = ctx.int_option("d_model");
  o.heads = 4;
  o.layers = ctx.int_option("layers");
  o.batch = ctx.int_option("batch");
  o.group = ctx.int_option("group");
  o.epochs = 2;
  o.lr = ctx.option("lr");
  o.clip = 0.2;
  o.kl_coef = ctx.option("kl_coef");
  o.seed = static_cast<std::int64_t>(ctx.seed) + k;
  options::check(o, "options");
  return o;
}

TokenBase pretrained_token_base(const ReproContext& ctx, std::int64_t k) {
  TokenBase b;
  b.trainer = std::make_unique<rl::TokenTrainer>(token_trainer_options(ctx, k));
  b.pretrain = b.trainer->train_until(false, ctx.option("base_accuracy"), ctx.int_option("eval_every"),
                                      ctx.int_option("max_steps"));
  b.weights = b.trainer->snapshot();
  b.trainer->set_reference();
  return b;
}

json token_task_setup(const ReproContext& ctx) {
  const auto p = ctx.int_option("p"), d = ctx.int_option("d_model");
  return {{"task", fmt::format("a + b mod {}: prompt [a, +, b, =], one answer token read at '='; accuracy = greedy "
                               "accuracy over all {} pairs; prompts drawn uniformly from the table",
                               p, p * p)},
          {"model", fmt::format("causal transformer, {} pre-LayerNorm block(s) (attention + MLP {}), d = {}, 4 heads, "
                                "learned positions, head to {} answers",
                                ctx.int_option("layers"), 4 * d, d, p)},
          {"pretraining", fmt::format("SFT (Adam lr {}, batch {}) from a random initialisation until the accuracy "
                                      "reaches {} (checked every {} steps, at most {} steps)",
                                      ctx.option("lr"), ctx.int_option("batch"), ctx.option("base_accuracy"),
                                      ctx.int_option("eval_every"), ctx.int_option("max_steps"))},
          {"grpo", fmt::format("{} prompts x {} sampled answers per step, reward 1[answer right], group-normalised "
                               "advantages, clip 0.2, 2 Adam steps per batch (lr {}), k3 KL to the base with beta {}",
                               ctx.int_option("batch"), ctx.int_option("group"), ctx.option("lr"), ctx.option("kl_coef"))}};
}

std::vector<std::size_t> token_weight_matrices(const rl::TokenTrainer& t) {
  std::vector<std::size_t> idx;
  const auto& layout = t.model()->layout();
  for (std::size_t i = 0; i < layout.size(); ++i)
    if (layout[i].shape.size() == 2 && layout[i].name != "embed.position") idx.push_back(i);
  return idx;
}

namespace {

const std::vector<std::string>& method_keys() {
  static const std::vector<std::string> k = {"rl", "sft"};
  return k;
}
const std::vector<std::string>& geometry_keys() {
  static const std::vector<std::string> k = {"drift_topk",     "drift_full",             "angle_deg",   "angle_max_deg",
                                             "off_principal",  "off_principal_baseline", "left",        "right",
                                             "mask_overlap",   "bf16_unchanged",         "update_rel_norm"};
  return k;
}

constexpr double kDegrees = 180.0 / 3.14159265358979323846;

// The geometry of W₀ → W₁ for every measured matrix, and their means.
json geometry(const rl::TokenTrainer& t, const std::vector<torch::Tensor>& w0, const std::vector<torch::Tensor>& w1,
              std::int64_t k, double alpha) {
  json per = json::array();
  std::map<std::string, double> sum;
  const auto idx = token_weight_matrices(t);
  for (auto i : idx) {
    const auto a = w0[i].to(torch::kDouble), b = w1[i].to(torch::kDouble);
    const auto kk = std::min<std::int64_t>(k, std::min(a.size(0), a.size(1)));
    const auto pa = dg::principal_angles(a, b, kk);
    const auto angles = torch::cat({pa.left, pa.right}) * kDegrees;
    const auto al = dg::update_alignment(a, b, kk);
    std::map<std::string, double> m = {
        {"drift_topk", dg::spectral_drift(a, b, kk)},
        {"drift_full", dg::spectral_drift(a, b)},
        {"angle_deg", angles.mean().item<double>()},
        {"angle_max_deg", angles.max().item<double>()},
        {"off_principal", 1.0 - al.two_sided},
        {"off_principal_baseline", 1.0 - al.two_sided_baseline},
        {"left", al.left},
        {"right", al.right},
        {"mask_overlap", dg::principal_mask_overlap(a, b - a, kk, alpha)},
        {"bf16_unchanged", dg::bf16_unchanged_share(w0[i], w1[i])},
        {"update_rel_norm", (b - a).norm().item<double>() / a.norm().item<double>()}};
    json row = {{"matrix", t.model()->layout()[i].name}, {"k", kk}};
    for (const auto& [key, v] : m) {
      row[key] = finite_or_null(v);
      sum[key] += v / static_cast<double>(idx.size());
    }
    per.push_back(row);
  }
  json out = {{"matrices", per}};
  for (const auto& key : geometry_keys()) out[key] = finite_or_null(sum[key]);
  return out;
}

json run_seed(const ReproContext& ctx, std::int64_t k) {
  const auto progress = seed_progress(ctx, k);
  const auto max_steps = ctx.int_option("max_steps"), every = ctx.int_option("eval_every");
  progress(0, 3, "SFT pre-training");
  auto base = pretrained_token_base(ctx, k);
  auto& t = *base.trainer;
  const double acc0 = base.pretrain.accuracy, target = acc0 + ctx.option("gain");
  json row = {{"base_accuracy", acc0},
              {"pretrain_steps", base.pretrain.steps},
              {"pretrain_reached", base.pretrain.reached},
              {"target_accuracy", target}};
  std::int64_t phase = 1;
  for (const auto& m : method_keys()) {
    progress(phase++, 3, m == "rl" ? "GRPO to the matched gain" : "SFT to the matched gain");
    t.load(base.weights);
    t.reset_optimizer();
    const auto r = t.train_until(m == "rl", target, every, max_steps);
    auto g = geometry(t, base.weights, t.snapshot(), ctx.int_option("k"), ctx.option("alpha"));
    g["steps"] = r.steps;
    g["reached"] = r.reached;
    g["accuracy"] = r.accuracy;
    g["gain"] = r.accuracy - acc0;
    g["trace"] = r.trace;
    row[m] = g;
  }
  return row;
}

void write_figure(const RunDir& run, const std::vector<json>& rows) {
  // Per matrix (seed 0): off-principal share, RL against SFT, with the random baseline.
  const auto& r = rows.front();
  const auto n = r.at("rl").at("matrices").size();
  report::SvgPlot plot(720, 440);
  plot.set_range(0, double(n + 1), 0, 1);
  plot.title("off-principal energy share of the update per weight matrix (seed 0)");
  plot.labels("weight matrix (layout order)", "1 - |U_k^T dW V_k|^2 / |dW|^2");
  const std::vector<std::pair<std::string, std::string>> series = {{"rl", "#d62728"}, {"sft", "#1f77b4"}};
  for (const auto& [m, colour] : series) {
    std::vector<std::pair<double, double>> pts;
    for (std::size_t i = 0; i < n; ++i) pts.emplace_back(double(i + 1), r.at(m).at("matrices")[i].at("off_principal").get<double>());
    plot.polyline(pts, colour, 2.0);
    plot.legend(m == "rl" ? "RL (GRPO)" : "SFT", colour);
  }
  std::vector<std::pair<double, double>> base;
  for (std::size_t i = 0; i < n; ++i)
    base.emplace_back(double(i + 1), r.at("rl").at("matrices")[i].at("off_principal_baseline").get<double>());
  plot.polyline(base, "#7f7f7f", 1.0);
  plot.legend("random update", "#7f7f7f");
  run.write_text("rlvr_geometry_off_principal.svg", plot.str());
}

ReproOutcome summarise(const ReproContext& ctx, const std::vector<json>& rows) {
  ReproOutcome out;
  out.setup = token_task_setup(ctx);
  out.setup["fine-tuning"] = fmt::format(
      "from the base, RL (GRPO) and SFT with fresh Adam states, each until the accuracy reaches base + {} (checked every "
      "{} steps, at most {} steps)",
      ctx.option("gain"), ctx.int_option("eval_every"), ctx.int_option("max_steps"));
  out.setup["geometry"] = fmt::format(
      "per 2-D weight (token embedding, in_proj, out_proj, fc_1, fc_2, head), top k = {} (min(k, rows, cols)), "
      "principal mask alpha = {}; averaged over the matrices",
      ctx.int_option("k"), ctx.option("alpha"));
  std::map<std::string, double> m;
  auto add = [&](const std::string& name, const std::vector<double>& v) {
    put_seed_stats(out, name, v);
    m[name] = mean(v);
  };
  add("base_accuracy", per_seed(rows, "base_accuracy"));
  add("pretrain_steps", per_seed(rows, "pretrain_steps"));
  for (const auto& meth : method_keys()) {
    for (const char* key : {"steps", "accuracy", "gain"}) add(meth + "_" + key, per_seed_at(rows, "/" + meth + "/" + key));
    for (const auto& key : geometry_keys()) add(meth + "_" + key, per_seed_at(rows, "/" + meth + "/" + key));
  }
  double pre = 0, reached = 0;
  for (const auto& r : rows) {
    pre += r.at("pretrain_reached").get<bool>() ? 1 : 0;
    for (const auto& meth : method_keys()) reached += r.at(meth).at("reached").get<bool>() ? 1 : 0;
  }
  const double n = static_cast<double>(rows.size()), alpha = ctx.option("alpha");
  out.metrics["pretrain_reached_share"] = pre / n;
  out.metrics["matched_gain_share"] = reached / (2 * n);
  out.checks = {
      make_check("precondition, a moderate base: share of seeds whose SFT pre-training reached base_accuracy", pre / n, ">=",
                 1),
      make_check("precondition, matched gains: share of RL and SFT runs that reached base + gain", reached / (2 * n), ">=",
                 1),
      make_check("RL preserves the spectrum: top-k spectral drift RL / SFT (means)", m["rl_drift_topk"] / m["sft_drift_topk"],
                 "<", 1),
      make_check("RL rotates the principal subspaces less: mean principal angle RL / SFT (means)",
                 m["rl_angle_deg"] / m["sft_angle_deg"], "<", 1),
      make_check("RL's update is off the principals: off-principal energy share RL - SFT (means)",
                 m["rl_off_principal"] - m["sft_off_principal"], ">", 0),
      make_check("RL avoids the principal weights: principal-mask overlap RL / alpha (mean; random = 1)",
                 m["rl_mask_overlap"] / alpha, "<", 1),
      make_check("SFT targets the principal weights more: principal-mask overlap SFT - RL (means)",
                 m["sft_mask_overlap"] - m["rl_mask_overlap"], ">", 0)};
  if (ctx.run) write_figure(*ctx.run, rows);
  return out;
}

}  // namespace

ReproEntry make_rlvr_geometry_repro() {
  ReproEntry e;
  e.name = "rlvr-geometry";
  e.paper = "The Path Not Taken: RLVR Provably Learns Off the Principals (Zhu et al., arXiv 2511.08567, 2025)";
  e.claim = "Fine-tuned to the same accuracy gain, RL with a verifiable reward changes the weights off their principal "
            "(top singular) directions and preserves the spectrum, while SFT targets the principal directions and "
            "distorts the spectrum: smaller spectral drift, less principal-subspace rotation, more off-principal update "
            "energy and below-random overlap with the principal weights for RL.";
  e.options = token_task_options("Adam learning rate (pre-training, RL and SFT)", "step budget of each phase");
  e.options.push_back({"gain", "accuracy gain both fine-tunings stop at", 0.15, 0.1, false});
  e.options.push_back({"k", "top-k singular subspace", 8, 4, true});
  e.options.push_back({"alpha", "share of entries in the principal and update masks", 0.1, 0.1, false});
  e.run_seed = run_seed;
  e.summarise = summarise;
  return e;
}

}  // namespace stablelearn::experiments::repro
