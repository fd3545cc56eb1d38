// HAT: hard attention to the task, per-task unit gates (see strategies.h).
#include <algorithm>
#include <cmath>
#include <string>

#include "stablelearn/continual/strategies.h"
#include "stablelearn/core/config.h"
#include "stablelearn/core/error.h"

namespace stablelearn::continual {

void HatOptions::fields(options::Visitor& v) {
  v("s_max", s_max, "largest gate slope s (annealed from 1/s_max over each epoch)").above(1.0);
  v("c", c, "weight of the capacity regulariser").at_least(0.0);
  v("emb_lr", emb_lr, "SGD step of the task embeddings (0 = the run's lr)").at_least(0.0);
  v("clamp", clamp, "bound of |e| after every step").above(0.0);
}

namespace {
std::size_t hidden_layers(const Context& ctx) { return ctx.model->options().hidden.size(); }
}  // namespace

void Hat::before_task(Context& ctx) {
  SL_CHECK(ctx.model->options().kind == "mlp", ConfigError, "strategy.name: hat gates the hidden units of an MLP; model.kind is \"",
           ctx.model->options().kind, "\" (want \"mlp\")");
  require_task_identity(ctx, "hat");
  SL_CHECK(ctx.world_size == 1, ConfigError, "strategy.name: hat ", data_parallel_refusal(), " (", ctx.world_size,
           " ranks); run it in one process");
  const auto L = hidden_layers(ctx);
  if (emb_.empty()) {  // every task's embeddings at once (future tasks are evaluated for FWT)
    const auto opts = ctx.params.front().options().requires_grad(false);
    for (std::size_t k = 0; k < ctx.tasks->size(); ++k) {
      std::vector<torch::Tensor> layers;
      for (std::size_t l = 0; l < L; ++l)
        layers.push_back(torch::randn({ctx.model->options().hidden[l]}, ctx.gen, opts.dtype(torch::kFloat32))
                             .to(opts.dtype())
                             .requires_grad_());
      emb_.push_back(layers);
    }
  }
  SL_CHECK(emb_.size() == ctx.tasks->size() && emb_.front().size() == L, DataError, "hat: the checkpoint's state has ",
           emb_.size(), " tasks of embeddings for a stream of ", ctx.tasks->size());
  const auto dev = ctx.params.front().device();  // a restored state comes on the CPU
  for (auto& layers : emb_)
    for (auto& e : layers)
      if (e.device() != dev) e = e.detach().to(dev).requires_grad_();
  for (auto& c : cum_) c = c.to(dev);
}

double Hat::slope(const Context& ctx) const {
  if (!in_update_) return o_.s_max;
  const auto n = ctx.current().train.size();
  const auto per_epoch = (n + ctx.batch_size - 1) / ctx.batch_size;
  if (per_epoch <= 1) return o_.s_max;
  const auto b = static_cast<double>(ctx.task_iteration % per_epoch);
  return 1.0 / o_.s_max + (o_.s_max - 1.0 / o_.s_max) * b / static_cast<double>(per_epoch - 1);
}

// Each rank would step the embeddings with its own shard's gradient: they are not all-reduced.
std::string Hat::data_parallel_refusal() const {
  return "trains its task embeddings outside the all-reduced parameters and does not support data-parallel runs";
}

std::vector<torch::Tensor> Hat::gates(std::int64_t task, double s) const {
  std::vector<torch::Tensor> a;
  for (const auto& e : emb_.at(static_cast<std::size_t>(task))) a.push_back(torch::sigmoid(s * e));
  return a;
}

std::vector<torch::Tensor> Hat::task_weights(const Context& ctx, std::int64_t task) const {
  if (emb_.empty()) return ctx.params;
  const auto a = gates(task, task == ctx.task ? slope(ctx) : o_.s_max);
  auto w = ctx.params;
  for (std::size_t l = 0; l < a.size(); ++l) {
    w[2 * l] = ctx.params[2 * l] * a[l].unsqueeze(1);
    w[2 * l + 1] = ctx.params[2 * l + 1] * a[l];
  }
  return w;
}

Batch Hat::adapt_batch(Context&, Batch b) {
  in_update_ = true;
  return b;
}

void Hat::after_step(Context&, const Batch&) { in_update_ = false; }

torch::Tensor Hat::extra_loss(Context& ctx, const Batch&, const torch::Tensor&) {
  if (o_.c == 0) return {};
  const auto a = gates(ctx.task, slope(ctx));
  torch::Tensor num, den;
  for (std::size_t l = 0; l < a.size(); ++l) {
    const auto free = cum_.empty() ? torch::ones_like(a[l]) : 1 - cum_[l];
    const auto n = (a[l] * free).sum(), d = free.sum();
    num = num.defined() ? num + n : n;
    den = den.defined() ? den + d : d;
  }
  return o_.c * num / den;
}

void Hat::after_backward(Context& ctx) {
  torch::NoGradGuard no_grad;
  const auto L = hidden_layers(ctx);
  if (!cum_.empty()) {
    // Units the finished tasks use keep their weights: ∇W[i, j] · (1 − min(a<t_i, a<t_j)).
    for (std::size_t l = 0; l <= L; ++l) {
      auto& gw = ctx.params[2 * l].mutable_grad();
      auto& gb = ctx.params[2 * l + 1].mutable_grad();
      torch::Tensor keep_w;
      if (l == 0)
        keep_w = 1 - cum_[0].unsqueeze(1);
      else if (l == L)
        keep_w = 1 - cum_[L - 1].unsqueeze(0);
      else
        keep_w = 1 - torch::min(cum_[l].unsqueeze(1), cum_[l - 1].unsqueeze(0));
      if (gw.defined()) gw.mul_(keep_w);
      if (gb.defined()) {
        if (l < L)
          gb.mul_(1 - cum_[l]);
        else
          gb.zero_();  // the shared head's bias: task 0's
      }
    }
  }
  const double s = slope(ctx);
  const double lr = o_.emb_lr > 0 ? o_.emb_lr : ctx.lr;
  for (auto& e : emb_.at(static_cast<std::size_t>(ctx.task))) {
    auto& g = e.mutable_grad();
    if (!g.defined()) continue;
    const auto comp = (torch::cosh((s * e).clamp(-50, 50)) + 1) / (torch::cosh(e) + 1) * (o_.s_max / s);
    e.sub_(g * comp, lr).clamp_(-o_.clamp, o_.clamp);
    g = torch::Tensor();
  }
}

void Hat::after_task(Context& ctx) {
  torch::NoGradGuard no_grad;
  const auto a = gates(ctx.task, o_.s_max);
  if (cum_.empty())
    for (const auto& x : a) cum_.push_back(x.detach().clone());
  else
    for (std::size_t l = 0; l < a.size(); ++l) cum_[l] = torch::max(cum_[l], a[l]);
  in_update_ = false;
}

std::map<std::string, torch::Tensor> Hat::state() const {
  std::map<std::string, torch::Tensor> m;
  for (std::size_t k = 0; k < emb_.size(); ++k) {
    std::vector<torch::Tensor> d;
    for (const auto& e : emb_[k]) d.push_back(e.detach());
    put_list(m, "emb" + std::to_string(k), d);
  }
  if (!cum_.empty()) put_list(m, "cum", cum_);
  return m;
}

void Hat::load_state(const std::map<std::string, torch::Tensor>& m) {
  emb_.clear();
  for (std::size_t k = 0;; ++k) {
    auto d = get_list(m, "emb" + std::to_string(k));
    if (d.empty()) break;
    for (auto& e : d) e = e.clone().requires_grad_();
    emb_.push_back(d);
  }
  cum_ = get_list(m, "cum");
}

}  // namespace stablelearn::continual
