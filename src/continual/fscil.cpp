#include "stablelearn/continual/fscil.h"

#include <cmath>

#include <torch/nn/functional/linear.h>
#include <torch/nn/functional/loss.h>
#include <torch/optim/adam.h>
#include <torch/optim/sgd.h>

#include "stablelearn/core/error.h"

namespace stablelearn::continual {

namespace F = torch::nn::functional;

// ---------------------------------------------------------------------------------------------
// Stream

void FscilStreamOptions::fields(options::Visitor& v) {
  v("base_classes", base_classes, "classes of the base session (0..B-1)").at_least(2);
  v("ways", ways, "new classes per incremental session (N of N-way K-shot)").at_least(1);
  v("shots", shots, "training images per new class (K of N-way K-shot)").at_least(1);
  v("sessions", sessions, "incremental sessions after the base session").at_least(1);
  v("base_per_class", base_per_class, "base training images per class (the first ones); 0 = all").at_least(0);
  v("test_per_class", test_per_class, "test images per class (the first ones); 0 = all").at_least(0);
  v("seed", seed, "the shot draw (seed of the generator that picks the K shots)").at_least(0);
}

namespace {

torch::Tensor indices_of(const torch::Tensor& labels, std::int64_t c) { return (labels == c).nonzero().squeeze(1); }

/// The indices of class c's images in `labels` ("test" or "training" images, `what`), the first
/// `limit` of them when limit > 0: a DataError when the class has none, a ConfigError naming
/// fscil.<key> when it has fewer than `limit`.
torch::Tensor first_of_class(const torch::Tensor& labels, std::int64_t c, std::int64_t limit, const char* key,
                             const char* what) {
  auto i = indices_of(labels, c);
  SL_CHECK(i.size(0) > 0, DataError, "make_fscil_stream: class ", c, " has no ", what, " image");
  if (limit > 0) {
    SL_CHECK(limit <= i.size(0), ConfigError, "fscil.", key, " = ", limit, " exceeds the ", i.size(0), " ", what,
             " images of class ", c);
    i = i.slice(0, 0, limit);
  }
  return i;
}

data::ImageSet gather(const data::ImageSet& s, const std::vector<torch::Tensor>& idx) {
  const auto i = torch::cat(idx);
  return {s.images.index_select(0, i), s.labels.index_select(0, i)};
}

}  // namespace

std::vector<FscilSession> make_fscil_stream(const data::ImageDataset& data, const FscilStreamOptions& o) {
  options::check(o, "fscil");
  SL_CHECK(data.train.size() > 0 && data.test.size() > 0, DataError, "make_fscil_stream: empty train or test set");
  const auto classes = data.train.labels.max().item<std::int64_t>() + 1;
  const auto total = o.base_classes + o.ways * o.sessions;
  SL_CHECK(o.base_classes < classes, ConfigError, "fscil.base_classes = ", o.base_classes, " leaves no new class: the data has ",
           classes, " classes");
  SL_CHECK(total <= classes, ConfigError, "fscil.sessions = ", o.sessions, " (with fscil.ways = ", o.ways, ", fscil.base_classes = ",
           o.base_classes, ") needs ", total, " classes, but the data has ", classes);
  // Test images per class (the first test_per_class).
  std::vector<torch::Tensor> test_idx;
  for (std::int64_t c = 0; c < total; ++c) {
    test_idx.push_back(first_of_class(data.test.labels, c, o.test_per_class, "test_per_class", "test"));
  }
  std::vector<FscilSession> out;
  FscilSession base;
  std::vector<torch::Tensor> base_idx;
  for (std::int64_t c = 0; c < o.base_classes; ++c) {
    base_idx.push_back(first_of_class(data.train.labels, c, o.base_per_class, "base_per_class", "training"));
    base.classes.push_back(c);
  }
  base.train = gather(data.train, base_idx);
  base.seen = base.classes;
  base.test = gather(data.test, std::vector<torch::Tensor>(test_idx.begin(), test_idx.begin() + o.base_classes));
  out.push_back(std::move(base));
  auto gen = at::detail::createCPUGenerator(static_cast<std::uint64_t>(o.seed));
  for (std::int64_t t = 1; t <= o.sessions; ++t) {
    FscilSession s;
    s.id = t;
    s.seen = out.back().seen;
    std::vector<torch::Tensor> shot_idx;
    for (std::int64_t j = 0; j < o.ways; ++j) {
      const auto c = o.base_classes + (t - 1) * o.ways + j;
      const auto i = indices_of(data.train.labels, c);
      SL_CHECK(o.shots <= i.size(0), ConfigError, "fscil.shots = ", o.shots, " exceeds the ", i.size(0), " training images of class ",
               c);
      const auto perm = torch::randperm(i.size(0), gen, torch::TensorOptions().dtype(torch::kInt64));
      shot_idx.push_back(i.index_select(0, perm.slice(0, 0, o.shots)));
      s.classes.push_back(c);
      s.seen.push_back(c);
    }
    s.train = gather(data.train, shot_idx);
    s.test = gather(data.test, std::vector<torch::Tensor>(test_idx.begin(), test_idx.begin() + static_cast<std::ptrdiff_t>(s.seen.size())));
    out.push_back(std::move(s));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Functional pieces

namespace {
torch::Tensor l2_normalise(const torch::Tensor& z) { return z / z.norm(2, 1, true).clamp_min(1e-12); }
}  // namespace

torch::Tensor class_prototypes(const torch::Tensor& embeddings, const torch::Tensor& labels, const std::vector<std::int64_t>& classes) {
  SL_CHECK(embeddings.dim() == 2 && labels.dim() == 1 && labels.size(0) == embeddings.size(0), ShapeError,
           "class_prototypes: expected embeddings [N, d] and labels [N], got ", embeddings.sizes(), " and ", labels.sizes());
  SL_CHECK(!classes.empty(), ShapeError, "class_prototypes: no class");
  const auto zn = l2_normalise(embeddings);
  std::vector<torch::Tensor> rows;
  for (const auto c : classes) {
    const auto i = indices_of(labels, c);
    SL_CHECK(i.size(0) > 0, DataError, "class_prototypes: class ", c, " has no embedding");
    rows.push_back(zn.index_select(0, i).mean(0));
  }
  return torch::stack(rows);
}

torch::Tensor cosine_logits(const torch::Tensor& embeddings, const torch::Tensor& class_vectors) {
  SL_CHECK(embeddings.dim() == 2 && class_vectors.dim() == 2 && embeddings.size(1) == class_vectors.size(1), ShapeError,
           "cosine_logits: expected embeddings [N, d] and class vectors [C, d], got ", embeddings.sizes(), " and ",
           class_vectors.sizes());
  return l2_normalise(embeddings).matmul(l2_normalise(class_vectors).t());
}

torch::Tensor supcon_loss(const torch::Tensor& z, const torch::Tensor& labels, double temperature) {
  SL_CHECK(z.dim() == 2 && labels.dim() == 1 && labels.size(0) == z.size(0), ShapeError,
           "supcon_loss: expected z [N, d] and labels [N], got ", z.sizes(), " and ", labels.sizes());
  SL_CHECK(temperature > 0, ConfigError, "supcon_loss: temperature must be > 0, got ", temperature);
  const auto n = z.size(0);
  const auto zn = l2_normalise(z);
  const auto self = torch::eye(n, torch::TensorOptions().dtype(torch::kBool).device(z.device()));
  const auto logits = (zn.matmul(zn.t()) / temperature).masked_fill(self, -std::numeric_limits<double>::infinity());
  const auto log_prob = logits - logits.logsumexp(1, true);  // log softmax over a ≠ i
  const auto pos = labels.unsqueeze(0).eq(labels.unsqueeze(1)).logical_and(self.logical_not());
  const auto npos = pos.sum(1);
  const auto anchors = npos.gt(0);
  if (!anchors.any().item<bool>()) return (z * 0).sum();
  const auto mean_pos = log_prob.masked_fill(pos.logical_not(), 0).sum(1) / npos.clamp_min(1).to(z.scalar_type());
  return -mean_pos.masked_select(anchors).mean();
}

torch::Tensor simplex_etf(std::int64_t classes, std::int64_t dim, std::uint64_t seed, torch::ScalarType dtype) {
  SL_CHECK(classes >= 2 && classes <= dim, ConfigError, "simplex_etf: needs 2 <= classes <= dim, got classes = ", classes,
           ", dim = ", dim, " (raise the embedding dimension)");
  auto gen = at::detail::createCPUGenerator(seed);
  const auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  const auto u = std::get<0>(torch::linalg_qr(torch::randn({dim, classes}, gen, f64)));  // [d, C], orthonormal columns
  const auto c = static_cast<double>(classes);
  const auto centre = torch::eye(classes, f64) - torch::full({classes, classes}, 1.0 / c, f64);
  return (std::sqrt(c / (c - 1)) * u.matmul(centre)).t().contiguous().to(dtype);
}

torch::Tensor rotate_quarter(const torch::Tensor& images, std::int64_t k) {
  SL_CHECK(images.dim() == 4, ShapeError, "rotate_quarter: expected images [N, C, H, W], got ", images.sizes());
  return torch::rot90(images, k, {2, 3});
}

LabelledBatch pseudo_class_batch(const torch::Tensor& images, const torch::Tensor& labels, std::int64_t base_classes, double fraction,
                                 at::Generator& gen) {
  SL_CHECK(images.dim() == 4 && labels.dim() == 1 && labels.size(0) == images.size(0), ShapeError,
           "pseudo_class_batch: expected images [N, C, H, W] and labels [N], got ", images.sizes(), " and ", labels.sizes());
  SL_CHECK(labels.numel() == 0 || (labels.min().item<std::int64_t>() >= 0 && labels.max().item<std::int64_t>() < base_classes),
           DataError, "pseudo_class_batch: labels must lie in 0..", base_classes - 1);
  const auto n = images.size(0);
  const auto chosen = torch::rand({n}, gen).lt(fraction);
  const auto k = torch::randint(1, 4, {n}, gen, torch::TensorOptions().dtype(torch::kInt64));
  LabelledBatch out{images.clone(), labels.clone()};
  for (std::int64_t q = 1; q <= 3; ++q) {
    const auto sel = chosen.logical_and(k.eq(q)).nonzero().squeeze(1);
    if (sel.numel() == 0) continue;
    out.images.index_copy_(0, sel, rotate_quarter(images.index_select(0, sel), q));
    out.labels.index_copy_(0, sel, labels.index_select(0, sel) + base_classes * q);
  }
  return out;
}

LabelledBatch rotation_batch(const torch::Tensor& images, at::Generator& gen) {
  SL_CHECK(images.dim() == 4, ShapeError, "rotation_batch: expected images [N, C, H, W], got ", images.sizes());
  const auto r = torch::randint(0, 4, {images.size(0)}, gen, torch::TensorOptions().dtype(torch::kInt64));
  LabelledBatch out{images.clone(), r};
  for (std::int64_t q = 1; q <= 3; ++q) {
    const auto sel = r.eq(q).nonzero().squeeze(1);
    if (sel.numel() > 0) out.images.index_copy_(0, sel, rotate_quarter(images.index_select(0, sel), q));
  }
  return out;
}

void SubnetTuningOptions::fields(options::Visitor& v) {
  v("steps", steps, "full-batch SGD steps on the session's shots").at_least(1);
  v("lr", lr, "SGD learning rate").above(0.0);
  v("scale", scale, "s of the cosine logits s cos(z, v_c)").above(0.0);
}

SubnetTuningResult subnet_tune(std::vector<torch::Tensor>& weights, const std::vector<std::size_t>& trainable,
                               const std::function<torch::Tensor(const std::vector<torch::Tensor>&, const torch::Tensor&)>& embed,
                               const torch::Tensor& images, const torch::Tensor& targets, const torch::Tensor& class_vectors,
                               const SubnetTuningOptions& o) {
  options::check(o, "tuning");
  SL_CHECK(!trainable.empty(), ConfigError, "subnet_tune: no trainable weight");
  SL_CHECK(targets.dim() == 1 && targets.size(0) == images.size(0), ShapeError, "subnet_tune: expected targets [", images.size(0),
           "], got ", targets.sizes());
  std::vector<torch::Tensor> w;
  for (const auto& t : weights) w.push_back(t.detach());
  std::vector<torch::Tensor> params;
  for (const auto i : trainable) {
    SL_CHECK(i < weights.size(), ShapeError, "subnet_tune: trainable index ", i, " out of range (", weights.size(), " weights)");
    w[i] = weights[i].detach().clone().requires_grad_(true);
    params.push_back(w[i]);
  }
  const auto vectors = class_vectors.detach();
  const auto loss = [&] { return F::cross_entropy(o.scale * cosine_logits(embed(w, images), vectors), targets); };
  torch::optim::SGD opt(params, torch::optim::SGDOptions(o.lr));
  SubnetTuningResult r;
  for (std::int64_t s = 0; s < o.steps; ++s) {
    opt.zero_grad();
    const auto l = loss();
    if (s == 0) r.loss_before = l.item<double>();
    l.backward();
    opt.step();
  }
  torch::NoGradGuard ng;
  r.loss_after = loss().item<double>();
  for (const auto i : trainable) weights[i].copy_(w[i]);
  return r;
}

// ---------------------------------------------------------------------------------------------
// The learner

void FscilOptions::fields(options::Visitor& v) {
  v("channels", channels, "channels of the encoder's two conv blocks")
      .expect(channels.size() == 2 && channels[0] >= 1 && channels[1] >= 1, "two positive channel counts");
  v("fc", fc, "width of the encoder's fully connected layer").at_least(1);
  v("embed", embed, "embedding dimension (the encoder's last layer)").at_least(2);
  v("steps", steps, "Adam steps of base training").at_least(1);
  v("batch", batch, "images per base training step").at_least(2);
  v("lr", lr, "Adam learning rate of base training").above(0.0);
  v("supcon", supcon, "add the supervised contrastive loss in base training");
  v("supcon_weight", supcon_weight, "weight of the SupCon loss").at_least(0.0);
  v("temperature", temperature, "SupCon temperature").above(0.0);
  v("etf", etf, "fixed simplex-ETF classifier vectors for all classes (reserved ones for future classes)");
  v("scale", scale, "s of the cosine logits with etf").above(0.0);
  v("pseudo", pseudo, "pseudo-classes: rotated base images (90/180/270 degrees) as 3B extra classes");
  v("pseudo_fraction", pseudo_fraction, "fraction of each batch turned into pseudo-class images").in(0.0, 1.0);
  v("rotation", rotation, "rotation-prediction auxiliary loss (4-way head)");
  v("rotation_weight", rotation_weight, "weight of the rotation loss").at_least(0.0);
  v("subnet", subnet, "incremental sub-network tuning (the last layer) in new sessions");
  v("tuning_steps", tuning.steps, "sub-network tuning: SGD steps").at_least(1);
  v("tuning_lr", tuning.lr, "sub-network tuning: learning rate").above(0.0);
  v("tuning_scale", tuning.scale, "sub-network tuning: cosine logit scale").above(0.0);
  v("eval_batch", eval_batch, "images per forward pass when embedding a set").at_least(1);
}

namespace {
models::ClassifierOptions encoder_options(const FscilOptions& o, std::vector<std::int64_t> input) {
  models::ClassifierOptions m;
  m.kind = "cnn";
  m.channels = o.channels;
  m.fc = o.fc;
  m.classes = o.embed;
  m.input = std::move(input);
  return m;
}
}  // namespace

FscilLearner::FscilLearner(FscilOptions options, std::int64_t base_classes, std::int64_t total_classes, std::vector<std::int64_t> input,
                           std::uint64_t etf_seed)
    : options_(options::checked(std::move(options), "fscil_learner")),
      base_classes_(base_classes),
      total_classes_(total_classes),
      encoder_(encoder_options(options_, std::move(input))) {
  SL_CHECK(base_classes >= 2 && total_classes > base_classes, ConfigError, "FscilLearner: needs 2 <= base classes < total classes, got ",
           base_classes, " and ", total_classes);
  const auto d = options_.embed;
  const auto head = base_classes_ * (options_.pseudo ? 4 : 1);
  if (options_.etf) {
    etf_ = simplex_etf(total_classes_ + (options_.pseudo ? 3 * base_classes_ : 0), d, etf_seed);
  } else {
    head_w_ = (torch::randn({head, d}) / std::sqrt(static_cast<double>(d))).requires_grad_(true);
    head_b_ = torch::zeros({head}).requires_grad_(true);
  }
  rot_w_ = (torch::randn({4, d}) / std::sqrt(static_cast<double>(d))).requires_grad_(true);
  rot_b_ = torch::zeros({4}).requires_grad_(true);
}

torch::Tensor FscilLearner::embed_with(const std::vector<torch::Tensor>& w, const torch::Tensor& x) const {
  return encoder_->forward(x, w);
}

std::vector<std::size_t> FscilLearner::last_block() const {
  const auto n = encoder_->weights().size();
  return {n - 2, n - 1};
}

double FscilLearner::train_base(const data::ImageSet& base, at::Generator& gen) {
  SL_CHECK(base.size() > 0, DataError, "FscilLearner::train_base: empty base session");
  SL_CHECK(base.labels.min().item<std::int64_t>() >= 0 && base.labels.max().item<std::int64_t>() < base_classes_, DataError,
           "FscilLearner::train_base: labels must lie in 0..", base_classes_ - 1);
  const auto& o = options_;
  std::vector<torch::Tensor> params = encoder_->parameters();
  if (!o.etf) params.insert(params.end(), {head_w_, head_b_});
  if (o.rotation) params.insert(params.end(), {rot_w_, rot_b_});
  torch::optim::Adam opt(params, torch::optim::AdamOptions(o.lr));
  const auto n = base.size();
  const auto tail_from = o.steps - std::max<std::int64_t>(1, o.steps / 10);
  double tail = 0;
  for (std::int64_t step = 0; step < o.steps; ++step) {
    const auto idx = torch::randint(0, n, {o.batch}, gen, torch::TensorOptions().dtype(torch::kInt64));
    const auto x0 = base.images.index_select(0, idx);
    auto x = x0;
    auto y = base.labels.index_select(0, idx);
    if (o.pseudo) {
      auto b = pseudo_class_batch(x0, y, base_classes_, o.pseudo_fraction, gen);
      x = b.images;
      y = b.labels;
    }
    const auto z = encoder_->forward(x);
    torch::Tensor loss;
    if (o.etf) {
      // Rows of etf_: base classes 0..B−1, reserved B..total−1, pseudo-class B·k + y at total + (k−1)B + y.
      const auto target = torch::where(y.lt(base_classes_), y, y + (total_classes_ - base_classes_));
      loss = F::cross_entropy(o.scale * cosine_logits(z, etf_), target);
    } else {
      loss = F::cross_entropy(F::linear(z, head_w_, head_b_), y);
    }
    if (o.supcon) loss = loss + o.supcon_weight * supcon_loss(z, y, o.temperature);
    if (o.rotation) {
      const auto r = rotation_batch(x0, gen);
      loss = loss + o.rotation_weight * F::cross_entropy(F::linear(encoder_->forward(r.images), rot_w_, rot_b_), r.labels);
    }
    const double l = loss.item<double>();
    SL_CHECK(std::isfinite(l), DataError, "FscilLearner::train_base: the loss is not finite at step ", step, "; lower lr");
    if (step >= tail_from) tail += l;
    opt.zero_grad();
    loss.backward();
    opt.step();
  }
  seen_.clear();
  for (std::int64_t c = 0; c < base_classes_; ++c) seen_.push_back(c);
  prototypes_ = class_prototypes(embed(base.images), base.labels, seen_);
  base_weights_.clear();
  for (const auto& w : encoder_->weights()) base_weights_.push_back(w.detach().clone());
  base_prototypes_ = prototypes_.clone();
  const auto h = trunk(base.images);
  std::vector<torch::Tensor> means;
  for (const auto c : seen_) means.push_back(h.index_select(0, indices_of(base.labels, c)).mean(0));
  trunk_means_ = torch::stack(means);
  base_trunk_means_ = trunk_means_.clone();
  return tail / static_cast<double>(o.steps - tail_from);
}

void FscilLearner::learn_session(const FscilSession& s) {
  SL_CHECK(!seen_.empty(), InternalError, "FscilLearner::learn_session before train_base");
  SL_CHECK(!s.classes.empty() && s.train.size() > 0, DataError, "FscilLearner::learn_session: session ", s.id, " has no data");
  for (const auto c : s.classes) {
    SL_CHECK(std::find(seen_.begin(), seen_.end(), c) == seen_.end(), DataError, "FscilLearner::learn_session: class ", c,
             " was seen already");
    SL_CHECK(c >= base_classes_ && c < total_classes_, DataError, "FscilLearner::learn_session: class ", c, " is outside ",
             base_classes_, "..", total_classes_ - 1);
  }
  const auto h = trunk(s.train.images);
  if (options_.subnet) {
    const auto new_vectors = options_.etf ? etf_.index_select(0, torch::tensor(s.classes, torch::kInt64))
                                          : class_prototypes(embed(s.train.images), s.train.labels, s.classes);
    const auto vectors = torch::cat({prototypes_, new_vectors});
    const auto old = static_cast<std::int64_t>(seen_.size());
    auto lookup = torch::full({total_classes_}, -1, torch::kInt64);
    for (std::size_t i = 0; i < s.classes.size(); ++i) lookup[s.classes[i]] = old + static_cast<std::int64_t>(i);
    const auto shot_targets = lookup.index_select(0, s.train.labels);
    SL_CHECK(shot_targets.min().item<std::int64_t>() >= 0, DataError,
             "FscilLearner::learn_session: a label is not among the session's classes");
    // The shots' trunk features and one anchor row per old class (its stored mean trunk feature).
    const auto inputs = torch::cat({h, trunk_means_});
    const auto targets = torch::cat({shot_targets, torch::arange(old, torch::kInt64)});
    auto w = encoder_->weights();
    const auto last = [](const std::vector<torch::Tensor>& ws, const torch::Tensor& f) {
      return F::linear(f, ws[ws.size() - 2], ws[ws.size() - 1]);
    };
    subnet_tune(w, last_block(), last, inputs, targets, vectors, options_.tuning);
  }
  std::vector<torch::Tensor> means;
  for (const auto c : s.classes) means.push_back(h.index_select(0, indices_of(s.train.labels, c)).mean(0));
  trunk_means_ = torch::cat({trunk_means_, torch::stack(means)});
  prototypes_ = torch::cat({prototypes_, class_prototypes(embed(s.train.images), s.train.labels, s.classes)});
  seen_.insert(seen_.end(), s.classes.begin(), s.classes.end());
}

void FscilLearner::reset_to_base() {
  SL_CHECK(!base_weights_.empty(), InternalError, "FscilLearner::reset_to_base before train_base");
  torch::NoGradGuard ng;
  const auto& w = encoder_->weights();
  for (std::size_t i = 0; i < w.size(); ++i) w[i].copy_(base_weights_[i]);
  prototypes_ = base_prototypes_.clone();
  trunk_means_ = base_trunk_means_.clone();
  seen_.clear();
  for (std::int64_t c = 0; c < base_classes_; ++c) seen_.push_back(c);
}

torch::Tensor FscilLearner::embed(const torch::Tensor& images) const {
  torch::NoGradGuard ng;
  std::vector<torch::Tensor> parts;
  for (std::int64_t s = 0; s < images.size(0); s += options_.eval_batch)
    parts.push_back(embed_with(encoder_->weights(), images.slice(0, s, std::min(images.size(0), s + options_.eval_batch))));
  return torch::cat(parts);
}

torch::Tensor FscilLearner::trunk(const torch::Tensor& images) const {
  torch::NoGradGuard ng;
  std::vector<torch::Tensor> parts;
  for (std::int64_t s = 0; s < images.size(0); s += options_.eval_batch)
    parts.push_back(
        encoder_->hidden_activations(images.slice(0, s, std::min(images.size(0), s + options_.eval_batch)), encoder_->weights()).back());
  return torch::cat(parts);
}

torch::Tensor FscilLearner::predict(const torch::Tensor& images) const {
  SL_CHECK(!seen_.empty(), InternalError, "FscilLearner::predict before train_base");
  const auto best = cosine_logits(embed(images), prototypes_).argmax(1);
  return torch::tensor(seen_, torch::kInt64).index_select(0, best);
}

FscilAccuracy FscilLearner::evaluate(const data::ImageSet& test) const {
  SL_CHECK(test.size() > 0, DataError, "FscilLearner::evaluate: empty test set");
  return evaluate_embedded(embed(test.images), test.labels);
}

FscilAccuracy FscilLearner::evaluate_embedded(const torch::Tensor& embeddings, const torch::Tensor& labels) const {
  SL_CHECK(!seen_.empty(), InternalError, "FscilLearner::evaluate before train_base");
  SL_CHECK(embeddings.dim() == 2 && labels.dim() == 1 && labels.size(0) == embeddings.size(0) && labels.size(0) > 0, ShapeError,
           "FscilLearner::evaluate_embedded: expected embeddings [N, d] and labels [N] (N > 0), got ", embeddings.sizes(), " and ",
           labels.sizes());
  const auto best = cosine_logits(embeddings, prototypes_).argmax(1);
  const auto correct = torch::tensor(seen_, torch::kInt64).index_select(0, best).eq(labels).to(torch::kFloat64);
  const auto base = labels.lt(base_classes_);
  FscilAccuracy a;
  a.all = correct.mean().item<double>();
  a.base = base.any().item<bool>() ? correct.masked_select(base).mean().item<double>() : std::nan("");
  if (base.logical_not().any().item<bool>()) a.novel = correct.masked_select(base.logical_not()).mean().item<double>();
  return a;
}

}  // namespace stablelearn::continual
