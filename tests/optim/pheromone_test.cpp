// The DPPN pheromone field: deposit and evaporation against the recursion by hand, the routing bias
// and learning-rate prior by hand, remapping to other coordinates, and the errors.
#include <cmath>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "stablelearn/core/error.h"
#include "stablelearn/optim/pheromone.h"
#include "testing.h"

namespace so = stablelearn::optim;
namespace sl = stablelearn;

namespace {
torch::Tensor m2(std::vector<double> v) { return torch::tensor(v, torch::kFloat64).reshape({2, 2}); }
so::PheromoneField two(double rho, double c) {
  so::PheromoneOptions o;
  o.slots = 2;
  o.evaporation = rho;
  o.deposit = c;
  return so::PheromoneField(o);
}
}  // namespace

TEST(Pheromone, DepositAndEvaporationFollowTheRecursion) {
  auto f = two(0.1, 2);
  EXPECT_TRUE(torch::equal(f.normalised(), m2({0, 0, 0, 0})));  // empty field: no division by zero
  f.update(m2({1, 0, 0, 0.5}));
  // P = 2 U = [[2, 0], [0, 1]]; then P = 0.9 P + 2 [[0, 1], [0, 0]] = [[1.8, 2], [0, 0.9]].
  f.update(m2({0, 1, 0, 0}));
  EXPECT_TRUE(torch::allclose(f.field(), m2({1.8, 2, 0, 0.9}), 0, 1e-15));
  EXPECT_TRUE(torch::allclose(f.normalised(), m2({0.9, 1, 0, 0.45}), 0, 1e-15));
}

TEST(Pheromone, RoutingBiasAndLearningRatePriorByHand) {
  auto f = two(0, 1);
  f.update(m2({4, 2, 0, 1}));  // P̂ = [[1, 0.5], [0, 0.25]]
  const auto bias = f.routing_bias(2, 0.05);
  EXPECT_NEAR(bias[0][0].item<double>(), 2 * std::log(1.05), 1e-15);
  EXPECT_NEAR(bias[0][1].item<double>(), 2 * std::log(0.55), 1e-15);
  EXPECT_NEAR(bias[1][0].item<double>(), 2 * std::log(0.05), 1e-15);
  const auto mult = f.lr_multiplier(3);
  EXPECT_TRUE(torch::allclose(mult, m2({4, 2.5, 1, 1.75}), 0, 1e-15));
  EXPECT_TRUE(torch::equal(f.routing_bias(0, 0.05), m2({0, 0, 0, 0})));  // β = 0: no bias
}

TEST(Pheromone, RemappingMovesTheFieldToOtherCoordinates) {
  so::PheromoneOptions o;
  o.slots = 3;
  o.evaporation = 0;
  so::PheromoneField f(o);
  f.update(torch::arange(9, torch::kFloat64).reshape({3, 3}));  // P[i][j] = 3i + j
  const auto q = f.remapped({2, 0, 1}).field();  // Q[i][j] = P[m[i]][m[j]]
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) {
      const int mi = (i + 2) % 3, mj = (j + 2) % 3;
      EXPECT_EQ(q[i][j].item<double>(), 3 * mi + mj) << i << "," << j;
    }
  // Remapping by a permutation and back by its inverse gives the field back.
  EXPECT_TRUE(torch::equal(f.remapped({2, 0, 1}).remapped({1, 2, 0}).field(), f.field()));
}

TEST(Pheromone, BadOptionsAndInputsNameTheKey) {
  so::PheromoneOptions o;
  o.slots = 0;
  sl::testing::expect_error<sl::ConfigError>([&] { so::PheromoneField f(o); }, "pheromone.slots");
  o = {};
  o.evaporation = 1;
  sl::testing::expect_error<sl::ConfigError>([&] { so::PheromoneField f(o); }, "pheromone.evaporation");
  o = {};
  o.deposit = -1;
  sl::testing::expect_error<sl::ConfigError>([&] { so::PheromoneField f(o); }, "pheromone.deposit");
  auto f = two(0.1, 1);
  sl::testing::expect_error<sl::ShapeError>([&] { f.update(torch::zeros({3, 3}, torch::kFloat64)); }, "want 2 x 2");
  sl::testing::expect_error<sl::DataError>([&] { f.update(m2({0, -1, 0, 0})); }, "negative");
  sl::testing::expect_error<sl::ConfigError>([&] { f.routing_bias(1, 0); }, "pheromone.eps");
  sl::testing::expect_error<sl::ConfigError>([&] { f.routing_bias(-1, 0.1); }, "pheromone.beta");
  sl::testing::expect_error<sl::ConfigError>([&] { f.lr_multiplier(-1); }, "pheromone.gamma");
  sl::testing::expect_error<sl::ShapeError>([&] { f.remapped({0}); }, "want 2");
  sl::testing::expect_error<sl::ShapeError>([&] { f.remapped({0, 2}); }, "map[1]");
}
