// SgdMomentum against torch::optim::SGD (the reference it replaces): the same bits, step after
// step, for parameters of odd sizes (vector tails), with and without momentum, on one and on two
// threads (ATen splits the passes of its SGD at 32768 elements).
#include <gtest/gtest.h>
#include <torch/nn/functional/loss.h>
#include <torch/optim/sgd.h>

#include <ATen/Parallel.h>

#include <cstring>
#include <limits>

#include "stablelearn/models/classifier.h"
#include "stablelearn/models/mlp_step.h"
#include "stablelearn/optim/sgd.h"

namespace {

std::vector<torch::Tensor> make_params(std::uint64_t seed) {
  auto g = at::detail::createCPUGenerator(seed);
  std::vector<torch::Tensor> p;
  for (std::int64_t n : {1, 7, 16, 33, 1000, 70001}) p.push_back(torch::randn({n}, g).requires_grad_());
  p.push_back(torch::randn({400, 37}, g).requires_grad_());
  return p;
}

bool same_bits(const torch::Tensor& a, const torch::Tensor& b) {
  return a.sizes() == b.sizes() && std::memcmp(a.data_ptr(), b.data_ptr(), a.numel() * a.element_size()) == 0;
}

void expect_same_as_torch(double lr, double momentum, int threads) {
  const int before = at::get_num_threads();
  at::set_num_threads(threads);
  auto ref = make_params(1), ours = make_params(1);
  torch::optim::SGD torch_sgd(ref, torch::optim::SGDOptions(lr).momentum(momentum));
  stablelearn::optim::SgdMomentum sgd(ours, lr, momentum);
  EXPECT_STRNE(sgd.kernel(), "aten") << "no fused kernel reproduces ATen's SGD on this machine";
  auto g = at::detail::createCPUGenerator(2);
  for (int step = 0; step < 5; ++step) {
    for (std::size_t i = 0; i < ref.size(); ++i) {
      // Gradients on the scale that makes θ − η·b round differently when fused or not.
      const auto grad = torch::randn(ref[i].sizes(), g).div_(lr);
      if (step == 2 && i == 1) continue;  // a parameter without a gradient this step: skipped
      ref[i].mutable_grad() = grad.clone();
      ours[i].mutable_grad() = grad.clone();
    }
    torch_sgd.step();
    sgd.step();
    for (std::size_t i = 0; i < ref.size(); ++i) {
      EXPECT_TRUE(same_bits(ref[i], ours[i])) << "lr " << lr << " momentum " << momentum << " threads " << threads << " step "
                                              << step << " parameter " << i << ": max |diff| "
                                              << (ref[i] - ours[i]).abs().max().item<double>();
      ref[i].mutable_grad().reset();
      ours[i].mutable_grad().reset();
    }
  }
  at::set_num_threads(before);
}

}  // namespace

TEST(SgdMomentum, SameBitsAsTorchSgdWithMomentum) {
  expect_same_as_torch(0.01, 0.9, 1);
  expect_same_as_torch(0.1, 0.5, 1);
}

TEST(SgdMomentum, SameBitsAsTorchSgdWithoutMomentum) { expect_same_as_torch(0.05, 0.0, 1); }

TEST(SgdMomentum, SameBitsAsTorchSgdOnTwoThreads) { expect_same_as_torch(0.01, 0.9, 2); }

TEST(SgdMomentum, ExplicitGradientsAndOtherDtypes) {
  // step(grads) with explicit gradients; float64 parameters take ATen's ops (same numbers).
  auto a = torch::randn({5, 3}, torch::kFloat64).requires_grad_(), b = a.detach().clone().requires_grad_();
  torch::optim::SGD ref({a}, torch::optim::SGDOptions(0.1).momentum(0.9));
  stablelearn::optim::SgdMomentum sgd({b}, 0.1, 0.9);
  for (int step = 0; step < 3; ++step) {
    const auto grad = torch::randn({5, 3}, torch::kFloat64);
    a.mutable_grad() = grad.clone();
    ref.step();
    sgd.step({grad});
  }
  EXPECT_TRUE(torch::equal(a, b));
  EXPECT_THROW(stablelearn::optim::SgdMomentum({b}, 0.0, 0.9), std::exception);
  EXPECT_THROW(stablelearn::optim::SgdMomentum({b}, 0.1, 1.0), std::exception);
}

