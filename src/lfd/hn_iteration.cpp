// One hypernetwork training iteration, by autograd and with HN's heads fused (see hn_iteration.h).
#include "stablelearn/lfd/hn_iteration.h"

#include <cmath>
#include <type_traits>
#include <vector>

#include "adam_kernels.h"
#ifdef SL_ADAM_X86
#include <immintrin.h>
#define SL_HN_X86 1
#endif

#include <ATen/Parallel.h>
#include <torch/autograd.h>

#include "stablelearn/core/error.h"

namespace stablelearn::lfd {

HnIterationResult hn_iteration_autograd(models::TaskHyperNetwork& net, std::int64_t task, Adam& opt_theta,
                                        Adam& opt_emb, const HnIteration& it) {
  auto params = net.theta();
  params.push_back(net.task_embedding(task));
  const auto loss = it.loss(net.forward_task(task));
  auto grads = torch::autograd::grad({loss}, params);
  opt_emb.step({grads.back()});
  grads.pop_back();
  HnIterationResult out;
  if (!it.reg_tasks.empty() && it.beta > 0) {
    SL_CHECK(it.targets != nullptr, InternalError, "hn_iteration_autograd: no stored targets");
    params.pop_back();
    out.reg = add_lookahead_regularizer_grad(params, opt_theta.lookahead(grads), it.beta, [&] {
      return output_regularizer(*it.targets, it.reg_tasks, [&](std::int64_t j) {
        return net.forward_embedding(net.task_embedding(j).detach());
      });
    }, grads);
  }
  opt_theta.step(grads);
  out.loss = loss.item<double>();
  return out;
}

// ---------------------------------------------------------------------------------------------
// The fused heads

namespace {

using detail::LookaheadConsts;
using detail::StepConsts;

/// The heads seen as one [P, H] matrix cut into blocks of rows that never cross a head (so a block
/// is one pointer range), in a fixed order: per-block partial sums added in block order make the
/// fused passes' results independent of how the threads share the blocks.
struct RowBlock {
  std::size_t head;
  std::int64_t begin, end;  // rows of the head
  std::int64_t offset;      // the head's first row in the flat output
};
constexpr std::int64_t kBlockRows = 256;

std::vector<RowBlock> row_blocks(const std::vector<torch::Tensor>& heads) {
  std::vector<RowBlock> out;
  std::int64_t offset = 0;
  for (std::size_t j = 0; j < heads.size(); ++j) {
    const auto n = heads[j].size(0);
    for (std::int64_t r = 0; r < n; r += kBlockRows) out.push_back({j, r, std::min(n, r + kBlockRows), offset});
    offset += n;
  }
  return out;
}

// -- row kernels --------------------------------------------------------------------------------
// A head row's gradient is formed in a row-sized buffer, g = a·h + Σ_q rq[q·stride]·hq[q], and
// Adam's own element kernels (adam_kernels.h) take it from there.

/// g[k] = a·h[k] + Σ_q rq[q·stride]·hq[q·ld + k] for k < n, the q terms added in order by fma.
template <typename T>
void row_gradient(T a, const T* h, const T* rq, std::int64_t stride, const T* hq, std::int64_t ld, std::int64_t Q,
                  std::int64_t n, T* g) {
  for (std::int64_t k = 0; k < n; ++k) {
    T gk = a * h[k];
    for (std::int64_t q = 0; q < Q; ++q) gk = std::fma(rq[q * stride], hq[q * ld + k], gk);
    g[k] = gk;
  }
}

template <typename T>
T dot(const T* x, const T* y, std::int64_t n) {
  T s = 0;
  for (std::int64_t k = 0; k < n; ++k) s += x[k] * y[k];
  return s;
}

template <typename T>
void axpy(T alpha, const T* x, T* y, std::int64_t n) {
  for (std::int64_t k = 0; k < n; ++k) y[k] += alpha * x[k];
}

#ifdef SL_HN_X86
__attribute__((target("avx2,fma"))) void row_gradient_avx2(float a, const float* h, const float* rq,
                                                            std::int64_t stride, const float* hq, std::int64_t ld,
                                                            std::int64_t Q, std::int64_t n, float* g) {
  const __m256 va = _mm256_set1_ps(a);
  std::int64_t k = 0;
  for (; k + 8 <= n; k += 8) {
    __m256 gk = _mm256_mul_ps(va, _mm256_loadu_ps(h + k));
    for (std::int64_t q = 0; q < Q; ++q)
      gk = _mm256_fmadd_ps(_mm256_set1_ps(rq[q * stride]), _mm256_loadu_ps(hq + q * ld + k), gk);
    _mm256_storeu_ps(g + k, gk);
  }
  if (k < n) row_gradient<float>(a, h + k, rq, stride, hq + k, ld, Q, n - k, g + k);
}

__attribute__((target("avx2,fma"))) float dot_avx2(const float* x, const float* y, std::int64_t n) {
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  std::int64_t k = 0;
  for (; k + 16 <= n; k += 16) {
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + k), _mm256_loadu_ps(y + k), s0);
    s1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + k + 8), _mm256_loadu_ps(y + k + 8), s1);
  }
  for (; k + 8 <= n; k += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + k), _mm256_loadu_ps(y + k), s0);
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, _mm256_add_ps(s0, s1));
  float s = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
  for (; k < n; ++k) s += x[k] * y[k];
  return s;
}

