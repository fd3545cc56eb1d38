// The built-in strategies (one source file each under src/continual/strategies/). Each class
// documents its method and the defaults it takes from its paper; docs/continual.md has the maths.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "stablelearn/continual/buffer.h"
#include "stablelearn/continual/regularizers.h"
#include "stablelearn/continual/strategy.h"

namespace stablelearn::continual {

/// Joint training (upper bound): task t trains on the union of tasks 0..t ("incremental joint
/// training" of the stability-gap example of van de Ven et al.).
class Joint : public Strategy {
 public:
  std::string name() const override { return "joint"; }
  TrainSet train_set(Context& ctx) override;
  bool plain_updates() const override { return true; }
};

/// Options of PackNet (below).
struct PackNetOptions {
  double prune = 0.5;               ///< share of a task's free weights released for later tasks
  std::int64_t retrain_epochs = 1;  ///< epochs of SGD on the kept weights after pruning (0 = none)
  void fields(options::Visitor& v);  ///< keys of [strategy], in src/continual/strategies/
};

/// PackNet (Mallya & Lazebnik 2018, CVPR): one network packed with several tasks by iterative
/// pruning. Every weight (each parameter tensor of two or more dimensions) has an owner: free, or
/// the task that kept it. Task t trains only the free weights (the gradients of the others are
/// zeroed) and sees them together with the weights of tasks < t; then, per tensor, the `prune`
/// share of its free weights with the smallest magnitudes is released (set to zero, free for the
/// next tasks), the rest become task t's, and `retrain_epochs` of plain SGD (the run's lr and batch
/// size) fine-tune the kept weights alone. The last task of the stream keeps all its free weights.
/// Biases are trained with task 0 and then frozen (as the paper does). Task k is evaluated with the
/// weights of tasks 0..k only, so a finished task's outputs never change (tested bit for bit). It
/// needs the task identity at test time: refused on class-incremental split streams.
class PackNet : public StrategyWithOptions<PackNetOptions> {
 public:
  PackNet() : PackNet(Options{}) {}
  explicit PackNet(Options o) : StrategyWithOptions(std::move(o)) {}
  std::string name() const override { return "packnet"; }
  void before_task(Context& ctx) override;
  void after_backward(Context& ctx) override;
  void after_task(Context& ctx) override;
  bool per_task_network() const override { return true; }
  std::vector<torch::Tensor> task_weights(const Context& ctx, std::int64_t task) const override;
  std::map<std::string, torch::Tensor> state() const override;
  void load_state(const std::map<std::string, torch::Tensor>& m) override;
  /// Owner of every parameter entry (int64, the parameter's shape): 0 free, k + 1 kept by task k.
  const std::vector<torch::Tensor>& owners() const { return owner_; }

