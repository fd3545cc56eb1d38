// Adapters (models/adapters.h): identity at initialisation, which tensors receive gradients when
// the backbone is frozen, LoRA against its merged weight, the bottleneck against its formula, and
// gradients against central finite differences (float64).
#include <gtest/gtest.h>

#include "stablelearn/core/error.h"
#include "stablelearn/models/adapters.h"
#include "testing.h"

namespace sl = stablelearn;
using sl::models::AdaptedClassifier;
using sl::models::AdapterOptions;
using sl::models::Classifier;
using sl::models::ClassifierOptions;

namespace {

ClassifierOptions small(const std::string& kind) {
  ClassifierOptions o;
  o.kind = kind;
  o.hidden = {7, 6};
  o.channels = {3, 4};
  o.fc = 5;
  o.classes = 4;
  o.input = {1, 8, 8};
  return o;
}

AdapterOptions adapter(const std::string& kind, bool freeze = true, std::int64_t rank = 3, double alpha = 0) {
  AdapterOptions a;
  a.kind = kind;
  a.rank = rank;
  a.alpha = alpha;
  a.freeze = freeze;
  return a;
}

torch::Generator gen(std::uint64_t seed) { return at::detail::createCPUGenerator(seed); }

}  // namespace

TEST(Adapters, AtInitialisationTheOutputIsTheBaseModelsBitwise) {
  for (const std::string kind : {"mlp", "cnn"}) {
    for (const std::string ad : {"lora", "bottleneck", "none"}) {
      torch::manual_seed(1);
      Classifier base(small(kind));
      AdaptedClassifier m(*base, adapter(ad), gen(3));
      const auto x = torch::randn({5, 1, 8, 8});
      torch::NoGradGuard ng;
      EXPECT_TRUE(torch::equal(m.forward(x), base->forward(x))) << kind << " " << ad;
      EXPECT_TRUE(torch::equal(m.forward_trainable(x, m.trainable()), base->forward(x))) << kind << " " << ad;
    }
  }
}

TEST(Adapters, FrozenBackboneGivesGradientsOnlyToAdaptersAndHead) {
  for (const std::string ad : {"lora", "bottleneck"}) {
    torch::manual_seed(2);
    Classifier base(small("mlp"));
    AdaptedClassifier m(*base, adapter(ad), gen(4));
    // Step away from the zero-initialised factors so every adapter tensor has a gradient.
    {
      torch::NoGradGuard ng;
      for (const auto& a : m.adapter_weights()) const_cast<torch::Tensor&>(a).add_(torch::randn_like(a) * 0.1);
    }
    const auto t = m.trainable();
    m.forward_trainable(torch::randn({6, 1, 8, 8}), t).pow(2).sum().backward();
    const auto& w = base->weights();
    for (std::size_t k = 0; k + 2 < w.size(); ++k) EXPECT_FALSE(w[k].grad().defined()) << ad << " backbone tensor " << k;
    for (std::size_t k = w.size() - 2; k < w.size(); ++k) EXPECT_TRUE(w[k].grad().defined()) << ad << " head tensor " << k;
    for (const auto& a : m.adapter_weights()) {
      ASSERT_TRUE(a.grad().defined()) << ad;
      EXPECT_GT(a.grad().abs().sum().item<double>(), 0.0) << ad;
    }
    EXPECT_EQ(t.size(), m.adapter_weights().size() + 2);  // adapters, then out.weight and out.bias
  }
  // train_head = false: the adapters alone receive gradients.
  {
    torch::manual_seed(3);
    Classifier base(small("cnn"));
    auto o = adapter("bottleneck");
    o.train_head = false;
    AdaptedClassifier m(*base, o, gen(9));
    {
      torch::NoGradGuard ng;
      for (const auto& a : m.adapter_weights()) const_cast<torch::Tensor&>(a).add_(torch::randn_like(a) * 0.1);
    }
    const auto t = m.trainable();
    EXPECT_EQ(t.size(), m.adapter_weights().size());
    m.forward_trainable(torch::randn({4, 1, 8, 8}), t).pow(2).sum().backward();
    for (const auto& w : base->weights()) EXPECT_FALSE(w.grad().defined());
    for (const auto& a : m.adapter_weights()) EXPECT_GT(a.grad().abs().sum().item<double>(), 0.0);
  }
  // Not frozen: every backbone tensor trains too.
  Classifier base(small("cnn"));
  AdaptedClassifier m(*base, adapter("lora", /*freeze=*/false), gen(5));
  EXPECT_EQ(m.trainable().size(), m.adapter_weights().size() + base->weights().size());
  // Frozen, no adapter, no head: nothing trains.
  auto none = adapter("none");
  none.train_head = false;
  EXPECT_THROW(AdaptedClassifier(*base, none, gen(6)), sl::ConfigError);
}

