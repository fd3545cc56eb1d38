// Cost of the curvature diagnostics on a small MLP (docs/diagnostics.md): one full-data gradient
// (the baseline), one Hessian-vector product (double backward), one Gauss–Newton-vector product
// (double-VJP trick), and the top Hessian eigenvalue by Lanczos and by power iteration.
// Problem: the built-in toy regression (diagnostics/toy_problem.h) with 10 inputs, 64 hidden
// units (D = 769 parameters), N = 512 samples in 4 batches of 128, float64, one thread.
#include <benchmark/benchmark.h>
#include <torch/types.h>

#include "stablelearn/core/env.h"
#include "stablelearn/diagnostics/curvature.h"
#include "stablelearn/diagnostics/eigen.h"
#include "stablelearn/diagnostics/toy_problem.h"

namespace dg = stablelearn::diagnostics;

namespace {

dg::ToyProblem problem() {
  stablelearn::apply_threads(1);
  auto p = dg::make_toy_problem(dg::ToyProblemOptions().inputs(10).hidden(64).samples(512).batch_size(128));
  p.train_gd(50, 0.1);
  return p;
}

void BM_Gradient(benchmark::State& state) {
  const auto p = problem();
  const dg::HessianOperator h(p.params, p.loss, p.batches);
  for (auto _ : state) benchmark::DoNotOptimize(h.loss_and_gradient().second.data_ptr<double>());
}

void BM_HessianVectorProduct(benchmark::State& state) {
  const auto p = problem();
  const dg::HessianOperator h(p.params, p.loss, p.batches);
  const auto v = torch::randn({h.dim()}, torch::kFloat64);
  for (auto _ : state) benchmark::DoNotOptimize(h.apply(v).data_ptr<double>());
  state.counters["D"] = static_cast<double>(h.dim());
}

void BM_GaussNewtonVectorProduct(benchmark::State& state) {
  const auto p = problem();
  const dg::GaussNewtonOperator g(p.params, p.model, dg::OutputLoss::MeanSquaredError, p.batches);
  const auto v = torch::randn({g.dim()}, torch::kFloat64);
  for (auto _ : state) benchmark::DoNotOptimize(g.apply(v).data_ptr<double>());
}

void BM_TopEigenvalueLanczos(benchmark::State& state) {
  const auto p = problem();
  const dg::HessianOperator h(p.params, p.loss, p.batches);
  const auto steps = state.range(0);
  double lambda = 0.0;
  for (auto _ : state) {
    const auto r = dg::lanczos(h, dg::LanczosOptions().k(1).steps(steps).which(dg::Spectrum::LargestAlgebraic));
    lambda = r.eigenvalues[0].item<double>();
  }
  state.counters["lambda_max"] = lambda;
  state.counters["matvecs"] = static_cast<double>(steps);
}

void BM_TopEigenvaluePower(benchmark::State& state) {
  const auto p = problem();
  const dg::HessianOperator h(p.params, p.loss, p.batches);
  double lambda = 0.0, matvecs = 0.0;
  for (auto _ : state) {
    const auto r = dg::power_iteration(h, dg::PowerIterationOptions().tol(1e-4).max_iter(100));
    lambda = r.eigenvalues[0].item<double>();
    matvecs = static_cast<double>(r.matvecs);
  }
  state.counters["lambda_max"] = lambda;
  state.counters["matvecs"] = matvecs;
}

}  // namespace

BENCHMARK(BM_Gradient)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_HessianVectorProduct)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_GaussNewtonVectorProduct)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_TopEigenvalueLanczos)->Arg(20)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_TopEigenvaluePower)->UseRealTime()->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
