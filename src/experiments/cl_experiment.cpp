#include "stablelearn/experiments/cl_experiment.h"

#include "cl_internal.h"
#include "stablelearn/distributed/process_group.h"
#include "stablelearn/experiments/cl_backbone.h"
#include "stablelearn/robust/label_noise.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>

#include "stablelearn/continual/metrics.h"
#include "stablelearn/continual/registry.h"
#include "stablelearn/core/env.h"
#include "stablelearn/core/error.h"
#include "stablelearn/core/fs.h"
#include "stablelearn/core/options.h"
#include "stablelearn/core/run.h"
#include "stablelearn/data/tensor_convert.h"
#include "stablelearn/io/npz.h"

namespace stablelearn::experiments {

using json = nlohmann::json;
namespace cl = continual;

using detail::kCheckpointFormat;
using detail::kCheckpointVersion;
using detail::kSnapshotFormat;
using detail::kSnapshotVersion;

namespace detail {

std::unique_ptr<data::TaskStream> make_task_stream(const ClStreamOptions& o) {
  auto ds = std::make_shared<const data::ImageDataset>(data::load_fashion_mnist(o.data_dir));
  return std::make_unique<data::TaskStream>(std::move(ds), o.stream, o.train_per_task, o.test_per_task);
}

void add_label_noise(data::ClTask& t, const ClStreamOptions& o) {
  if (o.label_noise == "none" || o.label_noise_rate <= 0) return;
  // Among the task's own training labels (split streams: its 2 classes; domain: 0/1; permuted and
  // rotated: all 10): labels → their index in the sorted label set, corrupted, mapped back.
  const auto labels = t.train.labels;
  const auto set = std::get<0>(at::_unique(labels, /*sorted=*/true));
  SL_CHECK(set.numel() >= 2, ConfigError, "stream.label_noise: task ", t.id, " has ", set.numel(),
           " training label(s); label noise needs at least 2");
  robust::LabelNoiseOptions no;
  no.kind = o.label_noise;
  no.rate = o.label_noise_rate;
  no.seed = derive_seed(o.label_noise_seed, t.id, 23);
  const auto noisy = robust::corrupt_labels(torch::searchsorted(set, labels), set.numel(), no);
  t.train_clean_labels = labels;
  t.train.labels = set.index_select(0, noisy.labels);
}

std::vector<data::ClTask> build_stream(const ClStreamOptions& o) {
  const auto stream = make_task_stream(o);
  std::vector<data::ClTask> tasks;
  for (std::int64_t t = 0; t < stream->size(); ++t) {
    tasks.push_back(stream->task(t));
    add_label_noise(tasks.back(), o);
  }
  return tasks;
}

}  // namespace detail

using detail::build_stream;

std::uint64_t cl_grokalign_seed(std::int64_t seed, std::int64_t task) { return derive_seed(seed, task, 17); }

std::vector<std::pair<std::string, std::string>> stream_kinds() {
  return {{"split-class", "Fashion-MNIST, 5 tasks x 2 classes, one 10-way head (class-incremental)"},
          {"split-task", "Fashion-MNIST, 5 tasks x 2 classes, logits masked to the task's classes (multi-head, task-incremental)"},
          {"split-domain", "Fashion-MNIST, 5 tasks x 2 classes relabelled 0/1 (domain-incremental)"},
          {"permuted", "Fashion-MNIST, task 0 unpermuted, task t a seeded pixel permutation (default 10 tasks)"},
          {"rotated", "Fashion-MNIST, task t rotated by t x rotation_step degrees (default 20 tasks, 9 degrees)"}};
}

void ClStreamOptions::fields(options::Visitor& v) {
  std::vector<std::pair<std::string, data::StreamKind>> kinds;
  for (const auto& [name, text] : stream_kinds()) kinds.emplace_back(name, data::parse_stream_kind(name));
  v.choice("kind", stream.kind, kinds, "the task stream (stablelearn list streams)");
  v("tasks", stream.num_tasks, "tasks of the stream (0 = the kind's default: split 5, permuted 10, rotated 20)")
      .at_least(0);
  v("seed", stream.seed, "class order of split streams, permutations");
  v("rotation_step", stream.rotation_step, "rotated: degrees between consecutive tasks");
  v("data_dir", data_dir, "folder with the Fashion-MNIST idx files");
  v("train_per_task", train_per_task, "training samples per task (0 = all)").at_least(0);
  v("test_per_task", test_per_task, "test samples per task (0 = all)").at_least(0);
  v("label_noise", label_noise,
    "corrupt each task's training labels among the task's labels: none | symmetric | asymmetric (docs/robust.md)")
      .one_of({"none", "symmetric", "asymmetric"});
  v("label_noise_rate", label_noise_rate, "fraction of each task's training labels corrupted").at_least(0.0).below(1.0);
  v("label_noise_seed", label_noise_seed, "seed of the corruption (with the task index)");
}

void ClTrainOptions::fields(options::Visitor& v) {
  v("epochs", epochs, "epochs per task").at_least(1);
  v("batch_size", batch_size, "samples per step").at_least(1);
  v("lr", lr, "learning rate").above(0.0);
  v("optimizer", optimizer, "sgd | adam (Adam's state is reset at the start of every task)").one_of({"sgd", "adam"});
  v("momentum", momentum, "sgd momentum").at_least(0.0).below(1.0);
  v("seed", seed, "initialisation, batch order and every generator (derive_seed)");
  v("device", device, "cpu | cuda | auto").one_of({"cpu", "cuda", "auto"});
  v("grokalign", grokalign, "λ of the GrokAlign Jacobian regulariser (0 = off; the paper: 1e-3)").at_least(0.0);
  v("grokalign_projections", grokalign_projections, "random projections per sample of the GrokAlign estimate").at_least(1);
  v("engine", engine,
    "auto: gradients without autograd where the step is plain (mlp, cpu, sgd, no grokalign, finetune/joint; same numbers); "
    "autograd: always the graph")
      .one_of({"auto", "autograd"});
}

void ClEvalOptions::fields(options::Visitor& v) {
  v("every", every, "continual evaluation period in iterations (0 = task ends only)").at_least(0);
  v("subset", subset, "evaluation samples per task for continual evaluation (fixed, seeded)").at_least(1);
  v("lca_beta", lca_beta, "β of the learning curve area").at_least(1);
}

void ClDiagnosticsOptions::fields(options::Visitor& v) {
  v("every", every, "iterations between curvature measurements (0 = off)").at_least(0);
  v("samples", samples, "fixed, seeded training images of the current task").at_least(1);
  v("lanczos_steps", lanczos_steps, "Lanczos steps of λ_max").at_least(2);
  v("trace_probes", trace_probes, "Hutchinson probes of the trace (0 = no trace)").at_least(0);
  v("curvature", curvature, "hessian | ggn (Gauss-Newton)").one_of({"hessian", "ggn"});
}

void ClOutputOptions::fields(options::Visitor& v) {
  v("tensorboard", tensorboard, "write TensorBoard scalars");
  v("figures", figures, "write accuracy_curves.svg");
  v("log_every", log_every, "iterations between training-loss rows in metrics.jsonl").at_least(1);
  v("snapshot_every", snapshot_every, "iterations between parameter snapshots in snapshots/ (0 = off)").at_least(0);
  v("report_every", report_every,
    "tasks between rewrites of accuracy_matrix.csv, summary.json and the figures (also after the run's last task)")
      .at_least(1);
}

void ClBackboneOptions::fields(options::Visitor& v) {
  v("file", file, "pre-trained backbone npz (stablelearn cl pretrain); \"\" = the model's own initialisation");
  AdapterOptions::fields(v);
}

void ClPretrainOptions::fields(options::Visitor& v) {
  v("epochs", epochs, "cl pretrain: epochs over the pre-training images").at_least(1);
  v("batch_size", batch_size, "cl pretrain: samples per step").at_least(1);
  v("lr", lr, "cl pretrain: SGD learning rate").above(0.0);
  v("momentum", momentum, "cl pretrain: SGD momentum").at_least(0.0).below(1.0);
  v("samples", samples, "cl pretrain: pre-training images (0 = every image the stream leaves out)").at_least(0);
  v("seed", seed, "cl pretrain: initialisation and batch order");
}

void ClConfig::fields(options::Visitor& v) {
  v.section("stream", stream);
  v.section("model", model);
  v.section("train", train);
  v.section("eval", eval);
  v.section("diagnostics", diag);
  v.section("output", out);
  v.section("backbone", backbone);
  v.section("pretrain", pretrain);
}

struct ClExperiment::Impl : ClConfig {
  continual::StrategySpec strategy;
  std::string resolved;
};

ClExperiment::ClExperiment(const Config& cfg) : p_(std::make_unique<Impl>()) {
  auto& p = *p_;
  options::read(cfg, static_cast<ClConfig&>(p), {"strategy"});
  auto& st = p.stream.stream;
  const bool split = st.kind == data::StreamKind::SplitClassIncremental ||
                     st.kind == data::StreamKind::SplitTaskIncremental || st.kind == data::StreamKind::SplitDomainIncremental;
  if (st.num_tasks == 0) st.num_tasks = split ? 5 : st.kind == data::StreamKind::Permuted ? 10 : 20;
  SL_CHECK(!split || st.num_tasks <= 5, ConfigError, cfg.source(), ": stream.tasks: split Fashion-MNIST streams have 1..5 tasks "
           "(10 classes, 2 per task), got ", st.num_tasks, " (permuted and rotated streams make any number)");
  SL_CHECK(!(p.diag.curvature == "ggn" && st.kind == data::StreamKind::SplitTaskIncremental), ConfigError, cfg.source(),
           ": diagnostics.curvature = \"ggn\" uses unmasked logits; use \"hessian\" with task-incremental streams");
  ConfigWriter w;
  {
    auto s = cfg.section("strategy");
    p.strategy = cl::parse_strategy(s);
    s.finish();
    p.strategy.describe(w);
  }
  SL_CHECK(!p.backbone.adapted() || detail::supports_adapted_network(p.strategy.name), ConfigError, cfg.source(),
           ": strategy.name: \"", p.strategy.name, "\" reads the model's own layers and does not support [backbone] freeze / "
           "adapter yet (supported: finetune, joint, ewc, si, er, agem, derpp, ema)");
  options::write(w, static_cast<const ClConfig&>(p));
  p.resolved = w.to_string();
}

ClExperiment::~ClExperiment() = default;
std::string ClExperiment::resolved_config() const { return p_->resolved; }

ClPretrainResult ClExperiment::pretrain(std::filesystem::path out,
                                        const std::function<void(std::int64_t, std::int64_t, double)>& progress) const {
  if (out.empty()) out = p_->backbone.file;
  SL_CHECK(!out.empty(), UsageError, "cl pretrain: no output file (pass --out FILE or set backbone.file)");
  return detail::pretrain_backbone(*p_, out, progress);
}

ClResult ClExperiment::run(const std::filesystem::path& run, bool resume, const std::function<void(const ClProgress&)>& progress,
                           std::int64_t stop_after, distributed::ProcessGroup* group) {
  if (!p_->backbone.file.empty()) {  // a missing or mismatched backbone file, before anything is written
    models::Classifier probe(p_->model);
    load_backbone(p_->backbone.file, *probe);
  }
  if (group) {
    // Every check before anything is written, on every rank alike.
    SL_CHECK(!p_->backbone.adapted(), ConfigError, "backbone.freeze / backbone.adapter: not supported in data-parallel runs yet");
    group->check_same("the resolved configuration (CONFIG and --set)",
                      std::to_string(std::hash<std::string>{}(p_->resolved)));
    SL_CHECK(p_->train.device == "cpu", ConfigError, "train.device = \"", p_->train.device,
             "\": distributed cl run all-reduces CPU tensors through Gloo (set train.device = \"cpu\")");
    const auto refusal = p_->strategy.make()->data_parallel_refusal();
    SL_CHECK(refusal.empty(), ConfigError, "strategy.name: ", p_->strategy.name, " ", refusal, " (", group->size(),
             " ranks); run it in one process");
    // --resume: rank 0 opens the run directory below and hands its checkpoint to the other ranks
    // (ClRun::restore), whatever the number of ranks that wrote it.
    if (group->rank() != 0) return detail::run_cl(*p_, p_->strategy, nullptr, progress, stop_after, group);
  }
  // On --resume the run's config.toml is re-resolved with this build's defaults (keys added since
  // the run was made get their defaults): equal to this configuration → the run continues.
  const auto config_path = (run / "config.toml").string();
  const auto dir =
      RunDir::open(run, p_->resolved,
                   RunDirOptions().resume(resume).marker("checkpoint.json").reresolve([&](const std::string& stored) {
                     return ClExperiment(Config::from_string(stored, config_path)).resolved_config();
                   }));
  return detail::run_cl(*p_, p_->strategy, &dir, progress, stop_after, group);
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
  // A view evaluates the saved weights as one network; a per-task-network strategy's run evaluates
  // each task through its own masks, so such a view would answer for a network the run never had.
  SL_CHECK(!p.strategy.make()->per_task_network(), UsageError, run.string(), ": strategy \"", p.strategy.name,
           "\" gives every task its own view of the network (masks kept in the strategy's state); commands that "
           "read a run's saved weights as one network (unlearn, diagnose) do not support it");
  SL_CHECK(!p.backbone.adapted(), UsageError, run.string(), ": the run trains adapters or a frozen backbone ([backbone] freeze / "
           "adapter); commands that read a run's saved weights as one network (unlearn, diagnose) do not support it yet");
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
