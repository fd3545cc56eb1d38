// repro drl-diagnosis: Korkmaz, "Understanding and Diagnosing Deep Reinforcement Learning" (ICML
// 2024, PMLR 235:25265-25275, arXiv 2406.16979; shared/specs/papers-01-18.md §11), the spec's
// smallest faithful CPU experiment on the 4-D CartPole state (the pixel variant with the spatial map
// of G_S and its Fourier spectrum is the sibling entry drl-diagnosis-pixels, at the end of this
// file). Library: rl/diagnosis.h, rl/dqn.h, rl/distill.h (docs/rl.md).
//
// Per seed, two DDQN agents (dueling 4-128-128-2, the DdqnOptions defaults) on CartPole-v1:
//   vanilla       plain DDQN
//   adversarial   DDQN trained on FGSM-perturbed observations (DdqnOptions::adv_eps = `adv_eps`, in
//                 minibatch standard deviations per dimension)
// each trained for at most `steps` env steps, stopped early as the DDQN learning test does (every
// 2000 env steps, once training episodes average >= 150, a 20-episode greedy evaluation; stop at
// >= 490). Then, per agent, two independent sets of `episodes` greedy episodes (S from env seed
// 1000 s + 11, S' from 1000 s + 22); σ = the per-dimension standard deviation of S's states:
//   Λ_clean = Λ(S', S)                         two independent clean state sets
//   Λ_noise = Λ(S' + noise · σ ⊙ N(0, 1), S)    Gaussian observation noise
//   Λ_scale = Λ(scale · S', S)                 state scaling (the brightness analogue)
//   Λ_fgsm  = Λ(FGSM_{attack_eps · σ}(S'), S)   FGSM against the agent's own greedy action
// the temporal oscillation of ‖v(s_t)‖ (mean_t |Δ‖v‖| / mean_t ‖v‖) per episode of S, averaged
// over episodes, the principal direction G_S, the clean greedy return and the return when every
// observation is FGSM-attacked (`eval_episodes` episodes).
//
// Checks, fixed from the paper's claims before any run (means over seeds):
//   precondition: both agents learn              greedy return on S ≥ 195 (vanilla; adversarial)
//   Λ near 1 between independent clean sets      vanilla Λ_clean ≥ 0.9
//   Λ lower under observation noise              vanilla Λ_noise − Λ_clean < 0
//   Λ lower under state scaling                  vanilla Λ_scale − Λ_clean < 0
//   Λ lower under FGSM                           vanilla Λ_fgsm − Λ_clean < 0
//   the adversarially trained policy's larger    oscillation(adversarial) / oscillation(vanilla) > 1
//   temporal oscillation of ‖v(s_t)‖
#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <memory>

#include <fmt/format.h>
#include <torch/torch.h>

#include "entries.h"
#include "stablelearn/core/error.h"
#include "stablelearn/report/svg.h"
#include "stablelearn/rl/cartpole_pixels.h"
#include "stablelearn/rl/diagnosis.h"
#include "stablelearn/rl/distill.h"
#include "stablelearn/rl/dqn.h"
#include "stablelearn/rl/env.h"

