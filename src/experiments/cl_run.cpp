// The training engine of `cl run` (ClExperiment::run): one ClRun object holds a run's state —
// stream, model, strategy, continual evaluation, [diagnostics], snapshots, TensorBoard — and is a
// learner of the one task loop (core/task_loop.h): before_task → batches (strategy hooks,
// GrokAlign, tracking, curvature, snapshots) → after_task → evaluation of every task → checkpoint
// → accuracy matrix, summary and figures.
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <torch/cuda.h>
#include <torch/optim/adam.h>
#include <torch/optim/sgd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <map>
#include <set>
#include <string_view>

#include "cl_internal.h"
#include "stablelearn/continual/metrics.h"
#include "stablelearn/continual/registry.h"
#include "stablelearn/core/env.h"
#include "stablelearn/core/error.h"
#include "stablelearn/core/fs.h"
#include "stablelearn/core/run.h"
#include "stablelearn/core/task_loop.h"
#include "stablelearn/data/tensor_convert.h"
#include "stablelearn/diagnostics/curvature.h"
#include "stablelearn/experiments/cl_backbone.h"
#include "stablelearn/diagnostics/grokalign.h"
#include "stablelearn/diagnostics/monitor.h"
#include "stablelearn/distributed/process_group.h"
#include "stablelearn/io/npz.h"
#include "stablelearn/models/mlp_step.h"
#include "stablelearn/optim/sgd.h"
#include "stablelearn/report/svg.h"
#include "stablelearn/report/tensorboard.h"
#include "stablelearn/robust/label_noise.h"

namespace stablelearn::experiments {

using json = nlohmann::json;
namespace cl = continual;

namespace detail {

namespace {

/// STABLELEARN_DIST_OVERLAP=0: data-parallel gradient sums after backward instead of overlapped
/// with it (for measuring the overlap; the sums are the same).
bool dist_overlap() {
  static const bool on = [] {
    const char* v = std::getenv("STABLELEARN_DIST_OVERLAP");
    return !(v && std::string(v) == "0");
  }();
  return on;
}

json num(double v) { return std::isnan(v) ? json(nullptr) : json(v); }

/// Test sets of a stream are kept in memory while all of them fit in this many bytes (1 GiB, or
/// STABLELEARN_CL_TEST_CACHE_MB MiB); beyond, each evaluation computes them again (memory flat in
/// the number of tasks; the same numbers).
std::int64_t test_cache_bytes() {
  const char* v = std::getenv("STABLELEARN_CL_TEST_CACHE_MB");
  return v ? std::int64_t{std::atoll(v)} << 20 : std::int64_t{1} << 30;
}
/// derive_seed purpose of the adapters' initial draws ([backbone] adapter).
constexpr std::int64_t kAdapterSeedPurpose = 29;

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

namespace {

/// `cl run` as a learner of the one task loop (core/task_loop.h).
class ClRun final : public TaskLearner {
 public:
  /// `run` is null on the ranks other than 0 of a distributed run (`group`), which write nothing.
  ClRun(const ClConfig& p, const cl::StrategySpec& strategy, const RunDir* run, std::function<void(const ClProgress&)> progress,
        distributed::ProcessGroup* group);
  ClResult train(std::int64_t stop_after);

  std::int64_t begin_task(std::int64_t i) override;
  double step(std::int64_t i, std::int64_t s) override;
  void after_step(std::int64_t i, std::int64_t s, double loss) override;
  void end_task(std::int64_t i) override;
  void check_replicas(std::int64_t i);
  void evaluate(std::int64_t i, double seconds) override;
  void checkpoint(std::int64_t i) override {
    if (lead_) write_checkpoint(i);
  }
  void report(std::int64_t i) override {
    if (lead_ && ((i + 1) % p_.out.report_every == 0 || i + 1 == last_task_)) write_reports(i);
  }
  std::string divergence_hint() const override { return "lower train.lr or the strategy's strength"; }

 private:
  void draw_eval_subsets();
  void set_up_backbone(const ClConfig& p);
  const data::ImageSet& test_set(std::int64_t k);
  void materialise_train(std::int64_t i);
  void restore();
  void open_snapshots();
  void snapshot(std::int64_t current, bool task_end);
  double track(std::int64_t current);
  diagnostics::OutputFn ga_model(const torch::Tensor& task_ids);
  void diagnose(std::int64_t current);
  double update(const cl::Batch& batch);
  double plain_update(const cl::Batch& batch);
  double update_distributed(const cl::Batch& batch);
  void optimiser_step();
  void end_update(const cl::Batch& batch);
  void write_checkpoint(std::int64_t i);
  void write_reports(std::int64_t i);
  void write_sharpness_svg();
  double elapsed() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_time_).count(); }

