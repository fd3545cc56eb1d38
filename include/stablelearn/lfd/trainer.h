// Continual learning from demonstration with hypernetwork-generated neural ODEs
// (Auddy et al., "Scalable and Efficient Continual Learning from Demonstration via a
// Hypernetwork-generated Stable Dynamics Model", arXiv 2311.03600; shared/specs/clfd-snode.md §3).
//
// For every task i of the sequence: a new task embedding e_i ~ N(0, 1); the hypernetwork outputs
// of all earlier tasks are stored (detached) as regularisation targets; fresh Adam optimisers for
// θ and e_i; each iteration draws a window of `tsub` samples of all demonstrations, integrates the
// generated target network with Euler on the data grid from the window's first state, and takes
// L_task = MSE(prediction, window). e_i steps on ∂L_task; θ steps on ∂L_task + β ∂Reg(θ + Δθ)/∂θ
// with Δθ the Adam look-ahead and Reg the output regulariser over all past tasks (num_regs = 0) or
// over num_regs sampled ones. The copy after the best (lowest pre-step loss) iteration is kept.
// After each task every task seen so far is evaluated (§3.6) and a checkpoint is written.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>
#include <torch/types.h>

#include "stablelearn/core/config.h"
#include "stablelearn/core/options.h"
#include "stablelearn/lfd/hnet_training.h"
#include "stablelearn/lfd/trajectory_metrics.h"

namespace stablelearn::distributed {
class ProcessGroup;
}

