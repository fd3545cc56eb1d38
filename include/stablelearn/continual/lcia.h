// LCIA's instruction-based adapter reuse on top of EMA merging (Qiao, Zhang, Tan, Qu, Ding, Xie,
// "Large Continual Instruction Assistant", ICML 2025, arXiv 2410.10868; shared/specs/
// papers-19-35.md §21), after the authors' code JingyangQiao/CoIN (instruct/LoRASelect.py: the
// codebooks and the reuse-or-new rule; peft/tuners/lora.py ema_update / ema_replace: the dynamic
// EMA, here continual::EmaMerge).
//
// Similarity. Every trained adapter has a codebook of instruction strings. The similarity of two
// strings is the code's: a TF-IDF vectoriser (sklearn TfidfVectorizer(stop_words='english'),
// defaults) fitted on the two strings alone, then the cosine of their vectors:
//   tokens       lower-cased runs of >= 2 word characters (ASCII letters, digits, '_'; the regex
//                \b\w\w+\b), words of sklearn's English stop-word list removed;
//   tf           raw counts; idf = ln((1 + 2)/(1 + df)) + 1 (smooth_idf, n = 2 documents), so a
//                term in both strings weighs 1 and a term in one of them 1 + ln(3/2);
//   cosine       of the l2-normalised tf·idf vectors; 0 when either string has no token left (sklearn
//                raises on an empty vocabulary; a string without tokens is similar to nothing).
// The similarity of a task's instructions I (duplicates removed) to a codebook C is the mean over all
// pairs (i, c) ∈ I × C of the string similarity.
//
// Reuse or new (training, LoRASelect.py's "train" branch). The first task gets adapter 0 with
// codebook I. A later task computes its similarity to every codebook; when the maximum reaches
// `threshold` (0.90 for the code's original instructions, 0.30 for its "diverse" set) the most
// similar adapter (the first on ties) is reused — training continues from its weights — and the
// instructions not yet in its codebook are appended; otherwise a new adapter is made with codebook I.
// Routing (test time, the "test" branch): instructions are routed to the most similar adapter when
// the maximum similarity reaches the threshold, else to the last adapter made. The code routes a
// whole test set by its instructions; Learner::predict routes each sample by its own instruction
// (the spec's "route each instance"), which is the same when a task's samples share one instruction.
//
// Learner (choices where the spec is silent, documented here): "an adapter" is the whole set of
// trainable tensors of the network (e.g. the LoRA factors and the classification head of
// models::AdaptedClassifier: CoIN trains the projector alongside the LoRA), so each adapter has its
// own head. A new adapter starts from `fresh()` (a new LoRA: B = 0, the pre-trained model's output),
// not from the previous task's weights. Within a task the chosen adapter is trained by SGD on
// cross-entropy, with EMA merging (EmaMerge: θ* = θ at the task's start, updated after every step
// with the automatic balance weight or a fixed α; θ ← θ* at the task's end) or without (merge =
// none, plain fine-tuning). With reuse = false there is one adapter for every task (EMA merging
// alone, the paper's ablation).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <torch/types.h>

#include "stablelearn/core/options.h"

namespace stablelearn::continual::lcia {

/// The tokens TfidfVectorizer(stop_words='english') keeps of `s`, in order (with repeats).
std::vector<std::string> tfidf_tokens(const std::string& s);
/// True for a word of sklearn's English stop-word list (lower case).
bool is_stop_word(const std::string& word);
/// Cosine similarity of the TF-IDF vectors of a and b, the vectoriser fitted on {a, b}.
double tfidf_cosine(const std::string& a, const std::string& b);
/// Mean of tfidf_cosine(i, c) over the distinct strings i of `instructions` and every c of
/// `codebook`. InternalError when either is empty.
double codebook_similarity(const std::vector<std::string>& instructions, const std::vector<std::string>& codebook);

/// What AdapterBank::select decided for a training task.
struct Selection {
  std::int64_t adapter = 0;         ///< the adapter the task trains
  bool reused = false;              ///< an existing adapter (false: a new one)
  double max_similarity = 0;        ///< max over the codebooks (0 for the first task)
  std::vector<double> similarities; ///< to each codebook before the decision
};

/// The codebooks of the adapters and the reuse-or-new rule (LoRASelect.py).
class AdapterBank {
 public:
  explicit AdapterBank(double threshold = 0.9);
  /// Similarity of `instructions` to every codebook (codebook_similarity).
  std::vector<double> similarities(const std::vector<std::string>& instructions) const;
  /// Training: reuse the most similar adapter when its similarity >= threshold (appending the new
  /// instructions to its codebook), else a new adapter (index = adapters()) with codebook
  /// `instructions` (duplicates removed).
  Selection select(const std::vector<std::string>& instructions);
  /// Test time: the most similar adapter when its similarity >= threshold, else the last one.
  /// InternalError before the first select.
  std::int64_t route(const std::vector<std::string>& instructions) const;
  std::int64_t adapters() const { return static_cast<std::int64_t>(codebooks_.size()); }
  const std::vector<std::vector<std::string>>& codebooks() const { return codebooks_; }
  double threshold() const { return threshold_; }

 private:
  double threshold_;
  std::vector<std::vector<std::string>> codebooks_;
};

struct LciaOptions {
  std::string merge = "auto";  ///< none | fixed | auto: no EMA, EMA with α = fallback, DEMA
  double fallback = 0.01;      ///< the fixed α, and DEMA's α outside (0, 1)
  bool reuse = true;           ///< the adapter bank (false: one adapter for every task)
  double threshold = 0.9;      ///< reuse when the codebook similarity reaches it
  std::int64_t epochs = 1;
  std::int64_t batch = 64;
  double lr = 0.05;
  double momentum = 0.0;
  void fields(options::Visitor& v);
};

/// Logits of inputs x with the trainable tensors w of one adapter.
using AdapterForward = std::function<torch::Tensor(const torch::Tensor& x, const std::vector<torch::Tensor>& w)>;
/// A new adapter's tensors (the learner copies them and makes them trainable).
using AdapterFactory = std::function<std::vector<torch::Tensor>()>;

/// Learns a stream of tasks (inputs, labels, instructions) with adapter reuse and EMA merging.
class Learner {
 public:
  Learner(LciaOptions o, AdapterForward forward, AdapterFactory fresh, std::uint64_t seed);
  /// Chooses the adapter (bank or the single one), trains it on (x, y) and returns the choice.
  Selection learn_task(const torch::Tensor& x, const torch::Tensor& y, const std::vector<std::string>& instructions);
  /// Predicted labels of x: each sample routed by its instruction (instructions: one per sample, or
  /// one for all); without reuse the single adapter.
  torch::Tensor predict(const torch::Tensor& x, const std::vector<std::string>& instructions) const;
  /// The adapter that `instructions` are routed to (0 without reuse).
  std::int64_t route(const std::vector<std::string>& instructions) const;
  std::int64_t adapters() const { return static_cast<std::int64_t>(adapters_.size()); }
  const std::vector<std::vector<torch::Tensor>>& adapter_weights() const { return adapters_; }
  const AdapterBank& bank() const { return bank_; }
  /// The EMA weights α of every step of the last task, averaged over the tensors (empty for none).
  const std::vector<double>& last_alphas() const { return alphas_; }

 private:
  LciaOptions o_;
  AdapterForward forward_;
  AdapterFactory fresh_;
  AdapterBank bank_;
  std::vector<std::vector<torch::Tensor>> adapters_;
  std::vector<double> alphas_;
  torch::Generator gen_;
};

}  // namespace stablelearn::continual::lcia
