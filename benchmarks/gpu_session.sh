#!/usr/bin/env bash
# The GPU check on a borrowed device machine that has Python 3.12, torch (CUDA), nvcc, ninja and
# numba but no RecBole, no mamba-ssm and no package registry. Everything else travels in
# .gpu_wheels/ (git-ignored), filled on a machine with a registry:
#
#   bash benchmarks/gpu_session.sh download        # here: wheels (cp312, --no-deps) and the two sdists
#
# The device tool carries at most 64 MiB of ignored paths a call and RecBole's dependencies
# alone (scipy, pandas, scikit-learn, tensorboard) plus transformers (which `import mamba_ssm`
# needs) are about 80 MiB, so they travel in two parts, on two calls made back to back (the
# machine keeps .gpu_venv/ and the first part while it stays warm; it goes back after ~30 s idle):
#
#   1. run(command="bash benchmarks/gpu_session.sh install", carry=[".gpu_wheels/part1"], timeout_s=150)
#   2. run(command="bash benchmarks/gpu_session.sh install build", carry=[".gpu_wheels/part2"], timeout_s=600)
#   3. run(command="bash benchmarks/gpu_session.sh check", timeout_s=540)
#
# `install` puts the carried wheels that the machine lacks into .gpu_venv (a venv that sees the
# machine's torch); `build` compiles causal-conv1d and mamba-ssm from their sdists for sm_90 only
# (both setup.py files hard-code ~9 architectures whatever TORCH_CUDA_ARCH_LIST says; the build
# patches that list) with MAX_JOBS=16, each timed, under a time limit; `check` runs
# python -m recbole_sigma.gpu_check --out "$OUT" (without kernels it measures the PyTorch path on
# the GPU and says so). Everything, logs included, goes to $OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WHEELS=$ROOT/.gpu_wheels
VENV=$ROOT/.gpu_venv
OUT=${OUT:-/tmp/gpu_session_out}
MAMBA_SSM=${MAMBA_SSM:-2.3.2.post1}      # >= 2.2.5; 2.2.6.post3 also downloaded (no mamba3 module)
CAUSAL_CONV1D=${CAUSAL_CONV1D:-1.7.0}    # >= 1.5.1
GPU_ARCH=${GPU_ARCH:-90}                 # H100 / H200: the sm_ kept in the setup.py files
TORCH_ARCH=${TORCH_CUDA_ARCH_LIST:-9.0}  # the same, as torch's extension builder spells it
BUILD_LIMIT_S=${BUILD_LIMIT_S:-480}      # both builds together
mkdir -p "$OUT"

log() { echo "[$(date -u +%H:%M:%S)] $*" | tee -a "$OUT/session.log"; }

# Import-time needs of recbole_sigma.gpu_check (found by importing it in a venv holding only
# torch, numpy and numba) and of `import mamba_ssm`, plus what a --no-build-isolation build needs.
PART1="scipy==1.17.1 pandas==3.1.1"
PART2="recbole==1.2.1 colorlog==4.7.2 colorama==0.4.4 texttable tabulate thop psutil tqdm pyyaml einops
scikit-learn==1.9.1 joblib threadpoolctl cloudpickle narwhals tensorboard==2.21.0 protobuf absl-py python-dateutil
transformers==4.57.6 huggingface-hub==0.36.2 tokenizers==0.22.2 safetensors regex requests urllib3 idna certifi
charset-normalizer packaging setuptools wheel"

download() {  # PIP: a pip whose environment has torch (the sdists' metadata step imports it)
    local PIP=${PIP:-pip}
    local platform="--only-binary=:all: --python-version 3.12 --implementation cp --abi cp312 --abi abi3 --abi none
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any"
    mkdir -p "$WHEELS/part1" "$WHEELS/part2/sdist"
    # shellcheck disable=SC2086
    $PIP download --no-deps $platform -d "$WHEELS/part1" $PART1 || return 1
    # shellcheck disable=SC2086
    $PIP download --no-deps $platform -d "$WHEELS/part2" $PART2 || return 1
    # sdists: their metadata step imports torch, and must not try to compile
    local spec
    for spec in "mamba-ssm==$MAMBA_SSM" "mamba-ssm==2.2.6.post3" "causal-conv1d==$CAUSAL_CONV1D"; do
        MAMBA_SKIP_CUDA_BUILD=TRUE CAUSAL_CONV1D_SKIP_CUDA_BUILD=TRUE $PIP download --no-deps --no-build-isolation \
            --no-binary=:all: -d "$WHEELS/part2/sdist" "$spec" || return 1
    done
    du -sm "$WHEELS"/part1 "$WHEELS"/part2
    local part
    for part in part1 part2; do
        [ "$(du -sm "$WHEELS/$part" | cut -f1)" -lt 64 ] || { echo "$part is over 64 MiB" >&2; return 1; }
    done
}

