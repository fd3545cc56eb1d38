#include "stablelearn/experiments/cl_backbone.h"

#include <map>
#include <set>
#include <string>

#include "stablelearn/core/error.h"
#include "stablelearn/data/tensor_convert.h"
#include "stablelearn/io/npz.h"

namespace stablelearn::experiments {

namespace {
constexpr const char* kClassesKey = "__classes__";
}

void save_backbone(const std::filesystem::path& file, const models::ClassifierImpl& model,
                   const std::vector<std::int64_t>& classes) {
  std::map<std::string, io::NdArray> arrays;
  const auto& layout = model.layout();
  for (std::size_t k = 0; k < layout.size(); ++k)
    arrays[layout[k].name] = data::to_ndarray(model.weights()[k].detach().to(torch::kCPU, torch::kFloat32).contiguous());
  arrays[kClassesKey] = data::to_ndarray(torch::tensor(classes, torch::kInt64));
  if (file.has_parent_path()) std::filesystem::create_directories(file.parent_path());
  io::write_npz(file, arrays, /*compress=*/false);
}

void load_backbone(const std::filesystem::path& file, models::ClassifierImpl& model) {
  SL_CHECK(std::filesystem::exists(file), IoError, file.string(),
           ": backbone file not found ([backbone] file; make one with `stablelearn cl pretrain CONFIG`)");
  const auto arrays = io::read_npz(file);
  const auto& layout = model.layout();
  std::set<std::string> known{kClassesKey};
  std::vector<torch::Tensor> loaded;
  for (std::size_t k = 0; k < layout.size(); ++k) {
    const auto& e = layout[k];
    known.insert(e.name);
    SL_CHECK(arrays.count(e.name), DataError, file.string(), ": backbone has no tensor \"", e.name,
             "\" that the model needs (does [model] kind/hidden/channels/fc match the pre-trained model?)");
    auto t = data::to_tensor(arrays.at(e.name));
    SL_CHECK(t.sizes().vec() == e.shape, DataError, file.string(), ": backbone tensor \"", e.name, "\" has shape ",
             models::shape_string(t.sizes()), ", the model wants ", models::shape_string(e.shape),
             " (does [model] kind/hidden/channels/fc match the pre-trained model?)");
    loaded.push_back(t);
  }
  for (const auto& [name, arr] : arrays)
    SL_CHECK(known.count(name), DataError, file.string(), ": backbone tensor \"", name,
             "\" has no place in the model (does [model] kind/hidden/channels/fc match the pre-trained model?)");
  torch::NoGradGuard no_grad;
  const auto& w = model.weights();
  for (std::size_t k = 0; k < w.size(); ++k) const_cast<torch::Tensor&>(w[k]).copy_(loaded[k]);
}

}  // namespace stablelearn::experiments
