// WeightLayout: the ordered (name, shape) list of a parameterised block (shared/STYLE.md #3).
//
// A target network's weights can live in two places: owned by its module (`XImpl`), or generated
// by a hypernetwork as one flat vector θ_target ∈ R^P (von Oswald et al., "Continual learning
// with hypernetworks", ICLR 2020; shared/specs/clfd-snode.md §2.4–2.5). The layout is the single
// contract between the two: entry i occupies the half-open range [offset_i, offset_i + numel_i)
// of the flat vector and is reshaped row-major (C order) to shape_i, exactly as
// `torch.split(flat, sizes)` followed by `view(shape)` in the reference code.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <torch/nn/module.h>
#include <torch/types.h>

namespace stablelearn::models {

class WeightLayout {
 public:
  struct Entry {
    std::string name;              ///< e.g. "fhat.layer_0.weight" (dots allowed here)
    std::vector<std::int64_t> shape;
    std::int64_t numel = 0;        ///< product of shape (1 for a scalar shape {})
    std::int64_t offset = 0;       ///< start in the flat vector
  };

  WeightLayout() = default;

  /// Appends one tensor; ConfigError on a duplicate name or a negative extent. Returns *this.
  WeightLayout& add(std::string name, std::vector<std::int64_t> shape);

  const std::vector<Entry>& entries() const { return entries_; }
  const Entry& operator[](std::size_t i) const { return entries_.at(i); }
  std::size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }
  /// Total number of scalars P = Σ numel_i.
  std::int64_t numel() const { return numel_; }
  /// offset_i of every entry, in order.
  std::vector<std::int64_t> offsets() const;
  /// Index of the entry called `name`; ConfigError listing the names when unknown.
  std::size_t index_of(const std::string& name) const;

  /// Splits flat [P] into views [shape_0], [shape_1], ... (row-major). ShapeError unless flat is
  /// 1-D with exactly P elements. The results share storage (and autograd history) with `flat`.
  std::vector<torch::Tensor> split(const torch::Tensor& flat) const;
  /// Batched split: flat [B, P] -> tensors [B, shape_i...].
  std::vector<torch::Tensor> split_batched(const torch::Tensor& flat) const;
  /// Inverse of split: concatenates the row-major flattening of each tensor in order. ShapeError
  /// when the count or a shape differs from the layout.
  torch::Tensor flatten(const std::vector<torch::Tensor>& tensors) const;
  /// ShapeError unless `tensors` has one tensor per entry with exactly the entry's shape.
  void check(const std::vector<torch::Tensor>& tensors, const char* who) const;

  /// "name [a, b]" lines, for messages and logs.
  std::string to_string() const;

  bool operator==(const WeightLayout& other) const;
  bool operator!=(const WeightLayout& other) const { return !(*this == other); }

 private:
  std::vector<Entry> entries_;
  std::int64_t numel_ = 0;
};

/// Fills `t` in place with U(−b, b), b = 1/√fan_in: PyTorch's nn.Linear default
/// (`kaiming_uniform_(a=√5)` for the weight, the same bound for the bias), spec §2.2/§2.4.
/// Draws from the global generator (seeded by stablelearn::seed_everything).
void uniform_fan_in_(torch::Tensor& t, std::int64_t fan_in);

/// Owned-weight face of a functional block: registers one parameter per layout entry on `module`
/// (name with '.' replaced by '_', since torch::nn::Module names cannot contain dots), each
/// initialised U(−1/√fan_in[i], 1/√fan_in[i]), and returns them in layout order.
std::vector<torch::Tensor> register_layout_parameters(torch::nn::Module& module,
                                                      const WeightLayout& layout,
                                                      const std::vector<std::int64_t>& fan_in);

/// Human-readable shape "[a, b]".
std::string shape_string(const std::vector<std::int64_t>& shape);
std::string shape_string(torch::IntArrayRef shape);

}  // namespace stablelearn::models
