#!/usr/bin/env bash
# Offline demo recipe: cover sets of real works from the music21 corpus, rendered to audio
# on this machine (no download), split into train/test by work.
#   bash egs/synthcovers/run.sh                        # installs on first use, runs every stage
#   bash egs/synthcovers/run.sh --works 20 --stop_stage 1
recipe=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$recipe/../../utils/lib.sh"

stage=0
stop_stage=6
works=80          # number of works (each 2-4 versions)
seed=0            # corpus and split seed
val_fraction=0.1  # share of the works for validation (dev MAP, early stopping)
test_fraction=0.2 # share of the works held out for testing
corpus_dir=""     # empty: $recipe/downloads/synthcovers_w<works>_s<seed>
data=$recipe/data
nj=2
train_features=$CSI_ROOT/conf/features/train.yaml
test_features=$CSI_ROOT/conf/features/test.yaml
train_config=$CSI_ROOT/conf/train/demo_cpu.yaml
exp=$recipe/exp/demo_cpu

help_message="Usage: $0 [--stage N] [--stop_stage N] [--works N] [--seed S] [--nj N] [--data DIR] [--train_features YAML] [--test_features YAML] [--train_config YAML] [--exp DIR] [--nproc_per_node N] [--config FILE]"
. "$CSI_ROOT/utils/parse_options.sh"

[ -n "$corpus_dir" ] || corpus_dir=$recipe/downloads/synthcovers_w${works}_s${seed}
csi_activate

if stage_begin 0 "render the demo corpus"; then
  if ! already_done "$corpus_dir/.stage0.done" "works=$works seed=$seed"; then
    run_tool make_synth_covers --out "$corpus_dir" --works "$works" --seed "$seed" --nj "$nj"
    mark_done "$corpus_dir/.stage0.done" "works=$works seed=$seed"
  fi
  stage_end
fi

if stage_begin 1 "JSONL manifests, train/test split by work"; then
  [ -s "$corpus_dir/dataset.txt" ] || die "$corpus_dir/dataset.txt is missing: run stage 0 first"
  signature="$corpus_dir $(cat "$corpus_dir/.stage0.done" 2>/dev/null) val=$val_fraction test=$test_fraction seed=$seed"
  if ! already_done "$data/.stage1.done" "$signature"; then
    run_tool split_manifest "$corpus_dir/dataset.txt" "$data" --seed "$seed" --query_ref test \
      --fractions "train=$(awk "BEGIN{print 1 - $val_fraction - $test_fraction}"),val=$val_fraction,test=$test_fraction"
    mark_done "$data/.stage1.done" "$signature"
  fi
  stage_end
fi

if stage_begin 2 "CQT features with augmentation"; then
  features_stage "$data/train" "$train_features" "$nj"
  features_stage "$data/val" "$test_features" "$nj"
  features_stage "$data/test" "$test_features" "$nj"
  run_tool check_leakage "$data/train/full.txt" "$data/val/full.txt" "$data/test/full.txt"
  stage_end
fi

if stage_begin 3 "coarse training"; then
  train_stage "$exp" "$train_config" --set "train_path=$data/train/full.txt" \
    --set "val.query_path=$data/val/full.txt" --set "val.ref_path=$data/val/full.txt"
  stage_end
fi

stage_not_built 4 "chunk alignment"
stage_not_built 5 "fine training"
if stage_begin 6 "test-set evaluation"; then
  # all-vs-all on the held-out works: every test recording queries the others
  eval_stage "$exp" "$data/test/full.txt" "$data/test/full.txt" "$exp/eval_test" --plot
  stage_end
fi
log "done"
