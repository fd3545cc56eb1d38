// repro mip: Ortiz, Guttag, Dalca, "Magnitude Invariant Parametrizations Improve Hypernetwork
// Learning" (ICLR 2024; shared/specs/papers-01-18.md §17): the default hypernetwork against MIP
// (models/hypernetwork.h: constant-norm input encoding, output θ₀ + Δθ) with equal steps, on
//   1. the spec's γ-conditioned task: a hypernetwork h(γ) (trunk [64, 128], ReLU) generates a
//      Fashion-MNIST MLP 784-`hidden`-10 trained on L(γ) = CE + γ·c·‖θ‖² (c = 1e-3), one
//      γ ~ U[0, 1] per batch of 128, Adam (lr 1e-3); the evaluation loss is L averaged over
//      γ ∈ {0, ¼, ½, ¾, 1} on a fixed set of 1000 training images, every `steps`/20 steps;
//   2. LfD: the first `tasks` LASA 2D shapes learned by a chunked hypernetwork generating an
//      autonomous sNODE (lfd train, model.mip = false / true), the same iterations; its training
//      loss (the rollout-window MSE) per iteration.
// Faster: steps for MIP's evaluation loss to reach the default's final one, as a fraction of the
// run. More stable: the spread over seeds of the final loss (std).
//
// Checks, fixed from the spec ("Expect MIP faster and more stable", 5 seeds) before any run
// (medians over seeds; std over seeds):
//   Fashion-MNIST: final loss MIP / default <= 1;
//                  fraction of the steps MIP needs to reach the default's final loss <= 0.75;
//                  std over seeds of the final loss, MIP / default <= 1;
//   LfD:           final training loss (mean over the last 10 % of the last task) MIP / default <= 1;
//                  std over seeds of that loss, MIP / default <= 1.
#include <filesystem>

#include <fmt/format.h>
#include <torch/torch.h>

#include "entries.h"
#include "stablelearn/core/error.h"
#include "stablelearn/core/run.h"
#include "stablelearn/data/cl_streams.h"
#include "stablelearn/lfd/trainer.h"
#include "stablelearn/models/hypernetwork.h"
#include "stablelearn/report/svg.h"

