// GD / SGD linear-stability checks (see stability.h).
#include "stablelearn/diagnostics/stability.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "stablelearn/core/error.h"
#include "stablelearn/diagnostics/eigen.h"
#include "stablelearn/diagnostics/trace.h"

namespace stablelearn::diagnostics {

double sgd_noise_factor(std::int64_t batch_size, std::int64_t num_samples) {
  SL_CHECK(num_samples >= 2, ConfigError, "stability: num_samples must be at least 2, got ", num_samples);
  SL_CHECK(batch_size >= 1 && batch_size <= num_samples, ConfigError, "stability: batch_size = ", batch_size,
           " must be in [1, ", num_samples, "]");
  return static_cast<double>(num_samples - batch_size) /
         (static_cast<double>(batch_size) * static_cast<double>(num_samples - 1));
}

double sgd_exact_threshold(const std::vector<torch::Tensor>& sample_hessians, std::int64_t batch_size) {
  SL_CHECK(!sample_hessians.empty(), ShapeError, "sgd_exact_threshold: no per-sample Hessians");
  const auto n = static_cast<std::int64_t>(sample_hessians.size());
  const double p = sgd_noise_factor(batch_size, n);
  const auto d = sample_hessians[0].size(0);
  auto h = torch::zeros({d, d}, torch::kFloat64);
  auto kron_mean = torch::zeros({d * d, d * d}, torch::kFloat64);
  for (std::int64_t i = 0; i < n; ++i) {
    const auto& hi = sample_hessians[static_cast<std::size_t>(i)];
    SL_CHECK(hi.dim() == 2 && hi.size(0) == d && hi.size(1) == d, ShapeError, "sgd_exact_threshold: Hessian ", i,
             " has shape ", hi.sizes(), ", expected [", d, ", ", d, "]");
    const auto h64 = hi.detach().to(torch::kFloat64).cpu();
    h += h64;
    kron_mean += torch::kron(h64, h64);
  }
  h /= static_cast<double>(n);
  kron_mean /= static_cast<double>(n);
  const auto eye = torch::eye(d, torch::kFloat64);
  const auto c = 0.5 * (torch::kron(h, eye) + torch::kron(eye, h));
  const auto dm = (1.0 - p) * torch::kron(h, h) + p * kron_mean;
  const auto ev = torch::linalg_eigvals(torch::linalg_pinv(c).mm(dm));
  const double top = torch::real(ev).max().item<double>();
  SL_CHECK(top > 0.0, DataError, "sgd_exact_threshold: C†D has no positive eigenvalue (zero Hessians?)");
  return 2.0 / top;
}

StabilityReport stability_check(const CurvatureOperator& hessian, const StabilityOptions& o) {
  SL_CHECK(o.learning_rate() > 0.0 && std::isfinite(o.learning_rate()), ConfigError,
           "stability: learning_rate must be positive, got ", o.learning_rate());
  StabilityReport r;
  r.learning_rate = o.learning_rate();
  r.batch_size = o.batch_size();
  r.num_samples = o.num_samples();
  r.p = sgd_noise_factor(o.batch_size(), o.num_samples());
  const double eta = o.learning_rate();

  const auto steps = std::min(std::max<std::int64_t>(o.lanczos_steps(), 1), hessian.dim());
  const auto top = lanczos(hessian, LanczosOptions().k(1).steps(steps).which(Spectrum::LargestAlgebraic).seed(o.seed()));
  r.lambda_max = top.eigenvalues[0].item<double>();
  r.lambda_residual = top.residuals[0].item<double>();
  const auto tr = hutchpp_trace(hessian, TraceOptions().matvecs(o.trace_matvecs()).seed(o.seed() + 1));
  r.trace = tr.estimate;
  r.trace_stderr = tr.standard_error;
  const auto fro = frobenius_norm_squared(hessian, TraceOptions().matvecs(o.frobenius_matvecs()).seed(o.seed() + 2));
  r.frobenius = std::sqrt(std::max(fro.estimate, 0.0));
  r.frobenius_sq_stderr = fro.standard_error;
  r.matvecs = top.matvecs + tr.matvecs + fro.matvecs;

  r.gd_threshold = 2.0 / eta;
  r.sharpness_ratio = eta * r.lambda_max / 2.0;
  r.trace_threshold = r.p > 0.0 ? 2.0 / (eta * r.p) : std::numeric_limits<double>::infinity();
  r.trace_ratio = eta * r.p * r.trace / 2.0;
  r.frobenius_scaled = eta * r.frobenius / std::sqrt(static_cast<double>(o.batch_size()));
  return r;
}

}  // namespace stablelearn::diagnostics
