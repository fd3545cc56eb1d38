// repro stableun: Wu, Liu, Gao, Wang, Ding, "Beyond Sharp Minima: Robust LLM Unlearning via
// Feedback-Guided Multi-Point Optimization" (arXiv 2509.20230; shared/specs/papers-01-18.md §2),
// the spec's smallest faithful experiment: an MLP 784-256-256-10 (models/classifier.h) trained on
// Fashion-MNIST by Adam (lr 1e-3, batch 128, 2 epochs); forget set = every training image of one
// class, retain set = the rest; unlearning (unlearn/unlearn.h) by GA+GD, NPO+GD (β = 0.1) and
// StableUN(NPO) (ρ = 0.05, α = η), by SGD (lr 1e-3) on batches of 128 forget and 128 retain images
// from the same trained weights, each until its accuracy on the forget training images is ≈ 0
// (≤ 0.01, checked every 5 steps; at most 200 steps: the spec's "matched forget accuracy"; GA's
// ascent runs away and overflows within 90 steps at this rate if it is not stopped; a method whose
// loss overflows first stops there with its last finite weights and is reported as diverged); then the relearning attack (Adam lr 1e-3 on
// 20 forget-class training images, 50 full-batch steps; forget-class test accuracy after every
// step, area under that curve) and the flatness probe (largest |λ| of the Hessian of the
// cross-entropy on the forget class's training images, by Lanczos).
//
// Checks, fixed from the issue text before any run (means over seeds):
//   every method's forget-class test accuracy                          <= 0.1 (chance, 10 classes)
//   every method's retain test accuracy drop from the trained model     <= 0.02
//   StableUN's relearning AUC − GA's, − NPO's                           < 0
//   StableUN's |λ|max of the forget loss − GA's, − NPO's                 < 0
#include <chrono>
#include <cmath>
#include <numeric>

#include <fmt/format.h>
#include <torch/torch.h>

#include "entries.h"
#include "stablelearn/core/error.h"
#include "stablelearn/core/run.h"
#include "stablelearn/data/cl_streams.h"
#include "stablelearn/models/classifier.h"
#include "stablelearn/report/svg.h"
#include "stablelearn/unlearn/unlearn.h"

