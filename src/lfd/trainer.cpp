#include "stablelearn/lfd/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <optional>
#include <fstream>

#include <nlohmann/json.hpp>
#include <torch/autograd.h>

#include "stablelearn/core/env.h"
#include "stablelearn/core/error.h"
#include "stablelearn/core/fs.h"
#include "stablelearn/core/run.h"
#include "stablelearn/data/lfd_datasets.h"
#include "stablelearn/data/lfd_preprocess.h"
#include "stablelearn/data/tensor_convert.h"
#include "stablelearn/distributed/process_group.h"
#include "stablelearn/io/npz.h"
#include "stablelearn/lfd/baselines.h"
#include "stablelearn/lfd/cl_scores.h"
#include "stablelearn/lfd/hnet_training.h"
#include "stablelearn/lfd/hn_iteration.h"
#include "stablelearn/models/hypernetwork.h"
#include "stablelearn/models/node_mlp.h"
#include "stablelearn/models/odeint.h"
#include "stablelearn/models/snode.h"
#include "run_common.h"
#include "task_loop.h"

namespace stablelearn::lfd {

using nlohmann::json;
namespace F = models::functional;

// ---------------------------------------------------------------------------------------------
// Configuration

const std::vector<std::string>& LfdDiagnostics::known_metrics() {
  static const std::vector<std::string> names{"lambda_max", "grad_norm", "loss", "trace"};
  return names;
}

std::vector<std::string> LfdDiagnostics::resolved_metrics() const {
  if (!metrics.empty()) return metrics;
  std::vector<std::string> m{"lambda_max", "grad_norm", "loss"};
  if (trace_probes > 0) m.push_back("trace");
  return m;
}

bool LfdDiagnostics::records(const std::string& name) const {
  const auto m = resolved_metrics();
  return std::find(m.begin(), m.end(), name) != m.end();
}

void LfdDiagnostics::fields(options::Visitor& v) {
  v("every", every, "iterations between curvature measurements (0 = off)").at_least(0);
  v("lanczos_steps", lanczos_steps, "Lanczos steps of λ_max (capped at the parameter count)").at_least(2);
  v("trace_probes", trace_probes, "Hutchinson probes of tr(C) (0 = no trace)")
      .expect(trace_probes == 0 || trace_probes >= 2, "0 (no trace) or >= 2");
  v("curvature", curvature, "hessian | ggn (Gauss-Newton)").one_of({"hessian", "ggn"});
  // The resolved list is written (fields() runs on a copy when writing); an explicit list is kept in
  // the canonical order, so the resolved config does not depend on the order written.
  if (v.pass() == options::Visitor::Pass::Write) metrics = resolved_metrics();
  const bool given = v.present("metrics");
  v("metrics", metrics, "rows recorded (default: lambda_max, grad_norm, loss, and trace with trace_probes)")
      .one_of(known_metrics())
      .expect(!given || !metrics.empty(), "at least one metric")
      .expect(std::none_of(metrics.begin(), metrics.end(),
                           [&](const auto& m) { return std::count(metrics.begin(), metrics.end(), m) > 1; }),
              "a list without repeats");
  if (v.pass() == options::Visitor::Pass::Read && !metrics.empty()) {
    std::vector<std::string> canonical;
    for (const auto& name : known_metrics())
      if (std::find(metrics.begin(), metrics.end(), name) != metrics.end()) canonical.push_back(name);
    metrics = canonical;
  }
}

void LfdConfig::fields(options::Visitor& v) {
  v.table("data");
  std::vector<std::string> datasets;
  for (const auto& spec : data::lfd_dataset_specs()) datasets.push_back(spec.name);
  v("dataset", dataset, "the LfD data set (stablelearn list datasets)").one_of(datasets);
  v("root", root, "data root (\"\" = $STABLELEARN_DATA or data/)");
  v("sequence", sequence, "sequence file (\"\" = the data set's full sequence)");
  v("tasks", tasks, "train on the first `tasks` tasks (0 = all)").at_least(0);
  v("tangent_vec_scale", tangent_vec_scale, "RoboTasks9: tangent-vector scale (spec §1.6)").above(0.0);
  v.table("model");
  std::vector<std::string> methods{"hnet"};
  methods.insert(methods.end(), baseline_methods().begin(), baseline_methods().end());
  v("method", method, "hnet: hypernetwork; sg, ft, rep, si, mas: the baselines (spec §7)").one_of(methods);
  v("target", target, "snode: stable neural ODE (LSDDM-based); node: plain MLP field").one_of({"snode", "node"});
  v("hnet", hnet, "chn: chunked hypernetwork; hn: one head per target tensor").one_of({"chn", "hn"});
  v("fhat_layers", fhat_layers, "sNODE: hidden layers of f̂").at_least(1);
  v("h", h, "sNODE: width of f̂").at_least(1);
  v("hp", hp, "sNODE: ICNN width").at_least(1);
  v("alpha", alpha, "sNODE: decay rate α of dV/dt <= -αV").above(0.0);
  v("rehu", rehu, "sNODE: ReHU δ of the ICNN").above(0.0);
  v("eps", eps, "sNODE: ε of the ε‖z‖² term of V").at_least(0.0);
  v("tnet_hidden", tnet_hidden, "NODE: hidden widths").each_at_least(1);
  v("explicit_time", explicit_time, "time appended to the state (the paper's clock input)");
  v("discrete_step", discrete_step,
    "sNODE: train, evaluate and execute the certified discrete-time map Φ_h at the data's period (docs/lfd.md §7)");
  v("discrete_kappa", discrete_kappa, "κ of Φ_h: the fraction of α each step achieves").above(0.0).at_most(1.0);
  v("center_fhat", center_fhat,
    "sNODE: centre the nominal field at the goal, f̂(x) − f̂(0), so the projected field vanishes there (docs/lfd.md §7.1)");
  v("hnet_hidden", hnet_hidden, "hypernetwork trunk widths").each_at_least(1);
  v("task_emb_dim", task_emb_dim, "task embedding size").at_least(1);
  v("chunk_emb_dim", chunk_emb_dim, "CHN: chunk embedding size").at_least(1);
  v("chunk_dim", chunk_dim, "CHN: chunk size C").at_least(1);
  v("mip", mip,
    "hnet: magnitude-invariant parametrisation (embeddings rescaled to a constant norm, output theta0 + delta; "
    "docs/optim.md)");
  v.table("train");
  v("iterations", iterations, "iterations per task").at_least(1);
  v("lr", lr, "Adam learning rate of θ and the task embeddings").above(0.0);
  v("tsub", tsub, "window length").in(2, 1000);
  v("fused_rollout", fused_rollout, "sNODE: the fused Euler rollout with its hand-written backward (false = autograd)");
  v("fused_heads", fused_heads,
    "HN: train the heads without forming their gradient (two fused passes per iteration; false = autograd through "
    "the whole hypernetwork, same values up to float rounding; docs/lfd.md)");
  v("rollout", train_rollout,
    "what training integrates: map (the skill's own map: Φ_h with model.discrete_step, else Euler) or euler (Euler "
    "steps even with model.discrete_step, which is still what is evaluated and executed; docs/lfd.md §7.3)")
      .one_of({"map", "euler"});
  v("beta", beta, "weight of the output regulariser (0 = fine-tuning)").at_least(0.0);
  v("num_regs", num_regs, "past tasks regularised per iteration (0 = all)").at_least(0);
  v("seed", seed, "everything random derives from it");
  v("log_every", log_every, "iterations between metrics.jsonl rows").at_least(1);
  v("si_c", si_c, "SI penalty strength c").at_least(0.0);
  v("si_xi", si_xi, "SI damping ξ").above(0.0);
  v("mas_lambda", mas_lambda, "MAS penalty strength λ").at_least(0.0);
  v("mas_samples", mas_samples, "MAS: random (demonstration, time) states per task of Ω").at_least(1);
  v("cert_weight", cert_weight,
    "discrete_step, hnet: weight of the certificate penalty on states of the 1.5× box (docs/lfd.md §7.2; 0 = off)")
      .at_least(0.0);
  v("cert_samples", cert_samples, "states per iteration of the certificate penalty").at_least(1);
  v.table("eval");
  v("evaluate", evaluate, "evaluate every seen task after each task");
  v("dtw_threshold", dtw_threshold, "CL accuracy: a demonstration counts if its DTW is below this");
  v("node_solver", node_solver, "NODE solver of training and evaluation").one_of({"euler", "rk4", "dopri5"});
  v.section("diagnostics", diagnostics);
}

LfdConfig LfdConfig::from_config(const Config& cfg) {
  LfdConfig c;
  options::read(cfg, c);
  return c;
}

Config LfdConfig::to_config() const {
  ConfigWriter w;
  options::write(w, *this);
  return w.config();
}

void LfdConfig::validate() const { options::check(*this); }

void LfdConfig::cross_check() const {
  SL_CHECK(!discrete_step || (target == "snode" && !explicit_time), ConfigError,
           "model.discrete_step = true needs the autonomous sNODE (model.target = \"snode\", model.explicit_time = "
           "false): only there is V a Lyapunov function of the executed map; got target = \"", target,
           "\", explicit_time = ", explicit_time ? "true" : "false");
  SL_CHECK(cert_weight == 0 || (discrete_step && method == "hnet"), ConfigError,
           "train.cert_weight > 0 needs model.discrete_step = true (the penalty is Φ_h's certificate) and model.method = "
           "\"hnet\", got discrete_step = ", discrete_step ? "true" : "false", ", method = \"", method, "\"");
  SL_CHECK(!mip || method == "hnet", ConfigError,
           "model.mip = true applies to the hypernetwork (model.method = \"hnet\"), got method = \"", method, "\"");
  SL_CHECK(!center_fhat || target == "snode", ConfigError,
           "model.center_fhat = true needs model.target = \"snode\" (it centres the sNODE's nominal field f̂ at the "
           "goal), got target = \"", target, "\"");
  if (!diagnostics.metrics.empty()) {
    const bool trace = diagnostics.records("trace");
    SL_CHECK(!trace || diagnostics.trace_probes > 0, ConfigError,
             "diagnostics.metrics lists \"trace\" but diagnostics.trace_probes = 0; set trace_probes >= 2 (the Hutchinson "
             "probes)");
    SL_CHECK(trace || diagnostics.trace_probes == 0, ConfigError, "diagnostics.trace_probes = ", diagnostics.trace_probes,
             " but diagnostics.metrics does not list \"trace\"; add it or set trace_probes = 0");
  }
}

// ---------------------------------------------------------------------------------------------
// Model construction

namespace {

using detail::Target;
using detail::make_target;

/// The hypernetwork as the shared interface plus the module that owns it.
struct HyperNet {
  std::shared_ptr<torch::nn::Module> module;
  models::TaskHyperNetwork* net = nullptr;
};

HyperNet make_hypernetwork(const LfdConfig& c, const models::WeightLayout& layout) {
  HyperNet h;
  if (c.hnet == "chn") {
    auto o = models::ChunkedHyperNetworkOptions(layout)
                 .hidden(c.hnet_hidden)
                 .task_emb_dim(c.task_emb_dim)
                 .chunk_emb_dim(c.chunk_emb_dim)
                 .chunk_dim(c.chunk_dim)
                 .mip(c.mip);
    auto m = std::make_shared<models::ChunkedHyperNetworkImpl>(o);
    h.net = m.get();
    h.module = m;
  } else {
    auto o = models::HyperNetworkOptions(layout).hidden(c.hnet_hidden).task_emb_dim(c.task_emb_dim).mip(c.mip);
    auto m = std::make_shared<models::HyperNetworkImpl>(o);
    h.net = m.get();
    h.module = m;
  }
  return h;
}

/// Loads the hypernetwork tensors of a checkpoint into `net` (tasks are added as needed, drawing
/// their embeddings exactly as training did, then overwritten).
void load_hypernetwork(const detail::CheckpointData& ck, const LfdConfig& c, models::TaskHyperNetwork* net) {
  SL_CHECK(ck.method == "hnet", ConfigError, ck.tensors_file.string(), ": the checkpoint is of method '", ck.method,
           "', the configuration says 'hnet'");
  while (net->num_tasks() < ck.completed) {
    torch::manual_seed(derive_seed(c.seed, net->num_tasks(), seed_purpose::init));
    net->add_task();
  }
  torch::NoGradGuard no_grad;
  auto load = [&](const std::string& key, torch::Tensor dst) {
    const auto src = detail::checkpoint_tensor(ck, key);
    SL_CHECK(src.sizes() == dst.sizes(), DataError, ck.tensors_file.string(), ": tensor '", key, "' has shape ",
             src.sizes(), ", the configured model needs ", dst.sizes());
    dst.copy_(src);
  };
  const auto theta = net->theta();
  for (std::size_t k = 0; k < theta.size(); ++k) load("theta." + std::to_string(k), theta[k]);
  const auto embs = net->task_embeddings();
  for (std::size_t k = 0; k < embs.size(); ++k) load("emb." + std::to_string(k), embs[k]);
}

}  // namespace

LfdParamCounts count_parameters(const LfdConfig& cfg) {
  cfg.validate();
  const auto& spec = data::lfd_dataset_spec(cfg.dataset);
  const auto root = cfg.root.empty() ? data::default_data_root() : std::filesystem::path(cfg.root);
  data::LfdDataset ds(spec.kind, root, cfg.sequence);
  LfdParamCounts p;
  p.tasks = cfg.tasks > 0 ? std::min(cfg.tasks, ds.num_tasks()) : ds.num_tasks();
  if (cfg.method != "hnet") {
    // Baselines: no hypernetwork; the network that learns (conditioned on a task embedding except
    // for sg) is θ; sg stores one per task.
    torch::NoGradGuard no_grad;
    BaselineModel model(cfg, spec.state_dim);
    p.target = model.network_numel();
    p.theta = model.conditioned() ? model.network_numel() : model.network_numel() * p.tasks;
    p.hypernetwork = 0;
    return p;
  }
  const auto target = make_target(cfg, spec.state_dim);
  torch::NoGradGuard no_grad;
  auto hn = make_hypernetwork(cfg, target.layout);
  for (std::int64_t i = 0; i < p.tasks; ++i) hn.net->add_task();
  p.target = target.layout.numel();
  p.theta = hn.net->theta_numel();
  p.hypernetwork = hn.net->numel_with_embeddings();
  return p;
}

// ---------------------------------------------------------------------------------------------
// The hypernetwork learner (spec §3) and the trainer

namespace {

class HnetLearner : public detail::Learner {
 public:
  HnetLearner(const LfdConfig& c, detail::TaskSource& tasks) : c_(c), tasks_(tasks) {
    target_ = make_target(c, tasks.spec().state_dim);
    torch::manual_seed(static_cast<std::uint64_t>(c.seed));
    hn_ = make_hypernetwork(c, target_.layout);
    net_ = hn_.net;
  }
  std::string method() const override { return "hnet"; }
  void resume(const detail::CheckpointData& ck) override { load_hypernetwork(ck, c_, net_); }

