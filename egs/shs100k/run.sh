#!/usr/bin/env bash
# SHS100K recipe (SHS100K2 splits, Yu et al. 2019; the CoverHunter paper's training set).
#   bash egs/shs100k/run.sh --shs_dir DIR --audio_dir DIR                 # metadata and audio you have
#   bash egs/shs100k/run.sh --download_audio true                          # metadata and audio downloaded
#   bash egs/shs100k/run.sh --stage 6 --covers80_data egs/covers80/data/covers80   # + covers80 with this model
recipe=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$recipe/../../utils/lib.sh"
. "$CSI_ROOT/utils/download.sh"

stage=0
stop_stage=6
shs_dir=""          # directory holding SHS100K-TRAIN/-VAL/-TEST and list; empty: download into $download_dir/shs100k
shs_url=https://github.com/NovaFrost/SHS100K2/archive/refs/heads/master.tar.gz
download_dir=$recipe/downloads
audio_dir=""        # <set_id>_<ver_id>.<ext> files or CLEWS's <id[:2]>/<set_id>-<ver_id>.<ext>; empty: $download_dir/audio
download_audio=false  # stage 0: fetch the audio from YouTube (tools.download_youtube; pip install yt-dlp)
jobs=4              # parallel downloads (at most 10)
rate_limit_s=2      # seconds between the starts of two downloads
data=$recipe/data/shs100k
nj=2
train_features=$CSI_ROOT/conf/features/train.yaml
test_features=$CSI_ROOT/conf/features/test.yaml
train_config=$CSI_ROOT/conf/train/coverhunter.yaml
exp=$recipe/exp/coverhunter
covers80_data=""    # egs/covers80 stage-1 data directory: stage 6 also evaluates covers80
nproc_per_node=1 nnodes=1 node_rank=0 master_addr=127.0.0.1 master_port=29500  # training processes (torchrun)
cmd=local         # job engine of stage 2: local | "slurm [SBATCH OPTION...]"

help_message="Usage: $0 [--stage N] [--stop_stage N] [--shs_dir DIR] [--shs_url URL] [--download_dir DIR] [--audio_dir DIR] [--download_audio true|false] [--jobs N] [--rate_limit_s S] [--nj N] [--data DIR] [--train_features YAML] [--test_features YAML] [--train_config YAML] [--exp DIR] [--covers80_data DIR] [--cmd local|'slurm OPTS'] [--nproc_per_node N] [--nnodes N --node_rank R --master_addr A --master_port P] [--config FILE]
Stages 0-1 here, 2-6 in egs/TEMPLATE/csi1/csi.sh (features, coarse training, alignment, fine training, evaluation)."
. "$CSI_ROOT/utils/parse_options.sh"

[ -n "$audio_dir" ] || audio_dir=$download_dir/audio
case $download_audio in true|false) ;; *) die "--download_audio must be true or false, got '$download_audio'" ;; esac
csi_activate
meta_args=(SHS100K-TRAIN --shs_dir)
[ -n "$shs_dir" ] || { shs_dir=$download_dir/shs100k; meta_args+=("$shs_url" "$download_dir/shs100k.tar.gz"); }

if stage_begin 0 "SHS100K metadata (and audio with --download_audio true)"; then
  meta=$(metadata_dir "$shs_dir" "${meta_args[@]}")
  log "SHS100K metadata: $meta"
  if [ "$download_audio" = true ]; then
    python3 "$recipe/local/prepare_shs100k.py" urls "$meta" "$download_dir/urls.tsv"
    youtube_audio_stage "$download_dir/urls.tsv" "$audio_dir" "$jobs" "$rate_limit_s"
  fi
  stage_end
fi

if stage_begin 1 "JSONL manifests of the audio present, coverage of each split"; then
  meta=$(metadata_dir "$shs_dir" SHS100K-TRAIN --shs_dir)
  present_audio_manifests "$data" "$meta" "$audio_dir" "SHS100K-TRAIN SHS100K-VAL SHS100K-TEST" \
    python3 "$recipe/local/prepare_shs100k.py" manifests "$meta" "$audio_dir" "$data" --no_progress
  stage_end
fi

[ -z "$covers80_data" ] || [ "$stop_stage" -lt 6 ] || [ -s "$covers80_data/dataset.txt" ] \
  || die "$covers80_data/dataset.txt is missing: run egs/covers80/run.sh --stop_stage 1 --data $covers80_data first"
"$CSI_ROOT/egs/TEMPLATE/csi1/csi.sh" --stage "$stage" --stop_stage "$stop_stage" --nj "$nj" --data "$data" --exp "$exp" \
  --train_config "$train_config" --train_features "$train_features" --test_features "$test_features" \
  ${covers80_data:+--extra_eval "covers80_all_vs_all=$covers80_data/dataset.txt:$covers80_data/dataset.txt"} \
  --nproc_per_node "$nproc_per_node" --nnodes "$nnodes" --node_rank "$node_rank" --master_addr "$master_addr" --master_port "$master_port" --cmd "$cmd"
log "done"
