// LCIA's adapter reuse (include/stablelearn/continual/lcia.h): the TF-IDF similarity against its
// closed form on hand-made strings, the reuse-or-new rule and the routing on a constructed stream
// with recurring tasks, the fixed-weight EMA against a hand-computed step, and a short stream with
// conflicting tasks on which the full method must learn and forget less than fine-tuning.
#include <cmath>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "stablelearn/continual/lcia.h"
#include "stablelearn/continual/strategies.h"

namespace sl = stablelearn;
using namespace sl::continual::lcia;

namespace {
// Weight of a term found in one of the two documents: ln((1 + 2)/(1 + 1)) + 1.
const double kOne = std::log(1.5) + 1.0;
}  // namespace

TEST(Lcia, TokensAreLowerCasedWordsOfTwoOrMoreCharactersWithoutStopWords) {
  EXPECT_EQ(tfidf_tokens("The Image, rotated by 90 degrees: x_1 a 7 shoe-box!"),
            (std::vector<std::string>{"image", "rotated", "90", "degrees", "x_1", "shoe", "box"}));
  EXPECT_TRUE(is_stop_word("the"));
  EXPECT_TRUE(is_stop_word("yourselves"));
  EXPECT_FALSE(is_stop_word("image"));
  EXPECT_TRUE(tfidf_tokens("it is on the").empty());
}

TEST(Lcia, TfidfCosineMatchesItsClosedForm) {
  // Shared terms weigh 1, a term in one string only 1 + ln(3/2); raw counts; l2 norms.
  EXPECT_NEAR(tfidf_cosine("red shoe photo", "red shoe image"), 2.0 / (2.0 + kOne * kOne), 1e-12);
  EXPECT_NEAR(tfidf_cosine("shoe shoe boot", "Shoe"), 2.0 / std::sqrt(4.0 + kOne * kOne), 1e-12);
  EXPECT_NEAR(tfidf_cosine("classify the coat rotated by 40 degrees", "classify the coat rotated by 80 degrees"),
              4.0 / (4.0 + kOne * kOne), 1e-12);
  EXPECT_NEAR(tfidf_cosine("a b c red", "red"), 1.0, 1e-12);  // single letters are no tokens
  EXPECT_DOUBLE_EQ(tfidf_cosine("coat", "boot"), 0.0);
  EXPECT_DOUBLE_EQ(tfidf_cosine("the and of", "coat"), 0.0);  // no token left: similar to nothing
  EXPECT_DOUBLE_EQ(tfidf_cosine("x y", "x y"), 0.0);
}

TEST(Lcia, CodebookSimilarityIsTheMeanOverDistinctPairs) {
  const double s01 = 2.0 / (2.0 + kOne * kOne);  // "red shoe photo" vs "red shoe image"
  // I = {"red shoe photo" (twice), "boot"}, C = {"red shoe image", "red shoe photo"}:
  // pairs: (photo, image) s01, (photo, photo) 1, (boot, ·) 0, 0 → mean over 2 × 2.
  EXPECT_NEAR(codebook_similarity({"red shoe photo", "red shoe photo", "boot"}, {"red shoe image", "red shoe photo"}),
              (s01 + 1.0) / 4.0, 1e-12);
}

TEST(Lcia, RecurringTasksReuseTheirAdapterAndNewOnesGetANewOne) {
  const std::string A = "classify the garment rotated by 40 degrees", B = "classify the garment rotated by 80 degrees",
                    C = "classify the garment rotated by 120 degrees";
  const double sab = 4.0 / (4.0 + kOne * kOne);  // ≈ 0.67 < 0.9
  AdapterBank bank(0.9);
  auto s = bank.select({A});
  EXPECT_EQ(s.adapter, 0);
  EXPECT_FALSE(s.reused);
  s = bank.select({B});
  EXPECT_EQ(s.adapter, 1);
  EXPECT_FALSE(s.reused);
  EXPECT_NEAR(s.max_similarity, sab, 1e-12);
  s = bank.select({A, A});
  EXPECT_EQ(s.adapter, 0);
  EXPECT_TRUE(s.reused);
  ASSERT_EQ(s.similarities.size(), 2u);
  EXPECT_NEAR(s.similarities[0], 1.0, 1e-12);
  EXPECT_NEAR(s.similarities[1], sab, 1e-12);
  s = bank.select({C});
  EXPECT_EQ(s.adapter, 2);
  s = bank.select({B});
  EXPECT_EQ(s.adapter, 1);
  EXPECT_TRUE(s.reused);
  EXPECT_EQ(bank.adapters(), 3);
  EXPECT_EQ(bank.codebooks()[0], std::vector<std::string>{A});  // a recurrence adds nothing new
  EXPECT_EQ(bank.route({A}), 0);
  EXPECT_EQ(bank.route({B}), 1);
  EXPECT_EQ(bank.route({"classify the garment rotated by 160 degrees"}), 2);  // unseen: the last adapter
  EXPECT_EQ(bank.route({"sort shoes"}), 2);
}