  void begin_task(std::int64_t i) override {
    torch::manual_seed(derive_seed(c_.seed, i, seed_purpose::init));
    const auto task_id = net_->add_task();
    SL_CHECK(task_id == i, InternalError, "task ids out of step");
    window_gen_ = at::detail::createCPUGenerator(derive_seed(c_.seed, i, seed_purpose::batches));
    reg_gen_ = at::detail::createCPUGenerator(derive_seed(c_.seed, i, seed_purpose::method));
    cert_gen_ = at::detail::createCPUGenerator(derive_seed(c_.seed, i, seed_purpose::states));
    if (c_.cert_weight > 0) period_ = detail::data_period(tasks_.task32(i).t);
    targets_.clear();
    if (c_.beta > 0) {
      torch::NoGradGuard no_grad;
      for (std::int64_t j = 0; j < i; ++j) targets_.push_back(net_->forward_task(j).detach().clone());
    }
    theta_ = net_->theta();
    emb_ = net_->task_embedding(i);
    opt_theta_.emplace(theta_, c_.lr);
    opt_emb_.emplace(std::vector<torch::Tensor>{emb_}, c_.lr);
    params_ = theta_;
    params_.push_back(emb_);
  }

  detail::StepOutcome step(std::int64_t i, std::int64_t it) override {
    if (group_) return step_distributed(i, it);
    win_ = data::sample_window(tasks_.task32(i), c_.tsub, window_gen_);
    detail::StepOutcome out;
    HnIteration hi;
    hi.loss = [&](const torch::Tensor& flat) {
      const auto pred = detail::train_rollout(c_, target_, flat, {}, win_.y.select(1, 0), win_.t);
      auto loss = (pred - win_.y).pow(2).mean();
      if (c_.cert_weight > 0) {
        const auto& task = tasks_.task32(i);
        const auto states = detail::certificate_states(task.x, c_.cert_samples, cert_gen_);
        const auto cert = models::functional::snode_certificate_violation(
            states, period_, target_.layout.split(flat), *target_.snode, c_.discrete_kappa);
        out.cert = cert.item<double>();
        loss = loss + c_.cert_weight * cert;
      }
      return loss;
    };
    if (i > 0 && c_.beta > 0) {
      hi.targets = &targets_;
      hi.reg_tasks = sample_regularized_tasks(i, c_.num_regs, reg_gen_);
      hi.beta = c_.beta;
    }
    auto* hn = c_.fused_heads ? dynamic_cast<models::HyperNetworkImpl*>(net_) : nullptr;
    const auto r = hn != nullptr && hn_fused_applies(*hn) ? hn_iteration_fused(*hn, i, *opt_theta_, *opt_emb_, hi)
                                                          : hn_iteration_autograd(*net_, i, *opt_theta_, *opt_emb_, hi);
    out.loss = r.loss;
    out.reg = r.reg;
    return out;
  }

