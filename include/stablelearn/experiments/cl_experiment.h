// A continual-learning run on a classification stream, from one TOML file (shared/DESIGN.md
// "experiments/"): stream + model + strategy + continual evaluation → run directory.
//
//   [stream]     kind = "split-class" | "split-task" | "split-domain" | "permuted" | "rotated"
//                tasks (0 = the kind's default), seed, rotation_step, data_dir,
//                train_per_task / test_per_task (0 = all samples)
//   [model]      kind = "mlp" | "cnn", hidden, channels, fc
//   [strategy]   name = "finetune" | "joint" | "ewc" | ... and the strategy's own keys
//   [train]      epochs, batch_size, lr, optimizer = "sgd" | "adam", momentum, seed, device,
//                grokalign (λ of the GrokAlign Jacobian regulariser, 0 = off), grokalign_projections,
//                engine = "auto" | "autograd" (gradients without a graph where a step is plain)
//   [eval]       every (continual evaluation period in iterations, 0 = task ends only),
//                subset (samples per task, fixed and seeded), lca_beta
//   [diagnostics] every, samples, lanczos_steps, trace_probes, curvature (sharpness during training,
//                and the GrokAlign centroid alignment of the same images)
//   [output]     tensorboard, figures, log_every, snapshot_every
//   [backbone]   file (a `cl pretrain` backbone), freeze, adapter = "none" | "lora" | "bottleneck",
//                rank, alpha, train_head
//   [pretrain]   epochs, batch_size, lr, momentum, samples, seed (`stablelearn cl pretrain`)
//
// Streams are generated lazily (data/cl_task_stream.h): a task's training set exists while the task
// trains (joint: every seen task's), test sets are kept while they fit in 1 GiB and recomputed for
// every evaluation otherwise, so memory does not grow with the number of tasks.
//
// Run directory: config.toml (resolved), metrics.jsonl (one row per training log, tracking step
// and task end), accuracy_matrix.csv, summary.json, events.out.tfevents.* (TensorBoard scalars),
// accuracy_curves.svg (per-task accuracy against iteration), checkpoint.json (points at the last
// task's npz; --resume continues from there) + checkpoint_task<i>.npz (model and strategy state
// after task i, every task kept), and with [output] snapshot_every = K > 0, snapshots/ (the
// flattened parameters at iteration 0, every K iterations and at every task end:
// snapshots/iter_<8-digit global iteration>.npz, key "params", listed in snapshots/index.json).
//
// --resume compares the run's config.toml with the new resolved configuration after resolving the
// stored file with this build's defaults, so a key added since the run was made (absent there) is
// no mismatch when its new value is its default; the file is then rewritten in the current form.
// Any other difference is a ConfigError naming every differing key.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "stablelearn/core/config.h"
#include "stablelearn/core/options.h"
#include "stablelearn/data/cl_streams.h"
#include "stablelearn/models/adapters.h"
#include "stablelearn/models/classifier.h"

namespace stablelearn::distributed {
class ProcessGroup;
}  // namespace stablelearn::distributed

