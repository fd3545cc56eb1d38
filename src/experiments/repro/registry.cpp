// The registry of reproductions: one line per entry (STYLE #5, #19).
#include "entries.h"

namespace stablelearn::experiments {

namespace {
std::vector<ReproEntry> register_builtin_repros() {
  return {
      repro::make_edge_of_stability_repro(),
      repro::make_sgd_minimum_repro(),
      repro::make_trajectory_repro(),
      repro::make_intrinsic_dim_repro(),
      repro::make_commutator_repro(),
      repro::make_stability_gap_repro(),
      repro::make_stability_gap_table_repro(),
      repro::make_lfd_forgetting_repro(),
      repro::make_stable_spam_repro(),
      repro::make_width_lr_repro(),
      repro::make_elr_repro(),
      repro::make_ska_repro(),
      repro::make_dppn_repro(),
      repro::make_bo_rep_repro(),
      repro::make_mip_repro(),
      repro::make_causal_minimax_repro(),
      repro::make_malignant_tail_repro(),
      repro::make_equivariance_repro(),
      repro::make_stableun_repro(),
      repro::make_koopman_repro(),
      repro::make_lfm_stability_repro(),
      repro::make_execution_manifolds_repro(),
      repro::make_gka_repro(),
      repro::make_generalization_dynamics_repro(),
      repro::make_cnn_kernel_curves_repro(),
      repro::make_hyper_pp_repro(),
      repro::make_drl_diagnosis_repro(),
      repro::make_drl_diagnosis_pixels_repro(),
      repro::make_stratified_grpo_repro(),
      repro::make_gd_sgd_minima_repro(),
      repro::make_grokalign_repro(),
      repro::make_rlvr_geometry_repro(),
      repro::make_relex_repro(),
      repro::make_shesha_repro(),
      repro::make_intrinsic_dim_sizes_repro(),
      repro::make_finetune_intrinsic_dim_repro(),
      repro::make_fscil_repro(),
      repro::make_care_repro(),
      repro::make_lcia_repro(),
      repro::make_coso_repro(),
      repro::make_sculpting_subspaces_repro(),
  };
}
}  // namespace

const std::vector<ReproEntry>& repro_entries() {
  static const std::vector<ReproEntry> entries = register_builtin_repros();
  return entries;
}

}  // namespace stablelearn::experiments
