// Few-shot class-incremental learning (continual/fscil.h): the stream, the prototype classifier,
// SupCon against a brute-force loop and finite differences, the simplex ETF's closed-form
// geometry, the rotations, sub-network tuning's frozen weights, and a learner that learns.
#include <cmath>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "stablelearn/continual/fscil.h"
#include "stablelearn/core/error.h"
#include "stablelearn/testing/gradcheck.h"
#include "testing.h"

namespace sl = stablelearn;
using namespace stablelearn::continual;

namespace {

/// 10 classes, `per_class` training and 3 test images of 1×4×4 each; image value = its index
/// (train) or −(index + 1) (test) in every pixel, so a drawn image names its source row.
sl::data::ImageDataset tiny_data(std::int64_t per_class = 8) {
  sl::data::ImageDataset d;
  const auto n = 10 * per_class;
  d.train.labels = torch::arange(n, torch::kInt64).remainder(10);
  d.train.images = torch::arange(n, torch::kFloat32).view({n, 1, 1, 1}).expand({n, 1, 4, 4}).contiguous();
  d.test.labels = torch::arange(30, torch::kInt64).remainder(10);
  d.test.images = (-torch::arange(30, torch::kFloat32) - 1).view({30, 1, 1, 1}).expand({30, 1, 4, 4}).contiguous();
  return d;
}

}  // namespace

