// optim/ against libtorch (issue 20's performance targets): one optimiser step of Stable-SPAM and
// SPAM against torch::optim::AdamW on the same float32 tensors (1 M and 10 M parameters), and a
// QuantLinear forward + backward (INT4 weights group 256, INT4 activations group 64) against a plain
// Linear. One thread (set in main).
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include "stablelearn/optim/quantize.h"
#include "stablelearn/optim/spam.h"

namespace so = stablelearn::optim;

namespace {

template <typename MakeOpt>
void optimiser_step(benchmark::State& state, MakeOpt make) {
  torch::manual_seed(0);
  auto p = torch::randn({state.range(0)}).requires_grad_();
  p.mutable_grad() = torch::randn({state.range(0)}) * 1e-3;
  auto opt = make(p);
  for (auto _ : state) {
    opt.step();
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}

void BM_AdamW(benchmark::State& s) {
  optimiser_step(s, [](torch::Tensor p) { return torch::optim::AdamW({p}, torch::optim::AdamWOptions(1e-3).weight_decay(0)); });
}
void BM_StableSpam(benchmark::State& s) {
  optimiser_step(s, [](torch::Tensor p) { return so::StableSpam({p}, so::StableSpamOptions(1e-3)); });
}
void BM_Spam(benchmark::State& s) {
  optimiser_step(s, [](torch::Tensor p) { return so::Spam({p}, so::SpamOptions(1e-3)); });
}

void linear_step(benchmark::State& state, bool quantised) {
  torch::manual_seed(0);
  const std::int64_t batch = 64, in = state.range(0), out = state.range(0);
  so::QuantLinear q(so::QuantLinearOptions(in, out).weight_bits(quantised ? 4 : 0).activation_bits(quantised ? 4 : 0));
  const auto x = torch::randn({batch, in}).requires_grad_();
  for (auto _ : state) {
    q->zero_grad();
    x.mutable_grad() = torch::Tensor();
    q->forward(x).sum().backward();
    benchmark::ClobberMemory();
  }
}
void BM_LinearForwardBackward(benchmark::State& s) { linear_step(s, false); }
void BM_QuantLinearForwardBackward(benchmark::State& s) { linear_step(s, true); }

}  // namespace

BENCHMARK(BM_AdamW)->Arg(1 << 20)->Arg(10 << 20)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_StableSpam)->Arg(1 << 20)->Arg(10 << 20)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Spam)->Arg(1 << 20)->Arg(10 << 20)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_LinearForwardBackward)->Arg(256)->Arg(1024)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_QuantLinearForwardBackward)->Arg(256)->Arg(1024)->Unit(benchmark::kMicrosecond);

int main(int argc, char** argv) {
  torch::set_num_threads(1);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
