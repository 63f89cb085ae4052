#!/usr/bin/env bash
# The GPU benchmark as ONE device command: `python -m benchmarks.gpu` (the runner, its parts, budget and outputs all
# live in the package benchmarks/gpu/; this script only prepares the environment and starts it).
#
# The device image has torch, transformers and accelerate but no diffusers: the pinned wheel travels in .whl/
# (ignored by git). Prepare once, in the project root:   pip download --no-deps -d .whl diffusers==0.42.1
# Device call (the `run` tool):  command "bash benchmarks/gpu_run.sh", carry [".whl"], timeout_s 560
# Results come back under $OUT/bench: results.json, summary.md, progress.log, run.log, nvidia-smi.txt.
#
# Budget: BENCH_BUDGET_S (default 530) seconds from this script's start, installing the wheel included; the bench's
# watchdog stops it there and `timeout` kills it 5 s later as the last resort, so the command ends within ~540 s
# (9 minutes). Any arguments are passed on to the bench, e.g. `--parts warmup,baseline,high` or `--fast-cap-s 120`.
# On a machine that already has diffusers 0.42.1 nothing is installed (BENCH_FORCE_WHEEL=1 installs the wheel anyway).
set -u
T0=$(date +%s)
BUDGET_S=${BENCH_BUDGET_S:-530}
RESULTS=${OUT:-$PWD/outputs}/bench  # $OUT on the device machine; outputs/ is ignored by git
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1
mkdir -p "$RESULTS"
log() { echo "[$(date +%H:%M:%S) +$(( $(date +%s) - T0 ))s] gpu_run: $*"; }

[ -f benchmarks/gpu/cli.py ] || { log "run this from the svd-demo project root (no benchmarks/gpu/cli.py in $PWD)"; exit 2; }
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,memory.used,driver_version \
  --format=csv 2>&1 | tee "$RESULTS/nvidia-smi.txt"

if [ "${BENCH_FORCE_WHEEL:-0}" = 1 ] || ! "$PY" -c "import diffusers, sys; sys.exit(diffusers.__version__ != '0.42.1')" 2>/dev/null; then
  WHL=$(ls .whl/diffusers-0.42.1-*.whl 2>/dev/null | head -1)
  [ -n "$WHL" ] || { log "no diffusers 0.42.1 here and no wheel in .whl/ (pip download --no-deps -d .whl diffusers==0.42.1)"; exit 2; }
  SITE=${TMPDIR:-/tmp}/svd-bench-site
  rm -rf "$SITE"
  "$PY" -m pip install -q --no-index --no-deps --no-compile --target "$SITE" "$WHL" >"$RESULTS/pip.txt" 2>&1 \
    || { log "installing $WHL failed:"; tail -5 "$RESULTS/pip.txt"; exit 2; }
  export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"  # first on the path: the image's other packages serve the rest
  log "installed $(basename "$WHL") into $SITE"
fi

LEFT=$(( BUDGET_S + 5 - ($(date +%s) - T0) ))
timeout -k 4 "$LEFT" "$PY" -m benchmarks.gpu --out "$RESULTS" --t0 "$T0" --budget-s "$BUDGET_S" "$@" 2>&1 \
  | grep --line-buffered -v -E "FutureWarning|should be kept in float32|warnings.warn|requires torchvision" \
  | tee "$RESULTS/run.log"
RC=${PIPESTATUS[0]}
log "bench exit code $RC (0 done, 3 stopped by its watchdog at the budget, 124/137 killed by timeout, 2 could not start)"
if [ -f "$RESULTS/summary.md" ]; then echo; cat "$RESULTS/summary.md"; else log "no summary.md was written"; fi
exit 0
