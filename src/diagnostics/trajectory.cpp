// Trajectory PCA (see trajectory.h).
#include "stablelearn/diagnostics/trajectory.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "stablelearn/core/error.h"

namespace stablelearn::diagnostics {

TrajectoryPca trajectory_pca(const torch::Tensor& checkpoints, const TrajectoryPcaOptions& o) {
  SL_CHECK(checkpoints.defined() && checkpoints.dim() == 2 && checkpoints.size(0) >= 2 && checkpoints.size(1) >= 1, ShapeError,
           "trajectory_pca: expected a [T, D] matrix with T ≥ 2 checkpoints");
  SL_CHECK(o.variance_threshold() > 0.0 && o.variance_threshold() <= 1.0, ConfigError,
           "trajectory_pca: variance_threshold must be in (0, 1], got ", o.variance_threshold());
  SL_CHECK(o.components() >= 0, ConfigError, "trajectory_pca: components must be non-negative, got ", o.components());
  const auto m = checkpoints.detach().to(torch::kFloat64);
  const auto t = m.size(0);
  TrajectoryPca r;
  r.mean = m.mean(0);
  const auto c = m - r.mean;
  // Thin SVD of the centred matrix: M̃ = U S Vᵀ (as accurate as the data; the Gram route would
  // square the condition number). Numerical rank: s_i > s_1 · max(T, D) · ε (numpy's matrix_rank).
  torch::Tensor u, s, vh;
  std::tie(u, s, vh) = torch::linalg_svd(c, false);
  const double s1 = s[0].item<double>();
  SL_CHECK(s1 > 0.0, DataError, "trajectory_pca: the trajectory is constant");
  const double tol = s1 * static_cast<double>(std::max(t, m.size(1))) * std::numeric_limits<double>::epsilon();
  const auto rank = s.gt(tol).sum().item<std::int64_t>();
  const auto sr = s.narrow(0, 0, rank);
  const auto eig = s.pow(2);
  r.explained_variance = eig.narrow(0, 0, rank) / static_cast<double>(t - 1);
  r.explained_variance_ratio = r.explained_variance / r.explained_variance.sum();
  const auto cum = r.explained_variance_ratio.cumsum(0);
  // Smallest r with cumulative ratio ≥ threshold (a hair of slack for rounding).
  r.rank_at_threshold = std::min<std::int64_t>(cum.lt(o.variance_threshold() - 1e-12).sum().item<std::int64_t>() + 1, rank);
  const auto k = o.components() > 0 ? std::min(o.components(), rank) : rank;
  const auto uk = u.narrow(1, 0, k);
  const auto sk = sr.narrow(0, 0, k);
  r.components = vh.narrow(0, 0, k).contiguous();  // [k, D]
  r.projections = uk * sk;                          // [T, k]
  const auto p = sr / sr.sum();
  r.effective_rank = std::exp(-(p * p.log()).sum().item<double>());
  return r;
}

TrajectoryPca trajectory_pca(const std::vector<torch::Tensor>& checkpoints, const TrajectoryPcaOptions& o) {
  SL_CHECK(checkpoints.size() >= 2, ShapeError, "trajectory_pca: need at least 2 checkpoints, got ", checkpoints.size());
  std::vector<torch::Tensor> rows;
  for (std::size_t i = 0; i < checkpoints.size(); ++i) {
    SL_CHECK(checkpoints[i].defined() && checkpoints[i].numel() == checkpoints[0].numel(), ShapeError,
             "trajectory_pca: checkpoint ", i, " has ", checkpoints[i].defined() ? checkpoints[i].numel() : 0,
             " elements, checkpoint 0 has ", checkpoints[0].numel());
    rows.push_back(checkpoints[i].detach().reshape({-1}).to(torch::kFloat64));
  }
  return trajectory_pca(torch::stack(rows), o);
}

torch::Tensor alignment_to_final(const torch::Tensor& checkpoints) {
  SL_CHECK(checkpoints.defined() && checkpoints.dim() == 2 && checkpoints.size(0) >= 2, ShapeError,
           "alignment_to_final: expected a [T, D] matrix with T ≥ 2");
  const auto m = checkpoints.detach().to(torch::kFloat64);
  const auto d = m - m[0];
  const auto final_d = d[-1];
  const double fn = final_d.norm().item<double>();
  SL_CHECK(fn > 0.0, DataError, "alignment_to_final: the last checkpoint equals the first");
  const auto norms = d.norm(2, {1});
  return torch::where(norms > 0, d.mv(final_d) / (norms.clamp_min(1e-300) * fn), torch::zeros_like(norms));
}

}  // namespace stablelearn::diagnostics
