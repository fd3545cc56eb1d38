// repro equivariance: Bronstein, Bruna, Cohen, Veličković, "Geometric Deep Learning: Grids, Groups,
// Graphs, Geodesics, and Gauges" (arXiv 2104.13478; shared/specs/papers-19-35.md §20), the spec's
// data-efficiency demo: rotated Fashion-MNIST (every training and test image rotated by its own
// random multiple of 90°), test accuracy against the training-set size of a p4 CNN
// (models/equivariant.h: lifting conv, two p4 group convs, group max pooling, global mean, linear)
// against the plain CNN of the same structure (rotations = 1) with about the same number of
// parameters (8 channels per rotation against 16 channels: 4,794 against 4,970 parameters).
// Both train with Adam on nested training subsets (the first n images of one seeded permutation),
// the same number of steps at every size, the same batches for both models.
//
// Checks, fixed from the spec ("the p4-CNN should be invariant to test-time rotation and should
// win at small data sizes") before any run (means over seeds):
//   p4 − CNN test accuracy, smallest over the training-set sizes            > 0
//   (p4 − CNN) at the smallest size − (p4 − CNN) at the largest size        > 0
//   p4 CNN: share of test images whose prediction is unchanged when the
//   image is rotated by a further 90°                                       >= 0.999
#include <fmt/format.h>
#include <torch/torch.h>

#include "entries.h"
#include "stablelearn/core/error.h"
#include "stablelearn/core/run.h"
#include "stablelearn/data/cl_streams.h"
#include "stablelearn/models/equivariant.h"
#include "stablelearn/report/svg.h"

