"""The identify service's work, apart from HTTP: an upload in, csi.identify's answer out.

One ``Identifier`` (csi.identify, the one query path) is opened at start and answers every
query, one at a time under a lock (the model and its front end are not shared across
threads); uploads are read, parsed and checked outside it. An answer is the Identifier's
``identify(..., offsets=True)`` with, added, ``id`` (the answer's), ``distance`` (``1 -
score``, the cosine distance) on each work and recording, ``plot`` (the URL of the
alignment plot of the best match, csi.serve.plot) and ``elapsed_ms``. The last
``plots_kept`` answers keep what their plot is drawn from; a plot is drawn when first asked.
"""
from __future__ import annotations

import collections
import logging
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from csi.embed import ChunkEmbeddings
from csi.features.reader import EmbedInputError
from csi.identify import Identifier
from csi.serve.options import ServeOptions
from csi.serve.plot import PlotInput, plot_input, render_png
from csi.serve.upload import Upload, UploadError, check_audio

log = logging.getLogger("csi.serve")


class ServingIdentifier(Identifier):
    """An Identifier that keeps the chunk embeddings of the query it embedded last (the
    plot's rows), so a query is embedded once."""
    last_query: ChunkEmbeddings | None = None

    def embed(self, record: dict[str, Any]) -> ChunkEmbeddings:
        result = super().embed(record)
        self.last_query = result
        return result


class IdentifyService:
    """Answers uploads with an Identifier (a ServingIdentifier also gives plots)."""

    def __init__(self, identifier: Identifier, options: ServeOptions | None = None):
        self.identifier = identifier
        self.options = options or ServeOptions()
        self._lock = threading.Lock()
        self._plots: collections.OrderedDict[str, PlotInput | bytes] = collections.OrderedDict()
        self._plot_lock = threading.Lock()
        self._count_lock = threading.Lock()
        self.started = time.time()
        self.counts: collections.Counter[str] = collections.Counter()

    def count(self, status: int) -> None:
        with self._count_lock:
            self.counts[str(status)] += 1

    def topk(self, text: str | None) -> int:
        """``?topk=`` checked (400 with the reason), or the default."""
        if text is None or text == "":
            return self.options.topk
        try:
            k = int(text)
        except ValueError:
            raise UploadError(400, f"topk must be an integer, got {text!r}") from None
        if not 1 <= k <= self.options.max_topk:
            raise UploadError(400, f"topk must be between 1 and {self.options.max_topk}, got {k}")
        return k

    def identify(self, upload: Upload, topk: int) -> dict[str, Any]:
        """The answer for one upload; UploadError (4xx, reason) when it cannot be used."""
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="csi_serve_") as tmp:
            path = Path(tmp) / f"upload{upload.suffix}"
            path.write_bytes(upload.data)
            check_audio(path, upload.filename, self.options.max_seconds)
            with self._lock:
                if isinstance(self.identifier, ServingIdentifier):
                    self.identifier.last_query = None
                try:
                    answer = self.identifier.identify(path, topk, offsets=True, name=upload.filename)
                except EmbedInputError as e:
                    raise UploadError(422, f"unusable audio: {upload.filename}: "
                                           f"{str(e).replace(str(path), upload.filename)}") from None
                query = getattr(self.identifier, "last_query", None)
        answer_id = uuid.uuid4().hex
        for item in (*answer["works"], *answer["recordings"]):
            if "score" in item:
                item["distance"] = round(1.0 - float(item["score"]), 6)
        best = answer["works"][0] if answer["works"] else None
        plot = None
        if query is not None and best is not None and best.get("utt"):
            self._remember(answer_id, plot_input(self.identifier, query.emb, query.start, best["utt"], best["song"],
                                                 upload.filename))
            plot = f"/plot/{answer_id}.png"
        answer = {"id": answer_id, **answer, "plot": plot, "upload_bytes": len(upload.data),
                  "elapsed_ms": round((time.perf_counter() - t0) * 1000, 1)}
        log.info("identify %s (%d bytes, %.1f s): %s in %.0f ms", upload.filename, len(upload.data),
                 answer["duration_s"], best["song"] if best else "no match", answer["elapsed_ms"])
        return answer

    def _remember(self, answer_id: str, data: PlotInput) -> None:
        with self._plot_lock:
            self._plots[answer_id] = data
            while len(self._plots) > self.options.plots_kept:
                self._plots.popitem(last=False)

    def plot_png(self, answer_id: str) -> bytes | None:
        """The PNG of an answer's plot (drawn once), or None for an unknown or forgotten id."""
        with self._plot_lock:
            data = self._plots.get(answer_id)
            if data is None or isinstance(data, bytes):
                return data
            png = render_png(data, self.identifier.frames_per_s, self.identifier.loaded.card.chunk_s)
            if answer_id in self._plots:
                self._plots[answer_id] = png
            return png

    def health(self) -> dict[str, Any]:
        index = self.identifier.index
        with self._count_lock:
            counts = dict(self.counts)
        return {"status": "ok", "index": str(self.identifier.index_dir), "recordings": len(index.recordings),
                "works": len(index.songs), "index_type": index.kind,
                "model": str(self.identifier.loaded.model_dir), "checkpoint": self.identifier.loaded.checkpoint.name,
                "sample_rate": self.identifier.sample_rate, "calibrated": self.identifier.calibration is not None,
                "limits": self.options.limits(), "uptime_s": round(time.time() - self.started, 1),
                "responses": counts}
