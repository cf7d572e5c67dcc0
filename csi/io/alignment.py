"""An alignment file read back for fine training: refused when it was made from another
manifest or another model, looked up by source recording in either direction."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from csi.io.manifest import source_utt

FORMAT = "csi-alignment/1"   # the header line's "format" (csi.align.aligner writes the file)


class AlignmentError(ValueError):
    """An alignment file that cannot be used here; the message says why."""


class AlignmentTable:
    def __init__(self, head: dict[str, Any], pairs: dict[tuple[str, str], tuple[float, float, float]]):
        self.header = head
        self._pairs = pairs          # (source a, source b) -> (scale, shift_s, confidence)

    def __len__(self) -> int:
        return len(self._pairs)

    def map_time(self, utt_a: str, utt_b: str, t_a: float, min_confidence: float = 0.0) -> float | None:
        """Source time in ``utt_b`` of source time ``t_a`` in ``utt_a`` (tempo copies count as
        their source: the same recording maps to itself), or None without a confident alignment."""
        a, b = source_utt(utt_a), source_utt(utt_b)
        if a == b:
            return t_a
        if (a, b) in self._pairs:
            scale, shift, confidence = self._pairs[(a, b)]
            return scale * t_a + shift if confidence >= min_confidence else None
        if (b, a) in self._pairs:
            scale, shift, confidence = self._pairs[(b, a)]
            return (t_a - shift) / scale if confidence >= min_confidence else None
        return None


def read_alignments(path: str | os.PathLike, manifest: str | os.PathLike | None = None,
                    checkpoint_sha256: str | None = None) -> AlignmentTable:
    """Read an alignment file; with ``manifest``/``checkpoint_sha256`` given, a file made from
    another manifest (content) or another checkpoint is an AlignmentError saying which."""
    from csi.utils import file_sha256

    path = Path(path)
    if not path.is_file():
        raise AlignmentError(f"file not found: {path} (run stage 4, tools.alignment_for_frames)")
    pairs: dict[tuple[str, str], tuple[float, float, float]] = {}
    head = None
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                if "header" in obj:
                    head = obj["header"]
                    continue
                pairs[(obj["utt_a"], obj["utt_b"])] = (float(obj["scale"]), float(obj["shift_s"]),
                                                       float(obj["confidence"]))
            except (ValueError, KeyError, TypeError) as e:
                raise AlignmentError(f"{path}:{lineno}: not an alignment line ({type(e).__name__}: {e})") from None
    if head is None or head.get("format") != FORMAT:
        raise AlignmentError(f"{path}: no {FORMAT} header line")
    if manifest is not None and file_sha256(manifest) != head.get("manifest_sha256"):
        raise AlignmentError(f"{path} was made from {head.get('manifest')}, not from {manifest} "
                             f"(manifest content differs): run the alignment again")
    if checkpoint_sha256 is not None and checkpoint_sha256 != head.get("checkpoint_sha256"):
        raise AlignmentError(f"{path} was made with checkpoint {head.get('checkpoint')} of {head.get('model_dir')} "
                             f"(sha256 {str(head.get('checkpoint_sha256'))[:12]}), not with the model given "
                             f"(sha256 {checkpoint_sha256[:12]}): run the alignment again")
    return AlignmentTable(head, pairs)
