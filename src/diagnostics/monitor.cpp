#include "stablelearn/diagnostics/monitor.h"

#include <algorithm>
#include <cmath>

#include "stablelearn/diagnostics/eigen.h"
#include "stablelearn/diagnostics/trace.h"

namespace stablelearn::diagnostics {

MonitorReading read_curvature(const CurvatureOperator& op, const MonitorOptions& o) {
  MonitorReading r;
  if (o.lambda_max) {
    const auto steps = std::min<std::int64_t>(o.lanczos_steps, op.dim());
    const auto eig = lanczos(op, LanczosOptions().k(1).steps(steps).which(Spectrum::LargestAlgebraic).seed(o.lanczos_seed));
    r.lambda_max = eig.eigenvalues[0].item<double>();
    r.lambda_residual = eig.residuals[0].item<double>();
    r.matvecs += eig.matvecs;
  }
  if (o.trace_probes > 0) {
    const auto tr = hutchinson_trace(op, TraceOptions().matvecs(o.trace_probes).seed(o.trace_seed));
    r.trace = tr.estimate;
    r.trace_se = tr.standard_error;
    r.matvecs += tr.matvecs;
  }
  return r;
}

nlohmann::json reading_fields(const MonitorReading& r) {
  nlohmann::json row = nlohmann::json::object();
  if (r.lambda_max) {
    row["lambda_max"] = *r.lambda_max;
    row["lambda_residual"] = *r.lambda_residual;
  }
  if (r.trace) {
    row["trace"] = *r.trace;
    row["trace_se"] = *r.trace_se;
  }
  row["hvps"] = r.matvecs;
  return row;
}

nlohmann::json monitor_summary(const std::vector<nlohmann::json>& rows, std::int64_t every, const std::string& curvature,
                               double two_over_lr) {
  nlohmann::json s{{"every", every},
                   {"curvature", curvature},
                   {"measurements", rows.size()},
                   {"last", rows.empty() ? nlohmann::json() : rows.back()},
                   {"two_over_lr", two_over_lr}};
  bool any = false;
  double peak = -INFINITY;
  for (const auto& r : rows) {
    if (!r.contains("lambda_max")) continue;
    any = true;
    const auto& v = r.at("lambda_max");
    if (v.is_number() && std::isfinite(v.get<double>())) peak = std::max(peak, v.get<double>());
  }
  if (any) s["max_lambda_max"] = std::isfinite(peak) ? nlohmann::json(peak) : nlohmann::json();
  return s;
}

}  // namespace stablelearn::diagnostics
