// Averaged gradient episodic memory (see strategies.h).
#include <torch/autograd.h>

#include "stablelearn/continual/strategies.h"
#include "stablelearn/core/config.h"

namespace stablelearn::continual {

void AGemOptions::fields(options::Visitor& v) {
  v("memory_per_task", memory_per_task, "random samples of each finished task kept").at_least(1);
  v("sample_size", sample_size, "memory samples of the reference gradient").at_least(1);
}

void AGem::after_backward(Context& ctx) {
  if (!my_.defined()) return;
  const auto m = my_.size(0);
  const auto idx = torch::randperm(m, ctx.gen, torch::kInt64).narrow(0, 0, std::min(o_.sample_size, m)).to(my_.device());
  const auto loss = cross_entropy(ctx.logits(mx_.index_select(0, idx), mt_.index_select(0, idx)), my_.index_select(0, idx));
  const auto grads = torch::autograd::grad({loss}, ctx.params);
  std::vector<torch::Tensor> parts;
  for (const auto& g : grads) parts.push_back(g.reshape(-1));
  const auto g_ref = torch::cat(parts);
  const auto g = flat_grad(ctx.params);
  const auto dot = (g * g_ref).sum().item<double>();
  if (dot < 0) {
    set_flat_grad(ctx.params, g - g_ref * (dot / (g_ref * g_ref).sum().item<double>()));
    ++projections_;
  }
}

void AGem::after_task(Context& ctx) {
  const auto& t = ctx.current().train;
  const auto dev = ctx.params.front().device();
  const auto n = std::min(o_.memory_per_task, t.size());
  const auto idx = torch::randperm(t.size(), ctx.gen, torch::kInt64).narrow(0, 0, n);
  const auto x = t.images.index_select(0, idx).to(dev), y = t.labels.index_select(0, idx).to(dev);
  const auto task = torch::full({n}, ctx.task, torch::kInt64).to(dev);
  mx_ = mx_.defined() ? torch::cat({mx_, x}) : x;
  my_ = my_.defined() ? torch::cat({my_, y}) : y;
  mt_ = mt_.defined() ? torch::cat({mt_, task}) : task;
}

std::map<std::string, torch::Tensor> AGem::state() const {
  std::map<std::string, torch::Tensor> m;
  if (my_.defined()) {
    m["agem.x"] = mx_.cpu();
    m["agem.y"] = my_.cpu();
    m["agem.task"] = mt_.cpu();
  }
  return m;
}

void AGem::load_state(const std::map<std::string, torch::Tensor>& m) {
  if (m.count("agem.y") == 0) return;
  mx_ = m.at("agem.x").clone();
  my_ = m.at("agem.y").clone();
  mt_ = m.at("agem.task").clone();
}

}  // namespace stablelearn::continual