namespace stablelearn::lfd {

/// [diagnostics]: curvature of the training loss recorded during training (docs/lfd.md §5; the
/// same keys and meaning as `cl run`'s table, docs/continual.md). Every `every` iterations of a
/// task (iteration n = every, 2 every, ...), after update n, on the window drawn for update n:
/// the task loss L_task = mean((Ŷ − Y)²) over the N elements of the rolled-out window Ŷ(θ)
/// (regulariser/penalty excluded) w.r.t. the tensors it is differentiated against (hnet: θ and
/// e_i; baselines: the learning network and, if conditioned, the embedding).
/// The curvature matrix C is the Hessian ∇²L_task (curvature = "hessian": Hessian-vector products
/// by double backward) or the Gauss–Newton matrix G = (2/N) JᵀJ, J = ∂Ŷ/∂θ (curvature = "ggn":
/// the Hessian without the residual term, positive semi-definite; Schraudolph 2002; products by
/// the double-VJP trick, diagnostics::GaussNewtonOperator). `metrics` chooses what each row records:
///   lambda_max — λ_max(C) by Lanczos (+ its residual);  grad_norm — ‖∇L_task‖;
///   loss — L_task;  trace — Hutchinson's tr(C) with `trace_probes` probes (+ standard error).
/// 2/η is always recorded for reference (the GD threshold of Cohen et al. 2021; Adam's
/// preconditioned bound is not measured).
struct LfdDiagnostics {
  std::int64_t every = 0;          ///< iterations between measurements; 0 = off (default)
  std::int64_t lanczos_steps = 20; ///< Lanczos steps for λ_max (>= 2; capped at the parameter count)
  /// Hutchinson probes for tr(C): 0 = no trace, else >= 2. "trace" is recorded exactly when
  /// trace_probes > 0: with the default `metrics` it is added; an explicit `metrics` must list
  /// "trace" if and only if trace_probes > 0 (ConfigError otherwise, so neither is silently ignored).
  std::int64_t trace_probes = 0;
  std::string curvature = "hessian";  ///< hessian | ggn (Gauss–Newton, see above)
  /// Subset of known_metrics(), in that order; empty = the default: lambda_max, grad_norm, loss
  /// (+ trace when trace_probes > 0), the rows recorded before this key existed.
  std::vector<std::string> metrics;
  bool enabled() const { return every > 0; }
  void fields(options::Visitor& v);
  /// The names `metrics` may contain: lambda_max, grad_norm, loss, trace.
  static const std::vector<std::string>& known_metrics();
  /// `metrics`, or the default when it is empty.
  std::vector<std::string> resolved_metrics() const;
  /// Whether rows record `name` (one of known_metrics()).
  bool records(const std::string& name) const;
};

struct LfdConfig {
  // [data]
  std::string dataset = "lasa2d";   ///< lasa2d | lasa8d | lasa16d | lasa32d | helloworld | robottasks9
  std::string root;                 ///< data root ("" = default: $STABLELEARN_DATA or data/)
  std::string sequence;             ///< sequence file ("" = the data set's full sequence)
  std::int64_t tasks = 0;           ///< train on the first `tasks` tasks (0 = all)
  double tangent_vec_scale = 1.0;   ///< RoboTasks9 tangent-vector scale (spec §1.6)
  // [model]
  /// hnet (hypernetwork, this file) | sg | ft | rep | si | mas (baselines, lfd/baselines.h, spec §7)
  std::string method = "hnet";
  std::string target = "snode";     ///< snode (stable, LSDDM-based, §2.3) | node (MLP, §2.2)
  std::string hnet = "chn";         ///< chn (chunked, §2.5) | hn (one head per tensor, §2.4)
  std::int64_t fhat_layers = 3;     ///< sNODE: hidden layers of f̂ (--fhat_layers)
  std::int64_t h = 1000;            ///< sNODE: width of f̂ (--lsddm_h)
  std::int64_t hp = 100;            ///< sNODE: ICNN width (--lsddm_hp)
  double alpha = 0.5;               ///< sNODE: decay rate α of V̇ ≤ −αV (--lsddm_a)
  double rehu = 0.01;               ///< sNODE: ReHU δ of the ICNN (--lsddm_rehu)
  double eps = 1e-4;                ///< sNODE: ε‖z‖² term of V (--lsddm_projfn_eps)
  std::vector<std::int64_t> tnet_hidden{1000, 1000, 1000};  ///< NODE: hidden widths (--tnet_arch)
  bool explicit_time = true;        ///< time appended to the state (--explicit_time)
  /// sNODE: train, evaluate and check stability with the discrete-time map Φ_h at the data's period
  /// h (models/snode_discrete.h, docs/lfd.md §7) instead of Euler steps of the field: V(Φ_h(x)) <=
  /// e^{−κ α h} V(x) for every x and any weights, so the skill converges when executed at period h
  /// (runtime Skill::step_discrete). Needs target = "snode" and explicit_time = false. Default false.
  bool discrete_step = false;
  double discrete_kappa = 0.5;      ///< κ ∈ (0, 1] of Φ_h: the fraction of α each step achieves
  /// sNODE: centre the nominal field at the goal, f̂(x) − f̂(0) (models::SNodeOptions::center_fhat),
  /// so that the projected field vanishes at the goal and a short Euler step there contracts V
  /// instead of overshooting the goal (docs/lfd.md §7). Trains through the tensor path (the fused
  /// Euler rollout does not apply). Needs target = "snode". Default false.
  bool center_fhat = false;
  std::vector<std::int64_t> hnet_hidden{200, 200, 200};   ///< hypernetwork trunk (--hnet_arch)
  std::int64_t task_emb_dim = 256;  ///< te (--task_emb_dim)
  std::int64_t chunk_emb_dim = 256; ///< ce (--chunk_emb_dim)
  std::int64_t chunk_dim = 8192;    ///< C (--chunk_dim)
  /// Magnitude-invariant parametrisation of the hypernetwork (models/hypernetwork.h: embeddings at
  /// constant norm, output θ₀ + Δθ). method = "hnet" only. Default false (the paper's HN/CHN).
  bool mip = false;
  // [train]
  std::int64_t iterations = 15000;  ///< per task (--num_iter)
  double lr = 1e-4;                 ///< Adam learning rate for θ and e_i (--lr)
  std::int64_t tsub = 20;           ///< window length (--tsub)
  /// sNODE: train through the fused Euler rollout with its hand-written backward
  /// (models/snode_rollout.h); false = autograd through the tensor field (same values up to float
  /// rounding, several times slower). Diagnostics always use the tensor field. Not used with
  /// model.discrete_step (Φ has no fused form; it trains through its tensor ops).
  bool fused_rollout = true;
  /// HN: the heads (nearly all of θ) trained by hn_iteration_fused (lfd/hn_iteration.h), whose
  /// gradient is never formed; false = autograd through the whole hypernetwork (same values up to
  /// float rounding). CHN and data-parallel runs always take the autograd path.
  bool fused_heads = true;
  /// What training rolls out: "map" (default) = the skill's own map, i.e. Φ_h with
  /// model.discrete_step (training, evaluation and execution one map) and Euler otherwise;
  /// "euler" = plain Euler steps of the field even with model.discrete_step, which then still
  /// makes Φ_h what is evaluated, checked, exported and executed. With "euler" the fused rollout
  /// applies (several times faster than Φ's tensor path); Φ differs from the Euler step only where
  /// it pulls (docs/lfd.md §7.3).
  std::string train_rollout = "map";
  double beta = 0.005;              ///< regulariser weight (--beta); 0 = no regularisation (fine-tuning)
  std::int64_t num_regs = 1;        ///< past tasks regularised per iteration; 0 = all (--num_regs)
  std::int64_t seed = 100;          ///< everything random derives from it
  std::int64_t log_every = 100;     ///< iterations between metrics.jsonl rows
  double si_c = 0.3;                ///< SI penalty strength c (--si_c, spec §7)
  double si_xi = 0.3;               ///< SI damping ξ (--si_epsilon, spec §7)
  double mas_lambda = 0.1;          ///< MAS penalty strength λ (--mas_lambda, spec §7)
  std::int64_t mas_samples = 200;   ///< MAS: random (demonstration, time) states per task for Ω
  /// model.discrete_step, hnet: weight of the certificate penalty (docs/lfd.md §7.2), the mean over
  /// cert_samples states drawn per iteration in the task's 1.5× box of relu(log V(x + h f(x)) −
  /// log(e^{−καh} V(x))): zero where Φ_h takes the plain Euler step, so the trained field itself
  /// satisfies the decrease and execution pulls less. 0 = off. With it the logged loss is the window
  /// loss plus cert_weight × cert, and "cert" is logged too.
  double cert_weight = 0;
  std::int64_t cert_samples = 64;   ///< states per iteration of the certificate penalty
  // [eval]
  bool evaluate = true;             ///< evaluate all seen tasks after each task
  double dtw_threshold = 2191;      ///< CL accuracy: a demonstration counts if DTW < threshold
  std::string node_solver = "euler";///< NODE evaluation/training solver: euler | rk4 | dopri5
  // [diagnostics]
  LfdDiagnostics diagnostics;

