#!/usr/bin/env bash
# Stage functions of the CSI recipe template (egs/TEMPLATE/csi1/csi.sh), on top of
# utils/lib.sh (log, die, already_done, mark_done, run_tool, run_jobs, sharded_tool, log_command):
#
#   features_stage DATA_DIR FEATURES NJ                 stage 2 of one data directory
#   train_stage EXP_DIR CONF [--set KEY=VALUE ...]      stages 3 and 5 (resumable, exp/<name>/run.sh)
#   align_stage MODEL_DIR MANIFEST OUT [options]        stage 4
#   fine_stage FINE_EXP CONF COARSE_EXP ALIGNMENT [--set ...]   stage 5
#   eval_stage MODEL_DIR QUERY REF OUT_DIR [options]    stage 6, one evaluation
#   compare_stage OUT_DIR NAME=METRICS_JSON ...         stage 6, models side by side
#
# Sourced after utils/lib.sh (csi.sh does both); declares the training-process defaults.

# Training processes (train_stage runs torchrun when more than one process is asked for).
nproc_per_node=${nproc_per_node:-1}  # processes per node (gloo on CPU, nccl on GPU)
nnodes=${nnodes:-1}
node_rank=${node_rank:-0}
master_addr=${master_addr:-127.0.0.1}
master_port=${master_port:-29500}
# Stage 2 with a feature importer instead of tools.extract_csi_features (csi.sh --features_cmd).
features_cmd=${features_cmd:-}

# Progress bars only on a terminal: a bar written into a log file is one huge line.
_progress=()
[ -t 2 ] || _progress=(--no_progress)

# Stage 2 for one data directory: `features_stage DATA_DIR FEATURES NJ` copies the feature
# config FEATURES to DATA_DIR/hparams.yaml and extracts features (tools.extract_csi_features:
# finished features are reused; a changed config is refused by the feature store), as NJ
# shard jobs on $cmd (utils/lib.sh run_jobs; logs in DATA_DIR/log/) merged when all succeeded. With
# features_cmd set, FEATURES are the importer's arguments instead: `features_cmd DATA_DIR
# FEATURES` (e.g. egs/datacos: HDF5 features shipped with the data set). Skipped cheaply
# when neither the inputs nor the config changed.
features_stage() {
  local data=$1 features=$2 nj=$3 signature
  [ -s "$data/dataset.txt" ] || die "$data/dataset.txt is missing: run stage 1 first"
  if [ -n "$features_cmd" ]; then
    signature="$(cksum < "$data/dataset.txt") import $features_cmd $features"
    if already_done "$data/.stage2.done" "$signature"; then return 0; fi
    # shellcheck disable=SC2086  # the command and its arguments are word lists
    set -- $features_cmd "$data" $features
    log_command "$@"
    PYTHONPATH="$CSI_ROOT${PYTHONPATH:+:$PYTHONPATH}" "$@" || die "stage 2 failed for $data"
  else
    [ -r "$features" ] || die "feature config $features not found"
    signature="$(cat "$features" "$data/dataset.txt" | cksum)"
    if already_done "$data/.stage2.done" "$signature"; then return 0; fi
    cp "$features" "$data/hparams.yaml"
    if [ "$nj" -gt 1 ]; then           # NJ jobs on $cmd (local processes, or Slurm array tasks), then the merge
      sharded_tool "stage 2" "$data/log/features.JOB.log" "$signature" extract_csi_features "$data"
    else
      run_tool extract_csi_features "$data" "${_progress[@]}"
    fi
  fi
  mark_done "$data/.stage2.done" "$signature"
}

# Stage 3/5 for one experiment: `train_stage EXP_DIR CONF [--set KEY=VALUE ...]` writes
# EXP_DIR/config/hparams.yaml from CONF and the overrides, and EXP_DIR/run.sh, the command
# that runs (resumes) exactly this training; then trains, through torchrun when
# nproc_per_node > 1 or nnodes > 1.
# An experiment's inputs are its config and its data: their signature (EXP_DIR/.train.inputs,
# and the .train.done marker once finished) holds a checksum of the resolved config and of
# every file a `*_path` key of it names (train_path, each dev set's query_path/ref_path),
# with the feature-store fingerprint beside each. Same inputs: a finished run is skipped,
# an interrupted one resumes. Other inputs (config or data changed since EXP_DIR was made):
# the old experiment is moved aside to EXP_DIR.old-<YYYYmmdd-HHMMSS> with a log line (never
# resumed on other data, never deleted), and training starts anew in EXP_DIR.
train_stage() {
  local exp=$1 conf=$2; shift 2
  # beside EXP_DIR (it must not move with an old experiment), one per node: the nodes share EXP_DIR
  local new="$exp.hparams.yaml.node$node_rank.new" signature
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
    local torchrun=(python3 -m torch.distributed.run --nproc_per_node "$nproc_per_node" --nnodes "$nnodes"
      --node_rank "$node_rank" --master_addr "$master_addr" --master_port "$master_port" -m tools.train)
    [ "$node_rank" -gt 0 ] || _write_run_script "$exp" "${torchrun[@]}"
    log_command "${torchrun[@]}" "$exp"
    PYTHONPATH="$CSI_ROOT${PYTHONPATH:+:$PYTHONPATH}" "${torchrun[@]}" "$exp"
  else
    _write_run_script "$exp" python3 -m tools.train
    run_tool train "$exp"
  fi
  [ "$node_rank" -gt 0 ] || mark_done "$exp/.train.done" "$signature"
}

