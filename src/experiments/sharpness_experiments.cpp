// edge-of-stability and sgd-minimum (toy_experiments.h; docs/diagnostics.md experiments (a), (b)).
#include <algorithm>

#include "stablelearn/core/error.h"
#include "stablelearn/diagnostics/toy_problem.h"
#include "stablelearn/experiments/toy_experiments.h"

namespace stablelearn::experiments {

namespace dg = diagnostics;

EdgeOfStabilityResult run_edge_of_stability(const EdgeOfStabilityOptions& es, const ExperimentProgress& progress) {
  const auto problem = dg::make_toy_problem(
      dg::ToyProblemOptions().inputs(es.inputs).hidden(es.hidden).samples(es.samples).batch_size(es.samples).seed(es.seed));
  const dg::HessianOperator hess(problem.params, problem.loss, problem.batches);
  EdgeOfStabilityResult out;
  nlohmann::json rows = nlohmann::json::array();
  double max_lambda = 0, last_loss = 0;
  std::int64_t first_at_edge = -1;
  const double threshold = 2.0 / es.lr;
  for (std::int64_t s = 0;; s += es.every) {
    const auto lam = top_eigenvalue(hess, es.lanczos_steps, es.seed);
    last_loss = hess.loss_and_gradient().first;
    rows.push_back({{"step", s}, {"loss", last_loss}, {"lambda_max", lam}, {"sharpness_ratio", lam / threshold}});
    max_lambda = std::max(max_lambda, lam);
    if (first_at_edge < 0 && lam >= 0.9 * threshold) first_at_edge = s;
    if (progress) progress(std::min(s, es.steps), es.steps, "lambda_max " + std::to_string(lam));
    if (s >= es.steps) break;
    const auto losses = problem.train_gd(std::min(es.every, es.steps - s), es.lr);
    // train_gd reports the loss before every step and after the last: the first equals the
    // previous chunk's last.
    out.losses.insert(out.losses.end(), losses.begin() + (out.losses.empty() ? 0 : 1), losses.end());
  }
  out.report = {{"problem", "toy tanh MLP regression, full-batch GD, MSE"},
                {"parameters", hess.dim()},
                {"samples", es.samples},
                {"learning_rate", es.lr},
                {"gd_threshold", threshold},
                {"initial_lambda_max", rows.front()["lambda_max"]},
                {"final_lambda_max", rows.back()["lambda_max"]},
                {"max_lambda_max", max_lambda},
                {"max_sharpness_ratio", max_lambda / threshold},
                {"first_step_within_10pct_of_edge", first_at_edge >= 0 ? nlohmann::json(first_at_edge) : nlohmann::json(nullptr)},
                {"final_loss", last_loss},
                {"trace", rows}};
  return out;
}

nlohmann::json run_sgd_minimum(const SgdMinimumOptions& sg, const ExperimentProgress& progress) {
  SL_CHECK(sg.batch_size <= sg.data.samples, UsageError, "--batch-size ", sg.batch_size, " exceeds --samples ", sg.data.samples);
  auto p = make_fmnist_problem(sg.data, sg.loss, torch::kFloat64);
  const auto initial_loss = p.full_loss();
  const auto total = sg.epochs * (p.x.size(0) / sg.batch_size);
  const auto every = std::max<std::int64_t>(1, total / 20);
  const auto steps = train_sgd(p, sg.epochs, sg.batch_size, sg.lr, sg.data.seed, progress ? every : 0,
                               progress ? std::function<void(std::int64_t)>([&](std::int64_t s) { progress(s, total, "SGD"); })
                                        : std::function<void(std::int64_t)>());
  const dg::HessianOperator hess(p.params, p.loss_fn(), make_batches(p.x, p.y, 250));
  const auto s = dg::stability_check(hess, dg::StabilityOptions()
                                               .learning_rate(sg.lr)
                                               .batch_size(sg.batch_size)
                                               .num_samples(p.x.size(0))
                                               .seed(sg.data.seed));
  return {{"problem", "MLP on a Fashion-MNIST subset, minibatch SGD"},
          {"hidden", sg.data.hidden},
          {"parameters", hess.dim()},
          {"samples", p.x.size(0)},
          {"loss_kind", sg.loss},
          {"learning_rate", sg.lr},
          {"batch_size", sg.batch_size},
          {"epochs", sg.epochs},
          {"steps", steps},
          {"initial_loss", initial_loss},
          {"loss", p.full_loss()},
          {"train_accuracy", p.accuracy(p.x, p.y)},
          {"test_accuracy", p.accuracy(p.x_test, p.y_test)},
          {"stability", stability_json(s)}};
}

}  // namespace stablelearn::experiments
