#include "stablelearn/lfd/report_sections.h"

#include <algorithm>
#include <cmath>
#include <atomic>
#include <exception>
#include <set>
#include <thread>
#include <vector>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>

#include "stablelearn/core/error.h"
#include "stablelearn/core/fs.h"
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

PlotPlane principal_plane(const torch::Tensor& points, const torch::Tensor& origin) {
  SL_CHECK(points.dim() == 2 && points.size(0) >= 1 && points.size(1) >= 2, UsageError,
           "principal_plane: points must be [N, P] with P >= 2, got ", points.sizes());
  SL_CHECK(origin.dim() == 1 && origin.size(0) == points.size(1), UsageError, "principal_plane: origin must have ", points.size(1),
           " entries, got ", origin.sizes());
  const auto P = points.size(1);
  PlotPlane plane;
  if (P == 2) {
    plane.origin = {0.0, 0.0};
    plane.basis = {1.0, 0.0, 0.0, 1.0};
    plane.explained = 1.0;
    return plane;
  }
  const auto X = points.to(torch::kFloat64);
  const auto centred = X - X.mean(0, true);
  const auto cov = centred.t().mm(centred) / static_cast<double>(std::max<std::int64_t>(1, X.size(0) - 1));
  const auto [evals, evecs] = torch::linalg_eigh(cov);  // ascending
  auto basis = torch::stack({evecs.select(1, P - 1), evecs.select(1, P - 2)}, 1).contiguous();  // [P, 2]
  // Fixed signs (an eigenvector's sign is arbitrary): the largest-magnitude entry of each column positive.
  for (std::int64_t c = 0; c < 2; ++c) {
    auto col = basis.select(1, c);
    const auto k = col.abs().argmax().item<std::int64_t>();
    if (col[k].item<double>() < 0) col.mul_(-1);
  }
  plane.origin = to_vec(origin);
  plane.basis = to_vec(basis);
  const double total = evals.clamp_min(0).sum().item<double>();
  plane.explained = total > 0 ? (evals[P - 1].clamp_min(0) + evals[P - 2].clamp_min(0)).item<double>() / total : 0.0;
  return plane;
}

