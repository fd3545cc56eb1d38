// repro grokalign: Walker, Humayun, Balestriero & Baraniuk, "GrokAlign: Geometric Characterisation
// and Acceleration of Grokking" (arXiv 2506.12284; shared/specs/papers-19-35.md §30; reference code
// ThomasWalker1/grokalign, accelerating_grokking.py), at small scale with Fashion-MNIST standing in
// for MNIST: the paper's grokking recipe (a bias-free ReLU MLP 784-W-W-W-10 with every weight
// multiplied by a large initialisation scale (×8), a small training set (1024 images), AdamW
// lr 1e-3, batch 256, MSE on one-hot targets), trained until the test accuracy reaches a fixed
// threshold (0.75, the notes' Fashion-MNIST stand-in for MNIST's 0.85) or a step budget runs out:
//
//   none          Adam (AdamW, weight decay 0), the no-regulariser reference
//   weight_decay  AdamW, weight decay 0.01 (the paper's baseline)
//   grokalign     Adam (weight decay 0) + λ_jac R(x), R the GrokAlign Jacobian-norm estimate
//                 (diagnostics/grokalign.h, one random projection; λ_jac = 1e-4 with MSE, the paper's)
//
// Every `every` steps: train and test accuracy and the mean centroid alignment cos(c(x), x),
// c(x) = J(x)ᵀ1, and ‖c‖ on the first 256 training images (diagnostics::centroid_alignment), the
// curves of the paper's "alignment tracks the stages" figure. Steps to the threshold are the first
// evaluation step with test accuracy ≥ threshold; a run that never gets there counts as the step
// budget (a lower bound, which can only make GrokAlign's comparison harder).
//
// Checks, fixed from the paper's claim before any run ("GrokAlign induces grokking much sooner than
// weight decay"; the centroid alignment rises as the network groks):
//   sooner:     mean steps(grokalign) / mean steps(weight_decay) < 1
//   groks:      fraction of seeds in which GrokAlign reaches the threshold >= 1
//   alignment:  mean over seeds of (alignment at the end − at step 0) under GrokAlign > 0
// The no-regulariser steps are reported as the reference, not checked.
#include <algorithm>
#include <cmath>

#include <fmt/format.h>
#include <torch/nn/functional.h>
#include <torch/optim/adamw.h>

#include "entries.h"
#include "stablelearn/core/error.h"
#include "stablelearn/core/run.h"
#include "stablelearn/data/cl_streams.h"
#include "stablelearn/diagnostics/grokalign.h"
#include "stablelearn/report/svg.h"

