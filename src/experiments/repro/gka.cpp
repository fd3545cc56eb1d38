// repro gka: Peng, Chattopadhyay, Zancato, Nunez, Xia, Soatto, "Gated KalmaNet: A Fading Memory
// Layer Through Test-Time Ridge Regression" (arXiv 2511.21016, CVPR 2026; shared/specs/papers-19-35.md
// §19), the spec's smallest faithful CPU experiments:
//
// (i) recall under load: multi-query associative recall (data/sequences.h: `pairs` key-value pairs of
//     64 keys and 64 values, then every key queried once in a random order) at `loads` numbers of
//     pairs, doubling from `min_pairs`; three 2-layer models of identical layout and initial weights
//     (models/recurrent_lm.h: short convolution, mixer, MLP; d = `d_model`, `heads` heads, so the
//     state is D × D per head for all three) that differ only in the mixer: GKA, gated linear
//     attention and the gated delta rule (models/gka.h). Adam on a fresh batch every step; held-out
//     accuracy at the queries (chance 1/64).
// (ii) the solve under reduced precision: `systems` systems (H + λI)x = q with H the fading sum of 256
//     strongly correlated unit keys in D = 16 (γ = 0.99, cond(H) ≈ 10³), unit q, λ = 0.02‖H‖_F; the
//     30-step Chebyshev solve, 30 steps of conjugate gradients and the unregularised solve (λ = 0)
//     with every intermediate rounded to float16 or bfloat16 (emulated on CPU), each against the
//     float64 solution of its own system (relative error of all systems together).
//
// Checks, fixed from the paper's claims before any run (means over seeds):
//   the task is learned at the smallest load   GKA accuracy at the smallest load ≥ 0.5 (precondition)
//   GKA recalls best under the largest load     GKA − linear attention ≥ 0, GKA − delta rule ≥ 0
//   and the gap grows with the load            (GKA − linear) at the largest load − at the smallest ≥ 0,
//                                              the same for the delta rule
//   Chebyshev stays accurate (≈ ε·κ, κ ≤ 51)   Chebyshev error ≤ 51 ε: float16 ≤ 51·2⁻¹¹, bfloat16 ≤ 51·2⁻⁸
//   where the others degrade (≥ 10× worse)     unregularised / Chebyshev ≥ 10 in bfloat16;
//                                              CG / Chebyshev ≥ 10 in float16 and in bfloat16
#include <fmt/format.h>
#include <torch/torch.h>

#include "entries.h"
#include "stablelearn/core/error.h"
#include "stablelearn/core/run.h"
#include "stablelearn/data/sequences.h"
#include "stablelearn/models/recurrent_lm.h"
#include "stablelearn/report/svg.h"