namespace stablelearn::experiments::repro {

using nlohmann::json;

namespace {

constexpr const char* kEnv = "CartPole-v1";

std::vector<double> to_vector(const torch::Tensor& t) {
  const auto c = t.detach().to(torch::kCPU, torch::kDouble).contiguous();
  return {c.data_ptr<double>(), c.data_ptr<double>() + c.numel()};
}

// A DDQN agent on the 4-D state, trained as the header says (shared by both entries).
struct StateAgent {
  std::unique_ptr<rl::Ddqn> dqn;
  bool solved = false;
  std::int64_t evals = 0;
};

StateAgent train_state_agent(const ReproContext& ctx, std::int64_t seed, bool adversarial,
                             const std::function<void(std::int64_t, const std::string&)>& report) {
  const char* key = adversarial ? "adversarial" : "vanilla";
  rl::DdqnOptions o;
  o.seed = seed;
  o.adv_eps = adversarial ? ctx.option("adv_eps") : 0.0;
  StateAgent agent;
  agent.dqn = std::make_unique<rl::Ddqn>(o);
  auto& dqn = *agent.dqn;
  rl::PolicyFn greedy = [&](const float* obs, std::int64_t n, std::int32_t* a) { dqn.act(obs, n, a); };
  auto avg = [](const std::vector<double>& v) { return mean(v); };
  dqn.train(
      ctx.int_option("steps"),
      [&](const rl::DdqnStats& s) {
        report(s.env_steps, fmt::format("{}, return {:.1f}", key, s.mean_return));
        if (!(s.mean_return >= 150)) return true;
        ++agent.evals;
        agent.solved = avg(rl::evaluate(kEnv, greedy, 20, static_cast<std::uint64_t>(1000 + s.env_steps))) >= 490;
        return !agent.solved;
      },
      2000);
  return agent;
}

/// ‖v(s_t)‖ along each episode of a set (the agent's inputs of episode e: input(e)): per episode
/// its temporal oscillation and mean, and the first episode's curve.
struct NormTrace {
  std::vector<double> osc, mean_norm, norms0;
};
NormTrace norm_trace(const rl::QFunction& q, std::size_t episodes, const std::function<torch::Tensor(std::size_t)>& input) {
  NormTrace t;
  for (std::size_t e = 0; e < episodes; ++e) {
    const auto nrm = to_vector(rl::direction_norms(q, input(e)));
    if (e == 0) t.norms0 = nrm;
    t.osc.push_back(rl::temporal_oscillation(nrm));
    t.mean_norm.push_back(mean(nrm));
  }
  return t;
}

/// The metrics both variants report for one agent.
struct Diagnosis {
  std::vector<double> returns, attacked_returns;
  std::int64_t states = 0;
  double lambda_clean = 0, lambda_noise = 0, lambda_scale = 0, lambda_fgsm = 0;
  NormTrace trace;
};
json diagnosis_json(const Diagnosis& d, const rl::PrincipalDirection& gs, const rl::PrincipalDirection& gs2) {
  json osc = json::array();
  for (double x : d.trace.osc) osc.push_back(finite_or_null(x));
  return {{"return", mean(d.returns)},
          {"returns", d.returns},
          {"attacked_return", mean(d.attacked_returns)},
          {"states", d.states},
          {"lambda_clean", finite_or_null(d.lambda_clean)},
          {"lambda_noise", finite_or_null(d.lambda_noise)},
          {"lambda_scale", finite_or_null(d.lambda_scale)},
          {"lambda_fgsm", finite_or_null(d.lambda_fgsm)},
          {"oscillations", osc},
          {"oscillation", finite_or_null(mean(d.trace.osc))},
          {"mean_v_norm", finite_or_null(mean(d.trace.mean_norm))},
          {"v_norms_episode0", d.trace.norms0},
          {"principal_eigenvalue", gs.eigenvalue},
          {"principal_converged", gs.converged && gs2.converged},
          {"principal_cosine_clean", std::abs(gs.direction.dot(gs2.direction).item<double>())}};
}

/// Per agent ("vanilla", "adversarial") and key: the per-seed values, their mean and std into
/// out.metrics as <agent>_<key>[_mean|_std]; returns the means by that name.
std::map<std::string, double> aggregate(const std::vector<json>& rows, const std::vector<const char*>& keys,
                                        ReproOutcome& out) {
  std::map<std::string, double> m;
  for (const char* a : {"vanilla", "adversarial"})
    for (const char* key : keys) {
      const auto v = per_seed_at(rows, fmt::format("/{}/{}", a, key));
      const auto name = fmt::format("{}_{}", a, key);
      put_seed_stats(out, name, v);
      m[name] = mean(v);
    }
  return m;
}

json train_and_diagnose(const ReproContext& ctx, std::int64_t seed, bool adversarial,
                        const std::function<void(std::int64_t, const std::string&)>& report) {
  auto agent = train_state_agent(ctx, seed, adversarial, report);
  auto& dqn = *agent.dqn;
  const bool solved = agent.solved;
  const std::int64_t evals = agent.evals;
  rl::PolicyFn greedy = [&](const float* obs, std::int64_t n, std::int32_t* a) { dqn.act(obs, n, a); };
  rl::QFunction q = [&](const torch::Tensor& x) { return dqn.model()->forward(x); };
  const auto base_seed = static_cast<std::uint64_t>(1000 * seed);
  const auto episodes = ctx.int_option("episodes");
  const auto A = rl::collect_episodes(kEnv, greedy, episodes, base_seed + 11);
  const auto B = rl::collect_episodes(kEnv, greedy, episodes, base_seed + 22);
  const auto S = torch::cat(A.states, 0), S2 = torch::cat(B.states, 0);
  const auto sigma = S.std(0, /*unbiased=*/false);
  const auto V = rl::non_lipschitz_directions(q, S), V2 = rl::non_lipschitz_directions(q, S2);
  const double lambda_clean = rl::feature_correlation_quotient(V2, V);
  torch::manual_seed(static_cast<std::uint64_t>(seed) * 7919 + (adversarial ? 1 : 0));
  const auto noisy = S2 + ctx.option("noise") * sigma * torch::randn_like(S2);
  const double lambda_noise = rl::feature_correlation_quotient(rl::non_lipschitz_directions(q, noisy), V);
  const double lambda_scale = rl::feature_correlation_quotient(rl::non_lipschitz_directions(q, ctx.option("scale") * S2), V);
  const auto attacked = rl::fgsm(q, S2, ctx.option("attack_eps"), sigma);
  const double lambda_fgsm = rl::feature_correlation_quotient(rl::non_lipschitz_directions(q, attacked), V);
  // ‖v(s_t)‖ along the episodes of S.
  const auto trace = norm_trace(q, A.states.size(), [&](std::size_t e) { return A.states[e]; });
  const auto gs = rl::principal_direction(V), gs2 = rl::principal_direction(V2);
  // The return when every observation the policy sees is FGSM-attacked.
  rl::PolicyFn attacked_policy = [&](const float* obs, std::int64_t n, std::int32_t* a) {
    const auto x = torch::from_blob(const_cast<float*>(obs), {n, 4}, torch::kFloat).clone();
    const auto adv = rl::fgsm(q, x, ctx.option("attack_eps"), sigma).contiguous();
    dqn.act(adv.data_ptr<float>(), n, a);
  };
  const auto attacked_returns =
      rl::evaluate(kEnv, attacked_policy, ctx.int_option("eval_episodes"), base_seed + 33);
  auto out = diagnosis_json({A.returns, attacked_returns, S.size(0), lambda_clean, lambda_noise, lambda_scale,
                             lambda_fgsm, trace},
                            gs, gs2);
  out.update({{"env_steps", dqn.env_steps()},
              {"solved", solved},
              {"evaluations", evals},
              {"sigma", to_vector(sigma)},
              {"principal_direction", to_vector(gs.direction)}});
  return out;
}

using Report = std::function<void(std::int64_t, const std::string&)>;

// Seed k's row of either variant: the vanilla then the adversarial agent, each diagnosed by
// `diagnose(seed, adversarial, report)`, their progress reported as one bar of 2 x steps.
// `steps`: each agent's env-step budget on the bar (-1: the option steps).
template <class Diagnose>
json both_agents(const ReproContext& ctx, std::int64_t k, Diagnose&& diagnose, std::int64_t steps = -1) {
  const auto seed = static_cast<std::int64_t>(ctx.seed) + k;
  const auto progress = seed_progress(ctx, k);
  if (steps < 0) steps = ctx.int_option("steps");
  json row = json::object();
  row["vanilla"] = diagnose(seed, false, Report([&](std::int64_t s, const std::string& w) { progress(s, 2 * steps, w); }));
  row["adversarial"] =
      diagnose(seed, true, Report([&](std::int64_t s, const std::string& w) { progress(steps + s, 2 * steps, w); }));
  return row;
}

json run_seed(const ReproContext& ctx, std::int64_t k) {
  return both_agents(ctx, k, [&](std::int64_t seed, bool adversarial, const Report& report) {
    return train_and_diagnose(ctx, seed, adversarial, report);
  });
}

void write_figure(const RunDir& run, const json& row, const std::string& file = "drl_diagnosis_v_norm.svg",
                  const std::string& what = "DDQN") {
  const std::vector<std::pair<const char*, std::string>> agents = {{"vanilla", "#1f77b4"}, {"adversarial", "#d62728"}};
  double lo = 1e300, hi = 0, tmax = 1;
  for (const auto& [key, c] : agents) {
    const auto& n = row.at(key).at("v_norms_episode0");
    tmax = std::max(tmax, double(n.size()));
    for (const auto& x : n)
      if (x.get<double>() > 0) {
        lo = std::min(lo, x.get<double>());
        hi = std::max(hi, x.get<double>());
      }
  }
  if (!(hi > 0)) return;
  lo = std::max(lo, hi * 1e-12);
  report::SvgPlot plot(760, 440);
  plot.log_y(true);
  plot.set_range(0, tmax, lo / 2, hi * 2);
  plot.title("||v(s_t)|| along the first greedy episode (seed 0)");
  plot.labels("step t", "||v(s_t)|| (log scale)");
  for (const auto& [key, c] : agents) {
    std::vector<std::pair<double, double>> pts;
    const auto& n = row.at(key).at("v_norms_episode0");
    for (std::size_t t = 0; t < n.size(); ++t) pts.emplace_back(double(t), std::max(lo, n[t].get<double>()));
    plot.polyline(pts, c, 1.2);
    plot.legend(std::string(key) + " " + what, c);
  }
  run.write_text(file, plot.str());
}

ReproOutcome summarise(const ReproContext& ctx, const std::vector<json>& rows) {
  ReproOutcome out;
  out.setup = {
      {"environment", "CartPole-v1 (4-D state, returns up to 500)"},
      {"agents", fmt::format("vanilla DDQN and DDQN trained on FGSM-perturbed observations (adv_eps {} minibatch std per "
                             "dimension); dueling 4-128-128-2, the DdqnOptions defaults; at most {} env steps each, early stop "
                             "at a 20-episode greedy mean >= 490",
                             ctx.option("adv_eps"), ctx.int_option("steps"))},
      {"state_sets", fmt::format("two independent sets of {} greedy episodes per agent", ctx.int_option("episodes"))},
      {"transformations", fmt::format("Gaussian noise {} sigma, scaling x{}, FGSM {} sigma (sigma: per-dimension std of the "
                                      "baseline states)",
                                      ctx.option("noise"), ctx.option("scale"), ctx.option("attack_eps"))},
      {"v", "gradient of CE(softmax Q(s), onehot argmax Q(s)) in s, unnormalised; G_S by power iteration on V^T V; "
            "Lambda(S', S) = G_S'^T L(S) G_S' / lambda_max(L(S))"}};
  auto m = aggregate(rows, {"return", "attacked_return", "env_steps", "lambda_clean", "lambda_noise", "lambda_scale",
                            "lambda_fgsm", "oscillation", "mean_v_norm", "principal_cosine_clean"},
                     out);
  out.checks = {
      make_check("precondition, vanilla DDQN learns: greedy return (mean)", m["vanilla_return"], ">=", 195),
      make_check("precondition, adversarially trained DDQN learns: greedy return (mean)", m["adversarial_return"], ">=", 195),
      make_check("Lambda near 1 between independent clean state sets: vanilla Lambda_clean (mean)", m["vanilla_lambda_clean"], ">=",
                 0.9),
      make_check("Lambda lower under observation noise: vanilla Lambda_noise - Lambda_clean (mean)",
                 m["vanilla_lambda_noise"] - m["vanilla_lambda_clean"], "<", 0),
      make_check("Lambda lower under state scaling: vanilla Lambda_scale - Lambda_clean (mean)",
                 m["vanilla_lambda_scale"] - m["vanilla_lambda_clean"], "<", 0),
      make_check("Lambda lower under FGSM: vanilla Lambda_fgsm - Lambda_clean (mean)",
                 m["vanilla_lambda_fgsm"] - m["vanilla_lambda_clean"], "<", 0),
      make_check("larger temporal oscillation of ||v(s_t)||: adversarial / vanilla (means)",
                 m["adversarial_oscillation"] / m["vanilla_oscillation"], ">", 1)};
  if (ctx.run) write_figure(*ctx.run, rows.front());
  return out;
}

// ---------------------------------------------------------------------------------------------
// drl-diagnosis-pixels: the same diagnosis on CartPolePixels-v1, with pixel Q-networks distilled
// from the state agents (see make_drl_diagnosis_pixels_repro's comment).

// The option distill_loss (1, 2, 3) as rl::distill's loss name; ConfigError otherwise.
std::string distill_loss_name(const ReproContext& ctx) {
  const auto k = ctx.int_option("distill_loss");
  SL_CHECK(k >= 1 && k <= 3, ConfigError, "options.distill_loss: must be 1 (mse), 2 (nll) or 3 (kl), got ", k);
  return k == 1 ? "mse" : k == 2 ? "nll" : "kl";
}

constexpr std::int64_t kH = rl::CartPolePixels::kHeight, kW = rl::CartPolePixels::kWidth, kFrame = kH * kW;

// The frames [previous, current] of episodes of CartPole states (rl::rasterise_episode with
// supersampling ss; ss = 1: CartPolePixels-v1's observations), concatenated: [Σ T, 2 · 40 · 60].
torch::Tensor all_frames(const std::vector<torch::Tensor>& episodes, std::int64_t ss) {
  std::vector<torch::Tensor> frames;
  for (const auto& st : episodes) {
    const auto s = st.to(torch::kFloat).contiguous();
    auto f = torch::empty({s.size(0), 2 * kFrame}, torch::kFloat);
    rl::rasterise_episode(s.data_ptr<float>(), s.size(0), kH, kW, f.data_ptr<float>(), ss);
    frames.push_back(f);
  }
  return torch::cat(frames, 0);
}

// A policy on frames as a policy on CartPole-v1's states: each call renders the n copies' states as
// frames [previous, current], the previous frame being the last call's current one (the current one
// at the first call, a reset). It is right for every copy's first episode, the one collect_episodes
// and evaluate record (with supersampling 1 it is CartPolePixels-v1 with the same seeds).
rl::PolicyFn on_frames(const rl::PolicyFn& pixel_policy, std::int64_t ss) {
  auto prev = std::make_shared<std::vector<float>>();
  return [pixel_policy, ss, prev](const float* obs, std::int64_t n, std::int32_t* a) {
    std::vector<float> x(static_cast<std::size_t>(n * 2 * kFrame));
    const bool first = prev->empty();
    prev->resize(static_cast<std::size_t>(n * kFrame));
    for (std::int64_t i = 0; i < n; ++i) {
      float* cur = x.data() + (2 * i + 1) * kFrame;
      rl::rasterise_cartpole(obs + 4 * i, kH, kW, cur, ss);
      float* p = prev->data() + i * kFrame;
      if (first) std::copy(cur, cur + kFrame, p);
      std::copy(p, p + kFrame, x.data() + 2 * i * kFrame);
      std::copy(cur, cur + kFrame, p);
    }
    pixel_policy(x.data(), n, a);
  };
}

// Diverging colour of x ∈ [−1, 1]: blue (−), white (0), red (+).
std::string diverging(double x) {
  x = std::clamp(x, -1.0, 1.0);
  const int a = static_cast<int>(std::lround(255 * (1 - std::abs(x))));
  return x >= 0 ? fmt::format("rgb(255,{},{})", a, a) : fmt::format("rgb({},{},255)", a, a);
}

// One map [h, w] as cell × cell rectangles at (x0, y0); value(r, c) → colour.
std::string raster(double x0, double y0, std::int64_t h, std::int64_t w, int cell,
                   const std::function<std::string(std::int64_t, std::int64_t)>& colour) {
  std::string out = fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#888\"/>", x0 - 1,
                                y0 - 1, w * cell + 2, h * cell + 2);
  for (std::int64_t r = 0; r < h; ++r)
    for (std::int64_t c = 0; c < w; ++c)
      out += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\"/>", x0 + c * cell, y0 + r * cell, cell,
                         cell, colour(r, c));
  return out;
}

