// Hypernetworks (spec §2.4–2.6): parameter counts of every §2.6 row, output layouts with
// hand-set weights, initialisation, task embeddings, θ order, cloning and gradient flow.
#include <cmath>

#include <gtest/gtest.h>
#include <torch/types.h>

#include "stablelearn/core/error.h"
#include "stablelearn/models/hypernetwork.h"
#include "stablelearn/models/node_mlp.h"
#include "stablelearn/models/snode.h"

namespace {

namespace M = stablelearn::models;

/// A U(−b, b) bound as float32 draws can reach it: b rounded to float.
double fbound(double b) { return static_cast<double>(static_cast<float>(b)); }

// Spec §2.6. The table counts "incl. all task embs": with te = 256 the rows are consistent with
// N = 26 tasks for LASA 2D (e.g. 4,319,658 − 4,313,002 = 6,656 = 26·256), N = 10 for the
// 8D/16D/32D sets and N = 9 for RoboTasks9 (their data sets' task counts, spec §1).
struct Row {
  const char* name;
  M::WeightLayout target;
  bool chunked;
  std::int64_t tasks;
  std::int64_t P, K, total;
};

std::vector<Row> spec_rows() {
  auto node = [](std::vector<std::int64_t> hidden) {
    return M::node_mlp_layout(M::NodeMlpOptions(2).hidden(hidden));
  };
  auto snode = [](std::int64_t d, std::int64_t h) {
    return M::snode_layout(M::SNodeOptions(d).hidden(h).icnn_hidden(100).fhat_layers(3));
  };
  return {
      {"LASA 2D NODE 100^3 by HN", node({100, 100, 100}), false, 26, 20802, 0, 4319658},
      {"LASA 2D NODE 1000^3 by CHN", node({1000, 1000, 1000}), true, 26, 2008002, 246, 1899224},
      {"LASA 2D sNODE h=100 by HN", snode(2, 100), false, 26, 31706, 0, 6511362},
      {"LASA 2D sNODE h=1000 by CHN", snode(2, 1000), true, 26, 2018906, 247, 1899480},
      {"LASA 8D sNODE h=1000 by CHN", snode(8, 1000), true, 10, 2032118, 249, 1895896},
      {"LASA 16D sNODE h=1000 by CHN", snode(16, 1000), true, 10, 2049734, 251, 1896408},
      {"LASA 32D sNODE h=1000 by CHN", snode(32, 1000), true, 10, 2084966, 255, 1897432},
      {"RoboTasks9 sNODE h=1000 (d=6) by CHN", snode(6, 1000), true, 9, 2027714, 248, 1895384},
  };
}

TEST(HypernetworkCounts, EverySpecRow) {
  for (const auto& row : spec_rows()) {
    SCOPED_TRACE(row.name);
    EXPECT_EQ(row.target.numel(), row.P);
    std::shared_ptr<torch::nn::Module> module;
    M::TaskHyperNetwork* hn = nullptr;
    if (row.chunked) {
      auto opt = M::ChunkedHyperNetworkOptions(row.target);  // te = ce = 256, C = 8192, 200^3
      EXPECT_EQ(opt.num_chunks(), row.K);
      auto chn = std::make_shared<M::ChunkedHyperNetworkImpl>(opt);
      module = chn;
      hn = chn.get();
      // θ = E [K, 256] + trunk (512·200 + 200) + 2 (200·200 + 200) + head (200·8192 + 8192).
      EXPECT_EQ(hn->theta_numel(), row.K * 256 + 102600 + 80400 + 1646592);
    } else {
      auto net = std::make_shared<M::HyperNetworkImpl>(M::HyperNetworkOptions(row.target));
      module = net;
      hn = net.get();
      // θ = trunk (256·200 + 200) + 2 (200·200 + 200) + Σ_j (200 + 1) |w_j| = 131,800 + 201 P.
      EXPECT_EQ(hn->theta_numel(), 131800 + 201 * row.P);
    }
    for (std::int64_t i = 0; i < row.tasks; ++i) EXPECT_EQ(hn->add_task(), i);
    EXPECT_EQ(hn->numel_with_embeddings(), row.total);
    // The module's own parameter list is exactly θ plus the embeddings.
    std::int64_t n = 0;
    for (const auto& p : module->parameters()) n += p.numel();
    EXPECT_EQ(n, row.total);
  }
}

M::WeightLayout small_target() {
  M::WeightLayout l;
  l.add("w0", {2, 3}).add("b0", {2}).add("w1", {1, 2}).add("s", {}).add("b1", {2});
  return l;  // P = 6 + 2 + 2 + 1 + 2 = 13
}

TEST(HyperNetwork, OneHeadPerTargetTensorInLayoutOrder) {
  auto target = small_target();
  M::HyperNetwork hn(M::HyperNetworkOptions(target).hidden({5, 4}).task_emb_dim(3));
  hn->add_task();
  // θ order: [W_0, b_0, W_1, b_1, A_0, c_0, ..., A_4, c_4]; heads read the last trunk width (4).
  auto theta = hn->theta();
  ASSERT_EQ(theta.size(), 4u + 2 * target.size());
  EXPECT_EQ(theta[0].sizes(), torch::IntArrayRef({5, 3}));
  EXPECT_EQ(theta[2].sizes(), torch::IntArrayRef({4, 5}));
  for (std::size_t j = 0; j < target.size(); ++j) {
    EXPECT_EQ(theta[4 + 2 * j].sizes(), torch::IntArrayRef({target[j].numel, 4}));
    EXPECT_EQ(theta[5 + 2 * j].sizes(), torch::IntArrayRef({target[j].numel}));
  }
  // Hand-set heads: A_j = 0, c_j = 100 j + arange(|w_j|): generated tensor j holds exactly that.
  {
    torch::NoGradGuard g;
    for (std::size_t j = 0; j < target.size(); ++j) {
      theta[4 + 2 * j].zero_();
      theta[5 + 2 * j].copy_(torch::arange(target[j].numel) + 100.0 * j);
    }
  }
  auto w = hn->generate(0);
  ASSERT_EQ(w.size(), target.size());
  for (std::size_t j = 0; j < target.size(); ++j) {
    EXPECT_EQ(w[j].sizes(), torch::IntArrayRef(target[j].shape));
    auto expected = (torch::arange(target[j].numel, torch::kFloat32) + 100.0 * j).reshape(target[j].shape);
    EXPECT_TRUE(torch::equal(w[j], expected)) << target[j].name;
  }
  // Batched: two embeddings give two rows.
  auto batch = hn->forward_embedding(torch::randn({2, 3}));
  EXPECT_EQ(batch.sizes(), torch::IntArrayRef({2, 13}));
  EXPECT_THROW(hn->forward_embedding(torch::randn({4})), stablelearn::ShapeError);
  EXPECT_THROW(hn->forward(1), stablelearn::ConfigError);
}

TEST(ChunkedHyperNetwork, ChunksFillRowMajorAndTheFirstPValuesSplitInOrder) {
  auto target = small_target();  // P = 13
  const std::int64_t C = 5, te = 2, ce = 3;
  M::ChunkedHyperNetwork chn(
      M::ChunkedHyperNetworkOptions(target).hidden({1}).task_emb_dim(te).chunk_emb_dim(ce).chunk_dim(C));
  EXPECT_EQ(chn->options.num_chunks(), 3);  // ceil(13 / 5); the tail 2 values are unused
  chn->add_task();
  // θ order: [E, W_0, b_0, W_head, b_head].
  auto theta = chn->theta();
  ASSERT_EQ(theta.size(), 5u);
  EXPECT_EQ(theta[0].sizes(), torch::IntArrayRef({3, ce}));
  EXPECT_EQ(theta[1].sizes(), torch::IntArrayRef({1, te + ce}));
  EXPECT_EQ(theta[3].sizes(), torch::IntArrayRef({C, 1}));
  EXPECT_EQ(theta[4].sizes(), torch::IntArrayRef({C}));
  // Hand-set: E_k = [k, 0, 0]; the trunk reads input column te (= E_k[0]) so h = ReLU(k) = k;
  // head weight C, bias arange(C): chunk k = k·C + arange(C).
  {
    torch::NoGradGuard g;
    theta[0].zero_();
    theta[0].select(1, 0).copy_(torch::arange(3));
    theta[1].zero_();
    theta[1][0][te] = 1.0;
    theta[2].zero_();
    theta[3].fill_(static_cast<double>(C));
    theta[4].copy_(torch::arange(C));
  }
  auto chunks = chn->forward_chunks(chn->task_embedding(0));
  ASSERT_EQ(chunks.sizes(), torch::IntArrayRef({3, C}));
  EXPECT_TRUE(torch::equal(chunks, torch::arange(15, torch::kFloat32).reshape({3, C})));
  auto flat = chn->forward(0);
  EXPECT_TRUE(torch::equal(flat, torch::arange(13, torch::kFloat32)));
  auto w = chn->generate(0);
  ASSERT_EQ(w.size(), target.size());
  for (std::size_t j = 0; j < target.size(); ++j) {
    auto expected = (torch::arange(target[j].numel, torch::kFloat32) + target[j].offset).reshape(target[j].shape);
    EXPECT_TRUE(torch::equal(w[j], expected)) << target[j].name;
  }
  // The output above ignores the task embedding (the trunk reads only column te = E_k[0])...
  auto batch = chn->forward_embedding(torch::randn({2, te}));
  EXPECT_EQ(batch.sizes(), torch::IntArrayRef({2, 13}));
  EXPECT_TRUE(torch::equal(batch[0], flat));
  {
    torch::NoGradGuard g;
    theta[1].zero_();
    theta[1][0][0] = 1.0;  // ... now h = ReLU(input column 0) = ReLU(e_i[0]): e_i comes first
  }
  auto e = torch::tensor({2.0f, -1.0f});
  auto out = chn->forward_chunks(e);
  EXPECT_TRUE(torch::equal(out[1], 2.0f * C + torch::arange(C, torch::kFloat32)));
}

TEST(Hypernetworks, InitialisationFollowsTheSpec) {
  auto target = M::snode_layout(M::SNodeOptions(2).hidden(32).icnn_hidden(16));
  M::HyperNetwork hn{M::HyperNetworkOptions(target)};
  for (int i = 0; i < 26; ++i) hn->add_task();
  auto theta = hn->theta();
  auto maxabs = [](const torch::Tensor& t) { return t.abs().max().item<double>(); };
  // Trunk fan-ins 256, 200, 200; every head 200 (bound 1/√200 ≈ 0.0707).
  EXPECT_LE(maxabs(theta[0]), fbound(1 / std::sqrt(256.0)));
  EXPECT_GT(maxabs(theta[0]), 0.99 / std::sqrt(256.0));
  EXPECT_LE(maxabs(theta[1]), fbound(1 / std::sqrt(256.0)));
  EXPECT_LE(maxabs(theta[2]), fbound(1 / std::sqrt(200.0)));
  double head_max = 0;
  for (std::size_t j = 6; j < theta.size(); ++j) head_max = std::max(head_max, maxabs(theta[j]));
  EXPECT_LE(head_max, fbound(1 / std::sqrt(200.0)));
  EXPECT_GT(head_max, 0.99 / std::sqrt(200.0));
  // Task embeddings N(0, 1): 26 · 256 draws.
  auto e = torch::stack(hn->task_embeddings());
  EXPECT_NEAR(e.mean().item<double>(), 0.0, 0.05);
  EXPECT_NEAR(e.std().item<double>(), 1.0, 0.05);
  for (const auto& t : hn->task_embeddings()) EXPECT_TRUE(t.requires_grad());

  M::ChunkedHyperNetwork chn(M::ChunkedHyperNetworkOptions(target).chunk_dim(1024));
  auto ct = chn->theta();
  EXPECT_EQ(ct[0].sizes(), torch::IntArrayRef({chn->options.num_chunks(), 256}));
  EXPECT_NEAR(ct[0].std().item<double>(), 1.0, 0.1);               // chunk embeddings N(0, 1)
  EXPECT_LE(maxabs(ct[1]), fbound(1 / std::sqrt(512.0)));                  // trunk fan-in te + ce
  EXPECT_GT(maxabs(ct[1]), 0.99 / std::sqrt(512.0));
  EXPECT_LE(maxabs(ct[ct.size() - 2]), fbound(1 / std::sqrt(200.0)));      // head
  EXPECT_LE(maxabs(ct.back()), fbound(1 / std::sqrt(200.0)));
}

TEST(Hypernetworks, GradientsReachThetaAndOnlyTheUsedEmbedding) {
  auto opt = M::SNodeOptions(2).hidden(8).icnn_hidden(8);
  auto target = M::snode_layout(opt);
  M::ChunkedHyperNetwork chn(M::ChunkedHyperNetworkOptions(target).chunk_dim(64).hidden({16, 16}).task_emb_dim(8).chunk_emb_dim(4));
  chn->add_task();
  chn->add_task();
  auto w = chn->generate(1);
  auto x = torch::randn({7, 2});
  auto loss = M::F::snode_rhs(torch::scalar_tensor(0.2), x, w, opt).pow(2).mean();
  loss.backward();
  for (const auto& p : chn->theta()) {
    ASSERT_TRUE(p.grad().defined());
    EXPECT_GT(p.grad().abs().sum().item<double>(), 0.0);
  }
  EXPECT_FALSE(chn->task_embedding(0).grad().defined());
  ASSERT_TRUE(chn->task_embedding(1).grad().defined());
  EXPECT_GT(chn->task_embedding(1).grad().abs().sum().item<double>(), 0.0);
}

TEST(Hypernetworks, CloneKeepsTasksAndValues) {
  auto target = small_target();
  M::HyperNetwork hn(M::HyperNetworkOptions(target).hidden({6}).task_emb_dim(4));
  hn->add_task();
  hn->add_task();
  auto copy = std::dynamic_pointer_cast<M::HyperNetworkImpl>(hn->clone());
  ASSERT_TRUE(copy);
  EXPECT_EQ(copy->num_tasks(), 2);
  EXPECT_TRUE(torch::equal(copy->forward(1), hn->forward(1)));
  // Independent storage: changing the copy leaves the original alone.
  auto original_e1 = hn->task_embedding(1).detach().clone();
  auto original_out = hn->forward(1).detach().clone();
  {
    torch::NoGradGuard g;
    copy->task_embedding(1).add_(1.0);
    copy->theta().back().add_(1.0);  // last head bias
  }
  EXPECT_TRUE(torch::equal(hn->task_embedding(1), original_e1));
  EXPECT_TRUE(torch::equal(hn->forward(1), original_out));
  EXPECT_FALSE(torch::equal(copy->forward(1), original_out));

  M::ChunkedHyperNetwork chn(M::ChunkedHyperNetworkOptions(target).hidden({6}).task_emb_dim(4).chunk_emb_dim(2).chunk_dim(4));
  chn->add_task();
  auto ccopy = std::dynamic_pointer_cast<M::ChunkedHyperNetworkImpl>(chn->clone());
  ASSERT_TRUE(ccopy);
  EXPECT_EQ(ccopy->num_tasks(), 1);
  EXPECT_TRUE(torch::equal(ccopy->forward(0), chn->forward(0)));
  EXPECT_TRUE(torch::equal(ccopy->chunk_embeddings(), chn->chunk_embeddings()));
  EXPECT_NE(ccopy->chunk_embeddings().data_ptr(), chn->chunk_embeddings().data_ptr());
}

TEST(Hypernetworks, OptionValidation) {
  EXPECT_THROW(M::HyperNetwork(M::HyperNetworkOptions(M::WeightLayout())), stablelearn::ConfigError);
  EXPECT_THROW(M::ChunkedHyperNetwork(M::ChunkedHyperNetworkOptions(small_target()).chunk_dim(0)),
               stablelearn::ConfigError);
  EXPECT_THROW(M::HyperNetwork(M::HyperNetworkOptions(small_target()).hidden({3, 0})),
               stablelearn::ConfigError);
}

}  // namespace

