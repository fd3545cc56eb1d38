#include "stablelearn/experiments/cl_experiment.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <torch/cuda.h>
#include <torch/optim/adam.h>
#include <torch/optim/sgd.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <map>
#include <sstream>

#include "stablelearn/continual/metrics.h"
#include "stablelearn/continual/registry.h"
#include "stablelearn/core/env.h"
#include "stablelearn/core/error.h"
#include "stablelearn/core/fs.h"
#include "stablelearn/core/run.h"
#include "stablelearn/data/tensor_convert.h"
#include "stablelearn/diagnostics/curvature.h"
#include "stablelearn/diagnostics/eigen.h"
#include "stablelearn/diagnostics/grokalign.h"
#include "stablelearn/diagnostics/trace.h"
#include "stablelearn/io/npz.h"
#include "stablelearn/report/svg.h"
#include "stablelearn/report/tensorboard.h"

namespace stablelearn::experiments {

using json = nlohmann::json;
namespace cl = continual;

namespace {

constexpr const char* kCheckpointFormat = "stablelearn-cl-checkpoint";
constexpr int kCheckpointVersion = 1;
constexpr const char* kSnapshotFormat = "stablelearn-cl-snapshots";
constexpr int kSnapshotVersion = 1;

void append_jsonl(const std::filesystem::path& path, const json& row) { append_line(path, row.dump()); }

json num(double v) { return std::isnan(v) ? json(nullptr) : json(v); }

}  // namespace

std::uint64_t cl_grokalign_seed(std::int64_t seed, std::int64_t task) { return derive_seed(seed, task, 17); }

std::vector<std::pair<std::string, std::string>> stream_kinds() {
  return {{"split-class", "Fashion-MNIST, 5 tasks x 2 classes, one 10-way head (class-incremental)"},
          {"split-task", "Fashion-MNIST, 5 tasks x 2 classes, logits masked to the task's classes (multi-head, task-incremental)"},
          {"split-domain", "Fashion-MNIST, 5 tasks x 2 classes relabelled 0/1 (domain-incremental)"},
          {"permuted", "Fashion-MNIST, task 0 unpermuted, task t a seeded pixel permutation (default 10 tasks)"},
          {"rotated", "Fashion-MNIST, task t rotated by t x rotation_step degrees (default 20 tasks, 9 degrees)"}};
}

struct ClExperiment::Impl {
  ClStreamOptions stream;
  models::ClassifierOptions model;
  ClTrainOptions train;
  ClEvalOptions eval;
  ClOutputOptions out;
  ClDiagnosticsOptions diag;
  Config strategy_cfg;
  std::string resolved;
};

ClExperiment::ClExperiment(const Config& cfg) : p_(std::make_unique<Impl>()) {
  cfg.check_sections({"stream", "model", "strategy", "train", "eval", "output", "diagnostics"});
  auto& p = *p_;
  {
    auto s = cfg.section("stream");
    p.stream.stream.kind = data::parse_stream_kind(s.get("kind", std::string("split-class")));
    const auto kind = p.stream.stream.kind;
    const bool split = kind == data::StreamKind::SplitClassIncremental || kind == data::StreamKind::SplitTaskIncremental ||
                       kind == data::StreamKind::SplitDomainIncremental;
    const std::int64_t def_tasks = split ? 5 : kind == data::StreamKind::Permuted ? 10 : 20;
    p.stream.stream.num_tasks = s.get("tasks", std::int64_t{0});
    if (p.stream.stream.num_tasks == 0) p.stream.stream.num_tasks = def_tasks;
    SL_CHECK(p.stream.stream.num_tasks >= 1 && (!split || p.stream.stream.num_tasks <= 5), ConfigError,
             "stream.tasks: expected 1..", split ? 5 : 1000, ", got ", p.stream.stream.num_tasks);
    p.stream.stream.seed = s.get("seed", p.stream.stream.seed);
    p.stream.stream.rotation_step = s.get("rotation_step", p.stream.stream.rotation_step);
    p.stream.data_dir = s.get("data_dir", p.stream.data_dir);
    p.stream.train_per_task = s.get("train_per_task", p.stream.train_per_task);
    p.stream.test_per_task = s.get("test_per_task", p.stream.test_per_task);
    SL_CHECK(p.stream.train_per_task >= 0 && p.stream.test_per_task >= 0, ConfigError,
             "stream.train_per_task / test_per_task: must be >= 0 (0 = all)");
    s.finish();
  }
  {
    auto s = cfg.section("model");
    p.model = models::ClassifierOptions::from_config(s);
    s.finish();
  }
  {
    auto s = cfg.section("train");
    auto& t = p.train;
    t.epochs = s.get("epochs", t.epochs);
    t.batch_size = s.get("batch_size", t.batch_size);
    t.lr = s.get("lr", t.lr);
    t.optimizer = s.get("optimizer", t.optimizer);
    t.momentum = s.get("momentum", t.momentum);
    t.seed = s.get("seed", t.seed);
    t.device = s.get("device", t.device);
    t.grokalign = s.get("grokalign", t.grokalign);
    t.grokalign_projections = s.get("grokalign_projections", t.grokalign_projections);
    s.finish();
    SL_CHECK(t.epochs >= 1, ConfigError, "train.epochs: must be >= 1, got ", t.epochs);
    SL_CHECK(t.batch_size >= 1, ConfigError, "train.batch_size: must be >= 1, got ", t.batch_size);
    SL_CHECK(t.lr > 0 && std::isfinite(t.lr), ConfigError, "train.lr: must be a positive number, got ", t.lr);
    SL_CHECK(t.optimizer == "sgd" || t.optimizer == "adam", ConfigError, "train.optimizer: expected sgd or adam, got \"",
             t.optimizer, "\"");
    SL_CHECK(t.momentum >= 0 && t.momentum < 1, ConfigError, "train.momentum: must be in [0, 1), got ", t.momentum);
    SL_CHECK(t.device == "cpu" || t.device == "cuda" || t.device == "auto", ConfigError,
             "train.device: expected cpu, cuda or auto, got \"", t.device, "\"");
    SL_CHECK(t.grokalign >= 0 && std::isfinite(t.grokalign), ConfigError,
             "train.grokalign: the GrokAlign weight lambda must be a finite number >= 0 (0 = off), got ", t.grokalign);
    SL_CHECK(t.grokalign_projections >= 1, ConfigError, "train.grokalign_projections: must be >= 1, got ",
             t.grokalign_projections);
  }
  {
    auto s = cfg.section("eval");
    p.eval.every = s.get("every", p.eval.every);
    p.eval.subset = s.get("subset", p.eval.subset);
    p.eval.lca_beta = s.get("lca_beta", p.eval.lca_beta);
    s.finish();
    SL_CHECK(p.eval.every >= 0, ConfigError, "eval.every: must be >= 0 (0 = task ends only)");
    SL_CHECK(p.eval.subset >= 1, ConfigError, "eval.subset: must be >= 1");
    SL_CHECK(p.eval.lca_beta >= 1, ConfigError, "eval.lca_beta: must be >= 1");
  }
  {
    auto s = cfg.section("output");
    p.out.tensorboard = s.get("tensorboard", p.out.tensorboard);
    p.out.figures = s.get("figures", p.out.figures);
    p.out.log_every = s.get("log_every", p.out.log_every);
    p.out.snapshot_every = s.get("snapshot_every", p.out.snapshot_every);
    s.finish();
    SL_CHECK(p.out.log_every >= 1, ConfigError, "output.log_every: must be >= 1");
    SL_CHECK(p.out.snapshot_every >= 0, ConfigError, "output.snapshot_every: must be >= 0 (0 = off), got ",
             p.out.snapshot_every);
  }
  {
    auto s = cfg.section("diagnostics");
    auto& d = p.diag;
    d.every = s.get("every", d.every);
    d.samples = s.get("samples", d.samples);
    d.lanczos_steps = s.get("lanczos_steps", d.lanczos_steps);
    d.trace_probes = s.get("trace_probes", d.trace_probes);
    d.curvature = s.get("curvature", d.curvature);
    s.finish();
    SL_CHECK(d.every >= 0, ConfigError, "diagnostics.every: must be >= 0 (0 = off)");
    SL_CHECK(d.samples >= 1, ConfigError, "diagnostics.samples: must be >= 1");
    SL_CHECK(d.lanczos_steps >= 2, ConfigError, "diagnostics.lanczos_steps: must be >= 2");
    SL_CHECK(d.trace_probes >= 0, ConfigError, "diagnostics.trace_probes: must be >= 0");
    SL_CHECK(d.curvature == "hessian" || d.curvature == "ggn", ConfigError,
             "diagnostics.curvature: expected hessian or ggn, got \"", d.curvature, "\"");
    SL_CHECK(!(d.curvature == "ggn" && p.stream.stream.kind == data::StreamKind::SplitTaskIncremental), ConfigError,
             "diagnostics.curvature = \"ggn\" uses unmasked logits; use \"hessian\" with task-incremental streams");
  }
  ConfigWriter w;
  {
    auto s = cfg.section("strategy");
    auto strategy = cl::make_strategy(s);
    s.finish();
    strategy->describe(w);
    p.strategy_cfg = w.config();
  }
  w.put("stream", "kind", data::stream_kind_name(p.stream.stream.kind));
  w.put("stream", "tasks", p.stream.stream.num_tasks);
  w.put("stream", "seed", p.stream.stream.seed);
  w.put("stream", "rotation_step", p.stream.stream.rotation_step);
  w.put("stream", "data_dir", p.stream.data_dir);
  w.put("stream", "train_per_task", p.stream.train_per_task);
  w.put("stream", "test_per_task", p.stream.test_per_task);
  p.model.to_config(w, "model");
  w.put("train", "epochs", p.train.epochs);
  w.put("train", "batch_size", p.train.batch_size);
  w.put("train", "lr", p.train.lr);
  w.put("train", "optimizer", p.train.optimizer);
  w.put("train", "momentum", p.train.momentum);
  w.put("train", "seed", p.train.seed);
  w.put("train", "device", p.train.device);
  w.put("train", "grokalign", p.train.grokalign);
  w.put("train", "grokalign_projections", p.train.grokalign_projections);
  w.put("eval", "every", p.eval.every);
  w.put("eval", "subset", p.eval.subset);
  w.put("eval", "lca_beta", p.eval.lca_beta);
  w.put("diagnostics", "every", p.diag.every);
  w.put("diagnostics", "samples", p.diag.samples);
  w.put("diagnostics", "lanczos_steps", p.diag.lanczos_steps);
  w.put("diagnostics", "trace_probes", p.diag.trace_probes);
  w.put("diagnostics", "curvature", p.diag.curvature);
  w.put("output", "tensorboard", p.out.tensorboard);
  w.put("output", "figures", p.out.figures);
  w.put("output", "log_every", p.out.log_every);
  w.put("output", "snapshot_every", p.out.snapshot_every);
  p.resolved = w.to_string();
}

ClExperiment::~ClExperiment() = default;
std::string ClExperiment::resolved_config() const { return p_->resolved; }

namespace {

std::vector<data::ClTask> build_stream(const ClStreamOptions& o) {
  auto ds = data::load_fashion_mnist(o.data_dir);
  const auto kind = o.stream.kind;
  const bool shared_base = kind == data::StreamKind::Permuted || kind == data::StreamKind::Rotated;
  if (shared_base) {
    // Every task transforms the same images: subsample once, before the transformation.
    if (o.train_per_task > 0 && o.train_per_task < ds.train.size())
      ds.train = {ds.train.images.narrow(0, 0, o.train_per_task), ds.train.labels.narrow(0, 0, o.train_per_task)};
    if (o.test_per_task > 0 && o.test_per_task < ds.test.size())
      ds.test = {ds.test.images.narrow(0, 0, o.test_per_task), ds.test.labels.narrow(0, 0, o.test_per_task)};
  }
  // Split streams always have 5 tasks of 2 classes; a shorter stream keeps the first ones.
  auto so = o.stream;
  if (!shared_base) so.num_tasks = 5;
  auto tasks = data::make_stream(ds, so);
  tasks.resize(static_cast<std::size_t>(o.stream.num_tasks));
  if (!shared_base) {
    for (auto& t : tasks) {
      if (o.train_per_task > 0 && o.train_per_task < t.train.size())
        t.train = {t.train.images.narrow(0, 0, o.train_per_task), t.train.labels.narrow(0, 0, o.train_per_task)};
      if (o.test_per_task > 0 && o.test_per_task < t.test.size())
        t.test = {t.test.images.narrow(0, 0, o.test_per_task), t.test.labels.narrow(0, 0, o.test_per_task)};
    }
  }
  return tasks;
}

double eval_accuracy(const cl::Context& ctx, const data::ImageSet& set, std::int64_t task, torch::Device dev) {
  torch::NoGradGuard no_grad;
  std::int64_t correct = 0;
  for (std::int64_t i = 0; i < set.size(); i += 2000) {
    const auto len = std::min<std::int64_t>(2000, set.size() - i);
    const auto x = set.images.narrow(0, i, len).to(dev);
    const auto t = torch::full({len}, task, torch::kInt64).to(dev);
    const auto pred = ctx.logits(x, t).argmax(1).cpu();
    correct += (pred == set.labels.narrow(0, i, len)).sum().item<std::int64_t>();
  }
  return set.size() ? static_cast<double>(correct) / static_cast<double>(set.size()) : 0.0;
}

/// Class indices [T, C] of every task (task-incremental heads; every task has the same count C).
torch::Tensor head_index(const std::vector<data::ClTask>& tasks) {
  std::vector<torch::Tensor> rows;
  for (const auto& t : tasks) {
    SL_CHECK(t.classes.size() == tasks.front().classes.size(), DataError,
             "GrokAlign with task-incremental masking needs tasks of equal class counts");
    rows.push_back(torch::tensor(t.classes, torch::kInt64));
  }
  return torch::stack(rows);
}

/// The outputs GrokAlign differentiates: the logits z = f(x) under `w`, all of them, or with
/// `heads` defined ([n, C] class indices per sample) only the sample's task's columns.
torch::Tensor grokalign_outputs(const models::ClassifierImpl& model, const std::vector<torch::Tensor>& w,
                                const torch::Tensor& x, const torch::Tensor& heads) {
  const auto z = model.forward(x, w);
  return heads.defined() ? z.gather(1, heads) : z;
}

void write_curves_svg(const std::filesystem::path& path, const std::vector<json>& tracks, std::int64_t tasks,
                      const std::vector<std::int64_t>& boundaries, const std::string& title) {
  static const char* colours[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                  "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
  if (tracks.empty()) return;
  double xmax = 1;
  for (const auto& r : tracks) xmax = std::max(xmax, r.at("iteration").get<double>());
  report::SvgPlot plot(800, 480);
  plot.set_range(0, xmax, 0, 1);
  plot.title(title);
  plot.labels("iteration", "accuracy (fixed evaluation subset)");
  for (auto b : boundaries) plot.polyline({{double(b), 0.0}, {double(b), 1.0}}, "#cccccc", 1.0);
  for (std::int64_t j = 0; j < tasks; ++j) {
    std::vector<std::pair<double, double>> pts;
    for (const auto& r : tracks) {
      const auto& acc = r.at("acc");
      if (static_cast<std::int64_t>(acc.size()) > j) pts.emplace_back(r.at("iteration").get<double>(), acc[j].get<double>());
    }
    if (pts.empty()) continue;
    const auto* c = colours[j % 10];
    plot.polyline(pts, c, 1.5);
    plot.legend("task " + std::to_string(j), c);
  }
  plot.save(path.string());
}

}  // namespace

ClResult ClExperiment::run(const std::filesystem::path& run, bool resume, const std::function<void(const ClProgress&)>& progress,
                           std::int64_t stop_after) {
  const auto& p = *p_;
  const auto start_time = std::chrono::steady_clock::now();
  const auto ckpt_json = run / "checkpoint.json";
  const auto metrics_path = run / "metrics.jsonl";
  // On --resume the run's config.toml is re-resolved with this build's defaults (keys added since
  // the run was made get their defaults): equal to this configuration → the run continues.
  const auto config_path = (run / "config.toml").string();
  resume = RunDir::open(run, p.resolved,
                        RunDirOptions().resume(resume).marker("checkpoint.json").reresolve([&](const std::string& stored) {
                          return ClExperiment(Config::from_string(stored, config_path)).resolved_config();
                        }))
               .resumed();
  std::error_code ec;

  // Device.
  torch::Device dev(torch::kCPU);
  if (p.train.device == "cuda" || (p.train.device == "auto" && torch::cuda::is_available())) {
    SL_CHECK(torch::cuda::is_available(), UsageError, "train.device = \"cuda\" but this libtorch has no usable CUDA device");
    dev = torch::Device(torch::kCUDA);
  }

  const auto tasks = build_stream(p.stream);
  const auto T = static_cast<std::int64_t>(tasks.size());
  seed_everything(static_cast<std::uint64_t>(p.train.seed));
  models::Classifier model(p.model);
  model->to(dev);
  auto strategy_section = p.strategy_cfg.section("strategy");
  auto strategy = cl::make_strategy(strategy_section);

  cl::Context ctx;
  ctx.model = model.get();
  ctx.params = model->weights();
  ctx.tasks = &tasks;
  ctx.batch_size = p.train.batch_size;
  ctx.lr = p.train.lr;
  ctx.task_incremental = p.stream.stream.kind == data::StreamKind::SplitTaskIncremental;
  {
    auto mask = torch::zeros({T, p.model.classes}, torch::kBool);
    for (std::int64_t k = 0; k < T; ++k)
      for (auto c : tasks[static_cast<std::size_t>(k)].classes) mask[k][c] = true;
    ctx.class_mask = mask.to(dev);
  }
  // GrokAlign (λ·R in the loss, centroid alignment in [diagnostics]) differentiates the logits the
  // loss sees: all of them, or in task-incremental runs the columns of each sample's task.
  torch::Tensor heads;
  if (ctx.task_incremental && (p.train.grokalign > 0 || p.diag.every > 0)) heads = head_index(tasks).to(dev);
  const std::int64_t ga_outputs = heads.defined() ? heads.size(1) : p.model.classes;
  auto ga_model = [&](const torch::Tensor& task_ids) -> diagnostics::OutputFn {
    auto h = heads.defined() ? heads.index_select(0, task_ids) : torch::Tensor();
    return [&ctx, h](const torch::Tensor& x) { return grokalign_outputs(*ctx.model, ctx.params, x, h); };
  };

  // Fixed, seeded continual-evaluation subsets (drawn once; ContinualEvaluation redraws them at
  // every step, which puts sampling noise into min-based metrics).
  std::vector<torch::Tensor> sub_x, sub_y;
  std::vector<std::int64_t> sub_off{0};
  if (p.eval.every > 0) {
    for (std::int64_t k = 0; k < T; ++k) {
      const auto& test = tasks[static_cast<std::size_t>(k)].test;
      auto g = at::detail::createCPUGenerator(derive_seed(p.train.seed, k, 7));
      const auto idx = torch::randperm(test.size(), g, torch::kInt64).narrow(0, 0, std::min(p.eval.subset, test.size()));
      sub_x.push_back(test.images.index_select(0, idx));
      sub_y.push_back(test.labels.index_select(0, idx));
      sub_off.push_back(sub_off.back() + idx.size(0));
    }
  }
  torch::Tensor all_sub_x, all_sub_y, all_sub_t;
  if (!sub_x.empty()) {
    all_sub_x = torch::cat(sub_x).to(dev);
    all_sub_y = torch::cat(sub_y);
    std::vector<torch::Tensor> ts;
    for (std::int64_t k = 0; k < T; ++k) ts.push_back(torch::full({sub_off[k + 1] - sub_off[k]}, k, torch::kInt64));
    all_sub_t = torch::cat(ts).to(dev);
  }

  cl::ContinualTracker tracker(T, p.eval.lca_beta);
  ClResult result;
  result.strategy = strategy->name();
  std::vector<json> tracks;
  std::vector<std::int64_t> boundaries;
  std::int64_t first_task = 0, global_iter = 0;
  std::vector<json> diag_rows;  // [diagnostics] measurements so far

  if (resume) {
    const json ck = read_checkpoint_manifest(ckpt_json, kCheckpointFormat, kCheckpointVersion).fields;
    first_task = ck.at("completed_tasks").get<std::int64_t>();
    global_iter = ck.at("iteration").get<std::int64_t>();
    result.accuracy = ck.at("accuracy").get<std::vector<std::vector<double>>>();
    result.init_accuracy = ck.at("init_accuracy").get<std::vector<double>>();
    result.train_seconds = ck.at("train_seconds").get<std::vector<double>>();
    boundaries = ck.at("boundaries").get<std::vector<std::int64_t>>();
    if (ck.contains("diagnostics"))
      for (const auto& r : ck.at("diagnostics")) diag_rows.push_back(r);
    for (const auto& r : ck.at("tracks")) {
      tracks.push_back(r);
      tracker.record(r.at("task").get<std::int64_t>(), r.at("acc").get<std::vector<double>>());
    }
    const auto tensors = io::read_npz(run / ck.at("file").get<std::string>());
    std::map<std::string, torch::Tensor> sstate;
    {
      torch::NoGradGuard no_grad;
      for (std::size_t i = 0; i < ctx.params.size(); ++i) {
        const auto key = "model." + std::to_string(i);
        SL_CHECK(tensors.count(key), DataError, (run / ck.at("file").get<std::string>()).string(), ": missing ", key);
        const auto t = data::to_tensor(tensors.at(key));
        SL_CHECK(t.sizes() == ctx.params[i].sizes(), DataError, "checkpoint: ", key, " has shape ", t.sizes(), ", expected ",
                 ctx.params[i].sizes());
        ctx.params[i].copy_(t);
      }
    }
    for (const auto& [k, v] : tensors)
      if (k.rfind("strategy.", 0) == 0) sstate[k.substr(9)] = data::to_tensor(v).to(dev);
    strategy->load_state(sstate);
    // Strategies that build per-task state in before_task (LwF's teacher) get it again below.
  } else {
    for (std::int64_t k = 0; k < T; ++k) result.init_accuracy.push_back(eval_accuracy(ctx, tasks[k].test, k, dev));
  }

  std::unique_ptr<report::TensorBoardWriter> tb;
  if (p.out.tensorboard) tb = std::make_unique<report::TensorBoardWriter>(run);

  // [output] snapshot_every: flattened parameters in RUN/snapshots/, listed in index.json. A
  // resumed run keeps the snapshots up to its checkpoint's iteration (later ones belong to the
  // interrupted task, which is trained again and snapshotted at the same iterations).
  const auto snap_dir = run / "snapshots";
  std::vector<ClSnapshot> snapshots;
  if (resume) {
    for (const auto& s : list_cl_snapshots(run)) {
      if (s.iteration <= global_iter)
        snapshots.push_back(s);
      else
        std::filesystem::remove(snap_dir / s.file, ec);
    }
  } else {
    std::filesystem::remove_all(snap_dir, ec);
  }
  if (p.out.snapshot_every > 0) {
    std::filesystem::create_directories(snap_dir, ec);
    SL_CHECK(!ec, IoError, snap_dir.string(), ": cannot create (", ec.message(), ")");
  }
  auto snapshot = [&](std::int64_t current, bool task_end) {
    std::vector<torch::Tensor> flat;
    for (const auto& q : ctx.params) flat.push_back(q.detach().cpu().flatten());
    ClSnapshot s{global_iter, current, task_end, fmt::format("iter_{:08d}.npz", global_iter)};
    io::write_npz(snap_dir / s.file, {{"params", data::to_ndarray(torch::cat(flat))}}, /*compress=*/false);
    // The task-end snapshot replaces a periodic one taken at the same iteration (before after_task).
    if (!snapshots.empty() && snapshots.back().iteration == global_iter) snapshots.pop_back();
    snapshots.push_back(s);
    json rows = json::array();
    for (const auto& r : snapshots)
      rows.push_back({{"iteration", r.iteration}, {"task", r.task}, {"task_end", r.task_end}, {"file", r.file}});
    std::int64_t numel = 0;
    for (const auto& q : ctx.params) numel += q.numel();
    write_file_atomic(snap_dir / "index.json", json{{"format", kSnapshotFormat},
                                                   {"version", kSnapshotVersion},
                                                   {"snapshot_every", p.out.snapshot_every},
                                                   {"parameters", numel},
                                                   {"snapshots", rows}}
                                                  .dump(1));
  };

  auto track = [&](std::int64_t current) {
    torch::NoGradGuard no_grad;
    const auto n = sub_off[static_cast<std::size_t>(current) + 1];
    const auto pred = ctx.logits(all_sub_x.narrow(0, 0, n), all_sub_t.narrow(0, 0, n)).argmax(1).cpu();
    const auto ok = (pred == all_sub_y.narrow(0, 0, n)).to(torch::kFloat64);
    std::vector<double> acc;
    for (std::int64_t k = 0; k <= current; ++k)
      acc.push_back(ok.narrow(0, sub_off[k], sub_off[k + 1] - sub_off[k]).mean().item<double>());
    tracker.record(current, acc);
    json row{{"event", "track"}, {"task", current}, {"iteration", global_iter}, {"acc", acc},
             {"min_acc", num(tracker.min_acc())}, {"wc_acc", num(tracker.wc_acc())},
             {"wf10", tracker.windowed_forgetting(0)}, {"wf100", tracker.windowed_forgetting(1)}, {"lca", num(tracker.lca())}};
    append_jsonl(metrics_path, row);
    tracks.push_back(json{{"task", current}, {"iteration", global_iter}, {"acc", acc}});
    if (tb) {
      for (std::size_t k = 0; k < acc.size(); ++k) tb->scalar("track/acc_task" + std::to_string(k), acc[k], global_iter);
      if (!std::isnan(tracker.min_acc())) tb->scalar("track/min_acc", tracker.min_acc(), global_iter);
      tb->scalar("track/wc_acc", tracker.wc_acc(), global_iter);
    }
    double mean = 0;
    for (double a : acc) mean += a;
    return mean / static_cast<double>(acc.size());
  };

  // [diagnostics]: sharpness (and trace) of the training loss on fixed images of the current task.
  auto diagnose = [&](std::int64_t current) {
    const auto& train = tasks[static_cast<std::size_t>(current)].train;
    auto g = at::detail::createCPUGenerator(derive_seed(p.train.seed, current, 11));
    const auto idx = torch::randperm(train.size(), g, torch::kInt64).narrow(0, 0, std::min(p.diag.samples, train.size()));
    const auto x = train.images.index_select(0, idx).to(dev), y = train.labels.index_select(0, idx).to(dev);
    const auto tid = torch::full({x.size(0)}, current, torch::kInt64).to(dev);
    std::vector<diagnostics::Batch> batches{{x, y}};
    std::unique_ptr<diagnostics::CurvatureOperator> op;
    if (p.diag.curvature == "hessian")
      op = std::make_unique<diagnostics::HessianOperator>(
          ctx.params, [&](const diagnostics::Batch& b) { return cl::cross_entropy(ctx.logits(b.x, tid), b.y); }, batches);
    else
      op = std::make_unique<diagnostics::GaussNewtonOperator>(
          ctx.params, [&](const torch::Tensor& xb) { return ctx.model->forward(xb); }, diagnostics::OutputLoss::CrossEntropy,
          batches);
    const auto steps = std::min<std::int64_t>(p.diag.lanczos_steps, op->dim());
    const auto eig = diagnostics::lanczos(
        *op, diagnostics::LanczosOptions().k(1).steps(steps).which(diagnostics::Spectrum::LargestAlgebraic).seed(derive_seed(p.train.seed, current, 12)));
    json row{{"event", "diagnostics"}, {"task", current}, {"iteration", global_iter},
             {"lambda_max", eig.eigenvalues[0].item<double>()}, {"two_over_lr", 2.0 / p.train.lr},
             {"hvps", eig.matvecs}, {"curvature", p.diag.curvature}};
    if (tb) tb->scalar("diag/lambda_max", row["lambda_max"].get<double>(), global_iter);
    // GrokAlign centroid alignment cos(J(x)ᵀ1, x), mean over the same images (no generator used).
    row["centroid_alignment"] = diagnostics::centroid_alignment(ga_model(tid), x).mean_alignment;
    if (tb) tb->scalar("diag/centroid_alignment", row["centroid_alignment"].get<double>(), global_iter);
    if (p.diag.trace_probes > 0) {
      const auto tr = diagnostics::hutchinson_trace(
          *op, diagnostics::TraceOptions().matvecs(p.diag.trace_probes).seed(derive_seed(p.train.seed, current, 13)));
      row["trace"] = tr.estimate;
      row["trace_se"] = tr.standard_error;
      row["hvps"] = row["hvps"].get<std::int64_t>() + tr.matvecs;
      if (tb) tb->scalar("diag/trace", tr.estimate, global_iter);
    }
    append_jsonl(metrics_path, row);
    row.erase("event");
    diag_rows.push_back(row);
  };

  const std::int64_t last_task = stop_after > 0 ? std::min(T, first_task + stop_after) : T;
  double last_mean_acc = -1;
  for (std::int64_t i = first_task; i < last_task; ++i) {
    const auto task_start = std::chrono::steady_clock::now();
    ctx.task = i;
    ctx.task_iteration = 0;
    ctx.gen = at::detail::createCPUGenerator(derive_seed(p.train.seed, i, 2));
    auto order_gen = at::detail::createCPUGenerator(derive_seed(p.train.seed, i, 1));
    auto ga_gen = at::detail::createCPUGenerator(cl_grokalign_seed(p.train.seed, i));
    strategy->before_task(ctx);
    const auto set = strategy->train_set(ctx);
    const auto n = set.size();
    SL_CHECK(n > 0, DataError, "task ", i, ": no training samples");
    std::unique_ptr<torch::optim::Optimizer> opt;
    if (p.train.optimizer == "adam")
      opt = std::make_unique<torch::optim::Adam>(ctx.params, torch::optim::AdamOptions(p.train.lr));
    else
      opt = std::make_unique<torch::optim::SGD>(ctx.params, torch::optim::SGDOptions(p.train.lr).momentum(p.train.momentum));
    const auto per_epoch = (n + p.train.batch_size - 1) / p.train.batch_size;
    const auto iterations = per_epoch * p.train.epochs;
    if (p.eval.every > 0 && global_iter == 0 && tracks.empty()) last_mean_acc = track(i);  // before the first update
    if (p.diag.every > 0 && global_iter == 0 && diag_rows.empty()) diagnose(i);
    if (p.out.snapshot_every > 0 && global_iter == 0 && snapshots.empty()) snapshot(i, false);
    for (std::int64_t e = 0; e < p.train.epochs; ++e) {
      const auto order = torch::randperm(n, order_gen, torch::kInt64);
      for (std::int64_t b = 0; b < n; b += p.train.batch_size) {
        const auto idx = order.narrow(0, b, std::min(p.train.batch_size, n - b));
        cl::Batch batch{set.x.index_select(0, idx).to(dev), set.y.index_select(0, idx).to(dev),
                        set.task.index_select(0, idx).to(dev)};
        const auto trained = strategy->adapt_batch(ctx, batch);
        opt->zero_grad();
        const auto logits = ctx.logits(trained.x, trained.task);
        auto loss = cl::cross_entropy(logits, trained.y);
        const auto extra = strategy->extra_loss(ctx, trained, logits);
        if (extra.defined()) loss = loss + extra;
        double ga_value = 0;
        if (p.train.grokalign > 0) {
          // λ·R(x): fresh projections from the task's generator, in the outputs' dtype (as GrokAlign).
          const auto v = diagnostics::grokalign_projections(p.train.grokalign_projections, trained.x.size(0), ga_outputs,
                                                            ga_gen, logits.options().requires_grad(false));
          const auto r = diagnostics::jacobian_norm_estimates(ga_model(trained.task), trained.x, v, /*create_graph=*/true).mean();
          ga_value = r.item<double>();
          loss = loss + p.train.grokalign * r;
        }
        const double loss_value = loss.item<double>();
        SL_CHECK(std::isfinite(loss_value), DataError, "task ", i, " iteration ", ctx.task_iteration,
                 ": the loss is not finite (", loss_value, "); lower train.lr or the strategy's strength");
        loss.backward();
        strategy->after_backward(ctx);
        if (!strategy->step(ctx)) opt->step();
        strategy->after_step(ctx, batch);
        ++global_iter;
        ++ctx.task_iteration;
        ctx.iteration = global_iter;
        if (global_iter % p.out.log_every == 0) {
          json row{{"event", "train"}, {"task", i}, {"iteration", global_iter}, {"loss", loss_value}};
          if (p.train.grokalign > 0) row["grokalign"] = ga_value;
          append_jsonl(metrics_path, row);
          if (tb) tb->scalar("train/loss", loss_value, global_iter);
          if (tb && p.train.grokalign > 0) tb->scalar("train/grokalign", ga_value, global_iter);
        }
        if (p.eval.every > 0 && global_iter % p.eval.every == 0) last_mean_acc = track(i);
        if (p.diag.every > 0 && global_iter % p.diag.every == 0) diagnose(i);
        if (p.out.snapshot_every > 0 && global_iter % p.out.snapshot_every == 0) snapshot(i, false);
        if (progress)
          progress({i, T, ctx.task_iteration, iterations, loss_value, last_mean_acc,
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - start_time).count()});
      }
    }
    strategy->after_task(ctx);
    if (p.out.snapshot_every > 0) snapshot(i, true);
    result.train_seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - task_start).count());
    boundaries.push_back(global_iter);

