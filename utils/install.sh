#!/usr/bin/env bash
# Install the csi toolkit into a virtualenv, idempotently.
#
#   bash utils/install.sh            # uses $VIRTUAL_ENV if one is active, else ./.venv
#
# torch is installed only when missing and pinned to torch==2.13.0: on the project's
# machines that resolves to a local CPU wheel, while an unpinned requirement would pull a
# multi-GB CUDA build. A second run is a stamp check (well under 10 s).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
torch_pin=${CSI_TORCH_PIN:-torch==2.13.0}

if [ -n "${VIRTUAL_ENV:-}" ]; then
  venv=$VIRTUAL_ENV
else
  venv=$root/.venv
  if [ ! -x "$venv/bin/python3" ]; then
    echo "[install] creating virtualenv $venv"
    python3 -m venv "$venv"
  fi
fi
py=$venv/bin/python3

# pip, quietly; drops the "Location ... is ignored" notes some pip configurations print
pip_install() {
  "$py" -m pip install --quiet "$@" 2> >(grep -v "^WARNING: Location '.*' is ignored" >&2)
}

# Chromium for the service's page test (tests/csi/serve), from the distribution when we may
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "[install] installing chromium (apt) for the service page test"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null \
    || echo "[install] chromium not installed: tests/csi/serve's page test will skip" >&2
fi
# Slurm and munge for the job-dispatch test against a real one-node cluster (tests/jobs/test_slurm.py)
if ! command -v slurmctld >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "[install] installing slurmctld, slurmd, munge (apt) for the Slurm dispatch test"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      slurmctld slurmd slurm-client munge >/dev/null; } \
    || echo "[install] Slurm not installed: tests/jobs/test_slurm.py will skip" >&2
fi

# The stamp records what was installed; a matching stamp means nothing to do.
stamp=$venv/.csi_install_stamp
want=$(cat "$root/setup.py" "$root/utils/install.sh" <(echo "$root" "$torch_pin") | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && "$py" -c "import torch, csi" 2>/dev/null; then
  echo "[install] up to date ($venv)"
  exit 0
fi

if ! "$py" -c "import torch" 2>/dev/null; then
  echo "[install] installing $torch_pin"
  pip_install "$torch_pin"
fi
echo "[install] installing csi (editable) with the dev and demo extras"
pip_install -e "$root[dev,demo]"
pip_install --no-deps tinysoundfont
# The HEAR 2021 clients that tests/csi/test_hear_clients.py runs against csi.hear. Without
# their dependencies: they pin numpy 1.19 / numba 0.48 (Python 3.8) and TensorFlow, none of
# which their embedding code needs (the dev extra brings what it imports).
pip_install --no-deps heareval==2021.1.3 hearvalidator==2021.0.2
echo "$want" > "$stamp"
echo "[install] done: $("$py" -c 'import torch; print("torch", torch.__version__)')"