// The engine's plain step (experiments/cl_run.cpp): models::MlpLossGrad adds each weight matrix's
// gradient into SgdMomentum's scaled momentum buffer by the product itself and each layer is updated
// as backward finishes it — against autograd + torch::optim::SGD: the same weights, bit for bit,
// after ten steps, at batch sizes 10, 128 and 300 (beyond OpenBLAS's K block for some shapes, where
// MlpLossGrad's check may turn the accumulation off), on one and two threads.
TEST(SgdMomentum, AccumulatedIntoByMlpLossGradGivesTorchSgdBits) {
  namespace models = stablelearn::models;
  const int before = at::get_num_threads();
  for (int threads : {1, 2}) {
    at::set_num_threads(threads);
    for (std::int64_t batch : {10, 128, 300}) {
      torch::manual_seed(4);
      models::ClassifierOptions o;
      o.hidden = {64, 32};
      models::Classifier ref(o), ours(o);
      {
        torch::NoGradGuard no_grad;
        for (std::size_t i = 0; i < ref->weights().size(); ++i) const_cast<torch::Tensor&>(ours->weights()[i]).copy_(ref->weights()[i]);
      }
      torch::optim::SGD torch_sgd(ref->weights(), torch::optim::SGDOptions(0.05).momentum(0.9));
      stablelearn::optim::SgdMomentum sgd(ours->weights(), 0.05, 0.9);
      models::MlpLossGrad step(*ours);
      bool accumulated = false;
      for (int s = 0; s < 10; ++s) {
        const auto x = torch::randn({batch, 1, 28, 28}), y = torch::randint(0, 10, {batch}, torch::kInt64);
        for (const auto& w : ref->weights()) const_cast<torch::Tensor&>(w).mutable_grad().reset();
        const auto loss = torch::nn::functional::nll_loss(torch::log_softmax(ref->forward(x), 1), y);
        loss.backward();
        torch_sgd.step();
        step.forward(x, y);
        std::vector<torch::Tensor> into(6);
        for (std::size_t k : {0, 2, 4}) into[k] = sgd.scaled_buffer(k);
        step.backward(
            [&](std::size_t first, std::size_t count) {
              for (std::size_t k = first; k < first + count; ++k) {
                if (step.accumulated(k))
                  sgd.step_accumulated(k);
                else
                  sgd.step(k, step.gradients()[k]);
              }
            },
            into);
        accumulated = accumulated || step.accumulated(0);
      }
      if (batch <= 128) {
        EXPECT_TRUE(accumulated) << "batch " << batch << " threads " << threads;  // the path is exercised
      }
      for (std::size_t i = 0; i < ref->weights().size(); ++i)
        EXPECT_TRUE(same_bits(ref->weights()[i], ours->weights()[i])) << "batch " << batch << " threads " << threads << " weight " << i;
    }
  }
  at::set_num_threads(before);
}