namespace stablelearn::experiments::repro {

using nlohmann::json;

namespace {

struct Variant {
  const char* key;
  const char* label;
  bool weight_decay;
  bool jacobian;
};
const std::vector<Variant>& variants() {
  static const std::vector<Variant> v = {{"none", "no regulariser", false, false},
                                         {"weight_decay", "weight decay", true, false},
                                         {"grokalign", "GrokAlign", false, true}};
  return v;
}

/// The bias-free MLP f(x) = W_L relu(... relu(W_1 x)) on flattened images.
torch::Tensor mlp(const std::vector<torch::Tensor>& w, const torch::Tensor& x) {
  auto h = x.reshape({x.size(0), -1});
  for (std::size_t i = 0; i < w.size(); ++i) {
    h = torch::matmul(h, w[i].t());
    if (i + 1 < w.size()) h = torch::relu(h);
  }
  return h;
}

double accuracy(const std::vector<torch::Tensor>& w, const torch::Tensor& x, const torch::Tensor& y) {
  torch::NoGradGuard ng;
  return mlp(w, x).argmax(1).eq(y).to(torch::kFloat64).mean().item<double>();
}

struct Data {
  torch::Tensor x, y, x_test, y_test, x_align;
};

/// One variant from the seed's initialisation: its curve and the steps to the threshold.
json train_variant(const ReproContext& ctx, std::int64_t k, const Data& d, const std::vector<torch::Tensor>& init,
                   const Variant& v) {
  const auto steps = ctx.int_option("steps"), every = ctx.int_option("every"), batch = ctx.int_option("batch");
  const double threshold = ctx.option("threshold");
  std::vector<torch::Tensor> w;
  for (const auto& t : init) w.push_back(t.clone().requires_grad_(true));
  torch::optim::AdamW opt(w, torch::optim::AdamWOptions(ctx.option("lr")).weight_decay(v.weight_decay ? ctx.option("weight_decay") : 0.0));
  const diagnostics::OutputFn model = [&w](const torch::Tensor& x) { return mlp(w, x); };
  diagnostics::GrokAlign ga(model, diagnostics::GrokAlignOptions().seed(static_cast<std::uint64_t>(ctx.seed) + 1000 * static_cast<std::uint64_t>(k) + 7));
  const double lambda = ctx.option("lambda_jac");
  auto gen = at::detail::createCPUGenerator(static_cast<std::uint64_t>(ctx.seed) + static_cast<std::uint64_t>(k) + 101);
  const auto n = d.x.size(0);
  const auto progress = seed_progress(ctx, k, v.key);

  json curve = json::array();
  std::int64_t reached = -1, step = 0;
  auto evaluate = [&] {
    const auto ca = diagnostics::centroid_alignment(model, d.x_align);
    const double test = accuracy(w, d.x_test, d.y_test);
    curve.push_back({{"step", step},
                     {"train_acc", accuracy(w, d.x, d.y)},
                     {"test_acc", test},
                     {"alignment", ca.mean_alignment},
                     {"centroid_norm", ca.norms.mean().item<double>()}});
    if (reached < 0 && test >= threshold) reached = step;
    progress(step, steps, fmt::format("test {:.3f}", test));
  };
  evaluate();
  while (step < steps && reached < 0) {
    const auto perm = torch::randperm(n, gen, torch::kInt64);
    for (std::int64_t s = 0; s + batch <= n && step < steps && reached < 0; s += batch) {
      const auto idx = perm.slice(0, s, s + batch);
      const auto xb = d.x.index_select(0, idx);
      const auto target = torch::one_hot(d.y.index_select(0, idx), 10).to(xb.dtype());
      auto loss = torch::mse_loss(model(xb), target);  // mean over the batch and the 10 outputs (nn.MSELoss)
      if (v.jacobian) loss = loss + lambda * ga(xb);
      opt.zero_grad();
      loss.backward();
      opt.step();
      ++step;
      if (step % every == 0 || step == steps) evaluate();
    }
  }
  const auto& first = curve.front();
  const auto& last = curve.back();
  return {{"steps_to_threshold", reached >= 0 ? reached : steps},
          {"reached", reached >= 0},
          {"steps_run", step},
          {"alignment_start", first.at("alignment")},
          {"alignment_end", last.at("alignment")},
          {"test_acc_end", last.at("test_acc")},
          {"train_acc_end", last.at("train_acc")},
          {"curve", curve}};
}

json run_seed(const ReproContext& ctx, std::int64_t k) {
  const auto data = data::load_fashion_mnist();
  const auto samples = ctx.int_option("samples"), test_samples = ctx.int_option("test_samples");
  SL_CHECK(samples <= data.train.size() && test_samples <= data.test.size(), ConfigError, "repro grokalign: samples = ", samples,
           ", test_samples = ", test_samples, " (the data has ", data.train.size(), " and ", data.test.size(), ")");
  SL_CHECK(ctx.int_option("batch") <= samples, ConfigError, "repro grokalign: batch = ", ctx.int_option("batch"),
           " exceeds samples = ", samples);
  SL_CHECK(ctx.option("init_scale") > 0 && ctx.option("threshold") > 0 && ctx.option("threshold") <= 1, ConfigError,
           "repro grokalign: init_scale = ", ctx.option("init_scale"), ", threshold = ", ctx.option("threshold"),
           " (want init_scale > 0 and a threshold in (0, 1])");
  Data d;
  d.x = data.train.images.slice(0, 0, samples).reshape({samples, -1}).contiguous();
  d.y = data.train.labels.slice(0, 0, samples);
  d.x_test = data.test.images.slice(0, 0, test_samples).reshape({test_samples, -1}).contiguous();
  d.y_test = data.test.labels.slice(0, 0, test_samples);
  d.x_align = d.x.slice(0, 0, std::min<std::int64_t>(256, samples));
  // torch.nn.Linear's default initialisation U(±1/√fan_in) (bias-free), times the scale.
  auto gen = at::detail::createCPUGenerator(static_cast<std::uint64_t>(ctx.seed) + static_cast<std::uint64_t>(k));
  const auto width = ctx.int_option("width");
  const std::vector<std::int64_t> dims = {784, width, width, width, 10};
  std::vector<torch::Tensor> init;
  for (std::size_t i = 0; i + 1 < dims.size(); ++i) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(dims[i]));
    init.push_back((torch::rand({dims[i + 1], dims[i]}, gen, torch::kFloat32) * 2 - 1) * (bound * ctx.option("init_scale")));
  }
  json row = json::object();
  for (const auto& v : variants()) row[v.key] = train_variant(ctx, k, d, init, v);
  return row;
}

void write_figures(const RunDir& run, const std::vector<json>& rows) {
  const char* colours[] = {"#7f7f7f", "#1f77b4", "#d62728"};
  for (const char* what : {"test_acc", "alignment"}) {
    double xmax = 1;
    for (const auto& v : variants())
      for (const auto& r : rows) xmax = std::max(xmax, r.at(v.key).at("curve").back().at("step").get<double>());
    report::SvgPlot plot(720, 440);
    const bool acc = std::string(what) == "test_acc";
    plot.set_range(0, xmax, acc ? 0.0 : -1.0, 1.0);
    plot.title(fmt::format("Grokking on Fashion-MNIST (init x8): {} against steps ({} seed{})",
                           acc ? "test accuracy" : "centroid alignment cos(c(x), x)", rows.size(), rows.size() == 1 ? "" : "s"));
    plot.labels("optimisation steps", acc ? "test accuracy" : "mean centroid alignment");
    for (std::size_t i = 0; i < variants().size(); ++i) {
      for (const auto& r : rows) {
        std::vector<std::pair<double, double>> pts;
        for (const auto& p : r.at(variants()[i].key).at("curve")) pts.emplace_back(p.at("step").get<double>(), p.at(what).get<double>());
        plot.polyline(pts, colours[i], 1.5);
      }
      plot.legend(variants()[i].label, colours[i]);
    }
    run.write_text(std::string("grokalign_") + what + ".svg", plot.str());
  }
}

