// Gated KalmaNet (GKA; Peng, Chattopadhyay, Zancato, Nunez, Xia, Soatto, arXiv 2511.21016, CVPR
// 2026; shared/specs/papers-19-35.md §19; issue 22 item 3): a fading-memory layer that solves a
// ridge regression at test time, per head of width D:
//     S_t = argmin_S λ_t‖S‖_F² + Σ_{i≤t} η_{t,i}‖S k_i − v_i‖²,   η_{t,i} = Π_{j=i+1..t} γ_j
//         = U_t (H_t + λ_t I)⁻¹,   H_t = γ_t H_{t−1} + k_t k_tᵀ,   U_t = γ_t U_{t−1} + v_t k_tᵀ,
// with the adaptive regularisation λ_t = a·‖H_t‖_F (a = `ridge`, the code's ridge_strength 0.02),
// which bounds the condition number of H_t + λ_t I by (a + 1)/a since λ_max(H) ≤ ‖H‖_F.
//
// The solve (H_t + λ_t I) x̂_t = q_t uses the Chebyshev semi-iteration with the eigenvalue bounds
// [λ, λ + F], F = ‖H_t‖_F (the authors' gka_chebyshev_solve.py):
//     step = 2/(2λ + F),  ρ = F/(2λ + F),  r = ρ²/4,  x₋ = 0,  x = step·q,  ω = 2,
//     `iterations` times: ω ← 1/(1 − rω);  x₊ = ω(x − step((H + λI)x − q)) − (ω − 1)x₋
// (its error after n steps is at most 2((√κ − 1)/(√κ + 1))ⁿ times the initial one, κ = 1 + F/λ).
// conjugate_gradient_solve and exact_solve are the comparisons; `round_to` emulates a reduced
// precision (float16 / bfloat16) by rounding every intermediate tensor to that type and back.
//
// The layer, on x [B, T, d] with h heads of width D = d / h (weights in gka_layout):
//     q, k, v = x W_qᵀ, x W_kᵀ, x W_vᵀ per head; q and k L2-normalised;
//     β = σ(x W_βᵀ + b_β),  k ← (β + 1e-6) k,  v ← (β + 1e-6) v            (per head)
//     log γ = −exp(A_log) · softplus(x W_aᵀ + dt_bias)                       (Mamba2-style gate)
//     x̂_t = (H_t + λ_t I)⁻¹ q_t;  α = σ(x W_αᵀ + b_α);  q̃_t = q_t + α(x̂_t − q_t)
//     o_t = D^{−1/2} U_t q̃_t,   y = concat_h(o) W_oᵀ
// Simplifications against gka.py, stated: no causal short convolutions on q/k/v and no gated
// RMSNorm before W_o (the spec's MQAR-scale experiment does not need them).
//
// The two layers GKA is compared with (`mixer`; same weights, same q, k, v, β and γ streams, same
// state size D × D per head; the paper's point is that they are this recurrence with the key
// covariance H replaced by the identity):
//     linear   gated linear attention (scalar decay, as GLA/Mamba2): S_t = γ_t S_{t−1} + v_t k_tᵀ,
//              o_t = D^{−1/2} S_t q_t  (GKA with x̂ = q; α unused)
//     delta    gated delta rule (Yang, Kautz, Hatamizadeh, Gated DeltaNet, ICLR 2025), with unit keys
//              k̂_t and the write strength β_t:  S_t = γ_t S_{t−1}(I − β_t k̂_t k̂_tᵀ) + β_t v_t k̂_tᵀ,
//              o_t = D^{−1/2} S_t q_t (v not scaled by β; α unused): one step of gradient descent
//              with step β_t on ½‖S k̂_t − v_t‖² from γ_t S_{t−1}
//
// Chunked evaluation (`chunk` = C): within a chunk starting after state (H₀, U₀), with
// G_t = Σ_{j ≤ t, j in chunk} log γ_j,
//     H_t = e^{G_t} H₀ + Σ_{i ≤ t in chunk} e^{G_t − G_i} k_i k_iᵀ   (U_t likewise with v_i k_iᵀ),
// all C states at once ([B, h, C, D, D]) and one batched solve; the cost is linear in T.
// functional::gka_reference is the per-token recurrence with an exact solve, for tests.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include "stablelearn/core/options.h"
#include "stablelearn/models/weight_layout.h"

