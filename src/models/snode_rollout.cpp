// Fused Euler rollout of the sNODE with a hand-written backward (see the header).
//
// Notation (one sample; models/snode.h has the forward definitions): z = [x, t] ∈ Rⁿ, input of f̂
// ξ = [cond, z]; f̂ layers H_l = relu(W_l H_{l−1} + b_l) (H_{−1} = ξ), f̂ = W_L H_{L−1} + b_L;
// ICNN a1 = W0 z + b0, z1 = σ(a1), a2 = W1 z + b1 + Ũ0 z1 (Ũ0 = softplus(U0)/hp), z2 = σ(a2),
// g = W2·z + b2 + s1·z2 (s1 = softplus(U1)); s = g − g(0), V = ρ(s) + ε‖z‖²;
// q2 = σ'(a2) ⊙ s1, m = Ũ0ᵀ q2, q1 = σ'(a1) ⊙ m, G = W2 + W1ᵀ q2 + W0ᵀ q1, ∇V = ρ'(s) G + 2εz;
// f̂a = [f̂, 1], u = ∇V·f̂a + αV, N = ‖∇V‖², κ = relu(u)/N, f = f̂a − κ ∇V.
//
// Reverse mode for one step, given ȳ = h_k λ_{k+1} (zero in the clock component):
//   u > 0:  c̄ = −∇V·ȳ, ū = c̄/N, N̄ = −c̄ κ/N,
//           ∇V̄ = −κ ȳ + 2N̄ ∇V + ū f̂a,   f̂ā = ȳ + ū ∇V,   V̄ = α ū      (u ≤ 0: ∇V̄ = 0, f̂ā = ȳ, V̄ = 0)
//   z̄ = 2ε(V̄ z + ∇V̄),  s̄ = V̄ ρ'(s) + (∇V̄·G) ρ''(s),  Ḡ = ρ'(s) ∇V̄
//   q̄2 = W1 Ḡ + Ũ0 m̄,  q̄1 = W0 Ḡ,  m̄ = q̄1 ⊙ σ'(a1)
//   ā1 = q̄1 ⊙ m ⊙ σ''(a1) + (Ũ0ᵀ ā2) ⊙ σ'(a1),  ā2 = q̄2 ⊙ s1 ⊙ σ''(a2) + s̄ s1 ⊙ σ'(a2)
//   z̄ += s̄ W2 + W1ᵀ ā2 + W0ᵀ ā1 + (f̂ backward of f̂ā[0:d])[z part]
// with σ'' = 1/r on (0, r), ρ'' = 1/δ on (0, δ), zero elsewhere. The weight gradients are sums
// over all rows (steps × samples) of outer products, done at the end as matrix products:
//   W̄_l = D_lᵀ H_{l−1},  W̄0 = Ā1ᵀ Z + Q1ᵀ Ḡ,  W̄1 = Ā2ᵀ Z + Q2ᵀ Ḡ,  W̄2 = s̄ᵀ Z + ΣḠ,
//   Ũ̄0 = Ā2ᵀ Z1 + Q2ᵀ M̄,  s̄1 = Σ (q̄2 ⊙ σ'(a2) + s̄ z2),
// and g(0) (the same for every row) receives −Σ s̄ once.
#include "stablelearn/models/snode_rollout.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include "stablelearn/core/error.h"
#include "stablelearn/models/few_rows_gemm.h"

namespace stablelearn::models::functional {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Y[b, 0:cols] += Σ_r X[b, r] · M[r, 0:cols] for b < B (row-major; leading dimensions ldy, ldx,
// cols): models/few_rows_gemm.h, which streams M once for all B rows and skips zero coefficients
// (ReLU / ReHU masks; float32 takes the CPU's widest variant). A large product (h = 1000 layers:
// B·rows·cols of millions) is split into column blocks (multiples of 32 columns) shared by the
// intra-op threads. Every Y[b, j] still receives the same products in the same order of r, and a
// variant's full blocks and its masked last block round alike, so the result does not depend on the
// thread count (tested bit for bit).
constexpr std::int64_t kParallelWork = std::int64_t{1} << 18;
constexpr std::int64_t kColumnAlign = 32;
template <typename S>
void xtm_acc(S* Y, std::int64_t ldy, const S* X, std::int64_t ldx, const S* M, std::int64_t B, std::int64_t rows,
             std::int64_t cols) {
  const auto threads = static_cast<std::int64_t>(at::get_num_threads());
  if (threads <= 1 || B * rows * cols < kParallelWork || cols < 2 * kColumnAlign || at::in_parallel_region()) {
    kernels::few_rows_gemm_acc(Y, ldy, X, ldx, M, cols, B, rows, cols);
    return;
  }
  const auto per = std::max(kColumnAlign, ((cols + threads - 1) / threads + kColumnAlign - 1) / kColumnAlign * kColumnAlign);
  const auto blocks = (cols + per - 1) / per;
  at::parallel_for(0, blocks, 1, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t k = lo; k < hi; ++k) {
      const auto c0 = k * per, c1 = std::min(cols, c0 + per);
      kernels::few_rows_gemm_acc(Y + c0, ldy, X, ldx, M + c0, cols, B, rows, c1 - c0);
    }
  });
}