namespace stablelearn::experiments::repro {

using nlohmann::json;

namespace {

constexpr double kDecay = 1e-3;  // c of L(γ) = CE + γ c ‖θ‖²
constexpr std::int64_t kEvalPoints = 20;

struct Fmnist {
  torch::Tensor x, y, x_eval, y_eval;
};

Fmnist load(const ReproContext& ctx) {
  const auto d = data::load_fashion_mnist();
  const auto n = std::min<std::int64_t>(ctx.int_option("samples"), d.train.size());
  Fmnist f;
  f.x = d.train.images.slice(0, 0, n).reshape({n, -1});
  f.y = d.train.labels.slice(0, 0, n);
  const auto m = std::min<std::int64_t>(1000, n);
  f.x_eval = f.x.slice(0, 0, m);
  f.y_eval = f.y.slice(0, 0, m);
  return f;
}

models::WeightLayout mlp_layout(std::int64_t hidden) {
  models::WeightLayout l;
  l.add("w0", {hidden, 784}).add("b0", {hidden}).add("w1", {10, hidden}).add("b1", {10});
  return l;
}

torch::Tensor objective(const models::WeightLayout& layout, const torch::Tensor& theta, const torch::Tensor& x,
                        const torch::Tensor& y, double gamma) {
  const auto w = layout.split(theta);
  const auto logits = torch::linear(torch::relu(torch::linear(x, w[0], w[1])), w[2], w[3]);
  return torch::nn::functional::cross_entropy(logits, y) + gamma * kDecay * theta.pow(2).sum();
}

double eval_loss(const models::WeightLayout& layout, models::ConditionedHyperNetwork& hn, const Fmnist& d) {
  torch::NoGradGuard ng;
  double s = 0;
  for (const double g : {0.0, 0.25, 0.5, 0.75, 1.0})
    s += objective(layout, hn->forward(torch::tensor({static_cast<float>(g)})), d.x_eval, d.y_eval, g).item<double>();
  return s / 5;
}

/// One γ-conditioned run: the evaluation curve [(step, loss)].
json run_fmnist(const ReproContext& ctx, const Fmnist& d, bool mip, std::uint64_t seed) {
  const auto layout = mlp_layout(ctx.int_option("hidden"));
  torch::manual_seed(seed);
  models::ConditionedHyperNetwork hn(models::ConditionedHyperNetworkOptions(layout, 1).hidden({64, 128}).mip(mip));
  torch::optim::Adam opt(hn->parameters(), torch::optim::AdamOptions(1e-3));
  auto gen = at::detail::createCPUGenerator(seed * 7 + 5);  // the same batches and γ for both variants
  const auto steps = ctx.int_option("steps"), every = std::max<std::int64_t>(1, steps / kEvalPoints);
  json curve = json::array();
  curve.push_back({0, eval_loss(layout, hn, d)});
  for (std::int64_t s = 0; s < steps; ++s) {
    const auto idx = torch::randint(d.x.size(0), {128}, gen, torch::kInt64);
    const double g = torch::rand({1}, gen, torch::kFloat64).item<double>();
    const auto theta = hn->forward(torch::tensor({static_cast<float>(g)}));
    const auto loss = objective(layout, theta, d.x.index_select(0, idx), d.y.index_select(0, idx), g);
    opt.zero_grad();
    loss.backward();
    opt.step();
    if ((s + 1) % every == 0 || s + 1 == steps) curve.push_back({s + 1, eval_loss(layout, hn, d)});
  }
  return curve;
}

/// The first step of `curve` at or below `target` as a fraction of the run (NaN if never).
double fraction_to_reach(const json& curve, double target, double steps) {
  for (const auto& p : curve)
    if (p[1].get<double>() <= target) return p[0].get<double>() / steps;
  return std::nan("");
}

lfd::LfdConfig lfd_config(const ReproContext& ctx, std::int64_t k, bool mip) {
  lfd::LfdConfig c;
  c.dataset = "lasa2d";
  c.tasks = ctx.int_option("tasks");
  c.target = "snode";
  c.hnet = "chn";
  c.mip = mip;
  c.fhat_layers = 3;
  c.h = ctx.int_option("lfd_hidden");
  c.hp = ctx.int_option("lfd_hidden") / 2;
  c.eps = 1e-3;
  c.explicit_time = false;
  c.hnet_hidden = {ctx.int_option("hnet_hidden"), ctx.int_option("hnet_hidden")};
  c.task_emb_dim = 32;
  c.chunk_emb_dim = 32;
  c.chunk_dim = 1024;
  c.iterations = ctx.int_option("iterations");
  c.lr = 1e-3;
  c.beta = 0.005;
  c.num_regs = 1;
  c.evaluate = false;
  c.seed = static_cast<std::int64_t>(ctx.seed) + k;
  c.log_every = std::max<std::int64_t>(1, c.iterations / 10);
  return c;
}

/// One LfD run: the training loss of every iteration, task after task.
std::vector<double> run_lfd(const ReproContext& ctx, std::int64_t k, bool mip) {
  const auto dir = ctx.run->path() / fmt::format("lfd_seed{}_{}", k, mip ? "mip" : "default");
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  lfd::LfdTrainer trainer(lfd_config(ctx, k, mip), dir);
  std::vector<double> losses;
  const auto progress = seed_progress(ctx, k, mip ? "lfd mip" : "lfd default");
  trainer.run(false, [&](const lfd::TrainProgress& p) {
    losses.push_back(p.loss);
    progress(p.task * p.iterations + p.iteration, p.tasks * p.iterations, fmt::format("task {}/{}", p.task + 1, p.tasks));
  });
  return losses;
}

/// The last 10 % of the last task's losses.
std::vector<double> tail(const std::vector<double>& losses, std::int64_t iterations) {
  const auto n = std::min<std::size_t>(losses.size(), static_cast<std::size_t>(std::max<std::int64_t>(1, iterations / 10)));
  return {losses.end() - static_cast<std::ptrdiff_t>(n), losses.end()};
}
double mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return s / static_cast<double>(v.size());
}

double stddev(const std::vector<double>& v) {
  if (v.size() < 2) return std::nan("");
  double m = 0;
  for (double x : v) m += x;
  m /= static_cast<double>(v.size());
  double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / static_cast<double>(v.size() - 1));
}

