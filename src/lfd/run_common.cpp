#include "run_common.h"

#include <algorithm>
#include <cmath>
#include <memory>

#include "stablelearn/core/config.h"
#include "stablelearn/core/error.h"
#include "stablelearn/core/run.h"
#include "stablelearn/data/tensor_convert.h"
#include "stablelearn/diagnostics/curvature.h"
#include "stablelearn/diagnostics/monitor.h"
#include "stablelearn/diagnostics/eigen.h"
#include "stablelearn/diagnostics/trace.h"
#include "stablelearn/io/npz.h"
#include "stablelearn/lfd/cl_scores.h"
#include "stablelearn/lfd/hnet_training.h"
#include "stablelearn/models/node_mlp.h"
#include "stablelearn/models/odeint.h"
#include "stablelearn/models/snode.h"
#include "stablelearn/models/snode_discrete.h"
#include "stablelearn/models/snode_rollout.h"

namespace stablelearn::lfd::detail {

using nlohmann::json;
namespace F = models::functional;

models::SNodeOptions snode_options(const LfdConfig& c, std::int64_t dim, std::int64_t condition_dim) {
  const auto o = models::SNodeOptions(dim)
                     .hidden(c.h)
                     .fhat_layers(c.fhat_layers)
                     .icnn_hidden(c.hp)
                     .alpha(c.alpha)
                     .eps(c.eps)
                     .rehu(c.rehu)
                     .explicit_time(c.explicit_time)
                     .center_fhat(c.center_fhat)
                     .condition_dim(condition_dim);
  o.validate();
  return o;
}

Target make_target(const LfdConfig& c, std::int64_t dim, std::int64_t condition_dim) {
  Target t;
  t.condition_dim = condition_dim;
  if (c.target == "snode") {
    const auto o = snode_options(c, dim, condition_dim);
    t.layout = models::snode_layout(o);
    t.fan_in = models::snode_fan_in(o);
    t.field = [o](const std::vector<torch::Tensor>& w, const torch::Tensor& cond) {
      return VectorField(
          [o, w, cond](const torch::Tensor& time, const torch::Tensor& x) { return F::snode_rhs(time, x, w, o, cond); });
    };
    t.snode = o;
    if (c.discrete_step) {
      F::check_discrete_options(o, c.discrete_kappa, "model.discrete_step");
      t.rollout = [o, kappa = c.discrete_kappa](const std::vector<torch::Tensor>& w, const torch::Tensor& cond) {
        return GridRollout{[o, kappa, w, cond](const torch::Tensor& x0, const torch::Tensor& time,
                                               F::SNodeDiscreteStats* stats) {
          return F::snode_discrete_rollout(x0, time, w, o, kappa, cond, stats);
        }};
      };
    }
    t.lyapunov = [o](const std::vector<torch::Tensor>& w) {
      return LyapunovFunction([o, w](const torch::Tensor& time, const torch::Tensor& x) {
        return F::snode_lyapunov(o.explicit_time() ? F::append_time(x, time) : x, w, o);
      });
    };
  } else {
    const auto o = models::NodeMlpOptions(dim).hidden(c.tnet_hidden).explicit_time(c.explicit_time).condition_dim(condition_dim);
    o.validate();
    t.layout = models::node_mlp_layout(o);
    t.fan_in = models::node_mlp_fan_in(o);
    t.field = [o](const std::vector<torch::Tensor>& w, const torch::Tensor& cond) {
      return VectorField(
          [o, w, cond](const torch::Tensor& time, const torch::Tensor& x) { return F::node_rhs(time, x, w, o, cond); });
    };
  }
  if (!t.rollout) {
    // The training solver: Euler on the data grid for sNODE, node_solver for NODE.
    const auto solver = c.target == "snode" ? models::OdeintOptions{}
                                            : models::OdeintOptions{}.method(models::parse_ode_method(c.node_solver));
    t.rollout = [field = t.field, solver](const std::vector<torch::Tensor>& w, const torch::Tensor& cond) {
      return ode_rollout(field(w, cond), solver);
    };
  }
  t.train = t.rollout;
  if (c.discrete_step && !c.trains_through_map())  // Φ is executed, Euler steps are trained
    t.train = [field = t.field](const std::vector<torch::Tensor>& w, const torch::Tensor& cond) {
      return ode_rollout(field(w, cond));
    };
  return t;
}

torch::Tensor train_rollout(const LfdConfig& c, const Target& target, const torch::Tensor& flat, const torch::Tensor& cond,
                            const torch::Tensor& x0, const torch::Tensor& t) {
  if (fused_rollout_applies(c, target, flat, x0, cond)) return F::snode_euler_rollout(flat, x0, t, *target.snode, cond);
  return target.train(target.layout.split(flat), cond)(x0, t);
}

bool fused_rollout_applies(const LfdConfig& c, const Target& target, const torch::Tensor& weights_like,
                           const torch::Tensor& x0, const torch::Tensor& cond) {
  return c.fused_rollout && !c.trains_through_map() && target.snode &&
         F::snode_euler_rollout_supported(weights_like, x0, *target.snode, cond);
}

double data_period(const torch::Tensor& t) {
  SL_CHECK(t.dim() == 1 && t.size(0) >= 2, ShapeError, "a task's time grid must be 1-D with >= 2 points, got ", t.sizes());
  return (t[-1].item<double>() - t[0].item<double>()) / static_cast<double>(t.size(0) - 1);
}

std::pair<torch::Tensor, torch::Tensor> demo_box(const torch::Tensor& demos) {
  const auto flat = demos.reshape({-1, demos.size(-1)});
  const auto lo = std::get<0>(flat.min(0)), hi = std::get<0>(flat.max(0));
  return {(lo + hi) / 2, (hi - lo) * 0.75};
}

torch::Tensor certificate_states(const torch::Tensor& demos, std::int64_t n, torch::Generator& gen) {
  torch::NoGradGuard no_grad;
  const auto flat = demos.reshape({-1, demos.size(-1)});
  const auto [centre, half] = demo_box(demos);
  const auto u = torch::rand({n, flat.size(1)}, gen, flat.options()) * 2 - 1;
  auto x = centre + u * half;
  // Every second state towards the goal (the origin of model coordinates) by 10^U(-2, 0).
  const auto scale = torch::pow(10.0, torch::rand({n, 1}, gen, flat.options()) * 2 - 2);
  const auto odd = (torch::arange(n, flat.options().dtype(torch::kInt64)).remainder(2) == 1).unsqueeze(1);
  return torch::where(odd, x * scale, x);
}

EvalCell evaluate_task(const LfdConfig& c, const data::LfdDatasetSpec& spec, const data::PreparedTask& pj,
                       const GridRollout& rollout) {
  torch::NoGradGuard no_grad;
  const auto x0 = pj.x.select(1, 0).to(torch::kFloat32);
  const auto t = pj.t.to(torch::kFloat32);
  const auto traj = c.target == "snode" ? windowed_rollout(rollout, x0, t, c.tsub) : rollout(x0, t);
  const auto pred = data::restore_prediction(pj, traj.to(torch::kFloat64));
  const auto T = pred.size(1);
  const auto P = spec.position_dim;
  const auto ref_pos = pj.raw.narrow(1, 0, T).narrow(2, 0, P).contiguous();
  const auto pred_pos = pred.narrow(2, 0, P).contiguous();
  const TrajectoryBatch rb{ref_pos.data_ptr<double>(), ref_pos.size(0), T, P};
  const TrajectoryBatch pb{pred_pos.data_ptr<double>(), pred_pos.size(0), T, P};
  EvalCell cell;
  cell.dtw = compute_metric(TrajectoryMetric::Dtw, rb, pb);
  cell.frechet = compute_metric(TrajectoryMetric::Frechet, rb, pb);
  cell.swept = compute_metric(TrajectoryMetric::Swept, rb, pb);
  if (spec.has_orientation) {
    const auto rq = pj.raw.narrow(1, 0, T).narrow(2, 3, 4).contiguous();
    const auto pq = pred.narrow(2, 3, 4).contiguous();
    cell.quat = compute_metric(TrajectoryMetric::Quat, {rq.data_ptr<double>(), rq.size(0), T, 4},
                               {pq.data_ptr<double>(), pq.size(0), T, 4});
    cell.has_quat = true;
  }
  return cell;
}

json measure_sharpness(const LfdConfig& c, const std::vector<torch::Tensor>& params,
                       const std::function<torch::Tensor()>& rollout, const torch::Tensor& target, std::int64_t task,
                       std::int64_t iteration) {
  namespace D = diagnostics;
  const auto& d = c.diagnostics;
  const auto n = target.numel();
  // One batch: the closures hold the window; the batch only carries its (unit) weight.
  const std::vector<D::Batch> batches{{torch::zeros({1}), torch::zeros({1})}};
  const auto checked_rollout = [&rollout, n] {
    auto pred = rollout();
    SL_CHECK(pred.numel() == n, ShapeError, "diagnostics: the rollout has ", pred.numel(), " elements, the window ", n);
    return pred;
  };
  const auto loss = [&checked_rollout, &target](const D::Batch&) {
    const auto pred = checked_rollout();
    return (pred - target.reshape(pred.sizes())).pow(2).mean();
  };
  const D::HessianOperator hessian(params, loss, batches);
  // GGN of mean((Ŷ − Y)²): (2/N) JᵀJ = J'ᵀ J' for the output Ŷ' = √(2/N) Ŷ as one sample of N
  // outputs under GaussNewtonOperator's ½‖f − y‖² convention (output Hessian I, one sample).
  std::unique_ptr<D::GaussNewtonOperator> ggn;
  if (d.curvature == "ggn") {
    const double scale = std::sqrt(2.0 / static_cast<double>(n));
    ggn = std::make_unique<D::GaussNewtonOperator>(
        params, [&checked_rollout, scale](const torch::Tensor&) { return (checked_rollout() * scale).reshape({1, -1}); },
        D::OutputLoss::MeanSquaredError, batches);
  }
  const D::CurvatureOperator& op = ggn ? static_cast<const D::CurvatureOperator&>(*ggn) : hessian;
  json row{{"event", "diagnostics"}, {"task", task}, {"iteration", iteration}};
  D::MonitorOptions mo;
  mo.lambda_max = d.records("lambda_max");
  mo.lanczos_steps = d.lanczos_steps;
  mo.trace_probes = d.records("trace") ? d.trace_probes : 0;
  mo.lanczos_seed = derive_seed(c.seed, task, seed_purpose::lanczos);
  mo.trace_seed = derive_seed(c.seed, task, seed_purpose::trace);
  const auto reading = D::read_curvature(op, mo);
  row.update(D::reading_fields(reading));
  if (d.records("grad_norm") || d.records("loss")) {
    const auto [loss_value, grad] = hessian.loss_and_gradient();
    if (d.records("grad_norm")) row["grad_norm"] = grad.norm().item<double>();
    if (d.records("loss")) row["loss"] = loss_value;
  }
  if (d.records("lambda_max") || d.records("trace")) row["curvature"] = d.curvature;
  row["two_over_lr"] = 2.0 / c.lr;
  row["params"] = op.dim();
  return row;
}

namespace {

json summary_json(const MetricSummary& s) { return {{"per_demo", s.per_demo}, {"mean", s.mean}, {"median", s.median}}; }
MetricSummary summary_from(const json& j) { return summarize(j.at("per_demo").get<std::vector<double>>()); }

json cell_json(const EvalCell& c) {
  json j{{"dtw", summary_json(c.dtw)}, {"frechet", summary_json(c.frechet)}, {"swept", summary_json(c.swept)}};
  if (c.has_quat) j["quat_error"] = summary_json(c.quat);
  return j;
}
EvalCell cell_from(const json& j) {
  EvalCell c;
  c.dtw = summary_from(j.at("dtw"));
  c.frechet = summary_from(j.at("frechet"));
  c.swept = summary_from(j.at("swept"));
  if (j.contains("quat_error")) {
    c.quat = summary_from(j.at("quat_error"));
    c.has_quat = true;
  }
  return c;
}

constexpr const char* kCheckpointFormat = "stablelearn-lfd-checkpoint";  // read_checkpoint_manifest's format
// Version 2 adds "method" (absent in version 1 = "hnet").
constexpr int kCheckpointVersion = 2;

}  // namespace

CheckpointData read_checkpoint(const std::filesystem::path& run) {
  const auto ckpt_json = run / "checkpoint.json";
  // IoError when missing; DataError when corrupt, of another format or a newer version (core/run.h).
  const auto manifest = read_checkpoint_manifest(ckpt_json, kCheckpointFormat, kCheckpointVersion);
  const auto& ck = manifest.fields;
  const int version = manifest.version;
  CheckpointData d;
  try {
    d.completed = ck.at("completed_tasks").get<std::int64_t>();
    d.tensors_file = run / ck.at("file").get<std::string>();
    d.seconds = ck.at("train_seconds").get<std::vector<double>>();
    d.method = version >= 2 ? ck.at("method").get<std::string>() : std::string("hnet");
    for (const auto& row : ck.at("evaluations")) {
      std::vector<EvalCell> cells;
      for (const auto& cell : row) cells.push_back(cell_from(cell));
      d.evals.push_back(cells);
    }
  } catch (const json::exception& e) {
    SL_THROW(DataError, ckpt_json.string(), ": missing or malformed field (", e.what(), ")");
  }
  d.tensors = io::read_npz(d.tensors_file);
  return d;
}

torch::Tensor checkpoint_tensor(const CheckpointData& ck, const std::string& key) {
  const auto it = ck.tensors.find(key);
  SL_CHECK(it != ck.tensors.end(), DataError, ck.tensors_file.string(), ": missing tensor '", key, "'");
  return data::to_tensor(it->second);
}

void write_checkpoint(const RunDir& run, const std::string& method, std::int64_t task,
                      const std::map<std::string, io::NdArray>& tensors, const std::vector<double>& seconds,
                      const std::vector<std::vector<EvalCell>>& evals) {
  // Tensors first, then the JSON that points at them (atomic, in that order).
  const std::string file = "checkpoint_task" + std::to_string(task) + ".npz";
  io::write_npz(run.file(file), tensors, /*compress=*/false);
  json ev = json::array();
  for (const auto& r : evals) {
    json jr = json::array();
    for (const auto& cell : r) jr.push_back(cell_json(cell));
    ev.push_back(jr);
  }
  run.write_manifest({kCheckpointFormat, kCheckpointVersion,
                      json{{"method", method},
                           {"completed_tasks", task + 1},
                           {"file", file},
                           {"train_seconds", seconds},
                           {"evaluations", ev}}});
  std::error_code ec;
  if (task > 0) std::filesystem::remove(run.file("checkpoint_task" + std::to_string(task - 1) + ".npz"), ec);
}

void write_results(const RunDir& run, const LfdConfig& c, const std::vector<std::vector<EvalCell>>& evals,
                   const std::vector<double>& seconds, const SummaryInfo& info) {
  // eval_results.json (the reference's layout) and summary.json.
  json metric_errors = json::object();
  json medians = json::object();
  for (std::size_t ti = 0; ti < evals.size(); ++ti) {
    for (std::size_t tj = 0; tj < evals[ti].size(); ++tj) {
      const auto& cell = evals[ti][tj];
      json e{{"dtw", cell.dtw.per_demo}, {"frechet", cell.frechet.per_demo}, {"swept", cell.swept.per_demo}};
      json m{{"dtw", cell.dtw.median}, {"frechet", cell.frechet.median}, {"swept", cell.swept.median}};
      if (cell.has_quat) {
        e["quat_error"] = cell.quat.per_demo;
        m["quat_error"] = cell.quat.median;
      }
      metric_errors["train_task_" + std::to_string(ti)]["eval_task_" + std::to_string(tj)] = e;
      medians["train_task_" + std::to_string(ti)]["eval_task_" + std::to_string(tj)] = m;
    }
  }
  run.write_json("eval_results.json", json{{"data", {{"metric_errors", metric_errors}}}});

  json summary{{"method", info.method},
               {"completed_tasks", evals.size()},
               {"tasks", info.tasks},
               {"task_files", info.task_files},
               {"params", info.params},
               {"per_task_train_seconds", seconds},
               {"median_errors", medians},
               {"seed", c.seed}};
  if (c.evaluate && !evals.empty()) {
    const auto n = evals.size();
    ClScoreInputs in;
    in.acc.assign(n, std::vector<double>(n, 0.0));
    for (std::size_t ti = 0; ti < n; ++ti)
      for (std::size_t tj = 0; tj <= ti; ++tj) in.acc[ti][tj] = threshold_accuracy(evals[ti][tj].dtw.per_demo, c.dtw_threshold);
    in.sizes.assign(info.sizes.begin(), info.sizes.begin() + static_cast<std::ptrdiff_t>(n));
    in.train_seconds = seconds;
    in.stores_data = info.stores_data;
    const auto sc = compute_cl_scores(in);
    summary["cl_scores"] = {{"dtw_threshold", c.dtw_threshold}, {"accuracy_matrix", in.acc}, {"ACC", sc.acc},
                            {"BWT", sc.bwt}, {"BWT_plus", sc.bwt_plus}, {"REM", sc.rem}, {"MS", sc.ms}, {"TE", sc.te},
                            {"FS", sc.fs}, {"SSS", sc.sss}, {"CL_score", sc.cl_score}, {"CL_stability", sc.cl_stability}};
  }
  if (c.diagnostics.enabled() && !info.diagnostics.empty()) {
    summary["diagnostics"] = diagnostics::monitor_summary(info.diagnostics, c.diagnostics.every, c.diagnostics.curvature, 2.0 / c.lr);
    summary["diagnostics"]["metrics"] = c.diagnostics.resolved_metrics();
  }
  run.write_summary(summary);  // + the runtime block
}

}  // namespace stablelearn::lfd::detail
