"""Chunk alignment of the versions of a work (CoverHunter's coarse-to-fine step, arXiv
2306.09025 §3.3): embed every recording in short chunks with the coarse model, match each
chunk of one version to its nearest chunk of another, and keep the time map most chunk
matches agree on. The fine training (csi.train) then cuts its chunks at aligned positions.

    from csi.align import align_collection, read_alignments
    for result in align_collection(loaded, records, chunk_s=15, hop_s=2.5): ...
    table = read_alignments(path, manifest=..., checkpoint_sha256=...)
    table.map_time("work1-v0", "work1-v3", 42.0)     # seconds in v3, or None

Modules: ``votes`` (the dominant time map of a set of matches), ``pairs`` (recordings,
tempo copies and pairs per work), ``aligner`` (embedding and matching per work, the JSON
lines file), ``table`` (reading a file back, refusing one made from another manifest or
model), ``plot`` (the chunk-distance matrix of a pair with the found map).
"""
from csi.align.aligner import AlignSettings, align_collection, write_alignments
from csi.io.alignment import AlignmentError, AlignmentTable, read_alignments
from csi.align.votes import TimeMap, dominant_map

__all__ = ["AlignSettings", "AlignmentError", "AlignmentTable", "TimeMap", "align_collection", "dominant_map",
           "read_alignments", "write_alignments"]
