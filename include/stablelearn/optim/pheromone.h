// A persistent pheromone field over slot→slot transitions (seed paper 27, DPPN, shared/specs/
// papers-19-35.md §27; docs/optim.md). The paper is weakly specified: this is the mechanism as the
// spec infers it, built as an exploratory component.
//
// P is a K×K non-negative matrix. update(U): P ← (1 − ρ) P + c U with U ≥ 0 the usage of the
// transitions in one step (evaporation ρ, deposit c). normalised() = P / max P (0 when P = 0).
// The field is read back either as a routing bias added to a model's transition logits,
// β log(P̂ + ε), or as a learning-rate prior, a per-transition step-size multiplier 1 + γ P̂.
// remapped(m) moves the field to other coordinates, Q[i][j] = P[m[i]][m[j]]: the coordinate-system
// problem is which indices the field is stored in (a model's own slots, which move between runs, or
// coordinates fixed by the task's structure) and how they map onto a new model's slots.
// Device and dtype follow the TensorOptions given.
#pragma once

#include <cstdint>
#include <vector>

#include <torch/types.h>

namespace stablelearn::optim {

struct PheromoneOptions {
  std::int64_t slots = 16;   ///< K (> 0)
  double evaporation = 0.05; ///< ρ in [0, 1)
  double deposit = 1.0;      ///< c (> 0)
  /// ConfigError naming the key ("pheromone.slots", "pheromone.evaporation", "pheromone.deposit").
  void validate() const;
};

class PheromoneField {
 public:
  explicit PheromoneField(PheromoneOptions options = {}, const torch::TensorOptions& tensor_options = torch::kFloat64);

  /// P ← (1 − ρ) P + c U; ShapeError unless U is K×K, DataError if it has negative or non-finite values.
  void update(const torch::Tensor& usage);
  const torch::Tensor& field() const { return p_; }
  /// P / max P (all zeros while P is zero).
  torch::Tensor normalised() const;
  /// β log(P̂ + ε) (β ≥ 0, ε > 0; ConfigError naming "pheromone.beta" / "pheromone.eps" otherwise).
  torch::Tensor routing_bias(double beta, double eps) const;
  /// 1 + γ P̂ (γ ≥ 0; ConfigError naming "pheromone.gamma" otherwise).
  torch::Tensor lr_multiplier(double gamma) const;
  /// The field with Q[i][j] = P[map[i]][map[j]]; map has K entries in [0, K) (ShapeError otherwise).
  PheromoneField remapped(const std::vector<std::int64_t>& map) const;
  const PheromoneOptions& options() const { return options_; }

 private:
  PheromoneOptions options_;
  torch::Tensor p_;
};

}  // namespace stablelearn::optim
