// Skill::step_discrete (runtime/skill.h) against the libtorch map Φ (models/snode_discrete.h), its
// decrease over long runs, and the version-2 skill file that marks a discrete-step skill.
#include <cmath>
#include <cstring>

#include <gtest/gtest.h>

#include "stablelearn/core/error.h"
#include "stablelearn/lfd/skill_export.h"
#include "stablelearn/models/snode.h"
#include "stablelearn/models/snode_discrete.h"
#include "stablelearn/runtime/skill.h"
#include "runtime_testing.h"
#include "testing.h"

namespace sl = stablelearn;
namespace rt = stablelearn::runtime;
namespace F = stablelearn::models::functional;

namespace {

struct Case {
  sl::models::SNodeOptions o;
  std::vector<torch::Tensor> w, w64;
  sl::lfd::SkillSpec spec;
};

/// An untrained autonomous sNODE (weights × 3: a stiff field) with non-trivial normalisation.
Case make_case(std::int64_t d, std::uint64_t seed) {
  Case c{sl::models::SNodeOptions(d).hidden(32).fhat_layers(2).icnn_hidden(16).explicit_time(false).eps(1e-3), {}, {}, {}};
  torch::manual_seed(seed);
  sl::models::SNode net(c.o);
  for (const auto& t : net->weights()) c.w.push_back(t.detach() * 3);
  for (const auto& t : c.w) c.w64.push_back(t.to(torch::kFloat64));
  auto& s = c.spec;
  s.dim = s.position_dim = d;
  s.explicit_time = false;
  s.hidden.assign(2, 32);
  s.icnn_hidden = 16;
  s.eps = 1e-3;
  for (std::int64_t i = 0; i < d; ++i) {
    s.mean.push_back(0.5 * static_cast<double>(i) - 1);
    s.std.push_back(1.0 + 0.25 * static_cast<double>(i));
    s.goal.push_back(0.1 * static_cast<double>(i));
  }
  return c;
}

rt::Skill parse(const Case& c) {
  const auto bytes = sl::lfd::serialize_skill(c.spec, c.w);
  return rt::Skill::parse(bytes.data(), bytes.size());
}

}  // namespace

TEST(RuntimeDiscrete, StepEqualsTheLibtorchMapInRawUnits) {
  // Same float32 weights; libtorch's Φ in float32 model coordinates vs the runtime in raw units.
  // Tolerance: float32 rounding, 1e-4 (1 + |x|) (the margin's jump where V(y) ≈ c is 1e-6).
  const double kappa = 0.5;
  for (std::int64_t d : {2, 8}) {
    const auto c = make_case(d, 31 + static_cast<std::uint64_t>(d));
    const auto skill = parse(c);
    rt::Workspace ws(skill);
    const auto xm = torch::randn({200, d}) * 3;
    for (double h : {0.01, 0.3}) {
      const auto ref = F::snode_discrete_step(xm, h, c.w, c.o, kappa);
      int agree_projected = 0;
      for (std::int64_t b = 0; b < xm.size(0); ++b) {
        std::vector<double> m(static_cast<std::size_t>(d)), raw(static_cast<std::size_t>(d)), out(static_cast<std::size_t>(d));
        for (std::int64_t i = 0; i < d; ++i) m[static_cast<std::size_t>(i)] = xm[b][i].item<double>();
        skill.to_raw(m.data(), raw.data());
        const bool projected = skill.step_discrete(raw.data(), h, ws, kappa);
        agree_projected += projected == ref.projected[b].item<bool>();
        skill.to_model(raw.data(), out.data());
        for (std::int64_t i = 0; i < d; ++i) {
          const double r = ref.x[b][i].item<double>();
          EXPECT_NEAR(out[static_cast<std::size_t>(i)], r, 1e-4 * (1 + std::abs(r))) << "d " << d << " h " << h << " row " << b;
        }
      }
      EXPECT_GE(agree_projected, 195) << "the two should decide alike except at the boundary";
      if (h > 0.1) {
        EXPECT_GT(ref.projected.sum().item<std::int64_t>(), 10) << "the coarse period must exercise the pull";
      }
    }
  }
}

