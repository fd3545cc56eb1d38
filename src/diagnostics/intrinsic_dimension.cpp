// Random-subspace training (see intrinsic_dimension.h).
#include "stablelearn/diagnostics/intrinsic_dimension.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>
#include <tuple>
#include <unordered_set>
#include <utility>

#include <torch/autograd.h>
#include <torch/optim/adam.h>

#include "probes.h"
#include "stablelearn/core/error.h"

namespace stablelearn::diagnostics {

const char* projection_name(Projection kind) {
  switch (kind) {
    case Projection::Dense: return "dense";
    case Projection::Sparse: return "sparse";
    case Projection::Fastfood: return "fastfood";
  }
  return "?";
}

Projection parse_projection(const std::string& name) {
  for (auto k : {Projection::Dense, Projection::Sparse, Projection::Fastfood})
    if (name == projection_name(k)) return k;
  SL_CHECK(false, ConfigError, "unknown projection '", name, "' (known: dense, sparse, fastfood)");
  return Projection::Dense;
}

torch::Tensor fast_walsh_hadamard(const torch::Tensor& x) {
  SL_CHECK(x.dim() >= 1, ShapeError, "fast_walsh_hadamard: need at least one dimension");
  const auto n = x.size(-1);
  SL_CHECK(n >= 1 && (n & (n - 1)) == 0, ShapeError, "fast_walsh_hadamard: the last dimension (", n,
           ") is not a power of two");
  // Butterfly on bit log₂h of the index: pairs (i, i + h) inside blocks of 2h become (a + b, a − b).
  // Each level applies H_2 to one bit, and H_L = H_2 ⊗ … ⊗ H_2 (Sylvester order).
  if (n == 1) return x.clone();
  auto in = x.reshape({-1, n}).contiguous();  // may share x's storage: only read
  const auto rows = in.size(0);
  auto level = [&](const torch::Tensor& from, std::int64_t h) { return from.view({rows, n / (2 * h), 2, h}); };
  if (x.requires_grad() && at::GradMode::is_enabled()) {
    // Differentiable form: one stack per level.
    for (std::int64_t h = 1; h < n; h *= 2) {
      const auto v = level(in, h);
      const auto a = v.select(2, 0), b = v.select(2, 1);
      in = torch::stack({a + b, a - b}, 2).view({rows, n});
    }
    return in.view(x.sizes());
  }
  // Two fresh buffers written in turn through strided views (no temporaries; ≈ 4× faster).
  torch::Tensor buffers[2] = {torch::empty_like(in), n > 2 ? torch::empty_like(in) : torch::Tensor()};
  int next = 0;
  for (std::int64_t h = 1; h < n; h *= 2, next ^= 1) {
    const auto v = level(in, h), w = level(buffers[next], h);
    auto sum = w.select(2, 0), diff = w.select(2, 1);
    torch::add_out(sum, v.select(2, 0), v.select(2, 1));
    torch::sub_out(diff, v.select(2, 0), v.select(2, 1));
    in = buffers[next];
  }
  return in.view(x.sizes());
}

namespace {

/// Floyd's algorithm: k distinct integers from [0, n) using the k uniforms in u (one per draw).
std::vector<std::int64_t> sample_without_replacement(std::int64_t n, std::int64_t k, const double* u) {
  std::unordered_set<std::int64_t> chosen;
  chosen.reserve(static_cast<std::size_t>(2 * k));
  std::vector<std::int64_t> out;
  out.reserve(static_cast<std::size_t>(k));
  for (std::int64_t j = n - k, i = 0; j < n; ++j, ++i) {
    auto t = std::min(static_cast<std::int64_t>(u[i] * static_cast<double>(j + 1)), j);
    if (!chosen.insert(t).second) {
      t = j;
      chosen.insert(t);
    }
    out.push_back(t);
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

RandomSubspace::RandomSubspace(std::int64_t full_dim, std::int64_t dim, std::uint64_t seed, torch::TensorOptions options,
                               bool orthonormal)
    : RandomSubspace(full_dim, dim, seed, options, Projection::Dense, orthonormal) {}

RandomSubspace::RandomSubspace(std::int64_t full_dim, std::int64_t dim, std::uint64_t seed, torch::TensorOptions options,
                               Projection kind, bool orthonormal)
    : full_dim_(full_dim), dim_(dim), kind_(kind), options_(options) {
  SL_CHECK(full_dim >= 1 && dim >= 1 && dim <= full_dim, ConfigError, "RandomSubspace: need 1 ≤ d ≤ D, got d = ", dim,
           ", D = ", full_dim);
  SL_CHECK(!orthonormal || kind == Projection::Dense, ConfigError,
           "RandomSubspace: orthonormal is only available for the dense projection, not ", projection_name(kind));
  auto gen = detail::make_generator(seed);
  const auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  const auto i64 = torch::TensorOptions().dtype(torch::kInt64);
  switch (kind) {
    case Projection::Dense: {
      auto p = torch::randn({full_dim, dim}, gen, f64);
      if (orthonormal) {
        p = std::get<0>(torch::linalg_qr(p));
      } else {
        p = p / p.norm(2, {0}, true);
      }
      matrix_ = p.to(options);
      break;
    }
    case Projection::Sparse: {
      // sklearn's _sparse_random_matrix with density s = 1/√D, one column at a time: nnz_j ~
      // Binomial(D, s) positions without replacement, signs ±1 with probability ½, then the column
      // is scaled to unit norm. A column that draws no non-zero (probability (1 − s)^D ≈ e^{−√D},
      // only relevant for tiny D) gets one, so that every column has unit norm.
      const double density = 1.0 / std::sqrt(static_cast<double>(full_dim));
      auto nnz = torch::binomial(torch::full({dim}, static_cast<double>(full_dim), f64), torch::full({dim}, density, f64), gen)
                     .clamp_min(1.0)
                     .to(torch::kInt64);
      const auto total = nnz.sum().item<std::int64_t>();
      const auto u = torch::rand({total}, gen, f64).contiguous();
      const auto signs = torch::randint(0, 2, {total}, gen, f64) * 2.0 - 1.0;
      auto rows = torch::empty({total}, i64), cols = torch::empty({total}, i64), scale = torch::empty({total}, f64);
      auto* r = rows.data_ptr<std::int64_t>();
      auto* c = cols.data_ptr<std::int64_t>();
      auto* sc = scale.data_ptr<double>();
      const auto* k = nnz.data_ptr<std::int64_t>();
      std::int64_t at = 0;
      for (std::int64_t j = 0; j < dim; ++j) {
        const auto idx = sample_without_replacement(full_dim, k[j], u.data_ptr<double>() + at);
        const double inv_norm = 1.0 / std::sqrt(static_cast<double>(k[j]));
        for (const auto i : idx) {
          r[at] = i;
          c[at] = j;
          sc[at] = inv_norm;
          ++at;
        }
      }
      rows_ = rows.to(options.device());
      cols_ = cols.to(options.device());
      values_ = (signs * scale).to(options);
      break;
    }
    case Projection::Fastfood: {
      std::int64_t length = 1;
      while (length < full_dim) length *= 2;
      length_ = length;
      const auto signs = torch::randint(0, 2, {length}, gen, f64) * 2.0 - 1.0;
      const auto perm = torch::randperm(length, gen, i64);
      const auto gauss = torch::randn({length}, gen, f64);
      auto inverse = torch::empty_like(perm);
      inverse.scatter_(0, perm, torch::arange(length, i64));
      const double l = static_cast<double>(length);
      divisor_ = std::sqrt(l * gauss.pow(2).sum().item<double>()) * std::sqrt(static_cast<double>(full_dim) / l);
      signs_ = signs.to(options);
      gauss_ = gauss.to(options);
      perm_ = perm.to(options.device());
      inverse_perm_ = inverse.to(options.device());
      break;
    }
  }
}

const torch::Tensor& RandomSubspace::matrix() const {
  SL_CHECK(kind_ == Projection::Dense, ConfigError, "RandomSubspace::matrix: the ", projection_name(kind_),
           " projection is not stored as a matrix (use to_dense())");
  return matrix_;
}

torch::Tensor RandomSubspace::to_full(const torch::Tensor& theta_d) const {
  SL_CHECK(theta_d.numel() == dim(), ShapeError, "RandomSubspace: θ_d has ", theta_d.numel(), " elements, expected ", dim());
  const auto x = theta_d.reshape({dim()}).to(options_);
  switch (kind_) {
    case Projection::Dense: return matrix_.mv(x);
    case Projection::Sparse:
      return torch::zeros({full_dim_}, options_).index_add_(0, rows_, values_ * x.index_select(0, cols_));
    case Projection::Fastfood: {
      // [H G Π H B pad(x)]_{1:D} / divisor
      auto y = fast_walsh_hadamard(torch::constant_pad_nd(x, {0, length_ - dim_}) * signs_);
      y = fast_walsh_hadamard(y.index_select(0, perm_) * gauss_);
      return y.slice(0, 0, full_dim_) / divisor_;
    }
  }
  return {};
}

torch::Tensor RandomSubspace::to_subspace(const torch::Tensor& g) const {
  SL_CHECK(g.numel() == full_dim(), ShapeError, "RandomSubspace: vector has ", g.numel(), " elements, expected ", full_dim());
  const auto v = g.reshape({full_dim()}).to(options_);
  switch (kind_) {
    case Projection::Dense: return matrix_.t().mv(v);
    case Projection::Sparse:
      return torch::zeros({dim_}, options_).index_add_(0, cols_, values_ * v.index_select(0, rows_));
    case Projection::Fastfood: {
      // Pᵀ = [B H Πᵀ G H]_{1:d, 1:D} / divisor; (Πᵀ y)_j = y_{π⁻¹(j)}
      auto y = fast_walsh_hadamard(torch::constant_pad_nd(v, {0, length_ - full_dim_})) * gauss_;
      y = fast_walsh_hadamard(y.index_select(0, inverse_perm_)) * signs_;
      return y.slice(0, 0, dim_) / divisor_;
    }
  }
  return {};
}

torch::Tensor RandomSubspace::to_dense() const {
  if (kind_ == Projection::Dense) return matrix_;
  auto out = torch::empty({full_dim_, dim_}, options_);
  const auto eye = torch::eye(dim_, options_);
  for (std::int64_t j = 0; j < dim_; ++j) out.select(1, j).copy_(to_full(eye[j]));
  return out;
}

namespace {

/// One step of plain GD or Adam (β = 0.9, 0.999, ε = 1e-8, bias-corrected) on a vector; the state
/// belongs to one vector (θ_d or λ).
class SubspaceStep {
 public:
  SubspaceStep(const torch::Tensor& like, bool adam, double lr)
      : adam_(adam), lr_(lr), m1_(torch::zeros_like(like)), m2_(torch::zeros_like(like)) {}
  torch::Tensor operator()(const torch::Tensor& x, const torch::Tensor& g, std::int64_t step) {
    if (!adam_) return x - lr_ * g;
    const double b1 = 0.9, b2 = 0.999, eps = 1e-8;
    m1_ = b1 * m1_ + (1 - b1) * g;
    m2_ = b2 * m2_ + (1 - b2) * g * g;
    const double c1 = 1 - std::pow(b1, static_cast<double>(step + 1));
    const double c2 = 1 - std::pow(b2, static_cast<double>(step + 1));
    return x - lr_ * (m1_ / c1) / ((m2_ / c2).sqrt() + eps);
  }

 private:
  bool adam_;
  double lr_;
  torch::Tensor m1_, m2_;
};

}  // namespace

SubspaceTrainingResult train_in_subspace(const std::vector<torch::Tensor>& params, const LossFn& loss,
                                         const std::vector<Batch>& batches, const SubspaceTrainingOptions& o) {
  SL_CHECK(o.steps() >= 0, ConfigError, "train_in_subspace: steps must be non-negative, got ", o.steps());
  SL_CHECK(o.learning_rate() > 0.0, ConfigError, "train_in_subspace: learning_rate must be positive, got ", o.learning_rate());
  // HessianOperator validates the parameters and batches and gives the batch-weighted gradient.
  const HessianOperator objective(params, loss, batches);
  const auto theta0 = flatten_tensors(params).clone();
  const RandomSubspace proj(objective.dim(), o.dim(), o.seed(), objective.options(), o.projection(), o.orthonormal());
  auto write = [&](const torch::Tensor& theta_d) {
    torch::NoGradGuard ng;
    const auto parts = unflatten_like(theta0 + proj.to_full(theta_d), params);
    for (std::size_t i = 0; i < params.size(); ++i) params[i].copy_(parts[i]);
  };
  SubspaceTrainingResult r;
  auto theta_d = torch::zeros({o.dim()}, objective.options());
  SubspaceStep update(theta_d, o.adam(), o.learning_rate());
  for (std::int64_t step = 0; step < o.steps(); ++step) {
    write(theta_d);
    auto [value, g] = objective.loss_and_gradient();
    r.losses.push_back(value);
    theta_d = update(theta_d, proj.to_subspace(g), step);
  }
  write(theta_d);
  r.losses.push_back(objective.loss_and_gradient().first);
  r.theta_d = theta_d;
  return r;
}

// ---- DID / SAID ---------------------------------------------------------------------------------

namespace {

std::int64_t checked_subspace_dim(const std::vector<torch::Tensor>& params, const SubspaceFinetuneOptions& o) {
  const auto full = total_numel(params);
  const auto m = static_cast<std::int64_t>(params.size());
  SL_CHECK(o.dim() >= 0, ConfigError, "finetune_in_subspace: dim (d) must be non-negative, got ", o.dim());
  SL_CHECK(o.steps() >= 0, ConfigError, "finetune_in_subspace: steps must be non-negative, got ", o.steps());
  SL_CHECK(o.learning_rate() > 0.0 && std::isfinite(o.learning_rate()), ConfigError,
           "finetune_in_subspace: learning_rate must be positive and finite, got ", o.learning_rate());
  if (!o.structure_aware()) {
    SL_CHECK(o.dim() <= full, ConfigError, "finetune_in_subspace: DID needs 0 ≤ d ≤ D = ", full, ", got d = ", o.dim());
    return o.dim();
  }
  SL_CHECK(o.dim() > m && o.dim() - m <= full, ConfigError, "finetune_in_subspace: SAID spends m = ", m,
           " of the budget on the per-tensor scales, so it needs m < d ≤ D + m = ", full + m, ", got d = ", o.dim());
  return o.dim() - m;
}

}  // namespace

SubspaceFinetuneObjective::SubspaceFinetuneObjective(std::vector<torch::Tensor> params, LossFn loss, std::vector<Batch> batches,
                                                     const SubspaceFinetuneOptions& o)
    : params_(params), objective_(std::move(params), std::move(loss), std::move(batches)) {
  subspace_dim_ = checked_subspace_dim(params_, o);
  scale_count_ = o.structure_aware() ? static_cast<std::int64_t>(params_.size()) : 0;
  theta0_ = flatten_tensors(params_).clone();
  for (const auto& p : params_) sizes_.push_back(p.numel());
  if (subspace_dim_ > 0)
    projection_ = std::make_shared<RandomSubspace>(full_dim(), subspace_dim_, o.seed(), objective_.options(), o.projection());
}

const RandomSubspace& SubspaceFinetuneObjective::projection() const {
  SL_CHECK(projection_ != nullptr, ConfigError, "SubspaceFinetuneObjective: d = 0 has no projection");
  return *projection_;
}

torch::Tensor SubspaceFinetuneObjective::initial_theta_d() const { return torch::zeros({subspace_dim_}, theta0_.options()); }

torch::Tensor SubspaceFinetuneObjective::initial_scales() const { return torch::ones({scale_count_}, theta0_.options()); }

torch::Tensor SubspaceFinetuneObjective::parameters_at(const torch::Tensor& theta_d, const torch::Tensor& scales) const {
  SL_CHECK(theta_d.defined() && theta_d.numel() == subspace_dim_, ShapeError, "SubspaceFinetuneObjective: θ_d has ",
           theta_d.defined() ? theta_d.numel() : 0, " elements, expected ", subspace_dim_);
  if (scale_count_ > 0)
    SL_CHECK(scales.defined() && scales.numel() == scale_count_, ShapeError, "SubspaceFinetuneObjective: λ has ",
             scales.defined() ? scales.numel() : 0, " elements, expected m = ", scale_count_);
  if (subspace_dim_ == 0) return theta0_.clone();
  auto offset = projection_->to_full(theta_d);
  if (scale_count_ > 0) {
    const auto lam = scales.reshape({scale_count_}).to(theta0_.options());
    offset = offset * torch::repeat_interleave(lam, torch::tensor(sizes_, torch::TensorOptions().dtype(torch::kInt64).device(lam.device())));
  }
  return theta0_ + offset;
}

void SubspaceFinetuneObjective::write(const torch::Tensor& theta_d, const torch::Tensor& scales) const {
  torch::NoGradGuard ng;
  const auto parts = unflatten_like(parameters_at(theta_d, scales), params_);
  for (std::size_t i = 0; i < params_.size(); ++i) params_[i].copy_(parts[i]);
}

SubspaceFinetuneObjective::Value SubspaceFinetuneObjective::evaluate(const torch::Tensor& theta_d, const torch::Tensor& scales) const {
  write(theta_d, scales);
  auto [value, g] = objective_.loss_and_gradient();
  Value v;
  v.loss = value;
  if (scale_count_ == 0) v.grad_scales = torch::zeros({0}, theta0_.options());
  if (subspace_dim_ == 0) {
    v.grad_theta_d = torch::zeros({0}, theta0_.options());
    return v;
  }
  if (scale_count_ == 0) {
    v.grad_theta_d = projection_->to_subspace(g);
    return v;
  }
  torch::NoGradGuard ng;
  const auto lam = scales.reshape({scale_count_}).to(theta0_.options());
  const auto counts = torch::tensor(sizes_, torch::TensorOptions().dtype(torch::kInt64).device(lam.device()));
  v.grad_theta_d = projection_->to_subspace(g * torch::repeat_interleave(lam, counts));
  // ∂L/∂λ_i = ⟨g_i, (P θ_d)_i⟩: per-segment sums of g ⊙ Pθ_d.
  const auto prod = g * projection_->to_full(theta_d);
  std::vector<torch::Tensor> sums;
  std::int64_t at = 0;
  for (const auto n : sizes_) {
    sums.push_back(prod.slice(0, at, at + n).sum());
    at += n;
  }
  v.grad_scales = torch::stack(sums);
  return v;
}

SubspaceFinetuneResult finetune_in_subspace(const std::vector<torch::Tensor>& params, const LossFn& loss,
                                            const std::vector<Batch>& batches, const SubspaceFinetuneOptions& o) {
  const SubspaceFinetuneObjective objective(params, loss, batches, o);
  SubspaceFinetuneResult r;
  r.theta_d = objective.initial_theta_d();
  r.scales = objective.initial_scales();
  SubspaceStep step_d(r.theta_d, o.adam(), o.learning_rate()), step_scales(r.scales, o.adam(), o.learning_rate());
  const bool learn_scales = objective.structure_aware() && o.learn_scales();
  for (std::int64_t step = 0; step < o.steps(); ++step) {
    const auto v = objective.evaluate(r.theta_d, r.scales);
    r.losses.push_back(v.loss);
    if (objective.subspace_dim() > 0) r.theta_d = step_d(r.theta_d, v.grad_theta_d, step);
    if (learn_scales) r.scales = step_scales(r.scales, v.grad_scales, step);
  }
  r.losses.push_back(objective.evaluate(r.theta_d, r.scales).loss);
  return r;
}

double interpolated_crossing(const std::vector<std::int64_t>& dims, const std::vector<double>& scores, double threshold) {
  SL_CHECK(dims.size() == scores.size(), ConfigError, "interpolated_crossing: ", dims.size(), " dimensions but ", scores.size(),
           " scores");
  for (std::size_t i = 0; i < dims.size(); ++i)
    SL_CHECK(dims[i] >= 1 && (i == 0 || dims[i] > dims[i - 1]), ConfigError,
             "interpolated_crossing: dimensions must be positive and increasing, got ", dims[i], " at position ", i);
  for (std::size_t i = 0; i < dims.size(); ++i) {
    if (!(scores[i] >= threshold)) continue;
    if (i == 0) return static_cast<double>(dims[0]);
    const double a = scores[i - 1], b = scores[i];
    const double la = std::log(static_cast<double>(dims[i - 1])), lb = std::log(static_cast<double>(dims[i]));
    const double t = std::isfinite(a) && b > a ? (threshold - a) / (b - a) : 1.0;
    return std::exp(la + t * (lb - la));
  }
  return std::numeric_limits<double>::quiet_NaN();
}

std::int64_t smallest_passing_dimension(std::vector<std::int64_t> dims, const std::function<double(std::int64_t)>& score,
                                        double threshold) {
  std::sort(dims.begin(), dims.end());
  for (auto d : dims)
    if (score(d) >= threshold) return d;
  return -1;
}

DimensionBisection bisect_passing_dimension(std::vector<std::int64_t> dims, const std::function<bool(std::int64_t)>& passes) {
  SL_CHECK(!dims.empty(), ConfigError, "bisect_passing_dimension: dims is empty");
  std::sort(dims.begin(), dims.end());
  dims.erase(std::unique(dims.begin(), dims.end()), dims.end());
  // Lower bound: every index below lo failed (or lo = 0), every index from hi on passed (or hi = n).
  DimensionBisection r;
  std::size_t lo = 0, hi = dims.size();
  while (lo < hi) {
    const std::size_t mid = lo + (hi - lo) / 2;
    const bool ok = passes(dims[mid]);
    r.probes.emplace_back(dims[mid], ok);
    if (ok) hi = mid;
    else lo = mid + 1;
  }
  r.dim = hi < dims.size() ? dims[hi] : -1;
  return r;
}

namespace {

/// Mean and sample standard deviation (NaN for one value).
std::pair<double, double> mean_std(const std::vector<double>& v) {
  const double m = std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
  if (v.size() < 2) return {m, std::numeric_limits<double>::quiet_NaN()};
  double ss = 0.0;
  for (const double x : v) ss += (x - m) * (x - m);
  return {m, std::sqrt(ss / static_cast<double>(v.size() - 1))};
}

}  // namespace

IntrinsicDimensionResult intrinsic_dimension_sweep(const std::vector<torch::Tensor>& params, const LossFn& loss,
                                                   const std::vector<Batch>& batches,
                                                   const std::function<IntrinsicDimensionEvaluation()>& evaluate,
                                                   const IntrinsicDimensionOptions& o,
                                                   const std::function<void(const IntrinsicDimensionRow&)>& on_row) {
  auto dims = o.dims();
  SL_CHECK(!dims.empty(), ConfigError, "intrinsic_dimension_sweep: dims is empty");
  SL_CHECK(o.seeds() >= 1, ConfigError, "intrinsic_dimension_sweep: seeds must be at least 1, got ", o.seeds());
  SL_CHECK(o.steps() >= 1, ConfigError, "intrinsic_dimension_sweep: steps must be at least 1, got ", o.steps());
  SL_CHECK(!batches.empty(), ConfigError, "intrinsic_dimension_sweep: no batches");
  std::sort(dims.begin(), dims.end());
  IntrinsicDimensionResult r;
  r.full_dim = total_numel(params);
  SL_CHECK(dims.front() >= 1 && dims.back() <= r.full_dim, ConfigError, "intrinsic_dimension_sweep: dims must lie in 1..",
           r.full_dim, " (the parameter count), got ", dims.front(), "..", dims.back());
  std::vector<torch::Tensor> theta0;
  for (const auto& w : params) theta0.push_back(w.detach().clone());
  auto restore = [&] {
    torch::NoGradGuard ng;
    for (std::size_t i = 0; i < theta0.size(); ++i) params[i].copy_(theta0[i]);
  };
  r.initial = evaluate();

  // (1) The full-space reference: full-batch Adam on the batch-size-weighted mean loss.
  {
    std::int64_t n = 0;
    for (const auto& b : batches) n += b.size();
    torch::optim::Adam adam(params, torch::optim::AdamOptions(o.full_learning_rate()));
    for (std::int64_t s = 0; s < o.steps(); ++s) {
      adam.zero_grad();
      for (const auto& b : batches) {
        auto l = loss(b);
        if (batches.size() > 1) l = l * (static_cast<double>(b.size()) / static_cast<double>(n));
        l.backward();
      }
      adam.step();
    }
  }
  r.full = evaluate();

  // (2) Every d and seed from θ₀.
  std::map<std::int64_t, double> acc;
  for (const auto d : dims) {
    IntrinsicDimensionRow row;
    row.dim = d;
    std::vector<double> train, losses;
    for (std::int64_t k = 0; k < o.seeds(); ++k) {
      restore();
      const auto seed = o.seed() + static_cast<std::uint64_t>(d) + 1000003u * static_cast<std::uint64_t>(k);
      train_in_subspace(params, loss, batches,
                        SubspaceTrainingOptions().dim(d).steps(o.steps()).learning_rate(o.learning_rate()).adam(true).projection(
                            o.projection()).seed(seed));
      const auto e = evaluate();
      row.projection_seeds.push_back(seed);
      row.test_accuracies.push_back(e.test_accuracy);
      train.push_back(e.train_accuracy);
      losses.push_back(e.loss);
    }
    std::tie(row.test_accuracy, row.test_accuracy_std) = mean_std(row.test_accuracies);
    std::tie(row.train_accuracy, row.train_accuracy_std) = mean_std(train);
    row.loss = mean_std(losses).first;
    acc[d] = row.test_accuracy;
    r.rows.push_back(row);
    if (on_row) on_row(r.rows.back());
  }
  restore();
  auto score = [&](std::int64_t d) { return acc.at(d); };
  r.relative_threshold = o.fraction() * r.full.test_accuracy;
  r.d_int90_absolute = smallest_passing_dimension(dims, score, o.absolute_threshold());
  r.d_int90_relative = smallest_passing_dimension(dims, score, r.relative_threshold);
  return r;
}

}  // namespace stablelearn::diagnostics