    // Task-end evaluation on every task's full test set (future tasks too, for FWT).
    std::vector<double> row;
    for (std::int64_t k = 0; k < T; ++k) row.push_back(eval_accuracy(ctx, tasks[k].test, k, dev));
    result.accuracy.push_back(row);
    double seen = 0;
    for (std::int64_t k = 0; k <= i; ++k) seen += row[k];
    last_mean_acc = seen / static_cast<double>(i + 1);
    append_jsonl(metrics_path, {{"event", "task_end"}, {"task", i}, {"iteration", global_iter}, {"acc", row},
                                {"mean_seen", last_mean_acc}, {"seconds", result.train_seconds.back()}});
    if (tb) {
      for (std::int64_t k = 0; k < T; ++k) tb->scalar("eval/acc_task" + std::to_string(k), row[k], global_iter);
      tb->scalar("eval/mean_seen", last_mean_acc, global_iter);
      tb->flush();
    }
    if (progress)
      progress({i, T, iterations, iterations, 0.0, last_mean_acc,
                std::chrono::duration<double>(std::chrono::steady_clock::now() - start_time).count()});

    // Checkpoint: tensors first, then the JSON that points at them.
    std::map<std::string, io::NdArray> tensors;
    for (std::size_t k = 0; k < ctx.params.size(); ++k) tensors["model." + std::to_string(k)] = data::to_ndarray(ctx.params[k].detach().cpu());
    for (const auto& [k, v] : strategy->state()) tensors["strategy." + k] = data::to_ndarray(v.cpu());
    const std::string file = "checkpoint_task" + std::to_string(i) + ".npz";
    io::write_npz(run / file, tensors, /*compress=*/false);
    json jt = json::array();
    for (const auto& r : tracks) jt.push_back(r);
    write_file_atomic(ckpt_json, json{{"format", kCheckpointFormat},
                                      {"version", kCheckpointVersion},
                                      {"completed_tasks", i + 1},
                                      {"iteration", global_iter},
                                      {"file", file},
                                      {"accuracy", result.accuracy},
                                      {"init_accuracy", result.init_accuracy},
                                      {"train_seconds", result.train_seconds},
                                      {"boundaries", boundaries},
                                      {"tracks", jt},
                                      {"diagnostics", diag_rows}}
                                     .dump());
    // Every task's checkpoint is kept (representation drift across tasks: `diagnose cka`).

