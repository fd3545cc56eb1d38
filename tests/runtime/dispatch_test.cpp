// The runtime's kernel variants (runtime/kernels.h: portable, AVX2, AVX-512, chosen at run time)
// against the portable one: every variant this CPU has must give the portable variant's results to
// 1e-6 (relative, float32), for whole skills (f, V, Euler / certified / discrete steps) and for the
// kernels alone on shapes that hit every tail. The portable variant is the reference (the other
// runtime tests compare the default variant with libtorch). The variants add the same products in
// the same order, so in this project's build (no -march, no -ffast-math) they agree exactly; the
// tolerance is the requirement.
#include <algorithm>
#include <cmath>
#include <fstream>
#include <random>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "stablelearn/lfd/skill_export.h"
#include "stablelearn/models/snode.h"
#include "stablelearn/runtime/kernels.h"
#include "stablelearn/runtime/skill.h"

namespace sl = stablelearn;
namespace rt = stablelearn::runtime;

namespace {

constexpr double kRel = 1e-6;

std::vector<rt::Isa> supported_variants() {
  std::vector<rt::Isa> v;
  for (auto isa : {rt::Isa::Portable, rt::Isa::Avx2, rt::Isa::Avx512})
    if (rt::isa_supported(isa)) v.push_back(isa);
  return v;
}

/// An untrained sNODE (weights × 3, so that every ReHU regime and the projection occur).
rt::Skill make_skill(std::int64_t d, std::int64_t h, std::int64_t hp, bool with_time, std::uint64_t seed) {
  const auto o = sl::models::SNodeOptions(d).hidden(h).fhat_layers(3).icnn_hidden(hp).explicit_time(with_time).eps(1e-3);
  torch::manual_seed(static_cast<std::uint64_t>(seed));
  sl::models::SNode net(o);
  std::vector<torch::Tensor> w;
  for (const auto& t : net->weights()) w.push_back(t.detach() * 3);
  sl::lfd::SkillSpec s;
  s.dim = s.position_dim = d;
  s.explicit_time = with_time;
  s.hidden.assign(3, h);
  s.icnn_hidden = hp;
  s.eps = 1e-3;
  s.mean.assign(static_cast<std::size_t>(d), 0.1);
  s.std.assign(static_cast<std::size_t>(d), 2.0);
  s.goal.assign(static_cast<std::size_t>(d), 0.0);
  const auto bytes = sl::lfd::serialize_skill(s, w);
  return rt::Skill::parse(bytes.data(), bytes.size());
}

/// max_i |a_i − b_i| / max(max_i |b_i|, floor): the error relative to the reference vector's size.
double rel_err(const std::vector<double>& a, const std::vector<double>& b, double floor = 1e-30) {
  double num = 0, den = floor;
  for (std::size_t i = 0; i < a.size(); ++i) {
    num = std::max(num, std::abs(a[i] - b[i]));
    den = std::max(den, std::abs(b[i]));
  }
  return num / den;
}

}  // namespace

TEST(RuntimeDispatch, TheBestVariantIsChosenAtLoadAndMissingOnesAreRefused) {
  const auto skill = make_skill(2, 16, 8, true, 1);
  EXPECT_EQ(skill.isa(), rt::best_isa());
  EXPECT_TRUE(rt::isa_supported(rt::Isa::Portable));
  EXPECT_TRUE(rt::isa_supported(skill.isa()));
#if defined(__linux__) && defined(__x86_64__)
  // Independent of CPUID as the runtime reads it: the kernel's list of CPU flags.
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line, flags;
  while (std::getline(cpuinfo, line))
    if (line.rfind("flags", 0) == 0) {
      flags = line + " ";
      break;
    }
  ASSERT_FALSE(flags.empty()) << "no flags line in /proc/cpuinfo";
  const bool avx512 = flags.find(" avx512f ") != std::string::npos, avx2 = flags.find(" avx2 ") != std::string::npos;
  EXPECT_EQ(rt::isa_supported(rt::Isa::Avx512), avx512);
  EXPECT_EQ(rt::isa_supported(rt::Isa::Avx2), avx2);
  EXPECT_EQ(skill.isa(), avx512 ? rt::Isa::Avx512 : avx2 ? rt::Isa::Avx2 : rt::Isa::Portable);
#endif
  for (auto isa : {rt::Isa::Avx2, rt::Isa::Avx512}) {
    auto copy = skill;
    if (rt::isa_supported(isa)) {
      copy.set_isa(isa);
      EXPECT_EQ(copy.isa(), isa);
    } else {
      EXPECT_THROW(copy.set_isa(isa), rt::SkillError) << rt::isa_name(isa);
    }
  }
}

