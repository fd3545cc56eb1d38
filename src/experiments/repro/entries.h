// The built-in reproductions, one file each (private to sl_experiments). Adding one = a file
// defining its make_*_repro() + its line in registry.cpp + its section in docs/repro.md.
#pragma once

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "stablelearn/experiments/repro.h"
#include "stablelearn/experiments/toy_experiments.h"

namespace stablelearn::experiments::repro {

ReproEntry make_edge_of_stability_repro();
ReproEntry make_sgd_minimum_repro();
ReproEntry make_trajectory_repro();
ReproEntry make_intrinsic_dim_repro();
ReproEntry make_commutator_repro();
ReproEntry make_stability_gap_repro();
ReproEntry make_stability_gap_table_repro();
ReproEntry make_lfd_forgetting_repro();
ReproEntry make_stable_spam_repro();
ReproEntry make_width_lr_repro();
ReproEntry make_elr_repro();
ReproEntry make_ska_repro();
ReproEntry make_dppn_repro();
ReproEntry make_bo_rep_repro();
ReproEntry make_mip_repro();
ReproEntry make_causal_minimax_repro();
ReproEntry make_malignant_tail_repro();
ReproEntry make_equivariance_repro();
ReproEntry make_stableun_repro();
ReproEntry make_koopman_repro();
ReproEntry make_lfm_stability_repro();
ReproEntry make_execution_manifolds_repro();
ReproEntry make_gka_repro();
ReproEntry make_generalization_dynamics_repro();
ReproEntry make_cnn_kernel_curves_repro();
ReproEntry make_hyper_pp_repro();
ReproEntry make_drl_diagnosis_repro();
ReproEntry make_drl_diagnosis_pixels_repro();
ReproEntry make_stratified_grpo_repro();
ReproEntry make_gd_sgd_minima_repro();
ReproEntry make_grokalign_repro();
ReproEntry make_rlvr_geometry_repro();
ReproEntry make_relex_repro();
ReproEntry make_shesha_repro();
ReproEntry make_intrinsic_dim_sizes_repro();
ReproEntry make_finetune_intrinsic_dim_repro();
ReproEntry make_fscil_repro();
ReproEntry make_care_repro();
ReproEntry make_lcia_repro();
ReproEntry make_coso_repro();
ReproEntry make_sculpting_subspaces_repro();

/// The Fashion-MNIST subset of seed k from the options samples, test_samples and hidden (one
/// hidden layer of that width); seed ctx.seed + k.
FmnistOptions fmnist_options(const ReproContext& ctx, std::int64_t k);
/// `key` of every row (per-seed values).
std::vector<double> per_seed(const std::vector<nlohmann::json>& rows, const std::string& key);
/// The value at `path`, a JSON pointer into each row (e.g. "/models/full/mmd2"), of every row (NaN
/// for null).
std::vector<double> per_seed_at(const std::vector<nlohmann::json>& rows, const std::string& path);
/// Arithmetic mean, summed in order (NaN when empty).
double mean(const std::vector<double>& v);
/// Sample standard deviation (n − 1; 0 for fewer than two values).
double std_dev(const std::vector<double>& v);
/// One value, or the per-seed list when there are several (results.json "metrics").
inline nlohmann::json seeds_json(const std::vector<double>& v) {
  auto num = [](double x) { return std::isfinite(x) ? nlohmann::json(x) : nlohmann::json(nullptr); };
  if (v.size() == 1) return num(v[0]);
  nlohmann::json a = nlohmann::json::array();
  for (double x : v) a.push_back(num(x));
  return a;
}
/// A number or null (NaN, ±inf) for JSON.
inline nlohmann::json finite_or_null(double x) { return std::isfinite(x) ? nlohmann::json(x) : nlohmann::json(nullptr); }
/// The per-seed values of one metric into results.json "metrics": `name` (seeds_json), `name`_mean
/// and `name`_std (sample standard deviation; null when not finite).
inline void put_seed_stats(ReproOutcome& out, const std::string& name, const std::vector<double>& v) {
  out.metrics[name] = seeds_json(v);
  out.metrics[name + "_mean"] = finite_or_null(mean(v));
  out.metrics[name + "_std"] = finite_or_null(std_dev(v));
}
/// Median of values; NaN when empty or when any value is NaN (a failed seed leaves it undefined).
double median(std::vector<double> v);
/// A progress callback for toy_experiments.h that reports seed k of ctx.seeds (and `stage`, e.g.
/// one of several runs of the seed) on ctx.progress.
std::function<void(std::int64_t, std::int64_t, const std::string&)> seed_progress(const ReproContext& ctx, std::int64_t k,
                                                                            const std::string& stage = {});

}  // namespace stablelearn::experiments::repro
