// Shared pieces of the toy experiments (toy_experiments.h): batches, the stability JSON block, the
// Fashion-MNIST problem and its SGD loop.
#include <algorithm>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/nn/functional/loss.h>

#include "stablelearn/core/error.h"
#include "stablelearn/data/cl_streams.h"
#include "stablelearn/diagnostics/eigen.h"
#include "stablelearn/experiments/toy_experiments.h"

namespace stablelearn::experiments {

namespace dg = diagnostics;
namespace F = torch::nn::functional;

std::vector<dg::Batch> make_batches(const torch::Tensor& x, const torch::Tensor& y, std::int64_t batch) {
  std::vector<dg::Batch> out;
  for (std::int64_t s = 0; s < x.size(0); s += batch) {
    const auto e = std::min(s + batch, x.size(0));
    out.push_back({x.slice(0, s, e), y.slice(0, s, e)});
  }
  return out;
}

std::vector<double> to_vector(const torch::Tensor& t) {
  const auto c = t.to(torch::kFloat64).cpu().contiguous();
  return {c.data_ptr<double>(), c.data_ptr<double>() + c.numel()};
}

nlohmann::json stability_json(const dg::StabilityReport& s) {
  return {{"lambda_max", s.lambda_max},
          {"lambda_residual", s.lambda_residual},
          {"trace", s.trace},
          {"trace_stderr", s.trace_stderr},
          {"frobenius", s.frobenius},
          {"gd_threshold", s.gd_threshold},
          {"sharpness_ratio", s.sharpness_ratio},
          {"gd_stable", s.gd_stable()},
          {"p", s.p},
          {"trace_threshold", s.p > 0 ? nlohmann::json(s.trace_threshold) : nlohmann::json(nullptr)},
          {"trace_ratio", s.trace_ratio},
          {"sgd_trace_condition", s.sgd_trace_condition()},
          {"frobenius_scaled", s.frobenius_scaled},
          {"matvecs", s.matvecs}};
}

double top_eigenvalue(const dg::CurvatureOperator& op, std::int64_t steps, std::uint64_t seed) {
  const auto r = dg::lanczos(op, dg::LanczosOptions().k(1).steps(std::min(steps, op.dim())).which(dg::Spectrum::LargestAlgebraic).seed(seed));
  return r.eigenvalues[0].item<double>();
}

torch::Tensor FmnistProblem::logits(const torch::Tensor& images) const {
  auto z = model->forward(images, model->weights());
  return columns.defined() ? z.index_select(1, columns) : z;
}

namespace {
torch::Tensor scalar_target(const torch::Tensor& labels, torch::Dtype dtype) { return labels.lt(5).to(dtype) * 2.0 - 1.0; }
}  // namespace

torch::Tensor FmnistProblem::loss_of(const torch::Tensor& z, const torch::Tensor& labels) const {
  if (loss_name == "ce") return F::cross_entropy(z, labels);
  if (loss_name == "mse-scalar") return 0.5 * (z.select(1, 0) - scalar_target(labels, z.scalar_type())).pow(2).mean();
  const auto target = torch::one_hot(labels, z.size(1)).to(z.dtype());
  return 0.5 * (z - target).pow(2).sum(1).mean();
}

dg::LossFn FmnistProblem::loss_fn() const {
  const auto self = *this;
  return [self](const dg::Batch& b) { return self.loss_of(self.logits(b.x), b.y); };
}

double FmnistProblem::accuracy(const torch::Tensor& images, const torch::Tensor& labels) const {
  torch::NoGradGuard ng;
  const auto z = logits(images);
  if (loss_name == "mse-scalar") return z.select(1, 0).gt(0).eq(labels.lt(5)).to(torch::kFloat64).mean().item<double>();
  return z.argmax(1).eq(labels).to(torch::kFloat64).mean().item<double>();
}

double FmnistProblem::full_loss() const {
  torch::NoGradGuard ng;
  return loss_of(logits(x), y).item<double>();
}

FmnistProblem make_fmnist_problem(const FmnistOptions& a, const std::string& loss, torch::Dtype dtype) {
  const auto data = data::load_fashion_mnist(a.data_dir);
  FmnistProblem p;
  p.loss_name = loss;
  p.x = data.train.images.slice(0, 0, std::min(a.samples, data.train.size())).to(dtype);
  p.y = data.train.labels.slice(0, 0, p.x.size(0));
  p.x_test = data.test.images.slice(0, 0, std::min(a.test_samples, data.test.size())).to(dtype);
  p.y_test = data.test.labels.slice(0, 0, p.x_test.size(0));
  models::ClassifierOptions o;
  o.kind = a.kind;
  o.hidden = a.hidden;
  o.channels = a.channels;
  o.fc = a.fc;
  torch::manual_seed(a.seed);
  p.model = models::Classifier(o);
  p.model->to(dtype);
  p.params = p.model->weights();
  return p;
}

std::int64_t train_sgd(FmnistProblem& p, std::int64_t epochs, std::int64_t batch, double lr, std::uint64_t seed,
                       std::int64_t every, const std::function<void(std::int64_t)>& callback) {
  auto gen = at::detail::createCPUGenerator(seed);
  const auto n = p.x.size(0);
  std::int64_t step = 0;
  if (callback) callback(0);
  for (std::int64_t e = 0; e < epochs; ++e) {
    const auto perm = torch::randperm(n, gen, torch::kInt64);
    for (std::int64_t s = 0; s + batch <= n; s += batch) {
      const auto idx = perm.slice(0, s, s + batch);
      const auto l = p.loss_of(p.model->forward(p.x.index_select(0, idx)), p.y.index_select(0, idx));
      const auto g = torch::autograd::grad({l}, p.params);
      {
        torch::NoGradGuard ng;
        for (std::size_t i = 0; i < p.params.size(); ++i) p.params[i].sub_(g[i], lr);
      }
      ++step;
      if (callback && every > 0 && step % every == 0) callback(step);
    }
  }
  if (callback && (every <= 0 || step % every != 0)) callback(step);
  return step;
}

}  // namespace stablelearn::experiments
