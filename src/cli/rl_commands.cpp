// stablelearn rl envs | rl train CONFIG --out RUN: the reinforcement-learning layer (rl/; docs/rl.md)
// from the command line. `rl train` reads [rl] (algorithm, steps, evaluation) and the algorithm's own
// table ([ppo] or [ddqn], rl/ppo.h and rl/dqn.h), trains with progress on stderr, evaluates the
// trained policy and writes RUN/config.toml (resolved), metrics.jsonl (one row per PPO iteration or
// DDQN report), results.json (the evaluation returns and their mean), summary.json (seed, seconds,
// versions) and model.pt (the network's parameters, torch::save).
#include <chrono>
#include <cmath>
#include <iostream>
#include <memory>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <torch/serialize.h>
#include <torch/torch.h>

#include "commands.h"
#include "stablelearn/core/config.h"
#include "stablelearn/core/error.h"
#include "stablelearn/core/options.h"
#include "stablelearn/core/progress.h"
#include "stablelearn/core/run.h"
#include "stablelearn/rl/dqn.h"
#include "stablelearn/rl/env.h"
#include "stablelearn/rl/ppo.h"

namespace stablelearn::cli {
namespace {

using nlohmann::json;

/// The [rl] table.
struct RlRunOptions {
  std::string algorithm = "ppo";       ///< ppo | ddqn (its options: the [ppo] or [ddqn] table)
  std::int64_t steps = 200000;         ///< environment steps of training
  std::int64_t eval_episodes = 20;     ///< evaluation episodes after training (one copy each)
  std::int64_t eval_seed = 12345;      ///< seed of the evaluation's environment copies
  std::int64_t eval_start_level = -1;  ///< first level id of the evaluation (procedural envs; -1 = after the training levels)
  bool eval_greedy = true;             ///< greedy actions in the evaluation (PPO; DDQN is always greedy)
  void fields(options::Visitor& v) {
    v("algorithm", algorithm, "ppo or ddqn (options in the [ppo] or [ddqn] table)").one_of({"ppo", "ddqn"});
    v("steps", steps, "environment steps of training").at_least(1);
    v("eval_episodes", eval_episodes, "evaluation episodes after training").at_least(1);
    v("eval_seed", eval_seed, "seed of the evaluation's environment copies").at_least(0);
    v("eval_start_level", eval_start_level,
      "first level id of the evaluation (procedurally generated envs; -1 = the levels after the training split)")
        .at_least(-1);
    v("eval_greedy", eval_greedy, "most probable actions in the evaluation (PPO; DDQN acts greedily)");
  }
};

struct TrainArgs {
  std::string config, out;
  std::vector<std::string> overrides;
  bool quiet = false;
};

json num(double x) { return std::isfinite(x) ? json(x) : json(nullptr); }

int run_train(const TrainArgs& a) {
  const auto t0 = std::chrono::steady_clock::now();
  auto cfg = Config::from_file(a.config);
  for (const auto& o : a.overrides) cfg.set(o);
  RlRunOptions ro;
  {
    auto s = cfg.section("rl");
    options::read(s, ro);
    s.finish();
  }
  cfg.check_sections({"rl", ro.algorithm});
  ConfigWriter w;
  options::write(w, ro, "rl");
  rl::PpoOptions po;
  rl::DdqnOptions dq;
  std::string env;
  std::int64_t levels = 0, start_level = 0, grid = 0, max_steps = 0, seed = 0, supersample = 1;
  if (ro.algorithm == "ppo") {
    auto s = cfg.section("ppo");
    options::read(s, po);
    s.finish();
    options::write(w, po, "ppo");
    env = po.env;
    levels = po.levels;
    start_level = po.start_level;
    grid = po.grid;
    max_steps = po.max_steps;
    seed = po.seed;
  } else {
    auto s = cfg.section("ddqn");
    options::read(s, dq);
    s.finish();
    options::write(w, dq, "ddqn");
    env = dq.env;
    seed = dq.seed;
    supersample = dq.supersample;
  }
  const auto run = RunDir::open(a.out, w.to_string());
  ProgressReporter bar(a.quiet ? ProgressReporter::Mode::Quiet : ProgressReporter::Mode::Auto);
  std::unique_ptr<rl::Ppo> ppo;
  std::unique_ptr<rl::Ddqn> ddqn;
  double last_return = std::nan("");
  if (ro.algorithm == "ppo") {
    ppo = std::make_unique<rl::Ppo>(po);
    ppo->train(ro.steps, [&](const rl::PpoStats& s) {
      run.append_metrics({{"iteration", s.iteration}, {"env_steps", s.env_steps}, {"episodes", s.episodes},
                          {"mean_return", num(s.mean_return)}, {"policy_loss", num(s.policy_loss)},
                          {"value_loss", num(s.value_loss)}, {"entropy", num(s.entropy)}, {"approx_kl", num(s.approx_kl)},
                          {"clip_fraction", num(s.clip_fraction)}, {"grad_norm", num(s.grad_norm)},
                          {"embed_norm", num(s.embed_norm)}, {"nonfinite", s.nonfinite}});
      if (std::isfinite(s.mean_return)) last_return = s.mean_return;
      bar.update("ppo " + env, s.env_steps, ro.steps, fmt::format("return {:.2f}", s.mean_return), "step");
      return true;
    });
    torch::save(ppo->model(), run.file("model.pt").string());
  } else {
    ddqn = std::make_unique<rl::Ddqn>(dq);
    ddqn->train(ro.steps, [&](const rl::DdqnStats& s) {
      run.append_metrics({{"env_steps", s.env_steps}, {"gradient_steps", s.gradient_steps}, {"episodes", s.episodes},
                          {"mean_return", num(s.mean_return)}, {"epsilon", s.epsilon}, {"loss", num(s.loss)}});
      if (std::isfinite(s.mean_return)) last_return = s.mean_return;
      bar.update("ddqn " + env, s.env_steps, ro.steps, fmt::format("return {:.2f}", s.mean_return), "step");
      return true;
    });
    torch::save(ddqn->model(), run.file("model.pt").string());
  }
  rl::EnvOptions eo;
  eo.grid = grid;
  eo.max_steps = max_steps;
  eo.supersample = supersample;
  if (levels > 0 || ro.eval_start_level >= 0)
    eo.start_level = ro.eval_start_level >= 0 ? ro.eval_start_level : start_level + levels;
  const auto policy = [&](const float* obs, std::int64_t n, std::int32_t* act) {
    if (ppo) ppo->act(obs, n, act, ro.eval_greedy);
    else ddqn->act(obs, n, act);
  };
  const auto returns = rl::evaluate(env, eo, policy, ro.eval_episodes, static_cast<std::uint64_t>(ro.eval_seed));
  double mean = 0;
  for (double r : returns) mean += r / static_cast<double>(returns.size());
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  run.write_json("results.json", {{"algorithm", ro.algorithm},
                                  {"env", env},
                                  {"train_steps", ro.steps},
                                  {"last_train_return", num(last_return)},
                                  {"eval_episodes", ro.eval_episodes},
                                  {"eval_start_level", eo.start_level},
                                  {"eval_returns", returns},
                                  {"eval_mean_return", mean}});
  run.write_summary({{"seed", seed}, {"seconds", seconds}, {"algorithm", ro.algorithm}, {"env", env},
                     {"eval_mean_return", mean}});
  std::cout << fmt::format("{} on {}: {} env steps, last training return {:.2f}, evaluation over {} episodes {:.2f}\n",
                           ro.algorithm, env, ro.steps, last_return, ro.eval_episodes, mean);
  std::cout << "run directory: " << a.out << "\n";
  return 0;
}

}  // namespace

void register_rl_commands(CLI::App& app, CommandRegistry& reg) {
  auto* rl = app.add_subcommand("rl", "Reinforcement learning: vectorised environments, PPO and DDQN (docs/rl.md)");
  rl->require_subcommand(1);

  auto* envs = rl->add_subcommand("envs", "List the built-in environments with their observation size and actions");
  reg.add(envs, []() {
    for (const auto& name : stablelearn::rl::env_names()) {
      const auto e = stablelearn::rl::make_env(name);
      std::cout << fmt::format("{:<14} observation {:>4} floats, {} actions\n", name, e->obs_dim(), e->num_actions());
    }
    return 0;
  });

  auto args = std::make_shared<TrainArgs>();
  auto* train = rl->add_subcommand("train", "Train PPO or DDQN on an environment, then evaluate the policy");
  train->add_option("CONFIG", args->config, "TOML file with [rl] and [ppo] or [ddqn]")->required()->check(CLI::ExistingFile);
  train->add_option("--out", args->out, "Run directory to create")->required();
  train->add_option("--set", args->overrides, "Override a configuration value: section.key=value (repeatable)");
  train->add_flag("--quiet", args->quiet, "No progress on stderr");
  train->footer(
      "Writes RUN/config.toml (resolved), metrics.jsonl (per PPO iteration / DDQN report), results.json\n"
      "(evaluation returns), summary.json and model.pt. Keys: [rl] algorithm, steps, eval_episodes, eval_seed,\n"
      "eval_start_level, eval_greedy; [ppo] / [ddqn]: docs/rl.md.\n"
      "Example: stablelearn rl train configs/rl/cartpole_ppo.toml --out runs/ppo --set ppo.seed=2");
  reg.add(train, [args]() { return run_train(*args); });
}

}  // namespace stablelearn::cli
