// repro lcia: Qiao, Zhang, Tan, Qu, Ding, Xie, "Large Continual Instruction Assistant" (ICML 2025,
// arXiv 2410.10868; shared/specs/papers-19-35.md §21): EMA merging with the automatic balance
// weight (DEMA) and instruction-based adapter reuse (continual/lcia.h), on the spec's smallest
// faithful CPU experiment extended to a stream in which tasks recur.
//
// Data: Fashion-MNIST. Domains: d = 0 the images as they are, d ≥ 1 a seeded pixel permutation
// (data::permute_pixels). Each domain has one instruction, "classify the clothing item in the image"
// for d = 0 and "classify the clothing item in the image whose pixels are shuffled by permutation
// <name>" for d ≥ 1 (name = alpha, bravo, ...): a recurrence repeats the instruction, two domains'
// instructions have TF-IDF similarity < 0.9. The stream is a fixed order of domains with recurrences,
// kDomains (its first `tasks` entries); every occurrence of a domain trains on the domain's first
// train_per_task training images and is evaluated on its first test_per_task test images.
// Backbone: an MLP 784-hidden-hidden-10 (models::Classifier) pretrained with SGD (lr 0.05, momentum
// 0.9, batch 128) on `pretrain_samples` training images after the stream's, unpermuted, then frozen;
// LoRA (rank `rank`, scale 1) on both hidden layers and the output layer trainable
// (models::AdaptedClassifier); "an adapter" is the LoRA factors and the head.
// Methods (continual::lcia::Learner, SGD lr `lr`, batch 64, `epochs` epochs per task):
//   finetune   one adapter, no merging;
//   ema        one adapter, EMA merging with the fixed weight α = 0.01 (θ ← θ* at each task's end);
//   dema       one adapter, EMA merging with the automatic balance weight (fallback 0.01);
//   full       DEMA + adapter reuse: a new adapter for a task whose instruction's codebook
//              similarity stays below 0.9, the most similar adapter otherwise; test samples routed by
//              their task's instruction.
// Metrics: the accuracy matrix R[t][k] (after task t on the test set of stream position k); final
// ACC = mean_k R[T−1][k]; forgetting = mean over k < T−1 of max_{k ≤ t < T−1} R[t][k] − R[T−1][k];
// plasticity = mean_k R[k][k]; adapters kept.
//
// Checks, fixed from the paper's claim before any run (means over seeds unless said otherwise):
//   precondition          full: final ACC ≥ 0.5 (5× chance)
//   DEMA vs fine-tuning   forgetting(finetune) − forgetting(dema) > 0; ACC(dema) − ACC(finetune) ≥ 0
//   DEMA vs fixed EMA     plasticity(dema) − plasticity(ema) > 0; ACC(dema) − ACC(ema) ≥ 0
//   full vs EMA           forgetting(full) − forgetting(dema) ≤ 0, − forgetting(ema) ≤ 0;
//                         ACC(full) − ACC(dema) ≥ 0, − ACC(ema) ≥ 0
//   adapters              max over seeds of the adapters kept < tasks; ≤ distinct instructions;
//                         min over seeds ≥ distinct instructions (every recurrence reused, every new
//                         domain a new adapter)
#include <set>

#include <fmt/format.h>
#include <torch/torch.h>

#include "entries.h"
#include "stablelearn/continual/lcia.h"
#include "stablelearn/continual/metrics.h"
#include "stablelearn/core/error.h"
#include "stablelearn/core/run.h"
#include "stablelearn/data/cl_streams.h"
#include "stablelearn/models/adapters.h"
#include "stablelearn/models/classifier.h"
#include "stablelearn/report/svg.h"