json skill_report_sections(const LfdRun& run, const std::filesystem::path& run_dir, const report::ReportOptions& ro,
                           const SkillViewOptions& o) {
  torch::NoGradGuard no_grad;
  const auto& cfg = run.config();
  const bool snode = cfg.target == "snode";
  json planes = json::array();
  json table = {{"type", "table"},
                {"title", "the page's own rollouts (those drawn above; horizon " + report::format_number(o.horizon_factor) +
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

  // One task's row of the table and its chart (null for fewer than two position coordinates). Tasks
  // are independent (their own generators, read-only access to the run), so they are computed by
  // `workers` threads, each with one intra-op thread, and merged in task order: the same page.
  struct TaskView {
    json row, chart;
  };
  const auto view = [&](std::int64_t j) -> TaskView {
    TaskView out;
    const auto d = run.task(j);
    const auto P = d.position_dim;
    const auto S = d.x.size(2);
    const auto M = d.x.size(0), T = d.x.size(1);
    // Demonstration positions in raw units and their extent.
    const auto raw = d.raw.narrow(2, 0, P).contiguous().to(torch::kFloat64);
    const auto lo = std::get<0>(raw.reshape({-1, P}).min(0)), hi = std::get<0>(raw.reshape({-1, P}).max(0));
    const auto lov = to_vec(lo), hiv = to_vec(hi);
    double extent = 0;
    for (std::int64_t k = 0; k < P; ++k) extent = std::max(extent, hiv[static_cast<std::size_t>(k)] - lov[static_cast<std::size_t>(k)]);
    const double tol = 0.02 * extent;
    const auto goal_raw = ((d.goal.mean(0)) * d.std + d.mean).to(torch::kFloat64);

    // The plane drawn: the data's own two coordinates (2D), else the demonstrations' top-2 principal
    // plane through the goal. Plane coordinates of a raw position p: basisᵀ (p − origin).
    PlotPlane plane;
    torch::Tensor origin_t, basis_t;  // [P], [P, 2]
    if (P >= 2) {
      plane = principal_plane(raw.reshape({-1, P}), goal_raw);
      origin_t = torch::tensor(plane.origin, torch::kFloat64);
      basis_t = torch::tensor(plane.basis, torch::kFloat64).reshape({P, 2});
    }
    const auto to_plane = [&](const torch::Tensor& pos) {  // [..., P] raw -> [..., 2]
      return (pos.to(torch::kFloat64) - origin_t).matmul(basis_t);
    };
    // Plotted area (plane coordinates): the demonstrations' box padded by 15 % per side.
    double xa = 0, xb = 1, ya = 0, yb = 1;
    torch::Tensor demo_plane;
    if (P >= 2) {
      demo_plane = to_plane(raw).contiguous();  // [M, T, 2]
      const auto flat = demo_plane.reshape({-1, 2});
      const auto pl = to_vec(std::get<0>(flat.min(0))), ph = to_vec(std::get<0>(flat.max(0)));
      const double p0 = 0.15 * (ph[0] - pl[0]) + 1e-9, p1 = 0.15 * (ph[1] - pl[1]) + 1e-9;
      xa = pl[0] - p0; xb = ph[0] + p0; ya = pl[1] - p1; yb = ph[1] + p1;
    }
    // Model state of the plane point (a, b): positions o + a u1 + b u2 in model coordinates, the other
    // state coordinates (velocities of second-order skills) at 0.
    const auto model_scale = (1.0 / d.std.to(torch::kFloat64));
    const auto model_shift = ((-d.mean.to(torch::kFloat64)) / d.std.to(torch::kFloat64) - d.goal.mean(0).to(torch::kFloat64));
    const auto embed = [&](const torch::Tensor& ab) {  // [N, 2] plane -> [N, S] model (float32)
      auto x = torch::zeros({ab.size(0), S}, torch::kFloat64);
      const auto rawp = origin_t + ab.to(torch::kFloat64).matmul(basis_t.t());  // [N, P]
      x.narrow(1, 0, P).copy_(rawp * model_scale + model_shift);
      return x.to(torch::kFloat32);
    };

    // Starts: the demonstrations' first states, then random states in the plotted area of the plane.
    const auto demo_x0 = d.x.select(1, 0).to(torch::kFloat32);
    auto gen = at::make_generator<at::CPUGeneratorImpl>(o.seed + static_cast<std::uint64_t>(j));
    torch::Tensor rand_x0 = torch::zeros({o.random_starts, S}, torch::kFloat32);
    if (P >= 2 && o.random_starts > 0) {
      const auto u = torch::rand({o.random_starts, 2}, gen, torch::kFloat64);
      const auto ab = torch::stack({xa + (xb - xa) * u.select(1, 0), ya + (yb - ya) * u.select(1, 1)}, 1);
      rand_x0 = embed(ab);
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
    const auto final_dist = (pos.select(1, H - 1) - goal_raw).norm(2, 1);
    const auto fd = to_vec(final_dist);
    std::int64_t within = 0;
    for (double v : fd) within += (std::isfinite(v) && v <= tol) ? 1 : 0;
    out.row = {j, run.task_name(j), solver, B, std::to_string(within) + "/" + std::to_string(B), report::round_sig(tol, 4),
               report::round_sig(quantile(fd, 0.5), 4), report::round_sig(*std::max_element(fd.begin(), fd.end()), 4),
               stats.steps > 0 ? json(report::format_number(100.0 * stats.projected_fraction()) + " %") : json("n/a")};
    if (P < 2) return out;

    json layers = json::array();
    const auto posv = to_vec(to_plane(pos).contiguous());  // [B, H, 2]
    const auto rawv = to_vec(demo_plane);                  // [M, T, 2]
    // Vector field streamlines and V level sets on the plane (embedded in the state space).
    const double tm = tv[tv.size() / 2];
    const auto tmid = torch::tensor(static_cast<float>(tm));
    {
      const auto field = run.field(j);
      const std::int64_t n = o.seeds;
      auto ab = torch::zeros({n * n, 2}, torch::kFloat64);
      for (std::int64_t a = 0; a < n; ++a)
        for (std::int64_t b = 0; b < n; ++b) {
          ab[a * n + b][0] = xa + (xb - xa) * (a + 0.5) / n;
          ab[a * n + b][1] = ya + (yb - ya) * (b + 0.5) / n;
        }
      // Each step moves 0.6 of a seed cell along the field's direction as drawn: the field's raw
      // position velocity projected onto the plane, scaled by the cell size of each axis.
      const double cx = (xb - xa) / n, cy = (yb - ya) / n;
      const auto cell = torch::tensor({cx, cy}, torch::kFloat64);
      const auto raw_rate = d.std.to(torch::kFloat64);
      std::vector<torch::Tensor> path{ab.clone()};
      for (std::int64_t s = 0; s < o.stream_steps; ++s) {
        const auto v = field(tmid, embed(ab)).narrow(1, 0, P).to(torch::kFloat64) * raw_rate;  // raw units
        const auto vp = v.matmul(basis_t) / cell;                                          // display units
        ab = ab + vp / vp.norm(2, 1, true).clamp_min(1e-12) * (0.6 * cell);
        path.push_back(ab.clone());
      }
      const auto rp = to_vec(torch::stack(path, 1).contiguous());  // [n*n, steps+1, 2]
      json xy = json::array();
      const auto L = static_cast<std::int64_t>(path.size());
      for (std::int64_t k = 0; k < n * n; ++k) append_polyline(xy, &rp[static_cast<std::size_t>(k * L * 2)], &rp[static_cast<std::size_t>(k * L * 2 + 1)], L, 2, 1000);
      layers.push_back({{"name", P == 2 && S == 2 ? "learned field (streamlines)" : "learned field on the plane (streamlines)"},
                        {"kind", "stream"}, {"xy", xy}});
    }
    if (snode) {
      const auto V = run.lyapunov(j);
      const std::int64_t g = o.grid;
      std::vector<double> xs(static_cast<std::size_t>(g)), ys(static_cast<std::size_t>(g));
      for (std::int64_t a = 0; a < g; ++a) {
        xs[static_cast<std::size_t>(a)] = xa + (xb - xa) * a / (g - 1);
        ys[static_cast<std::size_t>(a)] = ya + (yb - ya) * a / (g - 1);
      }
      auto ab = torch::zeros({g * g, 2}, torch::kFloat64);
      for (std::int64_t iy = 0; iy < g; ++iy)
        for (std::int64_t ix = 0; ix < g; ++ix) {
          ab[iy * g + ix][0] = xs[static_cast<std::size_t>(ix)];
          ab[iy * g + ix][1] = ys[static_cast<std::size_t>(iy)];
        }
      auto vv = to_vec(V(tmid, embed(ab)));
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
        append_polyline(xy, &rawv[static_cast<std::size_t>(m * T * 2)], &rawv[static_cast<std::size_t>(m * T * 2 + 1)], T, 2, o.max_points);
      layers.push_back({{"name", "demonstrations"}, {"kind", "demo"}, {"xy", xy}});
    }
    {
      json xy = json::array(), xr = json::array();
      for (std::int64_t b = 0; b < B; ++b)
        append_polyline(b < M ? xy : xr, &posv[static_cast<std::size_t>(b * H * 2)], &posv[static_cast<std::size_t>(b * H * 2 + 1)], H, 2, o.max_points);
      layers.push_back({{"name", "rollouts from the demonstrations' starts"}, {"kind", "rollout"}, {"xy", xy}});
      if (B > M) layers.push_back({{"name", "rollouts from random starts"}, {"kind", "random"}, {"xy", xr}});
      json starts = json::array(), goal = json::array();
      for (std::int64_t b = M; b < B; ++b) {
        starts.push_back(round_sig(posv[static_cast<std::size_t>(b * H * 2)]));
        starts.push_back(round_sig(posv[static_cast<std::size_t>(b * H * 2 + 1)]));
      }
      const auto gp = to_vec(to_plane(goal_raw));
      goal.push_back(round_sig(gp[0]));
      goal.push_back(round_sig(gp[1]));
      if (!starts.empty()) layers.push_back({{"name", "random starts"}, {"kind", "points"}, {"xy", starts}, {"color", "#ff7f0e"}, {"size", 6}});
      layers.push_back({{"name", "goal"}, {"kind", "points"}, {"xy", goal}, {"color", "#d62728"}, {"size", 11}});
    }
    json chart = {{"type", "plane"},
                  {"title", "task " + std::to_string(j) + ": " + run.task_name(j) +
                                (P > 2 ? " (" + std::to_string(P) + "D: the demonstrations' principal plane through the goal, " +
                                             report::format_number(100.0 * plane.explained) + " % of their variance)"
                                       : "") +
                                (stride > 1 ? "; rollouts at " + solver + " (for speed; --exact-rollouts: the data step)" : "")},
                  {"x_label", P > 2 ? "PC1" : "x0"}, {"y_label", P > 2 ? "PC2" : "x1"},
                  {"range", {round_sig(xa), round_sig(xb), round_sig(ya), round_sig(yb)}},
                  {"layers", layers}, {"task", j}, {"solver", solver},
                  {"source", source + " (weights) and the data set; errors: " + (run_dir / "summary.json").filename().string()}};
    if (P > 2) {
      chart["plane"] = {{"origin", plane.origin}, {"basis", to_vec(basis_t.t().contiguous())}, {"explained", plane.explained}};
      for (auto& v : chart["plane"]["origin"]) v = round_sig(v.get<double>(), 8);
      for (auto& v : chart["plane"]["basis"]) v = round_sig(v.get<double>(), 8);
    }
    out.chart = std::move(chart);
    return out;
  };
  const auto n_tasks = run.completed_tasks();
  std::vector<TaskView> views(static_cast<std::size_t>(n_tasks));
  std::vector<std::exception_ptr> errors(views.size());
  const int intra = at::get_num_threads();
  const auto workers = static_cast<std::int64_t>(
      std::min<std::size_t>(views.size(), o.workers > 0 ? static_cast<std::size_t>(o.workers)
                                                         : std::max(1u, std::thread::hardware_concurrency())));
  std::atomic<std::int64_t> next{0};
  const auto work = [&] {
    torch::NoGradGuard guard;  // grad mode is per thread
    at::set_num_threads(intra);
    for (std::int64_t j; (j = next++) < n_tasks;) {
      try {
        views[static_cast<std::size_t>(j)] = view(j);
      } catch (...) {
        errors[static_cast<std::size_t>(j)] = std::current_exception();
      }
    }
  };
  if (workers <= 1) {
    work();
  } else {
    std::vector<std::thread> pool;
    for (std::int64_t w = 0; w < workers; ++w) pool.emplace_back(work);
    for (auto& t : pool) t.join();
  }
  for (const auto& e : errors)
    if (e) std::rethrow_exception(e);  // the first failing task's error
  for (auto& v : views) {
    table["rows"].push_back(std::move(v.row));
    if (!v.chart.is_null()) planes.push_back(std::move(v.chart));
  }
  json sections = json::array();
  json s1 = {{"title", "Learned skills: demonstrations, rollouts, vector field" + std::string(snode ? " and Lyapunov level sets" : "")},
             {"charts", planes}};
  json s2 = {{"title", "Where the page's rollouts end (drawn above; the full check is the stability section below)"},
             {"charts", json::array({table})}};
  if (!planes.empty()) sections.push_back(s1);
  sections.push_back(s2);
  return sections;
}

json stability_report_section(const LfdRun& run, const std::filesystem::path& run_dir, const report::ReportOptions& ro,
                              const SkillViewOptions& o) {
  std::vector<report::StabilityResult> results;
  std::vector<std::int64_t> missing;
  const auto n = run.completed_tasks();
  for (std::int64_t j = 0; j < n; ++j) {
    const auto files = report::saved_stability_files(run_dir, j);
    if (files.empty()) missing.push_back(j);
    for (const auto& f : files) {
      json r;
      try {
        r = json::parse(read_file_text(f));
      } catch (const json::exception& e) {
        SL_THROW(DataError, f.string(), ": not valid JSON (", e.what(), "); a saved `lfd stability` output was expected");
      }
      SL_CHECK(r.is_object() && r.contains("final_distances") && r.contains("tolerance"), DataError, f.string(),
               ": not the output of `stablelearn lfd stability` (no final_distances / tolerance)");
      SL_CHECK(!r.contains("task") || r["task"].get<std::int64_t>() == j, DataError, f.string(), ": holds task ", r["task"].dump(),
               ", expected task ", j, " from its name");
      std::error_code ec;
      const auto rel = ro.page_dir.empty() ? f : std::filesystem::relative(std::filesystem::absolute(f), std::filesystem::absolute(ro.page_dir), ec);
      results.push_back({j, std::move(r), ec || rel.empty() ? f.string() : rel.generic_string()});
    }
  }
  // Tasks without a saved result: the command's own computation with fewer starts and a fixed
  // horizon, for as many of them (evenly spread) as the budget of solver steps allows.
  std::vector<std::int64_t> computed, skipped;
  if (!missing.empty()) {
    std::int64_t per_task = 0;
    {
      const auto d = run.task(missing.front());
      per_task = static_cast<std::int64_t>(std::ceil(o.stability_horizon_factor * static_cast<double>(d.x.size(1))));
    }
    const std::int64_t fit = o.stability_budget <= 0 ? 0
                                                     : std::min<std::int64_t>(static_cast<std::int64_t>(missing.size()), o.stability_budget / std::max<std::int64_t>(1, per_task));
    std::set<std::size_t> pick;
    if (fit > 0) {
      if (fit == 1) pick.insert(0);
      else
        for (std::int64_t k = 0; k < fit; ++k)
          pick.insert(static_cast<std::size_t>(std::llround(static_cast<double>(k) * static_cast<double>(missing.size() - 1) / static_cast<double>(fit - 1))));
    }
    for (std::size_t i = 0; i < missing.size(); ++i) (pick.count(i) ? computed : skipped).push_back(missing[i]);
    for (const auto j : computed) {
      StabilityOptions so;
      so.starts = run.task(j).x.size(0) + o.stability_random_starts;
      so.horizon_factor = o.stability_horizon_factor;
      const auto r = check_stability(run, j, so);
      results.push_back({j, stability_json(run, j, r, so),
                         "computed by the report (" + std::to_string(so.starts) + " starts, horizon " + report::format_number(so.horizon_factor) + " T)"});
    }
  }
  std::sort(results.begin(), results.end(), [](const auto& a, const auto& b) { return a.task < b.task; });
  std::string note;
  const auto list = [](const std::vector<std::int64_t>& v) {
    std::string s;
    for (std::size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
    return s;
  };
  const auto saved = n - static_cast<std::int64_t>(missing.size());
  if (saved > 0) note += std::to_string(saved) + " task(s) from saved `stablelearn lfd stability` outputs (stability_J.json, stability_taskJ.json, stability_euler_taskJ.json in the run folder). ";
  if (!computed.empty())
    note += "Computed by the report with `lfd stability`'s own code (lfd::check_stability) but fewer starts (the demonstrations' and " +
            std::to_string(o.stability_random_starts) + " random, instead of 50) and a fixed horizon of " +
            report::format_number(o.stability_horizon_factor) + " T (instead of the automatic one): task(s) " + list(computed) + ". ";
  if (!skipped.empty())
    note += "Not computed (the report's budget of " + std::to_string(o.stability_budget) + " solver steps, --stability-budget; each task takes " +
            report::format_number(o.stability_horizon_factor) + " T): task(s) " + list(skipped) +
            "; save the full check with `stablelearn lfd stability RUN --task J > RUN/stability_J.json` and the report reads it.";
  if (results.empty()) return json();
  return report::stability_section(results, note, ro);
}

}  // namespace stablelearn::lfd