namespace stablelearn::experiments::repro {

using nlohmann::json;

namespace {

const char* const kMethods[] = {"ga", "npo", "stableun"};

json run_seed(const ReproContext& ctx, std::int64_t k) {
  const auto seed = ctx.seed + static_cast<std::uint64_t>(k);
  const auto progress = seed_progress(ctx, k);
  progress(0, 5, "training the classifier");
  const auto d = data::load_fashion_mnist();
  const auto n = std::min<std::int64_t>(ctx.int_option("samples"), d.train.size());
  const auto m = std::min<std::int64_t>(ctx.int_option("test_samples"), d.test.size());
  const auto x = d.train.images.slice(0, 0, n), y = d.train.labels.slice(0, 0, n);
  const auto xt = d.test.images.slice(0, 0, m), yt = d.test.labels.slice(0, 0, m);
  const auto c = ctx.int_option("forget_class");
  SL_CHECK(c >= 0 && c < 10, ConfigError, "repro stableun: forget_class = ", c, ": expected a class in 0..9");

  torch::manual_seed(seed);
  models::ClassifierOptions mo;
  mo.kind = "mlp";
  mo.hidden = {ctx.int_option("hidden"), ctx.int_option("hidden")};
  models::Classifier model(mo);
  {
    torch::optim::Adam opt(model->parameters(), torch::optim::AdamOptions(ctx.option("train_lr")));
    auto gen = at::detail::createCPUGenerator(seed * 7919 + 3);
    const auto batch = ctx.int_option("batch");
    for (std::int64_t e = 0; e < ctx.int_option("epochs"); ++e) {
      const auto order = torch::randperm(n, gen, torch::kInt64);
      for (std::int64_t s = 0; s < n; s += batch) {
        const auto idx = order.slice(0, s, std::min(n, s + batch));
        opt.zero_grad();
        torch::nn::functional::cross_entropy(model->forward(x.index_select(0, idx)), y.index_select(0, idx)).backward();
        opt.step();
      }
    }
  }
  std::vector<torch::Tensor> w0;
  for (const auto& t : model->weights()) w0.push_back(t.detach().clone());
  const unlearn::LogitsFn f = [&model](const torch::Tensor& in, const std::vector<torch::Tensor>& w) {
    return model->forward(in, w);
  };

  const auto fmask = y.eq(c), tmask = yt.eq(c);
  unlearn::UnlearnData ud{x.index({fmask}), y.index({fmask}), x.index({fmask.logical_not()}), y.index({fmask.logical_not()})};
  const auto xf_t = xt.index({tmask}), yf_t = yt.index({tmask});
  const auto xr_t = xt.index({tmask.logical_not()}), yr_t = yt.index({tmask.logical_not()});
  SL_CHECK(ud.x_forget.size(0) > ctx.int_option("attack_samples") && xf_t.size(0) > 0, DataError, "repro stableun: class ", c,
           " has ", ud.x_forget.size(0), " training and ", xf_t.size(0), " test images; raise --set samples");
  // The attacker's examples: attack_samples forget-class training images drawn with the seed.
  auto agen = at::detail::createCPUGenerator(seed * 104729 + 17);
  const auto aidx = torch::randperm(ud.x_forget.size(0), agen, torch::kInt64).slice(0, 0, ctx.int_option("attack_samples"));
  const auto xa = ud.x_forget.index_select(0, aidx), ya = ud.y_forget.index_select(0, aidx);
  const auto probe_n = std::min<std::int64_t>(ctx.int_option("probe_samples"), ud.x_forget.size(0));
  const auto xp = ud.x_forget.slice(0, 0, probe_n), yp = ud.y_forget.slice(0, 0, probe_n);
  unlearn::RelearnOptions ro;
  ro.steps = ctx.int_option("attack_steps");
  ro.lr = ctx.option("attack_lr");
  const auto lanczos_steps = ctx.int_option("lanczos_steps");

  json out = {{"original",
               {{"forget_acc", unlearn::accuracy(f, w0, xf_t, yf_t)},
                {"retain_acc", unlearn::accuracy(f, w0, xr_t, yr_t)},
                {"forget_train_acc", unlearn::accuracy(f, w0, ud.x_forget, ud.y_forget)},
                {"lambda_max", unlearn::forget_sharpness(w0, f, xp, yp, lanczos_steps, seed)}}}};
  std::int64_t stage = 1;
  for (const char* method : kMethods) {
    progress(stage++, 5, fmt::format("unlearning by {}", method));
    auto w = w0;
    for (auto& t : w) t = t.clone();
    unlearn::UnlearnOptions o;
    o.method = method;
    o.forget_loss = "npo";
    o.steps = ctx.int_option("steps");
    o.batch = ctx.int_option("batch");
    o.lr = ctx.option("lr");
    o.beta = ctx.option("beta");
    o.rho = ctx.option("rho");
    o.seed = seed * 31 + 7;  // the same batches for every method
    o.stop_forget_acc = ctx.option("stop_forget_acc");
    o.check_every = ctx.int_option("check_every");
    const auto t0 = std::chrono::steady_clock::now();
    const auto trace = unlearn::unlearn(w, f, ud, o);
    const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const auto curve = unlearn::relearn_attack(w, f, xa, ya, xf_t, yf_t, ro);
    out[method] = {{"forget_acc", unlearn::accuracy(f, w, xf_t, yf_t)},
                   {"retain_acc", unlearn::accuracy(f, w, xr_t, yr_t)},
                   {"forget_train_acc", unlearn::accuracy(f, w, ud.x_forget, ud.y_forget)},
                   {"final_forget_loss", trace.forget_loss.empty() ? 0.0 : trace.forget_loss.back()},
                   {"final_retain_loss", trace.retain_loss.empty() ? 0.0 : trace.retain_loss.back()},
                   {"projections", trace.projections},
                   {"passes", trace.passes},
                   {"steps", trace.steps},
                   {"diverged", trace.diverged},
                   {"relearn_acc", curve.accuracy},
                   {"relearn_auc", curve.auc},
                   {"relearn_steps_to_half", curve.steps_to_half},
                   {"lambda_max", unlearn::forget_sharpness(w, f, xp, yp, lanczos_steps, seed)},
                   {"timing_seconds_per_step", o.steps > 0 ? sec / static_cast<double>(o.steps) : 0.0}};
  }
  progress(5, 5, "done");
  if (k == 0 && ctx.run) {
    report::SvgPlot plot(720, 440);
    plot.set_range(0, static_cast<double>(ro.steps), 0, 1);
    plot.title(fmt::format("Relearning attack on class {}: forget-class test accuracy (seed {})", c, seed));
    plot.labels("attack step (Adam on the attacker's forget-class images)", "forget-class test accuracy");
    const char* colours[] = {"#1f77b4", "#ff7f0e", "#2ca02c"};
    const char* names[] = {"GA+GD", "NPO+GD", "StableUN(NPO)"};
    for (int i = 0; i < 3; ++i) {
      std::vector<std::pair<double, double>> pts;
      const auto& a = out.at(kMethods[i]).at("relearn_acc");
      for (std::size_t s = 0; s < a.size(); ++s) pts.emplace_back(static_cast<double>(s), a[s].get<double>());
      plot.polyline(pts, colours[i], 2.0);
      plot.legend(names[i], colours[i]);
    }
    ctx.run->write_text("stableun_relearn.svg", plot.str());
  }
  return out;
}

ReproOutcome summarise(const ReproContext& ctx, const std::vector<json>& rows) {
  ReproOutcome out;
  out.setup = {
      {"data", fmt::format("the first {} Fashion-MNIST training and {} test images; forget set = every training image of class {}, "
                           "retain set = the rest; forget accuracy on the class's test images, retain accuracy on the others",
                           ctx.int_option("samples"), ctx.int_option("test_samples"), ctx.int_option("forget_class"))},
      {"model", fmt::format("MLP 784-{0}-{0}-10, ReLU, trained by Adam lr {1}, batch {2}, {3} epochs", ctx.int_option("hidden"),
                            ctx.option("train_lr"), ctx.int_option("batch"), ctx.int_option("epochs"))},
      {"unlearning", fmt::format("at most {} SGD steps, stopped at the first check (every {} steps) with accuracy <= {} on the "
                                 "forget training images; lr {}, batches of {} forget + {} retain images, lambda_f = lambda_r = 1; "
                                 "GA+GD, NPO+GD (beta {}), StableUN with NPO's forgetting loss (rho {}, alpha = lr, delta 1e-12)",
                                 ctx.int_option("steps"), ctx.int_option("check_every"), ctx.option("stop_forget_acc"),
                                 ctx.option("lr"), ctx.int_option("batch"), ctx.int_option("batch"),
                                 ctx.option("beta"), ctx.option("rho"))},
      {"attack", fmt::format("Adam lr {} on {} forget-class training images, {} full-batch steps; AUC = trapezoid area of the "
                             "forget-class test accuracy over the steps / steps",
                             ctx.option("attack_lr"), ctx.int_option("attack_samples"), ctx.int_option("attack_steps"))},
      {"flatness", fmt::format("largest |eigenvalue| of the Hessian of the cross-entropy on the first {} forget-class training "
                               "images, Lanczos with {} steps",
                               ctx.int_option("probe_samples"), ctx.int_option("lanczos_steps"))}};
  auto col = [&](const std::string& who, const std::string& key) {
    std::vector<double> v;
    for (const auto& r : rows) {
      const auto& x = r.at(who).at(key);
      v.push_back(x.is_null() ? std::nan("") : x.get<double>());
    }
    return v;
  };
  const auto orig_retain = col("original", "retain_acc");
  put_seed_stats(out, "original_forget_acc", col("original", "forget_acc"));
  put_seed_stats(out, "original_retain_acc", orig_retain);
  put_seed_stats(out, "original_lambda_max", col("original", "lambda_max"));
  std::map<std::string, std::vector<double>> auc, lam;
  std::vector<ReproCheck> forget_checks, retain_checks;
  for (const char* meth : kMethods) {
    const std::string m = meth;
    const auto fa = col(m, "forget_acc"), ra = col(m, "retain_acc");
    std::vector<double> drop, absl;
    for (std::size_t i = 0; i < ra.size(); ++i) drop.push_back(orig_retain[i] - ra[i]);
    for (double l : col(m, "lambda_max")) absl.push_back(std::abs(l));
    auc[m] = col(m, "relearn_auc");
    lam[m] = absl;
    put_seed_stats(out, m + "_forget_acc", fa);
    put_seed_stats(out, m + "_retain_acc", ra);
    put_seed_stats(out, m + "_retain_drop", drop);
    put_seed_stats(out, m + "_relearn_auc", auc[m]);
    put_seed_stats(out, m + "_lambda_max_abs", absl);
    put_seed_stats(out, m + "_relearn_steps_to_half", col(m, "relearn_steps_to_half"));
    put_seed_stats(out, m + "_unlearn_steps", col(m, "steps"));
    std::vector<double> div;
    for (const auto& r : rows) div.push_back(r.at(m).at("diverged").get<bool>() ? 1.0 : 0.0);
    out.metrics[m + "_diverged_seeds"] = std::accumulate(div.begin(), div.end(), 0.0);
    forget_checks.push_back(make_check(m + " forget-class test accuracy (mean)", mean(fa), "<=", 0.1));
    retain_checks.push_back(make_check(m + " retain test accuracy drop from the trained model (mean)", mean(drop), "<=", 0.02));
  }
  std::vector<double> d_ga, d_npo, l_ga, l_npo;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    d_ga.push_back(auc["stableun"][i] - auc["ga"][i]);
    d_npo.push_back(auc["stableun"][i] - auc["npo"][i]);
    l_ga.push_back(lam["stableun"][i] - lam["ga"][i]);
    l_npo.push_back(lam["stableun"][i] - lam["npo"][i]);
  }
  put_seed_stats(out, "stableun_minus_ga_relearn_auc", d_ga);
  put_seed_stats(out, "stableun_minus_npo_relearn_auc", d_npo);
  put_seed_stats(out, "stableun_minus_ga_lambda_max_abs", l_ga);
  put_seed_stats(out, "stableun_minus_npo_lambda_max_abs", l_npo);
  out.checks = forget_checks;
  out.checks.insert(out.checks.end(), retain_checks.begin(), retain_checks.end());
  out.checks.push_back(make_check("StableUN - GA relearning AUC of the forget-class accuracy (mean)", mean(d_ga), "<", 0));
  out.checks.push_back(make_check("StableUN - NPO relearning AUC of the forget-class accuracy (mean)", mean(d_npo), "<", 0));
  out.checks.push_back(make_check("StableUN - GA |lambda|max of the forget loss (mean)", mean(l_ga), "<", 0));
  out.checks.push_back(make_check("StableUN - NPO |lambda|max of the forget loss (mean)", mean(l_npo), "<", 0));
  return out;
}

}  // namespace

