// stablelearn diagnose commutator: the SGD commutator defect on the built-in toy problem and its
// energy in the span of the top trajectory-PCA directions against random subspaces (Xu 2026,
// arXiv 2602.10496, skydancerosel/bubble-modadd; diagnostics/commutator.h, docs/diagnostics.md).
// The experiment is experiments::run_commutator (toy_experiments.h), shared with `repro commutator`.
// Prints one JSON object on stdout.
#include <chrono>
#include <cmath>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "diagnose_common.h"
#include "stablelearn/experiments/toy_experiments.h"

namespace stablelearn::cli {
void add_diagnose_extra_commands(CLI::App* diag, CommandRegistry& reg) {
  // diagnose commutator
  auto a = std::make_shared<experiments::CommutatorExperimentOptions>();
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
    auto out = experiments::run_commutator(*a);
    out["seconds"] = seconds_since(t0);
    std::cout << out.dump(2) << "\n";
    return 0;
  });
}

}  // namespace stablelearn::cli
