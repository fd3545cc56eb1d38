#include "stablelearn/continual/buffer.h"

#include <vector>

#include "stablelearn/core/error.h"

namespace stablelearn::continual {

void Memory::add_reservoir(const torch::Tensor& x, const torch::Tensor& y, const torch::Tensor& task,
                           const torch::Tensor& logits, torch::Generator& gen) {
  torch::NoGradGuard no_grad;
  const auto b = y.size(0);
  if (!y_.defined()) {
    auto shape = x.sizes().vec();
    shape[0] = capacity_;
    x_ = torch::zeros(shape, x.options());
    y_ = torch::zeros({capacity_}, y.options());
    task_ = torch::zeros({capacity_}, task.options());
    if (logits.defined()) logits_ = torch::zeros({capacity_, logits.size(1)}, logits.options());
  }
  // Slots: the first `capacity` samples fill the memory; sample n (1-based) then replaces slot
  // j ~ U{0..n-1} if j < capacity.
  std::vector<std::int64_t> src, dst;
  const auto u = torch::rand({b}, gen, torch::kFloat64);
  const auto* up = u.data_ptr<double>();
  for (std::int64_t i = 0; i < b; ++i) {
    ++seen_;
    if (seen_ <= capacity_) {
      src.push_back(i);
      dst.push_back(seen_ - 1);
    } else {
      const auto j = static_cast<std::int64_t>(up[i] * static_cast<double>(seen_));
      if (j < capacity_) {
        src.push_back(i);
        dst.push_back(j);
      }
    }
  }
  if (src.empty()) return;
  const auto s = torch::tensor(src, torch::kInt64).to(y.device()), d = torch::tensor(dst, torch::kInt64).to(y.device());
  x_.index_copy_(0, d, x.detach().index_select(0, s));
  y_.index_copy_(0, d, y.index_select(0, s));
  task_.index_copy_(0, d, task.index_select(0, s));
  if (logits_.defined()) logits_.index_copy_(0, d, logits.detach().index_select(0, s));
  valid_ = std::min(seen_, capacity_);
}

void Memory::add_class_balanced(const torch::Tensor& x, const torch::Tensor& y, const torch::Tensor& task,
                                torch::Generator& gen) {
  torch::NoGradGuard no_grad;
  // Pool = what is stored plus the new data, then keep `per_class` random samples of each class.
  auto px = y_.defined() ? torch::cat({x_.narrow(0, 0, valid_), x}) : x;
  auto py = y_.defined() ? torch::cat({y_.narrow(0, 0, valid_), y}) : y;
  auto pt = y_.defined() ? torch::cat({task_.narrow(0, 0, valid_), task}) : task;
  const auto classes = std::get<0>(at::_unique(py.cpu()));
  const auto nc = classes.size(0);
  SL_CHECK(nc > 0, InternalError, "class-balanced memory: no classes");
  const auto per_class = capacity_ / nc;
  std::vector<torch::Tensor> keep;
  for (std::int64_t k = 0; k < nc; ++k) {
    const auto idx = (py == classes[k].item<std::int64_t>()).nonzero().squeeze(1);
    const auto order = torch::randperm(idx.size(0), gen, torch::kInt64).to(idx.device());
    keep.push_back(idx.index_select(0, order.narrow(0, 0, std::min<std::int64_t>(per_class, idx.size(0)))));
  }
  const auto sel = torch::cat(keep);
  x_ = px.index_select(0, sel).clone();
  y_ = py.index_select(0, sel).clone();
  task_ = pt.index_select(0, sel).clone();
  seen_ += y.size(0);
  valid_ = y_.size(0);
}

Memory::Sample Memory::sample(std::int64_t n, torch::Generator& gen) const {
  const auto m = valid_;
  if (m == 0) return {};
  auto idx = torch::randperm(m, gen, torch::kInt64).narrow(0, 0, std::min(n, m)).to(y_.device());
  Sample s{x_.index_select(0, idx), y_.index_select(0, idx), task_.index_select(0, idx), {}};
  if (logits_.defined()) s.logits = logits_.index_select(0, idx);
  return s;
}

void Memory::save(std::map<std::string, torch::Tensor>& m, const std::string& prefix) const {
  m[prefix + ".seen"] = torch::tensor({seen_}, torch::kInt64);
  if (!y_.defined() || valid_ == 0) return;
  m[prefix + ".x"] = x_.narrow(0, 0, valid_).cpu();
  m[prefix + ".y"] = y_.narrow(0, 0, valid_).cpu();
  m[prefix + ".task"] = task_.narrow(0, 0, valid_).cpu();
  if (logits_.defined()) m[prefix + ".logits"] = logits_.narrow(0, 0, valid_).cpu();
}

void Memory::load(const std::map<std::string, torch::Tensor>& m, const std::string& prefix) {
  auto it = m.find(prefix + ".seen");
  SL_CHECK(it != m.end(), DataError, "checkpoint: missing ", prefix, ".seen");
  seen_ = it->second.item<std::int64_t>();
  x_ = y_ = task_ = logits_ = torch::Tensor();
  valid_ = 0;
  if (m.count(prefix + ".y") == 0) return;
  auto grow = [&](const torch::Tensor& t) {
    if (policy_ == Policy::ClassBalanced) return t.clone();
    auto shape = t.sizes().vec();
    shape[0] = capacity_;
    auto out = torch::zeros(shape, t.options());
    out.narrow(0, 0, t.size(0)).copy_(t);
    return out;
  };
  x_ = grow(m.at(prefix + ".x"));
  y_ = grow(m.at(prefix + ".y"));
  task_ = grow(m.at(prefix + ".task"));
  if (m.count(prefix + ".logits")) logits_ = grow(m.at(prefix + ".logits"));
  valid_ = m.at(prefix + ".y").size(0);
}

}  // namespace stablelearn::continual
