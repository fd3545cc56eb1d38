// Issue 17 item 3: one training step of the classification engine's MLP 784-400-400-10 (SGD lr 0.01,
// momentum 0.9, cross-entropy) against its floor, at batch 10 and 128, on 1 and 2 threads.
//
// BM_GemmFloor       the floor: the eight matrix products of one step alone, called straight into
//                    the BLAS (sgemm_, the OpenBLAS that libtorch uses) with the arguments ATen
//                    passes for this network (recorded with an sgemm_ interposer):
//                      forward  3 × sgemm TN (out, B, in), beta 1 (z = b + h·Wᵀ, the bias copied first)
//                      backward 3 × sgemm NT (in, out, B) (∂W = ∂zᵀ·h), 2 × sgemm NN (in, B, out) (∂h = ∂z·W;
//                               none for the input layer)
//                    into buffers made once. Nothing else: no bias copy, ReLU, softmax, loss or update.
// BM_StepAutograd    the engine's step before issue 17: zero_grad, Classifier::forward, log_softmax +
//                    nll_loss, item(), backward, torch::optim::SGD::step.
// BM_StepPlain       the engine's plain step now: models::MlpLossGrad forward (+ item()) and
//                    backward, the weight gradients added by their products into SgdMomentum's
//                    scaled momentum buffers, each layer's update as soon as backward is done with
//                    it (the same numbers); BM_StepPlainUpdateAfter: gradients stored, then
//                    SgdMomentum::step after backward.
// BM_PlainForward / BM_PlainBackward / BM_PlainSgd: the three parts of BM_StepPlain, each alone.
// Batches are drawn from a fixed 12000-image set, as `cl run` gathers them (index_select), in every
// benchmark but the floor.
//
// Run: build/bench_cl_step --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
// (scripts/bench_cl.sh floor does, and divides `cl run`'s time per iteration by the floor).
#include <benchmark/benchmark.h>
#include <dlfcn.h>
#include <torch/nn/functional/loss.h>
#include <torch/optim/sgd.h>

#include <ATen/Parallel.h>

#include "stablelearn/core/env.h"
#include "stablelearn/models/classifier.h"
#include "stablelearn/models/mlp_step.h"
#include "stablelearn/optim/sgd.h"

