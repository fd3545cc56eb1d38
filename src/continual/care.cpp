// CaRE's bi-level routing mixture-of-experts adapters and learner (see care.h).
#include "stablelearn/continual/care.h"

#include <chrono>
#include <cmath>
#include <limits>

#include "stablelearn/core/error.h"

namespace stablelearn::continual::care {

namespace F = torch::nn::functional;

void CareOptions::fields(options::Visitor& v) {
  v("dim", dim, "feature width D of the blocks").at_least(1);
  v("expert_dim", expert_dim, "bottleneck of each task's expert").at_least(1);
  v("adapter_dim", adapter_dim, "bottleneck of the shared adapter").at_least(1);
  v("topk_routers", topk_routers, "M routers kept by lowest recogniser entropy").at_least(1);
  v("topk_experts", topk_experts, "K experts kept per router").at_least(1);
  v("dropout", dropout, "dropout inside the adapters").in(0.0, 0.99);
  v("ema_decay", ema_decay, "mu of the shared adapter's anchor blend").in(0.0, 1.0);
  v("shared_adapter", shared_adapter, "use the shared EMA-anchored adapter");
  v("self_distillation", self_distillation, "add the KL term to the per-layer auxiliary loss");
  v("scale", scale, "scale s of the cosine loss").above(0.0);
  v("margin", margin, "margin m of CosFace").at_least(0.0);
  v("epochs", epochs, "epochs of task 0 (later tasks: two phases of epochs/2)").at_least(2);
  v("batch", batch, "minibatch size").at_least(1);
  v("lr", lr, "SGD learning rate").above(0.0);
  v("min_lr", min_lr, "end of the cosine schedule").at_least(0.0);
  v("momentum", momentum, "SGD momentum").in(0.0, 0.999);
  v("weight_decay", weight_decay, "SGD weight decay").at_least(0.0);
  v("ca_epochs", ca_epochs, "classifier-alignment epochs").at_least(0);
  v("ca_lr", ca_lr, "classifier-alignment learning rate").above(0.0);
  v("ca_samples", ca_samples, "pseudo-features per class and per alignment step").at_least(1);
  v("ca_decay", ca_decay, "the code's decay factor on the stored means");
}

void CareOptions::cross_check() const {
  SL_CHECK(min_lr <= lr, ConfigError, "care.min_lr: must not exceed lr = ", lr, ", got ", min_lr);
}

torch::Tensor entropy(const torch::Tensor& logits) {
  const auto p = torch::softmax(logits, -1);
  return -(p * torch::log(p + 1e-10)).sum(-1);
}

torch::Tensor lowest_entropy(const torch::Tensor& h, std::int64_t m) {
  SL_CHECK(h.dim() == 2 && m >= 1 && m <= h.size(0), ShapeError, "care::lowest_entropy: entropy [T, B] with 1 <= m <= T, got ",
           h.sizes(), " and m = ", m);
  return std::get<1>(h.topk(m, 0, /*largest=*/false));
}

torch::Tensor route_weights(const torch::Tensor& scores, std::int64_t k) {
  auto s = scores;
  if (k < s.size(-1)) {
    const auto idx = std::get<1>(s.topk(k, -1));
    const auto keep = torch::zeros_like(s, torch::kBool).scatter(-1, idx, true);
    s = s.masked_fill(keep.logical_not(), -100.0);
  }
  return torch::softmax(s, -1);
}

void ema_anchor(const std::vector<torch::Tensor>& params, const std::vector<torch::Tensor>& anchor, double mu) {
  SL_CHECK(params.size() == anchor.size(), ShapeError, "care::ema_anchor: ", params.size(), " parameters, ", anchor.size(), " anchors");
  torch::NoGradGuard ng;
  for (std::size_t i = 0; i < params.size(); ++i) params[i].copy_(anchor[i] * mu + params[i] * (1 - mu));
}

torch::Tensor cosface_loss(const torch::Tensor& wf, const torch::Tensor& labels, double s, double m) {
  auto z = wf;
  if (m != 0) z = wf - m * F::one_hot(labels, wf.size(1)).to(wf.dtype());
  return F::cross_entropy(s * z, labels);
}

torch::Tensor distillation_kl(const torch::Tensor& student, const torch::Tensor& teacher, double tau) {
  const auto t = torch::softmax(teacher.detach() / tau, 1);
  const auto log_s = torch::log_softmax(student / tau, 1);
  return F::kl_div(log_s, t, F::KLDivFuncOptions().reduction(torch::kBatchMean)) * (tau * tau);
}

namespace {
torch::Tensor samples_from_cholesky(const torch::Tensor& mean, const torch::Tensor& chol, std::int64_t n, torch::Generator& gen) {
  const auto eps = torch::randn({n, chol.size(0)}, gen, torch::TensorOptions().dtype(torch::kFloat64));
  return (mean.to(torch::kFloat64).unsqueeze(0) + eps.mm(chol.t())).to(torch::kFloat32);
}

// nn.init.trunc_normal_(w, std) (truncation at ±2 absolute, as PyTorch's defaults a = −2, b = 2).
void trunc_normal(torch::Tensor w, double std) {
  torch::NoGradGuard ng;
  w.normal_(0, std);
  for (int it = 0; it < 100; ++it) {
    const auto bad = w.abs() > 2.0;
    if (!bad.any().item<bool>()) break;
    w.masked_scatter_(bad, torch::randn_like(w).mul_(std).masked_select(bad));
  }
}

std::int64_t floor_div(std::int64_t a, std::int64_t b) {
  const auto q = a / b, r = a % b;
  return (r != 0 && ((r < 0) != (b < 0))) ? q - 1 : q;
}
}  // namespace

torch::Tensor gaussian_samples(const torch::Tensor& mean, const torch::Tensor& cov, std::int64_t n, torch::Generator gen) {
  return samples_from_cholesky(mean, torch::linalg_cholesky(cov.to(torch::kFloat64)), n, gen);
}

double ca_mean_factor(std::int64_t c, std::int64_t task_classes, std::int64_t t) {
  const auto t_id = floor_div(c, -task_classes);
  return 0.9 + static_cast<double>(t_id + 1) / static_cast<double>(t + 1) * 0.1;
}

// ---------------------------------------------------------------------------------------------
AdapterImpl::AdapterImpl(std::int64_t dim, std::int64_t bottleneck, double dropout) {
  norm = register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim})));
  down = register_module("down", torch::nn::Linear(dim, bottleneck));
  up = register_module("up", torch::nn::Linear(bottleneck, dim));
  drop = register_module("drop", torch::nn::Dropout(dropout));
  scale = register_parameter("scale", torch::zeros({dim}));
  torch::NoGradGuard ng;  // kaiming_uniform(a = √5) weights (libtorch's default), zero biases
  down->bias.zero_();
  up->bias.zero_();
}

