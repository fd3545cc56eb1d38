#!/usr/bin/env bash
# Runs the default test suite once per OpenBLAS kernel and thread count, to show that no assertion
# depends on the CPU's BLAS kernel or the number of threads (issue 14). Every test binary of build/
# runs whole (one process per binary: the same tests as ctest without its per-test process
# start-up, about 0.4 s each for loading libtorch), cores / threads binaries at a time (SL_JOBS
# overrides): OpenMP threads spin while they wait, so more threads than cores slows a run manyfold.
#
#   scripts/test_matrix.sh [--cores "Haswell SkylakeX Prescott"] [--threads "1 2"] [--aten "CAP ..."]
#                          [--out DIR]
#
# Each run sets OPENBLAS_CORETYPE (which kernel OpenBLAS's DYNAMIC_ARCH build uses), SL_TEST_THREADS
# (intra-op threads of every test binary and of the CLI they start) and, with --aten, also
# ATEN_CPU_CAPABILITY (libtorch's vector kernels: default, avx2, avx512; only what the CPU has).
# Logs go to DIR (default build/test_matrix/), one line per run to DIR/summary.txt. Build first
# (scripts/setup.sh); the script does not rebuild. Exit status: the number of failed runs.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cores="Haswell SkylakeX Prescott"
threads="1 2"
aten=""
out="$here/build/test_matrix"
while [ $# -gt 0 ]; do
  case "$1" in
    --cores) cores=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --aten) aten=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "test_matrix.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[ -x "$here/build/stablelearn" ] || { echo "test_matrix.sh: no build in $here/build (run scripts/setup.sh)" >&2; exit 2; }
mkdir -p "$out"
failed=0
for core in $cores; do
  for t in $threads; do
    for cap in ${aten:-cpu}; do
      tag="${core}_t${t}${aten:+_$cap}"
      mkdir -p "$out/$tag"
      env_vars=(OPENBLAS_CORETYPE="$core" SL_TEST_THREADS="$t")
      [ -n "$aten" ] && env_vars+=(ATEN_CPU_CAPABILITY="$cap")
      jobs=${SL_JOBS:-$(( $(nproc) / t > 0 ? $(nproc) / t : 1 ))}
      start=$(date +%s)
      {
        env "${env_vars[@]}" "$here/build/stablelearn" --threads "$t" --version
        find "$here/build" -maxdepth 1 -name 'test_*' -type f -executable -printf '%f\n' | sort |
          (cd "$here/build" && env "${env_vars[@]}" xargs -P "$jobs" -I{} sh -c './{} >"$0/{}.log" 2>&1; echo "{} exit $?"' "$out/$tag")
      } >"$out/$tag.log" 2>&1
      passed=$(cat "$out/$tag"/test_*.log | awk '/^\[  PASSED  \] [0-9]+ test/ {n += $4} END {print n + 0}')
      nfail=$(cat "$out/$tag"/test_*.log | awk '/^\[  FAILED  \] [0-9]+ test/ {n += $4} END {print n + 0}')
      bad_exit=$(grep -c "exit [1-9]" "$out/$tag.log")
      rc=$(( nfail + bad_exit ))
      line="$passed passed, $nfail failed, $bad_exit binaries exited non-zero"
      blas=$(grep -m1 "^BLAS " "$out/$tag.log" | sed 's/.*USE_OPENMP //; s/ MAX_THREADS.*//')
      kern=$(grep -m1 "libtorch kernels" "$out/$tag.log" | sed 's/.*kernels: //; s/)//')
      echo "$tag: OpenBLAS core $blas, libtorch kernels $kern, $t thread(s): $line ($(( $(date +%s) - start )) s)" | tee -a "$out/summary.txt"
      [ $rc -eq 0 ] || failed=$((failed + 1))
    done
  done
done
exit $failed