// ---- MIP (magnitude-invariant parametrisation) ----------------------------------------------------

TEST(Mip, DefaultOffIsTheSpecHypernetworkBitForBit) {
  // The default path rebuilt here from the spec: the same draws in the documented order
  // (trunk W_k, b_k, then head A_j, c_j; U(±1/√fan_in)), the forward as ReLU trunk + linear heads.
  auto target = small_target();
  torch::manual_seed(5);
  M::HyperNetwork hn(M::HyperNetworkOptions(target).hidden({5, 4}).task_emb_dim(3));
  EXPECT_FALSE(hn->options.mip());
  torch::manual_seed(5);
  std::vector<torch::Tensor> p;
  auto draw = [&](std::vector<std::int64_t> shape, std::int64_t fan_in) {
    auto t = torch::empty(shape, torch::kFloat32);
    M::uniform_fan_in_(t, fan_in);
    p.push_back(t);
  };
  draw({5, 3}, 3), draw({5}, 3), draw({4, 5}, 5), draw({4}, 5);
  for (std::size_t j = 0; j < target.size(); ++j) draw({target[j].numel, 4}, 4), draw({target[j].numel}, 4);
  const auto theta = hn->theta();
  ASSERT_EQ(theta.size(), p.size());
  for (std::size_t i = 0; i < p.size(); ++i) EXPECT_TRUE(torch::equal(theta[i], p[i])) << i;
  const auto e = torch::randn({3});
  auto h = torch::relu(torch::linear(torch::relu(torch::linear(e, p[0], p[1])), p[2], p[3]));
  std::vector<torch::Tensor> outs;
  for (std::size_t j = 0; j < target.size(); ++j) outs.push_back(torch::addmv(p[5 + 2 * j], p[4 + 2 * j], h));
  torch::NoGradGuard g;
  EXPECT_TRUE(torch::equal(hn->forward_embedding(e), torch::cat(outs)));
  // mip(false) spelled out is the same network draw for draw.
  torch::manual_seed(5);
  M::HyperNetwork off(M::HyperNetworkOptions(target).hidden({5, 4}).task_emb_dim(3).mip(false));
  for (std::size_t i = 0; i < p.size(); ++i) EXPECT_TRUE(torch::equal(off->theta()[i], p[i])) << i;
}