// G_S of both pixel agents (seed k = 0) as maps, previous and current frame (each agent's map scaled
// by its largest |entry|), and the log power spectrum of the current frame's map.
void write_pixel_maps(const RunDir& run, const std::vector<std::pair<std::string, torch::Tensor>>& maps) {
  const int cell = 4, gap = 24, left = 110, top = 40;
  const double mw = kW * cell, mh = kH * cell;
  std::string svg = fmt::format("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" font-family=\"sans-serif\">",
                                left + 3 * (mw + gap), top + maps.size() * (mh + gap) + 30);
  svg += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>";
  const char* heads[3] = {"G_S, previous frame", "G_S, current frame", "log10 |FFT2|^2 of the current frame's G_S"};
  for (int j = 0; j < 3; ++j)
    svg += fmt::format("<text x=\"{}\" y=\"{}\" font-size=\"12\">{}</text>", left + j * (mw + gap), top - 10, heads[j]);
  for (std::size_t i = 0; i < maps.size(); ++i) {
    const auto g = maps[i].second.to(torch::kDouble).contiguous().view({2, kH, kW});
    const double gmax = std::max(1e-300, g.abs().max().item<double>());
    const double y = top + static_cast<double>(i) * (mh + gap);
    svg += fmt::format("<text x=\"4\" y=\"{}\" font-size=\"13\">{}</text>", y + mh / 2, maps[i].first);
    for (int f = 0; f < 2; ++f) {
      const auto a = g[f].contiguous();
      const double* p = a.data_ptr<double>();
      svg += raster(left + f * (mw + gap), y, kH, kW, cell,
                    [&](std::int64_t r, std::int64_t c) { return diverging(p[r * kW + c] / gmax); });
    }
    const auto P = rl::power_spectrum_2d(g[1]).clamp_min(1e-300).log10().contiguous();
    const double hi = P.max().item<double>(), lo = hi - 6;  // six decades
    const double* pp = P.data_ptr<double>();
    svg += raster(left + 2 * (mw + gap), y, kH, kW, cell, [&](std::int64_t r, std::int64_t c) {
      const int v = static_cast<int>(std::lround(255 * (1 - std::clamp((pp[r * kW + c] - lo) / (hi - lo), 0.0, 1.0))));
      return fmt::format("rgb({},{},{})", v, v, v);
    });
  }
  svg += fmt::format("<text x=\"{}\" y=\"{}\" font-size=\"11\">red +, blue -, white 0 (each agent scaled by its largest |entry|); "
                     "spectrum: zero frequency at the centre, darker = more power (6 decades)</text>",
                     left, top + maps.size() * (mh + gap) + 10);
  run.write_text("drl_diagnosis_pixels_gs.svg", svg + "</svg>");
}