TEST(RuntimeDiscrete, DecreaseHoldsOverAThousandStepsFromRandomStarts) {
  // 1000 control periods from 20 random starts: the runtime's own V drops by e^{−καh} at every
  // step (as it computes V: slack 1e-6 for the raw/model round trip of the state), libtorch's float64
  // V follows to float32 rounding, and the state ends at the goal.
  const double kappa = 0.5, h = 0.1;
  const auto c = make_case(2, 5);
  const auto skill = parse(c);
  rt::Workspace ws(skill);
  const double factor = std::exp(-kappa * c.o.alpha() * h);
  std::int64_t projected = 0;
  for (int start = 0; start < 20; ++start) {
    const auto x0 = torch::randn({2}, torch::kFloat64) * 4;
    double x[2] = {x0[0].item<double>(), x0[1].item<double>()}, m[2];
    skill.to_model(x, m);
    const double V0 = skill.lyapunov_model(m, 0, ws);
    double V = V0;
    for (int k = 0; k < 1000; ++k) {
      projected += skill.step_discrete(x, h, ws, kappa);
      ASSERT_TRUE(std::isfinite(x[0]) && std::isfinite(x[1]));
      skill.to_model(x, m);
      const double Vn = skill.lyapunov_model(m, 0, ws);
      ASSERT_LE(Vn, V * factor * (1 + 1e-6)) << "start " << start << " step " << k;
      if (k % 100 == 0) {
        const double V64 = F::snode_lyapunov(torch::tensor({{m[0], m[1]}}, torch::kFloat64), c.w64, c.o)[0].item<double>();
        EXPECT_NEAR(V64, Vn, 1e-5 * (1 + Vn));
      }
      V = Vn;
    }
    EXPECT_LE(V, V0 * std::pow(factor, 1000) * 1.01);
    // ‖x‖ <= √(V/ε): the distance bound, with a factor 2 for float32 rounding of V near the goal.
    EXPECT_LT(std::hypot(m[0], m[1]), 2 * std::sqrt(V0 / c.o.eps()) * std::pow(factor, 500));
  }
  EXPECT_GT(projected, 0) << "the stiff field should need the radial pull somewhere";
  // At the goal (raw units, so the model state is within rounding of 0) the state stays there.
  double g[2], mg[2];
  const double zero[2] = {0, 0};
  skill.to_raw(zero, g);
  for (int k = 0; k < 5; ++k) skill.step_discrete(g, h, ws, kappa);
  skill.to_model(g, mg);
  EXPECT_LE(std::hypot(mg[0], mg[1]), 1e-12);
}

TEST(RuntimeDiscrete, VersionTwoFileMarksTheDiscreteSkillAndOlderSkillsStayVersionOne) {
  auto c = make_case(2, 9);
  // A continuous-time skill is written as version 1, as before this format had a version 2.
  const auto v1 = sl::lfd::serialize_skill(c.spec, c.w);
  std::uint32_t version;
  std::memcpy(&version, v1.data() + 8, 4);
  EXPECT_EQ(version, 1u);
  const auto s1 = rt::Skill::parse(v1.data(), v1.size());
  EXPECT_FALSE(s1.header().discrete_step);
  rt::Workspace ws1(s1);
  double x[2] = {1, 2};
  EXPECT_THROW(s1.step_discrete(x, ws1), rt::SkillError);  // no period/κ recorded
  EXPECT_NO_THROW(s1.step_discrete(x, 0.1, ws1, 0.5));     // Φ is certified for any autonomous sNODE
  // A discrete-step skill: version 2 with its κ and period, and the 2-argument step uses them.
  c.spec.discrete_step = true;
  c.spec.kappa = 0.75;
  c.spec.period = 0.05;
  const auto v2 = sl::lfd::serialize_skill(c.spec, c.w);
  std::memcpy(&version, v2.data() + 8, 4);
  EXPECT_EQ(version, 2u);
  EXPECT_EQ(v2.size(), v1.size() + 20);
  const auto s2 = rt::Skill::parse(v2.data(), v2.size());
  EXPECT_TRUE(s2.header().discrete_step);
  EXPECT_EQ(s2.header().kappa, 0.75);
  EXPECT_EQ(s2.header().period, 0.05);
  rt::Workspace ws2(s2);
  double a[2] = {1, 2}, b[2] = {1, 2};
  const bool pa = s2.step_discrete(a, ws2), pb = s2.step_discrete(b, 0.05, ws2, 0.75);
  EXPECT_EQ(pa, pb);
  EXPECT_EQ(a[0], b[0]);
  EXPECT_EQ(a[1], b[1]);
  for (std::size_t n = 0; n < v2.size(); ++n) EXPECT_THROW(rt::Skill::parse(v2.data(), n), rt::SkillError) << n;
  // A clock-input skill cannot be marked discrete, nor stepped with Φ.
  auto clock = c;
  clock.spec.explicit_time = true;
  clock.o.explicit_time(true);
  sl::models::SNode clock_net(clock.o);
  EXPECT_THROW(sl::lfd::serialize_skill(clock.spec, clock_net->weights()), sl::InternalError);
  clock.spec.discrete_step = false;
  const auto cb = sl::lfd::serialize_skill(clock.spec, clock_net->weights());
  const auto cs = rt::Skill::parse(cb.data(), cb.size());
  rt::Workspace cws(cs);
  EXPECT_THROW(cs.step_discrete(x, 0.1, cws, 0.5), rt::SkillError);
}

