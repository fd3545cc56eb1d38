// repro cnn-kernel-curves: Favero, Cagnetta, Wyart, "What Can Be Learnt With Wide Convolutional
// Neural Networks?" (ICML 2023, arXiv 2208.01003; shared/specs/papers-19-35.md §31), the spec's
// smallest faithful experiment with the library's theory/cnn_kernel.h (docs/theory.md).
//
// Students: ridgeless kernel regression with the NTK of the infinitely wide hierarchical CNN with
// non-overlapping filters of size s = `filter` and L layers (d = s^L), and with the NTK of a fully
// connected ReLU network of the same depth (filters (d, 1, …, 1)). Inputs: every level-1 patch
// uniform on its sphere (radius √s). Targets: Gaussian processes whose covariance is the
// hierarchical NTK restricted to (a) the first patch (`local`: a one-hidden-layer NTK of the first s
// inputs), (b) the first level-2 meta-patch (`meta`: filters (s, s) on the first s² inputs), (c) the
// whole input (`global`: the student CNN's own NTK). Two input dimensions: L = depth_small and
// depth_large. Per seed: a pool of 2^max_log2n training and `test` test points, one GP draw per target,
// learning curves on the nested training sets n = 2^min_log2n … 2^max_log2n (relative test error
// ε = MSE / mean y²), and β from the least-squares fit of log ε against log n over all sizes.
//
// Checks, fixed from the spec and the issue before any run (β of the CNN NTK unless stated; means
// over seeds):
//   per d: β(local) − β(meta) > 0,  β(meta) − β(global) > 0
//   β(global) at the larger d − β(global) at the smaller d                    < 0
//   β(local) at the larger d / β(local) at the smaller d                       >= 0.75
//     (halfway between "unchanged" (1) and the 1/d scaling of a global target (d doubles: 0.5))
//   per d, for local and meta: β(CNN NTK) − β(fully connected NTK)            > 0
#include <fmt/format.h>
#include <torch/torch.h>

#include "entries.h"
#include "stablelearn/core/error.h"
#include "stablelearn/core/run.h"
#include "stablelearn/report/svg.h"
#include "stablelearn/theory/cnn_kernel.h"

