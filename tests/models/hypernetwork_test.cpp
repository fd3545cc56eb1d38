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
