// trajectory, intrinsic-dim and commutator (toy_experiments.h; docs/diagnostics.md experiments
// (c), (d), (e)).
#include <algorithm>
#include <cmath>
#include <numeric>

#include <ATen/CPUGeneratorImpl.h>

#include "stablelearn/core/error.h"
#include "stablelearn/diagnostics/commutator.h"
#include "stablelearn/diagnostics/toy_problem.h"
#include "stablelearn/diagnostics/trajectory.h"
#include "stablelearn/experiments/toy_experiments.h"

namespace stablelearn::experiments {

namespace dg = diagnostics;

namespace {

/// The PCA block of a trajectory report: the top `components` ratios and their sum, r₉₀, effective rank.
nlohmann::json pca_json(const std::vector<torch::Tensor>& checkpoints, std::int64_t components) {
  const auto pca = dg::trajectory_pca(checkpoints);
  const auto ratio = to_vector(pca.explained_variance_ratio);
  const auto k = std::min<std::size_t>(static_cast<std::size_t>(components), ratio.size());
  const std::vector<double> top(ratio.begin(), ratio.begin() + static_cast<std::ptrdiff_t>(k));
  const auto align = to_vector(dg::alignment_to_final(torch::stack(checkpoints)));
  return {{"explained_variance_ratio", top},
          {"top_cumulative", std::accumulate(top.begin(), top.end(), 0.0)},
          {"rank_90", pca.rank_at_threshold},
          {"effective_rank", pca.effective_rank},
          {"alignment_to_final_midway", align[align.size() / 2]}};
}

}  // namespace

nlohmann::json run_trajectory(const TrajectoryOptions& tr, const ExperimentProgress& progress) {
  SL_CHECK(tr.batch_size <= tr.data.samples, UsageError, "--batch-size ", tr.batch_size, " exceeds --samples ", tr.data.samples);
  auto p = make_fmnist_problem(tr.data, tr.loss, torch::kFloat64);
  const auto total = tr.epochs * (p.x.size(0) / tr.batch_size);
  std::vector<torch::Tensor> checkpoints;
  const auto steps = train_sgd(p, tr.epochs, tr.batch_size, tr.lr, tr.data.seed, tr.every, [&](std::int64_t s) {
    checkpoints.push_back(dg::flatten_tensors(p.params));
    if (progress) progress(s, total, "checkpoint " + std::to_string(checkpoints.size()));
  });
  nlohmann::json out = pca_json(checkpoints, tr.components);
  out.update({{"problem", "MLP on a Fashion-MNIST subset, minibatch SGD"},
              {"hidden", tr.data.hidden},
              {"parameters", checkpoints.front().numel()},
              {"samples", p.x.size(0)},
              {"loss_kind", tr.loss},
              {"learning_rate", tr.lr},
              {"batch_size", tr.batch_size},
              {"steps", steps},
              {"checkpoints", checkpoints.size()},
              {"every", tr.every},
              {"loss", p.full_loss()},
              {"test_accuracy", p.accuracy(p.x_test, p.y_test)}});
  return out;
}

nlohmann::json random_walk_trajectory(std::int64_t checkpoints, std::int64_t dim, std::int64_t components, std::uint64_t seed) {
  SL_CHECK(checkpoints >= 2 && dim >= 1, UsageError, "a random walk needs at least 2 points and 1 dimension");
  auto gen = at::detail::createCPUGenerator(seed);
  const auto steps = torch::randn({checkpoints - 1, dim}, gen, torch::TensorOptions().dtype(torch::kFloat64));
  const auto walk = torch::cat({torch::zeros({1, dim}, torch::kFloat64), steps.cumsum(0)});
  return pca_json(walk.unbind(0), components);
}

nlohmann::json intrinsic_dimension_report(FmnistProblem& p, const dg::IntrinsicDimensionOptions& options,
                                          const std::string& projection,
                                          const std::function<void(const dg::IntrinsicDimensionRow&)>& row_done) {
  auto evaluate = [&p] {
    dg::IntrinsicDimensionEvaluation e;
    e.test_accuracy = p.accuracy(p.x_test, p.y_test);
    e.train_accuracy = p.accuracy(p.x, p.y);
    e.loss = p.full_loss();
    return e;
  };
  const auto r = dg::intrinsic_dimension_sweep(p.params, p.loss_fn(), make_batches(p.x, p.y, p.x.size(0)), evaluate, options,
                                               row_done);
  auto finite_or_null = [](double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); };
  auto or_null = [](std::int64_t v) { return v > 0 ? nlohmann::json(v) : nlohmann::json(nullptr); };
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& row : r.rows)
    rows.push_back({{"d", row.dim},
                    {"test_accuracy", row.test_accuracy},
                    {"test_accuracy_std", finite_or_null(row.test_accuracy_std)},
                    {"train_accuracy", row.train_accuracy},
                    {"train_accuracy_std", finite_or_null(row.train_accuracy_std)},
                    {"loss", row.loss},
                    {"test_accuracies", row.test_accuracies},
                    {"projection_seeds", row.projection_seeds}});
  return {{"projection", projection},
          {"seeds", options.seeds()},
          {"seed", options.seed()},
          {"parameters", r.full_dim},
          {"samples", p.x.size(0)},
          {"test_samples", p.x_test.size(0)},
          {"steps", options.steps()},
          {"learning_rate", options.learning_rate()},
          {"full_learning_rate", options.full_learning_rate()},
          {"initial_test_accuracy", r.initial.test_accuracy},
          {"full_test_accuracy", r.full.test_accuracy},
          {"full_train_accuracy", r.full.train_accuracy},
          {"subspaces", rows},
          {"absolute_threshold", options.absolute_threshold()},
          {"d_int90_absolute", or_null(r.d_int90_absolute)},
          {"relative_threshold", r.relative_threshold},
          {"d_int90_relative", or_null(r.d_int90_relative)}};
}

