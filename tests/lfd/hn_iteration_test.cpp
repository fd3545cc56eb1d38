// hn_iteration_fused (HN's heads trained without forming their gradient) against the reference
// iteration, autograd through the whole hypernetwork (hn_iteration_autograd, whose pieces —
// Adam, the look-ahead, the regulariser at θ + Δθ — trainer_test.cpp checks against libtorch's
// Adam and hand values).
#include <cmath>
#include <memory>

#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include "stablelearn/lfd/hn_iteration.h"
#include "stablelearn/models/hypernetwork.h"

namespace sl = stablelearn;
namespace M = sl::models;
using sl::lfd::Adam;
using sl::lfd::HnIteration;

namespace {

// A target with a head of 600 rows (three row blocks of the fused passes, the last one partial), a
// scalar and small tensors.
M::WeightLayout target_layout() {
  M::WeightLayout l;
  l.add("w0", {30, 20}).add("b0", {30}).add("w1", {2, 30}).add("s", {}).add("b1", {2});
  return l;
}

/// One copy of the network with its optimisers and stored targets, run by one implementation.
struct Learner {
  std::shared_ptr<M::HyperNetworkImpl> net;
  std::unique_ptr<Adam> opt_theta, opt_emb;
  std::vector<torch::Tensor> targets;

  void begin_task(std::int64_t i, double lr) {
    torch::manual_seed(100 + static_cast<std::uint64_t>(i));
    ASSERT_EQ(net->add_task(), i);
    targets.clear();
    torch::NoGradGuard no_grad;
    for (std::int64_t j = 0; j < i; ++j) targets.push_back(net->forward_task(j).detach().clone());
    opt_theta = std::make_unique<Adam>(net->theta(), lr);
    opt_emb = std::make_unique<Adam>(std::vector<torch::Tensor>{net->task_embedding(i)}, lr);
  }
};

/// A smooth non-quadratic task loss of the generated weights, different per task.
torch::Tensor task_loss(const torch::Tensor& flat, std::int64_t task) {
  const auto n = flat.numel();
  auto idx = torch::arange(n, flat.options());
  const auto y = torch::sin(idx * (0.37 + 0.11 * static_cast<double>(task)));
  return (flat - 0.3 * y).pow(2).mean() + 0.05 * torch::log1p(flat.pow(2)).mean();
}

/// Largest |x − y| / (max|y| + tiny) over every tensor of two lists.
double max_rel(const std::vector<torch::Tensor>& x, const std::vector<torch::Tensor>& y) {
  double worst = 0;
  for (std::size_t k = 0; k < x.size(); ++k) {
    const auto xd = x[k].detach().to(torch::kFloat64), yd = y[k].detach().to(torch::kFloat64);
    const double scale = yd.abs().max().item<double>() + 1e-30;
    worst = std::max(worst, (xd - yd).abs().max().item<double>() / scale);
  }
  return worst;
}

struct Case {
  std::vector<std::int64_t> hidden;
  bool mip;
  torch::Dtype dtype;
  bool force_scalar;
  double tol;
};

/// Three tasks, `iters` iterations each, β = 0.05; task 2 regularises both past tasks, or one
/// sampled when `one_reg` (the same sample for both learners). Checks θ, the embeddings, Adam's
/// state, the losses and the regulariser after every iteration.
void compare(const Case& c, bool one_reg, int iters = 4) {
  const auto target = target_layout();
  torch::manual_seed(7);
  auto ref = std::make_shared<M::HyperNetworkImpl>(
      M::HyperNetworkOptions(target).hidden(c.hidden).task_emb_dim(6).mip(c.mip));
  ref->to(c.dtype);
  auto fused = std::dynamic_pointer_cast<M::HyperNetworkImpl>(ref->clone());
  ASSERT_TRUE(fused);
  Learner a{ref, {}, {}, {}}, b{fused, {}, {}, {}};
  const double lr = 5e-3;
  for (std::int64_t task = 0; task < 3; ++task) {
    a.begin_task(task, lr);
    b.begin_task(task, lr);
    for (int k = 0; k < iters; ++k) {
      HnIteration it;
      it.loss = [task](const torch::Tensor& flat) { return task_loss(flat, task); };
      if (task > 0) {
        it.beta = 0.05;
        it.reg_tasks = task == 2 && one_reg ? std::vector<std::int64_t>{k % 2} : std::vector<std::int64_t>{};
        if (it.reg_tasks.empty())
          for (std::int64_t j = 0; j < task; ++j) it.reg_tasks.push_back(j);
      }
      auto it_a = it, it_b = it;
      it_a.targets = &a.targets;
      it_b.targets = &b.targets;
      const auto ra = sl::lfd::hn_iteration_autograd(*a.net, task, *a.opt_theta, *a.opt_emb, it_a);
      ASSERT_TRUE(sl::lfd::hn_fused_applies(*b.net));
      const auto rb = sl::lfd::hn_iteration_fused(*b.net, task, *b.opt_theta, *b.opt_emb, it_b, c.force_scalar);
      SCOPED_TRACE("task " + std::to_string(task) + " iteration " + std::to_string(k));
      EXPECT_NEAR(rb.loss, ra.loss, c.tol * std::abs(ra.loss));
      EXPECT_NEAR(rb.reg, ra.reg, c.tol * std::abs(ra.reg) + 1e-30);
      if (task > 0) EXPECT_GT(ra.reg, 0.0);
      EXPECT_LE(max_rel(b.net->theta(), a.net->theta()), c.tol);
      EXPECT_LE(max_rel(b.net->task_embeddings(), a.net->task_embeddings()), c.tol);
      EXPECT_LE(max_rel(b.opt_theta->exp_avg(), a.opt_theta->exp_avg()), c.tol);
      EXPECT_LE(max_rel(b.opt_theta->exp_avg_sq(), a.opt_theta->exp_avg_sq()), c.tol);
    }
  }
  // The runs moved θ (a comparison of two untouched networks would pass trivially).
  torch::manual_seed(7);
  auto fresh = std::make_shared<M::HyperNetworkImpl>(
      M::HyperNetworkOptions(target).hidden(c.hidden).task_emb_dim(6).mip(c.mip));
  fresh->to(c.dtype);
  EXPECT_GT(max_rel(a.net->theta(), fresh->theta()), 1e-3);
}

}  // namespace