torch::Tensor AdapterImpl::forward(const torch::Tensor& x) {
  return up(drop(torch::relu(down(norm(x))))) * scale;
}

BrMoeLayerImpl::BrMoeLayerImpl(const CareOptions& o) : o_(o) {
  list_ = register_module("tasks", torch::nn::ModuleList());
  if (o_.shared_adapter) shared = register_module("shared", Adapter(o_.dim, o_.adapter_dim, o_.dropout));
}

void BrMoeLayerImpl::add_task(std::int64_t classes) {
  Adapter e(o_.dim, o_.expert_dim, o_.dropout);
  const auto n = experts.size();
  if (n > 1) {  // the mean of experts 0..n−2 (the code's range(len(self.adapter) - 1))
    torch::NoGradGuard ng;
    auto dst = e->named_parameters();
    for (auto& kv : dst) {
      std::vector<torch::Tensor> src;
      for (std::size_t i = 0; i + 1 < n; ++i) src.push_back(experts[i]->named_parameters()[kv.key()]);
      kv.value().copy_(torch::stack(src, 0).mean(0));
    }
  }
  torch::nn::Linear r(o_.dim, static_cast<std::int64_t>(n) + 1);
  trunc_normal(r->weight, 0.02);
  {
    torch::NoGradGuard ng;
    r->bias.zero_();
  }
  torch::nn::LayerNorm ln(torch::nn::LayerNormOptions({o_.dim}));
  trunc_normal(ln->weight, 0.02);
  torch::nn::Sequential c(ln, torch::nn::Linear(o_.dim, classes));
  stack_.experts = -1;
  experts.push_back(e);
  routers.push_back(r);
  recognisers.push_back(c);
  list_->push_back(e);
  list_->push_back(r);
  list_->push_back(c);
  for (auto& p : parameters()) p.set_requires_grad(false);
  for (auto& p : trainable()) p.set_requires_grad(true);
  e->train(is_training());
  r->train(is_training());
  c->train(is_training());
}

