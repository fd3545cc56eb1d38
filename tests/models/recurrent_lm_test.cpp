// models/gka mixers "linear" (gated linear attention) and "delta" (gated delta rule) against hand
// formulas written here, the delta rule's exact recall of orthonormal keys, and models/recurrent_lm:
// the short convolution against a direct sum, causality, bad input, and a 2-layer model learning
// multi-query associative recall.
#include <cmath>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "stablelearn/core/error.h"
#include "stablelearn/data/sequences.h"
#include "stablelearn/models/recurrent_lm.h"
#include "testing.h"

namespace sm = stablelearn::models;
namespace sl = stablelearn;
namespace nnf = torch::nn::functional;

namespace {

std::vector<torch::Tensor> random_weights(const sm::WeightLayout& layout, double scale = 0.5) {
  std::vector<torch::Tensor> w;
  for (const auto& e : layout.entries()) w.push_back((scale * torch::randn(e.shape, torch::kFloat64)).requires_grad_());
  return w;
}

// The layer's inputs of one head, written out from the header's formulas (float64).
struct HandStreams {
  torch::Tensor q, k, v, beta, gamma;  // [B, T, D] x3, [B, T] x2 for head `head`
};

HandStreams hand_streams(const torch::Tensor& x, const std::vector<torch::Tensor>& w, std::int64_t heads, std::int64_t head) {
  const auto d = x.size(2), D = d / heads;
  auto cols = [&](const torch::Tensor& y) { return y.slice(2, head * D, (head + 1) * D); };
  auto unit = [](const torch::Tensor& y) { return y / y.norm(2, -1, true).clamp_min(1e-6); };
  HandStreams s;
  s.q = unit(cols(torch::matmul(x, w[0].t())));
  s.k = unit(cols(torch::matmul(x, w[1].t())));
  s.v = cols(torch::matmul(x, w[2].t()));
  s.beta = torch::sigmoid(torch::matmul(x, w[3].t()) + w[4]).select(2, head);
  const auto a = (torch::matmul(x, w[5].t()) + w[6]).select(2, head);
  s.gamma = torch::exp(-std::exp(w[7][head].item<double>()) * torch::log1p(torch::exp(a)));
  return s;
}

}  // namespace

TEST(GkaMixers, GatedLinearAttentionEqualsTheDecayedDoubleSum) {
  sm::GkaOptions o;
  o.d_model = 8;
  o.heads = 2;
  o.chunk = 3;  // 7 tokens: chunks 3, 3, 1 (the carried state is used)
  o.mixer = "linear";
  torch::manual_seed(1);
  const auto w = random_weights(sm::gka_layout(o));
  const auto x = torch::randn({2, 7, 8}, torch::kFloat64);
  const auto y = sm::functional::gka(x, w.data(), o);
  const auto D = o.head_dim();
  std::vector<torch::Tensor> heads;
  for (std::int64_t hh = 0; hh < o.heads; ++hh) {
    const auto s = hand_streams(x, w, o.heads, hh);
    const auto bk = s.k * (s.beta.unsqueeze(-1) + 1e-6), bv = s.v * (s.beta.unsqueeze(-1) + 1e-6);
    auto out = torch::zeros({2, 7, D}, torch::kFloat64);
    for (std::int64_t b = 0; b < 2; ++b)
      for (std::int64_t t = 0; t < 7; ++t)
        for (std::int64_t i = 0; i <= t; ++i) {
          double decay = 1;
          for (std::int64_t j = i + 1; j <= t; ++j) decay *= s.gamma[b][j].item<double>();
          out[b][t] += decay * (s.q[b][t] * bk[b][i]).sum() * bv[b][i] / std::sqrt(double(D));
        }
    heads.push_back(out);
  }
  const auto expected = torch::matmul(torch::cat(heads, 2), w[10].t());
  EXPECT_LT((y - expected).abs().max().item<double>(), 1e-12);
}

