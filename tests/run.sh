#!/usr/bin/env bash
# Run the test suite (installs the toolkit first if needed):  bash tests/run.sh [pytest args]
. "$(dirname "${BASH_SOURCE[0]}")/../utils/lib.sh"
csi_activate
cd "$CSI_ROOT"
python3 -m pytest -q tests "$@"
