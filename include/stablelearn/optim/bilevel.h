// Stochastic bilevel optimisation (seed paper 15, shared/specs/papers-01-18.md §15; docs/optim.md):
//   min_x Φ(x) = f(x, y*(x)),   y*(x) = argmin_y g(x, y)   (g strongly convex in y),
// with the hypergradient ∇Φ = ∇_x f − ∇²_xy g [∇²_yy g]⁻¹ ∇_y f.
//
// BO-REP (Hao, Gong, Liu, ICLR 2024), per iteration t (the reference data_cleaning/bo_rep.py):
//   0. once, before the first iteration: `init_steps` SGD steps on g(x₀, ·) (initialisation refinement);
//   1. if t mod I = 0: N SGD steps y ← y − γ ∇_y g(x_t, y; ζ) (periodic lower-level updates);
//   2. z ← z − ν (∇²_yy g(x_t, y; ζ) z − ∇_y f(x_t, y; ξ)), then z projected onto ‖z‖ ≤ R (R > 0);
//   3. ĝ = ∇_x f(x_t, y; ξ) − ∇²_xy g(x_t, y; ζ') z   (the new z);
//   4. m ← β m + (1 − β) ĝ;  x ← x − η m / (‖m‖ + ε)   (normalised momentum).
// Steps 2 and 3 are one Hessian-vector product each (a double backward of ⟨∇_y g, z⟩).
//
// The baseline, stocBiO-style AID (Ji, Yang, Liang, ICML 2021), per iteration:
//   1. D SGD steps on y (warm-started from the previous iteration's y);
//   2. v ≈ [∇²_yy g]⁻¹ ∇_y f by the truncated Neumann series v = ν Σ_{q=0}^{Q−1} (I − ν H)^q ∇_y f
//      (Q − 1 Hessian-vector products), or by Q steps of conjugate gradients (Q products);
//   3. ĝ = ∇_x f − ∇²_xy g v (one product);  x ← x − α ĝ.
//
// The Hessian-vector products are formed here rather than with diagnostics' HessianOperator: that
// operator differentiates with respect to its own parameters only, while the hypergradient needs the
// mixed block ∇²_xy g, which the same double backward of ⟨∇_y g, v⟩ gives with respect to x.
//
// x and y are single tensors of any shape (flatten several into one); every closure evaluation may
// draw its own minibatch. Nothing assumes a device: z, m and every product live on x's / y's device.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include <torch/serialize/archive.h>
#include <torch/types.h>

