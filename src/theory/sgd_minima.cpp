#include "stablelearn/theory/sgd_minima.h"

#include <cmath>
#include <limits>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include "stablelearn/core/error.h"

namespace stablelearn::theory {

namespace {

void check_inputs(const torch::Tensor& x, std::int64_t d, const char* what) {
  SL_CHECK(x.defined() && x.dim() == 2 && x.size(1) == d, ShapeError, what, ": inputs must be [n, ", d, "], got ",
           x.defined() ? x.sizes() : torch::IntArrayRef{});
}

void check_targets(const torch::Tensor& x, const torch::Tensor& y, const char* what) {
  SL_CHECK(y.defined() && y.dim() == 1 && y.size(0) == x.size(0), ShapeError, what, ": targets must be [", x.size(0), "], got ",
           y.defined() ? y.sizes() : torch::IntArrayRef{});
}

void check_net(const DiagonalNetwork& net) {
  SL_CHECK(net.u.defined() && net.v.defined() && net.u.dim() == 1 && net.u.sizes() == net.v.sizes(), ShapeError,
           "diagonal network: u and v must be vectors of one length");
}

void check_net(const TwoLayerRelu& net) {
  SL_CHECK(net.a.defined() && net.W.defined() && net.a.dim() == 1 && net.W.dim() == 2 && net.W.size(0) == net.a.size(0), ShapeError,
           "two-layer ReLU network: a must be [m] and W [m, d]");
}

std::int64_t input_dim(const DiagonalNetwork& net) { return net.u.size(0); }
std::int64_t input_dim(const TwoLayerRelu& net) { return net.W.size(1); }

// One step of rate lr on the mean loss of the batch (xb, yb), in place.
void step(DiagonalNetwork& net, const torch::Tensor& xb, const torch::Tensor& yb, double lr) {
  const auto r = torch::mv(xb, net.u * net.v) - yb;  // [B]
  const auto g = torch::mv(xb.t(), r).mul_(lr / static_cast<double>(xb.size(0)));  // η (1/B) Σ r_i x_i
  const auto u_old = net.u.clone();
  net.u.sub_(g * net.v);
  net.v.sub_(g * u_old);
}

void step(TwoLayerRelu& net, const torch::Tensor& xb, const torch::Tensor& yb, double lr) {
  const auto h = torch::mm(xb, net.W.t());  // [B, m]
  const auto z = torch::relu(h);
  const auto r = torch::mv(z, net.a) - yb;  // [B]
  const double s = lr / static_cast<double>(xb.size(0));
  const auto ga = torch::mv(z.t(), r);                                             // Σ r_i z_i
  const auto gW = torch::mm((r.unsqueeze(1) * net.a.unsqueeze(0) * (h > 0)).t(), xb);  // Σ r_i (a ⊙ 1[h_i > 0]) x_iᵀ
  net.a.sub_(ga, s);
  net.W.sub_(gW, s);
}

template <class Net>
DescentResult descent(Net& net, const torch::Tensor& x, const torch::Tensor& y, const DescentOptions& o) {
  check_net(net);
  check_inputs(x, input_dim(net), "train_descent");
  check_targets(x, y, "train_descent");
  const auto n = x.size(0);
  SL_CHECK(std::isfinite(o.lr) && o.lr > 0, ConfigError, "lr: must be > 0, got ", o.lr);
  SL_CHECK(o.batch_size >= 0 && o.batch_size <= n, ConfigError, "batch_size: must be in [0, n = ", n, "] (0 = full batch), got ",
           o.batch_size);
  SL_CHECK(o.max_steps >= 1, ConfigError, "max_steps: must be >= 1, got ", o.max_steps);
  SL_CHECK(o.loss_tol >= 0, ConfigError, "loss_tol: must be >= 0, got ", o.loss_tol);
  SL_CHECK(o.eval_every >= 0, ConfigError, "eval_every: must be >= 0, got ", o.eval_every);
  torch::NoGradGuard no_grad;
  const bool full = o.batch_size == 0 || o.batch_size == n;
  const auto b = full ? n : o.batch_size;
  const auto every = o.eval_every > 0 ? o.eval_every : std::max<std::int64_t>(1, n / b);
  auto gen = at::detail::createCPUGenerator(o.seed);
  DescentResult res;
  auto loss = [&] { return mean_squared_loss(network_outputs(net, x), y); };
  res.initial_loss = res.final_loss = loss();
  const auto idx_opts = torch::TensorOptions().dtype(torch::kLong);
  std::vector<std::int64_t> single;
  while (res.steps < o.max_steps && res.final_loss > o.loss_tol) {
    const auto chunk = std::min(every, o.max_steps - res.steps);
    if (!full && b == 1) {
      const auto draw = torch::randint(n, {chunk}, gen, idx_opts);
      single.assign(draw.data_ptr<std::int64_t>(), draw.data_ptr<std::int64_t>() + chunk);
    }
    for (std::int64_t s = 0; s < chunk; ++s) {
      if (full) {
        step(net, x, y, o.lr);
      } else if (b == 1) {
        const auto i = single[static_cast<std::size_t>(s)];
        step(net, x.narrow(0, i, 1), y.narrow(0, i, 1), o.lr);
      } else {
        const auto idx = torch::randperm(n, gen, idx_opts).narrow(0, 0, b).to(x.device());
        step(net, x.index_select(0, idx), y.index_select(0, idx), o.lr);
      }
    }
    res.steps += chunk;
    res.final_loss = loss();
    if (!std::isfinite(res.final_loss) || res.final_loss > o.divergence) {
      res.diverged = true;
      break;
    }
  }
  res.converged = !res.diverged && res.final_loss <= o.loss_tol;
  return res;
}

template <class Net>
MinimumCurvature curvature(const Net& net, const torch::Tensor& x, const torch::Tensor& y) {
  torch::NoGradGuard no_grad;
  MinimumCurvature c;
  c.loss = mean_squared_loss(network_outputs(net, x), y);
  const torch::Tensor h = loss_hessian(net, x, y);
  c.trace = h.trace().item<double>();
  // NaN for a diverged run (eigvalsh fails on non-finite input)
  c.lambda_max = torch::isfinite(h).all().item<bool>() ? torch::linalg_eigvalsh(h).max().item<double>() : std::nan("");
  const torch::Tensor j = network_jacobian(net, x);
  c.gauss_newton_trace = j.square().sum().item<double>() / static_cast<double>(x.size(0));
  return c;
}

}  // namespace

torch::Tensor network_outputs(const DiagonalNetwork& net, const torch::Tensor& x) {
  check_net(net);
  check_inputs(x, input_dim(net), "network_outputs");
  return torch::mv(x, net.beta());
}

torch::Tensor network_outputs(const TwoLayerRelu& net, const torch::Tensor& x) {
  check_net(net);
  check_inputs(x, input_dim(net), "network_outputs");
  return torch::mv(torch::relu(torch::mm(x, net.W.t())), net.a);
}

torch::Tensor network_jacobian(const DiagonalNetwork& net, const torch::Tensor& x) {
  check_net(net);
  check_inputs(x, input_dim(net), "network_jacobian");
  return torch::cat({x * net.v, x * net.u}, 1);
}

torch::Tensor network_jacobian(const TwoLayerRelu& net, const torch::Tensor& x) {
  check_net(net);
  check_inputs(x, input_dim(net), "network_jacobian");
  const auto h = torch::mm(x, net.W.t());                                          // [n, m]
  const auto gw = (net.a.unsqueeze(0) * (h > 0)).unsqueeze(2) * x.unsqueeze(1);  // [n, m, d]
  return torch::cat({torch::relu(h), gw.reshape({x.size(0), -1})}, 1);
}

double mean_squared_loss(const torch::Tensor& outputs, const torch::Tensor& y) {
  return 0.5 * (outputs - y).square().mean().item<double>();
}

torch::Tensor loss_hessian(const DiagonalNetwork& net, const torch::Tensor& x, const torch::Tensor& y) {
  const auto j = network_jacobian(net, x);
  check_targets(x, y, "loss_hessian");
  const auto n = static_cast<double>(x.size(0));
  const auto d = input_dim(net);
  auto h = torch::mm(j.t(), j) / n;
  const auto c = torch::mv(x.t(), network_outputs(net, x) - y) / n;  // (1/n) Σ r_i x_i
  const auto k = torch::arange(d, torch::TensorOptions().dtype(torch::kLong).device(x.device()));
  h.index_put_({k, k + d}, c, /*accumulate=*/true);
  h.index_put_({k + d, k}, c, /*accumulate=*/true);
  return h;
}

torch::Tensor loss_hessian(const TwoLayerRelu& net, const torch::Tensor& x, const torch::Tensor& y) {
  const auto j = network_jacobian(net, x);
  check_targets(x, y, "loss_hessian");
  const auto n = static_cast<double>(x.size(0));
  const auto m = net.a.size(0), d = input_dim(net);
  auto h = torch::mm(j.t(), j) / n;
  const auto pre = torch::mm(x, net.W.t());
  const auto r = torch::mv(torch::relu(pre), net.a) - y;
  const auto c = torch::mm((r.unsqueeze(1) * (pre > 0)).t(), x) / n;  // [m, d]: (1/n) Σ r_i 1[w_j·x_i > 0] x_i
  const auto opts = torch::TensorOptions().dtype(torch::kLong).device(x.device());
  const auto rows = torch::arange(m, opts).repeat_interleave(d);  // a_j
  const auto cols = m + torch::arange(m * d, opts);               // w_jk at m + j d + k
  const auto vals = c.reshape({-1});
  h.index_put_({rows, cols}, vals, true);
  h.index_put_({cols, rows}, vals, true);
  return h;
}

MinimumCurvature minimum_curvature(const DiagonalNetwork& net, const torch::Tensor& x, const torch::Tensor& y) {
  return curvature(net, x, y);
}
MinimumCurvature minimum_curvature(const TwoLayerRelu& net, const torch::Tensor& x, const torch::Tensor& y) {
  return curvature(net, x, y);
}

DescentResult train_descent(DiagonalNetwork& net, const torch::Tensor& x, const torch::Tensor& y, const DescentOptions& o) {
  return descent(net, x, y, o);
}
DescentResult train_descent(TwoLayerRelu& net, const torch::Tensor& x, const torch::Tensor& y, const DescentOptions& o) {
  return descent(net, x, y, o);
}

}  // namespace stablelearn::theory
