#include "stablelearn/continual/strategy.h"

#include <torch/nn/functional/loss.h>

#include "stablelearn/core/config.h"
#include "stablelearn/core/error.h"

namespace stablelearn::continual {

namespace F = torch::nn::functional;

torch::Tensor Context::network(const torch::Tensor& x, std::int64_t task) const {
  if (forward) return forward(x, params);
  return strategy && strategy->per_task_network() ? model->forward(x, strategy->task_weights(*this, task)) : model->forward(x);
}

torch::Tensor Context::logits(const torch::Tensor& x, const torch::Tensor& task_ids,
                              const std::vector<torch::Tensor>* w) const {
  torch::Tensor z;
  if (forward) {
    z = forward(x, w ? *w : params);
  } else if (w) {
    z = model->forward(x, *w);
  } else if (strategy && strategy->per_task_network() && x.size(0) > 0) {
    // Each task's samples through that task's network (one forward when the batch is one task's).
    const auto ids = std::get<0>(at::_unique(task_ids.cpu(), /*sorted=*/true));
    const auto* k = ids.data_ptr<std::int64_t>();
    if (ids.numel() == 1) {
      z = network(x, k[0]);
    } else {
      for (std::int64_t j = 0; j < ids.numel(); ++j) {
        const auto rows = (task_ids == k[j]).nonzero().squeeze(1);
        const auto part = network(x.index_select(0, rows), k[j]);
        if (!z.defined()) z = torch::zeros({x.size(0), part.size(1)}, part.options());
        z = z.index_copy(0, rows, part);
      }
    }
  } else {
    z = model->forward(x);
  }
  return task_incremental ? mask_logits(z, class_mask.index_select(0, task_ids)) : z;
}

torch::Tensor mask_logits(const torch::Tensor& logits, const torch::Tensor& allowed) {
  return logits.masked_fill(allowed.logical_not(), -std::numeric_limits<float>::infinity());
}

void require_task_identity(const Context& ctx, const std::string& strategy) {
  if (ctx.task_incremental) return;
  for (const auto& t : *ctx.tasks)
    SL_CHECK(t.classes == ctx.tasks->front().classes, ConfigError, "strategy.name: ", strategy,
             " evaluates each task with its own weights and needs the task identity at test time; a "
             "class-incremental split stream has none (use stream.kind = \"split-task\", \"split-domain\", "
             "\"permuted\" or \"rotated\")");
}

void Strategy::describe(ConfigWriter& w) const { w.put("strategy", "name", name()); }

TrainSet Strategy::train_set(Context& ctx) {
  const auto& t = ctx.current();
  return {t.train.images, t.train.labels, torch::full({t.train.size()}, ctx.task, torch::kInt64)};
}

torch::Tensor cross_entropy(const torch::Tensor& logits, const torch::Tensor& labels) {
  // log_softmax handles −∞ logits (their probability is 0); the true class is never masked.
  return F::nll_loss(torch::log_softmax(logits, 1), labels);
}

torch::Tensor flat_grad(const std::vector<torch::Tensor>& params) {
  std::vector<torch::Tensor> parts;
  parts.reserve(params.size());
  for (const auto& p : params) parts.push_back(p.grad().defined() ? p.grad().reshape(-1) : torch::zeros({p.numel()}, p.options()));
  return torch::cat(parts);
}

void set_flat_grad(const std::vector<torch::Tensor>& params, const torch::Tensor& flat) {
  std::int64_t off = 0;
  for (const auto& p : params) {
    const auto n = p.numel();
    auto g = flat.narrow(0, off, n).view_as(p);
    if (p.grad().defined())
      p.mutable_grad().copy_(g);
    else
      p.mutable_grad() = g.clone();
    off += n;
  }
  SL_CHECK(off == flat.numel(), InternalError, "set_flat_grad: ", flat.numel(), " values for ", off, " parameters");
}

std::vector<torch::Tensor> snapshot(const std::vector<torch::Tensor>& params) {
  std::vector<torch::Tensor> out;
  out.reserve(params.size());
  for (const auto& p : params) out.push_back(p.detach().clone());
  return out;
}

void put_list(std::map<std::string, torch::Tensor>& m, const std::string& prefix, const std::vector<torch::Tensor>& v) {
  m[prefix + ".n"] = torch::tensor({static_cast<std::int64_t>(v.size())}, torch::kInt64);
  for (std::size_t i = 0; i < v.size(); ++i)
    if (v[i].defined()) m[prefix + "." + std::to_string(i)] = v[i].detach().cpu();
}

std::vector<torch::Tensor> get_list(const std::map<std::string, torch::Tensor>& m, const std::string& prefix) {
  const auto it = m.find(prefix + ".n");
  if (it == m.end()) return {};
  const auto n = it->second.item<std::int64_t>();
  std::vector<torch::Tensor> v(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    const auto f = m.find(prefix + "." + std::to_string(i));
    if (f != m.end()) v[static_cast<std::size_t>(i)] = f->second.clone();
  }
  return v;
}

}  // namespace stablelearn::continual
