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
# when nproc_per_node > 1 or nnodes > 1 (declared above, set by the recipe's options).
# An experiment's inputs are its config and its data: their signature (EXP_DIR/.train.inputs,
# and the .train.done marker once finished) holds a checksum of the resolved config and of
# every file a `*_path` key of it names (train_path, each dev set's query_path/ref_path),
# with the feature-store fingerprint beside each. Same inputs: a finished run is skipped,
# an interrupted one resumes. Other inputs (config or data changed since EXP_DIR was made):
# the old experiment is moved aside to EXP_DIR.old-<YYYYmmdd-HHMMSS> with a log line (never
# resumed on other data, never deleted), and training starts anew in EXP_DIR.
train_stage() {
  local exp=$1 conf=$2; shift 2
  local new="$exp.hparams.yaml.new" signature   # beside EXP_DIR: it must not move with an old experiment
  mkdir -p "$(dirname "$exp")"
  run_tool make_config "$conf" "$new" "$@"
  signature=$(_train_signature "$new") || { rm -f "$new"; die "cannot read the data paths of the config made from $conf"; }
  if already_done "$exp/.train.done" "$signature"; then rm -f "$new"; return 0; fi
  if [ "$node_rank" -gt 0 ]; then
    _train_wait_for_node0 "$exp" "$signature"   # node 0 prepares EXP_DIR; the other nodes only join
    rm -f "$new"
  else
    if [ -f "$exp/.train.inputs" ] && [ "$(cat "$exp/.train.inputs")" = "$signature" ]; then
      log "resuming $exp: same config and data as its interrupted run"
    elif [ -d "$exp" ] && [ -n "$(ls -A "$exp")" ]; then
      _train_move_aside "$exp" "$new" "$signature"
    fi
    mkdir -p "$exp/config"
    mv "$new" "$exp/config/hparams.yaml"
    mark_done "$exp/.train.inputs" "$signature"
  fi
  if [ "$nproc_per_node" -gt 1 ] || [ "$nnodes" -gt 1 ]; then
    PYTHONPATH="$CSI_ROOT${PYTHONPATH:+:$PYTHONPATH}" python3 -m torch.distributed.run \
      --nproc_per_node "$nproc_per_node" --nnodes "$nnodes" --node_rank "$node_rank" \
      --master_addr "$master_addr" --master_port "$master_port" \
      -m tools.train "$exp"
  else
    run_tool train "$exp"
  fi
  [ "$node_rank" -gt 0 ] || mark_done "$exp/.train.done" "$signature"
}

# The inputs of a training config (train_stage): "config <cksum>" and one line per file named
# by a `*_path` key, "data KEY=PATH <cksum of the file> [fingerprint <cksum>]", where the
# fingerprint is the feature store's (cqt_feat/fingerprint.json beside the manifest), if any.
_train_signature() {
  local config=$1 key path
  printf 'config %s\n' "$(cksum < "$config")"
  python3 -c '
import sys, yaml
def walk(node, prefix):
    for key, value in node.items():
        if isinstance(value, dict):
            walk(value, f"{prefix}{key}.")
        elif str(key).endswith("_path") and isinstance(value, str) and value:
            print(f"{prefix}{key}\t{value}")
walk(yaml.safe_load(open(sys.argv[1], encoding="utf-8")) or {}, "")
' "$config" | while IFS=$'\t' read -r key path; do
    if [ -f "$path" ]; then
      printf 'data %s=%s %s' "$key" "$path" "$(cksum < "$path")"
      if [ -f "$(dirname "$path")/cqt_feat/fingerprint.json" ]; then
        printf ' fingerprint %s' "$(cksum < "$(dirname "$path")/cqt_feat/fingerprint.json")"
      fi
      printf '\n'
    else
      printf 'data %s=%s missing\n' "$key" "$path"
    fi
  done
  [ "${PIPESTATUS[0]}" -eq 0 ]
}

# Move an experiment made from other inputs to EXP.old-<YYYYmmdd-HHMMSS>, logging why.
_train_move_aside() {
  local exp=$1 new=$2 signature=$3 old reason line dest k=0
  old=$(cat "$exp/.train.inputs" 2>/dev/null || cat "$exp/.train.done" 2>/dev/null || true)
  if [ -f "$exp/config/hparams.yaml" ] && ! cmp -s "$exp/config/hparams.yaml" "$new"; then
    reason="its config differs"
  elif ! grep -q '^config ' <<< "$old"; then
    reason="it has no record of the data it was trained on"
  else
    reason="its data changed"
  fi
  dest="$exp.old-$(date +%Y%m%d-%H%M%S)"
  while [ -e "$dest" ]; do k=$((k + 1)); dest="$exp.old-$(date +%Y%m%d-%H%M%S)-$k"; done
  mv "$exp" "$dest"
  log "$exp was made from other inputs ($reason): moved aside to $dest; training anew"
  while IFS= read -r line; do
    if [ -n "$line" ] && ! grep -qxF -- "$line" <<< "$signature"; then log "  was: $line"; fi
  done <<< "$old"
  while IFS= read -r line; do
    if ! grep -qxF -- "$line" <<< "$old"; then log "  now: $line"; fi
  done <<< "$signature"
}

