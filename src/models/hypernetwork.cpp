#include "stablelearn/models/hypernetwork.h"

#include <cmath>
#include <string>

#include "stablelearn/core/error.h"

namespace stablelearn::models {

namespace {

void validate_common(const WeightLayout& target, const std::vector<std::int64_t>& hidden,
                     std::int64_t te, const char* who) {
  SL_CHECK(target.numel() > 0, ConfigError, who, ": the target layout is empty");
  for (auto h : hidden)
    SL_CHECK(h > 0, ConfigError, who, ": hidden widths must be positive, got ", shape_string(hidden));
  SL_CHECK(te > 0, ConfigError, who, ": task_emb_dim must be positive, got ", te);
}

torch::Tensor new_linear_weight(torch::nn::Module& m, const std::string& name,
                                std::vector<std::int64_t> shape, std::int64_t fan_in) {
  auto p = torch::empty(shape, torch::kFloat32);
  uniform_fan_in_(p, fan_in);
  return m.register_parameter(name, p);
}

/// ReLU trunk shared by HN and CHN: h_{k+1} = ReLU(W_k h_k + b_k).
torch::Tensor run_trunk(torch::Tensor h, const std::vector<torch::Tensor>& w,
                        const std::vector<torch::Tensor>& b) {
  for (std::size_t k = 0; k < w.size(); ++k) h = torch::relu(torch::linear(h, w[k], b[k]));
  return h;
}

/// [te] -> [1, te] (batched = false) or [B, te] as is; ShapeError otherwise.
torch::Tensor as_batch(const torch::Tensor& e, std::int64_t te, bool& batched, const char* who) {
  SL_CHECK(e.defined() && (e.dim() == 1 || e.dim() == 2) && e.size(-1) == te, ShapeError, who,
           ": task embedding must be [", te, "] or [B, ", te, "], got ",
           e.defined() ? shape_string(e.sizes()) : std::string("undefined"));
  batched = e.dim() == 2;
  return batched ? e : e.unsqueeze(0);
}

torch::Tensor new_embedding(torch::nn::Module& m, std::int64_t index, std::int64_t te,
                            const torch::TensorOptions& options) {
  torch::Tensor e;
  {
    torch::NoGradGuard no_grad;
    e = torch::randn({te}, options.requires_grad(false));
  }
  return m.register_parameter("task_emb_" + std::to_string(index), e);
}

/// MIP's output weight: N(0, 1/fan_out) (kaiming normal, fan_out mode, gain 1).
torch::Tensor new_mip_out_weight(torch::nn::Module& m, const std::string& name, std::vector<std::int64_t> shape,
                                 std::int64_t fan_out) {
  torch::Tensor p;
  {
    torch::NoGradGuard no_grad;
    p = torch::randn(shape, torch::kFloat32) / std::sqrt(static_cast<double>(fan_out));
  }
  return m.register_parameter(name, p);
}

torch::Tensor new_zero_bias(torch::nn::Module& m, const std::string& name, std::int64_t n) {
  return m.register_parameter(name, torch::zeros({n}, torch::kFloat32));
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// MIP

torch::Tensor mip_normalize(const torch::Tensor& e) {
  SL_CHECK(e.defined() && (e.dim() == 1 || e.dim() == 2) && e.size(-1) > 0, ShapeError,
           "mip: embedding must be [dim] or [B, dim], got ", e.defined() ? shape_string(e.sizes().vec()) : "undefined");
  const auto norm = e.norm(2, -1, true);
  SL_CHECK((norm.detach() > 0).all().item<bool>(), DataError,
           "mip: an embedding row is zero (no direction to keep)");
  return e * (std::sqrt(static_cast<double>(e.size(-1))) / norm);
}

torch::Tensor mip_encode_unit(const torch::Tensor& gamma) {
  SL_CHECK(gamma.defined() && (gamma.dim() == 1 || gamma.dim() == 2), ShapeError,
           "mip: gamma must be [k] or [B, k], got ", gamma.defined() ? shape_string(gamma.sizes().vec()) : "undefined");
  const auto g = gamma.detach();
  SL_CHECK(((g >= 0) & (g <= 1)).all().item<bool>(), DataError,
           "mip: gamma must lie in [0, 1] (the cos/sin encoding's domain); got values in [", g.min().item<double>(), ", ",
           g.max().item<double>(), "]");
  const auto a = gamma * (3.14159265358979323846 / 2);
  return torch::cat({torch::cos(a), torch::sin(a)}, -1);
}

double mip_theta0_gain() { return std::sqrt(2.0 / (1.0 + 0.01 * 0.01)); }

torch::Tensor mip_theta0(const WeightLayout& target, const torch::TensorOptions& options) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> parts;
  for (const auto& e : target.entries()) {
    if (e.shape.size() >= 2) {
      const auto fan_in = e.numel / e.shape[0];
      parts.push_back(torch::randn({e.numel}, options) * (mip_theta0_gain() / std::sqrt(static_cast<double>(fan_in))));
    } else {
      parts.push_back(torch::zeros({e.numel}, options));
    }
  }
  return torch::cat(parts, 0);
}

// ---------------------------------------------------------------------------------------------

std::int64_t TaskHyperNetwork::theta_numel() const {
  std::int64_t n = 0;
  for (const auto& p : theta()) n += p.numel();
  return n;
}

std::int64_t TaskHyperNetwork::numel_with_embeddings() const {
  std::int64_t n = theta_numel();
  for (const auto& e : task_embeddings()) n += e.numel();
  return n;
}

// ---------------------------------------------------------------------------------------------

void HyperNetworkOptions::validate() const {
  validate_common(target_, hidden_, task_emb_dim_, "HyperNetworkOptions");
}

HyperNetworkImpl::HyperNetworkImpl(HyperNetworkOptions options_) : options(std::move(options_)) {
  reset();
}

void HyperNetworkImpl::reset() {
  options.validate();
  const auto tasks = embeddings_.size();
  trunk_w_.clear();
  trunk_b_.clear();
  head_w_.clear();
  head_b_.clear();
  embeddings_.clear();
  std::int64_t in = options.task_emb_dim();
  for (std::size_t k = 0; k < options.hidden().size(); ++k) {
    const auto h = options.hidden()[k];
    trunk_w_.push_back(new_linear_weight(*this, "trunk_" + std::to_string(k) + "_weight", {h, in}, in));
    trunk_b_.push_back(new_linear_weight(*this, "trunk_" + std::to_string(k) + "_bias", {h}, in));
    in = h;
  }
  const auto& target = options.target();
  if (options.mip()) {
    // θ₀ = the heads' biases; A ~ N(0, 1/P) (one output layer of fan_out P, split by tensor).
    const auto theta0 = mip_theta0(target, torch::TensorOptions().dtype(torch::kFloat32));
    for (std::size_t j = 0; j < target.size(); ++j) {
      const auto n = target[j].numel;
      head_w_.push_back(new_mip_out_weight(*this, "head_" + std::to_string(j) + "_weight", {n, in}, target.numel()));
      head_b_.push_back(register_parameter("head_" + std::to_string(j) + "_bias",
                                           theta0.narrow(0, target[j].offset, n).clone()));
    }
  } else {
    for (std::size_t j = 0; j < target.size(); ++j) {
      const auto n = target[j].numel;
      head_w_.push_back(new_linear_weight(*this, "head_" + std::to_string(j) + "_weight", {n, in}, in));
      head_b_.push_back(new_linear_weight(*this, "head_" + std::to_string(j) + "_bias", {n}, in));
    }
  }
  for (std::size_t i = 0; i < tasks; ++i)
    embeddings_.push_back(new_embedding(*this, static_cast<std::int64_t>(i), options.task_emb_dim(),
                                        head_b_.front().options()));
}

torch::Tensor HyperNetworkImpl::forward_embedding(const torch::Tensor& embedding) {
  bool batched = false;
  auto e = as_batch(embedding, options.task_emb_dim(), batched, "HyperNetwork");
  if (options.mip()) e = mip_normalize(e);
  auto h = run_trunk(e, trunk_w_, trunk_b_);
  std::vector<torch::Tensor> outs;
  outs.reserve(head_w_.size());
  if (!batched) {
    // One embedding: matrix-vector products (BLAS gemv reads each head once; a one-row gemm packs
    // the whole [n, in] head first, an extra pass over most of the hypernetwork's weights).
    const auto v = h.squeeze(0);
    for (std::size_t j = 0; j < head_w_.size(); ++j) outs.push_back(torch::addmv(head_b_[j], head_w_[j], v));
    return torch::cat(outs, 0);
  }
  for (std::size_t j = 0; j < head_w_.size(); ++j) outs.push_back(torch::linear(h, head_w_[j], head_b_[j]));
  return torch::cat(outs, 1);
}

torch::Tensor HyperNetworkImpl::trunk_output(const torch::Tensor& e, const std::vector<torch::Tensor>& w,
                                             const std::vector<torch::Tensor>& b) const {
  SL_CHECK(e.defined() && e.dim() == 2 && e.size(1) == options.task_emb_dim(), ShapeError,
           "HyperNetwork::trunk_output: embeddings must be [B, ", options.task_emb_dim(), "], got ",
           e.defined() ? shape_string(e.sizes()) : std::string("undefined"));
  SL_CHECK(w.size() == trunk_w_.size() && b.size() == trunk_b_.size(), ShapeError,
           "HyperNetwork::trunk_output: ", w.size(), " weights and ", b.size(), " biases for a trunk of ",
           trunk_w_.size(), " layers");
  return run_trunk(options.mip() ? mip_normalize(e) : e, w, b);
}

std::int64_t HyperNetworkImpl::add_task() {
  const auto id = num_tasks();
  embeddings_.push_back(new_embedding(*this, id, options.task_emb_dim(), head_b_.front().options()));
  return id;
}

torch::Tensor HyperNetworkImpl::task_embedding(std::int64_t task) const {
  SL_CHECK(task >= 0 && task < num_tasks(), ConfigError, "HyperNetwork: task ", task,
           " does not exist (", num_tasks(), " tasks; call add_task())");
  return embeddings_[static_cast<std::size_t>(task)];
}

std::vector<torch::Tensor> HyperNetworkImpl::theta() const {
  std::vector<torch::Tensor> out;
  for (std::size_t k = 0; k < trunk_w_.size(); ++k) {
    out.push_back(trunk_w_[k]);
    out.push_back(trunk_b_[k]);
  }
  for (std::size_t j = 0; j < head_w_.size(); ++j) {
    out.push_back(head_w_[j]);
    out.push_back(head_b_[j]);
  }
  return out;
}

void HyperNetworkImpl::pretty_print(std::ostream& stream) const {
  stream << "stablelearn::models::HyperNetwork(" << (options.mip() ? "mip, " : "") << "te=" << options.task_emb_dim()
         << ", hidden=" << shape_string(options.hidden()) << ", heads=" << head_w_.size()
         << ", P=" << options.target().numel() << ", theta=" << theta_numel()
         << ", tasks=" << num_tasks() << ")";
}

// ---------------------------------------------------------------------------------------------

std::int64_t ChunkedHyperNetworkOptions::num_chunks() const {
  return (target_.numel() + chunk_dim_ - 1) / chunk_dim_;
}

void ChunkedHyperNetworkOptions::validate() const {
  validate_common(target_, hidden_, task_emb_dim_, "ChunkedHyperNetworkOptions");
  SL_CHECK(chunk_emb_dim_ > 0, ConfigError, "ChunkedHyperNetworkOptions: chunk_emb_dim must be positive, got ",
           chunk_emb_dim_);
  SL_CHECK(chunk_dim_ > 0, ConfigError, "ChunkedHyperNetworkOptions: chunk_dim must be positive, got ",
           chunk_dim_);
}

ChunkedHyperNetworkImpl::ChunkedHyperNetworkImpl(ChunkedHyperNetworkOptions options_)
    : options(std::move(options_)) {
  reset();
}

void ChunkedHyperNetworkImpl::reset() {
  options.validate();
  const auto tasks = embeddings_.size();
  trunk_w_.clear();
  trunk_b_.clear();
  embeddings_.clear();
  {
    torch::NoGradGuard no_grad;
    chunk_emb_ = register_parameter(
        "chunk_emb", torch::randn({options.num_chunks(), options.chunk_emb_dim()}, torch::kFloat32));
  }
  std::int64_t in = options.task_emb_dim() + options.chunk_emb_dim();
  for (std::size_t k = 0; k < options.hidden().size(); ++k) {
    const auto h = options.hidden()[k];
    trunk_w_.push_back(new_linear_weight(*this, "trunk_" + std::to_string(k) + "_weight", {h, in}, in));
    trunk_b_.push_back(new_linear_weight(*this, "trunk_" + std::to_string(k) + "_bias", {h}, in));
    in = h;
  }
  if (options.mip()) {
    theta0_ = register_parameter("theta0", mip_theta0(options.target(), torch::TensorOptions().dtype(torch::kFloat32)));
    head_w_ = new_mip_out_weight(*this, "head_weight", {options.chunk_dim(), in}, options.chunk_dim());
    head_b_ = new_zero_bias(*this, "head_bias", options.chunk_dim());
  } else {
    head_w_ = new_linear_weight(*this, "head_weight", {options.chunk_dim(), in}, in);
    head_b_ = new_linear_weight(*this, "head_bias", {options.chunk_dim()}, in);
  }
  for (std::size_t i = 0; i < tasks; ++i)
    embeddings_.push_back(new_embedding(*this, static_cast<std::int64_t>(i), options.task_emb_dim(),
                                        head_b_.options()));
}

torch::Tensor ChunkedHyperNetworkImpl::forward_chunks(const torch::Tensor& embedding) {
  bool batched = false;
  auto e = as_batch(embedding, options.task_emb_dim(), batched, "ChunkedHyperNetwork");
  const auto B = e.size(0), K = chunk_emb_.size(0);
  const auto ce = options.mip() ? mip_normalize(chunk_emb_) : chunk_emb_;
  if (options.mip()) e = mip_normalize(e);
  // Input of chunk k: [e_i, E_k] (task embedding first).
  auto inp = torch::cat({e.unsqueeze(1).expand({B, K, e.size(1)}),
                         ce.unsqueeze(0).expand({B, K, ce.size(1)})},
                        2);
  auto out = torch::linear(run_trunk(inp, trunk_w_, trunk_b_), head_w_, head_b_);  // [B, K, C]
  return batched ? out : out.squeeze(0);
}

torch::Tensor ChunkedHyperNetworkImpl::forward_embedding(const torch::Tensor& embedding) {
  auto chunks = forward_chunks(embedding);
  const auto P = options.target().numel();
  if (chunks.dim() == 2) {
    auto w = chunks.reshape({-1}).narrow(0, 0, P);
    return options.mip() ? w + theta0_ : w;
  }
  auto w = chunks.reshape({chunks.size(0), -1}).narrow(1, 0, P);
  return options.mip() ? w + theta0_ : w;
}

std::int64_t ChunkedHyperNetworkImpl::add_task() {
  const auto id = num_tasks();
  embeddings_.push_back(new_embedding(*this, id, options.task_emb_dim(), head_b_.options()));
  return id;
}

torch::Tensor ChunkedHyperNetworkImpl::task_embedding(std::int64_t task) const {
  SL_CHECK(task >= 0 && task < num_tasks(), ConfigError, "ChunkedHyperNetwork: task ", task,
           " does not exist (", num_tasks(), " tasks; call add_task())");
  return embeddings_[static_cast<std::size_t>(task)];
}

std::vector<torch::Tensor> ChunkedHyperNetworkImpl::theta() const {
  std::vector<torch::Tensor> out;
  if (options.mip()) out.push_back(theta0_);
  out.push_back(chunk_emb_);
  for (std::size_t k = 0; k < trunk_w_.size(); ++k) {
    out.push_back(trunk_w_[k]);
    out.push_back(trunk_b_[k]);
  }
  out.push_back(head_w_);
  out.push_back(head_b_);
  return out;
}

void ChunkedHyperNetworkImpl::pretty_print(std::ostream& stream) const {
  stream << "stablelearn::models::ChunkedHyperNetwork(" << (options.mip() ? "mip, " : "") << "te=" << options.task_emb_dim()
         << ", ce=" << options.chunk_emb_dim() << ", C=" << options.chunk_dim()
         << ", K=" << options.num_chunks() << ", hidden=" << shape_string(options.hidden())
         << ", P=" << options.target().numel() << ", theta=" << theta_numel()
         << ", tasks=" << num_tasks() << ")";
}

// ---------------------------------------------------------------------------------------------

void ConditionedHyperNetworkOptions::validate() const {
  validate_common(target_, hidden_, input_dim_, "ConditionedHyperNetworkOptions");
}

ConditionedHyperNetworkImpl::ConditionedHyperNetworkImpl(ConditionedHyperNetworkOptions options_)
    : options(std::move(options_)) {
  reset();
}

void ConditionedHyperNetworkImpl::reset() {
  options.validate();
  trunk_w_.clear();
  trunk_b_.clear();
  std::int64_t in = options.mip() ? 2 * options.input_dim() : options.input_dim();
  for (std::size_t k = 0; k < options.hidden().size(); ++k) {
    const auto h = options.hidden()[k];
    trunk_w_.push_back(new_linear_weight(*this, "trunk_" + std::to_string(k) + "_weight", {h, in}, in));
    trunk_b_.push_back(new_linear_weight(*this, "trunk_" + std::to_string(k) + "_bias", {h}, in));
    in = h;
  }
  const auto P = options.target().numel();
  if (options.mip()) {
    out_w_ = new_mip_out_weight(*this, "out_weight", {P, in}, P);
    out_b_ = register_parameter("out_bias", mip_theta0(options.target(), torch::TensorOptions().dtype(torch::kFloat32)));
  } else {
    out_w_ = new_linear_weight(*this, "out_weight", {P, in}, in);
    out_b_ = new_linear_weight(*this, "out_bias", {P}, in);
  }
}

torch::Tensor ConditionedHyperNetworkImpl::encode(const torch::Tensor& gamma) const {
  SL_CHECK(gamma.defined() && (gamma.dim() == 1 || gamma.dim() == 2) && gamma.size(-1) == options.input_dim(), ShapeError,
           "ConditionedHyperNetwork: gamma must be [", options.input_dim(), "] or [B, ", options.input_dim(), "], got ",
           gamma.defined() ? shape_string(gamma.sizes().vec()) : "undefined");
  return options.mip() ? mip_encode_unit(gamma) : gamma;
}

torch::Tensor ConditionedHyperNetworkImpl::features(const torch::Tensor& gamma) const {
  return run_trunk(encode(gamma), trunk_w_, trunk_b_);
}

torch::Tensor ConditionedHyperNetworkImpl::forward(const torch::Tensor& gamma) {
  return torch::linear(features(gamma), out_w_, out_b_);
}

}  // namespace stablelearn::models