namespace stablelearn::experiments::repro {

using nlohmann::json;
namespace lc = stablelearn::continual::lcia;
namespace F = torch::nn::functional;

namespace {

/// The stream's domains in order: five new domains, five recurrences.
const std::vector<std::int64_t> kDomains = {0, 1, 0, 2, 1, 3, 0, 4, 2, 3};
const std::vector<std::string> kNames = {"alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"};

const std::vector<std::string>& method_keys() {
  static const std::vector<std::string> m = {"finetune", "ema", "dema", "full"};
  return m;
}

std::string instruction(std::int64_t d) {
  return d == 0 ? std::string("classify the clothing item in the image")
                : fmt::format("classify the clothing item in the image whose pixels are shuffled by permutation {}",
                              kNames[static_cast<std::size_t>(d - 1)]);
}

std::vector<std::int64_t> stream(const ReproContext& ctx) {
  const auto T = ctx.int_option("tasks");
  SL_CHECK(T >= 2 && T <= static_cast<std::int64_t>(kDomains.size()), ConfigError, "lcia.tasks: between 2 and ", kDomains.size(),
           ", got ", T);
  return {kDomains.begin(), kDomains.begin() + T};
}

std::int64_t distinct_domains(const std::vector<std::int64_t>& s) { return static_cast<std::int64_t>(std::set<std::int64_t>(s.begin(), s.end()).size()); }

models::AdapterOptions lora_options(const ReproContext& ctx) {
  models::AdapterOptions a;
  a.kind = "lora";
  a.rank = ctx.int_option("rank");
  a.freeze = true;
  a.train_head = true;
  return a;
}

models::Classifier pretrain(const ReproContext& ctx, const data::ImageDataset& d, std::uint64_t seed) {
  torch::manual_seed(derive_seed(static_cast<std::int64_t>(seed), 0, 740));
  models::ClassifierOptions o;
  o.hidden = {ctx.int_option("hidden"), ctx.int_option("hidden")};
  models::Classifier m(o);
  const auto start = ctx.int_option("train_per_task"), n = ctx.int_option("pretrain_samples");
  SL_CHECK(start + n <= d.train.size(), ConfigError, "lcia.pretrain_samples: ", n, " after the stream's ", start, " exceed the ",
           d.train.size(), " training images");
  const auto x = d.train.images.slice(0, start, start + n), y = d.train.labels.slice(0, start, start + n);
  std::vector<torch::Tensor> w = m->weights();
  for (auto& p : w) p.set_requires_grad(true);
  torch::optim::SGD opt(w, torch::optim::SGDOptions(0.05).momentum(0.9));
  auto g = at::detail::createCPUGenerator(derive_seed(static_cast<std::int64_t>(seed), 0, 741));
  for (std::int64_t e = 0; e < ctx.int_option("pretrain_epochs"); ++e) {
    const auto perm = torch::randperm(n, g, torch::TensorOptions().dtype(torch::kInt64));
    for (std::int64_t i = 0; i < n; i += 128) {
      const auto idx = perm.slice(0, i, std::min(n, i + 128));
      const auto loss = F::cross_entropy(m->forward(x.index_select(0, idx)), y.index_select(0, idx));
      opt.zero_grad();
      loss.backward();
      opt.step();
    }
  }
  for (auto& p : w) {
    p.mutable_grad() = torch::Tensor();
    p.set_requires_grad(false);
  }
  return m;
}

lc::LciaOptions method_options(const ReproContext& ctx, const std::string& key) {
  lc::LciaOptions o;
  o.merge = key == "finetune" ? "none" : key == "ema" ? "fixed" : "auto";
  o.reuse = key == "full";
  o.fallback = 0.01;
  o.threshold = 0.9;
  o.epochs = ctx.int_option("epochs");
  o.batch = 64;
  o.lr = ctx.option("lr");
  return o;
}

struct DomainData {
  torch::Tensor xtr, ytr, xte, yte;
};

json run_method(const ReproContext& ctx, const std::string& key, models::ClassifierImpl& base, const std::vector<DomainData>& dom,
                const std::vector<std::int64_t>& s, std::uint64_t seed, const std::function<void(std::int64_t)>& tick) {
  auto gen = at::detail::createCPUGenerator(derive_seed(static_cast<std::int64_t>(seed), 0, 742));
  models::AdaptedClassifier net(base, lora_options(ctx), gen);
  auto fresh = [&]() { return models::AdaptedClassifier(base, lora_options(ctx), gen).trainable(); };
  lc::Learner learner(method_options(ctx, key), [&net](const torch::Tensor& x, const std::vector<torch::Tensor>& w) { return net.forward_trainable(x, w); },
                      fresh, derive_seed(static_cast<std::int64_t>(seed), 0, 743));
  const auto T = static_cast<std::int64_t>(s.size());
  std::vector<std::vector<double>> R(static_cast<std::size_t>(T));
  json choices = json::array();
  std::vector<double> alpha;
  for (std::int64_t t = 0; t < T; ++t) {
    const auto& d = dom[static_cast<std::size_t>(s[static_cast<std::size_t>(t)])];
    const auto sel = learner.learn_task(d.xtr, d.ytr, {instruction(s[static_cast<std::size_t>(t)])});
    choices.push_back({{"adapter", sel.adapter}, {"reused", sel.reused}, {"max_similarity", sel.max_similarity}});
    double a = 0;
    for (double v : learner.last_alphas()) a += v / double(learner.last_alphas().size());
    alpha.push_back(learner.last_alphas().empty() ? 0.0 : a);
    for (std::int64_t k = 0; k <= t; ++k) {
      const auto dk = s[static_cast<std::size_t>(k)];
      const auto& e = dom[static_cast<std::size_t>(dk)];
      R[static_cast<std::size_t>(t)].push_back(learner.predict(e.xte, {instruction(dk)}).eq(e.yte).to(torch::kFloat64).mean().item<double>());
    }
    tick(t + 1);
  }
  const auto mm = continual::matrix_metrics(R);  // R is lower-triangular: seen tasks only
  return {{"final_accuracy", mm.acc}, {"forgetting", mm.forgetting_max}, {"plasticity", mm.plasticity}, {"adapters", learner.adapters()},
          {"accuracy_matrix", R}, {"choices", choices}, {"mean_alpha", alpha}};
}

json run_seed(const ReproContext& ctx, std::int64_t k) {
  const auto seed = ctx.seed + static_cast<std::uint64_t>(k);
  const auto progress = seed_progress(ctx, k);
  const auto s = stream(ctx);
  const auto T = static_cast<std::int64_t>(s.size());
  const std::int64_t total = T * static_cast<std::int64_t>(method_keys().size());
  progress(0, total, "loading Fashion-MNIST and pretraining the backbone");
  const auto data = data::load_fashion_mnist();
  const auto ntr = ctx.int_option("train_per_task"), nte = ctx.int_option("test_per_task");
  SL_CHECK(ntr <= data.train.size() && nte <= data.test.size(), ConfigError, "lcia.train_per_task / test_per_task: at most ",
           data.train.size(), " / ", data.test.size());
  auto base = pretrain(ctx, data, seed);
  std::vector<DomainData> dom;
  const auto domains = *std::max_element(s.begin(), s.end()) + 1;
  for (std::int64_t d = 0; d < domains; ++d) {
    DomainData dd{data.train.images.slice(0, 0, ntr), data.train.labels.slice(0, 0, ntr), data.test.images.slice(0, 0, nte),
                  data.test.labels.slice(0, 0, nte)};
    if (d > 0) {
      auto g = at::detail::createCPUGenerator(derive_seed(static_cast<std::int64_t>(seed), d, 744));
      const auto perm = torch::randperm(28 * 28, g, torch::TensorOptions().dtype(torch::kInt64));
      dd.xtr = data::permute_pixels(dd.xtr, perm);
      dd.xte = data::permute_pixels(dd.xte, perm);
    }
    dom.push_back(dd);
  }
  json methods = json::object();
  std::int64_t done = 0;
  for (const auto& key : method_keys()) {
    methods[key] = run_method(ctx, key, *base, dom, s, seed, [&](std::int64_t t) { progress(done + t, total, fmt::format("{}, task {}", key, t)); });
    done += T;
  }
  return {{"methods", methods}, {"stream", s}};
}

void write_figure(const RunDir& run, const std::vector<json>& rows, std::int64_t T) {
  const std::vector<std::string> colours = {"#7f7f7f", "#1f77b4", "#ff7f0e", "#d62728"};
  report::SvgPlot plot(720, 440);
  plot.set_range(0.5, double(T) + 0.5, 0, 1.05);
  plot.title("Final accuracy on each stream position (mean over seeds)");
  plot.labels("stream position (task)", "accuracy after the last task");
  for (std::size_t m = 0; m < method_keys().size(); ++m) {
    std::vector<std::pair<double, double>> pts;
    for (std::int64_t k = 0; k < T; ++k)
      pts.emplace_back(double(k + 1), mean(per_seed_at(rows, fmt::format("/methods/{}/accuracy_matrix/{}/{}", method_keys()[m], T - 1, k))));
    plot.polyline(pts, colours[m], 2.0);
    for (const auto& [x, y] : pts) plot.marker(x, y, colours[m], 3);
    plot.legend(method_keys()[m], colours[m]);
  }
  run.write_text("lcia_final_accuracy.svg", plot.str());
}

ReproOutcome summarise(const ReproContext& ctx, const std::vector<json>& rows) {
  const auto s = stream(ctx);
  const auto T = static_cast<std::int64_t>(s.size());
  const auto D = distinct_domains(s);
  ReproOutcome out;
  out.setup = {
      {"data", fmt::format("Fashion-MNIST; domain 0 = the images, domain d >= 1 = a seeded pixel permutation; stream of {} tasks over "
                           "domains [{}] ({} distinct, {} recurrences); {} training / {} test images per task (the first of each set)",
                           T, fmt::join(s, ", "), D, T - D, ctx.int_option("train_per_task"), ctx.int_option("test_per_task"))},
      {"instructions", fmt::format("one per domain: \"{}\" (d = 0), \"{}\" (d = 1, names alpha, bravo, ... for later domains)",
                                   instruction(0), instruction(1))},
      {"backbone", fmt::format("MLP 784-{0}-{0}-10 pretrained (SGD lr 0.05 momentum 0.9 batch 128, {1} epochs) on {2} unpermuted training "
                               "images after the stream's, frozen; LoRA rank {3} (scale 1) on the two hidden layers and the output layer "
                               "trainable; an adapter = the LoRA factors + the head",
                               ctx.int_option("hidden"), ctx.int_option("pretrain_epochs"), ctx.int_option("pretrain_samples"),
                               ctx.int_option("rank"))},
      {"methods", fmt::format("finetune (one adapter, no merging), ema (one adapter, EMA alpha = 0.01), dema (one adapter, LCIA's automatic "
                              "balance weight, fallback 0.01), full (dema + adapter reuse: TF-IDF codebook similarity, threshold 0.9, test "
                              "samples routed by their instruction); SGD lr {}, batch 64, {} epochs per task",
                              ctx.option("lr"), ctx.int_option("epochs"))}};
  std::map<std::string, double> acc, forg, plast;
  for (const auto& m : method_keys()) {
    const auto a = per_seed_at(rows, "/methods/" + m + "/final_accuracy");
    const auto f = per_seed_at(rows, "/methods/" + m + "/forgetting");
    const auto p = per_seed_at(rows, "/methods/" + m + "/plasticity");
    put_seed_stats(out, "final_accuracy_" + m, a);
    put_seed_stats(out, "forgetting_" + m, f);
    out.metrics["plasticity_" + m] = seeds_json(p);
    out.metrics["plasticity_" + m + "_mean"] = finite_or_null(mean(p));
    out.metrics["adapters_" + m] = seeds_json(per_seed_at(rows, "/methods/" + m + "/adapters"));
    acc[m] = mean(a);
    forg[m] = mean(f);
    plast[m] = mean(p);
  }
  const auto ad = per_seed_at(rows, "/methods/full/adapters");
  const double ad_max = *std::max_element(ad.begin(), ad.end()), ad_min = *std::min_element(ad.begin(), ad.end());
  out.metrics["tasks"] = T;
  out.metrics["distinct_instructions"] = D;
  out.checks.push_back(make_check("precondition, the full method learns: final ACC (mean; 5x chance)", acc["full"], ">=", 0.5));
  out.checks.push_back(make_check("DEMA forgets less than fine-tuning: forgetting(finetune) - forgetting(dema) (mean)",
                                  forg["finetune"] - forg["dema"], ">", 0.0));
  out.checks.push_back(make_check("DEMA's final ACC at least fine-tuning's: ACC(dema) - ACC(finetune) (mean)", acc["dema"] - acc["finetune"], ">=", 0.0));
  out.checks.push_back(make_check("DEMA is more plastic than fixed EMA: plasticity(dema) - plasticity(ema) (mean of the accuracy just after "
                                  "each task)",
                                  plast["dema"] - plast["ema"], ">", 0.0));
  out.checks.push_back(make_check("DEMA's final ACC at least fixed EMA's: ACC(dema) - ACC(ema) (mean)", acc["dema"] - acc["ema"], ">=", 0.0));
  out.checks.push_back(make_check("full method forgets no more than DEMA: forgetting(full) - forgetting(dema) (mean)", forg["full"] - forg["dema"], "<=", 0.0));
  out.checks.push_back(make_check("full method forgets no more than fixed EMA: forgetting(full) - forgetting(ema) (mean)", forg["full"] - forg["ema"], "<=", 0.0));
  out.checks.push_back(make_check("full method's final ACC at least DEMA's: ACC(full) - ACC(dema) (mean)", acc["full"] - acc["dema"], ">=", 0.0));
  out.checks.push_back(make_check("full method's final ACC at least fixed EMA's: ACC(full) - ACC(ema) (mean)", acc["full"] - acc["ema"], ">=", 0.0));
  out.checks.push_back(make_check(fmt::format("adapters kept by the full method (max over seeds) < tasks ({})", T), ad_max, "<", double(T)));
  out.checks.push_back(make_check(fmt::format("every recurrence reuses its adapter: adapters kept (max over seeds) <= distinct instructions ({})", D),
                                  ad_max, "<=", double(D)));
  out.checks.push_back(make_check(fmt::format("every new domain gets its own adapter: adapters kept (min over seeds) >= distinct instructions ({})", D),
                                  ad_min, ">=", double(D)));
  if (ctx.run) write_figure(*ctx.run, rows, T);
  return out;
}

}  // namespace

ReproEntry make_lcia_repro() {
  ReproEntry e;
  e.name = "lcia";
  e.paper = "Large Continual Instruction Assistant (Qiao, Zhang, Tan, Qu, Ding, Xie, ICML 2025, arXiv 2410.10868)";
  e.claim = "EMA merging with an automatically balanced weight (DEMA) forgets less than fine-tuning and is more plastic than a fixed EMA "
            "weight, and with instruction-based adapter reuse (reuse the adapter whose instruction codebook is similar, else train a new "
            "one) the full method forgets less and is more accurate than EMA alone while keeping fewer adapters than tasks.";
  e.options = {{"tasks", "tasks of the stream (the first of 0,1,0,2,1,3,0,4,2,3: domains, 0 = unpermuted)", 10, 6, true},
               {"train_per_task", "training images per task", 3000, 500, true},
               {"test_per_task", "test images per task", 1000, 300, true},
               {"pretrain_samples", "unpermuted training images of the backbone's pretraining (after the stream's)", 20000, 2000, true},
               {"pretrain_epochs", "pretraining epochs", 3, 1, true},
               {"hidden", "width of the MLP's two hidden layers", 256, 128, true},
               {"rank", "LoRA rank", 8, 8, true},
               {"epochs", "epochs per task", 2, 1, true},
               {"lr", "SGD learning rate of the adapters", 0.05, 0.05, false}};
  e.run_seed = run_seed;
  e.summarise = summarise;
  return e;
}

}  // namespace stablelearn::experiments::repro