TEST(Lcia, ReuseStartsAtTheThresholdAndAppendsNewInstructions) {
  const std::string a = "red shoe photo", b = "red shoe image";
  const double s = tfidf_cosine(b, a);  // its value is tested above; here the rule at the boundary
  {
    AdapterBank bank(s);  // similarity == threshold: reuse (>=)
    bank.select({a});
    const auto sel = bank.select({b});
    EXPECT_TRUE(sel.reused);
    EXPECT_EQ(bank.codebooks()[0], (std::vector<std::string>{a, b}));
    // The codebook now holds both: a's similarity to it is (1 + s) / 2.
    EXPECT_NEAR(bank.similarities({a})[0], (1.0 + s) / 2.0, 1e-12);
  }
  {
    AdapterBank bank(std::nextafter(s, 1.0));
    bank.select({a});
    EXPECT_FALSE(bank.select({b}).reused);
    EXPECT_EQ(bank.adapters(), 2);
  }
}

TEST(Lcia, FixedEmaWeightIsUsedAtEveryStepWithoutTheAutomaticWeight) {
  // Two parameters, gradient steps whose automatic weight would lie in (0, 1): with automatic =
  // false α stays at the fallback.
  sl::continual::EmaMergeOptions o;
  o.fallback = 0.2;
  o.automatic = false;
  sl::continual::EmaMerge ema(o);
  sl::continual::Context ctx;
  ctx.params = {torch::zeros({4}).set_requires_grad(true)};
  ema.before_task(ctx);
  for (int step = 0; step < 2; ++step) {
    ctx.params[0].mutable_grad() = torch::full({4}, step == 0 ? 0.f : 1.f);
    ema.after_backward(ctx);
    {
      torch::NoGradGuard g;
      ctx.params[0].fill_(10.f * float(step + 1));
    }
    ema.after_step(ctx, {});
    EXPECT_DOUBLE_EQ(ema.last_alphas()[0], 0.2);
  }
  ema.after_task(ctx);
  // θ* = 0.8·(0.8·0 + 0.2·10) + 0.2·20 = 5.6
  EXPECT_NEAR(ctx.params[0][0].item<double>(), 5.6, 1e-6);
}

TEST(Lcia, LearnerTakesOneSgdStepThenTheFixedWeightMerge) {
  // Linear logits x Wᵀ from W = 0 on one batch: softmax = 1/2, ∇W = (p − onehot)ᵀ x / B; one SGD
  // step W1 = −lr ∇W; the fixed-α EMA from W0 = 0 gives W* = α W1, which replaces W.
  const auto x = torch::tensor({{1.0f, 2.0f}, {-1.0f, 0.5f}});
  const auto y = torch::tensor({0, 1}, torch::kInt64);
  LciaOptions o;
  o.merge = "fixed";
  o.fallback = 0.25;
  o.reuse = false;
  o.batch = 2;
  o.lr = 0.5;
  Learner l(o, [](const torch::Tensor& xs, const std::vector<torch::Tensor>& w) { return xs.mm(w[0].t()); },
            [] { return std::vector<torch::Tensor>{torch::zeros({2, 2})}; }, 1);
  l.learn_task(x, y, {"task"});
  // (p − onehot) = [[−0.5, 0.5], [0.5, −0.5]]; ∇W[c] = Σ_i (p − onehot)[i, c] x_i / 2
  const double g00 = (-0.5 * 1 + 0.5 * -1) / 2, g01 = (-0.5 * 2 + 0.5 * 0.5) / 2;
  const auto W = l.adapter_weights()[0][0];
  EXPECT_NEAR(W[0][0].item<double>(), 0.25 * -0.5 * g00, 1e-7);
  EXPECT_NEAR(W[0][1].item<double>(), 0.25 * -0.5 * g01, 1e-7);
  EXPECT_NEAR(W[1][0].item<double>(), 0.25 * 0.5 * g00, 1e-7);
  EXPECT_NEAR(W[1][1].item<double>(), 0.25 * 0.5 * g01, 1e-7);
  EXPECT_FALSE(W.requires_grad());
}