// ReHU_r and its derivatives (models/snode.h); softplus as torch (β = 1, linear above 20).
template <typename S> inline S rehu(S a, S r) { return a <= 0 ? S(0) : (a < r ? a * a / (2 * r) : a - r / 2); }
template <typename S> inline S rehu_d(S a, S r) { return a <= 0 ? S(0) : (a < r ? a / r : S(1)); }
template <typename S> inline S rehu_dd(S a, S r) { return (a > 0 && a < r) ? S(1) / r : S(0); }
template <typename S> inline S softplus(S u) { return u > S(20) ? u : std::log1p(std::exp(u)); }
template <typename S> inline S softplus_d(S u) {
  if (u > S(20)) return S(1);
  const S e = std::exp(u);
  return e / (e + S(1));
}

struct Dims {
  std::int64_t B = 0, T = 0, d = 0, n = 0, c = 0, h = 0, L = 0, hp = 0;
  bool time = true;
  double alpha = 0, eps = 0, r = 0, delta = 0;
  std::int64_t nin() const { return c + n; }
  std::int64_t rows() const { return (T - 1) * B; }
  std::int64_t in(std::int64_t l) const { return l == 0 ? nin() : h; }
  std::int64_t out(std::int64_t l) const { return l == L ? d : h; }
};

Dims make_dims(const SNodeOptions& o, std::int64_t B, std::int64_t T) {
  Dims D;
  D.B = B;
  D.T = T;
  D.d = o.dim();
  D.n = o.input_dim();
  D.c = o.condition_dim();
  D.h = o.hidden();
  D.L = o.fhat_layers();
  D.hp = o.icnn_hidden();
  D.time = o.explicit_time();
  D.alpha = o.alpha();
  D.eps = o.eps();
  D.r = o.rehu();
  D.delta = o.psd_rehu();
  return D;
}

/// Offsets of the forward tape (rows = (T−1)·B; one row per step and sample).
struct Tape {
  std::int64_t xin, a1, a2, z1, z2, q1, q2, m, fa, G, gV, sc;  // sc: s, V, u, N per row
  std::vector<std::int64_t> H;                                  // post-ReLU f̂ layers 0 .. L−1
  std::int64_t size = 0;
  explicit Tape(const Dims& D) {
    const auto K = D.rows();
    auto take = [&](std::int64_t width) {
      const auto at = size;
      size += K * width;
      return at;
    };
    xin = take(D.nin());
    for (std::int64_t l = 0; l < D.L; ++l) H.push_back(take(D.h));
    a1 = take(D.hp);
    a2 = take(D.hp);
    z1 = take(D.hp);
    z2 = take(D.hp);
    q1 = take(D.hp);
    q2 = take(D.hp);
    m = take(D.hp);
    fa = take(D.n);
    G = take(D.n);
    gV = take(D.n);
    sc = take(4);
  }
};

/// The weights of one call as pointers into the flat vector, plus the transposed and softplus'd
/// copies the kernels read row by row.
template <typename S>
struct Weights {
  std::vector<const S*> W, b;        // f̂ layers 0 .. L: W_l [out_l, in_l], b_l [out_l]
  std::vector<std::vector<S>> WT;    // W_lᵀ [in_l, out_l] (forward only; the backward reads W_l)
  const S *W0, *W1, *W2, *U0, *U1, *b0, *b1, *b2;
  std::vector<S> W0T, W1T, U0s, U0sT, s1;  // W0ᵀ, W1ᵀ [n, hp]; Ũ0, Ũ0ᵀ [hp, hp]; softplus(U1) [hp]
  S g0 = 0;                                // g(0)