namespace stablelearn::experiments {

struct ClTrainOptions {
  std::int64_t epochs = 1;
  std::int64_t batch_size = 128;
  double lr = 0.01;
  std::string optimizer = "sgd";  ///< sgd | adam (state reset at the start of every task)
  double momentum = 0.0;          ///< sgd only
  std::int64_t seed = 0;
  std::string device = "cpu";     ///< cpu | cuda | auto
  /// λ of the GrokAlign Jacobian regulariser (Walker et al., arXiv 2506.12284;
  /// diagnostics/grokalign.h): every training step minimises CE + extra_loss + λ·R(x_batch), R the
  /// mean over the (adapted) batch of the estimate r_i of ‖J(x_i)‖_F, J the Jacobian of the logits
  /// the loss sees with respect to the input (all classes; the sample's task's classes in
  /// task-incremental runs), trained through (double backward). 0 = off (default); the paper uses
  /// 1e-3 with cross-entropy. Must be finite and >= 0.
  double grokalign = 0.0;
  /// P, random projections per sample of the GrokAlign estimate (default 1, as the reference);
  /// drawn fresh every step from a generator seeded by (train.seed, task): cl_grokalign_seed().
  std::int64_t grokalign_projections = 1;
  /// How a step computes its gradients: "auto" (default) uses models::MlpLossGrad — the ATen
  /// kernels of autograd without a graph, in buffers made once: the same numbers — where it applies
  /// (an mlp on the CPU, optimizer sgd, grokalign 0, a strategy with plain_updates()), autograd
  /// elsewhere; "autograd" always builds the graph (the reference path).
  std::string engine = "auto";
  void fields(options::Visitor& v);  ///< its keys (core/options.h)
};

struct ClEvalOptions {
  std::int64_t every = 0;     ///< continual evaluation period in iterations (0 = task ends only)
  std::int64_t subset = 1000; ///< evaluation samples per task for continual evaluation
  std::int64_t lca_beta = 10;
  void fields(options::Visitor& v);  ///< its keys (core/options.h)
};

/// [diagnostics]: curvature of the training loss tracked during training (the stability lab,
/// docs/diagnostics.md). Every `every` iterations (and before the first update) the Hessian (or
/// Gauss–Newton matrix) of the cross-entropy on `samples` fixed, seeded training images of the
/// current task: λ_max by Lanczos (`lanczos_steps`) against the GD stability bound 2/η, and, with
/// `trace_probes` > 0, the Hutchinson trace with its standard error.
struct ClDiagnosticsOptions {
  std::int64_t every = 0;            ///< 0 = off
  std::int64_t samples = 256;
  std::int64_t lanczos_steps = 20;
  std::int64_t trace_probes = 0;
  std::string curvature = "hessian";  ///< hessian | ggn
  void fields(options::Visitor& v);  ///< its keys (core/options.h)
};

struct ClOutputOptions {
  bool tensorboard = true;
  bool figures = true;
  std::int64_t log_every = 50;  ///< iterations between training-loss rows in metrics.jsonl
  /// Iterations between parameter snapshots in RUN/snapshots/ (0 = off). When on, a snapshot is
  /// also taken before the first update and at the end of every task (after the strategy's
  /// after_task, i.e. the weights of checkpoint_task<i>.npz). For trajectory PCA / RELEX
  /// (`stablelearn diagnose trajectory RUN`). Cost: 4·D bytes per snapshot (float32).
  std::int64_t snapshot_every = 0;
  /// Tasks between rewrites of accuracy_matrix.csv, summary.json and the figures (each holds the
  /// whole accuracy matrix, O(tasks done × tasks) to write); they are also written after the last
  /// task of the run (or of --stop-after). 1 = after every task (default); long streams: e.g. 50.
  std::int64_t report_every = 1;
  void fields(options::Visitor& v);  ///< its keys (core/options.h)
};

/// One entry of RUN/snapshots/index.json.
struct ClSnapshot {
  std::int64_t iteration = 0;  ///< global iteration: parameter updates before the snapshot
  std::int64_t task = 0;       ///< the task being trained (0 for the snapshot before training)
  bool task_end = false;       ///< taken at the end of `task` (after after_task)
  std::string file;            ///< relative to RUN/snapshots
};

struct ClStreamOptions {
  /// tasks = 0: the kind's default (split 5, permuted 10, rotated 20), resolved by ClExperiment.
  data::StreamOptions stream{data::StreamKind::SplitClassIncremental, 0, 0, 9.0};
  std::string data_dir = "/usr/share/datasets/fashion-mnist";
  std::int64_t train_per_task = 0;  ///< 0 = all
  std::int64_t test_per_task = 0;
  /// Label noise on every task's training labels (robust/label_noise.h), among the task's own
  /// labels: none | symmetric | asymmetric (label c → the task's next label).
  std::string label_noise = "none";
  double label_noise_rate = 0;
  std::int64_t label_noise_seed = 0;
  void fields(options::Visitor& v);  ///< its keys (core/options.h)
};

/// [backbone]: start from a pre-trained backbone file (`stablelearn cl pretrain`, cl_backbone.h)
/// and/or train adapters on it (models/adapters.h). With the defaults (no file, freeze = false,
/// adapter = "none") the run is the plain one. freeze or an adapter make the trainable parameters
/// (ctx.params, checkpoints, snapshots) the adapters, the output layer (train_head) and the
/// backbone's weights unless frozen.
struct ClBackboneOptions : models::AdapterOptions {
  std::string file;  ///< backbone npz (cl_backbone.h); "" = the model's own initialisation
  ClBackboneOptions() { freeze = false; }
  void fields(options::Visitor& v);
  /// The model's forward is replaced (a frozen backbone or adapters).
  bool adapted() const { return freeze || kind != "none"; }
};

/// [pretrain]: `stablelearn cl pretrain` trains the [model] on the part of Fashion-MNIST the
/// [stream] does not use and writes backbone.file: split streams with fewer than 5 tasks, the
/// classes left out (all their training images); permuted and rotated streams, the training images
/// after the first stream.train_per_task ones, untransformed.
struct ClPretrainOptions {
  std::int64_t epochs = 2;
  std::int64_t batch_size = 128;
  double lr = 0.05;
  double momentum = 0.9;
  std::int64_t samples = 0;  ///< pre-training images (0 = every image left out of the stream)
  std::int64_t seed = 0;     ///< initialisation and batch order
  void fields(options::Visitor& v);
};

/// Every table of a `cl run` config but [strategy] (read by the strategy registry).
struct ClConfig {
  ClStreamOptions stream;
  models::ClassifierOptions model;
  ClTrainOptions train;
  ClEvalOptions eval;
  ClOutputOptions out;
  ClDiagnosticsOptions diag;
  ClBackboneOptions backbone;
  ClPretrainOptions pretrain;
  void fields(options::Visitor& v);
};

/// What `stablelearn cl pretrain` did (also written next to the backbone as FILE.json).
struct ClPretrainResult {
  std::filesystem::path file;
  std::string source;                  ///< which images, in words
  std::vector<std::int64_t> classes;   ///< classes of the pre-training images
  std::int64_t train_samples = 0, test_samples = 0;
  double train_accuracy = 0, test_accuracy = -1;  ///< −1: no held-out test images
  double seconds = 0;
};

/// Progress of a run, reported every iteration and at every evaluation.
struct ClProgress {
  std::int64_t task = 0, tasks = 0, iteration = 0, iterations = 0;  ///< iteration within the task
  double loss = 0;
  double mean_seen_accuracy = -1;  ///< latest accuracy averaged over seen tasks (−1 = none yet)
  double elapsed = 0;
};

struct ClResult {
  std::string strategy;                       ///< the strategy's name
  std::vector<std::vector<double>> accuracy;  ///< rows for finished tasks
  std::vector<double> init_accuracy;
  std::vector<double> train_seconds;
};

struct ClRunView;

class ClExperiment {
 public:
  /// Parses and validates the whole configuration (ConfigError naming the key on any problem)
  /// before anything is loaded or trained.
  explicit ClExperiment(const Config& config);
  ~ClExperiment();
  /// The resolved configuration (every default filled in), as written to RUN/config.toml.
  std::string resolved_config() const;
  /// Trains into `run_dir`. With `resume`, continues after the last completed task (ConfigError
  /// when the run's config.toml differs). `stop_after` > 0 ends after that many tasks.
  ///
  /// With `group` (a distributed run, distributed/process_group.h: every rank calls run with the
  /// same configuration and arguments) the ranks train data-parallel: each takes its contiguous
  /// shard of every global batch (train.batch_size, drawn in the same order on every rank), the
  /// gradients are all-reduced so that every rank takes the 1-process step, and rank 0 alone
  /// writes `run_dir`. ConfigError before anything is written when the ranks' configurations
  /// differ, for a strategy other than finetune or ewc (replay and batch-dependent strategies are
  /// not supported yet), train.grokalign > 0, train.device other than cpu, or `resume`.
  /// Trains the [model] on the data the [stream] leaves out ([pretrain], ClPretrainOptions) and
  /// writes the backbone to `out` (default: backbone.file) and its report to `out`.json.
  /// ConfigError naming the key when the stream leaves nothing out.
  ClPretrainResult pretrain(std::filesystem::path out, const std::function<void(std::int64_t, std::int64_t, double)>& progress = {}) const;
  ClResult run(const std::filesystem::path& run_dir, bool resume,
               const std::function<void(const ClProgress&)>& progress = {}, std::int64_t stop_after = -1,
               distributed::ProcessGroup* group = nullptr);

