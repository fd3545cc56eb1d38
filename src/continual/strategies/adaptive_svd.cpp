// Adaptive-SVD / orthogonal subspace fine-tuning (see strategies.h).
#include <algorithm>
#include <cmath>

#include "stablelearn/continual/strategies.h"
#include "stablelearn/core/config.h"

namespace stablelearn::continual {

void AdaptiveSvdOptions::fields(options::Visitor& v) {
  v("rank_step", rank_step, "fraction of each weight's rank frozen per finished task").at_least(0.0);
  v("max_fraction", max_fraction, "cap of the frozen fraction").in(0.0, 1.0);
  v("pretrained", pretrained, "the model starts pre-trained: task 0 already freezes rank_step of each weight's rank");
}

void AdaptiveSvd::before_task(Context& ctx) {
  torch::NoGradGuard no_grad;
  const auto& idx = ctx.model->linear_weight_indices();
  uh_.assign(idx.size(), {});
  vh_.assign(idx.size(), {});
  wh_.assign(idx.size(), {});
  // Without a pre-trained model, task 0 plays it and trains freely.
  const auto finished = ctx.task + (o_.pretrained ? 1 : 0);
  if (finished == 0) return;
  const double frac = std::min(o_.rank_step * static_cast<double>(finished), o_.max_fraction);
  for (std::size_t l = 0; l < idx.size(); ++l) {
    const auto& w = ctx.params[idx[l]];
    const auto d = std::min(w.size(0), w.size(1));
    const auto k = std::clamp<std::int64_t>(static_cast<std::int64_t>(std::llround(frac * static_cast<double>(d))), 0, d);
    if (k == 0) continue;
    const auto svd = torch::linalg_svd(w.to(torch::kFloat64), /*full_matrices=*/false);
    const auto u = std::get<0>(svd).narrow(1, 0, k), s = std::get<1>(svd).narrow(0, 0, k),
               vt = std::get<2>(svd).narrow(0, 0, k);
    uh_[l] = u.to(w.scalar_type());
    vh_[l] = vt.t().contiguous().to(w.scalar_type());
    wh_[l] = (u * s).matmul(vt).to(w.scalar_type());
  }
}

namespace {
torch::Tensor two_sided(const torch::Tensor& x, const torch::Tensor& u, const torch::Tensor& v) {
  auto y = x - u.matmul(u.t().matmul(x));
  return y - y.matmul(v).matmul(v.t());
}
}  // namespace

void AdaptiveSvd::after_backward(Context& ctx) {
  torch::NoGradGuard no_grad;
  const auto& idx = ctx.model->linear_weight_indices();
  for (std::size_t l = 0; l < uh_.size(); ++l) {
    if (!uh_[l].defined()) continue;
    auto& g = ctx.params[idx[l]].mutable_grad();
    if (g.defined()) g.copy_(two_sided(g, uh_[l], vh_[l]));
  }
}

void AdaptiveSvd::after_step(Context& ctx, const Batch&) {
  torch::NoGradGuard no_grad;
  const auto& idx = ctx.model->linear_weight_indices();
  for (std::size_t l = 0; l < uh_.size(); ++l) {
    if (!uh_[l].defined()) continue;
    auto& w = ctx.params[idx[l]];
    w.copy_(wh_[l] + two_sided(w - wh_[l], uh_[l], vh_[l]));
  }
}

std::vector<std::int64_t> AdaptiveSvd::ranks() const {
  std::vector<std::int64_t> r;
  for (const auto& u : uh_) r.push_back(u.defined() ? u.size(1) : 0);
  return r;
}

}  // namespace stablelearn::continual