TEST(RuntimeDispatch, KernelsGiveThePortableResultOnEveryTailShape) {
  namespace D = rt::detail;
  std::mt19937 gen(3);
  std::normal_distribution<float> N(0.0f, 1.0f);
  int checked = 0;
  for (auto isa : supported_variants()) {
    if (isa == rt::Isa::Portable) continue;
    const std::size_t width = rt::isa_width(isa);
    for (std::size_t out : {1, 2, 7, 8, 9, 15, 16, 17, 100}) {
      for (std::size_t in : {1, 3, 7, 8, 9, 17, 100, 1000}) {
        std::vector<float> W(out * in), b(out), x(in);
        for (auto& v : W) v = N(gen);
        for (auto& v : b) v = N(gen);
        for (auto& v : x) v = N(gen);
        D::AlignedFloats packed(5, 0.0f);  // a non-empty buffer: offsets must be honoured
        const auto off = D::pack_panels(W.data(), b.data(), out, in, width, packed);
        for (bool relu : {false, true}) {
          std::vector<float> ref(out), got(out + 1, 12345.0f);
          D::matvec_portable(W.data(), b.data(), x.data(), out, in, ref.data());
          if (relu)
            for (auto& v : ref) v = std::max(0.0f, v);
#if STABLELEARN_RUNTIME_X86_DISPATCH
          (isa == rt::Isa::Avx512 ? D::matvec_avx512 : D::matvec_avx2)(&packed[off.w], &packed[off.b], x.data(), out, in,
                                                                         got.data(), relu);
#endif
          EXPECT_EQ(got[out], 12345.0f) << "wrote past the output, " << rt::isa_name(isa) << " out " << out;
          const std::vector<double> r(ref.begin(), ref.end()), g(got.begin(), got.begin() + static_cast<long>(out));
          EXPECT_LE(rel_err(g, r), kRel) << rt::isa_name(isa) << " matvec out " << out << " in " << in << " relu " << relu;
          ++checked;
        }
      }
    }
    for (std::size_t rows : {1, 5, 100}) {
      for (std::size_t cols : {1, 7, 8, 9, 16, 17, 95, 96, 97, 100, 127, 128, 129, 200}) {
        std::vector<float> A(rows * cols), s(rows);
        for (auto& v : A) v = N(gen);
        for (std::size_t i = 0; i < rows; ++i) s[i] = i % 3 == 1 ? 0.0f : N(gen);  // skipped rows too
        D::AlignedFloats packed(3, 0.0f);
        const auto off = D::pack_rows(A.data(), rows, cols, packed);
        std::vector<float> ref(cols), got(cols + 1, 12345.0f);
        D::rows_combination_portable(A.data(), cols, s.data(), rows, cols, ref.data());
#if STABLELEARN_RUNTIME_X86_DISPATCH
        (isa == rt::Isa::Avx512 ? D::rows_combination_avx512 : D::rows_combination_avx2)(
            &packed[off], D::padded_cols(cols), s.data(), rows, cols, got.data());
#endif
        EXPECT_EQ(got[cols], 12345.0f) << "wrote past the output, " << rt::isa_name(isa) << " cols " << cols;
        const std::vector<double> r(ref.begin(), ref.end()), g(got.begin(), got.begin() + static_cast<long>(cols));
        EXPECT_LE(rel_err(g, r), kRel) << rt::isa_name(isa) << " rows " << rows << " cols " << cols;
        ++checked;
      }
    }
  }
  RecordProperty("kernel_cases", checked);
  if (rt::isa_supported(rt::Isa::Avx2)) {
    EXPECT_GT(checked, 0);
  }
}

