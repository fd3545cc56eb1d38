// stablelearn unlearn --run RUN --out OUT (--forget-class C | --forget-random N) --method M: machine
// unlearning (unlearn/unlearn.h; docs/unlearn.md) of the classifier of a `stablelearn cl run` (the
// weights of its last checkpoint; the data of all its tasks): GA+GD, NPO+GD or StableUN, then the
// relearning attack on forget examples and the flatness probe. Writes OUT/config.toml (the resolved
// options), metrics.jsonl (losses every --log-every steps), results.json (accuracies before and
// after, the attack curve and its AUC, lambda_max), summary.json (seed, seconds, versions) and
// weights.npz (the unlearned weights, the model layout of the run).
#include <chrono>
#include <cmath>
#include <iostream>
#include <memory>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "commands.h"
#include "stablelearn/core/config.h"
#include "stablelearn/core/error.h"
#include "stablelearn/core/progress.h"
#include "stablelearn/core/run.h"
#include "stablelearn/data/tensor_convert.h"
#include "stablelearn/experiments/cl_experiment.h"
#include "stablelearn/io/npz.h"
#include "stablelearn/unlearn/unlearn.h"

namespace stablelearn::cli {
namespace {

using nlohmann::json;

struct UnlearnArgs {
  std::string run, out;
  std::int64_t forget_class = -1, forget_random = 0;
  unlearn::UnlearnOptions o;
  std::int64_t attack_samples = 20, attack_steps = 50, probe_samples = 1000, lanczos_steps = 20, log_every = 10;
  double attack_lr = 1e-3;
  bool quiet = false;
};

std::string resolved_config(const UnlearnArgs& a) {
  ConfigWriter w;
  w.put("unlearn", "run", a.run);
  w.put("unlearn", "forget_class", a.forget_class);
  w.put("unlearn", "forget_random", a.forget_random);
  w.put("unlearn", "method", a.o.method);
  w.put("unlearn", "forget_loss", a.o.forget_loss);
  w.put("unlearn", "steps", a.o.steps);
  w.put("unlearn", "batch", a.o.batch);
  w.put("unlearn", "lr", a.o.lr);
  w.put("unlearn", "beta", a.o.beta);
  w.put("unlearn", "rho", a.o.rho);
  w.put("unlearn", "alpha", a.o.alpha);
  w.put("unlearn", "lambda_f", a.o.lambda_f);
  w.put("unlearn", "lambda_r", a.o.lambda_r);
  w.put("unlearn", "seed", static_cast<std::int64_t>(a.o.seed));
  w.put("unlearn", "stop_forget_acc", a.o.stop_forget_acc);
  w.put("unlearn", "check_every", a.o.check_every);
  w.put("attack", "samples", a.attack_samples);
  w.put("attack", "steps", a.attack_steps);
  w.put("attack", "lr", a.attack_lr);
  w.put("probe", "samples", a.probe_samples);
  w.put("probe", "lanczos_steps", a.lanczos_steps);
  return w.to_string();
}

int run_unlearn(UnlearnArgs a) {
  const auto t0 = std::chrono::steady_clock::now();
  SL_CHECK((a.forget_class >= 0) != (a.forget_random > 0), UsageError,
           "give exactly one of --forget-class C (a class) and --forget-random N (N random training samples)");
  a.o.validate("--");
  const auto view = experiments::load_cl_run(a.run);
  SL_CHECK(!view.task_incremental, UsageError, a.run,
           ": a task-incremental run (masked heads); unlearn supports class- and domain-incremental runs");
  SL_CHECK(view.completed_tasks > 0, UsageError, a.run, ": the run has no completed task (no trained model)");
  const auto classes = view.model->options().classes;
  std::vector<torch::Tensor> xs, ys, xts, yts;
  for (const auto& t : view.tasks) {
    xs.push_back(t.train.images);
    ys.push_back(t.train.labels);
    xts.push_back(t.test.images);
    yts.push_back(t.test.labels);
  }
  const auto x = torch::cat(xs), y = torch::cat(ys), xt = torch::cat(xts), yt = torch::cat(yts);
  const auto& in = view.model->options().input;
  SL_CHECK(x.dim() == 4 && x.size(1) == in[0] && x.size(2) == in[1] && x.size(3) == in[2], DataError, a.run,
           "/config.toml: the model takes images [", in[0], ", ", in[1], ", ", in[2], "] but the run's data has ",
           x.sizes().slice(1), "; the model does not match the data");
  SL_CHECK(y.min().item<std::int64_t>() >= 0 && y.max().item<std::int64_t>() < classes, DataError, a.run,
           "/config.toml: the data has labels ", y.min().item<std::int64_t>(), "..", y.max().item<std::int64_t>(),
           " but the model has ", classes, " classes; the model does not match the data");
  std::vector<torch::Tensor> w0;
  for (const auto& t : view.model->weights()) w0.push_back(t.detach().clone());
  {
    // The checkpoint must be a trained model of this data: its accuracy on the training data above chance.
    const double acc = unlearn::accuracy([&view](const torch::Tensor& xx, const std::vector<torch::Tensor>& w) {
      return view.model->forward(xx, w);
    }, w0, x, y);
    SL_CHECK(acc > 1.0 / static_cast<double>(classes), DataError, a.run, ": the checkpoint's training accuracy is ", acc,
             ", not above chance (1/", classes, "); the model does not match the run's data");
  }
  const unlearn::LogitsFn f = [&view](const torch::Tensor& xx, const std::vector<torch::Tensor>& w) {
    return view.model->forward(xx, w);
  };

  torch::Tensor fmask, tmask;
  if (a.forget_class >= 0) {
    SL_CHECK(a.forget_class < classes, UsageError, "--forget-class ", a.forget_class, " is out of range: the model has ",
             classes, " classes (0..", classes - 1, ")");
    fmask = y.eq(a.forget_class);
    tmask = yt.eq(a.forget_class);
    SL_CHECK(fmask.any().item<bool>(), UsageError, "--forget-class ", a.forget_class, ": the run's tasks have no training image of that class");
  } else {
    SL_CHECK(a.forget_random < x.size(0), UsageError, "--forget-random ", a.forget_random, ": the run has ", x.size(0),
             " training images; choose fewer");
    auto gen = at::detail::createCPUGenerator(a.o.seed * 2654435761ULL + 97);
    fmask = torch::zeros({x.size(0)}, torch::kBool);
    fmask.index_fill_(0, torch::randperm(x.size(0), gen, torch::kInt64).slice(0, 0, a.forget_random), true);
  }
  const auto keep = fmask.logical_not();
  unlearn::UnlearnData d{x.index({fmask}), y.index({fmask}), x.index({keep}), y.index({keep})};
  // Forgetting is measured on the forget class's test images (a class) or on the forget samples
  // themselves (a random subset: there is no held-out copy of them); retaining on the other test images.
  torch::Tensor xf_e = d.x_forget, yf_e = d.y_forget, xr_e = xt, yr_e = yt;
  if (a.forget_class >= 0) {
    xf_e = xt.index({tmask});
    yf_e = yt.index({tmask});
    xr_e = xt.index({tmask.logical_not()});
    yr_e = yt.index({tmask.logical_not()});
  }

  const auto config = resolved_config(a);
  const auto run = RunDir::open(a.out, config);
  auto measure = [&](const std::vector<torch::Tensor>& w) {
    return json{{"forget_acc", unlearn::accuracy(f, w, xf_e, yf_e)},
                {"retain_acc", unlearn::accuracy(f, w, xr_e, yr_e)},
                {"forget_train_acc", unlearn::accuracy(f, w, d.x_forget, d.y_forget)}};
  };
  const auto before = measure(w0);
  auto w = w0;
  for (auto& t : w) t = t.clone();
  const auto tu = std::chrono::steady_clock::now();
  ProgressReporter bar(a.quiet ? ProgressReporter::Mode::Quiet : ProgressReporter::Mode::Auto);
  const auto label = "unlearn (" + a.o.method + ")";
  const auto trace = unlearn::unlearn(w, f, d, a.o, [&](std::int64_t step, const unlearn::StepStats& s) {
    if ((step + 1) % a.log_every == 0)
      run.append_metrics({{"step", step + 1}, {"forget_loss", s.forget_loss}, {"retain_loss", s.retain_loss},
                          {"inner", s.inner}, {"projected", s.projected}});
    bar.update(label, step + 1, a.o.steps, fmt::format("forget loss {:.4g} retain loss {:.4g}", s.forget_loss, s.retain_loss),
               "step");
  });
  if (trace.steps > 0 && trace.steps % a.log_every != 0 && !trace.diverged)  // the last step's row
    run.append_metrics({{"step", trace.steps}, {"forget_loss", trace.forget_loss.back()}, {"retain_loss", trace.retain_loss.back()}});
  const double unlearn_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - tu).count();
  if (trace.steps < a.o.steps) bar.note(fmt::format("stopped after {} of {} steps", trace.steps, a.o.steps));
  const auto after = measure(w);
  unlearn::RelearnOptions ro;
  ro.steps = a.attack_steps;
  ro.lr = a.attack_lr;
  const auto na = std::min<std::int64_t>(a.attack_samples, d.x_forget.size(0));
  auto agen = at::detail::createCPUGenerator(a.o.seed * 104729 + 17);
  const auto aidx = torch::randperm(d.x_forget.size(0), agen, torch::kInt64).slice(0, 0, na);
  const auto curve = unlearn::relearn_attack(w, f, d.x_forget.index_select(0, aidx), d.y_forget.index_select(0, aidx), xf_e, yf_e, ro);
  const auto np = std::min<std::int64_t>(a.probe_samples, d.x_forget.size(0));
  const double lam0 = unlearn::forget_sharpness(w0, f, d.x_forget.slice(0, 0, np), d.y_forget.slice(0, 0, np), a.lanczos_steps, a.o.seed);
  const double lam = unlearn::forget_sharpness(w, f, d.x_forget.slice(0, 0, np), d.y_forget.slice(0, 0, np), a.lanczos_steps, a.o.seed);