    // Accuracy matrix CSV and summary, rewritten after every task.
    {
      std::string csv = "after_task";
      for (std::int64_t k = 0; k < T; ++k) csv += ",task_" + std::to_string(k);
      csv += "\n";
      for (std::size_t r = 0; r < result.accuracy.size(); ++r) {
        csv += std::to_string(r);
        for (double a : result.accuracy[r]) csv += fmt::format(",{:.6f}", a);
        csv += "\n";
      }
      write_file_atomic(run / "accuracy_matrix.csv", csv);
    }
    std::vector<double> sizes;
    for (const auto& t : tasks) sizes.push_back(static_cast<double>(t.test.size()));
    const auto m = cl::matrix_metrics(result.accuracy, result.init_accuracy, sizes, result.accuracy.size());
    std::int64_t nparams = 0;
    for (const auto& q : ctx.params) nparams += q.numel();
    json summary{{"completed_tasks", i + 1},
                 {"tasks", T},
                 {"stream", data::stream_kind_name(p.stream.stream.kind)},
                 {"strategy", strategy->name()},
                 {"model", p.model.kind},
                 {"params", nparams},
                 {"seed", p.train.seed},
                 {"accuracy_matrix", result.accuracy},
                 {"init_accuracy", result.init_accuracy},
                 {"metrics",
                  {{"ACC", m.acc}, {"ACC_pooled", m.acc_pooled}, {"BWT", m.bwt}, {"FWT", m.fwt},
                   {"forgetting_just_learned", m.forgetting_just_learned}, {"forgetting_max", m.forgetting_max}}},
                 {"train_seconds", result.train_seconds},
                 {"iterations", global_iter},
                 {"runtime", json::parse(runtime_info_json(runtime_info()))}};
    if (p.eval.every > 0)
      summary["continual"] = {{"every", p.eval.every},   {"subset", p.eval.subset},
                              {"min_acc", num(tracker.min_acc())}, {"wc_acc", num(tracker.wc_acc())},
                              {"wf10", tracker.windowed_forgetting(0)}, {"wf100", tracker.windowed_forgetting(1)},
                              {"lca", num(tracker.lca())}, {"tracking_steps", tracker.steps()}};
    if (p.diag.every > 0 && !diag_rows.empty()) {
      double peak = 0;
      for (const auto& r : diag_rows) peak = std::max(peak, r.at("lambda_max").get<double>());
      summary["diagnostics"] = {{"every", p.diag.every}, {"curvature", p.diag.curvature}, {"last", diag_rows.back()},
                                {"max_lambda_max", peak}, {"two_over_lr", 2.0 / p.train.lr}};
    }
    write_file_atomic(run / "summary.json", summary.dump(1));
    if (p.out.figures && p.diag.every > 0 && diag_rows.size() > 1) {
      std::vector<std::pair<double, double>> pts;
      double ymax = 2.0 / p.train.lr;
      for (const auto& r : diag_rows) {
        pts.emplace_back(r.at("iteration").get<double>(), r.at("lambda_max").get<double>());
        ymax = std::max(ymax, pts.back().second);
      }
      report::SvgPlot plot(800, 400);
      plot.set_range(0, std::max(1.0, pts.back().first), 0, ymax * 1.1);
      plot.title(fmt::format("sharpness: top {} eigenvalue of the training loss on task samples", p.diag.curvature));
      plot.labels("iteration", "lambda_max");
      plot.polyline({{0.0, 2.0 / p.train.lr}, {std::max(1.0, pts.back().first), 2.0 / p.train.lr}}, "#d62728", 1.0);
      plot.legend("2 / lr (GD stability bound)", "#d62728");
      plot.polyline(pts, "#1f77b4", 1.5);
      plot.legend("lambda_max", "#1f77b4");
      plot.save((run / "sharpness.svg").string());
    }
    if (p.out.figures && !tracks.empty())
      write_curves_svg(run / "accuracy_curves.svg", tracks, T, boundaries,
                       fmt::format("{} on {}: per-task accuracy during training", strategy->name(),
                                   data::stream_kind_name(p.stream.stream.kind)));
  }
  return result;
}