 private:
  void ensure_owners(const Context& ctx);
  /// Rebuilds the masks below from owner_ and done_ (before every task and after every pruning).
  void refresh_masks(const Context& ctx);
  std::vector<torch::Tensor> owner_;
  std::int64_t done_ = 0;  ///< tasks pruned and frozen so far
  // Derived from owner_ and done_, in the parameters' dtype, so that no training step recomputes
  // them: free_[i] = (owner == 0); visible_[k][i] = the weights task k sees (filled on first use).
  std::vector<torch::Tensor> free_;
  mutable std::map<std::int64_t, std::vector<torch::Tensor>> visible_;
};

/// Options of Hat (below).
struct HatOptions {
  double s_max = 400;       ///< the largest gate slope s (the paper's 400)
  double c = 0.75;          ///< weight of the capacity regulariser (the paper's 0.75)
  double emb_lr = 0;        ///< SGD step of the task embeddings; 0 = the run's lr
  double clamp = 6;         ///< |e| bound after every step (the reference's 6)
  void fields(options::Visitor& v);  ///< keys of [strategy], in src/continual/strategies/
};

/// Hard attention to the task (Serra, Surís, Miron & Karatzoglou 2018, ICML), for the MLP: per task
/// t and hidden layer l a learned embedding e (one value per unit) gates the layer's output,
/// h_l = a ⊙ ReLU(W_l h_{l−1} + b_l) with a = σ(s e); applied as the task's own weights
/// (a row-scales W_l and b_l, exact since a ≥ 0), so Context::logits evaluates every task through
/// its gates. During an update s anneals over each epoch's batches from 1/s_max to s_max; elsewhere
/// (evaluation, tracking) s = s_max. The loss adds c · Σ a(1 − a^{<t}) / Σ (1 − a^{<t}) (capacity
/// regulariser, a^{<t} the elementwise maximum of the finished tasks' gates at s_max). After
/// backward the weight gradients are scaled by 1 − min(a^{<t}_out unit, a^{<t}_in unit) (the input
/// layer by its output unit only, hidden biases by their unit), so units earlier tasks use are not
/// moved; the embedding gradient is compensated by s_max (cosh(s e) + 1) / (s (cosh(e) + 1)) (s e
/// clipped to ±50) and the embeddings take a plain SGD step (emb_lr) and are clamped to ±clamp.
/// The paper has one head per task; in streams with one shared head (permuted, rotated,
/// split-domain) the output weights are conditioned by their input unit and the output bias is
/// trained with task 0 only. MLP models only; needs the task identity at test time.
class Hat : public StrategyWithOptions<HatOptions> {
 public:
  Hat() : Hat(Options{}) {}
  explicit Hat(Options o) : StrategyWithOptions(std::move(o)) {}
  std::string name() const override { return "hat"; }
  void before_task(Context& ctx) override;
  Batch adapt_batch(Context& ctx, Batch b) override;
  torch::Tensor extra_loss(Context& ctx, const Batch& b, const torch::Tensor& logits) override;
  void after_backward(Context& ctx) override;
  void after_step(Context& ctx, const Batch& b) override;
  void after_task(Context& ctx) override;
  bool per_task_network() const override { return true; }
  std::string data_parallel_refusal() const override;
  std::vector<torch::Tensor> task_weights(const Context& ctx, std::int64_t task) const override;
  std::map<std::string, torch::Tensor> state() const override;
  void load_state(const std::map<std::string, torch::Tensor>& m) override;

  /// The gate slope s of the current update (s_max outside an update).
  double slope(const Context& ctx) const;
  /// Gates σ(s e) of task `task`, one tensor per hidden layer.
  std::vector<torch::Tensor> gates(std::int64_t task, double s) const;
  /// Embeddings [task][layer] and the finished tasks' cumulative gates a^{<t} (one per hidden
  /// layer; undefined before task 0 ends). For tests and inspection.
  std::vector<std::vector<torch::Tensor>>& embeddings() { return emb_; }
  std::vector<torch::Tensor>& cumulative() { return cum_; }

 private:
  std::vector<std::vector<torch::Tensor>> emb_;
  std::vector<torch::Tensor> cum_;
  bool in_update_ = false;
};

/// Options of Ewc (below).
struct EwcOptions {
  double lambda = 100.0;
  std::string mode = "separate";  ///< separate | online
  double gamma = 1.0;             ///< online decay of the accumulated Fisher
  std::int64_t fisher_samples = 1000;
  void fields(options::Visitor& v);  ///< keys of [strategy], in src/continual/strategies/
};

/// Elastic weight consolidation (Kirkpatrick et al. 2017, PNAS). Diagonal empirical Fisher F_k
/// (mean squared gradient of log p(y_true|x) over `fisher_samples` training samples) at the end of
/// task k, anchors θ*_k.
///  * mode "separate": L = CE + (λ/2) Σ_k Σ_i F_k,i (θ_i − θ*_k,i)²   (one penalty per past task)
///  * mode "online" (Schwarz et al. 2018, "Progress & Compress"): F ← γ F + F_k, θ* ← θ*_k,
///    L = CE + (λ/2) Σ_i F_i (θ_i − θ*_i)²
class Ewc : public StrategyWithOptions<EwcOptions> {
 public:
  Ewc() : Ewc(Options{}) {}
  explicit Ewc(Options o);
  std::string name() const override { return "ewc"; }
  torch::Tensor extra_loss(Context& ctx, const Batch&, const torch::Tensor&) override;
  void after_task(Context& ctx) override;
  std::map<std::string, torch::Tensor> state() const override;
  void load_state(const std::map<std::string, torch::Tensor>& m) override;
  const std::vector<std::vector<torch::Tensor>>& fishers() const { return fisher_; }

