// The libtorch-free runtime (include/stablelearn/runtime/skill.h) against the libtorch models.
#include <cmath>
#include <fstream>

#include <gtest/gtest.h>

#include "stablelearn/core/fs.h"
#include "stablelearn/lfd/skill_export.h"
#include "stablelearn/lfd/trainer.h"
#include "stablelearn/models/node_mlp.h"
#include "stablelearn/models/odeint.h"
#include "stablelearn/models/snode.h"
#include "stablelearn/runtime/skill.h"
#include "runtime_testing.h"
#include "testing.h"

namespace sl = stablelearn;
namespace rt = stablelearn::runtime;
namespace F = stablelearn::models::functional;

namespace {

sl::lfd::SkillSpec spec_for(const sl::models::SNodeOptions& o) {
  sl::lfd::SkillSpec s;
  s.snode = true;
  s.dim = o.dim();
  s.position_dim = o.dim();
  s.explicit_time = o.explicit_time();
  s.hidden.assign(static_cast<std::size_t>(o.fhat_layers()), o.hidden());
  s.icnn_hidden = o.icnn_hidden();
  s.alpha = o.alpha();
  s.eps = o.eps();
  s.rehu = o.rehu();
  s.mean.assign(static_cast<std::size_t>(o.dim()), 0.0);
  s.std.assign(static_cast<std::size_t>(o.dim()), 1.0);
  s.goal.assign(static_cast<std::size_t>(o.dim()), 0.0);
  return s;
}

}  // namespace

TEST(Runtime, SNodeVelocityAndLyapunovMatchLibtorch) {
  for (bool with_time : {true, false}) {
    auto o = sl::models::SNodeOptions(3).hidden(24).fhat_layers(2).icnn_hidden(12).explicit_time(with_time);
    torch::manual_seed(with_time ? 1 : 2);
    sl::models::SNode net(o);
    // Larger weights than the default initialisation, so that every ReHU regime and the projection occur.
    std::vector<torch::Tensor> w;
    for (const auto& t : net->weights()) w.push_back(t.detach() * 3);
    const auto bytes = sl::lfd::serialize_skill(spec_for(o), w);
    const auto skill = rt::Skill::parse(bytes.data(), bytes.size());
    rt::Workspace ws(skill);
    std::vector<torch::Tensor> w64;
    for (const auto& t : w) w64.push_back(t.to(torch::kFloat64));
    int projected = 0;
    for (int k = 0; k < 200; ++k) {
      const auto x = torch::randn({1, 3}) * 2;
      const double t = 0.05 * k;
      // Reference in float64 (the runtime computes in float32, as the trained model does).
      const auto x64 = x.to(torch::kFloat64);
      const auto ref = F::snode_rhs(torch::tensor(t, torch::kFloat64), x64, w64, o);
      const auto z = with_time ? torch::cat({x64, torch::full({1, 1}, t, torch::kFloat64)}, 1) : x64;
      const auto ev = F::snode_eval(z, w64, o);
      const double correction = (ev.f - ev.fhat_aug).abs().max().item<double>();
      projected += correction > 1e-6;
      double xd[3] = {x[0][0].item<double>(), x[0][1].item<double>(), x[0][2].item<double>()}, v[3];
      skill.velocity_model(xd, t, v, ws);
      // Float32 rounding relative to the magnitudes involved: f̂ and the projection's correction
      // (which divides by ‖∇V‖² and so amplifies rounding when ∇V is small).
      const double scale = 1 + ev.fhat_aug.abs().max().item<double>() + correction;
      // The libtorch float32 model's own rounding error (vs float64) on this state: the runtime must
      // be within 1e-5 of the scale, or no worse than a few times what float32 libtorch achieves.
      const auto ref32 = F::snode_rhs(torch::tensor(static_cast<float>(t)), x, w, o).to(torch::kFloat64);
      for (int i = 0; i < 3; ++i) {
        const double err_lt = std::abs(ref32[0][i].item<double>() - ref[0][i].item<double>());
        EXPECT_NEAR(v[i], ref[0][i].item<double>(), 1e-5 * scale + 4 * err_lt) << k << "," << i;
      }
      const double V = skill.lyapunov_model(xd, t, ws);
      EXPECT_NEAR(V, ev.V[0].item<double>(), 1e-5 * (1 + std::abs(V))) << k;
    }
    EXPECT_GT(projected, 20) << "the projection should be active for some states";
    EXPECT_LT(projected, 200);
  }
}