namespace {
// Task kinds on 2-D Gaussian inputs: 0 label = [x0 > 0], 1 label = [x0 < 0] (the opposite rule),
// 2 label = [x1 > 0].
std::pair<torch::Tensor, torch::Tensor> make_task(int kind, std::int64_t n, std::uint64_t seed) {
  auto g = at::detail::createCPUGenerator(seed);
  const auto x = torch::randn({n, 2}, g, torch::kFloat32);
  torch::Tensor y = kind == 0 ? x.select(1, 0) > 0 : kind == 1 ? x.select(1, 0) < 0 : x.select(1, 1) > 0;
  return {x, y.to(torch::kInt64)};
}

struct StreamResult {
  double final_acc = 0, forgetting = 0;
  std::int64_t adapters = 0;
};

StreamResult run_stream(const LciaOptions& o) {
  const std::vector<int> kinds = {0, 1, 0, 2, 1};
  // (Not "sort by / against the first coordinate": "by", "against" and "first" are stop words, so
  // those two would be the same instruction.)
  const std::vector<std::string> words = {"points whose first coordinate is positive", "points whose first coordinate is negative",
                                          "label the sign of the second feature"};
  Learner l(o, [](const torch::Tensor& xs, const std::vector<torch::Tensor>& w) { return xs.mm(w[0].t()) + w[1]; },
            [] { return std::vector<torch::Tensor>{torch::zeros({2, 2}), torch::zeros({2})}; }, 7);
  const auto T = kinds.size();
  std::vector<std::vector<double>> R(T, std::vector<double>(T, 0));
  for (std::size_t t = 0; t < T; ++t) {
    const auto [x, y] = make_task(kinds[t], 400, 100 + t);
    l.learn_task(x, y, {words[static_cast<std::size_t>(kinds[t])]});
    for (std::size_t k = 0; k <= t; ++k) {
      const auto [xt, yt] = make_task(kinds[k], 400, 500 + k);
      R[t][k] = l.predict(xt, {words[static_cast<std::size_t>(kinds[k])]}).eq(yt).to(torch::kFloat64).mean().item<double>();
    }
  }
  StreamResult r;
  for (std::size_t k = 0; k < T; ++k) r.final_acc += R[T - 1][k] / double(T);
  for (std::size_t k = 0; k + 1 < T; ++k) {
    double best = 0;
    for (std::size_t t = k; t + 1 < T; ++t) best = std::max(best, R[t][k]);
    r.forgetting += (best - R[T - 1][k]) / double(T - 1);
  }
  r.adapters = l.adapters();
  return r;
}
}  // namespace

TEST(Lcia, FullMethodLearnsAndForgetsLessThanFineTuningOnConflictingTasks) {
  LciaOptions ft;
  ft.merge = "none";
  ft.reuse = false;
  ft.epochs = 3;
  ft.batch = 20;
  ft.lr = 0.5;
  LciaOptions full = ft;
  full.merge = "auto";
  full.reuse = true;
  const auto a = run_stream(ft), b = run_stream(full);
  EXPECT_EQ(a.adapters, 1);
  EXPECT_EQ(b.adapters, 3);  // five tasks, three distinct instructions
  EXPECT_GT(b.final_acc, 0.9);
  EXPECT_GT(a.forgetting, 0.3);  // the opposite rule undoes the first one
  EXPECT_LT(b.forgetting, a.forgetting - 0.2);
  EXPECT_GT(b.final_acc, a.final_acc + 0.2);
}