  /// `fhat_transposes`: build WT (the forward pass needs it, the backward does not).
  Weights(const S* flat, const std::vector<std::int64_t>& off, const Dims& D, bool fhat_transposes) {
    for (std::int64_t l = 0; l <= D.L; ++l) {
      W.push_back(flat + off[2 * l]);
      b.push_back(flat + off[2 * l + 1]);
      if (fhat_transposes) WT.push_back(transpose(W.back(), D.out(l), D.in(l)));
    }
    const auto base = static_cast<std::size_t>(2 * D.L + 2);
    W0 = flat + off[base];
    W1 = flat + off[base + 1];
    W2 = flat + off[base + 2];
    U0 = flat + off[base + 3];
    U1 = flat + off[base + 4];
    b0 = flat + off[base + 5];
    b1 = flat + off[base + 6];
    b2 = flat + off[base + 7];
    W0T = transpose(W0, D.hp, D.n);
    W1T = transpose(W1, D.hp, D.n);
    U0s.resize(static_cast<std::size_t>(D.hp * D.hp));
    const S hp = static_cast<S>(D.hp);
    for (std::int64_t i = 0; i < D.hp * D.hp; ++i) U0s[i] = softplus(U0[i]) / hp;
    U0sT = transpose(U0s.data(), D.hp, D.hp);
    s1.resize(static_cast<std::size_t>(D.hp));
    for (std::int64_t i = 0; i < D.hp; ++i) s1[i] = softplus(U1[i]);
    // g(0): a1 = b0, a2 = b1 + Ũ0 σ(b0), g = b2 + s1·σ(a2).
    const S r = static_cast<S>(D.r);
    std::vector<S> z1(D.hp), a2(b1, b1 + D.hp);
    for (std::int64_t i = 0; i < D.hp; ++i) z1[i] = rehu(b0[i], r);
    xtm_acc(a2.data(), D.hp, z1.data(), D.hp, U0sT.data(), 1, D.hp, D.hp);
    g0 = b2[0];
    for (std::int64_t i = 0; i < D.hp; ++i) g0 += s1[i] * rehu(a2[i], r);
  }

  static std::vector<S> transpose(const S* A, std::int64_t rows, std::int64_t cols) {
    std::vector<S> out(static_cast<std::size_t>(rows * cols));
    for (std::int64_t i = 0; i < rows; ++i)
      for (std::int64_t j = 0; j < cols; ++j) out[j * rows + i] = A[i * cols + j];
    return out;
  }
};

