#!/usr/bin/env bash
# Shared shell library for recipes: strict mode, logging, stage guards, environment.
#
#   . ../../utils/lib.sh          (from egs/<dataset>/; sets strict mode, CSI_ROOT)
#   ... declare defaults ...
#   . "$CSI_ROOT/utils/parse_options.sh"
#   if stage_begin 1 "JSONL manifest"; then ...; stage_end; fi
#   stage_not_built 3 "coarse training"
set -euo pipefail

CSI_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CSI_ROOT

# Training-process options every recipe accepts (--nproc_per_node 4, --nnodes 2 ...):
# train_stage runs torchrun when more than one process is asked for.
nproc_per_node=1  # processes per node (gloo on CPU, nccl on GPU)
nnodes=1
node_rank=0
master_addr=127.0.0.1
master_port=29500

# Timestamped log line on stderr: `log "message"`.
log() {
  printf '%s (%s) %s\n' "$(date '+%Y-%m-%d %H:%M:%S')" "$(basename "${0}")" "$*" >&2
}

die() {
  log "ERROR: $*"
  exit 1
}

# True if stage N is inside [stage, stop_stage]; then logs a banner and starts the clock.
stage_begin() {
  local n=$1; shift
  if [ "$stage" -le "$n" ] && [ "$stop_stage" -ge "$n" ]; then
    _stage_n=$n; _stage_name=$*; _stage_t0=$(date +%s)
    log "===== stage $n: $* ====="
    return 0
  fi
  return 1
}

stage_end() {
  log "===== stage $_stage_n: $_stage_name done in $(( $(date +%s) - _stage_t0 ))s ====="
}

# A stage this recipe does not have yet: skipped with a clear line in a default run, an
# error when the user asked for it through --stage/--stop_stage.
stage_not_built() {
  local n=$1; shift
  if [ "$stage" -le "$n" ] && [ "$stop_stage" -ge "$n" ]; then
    if _option_given stage || _option_given stop_stage; then
      die "stage $n ($*) is not built yet in this recipe; choose --stop_stage $((n - 1)) or lower"
    fi
    log "----- stage $n: $* is not built yet: skipped -----"
  fi
}

# Idempotent stages: `if already_done MARKER "inputs"; then ...skip...; else ...; mark_done MARKER "inputs"; fi`.
# The marker holds a signature of the stage's inputs, so changed inputs re-run the stage.
already_done() {
  if [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]; then
    log "already done for these inputs (marker $1): skipped"
    return 0
  fi
  return 1
}

mark_done() {
  mkdir -p "$(dirname "$1")"
  printf '%s\n' "$2" > "$1.tmp" && mv "$1.tmp" "$1"
}

_option_given() {
  local o
  for o in "${parsed_options[@]:-}"; do [ "$o" = "$1" ] && return 0; done
  return 1
}

# Make `python3` the toolkit's environment, installing on first use (utils/install.sh):
# an active virtualenv is used as it is (csi installed into it if missing), otherwise
# the repository's .venv.
csi_activate() {
  if _csi_importable python3; then return 0; fi
  if [ -n "${VIRTUAL_ENV:-}" ]; then
    log "csi is not installed in $VIRTUAL_ENV: running utils/install.sh (first use)"
    bash "$CSI_ROOT/utils/install.sh"
    return 0
  fi
  if ! _csi_importable "$CSI_ROOT/.venv/bin/python3"; then
    log "csi is not installed: running utils/install.sh (first use)"
    bash "$CSI_ROOT/utils/install.sh"
  fi
  # shellcheck disable=SC1091
  . "$CSI_ROOT/.venv/bin/activate"
}

# True if interpreter $1 finds csi and torch (without importing torch: that takes seconds).
_csi_importable() {
  "$1" -c "import importlib.util as u, sys; sys.exit(not (u.find_spec('csi') and u.find_spec('torch')))" >/dev/null 2>&1
}

# Stage 2 for one data directory: `features_stage DATA_DIR CONF NJ` copies CONF to
# DATA_DIR/hparams.yaml and extracts features (finished features are reused; a changed
# config is refused by the feature store). Skipped cheaply when neither changed.
features_stage() {
  local data=$1 conf=$2 nj=$3 signature
  [ -s "$data/dataset.txt" ] || die "$data/dataset.txt is missing: run stage 1 first"
  [ -r "$conf" ] || die "feature config $conf not found"
  signature="$(cat "$conf" "$data/dataset.txt" | cksum)"
  if already_done "$data/.stage2.done" "$signature"; then return 0; fi
  cp "$conf" "$data/hparams.yaml"
  run_tool extract_csi_features "$data" --nj "$nj"
  mark_done "$data/.stage2.done" "$signature"
}

# Stage 3/5 for one experiment: `train_stage EXP_DIR CONF [--set KEY=VALUE ...]` writes
# EXP_DIR/config/hparams.yaml from CONF and the overrides, then trains, through torchrun
# when nproc_per_node > 1 or nnodes > 1 (declared above, set by the recipe's options). An interrupted
# run resumes; a finished one is skipped; a changed config for an existing experiment is
# refused (choose another --exp).
train_stage() {
  local exp=$1 conf=$2; shift 2
  mkdir -p "$exp/config"
  run_tool make_config "$conf" "$exp/config/hparams.yaml.new" "$@"
  if [ -f "$exp/config/hparams.yaml" ] && ! cmp -s "$exp/config/hparams.yaml" "$exp/config/hparams.yaml.new"; then
    rm -f "$exp/config/hparams.yaml.new"
    die "$exp was trained with another config ($exp/config/hparams.yaml); remove it or pass another --exp"
  fi
  mv "$exp/config/hparams.yaml.new" "$exp/config/hparams.yaml"
  local signature
  signature=$(cksum < "$exp/config/hparams.yaml")
  if already_done "$exp/.train.done" "$signature"; then return 0; fi
  if [ "$nproc_per_node" -gt 1 ] || [ "$nnodes" -gt 1 ]; then
    PYTHONPATH="$CSI_ROOT${PYTHONPATH:+:$PYTHONPATH}" python3 -m torch.distributed.run \
      --nproc_per_node "$nproc_per_node" --nnodes "$nnodes" --node_rank "$node_rank" \
      --master_addr "$master_addr" --master_port "$master_port" \
      -m tools.train "$exp"
  else
    run_tool train "$exp"
  fi
  mark_done "$exp/.train.done" "$signature"
}

# Stage 6: `eval_stage MODEL_DIR QUERY REF OUT_DIR [eval_testset options]` evaluates the
# checkpoint with the best dev MAP (pt_model/g_best) or else the latest epoch, and logs the
# metrics line; embeddings are cached per checkpoint, so a re-run is cheap.
eval_stage() {
  local model=$1 query=$2 ref=$3 out=$4; shift 4
  [ -d "$model/pt_model" ] || die "no trained model in $model: run stage 3 first"
  local checkpoint=()
  [ -f "$model/pt_model/g_best" ] && checkpoint=(--checkpoint g_best)
  run_tool eval_testset "$model" "$query" "$ref" --out_dir "$out" "${checkpoint[@]}" "$@"
  log "test-set metrics: $(cat "$out/metrics.json")"
}

# Run a python tool module from the toolkit: `run_tool make_manifest --arg ...`.
run_tool() {
  local name=$1; shift
  PYTHONPATH="$CSI_ROOT${PYTHONPATH:+:$PYTHONPATH}" python3 -m "tools.$name" "$@"
}