void write_figure(const RunDir& run, const json& row) {
  report::SvgPlot plot(720, 440);
  double ymax = 0, ymin = 1e9, xmax = 1;
  for (const char* m : {"default", "mip"})
    for (const auto& p : row.at("fmnist").at(m).at("curve")) {
      ymax = std::max(ymax, p[1].get<double>());
      ymin = std::min(ymin, p[1].get<double>());
      xmax = std::max(xmax, p[0].get<double>());
    }
  if (!(ymax > ymin) || !std::isfinite(ymax)) return;
  plot.set_range(0, xmax, 0.9 * ymin, 1.05 * ymax);
  plot.title("gamma-conditioned hypernetwork, Fashion-MNIST (seed 0): default vs MIP");
  plot.labels("Adam step", "loss averaged over gamma in {0, 1/4, 1/2, 3/4, 1}");
  const std::vector<std::pair<const char*, const char*>> methods = {{"default", "#d62728"}, {"mip", "#1f77b4"}};
  for (const auto& [m, colour] : methods) {
    std::vector<std::pair<double, double>> pts;
    for (const auto& p : row.at("fmnist").at(m).at("curve")) pts.emplace_back(p[0].get<double>(), p[1].get<double>());
    plot.polyline(pts, colour, 2.0);
    plot.legend(m, colour);
  }
  run.write_text("mip_fmnist.svg", plot.str());
}

json run_seed(const ReproContext& ctx, std::int64_t k) {
  const auto seed = ctx.seed + static_cast<std::uint64_t>(k);
  const auto d = load(ctx);
  const auto progress = seed_progress(ctx, k, "fashion-mnist");
  const auto steps = static_cast<double>(ctx.int_option("steps"));
  progress(0, 2, "default");
  const auto def = run_fmnist(ctx, d, false, seed);
  progress(1, 2, "mip");
  const auto mip = run_fmnist(ctx, d, true, seed);
  const double fd = def.back()[1].get<double>(), fm = mip.back()[1].get<double>();
  json row;
  row["fmnist"] = {{"default", {{"curve", def}, {"final_loss", finite_or_null(fd)}}},
                   {"mip", {{"curve", mip}, {"final_loss", finite_or_null(fm)}}},
                   {"mip_over_default", finite_or_null(fm / fd)},
                   {"mip_fraction_to_default_final", finite_or_null(fraction_to_reach(mip, fd, steps))},
                   {"default_fraction_to_mip_final", finite_or_null(fraction_to_reach(def, fm, steps))}};
  const auto its = ctx.int_option("iterations");
  const auto ld = run_lfd(ctx, k, false), lm = run_lfd(ctx, k, true);
  const auto tail_d = tail(ld, its), tail_m = tail(lm, its);
  const double td = mean(tail_d), tm = mean(tail_m);
  auto every = [&](const std::vector<double>& v) {
    json a = json::array();
    for (std::size_t i = 0; i < v.size(); i += static_cast<std::size_t>(std::max<std::int64_t>(1, its / 20))) a.push_back(v[i]);
    return a;
  };
  row["lfd"] = {{"default", {{"final_loss", finite_or_null(td)}, {"losses", every(ld)}, {"tail", tail_d}}},
                {"mip", {{"final_loss", finite_or_null(tm)}, {"losses", every(lm)}, {"tail", tail_m}}},
                {"mip_over_default", finite_or_null(tm / td)},
                {"iterations_per_task", its}};
  if (k == 0) write_figure(*ctx.run, row);
  return row;
}

double num(const json& v) { return v.is_null() ? std::nan("") : v.get<double>(); }