# Nodes other than 0 of a multi-node run wait (up to an hour) for node 0 to record the same inputs.
_train_wait_for_node0() {
  local exp=$1 signature=$2 waited=0
  until [ -f "$exp/.train.inputs" ] && [ "$(cat "$exp/.train.inputs")" = "$signature" ]; do
    [ "$waited" -lt 3600 ] || die "node $node_rank: $exp/.train.inputs does not match this node's config and data after ${waited}s (node 0 prepares the experiment)"
    sleep 5; waited=$((waited + 5))
  done
}

# Stage 6: `eval_stage MODEL_DIR QUERY REF OUT_DIR [eval_testset options]` evaluates the
# checkpoint with the best dev MAP (pt_model/g_best) or else the latest epoch beside chance
# and the non-learned baselines (--baselines all), and logs the table of their metrics;
# embeddings are cached per checkpoint, so a re-run is cheap.
eval_stage() {
  local model=$1 query=$2 ref=$3 out=$4; shift 4
  [ -d "$model/pt_model" ] || die "no trained model in $model: run stage 3 first"
  local checkpoint=() line
  [ -f "$model/pt_model/g_best" ] && checkpoint=(--checkpoint g_best)
  run_tool eval_testset "$model" "$query" "$ref" --out_dir "$out" --baselines all "${checkpoint[@]}" "$@"
  log "test-set metrics ($out/metrics.json):"
  while IFS= read -r line; do log "  $line"; done < "$out/metrics_table.txt"
}

# The checkpoint a later stage uses of MODEL_DIR: g_best if there is one, else the latest epoch.
best_checkpoint() {
  local model=$1 last
  if [ -f "$model/pt_model/g_best" ]; then echo g_best; return 0; fi
  last=$(find "$model/pt_model" -maxdepth 1 -name 'g_[0-9]*' 2>/dev/null | sort | tail -1)
  [ -n "$last" ] || die "no trained model in $model: run stage 3 first"
  basename "$last"
}

# Stage 4: `align_stage MODEL_DIR MANIFEST OUT [tools.alignment_for_frames options]` aligns
# the versions of every work of MANIFEST with the coarse model. The marker covers the
# manifest, the checkpoint and the options.
align_stage() {
  local model=$1 manifest=$2 out=$3; shift 3
  local ckpt signature
  ckpt=$(best_checkpoint "$model")
  signature="manifest $(cksum < "$manifest") checkpoint $(cksum < "$model/pt_model/$ckpt") options $*"
  if already_done "$out.done" "$signature"; then return 0; fi
  run_tool alignment_for_frames "$model" "$manifest" "$out" --checkpoint "$ckpt" "$@"
  mark_done "$out.done" "$signature"
}

# Stage 5: `fine_stage FINE_EXP CONF COARSE_EXP ALIGNMENT [--set key=value ...]`: training from
# the coarse model on chunks cut at aligned positions (train_stage: resumable; its signature
# covers the alignment file, whose header names the coarse checkpoint).
fine_stage() {
  local exp=$1 conf=$2 coarse=$3 alignment=$4; shift 4
  train_stage "$exp" "$conf" "$@" --set "fine.init_dir=$coarse" --set "fine.alignment_path=$alignment" \
    --set "fine.init_checkpoint=$(best_checkpoint "$coarse")"
}

# Stage 6 side by side: `compare_stage OUT_DIR NAME=METRICS_JSON ...` logs one table.
compare_stage() {
  local out=$1 line; shift
  run_tool compare_metrics "$@" --out_dir "$out" > /dev/null
  log "side by side ($out/comparison.txt):"
  while IFS= read -r line; do log "  $line"; done < "$out/comparison.txt"
}

# Run a python tool module from the toolkit: `run_tool make_manifest --arg ...`.
run_tool() {
  local name=$1; shift
  PYTHONPATH="$CSI_ROOT${PYTHONPATH:+:$PYTHONPATH}" python3 -m "tools.$name" "$@"
}

# ---- recipes on published splits of downloaded audio (egs/shs100k, egs/discogs_vi) --------

