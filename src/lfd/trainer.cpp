#include "stablelearn/lfd/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>

#include <nlohmann/json.hpp>
#include <torch/autograd.h>

#include "stablelearn/core/env.h"
#include "stablelearn/core/error.h"
#include "stablelearn/core/fs.h"
#include "stablelearn/data/lfd_datasets.h"
#include "stablelearn/data/lfd_preprocess.h"
#include "stablelearn/data/tensor_convert.h"
#include "stablelearn/io/npz.h"
#include "stablelearn/lfd/baselines.h"
#include "stablelearn/lfd/cl_scores.h"
#include "stablelearn/lfd/hnet_training.h"
#include "stablelearn/models/hypernetwork.h"
#include "stablelearn/models/node_mlp.h"
#include "stablelearn/models/odeint.h"
#include "stablelearn/models/snode.h"
#include "run_common.h"

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

namespace {

std::string quoted_list(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "\"" : ", \"") + n + "\"";
  return out;
}

}  // namespace

LfdConfig LfdConfig::from_config(const Config& cfg) {
  cfg.check_sections({"data", "model", "train", "eval", "diagnostics"});
  LfdConfig c;
  auto d = cfg.section("data");
  c.dataset = d.get("dataset", c.dataset);
  c.root = d.get("root", c.root);
  c.sequence = d.get("sequence", c.sequence);
  c.tasks = d.get("tasks", c.tasks);
  c.tangent_vec_scale = d.get("tangent_vec_scale", c.tangent_vec_scale);
  d.finish();
  auto m = cfg.section("model");
  c.method = m.get("method", c.method);
  c.target = m.get("target", c.target);
  c.hnet = m.get("hnet", c.hnet);
  c.fhat_layers = m.get("fhat_layers", c.fhat_layers);
  c.h = m.get("h", c.h);
  c.hp = m.get("hp", c.hp);
  c.alpha = m.get("alpha", c.alpha);
  c.rehu = m.get("rehu", c.rehu);
  c.eps = m.get("eps", c.eps);
  c.tnet_hidden = m.get("tnet_hidden", c.tnet_hidden);
  c.explicit_time = m.get("explicit_time", c.explicit_time);
  c.discrete_step = m.get("discrete_step", c.discrete_step);
  c.discrete_kappa = m.get("discrete_kappa", c.discrete_kappa);
  c.center_fhat = m.get("center_fhat", c.center_fhat);
  c.hnet_hidden = m.get("hnet_hidden", c.hnet_hidden);
  c.task_emb_dim = m.get("task_emb_dim", c.task_emb_dim);
  c.chunk_emb_dim = m.get("chunk_emb_dim", c.chunk_emb_dim);
  c.chunk_dim = m.get("chunk_dim", c.chunk_dim);
  m.finish();
  auto t = cfg.section("train");
  c.iterations = t.get("iterations", c.iterations);
  c.lr = t.get("lr", c.lr);
  c.tsub = t.get("tsub", c.tsub);
  c.fused_rollout = t.get("fused_rollout", c.fused_rollout);
  c.beta = t.get("beta", c.beta);
  c.num_regs = t.get("num_regs", c.num_regs);
  c.seed = t.get("seed", c.seed);
  c.log_every = t.get("log_every", c.log_every);
  c.si_c = t.get("si_c", c.si_c);
  c.si_xi = t.get("si_xi", c.si_xi);
  c.mas_lambda = t.get("mas_lambda", c.mas_lambda);
  c.mas_samples = t.get("mas_samples", c.mas_samples);
  t.finish();
  auto e = cfg.section("eval");
  c.evaluate = e.get("evaluate", c.evaluate);
  c.dtw_threshold = e.get("dtw_threshold", c.dtw_threshold);
  c.node_solver = e.get("node_solver", c.node_solver);
  e.finish();
  auto g = cfg.section("diagnostics");
  c.diagnostics.every = g.get("every", c.diagnostics.every);
  c.diagnostics.lanczos_steps = g.get("lanczos_steps", c.diagnostics.lanczos_steps);
  c.diagnostics.trace_probes = g.get("trace_probes", c.diagnostics.trace_probes);
  c.diagnostics.curvature = g.get("curvature", c.diagnostics.curvature);
  if (g.has("metrics")) {
    const auto m = g.get("metrics", std::vector<std::string>{});
    const auto& known = LfdDiagnostics::known_metrics();
    SL_CHECK(!m.empty(), ConfigError, cfg.source(), ": diagnostics.metrics must name at least one of ", quoted_list(known));
    // Stored in the canonical order, so the resolved config does not depend on the order written.
    for (const auto& name : known)
      if (std::find(m.begin(), m.end(), name) != m.end()) c.diagnostics.metrics.push_back(name);
    for (const auto& name : m) {
      SL_CHECK(std::find(known.begin(), known.end(), name) != known.end(), ConfigError, cfg.source(),
               ": diagnostics.metrics: unknown metric \"", name, "\" (known: ", quoted_list(known), ")");
      SL_CHECK(std::count(m.begin(), m.end(), name) == 1, ConfigError, cfg.source(), ": diagnostics.metrics lists \"", name,
               "\" twice");
    }
  }
  g.finish();
  c.validate();
  return c;
}

