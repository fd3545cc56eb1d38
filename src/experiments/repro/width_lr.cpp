// repro width-lr: Haas, Bordt, von Luxburg, Vankadara, "On the Surprising Effectiveness of Large
// Learning Rates under Standard Width Scaling" (NeurIPS 2025; shared/specs/papers-01-18.md §10), the
// spec's smallest faithful experiment: Fashion-MNIST MLPs with two hidden layers of width n in
// standard parametrisation (He initialisation N(0, 2/fan_in) for every layer, zero biases, one
// global learning rate), plain SGD, batch 128; for each width and loss (cross-entropy; MSE on the
// one-hot labels, ½‖f − y‖² averaged over samples) the largest stable learning rate η_max: the
// largest η on the grid 2^(k/2) whose run stays finite and ends with a training loss below the
// initial one. A run stops early (unstable) when its loss is not finite or exceeds 1000× the
// initial loss. The exponents are the least-squares slopes of log η_max against log n.
// Controlled divergence: cross-entropy at η_n = c n^(−1/2), c = η_max(CE, smallest width) · √n₀ / 2,
// and the RMS of the logits after training against width (the paper: it grows like n^(1/2) while
// training still improves).
//
// Checks, fixed from the spec before any run (medians over seeds):
//   |CE exponent − (−1/2)| <= 0.25;  |MSE exponent − (−1)| <= 0.25;
//   MSE exponent − CE exponent <= −0.25 (MSE's stable rate falls faster with width);
//   slope of log logit-RMS against log n at η = c n^(−1/2) >= 0.25.
#include <fmt/format.h>
#include <torch/torch.h>

#include "entries.h"
#include "stablelearn/core/error.h"
#include "stablelearn/core/run.h"
#include "stablelearn/data/cl_streams.h"