namespace {

std::int64_t count_subnormal(const torch::Tensor& t) {
  const auto a = t.abs();
  return (a.gt(0) & a.lt(std::numeric_limits<float>::min())).sum().item<std::int64_t>();
}

/// Momentum buffers that decay through the subnormal range (gradients that stop), subnormal
/// gradients, θ tiny or zero, and a learning rate above 4: SgdMomentum computes subnormal lanes
/// without floating-point operations on them (sgd.cpp), and must still give torch::optim::SGD's
/// bits, for its step(i, g) and for the accumulated path (scaled_buffer, add g, step_accumulated).
void expect_subnormals_as_torch(double lr, bool accumulated, bool flush = false) {
  const std::int64_t n = 4099;
  auto gen = at::detail::createCPUGenerator(7);
  auto theta = torch::randn({n}, gen);
  theta.narrow(0, 0, 300).mul_(1e-30);                           // θ below 2^-90: the plain FMA
  theta.narrow(0, 300, 100).mul_(1e-39);                         // θ subnormal
  theta.narrow(0, 400, 50).zero_();                              // θ = 0
  const auto start = torch::pow(10.0, torch::rand({n}, gen).mul(-16).sub(30));  // |g| in [1e-46, 1e-30]
  const auto sign = torch::randint(0, 2, {n}, gen).mul(2).sub(1);
  const auto tiny = start * sign;  // made before any flushing: subnormal values among them
  EXPECT_GT(count_subnormal(tiny), 500);
  auto ref = theta.clone().requires_grad_(), ours = theta.clone();
  // Flushing (FTZ + DAZ) for the first 100 steps where asked: copies keep the subnormal inputs,
  // arithmetic reads them as zero and writes zero for them. Then IEEE again for the last 100.
  struct Flush {
    bool on;
    explicit Flush(bool f) : on(f) {
      if (on) at::globalContext().setFlushDenormal(true);
    }
    void off() {
      if (on) at::globalContext().setFlushDenormal(false);
      on = false;
    }
    ~Flush() { off(); }
  } flushing(flush);
  torch::optim::SGD torch_sgd({ref}, torch::optim::SGDOptions(lr).momentum(0.9));
  stablelearn::optim::SgdMomentum sgd({ours}, lr, 0.9);
  std::int64_t seen = 0;
  for (int step = 0; step < 200; ++step) {
    if (step == 100) flushing.off();
    // Step 0: tiny gradients everywhere; then zero for most elements (their buffers decay as 0.9^t
    // through the subnormal range), tiny or normal for the others.
    torch::Tensor g;
    if (step == 0) {
      g = tiny.clone();
    } else {
      g = torch::zeros({n});
      g.narrow(0, 1000, 500).copy_(tiny.narrow(0, 1000, 500));  // tiny, subnormal ones among them
      g.narrow(0, 1500, 500).copy_(torch::randn({500}, gen));
    }
    ref.mutable_grad() = g.clone();
    torch_sgd.step();
    if (accumulated && step > 0) {
      auto buf = sgd.scaled_buffer(0);
      ASSERT_TRUE(buf.defined());
      buf.add_(g);
      sgd.step_accumulated(0);
    } else {
      sgd.step(0, g);
    }
    auto& st = static_cast<torch::optim::SGDParamState&>(*torch_sgd.state().at(c10::guts::to_string(ref.unsafeGetTensorImpl())));
    if (!flushing.on) seen += count_subnormal(st.momentum_buffer());
    if (accumulated && step > 0) {  // the buffer too: ours holds fl(μ·b) for the next step
      const auto expected = st.momentum_buffer().mul(0.9);
      ASSERT_TRUE(same_bits(expected, sgd.scaled_buffer(0))) << "lr " << lr << (flush ? " flushed at first" : "") << ", step " << step
                                                             << ": the momentum buffers differ";
    }
    ASSERT_TRUE(same_bits(ref.detach(), ours)) << "lr " << lr << (accumulated ? " accumulated" : " step") << (flush ? " flushed at first" : "") << ", step " << step
                                                << ": " << ref.detach().ne(ours).sum().item<std::int64_t>() << " elements differ";
  }
  EXPECT_GT(seen, flush ? 1000 : 10000) << "the buffers went through the subnormal range";  // the path is exercised
}

}  // namespace

TEST(SgdMomentum, SubnormalBuffersAndGradientsGiveTorchSgdBits) {
  for (const bool accumulated : {false, true})
    for (const double lr : {0.05, 5.0}) expect_subnormals_as_torch(lr, accumulated);
}

// With subnormals flushed (FTZ + DAZ in this thread, as at::globalContext().setFlushDenormal sets
// them), the same comparison: SgdMomentum must flush as ATen's ops do. One thread, so that every
// pass runs where the flags are set. step(i, g) only: the accumulated path scales the buffer one
// step early (step_accumulated), i.e. under the flags of that step, so switching the flags between
// steps changes its result by design.
#if defined(__x86_64__) || defined(__i386__)  // where ATen can flush subnormals (SSE's FTZ and DAZ)
TEST(SgdMomentum, FlushedSubnormalsGiveTorchSgdBits) {
  const int before = at::get_num_threads();
  at::set_num_threads(1);
  expect_subnormals_as_torch(0.05, false, true);
  at::set_num_threads(before);
}
#endif