TEST(HnIterationFused, EqualsAutogradInFloat64) {
  // Trunk output width 11: the vector kernels' 8 lanes plus a tail (float64 runs the portable ones).
  compare({{7, 11}, false, torch::kFloat64, false, 1e-10}, /*one_reg=*/false);
  compare({{7, 11}, false, torch::kFloat64, false, 1e-10}, /*one_reg=*/true);
}

TEST(HnIterationFused, EqualsAutogradWithMip) { compare({{9}, true, torch::kFloat64, false, 1e-10}, false); }

TEST(HnIterationFused, EqualsAutogradWithoutATrunk) {
  // No hidden layer: the heads read the task embedding itself.
  compare({{}, false, torch::kFloat64, false, 1e-10}, false);
}

TEST(HnIterationFused, EqualsAutogradInFloat32VectorAndPortableKernels) {
  for (const bool scalar : {false, true}) {
    SCOPED_TRACE(scalar ? "portable kernels" : "AVX2 kernels where the CPU has them");
    compare({{7, 11}, false, torch::kFloat32, scalar, 2e-4}, false);
    compare({{16, 24}, false, torch::kFloat32, scalar, 2e-4}, true);
  }
}

TEST(HnIterationFused, EqualsAutogradWithTwoThreadsAndRepeatsItselfBitForBit) {
  // Two threads share the row blocks of the fused passes (six blocks here).
  at::set_num_threads(2);
  compare({{7, 11}, false, torch::kFloat64, false, 1e-10}, false);
  compare({{7, 11}, false, torch::kFloat32, false, 2e-4}, false);
  // Same thread count, same numbers: the blocks' partial sums are added in a fixed order (BLAS
  // itself may round differently with another thread count, so that is not claimed).
  std::vector<std::vector<torch::Tensor>> thetas;
  for (int run = 0; run < 2; ++run) {
    torch::manual_seed(3);
    auto net = std::make_shared<M::HyperNetworkImpl>(
        M::HyperNetworkOptions(target_layout()).hidden({8, 16}).task_emb_dim(6));
    Learner l{net, {}, {}, {}};
    for (std::int64_t task = 0; task < 3; ++task) {
      l.begin_task(task, 5e-3);
      for (int k = 0; k < 3; ++k) {
        HnIteration it;
        it.loss = [task](const torch::Tensor& flat) { return task_loss(flat, task); };
        it.targets = &l.targets;
        if (task > 0) {
          it.beta = 0.05;
          for (std::int64_t j = 0; j < task; ++j) it.reg_tasks.push_back(j);
        }
        sl::lfd::hn_iteration_fused(*l.net, task, *l.opt_theta, *l.opt_emb, it);
      }
    }
    std::vector<torch::Tensor> copy;
    for (const auto& p : net->theta()) copy.push_back(p.detach().clone());
    thetas.push_back(copy);
  }
  at::set_num_threads(1);
  for (std::size_t k = 0; k < thetas[0].size(); ++k) EXPECT_TRUE(torch::equal(thetas[0][k], thetas[1][k])) << k;
}
