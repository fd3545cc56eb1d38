// The floor of issue 17 item 2: a hand-written float32 MLP forward with the widths of the runtime
// skill's f̂ in BM_RuntimeStep (input d + 1 = 3: two coordinates and the clock; three ReLU hidden
// layers of width h; a linear output of width d = 2), in the simplest code the compiler vectorises
// without -ffast-math. This TU alone is compiled with -O3 -march=native (bench/CMakeLists.txt),
// so it runs the widest vectors of the build machine, as a user who builds for their own robot
// computer would. It has no libtorch and no stablelearn include.
//
// What it does not compute: the runtime step also evaluates the ICNN Lyapunov function V, its
// analytic gradient ∇V and the projection (at h = 100 with ICNN width 100 the step does ≈ 2× the
// multiply-adds of this MLP; at h = 1000 ≈ 1.01×). Issue 17 compares the whole step with this
// 3-layer MLP all the same; BENCHMARKS.md says so beside the numbers.
//
// BM_FloorMlp (the floor): weights stored transposed, in × out per layer, contiguous, so the inner
// loop is y[0:out) += W[j, 0:out] · x[j] (no reduction, vectorised as is).
// BM_FloorMlpRowMajor (reference): row-major out × in weights with a plain dot product per output;
// without -ffast-math g++ keeps that sum in order, i.e. scalar.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include <benchmark/benchmark.h>

namespace {

struct FloorMlp {
  std::vector<int> widths;                   // {3, h, h, h, 2}
  std::vector<std::vector<float>> w, wt, b;  // row-major (out × in), transposed (in × out), bias
};

FloorMlp make_floor(int d_in, int h, int d_out) {
  FloorMlp m;
  m.widths = {d_in, h, h, h, d_out};
  std::mt19937 gen(0);
  for (std::size_t l = 0; l + 1 < m.widths.size(); ++l) {
    const int in = m.widths[l], out = m.widths[l + 1];
    std::uniform_real_distribution<float> u(-1.0f / std::sqrt(float(in)), 1.0f / std::sqrt(float(in)));
    std::vector<float> w(std::size_t(out) * in), wt(w.size()), b(out);
    for (int i = 0; i < out; ++i)
      for (int j = 0; j < in; ++j) wt[std::size_t(j) * out + i] = w[std::size_t(i) * in + j] = u(gen);
    for (auto& v : b) v = u(gen);
    m.w.push_back(std::move(w));
    m.wt.push_back(std::move(wt));
    m.b.push_back(std::move(b));
  }
  return m;
}

// y = W x + b per layer, ReLU between layers; a and b are two scratch buffers of width h.
__attribute__((noinline)) void floor_forward(const FloorMlp& m, const float* x, float* y, float* buf0, float* buf1) {
  float* bufs[2] = {buf0, buf1};
  const std::size_t layers = m.widths.size() - 1;
  for (std::size_t l = 0; l < layers; ++l) {
    const int in = m.widths[l], out = m.widths[l + 1];
    float* o = l + 1 == layers ? y : bufs[l % 2];
    const float* wt = m.wt[l].data();
    std::copy(m.b[l].begin(), m.b[l].end(), o);
    for (int j = 0; j < in; ++j) {
      const float xj = x[j];
      const float* row = wt + std::size_t(j) * out;
      for (int i = 0; i < out; ++i) o[i] += row[i] * xj;
    }
    if (l + 1 < layers)
      for (int i = 0; i < out; ++i) o[i] = std::max(o[i], 0.0f);
    x = o;
  }
}

__attribute__((noinline)) void floor_forward_row_major(const FloorMlp& m, const float* x, float* y, float* buf0,
                                                       float* buf1) {
  float* bufs[2] = {buf0, buf1};
  const std::size_t layers = m.widths.size() - 1;
  for (std::size_t l = 0; l < layers; ++l) {
    const int in = m.widths[l], out = m.widths[l + 1];
    float* o = l + 1 == layers ? y : bufs[l % 2];
    const float* w = m.w[l].data();
    for (int i = 0; i < out; ++i) {
      float s = m.b[l][i];
      for (int j = 0; j < in; ++j) s += w[std::size_t(i) * in + j] * x[j];
      o[i] = l + 1 < layers ? std::max(s, 0.0f) : s;
    }
    x = o;
  }
}

template <bool RowMajor>
void floor_bench(benchmark::State& state) {
  const int h = static_cast<int>(state.range(0));
  const auto m = make_floor(3, h, 2);
  std::vector<float> buf0(h), buf1(h);
  float x[3] = {0.3f, -0.7f, 0.0f}, y[2];
  for (auto _ : state) {
    if (RowMajor)
      floor_forward_row_major(m, x, y, buf0.data(), buf1.data());
    else
      floor_forward(m, x, y, buf0.data(), buf1.data());
    benchmark::DoNotOptimize(y);
    x[2] += 1e-3f;  // the clock input moves, as in BM_RuntimeStep
  }
}

void BM_FloorMlp(benchmark::State& state) { floor_bench<false>(state); }
void BM_FloorMlpRowMajor(benchmark::State& state) { floor_bench<true>(state); }

}  // namespace

BENCHMARK(BM_FloorMlp)->Arg(100)->Arg(1000)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_FloorMlpRowMajor)->Arg(100)->Arg(1000)->UseRealTime()->Unit(benchmark::kMicrosecond);
