// repro gd-sgd-minima: Wu & Su, "The Implicit Regularization of Dynamical Stability in Stochastic
// Gradient Descent" (ICML 2023, arXiv 2305.17490; shared/specs/papers-01-18.md §4), the half that
// repro sgd-minimum does not show: GD against SGD from the same initialisation, on a diagonal linear
// network (sparse regression) and a two-layer ReLU network (teacher–student regression), with the
// library's theory/sgd_minima.h (exact Hessians, traces and trainers; docs/theory.md).
//
// Setting. Loss L = (1/2n) Σ (f(x_i) − y_i)² (the ½ convention of the theorem). At an interpolating
// minimum H = (1/n) Σ ∇f_i ∇f_iᵀ; GD with rate η is linearly stable there iff λ_max(H) <= 2/η, SGD with
// batch 1 only if tr(H) <= 2/η (Wu & Su; Mulayoff & Michaeli's Prop. 3 with rank-one H_i). Both
// problems: GD and SGD (B = 1) from the same initialisation, at the same η, chosen near the
// stability limits (2/η below GD's trace at its solution, above its λ_max); each run trains until
// the train loss is <= loss_tol (or max_steps); curvature = the exact Hessian at the end (λ_max by
// eigvalsh, tr H exactly).
//   diag: f(x) = <u ⊙ v, x>, d inputs, n samples x ~ N(0, I), a `sparsity`-sparse ±1 teacher β*,
//         noiseless targets; init u = init_scale · 1, v = 0. Test error ‖β − β*‖² (exact for
//         x ~ N(0, I)); sparsity: ‖β‖₁ and the count of |β_k| > 0.01.
//   relu: f(x) = Σ_j a_j ReLU(w_j·x), width m, inputs x ~ N(0, I_d), a teacher of `teacher_width`
//         unit-norm ReLU neurons with output weights 1; init w_j ~ N(0, I/d), a_j ~ N(0, 1/m). Test
//         error = mean squared error on `test_samples` fresh inputs.
//
// Checks, fixed from the paper's claims before any run (for each problem P ∈ {diag, relu}; "max" /
// "min" over seeds, "mean" = mean over seeds):
//   P: trained to a minimum: share of the GD and SGD runs with train loss <= loss_tol     >= 1
//   P: SGD's trace condition: max η tr(H_SGD) / 2                                         <= 1.05
//      (the bound has no slack at an exact minimum; 5 % for the finite loss target)
//   P: GD's sharpness condition: max η λ_max(H_GD) / 2                                   <= 1.05
//   P: GD is not bound by the trace: min η tr(H_GD) / 2                                   > 1
//   P: SGD's solution flatter in trace: mean tr(H_SGD) / mean tr(H_GD)                    < 1
//   P: SGD generalises better: mean test error SGD / mean test error GD                   < 1
//   diag: SGD's solution sparser: mean ‖β_SGD‖₁ / mean ‖β_GD‖₁                           < 1
