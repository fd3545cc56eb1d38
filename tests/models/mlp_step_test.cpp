// MlpLossGrad against autograd (its reference): the loss and every gradient with the same bits as
// nll_loss(log_softmax(Classifier::forward(x), 1), y).backward() — the engine's cross-entropy —
// for several widths and batch sizes, with task masks, on one and two threads; and ten SGD-momentum
// steps of each path (torch::optim::SGD after autograd) ending in the same weights.
#include <gtest/gtest.h>
#include <torch/nn/functional/loss.h>
#include <torch/optim/sgd.h>

#include <ATen/Parallel.h>

#include <cstring>
#include <limits>

#include "stablelearn/core/error.h"
#include "stablelearn/models/classifier.h"
#include "stablelearn/models/mlp_step.h"
#include "testing.h"

namespace sl = stablelearn;
using sl::models::Classifier;
using sl::models::ClassifierOptions;
using sl::models::MlpLossGrad;

namespace {

bool same_bits(const torch::Tensor& a, const torch::Tensor& b) {
  const auto ac = a.contiguous(), bc = b.contiguous();
  return a.sizes() == b.sizes() && std::memcmp(ac.data_ptr(), bc.data_ptr(), ac.numel() * ac.element_size()) == 0;
}

/// The reference: the engine's autograd step (Context::logits + continual::cross_entropy).
double autograd_loss_grad(Classifier& c, const torch::Tensor& x, const torch::Tensor& y, const torch::Tensor& masked) {
  for (auto& p : c->weights()) const_cast<torch::Tensor&>(p).mutable_grad().reset();
  auto z = c->forward(x);
  if (masked.defined()) z = z.masked_fill(masked, -std::numeric_limits<float>::infinity());
  const auto loss = torch::nn::functional::nll_loss(torch::log_softmax(z, 1), y);
  const double v = loss.item<double>();
  loss.backward();
  return v;
}

void expect_same_as_autograd(const std::vector<std::int64_t>& hidden, std::int64_t batch, bool mask, int threads) {
  const int before = at::get_num_threads();
  at::set_num_threads(threads);
  torch::manual_seed(11);
  ClassifierOptions o;
  o.hidden = hidden;
  Classifier c(o);
  const auto x = torch::randn({batch, 1, 28, 28});
  const auto y = torch::randint(0, 10, {batch}, torch::kInt64);
  torch::Tensor masked;
  if (mask) {  // two classes per sample allowed: its own and the next one
    masked = torch::ones({batch, 10}, torch::kBool);
    for (std::int64_t i = 0; i < batch; ++i) {
      const auto k = y[i].item<std::int64_t>();
      masked[i][k] = false;
      masked[i][(k + 1) % 10] = false;
    }
  }
  MlpLossGrad step(*c);
  for (int rep = 0; rep < 2; ++rep) {  // the second pass reuses the buffers
    const double ref = autograd_loss_grad(c, x, y, masked);
    const double ours = step.forward(x, y, masked);
    EXPECT_EQ(std::memcmp(&ref, &ours, sizeof ref), 0) << ref << " vs " << ours;
    const auto& g = step.backward();
    ASSERT_EQ(g.size(), c->weights().size());
    for (std::size_t i = 0; i < g.size(); ++i)
      EXPECT_TRUE(same_bits(g[i], c->weights()[i].grad()))
          << "hidden " << hidden.size() << " batch " << batch << " mask " << mask << " threads " << threads << " weight " << i
          << ": max |diff| " << (g[i] - c->weights()[i].grad()).abs().max().item<double>();
  }
  at::set_num_threads(before);
}

}  // namespace

TEST(MlpLossGrad, SameBitsAsAutogradForTheDefaultMlp) {
  for (std::int64_t batch : {10, 128, 96, 1}) expect_same_as_autograd({400, 400}, batch, false, 1);
}