Config LfdConfig::to_config() const {
  ConfigWriter w;
  w.put("data", "dataset", dataset);
  w.put("data", "root", root);
  w.put("data", "sequence", sequence);
  w.put("data", "tasks", tasks);
  w.put("data", "tangent_vec_scale", tangent_vec_scale);
  w.put("model", "method", method);
  w.put("model", "target", target);
  w.put("model", "hnet", hnet);
  w.put("model", "fhat_layers", fhat_layers);
  w.put("model", "h", h);
  w.put("model", "hp", hp);
  w.put("model", "alpha", alpha);
  w.put("model", "rehu", rehu);
  w.put("model", "eps", eps);
  w.put("model", "tnet_hidden", tnet_hidden);
  w.put("model", "explicit_time", explicit_time);
  w.put("model", "discrete_step", discrete_step);
  w.put("model", "discrete_kappa", discrete_kappa);
  w.put("model", "center_fhat", center_fhat);
  w.put("model", "hnet_hidden", hnet_hidden);
  w.put("model", "task_emb_dim", task_emb_dim);
  w.put("model", "chunk_emb_dim", chunk_emb_dim);
  w.put("model", "chunk_dim", chunk_dim);
  w.put("train", "iterations", iterations);
  w.put("train", "lr", lr);
  w.put("train", "tsub", tsub);
  w.put("train", "fused_rollout", fused_rollout);
  w.put("train", "beta", beta);
  w.put("train", "num_regs", num_regs);
  w.put("train", "seed", seed);
  w.put("train", "log_every", log_every);
  w.put("train", "si_c", si_c);
  w.put("train", "si_xi", si_xi);
  w.put("train", "mas_lambda", mas_lambda);
  w.put("train", "mas_samples", mas_samples);
  w.put("eval", "evaluate", evaluate);
  w.put("eval", "dtw_threshold", dtw_threshold);
  w.put("eval", "node_solver", node_solver);
  w.put("diagnostics", "every", diagnostics.every);
  w.put("diagnostics", "lanczos_steps", diagnostics.lanczos_steps);
  w.put("diagnostics", "trace_probes", diagnostics.trace_probes);
  w.put("diagnostics", "curvature", diagnostics.curvature);
  w.put("diagnostics", "metrics", diagnostics.resolved_metrics());
  return w.config();
}

