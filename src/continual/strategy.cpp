#include "stablelearn/continual/strategy.h"

#include <torch/autograd.h>
#include <torch/nn/functional/loss.h>
#include <torch/optim/adam.h>

#include "stablelearn/core/error.h"

namespace stablelearn::continual {

namespace F = torch::nn::functional;

torch::Tensor Ewc::penalty(Context& ctx) {
  if (fisher_.empty()) return {};
  const auto params = ctx.model->parameters();
  torch::Tensor total = torch::zeros({}, params.front().options());
  for (std::size_t k = 0; k < fisher_.size(); ++k)
    for (std::size_t i = 0; i < params.size(); ++i)
      total = total + (fisher_[k][i] * (params[i] - anchor_[k][i]).pow(2)).sum();
  return total * (lambda_ / 2);
}

void Ewc::after_task(Context& ctx) {
  const auto params = ctx.model->parameters();
  std::vector<torch::Tensor> fisher;
  for (const auto& p : params) fisher.push_back(torch::zeros_like(p));
  const auto n = std::min<std::int64_t>(samples_, ctx.data->train.size());
  for (std::int64_t s = 0; s < n; ++s) {
    const auto x = ctx.data->train.images.narrow(0, s, 1);
    const auto y = ctx.data->train.labels.narrow(0, s, 1);
    const auto logp = torch::log_softmax(ctx.forward(x), 1).gather(1, y.unsqueeze(1)).sum();
    const auto grads = torch::autograd::grad({logp}, params);
    for (std::size_t i = 0; i < params.size(); ++i) fisher[i] += grads[i].detach().pow(2);
  }
  for (auto& f : fisher) f /= static_cast<double>(n);
  std::vector<torch::Tensor> anchor;
  for (const auto& p : params) anchor.push_back(p.detach().clone());
  fisher_.push_back(std::move(fisher));
  anchor_.push_back(std::move(anchor));
}

double accuracy(const std::function<torch::Tensor(const torch::Tensor&)>& forward, const data::ImageSet& set) {
  torch::NoGradGuard no_grad;
  std::int64_t correct = 0;
  for (std::int64_t i = 0; i < set.size(); i += 1000) {
    const auto len = std::min<std::int64_t>(1000, set.size() - i);
    const auto pred = forward(set.images.narrow(0, i, len)).argmax(1);
    correct += (pred == set.labels.narrow(0, i, len)).sum().item<std::int64_t>();
  }
  return set.size() ? static_cast<double>(correct) / static_cast<double>(set.size()) : 0.0;
}

std::vector<std::vector<double>> run_stream(torch::nn::Module& model,
                                            const std::function<torch::Tensor(const torch::Tensor&)>& forward,
                                            const std::vector<data::ClTask>& tasks, Strategy& strategy,
                                            const RunOptions& o) {
  SL_CHECK(o.batch_size >= 1 && o.epochs >= 1 && o.lr > 0, ConfigError, "run_stream: batch_size, epochs >= 1 and lr > 0");
  SL_CHECK(o.optimizer == "sgd" || o.optimizer == "adam", ConfigError, "run_stream: optimizer must be sgd or adam, got ",
           o.optimizer);
  auto gen = at::detail::createCPUGenerator(static_cast<std::uint64_t>(o.seed));
  std::vector<std::vector<double>> acc;
  auto params = model.parameters();
  for (const auto& task : tasks) {
    Context ctx{&model, forward, task.id, &task};
    strategy.before_task(ctx);
    std::unique_ptr<torch::optim::Adam> adam;
    if (o.optimizer == "adam") adam = std::make_unique<torch::optim::Adam>(params, torch::optim::AdamOptions(o.lr));
    const auto n = task.train.size();
    for (std::int64_t e = 0; e < o.epochs; ++e) {
      const auto order = torch::randperm(n, gen, torch::kInt64);
      for (std::int64_t i = 0; i < n; i += o.batch_size) {
        const auto idx = order.narrow(0, i, std::min(o.batch_size, n - i));
        auto loss = F::cross_entropy(forward(task.train.images.index_select(0, idx)), task.train.labels.index_select(0, idx));
        const auto pen = strategy.penalty(ctx);
        if (pen.defined()) loss = loss + pen;
        const auto grads = torch::autograd::grad({loss}, params);
        if (adam) {
          for (std::size_t k = 0; k < params.size(); ++k) params[k].mutable_grad() = grads[k];
          adam->step();
        } else {
          torch::NoGradGuard no_grad;
          for (std::size_t k = 0; k < params.size(); ++k) params[k].sub_(grads[k] * o.lr);
        }
      }
    }
    strategy.after_task(ctx);
    std::vector<double> row;
    for (const auto& t : tasks) row.push_back(accuracy(forward, t.test));
    acc.push_back(row);
  }
  return acc;
}

}  // namespace stablelearn::continual
