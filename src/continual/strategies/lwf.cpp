// Learning without Forgetting (see strategies.h).
#include "stablelearn/continual/strategies.h"
#include "stablelearn/core/config.h"
#include "stablelearn/core/error.h"

namespace stablelearn::continual {

void LwfOptions::fields(options::Visitor& v) {
  v("alpha", alpha, "weight α of the distillation loss").at_least(0.0);
  v("temperature", temperature, "softmax temperature T").above(0.0);
}

void Lwf::before_task(Context& ctx) {
  if (ctx.task == 0) return;
  teacher_ = snapshot(ctx.params);
  const auto classes = ctx.model->options().classes;
  auto old = torch::zeros({classes}, torch::kBool);
  for (std::int64_t k = 0; k < ctx.task; ++k)
    for (auto c : (*ctx.tasks)[static_cast<std::size_t>(k)].classes) old[c] = true;
  // Domain-incremental streams reuse the same labels in every task: the current task's classes
  // are then old classes too, and the teacher's whole output is distilled.
  old_classes_ = old.to(ctx.params.front().device());
}

torch::Tensor Lwf::extra_loss(Context& ctx, const Batch& b, const torch::Tensor& logits) {
  if (teacher_.empty()) return {};
  // Unmasked logits: in task-incremental streams the old tasks' heads are masked out of `logits`,
  // so the student's old-class outputs are recomputed without the mask.
  torch::Tensor z_old;
  {
    torch::NoGradGuard no_grad;
    z_old = ctx.model->forward(b.x, teacher_);
  }
  const auto z_new = ctx.task_incremental ? ctx.model->forward(b.x) : logits;
  const auto sel = old_classes_.nonzero().squeeze(1);
  const auto T = o_.temperature;
  const auto p_old = torch::softmax(z_old.index_select(1, sel) / T, 1);
  const auto logp_new = torch::log_softmax(z_new.index_select(1, sel) / T, 1);
  // KL(p_old ‖ p_new) = Σ p_old (log p_old − log p_new), mean over the batch; 0·log 0 := 0.
  const auto logp_old = torch::log_softmax(z_old.index_select(1, sel) / T, 1);
  const auto kl = (p_old * (logp_old - logp_new)).nan_to_num(0.0).sum(1).mean();
  return kl * (o_.alpha * T * T);
}

std::map<std::string, torch::Tensor> Lwf::state() const {
  std::map<std::string, torch::Tensor> m;
  put_list(m, "lwf.teacher", teacher_);
  if (old_classes_.defined()) m["lwf.old_classes"] = old_classes_.cpu();
  return m;
}

void Lwf::load_state(const std::map<std::string, torch::Tensor>& m) {
  teacher_ = get_list(m, "lwf.teacher");
  const auto it = m.find("lwf.old_classes");
  old_classes_ = it == m.end() ? torch::Tensor() : it->second.clone();
}

}  // namespace stablelearn::continual
