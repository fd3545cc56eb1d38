// Gradient checking as a library facility (shared/STYLE.md #8; libtorch 1.13's C++ API has none).
//
// gradcheck compares the analytic Jacobian J_a (one vector-Jacobian product per output element,
// through torch::autograd::grad) with the central-difference Jacobian
//     J_n[:, k] = (f(x + ε e_k) − f(x − ε e_k)) / (2ε)
// for every input element k of every input that requires grad, in float64, and passes iff
//     |J_a − J_n| ≤ atol + rtol · |J_n|   element-wise
// (the criterion of torch.autograd.gradcheck). The result names the worst element (largest
// |J_a − J_n| / (atol + rtol |J_n|)) by input, flat input index and flat output index.
//
// gradgradcheck checks the double-backward path: with fixed random grad_outputs v it forms
//     G(x, v) = ∂(vᵀ f(x))/∂x   (torch::autograd::grad with create_graph = true)
// and runs gradcheck on G w.r.t. (x, v), as torch.autograd.gradgradcheck does.
//
// Cost: #outputs backward passes plus 2·#inputs forward passes; keep the problem small.
#pragma once

#include <cstdint>
#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include <torch/types.h>

namespace stablelearn::testing {

/// A function of several tensors with one tensor output (concatenate several outputs yourself).
using GradcheckFn = std::function<torch::Tensor(const std::vector<torch::Tensor>& inputs)>;

struct GradcheckResult {
  bool ok = true;
  std::int64_t checked_inputs = 0;    ///< inputs that require grad
  std::int64_t checked_entries = 0;   ///< Jacobian entries compared
  double max_abs_error = 0.0;         ///< max |J_a − J_n|
  double max_rel_error = 0.0;         ///< max |J_a − J_n| / max(|J_n|, atol)
  std::int64_t worst_input = -1;      ///< input (position in `inputs`) of the worst entry
  std::int64_t worst_input_index = -1;   ///< flat element index inside that input
  std::int64_t worst_output_index = -1;  ///< flat element index of the output
  double worst_analytic = 0.0;
  double worst_numeric = 0.0;
  std::string message;                ///< one line: verdict and the worst entry

  explicit operator bool() const { return ok; }
};
std::ostream& operator<<(std::ostream& os, const GradcheckResult& r);

/// Checks fn's first derivatives at `inputs` (all float64; those with requires_grad() are
/// checked, the others are constants). ShapeError for non-float64 inputs or no input to check.
GradcheckResult gradcheck(const GradcheckFn& fn, const std::vector<torch::Tensor>& inputs,
                          double eps = 1e-6, double atol = 1e-5, double rtol = 1e-3);

/// Checks the second derivatives (double backward) of fn at `inputs`; grad_outputs v are drawn
/// N(0, 1) from a generator seeded with `seed` (the global generator is not touched).
GradcheckResult gradgradcheck(const GradcheckFn& fn, const std::vector<torch::Tensor>& inputs,
                              double eps = 1e-6, double atol = 1e-5, double rtol = 1e-3,
                              std::uint64_t seed = 0);

}  // namespace stablelearn::testing