TEST(Adapters, LoraEqualsTheMergedWeightInFloat64) {
  torch::manual_seed(3);
  const auto opts = torch::TensorOptions().dtype(torch::kFloat64);
  const auto x = torch::randn({9, 11}, opts), W = torch::randn({5, 11}, opts), b = torch::randn({5}, opts);
  const auto A = torch::randn({3, 11}, opts), B = torch::randn({5, 3}, opts);
  const double s = 16.0 / 3.0;
  const auto y = sl::models::lora_linear(x, W, b, A, B, s);
  // Merged weight, written out entry by entry: W'_oi = W_oi + s Σ_r B_or A_ri.
  auto Wm = W.clone();
  for (int o = 0; o < 5; ++o)
    for (int i = 0; i < 11; ++i) {
      double acc = 0;
      for (int r = 0; r < 3; ++r) acc += B[o][r].item<double>() * A[r][i].item<double>();
      Wm[o][i] += s * acc;
    }
  EXPECT_LT((y - (x.matmul(Wm.t()) + b)).abs().max().item<double>(), 1e-10);
  EXPECT_LT((sl::models::lora_merged_weight(W, A, B, s) - Wm).abs().max().item<double>(), 1e-12);
  // The adapted classifier with LoRA = the base classifier with merged hidden weights.
  Classifier base(small("mlp"));
  base->to(torch::kFloat64);
  AdaptedClassifier m(*base, adapter("lora", true, 2, 6.0), gen(7));
  std::vector<torch::Tensor> a;
  for (const auto& t : m.adapter_weights()) a.push_back(torch::randn_like(t));
  auto merged = base->weights();
  const auto& lin = base->linear_weight_indices();
  for (std::size_t l = 0; l + 1 < lin.size(); ++l)
    merged[lin[l]] = sl::models::lora_merged_weight(merged[lin[l]], a[2 * l], a[2 * l + 1], 3.0);
  const auto xi = torch::randn({4, 1, 8, 8}, opts);
  torch::NoGradGuard ng;
  EXPECT_LT((m.forward(xi, base->weights(), a) - base->forward(xi, merged)).abs().max().item<double>(), 1e-10);
}

TEST(Adapters, BottleneckIsTheResidualFormula) {
  torch::manual_seed(4);
  const auto opts = torch::TensorOptions().dtype(torch::kFloat64);
  const auto h = torch::randn({6, 5}, opts), D = torch::randn({2, 5}, opts), d = torch::randn({2}, opts);
  const auto U = torch::randn({5, 2}, opts), u = torch::randn({5}, opts);
  const auto y = sl::models::bottleneck_adapter(h, D, d, U, u);
  for (int n = 0; n < 6; ++n)
    for (int o = 0; o < 5; ++o) {
      double acc = h[n][o].item<double>() + u[o].item<double>();
      for (int r = 0; r < 2; ++r) {
        double z = d[r].item<double>();
        for (int i = 0; i < 5; ++i) z += D[r][i].item<double>() * h[n][i].item<double>();
        acc += U[o][r].item<double>() * std::max(z, 0.0);
      }
      EXPECT_NEAR(y[n][o].item<double>(), acc, 1e-12);
    }
}

TEST(Adapters, GradientsMatchFiniteDifferences) {
  for (const std::string ad : {"lora", "bottleneck"}) {
    torch::manual_seed(5);
    Classifier base(small("mlp"));
    base->to(torch::kFloat64);
    AdaptedClassifier m(*base, adapter(ad, true, 2, 3.0), gen(8));
    const auto x = torch::randn({3, 1, 8, 8}, torch::kFloat64), R = torch::randn({3, 4}, torch::kFloat64);
    std::vector<torch::Tensor> t;
    for (const auto& p : m.trainable()) t.push_back((p.detach() + 0.3 * torch::randn_like(p)).requires_grad_(true));
    auto loss = [&](const std::vector<torch::Tensor>& w) { return (m.forward_trainable(x, w) * R).sum(); };
    const auto grads = torch::autograd::grad({loss(t)}, t);
    const double eps = 1e-6;
    for (std::size_t j = 0; j < t.size(); ++j) {
      auto flat = t[j].detach().reshape(-1);
      for (std::int64_t e : {std::int64_t{0}, flat.numel() / 2, flat.numel() - 1}) {
        std::vector<torch::Tensor> plus, minus;
        for (const auto& q : t) {
          plus.push_back(q.detach().clone());
          minus.push_back(q.detach().clone());
        }
        plus[j].view(-1)[e] += eps;
        minus[j].view(-1)[e] -= eps;
        torch::NoGradGuard ng;
        const double fd = (loss(plus).item<double>() - loss(minus).item<double>()) / (2 * eps);
        EXPECT_NEAR(grads[j].reshape(-1)[e].item<double>(), fd, 1e-6 * std::max(1.0, std::abs(fd))) << ad << " tensor " << j;
      }
    }
  }
}
