#!/usr/bin/env bash
# Offline demo recipe: cover sets of real works from the music21 corpus, rendered to audio
# on this machine (no download). The split by work is fixed (hash of the work id) and the
# val/test works are rendered with instruments, effects and noise never used in training,
# so stage 6 measures generalisation to unseen works AND unseen timbres.
#   bash egs/synthcovers/run.sh                        # quick size, every stage (~15 min on 2 cores)
#   bash egs/synthcovers/run.sh --size full            # every usable work, longer training
#   bash egs/synthcovers/run.sh --works 20 --stop_stage 1
recipe=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$recipe/../../utils/lib.sh"

stage=0
stop_stage=6
size=quick        # quick | full: corpus size and training config (conf/train/demo_<size>.yaml)
works=""          # number of works (or "all"); empty: 400 for quick, all for full
generated_works=0 # generated train works (a melody model fitted on the train works only); 0 by default:
                  # at the quick budget 1,800 of them made the model worse (README, Demo results)
seed=0            # corpus seed (renderings; the split does not depend on it)
val_fraction=0.1  # share of the works for validation (dev MAP, early stopping, g_best)
test_fraction=0.2 # share of the works held out for testing
corpus_dir=""     # empty: $recipe/downloads/synthcovers_w<works>_g<generated_works>_s<seed>
data=""           # empty: $recipe/data/<corpus directory name> (one per corpus: sizes do not clobber each other)
nj=2
train_features=$CSI_ROOT/conf/features/test.yaml  # no offline augmentation: training stretches tempo online
test_features=$CSI_ROOT/conf/features/test.yaml
train_config=""   # empty: conf/train/demo_<size>.yaml
exp=""            # empty: $recipe/exp/demo_<size>
align_chunk_s=15  # stage 4: chunk length and hop of the alignment (seconds)
align_hop_s=1.25
fine_steps=600    # stage 5: optimizer steps from the coarse model (~5 min on 2 cores), and its learning rate
fine_lr=0.0005
nproc_per_node=1 nnodes=1 node_rank=0 master_addr=127.0.0.1 master_port=29500  # training processes (torchrun)
cmd=local         # job engine of stage 2: local | "slurm [SBATCH OPTION...]"

help_message="Usage: $0 [--stage N] [--stop_stage N] [--size quick|full] [--works N|all] [--generated_works N] [--seed S] [--val_fraction F] [--test_fraction F] [--corpus_dir DIR] [--nj N] [--data DIR] [--train_features YAML] [--test_features YAML] [--train_config YAML] [--exp DIR] [--align_chunk_s S] [--align_hop_s S] [--fine_steps N] [--fine_lr LR] [--cmd local|'slurm OPTS'] [--nproc_per_node N] [--nnodes N --node_rank R --master_addr A --master_port P] [--config FILE]
Stages 0-1 here, 2-6 in egs/TEMPLATE/csi1/csi.sh (features, coarse training, alignment, fine training, evaluation)."
. "$CSI_ROOT/utils/parse_options.sh"

case $size in
  quick) [ -n "$works" ] || works=400 ;;
  full) [ -n "$works" ] || works=all ;;
  *) die "--size must be quick or full, got '$size'" ;;
esac
[ -n "$train_config" ] || train_config=$CSI_ROOT/conf/train/demo_$size.yaml
[ -n "$exp" ] || exp=$recipe/exp/demo_$size
[ -n "$corpus_dir" ] || corpus_dir=$recipe/downloads/synthcovers_w${works}_g${generated_works}_s${seed}
[ -n "$data" ] || data=$recipe/data/$(basename "$corpus_dir")
csi_activate

if stage_begin 0 "render the demo corpus"; then
  signature="works=$works generated=$generated_works seed=$seed val=$val_fraction test=$test_fraction"
  if ! already_done "$corpus_dir/.stage0.done" "$signature"; then
    run_tool make_synth_covers --out_dir "$corpus_dir" --works "$works" --generated_works "$generated_works" \
      --seed "$seed" --nj "$nj" --val_fraction "$val_fraction" --test_fraction "$test_fraction" $([ -t 2 ] || echo --no_progress)
    mark_done "$corpus_dir/.stage0.done" "$signature"
  fi
  stage_end
fi

if stage_begin 1 "JSONL manifests, the corpus's train/val/test split and the hard test split"; then
  [ -s "$corpus_dir/dataset.txt" ] || die "$corpus_dir/dataset.txt is missing: run stage 0 first"
  [ -s "$corpus_dir/test_hard.txt" ] || die "$corpus_dir/test_hard.txt is missing: run stage 0 again"
  signature="$corpus_dir $(cat "$corpus_dir/dataset.txt" "$corpus_dir/test_hard.txt" | cksum)"
  if ! already_done "$data/.stage1.done" "$signature"; then
    run_tool split_manifest "$corpus_dir/dataset.txt" --out_dir "$data" --by_field split --subsets train val test \
      --query_ref test
    mkdir -p "$data/test_hard"  # the test works again, every version in another key
    cp "$corpus_dir/test_hard.txt" "$data/test_hard/.dataset.txt.tmp" && mv "$data/test_hard/.dataset.txt.tmp" "$data/test_hard/dataset.txt"
    mark_done "$data/.stage1.done" "$signature"
  fi
  stage_end
fi

# val picks the model (g_best), test is only monitored (learning curve); stage 6: test and test_hard all-vs-all
"$CSI_ROOT/egs/TEMPLATE/csi1/csi.sh" --stage "$stage" --stop_stage "$stop_stage" --nj "$nj" --data "$data" --exp "$exp" \
  --train_config "$train_config" --train_features "$train_features" --test_features "$test_features" \
  --test_sets "test test_hard" --dev_sets "test=$data/test/full.txt" --eval_plot true --learning_curve true \
  --align_chunk_s "$align_chunk_s" --align_hop_s "$align_hop_s" --align_plot_work first --fine_steps "$fine_steps" --fine_lr "$fine_lr" \
  --nproc_per_node "$nproc_per_node" --nnodes "$nnodes" --node_rank "$node_rank" --master_addr "$master_addr" --master_port "$master_port" --cmd "$cmd"
log "done"
