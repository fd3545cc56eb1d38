// unlearn/ (issue 21 item 4's performance requirement): one unlearning step of StableUN (3
// forward/backward passes: the forget loss at θ and at θ + ε, the retain loss at the look-ahead
// point) against one GA+GD step (2 passes) and one NPO+GD step, on the repro's model (MLP
// 784-256-256-10, float32) with batches of 128 forget and 128 retain images (random inputs: the
// cost does not depend on the values). One thread (set in main).
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include "stablelearn/unlearn/unlearn.h"

namespace ul = stablelearn::unlearn;

namespace {

torch::Tensor mlp(const torch::Tensor& x, const std::vector<torch::Tensor>& w) {
  auto h = torch::relu(torch::addmm(w[1], x, w[0].t()));
  h = torch::relu(torch::addmm(w[3], h, w[2].t()));
  return torch::addmm(w[5], h, w[4].t());
}

void step(benchmark::State& state, const char* method) {
  torch::manual_seed(0);
  std::vector<torch::Tensor> w = {0.05 * torch::randn({256, 784}), torch::zeros({256}), 0.05 * torch::randn({256, 256}),
                                  torch::zeros({256}),           0.05 * torch::randn({10, 256}), torch::zeros({10})};
  const auto xf = torch::randn({128, 784}), xr = torch::randn({128, 784});
  const auto yf = torch::full({128}, 9, torch::kInt64), yr = torch::randint(9, {128}, torch::kInt64);
  torch::Tensor ref;
  {
    torch::NoGradGuard ng;
    ref = ul::label_log_likelihood(mlp(xf, w), yf);
  }
  ul::UnlearnOptions o;
  o.method = method;
  o.lr = 1e-4;
  const bool npo = std::string(method) != "ga";
  const ul::WeightLoss forget = [&](const std::vector<torch::Tensor>& v) {
    const auto z = mlp(xf, v);
    return npo ? ul::npo_loss(z, yf, ref, o.beta) : ul::ga_loss(z, yf);
  };
  const ul::WeightLoss retain = [&](const std::vector<torch::Tensor>& v) {
    return torch::nn::functional::cross_entropy(mlp(xr, v), yr);
  };
  std::int64_t passes = 0;
  for (auto _ : state) {
    const auto s = o.method == "stableun" ? ul::stableun_step(w, forget, retain, o) : ul::descent_step(w, forget, retain, o);
    passes += s.passes;
    benchmark::ClobberMemory();
  }
  state.counters["passes_per_step"] = static_cast<double>(passes) / static_cast<double>(state.iterations());
}

void BM_GaStep(benchmark::State& s) { step(s, "ga"); }
void BM_NpoStep(benchmark::State& s) { step(s, "npo"); }
void BM_StableUnStep(benchmark::State& s) { step(s, "stableun"); }

}  // namespace

BENCHMARK(BM_GaStep)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_NpoStep)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_StableUnStep)->Unit(benchmark::kMillisecond);

int main(int argc, char** argv) {
  at::set_num_threads(1);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  return 0;
}