# `metadata_dir DIR MARK OPTION [URL ARCHIVE]` prints the directory at or under DIR (depth ≤ 3)
# holding the file MARK. When there is none and URL is given, the tar archive URL is
# downloaded to ARCHIVE (through ARCHIVE.part) and unpacked into DIR (through a temporary
# directory) first. Dies naming the path, URL and OPTION when the metadata cannot be had.
# Use as `meta=$(metadata_dir ...)` (strict mode stops the recipe when it fails).
metadata_dir() {
  local dir=$1 mark=$2 option=$3 url=${4:-} archive=${5:-} found
  found=$(_dir_holding "$dir" "$mark")
  if [ -z "$found" ] && [ -n "$url" ]; then
    log "no $mark under $dir: downloading $url"
    run_tool download "$url" "$archive" --out_dir "$dir" --no_progress >&2 \
      || die "could not download $url to $archive (offline?): fetch the metadata by hand and pass $option DIR (the directory holding $mark)"
    found=$(_dir_holding "$dir" "$mark")
    [ -n "$found" ] || die "$url unpacked into $dir holds no $mark; pass $option DIR (the directory holding $mark)"
  fi
  [ -n "$found" ] || die "no $mark at or under $dir: pass $option DIR (the directory holding $mark)${url:+ or let stage 0 download $url}"
  echo "$found"
}

_dir_holding() {
  [ -d "$1" ] || return 0
  find "$1" -maxdepth 3 -type f -name "$2" 2>/dev/null | sort | head -1 | xargs -r dirname
}

# Stage 0 audio: `youtube_audio_stage URL_LIST AUDIO_DIR JOBS RATE_LIMIT_S` downloads every
# `id<TAB>url` of URL_LIST through tools.download_youtube (resumable: finished files are kept)
# and logs how many are unavailable (AUDIO_DIR/missing.txt).
youtube_audio_stage() {
  local list=$1 audio=$2 jobs=$3 rate=$4
  run_tool download_youtube "$list" --out_dir "$audio" --jobs "$jobs" --rate_limit_s "$rate"
  log "$(wc -l < "$audio/missing.txt") of $(wc -l < "$list") recordings unavailable ($audio/missing.txt)"
}

# Log a coverage table (csi.io.coverage) line by line: `log_coverage FILE`.
log_coverage() {
  local line
  log "coverage ($1):"
  while IFS= read -r line; do log "  $line"; done < "$1"
}

# Stage 2 for DATA/{train,val,test}: `split_features DATA TRAIN_FEATURES TEST_FEATURES NJ`
# (train with TRAIN_FEATURES, val and test with TEST_FEATURES), then the leakage check.
split_features() {
  local data=$1 train_features=$2 test_features=$3 nj=$4
  features_stage "$data/train" "$train_features" "$nj"
  features_stage "$data/val" "$test_features" "$nj"
  features_stage "$data/test" "$test_features" "$nj"
  run_tool check_leakage "$data/train/full.txt" "$data/val/full.txt" "$data/test/full.txt"
}

# Stages 2-6 of a recipe with train/val/test manifests under DATA (stage 1's output):
# `split_stages DATA EXP TRAIN_CONFIG TRAIN_FEATURES TEST_FEATURES NJ [COVERS80_DATA]`.
# Features of each split (train with TRAIN_FEATURES), coarse training on train with val as
# dev set (early stopping), alignment of the training works, fine training into EXP_fine,
# and the test split all-vs-all for both models side by side; with COVERS80_DATA (the data
# directory of egs/covers80 stage 1), also the covers80 protocol (list1 against list2).
split_stages() {
  local data=$1 exp=$2 conf=$3 train_features=$4 test_features=$5 nj=$6 covers80=${7:-} model
  local dev_sets=(--set "train_path=$data/train/full.txt"
    --set "val.query_path=$data/val/full.txt" --set "val.ref_path=$data/val/full.txt"
    --set "early_stopping.dev_set=val")
  if stage_begin 2 "CQT features"; then
    split_features "$data" "$train_features" "$test_features" "$nj"
    stage_end
  fi
  if stage_begin 3 "coarse training"; then
    train_stage "$exp" "$conf" "${dev_sets[@]}"
    stage_end
  fi
  if stage_begin 4 "chunk alignment"; then
    align_stage "$exp" "$data/train/full.txt" "$exp/align/train.jsonl"
    stage_end
  fi
  if stage_begin 5 "fine training"; then
    fine_stage "${exp}_fine" "$conf" "$exp" "$exp/align/train.jsonl" "${dev_sets[@]}"
    stage_end
  fi
  if stage_begin 6 "test-set evaluation"; then
    [ -z "$covers80" ] || [ -s "$covers80/query.txt" ] \
      || die "$covers80/query.txt is missing: run egs/covers80/run.sh --stop_stage 1 --data $covers80 first"
    for model in "$exp" "${exp}_fine"; do
      [ "$model" = "$exp" ] || [ -d "$model/pt_model" ] || continue
      eval_stage "$model" "$data/test/full.txt" "$data/test/full.txt" "$model/eval_test"
      [ -z "$covers80" ] || eval_stage "$model" "$covers80/query.txt" "$covers80/ref.txt" "$model/eval_covers80"
    done
    if [ -d "${exp}_fine/pt_model" ]; then
      compare_stage "${exp}_fine" "coarse=$exp/eval_test/metrics.json" "fine=${exp}_fine/eval_test/metrics.json"
    fi
    stage_end
  fi
}