TEST(Runtime, CertifiedStepsDecreaseTheLyapunovFunctionAtEveryControlPeriod) {
  // A random autonomous sNODE with enlarged weights (a stiff projected field) and a coarse control
  // period: after every step_certified() call V (recomputed independently by libtorch in float64)
  // has dropped by at least e^{−κα dt} up to float32 rounding, so every start reaches the goal.
  auto o = sl::models::SNodeOptions(2).hidden(32).fhat_layers(2).icnn_hidden(16).explicit_time(false).eps(1e-3);
  torch::manual_seed(7);
  sl::models::SNode net(o);
  std::vector<torch::Tensor> w, w64;
  for (const auto& t : net->weights()) w.push_back(t.detach() * 3);
  for (const auto& t : w) w64.push_back(t.to(torch::kFloat64));
  const auto bytes = sl::lfd::serialize_skill(spec_for(o), w);
  const auto skill = rt::Skill::parse(bytes.data(), bytes.size());
  rt::Workspace ws(skill);
  const double dt = 0.2, kappa = 0.5, factor = std::exp(-kappa * o.alpha() * dt);
  auto V64 = [&](const double* x) {
    return F::snode_lyapunov(torch::tensor({{x[0], x[1]}}, torch::kFloat64), w64, o)[0].item<double>();
  };
  int rejected = 0, projected = 0, single = 0;
  for (int start = 0; start < 20; ++start) {
    const auto x0 = torch::randn({2}, torch::kFloat64) * 3;
    double x[2] = {x0[0].item<double>(), x0[1].item<double>()};
    const double V0 = V64(x);
    double V = V0;
    for (int k = 0; k < 150; ++k) {
      const double before[2] = {x[0], x[1]};
      const auto rep = skill.step_certified(x, dt, ws, kappa);
      ASSERT_TRUE(rep.finite);
      const double Vn = V64(x);
      EXPECT_LE(Vn, V * factor * (1 + 1e-4) + 1e-9) << "start " << start << " step " << k;
      rejected += rep.rejections;
      projected += rep.projections;
      if (rep.substeps == 1 && rep.rejections == 0 && rep.projections == 0) {
        // The whole period was certified at once: exactly one Euler step of the libtorch field.
        ++single;
        const auto f = F::snode_rhs(torch::tensor(0.0, torch::kFloat64), torch::tensor({{before[0], before[1]}}, torch::kFloat64),
                                    w64, o);
        for (int i = 0; i < 2; ++i)
          EXPECT_NEAR(x[i], before[i] + dt * f[0][i].item<double>(), 1e-4 * (1 + std::abs(x[i])));
      }
      V = Vn;
    }
    EXPECT_LE(V, V0 * std::pow(factor, 150) * 1.1 + 1e-9);
  }
  EXPECT_GT(rejected, 0) << "the test should exercise the halving";
  EXPECT_GT(projected, 0) << "the test should exercise the projection";
  EXPECT_GT(single, 0);
  // At the goal the projected field is 0/0 (∇V(0) = 0) and a hair away from it V and ‖∇V‖²
  // underflow: a start there stays finite and does not move away (exactly on the goal it stays
  // exactly there, where f̂(0) ≠ 0 would have carried a plain Euler step off).
  for (const double x0 : {0.0, 1e-170, 1e-160, 1e-155, 1e-150}) {
    double xg[2] = {x0, 0.0};
    for (int k = 0; k < 3; ++k) {
      const auto rep = skill.step_certified(xg, dt, ws, kappa);
      EXPECT_TRUE(rep.finite) << x0;
      EXPECT_TRUE(std::isfinite(xg[0]) && std::isfinite(xg[1])) << x0;
      EXPECT_LE(std::hypot(xg[0], xg[1]), x0) << x0;
    }
  }
  // Clock-input skills carry no certificate.
  auto oc = sl::models::SNodeOptions(2).hidden(8).fhat_layers(1).icnn_hidden(4);
  sl::models::SNode clock_net(oc);
  const auto cbytes = sl::lfd::serialize_skill(spec_for(oc), clock_net->weights());
  const auto clock_skill = rt::Skill::parse(cbytes.data(), cbytes.size());
  rt::Workspace cws(clock_skill);
  double xc[2] = {1, 1};
  EXPECT_THROW(clock_skill.step_certified(xc, 0.1, cws), rt::SkillError);
}

TEST(Runtime, NodeVelocityMatchesLibtorch) {
  const auto o = sl::models::NodeMlpOptions(2).hidden({16, 8});
  torch::manual_seed(3);
  sl::models::NodeMlp net(o);
  std::vector<torch::Tensor> w;
  for (const auto& t : net->parameters()) w.push_back(t.detach());
  sl::lfd::SkillSpec s;
  s.snode = false;
  s.dim = 2;
  s.position_dim = 2;
  s.hidden = {16, 8};
  s.mean = {1.0, -2.0};
  s.std = {2.0, 0.5};
  s.goal = {0.0, 0.0};
  const auto bytes = sl::lfd::serialize_skill(s, w);
  const auto skill = rt::Skill::parse(bytes.data(), bytes.size());
  rt::Workspace ws(skill);
  for (int k = 0; k < 50; ++k) {
    const auto x = torch::randn({1, 2});
    const auto ref = F::node_rhs(torch::tensor(0.3f), x, w, o);
    // Raw-unit interface: raw = model * std + mean, velocity scales by std.
    double raw[2] = {x[0][0].item<double>() * 2.0 + 1.0, x[0][1].item<double>() * 0.5 - 2.0}, v[2];
    skill.velocity(raw, 0.3, v, ws);
    EXPECT_NEAR(v[0], ref[0][0].item<double>() * 2.0, 1e-5 * (1 + std::abs(v[0])));
    EXPECT_NEAR(v[1], ref[0][1].item<double>() * 0.5, 1e-5 * (1 + std::abs(v[1])));
  }
}

