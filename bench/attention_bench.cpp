// Issue 22's performance line: our causal multi-head attention (models/transformer.h) forward +
// backward against libtorch's torch::nn::MultiheadAttention at equal sizes, both causal (theirs
// with an additive −∞ mask above the diagonal, need_weights = false), float32, one thread. Each
// iteration: forward, sum, backward into the parameters and the input, gradients cleared.
// Arguments: batch B, sequence length T, width d, heads h.
#include <limits>

#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include "stablelearn/models/transformer.h"

namespace sm = stablelearn::models;

namespace {

void BM_OurAttention(benchmark::State& state) {
  const auto b = state.range(0), t = state.range(1), d = state.range(2), h = state.range(3);
  torch::manual_seed(0);
  sm::AttentionOptions o;
  o.d_model = d;
  o.heads = h;
  o.causal = true;
  sm::MultiheadAttention att(o);
  const auto x = torch::randn({b, t, d}).requires_grad_();
  for (auto _ : state) {
    att->forward(x).sum().backward();
    att->zero_grad();
    x.mutable_grad() = torch::Tensor();
    benchmark::ClobberMemory();
  }
}

void BM_TorchMultiheadAttention(benchmark::State& state) {
  const auto b = state.range(0), t = state.range(1), d = state.range(2), h = state.range(3);
  torch::manual_seed(0);
  torch::nn::MultiheadAttention att(torch::nn::MultiheadAttentionOptions(d, h));
  const auto x = torch::randn({t, b, d}).requires_grad_();  // libtorch's layout [T, B, d]
  const auto mask = torch::full({t, t}, -std::numeric_limits<float>::infinity()).triu(1);
  for (auto _ : state) {
    std::get<0>(att->forward(x, x, x, {}, /*need_weights=*/false, mask)).sum().backward();
    att->zero_grad();
    x.mutable_grad() = torch::Tensor();
    benchmark::ClobberMemory();
  }
}

void sizes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"B", "T", "d", "h"});
  b->Args({32, 32, 128, 4});
  b->Args({16, 64, 128, 4});
  b->Args({8, 128, 256, 8});
  b->Unit(benchmark::kMillisecond)->UseRealTime();
}

}  // namespace

BENCHMARK(BM_OurAttention)->Apply(sizes);
BENCHMARK(BM_TorchMultiheadAttention)->Apply(sizes);

int main(int argc, char** argv) {
  torch::set_num_threads(1);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