namespace stablelearn::experiments::repro {

using nlohmann::json;

namespace {

namespace th = theory;

const std::vector<std::string>& targets() {
  static const std::vector<std::string> t = {"local", "meta", "global"};
  return t;
}

std::vector<std::int64_t> sizes(const ReproContext& ctx) {
  std::vector<std::int64_t> n;
  for (auto k = ctx.int_option("min_log2n"); k <= ctx.int_option("max_log2n"); ++k) n.push_back(std::int64_t{1} << k);
  return n;
}

void check_options(const ReproContext& ctx) {
  SL_CHECK(ctx.int_option("filter") >= 2, ConfigError, "options.filter: must be >= 2 (a patch of one input is no hierarchy), got ",
           ctx.int_option("filter"));
  SL_CHECK(ctx.int_option("depth_small") >= 3, ConfigError,
           "options.depth_small: must be >= 3 (patch, meta-patch and whole input must differ), got ", ctx.int_option("depth_small"));
  SL_CHECK(ctx.int_option("depth_large") > ctx.int_option("depth_small"), ConfigError, "options.depth_large: must exceed depth_small = ",
           ctx.int_option("depth_small"), ", got ", ctx.int_option("depth_large"));
  SL_CHECK(ctx.int_option("max_log2n") > ctx.int_option("min_log2n") && ctx.int_option("max_log2n") <= 14, ConfigError,
           "options.max_log2n: must exceed min_log2n = ", ctx.int_option("min_log2n"), " and be at most 14, got ",
           ctx.int_option("max_log2n"));
}

// The teacher's covariance on the points z for one target.
torch::Tensor teacher_kernel(const torch::Tensor& z, const std::string& target, std::int64_t s, std::int64_t depth) {
  if (target == "local") {
    const auto p = z.slice(1, 0, s);
    return th::hierarchical_kernels(p, p, th::HierarchicalKernelOptions::uniform(s, 1)).ntk;
  }
  if (target == "meta") {
    const auto p = z.slice(1, 0, s * s);
    return th::hierarchical_kernels(p, p, th::HierarchicalKernelOptions::uniform(s, 2)).ntk;
  }
  return th::hierarchical_kernels(z, z, th::HierarchicalKernelOptions::uniform(s, depth)).ntk;
}

json run_dimension(const ReproContext& ctx, std::int64_t depth, std::uint64_t seed) {
  const auto s = ctx.int_option("filter"), test = ctx.int_option("test");
  const auto ns = sizes(ctx);
  const auto pool = ns.back();
  const auto cnn = th::HierarchicalKernelOptions::uniform(s, depth);
  const auto fc = th::HierarchicalKernelOptions::fully_connected(cnn.inputs, depth);
  auto gen = at::detail::createCPUGenerator(seed);
  const auto z = th::sample_patch_spheres(pool + test, cnn, gen);  // the pool first, then the test points
  const auto train = z.slice(0, 0, pool);
  std::map<std::string, torch::Tensor> student;
  student["cnn"] = th::hierarchical_kernels(z, train, cnn).ntk;  // [pool + test, pool]
  student["fc"] = th::hierarchical_kernels(z, train, fc).ntk;
  json out = {{"d", cnn.inputs}, {"depth", depth}};
  std::vector<double> nd(ns.begin(), ns.end());
  for (const auto& t : targets()) {
    const auto y = th::sample_gaussian_process(teacher_kernel(z, t, s, depth), 0.0, gen);
    const auto y_pool = y.slice(0, 0, pool), y_test = y.slice(0, pool);
    const double scale = y_test.pow(2).mean().item<double>();
    json per = {{"target_variance", scale}};
    for (const char* st : {"cnn", "fc"}) {
      const auto& k = student[st];
      auto err = th::nested_learning_curve(k.slice(0, 0, pool), y_pool, k.slice(0, pool), y_test, ns);
      for (auto& e : err) e /= scale;
      const auto fit = th::fit_power_law(nd, err);
      per[std::string(st) + "_error"] = err;
      per[std::string(st) + "_beta"] = fit.exponent;
    }
    out[t] = per;
  }
  return out;
}

json run_seed(const ReproContext& ctx, std::int64_t k) {
  check_options(ctx);
  const auto seed = ctx.seed + static_cast<std::uint64_t>(k);
  const auto progress = seed_progress(ctx, k);
  json dims = json::array();
  const std::vector<std::int64_t> depths = {ctx.int_option("depth_small"), ctx.int_option("depth_large")};
  for (std::size_t i = 0; i < depths.size(); ++i) {
    progress(static_cast<std::int64_t>(i), 2, fmt::format("depth {}", depths[i]));
    dims.push_back(run_dimension(ctx, depths[i], seed * 1000003 + i));
  }
  progress(2, 2, "done");
  return {{"sizes", sizes(ctx)}, {"dims", dims}};
}

void write_figures(const RunDir& run, const std::vector<json>& rows) {
  const auto ns = rows[0].at("sizes").get<std::vector<std::int64_t>>();
  const std::map<std::string, const char*> colour = {{"local", "#1f77b4"}, {"meta", "#2ca02c"}, {"global", "#d62728"}};
  for (std::size_t di = 0; di < rows[0].at("dims").size(); ++di) {
    const auto d = rows[0].at("dims")[di].at("d").get<std::int64_t>();
    report::SvgPlot plot(760, 480);
    plot.log_y(true);
    double lo = 1, hi = 1e-300;
    for (const auto& r : rows)
      for (const auto& t : targets())
        for (const char* st : {"cnn_error", "fc_error"})
          for (const auto& e : r.at("dims")[di].at(t).at(st)) lo = std::min(lo, e.get<double>()), hi = std::max(hi, e.get<double>());
    plot.set_range(std::log2(static_cast<double>(ns.front())), std::log2(static_cast<double>(ns.back())), lo / 2, std::max(hi * 2, 1.0));
    plot.title(fmt::format("Ridgeless NTK regression, d = {}: CNN NTK (thick), fully connected NTK (thin); mean over {} seed{}", d,
                           rows.size(), rows.size() == 1 ? "" : "s"));
    plot.labels("log2 n", "relative test error");
    for (const auto& t : targets()) {
      for (const char* st : {"cnn_error", "fc_error"}) {
        std::vector<std::pair<double, double>> pts;
        for (std::size_t i = 0; i < ns.size(); ++i) {
          double lg = 0;
          for (const auto& r : rows) lg += std::log(r.at("dims")[di].at(t).at(st)[i].get<double>()) / static_cast<double>(rows.size());
          pts.emplace_back(std::log2(static_cast<double>(ns[i])), std::exp(lg));
        }
        plot.polyline(pts, colour.at(t), std::string(st) == "cnn_error" ? 3.0 : 1.2);
      }
      plot.legend(t, colour.at(t));
    }
    run.write_text(fmt::format("cnn_kernel_curves_d{}.svg", d), plot.str());
  }
}

ReproOutcome summarise(const ReproContext& ctx, const std::vector<json>& rows) {
  ReproOutcome out;
  const auto s = ctx.int_option("filter");
  out.setup = {
      {"students", fmt::format("ridgeless kernel regression with the NTK of the infinitely wide CNN with non-overlapping filters of size "
                               "{} (d = {}^L, L = {} and {}) and with the NTK of a fully connected ReLU network of the same depth",
                               s, s, ctx.int_option("depth_small"), ctx.int_option("depth_large"))},
      {"inputs", fmt::format("every patch of {} inputs uniform on the sphere of radius sqrt({})", s, s)},
      {"targets", "Gaussian processes with the hierarchical NTK of the first patch (local), of the first level-2 meta-patch (meta) and "
                  "of the whole input (global, the student CNN's kernel); no label noise"},
      {"curves", fmt::format("n = 2^{} ... 2^{} nested training points, {} test points; relative test error MSE / mean y^2; beta from "
                             "the least-squares fit of log error against log n over all sizes",
                             ctx.int_option("min_log2n"), ctx.int_option("max_log2n"), ctx.int_option("test"))}};
  std::map<std::string, double> beta;  // "cnn_local_d8" → mean over seeds
  std::vector<std::int64_t> ds;
  for (std::size_t di = 0; di < rows[0].at("dims").size(); ++di) {
    const auto d = rows[0].at("dims")[di].at("d").get<std::int64_t>();
    ds.push_back(d);
    for (const auto& t : targets())
      for (const char* st : {"cnn", "fc"}) {
        const auto v = per_seed_at(rows, fmt::format("/dims/{}/{}/{}_beta", di, t, st));
        const auto key = fmt::format("{}_{}_d{}", st, t, d);
        out.metrics["beta_" + key] = seeds_json(v);
        beta[key] = mean(v);
      }
  }
  const auto b = [&](const char* st, const std::string& t, std::int64_t d) { return beta.at(fmt::format("{}_{}_d{}", st, t, d)); };
  for (auto d : ds) {
    out.checks.push_back(make_check(fmt::format("d = {}: beta(local) - beta(meta-patch), CNN NTK (means)", d),
                                    b("cnn", "local", d) - b("cnn", "meta", d), ">", 0));
    out.checks.push_back(make_check(fmt::format("d = {}: beta(meta-patch) - beta(global), CNN NTK (means)", d),
                                    b("cnn", "meta", d) - b("cnn", "global", d), ">", 0));
  }
  out.checks.push_back(make_check(fmt::format("beta(global) at d = {} - at d = {}, CNN NTK (means)", ds[1], ds[0]),
                                  b("cnn", "global", ds[1]) - b("cnn", "global", ds[0]), "<", 0));
  out.checks.push_back(make_check(fmt::format("beta(local) at d = {} / at d = {}, CNN NTK (means)", ds[1], ds[0]),
                                  b("cnn", "local", ds[1]) / b("cnn", "local", ds[0]), ">=", 0.75));
  for (auto d : ds)
    for (const char* t : {"local", "meta"})
      out.checks.push_back(make_check(fmt::format("d = {}: beta({}) CNN NTK - fully connected NTK (means)", d, t),
                                      b("cnn", t, d) - b("fc", t, d), ">", 0));
  if (ctx.run) write_figures(*ctx.run, rows);
  return out;
}

}  // namespace

ReproEntry make_cnn_kernel_curves_repro() {
  ReproEntry e;
  e.name = "cnn-kernel-curves";
  e.paper = "What Can Be Learnt With Wide Convolutional Neural Networks? (Favero, Cagnetta, Wyart; ICML 2023)";
  e.claim = "Ridgeless regression with the NTK of a deep CNN with non-overlapping filters adapts to the spatial scale of the target: "
            "the learning-curve exponent beta is set by the dimension of the patch or meta-patch the target depends on, so beta(local) "
            "> beta(meta-patch) > beta(global), beta(global) shrinks with the input dimension while beta(local) does not, and a fully "
            "connected NTK learns local targets with a smaller beta.";
  e.options = {{"filter", "filter size s (d = s^L)", 2, 2, true},
               {"depth_small", "layers L of the smaller input (d = s^L)", 3, 3, true},
               {"depth_large", "layers L of the larger input", 4, 4, true},
               {"min_log2n", "smallest training set 2^k", 4, 4, true},
               {"max_log2n", "largest training set 2^k (the pool)", 11, 9, true},
               {"test", "test points", 512, 256, true}};
  e.run_seed = run_seed;
  e.summarise = summarise;
  return e;
}

}  // namespace stablelearn::experiments::repro
