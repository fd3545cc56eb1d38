#include "stablelearn/data/lfd_preprocess.h"

#include <cmath>

#include "stablelearn/core/error.h"

namespace stablelearn::data {

Normalizer Normalizer::fit(const torch::Tensor& x) {
  SL_CHECK(x.dim() == 3, ShapeError, "Normalizer::fit: expected [M, T, d], got ", x.sizes());
  const auto flat = x.reshape({-1, x.size(2)});
  Normalizer n;
  n.mean = flat.mean(0);
  n.std = flat.std(0, /*unbiased=*/false);  // population std, ddof = 0 (spec §1.6)
  SL_CHECK((n.std > 0).all().item<bool>(), DataError, "cannot normalise: some dimension has zero spread (std = ", n.std, ")");
  return n;
}

torch::Tensor Normalizer::normalize(const torch::Tensor& x) const { return (x - mean) / std; }
torch::Tensor Normalizer::denormalize(const torch::Tensor& x_n) const { return x_n * std + mean; }

torch::Tensor quat_multiply(const torch::Tensor& p, const torch::Tensor& q) {
  const auto pw = p.select(-1, 0), px = p.select(-1, 1), py = p.select(-1, 2), pz = p.select(-1, 3);
  const auto qw = q.select(-1, 0), qx = q.select(-1, 1), qy = q.select(-1, 2), qz = q.select(-1, 3);
  return torch::stack({pw * qw - px * qx - py * qy - pz * qz,
                       pw * qx + px * qw + py * qz - pz * qy,
                       pw * qy - px * qz + py * qw + pz * qx,
                       pw * qz + px * qy - py * qx + pz * qw},
                      -1);
}

torch::Tensor quat_conjugate(const torch::Tensor& q) {
  return torch::cat({q.narrow(-1, 0, 1), -q.narrow(-1, 1, 3)}, -1);
}

torch::Tensor quat_to_tangent(const torch::Tensor& q, const torch::Tensor& q_goal) {
  // q_g^-1 = conj(q_g) / |q_g|^2 (pyquaternion), then log: (ln|p|, acos(w/|p|) v/|v|).
  const auto inv = quat_conjugate(q_goal) / q_goal.pow(2).sum(-1, true);
  const auto p = quat_multiply(inv, q);
  const auto w = p.select(-1, 0);
  const auto v = p.narrow(-1, 1, 3);
  const auto vnorm = v.norm(2, -1, true);
  const auto pnorm = p.norm(2, -1);
  const auto angle = torch::acos(torch::clamp(w / pnorm, -1.0, 1.0)).unsqueeze(-1);
  const auto safe = torch::where(vnorm < 1e-17, torch::ones_like(vnorm), vnorm);
  return torch::where(vnorm < 1e-17, torch::zeros_like(v), angle * v / safe);
}

torch::Tensor tangent_to_quat(const torch::Tensor& r, const torch::Tensor& q_goal) {
  const auto n = r.norm(2, -1, true);
  const auto safe = torch::where(n == 0, torch::ones_like(n), n);
  const auto e = torch::cat({torch::cos(n), torch::where(n == 0, torch::zeros_like(r), torch::sin(n) * r / safe)}, -1);
  const auto q = quat_multiply(q_goal.expand_as(e), e);
  return q / q.norm(2, -1, true);
}

PreparedTask prepare_task(const LfdTask& task, const LfdDatasetSpec& spec, const PreprocessOptions& opt) {
  SL_CHECK(task.pos.dim() == 3 && task.pos.size(2) == spec.dim, ShapeError, task.name, ": expected [M, T, ", spec.dim,
           "], got ", task.pos.sizes());
  SL_CHECK(opt.tangent_vec_scale > 0 && std::isfinite(opt.tangent_vec_scale), ConfigError,
           "tangent_vec_scale must be positive, got ", opt.tangent_vec_scale);
  PreparedTask p;
  p.raw = task.pos.to(torch::kFloat64);
  p.t = task.t.select(0, 0).to(torch::kFloat64).contiguous();  // time of demonstration 0 (spec §1.6)
  p.position_dim = spec.position_dim;
  p.tangent_vec_scale = opt.tangent_vec_scale;
  const auto pos = p.raw.narrow(2, 0, spec.position_dim);
  p.norm = Normalizer::fit(pos);
  auto xn = p.norm.normalize(pos);
  const auto T = p.raw.size(1);
  if (opt.center_goal) {
    p.goal = xn.select(1, T - 1).clone();  // [M, P]
    xn = xn - p.goal.unsqueeze(1);
  } else {
    p.goal = torch::zeros({p.raw.size(0), spec.position_dim}, torch::kFloat64);
  }
  if (spec.has_orientation) {
    const auto q = p.raw.narrow(2, 3, 4);
    p.goal_quat = q.select(1, T - 1).clone();  // [M, 4]
    const auto r = quat_to_tangent(q, p.goal_quat.unsqueeze(1)) * opt.tangent_vec_scale;
    p.x = torch::cat({xn, r}, 2).contiguous();
  } else {
    p.x = xn.contiguous();
  }
  return p;
}

torch::Tensor restore_prediction(const PreparedTask& task, const torch::Tensor& x_hat) {
  SL_CHECK(x_hat.dim() == 3 && x_hat.size(0) == task.x.size(0) && x_hat.size(2) == task.x.size(2), ShapeError,
           "restore_prediction: expected [", task.x.size(0), ", T, ", task.x.size(2), "], got ", x_hat.sizes());
  const auto x = x_hat.to(torch::kFloat64);
  const auto pos = task.norm.denormalize(x.narrow(2, 0, task.position_dim) + task.goal.unsqueeze(1));
  if (!task.goal_quat.defined()) return pos;
  const auto r = x.narrow(2, task.position_dim, 3) / task.tangent_vec_scale;
  const auto q = tangent_to_quat(r, task.goal_quat.unsqueeze(1));
  return torch::cat({pos, q}, 2);
}

Window window_at(const PreparedTask& task, std::int64_t k0, std::int64_t tsub) {
  const auto T = task.x.size(1);
  SL_CHECK(tsub >= 2 && tsub <= T, ShapeError, "window length tsub = ", tsub, " must be in [2, ", T, "]");
  SL_CHECK(k0 >= 0 && k0 + tsub <= T, ShapeError, "window start ", k0, " + length ", tsub, " exceeds ", T, " samples");
  Window w;
  w.k0 = k0;
  w.t = task.t.narrow(0, k0, tsub);
  w.y = task.x.narrow(1, k0, tsub);
  return w;
}

Window sample_window(const PreparedTask& task, std::int64_t tsub, torch::Generator& gen) {
  const auto T = task.x.size(1);
  SL_CHECK(tsub >= 2 && tsub <= T, ShapeError, "window length tsub = ", tsub, " must be in [2, ", T, "]");
  // k0 ~ U{0, ..., T - tsub} inclusive (spec §1.6).
  const auto k0 = torch::randint(0, T - tsub + 1, {1}, gen, torch::kInt64).item<std::int64_t>();
  return window_at(task, k0, tsub);
}

}  // namespace stablelearn::data