# `_write_run_script EXP_DIR COMMAND...` writes EXP_DIR/run.sh: COMMAND EXP_DIR (absolute)
# run from the current directory (a config's relative paths stay valid) in the toolkit's
# environment. Running it again resumes the training from its last checkpoint; the recipe's
# next run then finds the experiment finished and marks it done.
_write_run_script() {
  local exp=$1; shift
  local dir abs cmd
  dir=$(pwd)
  abs=$(cd "$exp" && pwd)
  printf -v cmd '%q ' "$@" "$abs"
  {
    printf '#!/usr/bin/env bash\n'
    printf '# Runs (resumes) the training of %s, as %s wrote it on %s.\n' "$abs" "$(basename "$0")" "$(date '+%Y-%m-%d %H:%M:%S')"
    printf '# A second run resumes from the last checkpoint; a finished training ends at once.\n'
    printf '. %q\n' "$CSI_ROOT/utils/lib.sh"
    printf 'csi_activate\n'
    printf 'cd %q\n' "$dir"
    printf 'export PYTHONPATH=%q${PYTHONPATH:+:$PYTHONPATH}\n' "$CSI_ROOT"
    printf '%s\n' "${cmd% }"
  } > "$exp/.run.sh.tmp"
  chmod +x "$exp/.run.sh.tmp"
  mv "$exp/.run.sh.tmp" "$exp/run.sh"
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

# The checkpoint file the tools use of MODEL_DIR without --checkpoint (csi.modeldir): pt_model/g_best
# if there is one, else the latest epoch; for done markers. Dies when MODEL_DIR holds no trained model.
model_checkpoint() {
  local model=$1 last
  if [ -f "$model/pt_model/g_best" ]; then echo "$model/pt_model/g_best"; return 0; fi
  last=$(find "$model/pt_model" -maxdepth 1 -name 'g_[0-9]*' 2>/dev/null | sort | tail -1)
  [ -n "$last" ] || die "no trained model in $model: run stage 3 first"
  echo "$last"
}

# Stage 4: `align_stage MODEL_DIR MANIFEST OUT [tools.alignment_for_frames options]` aligns
# the versions of every work of MANIFEST with the coarse model. The marker covers the
# manifest, the checkpoint file (g_best, else the latest epoch) and the options.
align_stage() {
  local model=$1 manifest=$2 out=$3; shift 3
  local ckpt signature
  ckpt=$(model_checkpoint "$model")
  [ -s "$manifest" ] || die "$manifest is missing: run stage 2 first"
  signature="manifest $(cksum < "$manifest") checkpoint $(cksum < "$ckpt") options $*"
  if already_done "$out.done" "$signature"; then return 0; fi
  # the tool's default checkpoint: g_best, else the latest; with nj > 1, NJ jobs on $cmd, then the merge
  if [ "${nj:-1}" -gt 1 ]; then
    sharded_tool "stage 4" "$(dirname "$out")/log/align.JOB.log" "$signature" alignment_for_frames \
      "$model" "$manifest" "$out" "$@"
  else
    run_tool alignment_for_frames "$model" "$manifest" "$out" "$@" "${_progress[@]}"
  fi
  mark_done "$out.done" "$signature"
}

# Stage 5: `fine_stage FINE_EXP CONF COARSE_EXP ALIGNMENT [--set key=value ...]`: training from
# the coarse model on chunks cut at aligned positions (train_stage: resumable; its signature
# covers the alignment file, whose header names the coarse checkpoint).
fine_stage() {
  local exp=$1 conf=$2 coarse=$3 alignment=$4; shift 4
  model_checkpoint "$coarse" > /dev/null   # dies when the coarse model is missing
  [ -s "$alignment" ] || die "$alignment is missing: run stage 4 first"
  # fine.init_checkpoint is left to its default: g_best, else the latest epoch (csi.modeldir)
  train_stage "$exp" "$conf" "$@" --set "fine.init_dir=$coarse" --set "fine.alignment_path=$alignment"
}

# Stage 6: `eval_stage MODEL_DIR QUERY REF OUT_DIR [eval_testset options]` evaluates the
# checkpoint with the best dev MAP (pt_model/g_best) or else the latest epoch (the tool's
# default), and logs the
# table of its metrics (beside chance and the baselines asked for with --baselines);
# embeddings are cached per checkpoint, so a re-run is cheap.
eval_stage() {
  local model=$1 query=$2 ref=$3 out=$4; shift 4
  [ -d "$model/pt_model" ] || die "no trained model in $model: run stage 3 first"
  run_tool eval_testset "$model" "$query" "$ref" --out_dir "$out" "$@" "${_progress[@]}"
  log_lines "test-set metrics ($out/metrics.json):" "$out/metrics_table.txt"
}

# Stage 6 side by side: `compare_stage OUT_DIR NAME=METRICS_JSON ...` logs one table.
compare_stage() {
  local out=$1; shift
  run_tool compare_metrics "$@" --out_dir "$out" > /dev/null
  log_lines "side by side ($out/comparison.txt):" "$out/comparison.txt"
}
