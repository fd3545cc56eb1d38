#include <cmath>

#include <gtest/gtest.h>

#include "stablelearn/core/error.h"
#include "stablelearn/data/lfd_preprocess.h"
#include "testing.h"

namespace sl = stablelearn;
using namespace sl::data;

namespace {
LfdTask load(LfdDatasetKind kind, std::int64_t i) { return LfdDataset(kind, sl::testing::project_data()).task(i); }
torch::Tensor quat(double w, double x, double y, double z) { return torch::tensor({w, x, y, z}, torch::kFloat64); }
}  // namespace

TEST(LfdPreprocess, LasaAngleNormalisedGoalMatchesTheSpec) {
  // Spec §1.2: normalised goal of Angle = (1.402923, -1.447376) (goal (0,0) minus mean over std).
  const auto p = prepare_task(load(LfdDatasetKind::Lasa2D, 0), lfd_dataset_spec(LfdDatasetKind::Lasa2D));
  EXPECT_NEAR(p.goal[0][0].item<double>(), 1.402923, 1e-6);
  EXPECT_NEAR(p.goal[0][1].item<double>(), -1.447376, 1e-6);
  EXPECT_NEAR(p.norm.std[0].item<double>(), 15.022744, 1e-6);
  // After centring, every demonstration ends at 0.
  EXPECT_EQ(p.x.select(1, 999).abs().max().item<double>(), 0.0);
  EXPECT_EQ(p.t.sizes().vec(), (std::vector<std::int64_t>{1000}));
}

TEST(LfdPreprocess, NormalisationUsesThePopulationStd) {
  // Values 1, 3 (one dim): mean 2, population std 1 (the sample std would be sqrt(2)).
  const auto x = torch::tensor({1.0, 3.0}, torch::kFloat64).reshape({1, 2, 1});
  const auto n = Normalizer::fit(x);
  EXPECT_DOUBLE_EQ(n.mean.item<double>(), 2.0);
  EXPECT_DOUBLE_EQ(n.std.item<double>(), 1.0);
  EXPECT_TRUE(torch::allclose(n.normalize(x), torch::tensor({-1.0, 1.0}, torch::kFloat64).reshape({1, 2, 1})));
  EXPECT_TRUE(torch::allclose(n.denormalize(n.normalize(x)), x));
  EXPECT_THROW(Normalizer::fit(torch::ones({1, 3, 2}, torch::kFloat64)), sl::DataError);
}

TEST(LfdPreprocess, TangentMapOfTheSpecExample) {
  // Spec §1.6, openbox demo 0, sample 0 (file values, 6-digit example).
  const auto task = load(LfdDatasetKind::RoboTasks9, 0);
  const auto q = task.pos[0][0].narrow(0, 3, 4);
  const auto qg = task.pos[0][999].narrow(0, 3, 4);
  EXPECT_TRUE(torch::allclose(qg, quat(0.019180, 0.997325, -0.035542, 0.060931), 0, 1e-6));
  EXPECT_TRUE(torch::allclose(q, quat(0.713357, 0.700011, -0.007138, -0.032470), 0, 1e-6));
  const auto r = quat_to_tangent(q, qg);
  EXPECT_NEAR(r[0].item<double>(), -0.776177, 1e-5);
  EXPECT_NEAR(r[1].item<double>(), -0.055271, 1e-5);
  EXPECT_NEAR(r[2].item<double>(), -0.068618, 1e-5);
}

TEST(LfdPreprocess, TangentMapUsesTheHalfAngle) {
  // A rotation by phi about z is q = (cos(phi/2), 0, 0, sin(phi/2)); at the identity goal the
  // tangent vector is (0, 0, phi/2) (no factor 2).
  const double phi = 1.2;
  const auto r = quat_to_tangent(quat(std::cos(phi / 2), 0, 0, std::sin(phi / 2)), quat(1, 0, 0, 0));
  EXPECT_NEAR(r[0].item<double>(), 0.0, 1e-15);
  EXPECT_NEAR(r[2].item<double>(), phi / 2, 1e-12);
  // Relative to a goal rotated by 0.5 about z, the same q is 0.7 away: r = (0, 0, 0.35).
  const auto r2 = quat_to_tangent(quat(std::cos(phi / 2), 0, 0, std::sin(phi / 2)), quat(std::cos(0.25), 0, 0, std::sin(0.25)));
  EXPECT_NEAR(r2[2].item<double>(), 0.35, 1e-12);
  // The goal itself maps to 0, and back.
  EXPECT_EQ(quat_to_tangent(quat(1, 0, 0, 0), quat(1, 0, 0, 0)).abs().max().item<double>(), 0.0);
  EXPECT_TRUE(torch::allclose(tangent_to_quat(torch::zeros({3}, torch::kFloat64), quat(0, 1, 0, 0)), quat(0, 1, 0, 0)));
}