json diagnose_pixel_agent(const ReproContext& ctx, std::int64_t seed, bool adversarial, const rl::QFunction& q,
                          const rl::PolicyFn& greedy, std::int64_t ss, torch::Tensor* map_out);

// The distilled pixel agent of one state agent, and its diagnosis.
json distill_and_diagnose(const ReproContext& ctx, std::int64_t seed, bool adversarial,
                          const std::function<void(std::int64_t, const std::string&)>& report, torch::Tensor* map_out) {
  const char* key = adversarial ? "adversarial" : "vanilla";
  auto agent = train_state_agent(ctx, seed, adversarial, report);
  auto& teacher = *agent.dqn;
  const auto base_seed = static_cast<std::uint64_t>(1000 * seed);
  rl::PolicyFn teacher_greedy = [&](const float* obs, std::int64_t n, std::int32_t* a) { teacher.act(obs, n, a); };
  const double teacher_return = mean(rl::evaluate(kEnv, teacher_greedy, ctx.int_option("eval_episodes"), base_seed + 55));
  // Distillation data: the teacher's own episodes on the state, with distill_eps random actions.
  rl::SplitMix64 rng{rl::stream_seed(base_seed + 44, -9)};
  const double eps = ctx.option("distill_eps");
  rl::PolicyFn behaviour = [&](const float* obs, std::int64_t n, std::int32_t* a) {
    teacher.act(obs, n, a);
    for (std::int64_t i = 0; i < n; ++i)
      if (rng.uniform01() < eps) a[i] = static_cast<std::int32_t>((rng.next() >> 33) % 2);
  };
  report(ctx.int_option("steps"), fmt::format("{}, distilling", key));
  const auto data = rl::collect_episodes(kEnv, behaviour, ctx.int_option("distill_episodes"), base_seed + 44);
  const auto ss = ctx.int_option("supersample");
  auto X = all_frames(data.states, ss);
  torch::Tensor teacher_q;
  {
    torch::NoGradGuard ng;
    teacher_q = teacher.model()->forward(torch::cat(data.states, 0));
  }
  // The pixel agent: Q(x) = net((x − μ) / max(σ, std_floor)), μ and σ the per-pixel mean and std of
  // the distillation frames (standardised inputs; the diagnosis differentiates in raw pixels).
  const auto mu = X.mean(0), sd = X.std(0, /*unbiased=*/false).clamp_min(ctx.option("std_floor"));
  torch::manual_seed(static_cast<std::uint64_t>(seed) * 7919 + 2 + (adversarial ? 1 : 0));
  rl::DuelingQNet student(2 * kFrame, 2, rl::DdqnOptions{}.hidden);
  rl::DistillOptions d;
  d.loss = distill_loss_name(ctx);
  d.epochs = ctx.int_option("distill_epochs");
  d.lr = ctx.option("distill_lr");
  d.adv_eps = adversarial ? ctx.option("pixel_adv_eps") : 0.0;
  d.adv_weight = ctx.option("pixel_adv_weight");
  d.seed = seed;
  rl::QFunction q = [&](const torch::Tensor& x) { return student->forward((x - mu) / sd); };
  rl::PolicyFn greedy = [&](const float* obs, std::int64_t n, std::int32_t* a) {
    torch::NoGradGuard ng;
    const auto x = torch::from_blob(const_cast<float*>(obs), {n, 2 * kFrame}, torch::kFloat);
    const auto g = q(x).argmax(1).to(torch::kInt).contiguous();
    std::copy(g.data_ptr<std::int32_t>(), g.data_ptr<std::int32_t>() + n, a);
  };
  // DAgger (Ross, Gordon & Bagnell 2011): after the first round, each round adds distill_episodes
  // episodes in which the pixel agent acts (distill_eps random actions), labelled by the teacher on
  // their states, and trains on all frames so far (the standardisation stays the first round's).
  std::vector<double> epoch_loss, round_returns;
  rl::DistillStats dist;
  std::vector<torch::Tensor> xs = {(X - mu) / sd}, qs = {teacher_q};
  X = torch::Tensor();
  const auto rounds = ctx.int_option("distill_rounds");
  for (std::int64_t r = 0; r < rounds; ++r) {
    if (r > 0) {
      rl::PolicyFn student_behaviour = [&](const float* obs, std::int64_t n, std::int32_t* a) {
        greedy(obs, n, a);
        for (std::int64_t i = 0; i < n; ++i)
          if (rng.uniform01() < eps) a[i] = static_cast<std::int32_t>((rng.next() >> 33) % 2);
      };
      const auto more = rl::collect_episodes(kEnv, on_frames(student_behaviour, ss), ctx.int_option("distill_episodes"),
                                             base_seed + 44 + 100 * static_cast<std::uint64_t>(r));
      round_returns.push_back(mean(more.returns));
      xs.push_back((all_frames(more.states, ss) - mu) / sd);
      torch::NoGradGuard ng;
      qs.push_back(teacher.model()->forward(torch::cat(more.states, 0)));
    }
    d.seed = seed + 1000 * r;
    dist = rl::distill(student, torch::cat(xs, 0), torch::cat(qs, 0), d, 1 / sd);  // FGSM steps of adv_eps raw pixels
    epoch_loss.insert(epoch_loss.end(), dist.epoch_loss.begin(), dist.epoch_loss.end());
  }
  std::int64_t frames_n = 0;
  for (const auto& x : xs) frames_n += x.size(0);
  xs.clear();
  qs.clear();
  // The diagnosis of the state variant, on the pixel agent's own greedy episodes.
  report(ctx.int_option("steps"), fmt::format("{}, diagnosing", key));
  auto out = diagnose_pixel_agent(ctx, seed, adversarial, q, greedy, ss, map_out);
  out.update({{"env_steps", teacher.env_steps()},
              {"solved", agent.solved},
              {"evaluations", agent.evals},
              {"teacher_return", teacher_return},
              {"distill_frames", frames_n},
              {"distill_teacher_returns", data.returns},
              {"distill_loss_first", epoch_loss.front()},
              {"distill_loss_last", epoch_loss.back()},
              {"distill_epoch_loss", epoch_loss},
              {"dagger_returns", round_returns},
              {"distill_agreement", dist.agreement}});
  return out;
}