TEST(GkaMixers, GatedDeltaRuleIsOneGradientStepPerToken) {
  // S_t = γ_t S_{t−1} − β_t ∇_S ½‖S k_t − v_t‖² at S = γ_t S_{t−1} (the gradient by autograd here).
  sm::GkaOptions o;
  o.d_model = 6;
  o.heads = 2;
  o.mixer = "delta";
  torch::manual_seed(2);
  const auto w = random_weights(sm::gka_layout(o));
  const auto x = torch::randn({2, 5, 6}, torch::kFloat64);
  const auto y = sm::functional::gka(x, w.data(), o);
  const auto D = o.head_dim();
  std::vector<torch::Tensor> heads;
  for (std::int64_t hh = 0; hh < o.heads; ++hh) {
    const auto s = hand_streams(x.detach(), w, o.heads, hh);
    auto out = torch::zeros({2, 5, D}, torch::kFloat64);
    for (std::int64_t b = 0; b < 2; ++b) {
      auto S = torch::zeros({D, D}, torch::kFloat64);
      for (std::int64_t t = 0; t < 5; ++t) {
        const auto Sg = (s.gamma[b][t].detach() * S).requires_grad_();
        const auto loss = 0.5 * (torch::mv(Sg, s.k[b][t].detach()) - s.v[b][t].detach()).pow(2).sum();
        const auto g = torch::autograd::grad({loss}, {Sg})[0];
        S = (Sg - s.beta[b][t].detach() * g).detach();
        out[b][t] = torch::mv(S, s.q[b][t].detach()) / std::sqrt(double(D));
      }
    }
    heads.push_back(out);
  }
  const auto expected = torch::matmul(torch::cat(heads, 2), w[10].detach().t());
  EXPECT_LT((y.detach() - expected).abs().max().item<double>(), 1e-12);
}

TEST(GkaMixers, DeltaRuleRecallsOrthonormalKeysExactlyAndLinearAttentionDoesNotForCorrelatedOnes) {
  // One head of D = 12 on x = [key (4), value (4), query flag, 0, 0, 0]: W_q and W_k give [key, key]
  // (unit after the layer's normalisation, [key, key]/√2), W_v gives [value, 0], β = σ(40 − 80·flag)
  // (1 at writes, ≈ 4e-18 at queries), γ = 1 to double precision, W_o = I. Writing (k_i, v_i) and
  // then reading with q = k_j returns v_j/√D exactly for the delta rule when the keys are
  // orthonormal; with two correlated unit keys (k₁·k₂ = 0.8) the delta rule still returns v₂/√D
  // after both writes, gated linear attention f(v₂ + 0.8 v₁)/√D with f = (1 + 1e-6)² (its β + 1e-6
  // scales both k and v).
  sm::GkaOptions o;
  o.d_model = 12;
  o.heads = 1;
  auto w = random_weights(sm::gka_layout(o), 0.0);
  for (auto& t : w) t = t.detach();
  w[0].slice(0, 0, 4).slice(1, 0, 4).copy_(torch::eye(4, torch::kFloat64));
  w[0].slice(0, 4, 8).slice(1, 0, 4).copy_(torch::eye(4, torch::kFloat64));
  w[1].copy_(w[0]);
  w[2].slice(0, 0, 4).slice(1, 4, 8).copy_(torch::eye(4, torch::kFloat64));
  w[3][0][8] = -80.0;
  w[4].fill_(40.0);
  w[6].fill_(-60.0);  // softplus(−60) ≈ 9e-27
  w[10].copy_(torch::eye(12, torch::kFloat64));
  const double D = 12.0;
  auto run = [&](const std::string& mixer, const torch::Tensor& keys, const torch::Tensor& values) {
    o.mixer = mixer;
    const auto n = keys.size(0);
    auto x = torch::zeros({1, 2 * n, 12}, torch::kFloat64);
    x[0].slice(0, 0, n).slice(1, 0, 4).copy_(keys);
    x[0].slice(0, 0, n).slice(1, 4, 8).copy_(values);
    x[0].slice(0, n).slice(1, 0, 4).copy_(keys);
    x[0].slice(0, n).select(1, 8).fill_(1.0);
    return sm::functional::gka(x, w.data(), o)[0].slice(0, n).slice(1, 0, 4);
  };
  const auto values = torch::randn({4, 4}, torch::kFloat64);
  EXPECT_LT((run("delta", torch::eye(4, torch::kFloat64), values) - values / std::sqrt(D)).abs().max().item<double>(), 1e-12);
  auto corr = torch::zeros({2, 4}, torch::kFloat64);
  corr[0][0] = 1;
  corr[1][0] = 0.8;
  corr[1][1] = 0.6;
  const auto v2 = torch::randn({2, 4}, torch::kFloat64);
  const auto d2 = run("delta", corr, v2), l2 = run("linear", corr, v2);
  const double f = (1 + 1e-6) * (1 + 1e-6);
  EXPECT_LT((d2[1] - v2[1] / std::sqrt(D)).abs().max().item<double>(), 1e-12);
  EXPECT_LT((l2[1] - f * (v2[1] + 0.8 * v2[0]) / std::sqrt(D)).abs().max().item<double>(), 1e-12);
  EXPECT_GT((d2[0] - v2[0] / std::sqrt(D)).abs().max().item<double>(), 1e-3);  // k₁ was partly overwritten
}