namespace {

/// Orthonormal basis [D, ·] of the top-k PCA directions of the trajectory: of the whole parameter
/// vector ("global"), or of each tensor's own sub-trajectory placed in full parameter coordinates
/// and QR-orthonormalised together ("per-tensor", bubble-modadd's per-block basis).
torch::Tensor trajectory_basis(const torch::Tensor& checkpoints, const std::vector<torch::Tensor>& params,
                               const std::string& kind, std::int64_t k, nlohmann::json& info) {
  if (kind == "global") {
    const auto pca = dg::trajectory_pca(checkpoints, dg::TrajectoryPcaOptions().components(k));
    SL_CHECK(pca.components.size(0) == k, UsageError, "-k ", k, " exceeds the rank ", pca.components.size(0),
             " of the trajectory (", checkpoints.size(0), " checkpoints)");
    const auto ratio = pca.explained_variance_ratio;
    std::vector<double> top;
    for (std::int64_t i = 0; i < std::min<std::int64_t>(k, ratio.size(0)); ++i) top.push_back(ratio[i].item<double>());
    info = {{"explained_variance_ratio", top},
            {"rank_90", pca.rank_at_threshold},
            {"effective_rank", pca.effective_rank}};
    return dg::orthonormal_basis(pca.components);
  }
  std::vector<torch::Tensor> rows;
  nlohmann::json per = nlohmann::json::array();
  std::int64_t offset = 0;
  const auto dim = checkpoints.size(1);
  for (std::size_t i = 0; i < params.size(); ++i) {
    const auto n = params[i].numel();
    const auto pca = dg::trajectory_pca(checkpoints.narrow(1, offset, n), dg::TrajectoryPcaOptions().components(k));
    auto embedded = torch::zeros({pca.components.size(0), dim}, torch::TensorOptions().dtype(torch::kFloat64));
    embedded.narrow(1, offset, n).copy_(pca.components);
    rows.push_back(embedded);
    per.push_back({{"tensor", i}, {"numel", n}, {"components", pca.components.size(0)}, {"rank_90", pca.rank_at_threshold}});
    offset += n;
  }
  info = {{"tensors", per}};
  return dg::orthonormal_basis(torch::cat(rows));
}

/// The commutator measurement row at the current parameters.
nlohmann::json commutator_row(const CommutatorExperimentOptions& a, const dg::ToyProblem& problem, const dg::HessianOperator& full,
                              std::int64_t step, const torch::Tensor& basis) {
  const auto s = dg::commutator_statistics(problem.params, problem.loss, problem.batches,
                                           dg::CommutatorOptions()
                                               .learning_rate(a.eta)
                                               .pairs(a.pairs)
                                               .random_bases(a.random_bases)
                                               .seed(a.seed + static_cast<std::uint64_t>(step)),
                                           basis);
  nlohmann::json pairs = nlohmann::json::array();
  for (const auto& [ia, ib] : s.pairs) pairs.push_back({ia, ib});
  return {{"step", step},
          {"loss", full.loss_and_gradient().first},
          {"median_defect", s.median},
          {"p90_defect", s.p90},
          {"median_delta_norm", s.median_norm},
          {"defects", s.normalized},
          {"pairs", pairs},
          {"median_rho", s.median_rho},
          {"median_random_rho", s.median_random_rho},
          {"median_rho_ratio", s.median_rho_ratio},
          {"median_energy_fraction", s.median_energy_fraction},
          {"median_random_energy_fraction", s.median_random_energy_fraction},
          {"energy_ratio_to_expected_random", s.median_energy_fraction / s.expected_random_energy_fraction},
          {"median_perpendicular_energy", 1.0 - s.median_energy_fraction}};
}

}  // namespace

