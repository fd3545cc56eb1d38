// One control step of an exported skill: the libtorch-free runtime vs the libtorch functional model
// (same weights, batch of one state, no autograd), for the paper's widths (h = 100 for HN, 1000 for
// CHN; hp = 100, 3 f̂ layers, d = 2, time input).
#include <array>

#include <benchmark/benchmark.h>
#include <torch/types.h>

#include "stablelearn/core/env.h"
#include "stablelearn/lfd/skill_export.h"
#include "stablelearn/models/snode.h"
#include "stablelearn/runtime/skill.h"

namespace sl = stablelearn;

namespace {

struct Fixture {
  sl::models::SNodeOptions opt;
  std::vector<torch::Tensor> weights;
  sl::runtime::Skill skill;
};

Fixture make(std::int64_t h, bool explicit_time = true) {
  torch::manual_seed(0);
  auto o = sl::models::SNodeOptions(2).hidden(h).fhat_layers(3).icnn_hidden(100).explicit_time(explicit_time);
  sl::models::SNode net(o);
  sl::lfd::SkillSpec s;
  s.dim = s.position_dim = 2;
  s.explicit_time = explicit_time;
  s.hidden = {h, h, h};
  s.icnn_hidden = 100;
  s.mean = {0, 0};
  s.std = {1, 1};
  s.goal = {0, 0};
  const auto bytes = sl::lfd::serialize_skill(s, net->weights());
  return {o, net->weights(), sl::runtime::Skill::parse(bytes.data(), bytes.size())};
}

void BM_RuntimeStep(benchmark::State& state) {
  sl::apply_threads(1);
  const auto f = make(state.range(0));
  sl::runtime::Workspace ws(f.skill);
  double x[2] = {0.3, -0.7}, v[2];
  double t = 0;
  for (auto _ : state) {
    f.skill.velocity_model(x, t, v, ws);
    benchmark::DoNotOptimize(v);
    t += 1e-3;
  }
}

// BM_RuntimeStep with a given kernel variant (arg 1: 0 portable, 1 AVX2, 2 AVX-512;
// runtime/kernels.h); BM_RuntimeStep runs the one chosen at load (the widest this CPU has).
void BM_RuntimeStepIsa(benchmark::State& state) {
  sl::apply_threads(1);
  auto skill = make(state.range(0)).skill;
  const auto isa = static_cast<sl::runtime::Isa>(state.range(1));
  if (!sl::runtime::isa_supported(isa)) return state.SkipWithError("this CPU lacks the variant");
  skill.set_isa(isa);
  sl::runtime::Workspace ws(skill);
  double x[2] = {0.3, -0.7}, v[2];
  double t = 0;
  for (auto _ : state) {
    skill.velocity_model(x, t, v, ws);
    benchmark::DoNotOptimize(v);
    t += 1e-3;
  }
  state.SetLabel(sl::runtime::isa_name(isa));
}

void BM_LibtorchStep(benchmark::State& state) {
  sl::apply_threads(1);
  const auto f = make(state.range(0));
  torch::NoGradGuard no_grad;
  const auto x = torch::tensor({{0.3f, -0.7f}});
  float t = 0;
  for (auto _ : state) {
    auto v = sl::models::functional::snode_rhs(torch::tensor(t), x, f.weights, f.opt);
    benchmark::DoNotOptimize(v.data_ptr<float>());
    t += 1e-3f;
  }
}

// An autonomous skill (no clock): one plain Euler control period vs one Lyapunov-certified period
// (step_certified: V before, f, V of the candidate; more where it halves or projects), both from
// the same state every iteration, period 1/400 s (the LASA data step is ≈ 2.4 ms).
void BM_RuntimeEulerStepAutonomous(benchmark::State& state) {
  sl::apply_threads(1);
  const auto f = make(state.range(0), false);
  sl::runtime::Workspace ws(f.skill);
  for (auto _ : state) {
    double x[2] = {0.3, -0.7};
    f.skill.step_euler(x, 0, 1.0 / 400, ws);
    benchmark::DoNotOptimize(x);
  }
}

void BM_RuntimeCertifiedStepAutonomous(benchmark::State& state) {
  sl::apply_threads(1);
  const auto f = make(state.range(0), false);
  sl::runtime::Workspace ws(f.skill);
  std::uint64_t substeps = 0, projections = 0;
  for (auto _ : state) {
    double x[2] = {0.3, -0.7};
    const auto r = f.skill.step_certified(x, 1.0 / 400, ws);
    substeps += r.substeps;
    projections += r.projections;
    benchmark::DoNotOptimize(x);
  }
  state.counters["substeps"] = benchmark::Counter(static_cast<double>(substeps), benchmark::Counter::kAvgIterations);
  state.counters["projections"] = benchmark::Counter(static_cast<double>(projections), benchmark::Counter::kAvgIterations);
}

// A discrete-time skill at demo size (configs/demo_discrete.toml: d = 2, 3 f̂ layers of width 100,
// ICNN width 50, ε = 1e-3, no clock; untrained weights × 3 for a stiff field): one control period of
// the data's step (1/400 s) with step_discrete (Φ: f, which computes V(x), plus V of the candidate,
// plus one V where it pulls) vs step_euler (f), over the same states. Arg 0: 256 random states
// (mostly certified Euler steps); arg 1: only states where Φ pulls (the worst case).
struct DemoStates {
  sl::runtime::Skill skill;
  std::vector<std::array<double, 2>> states;
};

DemoStates demo_states(bool projected_only) {
  torch::manual_seed(1);
  const auto o = sl::models::SNodeOptions(2).hidden(100).fhat_layers(3).icnn_hidden(50).eps(1e-3).explicit_time(false);
  sl::models::SNode net(o);
  std::vector<torch::Tensor> w;
  for (const auto& t : net->weights()) w.push_back(t.detach() * 3);
  sl::lfd::SkillSpec s;
  s.dim = s.position_dim = 2;
  s.explicit_time = false;
  s.hidden = {100, 100, 100};
  s.icnn_hidden = 50;
  s.eps = 1e-3;
  s.mean = {0, 0};
  s.std = {1, 1};
  s.goal = {0, 0};
  const auto bytes = sl::lfd::serialize_skill(s, w);
  DemoStates d{sl::runtime::Skill::parse(bytes.data(), bytes.size()), {}};
  sl::runtime::Workspace ws(d.skill);
  const auto x = torch::randn({20000, 2}, torch::kFloat64) * 2;
  for (std::int64_t b = 0; b < x.size(0) && d.states.size() < 256; ++b) {
    std::array<double, 2> st{x[b][0].item<double>(), x[b][1].item<double>()}, tmp = st;
    if (!projected_only || d.skill.step_discrete(tmp.data(), 1.0 / 400, ws, 0.5)) d.states.push_back(st);
  }
  return d;
}

void BM_RuntimeEulerStepDemo(benchmark::State& state) {
  sl::apply_threads(1);
  const auto d = demo_states(state.range(0) == 1);
  if (d.states.empty()) return state.SkipWithError("no state where the map pulls");
  sl::runtime::Workspace ws(d.skill);
  std::size_t k = 0;
  for (auto _ : state) {
    auto x = d.states[k++ % d.states.size()];
    d.skill.step_euler(x.data(), 0, 1.0 / 400, ws);
    benchmark::DoNotOptimize(x);
  }
  state.counters["states"] = static_cast<double>(d.states.size());
}

void BM_RuntimeDiscreteStepDemo(benchmark::State& state) {
  sl::apply_threads(1);
  const auto d = demo_states(state.range(0) == 1);
  if (d.states.empty()) return state.SkipWithError("no state where the map pulls");
  sl::runtime::Workspace ws(d.skill);
  std::size_t k = 0;
  std::uint64_t projected = 0;
  for (auto _ : state) {
    auto x = d.states[k++ % d.states.size()];
    projected += d.skill.step_discrete(x.data(), 1.0 / 400, ws, 0.5);
    benchmark::DoNotOptimize(x);
  }
  state.counters["states"] = static_cast<double>(d.states.size());
  state.counters["projected"] = benchmark::Counter(static_cast<double>(projected), benchmark::Counter::kAvgIterations);
}

}  // namespace

BENCHMARK(BM_RuntimeEulerStepDemo)->Arg(0)->Arg(1)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_RuntimeDiscreteStepDemo)->Arg(0)->Arg(1)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_RuntimeStep)->Arg(100)->Arg(1000)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_RuntimeStepIsa)->ArgsProduct({{100, 1000}, {0, 1, 2}})->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_LibtorchStep)->Arg(100)->Arg(1000)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_RuntimeEulerStepAutonomous)->Arg(100)->Arg(1000)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_RuntimeCertifiedStepAutonomous)->Arg(100)->Arg(1000)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_MAIN();