ReproEntry make_stableun_repro() {
  ReproEntry e;
  e.name = "stableun";
  e.paper = "Beyond Sharp Minima: Robust LLM Unlearning via Feedback-Guided Multi-Point Optimization (StableUN; Wu, Liu, "
            "Gao, Wang, Ding; arXiv 2509.20230, 2025)";
  e.claim = "Unlearning by a single-point forgetting loss (GA, NPO) ends in a sharp minimum from which a few relearning steps "
            "recover the forgotten knowledge; StableUN (forgetting feedback at an adversarially perturbed point, remembering "
            "feedback at a look-ahead point, gradient projection) forgets as well, keeps utility, recovers less under a "
            "relearning attack and leaves a flatter forget loss.";
  e.options = {{"samples", "training images", 60000, 6000, true},
               {"test_samples", "test images", 10000, 2000, true},
               {"hidden", "width of the two hidden layers", 256, 128, true},
               {"epochs", "training epochs before unlearning", 2, 1, true},
               {"train_lr", "Adam learning rate of the training", 1e-3, 1e-3, false},
               {"batch", "batch size (training; forget and retain batches of unlearning)", 128, 128, true},
               {"forget_class", "the class to forget (1..9: options are positive)", 9, 9, true},
               {"steps", "unlearning steps at most", 200, 100, true},
               {"stop_forget_acc", "stop once the accuracy on the forget training images is at most this (matched forgetting)",
                0.01, 0.01, false},
               {"check_every", "steps between two checks of the early stop", 5, 5, true},
               {"lr", "unlearning SGD learning rate (eta; StableUN's alpha = eta)", 1e-3, 1e-3, false},
               {"beta", "NPO's beta", 0.1, 0.1, false},
               {"rho", "StableUN's perturbation radius", 0.05, 0.05, false},
               {"attack_samples", "forget-class training images the attacker fine-tunes on", 20, 20, true},
               {"attack_steps", "relearning attack steps", 50, 20, true},
               {"attack_lr", "relearning attack Adam learning rate", 1e-3, 1e-3, false},
               {"probe_samples", "forget-class training images of the flatness probe", 2000, 300, true},
               {"lanczos_steps", "Lanczos steps of the flatness probe", 20, 10, true}};
  e.run_seed = run_seed;
  e.summarise = summarise;
  return e;
}

}  // namespace stablelearn::experiments::repro