TEST(Mip, EncodingsHaveAConstantNormForAnyInput) {
  auto gen = at::detail::createCPUGenerator(11);
  for (int trial = 0; trial < 50; ++trial) {
    // Learned embeddings: any magnitude from 1e-3 to 1e3, any direction.
    const double scale = std::pow(10.0, torch::rand({1}, gen, torch::kFloat64).item<double>() * 6 - 3);
    const auto e = torch::randn({4, 7}, gen, torch::kFloat64) * scale;
    const auto n = M::mip_normalize(e).norm(2, -1);
    EXPECT_TRUE(torch::allclose(n, torch::full({4}, std::sqrt(7.0), torch::kFloat64), 1e-12, 0)) << n;
    // γ ∈ [0, 1]^k: ‖[cos(πγ/2), sin(πγ/2)]‖ = √k.
    const auto gamma = torch::rand({3, 5}, gen, torch::kFloat64);
    const auto eg = M::mip_encode_unit(gamma);
    EXPECT_EQ(eg.sizes(), torch::IntArrayRef({3, 10}));
    EXPECT_TRUE(torch::allclose(eg.norm(2, -1), torch::full({3}, std::sqrt(5.0), torch::kFloat64), 1e-12, 0));
  }
  // Hand values: E(0) = (1, 0), E(1) = (0, 1), E(½) = (√½, √½); the direction is kept.
  const auto v = M::mip_encode_unit(torch::tensor({0.0, 1.0, 0.5}, torch::kFloat64));
  const double r = std::sqrt(0.5);
  EXPECT_TRUE(torch::allclose(v, torch::tensor({1.0, 0.0, r, 0.0, 1.0, r}, torch::kFloat64), 0, 1e-15));
  EXPECT_TRUE(torch::allclose(M::mip_normalize(torch::tensor({3.0, 4.0}, torch::kFloat64)),
                              torch::tensor({0.6, 0.8}, torch::kFloat64) * std::sqrt(2.0), 0, 1e-15));
  EXPECT_THROW(M::mip_encode_unit(torch::tensor({0.5, 1.5})), stablelearn::DataError);
  EXPECT_THROW(M::mip_encode_unit(torch::tensor({std::nan("")})), stablelearn::DataError);
  EXPECT_THROW(M::mip_normalize(torch::zeros({3})), stablelearn::DataError);
}

