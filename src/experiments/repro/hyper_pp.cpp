// repro hyper-pp: Klein, Lang, Shkabrii, Sturm, Sidak, Miklautz, Plant, Velaj, Tschiatschek,
// "Understanding and Improving Hyperbolic Deep Reinforcement Learning" (Hyper++; ICLR 2026,
// arXiv 2512.14202; shared/specs/papers-19-35.md §29), the spec's smallest faithful CPU experiment:
// PPO (rl/ppo.h) on procedurally generated mazes (rl/maze.h, Maze-v0, 9 × 9, episodes cut at
// `episode_steps`, so that a random walk rarely reaches the goal) trained on `levels`
// levels and tested on held-out ones, four agents with the same encoder (two tanh layers of
// `hidden`, then a linear layer to a d = `embed` feature) and heads from rl/hyperbolic.h:
//   euclidean    linear policy and value heads, MSE value loss
//   hyperbolic   Poincaré-ball MLR heads without feature control, MSE value loss (the unregularised
//                hyperbolic agent)
//   hyperpp      Hyper++: RMSNorm + tanh + learned scaling, hyperboloid MLR heads, HL-Gauss value
//                loss (51 bins on [−1, 11], the returns' range [0, 10] with a margin)
//   no_rmsnorm   Hyper++ without the feature control (the paper's −RMSNorm ablation)
// PPO as the paper's code configures it where it applies to this size (γ 0.999, λ 0.95, clip 0.2,
// entropy 0.01, value 0.5, max gradient norm 0.5, Adam 5e-4, 2 epochs of 8 minibatches).
// Measured per agent: the return on the training levels over the last quarter of the iterations,
// the return on `test_episodes` held-out levels (ids from `levels` on, sampled actions), the largest
// pre-clipping gradient norm, minibatches skipped for a non-finite loss, iterations with approximate
// KL > 0.05 (trust-region violations), the actor's embedding norm ‖x_E‖ at the first and the last
// iteration. A uniformly random policy's return on the training levels is the floor.
//
// Checks, fixed from the paper's claims before any run (means over seeds):
//   the task is learned (precondition)      Euclidean training return ≥ 2 × the random policy's
//   Hyper++ generalises best                Hyper++ test return − Euclidean's ≥ 0,
//                                           − unregularised hyperbolic's ≥ 0, − no-RMSNorm's ≥ 0
//   Hyper++ trains stably                   Hyper++ non-finite minibatches = 0 (≤ 0);
//                                           Hyper++ KL-violating iterations − hyperbolic's ≤ 0
//   the unregularised embedding grows       hyperbolic ‖x_E‖ last / first ≥ 2
#include <fmt/format.h>
#include <torch/torch.h>

#include "entries.h"
#include "stablelearn/core/error.h"
#include "stablelearn/report/svg.h"
#include "stablelearn/rl/env.h"
#include "stablelearn/rl/ppo.h"