  std::map<std::string, io::NdArray> tensors;
  for (std::size_t i = 0; i < w.size(); ++i) tensors["model." + std::to_string(i)] = data::to_ndarray(w[i].detach().cpu());
  io::write_npz(run.file("weights.npz"), tensors, /*compress=*/false);
  json res = {{"run", a.run},
              {"method", a.o.method},
              {"forget", a.forget_class >= 0 ? json{{"class", a.forget_class}} : json{{"random", a.forget_random}}},
              {"forget_samples", d.x_forget.size(0)},
              {"retain_samples", d.x_retain.size(0)},
              {"before", before},
              {"after", after},
              {"retain_drop", before.at("retain_acc").get<double>() - after.at("retain_acc").get<double>()},
              {"passes", trace.passes},
              {"steps", trace.steps},
              {"stopped_early", trace.stopped_early},
              {"diverged", trace.diverged},
              {"projections", trace.projections},
              {"relearn", {{"accuracy", curve.accuracy}, {"auc", curve.auc}, {"steps_to_half", curve.steps_to_half},
                           {"evaluated_on", a.forget_class >= 0 ? "the forget class's test images" : "the forget samples"}}},
              {"lambda_max", {{"before", lam0}, {"after", lam}}},
              {"weights", "weights.npz"}};
  run.write_json("results.json", res);
  run.write_summary({{"seed", a.o.seed}, {"seconds", std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()},
                     {"unlearn_seconds", unlearn_seconds}});
  std::cout << fmt::format("{} on {}: forget accuracy {:.4f} -> {:.4f}, retain accuracy {:.4f} -> {:.4f}; relearning AUC {:.4f}; "
                           "lambda_max {:.4g} -> {:.4g}\nwrote {}\n",
                           a.o.method, a.run, before.at("forget_acc").get<double>(), after.at("forget_acc").get<double>(),
                           before.at("retain_acc").get<double>(), after.at("retain_acc").get<double>(), curve.auc, lam0, lam,
                           run.path().string());
  return 0;
}

}  // namespace

