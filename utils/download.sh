#!/usr/bin/env bash
# Download and metadata helpers of the recipes on published splits of downloaded audio
# (egs/shs100k, egs/discogs_vi). Sourced after utils/lib.sh:
#
#   . "$CSI_ROOT/utils/download.sh"
#   meta=$(metadata_dir DIR MARK OPTION [URL ARCHIVE])
#   youtube_audio_stage URL_LIST AUDIO_DIR JOBS RATE_LIMIT_S
#   log_coverage FILE
#   present_audio_manifests DATA META AUDIO_DIR "SPLIT_FILES" COMMAND [ARGS...]

# `metadata_dir DIR MARK OPTION [URL ARCHIVE]` prints the directory at or under DIR (depth ≤ 3)
# holding the file MARK. When there is none and URL is given, the tar archive URL is
# downloaded to ARCHIVE (through ARCHIVE.part) and unpacked into DIR (through a temporary
# directory) first. Dies naming the path, URL and OPTION when the metadata cannot be had.
# Use as `meta=$(metadata_dir ...)` (strict mode stops the recipe when it fails).
metadata_dir() {
  local dir=$1 mark=$2 option=$3 url=${4:-} archive=${5:-} found
  found=$(_dir_holding "$dir" "$mark")
  if [ -z "$found" ] && [ -n "$url" ]; then
    log "no $mark under $dir: downloading $url"
    run_tool download "$url" "$archive" --out_dir "$dir" --no_progress >&2 \
      || die "could not download $url to $archive (offline?): fetch the metadata by hand and pass $option DIR (the directory holding $mark)"
    found=$(_dir_holding "$dir" "$mark")
    [ -n "$found" ] || die "$url unpacked into $dir holds no $mark; pass $option DIR (the directory holding $mark)"
  fi
  [ -n "$found" ] || die "no $mark at or under $dir: pass $option DIR (the directory holding $mark)${url:+ or let stage 0 download $url}"
  echo "$found"
}

_dir_holding() {
  [ -d "$1" ] || return 0
  find "$1" -maxdepth 3 -type f -name "$2" 2>/dev/null | sort | head -1 | xargs -r dirname
}

# Stage 0 audio: `youtube_audio_stage URL_LIST AUDIO_DIR JOBS RATE_LIMIT_S` downloads every
# `id<TAB>url` of URL_LIST through tools.download_youtube (resumable: finished files are kept)
# and logs how many are unavailable (AUDIO_DIR/missing.txt).
youtube_audio_stage() {
  local list=$1 audio=$2 jobs=$3 rate=$4 progress=()
  [ -t 2 ] || progress=(--no_progress)
  run_tool download_youtube "$list" --out_dir "$audio" --jobs "$jobs" --rate_limit_s "$rate" "${progress[@]}"
  log "$(wc -l < "$audio/missing.txt") of $(wc -l < "$list") recordings unavailable ($audio/missing.txt)"
}

# Log a coverage table (csi.io.coverage) line by line: `log_coverage FILE`.
log_coverage() {
  log_lines "coverage ($1):" "$1"
}

# Stage 1 on published splits: `present_audio_manifests DATA META AUDIO_DIR "SPLIT_FILES" COMMAND...`
# runs COMMAND (it writes DATA's manifests of the audio present and DATA/coverage.txt) unless
# META's split files (names relative to META, space-separated) and AUDIO_DIR's files (two
# levels: flat or <id[:2]>/ prefix folders) are those of its last run; then logs the coverage table.
present_audio_manifests() {
  local data=$1 meta=$2 audio=$3 splits=$4 signature; shift 4
  # shellcheck disable=SC2086  # the split file names are words
  signature="$meta $(cd "$meta" && cat $splits 2>/dev/null | cksum || true) $(cd "$(dirname "$audio")" 2>/dev/null && pwd)/$(basename "$audio") $( (cd "$audio" 2>/dev/null && find . -maxdepth 2 -type f || true) | sort | cksum)"
  if ! already_done "$data/.stage1.done" "$signature"; then
    "$@" || die "stage 1 kept no recording of a split (coverage above, $data/coverage.txt)"
    mark_done "$data/.stage1.done" "$signature"
  fi
  log_coverage "$data/coverage.txt"
}
