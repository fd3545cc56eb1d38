#!/usr/bin/env bash
# Set up stablelearn on a fresh Debian 12: install the Debian packages it needs (apt-get as root,
# sudo otherwise), then configure and build with CMake. Idempotent: when every package is present
# and the build is up to date it only checks and returns within seconds.
#
#   scripts/setup.sh [--build-dir DIR] [--build-type Release|Debug|RelWithDebInfo] [--no-build]
#                    [--target NAME ...]
#
# --target builds only the named CMake target (repeatable; scripts/demo.sh builds `stablelearn`
# alone); without it every target is built (libraries, CLI, test binaries, benchmarks, fuzzers).
#
# Environment: SL_JOBS (parallel build jobs, default 2), SL_SKIP_APT=1 (do not touch packages).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir="$here/build"
build_type=Release
do_build=1
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --build-dir) build_dir=$2; shift 2 ;;
    --build-type) build_type=$2; shift 2 ;;
    --no-build) do_build=0; shift ;;
    --target) targets+=(--target "$2"); shift 2 ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "setup.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done

# Every package the project builds, tests or runs with. Keep in sync with the README.
packages=(
  build-essential cmake ninja-build pkg-config git
  libtorch-dev libgloo-dev libopenblas0-openmp
  libgtest-dev libgmock-dev libbenchmark-dev
  libzip-dev zlib1g-dev libmatio-dev
  libcli11-dev nlohmann-json3-dev libtomlplusplus-dev libfmt-dev
  dataset-fashion-mnist
  clang libclang-rt-14-dev
  nodejs chromium
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ] && [ "${SL_SKIP_APT:-0}" != 1 ]; then
  echo "==> installing Debian packages: ${missing[*]}"
  if [ "$(id -u)" -eq 0 ]; then sudo_cmd=(); else sudo_cmd=(sudo); fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "==> Debian packages: all ${#packages[@]} present"
fi

# libtorch multiplies matrices through the system BLAS; make sure the OpenMP OpenBLAS is the one
# libblas.so.3 resolves to (the reference BLAS is 20-30x slower, the pthread variant fights
# libtorch's OpenMP threads).
if command -v update-alternatives >/dev/null; then
  alt=$(update-alternatives --list libblas.so.3-x86_64-linux-gnu 2>/dev/null | grep openblas-openmp || true)
  if [ -n "$alt" ] && [ "$(readlink -f /etc/alternatives/libblas.so.3-x86_64-linux-gnu 2>/dev/null)" != "$(readlink -f "$alt")" ]; then
    if [ "$(id -u)" -eq 0 ]; then sudo_cmd=(); else sudo_cmd=(sudo); fi
    "${sudo_cmd[@]}" update-alternatives --set libblas.so.3-x86_64-linux-gnu "$alt" >/dev/null
    echo "==> libblas.so.3 -> $alt"
  fi
fi

# The report page's charting library and its browser test's driver, pinned in report/web/package-lock.json
# (`stablelearn report` inlines the library into every page; the test drives Debian's chromium).
# npm comes with Debian's nodejs as the package npm, and inside NodeSource's nodejs; install Debian's
# only where no npm is on the PATH.
web="$here/report/web"
if ! command -v npm >/dev/null && [ "${SL_SKIP_APT:-0}" != 1 ]; then
  if [ "$(id -u)" -eq 0 ]; then sudo_cmd=(); else sudo_cmd=(sudo); fi
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends npm
fi
if [ -f "$web/package-lock.json" ] && command -v npm >/dev/null; then
  if [ ! -f "$web/node_modules/.package-lock.json" ] || ! cmp -s "$web/package-lock.json" "$web/node_modules/.sl-installed-lock"; then
    echo "==> npm ci in report/web (ECharts for report pages, playwright-core for their browser test)"
    if (cd "$web" && npm ci --no-audit --no-fund --loglevel=error); then
      cp "$web/package-lock.json" "$web/node_modules/.sl-installed-lock"
    else
      echo "==> WARNING: npm ci failed in report/web: \`stablelearn report\` and its browser test need it" >&2
    fi
  else
    echo "==> report/web node packages: up to date"
  fi
fi

[ "$do_build" = 1 ] || exit 0

echo "==> configuring ($build_type) in $build_dir"
gen=()
command -v ninja >/dev/null && [ ! -f "$build_dir/Makefile" ] && gen=(-G Ninja)
cmake -S "$here" -B "$build_dir" "${gen[@]}" -DCMAKE_BUILD_TYPE="$build_type" >/dev/null
echo "==> building ${targets[*]:-every target} with ${SL_JOBS:-2} jobs"
start=$(date +%s)
cmake --build "$build_dir" -j "${SL_JOBS:-2}" "${targets[@]}"
echo "==> build done in $(( $(date +%s) - start )) s"
