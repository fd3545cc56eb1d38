#include "stablelearn/experiments/curvature_problem.h"

#include <algorithm>
#include <filesystem>

#include <torch/nn/functional/loss.h>

#include "stablelearn/core/config.h"
#include "stablelearn/core/env.h"
#include "stablelearn/core/error.h"
#include "stablelearn/diagnostics/toy_problem.h"
#include "stablelearn/experiments/cl_experiment.h"
#include "stablelearn/experiments/toy_experiments.h"

namespace stablelearn::experiments {

namespace dg = diagnostics;
namespace fs = std::filesystem;
namespace F = torch::nn::functional;

std::unique_ptr<dg::CurvatureOperator> CurvatureProblem::make_operator(const std::string& op) const {
  if (op == "hessian") return std::make_unique<dg::HessianOperator>(params, loss, batches);
  if (op == "ggn") return std::make_unique<dg::GaussNewtonOperator>(params, model, output_loss, batches);
  SL_CHECK(op == "fisher", UsageError, "unknown curvature operator '", op, "' (hessian, ggn, fisher)");
  return std::make_unique<dg::EmpiricalFisherOperator>(params, loss, batches);
}

namespace {

constexpr std::int64_t kToySamples = 128, kToyBatch = 32, kRunSamples = 1000;
constexpr double kToyLr = 0.2;

CurvatureProblem make_toy(const CurvatureProblemOptions& a) {
  CurvatureProblem p;
  p.samples = a.samples > 0 ? a.samples : kToySamples;
  p.batch_size = a.batch_size > 0 ? a.batch_size : std::min(kToyBatch, p.samples);
  p.learning_rate = a.learning_rate > 0 ? a.learning_rate : kToyLr;
  SL_CHECK(p.batch_size <= p.samples, UsageError, "--batch-size ", p.batch_size, " exceeds --samples ", p.samples);
  auto problem = std::make_shared<dg::ToyProblem>(dg::make_toy_problem(dg::ToyProblemOptions()
                                                                            .inputs(a.inputs)
                                                                            .hidden(a.hidden)
                                                                            .samples(p.samples)
                                                                            .batch_size(p.batch_size)
                                                                            .seed(a.seed)
                                                                            .dtype(a.dtype)));
  const auto losses = problem->train_gd(a.train_steps, p.learning_rate);
  p.params = problem->params;
  p.batches = problem->batches;
  p.loss = problem->loss;
  p.model = problem->model;
  p.output_loss = dg::OutputLoss::MeanSquaredError;
  p.linear_weights = {{"layer_0.weight", problem->params[0]}, {"layer_1.weight", problem->params[2]}};
  p.owner = problem;
  p.info = {{"problem", "toy tanh MLP regression"},
            {"parameters", dg::total_numel(p.params)},
            {"samples", p.samples},
            {"batch_size", p.batch_size},
            {"train_steps", a.train_steps},
            {"learning_rate", p.learning_rate},
            {"seed", a.seed},
            {"initial_loss", losses.front()},
            {"loss", losses.back()}};
  return p;
}

CurvatureProblem make_run(const CurvatureProblemOptions& a) {
  SL_CHECK(fs::is_directory(a.run), IoError, a.run, ": no such run directory");
  auto view = std::make_shared<experiments::ClRunView>(experiments::load_cl_run(a.run));
  const auto tasks = static_cast<std::int64_t>(view->tasks.size());
  SL_CHECK(a.task >= 0 && a.task < tasks, UsageError, "--task ", a.task, " is out of range: the run has ", tasks,
           " tasks (0..", tasks - 1, ")");
  const auto config = Config::from_file(fs::path(a.run) / "config.toml");
  auto train = config.section("train");
  CurvatureProblem p;
  const auto& task = view->tasks[static_cast<std::size_t>(a.task)];
  p.samples = std::min(a.samples > 0 ? a.samples : kRunSamples, task.train.size());
  SL_CHECK(p.samples >= 2, DataError, "task ", a.task, " has ", task.train.size(), " training images; need at least 2");
  p.batch_size = std::min(a.batch_size > 0 ? a.batch_size : train.get("batch_size", std::int64_t{128}), p.samples);
  p.learning_rate = a.learning_rate > 0 ? a.learning_rate : train.get("lr", 0.01);

  const auto after = a.after >= 0 ? a.after : view->completed_tasks - 1;
  SL_CHECK(after < view->completed_tasks, UsageError, "--after ", a.after, " is out of range: the run has completed ",
           view->completed_tasks, " task(s) (0..", view->completed_tasks - 1, ")");
  if (a.after >= 0) {
    const auto w = view->task_weights(a.after);
    torch::NoGradGuard ng;
    auto current = view->model->weights();
    for (std::size_t i = 0; i < current.size(); ++i) current[i].copy_(w[i]);
  }
  // Curvature in float64 by default (the run trained in float32; the weights are converted, not
  // retrained), or in float32.
  view->model->eval();
  view->model->to(a.dtype);
  auto x = task.train.images.slice(0, 0, p.samples).to(a.dtype);
  auto y = task.train.labels.slice(0, 0, p.samples).to(torch::kInt64);
  // Task-incremental runs: the head of task J is the columns of its classes (the masked logits of
  // ClRunView::logits without the −∞, whose double backward would give NaN); labels become indices
  // into those columns.
  torch::Tensor columns;
  if (view->task_incremental) {
    columns = torch::tensor(task.classes, torch::kInt64);
    auto lut = torch::full({view->model->options().classes}, -1, torch::kInt64);
    for (std::size_t i = 0; i < task.classes.size(); ++i) lut[task.classes[i]] = static_cast<std::int64_t>(i);
    y = lut.index_select(0, y);
  }
  auto model = view->model;
  p.model = [model, columns](const torch::Tensor& in) {
    auto z = model->forward(in, model->weights());
    return columns.defined() ? z.index_select(1, columns) : z;
  };
  auto f = p.model;
  p.loss = [f](const dg::Batch& b) { return F::cross_entropy(f(b.x), b.y); };
  p.output_loss = dg::OutputLoss::CrossEntropy;
  p.params = model->weights();
  for (auto& w : p.params) w.requires_grad_(true);
  p.batches = make_batches(x, y, p.batch_size);
  const auto& entries = model->layout().entries();
  for (auto i : model->linear_weight_indices()) {
    p.linear_weights.push_back({entries[i].name, p.params[i]});
    p.linear_indices.push_back(static_cast<std::size_t>(i));
  }
  p.task_weights = [view](std::int64_t i) { return view->task_weights(i); };
  p.owner = view;

  double loss = 0, accuracy = 0;
  {
    torch::NoGradGuard ng;
    const auto z = f(x);
    loss = F::cross_entropy(z, y).item<double>();
    accuracy = z.argmax(1).eq(y).to(torch::kFloat64).mean().item<double>();
  }
  p.info = {{"problem", "cl run"},
            {"run", a.run},
            {"model", model->options().kind},
            {"task", a.task},
            {"tasks", tasks},
            {"completed_tasks", view->completed_tasks},
            {"after_task", after},
            {"task_classes", task.classes},
            {"task_incremental", view->task_incremental},
            {"parameters", dg::total_numel(p.params)},
            {"samples", p.samples},
            {"batch_size", p.batch_size},
            {"learning_rate", p.learning_rate},
            {"seed", a.seed},
            {"loss", loss},
            {"accuracy", accuracy}};
  return p;
}

}  // namespace

CurvatureProblem make_curvature_problem(const CurvatureProblemOptions& options) {
  SL_CHECK(options.after < 0 || !options.run.empty(), UsageError, "--after needs RUN (a `cl run` directory)");
  return options.run.empty() ? make_toy(options) : make_run(options);
}

RunTaskProblem make_run_task_problem(const std::string& run, std::int64_t task, std::int64_t samples, std::int64_t test_samples,
                                     std::optional<std::uint64_t> seed) {
  SL_CHECK(fs::is_directory(run), IoError, run, ": no such run directory");
  const auto view = experiments::load_cl_run(run);
  const auto tasks = static_cast<std::int64_t>(view.tasks.size());
  SL_CHECK(task >= 0 && task < tasks, UsageError, "--task ", task, " is out of range: the run has ", tasks, " tasks (0..",
           tasks - 1, ")");
  const auto config = Config::from_file(fs::path(run) / "config.toml");
  auto train = config.section("train");
  RunTaskProblem out;
  out.seed = seed ? *seed : static_cast<std::uint64_t>(train.get("seed", std::int64_t{0}));
  const auto& t = view.tasks[static_cast<std::size_t>(task)];
  SL_CHECK(t.train.size() >= 2, DataError, run, ": task ", task, " has ", t.train.size(), " training images; need at least 2");
  SL_CHECK(t.test.size() >= 1, DataError, run, ": task ", task, " has no test images");
  auto& p = out.problem;
  p.loss_name = "ce";
  p.x = t.train.images.slice(0, 0, std::min(samples, t.train.size())).to(torch::kFloat32);
  p.y = t.train.labels.slice(0, 0, p.x.size(0)).to(torch::kInt64);
  p.x_test = t.test.images.slice(0, 0, std::min(test_samples, t.test.size())).to(torch::kFloat32);
  p.y_test = t.test.labels.slice(0, 0, p.x_test.size(0)).to(torch::kInt64);
  const auto options = view.model->options();
  if (view.task_incremental) {
    p.columns = torch::tensor(t.classes, torch::kInt64);
    auto lut = torch::full({options.classes}, -1, torch::kInt64);
    for (std::size_t i = 0; i < t.classes.size(); ++i) lut[t.classes[i]] = static_cast<std::int64_t>(i);
    p.y = lut.index_select(0, p.y);
    p.y_test = lut.index_select(0, p.y_test);
  }
  seed_everything(out.seed);
  p.model = models::Classifier(options);
  p.model->to(torch::kFloat32);
  p.params = p.model->weights();
  out.info = {{"run", run},
              {"task", task},
              {"tasks", tasks},
              {"task_classes", t.classes},
              {"task_incremental", view.task_incremental},
              {"model", options.kind}};
  if (options.kind == "cnn") {
    out.info["channels"] = options.channels;
    out.info["fc"] = options.fc;
  } else {
    out.info["hidden"] = options.hidden;
  }
  return out;
}

}  // namespace stablelearn::experiments
