#include "stablelearn/testing/gradcheck.h"

#include <cmath>
#include <limits>
#include <sstream>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/csrc/autograd/autograd.h>

#include "stablelearn/core/error.h"

namespace stablelearn::testing {

std::ostream& operator<<(std::ostream& os, const GradcheckResult& r) { return os << r.message; }

GradcheckResult gradcheck(const GradcheckFn& fn, const std::vector<torch::Tensor>& inputs,
                          double eps, double atol, double rtol) {
  SL_CHECK(eps > 0 && atol >= 0 && rtol >= 0, ConfigError,
           "gradcheck: eps must be positive and atol, rtol non-negative");
  torch::AutoGradMode enable_grad(true);
  // Private leaf copies: the caller's tensors are never modified.
  std::vector<torch::Tensor> xs;
  std::vector<std::size_t> checked;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const auto& in = inputs[i];
    if (in.defined() && in.requires_grad()) {
      SL_CHECK(in.scalar_type() == torch::kFloat64, ShapeError, "gradcheck: input ", i,
               " must be float64 (got ", in.scalar_type(), ")");
      checked.push_back(i);
      xs.push_back(in.detach().clone().contiguous().requires_grad_(true));
    } else {
      xs.push_back(in.defined() ? in.detach() : in);
    }
  }
  SL_CHECK(!checked.empty(), ShapeError, "gradcheck: no input requires grad");

  GradcheckResult res;
  res.checked_inputs = static_cast<std::int64_t>(checked.size());

  // Analytic Jacobian, one row per output element: J_a[i][j, k] = ∂out_j / ∂x_i[k].
  auto out = fn(xs);
  SL_CHECK(out.defined() && out.scalar_type() == torch::kFloat64, ShapeError,
           "gradcheck: the function must return a float64 tensor");
  const auto m = out.numel();
  auto flat_out = out.reshape({-1});
  std::vector<torch::Tensor> diff;
  for (auto i : checked) diff.push_back(xs[i]);
  std::vector<torch::Tensor> analytic;
  for (auto i : checked) analytic.push_back(torch::zeros({m, xs[i].numel()}, torch::kFloat64));
  if (out.requires_grad()) {
    for (std::int64_t j = 0; j < m; ++j) {
      auto g = torch::autograd::grad({flat_out[j]}, diff, /*grad_outputs=*/{}, /*retain_graph=*/true,
                                     /*create_graph=*/false, /*allow_unused=*/true);
      for (std::size_t c = 0; c < diff.size(); ++c)
        if (g[c].defined()) analytic[c][j].copy_(g[c].reshape({-1}));
    }
  }

  // Numeric Jacobian by central differences; grad mode stays on (fn may itself differentiate).
  double worst_ratio = -1.0;
  for (std::size_t c = 0; c < checked.size(); ++c) {
    auto& x = xs[checked[c]];
    auto data = x.detach().view({-1});  // shares storage with the leaf
    auto A = analytic[c].accessor<double, 2>();
    for (std::int64_t k = 0; k < data.numel(); ++k) {
      const double orig = data[k].item<double>();
      data[k].fill_(orig + eps);
      auto plus = fn(xs).detach().reshape({-1}).clone();
      data[k].fill_(orig - eps);
      auto minus = fn(xs).detach().reshape({-1}).clone();
      data[k].fill_(orig);
      SL_CHECK(plus.numel() == m, ShapeError, "gradcheck: output size changed under perturbation");
      auto col = ((plus - minus) / (2.0 * eps)).contiguous();
      const double* N = col.data_ptr<double>();
      for (std::int64_t j = 0; j < m; ++j) {
        const double a = A[j][k], n = N[j];
        const double diffv = std::abs(a - n);
        double ratio = diffv / (atol + rtol * std::abs(n));
        if (!std::isfinite(a) || !std::isfinite(n)) ratio = std::numeric_limits<double>::infinity();
        ++res.checked_entries;
        res.max_abs_error = std::max(
            res.max_abs_error, std::isfinite(diffv) ? diffv : std::numeric_limits<double>::infinity());
        res.max_rel_error = std::max(res.max_rel_error, diffv / std::max(std::abs(n), std::max(atol, 1e-300)));
        if (ratio > worst_ratio) {
          worst_ratio = ratio;
          res.worst_input = static_cast<std::int64_t>(checked[c]);
          res.worst_input_index = k;
          res.worst_output_index = j;
          res.worst_analytic = a;
          res.worst_numeric = n;
        }
      }
    }
  }
  res.ok = worst_ratio <= 1.0;
  std::ostringstream os;
  os.precision(6);
  os << (res.ok ? "gradcheck passed" : "gradcheck FAILED") << ": " << res.checked_entries
     << " Jacobian entries of " << res.checked_inputs << " input(s), max abs error "
     << res.max_abs_error << ", max rel error " << res.max_rel_error << "; worst: input "
     << res.worst_input << " element " << res.worst_input_index << ", output element "
     << res.worst_output_index << ", analytic " << res.worst_analytic << " vs numeric "
     << res.worst_numeric << " (atol " << atol << ", rtol " << rtol << ", eps " << eps << ")";
  res.message = os.str();
  return res;
}

GradcheckResult gradgradcheck(const GradcheckFn& fn, const std::vector<torch::Tensor>& inputs,
                              double eps, double atol, double rtol, std::uint64_t seed) {
  torch::AutoGradMode enable_grad(true);
  std::vector<std::size_t> diff_pos;
  for (std::size_t i = 0; i < inputs.size(); ++i)
    if (inputs[i].defined() && inputs[i].requires_grad()) diff_pos.push_back(i);
  SL_CHECK(!diff_pos.empty(), ShapeError, "gradgradcheck: no input requires grad");

  const auto out_shape_probe = fn(inputs).detach();
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto v = at::normal(0.0, 1.0, out_shape_probe.sizes(), gen, torch::TensorOptions(torch::kFloat64));

  // G(x, v) = ∂(vᵀ f(x))/∂x for the inputs that require grad, flattened and concatenated.
  GradcheckFn G = [&fn, diff_pos](const std::vector<torch::Tensor>& xv) {
    std::vector<torch::Tensor> xs(xv.begin(), xv.end() - 1);
    const auto& vv = xv.back();
    auto out = fn(xs);
    std::vector<torch::Tensor> diff;
    for (auto i : diff_pos) diff.push_back(xs[i]);
    auto g = torch::autograd::grad({out}, diff, {vv}, /*retain_graph=*/true, /*create_graph=*/true,
                                   /*allow_unused=*/true);
    std::vector<torch::Tensor> flat;
    for (std::size_t c = 0; c < g.size(); ++c)
      flat.push_back(g[c].defined() ? g[c].reshape({-1}) : torch::zeros({diff[c].numel()}, diff[c].options()));
    return torch::cat(flat);
  };
  std::vector<torch::Tensor> xv(inputs.begin(), inputs.end());
  xv.push_back(v.requires_grad_(true));
  auto res = gradcheck(G, xv, eps, atol, rtol);
  res.message = "grad" + res.message;
  return res;
}

}  // namespace stablelearn::testing
