#!/usr/bin/env bash
# Fuzz every parser with libFuzzer: configure a separate clang build (build-fuzz/, the torch-free
# layers only, code under test instrumented with ASan + UBSan), build one fuzzer per reader — npy,
# npz, idx, mat (MATLAB, through matio), manifest (checkpoint.json), config (TOML), skill (.slskill)
# — seed their corpora from the shipped data, the test fixtures and the configs, and run each for
# N seconds. Issue 19 asks for 10 minutes per target: scripts/fuzz.sh 600.
#
#   scripts/fuzz.sh [SECONDS]        # default 30 per target
#
# Environment: SL_FUZZ_BUILD (build folder, default build-fuzz), SL_FUZZ_TARGETS (default
# "npy npz idx mat manifest config skill"), SL_JOBS (ninja jobs, default 1). Corpora grow across runs in
# $SL_FUZZ_BUILD/corpus/<target>; crashing inputs are written to $SL_FUZZ_BUILD/artifacts/.
# Exits non-zero when any target found a crash, leak, timeout or sanitizer report.
set -euo pipefail

seconds=${1:-30}
case "$seconds" in
  ''|*[!0-9]*) echo "fuzz.sh: SECONDS must be a positive integer, got '$seconds'" >&2; exit 2 ;;
esac
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${SL_FUZZ_BUILD:-$root/build-fuzz}
targets=${SL_FUZZ_TARGETS:-"npy npz idx mat manifest config skill"}

CXX=${CXX:-clang++} cmake -S "$root" -B "$build" -G Ninja -DSL_FUZZ_ONLY=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
ninja -C "$build" -j"${SL_JOBS:-1}" $(for t in $targets; do echo "fuzz_$t"; done)

# Seeds: real files written by NumPy, small fixtures written by Python (tests/fixtures/io), and a
# generated IDX pair (plain and gzip).
corpus=$build/corpus
for t in npy npz idx mat manifest config skill; do mkdir -p "$corpus/$t"; done
mkdir -p "$build/artifacts"
# mat: the three smallest LASA files of shared/ (when it is beside the checkout).
shared=${SL_SHARED_DIR:-$root/../shared}
if [ -d "$shared/data/LASA/DataSet" ]; then
  ls -S "$shared"/data/LASA/DataSet/*.mat | tail -3 | xargs -I{} cp -n {} "$corpus/mat/"
fi
# config: every shipped configuration; manifest: a cl and an lfd checkpoint manifest; skill: the
# runtime's fixtures (a version-1 sNODE and a version-2 discrete-step sNODE).
find "$root/configs" -name '*.toml' -exec cp -n {} "$corpus/config/" \;
printf '{"format": "stablelearn-cl-checkpoint", "version": 1, "completed_tasks": 2, "iteration": 40, "file": "checkpoint_task1.npz", "accuracy": [[0.9, 0.1], [0.5, 0.8]]}' > "$corpus/manifest/cl.json"
printf '{"format":"stablelearn-lfd-checkpoint","version":1,"method":"chn","completed_tasks":1,"file":"checkpoint_task0.npz","train_seconds":[1.5]}' > "$corpus/manifest/lfd.json"
cp -n "$root"/tests/fixtures/runtime/*.slskill "$corpus/skill/"
find "$root/data" "$root/tests/fixtures/io" -name '*.npy' -exec cp -n {} "$corpus/npy/" \;
cp -n "$root"/data/LASA/lasa_numpy/*.npz "$root"/tests/fixtures/io/*.npz "$corpus/npz/"
cp -n "$root"/tests/fixtures/io/*ubyte* "$corpus/idx/"
# 2 images of 3 x 4 pixels (magic 00 00 08 03, dimensions 2, 3, 4 big-endian, pixels 0..23) and
# 6 labels (magic 00 00 08 01, dimension 6).
{
  printf '\000\000\010\003\000\000\000\002\000\000\000\003\000\000\000\004'
  for i in $(seq 0 23); do printf "\\$(printf '%03o' "$i")"; done
} > "$corpus/idx/generated-images.idx"
printf '\000\000\010\001\000\000\000\006\000\001\002\011\005\003' > "$corpus/idx/generated-labels.idx"
gzip -n -c "$corpus/idx/generated-images.idx" > "$corpus/idx/generated-images.idx.gz"
gzip -n -c "$corpus/idx/generated-labels.idx" > "$corpus/idx/generated-labels.idx.gz"

# A request for more memory than ASan supports returns NULL, as glibc's malloc does for such a size
# in an ordinary run (ASan would otherwise abort on it). So a corrupt size field in a file is tested
# the way a real run meets it: matio checks malloc's result and reports an error (a crash after a
# NULL would still be a finding). Not a suppression: every report still fails the target.
export ASAN_OPTIONS=${ASAN_OPTIONS:-allocator_may_return_null=1}

status=0
for t in $targets; do
  echo "== fuzz_$t for ${seconds}s (corpus: $(ls "$corpus/$t" | wc -l) files)"
  dict=()
  [ -f "$root/fuzz/$t.dict" ] && dict=(-dict="$root/fuzz/$t.dict")
  # A hang is an input that runs past -timeout (10 s). (The mat reader's structural check rejects
  # corrupt cell headers before matio allocates their cells, which took matio 2 s, 17 s under ASan.)
  limit=10
  if ! "$build/fuzz_$t" "$corpus/$t" "${dict[@]}" -max_total_time="$seconds" -timeout=$limit -rss_limit_mb=2048 \
      -print_final_stats=1 -artifact_prefix="$build/artifacts/$t-" 2>"$build/fuzz_$t.log"; then
    echo "fuzz_$t: FINDING (see $build/fuzz_$t.log and $build/artifacts/)" >&2
    grep -E 'ERROR|SUMMARY|runtime error|Test unit written' "$build/fuzz_$t.log" | head -20 >&2 || true
    status=1
  else
    grep -E '^stat::(number_of_executed_units|peak_rss_mb)|^Done' "$build/fuzz_$t.log" || true
  fi
done
exit $status