/// Rows [0, B) of step k are at row k·B of every tape segment.
template <typename S>
void forward_rollout(const Dims& D, const Weights<S>& w, const S* cond, const std::vector<double>& times, const S* x0,
                     S* out, S* tape_data) {
  const Tape tp(D);
  const auto B = D.B, T = D.T, d = D.d, n = D.n, c = D.c, h = D.h, hp = D.hp, nin = D.nin();
  const S r = static_cast<S>(D.r), delta = static_cast<S>(D.delta), eps = static_cast<S>(D.eps),
          alpha = static_cast<S>(D.alpha);
  std::vector<S> x(x0, x0 + B * d), fh(static_cast<std::size_t>(B * d));
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t j = 0; j < d; ++j) out[(b * T) * d + j] = x[b * d + j];
  for (std::int64_t k = 0; k + 1 < T; ++k) {
    const auto row0 = k * B;
    auto seg = [&](std::int64_t off, std::int64_t width) { return tape_data + off + row0 * width; };
    S* xin = seg(tp.xin, nin);
    const S tk = static_cast<S>(times[k]);
    for (std::int64_t b = 0; b < B; ++b) {
      S* xi = xin + b * nin;
      for (std::int64_t j = 0; j < c; ++j) xi[j] = cond[j];
      for (std::int64_t j = 0; j < d; ++j) xi[c + j] = x[b * d + j];
      if (D.time) xi[c + d] = tk;
    }
    // f̂
    const S* prev = xin;
    std::int64_t prev_w = nin;
    for (std::int64_t l = 0; l <= D.L; ++l) {
      const auto ow = D.out(l);
      S* y = l < D.L ? seg(tp.H[l], h) : fh.data();
      for (std::int64_t bb = 0; bb < B; ++bb)
        for (std::int64_t j = 0; j < ow; ++j) y[bb * ow + j] = w.b[l][j];
      xtm_acc(y, ow, prev, prev_w, w.WT[l].data(), B, D.in(l), ow);
      if (l < D.L)
        for (std::int64_t j = 0; j < B * ow; ++j) y[j] = y[j] > 0 ? y[j] : S(0);
      prev = y;
      prev_w = ow;
    }
    // ICNN
    S *a1 = seg(tp.a1, hp), *a2 = seg(tp.a2, hp), *z1 = seg(tp.z1, hp), *z2 = seg(tp.z2, hp);
    S *q1 = seg(tp.q1, hp), *q2 = seg(tp.q2, hp), *m = seg(tp.m, hp);
    S *fa = seg(tp.fa, n), *G = seg(tp.G, n), *gV = seg(tp.gV, n), *sc = seg(tp.sc, 4);
    const S* z = xin + c;
    for (std::int64_t b = 0; b < B; ++b)
      for (std::int64_t i = 0; i < hp; ++i) {
        a1[b * hp + i] = w.b0[i];
        a2[b * hp + i] = w.b1[i];
        m[b * hp + i] = 0;
      }
    xtm_acc(a1, hp, z, nin, w.W0T.data(), B, n, hp);
    for (std::int64_t j = 0; j < B * hp; ++j) z1[j] = rehu(a1[j], r);
    xtm_acc(a2, hp, z, nin, w.W1T.data(), B, n, hp);
    xtm_acc(a2, hp, z1, hp, w.U0sT.data(), B, hp, hp);
    for (std::int64_t j = 0; j < B * hp; ++j) {
      z2[j] = rehu(a2[j], r);
      q2[j] = rehu_d(a2[j], r) * w.s1[j % hp];
    }
    xtm_acc(m, hp, q2, hp, w.U0s.data(), B, hp, hp);
    for (std::int64_t j = 0; j < B * hp; ++j) q1[j] = rehu_d(a1[j], r) * m[j];
    for (std::int64_t b = 0; b < B; ++b)
      for (std::int64_t j = 0; j < n; ++j) G[b * n + j] = w.W2[j];
    xtm_acc(G, n, q2, hp, w.W1, B, hp, n);
    xtm_acc(G, n, q1, hp, w.W0, B, hp, n);
    const S hk = static_cast<S>(times[k + 1] - times[k]);
    for (std::int64_t b = 0; b < B; ++b) {
      const S* zb = z + b * nin;
      S g = w.b2[0], zz = 0;
      for (std::int64_t j = 0; j < n; ++j) {
        g += w.W2[j] * zb[j];
        zz += zb[j] * zb[j];
      }
      for (std::int64_t i = 0; i < hp; ++i) g += w.s1[i] * z2[b * hp + i];
      const S s = g - w.g0;
      const S V = rehu(s, delta) + eps * zz;
      const S rho_d = rehu_d(s, delta);
      S* gvb = gV + b * n;
      S* fab = fa + b * n;
      S u = alpha * V, N = 0;
      for (std::int64_t j = 0; j < n; ++j) {
        gvb[j] = rho_d * G[b * n + j] + 2 * eps * zb[j];
        fab[j] = j < d ? fh[b * d + j] : S(1);
        u += gvb[j] * fab[j];
        N += gvb[j] * gvb[j];
      }
      sc[b * 4 + 0] = s;
      sc[b * 4 + 1] = V;
      sc[b * 4 + 2] = u;
      sc[b * 4 + 3] = N;
      const S kappa = (u > 0 ? u : S(0)) / N;
      for (std::int64_t j = 0; j < d; ++j) {
        x[b * d + j] += hk * (fab[j] - kappa * gvb[j]);
        out[(b * T + k + 1) * d + j] = x[b * d + j];
      }
    }
  }
}

struct Grads {
  torch::Tensor flat, x0, cond;
};

