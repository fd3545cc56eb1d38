// Continuous subspace optimisation (see strategies.h).
#include <algorithm>
#include <cmath>

#include "stablelearn/continual/strategies.h"
#include "stablelearn/core/config.h"

namespace stablelearn::continual {

namespace {
constexpr double kBeta1 = 0.9, kBeta2 = 0.999, kEps = 1e-8;

/// Frequent-Directions shrink: the r leading left singular directions of X scaled by
/// √(σ_i² − σ_{r+1}²) (σ_{r+1} = 0 when X has at most r of them).
torch::Tensor fd_shrink(const torch::Tensor& x, std::int64_t r) {
  const auto svd = torch::linalg_svd(x, /*full_matrices=*/false);
  const auto u = std::get<0>(svd), s = std::get<1>(svd);
  const auto k = std::min<std::int64_t>(r, s.size(0));
  const double cut = s.size(0) > r ? s[r].item<double>() : 0.0;
  const auto scale = (s.narrow(0, 0, k).pow(2) - cut * cut).clamp_min(0).sqrt();
  return u.narrow(1, 0, k) * scale;
}
}  // namespace

void CosoOptions::fields(options::Visitor& v) {
  v("proj_rank", proj_rank, "rank of the gradient projector P").at_least(1);
  v("rank", rank, "rank of the Frequent Directions sketch").at_least(1);
  v("threshold", threshold, "energy kept of the sketch at a task end").above(0.0).at_most(1.0);
  v("update_gap", update_gap, "steps between projector updates").at_least(1);
  v("decay", decay, "factor on the sketch before each Frequent Directions update (1 = no decay)").above(0.0);
}

void Coso::before_task(Context& ctx) {
  const auto n = ctx.model->linear_weight_indices().size();
  if (m_.size() < n) m_.resize(n);
  sketch_.assign(n, {});
  proj_.assign(n, {});
  adam_w_.assign(n, {});
  adam_b_.assign(ctx.params.size(), {});
  steps_ = 0;
}

torch::Tensor Coso::adam_update(Adam& a, const torch::Tensor& g, double lr) {
  if (!a.m.defined() || a.m.sizes() != g.sizes()) {
    a.m = torch::zeros_like(g);
    a.v = torch::zeros_like(g);
  }
  ++a.t;
  a.m.mul_(kBeta1).add_(g, 1 - kBeta1);
  a.v.mul_(kBeta2).addcmul_(g, g, 1 - kBeta2);
  const double bc1 = 1 - std::pow(kBeta1, static_cast<double>(a.t)), bc2 = 1 - std::pow(kBeta2, static_cast<double>(a.t));
  return (a.m / bc1) / ((a.v / bc2).sqrt() + kEps) * lr;
}

bool Coso::step(Context& ctx) {
  torch::NoGradGuard no_grad;
  const auto& idx = ctx.model->linear_weight_indices();
  std::vector<bool> is_weight(ctx.params.size(), false);
  // The output layer is the classifier head: trained with plain Adam, as CoSO trains its heads.
  for (std::size_t l = 0; l + 1 < idx.size(); ++l) {
    is_weight[idx[l]] = true;
    auto& w = ctx.params[idx[l]];
    if (!w.grad().defined()) continue;
    auto g = w.grad();
    if (m_[l].defined()) g = g - m_[l].matmul(m_[l].t().matmul(g));
    if (steps_ % o_.update_gap == 0 || !proj_[l].defined()) {
      const auto svd = torch::linalg_svd(g, /*full_matrices=*/false);
      const auto u = std::get<0>(svd), s = std::get<1>(svd);
      proj_[l] = u.narrow(1, 0, std::min<std::int64_t>(o_.proj_rank, u.size(1))).clone();
      // Sketch update with the gradient's leading directions.
      const auto r2 = std::min<std::int64_t>(rank_for(w.size(0)), u.size(1));
      const double cut = s.size(0) > r2 ? s[r2].item<double>() : 0.0;
      const auto q = u.narrow(1, 0, r2) * (s.narrow(0, 0, r2).pow(2) - cut * cut).clamp_min(0).sqrt();
      sketch_[l] = sketch_[l].defined() ? fd_shrink(torch::cat({sketch_[l] * o_.decay, q}, 1), rank_for(w.size(0))) : q;
    }
    const auto& p = proj_[l];
    const auto r = p.t().matmul(g);  // [r1, n]
    w.sub_(p.matmul(adam_update(adam_w_[l], r, ctx.lr)));
  }
  for (std::size_t i = 0; i < ctx.params.size(); ++i) {
    if (is_weight[i] || !ctx.params[i].grad().defined()) continue;
    ctx.params[i].sub_(adam_update(adam_b_[i], ctx.params[i].grad(), ctx.lr));
  }
  ++steps_;
  return true;
}

void Coso::after_task(Context& ctx) {
  for (std::size_t l = 0; l < sketch_.size(); ++l) {
    if (!sketch_[l].defined()) continue;
    const auto svd = torch::linalg_svd(sketch_[l], /*full_matrices=*/false);
    const auto u = std::get<0>(svd), s2 = std::get<1>(svd).pow(2);
    const double total = s2.sum().item<double>();
    if (total <= 0) continue;
    const auto cum = s2.cumsum(0) / total;
    // Keep the leading vectors whose cumulative energy stays below the threshold (at least one).
    const auto k = std::max<std::int64_t>(1, (cum < o_.threshold).sum().item<std::int64_t>());
    auto add = u.narrow(1, 0, k);
    if (m_[l].defined()) add = add - m_[l].matmul(m_[l].t().matmul(add));
    auto basis = m_[l].defined() ? torch::cat({m_[l], add}, 1) : add;
    basis = std::get<0>(torch::linalg_qr(basis));
    if (basis.size(1) > basis.size(0)) basis = basis.narrow(1, 0, basis.size(0));
    m_[l] = basis;
  }
  sketch_.assign(sketch_.size(), {});
  proj_.assign(proj_.size(), {});
  adam_w_.assign(adam_w_.size(), {});
  adam_b_.assign(adam_b_.size(), {});
}

std::map<std::string, torch::Tensor> Coso::state() const {
  std::map<std::string, torch::Tensor> m;
  put_list(m, "coso.bases", m_);
  return m;
}

void Coso::load_state(const std::map<std::string, torch::Tensor>& m) { m_ = get_list(m, "coso.bases"); }

}  // namespace stablelearn::continual
