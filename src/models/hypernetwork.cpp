#include "stablelearn/models/hypernetwork.h"

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

}  // namespace

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
  for (std::size_t j = 0; j < target.size(); ++j) {
    const auto n = target[j].numel;
    head_w_.push_back(new_linear_weight(*this, "head_" + std::to_string(j) + "_weight", {n, in}, in));
    head_b_.push_back(new_linear_weight(*this, "head_" + std::to_string(j) + "_bias", {n}, in));
  }
  for (std::size_t i = 0; i < tasks; ++i)
    embeddings_.push_back(new_embedding(*this, static_cast<std::int64_t>(i), options.task_emb_dim(),
                                        head_b_.front().options()));
}

torch::Tensor HyperNetworkImpl::forward_embedding(const torch::Tensor& embedding) {
  bool batched = false;
  auto h = run_trunk(as_batch(embedding, options.task_emb_dim(), batched, "HyperNetwork"), trunk_w_,
                     trunk_b_);
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
  stream << "stablelearn::models::HyperNetwork(te=" << options.task_emb_dim()
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
  head_w_ = new_linear_weight(*this, "head_weight", {options.chunk_dim(), in}, in);
  head_b_ = new_linear_weight(*this, "head_bias", {options.chunk_dim()}, in);
  for (std::size_t i = 0; i < tasks; ++i)
    embeddings_.push_back(new_embedding(*this, static_cast<std::int64_t>(i), options.task_emb_dim(),
                                        head_b_.options()));
}

torch::Tensor ChunkedHyperNetworkImpl::forward_chunks(const torch::Tensor& embedding) {
  bool batched = false;
  auto e = as_batch(embedding, options.task_emb_dim(), batched, "ChunkedHyperNetwork");
  const auto B = e.size(0), K = chunk_emb_.size(0);
  // Input of chunk k: [e_i, E_k] (task embedding first).
  auto inp = torch::cat({e.unsqueeze(1).expand({B, K, e.size(1)}),
                         chunk_emb_.unsqueeze(0).expand({B, K, chunk_emb_.size(1)})},
                        2);
  auto out = torch::linear(run_trunk(inp, trunk_w_, trunk_b_), head_w_, head_b_);  // [B, K, C]
  return batched ? out : out.squeeze(0);
}

torch::Tensor ChunkedHyperNetworkImpl::forward_embedding(const torch::Tensor& embedding) {
  auto chunks = forward_chunks(embedding);
  const auto P = options.target().numel();
  if (chunks.dim() == 2) return chunks.reshape({-1}).narrow(0, 0, P);
  return chunks.reshape({chunks.size(0), -1}).narrow(1, 0, P);
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
  std::vector<torch::Tensor> out{chunk_emb_};
  for (std::size_t k = 0; k < trunk_w_.size(); ++k) {
    out.push_back(trunk_w_[k]);
    out.push_back(trunk_b_[k]);
  }
  out.push_back(head_w_);
  out.push_back(head_b_);
  return out;
}

void ChunkedHyperNetworkImpl::pretty_print(std::ostream& stream) const {
  stream << "stablelearn::models::ChunkedHyperNetwork(te=" << options.task_emb_dim()
         << ", ce=" << options.chunk_emb_dim() << ", C=" << options.chunk_dim()
         << ", K=" << options.num_chunks() << ", hidden=" << shape_string(options.hidden())
         << ", P=" << options.target().numel() << ", theta=" << theta_numel()
         << ", tasks=" << num_tasks() << ")";
}

}  // namespace stablelearn::models
