// Issue 23: one PPO iteration on CartPole-v1 (collect 8 × 128 env steps + 4 epochs × 4 minibatches of
// 256), the unit the issue compares with a plain PyTorch-Python loop. One thread.
#include <benchmark/benchmark.h>

#include <torch/utils.h>

#include "stablelearn/rl/ppo.h"

namespace {

void BM_PpoIteration(benchmark::State& state) {
  torch::set_num_threads(1);
  stablelearn::rl::PpoOptions o;
  o.seed = 1;
  stablelearn::rl::Ppo ppo(o);
  const std::int64_t batch = o.num_envs * o.num_steps;
  for (auto _ : state) {
    auto s = ppo.train(batch);
    benchmark::DoNotOptimize(s.policy_loss);
  }
  state.SetItemsProcessed(state.iterations() * batch);  // env steps
}
BENCHMARK(BM_PpoIteration)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