TEST(Runtime, ExportedSkillRollsOutLikeTheLibtorchModel) {
  const auto dir = sl::testing::temp_dir("runtime_export");
  sl::lfd::LfdConfig c;
  c.root = sl::testing::project_data().string();
  c.tasks = 1;
  c.h = 16;
  c.hp = 8;
  c.fhat_layers = 2;
  c.hnet_hidden = {16};
  c.task_emb_dim = c.chunk_emb_dim = 8;
  c.chunk_dim = 256;
  c.iterations = 20;
  c.lr = 1e-3;
  sl::lfd::LfdTrainer(c, dir / "run").run(false);
  const sl::lfd::LfdRun run(dir / "run");
  sl::lfd::export_skill(run, 0, dir / "skill.slskill");
  const auto skill = rt::Skill::load((dir / "skill.slskill").string());
  EXPECT_EQ(skill.header().name, "task_x0_y0.npz");
  // Euler from demonstration 0's raw start, 100 steps of the data's time step, against libtorch
  // odeint in model coordinates mapped back to raw units.
  const auto d = run.task(0);
  rt::Workspace ws(skill);
  std::vector<double> out(101 * 2);
  const double x0[2] = {d.raw[0][0][0].item<double>(), d.raw[0][0][1].item<double>()};
  skill.rollout(x0, skill.header().t0, skill.header().dt, 100, out.data(), ws);
  torch::NoGradGuard no_grad;
  const auto grid = d.t.narrow(0, 0, 101).to(torch::kFloat32);
  const auto ref = sl::models::odeint(run.field(0), d.x.select(1, 0).narrow(0, 0, 1).to(torch::kFloat32), grid);
  const auto ref_raw = (ref[0].to(torch::kFloat64) + d.goal[0]) * d.std + d.mean;
  for (int k = 0; k <= 100; k += 10)
    for (int i = 0; i < 2; ++i) EXPECT_NEAR(out[k * 2 + i], ref_raw[k][i].template item<double>(), 1e-3) << k;
  std::filesystem::remove_all(dir);
}

TEST(Runtime, CorruptFilesAreRefusedWithAClearError) {
  auto o = sl::models::SNodeOptions(2).hidden(8).fhat_layers(1).icnn_hidden(4);
  sl::models::SNode net(o);
  const auto good = sl::lfd::serialize_skill(spec_for(o), net->weights());
  EXPECT_NO_THROW(rt::Skill::parse(good.data(), good.size()));
  for (std::size_t n = 0; n < good.size(); ++n) EXPECT_THROW(rt::Skill::parse(good.data(), n), rt::SkillError) << n;
  auto flipped = good;
  flipped[good.size() / 2] ^= 0x40;
  EXPECT_THROW(rt::Skill::parse(flipped.data(), flipped.size()), rt::SkillError);
  auto magic = good;
  magic[0] = 'X';
  try {
    rt::Skill::parse(magic.data(), magic.size(), "m.slskill");
    FAIL();
  } catch (const rt::SkillError& e) {
    EXPECT_NE(std::string(e.what()).find("bad magic"), std::string::npos);
  }
  auto newer = good;
  newer[8] = static_cast<unsigned char>(rt::kSkillVersion + 1);  // checksum recomputed: refused as newer
  const auto h = rt::fnv1a64(newer.data(), newer.size() - 8);
  std::memcpy(newer.data() + newer.size() - 8, &h, 8);
  try {
    rt::Skill::parse(newer.data(), newer.size(), "n.slskill");
    FAIL();
  } catch (const rt::SkillError& e) {
    EXPECT_NE(std::string(e.what()).find("newer"), std::string::npos) << e.what();
  }
  EXPECT_THROW(rt::Skill::load("/nonexistent.slskill"), rt::SkillError);
}

TEST(Runtime, VersionOneFixtureStillLoadsAndMatchesLibtorch) {
  // tests/fixtures/runtime/v1_snode.slskill was written by version 1 (see the README beside it).
  const auto path = sl::testing::fixtures() / "runtime/v1_snode.slskill";
  const auto skill = rt::Skill::load(path.string());
  const auto& h = skill.header();
  ASSERT_EQ(h.kind, rt::SkillKind::SNode);
  const auto [o, w] = sl::testing::libtorch_snode(skill);
  rt::Workspace ws(skill);
  for (int k = 0; k < 20; ++k) {
    const auto x = torch::randn({1, static_cast<std::int64_t>(h.dim)});
    const auto ref = F::snode_rhs(torch::tensor(0.1f * k), x, w, o);
    std::vector<double> xd(h.dim), v(h.dim);
    for (std::uint32_t i = 0; i < h.dim; ++i) xd[i] = x[0][i].item<double>();
    skill.velocity_model(xd.data(), 0.1 * k, v.data(), ws);
    for (std::uint32_t i = 0; i < h.dim; ++i) EXPECT_NEAR(v[i], ref[0][i].item<double>(), 1e-5 * (1 + std::abs(v[i])));
  }
}
