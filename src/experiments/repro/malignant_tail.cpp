// repro malignant-tail: Zice Wang, "The Malignant Tail: spectral segregation of label noise in
// over-parameterized networks" (arXiv 2603.02293, March 2026; WITHDRAWN by its author —
// shared/specs/papers-19-35.md §24), run as a diagnostic (diagnostics/spectral_probe.h). The spec's
// smallest faithful experiment: Fashion-MNIST with 40 % symmetric label noise
// (robust/label_noise.h) on the training images, clean test images; an over-parameterised MLP
// 784-H-H-10 (H = 256) trained by SGD (lr 0.02, momentum 0.9, batch 128, no weight decay) long
// enough to fit the noisy labels. Then, on the penultimate representation (the second hidden
// layer's ReLU output) of the training images: its spectrum; the spectral linear probe (ridge
// least squares on the top-d principal coordinates, fitted on the noisy labels) for d on a grid
// 1, 2, 4, 8, 10, 16, ..., H: clean test accuracy and the share of corrupted training samples it
// fits to their wrong label; and the truncated network (its last layer reading the projection of
// the representation on the top-d directions): clean test accuracy, with d chosen by accuracy on a
// held-out 10 % of the noisy training set. Every `probe_every` epochs (epoch 0 = the untrained
// network) the probe at d = probe_d and at d = H and the network's own test accuracy are recorded.
//
// Checks, fixed from the spec before any run (means over seeds; probe_d = 10, the number of
// classes, where the spec expects the peak):
//   probe test accuracy at d = probe_d − the full network's test accuracy          > 0
//   truncated network (d chosen on the noisy validation split) − full network      > 0
//   probe test accuracy at d = probe_d − probe test accuracy at d = H              > 0
//   probe's memorised share of corrupted training samples at d = H − at d = probe_d > 0
#include <optional>

#include <fmt/format.h>
#include <torch/torch.h>

#include "entries.h"
#include "stablelearn/core/error.h"
#include "stablelearn/core/run.h"
#include "stablelearn/data/cl_streams.h"
#include "stablelearn/diagnostics/spectral_probe.h"
#include "stablelearn/report/svg.h"
#include "stablelearn/robust/label_noise.h"