torch::Tensor ClRunView::logits(const torch::Tensor& x, std::int64_t task) const {
  auto z = model->forward(x, model->weights());
  if (!task_incremental) return z;
  auto mask = torch::zeros({z.size(1)}, torch::kBool);
  for (auto c : tasks.at(static_cast<std::size_t>(task)).classes) mask[c] = true;
  return cl::mask_logits(z, mask.to(z.device()));
}

torch::Tensor ClRunView::head_logits(const torch::Tensor& x, std::int64_t task, const std::vector<torch::Tensor>& w) const {
  SL_CHECK(task >= 0 && task < static_cast<std::int64_t>(tasks.size()), UsageError, "task ", task, ": the run has ",
           tasks.size(), " tasks");
  const auto z = model->forward(x, w);
  if (!task_incremental) return z;
  return z.index_select(1, torch::tensor(tasks[static_cast<std::size_t>(task)].classes, torch::kInt64).to(z.device()));
}

namespace {

/// The "model.<i>" arrays of a checkpoint npz, checked against the shapes of `like`.
std::vector<torch::Tensor> read_checkpoint_weights(const std::filesystem::path& file, const std::vector<torch::Tensor>& like) {
  const auto tensors = io::read_npz(file);
  std::vector<torch::Tensor> out;
  for (std::size_t i = 0; i < like.size(); ++i) {
    const auto key = "model." + std::to_string(i);
    SL_CHECK(tensors.count(key), DataError, file.string(), ": missing ", key);
    auto t = data::to_tensor(tensors.at(key));
    SL_CHECK(t.sizes() == like[i].sizes(), DataError, file.string(), ": ", key, " has shape ", t.sizes(), ", expected ",
             like[i].sizes());
    out.push_back(t.to(like[i].dtype()));
  }
  return out;
}

}  // namespace

