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
nproc_per_node=1 nnodes=1 node_rank=0 master_addr=127.0.0.1 master_port=29500  # training processes (torchrun)
cmd=local         # job engine of stage 2: local | "slurm [SBATCH OPTION...]"

help_message="Usage: $0 --datacos_dir DIR [--stage N] [--stop_stage N] [--feature crema|hpcp|chroma_cens] [--audio_dir DIR] [--audio_model DIR] [--data DIR] [--train_config YAML] [--exp DIR] [--baselines NAMES] [--dev_fraction F] [--cmd local|'slurm OPTS'] [--nproc_per_node N] [--nnodes N --node_rank R --master_addr A --master_port P] [--config FILE]
Stages 0-1 here, 2-6 in egs/TEMPLATE/csi1/csi.sh (feature import, training, evaluation)."
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

# stage 6: the feature route with $exp, and with --audio_model the audio route (only that one
# when $exp holds no model); $dev_fraction of the cover-analysis works make the dev set (g_best)
[ -z "$audio_model" ] || [ "$stop_stage" -lt 6 ] || [ -s "$data/benchmark/audio_query.txt" ] \
  || die "no audio protocol in $data/benchmark: run stage 1 with --audio_dir"
CSI_GIVEN_OPTIONS="${parsed_options[*]:-}" "$CSI_ROOT/egs/TEMPLATE/csi1/csi.sh" --stage "$stage" --stop_stage "$stop_stage" \
  --data "$data" --exp "$exp" --train_config "$train_config" --features_cmd "python3 $recipe/local/import_features.py" \
  --train_features "--key $feature --dev_fraction $dev_fraction" --test_features "--key $feature" \
  --train_set coveranalysis --train_manifest "$data/coveranalysis/train.txt" --valid_set "" \
  --dev_sets "dev=$data/coveranalysis/dev.txt" --test_sets "benchmark=feat_query.txt:feat_ref.txt" --leakage warn \
  --fine_not_built "not for PCP features" --baselines "$baselines" \
  ${audio_model:+--extra_model "$audio_model" --extra_model_eval "datacos_audio=$data/benchmark/audio_query.txt:$data/benchmark/audio_ref.txt"} \
  --nproc_per_node "$nproc_per_node" --nnodes "$nnodes" --node_rank "$node_rank" --master_addr "$master_addr" --master_port "$master_port" --cmd "$cmd"
log "done"
