// CaRE: bi-level routing mixture-of-experts adapters on a frozen backbone (Lou, Fu, Yu, "Scaling
// Continual Learning to 300+ Tasks with Bi-Level Routing Mixture-of-Experts", ICML 2026, arXiv
// 2602.03473; shared/specs/papers-19-35.md §35), after the authors' code LMMMEng/CaRE
// (backbone/vit_brmoe.py: Adapter, MoEAdapter; models/care.py: Learner; backbone/linears.py:
// TunaLinear). The ViT-B/16 is replaced by any frozen backbone given as functions:
//
//   z_0 = stem(x);  per block l:  z_{l+1} = z_l + branch_l(z_l) + BR-MoE_l(z_l);  f = out_norm(z_L)
//
// (the code's "parallel" placement, with z_l in the role of the ViT's z_a = MHSA(norm z) + z and
// branch_l its FFN; a feature vector plays the role of the CLS token). Per task t every BR-MoE
// layer gets a triplet:
//   expert E_t      LayerNorm-in, Linear D→b, ReLU, dropout, Linear b→D, times a learned
//                   per-channel scale initialised at 0 (b = expert_dim); from task 2 on it is
//                   initialised with the mean of experts 0..t−2 (the code averages all but the
//                   most recent expert: `range(len(self.adapter)-1)`), scale included;
//   router R_t      Linear D→t+1 (trunc-normal std 0.02, bias 0);
//   recogniser C_t  LayerNorm (weight trunc-normal std 0.02, bias 0, as in the code) + Linear
//                   D→|classes of task t|;
// plus one shared adapter Ē (bottleneck adapter_dim), trained freely on task 0 and, from task 1 on,
// blended at every training forward with its copy taken at the start of the training phase:
// θ ← μ·θ_anchor + (1 − μ)·θ (μ = 0.999).
//
// Inference (full_dynamic): every expert i runs on z, C_i and R_i read its output; the scores of
// R_i are padded to T experts with −inf; per sample the M routers whose recognisers have the lowest
// entropy are kept (all when M ≥ T), each keeps its top-K scores (the others are set to −100; no
// masking when K ≥ T), takes the softmax, and the weighted expert outputs are summed over the kept
// routers; the layer returns that sum + Ē(z). With one expert the layer returns E_0(z) + Ē(z).
// Training (semi_dynamic, task t known): experts 0..t; task 0 uses E_0 alone; later tasks the
// current router plus the M − 1 previous routers of lowest entropy (all when M − 1 ≥ t), the same
// top-K masking and softmax; the layer also returns C_t's logits of E_t's output.
//
// Learning task t (Learner::learn_task, models/care.py _train): t = 0: `epochs` epochs; t > 0:
// epochs/2 epochs (cosine lr to lr/2), per-class feature statistics, classifier alignment, a fresh
// SGD at the reached lr with a new EMA anchor, epochs/2 more epochs (cosine to min_lr), statistics
// of the task's classes again, classifier alignment again (t = 0: statistics only). Loss per batch:
//   CosFace(s·(cos − m·onehot)) over the task's classes (cos = the cosine head, TunaLinear)
//   + mean over layers l of ( CosFace(s·C_t^l) + τ_l²·KL(softmax(cos/τ_l) ‖ softmax(C_t^l/τ_l)) )/2
// with the teacher cos detached, τ_l = 1 for l < 6 and 2 otherwise. SGD momentum 0.9, weight decay
// 5e-4 on the trainable adapter parameters (E_t, R_t, C_t, Ē) and every head row. Classifier
// alignment: `ca_epochs` epochs; each draws ca_samples Gaussian pseudo-features per seen class from
// the stored mean (times 0.9 + decay, the code's formula with its negative task size kept) and
// covariance (+1e-4·I), shuffles them and takes one SGD step (lr ca_lr, cosine over 5 epochs,
// momentum 0.9, weight decay 5e-4) per seen class on CE(s·cos) of ca_samples of them.
// Prediction: argmax of the cosine head over the seen classes after the full-dynamic forward
// (the code's single-pass evaluation, `iter_pred` false, as in its long-stream configs).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include <torch/torch.h>

#include "stablelearn/core/options.h"

