#include "stablelearn/models/odeint.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <vector>

#include "stablelearn/core/error.h"

namespace stablelearn::models {

const char* ode_method_name(OdeMethod method) {
  switch (method) {
    case OdeMethod::Euler: return "euler";
    case OdeMethod::Rk4: return "rk4";
    case OdeMethod::Dopri5: return "dopri5";
  }
  return "?";
}

OdeMethod parse_ode_method(const std::string& name) {
  std::string s = name;
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  for (auto m : {OdeMethod::Euler, OdeMethod::Rk4, OdeMethod::Dopri5})
    if (s == ode_method_name(m)) return m;
  SL_THROW(ConfigError, "unknown ODE method '", name, "' (known: euler, rk4, dopri5)");
}

namespace {

/// Dormand–Prince 5(4) tableau as torchdiffeq's _DORMAND_PRINCE_SHAMPINE_TABLEAU.
constexpr std::array<double, 6> kAlpha{1.0 / 5, 3.0 / 10, 4.0 / 5, 8.0 / 9, 1.0, 1.0};
const std::array<std::vector<double>, 6> kBeta{{
    {1.0 / 5},
    {3.0 / 40, 9.0 / 40},
    {44.0 / 45, -56.0 / 15, 32.0 / 9},
    {19372.0 / 6561, -25360.0 / 2187, 64448.0 / 6561, -212.0 / 729},
    {9017.0 / 3168, -355.0 / 33, 46732.0 / 5247, 49.0 / 176, -5103.0 / 18656},
    {35.0 / 384, 0, 500.0 / 1113, 125.0 / 192, -2187.0 / 6784, 11.0 / 84},
}};
// c_sol = last row of beta (+ 0 for the FSAL stage): y1 is the argument of the 7th stage.
constexpr std::array<double, 7> kCError{35.0 / 384 - 1951.0 / 21600,
                                        0.0,
                                        500.0 / 1113 - 22642.0 / 50085,
                                        125.0 / 192 - 451.0 / 720,
                                        -2187.0 / 6784 - -12231.0 / 42400,
                                        11.0 / 84 - 649.0 / 6300,
                                        -1.0 / 60};
// Coefficients of the mid-point y(t0 + h/2) (Shampine 1986), as torchdiffeq's DPS_C_MID.
constexpr std::array<double, 7> kCMid{6025192743.0 / 30085553152 / 2,
                                      0.0,
                                      51252292925.0 / 65400821598 / 2,
                                      -2691868925.0 / 45128329728 / 2,
                                      187940372067.0 / 1594534317056 / 2,
                                      -1776094331.0 / 19743644256 / 2,
                                      11237099.0 / 235043384 / 2};

torch::Tensor scalar_like(double v, const torch::Tensor& like) {
  return torch::scalar_tensor(v, like.options().requires_grad(false));
}

torch::Tensor call(const OdeFunc& f, double t, const torch::Tensor& y, OdeintStats* stats) {
  if (stats) ++stats->function_evaluations;
  auto dy = f(scalar_like(t, y), y);
  SL_CHECK(dy.sizes() == y.sizes(), ShapeError, "odeint: f returned shape ", dy.sizes(),
           " for a state of shape ", y.sizes());
  return dy;
}

/// RMS norm over all elements (torchdiffeq _rms_norm), as a double.
double rms(const torch::Tensor& x) {
  return std::sqrt(x.detach().to(torch::kFloat64).pow(2).mean().item<double>());
}

std::vector<torch::Tensor> fixed_grid(const OdeFunc& f, const torch::Tensor& y0,
                                      const std::vector<double>& t, OdeMethod method,
                                      OdeintStats* stats) {
  std::vector<torch::Tensor> ys{y0};
  ys.reserve(t.size());
  torch::Tensor y = y0;
  for (std::size_t k = 0; k + 1 < t.size(); ++k) {
    const double t0 = t[k], h = t[k + 1] - t[k];
    if (method == OdeMethod::Euler) {
      y = y + h * call(f, t0, y, stats);
    } else {  // Kutta's 3/8 rule (torchdiffeq rk4_alt_step_func)
      auto k1 = call(f, t0, y, stats);
      auto k2 = call(f, t0 + h / 3.0, y + (h / 3.0) * k1, stats);
      auto k3 = call(f, t0 + 2.0 * h / 3.0, y + h * (k2 - k1 / 3.0), stats);
      auto k4 = call(f, t0 + h, y + h * (k1 - k2 + k3), stats);
      y = y + (h * 0.125) * (k1 + 3.0 * (k2 + k3) + k4);
    }
    ys.push_back(y);
  }
  return ys;
}

/// Hairer, Nørsett & Wanner I, Sec. II.4 (torchdiffeq _select_initial_step), on detached values.
double initial_step(const OdeFunc& f, double t0, const torch::Tensor& y0, const torch::Tensor& f0,
                    int order, double rtol, double atol, OdeintStats* stats) {
  torch::NoGradGuard no_grad;
  auto y = y0.detach();
  auto scale = atol + y.abs() * rtol;
  const double d0 = rms(y / scale), d1 = rms(f0.detach() / scale);
  const double h0 = (d0 < 1e-5 || d1 < 1e-5) ? 1e-6 : 0.01 * d0 / d1;
  auto f1 = call(f, t0 + h0, y + h0 * f0.detach(), stats);
  const double d2 = rms((f1 - f0.detach()) / scale) / h0;
  double h1;
  if (d1 <= 1e-15 && d2 <= 1e-15)
    h1 = std::max(1e-6, h0 * 1e-3);
  else
    h1 = std::pow(0.01 / std::max(d1, d2), 1.0 / (order + 1));
  return std::min(100 * h0, h1);
}

std::vector<torch::Tensor> dopri5(const OdeFunc& f, const torch::Tensor& y0,
                                  const std::vector<double>& t, const OdeintOptions& o,
                                  OdeintStats* stats) {
  SL_CHECK(o.rtol() > 0 && o.atol() >= 0, ConfigError, "odeint: dopri5 needs rtol > 0 and atol >= 0, got ",
           o.rtol(), ", ", o.atol());
  std::vector<torch::Tensor> ys{y0};
  ys.reserve(t.size());
  if (t.size() == 1) return ys;

  double t0 = t[0];
  torch::Tensor y = y0;
  torch::Tensor f0 = call(f, t0, y, stats);
  double h = o.first_step() > 0 ? o.first_step()
                                : initial_step(f, t0, y, f0, 4, o.rtol(), o.atol(), stats);
  // Interpolant of the last accepted step [t_prev, t0]: p(x) = Σ c_i x^i, x = (t − t_prev)/(t0 − t_prev).
  std::vector<torch::Tensor> coeff;
  double t_prev = t0;
  std::int64_t attempts = 0;

  for (std::size_t out = 1; out < t.size(); ++out) {
    const double target = t[out];
    while (target > t0) {
      SL_CHECK(++attempts <= o.max_steps(), DataError, "odeint: dopri5 exceeded max_steps = ",
               o.max_steps(), " at t = ", t0);
      SL_CHECK(t0 + h > t0, DataError, "odeint: dopri5 step size underflow (h = ", h, ") at t = ", t0);
      // Runge–Kutta stages (k[0] = f0 by FSAL).
      std::vector<torch::Tensor> k{f0};
      torch::Tensor yi;
      for (std::size_t s = 0; s < kAlpha.size(); ++s) {
        torch::Tensor acc;
        for (std::size_t j = 0; j < kBeta[s].size(); ++j) {
          if (kBeta[s][j] == 0.0) continue;
          auto term = (h * kBeta[s][j]) * k[j];
          acc = acc.defined() ? acc + term : term;
        }
        yi = y + acc;
        k.push_back(call(f, t0 + kAlpha[s] * h, yi, stats));
      }
      const torch::Tensor& y1 = yi;  // c_sol == beta[-1], c_sol[-1] == 0
      torch::Tensor err;
      for (std::size_t j = 0; j < kCError.size(); ++j) {
        if (kCError[j] == 0.0) continue;
        auto term = (h * kCError[j]) * k[j].detach();
        err = err.defined() ? err + term : term;
      }
      double ratio;
      {
        torch::NoGradGuard no_grad;
        auto tol = o.atol() + o.rtol() * torch::max(y.detach().abs(), y1.detach().abs());
        ratio = rms(err / tol);
      }
      SL_CHECK(std::isfinite(ratio), DataError, "odeint: dopri5 produced a non-finite state at t = ", t0);
      const bool accept = ratio <= 1.0;
      // Next step size (torchdiffeq _optimal_step_size, order 5, no gradient).
      double h_next;
      if (ratio == 0.0) {
        h_next = h * o.ifactor();
      } else {
        const double dfactor = ratio < 1.0 ? 1.0 : o.dfactor();
        h_next = h * std::min(o.ifactor(), std::max(o.safety() / std::pow(ratio, 0.2), dfactor));
      }
      if (accept) {
        if (stats) ++stats->accepted_steps;
        torch::Tensor mid_acc;
        for (std::size_t j = 0; j < kCMid.size(); ++j) {
          if (kCMid[j] == 0.0) continue;
          auto term = (h * kCMid[j]) * k[j];
          mid_acc = mid_acc.defined() ? mid_acc + term : term;
        }
        auto y_mid = y + mid_acc;
        const auto& f1 = k.back();
        // torchdiffeq _interp_fit: quartic through y0, y_mid, y1 with slopes f0, f1.
        auto a = (2.0 * h) * (f1 - f0) - 8.0 * (y1 + y) + 16.0 * y_mid;
        auto b = h * (5.0 * f0 - 3.0 * f1) + 18.0 * y + 14.0 * y1 - 32.0 * y_mid;
        auto c = h * (f1 - 4.0 * f0) - 11.0 * y - 5.0 * y1 + 16.0 * y_mid;
        auto d = h * f0;
        coeff = {y, d, c, b, a};
        t_prev = t0;
        t0 = t0 + h;
        y = y1;
        f0 = f1;
      } else if (stats) {
        ++stats->rejected_steps;
      }
      h = h_next;
    }
    if (target == t0) {
      ys.push_back(y);
    } else {
      const double x = (target - t_prev) / (t0 - t_prev);
      torch::Tensor total = coeff[0] + x * coeff[1];
      double xp = x;
      for (std::size_t i = 2; i < coeff.size(); ++i) {
        xp *= x;
        total = total + xp * coeff[i];
      }
      ys.push_back(total);
    }
  }
  return ys;
}

}  // namespace

torch::Tensor odeint(const OdeFunc& f, const torch::Tensor& y0, const torch::Tensor& t,
                     const OdeintOptions& options, OdeintStats* stats) {
  SL_CHECK(y0.defined() && y0.dim() >= 1, ShapeError, "odeint: y0 must be [B, ...], got ",
           y0.defined() ? y0.dim() : -1, " dims");
  SL_CHECK(y0.is_floating_point(), ShapeError, "odeint: y0 must be floating point");
  SL_CHECK(t.defined() && t.dim() == 1 && t.size(0) >= 1, ShapeError,
           "odeint: t must be a non-empty 1-D tensor");
  auto tc = t.detach().to(torch::kCPU, torch::kFloat64).contiguous();
  std::vector<double> times(tc.data_ptr<double>(), tc.data_ptr<double>() + tc.numel());
  for (std::size_t k = 0; k + 1 < times.size(); ++k)
    SL_CHECK(times[k + 1] > times[k], DataError, "odeint: t must be strictly increasing, t[", k,
             "] = ", times[k], " >= t[", k + 1, "] = ", times[k + 1]);
  if (stats) *stats = OdeintStats{};
  std::vector<torch::Tensor> ys;
  switch (options.method()) {
    case OdeMethod::Euler:
    case OdeMethod::Rk4: ys = fixed_grid(f, y0, times, options.method(), stats); break;
    case OdeMethod::Dopri5: ys = dopri5(f, y0, times, options, stats); break;
  }
  return torch::stack(ys, 1);
}

/// V at or below which a sample counts as being on the goal when its field is not finite there
/// (the libtorch-free runtime, runtime/skill.h step_certified, uses the same value).
constexpr double kGoalV = 1e-200;

torch::Tensor certified_euler(const OdeFunc& f, const LyapunovFn& V, const torch::Tensor& y0, const torch::Tensor& t,
                              const CertifiedEulerOptions& o, CertifiedEulerStats* stats) {
  SL_CHECK(o.alpha() > 0, ConfigError, "certified Euler: alpha must be > 0, got ", o.alpha());
  SL_CHECK(o.kappa() > 0 && o.kappa() < 1, ConfigError, "certified Euler: kappa must be in (0, 1), got ", o.kappa());
  SL_CHECK(o.max_halvings() >= 0, ConfigError, "certified Euler: max_halvings must be >= 0, got ", o.max_halvings());
  SL_CHECK(y0.defined() && y0.dim() == 2, ShapeError, "certified Euler: y0 must be [B, d], got ",
           y0.defined() ? y0.dim() : -1, " dims");
  SL_CHECK(y0.is_floating_point(), ShapeError, "certified Euler: y0 must be floating point");
  SL_CHECK(t.defined() && t.dim() == 1 && t.size(0) >= 1, ShapeError, "certified Euler: t must be a non-empty 1-D tensor");
  auto tc = t.detach().to(torch::kCPU, torch::kFloat64).contiguous();
  const std::vector<double> times(tc.data_ptr<double>(), tc.data_ptr<double>() + tc.numel());
  for (std::size_t k = 0; k + 1 < times.size(); ++k)
    SL_CHECK(times[k + 1] > times[k], DataError, "certified Euler: t must be strictly increasing, t[", k, "] = ", times[k],
             " >= t[", k + 1, "] = ", times[k + 1]);
  if (stats) *stats = CertifiedEulerStats{};
  torch::NoGradGuard no_grad;
  const auto B = y0.size(0);
  const auto dev = y0.device();
  const auto opt64 = torch::TensorOptions().dtype(torch::kFloat64).device(dev);
  auto y = y0.detach().clone();
  auto v = V(y).to(torch::kFloat64);
  SL_CHECK(v.dim() == 1 && v.size(0) == B, ShapeError, "certified Euler: V must map [B, d] to [B]");
  // Per-sample preferred step, carried over intervals so a stiff region is not re-probed from h:
  // halved on a rejection, doubled (up to h) after an accepted unclamped step.
  auto pref = torch::full({B}, times.size() > 1 ? times[1] - times[0] : 0.0, opt64);
  std::vector<torch::Tensor> ys{y.clone()};
  for (std::size_t k = 0; k + 1 < times.size(); ++k) {
    const double h = times[k + 1] - times[k];
    auto remaining = torch::full({B}, h, opt64);
    const double min_step = std::ldexp(h, -static_cast<int>(std::min<std::int64_t>(o.max_halvings(), 60)));
    for (;;) {
      // Rows still inside this interval (a relative 1e-12 of h counts as done).
      const auto active = (remaining > 1e-12 * h).nonzero().squeeze(1);
      if (active.numel() == 0) break;
      const auto ya = y.index_select(0, active), va = v.index_select(0, active);
      const auto pa = pref.index_select(0, active).clamp(min_step, h), ra = remaining.index_select(0, active);
      const auto sa = torch::minimum(pa, ra);
      const double t_now = times[k + 1] - ra.max().item<double>();  // autonomous: only for the signature
      const auto fa = f(torch::scalar_tensor(t_now, y.options()), ya);
      const auto cand = ya + sa.unsqueeze(1).to(y.scalar_type()) * fa;
      const auto vc = V(cand).to(torch::kFloat64);
      const auto at_goal = va <= o.v_floor();
      // At the goal the projected field is 0/0 (∇V = 0), and within V ≈ 1e-300 of it ‖∇V‖²
      // underflows: a finite sample there (V ≤ kGoalV) whose candidate is not finite is put exactly
      // on the goal, which V(0) = 0 certifies. (Projections shrink a start quadratically towards
      // the goal, so long rollouts do get there.)
      const auto cand_finite = torch::isfinite(vc) & torch::isfinite(cand).all(1);
      const auto to_goal = ~cand_finite & (va <= kGoalV) & torch::isfinite(ya).all(1);
      const auto certified = (vc <= va * torch::exp(-o.kappa() * o.alpha() * sa)) | to_goal;
      // The halving limit is absolute (h / 2^max_halvings), so the carried preferred step cannot
      // drift below it and an interval costs at most 2^max_halvings sub-steps.
      const auto forced = ~certified & ~at_goal & (sa <= min_step * (1 + 1e-9));
      const auto accept = certified | at_goal | forced;
      if (stats) {
        ++stats->evaluations;
        const auto n_acc = accept.sum().item<std::int64_t>();
        stats->substeps += n_acc;
        stats->rejections += active.numel() - n_acc;
        stats->uncertified += (o.project() ? forced & ~cand_finite : forced).sum().item<std::int64_t>();
      }
      // A sample at the goal (V ≤ v_floor) stays there: leaving it would raise V above 0.
      auto next = torch::where(at_goal.unsqueeze(1), ya, torch::where(to_goal.unsqueeze(1), torch::zeros_like(cand), cand));
      auto v_next = torch::where(at_goal, va, torch::where(to_goal, torch::zeros_like(vc), vc));
      if (o.project() && forced.any().item<bool>()) {
        // Radial projection onto {V <= c}, c = V(x) e^{−καs}: V is convex with its minimum 0 at
        // the origin, so λ -> V(λ y) is non-decreasing on [0, 1] and V(0) = 0 < c < V(y); bisect
        // for the largest λ found with V(λ y) <= c (the lower bracket end, so the bound holds).
        // Rows with a non-finite candidate are left as they are (they must not be "projected" to
        // the goal).
        const auto rows = (forced & cand_finite).nonzero().squeeze(1);
        if (rows.numel() > 0) {
          const auto yr = cand.index_select(0, rows);
          const auto cr = va.index_select(0, rows) * torch::exp(-o.kappa() * o.alpha() * sa.index_select(0, rows));
          // Two closed-form candidates (docs/lfd.md §2.2): μ1 = c / V(y) is certified by convexity
          // alone (V(μy) <= μ V(y) for μ in [0, 1]); μ0 = √(c / V(y)) >= μ1 is certified wherever V is
          // quadratic along the ray (V(μy) <= μ² V(y): the sNODE's V wherever g(y) − g(0) <= δ) and is
          // probed. Rows where μ0 fails bisect [μ1, μ0] 8 times, keeping the certified lower end.
          const auto ratio = cr / vc.index_select(0, rows);
          const auto mu0 = (ratio.sqrt() * (1 - 1e-10)).clamp(0, 1), mu1 = ratio * (1 - 1e-12);
          const auto ok0 = V(yr * mu0.unsqueeze(1).to(y.scalar_type())).to(torch::kFloat64) <= cr;
          auto lo = torch::where(ok0, mu0, mu1);
          const auto hard = (~ok0).nonzero().squeeze(1);
          if (hard.numel() > 0) {
            const auto yh = yr.index_select(0, hard), ch = cr.index_select(0, hard);
            auto lh = mu1.index_select(0, hard), hh = mu0.index_select(0, hard);
            for (int it = 0; it < 8; ++it) {
              const auto mid = (lh + hh) / 2;
              const auto ok = V(yh * mid.unsqueeze(1).to(y.scalar_type())).to(torch::kFloat64) <= ch;
              lh = torch::where(ok, mid, lh);
              hh = torch::where(ok, hh, mid);
            }
            lo = lo.index_copy(0, hard, lh);
          }
          const auto yp = yr * lo.unsqueeze(1).to(y.scalar_type());
          next = next.index_copy(0, rows, yp);
          v_next = v_next.index_copy(0, rows, V(yp).to(torch::kFloat64));
          if (stats) stats->projections += rows.numel();
        }
      }
      const auto acc_idx = active.masked_select(accept), rej_idx = active.masked_select(~accept);
      if (acc_idx.numel() > 0) {
        const auto s_acc = sa.masked_select(accept), p_acc = pa.masked_select(accept);
        y.index_copy_(0, acc_idx, next.masked_select(accept.unsqueeze(1)).view({-1, y.size(1)}));
        v.index_copy_(0, acc_idx, v_next.masked_select(accept));
        remaining.index_copy_(0, acc_idx, (ra.masked_select(accept) - s_acc).clamp_min(0));
        pref.index_copy_(0, acc_idx, torch::where(s_acc >= p_acc, (2 * p_acc).clamp_max(h), p_acc));
      }
      if (rej_idx.numel() > 0) {
        pref.index_copy_(0, rej_idx, sa.masked_select(~accept) / 2);
      }
    }
    ys.push_back(y.clone());
  }
  return torch::stack(ys, 1);
}

}  // namespace stablelearn::models