 private:
  friend ClRunView load_cl_run(const std::filesystem::path& run_dir);
  struct Impl;
  std::unique_ptr<Impl> p_;
};

/// A finished (or stopped) `cl run` loaded back for analysis (`stablelearn diagnose ... RUN`): the
/// model with the weights of the last checkpoint, the stream rebuilt from the run's config.toml
/// (same seeds, so the same tasks), and the masks a task-incremental run uses.
struct ClRunView {
  std::filesystem::path run_dir;
  models::Classifier model{nullptr};
  std::vector<data::ClTask> tasks;
  std::int64_t completed_tasks = 0;
  bool task_incremental = false;
  /// [train] grokalign of the run (λ of the GrokAlign regulariser it was trained with; 0 = none).
  double grokalign = 0.0;
  /// Logits of images x of task `task` (masked to the task's classes in task-incremental runs).
  torch::Tensor logits(const torch::Tensor& x, std::int64_t task) const;
  /// The outputs GrokAlign sees for images x of task `task` under weights `w` (model->weights()
  /// layout): all logits, or in task-incremental runs only the columns of the task's classes (the
  /// −∞ entries of logits() dropped, so the result can be differentiated twice). [n, K].
  torch::Tensor head_logits(const torch::Tensor& x, std::int64_t task, const std::vector<torch::Tensor>& w) const;
  /// The model's weights after task `task` (0-based, < completed_tasks), read from
  /// RUN/checkpoint_task<task>.npz or, if that file is missing (runs made before every task-end
  /// checkpoint was kept), from the task-end snapshot. The returned tensors have the layout of
  /// model->weights(); the model itself is not changed. IoError when neither exists.
  std::vector<torch::Tensor> task_weights(std::int64_t task) const;
};
/// Loads RUN/config.toml and RUN/checkpoint.json (+ its npz). IoError/DataError naming the file.
ClRunView load_cl_run(const std::filesystem::path& run_dir);

/// RUN/snapshots/index.json, in iteration order; empty when the run has no snapshots (no index).
/// DataError naming the file for a corrupt index.
std::vector<ClSnapshot> list_cl_snapshots(const std::filesystem::path& run_dir);
/// The flattened parameters [D] (float32, the order of Classifier::weights()) of one snapshot.
torch::Tensor load_cl_snapshot(const std::filesystem::path& run_dir, const ClSnapshot& snapshot);

/// The seed of the generator of the GrokAlign projections while a run with [train] seed = `seed`
/// trains task `task` (one generator per task, so a resumed run draws the same projections).
/// Equals diagnostics::GrokAlign's generator for GrokAlignOptions().seed(cl_grokalign_seed(...)).
std::uint64_t cl_grokalign_seed(std::int64_t seed, std::int64_t task);

/// The stream kinds with one-line descriptions (for `stablelearn list streams`).
std::vector<std::pair<std::string, std::string>> stream_kinds();

}  // namespace stablelearn::experiments
