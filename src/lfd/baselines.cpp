#include "stablelearn/lfd/baselines.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include <nlohmann/json.hpp>
#include <torch/autograd.h>

#include "stablelearn/continual/regularizers.h"
#include "stablelearn/core/error.h"
#include "stablelearn/core/fs.h"
#include "stablelearn/data/lfd_datasets.h"
#include "stablelearn/data/lfd_preprocess.h"
#include "stablelearn/data/tensor_convert.h"
#include "stablelearn/lfd/hnet_training.h"
#include "stablelearn/models/snode_rollout.h"
#include "run_common.h"

namespace stablelearn::lfd {

using nlohmann::json;

const std::vector<std::string>& baseline_methods() {
  static const std::vector<std::string> names{"sg", "ft", "rep", "si", "mas"};
  return names;
}

// ---------------------------------------------------------------------------------------------
// The model

namespace {

/// Owned weights with the spec's initialisation U(−1/√fan_in, 1/√fan_in) (spec §2.2; PyTorch's
/// Linear defaults), drawn from the global torch generator.
std::vector<torch::Tensor> init_weights(const models::WeightLayout& layout, const std::vector<std::int64_t>& fan_in) {
  std::vector<torch::Tensor> w;
  for (std::size_t k = 0; k < layout.size(); ++k) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in[k]));
    w.push_back((torch::rand(layout[k].shape, torch::kFloat32) * (2 * bound) - bound).requires_grad_(true));
  }
  return w;
}

}  // namespace

struct BaselineModel::Impl {
  LfdConfig cfg;
  detail::Target target;
  std::vector<torch::Tensor> shared;                 // conditioned network (ft, rep, si, mas)
  std::vector<torch::Tensor> embeddings;             // one per task (conditioned methods)
  std::vector<std::vector<torch::Tensor>> per_task;  // sg: one network per task
  bool conditioned() const { return cfg.method != "sg"; }
};

BaselineModel::BaselineModel(const LfdConfig& config, std::int64_t state_dim) : p_(std::make_unique<Impl>()) {
  p_->cfg = config;
  SL_CHECK(std::find(baseline_methods().begin(), baseline_methods().end(), config.method) != baseline_methods().end(),
           ConfigError, "model.method '", config.method, "' is not a baseline (sg, ft, rep, si, mas)");
  p_->target = detail::make_target(config, state_dim, p_->conditioned() ? config.task_emb_dim : 0);
  if (p_->conditioned()) p_->shared = init_weights(p_->target.layout, p_->target.fan_in);
}

BaselineModel::~BaselineModel() = default;
BaselineModel::BaselineModel(BaselineModel&&) noexcept = default;
BaselineModel& BaselineModel::operator=(BaselineModel&&) noexcept = default;

void BaselineModel::add_task() {
  if (p_->conditioned())
    p_->embeddings.push_back(torch::randn({p_->cfg.task_emb_dim}, torch::kFloat32).requires_grad_(true));
  else
    p_->per_task.push_back(init_weights(p_->target.layout, p_->target.fan_in));
}

std::int64_t BaselineModel::tasks() const {
  return static_cast<std::int64_t>(p_->conditioned() ? p_->embeddings.size() : p_->per_task.size());
}

bool BaselineModel::conditioned() const { return p_->conditioned(); }
std::int64_t BaselineModel::network_numel() const { return p_->target.layout.numel(); }

std::vector<torch::Tensor> BaselineModel::network(std::int64_t task) const {
  SL_CHECK(task >= 0 && task < tasks(), UsageError, "task ", task, " not added (", tasks(), " tasks)");
  return p_->conditioned() ? p_->shared : p_->per_task[static_cast<std::size_t>(task)];
}

torch::Tensor BaselineModel::embedding(std::int64_t task) const {
  SL_CHECK(task >= 0 && task < tasks(), UsageError, "task ", task, " not added (", tasks(), " tasks)");
  return p_->conditioned() ? p_->embeddings[static_cast<std::size_t>(task)] : torch::Tensor();
}