void LfdConfig::validate() const {
  try {
    data::lfd_dataset_spec(dataset);
  } catch (const UsageError& e) {
    SL_THROW(ConfigError, "data.dataset: ", e.what());
  }
  SL_CHECK(method == "hnet" || std::find(baseline_methods().begin(), baseline_methods().end(), method) !=
                                    baseline_methods().end(),
           ConfigError, "model.method must be one of hnet, sg, ft, rep, si, mas; got \"", method, "\"");
  SL_CHECK(si_c >= 0 && si_xi > 0 && mas_lambda >= 0 && mas_samples >= 1, ConfigError,
           "train.si_c >= 0, train.si_xi > 0, train.mas_lambda >= 0 and train.mas_samples >= 1 are required");
  SL_CHECK(target == "snode" || target == "node", ConfigError, "model.target must be \"snode\" or \"node\", got \"", target, "\"");
  SL_CHECK(hnet == "chn" || hnet == "hn", ConfigError, "model.hnet must be \"chn\" or \"hn\", got \"", hnet, "\"");
  SL_CHECK(iterations >= 1, ConfigError, "train.iterations must be >= 1, got ", iterations);
  SL_CHECK(lr > 0 && std::isfinite(lr), ConfigError, "train.lr must be > 0, got ", lr);
  SL_CHECK(tsub >= 2 && tsub <= 1000, ConfigError, "train.tsub must be in [2, 1000], got ", tsub);
  SL_CHECK(beta >= 0 && std::isfinite(beta), ConfigError, "train.beta must be >= 0, got ", beta);
  SL_CHECK(num_regs >= 0, ConfigError, "train.num_regs must be >= 0 (0 = all past tasks), got ", num_regs);
  SL_CHECK(log_every >= 1, ConfigError, "train.log_every must be >= 1, got ", log_every);
  SL_CHECK(tasks >= 0, ConfigError, "data.tasks must be >= 0 (0 = all), got ", tasks);
  SL_CHECK(tangent_vec_scale > 0, ConfigError, "data.tangent_vec_scale must be > 0, got ", tangent_vec_scale);
  SL_CHECK(task_emb_dim >= 1 && chunk_emb_dim >= 1 && chunk_dim >= 1, ConfigError,
           "model.task_emb_dim, chunk_emb_dim and chunk_dim must be >= 1");
  SL_CHECK(h >= 1 && hp >= 1 && fhat_layers >= 1, ConfigError, "model.h, hp and fhat_layers must be >= 1");
  SL_CHECK(alpha > 0 && rehu > 0 && eps >= 0, ConfigError, "model.alpha and rehu must be > 0 and eps >= 0");
  SL_CHECK(discrete_kappa > 0 && discrete_kappa <= 1, ConfigError, "model.discrete_kappa must be in (0, 1], got ",
           discrete_kappa);
  SL_CHECK(!discrete_step || (target == "snode" && !explicit_time), ConfigError,
           "model.discrete_step = true needs the autonomous sNODE (model.target = \"snode\", model.explicit_time = "
           "false): only there is V a Lyapunov function of the executed map; got target = \"", target,
           "\", explicit_time = ", explicit_time ? "true" : "false");
  SL_CHECK(!center_fhat || target == "snode", ConfigError,
           "model.center_fhat = true needs model.target = \"snode\" (it centres the sNODE's nominal field f̂ at the "
           "goal), got target = \"", target, "\"");
  models::parse_ode_method(node_solver);
  SL_CHECK(diagnostics.every >= 0, ConfigError, "diagnostics.every must be >= 0 (0 = off), got ", diagnostics.every);
  SL_CHECK(diagnostics.lanczos_steps >= 2, ConfigError, "diagnostics.lanczos_steps must be >= 2, got ",
           diagnostics.lanczos_steps);
  SL_CHECK(diagnostics.trace_probes == 0 || diagnostics.trace_probes >= 2, ConfigError,
           "diagnostics.trace_probes must be 0 (no trace) or >= 2, got ", diagnostics.trace_probes);
  SL_CHECK(diagnostics.curvature == "hessian" || diagnostics.curvature == "ggn", ConfigError,
           "diagnostics.curvature: expected hessian or ggn, got \"", diagnostics.curvature, "\"");
  const auto& known = LfdDiagnostics::known_metrics();
  for (const auto& name : diagnostics.metrics)
    SL_CHECK(std::find(known.begin(), known.end(), name) != known.end(), ConfigError, "diagnostics.metrics: unknown metric \"",
             name, "\" (known: ", quoted_list(known), ")");
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
using detail::task_seed;

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
                 .chunk_dim(c.chunk_dim);
    auto m = std::make_shared<models::ChunkedHyperNetworkImpl>(o);
    h.net = m.get();
    h.module = m;
  } else {
    auto o = models::HyperNetworkOptions(layout).hidden(c.hnet_hidden).task_emb_dim(c.task_emb_dim);
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
    torch::manual_seed(task_seed(c.seed, net->num_tasks(), 0));
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
// Trainer

struct LfdTrainer::State {
  LfdConfig cfg;
  std::filesystem::path run;
  std::unique_ptr<BaselineTrainer> baseline;  // methods other than hnet
  const data::LfdDatasetSpec* spec = nullptr;
  std::unique_ptr<data::LfdDataset> dataset;
  std::int64_t num_tasks = 0;
  Target target;
  HyperNet hn;
  std::vector<data::PreparedTask> prepared;  // tasks loaded so far (float64)
  std::vector<std::vector<EvalCell>> evals;
  std::vector<double> seconds;

  const data::PreparedTask& task(std::int64_t i) {
    while (static_cast<std::int64_t>(prepared.size()) <= i) {
      const auto raw = dataset->task(static_cast<std::int64_t>(prepared.size()));
      prepared.push_back(data::prepare_task(raw, *spec, {cfg.target == "snode", cfg.tangent_vec_scale}));
    }
    return prepared[static_cast<std::size_t>(i)];
  }
};

LfdTrainer::LfdTrainer(LfdConfig config, std::filesystem::path run_dir) : s_(std::make_unique<State>()) {
  config.validate();
  if (config.method != "hnet") {
    s_->baseline = std::make_unique<BaselineTrainer>(std::move(config), std::move(run_dir));
    return;
  }
  s_->cfg = std::move(config);
  s_->run = std::move(run_dir);
  const auto& c = s_->cfg;
  s_->spec = &data::lfd_dataset_spec(c.dataset);
  const auto root = c.root.empty() ? data::default_data_root() : std::filesystem::path(c.root);
  s_->dataset = std::make_unique<data::LfdDataset>(s_->spec->kind, root, c.sequence);
  s_->num_tasks = c.tasks > 0 ? std::min(c.tasks, s_->dataset->num_tasks()) : s_->dataset->num_tasks();
  s_->target = make_target(c, s_->spec->state_dim);
  torch::manual_seed(static_cast<std::uint64_t>(c.seed));
  s_->hn = make_hypernetwork(c, s_->target.layout);
}

LfdTrainer::~LfdTrainer() = default;
const std::vector<std::vector<EvalCell>>& LfdTrainer::evaluations() const {
  return s_->baseline ? s_->baseline->evaluations() : s_->evals;
}
const std::vector<double>& LfdTrainer::train_seconds() const {
  return s_->baseline ? s_->baseline->train_seconds() : s_->seconds;
}

void LfdTrainer::run(bool resume, const std::function<void(const TrainProgress&)>& progress, std::int64_t stop_after) {
  if (s_->baseline) return s_->baseline->run(resume, progress, stop_after);
  auto& s = *s_;
  const auto& c = s.cfg;
  auto* net = s.hn.net;
  const auto config_text = c.to_config().to_string();
  std::int64_t first_task = 0;
  std::vector<nlohmann::json> diag_rows;  // [diagnostics] rows so far (sharpness.svg, summary.json)
  if (detail::open_lfd_run(s.run, config_text, resume)) {
    const auto ck = detail::read_checkpoint(s.run);
    load_hypernetwork(ck, c, net);
    s.seconds = ck.seconds;
    s.evals = ck.evals;
    first_task = ck.completed;
    diag_rows = detail::trim_metrics_for_resume(s.run, first_task);
  }

  const auto metrics_path = s.run / "metrics.jsonl";
  const std::int64_t last_task = stop_after > 0 ? std::min(stop_after, s.num_tasks) : s.num_tasks;
  for (std::int64_t i = first_task; i < last_task; ++i) {
    const auto& prep = s.task(i);
    data::PreparedTask p32 = prep;
    p32.x = prep.x.to(torch::kFloat32);
    p32.t = prep.t.to(torch::kFloat32);

    torch::manual_seed(task_seed(c.seed, i, 0));
    const auto task_id = net->add_task();
    SL_CHECK(task_id == i, InternalError, "task ids out of step");
    auto window_gen = at::detail::createCPUGenerator(task_seed(c.seed, i, 1));
    auto reg_gen = at::detail::createCPUGenerator(task_seed(c.seed, i, 2));

    std::vector<torch::Tensor> targets;
    if (c.beta > 0) {
      torch::NoGradGuard no_grad;
      for (std::int64_t j = 0; j < i; ++j) targets.push_back(net->forward_task(j).detach().clone());
    }
    auto theta = net->theta();
    auto emb = net->task_embedding(i);
    Adam opt_theta(theta, c.lr), opt_emb({emb}, c.lr);
    std::vector<torch::Tensor> params = theta;
    params.push_back(emb);
    BestTracker best;
    std::vector<torch::Tensor> best_theta;
    torch::Tensor best_emb;

    const auto t0 = std::chrono::steady_clock::now();
    for (std::int64_t it = 0; it < c.iterations; ++it) {
      const auto win = data::sample_window(p32, c.tsub, window_gen);
      const auto pred = detail::train_rollout(c, s.target, net->forward_task(i), {}, win.y.select(1, 0), win.t);
      const auto loss = (pred - win.y).pow(2).mean();
      auto grads = torch::autograd::grad({loss}, params);
      opt_emb.step({grads.back()});
      grads.pop_back();
      double reg_value = 0;
      if (i > 0 && c.beta > 0) {
        const auto tasks = sample_regularized_tasks(i, c.num_regs, reg_gen);
        reg_value = add_lookahead_regularizer_grad(theta, opt_theta.lookahead(grads), c.beta, [&] {
          return output_regularizer(targets, tasks, [&](std::int64_t j) {
            return net->forward_embedding(net->task_embedding(j).detach());
          });
        }, grads);
      }
      opt_theta.step(grads);
      const double loss_value = loss.item<double>();
      SL_CHECK(std::isfinite(loss_value), DataError, "task ", i, " iteration ", it, ": training loss is ", loss_value,
               " (diverged; lower train.lr?)");
      if (c.diagnostics.enabled() && (it + 1) % c.diagnostics.every == 0) {
        // After update it + 1, on its window, w.r.t. θ and e_i (LfdDiagnostics).
        auto row = detail::measure_sharpness(
            c, params,
            [&] {
              const auto w = s.target.layout.split(net->forward_task(i));
              return s.target.rollout(w, {})(win.y.select(1, 0), win.t);
            },
            win.y, i, it + 1);
        row["window_start"] = win.k0;
        detail::record_diagnostics_row(metrics_path, std::move(row), diag_rows);
      }
      if (best.offer(it, loss_value)) {
        torch::NoGradGuard no_grad;
        best_theta.clear();
        for (const auto& p : theta) best_theta.push_back(p.detach().clone());
        best_emb = emb.detach().clone();
      }
      const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      detail::log_iteration(c, metrics_path, i, s.num_tasks, it + 1, loss_value, reg_value, best.best, elapsed, progress);
    }
    s.seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    {
      torch::NoGradGuard no_grad;  // continue from the best copy (spec §3.1)
      for (std::size_t k = 0; k < theta.size(); ++k) theta[k].copy_(best_theta[k]);
      emb.copy_(best_emb);
    }

    // Evaluation of every task seen so far (spec §3.6).
    std::vector<EvalCell> row;
    if (c.evaluate) {
      torch::NoGradGuard no_grad;
      row = detail::evaluate_seen_tasks(metrics_path, i, [&](std::int64_t j) {
        return detail::evaluate_task(c, *s.spec, s.task(j), s.target.rollout(s.target.layout.split(net->forward_task(j)), {}));
      });
    }
    s.evals.push_back(row);

    std::map<std::string, io::NdArray> tensors;
    const auto th = net->theta();
    for (std::size_t k = 0; k < th.size(); ++k) tensors["theta." + std::to_string(k)] = data::to_ndarray(th[k]);
    const auto embs = net->task_embeddings();
    for (std::size_t k = 0; k < embs.size(); ++k) tensors["emb." + std::to_string(k)] = data::to_ndarray(embs[k]);
    detail::write_checkpoint(s.run, "hnet", i, tensors, s.seconds, s.evals);

    detail::SummaryInfo info;
    info.method = "hnet";
    info.tasks = s.num_tasks;
    info.task_files.assign(s.dataset->task_files().begin(), s.dataset->task_files().begin() + s.num_tasks);
    info.params = {{"target", s.target.layout.numel()}, {"hypernetwork", net->numel_with_embeddings()},
                   {"theta", net->theta_numel()}};
    for (std::size_t ti = 0; ti < s.evals.size(); ++ti)
      info.sizes.push_back(static_cast<double>(net->theta_numel() + static_cast<std::int64_t>(ti + 1) * c.task_emb_dim));
    info.diagnostics = diag_rows;
    detail::write_results(s.run, c, s.evals, s.seconds, info);
    if (c.diagnostics.enabled()) detail::write_sharpness_svg(s.run, c, diag_rows);
  }
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

LfdRun::TaskData LfdRun::task(std::int64_t task) const {
  SL_CHECK(task >= 0 && task < p_->completed, UsageError, "task ", task, " was not learned by this run (", p_->completed,
           " tasks completed)");
  const auto prep = data::prepare_task(p_->dataset->task(task), *p_->spec,
                                       {p_->cfg.target == "snode", p_->cfg.tangent_vec_scale});
  return {prep.raw, prep.x, prep.t, prep.norm.mean, prep.norm.std, prep.goal, prep.position_dim};
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