namespace stablelearn::models {

namespace gka {
/// x solving (H + λI) x = q for H [..., D, D] (symmetric positive semi-definite), q [..., D] and
/// λ [...] > 0, by `iterations` Chebyshev steps with the bounds [λ, λ + ‖H‖_F]. ShapeError on
/// mismatched shapes, ConfigError for iterations < 1.
torch::Tensor chebyshev_solve(const torch::Tensor& h, const torch::Tensor& q, const torch::Tensor& lambda,
                              std::int64_t iterations, std::optional<torch::ScalarType> round_to = std::nullopt);
/// The same system by `iterations` conjugate-gradient steps from x = 0.
torch::Tensor conjugate_gradient_solve(const torch::Tensor& h, const torch::Tensor& q, const torch::Tensor& lambda,
                                       std::int64_t iterations, std::optional<torch::ScalarType> round_to = std::nullopt);
/// The same system by torch::linalg_solve (λ may be zero: the unregularised solve); with round_to,
/// H, λ and q are rounded first and the solution after.
torch::Tensor exact_solve(const torch::Tensor& h, const torch::Tensor& q, const torch::Tensor& lambda,
                          std::optional<torch::ScalarType> round_to = std::nullopt);
/// λ = a ‖H‖_F over the last two dimensions.
torch::Tensor adaptive_ridge(const torch::Tensor& h, double a);
}  // namespace gka

struct GkaOptions {
  std::int64_t d_model = 64;       ///< model width d (a multiple of heads)
  std::int64_t heads = 2;          ///< heads h; state D × D per head, D = d_model / heads
  double ridge = 0.02;             ///< a of λ_t = a‖H_t‖_F
  std::int64_t iterations = 30;    ///< Chebyshev steps per solve
  std::int64_t chunk = 64;         ///< tokens per chunk
  std::string solver = "chebyshev";  ///< chebyshev | exact (torch::linalg_solve)
  std::string mixer = "gka";       ///< gka | linear (gated linear attention) | delta (gated delta rule)
  void fields(options::Visitor& v);
  void cross_check() const;
  std::int64_t head_dim() const { return d_model / heads; }
};

/// "q_proj.weight" [d, d], "k_proj.weight", "v_proj.weight", "beta_proj.weight" [h, d],
/// "beta_proj.bias" [h], "gate_proj.weight" [h, d], "gate.dt_bias" [h], "gate.A_log" [h],
/// "alpha_proj.weight" [h, d], "alpha_proj.bias" [h], "o_proj.weight" [d, d].
WeightLayout gka_layout(const GkaOptions& o);

namespace functional {
/// y [B, T, d] of x [B, T, d] with w pointing to gka_layout(o).size() tensors (chunked). ShapeError
/// on a wrong x.
torch::Tensor gka(const torch::Tensor& x, const torch::Tensor* w, const GkaOptions& o);
/// The per-token recurrence of the same layer with torch::linalg_solve (the reference for tests;
/// mixer "gka" only).
torch::Tensor gka_reference(const torch::Tensor& x, const torch::Tensor* w, const GkaOptions& o);
}  // namespace functional

/// Initialisation: projections and biases U(−1/√d, 1/√d), A_log 0 and dt_bias −4 (γ =
/// exp(−softplus(−4)) ≈ 0.98 at zero input: a long memory to start from).
class GkaImpl : public torch::nn::Module {
 public:
  explicit GkaImpl(GkaOptions options);
  torch::Tensor forward(const torch::Tensor& x) const { return functional::gka(x, weights_.data(), options_); }
  torch::Tensor forward(const torch::Tensor& x, const std::vector<torch::Tensor>& weights) const;
  const std::vector<torch::Tensor>& weights() const { return weights_; }
  const WeightLayout& layout() const { return layout_; }
  const GkaOptions& options() const { return options_; }

 private:
  GkaOptions options_;
  WeightLayout layout_;
  std::vector<torch::Tensor> weights_;
};
TORCH_MODULE(Gka);

}  // namespace stablelearn::models