template <typename S>
Grads backward_rollout(const Dims& D, const Weights<S>& w, const std::vector<std::int64_t>& off, std::int64_t P,
                       const std::vector<double>& times, const torch::Tensor& tape_t, const torch::Tensor& gout_t) {
  const Tape tp(D);
  const auto B = D.B, T = D.T, d = D.d, n = D.n, c = D.c, h = D.h, hp = D.hp, nin = D.nin(), K = D.rows();
  const S r = static_cast<S>(D.r), delta = static_cast<S>(D.delta), eps = static_cast<S>(D.eps),
          alpha = static_cast<S>(D.alpha);
  const auto opts = tape_t.options();
  const S* tape = tape_t.data_ptr<S>();
  const S* gout = gout_t.data_ptr<S>();  // [B, T, d]
  // Row deltas for the final products: D_l (f̂ pre-activations), ā1, ā2, m̄, Ḡ, s̄.
  std::vector<torch::Tensor> Dl;
  for (std::int64_t l = 0; l <= D.L; ++l) Dl.push_back(torch::zeros({K, D.out(l)}, opts));
  auto A1b = torch::zeros({K, hp}, opts), A2b = torch::zeros({K, hp}, opts), Mb = torch::zeros({K, hp}, opts);
  auto Gb = torch::zeros({K, n}, opts), Sb = torch::zeros({K}, opts);
  std::vector<S> s1bar(static_cast<std::size_t>(hp), S(0)), cond_bar(static_cast<std::size_t>(c), S(0));
  std::vector<S> lam(static_cast<std::size_t>(B * d)), zbar(static_cast<std::size_t>(B * n)),
      q1b(static_cast<std::size_t>(B * hp)), q2b(static_cast<std::size_t>(B * hp)), z1b(static_cast<std::size_t>(B * hp)),
      xinb(static_cast<std::size_t>(B * nin));
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t j = 0; j < d; ++j) lam[b * d + j] = gout[(b * T + T - 1) * d + j];

  for (std::int64_t k = T - 2; k >= 0; --k) {
    const auto row0 = k * B;
    auto seg = [&](std::int64_t offset, std::int64_t width) { return tape + offset + row0 * width; };
    const S *xin = seg(tp.xin, nin), *a1 = seg(tp.a1, hp), *a2 = seg(tp.a2, hp), *z2 = seg(tp.z2, hp);
    const S *m = seg(tp.m, hp), *fa = seg(tp.fa, n), *G = seg(tp.G, n), *gV = seg(tp.gV, n), *sc = seg(tp.sc, 4);
    const S* z = xin + c;
    S* a1b = A1b.data_ptr<S>() + row0 * hp;
    S* a2b = A2b.data_ptr<S>() + row0 * hp;
    S* mb = Mb.data_ptr<S>() + row0 * hp;
    S* gb = Gb.data_ptr<S>() + row0 * n;
    S* sb = Sb.data_ptr<S>() + row0;
    S* dL = Dl[D.L].data_ptr<S>() + row0 * d;
    const S hk = static_cast<S>(times[k + 1] - times[k]);
    // Projection, V and ∇V (per sample).
    for (std::int64_t b = 0; b < B; ++b) {
      const S *gvb = gV + b * n, *fab = fa + b * n, *Gr = G + b * n, *zb = z + b * nin;
      const S s = sc[b * 4 + 0], u = sc[b * 4 + 2], N = sc[b * 4 + 3];
      S* zb_bar = zbar.data() + b * n;
      S gVbar[64];  // n ≤ 64 is checked by the caller
      S Vbar = 0;
      for (std::int64_t j = 0; j < n; ++j) gVbar[j] = 0;
      for (std::int64_t j = 0; j < d; ++j) dL[b * d + j] = hk * lam[b * d + j];
      if (u > 0) {
        const S kappa = u / N;
        S cbar = 0;
        for (std::int64_t j = 0; j < d; ++j) cbar -= gvb[j] * hk * lam[b * d + j];
        const S ubar = cbar / N, Nbar = -cbar * kappa / N;
        for (std::int64_t j = 0; j < n; ++j) {
          const S ybar = j < d ? hk * lam[b * d + j] : S(0);
          gVbar[j] = -kappa * ybar + 2 * Nbar * gvb[j] + ubar * fab[j];
          if (j < d) dL[b * d + j] += ubar * gvb[j];
        }
        Vbar = alpha * ubar;
      }
      const S rho_d = rehu_d(s, delta);
      S rho_bar = 0;
      for (std::int64_t j = 0; j < n; ++j) {
        zb_bar[j] = 2 * eps * (Vbar * zb[j] + gVbar[j]);
        gb[b * n + j] = rho_d * gVbar[j];
        rho_bar += gVbar[j] * Gr[j];
      }
      sb[b] = Vbar * rho_d + rho_bar * rehu_dd(s, delta);
    }
    // ∇V's backward through the ICNN (batched over samples).
    std::fill(q1b.begin(), q1b.end(), S(0));
    std::fill(q2b.begin(), q2b.end(), S(0));
    std::fill(z1b.begin(), z1b.end(), S(0));
    xtm_acc(q2b.data(), hp, gb, n, w.W1T.data(), B, n, hp);
    xtm_acc(q1b.data(), hp, gb, n, w.W0T.data(), B, n, hp);
    for (std::int64_t j = 0; j < B * hp; ++j) {
      mb[j] = q1b[j] * rehu_d(a1[j], r);
      a1b[j] = q1b[j] * m[j] * rehu_dd(a1[j], r);
    }
    xtm_acc(q2b.data(), hp, mb, hp, w.U0sT.data(), B, hp, hp);
    for (std::int64_t b = 0; b < B; ++b) {
      const S sbar = sb[b];
      for (std::int64_t i = 0; i < hp; ++i) {
        const auto j = b * hp + i;
        const S sd = rehu_d(a2[j], r);
        s1bar[i] += q2b[j] * sd + sbar * z2[j];
        a2b[j] = q2b[j] * w.s1[i] * rehu_dd(a2[j], r) + sbar * w.s1[i] * sd;
      }
      for (std::int64_t j = 0; j < n; ++j) zbar[b * n + j] += sbar * w.W2[j];
    }
    xtm_acc(zbar.data(), n, a2b, hp, w.W1, B, hp, n);
    xtm_acc(z1b.data(), hp, a2b, hp, w.U0s.data(), B, hp, hp);
    for (std::int64_t j = 0; j < B * hp; ++j) a1b[j] += z1b[j] * rehu_d(a1[j], r);
    xtm_acc(zbar.data(), n, a1b, hp, w.W0, B, hp, n);
    // f̂'s backward: D_{l−1} = (D_l W_l) ⊙ [H_{l−1} > 0], then ξ̄ = D_0 W_0.
    for (std::int64_t l = D.L; l >= 1; --l) {
      S* dprev = Dl[l - 1].data_ptr<S>() + row0 * h;
      const S* Hprev = seg(tp.H[l - 1], h);
      xtm_acc(dprev, h, Dl[l].data_ptr<S>() + row0 * D.out(l), D.out(l), w.W[l], B, D.out(l), h);
      for (std::int64_t j = 0; j < B * h; ++j)
        if (!(Hprev[j] > 0)) dprev[j] = 0;
    }
    std::fill(xinb.begin(), xinb.end(), S(0));
    xtm_acc(xinb.data(), nin, Dl[0].data_ptr<S>() + row0 * h, h, w.W[0], B, h, nin);
    for (std::int64_t b = 0; b < B; ++b) {
      for (std::int64_t j = 0; j < c; ++j) cond_bar[j] += xinb[b * nin + j];
      for (std::int64_t j = 0; j < d; ++j)
        lam[b * d + j] += zbar[b * n + j] + xinb[b * nin + c + j] + gout[(b * T + k) * d + j];
    }
  }

  // Weight gradients: one product over all K rows per matrix.
  torch::NoGradGuard no_grad;
  auto view = [&](std::int64_t offset, std::int64_t width) { return tape_t.narrow(0, offset, K * width).view({K, width}); };
  const auto Xin = view(tp.xin, nin), Z = Xin.narrow(1, c, n);
  const auto Q1 = view(tp.q1, hp), Q2 = view(tp.q2, hp), Z1 = view(tp.z1, hp);
  auto flat_grad = torch::empty({P}, opts);
  auto put = [&](std::size_t entry, const torch::Tensor& g) {
    flat_grad.narrow(0, off[entry], g.numel()).copy_(g.reshape({-1}));
  };
  for (std::int64_t l = 0; l <= D.L; ++l) {
    const auto in = l == 0 ? Xin : view(tp.H[l - 1], h);
    put(static_cast<std::size_t>(2 * l), Dl[l].t().mm(in));
    put(static_cast<std::size_t>(2 * l + 1), Dl[l].sum(0));
  }
  const auto base = static_cast<std::size_t>(2 * D.L + 2);
  put(base + 0, torch::addmm(A1b.t().mm(Z), Q1.t(), Gb));
  put(base + 1, torch::addmm(A2b.t().mm(Z), Q2.t(), Gb));
  put(base + 2, Sb.unsqueeze(0).mm(Z) + Gb.sum(0));
  auto U0bar = torch::addmm(A2b.t().mm(Z1), Q2.t(), Mb);  // ∂/∂Ũ0 [hp, hp]
  auto b0bar = A1b.sum(0), b1bar = A2b.sum(0);
  S b2bar = Sb.sum().template item<S>();
  // g(0) receives −Σ s̄: a1⁰ = b0, z1⁰ = σ(b0), a2⁰ = b1 + Ũ0 z1⁰, z2⁰ = σ(a2⁰).
  {
    const S S0 = b2bar;
    std::vector<S> z10(hp), a20(w.b1, w.b1 + hp), a2b0(hp), z1b0(hp, S(0));
    for (std::int64_t i = 0; i < hp; ++i) z10[i] = rehu(w.b0[i], r);
    xtm_acc(a20.data(), hp, z10.data(), hp, w.U0sT.data(), 1, hp, hp);
    b2bar -= S0;
    S* b1p = b1bar.data_ptr<S>();
    for (std::int64_t i = 0; i < hp; ++i) {
      s1bar[i] -= S0 * rehu(a20[i], r);
      a2b0[i] = -S0 * w.s1[i] * rehu_d(a20[i], r);
      b1p[i] += a2b0[i];
    }
    S* u0p = U0bar.template data_ptr<S>();
    for (std::int64_t i = 0; i < hp; ++i)
      for (std::int64_t j = 0; j < hp; ++j) u0p[i * hp + j] += a2b0[i] * z10[j];
    xtm_acc(z1b0.data(), hp, a2b0.data(), hp, w.U0s.data(), 1, hp, hp);
    S* b0p = b0bar.data_ptr<S>();
    for (std::int64_t i = 0; i < hp; ++i) b0p[i] += z1b0[i] * rehu_d(w.b0[i], r);
  }
  {
    S* u0p = U0bar.template data_ptr<S>();
    const S hpS = static_cast<S>(hp);
    for (std::int64_t i = 0; i < hp * hp; ++i) u0p[i] = u0p[i] / hpS * softplus_d(w.U0[i]);
    auto U1bar = torch::empty({1, hp}, opts);
    S* u1p = U1bar.data_ptr<S>();
    for (std::int64_t i = 0; i < hp; ++i) u1p[i] = s1bar[i] * softplus_d(w.U1[i]);
    put(base + 3, U0bar);
    put(base + 4, U1bar);
  }
  put(base + 5, b0bar);
  put(base + 6, b1bar);
  flat_grad[off[base + 7]] = b2bar;
  Grads out;
  out.flat = flat_grad;
  out.x0 = torch::from_blob(lam.data(), {B, d}, opts).clone();
  if (c > 0) out.cond = torch::from_blob(cond_bar.data(), {c}, opts).clone();
  return out;
}

