// The small training-dynamics experiments of docs/diagnostics.md, as library functions shared by
// `stablelearn diagnose edge-of-stability|sgd-minimum|trajectory|intrinsic-dim|commutator` (which
// print the returned report) and the `stablelearn repro` entries (which state the papers' claims as
// checks on it). Each returns the JSON report the diagnose command prints, without "seconds".
//
//   edge-of-stability  full-batch GD on the toy MLP, λ_max against 2/η (Cohen et al. 2021)
//   sgd-minimum        SGD on a Fashion-MNIST subset, then λ_max vs 2/η, tr H vs 2/(ηp) there
//                      (Wu & Su 2023; Mulayoff & Michaeli 2023)
//   trajectory         PCA of SGD checkpoints (explained variance, r₉₀, effective rank)
//   intrinsic-dim      d_int90 by training in random subspaces (Li et al. 2018)
//   commutator         SGD commutator defect and its energy in the trajectory-PCA subspace (Xu 2026)
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/types.h>

#include "stablelearn/diagnostics/curvature.h"
#include "stablelearn/diagnostics/intrinsic_dimension.h"
#include "stablelearn/diagnostics/stability.h"
#include "stablelearn/models/classifier.h"

namespace stablelearn::experiments {

// ---- shared pieces ------------------------------------------------------------------------------

/// Consecutive batches of `batch` rows of (x, y) (the last may be shorter).
std::vector<diagnostics::Batch> make_batches(const torch::Tensor& x, const torch::Tensor& y, std::int64_t batch);
/// A tensor's values as float64.
std::vector<double> to_vector(const torch::Tensor& t);
/// The JSON block of a stability report (λ_max vs 2/η, tr H vs 2/(ηp), ...; docs/diagnostics.md).
nlohmann::json stability_json(const diagnostics::StabilityReport& s);
/// λ_max (largest algebraic) by Lanczos with min(steps, D) steps from a seeded start.
double top_eigenvalue(const diagnostics::CurvatureOperator& op, std::int64_t steps, std::uint64_t seed);

/// A Fashion-MNIST subset and a classifier, by default an MLP (sgd-minimum, trajectory, intrinsic-dim).
struct FmnistOptions {
  std::string data_dir = "/usr/share/datasets/fashion-mnist";  ///< the IDX files
  std::int64_t samples = 1000;       ///< training images N (the first N of the training set)
  std::int64_t test_samples = 1000;  ///< test images (the first of the test set)
  std::string kind = "mlp";          ///< models::ClassifierOptions::kind: mlp or cnn
  std::vector<std::int64_t> hidden{50};  ///< hidden widths of the MLP
  std::vector<std::int64_t> channels{32, 64};  ///< cnn: channels of the two conv blocks
  std::int64_t fc = 128;             ///< cnn: width of the fully connected layer
  std::uint64_t seed = 0;            ///< initialisation (torch::manual_seed), batch order, probes
};

/// A classifier and its data, with the loss the experiments train.
struct FmnistProblem {
  models::Classifier model{nullptr};
  std::vector<torch::Tensor> params;
  torch::Tensor x, y, x_test, y_test;  ///< images [N, 1, 28, 28] and int64 labels
  /// mse: ½‖f − onehot‖² over the 10 logits; ce: cross-entropy; mse-scalar: a scalar-output
  /// network f = first logit, ½(f − t)² with t = +1 for classes 0–4 and −1 for 5–9 (rank-one
  /// per-sample Hessians at interpolation, the setting of the trace condition).
  std::string loss_name;
  /// Logit columns the loss and accuracy see (a task-incremental `cl run` task's classes, labels
  /// re-indexed into them); undefined = all logits.
  torch::Tensor columns;

