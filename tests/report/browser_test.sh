#!/usr/bin/env bash
# The browser test of `stablelearn report` (ctest: report_browser): makes a tiny LfD run, two cl runs
# (a comparison of two strategies) and two diagnose outputs (density CSV, spectra JSON with its CSV), writes their reports and opens them in
# headless Chromium (tests/report/browser_check.cjs). Screenshots: BUILD/report_browser_test/.
#   tests/report/browser_test.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$(cd "$1" && pwd); src=$(cd "$2" && pwd)
bin=$build/stablelearn
web=${STABLELEARN_WEB_DIR:-$src/report/web}
shots=$build/report_browser_test
for need in "$web/node_modules/echarts/dist/echarts.min.js" "$web/node_modules/playwright-core/package.json"; do
  [ -f "$need" ] || { echo "FAIL: $need is missing: run scripts/setup.sh (it runs npm ci in report/web)"; exit 1; }
done
command -v node >/dev/null || { echo "FAIL: node is missing: run scripts/setup.sh (Debian's nodejs)"; exit 1; }
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 18 ] || { echo "FAIL: node $(node --version) is too old for playwright-core 1.61 (needs >= 18; Debian 12 ships 18)"; exit 1; }
[ -x "${SL_CHROMIUM:-/usr/bin/chromium}" ] || { echo "FAIL: ${SL_CHROMIUM:-/usr/bin/chromium} is missing: run scripts/setup.sh (Debian's chromium)"; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/sl_report_browser.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
t0=$(date +%s.%N)
sl() { "$bin" --threads 1 "$@"; }
cat > "$tmp/lfd.toml" <<'TOML'
[data]
tasks = 2
[model]
h = 8
hp = 4
fhat_layers = 1
hnet_hidden = [8]
task_emb_dim = 4
chunk_emb_dim = 4
chunk_dim = 128
[train]
iterations = 20
log_every = 5
TOML
sl lfd train "$tmp/lfd.toml" --out "$tmp/lfd_run" --quiet
for s in er ewc; do
  printf '[stream]\nkind = "split-class"\ntasks = 2\ntrain_per_task = 300\ntest_per_task = 100\n[model]\nhidden = [16]\n[strategy]\nname = "%s"\n[train]\nepochs = 1\n[eval]\nevery = 2\nsubset = 50\n[output]\nlog_every = 1\n' "$s" > "$tmp/$s.toml"
  sl cl run "$tmp/$s.toml" --out "$tmp/cl_$s" --quiet > /dev/null
done
sl diagnose density "$tmp/cl_er" --task 0 --samples 100 --runs 2 --lanczos-steps 20 --dtype float32 --out "$tmp/density.csv" > /dev/null
(cd "$tmp" && sl diagnose spectra cl_er --min-tail 4 --out esd.csv > esd.json)
t1=$(date +%s.%N)
sl report "$tmp/lfd_run" --out "$tmp/lfd_report.html" --stability-budget 4000
sl report "$tmp/cl_er" "$tmp/cl_ewc" --out "$tmp/cl_comparison.html"
sl report "$tmp/density.csv" --out "$tmp/diagnose_density.html"
sl report "$tmp/esd.json" --out "$tmp/diagnose_spectra.html"
t2=$(date +%s.%N)
node "$src/tests/report/browser_check.cjs" "$web" "$shots" \
  "$tmp/lfd_report.html:lfd:$tmp/lfd_run" \
  "$tmp/cl_comparison.html:cl:$tmp/cl_er,$tmp/cl_ewc" \
  "$tmp/diagnose_density.html:diagnose:$tmp/density.csv" \
  "$tmp/diagnose_spectra.html:spectra:$tmp/esd.csv"
t3=$(date +%s.%N)
awk -v a="$t0" -v b="$t1" -v c="$t2" -v d="$t3" 'BEGIN { printf "runs %.1f s, reports %.1f s, browser %.1f s\n", b - a, c - b, d - c }'