  const ClConfig& p_;
  const RunDir* const run_;  // null on ranks > 0 of a distributed run
  distributed::ProcessGroup* const group_;
  std::unique_ptr<distributed::GradientReducer> reducer_;  ///< data-parallel runs, made at the first update
  const bool lead_;          // this process writes the run directory (rank 0, or not distributed)
  const std::filesystem::path snap_dir_;
  const std::function<void(const ClProgress&)> progress_;
  const std::chrono::steady_clock::time_point start_time_ = std::chrono::steady_clock::now();
  torch::Device dev_{torch::kCPU};
  std::unique_ptr<data::TaskStream> stream_;  // tasks computed on demand
  std::vector<data::ClTask> tasks_;  // ids and classes; train set of the task being trained (joint: all seen)
  std::vector<data::ImageSet> test_cache_;  // test sets, kept when they fit in test_cache_bytes()
  bool cache_tests_ = false;
  data::ImageSet test_scratch_;
  std::int64_t T_ = 0;
  models::Classifier model_{nullptr};
  std::unique_ptr<models::AdaptedClassifier> adapted_;  // [backbone] freeze / adapter
  std::unique_ptr<cl::Strategy> strategy_;
  cl::Context ctx_;
  torch::Tensor heads_;         // GrokAlign: class indices per task (task-incremental runs)
  std::int64_t ga_outputs_ = 0;
  torch::Tensor all_sub_x_, all_sub_y_, all_sub_t_;  // continual-evaluation subsets
  std::vector<std::int64_t> sub_off_{0};
  cl::ContinualTracker tracker_;
  ClResult result_;
  std::vector<json> tracks_;
  std::vector<std::int64_t> boundaries_;
  std::int64_t first_task_ = 0, global_iter_ = 0;
  std::int64_t last_task_ = 0;  // the task loop's end (exclusive): T, or the --stop-after bound
  std::vector<json> diag_rows_;  // [diagnostics] measurements so far
  std::vector<json> memorisation_;  // label noise: per finished task, its corrupted samples fitted
  std::unique_ptr<report::TensorBoardWriter> tb_;
  std::vector<ClSnapshot> snapshots_;
  double last_mean_acc_ = -1;
  // The current task's training state (begin_task).
  torch::Generator order_gen_, ga_gen_;
  cl::TrainSet set_;
  torch::Tensor order_;
  std::unique_ptr<torch::optim::Optimizer> opt_;  // adam
  std::unique_ptr<optim::SgdMomentum> sgd_;        // sgd: one pass per parameter, torch's SGD's numbers
  std::unique_ptr<models::MlpLossGrad> plain_;     // this task's steps are plain (begin_task)
  torch::Tensor batch_x_, batch_y_, batch_t_;      // plain steps: the batch, gathered in place
  std::int64_t per_epoch_ = 0, iterations_ = 0;
  double ga_value_ = 0;  // the last update's GrokAlign term
};

ClRun::ClRun(const ClConfig& p, const cl::StrategySpec& strategy, const RunDir* run, std::function<void(const ClProgress&)> progress,
             distributed::ProcessGroup* group)
    : p_(p),
      run_(run),
      group_(group),
      lead_(run != nullptr),
      snap_dir_(run ? run->file("snapshots") : std::filesystem::path()),
      progress_(std::move(progress)),
      tracker_(1, p.eval.lca_beta) {
  if (p.train.device == "cuda" || (p.train.device == "auto" && torch::cuda::is_available())) {
    SL_CHECK(torch::cuda::is_available(), UsageError, "train.device = \"cuda\" but this libtorch has no usable CUDA device");
    dev_ = torch::Device(torch::kCUDA);
  }
  stream_ = make_task_stream(p.stream);
  T_ = stream_->size();
  std::int64_t test_bytes = 0;
  for (std::int64_t k = 0; k < T_; ++k) {
    tasks_.push_back(stream_->task(k, false, false));
    test_bytes += stream_->test_size(k) * p.model.input[0] * p.model.input[1] * p.model.input[2] * 4;
  }
  cache_tests_ = test_bytes <= test_cache_bytes();
  test_cache_.resize(static_cast<std::size_t>(T_));
  tracker_ = cl::ContinualTracker(T_, p.eval.lca_beta);
  seed_everything(static_cast<std::uint64_t>(p.train.seed));
  model_ = models::Classifier(p.model);
  if (!p.backbone.file.empty()) load_backbone(p.backbone.file, *model_);
  model_->to(dev_);
  strategy_ = strategy.make();
  result_.strategy = strategy_->name();
  ctx_.params = model_->weights();
  set_up_backbone(p);

  // GrokAlign's Jacobian term differentiates the model's own weights; a per-task-network strategy
  // trains each task through its own view of them, which the term would not see.
  SL_CHECK(p.train.grokalign == 0 || !strategy_->per_task_network(), ConfigError, "train.grokalign: strategy \"",
           strategy_->name(), "\" gives every task its own view of the network; GrokAlign is not supported with it (set "
           "train.grokalign = 0)");
  ctx_.model = model_.get();
  ctx_.strategy = strategy_.get();
  ctx_.world_size = group ? group->size() : 1;
  ctx_.tasks = &tasks_;
  ctx_.batch_size = p.train.batch_size;
  ctx_.lr = p.train.lr;
  ctx_.task_incremental = p.stream.stream.kind == data::StreamKind::SplitTaskIncremental;
  auto mask = torch::zeros({T_, p.model.classes}, torch::kBool);
  for (std::int64_t k = 0; k < T_; ++k)
    for (auto c : tasks_[static_cast<std::size_t>(k)].classes) mask[k][c] = true;
  ctx_.class_mask = mask.to(dev_);
  // GrokAlign (λ·R in the loss, centroid alignment in [diagnostics]) differentiates the logits the
  // loss sees: all of them, or in task-incremental runs the columns of each sample's task.
  if (ctx_.task_incremental && (p.train.grokalign > 0 || p.diag.every > 0)) heads_ = head_index(tasks_).to(dev_);
  ga_outputs_ = heads_.defined() ? heads_.size(1) : p.model.classes;
  draw_eval_subsets();
  restore();
  if (p.out.tensorboard && lead_) tb_ = std::make_unique<report::TensorBoardWriter>(run->path());
  if (lead_) open_snapshots();
}

diagnostics::OutputFn ClRun::ga_model(const torch::Tensor& task_ids) {
  auto h = heads_.defined() ? heads_.index_select(0, task_ids) : torch::Tensor();
  if (ctx_.forward)
    return [this, h](const torch::Tensor& x) {
      const auto z = ctx_.forward(x, ctx_.params);
      return h.defined() ? z.gather(1, h) : z;
    };
  return [this, h](const torch::Tensor& x) { return grokalign_outputs(*ctx_.model, ctx_.params, x, h); };
}

// [backbone] freeze / adapter: the trainable parameters become the adapters (+ head, + backbone
// unless frozen) and the network's forward the adapted one (Context::forward).
void ClRun::set_up_backbone(const ClConfig& p) {
  if (!p.backbone.adapted()) return;
  SL_CHECK(supports_adapted_network(strategy_->name()), ConfigError, "strategy.name: \"", strategy_->name(),
           "\" reads the model's own layers and does not support [backbone] freeze / adapter yet (supported: finetune, joint, "
           "ewc, si, er, agem, derpp, ema)");
  SL_CHECK(!group_, ConfigError, "backbone.adapter / backbone.freeze: not supported in data-parallel runs yet");
  models::AdapterOptions ao = p.backbone;
  adapted_ = std::make_unique<models::AdaptedClassifier>(
      *model_, ao, at::detail::createCPUGenerator(derive_seed(p.train.seed, 0, kAdapterSeedPurpose)));
  ctx_.params = adapted_->trainable();
  ctx_.forward = [a = adapted_.get()](const torch::Tensor& x, const std::vector<torch::Tensor>& w) {
    return a->forward_trainable(x, w);
  };
}

// A task's test set: from the cache, or computed now (long streams whose test sets exceed
// test_cache_bytes(); the previous one is released).
const data::ImageSet& ClRun::test_set(std::int64_t k) {
  auto& c = test_cache_[static_cast<std::size_t>(k)];
  if (c.size() > 0) return c;
  auto s = stream_->test(k);
  if (cache_tests_) return c = s;
  test_scratch_ = data::ImageSet{};
  return test_scratch_ = s;
}

// Task i's training set (with label noise) is computed when the task starts and released when the
// next one starts; joint training keeps every seen task's (it trains on all of them by design).
void ClRun::materialise_train(std::int64_t i) {
  const bool keep_seen = strategy_->name() == "joint";
  for (std::int64_t k = 0; k < T_; ++k) {
    auto& t = tasks_[static_cast<std::size_t>(k)];
    const bool want = k == i || (keep_seen && k < i);
    if (!want) {
      t.train = data::ImageSet{};
      t.train_clean_labels = torch::Tensor();
    } else if (t.train.size() == 0) {
      t.train = stream_->train(k);
      add_label_noise(t, p_.stream);
    }
  }
}

// Fixed, seeded continual-evaluation subsets (drawn once; ContinualEvaluation redraws them at
// every step, which puts sampling noise into min-based metrics).
void ClRun::draw_eval_subsets() {
  if (p_.eval.every <= 0) return;
  std::vector<torch::Tensor> sub_x, sub_y, ts;
  for (std::int64_t k = 0; k < T_; ++k) {
    const auto& test = test_set(k);
    auto g = at::detail::createCPUGenerator(derive_seed(p_.train.seed, k, 7));
    const auto idx = torch::randperm(test.size(), g, torch::kInt64).narrow(0, 0, std::min(p_.eval.subset, test.size()));
    sub_x.push_back(test.images.index_select(0, idx));
    sub_y.push_back(test.labels.index_select(0, idx));
    sub_off_.push_back(sub_off_.back() + idx.size(0));
    ts.push_back(torch::full({idx.size(0)}, k, torch::kInt64));
  }
  all_sub_x_ = torch::cat(sub_x).to(dev_);
  all_sub_y_ = torch::cat(sub_y);
  all_sub_t_ = torch::cat(ts).to(dev_);
}

void ClRun::restore() {
  // The checkpoint to continue from: rank 0 (or the one process) reads it from the run directory;
  // in a distributed run it hands it to the other ranks (an empty payload: a fresh run), so they
  // need not share rank 0's file system and may be more or fewer than before (the checkpoint
  // holds nothing that depends on the number of ranks).
  json ck;
  std::map<std::string, io::NdArray> tensors;
  std::string source;
  if (lead_ && run_->resumed()) {
    ck = run_->read_manifest(kCheckpointFormat, kCheckpointVersion).fields;
    const auto file = run_->file(ck.at("file").get<std::string>());
    source = file.string();
    if (!group_) tensors = io::read_npz(file);
    else {
      const auto bytes = read_file_bytes(file);
      tensors = io::parse_npz(bytes.data(), bytes.size(), source);
      const auto head = ck.dump();
      std::string payload = std::to_string(head.size()) + "\n" + head;
      payload.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
      group_->broadcast(payload);
    }
  } else if (group_) {
    const auto payload = group_->broadcast(std::string());
    if (!lead_ && !payload.empty()) {
      const auto nl = payload.find('\n');
      const auto n = static_cast<std::size_t>(std::stoll(payload.substr(0, nl)));
      ck = json::parse(payload.substr(nl + 1, n));
      source = "rank 0's " + ck.at("file").get<std::string>();
      const auto* p = reinterpret_cast<const std::uint8_t*>(payload.data()) + nl + 1 + n;
      tensors = io::parse_npz(p, payload.size() - nl - 1 - n, source);
    }
  }
  if (ck.is_null()) {
    if (lead_)
      for (std::int64_t k = 0; k < T_; ++k) result_.init_accuracy.push_back(eval_accuracy(ctx_, test_set(k), k, dev_));
    return;
  }
  first_task_ = ck.at("completed_tasks").get<std::int64_t>();
  global_iter_ = ck.at("iteration").get<std::int64_t>();
  if (ck.contains("accuracy")) {  // checkpoint version 1: the matrix in the manifest
    result_.accuracy = ck.at("accuracy").get<std::vector<std::vector<double>>>();
  } else {  // version 2: in the npz ("run.accuracy", float64 [completed tasks, T])
    SL_CHECK(tensors.count("run.accuracy"), DataError, source, ": missing run.accuracy");
    const auto a = data::to_tensor(tensors.at("run.accuracy")).to(torch::kFloat64).contiguous();
    SL_CHECK(a.dim() == 2 && a.size(1) == T_, DataError, source, ": run.accuracy has shape ", a.sizes(), ", expected [tasks, ", T_,
             "]");
    for (std::int64_t r = 0; r < a.size(0); ++r)
      result_.accuracy.emplace_back(a[r].data_ptr<double>(), a[r].data_ptr<double>() + T_);
  }
  result_.init_accuracy = ck.at("init_accuracy").get<std::vector<double>>();
  result_.train_seconds = ck.at("train_seconds").get<std::vector<double>>();
  boundaries_ = ck.at("boundaries").get<std::vector<std::int64_t>>();
  if (ck.contains("diagnostics"))
    for (const auto& r : ck.at("diagnostics")) diag_rows_.push_back(r);
  if (ck.contains("label_noise"))
    for (const auto& r : ck.at("label_noise")) memorisation_.push_back(r);
  for (const auto& r : ck.at("tracks")) {
    tracks_.push_back(r);
    tracker_.record(r.at("task").get<std::int64_t>(), r.at("acc").get<std::vector<double>>());
  }
  {
    torch::NoGradGuard no_grad;
    for (std::size_t i = 0; i < ctx_.params.size(); ++i) {
      const auto key = "model." + std::to_string(i);
      SL_CHECK(tensors.count(key), DataError, source, ": missing ", key);
      const auto t = data::to_tensor(tensors.at(key));
      SL_CHECK(t.sizes() == ctx_.params[i].sizes(), DataError, source, ": ", key, " has shape ", t.sizes(), ", expected ",
               ctx_.params[i].sizes());
      ctx_.params[i].copy_(t);
    }
    if (adapted_) {  // the backbone the run started from (frozen tensors included)
      const auto& w = model_->weights();
      for (std::size_t i = 0; i < w.size(); ++i) {
        const auto key = "backbone." + std::to_string(i);
        SL_CHECK(tensors.count(key), DataError, source, ": missing ", key);
        const auto t = data::to_tensor(tensors.at(key));
        SL_CHECK(t.sizes() == w[i].sizes(), DataError, source, ": ", key, " has shape ", t.sizes(), ", expected ", w[i].sizes());
        const_cast<torch::Tensor&>(w[i]).copy_(t);
      }
    }
  }
  std::map<std::string, torch::Tensor> sstate;
  for (const auto& [k, v] : tensors)
    if (k.rfind("strategy.", 0) == 0) sstate[k.substr(9)] = data::to_tensor(v).to(dev_);
  strategy_->load_state(sstate);
  // Strategies that build per-task state in before_task (LwF's teacher) get it again in train().
}

// [output] snapshot_every: flattened parameters in RUN/snapshots/, listed in index.json. A resumed
// run keeps the snapshots up to its checkpoint's iteration (later ones belong to the interrupted
// task, which is trained again and snapshotted at the same iterations).
void ClRun::open_snapshots() {
  std::error_code ec;
  if (run_->resumed()) {
    for (const auto& s : list_cl_snapshots(run_->path())) {
      if (s.iteration <= global_iter_)
        snapshots_.push_back(s);
      else
        std::filesystem::remove(snap_dir_ / s.file, ec);
    }
  } else {
    std::filesystem::remove_all(snap_dir_, ec);
  }
  if (p_.out.snapshot_every > 0) {
    std::filesystem::create_directories(snap_dir_, ec);
    SL_CHECK(!ec, IoError, snap_dir_.string(), ": cannot create (", ec.message(), ")");
  }
}

void ClRun::snapshot(std::int64_t current, bool task_end) {
  std::vector<torch::Tensor> flat;
  for (const auto& q : ctx_.params) flat.push_back(q.detach().cpu().flatten());
  ClSnapshot s{global_iter_, current, task_end, fmt::format("iter_{:08d}.npz", global_iter_)};
  io::write_npz(snap_dir_ / s.file, {{"params", data::to_ndarray(torch::cat(flat))}}, /*compress=*/false);
  // The task-end snapshot replaces a periodic one taken at the same iteration (before after_task).
  if (!snapshots_.empty() && snapshots_.back().iteration == global_iter_) snapshots_.pop_back();
  snapshots_.push_back(s);
  json rows = json::array();
  for (const auto& r : snapshots_)
    rows.push_back({{"iteration", r.iteration}, {"task", r.task}, {"task_end", r.task_end}, {"file", r.file}});
  std::int64_t numel = 0;
  for (const auto& q : ctx_.params) numel += q.numel();
  write_file_atomic(snap_dir_ / "index.json", json{{"format", kSnapshotFormat},
                                                  {"version", kSnapshotVersion},
                                                  {"snapshot_every", p_.out.snapshot_every},
                                                  {"parameters", numel},
                                                  {"snapshots", rows}}
                                                 .dump(1));
}

double ClRun::track(std::int64_t current) {
  torch::NoGradGuard no_grad;
  const auto n = sub_off_[static_cast<std::size_t>(current) + 1];
  const auto pred = ctx_.logits(all_sub_x_.narrow(0, 0, n), all_sub_t_.narrow(0, 0, n)).argmax(1).cpu();
  const auto ok = (pred == all_sub_y_.narrow(0, 0, n)).to(torch::kFloat64);
  std::vector<double> acc;
  for (std::int64_t k = 0; k <= current; ++k)
    acc.push_back(ok.narrow(0, sub_off_[k], sub_off_[k + 1] - sub_off_[k]).mean().item<double>());
  tracker_.record(current, acc);
  json row{{"event", "track"}, {"task", current}, {"iteration", global_iter_}, {"acc", acc},
           {"min_acc", num(tracker_.min_acc())}, {"wc_acc", num(tracker_.wc_acc())},
           {"wf10", tracker_.windowed_forgetting(0)}, {"wf100", tracker_.windowed_forgetting(1)}, {"lca", num(tracker_.lca())}};
  run_->append_metrics(row);
  tracks_.push_back(json{{"task", current}, {"iteration", global_iter_}, {"acc", acc}});
  if (tb_) {
    for (std::size_t k = 0; k < acc.size(); ++k) tb_->scalar("track/acc_task" + std::to_string(k), acc[k], global_iter_);
    if (!std::isnan(tracker_.min_acc())) tb_->scalar("track/min_acc", tracker_.min_acc(), global_iter_);
    tb_->scalar("track/wc_acc", tracker_.wc_acc(), global_iter_);
  }
  double mean = 0;
  for (double a : acc) mean += a;
  return mean / static_cast<double>(acc.size());
}

// [diagnostics]: sharpness (and trace) of the training loss on fixed images of the current task.
void ClRun::diagnose(std::int64_t current) {
  const auto& train = tasks_[static_cast<std::size_t>(current)].train;
  auto g = at::detail::createCPUGenerator(derive_seed(p_.train.seed, current, seed_purpose::probe_samples));
  const auto idx = torch::randperm(train.size(), g, torch::kInt64).narrow(0, 0, std::min(p_.diag.samples, train.size()));
  const auto x = train.images.index_select(0, idx).to(dev_), y = train.labels.index_select(0, idx).to(dev_);
  const auto tid = torch::full({x.size(0)}, current, torch::kInt64).to(dev_);
  std::vector<diagnostics::Batch> batches{{x, y}};
  std::unique_ptr<diagnostics::CurvatureOperator> op;
  if (p_.diag.curvature == "hessian")
    op = std::make_unique<diagnostics::HessianOperator>(
        ctx_.params, [&](const diagnostics::Batch& b) { return cl::cross_entropy(ctx_.logits(b.x, tid), b.y); }, batches);
  else
    op = std::make_unique<diagnostics::GaussNewtonOperator>(
        ctx_.params, [&](const torch::Tensor& xb) { return ctx_.network(xb, current); }, diagnostics::OutputLoss::CrossEntropy,
        batches);
  diagnostics::MonitorOptions mo;
  mo.lanczos_steps = p_.diag.lanczos_steps;
  mo.trace_probes = p_.diag.trace_probes;
  mo.lanczos_seed = derive_seed(p_.train.seed, current, seed_purpose::lanczos);
  mo.trace_seed = derive_seed(p_.train.seed, current, seed_purpose::trace);
  const auto reading = diagnostics::read_curvature(*op, mo);
  json row{{"event", "diagnostics"}, {"task", current}, {"iteration", global_iter_},
           {"two_over_lr", 2.0 / p_.train.lr}, {"curvature", p_.diag.curvature}};
  row.update(diagnostics::reading_fields(reading));
  if (tb_) tb_->scalar("diag/lambda_max", row["lambda_max"].get<double>(), global_iter_);
  // GrokAlign centroid alignment cos(J(x)ᵀ1, x), mean over the same images (no generator used).
  row["centroid_alignment"] = diagnostics::centroid_alignment(ga_model(tid), x).mean_alignment;
  if (tb_) tb_->scalar("diag/centroid_alignment", row["centroid_alignment"].get<double>(), global_iter_);
  if (reading.trace && tb_) tb_->scalar("diag/trace", *reading.trace, global_iter_);
  run_->append_metrics(row);
  row.erase("event");
  diag_rows_.push_back(row);
}

/// One update on `batch`; returns the loss (with the strategy's extra loss and λ·R).
double ClRun::update(const cl::Batch& batch) {
  if (group_) return update_distributed(batch);
  if (plain_) return plain_update(batch);
  const auto trained = strategy_->adapt_batch(ctx_, batch);
  // Gradients set to none rather than zeroed: backward then hands each parameter its gradient
  // instead of adding it to zeros (the same values, two passes fewer over the parameters).
  for (auto& q : ctx_.params) q.mutable_grad().reset();
  const auto logits = ctx_.logits(trained.x, trained.task);
  auto loss = cl::cross_entropy(logits, trained.y);
  const auto extra = strategy_->extra_loss(ctx_, trained, logits);
  if (extra.defined()) loss = loss + extra;
  ga_value_ = 0;
  if (p_.train.grokalign > 0) {
    // λ·R(x): fresh projections from the task's generator, in the outputs' dtype (as GrokAlign).
    const auto v = diagnostics::grokalign_projections(p_.train.grokalign_projections, trained.x.size(0), ga_outputs_, ga_gen_,
                                                      logits.options().requires_grad(false));
    const auto r = diagnostics::jacobian_norm_estimates(ga_model(trained.task), trained.x, v, /*create_graph=*/true).mean();
    ga_value_ = r.item<double>();
    loss = loss + p_.train.grokalign * r;
  }
  const double loss_value = loss.item<double>();
  if (!std::isfinite(loss_value)) return loss_value;  // the loop stops the run (no update)
  loss.backward();
  optimiser_step();
  end_update(batch);
  return loss_value;
}

/// After backward: the strategy's hook, then its own step or the optimiser's.
void ClRun::optimiser_step() {
  strategy_->after_backward(ctx_);
  if (!strategy_->step(ctx_)) {
    if (sgd_)
      sgd_->step();
    else
      opt_->step();
  }
}

/// After the weights moved: the strategy's hook and the iteration counters (every update path).
void ClRun::end_update(const cl::Batch& batch) {
  strategy_->after_step(ctx_, batch);
  ++global_iter_;
  ++ctx_.task_iteration;
  ctx_.iteration = global_iter_;
}

/// update() for a plain strategy (Strategy::plain_updates) with the gradients of
/// models::MlpLossGrad: the same loss, gradients and update, without a graph.
double ClRun::plain_update(const cl::Batch& batch) {
  torch::Tensor masked;
  if (ctx_.task_incremental) masked = ctx_.class_mask.index_select(0, batch.task).logical_not();
  const double loss_value = plain_->forward(batch.x, batch.y, masked);
  if (!std::isfinite(loss_value)) return loss_value;  // the loop stops the run (no update)
  // Each layer's update as soon as backward is done with it (its gradient still in cache); the
  // weight matrices' products add ∂W straight into the momentum buffers where that rounds the same.
  std::vector<torch::Tensor> into(ctx_.params.size());
  for (const auto k : model_->linear_weight_indices()) into[k] = sgd_->scaled_buffer(k);
  plain_->backward(
      [&](std::size_t first, std::size_t count) {
        for (std::size_t k = first; k < first + count; ++k) {
          if (plain_->accumulated(k))
            sgd_->step_accumulated(k);
          else
            sgd_->step(k, plain_->gradients()[k]);
        }
      },
      into);
  end_update(batch);
  return loss_value;
}

/// One data-parallel update on the global `batch` (every rank draws the same batch, and
/// adapt_batch draws the same replay samples everywhere): this rank's contiguous shard
/// (distributed::shard) gives CE_r, the mean cross-entropy over its samples, weighted by shard size
/// / batch size, so the all-reduced sum of the gradients is the gradient of the mean cross-entropy
/// over the whole batch, as one process computes it. The strategy's extra loss splits as it
/// declares (Strategy::extra_loss_split): a Replicated term (penalties, memory terms) is computed by
/// every rank alike and added on rank 0 alone, so it counts once; a SampleMean term (distillation)
/// is weighted like the cross-entropy. The loss values (and, for a strategy that wants them, the
/// shards' logits in a zero-padded [batch, classes] buffer) travel in the same buckets as the
/// gradients; every rank then runs the strategy's gradient hooks on the same summed gradients and
/// takes the same optimiser step, so the weights stay identical everywhere.
double ClRun::update_distributed(const cl::Batch& batch) {
  const auto trained = strategy_->adapt_batch(ctx_, batch);
  for (auto& q : ctx_.params) q.mutable_grad().reset();
  const auto n = trained.size();
  const auto sh = distributed::shard(n, group_->rank(), group_->size());
  const double weight = static_cast<double>(sh.count) / static_cast<double>(n);
  auto loss = torch::zeros({}, ctx_.params.front().options().requires_grad(false));
  torch::Tensor logits;
  const cl::Batch part{trained.x.narrow(0, sh.begin, sh.count), trained.y.narrow(0, sh.begin, sh.count),
                       trained.task.narrow(0, sh.begin, sh.count)};
  if (sh.count > 0) {
    logits = ctx_.logits(part.x, part.task);
    loss = cl::cross_entropy(logits, part.y) * weight;
  }
  if (strategy_->extra_loss_split() == cl::Strategy::LossSplit::Replicated) {
    const auto extra = strategy_->extra_loss(ctx_, part, logits);
    if (extra.defined() && group_->rank() == 0) loss = loss + extra;
  } else if (sh.count > 0) {
    const auto extra = strategy_->extra_loss(ctx_, part, logits);
    if (extra.defined()) loss = loss + extra * weight;
  }
  // GrokAlign: λ · mean over the batch of R(x_i); every rank draws the whole batch's projections
  // (the same generator everywhere) and evaluates its shard's, so Σ_r (its sum) / B is the mean.
  auto ga_sum = torch::zeros({}, loss.options());
  if (p_.train.grokalign > 0) {
    const auto v = diagnostics::grokalign_projections(p_.train.grokalign_projections, n, ga_outputs_, ga_gen_,
                                                      ctx_.params.front().options().requires_grad(false));
    if (sh.count > 0) {
      ga_sum = diagnostics::jacobian_norm_estimates(ga_model(part.task), part.x, v.narrow(1, sh.begin, sh.count),
                                                    /*create_graph=*/true)
                   .sum() /
               static_cast<double>(n);
      loss = loss + p_.train.grokalign * ga_sum;
    }
  }
  // The gradients' sums start bucket by bucket while backward runs (distributed::GradientReducer),
  // unless STABLELEARN_DIST_OVERLAP=0 asks for one bucketed all-reduce after backward.
  if (!reducer_ && dist_overlap()) reducer_ = std::make_unique<distributed::GradientReducer>(*group_, ctx_.params);
  if (reducer_) reducer_->prepare();
  // A rank whose part is not finite still joins the all-reduce (no hang); every rank then sees
  // the same non-finite total and the loop stops all of them.
  if (loss.requires_grad() && std::isfinite(loss.item<double>())) loss.backward();
  auto total = torch::stack({loss.detach(), ga_sum.detach()}).to(ctx_.params.front().scalar_type());
  std::vector<torch::Tensor> extra{total};
  ctx_.batch_logits = torch::Tensor();
  if (strategy_->wants_batch_logits()) {
    const auto classes = ctx_.model->options().classes;
    auto all = torch::zeros({n, classes}, ctx_.params.front().options().requires_grad(false));
    if (sh.count > 0) all.narrow(0, sh.begin, sh.count).copy_(logits.detach());
    extra.push_back(all);
    ctx_.batch_logits = all;
  }
  if (reducer_) {
    reducer_->finish(extra);
  } else {
    std::vector<torch::Tensor> reduced;
    for (const auto& q : ctx_.params) {
      auto& g = const_cast<torch::Tensor&>(q).mutable_grad();
      if (!g.defined()) g = torch::zeros_like(q);
      reduced.push_back(g);
    }
    reduced.insert(reduced.end(), extra.begin(), extra.end());
    group_->all_reduce(reduced, distributed::Reduce::Sum);
  }
  const double loss_value = total[0].item<double>();
  ga_value_ = total[1].item<double>();
  if (!std::isfinite(loss_value)) return loss_value;
  optimiser_step();
  end_update(batch);
  ctx_.batch_logits = torch::Tensor();
  return loss_value;
}

/// Data-parallel runs: every rank must hold bit-identical weights after each task (the same
/// all-reduced gradients, the same steps). A hash of the weights' bytes is compared through the
/// store, so a strategy that breaks the data-parallel contract (draws outside ctx.gen, a
/// batch-dependent term declared Replicated) fails with an error instead of training on quietly.
void ClRun::check_replicas(std::int64_t i) {
  std::size_t h = 0;
  for (const auto& q : ctx_.params) {
    const auto c = q.detach().to(torch::kCPU).contiguous();
    const std::string_view bytes(static_cast<const char*>(c.data_ptr()), c.numel() * c.element_size());
    h = h * 1000003u ^ std::hash<std::string_view>{}(bytes);
  }
  group_->check_same(fmt::format("the weights after task {} (hash of their bytes; the ranks' replicas diverged)", i),
                     fmt::format("{:016x}", h));
}

/// Task i's before_task, training set, optimiser and generators (batch order, the strategy's,
/// GrokAlign's); the measurements before the run's first update. Returns the task's updates.
std::int64_t ClRun::begin_task(std::int64_t i) {
  ctx_.task = i;
  ctx_.task_iteration = 0;
  ctx_.gen = at::detail::createCPUGenerator(derive_seed(p_.train.seed, i, seed_purpose::method));
  order_gen_ = at::detail::createCPUGenerator(derive_seed(p_.train.seed, i, seed_purpose::batches));
  ga_gen_ = at::detail::createCPUGenerator(cl_grokalign_seed(p_.train.seed, i));
  materialise_train(i);
  strategy_->before_task(ctx_);
  set_ = strategy_->train_set(ctx_);
  const auto n = set_.size();
  SL_CHECK(n > 0, DataError, "task ", i, ": no training samples");
  opt_.reset();
  sgd_.reset();
  if (p_.train.optimizer == "adam")
    opt_ = std::make_unique<torch::optim::Adam>(ctx_.params, torch::optim::AdamOptions(p_.train.lr));
  else
    sgd_ = std::make_unique<optim::SgdMomentum>(ctx_.params, p_.train.lr, p_.train.momentum);
  // Distributed runs take the autograd path (their gradients are all-reduced before the step).
  const bool plain = !group_ && !adapted_ && p_.train.engine == "auto" && sgd_ && p_.train.grokalign == 0 && dev_.is_cpu() &&
                     strategy_->plain_updates() && models::MlpLossGrad::supports(*model_);
  if (!plain)
    plain_.reset();
  else if (!plain_)
    plain_ = std::make_unique<models::MlpLossGrad>(*model_);
  per_epoch_ = (n + p_.train.batch_size - 1) / p_.train.batch_size;
  iterations_ = per_epoch_ * p_.train.epochs;
  if (!lead_) return iterations_;  // ranks > 0 train only
  if (p_.eval.every > 0 && global_iter_ == 0 && tracks_.empty()) last_mean_acc_ = track(i);  // before the first update
  if (p_.diag.every > 0 && global_iter_ == 0 && diag_rows_.empty()) diagnose(i);
  if (p_.out.snapshot_every > 0 && global_iter_ == 0 && snapshots_.empty()) snapshot(i, false);
  return iterations_;
}

/// Update s of task i: batch s mod per-epoch of the epoch's order (one permutation per epoch).
double ClRun::step(std::int64_t, std::int64_t s) {
  const auto n = set_.size();
  const auto b = (s % per_epoch_) * p_.train.batch_size;
  if (b == 0) order_ = torch::randperm(n, order_gen_, torch::kInt64);
  const auto idx = order_.narrow(0, b, std::min(p_.train.batch_size, n - b));
  if (plain_) {  // a plain strategy keeps no tensor of the batch: gather into the same storage
    auto shape = set_.x.sizes().vec();
    shape[0] = idx.size(0);
    if (!batch_x_.defined() || batch_x_.sizes() != shape) {
      batch_x_ = torch::empty(shape, set_.x.options());
      batch_y_ = torch::empty({idx.size(0)}, set_.y.options());
      batch_t_ = torch::empty({idx.size(0)}, set_.task.options());
    }
    torch::index_select_out(batch_x_, set_.x, 0, idx);
    torch::index_select_out(batch_y_, set_.y, 0, idx);
    torch::index_select_out(batch_t_, set_.task, 0, idx);
    return update({batch_x_, batch_y_, batch_t_});
  }
  const cl::Batch batch{set_.x.index_select(0, idx).to(dev_), set_.y.index_select(0, idx).to(dev_),
                        set_.task.index_select(0, idx).to(dev_)};
  return update(batch);
}

/// The training row, continual tracking, [diagnostics], snapshots and progress after an update.
void ClRun::after_step(std::int64_t i, std::int64_t, double loss) {
  if (!lead_) return;
  if (global_iter_ % p_.out.log_every == 0) {
    json row{{"event", "train"}, {"task", i}, {"iteration", global_iter_}, {"loss", loss}};
    if (p_.train.grokalign > 0) row["grokalign"] = ga_value_;
    run_->append_metrics(row);
    if (tb_) tb_->scalar("train/loss", loss, global_iter_);
    if (tb_ && p_.train.grokalign > 0) tb_->scalar("train/grokalign", ga_value_, global_iter_);
  }
  if (p_.eval.every > 0 && global_iter_ % p_.eval.every == 0) last_mean_acc_ = track(i);
  if (p_.diag.every > 0 && global_iter_ % p_.diag.every == 0) diagnose(i);
  if (p_.out.snapshot_every > 0 && global_iter_ % p_.out.snapshot_every == 0) snapshot(i, false);
  if (progress_) progress_({i, T_, ctx_.task_iteration, iterations_, loss, last_mean_acc_, elapsed()});
}

void ClRun::end_task(std::int64_t i) {
  strategy_->after_task(ctx_);
  if (group_) check_replicas(i);
  if (p_.out.snapshot_every > 0 && lead_) snapshot(i, true);
  opt_.reset();
  sgd_.reset();
}

/// Task-end evaluation on every task's full test set (future tasks too, for FWT).
void ClRun::evaluate(std::int64_t i, double seconds) {
  if (!lead_) return;
  result_.train_seconds.push_back(seconds);
  boundaries_.push_back(global_iter_);
  std::vector<double> row;
  for (std::int64_t k = 0; k < T_; ++k) row.push_back(eval_accuracy(ctx_, test_set(k), k, dev_));
  result_.accuracy.push_back(row);
  double seen = 0;
  for (std::int64_t k = 0; k <= i; ++k) seen += row[k];
  last_mean_acc_ = seen / static_cast<double>(i + 1);
  json end{{"event", "task_end"}, {"task", i}, {"iteration", global_iter_}, {"acc", row},
           {"mean_seen", last_mean_acc_}, {"seconds", seconds}};
  const auto& task = tasks_[static_cast<std::size_t>(i)];
  if (task.train_clean_labels.defined()) {
    // Label noise: how many of the task's corrupted training samples the model fits (docs/robust.md).
    // Only the corrupted samples are predicted (the others' predictions are not used): a forward
    // pass over rate × the task's training set.
    torch::NoGradGuard no_grad;
    robust::NoisyLabels nl;
    nl.labels = task.train.labels;
    nl.clean = task.train_clean_labels;
    nl.corrupted = nl.labels.ne(nl.clean);
    const auto idx = nl.corrupted.nonzero().squeeze(1);
    auto preds = torch::full({task.train.size()}, -1, torch::kInt64);
    for (std::int64_t a = 0; a < idx.size(0); a += 2000) {
      const auto part = idx.narrow(0, a, std::min<std::int64_t>(2000, idx.size(0) - a));
      const auto x = task.train.images.index_select(0, part).to(dev_);
      preds.index_copy_(0, part, ctx_.logits(x, torch::full({part.size(0)}, i, torch::kInt64).to(dev_)).argmax(1).cpu());
    }
    const auto m = robust::memorisation(preds, nl);
    memorisation_.push_back({{"task", i}, {"corrupted", m.corrupted}, {"memorised", m.memorised}, {"corrected", m.corrected}});
    end["label_noise"] = memorisation_.back();
  }
  run_->append_metrics(end);
  if (tb_) {
    for (std::int64_t k = 0; k < T_; ++k) tb_->scalar("eval/acc_task" + std::to_string(k), row[k], global_iter_);
    tb_->scalar("eval/mean_seen", last_mean_acc_, global_iter_);
    tb_->flush();
  }
  if (progress_) progress_({i, T_, iterations_, iterations_, 0.0, last_mean_acc_, elapsed()});
}

/// Tensors first, then the JSON that points at them. Every task's checkpoint is kept
/// (representation drift across tasks: `diagnose cka`).
void ClRun::write_checkpoint(std::int64_t i) {
  std::map<std::string, io::NdArray> tensors;
  for (std::size_t k = 0; k < ctx_.params.size(); ++k)
    tensors["model." + std::to_string(k)] = data::to_ndarray(ctx_.params[k].detach().cpu());
  if (adapted_)
    for (std::size_t k = 0; k < model_->weights().size(); ++k)
      tensors["backbone." + std::to_string(k)] = data::to_ndarray(model_->weights()[k].detach().cpu());
  for (const auto& [k, v] : strategy_->state()) tensors["strategy." + k] = data::to_ndarray(v.cpu());
  // The accuracy matrix travels in the npz (binary, a copy per task; as JSON in the manifest its
  // formatting grew with tasks done × tasks).
  auto acc = torch::empty({static_cast<std::int64_t>(result_.accuracy.size()), T_}, torch::kFloat64);
  auto* a = acc.data_ptr<double>();
  for (const auto& row : result_.accuracy) a = std::copy(row.begin(), row.end(), a);
  tensors["run.accuracy"] = data::to_ndarray(acc);
  const std::string file = "checkpoint_task" + std::to_string(i) + ".npz";
  io::write_npz(run_->file(file), tensors, /*compress=*/false);
  json jt = json::array();
  for (const auto& r : tracks_) jt.push_back(r);
  run_->write_manifest({kCheckpointFormat, kCheckpointVersion,
                       json{{"completed_tasks", i + 1},
                            {"iteration", global_iter_},
                            {"file", file},
                            {"init_accuracy", result_.init_accuracy},
                            {"train_seconds", result_.train_seconds},
                            {"boundaries", boundaries_},
                            {"tracks", jt},
                            {"diagnostics", diag_rows_},
                            {"label_noise", memorisation_}}});
}

/// accuracy_matrix.csv, summary.json and the figures, rewritten after every task.
void ClRun::write_reports(std::int64_t i) {
  std::string csv = "after_task";
  for (std::int64_t k = 0; k < T_; ++k) csv += ",task_" + std::to_string(k);
  csv += "\n";
  for (std::size_t r = 0; r < result_.accuracy.size(); ++r) {
    csv += std::to_string(r);
    for (double a : result_.accuracy[r]) csv += fmt::format(",{:.6f}", a);
    csv += "\n";
  }
  run_->write_text("accuracy_matrix.csv", csv);
  std::vector<double> sizes;
  for (std::int64_t k = 0; k < T_; ++k) sizes.push_back(static_cast<double>(stream_->test_size(k)));
  const auto m = cl::matrix_metrics(result_.accuracy, result_.init_accuracy, sizes, result_.accuracy.size());
  std::int64_t nparams = 0;
  for (const auto& q : ctx_.params) nparams += q.numel();
  json summary{{"completed_tasks", i + 1},
               {"tasks", T_},
               {"stream", data::stream_kind_name(p_.stream.stream.kind)},
               {"strategy", strategy_->name()},
               {"model", p_.model.kind},
               {"params", nparams},
               {"seed", p_.train.seed},
               {"accuracy_matrix", result_.accuracy},
               {"init_accuracy", result_.init_accuracy},
               {"metrics",
                {{"ACC", m.acc}, {"ACC_pooled", m.acc_pooled}, {"BWT", m.bwt}, {"FWT", m.fwt},
                 {"forgetting_just_learned", m.forgetting_just_learned}, {"forgetting_max", m.forgetting_max}}},
               {"train_seconds", result_.train_seconds},
               {"iterations", global_iter_}};
  if (p_.eval.every > 0)
    summary["continual"] = {{"every", p_.eval.every},   {"subset", p_.eval.subset},
                            {"min_acc", num(tracker_.min_acc())}, {"wc_acc", num(tracker_.wc_acc())},
                            {"wf10", tracker_.windowed_forgetting(0)}, {"wf100", tracker_.windowed_forgetting(1)},
                            {"lca", num(tracker_.lca())}, {"tracking_steps", tracker_.steps()}};
  if (!p_.backbone.file.empty() || adapted_) {
    std::int64_t total = 0;
    for (const auto& q : model_->weights()) total += q.numel();
    if (adapted_)
      for (const auto& q : adapted_->adapter_weights()) total += q.numel();
    summary["backbone"] = {{"file", p_.backbone.file},    {"freeze", p_.backbone.freeze},
                           {"adapter", p_.backbone.kind}, {"rank", p_.backbone.rank},
                           {"trainable_params", nparams}, {"total_params", total}};
  }
  if (!memorisation_.empty())
    summary["label_noise"] = {{"kind", p_.stream.label_noise}, {"rate", p_.stream.label_noise_rate}, {"per_task", memorisation_}};
  if (p_.diag.every > 0 && !diag_rows_.empty())
    summary["diagnostics"] = diagnostics::monitor_summary(diag_rows_, p_.diag.every, p_.diag.curvature, 2.0 / p_.train.lr);
  run_->write_summary(summary);  // + the runtime block
  if (p_.out.figures && p_.diag.every > 0 && diag_rows_.size() > 1) write_sharpness_svg();
  if (p_.out.figures && !tracks_.empty())
    write_curves_svg(run_->file("accuracy_curves.svg"), tracks_, T_, boundaries_,
                     fmt::format("{} on {}: per-task accuracy during training", strategy_->name(),
                                 data::stream_kind_name(p_.stream.stream.kind)));
}

void ClRun::write_sharpness_svg() {
  report::SharpnessFigure f;
  for (const auto& r : diag_rows_) f.points.emplace_back(r.at("iteration").get<double>(), r.at("lambda_max").get<double>());
  for (auto b : boundaries_) f.boundaries.push_back(static_cast<double>(b));
  f.x_end = static_cast<double>(global_iter_);
  f.two_over_lr = 2.0 / p_.train.lr;
  f.title = fmt::format("sharpness: top {} eigenvalue of the training loss on task samples", p_.diag.curvature);
  report::save_sharpness_figure(run_->file("sharpness.svg").string(), f);
}

ClResult ClRun::train(std::int64_t stop_after) {
  last_task_ = stop_after > 0 ? std::min(T_, first_task_ + stop_after) : T_;
  run_task_loop(*this, first_task_, last_task_);
  return result_;
}

}  // namespace

ClResult run_cl(const ClConfig& p, const cl::StrategySpec& strategy, const RunDir* run,
                const std::function<void(const ClProgress&)>& progress, std::int64_t stop_after,
                distributed::ProcessGroup* group) {
  return ClRun(p, strategy, run, progress, group).train(stop_after);
}

}  // namespace detail
}  // namespace stablelearn::experiments
