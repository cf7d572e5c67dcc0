#!/usr/bin/env bash
# Stages 2-6 of a cover-song-identification recipe (ESPnet-style template): a recipe's
# run.sh prepares its data directories (stages 0-1: download, JSONL manifests) and calls
#
#   egs/TEMPLATE/csi1/csi.sh --data DATA --exp EXP --train_config YAML [options]
#
#   2 features    DATA/<set>/dataset.txt -> full.txt for the train, valid and test sets
#                 (tools.extract_csi_features, or --features_cmd), then tools.check_leakage
#                 of train and valid against each test set
#   3 coarse      tools.train EXP (EXP/run.sh re-runs it), dev sets: valid (model selection) + --dev_sets
#   4 alignment   tools.alignment_for_frames of the training works with the coarse model
#   5 fine        tools.train EXP_fine from the coarse model on chunks cut at aligned positions
#   6 evaluation  tools.eval_testset of both models on each test set (all-vs-all) and each
#                 --extra_eval, beside chance and the baselines; tools.compare_metrics
#
# Every stage logs the command lines it runs and is idempotent: a done marker holds a
# signature of its inputs (data and config), so a re-run skips what is done, resumes an
# interrupted training and moves aside an experiment made from other inputs (stages.sh).
# Set lists are separated by spaces (no spaces inside the paths).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/../../../utils/lib.sh"  # strict mode, log, stage guards, run_tool
. "$CSI_ROOT/egs/TEMPLATE/csi1/stages.sh"   # stage functions; training-process defaults

stage=2
stop_stage=6
nj=2                 # feature extraction jobs (stage 2), run on --cmd
cmd=local            # job engine: local | "slurm [SBATCH OPTION...]" (utils/lib.sh run_jobs)
data=""              # (required) the data directories' parent: DATA/<set>/dataset.txt
exp=""               # (required) coarse experiment; the fine one is EXP_fine
train_config=""      # (required) training config (conf/train/*.yaml) of both trainings
train_features=$CSI_ROOT/conf/features/train.yaml  # feature config of the train set
test_features=$CSI_ROOT/conf/features/test.yaml    # feature config of the valid and test sets
# features_cmd=""    # (stages.sh) an importer run as `CMD DATA/<set> ARGS` instead of feature
#                    # extraction; --train_features/--test_features are then its ARGS
train_set=train      # trained on DATA/<train_set>/full.txt ("." : DATA itself)
train_manifest=""    # the training manifest; empty: DATA/<train_set>/full.txt
valid_set=val        # dev set picking the model (dev MAP, early stopping, g_best); "" for none
test_sets=test       # NAME[=QUERY:REF] ...: features, leakage check, stage 6 (QUERY, REF: files
                     # in DATA/NAME; default full.txt all-vs-all) into <model>/eval_NAME
dev_sets=""          # NAME=QUERY[:REF] ...: more dev sets of both trainings (scored, not
                     # used for selection); left out while QUERY is missing or empty
leakage=fail         # fail | warn: a leakage check that finds shared works or recordings
align_chunk_s=""     # stage 4 chunk length and hop (s); empty: tools.alignment_for_frames's
align_hop_s=""
align_plot_work=""   # stage 4 draws this work's alignment ("first": the manifest's first work)
fine_steps=""        # stage 5 optimizer steps (max_epochs 1000) and learning rate; empty: the config's
fine_lr=""
fine_not_built=""    # a reason: stages 4-5 are not built for this recipe (skipped; an error if asked for)
model_dir=""         # a model trained elsewhere: stages 3-5 skipped, stage 6 evaluates it
extra_eval=""        # NAME=QUERY[:REF] ...: more stage-6 evaluations of both models (manifests)
extra_model=""       # another model evaluated in stage 6 on --extra_model_eval (e.g. on audio)
extra_model_eval=""  # NAME=QUERY[:REF] ... for --extra_model (EXTRA_MODEL/eval_NAME)
baselines=all        # tools.eval_testset --baselines (chance always)
eval_plot=false      # stage 6 draws distance histograms and embedding PCA (eval_*/ *.png)
learning_curve=false # stage 6 plots the coarse model's dev MAP curve beside the first evaluation

