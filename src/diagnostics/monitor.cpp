#include "stablelearn/diagnostics/monitor.h"

#include <algorithm>

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

}  // namespace stablelearn::diagnostics
