// repro drl-diagnosis: Korkmaz, "Understanding and Diagnosing Deep Reinforcement Learning" (ICML
// 2024, PMLR 235:25265-25275, arXiv 2406.16979; shared/specs/papers-01-18.md §11), the spec's
// smallest faithful CPU experiment on the 4-D CartPole state (the pixel variant with the spatial map
// of G_S and its Fourier spectrum is not built). Library: rl/diagnosis.h, rl/dqn.h (docs/rl.md).
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
#include <fmt/format.h>
#include <torch/torch.h>

#include "entries.h"
#include "stablelearn/core/error.h"
#include "stablelearn/report/svg.h"
#include "stablelearn/rl/diagnosis.h"
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

json train_and_diagnose(const ReproContext& ctx, std::int64_t seed, bool adversarial,
                        const std::function<void(std::int64_t, const std::string&)>& report) {
  const char* key = adversarial ? "adversarial" : "vanilla";
  rl::DdqnOptions o;
  o.seed = seed;
  o.adv_eps = adversarial ? ctx.option("adv_eps") : 0.0;
  rl::Ddqn dqn(o);
  rl::PolicyFn greedy = [&](const float* obs, std::int64_t n, std::int32_t* a) { dqn.act(obs, n, a); };
  auto avg = [](const std::vector<double>& v) { return mean(v); };
  bool solved = false;
  std::int64_t evals = 0;
  dqn.train(
      ctx.int_option("steps"),
      [&](const rl::DdqnStats& s) {
        report(s.env_steps, fmt::format("{}, return {:.1f}", key, s.mean_return));
        if (!(s.mean_return >= 150)) return true;
        ++evals;
        solved = avg(rl::evaluate(kEnv, greedy, 20, static_cast<std::uint64_t>(1000 + s.env_steps))) >= 490;
        return !solved;
      },
      2000);
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
  std::vector<double> osc, mean_norm;
  std::vector<double> norms0;
  for (std::size_t e = 0; e < A.states.size(); ++e) {
    const auto nrm = to_vector(rl::direction_norms(q, A.states[e]));
    if (e == 0) norms0 = nrm;
    osc.push_back(rl::temporal_oscillation(nrm));
    mean_norm.push_back(mean(nrm));
  }
  const auto gs = rl::principal_direction(V), gs2 = rl::principal_direction(V2);
  // The return when every observation the policy sees is FGSM-attacked.
  rl::PolicyFn attacked_policy = [&](const float* obs, std::int64_t n, std::int32_t* a) {
    const auto x = torch::from_blob(const_cast<float*>(obs), {n, 4}, torch::kFloat).clone();
    const auto adv = rl::fgsm(q, x, ctx.option("attack_eps"), sigma).contiguous();
    dqn.act(adv.data_ptr<float>(), n, a);
  };
  const auto attacked_returns =
      rl::evaluate(kEnv, attacked_policy, ctx.int_option("eval_episodes"), base_seed + 33);
  return {{"env_steps", dqn.env_steps()},
          {"solved", solved},
          {"evaluations", evals},
          {"return", mean(A.returns)},
          {"returns", A.returns},
          {"attacked_return", mean(attacked_returns)},
          {"states", S.size(0)},
          {"sigma", to_vector(sigma)},
          {"lambda_clean", finite_or_null(lambda_clean)},
          {"lambda_noise", finite_or_null(lambda_noise)},
          {"lambda_scale", finite_or_null(lambda_scale)},
          {"lambda_fgsm", finite_or_null(lambda_fgsm)},
          {"oscillations", [&] {
             json a = json::array();
             for (double x : osc) a.push_back(finite_or_null(x));
             return a;
           }()},
          {"oscillation", finite_or_null(mean(osc))},
          {"mean_v_norm", finite_or_null(mean(mean_norm))},
          {"v_norms_episode0", norms0},
          {"principal_direction", to_vector(gs.direction)},
          {"principal_eigenvalue", gs.eigenvalue},
          {"principal_converged", gs.converged && gs2.converged},
          {"principal_cosine_clean", std::abs(gs.direction.dot(gs2.direction).item<double>())}};
}

json run_seed(const ReproContext& ctx, std::int64_t k) {
  const auto seed = static_cast<std::int64_t>(ctx.seed) + k;
  const auto progress = seed_progress(ctx, k);
  const auto steps = ctx.int_option("steps");
  json row = json::object();
  row["vanilla"] = train_and_diagnose(ctx, seed, false, [&](std::int64_t s, const std::string& w) { progress(s, 2 * steps, w); });
  row["adversarial"] =
      train_and_diagnose(ctx, seed, true, [&](std::int64_t s, const std::string& w) { progress(steps + s, 2 * steps, w); });
  return row;
}

void write_figure(const RunDir& run, const json& row) {
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
    plot.legend(std::string(key) + " DDQN", c);
  }
  run.write_text("drl_diagnosis_v_norm.svg", plot.str());
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
  std::map<std::string, double> m;
  for (const char* a : {"vanilla", "adversarial"})
    for (const char* key : {"return", "attacked_return", "env_steps", "lambda_clean", "lambda_noise", "lambda_scale",
                            "lambda_fgsm", "oscillation", "mean_v_norm", "principal_cosine_clean"}) {
      const auto v = per_seed_at(rows, fmt::format("/{}/{}", a, key));
      const auto name = fmt::format("{}_{}", a, key);
      out.metrics[name] = seeds_json(v);
      out.metrics[name + "_mean"] = finite_or_null(mean(v));
      out.metrics[name + "_std"] = finite_or_null(std_dev(v));
      m[name] = mean(v);
    }
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

}  // namespace stablelearn::experiments::repro