TEST(RuntimeDispatch, EveryVariantGivesThePortableStepToOneInAMillion) {
  struct Size {
    std::int64_t d, h, hp;
  };
  // The paper's widths (h = 100, 1000; ICNN 100) for d = 2 and 8, and a small odd one (every
  // panel and row a tail).
  const Size sizes[] = {{2, 100, 100}, {2, 1000, 100}, {8, 100, 100}, {8, 1000, 100}, {3, 13, 7}};
  const auto variants = supported_variants();
  std::ostringstream tested;
  for (auto isa : variants) tested << rt::isa_name(isa) << " ";
  RecordProperty("variants", tested.str());
  std::cout << "variants on this CPU: " << tested.str() << "\n";
  std::mt19937 gen(5);
  std::normal_distribution<double> N(0.0, 1.0);
  for (const auto& sz : sizes) {
    for (bool with_time : {true, false}) {
      auto ref = make_skill(sz.d, sz.h, sz.hp, with_time, static_cast<std::uint64_t>(sz.d * 7919 + sz.h + with_time));
      ref.set_isa(rt::Isa::Portable);
      ASSERT_EQ(ref.isa(), rt::Isa::Portable);
      rt::Workspace wr(ref);
      const std::size_t d = static_cast<std::size_t>(sz.d);
      const int states = sz.h >= 1000 ? 40 : 150;
      for (auto isa : variants) {
        if (isa == rt::Isa::Portable) continue;
        auto skill = ref;
        skill.set_isa(isa);
        rt::Workspace ws(skill);
        std::mt19937 state_gen(11);
        double worst_f = 0, worst_V = 0, worst_step = 0;
        int projected = 0;
        for (int k = 0; k < states; ++k) {
          std::vector<double> x(d), vr(d), vs(d);
          for (auto& v : x) v = 2 * N(state_gen);
          const double t = 0.01 * k;
          const double Vr = ref.field_model(x.data(), t, vr.data(), wr);
          const double Vs = skill.field_model(x.data(), t, vs.data(), ws);
          worst_f = std::max(worst_f, rel_err(vs, vr));
          worst_V = std::max(worst_V, std::abs(Vs - Vr) / std::max(std::abs(Vr), 1e-30));
          EXPECT_LE(rel_err(vs, vr), kRel) << rt::isa_name(isa) << " d " << sz.d << " h " << sz.h << " state " << k;
          EXPECT_LE(std::abs(Vs - Vr), kRel * std::abs(Vr)) << rt::isa_name(isa) << " d " << sz.d << " h " << sz.h;
          const double Lr = ref.lyapunov_model(x.data(), t, wr), Ls = skill.lyapunov_model(x.data(), t, ws);
          EXPECT_LE(std::abs(Ls - Lr), kRel * std::abs(Lr));
          // Raw-unit velocity and one Euler step (normalisation on top of the same field).
          std::vector<double> er = x, es = x;
          ref.step_euler(er.data(), t, 1e-2, wr);
          skill.step_euler(es.data(), t, 1e-2, ws);
          EXPECT_LE(rel_err(es, er), kRel);
          if (!with_time) {
            std::vector<double> cr = x, cs = x, pr = x, ps = x;
            const auto rep_r = ref.step_certified(cr.data(), 0.05, wr);
            const auto rep_s = skill.step_certified(cs.data(), 0.05, ws);
            EXPECT_EQ(rep_r.substeps, rep_s.substeps);
            EXPECT_EQ(rep_r.projections, rep_s.projections);
            EXPECT_LE(rel_err(cs, cr), kRel);
            const bool pulled_r = ref.step_discrete(pr.data(), 0.05, wr, 0.5);
            const bool pulled_s = skill.step_discrete(ps.data(), 0.05, ws, 0.5);
            EXPECT_EQ(pulled_r, pulled_s);
            projected += pulled_r;
            worst_step = std::max(worst_step, rel_err(ps, pr));
            EXPECT_LE(rel_err(ps, pr), kRel);
          }
        }
        std::cout << rt::isa_name(isa) << " d=" << sz.d << " h=" << sz.h << " hp=" << sz.hp << " time=" << with_time
                  << ": worst relative difference f " << worst_f << ", V " << worst_V << ", discrete step " << worst_step
                  << " (" << projected << " pulled)\n";
      }
    }
  }
}
