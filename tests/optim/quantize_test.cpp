// INT-k fake quantisation against values worked out by hand, its error bound, and the gradients
// of the straight-through and forward-and-backward forms.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "stablelearn/core/error.h"
#include "stablelearn/optim/quantize.h"

namespace so = stablelearn::optim;

TEST(FakeQuantize, HandExamplesIncludingTheZeroPointAndHalfToEven) {
  // [0, 1, 2, 3] in 2 bits: s = 1, z = 0, exact.
  const auto a = torch::tensor({0.0, 1.0, 2.0, 3.0}, torch::kFloat64);
  EXPECT_TRUE(torch::equal(so::fake_quantize(a, 2, 4), a));
  // [-1, 0, 0.5, 2]: s = 3/3 = 1, z = -round(-1) = 1, q = round(x) + 1 = [0, 1, 1 (0.5 -> 0), 3].
  const auto b = torch::tensor({-1.0, 0.0, 0.5, 2.0}, torch::kFloat64);
  EXPECT_TRUE(torch::equal(so::fake_quantize(b, 2, 4), torch::tensor({-1.0, 0.0, 0.0, 2.0}, torch::kFloat64)));
  // Two groups are quantised independently: [0, 3 | 0, 30] in 2 bits, s = 1 and 10.
  // Two groups are quantised independently: [0, 3, 1.4 | 0, 30, 16] in 2 bits, s = 1 and 10.
  const auto c2 = so::fake_quantize(torch::tensor({0.0, 3.0, 1.4, 0.0, 30.0, 16.0}, torch::kFloat64), 2, 3);
  EXPECT_TRUE(torch::allclose(c2, torch::tensor({0.0, 3.0, 1.0, 0.0, 30.0, 20.0}, torch::kFloat64), 0, 1e-12)) << c2;
}

// The fused loop (contiguous CPU tensors) against the tensor formula (taken for a non-contiguous
// view): the same bits in float32 and float64, a NaN poisoning only its own group.
TEST(FakeQuantize, FusedLoopGivesTheTensorFormulasBits) {
  torch::manual_seed(3);
  for (auto dtype : {torch::kFloat32, torch::kFloat64}) {
    auto x = (torch::randn({64, 48}, dtype) * 3).t();  // [48, 64], non-contiguous
    ASSERT_FALSE(x.is_contiguous());
    for (int bits : {4, 8}) {
      const auto tensor_path = so::fake_quantize(x, bits, 64);
      const auto fused = so::fake_quantize(x.contiguous(), bits, 64);
      EXPECT_TRUE(torch::equal(tensor_path, fused)) << bits << " bits " << (tensor_path - fused).abs().max();
    }
    // Group sizes that are not a multiple of the scan's four lanes, and groups whose |x/s| exceed
    // the branch-free rounding's range (a huge offset with a tiny spread: s = 1e-5/15), both paths.
    auto odd = torch::randn({5, 6}, dtype);
    odd[2] = 1e6 + 1e-7 * torch::arange(6, dtype);
    odd[4].fill_(-3e5);
    odd[3].zero_();
    for (int bits : {4, 8}) {
      const auto tensor_path = so::fake_quantize(odd.t().contiguous().t(), bits, 6);
      ASSERT_FALSE(odd.t().contiguous().t().is_contiguous());
      const auto fused = so::fake_quantize(odd, bits, 6);
      EXPECT_TRUE(torch::equal(tensor_path, fused)) << bits << " bits, odd groups " << (tensor_path - fused).abs().max();
    }
    auto y = torch::randn({4, 8}, dtype);
    y.index_put_({1, 3}, std::nan(""));
    const auto q = so::fake_quantize(y, 4, 8);
    EXPECT_TRUE(q[1].isnan().all().item<bool>());
    EXPECT_FALSE(q[0].isnan().any().item<bool>());
    EXPECT_TRUE(torch::equal(q.isnan(), so::fake_quantize(y.t().contiguous().t(), 4, 8).isnan()));
  }
}

TEST(FakeQuantize, Int4ErrorIsAtMostOneStepPerGroup) {
  torch::manual_seed(1);
  const auto x = torch::randn({8, 256}, torch::kFloat64) * torch::linspace(0.1, 10, 8, torch::kFloat64).unsqueeze(1);
  const auto q = so::fake_quantize(x, 4, 256);
  const auto step = (std::get<0>(x.max(1)) - std::get<0>(x.min(1))) / 15;
  const auto err = std::get<0>((q - x).abs().max(1));
  // Round-to-nearest of x/s plus an integer zero point: at most s/2, plus the zero point's own
  // rounding (min/s rounded) which shifts the grid by up to s/2 at the ends.
  EXPECT_TRUE((err <= step + 1e-12).all().item<bool>()) << err << step;
  // 16 levels at most per group.
  for (int r = 0; r < 8; ++r) EXPECT_LE(std::get<0>(at::_unique(q[r])).numel(), 16);
}

TEST(FakeQuantize, StraightThroughPassesTheGradientAndForwardBackwardQuantisesIt) {
  auto w = torch::randn({4, 8}, torch::kFloat64).requires_grad_();
  const auto up = torch::randn({4, 8}, torch::kFloat64);
  (so::fake_quantize_ste(w, 4, 8) * up).sum().backward();
  EXPECT_TRUE(torch::equal(w.grad(), up));
  EXPECT_TRUE(torch::equal(so::fake_quantize_ste(w, 4, 8).detach(), so::fake_quantize(w, 4, 8)));

  auto x = torch::randn({4, 8}, torch::kFloat64).requires_grad_();
  const auto y = so::quantize_forward_backward(x, 4, 8);
  EXPECT_TRUE(torch::equal(y.detach(), so::fake_quantize(x, 4, 8)));
  (y * up).sum().backward();
  EXPECT_TRUE(torch::equal(x.grad(), so::fake_quantize(up, 4, 8)));
}

TEST(QuantLinear, ForwardIsTheLinearMapOfQuantisedWeightsAndInputs) {
  torch::manual_seed(2);
  so::QuantLinear layer(so::QuantLinearOptions(16, 8).weight_group(32).activation_group(16));
  const auto x = torch::randn({5, 16});
  const auto want = torch::nn::functional::linear(so::fake_quantize(x, 4, 16), so::fake_quantize(layer->linear->weight, 4, 32),
                                                  layer->linear->bias);
  EXPECT_TRUE(torch::allclose(layer->forward(x), want, 1e-6, 1e-6));
  EXPECT_THROW(so::QuantLinear(so::QuantLinearOptions(10, 3).weight_group(7)), stablelearn::ConfigError);
  EXPECT_THROW(so::fake_quantize(torch::zeros({5}), 4, 2), stablelearn::ConfigError);
  EXPECT_THROW(so::fake_quantize(torch::zeros({4}), 1, 2), stablelearn::ConfigError);
}