void check_inputs(const torch::Tensor& flat, const torch::Tensor& x0, const torch::Tensor& t, const SNodeOptions& o,
                  const torch::Tensor& cond) {
  o.validate();
  const auto P = snode_layout(o).numel();
  SL_CHECK(flat.defined() && flat.dim() == 1 && flat.size(0) == P, ShapeError,
           "snode_euler_rollout: flat weights must be [", P, "] (snode_layout), got ",
           flat.defined() ? shape_string(flat.sizes()) : std::string("undefined"));
  SL_CHECK(x0.defined() && x0.dim() == 2 && x0.size(1) == o.dim(), ShapeError, "snode_euler_rollout: x0 must be [B, ",
           o.dim(), "], got ", x0.defined() ? shape_string(x0.sizes()) : std::string("undefined"));
  SL_CHECK(t.defined() && t.dim() == 1 && t.size(0) >= 1, ShapeError,
           "snode_euler_rollout: t must be a non-empty 1-D tensor, got ",
           t.defined() ? shape_string(t.sizes()) : std::string("undefined"));
  SL_CHECK((o.condition_dim() > 0) == cond.defined(), ShapeError, "snode_euler_rollout: condition_dim is ",
           o.condition_dim(), " but a conditioning vector was ", cond.defined() ? "" : "not ", "given");
  SL_CHECK(!cond.defined() || cond.numel() == o.condition_dim(), ShapeError, "snode_euler_rollout: cond must hold ",
           o.condition_dim(), " values, got ", shape_string(cond.sizes()));
  SL_CHECK(snode_euler_rollout_supported(flat, x0, o, cond), ConfigError,
           "snode_euler_rollout: needs CPU float32/float64 tensors of one dtype, analytic ∇V, center_fhat off and a "
           "state of at most 64 components (d + clock), got flat ", flat.dtype(), " on ", flat.device(), ", x0 ", x0.dtype(), " on ",
           x0.device(), ", n = ", o.input_dim());
}