std::vector<torch::Tensor> BrMoeLayerImpl::trainable() const {
  std::vector<torch::Tensor> v;
  if (experts.empty()) return v;
  for (const auto& m : {experts.back()->parameters(), routers.back()->parameters(), recognisers.back()->parameters()})
    v.insert(v.end(), m.begin(), m.end());
  if (shared) {
    const auto s = shared->parameters();
    v.insert(v.end(), s.begin(), s.end());
  }
  return v;
}

void BrMoeLayerImpl::begin_phase(bool use_ema) {
  anchor_.clear();
  if (!shared || !use_ema || experts.size() < 2) return;
  for (const auto& p : shared->parameters()) anchor_.push_back(p.detach().clone());
}

torch::Tensor BrMoeLayerImpl::shared_out(const torch::Tensor& z) {
  if (!shared) return torch::zeros_like(z);
  if (is_training() && !anchor_.empty()) ema_anchor(shared->parameters(), anchor_, o_.ema_decay);
  return shared->forward(z);
}

void BrMoeLayerImpl::build_stack() {
  torch::NoGradGuard ng;
  const auto e = tasks() - 1;
  stack_ = Stack{};
  stack_.experts = e;
  if (e <= 0) return;
  std::vector<torch::Tensor> lw, lb, dw, db, uw, ub, sc, rlw, rlb, rw, rb, ow, ob;
  const auto width = tasks();  // router scores padded to every expert
  for (std::int64_t i = 0; i < e; ++i) {
    const auto& x = experts[static_cast<std::size_t>(i)];
    lw.push_back(x->norm->weight);
    lb.push_back(x->norm->bias);
    dw.push_back(x->down->weight);
    db.push_back(x->down->bias);
    uw.push_back(x->up->weight);
    ub.push_back(x->up->bias);
    sc.push_back(x->scale);
    auto rec = recognisers[static_cast<std::size_t>(i)];
    auto* ln = rec[0]->as<torch::nn::LayerNorm>();
    auto* lin = rec[1]->as<torch::nn::Linear>();
    rlw.push_back(ln->weight);
    rlb.push_back(ln->bias);
    rw.push_back(lin->weight);
    rb.push_back(lin->bias);
    if (lin->weight.size(0) != rw.front().size(0)) stack_.same_classes = false;
    const auto& r = routers[static_cast<std::size_t>(i)];
    const auto k = r->weight.size(0);
    ow.push_back(torch::cat({r->weight, torch::zeros({width - k, o_.dim}, r->weight.options())}, 0));
    ob.push_back(torch::cat({r->bias, torch::full({width - k}, -std::numeric_limits<double>::infinity(), r->bias.options())}, 0));
  }
  auto st = [](const std::vector<torch::Tensor>& v) { return torch::stack(v, 0).detach(); };
  stack_.ln_w = st(lw).unsqueeze(1);
  stack_.ln_b = st(lb).unsqueeze(1);
  stack_.down_w = st(dw).transpose(1, 2).contiguous();  // [E, D, b]
  stack_.down_b = st(db).unsqueeze(1);
  stack_.up_w = st(uw).transpose(1, 2).contiguous();    // [E, b, D]
  stack_.up_b = st(ub).unsqueeze(1);
  stack_.scale = st(sc).unsqueeze(1);
  stack_.rec_ln_w = st(rlw).unsqueeze(1);
  stack_.rec_ln_b = st(rlb).unsqueeze(1);
  if (stack_.same_classes) {
    stack_.rec_w = st(rw).transpose(1, 2).contiguous();  // [E, D, C]
    stack_.rec_b = st(rb).unsqueeze(1);
  }
  stack_.router_w = st(ow).transpose(1, 2).contiguous();  // [E, D, width]
  stack_.router_b = st(ob).unsqueeze(1);
}