PY=python3
ensure_venv() {  # a venv that sees the machine's torch; else the machine's python itself
    [ -x "$VENV/bin/python" ] || python3 -m venv --system-site-packages "$VENV" >>"$OUT/session.log" 2>&1 \
        || { rm -rf "$VENV"; export PIP_BREAK_SYSTEM_PACKAGES=1; log "no venv: using $(command -v python3)"; return 0; }
    if "$VENV/bin/python" -c "import torch" 2>/dev/null; then PY=$VENV/bin/python; return 0; fi
    rm -rf "$VENV"; export PIP_BREAK_SYSTEM_PACKAGES=1  # python3 is itself a venv: install into it
    log "the venv does not see torch: using $(command -v python3)"
}

install() {
    ensure_venv
    local dir names name
    for dir in "$WHEELS"/part1 "$WHEELS"/part2; do
        [ -d "$dir" ] || continue
        names=""
        for name in $(ls "$dir"/*.whl 2>/dev/null | xargs -n1 basename | cut -d- -f1); do
            "$PY" -m pip show "$name" >/dev/null 2>&1 || names="$names $name"
        done
        log "install from $dir:${names:- (nothing missing)}"
        # shellcheck disable=SC2086
        [ -z "$names" ] || "$PY" -m pip install -q --no-index --no-deps --find-links "$dir" $names \
            2>&1 | tee -a "$OUT/install.log"
    done
    "$PY" -c "import recbole_sigma.gpu_check" 2>&1 | tail -1 | tee -a "$OUT/install.log"
}

# Keep only the -gencode pair for GPU_ARCH in a package's setup.py (each other pair becomes `pass`).
one_arch() {
    "$PY" - "$1" "$GPU_ARCH" <<'EOF'
import re, sys
path, arch = sys.argv[1], sys.argv[2]
text = open(path).read()
pair = re.compile(r'cc_flag\.append\("-gencode"\)\s*\n(\s*)cc_flag\.append\("arch=compute_(\d+),code=sm_\d+"\)')
text, n = pair.subn(lambda m: m.group(0) if m.group(2) == arch else "pass", text)
open(path, "w").write(text)
print(f"{path}: {n} gencode pairs, kept sm_{arch}")
EOF
}

build_one() {  # build_one <sdist> <FORCE_BUILD variable> <seconds left>
    local src name
    name=$(basename "$1" .tar.gz)
    src=$(mktemp -d)/$name
    tar xzf "$1" -C "$(dirname "$src")"
    one_arch "$src/setup.py" | tee -a "$OUT/build.log"
    local start=$SECONDS
    (cd "$src" && env "$2=TRUE" MAMBA_KEEP_CUDA_BUILD=TRUE TORCH_CUDA_ARCH_LIST="$TORCH_ARCH" MAX_JOBS=16 \
        timeout "$3" "$PY" -m pip install -v --no-index --no-deps --no-build-isolation . >>"$OUT/build.log" 2>&1)
    local rc=$?
    log "build $name: exit $rc after $((SECONDS - start)) s"
    return $rc
}

build() {
    ensure_venv
    nvcc --version | tail -2 | tee -a "$OUT/build.log"
    local start=$SECONDS
    build_one "$WHEELS/part2/sdist/causal_conv1d-$CAUSAL_CONV1D.tar.gz" CAUSAL_CONV1D_FORCE_BUILD "$BUILD_LIMIT_S" || return 1
    build_one "$WHEELS/part2/sdist/mamba_ssm-$MAMBA_SSM.tar.gz" MAMBA_FORCE_BUILD \
        "$((BUILD_LIMIT_S - (SECONDS - start)))" || return 1
    "$PY" -c "
from recbole_sigma import mamba
print('kernels:', mamba.kernel_versions(), mamba.load_cuda_kernels() is not None, mamba.kernel_error())" 2>&1 \
        | tee -a "$OUT/build.log"
}

check() {
    ensure_venv
    nvidia-smi >"$OUT/nvidia-smi.txt" 2>&1
    log "gpu_check $*"
    PYTHONPATH=$ROOT timeout "${CHECK_LIMIT_S:-500}" "$PY" -m recbole_sigma.gpu_check --out "$OUT" "$@" \
        2>&1 | tee "$OUT/gpu_check.log"
    log "gpu_check exit ${PIPESTATUS[0]}"
}

export PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH}
[ $# -gt 0 ] || { sed -n '2,25p' "$0"; exit 2; }
QUICK=()
for step in "$@"; do [ "$step" != --quick ] || QUICK=(--quick); done
for step in "$@"; do
    case $step in
        download | install | build) log "== $step"; $step || { log "$step failed"; exit 1; } ;;
        check) check "${QUICK[@]}" ;;
        --quick) ;;
        *) echo "unknown step: $step (download, install, build, check [--quick])" >&2; exit 2 ;;
    esac
done