ClRunView load_cl_run(const std::filesystem::path& run) {
  const auto cfg_path = run / "config.toml", ckpt_json = run / "checkpoint.json";
  SL_CHECK(std::filesystem::exists(cfg_path), IoError, cfg_path.string(), ": missing (is this a `cl run` directory?)");
  SL_CHECK(std::filesystem::exists(ckpt_json), IoError, ckpt_json.string(), ": missing (the run has not finished a task)");
  const ClExperiment e(Config::from_file(cfg_path));
  const auto& p = *e.p_;
  const json ck = read_checkpoint_manifest(ckpt_json, kCheckpointFormat, kCheckpointVersion).fields;
  ClRunView v;
  v.tasks = build_stream(p.stream);
  v.task_incremental = p.stream.stream.kind == data::StreamKind::SplitTaskIncremental;
  v.grokalign = p.train.grokalign;
  v.completed_tasks = ck.at("completed_tasks").get<std::int64_t>();
  v.model = models::Classifier(p.model);
  v.run_dir = run;
  const auto loaded = read_checkpoint_weights(run / ck.at("file").get<std::string>(), v.model->weights());
  torch::NoGradGuard no_grad;
  const auto& w = v.model->weights();
  for (std::size_t i = 0; i < w.size(); ++i) w[i].copy_(loaded[i]);
  return v;
}