__attribute__((target("avx2,fma"))) void axpy_avx2(float alpha, const float* x, float* y, std::int64_t n) {
  const __m256 va = _mm256_set1_ps(alpha);
  std::int64_t k = 0;
  for (; k + 8 <= n; k += 8) _mm256_storeu_ps(y + k, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + k), _mm256_loadu_ps(y + k)));
  for (; k < n; ++k) y[k] += alpha * x[k];
}
#endif

/// Row kernels of one dtype: the AVX2 ones for float where the CPU has them, else the portable ones.
template <typename T>
struct Kernels {
  bool vector = false;
  void gradient(T a, const T* h, const T* rq, std::int64_t stride, const T* hq, std::int64_t Q, std::int64_t H,
                T* g) const {
#ifdef SL_HN_X86
    if constexpr (std::is_same_v<T, float>) {
      if (vector) return row_gradient_avx2(a, h, rq, stride, hq, H, Q, H, g);
    }
#endif
    row_gradient<T>(a, h, rq, stride, hq, H, Q, H, g);
  }
  void lookahead(const T* g, const T* m, const T* v, T* out, std::int64_t n, const LookaheadConsts<T>& c) const {
#ifdef SL_HN_X86
    if constexpr (std::is_same_v<T, float>) {
      if (vector) return detail::adam_lookahead_avx2(g, m, v, out, n, c);
    }
#endif
    detail::adam_lookahead<T>(g, m, v, out, n, c);
  }
  /// S = A + Δ, Δ = Adam's look-ahead of the row's gradient g = a·h (g: scratch of H values).
  void shifted(const T* A, const T* m, const T* v, T a, const T* h, std::int64_t H, const LookaheadConsts<T>& c,
               T* g, T* S) const {
    gradient(a, h, nullptr, 0, nullptr, 0, H, g);
    lookahead(g, m, v, S, H, c);
    for (std::int64_t k = 0; k < H; ++k) S[k] = A[k] + S[k];
  }
  T dot(const T* x, const T* y, std::int64_t n) const {
#ifdef SL_HN_X86
    if constexpr (std::is_same_v<T, float>) {
      if (vector) return dot_avx2(x, y, n);
    }
#endif
    return lfd::dot<T>(x, y, n);
  }
  void axpy(T alpha, const T* x, T* y, std::int64_t n) const {
#ifdef SL_HN_X86
    if constexpr (std::is_same_v<T, float>) {
      if (vector) return axpy_avx2(alpha, x, y, n);
    }
#endif
    lfd::axpy<T>(alpha, x, y, n);
  }
  /// Adam's step of one row with the gradient g = a·h + Σ_q rq[q·stride]·hq[q] (g: scratch of H).
  void step(T* A, T* m, T* v, T a, const T* h, const T* rq, std::int64_t stride, const T* hq, std::int64_t Q,
            std::int64_t H, const StepConsts<T>& c, T* g) const {
    gradient(a, h, rq, stride, hq, Q, H, g);
#ifdef SL_HN_X86
    if constexpr (std::is_same_v<T, float>) {
      if (vector) return detail::adam_step_avx2(g, m, v, A, H, c);
    }
#endif
    detail::adam_step<T>(g, m, v, A, H, c);
  }
};

