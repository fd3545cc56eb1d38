// distributed/: the torchrun environment, shards, and a 2-rank Gloo group on loopback (two
// threads of this process, each with its own ProcessGroup on one TCPStore).
#include <gtest/gtest.h>
#include <torch/autograd.h>

#include <chrono>
#include <exception>
#include <map>
#include <string>
#include <thread>

#include "stablelearn/core/error.h"
#include "stablelearn/distributed/env.h"
#include "stablelearn/distributed/launch.h"
#include "stablelearn/distributed/process_group.h"
#include "testing.h"

namespace stablelearn::distributed {
namespace {

using testing::expect_error;

std::optional<DistEnv> parse(const std::map<std::string, std::string>& vars) {
  return read_dist_env([&](const char* k) -> const char* {
    const auto it = vars.find(k);
    return it == vars.end() ? nullptr : it->second.c_str();
  });
}

const std::map<std::string, std::string> kFull{
    {"MASTER_ADDR", "127.0.0.1"}, {"MASTER_PORT", "29501"}, {"RANK", "1"}, {"WORLD_SIZE", "2"}, {"LOCAL_RANK", "1"}};

std::map<std::string, std::string> with(std::map<std::string, std::string> m, const std::string& k, const char* v) {
  if (v == nullptr)
    m.erase(k);
  else
    m[k] = v;
  return m;
}

TEST(DistEnv, AbsentOrOneRankIsSingleProcess) {
  EXPECT_FALSE(parse({}).has_value());
  EXPECT_FALSE(parse({{"MASTER_ADDR", "127.0.0.1"}, {"MASTER_PORT", "1"}}).has_value());
  EXPECT_FALSE(parse({{"RANK", "0"}, {"WORLD_SIZE", "1"}}).has_value());
}

TEST(DistEnv, ReadsTorchrunVariables) {
  const auto e = parse(with(kFull, "STABLELEARN_DIST_TIMEOUT", "7"));
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->master_addr, "127.0.0.1");
  EXPECT_EQ(e->master_port, 29501);
  EXPECT_EQ(e->rank, 1);
  EXPECT_EQ(e->world_size, 2);
  EXPECT_EQ(e->local_rank, 1);
  EXPECT_EQ(e->timeout, std::chrono::milliseconds(7000));
  const auto d = parse(with(kFull, "LOCAL_RANK", nullptr));
  EXPECT_EQ(d->local_rank, 1);                                  // defaults to RANK
  EXPECT_EQ(d->timeout, std::chrono::milliseconds(60000));     // default 60 s
}

TEST(DistEnv, BadValuesNameTheVariable) {
  expect_error<UsageError>([] { parse(with(kFull, "RANK", "abc")); }, "RANK=\"abc\" is not an integer");
  expect_error<UsageError>([] { parse(with(kFull, "RANK", "1x")); }, "RANK=\"1x\"");
  expect_error<UsageError>([] { parse(with(kFull, "RANK", "-1")); }, "RANK=-1 is outside");
  expect_error<UsageError>([] { parse(with(kFull, "RANK", "2")); }, "RANK=2 must be below WORLD_SIZE=2");
  expect_error<UsageError>([] { parse(with(kFull, "WORLD_SIZE", "0")); }, "WORLD_SIZE=0 is outside");
  expect_error<UsageError>([] { parse(with(kFull, "WORLD_SIZE", "")); }, "WORLD_SIZE=\"\" is not an integer");
  expect_error<UsageError>([] { parse(with(kFull, "MASTER_PORT", "70000")); }, "MASTER_PORT=70000 is outside 1..65535");
  expect_error<UsageError>([] { parse(with(kFull, "MASTER_PORT", "http")); }, "MASTER_PORT=\"http\"");
  expect_error<UsageError>([] { parse(with(kFull, "MASTER_PORT", nullptr)); }, "MASTER_PORT is not set");
  expect_error<UsageError>([] { parse(with(kFull, "MASTER_ADDR", nullptr)); }, "MASTER_ADDR is not set");
  expect_error<UsageError>([] { parse(with(kFull, "LOCAL_RANK", "5")); }, "LOCAL_RANK=5 must be below WORLD_SIZE=2");
  expect_error<UsageError>([] { parse(with(kFull, "STABLELEARN_DIST_TIMEOUT", "0")); }, "STABLELEARN_DIST_TIMEOUT=0");
  expect_error<UsageError>([] { parse(with(kFull, "WORLD_SIZE", nullptr)); }, "RANK=1 is set but WORLD_SIZE is not");
  expect_error<UsageError>([] { parse(with(kFull, "RANK", nullptr)); }, "WORLD_SIZE=2 is set but RANK is not");
}

TEST(Shard, ContiguousShardsCoverTheBatchInOrder) {
  for (int world = 1; world <= 4; ++world)
    for (std::int64_t n = 0; n <= 11; ++n) {
      std::int64_t next = 0;
      for (int r = 0; r < world; ++r) {
        const auto s = shard(n, r, world);
        EXPECT_EQ(s.begin, next) << n << " " << r << " " << world;
        EXPECT_GE(s.count, n / world);
        EXPECT_LE(s.count, n / world + 1);
        next += s.count;
      }
      EXPECT_EQ(next, n);
    }
  EXPECT_EQ(shard(13, 0, 2).count, 7);
  EXPECT_EQ(shard(13, 1, 2).begin, 7);
}

DistEnv local_env(int rank, int world, int port, int timeout_s) {
  DistEnv e;
  e.master_addr = "127.0.0.1";
  e.master_port = port;
  e.rank = rank;
  e.world_size = world;
  e.local_rank = rank;
  e.timeout = std::chrono::seconds(timeout_s);
  return e;
}

/// Runs fn(rank) on two threads, each with its own group of WORLD_SIZE worlds[rank]; returns each
/// thread's error message ("" when none).
template <class F>
std::vector<std::string> two_ranks(F fn, std::vector<int> worlds = {2, 2}, int timeout_s = 20) {
  const int port = free_port();
  std::vector<std::string> err(2);
  std::vector<std::thread> th;
  for (int r = 0; r < 2; ++r)
    th.emplace_back([&, r] {
      try {
        auto g = ProcessGroup::connect(local_env(r, worlds[static_cast<std::size_t>(r)], port, timeout_s));
        fn(*g);
      } catch (const std::exception& ex) {
        err[static_cast<std::size_t>(r)] = ex.what();
        if (err[static_cast<std::size_t>(r)].empty()) err[static_cast<std::size_t>(r)] = "?";
      }
    });
  for (auto& t : th) t.join();
  return err;
}

TEST(ProcessGroup, BucketedAllReduceSumsAndAverages) {
  std::vector<std::vector<torch::Tensor>> results(2);
  std::vector<std::int64_t> counts(2);
  const auto err = two_ranks([&](ProcessGroup& g) {
    const double r = g.rank();
    // Three float32 tensors (12 + 24 + 8 bytes... see bucket size), one float64, one float32.
    std::vector<torch::Tensor> t{torch::full({3}, 1.0 + r, torch::kFloat32), torch::full({2, 3}, 10.0 * (r + 1), torch::kFloat32),
                                 torch::arange(2, torch::kFloat32) + r, torch::full({4}, 0.5 * r, torch::kFloat64),
                                 torch::full({1}, 3.0, torch::kFloat32)};
    g.all_reduce(t, Reduce::Sum, /*bucket_bytes=*/40);
    counts[static_cast<std::size_t>(g.rank())] = g.collectives();
    auto m = torch::full({2, 2}, 2.0 * r, torch::kFloat32);
    g.all_reduce({m}, Reduce::Mean);
    t.push_back(m);
    // Gradients: one missing on rank 1 counts as zeros.
    auto p = torch::ones({3}, torch::requires_grad());
    if (r == 0) p.mutable_grad() = torch::full({3}, 4.0);
    g.all_reduce_gradients({p}, Reduce::Mean);
    t.push_back(p.grad());
    results[static_cast<std::size_t>(g.rank())] = t;
  });
  ASSERT_EQ(err[0], "");
  ASSERT_EQ(err[1], "");
  for (int r = 0; r < 2; ++r) {
    const auto& t = results[static_cast<std::size_t>(r)];
    EXPECT_TRUE(torch::equal(t[0], torch::full({3}, 3.0, torch::kFloat32)));
    EXPECT_TRUE(torch::equal(t[1], torch::full({2, 3}, 30.0, torch::kFloat32)));
    EXPECT_TRUE(torch::equal(t[2], torch::tensor({1.0f, 3.0f})));
    EXPECT_TRUE(torch::equal(t[3], torch::full({4}, 0.5, torch::kFloat64)));
    EXPECT_TRUE(torch::equal(t[4], torch::full({1}, 6.0, torch::kFloat32)));
    EXPECT_TRUE(torch::equal(t[5], torch::full({2, 2}, 1.0, torch::kFloat32)));
    EXPECT_TRUE(torch::equal(t[6], torch::full({3}, 2.0, torch::kFloat32)));
    // Buckets of 40 bytes: [t0 12 B + t1 24 B], [t2 8 B] (t3 is float64), [t3], [t4]: 4 all-reduces.
    EXPECT_EQ(counts[static_cast<std::size_t>(r)], 4);
  }
}

/// A two-layer linear model's parameters (float64), the same on every rank; the loss of rank r's
/// data (rank 1 has none when `empty_rank1`: no backward there).
struct TinyNet {
  std::vector<torch::Tensor> p;
  TinyNet() {
    auto o = torch::TensorOptions().dtype(torch::kFloat64);
    p = {torch::linspace(-1, 1, 12, o).reshape({4, 3}), torch::linspace(0, 0.3, 4, o), torch::linspace(0.5, -0.5, 8, o).reshape({2, 4}),
         torch::tensor({0.1, -0.2}, o)};
    for (auto& t : p) t.requires_grad_(true);
  }
  torch::Tensor loss(int rank) const {
    const auto x = torch::linspace(-2.0 + rank, 1.0 + 2 * rank, 15, torch::kFloat64).reshape({5, 3});
    const auto h = torch::tanh(x.matmul(p[0].t()) + p[1]);
    return (h.matmul(p[2].t()) + p[3]).pow(2).sum() * (0.5 + rank);
  }
};

// The sums equal each rank's gradient computed on its own (autograd::grad) and added up; buckets of
// 100 bytes in reverse order: [b2 16 B + W2 64 B], [b1 32 B] (+ W1 96 B > 100), [W1]: 3 buckets, all started
// during backward on the rank that has one; a rank without backward still joins (zeros); a
// backward outside prepare()/finish() is left alone; a second round reuses the buckets.
TEST(GradientReducer, OverlappedSumsEqualTheRanksGradientsAdded) {
  TinyNet ref;
  std::vector<torch::Tensor> expected;
  {
    const auto g0 = torch::autograd::grad({ref.loss(0)}, ref.p);
    const auto g1 = torch::autograd::grad({ref.loss(1)}, ref.p);
    for (std::size_t k = 0; k < g0.size(); ++k) expected.push_back(g0[k] + g1[k]);
  }
  const double loss_sum = ref.loss(0).item<double>() + ref.loss(1).item<double>();
  for (const bool empty_rank1 : {false, true}) {
    std::vector<std::vector<torch::Tensor>> grads(2);
    std::vector<double> losses(2);
    std::vector<std::int64_t> buckets(2), during(2);
    const auto err = two_ranks([&](ProcessGroup& g) {
      const auto r = static_cast<std::size_t>(g.rank());
      TinyNet net;
      GradientReducer red(g, net.p, /*bucket_bytes=*/100);
      for (int round = 0; round < 2; ++round) {
        for (auto& t : net.p) t.mutable_grad().reset();
        red.prepare();
        auto total = torch::zeros({1}, torch::kFloat64);
        if (!(empty_rank1 && r == 1)) {
          const auto l = net.loss(static_cast<int>(r));
          l.backward();
          total[0] = l.item<double>();
        }
        red.finish({total});
        losses[r] = total.item<double>();
        // Not armed: this backward must not touch the buckets or the sums above.
        (void)torch::autograd::grad({net.loss(0) * 3.0}, net.p);
      }
      for (const auto& t : net.p) grads[r].push_back(t.grad().clone());
      buckets[r] = red.buckets();
      during[r] = red.started_during_backward();
    });
    ASSERT_EQ(err[0], "");
    ASSERT_EQ(err[1], "");
    for (std::size_t r = 0; r < 2; ++r) {
      EXPECT_EQ(buckets[r], 3);
      for (std::size_t k = 0; k < expected.size(); ++k) {
        const auto want = empty_rank1 ? (expected[k] - torch::autograd::grad({ref.loss(1)}, {ref.p[k]})[0]) : expected[k];
        EXPECT_LE((grads[r][k] - want).abs().max().item<double>(), 1e-12) << "rank " << r << " parameter " << k;
      }
      const double want_loss = empty_rank1 ? ref.loss(0).item<double>() : loss_sum;
      EXPECT_NEAR(losses[r], want_loss, 1e-12 * std::abs(want_loss));
    }
    // Every bucket of both rounds started while backward ran, on a rank that had a backward.
    EXPECT_EQ(during[0], 6);
    EXPECT_EQ(during[1], empty_rank1 ? 0 : 6);
  }
}

TEST(ProcessGroup, MismatchedWorldSizeIsAClearError) {
  const auto start = std::chrono::steady_clock::now();
  const auto err = two_ranks([](ProcessGroup&) {}, {2, 3}, 5);
  EXPECT_NE(err[0].find("ranks disagree on WORLD_SIZE: 2 on rank 0, 3 on rank 1"), std::string::npos) << err[0];
  EXPECT_NE(err[1].find("ranks disagree on WORLD_SIZE: 2 on rank 0, 3 on rank 1 (reported to rank 1)"), std::string::npos)
      << err[1];
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(15));
}

TEST(ProcessGroup, UnreachableMasterFailsWithinTheTimeout) {
  const int port = free_port();  // nothing listens there
  const auto start = std::chrono::steady_clock::now();
  expect_error<UsageError>([&] { ProcessGroup::connect(local_env(1, 2, port, 2)); },
                           "rank 1 could not reach rank 0's rendezvous at MASTER_ADDR=127.0.0.1 MASTER_PORT=" +
                               std::to_string(port) + " within 2 s");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
}

TEST(ProcessGroup, MissingRanksFailWithinTheTimeout) {
  const int port = free_port();
  const auto start = std::chrono::steady_clock::now();
  expect_error<UsageError>([&] { ProcessGroup::connect(local_env(0, 2, port, 2)); }, "rank 0: rank 1 did not join within 2 s (WORLD_SIZE=2; is every rank started, with MASTER_ADDR=127.0.0.1 MASTER_PORT=");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
}

}  // namespace
}  // namespace stablelearn::distributed
