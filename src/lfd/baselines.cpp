#include "stablelearn/lfd/baselines.h"

#include <algorithm>
#include <chrono>
#include <optional>
#include <cmath>

#include <nlohmann/json.hpp>
#include <torch/autograd.h>

#include "stablelearn/continual/regularizers.h"
#include "stablelearn/core/error.h"
#include "stablelearn/core/run.h"
#include "stablelearn/core/fs.h"
#include "stablelearn/data/lfd_datasets.h"
#include "stablelearn/data/lfd_preprocess.h"
#include "stablelearn/data/tensor_convert.h"
#include "stablelearn/distributed/process_group.h"
#include "stablelearn/lfd/hnet_training.h"
#include "stablelearn/models/snode_rollout.h"
#include "run_common.h"
#include "task_loop.h"

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

torch::Tensor BaselineModel::train_rollout(std::int64_t task, const torch::Tensor& x0, const torch::Tensor& t, bool fused) const {
  const auto net = network(task);
  const auto e = embedding(task);
  // The fused rollout takes one flat vector; the tensor path integrates the owned tensors directly
  // (no concatenation to split again).
  if (fused && detail::fused_rollout_applies(p_->cfg, p_->target, net.front(), x0, e))
    return models::functional::snode_euler_rollout(p_->target.layout.flatten(net), x0, t, *p_->target.snode, e);
  return p_->target.train(net, e)(x0, t);
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
// The learner (driven by the task loop, task_loop.h)

namespace detail {
namespace {

class BaselineLearner : public Learner {
 public:
  BaselineLearner(const LfdConfig& c, TaskSource& tasks) : c_(c), tasks_(tasks) {
    torch::manual_seed(static_cast<std::uint64_t>(c.seed));
    model_ = std::make_unique<BaselineModel>(c, tasks.spec().state_dim);
    if (c.method == "si") si_ = std::make_unique<continual::SynapticIntelligence>(c.si_c, c.si_xi);
    if (c.method == "mas") mas_ = std::make_unique<continual::MemoryAwareSynapses>(c.mas_lambda);
  }
  std::string method() const override { return c_.method; }

  void resume(const CheckpointData& ck) override {
    // Tasks are added with the same seeds as training used, then overwritten.
    while (model_->tasks() < ck.completed) {
      torch::manual_seed(derive_seed(c_.seed, model_->tasks(), seed_purpose::init));
      model_->add_task();
    }
    model_->load_tensors([&](const std::string& key) { return checkpoint_tensor(ck, key); }, ck.completed);
    if (auto* reg = regularizer()) {
      std::vector<torch::Tensor> omega, anchor;
      for (std::size_t k = 0; k < model_->network(0).size(); ++k) {
        omega.push_back(checkpoint_tensor(ck, "reg.omega." + std::to_string(k)));
        anchor.push_back(checkpoint_tensor(ck, "reg.anchor." + std::to_string(k)));
      }
      reg->set_state(std::move(omega), std::move(anchor));
    }
  }

  void begin_task(std::int64_t i) override {
    tasks_.task(i);
    torch::manual_seed(derive_seed(c_.seed, i, seed_purpose::init));
    model_->add_task();
    window_gen_ = at::detail::createCPUGenerator(derive_seed(c_.seed, i, seed_purpose::batches));
    replay_gen_ = at::detail::createCPUGenerator(derive_seed(c_.seed, i, seed_purpose::method));
    net_ = model_->network(i);
    // Embeddings trained in this task: e_i, or e_0..e_i for replay (one Adam each).
    embs_.clear();
    if (model_->conditioned())
      for (std::int64_t k = (c_.method == "rep" ? 0 : i); k <= i; ++k) embs_.push_back(model_->embedding(k));
    opt_net_.emplace(net_, c_.lr);
    opt_emb_.clear();
    for (const auto& e : embs_) opt_emb_.emplace_back(std::vector<torch::Tensor>{e}, c_.lr);
    if (si_) si_->begin_task(net_);
  }

  StepOutcome step(std::int64_t i, std::int64_t) override {
    const bool conditioned = model_->conditioned();
    // Replay: a task k ~ U{0..i} per iteration; otherwise the current task.
    k_ = c_.method == "rep" ? torch::randint(0, i + 1, {1}, replay_gen_, torch::kInt64).item<std::int64_t>() : i;
    win_ = data::sample_window(tasks_.task32(k_), c_.tsub, window_gen_);
    const auto emb = conditioned ? model_->embedding(k_) : torch::Tensor();
    auto wrt = net_;
    if (conditioned) wrt.push_back(emb);
    std::vector<torch::Tensor> grads;
    double loss_value = 0;
    if (!group_) {
      const auto pred = model_->train_rollout(k_, win_.y.select(1, 0), win_.t);
      const auto loss = (pred - win_.y).pow(2).mean();
      grads = torch::autograd::grad({loss}, wrt);
      loss_value = loss.item<double>();
    } else {
      // Data-parallel (every rank drew the same task and window): rank r's shard of the window's
      // demonstrations, its squared errors over the whole window's count, so the all-reduced sums
      // are the one-process mean loss and its gradients.
      const auto sh = distributed::shard(win_.y.size(0), group_->rank(), group_->size());
      auto sums = torch::zeros({1}, torch::kFloat64);
      if (sh.count > 0) {
        const auto y = win_.y.narrow(0, sh.begin, sh.count);
        const auto pred = model_->train_rollout(k_, y.select(1, 0), win_.t);
        const auto loss = (pred - y).pow(2).sum() / static_cast<double>(win_.y.numel());
        grads = torch::autograd::grad({loss}, wrt);
        sums[0] = loss.item<double>();
      } else {
        for (const auto& w : wrt) grads.push_back(torch::zeros_like(w));
      }
      auto all = grads;
      all.push_back(sums);
      group_->all_reduce(all, distributed::Reduce::Sum);
      loss_value = sums.item<double>();
    }
    if (conditioned) {
      opt_emb_[static_cast<std::size_t>(c_.method == "rep" ? k_ : 0)].step({grads.back()});
      grads.pop_back();
    }
    auto total = grads;
    StepOutcome out;
    auto* reg = regularizer();
    if (reg && reg->has_anchor()) {
      const auto pen = reg->penalty(net_);
      out.reg = pen.item<double>();
      const auto pen_grads = torch::autograd::grad({pen}, net_);
      for (std::size_t q = 0; q < net_.size(); ++q) total[q] = grads[q] + pen_grads[q];
    }
    opt_net_->step(total);
    // SI's path integral uses the task-loss gradient (Zenke et al.'s unregularised gradient).
    if (si_) si_->after_step(net_, grads);
    out.loss = loss_value;
    return out;
  }

  // On the last window (rep: the replayed task's), w.r.t. what the task loss was differentiated
  // against: the network, + the window task's embedding if conditioned.
  DiagnosticsProbe probe(std::int64_t) const override {
    DiagnosticsProbe p;
    p.wrt = net_;
    if (model_->conditioned()) p.wrt.push_back(model_->embedding(k_));
    p.rollout = [this] { return model_->train_rollout(k_, win_.y.select(1, 0), win_.t, /*fused=*/false); };
    p.target = win_.y;
    p.row_extra["window_start"] = win_.k0;
    if (c_.method == "rep") p.row_extra["window_task"] = k_;
    return p;
  }

  void keep_best() override {
    torch::NoGradGuard no_grad;
    best_net_.clear();
    best_embs_.clear();
    for (const auto& p : net_) best_net_.push_back(p.detach().clone());
    for (const auto& e : embs_) best_embs_.push_back(e.detach().clone());
  }

  void end_task(std::int64_t i) override {
    {
      torch::NoGradGuard no_grad;  // continue from the best copy (spec §3.1)
      for (std::size_t q = 0; q < net_.size(); ++q) net_[q].copy_(best_net_[q]);
      for (std::size_t q = 0; q < embs_.size(); ++q) embs_[q].copy_(best_embs_[q]);
    }
    if (si_) si_->end_task(net_);
    if (mas_) {
      // Ω from random (demonstration, time) states of the finished task: F = ẋ there.
      const auto& p32 = tasks_.task32(i);
      auto mas_gen = at::detail::createCPUGenerator(derive_seed(c_.seed, i, seed_purpose::importance));
      const auto ms = torch::randint(0, p32.x.size(0), {c_.mas_samples}, mas_gen, torch::kInt64);
      const auto ts = torch::randint(0, p32.x.size(1), {c_.mas_samples}, mas_gen, torch::kInt64);
      const auto field = model_->field(i);
      mas_->accumulate_importance(net_, c_.mas_samples, [&](std::int64_t n) {
        const auto m = ms[n].item<std::int64_t>(), q = ts[n].item<std::int64_t>();
        return field(p32.t[q], p32.x[m][q].unsqueeze(0));
      });
      mas_->end_task(net_);
    }
  }

  EvalCell evaluate(std::int64_t i, std::int64_t j, const std::vector<std::vector<EvalCell>>& evals) override {
    // A single-model-per-task network never changes after its task: its earlier cells are carried
    // over (the reference copies them too).
    const bool carry = !model_->conditioned() && j < i && !evals.empty() && evals.back().size() > static_cast<std::size_t>(j);
    return carry ? evals.back()[static_cast<std::size_t>(j)]
                 : evaluate_task(c_, tasks_.spec(), tasks_.task(j), model_->rollout(j));
  }

  std::map<std::string, io::NdArray> checkpoint_tensors() const override {
    auto tensors = model_->to_tensors();
    if (auto* r = regularizer(); r && r->has_anchor()) {
      for (std::size_t q = 0; q < r->anchor().size(); ++q) {
        tensors["reg.omega." + std::to_string(q)] = data::to_ndarray(r->importance()[q]);
        tensors["reg.anchor." + std::to_string(q)] = data::to_ndarray(r->anchor()[q]);
      }
    }
    return tensors;
  }

  SummaryInfo summary(std::int64_t completed) const override {
    SummaryInfo info;
    info.method = c_.method;
    const bool conditioned = model_->conditioned();
    const auto P = model_->network_numel();
    info.params = {{"target", P}, {"hypernetwork", 0}, {"theta", conditioned ? P : P * completed}};
    // Stored parameters after each task (spec §4.1 MS): the network (sg: one per task), the task
    // embeddings and the regulariser's importance and anchor.
    for (std::int64_t n = 1; n <= completed; ++n) {
      std::int64_t size = conditioned ? P + n * c_.task_emb_dim : P * n;
      if (regularizer()) size += 2 * P;
      info.sizes.push_back(static_cast<double>(size));
    }
    info.stores_data = c_.method == "rep";
    return info;
  }

 private:
  continual::QuadraticAnchorPenalty* regularizer() const {
    if (si_) return si_.get();
    if (mas_) return mas_.get();
    return nullptr;
  }

  const LfdConfig& c_;
  TaskSource& tasks_;
  std::unique_ptr<BaselineModel> model_;
  std::unique_ptr<continual::SynapticIntelligence> si_;
  std::unique_ptr<continual::MemoryAwareSynapses> mas_;
  torch::Generator window_gen_, replay_gen_;
  std::vector<torch::Tensor> net_, embs_, best_net_, best_embs_;
  std::optional<Adam> opt_net_;
  std::vector<Adam> opt_emb_;  // one per trained embedding
  std::int64_t k_ = 0;  // the task of the iteration's window
  data::Window win_;
};

}  // namespace

std::unique_ptr<Learner> make_baseline_learner(const LfdConfig& c, TaskSource& tasks) {
  return std::make_unique<BaselineLearner>(c, tasks);
}

}  // namespace detail

}  // namespace stablelearn::lfd
