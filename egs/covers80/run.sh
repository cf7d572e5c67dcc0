#!/usr/bin/env bash
# covers80 recipe (Ellis 2007: 80 works, 164 recordings, 32 kHz mp3).
#   bash egs/covers80/run.sh                      # download, then every stage
#   bash egs/covers80/run.sh --covers80_dir DIR   # use an unpacked copy (covers32k/ or its parent)
#   bash egs/covers80/run.sh --stage 1 --stop_stage 1 --covers80_dir DIR
recipe=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$recipe/../../utils/lib.sh"

stage=0
stop_stage=6
covers80_dir=""   # an existing copy; empty: download into $download_dir
covers80_url=http://labrosa.ee.columbia.edu/projects/coversongs/covers80/covers80.tgz
download_dir=$recipe/downloads
data=$recipe/data/covers80
nj=2
test_features=$CSI_ROOT/conf/features/test.yaml
train_config=$CSI_ROOT/conf/train/coverhunter.yaml
exp=$recipe/exp/coverhunter
model_dir=""      # a trained model (e.g. egs/shs100k/exp/coverhunter): stages 3-5 skipped, stage 6 evaluates it
protocol=all_vs_all  # stage 6, one or both: all_vs_all (the CoverHunter paper's: 164 recordings, each queries the other 163), list1_vs_list2 (80 queries, 80 references)
nproc_per_node=1 nnodes=1 node_rank=0 master_addr=127.0.0.1 master_port=29500  # training processes (torchrun)
cmd=local         # job engine of stage 2: local | "slurm [SBATCH OPTION...]"

help_message="Usage: $0 [--stage N] [--stop_stage N] [--covers80_dir DIR] [--covers80_url URL] [--download_dir DIR] [--nj N] [--data DIR] [--test_features YAML] [--train_config YAML] [--exp DIR] [--model_dir DIR] [--protocol 'all_vs_all list1_vs_list2'] [--cmd local|'slurm OPTS'] [--nproc_per_node N] [--nnodes N --node_rank R --master_addr A --master_port P] [--config FILE]
Stages 0-1 here, 2-6 in egs/TEMPLATE/csi1/csi.sh (features, coarse training, alignment, fine training, evaluation)."
. "$CSI_ROOT/utils/parse_options.sh"

[ -n "$covers80_dir" ] || covers80_dir=$download_dir/covers80
evals=""          # stage 6: NAME=QUERY:REF a protocol, into EXP/eval_covers80_<protocol>
for p in $protocol; do
  case $p in
    all_vs_all) evals+=" covers80_all_vs_all=$data/dataset.txt:$data/dataset.txt" ;;
    list1_vs_list2) evals+=" covers80_list1_vs_list2=$data/query.txt:$data/ref.txt" ;;
    *) die "--protocol: expected all_vs_all and/or list1_vs_list2, got '$p'" ;;
  esac
done
[ -n "$evals" ] || die "--protocol: give all_vs_all and/or list1_vs_list2"
# the paper's setting: a model trained elsewhere (SHS100K) tested on covers80 (csi.sh --model_dir)
[ -z "$model_dir" ] || [ -d "$model_dir/pt_model" ] || die "--model_dir $model_dir holds no trained model (pt_model/)"
csi_activate

if stage_begin 0 "download covers80"; then
  if [ -d "$covers80_dir" ]; then
    log "using the covers80 copy at $covers80_dir"
  elif [ "$covers80_dir" != "$download_dir/covers80" ]; then
    die "covers80 directory $covers80_dir does not exist (expected covers32k/<work>/<performance>.mp3 under it; the collection is $covers80_url)"
  else
    run_tool download "$covers80_url" "$download_dir/covers80.tgz" --out_dir "$covers80_dir" \
      || die "could not get $covers80_url into $covers80_dir; fetch and unpack it by hand, then pass --covers80_dir <dir holding covers32k/>"
  fi
  stage_end
fi

if stage_begin 1 "JSONL manifest"; then
  [ -d "$covers80_dir" ] || die "covers80 directory $covers80_dir does not exist (run stage 0, or pass --covers80_dir; the collection is $covers80_url)"
  signature="$(cd "$covers80_dir" && pwd) $(find "$covers80_dir" -type f | wc -l)"
  if ! already_done "$data/.stage1.done" "$signature"; then
    python3 "$recipe/local/prepare_covers80.py" "$covers80_dir" "$data"
    mark_done "$data/.stage1.done" "$signature"
  fi
  stage_end
fi

# As in the CoverHunter reference recipe, covers80 is small enough to serve as its own
# training and dev set here: a check of the pipeline, not a valid protocol (train on
# SHS100K to evaluate on covers80). Stage 6 runs each --protocol (default all_vs_all, the
# paper's) on the audio: its name is in EXP/eval_covers80_<protocol>/ and in every figure.
[ "$stop_stage" -lt 6 ] || log "stage 6 protocol(s): $protocol"
"$CSI_ROOT/egs/TEMPLATE/csi1/csi.sh" --stage "$stage" --stop_stage "$stop_stage" --nj "$nj" --data "$data" --exp "$exp" \
  --train_config "$train_config" --train_features "$test_features" --test_features "$test_features" \
  --train_set . --valid_set "" --test_sets "" --dev_sets "covers80=$data/full.txt" \
  --extra_eval "${evals# }" --model_dir "$model_dir" \
  --nproc_per_node "$nproc_per_node" --nnodes "$nnodes" --node_rank "$node_rank" --master_addr "$master_addr" --master_port "$master_port" --cmd "$cmd"
log "done"
