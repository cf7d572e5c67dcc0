"""The HEAR embedding API (Turian et al. 2022, "HEAR: Holistic Evaluation of Audio
Representations", §3) over any trained csi model directory:

    import csi.hear as hear
    model = hear.load_model("exp/demo_quick")                 # model.sample_rate, *_embedding_size
    scene = hear.get_scene_embeddings(audio, model)           # audio (B, samples) -> (B, D)
    emb, ms = hear.get_timestamp_embeddings(audio, model)     # (B, T, D), (B, T) in milliseconds

Audio is mono at ``model.sample_rate`` (the model card's front end rate), in [-1, 1]. Beyond
the HEAR signatures: audio of shape (n_sounds, n_channels, n_samples) is mixed down to mono,
and audio at another rate, given as ``sample_rate=``, is resampled (soxr); each is said once
in the log. Both functions go through the one embedding path (csi.embed): a scene embedding
is the L2-normalised mean of the clip's chunk embeddings at the model's training chunk
length; timestamp embeddings are those of chunks of ``frame_duration_ms`` every ``hop_ms``
(rounded to feature frames), stamped at their centres. A clip shorter than one chunk is one
chunk padded with the front end's silence value (the model's training padding): one
timestamp, at the centre of the padded chunk.
"""
from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from csi.chunking import ChunkPolicy
from csi.embed import embed_records
from csi.modeldir import LoadedModel, open_model

log = logging.getLogger("csi.hear")


class HearModel(torch.nn.Module):
    """A csi model with the attributes the HEAR API asks for."""

    def __init__(self, loaded: LoadedModel):
        super().__init__()
        self.loaded = loaded
        self.model = loaded.model
        self.sample_rate = loaded.card.frontend.sr
        self.scene_embedding_size = loaded.card.embed_dim
        self.timestamp_embedding_size = loaded.card.embed_dim
        self._said: set[str] = set()

    def say_once(self, key: str, message: str) -> None:
        if key not in self._said:
            self._said.add(key)
            log.warning(message)


def load_model(model_dir: str = "", checkpoint: str | int | None = None, device: Any = "auto") -> HearModel:
    """The model of a csi model directory (``g_best`` if there is one, else the latest epoch)."""
    return HearModel(open_model(model_dir, checkpoint, device))


def _model_audio(audio, model: HearModel, sample_rate: int | None) -> np.ndarray:
    """(n_sounds, n_samples) float32 mono audio at the model's rate."""
    x = torch.as_tensor(audio).detach().to("cpu", torch.float32)
    if x.dim() == 3:
        model.say_once("channels", f"HEAR: {x.shape[1]}-channel audio mixed down to mono")
        x = x.mean(dim=1)
    if x.dim() != 2:
        raise ValueError(f"expected audio of shape (n_sounds, n_samples) or (n_sounds, n_channels, n_samples), "
                         f"got {tuple(x.shape)}")
    clips = x.numpy()
    if sample_rate is not None and int(sample_rate) != model.sample_rate:
        import soxr

        model.say_once(f"sr{sample_rate}", f"HEAR: audio at {sample_rate} Hz resampled to the model's "
                                           f"{model.sample_rate} Hz")
        clips = np.stack([soxr.resample(c, int(sample_rate), model.sample_rate, quality="HQ") for c in clips])
    return clips.astype(np.float32, copy=False)


def _chunk_embeddings(audio, model: HearModel, policy: ChunkPolicy, batch_size: int, sample_rate: int | None):
    clips = _model_audio(audio, model, sample_rate)
    records = [{"utt": str(i), "samples": clip} for i, clip in enumerate(clips)]
    result = embed_records(model.model, records, policy, model.loaded.reader(), batch_size, model.loaded.device)
    if result.failed:
        raise ValueError(f"clips that cannot be embedded: {result.failed}")
    return result


def get_scene_embeddings(audio: torch.Tensor, model: HearModel, batch_size: int = 32,
                         sample_rate: int | None = None) -> torch.Tensor:
    """(n_sounds, n_samples) audio → (n_sounds, scene_embedding_size) embeddings."""
    result = _chunk_embeddings(audio, model, model.loaded.card.chunking(), batch_size, sample_rate)
    means = np.stack([chunks.mean(axis=0) for chunks in result.per_record(len(audio))])
    means /= np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)
    return torch.from_numpy(means).to(model.loaded.device)


def get_timestamp_embeddings(audio: torch.Tensor, model: HearModel, frame_duration_ms: float = 1000.0,
                             hop_ms: float = 50.0, batch_size: int = 64,
                             sample_rate: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(n_sounds, n_samples) audio → ((n_sounds, n_timestamps, D) embeddings, (n_sounds,
    n_timestamps) centre times in ms) of chunks of ``frame_duration_ms`` every ``hop_ms``."""
    card = model.loaded.card
    policy = card.chunking(frame_duration_ms / 1000.0, hop_ms / 1000.0)
    result = _chunk_embeddings(audio, model, policy, batch_size, sample_rate)
    bounds = result.bounds(len(audio))
    counts = np.diff(bounds)
    if len(set(counts.tolist())) > 1:
        raise ValueError(f"clips of different lengths give different numbers of timestamps: {counts.tolist()}")
    emb = result.emb.reshape(len(counts), int(counts[0]), -1)
    centres = (result.start.reshape(len(counts), -1) + policy.chunk_frames / 2) / card.frontend.frames_per_s * 1000.0
    device = model.loaded.device
    return torch.from_numpy(emb).to(device), torch.from_numpy(centres.astype(np.float32)).to(device)