namespace stablelearn::experiments::repro {

using nlohmann::json;
namespace sm = stablelearn::models;
namespace gk = stablelearn::models::gka;

namespace {

struct Mixer {
  const char* key;
  const char* label;
};
const std::vector<Mixer>& mixers() {
  static const std::vector<Mixer> m = {{"gka", "GKA"}, {"linear", "gated linear attention"}, {"delta", "gated delta rule"}};
  return m;
}

std::vector<std::int64_t> loads(const ReproContext& ctx) {
  std::vector<std::int64_t> p;
  for (std::int64_t i = 0, n = ctx.int_option("min_pairs"); i < ctx.int_option("loads"); ++i, n *= 2) p.push_back(n);
  return p;
}

data::MqarOptions mqar_options(std::int64_t pairs) {
  data::MqarOptions d;
  d.pairs = pairs;
  d.queries = pairs;
  d.keys = 64;
  d.values = 64;
  options::check(d, "options");
  return d;
}

sm::RecurrentLmOptions model_options(const ReproContext& ctx, const std::string& mixer) {
  sm::RecurrentLmOptions o;
  o.vocab = 128;
  o.layers = 2;
  o.mixer.d_model = ctx.int_option("d_model");
  o.mixer.heads = ctx.int_option("heads");
  o.mixer.mixer = mixer;
  options::check(o, "options");
  return o;
}

// Held-out accuracy at the queries of one trained model.
double train_and_test(const ReproContext& ctx, const std::string& mixer, std::int64_t pairs, std::uint64_t seed,
                      const std::function<void(std::int64_t, double)>& report) {
  const auto d = mqar_options(pairs);
  torch::manual_seed(seed);  // the same initial weights for every mixer (one layout)
  sm::RecurrentLm lm(model_options(ctx, mixer));
  torch::optim::Adam opt(lm->parameters(), torch::optim::AdamOptions(ctx.option("lr")));
  const auto steps = ctx.int_option("steps"), batch = ctx.int_option("batch");
  auto loss_of = [&](const data::SequenceSet& b) {
    return torch::nn::functional::cross_entropy(lm->forward(b.tokens).reshape({-1, 128}), b.targets.reshape({-1}));
  };
  for (std::int64_t step = 1; step <= steps; ++step) {
    const auto loss = loss_of(data::mqar(d, batch, derive_seed(static_cast<std::int64_t>(seed), step, 1)));
    const double l = loss.item<double>();
    SL_CHECK(std::isfinite(l), DataError, "repro gka: the training loss of the ", mixer, " model at ", pairs,
             " pairs is not finite at step ", step, "; lower --set lr");
    opt.zero_grad();
    loss.backward();
    torch::nn::utils::clip_grad_norm_(lm->parameters(), 1.0);
    opt.step();
    if (step % 50 == 0 || step == steps) report(step, l);
  }
  torch::NoGradGuard ng;
  const auto test = data::mqar(d, ctx.int_option("test_samples"), derive_seed(static_cast<std::int64_t>(seed), 0, 2));
  const auto asked = test.targets.ne(data::kIgnore);
  return lm->forward(test.tokens).argmax(-1).eq(test.targets).masked_select(asked).to(torch::kFloat64).mean().item<double>();
}

double rel_err(const torch::Tensor& x, const torch::Tensor& ref) {
  return ((x.to(torch::kFloat64) - ref).norm() / ref.norm()).item<double>();
}

// Errors of the solvers under emulated reduced precision on `n` systems drawn from `seed`.
json precision_errors(std::int64_t n, std::uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  const auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  const std::int64_t D = 16, T = 256;
  const auto unit = torch::nn::functional::NormalizeFuncOptions().dim(-1);
  const auto c = torch::randn({n, 1, D}, gen, f64);
  const auto k = torch::nn::functional::normalize(c + 0.1 * torch::randn({n, T, D}, gen, f64), unit);
  auto H = torch::zeros({n, D, D}, f64);
  for (std::int64_t t = 0; t < T; ++t) H = 0.99 * H + k.select(1, t).unsqueeze(-1) * k.select(1, t).unsqueeze(-2);
  const auto q = torch::nn::functional::normalize(torch::randn({n, D}, gen, f64), unit);
  const auto lam = gk::adaptive_ridge(H, 0.02), zero = torch::zeros_like(lam);
  const auto ref = gk::exact_solve(H, q, lam), ref0 = gk::exact_solve(H, q, zero);
  const auto H32 = H.to(torch::kFloat32), q32 = q.to(torch::kFloat32), l32 = lam.to(torch::kFloat32), z32 = zero.to(torch::kFloat32);
  json out = {{"median_condition_number", torch::linalg_cond(H).median().item<double>()}};
  const std::vector<std::pair<const char*, std::optional<torch::ScalarType>>> types = {
      {"float32", std::nullopt}, {"float16", torch::kHalf}, {"bfloat16", torch::kBFloat16}};
  for (const auto& [name, t] : types) {
    out[name] = {{"chebyshev", rel_err(gk::chebyshev_solve(H32, q32, l32, 30, t), ref)},
                 {"cg", rel_err(gk::conjugate_gradient_solve(H32, q32, l32, 30, t), ref)},
                 {"regularised_exact", rel_err(gk::exact_solve(H32, q32, l32, t), ref)},
                 {"unregularised_exact", rel_err(gk::exact_solve(H32, q32, z32, t), ref0)}};
  }
  return out;
}

json run_seed(const ReproContext& ctx, std::int64_t k) {
  const auto seed = ctx.seed + static_cast<std::uint64_t>(k);
  const auto progress = seed_progress(ctx, k);
  const auto ps = loads(ctx);
  json recall = json::array();
  std::int64_t done = 0;
  const auto total = static_cast<std::int64_t>(ps.size() * mixers().size());
  for (std::size_t l = 0; l < ps.size(); ++l) {
    json row = {{"pairs", ps[l]}};
    for (const auto& m : mixers()) {
      const auto init = derive_seed(static_cast<std::int64_t>(seed), static_cast<std::int64_t>(l), 3);
      row[m.key] = train_and_test(ctx, m.key, ps[l], init, [&](std::int64_t step, double loss) {
        progress(done * ctx.int_option("steps") + step, total * ctx.int_option("steps"),
                 fmt::format("{} pairs, {}, loss {:.3f}", ps[l], m.key, loss));
      });
      ++done;
    }
    recall.push_back(row);
  }
  return {{"recall", recall},
          {"precision", precision_errors(ctx.int_option("systems"), derive_seed(static_cast<std::int64_t>(seed), 0, 4))}};
}

void write_figure(const RunDir& run, const std::vector<json>& rows, const std::vector<std::int64_t>& ps) {
  const std::vector<std::string> colours = {"#d62728", "#1f77b4", "#2ca02c"};
  report::SvgPlot plot(720, 440);
  plot.set_range(std::log2(double(ps.front())) - 0.2, std::log2(double(ps.back())) + 0.2, 0, 1.05);
  plot.title("MQAR: held-out recall accuracy against the number of key-value pairs");
  plot.labels("log2(pairs)", "accuracy at the queries (mean over seeds)");
  for (std::size_t m = 0; m < mixers().size(); ++m) {
    std::vector<std::pair<double, double>> pts;
    for (std::size_t l = 0; l < ps.size(); ++l)
      pts.emplace_back(std::log2(double(ps[l])),
                       mean(per_seed_at(rows, fmt::format("/recall/{}/{}", l, mixers()[m].key))));
    plot.polyline(pts, colours[m], 2.0);
    for (const auto& [x, y] : pts) plot.marker(x, y, colours[m], 3);
    plot.legend(mixers()[m].label, colours[m]);
  }
  run.write_text("gka_mqar.svg", plot.str());
}

ReproOutcome summarise(const ReproContext& ctx, const std::vector<json>& rows) {
  const auto ps = loads(ctx);
  const auto mo = model_options(ctx, "gka");
  ReproOutcome out;
  out.setup = {
      {"data", fmt::format("MQAR: {} key-value pairs (64 keys, 64 values), every key queried once; a fresh batch of {} every "
                           "step, {} held-out sequences",
                           fmt::join(ps, " / "), ctx.int_option("batch"), ctx.int_option("test_samples"))},
      {"model", fmt::format("2 blocks (LayerNorm, causal short convolution 4 + SiLU, mixer, MLP 4d), d = {}, {} heads (state {} x {} "
                            "per head), no position embedding: {} parameters for every mixer",
                            mo.mixer.d_model, mo.mixer.heads, mo.mixer.head_dim(), mo.mixer.head_dim(),
                            sm::recurrent_lm_layout(mo).numel())},
      {"mixers", "GKA (lambda = 0.02 ||H||_F, 30 Chebyshev steps, chunk 64), gated linear attention, gated delta rule; the same "
                 "initial weights"},
      {"training", fmt::format("Adam lr {}, gradient norm clipped at 1, {} steps", ctx.option("lr"), ctx.int_option("steps"))},
      {"precision", fmt::format("{} systems: H = fading sum (gamma 0.99) of 256 correlated unit keys in D = 16, unit q, lambda = "
                                "0.02 ||H||_F; 30 Chebyshev steps, 30 CG steps, exact solves; every intermediate rounded",
                                ctx.int_option("systems"))}};
  std::map<std::string, std::vector<double>> acc;  // "<mixer>@<l>" per seed
  for (std::size_t l = 0; l < ps.size(); ++l)
    for (const auto& m : mixers()) {
      const auto v = per_seed_at(rows, fmt::format("/recall/{}/{}", l, m.key));
      acc[fmt::format("{}@{}", m.key, l)] = v;
      put_seed_stats(out, fmt::format("accuracy_{}_pairs{}", m.key, ps[l]), v);
    }
  const auto last = ps.size() - 1;
  auto gap = [&](const char* other, std::size_t l) {
    std::vector<double> g;
    for (std::size_t s = 0; s < rows.size(); ++s) g.push_back(acc[fmt::format("gka@{}", l)][s] - acc[fmt::format("{}@{}", other, l)][s]);
    return g;
  };
  std::map<std::string, double> m;
  for (const char* other : {"linear", "delta"}) {
    const auto lo = gap(other, 0), hi = gap(other, last);
    std::vector<double> growth;
    for (std::size_t s = 0; s < lo.size(); ++s) growth.push_back(hi[s] - lo[s]);
    out.metrics[fmt::format("gka_minus_{}_largest_load", other)] = seeds_json(hi);
    out.metrics[fmt::format("gka_minus_{}_gap_growth", other)] = seeds_json(growth);
    m[fmt::format("hi_{}", other)] = mean(hi);
    m[fmt::format("growth_{}", other)] = mean(growth);
  }
  for (const char* t : {"float32", "float16", "bfloat16"})
    for (const char* s : {"chebyshev", "cg", "regularised_exact", "unregularised_exact"}) {
      const auto v = per_seed_at(rows, fmt::format("/precision/{}/{}", t, s));
      out.metrics[fmt::format("error_{}_{}", t, s)] = seeds_json(v);
      m[fmt::format("{}_{}", t, s)] = mean(v);
    }
  out.metrics["median_condition_number"] = seeds_json(per_seed_at(rows, "/precision/median_condition_number"));
  const double eps16 = std::ldexp(1.0, -11), epsbf = std::ldexp(1.0, -8);
  out.checks = {
      make_check(fmt::format("precondition, the task is learned: GKA accuracy at {} pairs (mean; chance 1/64)", ps.front()),
                 mean(acc["gka@0"]), ">=", 0.5),
      make_check(fmt::format("GKA recalls best: GKA - gated linear attention at {} pairs (mean)", ps[last]), m["hi_linear"], ">=", 0),
      make_check(fmt::format("GKA recalls best: GKA - gated delta rule at {} pairs (mean)", ps[last]), m["hi_delta"], ">=", 0),
      make_check(fmt::format("the gap grows with the load: (GKA - linear) at {} pairs - at {} pairs (mean)", ps[last], ps.front()),
                 m["growth_linear"], ">=", 0),
      make_check(fmt::format("the gap grows with the load: (GKA - delta) at {} pairs - at {} pairs (mean)", ps[last], ps.front()),
                 m["growth_delta"], ">=", 0),
      make_check("Chebyshev stays accurate in float16: relative error <= 51 eps16 (mean)", m["float16_chebyshev"], "<=", 51 * eps16),
      make_check("Chebyshev stays accurate in bfloat16: relative error <= 51 eps_bf16 (mean)", m["bfloat16_chebyshev"], "<=", 51 * epsbf),
      make_check("the unregularised solve degrades in bfloat16: its error / Chebyshev's (mean)",
                 m["bfloat16_unregularised_exact"] / m["bfloat16_chebyshev"], ">=", 10),
      make_check("CG degrades in float16: its error / Chebyshev's (mean)", m["float16_cg"] / m["float16_chebyshev"], ">=", 10),
      make_check("CG degrades in bfloat16: its error / Chebyshev's (mean)", m["bfloat16_cg"] / m["bfloat16_chebyshev"], ">=", 10)};
  if (ctx.run) write_figure(*ctx.run, rows, ps);
  return out;
}

}  // namespace

ReproEntry make_gka_repro() {
  ReproEntry e;
  e.name = "gka";
  e.paper = "Gated KalmaNet: A Fading Memory Layer Through Test-Time Ridge Regression (Peng, Chattopadhyay, Zancato, Nunez, Xia, "
            "Soatto, arXiv 2511.21016, CVPR 2026)";
  e.claim = "GKA, a fading-memory layer that solves a regularised ridge regression at every token, recalls better than gated "
            "linear attention and the gated delta rule at equal state size, increasingly so as the number of key-value pairs "
            "grows; its adaptive regularisation and Chebyshev solve stay accurate in reduced precision where conjugate gradients "
            "or the unregularised solve degrade.";
  e.options = {{"min_pairs", "key-value pairs of the smallest load", 4, 4, true},
               {"loads", "loads, doubling the pairs from min_pairs", 3, 2, true},
               {"steps", "Adam steps per model", 1500, 60, true},
               {"batch", "sequences per step", 16, 16, true},
               {"lr", "Adam learning rate", 3e-3, 3e-3, false},
               {"d_model", "model width d", 32, 16, true},
               {"heads", "heads (state D x D per head, D = d / heads)", 4, 2, true},
               {"test_samples", "held-out sequences per load", 512, 64, true},
               {"systems", "linear systems of the precision test", 32, 8, true}};
  e.run_seed = run_seed;
  e.summarise = summarise;
  return e;
}

}  // namespace stablelearn::experiments::repro
