// repro finetune-intrinsic-dim: Aghajanyan, Zettlemoyer & Gupta, "Intrinsic Dimensionality Explains
// the Effectiveness of Language Model Fine-Tuning" (ACL 2021; shared/specs/papers-01-18.md §18),
// scaled to the spec's smallest faithful CPU experiment.
//
// An MLP 784-h-h-10 is pre-trained (minibatch Adam) on Fashion-MNIST classes 0–4 (logits 0–4 only)
// and snapshotted after three pre-training lengths; with the random initialisation ("scratch", the
// same network without pre-training) these are four starting points θ₀. Each is then tuned few-shot
// on classes 5–9 (`shots` training images per class, logits 5–9, labels re-indexed 0–4; test
// accuracy on held-out test images of classes 5–9, chance 0.2):
//   full      full-batch Adam on every parameter (the 100 % reference of that θ₀),
//   DID       θ = θ₀ + P θ_d, one Fastfood projection P, only θ_d trained
//             (diagnostics::finetune_in_subspace),
//   SAID      θ_i = θ₀_i + λ_i (P θ_{d−m})_i, the m = 6 per-tensor scales λ learned too,
//   head only the last layer alone (reported, not checked: do θ₀'s features help the new classes?).
// d90 of a θ₀ and method: on the grid d = d_min, 2 d_min, …, d_max, visited upwards until the test
// accuracy reaches 90 % of that θ₀'s full tuning (the paper's relative convention); the crossing
// interpolated in log d between the last failing and the first passing d (d_min when the first
// passes). A grid that never reaches it records d_max (a lower bound; counted in *_unreached).
//
// Checks, fixed from the paper's claims before any run (means over seeds):
//   precondition: the new task is learned   full fine-tuning accuracy after the longest
//                                            pre-training ≥ 0.5 (chance 0.2)
//   fine-tuning needs far fewer dimensions  d90(scratch) / d90(longest pre-training) ≥ 4, for DID and
//   than training from scratch              for SAID ("far below": at least two doublings of the
//                                            grid, beyond its resolution)
//   d90 falls as pre-training gets longer   d90(2nd length) ≤ d90(1st) and d90(3rd) ≤ d90(2nd), for
//                                            SAID (the paper's method for this claim) and DID
//   SAID needs no more than DID             d90_SAID ≤ d90_DID after the longest pre-training (the
//                                            paper's Table 1: SAID ≤ DID in every model and task)
#include <fmt/format.h>
#include <torch/torch.h>

#include "entries.h"
#include "stablelearn/core/error.h"
#include "stablelearn/core/run.h"
#include "stablelearn/data/cl_streams.h"
#include "stablelearn/diagnostics/intrinsic_dimension.h"
#include "stablelearn/report/svg.h"