  /// step() on rank r of N: every rank draws the same window and the same past tasks (same
  /// generators); rank r takes the contiguous shard r of the window's demonstrations (its squared
  /// errors divided by the whole window's count, so the shares sum to the 1-process mean) and of
  /// the regularised tasks (divided by their whole number). The certificate penalty counts on rank 0
  /// only. All-reduce 1: the task-loss gradients (θ and the embedding) and the loss → the same
  /// embedding step and the same look-ahead Δθ everywhere. All-reduce 2: the regulariser gradients
  /// at θ + Δθ (rank 0 adds its share to the task gradients, the others to zeros) and its value →
  /// the same Adam step everywhere.
  detail::StepOutcome step_distributed(std::int64_t i, std::int64_t) {
    win_ = data::sample_window(tasks_.task32(i), c_.tsub, window_gen_);
    const int rank = group_->rank(), world = group_->size();
    const auto M = win_.y.size(0);
    const auto demos = distributed::shard(M, rank, world);
    detail::StepOutcome out;
    torch::Tensor loss;
    std::vector<torch::Tensor> grads;
    const auto flat = net_->forward_task(i);
    if (demos.count > 0) {
      const auto y = win_.y.narrow(0, demos.begin, demos.count);
      const auto pred = detail::train_rollout(c_, target_, flat, {}, y.select(1, 0), win_.t);
      loss = (pred - y).pow(2).sum() / static_cast<double>(win_.y.numel());
    }
    double cert_value = -1;
    if (c_.cert_weight > 0) {
      // Drawn on every rank (the generator stays in step); counted on rank 0.
      const auto states = detail::certificate_states(tasks_.task32(i).x, c_.cert_samples, cert_gen_);
      if (rank == 0) {
        const auto cert = models::functional::snode_certificate_violation(
            states, period_, target_.layout.split(flat), *target_.snode, c_.discrete_kappa);
        cert_value = cert.item<double>();
        loss = loss.defined() ? loss + c_.cert_weight * cert : c_.cert_weight * cert;
      }
    }
    if (loss.defined()) {
      grads = torch::autograd::grad({loss}, params_);
    } else {
      for (const auto& p : params_) grads.push_back(torch::zeros_like(p));
    }
    auto sums = torch::zeros({2}, torch::kFloat64);
    if (loss.defined()) sums[0] = loss.item<double>();
    {
      auto all = grads;
      all.push_back(sums);
      group_->all_reduce(all, distributed::Reduce::Sum);
    }
    opt_emb_->step({grads.back()});
    grads.pop_back();
    if (i > 0 && c_.beta > 0) {
      const auto tasks = sample_regularized_tasks(i, c_.num_regs, reg_gen_);
      const auto mine = distributed::shard(static_cast<std::int64_t>(tasks.size()), rank, world);
      std::vector<torch::Tensor> reg_grads;
      if (rank == 0) {
        reg_grads = grads;  // the task gradients, plus rank 0's share below
      } else {
        for (const auto& g : grads) reg_grads.push_back(torch::zeros_like(g));
      }
      double reg_share = 0;
      if (mine.count > 0) {
        const std::vector<std::int64_t> my_tasks(tasks.begin() + mine.begin, tasks.begin() + mine.begin + mine.count);
        const double share = static_cast<double>(mine.count) / static_cast<double>(tasks.size());
        reg_share = add_lookahead_regularizer_grad(theta_, opt_theta_->lookahead(grads), c_.beta * share, [&] {
          return output_regularizer(targets_, my_tasks, [&](std::int64_t j) {
            return net_->forward_embedding(net_->task_embedding(j).detach());
          });
        }, reg_grads) * share;
      }
      auto reg_sum = torch::full({1}, reg_share, torch::kFloat64);
      auto all = reg_grads;
      all.push_back(reg_sum);
      group_->all_reduce(all, distributed::Reduce::Sum);
      grads = std::move(reg_grads);
      out.reg = reg_sum.item<double>();
    }
    opt_theta_->step(grads);
    out.loss = sums[0].item<double>();
    if (c_.cert_weight > 0) out.cert = cert_value;  // rank 0's (the others do not log it)
    return out;
  }

