// BO-REP and the stocBiO-style AID baseline (include/stablelearn/optim/bilevel.h; docs/optim.md).
#include "stablelearn/optim/bilevel.h"

#include <cmath>
#include <utility>

#include <torch/torch.h>

#include "stablelearn/core/error.h"

namespace stablelearn::optim {

namespace {

/// A detached copy of t that requires grad (a leaf for one evaluation).
torch::Tensor leaf(const torch::Tensor& t) { return t.detach().clone().requires_grad_(true); }

torch::Tensor scalar_of(const torch::Tensor& v, const char* who) {
  SL_CHECK(v.defined() && v.numel() == 1, ShapeError, "bilevel: the ", who, " objective must return a scalar, got ",
           v.defined() ? v.sizes() : torch::IntArrayRef{});
  return v.reshape({});
}

torch::Tensor or_zeros(const torch::Tensor& g, const torch::Tensor& like) {
  return g.defined() ? g.detach() : torch::zeros_like(like);
}

void check_problem(const BilevelProblem& p, const torch::Tensor& x0, const torch::Tensor& y0, const char* who) {
  SL_CHECK(p.upper && p.lower, ConfigError, who, ": the bilevel problem needs both an upper and a lower objective");
  SL_CHECK(x0.defined() && y0.defined(), ConfigError, who, ": x0 and y0 must be defined tensors");
  SL_CHECK(x0.is_floating_point() && y0.is_floating_point(), ConfigError, who, ": x0 and y0 must be floating point");
  SL_CHECK(torch::isfinite(x0).all().item<bool>() && torch::isfinite(y0).all().item<bool>(), DataError, who,
           ": x0 or y0 holds a NaN or an infinity");
}

void check_positive(double v, const std::string& key) {
  SL_CHECK(v > 0 && std::isfinite(v), ConfigError, key, " = ", v, " (want a finite number > 0)");
}

}  // namespace

std::pair<torch::Tensor, torch::Tensor> upper_gradients(const BilevelProblem& p, const torch::Tensor& x,
                                                        const torch::Tensor& y) {
  torch::AutoGradMode on(true);
  const auto xl = leaf(x), yl = leaf(y);
  const auto f = scalar_of(p.upper(xl, yl), "upper");
  if (!f.requires_grad()) return {torch::zeros_like(x), torch::zeros_like(y)};
  const auto g = torch::autograd::grad({f}, {xl, yl}, {}, false, false, /*allow_unused=*/true);
  return {or_zeros(g[0], x), or_zeros(g[1], y)};
}

torch::Tensor lower_gradient(const BilevelProblem& p, const torch::Tensor& x, const torch::Tensor& y) {
  torch::AutoGradMode on(true);
  const auto yl = leaf(y);
  const auto g = scalar_of(p.lower(x.detach(), yl), "lower");
  if (!g.requires_grad()) return torch::zeros_like(y);
  return or_zeros(torch::autograd::grad({g}, {yl}, {}, false, false, true)[0], y);
}

std::pair<torch::Tensor, torch::Tensor> lower_hvp(const BilevelProblem& p, const torch::Tensor& x, const torch::Tensor& y,
                                                  const torch::Tensor& v) {
  SL_CHECK(v.sizes() == y.sizes(), ShapeError, "bilevel: the Hessian-vector product's vector has shape ", v.sizes(),
           ", want y's shape ", y.sizes());
  torch::AutoGradMode on(true);
  const auto xl = leaf(x), yl = leaf(y);
  const auto g = scalar_of(p.lower(xl, yl), "lower");
  if (!g.requires_grad()) return {torch::zeros_like(y), torch::zeros_like(x)};
  const auto gy = torch::autograd::grad({g}, {yl}, {}, true, /*create_graph=*/true, true)[0];
  if (!gy.defined() || !gy.requires_grad()) return {torch::zeros_like(y), torch::zeros_like(x)};
  const auto dot = (gy * v.detach()).sum();
  const auto h = torch::autograd::grad({dot}, {yl, xl}, {}, false, false, true);
  return {or_zeros(h[0], y), or_zeros(h[1], x)};
}

void normalized_momentum_step(torch::Tensor& x, torch::Tensor& m, const torch::Tensor& g, double beta, double lr, double eps) {
  torch::NoGradGuard ng;
  m.mul_(beta).add_(g, 1 - beta);
  const double norm = m.norm().item<double>();
  SL_CHECK(std::isfinite(norm), DataError, "bilevel: the momentum holds a NaN or an infinity (a non-finite hypergradient)");
  x.sub_(m, lr / (norm + eps));
}

HypergradSolver parse_hypergrad_solver(const std::string& name, const std::string& key) {
  if (name == "neumann") return HypergradSolver::Neumann;
  if (name == "cg") return HypergradSolver::CG;
  SL_THROW(ConfigError, key, " = '", name, "' (want 'neumann' or 'cg')");
}

torch::Tensor aid_hypergradient(const BilevelProblem& p, const torch::Tensor& x, const torch::Tensor& y,
                                HypergradSolver solver, std::int64_t steps, double eta, BilevelCounts* counts) {
  SL_CHECK(steps >= 1, ConfigError, "bilevel: hypergradient solver steps = ", steps, " (want >= 1)");
  const auto [fx, fy] = upper_gradients(p, x, y);
  BilevelCounts c;
  c.upper_gradients = 1;
  torch::Tensor v;
  torch::NoGradGuard ng;
  if (solver == HypergradSolver::Neumann) {
    SL_CHECK(eta > 0 && std::isfinite(eta), ConfigError, "bilevel: Neumann step = ", eta, " (want > 0)");
    auto term = fy.clone();
    auto sum = fy.clone();
    for (std::int64_t q = 1; q < steps; ++q) {
      term = term - eta * lower_hvp(p, x, y, term).first;
      ++c.hvps;
      sum.add_(term);
    }
    v = sum * eta;
  } else {  // conjugate gradients on H v = ∇_y f from v = 0
    v = torch::zeros_like(fy);
    auto r = fy.clone(), d = fy.clone();
    double rr = r.pow(2).sum().item<double>();
    for (std::int64_t k = 0; k < steps && rr > 0; ++k) {
      const auto hd = lower_hvp(p, x, y, d).first;
      ++c.hvps;
      const double dhd = (d * hd).sum().item<double>();
      if (!(dhd > 0)) break;  // not positive definite along d (or exact already)
      const double a = rr / dhd;
      v.add_(d, a);
      r.sub_(hd, a);
      const double rr_new = r.pow(2).sum().item<double>();
      d = r + (rr_new / rr) * d;
      rr = rr_new;
    }
  }
  const auto mixed = lower_hvp(p, x, y, v).second;
  ++c.hvps;
  if (counts) {
    counts->upper_gradients += c.upper_gradients;
    counts->hvps += c.hvps;
  }
  return fx - mixed;
}

// ---- BO-REP ---------------------------------------------------------------------------------------

void BoRepOptions::validate(const std::string& prefix) const {
  check_positive(lr, prefix + ".lr");
  SL_CHECK(beta >= 0 && beta < 1, ConfigError, prefix, ".beta = ", beta, " (want [0, 1))");
  check_positive(lower_lr, prefix + ".lower_lr");
  SL_CHECK(interval >= 1, ConfigError, prefix, ".interval = ", interval, " (want >= 1)");
  SL_CHECK(lower_steps >= 1, ConfigError, prefix, ".lower_steps = ", lower_steps, " (want >= 1)");
  SL_CHECK(init_steps >= 0, ConfigError, prefix, ".init_steps = ", init_steps, " (want >= 0)");
  check_positive(z_lr, prefix + ".z_lr");
  SL_CHECK(z_radius >= 0 && std::isfinite(z_radius), ConfigError, prefix, ".z_radius = ", z_radius,
           " (want >= 0; 0 = no projection)");
  SL_CHECK(eps >= 0 && std::isfinite(eps), ConfigError, prefix, ".eps = ", eps, " (want >= 0)");
}

BoRep::BoRep(BilevelProblem problem, const torch::Tensor& x0, const torch::Tensor& y0, BoRepOptions options)
    : p_(std::move(problem)), o_(options) {
  o_.validate();
  check_problem(p_, x0, y0, "bo_rep");
  x_ = x0.detach().clone();
  y_ = y0.detach().clone();
  z_ = torch::zeros_like(y_);
  m_ = torch::zeros_like(x_);
  g_ = torch::zeros_like(x_);
}

void BoRep::step() {
  torch::NoGradGuard ng;
  auto sgd = [&](std::int64_t n) {
    for (std::int64_t k = 0; k < n; ++k) y_.sub_(lower_gradient(p_, x_, y_), o_.lower_lr);
    counts_.lower_gradients += n;
  };
  if (!refined_) {
    sgd(o_.init_steps);
    refined_ = true;
  }
  if (t_ % o_.interval == 0) sgd(o_.lower_steps);
  // z-update: one HVP with ∇²_yy g against a fresh ∇_y f.
  const auto [fx, fy] = upper_gradients(p_, x_, y_);
  ++counts_.upper_gradients;
  z_ = z_ - o_.z_lr * (lower_hvp(p_, x_, y_, z_).first - fy);
  ++counts_.hvps;
  if (o_.z_radius > 0) {
    const double n = z_.norm().item<double>();
    if (n > o_.z_radius) z_.mul_(o_.z_radius / n);
  }
  // The hypergradient with the new z (its own HVP, mixed block), then normalised momentum.
  g_ = fx - lower_hvp(p_, x_, y_, z_).second;
  ++counts_.hvps;
  normalized_momentum_step(x_, m_, g_, o_.beta, o_.lr, o_.eps);
  ++t_;
}

void BoRep::save(torch::serialize::OutputArchive& a) const {
  a.write("x", x_);
  a.write("y", y_);
  a.write("z", z_);
  a.write("m", m_);
  a.write("g", g_);
  a.write("t", torch::tensor(t_));
  a.write("refined", torch::tensor(static_cast<std::int64_t>(refined_)));
  a.write("counts", torch::tensor({counts_.upper_gradients, counts_.lower_gradients, counts_.hvps}));
}

void BoRep::load(torch::serialize::InputArchive& a) {
  torch::Tensor t, r, c;
  a.read("x", x_);
  a.read("y", y_);
  a.read("z", z_);
  a.read("m", m_);
  a.read("g", g_);
  a.read("t", t);
  a.read("refined", r);
  a.read("counts", c);
  t_ = t.item<std::int64_t>();
  refined_ = r.item<std::int64_t>() != 0;
  counts_ = {c[0].item<std::int64_t>(), c[1].item<std::int64_t>(), c[2].item<std::int64_t>()};
}

// ---- stocBiO ----------------------------------------------------------------------------------------

void StocBioOptions::validate(const std::string& prefix) const {
  check_positive(lr, prefix + ".lr");
  check_positive(lower_lr, prefix + ".lower_lr");
  SL_CHECK(lower_steps >= 1, ConfigError, prefix, ".lower_steps = ", lower_steps, " (want >= 1)");
  SL_CHECK(solver_steps >= 1, ConfigError, prefix, ".solver_steps = ", solver_steps, " (want >= 1)");
  check_positive(neumann_eta, prefix + ".neumann_eta");
}

StocBio::StocBio(BilevelProblem problem, const torch::Tensor& x0, const torch::Tensor& y0, StocBioOptions options)
    : p_(std::move(problem)), o_(options) {
  o_.validate();
  check_problem(p_, x0, y0, "stocbio");
  x_ = x0.detach().clone();
  y_ = y0.detach().clone();
  g_ = torch::zeros_like(x_);
}

std::int64_t StocBio::hvps_per_step() const {
  return o_.solver == HypergradSolver::Neumann ? o_.solver_steps : o_.solver_steps + 1;
}

void StocBio::step() {
  torch::NoGradGuard ng;
  for (std::int64_t k = 0; k < o_.lower_steps; ++k) y_.sub_(lower_gradient(p_, x_, y_), o_.lower_lr);
  counts_.lower_gradients += o_.lower_steps;
  g_ = aid_hypergradient(p_, x_, y_, o_.solver, o_.solver_steps, o_.neumann_eta, &counts_);
  SL_CHECK(torch::isfinite(g_).all().item<bool>(), DataError, "stocbio: the hypergradient holds a NaN or an infinity at "
           "iteration ", t_, " (lower the step sizes)");
  x_.sub_(g_, o_.lr);
  ++t_;
}

void StocBio::save(torch::serialize::OutputArchive& a) const {
  a.write("x", x_);
  a.write("y", y_);
  a.write("g", g_);
  a.write("t", torch::tensor(t_));
  a.write("counts", torch::tensor({counts_.upper_gradients, counts_.lower_gradients, counts_.hvps}));
}

void StocBio::load(torch::serialize::InputArchive& a) {
  torch::Tensor t, c;
  a.read("x", x_);
  a.read("y", y_);
  a.read("g", g_);
  a.read("t", t);
  a.read("counts", c);
  t_ = t.item<std::int64_t>();
  counts_ = {c[0].item<std::int64_t>(), c[1].item<std::int64_t>(), c[2].item<std::int64_t>()};
}

}  // namespace stablelearn::optim
