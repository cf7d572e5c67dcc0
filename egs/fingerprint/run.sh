#!/usr/bin/env bash
# Neural audio fingerprinting (after Chang et al. 2021; audiofp/): which recording, and where, a few
# noisy seconds come from. Offline by default: the demo's train and val recordings train it, its test
# recordings are the references; stage 5 measures hit rates beside landmark hashing and audfprint.
#   bash egs/fingerprint/run.sh [--audio_dir DIR] [--noise_dir N --ir_dir I]   # ~8 min on 2 cores
recipe=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$recipe/../../utils/lib.sh"

stage=0
stop_stage=5
works=60          # demo works rendered in stage 0 (without --audio_dir)
audio_dir=""      # your audio instead of the demo corpus
noise_dir=""      # background noises for training (empty: generated coloured noise and babble)
ir_dir=""         # room impulse responses for training (empty: generated synthetic rooms)
segments=5        # 1-s training segments a file
train_fraction=0.8
epochs=40
batch_size=64
optim=adam        # adam | lamb
max_minutes=8     # training wall time (stops after the epoch)
hop_s=0.25        # database: a fingerprint every hop_s seconds (the seed: 0.5; see the README)
per_cell=40       # evaluation queries a (length, SNR)
nj=1 cmd=local    # stage 4: fingerprint jobs over the references, on the engine cmd (local | "slurm OPTS")
peers=audfprint   # other projects' fingerprinters on the same queries (audiofp.peers; "" for none)
exp=$recipe/exp/fingerprint
data=$recipe/data

help_message="Usage: $0 [--stage N] [--stop_stage N] [--works N] [--audio_dir DIR] [--noise_dir DIR] [--ir_dir DIR] [--segments N] [--train_fraction F] [--epochs N] [--batch_size N] [--optim adam|lamb] [--max_minutes M] [--hop_s S] [--nj N] [--cmd local|'slurm OPTS'] [--per_cell N] [--peers 'audfprint'] [--exp DIR] [--data DIR]"
. "$CSI_ROOT/utils/parse_options.sh"
csi_activate
corpus=$recipe/downloads/synthcovers_w${works}

if stage_begin 0 "audio"; then
  if [ -n "$audio_dir" ]; then [ -d "$audio_dir" ] || die "--audio_dir $audio_dir: not a directory"; log "using $audio_dir"
  else run_once "$corpus/.stage0.done" "works=$works" run_tool make_synth_covers --out_dir "$corpus" --works "$works" --seed 0 --nj 2; fi
  stage_end
fi

source_list=${audio_dir:-$corpus/dataset.txt}
split_audio() { rm -rf "$data/train_audio" "$data/ref_audio"; python3 "$recipe/local/split_audio.py" "$source_list" "$data"; }
if stage_begin 1 "training audio and held-out references"; then
  run_once "$data/.stage1.done" "$source_list $( [ -f "$source_list" ] && cksum < "$source_list" || ls -R "$source_list" | cksum)" split_audio
  stage_end
fi

training_pairs() {
  rm -rf "$exp/dataset"
  run_tool generate_training_dataset --input "$data/train_audio" --segments "$segments" --train_fraction "$train_fraction" \
    ${ir_dir:+--ir_dir "$ir_dir"} ${noise_dir:+--noise_dir "$noise_dir"} --out_dir "$exp/dataset" --no_progress
}
if stage_begin 2 "training pairs (static augmentation)"; then
  run_once "$exp/dataset/.stage2.done" "$(ls -l "$data/train_audio" | cksum) n=$segments tr=$train_fraction ir=$ir_dir bn=$noise_dir" training_pairs
  stage_end
fi

if stage_begin 3 "training the fingerprinter"; then
  run_once "$exp/model/.stage3.done" "$(cat "$exp/dataset/.stage2.done") ep=$epochs bs=$batch_size optim=$optim min=$max_minutes" \
    run_tool train_fingerprinter --epochs "$epochs" --batch_size "$batch_size" --optim "$optim" --max_minutes "$max_minutes" \
    --out_dir "$exp/model" --no_progress static --train_path "$exp/dataset/train_set" --val_path "$exp/dataset/val_set"
  stage_end
fi

database() {
  local fp=(generate_fingerprints "$exp/model" "$data/ref_audio" --out_dir "$exp/fingerprints" --hop_s "$hop_s")
  if [ "$nj" -gt 1 ]; then sharded_tool "stage 4" "$exp/log/fingerprints.JOB.log" "$(cat "$exp/model/.stage3.done")" "${fp[@]}"
  else run_tool "${fp[@]}" --no_progress; fi
  run_tool create_faiss_indexes --input "$exp/fingerprints" --name references --out_dir "$exp/db"
}
if stage_begin 4 "fingerprint database of the references"; then
  run_once "$exp/db/.stage4.done" "$(cat "$exp/model/.stage3.done") $(ls -l "$data/ref_audio" | cksum) hop=$hop_s" database
  stage_end
fi

if stage_begin 5 "hit rates: learned fingerprints beside landmark hashing${peers:+ and $peers}"; then
  run_tool eval_fingerprint "$exp/db" "$data/ref_audio" --out_dir "$exp/eval" --per_cell "$per_cell" ${peers:+$(printf -- "--peer %s " $peers)}
  log "table: $exp/eval/table.md, plot: $exp/eval/hit_rate.png"
  stage_end
fi
log "done"
