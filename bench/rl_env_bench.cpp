// Issue 23: vectorised CartPole-v1 stepping (rl/cartpole.h), env steps per second on one core
// (target >= 10 million). Baseline in the same run: a plain per-copy double-precision step with
// std::sin/std::cos (the textbook loop). Actions are a fixed pseudo-random table (64 rows), so the
// measured time is the environment's (auto-reset included).
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "stablelearn/rl/cartpole.h"

namespace {

std::vector<std::int32_t> action_table(std::int64_t n, int rows) {
  std::vector<std::int32_t> a(static_cast<std::size_t>(n) * rows);
  stablelearn::rl::SplitMix64 r{123};
  for (auto& v : a) v = static_cast<std::int32_t>(r.next() >> 63);
  return a;
}

void BM_CartPoleVec(benchmark::State& state) {
  const std::int64_t n = state.range(0);
  stablelearn::rl::EnvOptions o;
  o.num_envs = n;
  stablelearn::rl::CartPole env(o);
  std::vector<float> obs(4 * n), rew(n);
  std::vector<std::uint8_t> term(n), trunc(n);
  const int rows = 64;
  const auto actions = action_table(n, rows);
  env.reset(0, obs.data());
  int row = 0;
  for (auto _ : state) {
    env.step(actions.data() + static_cast<std::size_t>(row) * n, obs.data(), rew.data(), term.data(), trunc.data());
    row = (row + 1) & (rows - 1);
    benchmark::DoNotOptimize(obs.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * n);
}
BENCHMARK(BM_CartPoleVec)->Arg(1)->Arg(16)->Arg(256)->Arg(4096)->UseRealTime();

// The textbook loop: array-of-structs double state, std::sin/std::cos, branches, reset in place.
void BM_CartPoleNaive(benchmark::State& state) {
  const std::int64_t n = state.range(0);
  struct S {
    double x, xd, th, thd;
    int steps;
  };
  std::vector<S> s(n);
  stablelearn::rl::SplitMix64 r{1};
  auto reset = [&](S& e) {
    e = {-0.05 + 0.1 * r.uniform01(), -0.05 + 0.1 * r.uniform01(), -0.05 + 0.1 * r.uniform01(),
         -0.05 + 0.1 * r.uniform01(), 0};
  };
  for (auto& e : s) reset(e);
  std::vector<float> obs(4 * n), rew(n);
  std::vector<std::uint8_t> done(n);
  const int rows = 64;
  const auto actions = action_table(n, rows);
  int row = 0;
  for (auto _ : state) {
    const std::int32_t* a = actions.data() + static_cast<std::size_t>(row) * n;
    for (std::int64_t i = 0; i < n; ++i) {
      S& e = s[i];
      const double f = a[i] == 1 ? 10.0 : -10.0, c = std::cos(e.th), sn = std::sin(e.th);
      const double temp = (f + 0.05 * e.thd * e.thd * sn) / 1.1;
      const double thacc = (9.8 * sn - c * temp) / (0.5 * (4.0 / 3.0 - 0.1 * c * c / 1.1));
      const double xacc = temp - 0.05 * thacc * c / 1.1;
      e.x += 0.02 * e.xd;
      e.xd += 0.02 * xacc;
      e.th += 0.02 * e.thd;
      e.thd += 0.02 * thacc;
      const bool d = e.x < -2.4 || e.x > 2.4 || e.th < -0.20943951 || e.th > 0.20943951 || ++e.steps >= 500;
      rew[i] = 1.f;
      done[i] = d;
      if (d) reset(e);
      obs[4 * i] = static_cast<float>(e.x);
      obs[4 * i + 1] = static_cast<float>(e.xd);
      obs[4 * i + 2] = static_cast<float>(e.th);
      obs[4 * i + 3] = static_cast<float>(e.thd);
    }
    row = (row + 1) & (rows - 1);
    benchmark::DoNotOptimize(obs.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * n);
}
BENCHMARK(BM_CartPoleNaive)->Arg(1)->Arg(256)->Arg(4096)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