namespace stablelearn::experiments::repro {

using nlohmann::json;
namespace dg = diagnostics;

namespace {

constexpr const char* kMethods[] = {"did", "said"};

struct Split {
  torch::Tensor x, y;
};

/// The images of `set` with labels in [lo, lo + 5), labels re-indexed to 0–4.
Split classes_of(const data::ImageSet& set, std::int64_t lo) {
  const auto keep = set.labels.ge(lo).logical_and(set.labels.lt(lo + 5)).nonzero().squeeze(1);
  return {set.images.index_select(0, keep), set.labels.index_select(0, keep) - lo};
}

std::vector<std::int64_t> dimension_grid(const ReproContext& ctx) {
  std::vector<std::int64_t> dims;
  for (auto d = ctx.int_option("d_min"); d <= ctx.int_option("d_max"); d *= 2) dims.push_back(d);
  return dims;
}

std::vector<std::int64_t> pretrain_lengths(const ReproContext& ctx) {
  return {ctx.int_option("pretrain_steps_1"), ctx.int_option("pretrain_steps_2"), ctx.int_option("pretrain_steps_3")};
}

/// The four starting points: "scratch" and "pre1".."pre3".
std::vector<std::string> condition_names() { return {"scratch", "pre1", "pre2", "pre3"}; }

void check_options(const ReproContext& ctx) {
  const auto p = pretrain_lengths(ctx);
  SL_CHECK(p[0] < p[1] && p[1] < p[2], ConfigError, "repro finetune-intrinsic-dim: the pre-training lengths must increase, got ",
           p[0], ", ", p[1], ", ", p[2], " (options pretrain_steps_1..3)");
  SL_CHECK(ctx.int_option("d_min") > 6, ConfigError, "repro finetune-intrinsic-dim: d_min must exceed the m = 6 scales of SAID, got ",
           ctx.int_option("d_min"));
  SL_CHECK(ctx.int_option("d_max") >= ctx.int_option("d_min"), ConfigError, "repro finetune-intrinsic-dim: d_max (",
           ctx.int_option("d_max"), ") is below d_min (", ctx.int_option("d_min"), ")");
}

void copy_into(const std::vector<torch::Tensor>& to, const std::vector<torch::Tensor>& from) {
  torch::NoGradGuard ng;
  for (std::size_t i = 0; i < to.size(); ++i) to[i].copy_(from[i]);
}

std::vector<torch::Tensor> snapshot(const std::vector<torch::Tensor>& params) {
  std::vector<torch::Tensor> out;
  for (const auto& p : params) out.push_back(p.detach().clone());
  return out;
}

json run_seed(const ReproContext& ctx, std::int64_t k) {
  check_options(ctx);
  const auto seed = static_cast<std::int64_t>(ctx.seed) + k;
  const auto fm = data::load_fashion_mnist();
  // Pre-training set: the first images of classes 0–4. Few-shot set: `shots` random images of each
  // of classes 5–9 (this seed's draw). Test: the first test images of classes 5–9.
  auto pre = classes_of(fm.train, 0);
  const auto n_pre = std::min(ctx.int_option("pretrain_samples"), pre.y.size(0));
  pre = {pre.x.slice(0, 0, n_pre), pre.y.slice(0, 0, n_pre)};
  const auto all_new = classes_of(fm.train, 5);
  auto gen = at::detail::createCPUGenerator(derive_seed(seed, 0, 1));
  std::vector<torch::Tensor> picks;
  for (std::int64_t c = 0; c < 5; ++c) {
    const auto idx = all_new.y.eq(c).nonzero().squeeze(1);
    const auto perm = torch::randperm(idx.size(0), gen, torch::TensorOptions().dtype(torch::kInt64));
    picks.push_back(idx.index_select(0, perm.slice(0, 0, ctx.int_option("shots"))));
  }
  const auto pick = torch::cat(picks);
  const Split few{all_new.x.index_select(0, pick), all_new.y.index_select(0, pick)};
  auto test = classes_of(fm.test, 5);
  const auto n_test = std::min(ctx.int_option("test_samples"), test.y.size(0));
  test = {test.x.slice(0, 0, n_test), test.y.slice(0, 0, n_test)};

  models::ClassifierOptions mo;
  mo.hidden = {ctx.int_option("hidden"), ctx.int_option("hidden")};
  torch::manual_seed(derive_seed(seed, 0, 2));
  FmnistProblem p;
  p.model = models::Classifier(mo);
  p.params = p.model->weights();
  p.loss_name = "ce";
  const auto full_dim = dg::total_numel(p.params);
  auto old_head = p, new_head = p;
  old_head.columns = torch::arange(0, 5, torch::TensorOptions().dtype(torch::kInt64));
  new_head.columns = torch::arange(5, 10, torch::TensorOptions().dtype(torch::kInt64));
  auto new_accuracy = [&] { return new_head.accuracy(test.x, test.y); };
  const auto progress = seed_progress(ctx, k);

  // Pre-training: minibatch Adam on classes 0–4, snapshots after each length.
  std::map<std::string, std::vector<torch::Tensor>> theta0;
  std::map<std::string, double> pre_accuracy;
  theta0["scratch"] = snapshot(p.params);
  {
    const auto lengths = pretrain_lengths(ctx);
    const auto pre_test = classes_of(fm.test, 0);
    torch::optim::Adam opt(p.params, torch::optim::AdamOptions(ctx.option("pretrain_lr")));
    auto batch_gen = at::detail::createCPUGenerator(derive_seed(seed, 0, 3));
    const auto b = std::min(ctx.int_option("batch"), n_pre);
    std::size_t next = 0;
    for (std::int64_t step = 1; step <= lengths.back(); ++step) {
      const auto idx = torch::randint(0, n_pre, {b}, batch_gen, torch::TensorOptions().dtype(torch::kInt64));
      const auto loss = old_head.loss_of(old_head.logits(pre.x.index_select(0, idx)), pre.y.index_select(0, idx));
      SL_CHECK(std::isfinite(loss.item<double>()), DataError, "repro finetune-intrinsic-dim: the pre-training loss is not finite at step ",
               step, "; lower --set pretrain_lr");
      opt.zero_grad();
      loss.backward();
      opt.step();
      if (step == lengths[next]) {
        const auto name = condition_names()[next + 1];
        theta0[name] = snapshot(p.params);
        pre_accuracy[name] = old_head.accuracy(pre_test.x, pre_test.y);
        ++next;
      }
    }
  }

  const std::vector<dg::Batch> batches = {{few.x, few.y}};
  const auto loss = new_head.loss_fn();
  const auto steps = ctx.int_option("steps");
  const auto grid = dimension_grid(ctx);
  const auto names = condition_names();
  const auto total = static_cast<std::int64_t>(names.size());
  json conditions = json::object();
  json out = {{"parameters", full_dim}, {"few_shot_images", few.y.size(0)}, {"test_images", n_test}};
  for (std::int64_t c = 0; c < total; ++c) {
    const auto& name = names[static_cast<std::size_t>(c)];
    const auto& start = theta0.at(name);
    json cond = {{"pretrain_steps", c == 0 ? 0 : pretrain_lengths(ctx)[static_cast<std::size_t>(c - 1)]},
                 {"pretrain_accuracy_old_classes", c == 0 ? json(nullptr) : json(pre_accuracy.at(name))}};
    copy_into(p.params, start);
    cond["start_accuracy"] = new_accuracy();
    // Full fine-tuning: full-batch Adam on every parameter, the 100 % reference.
    {
      torch::optim::Adam adam(p.params, torch::optim::AdamOptions(ctx.option("full_lr")));
      for (std::int64_t s = 0; s < steps; ++s) {
        adam.zero_grad();
        loss(batches[0]).backward();
        adam.step();
      }
    }
    const double full = new_accuracy();
    const double threshold = 0.9 * full;
    // Not a check: the last layer alone (a linear probe on θ₀'s features, same optimiser), which
    // tells whether the pre-trained features help the new classes at all.
    {
      copy_into(p.params, start);
      const auto h = p.model->linear_weight_indices().back();
      torch::optim::Adam adam(std::vector<torch::Tensor>{p.params[h], p.params[h + 1]}, torch::optim::AdamOptions(ctx.option("full_lr")));
      for (std::int64_t s = 0; s < steps; ++s) {
        adam.zero_grad();
        loss(batches[0]).backward();
        adam.step();
      }
      cond["head_only_accuracy"] = new_accuracy();
      out[fmt::format("head_only_accuracy_{}", name)] = cond["head_only_accuracy"];
    }
    cond["full_accuracy"] = full;
    cond["threshold"] = threshold;
    for (const char* method : kMethods) {
      const bool said = std::string(method) == "said";
      std::vector<std::int64_t> dims;
      std::vector<double> acc, final_loss, scale_spread;
      for (const auto d : grid) {
        copy_into(p.params, start);
        const auto r = dg::finetune_in_subspace(p.params, loss, batches,
                                                dg::SubspaceFinetuneOptions()
                                                    .dim(d)
                                                    .structure_aware(said)
                                                    .steps(steps)
                                                    .learning_rate(ctx.option("lr"))
                                                    .projection(dg::Projection::Fastfood)
                                                    .seed(derive_seed(seed, d, 4)));
        dims.push_back(d);
        acc.push_back(new_accuracy());
        final_loss.push_back(r.losses.back());
        if (said) scale_spread.push_back((r.scales - 1).abs().max().item<double>());
        progress(c * 2 + (said ? 1 : 0), total * 2, fmt::format("{} {} d {} acc {:.3f} (target {:.3f})", name, method, d, acc.back(), threshold));
        if (acc.back() >= threshold) break;
      }
      const double crossing = dg::interpolated_crossing(dims, acc, threshold);
      const bool reached = std::isfinite(crossing);
      json m = {{"dims", dims}, {"test_accuracy", acc}, {"final_loss", final_loss}, {"reached", reached},
                {"d90", reached ? crossing : static_cast<double>(grid.back())}};
      if (said) m["max_scale_change"] = scale_spread;
      cond[method] = m;
      out[fmt::format("d90_{}_{}", method, name)] = m["d90"];
    }
    out[fmt::format("full_accuracy_{}", name)] = full;
    conditions[name] = cond;
  }
  copy_into(p.params, theta0.at("scratch"));
  out["conditions"] = conditions;
  return out;
}

void write_figure(const RunDir& run, const ReproContext& ctx, const std::vector<json>& rows) {
  const auto names = condition_names();
  const auto lengths = pretrain_lengths(ctx);
  const char* colours[] = {"#7f7f7f", "#9ecae1", "#3182bd", "#08519c"};
  {
    // Seed 0: test accuracy against log d per starting point (DID solid, SAID thin), the 90 % lines.
    report::SvgPlot plot(760, 460);
    const auto grid = dimension_grid(ctx);
    plot.set_range(std::log10(double(grid.front())) - 0.1, std::log10(double(grid.back())) + 0.1, 0, 1);
    plot.title("Fine-tuning on classes 5-9 in random subspaces (seed 0): DID thick, SAID thin");
    plot.labels("log10 d", "test accuracy (classes 5-9)");
    for (std::size_t c = 0; c < names.size(); ++c) {
      const auto& cond = rows[0].at("conditions").at(names[c]);
      const double thr = cond.at("threshold").get<double>();
      plot.polyline({{std::log10(double(grid.front())) - 0.1, thr}, {std::log10(double(grid.back())) + 0.1, thr}}, colours[c], 0.6);
      for (const char* method : kMethods) {
        std::vector<std::pair<double, double>> pts;
        const auto& m = cond.at(method);
        for (std::size_t i = 0; i < m.at("dims").size(); ++i)
          pts.emplace_back(std::log10(m.at("dims")[i].get<double>()), m.at("test_accuracy")[i].get<double>());
        plot.polyline(pts, colours[c], std::string(method) == "did" ? 2.2 : 1.0);
        for (const auto& [x, y] : pts) plot.marker(x, y, colours[c], 2.5);
      }
      plot.legend(c == 0 ? "scratch" : fmt::format("pre-trained {} steps", lengths[c - 1]), colours[c]);
    }
    run.write_text("finetune_intrinsic_dim_curves.svg", plot.str());
  }
  {
    // d90 (mean ± std over seeds) against the pre-training length (scratch at 0), log scales.
    report::SvgPlot plot(720, 440);
    const double x1 = std::log10(double(lengths.back())) + 0.3;
    plot.set_range(-0.3, x1, 0, std::log10(double(ctx.int_option("d_max"))) + 0.2);
    plot.title("d90 against pre-training (mean +- std over seeds); scratch at x = 0");
    plot.labels("log10(1 + pre-training steps)", "log10 d90");
    const char* mc[] = {"#d62728", "#2ca02c"};
    for (int m = 0; m < 2; ++m) {
      std::vector<std::pair<double, double>> pts;
      for (std::size_t c = 0; c < names.size(); ++c) {
        const auto v = per_seed(rows, fmt::format("d90_{}_{}", kMethods[m], names[c]));
        const double x = std::log10(1.0 + (c == 0 ? 0.0 : double(lengths[c - 1]))) + (m == 0 ? -0.02 : 0.02);
        const double mu = mean(v), sd = std_dev(v);
        pts.emplace_back(x, std::log10(mu));
        plot.polyline({{x, std::log10(std::max(mu - sd, 1.0))}, {x, std::log10(mu + sd)}}, mc[m], 1.0);
        plot.marker(x, std::log10(mu), mc[m], 3);
      }
      plot.polyline(pts, mc[m], 2.0);
      plot.legend(m == 0 ? "DID" : "SAID", mc[m]);
    }
    run.write_text("finetune_intrinsic_dim_d90.svg", plot.str());
  }
}

ReproOutcome summarise(const ReproContext& ctx, const std::vector<json>& rows) {
  check_options(ctx);
  const auto names = condition_names();
  const auto lengths = pretrain_lengths(ctx);
  ReproOutcome out;
  out.setup = {
      {"model", fmt::format("MLP 784-{0}-{0}-10 (ReLU), {1} parameters; pre-training uses logits 0-4, fine-tuning logits 5-9",
                            ctx.int_option("hidden"), rows.empty() ? json(nullptr).dump() : rows[0].at("parameters").dump())},
      {"pretraining", fmt::format("minibatch Adam (lr {}, batch {}) on the first {} training images of classes 0-4; snapshots after {} / {} "
                                  "/ {} steps; scratch = the same random initialisation",
                                  ctx.option("pretrain_lr"), ctx.int_option("batch"), ctx.int_option("pretrain_samples"), lengths[0],
                                  lengths[1], lengths[2])},
      {"finetuning", fmt::format("{} random training images per class of classes 5-9 ({} in all, drawn per seed), full-batch, {} steps; "
                                 "test: the first {} test images of classes 5-9",
                                 ctx.int_option("shots"), 5 * ctx.int_option("shots"), ctx.int_option("steps"), ctx.int_option("test_samples"))},
      {"full", fmt::format("Adam lr {} on every parameter: the 100 % reference of each starting point; head only: the same on the "
                           "last layer alone (reported, not checked)",
                           ctx.option("full_lr"))},
      {"did_said", fmt::format("Fastfood projection (one per d and seed, shared by the starting points), Adam lr {} on theta_d (and "
                               "lambda); SAID: one scale per parameter tensor (m = 6) out of the budget d, lambda starts at 1",
                               ctx.option("lr"))},
      {"dims", dimension_grid(ctx)},
      {"d90", "smallest grid d reaching 0.9 x the full fine-tuning accuracy of the same starting point, interpolated in log d "
              "from the last failing d; d_max when never reached (a lower bound, counted in *_unreached)"}};
  std::map<std::string, double> d90;  // "<method>_<condition>" → mean over seeds
  for (const char* method : kMethods)
    for (const auto& c : names) {
      const auto key = fmt::format("d90_{}_{}", method, c);
      const auto v = per_seed(rows, key);
      put_seed_stats(out, key, v);
      d90[fmt::format("{}_{}", method, c)] = mean(v);
      int unreached = 0;
      for (const auto& r : rows) unreached += r.at("conditions").at(c).at(method).at("reached").get<bool>() ? 0 : 1;
      out.metrics[key + "_unreached"] = unreached;
    }
  for (const auto& c : names)
    for (const std::string what : {"full_accuracy_", "head_only_accuracy_"}) {
      const auto v = per_seed(rows, what + c);
      put_seed_stats(out, what + c, v);
    }
  out.metrics["parameters"] = rows.empty() ? json(nullptr) : rows[0].at("parameters");
  out.checks.push_back(make_check("precondition, the new classes are learned: full fine-tuning accuracy after the longest pre-training "
                                  "(mean; chance 0.2)",
                                  mean(per_seed(rows, "full_accuracy_pre3")), ">=", 0.5));
  for (const char* method : {"said", "did"}) {
    const std::string up = std::string(method) == "said" ? "SAID" : "DID";
    out.checks.push_back(make_check(fmt::format("far below scratch ({}): d90(scratch) / d90(pre-trained {} steps) (means)", up, lengths[2]),
                                    d90[fmt::format("{}_scratch", method)] / d90[fmt::format("{}_pre3", method)], ">=", 4.0));
  }
  for (const char* method : {"said", "did"}) {
    const std::string up = std::string(method) == "said" ? "SAID" : "DID";
    out.checks.push_back(make_check(fmt::format("falls with pre-training ({}): d90({} steps) - d90({} steps) (means)", up, lengths[1], lengths[0]),
                                    d90[fmt::format("{}_pre2", method)] - d90[fmt::format("{}_pre1", method)], "<=", 0.0));
    out.checks.push_back(make_check(fmt::format("falls with pre-training ({}): d90({} steps) - d90({} steps) (means)", up, lengths[2], lengths[1]),
                                    d90[fmt::format("{}_pre3", method)] - d90[fmt::format("{}_pre2", method)], "<=", 0.0));
  }
  out.checks.push_back(make_check(fmt::format("SAID needs no more than DID: d90_SAID - d90_DID after {} pre-training steps (means)", lengths[2]),
                                  d90["said_pre3"] - d90["did_pre3"], "<=", 0.0));
  if (ctx.run && !rows.empty()) write_figure(*ctx.run, ctx, rows);
  return out;
}

}  // namespace

ReproEntry make_finetune_intrinsic_dim_repro() {
  ReproEntry e;
  e.name = "finetune-intrinsic-dim";
  e.paper = "Intrinsic Dimensionality Explains the Effectiveness of Language Model Fine-Tuning (Aghajanyan, Zettlemoyer, Gupta; "
            "ACL 2021)";
  e.claim = "Fine-tuning a pre-trained model in a random subspace (DID, or SAID with learned per-layer scales) reaches 90 % of full "
            "fine-tuning with a d90 far below what training the same network from scratch needs, d90 falls as pre-training gets "
            "longer, and SAID needs no more dimensions than DID.";
  e.options = {{"hidden", "hidden width h of the MLP 784-h-h-10", 64, 16, true},
               {"pretrain_samples", "pre-training images (the first of classes 0-4)", 6000, 1000, true},
               {"pretrain_steps_1", "shortest pre-training (minibatch Adam steps)", 25, 10, true},
               {"pretrain_steps_2", "middle pre-training length", 100, 30, true},
               {"pretrain_steps_3", "longest pre-training length", 400, 90, true},
               {"pretrain_lr", "Adam rate of the pre-training", 1e-3, 1e-3, false},
               {"batch", "pre-training minibatch", 64, 64, true},
               {"shots", "few-shot training images per new class (classes 5-9)", 50, 20, true},
               {"test_samples", "test images of classes 5-9", 1000, 300, true},
               {"steps", "full-batch Adam steps of every fine-tuning (full, DID, SAID)", 150, 40, true},
               {"lr", "Adam rate of theta_d and lambda", 1e-2, 1e-2, false},
               {"full_lr", "Adam rate of full fine-tuning", 1e-3, 1e-3, false},
               {"d_min", "smallest subspace dimension (> 6; the grid doubles from it)", 8, 8, true},
               {"d_max", "largest subspace dimension", 4096, 512, true}};
  e.run_seed = run_seed;
  e.summarise = summarise;
  return e;
}

}  // namespace stablelearn::experiments::repro