namespace stablelearn::continual::care {

struct CareOptions {
  std::int64_t dim = 128;          ///< feature width D of the blocks
  std::int64_t expert_dim = 8;     ///< bottleneck of each task's expert (code: 16 at D = 768)
  std::int64_t adapter_dim = 32;   ///< bottleneck of the shared adapter (code: 64 at D = 768)
  std::int64_t topk_routers = 2;   ///< M routers kept by lowest recogniser entropy
  std::int64_t topk_experts = 3;   ///< K experts kept per router
  double dropout = 0.1;            ///< dropout inside experts and the shared adapter
  double ema_decay = 0.999;        ///< μ of the shared adapter's anchor
  bool shared_adapter = true;      ///< false: no Ē (ablation)
  bool self_distillation = true;   ///< false: no KL term in the per-layer auxiliary loss (ablation)
  double scale = 20;               ///< s of the cosine (CosFace) loss and of the alignment
  double margin = 0;               ///< m of CosFace
  std::int64_t epochs = 4;         ///< tuned_epoch (task 0; later tasks two phases of epochs/2)
  std::int64_t batch = 16;
  double lr = 0.01;
  double min_lr = 0;
  double momentum = 0.9;
  double weight_decay = 5e-4;
  std::int64_t ca_epochs = 3;      ///< crct_epochs
  double ca_lr = 0.005;
  std::int64_t ca_samples = 80;    ///< pseudo-features per class and per step (code: 5·batch)
  bool ca_decay = true;            ///< the code's `decay` factor on the stored means
  void fields(options::Visitor& v);
  void cross_check() const;
};

/// Entropy −Σ p log(p + 1e-10) of softmax(logits) over the last dimension.
torch::Tensor entropy(const torch::Tensor& logits);
/// Indices [m, B] of the m smallest entries of entropy [T, B] along dim 0 (per column).
torch::Tensor lowest_entropy(const torch::Tensor& entropy, std::int64_t m);
/// Routing weights of scores [R, B, E]: when k < E the entries outside each row's top k are set to
/// −100, then the softmax over the last dimension.
torch::Tensor route_weights(const torch::Tensor& scores, std::int64_t k);
/// θ ← μ·anchor + (1 − μ)·θ for every pair (in place, no autograd).
void ema_anchor(const std::vector<torch::Tensor>& params, const std::vector<torch::Tensor>& anchor, double mu);
/// CosFace loss of wf [B, C] with labels [B]: mean of −log softmax(s·(wf − m·onehot))_y.
torch::Tensor cosface_loss(const torch::Tensor& wf, const torch::Tensor& labels, double s, double m);
/// τ²·KL(softmax(teacher/τ) ‖ softmax(student/τ)), summed over classes and averaged over the batch
/// (F.kl_div(log_softmax(student/τ), softmax(teacher/τ), 'batchmean')·τ²); teacher is detached.
torch::Tensor distillation_kl(const torch::Tensor& student, const torch::Tensor& teacher, double tau);
/// n samples [n, D] of N(mean, cov) (float64 Cholesky of cov, then float32), drawn from gen.
torch::Tensor gaussian_samples(const torch::Tensor& mean, const torch::Tensor& cov, std::int64_t n, torch::Generator gen);
/// The code's alignment mean factor 0.9 + decay for class c of a stream whose latest task (index t)
/// has `task_classes` classes: task_size = −task_classes, t_id = ⌊c / task_size⌋,
/// decay = (t_id + 1)/(t + 1)·0.1.
double ca_mean_factor(std::int64_t c, std::int64_t task_classes, std::int64_t t);

/// One bottleneck adapter (LayerNorm-in, down, ReLU, dropout, up, ·scale); output without residual.
struct AdapterImpl : torch::nn::Module {
  AdapterImpl(std::int64_t dim, std::int64_t bottleneck, double dropout);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::LayerNorm norm{nullptr};
  torch::nn::Linear down{nullptr}, up{nullptr};
  torch::nn::Dropout drop{nullptr};
  torch::Tensor scale;
};
TORCH_MODULE(Adapter);

/// One BR-MoE layer (the code's MoEAdapter).
class BrMoeLayerImpl : public torch::nn::Module {
 public:
  explicit BrMoeLayerImpl(const CareOptions& o);
  /// Appends task t's expert (mean-initialised from t ≥ 2), router and recogniser with `classes`
  /// outputs; afterwards only they and the shared adapter require gradients.
  void add_task(std::int64_t classes);
  /// Starts a training phase (the code's _load_shared_adapter): with ≥ 2 experts and use_ema, the
  /// shared adapter's current weights become the anchor of every training forward.
  void begin_phase(bool use_ema);
  /// Drops the anchor (the code deletes it at the next evaluation forward).
  void end_phase() { anchor_.clear(); }
  /// Training forward with task t known: {mixture + Ē(z), C_t logits of E_t(z)}.
  std::pair<torch::Tensor, torch::Tensor> semi_dynamic(const torch::Tensor& z, std::int64_t t);
  /// Task-agnostic forward: mixture + Ē(z).
  torch::Tensor full_dynamic(const torch::Tensor& z);
  /// The parameters learned for the current task: E_t, R_t, C_t and Ē (when enabled).
  std::vector<torch::Tensor> trainable() const;
  std::int64_t tasks() const { return static_cast<std::int64_t>(experts.size()); }
  /// The shared adapter's output (after the anchor blend when training with an anchor).
  torch::Tensor shared_out(const torch::Tensor& z);

