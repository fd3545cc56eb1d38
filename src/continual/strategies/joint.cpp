// Joint training on every task seen so far (the upper bound).
#include "stablelearn/continual/strategies.h"

namespace stablelearn::continual {

TrainSet Joint::train_set(Context& ctx) {
  std::vector<torch::Tensor> xs, ys, ts;
  for (std::int64_t k = 0; k <= ctx.task; ++k) {
    const auto& t = (*ctx.tasks)[static_cast<std::size_t>(k)].train;
    xs.push_back(t.images);
    ys.push_back(t.labels);
    ts.push_back(torch::full({t.size()}, k, torch::kInt64));
  }
  return {torch::cat(xs), torch::cat(ys), torch::cat(ts)};
}

}  // namespace stablelearn::continual