help_message="Usage: $0 --data DIR --exp DIR --train_config YAML [--stage N] [--stop_stage N] [--nj N] [--cmd local|'slurm OPTS']
  [--train_features YAML] [--test_features YAML] [--features_cmd CMD] [--train_set NAME] [--train_manifest FILE]
  [--valid_set NAME] [--test_sets 'NAME[=QUERY:REF] ...'] [--dev_sets 'NAME=QUERY[:REF] ...'] [--leakage fail|warn]
  [--align_chunk_s S] [--align_hop_s S] [--align_plot_work WORK|first] [--fine_steps N] [--fine_lr LR]
  [--fine_not_built REASON] [--model_dir DIR] [--extra_eval 'NAME=QUERY[:REF] ...'] [--extra_model DIR]
  [--extra_model_eval 'NAME=QUERY[:REF] ...'] [--baselines NAMES] [--eval_plot true|false]
  [--learning_curve true|false] [--nproc_per_node N] [--nnodes N] [--node_rank R] [--master_addr A]
  [--master_port P] [--config FILE]
Stages 2 features, 3 coarse training, 4 chunk alignment, 5 fine training, 6 evaluation (see the top of $0)."
. "$CSI_ROOT/utils/parse_options.sh"

[ -n "$data" ] && [ -n "$exp" ] || die "give --data DIR and --exp DIR (see --help)"
case $leakage in fail|warn) ;; *) die "--leakage must be fail or warn, got '$leakage'" ;; esac
if [ -n "$model_dir" ]; then
  [ -d "$model_dir/pt_model" ] || die "--model_dir $model_dir holds no trained model (pt_model/)"
  log "--model_dir $model_dir: stages 3-5 skipped, stage 6 evaluates it"
  exp=$model_dir
elif [ "$stop_stage" -ge 3 ] && [ "$stage" -le 5 ]; then
  [ -r "$train_config" ] || die "training config '$train_config' not found (--train_config)"
fi
csi_activate

