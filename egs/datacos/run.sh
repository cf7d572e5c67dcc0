#!/usr/bin/env bash
# Da-TACOS (Yesiler et al., ISMIR 2019): train on the cover-analysis subset, evaluate on the
# benchmark subset, from the features shipped with the data set (no audio needed), and
# optionally match your own audio of the benchmark performances with a CQT model.
#
#   bash egs/datacos/run.sh --datacos_dir /data/da-tacos
#   bash egs/datacos/run.sh --datacos_dir /data/da-tacos --train_config conf/train/datacos_pcp.yaml
#   bash egs/datacos/run.sh --datacos_dir /data/da-tacos --stage 1 --stop_stage 1 \
#        --audio_dir /data/datacos_audio --audio_model exp/coverhunter     # audio route, stage 6
#
# DATACOS_DIR holds the unpacked archives: da-tacos_metadata/ (the *_subset_metadata.json
# files) and da-tacos_{benchmark,coveranalysis}_subset_single_files/W_<work>/P_<perf>.h5, or
# the per-feature archives da-tacos_<subset>_subset_<f>/W_<work>_<f>/P_<perf>_<f>.h5 (f: crema, hpcp, cens).
#
# Stages: 0 checks DATACOS_DIR (the data set is not downloaded by the recipe), 1 manifests and
# the benchmark protocol from the metadata, 2 imports the $feature PCP of every performance
# into data/<subset>/pcp_feat (front end datacos_pcp; bad files in bad.txt), 3 trains
# $train_config on cover-analysis ($dev_fraction of its works held out to pick g_best), 4-5 (alignment, fine training) are not built for PCP
# input, 6 evaluates on the benchmark (13,000 queries against 15,000 references) and, with
# --audio_dir and --audio_model, the audio route on the performances that have audio.
recipe=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$recipe/../../utils/lib.sh"

stage=0
stop_stage=6
datacos_dir=""     # the unpacked Da-TACOS archives (required)
feature=crema      # crema, hpcp or chroma_cens (12 bins)
audio_dir=""       # optional: <perf_id>.<ext> audio files of benchmark performances
audio_model=""     # optional: a model directory on audio features (e.g. CQT) for the audio route
data=$recipe/data
train_config=$CSI_ROOT/conf/train/datacos_siamese.yaml
exp=$recipe/exp/datacos_siamese
baselines=chance   # eval_testset --baselines (the CQT baselines do not read PCP features)
dev_fraction=0.05  # cover-analysis works held out as the development set (model selection, g_best)

help_message="Usage: $0 --datacos_dir DIR [--stage N] [--stop_stage N] [--feature crema|hpcp|chroma_cens] [--audio_dir DIR] [--audio_model DIR] [--data DIR] [--train_config YAML] [--exp DIR] [--nproc_per_node N] [--config FILE]"
. "$CSI_ROOT/utils/parse_options.sh"

[ -n "$datacos_dir" ] || die "give --datacos_dir DIR: the unpacked Da-TACOS archives (da-tacos_metadata/*_subset_metadata.json and da-tacos_<subset>_subset_single_files/W_*/P_*.h5); the recipe does not download them"
csi_activate

if stage_begin 0 "check the Da-TACOS copy"; then
  [ -d "$datacos_dir" ] || die "Da-TACOS directory $datacos_dir does not exist (expected da-tacos_metadata/ and da-tacos_<subset>_subset_single_files/ under it)"
  find "$datacos_dir" -name 'da-tacos_*_subset_metadata.json' | grep -q . \
    || die "no da-tacos_<subset>_subset_metadata.json under $datacos_dir (unpack da-tacos_metadata.zip there)"
  log "using the Da-TACOS copy at $datacos_dir"
  stage_end
fi

if stage_begin 1 "manifests and the benchmark protocol"; then
  [ -d "$datacos_dir" ] || die "Da-TACOS directory $datacos_dir does not exist"
  signature="$(cd "$datacos_dir" && pwd) $(find "$datacos_dir" -type f | wc -l) feature $feature audio ${audio_dir:+$(cd "$audio_dir" && pwd) $(find "$audio_dir" -type f | wc -l)}"
  if ! already_done "$data/.stage1.done" "$signature"; then
    PYTHONPATH="$CSI_ROOT${PYTHONPATH:+:$PYTHONPATH}" python3 "$recipe/local/prepare_datacos.py" "$datacos_dir" "$data" \
      --feature "$feature" ${audio_dir:+--audio_dir "$audio_dir"} || die "stage 1 failed"
    mark_done "$data/.stage1.done" "$signature"
  fi
  stage_end
fi

if stage_begin 2 "import the $feature features"; then
  for subset in coveranalysis benchmark; do
    [ -s "$data/$subset/dataset.txt" ] || die "$data/$subset/dataset.txt is missing: run stage 1 first"
    dev=()
    [ "$subset" = coveranalysis ] && dev=(--dev_fraction "$dev_fraction")
    signature="$(cksum < "$data/$subset/dataset.txt") feature $feature ${dev[*]}"
    if ! already_done "$data/$subset/.stage2.done" "$signature"; then
      PYTHONPATH="$CSI_ROOT${PYTHONPATH:+:$PYTHONPATH}" python3 "$recipe/local/import_features.py" "$data/$subset" \
        --key "$feature" "${dev[@]}" || die "stage 2 failed for $subset"
      mark_done "$data/$subset/.stage2.done" "$signature"
    fi
  done
  run_tool check_leakage "$data/coveranalysis/full.txt" "$data/benchmark/full.txt" \
    || log "WARNING: the cover-analysis and benchmark subsets share works or performances (above)"
  stage_end
fi

if stage_begin 3 "training on cover-analysis"; then
  [ -s "$data/coveranalysis/train.txt" ] || die "$data/coveranalysis/train.txt is missing: run stage 2 first"
  dev=()
  [ -s "$data/coveranalysis/dev.txt" ] && dev=(--set "dev.query_path=$data/coveranalysis/dev.txt" --set "dev.ref_path=$data/coveranalysis/dev.txt")
  train_stage "$exp" "$train_config" --set "train_path=$data/coveranalysis/train.txt" "${dev[@]}"
  stage_end
fi

stage_not_built 4 "chunk alignment (not for PCP features)"
stage_not_built 5 "fine training (not for PCP features)"

if stage_begin 6 "benchmark evaluation"; then
  if [ -z "$audio_model" ] || [ -d "$exp/pt_model" ]; then   # the feature route (only the audio one: skipped)
    [ -s "$data/benchmark/feat_query.txt" ] || die "$data/benchmark/feat_query.txt is missing: run stage 2 first"
    eval_stage "$exp" "$data/benchmark/feat_query.txt" "$data/benchmark/feat_ref.txt" "$exp/eval_benchmark" \
      --baselines "$baselines"
  else
    log "no PCP model in $exp: only the audio route is evaluated"
  fi
  if [ -n "$audio_model" ]; then
    [ -s "$data/benchmark/audio_query.txt" ] || die "no audio protocol in $data/benchmark: run stage 1 with --audio_dir"
    eval_stage "$audio_model" "$data/benchmark/audio_query.txt" "$data/benchmark/audio_ref.txt" \
      "$audio_model/eval_datacos_audio" --baselines "$baselines"
  fi
  stage_end
fi
log "done"
