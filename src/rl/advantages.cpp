#include "stablelearn/rl/advantages.h"

#include <cmath>
#include <map>
#include <vector>

#include "stablelearn/core/error.h"

namespace stablelearn::rl {

namespace {
void check_same(const torch::Tensor& a, const torch::Tensor& b, const char* what, const char* name) {
  SL_CHECK(a.sizes() == b.sizes(), ShapeError, what, ": ", name, " has shape ", b.sizes(), ", expected ", a.sizes(),
           " (as rewards)");
}
}  // namespace

torch::Tensor gae(const torch::Tensor& rewards, const torch::Tensor& values, const torch::Tensor& next_values,
                  const torch::Tensor& terminated, const torch::Tensor& done, double gamma, double lambda) {
  SL_CHECK(rewards.dim() == 2, ShapeError, "gae: rewards must be [T, N], got ", rewards.sizes());
  check_same(rewards, values, "gae", "values");
  check_same(rewards, next_values, "gae", "next_values");
  check_same(rewards, terminated, "gae", "terminated");
  check_same(rewards, done, "gae", "done");
  SL_CHECK(gamma >= 0 && gamma <= 1, ConfigError, "gae: gamma must be in [0, 1], got ", gamma);
  SL_CHECK(lambda >= 0 && lambda <= 1, ConfigError, "gae: lambda must be in [0, 1], got ", lambda);
  const auto r = rewards.to(torch::kFloat), v = values.to(torch::kFloat), nv = next_values.to(torch::kFloat);
  const auto not_term = 1 - terminated.to(torch::kFloat), not_done = 1 - done.to(torch::kFloat);
  const auto delta = r + gamma * not_term * nv - v;
  const auto T = rewards.size(0);
  auto adv = torch::empty_like(delta);
  auto next = torch::zeros({rewards.size(1)}, delta.options());
  for (int64_t t = T - 1; t >= 0; --t) {
    next = delta[t] + gamma * lambda * not_done[t] * next;
    adv[t] = next;
  }
  return adv;
}

torch::Tensor normalize_advantages(const torch::Tensor& advantages, double eps) {
  SL_CHECK(advantages.numel() >= 2, ShapeError, "normalize_advantages: needs at least 2 advantages, got ",
           advantages.numel());
  return (advantages - advantages.mean()) / (advantages.std() + eps);
}

torch::Tensor group_relative_advantages(const torch::Tensor& rewards, double eps, bool scale) {
  SL_CHECK(rewards.dim() == 2 && rewards.size(1) >= 1, ShapeError,
           "group_relative_advantages: rewards must be [B, G], got ", rewards.sizes());
  SL_CHECK(eps >= 0, ConfigError, "group_relative_advantages: eps must be >= 0, got ", eps);
  const auto r = rewards.to(torch::kFloat);
  const auto centred = r - r.mean(1, true);
  if (!scale) return centred;
  const auto sd = centred.pow(2).mean(1, true).sqrt();
  // 0 / (0 + eps) = 0 for a row of equal rewards; with eps = 0 such a row is defined as 0 too.
  return torch::where(sd > 0, centred / (sd + eps), torch::zeros_like(centred));
}

torch::Tensor stratified_advantages(const torch::Tensor& rewards, const torch::Tensor& strata, double eps,
                                    bool scale) {
  SL_CHECK(rewards.dim() == 2, ShapeError, "stratified_advantages: rewards must be [B, G], got ", rewards.sizes());
  check_same(rewards, strata, "stratified_advantages", "strata");
  SL_CHECK(!strata.is_floating_point(), ShapeError, "stratified_advantages: strata must be integer labels");
  SL_CHECK(eps >= 0, ConfigError, "stratified_advantages: eps must be >= 0, got ", eps);
  // Small data (one entry per trajectory): computed in double on the host, returned on the device.
  const auto r = rewards.to(torch::kCPU, torch::kDouble).contiguous();
  const auto s = strata.to(torch::kCPU, torch::kLong).contiguous();
  const auto B = r.size(0), G = r.size(1);
  auto out = torch::zeros({B, G}, torch::kDouble);
  const double* rp = r.data_ptr<double>();
  const int64_t* sp = s.data_ptr<int64_t>();
  double* op = out.data_ptr<double>();
  for (int64_t b = 0; b < B; ++b) {
    std::map<int64_t, std::vector<int64_t>> members;
    for (int64_t j = 0; j < G; ++j) members[sp[b * G + j]].push_back(j);
    for (const auto& [k, idx] : members) {
      const double n = static_cast<double>(idx.size());
      double mean = 0;
      for (auto j : idx) mean += rp[b * G + j];
      mean /= n;
      double var = 0;
      for (auto j : idx) var += (rp[b * G + j] - mean) * (rp[b * G + j] - mean);
      const double sd = std::sqrt(var / n);
      for (auto j : idx) {
        const double c = rp[b * G + j] - mean;
        op[b * G + j] = !scale ? c : (sd > 0 ? c / (sd + eps) : 0.0);
      }
    }
  }
  return out.to(rewards.device(), torch::kFloat);
}

torch::Tensor blended_advantages(const torch::Tensor& rewards, const torch::Tensor& strata, double alpha, double eps) {
  SL_CHECK(alpha >= 0 && alpha <= 1, ConfigError, "blended_advantages: alpha must be in [0, 1], got ", alpha);
  return alpha * stratified_advantages(rewards, strata, eps) + (1 - alpha) * group_relative_advantages(rewards, eps);
}

}  // namespace stablelearn::rl
