// Self-tests of stablelearn::testing::gradcheck / gradgradcheck (the facility lives in
// src/testing; its tests sit in the models suite, its first user).
#include <cmath>

#include <gtest/gtest.h>
#include <torch/types.h>
#include <torch/csrc/autograd/custom_function.h>

#include "stablelearn/core/error.h"
#include "stablelearn/testing/gradcheck.h"

namespace {

using stablelearn::testing::gradcheck;
using stablelearn::testing::gradgradcheck;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

torch::Tensor dvec(std::vector<double> v) {
  return torch::tensor(v, torch::kFloat64).requires_grad_(true);
}

// x ↦ x² with a deliberately wrong backward (returns g·x instead of g·2x).
struct WrongSquare : public torch::autograd::Function<WrongSquare> {
  static torch::Tensor forward(AutogradContext* ctx, torch::Tensor x) {
    ctx->save_for_backward({x});
    return x * x;
  }
  static variable_list backward(AutogradContext* ctx, variable_list g) {
    auto x = ctx->get_saved_variables()[0];
    return {g[0] * x};
  }
};

// x ↦ x³ whose backward is right in value (3x²) but written as 3·x·detach(x), so its own
// derivative (the double backward) is 3x instead of 6x.
struct CubeWrongSecond : public torch::autograd::Function<CubeWrongSecond> {
  static torch::Tensor forward(AutogradContext* ctx, torch::Tensor x) {
    ctx->save_for_backward({x});
    return x * x * x;
  }
  static variable_list backward(AutogradContext* ctx, variable_list g) {
    auto x = ctx->get_saved_variables()[0];
    return {g[0] * 3.0 * x * x.detach()};
  }
};

TEST(Gradcheck, PassesOnFunctionsWithKnownGradients) {
  auto x = dvec({0.3, -1.2, 2.0});
  auto y = dvec({0.7, 0.1});
  // f(x, y) = [sin(x) · Σy², exp(x₀ y₁), (x·x)ᵀ y-ish]: smooth, mixed dependencies.
  auto fn = [](const std::vector<torch::Tensor>& in) {
    const auto& a = in[0];
    const auto& b = in[1];
    return torch::cat({torch::sin(a) * (b * b).sum(), torch::exp(a.slice(0, 0, 1) * b.slice(0, 1, 2)),
                       (a.slice(0, 0, 2) * a.slice(0, 1, 3) * b)});
  };
  auto r = gradcheck(fn, {x, y});
  EXPECT_TRUE(r.ok) << r;
  EXPECT_EQ(r.checked_inputs, 2);
  EXPECT_EQ(r.checked_entries, 6 * 3 + 6 * 2);
  EXPECT_LT(r.max_abs_error, 1e-8) << r;
  // The caller's tensors are untouched.
  EXPECT_DOUBLE_EQ(x[1].item<double>(), -1.2);
}

TEST(Gradcheck, ConstantInputsAreNotChecked) {
  auto x = dvec({1.0, 2.0});
  auto c = torch::tensor({3.0, 4.0}, torch::kFloat64);  // no grad
  auto r = gradcheck([](const std::vector<torch::Tensor>& in) { return in[0] * in[1]; }, {x, c});
  EXPECT_TRUE(r.ok) << r;
  EXPECT_EQ(r.checked_inputs, 1);
  EXPECT_EQ(r.checked_entries, 4);
}

TEST(Gradcheck, FailsOnAWrongBackwardAndNamesTheWorstEntry) {
  auto x = dvec({1.0, -2.0, 3.0});
  auto r = gradcheck([](const std::vector<torch::Tensor>& in) { return WrongSquare::apply(in[0]); }, {x});
  EXPECT_FALSE(r.ok);
  EXPECT_FALSE(static_cast<bool>(r));
  // Analytic diag = x, numeric diag = 2x: the largest violation is at |x| = 3, element 2.
  EXPECT_EQ(r.worst_input, 0);
  EXPECT_EQ(r.worst_input_index, 2);
  EXPECT_EQ(r.worst_output_index, 2);
  EXPECT_NEAR(r.worst_analytic, 3.0, 1e-12);
  EXPECT_NEAR(r.worst_numeric, 6.0, 1e-6);
  EXPECT_NEAR(r.max_abs_error, 3.0, 1e-6);
  EXPECT_NEAR(r.max_rel_error, 0.5, 1e-6);
  EXPECT_NE(r.message.find("FAILED"), std::string::npos) << r.message;
}

TEST(Gradcheck, FailsOnAFunctionWithTooSmallEps) {
  // A kink: |x| at 0 has no derivative; the central difference gives 0, autograd gives 0 too —
  // but at x = 1e-7 with eps = 1e-6 the difference straddles the kink: 0.1 vs 1.
  auto x = dvec({1e-7});
  auto r = gradcheck([](const std::vector<torch::Tensor>& in) { return in[0].abs(); }, {x});
  EXPECT_FALSE(r.ok) << r;
  EXPECT_NEAR(r.worst_analytic, 1.0, 1e-12);
  EXPECT_NEAR(r.worst_numeric, 0.1, 1e-6);
}

TEST(Gradcheck, RejectsNonDoubleInputs) {
  auto x = torch::ones({2}, torch::kFloat32).requires_grad_(true);
  EXPECT_THROW(gradcheck([](const std::vector<torch::Tensor>& in) { return in[0] * 2; }, {x}),
               stablelearn::ShapeError);
  auto c = torch::ones({2}, torch::kFloat64);
  EXPECT_THROW(gradcheck([](const std::vector<torch::Tensor>& in) { return in[0] * 2; }, {c}),
               stablelearn::ShapeError);
}

TEST(Gradgradcheck, PassesOnSmoothFunctions) {
  auto x = dvec({0.4, -0.9, 1.3});
  auto w = dvec({0.5, 2.0, -1.0});
  auto fn = [](const std::vector<torch::Tensor>& in) {
    return torch::tanh(in[0] * in[1]) * in[0].pow(3) + torch::log1p(in[1] * in[1]);
  };
  auto r = gradgradcheck(fn, {x, w});
  EXPECT_TRUE(r.ok) << r;
  // G has 6 outputs; inputs are x, w and the 3 grad_outputs v.
  EXPECT_EQ(r.checked_inputs, 3);
  EXPECT_EQ(r.checked_entries, 6 * 9);
}

TEST(Gradgradcheck, FailsOnAWrongDoubleBackwardWhileGradcheckPasses) {
  auto x = dvec({0.5, -1.5, 2.0});
  auto fn = [](const std::vector<torch::Tensor>& in) { return CubeWrongSecond::apply(in[0]); };
  EXPECT_TRUE(gradcheck(fn, {x}).ok);
  auto r = gradgradcheck(fn, {x});
  EXPECT_FALSE(r.ok) << r;
  // ∂G/∂x is diag(3x·v) analytically instead of diag(6x·v): worst where |x v| is largest.
  EXPECT_EQ(r.worst_input, 0);
  EXPECT_NEAR(r.worst_numeric, 2.0 * r.worst_analytic, 1e-5 * std::abs(r.worst_numeric) + 1e-6);
}

}  // namespace
