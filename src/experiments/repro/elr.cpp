// repro elr: Liu, Niles-Weed, Razavian, Fernandez-Granda, "Early-Learning Regularization Prevents
// Memorization of Noisy Labels" (NeurIPS 2020; shared/specs/papers-19-35.md §25), the spec's
// smallest faithful experiment: Fashion-MNIST with 40 % and 80 % symmetric label noise
// (robust/label_noise.h) on the training images, clean test images; an MLP 784-512-512-10 trained
// with cross-entropy and with ELR (robust/elr.h; β = 0.7, λ = 3, the reference's CIFAR-10
// values) by SGD (lr 0.02, momentum 0.9, weight decay 1e-3, batch 128: the reference's optimiser,
// without its learning-rate schedule). After every epoch: the clean test accuracy and, on the
// training set, the share of corrupted samples predicted as their wrong label (memorised) and as
// their clean label.
//
// Checks, fixed from the spec before any run (means over seeds):
//   ELR's final clean test accuracy − CE's, at 40 % noise            > 0
//   ELR's final clean test accuracy − CE's, at 80 % noise            > 0
//   CE memorises late (40 %): its memorised share at the last epoch minus at the epoch of its best
//   test accuracy                                                    >= 0.10
//   ELR does not (40 %): ELR's final memorised share / CE's          <= 0.5
#include <map>
#include <optional>

#include <fmt/format.h>
#include <torch/torch.h>

#include "entries.h"
#include "stablelearn/core/error.h"
#include "stablelearn/core/run.h"
#include "stablelearn/data/cl_streams.h"
#include "stablelearn/report/svg.h"
#include "stablelearn/robust/elr.h"
#include "stablelearn/robust/label_noise.h"

