#include "stablelearn/lfd/report_sections.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include <ATen/CPUGeneratorImpl.h>

#include "stablelearn/lfd/trainer.h"

namespace stablelearn::lfd {

namespace {

using json = nlohmann::json;
using report::round_sig;

/// A contiguous float64 copy, for reading many values without item().
std::vector<double> to_vec(const torch::Tensor& t) {
  const auto c = t.to(torch::kFloat64).contiguous();
  return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}

/// Appends the polyline (xs[k], ys[k]) to a "plane" layer (null pair after it), thinned by a stride
/// to at most `max_points` (the last point kept).
void append_polyline(json& xy, const double* px, const double* py, std::int64_t n, std::int64_t stride_elems,
                     std::size_t max_points) {
  const std::int64_t stride = std::max<std::int64_t>(1, (n + static_cast<std::int64_t>(max_points) - 1) / static_cast<std::int64_t>(max_points));
  for (std::int64_t k = 0; k < n; k += stride) {
    if (!std::isfinite(px[k * stride_elems]) || !std::isfinite(py[k * stride_elems])) break;
    xy.push_back(round_sig(px[k * stride_elems]));
    xy.push_back(round_sig(py[k * stride_elems]));
  }
  if ((n - 1) % stride != 0 && std::isfinite(px[(n - 1) * stride_elems]) && std::isfinite(py[(n - 1) * stride_elems])) {
    xy.push_back(round_sig(px[(n - 1) * stride_elems]));
    xy.push_back(round_sig(py[(n - 1) * stride_elems]));
  }
  xy.push_back(nullptr);
  xy.push_back(nullptr);
}

/// Every how many data steps the report's rollouts take one step: 1 (the data grid) unless all tasks'
/// rollouts would exceed options.rollout_budget solver steps, then the smallest stride that fits.
std::int64_t rollout_stride(const LfdRun& run, const SkillViewOptions& o, std::int64_t horizon_steps) {
  if (o.rollout_budget <= 0) return 1;
  const auto total = run.completed_tasks() * horizon_steps;
  return std::max<std::int64_t>(1, (total + o.rollout_budget - 1) / o.rollout_budget);
}

double quantile(std::vector<double> v, double q) {
  v.erase(std::remove_if(v.begin(), v.end(), [](double x) { return !std::isfinite(x); }), v.end());
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  return v[static_cast<std::size_t>(q * static_cast<double>(v.size() - 1))];
}

}  // namespace

json skill_report_sections(const LfdRun& run, const std::filesystem::path& run_dir, const report::ReportOptions& ro,
                           const SkillViewOptions& o) {
  torch::NoGradGuard no_grad;
  const auto& cfg = run.config();
  const bool snode = cfg.target == "snode";
  json planes = json::array();
  json table = {{"type", "table"},
                {"title", "rollouts from the demonstrations' starts and from random starts (horizon " + report::format_number(o.horizon_factor) +
                              " T): where they end"},
                {"columns", {"task", "name", "solver step", "starts", "within tolerance", "tolerance", "median final distance", "max final distance",
                             "steps radially pulled (discrete map)"}},
                {"rows", json::array()},
                {"source", (run_dir / "checkpoint.json").string()}};
  const auto ckpt_src = report::run_header(run_dir, report::RunKind::lfd, ro)["files"];
  std::string source = "checkpoint.json";
  for (const auto& f : ckpt_src)
    if (f["name"].get<std::string>().rfind("checkpoint", 0) == 0) source = f["href"].get<std::string>();
  table["source"] = source + " (weights), the data set (demonstrations)";

  for (std::int64_t j = 0; j < run.completed_tasks(); ++j) {
    const auto d = run.task(j);
    const auto P = d.position_dim;
    const auto S = d.x.size(2);
    const auto M = d.x.size(0), T = d.x.size(1);
    const auto mean = to_vec(d.mean), stdv = to_vec(d.std);
    const auto gmean = to_vec(d.goal.mean(0));
    // Demonstration positions in raw units and their extent.
    const auto raw = d.raw.narrow(2, 0, P).contiguous();
    const auto lo = std::get<0>(raw.reshape({-1, P}).min(0)), hi = std::get<0>(raw.reshape({-1, P}).max(0));
    const auto lov = to_vec(lo), hiv = to_vec(hi);
    double extent = 0;
    for (std::int64_t k = 0; k < P; ++k) extent = std::max(extent, hiv[static_cast<std::size_t>(k)] - lov[static_cast<std::size_t>(k)]);
    const double tol = 0.02 * extent;

    // Plotted area (raw units): the demonstrations' box padded by 15 % per side.
    double xa = 0, xb = 1, ya = 0, yb = 1;
    if (P >= 2) {
      const double p0 = 0.15 * (hiv[0] - lov[0]) + 1e-9, p1 = 0.15 * (hiv[1] - lov[1]) + 1e-9;
      xa = lov[0] - p0; xb = hiv[0] + p0; ya = lov[1] - p1; yb = hiv[1] + p1;
    }
    auto to_model = [&](double rx, std::size_t k) { return (rx - mean[k]) / stdv[k] - gmean[k]; };

    // Starts: the demonstrations' first states, then random states in the plotted area (positions;
    // other state coordinates at 0 in model coordinates).
    const auto demo_x0 = d.x.select(1, 0).to(torch::kFloat32);
    auto gen = at::make_generator<at::CPUGeneratorImpl>(o.seed + static_cast<std::uint64_t>(j));
    torch::Tensor rand_x0 = torch::zeros({o.random_starts, S}, torch::kFloat32);
    if (P >= 2 && o.random_starts > 0) {
      const auto u = torch::rand({o.random_starts, 2}, gen, torch::kFloat64);
      for (std::int64_t r = 0; r < o.random_starts; ++r) {
        rand_x0[r][0] = to_model(xa + (xb - xa) * u[r][0].item<double>(), 0);
        rand_x0[r][1] = to_model(ya + (yb - ya) * u[r][1].item<double>(), 1);
      }
    }
    const auto x0 = torch::cat({demo_x0, rand_x0}, 0);
    const auto B = x0.size(0);
    // Time grid: the demonstrations' grid continued with its mean step to horizon_factor x T, every
    // stride-th point of it (stride 1: the data grid, as trained and executed).
    const auto tv = to_vec(d.t);
    const std::int64_t Hfull = std::max<std::int64_t>(T, static_cast<std::int64_t>(std::llround(o.horizon_factor * static_cast<double>(T))));
    const std::int64_t stride = rollout_stride(run, o, Hfull);
    const std::int64_t H = (Hfull - 1) / stride + 1;
    const double dt = T > 1 ? (tv.back() - tv.front()) / static_cast<double>(T - 1) : 0.01;
    const auto t = (torch::arange(H, torch::kFloat64) * (dt * static_cast<double>(stride)) + tv.front()).to(torch::kFloat32);
    models::functional::SNodeDiscreteStats stats;  // filled by the discrete map only
    const auto traj = run.rollout(j)(x0, t, &stats).to(torch::kFloat64);  // [B, H, S]
    const std::string solver = stride == 1 ? std::string("data step") : std::to_string(stride) + "x data step";
    // Raw positions (random starts use the mean goal).
    auto goals = torch::cat({d.goal, d.goal.mean(0, true).expand({B - M, P})}, 0).unsqueeze(1);
    const auto pos = ((traj.narrow(-1, 0, P) + goals) * d.std + d.mean).contiguous();  // [B, H, P]
    const auto goal_raw = ((d.goal.mean(0)) * d.std + d.mean);
    const auto final_dist = (pos.select(1, H - 1) - goal_raw).norm(2, 1);
    const auto fd = to_vec(final_dist);
    std::int64_t within = 0;
    for (double v : fd) within += (std::isfinite(v) && v <= tol) ? 1 : 0;
    table["rows"].push_back({j, run.task_name(j), solver, B, std::to_string(within) + "/" + std::to_string(B), report::round_sig(tol, 4),
                             report::round_sig(quantile(fd, 0.5), 4), report::round_sig(*std::max_element(fd.begin(), fd.end()), 4),
                             stats.steps > 0 ? json(report::format_number(100.0 * stats.projected_fraction()) + " %") : json("n/a")});
    if (P < 2) continue;

    json layers = json::array();
    const auto posv = to_vec(pos);
    const auto rawv = to_vec(raw);
    // Vector field streamlines and V level sets on the plane of coordinates 0 and 1.
    const double tm = tv[tv.size() / 2];
    const auto tmid = torch::tensor(static_cast<float>(tm));
    {
      const auto field = run.field(j);
      const std::int64_t n = o.seeds;
      auto x = torch::zeros({n * n, S}, torch::kFloat32);
      for (std::int64_t a = 0; a < n; ++a)
        for (std::int64_t b = 0; b < n; ++b) {
          x[a * n + b][0] = to_model(xa + (xb - xa) * (a + 0.5) / n, 0);
          x[a * n + b][1] = to_model(ya + (yb - ya) * (b + 0.5) / n, 1);
        }
      // Each step moves 0.6 of a seed cell along the field's direction as drawn (raw units scaled by
      // the cell size of each axis), converted back to model units.
      const double cx = (xb - xa) / n, cy = (yb - ya) / n;
      const auto scale = torch::tensor({stdv[0] / cx, stdv[1] / cy}, torch::kFloat32);
      const auto back = torch::tensor({0.6 * cx / stdv[0], 0.6 * cy / stdv[1]}, torch::kFloat32);
      std::vector<torch::Tensor> path{x.narrow(1, 0, 2).clone()};
      for (std::int64_t s = 0; s < o.stream_steps; ++s) {
        const auto v = field(tmid, x).narrow(1, 0, 2).to(torch::kFloat32) * scale;  // display units
        const auto step = v / v.norm(2, 1, true).clamp_min(1e-12) * back;
        x.narrow(1, 0, 2).add_(step);
        path.push_back(x.narrow(1, 0, 2).clone());
      }
      const auto pth = torch::stack(path, 1).to(torch::kFloat64);  // [n*n, steps+1, 2]
      const auto rawp = ((pth + d.goal.mean(0).narrow(0, 0, 2)) * d.std.narrow(0, 0, 2) + d.mean.narrow(0, 0, 2)).contiguous();
      const auto rp = to_vec(rawp);
      json xy = json::array();
      const auto L = pth.size(1);
      for (std::int64_t k = 0; k < n * n; ++k) append_polyline(xy, &rp[static_cast<std::size_t>(k * L * 2)], &rp[static_cast<std::size_t>(k * L * 2 + 1)], L, 2, 1000);
      layers.push_back({{"name", S == 2 ? "learned field (streamlines)" : "learned field on the slice through the goal (streamlines)"},
                        {"kind", "stream"}, {"xy", xy}});
    }
    if (snode) {
      const auto V = run.lyapunov(j);
      const std::int64_t g = o.grid;
      std::vector<double> xs(static_cast<std::size_t>(g)), ys(static_cast<std::size_t>(g));
      auto x = torch::zeros({g * g, S}, torch::kFloat32);
      for (std::int64_t a = 0; a < g; ++a) {
        xs[static_cast<std::size_t>(a)] = xa + (xb - xa) * a / (g - 1);
        ys[static_cast<std::size_t>(a)] = ya + (yb - ya) * a / (g - 1);
      }
      for (std::int64_t iy = 0; iy < g; ++iy)
        for (std::int64_t ix = 0; ix < g; ++ix) {
          x[iy * g + ix][0] = to_model(xs[static_cast<std::size_t>(ix)], 0);
          x[iy * g + ix][1] = to_model(ys[static_cast<std::size_t>(iy)], 1);
        }
      auto vv = to_vec(V(tmid, x));
      for (auto& v : vv) v = v > 0 ? std::log(v) : NAN;
      const double q0 = quantile(vv, 0.05), q1 = quantile(vv, 0.9);
      json xy = json::array();
      if (std::isfinite(q0) && std::isfinite(q1) && q1 > q0)
        for (std::int64_t l = 0; l < o.levels; ++l) {
          const auto seg = report::contour_segments(vv, xs, ys, q0 + (q1 - q0) * (l + 0.5) / static_cast<double>(o.levels));
          xy.insert(xy.end(), seg.begin(), seg.end());
        }
      if (!xy.empty()) layers.push_back({{"name", "level sets of V"}, {"kind", "contour"}, {"xy", xy}});
    }
    {
      json xy = json::array();
      for (std::int64_t m = 0; m < M; ++m)
        append_polyline(xy, &rawv[static_cast<std::size_t>(m * T * P)], &rawv[static_cast<std::size_t>(m * T * P + 1)], T, P, o.max_points);
      layers.push_back({{"name", "demonstrations"}, {"kind", "demo"}, {"xy", xy}});
    }
    {
      json xy = json::array(), xr = json::array();
      for (std::int64_t b = 0; b < B; ++b)
        append_polyline(b < M ? xy : xr, &posv[static_cast<std::size_t>(b * H * P)], &posv[static_cast<std::size_t>(b * H * P + 1)], H, P, o.max_points);
      layers.push_back({{"name", "rollouts from the demonstrations' starts"}, {"kind", "rollout"}, {"xy", xy}});
      if (B > M) layers.push_back({{"name", "rollouts from random starts"}, {"kind", "random"}, {"xy", xr}});
      json starts = json::array(), goal = json::array();
      for (std::int64_t b = M; b < B; ++b) {
        starts.push_back(round_sig(posv[static_cast<std::size_t>(b * H * P)]));
        starts.push_back(round_sig(posv[static_cast<std::size_t>(b * H * P + 1)]));
      }
      const auto gr = to_vec(goal_raw);
      goal.push_back(round_sig(gr[0]));
      goal.push_back(round_sig(gr[1]));
      if (!starts.empty()) layers.push_back({{"name", "random starts"}, {"kind", "points"}, {"xy", starts}, {"color", "#ff7f0e"}, {"size", 6}});
      layers.push_back({{"name", "goal"}, {"kind", "points"}, {"xy", goal}, {"color", "#d62728"}, {"size", 11}});
    }
    planes.push_back({{"type", "plane"},
                      {"title", "task " + std::to_string(j) + ": " + run.task_name(j) + (P > 2 ? " (coordinates 0 and 1 of " + std::to_string(P) + ")" : "") +
                                    (stride > 1 ? "; rollouts at " + solver + " (for speed; --exact-rollouts: the data step)" : "")},
                      {"x_label", "x0"}, {"y_label", "x1"}, {"range", {round_sig(xa), round_sig(xb), round_sig(ya), round_sig(yb)}},
                      {"layers", layers}, {"task", j}, {"solver", solver},
                      {"source", source + " (weights) and the data set; errors: " + (run_dir / "summary.json").filename().string()}});
  }
  json sections = json::array();
  json s1 = {{"title", "Learned skills: demonstrations, rollouts, vector field" + std::string(snode ? " and Lyapunov level sets" : "")},
             {"charts", planes}};
  json s2 = {{"title", "Stability of the rollouts (quick check of the report; `stablelearn lfd stability` for the full one)"},
             {"charts", json::array({table})}};
  if (!planes.empty()) sections.push_back(s1);
  sections.push_back(s2);
  return sections;
}

}  // namespace stablelearn::lfd
