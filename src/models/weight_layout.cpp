#include "stablelearn/models/weight_layout.h"

#include <cmath>
#include <sstream>

#include "stablelearn/core/error.h"

namespace stablelearn::models {

std::string shape_string(const std::vector<std::int64_t>& shape) {
  std::ostringstream os;
  os << '[';
  for (std::size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
  os << ']';
  return os.str();
}

std::string shape_string(torch::IntArrayRef shape) { return shape_string(shape.vec()); }

WeightLayout& WeightLayout::add(std::string name, std::vector<std::int64_t> shape) {
  for (const auto& e : entries_)
    SL_CHECK(e.name != name, ConfigError, "WeightLayout: duplicate entry '", name, "'");
  std::int64_t n = 1;
  for (auto s : shape) {
    SL_CHECK(s >= 0, ConfigError, "WeightLayout: entry '", name, "' has negative extent ",
             shape_string(shape));
    n *= s;
  }
  Entry e;
  e.name = std::move(name);
  e.shape = std::move(shape);
  e.numel = n;
  e.offset = numel_;
  numel_ += n;
  entries_.push_back(std::move(e));
  return *this;
}

std::vector<std::int64_t> WeightLayout::offsets() const {
  std::vector<std::int64_t> out;
  out.reserve(entries_.size());
  for (const auto& e : entries_) out.push_back(e.offset);
  return out;
}

std::size_t WeightLayout::index_of(const std::string& name) const {
  for (std::size_t i = 0; i < entries_.size(); ++i)
    if (entries_[i].name == name) return i;
  std::string known;
  for (const auto& e : entries_) known += (known.empty() ? "" : ", ") + e.name;
  SL_THROW(ConfigError, "WeightLayout: no entry '", name, "' (known: ", known, ")");
}

std::vector<torch::Tensor> WeightLayout::split(const torch::Tensor& flat) const {
  SL_CHECK(flat.defined() && flat.dim() == 1 && flat.size(0) == numel_, ShapeError,
           "WeightLayout::split: expected a flat vector [", numel_, "], got ",
           flat.defined() ? shape_string(flat.sizes()) : std::string("undefined"));
  std::vector<torch::Tensor> out;
  out.reserve(entries_.size());
  for (const auto& e : entries_) out.push_back(flat.narrow(0, e.offset, e.numel).reshape(e.shape));
  return out;
}

std::vector<torch::Tensor> WeightLayout::split_batched(const torch::Tensor& flat) const {
  SL_CHECK(flat.defined() && flat.dim() == 2 && flat.size(1) == numel_, ShapeError,
           "WeightLayout::split_batched: expected [B, ", numel_, "], got ",
           flat.defined() ? shape_string(flat.sizes()) : std::string("undefined"));
  std::vector<torch::Tensor> out;
  out.reserve(entries_.size());
  for (const auto& e : entries_) {
    std::vector<std::int64_t> shape{flat.size(0)};
    shape.insert(shape.end(), e.shape.begin(), e.shape.end());
    out.push_back(flat.narrow(1, e.offset, e.numel).reshape(shape));
  }
  return out;
}

void WeightLayout::check(const std::vector<torch::Tensor>& tensors, const char* who) const {
  SL_CHECK(tensors.size() == entries_.size(), ShapeError, who, ": expected ", entries_.size(),
           " weight tensors, got ", tensors.size());
  for (std::size_t i = 0; i < entries_.size(); ++i) {
    const auto& e = entries_[i];
    SL_CHECK(tensors[i].defined() && tensors[i].sizes() == torch::IntArrayRef(e.shape), ShapeError,
             who, ": weight ", i, " '", e.name, "' must be ", shape_string(e.shape), ", got ",
             tensors[i].defined() ? shape_string(tensors[i].sizes()) : std::string("undefined"));
  }
}

torch::Tensor WeightLayout::flatten(const std::vector<torch::Tensor>& tensors) const {
  check(tensors, "WeightLayout::flatten");
  std::vector<torch::Tensor> flat;
  flat.reserve(tensors.size());
  for (const auto& t : tensors) flat.push_back(t.reshape({-1}));
  return torch::cat(flat);
}

std::string WeightLayout::to_string() const {
  std::ostringstream os;
  for (const auto& e : entries_) os << e.name << ' ' << shape_string(e.shape) << '\n';
  os << "total " << numel_;
  return os.str();
}

bool WeightLayout::operator==(const WeightLayout& other) const {
  if (entries_.size() != other.entries_.size()) return false;
  for (std::size_t i = 0; i < entries_.size(); ++i)
    if (entries_[i].name != other.entries_[i].name || entries_[i].shape != other.entries_[i].shape)
      return false;
  return true;
}

void uniform_fan_in_(torch::Tensor& t, std::int64_t fan_in) {
  SL_CHECK(fan_in > 0, ConfigError, "uniform_fan_in_: fan_in must be positive, got ", fan_in);
  const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
  torch::NoGradGuard no_grad;
  t.uniform_(-bound, bound);
}

std::vector<torch::Tensor> register_layout_parameters(torch::nn::Module& module,
                                                      const WeightLayout& layout,
                                                      const std::vector<std::int64_t>& fan_in) {
  SL_CHECK(fan_in.size() == layout.size(), InternalError,
           "register_layout_parameters: ", fan_in.size(), " fan-ins for ", layout.size(), " entries");
  std::vector<torch::Tensor> out;
  out.reserve(layout.size());
  for (std::size_t i = 0; i < layout.size(); ++i) {
    const auto& e = layout[i];
    std::string name = e.name;
    for (auto& c : name)
      if (c == '.') c = '_';
    auto p = torch::empty(e.shape, torch::kFloat32);
    uniform_fan_in_(p, fan_in[i]);
    out.push_back(module.register_parameter(name, p));
  }
  return out;
}

}  // namespace stablelearn::models