  detail::DiagnosticsProbe probe(std::int64_t i) const override {
    detail::DiagnosticsProbe p;
    p.wrt = params_;
    p.rollout = [this, i] {
      const auto w = target_.layout.split(net_->forward_task(i));
      return target_.train(w, {})(win_.y.select(1, 0), win_.t);
    };
    p.target = win_.y;
    p.row_extra["window_start"] = win_.k0;
    return p;
  }

  void keep_best() override {
    torch::NoGradGuard no_grad;
    best_theta_.clear();
    for (const auto& p : theta_) best_theta_.push_back(p.detach().clone());
    best_emb_ = emb_.detach().clone();
  }

  void end_task(std::int64_t) override {
    torch::NoGradGuard no_grad;  // continue from the best copy (spec §3.1)
    for (std::size_t k = 0; k < theta_.size(); ++k) theta_[k].copy_(best_theta_[k]);
    emb_.copy_(best_emb_);
  }

  EvalCell evaluate(std::int64_t, std::int64_t j, const std::vector<std::vector<EvalCell>>&) override {
    torch::NoGradGuard no_grad;
    return detail::evaluate_task(c_, tasks_.spec(), tasks_.task(j),
                                 target_.rollout(target_.layout.split(net_->forward_task(j)), {}));
  }

