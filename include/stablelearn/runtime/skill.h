// stablelearn runtime: evaluate an exported motion skill inside a robot's control loop.
// Header-only, C++17, no libtorch, no allocation per step (shared/STYLE.md #4: an immutable Skill
// plus a Workspace made once).
//
//   stablelearn::runtime::Skill skill = stablelearn::runtime::Skill::load("angle.slskill");
//   stablelearn::runtime::Workspace ws(skill);
//   double x[2] = {-40, 10}, v[2];
//   for (double t = 0; ...; t += dt) { skill.velocity(x, t, v, ws); /* command v */ }
//
// A skill is the vector field of one learned task (shared/specs/clfd-snode.md §2.2–2.3):
//  * sNODE: z = [x, t] (t appended when explicit_time), f̂ = ReLU MLP, f̂_aug = [f̂(z), 1];
//    ICNN g(z) with ReHU_r; V(z) = ReHU_1(g(z) − g(0)) + ε‖z‖²; the projection
//    f = f̂_aug − ∇V · ReLU(∇Vᵀ f̂_aug + αV) / ‖∇V‖² guarantees ∇Vᵀf ≤ −αV; ẋ = f[0:d].
//    ∇V is analytic: ∇g = W2ᵀ + W1ᵀ(σ'(a2)⊙s) + W0ᵀ(σ'(a1)⊙(Ũ0ᵀ(σ'(a2)⊙s))), s = softplus(U1)ᵀ,
//    Ũ0 = softplus(U0)/hp, ∇V = ReHU_1'(g − g(0)) ∇g + 2εz.
//  * NODE: ẋ = MLP_ELU([x, t]).
// The model works in normalised, goal-centred coordinates: x_model = (x_raw − mean)/std − goal for
// the first position_dim coordinates (any further coordinates, e.g. RoboTasks9 tangent vectors, are
// model coordinates already). velocity() takes and returns raw units; velocity_model() works in
// model coordinates. Arithmetic is float for the weights and products (as the trained libtorch
// model) with double at the interface.
// Kernels (runtime/kernels.h): the matrix products run in AVX-512 or AVX2 where the CPU has them
// (chosen when the skill is loaded, whatever flags the including code is compiled with), else in
// portable C++; set_isa() forces one. The variants add the same products in the same order.
//
// File format (little-endian), version 2 — see docs/skill-format.md:
//   "SLSKILL\0" | u32 version | u32 kind (1 sNODE, 2 NODE) | u32 dim | u32 position_dim |
//   u32 explicit_time | u32 n_hidden | n_hidden × u32 widths | u32 icnn_hidden |
//   f64 alpha, eps, rehu, psd_rehu, elu_alpha, t0, dt |
//   position_dim × f64 mean, std, goal | u64 n_weights | n_weights × f32 (layout order) |
//   u32 name_len | name | [version ≥ 2: u32 step (0 ODE, 1 discrete map Φ) | f64 kappa | f64 period] |
//   u64 FNV-1a-64 checksum of every preceding byte.
// Writers use the lowest version that expresses the skill (version 1 unless it is a discrete-step
// skill), so continuous-time skills stay readable by version-1 runtimes.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

#include "stablelearn/runtime/kernels.h"

