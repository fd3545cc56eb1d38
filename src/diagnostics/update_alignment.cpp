// Update alignment with the principal subspaces of a weight (see update_alignment.h).
#include "stablelearn/diagnostics/update_alignment.h"

#include <algorithm>
#include <cmath>

#include "stablelearn/core/error.h"

namespace stablelearn::diagnostics {
namespace {

torch::Tensor as_matrix(const torch::Tensor& w, const char* what) {
  SL_CHECK(w.defined() && w.dim() >= 2 && w.numel() > 0, ShapeError, "update_alignment: ", what,
           " must have at least 2 dimensions and some elements");
  return w.detach().to(torch::kFloat64).reshape({w.size(0), -1});
}

}  // namespace

UpdateAlignment update_alignment_of_delta(const torch::Tensor& w, const torch::Tensor& delta, std::int64_t k) {
  const auto a = as_matrix(w, "the weight");
  const auto d = as_matrix(delta, "the update").to(a.device());
  SL_CHECK(a.sizes() == d.sizes(), ShapeError, "update_alignment: weight ", a.sizes(), " and update ", d.sizes(),
           " differ in shape");
  const auto m = a.size(0), n = a.size(1);
  SL_CHECK(k >= 1 && k <= std::min(m, n), ConfigError, "update_alignment: k = ", k, " must be in [1, ", std::min(m, n), "]");
  const double total = d.pow(2).sum().item<double>();
  SL_CHECK(total > 0.0, DataError, "update_alignment: the update is zero");
  torch::Tensor u, s, vh;
  std::tie(u, s, vh) = torch::linalg_svd(a, false);
  const auto uk = u.narrow(1, 0, k);           // [m, k]
  const auto vk = vh.narrow(0, 0, k).t();      // [n, k]
  const auto left = uk.t().mm(d);              // U_kᵀΔW  [k, n]
  UpdateAlignment r;
  r.k = k;
  r.rows = m;
  r.cols = n;
  r.update_norm = std::sqrt(total);
  r.left = std::min(1.0, left.pow(2).sum().item<double>() / total);
  r.right = std::min(1.0, d.mm(vk).pow(2).sum().item<double>() / total);
  r.two_sided = std::min(1.0, left.mm(vk).pow(2).sum().item<double>() / total);
  const double kd = static_cast<double>(k);
  r.two_sided_baseline = kd * kd / (static_cast<double>(m) * static_cast<double>(n));
  r.left_baseline = kd / static_cast<double>(m);
  r.right_baseline = kd / static_cast<double>(n);
  return r;
}

UpdateAlignment update_alignment(const torch::Tensor& w_before, const torch::Tensor& w_after, std::int64_t k) {
  SL_CHECK(w_before.defined() && w_after.defined() && w_before.sizes() == w_after.sizes(), ShapeError,
           "update_alignment: before and after weights differ in shape");
  return update_alignment_of_delta(w_before, w_after.detach().to(w_before.device()) - w_before.detach(), k);
}

}  // namespace stablelearn::diagnostics
