#!/usr/bin/env bash
# Shared shell library for recipes: strict mode, logging, stage guards, environment.
#
#   . ../../utils/lib.sh          (from egs/<dataset>/; sets strict mode, CSI_ROOT)
#   ... declare defaults ...
#   . "$CSI_ROOT/utils/parse_options.sh"
#   if stage_begin 1 "JSONL manifest"; then ...; stage_end; fi
#   stage_not_built 3 "coarse training"
#   run_tool NAME ARGS...       logs and runs `python3 -m tools.NAME ARGS...`
#
# Generic helpers only: the CSI stages (features, training, alignment, evaluation) are in
# egs/TEMPLATE/csi1/ (csi.sh, stages.sh), the download helpers in utils/download.sh.
set -euo pipefail

CSI_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CSI_ROOT

# Timestamped log line on stderr: `log "message"`.
log() {
  printf '%s (%s) %s\n' "$(date '+%Y-%m-%d %H:%M:%S')" "$(basename "${0}")" "$*" >&2
}

die() {
  log "ERROR: $*"
  exit 1
}

# True if stage N is inside [stage, stop_stage]; then logs a banner and starts the clock.
stage_begin() {
  local n=$1; shift
  if [ "$stage" -le "$n" ] && [ "$stop_stage" -ge "$n" ]; then
    _stage_n=$n; _stage_name=$*; _stage_t0=$(date +%s)
    log "===== stage $n: $* ====="
    return 0
  fi
  return 1
}

stage_end() {
  log "===== stage $_stage_n: $_stage_name done in $(( $(date +%s) - _stage_t0 ))s ====="
}

# A stage this recipe does not have yet: skipped with a clear line in a default run, an
# error when the user asked for it through --stage/--stop_stage.
stage_not_built() {
  local n=$1; shift
  if [ "$stage" -le "$n" ] && [ "$stop_stage" -ge "$n" ]; then
    if _option_given stage || _option_given stop_stage; then
      die "stage $n ($*) is not built yet in this recipe; choose --stop_stage $((n - 1)) or lower"
    fi
    log "----- stage $n: $* is not built yet: skipped -----"
  fi
}

# Idempotent stages: `if already_done MARKER "inputs"; then ...skip...; else ...; mark_done MARKER "inputs"; fi`.
# The marker holds a signature of the stage's inputs, so changed inputs re-run the stage.
already_done() {
  if [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]; then
    log "already done for these inputs (marker $1): skipped"
    return 0
  fi
  return 1
}

mark_done() {
  mkdir -p "$(dirname "$1")"
  printf '%s\n' "$2" > "$1.tmp" && mv "$1.tmp" "$1"
}

# `run_once MARKER "inputs" COMMAND [ARGS...]`: COMMAND unless MARKER holds these inputs, then the marker.
run_once() {
  local marker=$1 signature=$2; shift 2
  if already_done "$marker" "$signature"; then return 0; fi
  "$@"
  mark_done "$marker" "$signature"
}

# True if option $1 was given on the command line (parse_options.sh's parsed_options). A
# script run by a recipe with the recipe's options forwarded (egs/TEMPLATE/csi1/csi.sh) is
# handed the recipe's list in CSI_GIVEN_OPTIONS: `CSI_GIVEN_OPTIONS="${parsed_options[*]:-}" csi.sh ...`.
_option_given() {
  local o given
  if [ -n "${CSI_GIVEN_OPTIONS+set}" ]; then read -r -a given <<< "$CSI_GIVEN_OPTIONS"; else given=("${parsed_options[@]:-}"); fi
  for o in "${given[@]:-}"; do [ "$o" = "$1" ] && return 0; done
  return 1
}

# Make `python3` the toolkit's environment, installing on first use (utils/install.sh):
# an active virtualenv is used as it is (csi installed into it if missing), otherwise
# the repository's .venv.
csi_activate() {
  if _csi_importable python3; then return 0; fi
  if [ -n "${VIRTUAL_ENV:-}" ]; then
    log "csi is not installed in $VIRTUAL_ENV: running utils/install.sh (first use)"
    bash "$CSI_ROOT/utils/install.sh"
    return 0
  fi
  if ! _csi_importable "$CSI_ROOT/.venv/bin/python3"; then
    log "csi is not installed: running utils/install.sh (first use)"
    bash "$CSI_ROOT/utils/install.sh"
  fi
  # shellcheck disable=SC1091
  . "$CSI_ROOT/.venv/bin/activate"
}

# True if interpreter $1 finds csi and torch (without importing torch: that takes seconds).
_csi_importable() {
  "$1" -c "import importlib.util as u, sys; sys.exit(not (u.find_spec('csi') and u.find_spec('torch')))" >/dev/null 2>&1
}

# Run a python tool module from the toolkit, logging its command line first:
# `run_tool make_manifest --arg ...` runs `python3 -m tools.make_manifest --arg ...`.
run_tool() {
  local name=$1; shift
  log_command python3 -m "tools.$name" "$@"
  PYTHONPATH="$CSI_ROOT${PYTHONPATH:+:$PYTHONPATH}" python3 -m "tools.$name" "$@"
}

# Run a command as N jobs through the job dispatcher (python3 -m jobs, Kaldi's $cmd): `run_jobs
# N LOGDIR/NAME.JOB.log [--signature S] COMMAND...` (JOB in the command is the job number,
# 1..N) on the engine $cmd names: local (default) or "slurm [SBATCH OPTION...]". Jobs that
# succeeded before with the same command and signature are not run again; a failed job is
# named with its log, and the call fails.
cmd=${cmd:-local}
run_jobs() {
  local n=$1 job_log=$2 signature=""; shift 2
  if [ "${1:-}" = --signature ]; then signature=$2; shift 2; fi
  log_command python3 -m jobs --cmd "$cmd" "JOB=1:$n" "$job_log" "$@"
  PYTHONPATH="$CSI_ROOT${PYTHONPATH:+:$PYTHONPATH}" python3 -m jobs --cmd "$cmd" --signature "$signature" \
    "JOB=1:$n" "$job_log" "$@"
}

# `sharded_tool STAGE JOB_LOG SIGNATURE TOOL ARGS...` runs `tools.TOOL ARGS --shard JOB/$nj` as
# $nj jobs on $cmd (run_jobs; JOB_LOG names each job's log with JOB), then
# `tools.TOOL ARGS --merge $nj`; a failed job stops STAGE, naming it.
sharded_tool() {
  local stage_name=$1 job_log=$2 signature=$3 tool=$4; shift 4
  run_jobs "$nj" "$job_log" --signature "$signature" python3 -m "tools.$tool" "$@" --shard "JOB/$nj" --no_progress \
    || die "$stage_name: a $tool job failed (named above); the next run re-runs the failed ones alone"
  run_tool "$tool" "$@" --merge "$nj"
}

# Log a command line, shell-quoted (it can be pasted back; PYTHONPATH is the repository):
# `log_command python3 -m tools.train exp/x`. A line longer than 900 characters is continued
# on the next log line (` \`), so that no log line grows past 1,000 characters.
log_command() {
  local line="" word
  for word in "$@"; do
    printf -v word '%q' "$word"
    if [ -n "$line" ] && [ $(( ${#line} + ${#word} )) -gt 900 ]; then
      log "$line \\"
      line="    $word"
    else
      line="${line:+$line }$word"
    fi
  done
  log "$line"
}

# Log a title, then each line of FILE indented: `log_lines "metrics:" out/metrics_table.txt`.
log_lines() {
  local line
  log "$1"
  while IFS= read -r line; do log "  ${line:0:900}"; done < "$2"
}

