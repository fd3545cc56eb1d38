// repro care: Lou, Fu, Yu, "Scaling Continual Learning to 300+ Tasks with Bi-Level Routing
// Mixture-of-Experts" (ICML 2026, arXiv 2602.03473; shared/specs/papers-19-35.md §35), the spec's
// smallest faithful CPU experiment: CaRE (continual/care.h, after LMMMEng/CaRE) on a frozen
// backbone against fine-tuning, EWC, ER and a single adapter, on one pool of classes split into
// streams of increasingly many tasks (as the paper splits OmniBenchmark-1K into 100 … 301 tasks).
//
// Data: a pool of `classes` Gaussian-cluster classes in `input_dim` dimensions (class c: mean
// N(0, I) drawn from its own seed, samples mean + noise·N(0, I)), generated lazily per class, so a
// stream holds only the task being learned (and ER's memory). A stream of T tasks gives each task
// classes/T consecutive classes. Backbone: a stem Linear(input_dim → 128) + GELU and 2 residual
// MLP blocks z + W2 GELU(W1 LN(z)) (width 256) and an output LayerNorm, pretrained with Adam and a
// linear head on `pretrain_classes` further classes of the same generator (disjoint from the
// pool), then frozen. CaRE puts one BR-MoE layer in parallel with each block's MLP (expert
// bottleneck 8, shared adapter 32, M = 2, K = 3, μ = 0.999).
//
// Methods (all SGD, batch 16, lr 0.01, momentum 0.9, `epochs` epochs per task, cosine schedule
// per task):
//   care      the learner of continual/care.h (its options; ca_samples pseudo-features per class);
//   adapter   one bottleneck adapter (32) per block in the same parallel place, the same cosine
//             head and loss on the task's classes, statistics and classifier alignment after every
//             task from the second on (CaRE without experts, routers, recognisers or anchor);
//   finetune  the blocks (not the stem) and a linear head, cross-entropy over the seen classes;
//   ewc       finetune + (λ/2) Σ F (θ − θ*)² with the empirical diagonal Fisher of 50 samples per
//             task summed over tasks and θ* the end of the previous task (online EWC, γ = 1);
//   er        finetune + a reservoir memory of `er_memory` samples, 16 of them replayed per step.
// Metrics per stream: final average accuracy over the pool's test samples (equal per task, so the
// mean over tasks), forgetting = mean over tasks but the last of (accuracy just after learning
// the task − final accuracy), wall time per task and, for CaRE, the floats it stores after each
// task (parameters + class means and covariances).
//
// Checks, fixed from the paper's claim before any run (means over seeds; L = every stream length,
// S = the shortest, Lmax = the longest; r = time_ref_task):
//   precondition: CaRE learns            CaRE final accuracy at S ≥ 10 / classes (10× chance)
//   CaRE beats every baseline            CaRE − {finetune, ewc, er, adapter} final accuracy > 0 at every L
//   accuracy holds as the stream grows   CaRE accuracy at Lmax − at S ≥ −0.05
//   per-task time grows ≤ linearly in    [median time of tasks Lmax−4..Lmax] / [median time of tasks r−2..r+2]
//   the experts                          ÷ (Lmax / r) ≤ 2 (tasks counted from 1)
//   per-task memory grows ≤ linearly     [stored floats added by task Lmax] / [added by task r] ÷ (Lmax / r) ≤ 2
// The default runs the streams of 20 and 100 tasks; `--set streams=3` adds the 300-task stream
// (docs/repro.md gives the command and its time).
#include <algorithm>
#include <chrono>
#include <numeric>
#include <fmt/format.h>
#include <torch/torch.h>

#include "entries.h"
#include "stablelearn/continual/care.h"
#include "stablelearn/core/error.h"
#include "stablelearn/core/run.h"
#include "stablelearn/report/svg.h"

