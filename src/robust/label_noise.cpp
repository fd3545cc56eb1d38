#include "stablelearn/robust/label_noise.h"

#include <cmath>

#include "stablelearn/core/error.h"

namespace stablelearn::robust {

void LabelNoiseOptions::validate(std::int64_t classes, const std::string& prefix) const {
  SL_CHECK(kind == "none" || kind == "symmetric" || kind == "asymmetric", ConfigError, prefix, "label_noise = \"", kind,
           "\": expected one of none, symmetric, asymmetric");
  SL_CHECK(std::isfinite(rate) && rate >= 0 && rate < 1, ConfigError, prefix, "label_noise_rate = ", rate,
           ": expected a fraction in [0, 1)");
  SL_CHECK(classes >= 2, ConfigError, prefix, "label_noise: needs at least 2 classes, the data has ", classes);
  if (!pairs.empty()) {
    SL_CHECK(static_cast<std::int64_t>(pairs.size()) == classes, ConfigError, prefix, "label_noise_pairs: ", pairs.size(),
             " entries, expected one per class (", classes, ")");
    for (auto c : pairs)
      SL_CHECK(c >= 0 && c < classes, ConfigError, prefix, "label_noise_pairs: class ", c, " is not one of 0..", classes - 1);
  }
}

NoisyLabels corrupt_labels(const torch::Tensor& labels, std::int64_t classes, const LabelNoiseOptions& o) {
  o.validate(classes);
  SL_CHECK(labels.dim() == 1 && labels.scalar_type() == torch::kInt64, DataError,
           "label noise: labels must be a 1-D int64 tensor, got ", labels.sizes(), " ", labels.scalar_type());
  const auto clean = labels.to(torch::kCPU).contiguous();
  const auto n = clean.size(0);
  if (n > 0) {
    const auto lo = clean.min().item<std::int64_t>(), hi = clean.max().item<std::int64_t>();
    SL_CHECK(lo >= 0 && hi < classes, DataError, "label noise: labels must be in 0..", classes - 1, ", got ", lo, "..", hi);
  }
  NoisyLabels out;
  out.clean = clean.clone();
  auto noisy = clean.clone();
  const auto want = static_cast<std::int64_t>(std::llround(o.rate * static_cast<double>(n)));
  if (o.kind != "none" && want > 0) {
    auto gen = at::detail::createCPUGenerator(o.seed);
    const auto order = torch::randperm(n, gen, torch::kInt64);
    const auto* idx = order.data_ptr<std::int64_t>();
    auto* y = noisy.data_ptr<std::int64_t>();
    if (o.kind == "symmetric") {
      // One offset 1..C−1 per corrupted sample: y ← (y + offset) mod C is uniform over the others.
      const auto offsets = torch::randint(1, classes, {want}, gen, torch::kInt64);
      const auto* off = offsets.data_ptr<std::int64_t>();
      for (std::int64_t k = 0; k < want; ++k) y[idx[k]] = (y[idx[k]] + off[k]) % classes;
    } else {
      for (std::int64_t k = 0; k < want; ++k) {
        const auto c = y[idx[k]];
        y[idx[k]] = o.pairs.empty() ? (c + 1) % classes : o.pairs[static_cast<std::size_t>(c)];
      }
    }
  }
  out.corrupted = noisy.ne(out.clean);
  out.labels = noisy.to(labels.device());
  return out;
}

Memorisation memorisation(const torch::Tensor& predictions, const NoisyLabels& noisy) {
  SL_CHECK(predictions.dim() == 1 && predictions.size(0) == noisy.labels.size(0), ShapeError,
           "memorisation: ", predictions.size(0), " predictions for ", noisy.labels.size(0), " samples");
  const auto pred = predictions.to(torch::kCPU);
  const auto mask = noisy.corrupted;
  Memorisation m;
  m.corrupted = mask.sum().item<std::int64_t>();
  if (m.corrupted == 0) return m;
  const auto p = pred.masked_select(mask);
  m.memorised = p.eq(noisy.labels.to(torch::kCPU).masked_select(mask)).sum().item<double>() / static_cast<double>(m.corrupted);
  m.corrected = p.eq(noisy.clean.masked_select(mask)).sum().item<double>() / static_cast<double>(m.corrupted);
  return m;
}

}  // namespace stablelearn::robust