// The diagnosis of drl-diagnosis on a pixel agent's own greedy episodes (Q-function q on raw frames,
// greedy policy on frames, supersampling ss): the metrics of diagnosis_json, G_S's map statistics.
json diagnose_pixel_agent(const ReproContext& ctx, std::int64_t seed, bool adversarial, const rl::QFunction& q,
                          const rl::PolicyFn& greedy, std::int64_t ss, torch::Tensor* map_out) {
  const auto base_seed = static_cast<std::uint64_t>(1000 * seed);
  const auto episodes = ctx.int_option("episodes");
  // The pixel agent's episodes: CartPole-v1's states seen as frames (A.states holds the 4-D states,
  // all_frames the frames the agent acted on).
  const auto A = rl::collect_episodes(kEnv, on_frames(greedy, ss), episodes, base_seed + 11);
  const auto B = rl::collect_episodes(kEnv, on_frames(greedy, ss), episodes, base_seed + 22);
  const auto S = all_frames(A.states, ss), S2 = all_frames(B.states, ss);
  const auto V = rl::non_lipschitz_directions(q, S), V2 = rl::non_lipschitz_directions(q, S2);
  // Λ(S_Ψ, S) = ‖V G_{S_Ψ}‖² / λ_max(L(S)), rl::feature_correlation_quotient with S's principal
  // direction computed once.
  const auto gs = rl::principal_direction(V);
  const auto Vd = V.to(torch::kDouble);
  auto quotient = [&](const torch::Tensor& transformed) {
    const auto Vg = Vd.mv(rl::principal_direction(transformed).direction);
    return gs.eigenvalue > 0 ? Vg.dot(Vg).item<double>() / gs.eigenvalue : std::nan("");
  };
  const auto gs2 = rl::principal_direction(V2);
  const auto Vg2 = Vd.mv(gs2.direction);
  const double lambda_clean = gs.eigenvalue > 0 ? Vg2.dot(Vg2).item<double>() / gs.eigenvalue : std::nan("");
  torch::manual_seed(static_cast<std::uint64_t>(seed) * 7919 + (adversarial ? 1 : 0));
  const auto noisy = S2 + ctx.option("noise") * torch::randn_like(S2);
  const double lambda_noise = quotient(rl::non_lipschitz_directions(q, noisy));
  const double lambda_scale = quotient(rl::non_lipschitz_directions(q, ctx.option("scale") * S2));
  const double lambda_fgsm = quotient(rl::non_lipschitz_directions(q, rl::fgsm(q, S2, ctx.option("attack_eps"))));
  const auto trace = norm_trace(q, A.states.size(), [&](std::size_t e) { return all_frames({A.states[e]}, ss); });
  // G_S as two frames: where its energy sits, and each frame's spectral spread.
  const auto g = gs.direction.view({2, kH, kW});
  const double current_energy = g[1].pow(2).sum().item<double>();
  if (map_out) *map_out = gs.direction;
  rl::PolicyFn attacked_policy = [&](const float* obs, std::int64_t n, std::int32_t* a) {
    const auto x = torch::from_blob(const_cast<float*>(obs), {n, 2 * kFrame}, torch::kFloat).clone();
    const auto adv = rl::fgsm(q, x, ctx.option("attack_eps")).contiguous();
    greedy(adv.data_ptr<float>(), n, a);
  };
  const auto attacked_returns =
      rl::evaluate(kEnv, on_frames(attacked_policy, ss), ctx.int_option("eval_episodes"), base_seed + 33);
  auto out = diagnosis_json({A.returns, attacked_returns, S.size(0), lambda_clean, lambda_noise, lambda_scale,
                             lambda_fgsm, trace},
                            gs, gs2);
  out.update({{"principal_iterations", gs.iterations},
              {"principal_current_frame_energy", current_energy},
              {"spectral_spread_previous", finite_or_null(rl::spectral_spread(g[0]))},
              {"spectral_spread_current", finite_or_null(rl::spectral_spread(g[1]))}});
  return out;
}

// The option agents: true for pixel agents trained by DDQN on the frames (2), false for distilled
// ones (1); ConfigError otherwise.
bool direct_pixel_ddqn(const ReproContext& ctx) {
  const auto k = ctx.int_option("agents");
  SL_CHECK(k == 1 || k == 2, ConfigError, "options.agents: must be 1 (distilled) or 2 (pixel DDQN), got ", k);
  return k == 2;
}