std::vector<torch::Tensor> ClRunView::task_weights(std::int64_t task) const {
  SL_CHECK(task >= 0 && task < completed_tasks, UsageError, "task ", task, ": the run has completed ", completed_tasks,
           " tasks (0..", completed_tasks - 1, ")");
  const auto file = run_dir / ("checkpoint_task" + std::to_string(task) + ".npz");
  if (std::filesystem::exists(file)) return read_checkpoint_weights(file, model->weights());
  for (const auto& s : list_cl_snapshots(run_dir)) {
    if (!(s.task_end && s.task == task)) continue;
    const auto flat = load_cl_snapshot(run_dir, s);
    const auto numel = model->layout().numel();
    SL_CHECK(flat.numel() == numel, DataError, (run_dir / "snapshots" / s.file).string(), ": ", flat.numel(),
             " parameters, the model has ", numel);
    return model->layout().split(flat.clone());
  }
  SL_THROW(IoError, file.string(), ": missing, and no task-end snapshot of task ", task,
           " (runs made before every task's checkpoint was kept have only the last one; rerun, or set [output] "
           "snapshot_every)");
}

std::vector<ClSnapshot> list_cl_snapshots(const std::filesystem::path& run) {
  const auto index = run / "snapshots" / "index.json";
  std::vector<ClSnapshot> out;
  if (!std::filesystem::exists(index)) return out;
  try {
    const auto j = json::parse(read_file_text(index));
    SL_CHECK(j.value("format", "") == kSnapshotFormat, DataError, index.string(), ": not a stablelearn snapshot index");
    SL_CHECK(j.value("version", 0) >= 1 && j.value("version", 0) <= kSnapshotVersion, DataError, index.string(),
             ": unsupported snapshot index version ", j.value("version", 0), " (this build reads 1..", kSnapshotVersion, ")");
    for (const auto& r : j.at("snapshots"))
      out.push_back({r.at("iteration").get<std::int64_t>(), r.at("task").get<std::int64_t>(), r.at("task_end").get<bool>(),
                     r.at("file").get<std::string>()});
  } catch (const json::exception& ex) {
    SL_THROW(DataError, index.string(), ": corrupt snapshot index (", ex.what(), ")");
  }
  for (std::size_t i = 0; i < out.size(); ++i) {
    SL_CHECK(i == 0 || out[i].iteration > out[i - 1].iteration, DataError, index.string(),
             ": snapshots not in increasing iteration order");
    SL_CHECK(!out[i].file.empty() && std::filesystem::path(out[i].file).filename() == out[i].file && out[i].file != "..",
             DataError, index.string(), ": snapshot file \"", out[i].file, "\" is not a plain file name");
  }
  return out;
}

torch::Tensor load_cl_snapshot(const std::filesystem::path& run, const ClSnapshot& snapshot) {
  const auto file = run / "snapshots" / snapshot.file;
  SL_CHECK(std::filesystem::exists(file), IoError, file.string(), ": missing (listed in snapshots/index.json)");
  const auto tensors = io::read_npz(file);
  SL_CHECK(tensors.count("params"), DataError, file.string(), ": missing the array \"params\"");
  const auto t = data::to_tensor(tensors.at("params"));
  SL_CHECK(t.dim() == 1, DataError, file.string(), ": \"params\" has shape ", t.sizes(), ", expected [D]");
  return t;
}

}  // namespace stablelearn::experiments