BrMoeLayerImpl::Pass BrMoeLayerImpl::expert_pass(const torch::Tensor& z, std::int64_t n) {
  Pass p;
  std::vector<torch::Tensor> outs, ents, scores;
  const auto f = n - 1;  // frozen experts evaluated together
  if (f > 0) {
    if (stack_.experts != tasks() - 1) build_stack();
    const auto d = o_.dim;
    auto sl = [f](const torch::Tensor& t) { return t.slice(0, 0, f); };
    const auto zn = torch::layer_norm(z, {d}).unsqueeze(0) * sl(stack_.ln_w) + sl(stack_.ln_b);  // [f, B, D]
    auto h = torch::relu(torch::baddbmm(sl(stack_.down_b), zn, sl(stack_.down_w)));
    h = F::dropout(h, F::DropoutFuncOptions().p(o_.dropout).training(is_training()));
    const auto o = torch::baddbmm(sl(stack_.up_b), h, sl(stack_.up_w)) * sl(stack_.scale);  // [f, B, D]
    const auto on = torch::layer_norm(o, {d}) * sl(stack_.rec_ln_w) + sl(stack_.rec_ln_b);
    if (stack_.same_classes) {
      ents.push_back(entropy(torch::baddbmm(sl(stack_.rec_b), on, sl(stack_.rec_w))));
    } else {
      std::vector<torch::Tensor> h2;
      for (std::int64_t i = 0; i < f; ++i) {
        auto rec = recognisers[static_cast<std::size_t>(i)];
        auto* lin = rec[1]->as<torch::nn::Linear>();
        h2.push_back(entropy(F::linear(on[i], lin->weight, lin->bias)));
      }
      ents.push_back(torch::stack(h2, 0));
    }
    outs.push_back(o);
    scores.push_back(torch::baddbmm(sl(stack_.router_b), o, sl(stack_.router_w)).slice(2, 0, n));
  }
  auto last = experts[static_cast<std::size_t>(n - 1)];
  const auto out = last->forward(z);
  p.latest_latent = recognisers[static_cast<std::size_t>(n - 1)]->forward(out);
  auto s = routers[static_cast<std::size_t>(n - 1)]->forward(out);
  if (s.size(-1) < n)
    s = torch::cat({s, torch::full({s.size(0), n - s.size(-1)}, -std::numeric_limits<double>::infinity(), s.options())}, -1);
  outs.push_back(out.unsqueeze(0));
  ents.push_back(entropy(p.latest_latent).unsqueeze(0));
  scores.push_back(s.unsqueeze(0));
  p.outs = torch::cat(outs, 0);
  p.entropy = torch::cat(ents, 0);
  p.scores = torch::cat(scores, 0);
  return p;
}

torch::Tensor BrMoeLayerImpl::mix(const torch::Tensor& outs, const torch::Tensor& weights) {
  // Σ_r Σ_e w[r, b, e] · outs[e, b, :]
  return torch::bmm(weights.sum(0).unsqueeze(1), outs.transpose(0, 1)).squeeze(1);
}

std::pair<torch::Tensor, torch::Tensor> BrMoeLayerImpl::semi_dynamic(const torch::Tensor& z, std::int64_t t) {
  SL_CHECK(t >= 0 && t < tasks(), ShapeError, "care: task ", t, " of a layer with ", tasks(), " experts");
  const auto s = shared_out(z);
  if (t == 0) {
    const auto out = experts[0]->forward(z);
    return {out + s, recognisers[0]->forward(out)};
  }
  const auto p = expert_pass(z, t + 1);
  const auto cur = p.scores.slice(0, t, t + 1);
  torch::Tensor sel;
  const auto m = o_.topk_routers - 1;
  if (m == 0) {
    sel = cur;
  } else if (m >= t) {
    sel = p.scores;
  } else {
    const auto idx = lowest_entropy(p.entropy.slice(0, 0, t), m);  // [m, B]
    const auto prev = p.scores.slice(0, 0, t);                      // [t, B, E]
    sel = torch::cat({prev.gather(0, idx.unsqueeze(-1).expand({m, prev.size(1), prev.size(2)})), cur}, 0);
  }
  return {mix(p.outs, route_weights(sel, o_.topk_experts)) + s, p.latest_latent};
}

torch::Tensor BrMoeLayerImpl::full_dynamic(const torch::Tensor& z) {
  const auto n = tasks();
  SL_CHECK(n >= 1, ShapeError, "care: a layer without experts");
  const auto s = shared_out(z);
  if (n == 1) return experts[0]->forward(z) + s;
  const auto p = expert_pass(z, n);
  auto sel = p.scores;  // [T, B, E]
  if (o_.topk_routers < n) {
    const auto idx = lowest_entropy(p.entropy, o_.topk_routers);
    sel = sel.gather(0, idx.unsqueeze(-1).expand({o_.topk_routers, sel.size(1), sel.size(2)}));
  }
  return mix(p.outs, route_weights(sel, o_.topk_experts)) + s;
}