TEST(RuntimeDiscrete, VersionTwoFixtureLoadsAndStepsLikeLibtorch) {
  // tests/fixtures/runtime/v2_discrete_snode.slskill (README beside it): a discrete-step skill.
  const auto skill = rt::Skill::load((sl::testing::fixtures() / "runtime/v2_discrete_snode.slskill").string());
  const auto& h = skill.header();
  ASSERT_TRUE(h.discrete_step);
  EXPECT_EQ(h.kappa, 0.5);
  EXPECT_NEAR(h.period, h.dt, 1e-15);
  EXPECT_FALSE(h.explicit_time);
  const auto [o, w] = sl::testing::libtorch_snode(skill);
  rt::Workspace ws(skill);
  const auto xm = torch::randn({20, static_cast<std::int64_t>(h.dim)}) * 2;
  const auto ref = F::snode_discrete_step(xm, h.period, w, o, h.kappa);
  for (std::int64_t b = 0; b < 20; ++b) {
    std::vector<double> m(h.dim), raw(h.dim);
    for (std::uint32_t i = 0; i < h.dim; ++i) m[i] = xm[b][i].item<double>();
    skill.to_raw(m.data(), raw.data());
    skill.step_discrete(raw.data(), ws);
    skill.to_model(raw.data(), m.data());
    for (std::uint32_t i = 0; i < h.dim; ++i) {
      const double r = ref.x[b][i].item<double>();
      EXPECT_NEAR(m[i], r, 1e-4 * (1 + std::abs(r))) << b;
    }
  }
}

TEST(RuntimeDiscrete, CenteredFhatSkillRunsAsTheLibtorchMapAfterFoldingItsBias) {
  // model.center_fhat: export folds f̂(0) into f̂'s output bias (lfd::fold_centered_fhat), so the
  // runtime's plain MLP computes f̂(x) − f̂(0). Only that bias changes, to −W_out h(0); the runtime's
  // Φ equals libtorch's centred Φ to float32 rounding, and at the goal the runtime's field is ~0.
  const double kappa = 0.5, h = 0.05;
  for (std::int64_t d : {2, 8}) {
    auto c = make_case(d, 61 + static_cast<std::uint64_t>(d));
    auto centred = c.o;
    centred.center_fhat(true);
    const auto folded = sl::lfd::fold_centered_fhat(centred, c.w);
    ASSERT_EQ(folded.size(), c.w.size());
    const std::size_t out_bias = 2 * 2 + 1;
    for (std::size_t k = 0; k < c.w.size(); ++k) {
      if (k != out_bias) {
        EXPECT_TRUE(torch::equal(folded[k], c.w[k])) << k;
      }
    }
    const auto h0 = (c.w64[2].mv((c.w64[0].mv(torch::zeros({d}, torch::kFloat64)) + c.w64[1]).clamp_min(0)) + c.w64[3]).clamp_min(0);
    EXPECT_TRUE(torch::allclose(folded[out_bias].to(torch::kFloat64), -c.w64[4].mv(h0), 1e-6, 1e-6)) << d;
    EXPECT_FALSE(torch::equal(sl::lfd::fold_centered_fhat(c.o, c.w)[out_bias].to(torch::kFloat64), folded[out_bias].to(torch::kFloat64)));
    const auto bytes = sl::lfd::serialize_skill(c.spec, folded);
    const auto skill = rt::Skill::parse(bytes.data(), bytes.size());
    rt::Workspace ws(skill);
    const auto xm = torch::randn({100, d}) * 2;
    const auto ref = F::snode_discrete_step(xm, h, c.w, centred, kappa);
    for (std::int64_t b = 0; b < xm.size(0); ++b) {
      std::vector<double> m(static_cast<std::size_t>(d)), raw(static_cast<std::size_t>(d)), out(static_cast<std::size_t>(d));
      for (std::int64_t i = 0; i < d; ++i) m[static_cast<std::size_t>(i)] = xm[b][i].item<double>();
      skill.to_raw(m.data(), raw.data());
      skill.step_discrete(raw.data(), h, ws, kappa);
      skill.to_model(raw.data(), out.data());
      for (std::int64_t i = 0; i < d; ++i) {
        const double r = ref.x[b][i].item<double>();
        EXPECT_NEAR(out[static_cast<std::size_t>(i)], r, 1e-4 * (1 + std::abs(r))) << "d " << d << " row " << b;
      }
    }
  }
}