TEST(MlpLossGrad, SameBitsAsAutogradWithTaskMasksAndOtherDepths) {
  expect_same_as_autograd({400, 400}, 32, true, 1);
  expect_same_as_autograd({}, 17, false, 1);
  expect_same_as_autograd({33, 7, 5}, 20, true, 1);
}

TEST(MlpLossGrad, SameBitsAsAutogradOnTwoThreads) {
  for (std::int64_t batch : {10, 128}) expect_same_as_autograd({400, 400}, batch, false, 2);
}

TEST(MlpLossGrad, TenSgdMomentumStepsGiveTheSameWeightsAsAutograd) {
  torch::manual_seed(5);
  ClassifierOptions o;
  o.hidden = {64, 32};
  Classifier ref(o), ours(o);
  {
    torch::NoGradGuard no_grad;
    for (std::size_t i = 0; i < ref->weights().size(); ++i) const_cast<torch::Tensor&>(ours->weights()[i]).copy_(ref->weights()[i]);
  }
  torch::optim::SGD ref_opt(ref->weights(), torch::optim::SGDOptions(0.05).momentum(0.9));
  torch::optim::SGD our_opt(ours->weights(), torch::optim::SGDOptions(0.05).momentum(0.9));
  MlpLossGrad step(*ours);
  for (int s = 0; s < 10; ++s) {
    const auto x = torch::randn({16, 1, 28, 28}), y = torch::randint(0, 10, {16}, torch::kInt64);
    autograd_loss_grad(ref, x, y, {});
    ref_opt.step();
    step.forward(x, y);
    const auto& g = step.backward();
    for (std::size_t i = 0; i < g.size(); ++i) const_cast<torch::Tensor&>(ours->weights()[i]).mutable_grad() = g[i].clone();
    our_opt.step();
  }
  for (std::size_t i = 0; i < ref->weights().size(); ++i) EXPECT_TRUE(same_bits(ref->weights()[i], ours->weights()[i])) << i;
}

TEST(MlpLossGrad, RefusesCnnsAndBadShapes) {
  ClassifierOptions o;
  o.kind = "cnn";
  EXPECT_FALSE(MlpLossGrad::supports(*Classifier(o)));
  ClassifierOptions m;
  m.hidden = {8};
  Classifier c(m);
  MlpLossGrad step(*c);
  sl::testing::expect_error<sl::ShapeError>([&] { step.forward(torch::randn({2, 784}), torch::zeros({2}, torch::kInt64)); },
                                            "expected images");
  sl::testing::expect_error<sl::UsageError>([&] { MlpLossGrad(*c).backward(); }, "before forward");
}

TEST(MlpLossGrad, ReadyCallsGoOutputLayerFirstAfterTheLastReadOfEachLayer) {
  torch::manual_seed(3);
  ClassifierOptions o;
  o.hidden = {16, 8};
  Classifier c(o);
  MlpLossGrad step(*c);
  const auto x = torch::randn({4, 1, 28, 28}), y = torch::randint(0, 10, {4}, torch::kInt64);
  step.forward(x, y);
  const auto plain = [&] {
    std::vector<torch::Tensor> g;
    for (const auto& t : step.backward()) g.push_back(t.clone());
    return g;
  }();
  // Overwriting each layer's weights in the callback must not change the gradients that follow.
  step.forward(x, y);
  std::vector<std::pair<std::size_t, std::size_t>> calls;
  std::vector<torch::Tensor> saved;
  for (const auto& w : c->weights()) saved.push_back(w.detach().clone());
  const auto& g = step.backward([&](std::size_t first, std::size_t count) {
    calls.emplace_back(first, count);
    torch::NoGradGuard no_grad;
    for (std::size_t k = first; k < first + count; ++k) const_cast<torch::Tensor&>(c->weights()[k]).fill_(123.0f);
  });
  EXPECT_EQ(calls, (std::vector<std::pair<std::size_t, std::size_t>>{{4, 2}, {2, 2}, {0, 2}}));
  for (std::size_t i = 0; i < g.size(); ++i) EXPECT_TRUE(same_bits(g[i], plain[i])) << i;
}