 private:
  std::vector<std::vector<torch::Tensor>> fisher_, anchor_;
};

/// Options of Lwf (below).
struct LwfOptions {
  double alpha = 1.0;
  double temperature = 2.0;
  void fields(options::Visitor& v);  ///< keys of [strategy], in src/continual/strategies/
};

/// Learning without Forgetting (Li & Hoiem 2017, TPAMI): before task t > 0 the model is frozen as
/// a teacher; L = CE + α · T² · KL(softmax(z_old/T) ‖ softmax(z/T)) over the logits of the classes
/// seen before task t (all classes in domain-incremental streams), z_old the teacher's logits on
/// the current batch. Defaults α = 1, T = 2 (the paper's temperature; Avalanche's defaults).
class Lwf : public StrategyWithOptions<LwfOptions> {
 public:
  Lwf() : Lwf(Options{}) {}
  explicit Lwf(Options o) : StrategyWithOptions(std::move(o)) {}
  std::string name() const override { return "lwf"; }
  void before_task(Context& ctx) override;
  torch::Tensor extra_loss(Context& ctx, const Batch& b, const torch::Tensor& logits) override;
  LossSplit extra_loss_split() const override { return LossSplit::SampleMean; }
  std::map<std::string, torch::Tensor> state() const override;
  void load_state(const std::map<std::string, torch::Tensor>& m) override;

 private:
  std::vector<torch::Tensor> teacher_;
  torch::Tensor old_classes_;  ///< bool [classes]
};

/// Options of ExperienceReplay (below).
struct ExperienceReplayOptions {
  std::int64_t memory = 2000;
  std::string buffer = "reservoir";  ///< reservoir | class_balanced
  std::int64_t replay_batch = 0;     ///< 0 = the training batch size
  void fields(options::Visitor& v);  ///< keys of [strategy], in src/continual/strategies/
};

/// Experience replay (Chaudhry et al. 2019, "On tiny episodic memories"): every batch of the
/// current task is joined by an equally large batch drawn from the memory; the loss is the mean
/// cross-entropy over both. Memory: reservoir (updated every step) or class-balanced (updated at
/// the end of each task).
class ExperienceReplay : public StrategyWithOptions<ExperienceReplayOptions> {
 public:
  ExperienceReplay() : ExperienceReplay(Options{}) {}
  explicit ExperienceReplay(Options o);
  std::string name() const override { return "er"; }
  Batch adapt_batch(Context& ctx, Batch b) override;
  void after_step(Context& ctx, const Batch& b) override;
  void after_task(Context& ctx) override;
  std::map<std::string, torch::Tensor> state() const override;
  void load_state(const std::map<std::string, torch::Tensor>& m) override;
  const Memory& memory() const { return mem_; }

 private:
  Memory mem_;
};

/// Options of AGem (below).
struct AGemOptions {
  std::int64_t memory_per_task = 256;
  std::int64_t sample_size = 256;
  void fields(options::Visitor& v);  ///< keys of [strategy], in src/continual/strategies/
};

/// Averaged GEM (Chaudhry et al. 2019, ICLR): with g the gradient of the current batch and g_ref
/// the gradient on `sample_size` samples of the episodic memory (`memory_per_task` random samples
/// of each finished task), if gᵀg_ref < 0 the step uses g − (gᵀg_ref / g_refᵀg_ref) g_ref.
class AGem : public StrategyWithOptions<AGemOptions> {
 public:
  AGem() : AGem(Options{}) {}
  explicit AGem(Options o) : StrategyWithOptions(std::move(o)) {}
  std::string name() const override { return "agem"; }
  void after_backward(Context& ctx) override;
  void after_task(Context& ctx) override;
  std::map<std::string, torch::Tensor> state() const override;
  void load_state(const std::map<std::string, torch::Tensor>& m) override;
  std::int64_t projections() const { return projections_; }