namespace {

namespace sl = stablelearn;

using sgemm_fn = void (*)(const char*, const char*, const int*, const int*, const int*, const float*, const float*, const int*,
                          const float*, const int*, const float*, float*, const int*);

constexpr int kWidths[] = {784, 400, 400, 10};

struct Data {
  torch::Tensor x, y;
  Data() {
    auto g = at::detail::createCPUGenerator(1);
    x = torch::rand({12000, 1, 28, 28}, g);
    y = torch::randint(0, 10, {12000}, g, torch::kInt64);
  }
};
const Data& data() {
  static const Data d;
  return d;
}

/// Batch s of the epoch's order, gathered as the engine gathers it.
struct Batches {
  torch::Tensor order;
  std::int64_t batch, s = 0;
  explicit Batches(std::int64_t b) : order(torch::randperm(12000, torch::kInt64)), batch(b) {}
  torch::Tensor next_index() {
    const auto per = 12000 / batch;
    return order.narrow(0, (s++ % per) * batch, batch);
  }
};

void set_threads(const benchmark::State& state) { at::set_num_threads(static_cast<int>(state.range(1))); }

void BM_GemmFloor(benchmark::State& state) {
  set_threads(state);
  static const auto sgemm = reinterpret_cast<sgemm_fn>(dlsym(RTLD_DEFAULT, "sgemm_"));
  if (sgemm == nullptr) {
    state.SkipWithError("no sgemm_ in this process");
    return;
  }
  const int B = static_cast<int>(state.range(0));
  std::vector<std::vector<float>> W(3), dW(3), H(4), G(4);
  for (int l = 0; l < 3; ++l) {
    W[l].assign(std::size_t(kWidths[l]) * kWidths[l + 1], 0.01f);
    dW[l].assign(W[l].size(), 0.0f);
  }
  for (int l = 0; l < 4; ++l) {
    H[l].assign(std::size_t(B) * kWidths[l], 0.5f);
    G[l].assign(std::size_t(B) * kWidths[l], 0.1f);
  }
  const float one = 1, zero = 0;
  for (auto _ : state) {
    for (int l = 0; l < 3; ++l) {
      const int out = kWidths[l + 1], in = kWidths[l];
      sgemm("T", "N", &out, &B, &in, &one, W[l].data(), &in, H[l].data(), &in, &one, H[l + 1].data(), &out);
    }
    for (int l = 2; l >= 0; --l) {
      const int out = kWidths[l + 1], in = kWidths[l];
      sgemm("N", "T", &in, &out, &B, &one, H[l].data(), &in, G[l + 1].data(), &out, &zero, dW[l].data(), &in);
      if (l > 0) sgemm("N", "N", &in, &B, &out, &one, W[l].data(), &in, G[l + 1].data(), &out, &zero, G[l].data(), &in);
    }
    benchmark::DoNotOptimize(dW[0].data());
    benchmark::ClobberMemory();
  }
}

sl::models::Classifier make_mlp() {
  torch::manual_seed(0);
  return sl::models::Classifier(sl::models::ClassifierOptions{});
}

void BM_StepAutograd(benchmark::State& state) {
  set_threads(state);
  const auto& d = data();
  auto model = make_mlp();
  torch::optim::SGD opt(model->weights(), torch::optim::SGDOptions(0.01).momentum(0.9));
  Batches batches(state.range(0));
  for (auto _ : state) {
    const auto idx = batches.next_index();
    const auto x = d.x.index_select(0, idx), y = d.y.index_select(0, idx);
    opt.zero_grad();
    const auto loss = torch::nn::functional::nll_loss(torch::log_softmax(model->forward(x), 1), y);
    benchmark::DoNotOptimize(loss.item<double>());
    loss.backward();
    opt.step();
  }
}

struct Plain {
  sl::models::Classifier model = make_mlp();
  sl::models::MlpLossGrad step{*model};
  sl::optim::SgdMomentum sgd{model->weights(), 0.01, 0.9};
  torch::Tensor x, y;
  Batches batches;
  explicit Plain(std::int64_t b) : batches(b) {
    x = torch::empty({b, 1, 28, 28});
    y = torch::empty({b}, torch::kInt64);
  }
  void gather() {
    const auto idx = batches.next_index();
    torch::index_select_out(x, data().x, 0, idx);
    torch::index_select_out(y, data().y, 0, idx);
  }
};

void BM_StepPlain(benchmark::State& state) {  // as cl_run: each layer updated as backward finishes it
  set_threads(state);
  Plain p(state.range(0));
  for (auto _ : state) {
    p.gather();
    benchmark::DoNotOptimize(p.step.forward(p.x, p.y));
    std::vector<torch::Tensor> into(6);
    for (std::size_t k : {0, 2, 4}) into[k] = p.sgd.scaled_buffer(k);
    p.step.backward(
        [&](std::size_t first, std::size_t count) {
          for (std::size_t k = first; k < first + count; ++k) {
            if (p.step.accumulated(k))
              p.sgd.step_accumulated(k);
            else
              p.sgd.step(k, p.step.gradients()[k]);
          }
        },
        into);
  }
  state.SetLabel(std::string(p.sgd.kernel()) + (p.step.accumulated(0) ? ", dW into momentum" : ""));
}

void BM_StepPlainUpdateAfter(benchmark::State& state) {  // the update after the whole backward
  set_threads(state);
  Plain p(state.range(0));
  for (auto _ : state) {
    p.gather();
    benchmark::DoNotOptimize(p.step.forward(p.x, p.y));
    p.sgd.step(p.step.backward());
  }
}

void BM_PlainForward(benchmark::State& state) {
  set_threads(state);
  Plain p(state.range(0));
  p.gather();
  for (auto _ : state) benchmark::DoNotOptimize(p.step.forward(p.x, p.y));
}

void BM_PlainBackward(benchmark::State& state) {
  set_threads(state);
  Plain p(state.range(0));
  p.gather();
  p.step.forward(p.x, p.y);
  for (auto _ : state) benchmark::DoNotOptimize(p.step.backward().front().data_ptr());
}

void BM_PlainSgd(benchmark::State& state) {
  set_threads(state);
  Plain p(state.range(0));
  p.gather();
  p.step.forward(p.x, p.y);
  const auto grads = p.step.backward();
  for (auto _ : state) p.sgd.step(grads);  // the weights drift; the cost does not depend on the values
}

void BM_Gather(benchmark::State& state) {
  set_threads(state);
  Plain p(state.range(0));
  for (auto _ : state) p.gather();
}

void args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"batch", "threads"})->UseRealTime();
  for (int t : {1, 2})
    for (int batch : {10, 128}) b->Args({batch, t});
}

void floor_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"batch", "threads"})->UseRealTime();
  for (int t : {1, 2})
    for (int batch : {10, 96, 128}) b->Args({batch, t});  // 96: the last batch of a 12000-image epoch at 128
}

}  // namespace

BENCHMARK(BM_GemmFloor)->Apply(floor_args);
BENCHMARK(BM_StepAutograd)->Apply(args);
BENCHMARK(BM_StepPlain)->Apply(args);
BENCHMARK(BM_StepPlainUpdateAfter)->Apply(args);
BENCHMARK(BM_PlainForward)->Apply(args);
BENCHMARK(BM_PlainBackward)->Apply(args);
BENCHMARK(BM_PlainSgd)->Apply(args);
BENCHMARK(BM_Gather)->Apply(args);

int main(int argc, char** argv) {
  sl::select_blas_kernels(argv);  // the kernels `stablelearn` runs (OPENBLAS_CORETYPE)
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
