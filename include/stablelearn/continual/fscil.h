// Few-shot class-incremental learning (FSCIL) and the tricks of "A Bag of Tricks for Few-Shot
// Class-Incremental Learning" (Roy, Park, Fahrezi, Etemad, 2024; shared/specs/papers-01-18.md §8).
//
// Protocol. A base session with many classes and all their training images, then `sessions`
// sessions of N-way K-shot new classes (`ways` classes, `shots` images each, drawn by a seeded
// generator: one seed = one shot draw); no old data is ever revisited. After every session the
// model is tested on the test images of all classes seen so far (prediction among those classes).
// Classes follow the natural order: base = 0..B−1, session t brings B + (t−1)N .. B + tN − 1.
//
// Pieces, each usable alone:
//   make_fscil_stream     the sessions (ConfigError naming the key for impossible shapes)
//   class_prototypes      μ_c = mean over the class's images of z/‖z‖ (the cosine classifier's weights)
//   cosine_logits         cos(z_i, μ_c) (the prototype classifier predicts the argmax)
//   supcon_loss           supervised contrastive loss (Khosla et al. 2020), on L2-normalised z:
//                           L = (1/|A|) Σ_{i∈A} −(1/|P(i)|) Σ_{p∈P(i)} log[exp(z_i·z_p/τ) / Σ_{a≠i} exp(z_i·z_a/τ)]
//                         P(i) = the other samples with i's label, A = the anchors with P(i) ≠ ∅
//   simplex_etf           C unit vectors in R^d with pairwise cosine −1/(C−1):
//                           W = sqrt(C/(C−1)) U (I − 11ᵀ/C), U ∈ R^{d×C} orthonormal columns (seeded)
//   rotate_quarter        images rotated by k × 90° (exact, torch::rot90)
//   pseudo_class_batch    pseudo-classes: a fraction of the base images rotated by k ∈ {1, 2, 3}
//                         quarter turns and relabelled B·k + y (3B synthetic classes that reserve
//                         embedding space; the construction the paper's "transformed base images
//                         with new labels" allows — documented choice)
//   rotation_batch        the rotation pretext task: every image rotated by r ∈ {0, 1, 2, 3}
//                         quarter turns, label r (a 4-way head on the embedding predicts r)
//   subnet_tune           incremental sub-network tuning: a few SGD steps on the listed weights
//                         only (the last block), cosine cross-entropy against fixed class vectors;
//                         every other weight is left bitwise unchanged
//   FscilLearner          the encoder (models::Classifier "cnn" whose output layer is the
//                         embedding), base training with any subset of the tricks, the prototype
//                         classifier for new sessions, evaluation (all / base / novel accuracy).
//
// Base training loss (per batch; logits over the base classes, plus 3B pseudo-classes with
// `pseudo`):
//   linear head (default)  CE(W z + b, y)
//   etf                    CE(s · cos(z, e_c), y) with fixed simplex-ETF vectors e_c for ALL classes
//                          (base, the reserved future ones, pseudo): the reserved vectors appear
//                          as negatives only, which keeps base features away from them
//   + supcon_weight · supcon_loss(z, y, τ)            with `supcon`
//   + rotation_weight · CE(H z(rot r(x)), r)          with `rotation` (H: Linear(embed → 4))
// New sessions: the encoder is frozen; each new class gets its prototype; prediction by cosine
// similarity with the prototypes of every seen class (base classes' prototypes from all their base
// training images). With `subnet`, the encoder's last layer (the embedding projection
// fc → embed) is first tuned against fixed class vectors (old classes: their stored prototypes;
// new classes: their reserved ETF vectors with `etf`, else their prototypes under the untuned
// network) on the session's shots plus one anchor row per old class, that class's stored mean
// trunk feature (the fc layer's output averaged over its training images when it was learnt — a
// statistic, no old image is kept; the trunk is frozen, so the means stay exact). Without the
// anchors a few steps on new data alone pull every embedding towards the new classes (measured:
// base accuracy 0.86 → 0.03 over four 1-way sessions). Then the new classes' prototypes are
// computed with the tuned network; the old prototypes are kept.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include <torch/types.h>

#include "stablelearn/core/options.h"
#include "stablelearn/data/cl_streams.h"
#include "stablelearn/models/classifier.h"

namespace stablelearn::continual {

// ---------------------------------------------------------------------------------------------
// Stream

struct FscilStreamOptions {
  std::int64_t base_classes = 6;    ///< B: classes of the base session (0..B−1)
  std::int64_t ways = 1;            ///< N: new classes per incremental session
  std::int64_t shots = 5;           ///< K: training images per new class
  std::int64_t sessions = 4;        ///< incremental sessions after the base session
  std::int64_t base_per_class = 0;  ///< base training images per class (the first ones); 0 = all
  std::int64_t test_per_class = 0;  ///< test images per class (the first ones); 0 = all
  std::int64_t seed = 0;            ///< the shot draw

