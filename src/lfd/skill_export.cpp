#include "stablelearn/lfd/skill_export.h"

#include <cstring>

#include "stablelearn/core/error.h"
#include "stablelearn/core/fs.h"
#include "stablelearn/lfd/trainer.h"
#include "stablelearn/models/snode.h"
#include "stablelearn/runtime/skill.h"
#include "run_common.h"

namespace stablelearn::lfd {
namespace {

struct Writer {
  std::vector<unsigned char> out;
  void raw(const void* p, std::size_t n) {
    const auto* b = static_cast<const unsigned char*>(p);
    out.insert(out.end(), b, b + n);
  }
  void u32(std::uint64_t v) {
    SL_CHECK(v <= 0xffffffffULL, DataError, "skill export: value ", v, " does not fit the format");
    const auto x = static_cast<std::uint32_t>(v);
    raw(&x, 4);
  }
  void u64(std::uint64_t v) { raw(&v, 8); }
  void f64(double v) { raw(&v, 8); }
};

}  // namespace

std::vector<unsigned char> serialize_skill(const SkillSpec& s, const std::vector<torch::Tensor>& weights) {
  SL_CHECK(static_cast<std::int64_t>(s.mean.size()) == s.position_dim && s.std.size() == s.mean.size() &&
               s.goal.size() == s.mean.size(),
           ShapeError, "skill export: mean/std/goal must have position_dim = ", s.position_dim, " values");
  Writer w;
  w.raw(runtime::kSkillMagic, 8);
  // The lowest version that expresses the skill: 2 only for the discrete-step block.
  w.u32(s.discrete_step ? 2 : 1);
  w.u32(s.snode ? 1 : 2);
  w.u32(static_cast<std::uint64_t>(s.dim));
  w.u32(static_cast<std::uint64_t>(s.position_dim));
  w.u32(s.explicit_time ? 1 : 0);
  w.u32(s.hidden.size());
  for (auto h : s.hidden) w.u32(static_cast<std::uint64_t>(h));
  w.u32(static_cast<std::uint64_t>(s.snode ? s.icnn_hidden : 0));
  for (double v : {s.alpha, s.eps, s.rehu, s.psd_rehu, s.elu_alpha, s.t0, s.dt}) w.f64(v);
  for (const auto* vec : {&s.mean, &s.std, &s.goal})
    for (double v : *vec) w.f64(v);
  std::int64_t n = 0;
  for (const auto& t : weights) n += t.numel();
  w.u64(static_cast<std::uint64_t>(n));
  for (const auto& t : weights) {
    const auto c = t.detach().to(torch::kCPU, torch::kFloat32).contiguous();
    w.raw(c.data_ptr<float>(), static_cast<std::size_t>(c.numel()) * sizeof(float));
  }
  w.u32(s.name.size());
  w.raw(s.name.data(), s.name.size());
  if (s.discrete_step) {
    w.u32(1);
    w.f64(s.kappa);
    w.f64(s.period);
  }
  w.u64(runtime::fnv1a64(w.out.data(), w.out.size()));
  // Validate by reading it back with the runtime: a mismatch with the architecture is a bug here.
  try {
    runtime::Skill::parse(w.out.data(), w.out.size(), "exported skill");
  } catch (const runtime::SkillError& e) {
    SL_THROW(InternalError, "skill export produced an unreadable file: ", e.what());
  }
  return w.out;
}

std::vector<torch::Tensor> fold_centered_fhat(const models::SNodeOptions& options, std::vector<torch::Tensor> weights) {
  if (!options.center_fhat()) return weights;
  torch::NoGradGuard no_grad;
  auto plain = options;
  plain.center_fhat(false);
  std::vector<torch::Tensor> w64;
  for (const auto& t : weights) w64.push_back(t.detach().to(torch::kCPU, torch::kFloat64));
  // f̂(0) of the plain MLP; with a conditioning vector there is no single f̂(0) (not exportable anyway).
  SL_CHECK(options.condition_dim() == 0, UsageError, "fold_centered_fhat: a conditioned f̂ has no single value at the goal");
  const auto f0 = models::functional::snode_fhat(torch::zeros({1, plain.input_dim()}, torch::kFloat64), w64, plain);
  const auto out_bias = static_cast<std::size_t>(2 * options.fhat_layers() + 1);  // fhat.layer_out.bias (snode_layout)
  weights[out_bias] = w64[out_bias] - f0.squeeze(0);
  return weights;
}

SkillSpec export_skill(const LfdRun& run, std::int64_t task, const std::filesystem::path& path) {
  const auto& c = run.config();
  const auto d = run.task(task);
  SkillSpec s;
  s.snode = c.target == "snode";
  s.dim = d.x.size(2);
  s.position_dim = d.position_dim;
  s.explicit_time = c.explicit_time;
  s.hidden = s.snode ? std::vector<std::int64_t>(static_cast<std::size_t>(c.fhat_layers), c.h) : c.tnet_hidden;
  s.icnn_hidden = c.hp;
  s.alpha = c.alpha;
  s.eps = c.eps;
  s.rehu = c.rehu;
  s.t0 = d.t[0].item<double>();
  s.dt = (d.t[1] - d.t[0]).item<double>();
  s.discrete_step = c.discrete_step;
  s.kappa = c.discrete_kappa;
  s.period = s.dt;
  const auto goal = s.snode ? d.goal.mean(0) : torch::zeros({d.position_dim}, torch::kFloat64);
  for (std::int64_t i = 0; i < d.position_dim; ++i) {
    s.mean.push_back(d.mean[i].item<double>());
    s.std.push_back(d.std[i].item<double>());
    s.goal.push_back(goal[i].item<double>());
  }
  s.name = run.task_name(task);
  // model.center_fhat: folded into f̂'s output bias, so the file format and the runtime's step stay as they are.
  const auto weights = s.snode ? fold_centered_fhat(detail::snode_options(c, s.dim), run.weights(task)) : run.weights(task);
  const auto bytes = serialize_skill(s, weights);
  write_file_atomic(path, std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
  return s;
}

}  // namespace stablelearn::lfd