ReproOutcome summarise(const ReproContext& ctx, const std::vector<json>& rows) {
  std::vector<double> f_def, f_mip, f_ratio, f_frac, f_frac_rev, l_def, l_mip, l_ratio;
  for (const auto& r : rows) {
    f_def.push_back(num(r.at("fmnist").at("default").at("final_loss")));
    f_mip.push_back(num(r.at("fmnist").at("mip").at("final_loss")));
    f_ratio.push_back(num(r.at("fmnist").at("mip_over_default")));
    f_frac.push_back(num(r.at("fmnist").at("mip_fraction_to_default_final")));
    f_frac_rev.push_back(num(r.at("fmnist").at("default_fraction_to_mip_final")));
    l_def.push_back(num(r.at("lfd").at("default").at("final_loss")));
    l_mip.push_back(num(r.at("lfd").at("mip").at("final_loss")));
    l_ratio.push_back(num(r.at("lfd").at("mip_over_default")));
  }
  ReproOutcome out;
  out.setup = {
      {"fashion-mnist", fmt::format("hypernetwork gamma -> MLP 784-{}-10 (trunk 64-128, ReLU), L(gamma) = CE + gamma 1e-3 "
                                    "|theta|^2, gamma ~ U[0,1] per batch of 128, Adam 1e-3, {} steps, first {} training "
                                    "images; evaluation: L averaged over gamma in {{0, 1/4, 1/2, 3/4, 1}} on 1000 of them",
                                    ctx.int_option("hidden"), ctx.int_option("steps"), ctx.int_option("samples"))},
      {"lfd", fmt::format("the first {} LASA 2D shapes, CHN (two hidden layers of {}, te = ce = 32, C = 1024) -> "
                          "autonomous sNODE (f-hat 3x{}, ICNN {}), {} iterations per task, Adam 1e-3, output regulariser "
                          "0.005; loss = the training window MSE, final = mean over the last 10 % of the last task",
                          ctx.int_option("tasks"), ctx.int_option("hnet_hidden"), ctx.int_option("lfd_hidden"),
                          ctx.int_option("lfd_hidden") / 2, ctx.int_option("iterations"))},
      {"mip", "embeddings / gamma encoded at constant norm (cos|sin for gamma), output theta0 + delta with theta0 "
              "initialised like the primary network (models/hypernetwork.h)"},
      {"runs", "RUN/lfd_seed<k>_default/, RUN/lfd_seed<k>_mip/ (lfd train directories)"}};
  out.metrics["fmnist_final_loss_default"] = seeds_json(f_def);
  out.metrics["fmnist_final_loss_mip"] = seeds_json(f_mip);
  out.metrics["fmnist_mip_over_default"] = seeds_json(f_ratio);
  out.metrics["fmnist_mip_fraction_to_default_final"] = seeds_json(f_frac);
  out.metrics["fmnist_default_fraction_to_mip_final"] = seeds_json(f_frac_rev);
  out.metrics["fmnist_std_default"] = finite_or_null(stddev(f_def));
  out.metrics["fmnist_std_mip"] = finite_or_null(stddev(f_mip));
  out.metrics["lfd_final_loss_default"] = seeds_json(l_def);
  out.metrics["lfd_final_loss_mip"] = seeds_json(l_mip);
  out.metrics["lfd_mip_over_default"] = seeds_json(l_ratio);
  out.metrics["lfd_std_default"] = finite_or_null(stddev(l_def));
  out.metrics["lfd_std_mip"] = finite_or_null(stddev(l_mip));
  out.checks = {
      make_check("Fashion-MNIST: final loss, MIP / default", median(f_ratio), "<=", 1.0),
      make_check("Fashion-MNIST: fraction of the steps MIP needs to reach the default's final loss", median(f_frac), "<=", 0.75),
      make_check("Fashion-MNIST: std over seeds of the final loss, MIP / default", stddev(f_mip) / stddev(f_def), "<=", 1.0),
      make_check("LfD: final training loss, MIP / default", median(l_ratio), "<=", 1.0),
      make_check("LfD: std over seeds of the final training loss, MIP / default", stddev(l_mip) / stddev(l_def), "<=", 1.0)};
  return out;
}

}  // namespace

ReproEntry make_mip_repro() {
  ReproEntry e;
  e.name = "mip";
  e.paper = "Magnitude Invariant Parametrizations Improve Hypernetwork Learning (Ortiz, Guttag, Dalca; ICLR 2024)";
  e.claim = "Encoding the hypernetwork's input at a constant norm and generating the weights as theta0 + delta (MIP) "
            "makes hypernetwork training converge faster and more stably than the default parametrisation.";
  e.options = {{"samples", "Fashion-MNIST training images", 10000, 2000, true},
               {"hidden", "hidden width of the generated MLP", 32, 16, true},
               {"steps", "Adam steps of the gamma-conditioned hypernetwork", 400, 60, true},
               {"tasks", "LASA 2D shapes (LfD part)", 2, 1, true},
               {"iterations", "LfD iterations per task", 200, 30, true},
               {"lfd_hidden", "width of the sNODE's f-hat (ICNN: half)", 32, 16, true},
               {"hnet_hidden", "width of the CHN's two hidden layers", 32, 16, true}};
  e.run_seed = run_seed;
  e.summarise = summarise;
  return e;
}

}  // namespace stablelearn::experiments::repro