constexpr const char* kPixelEnv = "CartPolePixels-v1";

// The pixel DDQN agents of agents = 2 (the recipe found by the probes in docs/rl.md "Pixel
// CartPole"): a dueling CNN on the two anti-aliased frames (their difference and the current frame),
// one gradient step every 4 env steps.
rl::DdqnOptions pixel_ddqn_options(const ReproContext& ctx, std::int64_t seed, bool adversarial) {
  rl::DdqnOptions o;
  o.env = kPixelEnv;
  o.supersample = ctx.int_option("pixel_supersample");
  o.network = "cnn";
  o.frame_diff = ctx.option("pixel_frame_diff");
  o.buffer_size = ctx.int_option("pixel_buffer");
  o.batch_size = 32;
  o.lr = ctx.option("pixel_lr");
  o.train_freq = 4;
  o.gradient_steps = 1;
  o.target_update = ctx.int_option("pixel_target_update");
  o.adv_eps = adversarial ? ctx.option("pixel_adv_eps") : 0.0;  // raw pixel intensity, SA-DQN's Atari radius 1/255
  o.adv_units = "raw";
  o.seed = seed;
  return o;
}

// A pixel agent trained directly by DDQN on CartPolePixels-v1 (agents = 2), and its diagnosis. At
// most pixel_steps env steps with the state agents' early stop at a 20-episode greedy mean >= 490,
// but evaluated every 2000 env steps once training has started (the state agents wait for training
// returns >= 150; at ε = 0.05 the pixel agents' training returns understate their greedy returns
// several-fold). Pixel DDQN is unstable (its greedy return rises and falls again), so when it does not
// stop early the agent kept is the evaluated snapshot with the best greedy mean, or the final network
// if a last evaluation of it is at least as good. The diagnosis' episodes use other seeds than these
// evaluations.
json ddqn_pixel_and_diagnose(const ReproContext& ctx, std::int64_t seed, bool adversarial,
                             const std::function<void(std::int64_t, const std::string&)>& report, torch::Tensor* map_out) {
  const char* key = adversarial ? "adversarial" : "vanilla";
  rl::Ddqn dqn(pixel_ddqn_options(ctx, seed, adversarial));
  const auto ss = ctx.int_option("pixel_supersample");
  rl::EnvOptions eo;
  eo.supersample = ss;
  rl::PolicyFn greedy = [&](const float* obs, std::int64_t n, std::int32_t* a) { dqn.act(obs, n, a); };
  auto evaluate = [&](std::int64_t at) { return mean(rl::evaluate(kPixelEnv, eo, greedy, 20, static_cast<std::uint64_t>(1000 + at))); };
  bool solved = false;
  std::int64_t evals = 0, best_at = -1;
  double best = -1;
  std::vector<torch::Tensor> best_params;
  auto snapshot = [&] {
    best_params.clear();
    torch::NoGradGuard ng;
    for (const auto& p : dqn.model()->parameters()) best_params.push_back(p.detach().clone());
  };
  const auto steps = ctx.int_option("pixel_steps");
  dqn.train(
      steps,
      [&](const rl::DdqnStats& s) {
        report(s.env_steps, fmt::format("{} pixel DDQN, return {:.1f}", key, s.mean_return));
        if (s.gradient_steps == 0) return true;
        ++evals;
        const double r = evaluate(s.env_steps);
        if (r > best) {
          best = r;
          best_at = s.env_steps;
          snapshot();
        }
        solved = r >= 490;
        return !solved;
      },
      2000);
  double final_eval = std::nan("");
  bool restored = false;
  if (!solved) {
    final_eval = evaluate(dqn.env_steps() + 1);
    if (!best_params.empty() && best > final_eval) {
      torch::NoGradGuard ng;
      const auto params = dqn.model()->parameters();
      for (std::size_t i = 0; i < params.size(); ++i) params[i].copy_(best_params[i]);
      restored = true;
    }
  }
  report(steps, fmt::format("{}, diagnosing", key));
  rl::QFunction q = [&](const torch::Tensor& x) { return dqn.model()->forward(x); };
  auto out = diagnose_pixel_agent(ctx, seed, adversarial, q, greedy, ss, map_out);
  out.update({{"env_steps", dqn.env_steps()},
              {"solved", solved},
              {"evaluations", evals},
              {"best_evaluation", best >= 0 ? json(best) : json(nullptr)},
              {"best_evaluation_at", best_at},
              {"final_evaluation", finite_or_null(final_eval)},
              {"restored_best", restored}});
  return out;
}

json run_pixel_seed(const ReproContext& ctx, std::int64_t k) {
  torch::Tensor maps[2];
  const bool direct = direct_pixel_ddqn(ctx);
  auto row = both_agents(
      ctx, k,
      [&](std::int64_t seed, bool adversarial, const Report& report) {
        auto* map = &maps[adversarial ? 1 : 0];
        return direct ? ddqn_pixel_and_diagnose(ctx, seed, adversarial, report, map)
                      : distill_and_diagnose(ctx, seed, adversarial, report, map);
      },
      direct ? ctx.int_option("pixel_steps") : -1);
  if (k == 0 && ctx.run) write_pixel_maps(*ctx.run, {{"vanilla", maps[0]}, {"adversarial", maps[1]}});
  return row;
}

