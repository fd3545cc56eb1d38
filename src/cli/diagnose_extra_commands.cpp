// stablelearn diagnose commutator: the SGD commutator defect on the built-in toy problem and its
// energy in the span of the top trajectory-PCA directions against random subspaces (Xu 2026,
// arXiv 2602.10496, skydancerosel/bubble-modadd; diagnostics/commutator.h, docs/diagnostics.md).
// Prints one JSON object on stdout.
#include <chrono>
#include <cmath>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <ATen/CPUGeneratorImpl.h>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "stablelearn/core/error.h"
#include "stablelearn/diagnostics/commutator.h"
#include "stablelearn/diagnostics/curvature.h"
#include "stablelearn/diagnostics/toy_problem.h"
#include "stablelearn/diagnostics/trajectory.h"

namespace stablelearn::cli {
namespace {

namespace dg = diagnostics;

struct CommutatorArgs {
  std::int64_t inputs = 2, hidden = 16, samples = 256, batch_size = 16;
  double lr = 0.1;
  std::int64_t steps = 1500, every = 10, measure_every = 500;
  double eta = 1e-3;
  std::int64_t pairs = 9, k = 3, random_bases = 10;
  std::string basis = "global";
  std::uint64_t seed = 0;
};

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

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

void add_diagnose_extra_commands(CLI::App* diag, CommandRegistry& reg) {
  // diagnose commutator
  auto a = std::make_shared<CommutatorArgs>();
  auto* cmd = diag->add_subcommand(
      "commutator",
      "SGD commutator defect ||theta_AB - theta_BA|| / (eta^2 |g_A| |g_B|) along minibatch SGD on the toy MLP, and its energy in "
      "the top-k trajectory-PCA subspace vs random k-dim subspaces (Xu 2026)");
  cmd->add_option("--inputs", a->inputs, "Toy: input dimension")->capture_default_str()->check(CLI::Range(2, 1 << 20));
  cmd->add_option("--hidden", a->hidden, "Toy: hidden width")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--samples", a->samples, "Training samples N")->capture_default_str()->check(CLI::Range(2, 1 << 24));
  cmd->add_option("--batch-size", a->batch_size, "SGD batch size (also the size of the batches A and B)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--lr", a->lr, "SGD learning rate of the training run")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--steps", a->steps, "SGD steps")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--every", a->every, "Steps between trajectory checkpoints (step 0 included)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--measure-every", a->measure_every, "Steps between commutator measurements (step 0 and the last step always)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--eta", a->eta, "Step eta of the two SGD orders of the commutator")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--pairs", a->pairs, "Batch pairs K per measurement (median and 90th percentile over them)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("-k", a->k, "Trajectory-PCA directions in the basis (per tensor with --basis per-tensor)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--basis", a->basis, "global (PCA of the whole parameter trajectory) or per-tensor (PCA per weight tensor, QR'd together)")
      ->capture_default_str()
      ->check(CLI::IsMember({"global", "per-tensor"}));
  cmd->add_option("--random-bases", a->random_bases, "Random k-dim bases per pair for the baseline rho_rand")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--seed", a->seed, "Seed of the problem, the batch order, the pairs and the random bases")->capture_default_str();
  cmd->footer(
      "The basis is the PCA of the whole trajectory (computed after training); the commutator is measured at the stored\n"
      "parameters of steps 0, M, 2M, ... and the last step. energy_fraction = |B^T delta|^2 / |delta|^2 (random: k/D),\n"
      "rho = |B B^T delta| / |delta| (random: ~sqrt(k/D)).\n"
      "Example: stablelearn diagnose commutator --steps 1500 --measure-every 500 -k 3");
  reg.add(cmd, [a]() {
    const auto t0 = std::chrono::steady_clock::now();
    SL_CHECK(a->batch_size * 2 <= a->samples, UsageError, "--samples ", a->samples, " must hold at least two batches of ",
             a->batch_size);
    const auto problem = dg::make_toy_problem(dg::ToyProblemOptions()
                                                  .inputs(a->inputs)
                                                  .hidden(a->hidden)
                                                  .samples(a->samples)
                                                  .batch_size(a->batch_size)
                                                  .seed(a->seed));
    const auto& params = problem.params;
    const auto nb = static_cast<std::int64_t>(problem.batches.size());
    const dg::HessianOperator full(params, problem.loss, problem.batches);  // for the full-data loss
    // Minibatch SGD over the problem's batches, reshuffled every epoch.
    auto gen = at::detail::createCPUGenerator(a->seed + 17);
    std::vector<torch::Tensor> checkpoints{dg::flatten_tensors(params).clone()};
    std::vector<std::pair<std::int64_t, torch::Tensor>> measured{{0, checkpoints.front()}};
    torch::Tensor perm;
    for (std::int64_t step = 1; step <= a->steps; ++step) {
      const auto pos = (step - 1) % nb;
      if (pos == 0) perm = torch::randperm(nb, gen, torch::TensorOptions().dtype(torch::kInt64));
      const auto& batch = problem.batches[static_cast<std::size_t>(perm[pos].item<std::int64_t>())];
      const auto g = torch::autograd::grad({problem.loss(batch)}, params);
      {
        torch::NoGradGuard ng;
        for (std::size_t i = 0; i < params.size(); ++i) params[i].sub_(g[i], a->lr);
      }
      if (step % a->every == 0 || step == a->steps) checkpoints.push_back(dg::flatten_tensors(params).clone());
      if (step % a->measure_every == 0 || step == a->steps) measured.emplace_back(step, dg::flatten_tensors(params).clone());
    }
    const double final_loss = full.loss_and_gradient().first;
    const auto dim = dg::total_numel(params);
    nlohmann::json traj_info;
    const auto basis = trajectory_basis(torch::stack(checkpoints), params, a->basis, a->k, traj_info);
    const auto kdim = basis.size(1);

    nlohmann::json rows = nlohmann::json::array();
    for (const auto& [step, theta] : measured) {
      {
        torch::NoGradGuard ng;
        const auto parts = dg::unflatten_like(theta, params);
        for (std::size_t i = 0; i < params.size(); ++i) params[i].copy_(parts[i]);
      }
      const auto s = dg::commutator_statistics(params, problem.loss, problem.batches,
                                               dg::CommutatorOptions()
                                                   .learning_rate(a->eta)
                                                   .pairs(a->pairs)
                                                   .random_bases(a->random_bases)
                                                   .seed(a->seed + static_cast<std::uint64_t>(step)),
                                               basis);
      nlohmann::json pairs = nlohmann::json::array();
      for (const auto& [ia, ib] : s.pairs) pairs.push_back({ia, ib});
      rows.push_back({{"step", step},
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
                      {"median_perpendicular_energy", 1.0 - s.median_energy_fraction}});
    }
    nlohmann::json out = {{"problem", "toy tanh MLP regression, minibatch SGD"},
                          {"parameters", dim},
                          {"samples", a->samples},
                          {"batch_size", a->batch_size},
                          {"batches", nb},
                          {"learning_rate", a->lr},
                          {"steps", a->steps},
                          {"every", a->every},
                          {"checkpoints", checkpoints.size()},
                          {"final_loss", final_loss},
                          {"eta", a->eta},
                          {"pairs", a->pairs},
                          {"basis", a->basis},
                          {"k", a->k},
                          {"basis_dim", kdim},
                          {"random_bases", a->random_bases},
                          {"trajectory", traj_info},
                          {"expected_random_energy_fraction", static_cast<double>(kdim) / static_cast<double>(dim)},
                          {"expected_random_rho", std::sqrt(static_cast<double>(kdim) / static_cast<double>(dim))},
                          {"measurements", rows},
                          {"initial", rows.front()},
                          {"final", rows.back()},
                          {"seed", a->seed},
                          {"seconds", seconds_since(t0)}};
    std::cout << out.dump(2) << "\n";
    return 0;
  });
}

}  // namespace stablelearn::cli