// ---------------------------------------------------------------------------------------------
Learner::Learner(const CareOptions& o, FrozenBackbone backbone, std::uint64_t seed)
    : o_(o), backbone_(std::move(backbone)), gen_(at::detail::createCPUGenerator(seed)) {
  options::check(o_, "care");
  SL_CHECK(backbone_.stem && backbone_.out_norm && !backbone_.branches.empty(), ConfigError,
           "care: the backbone needs a stem, at least one block branch and an output norm");
  for (std::size_t l = 0; l < backbone_.branches.size(); ++l) layers_.emplace_back(o_);
}

void Learner::set_training(bool on) {
  for (auto& l : layers_) l->train(on);
}

std::pair<torch::Tensor, std::vector<torch::Tensor>> Learner::forward(const torch::Tensor& x, bool with_task) {
  torch::Tensor z;
  {
    torch::NoGradGuard ng;
    z = backbone_.stem(x);
  }
  std::vector<torch::Tensor> latents;
  for (std::size_t l = 0; l < layers_.size(); ++l) {
    const auto br = backbone_.branches[l](z);
    torch::Tensor m;
    if (with_task) {
      auto [mm, lat] = layers_[l]->semi_dynamic(z, task_);
      m = mm;
      latents.push_back(lat);
    } else {
      m = layers_[l]->full_dynamic(z);
    }
    z = z + br + m;
  }
  return {backbone_.out_norm(z), latents};
}

torch::Tensor Learner::head(const torch::Tensor& f) const {
  // TunaLinear's per-task cosine blocks, stacked: rows are normalised one by one, so one
  // normalisation of the stacked rows gives the same logits in one product.
  const auto fn = F::normalize(f, F::NormalizeFuncOptions().dim(1));
  return fn.mm(F::normalize(head_, F::NormalizeFuncOptions().dim(1)).t());
}

torch::Tensor Learner::features(const torch::Tensor& x, std::int64_t task) {
  torch::NoGradGuard ng;
  set_training(false);
  const auto keep = task_;
  if (task >= 0) task_ = task;
  std::vector<torch::Tensor> f;  // in chunks of 256 (the stacked experts hold [experts, rows, D])
  for (std::int64_t i = 0; i < x.size(0); i += 256) f.push_back(forward(x.slice(0, i, std::min(x.size(0), i + 256)), task >= 0).first);
  task_ = keep;
  return torch::cat(f, 0);
}

torch::Tensor Learner::predict(const torch::Tensor& x) {
  torch::NoGradGuard ng;
  return head(features(x)).argmax(1);
}

void Learner::train_phase(const torch::Tensor& x, const torch::Tensor& y, std::int64_t epochs, double lr0, double eta_min) {
  set_training(true);
  std::vector<torch::Tensor> params;
  for (auto& l : layers_) {
    const auto t = l->trainable();
    params.insert(params.end(), t.begin(), t.end());
  }
  params.push_back(head_);
  torch::optim::SGD opt(params, torch::optim::SGDOptions(lr0).momentum(o_.momentum).weight_decay(o_.weight_decay));
  const auto n = x.size(0);
  const double pi = std::acos(-1.0);
  for (std::int64_t e = 0; e < epochs; ++e) {
    const double lr = eta_min + (lr0 - eta_min) * (1 + std::cos(pi * double(e) / double(epochs))) / 2;
    for (auto& g : opt.param_groups()) static_cast<torch::optim::SGDOptions&>(g.options()).lr(lr);
    const auto perm = torch::randperm(n, gen_, torch::TensorOptions().dtype(torch::kInt64));
    for (std::int64_t b = 0; b < n; b += o_.batch) {
      const auto idx = perm.slice(0, b, std::min(n, b + o_.batch));
      const auto xb = x.index_select(0, idx), yb = y.index_select(0, idx) - known_;
      auto [f, latents] = forward(xb, true);
      const auto cos_new = head(f).slice(1, known_, seen_);
      auto loss = cosface_loss(cos_new, yb, o_.scale, o_.margin);
      torch::Tensor aux = torch::zeros({}, loss.options());
      for (std::size_t l = 0; l < latents.size(); ++l) {
        auto a = cosface_loss(latents[l], yb, o_.scale, o_.margin);
        if (o_.self_distillation) a = (a + distillation_kl(latents[l], cos_new, l < 6 ? 1.0 : 2.0)) / 2;
        aux = aux + a;
      }
      loss = loss + aux / static_cast<double>(latents.size());
      opt.zero_grad();
      loss.backward();
      opt.step();
    }
  }
  last_lr_ = eta_min;  // the cosine schedule's value after `epochs` steps
  for (auto& l : layers_) l->end_phase();
}