class RolloutFunction : public torch::autograd::Function<RolloutFunction> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& flat, const torch::Tensor& x0,
                               const torch::Tensor& t, at::TensorList conds, const SNodeOptions& o) {
    // The conditioning vector travels as a list of 0 or 1 tensors: an undefined tensor cannot be
    // an input of a custom autograd function.
    const auto cond = conds.empty() ? torch::Tensor() : conds[0];
    const auto wflat = flat.contiguous();
    const auto x = x0.contiguous();
    const auto cnd = cond.defined() ? cond.to(flat.dtype()).contiguous() : cond;
    auto times = times_of(t);
    const auto D = make_dims(o, x0.size(0), t.size(0));
    const Tape tp(D);
    auto out = torch::empty({D.B, D.T, D.d}, x.options());
    auto tape = torch::empty({tp.size}, x.options());
    const auto off = snode_layout(o).offsets();
    AT_DISPATCH_FLOATING_TYPES(flat.scalar_type(), "snode_euler_rollout", [&] {
      const Weights<scalar_t> w(wflat.data_ptr<scalar_t>(), off, D, /*fhat_transposes=*/true);
      forward_rollout<scalar_t>(D, w, cnd.defined() ? cnd.data_ptr<scalar_t>() : nullptr, times, x.data_ptr<scalar_t>(),
                                out.data_ptr<scalar_t>(), tape.data_ptr<scalar_t>());
    });
    ctx->saved_data["tape"] = tape;
    ctx->saved_data["flat"] = wflat;
    ctx->saved_data["times"] = t.detach().to(torch::kCPU, torch::kFloat64).contiguous();
    ctx->saved_data["cond_dtype"] = cond.defined() ? static_cast<std::int64_t>(cond.scalar_type()) : std::int64_t{-1};
    ctx->saved_data["B"] = D.B;
    ctx->saved_data["dim"] = o.dim();
    ctx->saved_data["hidden"] = o.hidden();
    ctx->saved_data["fhat_layers"] = o.fhat_layers();
    ctx->saved_data["icnn_hidden"] = o.icnn_hidden();
    ctx->saved_data["condition_dim"] = o.condition_dim();
    ctx->saved_data["explicit_time"] = o.explicit_time();
    ctx->saved_data["alpha"] = o.alpha();
    ctx->saved_data["eps"] = o.eps();
    ctx->saved_data["rehu"] = o.rehu();
    ctx->saved_data["psd_rehu"] = o.psd_rehu();
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    auto& sd = ctx->saved_data;
    const auto o = SNodeOptions(sd["dim"].toInt())
                       .hidden(sd["hidden"].toInt())
                       .fhat_layers(sd["fhat_layers"].toInt())
                       .icnn_hidden(sd["icnn_hidden"].toInt())
                       .condition_dim(sd["condition_dim"].toInt())
                       .explicit_time(sd["explicit_time"].toBool())
                       .alpha(sd["alpha"].toDouble())
                       .eps(sd["eps"].toDouble())
                       .rehu(sd["rehu"].toDouble())
                       .psd_rehu(sd["psd_rehu"].toDouble());
    const auto flat = sd["flat"].toTensor();
    const auto tape = sd["tape"].toTensor();
    const auto times = times_of(sd["times"].toTensor());
    const auto D = make_dims(o, sd["B"].toInt(), static_cast<std::int64_t>(times.size()));
    const auto layout = snode_layout(o);
    const auto off = layout.offsets();
    const auto gout = grad_outputs[0].to(flat.dtype()).contiguous();
    Grads g;
    AT_DISPATCH_FLOATING_TYPES(flat.scalar_type(), "snode_euler_rollout_backward", [&] {
      const Weights<scalar_t> w(flat.data_ptr<scalar_t>(), off, D, /*fhat_transposes=*/false);
      g = backward_rollout<scalar_t>(D, w, off, layout.numel(), times, tape, gout);
    });
    const auto cond_dtype = sd["cond_dtype"].toInt();
    if (g.cond.defined() && cond_dtype >= 0) g.cond = g.cond.to(static_cast<torch::ScalarType>(cond_dtype));
    if (cond_dtype >= 0) return {g.flat, g.x0, torch::Tensor(), g.cond, torch::Tensor()};
    return {g.flat, g.x0, torch::Tensor(), torch::Tensor()};
  }

 private:
  static std::vector<double> times_of(const torch::Tensor& t) {
    const auto tc = t.detach().to(torch::kCPU, torch::kFloat64).contiguous();
    std::vector<double> times(tc.data_ptr<double>(), tc.data_ptr<double>() + tc.numel());
    for (std::size_t k = 0; k + 1 < times.size(); ++k)
      SL_CHECK(times[k + 1] > times[k], DataError, "snode_euler_rollout: t must be strictly increasing, t[", k, "] = ",
               times[k], " >= t[", k + 1, "] = ", times[k + 1]);
    return times;
  }
};

}  // namespace

