// PackNet: iterative pruning, each task's weights frozen (see strategies.h).
#include <algorithm>
#include <cmath>

#include "stablelearn/continual/strategies.h"
#include "stablelearn/core/config.h"
#include "stablelearn/core/error.h"

namespace stablelearn::continual {

void PackNetOptions::fields(options::Visitor& v) {
  v("prune", prune, "share of a task's free weights released for later tasks after it trains").at_least(0.0).below(1.0);
  v("retrain_epochs", retrain_epochs, "epochs of SGD on the kept weights after pruning (0 = none)").at_least(0);
}

void PackNet::ensure_owners(const Context& ctx) {
  if (!owner_.empty()) {
    SL_CHECK(owner_.size() == ctx.params.size(), DataError, "packnet: the checkpoint's state has ", owner_.size(),
             " owner tensors for a model of ", ctx.params.size(), " parameters");
    for (std::size_t i = 0; i < owner_.size(); ++i) owner_[i] = owner_[i].to(ctx.params[i].device());  // restored on the CPU
  } else {
    for (const auto& p : ctx.params) owner_.push_back(torch::zeros(p.sizes(), p.options().dtype(torch::kInt64)));
  }
  refresh_masks(ctx);
}

void PackNet::refresh_masks(const Context& ctx) {
  visible_.clear();
  free_.clear();
  for (std::size_t i = 0; i < owner_.size(); ++i) free_.push_back(owner_[i].eq(0).to(ctx.params[i].scalar_type()));
}

void PackNet::before_task(Context& ctx) {
  require_task_identity(ctx, "packnet");
  ensure_owners(ctx);
}

std::vector<torch::Tensor> PackNet::task_weights(const Context& ctx, std::int64_t task) const {
  if (owner_.empty()) return ctx.params;  // before the first task: nothing owned yet
  auto& masks = visible_[task];
  if (masks.empty()) {
    for (std::size_t i = 0; i < ctx.params.size(); ++i) {
      const auto& o = owner_[i];
      // Kept by tasks 0..task, plus the free weights while the task is not yet pruned (the task in
      // training, or a future one evaluated for forward transfer).
      auto visible = o.ge(1).logical_and(o.le(task + 1));
      if (task >= done_) visible = visible.logical_or(o.eq(0));
      masks.push_back(visible.to(ctx.params[i].scalar_type()));
    }
  }
  std::vector<torch::Tensor> w;
  w.reserve(ctx.params.size());
  for (std::size_t i = 0; i < ctx.params.size(); ++i) w.push_back(ctx.params[i] * masks[i]);
  return w;
}

void PackNet::after_backward(Context& ctx) {
  torch::NoGradGuard no_grad;
  for (std::size_t i = 0; i < ctx.params.size(); ++i) {
    auto& g = ctx.params[i].mutable_grad();
    if (g.defined()) g.mul_(free_[i]);
  }
}

void PackNet::after_task(Context& ctx) {
  const auto k = ctx.task;
  const bool last = k + 1 >= static_cast<std::int64_t>(ctx.tasks->size());
  {
    torch::NoGradGuard no_grad;
    for (std::size_t i = 0; i < ctx.params.size(); ++i) {
      auto& p = ctx.params[i];
      auto& o = owner_[i];
      const auto free = o.eq(0);
      if (p.dim() < 2) {  // biases: task 0's, frozen afterwards
        o.masked_fill_(free, k + 1);
        continue;
      }
      const auto idx = free.reshape(-1).nonzero().squeeze(1);
      const auto n_free = idx.numel();
      const auto keep = last ? n_free : static_cast<std::int64_t>(std::llround((1.0 - o_.prune) * static_cast<double>(n_free)));
      if (keep > 0) {
        const auto mags = p.reshape(-1).index_select(0, idx).abs();
        const auto top = std::get<1>(mags.topk(keep, 0, /*largest=*/true, /*sorted=*/false));
        o.view(-1).index_fill_(0, idx.index_select(0, top), k + 1);
      }
      p.masked_fill_(o.eq(0), 0);  // released weights start from zero for the next task
    }
  }
  done_ = k + 1;
  refresh_masks(ctx);
  if (last || o_.retrain_epochs == 0) return;
  // Fine-tune the kept weights alone, through the task's new view of the network.
  const auto& t = ctx.current().train;
  const auto n = t.size();
  const auto dev = ctx.params.front().device();
  std::vector<torch::Tensor> mine;
  for (const auto& o : owner_) mine.push_back(o.eq(k + 1));
  for (std::int64_t e = 0; e < o_.retrain_epochs; ++e) {
    const auto order = torch::randperm(n, ctx.gen, torch::kInt64);
    for (std::int64_t b = 0; b < n; b += ctx.batch_size) {
      const auto sel = order.narrow(0, b, std::min(ctx.batch_size, n - b));
      const auto x = t.images.index_select(0, sel).to(dev);
      const auto y = t.labels.index_select(0, sel).to(dev);
      for (auto& p : ctx.params) p.mutable_grad().reset();
      cross_entropy(ctx.logits(x, torch::full({sel.size(0)}, k, torch::kInt64).to(dev)), y).backward();
      torch::NoGradGuard no_grad;
      for (std::size_t i = 0; i < ctx.params.size(); ++i) {
        const auto& g = ctx.params[i].grad();
        if (g.defined()) ctx.params[i].sub_(g * mine[i].to(g.scalar_type()), ctx.lr);
      }
    }
  }
  for (auto& p : ctx.params) p.mutable_grad().reset();
}

std::map<std::string, torch::Tensor> PackNet::state() const {
  std::map<std::string, torch::Tensor> m;
  put_list(m, "owner", owner_);
  m["done"] = torch::tensor(done_, torch::kInt64);
  return m;
}

void PackNet::load_state(const std::map<std::string, torch::Tensor>& m) {
  owner_ = get_list(m, "owner");
  const auto it = m.find("done");
  done_ = it == m.end() ? 0 : it->second.item<std::int64_t>();
  visible_.clear();  // derived from the old owners; before_task rebuilds free_
  free_.clear();
}

}  // namespace stablelearn::continual