namespace stablelearn::optim {

/// f(x, y) and g(x, y): scalar tensors differentiable in both arguments. Each call may sample a
/// new minibatch (the stochastic oracles ξ, ζ).
struct BilevelProblem {
  std::function<torch::Tensor(const torch::Tensor& x, const torch::Tensor& y)> upper;
  std::function<torch::Tensor(const torch::Tensor& x, const torch::Tensor& y)> lower;
};

/// Oracle calls so far: gradients of f, gradients of g (lower-level SGD steps) and Hessian-vector
/// products of g (one double backward each, whichever block it returns).
struct BilevelCounts {
  std::int64_t upper_gradients = 0;
  std::int64_t lower_gradients = 0;
  std::int64_t hvps = 0;
};

// ---- primitives (each one evaluation of a closure) ------------------------------------------------

/// (∇_x f, ∇_y f) at (x, y), detached (zeros where f does not depend on the argument).
std::pair<torch::Tensor, torch::Tensor> upper_gradients(const BilevelProblem& p, const torch::Tensor& x,
                                                        const torch::Tensor& y);
/// ∇_y g at (x, y), detached.
torch::Tensor lower_gradient(const BilevelProblem& p, const torch::Tensor& x, const torch::Tensor& y);
/// (∇²_yy g v, ∇²_xy g v) at (x, y) from one double backward of ⟨∇_y g, v⟩; ∇²_xy g v has x's shape.
std::pair<torch::Tensor, torch::Tensor> lower_hvp(const BilevelProblem& p, const torch::Tensor& x, const torch::Tensor& y,
                                                  const torch::Tensor& v);
/// The normalised-momentum step: m ← β m + (1 − β) g; x ← x − lr m / (‖m‖ + eps), in place.
void normalized_momentum_step(torch::Tensor& x, torch::Tensor& m, const torch::Tensor& g, double beta, double lr, double eps);

/// How [∇²_yy g]⁻¹ ∇_y f is approximated.
enum class HypergradSolver { Neumann, CG };
/// "neumann" or "cg"; ConfigError naming `key` otherwise.
HypergradSolver parse_hypergrad_solver(const std::string& name, const std::string& key = "solver");

/// The AID hypergradient at (x, y): v ≈ H⁻¹ ∇_y f with `steps` terms of the Neumann series (step
/// `eta`) or `steps` conjugate-gradient iterations, then ∇_x f − ∇²_xy g v. With one batch of f and
/// g (deterministic closures) and y = y*(x), CG with steps ≥ dim(y) is the exact ∇Φ. Counts the
/// oracle calls into `counts` when given.
torch::Tensor aid_hypergradient(const BilevelProblem& p, const torch::Tensor& x, const torch::Tensor& y,
                                HypergradSolver solver, std::int64_t steps, double eta, BilevelCounts* counts = nullptr);

// ---- BO-REP ---------------------------------------------------------------------------------------

struct BoRepOptions {
  double lr = 0.05;              ///< η, the upper step length (‖Δx‖ = η per iteration)
  double beta = 0.9;             ///< momentum β ∈ [0, 1)
  double lower_lr = 0.05;        ///< γ, lower-level SGD step
  std::int64_t interval = 2;     ///< I: lower updates every I iterations (≥ 1)
  std::int64_t lower_steps = 10; ///< N SGD steps per lower update (≥ 1)
  std::int64_t init_steps = 100; ///< initialisation refinement steps (≥ 0)
  double z_lr = 0.01;            ///< ν, the step of the linear-system iterate z
  double z_radius = 0;           ///< R: z projected onto ‖z‖ ≤ R (0 = no projection)
  double eps = 1e-10;            ///< ε in m / (‖m‖ + ε)
  /// ConfigError naming the key (e.g. "bo_rep.beta") and what was expected.
  void validate(const std::string& prefix = "bo_rep") const;
};

class BoRep {
 public:
  /// Validates the options (ConfigError) and copies x0, y0 (detached); z and m start at zero.
  BoRep(BilevelProblem problem, const torch::Tensor& x0, const torch::Tensor& y0, BoRepOptions options = {});
  /// One iteration (the initialisation refinement runs before the first).
  void step();
  const torch::Tensor& x() const { return x_; }
  const torch::Tensor& y() const { return y_; }
  const torch::Tensor& z() const { return z_; }
  const torch::Tensor& momentum() const { return m_; }
  std::int64_t iterations() const { return t_; }
  const BilevelCounts& counts() const { return counts_; }
  /// The last hypergradient estimate ĝ.
  const torch::Tensor& hypergradient() const { return g_; }
  /// x, y, z, m, the iteration and the counts.
  void save(torch::serialize::OutputArchive& archive) const;
  void load(torch::serialize::InputArchive& archive);

 private:
  BilevelProblem p_;
  BoRepOptions o_;
  torch::Tensor x_, y_, z_, m_, g_;
  std::int64_t t_ = 0;
  bool refined_ = false;
  BilevelCounts counts_;
};

// ---- stocBiO-style AID baseline ------------------------------------------------------------------

struct StocBioOptions {
  double lr = 0.1;                 ///< α, the upper step
  double lower_lr = 0.05;          ///< lower-level SGD step
  std::int64_t lower_steps = 10;   ///< D SGD steps per iteration (≥ 1)
  HypergradSolver solver = HypergradSolver::Neumann;
  std::int64_t solver_steps = 10;  ///< Q (≥ 1)
  double neumann_eta = 0.05;       ///< ν of the Neumann series (> 0)
  void validate(const std::string& prefix = "stocbio") const;
};

class StocBio {
 public:
  StocBio(BilevelProblem problem, const torch::Tensor& x0, const torch::Tensor& y0, StocBioOptions options = {});
  void step();
  const torch::Tensor& x() const { return x_; }
  const torch::Tensor& y() const { return y_; }
  std::int64_t iterations() const { return t_; }
  const BilevelCounts& counts() const { return counts_; }
  const torch::Tensor& hypergradient() const { return g_; }
  /// Hessian-vector products per iteration (Q for Neumann, Q + 1 for CG).
  std::int64_t hvps_per_step() const;
  void save(torch::serialize::OutputArchive& archive) const;
  void load(torch::serialize::InputArchive& archive);

 private:
  BilevelProblem p_;
  StocBioOptions o_;
  torch::Tensor x_, y_, g_;
  std::int64_t t_ = 0;
  BilevelCounts counts_;
};

}  // namespace stablelearn::optim
