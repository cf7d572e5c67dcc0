"""What every command-line tool does around its work: log to stderr, turn an input error
into one line ``<tool>: <message>`` and exit status 1 (anything else is a bug and raises)."""
from __future__ import annotations

import logging
import sys
from typing import Callable


def run_tool_main(name: str, work: Callable[[], object], errors: tuple[type[BaseException], ...] = ()) -> int:
    """Run ``work()``; exit status 0, or 1 with ``name: message`` for manifest, missing-file
    and the tool's own ``errors``."""
    from csi.io.manifest import ManifestError

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    try:
        work()
    except (ManifestError, FileNotFoundError, *errors) as e:
        print(f"{name}: {e}", file=sys.stderr)
        return 1
    return 0
