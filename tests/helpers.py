"""Shared test helpers: repository paths and running recipe scripts."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_bash(script: str | list[str], cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run a bash script (string) or command (list) with this interpreter's environment first on PATH."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    cmd = ["bash", "-c", script] if isinstance(script, str) else ["bash", *script]
    return subprocess.run(cmd, cwd=cwd or REPO, env=env, capture_output=True, text=True, timeout=timeout)