ReproOutcome summarise_pixels(const ReproContext& ctx, const std::vector<json>& rows) {
  ReproOutcome out;
  out.setup = {
      {"environment", "CartPole-v1 observed as two 40 x 60 frames [previous, current] (CartPolePixels-v1's raster, "
                      "anti-aliased by n x n supersampling; n = 1 is CartPolePixels-v1 itself)"},
      {"teachers", fmt::format("the drl-diagnosis state agents: vanilla DDQN and DDQN trained on FGSM-perturbed states (adv_eps "
                               "{}); dueling 4-128-128-2, at most {} env steps each, early stop at a 20-episode greedy mean >= 490",
                               ctx.option("adv_eps"), ctx.int_option("steps"))},
      {"pixel_agents", fmt::format("dueling 4800-128-128-2 Q-networks (input 2 x 40 x 60) distilled from each teacher "
                                   "(policy distillation, Rusu et al. 2016; {} loss on the teacher's Q-values, {} epochs, Adam "
                                   "{}, batch 64) on the frames (supersampling {}) of {} teacher episodes with {} random actions, "
                                   "input standardised per pixel (std floor {}); the adversarial teacher's student with weight {} "
                                   "on the loss at FGSM-perturbed frames (radius {} pixel intensity)",
                                   distill_loss_name(ctx), ctx.int_option("distill_epochs"), ctx.option("distill_lr"),
                                   ctx.int_option("supersample"), ctx.int_option("distill_episodes"), ctx.option("distill_eps"),
                                   ctx.option("std_floor"), ctx.option("pixel_adv_weight"), ctx.option("pixel_adv_eps"))},
      {"state_sets", fmt::format("two independent sets of {} greedy episodes of each pixel agent", ctx.int_option("episodes"))},
      {"transformations", fmt::format("Gaussian pixel noise std {}, brightness x{}, FGSM {} (pixel intensity units)",
                                      ctx.option("noise"), ctx.option("scale"), ctx.option("attack_eps"))},
      {"v", "gradient of CE(softmax Q(s), onehot argmax Q(s)) in the frames, unnormalised; G_S by power iteration on V^T V "
            "(a 2 x 40 x 60 map); Lambda(S', S) = G_S'^T L(S) G_S' / lambda_max(L(S)); spectral spread: the mean radial "
            "frequency of |FFT2|^2 of each frame of G_S (cycles per pixel, zero frequency excluded)"}};
  std::vector<const char*> keys = {"return", "teacher_return", "attacked_return", "env_steps", "distill_frames",
                                   "distill_agreement", "lambda_clean", "lambda_noise", "lambda_scale", "lambda_fgsm",
                                   "oscillation", "mean_v_norm", "principal_cosine_clean", "principal_current_frame_energy",
                                   "spectral_spread_previous", "spectral_spread_current"};
  if (direct_pixel_ddqn(ctx)) {
    const auto o = pixel_ddqn_options(ctx, 0, false);
    out.setup.erase("teachers");
    out.setup["pixel_agents"] = fmt::format(
        "trained directly by DDQN on CartPolePixels-v1's frames (supersampling {}): vanilla and FGSM-adversarially trained "
        "(radius {} pixel intensity); dueling CNN (input: the frame difference times {} and the current frame as 2 channels; "
        "conv 16 8x8 stride 4, conv 32 4x4 stride 2, {} hidden units), replay {}, batch {}, Adam {}, one gradient step every {} "
        "env steps, target copied every {} gradient steps, epsilon 1 -> {} over {} env steps; at most {} env steps each, a "
        "20-episode greedy evaluation every 2000 env steps, early stop at >= 490, else the best evaluated snapshot",
        o.supersample, ctx.option("pixel_adv_eps"), o.frame_diff, o.hidden, o.buffer_size, o.batch_size, o.lr, o.train_freq,
        o.target_update, o.eps_end, o.eps_decay_steps, ctx.int_option("pixel_steps"));
    keys = {"return", "attacked_return", "env_steps", "lambda_clean", "lambda_noise", "lambda_scale", "lambda_fgsm",
            "oscillation", "mean_v_norm", "principal_cosine_clean", "principal_current_frame_energy", "spectral_spread_previous",
            "spectral_spread_current"};
  }
  auto m = aggregate(rows, keys, out);
  out.checks = {
      make_check("precondition, the vanilla pixel agent acts: greedy return (mean)", m["vanilla_return"], ">=", 195),
      make_check("precondition, the adversarial pixel agent acts: greedy return (mean)", m["adversarial_return"], ">=", 195),
      make_check("Lambda near 1 between independent clean frame sets: vanilla Lambda_clean (mean)", m["vanilla_lambda_clean"],
                 ">=", 0.9),
      make_check("Lambda lower under pixel noise: vanilla Lambda_noise - Lambda_clean (mean)",
                 m["vanilla_lambda_noise"] - m["vanilla_lambda_clean"], "<", 0),
      make_check("Lambda lower under brightness scaling: vanilla Lambda_scale - Lambda_clean (mean)",
                 m["vanilla_lambda_scale"] - m["vanilla_lambda_clean"], "<", 0),
      make_check("Lambda lower under FGSM: vanilla Lambda_fgsm - Lambda_clean (mean)",
                 m["vanilla_lambda_fgsm"] - m["vanilla_lambda_clean"], "<", 0),
      make_check("larger temporal oscillation of ||v(s_t)||: adversarial / vanilla (means)",
                 m["adversarial_oscillation"] / m["vanilla_oscillation"], ">", 1)};
  if (ctx.run) write_figure(*ctx.run, rows.front(), "drl_diagnosis_pixels_v_norm.svg", "pixel agent");
  return out;
}

}  // namespace

ReproEntry make_drl_diagnosis_repro() {
  ReproEntry e;
  e.name = "drl-diagnosis";
  e.paper = "Understanding and Diagnosing Deep Reinforcement Learning (Korkmaz, ICML 2024)";
  e.claim = "The principal non-Lipschitz direction of a DDQN policy is stable between independent clean state sets (feature "
            "correlation quotient near 1) and shifts under observation noise, scaling and adversarial perturbations (lower "
            "quotient); adversarially trained policies show a larger temporal oscillation of the non-Lipschitz directions' norm.";
  e.options = {{"steps", "at most this many env steps per agent (early stop when solved)", 50000, 8000, true},
               {"adv_eps", "FGSM adversarial training radius, minibatch std per dimension", 0.1, 0.1, false},
               {"episodes", "greedy episodes per state set", 10, 3, true},
               {"noise", "Gaussian observation noise, std per dimension", 0.2, 0.2, false},
               {"scale", "state scaling factor", 1.2, 1.2, false},
               {"attack_eps", "FGSM test radius, std per dimension", 0.1, 0.1, false},
               {"eval_episodes", "episodes of the FGSM-attacked evaluation", 20, 5, true}};
  e.run_seed = run_seed;
  e.summarise = summarise;
  return e;
}