namespace stablelearn::experiments::repro {

using nlohmann::json;

namespace {

struct Data {
  torch::Tensor x, y, x_test, y_test;  // flattened float32 images, int64 clean labels
};

Data load(const ReproContext& ctx) {
  const auto d = data::load_fashion_mnist();
  const auto n = std::min<std::int64_t>(ctx.int_option("samples"), d.train.size());
  const auto m = std::min<std::int64_t>(ctx.int_option("test_samples"), d.test.size());
  return {d.train.images.slice(0, 0, n).reshape({n, -1}), d.train.labels.slice(0, 0, n),
          d.test.images.slice(0, 0, m).reshape({m, -1}), d.test.labels.slice(0, 0, m)};
}

struct Curve {
  std::vector<double> test_acc, memorised, corrected;
};

Curve train(const ReproContext& ctx, const Data& d, const robust::NoisyLabels& noisy, bool elr, std::uint64_t seed) {
  torch::manual_seed(seed);
  const auto hidden = ctx.int_option("hidden");
  torch::nn::Sequential net(torch::nn::Linear(784, hidden), torch::nn::ReLU(), torch::nn::Linear(hidden, hidden),
                            torch::nn::ReLU(), torch::nn::Linear(hidden, 10));
  torch::optim::SGD opt(net->parameters(),
                        torch::optim::SGDOptions(ctx.option("lr")).momentum(0.9).weight_decay(ctx.option("weight_decay")));
  const auto n = d.x.size(0);
  std::optional<robust::ElrLoss> elr_loss;
  if (elr) elr_loss.emplace(n, 10, robust::ElrOptions{ctx.option("beta"), ctx.option("lambda")});
  auto gen = at::detail::createCPUGenerator(seed * 7919 + 11);  // the same batches for CE and ELR
  const auto batch = ctx.int_option("batch");
  Curve c;
  auto predict = [&](const torch::Tensor& x) {
    torch::NoGradGuard ng;
    return net->forward(x).argmax(1);
  };
  for (std::int64_t e = 0; e < ctx.int_option("epochs"); ++e) {
    net->train();
    const auto order = torch::randperm(n, gen, torch::kInt64);
    for (std::int64_t s = 0; s < n; s += batch) {
      const auto idx = order.slice(0, s, std::min(n, s + batch));
      const auto z = net->forward(d.x.index_select(0, idx));
      const auto y = noisy.labels.index_select(0, idx);
      const auto loss = elr ? (*elr_loss)(z, y, idx) : torch::nn::functional::cross_entropy(z, y);
      SL_CHECK(std::isfinite(loss.item<double>()), DataError, "repro elr: the training loss is not finite at epoch ", e,
               " (", elr ? "ELR" : "CE", "); lower --set lr");
      opt.zero_grad();
      loss.backward();
      opt.step();
    }
    net->eval();
    c.test_acc.push_back(predict(d.x_test).eq(d.y_test).to(torch::kFloat64).mean().item<double>());
    const auto m = robust::memorisation(predict(d.x), noisy);
    c.memorised.push_back(m.memorised);
    c.corrected.push_back(m.corrected);
  }
  return c;
}

std::vector<double> rates(const ReproContext& ctx) { return {ctx.option("rate_low"), ctx.option("rate_high")}; }

std::string rate_key(double r) { return fmt::format("{}", static_cast<int>(std::lround(100 * r))); }

void write_figure(const RunDir& run, const json& row, const std::vector<double>& rs) {
  static const char* colours[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e"};
  for (const char* what : {"test_acc", "memorised"}) {
    report::SvgPlot plot(720, 440);
    const auto epochs = row.at(rate_key(rs[0])).at("ce").at(what).size();
    plot.set_range(1, static_cast<double>(std::max<std::size_t>(epochs, 2)), 0, 1);
    plot.title(std::string(what) == "test_acc" ? "ELR vs cross-entropy: clean test accuracy (seed 0)"
                                               : "ELR vs cross-entropy: corrupted training samples fitted to their wrong label (seed 0)");
    plot.labels("epoch", std::string(what) == "test_acc" ? "clean test accuracy" : "memorised share of corrupted samples");
    int k = 0;
    for (double r : rs)
      for (const char* m : {"ce", "elr"}) {
        std::vector<std::pair<double, double>> pts;
        const auto& v = row.at(rate_key(r)).at(m).at(what);
        for (std::size_t e = 0; e < v.size(); ++e) pts.emplace_back(static_cast<double>(e + 1), v[e].get<double>());
        const auto* col = colours[k++ % 4];
        plot.polyline(pts, col, 2.0);
        plot.legend(fmt::format("{} at {} % noise", std::string(m) == "ce" ? "CE" : "ELR", rate_key(r)), col);
      }
    run.write_text(std::string("elr_") + what + ".svg", plot.str());
  }
}

json run_seed(const ReproContext& ctx, std::int64_t k) {
  const auto d = load(ctx);
  const auto seed = ctx.seed + static_cast<std::uint64_t>(k);
  const auto progress = seed_progress(ctx, k);
  json out = json::object();
  const auto rs = rates(ctx);
  std::int64_t done = 0;
  for (double r : rs) {
    robust::LabelNoiseOptions o;
    o.kind = "symmetric";
    o.rate = r;
    o.seed = seed * 31 + 5;
    const auto noisy = robust::corrupt_labels(d.y, 10, o);
    json per = {{"corrupted", noisy.count()}};
    for (const bool elr : {false, true}) {
      progress(done++, 4, fmt::format("{} at {} % noise", elr ? "ELR" : "CE", rate_key(r)));
      const auto c = train(ctx, d, noisy, elr, seed);
      per[elr ? "elr" : "ce"] = {{"test_acc", c.test_acc}, {"memorised", c.memorised}, {"corrected", c.corrected}};
    }
    out[rate_key(r)] = per;
  }
  progress(4, 4, "done");
  if (k == 0 && ctx.run) write_figure(*ctx.run, out, rs);
  return out;
}

ReproOutcome summarise(const ReproContext& ctx, const std::vector<json>& rows) {
  const auto rs = rates(ctx);
  auto mean = [](const std::vector<double>& v) {
    double s = 0;
    for (double x : v) s += x;
    return v.empty() ? std::nan("") : s / static_cast<double>(v.size());
  };
  ReproOutcome out;
  out.setup = {{"data", fmt::format("the first {} Fashion-MNIST training images with symmetric label noise ({} % and {} %), "
                                    "the first {} test images (clean)",
                                    ctx.int_option("samples"), rate_key(rs[0]), rate_key(rs[1]), ctx.int_option("test_samples"))},
               {"model", fmt::format("MLP 784-{0}-{0}-10, ReLU, libtorch's default initialisation", ctx.int_option("hidden"))},
               {"training", fmt::format("SGD lr {}, momentum 0.9, weight decay {}, batch {}, {} epochs; ELR beta {}, lambda {}",
                                        ctx.option("lr"), ctx.option("weight_decay"), ctx.int_option("batch"),
                                        ctx.int_option("epochs"), ctx.option("beta"), ctx.option("lambda"))},
               {"memorised", "share of the corrupted training samples the model predicts as their (wrong) training label"}};
  std::map<std::string, std::vector<double>> gap, late, ratio;
  for (double r : rs) {
    const auto key = rate_key(r);
    std::vector<double> ce_final, elr_final, ce_mem, elr_mem, ce_best, ce_late;
    for (const auto& row : rows) {
      const auto& ce = row.at(key).at("ce");
      const auto& elr = row.at(key).at("elr");
      const auto acc = ce.at("test_acc").get<std::vector<double>>();
      const auto mem = ce.at("memorised").get<std::vector<double>>();
      const auto best = static_cast<std::size_t>(std::max_element(acc.begin(), acc.end()) - acc.begin());
      ce_final.push_back(acc.back());
      elr_final.push_back(elr.at("test_acc").back().get<double>());
      ce_mem.push_back(mem.back());
      elr_mem.push_back(elr.at("memorised").back().get<double>());
      ce_best.push_back(acc[best]);
      ce_late.push_back(mem.back() - mem[best]);
      gap[key].push_back(elr_final.back() - ce_final.back());
      ratio[key].push_back(ce_mem.back() > 0 ? elr_mem.back() / ce_mem.back() : std::nan(""));
    }
    late[key] = ce_late;
    out.metrics["ce_final_test_acc_" + key] = seeds_json(ce_final);
    out.metrics["elr_final_test_acc_" + key] = seeds_json(elr_final);
    out.metrics["ce_best_test_acc_" + key] = seeds_json(ce_best);
    out.metrics["ce_final_memorised_" + key] = seeds_json(ce_mem);
    out.metrics["elr_final_memorised_" + key] = seeds_json(elr_mem);
    out.metrics["ce_memorised_rise_after_best_epoch_" + key] = seeds_json(ce_late);
    out.metrics["elr_minus_ce_final_test_acc_" + key] = seeds_json(gap[key]);
    out.metrics["elr_over_ce_final_memorised_" + key] = seeds_json(ratio[key]);
  }
  const auto lo = rate_key(rs[0]), hi = rate_key(rs[1]);
  out.checks = {make_check("ELR - CE final clean test accuracy, " + lo + " % noise (mean)", mean(gap[lo]), ">", 0),
                make_check("ELR - CE final clean test accuracy, " + hi + " % noise (mean)", mean(gap[hi]), ">", 0),
                make_check("CE memorised share, last epoch minus epoch of best test accuracy, " + lo + " % (mean)",
                           mean(late[lo]), ">=", 0.10),
                make_check("ELR / CE final memorised share, " + lo + " % (mean)", mean(ratio[lo]), "<=", 0.5)};
  return out;
}

}  // namespace

ReproEntry make_elr_repro() {
  ReproEntry e;
  e.name = "elr";
  e.paper = "Early-Learning Regularization Prevents Memorization of Noisy Labels (Liu, Niles-Weed, Razavian, "
            "Fernandez-Granda; NeurIPS 2020)";
  e.claim = "Under label noise a network first fits the clean labels and then memorises the wrong ones; the early-learning "
            "regulariser keeps it from memorising them and ends with a higher clean test accuracy than cross-entropy.";
  e.options = {{"samples", "training images (noisy labels)", 10000, 1000, true},
               {"test_samples", "test images (clean labels)", 10000, 1000, true},
               {"hidden", "width of the two hidden layers", 512, 64, true},
               {"epochs", "training epochs", 30, 3, true},
               {"batch", "batch size", 128, 128, true},
               {"lr", "SGD learning rate", 0.02, 0.02, false},
               {"weight_decay", "SGD weight decay", 1e-3, 1e-3, false},
               {"beta", "ELR target momentum", 0.7, 0.7, false},
               {"lambda", "ELR weight", 3.0, 3.0, false},
               {"rate_low", "the lower noise rate", 0.4, 0.4, false},
               {"rate_high", "the higher noise rate", 0.8, 0.8, false}};
  e.run_seed = run_seed;
  e.summarise = summarise;
  return e;
}

}  // namespace stablelearn::experiments::repro
