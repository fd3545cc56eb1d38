// `stablelearn cl pretrain` (ClExperiment::pretrain): the [model] trained on the part of
// Fashion-MNIST that the [stream] leaves out, saved as a backbone file (cl_backbone.h).
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>

#include "cl_internal.h"
#include "stablelearn/continual/strategy.h"
#include "stablelearn/core/env.h"
#include "stablelearn/core/error.h"
#include "stablelearn/core/fs.h"
#include "stablelearn/core/run.h"
#include "stablelearn/experiments/cl_backbone.h"
#include "stablelearn/optim/sgd.h"

namespace stablelearn::experiments::detail {

namespace {

data::ImageSet rows(const data::ImageSet& s, const torch::Tensor& idx) {
  return {s.images.index_select(0, idx), s.labels.index_select(0, idx)};
}

data::ImageSet from(const data::ImageSet& s, std::int64_t begin, std::int64_t limit) {
  const auto n = std::max<std::int64_t>(0, s.size() - begin);
  const auto take = limit > 0 ? std::min(limit, n) : n;
  return {s.images.narrow(0, begin, take), s.labels.narrow(0, begin, take)};
}

double accuracy(models::ClassifierImpl& model, const data::ImageSet& s) {
  torch::NoGradGuard no_grad;
  std::int64_t correct = 0;
  for (std::int64_t i = 0; i < s.size(); i += 2000) {
    const auto len = std::min<std::int64_t>(2000, s.size() - i);
    correct += (model.forward(s.images.narrow(0, i, len)).argmax(1) == s.labels.narrow(0, i, len)).sum().item<std::int64_t>();
  }
  return s.size() ? static_cast<double>(correct) / static_cast<double>(s.size()) : -1.0;
}

}  // namespace

ClPretrainResult pretrain_backbone(const ClConfig& p, const std::filesystem::path& out,
                                   const std::function<void(std::int64_t, std::int64_t, double)>& progress) {
  const auto start = std::chrono::steady_clock::now();
  const auto stream = make_task_stream(p.stream);
  const auto& ds = stream->data();
  const auto& so = p.stream.stream;
  ClPretrainResult r;
  r.file = out;
  data::ImageSet train, test;
  if (so.kind == data::StreamKind::Permuted || so.kind == data::StreamKind::Rotated) {
    // The training images after the stream's first train_per_task, as they are (unpermuted,
    // unrotated); the test images after its first test_per_task.
    const auto used = p.stream.train_per_task;
    SL_CHECK(used > 0 && used < ds.train.size(), ConfigError, "stream.train_per_task: a ", data::stream_kind_name(so.kind),
             " stream pre-trains on the training images it does not use; set stream.train_per_task to fewer than ",
             ds.train.size(), " (it is ", used, ")");
    train = from(ds.train, used, p.pretrain.samples);
    test = p.stream.test_per_task > 0 ? from(ds.test, p.stream.test_per_task, 0) : data::ImageSet{};
    r.source = fmt::format("Fashion-MNIST training images {}..{} (not in the stream), untransformed", used, used + train.size() - 1);
    r.classes = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  } else {
    r.classes = stream->unused_classes();
    SL_CHECK(!r.classes.empty(), ConfigError, "stream.tasks: a split stream with ", stream->size(),
             " tasks uses every class; keep classes out for pre-training with stream.tasks <= 4");
    auto mask_of = [&](const torch::Tensor& labels) {
      auto m = torch::zeros_like(labels, torch::kBool);
      for (auto c : r.classes) m |= labels == c;
      return m.nonzero().squeeze(1);
    };
    train = rows(ds.train, mask_of(ds.train.labels));
    if (p.pretrain.samples > 0) train = from(train, 0, p.pretrain.samples);
    test = rows(ds.test, mask_of(ds.test.labels));
    r.source = fmt::format("Fashion-MNIST training images of the classes the stream leaves out ({})", fmt::join(r.classes, ", "));
  }
  r.train_samples = train.size();
  r.test_samples = test.size();
  SL_CHECK(train.size() > 0, ConfigError, "pretrain.samples: no pre-training images");

  seed_everything(static_cast<std::uint64_t>(p.pretrain.seed));
  models::Classifier model(p.model);
  optim::SgdMomentum sgd(model->weights(), p.pretrain.lr, p.pretrain.momentum);
  auto gen = at::detail::createCPUGenerator(derive_seed(p.pretrain.seed, 0, seed_purpose::batches));
  const auto bs = p.pretrain.batch_size, n = train.size();
  const auto per_epoch = (n + bs - 1) / bs;
  for (std::int64_t e = 0; e < p.pretrain.epochs; ++e) {
    const auto order = torch::randperm(n, gen, torch::kInt64);
    for (std::int64_t b = 0; b < per_epoch; ++b) {
      const auto idx = order.narrow(0, b * bs, std::min(bs, n - b * bs));
      for (const auto& q : model->weights()) const_cast<torch::Tensor&>(q).mutable_grad().reset();
      const auto loss = continual::cross_entropy(model->forward(train.images.index_select(0, idx)), train.labels.index_select(0, idx));
      const double value = loss.item<double>();
      SL_CHECK(std::isfinite(value), DataError, "cl pretrain: the loss is ", value, " at epoch ", e, " step ", b,
               " (lower pretrain.lr)");
      loss.backward();
      sgd.step();
      if (progress) progress(e * per_epoch + b + 1, p.pretrain.epochs * per_epoch, value);
    }
  }
  r.train_accuracy = accuracy(*model, train);
  r.test_accuracy = accuracy(*model, test);
  save_backbone(out, *model, r.classes);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const nlohmann::json report{{"file", out.filename().string()},
                              {"source", r.source},
                              {"classes", r.classes},
                              {"model", p.model.kind},
                              {"train_samples", r.train_samples},
                              {"test_samples", r.test_samples},
                              {"train_accuracy", r.train_accuracy},
                              {"test_accuracy", r.test_accuracy < 0 ? nlohmann::json(nullptr) : nlohmann::json(r.test_accuracy)},
                              {"epochs", p.pretrain.epochs},
                              {"lr", p.pretrain.lr},
                              {"seed", p.pretrain.seed},
                              {"seconds", r.seconds}};
  write_file_atomic(out.string() + ".json", report.dump(1) + "\n");
  return r;
}

}  // namespace stablelearn::experiments::detail