TEST(FscilStream, SessionsHaveTheRightClassesShotsAndTestSets) {
  const auto d = tiny_data();
  FscilStreamOptions o;
  o.base_classes = 6;
  o.ways = 2;
  o.shots = 3;
  o.sessions = 2;
  o.seed = 4;
  const auto s = make_fscil_stream(d, o);
  ASSERT_EQ(s.size(), 3u);
  EXPECT_EQ(s[0].classes, (std::vector<std::int64_t>{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(s[0].train.size(), 6 * 8);
  EXPECT_EQ(s[0].test.size(), 6 * 3);
  EXPECT_EQ(s[1].classes, (std::vector<std::int64_t>{6, 7}));
  EXPECT_EQ(s[2].classes, (std::vector<std::int64_t>{8, 9}));
  EXPECT_EQ(s[2].seen.size(), 10u);
  EXPECT_EQ(s[2].test.size(), 30);
  for (std::size_t t = 1; t < 3; ++t) {
    ASSERT_EQ(s[t].train.size(), 2 * 3);
    for (std::int64_t i = 0; i < 6; ++i) {
      // The image's value is its row in the training set; its label must be that row's label.
      const auto row = static_cast<std::int64_t>(s[t].train.images[i][0][0][0].item<float>());
      EXPECT_EQ(row % 10, s[t].train.labels[i].item<std::int64_t>());
    }
    // Three distinct shots per class.
    const auto vals = std::get<0>(torch::_unique(s[t].train.images.select(1, 0).select(1, 0).select(1, 0)));
    EXPECT_EQ(vals.numel(), 6);
  }
  // The same seed gives the same shots; another seed other shots.
  const auto again = make_fscil_stream(d, o);
  EXPECT_TRUE(torch::equal(again[1].train.images, s[1].train.images));
  o.seed = 5;
  const auto other = make_fscil_stream(d, o);
  EXPECT_FALSE(torch::equal(other[1].train.images, s[1].train.images) && torch::equal(other[2].train.images, s[2].train.images));
}

TEST(FscilStream, ImpossibleShapesAreConfigErrorsNamingTheKey) {
  const auto d = tiny_data();
  FscilStreamOptions o;
  o.shots = 9;  // the classes have 8 training images
  sl::testing::expect_error<sl::ConfigError>([&] { make_fscil_stream(d, o); }, "fscil.shots = 9 exceeds the 8 training images of class 6");
  o.shots = 5;
  o.sessions = 5;  // 6 + 5 > 10
  sl::testing::expect_error<sl::ConfigError>([&] { make_fscil_stream(d, o); }, "fscil.sessions = 5");
  o.sessions = 4;
  o.base_per_class = 20;
  sl::testing::expect_error<sl::ConfigError>([&] { make_fscil_stream(d, o); }, "fscil.base_per_class = 20 exceeds the 8");
  o.base_per_class = 0;
  o.test_per_class = 4;
  sl::testing::expect_error<sl::ConfigError>([&] { make_fscil_stream(d, o); }, "fscil.test_per_class = 4 exceeds the 3");
  o.test_per_class = 0;
  o.shots = 0;
  sl::testing::expect_error<sl::ConfigError>([&] { make_fscil_stream(d, o); }, "fscil.shots");
}

TEST(FscilPrototypes, MeanOfNormalisedEmbeddingsAndCosineLogits) {
  const auto z = torch::tensor({{3.0, 4.0}, {0.0, 2.0}, {-1.0, 0.0}}, torch::kFloat64);
  const auto y = torch::tensor({7, 7, 2}, torch::kInt64);
  const auto p = class_prototypes(z, y, {2, 7});
  // Class 2: (−1, 0); class 7: ((0.6, 0.8) + (0, 1)) / 2 = (0.3, 0.9).
  EXPECT_NEAR(p[0][0].item<double>(), -1.0, 1e-15);
  EXPECT_NEAR(p[0][1].item<double>(), 0.0, 1e-15);
  EXPECT_NEAR(p[1][0].item<double>(), 0.3, 1e-15);
  EXPECT_NEAR(p[1][1].item<double>(), 0.9, 1e-15);
  const auto c = cosine_logits(z, p);
  // cos((3,4), (0.3,0.9)) = (0.9 + 3.6) / (5 · sqrt(0.9)).
  EXPECT_NEAR(c[0][1].item<double>(), 4.5 / (5 * std::sqrt(0.9)), 1e-14);
  EXPECT_NEAR(c[0][0].item<double>(), -0.6, 1e-14);
  EXPECT_NEAR(c[2][0].item<double>(), 1.0, 1e-14);
  sl::testing::expect_error<sl::DataError>([&] { class_prototypes(z, y, {3}); }, "class 3 has no embedding");
}

namespace {
/// SupCon by explicit loops (Khosla et al. eq. 2, averaged over the anchors with a positive).
double supcon_brute(const torch::Tensor& z, const std::vector<std::int64_t>& y, double tau) {
  const auto n = z.size(0);
  std::vector<std::vector<double>> u(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    double norm = 0;
    for (std::int64_t k = 0; k < z.size(1); ++k) norm += z[i][k].item<double>() * z[i][k].item<double>();
    for (std::int64_t k = 0; k < z.size(1); ++k) u[i].push_back(z[i][k].item<double>() / std::sqrt(norm));
  }
  auto dot = [&](std::int64_t a, std::int64_t b) {
    double s = 0;
    for (std::size_t k = 0; k < u[a].size(); ++k) s += u[a][k] * u[b][k];
    return s;
  };
  double total = 0;
  int anchors = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    double denom = 0;
    for (std::int64_t a = 0; a < n; ++a)
      if (a != i) denom += std::exp(dot(i, a) / tau);
    double s = 0;
    int np = 0;
    for (std::int64_t p = 0; p < n; ++p)
      if (p != i && y[p] == y[i]) {
        s += std::log(std::exp(dot(i, p) / tau) / denom);
        ++np;
      }
    if (np == 0) continue;
    total += -s / np;
    ++anchors;
  }
  return total / anchors;
}
}  // namespace

TEST(FscilSupCon, MatchesABruteForceLoopAndFiniteDifferences) {
  auto gen = at::detail::createCPUGenerator(3);
  const auto z = torch::randn({6, 3}, gen, torch::TensorOptions().dtype(torch::kFloat64));
  const std::vector<std::int64_t> y{0, 1, 0, 2, 1, 0};  // class 2 has a single sample: not an anchor
  const auto labels = torch::tensor(y, torch::kInt64);
  for (double tau : {0.1, 0.5, 1.0})
    EXPECT_NEAR(supcon_loss(z, labels, tau).item<double>(), supcon_brute(z, y, tau), 1e-12) << tau;
  const auto r = sl::testing::gradcheck([&](const std::vector<torch::Tensor>& in) { return supcon_loss(in[0], labels, 0.5); },
                                        {z.clone().requires_grad_(true)});
  EXPECT_TRUE(r.ok) << r;
  // No positive pair: zero, still differentiable.
  const auto zz = z.clone().requires_grad_(true);
  const auto l = supcon_loss(zz, torch::arange(6, torch::kInt64), 0.1);
  EXPECT_EQ(l.item<double>(), 0.0);
  l.backward();
  EXPECT_TRUE(zz.grad().defined());
}

TEST(FscilEtf, UnitNormAndPairwiseCosineMinusOneOverCMinusOne) {
  for (const auto& [c, d] : std::vector<std::pair<std::int64_t, std::int64_t>>{{2, 2}, {5, 8}, {28, 64}}) {
    const auto w = simplex_etf(c, d, 11, torch::kFloat64);
    ASSERT_EQ(w.sizes(), (std::vector<std::int64_t>{c, d}));
    const auto g = w.matmul(w.t());
    for (std::int64_t i = 0; i < c; ++i)
      for (std::int64_t j = 0; j < c; ++j)
        EXPECT_NEAR(g[i][j].item<double>(), i == j ? 1.0 : -1.0 / static_cast<double>(c - 1), 1e-12) << c << " " << i << " " << j;
    // Centred: the vectors sum to zero.
    EXPECT_LT(w.sum(0).abs().max().item<double>(), 1e-12);
  }
  EXPECT_TRUE(torch::equal(simplex_etf(5, 8, 11), simplex_etf(5, 8, 11)));
  sl::testing::expect_error<sl::ConfigError>([] { simplex_etf(10, 8, 0); }, "classes = 10, dim = 8");
}

TEST(FscilRotation, QuarterTurnsPseudoClassesAndThePretextTask) {
  const auto a = torch::tensor({1.0f, 2.0f, 3.0f, 4.0f}).view({1, 1, 2, 2});  // [[1, 2], [3, 4]]
  // A quarter turn counter-clockwise: [[2, 4], [1, 3]].
  EXPECT_TRUE(torch::equal(rotate_quarter(a, 1), torch::tensor({2.0f, 4.0f, 1.0f, 3.0f}).view({1, 1, 2, 2})));
  EXPECT_TRUE(torch::equal(rotate_quarter(a, 2), torch::tensor({4.0f, 3.0f, 2.0f, 1.0f}).view({1, 1, 2, 2})));
  auto gen = at::detail::createCPUGenerator(1);
  const auto x = torch::randn({64, 1, 5, 5}, gen);
  EXPECT_TRUE(torch::equal(rotate_quarter(x, 4), x));
  const auto y = torch::randint(0, 3, {64}, gen, torch::TensorOptions().dtype(torch::kInt64));
  const auto b = pseudo_class_batch(x, y, 3, 0.5, gen);
  std::int64_t pseudo = 0;
  for (std::int64_t i = 0; i < 64; ++i) {
    const auto label = b.labels[i].item<std::int64_t>();
    const auto k = label / 3;
    EXPECT_EQ(label % 3, y[i].item<std::int64_t>());
    EXPECT_TRUE(torch::equal(b.images[i], rotate_quarter(x.slice(0, i, i + 1), k)[0])) << i;
    pseudo += k > 0;
  }
  EXPECT_GT(pseudo, 16);  // ~32 of 64 expected
  EXPECT_LT(pseudo, 48);
  EXPECT_TRUE(torch::equal(pseudo_class_batch(x, y, 3, 0.0, gen).labels, y));
  EXPECT_TRUE(pseudo_class_batch(x, y, 3, 1.0, gen).labels.ge(3).all().item<bool>());
  const auto r = rotation_batch(x, gen);
  for (std::int64_t i = 0; i < 64; ++i)
    EXPECT_TRUE(torch::equal(r.images[i], rotate_quarter(x.slice(0, i, i + 1), r.labels[i].item<std::int64_t>())[0])) << i;
  EXPECT_EQ(std::get<0>(torch::_unique(r.labels)).numel(), 4);
}

TEST(FscilSubnet, OnlyTheListedWeightsChangeAndTheLossFalls) {
  torch::manual_seed(0);
  std::vector<torch::Tensor> w = {torch::randn({8, 5}).requires_grad_(true), torch::randn({8}).requires_grad_(true),
                                  torch::randn({4, 8}).requires_grad_(true), torch::randn({4}).requires_grad_(true)};
  const auto embed = [](const std::vector<torch::Tensor>& ws, const torch::Tensor& x) {
    return torch::nn::functional::linear(torch::nn::functional::linear(x, ws[0], ws[1]).relu(), ws[2], ws[3]);
  };
  const auto before = std::vector<torch::Tensor>{w[0].detach().clone(), w[1].detach().clone(), w[2].detach().clone(),
                                                 w[3].detach().clone()};
  const auto x = torch::randn({12, 5});
  const auto t = torch::arange(12, torch::kInt64).remainder(3);
  const auto v = simplex_etf(3, 4, 2);
  SubnetTuningOptions o;
  o.steps = 30;
  o.lr = 0.05;
  const auto r = subnet_tune(w, {2, 3}, embed, x, t, v, o);
  EXPECT_TRUE(torch::equal(w[0], before[0]));  // bitwise
  EXPECT_TRUE(torch::equal(w[1], before[1]));
  EXPECT_FALSE(torch::equal(w[2], before[2]));
  EXPECT_FALSE(torch::equal(w[3], before[3]));
  EXPECT_LT(r.loss_after, r.loss_before);
  EXPECT_FALSE(w[0].grad().defined());
}

TEST(FscilLearner, OptionsAreCheckedNamingTheKey) {
  FscilOptions o;
  o.pseudo_fraction = 1.5;
  sl::testing::expect_error<sl::ConfigError>([&] { FscilLearner(o, 6, 10); }, "pseudo_fraction");
  o = FscilOptions();
  o.etf = true;
  o.embed = 8;  // 10 classes need dim >= 10
  sl::testing::expect_error<sl::ConfigError>([&] { FscilLearner(o, 6, 10); }, "classes = 10, dim = 8");
}

// The whole learner on Fashion-MNIST (a few seconds): base classes 0..5 learnt well above chance,
// the prototypes of four 5-shot classes well above chance on their own test images, with every
// trick on (sub-network tuning included); the frozen trunk stays bitwise unchanged in the sessions
// and reset_to_base() restores the base state.
TEST(FscilLearner, LearnsTheBaseAndTheNovelClassesFromFiveShots) {
  const auto d = sl::data::load_fashion_mnist();
  FscilStreamOptions so;
  so.base_per_class = 300;
  so.test_per_class = 200;
  so.seed = 1;
  const auto stream = make_fscil_stream(d, so);
  for (const bool all_tricks : {false, true}) {
    torch::manual_seed(0);
    FscilOptions o;
    o.steps = 150;
    o.batch = 64;
    o.supcon = o.etf = o.pseudo = o.rotation = o.subnet = all_tricks;
    FscilLearner l(o, 6, 10);
    auto gen = at::detail::createCPUGenerator(0);
    l.train_base(stream[0].train, gen);
    const auto a0 = l.evaluate(stream[0].test);
    EXPECT_GT(a0.base, 0.6) << all_tricks;  // chance 1/6
    EXPECT_TRUE(std::isnan(a0.novel));
    const auto trunk = l.encoder()->weights()[0].clone();
    const auto last = l.encoder()->weights().back().clone();
    for (std::size_t t = 1; t < stream.size(); ++t) l.learn_session(stream[t]);
    EXPECT_EQ(l.seen().size(), 10u);
    const auto a = l.evaluate(stream.back().test);
    EXPECT_GT(a.novel, 0.25) << all_tricks;  // chance among 10 classes: 0.1
    EXPECT_GT(a.base, 0.4) << all_tricks;
    EXPECT_NEAR(a.all, (6 * a.base + 4 * a.novel) / 10, 1e-12);
    EXPECT_TRUE(torch::equal(l.encoder()->weights()[0], trunk));
    EXPECT_EQ(torch::equal(l.encoder()->weights().back(), last), !all_tricks);
    l.reset_to_base();
    EXPECT_EQ(l.seen().size(), 6u);
    EXPECT_TRUE(torch::equal(l.encoder()->weights().back(), last));
    EXPECT_NEAR(l.evaluate(stream[0].test).all, a0.all, 1e-12);
  }
}