namespace stablelearn::experiments::repro {

using nlohmann::json;

namespace {

// The HL-Gauss support: a maze return lies in [0, 10] (10 at the goal, discounted), with one unit of
// margin on each side.
constexpr double kHlMin = -1, kHlMax = 11;

struct Agent {
  const char* key;
  const char* label;
  const char* head;
  bool feature_control;
  const char* value_loss;
};
const std::vector<Agent>& agents() {
  static const std::vector<Agent> a = {{"euclidean", "Euclidean PPO", "euclidean", false, "mse"},
                                       {"hyperbolic", "hyperbolic (Poincare, MSE)", "poincare", false, "mse"},
                                       {"hyperpp", "Hyper++", "hyperboloid", true, "hl_gauss"},
                                       {"no_rmsnorm", "Hyper++ without RMSNorm", "hyperboloid", false, "hl_gauss"}};
  return a;
}

rl::PpoOptions ppo_options(const ReproContext& ctx, const Agent& a, std::int64_t seed) {
  rl::PpoOptions o;
  o.env = "Maze-v0";
  o.levels = ctx.int_option("levels");
  o.max_steps = ctx.int_option("episode_steps");
  o.num_envs = ctx.int_option("num_envs");
  o.num_steps = ctx.int_option("num_steps");
  o.epochs = 2;
  o.minibatches = 8;
  o.hidden = ctx.int_option("hidden");
  o.embed = ctx.int_option("embed");
  o.lr = ctx.option("lr");
  o.gamma = 0.999;
  o.gae_lambda = 0.95;
  o.clip = 0.2;
  o.value_clip = 0.2;
  o.ent_coef = 0.01;
  o.vf_coef = 0.5;
  o.max_grad_norm = 0.5;
  o.head = a.head;
  o.feature_control = a.feature_control;
  o.value_loss = a.value_loss;
  o.hl_min = kHlMin;
  o.hl_max = kHlMax;
  o.seed = seed;
  options::check(o, "options");
  return o;
}

json train_agent(const ReproContext& ctx, const Agent& a, std::int64_t seed,
                 const std::function<void(std::int64_t, const std::string&)>& report) {
  rl::Ppo ppo(ppo_options(ctx, a, seed));
  const auto total = ctx.int_option("steps");
  std::vector<double> returns, kls, gnorms, enorms;
  std::int64_t nonfinite = 0, kl_spikes = 0;
  ppo.train(total, [&](const rl::PpoStats& s) {
    returns.push_back(s.mean_return);
    kls.push_back(s.approx_kl);
    gnorms.push_back(s.grad_norm);
    enorms.push_back(s.embed_norm);
    nonfinite += s.nonfinite;
    if (!(s.approx_kl <= 0.05)) ++kl_spikes;  // NaN counts as a violation
    report(s.env_steps, fmt::format("{}, return {:.2f}", a.key, s.mean_return));
    return true;
  });
  // Training return: mean over the last quarter of the iterations (those where episodes ended).
  const auto n = returns.size(), from = n - std::max<std::size_t>(1, n / 4);
  std::vector<double> last;
  for (std::size_t i = from; i < n; ++i)
    if (std::isfinite(returns[i])) last.push_back(returns[i]);
  rl::EnvOptions test;
  test.start_level = ctx.int_option("levels");
  test.max_steps = ctx.int_option("episode_steps");
  const auto test_returns = rl::evaluate(
      "Maze-v0", test, [&](const float* obs, std::int64_t k, std::int32_t* act) { ppo.act(obs, k, act, /*greedy=*/false); },
      ctx.int_option("test_episodes"), static_cast<std::uint64_t>(seed) + 7777);
  double max_g = 0;
  for (double g : gnorms) max_g = std::max(max_g, g);
  return {{"train_return", finite_or_null(mean(last))},
          {"test_return", finite_or_null(mean(test_returns))},
          {"test_solved", finite_or_null(mean([&] {
             std::vector<double> s;
             for (double r : test_returns) s.push_back(r > 0 ? 1.0 : 0.0);
             return s;
           }()))},
          {"max_grad_norm", max_g},
          {"nonfinite", nonfinite},
          {"kl_spikes", kl_spikes},
          {"iterations", static_cast<std::int64_t>(n)},
          {"embed_norm_first", enorms.empty() ? 0.0 : enorms.front()},
          {"embed_norm_last", enorms.empty() ? 0.0 : enorms.back()},
          {"returns", returns},
          {"embed_norms", enorms},
          {"approx_kl", kls}};
}

json run_seed(const ReproContext& ctx, std::int64_t k) {
  const auto seed = static_cast<std::int64_t>(ctx.seed) + k;
  const auto progress = seed_progress(ctx, k);
  const auto steps = ctx.int_option("steps");
  json row = json::object();
  std::int64_t done = 0;
  const auto total = steps * static_cast<std::int64_t>(agents().size());
  for (const auto& a : agents()) {
    row[a.key] = train_agent(ctx, a, seed, [&](std::int64_t s, const std::string& what) { progress(done + s, total, what); });
    done += steps;
  }
  // The floor: a uniformly random policy on the training levels.
  rl::EnvOptions train;
  train.levels = ctx.int_option("levels");
  train.max_steps = ctx.int_option("episode_steps");
  rl::SplitMix64 rng{rl::stream_seed(static_cast<std::uint64_t>(seed), -2)};
  const auto rand_returns = rl::evaluate(
      "Maze-v0", train,
      [&](const float*, std::int64_t n, std::int32_t* act) {
        for (std::int64_t i = 0; i < n; ++i) act[i] = static_cast<std::int32_t>(rng.next() % 4);
      },
      ctx.int_option("test_episodes"), static_cast<std::uint64_t>(seed) + 8888);
  row["random_train_return"] = mean(rand_returns);
  return row;
}

void write_figure(const RunDir& run, const std::vector<json>& rows) {
  const std::vector<std::string> colours = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd"};
  double ymax = 1;
  for (const auto& a : agents())
    for (const auto& r : rows)
      for (const auto& e : r.at(a.key).at("embed_norms")) ymax = std::max(ymax, 1.1 * e.get<double>());
  const auto iters = rows.front().at("euclidean").at("embed_norms").size();
  report::SvgPlot plot(720, 440);
  plot.set_range(0, double(iters), 0, ymax);
  plot.title("Actor embedding norm ||x_E|| during PPO training (seed 0)");
  plot.labels("PPO iteration", "mean ||x_E|| (last minibatch)");
  for (std::size_t i = 0; i < agents().size(); ++i) {
    std::vector<std::pair<double, double>> pts;
    const auto& e = rows.front().at(agents()[i].key).at("embed_norms");
    for (std::size_t t = 0; t < e.size(); ++t) pts.emplace_back(double(t + 1), e[t].get<double>());
    plot.polyline(pts, colours[i], 2.0);
    plot.legend(agents()[i].label, colours[i]);
  }
  run.write_text("hyper_pp_embedding_norm.svg", plot.str());
}

ReproOutcome summarise(const ReproContext& ctx, const std::vector<json>& rows) {
  ReproOutcome out;
  out.setup = {
      {"environment", fmt::format("Maze-v0 (9 x 9 perfect mazes, reward 10 at the goal, truncated at {} steps): {} training "
                                  "levels, {} episodes on held-out levels (ids from {} on)",
                                  ctx.int_option("episode_steps"), ctx.int_option("levels"), ctx.int_option("test_episodes"),
                                  ctx.int_option("levels"))},
      {"agents", "euclidean (linear heads, MSE), hyperbolic (Poincare MLR heads, MSE), hyperpp (RMSNorm + tanh + learned "
                 "scaling, hyperboloid MLR heads, HL-Gauss), no_rmsnorm (hyperpp without the feature control)"},
      {"encoder", fmt::format("two tanh layers of {}, a linear layer to d = {} (actor and critic separate)", ctx.int_option("hidden"),
                              ctx.int_option("embed"))},
      {"ppo", fmt::format("{} env steps, {} envs x {} steps, 2 epochs x 8 minibatches, Adam {}, gamma 0.999, lambda 0.95, clip 0.2, "
                          "entropy 0.01, value 0.5, max grad norm 0.5; HL-Gauss 51 bins on [{}, {}]",
                          ctx.int_option("steps"), ctx.int_option("num_envs"), ctx.int_option("num_steps"), ctx.option("lr"),
                          kHlMin, kHlMax)}};
  std::map<std::string, double> m;
  for (const auto& a : agents())
    for (const char* key : {"train_return", "test_return", "test_solved", "max_grad_norm", "nonfinite", "kl_spikes",
                            "embed_norm_first", "embed_norm_last"}) {
      const auto v = per_seed_at(rows, fmt::format("/{}/{}", a.key, key));
      const auto name = fmt::format("{}_{}", a.key, key);
      put_seed_stats(out, name, v);
      m[name] = mean(v);
    }
  const auto rnd = per_seed(rows, "random_train_return");
  out.metrics["random_train_return"] = seeds_json(rnd);
  std::vector<double> growth;
  for (const auto& r : rows) {
    const auto& h = r.at("hyperbolic");
    growth.push_back(h.at("embed_norm_last").get<double>() / std::max(1e-12, h.at("embed_norm_first").get<double>()));
  }
  out.metrics["hyperbolic_embed_norm_growth"] = seeds_json(growth);
  out.checks = {
      make_check("precondition, the task is learned: Euclidean training return / random policy's (means)",
                 m["euclidean_train_return"] / std::max(1e-12, mean(rnd)), ">=", 2),
      make_check("Hyper++ generalises best: test return Hyper++ - Euclidean (mean)", m["hyperpp_test_return"] - m["euclidean_test_return"],
                 ">=", 0),
      make_check("Hyper++ generalises best: test return Hyper++ - unregularised hyperbolic (mean)",
                 m["hyperpp_test_return"] - m["hyperbolic_test_return"], ">=", 0),
      make_check("Hyper++ generalises best: test return Hyper++ - Hyper++ without RMSNorm (mean)",
                 m["hyperpp_test_return"] - m["no_rmsnorm_test_return"], ">=", 0),
      make_check("Hyper++ trains stably: minibatches skipped for a non-finite loss (mean)", m["hyperpp_nonfinite"], "<=", 0),
      make_check("Hyper++ trains stably: KL > 0.05 iterations, Hyper++ - unregularised hyperbolic (mean)",
                 m["hyperpp_kl_spikes"] - m["hyperbolic_kl_spikes"], "<=", 0),
      make_check("the unregularised embedding grows: hyperbolic ||x_E|| last / first iteration (mean)", mean(growth), ">=", 2)};
  if (ctx.run) write_figure(*ctx.run, rows);
  return out;
}

}  // namespace

ReproEntry make_hyper_pp_repro() {
  ReproEntry e;
  e.name = "hyper-pp";
  e.paper = "Understanding and Improving Hyperbolic Deep Reinforcement Learning (Hyper++; Klein, Lang, Shkabrii, Sturm, Sidak, "
            "Miklautz, Plant, Velaj, Tschiatschek, ICLR 2026)";
  e.claim = "Hyperbolic PPO without regularisation is unstable (growing embedding norms, trust-region violations); Hyper++ "
            "(RMSNorm + learned scaling before hyperboloid heads, a categorical HL-Gauss value loss) trains stably and "
            "generalises to held-out levels better than Euclidean and unregularised hyperbolic PPO, and fails without RMSNorm.";
  e.options = {{"steps", "environment steps per agent", 1000000, 16384, true},
               {"episode_steps", "episode length limit (Maze-v0's own: 324)", 100, 100, true},
               {"levels", "training levels (held-out levels start after them)", 200, 20, true},
               {"num_envs", "parallel environments", 64, 32, true},
               {"num_steps", "rollout length per environment and iteration", 128, 64, true},
               {"hidden", "width of the encoder's two tanh layers", 64, 32, true},
               {"embed", "feature width d the heads act on", 32, 16, true},
               {"lr", "Adam learning rate", 5e-4, 5e-4, false},
               {"test_episodes", "episodes on held-out levels (and of the random policy)", 200, 50, true}};
  e.run_seed = run_seed;
  e.summarise = summarise;
  return e;
}

}  // namespace stablelearn::experiments::repro