  /// The keys of [fscil].
  void fields(options::Visitor& v);
};

struct FscilSession {
  std::int64_t id = 0;                ///< 0 = base session
  data::ImageSet train;               ///< base: the base images; t > 0: ways × shots images
  std::vector<std::int64_t> classes;  ///< the classes this session brings
  std::vector<std::int64_t> seen;     ///< every class seen after it (base first)
  data::ImageSet test;                ///< test images of every seen class
};

/// The base session and `sessions` incremental sessions. ConfigError naming the key
/// ("fscil.sessions", "fscil.shots", ...) when the data cannot give them: more classes than the
/// data has, more shots than a class's training images, more base/test images than a class has.
std::vector<FscilSession> make_fscil_stream(const data::ImageDataset& data, const FscilStreamOptions& options);

// ---------------------------------------------------------------------------------------------
// Functional pieces

/// Prototypes [C, d]: row c = mean of z_i/‖z_i‖ over the rows with labels == classes[c] (not
/// renormalised). DataError when a class has no row.
torch::Tensor class_prototypes(const torch::Tensor& embeddings, const torch::Tensor& labels,
                               const std::vector<std::int64_t>& classes);
/// Cosine similarities [N, C] between embeddings [N, d] and class vectors [C, d].
torch::Tensor cosine_logits(const torch::Tensor& embeddings, const torch::Tensor& class_vectors);
/// The supervised contrastive loss of embeddings z [N, d] (normalised inside) with labels [N] at
/// temperature τ (see the file comment); 0 (with a graph) when no sample has a positive.
torch::Tensor supcon_loss(const torch::Tensor& z, const torch::Tensor& labels, double temperature);
/// C simplex-ETF vectors [C, d] (rows; unit norm, pairwise cosine −1/(C−1)); ConfigError unless
/// 2 <= C <= d. float32 unless `dtype` says otherwise.
torch::Tensor simplex_etf(std::int64_t classes, std::int64_t dim, std::uint64_t seed,
                          torch::ScalarType dtype = torch::kFloat32);
/// Images [N, C, H, W] rotated counter-clockwise by k × 90° (k any integer; H = W for odd k).
torch::Tensor rotate_quarter(const torch::Tensor& images, std::int64_t k);

struct LabelledBatch {
  torch::Tensor images;  ///< [N, C, H, W]
  torch::Tensor labels;  ///< int64 [N]
};
/// Pseudo-classes: every image is chosen with probability `fraction`; a chosen image with label y
/// (0 <= y < base_classes) is rotated by k quarter turns, k uniform in {1, 2, 3}, and relabelled
/// base_classes·k + y. The rest are unchanged.
LabelledBatch pseudo_class_batch(const torch::Tensor& images, const torch::Tensor& labels, std::int64_t base_classes,
                                 double fraction, at::Generator& gen);
/// The rotation pretext task: image i rotated by r_i quarter turns, r_i uniform in {0, 1, 2, 3};
/// labels = r.
LabelledBatch rotation_batch(const torch::Tensor& images, at::Generator& gen);

struct SubnetTuningOptions {
  std::int64_t steps = 20;  ///< full-batch SGD steps on the session's shots
  double lr = 0.01;         ///< SGD learning rate (small)
  double scale = 16.0;      ///< s of the cosine logits s · cos(z, v_c)
  void fields(options::Visitor& v);
};
/// Incremental sub-network tuning: `steps` SGD steps on weights[i] for i in `trainable` (updated in
/// place; the others are constants and stay bitwise unchanged) of CE(s · cos(embed(weights, x),
/// v_c), targets), with fixed class vectors [C, d] and targets in 0..C−1. `embed` maps (weights,
/// inputs) to embeddings (inputs: images, or features entering the tuned block). Returns the loss
/// before the first and after the last step.
struct SubnetTuningResult {
  double loss_before = 0, loss_after = 0;
};
SubnetTuningResult subnet_tune(std::vector<torch::Tensor>& weights, const std::vector<std::size_t>& trainable,
                               const std::function<torch::Tensor(const std::vector<torch::Tensor>&, const torch::Tensor&)>& embed,
                               const torch::Tensor& images, const torch::Tensor& targets, const torch::Tensor& class_vectors,
                               const SubnetTuningOptions& options);

// ---------------------------------------------------------------------------------------------
// The learner

struct FscilOptions {
  // encoder (models::Classifier "cnn": conv-pool-conv-pool-fc-ReLU-embed)
  std::vector<std::int64_t> channels{16, 32};  ///< channels of the two conv blocks
  std::int64_t fc = 128;                       ///< width of the fully connected layer
  std::int64_t embed = 64;                     ///< embedding dimension (the last layer's width)
  // base training
  std::int64_t steps = 600;    ///< Adam steps on the base session
  std::int64_t batch = 128;    ///< images per step
  double lr = 1e-3;            ///< Adam learning rate
  // tricks
  bool supcon = false;          ///< S1: + supcon_weight · SupCon
  double supcon_weight = 0.5;
  double temperature = 0.1;     ///< τ of SupCon
  bool etf = false;             ///< S2: fixed simplex-ETF classifier for all (incl. future, pseudo) classes
  double scale = 16.0;          ///< s of the cosine logits with etf
  bool pseudo = false;          ///< S3: pseudo-classes (rotated base images, 3B classes)
  double pseudo_fraction = 0.5;
  bool rotation = false;        ///< rotation-prediction auxiliary loss
  double rotation_weight = 0.5;
  bool subnet = false;          ///< incremental sub-network tuning in new sessions
  SubnetTuningOptions tuning;
  std::int64_t eval_batch = 1000;  ///< images per forward pass when embedding a set

