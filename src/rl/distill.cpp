#include "stablelearn/rl/distill.h"

#include <cmath>
#include <numeric>
#include <utility>

#include <torch/nn/functional/activation.h>
#include <torch/nn/functional/loss.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adam.h>

#include "stablelearn/core/error.h"
#include "stablelearn/rl/diagnosis.h"
#include "stablelearn/rl/env.h"

namespace stablelearn::rl {

torch::Tensor distillation_loss(const torch::Tensor& student_q, const torch::Tensor& teacher_q, const std::string& kind,
                                double temperature) {
  SL_CHECK(student_q.dim() == 2 && student_q.sizes() == teacher_q.sizes() && student_q.size(1) >= 1, ShapeError,
           "distillation_loss: student and teacher Q-values must both be [B, A], got ", student_q.sizes(), " and ",
           teacher_q.sizes());
  const auto t = teacher_q.detach().to(student_q.scalar_type());
  if (kind == "mse") return (student_q - t).pow(2).mean();
  const auto log_p_student = torch::log_softmax(student_q, 1);
  if (kind == "nll") return -log_p_student.gather(1, t.argmax(1, /*keepdim=*/true)).mean();
  if (kind == "kl") {
    SL_CHECK(temperature > 0 && std::isfinite(temperature), ConfigError,
             "distillation_loss: temperature must be finite and > 0, got ", temperature);
    const auto log_p = torch::log_softmax(t / temperature, 1);
    return (log_p.exp() * (log_p - log_p_student)).sum(1).mean();
  }
  SL_THROW(ConfigError, "distillation_loss: kind must be mse, nll or kl, got '", kind, "'");
}

void DistillOptions::fields(options::Visitor& v) {
  v("loss", loss, "distillation loss (Rusu et al. 2016)").one_of({"mse", "nll", "kl"});
  v("temperature", temperature, "teacher softmax temperature of the kl loss").above(0.0);
  v("epochs", epochs, "passes over the distillation data").at_least(1);
  v("batch_size", batch_size, "minibatch size").at_least(1);
  v("lr", lr, "Adam learning rate").above(0.0);
  v("max_grad_norm", max_grad_norm, "global gradient norm clip (0 = none)").at_least(0.0);
  v("adv_eps", adv_eps, "FGSM radius on the inputs, input units (0 = clean)").at_least(0.0);
  v("adv_weight", adv_weight, "weight of the loss at the FGSM inputs (1 = those only)").in(0.0, 1.0);
  v("seed", seed, "seed of the minibatch shuffle").at_least(0);
}

DistillStats distill(DuelingQNet& student, const torch::Tensor& inputs, const torch::Tensor& teacher_q,
                     const DistillOptions& options, const torch::Tensor& adv_scale) {
  DistillOptions o = options;
  options::check(o, "distill");
  SL_CHECK(inputs.dim() == 2 && teacher_q.dim() == 2 && inputs.size(0) == teacher_q.size(0) && inputs.size(0) >= 1,
           ShapeError, "distill: inputs [N, D] and teacher Q-values [N, A] with the same N >= 1, got ", inputs.sizes(),
           " and ", teacher_q.sizes());
  const auto N = inputs.size(0);
  const auto targets = teacher_q.detach();
  torch::optim::Adam opt(student->parameters(), torch::optim::AdamOptions(o.lr));
  SplitMix64 rng{stream_seed(static_cast<std::uint64_t>(o.seed), -5)};
  std::vector<std::int64_t> perm(static_cast<std::size_t>(N));
  std::iota(perm.begin(), perm.end(), 0);
  QFunction q = [&](const torch::Tensor& x) { return student->forward(x); };
  DistillStats out;
  for (std::int64_t e = 0; e < o.epochs; ++e) {
    for (std::int64_t i = N - 1; i > 0; --i)  // Fisher–Yates
      std::swap(perm[static_cast<std::size_t>(i)], perm[static_cast<std::size_t>(rng.next() % static_cast<std::uint64_t>(i + 1))]);
    const auto order = torch::from_blob(perm.data(), {N}, torch::kLong).to(inputs.device());
    double sum = 0;
    std::int64_t batches = 0;
    for (std::int64_t b = 0; b < N; b += o.batch_size) {
      const auto idx = order.slice(0, b, std::min(N, b + o.batch_size));
      const auto x = inputs.index_select(0, idx);
      const auto y = targets.index_select(0, idx);
      torch::Tensor loss;
      if (o.adv_eps > 0) {
        const auto x_adv = fgsm(q, x, o.adv_eps, adv_scale);
        loss = o.adv_weight * distillation_loss(student->forward(x_adv), y, o.loss, o.temperature);
        if (o.adv_weight < 1) loss = loss + (1 - o.adv_weight) * distillation_loss(student->forward(x), y, o.loss, o.temperature);
      } else {
        loss = distillation_loss(student->forward(x), y, o.loss, o.temperature);
      }
      opt.zero_grad();
      loss.backward();
      if (o.max_grad_norm > 0) torch::nn::utils::clip_grad_norm_(student->parameters(), o.max_grad_norm);
      opt.step();
      sum += loss.item<double>();
      ++batches;
    }
    out.epoch_loss.push_back(sum / static_cast<double>(batches));
  }
  torch::NoGradGuard ng;
  std::int64_t agree = 0;
  for (std::int64_t b = 0; b < N; b += 4096) {
    const auto x = inputs.slice(0, b, std::min(N, b + 4096));
    agree += student->forward(x).argmax(1).eq(targets.slice(0, b, std::min(N, b + 4096)).argmax(1)).sum().item<std::int64_t>();
  }
  out.agreement = static_cast<double>(agree) / static_cast<double>(N);
  return out;
}

}  // namespace stablelearn::rl