  torch::Tensor logits(const torch::Tensor& images) const;
  torch::Tensor loss_of(const torch::Tensor& z, const torch::Tensor& labels) const;
  diagnostics::LossFn loss_fn() const;
  double accuracy(const torch::Tensor& images, const torch::Tensor& labels) const;
  double full_loss() const;
};

/// Loads the subset and builds the classifier (seeded with options.seed) in `dtype`. DataError / IoError
/// for missing data.
FmnistProblem make_fmnist_problem(const FmnistOptions& options, const std::string& loss, torch::Dtype dtype);

/// Minibatch SGD (batches of B drawn without replacement, reshuffled every epoch from `seed`) with a
/// callback every `every` steps (and at step 0 and at the end). Returns the steps taken.
std::int64_t train_sgd(FmnistProblem& p, std::int64_t epochs, std::int64_t batch, double lr, std::uint64_t seed,
                       std::int64_t every, const std::function<void(std::int64_t)>& callback);

/// Progress of an experiment: `done` of `total` units (steps, dimensions) with a short detail.
using ExperimentProgress = std::function<void(std::int64_t done, std::int64_t total, const std::string& detail)>;

// ---- edge of stability --------------------------------------------------------------------------

struct EdgeOfStabilityOptions {
  std::int64_t inputs = 2, hidden = 16;  ///< toy MLP (diagnostics/toy_problem.h)
  std::int64_t samples = 64;             ///< one full batch
  std::int64_t steps = 1000;             ///< GD steps
  std::int64_t every = 50;               ///< steps between sharpness measurements
  std::int64_t lanczos_steps = 20;       ///< Lanczos steps per measurement
  double lr = 1.0;                       ///< η
  std::uint64_t seed = 0;                ///< problem and Lanczos start
};
struct EdgeOfStabilityResult {
  nlohmann::json report;        ///< as `diagnose edge-of-stability` prints it
  std::vector<double> losses;   ///< full-data loss before every GD step and after the last
};
/// Full-batch GD with MSE on the toy MLP, λ_max every `every` steps against 2/η.
EdgeOfStabilityResult run_edge_of_stability(const EdgeOfStabilityOptions& o, const ExperimentProgress& progress = {});

// ---- SGD minimum --------------------------------------------------------------------------------

/// Minibatch SGD on a Fashion-MNIST subset (sgd-minimum, trajectory).
struct SgdTrainingOptions {
  FmnistOptions data;
  std::string loss = "mse";  ///< mse, mse-scalar or ce (FmnistProblem::loss_name)
  double lr = 0.05;          ///< η
  std::int64_t batch_size = 1, epochs = 10;
};
struct SgdMinimumOptions : SgdTrainingOptions {};
/// Trains with SGD (float64), then the stability check of the full-data Hessian there.
nlohmann::json run_sgd_minimum(const SgdMinimumOptions& o, const ExperimentProgress& progress = {});

// ---- weight trajectory --------------------------------------------------------------------------

struct TrajectoryOptions : SgdTrainingOptions {
  TrajectoryOptions() {
    batch_size = 32;
    epochs = 5;
  }
  std::int64_t every = 20;      ///< SGD steps between checkpoints
  std::int64_t components = 3;  ///< explained-variance ratios reported
};
/// Trains with SGD (float64), checkpoints every `every` steps, PCA of the checkpoints.
nlohmann::json run_trajectory(const TrajectoryOptions& o, const ExperimentProgress& progress = {});
/// The same PCA report for a Gaussian random walk with `checkpoints` points in `dim` dimensions (the
/// baseline a trajectory's low rank is compared with), drawn from `seed`.
nlohmann::json random_walk_trajectory(std::int64_t checkpoints, std::int64_t dim, std::int64_t components, std::uint64_t seed);

// ---- intrinsic dimension ------------------------------------------------------------------------

/// The sweep of diagnostics::intrinsic_dimension_sweep on `p` (its parameters are θ₀) and the JSON
/// report of `diagnose intrinsic-dim` (rows, both d_int90, the full model); `projection` names the
/// projection of `options` for the report. `row` (optional) sees every finished d.
nlohmann::json intrinsic_dimension_report(FmnistProblem& p, const diagnostics::IntrinsicDimensionOptions& options,
                                          const std::string& projection,
                                          const std::function<void(const diagnostics::IntrinsicDimensionRow&)>& row = {});

// ---- SGD commutator -----------------------------------------------------------------------------

struct CommutatorExperimentOptions {
  std::int64_t inputs = 2, hidden = 16, samples = 256, batch_size = 16;
  double lr = 0.1;  ///< SGD rate of the training run
  std::int64_t steps = 1500, every = 10, measure_every = 500;
  double eta = 1e-3;  ///< step of the two SGD orders of the commutator
  std::int64_t pairs = 9, k = 3, random_bases = 10;
  std::string basis = "global";  ///< global or per-tensor trajectory-PCA basis
  std::uint64_t seed = 0;
};
/// Minibatch SGD on the toy MLP, the trajectory-PCA basis, and the commutator statistics at steps
/// 0, M, 2M, ... and the last. UsageError when k exceeds the trajectory's rank or the samples do
/// not hold two batches.
nlohmann::json run_commutator(const CommutatorExperimentOptions& o, const ExperimentProgress& progress = {});

}  // namespace stablelearn::experiments
