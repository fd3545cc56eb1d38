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

double principal_mask_overlap(const torch::Tensor& w, const torch::Tensor& delta, std::int64_t k, double alpha) {
  const auto a = as_matrix(w, "the weight");
  const auto d = as_matrix(delta, "the update").to(a.device());
  SL_CHECK(a.sizes() == d.sizes(), ShapeError, "principal_mask_overlap: weight ", a.sizes(), " and update ", d.sizes(),
           " differ in shape");
  const auto m = a.size(0), n = a.size(1);
  SL_CHECK(k >= 1 && k <= std::min(m, n), ConfigError, "principal_mask_overlap: k = ", k, " must be in [1, ",
           std::min(m, n), "]");
  SL_CHECK(alpha > 0 && alpha <= 1, ConfigError, "principal_mask_overlap: alpha = ", alpha, " must be in (0, 1]");
  torch::Tensor u, s, vh;
  std::tie(u, s, vh) = torch::linalg_svd(a, false);
  const auto wk = u.narrow(1, 0, k).mm(torch::diag(s.narrow(0, 0, k))).mm(vh.narrow(0, 0, k));
  const auto count = std::max<std::int64_t>(1, std::llround(alpha * static_cast<double>(m * n)));
  auto mask = [&](const torch::Tensor& x) {
    auto b = torch::zeros({m * n}, torch::TensorOptions().dtype(torch::kBool).device(a.device()));
    return b.index_fill_(0, std::get<1>(x.abs().reshape({-1}).topk(count)), true);
  };
  const auto both = mask(wk).logical_and(mask(d)).sum().item<std::int64_t>();
  return static_cast<double>(both) / static_cast<double>(count);
}

double bf16_unchanged_share(const torch::Tensor& w_before, const torch::Tensor& w_after) {
  SL_CHECK(w_before.defined() && w_after.defined() && w_before.sizes() == w_after.sizes() && w_before.numel() > 0,
           ShapeError, "bf16_unchanged_share: before and after weights differ in shape or are empty");
  const auto b0 = w_before.detach().to(torch::kBFloat16), b1 = w_after.detach().to(w_before.device(), torch::kBFloat16);
  return b0.eq(b1).to(torch::kDouble).mean().item<double>();
}

}  // namespace stablelearn::diagnostics