namespace {
std::vector<torch::Tensor> cast(const std::vector<torch::Tensor>& w, torch::Dtype dtype) {
  if (dtype == torch::kFloat32) return w;  // the trained tensors themselves (training needs their graph)
  std::vector<torch::Tensor> out;
  for (const auto& t : w) out.push_back(t.detach().to(dtype));
  return out;
}
torch::Tensor cast_embedding(const torch::Tensor& e, torch::Dtype dtype) {
  return e.defined() && dtype != torch::kFloat32 ? e.detach().to(dtype) : e;
}
}  // namespace

VectorField BaselineModel::field(std::int64_t task, torch::Dtype dtype) const {
  return p_->target(cast(network(task), dtype), cast_embedding(embedding(task), dtype));
}

GridRollout BaselineModel::rollout(std::int64_t task, torch::Dtype dtype) const {
  return p_->target.rollout(cast(network(task), dtype), cast_embedding(embedding(task), dtype));
}

torch::Tensor BaselineModel::train_rollout(std::int64_t task, const torch::Tensor& x0, const torch::Tensor& t) const {
  const auto net = network(task);
  const auto e = embedding(task);
  // The fused rollout takes one flat vector; the tensor path integrates the owned tensors directly
  // (no concatenation to split again).
  if (detail::fused_rollout_applies(p_->cfg, p_->target, net.front(), x0, e))
    return models::functional::snode_euler_rollout(p_->target.layout.flatten(net), x0, t, *p_->target.snode, e);
  return rollout(task)(x0, t);
}

LyapunovFunction BaselineModel::lyapunov(std::int64_t task, torch::Dtype dtype) const {
  SL_CHECK(static_cast<bool>(p_->target.lyapunov), UsageError, "a Lyapunov function exists for sNODE targets only");
  return p_->target.lyapunov(cast(network(task), dtype));
}

std::vector<torch::Tensor> BaselineModel::weights(std::int64_t task) const {
  SL_CHECK(!p_->conditioned(), UsageError, "method '", p_->cfg.method,
           "': the network takes a task embedding as input and has no per-task weight list (only sg and hnet runs "
           "can be exported)");
  std::vector<torch::Tensor> w;
  for (const auto& t : network(task)) w.push_back(t.detach());
  return w;
}

std::map<std::string, io::NdArray> BaselineModel::to_tensors() const {
  std::map<std::string, io::NdArray> out;
  for (std::size_t k = 0; k < p_->shared.size(); ++k) out["net." + std::to_string(k)] = data::to_ndarray(p_->shared[k].detach());
  for (std::size_t i = 0; i < p_->embeddings.size(); ++i)
    out["emb." + std::to_string(i)] = data::to_ndarray(p_->embeddings[i].detach());
  for (std::size_t i = 0; i < p_->per_task.size(); ++i)
    for (std::size_t k = 0; k < p_->per_task[i].size(); ++k)
      out["sg" + std::to_string(i) + "." + std::to_string(k)] = data::to_ndarray(p_->per_task[i][k].detach());
  return out;
}

void BaselineModel::load_tensors(const std::function<torch::Tensor(const std::string&)>& get, std::int64_t n) {
  while (tasks() < n) add_task();
  torch::NoGradGuard no_grad;
  auto load = [&](const std::string& key, torch::Tensor& dst) {
    const auto src = get(key);
    SL_CHECK(src.sizes() == dst.sizes(), DataError, "checkpoint tensor '", key, "' has shape ", src.sizes(),
             ", the configured model needs ", dst.sizes());
    dst.copy_(src);
  };
  for (std::size_t k = 0; k < p_->shared.size(); ++k) load("net." + std::to_string(k), p_->shared[k]);
  for (std::size_t i = 0; i < p_->embeddings.size(); ++i) load("emb." + std::to_string(i), p_->embeddings[i]);
  for (std::size_t i = 0; i < p_->per_task.size(); ++i)
    for (std::size_t k = 0; k < p_->per_task[i].size(); ++k)
      load("sg" + std::to_string(i) + "." + std::to_string(k), p_->per_task[i][k]);
}

// ---------------------------------------------------------------------------------------------
// The trainer