template <typename T>
Kernels<T> kernels(bool force_scalar) {
  Kernels<T> k;
#ifdef SL_HN_X86
  k.vector = std::is_same_v<T, float> && !force_scalar && detail::have_avx2_fma();
#else
  (void)force_scalar;
#endif
  return k;
}

/// The regulariser's pass over (A, m, v): for every head row, S = A + ΔA (ΔA from a and h), then
/// for every regularised task q: w'_q = S·h_q + c'[row], r_q[row] = κ (w'_q − target_q[row]) and
/// ∂R/∂h_q += r_q[row] S. Returns Σ (w'_q − target_q)² over q and rows.
template <typename T>
double regularizer_pass(const std::vector<RowBlock>& blocks, const std::vector<torch::Tensor>& heads, const std::vector<torch::Tensor>& ms,
                        const std::vector<torch::Tensor>& vs, const torch::Tensor& a, const torch::Tensor& h,
                        const torch::Tensor& c_shift, const torch::Tensor& hq, const torch::Tensor& targets, T kappa,
                        const LookaheadConsts<T>& consts, const Kernels<T>& ker, torch::Tensor& r, torch::Tensor& grad_hq) {
  const auto Q = hq.size(0), H = hq.size(1), P = a.numel();
  auto partial = torch::zeros({static_cast<std::int64_t>(blocks.size()), Q, H}, hq.options());
  std::vector<double> sums(blocks.size(), 0.0);
  const T* pa = a.data_ptr<T>();
  const T* ph = h.data_ptr<T>();
  const T* pc = c_shift.data_ptr<T>();
  const T* phq = hq.data_ptr<T>();
  const T* pt = targets.data_ptr<T>();
  T* pr = r.data_ptr<T>();
  T* ppart = partial.data_ptr<T>();
  at::parallel_for(0, static_cast<std::int64_t>(blocks.size()), 1, [&](std::int64_t lo, std::int64_t hi) {
    std::vector<T> S(static_cast<std::size_t>(H)), g(static_cast<std::size_t>(H));
    for (std::int64_t b = lo; b < hi; ++b) {
      const auto& blk = blocks[static_cast<std::size_t>(b)];
      const T* A = heads[blk.head].data_ptr<T>();
      const T* m = ms[blk.head].data_ptr<T>();
      const T* v = vs[blk.head].data_ptr<T>();
      T* gpart = ppart + b * Q * H;
      double sum = 0;
      for (std::int64_t row = blk.begin; row < blk.end; ++row) {
        const auto flat = blk.offset + row;
        ker.shifted(A + row * H, m + row * H, v + row * H, pa[flat], ph, H, consts, g.data(), S.data());
        for (std::int64_t q = 0; q < Q; ++q) {
          const T w = ker.dot(S.data(), phq + q * H, H) + pc[flat];
          const T d = w - pt[q * P + flat];
          sum += static_cast<double>(d) * static_cast<double>(d);
          const T rq = kappa * d;
          pr[q * P + flat] = rq;
          ker.axpy(rq, S.data(), gpart + q * H, H);
        }
      }
      sums[static_cast<std::size_t>(b)] = sum;
    }
  });
  // Block order, whatever the threads did.
  grad_hq = torch::zeros({Q, H}, hq.options());
  T* pg = grad_hq.data_ptr<T>();
  double total = 0;
  for (std::size_t b = 0; b < blocks.size(); ++b) {
    total += sums[b];
    const T* src = ppart + static_cast<std::int64_t>(b) * Q * H;
    for (std::int64_t i = 0; i < Q * H; ++i) pg[i] += src[i];
  }
  return total;
}