void Learner::compute_statistics(const torch::Tensor& x, const torch::Tensor& y) {
  const auto f = features(x, task_);
  const auto d = f.size(1);
  for (std::int64_t c = known_; c < seen_; ++c) {
    const auto fc = f.index_select(0, (y == c).nonzero().squeeze(1));
    SL_CHECK(fc.size(0) >= 2, DataError, "care: class ", c, " needs at least 2 training samples, got ", fc.size(0));
    const auto mean = fc.mean(0);
    const auto cov = torch::cov(fc.t()) + 1e-4 * torch::eye(d, f.options());
    const auto k = static_cast<std::size_t>(c);
    if (means_.size() <= k) {
      means_.resize(k + 1);
      covs_.resize(k + 1);
      chol_.resize(k + 1);
    }
    means_[k] = mean;
    covs_[k] = cov;
    chol_[k] = torch::linalg_cholesky(cov.to(torch::kFloat64));
  }
}

void Learner::align_classifier() {
  if (o_.ca_epochs == 0) return;
  set_training(false);
  torch::optim::SGD opt({head_}, torch::optim::SGDOptions(o_.ca_lr).momentum(0.9).weight_decay(5e-4));
  const auto n = o_.ca_samples;
  const double pi = std::acos(-1.0);
  for (std::int64_t e = 0; e < o_.ca_epochs; ++e) {
    const double lr = o_.ca_lr * (1 + std::cos(pi * double(e) / 5.0)) / 2;  // CosineAnnealingLR(T_max = 5)
    for (auto& g : opt.param_groups()) static_cast<torch::optim::SGDOptions&>(g.options()).lr(lr);
    std::vector<torch::Tensor> xs;
    for (std::int64_t c = 0; c < seen_; ++c) {
      const auto k = static_cast<std::size_t>(c);
      auto mean = means_[k].to(torch::kFloat64);
      if (o_.ca_decay) mean = mean * ca_mean_factor(c, task_classes_.back(), task_);
      xs.push_back(samples_from_cholesky(mean, chol_[k], n, gen_));
    }
    const auto labels = torch::arange(seen_, torch::kInt64).repeat_interleave(n);
    const auto perm = torch::randperm(seen_ * n, gen_, torch::TensorOptions().dtype(torch::kInt64));
    const auto inputs = torch::cat(xs, 0).index_select(0, perm), targets = labels.index_select(0, perm);
    for (std::int64_t it = 0; it < seen_; ++it) {
      const auto loss = F::cross_entropy(o_.scale * head(inputs.slice(0, it * n, (it + 1) * n)), targets.slice(0, it * n, (it + 1) * n));
      opt.zero_grad();
      loss.backward();
      opt.step();
    }
  }
}

std::int64_t Learner::parameter_count() const {
  std::int64_t p = 0;
  for (const auto& l : layers_)
    for (const auto& t : l->parameters()) p += t.numel();
  p += head_.numel();
  return p;
}

TaskCost Learner::learn_task(const torch::Tensor& x, const torch::Tensor& y, std::int64_t classes) {
  const auto start = std::chrono::steady_clock::now();
  SL_CHECK(classes >= 1 && x.size(0) == y.size(0), ShapeError, "care::Learner::learn_task: ", x.size(0), " inputs, ", y.size(0),
           " labels, ", classes, " classes");
  ++task_;
  known_ = seen_;
  seen_ += classes;
  task_classes_.push_back(classes);
  auto w = torch::empty({classes, o_.dim});
  trunc_normal(w, 0.02);
  head_ = (head_.defined() ? torch::cat({head_.detach(), w}, 0) : w).set_requires_grad(true);
  for (auto& l : layers_) l->add_task(classes);
  if (task_ == 0) {
    for (auto& l : layers_) l->begin_phase(false);
    train_phase(x, y, o_.epochs, o_.lr, o_.min_lr);
  } else {
    for (auto& l : layers_) l->begin_phase(true);
    train_phase(x, y, o_.epochs / 2, o_.lr, o_.lr / 2);
    compute_statistics(x, y);
    align_classifier();
    for (auto& l : layers_) l->begin_phase(true);
    train_phase(x, y, o_.epochs / 2, last_lr_, o_.min_lr);
  }
  compute_statistics(x, y);
  if (task_ > 0) align_classifier();
  TaskCost c;
  c.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  c.parameters = parameter_count();
  for (std::int64_t k = 0; k < seen_; ++k) c.statistic_floats += means_[k].numel() + covs_[k].numel();
  return c;
}

}  // namespace stablelearn::continual::care
