#!/usr/bin/env bash
# Discogs-VI-YT recipe (Araz et al. 2024: version cliques from Discogs, audio from YouTube).
#   bash egs/discogs_vi/run.sh --discogs_dir DIR --audio_dir DIR       # metadata and audio you have
#   bash egs/discogs_vi/run.sh --discogs_dir DIR --download_audio true  # audio downloaded (pip install yt-dlp)
#   bash egs/discogs_vi/run.sh --stage 6 --covers80_data egs/covers80/data/covers80
recipe=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$recipe/../../utils/lib.sh"
. "$CSI_ROOT/utils/download.sh"

stage=0
stop_stage=6
discogs_dir=""      # directory at or under which the splits are (files, or in a .zip such as Zenodo's main.zip); empty: $download_dir/discogs_vi
discogs_url=""      # the metadata archive (a .zip, read in place, or a tar, unpacked), downloaded when discogs_dir is empty
discogs_name=""     # split file prefix; empty: Discogs-VI-YT-20240701-light.json (official) or DiscogsVI-YT-20240701-light.json (CLEWS)
download_dir=$recipe/downloads
audio_dir=""        # <yt>.<ext> or <yt[:2]>/<yt>.<ext> files (or the downloader's root holding audio/); empty: $download_dir/audio
download_audio=false  # stage 0: fetch the audio from YouTube (tools.download_youtube; pip install yt-dlp)
jobs=4              # parallel downloads (at most 10)
rate_limit_s=2      # seconds between the starts of two downloads
data=$recipe/data/discogs_vi
nj=2
train_features=$CSI_ROOT/conf/features/train.yaml
test_features=$CSI_ROOT/conf/features/test.yaml
train_config=$CSI_ROOT/conf/train/coverhunter.yaml
exp=$recipe/exp/coverhunter
covers80_data=""    # egs/covers80 stage-1 data directory: stage 6 also evaluates covers80
nproc_per_node=1 nnodes=1 node_rank=0 master_addr=127.0.0.1 master_port=29500  # training processes (torchrun)
cmd=local         # job engine of stage 2: local | "slurm [SBATCH OPTION...]"

help_message="Usage: $0 [--stage N] [--stop_stage N] [--discogs_dir DIR] [--discogs_url URL] [--discogs_name NAME] [--download_dir DIR] [--audio_dir DIR] [--download_audio true|false] [--jobs N] [--rate_limit_s S] [--nj N] [--data DIR] [--train_features YAML] [--test_features YAML] [--train_config YAML] [--exp DIR] [--covers80_data DIR] [--cmd local|'slurm OPTS'] [--nproc_per_node N] [--nnodes N --node_rank R --master_addr A --master_port P] [--config FILE]
Stages 0-1 here, 2-6 in egs/TEMPLATE/csi1/csi.sh (features, coarse training, alignment, fine training, evaluation)."
. "$CSI_ROOT/utils/parse_options.sh"

[ -n "$audio_dir" ] || audio_dir=$download_dir/audio
[ ! -d "$audio_dir/audio" ] || audio_dir=$audio_dir/audio   # the Discogs-VI downloader's root: audio/ beside logs/
case $download_audio in true|false) ;; *) die "--download_audio must be true or false, got '$download_audio'" ;; esac
csi_activate
[ -n "$discogs_dir" ] || { discogs_dir=$download_dir/discogs_vi; use_url=$discogs_url; }
prepare=(python3 "$recipe/local/prepare_discogs_vi.py")
name_args=(${discogs_name:+--name "$discogs_name"})
# the files holding the splits, relative to $discogs_dir (prepare_discogs_vi.py says what it looked for)
locate_splits() {
  "${prepare[@]}" locate "$discogs_dir" "${name_args[@]}" \
    || die "pass --discogs_dir DIR (the directory at or under which the splits are)${use_url:+; $use_url did not hold them}"
}

if stage_begin 0 "Discogs-VI-YT metadata (and audio with --download_audio true)"; then
  if [ -n "${use_url:-}" ] && ! "${prepare[@]}" locate "$discogs_dir" "${name_args[@]}" >/dev/null 2>&1; then
    log "no splits under $discogs_dir: downloading $use_url"
    archive=$(basename "${use_url%%\?*}")
    case $archive in
      *.zip|*.ZIP) dl=("$discogs_dir/$archive") ;;    # read in place
      *) dl=("$download_dir/discogs_vi.tar.gz" --out_dir "$discogs_dir") ;;
    esac
    run_tool download "$use_url" "${dl[@]}" --no_progress >&2 \
      || die "could not download $use_url (offline?): fetch the metadata by hand and pass --discogs_dir DIR (the directory at or under which the splits are)"
  fi
  meta_files=$(locate_splits)
  log "Discogs-VI-YT splits: $meta_files (under $discogs_dir)"
  if [ "$download_audio" = true ]; then
    "${prepare[@]}" urls "$discogs_dir" "$download_dir/urls.tsv" "${name_args[@]}"
    youtube_audio_stage "$download_dir/urls.tsv" "$audio_dir" "$jobs" "$rate_limit_s"
  fi
  stage_end
fi

if stage_begin 1 "JSONL manifests of the audio present, coverage of each split"; then
  meta_files=$(locate_splits)
  present_audio_manifests "$data" "$discogs_dir" "$audio_dir" "$meta_files" \
    "${prepare[@]}" manifests "$discogs_dir" "$audio_dir" "$data" "${name_args[@]}" --no_progress
  stage_end
fi

[ -z "$covers80_data" ] || [ "$stop_stage" -lt 6 ] || [ -s "$covers80_data/dataset.txt" ] \
  || die "$covers80_data/dataset.txt is missing: run egs/covers80/run.sh --stop_stage 1 --data $covers80_data first"
"$CSI_ROOT/egs/TEMPLATE/csi1/csi.sh" --stage "$stage" --stop_stage "$stop_stage" --nj "$nj" --data "$data" --exp "$exp" \
  --train_config "$train_config" --train_features "$train_features" --test_features "$test_features" \
  ${covers80_data:+--extra_eval "covers80_all_vs_all=$covers80_data/dataset.txt:$covers80_data/dataset.txt"} \
  --nproc_per_node "$nproc_per_node" --nnodes "$nnodes" --node_rank "$node_rank" --master_addr "$master_addr" --master_port "$master_port" --cmd "$cmd"
log "done"
