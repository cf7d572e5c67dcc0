#!/usr/bin/env bash
# The GPU check (issue 23): CQT front end batched on the GPU against the CPU values, an AMP
# training step, NCCL (DDP over the devices present), and the evaluation's distance path on
# the GPU, with timings, as one JSON line. Skips with the reason when no CUDA device is
# present (exit status 0). Fits in 10 minutes on one GPU. From the repository root:
#   bash tests/gpu/check.sh [--out FILE]
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/../../utils/lib.sh"
csi_activate
cd "$CSI_ROOT"
PYTHONPATH="$CSI_ROOT${PYTHONPATH:+:$PYTHONPATH}" exec python3 -m tests.gpu.check "$@"
