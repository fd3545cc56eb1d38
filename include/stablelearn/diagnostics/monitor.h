// The curvature monitor of training runs: what `[diagnostics]` of `cl run` and of `lfd train` read
// off a curvature operator at a training step — λ_max by Lanczos and Hutchinson's trace — the
// metrics.jsonl fields of a reading and summary.json's "diagnostics" block, in one place. Each run
// builds its own operator (the classifier's cross-entropy on fixed images; the LfD window loss);
// its sharpness.svg is report::save_sharpness_figure.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "stablelearn/diagnostics/curvature.h"

namespace stablelearn::diagnostics {

struct MonitorOptions {
  bool lambda_max = true;             ///< read λ_max
  std::int64_t lanczos_steps = 20;    ///< Lanczos steps (capped at the operator's dimension)
  std::int64_t trace_probes = 0;      ///< Hutchinson probes (0 = no trace, else >= 2)
  std::uint64_t lanczos_seed = 0;     ///< start vector of Lanczos
  std::uint64_t trace_seed = 0;       ///< Hutchinson's probes
};

struct MonitorReading {
  std::optional<double> lambda_max, lambda_residual;  ///< top eigenvalue and its Ritz residual
  std::optional<double> trace, trace_se;              ///< estimate and its standard error
  std::int64_t matvecs = 0;                           ///< operator products used
};

/// One reading: the largest algebraic eigenvalue of `op` (Lanczos, k = 1) and, with trace_probes
/// > 0, the trace.
MonitorReading read_curvature(const CurvatureOperator& op, const MonitorOptions& options);

/// A reading's metrics.jsonl fields: lambda_max and lambda_residual, trace and trace_se (those
/// read), and hvps (the operator products used).
nlohmann::json reading_fields(const MonitorReading& reading);

/// summary.json's "diagnostics" block from the rows measured so far (not empty): every, curvature,
/// measurements, the last row, two_over_lr and, when the rows hold lambda_max, its largest value
/// max_lambda_max (non-finite values ignored; null when none is finite).
nlohmann::json monitor_summary(const std::vector<nlohmann::json>& rows, std::int64_t every, const std::string& curvature,
                               double two_over_lr);

}  // namespace stablelearn::diagnostics