TEST(RecurrentLm, ShortConvolutionIsTheCausalSumAndTheModelIsCausal) {
  torch::manual_seed(3);
  const auto x = torch::randn({2, 6, 3}, torch::kFloat64), w = torch::randn({3, 1, 4}, torch::kFloat64),
             b = torch::randn({3}, torch::kFloat64);
  const auto y = sm::functional::causal_depthwise_conv(x, w, b);
  auto expected = b.view({1, 1, 3}).expand({2, 6, 3}).clone();
  for (std::int64_t t = 0; t < 6; ++t)
    for (std::int64_t j = 0; j < 4; ++j) {
      const auto s = t - 3 + j;
      if (s >= 0) expected.select(1, t) += w.select(1, 0).select(1, j) * x.select(1, s);
    }
  EXPECT_LT((y - expected).abs().max().item<double>(), 1e-12);

  for (const std::string mixer : {"gka", "linear", "delta"}) {
    sm::RecurrentLmOptions o;
    o.vocab = 10;
    o.mixer.d_model = 8;
    o.mixer.heads = 2;
    o.mixer.chunk = 4;
    o.mixer.mixer = mixer;
    sm::RecurrentLm lm(o);
    const auto t1 = torch::randint(0, 10, {2, 9}, torch::kLong);
    auto t2 = t1.clone();
    t2[0][6] = (t1[0][6].item<std::int64_t>() + 1) % 10;
    torch::NoGradGuard ng;
    const auto a = lm->forward(t1), c = lm->forward(t2);
    ASSERT_EQ(a.sizes(), (std::vector<std::int64_t>{2, 9, 10}));
    EXPECT_EQ((a.slice(1, 0, 6) - c.slice(1, 0, 6)).abs().max().item<double>(), 0.0) << mixer;
    EXPECT_GT((a.slice(1, 6) - c.slice(1, 6)).abs().max().item<double>(), 1e-6) << mixer;
  }
}

TEST(RecurrentLm, BadOptionsAndTokensAreErrorsNamingTheKey) {
  namespace st = stablelearn::testing;
  sm::RecurrentLmOptions o;
  o.mixer.mixer = "mamba";
  st::expect_error<sl::ConfigError>([&] { sm::RecurrentLm lm(o); }, "model.mixer");
  o.mixer.mixer = "delta";
  o.conv = -1;
  st::expect_error<sl::ConfigError>([&] { sm::RecurrentLm lm(o); }, "model.conv");
  o.conv = 4;
  o.vocab = 5;
  o.mixer.d_model = 8;
  sm::RecurrentLm lm(o);
  st::expect_error<sl::DataError>([&] { lm->forward(torch::full({1, 3}, 5, torch::kLong)); }, "[0, vocab = 5)");
  st::expect_error<sl::ShapeError>([&] { lm->forward(torch::zeros({3}, torch::kLong)); }, "tokens [B, T]");
}

TEST(RecurrentLm, TwoGkaLayersLearnAssociativeRecall) {
  // MQAR with 4 pairs of 8 keys and 8 values, 4 queries; chance at a query is 1/8. d = 16, 2 heads,
  // 300 Adam steps on fresh batches of 16.
  sl::data::MqarOptions d;
  d.pairs = 4;
  d.queries = 4;
  d.keys = 8;
  d.values = 8;
  sm::RecurrentLmOptions o;
  o.vocab = d.keys + d.values;
  o.mixer.d_model = 16;
  o.mixer.heads = 2;
  torch::manual_seed(5);
  sm::RecurrentLm lm(o);
  torch::optim::Adam opt(lm->parameters(), torch::optim::AdamOptions(3e-3));
  auto loss_of = [&](const sl::data::SequenceSet& b) {
    const auto logits = lm->forward(b.tokens);
    return torch::nn::functional::cross_entropy(logits.reshape({-1, o.vocab}), b.targets.reshape({-1}),
                                                torch::nn::functional::CrossEntropyFuncOptions().ignore_index(-100));
  };
  for (int step = 0; step < 300; ++step) {
    const auto loss = loss_of(sl::data::mqar(d, 16, 1000 + step));
    opt.zero_grad();
    loss.backward();
    opt.step();
  }
  torch::NoGradGuard ng;
  const auto test = sl::data::mqar(d, 512, 7);
  const auto mask = test.targets.ne(-100);
  const auto acc = lm->forward(test.tokens).argmax(-1).eq(test.targets).masked_select(mask).to(torch::kFloat64).mean().item<double>();
  EXPECT_GE(acc, 0.8);  // measured 0.979
}