namespace stablelearn::experiments::repro {

using nlohmann::json;
namespace cc = stablelearn::continual::care;
namespace F = torch::nn::functional;

namespace {

constexpr std::int64_t kWidth = 128, kHidden = 256, kBlocks = 2;
const std::vector<std::string>& method_keys() {
  static const std::vector<std::string> m = {"care", "adapter", "finetune", "ewc", "er"};
  return m;
}

std::vector<std::int64_t> stream_lengths(const ReproContext& ctx) {
  std::vector<std::int64_t> v = {ctx.int_option("tasks_short"), ctx.int_option("tasks_mid")};
  SL_CHECK(ctx.int_option("streams") == 2 || ctx.int_option("streams") == 3, ConfigError,
           "repro care: streams must be 2 or 3, got ", ctx.int_option("streams"));
  if (ctx.int_option("streams") == 3) v.push_back(ctx.int_option("tasks_long"));
  for (auto t : v)
    SL_CHECK(t >= 2 && ctx.int_option("classes") % t == 0 && ctx.int_option("classes") / t >= 2, ConfigError,
             "repro care: every stream length must divide classes = ", ctx.int_option("classes"),
             " into tasks of at least 2 classes, got ", t);
  return v;
}

// ---- data ---------------------------------------------------------------------------------------
struct Pool {
  std::int64_t dim = 32;
  double noise = 1;
  std::int64_t seed = 0;
  torch::Tensor mean(std::int64_t c) const {
    auto g = at::detail::createCPUGenerator(derive_seed(seed, c, 701));
    return torch::randn({dim}, g, torch::kFloat32);
  }
  // n samples of class c; split 0 = train, 1 = test, 2 = pretraining.
  torch::Tensor samples(std::int64_t c, std::int64_t n, std::int64_t split) const {
    auto g = at::detail::createCPUGenerator(derive_seed(seed, c, 702 + split));
    return mean(c).unsqueeze(0) + noise * torch::randn({n, dim}, g, torch::kFloat32);
  }
  std::pair<torch::Tensor, torch::Tensor> classes(std::int64_t c0, std::int64_t c1, std::int64_t n, std::int64_t split) const {
    std::vector<torch::Tensor> xs;
    for (std::int64_t c = c0; c < c1; ++c) xs.push_back(samples(c, n, split));
    return {torch::cat(xs, 0), torch::arange(c0, c1, torch::kInt64).repeat_interleave(n)};
  }
};

// ---- the backbone -------------------------------------------------------------------------------
struct Block {
  torch::Tensor ln_w, ln_b, w1, b1, w2, b2;
  std::vector<torch::Tensor> params() const { return {ln_w, ln_b, w1, b1, w2, b2}; }
  torch::Tensor operator()(const torch::Tensor& z) const {
    const auto h = F::gelu(F::linear(torch::layer_norm(z, {kWidth}, ln_w, ln_b), w1, b1));
    return F::linear(h, w2, b2);
  }
  Block clone(bool grad) const {
    Block b{ln_w.detach().clone(), ln_b.detach().clone(), w1.detach().clone(), b1.detach().clone(), w2.detach().clone(), b2.detach().clone()};
    for (auto p : b.params()) p.set_requires_grad(grad);
    return b;
  }
};
struct Backbone {
  torch::Tensor w0, b0, out_w, out_b;
  std::vector<Block> blocks;
  torch::Tensor stem(const torch::Tensor& x) const { return F::gelu(F::linear(x, w0, b0)); }
  torch::Tensor out(const torch::Tensor& z) const { return torch::layer_norm(z, {kWidth}, out_w, out_b); }
  torch::Tensor features(const torch::Tensor& x, const std::vector<Block>& bl) const {
    auto z = stem(x);
    for (const auto& b : bl) z = z + b(z);
    return out(z);
  }
};

torch::Tensor uniform_init(std::int64_t out, std::int64_t in) {
  const double a = 1.0 / std::sqrt(double(in));
  return torch::empty({out, in}).uniform_(-a, a);
}

Backbone pretrain(const ReproContext& ctx, const Pool& pool, std::int64_t seed) {
  torch::manual_seed(derive_seed(seed, 0, 710));
  Backbone b;
  const auto d = pool.dim;
  b.w0 = uniform_init(kWidth, d);
  b.b0 = torch::zeros({kWidth});
  for (std::int64_t l = 0; l < kBlocks; ++l)
    b.blocks.push_back({torch::ones({kWidth}), torch::zeros({kWidth}), uniform_init(kHidden, kWidth), torch::zeros({kHidden}),
                        uniform_init(kWidth, kHidden), torch::zeros({kWidth})});
  b.out_w = torch::ones({kWidth});
  b.out_b = torch::zeros({kWidth});
  const auto P = ctx.int_option("pretrain_classes"), K = ctx.int_option("classes");
  auto head = uniform_init(P, kWidth);
  std::vector<torch::Tensor> params = {b.w0, b.b0, b.out_w, b.out_b, head};
  for (auto& bl : b.blocks)
    for (auto p : bl.params()) params.push_back(p);
  for (auto& p : params) p.set_requires_grad(true);
  const auto [x, y0] = pool.classes(K, K + P, ctx.int_option("pretrain_per_class"), 2);
  const auto y = y0 - K;
  torch::optim::Adam opt(params, torch::optim::AdamOptions(1e-3));
  auto g = at::detail::createCPUGenerator(derive_seed(seed, 0, 711));
  for (std::int64_t e = 0; e < ctx.int_option("pretrain_epochs"); ++e) {
    const auto perm = torch::randperm(x.size(0), g, torch::TensorOptions().dtype(torch::kInt64));
    for (std::int64_t i = 0; i < x.size(0); i += 64) {
      const auto idx = perm.slice(0, i, std::min(x.size(0), i + 64));
      const auto loss = F::cross_entropy(F::linear(b.features(x.index_select(0, idx), b.blocks), head), y.index_select(0, idx));
      opt.zero_grad();
      loss.backward();
      opt.step();
    }
  }
  for (auto& p : params) p.set_requires_grad(false);
  return b;
}

// ---- methods ------------------------------------------------------------------------------------
struct Method {
  virtual ~Method() = default;
  virtual void learn(const torch::Tensor& x, const torch::Tensor& y, std::int64_t classes) = 0;
  virtual torch::Tensor predict(const torch::Tensor& x) = 0;
  virtual std::int64_t stored_floats() const { return 0; }
};

cc::CareOptions care_options(const ReproContext& ctx) {
  cc::CareOptions o;
  o.dim = kWidth;
  o.expert_dim = 8;
  o.adapter_dim = 32;
  o.epochs = ctx.int_option("epochs");
  o.ca_samples = ctx.int_option("ca_samples");
  options::check(o, "care");
  return o;
}

struct CareMethod : Method {
  cc::Learner learner;
  std::int64_t floats = 0;
  CareMethod(const ReproContext& ctx, const Backbone& b, std::uint64_t seed)
      : learner(care_options(ctx), frozen(b), seed) {}
  static cc::FrozenBackbone frozen(const Backbone& b) {
    cc::FrozenBackbone f;
    f.stem = [b](const torch::Tensor& x) { return b.stem(x); };
    for (const auto& bl : b.blocks) f.branches.push_back([bl](const torch::Tensor& z) { return bl(z); });
    f.out_norm = [b](const torch::Tensor& z) { return b.out(z); };
    return f;
  }
  void learn(const torch::Tensor& x, const torch::Tensor& y, std::int64_t classes) override {
    const auto c = learner.learn_task(x, y, classes);
    floats = c.parameters + c.statistic_floats;
  }
  torch::Tensor predict(const torch::Tensor& x) override { return learner.predict(x); }
  std::int64_t stored_floats() const override { return floats; }
};

// One adapter per block, sequentially trained, cosine head + classifier alignment.
struct AdapterMethod : Method {
  const Backbone& b;
  cc::CareOptions o;
  std::vector<cc::Adapter> adapters;
  torch::Tensor heads;  // the per-task cosine blocks stacked (one tensor, see care.h)
  std::vector<torch::Tensor> means, chols;
  std::int64_t seen = 0, task = -1;
  torch::Generator gen;
  AdapterMethod(const ReproContext& ctx, const Backbone& bb, std::uint64_t seed)
      : b(bb), o(care_options(ctx)), gen(at::detail::createCPUGenerator(seed)) {
    for (std::int64_t l = 0; l < kBlocks; ++l) adapters.emplace_back(kWidth, o.adapter_dim, o.dropout);
  }
  torch::Tensor features(const torch::Tensor& x) {
    auto z = b.stem(x);
    for (std::size_t l = 0; l < adapters.size(); ++l) z = z + b.blocks[l](z) + adapters[l]->forward(z);
    return b.out(z);
  }
  torch::Tensor head(const torch::Tensor& f) const {
    return F::normalize(f, F::NormalizeFuncOptions().dim(1)).mm(F::normalize(heads, F::NormalizeFuncOptions().dim(1)).t());
  }
  void train(bool on) {
    for (auto& a : adapters) a->train(on);
  }
  void learn(const torch::Tensor& x, const torch::Tensor& y, std::int64_t classes) override {
    ++task;
    const auto known = seen;
    seen += classes;
    const auto w = torch::randn({classes, kWidth}) * 0.02;
    heads = (heads.defined() ? torch::cat({heads.detach(), w}, 0) : w).set_requires_grad(true);
    std::vector<torch::Tensor> params = {heads};
    for (auto& a : adapters)
      for (auto& p : a->parameters()) params.push_back(p);
    torch::optim::SGD opt(params, torch::optim::SGDOptions(o.lr).momentum(o.momentum).weight_decay(o.weight_decay));
    train(true);
    const double pi = std::acos(-1.0);
    for (std::int64_t e = 0; e < o.epochs; ++e) {
      for (auto& g : opt.param_groups())
        static_cast<torch::optim::SGDOptions&>(g.options()).lr(o.lr * (1 + std::cos(pi * double(e) / double(o.epochs))) / 2);
      const auto perm = torch::randperm(x.size(0), gen, torch::TensorOptions().dtype(torch::kInt64));
      for (std::int64_t i = 0; i < x.size(0); i += o.batch) {
        const auto idx = perm.slice(0, i, std::min(x.size(0), i + o.batch));
        const auto loss = cc::cosface_loss(head(features(x.index_select(0, idx))).slice(1, known, seen), y.index_select(0, idx) - known,
                                           o.scale, o.margin);
        opt.zero_grad();
        loss.backward();
        opt.step();
      }
    }
    train(false);
    torch::NoGradGuard ng;
    const auto f = features(x);
    for (std::int64_t c = known; c < seen; ++c) {
      const auto fc = f.index_select(0, (y == c).nonzero().squeeze(1));
      means.push_back(fc.mean(0));
      chols.push_back(torch::linalg_cholesky((torch::cov(fc.t()) + 1e-4 * torch::eye(kWidth)).to(torch::kFloat64)));
    }
    if (task > 0) align(classes);
  }
  void align(std::int64_t task_classes) {
    torch::optim::SGD opt({heads}, torch::optim::SGDOptions(o.ca_lr).momentum(0.9).weight_decay(5e-4));
    const auto n = o.ca_samples;
    const double pi = std::acos(-1.0);
    for (std::int64_t e = 0; e < o.ca_epochs; ++e) {
      for (auto& g : opt.param_groups()) static_cast<torch::optim::SGDOptions&>(g.options()).lr(o.ca_lr * (1 + std::cos(pi * double(e) / 5.0)) / 2);
      std::vector<torch::Tensor> xs;
      for (std::int64_t c = 0; c < seen; ++c) {
        const auto m = means[c].to(torch::kFloat64) * cc::ca_mean_factor(c, task_classes, task);
        const auto eps = torch::randn({n, kWidth}, gen, torch::TensorOptions().dtype(torch::kFloat64));
        xs.push_back((m.unsqueeze(0) + eps.mm(chols[c].t())).to(torch::kFloat32));
      }
      const auto labels = torch::arange(seen, torch::kInt64).repeat_interleave(n);
      const auto perm = torch::randperm(seen * n, gen, torch::TensorOptions().dtype(torch::kInt64));
      const auto inputs = torch::cat(xs, 0).index_select(0, perm), targets = labels.index_select(0, perm);
      for (std::int64_t it = 0; it < seen; ++it) {
        torch::AutoGradMode on(true);
        const auto loss = F::cross_entropy(o.scale * head(inputs.slice(0, it * n, (it + 1) * n)), targets.slice(0, it * n, (it + 1) * n));
        opt.zero_grad();
        loss.backward();
        opt.step();
      }
    }
  }
  torch::Tensor predict(const torch::Tensor& x) override {
    torch::NoGradGuard ng;
    train(false);
    return head(features(x)).argmax(1);
  }
};

// Fine-tuning of the blocks and a linear head over the seen classes; EWC and ER on top.
struct TunedMethod : Method {
  enum Kind { Finetune, Ewc, Er } kind;
  const Backbone& b;
  std::vector<Block> blocks;
  torch::Tensor head_w, head_b;
  std::vector<torch::Tensor> fisher, anchor;
  torch::Tensor mem_x, mem_y;
  std::int64_t seen = 0, stream_seen = 0, memory, epochs, batch = 16;
  double lambda, lr = 0.01;
  torch::Generator gen;
  TunedMethod(Kind k, const ReproContext& ctx, const Backbone& bb, std::uint64_t seed)
      : kind(k), b(bb), memory(ctx.int_option("er_memory")), epochs(ctx.int_option("epochs")), lambda(ctx.option("ewc_lambda")),
        gen(at::detail::createCPUGenerator(seed)) {
    for (const auto& bl : b.blocks) blocks.push_back(bl.clone(true));
    head_w = (uniform_init(ctx.int_option("classes"), kWidth)).set_requires_grad(true);
    head_b = torch::zeros({ctx.int_option("classes")}).set_requires_grad(true);
  }
  std::vector<torch::Tensor> params() const {
    std::vector<torch::Tensor> p = {head_w, head_b};
    for (const auto& bl : blocks)
      for (const auto& t : bl.params()) p.push_back(t);
    return p;
  }
  torch::Tensor logits(const torch::Tensor& x) const {
    return F::linear(b.features(x, blocks), head_w.slice(0, 0, seen), head_b.slice(0, 0, seen));
  }
  void learn(const torch::Tensor& x, const torch::Tensor& y, std::int64_t classes) override {
    seen += classes;
    const auto ps = params();
    torch::optim::SGD opt(ps, torch::optim::SGDOptions(lr).momentum(0.9));
    const double pi = std::acos(-1.0);
    for (std::int64_t e = 0; e < epochs; ++e) {
      for (auto& g : opt.param_groups()) static_cast<torch::optim::SGDOptions&>(g.options()).lr(lr * (1 + std::cos(pi * double(e) / double(epochs))) / 2);
      const auto perm = torch::randperm(x.size(0), gen, torch::TensorOptions().dtype(torch::kInt64));
      for (std::int64_t i = 0; i < x.size(0); i += batch) {
        const auto idx = perm.slice(0, i, std::min(x.size(0), i + batch));
        auto xb = x.index_select(0, idx), yb = y.index_select(0, idx);
        const auto cur_x = xb, cur_y = yb;
        if (kind == Er && mem_x.defined() && mem_x.size(0) > 0) {
          const auto r = torch::randint(mem_x.size(0), {batch}, gen, torch::TensorOptions().dtype(torch::kInt64));
          xb = torch::cat({xb, mem_x.index_select(0, r)});
          yb = torch::cat({yb, mem_y.index_select(0, r)});
        }
        auto loss = F::cross_entropy(logits(xb), yb);
        if (kind == Ewc && !fisher.empty()) {
          auto pen = torch::zeros({});
          for (std::size_t k = 0; k < ps.size(); ++k) pen = pen + (fisher[k] * (ps[k] - anchor[k]).pow(2)).sum();
          loss = loss + lambda / 2 * pen;
        }
        opt.zero_grad();
        loss.backward();
        opt.step();
        if (kind == Er) reservoir(cur_x, cur_y);
      }
    }
    if (kind == Ewc) update_fisher(x, y);
  }
  void reservoir(const torch::Tensor& x, const torch::Tensor& y) {
    if (!mem_x.defined()) {
      mem_x = torch::empty({0, x.size(1)});
      mem_y = torch::empty({0}, torch::kInt64);
    }
    for (std::int64_t i = 0; i < x.size(0); ++i, ++stream_seen) {
      if (mem_x.size(0) < memory) {
        mem_x = torch::cat({mem_x, x.slice(0, i, i + 1)});
        mem_y = torch::cat({mem_y, y.slice(0, i, i + 1)});
      } else {
        const auto j = torch::randint(stream_seen + 1, {1}, gen, torch::TensorOptions().dtype(torch::kInt64)).item<std::int64_t>();
        if (j < memory) {
          mem_x[j] = x[i];
          mem_y[j] = y[i];
        }
      }
    }
  }
  void update_fisher(const torch::Tensor& x, const torch::Tensor& y) {
    const auto ps = params();
    if (fisher.empty())
      for (const auto& p : ps) fisher.push_back(torch::zeros_like(p));
    const auto n = std::min<std::int64_t>(50, x.size(0));
    const auto perm = torch::randperm(x.size(0), gen, torch::TensorOptions().dtype(torch::kInt64)).slice(0, 0, n);
    for (std::int64_t s = 0; s < n; ++s) {
      const auto i = perm[s].item<std::int64_t>();
      const auto logp = torch::log_softmax(logits(x.slice(0, i, i + 1)), 1)[0][y[i].item<std::int64_t>()];
      const auto g = torch::autograd::grad({logp}, ps);
      for (std::size_t k = 0; k < ps.size(); ++k) fisher[k] += g[k].detach().pow(2) / double(n);
    }
    anchor.clear();
    for (const auto& p : ps) anchor.push_back(p.detach().clone());
  }
  torch::Tensor predict(const torch::Tensor& x) override {
    torch::NoGradGuard ng;
    return logits(x).argmax(1);
  }
};

std::unique_ptr<Method> make_method(const std::string& key, const ReproContext& ctx, const Backbone& b, std::uint64_t seed) {
  if (key == "care") return std::make_unique<CareMethod>(ctx, b, seed);
  if (key == "adapter") return std::make_unique<AdapterMethod>(ctx, b, seed);
  if (key == "finetune") return std::make_unique<TunedMethod>(TunedMethod::Finetune, ctx, b, seed);
  if (key == "ewc") return std::make_unique<TunedMethod>(TunedMethod::Ewc, ctx, b, seed);
  return std::make_unique<TunedMethod>(TunedMethod::Er, ctx, b, seed);
}

double accuracy(Method& m, const torch::Tensor& x, const torch::Tensor& y) {
  return m.predict(x).eq(y).to(torch::kFloat64).mean().item<double>();
}

// One method on one stream: final accuracy, forgetting, per-task seconds and stored floats.
json run_stream(const ReproContext& ctx, const Pool& pool, const Backbone& b, const std::string& key, std::int64_t tasks,
                std::uint64_t seed, const std::function<void(std::int64_t)>& tick) {
  const auto K = ctx.int_option("classes"), per = K / tasks;
  const auto ntr = ctx.int_option("train_per_class"), nte = ctx.int_option("test_per_class");
  torch::manual_seed(derive_seed(static_cast<std::int64_t>(seed), tasks, 720));  // dropout, initialisations
  auto m = make_method(key, ctx, b, derive_seed(static_cast<std::int64_t>(seed), tasks, 721));
  std::vector<double> just, secs;
  std::vector<std::int64_t> floats;
  for (std::int64_t t = 0; t < tasks; ++t) {
    const auto [x, y] = pool.classes(t * per, (t + 1) * per, ntr, 0);
    const auto start = std::chrono::steady_clock::now();
    m->learn(x, y, per);
    secs.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    floats.push_back(m->stored_floats());
    const auto [xt, yt] = pool.classes(t * per, (t + 1) * per, nte, 1);
    just.push_back(accuracy(*m, xt, yt));
    tick(t + 1);
  }
  double final_acc = 0, forgetting = 0;
  for (std::int64_t t = 0; t < tasks; ++t) {
    const auto [xt, yt] = pool.classes(t * per, (t + 1) * per, nte, 1);
    const double a = accuracy(*m, xt, yt);
    final_acc += a / double(tasks);
    if (t + 1 < tasks) forgetting += (just[t] - a) / double(tasks - 1);
  }
  json r = {{"final_accuracy", final_acc}, {"forgetting", forgetting}, {"seconds", secs}, {"total_seconds", std::accumulate(secs.begin(), secs.end(), 0.0)}};
  if (key == "care") r["stored_floats"] = floats;
  return r;
}

json run_seed(const ReproContext& ctx, std::int64_t k) {
  const auto seed = ctx.seed + static_cast<std::uint64_t>(k);
  const auto progress = seed_progress(ctx, k);
  Pool pool;
  pool.dim = ctx.int_option("input_dim");
  pool.noise = ctx.option("noise");
  pool.seed = static_cast<std::int64_t>(seed);
  const auto lengths = stream_lengths(ctx);
  std::int64_t total = 0, done = 0;
  for (auto t : lengths) total += t * static_cast<std::int64_t>(method_keys().size());
  progress(0, total, "pretraining the backbone");
  const auto backbone = pretrain(ctx, pool, static_cast<std::int64_t>(seed));
  json streams = json::object();
  for (auto tasks : lengths) {
    json s = json::object();
    for (const auto& key : method_keys()) {
      s[key] = run_stream(ctx, pool, backbone, key, tasks, seed, [&](std::int64_t t) {
        progress(done + t, total, fmt::format("{} tasks, {}, task {}", tasks, key, t));
      });
      done += tasks;
    }
    streams[std::to_string(tasks)] = s;
  }
  return {{"streams", streams}};
}

double median_of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const auto n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// Median per-task seconds of tasks a..b (1-based, inclusive, clipped to the stream).
double window_seconds(const json& secs, std::int64_t a, std::int64_t b) {
  std::vector<double> v;
  const auto n = static_cast<std::int64_t>(secs.size());
  for (auto i = std::max<std::int64_t>(1, a); i <= std::min(n, b); ++i) v.push_back(secs[static_cast<std::size_t>(i - 1)].get<double>());
  return median_of(v);
}

double added_floats(const json& floats, std::int64_t task) {
  const auto i = static_cast<std::size_t>(task - 1);
  return floats[i].get<double>() - (i == 0 ? 0.0 : floats[i - 1].get<double>());
}

void write_figures(const RunDir& run, const std::vector<json>& rows, const std::vector<std::int64_t>& lengths) {
  const std::vector<std::string> colours = {"#d62728", "#9467bd", "#1f77b4", "#2ca02c", "#ff7f0e"};
  {
    report::SvgPlot plot(720, 440);
    plot.set_range(std::log10(double(lengths.front())) - 0.1, std::log10(double(lengths.back())) + 0.1, 0, 1.05);
    plot.title("Final average accuracy on the whole class pool against the number of tasks");
    plot.labels("log10(tasks)", "final average accuracy (mean over seeds)");
    for (std::size_t m = 0; m < method_keys().size(); ++m) {
      std::vector<std::pair<double, double>> pts;
      for (auto L : lengths)
        pts.emplace_back(std::log10(double(L)), mean(per_seed_at(rows, fmt::format("/streams/{}/{}/final_accuracy", L, method_keys()[m]))));
      plot.polyline(pts, colours[m], 2.0);
      for (const auto& [x, y] : pts) plot.marker(x, y, colours[m], 3);
      plot.legend(method_keys()[m], colours[m]);
    }
    run.write_text("care_accuracy.svg", plot.str());
  }
  {
    report::SvgPlot plot(720, 440);
    const auto& longest = rows[0]["streams"][std::to_string(lengths.back())]["care"]["seconds"];
    double ymax = 0;
    for (auto L : lengths)
      for (const auto& v : rows[0]["streams"][std::to_string(L)]["care"]["seconds"]) ymax = std::max(ymax, v.get<double>());
    plot.set_range(0, double(longest.size()) + 1, 0, ymax * 1.05 + 1e-9);
    plot.title("CaRE: wall time per task (seed 0) against the task index (= number of experts)");
    plot.labels("task", "seconds");
    for (std::size_t i = 0; i < lengths.size(); ++i) {
      std::vector<std::pair<double, double>> pts;
      const auto& s = rows[0]["streams"][std::to_string(lengths[i])]["care"]["seconds"];
      for (std::size_t t = 0; t < s.size(); ++t) pts.emplace_back(double(t + 1), s[t].get<double>());
      plot.polyline(pts, colours[i], 1.5);
      plot.legend(fmt::format("{} tasks", lengths[i]), colours[i]);
    }
    run.write_text("care_time_per_task.svg", plot.str());
  }
}

ReproOutcome summarise(const ReproContext& ctx, const std::vector<json>& rows) {
  const auto lengths = stream_lengths(ctx);
  const auto K = ctx.int_option("classes");
  ReproOutcome out;
  out.setup = {
      {"data", fmt::format("a pool of {} Gaussian-cluster classes in {} dimensions (means N(0, I), noise {}), {} training and {} test "
                           "samples per class, generated per class on demand; streams of {} tasks of {} consecutive classes",
                           K, ctx.int_option("input_dim"), ctx.option("noise"), ctx.int_option("train_per_class"),
                           ctx.int_option("test_per_class"), fmt::join(lengths, " / "),
                           fmt::join([&] {
                             std::vector<std::int64_t> c;
                             for (auto L : lengths) c.push_back(K / L);
                             return c;
                           }(), " / "))},
      {"backbone", fmt::format("stem Linear({} -> 128) + GELU, 2 residual MLP blocks z + W2 GELU(W1 LN z) (width 256), output LayerNorm; "
                               "pretrained with Adam (lr 1e-3, batch 64, {} epochs) and a linear head on {} further classes x {} samples, "
                               "then frozen",
                               ctx.int_option("input_dim"), ctx.int_option("pretrain_epochs"), ctx.int_option("pretrain_classes"),
                               ctx.int_option("pretrain_per_class"))},
      {"care", fmt::format("a BR-MoE layer in parallel with each block's MLP: per task an expert (LN, 128->8, ReLU, dropout 0.1, 8->128, "
                           "scale init 0; mean-initialised), a router 128->t+1, a recogniser LN + Linear; shared adapter 32 EMA-anchored "
                           "at mu = 0.999; M = 2 routers, K = 3 experts; cosine head s = 20; {} epochs (task 0) / 2 x {} (later), SGD lr "
                           "0.01 momentum 0.9 wd 5e-4 batch 16; classifier alignment 3 epochs, lr 0.005, {} pseudo-features per class "
                           "and step",
                           ctx.int_option("epochs"), ctx.int_option("epochs") / 2, ctx.int_option("ca_samples"))},
      {"baselines", fmt::format("finetune: the blocks + a linear head, CE over the seen classes; ewc: + lambda {} (empirical Fisher of 50 "
                                "samples per task, summed); er: + reservoir memory {} samples, 16 replayed per step; adapter: one adapter "
                                "(32) per block with CaRE's head, loss and classifier alignment; all SGD lr 0.01 momentum 0.9 batch 16, "
                                "{} epochs per task",
                                ctx.option("ewc_lambda"), ctx.int_option("er_memory"), ctx.int_option("epochs"))}};
  std::map<std::string, double> acc;  // "<method>@<L>" → mean over seeds
  for (auto L : lengths)
    for (const auto& m : method_keys()) {
      const auto a = per_seed_at(rows, fmt::format("/streams/{}/{}/final_accuracy", L, m));
      const auto f = per_seed_at(rows, fmt::format("/streams/{}/{}/forgetting", L, m));
      const auto s = per_seed_at(rows, fmt::format("/streams/{}/{}/total_seconds", L, m));
      put_seed_stats(out, fmt::format("final_accuracy_{}_{}tasks", m, L), a);
      out.metrics[fmt::format("forgetting_{}_{}tasks", m, L)] = seeds_json(f);
      out.metrics[fmt::format("forgetting_{}_{}tasks_mean", m, L)] = finite_or_null(mean(f));
      out.metrics[fmt::format("seconds_{}_{}tasks", m, L)] = seeds_json(s);
      out.metrics[fmt::format("seconds_per_task_{}_{}tasks_mean", m, L)] = finite_or_null(mean(s) / double(L));
      acc[fmt::format("{}@{}", m, L)] = mean(a);
    }
  const auto S = lengths.front(), Lmax = lengths.back(), r = ctx.int_option("time_ref_task");
  std::vector<double> time_ratio, mem_ratio;
  for (const auto& row : rows) {
    const auto& c = row["streams"][std::to_string(Lmax)]["care"];
    time_ratio.push_back(window_seconds(c["seconds"], Lmax - 4, Lmax) / window_seconds(c["seconds"], r - 2, r + 2));
    mem_ratio.push_back(added_floats(c["stored_floats"], Lmax) / added_floats(c["stored_floats"], r));
  }
  const double scale = double(Lmax) / double(r);
  out.metrics["care_time_ratio_last_vs_ref"] = seeds_json(time_ratio);
  out.metrics["care_memory_increment_ratio_last_vs_ref"] = seeds_json(mem_ratio);
  out.metrics["care_stored_floats_final"] =
      seeds_json(per_seed_at(rows, fmt::format("/streams/{}/care/stored_floats/{}", Lmax, Lmax - 1)));
  out.checks.push_back(make_check(fmt::format("precondition, CaRE learns: final accuracy at {} tasks (mean; 10x chance = 10/{})", S, K),
                                  acc[fmt::format("care@{}", S)], ">=", 10.0 / double(K)));
  for (auto L : lengths)
    for (const char* b : {"finetune", "ewc", "er", "adapter"})
      out.checks.push_back(make_check(fmt::format("CaRE beats {} at {} tasks: final accuracy difference (mean)", b, L),
                                      acc[fmt::format("care@{}", L)] - acc[fmt::format("{}@{}", b, L)], ">", 0.0));
  out.checks.push_back(make_check(fmt::format("accuracy holds as the stream grows: CaRE final accuracy at {} tasks - at {} tasks (mean)", Lmax, S),
                                  acc[fmt::format("care@{}", Lmax)] - acc[fmt::format("care@{}", S)], ">=", -0.05));
  out.checks.push_back(make_check(fmt::format("per-task time grows at most linearly in the experts: [median time of tasks {}..{}] / [median "
                                              "time of tasks {}..{}] / ({} / {}) (mean)",
                                              Lmax - 4, Lmax, r - 2, r + 2, Lmax, r),
                                  mean(time_ratio) / scale, "<=", 2.0));
  out.checks.push_back(make_check(fmt::format("per-task memory grows at most linearly in the experts: [floats stored by task {}] / [by task "
                                              "{}] / ({} / {}) (mean)",
                                              Lmax, r, Lmax, r),
                                  mean(mem_ratio) / scale, "<=", 2.0));
  if (ctx.run) write_figures(*ctx.run, rows, lengths);
  return out;
}

}  // namespace

ReproEntry make_care_repro() {
  ReproEntry e;
  e.name = "care";
  e.paper = "Scaling Continual Learning to 300+ Tasks with Bi-Level Routing Mixture-of-Experts (Lou, Fu, Yu, ICML 2026, arXiv 2602.03473)";
  e.claim = "CaRE (per task an expert, a router and a class recogniser in every block, routers chosen by lowest recogniser entropy, top-k "
            "experts per router, a shared EMA-anchored adapter, classifier alignment) keeps its accuracy as the same classes are split "
            "into more and more tasks (up to 300+), above fine-tuning, regularisation, replay and single-adapter baselines, at a per-task "
            "cost that grows with the number of experts.";
  e.options = {{"classes", "classes in the pool (every stream length must divide it)", 600, 60, true},
               {"tasks_short", "tasks of the shortest stream", 20, 5, true},
               {"tasks_mid", "tasks of the second stream", 100, 10, true},
               {"tasks_long", "tasks of the third, longest stream (run with --set streams=3)", 300, 20, true},
               {"streams", "streams run: 2 = tasks_short and tasks_mid, 3 = also tasks_long", 2, 2, true},
               {"input_dim", "input dimension of the Gaussian classes", 32, 32, true},
               {"noise", "standard deviation of the samples around their class mean", 1.0, 1.0, false},
               {"train_per_class", "training samples per class", 20, 10, true},
               {"test_per_class", "test samples per class", 10, 5, true},
               {"pretrain_classes", "classes of the backbone's pretraining (disjoint from the pool)", 100, 20, true},
               {"pretrain_per_class", "pretraining samples per class", 50, 20, true},
               {"pretrain_epochs", "pretraining epochs", 10, 3, true},
               {"epochs", "epochs per task (CaRE: task 0; later tasks two phases of epochs/2)", 4, 2, true},
               {"ca_samples", "CaRE / adapter: pseudo-features per class and alignment step (code: 5 x batch = 80)", 20, 8, true},
               {"er_memory", "ER: reservoir memory size (samples)", 600, 60, true},
               {"ewc_lambda", "EWC: penalty weight", 100, 100, false},
               {"time_ref_task", "task r whose time (median of tasks r-2..r+2) and memory increment the last task is compared with", 10, 3, true}};
  e.run_seed = run_seed;
  e.summarise = summarise;
  return e;
}

}  // namespace stablelearn::experiments::repro