bool snode_euler_rollout_supported(const torch::Tensor& flat, const torch::Tensor& x0, const SNodeOptions& o,
                                   const torch::Tensor& cond) {
  const auto dt = flat.defined() ? flat.scalar_type() : torch::kFloat32;
  return flat.defined() && x0.defined() && flat.device().is_cpu() && x0.device().is_cpu() &&
         (dt == torch::kFloat32 || dt == torch::kFloat64) && x0.scalar_type() == dt &&
         (!cond.defined() || cond.device().is_cpu()) && o.grad_mode() == LyapunovGradMode::Analytic &&
         !o.center_fhat() && o.input_dim() <= 64;
}

namespace {
std::atomic<std::uint64_t> rollout_calls{0};
}  // namespace

std::uint64_t snode_euler_rollout_calls() { return rollout_calls.load(std::memory_order_relaxed); }

torch::Tensor snode_euler_rollout(const torch::Tensor& flat, const torch::Tensor& x0, const torch::Tensor& t,
                                  const SNodeOptions& options, const torch::Tensor& cond) {
  check_inputs(flat, x0, t, options, cond);
  rollout_calls.fetch_add(1, std::memory_order_relaxed);
  std::vector<torch::Tensor> conds;
  if (cond.defined()) conds.push_back(cond);
  return RolloutFunction::apply(flat, x0, t, at::TensorList(conds), options);
}

}  // namespace stablelearn::models::functional