  /// The keys of [fscil_learner] (the tuning options as tuning_steps, tuning_lr, tuning_scale).
  void fields(options::Visitor& v);
};

struct FscilAccuracy {
  double all = 0;                                           ///< over every seen class's test images
  double base = 0;                                          ///< over the base classes' test images
  double novel = std::numeric_limits<double>::quiet_NaN();  ///< over the new classes' (NaN before any)
};

class FscilLearner {
 public:
  /// `base_classes` B and `total_classes` (B + all new classes; the ETF reserves their vectors).
  /// The encoder is initialised from torch's global generator (seed it first).
  FscilLearner(FscilOptions options, std::int64_t base_classes, std::int64_t total_classes, std::vector<std::int64_t> input = {1, 28, 28},
               std::uint64_t etf_seed = 0);

  /// Trains the encoder on the base session (labels 0..B−1) with the configured tricks; batches
  /// drawn from `gen`. Then sets the base prototypes and keeps a snapshot (reset_to_base()).
  /// Returns the mean training loss of the last 10 % of the steps.
  double train_base(const data::ImageSet& base, at::Generator& gen);
  /// Learns one incremental session (frozen encoder, or sub-network tuning with `subnet`).
  void learn_session(const FscilSession& session);
  /// Back to the state after train_base (weights and prototypes): for the next shot draw.
  void reset_to_base();

  /// Embeddings [N, embed] of images (no grad, in eval_batch chunks).
  torch::Tensor embed(const torch::Tensor& images) const;
  /// Trunk features [N, fc] of images: the post-ReLU fully connected layer, the input of the last
  /// block (frozen in every new session, so stored class means of it stay valid).
  torch::Tensor trunk(const torch::Tensor& images) const;
  /// Predicted classes [N] among the seen ones.
  torch::Tensor predict(const torch::Tensor& images) const;
  /// Accuracy on a test set (labels among the seen classes).
  FscilAccuracy evaluate(const data::ImageSet& test) const;
  /// The same from precomputed embeddings (e.g. embed() of a test set once while the encoder is
  /// frozen) and their labels.
  FscilAccuracy evaluate_embedded(const torch::Tensor& embeddings, const torch::Tensor& labels) const;
  /// Switches sub-network tuning for the sessions that follow (an ablation can reuse one base model).
  void set_subnet(bool on) { options_.subnet = on; }

  const std::vector<std::int64_t>& seen() const { return seen_; }
  const torch::Tensor& prototypes() const { return prototypes_; }  ///< [seen, embed], seen() order
  const models::Classifier& encoder() const { return encoder_; }
  /// Indices into encoder().weights() of the last block (the embedding layer's weight and bias).
  std::vector<std::size_t> last_block() const;
  const FscilOptions& options() const { return options_; }
  /// The fixed ETF vectors [total + 3B (with pseudo), embed] (undefined without etf).
  const torch::Tensor& etf_vectors() const { return etf_; }

 private:
  torch::Tensor embed_with(const std::vector<torch::Tensor>& w, const torch::Tensor& x) const;
  FscilOptions options_;
  std::int64_t base_classes_, total_classes_;
  models::Classifier encoder_;
  torch::Tensor head_w_, head_b_, rot_w_, rot_b_, etf_;
  std::vector<std::int64_t> seen_;
  torch::Tensor prototypes_;
  std::vector<torch::Tensor> base_weights_;
  torch::Tensor base_prototypes_;
  torch::Tensor trunk_means_, base_trunk_means_;  ///< [seen, fc]: each seen class's mean trunk feature
};

}  // namespace stablelearn::continual