namespace stablelearn::experiments::repro {

using nlohmann::json;

namespace {

namespace dg = diagnostics;

struct Data {
  torch::Tensor x, y_noisy, corrupted, x_val, y_val, x_test, y_test;
};

void validate(const ReproContext& ctx) {
  const double noise = ctx.option("noise");
  SL_CHECK(std::isfinite(noise) && noise >= 0 && noise < 1, ConfigError, "repro malignant-tail: noise = ", noise,
           ": expected a rate in [0, 1)");
  const auto h = ctx.int_option("hidden");
  SL_CHECK(h >= 2, ConfigError, "repro malignant-tail: hidden = ", h, ": expected at least 2");
  const auto d = ctx.int_option("probe_d");
  SL_CHECK(d >= 1 && d <= h, ConfigError, "repro malignant-tail: probe_d = ", d, ": expected 1..", h, " (the hidden width)");
  SL_CHECK(ctx.int_option("samples") >= 100, ConfigError, "repro malignant-tail: samples = ", ctx.int_option("samples"),
           ": expected at least 100");
  SL_CHECK(ctx.int_option("epochs") >= 1, ConfigError, "repro malignant-tail: epochs = ", ctx.int_option("epochs"),
           ": expected at least 1");
  SL_CHECK(ctx.int_option("probe_every") >= 1, ConfigError, "repro malignant-tail: probe_every = ",
           ctx.int_option("probe_every"), ": expected at least 1");
}

Data load(const ReproContext& ctx, std::uint64_t seed) {
  const auto d = data::load_fashion_mnist();
  const auto n = std::min<std::int64_t>(ctx.int_option("samples"), d.train.size());
  const auto m = std::min<std::int64_t>(ctx.int_option("test_samples"), d.test.size());
  const auto x = d.train.images.slice(0, 0, n).reshape({n, -1});
  robust::LabelNoiseOptions o;
  o.kind = "symmetric";
  o.rate = ctx.option("noise");
  o.seed = seed * 31 + 7;
  const auto noisy = robust::corrupt_labels(d.train.labels.slice(0, 0, n), 10, o);
  const auto nv = n / 10;  // the last 10 %: validation, noisy labels
  const auto nt = n - nv;
  return {x.slice(0, 0, nt), noisy.labels.slice(0, 0, nt), noisy.corrupted.slice(0, 0, nt), x.slice(0, nt, n),
          noisy.labels.slice(0, nt, n), d.test.images.slice(0, 0, m).reshape({m, -1}), d.test.labels.slice(0, 0, m)};
}

std::vector<std::int64_t> d_grid(std::int64_t h, std::int64_t probe_d) {
  std::vector<std::int64_t> ds;
  for (std::int64_t d = 1; d < h; d *= 2) ds.push_back(d);
  ds.push_back(probe_d);
  ds.push_back(h);
  std::sort(ds.begin(), ds.end());
  ds.erase(std::unique(ds.begin(), ds.end()), ds.end());
  return ds;
}

double memorised_share(const torch::Tensor& pred, const Data& d) {
  const auto c = d.corrupted;
  if (c.sum().item<std::int64_t>() == 0) return std::nan("");
  return pred.eq(d.y_noisy).masked_select(c).to(torch::kFloat64).mean().item<double>();
}

void write_figures(const RunDir& run, const json& row) {
  const auto ds = row.at("ds").get<std::vector<std::int64_t>>();
  {
    report::SvgPlot plot(720, 440);
    plot.set_range(0, std::log2(static_cast<double>(ds.back())), 0, 1);
    plot.title("malignant tail (diagnostic; paper withdrawn): clean test accuracy against d (seed 0)");
    plot.labels("log2 d (leading principal directions kept)", "clean test accuracy");
    auto line = [&](const char* key, const char* colour, const std::string& label) {
      std::vector<std::pair<double, double>> pts;
      const auto v = row.at(key).get<std::vector<double>>();
      for (std::size_t i = 0; i < ds.size(); ++i) pts.emplace_back(std::log2(static_cast<double>(ds[i])), v[i]);
      plot.polyline(pts, colour, 2.0);
      plot.legend(label, colour);
    };
    line("probe_test_acc", "#1f77b4", "spectral linear probe on the top-d directions");
    line("truncated_test_acc", "#2ca02c", "network with its representation truncated to d");
    line("probe_memorised", "#d62728", "probe: corrupted training samples fitted to the wrong label");
    const double net = row.at("network_test_acc").get<double>();
    plot.polyline({{0, net}, {std::log2(static_cast<double>(ds.back())), net}}, "#7f7f7f", 1.5);
    plot.legend("full network", "#7f7f7f");
    run.write_text("malignant_tail_probe.svg", plot.str());
  }
  {
    const auto& c = row.at("curve");
    const auto ep = c.at("epoch").get<std::vector<double>>();
    report::SvgPlot plot(720, 440);
    plot.set_range(0, std::max(1.0, ep.back()), 0, 1);
    plot.title("malignant tail: during training (seed 0)");
    plot.labels("epoch", "clean test accuracy");
    const char* colours[] = {"#7f7f7f", "#1f77b4", "#ff7f0e"};
    const char* keys[] = {"network_test_acc", "probe_small_d_test_acc", "probe_full_d_test_acc"};
    const char* labels[] = {"network", "probe at d = probe_d", "probe at d = H"};
    for (int k = 0; k < 3; ++k) {
      std::vector<std::pair<double, double>> pts;
      const auto v = c.at(keys[k]).get<std::vector<double>>();
      for (std::size_t i = 0; i < v.size(); ++i) pts.emplace_back(ep[i], v[i]);
      plot.polyline(pts, colours[k], 2.0);
      plot.legend(labels[k], colours[k]);
    }
    run.write_text("malignant_tail_training.svg", plot.str());
  }
}

json run_seed(const ReproContext& ctx, std::int64_t k) {
  validate(ctx);
  const auto seed = ctx.seed + static_cast<std::uint64_t>(k);
  const auto d = load(ctx, seed);
  const auto progress = seed_progress(ctx, k);
  const auto hidden = ctx.int_option("hidden");
  const auto probe_d = ctx.int_option("probe_d");
  const double ridge = ctx.option("ridge");
  torch::manual_seed(seed);
  torch::nn::Sequential body(torch::nn::Linear(784, hidden), torch::nn::ReLU(), torch::nn::Linear(hidden, hidden),
                             torch::nn::ReLU());
  torch::nn::Linear head(hidden, 10);
  std::vector<torch::Tensor> params = body->parameters();
  for (const auto& p : head->parameters()) params.push_back(p);
  torch::optim::SGD opt(params, torch::optim::SGDOptions(ctx.option("lr")).momentum(0.9));
  auto gen = at::detail::createCPUGenerator(seed * 7919 + 13);
  const auto n = d.x.size(0);
  const auto batch = ctx.int_option("batch");
  const auto epochs = ctx.int_option("epochs");
  const auto every = ctx.int_option("probe_every");
  auto features = [&](const torch::Tensor& x) {
    torch::NoGradGuard ng;
    body->eval();
    return body->forward(x);
  };
  auto head_pred = [&](const torch::Tensor& h) {
    torch::NoGradGuard ng;
    return head->forward(h).argmax(1);
  };
  json curve = {{"epoch", json::array()},
                {"network_test_acc", json::array()},
                {"probe_small_d_test_acc", json::array()},
                {"probe_full_d_test_acc", json::array()}};
  auto record = [&](std::int64_t epoch) {
    const auto h = features(d.x);
    const auto ht = features(d.x_test);
    const auto s = dg::representation_spectrum(h);
    curve["epoch"].push_back(epoch);
    curve["network_test_acc"].push_back(dg::probe_accuracy(head_pred(ht), d.y_test));
    for (const auto& [key, dd] : std::vector<std::pair<std::string, std::int64_t>>{{"probe_small_d_test_acc", probe_d},
                                                                                  {"probe_full_d_test_acc", hidden}}) {
      const auto p = dg::fit_spectral_probe(h, d.y_noisy, 10, s, dd, ridge);
      curve[key].push_back(dg::probe_accuracy(p.predict(ht, s), d.y_test));
    }
  };
  record(0);
  for (std::int64_t e = 1; e <= epochs; ++e) {
    progress(e - 1, epochs + 1, fmt::format("epoch {}", e));
    body->train();
    const auto order = torch::randperm(n, gen, torch::kInt64);
    for (std::int64_t s = 0; s < n; s += batch) {
      const auto idx = order.slice(0, s, std::min(n, s + batch));
      const auto loss =
          torch::nn::functional::cross_entropy(head->forward(body->forward(d.x.index_select(0, idx))), d.y_noisy.index_select(0, idx));
      SL_CHECK(std::isfinite(loss.item<double>()), DataError, "repro malignant-tail: the training loss is not finite at epoch ", e,
               "; lower --set lr");
      opt.zero_grad();
      loss.backward();
      opt.step();
    }
    if (e % every == 0 || e == epochs) record(e);
  }
  progress(epochs, epochs + 1, "spectral probe sweep");

  const auto h = features(d.x), hv = features(d.x_val), ht = features(d.x_test);
  const auto s = dg::representation_spectrum(h);
  const auto ds = d_grid(hidden, probe_d);
  std::vector<double> probe_test, probe_mem, probe_train_noisy, trunc_test, trunc_val, trunc_mem;
  for (auto dd : ds) {
    const auto p = dg::fit_spectral_probe(h, d.y_noisy, 10, s, dd, ridge);
    probe_test.push_back(dg::probe_accuracy(p.predict(ht, s), d.y_test));
    const auto ptrain = p.predict(h, s);
    probe_train_noisy.push_back(dg::probe_accuracy(ptrain, d.y_noisy));
    probe_mem.push_back(memorised_share(ptrain, d));
    trunc_test.push_back(dg::probe_accuracy(head_pred(dg::truncate_representation(ht, s, dd)), d.y_test));
    trunc_val.push_back(dg::probe_accuracy(head_pred(dg::truncate_representation(hv, s, dd)), d.y_val));
    trunc_mem.push_back(memorised_share(head_pred(dg::truncate_representation(h, s, dd)), d));
  }
  const auto best = static_cast<std::size_t>(std::max_element(trunc_val.begin(), trunc_val.end()) - trunc_val.begin());
  const auto at_probe_d = static_cast<std::size_t>(std::find(ds.begin(), ds.end(), probe_d) - ds.begin());
  const auto eig = s.eigenvalues;
  const double total = eig.sum().item<double>();
  std::vector<double> top_share;
  for (auto dd : ds) top_share.push_back(total > 0 ? eig.slice(0, 0, dd).sum().item<double>() / total : std::nan(""));
  json out = {{"ds", ds},
              {"corrupted", d.corrupted.sum().item<std::int64_t>()},
              {"probe_test_acc", probe_test},
              {"probe_train_noisy_acc", probe_train_noisy},
              {"probe_memorised", probe_mem},
              {"truncated_test_acc", trunc_test},
              {"truncated_val_acc", trunc_val},
              {"truncated_memorised", trunc_mem},
              {"variance_share_top_d", top_share},
              {"network_test_acc", dg::probe_accuracy(head_pred(ht), d.y_test)},
              {"network_memorised", memorised_share(head_pred(h), d)},
              {"network_train_noisy_acc", dg::probe_accuracy(head_pred(h), d.y_noisy)},
              {"d_val", ds[best]},
              {"truncated_test_acc_at_d_val", trunc_test[best]},
              {"probe_test_acc_at_probe_d", probe_test[at_probe_d]},
              {"probe_test_acc_at_full_d", probe_test.back()},
              {"probe_memorised_at_probe_d", probe_mem[at_probe_d]},
              {"probe_memorised_at_full_d", probe_mem.back()},
              {"curve", curve}};
  progress(epochs + 1, epochs + 1, "done");
  if (k == 0 && ctx.run) write_figures(*ctx.run, out);
  return out;
}

ReproOutcome summarise(const ReproContext& ctx, const std::vector<json>& rows) {
  auto mean = [](const std::vector<double>& v) {
    double s = 0;
    for (double x : v) s += x;
    return v.empty() ? std::nan("") : s / static_cast<double>(v.size());
  };
  ReproOutcome out;
  out.setup = {
      {"status", "diagnostic: the paper (arXiv 2603.02293) was withdrawn by its author; its claim is measured, not assumed"},
      {"data", fmt::format("the first {} Fashion-MNIST training images with {} % symmetric label noise (the last 10 % held out "
                           "as a noisy validation split), the first {} test images (clean)",
                           ctx.int_option("samples"), 100 * ctx.option("noise"), ctx.int_option("test_samples"))},
      {"model", fmt::format("MLP 784-{0}-{0}-10, ReLU, libtorch's default initialisation; representation = the second hidden "
                            "layer's output",
                            ctx.int_option("hidden"))},
      {"training", fmt::format("SGD lr {}, momentum 0.9, no weight decay, batch {}, {} epochs, cross-entropy on the noisy labels",
                               ctx.option("lr"), ctx.int_option("batch"), ctx.int_option("epochs"))},
      {"probe", fmt::format("ridge ({}) least squares on one-hot noisy labels over the top-d principal coordinates of the "
                            "training representation; probe_d = {}",
                            ctx.option("ridge"), ctx.int_option("probe_d"))},
      {"truncation", "the last layer reads mu + (h - mu) V_d V_d^T; d chosen by accuracy on the noisy validation split"}};
  auto col = [&](const std::string& key) { return per_seed(rows, key); };
  const auto net = col("network_test_acc"), probe = col("probe_test_acc_at_probe_d"), full = col("probe_test_acc_at_full_d"),
             trunc = col("truncated_test_acc_at_d_val"), mem_small = col("probe_memorised_at_probe_d"),
             mem_full = col("probe_memorised_at_full_d");
  std::vector<double> g_probe, g_trunc, g_d, g_mem;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    g_probe.push_back(probe[i] - net[i]);
    g_trunc.push_back(trunc[i] - net[i]);
    g_d.push_back(probe[i] - full[i]);
    g_mem.push_back(mem_full[i] - mem_small[i]);
  }
  for (const char* key : {"network_test_acc", "network_memorised", "network_train_noisy_acc", "probe_test_acc_at_probe_d",
                          "probe_test_acc_at_full_d", "probe_memorised_at_probe_d", "probe_memorised_at_full_d",
                          "truncated_test_acc_at_d_val", "d_val"})
    out.metrics[key] = seeds_json(col(key));
  out.metrics["probe_minus_network_test_acc"] = seeds_json(g_probe);
  out.metrics["truncated_minus_network_test_acc"] = seeds_json(g_trunc);
  out.metrics["probe_small_minus_full_d_test_acc"] = seeds_json(g_d);
  out.metrics["probe_memorised_full_minus_small_d"] = seeds_json(g_mem);
  out.checks = {
      make_check("probe test accuracy at d = probe_d - full network's (mean)", mean(g_probe), ">", 0),
      make_check("truncated network (d from the noisy validation split) - full network test accuracy (mean)", mean(g_trunc), ">", 0),
      make_check("probe test accuracy at d = probe_d - at d = H (mean)", mean(g_d), ">", 0),
      make_check("probe's memorised share of corrupted samples at d = H - at d = probe_d (mean)", mean(g_mem), ">", 0)};
  return out;
}

}  // namespace