struct BaselineTrainer::State {
  LfdConfig cfg;
  std::filesystem::path run;
  const data::LfdDatasetSpec* spec = nullptr;
  std::unique_ptr<data::LfdDataset> dataset;
  std::int64_t num_tasks = 0;
  std::unique_ptr<BaselineModel> model;
  std::unique_ptr<continual::SynapticIntelligence> si;
  std::unique_ptr<continual::MemoryAwareSynapses> mas;
  std::vector<data::PreparedTask> prepared, prepared32;
  std::vector<std::vector<EvalCell>> evals;
  std::vector<double> seconds;

  const data::PreparedTask& task(std::int64_t i) {
    while (static_cast<std::int64_t>(prepared.size()) <= i) {
      const auto raw = dataset->task(static_cast<std::int64_t>(prepared.size()));
      prepared.push_back(data::prepare_task(raw, *spec, {cfg.target == "snode", cfg.tangent_vec_scale}));
      auto p32 = prepared.back();
      p32.x = p32.x.to(torch::kFloat32);
      p32.t = p32.t.to(torch::kFloat32);
      prepared32.push_back(p32);
    }
    return prepared[static_cast<std::size_t>(i)];
  }
  const data::PreparedTask& task32(std::int64_t i) {
    task(i);
    return prepared32[static_cast<std::size_t>(i)];
  }
  continual::QuadraticAnchorPenalty* regularizer() const {
    if (si) return si.get();
    if (mas) return mas.get();
    return nullptr;
  }
};

BaselineTrainer::BaselineTrainer(LfdConfig config, std::filesystem::path run_dir) : s_(std::make_unique<State>()) {
  config.validate();
  s_->cfg = std::move(config);
  s_->run = std::move(run_dir);
  const auto& c = s_->cfg;
  s_->spec = &data::lfd_dataset_spec(c.dataset);
  const auto root = c.root.empty() ? data::default_data_root() : std::filesystem::path(c.root);
  s_->dataset = std::make_unique<data::LfdDataset>(s_->spec->kind, root, c.sequence);
  s_->num_tasks = c.tasks > 0 ? std::min(c.tasks, s_->dataset->num_tasks()) : s_->dataset->num_tasks();
  torch::manual_seed(static_cast<std::uint64_t>(c.seed));
  s_->model = std::make_unique<BaselineModel>(c, s_->spec->state_dim);
  if (c.method == "si") s_->si = std::make_unique<continual::SynapticIntelligence>(c.si_c, c.si_xi);
  if (c.method == "mas") s_->mas = std::make_unique<continual::MemoryAwareSynapses>(c.mas_lambda);
}

BaselineTrainer::~BaselineTrainer() = default;
const std::vector<std::vector<EvalCell>>& BaselineTrainer::evaluations() const { return s_->evals; }
const std::vector<double>& BaselineTrainer::train_seconds() const { return s_->seconds; }

