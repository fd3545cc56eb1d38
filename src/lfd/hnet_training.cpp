#include "stablelearn/lfd/hnet_training.h"

#include <cmath>

#include "adam_kernels.h"
#ifdef SL_ADAM_X86
#define SL_HAVE_X86_FUSED 1
#endif

#include <torch/autograd.h>

#include "stablelearn/core/env.h"
#include "stablelearn/core/error.h"
#include "stablelearn/models/odeint.h"

namespace stablelearn::lfd {

Adam::Adam(std::vector<torch::Tensor> params, double lr, double beta1, double beta2, double eps)
    : params_(std::move(params)), lr_(lr), beta1_(beta1), beta2_(beta2), eps_(eps) {
  for (const auto& p : params_) {
    m_.push_back(torch::zeros_like(p, torch::MemoryFormat::Contiguous));
    v_.push_back(torch::zeros_like(p, torch::MemoryFormat::Contiguous));
  }
}

namespace {

#ifdef SL_HAVE_X86_FUSED
/// The one-pass kernels reproduce the rounding of libtorch's vectorised kernels (AVX2 and AVX512
/// alike: same operations per element, same scalar tails), not of its plain C++ ones, which do not
/// fuse the multiply-add. They are used only where both hold, so the step is bit for bit the tensor
/// chain wherever it runs; with ATEN_CPU_CAPABILITY=default the chain itself runs.
bool fused_lookahead_available() {
  static const bool ok = detail::have_avx2_fma() && (cpu_capability() == "AVX2" || cpu_capability() == "AVX512");
  return ok;
}
#endif

bool fusable(const torch::Tensor& g, const torch::Tensor& m, const torch::Tensor& v) {
#ifdef SL_HAVE_X86_FUSED
  auto plain = [&](const torch::Tensor& t) {
    return t.device().is_cpu() && t.scalar_type() == torch::kFloat32 && t.is_contiguous() && t.numel() == g.numel();
  };
  return fused_lookahead_available() && plain(g) && plain(m) && plain(v);
#else
  (void)g, (void)m, (void)v;
  return false;
#endif
}

}  // namespace

std::vector<torch::Tensor> Adam::lookahead(const std::vector<torch::Tensor>& grads) const {
  return lookahead_impl(grads, /*allow_fused=*/true);
}

std::vector<torch::Tensor> Adam::lookahead_impl(const std::vector<torch::Tensor>& grads, bool allow_fused) const {
  SL_CHECK(grads.size() == params_.size(), InternalError, "Adam::lookahead: ", grads.size(), " gradients for ",
           params_.size(), " parameters");
  torch::NoGradGuard no_grad;
  const double s = static_cast<double>(step_ + 1);
  const double scale = -lr_ * std::sqrt(1 - std::pow(beta2_, s)) / (1 - std::pow(beta1_, s));
  std::vector<torch::Tensor> out;
  out.reserve(params_.size());
  for (std::size_t k = 0; k < params_.size(); ++k) {
    const auto& g = grads[k];
    if (!g.defined()) {
      out.emplace_back();
      continue;
    }
#ifdef SL_HAVE_X86_FUSED
    if (allow_fused && fusable(g, m_[k], v_[k])) {
      auto out_k = torch::empty_like(g, torch::MemoryFormat::Contiguous);
      detail::adam_lookahead_avx2(g.data_ptr<float>(), m_[k].data_ptr<float>(), v_[k].data_ptr<float>(),
                                  out_k.data_ptr<float>(), g.numel(),
                                  {static_cast<float>(beta1_), static_cast<float>(1 - beta1_), static_cast<float>(beta2_),
                                   static_cast<float>(1 - beta2_), static_cast<float>(eps_), static_cast<float>(scale)});
      out.push_back(out_k);
      continue;
    }
#endif
    // Two temporaries per tensor (in-place chains) instead of one per operation.
    auto m = g.mul(1 - beta1_).add_(m_[k], beta1_);
    auto v = g.square().mul_(1 - beta2_).add_(v_[k], beta2_);
    v.sqrt_().add_(eps_);
    out.push_back(m.div_(v).mul_(scale));
  }
  return out;
}

void Adam::step(const std::vector<torch::Tensor>& grads) { step_impl(grads, /*allow_fused=*/true); }

void Adam::step_impl(const std::vector<torch::Tensor>& grads, bool allow_fused) {
  SL_CHECK(grads.size() == params_.size(), InternalError, "Adam::step: ", grads.size(), " gradients for ",
           params_.size(), " parameters");
  torch::NoGradGuard no_grad;
  ++step_;
  const double bc1 = 1 - std::pow(beta1_, static_cast<double>(step_));
  const double bc2 = 1 - std::pow(beta2_, static_cast<double>(step_));
  for (std::size_t k = 0; k < params_.size(); ++k) {
    if (!grads[k].defined()) continue;
#ifdef SL_HAVE_X86_FUSED
    if (allow_fused && fusable(grads[k], m_[k], v_[k]) && fusable(grads[k], params_[k], params_[k])) {
      detail::adam_step_avx2(grads[k].data_ptr<float>(), m_[k].data_ptr<float>(), v_[k].data_ptr<float>(),
                             params_[k].data_ptr<float>(), grads[k].numel(),
                             {static_cast<float>(beta1_), static_cast<float>(1 - beta1_), static_cast<float>(beta2_),
                              static_cast<float>(1 - beta2_), static_cast<float>(std::sqrt(bc2)),
                              static_cast<float>(eps_), static_cast<float>(-lr_ / bc1)});
      continue;
    }
#endif
    m_[k].mul_(beta1_).add_(grads[k], 1 - beta1_);
    v_[k].mul_(beta2_).addcmul_(grads[k], grads[k], 1 - beta2_);
    auto denom = v_[k].sqrt();
    denom.div_(std::sqrt(bc2)).add_(eps_);
    params_[k].addcdiv_(m_[k], denom, -lr_ / bc1);
  }
}

std::vector<std::int64_t> sample_regularized_tasks(std::int64_t current_task, std::int64_t num_regs,
                                                   torch::Generator& gen) {
  std::vector<std::int64_t> out;
  if (current_task <= 0) return out;
  if (num_regs <= 0 || num_regs >= current_task) {
    for (std::int64_t j = 0; j < current_task; ++j) out.push_back(j);
    return out;
  }
  const auto perm = torch::randperm(current_task, gen, torch::kInt64);
  for (std::int64_t k = 0; k < num_regs; ++k) out.push_back(perm[k].item<std::int64_t>());
  return out;
}

torch::Tensor output_regularizer(const std::vector<torch::Tensor>& targets, const std::vector<std::int64_t>& tasks,
                                 const std::function<torch::Tensor(std::int64_t)>& generate) {
  SL_CHECK(!tasks.empty(), InternalError, "output_regularizer: no tasks");
  torch::Tensor total;
  for (const auto j : tasks) {
    SL_CHECK(j >= 0 && j < static_cast<std::int64_t>(targets.size()), InternalError, "output_regularizer: task ", j,
             " has no stored target");
    const auto term = (targets[static_cast<std::size_t>(j)] - generate(j)).pow(2).sum();
    total = total.defined() ? total + term : term;
  }
  return total / static_cast<double>(tasks.size());
}

double add_lookahead_regularizer_grad(const std::vector<torch::Tensor>& theta, std::vector<torch::Tensor> delta,
                                      double scale, const std::function<torch::Tensor()>& regularizer,
                                      std::vector<torch::Tensor>& grads) {
  SL_CHECK(delta.size() == theta.size() && grads.size() == theta.size(), InternalError,
           "add_lookahead_regularizer_grad: ", theta.size(), " parameters, ", delta.size(), " look-ahead steps, ",
           grads.size(), " gradients");
  std::vector<torch::Tensor> original;
  original.reserve(theta.size());
  {
    torch::NoGradGuard no_grad;
    for (std::size_t k = 0; k < theta.size(); ++k) {
      SL_CHECK(grads[k].defined() && grads[k].sizes() == theta[k].sizes(), InternalError,
               "add_lookahead_regularizer_grad: gradient ", k, " missing or misshapen");
      // autograd accumulates into .grad in place; give it a dense buffer of its own.
      if (!grads[k].is_non_overlapping_and_dense()) grads[k] = grads[k].contiguous();
      original.push_back(theta[k].detach());  // keeps θ_k's storage alive
      delta[k].add_(theta[k]);                // θ_k + Δθ_k
      auto shifted = delta[k];
      auto p = theta[k];
      p.set_(shifted);
      p.mutable_grad() = grads[k];
    }
  }
  double value = 0;
  try {
    const auto reg = regularizer();
    value = reg.item<double>();
    torch::autograd::backward({reg * scale}, {}, /*retain_graph=*/false, /*create_graph=*/false, theta);
  } catch (...) {
    torch::NoGradGuard no_grad;
    for (std::size_t k = 0; k < theta.size(); ++k) {
      auto p = theta[k];
      p.set_(original[k]);
      p.mutable_grad().reset();
    }
    throw;
  }
  torch::NoGradGuard no_grad;
  for (std::size_t k = 0; k < theta.size(); ++k) {
    auto p = theta[k];
    grads[k] = p.grad();  // the same buffer unless autograd had to replace it
    p.set_(original[k]);
    p.mutable_grad().reset();
  }
  return value;
}

GridRollout ode_rollout(VectorField f, models::OdeintOptions options) {
  return {[f = std::move(f), options](const torch::Tensor& x0, const torch::Tensor& t, models::functional::SNodeDiscreteStats*) {
    return models::odeint(f, x0, t, options);
  }};
}

torch::Tensor windowed_rollout(const GridRollout& rollout, const torch::Tensor& x0, const torch::Tensor& t,
                               std::int64_t window) {
  SL_CHECK(window >= 2 && t.size(0) >= window, ShapeError, "windowed_rollout: window ", window, " for ", t.size(0),
           " time samples");
  const auto windows = t.size(0) / window;
  std::vector<torch::Tensor> parts;
  auto start = x0;
  for (std::int64_t w = 0; w < windows; ++w) {
    const auto tw = t.narrow(0, w * window, window);
    const auto y = rollout(start, tw);  // [M, window, d], y[:, 0] = start
    parts.push_back(y);
    start = y.select(1, window - 1);
  }
  return torch::cat(parts, 1);
}

torch::Tensor windowed_rollout(const VectorField& f, const torch::Tensor& x0, const torch::Tensor& t, std::int64_t window) {
  return windowed_rollout(ode_rollout(f), x0, t, window);
}

}  // namespace stablelearn::lfd