TEST(Mip, HypernetworksIgnoreTheEmbeddingsMagnitudeAndTheDefaultDoesNot) {
  auto target = small_target();
  M::HyperNetwork mip(M::HyperNetworkOptions(target).hidden({6, 5}).task_emb_dim(4).mip(true));
  M::HyperNetwork def(M::HyperNetworkOptions(target).hidden({6, 5}).task_emb_dim(4));
  M::ChunkedHyperNetwork cmip(M::ChunkedHyperNetworkOptions(target).hidden({6}).task_emb_dim(4).chunk_emb_dim(3).chunk_dim(5).mip(true));
  torch::NoGradGuard g;
  const auto e = torch::randn({4});
  for (const double c : {0.01, 3.0, 100.0}) {
    EXPECT_TRUE(torch::allclose(mip->forward_embedding(c * e), mip->forward_embedding(e), 1e-5, 1e-6)) << c;
    EXPECT_TRUE(torch::allclose(cmip->forward_embedding(c * e), cmip->forward_embedding(e), 1e-5, 1e-6)) << c;
  }
  EXPECT_FALSE(torch::allclose(def->forward_embedding(100 * e), def->forward_embedding(e), 1e-2, 1e-3));
}

TEST(Mip, OutputIsThetaZeroPlusDeltaWithThetaZeroInitialisedLikeThePrimaryNetwork) {
  // A target with large tensors, so the initialisation's statistics are measurable.
  M::WeightLayout target;
  target.add("w0", {400, 100}).add("b0", {400}).add("w1", {50, 400}).add("s", {});
  const auto P = target.numel();
  torch::manual_seed(3);
  M::HyperNetwork hn(M::HyperNetworkOptions(target).hidden({32, 16}).task_emb_dim(8).mip(true));
  const auto theta = hn->theta();
  // θ₀ = the heads' biases: weights N(0, gain²/fan_in), 1-D and scalar tensors 0.
  const double gain = std::sqrt(2.0 / (1 + 1e-4));
  EXPECT_NEAR(M::mip_theta0_gain(), gain, 1e-15);
  EXPECT_NEAR(theta[5].std().item<double>(), gain / std::sqrt(100.0), 0.02 * gain / 10);
  EXPECT_TRUE(torch::equal(theta[7], torch::zeros({400})));
  EXPECT_NEAR(theta[9].std().item<double>(), gain / std::sqrt(400.0), 0.03 * gain / 20);
  EXPECT_EQ(theta[11].item<float>(), 0.0f);
  // Output weights A_j ~ N(0, 1/P).
  EXPECT_NEAR(theta[4].std().item<double>(), 1 / std::sqrt(static_cast<double>(P)), 0.02 / std::sqrt(static_cast<double>(P)));
  // forward = θ₀ + A h(ê), by hand; Δθ small beside θ₀ at initialisation.
  torch::NoGradGuard g;
  const auto e = torch::randn({8});
  const auto en = e * (std::sqrt(8.0) / e.norm());
  const auto h = torch::relu(torch::linear(torch::relu(torch::linear(en, theta[0], theta[1])), theta[2], theta[3]));
  std::vector<torch::Tensor> theta0, delta;
  for (std::size_t j = 0; j < target.size(); ++j) {
    theta0.push_back(theta[5 + 2 * j]);
    delta.push_back(theta[4 + 2 * j].matmul(h));
  }
  const auto t0 = torch::cat(theta0), d = torch::cat(delta);
  EXPECT_TRUE(torch::allclose(hn->forward_embedding(e), t0 + d, 1e-5, 1e-6));
  EXPECT_LT(d.norm().item<double>(), 0.1 * t0.norm().item<double>());
  // CHN: θ₀ a separate parameter (first in θ), head bias 0; forward = θ₀ + the chunks' first P values.
  M::ChunkedHyperNetwork chn(M::ChunkedHyperNetworkOptions(target).hidden({16}).task_emb_dim(8).chunk_emb_dim(4).chunk_dim(4096).mip(true));
  const auto ct = chn->theta();
  ASSERT_TRUE(chn->theta0().defined());
  EXPECT_TRUE(ct[0].is_same(chn->theta0()));
  EXPECT_EQ(ct.size(), 1u + 1u + 2u + 2u);
  EXPECT_TRUE(torch::equal(chn->head_bias(), torch::zeros({4096})));
  const auto chunks = chn->forward_chunks(e).reshape({-1}).narrow(0, 0, P);
  EXPECT_TRUE(torch::allclose(chn->forward_embedding(e), chn->theta0() + chunks, 0, 1e-6));
  EXPECT_LT(chunks.norm().item<double>(), 0.25 * chn->theta0().norm().item<double>());
}