  std::map<std::string, io::NdArray> checkpoint_tensors() const override {
    std::map<std::string, io::NdArray> tensors;
    const auto th = net_->theta();
    for (std::size_t k = 0; k < th.size(); ++k) tensors["theta." + std::to_string(k)] = data::to_ndarray(th[k]);
    const auto embs = net_->task_embeddings();
    for (std::size_t k = 0; k < embs.size(); ++k) tensors["emb." + std::to_string(k)] = data::to_ndarray(embs[k]);
    return tensors;
  }

  detail::SummaryInfo summary(std::int64_t completed) const override {
    detail::SummaryInfo info;
    info.method = "hnet";
    info.params = {{"target", target_.layout.numel()}, {"hypernetwork", net_->numel_with_embeddings()},
                   {"theta", net_->theta_numel()}};
    for (std::int64_t ti = 0; ti < completed; ++ti)
      info.sizes.push_back(static_cast<double>(net_->theta_numel() + (ti + 1) * c_.task_emb_dim));
    return info;
  }

 private:
  const LfdConfig& c_;
  detail::TaskSource& tasks_;
  Target target_;
  HyperNet hn_;
  models::TaskHyperNetwork* net_ = nullptr;
  torch::Generator window_gen_, reg_gen_, cert_gen_;
  double period_ = 0;  // the task's data period h (the certificate penalty's step)
  std::vector<torch::Tensor> targets_, theta_, params_, best_theta_;
  torch::Tensor emb_, best_emb_;
  std::optional<Adam> opt_theta_, opt_emb_;  // the current task's
  data::Window win_;
};

}  // namespace

struct LfdTrainer::State {
  LfdConfig cfg;
  std::filesystem::path run;
  std::unique_ptr<detail::TaskSource> tasks;
  std::unique_ptr<detail::Learner> learner;
  detail::LoopResults results;
};

LfdTrainer::LfdTrainer(LfdConfig config, std::filesystem::path run_dir) : s_(std::make_unique<State>()) {
  config.validate();
  s_->cfg = std::move(config);
  s_->run = std::move(run_dir);
  s_->tasks = std::make_unique<detail::TaskSource>(s_->cfg);
  s_->learner = s_->cfg.method == "hnet" ? std::make_unique<HnetLearner>(s_->cfg, *s_->tasks)
                                         : detail::make_baseline_learner(s_->cfg, *s_->tasks);
}

LfdTrainer::~LfdTrainer() = default;
const std::vector<std::vector<EvalCell>>& LfdTrainer::evaluations() const { return s_->results.evals; }
const std::vector<double>& LfdTrainer::train_seconds() const { return s_->results.seconds; }

void LfdTrainer::run(bool resume, const std::function<void(const TrainProgress&)>& progress, std::int64_t stop_after,
                     distributed::ProcessGroup* group) {
  s_->learner->set_group(group);
  detail::run_tasks(s_->cfg, s_->run, *s_->tasks, *s_->learner, resume, progress, stop_after, s_->results, group);
}

// ---------------------------------------------------------------------------------------------
// Loading a run (the stability check is in stability.cpp)

namespace detail {
struct RunParts {
  LfdConfig cfg;
  const data::LfdDatasetSpec* spec = nullptr;
  std::unique_ptr<data::LfdDataset> dataset;
  Target target;
  HyperNet hn;
  std::unique_ptr<BaselineModel> baseline;  // methods other than hnet
  std::int64_t completed = 0;
};
}  // namespace detail

LfdRun::LfdRun(const std::filesystem::path& run_dir) : p_(std::make_unique<detail::RunParts>()) {
  const auto cfg_path = run_dir / "config.toml";
  SL_CHECK(std::filesystem::exists(cfg_path), IoError, cfg_path.string(), ": not found (is ", run_dir.string(),
           " a run directory of 'stablelearn lfd train'?)");
  p_->cfg = LfdConfig::from_config(Config::from_file(cfg_path));
  const auto& c = p_->cfg;
  p_->spec = &data::lfd_dataset_spec(c.dataset);
  const auto root = c.root.empty() ? data::default_data_root() : std::filesystem::path(c.root);
  p_->dataset = std::make_unique<data::LfdDataset>(p_->spec->kind, root, c.sequence);
  const auto ck = detail::read_checkpoint(run_dir);
  p_->completed = ck.completed;
  if (c.method != "hnet") {
    SL_CHECK(ck.method == c.method, DataError, ck.tensors_file.string(), ": the checkpoint is of method '", ck.method,
             "', config.toml says '", c.method, "'");
    torch::manual_seed(static_cast<std::uint64_t>(c.seed));
    p_->baseline = std::make_unique<BaselineModel>(c, p_->spec->state_dim);
    p_->baseline->load_tensors([&](const std::string& key) { return detail::checkpoint_tensor(ck, key); }, ck.completed);
    return;
  }
  p_->target = make_target(c, p_->spec->state_dim);
  torch::manual_seed(static_cast<std::uint64_t>(c.seed));
  p_->hn = make_hypernetwork(c, p_->target.layout);
  load_hypernetwork(ck, c, p_->hn.net);
}

LfdRun::~LfdRun() = default;
const LfdConfig& LfdRun::config() const { return p_->cfg; }
std::int64_t LfdRun::completed_tasks() const { return p_->completed; }

std::vector<torch::Tensor> LfdRun::weights(std::int64_t task) const {
  SL_CHECK(task >= 0 && task < p_->completed, UsageError, "task ", task, " was not learned by this run (", p_->completed,
           " tasks completed)");
  torch::NoGradGuard no_grad;
  if (p_->baseline) return p_->baseline->weights(task);
  return p_->target.layout.split(p_->hn.net->forward_task(task).detach());
}

namespace {
std::vector<torch::Tensor> cast_weights(std::vector<torch::Tensor> w, torch::Dtype dtype) {
  for (auto& t : w) t = t.to(dtype);
  return w;
}
}  // namespace

VectorField LfdRun::field(std::int64_t task, torch::Dtype dtype) const {
  if (p_->baseline) {
    SL_CHECK(task >= 0 && task < p_->completed, UsageError, "task ", task, " was not learned by this run (",
             p_->completed, " tasks completed)");
    return p_->baseline->field(task, dtype);
  }
  return p_->target(cast_weights(weights(task), dtype));
}

GridRollout LfdRun::rollout(std::int64_t task, torch::Dtype dtype) const {
  if (p_->baseline) {
    SL_CHECK(task >= 0 && task < p_->completed, UsageError, "task ", task, " was not learned by this run (",
             p_->completed, " tasks completed)");
    return p_->baseline->rollout(task, dtype);
  }
  return p_->target.rollout(cast_weights(weights(task), dtype), {});
}

const std::string& LfdRun::task_name(std::int64_t task) const {
  SL_CHECK(task >= 0 && task < p_->dataset->num_tasks(), UsageError, "task ", task, " out of range");
  return p_->dataset->task_files()[static_cast<std::size_t>(task)];
}

namespace {
/// Task `task` of a loaded run as training prepared it (UsageError for a task it did not learn).
data::PreparedTask prepared_task(const detail::RunParts& p, std::int64_t task) {
  SL_CHECK(task >= 0 && task < p.completed, UsageError, "task ", task, " was not learned by this run (", p.completed,
           " tasks completed)");
  return data::prepare_task(p.dataset->task(task), *p.spec, {p.cfg.target == "snode", p.cfg.tangent_vec_scale});
}
}  // namespace

LfdRun::TaskData LfdRun::task(std::int64_t task) const {
  const auto prep = prepared_task(*p_, task);
  return {prep.raw, prep.x, prep.t, prep.norm.mean, prep.norm.std, prep.goal, prep.position_dim};
}

EvalCell LfdRun::evaluate(std::int64_t task, const GridRollout& rollout) const {
  return detail::evaluate_task(p_->cfg, *p_->spec, prepared_task(*p_, task), rollout);
}

LyapunovFunction LfdRun::lyapunov(std::int64_t task, torch::Dtype dtype) const {
  SL_CHECK(p_->cfg.target == "snode", UsageError, "a learned Lyapunov function exists for sNODE skills only (this run's "
           "target is '", p_->cfg.target, "')");
  if (p_->baseline) {
    SL_CHECK(task >= 0 && task < p_->completed, UsageError, "task ", task, " was not learned by this run (",
             p_->completed, " tasks completed)");
    return p_->baseline->lyapunov(task, dtype);
  }
  return p_->target.lyapunov(cast_weights(weights(task), dtype));
}

}  // namespace stablelearn::lfd
