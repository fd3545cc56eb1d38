// Issue 22's performance line for the Gated KalmaNet layer (models/gka.h): forward + backward of the
// chunked Chebyshev layer against the sequence length T at fixed batch, width, heads and chunk
// (B = 4, d = 64, 2 heads of D = 32, chunk 64, 30 iterations), float32, one thread. The cost should
// grow linearly in T (each chunk costs the same); the throughput (counter "tokens_per_second") should
// stay flat. Argument: T.
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include "stablelearn/models/gka.h"

namespace sm = stablelearn::models;

namespace {

void BM_GkaForwardBackward(benchmark::State& state) {
  const auto t = state.range(0);
  torch::manual_seed(0);
  sm::GkaOptions o;
  o.d_model = 64;
  o.heads = 2;
  o.chunk = 64;
  sm::Gka layer(o);
  const auto x = torch::randn({4, t, 64}).requires_grad_();
  for (auto _ : state) {
    layer->forward(x).sum().backward();
    layer->zero_grad();
    x.mutable_grad() = torch::Tensor();
    benchmark::ClobberMemory();
  }
  state.counters["tokens_per_second"] = benchmark::Counter(double(4 * t), benchmark::Counter::kIsIterationInvariantRate);
}

}  // namespace

BENCHMARK(BM_GkaForwardBackward)->ArgName("T")->Arg(64)->Arg(128)->Arg(256)->Arg(512)->Arg(1024)->Unit(benchmark::kMillisecond)->UseRealTime();

int main(int argc, char** argv) {
  torch::set_num_threads(1);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