ReproEntry make_malignant_tail_repro() {
  ReproEntry e;
  e.name = "malignant-tail";
  e.paper = "The Malignant Tail: spectral segregation of label noise in over-parameterized networks (Zice Wang; arXiv "
            "2603.02293, 2026; withdrawn by its author - run as a diagnostic)";
  e.claim = "Under label noise an SGD-trained network keeps the class signal in a few leading principal directions of its "
            "representation and the memorised noise in the tail: a linear probe on the top-d directions and the network "
            "with its tail truncated generalise better than the full network.";
  e.options = {{"samples", "training images (noisy labels; the last 10 % are the validation split)", 5000, 1000, true},
               {"test_samples", "test images (clean labels)", 10000, 1000, true},
               {"hidden", "width H of the two hidden layers", 256, 64, true},
               {"epochs", "training epochs", 80, 3, true},
               {"batch", "batch size", 128, 128, true},
               {"lr", "SGD learning rate", 0.02, 0.02, false},
               {"noise", "symmetric label-noise rate, in [0, 1)", 0.4, 0.4, false},
               {"probe_d", "the small d of the checks (the number of classes)", 10, 10, true},
               {"ridge", "ridge of the probe's least squares", 1e-3, 1e-3, false},
               {"probe_every", "epochs between probes during training", 10, 3, true}};
  e.run_seed = run_seed;
  e.summarise = summarise;
  return e;
}

}  // namespace stablelearn::experiments::repro