  static LfdConfig from_config(const Config& cfg);  ///< ConfigError on unknown keys or bad values
  Config to_config() const;                         ///< every resolved value
  void fields(options::Visitor& v);                 ///< the keys of every table (core/options.h)
  void validate() const;                            ///< every rule (a config built in code)
  void cross_check() const;                         ///< the rules between fields
  /// Whether training integrates the discrete-time map Φ_h itself (model.discrete_step with
  /// train.rollout = "map"); otherwise it takes Euler steps of the field (fused where it applies).
  bool trains_through_map() const { return discrete_step && train_rollout == "map"; }
};

/// Parameter counts of a configuration without training (spec §2.6), for `lfd info`.
struct LfdParamCounts {
  std::int64_t target = 0;        ///< P: generated target-network parameters
  std::int64_t hypernetwork = 0;  ///< |θ| + N·te (N = tasks of the configured sequence)
  std::int64_t theta = 0;         ///< |θ|
  std::int64_t tasks = 0;
};
LfdParamCounts count_parameters(const LfdConfig& cfg);

/// Errors of one (train task i, eval task j) evaluation, per demonstration.
struct EvalCell {
  MetricSummary dtw, frechet, swept, quat;
  bool has_quat = false;
};

struct TrainProgress {
  std::int64_t task = 0, tasks = 0, iteration = 0, iterations = 0;
  double loss = 0, reg = 0, elapsed = 0;
};

/// Runs a whole continual-learning sequence into a run directory:
///   config.toml, summary.json, eval_results.json, metrics.jsonl, checkpoint.json + checkpoint_task<i>.npz
/// (+ sharpness.svg with [diagnostics])
class LfdTrainer {
 public:
  LfdTrainer(LfdConfig config, std::filesystem::path run_dir);
  ~LfdTrainer();
  /// Trains every task not yet completed. With `resume`, continues from RUN/checkpoint.json
  /// (ConfigError if the run directory's config differs from this one).
  /// `stop_after` > 0 stops once that many tasks are complete (a time-boxed or simulated-kill run;
  /// --resume continues it).
  /// `group` (a distributed run, see docs/distributed.md): every rank trains the same model on its
  /// shard of every window's demonstrations and of the past tasks the regulariser visits; the
  /// gradients are summed by all-reduces; rank 0 alone evaluates and writes the run directory.
  /// model.method = "hnet" only (ConfigError otherwise).
  void run(bool resume, const std::function<void(const TrainProgress&)>& progress = {}, std::int64_t stop_after = -1,
           distributed::ProcessGroup* group = nullptr);

