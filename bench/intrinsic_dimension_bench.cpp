// Cost of one random-subspace round trip, to_full(θ_d) then to_subspace(g), the per-step overhead
// of train_in_subspace (docs/diagnostics.md, "Intrinsic dimension"), for the dense, sparse and
// Fastfood projections of Li et al. (2018) at the size of the 784-200-200-10 MLP (D = 199,210,
// L = 262,144) and d = 1000, float32 (the CLI's dtype), one thread. Each projection is built once
// (outside the timing); the dense one holds D·d floats (0.8 GB), Fastfood 4·L numbers.
#include <map>
#include <memory>

#include <benchmark/benchmark.h>
#include <torch/types.h>

#include "stablelearn/core/env.h"
#include "stablelearn/diagnostics/intrinsic_dimension.h"

namespace dg = stablelearn::diagnostics;

namespace {

constexpr std::int64_t kFullDim = 199210, kDim = 1000;

const dg::RandomSubspace& projection(dg::Projection kind) {
  static std::map<dg::Projection, std::unique_ptr<dg::RandomSubspace>> cache;
  auto& p = cache[kind];
  if (!p) {
    stablelearn::apply_threads(1);
    p = std::make_unique<dg::RandomSubspace>(kFullDim, kDim, 0, torch::kFloat32, kind);
  }
  return *p;
}

void BM_ProjectionRoundTrip(benchmark::State& state) {
  const auto kind = static_cast<dg::Projection>(state.range(0));
  const auto& p = projection(kind);
  torch::manual_seed(1);
  const auto theta = torch::randn({kDim});
  const auto g = torch::randn({kFullDim});
  for (auto _ : state) {
    const auto full = p.to_full(theta);
    const auto sub = p.to_subspace(g);
    benchmark::DoNotOptimize(full.data_ptr<float>());
    benchmark::DoNotOptimize(sub.data_ptr<float>());
  }
  state.SetLabel(dg::projection_name(kind));
  state.counters["D"] = static_cast<double>(kFullDim);
  state.counters["d"] = static_cast<double>(kDim);
}

}  // namespace

BENCHMARK(BM_ProjectionRoundTrip)
    ->ArgName("projection")
    ->Arg(static_cast<int>(dg::Projection::Dense))
    ->Arg(static_cast<int>(dg::Projection::Sparse))
    ->Arg(static_cast<int>(dg::Projection::Fastfood))
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