nlohmann::json run_commutator(const CommutatorExperimentOptions& a, const ExperimentProgress& progress) {
  SL_CHECK(a.batch_size * 2 <= a.samples, UsageError, "--samples ", a.samples, " must hold at least two batches of ", a.batch_size);
  const auto problem = dg::make_toy_problem(
      dg::ToyProblemOptions().inputs(a.inputs).hidden(a.hidden).samples(a.samples).batch_size(a.batch_size).seed(a.seed));
  const auto& params = problem.params;
  const auto nb = static_cast<std::int64_t>(problem.batches.size());
  const dg::HessianOperator full(params, problem.loss, problem.batches);  // for the full-data loss
  // Minibatch SGD over the problem's batches, reshuffled every epoch.
  auto gen = at::detail::createCPUGenerator(a.seed + 17);
  std::vector<torch::Tensor> checkpoints{dg::flatten_tensors(params).clone()};
  std::vector<std::pair<std::int64_t, torch::Tensor>> measured{{0, checkpoints.front()}};
  torch::Tensor perm;
  for (std::int64_t step = 1; step <= a.steps; ++step) {
    const auto pos = (step - 1) % nb;
    if (pos == 0) perm = torch::randperm(nb, gen, torch::TensorOptions().dtype(torch::kInt64));
    const auto& batch = problem.batches[static_cast<std::size_t>(perm[pos].item<std::int64_t>())];
    const auto g = torch::autograd::grad({problem.loss(batch)}, params);
    {
      torch::NoGradGuard ng;
      for (std::size_t i = 0; i < params.size(); ++i) params[i].sub_(g[i], a.lr);
    }
    if (step % a.every == 0 || step == a.steps) checkpoints.push_back(dg::flatten_tensors(params).clone());
    if (step % a.measure_every == 0 || step == a.steps) measured.emplace_back(step, dg::flatten_tensors(params).clone());
    if (progress && (step % a.measure_every == 0 || step == a.steps)) progress(step, a.steps, "SGD");
  }
  const double final_loss = full.loss_and_gradient().first;
  const auto dim = dg::total_numel(params);
  nlohmann::json traj_info;
  const auto basis = trajectory_basis(torch::stack(checkpoints), params, a.basis, a.k, traj_info);
  const auto kdim = basis.size(1);

  nlohmann::json rows = nlohmann::json::array();
  for (const auto& [step, theta] : measured) {
    {
      torch::NoGradGuard ng;
      const auto parts = dg::unflatten_like(theta, params);
      for (std::size_t i = 0; i < params.size(); ++i) params[i].copy_(parts[i]);
    }
    rows.push_back(commutator_row(a, problem, full, step, basis));
  }
  return {{"problem", "toy tanh MLP regression, minibatch SGD"},
          {"parameters", dim},
          {"samples", a.samples},
          {"batch_size", a.batch_size},
          {"batches", nb},
          {"learning_rate", a.lr},
          {"steps", a.steps},
          {"every", a.every},
          {"checkpoints", checkpoints.size()},
          {"final_loss", final_loss},
          {"eta", a.eta},
          {"pairs", a.pairs},
          {"basis", a.basis},
          {"k", a.k},
          {"basis_dim", kdim},
          {"random_bases", a.random_bases},
          {"trajectory", traj_info},
          {"expected_random_energy_fraction", static_cast<double>(kdim) / static_cast<double>(dim)},
          {"expected_random_rho", std::sqrt(static_cast<double>(kdim) / static_cast<double>(dim))},
          {"measurements", rows},
          {"initial", rows.front()},
          {"final", rows.back()},
          {"seed", a.seed}};
}

}  // namespace stablelearn::experiments
