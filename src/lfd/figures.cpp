#include "stablelearn/lfd/figures.h"

#include <algorithm>
#include <cmath>

#include <nlohmann/json.hpp>

#include "stablelearn/core/error.h"
#include "stablelearn/core/fs.h"
#include "stablelearn/lfd/trainer.h"
#include "stablelearn/models/odeint.h"
#include "stablelearn/report/svg.h"

namespace stablelearn::lfd {

namespace {
const char* kColours[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"};
}

std::vector<std::filesystem::path> write_run_figures(const LfdRun& run, const std::filesystem::path& run_dir,
                                                     const std::filesystem::path& out_dir) {
  std::vector<std::filesystem::path> written;
  std::filesystem::create_directories(out_dir);
  torch::NoGradGuard no_grad;
  const auto& c = run.config();
  for (std::int64_t j = 0; j < run.completed_tasks(); ++j) {
    const auto d = run.task(j);
    if (d.position_dim < 2) continue;
    const auto field = run.field(j);
    const auto x0 = d.x.select(1, 0).to(torch::kFloat32);
    const auto t = d.t.to(torch::kFloat32);
    // sNODE: the evaluation protocol with the skill's own map (Euler, or Φ with model.discrete_step).
    const auto traj = (c.target == "snode" ? windowed_rollout(run.rollout(j), x0, t, c.tsub) : models::odeint(field, x0, t))
                          .to(torch::kFloat64);
    const auto P = d.position_dim;
    const auto to_raw = [&](const torch::Tensor& m) {
      return (m.narrow(-1, 0, P) + d.goal.unsqueeze(1)) * d.std + d.mean;
    };
    const auto pred = to_raw(traj);
    const auto raw = d.raw.narrow(2, 0, P);
    const auto lo = std::get<0>(raw.reshape({-1, P}).min(0)), hi = std::get<0>(raw.reshape({-1, P}).max(0));
    const double pad0 = 0.1 * (hi[0] - lo[0]).item<double>(), pad1 = 0.1 * (hi[1] - lo[1]).item<double>();
    report::SvgPlot plot(640, 560);
    const double xa = lo[0].item<double>() - pad0, xb = hi[0].item<double>() + pad0;
    const double ya = lo[1].item<double>() - pad1, yb = hi[1].item<double>() + pad1;
    plot.set_range(xa, xb, ya, yb);
    plot.title(run.task_name(j) + " (task " + std::to_string(j) + ")");
    plot.labels("x0", "x1");
    // Vector field on a grid (2-D states only), at the demonstrations' mid time, in raw units.
    if (d.x.size(2) == 2) {
      const int n = 15;
      const double tm = d.t[d.t.size(0) / 2].item<double>();
      std::vector<float> grid;
      for (int a = 0; a < n; ++a)
        for (int b = 0; b < n; ++b) {
          const double rx = xa + (xb - xa) * (a + 0.5) / n, ry = ya + (yb - ya) * (b + 0.5) / n;
          const double mx = (rx - d.mean[0].item<double>()) / d.std[0].item<double>() - d.goal.mean(0)[0].item<double>();
          const double my = (ry - d.mean[1].item<double>()) / d.std[1].item<double>() - d.goal.mean(0)[1].item<double>();
          grid.push_back(static_cast<float>(mx));
          grid.push_back(static_cast<float>(my));
        }
      const auto states = torch::tensor(grid).reshape({n * n, 2});
      const auto v = field(torch::tensor(static_cast<float>(tm)), states).to(torch::kFloat64) * d.std;
      const double vmax = std::max(1e-12, v.norm(2, 1).max().item<double>());
      const double cell = std::min(xb - xa, yb - ya) / n;
      for (int k = 0; k < n * n; ++k) {
        const double rx = xa + (xb - xa) * (k / n + 0.5) / n, ry = ya + (yb - ya) * (k % n + 0.5) / n;
        plot.arrow(rx, ry, 0.8 * cell * v[k][0].item<double>() / vmax, 0.8 * cell * v[k][1].item<double>() / vmax, "#bbbbbb");
      }
    }
    for (std::int64_t m = 0; m < raw.size(0); ++m) {
      std::vector<std::pair<double, double>> demo, model;
      for (std::int64_t k = 0; k < raw.size(1); ++k) demo.emplace_back(raw[m][k][0].item<double>(), raw[m][k][1].item<double>());
      for (std::int64_t k = 0; k < pred.size(1); ++k) model.emplace_back(pred[m][k][0].item<double>(), pred[m][k][1].item<double>());
      plot.polyline(demo, "#555555", 2.0, 0.6);
      plot.polyline(model, "#1f77b4", 1.5);
      plot.marker(demo.front().first, demo.front().second, "#2ca02c", 3);
    }
    plot.marker(raw[0][raw.size(1) - 1][0].item<double>(), raw[0][raw.size(1) - 1][1].item<double>(), "#d62728", 5);
    plot.legend("demonstrations", "#555555");
    plot.legend("model rollouts", "#1f77b4");
    if (d.x.size(2) == 2) plot.legend("learned field (direction)", "#bbbbbb");
    const auto path = out_dir / ("task_" + std::to_string(j) + ".svg");
    plot.save(path.string());
    written.push_back(path);
  }

  // Error vs task: median DTW of each evaluated task after each training task (log scale).
  const auto summary_path = run_dir / "summary.json";
  if (std::filesystem::exists(summary_path)) {
    const auto s = nlohmann::json::parse(read_file_text(summary_path));
    if (s.contains("median_errors") && !s["median_errors"].empty()) {
      const auto& m = s["median_errors"];
      const auto n = static_cast<std::int64_t>(m.size());
      double lo = 1e300, hi = 0;
      std::vector<std::vector<std::pair<double, double>>> curves(static_cast<std::size_t>(n));
      for (std::int64_t i = 0; i < n; ++i) {
        const auto& row = m["train_task_" + std::to_string(i)];
        for (std::int64_t j = 0; j <= i; ++j) {
          const double v = row["eval_task_" + std::to_string(j)]["dtw"].get<double>();
          curves[static_cast<std::size_t>(j)].emplace_back(static_cast<double>(i), v);
          lo = std::min(lo, v);
          hi = std::max(hi, v);
        }
      }
      report::SvgPlot plot(640, 420);
      plot.log_y(true);
      plot.set_range(-0.2, std::max<double>(1.0, static_cast<double>(n - 1)) + 0.2, lo / 1.5, hi * 1.5);
      plot.title("median DTW of each task while later tasks are learned");
      plot.labels("current (last trained) task", "median DTW (log)");
      for (std::size_t j = 0; j < curves.size(); ++j) {
        const char* colour = kColours[j % 8];
        plot.polyline(curves[j], colour, 2.0);
        for (const auto& [x, y] : curves[j]) plot.marker(x, y, colour, 3);
        if (j < 8) plot.legend("task " + std::to_string(j), colour);
      }
      const auto path = out_dir / "errors.svg";
      plot.save(path.string());
      written.push_back(path);
    }
  }
  return written;
}

}  // namespace stablelearn::lfd