TEST(Mip, ConditionedHypernetworkEncodesGammaAndAddsThetaZero) {
  auto target = small_target();
  M::ConditionedHyperNetwork def(M::ConditionedHyperNetworkOptions(target, 2).hidden({8}));
  M::ConditionedHyperNetwork mip(M::ConditionedHyperNetworkOptions(target, 2).hidden({8}).mip(true));
  EXPECT_EQ(def->parameters()[0].sizes(), torch::IntArrayRef({8, 2}));
  EXPECT_EQ(mip->parameters()[0].sizes(), torch::IntArrayRef({8, 4}));  // cos and sin per input
  torch::NoGradGuard g;
  const auto gamma = torch::tensor({0.2f, 0.9f});
  const auto p = mip->parameters();
  const auto enc = torch::tensor({std::cos(0.1 * M_PI), std::cos(0.45 * M_PI), std::sin(0.1 * M_PI), std::sin(0.45 * M_PI)},
                                 torch::kFloat32);
  const auto h = torch::relu(torch::linear(enc, p[0], p[1]));
  EXPECT_TRUE(torch::allclose(mip->forward(gamma), mip->out_bias() + mip->out_weight().matmul(h), 1e-5, 1e-6));
  // Default: raw γ, and a positively homogeneous trunk with zero biases scales with γ.
  const auto pd = def->parameters();
  pd[1].zero_();
  pd[3].zero_();
  EXPECT_TRUE(torch::allclose(def->forward(0.5 * gamma), 0.5 * def->forward(gamma), 1e-5, 1e-6));
  EXPECT_EQ(mip->forward(torch::rand({3, 2})).sizes(), torch::IntArrayRef({3, 13}));
  EXPECT_THROW(mip->forward(torch::tensor({0.5f, 1.2f})), stablelearn::DataError);
  EXPECT_THROW(mip->forward(torch::rand({3})), stablelearn::ShapeError);
  EXPECT_THROW(M::ConditionedHyperNetwork(M::ConditionedHyperNetworkOptions(target, 0)), stablelearn::ConfigError);
}
