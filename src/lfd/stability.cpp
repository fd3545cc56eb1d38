// `stablelearn lfd stability`: long rollouts of a learned skill from many starts (trainer.h
// check_stability; docs/lfd.md §2–3 and §7).
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "stablelearn/core/error.h"
#include "stablelearn/lfd/trainer.h"
#include "stablelearn/lfd/trajectory_metrics.h"
#include "stablelearn/models/odeint.h"
#include "stablelearn/models/snode_discrete.h"
#include "run_common.h"

namespace stablelearn::lfd {

namespace {

/// The demonstrations' first states, then uniform draws in a box 1.5x their extent (model coordinates).
torch::Tensor stability_starts(const LfdRun::TaskData& d, const StabilityOptions& o) {
  const auto M = d.x.size(0);
  const auto [centre, half] = detail::demo_box(d.x);
  std::vector<torch::Tensor> starts;
  for (std::int64_t m = 0; m < std::min(M, o.starts); ++m) starts.push_back(d.x[m][0]);
  auto gen = at::detail::createCPUGenerator(o.seed);
  const auto extra = o.starts - static_cast<std::int64_t>(starts.size());
  torch::Tensor x0 = torch::stack(starts);
  if (extra > 0) {
    const auto u = torch::rand({extra, d.x.size(2)}, gen, torch::kFloat64) * 2 - 1;
    x0 = torch::cat({x0, centre + u * half});
  }
  return x0;
}

/// How the rollout runs: the solver, its per-step rate (for t*) and its dtype.
struct StabilityPlan {
  std::string method;
  bool certified = false, discrete = false;
  double rate = 0;  ///< the decrease rate the solver guarantees per unit time (0: none)
};

StabilityPlan plan_stability(const LfdConfig& c, const StabilityOptions& o) {
  const bool autonomous_snode = c.target == "snode" && !c.explicit_time;
  StabilityPlan p;
  p.method = o.method != "auto" ? o.method : c.discrete_step ? "discrete" : autonomous_snode ? "certified" : "euler";
  p.certified = p.method == "certified";
  p.discrete = p.method == "discrete";
  if (p.certified || p.discrete)
    SL_CHECK(autonomous_snode, UsageError, "--method ", p.method, " needs an autonomous sNODE skill (target = snode, "
             "explicit_time = false): only there is V a Lyapunov function of the integrated system (this run: target = ",
             c.target, ", explicit_time = ", c.explicit_time ? "true" : "false", "); use euler, rk4 or dopri5");
  else
    models::parse_ode_method(p.method);
  // Certified Euler and Φ guarantee the rate κα per step (models/odeint.h, models/snode_discrete.h);
  // plain solvers follow the continuous-time rate α at best.
  if (p.discrete)
    p.rate = (c.discrete_step ? c.discrete_kappa : o.kappa) * c.alpha;
  else
    p.rate = p.certified ? o.kappa * c.alpha : c.alpha;
  return p;
}

}  // namespace

StabilityReport check_stability(const LfdRun& run, std::int64_t task, const StabilityOptions& o) {
  SL_CHECK(o.starts >= 1, UsageError, "--starts must be >= 1, got ", o.starts);
  SL_CHECK(o.horizon_factor >= 0, UsageError, "--horizon-factor must be >= 0 (0 = automatic), got ", o.horizon_factor);
  SL_CHECK(o.substeps >= 1, UsageError, "--substeps must be >= 1, got ", o.substeps);
  const auto& c = run.config();
  const bool autonomous_snode = c.target == "snode" && !c.explicit_time;
  const auto plan = plan_stability(c, o);
  torch::NoGradGuard no_grad;
  const auto d = run.task(task);
  const auto P = d.position_dim;
  const auto T = d.x.size(1);
  const auto x0 = stability_starts(d, o);
  // Goal in model coordinates: the origin for goal-centred sNODE, the demonstrations' mean end
  // point otherwise.
  const auto goal = c.target == "snode" ? torch::zeros({d.x.size(2)}, torch::kFloat64) : d.x.select(1, T - 1).mean(0);
  const auto raw_pos = d.raw.narrow(2, 0, P).reshape({-1, P});
  const double extent = (std::get<0>(raw_pos.max(0)) - std::get<0>(raw_pos.min(0))).max().item<double>();
  StabilityReport r;
  r.method = plan.method;
  r.tolerance = o.tolerance > 0 ? o.tolerance : 0.02 * extent;
  const double data_dt = (d.t[1] - d.t[0]).item<double>();
  const double T_seconds = data_dt * static_cast<double>(T);
  double horizon_factor = o.horizon_factor > 0 ? o.horizon_factor : 2.0;
  double ball = 0;  // ε tol_model²: V below it certifies half the tolerance
  if (autonomous_snode && c.eps > 0) {
    // ‖pos_raw‖ <= max(std) ‖x‖ and ε‖x‖² <= V(x(t)) <= V(x0) e^{−rate t}: half the tolerance (a
    // margin for the fixed-step solver) is certain once e^{−rate t} max V(x0) <= ε (tol / (2 max std))².
    const auto V = run.lyapunov(task, torch::kFloat64);
    r.max_initial_lyapunov = V(d.t[0].to(torch::kFloat64), x0).max().item<double>();
    const double tol_model = 0.5 * r.tolerance / d.std.narrow(0, 0, P).max().item<double>();
    ball = c.eps * tol_model * tol_model;
    r.bound_horizon_seconds = std::max(0.0, std::log(r.max_initial_lyapunov / ball) / plan.rate);
    if (o.horizon_factor <= 0) horizon_factor = std::max(2.0, r.bound_horizon_seconds / T_seconds);
  }
  const double dt = data_dt / static_cast<double>(o.substeps);
  const auto steps = static_cast<std::int64_t>(std::ceil(horizon_factor * static_cast<double>(T * o.substeps)));
  const auto grid = d.t[0] + torch::arange(steps, torch::kFloat64) * dt;
  // The certified solver decides acceptance on V, so it works in float64 (a float32 V cannot
  // resolve the per-step decrease e^{−κα s} for small s). Φ runs in the dtype it was trained and is
  // executed in (float32; its projection margin covers float32 rounding) unless --float64.
  const auto dtype = o.float64 || plan.certified ? torch::kFloat64 : torch::kFloat32;
  const auto field = run.field(task, dtype);
  // Only the final state is needed: integrate in chunks to bound memory.
  torch::Tensor state = x0.to(dtype);
  std::int64_t chunk = plan.certified || plan.discrete ? 101 : 1000, integrated = steps;
  const auto V64 = autonomous_snode ? run.lyapunov(task, torch::kFloat64) : LyapunovFunction();
  const auto zero_t = torch::zeros({}, torch::kFloat64);
  const auto lyap = [&](const torch::Tensor& x) { return V64(zero_t, x.to(torch::kFloat64)); };
  const auto copt = models::CertifiedEulerOptions{}.alpha(c.alpha).kappa(o.kappa);
  // Φ: the map a model.discrete_step skill was trained with, or Φ (κ = --kappa) applied to the
  // weights of a skill trained with Euler (hnet and sg runs: the others have no per-task weights).
  GridRollout discrete;
  if (plan.discrete && c.discrete_step) {
    discrete = run.rollout(task, dtype);
  } else if (plan.discrete) {
    const auto sn = detail::snode_options(c, d.x.size(2));
    std::vector<torch::Tensor> w;
    for (const auto& t : run.weights(task)) w.push_back(t.to(dtype));
    discrete.fn = [sn, w, kappa = o.kappa](const torch::Tensor& x, const torch::Tensor& t,
                                           models::functional::SNodeDiscreteStats* st) {
      return models::functional::snode_discrete_rollout(x, t, w, sn, kappa, {}, st);
    };
  }
  const auto solver = plan.certified || plan.discrete ? models::OdeintOptions{}
                                                      : models::OdeintOptions{}.method(models::parse_ode_method(plan.method));
  // One call of the plan's solver: x [N, d] over the grid g -> [N, len, d], counting into the stats
  // of the solver that runs. The long rollout below and the accuracy check share it.
  const auto integrate = [&](const torch::Tensor& x, const torch::Tensor& g, models::functional::SNodeDiscreteStats* ds,
                             models::CertifiedEulerStats* cs) {
    if (plan.certified) return models::certified_euler(field, lyap, x, g.to(torch::kFloat64), copt, cs);
    if (plan.discrete) return discrete(x, g, ds);
    return models::odeint(field, x, g, solver);
  };
  // Accuracy as executed: the training's evaluation of the demonstrations' starts with this solver
  // (float32 states as evaluated), counting the pulled steps of those rollouts.
  {
    models::functional::SNodeDiscreteStats demo_st;
    models::CertifiedEulerStats demo_cst;
    const GridRollout executed{[&](const torch::Tensor& x, const torch::Tensor& t, models::functional::SNodeDiscreteStats*) {
      return integrate(x.to(dtype), t, &demo_st, &demo_cst).to(x.scalar_type());
    }};
    r.demo_errors = run.evaluate(task, executed);
    r.demo_steps = plan.discrete ? demo_st.steps : demo_cst.substeps;
    r.demo_projected_steps = plan.discrete ? demo_st.projected : demo_cst.projections;
    r.demo_projected_fraction =
        r.demo_steps > 0 ? static_cast<double>(r.demo_projected_steps) / static_cast<double>(r.demo_steps) : 0;
  }
  r.arrival_seconds.assign(static_cast<std::size_t>(x0.size(0)), -1.0);
  // First arrival within the tolerance, from a chunk's trajectory [N, len, d] starting at step k.
  const auto track_arrival = [&](const torch::Tensor& traj, std::int64_t k) {
    const auto dist = ((traj.to(torch::kFloat64) - goal).narrow(2, 0, P) * d.std).norm(2, 2);  // [N, len]
    const auto within = (dist <= r.tolerance).to(torch::kInt32);
    const auto any = within.amax(1).contiguous(), first = within.argmax(1).contiguous();
    const auto* any_p = any.data_ptr<std::int32_t>();
    const auto* first_p = first.data_ptr<std::int64_t>();
    for (std::int64_t i = 0; i < traj.size(0); ++i) {
      auto& a = r.arrival_seconds[static_cast<std::size_t>(i)];
      if (a < 0 && any_p[i] != 0) a = static_cast<double>(k + first_p[i]) * dt;
    }
  };
  for (std::int64_t k = 0; k + 1 < steps; k += chunk - 1) {
    const auto len = std::min(chunk, steps - k);
    const auto g = grid.narrow(0, k, len);  // float64: the step sizes are formed in double from it
    models::CertifiedEulerStats cst;
    models::functional::SNodeDiscreteStats dst;
    if (ball > 0) dst.ball = ball;
    const auto traj = integrate(state, g, &dst, &cst);
    std::int64_t uncertified = 0;
    if (plan.certified) {
      r.substeps += cst.substeps;
      r.rejected_substeps += cst.rejections;
      r.projected_substeps += cst.projections;
      uncertified = cst.uncertified;
    } else if (plan.discrete) {
      r.substeps += dst.steps;
      r.projected_substeps += dst.projected;
      r.outside_ball_substeps += dst.steps_outside;
      r.projected_outside_ball += dst.projected_outside;
      uncertified = dst.nonfinite;
    }
    state = traj.select(1, len - 1);
    track_arrival(traj, k);
    r.uncertified_substeps += uncertified;
    // Every certified step (and every step of Φ) keeps V from rising, so once every start has
    // V <= ε tol_model² it stays within half the tolerance for ever: with the automatic horizon,
    // stop there.
    if ((plan.certified || plan.discrete) && o.horizon_factor <= 0 && r.uncertified_substeps == 0 &&
        (lyap(state) <= ball).all().item<bool>()) {
      integrated = k + len;
      r.certified_ball_seconds = static_cast<double>(integrated - 1) * dt;
      break;
    }
  }
  r.steps = integrated / o.substeps;
  r.horizon_seconds = static_cast<double>(integrated - 1) * dt;
  const auto final_pos = (state.to(torch::kFloat64) - goal).narrow(1, 0, P) * d.std;
  const auto dist = final_pos.norm(2, 1);
  r.starts = x0.size(0);
  r.final_distances.assign(dist.data_ptr<double>(), dist.data_ptr<double>() + dist.numel());
  std::int64_t ok = 0;
  for (double v : r.final_distances) ok += std::isfinite(v) && v <= r.tolerance;
  r.converged_fraction = static_cast<double>(ok) / static_cast<double>(r.starts);
  r.demo_duration_seconds = data_dt * static_cast<double>(T - 1);
  {
    std::vector<double> demo_arrivals;
    for (std::int64_t m = 0; m < std::min(d.x.size(0), r.starts); ++m) {
      const double a = r.arrival_seconds[static_cast<std::size_t>(m)];
      demo_arrivals.push_back(a < 0 ? std::numeric_limits<double>::infinity() : a);
    }
    const double med = summarize(demo_arrivals).median;
    r.demo_arrival_median = std::isfinite(med) ? med : -1;
  }
  const auto s = summarize(r.final_distances);
  r.median_final_distance = s.median;
  r.max_final_distance = *std::max_element(r.final_distances.begin(), r.final_distances.end());
  r.projected_fraction = r.substeps > 0 ? static_cast<double>(r.projected_substeps) / static_cast<double>(r.substeps) : 0;
  r.projected_fraction_outside_ball = r.outside_ball_substeps > 0 ? static_cast<double>(r.projected_outside_ball) /
                                                                        static_cast<double>(r.outside_ball_substeps)
                                                                  : 0;
  return r;
}

nlohmann::json stability_json(const LfdRun& run, std::int64_t task, const StabilityReport& r, const StabilityOptions& o) {
  nlohmann::json out{{"task", task},
                     {"task_name", run.task_name(task)},
                     {"target", run.config().target},
                     {"method", r.method},
                     {"starts", r.starts},
                     {"steps", r.steps},
                     {"horizon_seconds", r.horizon_seconds},
                     {"tolerance", r.tolerance},
                     {"converged_fraction", r.converged_fraction},
                     {"median_final_distance", r.median_final_distance},
                     {"max_final_distance", r.max_final_distance},
                     {"final_distances", r.final_distances}};
  out["arrival_seconds"] = r.arrival_seconds;
  out["demo_arrival_median_seconds"] = r.demo_arrival_median;
  out["demo_duration_seconds"] = r.demo_duration_seconds;
  out["demo_dtw_median"] = r.demo_errors.dtw.median;
  out["demo_dtw"] = r.demo_errors.dtw.per_demo;
  out["demo_frechet_median"] = r.demo_errors.frechet.median;
  if (r.demo_errors.has_quat) out["demo_quat_median"] = r.demo_errors.quat.median;
  if (r.method == "certified" || r.method == "discrete") {
    out["demo_steps"] = r.demo_steps;
    out["demo_projected_steps"] = r.demo_projected_steps;
    out["demo_projected_fraction"] = r.demo_projected_fraction;
  }
  if (r.bound_horizon_seconds > 0) {
    out["max_initial_lyapunov"] = r.max_initial_lyapunov;
    out["bound_horizon_seconds"] = r.bound_horizon_seconds;
  }
  if (r.method == "certified") {
    out["kappa"] = o.kappa;
    out["substeps"] = r.substeps;
    out["rejected_substeps"] = r.rejected_substeps;
    out["projected_substeps"] = r.projected_substeps;
    out["certified_ball_seconds"] = r.certified_ball_seconds;
    out["uncertified_substeps"] = r.uncertified_substeps;
  } else if (r.method == "discrete") {
    const auto& c = run.config();
    out["kappa"] = c.discrete_step ? c.discrete_kappa : o.kappa;
    out["steps_applied"] = r.substeps;
    out["projected_steps"] = r.projected_substeps;
    out["projected_fraction"] = r.projected_fraction;
    out["steps_outside_ball"] = r.outside_ball_substeps;
    out["projected_steps_outside_ball"] = r.projected_outside_ball;
    out["projected_fraction_outside_ball"] = r.projected_fraction_outside_ball;
    out["certified_ball_seconds"] = r.certified_ball_seconds;
    out["nonfinite_steps"] = r.uncertified_substeps;
  }
  return out;
}

}  // namespace stablelearn::lfd