/// Adam's step of every head with ∂L/∂A = a hᵀ + Σ_q rq_q h_qᵀ (rq already scaled by β) formed
/// element by element.
template <typename T>
void heads_step(const std::vector<RowBlock>& blocks, const std::vector<torch::Tensor>& heads, const std::vector<torch::Tensor>& ms,
                const std::vector<torch::Tensor>& vs, const torch::Tensor& a, const torch::Tensor& h,
                const torch::Tensor& rq, const torch::Tensor& hq, const StepConsts<T>& consts, const Kernels<T>& ker) {
  const auto H = h.numel(), P = a.numel();
  const auto Q = rq.defined() ? rq.size(0) : 0;
  const T* pa = a.data_ptr<T>();
  const T* ph = h.data_ptr<T>();
  const T* prq = Q > 0 ? rq.data_ptr<T>() : nullptr;
  const T* phq = Q > 0 ? hq.data_ptr<T>() : nullptr;
  at::parallel_for(0, static_cast<std::int64_t>(blocks.size()), 1, [&](std::int64_t lo, std::int64_t hi) {
    std::vector<T> g(static_cast<std::size_t>(H));
    for (std::int64_t b = lo; b < hi; ++b) {
      const auto& blk = blocks[static_cast<std::size_t>(b)];
      T* A = heads[blk.head].data_ptr<T>();
      T* m = ms[blk.head].data_ptr<T>();
      T* v = vs[blk.head].data_ptr<T>();
      for (std::int64_t row = blk.begin; row < blk.end; ++row) {
        const auto flat = blk.offset + row;
        ker.step(A + row * H, m + row * H, v + row * H, pa[flat], ph, Q > 0 ? prq + flat : nullptr, P, phq, Q, H,
                 consts, g.data());
      }
    }
  });
}

