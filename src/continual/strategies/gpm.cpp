// Gradient projection memory (see strategies.h).
#include <algorithm>

#include "stablelearn/continual/strategies.h"
#include "stablelearn/core/config.h"
#include "stablelearn/core/error.h"

namespace stablelearn::continual {

void GpmOptions::fields(options::Visitor& v) {
  v("threshold", threshold, "energy ratio of the protected input subspace").above(0.0).at_most(1.0);
  v("threshold_step", threshold_step, "added to the threshold per finished task (capped at 1)");
  v("samples", samples, "training samples of the layer inputs").at_least(1);
}

void Gpm::after_backward(Context& ctx) {
  torch::NoGradGuard no_grad;
  const auto& idx = ctx.model->linear_weight_indices();
  for (std::size_t l = 0; l < bases_.size() && l < idx.size(); ++l) {
    if (!bases_[l].defined()) continue;
    auto& g = ctx.params[idx[l]].mutable_grad();
    if (!g.defined()) continue;
    const auto& m = bases_[l];  // [in, k]
    g.sub_(g.matmul(m).matmul(m.t()));
  }
}

void Gpm::after_task(Context& ctx) {
  torch::NoGradGuard no_grad;
  const auto& t = ctx.current().train;
  const auto dev = ctx.params.front().device();
  const auto n = std::min(o_.samples, t.size());
  const auto sel = torch::randperm(t.size(), ctx.gen, torch::kInt64).narrow(0, 0, n);
  const auto inputs = ctx.model->linear_inputs(t.images.index_select(0, sel).to(dev));
  if (bases_.size() < inputs.size()) bases_.resize(inputs.size());
  const double thr = std::min(1.0, o_.threshold + o_.threshold_step * static_cast<double>(ctx.task));
  for (std::size_t l = 0; l < inputs.size(); ++l) {
    // Representation matrix with samples as columns: R [d, n] (the paper's convention).
    const auto r = inputs[l].t().to(torch::kFloat64);
    const double total = r.pow(2).sum().item<double>();
    if (total <= 0) continue;
    torch::Tensor resid = r;
    double kept = 0;
    if (bases_[l].defined()) {
      const auto m = bases_[l].to(torch::kFloat64);
      const auto proj = m.matmul(m.t().matmul(r));
      kept = proj.pow(2).sum().item<double>();
      resid = r - proj;
    }
    if (kept / total >= thr) continue;  // already covered
    const auto svd = torch::linalg_svd(resid, /*full_matrices=*/false);
    const auto u = std::get<0>(svd), s = std::get<1>(svd);
    const auto s2 = s.pow(2).cpu();
    const auto* sp = s2.data_ptr<double>();
    std::int64_t k = 0;
    double acc = kept;
    while (k < s2.size(0) && acc / total < thr) acc += sp[k++];
    if (k == 0) continue;
    const auto add = u.narrow(1, 0, k);
    auto basis = bases_[l].defined() ? torch::cat({bases_[l].to(torch::kFloat64), add}, 1) : add;
    // Re-orthonormalise (the new directions are orthogonal to the old ones up to rounding).
    basis = std::get<0>(torch::linalg_qr(basis));
    const auto d = basis.size(0);
    if (basis.size(1) > d) basis = basis.narrow(1, 0, d);
    bases_[l] = basis.to(ctx.params.front().scalar_type());
  }
}

std::map<std::string, torch::Tensor> Gpm::state() const {
  std::map<std::string, torch::Tensor> m;
  put_list(m, "gpm.bases", bases_);
  return m;
}

void Gpm::load_state(const std::map<std::string, torch::Tensor>& m) { bases_ = get_list(m, "gpm.bases"); }

}  // namespace stablelearn::continual
