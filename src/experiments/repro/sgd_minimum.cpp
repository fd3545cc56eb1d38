// repro sgd-minimum: Wu & Su (ICML 2023) with Mulayoff & Michaeli's (2023) batch-size form, on an
// MLP trained by SGD on a Fashion-MNIST subset with a scalar-output MSE loss (the rank-one
// per-sample Hessians of the theorem; docs/diagnostics.md experiment (b)).
//
// Checks, fixed from the papers (shared/specs/papers-01-18.md #4): at a linearly stable minimum of
// SGD with rate η and batch B out of N, tr H ≤ 2/(ηp) with p = (N − B)/(B(N − 1)) (B = 1: 2/η), and
// λ_max ≤ 2/η (the GD condition, also necessary); a larger η selects a flatter minimum (the
// implicit regularisation strengthens with η). Run at η and 2η:
//   trained to a minimum        final / initial loss ≤ 0.1 at each rate (the claim is about minima)
//   trace condition             η p tr(H) / 2 ≤ 1 at each rate
//   GD condition                η λ_max / 2 ≤ 1 at each rate
//   larger rate, flatter        tr H(2η) / tr H(η) ≤ 1
// With several seeds each check takes the median over the seeds.
#include <fmt/format.h>

#include "entries.h"
#include "stablelearn/experiments/toy_experiments.h"

namespace stablelearn::experiments::repro {

using nlohmann::json;

namespace {

json run_seed(const ReproContext& ctx, std::int64_t k) {
  SgdMinimumOptions o;
  o.loss = "mse-scalar";
  o.batch_size = ctx.int_option("batch_size");
  o.epochs = ctx.int_option("epochs");
  o.data = fmnist_options(ctx, k);
  json row;
  for (const auto& [tag, factor] : {std::pair<const char*, double>{"lr", 1.0}, {"lr2", ctx.option("lr_factor")}}) {
    o.lr = ctx.option("lr") * factor;
    const auto r = run_sgd_minimum(o, seed_progress(ctx, k, fmt::format("eta {}", o.lr)));
    const auto& s = r.at("stability");
    auto num = [](const json& v) { return v.is_null() ? std::nan("") : v.get<double>(); };
    row[tag] = {{"lr", o.lr},
                {"loss_ratio", finite_or_null(num(r.at("loss")) / num(r.at("initial_loss")))},
                {"trace", s.at("trace")},
                {"lambda_max", s.at("lambda_max")},
                {"trace_ratio", s.at("trace_ratio")},
                {"sharpness_ratio", s.at("sharpness_ratio")},
                {"p", s.at("p")},
                {"train_accuracy", r.at("train_accuracy")},
                {"test_accuracy", r.at("test_accuracy")},
                {"report", r}};
  }
  auto num = [](const json& v) { return v.is_null() ? std::nan("") : v.get<double>(); };
  row["trace_ratio_2_to_1"] = finite_or_null(num(row["lr2"]["trace"]) / num(row["lr"]["trace"]));
  return row;
}

std::vector<double> per_seed_at(const std::vector<json>& rows, const char* tag, const char* key) {
  std::vector<json> sub;
  for (const auto& r : rows) sub.push_back(r.at(tag));
  return per_seed(sub, key);
}

ReproOutcome summarise(const ReproContext& ctx, const std::vector<json>& rows) {
  const double lr = ctx.option("lr"), lr2 = lr * ctx.option("lr_factor");
  ReproOutcome out;
  out.setup = {{"problem", fmt::format("MLP 784-{}-10 on the first {} Fashion-MNIST training images, minibatch SGD, scalar-output MSE "
                                       "(f = first logit, target +1 for classes 0-4, -1 for 5-9), float64",
                                       ctx.int_option("hidden"), ctx.int_option("samples"))},
               {"learning_rates", {lr, lr2}},
               {"batch_size", ctx.int_option("batch_size")},
               {"epochs", ctx.int_option("epochs")},
               {"curvature", "full-data Hessian at the end of training: lambda_max by Lanczos, tr H by Hutch++"}};
  for (const char* tag : {"lr", "lr2"})
    for (const char* key : {"loss_ratio", "trace", "lambda_max", "trace_ratio", "sharpness_ratio", "test_accuracy"})
      out.metrics[std::string(key) + (std::string(tag) == "lr" ? "_at_eta" : "_at_2eta")] = seeds_json(per_seed_at(rows, tag, key));
  out.metrics["trace_2eta_over_eta"] = seeds_json(per_seed(rows, "trace_ratio_2_to_1"));
  for (const auto& [tag, rate] : {std::pair<const char*, double>{"lr", lr}, {"lr2", lr2}}) {
    const auto at = fmt::format(" (eta = {})", rate);
    out.checks.push_back(make_check("trained to a minimum: final / initial loss" + at, median(per_seed_at(rows, tag, "loss_ratio")), "<=", 0.1));
    out.checks.push_back(make_check("trace condition: eta p tr(H) / 2" + at, median(per_seed_at(rows, tag, "trace_ratio")), "<=", 1.0));
    out.checks.push_back(make_check("GD condition: eta lambda_max / 2" + at, median(per_seed_at(rows, tag, "sharpness_ratio")), "<=", 1.0));
  }
  out.checks.push_back(make_check("larger rate, flatter minimum: tr H(2 eta) / tr H(eta)", median(per_seed(rows, "trace_ratio_2_to_1")), "<=", 1.0));
  return out;
}

}  // namespace

ReproEntry make_sgd_minimum_repro() {
  ReproEntry e;
  e.name = "sgd-minimum";
  e.paper = "The Implicit Regularization of Dynamical Stability in Stochastic Gradient Descent (Wu & Su, ICML 2023); "
            "Exact Mean Square Linear Stability Analysis for SGD (Mulayoff & Michaeli, 2023)";
  e.claim = "Minima that SGD with rate eta and batch B reaches satisfy tr(H) <= 2/(eta p) (B = 1: 2/eta) and lambda_max <= 2/eta, "
            "and a larger rate selects a flatter minimum.";
  e.options = {{"lr", "SGD learning rate eta (the second run uses lr_factor * eta)", 0.01, 0.01, false},
               {"lr_factor", "factor of the second learning rate", 2, 2, false},
               {"batch_size", "SGD batch size B", 1, 1, true},
               {"epochs", "epochs of SGD", 40, 8, true},
               {"samples", "training images N", 500, 200, true},
               {"test_samples", "test images", 1000, 200, true},
               {"hidden", "hidden width of the MLP 784-h-10", 50, 20, true}};
  e.run_seed = run_seed;
  e.summarise = summarise;
  return e;
}

}  // namespace stablelearn::experiments::repro