  /// Results so far: cells[i][j] for j <= i.
  const std::vector<std::vector<EvalCell>>& evaluations() const;
  const std::vector<double>& train_seconds() const;

 private:
  struct State;
  std::unique_ptr<State> s_;
};

namespace detail {
struct RunParts;
}

/// A trained run loaded from its directory (config.toml + the last checkpoint): generates the
/// weights and vector field of every learned task.
class LfdRun {
 public:
  explicit LfdRun(const std::filesystem::path& run_dir);
  ~LfdRun();
  const LfdConfig& config() const;
  std::int64_t completed_tasks() const;
  /// Generated target weights of `task` (float32, in the target's layout order).
  std::vector<torch::Tensor> weights(std::int64_t task) const;
  /// The learned vector field of `task` in model coordinates (normalised; goal-centred for sNODE).
  /// `dtype`: the weights are cast to it (float64 for rollouts that compare V values closely).
  VectorField field(std::int64_t task, torch::Dtype dtype = torch::kFloat32) const;
  /// The configuration's solver on a time grid bound to `task` (weights cast to `dtype`): the ODE
  /// solver of training on field(), or the discrete-time map Φ with model.discrete_step.
  GridRollout rollout(std::int64_t task, torch::Dtype dtype = torch::kFloat32) const;
  /// The learned Lyapunov function V of `task` (sNODE only; UsageError for NODE).
  LyapunovFunction lyapunov(std::int64_t task, torch::Dtype dtype = torch::kFloat32) const;
  /// Raw demonstrations [M, T, dim], model-coordinate states [M, T, state_dim] (float64), time [T]
  /// (of demonstration 0), per-dimension mean/std of the positions, per-demonstration goals.
  struct TaskData {
    torch::Tensor raw, x, t, mean, std, goal;
    std::int64_t position_dim = 0;
  };
  TaskData task(std::int64_t task) const;
  const std::string& task_name(std::int64_t task) const;
  /// The training's evaluation of `task` (the sNODE windowed protocol, de-normalised DTW / Fréchet /
  /// swept (+ quaternion) errors against each demonstration) with another solver `rollout` on the
  /// task's time grid (model coordinates, float32 states).
  EvalCell evaluate(std::int64_t task, const GridRollout& rollout) const;