namespace stablelearn::runtime {

/// Thrown by Skill::load / Skill::parse for a missing, corrupt, truncated or newer file.
class SkillError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

inline constexpr char kSkillMagic[8] = {'S', 'L', 'S', 'K', 'I', 'L', 'L', '\0'};
inline constexpr std::uint32_t kSkillVersion = 2;
enum class SkillKind : std::uint32_t { SNode = 1, Node = 2 };

inline std::uint64_t fnv1a64(const unsigned char* p, std::size_t n) {
  std::uint64_t h = 1469598103934665603ULL;
  for (std::size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ULL;
  return h;
}

class Skill;

/// Scratch buffers of one evaluation thread; make once per skill, reuse every step.
class Workspace {
 public:
  explicit Workspace(const Skill& skill);

 private:
  friend class Skill;
  std::vector<float> z, a, b, a1, z1, a2, z2, s2, t1, grad, fhat;
  std::vector<double> xm, xv;  // model-coordinate state and velocity of velocity() / step_euler()
  std::vector<double> xc;      // step_certified() / step_discrete(): the candidate state
  float grad_norm2 = 0;        // ‖∇V‖² of the last sNODE field evaluation
};

/// What one step_certified() call did.
struct CertifiedStep {
  std::uint32_t substeps = 0;    ///< accepted Euler sub-steps (1 where the whole period is certified)
  std::uint32_t rejections = 0;  ///< rejected trials (halvings)
  std::uint32_t projections = 0; ///< sub-steps radially projected onto the certified sub-level set
  bool finite = true;            ///< false when the field or V was not finite (state left unprojected)
};

class Skill {
 public:
  struct Header {
    SkillKind kind = SkillKind::SNode;
    std::uint32_t dim = 0, position_dim = 0;
    bool explicit_time = true;
    std::vector<std::uint32_t> hidden;  ///< f̂ widths (sNODE) or MLP hidden widths (NODE)
    std::uint32_t icnn_hidden = 0;
    double alpha = 0.5, eps = 1e-4, rehu = 0.01, psd_rehu = 1.0, elu_alpha = 1.0, t0 = 0, dt = 0;
    std::vector<double> mean, std, goal;
    std::string name;
    /// Version 2: trained as the discrete-time map Φ (step_discrete) with this κ at this period
    /// (seconds). Version-1 files: false, 0.5, 0.
    bool discrete_step = false;
    double kappa = 0.5, period = 0;
  };

  static Skill load(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw SkillError(path + ": cannot open skill file");
    std::vector<unsigned char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return parse(bytes.data(), bytes.size(), path);
  }

  static Skill parse(const unsigned char* data, std::size_t size, const std::string& source = "skill") {
    Reader r{data, size, 0, source};
    char magic[8];
    r.bytes(magic, 8);
    if (std::memcmp(magic, kSkillMagic, 8) != 0) throw SkillError(source + ": not a stablelearn skill file (bad magic)");
    const auto version = r.u32();
    if (version == 0 || version > kSkillVersion)
      throw SkillError(source + ": skill format version " + std::to_string(version) +
                       " is newer than this runtime reads (1.." + std::to_string(kSkillVersion) + "); update stablelearn");
    std::uint64_t stored;
    std::memcpy(&stored, data + size - 8, 8);
    if (fnv1a64(data, size - 8) != stored) throw SkillError(source + ": checksum mismatch (corrupt or truncated file)");
    Skill s;
    Header& h = s.h_;
    const auto kind = r.u32();
    if (kind != 1 && kind != 2) throw SkillError(source + ": unknown skill kind " + std::to_string(kind));
    h.kind = static_cast<SkillKind>(kind);
    h.dim = r.u32();
    h.position_dim = r.u32();
    h.explicit_time = r.u32() != 0;
    const auto n_hidden = r.u32();
    if (h.dim == 0 || h.dim > 4096 || h.position_dim > h.dim || n_hidden == 0 || n_hidden > 64)
      throw SkillError(source + ": implausible dimensions");
    for (std::uint32_t k = 0; k < n_hidden; ++k) {
      h.hidden.push_back(r.u32());
      if (h.hidden.back() == 0 || h.hidden.back() > (1u << 16)) throw SkillError(source + ": implausible layer width");
    }
    h.icnn_hidden = r.u32();
    if (h.kind == SkillKind::SNode && (h.icnn_hidden == 0 || h.icnn_hidden > (1u << 16)))
      throw SkillError(source + ": implausible ICNN width");
    for (double* v : {&h.alpha, &h.eps, &h.rehu, &h.psd_rehu, &h.elu_alpha, &h.t0, &h.dt}) *v = r.f64();
    for (auto* vec : {&h.mean, &h.std, &h.goal}) {
      vec->resize(h.position_dim);
      for (auto& v : *vec) v = r.f64();
    }
    for (double v : h.std)
      if (!(v > 0) || !std::isfinite(v)) throw SkillError(source + ": normalisation std must be positive");
    const auto n_weights = r.u64();
    if (n_weights != s.expected_weights()) throw SkillError(source + ": weight count does not match the architecture");
    if (n_weights > (size - r.pos) / sizeof(float)) throw SkillError(source + ": truncated skill file");
    s.w_.resize(static_cast<std::size_t>(n_weights));
    r.bytes(s.w_.data(), s.w_.size() * sizeof(float));
    for (float v : s.w_)
      if (!std::isfinite(v)) throw SkillError(source + ": non-finite weight");
    const auto name_len = r.u32();
    if (name_len > 4096) throw SkillError(source + ": implausible name length");
    h.name.resize(name_len);
    r.bytes(h.name.data(), name_len);
    if (version >= 2) {
      const auto step = r.u32();
      h.kappa = r.f64();
      h.period = r.f64();
      if (step > 1) throw SkillError(source + ": unknown step rule " + std::to_string(step));
      h.discrete_step = step == 1;
      if (h.discrete_step && (h.kind != SkillKind::SNode || h.explicit_time || !(h.kappa > 0 && h.kappa <= 1) ||
                              !(h.period > 0) || !std::isfinite(h.period)))
        throw SkillError(source + ": a discrete-step skill needs an autonomous sNODE, kappa in (0, 1] and a positive period");
    }
    if (r.pos + 8 != size) throw SkillError(source + ": unexpected trailing bytes");
    s.prepare();
    return s;
  }

  const Header& header() const { return h_; }
  std::uint32_t dim() const { return h_.dim; }
  std::uint32_t input_dim() const { return h_.dim + (h_.explicit_time ? 1 : 0); }
  const std::vector<float>& weights() const { return w_; }

  /// The kernel variant that evaluates this skill: best_isa() from load on.
  Isa isa() const { return isa_; }
  /// Evaluate with `isa` from now on (Isa::Portable: results that do not depend on the CPU, up to
  /// the including code's compiler flags). Repacks the weights (allocates; not for a control loop).
  /// SkillError where this build or CPU lacks the variant (isa_supported()).
  void set_isa(Isa isa) {
    if (!isa_supported(isa)) throw SkillError(std::string("the ") + isa_name(isa) + " kernels are not available on this CPU or build");
    isa_ = isa;
    detail::AlignedFloats().swap(pk_);
    pk_layers_.clear();
    if (const std::size_t width = isa_width(isa)) {
      std::size_t in = input_dim();
      for (std::size_t l = 0; l < layer_w_.size(); ++l) {
        const std::size_t out = l < h_.hidden.size() ? h_.hidden[l] : h_.dim;
        pk_layers_.push_back(detail::pack_panels(&w_[layer_w_[l]], &w_[layer_b_[l]], out, in, width, pk_));
        in = out;
      }
      if (h_.kind == SkillKind::SNode) {
        const std::size_t hp = h_.icnn_hidden, n = input_dim();
        pk_w0_ = detail::pack_panels(&w_[W0_], &w_[b0_], hp, n, width, pk_);
        pk_w1_ = detail::pack_panels(&w_[W1_], &w_[b1_], hp, n, width, pk_);
        pk_u0_ = detail::pack_panels(sp_u0_.data(), nullptr, hp, hp, width, pk_);
        pk_u0_rows_ = detail::pack_rows(sp_u0_.data(), hp, hp, pk_);
      }
    }
    if (h_.kind == SkillKind::SNode) {
      Workspace ws(*this);
      std::fill(ws.z.begin(), ws.z.end(), 0.0f);
      g0_ = icnn(ws);
    }
  }

  /// ẋ in model coordinates: z_model [dim] at time t -> xdot [dim].
  void velocity_model(const double* x, double t, double* xdot, Workspace& ws) const { field_model(x, t, xdot, ws); }

  /// velocity_model() that also returns V(z) (computed on the way; 0 for NODE).
  float field_model(const double* x, double t, double* xdot, Workspace& ws) const {
    load_input(x, t, ws);
    if (h_.kind == SkillKind::Node) {
      mlp(ws, /*elu=*/true);
      for (std::uint32_t i = 0; i < h_.dim; ++i) xdot[i] = ws.fhat[i];
      return 0;
    }
    mlp(ws, /*elu=*/false);  // f̂ into ws.fhat[0..dim)
    const auto n = input_dim();
    if (h_.explicit_time) ws.fhat[h_.dim] = 1.0f;  // f̂_aug
    float V;
    lyapunov(ws, &V, /*grad=*/true);
    float dot = 0, nrm = 0;
    for (std::uint32_t i = 0; i < n; ++i) {
      dot += ws.grad[i] * ws.fhat[i];
      nrm += ws.grad[i] * ws.grad[i];
    }
    ws.grad_norm2 = nrm;
    const float c = std::max(0.0f, dot + static_cast<float>(h_.alpha) * V);
    const float k = c > 0 ? c / nrm : 0.0f;
    for (std::uint32_t i = 0; i < h_.dim; ++i) xdot[i] = ws.fhat[i] - ws.grad[i] * k;
    return V;
  }

  /// V(z) in model coordinates (sNODE only; 0 for NODE).
  double lyapunov_model(const double* x, double t, Workspace& ws) const {
    if (h_.kind != SkillKind::SNode) return 0;
    load_input(x, t, ws);
    float V;
    lyapunov(ws, &V, false);
    return V;
  }

  /// Raw coordinates -> model coordinates (position part; the rest copied).
  void to_model(const double* raw, double* model) const {
    for (std::uint32_t i = 0; i < h_.dim; ++i)
      model[i] = i < h_.position_dim ? (raw[i] - h_.mean[i]) / h_.std[i] - h_.goal[i] : raw[i];
  }
  void to_raw(const double* model, double* raw) const {
    for (std::uint32_t i = 0; i < h_.dim; ++i)
      raw[i] = i < h_.position_dim ? (model[i] + h_.goal[i]) * h_.std[i] + h_.mean[i] : model[i];
  }

  /// ẋ in raw units at raw state x (position part scaled back by std). No allocation.
  void velocity(const double* x_raw, double t, double* xdot_raw, Workspace& ws) const {
    double* m = ws.xm.data();
    to_model(x_raw, m);
    velocity_model(m, t, xdot_raw, ws);
    for (std::uint32_t i = 0; i < h_.position_dim; ++i) xdot_raw[i] *= h_.std[i];
  }

  /// One explicit Euler step x ← x + dt·ẋ(x, t) in raw units.
  void step_euler(double* x_raw, double t, double dt, Workspace& ws) const {
    double* v = ws.xv.data();
    velocity(x_raw, t, v, ws);
    for (std::uint32_t i = 0; i < h_.dim; ++i) x_raw[i] += dt * v[i];
  }

  /// One control period dt of Lyapunov-certified Euler (autonomous sNODE skills only; the same
  /// rule as models::certified_euler, docs/lfd.md §2.2), in raw units: sub-steps x -> x + s f(x)
  /// are accepted iff V(x') <= V(x) e^{−κ α s}, else halved down to dt / 2^max_halvings, where a
  /// still-rejected candidate y is pulled radially towards the goal to λy with V(λy) <= c =
  /// V(x) e^{−κ α s} (λ = √(c/V(y)) where that passes, else c/V(y), certified by convexity, refined
  /// by 8 bisections). So V(x) after the call is <= V(x) before · e^{−κ α dt} (up to float32
  /// rounding): the skill reaches its goal from every start at any control period, at a bounded cost
  /// (<= 2^max_halvings sub-steps, each one f and one V, plus 1–9 V per projection). No allocation;
  /// SkillError for a clock-input or NODE skill.
  CertifiedStep step_certified(double* x_raw, double dt, Workspace& ws, double kappa = 0.5, int max_halvings = 3) const {
    if (h_.kind != SkillKind::SNode || h_.explicit_time)
      throw SkillError("step_certified needs an autonomous sNODE skill (no clock input): only there is V a Lyapunov "
                       "function of the integrated system");
    CertifiedStep rep;
    const std::uint32_t d = h_.dim;
    double* m = ws.xm.data();
    double* v = ws.xv.data();
    double* c = ws.xc.data();
    to_model(x_raw, m);
    double V = lyapunov_model(m, 0, ws);
    const double min_step = std::ldexp(dt, -max_halvings), rate = kappa * h_.alpha;
    double remaining = dt, s = dt;
    while (remaining > 1e-12 * dt) {
      velocity_model(m, 0, v, ws);
      for (;;) {
        s = std::min(std::max(s, min_step), remaining);
        for (std::uint32_t i = 0; i < d; ++i) c[i] = m[i] + s * v[i];
        const double Vc = lyapunov_model(c, 0, ws), bound = V * std::exp(-rate * s);
        const bool certified = V <= 0 || Vc <= bound, finite = std::isfinite(Vc);
        if (!certified && finite && s > min_step * (1 + 1e-9)) {  // not certified yet: halve
          s /= 2;
          ++rep.rejections;
          continue;
        }
        if (V <= 0) {
          // At the goal: an Euler step of f̂(goal) ≠ 0 would leave it and raise V; it stays.
        } else if (!finite && V <= 1e-200) {
          // At the goal the projected field is 0/0 (∇V = 0; within V ≈ 1e-300 ‖∇V‖² underflows):
          // the state is put exactly on the goal, which V(0) = 0 certifies (the same 1e-200 as
          // models::certified_euler).
          std::fill(m, m + d, 0.0);
          V = 0;
        } else if (certified || !finite) {
          rep.finite = rep.finite && finite;
          std::copy(c, c + d, m);
          V = Vc;
        } else {
          // Radial projection (V convex, V(0) = 0): μ1 = c / V(y) is certified by convexity,
          // μ0 = √(c / V(y)) wherever V is quadratic along the ray; probe μ0, else bisect [μ1, μ0].
          const double ratio = bound / Vc, mu1 = ratio * (1 - 1e-6), mu0 = std::min(1.0, std::sqrt(ratio) * (1 - 1e-6));
          auto probe = [&](double mu) {
            for (std::uint32_t i = 0; i < d; ++i) m[i] = mu * c[i];
            return lyapunov_model(m, 0, ws) <= bound;
          };
          double lo = mu0, hi = mu0;
          if (!probe(mu0)) {
            lo = mu1;
            for (int it = 0; it < 8; ++it) {
              const double mid = 0.5 * (lo + hi);
              (probe(mid) ? lo : hi) = mid;
            }
          }
          for (std::uint32_t i = 0; i < d; ++i) m[i] = lo * c[i];
          V = lyapunov_model(m, 0, ws);
          ++rep.projections;
        }
        ++rep.substeps;
        break;
      }
      remaining -= s;
      s *= 2;
    }
    to_raw(m, x_raw);
    return rep;
  }

  /// One control period dt of the discrete-time sNODE map Φ (models/snode_discrete.h, docs/lfd.md
  /// §7), in raw units, for autonomous sNODE skills (SkillError otherwise):
  ///   y = x + dt f(x),  c = V(x) e^{−κ α dt},  Φ(x) = y if V(y) <= c, else λ y with λ = (c/V(y))(1 − 1e-6)
  /// (V convex with V(0) = 0: V(λy) <= λ V(y) < c). The pulled state is re-checked with this
  /// runtime's own float32 V; where rounding broke V(λy) <= c, λ shrinks once more by the same
  /// rule, and were that still broken the state is put on the goal (V(0) = 0). A state with V(x) = 0,
  /// ‖∇V(x)‖² <= 6.7e-16 (float32's smallest normal^0.4, as the libtorch map in float32), or
  /// V(x) <= 1e-200 and a non-finite candidate, is put on the goal. So V(x) after the call is
  /// <= e^{−κ α dt} V(x) before, as this runtime computes V, for every state and any weights; a
  /// non-finite candidate elsewhere is kept (not certified). Cost: one f (which computes V(x)) and
  /// one V, plus one V when projected. No allocation. Returns whether the step was pulled.
  bool step_discrete(double* x_raw, double dt, Workspace& ws, double kappa) const {
    if (h_.kind != SkillKind::SNode || h_.explicit_time)
      throw SkillError("step_discrete needs an autonomous sNODE skill (no clock input): only there is V a Lyapunov "
                       "function of the executed map");
    const std::uint32_t d = h_.dim;
    double* m = ws.xm.data();
    double* v = ws.xv.data();
    double* y = ws.xc.data();
    to_model(x_raw, m);
    const double V = field_model(m, 0, v, ws);
    for (std::uint32_t i = 0; i < d; ++i) y[i] = m[i] + dt * v[i];
    const double c = V * std::exp(-kappa * h_.alpha * dt), Vy = lyapunov_model(y, 0, ws);
    bool projected = false;
    const double goal_grad_norm2 = 6.7311337e-16;  // float32 min normal^0.4 (F::discrete_goal_grad_norm2)
    if (V <= 0 || ws.grad_norm2 <= goal_grad_norm2 || (V <= 1e-200 && !std::isfinite(Vy))) {
      std::fill(m, m + d, 0.0);  // the goal rule (as models::snode_discrete_step)
    } else if (Vy <= c || !std::isfinite(Vy)) {
      std::copy(y, y + d, m);
    } else {
      projected = true;
      double lambda = c / Vy * (1 - 1e-6);
      for (int attempt = 0;; ++attempt) {
        for (std::uint32_t i = 0; i < d; ++i) m[i] = lambda * y[i];
        const double Vm = lyapunov_model(m, 0, ws);
        if (Vm <= c) break;
        if (attempt == 1) {
          std::fill(m, m + d, 0.0);
          break;
        }
        lambda *= c / Vm * (1 - 1e-6);
      }
    }
    to_raw(m, x_raw);
    return projected;
  }

  /// step_discrete() with the period and κ the skill was trained with (SkillError unless the file
  /// marks a discrete-step skill).
  bool step_discrete(double* x_raw, Workspace& ws) const {
    if (!h_.discrete_step) throw SkillError("step_discrete(x, ws): this skill was not trained as a discrete-step map; give dt and kappa");
    return step_discrete(x_raw, h_.period, ws, h_.kappa);
  }

  /// `steps` Euler steps from (x0, t0) with step dt; out [steps+1, dim] row-major (raw units).
  void rollout(const double* x0, double t0, double dt, std::size_t steps, double* out, Workspace& ws) const {
    std::copy(x0, x0 + h_.dim, out);
    for (std::size_t k = 0; k < steps; ++k) {
      std::copy(out + k * h_.dim, out + (k + 1) * h_.dim, out + (k + 1) * h_.dim);
      step_euler(out + (k + 1) * h_.dim, t0 + static_cast<double>(k) * dt, dt, ws);
    }
  }

 private:
  friend class Workspace;
  struct Reader {
    const unsigned char* data;
    std::size_t size, pos;
    const std::string& source;
    void bytes(void* out, std::size_t n) {
      // The last 8 bytes of a file are its checksum: a field may not reach into them.
      if (size < 8 || n > size - 8 || pos > size - 8 - n) throw SkillError(source + ": truncated skill file");
      std::memcpy(out, data + pos, n);
      pos += n;
    }
    std::uint32_t u32() { std::uint32_t v; bytes(&v, 4); return v; }
    std::uint64_t u64() { std::uint64_t v; bytes(&v, 8); return v; }
    double f64() { double v; bytes(&v, 8); return v; }
  };

  std::uint64_t expected_weights() const {
    const std::uint64_t n = input_dim();
    std::uint64_t total = 0, in = n;
    for (auto w : h_.hidden) {
      total += std::uint64_t(w) * in + w;
      in = w;
    }
    total += in * h_.dim + h_.dim;
    if (h_.kind == SkillKind::SNode) {
      const std::uint64_t hp = h_.icnn_hidden;
      total += hp * n * 2 + n + hp * hp + hp + hp + hp + 1;
    }
    return total;
  }

  void prepare() {
    // Offsets of the tensors in layout order, and the constant parts of V: softplus(U) and g(0).
    std::size_t off = 0, in = input_dim();
    for (auto w : h_.hidden) {
      layer_w_.push_back(off);
      off += std::size_t(w) * in;
      layer_b_.push_back(off);
      off += w;
      in = w;
    }
    layer_w_.push_back(off);
    off += in * h_.dim;
    layer_b_.push_back(off);
    off += h_.dim;
    if (h_.kind == SkillKind::SNode) {
      const std::size_t hp = h_.icnn_hidden, n = input_dim();
      W0_ = off; off += hp * n;
      W1_ = off; off += hp * n;
      W2_ = off; off += n;
      const std::size_t U0 = off; off += hp * hp;
      const std::size_t U1 = off; off += hp;
      b0_ = off; off += hp;
      b1_ = off; off += hp;
      b2_ = off; off += 1;
      sp_u0_.resize(hp * hp);
      for (std::size_t i = 0; i < hp * hp; ++i) sp_u0_[i] = softplus(w_[U0 + i]) / static_cast<float>(hp);
      sp_u1_.resize(hp);
      for (std::size_t i = 0; i < hp; ++i) sp_u1_[i] = softplus(w_[U1 + i]);
    }
    set_isa(best_isa());  // packs the weights for the kernels and computes g(0)
  }

  static float softplus(float u) { return u > 20.0f ? u : std::log1p(std::exp(u)); }
  static float rehu(float s, float d) { return s <= 0 ? 0.0f : (s < d ? s * s / (2 * d) : s - d / 2); }
  static float rehu_d(float s, float d) { return s <= 0 ? 0.0f : (s < d ? s / d : 1.0f); }

  /// y = W x + b, then ReLU where `relu`, in the kernels of isa_: W, b (nullptr: none) as stored
  /// (portable), pk the same matrix packed by set_isa (wide variants).
  void linear(const float* W, const float* b, const detail::PanelOffsets& pk, const float* x, std::size_t out,
              std::size_t in, float* y, bool relu) const {
#if STABLELEARN_RUNTIME_X86_DISPATCH
    if (isa_ == Isa::Avx512) return detail::matvec_avx512(&pk_[pk.w], &pk_[pk.b], x, out, in, y, relu);
    if (isa_ == Isa::Avx2) return detail::matvec_avx2(&pk_[pk.w], &pk_[pk.b], x, out, in, y, relu);
#endif
    detail::matvec_portable(W, b, x, out, in, y);
    if (relu)
      for (std::size_t i = 0; i < out; ++i) y[i] = std::max(0.0f, y[i]);
  }

  void load_input(const double* x, double t, Workspace& ws) const {
    for (std::uint32_t i = 0; i < h_.dim; ++i) ws.z[i] = static_cast<float>(x[i]);
    if (h_.explicit_time) ws.z[h_.dim] = static_cast<float>(t);
  }

  // mlp, icnn and lyapunov are called from many methods: kept out of line, so that each TU that
  // includes this header compiles them once (the same speed; tests/runtime/no_torch_main.cpp
  // compiled in 3.2 s instead of 4.0–4.5 s here).
  /// f̂ (ReLU) or the NODE MLP (ELU) of ws.z into ws.fhat[0..dim).
  STABLELEARN_RUNTIME_NOINLINE void mlp(Workspace& ws, bool elu) const {
    const float* x = ws.z.data();
    std::size_t in = input_dim();
    float* bufs[2] = {ws.a.data(), ws.b.data()};
    const std::size_t L = h_.hidden.size();
    for (std::size_t l = 0; l < L; ++l) {
      float* y = bufs[l % 2];
      const std::size_t out = h_.hidden[l];
      linear(&w_[layer_w_[l]], &w_[layer_b_[l]], packed_layer(l), x, out, in, y, /*relu=*/!elu);
      if (elu)
        for (std::size_t i = 0; i < out; ++i) y[i] = y[i] > 0 ? y[i] : static_cast<float>(h_.elu_alpha) * std::expm1(y[i]);
      x = y;
      in = out;
    }
    linear(&w_[layer_w_[L]], &w_[layer_b_[L]], packed_layer(L), x, h_.dim, in, ws.fhat.data(), false);
  }

  /// g(z) for ws.z, leaving the pre-activations in ws.a1/ws.a2.
  STABLELEARN_RUNTIME_NOINLINE float icnn(Workspace& ws) const {
    const std::size_t hp = h_.icnn_hidden, n = input_dim();
    const float r = static_cast<float>(h_.rehu);
    linear(&w_[W0_], &w_[b0_], pk_w0_, ws.z.data(), hp, n, ws.a1.data(), false);
    for (std::size_t i = 0; i < hp; ++i) ws.z1[i] = rehu(ws.a1[i], r);
    linear(&w_[W1_], &w_[b1_], pk_w1_, ws.z.data(), hp, n, ws.a2.data(), false);
    linear(sp_u0_.data(), nullptr, pk_u0_, ws.z1.data(), hp, hp, ws.t1.data(), false);
    for (std::size_t i = 0; i < hp; ++i) {
      ws.a2[i] += ws.t1[i];
      ws.z2[i] = rehu(ws.a2[i], r);
    }
    float g = w_[b2_];
    for (std::size_t j = 0; j < n; ++j) g += w_[W2_ + j] * ws.z[j];
    for (std::size_t i = 0; i < hp; ++i) g += sp_u1_[i] * ws.z2[i];
    return g;
  }

  /// t = Ũ0ᵀ s (hp), in the kernels of isa_.
  void rows_combination(const float* s, float* t) const {
    const std::size_t hp = h_.icnn_hidden;
#if STABLELEARN_RUNTIME_X86_DISPATCH
    if (isa_ == Isa::Avx512) return detail::rows_combination_avx512(&pk_[pk_u0_rows_], detail::padded_cols(hp), s, hp, hp, t);
    if (isa_ == Isa::Avx2) return detail::rows_combination_avx2(&pk_[pk_u0_rows_], detail::padded_cols(hp), s, hp, hp, t);
#endif
    detail::rows_combination_portable(sp_u0_.data(), hp, s, hp, hp, t);
  }

  const detail::PanelOffsets& packed_layer(std::size_t layer) const {
    static const detail::PanelOffsets none;
    return layer < pk_layers_.size() ? pk_layers_[layer] : none;
  }

  STABLELEARN_RUNTIME_NOINLINE void lyapunov(Workspace& ws, float* V, bool grad) const {
    const std::size_t hp = h_.icnn_hidden, n = input_dim();
    const float r = static_cast<float>(h_.rehu), eps = static_cast<float>(h_.eps), d = static_cast<float>(h_.psd_rehu);
    const float s = icnn(ws) - g0_;
    float zz = 0;
    for (std::size_t j = 0; j < n; ++j) zz += ws.z[j] * ws.z[j];
    *V = rehu(s, d) + eps * zz;
    if (!grad) return;
    // s2 = σ'(a2) ⊙ softplus(U1);  t1 = σ'(a1) ⊙ (Ũ0ᵀ s2)
    for (std::size_t i = 0; i < hp; ++i) ws.s2[i] = rehu_d(ws.a2[i], r) * sp_u1_[i];
    rows_combination(ws.s2.data(), ws.t1.data());
    for (std::size_t j = 0; j < hp; ++j) ws.t1[j] *= rehu_d(ws.a1[j], r);
    // ∇g[k] = W2[k] + Σ_i (W1[i,k] s2[i] + W0[i,k] t1[i]), summed in order of i; one register
    // accumulator per k (independent chains) rather than a chain through ws.grad in memory.
    const float* w1 = &w_[W1_];
    const float* w0 = &w_[W0_];
    for (std::size_t k = 0; k < n; ++k) {
      float acc = w_[W2_ + k];
      for (std::size_t i = 0; i < hp; ++i) acc += w1[i * n + k] * ws.s2[i] + w0[i * n + k] * ws.t1[i];
      ws.grad[k] = acc;
    }
    const float scale = rehu_d(s, d);
    for (std::size_t k = 0; k < n; ++k) ws.grad[k] = scale * ws.grad[k] + 2 * eps * ws.z[k];
  }

  Header h_;
  std::vector<float> w_, sp_u0_, sp_u1_;
  std::vector<std::size_t> layer_w_, layer_b_;
  std::size_t W0_ = 0, W1_ = 0, W2_ = 0, b0_ = 0, b1_ = 0, b2_ = 0;
  float g0_ = 0;
  // set_isa(): the weights packed for the wide kernels (empty for Isa::Portable).
  Isa isa_ = Isa::Portable;
  detail::AlignedFloats pk_;
  std::vector<detail::PanelOffsets> pk_layers_;
  detail::PanelOffsets pk_w0_, pk_w1_, pk_u0_;
  std::size_t pk_u0_rows_ = 0;
};

inline Workspace::Workspace(const Skill& skill) {
  std::size_t width = skill.input_dim() + 1;
  for (auto w : skill.header().hidden) width = std::max<std::size_t>(width, w);
  const std::size_t hp = std::max<std::size_t>(1, skill.header().icnn_hidden);
  z.assign(skill.input_dim() + 1, 0.0f);
  a.assign(width, 0.0f);
  b.assign(width, 0.0f);
  fhat.assign(skill.input_dim() + 1, 0.0f);
  grad.assign(skill.input_dim() + 1, 0.0f);
  a1.assign(hp, 0.0f);
  z1.assign(hp, 0.0f);
  a2.assign(hp, 0.0f);
  z2.assign(hp, 0.0f);
  s2.assign(hp, 0.0f);
  t1.assign(hp, 0.0f);
  xm.assign(skill.dim(), 0.0);
  xv.assign(skill.dim(), 0.0);
  xc.assign(skill.dim(), 0.0);
}

}  // namespace stablelearn::runtime