 private:
  torch::Tensor mx_, my_, mt_;
  std::int64_t projections_ = 0;
};

/// Options of DerPlusPlus (below).
struct DerPlusPlusOptions {
  std::int64_t memory = 500;
  double alpha = 0.1;
  double beta = 0.5;
  void fields(options::Visitor& v);  ///< keys of [strategy], in src/continual/strategies/
};

/// DER++ (Buzzega et al. 2020, NeurIPS): a reservoir memory of (x, y, logits at insertion);
/// L = CE + α · MSE(f(x'), z') + β · CE(f(x''), y'') with (x', z') and (x'', y'') two independent
/// memory batches. Defaults α = 0.1, β = 0.5 (memory 500).
class DerPlusPlus : public StrategyWithOptions<DerPlusPlusOptions> {
 public:
  DerPlusPlus() : DerPlusPlus(Options{}) {}
  explicit DerPlusPlus(Options o) : StrategyWithOptions(std::move(o)), mem_(o_.memory, Memory::Policy::Reservoir) {}
  std::string name() const override { return "derpp"; }
  torch::Tensor extra_loss(Context& ctx, const Batch& b, const torch::Tensor& logits) override;
  /// The memory terms are over memory samples (Replicated); the logits stored with the batch's
  /// samples are the whole batch's (ctx.batch_logits in a data-parallel run).
  bool wants_batch_logits() const override { return true; }
  void after_step(Context& ctx, const Batch& b) override;
  std::map<std::string, torch::Tensor> state() const override;
  void load_state(const std::map<std::string, torch::Tensor>& m) override;

 private:
  Memory mem_;
  torch::Tensor last_logits_;
};

/// Options of SiStrategy (below).
struct SiStrategyOptions {
  double c = 0.1;
  double xi = 1e-3;
  void fields(options::Visitor& v);  ///< keys of [strategy], in src/continual/strategies/
};

/// Synaptic intelligence (Zenke, Poole & Ganguli 2017, ICML) as a strategy around the shared
/// continual::SynapticIntelligence penalty (regularizers.h): ω accumulates −g·Δθ with g the
/// gradient of the task's cross-entropy alone (the penalty's gradient excluded, as in the paper),
/// Ω += ω/((Δθ_task)² + ξ) at the end of each task, L = CE + c Σ Ω (θ − θ*)². Defaults c = 0.1,
/// ξ = 1e-3 (the paper's MNIST setting: ξ = 1e-3, c in [0.01, 0.1]).
class SiStrategy : public StrategyWithOptions<SiStrategyOptions> {
 public:
  SiStrategy() : SiStrategy(Options{}) {}
  explicit SiStrategy(Options o);
  ~SiStrategy() override;
  std::string name() const override { return "si"; }
  void before_task(Context& ctx) override;
  torch::Tensor extra_loss(Context& ctx, const Batch&, const torch::Tensor&) override;
  void after_backward(Context& ctx) override;
  void after_step(Context& ctx, const Batch&) override;
  void after_task(Context& ctx) override;
  std::map<std::string, torch::Tensor> state() const override;
  void load_state(const std::map<std::string, torch::Tensor>& m) override;
  const std::vector<torch::Tensor>& importance() const;

 private:
  std::unique_ptr<SynapticIntelligence> si_;
  std::vector<torch::Tensor> task_grad_;
  bool penalised_ = false;
};

/// Options of MasStrategy (below).
struct MasStrategyOptions {
  double lambda = 1.0;
  std::int64_t samples = 1000;
  void fields(options::Visitor& v);  ///< keys of [strategy], in src/continual/strategies/
};

/// Memory-aware synapses (Aljundi et al. 2018, ECCV) as a strategy around the shared
/// continual::MemoryAwareSynapses penalty: after each task (task 0 included),
/// Ω += (1/N) Σ_n |∂‖f(x_n)‖²/∂θ| over N = `samples` training samples (f = the logits, unmasked),
/// θ* = θ; L = CE + λ Σ Ω (θ − θ*)². Default λ = 1 (the paper's value).
class MasStrategy : public StrategyWithOptions<MasStrategyOptions> {
 public:
  MasStrategy() : MasStrategy(Options{}) {}
  explicit MasStrategy(Options o);
  ~MasStrategy() override;
  std::string name() const override { return "mas"; }
  torch::Tensor extra_loss(Context& ctx, const Batch&, const torch::Tensor&) override;
  void after_task(Context& ctx) override;
  std::map<std::string, torch::Tensor> state() const override;
  void load_state(const std::map<std::string, torch::Tensor>& m) override;
  const std::vector<torch::Tensor>& importance() const;