void register_unlearn_command(CLI::App& app, CommandRegistry& reg) {
  auto a = std::make_shared<UnlearnArgs>();
  auto* cmd = app.add_subcommand("unlearn",
                                 "Machine unlearning of a `cl run`'s classifier (GA, NPO, StableUN), a relearning attack and "
                                 "the forget loss's flatness");
  cmd->add_option("--run", a->run, "A `stablelearn cl run` directory (its last checkpoint; the data of all its tasks)")
      ->required();
  cmd->add_option("--out", a->out, "Run directory to create")->required();
  cmd->add_option("--forget-class", a->forget_class, "Forget every training image of class C (0-based)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--forget-random", a->forget_random, "Forget N random training images instead")->check(CLI::PositiveNumber);
  cmd->add_option("--method", a->o.method, "ga (GA+GD), npo (NPO+GD) or stableun")->capture_default_str();
  cmd->add_option("--forget-loss", a->o.forget_loss, "StableUN's forgetting loss: npo or ga")->capture_default_str();
  cmd->add_option("--steps", a->o.steps, "Unlearning steps")->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_option("--batch", a->o.batch, "Forget and retain samples per step (each)")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--lr", a->o.lr, "SGD learning rate eta")->capture_default_str();
  cmd->add_option("--beta", a->o.beta, "NPO's beta")->capture_default_str();
  cmd->add_option("--rho", a->o.rho, "StableUN's perturbation radius rho")->capture_default_str();
  cmd->add_option("--alpha", a->o.alpha, "StableUN's look-ahead step alpha (0 = eta)")->capture_default_str();
  cmd->add_option("--lambda-f", a->o.lambda_f, "Forgetting weight")->capture_default_str();
  cmd->add_option("--lambda-r", a->o.lambda_r, "Retaining weight")->capture_default_str();
  cmd->add_option("--stop-forget-acc", a->o.stop_forget_acc,
                  "Stop once the accuracy on the forget samples is at most this (checked every --check-every steps; "
                  "< 0: never stop early)")
      ->capture_default_str();
  cmd->add_option("--check-every", a->o.check_every, "Steps between two checks of --stop-forget-acc")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--seed", a->o.seed, "Seed of the batches, of --forget-random and of the attack's examples")->capture_default_str();
  cmd->add_option("--attack-samples", a->attack_samples, "Forget examples of the relearning attack")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--attack-steps", a->attack_steps, "Relearning attack steps (Adam, full batch)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--attack-lr", a->attack_lr, "Relearning attack learning rate")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--probe-samples", a->probe_samples, "Forget samples of the flatness probe")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--lanczos-steps", a->lanczos_steps, "Lanczos steps of the flatness probe")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--log-every", a->log_every, "A metrics.jsonl row every N steps")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_flag("--quiet", a->quiet, "No progress on stderr");
  cmd->footer(
      "Writes OUT/config.toml, metrics.jsonl, results.json, summary.json and weights.npz.\n"
      "Example: stablelearn unlearn --run runs/er --out runs/er_forget9 --forget-class 9 --method stableun");
  reg.add(cmd, [a]() { return run_unlearn(*a); });
}

}  // namespace stablelearn::cli
