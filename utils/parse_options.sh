#!/usr/bin/env bash
# Kaldi-style option parsing for recipes. Source it after declaring defaults:
#
#   stage=0
#   stop_stage=100
#   nj=4
#   . utils/parse_options.sh
#
# Then `--stage 2`, `--stop-stage 3` or `--stop_stage=3` set the declared variables (a
# dash in the name becomes an underscore). Only declared variables can be set: an
# unknown option is an error. `--config FILE` sources FILE (shell assignments) at that
# point of the command line. A variable that holds true/false accepts only true/false.
# `--help`/`-h` prints $help_message if the script set one. Positional arguments that
# follow the options are left in "$@". Every option given is appended to the array
# `parsed_options` (names with underscores), so a script can tell defaults from choices.

parsed_options=()
while true; do
  [ $# -eq 0 ] && break
  case "$1" in
    --help|-h)
      if [ -n "${help_message:-}" ]; then printf '%s\n' "$help_message"; else echo "No help found for $0"; fi
      exit 0 ;;
    --)
      shift; break ;;
    --*=*)
      _po_name=${1%%=*}; _po_value=${1#*=}; shift ;;
    --*)
      if [ $# -lt 2 ]; then echo "$0: option $1 needs a value" >&2; exit 1; fi
      _po_name=$1; _po_value=$2; shift 2 ;;
    *)
      break ;;
  esac
  _po_name=${_po_name#--}
  _po_name=${_po_name//-/_}
  if [ "$_po_name" = config ]; then
    if [ ! -r "$_po_value" ]; then echo "$0: --config: cannot read $_po_value" >&2; exit 1; fi
    # shellcheck disable=SC1090
    . "$_po_value"
    parsed_options+=(config)
    continue
  fi
  if ! [[ $_po_name =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || [ -z "${!_po_name+set}" ]; then
    echo "$0: unknown option --$_po_name (known options are the variables the script declares; see --help)" >&2
    exit 1
  fi
  _po_old=${!_po_name}
  if { [ "$_po_old" = true ] || [ "$_po_old" = false ]; } && [ "$_po_value" != true ] && [ "$_po_value" != false ]; then
    echo "$0: option --$_po_name expects true or false, got '$_po_value'" >&2
    exit 1
  fi
  printf -v "$_po_name" '%s' "$_po_value"
  parsed_options+=("$_po_name")
done
unset _po_name _po_value _po_old
true