 private:
  std::unique_ptr<MemoryAwareSynapses> mas_;
};

/// Options of Gpm (below).
struct GpmOptions {
  double threshold = 0.97;
  double threshold_step = 0.0;  ///< added per finished task (capped at 1)
  std::int64_t samples = 300;
  void fields(options::Visitor& v);  ///< keys of [strategy], in src/continual/strategies/
};

/// Gradient projection memory (Saha, Garg & Roy 2021, ICLR), for the linear layers (the MLP, or
/// the fully connected part of the CNN; conv layers are trained unprojected and said so in the
/// run's config). After task t, the inputs R_l [n, d_l] of every linear layer on `samples` training
/// samples give, per layer, new basis vectors: for t = 0 the top-k right singular vectors of R_l
/// with k the smallest rank whose energy ratio ≥ threshold; for t > 0 the residual R̂ = R − R M Mᵀ
/// is decomposed and k is the smallest rank with (‖R M‖² + Σ_{j≤k} σ̂_j²)/‖R‖² ≥ threshold.
/// While training later tasks the weight gradients are projected: ∇W_l ← ∇W_l − ∇W_l M_l M_lᵀ.
/// Defaults: threshold 0.97 for every layer (+0.003 per task, the paper's CIFAR schedule is not
/// used), 300 samples (the paper's PMNIST setting).
class Gpm : public StrategyWithOptions<GpmOptions> {
 public:
  Gpm() : Gpm(Options{}) {}
  explicit Gpm(Options o) : StrategyWithOptions(std::move(o)) {}
  std::string name() const override { return "gpm"; }
  void after_backward(Context& ctx) override;
  void after_task(Context& ctx) override;
  std::map<std::string, torch::Tensor> state() const override;
  void load_state(const std::map<std::string, torch::Tensor>& m) override;
  /// Basis [d_l, k_l] of the protected input space of each linear layer (undefined if empty).
  const std::vector<torch::Tensor>& bases() const { return bases_; }

 private:
  std::vector<torch::Tensor> bases_;
};

/// Options of EmaMerge (below).
struct EmaMergeOptions {
  double fallback = 0.01;
  bool automatic = true;  ///< false: plain EMA with the fixed weight α = fallback at every step
  void fields(options::Visitor& v);  ///< keys of [strategy], in src/continual/strategies/
};

/// EMA merging with the automatic balance weight of "Large Continual Instruction Assistant"
/// (Qiao et al., ICML 2025; CoIN's peft/tuners/lora.py:ema_update): after every step, per parameter
/// tensor, α = 2(1 + ‖g‖₁) / (‖θ − θ_ema‖₁ · ‖g − g_prev‖₁), replaced by `fallback` unless
/// 0 < α < 1 (automatic = false: α = fallback at every step, plain EMA with a fixed weight);
/// θ_ema ← (1 − α) θ_ema + α θ. At the end of each task the EMA weights replace the
/// trained ones (ema_replace), so the next task starts from — and is evaluated with — the merge.
class EmaMerge : public StrategyWithOptions<EmaMergeOptions> {
 public:
  EmaMerge() : EmaMerge(Options{}) {}
  explicit EmaMerge(Options o) : StrategyWithOptions(std::move(o)) {}
  std::string name() const override { return "ema"; }
  void before_task(Context& ctx) override;
  void after_backward(Context& ctx) override;
  void after_step(Context& ctx, const Batch&) override;
  void after_task(Context& ctx) override;
  std::map<std::string, torch::Tensor> state() const override;
  void load_state(const std::map<std::string, torch::Tensor>& m) override;
  const std::vector<double>& last_alphas() const { return alphas_; }