 private:
  std::unique_ptr<detail::RunParts> p_;
};

/// Stability of a learned skill: rollouts from the demonstrations' starts plus random starts in a
/// box 1.5x the demonstrations' extent (model coordinates) with `method` on the data grid
/// (`substeps` solver steps per data step). A start converges when its final position is within
/// `tolerance` of the goal (raw units; default 2 % of the demonstrations' largest positional
/// extent).
///
/// Horizon: horizon_factor x T. With horizon_factor = 0 (automatic) it is 2 T, except for an
/// autonomous sNODE (explicit_time = false; docs/lfd.md): there ε‖x‖² <= V(x(t)) <= V(x0) e^{−αt}
/// in continuous time, so every start is within half the tolerance (a margin for the fixed-step
/// solver) after
///   t* = ln(max V(x0) / (ε (tol / (2 max std))²)) / α        (bound_horizon_seconds)
/// and the horizon is max(2 T, t*). Clock-input sNODE and NODE skills carry no such bound (spec
/// §8.1) and are reported as they are.
///
/// Solver: `auto` picks `discrete` for skills trained with model.discrete_step (the discrete-time
/// map Φ_h they were trained with, at the data's period: V(Φ(x)) <= e^{−κα h} V(x) for every start,
/// so t* uses κα; float32 as trained and executed), `certified` for other autonomous sNODE skills (Lyapunov-certified Euler,
/// models/odeint.h: every accepted sub-step has V(x') <= V(x) e^{−κα s}, so the bound holds on the
/// discrete trajectory with rate κα, and t* above uses κα; float64), else `euler` on the data grid
/// (how skills are trained and evaluated). Plain Euler follows the continuous-time bound only where
/// the data step is small for the field's stiffness (docs/lfd.md §2.2).
struct StabilityOptions {
  std::int64_t starts = 50;      ///< total starts (the M demonstration starts come first)
  double horizon_factor = 0;     ///< rollout length in multiples of T; 0 = automatic (see above)
  double tolerance = 0;          ///< raw units; 0 = 2 % of the demonstrations' extent
  std::uint64_t seed = 0;        ///< random starts
  std::int64_t substeps = 1;     ///< solver steps per data time step (1 = the data grid, as trained)
  /// auto (discrete for model.discrete_step skills, certified for other autonomous sNODE skills,
  /// else euler) | discrete (Φ_h; autonomous sNODE only) | certified | euler (as trained and
  /// evaluated) | rk4 | dopri5
  std::string method = "auto";
  /// certified: the fraction κ of the rate α that every accepted sub-step must achieve; discrete:
  /// κ of Φ for skills trained without model.discrete_step (trained ones use model.discrete_kappa)
  double kappa = 0.5;
  /// Integrate in float64 (weights cast up) instead of float32, as training and evaluation do.
  bool float64 = false;
};
struct StabilityReport {
  std::string method;
  std::int64_t starts = 0, steps = 0;   ///< steps: data-grid steps of the horizon
  double horizon_seconds = 0;
  double tolerance = 0;
  double converged_fraction = 0, median_final_distance = 0, max_final_distance = 0;
  std::vector<double> final_distances;  ///< per start, raw units
  double max_initial_lyapunov = 0;      ///< autonomous sNODE: max V(x0) over the starts (else 0)
  double bound_horizon_seconds = 0;     ///< autonomous sNODE: t* above (else 0)
  /// certified: accepted sub-steps and rejected trials over all starts; of the accepted ones, those
  /// radially projected after the halving limit, and those taken uncertified (non-finite states:
  /// 0 means every start carries the discrete certificate)
  /// discrete: substeps = applications of Φ (starts × steps), projected_substeps = those radially
  /// pulled, uncertified_substeps = non-finite results
  std::int64_t substeps = 0, rejected_substeps = 0, projected_substeps = 0, uncertified_substeps = 0;
  double projected_fraction = 0;        ///< projected_substeps / substeps (certified, discrete)
  /// discrete with an autonomous sNODE: the applications of Φ to states outside the certified ball
  /// (V > ε (tol/(2 max std))², i.e. not yet certified within half the tolerance: on the way to the
  /// goal), those of them radially pulled, and their ratio — the pulls the robot meets en route, as
  /// opposed to those while it settles at the goal
  std::int64_t outside_ball_substeps = 0, projected_outside_ball = 0;
  double projected_fraction_outside_ball = 0;
  /// certified or discrete with the automatic horizon: the time at which every start had V <= ε (tol/(2 max
  /// std))², after which the certificate keeps it within half the tolerance; the rollout stops there
  /// (0 if it did not happen before the horizon)
  double certified_ball_seconds = 0;
  /// Accuracy as executed: the demonstrations' starts rolled out over the demonstrations' grid with
  /// the same solver (the training's evaluation protocol, LfdRun::evaluate): median DTW against the
  /// demonstrations (raw units) and, for discrete/certified, the share of the steps of those rollouts
  /// that were radially pulled — the part of the reproduced motion that follows the projection.
  EvalCell demo_errors;
  /// Per start, the first time (seconds after the start) at which its position was within the
  /// tolerance of the goal, −1 if never within the horizon; the median over the demonstrations'
  /// starts, and the demonstrations' own duration to compare it with.
  std::vector<double> arrival_seconds;
  double demo_arrival_median = -1, demo_duration_seconds = 0;
  std::int64_t demo_steps = 0, demo_projected_steps = 0;
  double demo_projected_fraction = 0;
};
StabilityReport check_stability(const LfdRun& run, std::int64_t task, const StabilityOptions& options);
/// The JSON object `stablelearn lfd stability` prints for the report `r` of `task` checked with
/// `options` (what `stablelearn report` reads from saved stability_J.json files).
nlohmann::json stability_json(const LfdRun& run, std::int64_t task, const StabilityReport& r, const StabilityOptions& options);

}  // namespace stablelearn::lfd