void BaselineTrainer::run(bool resume, const std::function<void(const TrainProgress&)>& progress, std::int64_t stop_after) {
  using detail::task_seed;
  auto& s = *s_;
  const auto& c = s.cfg;
  auto& model = *s.model;
  const auto config_text = c.to_config().to_string();
  std::int64_t first_task = 0;
  std::vector<nlohmann::json> diag_rows;  // [diagnostics] rows so far (sharpness.svg, summary.json)
  if (detail::open_lfd_run(s.run, config_text, resume)) {
    const auto ck = detail::read_checkpoint(s.run);
    SL_CHECK(ck.method == c.method, DataError, ck.tensors_file.string(), ": checkpoint of method '", ck.method,
             "', the configuration says '", c.method, "'");
    // Tasks are added with the same seeds as training used, then overwritten.
    while (model.tasks() < ck.completed) {
      torch::manual_seed(task_seed(c.seed, model.tasks(), 0));
      model.add_task();
    }
    model.load_tensors([&](const std::string& key) { return detail::checkpoint_tensor(ck, key); }, ck.completed);
    if (auto* reg = s.regularizer()) {
      std::vector<torch::Tensor> omega, anchor;
      for (std::size_t k = 0; k < model.network(0).size(); ++k) {
        omega.push_back(detail::checkpoint_tensor(ck, "reg.omega." + std::to_string(k)));
        anchor.push_back(detail::checkpoint_tensor(ck, "reg.anchor." + std::to_string(k)));
      }
      reg->set_state(std::move(omega), std::move(anchor));
    }
    s.seconds = ck.seconds;
    s.evals = ck.evals;
    first_task = ck.completed;
    diag_rows = detail::trim_metrics_for_resume(s.run, first_task);
  }

  const auto metrics_path = s.run / "metrics.jsonl";
  const std::int64_t last_task = stop_after > 0 ? std::min(stop_after, s.num_tasks) : s.num_tasks;
  for (std::int64_t i = first_task; i < last_task; ++i) {
    s.task(i);
    torch::manual_seed(task_seed(c.seed, i, 0));
    model.add_task();
    auto window_gen = at::detail::createCPUGenerator(task_seed(c.seed, i, 1));
    auto replay_gen = at::detail::createCPUGenerator(task_seed(c.seed, i, 2));

    const auto net = model.network(i);
    const bool conditioned = model.conditioned();
    // Embeddings trained in this task: e_i, or e_0..e_i for replay (one Adam each).
    std::vector<torch::Tensor> embs;
    if (conditioned)
      for (std::int64_t k = (c.method == "rep" ? 0 : i); k <= i; ++k) embs.push_back(model.embedding(k));
    Adam opt_net(net, c.lr);
    std::vector<Adam> opt_emb;
    for (const auto& e : embs) opt_emb.emplace_back(std::vector<torch::Tensor>{e}, c.lr);
    if (s.si) s.si->begin_task(net);
    auto* reg = s.regularizer();

    BestTracker best;
    std::vector<torch::Tensor> best_net, best_embs;
    const auto t0 = std::chrono::steady_clock::now();
    for (std::int64_t it = 0; it < c.iterations; ++it) {
      // Replay: a task k ~ U{0..i} per iteration; otherwise the current task.
      const std::int64_t k =
          c.method == "rep" ? torch::randint(0, i + 1, {1}, replay_gen, torch::kInt64).item<std::int64_t>() : i;
      const auto win = data::sample_window(s.task32(k), c.tsub, window_gen);
      const auto emb = conditioned ? model.embedding(k) : torch::Tensor();
      const auto pred = s.model->train_rollout(k, win.y.select(1, 0), win.t);
      const auto loss = (pred - win.y).pow(2).mean();
      auto wrt = net;
      if (conditioned) wrt.push_back(emb);
      auto grads = torch::autograd::grad({loss}, wrt);
      if (conditioned) {
        const auto slot = static_cast<std::size_t>(c.method == "rep" ? k : 0);
        opt_emb[slot].step({grads.back()});
        grads.pop_back();
      }
      auto total = grads;
      double penalty_value = 0;
      if (reg && reg->has_anchor()) {
        const auto pen = reg->penalty(net);
        penalty_value = pen.item<double>();
        const auto pen_grads = torch::autograd::grad({pen}, net);
        for (std::size_t q = 0; q < net.size(); ++q) total[q] = grads[q] + pen_grads[q];
      }
      opt_net.step(total);
      // SI's path integral uses the task-loss gradient (Zenke et al.'s unregularised gradient).
      if (s.si) s.si->after_step(net, grads);
      const double loss_value = loss.item<double>();
      SL_CHECK(std::isfinite(loss_value), DataError, "task ", i, " iteration ", it, ": training loss is ", loss_value,
               " (diverged; lower train.lr?)");
      if (c.diagnostics.enabled() && (it + 1) % c.diagnostics.every == 0) {
        // After update it + 1, on its window (rep: the replayed task's), w.r.t. the tensors the task
        // loss was differentiated against (the network, + the embedding if conditioned).
        auto row = detail::measure_sharpness(
            c, wrt,
            [&] { return s.model->rollout(k)(win.y.select(1, 0), win.t); }, win.y, i, it + 1);
        row["window_start"] = win.k0;
        if (c.method == "rep") row["window_task"] = k;
        detail::record_diagnostics_row(metrics_path, std::move(row), diag_rows);
      }
      if (best.offer(it, loss_value)) {
        torch::NoGradGuard no_grad;
        best_net.clear();
        best_embs.clear();
        for (const auto& p : net) best_net.push_back(p.detach().clone());
        for (const auto& e : embs) best_embs.push_back(e.detach().clone());
      }
      const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      detail::log_iteration(c, metrics_path, i, s.num_tasks, it + 1, loss_value, penalty_value, best.best, elapsed, progress);
    }
    {
      torch::NoGradGuard no_grad;  // continue from the best copy (spec §3.1)
      for (std::size_t q = 0; q < net.size(); ++q) net[q].copy_(best_net[q]);
      for (std::size_t q = 0; q < embs.size(); ++q) embs[q].copy_(best_embs[q]);
    }
    if (s.si) s.si->end_task(net);
    if (s.mas) {
      // Ω from random (demonstration, time) states of the finished task: F = ẋ there.
      const auto& p32 = s.task32(i);
      auto mas_gen = at::detail::createCPUGenerator(task_seed(c.seed, i, 3));
      const auto ms = torch::randint(0, p32.x.size(0), {c.mas_samples}, mas_gen, torch::kInt64);
      const auto ts = torch::randint(0, p32.x.size(1), {c.mas_samples}, mas_gen, torch::kInt64);
      const auto field = model.field(i);
      s.mas->accumulate_importance(net, c.mas_samples, [&](std::int64_t n) {
        const auto m = ms[n].item<std::int64_t>(), q = ts[n].item<std::int64_t>();
        return field(p32.t[q], p32.x[m][q].unsqueeze(0));
      });
      s.mas->end_task(net);
    }
    s.seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());

    // Evaluation of every task seen so far (spec §3.6). A single-model-per-task network never
    // changes after its task: its earlier cells are carried over (the reference copies them too).
    std::vector<EvalCell> row;
    if (c.evaluate) {
      row = detail::evaluate_seen_tasks(metrics_path, i, [&](std::int64_t j) {
        const bool carry = !conditioned && j < i && !s.evals.empty() && s.evals.back().size() > static_cast<std::size_t>(j);
        return carry ? s.evals.back()[static_cast<std::size_t>(j)]
                     : detail::evaluate_task(c, *s.spec, s.task(j), model.rollout(j));
      });
    }
    s.evals.push_back(row);

    auto tensors = model.to_tensors();
    if (auto* r = s.regularizer(); r && r->has_anchor()) {
      for (std::size_t q = 0; q < r->anchor().size(); ++q) {
        tensors["reg.omega." + std::to_string(q)] = data::to_ndarray(r->importance()[q]);
        tensors["reg.anchor." + std::to_string(q)] = data::to_ndarray(r->anchor()[q]);
      }
    }
    detail::write_checkpoint(s.run, c.method, i, tensors, s.seconds, s.evals);

    detail::SummaryInfo info;
    info.method = c.method;
    info.tasks = s.num_tasks;
    info.task_files.assign(s.dataset->task_files().begin(), s.dataset->task_files().begin() + s.num_tasks);
    const auto P = model.network_numel();
    info.params = {{"target", P}, {"hypernetwork", 0}, {"theta", conditioned ? P : P * (i + 1)}};
    // Stored parameters after each task (spec §4.1 MS): the network (sg: one per task), the task
    // embeddings and the regulariser's importance and anchor.
    for (std::size_t ti = 0; ti < s.evals.size(); ++ti) {
      const auto n = static_cast<std::int64_t>(ti + 1);
      std::int64_t size = conditioned ? P + n * c.task_emb_dim : P * n;
      if (s.regularizer()) size += 2 * P;
      info.sizes.push_back(static_cast<double>(size));
    }
    info.stores_data = c.method == "rep";
    info.diagnostics = diag_rows;
    detail::write_results(s.run, c, s.evals, s.seconds, info);
    if (c.diagnostics.enabled()) detail::write_sharpness_svg(s.run, c, diag_rows);
  }
}

}  // namespace stablelearn::lfd