 private:
  std::vector<torch::Tensor> ema_, grad_, prev_grad_;
  std::vector<double> alphas_;
};

/// Options of AdaptiveSvd (below).
struct AdaptiveSvdOptions {
  double rank_step = 0.2;
  double max_fraction = 0.9;
  /// The model starts pre-trained ([backbone] file): task 0 already keeps the top singular
  /// triplets, with t + 1 in place of t in k_t (the paper's schedule, whose first task freezes a
  /// share of the pre-trained weights' rank).
  bool pretrained = false;
  void fields(options::Visitor& v);  ///< keys of [strategy], in src/continual/strategies/
};

/// Adaptive-SVD / orthogonal subspace fine-tuning ("Sculpting Subspaces", Nayak et al. 2025;
/// orthogonal-subspace-learning:notebooks/finetune_svd.py). Task 0 trains normally. Before every
/// later task t each linear weight W (m×n) is decomposed W = U S Vᵀ; its top-k_t singular triplets
/// (W_h = U_h S_h V_hᵀ) are frozen, with k_t = round(d · min(rank_step · t, max_fraction)),
/// d = min(m, n) (the schedule of the paper's smallest CPU experiment; the importance-based rank
/// rule is not implemented); with `pretrained` task 0 counts as the first task after pre-training,
/// k_t = round(d · min(rank_step · (t + 1), max_fraction)), so the pre-trained model's top
/// directions are kept from the first task on. Training the low part U_l S_l V_lᵀ with projected factor gradients
/// changes W only by ΔW = (I − U_h U_hᵀ) X (I − V_h V_hᵀ); this strategy applies that two-sided
/// projection to ∇W and, after every optimiser step, re-projects W − W_h the same way (the later
/// OSFT code's re-projection), so W_h is kept exactly. Biases are trained freely.
class AdaptiveSvd : public StrategyWithOptions<AdaptiveSvdOptions> {
 public:
  AdaptiveSvd() : AdaptiveSvd(Options{}) {}
  explicit AdaptiveSvd(Options o) : StrategyWithOptions(std::move(o)) {}
  std::string name() const override { return "adaptive_svd"; }
  void before_task(Context& ctx) override;
  void after_backward(Context& ctx) override;
  void after_step(Context& ctx, const Batch&) override;
  /// Frozen rank k of each linear layer in the current task (0 = unconstrained).
  std::vector<std::int64_t> ranks() const;

 private:
  std::vector<torch::Tensor> uh_, vh_, wh_;  ///< per linear layer: U_h [m,k], V_h [n,k], W_h [m,n]
};

/// Options of Coso (below).
struct CosoOptions {
  std::int64_t proj_rank = 15;
  std::int64_t rank = 100;
  double threshold = 0.98;
  std::int64_t update_gap = 1;
  double decay = 1.0;
  void fields(options::Visitor& v);  ///< keys of [strategy], in src/continual/strategies/
};

/// Continuous subspace optimisation (CoSO, Cheng et al., NeurIPS 2025; quinn-ch/CoSO:coso/adamw.py,
/// coso_projector.py). For every linear weight W (m×n) with gradient G:
///   G' = G − M Mᵀ G (M: orthonormal basis [m, k] of the earlier tasks' gradient subspace);
///   every `update_gap` steps P = U[:, :proj_rank] of the SVD G' = U Σ Vᵀ, and the Frequent
///   Directions sketch S [m, rank] is updated with Q = U[:, :rank] diag(√(σ_i² − σ_{rank+1}²));
///   Adam runs on R = Pᵀ G' (moments kept when P changes), ΔW = −lr P m̂/(√v̂ + ε).
/// At the end of a task the sketch's left singular vectors with cumulative energy below
/// `threshold` are appended to M, and Adam's state and the projector are reset. Biases take plain
/// Adam steps, and so does the output layer (the classifier head; CoSO trains its heads
/// unprojected). Defaults: proj_rank 15, rank 100 (the paper's CIFAR-100 values; capped at m/2
/// here because our layers are far narrower than ViT-B's 768), threshold 0.98, update_gap 1, decay 1.0. This strategy replaces the configured optimiser.
class Coso : public StrategyWithOptions<CosoOptions> {
 public:
  Coso() : Coso(Options{}) {}
  explicit Coso(Options o) : StrategyWithOptions(std::move(o)) {}
  std::string name() const override { return "coso"; }
  void before_task(Context& ctx) override;
  bool step(Context& ctx) override;
  void after_task(Context& ctx) override;
  std::map<std::string, torch::Tensor> state() const override;
  void load_state(const std::map<std::string, torch::Tensor>& m) override;
  /// Historical basis M of each linear layer (undefined when empty).
  const std::vector<torch::Tensor>& bases() const { return m_; }

 private:
  struct Adam {
    torch::Tensor m, v;
    std::int64_t t = 0;
  };
  torch::Tensor adam_update(Adam& a, const torch::Tensor& g, double lr);
  /// Sketch rank of a layer with m outputs: `rank`, capped at m / 2 so a task cannot claim the whole space.
  std::int64_t rank_for(std::int64_t m) const { return std::max<std::int64_t>(1, std::min(o_.rank, m / 2)); }
  std::vector<torch::Tensor> m_, sketch_, proj_;
  std::vector<Adam> adam_w_, adam_b_;
  std::int64_t steps_ = 0;
};

}  // namespace stablelearn::continual