ReproOutcome summarise(const ReproContext& ctx, const std::vector<json>& rows) {
  ReproOutcome out;
  out.setup = {{"problem", fmt::format("Fashion-MNIST, the first {} training and {} test images (normalised)",
                                       ctx.int_option("samples"), ctx.int_option("test_samples"))},
               {"model", fmt::format("bias-free ReLU MLP 784-{0}-{0}-{0}-10, torch.nn.Linear's initialisation times {1}",
                                     ctx.int_option("width"), ctx.option("init_scale"))},
               {"training", fmt::format("AdamW lr {}, batch {}, MSE on one-hot targets, float32, at most {} steps, evaluated every {}",
                                        ctx.option("lr"), ctx.int_option("batch"), ctx.int_option("steps"), ctx.int_option("every"))},
               {"compared", fmt::format("no regulariser; weight decay {}; GrokAlign lambda_jac = {} (no weight decay)",
                                        ctx.option("weight_decay"), ctx.option("lambda_jac"))},
               {"threshold", ctx.option("threshold")},
               {"steps_to_threshold", "first evaluation step with test accuracy >= threshold; the step budget if never"},
               {"alignment", "mean cos(c(x), x), c(x) = J(x)^T 1, on the first 256 training images"}};
  for (const auto& v : variants()) {
    const std::string p = std::string("/") + v.key + "/";
    const auto st = per_seed_at(rows, p + "steps_to_threshold");
    put_seed_stats(out, std::string(v.key) + "_steps", st);
    std::vector<double> reached;
    for (const auto& r : rows) reached.push_back(r.at(v.key).at("reached").get<bool>() ? 1.0 : 0.0);
    out.metrics[std::string(v.key) + "_reached"] = seeds_json(reached);
    out.metrics[std::string(v.key) + "_test_acc_end"] = seeds_json(per_seed_at(rows, p + "test_acc_end"));
    out.metrics[std::string(v.key) + "_alignment_start"] = seeds_json(per_seed_at(rows, p + "alignment_start"));
    out.metrics[std::string(v.key) + "_alignment_end"] = seeds_json(per_seed_at(rows, p + "alignment_end"));
  }
  const double ga = mean(per_seed_at(rows, "/grokalign/steps_to_threshold"));
  const double wd = mean(per_seed_at(rows, "/weight_decay/steps_to_threshold"));
  double reached = 0, rise = 0;
  for (const auto& r : rows) {
    reached += r.at("grokalign").at("reached").get<bool>() ? 1.0 : 0.0;
    rise += r.at("grokalign").at("alignment_end").get<double>() - r.at("grokalign").at("alignment_start").get<double>();
  }
  const double n = static_cast<double>(rows.size());
  out.checks = {make_check("sooner: mean steps to the threshold, GrokAlign / weight decay", ga / wd, "<", 1.0),
                make_check("groks: fraction of seeds in which GrokAlign reaches the threshold", reached / n, ">=", 1.0),
                make_check("alignment rises under GrokAlign: mean (end - start) of cos(c(x), x)", rise / n, ">", 0.0)};
  if (ctx.run) write_figures(*ctx.run, rows);
  return out;
}

}  // namespace

ReproEntry make_grokalign_repro() {
  ReproEntry e;
  e.name = "grokalign";
  e.paper = "GrokAlign: Geometric Characterisation and Acceleration of Grokking (Walker, Humayun, Balestriero, Baraniuk)";
  e.claim = "Regularising the network's Jacobian norm (GrokAlign) makes a large-initialisation network generalise (grok) in "
            "fewer optimisation steps than weight decay, and the alignment of the centroids J(x)^T 1 with the inputs rises "
            "as it does.";
  e.options = {{"samples", "training images", 1024, 256, true},
               {"test_samples", "test images", 1024, 512, true},
               {"width", "width of the three hidden layers", 128, 64, true},
               {"init_scale", "factor on the initial weights", 8, 8, false},
               {"steps", "step budget per run", 3000, 300, true},
               {"every", "steps between evaluations", 50, 25, true},
               {"batch", "batch size", 256, 128, true},
               {"lr", "AdamW learning rate", 1e-3, 1e-3, false},
               {"weight_decay", "AdamW weight decay of the weight-decay baseline", 0.01, 0.01, false},
               {"lambda_jac", "GrokAlign weight lambda_jac (MSE)", 1e-4, 1e-4, false},
               {"threshold", "test accuracy that counts as generalised", 0.75, 0.75, false}};
  e.run_seed = run_seed;
  e.summarise = summarise;
  return e;
}

}  // namespace stablelearn::experiments::repro