set_dir() { if [ "$1" = . ]; then echo "$data"; else echo "$data/$1"; fi; }
train_dir=$(set_dir "$train_set")
[ -n "$train_manifest" ] || train_manifest=$train_dir/full.txt
evals=()            # NAME QUERY REF of each evaluation of the coarse and fine models
for spec in $test_sets; do
  name=${spec%%=*} lists=${spec#*=}
  [ "$name" != "$spec" ] || lists=full.txt
  evals+=("$name" "$(set_dir "$name")/${lists%%:*}" "$(set_dir "$name")/${lists#*:}")
done
for spec in $extra_eval; do
  lists=${spec#*=}
  evals+=("${spec%%=*}" "${lists%%:*}" "${lists#*:}")
done

# the overrides of both trainings: the training manifest, then the dev sets (QUERY[:REF])
dev_overrides() {
  local spec name lists query
  printf '%s\n' --set "train_path=$train_manifest"
  if [ -n "$valid_set" ]; then
    query=$(set_dir "$valid_set")/full.txt
    printf '%s\n' --set "$valid_set.query_path=$query" --set "$valid_set.ref_path=$query"
  fi
  for spec in $dev_sets; do
    name=${spec%%=*} lists=${spec#*=} query=${lists%%:*}
    if [ ! -s "$query" ]; then log "dev set $name: $query is missing or empty: left out"; continue; fi
    printf '%s\n' --set "$name.query_path=$query" --set "$name.ref_path=${lists#*:}"
  done
  [ -z "$valid_set" ] || printf '%s\n' --set "early_stopping.dev_set=$valid_set"
}

if stage_begin 2 "$([ -z "$features_cmd" ] && echo "CQT features" || echo "features: ${features_cmd##*/}")"; then
  features_stage "$train_dir" "$train_features" "$nj"
  for name in $valid_set; do features_stage "$(set_dir "$name")" "$test_features" "$nj"; done
  for spec in $test_sets; do features_stage "$(set_dir "${spec%%=*}")" "$test_features" "$nj"; done
  for spec in $test_sets; do   # train and valid must share no work or recording with any test set
    sets=("$train_dir/full.txt")
    [ -z "$valid_set" ] || sets+=("$(set_dir "$valid_set")/full.txt")
    run_tool check_leakage "${sets[@]}" "$(set_dir "${spec%%=*}")/full.txt" \
      || { [ "$leakage" = warn ] || die "leakage between the sets above"; log "WARNING: ${sets[*]} and ${spec%%=*} share works or recordings (above)"; }
  done
  stage_end
fi

if [ -z "$model_dir" ] && stage_begin 3 "coarse training"; then
  [ -s "$train_manifest" ] || die "$train_manifest is missing: run stage 2 first"
  mapfile -t overrides < <(dev_overrides)
  train_stage "$exp" "$train_config" "${overrides[@]}"
  stage_end
fi

if [ -z "$model_dir" ] && [ -n "$fine_not_built" ]; then
  stage_not_built 4 "chunk alignment ($fine_not_built)"
  stage_not_built 5 "fine training ($fine_not_built)"
fi

if [ -z "$model_dir$fine_not_built" ] && stage_begin 4 "chunk alignment"; then
  options=(${align_chunk_s:+--chunk_s "$align_chunk_s"} ${align_hop_s:+--hop_s "$align_hop_s"})
  work=$align_plot_work
  if [ "$work" = first ] && [ -s "$train_manifest" ]; then
    work=$(head -1 "$train_manifest" | python3 -c 'import json, sys; print(json.load(sys.stdin)["song"])')
  fi
  [ -z "$work" ] || options+=(--plot_work "$work")
  align_stage "$exp" "$train_manifest" "$exp/align/train.jsonl" "${options[@]}"
  stage_end
fi

if [ -z "$model_dir$fine_not_built" ] && stage_begin 5 "fine training"; then
  mapfile -t overrides < <(dev_overrides)
  [ -z "$fine_steps" ] || overrides+=(--set "max_steps=$fine_steps" --set "max_epochs=1000")
  [ -z "$fine_lr" ] || overrides+=(--set "learning_rate=$fine_lr")
  fine_stage "${exp}_fine" "$train_config" "$exp" "$exp/align/train.jsonl" "${overrides[@]}"
  stage_end
fi

if stage_begin 6 "test-set evaluation"; then
  options=(--baselines "$baselines")
  [ "$eval_plot" = false ] || options+=(--plot)
  models=("$exp")
  [ -n "$model_dir" ] || [ ! -d "${exp}_fine/pt_model" ] || models+=("${exp}_fine")
  if [ -n "$extra_model" ] && [ ! -d "$exp/pt_model" ]; then
    log "no model in $exp: only $extra_model is evaluated"
    models=()
  fi
  for model in "${models[@]}"; do
    for ((i = 0; i < ${#evals[@]}; i += 3)); do
      [ -s "${evals[i + 1]}" ] || die "${evals[i + 1]} is missing (evaluation ${evals[i]}; stage 2 writes the test sets' full.txt)"
      eval_stage "$model" "${evals[i + 1]}" "${evals[i + 2]}" "$model/eval_${evals[i]}" "${options[@]}"
    done
    if [ "$model" = "$exp" ] && [ "$learning_curve" = true ] && [ ${#evals[@]} -gt 0 ]; then
      run_tool plot_learning_curve "$exp" --references "$exp/eval_${evals[0]}/metrics.json" --out "$exp/learning_curve.png"
    fi
  done
  if [ ${#models[@]} -gt 1 ] && [ ${#evals[@]} -gt 0 ]; then
    compare_stage "${exp}_fine" "coarse=$exp/eval_${evals[0]}/metrics.json" "fine=${exp}_fine/eval_${evals[0]}/metrics.json"
  fi
  for spec in $extra_model_eval; do
    name=${spec%%=*} lists=${spec#*=}
    eval_stage "$extra_model" "${lists%%:*}" "${lists#*:}" "$extra_model/eval_$name" "${options[@]}"
  done
  stage_end
fi