namespace stablelearn::experiments::repro {

using nlohmann::json;

namespace {

struct Data {
  torch::Tensor x, y, x_eval, y_eval;  // flattened float32 images, int64 labels; eval = a fixed training subset
};

Data load(const ReproContext& ctx) {
  const auto d = data::load_fashion_mnist();
  const auto n = std::min<std::int64_t>(ctx.int_option("samples"), d.train.size());
  Data out;
  out.x = d.train.images.slice(0, 0, n).reshape({n, -1});
  out.y = d.train.labels.slice(0, 0, n);
  const auto m = std::min<std::int64_t>(2048, n);
  out.x_eval = out.x.slice(0, 0, m);
  out.y_eval = out.y.slice(0, 0, m);
  return out;
}

struct Mlp {
  std::vector<torch::Tensor> w, b;
  torch::Tensor forward(const torch::Tensor& x) const {
    auto h = x;
    for (std::size_t l = 0; l + 1 < w.size(); ++l) h = torch::relu(torch::addmm(b[l], h, w[l].t()));
    return torch::addmm(b.back(), h, w.back().t());
  }
};

Mlp make_mlp(std::int64_t width, std::uint64_t seed) {
  torch::manual_seed(seed);
  Mlp m;
  const std::vector<std::int64_t> sizes = {784, width, width, 10};
  for (std::size_t l = 0; l + 1 < sizes.size(); ++l) {
    m.w.push_back((torch::randn({sizes[l + 1], sizes[l]}) * std::sqrt(2.0 / static_cast<double>(sizes[l]))).requires_grad_());
    m.b.push_back(torch::zeros({sizes[l + 1]}).requires_grad_());
  }
  return m;
}

torch::Tensor loss_of(const std::string& loss, const torch::Tensor& f, const torch::Tensor& y) {
  if (loss == "ce") return torch::nn::functional::cross_entropy(f, y);
  return 0.5 * (f - torch::one_hot(y, 10).to(f.dtype())).pow(2).sum(1).mean();
}

struct RunResult {
  bool stable = false;
  double initial = 0, final_loss = 0, logit_rms = 0, accuracy = 0;
  std::int64_t steps_run = 0;
};

RunResult train(const ReproContext& ctx, const Data& d, const std::string& loss, std::int64_t width, double lr, std::uint64_t seed) {
  auto m = make_mlp(width, seed);
  std::vector<torch::Tensor> params = m.w;
  params.insert(params.end(), m.b.begin(), m.b.end());
  auto eval_loss = [&] {
    torch::NoGradGuard ng;
    return loss_of(loss, m.forward(d.x_eval), d.y_eval).item<double>();
  };
  RunResult r;
  r.initial = eval_loss();
  auto gen = at::detail::createCPUGenerator(seed * 104729 + 7);  // the same batches for every rate
  const auto steps = ctx.int_option("steps"), batch = ctx.int_option("batch");
  bool ok = true;
  for (std::int64_t s = 0; s < steps && ok; ++s) {
    const auto idx = torch::randint(d.x.size(0), {batch}, gen, torch::kInt64);
    const auto l = loss_of(loss, m.forward(d.x.index_select(0, idx)), d.y.index_select(0, idx));
    const double lv = l.item<double>();
    if (!std::isfinite(lv) || lv > 1000 * r.initial) {
      ok = false;
      break;
    }
    const auto g = torch::autograd::grad({l}, params);
    torch::NoGradGuard ng;
    for (std::size_t i = 0; i < params.size(); ++i) params[i].sub_(g[i], lr);
    r.steps_run = s + 1;
  }
  torch::NoGradGuard ng;
  const auto f = m.forward(d.x_eval);
  r.final_loss = loss_of(loss, f, d.y_eval).item<double>();
  r.logit_rms = f.pow(2).mean().sqrt().item<double>();
  r.accuracy = f.argmax(1).eq(d.y_eval).to(torch::kFloat64).mean().item<double>();
  r.stable = ok && std::isfinite(r.final_loss) && r.final_loss < r.initial;
  return r;
}

std::vector<std::int64_t> widths(const ReproContext& ctx) {
  std::vector<std::int64_t> w;
  for (std::int64_t n = ctx.int_option("min_width"); n <= ctx.int_option("max_width"); n *= 2) w.push_back(n);
  return w;
}

/// Least-squares slope of log y against log x.
double loglog_slope(const std::vector<double>& x, const std::vector<double>& y) {
  const auto n = static_cast<double>(x.size());
  double sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double a = std::log(x[i]), b = std::log(y[i]);
    sx += a, sy += b, sxx += a * a, sxy += a * b;
  }
  return (n * sxy - sx * sy) / (n * sxx - sx * sx);
}

json run_seed(const ReproContext& ctx, std::int64_t k) {
  const auto d = load(ctx);
  const auto seed = ctx.seed + static_cast<std::uint64_t>(k);
  const auto ws = widths(ctx);
  const auto top = ctx.int_option("grid_top"), bottom = -ctx.int_option("grid_below");
  const auto progress = seed_progress(ctx, k);
  json out = json::object();
  std::int64_t done = 0;
  const auto total = static_cast<std::int64_t>(2 * ws.size() + ws.size());
  double eta_ce_smallest = 0;
  for (const std::string loss : {"ce", "mse"}) {
    json per_width = json::array();
    std::vector<double> xs, etas;
    for (const auto n : ws) {
      progress(done++, total, fmt::format("{} width {}", loss, n));
      json tried = json::array();
      double eta_max = std::nan("");
      for (auto kk = top; kk >= bottom; --kk) {  // from the top: the first stable rate is the largest
        const double lr = std::pow(2.0, static_cast<double>(kk) / 2);
        const auto r = train(ctx, d, loss, n, lr, seed);
        tried.push_back({{"lr", lr}, {"stable", r.stable}, {"final_loss", finite_or_null(r.final_loss)},
                         {"steps_run", r.steps_run}});
        if (r.stable) {
          eta_max = lr;
          break;
        }
      }
      SL_CHECK(std::isfinite(eta_max), DataError, "repro width-lr: no stable learning rate down to 2^(", bottom, "/2) for ",
               loss, " at width ", n, " (raise --set grid_below)");
      per_width.push_back({{"width", n}, {"eta_max", eta_max}, {"tried", tried}});
      xs.push_back(static_cast<double>(n));
      etas.push_back(eta_max);
      if (loss == "ce" && n == ws.front()) eta_ce_smallest = eta_max;
    }
    out[loss] = {{"widths", per_width}, {"exponent", loglog_slope(xs, etas)}};
  }
  // Controlled divergence: CE at η_n = c n^(−1/2).
  const double c = eta_ce_smallest * std::sqrt(static_cast<double>(ws.front())) / 2;
  json cd = json::array();
  std::vector<double> xs, rms;
  bool all_improve = true;
  for (const auto n : ws) {
    progress(done++, total, fmt::format("ce at c n^-1/2, width {}", n));
    const double lr = c / std::sqrt(static_cast<double>(n));
    const auto r = train(ctx, d, "ce", n, lr, seed);
    cd.push_back({{"width", n}, {"lr", lr}, {"stable", r.stable}, {"initial_loss", r.initial},
                  {"final_loss", finite_or_null(r.final_loss)}, {"logit_rms", finite_or_null(r.logit_rms)},
                  {"accuracy", r.accuracy}});
    all_improve = all_improve && r.stable;
    xs.push_back(static_cast<double>(n));
    rms.push_back(r.logit_rms);
  }
  progress(total, total, "done");
  out["controlled_divergence"] = {{"c", c}, {"runs", cd}, {"all_improve", all_improve},
                                  {"logit_rms_slope", finite_or_null(loglog_slope(xs, rms))}};
  return out;
}

ReproOutcome summarise(const ReproContext& ctx, const std::vector<json>& rows) {
  std::vector<double> ce, mse, gap, slope, improve;
  for (const auto& r : rows) {
    ce.push_back(r.at("ce").at("exponent").get<double>());
    mse.push_back(r.at("mse").at("exponent").get<double>());
    gap.push_back(mse.back() - ce.back());
    const auto& s = r.at("controlled_divergence").at("logit_rms_slope");
    slope.push_back(s.is_null() ? std::nan("") : s.get<double>());
    improve.push_back(r.at("controlled_divergence").at("all_improve").get<bool>() ? 1 : 0);
  }
  const auto ws = widths(ctx);
  ReproOutcome out;
  out.setup = {{"data", fmt::format("the first {} Fashion-MNIST training images (flattened, normalised); losses on a "
                                    "fixed subset of 2048 of them", ctx.int_option("samples"))},
               {"model", fmt::format("MLP 784-n-n-10, ReLU, He initialisation for every layer, zero biases; widths {} to {}",
                                     ws.front(), ws.back())},
               {"training", fmt::format("plain SGD, batch {}, {} steps; learning rates 2^(k/2), k = {} down to {}",
                                        ctx.int_option("batch"), ctx.int_option("steps"), ctx.int_option("grid_top"),
                                        -ctx.int_option("grid_below"))},
               {"eta_max", "the largest grid rate whose run stays finite (and below 1000x the initial loss) and ends below "
                           "the initial loss"},
               {"controlled divergence", "cross-entropy at eta = c n^(-1/2), c = eta_max(CE, smallest width) sqrt(n0) / 2"}};
  out.metrics["ce_exponent"] = seeds_json(ce);
  out.metrics["mse_exponent"] = seeds_json(mse);
  out.metrics["mse_minus_ce_exponent"] = seeds_json(gap);
  out.metrics["ce_logit_rms_slope_at_c_n^-1/2"] = seeds_json(slope);
  out.metrics["ce_runs_at_c_n^-1/2_all_improve"] = seeds_json(improve);
  for (const std::string loss : {"ce", "mse"})
    for (std::size_t i = 0; i < ws.size(); ++i) {
      std::vector<double> e;
      for (const auto& r : rows) e.push_back(r.at(loss).at("widths")[i].at("eta_max").get<double>());
      out.metrics[fmt::format("eta_max_{}_width{}", loss, ws[i])] = seeds_json(e);
    }
  out.checks = {make_check("|CE exponent - (-1/2)|", std::abs(median(ce) + 0.5), "<=", 0.25),
                make_check("|MSE exponent - (-1)|", std::abs(median(mse) + 1.0), "<=", 0.25),
                make_check("MSE exponent - CE exponent", median(gap), "<=", -0.25),
                make_check("slope of log logit RMS vs log width, CE at eta = c n^(-1/2)", median(slope), ">=", 0.25)};
  return out;
}

}  // namespace

ReproEntry make_width_lr_repro() {
  ReproEntry e;
  e.name = "width-lr";
  e.paper = "On the Surprising Effectiveness of Large Learning Rates under Standard Width Scaling (Haas, Bordt, von Luxburg, "
            "Vankadara; NeurIPS 2025)";
  e.claim = "In standard parametrisation the largest stable SGD learning rate falls like n^(-1/2) with cross-entropy but "
            "like n^(-1) with MSE, and at eta ~ n^(-1/2) cross-entropy training stays useful while its logits grow with "
            "width (controlled divergence).";
  e.options = {{"samples", "training images", 20000, 1000, true},
               {"steps", "SGD steps per run", 150, 20, true},
               {"batch", "batch size", 128, 32, true},
               {"min_width", "smallest width (then doubling)", 64, 32, true},
               {"max_width", "largest width", 2048, 128, true},
               {"grid_top", "largest grid exponent k of 2^(k/2)", 12, 8, true},
               {"grid_below", "-k of the smallest grid rate 2^(k/2)", 24, 24, true}};
  e.run_seed = run_seed;
  e.summarise = summarise;
  return e;
}

}  // namespace stablelearn::experiments::repro