// drl-diagnosis-pixels: the pixel half of the diagnosis (Korkmaz 2024's spatial map of G_S and its
// Fourier spectrum) on CartPole-v1 observed as CartPolePixels-v1's two 40 × 60 frames
// (rl/cartpole_pixels.h), anti-aliased by `supersample` × `supersample` sampling (1: the binary
// frames of CartPolePixels-v1 itself; binary frames hide the sub-pixel motion that carries the
// velocities). Pixel DDQN does not learn CartPole cheaply here (docs/rl.md), so the pixel agents are
// obtained by policy distillation (Rusu et al. 2016; rl/distill.h) with DAgger rounds, a stated
// deviation from the paper's directly trained DDQN:
//   1. per seed, the two state agents of drl-diagnosis (same options steps / adv_eps, same seeds);
//   2. `distill_episodes` episodes of each teacher on CartPole-v1's state, each action replaced by a
//      uniformly random one with probability `distill_eps` (coverage), rendered as the frames the
//      pixel agent would see (rasterise_episode) and labelled with the teacher's Q-values;
//   3. a pixel dueling Q-network 4800-128-128-2 (the teachers' family, on the frames) with inputs
//      standardised per pixel by the first round's mean and std (floored at `std_floor`), trained for
//      `distill_epochs` epochs per round (Adam, `distill_lr`) with loss `distill_loss` (1 MSE on the
//      Q-values, 2 NLL of the teacher's greedy action, 3 KL at temperature 0.01); rounds 2 ..
//      `distill_rounds` add `distill_episodes` episodes in which the pixel agent acts (DAgger, Ross
//      et al. 2011; same ε), labelled by the teacher, and train on all frames so far. The adversarial
//      teacher's student puts weight `pixel_adv_weight` on the loss at FGSM-perturbed frames (radius
//      `pixel_adv_eps` raw pixel intensity, against its own greedy action; Goodfellow et al. 2015's
//      mix at 0.5): the pixel analogue of the teacher's adversarial training;
//   4. the diagnosis of drl-diagnosis on each pixel agent's own greedy episodes (S from env seed
//      1000 s + 11, S' from 1000 s + 22), v(s) in raw pixels: Λ_clean, Λ_noise (Gaussian pixel noise
//      of std `noise`), Λ_scale (brightness × `scale`), Λ_fgsm (FGSM, radius `attack_eps` pixel
//      intensity, against the agent's greedy action), the oscillation of ‖v(s_t)‖, G_S as a 2 × 40 ×
//      60 map with the spectral spread (mean radial frequency, rl/diagnosis.h) of each frame, the
//      clean and the FGSM-attacked greedy return.
// Variant agents = 2 (default 1, the distillation above): the pixel agents are trained directly by
// DDQN on CartPolePixels-v1 (rl/dqn.h with network "cnn": a dueling CNN on the frame difference times
// `pixel_frame_diff` and the current frame, frames anti-aliased by `pixel_supersample`; one gradient
// step every 4 env steps, Adam `pixel_lr`, target copies every `pixel_target_update` gradient steps,
// replay `pixel_buffer`; at most `pixel_steps` env steps, a 20-episode greedy evaluation every 2000
// env steps, early stop at >= 490, else the best evaluated snapshot), the adversarial one on FGSM-
// perturbed frames (radius `pixel_adv_eps` raw pixel intensity, DdqnOptions::adv_units "raw"); no
// state teachers. Step 4 and the checks are the same.
// Checks: drl-diagnosis's, fixed before any pixel run (means over seeds):
//   precondition: both pixel agents act             greedy return on S ≥ 195 (vanilla; adversarial)
//   Λ near 1 between independent clean frame sets   vanilla Λ_clean ≥ 0.9
//   Λ lower under pixel noise / brightness / FGSM   vanilla Λ_Ψ − Λ_clean < 0 (three checks)
//   larger temporal oscillation of ‖v(s_t)‖         oscillation(adversarial) / oscillation(vanilla) > 1
// Figures: drl_diagnosis_pixels_gs.svg (G_S maps and spectra, seed index 0),
// drl_diagnosis_pixels_v_norm.svg (‖v(s_t)‖ along the first episode).
ReproEntry make_drl_diagnosis_pixels_repro() {
  ReproEntry e;
  e.name = "drl-diagnosis-pixels";
  e.paper = "Understanding and Diagnosing Deep Reinforcement Learning (Korkmaz, ICML 2024)";
  e.claim = "On image observations, the principal non-Lipschitz direction G_S of a DDQN policy (a spatial map with a Fourier "
            "spectrum) is stable between independent clean state sets (feature correlation quotient near 1) and shifts under "
            "observation noise, brightness change and adversarial perturbations (lower quotient); adversarially trained "
            "policies show a larger temporal oscillation of the non-Lipschitz directions' norm.";
  e.options = {{"steps", "at most this many env steps per state teacher (early stop when solved)", 50000, 8000, true},
               {"adv_eps", "FGSM adversarial training radius of the state teacher, minibatch std per dimension", 0.1, 0.1, false},
               {"distill_episodes", "teacher episodes of distillation frames", 20, 4, true},
               {"distill_eps", "probability of a random action in the distillation episodes", 0.1, 0.1, false},
               {"distill_epochs", "distillation epochs per round", 10, 1, true},
               {"distill_rounds", "distillation rounds (DAgger: rounds after the first add the pixel agent's episodes)", 3, 1,
                true},
               {"distill_loss", "distillation loss: 1 MSE on Q-values, 2 NLL of the greedy action, 3 KL (temperature 0.01)", 3, 3,
                true},
               {"distill_lr", "distillation Adam learning rate", 3e-3, 3e-3, false},
               {"std_floor", "floor of the per-pixel std that standardises the pixel agent's input", 0.05, 0.05, false},
               {"supersample", "frames rendered with n x n samples per pixel (1: CartPolePixels-v1's binary frames)", 4, 4,
                true},
               {"pixel_adv_eps", "FGSM radius of the adversarial student's distillation (agents 2: of the adversarial pixel DDQN's "
                "training), pixel intensity", 1.0 / 255, 1.0 / 255, false},
               {"pixel_adv_weight", "weight of the FGSM frames' loss in the adversarial distillation", 0.5, 0.5, false},
               {"episodes", "greedy episodes per state set", 10, 3, true},
               {"noise", "Gaussian pixel noise std", 0.1, 0.1, false},
               {"scale", "brightness factor", 1.2, 1.2, false},
               {"attack_eps", "FGSM test radius, pixel intensity", 1.0 / 255, 1.0 / 255, false},
               {"eval_episodes", "episodes of the teacher and the FGSM-attacked evaluations", 20, 5, true},
               {"agents", "pixel agents: 1 distilled from the state agents, 2 trained directly by DDQN on the frames (CNN)", 1, 1,
                true},
               {"pixel_steps", "agents 2: at most this many env steps per pixel DDQN agent (early stop when solved)", 50000,
                1500, true},
               {"pixel_supersample", "agents 2: the pixel DDQN's frames rendered with n x n samples per pixel", 8, 8, true},
               {"pixel_frame_diff", "agents 2: weight of the frame difference in the pixel DDQN's input (DdqnOptions::frame_diff)", 4, 4,
                false},
               {"pixel_lr", "agents 2: the pixel DDQN's Adam learning rate", 5e-4, 5e-4, false},
               {"pixel_target_update", "agents 2: gradient steps between the pixel DDQN's target copies", 250, 250, true},
               {"pixel_buffer", "agents 2: the pixel DDQN's replay capacity (transitions)", 20000, 2000, true}};
  e.run_seed = run_pixel_seed;
  e.summarise = summarise_pixels;
  return e;
}

}  // namespace stablelearn::experiments::repro