template <typename T>
HnIterationResult fused_iteration(models::HyperNetworkImpl& net, std::int64_t task, Adam& opt_theta, Adam& opt_emb,
                                  const HnIteration& it, bool force_scalar) {
  const auto ker = kernels<T>(force_scalar);
  const auto& tw = net.trunk_weights();
  const auto& tb = net.trunk_biases();
  const auto& hw = net.head_weights();
  const auto& hb = net.head_biases();
  const auto theta = net.theta();  // [W_0, b_0, …, A_0, c_0, A_1, c_1, …]
  const auto L = tw.size(), J = hw.size();
  SL_CHECK(opt_theta.params().size() == theta.size(), InternalError, "hn_iteration_fused: the optimiser holds ",
           opt_theta.params().size(), " tensors, θ has ", theta.size());
  for (std::size_t k = 0; k < theta.size(); ++k)
    SL_CHECK(opt_theta.params()[k].is_same(theta[k]), InternalError,
             "hn_iteration_fused: the optimiser's tensor ", k, " is not θ's");
  const auto head_index = [&](std::size_t j) { return 2 * L + 2 * j; };
  const auto blocks = row_blocks(hw);  // once per iteration, for both passes

  // Forward: the trunk with autograd, the heads without (their gradient is never formed).
  const auto e = net.task_embedding(task);
  const auto h_graph = net.trunk_output(e.unsqueeze(0), tw, tb);  // [1, H]
  // A copy: without a trunk h_graph is a view of the embedding, which opt_emb steps in place.
  const auto h = h_graph.detach().reshape({-1}).clone();
  const auto H = h.numel();
  torch::Tensor flat;
  {
    torch::NoGradGuard no_grad;
    std::vector<torch::Tensor> outs;
    outs.reserve(J);
    for (std::size_t j = 0; j < J; ++j) outs.push_back(torch::addmv(hb[j], hw[j], h));
    flat = torch::cat(outs, 0);
  }
  flat.requires_grad_(true);
  const auto loss = it.loss(flat);
  const auto a = torch::autograd::grad({loss}, {flat})[0].contiguous();  // ∂L/∂w [P]

  // ∂L/∂h = Σ_j A_jᵀ a_j, then the trunk's and the embedding's gradients by autograd.
  std::vector<torch::Tensor> grads(theta.size());
  {
    std::vector<torch::Tensor> inputs;
    for (std::size_t k = 0; k < L; ++k) {
      inputs.push_back(tw[k]);
      inputs.push_back(tb[k]);
    }
    inputs.push_back(e);
    torch::Tensor gh;
    {
      torch::NoGradGuard no_grad;
      gh = torch::zeros({H}, h.options());
      std::int64_t off = 0;
      for (std::size_t j = 0; j < J; ++j) {
        const auto n = hw[j].size(0);
        gh.addmv_(hw[j].t(), a.narrow(0, off, n));
        off += n;
      }
    }
    const auto tg = torch::autograd::grad({h_graph}, inputs, {gh.unsqueeze(0)});
    for (std::size_t k = 0; k < 2 * L; ++k) grads[k] = tg[k];
    opt_emb.step({tg.back()});
  }
  std::vector<torch::Tensor> a_parts;  // a_j, views of a
  {
    std::int64_t off = 0;
    for (std::size_t j = 0; j < J; ++j) {
      const auto n = hw[j].size(0);
      a_parts.push_back(a.narrow(0, off, n));
      grads[head_index(j) + 1] = a_parts.back();  // ∂L/∂c_j; head weights stay undefined
      off += n;
    }
  }
  std::vector<torch::Tensor> ms, vs;
  for (std::size_t j = 0; j < J; ++j) {
    ms.push_back(opt_theta.exp_avg()[head_index(j)]);
    vs.push_back(opt_theta.exp_avg_sq()[head_index(j)]);
  }

  HnIterationResult out;
  torch::Tensor rq_beta, hq;
  if (!it.reg_tasks.empty() && it.beta > 0) {
    SL_CHECK(it.targets != nullptr, InternalError, "hn_iteration_fused: no stored targets");
    const auto delta = opt_theta.lookahead(grads);  // trunk and biases; undefined for the heads
    // The shifted trunk as fresh leaves, the shifted biases as values.
    std::vector<torch::Tensor> sw, sb, leaves;
    {
      torch::NoGradGuard no_grad;
      for (std::size_t k = 0; k < L; ++k) {
        sw.push_back((delta[2 * k] + tw[k]).requires_grad_(true));
        sb.push_back((delta[2 * k + 1] + tb[k]).requires_grad_(true));
        leaves.push_back(sw.back());
        leaves.push_back(sb.back());
      }
    }
    const auto Q = static_cast<std::int64_t>(it.reg_tasks.size());
    std::vector<torch::Tensor> past, targets;
    for (const auto q : it.reg_tasks) {
      SL_CHECK(q >= 0 && q < static_cast<std::int64_t>(it.targets->size()), InternalError, "hn_iteration_fused: task ",
               q, " has no stored target");
      past.push_back(net.task_embedding(q).detach());
      targets.push_back((*it.targets)[static_cast<std::size_t>(q)]);
    }
    const auto hq_graph = net.trunk_output(torch::stack(past), sw, sb);  // [Q, H]
    hq = hq_graph.detach().contiguous();
    torch::Tensor c_shift, target_mat;
    {
      torch::NoGradGuard no_grad;
      std::vector<torch::Tensor> cs;
      for (std::size_t j = 0; j < J; ++j) cs.push_back(delta[head_index(j) + 1] + hb[j]);
      c_shift = torch::cat(cs, 0).contiguous();
      target_mat = torch::stack(targets).to(a.scalar_type()).contiguous();
    }
    const double s = static_cast<double>(opt_theta.steps() + 1);
    const double scale = -opt_theta.lr() * std::sqrt(1 - std::pow(opt_theta.beta2(), s)) /
                         (1 - std::pow(opt_theta.beta1(), s));
    const LookaheadConsts<T> lc{static_cast<T>(opt_theta.beta1()), static_cast<T>(1 - opt_theta.beta1()),
                                static_cast<T>(opt_theta.beta2()), static_cast<T>(1 - opt_theta.beta2()),
                                static_cast<T>(opt_theta.eps()), static_cast<T>(scale)};
    auto r = torch::empty({Q, a.numel()}, a.options());
    torch::Tensor grad_hq;
    const double sumsq = regularizer_pass<T>(blocks, hw, ms, vs, a, h, c_shift, hq, target_mat,
                                             static_cast<T>(2.0 / static_cast<double>(Q)), lc, ker, r, grad_hq);
    out.reg = sumsq / static_cast<double>(Q);
    // The trunk's share by autograd; the biases' directly: ∂R/∂c'_j = Σ_q r_q.
    if (L > 0) {
      const auto rg = torch::autograd::grad({hq_graph}, leaves, {grad_hq});
      torch::NoGradGuard no_grad;
      for (std::size_t k = 0; k < 2 * L; ++k) grads[k] = grads[k] + rg[k] * it.beta;
    }
    {
      torch::NoGradGuard no_grad;
      const auto rsum = r.sum(0);
      std::int64_t off = 0;
      for (std::size_t j = 0; j < J; ++j) {
        const auto n = hw[j].size(0);
        grads[head_index(j) + 1] = a_parts[j] + rsum.narrow(0, off, n) * it.beta;
        off += n;
      }
      rq_beta = (r * it.beta).contiguous();
    }
  }
  opt_theta.step(grads);  // the trunk and the biases (the heads' gradients are undefined: left alone)
  const double t = static_cast<double>(opt_theta.steps());
  const double bc1 = 1 - std::pow(opt_theta.beta1(), t), bc2 = 1 - std::pow(opt_theta.beta2(), t);
  const StepConsts<T> sc{static_cast<T>(opt_theta.beta1()), static_cast<T>(1 - opt_theta.beta1()),
                         static_cast<T>(opt_theta.beta2()), static_cast<T>(1 - opt_theta.beta2()),
                         static_cast<T>(std::sqrt(bc2)), static_cast<T>(opt_theta.eps()),
                         static_cast<T>(-opt_theta.lr() / bc1)};
  {
    torch::NoGradGuard no_grad;
    heads_step<T>(blocks, hw, ms, vs, a, h, rq_beta, hq, sc, ker);
  }
  out.loss = loss.item().toDouble();
  return out;
}

}  // namespace

bool hn_fused_applies(const models::HyperNetworkImpl& net) {
  const auto theta = net.theta();
  if (theta.empty()) return false;
  const auto type = theta.front().scalar_type();
  if (type != torch::kFloat32 && type != torch::kFloat64) return false;
  for (const auto& p : theta)
    if (!p.device().is_cpu() || p.scalar_type() != type || !p.is_contiguous()) return false;
  return true;
}

HnIterationResult hn_iteration_fused(models::HyperNetworkImpl& net, std::int64_t task, Adam& opt_theta,
                                     Adam& opt_emb, const HnIteration& it, bool force_scalar) {
  SL_CHECK(hn_fused_applies(net), InternalError,
           "hn_iteration_fused: θ must be contiguous CPU tensors of one floating type (float32 or float64)");
  if (net.head_weights().front().scalar_type() == torch::kFloat64)
    return fused_iteration<double>(net, task, opt_theta, opt_emb, it, force_scalar);
  return fused_iteration<float>(net, task, opt_theta, opt_emb, it, force_scalar);
}

}  // namespace stablelearn::lfd