TEST(LfdPreprocess, QuaternionProductIsHamiltons) {
  // i * j = k, j * i = -k, conj(q) * q = |q|^2.
  EXPECT_TRUE(torch::equal(quat_multiply(quat(0, 1, 0, 0), quat(0, 0, 1, 0)), quat(0, 0, 0, 1)));
  EXPECT_TRUE(torch::equal(quat_multiply(quat(0, 0, 1, 0), quat(0, 1, 0, 0)), quat(0, 0, 0, -1)));
  const auto q = quat(1, 2, 3, 4);
  EXPECT_TRUE(torch::allclose(quat_multiply(quat_conjugate(q), q), quat(30, 0, 0, 0)));
}

TEST(LfdPreprocess, RoboTasksRoundTripAndTangentRanges) {
  // Spec §1.6: max |r| per task is 0.46..1.02 rad; the last sample maps to 0; q -> r -> q.
  const auto spec = lfd_dataset_spec(LfdDatasetKind::RoboTasks9);
  LfdDataset ds(LfdDatasetKind::RoboTasks9, sl::testing::project_data());
  for (std::int64_t i = 0; i < ds.num_tasks(); ++i) {
    const auto task = ds.task(i);
    const auto p = prepare_task(task, spec, PreprocessOptions{true, 5.0});
    ASSERT_EQ(p.x.size(2), 6);
    const auto r = p.x.narrow(2, 3, 3) / 5.0;
    const double max_r = r.norm(2, -1).max().item<double>();
    EXPECT_GT(max_r, 0.45) << task.name;
    EXPECT_LT(max_r, 1.03) << task.name;
    EXPECT_EQ(p.x.select(1, 999).abs().max().item<double>(), 0.0) << task.name;
    const auto back = restore_prediction(p, p.x);
    EXPECT_LT((back.narrow(2, 0, 3) - task.pos.narrow(2, 0, 3)).abs().max().item<double>(), 1e-12) << task.name;
    // Quaternions come back up to float error (and sign: q and -q are the same rotation).
    const auto q = task.pos.narrow(2, 3, 4), qb = back.narrow(2, 3, 4);
    const auto diff = torch::minimum((q - qb).abs().amax(-1), (q + qb).abs().amax(-1));
    EXPECT_LT(diff.max().item<double>(), 1e-9) << task.name;
  }
}

TEST(LfdPreprocess, RestorePredictionInvertsLasaAndHelloWorld) {
  for (auto kind : {LfdDatasetKind::Lasa2D, LfdDatasetKind::HelloWorld, LfdDatasetKind::Lasa8D}) {
    const auto task = load(kind, 2);
    for (bool centre : {true, false}) {
      const auto p = prepare_task(task, lfd_dataset_spec(kind), PreprocessOptions{centre, 1.0});
      EXPECT_LT((restore_prediction(p, p.x) - task.pos).abs().max().item<double>(), 1e-12);
      if (!centre) {
        // Not centred: normalised data has zero mean and unit population std per dimension.
        const auto flat = p.x.reshape({-1, p.x.size(2)});
        EXPECT_LT(flat.mean(0).abs().max().item<double>(), 1e-12);
        EXPECT_LT((flat.std(0, false) - 1).abs().max().item<double>(), 1e-12);
      }
    }
  }
}

TEST(LfdPreprocess, WindowsStartAnywhereFromZeroToTMinusTsubInclusive) {
  const auto p = prepare_task(load(LfdDatasetKind::Lasa2D, 1), lfd_dataset_spec(LfdDatasetKind::Lasa2D));
  auto gen = at::detail::createCPUGenerator(7);
  std::int64_t lo = 1000, hi = -1;
  for (int i = 0; i < 20000; ++i) {
    const auto w = sample_window(p, 20, gen);
    lo = std::min(lo, w.k0);
    hi = std::max(hi, w.k0);
  }
  // 981 possible starts, 20000 draws: each end is missed with probability (980/981)^20000 ~ 1e-9.
  EXPECT_EQ(lo, 0);
  EXPECT_EQ(hi, 980);
  const auto w = window_at(p, 980, 20);
  EXPECT_EQ(w.y.sizes().vec(), (std::vector<std::int64_t>{7, 20, 2}));
  EXPECT_EQ(w.t[0].item<double>(), p.t[980].item<double>());  // absolute times, not shifted to 0
  EXPECT_TRUE(torch::equal(w.y.select(1, 19), p.x.select(1, 999)));
  EXPECT_THROW(window_at(p, 981, 20), sl::ShapeError);
  EXPECT_THROW(window_at(p, 0, 1001), sl::ShapeError);
}

TEST(LfdPreprocess, SameSeedSameWindows) {
  const auto p = prepare_task(load(LfdDatasetKind::Lasa2D, 1), lfd_dataset_spec(LfdDatasetKind::Lasa2D));
  auto g1 = at::detail::createCPUGenerator(42), g2 = at::detail::createCPUGenerator(42);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(sample_window(p, 20, g1).k0, sample_window(p, 20, g2).k0);
}
