#!/usr/bin/env bash
# SGD commutator defect and its energy in the trajectory subspace (Xu 2026, arXiv 2602.10496;
# skydancerosel/bubble-modadd): minibatch SGD (batch 16, lr 0.1) on the toy 2-16-1 tanh MLP
# (65 parameters, 256 samples) for 1500 steps, a checkpoint every 10 steps; the commutator
# (eta = 1e-3, 9 batch pairs) at steps 0, 500, 1000, 1500, projected on the top-3 trajectory-PCA
# directions (global and per tensor) and on 10 random 3-dim subspaces per pair. A few seconds.
# Usage: scripts/diag_commutator.sh [BUILD_DIR]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${1:-$root/build}/stablelearn
report=$(cat <<'PY'
import json, sys
j = json.load(sys.stdin)
t = j["trajectory"]
print("basis %s, k = %d of D = %d (random energy k/D = %.4f, rho ~ sqrt(k/D) = %.3f); final loss %.4f"
      % (j["basis"], j["basis_dim"], j["parameters"], j["expected_random_energy_fraction"], j["expected_random_rho"],
         j["final_loss"]))
if "explained_variance_ratio" in t:
    print("  trajectory: top-%d explained variance %s, r90 = %d" % (len(t["explained_variance_ratio"]),
          ", ".join("%.3f" % v for v in t["explained_variance_ratio"]), t["rank_90"]))
print("  %5s %8s %9s %9s %9s %9s %9s %9s %9s" % ("step", "loss", "median D", "p90 D", "energy", "rand en.", "rho",
                                                "rho_rand", "ratio"))
for r in j["measurements"]:
    print("  %5d %8.4f %9.3f %9.3f %9.4f %9.4f %9.3f %9.3f %9.2f" % (r["step"], r["loss"], r["median_defect"],
          r["p90_defect"], r["median_energy_fraction"], r["median_random_energy_fraction"], r["median_rho"],
          r["median_random_rho"], r["median_rho_ratio"]))
PY
)
for basis in global per-tensor; do
  "$bin" --threads 1 diagnose commutator --steps 1500 --every 10 --measure-every 500 -k 3 --basis "$basis" \
    | python3 -c "$report"
done