namespace stablelearn::experiments::repro {

using nlohmann::json;

namespace {

std::vector<std::int64_t> sizes(const ReproContext& ctx) {
  return {ctx.int_option("size_small"), ctx.int_option("size_mid"), ctx.int_option("size_large")};
}

// Each image rotated by k_i · 90°, k_i uniform in {0, 1, 2, 3} from `gen`.
torch::Tensor rotate_randomly(const torch::Tensor& images, at::Generator& gen) {
  const auto k = torch::randint(0, 4, {images.size(0)}, gen, torch::kInt64);
  auto out = images.clone();
  for (std::int64_t r = 1; r < 4; ++r) {
    const auto idx = k.eq(r).nonzero().squeeze(1);
    if (idx.numel() > 0) out.index_copy_(0, idx, torch::rot90(images.index_select(0, idx), r, {2, 3}));
  }
  return out;
}

models::GroupCnnOptions model_options(const ReproContext& ctx, bool p4) {
  models::GroupCnnOptions o;
  o.rotations = p4 ? 4 : 1;
  const auto c = ctx.int_option(p4 ? "channels_p4" : "channels_cnn");
  o.channels = {c, c, c};
  return o;
}

std::int64_t parameter_count(const models::GroupCnnOptions& o) {
  return models::GroupCnn(o)->layout().numel();
}

struct Result {
  double test_acc = 0, rotation_agreement = 0;
};

torch::Tensor predict(const models::GroupCnn& net, const torch::Tensor& x) {
  torch::NoGradGuard ng;
  std::vector<torch::Tensor> out;
  for (std::int64_t s = 0; s < x.size(0); s += 500) out.push_back(net->forward(x.slice(0, s, std::min(x.size(0), s + 500))).argmax(1));
  return torch::cat(out);
}

Result train(const ReproContext& ctx, bool p4, const torch::Tensor& x, const torch::Tensor& y, const torch::Tensor& xt,
             const torch::Tensor& yt, std::uint64_t seed) {
  torch::manual_seed(seed);
  models::GroupCnn net(model_options(ctx, p4));
  torch::optim::Adam opt(net->parameters(), torch::optim::AdamOptions(ctx.option("lr")));
  auto gen = at::detail::createCPUGenerator(seed * 7919 + 3);  // the same batches for both models
  const auto n = x.size(0), batch = std::min(ctx.int_option("batch"), n);
  auto order = torch::randperm(n, gen, torch::kInt64);
  std::int64_t at = 0;
  for (std::int64_t step = 0; step < ctx.int_option("steps"); ++step) {
    if (at + batch > n) {
      order = torch::randperm(n, gen, torch::kInt64);
      at = 0;
    }
    const auto idx = order.slice(0, at, at + batch);
    at += batch;
    const auto loss = torch::nn::functional::cross_entropy(net->forward(x.index_select(0, idx)), y.index_select(0, idx));
    SL_CHECK(std::isfinite(loss.item<double>()), DataError, "repro equivariance: the training loss is not finite at step ", step,
             "; lower --set lr");
    opt.zero_grad();
    loss.backward();
    opt.step();
  }
  Result r;
  const auto pred = predict(net, xt);
  r.test_acc = pred.eq(yt).to(torch::kFloat64).mean().item<double>();
  r.rotation_agreement = predict(net, torch::rot90(xt, 1, {2, 3})).eq(pred).to(torch::kFloat64).mean().item<double>();
  return r;
}

void write_figure(const RunDir& run, const ReproContext& ctx, const std::vector<json>& rows) {
  const auto ns = sizes(ctx);
  report::SvgPlot plot(720, 440);
  plot.set_range(std::log10(static_cast<double>(ns.front())) - 0.1, std::log10(static_cast<double>(ns.back())) + 0.1, 0, 1);
  plot.title(fmt::format("Rotated Fashion-MNIST: test accuracy against training-set size ({} seed{}, mean and range)",
                         rows.size(), rows.size() == 1 ? "" : "s"));
  plot.labels("log10(training images)", "test accuracy");
  struct Line {
    const char *key, *colour, *label;
  };
  for (const Line& line : {Line{"p4", "#d62728", "p4 CNN"}, Line{"cnn", "#1f77b4", "plain CNN"}}) {
    const auto* key = line.key;
    const std::string colour = line.colour;
    std::vector<std::pair<double, double>> pts;
    for (auto n : ns) {
      double sum = 0, lo = 1, hi = 0;
      for (const auto& r : rows) {
        const double a = r.at(std::to_string(n)).at(key).at("test_acc").get<double>();
        sum += a, lo = std::min(lo, a), hi = std::max(hi, a);
      }
      const double x = std::log10(static_cast<double>(n));
      pts.emplace_back(x, sum / static_cast<double>(rows.size()));
      plot.polyline({{x, lo}, {x, hi}}, colour, 1.0);
      plot.marker(x, pts.back().second, colour, 3);
    }
    plot.polyline(pts, colour, 2.0);
    plot.legend(line.label, colour);
  }
  run.write_text("equivariance_accuracy.svg", plot.str());
}

json run_seed(const ReproContext& ctx, std::int64_t k) {
  const auto seed = ctx.seed + static_cast<std::uint64_t>(k);
  const auto progress = seed_progress(ctx, k);
  const auto d = data::load_fashion_mnist();
  const auto ns = sizes(ctx);
  const auto largest = *std::max_element(ns.begin(), ns.end());
  SL_CHECK(largest <= d.train.size(), ConfigError, "repro equivariance: options.size_large = ", largest, " exceeds the ",
           d.train.size(), " training images");
  auto gen = at::detail::createCPUGenerator(seed * 104729 + 17);
  const auto pick = torch::randperm(d.train.size(), gen, torch::kInt64).slice(0, 0, largest);
  const auto x_pool = rotate_randomly(d.train.images.index_select(0, pick), gen);
  const auto y_pool = d.train.labels.index_select(0, pick);
  const auto m = std::min<std::int64_t>(ctx.int_option("test_samples"), d.test.size());
  const auto xt = rotate_randomly(d.test.images.slice(0, 0, m), gen);
  const auto yt = d.test.labels.slice(0, 0, m);
  json out = json::object();
  std::int64_t done = 0;
  for (auto n : ns) {
    json per = json::object();
    for (const bool p4 : {true, false}) {
      progress(done++, 2 * static_cast<std::int64_t>(ns.size()), fmt::format("{} on {} images", p4 ? "p4 CNN" : "CNN", n));
      const auto r = train(ctx, p4, x_pool.slice(0, 0, n), y_pool.slice(0, 0, n), xt, yt, seed * 31 + 7);
      per[p4 ? "p4" : "cnn"] = {{"test_acc", r.test_acc}, {"rotation_agreement", r.rotation_agreement}};
    }
    out[std::to_string(n)] = per;
  }
  progress(done, done, "done");
  return out;
}

ReproOutcome summarise(const ReproContext& ctx, const std::vector<json>& rows) {
  const auto ns = sizes(ctx);
  auto mean = [](const std::vector<double>& v) {
    double s = 0;
    for (double x : v) s += x;
    return v.empty() ? std::nan("") : s / static_cast<double>(v.size());
  };
  const auto p4o = model_options(ctx, true), cnno = model_options(ctx, false);
  ReproOutcome out;
  out.setup = {
      {"data", fmt::format("Fashion-MNIST, every image rotated by its own random multiple of 90 degrees; nested training subsets "
                           "of {}, {} and {} images (one seeded permutation per seed), the first {} test images",
                           ns[0], ns[1], ns[2], ctx.int_option("test_samples"))},
      {"models", fmt::format("3 conv blocks (3x3, ReLU, 2x2 max pool after the first two), global mean pooling, linear; "
                             "p4 CNN {0} channels per rotation (lifting + 2 group convs, group max pool): {1} parameters; plain CNN "
                             "{2} channels: {3} parameters",
                             p4o.channels[0], parameter_count(p4o), cnno.channels[0], parameter_count(cnno))},
      {"training", fmt::format("Adam lr {}, batch {}, {} steps at every training-set size, the same batches for both models",
                               ctx.option("lr"), ctx.int_option("batch"), ctx.int_option("steps"))},
      {"parameters_p4", parameter_count(p4o)},
      {"parameters_cnn", parameter_count(cnno)}};
  std::vector<double> gap_mean;
  std::vector<double> agreement;
  for (auto n : ns) {
    const auto key = std::to_string(n);
    std::vector<double> p4, cnn, gap, agree_cnn;
    for (const auto& row : rows) {
      p4.push_back(row.at(key).at("p4").at("test_acc").get<double>());
      cnn.push_back(row.at(key).at("cnn").at("test_acc").get<double>());
      gap.push_back(p4.back() - cnn.back());
      agreement.push_back(row.at(key).at("p4").at("rotation_agreement").get<double>());
      agree_cnn.push_back(row.at(key).at("cnn").at("rotation_agreement").get<double>());
    }
    out.metrics["p4_test_acc_" + key] = seeds_json(p4);
    out.metrics["cnn_test_acc_" + key] = seeds_json(cnn);
    out.metrics["p4_minus_cnn_test_acc_" + key] = seeds_json(gap);
    out.metrics["cnn_rotation_agreement_" + key] = seeds_json(agree_cnn);
    gap_mean.push_back(mean(gap));
  }
  out.metrics["p4_rotation_agreement_mean"] = finite_or_null(mean(agreement));
  out.checks = {make_check("p4 - CNN test accuracy, smallest over the training-set sizes (means over seeds)",
                           *std::min_element(gap_mean.begin(), gap_mean.end()), ">", 0),
                make_check(fmt::format("(p4 - CNN) at {} images minus (p4 - CNN) at {} images (means)", ns.front(), ns.back()),
                           gap_mean.front() - gap_mean.back(), ">", 0),
                make_check("p4 CNN: share of test predictions unchanged by a further 90-degree rotation (mean)", mean(agreement),
                           ">=", 0.999)};
  if (ctx.run) write_figure(*ctx.run, ctx, rows);
  return out;
}

}  // namespace

ReproEntry make_equivariance_repro() {
  ReproEntry e;
  e.name = "equivariance";
  e.paper = "Geometric Deep Learning: Grids, Groups, Graphs, Geodesics, and Gauges (Bronstein, Bruna, Cohen, Velickovic; "
            "arXiv 2104.13478, 2021)";
  e.claim = "Building the symmetry of the data into the layers pays in data: on images rotated by multiples of 90 degrees a "
            "p4 group-equivariant CNN is invariant to the rotation and beats a plain CNN of the same size, most clearly when "
            "training data are scarce.";
  e.options = {{"size_small", "smallest training set (images)", 100, 100, true},
               {"size_mid", "middle training set (images)", 500, 300, true},
               {"size_large", "largest training set (images)", 2500, 1000, true},
               {"test_samples", "test images (rotated)", 1000, 300, true},
               {"steps", "Adam steps at every size", 300, 20, true},
               {"batch", "batch size", 32, 32, true},
               {"lr", "Adam learning rate", 3e-3, 3e-3, false},
               {"channels_p4", "p4 CNN channels per rotation", 8, 8, true},
               {"channels_cnn", "plain CNN channels", 16, 16, true}};
  e.run_seed = run_seed;
  e.summarise = summarise;
  return e;
}

}  // namespace stablelearn::experiments::repro