  std::vector<Adapter> experts;
  std::vector<torch::nn::Linear> routers;
  std::vector<torch::nn::Sequential> recognisers;
  Adapter shared{nullptr};
  const std::vector<torch::Tensor>& anchor() const { return anchor_; }

 private:
  /// Experts 0..n−1 on z: outputs [n, B, D], recogniser entropies [n, B], router scores padded to
  /// n with −inf [n, B, n], and the recogniser logits of expert n − 1.
  struct Pass {
    torch::Tensor outs, entropy, scores, latest_latent;
  };
  Pass expert_pass(const torch::Tensor& z, std::int64_t n);
  /// The frozen experts 0..tasks()−2 stacked (rebuilt after add_task) so that one batched product
  /// evaluates them all; the newest expert runs through its own (trainable) modules.
  void build_stack();
  static torch::Tensor mix(const torch::Tensor& outs, const torch::Tensor& weights);

  CareOptions o_;
  torch::nn::ModuleList list_;
  std::vector<torch::Tensor> anchor_;
  struct Stack {
    std::int64_t experts = -1;  ///< −1: stale
    bool same_classes = true;
    torch::Tensor ln_w, ln_b, down_w, down_b, up_w, up_b, scale, rec_ln_w, rec_ln_b, rec_w, rec_b, router_w, router_b;
  } stack_;
};
TORCH_MODULE(BrMoeLayer);

/// The frozen backbone: stem, per-block frozen branches, output norm (all treated as constants).
struct FrozenBackbone {
  std::function<torch::Tensor(const torch::Tensor&)> stem;
  std::vector<std::function<torch::Tensor(const torch::Tensor&)>> branches;
  std::function<torch::Tensor(const torch::Tensor&)> out_norm;
};

/// What learning one task cost.
struct TaskCost {
  double seconds = 0;            ///< wall time of learn_task
  std::int64_t parameters = 0;   ///< parameters stored after the task (adapters, routers, recognisers, head)
  std::int64_t statistic_floats = 0;  ///< floats of the stored class means and covariances
};

/// The CaRE learner (models/care.py): a frozen backbone, one BR-MoE layer per block, the cosine
/// head, the class statistics and classifier alignment.
class Learner {
 public:
  Learner(const CareOptions& o, FrozenBackbone backbone, std::uint64_t seed);
  /// Learns the next task from x [N, ...] and global labels y in [seen, seen + classes).
  TaskCost learn_task(const torch::Tensor& x, const torch::Tensor& y, std::int64_t classes);
  /// Predicted global labels of x (eval mode, full-dynamic forward, argmax over seen classes).
  torch::Tensor predict(const torch::Tensor& x);
  /// Features f (eval mode): full-dynamic, or semi-dynamic with task `task` when task ≥ 0.
  torch::Tensor features(const torch::Tensor& x, std::int64_t task = -1);
  /// Cosine logits [B, seen classes] of features f.
  torch::Tensor head(const torch::Tensor& f) const;
  std::int64_t seen_classes() const { return seen_; }
  std::int64_t tasks() const { return task_ + 1; }
  const std::vector<BrMoeLayer>& layers() const { return layers_; }
  const std::vector<torch::Tensor>& class_means() const { return means_; }
  const std::vector<torch::Tensor>& class_covariances() const { return covs_; }
  void set_training(bool on);

 private:
  std::pair<torch::Tensor, std::vector<torch::Tensor>> forward(const torch::Tensor& x, bool with_task);
  void train_phase(const torch::Tensor& x, const torch::Tensor& y, std::int64_t epochs, double lr0, double eta_min);
  void compute_statistics(const torch::Tensor& x, const torch::Tensor& y);
  void align_classifier();
  std::int64_t parameter_count() const;

  CareOptions o_;
  FrozenBackbone backbone_;
  std::vector<BrMoeLayer> layers_;
  /// The per-task head blocks [classes_t, D] (no bias) stacked in task order as one tensor: every
  /// optimiser is made per phase and updates element-wise, so one tensor gives the same steps as
  /// the code's list of blocks, at one update instead of one per task.
  torch::Tensor head_;
  std::vector<std::int64_t> task_classes_;
  std::vector<torch::Tensor> means_, covs_, chol_;
  std::int64_t task_ = -1, seen_ = 0, known_ = 0;
  double last_lr_ = 0;
  torch::Generator gen_;
};

}  // namespace stablelearn::continual::care
