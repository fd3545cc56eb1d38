// Flow matching, samplers, k-means pruning and MMD (include/stablelearn/models/flow_matching.h).
#include "stablelearn/models/flow_matching.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include <torch/torch.h>

#include "stablelearn/core/error.h"
#include "sequential_mlp.h"

namespace stablelearn::models {

void VelocityMlpOptions::validate(const std::string& prefix) const {
  SL_CHECK(dim() >= 1, ConfigError, prefix, "dim: ", dim(), " (want >= 1)");
  SL_CHECK(time_features() >= 2 && time_features() % 2 == 0, ConfigError, prefix, "time_features: ", time_features(),
           " (want an even number >= 2)");
  for (auto h : hidden()) SL_CHECK(h >= 1, ConfigError, prefix, "hidden: a width of ", h, " (want >= 1)");
}

VelocityMlpImpl::VelocityMlpImpl(VelocityMlpOptions options) : options_(std::move(options)) {
  options_.validate();
  net_ = register_module("net", detail::sequential_mlp<torch::nn::SiLU>(options_.dim() + options_.time_features(),
                                                                       options_.hidden(), options_.dim()));
}

torch::Tensor VelocityMlpImpl::forward(const torch::Tensor& x, const torch::Tensor& t) {
  SL_CHECK(x.dim() == 2 && x.size(1) == options_.dim(), ShapeError, "VelocityMlp: want x [N, ", options_.dim(), "], got ",
           x.sizes());
  auto tt = t.dim() == 0 ? t.expand({x.size(0)}) : t;
  SL_CHECK(tt.dim() == 1 && tt.size(0) == x.size(0), ShapeError, "VelocityMlp: want t [N] or a scalar, got ", t.sizes());
  const auto f = torch::arange(1, options_.time_features() / 2 + 1, x.options()) * (2 * M_PI);
  const auto arg = tt.to(x.dtype()).unsqueeze(1) * f.unsqueeze(0);
  return net_->forward(torch::cat({x, arg.sin(), arg.cos()}, 1));
}

std::int64_t VelocityMlpImpl::macs() const {
  std::int64_t in = options_.dim() + options_.time_features(), total = 0;
  for (auto h : options_.hidden()) {
    total += in * h;
    in = h;
  }
  return total + in * options_.dim();
}

torch::Tensor flow_matching_loss(VelocityMlpImpl& v, const torch::Tensor& x1, const torch::Tensor& x0, const torch::Tensor& t) {
  SL_CHECK(x1.sizes() == x0.sizes() && x1.dim() == 2 && t.dim() == 1 && t.size(0) == x1.size(0), ShapeError,
           "flow_matching_loss: want x1, x0 [N, d] alike and t [N], got ", x1.sizes(), ", ", x0.sizes(), ", ", t.sizes());
  const auto tc = t.to(x1.dtype()).unsqueeze(1);
  const auto xt = tc * x1 + (1 - tc) * x0;
  return (v.forward(xt, t) - (x1 - x0)).pow(2).sum(1).mean();
}

torch::Tensor sample_ode(const VelocityFn& v, const torch::Tensor& x0, std::int64_t steps, OdeSampler sampler) {
  SL_CHECK(steps >= 1, ConfigError, "sample_ode: steps ", steps, " (want >= 1)");
  torch::NoGradGuard no_grad;
  auto x = x0.clone();
  const double h = 1.0 / static_cast<double>(steps);
  for (std::int64_t i = 0; i < steps; ++i) {
    const double t = static_cast<double>(i) * h;
    const auto k1 = v(x, torch::full({}, t, x.options()));
    if (sampler == OdeSampler::Euler) {
      x = x + h * k1;
    } else {
      const auto k2 = v(x + h * k1, torch::full({}, t + h, x.options()));
      x = x + (h / 2) * (k1 + k2);
    }
  }
  return x;
}

torch::Tensor sample_coarse_to_fine(const VelocityFn& coarse, const VelocityFn& fine, const torch::Tensor& x0, std::int64_t steps,
                                    double t_split) {
  SL_CHECK(steps >= 1 && t_split >= 0 && t_split <= 1, ConfigError, "sample_coarse_to_fine: steps ", steps, ", t_split ", t_split,
           " (want steps >= 1, t_split in [0, 1])");
  torch::NoGradGuard no_grad;
  auto x = x0.clone();
  const double h = 1.0 / static_cast<double>(steps);
  for (std::int64_t i = 0; i < steps; ++i) {
    const double t = static_cast<double>(i) * h;
    x = x + h * (t < t_split ? coarse : fine)(x, torch::full({}, t, x.options()));
  }
  return x;
}

VelocityFn velocity_fn(VelocityMlpImpl& v) {
  return [&v](const torch::Tensor& x, const torch::Tensor& t) { return v.forward(x, t); };
}

torch::Tensor kmeans(const torch::Tensor& x, std::int64_t k, std::uint64_t seed, std::int64_t iterations) {
  SL_CHECK(x.dim() == 2 && k >= 1 && k <= x.size(0), ConfigError, "kmeans: ", k, " clusters for ", x.sizes(),
           " (want 1 <= k <= rows)");
  torch::NoGradGuard no_grad;
  const auto xd = x.to(torch::kFloat64);
  auto gen = at::detail::createCPUGenerator(seed);
  const auto n = xd.size(0);
  // k-means++: the first centre uniform, each next with probability ∝ squared distance to the nearest.
  std::vector<std::int64_t> chosen{torch::randint(0, n, {1}, gen, torch::kInt64).item<std::int64_t>()};
  auto d2 = (xd - xd[chosen[0]]).pow(2).sum(1);
  while (static_cast<std::int64_t>(chosen.size()) < k) {
    const auto p = d2.clamp_min(0);
    const auto next = p.sum().item<double>() > 0 ? torch::multinomial(p, 1, false, gen).item<std::int64_t>()
                                                  : torch::randint(0, n, {1}, gen, torch::kInt64).item<std::int64_t>();
    chosen.push_back(next);
    d2 = torch::min(d2, (xd - xd[next]).pow(2).sum(1));
  }
  auto centres = xd.index_select(0, torch::tensor(chosen, torch::kInt64));
  torch::Tensor assign;
  for (std::int64_t it = 0; it < iterations; ++it) {
    const auto a = torch::cdist(xd, centres).argmin(1);
    if (assign.defined() && torch::equal(a, assign)) break;
    assign = a;
    for (std::int64_t c = 0; c < k; ++c) {
      const auto members = assign.eq(c).nonzero().squeeze(1);
      if (members.numel() > 0) centres[c] = xd.index_select(0, members).mean(0);
    }
  }
  return assign;
}

torch::Tensor balanced_cluster_subset(const torch::Tensor& x, std::int64_t keep, std::int64_t clusters, std::uint64_t seed) {
  SL_CHECK(keep >= 1 && keep <= x.size(0), ConfigError, "balanced_cluster_subset: keep ", keep, " of ", x.size(0), " rows");
  const auto assign = kmeans(x, clusters, seed);
  auto gen = at::detail::createCPUGenerator(seed * 6364136223846793005ull + 1442695040888963407ull);
  std::vector<std::vector<std::int64_t>> members(static_cast<std::size_t>(clusters));
  const auto a = assign.contiguous();
  const auto* ap = a.data_ptr<std::int64_t>();
  for (std::int64_t i = 0; i < a.numel(); ++i) members[static_cast<std::size_t>(ap[i])].push_back(i);
  for (auto& m : members) {  // a random order within each cluster
    const auto perm = torch::randperm(static_cast<std::int64_t>(m.size()), gen, torch::kInt64);
    std::vector<std::int64_t> shuffled(m.size());
    for (std::size_t j = 0; j < m.size(); ++j) shuffled[j] = m[static_cast<std::size_t>(perm[static_cast<std::int64_t>(j)].item<std::int64_t>())];
    m = shuffled;
  }
  // Water-filling: raise a common quota until `keep` rows are taken; small clusters give all they have.
  std::vector<std::int64_t> take(members.size(), 0);
  std::int64_t left = keep;
  while (left > 0) {
    std::int64_t open = 0;
    for (std::size_t c = 0; c < members.size(); ++c) open += take[c] < static_cast<std::int64_t>(members[c].size());
    const auto share = std::max<std::int64_t>(1, left / std::max<std::int64_t>(1, open));
    for (std::size_t c = 0; c < members.size() && left > 0; ++c) {
      const auto more = std::min({share, static_cast<std::int64_t>(members[c].size()) - take[c], left});
      take[c] += more;
      left -= more;
    }
  }
  std::vector<std::int64_t> out;
  for (std::size_t c = 0; c < members.size(); ++c) out.insert(out.end(), members[c].begin(), members[c].begin() + take[c]);
  std::sort(out.begin(), out.end());
  return torch::tensor(out, torch::kInt64);
}

double mmd2(const torch::Tensor& a, const torch::Tensor& b, double sigma) {
  SL_CHECK(a.dim() == 2 && b.dim() == 2 && a.size(1) == b.size(1) && a.size(0) >= 2 && b.size(0) >= 2, ShapeError,
           "mmd2: want two sets [N >= 2, d] and [M >= 2, d], got ", a.sizes(), " and ", b.sizes());
  torch::NoGradGuard no_grad;
  const auto A = a.to(torch::kFloat64), B = b.to(torch::kFloat64);
  auto k = [&](const torch::Tensor& u, const torch::Tensor& w) { return (-torch::cdist(u, w).pow(2) / (2 * sigma * sigma)).exp(); };
  const double n = static_cast<double>(A.size(0)), m = static_cast<double>(B.size(0));
  const double kaa = (k(A, A).sum().item<double>() - n) / (n * (n - 1));
  const double kbb = (k(B, B).sum().item<double>() - m) / (m * (m - 1));
  return kaa + kbb - 2 * k(A, B).mean().item<double>();
}

}  // namespace stablelearn::models
